"""Session 34: a warmup in front of a schedule that starts below the peak (``onecycle`` at ``max_lr / div_factor``,
``cyclic`` at ``base_lr``) was accepted with a ``warmup_start_factor`` above that start, and "warmed up" by lowering
the LR (0.5 -> 0.04). It is refused, as a cooldown that would raise the LR is."""

from __future__ import annotations

import itertools

import pytest

from lrkit.schedules import from_spec


@pytest.mark.parametrize(("spec", "start"), [
    ("onecycle max_lr=0.1 warmup_steps=3 warmup_start_factor=0.5", "0.04"),
    ("cyclic base_lr=0.01 max_lr=0.1 step_size_up=5 unit=step warmup_steps=3 warmup_start_factor=0.5", "0.1"),
])
def test_a_warmup_starting_above_the_schedules_start_is_refused(spec: str, start: str) -> None:
    with pytest.raises(ValueError, match=rf"warmup_start_factor=0.5 is above the multiplier {start} .* would lower"):
        from_spec(spec, total_steps=100)


@pytest.mark.parametrize("spec", [
    "onecycle max_lr=0.1 warmup_steps=3 warmup_start_factor=0.04",  # exactly the start: a flat warmup
    "onecycle max_lr=0.1 warmup_steps=3",
    "wsd lr0=0.1 warmup_steps=5 warmup_start_factor=0.5 decay_frac=0.2",
])
def test_a_warmup_that_never_lowers_the_lr_is_accepted(spec: str) -> None:
    sched = from_spec(spec, total_steps=100)
    lrs = [sched(t) for t in range(5)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(lrs))  # non-decreasing through the warmup


def test_a_blended_warmup_from_the_peak_stays_accepted() -> None:
    # blended into a cosine already past its peak: a start factor of 1 (no warmup in effect) is not refused
    sched = from_spec("cosine lr0=0.1 warmup_steps=10 warmup_start_factor=1", total_steps=100)
    assert sched(0) == pytest.approx(1.0)
