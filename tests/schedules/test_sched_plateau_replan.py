"""Reduce-on-plateau against torch's ReduceLROnPlateau (and behind a warmup); re-planning continuity."""

from __future__ import annotations

import io
import itertools
import math

import pytest
import torch
from _sched_helpers import make_optimizer, trace

from lrkit.schedules import ReduceOnPlateau, from_spec

METRICS = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.85, 0.86, 0.86, 0.86, 0.86, 0.7, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75,
           0.76, 0.77, 0.78, 0.79, 0.8, 0.81]


@pytest.mark.parametrize(("mode", "threshold_mode", "sign"), [("min", "rel", 1.0), ("min", "abs", 1.0),
                                                               ("max", "rel", -1.0), ("max", "abs", -1.0)])
@pytest.mark.parametrize("cooldown", [0, 2])
def test_plateau_matches_torch(mode: str, threshold_mode: str, sign: float, cooldown: int) -> None:
    kw = dict(mode=mode, factor=0.5, patience=2, threshold=0.01, threshold_mode=threshold_mode, cooldown=cooldown,
              min_lr=0.004)
    opt_t = make_optimizer([0.1, 0.05])
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt_t, **kw)  # type: ignore[arg-type]
    opt_l = make_optimizer([0.1, 0.05])
    spec = " ".join(["plateau", *(f"{k}={v}" for k, v in kw.items())])
    sched = from_spec(spec).to_torch(opt_l)
    steps_per_epoch, reductions = 3, 0
    for metric in METRICS:
        value = sign * metric
        for _ in range(steps_per_epoch):  # lrkit steps per optimizer step; torch's plateau only on metrics
            opt_l.step()
            sched.step()
        ref.step(value)
        reductions += sched.observe(value)
        assert [g["lr"] for g in opt_l.param_groups] == pytest.approx([g["lr"] for g in opt_t.param_groups],
                                                                      abs=1e-12)
    assert reductions >= 2  # the metric sequence did exercise reductions
    if mode == "min":  # ... and, for these metrics, the min_lr floor of the second group
        assert opt_l.param_groups[1]["lr"] == pytest.approx(0.004)


def test_warmup_in_front_of_plateau() -> None:  # pytorch#68978
    opt = make_optimizer([0.1])
    sched = from_spec("plateau lr0=0.1 patience=1 factor=0.1 warmup_steps=20").to_torch(opt)
    lrs = []
    for t in range(60):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if (t + 1) % 10 == 0:
            sched.observe(1.0)  # never improves after the first observation
    assert lrs[:21] == pytest.approx([0.1 * t / 20 for t in range(21)])
    assert lrs[21:30] == pytest.approx([0.1] * 9)
    # observations at steps 10, 20, 30, ...: bad twice (> patience=1) at step 30 -> reduced from step 30 on,
    # and again two bad observations later, at step 50
    assert lrs[30:50] == pytest.approx([0.01] * 20)
    assert lrs[50:] == pytest.approx([0.001] * 10)
    assert sched.schedule.main.reductions == (10, 30)  # in the plateau's own clock: minus 20 warmup steps


def test_plateau_state_roundtrip_and_validation() -> None:
    s = ReduceOnPlateau(lr0=1.0, patience=0)
    s.observe(1.0, step=0)
    s.observe(2.0, step=5)
    state = s.state_dict()
    t = ReduceOnPlateau(lr0=1.0, patience=0)
    t.load_state_dict(state)
    assert t.reductions == (5,) and t(4) == 1.0 and t(5) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="before the last observed step"):
        t.observe(1.0, step=2)
    with pytest.raises(ValueError, match="factor"):
        ReduceOnPlateau(factor=1.5)


