"""Four loose ends (session 27b).

1. The schedule picture shaded its last phase to step ``total_steps``, one step past the last step it draws
   (``total_steps - 1``), so the x axis ran a step past the run (a 3-step run showed an empty step 3).
2. A one-cycle over 1-3 steps: its LRs are torch's ``OneCycleLR``'s (finite, within [min, max_lr]); what looked
   odd was the picture's axis running past the run (1.).
3. ``_constant_note`` on an (N, H, W) image .npz or a wide CSV with many constant pixels: it counts them and names
   a few, instead of a drop= list of every column.
4. ``--jobs`` above ``os.cpu_count()``: one warning on stderr naming both, and that many processes at most.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar

import matplotlib
import numpy as np
import pytest

from _helpers import bench_script, keep_torch_threads  # noqa: F401 (a fixture, used through usefixtures)

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import from_spec
from lrkit.schedules.report import sampled_record
from lrkit.train.data import load_data


# ----------------------------------------------------------------------------------------- 1. the phase shading
def _spans(ax: Any) -> list[tuple[float, float]]:
    """The x extent (data coordinates) of each shaded phase on ``ax``, in drawing order."""
    out = []
    for p in ax.patches:
        xs = p.get_path().transformed(p.get_patch_transform()).vertices[:, 0]
        out.append((float(xs.min()), float(xs.max())))
    return out


@pytest.mark.parametrize(("spec", "n"), [
    ("cosine lr0=0.1 warmup_steps=10", 100),
    ("wsd lr0=0.1 warmup_steps=10 decay_frac=0.2", 100),
    ("wsd lr0=0.1 warmup_steps=100 decay_frac=0.3", 200_000),  # sampled: the values at a few thousand steps
    ("onecycle max_lr=0.1", 50),
    ("step lr0=0.1 step_size=3 gamma=0.5 unit=step", 10),  # a last phase one step long
])
@pytest.mark.parametrize("as_schedule", [False, True])
def test_every_phase_is_shaded_up_to_the_last_step_drawn_and_no_further(spec: str, n: int, as_schedule: bool) -> None:
    s = from_spec(spec, total_steps=n)
    fig = plot_schedule(s if as_schedule else (s.record() if n <= 1000 else sampled_record(s)))
    try:
        for ax in fig.axes[:2]:  # the LR panel and the momentum panel (one-cycle) are shaded alike
            if not ax.get_ylabel():
                continue
            spans = _spans(ax)
            last = float(fig.axes[0].get_lines()[0].get_xdata()[-1])
            assert last == n - 1
            expected = [(float(p.start), float(min(p.end, n - 1))) for p in s.phases]
            assert spans == expected, (spans, expected)
            assert max(hi for _, hi in spans) == last  # the shading ends where the schedule does
            fig.canvas.draw()
            hi = ax.get_xlim()[1]
            assert hi < last + 0.06 * last  # the axis ends at the run's last step and its 5% margin, not past it
    finally:
        plt.close(fig)


def test_an_open_ended_schedule_recorded_for_n_steps_is_shaded_to_its_last_step() -> None:
    rec = from_spec("cosine lr0=0.1 warmup_steps=5 epochs=2 steps_per_epoch=20").record(steps=30)
    fig = plot_schedule(rec)
    try:
        assert max(hi for _, hi in _spans(fig.axes[0])) == 29.0
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------- 2. one-cycle over 1-3 steps
@pytest.mark.parametrize("extra", ["", "three_phase=true", "pct_start=0.9", "anneal_strategy=linear"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_one_cycle_of_one_to_three_steps_matches_torch_and_is_drawn_within_its_run(n: int, extra: str) -> None:
    torch = pytest.importorskip("torch")
    s = from_spec(f"onecycle max_lr=0.1 {extra}", total_steps=n)
    lrs = s.record()["lr"]
    low = 0.1 / 25 / 1e4
    assert all(math.isfinite(v) and low * (1 - 1e-9) <= v <= 0.1 for v in lrs), lrs
    # the values are torch's OneCycleLR's, step for step (the contract: each schedule against the torch scheduler)
    kw: dict[str, Any] = dict(item.split("=") for item in extra.split()) if extra else {}
    kw = {k: (v == "true") if v in ("true", "false") else float(v) if k == "pct_start" else v for k, v in kw.items()}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=n, **kw)
    torch_lrs = []
    for i in range(n):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if i < n - 1:
            ref.step()
    assert lrs == pytest.approx(torch_lrs, rel=1e-12, abs=1e-15)
    fig = plot_schedule(s)
    try:
        ax = fig.axes[0]
        fig.canvas.draw()
        lo, hi = ax.get_xlim()
        assert max(t for t in ax.get_xticks() if lo <= t <= hi) == n - 1  # the axis ends at the run's last step
        assert max(x1 for _, x1 in _spans(ax)) == n - 1
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------ 3. many constant features
def _digits_with_border(pad: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 120
    core = rng.integers(1, 16, size=(n, 8, 8)).astype(np.float32)  # no constant pixel inside
    x = np.pad(core, ((0, 0), (pad, pad), (pad, pad)))  # a blank border: every border pixel is 0
    return x, rng.integers(0, 3, size=n)


def _notes_about_constants(notes: list[str]) -> list[str]:
    return [n for n in notes if "one value on the train split" in n]


def test_an_image_npz_with_a_blank_border_counts_its_constant_pixels(tmp_path: Path) -> None:
    x, y = _digits_with_border()
    np.savez(tmp_path / "img.npz", x=x, y=y)
    (note,) = _notes_about_constants(load_data(str(tmp_path / "img.npz"), val=0.25, seed=0).info.notes)
    constant = 12 * 12 - 8 * 8
    assert f"{constant} of the 144 features" in note, note
    assert f"and {constant - 5} more" in note, note  # the first few named, the rest counted
    assert len(note) < 240, note


def test_a_wide_csv_with_many_constant_columns_names_a_few_and_counts_the_rest(tmp_path: Path) -> None:
    x, y = _digits_with_border()
    flat = x.reshape(len(x), -1)
    header = ",".join(f"px{i}" for i in range(flat.shape[1])) + ",label"
    rows = [",".join(str(float(v)) for v in row) + f",{c}" for row, c in zip(flat, y)]
    (tmp_path / "wide.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    (note,) = _notes_about_constants(load_data(str(tmp_path / "wide.csv"), val=0.25, seed=0).info.notes)
    assert "80 of the 144 feature columns hold one value on the train split" in note, note
    assert "'px0', 'px1', 'px2', 'px3', 'px4' and 75 more" in note, note
    assert "'px5'" not in note and "'px143'" not in note, note  # no list of every column (drop=[...80 names])
    assert "drop=" in note  # the way to leave them out is still said


def test_many_constant_columns_that_move_on_val_are_counted_too(tmp_path: Path) -> None:
    x, y = _digits_with_border()
    flat = x.reshape(len(x), -1)
    header = ",".join(f"px{i}" for i in range(flat.shape[1])) + ",label"

    def write(name: str, data: np.ndarray) -> Path:
        rows = [",".join(str(float(v)) for v in row) + f",{c}" for row, c in zip(data, y)]
        (tmp_path / name).write_text(header + "\n" + "\n".join(rows) + "\n")
        return tmp_path / name

    va = flat.copy()
    va[::2, :12] = 7.0  # the top row of the border is not blank on the validation split
    (tmp_path / "d.yaml").write_text(f"train: {write('tr.csv', flat)}\nval: {write('va.csv', va)}\n")
    (note,) = _notes_about_constants(load_data(str(tmp_path / "d.yaml"), val=0.25, seed=0).info.notes)
    assert "12 of them differ on the validation split" in note, note
    assert "'px5'" not in note, note


def test_a_few_constant_columns_keep_the_named_note(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 3))
    x = np.concatenate([a, np.zeros((60, 2))], 1)
    np.savez(tmp_path / "d.npz", x=x, y=(a[:, 0] > 0).astype(int))
    (note,) = _notes_about_constants(load_data(str(tmp_path / "d.npz"), val=0.25, seed=0).info.notes)
    assert note == "d.npz: features 3, 4 (0-based) of x hold one value on the train split: they teach the model nothing"


# --------------------------------------------------------------------------------------- 4. --jobs over the CPUs
class _InlinePool:
    """A stand-in for ProcessPoolExecutor that records its size and runs each call at once, in this process."""

    sizes: ClassVar[list[int]] = []

    def __init__(self, max_workers: int, **kwargs: Any) -> None:
        _InlinePool.sizes.append(max_workers)

    def __enter__(self) -> _InlinePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        fut.set_result(fn(*args))
        return fut


def _fake_run(name: str, lr: float, seed: int) -> dict[str, Any]:
    """A training run's record without training: a loss with its best at lr=1e-2, a little noise per seed."""
    return {"val_loss": (math.log10(lr) + 2) ** 2 + 0.01 * ((seed * 7 + round(math.log10(lr) * 4)) % 5),
            "diverged": False, "steps": 1, "seconds": 0.0}


