"""Bug hunt s14g on ``lrkit.schedules``: per-epoch staircases (``interval=epoch``) with a steps_per_epoch that is not
a whole number of steps, and the phases of a cyclic schedule with fractional step sizes."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch

from lrkit.schedules import from_spec


def _torch_per_epoch(make: Callable[[torch.optim.Optimizer], object], epochs: int) -> list[float]:
    """The LR of each epoch of a torch scheduler stepped once per epoch (its ``interval=epoch`` meaning)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()  # type: ignore[attr-defined]
    return out


# ---------------------------------------------------------------------------------------------------------------
# interval=epoch with a fractional steps_per_epoch: a drop or a restart on an epoch edge was lost
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, make", [
    ("step lr0=0.1 step_size=1 gamma=0.5", lambda o: torch.optim.lr_scheduler.StepLR(o, 1, 0.5)),
    ("step lr0=0.1 step_size=3 gamma=0.5", lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    ("multistep lr0=0.1 milestones=1,3,5,6 gamma=0.5",
     lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [1, 3, 5, 6], 0.5)),
    ("cosine_restarts lr0=0.1 T_0=1", lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=1)),
    ("cosine_restarts lr0=0.1 T_0=3", lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3)),
    ("cosine_restarts lr0=0.1 T_0=1 T_mult=2",
     lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=1, T_mult=2)),
    ("cosine_restarts lr0=0.1 T_0=2 T_mult=3 eta_min=0.001",
     lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=3, eta_min=0.001)),
])
@pytest.mark.parametrize("spe", [2.5, 1.25, 7.5, 3.3, 4])
def test_interval_epoch_matches_torch_stepped_per_epoch_with_fractional_steps_per_epoch(
        spec: str, make: Callable[[torch.optim.Optimizer], object], spe: float) -> None:
    # Bug: with steps_per_epoch=2.5, `step step_size=1 interval=epoch` gave epochs 0..5 the LRs
    # 0.1, 0.05, 0.025, 0.025, 0.00625, ... — epoch 3 missed its drop (the boundary 7.5 steps was rounded to 8, after
    # the epoch's start at 7.5), and `cosine_restarts T_0=1 interval=epoch` did not restart every epoch (0.1,
    # 0.093, 0.1, 0.0067, ...). Per epoch, every step of epoch e must carry torch's LR for epoch e.
    epochs = 12
    s = from_spec(spec + " interval=epoch", epochs=epochs, steps_per_epoch=spe)
    want = _torch_per_epoch(make, epochs)
    for t in range(s.total_steps):  # type: ignore[arg-type]
        e = math.floor(t / spe + 1e-9)
        assert s.lr(t) == pytest.approx(want[e], rel=1e-12, abs=1e-15), (t, e)


