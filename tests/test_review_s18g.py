"""Session 18 review: the text charts (``lrkit.plots.text``), ``lrkit find`` / ``lrkit schedule``'s charts and the
narrow progress bar, pushed with what a range test, a schedule or a user can hand them."""
from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.finder import FinderResult
from lrkit.plots.text import schedule_text, text_chart
from lrkit.schedules import from_spec

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]\d+)?")


def _y_labels(chart: str, height: int) -> tuple[float, float]:
    """The numbers at the top and the bottom of the y axis."""
    rows = chart.splitlines()[:height]
    return float(rows[0].split()[0]), float(rows[-1].split()[0])


def _tick_labels(chart: str, height: int) -> list[float]:
    """The numbers under the x axis (the line after the axis)."""
    return [float(w) for w in chart.splitlines()[height + 1].split()]


def _check_lines(chart: str, width: int) -> None:
    lines = chart.splitlines()
    assert all(len(line) <= width for line in lines), [len(line) for line in lines]


# -- labels that tell their values apart, and sit at them ------------------------------------------------------------
def test_nearly_flat_loss_gets_y_labels_that_differ() -> None:
    # cross-entropy at ln(10) barely moving at tiny LRs: the top and the bottom of the axis read "2.3" and "2.3"
    lrs = list(np.geomspace(1e-7, 1e-5, 30))
    losses = list(np.linspace(2.30265, 2.30255, 30))
    chart = FinderResult(lrs=lrs, losses=losses).text_plot(width=60, height=6, ascii=True)
    top, bottom = _y_labels(chart, 6)
    assert top != bottom, chart
    span = max(losses) - min(losses)
    assert abs(top - max(losses)) <= 0.01 * span and abs(bottom - min(losses)) <= 0.01 * span, chart


@pytest.mark.parametrize("lr0", [1.75e-4, 1.25e-4, 3.15e-5, 1234567.0])
def test_schedule_peak_label_is_the_peak_to_three_digits(lr0: float) -> None:
    # the docstring's "3 significant digits": 1.75e-4 read "0.00018", a peak the schedule never reaches
    chart = from_spec(f"cosine lr0={lr0!r}", total_steps=100).text_plot(width=60, height=6, ascii=True)
    top, _ = _y_labels(chart, 6)
    assert float(f"{lr0:.3g}") == top, chart


def test_tick_labels_are_distinct_and_each_is_its_tick() -> None:
    chart = text_chart([([999_990.0, 1_000_010.0], [1.0, 2.0], "line")], width=60, height=4, ascii=True)
    ticks = _tick_labels(chart, 4)
    assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), chart
    assert all(999_990 <= t <= 1_000_010 for t in ticks), chart
    # each label's tick mark ("+" on the axis) is in the columns the label covers
    axis, text = chart.splitlines()[4], chart.splitlines()[5]
    for m in _NUMBER.finditer(text):
        assert "+" in axis[m.start(): m.end()], (m.group(), chart)


def test_a_tiny_linear_x_range_still_has_ticks_at_their_values() -> None:
    chart = text_chart([([1e-14, 2e-14, 3e-14], [1.0, 2.0, 3.0], "line")], width=60, height=4, ascii=True)
    ticks = _tick_labels(chart, 4)
    assert len(ticks) >= 2 and all(1e-14 * (1 - 1e-9) <= t <= 3e-14 * (1 + 1e-9) for t in ticks), chart


# -- data a range test or a schedule can produce never raises ----------------------------------------------------------
@pytest.mark.parametrize("losses", [[1e20], [1e20] * 30, [-1e20] * 5, [1e300, 1e300]])
def test_a_huge_loss_with_no_spread_is_drawn(losses: list[float]) -> None:
    lrs = list(np.geomspace(1e-4, 1e-1, len(losses)))
    chart = FinderResult(lrs=lrs, losses=losses).text_plot(width=50, height=5, ascii=True)
    _check_lines(chart, 50)
    top, bottom = _y_labels(chart, 5)
    assert bottom < top and bottom <= losses[0] <= top, chart


@pytest.mark.parametrize("series,kwargs", [
    ([([1.0, 2.0], [-1.7e308, 1.7e308], "line")], {}),
    ([([1.0, 2.0], [1.7e308, 1.7e308], "line")], {"y_log": True}),
    ([([1.0, 2.0], [1.7e308, 1.7e308], "line")], {}),
    ([([-1e308, 1e308], [1.0, 2.0], "line")], {}),
    ([([0.0, 5e-324], [1.0, 2.0], "line")], {}),
    ([([1e-300, 1e300], [5e-324, 1e-300], "dots")], {"x_log": True, "y_log": True}),
    ([([1.0, 2.0, 3.0], [5e-324, -0.0, -math.inf], "line")], {}),
])
@pytest.mark.parametrize("width", [40, 200])
def test_extreme_values_never_raise(series: list, kwargs: dict, width: int) -> None:
    chart = text_chart(series, width=width, height=4, ascii=True, **kwargs)
    _check_lines(chart, width)
    assert "*" in chart or "." in chart