def _noise_floor(argv: list[str], tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    mod = bench_script("noise_floor", monkeypatch)
    # the _suite module noise_floor's functions run in: under --doctest-modules another copy of benchmarks/_suite.py
    # may have replaced sys.modules["_suite"] since noise_floor was first imported, so patch the one it holds
    suite = mod.oracle.__globals__
    monkeypatch.setitem(suite, "RESULTS_DIR", tmp)  # a fresh cache: every run is "trained" (by _fake_run)
    monkeypatch.setitem(suite, "ProcessPoolExecutor", _InlinePool)
    monkeypatch.setitem(suite, "_worker_run", _fake_run)
    monkeypatch.setitem(suite, "_JOBS_WARNED", set())  # warned once a process
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    _InlinePool.sizes = []
    return mod.main(argv)


@pytest.mark.usefixtures("keep_torch_threads")
def test_jobs_above_the_cpu_count_is_capped_with_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    rows = _noise_floor(["--tasks", "wine_mlp,iris_logreg", "--jobs", "64"], tmp_path / "a", monkeypatch)
    err = capsys.readouterr().err
    assert _InlinePool.sizes and set(_InlinePool.sizes) == {3}  # never more processes than CPUs
    warnings = [line for line in err.splitlines() if "--jobs" in line]
    assert len(warnings) == 1, err  # once, though each of the 2 tasks runs 2 oracles
    assert "--jobs 64" in warnings[0] and "3 CPUs" in warnings[0] and "os.cpu_count()" in warnings[0]
    # the same numbers as a run at the CPU count (each run is trained on its own: the count changes only the speed)
    same = _noise_floor(["--tasks", "wine_mlp,iris_logreg", "--jobs", "3"], tmp_path / "b", monkeypatch)
    assert "--jobs" not in capsys.readouterr().err
    assert set(_InlinePool.sizes) == {3}
    assert same == rows


@pytest.mark.usefixtures("keep_torch_threads")
def test_jobs_within_the_cpu_count_is_used_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _noise_floor(["--tasks", "wine_mlp", "--jobs", "2"], tmp_path, monkeypatch)
    assert set(_InlinePool.sizes) == {2}
    assert "--jobs" not in capsys.readouterr().err