def test_interval_epoch_step_decay_with_fractional_step_size_in_epochs() -> None:
    # a step_size of 1.5 epochs, per epoch: StepLR's closed form gamma ** (e // 1.5) drops at epochs 2, 3, 5, 6, ...
    # (torch's recursive StepLR only drops where e % 1.5 == 0, so it is no reference for a fractional step_size)
    s = from_spec("step lr0=0.1 step_size=1.5 gamma=0.5 interval=epoch", epochs=9, steps_per_epoch=2.5)
    got = [s.lr(t) for t in range(s.total_steps)]  # type: ignore[arg-type]
    want = [0.1 * 0.5 ** (math.floor(t / 2.5) // 1.5) for t in range(s.total_steps)]  # type: ignore[arg-type]
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("spec", [
    "step lr0=0.1 step_size=1 gamma=0.5",
    "step lr0=0.1 step_size=3 gamma=0.5",
    "multistep lr0=0.1 milestones=1,3,5,6 gamma=0.5",
    "cosine_restarts lr0=0.1 T_0=1",
    "cosine_restarts lr0=0.1 T_0=3",
    "cosine_restarts lr0=0.1 T_0=1 T_mult=2",
])
@pytest.mark.parametrize("spe", [2.5, 1.25, 7.5, 3.3])
def test_interval_epoch_phases_start_where_the_staircase_steps(spec: str, spe: float) -> None:
    # Bug: the phases rounded each boundary to a whole step (7.5 -> 8, 2.5 -> 2), so with 2.5-step epochs 'level 1'
    # began at step 2, a step before the epoch (and its drop) did: the table showed level 1 starting at level 0's LR.
    s = from_spec(spec + " interval=epoch", epochs=12, steps_per_epoch=spe)
    phases = list(s.phases)
    assert phases[0].start == 0 and phases[-1].end == s.total_steps
    for prev, ph in itertools.pairwise(phases):
        assert prev.end == ph.start
        if spec.startswith("cosine_restarts"):
            assert ph.start_value == pytest.approx(1.0), ph  # a cycle starts at the peak
    for ph in phases:
        if spec.startswith(("step", "multistep")):
            assert ph.start == 0 or s(ph.start) != s(ph.start - 1), (ph, "the LR must change where a level starts")
            assert ph.start_value == ph.end_value == s(ph.start), ph  # a level is flat
        # every phase starts on the first step of an epoch
        assert ph.start == 0 or math.floor(ph.start / spe + 1e-9) != math.floor((ph.start - 1) / spe + 1e-9), ph



# ---------------------------------------------------------------------------------------------------------------
# a warmup / cooldown that leaves the schedule no step: the error named no valid value
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, kwargs, match", [
    ("onecycle max_lr=0.1 warmup_steps=20", {"total_steps": 10},
     r"^warmup \(20 steps\) would leave nothing of the 10-step run for 'onecycle' \(it needs at least one step\): give "
     r"warmup_steps <= 9, or a run of at least 21 steps$"),
    ("cosine lr0=0.1 warmup_epochs=4 warmup_prefix=true", {"epochs": 4, "steps_per_epoch": 5},
     r"warmup \(20 steps\) would leave .*: give warmup_epochs <= 3\.8, or a run of at least 21 steps$"),
    ("cosine lr0=0.1 warmup_steps=5 cooldown_steps=10", {"total_steps": 10},  # a blended warmup takes no room
     r"^cooldown \(10 steps\) would leave nothing .*: give cooldown_steps <= 9, or a run of at least 11 steps$"),
    ("cosine lr0=0.1 cooldown_frac=1", {"total_steps": 10}, r"give cooldown_frac <= 0\.9, or a run of at least 11"),
    ("linear_to_zero lr0=0.1 warmup_steps=6 cooldown_steps=4", {"total_steps": 10},
     r"^warmup \(6 steps\) and cooldown \(4 steps\) would leave nothing .*: give warmup_steps <= 5 or "
     r"cooldown_steps <= 3, or a run of at least 11 steps$"),
])
def test_warmup_and_cooldown_that_leave_no_step_say_what_fits(spec: str, kwargs: dict[str, float], match: str) -> None:
    # Bug: "warmup (20 steps) and cooldown (0 steps) leave nothing of the 10-step run for 'onecycle'" — no valid value
    # (the blended warmup's error has one), and a blended warmup or an absent cooldown named as taking room. (The
    # words "leave nothing" stay: lrkit.train recognises the error by them.)
    with pytest.raises(ValueError, match=match):
        from_spec(spec, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# onecycle interval=epoch: the cycle's "- 1" ends were in steps, so per epoch it ended 1e4x above its final LR
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, kwargs", [
    ("", {}),
    (" three_phase=true", {"three_phase": True}),
    (" anneal_strategy=linear pct_start=0.25", {"anneal_strategy": "linear", "pct_start": 0.25}),
])
@pytest.mark.parametrize("epochs, spe", [(10, 10), (10, 4), (10, 2.5), (3, 7.5), (7, 3.3), (5, 1.5)])
def test_onecycle_interval_epoch_matches_torch_stepped_per_epoch(extra: str, kwargs: dict[str, object], epochs: int,
                                                                  spe: float) -> None:
    # Bug: `onecycle max_lr=0.1 interval=epoch` over 10 epochs gave its last epoch 0.004 (the per-step curve at the
    # start of the last epoch) where torch's OneCycleLR(total_steps=10) stepped once per epoch reaches 4e-07, and it
    # never reached max_lr (0.09995 at best): the phase ends pct_start * T - 1 were counted in steps, not epochs.
    # (3 epochs of 7.5 steps are a 22-step run, rounded, whose third epoch starts at step 15: 3 epochs, as in torch.)
    s = from_spec("onecycle max_lr=0.1" + extra + " interval=epoch", epochs=epochs, steps_per_epoch=spe)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=epochs, **kwargs)  # type: ignore[arg-type]
    want_lr, want_mom = [], []
    for _ in range(epochs):
        want_lr.append(float(opt.param_groups[0]["lr"]))
        want_mom.append(float(opt.param_groups[0]["momentum"]))
        opt.step()
        ref.step()
    for t in range(s.total_steps):  # type: ignore[arg-type]
        e = math.floor(t / spe + 1e-9)
        assert s.lr(t) == pytest.approx(want_lr[e], rel=1e-12), (t, e)
        assert s.momentum(t) == pytest.approx(want_mom[e], rel=1e-12), (t, e)
    phases = list(s.phases)
    assert phases[0].start == 0 and phases[-1].end == s.total_steps
    for ph in phases:  # each phase starts on an epoch's first step, and its records are the staircase's values
        assert ph.start == 0 or math.floor(ph.start / spe + 1e-9) != math.floor((ph.start - 1) / spe + 1e-9), ph
        assert (ph.start_value, ph.end_value) == (s(ph.start), s(ph.end - 1))  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------------------------