def test_nan_x_on_a_log_axis_is_a_gap_and_a_bad_x_is_named() -> None:
    chart = text_chart([([1e-3, math.nan, 1e-1], [1.0, 2.0, 3.0], "dots")], x_log=True, width=40, height=3,
                       ascii=True)
    assert sum(line.count(".") for line in chart.splitlines()[:3]) == 2
    with pytest.raises(ValueError, match=r"series\[0\]: x_log=True needs every x > 0, got -2\.0"):
        text_chart([([1.0, math.nan, -2.0], [1.0, 2.0, 3.0], "line")], x_log=True)


@pytest.mark.parametrize("log_y", [False, True])
def test_nothing_to_draw_invents_no_axis_range(log_y: bool) -> None:
    # a one-step warmup schedule is a single LR of 0: on a log axis there is nothing to draw, and the labels
    # "10" and "1" would be an LR range no step has
    rec = from_spec("cosine lr0=0.01 warmup_steps=1", total_steps=1).record()
    assert rec["lr"] == [0.0]
    chart = schedule_text(rec, width=50, height=4, ascii=True, log_y=log_y)
    _check_lines(chart, 50)
    labels = [float(m.group()) for line in chart.splitlines()[:4] for m in _NUMBER.finditer(line.split("|")[0])]
    words = " ".join(" ".join(chart.splitlines()).split())
    if log_y:
        assert labels == [] and "nothing to draw" in words, chart
    else:
        assert min(labels) <= 0.0 <= max(labels), chart
    nan = text_chart([([1.0, 2.0], [math.nan, math.nan], "line")], width=40, height=3, ascii=True)
    gutter = " ".join(r.split("|")[0] for r in nan.splitlines()[:3])
    assert "nothing to draw" in " ".join(nan.split()) and not _NUMBER.search(gutter), nan


# -- marks ---------------------------------------------------------------------------------------------------------
def test_a_mark_outside_the_data_sits_at_its_value_not_at_the_edge() -> None:
    chart = text_chart([([1.0, 10.0], [1.0, 2.0], "line")], x_log=True, width=60, height=4, ascii=True,
                       marks=[(100.0, "far")])
    lines = chart.splitlines()
    axis = lines[4]
    corner = axis.index("+")
    cols = 60 - corner - 2
    data_right = max(i for r in lines[:4] for i, ch in enumerate(r[corner + 1:]) if ch == "*")
    mark = axis.index("^") - corner - 1
    # 1 .. 10 .. 100 on a log axis: the data's end half-way, the mark at the end
    assert abs(data_right - (cols - 1) / 2) <= 1 and mark == cols - 1, chart
    assert 100.0 in _tick_labels(chart, 4), chart


