"""Schedules with millions of cycles in O(1) memory (lazy phases), and what a sixth bug hunt of lrkit.schedules found.

Part 1 checks the lazy phase spans against the code they replaced (copied below as the reference, ``_old_*``): the
same phases, sample steps and sampled records, value for value, on short runs of every family that lists a phase per
cycle or level, and their wrappers (warmup, blended warmup, cooldown, re-plans). Part 2 is one test per bug found,
each failing before its fix.
"""

from __future__ import annotations

import copy
import math
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as tls
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import (
    WSD,
    Composed,
    CosineRestarts,
    Cyclic,
    Phase,
    Replanned,
    Schedule,
    StepDecay,
    from_spec,
)
from lrkit.schedules.report import END_PHASES, key_points, sample_steps, sampled_record


# ==============================================================================================================
# The reference: the phase code before the lazy spans, copied as it was (a list, built by accumulating cycles)
# ==============================================================================================================
def _old_spans(s: Schedule) -> list[tuple[str, float, float | None, str]]:
    if isinstance(s, WSD):
        return [("stable" if name == "constant" else name, a, b, k) for name, a, b, k in _old_composed(s)]
    if isinstance(s, Composed):
        return _old_composed(s)
    if isinstance(s, Replanned):
        return [(name, s._unwarp(a), None if b is None else s._unwarp(b), k) for name, a, b, k in _old_spans(s.inner)]
    spans: list[tuple[str, float, float | None, str]] = []
    end = s.total_steps
    if isinstance(s, StepDecay):
        k = 0
        while (k * s.step_size < end) if end is not None else k < 1:
            e = (k + 1) * s.step_size
            spans.append((f"level {k}", float(k * s.step_size), float(e if end is None else min(e, end)), "step"))
            k += 1
        if end is None:
            spans.append((f"level {k}+", float(k * s.step_size), None, "step"))
        return spans
    if isinstance(s, CosineRestarts):
        start, length, i = 0.0, float(s.T_0), 0
        while (start < end) if end is not None else i < 1:
            stop = start + length
            spans.append((f"cycle {i}", start, stop if end is None else min(stop, float(end)), "cos"))
            start, length, i = stop, length * s.T_mult, i + 1
        if end is None:
            spans.append((f"cycle {i}+", start, None, "cos"))
        return spans
    if isinstance(s, Cyclic):
        # a fractional boundary is the first whole step past it (where the formula turns; s14g), a whole one as it is
        whole = float(s.step_size_up).is_integer() and float(s.step_size_down).is_integer()
        start, i = 0.0, 1
        while (start < end) if end is not None else i <= 1:
            mid, stop = start + s.step_size_up, start + s.total_size
            turns = (start, mid, stop) if whole or end is None else (
                s._first_step(i - 1, False), s._first_step(i - 1, True), s._first_step(i, False))
            for name, a, b, kind in ((f"up {i}", turns[0], turns[1], "linear"),
                                     (f"down {i}", turns[1], turns[2], "linear")):
                if end is None or a < end:
                    spans.append((name, a, b if end is None else min(b, float(end)), kind))
            start, i = stop, i + 1
        if end is None:
            spans.append((f"cycles {i}+", start, None, "cyclic"))
        return spans
    return list(s._phase_spans())  # the families whose phases were never a list per cycle


def _old_composed(s: Composed) -> list[tuple[str, float, float | None, str]]:
    spans: list[tuple[str, float, float | None, str]] = []
    w = s.warmup
    shift = float(s._w) if s._prefix else 0.0
    if w is not None:
        spans.append(("warmup", 0.0, float(w.steps), f"warmup-{w.type}"))
    for name, start, end, kind in _old_spans(s.main):
        a, b = start + shift, None if end is None else end + shift
        if w is not None and not s._prefix:
            if b is not None and b <= w.steps:
                continue
            a = max(a, float(w.steps))
        spans.append((name, a, b, kind))
    if s.cooldown is not None:
        cd = s.cooldown
        spans.append((cd.name, float(s._cool_start), float(s.total_steps), f"{cd.name}-{cd.type}"))  # type: ignore[arg-type]
    return spans


def _old_phases(s: Schedule) -> tuple[Phase, ...]:
    out: list[Phase] = []
    for name, start, end, kind in _old_spans(s):
        a = round(start)
        b = None if end is None else round(end)
        if b is not None and b <= a:
            continue
        out.append(Phase(name, a, b, kind, s._safe_eval(a), None if b is None else s._safe_eval(b - 1)))
    return tuple(out)


