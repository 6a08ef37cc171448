"""`lrkit schedule` on long runs (bounded, exact at every jump; per-step JSON streamed), the `--list` unit column, and
what a bug hunt of `lrkit schedule` found: each test failed before its fix."""

from __future__ import annotations

import io
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import Schedule, available, from_spec
from lrkit.schedules.report import key_points, sample_steps, sampled_record, write_json


def run(*args: str) -> Any:
    return CliRunner().invoke(build_app(), ["schedule", *args])


def _clean_failure(res: Any, match: str) -> None:
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)


# --------------------------------------------------------------------------------------------------------------
# 1. a long run is sampled, exactly, with every jump kept
# --------------------------------------------------------------------------------------------------------------
LONG = 120_000  # long enough to be sampled at max_points=600, short enough to check against the full record
JUMPY = [
    "step lr0=0.1 step_size=7 gamma=0.9 unit=step",  # a jump every 7 steps: 17 143 edges, more than max_points
    "multistep lr0=0.1 milestones=1000,5000,5001,90000 gamma=0.5 unit=step",
    "cosine_restarts lr0=0.1 T_0=1234 T_mult=2 unit=step warmup_steps=50",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=333.5",  # fractional half cycles: peaks between whole steps
    "wsd lr0=1e-3 warmup_steps=1001 decay_frac=0.13",
    "onecycle max_lr=0.1 three_phase=true",
    "cosine lr0=0.1 lrf=0.01 interval=epoch warmup_epochs=2",  # an epoch staircase inside a blended warmup
    "step lr0=0.1 step_size=10 gamma=0.5 interval=epoch warmup_steps=777 warmup_prefix=true",
    "linear lr0=0.1 warmup_steps=500 warmup_bias_lr=0.3 cooldown_steps=999",  # a bias curve and a cooldown
]


def _jumps(lrs: list[float]) -> list[int]:
    """Steps t where the LR jumps: a change more than twice the changes on either side (a staircase edge, a restart),
    where a smooth curve changes by about as much from one step to the next."""
    d = [0.0, *(abs(b - a) for a, b in itertools.pairwise(lrs)), 0.0]
    return [t for t in range(1, len(lrs)) if d[t] > 1e-12 and d[t] > 2 * max(d[t - 1], d[t + 1])]


@pytest.mark.parametrize("spec", JUMPY)
def test_a_sampled_record_is_exact_at_its_steps_and_keeps_both_sides_of_every_jump(spec: str) -> None:
    s = from_spec(spec, total_steps=LONG, steps_per_epoch=1000)
    full = s.record()
    rec = sampled_record(s, max_points=600)
    at = rec["steps"]
    assert at == sorted(set(at)) and at[0] == 0 and at[-1] == LONG - 1 and rec["total_steps"] == LONG
    assert len(at) < LONG // 3  # bounded: not one value per step
    assert rec["lr"] == [full["lr"][t] for t in at]  # the exact per-step values, not approximations
    assert rec["momentum"] == [full["momentum"][t] for t in at]
    if "lr_bias" in full:
        assert rec["lr_bias"] == [full["lr_bias"][t] for t in at]
    held = set(at)
    for t in _jumps(full["lr"]):  # the last value before each jump and the first after it
        assert t - 1 in held and t in held, t
    for ph in rec["phases"]:
        assert ph["start"] in held and (ph["end"] is None or ph["end"] - 1 in held)
    assert rec["phases"] == full["phases"]
    # the table reads the same from it as from the full record (phases, min, max, first, last)
    assert key_points(rec) == key_points(full)


def test_a_short_run_is_recorded_whole_as_record_does() -> None:
    s = from_spec("onecycle max_lr=0.1", total_steps=5_000)
    rec = sampled_record(s)
    full = s.record()
    assert rec["steps"] == list(range(5_000))
    assert {k: v for k, v in rec.items() if k != "steps"} == full
    base = from_spec("cosine lrf=0.1", total_steps=300)
    assert sampled_record(base, base_lr=0.5)["lr"] == base.record(base_lr=0.5)["lr"]


