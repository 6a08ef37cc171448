"""A range test that stopped too early to judge: its warning counts the steps that ran and names the LR it stopped at.

Before session 27 the warning read the finite part of the curve and worded it as the stop: a test whose 6th step gave
a non-finite loss at lr=1.17 warned "stopped after 5 steps (non-finite at lr=1.13)" — the LR of the last finite loss
and one step fewer than ran — while choose_lr0's error on the same test said "after 6 steps ... at lr=1.17" (the
audit of session 27).
"""

from __future__ import annotations

import math

from lrkit.finder.range_test import MIN_STOPPED_POINTS, _quality_warnings
from lrkit.finder.result import FinderResult


def test_the_warning_names_the_steps_that_ran_and_the_lr_it_stopped_at() -> None:
    lrs = [1.0 * 1.03 ** i for i in range(6)]
    losses = [1.0, 0.9, 0.95, 1.4, 3.0, math.nan]  # the 6th step's loss is not finite
    assert len(losses) < MIN_STOPPED_POINTS
    result = FinderResult(lrs=lrs, losses=losses, start_lr=1.0, end_lr=100.0, num_steps=100,
                          stop_reason="non-finite")
    (message,) = _quality_warnings(result)
    assert message.startswith(f"the range test stopped after 6 steps (non-finite at lr={lrs[-1]:.3g})"), message


def test_a_diverged_stop_reads_as_before() -> None:
    lrs = [1e-3 * 1.5 ** i for i in range(5)]
    losses = [1.0, 0.8, 0.9, 3.0, 30.0]  # finite: the last one is the divergence
    result = FinderResult(lrs=lrs, losses=losses, start_lr=1e-3, end_lr=10.0, num_steps=100, stop_reason="diverged")
    (message,) = _quality_warnings(result)
    assert message.startswith(f"the range test stopped after 5 steps (diverged at lr={lrs[-1]:.3g})"), message