def _old_sample_steps(s: Schedule, n: int, max_points: int) -> list[int]:
    from lrkit.schedules.report import _epoch_edges

    if n <= max(max_points, 2):
        return list(range(n))
    picked = {round(i * (n - 1) / (max_points - 1)) for i in range(max_points)} if max_points > 1 else set()
    picked.update((0, n - 1))
    bounds: list[float] = []
    for _, start, end, _ in _old_spans(s):
        bounds.append(float(start))
        if end is not None:
            bounds.append(float(end))
    bounds.extend(_epoch_edges(s, 0.0, float(n), max_points) or ())
    for b in bounds:
        if not math.isfinite(b):
            continue
        f = math.floor(b)
        picked.update(t for t in (f - 1, f, math.ceil(b)) if 0 <= t < n)
    return sorted(picked)


# dyadic step sizes (whole steps, halves, quarters): the old accumulated boundaries were exact, so the closed forms
# must give the very same floats
SPECS = [
    "step lr0=0.1 step_size=1 gamma=0.9 unit=step",
    "step lr0=0.1 step_size=7 gamma=0.5 unit=step",
    "step lr0=0.1 step_size=3 gamma=0.5 unit=step warmup_steps=10",
    "step lr0=0.1 step_size=3 gamma=0.5 unit=step warmup_steps=10 warmup_prefix=true cooldown_steps=9",
    "step lr0=0.1 step_size=2 gamma=0.5 interval=epoch warmup_steps=5",
    "cosine_restarts lr0=0.1 T_0=1 unit=step",
    "cosine_restarts lr0=0.1 T_0=5 unit=step warmup_steps=7 cooldown_frac=0.1",
    "cosine_restarts lr0=0.1 T_0=3 T_mult=2 unit=step",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=3 mode=triangular2",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=2.5 step_size_down=1.5",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1.5 step_size_down=1",  # rounds some halves to no step
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1 step_size_down=1.5",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1.25 step_size_down=1.75 mode=exp_range gamma=0.999",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=4 warmup_steps=9 cooldown_steps=11",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=4 warmup_steps=9 warmup_prefix=false",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1.5 step_size_down=1 warmup_steps=6 warmup_prefix=false",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=333.5",
]


