"""``lrkit.train.auto.FINDER_FRACTION`` outside (0, 1] is refused by name (session 26; 2 was taken silently, capped by
the budget, as benchmarks/auto_lr.py --set FINDER_FRACTION=2 showed)."""

from __future__ import annotations

import pytest

from lrkit.train import auto


@pytest.mark.parametrize("bad", [2, 0, -0.1, float("nan"), True, "0.25"])
def test_a_finder_fraction_outside_0_1_is_refused(monkeypatch: pytest.MonkeyPatch, bad: object) -> None:
    monkeypatch.setattr(auto, "FINDER_FRACTION", bad)
    with pytest.raises(ValueError, match=r"FINDER_FRACTION=.* must be a number in \(0, 1\]"):
        auto.plan_budget(1000, 0.3, 3)


def test_a_finder_fraction_inside_sets_the_range_test_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto, "FINDER_FRACTION", 0.1)
    assert auto.plan_budget(1000, 0.3, 3).finder_steps == 100
    monkeypatch.setattr(auto, "FINDER_FRACTION", 1)
    assert auto.plan_budget(1000, 0.3, 3).finder_steps == 300  # capped by the budget
