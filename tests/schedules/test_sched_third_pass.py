"""Third bug-hunt pass on lrkit.schedules: one regression test per defect found (each failed before its fix)."""

from __future__ import annotations

import math

import pytest
import torch

from lrkit.schedules import from_spec, resolve_timeline


def _sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


# ---------------------------------------------------------------------------------------------------------------
# cyclic triangular2: 1 / 2 ** (cycle - 1) overflowed a float after 1024 cycles
# ---------------------------------------------------------------------------------------------------------------
def test_triangular2_keeps_following_its_formula_past_1024_cycles() -> None:
    # Bug: OverflowError from 2.0 ** 1025 in the middle of training (scheduler.step() at step 10 240 of a 10-step
    # cycle); the amplitude is 1 / 2 ** (cycle - 1), which only underflows towards 0: the LR tends to base_lr.
    s = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=5 mode=triangular2")
    for t in (10 * 1024 + 5, 10 * 5000 + 5, 10**12 + 5):
        cycle = math.floor(1 + t / 10)
        expected = 0.001 + (0.1 - 0.001) * (0.5 ** (cycle - 1))  # at the top of the cycle (h = 1)
        assert s.lr(t) == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert s.lr(10**12 + 5) == pytest.approx(0.001, rel=1e-12)
    opt = _sgd()
    sched = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=5 mode=triangular2").to_torch(opt)
    sched.seek(10 * 1030)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001, rel=1e-9)


def test_triangular2_values_are_unchanged_where_torch_does_not_overflow() -> None:
    # The fix (0.5 ** (cycle - 1) instead of 1 / 2.0 ** (cycle - 1)) is exact for powers of two: the same
    # numbers as torch (to the 1e-12 every torch comparison uses).
    opt_t = _sgd()
    torch_sched = torch.optim.lr_scheduler.CyclicLR(opt_t, base_lr=0.001, max_lr=0.1, step_size_up=3,
                                                    mode="triangular2")
    opt_l = _sgd()
    ours = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=3 mode=triangular2").to_torch(opt_l)
    for _ in range(200):
        assert opt_l.param_groups[0]["lr"] == pytest.approx(opt_t.param_groups[0]["lr"], rel=1e-12)
        assert opt_l.param_groups[0]["momentum"] == pytest.approx(opt_t.param_groups[0]["momentum"], rel=1e-12)
        opt_t.step()
        torch_sched.step()
        opt_l.step()
        ours.step()


def test_state_dict_of_a_short_cycle_triangular2() -> None:
    # Bug: state_dict() raised OverflowError at step 0 (the fingerprint probes step 10 000 = cycle 2 501).
    opt = _sgd()
    sched = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=2 mode=triangular2").to_torch(opt)
    for _ in range(7):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = _sgd()
    again = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=2 mode=triangular2").to_torch(opt2)
    again.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


# ---------------------------------------------------------------------------------------------------------------
# cyclic step sizes: an infinite cycle divided by zero, a sub-step one hung listing its phases
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, match", [
    ("cyclic base_lr=0.001 max_lr=0.1 step_size_up=1e308", r"step_size_up=1e\+308 .*step_size_down"),
    ("cyclic base_lr=0.001 max_lr=0.1 step_size_up=1e-7", r"step_size_up=1e-07 .*less than one optimizer step"),
    ("cyclic base_lr=0.001 max_lr=0.1 step_size_up=4 step_size_down=0.5",
     r"step_size_down=0\.5 .*less than one optimizer step"),
    ("cyclic base_lr=0.001 max_lr=0.1 step_size_up=0.001 unit=epoch", r"step_size_up=0\.001 .*less than one"),
])
def test_cyclic_step_sizes_are_checked_up_front(spec: str, match: str) -> None:
    # Bug: 1e308 raised ZeroDivisionError when evaluated (up + down = inf); 1e-7 built a schedule whose .phases
    # (and so record() and `lrkit schedule`) looped 10^9 times. A half cycle under one optimizer step is aliasing.
    with pytest.raises(ValueError, match=match):
        from_spec(spec, total_steps=100, steps_per_epoch=10)


def test_cyclic_fractional_step_sizes_of_at_least_one_step_still_match_torch() -> None:
    opt_t = _sgd()
    torch_sched = torch.optim.lr_scheduler.CyclicLR(opt_t, base_lr=0.001, max_lr=0.1, step_size_up=2.5,
                                                    step_size_down=1.5)
    opt_l = _sgd()
    ours = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=2.5 step_size_down=1.5").to_torch(opt_l)
    for _ in range(40):
        assert opt_l.param_groups[0]["lr"] == pytest.approx(opt_t.param_groups[0]["lr"], rel=1e-12)
        opt_t.step()
        torch_sched.step()
        opt_l.step()
        ours.step()


