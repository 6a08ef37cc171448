"""The text chart names the steps whose loss was NaN/inf (a gap in the curve; the picture marks them on its top edge)
(session 26, plots walk)."""

from __future__ import annotations

import math

import numpy as np

from lrkit.finder import FinderResult


def _result(bad: dict[int, float]) -> FinderResult:
    lrs = list(np.geomspace(1e-5, 1, 40))
    losses = [1 / (1 + 1e3 * lr) for lr in lrs]
    for i, v in bad.items():
        losses[i] = v
    return FinderResult(lrs=lrs, losses=losses, stop_reason="diverged" if 39 in bad else "completed")


def test_a_tail_of_nonfinite_steps_is_named_with_its_first_lr() -> None:
    r = _result({37: math.nan, 38: math.inf, 39: math.nan})
    text = r.text_plot(width=72, height=6, ascii=True)
    assert f"(loss NaN/inf in 3 steps, the first at lr={r.lrs[37]:.3g}: not drawn)" in " ".join(text.split())


def test_one_nonfinite_step_is_named_at_its_lr() -> None:
    r = _result({20: math.inf})
    text = r.text_plot(width=72, height=6, ascii=True)
    assert f"(loss NaN/inf in 1 step, at lr={r.lrs[20]:.3g}: not drawn)" in " ".join(text.split())


def test_a_finite_curve_has_no_such_line() -> None:
    assert "NaN/inf" not in _result({}).text_plot(width=72, height=6, ascii=True)