def test_sample_steps_are_bounded_by_the_grid_and_the_boundaries() -> None:
    s = from_spec("cosine lr0=0.1", total_steps=10_000_000)
    steps = sample_steps(s, 10_000_000, max_points=1_000)
    assert len(steps) <= 1_000 + 6 and steps[0] == 0 and steps[-1] == 9_999_999
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert max(gaps) <= math.ceil(9_999_999 / 999)
    with pytest.raises(ValueError, match="max_points=0"):
        sample_steps(s, 10, max_points=0)


def test_the_plot_of_a_sampled_record_draws_the_values_at_their_steps() -> None:
    s = from_spec("step lr0=0.1 step_size=1000 gamma=0.5 unit=step", total_steps=2_000_000)
    rec = sampled_record(s, max_points=3_000)
    fig = plot_schedule(rec)
    line = fig.axes[0].get_lines()[0]
    xs, ys = [int(x) for x in line.get_xdata()], list(line.get_ydata())
    assert xs[-1] == 1_999_999 and len(xs) <= 20_000
    assert ys == [s.lr(t) for t in xs]  # each point is the schedule's value at its own step
    assert {999, 1000, 1_998_999, 1_999_000} <= set(xs)  # both sides of the edges
    spans = [p for p in fig.axes[0].patches]
    assert len(spans) == 0  # 2000 levels: too many to shade (as for a full record), and no crash on total_steps


