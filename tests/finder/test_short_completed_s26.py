"""A range test that ran all its steps but too few to judge is told to raise num_steps, not to lower start_lr "before
it diverges" (session 26, from the plots walk: it did not diverge)."""

from __future__ import annotations

import pytest

from lrkit.finder import FinderResult


@pytest.mark.parametrize(("lrs", "losses", "steps"), [([1e-3, 1e-2], [1.0, 0.9], "2 steps"),
                                                      ([1e-3], [1.0], "1 step")])
def test_a_completed_short_test_says_raise_num_steps(lrs: list[float], losses: list[float], steps: str) -> None:
    with pytest.raises(ValueError) as err:
        FinderResult(lrs=lrs, losses=losses, stop_reason="completed").suggestion  # noqa: B018
    text = str(err.value)
    assert f"ran all the {steps} it was given" in text and f"raise num_steps (now {len(lrs)})" in text
    assert "diverges" not in text and "1 steps" not in text and "1 finite losses" not in text


def test_a_test_that_diverged_early_still_says_lower_start_lr() -> None:
    with pytest.raises(ValueError, match=r"stopped \(diverged at lr=0\.01\) after 2 steps with 1 finite loss,.*lower "
                                         r"start_lr"):
        FinderResult(lrs=[1e-3, 1e-2], losses=[1.0, float("nan")], stop_reason="diverged").suggestion  # noqa: B018
