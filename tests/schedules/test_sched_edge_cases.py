"""Edge cases found by an adversarial pass: each test failed before its fix (see the test's comment)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _sched_helpers import make_optimizer

from lrkit.schedules import Exponential, ReduceOnPlateau, from_spec, parse_spec

# ---------------------------------------------------------------------------------------------- reduce-on-plateau
# Bug: min_lr above a group's LR *raised* that LR at step 0 (m = max(1, min_lr / lr0)); torch never raises an LR.
# Bug: with no lr0 in the spec (the usual to_torch path) eps was ignored per group, so tiny LRs kept being reduced
# where torch's ReduceLROnPlateau leaves them alone.


def test_plateau_never_raises_an_lr_below_min_lr() -> None:
    s = ReduceOnPlateau(lr0=1e-5, min_lr=1e-4, patience=0)
    assert s.lr(0) == 1e-5
    s.observe(1.0, step=0)
    s.observe(1.0, step=5)  # a reduction: the LR is already below the floor, so it stays
    assert s.lr(10) == 1e-5


@pytest.mark.parametrize(("lrs", "kw"), [
    ([1e-7, 2e-8], dict(min_lr=1e-4, eps=1e-3, factor=0.5, patience=1)),       # both groups start below min_lr
    ([0.1, 0.05], dict(min_lr=1e-4, eps=1e-3, factor=0.1, patience=0)),        # eps stops the last reductions
    ([0.001, 0.05], dict(min_lr=1e-4, eps=1e-3, factor=0.1, patience=0)),      # eps: group 0 never reduced
    ([0.1, 2e-8], dict(min_lr=1e-8, eps=1e-8, factor=0.1, patience=0)),        # change == eps is not taken
])
def test_plateau_matches_torch_per_group_with_eps_and_min_lr(lrs: list[float], kw: dict[str, float]) -> None:
    opt_t = make_optimizer(lrs)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt_t, **kw)  # type: ignore[arg-type]
    opt_l = make_optimizer(lrs)
    sched = from_spec("plateau " + " ".join(f"{k}={v}" for k, v in kw.items())).to_torch(opt_l)
    assert [g["lr"] for g in opt_l.param_groups] == [g["lr"] for g in opt_t.param_groups]
    for _ in range(8):  # never improves: a reduction every (patience + 1) observations
        for _ in range(3):
            opt_l.step()
            sched.step()
        ref.step(1.0)
        sched.observe(1.0)
        got = [g["lr"] for g in opt_l.param_groups]
        want = [g["lr"] for g in opt_t.param_groups]
        assert got == pytest.approx(want, rel=1e-9, abs=0.0)


# ---------------------------------------------------------------------------------------------- torch adapter
# Bug: a param group added after the scheduler was built (a backbone unfrozen mid-run) crashed step() with
# "zip() argument 2 is shorter than argument 1"; torch's own schedulers let the new group follow.


@pytest.mark.parametrize("spec", ["cosine lrf=0", "cosine lr0=0.1 lrf=0", "onecycle", "plateau patience=0"])
def test_param_group_added_after_the_scheduler_follows_the_schedule(spec: str) -> None:
    w, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    sched = from_spec(spec, total_steps=20).to_torch(opt)
    for _ in range(5):
        opt.step()
        sched.step()
    opt.add_param_group({"params": [b], "lr": 0.02, "momentum": 0.9})
    ref = from_spec(spec, total_steps=20)
    base_new = 0.1 if ref.peak_lr is not None else 0.02  # lr0 * lr_scale, else the group's own LR
    for t in range(6, 20):
        opt.step()
        sched.step()
        if ref.stateful:
            sched.observe(1.0)
        m = sched.schedule.multiplier(t) if not ref.stateful else opt.param_groups[0]["lr"] / 0.1
        assert opt.param_groups[1]["lr"] == pytest.approx(base_new * m, rel=1e-12)
        assert opt.param_groups[1]["momentum"] == opt.param_groups[0]["momentum"]
    assert len(sched.state_dict()["base_lrs"]) == 2


def test_added_group_without_momentum_is_refused_clearly_for_momentum_schedules() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = from_spec("onecycle", total_steps=10).to_torch(opt)
    opt.step()
    opt.param_groups.append({"params": [], "lr": 0.1})  # a group with no momentum key (not via add_param_group)
    with pytest.raises(ValueError, match=r"param_groups\[1\].*neither 'momentum' nor 'betas'"):
        sched.step()


def test_seek_and_last_step_accept_numpy_and_torch_integers() -> None:
    # Bug: seek(np.int64(5)) (a step read back from a checkpoint) was refused as "must be an int".
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = from_spec("linear lr0=0.1 lrf=0", total_steps=10).to_torch(opt)
    sched.seek(np.int64(5))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05, rel=1e-12)
    sched.seek(torch.tensor(3))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.07, rel=1e-12)
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    resumed = from_spec("linear lr0=0.1 lrf=0", total_steps=10).to_torch(other, last_step=np.int64(3))
    assert resumed.current_step == 4 and other.param_groups[0]["lr"] == pytest.approx(0.06, rel=1e-12)
    with pytest.raises(ValueError, match=r"step=2.5 must be an int"):
        sched.seek(2.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- clear errors
def test_exponential_growth_overflow_is_a_clear_error() -> None:
    # Bug: gamma > 1 raised a bare OverflowError (a traceback in `lrkit schedule`).
    s = Exponential(lr0=0.1, gamma=2.0, unit="step")
    assert s.lr(10) == pytest.approx(0.1 * 2.0**10)
    with pytest.raises(ValueError, match=r"gamma=2.0 per step overflows"):
        s.lr(2000)


@pytest.mark.parametrize("spec", ["step gamma=1e300 step_size=1", "multistep gamma=1e300 milestones=[1,2]"])
def test_step_family_growth_overflow_is_a_clear_error(spec: str) -> None:
    # Bug: step/multistep with a huge gamma raised a bare OverflowError for Python users.
    from lrkit.schedules import from_spec

    s = from_spec(spec, total_steps=10, steps_per_epoch=1)
    assert s(0) == 1.0  # gamma ** 0 before the first decay
    with pytest.raises(ValueError, match=r"gamma=1e\+300 overflows a float by step 2"):
        s.record()


@pytest.mark.parametrize(("spec", "kwargs"), [("cosine lr0=0.1 epochs=abc", {"epochs": 10}),
                                              ("cosine lr0=0.1 epochs=1,2", {"epochs": 10}),
                                              ("cosine lr0=0.1 epochs=10", {"epochs": "ten"})])
def test_run_length_in_spec_and_kwargs_names_a_non_number(spec: str, kwargs: dict[str, object]) -> None:
    # Bug: "could not convert string to float: 'abc'" (no key) or a bare TypeError for a list.
    with pytest.raises(ValueError, match=r"epochs=.* must be a number"):
        from_spec(spec, steps_per_epoch=5, **kwargs)  # type: ignore[arg-type]


def test_spec_keys_in_the_wrong_case_get_a_suggestion() -> None:
    # Bug: 'LR0' got no "Did you mean" (difflib is case-sensitive).
    with pytest.raises(ValueError, match=r"unknown cosine parameter 'LR0'. Did you mean 'lr0'\?"):
        from_spec("COSINE LR0=0.1", total_steps=10)


@pytest.mark.parametrize("space", ["\u00a0", "\u2003", "\u3000"])
def test_unicode_spaces_separate_spec_tokens(space: str) -> None:
    # Bug: "cosine<NBSP>lr0=0.1" (pasted from a web page) was one token: "must start with the schedule name".
    spec = f"cosine{space}lr0=0.1{space}lrf=0.5"
    assert parse_spec(spec) == ("cosine", {"lr0": 0.1, "lrf": 0.5})
    assert from_spec(spec, total_steps=10).lr(10) == pytest.approx(0.05, rel=1e-12)


# ---------------------------------------------------------------------------------------------- documented bounds
def test_past_the_end_closed_families_hold_and_open_ended_ones_follow_torch() -> None:
    # The Schedule docstring claimed every schedule holds its final value past total_steps; step/exponential/
    # cyclic keep following their formula (as torch's StepLR/ExponentialLR/CyclicLR do). Pin both behaviours.
    T = 10
    for spec in ("cosine lr0=1 lrf=0.1", "linear lr0=1 lrf=0.1", "onecycle max_lr=1", "poly lr0=1",
                 "linear_to_zero lr0=1", "wsd lr0=1 decay_frac=0.3"):
        s = from_spec(spec, total_steps=T)
        assert s.lr(T + 7) == s.lr(T) == pytest.approx(s.lr(10 * T)), spec
    s = from_spec("step lr0=1 step_size=2 unit=step gamma=0.5", total_steps=T)
    assert s.lr(T + 7) == pytest.approx(0.5 ** ((T + 7) // 2))
    e = from_spec("exponential lr0=1 gamma=0.5 unit=step", total_steps=T)
    assert e.lr(T + 7) == pytest.approx(0.5 ** (T + 7))
    assert math.isfinite(e.lr(10_000)) and e.lr(10_000) >= 0.0


# Bug: "decay_frac=0.1 is less than one optimizer step" did not say how long the run was, so a user who passed
# `-t 2` by mistake could not tell whether the fraction or the run was too small.
@pytest.mark.parametrize(
    ("spec", "kw", "arithmetic"),
    [
        ("wsd lr0=1e-3 warmup_steps=1 decay_frac=0.1", {"total_steps": 2}, "(0.1 of a 2-step run = 0.2 steps)"),
        ("wsd lr0=1e-3 decay_epochs=0.1", {"epochs": 4, "steps_per_epoch": 5},
         "(0.1 epochs x 5 optimizer steps per epoch = 0.5 steps)"),
    ],
)
def test_a_span_shorter_than_one_step_names_the_run_length(spec: str, kw: dict[str, int], arithmetic: str) -> None:
    with pytest.raises(ValueError) as info:
        from_spec(spec, **kw)
    msg = str(info.value)
    assert "is less than one optimizer step" in msg and arithmetic in msg, msg