# did-you-mean for a length given by its bare name
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, meant", [
    ("cosine lr0=0.1 warmup=10", "warmup_steps"),
    ("cosine lr0=0.1 cooldown=10", "cooldown_steps"),
    ("wsd lr0=0.1 warmup_steps=10 decay=20", "decay_steps"),
    ("cosine lr0=0.1 warmup=0.5", "warmup_steps"),
])
def test_a_bare_length_key_suggests_its_steps_key(spec: str, meant: str) -> None:
    # Bug: `warmup=10` said "Did you mean 'warmup_type'?" (the closest spelling), so following the hint gave
    # "unknown value for warmup_type '10'"; a length is what a number after 'warmup' means.
    with pytest.raises(ValueError, match=rf"Did you mean '{meant}'\?.* Valid: "):
        from_spec(spec, total_steps=100)


# ---------------------------------------------------------------------------------------------------------------
# cyclic with fractional step sizes: phases rounded half to even put falling steps in 'up' phases and back
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("up, down", [(1.5, None), (1.1, None), (2.5, 1.5), (1.4, 10.0), (3.7, 2.2), (2.0, 3.5)])
@pytest.mark.parametrize("warmup", ["", " warmup_steps=3"])
def test_cyclic_fractional_phases_hold_the_steps_of_their_half_cycle(up: float, down: float | None,
                                                                     warmup: str) -> None:
    # Bug: boundaries were rounded with round() (half to even), but the LR turns at the first whole step at or after a
    # fractional boundary: with step_size_up=1.5, 'down 2' was steps 4-5 though step 4 still rises (4.5 -> 4), and
    # with step_size_up=1.1 'up 2' was step 2 (2.2 -> 2), a falling step; the table showed lr_start == lr_end.
    d = up if down is None else down
    spec = f"cyclic base_lr=0.001 max_lr=0.1 step_size_up={up}" + ("" if down is None else f" step_size_down={down}")
    s = from_spec(spec + warmup, total_steps=60)
    shift = 3 if warmup else 0
    size = up + d
    seen = 0
    for ph in s.phases:
        if ph.name == "warmup":
            continue
        half, k = ph.name.split()
        cycle = int(k) - 1
        for t in range(ph.start, ph.end):
            pos = (t - shift) - cycle * size  # where the step sits in its cycle (torch: rising while pos <= up)
            # (a step on the peak itself, 24 = 4 * 5.5 + 2, may fall either side by a float rounding of the formula)
            if half == "up":
                assert 0 <= pos < up + 1e-9, (ph, t)
            else:
                assert up - 1e-9 <= pos < size, (ph, t)
            seen += 1
    assert seen == 60 - shift