# ---------------------------------------------------------------------------------------------------------------
# re-planning
# ---------------------------------------------------------------------------------------------------------------
REPLAN_SPECS = [
    "cosine lr0=0.1 lrf=0.01 warmup_epochs=1",
    "linear lr0=0.1 lrf=0.1",
    "onecycle max_lr=0.1",
    "onecycle max_lr=0.1 three_phase=true anneal_strategy=linear",
    "wsd lr0=0.1 warmup_steps=10 decay_frac=0.2",
    "step lr0=0.1 step_size=3 gamma=0.5",
    "cyclic base_lr=0.01 max_lr=0.1 step_size_up=7",
    "polynomial lr0=0.1 power=2 cooldown_steps=10",
]


@pytest.mark.parametrize("spec", REPLAN_SPECS)
@pytest.mark.parametrize(("at", "new_total"), [(25, 150), (60, 300), (40, 70)])
def test_replan_keeps_the_past_and_the_current_lr(spec: str, at: int, new_total: int) -> None:
    s = from_spec(spec, epochs=10, steps_per_epoch=10)
    r = s.replan(at_step=at, total_steps=new_total)
    assert r.total_steps == new_total
    assert all(r.lr(t) == s.lr(t) for t in range(at + 1))  # nothing up to the current step moves
    assert r.lr(new_total) == pytest.approx(s.lr(100), abs=1e-15)  # the end point moves to the new end
    # the remainder is the old remainder, stretched: r(at + (t - at) * k) == s(t)
    k = (new_total - at) / (100 - at)
    for t in range(at, 100, 3):
        u = at + (t - at) * k
        if u == int(u):
            assert r.lr(int(u)) == pytest.approx(s.lr(t), abs=1e-15)
    if new_total > 100:  # stretching never makes a per-step change larger than the original's largest one
        jump = max(abs(s.lr(t + 1) - s.lr(t)) for t in range(100))
        assert max(abs(r.lr(t + 1) - r.lr(t)) for t in range(at, new_total)) <= jump + 1e-15


def test_replan_through_torch_is_continuous_and_survives_resume() -> None:  # yolov5#7343, open_clip#413
    spec = "cosine lr0=0.1 lrf=0.01"
    opt = make_optimizer([0.1, 0.1], scales=[1.0, 0.3])
    sched = from_spec(spec, epochs=100, steps_per_epoch=5).to_torch(opt)
    trace(opt, sched, 250)  # 50 epochs done
    before = [g["lr"] for g in opt.param_groups]
    sched.replan(epochs=150)  # the user now wants 150 epochs in all
    assert [g["lr"] for g in opt.param_groups] == before
    assert sched.total_steps == 750
    cont, _ = trace(opt, sched, 500)
    assert cont[0] == before
    assert cont[-1][0] == pytest.approx(0.1 * (0.01 + 0.99 * (1 + math.cos(math.pi * 749.5 / 750)) / 2), rel=1e-3)
    assert max(abs(a[0] - b[0]) for a, b in itertools.pairwise(cont)) < 0.1 * math.pi / 2 / 500 * 1.01
    # the re-plan is saved with the step counter and replayed on load
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    opt2 = make_optimizer([0.1, 0.1], scales=[1.0, 0.3])
    sched2 = from_spec(spec, epochs=100, steps_per_epoch=5).to_torch(opt2)
    sched2.load_state_dict(state)
    sched2.seek(400)
    sched.seek(400)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert sched2.total_steps == 750
    # shrinking works too, and a second re-plan composes
    sched2.replan(total_steps=500)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert sched2.schedule.lr(500) == pytest.approx(0.001)


def test_replan_errors() -> None:
    s = from_spec("cosine lr0=0.1", total_steps=100)
    with pytest.raises(ValueError, match="greater than at_step"):
        s.replan(at_step=50, total_steps=40)
    with pytest.raises(ValueError, match="nothing is left"):
        s.replan(at_step=100, total_steps=200)
    with pytest.raises(ValueError, match="no fixed length"):
        from_spec("step lr0=0.1 step_size=3 unit=step").replan(at_step=5, total_steps=50)
    with pytest.raises(ValueError, match="new length"):
        s.replan(at_step=5)