def _schedules(spec: str, total: int) -> list[Schedule]:
    """The schedule, and re-plans of it that stretch, shrink and keep its length."""
    s = from_spec(spec, total_steps=total, steps_per_epoch=4)
    out = [s]
    for at, new in ((total // 3, total * 2), (total // 2, total * 3 // 4), (total // 4, total), (0, total + 1)):
        if new > at:
            out.append(s.replan(at_step=at, total_steps=new))
    out.append(out[1].replan(at_step=total // 5, total_steps=total * 3))  # a re-plan of a re-plan, earlier
    return out


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("total", [23, 100, 1777])
def test_lazy_phases_equal_the_old_phase_lists(spec: str, total: int) -> None:
    for s in _schedules(spec, total):
        old = _old_phases(s)
        new = s.phases
        assert len(new) == len(old)
        assert tuple(new) == old and new == old  # every record: name, start, end, kind and both values
        if old:
            assert new[-1] == old[-1] and new[len(old) // 2] == old[len(old) // 2] and new[-len(old)] == old[0]
            assert new[1:4] == old[1:4]
        with pytest.raises(IndexError):
            new[len(old)]


@pytest.mark.parametrize("spec", [s for s in SPECS if "warmup" not in s])
@pytest.mark.parametrize("total", [1, 2, 3])
def test_runs_of_a_step_or_two_have_the_old_phases(spec: str, total: int) -> None:
    s = from_spec(spec, total_steps=total, steps_per_epoch=4)
    assert s.phases == _old_phases(s) and len(s.phases) >= 1


@pytest.mark.parametrize("spec", SPECS)
def test_sample_steps_and_sampled_records_equal_the_old_ones(spec: str) -> None:
    for s in _schedules(spec, 1500):  # > 64 spans: the lazy path; > max_points steps: sampled
        n = s.total_steps
        assert n is not None
        assert sample_steps(s, n, max_points=50) == _old_sample_steps(s, n, 50)
        rec = sampled_record(s, max_points=50)
        assert rec["phases"] == [p.to_dict() for p in _old_phases(s)]
        assert "phase_count" not in rec
        assert rec["lr"] == [s.multiplier(t) * (s.peak_lr or 1.0) for t in rec["steps"]]


@pytest.mark.parametrize("total", [10**6 + 3, 10**7])
def test_non_dyadic_step_sizes_put_each_boundary_where_the_formula_turns(total: int) -> None:
    # 1.1 + 1.1 + ... drifts: the old list accumulated k float additions, the lazy spans compute cycle k from k * C
    # once. A fractional boundary is the first whole step past it, where the formula turns (s14g: it was rounded half
    # to even, which put a step on the wrong side of a turn).
    s = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=1.1 step_size_down=2.2", total_steps=3000)
    old, new = _old_phases(s), s.phases
    assert len(new) == len(old) and new == old
    # the boundary at 49.5: step 49 still falls (down 15), step 50 rises (up 16)
    assert (new[29].name, new[29].end, new[30].start) == ("down 15", 50, 50)
    assert s(49) < s(48) and s(50) > s(49)
    big = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=1.1 step_size_down=2.2", total_steps=total)
    last = big.phases[-1]
    half, k = last.name.split()[0], int(last.name.split()[1]) - 1  # cycle k (from 0) starts at k C, falls at k C + up
    b = k * (1.1 + 2.2) + (1.1 if half == "down" else 0.0)
    assert 0 <= last.start - b < 1 + 1e-6 and last.end == total


# ==============================================================================================================
# O(1) memory in the number of cycles
# ==============================================================================================================
MANY = [
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=2.5 step_size_down=1.5 warmup_steps=100 cooldown_steps=50",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=2 warmup_steps=99 warmup_prefix=false",
    "step lr0=0.1 step_size=1 gamma=0.999999 unit=step warmup_steps=10",
    "cosine_restarts lr0=0.1 T_0=2 unit=step cooldown_frac=0.01",
]


@pytest.mark.parametrize("spec", MANY)
def test_phases_of_a_run_of_millions_of_cycles_cost_no_memory(spec: str) -> None:
    s = from_spec(spec, total_steps=100_000_000)
    tracemalloc.start()
    try:
        phases = s.phases
        n = len(phases)
        last, middle = phases[-1], phases[n // 2]
        replanned = s.replan(at_step=12_345_678, total_steps=150_000_000).phases
        r_last = replanned[-1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n > 1_000_000 and peak < 200_000  # bytes: a handful of records, not 10^7 of them
    assert last.end == 100_000_000 and middle.start < middle.end and r_last.end == 150_000_000
    assert len(replanned) == n  # stretching keeps every phase
    assert [p.name for p in phases[:3]] == [p.name for p in _old_phases(from_spec(spec, total_steps=500))[:3]]


def _count_evals(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = Schedule._eval

    def counted(sched: Schedule, t: float, bias: bool) -> float:
        calls[0] += 1
        return original(sched, t, bias)

    monkeypatch.setattr(Schedule, "_eval", counted)
    return calls


@pytest.mark.parametrize("spec", MANY[:2])
def test_a_sampled_record_of_millions_of_cycles_is_bounded_and_lists_the_ends(
    spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = from_spec(spec, total_steps=10_000_000)
    phases = s.phases
    calls = _count_evals(monkeypatch)
    rec = sampled_record(s, max_points=2_000)
    assert calls[0] < 20_000  # the grid, the ends' boundaries and their records: not a call per phase
    count = len(phases)
    assert rec["phase_count"] == count > 2 * END_PHASES
    kept = [*range(END_PHASES), *range(count - END_PHASES, count)]
    assert rec["phases"] == [phases[k].to_dict() for k in kept]
    held = set(rec["steps"])
    for ph in rec["phases"]:  # each listed phase's first and last step are sampled, so the table is exact
        assert ph["start"] in held and ph["end"] - 1 in held
    assert rec["lr"] == [s.lr(t) for t in rec["steps"]]
    kp = key_points(rec)
    assert kp["phase_count"] == count and len(kp["phases"]) == 2 * END_PHASES


def test_the_cli_table_and_picture_of_millions_of_cycles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Bug (the known hole): `lrkit schedule "cyclic ... step_size_up=1" -t 1e6` took ~16 s and 1.2 GB (1e7 with
    # step_size_up=2: 98 s, 6.2 GB): every phase was listed, recorded and sampled.
    spec = "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1"
    calls = _count_evals(monkeypatch)
    out = tmp_path / "lr.png"
    res = CliRunner().invoke(build_app(), ["schedule", spec, "-t", "1e7", "-o", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert calls[0] < 100_000
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert f"… {10_000_000 - 16} more" in res.output  # counted, not listed: the first and the last 8 are
    for text in ("up 1 ", "down 5000000", "9999999–9999999", "max 0.1 at step 1", "final 0.1"):
        assert text in res.output


def test_the_picture_of_an_elided_record_shades_no_phases() -> None:
    rec = sampled_record(from_spec("step lr0=0.1 step_size=1 gamma=0.99999 unit=step", total_steps=1_000_000),
                         max_points=500)
    assert rec["phase_count"] == 1_000_000 and len(rec["phases"]) == 2 * END_PHASES
    fig = plot_schedule(rec)
    assert len(fig.axes[0].patches) == 0  # 10^6 phases: too many to shade, like any record of more than 40
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "level 0" not in texts


def test_phases_behave_like_the_tuple_they_were() -> None:
    s = from_spec("wsd lr0=1e-3 warmup_steps=10 decay_frac=0.2", total_steps=100)
    ph = s.phases
    assert ph == tuple(ph) and tuple(ph) == ph and ph != list(ph)
    assert hash(ph) == hash(tuple(ph)) and repr(ph).startswith("Phases((Phase(name='warmup'")
    assert ph[::-1][0].name == "decay" and [p.name for p in reversed(ph)] == ["decay", "stable", "warmup"]
    assert ph.index(ph[1]) == 1 and ph[1] in ph and ph.count(ph[0]) == 1
    with pytest.raises(TypeError, match="integers or slices, not str"):
        ph["warmup"]  # type: ignore[index]
    big = from_spec("step lr0=0.1 step_size=1 unit=step", total_steps=10**9).phases
    assert "1000000000 phases" in repr(big)



# ==============================================================================================================
# Part 2: the bug hunt, one test per defect (each failed before its fix)
# ==============================================================================================================
def _sgd(lr: float = 0.1, groups: int = 1) -> torch.optim.Optimizer:
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr * (i + 1)}
                            for i in range(groups)], lr=lr, momentum=0.9)


def _resumed_equals_uninterrupted(build: Any, steps: int, stops: list[int]) -> None:
    """Train ``steps`` steps in one go, and again stopping at each of ``stops``: save the optimizer and the
    scheduler, build both afresh, load (optimizer first, as torch's docs do), go on. Every LR must be the same."""
    opt, sched = build()
    full = []
    for _ in range(steps):
        full.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    for stop in stops:
        opt, sched = build()
        got = []
        for _ in range(stop):
            got.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
        saved_opt, saved_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
        opt, sched = build()
        opt.load_state_dict(saved_opt)
        sched.load_state_dict(saved_sched)
        for _ in range(stop, steps):
            got.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
        bad = [t for t in range(steps) if got[t] != pytest.approx(full[t], rel=1e-12)]
        assert not bad, f"resumed at step {stop}: step {bad[0]} has LRs {got[bad[0]]}, not {full[bad[0]]}"


def _torch_warmup_then_lrkit() -> tuple[torch.optim.Optimizer, Any]:
    opt = _sgd(groups=2)
    warm = tls.LinearLR(opt, start_factor=0.1, total_iters=5)
    main = from_spec("cosine lrf=0.1", total_steps=20).to_torch(opt)
    return opt, tls.SequentialLR(opt, [warm, main], milestones=[5])


def _lrkit_then_torch() -> tuple[torch.optim.Optimizer, Any]:
    opt = _sgd(groups=2)
    first = from_spec("linear lrf=0.5 warmup_steps=3", total_steps=10).to_torch(opt)
    return opt, tls.SequentialLR(opt, [first, tls.ExponentialLR(opt, gamma=0.9)], milestones=[10])


def _chained() -> tuple[torch.optim.Optimizer, Any]:
    opt = _sgd(groups=2)
    return opt, tls.ChainedScheduler([from_spec("cosine lrf=0.1", total_steps=20).to_torch(opt),
                                      tls.ExponentialLR(opt, gamma=0.95)])


@pytest.mark.parametrize("build", [_torch_warmup_then_lrkit, _lrkit_then_torch, _chained])
def test_resume_inside_sequential_lr_and_chained_scheduler(build: Any) -> None:
    # Bug: the adapter's load_state_dict wrote its own LR into the optimizer even when another scheduler of a
    # SequentialLR was the one in charge (resumed mid-warmup of a torch LinearLR: 0.1 instead of 0.064, then 0.128,
    # above the peak; resumed after handing over to ExponentialLR: 0.055 instead of 0.1), and over the LR a
    # ChainedScheduler had multiplied. It now writes only where the LR it saved was the one it had set.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "step() before optimizer.step()" and SequentialLR's epoch warnings
        _resumed_equals_uninterrupted(build, 25, [1, 3, 5, 7, 10, 12, 20])


def test_a_lone_adapter_still_writes_its_lr_on_load_whatever_the_order() -> None:
    spec = "cyclic base_lr=0.001 max_lr=0.1 step_size_up=4 warmup_steps=3"
    opt = _sgd(groups=2)
    sched = from_spec(spec, total_steps=40).to_torch(opt)
    sched.seek(17)
    saved = sched.state_dict()
    fresh_opt = _sgd(groups=2)
    fresh = from_spec(spec, total_steps=40).to_torch(fresh_opt)
    fresh.load_state_dict(saved)  # before (or without) the optimizer's state: the LR of step 17 is set
    assert [g["lr"] for g in fresh_opt.param_groups] == [g["lr"] for g in opt.param_groups]
    assert fresh_opt.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]
