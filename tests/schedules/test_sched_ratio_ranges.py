"""Ratios and factors of the peak LR are range-checked up front (each case was accepted before its fix).

Bug: ``cooldown_min_ratio`` > 1 and ``warmup_start_factor`` > 1 were accepted, so a "cooldown" raised the LR and a
"warmup" started above the peak; the same gap was in ``lrf``/``start_factor``/``end_factor`` (linear, cosine,
cosine restarts), exp_range's ``gamma`` and one-cycle's ``div_factor``/``final_div_factor``.
"""

from __future__ import annotations

import pytest

from lrkit.schedules import Cooldown, Cosine, Warmup, from_spec

TOTAL = {"total_steps": 200}


@pytest.mark.parametrize(("spec", "message"), [
    ("cosine lr0=0.1 warmup_steps=10 warmup_start_factor=1.5", r"warmup_start_factor=1\.5 must be in \[0, 1\] .*"
                                                              r"above the peak"),
    ("cosine lr0=0.1 warmup_steps=10 warmup_type=exponential warmup_start_factor=0",
     r"warmup_start_factor=0 must be in \(0, 1\] .*geometrically"),
    ("cosine lr0=0.1 warmup_steps=10 warmup_type=exponential warmup_start_factor=3",
     r"warmup_start_factor=3 must be in \(0, 1\]"),
    ("constant lr0=0.1 cooldown_steps=20 cooldown_min_ratio=1.5", r"cooldown_min_ratio=1\.5 must be in \[0, 1\] .*"
                                                                r"raise the LR"),
    ("wsd lr0=0.1 decay_frac=0.2 min_lr_ratio=2", r"min_lr_ratio=2 must be in \[0, 1\]"),
    ("wsd lr0=0.1 decay_frac=0.2 warmup_steps=10 warmup_start_factor=1.01", r"warmup_start_factor=1\.01 must be in"),
    ("linear lr0=0.1 lrf=1.5", r"lrf=1\.5 must be in \[0, 1\] .*end above its peak"),
    ("linear lr0=0.1 end_factor=2", r"end_factor=2 must be in \[0, 1\]"),
    ("linear lr0=0.1 start_factor=1.2 end_factor=0.1", r"start_factor=1\.2 must be in \[0, 1\] .*start above"),
    ("cosine lr0=0.1 lrf=2", r"lrf=2 must be in \[0, 1\]"),
    ("cosine_restarts lr0=0.1 lrf=1.5 T_0=20 unit=step", r"lrf=1\.5 must be in \[0, 1\]"),
    ("ultralytics lr0=0.01 lrf=1.2", r"lrf=1\.2 must be in \[0, 1\]"),
    ("cyclic base_lr=0.001 max_lr=0.1 step_size_up=10 mode=exp_range gamma=1.01", r"gamma=1\.01 must be in \(0, 1\] "
                                                                                   r"for mode='exp_range'"),
    ("onecycle max_lr=0.1 div_factor=0.5", r"div_factor=0\.5 must be >= 1.*start above max_lr"),
    ("onecycle max_lr=0.1 final_div_factor=0.1", r"final_div_factor=0\.1 must be >= 1"),
    # a cooldown may not end above the value the main schedule reaches: it would raise the LR
    ("cosine lr0=0.1 lrf=0.01 cooldown_frac=0.1 cooldown_min_ratio=0.1",
     r"cooldown_min_ratio=0\.1 is above the multiplier 0\.01 the 'cosine' schedule ends at"),
])
def test_ratio_out_of_range_is_a_clear_error(spec: str, message: str) -> None:
    if spec.startswith("ultralytics"):
        with pytest.raises(ValueError, match=message):
            from_spec(spec, epochs=10, steps_per_epoch=20)
        return
    with pytest.raises(ValueError, match=message):
        from_spec(spec, **TOTAL)


def test_objects_are_checked_like_specs() -> None:
    with pytest.raises(ValueError, match=r"warmup_start_factor=1\.5 must be in \[0, 1\]"):
        Warmup(10, start_factor=1.5)
    with pytest.raises(ValueError, match=r"cooldown_min_ratio=1\.2 must be in \[0, 1\]"):
        Cooldown(10, min_ratio=1.2)
    with pytest.raises(ValueError, match=r"lrf=3 must be in \[0, 1\]"):
        Cosine(lr0=0.1, lrf=3, total_steps=10)


@pytest.mark.parametrize("spec", [
    "cosine lr0=0.1 warmup_steps=10 warmup_start_factor=0",
    "cosine lr0=0.1 warmup_steps=10 warmup_start_factor=1",
    "cosine lr0=0.1 warmup_steps=10 warmup_type=exponential warmup_start_factor=1",
    "constant lr0=0.1 cooldown_steps=20 cooldown_min_ratio=1",
    "constant lr0=0.1 cooldown_steps=20 cooldown_min_ratio=0",
    "cosine lr0=0.1 lrf=0.1 cooldown_frac=0.1 cooldown_min_ratio=0.1",  # ends where the main schedule ends: flat
    "wsd lr0=0.1 decay_frac=0.2 min_lr_ratio=1",
    "linear lr0=0.1 start_factor=0.1 end_factor=1",  # a ramp up to the peak (torch's LinearLR warmup)
    "linear lr0=0.1 lrf=1",
    "cosine lr0=0.1 lrf=1",
    "onecycle max_lr=0.1 div_factor=1 final_div_factor=1",
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=10 mode=exp_range gamma=1",
])
def test_boundary_values_are_accepted_and_never_pass_the_peak(spec: str) -> None:
    lrs = from_spec(spec, **TOTAL).record()["lr"]
    peak = 0.1
    assert max(lrs) <= peak * (1 + 1e-12)


@pytest.mark.parametrize("spec", [
    "exponential lr0=1e-4 gamma=1.05 unit=step",  # a growing exponential is the LR range test's ramp
    "step lr0=0.01 step_size=50 gamma=2 unit=step",  # torch's StepLR accepts gamma > 1 too
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=10 mode=triangular",  # max_lr 100x base_lr is the point
])
def test_growth_where_it_is_meaningful_is_still_accepted(spec: str) -> None:
    lrs = from_spec(spec, **TOTAL).record()["lr"]
    assert max(lrs) > lrs[0]