class _Counting:
    """Count the schedule evaluations (``Schedule._eval``) made while it is active."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = Schedule._eval

        def counted(sched: Schedule, t: float, bias: bool) -> float:
            self.calls += 1
            return original(sched, t, bias)

        monkeypatch.setattr(Schedule, "_eval", counted)


# Bug: `lrkit schedule ... -t 10000000` took ~14 s and ~1 GB: the table and the picture were drawn from
# Schedule.record(), one LR and one momentum per step, 10 million of each.
def test_the_cli_evaluates_a_long_run_at_a_bounded_number_of_steps(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    def no_record(*a: Any, **k: Any) -> None:
        raise AssertionError("record() materialises every step")

    monkeypatch.setattr(Schedule, "record", no_record)
    count = _Counting(monkeypatch)
    out = tmp_path / "lr.png"
    res = run("cosine lr0=0.1 warmup_steps=1000", "-t", "2000000", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert count.calls < 50_000  # ~20 000 grid steps and the boundaries, not 2 000 000
    for text in ("warmup", "0–999", "1000–1999999", "max 0.1 at step 1000", "final 0.001"):
        assert text in res.output


def test_the_table_of_a_long_run_equals_the_table_of_its_full_record() -> None:
    spec = "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1500 mode=triangular2"
    res = CliRunner().invoke(build_app(), ["schedule", spec, "-t", "300000", "--no-plot"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    full = key_points(from_spec(spec, total_steps=300_000).record())
    assert f"max {full['max']['lr']:.4g} at step {full['max']['step']}" in res.output
    assert f"min {full['min']['lr']:.4g} at step {full['min']['step']}" in res.output
    assert f"… {len(full['phases']) - 16} more" in res.output
    last = full["phases"][-1]
    assert f"{last['phase']} " in res.output and f"{last['start']}–{last['end']}" in res.output


def test_json_of_a_long_run_is_streamed_in_chunks_and_equals_the_full_record() -> None:
    s = from_spec("step lr0=0.1 step_size=3 gamma=0.5 warmup_steps=5 momentum=0.9", total_steps=1_000,
                  steps_per_epoch=10)

    class Chunks(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            Chunks.writes += 1
            return super().write(text)

    buf = Chunks()
    write_json(s, buf, chunk_size=64)
    rec = s.record()
    assert buf.getvalue() == json.dumps({"lr": rec["lr"], "momentum": rec["momentum"]}) + "\n"  # byte for byte
    assert Chunks.writes >= 2 * (1_000 // 64)  # written a chunk at a time, never as one string
    with pytest.raises(ValueError, match="at step 47 is inf"):
        write_json(from_spec("exponential lr0=1e300 gamma=1.5 unit=step", total_steps=80), io.StringIO())


def test_cli_json_never_builds_the_full_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_record(*a: Any, **k: Any) -> None:
        raise AssertionError("record() materialises every step")

    ref = from_spec("onecycle max_lr=0.1", total_steps=30_000)
    expected = json.dumps({"lr": ref.record()["lr"], "momentum": ref.record()["momentum"]}) + "\n"
    monkeypatch.setattr(Schedule, "record", no_record)
    res = run("onecycle max_lr=0.1", "-t", "30000", "--json")
    assert res.exit_code == 0, res.output
    assert res.stdout == expected


def test_an_overflow_in_a_long_run_names_its_first_step_not_the_next_sample() -> None:
    spec = "exponential lr0=1e300 gamma=1.0001 unit=step"
    s = from_spec(spec, total_steps=1_000_000)
    first = next(t for t in range(189_000, 191_000) if math.isinf(s.lr(t)))  # 1e300 * 1.0001**t passes 1.8e308
    assert math.isfinite(s.lr(first - 1))
    _clean_failure(run(spec, "-t", "1000000", "--no-plot"), f"the LR is not finite from step {first} on")
    res = run(spec, "-t", "1000000", "--json")
    _clean_failure(res, f"step {first}")
    assert "Infinity" not in res.output and '{"lr"' not in res.output  # refused before any JSON is written


# --------------------------------------------------------------------------------------------------------------
# 4. `--list`: the unit column shows a unit only for families that take unit=
# --------------------------------------------------------------------------------------------------------------
def test_list_shows_no_unit_for_families_without_unit_parameter() -> None:
    # Bug: 'constant', 'linear_to_zero', 'plateau', 'ultralytics' (and 'onecycle', 'wsd') showed "step", but they take
    # no unit= (`constant lr0=0.1 unit=epoch` is "unknown constant parameter 'unit'"); the README shows "–".
    res = CliRunner().invoke(build_app(), ["schedule", "--list"], env={"COLUMNS": "250"})
    assert res.exit_code == 0
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in res.output.splitlines() if line.startswith("│")}
    for e in available():
        unit = rows[e.name][1]
        if "unit" in e.parameters:
            assert unit == e.unit, e.name
            spec = f"{e.name} unit={'epoch' if unit == 'step' else 'step'}"
            assert "unknown" not in run(spec, "-t", "10", "-n", "10", "--no-plot").output
        else:
            assert unit == "–", e.name
            assert f"unknown {e.name} parameter 'unit'" in run(f"{e.name} unit=step", "-t", "10", "--no-plot").output


# --------------------------------------------------------------------------------------------------------------
# bug hunt
# --------------------------------------------------------------------------------------------------------------
def test_out_with_an_unexpanded_tilde_writes_to_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    # Bug: `--out=~/lr.png` (no shell expands ~ after "=") wrote ./~/lr.png, a folder literally named "~" in the
    # working directory; `lrkit find --out` already expanded it.
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    res = run("cosine lr0=0.1", "-t", "10", "--out=~/lr.png")
    assert res.exit_code == 0, res.output
    assert (home / "lr.png").read_bytes()[:4] == b"\x89PNG"
    assert not (work / "~").exists()


@pytest.mark.parametrize("total", ["1e6", "2000000.0"])
def test_total_steps_may_be_written_in_scientific_notation(total: str) -> None:
    # Bug: `-t 1e6` was "'1e6' is not a valid integer", while epochs=1e1 is fine for `lrkit train` and a spec's own
    # total_steps=1e6 is fine too.
    res = run("cosine lr0=0.1", "-t", total, "--no-plot")
    assert res.exit_code == 0, res.output
    n = int(float(total))
    assert f"{n} steps" in res.output and f"0–{n - 1}" in res.output


def test_a_fractional_total_steps_names_the_value() -> None:
    _clean_failure(run("cosine lr0=0.1", "-t", "2.5", "--no-plot"), "--total-steps 2.5 must be a whole number")


def test_out_help_names_every_format() -> None:
    res = CliRunner().invoke(build_app(), ["schedule", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    line = next(x for x in res.output.splitlines() if "--out" in x)
    assert all(fmt in line for fmt in (".png", ".pdf", ".svg"))  # the suffix picks the format, not only PNG
