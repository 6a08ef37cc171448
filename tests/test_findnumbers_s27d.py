"""Numbers you can trust: what ``lrkit find`` and ``lrkit schedule`` print, write and draw, recomputed independently.

* ``lrkit find`` on a task file: the table (suggestion, range, every rule) against the JSON record and against each
  rule recomputed from the raw curve by the README's definition; the record's fields against the run; the PNG's
  suggestion line and shaded range (matplotlib artists, not pixels); the text chart's ``▲`` against the LR axis.
* The robust rule's ``curve`` row and the picture's legend near the noise band's edges: a printed noise or back-off
  never reads as a band edge or a full back-off it is not (it read "noise 0.07, noise-dominated: back off 1 decades").
* ``lrkit schedule`` for each family (warmup in steps and in epochs): the table's cells and summary against the
  README's closed forms and torch's schedulers, and the PNG's curve against ``schedule.lr(t)``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from _helpers import MSE_LOSS_FN, fastai_valley_search, write_task
from lrkit.cli.app import build_app
from lrkit.cli.find import _curve_reading
from lrkit.finder import FinderResult
from lrkit.finder.suggest import ROBUST_NOISE_BAND
from lrkit.plots.finder import plot_finder
from lrkit.schedules import from_spec
from lrkit.schedules.report import sampled_record

matplotlib.use("Agg")
import matplotlib.pyplot as plt

runner = CliRunner()


# ---------------------------------------------------------------------------------------------------------------
# independent readings of a range-test curve (the README's definitions, written out here)
# ---------------------------------------------------------------------------------------------------------------
def _smooth(y: np.ndarray) -> np.ndarray:
    """Running median, then a centred moving average, each over ~7% of the curve (odd, >= 3), edges held."""
    n = len(y)
    w = min(max(3, round(0.07 * n) | 1) | 1, n if n % 2 else n - 1)
    h = w // 2
    padded = np.r_[[y[0]] * h, y, [y[-1]] * h]
    med = np.array([np.median(padded[i:i + w]) for i in range(n)])
    padded = np.r_[[med[0]] * h, med, [med[-1]] * h]
    return np.array([padded[i:i + w].mean() for i in range(n)])


def _fastai_ema(y: np.ndarray, beta: float = 0.98) -> np.ndarray:
    out, avg = [], 0.0
    for i, v in enumerate(y):
        avg = beta * avg + (1 - beta) * float(v)
        out.append(avg / (1 - beta ** (i + 1)))
    return np.array(out)


def _rules(lrs: np.ndarray, losses: np.ndarray) -> dict[str, Any]:
    """steepest, minimum, valley, the range and the smoothed minimum's LR, from the finite points of the curve."""
    keep = np.isfinite(losses)
    lr, y = lrs[keep], losses[keep]
    s = _smooth(y)
    i_min = int(np.argmin(s))
    end = max(i_min + 1, 3)  # the descent: up to the smoothed minimum
    steepest = lr[int(np.argmin(np.gradient(s[:end], np.log10(lr[:end]))))]
    ema = _fastai_ema(y)
    start, stop = fastai_valley_search(list(ema))
    third = (stop - start) / 3
    drop = s[0] - s[i_min]
    low = lr[int(np.nonzero(s[: i_min + 1] <= s[0] - 0.1 * drop)[0][0])]
    return {"steepest": float(steepest), "minimum": float(lr[int(np.argmin(ema))] / 10),
            "valley": float(lr[start + int(third) + int(third / 2)]), "range": (float(low), float(lr[i_min])),
            "lr_min": float(lr[i_min]), "smoothed": s}