# -- whole words and whole numbers -------------------------------------------------------------------------------------
def test_axis_names_wrap_at_words_never_cut() -> None:
    r1 = from_spec("cosine", total_steps=100).record()
    r2 = from_spec("linear", total_steps=300).record()
    for n in (2, 12):
        chart = schedule_text([r1, r2] * (n // 2), width=40, height=4, ascii=True)
        _check_lines(chart, 40)
        words = " ".join(line.strip() for line in chart.splitlines()[6:])
        assert f"y: LR multiplier (x peak) ({n} schedules)" in words, chart


_CURVES = {
    "one point": ([1e-3], [2.0]),
    "two points": ([1e-3, 1e-2], [2.0, 1.0]),
    "constant": (list(np.geomspace(1e-5, 1, 40)), [2.0] * 40),
    "repeated lr": ([1e-3] * 12, list(np.linspace(3, 1, 12))),
    "negative": (list(np.geomspace(1e-5, 1, 40)), list(-np.linspace(1, 3, 40))),
    "tiny": (list(np.geomspace(1e-5, 1, 40)), list(np.linspace(3e-300, 1e-300, 40))),
    "wide lr range": (list(np.geomspace(1e-300, 1e300, 40)), list(np.linspace(3, 1, 40))),
    "inf tail": (list(np.geomspace(1e-5, 1, 40)), [*np.linspace(3, 1, 37), math.inf, -math.inf, math.nan]),
}


@pytest.mark.parametrize("name", sorted(_CURVES))
@pytest.mark.parametrize("width,height,ascii", [(40, 3, True), (40, 3, False), (73, 9, True), (1000, 3, True)])
def test_range_test_curves_draw_within_the_width_with_honest_labels(name: str, width: int, height: int,
                                                                    ascii: bool) -> None:
    lrs, losses = _CURVES[name]
    r = FinderResult(lrs=lrs, losses=losses)
    chart = r.text_plot(width=width, height=height, ascii=ascii)
    _check_lines(chart, width)
    finite = [v for v in losses if math.isfinite(v)]
    top, bottom = _y_labels(chart, height)
    assert bottom < top and bottom <= min(finite) + 1e-12 * abs(min(finite)) and top >= min(finite), chart
    ticks = _tick_labels(chart, height)
    assert ticks and all(min(lrs) * (1 - 1e-2) <= t <= max(lrs) * (1 + 1e-2) for t in ticks), chart


# -- the CLI -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("columns", [40, 61, 1000])
def test_lrkit_schedule_compare_of_several_specs_fits_the_terminal(columns: int) -> None:
    args = ["schedule", "cosine lr0=0.01 warmup_steps=50", "-t", "1000", "--compare", "linear_to_zero lr0=0.01",
            "--compare", "wsd lr0=0.01 warmup_steps=10 decay_frac=0.2", "--no-plot", "--log-y"]
    res = CliRunner().invoke(build_app(), args, env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    chart = "\n".join(lines[next(i for i, line in enumerate(lines) if "┤" in line):])
    assert "y: learning rate (3 schedules)" in " ".join(chart.split())
    assert all(len(line) <= min(columns, 100) for line in chart.splitlines()), chart


def test_print_chart_on_an_ascii_console_is_plain_ascii() -> None:
    from rich.console import Console

    from lrkit.cli._common import print_chart

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    con = Console(file=stream, width=80, force_terminal=False)
    print_chart(con, from_spec("cosine lr0=0.01", total_steps=100).text_plot, height=5)
    stream.flush()
    text = raw.getvalue().decode("ascii")
    assert "x: optimizer step" in text and all(len(line) <= 80 for line in text.splitlines())


# -- elsewhere: fixes proposed in /tmp/helper_review_fixes.md ---------------------------------------------------------
def _frame(width: int, info: str, total: int | None, done: int, description: str = "train") -> list[str]:
    from rich.console import Console

    from lrkit.cli._common import progress_bar

    out = io.StringIO()
    with progress_bar(description, total, console_=Console(file=out, width=width, force_terminal=True,
                                                            color_system=None)) as update:
        update(advance=done, info=info)
    frame = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue()).split("\r")[-1]
    return [line.rstrip() for line in frame.split("\n") if line.strip()]


@pytest.mark.parametrize("width,total,done", [(35, 100_000, 0), (37, 1_000_000, 0), (34, 100_000, 5000),
                                              (32, 20_000, 0)])
def test_train_first_frame_keeps_the_step_count_whole(width: int, total: int, done: int) -> None:
    # lrkit train's first report has no fields (info=""); rich pads the count to the total's width ("     0/100000"),
    # which the fit did not count: the count came out as "0/1000…"
    lines = _frame(width, "", total, done)
    assert f"{done}/{total}" in "".join(lines) and "…" not in "".join(lines), lines
    assert all(len(line) <= width for line in lines)


_TASK = '''
import torch
from torch.utils.data import DataLoader, TensorDataset

def model():
    return torch.nn.Linear(4, 3)

def optimizer(params):
    return torch.optim.SGD(params, lr=0.01)

def loss_fn(output, target):
    return output.sum() * 0 + 10.0 ** torch.tensor(float(len(_calls)))  # rises from the first step

_calls = []

def train_loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    class L(DataLoader):
        def __iter__(self):
            for b in super().__iter__():
                _calls.append(1)
                yield b
    return L(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)
'''


def test_lrkit_find_too_short_to_judge_still_draws_the_curve(tmp_path: Path) -> None:
    # the PNG of a curve too short to judge is written ("it is worth a look"); in a terminal the text chart is the
    # look, and it was left out because the command fails before printing it
    task = tmp_path / "t.py"
    task.write_text(_TASK)
    res = CliRunner().invoke(build_app(), ["find", str(task), "--num-steps", "40", "--out", str(tmp_path / "o")],
                             env={"COLUMNS": "80"})
    assert res.exit_code != 0 and "too short to judge" in res.output, res.output
    assert "x: learning rate" in res.output, res.output