# ---------------------------------------------------------------------------------------------------------------
# huge epoch-valued lengths: a bare OverflowError from round(inf)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, kwargs, key", [
    ("step lr0=0.1 step_size=1e308", {"steps_per_epoch": 10}, "step_size"),
    ("multistep lr0=0.1 milestones=1e308", {"steps_per_epoch": 10}, "milestones"),
    ("cosine_restarts lr0=0.1 T_0=1e308", {"steps_per_epoch": 10}, "T_0"),
    ("cosine lr0=0.1 warmup_epochs=1e308", {"total_steps": 100, "steps_per_epoch": 10}, "warmup_epochs"),
    ("wsd lr0=0.1 decay_epochs=1e308", {"total_steps": 100, "steps_per_epoch": 10}, "decay_epochs"),
    ("cosine lr0=0.1", {"epochs": 1e300, "steps_per_epoch": 1e10}, "epochs"),
])
def test_epoch_lengths_that_overflow_a_float_are_named(spec: str, kwargs: dict[str, float], key: str) -> None:
    # Bug: OverflowError: cannot convert float infinity to integer (no key, no value).
    with pytest.raises(ValueError, match=key):
        from_spec(spec, **kwargs)


def test_resolve_timeline_overflow_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"epochs=1e\+300 \* steps_per_epoch=1e\+300"):
        resolve_timeline(epochs=1e300, steps_per_epoch=1e300)


# ---------------------------------------------------------------------------------------------------------------
# three-phase one-cycle with pct_start > 0.5 never reached its final anneal
# ---------------------------------------------------------------------------------------------------------------
def test_three_phase_onecycle_needs_pct_start_at_most_a_half() -> None:
    # Bug: pct_start=0.6 put the end of phase 2 (2 * pct_start * T - 2 = step 118) after the end of the run (step
    # 99): the LR ended at 0.0265 instead of max_lr / (div * final_div) = 4e-7, silently (torch does the same).
    with pytest.raises(ValueError, match=r"pct_start=0\.6 .*three_phase.*0\.5"):
        from_spec("onecycle max_lr=0.1 pct_start=0.6 three_phase=true", total_steps=100)
    s = from_spec("onecycle max_lr=0.1 pct_start=0.5 three_phase=true", total_steps=100)
    assert s.lr(99) == pytest.approx(0.1 / 25 / 1e4, rel=1e-12)
    # the two-phase policy keeps torch's full range
    assert from_spec("onecycle max_lr=0.1 pct_start=0.9", total_steps=100).lr(89) == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------------------------
# eta_min above the peak: a "cosine annealing" that climbs
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["cosine lr0=0.1 eta_min=0.5", "cosine_restarts lr0=0.1 eta_min=0.2 T_0=5 unit=step"])
def test_eta_min_above_lr0_is_refused_like_lrf_above_one(spec: str) -> None:
    # Bug: lrf=5 is refused ("the LR would end above its peak") but the same floor as eta_min=0.5 with lr0=0.1
    # was accepted, and the LR rose from 0.1 to 0.5.
    with pytest.raises(ValueError, match=r"eta_min=0\.[25] .*lr0=0\.1"):
        from_spec(spec, total_steps=100)
    assert from_spec("cosine lr0=0.1 eta_min=0.1", total_steps=10).lr(9) == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------------------------
# a bool where a step is expected
# ---------------------------------------------------------------------------------------------------------------
def test_a_bool_is_not_a_step() -> None:
    # Bug: s(True) / s.lr(True) silently meant step 1.
    s = from_spec("cosine lr0=0.1", total_steps=10)
    for call in (lambda: s(True), lambda: s.lr(False), lambda: s.momentum(True)):
        with pytest.raises(ValueError, match="step=(True|False) must be a number of optimizer steps"):
            call()


# ---------------------------------------------------------------------------------------------------------------
# observe() with a tensor of several values
# ---------------------------------------------------------------------------------------------------------------
def test_observe_names_a_metric_tensor_that_is_not_one_number() -> None:
    # Bug: torch's own "only one element tensors can be converted to Python scalars" (no metric, no shape) for a
    # per-sample loss passed where the mean was meant.
    sched = from_spec("plateau lr0=0.1 patience=0").to_torch(_sgd())
    with pytest.raises(ValueError, match=r"metric=.*shape \(2,\).*one number"):
        sched.observe(torch.tensor([1.0, 2.0]))
    assert sched.observe(torch.tensor([1.0])) is False  # a one-element tensor is one number
    assert sched.observe(torch.tensor(1.0, requires_grad=True)) is True