def _cell(output: str, row: str) -> str:
    """The value cell of a table row (the last cell of the first line that starts with ``row``)."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells and cells[0] == row:
            return cells[-1]
    raise AssertionError(f"no row {row!r} in:\n{output}")


def test_lrkit_find_table_record_picture_and_chart_agree_with_the_curve(tmp_path: Path) -> None:
    task = write_task(tmp_path, MSE_LOSS_FN)
    res = runner.invoke(build_app(), ["find", str(task), "--num-steps", "60", "--start-lr", "1e-5", "--end-lr", "30",
                                      "--out", str(tmp_path / "o")], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    path = tmp_path / "o" / "lr_find.json"
    record = json.loads(path.read_text())
    result = FinderResult.from_json(path)
    # the record's settings and the run
    assert (record["num_steps"], record["start_lr"], record["end_lr"], record["mode"]) == (60, 1e-5, 30.0, "exp")
    n = len(record["lrs"])
    title = f"LR range test — {n} steps, {record['stop_reason']}"
    assert title in res.output
    assert record["stop_reason"] in ("completed", "diverged", "non-finite")
    assert (n == 60) == (record["stop_reason"] == "completed")
    lrs = np.array(record["lrs"])
    sweep = 1e-5 * (30 / 1e-5) ** (np.arange(n) / 59)  # start_lr * (end/start)^(i/(num_steps-1))
    assert np.allclose(lrs, sweep, rtol=1e-12, atol=0) and np.all(np.diff(lrs) > 0)
    assert record["passes"] == pytest.approx(n / 8)  # 64 samples in batches of 8: 8 batches a pass
    assert 0 < record["seconds"] < 120
    # every reading, recomputed from the raw curve
    losses = np.array([np.nan if v is None else v for v in record["losses"]], dtype=float)
    mine = _rules(lrs, losses)
    np.testing.assert_allclose(record["smoothed_losses"], mine["smoothed"], rtol=1e-12)
    for rule in ("steepest", "minimum", "valley"):
        assert record["suggestions"][rule] == mine[rule], rule
        assert _cell(res.output, f"rule: {rule}") == f"{mine[rule]:.3g}"
    assert tuple(record["range"]) == mine["range"] == result.range
    assert _cell(res.output, "range (low – high)") == "{:.3g} – {:.3g}".format(*mine["range"])
    sug = record["suggestion"]
    assert sug == result.suggestion == record["suggestions"]["robust"]
    assert _cell(res.output, "suggestion (robust)") == f"{sug:.3g}"
    # robust: lr_min / 10**backoff, kept inside the descent and never below the first LR
    assert record["edge"] == mine["lr_min"]
    below = math.log10(mine["lr_min"] / sug)
    assert below <= record["backoff_decades"] + 1e-9 and sug >= lrs[0]
    # the picture: the suggestion's line and the shaded range, read from the artists
    fig = result.plot()
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("suggestion"))
    assert list(line.get_xdata()) == [sug, sug] and line.get_label().endswith(f": {sug:.3g}")
    (span,) = ax.patches
    assert (span.get_x(), span.get_x() + span.get_width()) == pytest.approx(mine["range"], rel=1e-12)
    for rule in ("steepest", "minimum", "valley"):
        drawn = next(ln for ln in ax.get_lines() if ln.get_label().startswith(f"{rule}:"))
        assert list(drawn.get_xdata()) == [mine[rule]] * 2
    plt.close(fig)
    # the text chart: the ▲ sits in the column of the suggestion's LR on the log axis
    for width, ascii in ((72, False), (50, True), (100, False)):
        chart = result.text_plot(width=width, ascii=ascii).splitlines()
        corner, arrow = ("+", "^") if ascii else ("└", "▲")
        k = next(i for i, ln in enumerate(chart) if ln.lstrip().startswith(corner))
        origin = chart[k].index(corner) + 1
        cols, sub = width - origin - 1, (1 if ascii else 2)
        lo, hi = math.log10(min(lrs)), math.log10(max(lrs))
        at = (chart[k + 2].index(arrow) - origin) * sub  # the arrow's first dot column
        dots = cols * sub - 1
        x = lo + (at + (sub - 1) / 2) / dots * (hi - lo)  # the LR at the centre of the arrow's cell
        assert abs(x - math.log10(sug)) <= (sub / 2 + 0.5) / dots * (hi - lo), (width, ascii)
        assert f"{sug:.3g}" in chart[k + 2]


# ---------------------------------------------------------------------------------------------------------------
# the robust rule's reading near the noise band's edges
# ---------------------------------------------------------------------------------------------------------------
_LRS = np.logspace(-6, 1, 100)
_Z = np.random.default_rng(1).normal(0, 1, 100)
#: (base curve, noise scale): a noise ratio just above the band's low edge (a back-off scaled by a hair, 0.9992 of a
#: decade, 0.499 of half a decade) or just below its high edge (a back-off of almost nothing).
_NEAR_EDGES = {
    "explosion, just above 0.07": (1 / (1 + _LRS / 1e-3) + (_LRS / 0.3) ** 2, 0.0984),
    "plateau, just above 0.07": (1 / (1 + _LRS / 1e-3), 0.0995),
    "plateau, just below 0.10": (1 / (1 + _LRS / 1e-3), 0.1505),
}


def _near_edge(name: str) -> FinderResult:
    base, scale = _NEAR_EDGES[name]
    r = FinderResult(lrs=list(_LRS), losses=list(base + scale * _Z), start_lr=1e-6, end_lr=10.0)
    low, high = ROBUST_NOISE_BAND
    assert r.noise_scaled and (low < r.noise < low + 3e-4 or high - 3e-4 < r.noise < high), r.noise  # the case
    return r


def _rounds_to(text: str, value: float) -> bool:
    """``text`` is ``value`` rounded to the significant digits ``text`` shows."""
    digits = len(text.lstrip("0.").replace(".", "")) or 1
    return float(text) == float(f"{value:.{digits}g}")


@pytest.mark.parametrize("name", list(_NEAR_EDGES))
def test_curve_row_reads_the_noise_and_back_off_on_their_own_side_of_the_edges(name: str) -> None:
    # Bug: the row said "noise 0.07, noise-dominated: back off 1 decades" for a noise of 0.07002 and a back-off of
    # 0.9992 decades: at the printed precision the noise sat on the band's edge (<= 0.07 keeps the back-off in full)
    # and the back-off was the full decade, while the words said it was scaled (and "decades" that it was not 1).
    r = _near_edge(name)
    row = _curve_reading(r)
    noise = re.search(r"noise ([0-9.]+)", row).group(1)
    back = re.search(r"back off ([0-9.e-]+) (decades?)\b", row)
    low, high = ROBUST_NOISE_BAND
    assert (float(noise) > low) == (r.noise > low) and (float(noise) < high) == (r.noise < high), row
    assert abs(float(noise) - r.noise) < 10 ** -(len(noise.split(".")[1])), row  # it rounds to the noise
    full = {"explosion": 1.0, "plateau": 0.5}[r.regime]
    assert float(back.group(1)) < full and _rounds_to(back.group(1), r.backoff), row
    assert back.group(2) == ("decade" if back.group(1) == "1" else "decades"), row


@pytest.mark.parametrize("name", list(_NEAR_EDGES))
def test_legend_names_a_scaled_back_off_that_is_not_the_full_one(name: str) -> None:
    # Bug: the legend said "a decade below the minimum (noisy curve)" for a back-off of 0.9992 decades, and "0.5
    # decades below the minimum (noisy curve)" for 0.499 on a plateau (whose unscaled back-off is half a decade).
    r = _near_edge(name)
    fig = plot_finder(r)
    label = next(t.get_text() for t in fig.axes[0].get_legend().get_texts() if t.get_text().startswith("suggestion"))
    plt.close(fig)
    m = re.search(r", ([0-9.e-]+) decades below the minimum \(noisy curve\)", label)
    assert m is not None, label
    full = {"explosion": 1.0, "plateau": 0.5}[r.regime]
    assert float(m.group(1)) < full and _rounds_to(m.group(1), r.backoff), label


# ---------------------------------------------------------------------------------------------------------------
# lrkit schedule: the table, the summary and the picture against the closed forms and torch
# ---------------------------------------------------------------------------------------------------------------
def _blend(w: int, f: Any) -> Any:
    """A linear warmup from 0 over ``w`` steps that blends into the live value ``f(t)``."""
    return lambda t: f(t) * t / w if t < w else f(t)


def _sgdr(t: int, t0: int = 10, mult: int = 2) -> float:
    length = t0
    while t >= length:
        t, length = t - length, length * mult
    return 0.1 * (1 + math.cos(math.pi * t / length)) / 2


def _triangular2(t: int) -> float:
    cycle = math.floor(1 + t / 20)
    x = abs(t / 10 - 2 * cycle + 1)
    return 0.001 + 0.099 * max(0.0, 1 - x) / 2 ** (cycle - 1)


def _ultralytics(t: int) -> float:  # cos_lr, lrf=0.01, lr0=0.01, 10 epochs of 20 steps, warmup 3 epochs
    lf = ((1 - math.cos(t / 20 * math.pi / 10)) / 2) * (0.01 - 1) + 1
    return float(np.interp(t, [0, 60], [0.0, 0.01 * lf])) if t < 60 else 0.01 * lf


S = torch.optim.lr_scheduler
#: spec, run-length options, closed form of the LR at step t (None: torch's only), torch's scheduler (None: none)
_SCHEDULES: list[tuple[str, list[str], Any, Any]] = [
    ("constant lr0=0.1 warmup_steps=10", ["-t", "50"], _blend(10, lambda t: 0.1), None),
    ("step lr0=0.1 step_size=3 gamma=0.5", ["-e", "10", "-n", "7"], lambda t: 0.1 * 0.5 ** (t // 21),
     lambda o: S.StepLR(o, 21, 0.5)),
    ("step lr0=0.1 step_size=30 gamma=0.1 unit=step warmup_epochs=0.5", ["-e", "4", "-n", "20"],
     _blend(10, lambda t: 0.1 * 0.1 ** (t // 30)), None),
    ("multistep lr0=0.1 milestones=2,5 gamma=0.1", ["-e", "8", "-n", "10"],
     lambda t: 0.1 * 0.1 ** ((t >= 20) + (t >= 50)), lambda o: S.MultiStepLR(o, [20, 50], 0.1)),
    ("exponential lr0=0.1 gamma=0.9", ["-e", "5", "-n", "4"], lambda t: 0.1 * 0.9 ** (t / 4), None),
    ("polynomial lr0=0.1 power=2", ["-t", "100"], lambda t: 0.1 * (1 - t / 100) ** 2,
     lambda o: S.PolynomialLR(o, 100, 2.0)),
    ("linear lr0=0.1 lrf=0.01", ["-t", "100"], lambda t: 0.1 * (1 - 0.99 * t / 100),
     lambda o: S.LinearLR(o, 1.0, 0.01, 100)),
    ("cosine lr0=0.1 eta_min=0.001", ["-t", "100"], lambda t: 0.001 + 0.099 * (1 + math.cos(math.pi * t / 100)) / 2,
     lambda o: S.CosineAnnealingLR(o, 100, 0.001)),
    ("cosine lr0=0.01 lrf=0.01 warmup_epochs=3", ["-e", "100", "-n", "50"],
     _blend(150, lambda t: 0.01 * (0.01 + 0.99 * (1 + math.cos(math.pi * t / 5000)) / 2)), None),
    ("cosine_restarts lr0=0.1 T_0=2 T_mult=2", ["-e", "14", "-n", "5"], _sgdr,
     lambda o: S.CosineAnnealingWarmRestarts(o, 10, 2)),
    ("cyclic base_lr=0.001 max_lr=0.1 step_size_up=10 mode=triangular2", ["-t", "100"], _triangular2,
     lambda o: S.CyclicLR(o, 0.001, 0.1, 10, mode="triangular2")),  # momentum cycled, as lrkit's default
    ("onecycle max_lr=0.1", ["-e", "10", "-n", "20"], None, lambda o: S.OneCycleLR(o, 0.1, total_steps=200)),
    ("wsd lr0=0.001 warmup_steps=10 decay_frac=0.2", ["-t", "100"],
     lambda t: 0.001 * (t / 10 if t < 10 else 1.0 if t < 80 else (1 + math.cos(math.pi * (t - 80) / 20)) / 2), None),
    ("linear_to_zero lr0=0.1 warmup_steps=10", ["-t", "100"],
     lambda t: 0.1 * (t / 10 if t < 10 else (100 - t) / 90), None),
    ("inverse_sqrt lr0=0.1 warmup_steps=10", ["-t", "100"],
     lambda t: 0.1 * (t / 10 if t < 10 else 1 / math.sqrt(t / 10)), None),
    ("plateau lr0=0.1 warmup_steps=10", ["-t", "50"], lambda t: 0.1 * min(1.0, t / 10), None),
    ("ultralytics lr0=0.01 lrf=0.01 cos_lr=true", ["-e", "10", "-n", "20"], _ultralytics, None),
]


def _torch_run(make: Any, n: int) -> tuple[list[float], list[float]]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sched = make(opt)
    lrs, moms = [], []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return lrs, moms


@pytest.mark.parametrize(("spec", "args", "closed", "make"), _SCHEDULES, ids=[s[0] for s in _SCHEDULES])
def test_lrkit_schedule_table_summary_and_picture(spec: str, args: list[str], closed: Any, make: Any) -> None:
    keys = {"-t": "total_steps", "-e": "epochs", "-n": "steps_per_epoch"}
    s = from_spec(spec, **{keys[a]: float(v) for a, v in zip(args[::2], args[1::2])})
    n = s.total_steps
    lr = [s.lr(t) for t in range(n)]
    if closed is not None:
        np.testing.assert_allclose(lr, [closed(t) for t in range(n)], rtol=1e-10, atol=1e-15)
    mom = [s.momentum(t) for t in range(n)]
    if make is not None:  # the README's "same as" column
        torch_lr, torch_mom = _torch_run(make, n)
        np.testing.assert_allclose(lr, torch_lr, rtol=1e-10, atol=1e-15)
        if mom[0] is not None:
            np.testing.assert_allclose(mom, torch_mom, rtol=1e-10)
    res = runner.invoke(build_app(), ["schedule", spec, *args, "--no-plot", "--no-chart"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    spe = s.steps_per_epoch
    rows = [[c.strip() for c in ln.strip("│").split("│")] for ln in res.output.splitlines() if ln.startswith("│")]
    assert rows, res.output
    for cells in rows:
        a, b = map(int, cells[1].split("–"))
        k = 2
        if spe:
            assert cells[2] == f"{a / spe:.4g}–{(b + 1) / spe:.4g}", cells
            k = 3
        assert cells[k:k + 2] == [f"{lr[a]:.4g}", f"{lr[b]:.4g}"], cells
        if mom[0] is not None:
            assert cells[k + 2:k + 4] == [f"{mom[a]:.4g}", f"{mom[b]:.4g}"], cells
    spans = [tuple(map(int, c[1].split("–"))) for c in rows]  # the phases tile the run
    assert spans[0][0] == 0 and spans[-1][1] == n - 1
    assert all(end + 1 == start for (_, end), (start, _) in itertools.pairwise(spans)), spans
    i_max, i_min = int(np.argmax(lr)), int(np.argmin(lr))
    summary = f"max {lr[i_max]:.4g} at step {i_max} · min {lr[i_min]:.4g} at step {i_min} · final {lr[-1]:.4g}"
    assert summary in res.output
    # the picture: every point drawn is the schedule's own LR at its own step, every step there
    fig = plot_schedule_of(s)
    xs, ys = fig.axes[0].get_lines()[0].get_data()
    plt.close(fig)
    assert list(xs) == list(range(n)) and list(ys) == lr


def plot_schedule_of(s: Any) -> Any:
    from lrkit.plots.schedule import plot_schedule

    return plot_schedule([sampled_record(s)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_schedule_table_epochs_of_a_long_run_keep_their_whole_digits() -> None:
    # Bug: a 20 000-epoch run that drops at epoch 12345 printed its phases' epochs as "0–1.234e+04" and
    # "1.234e+04–2e+04": four significant digits put the boundary at 12340, five epochs from where the steps column
    # (and the schedule) has it. Every whole digit is kept now, with 4 significant ones at least.
    res = runner.invoke(build_app(), ["schedule", "step lr0=0.1 step_size=12345", "-e", "20000", "-n", "1",
                                      "--no-plot", "--no-chart"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = [[c.strip() for c in ln.strip("│").split("│")] for ln in res.output.splitlines() if ln.startswith("│")]
    assert [r[1:3] for r in rows] == [["0–12344", "0–12345"], ["12345–19999", "12345–20000"]]
    res = runner.invoke(build_app(), ["schedule", "cosine lr0=0.1 warmup_steps=1", "-e", "12345.5", "-n", "2",
                                      "--no-plot", "--no-chart"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = [[c.strip() for c in ln.strip("│").split("│")] for ln in res.output.splitlines() if ln.startswith("│")]
    assert [r[2] for r in rows] == ["0–0.5", "0.5–12345.5"]  # (24 691 steps of 2 a epoch)
