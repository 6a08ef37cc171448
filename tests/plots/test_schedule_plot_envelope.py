"""The schedule picture thins long curves by their envelope (per-bucket min and max), checked on the data handed to
matplotlib, not on pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrkit.plots.schedule import _envelope, plot_schedule
from lrkit.schedules import from_spec


def _assert_windows_keep_min_and_max(xs: list[int], ys: list[float], true: list[float], width: int) -> None:
    """In every ``width``-step window of the run, the plotted points hold the window's true min and max."""
    x, y, t = np.asarray(xs), np.asarray(ys, dtype=float), np.asarray(true, dtype=float)
    assert np.array_equal(y, t[x])  # every plotted point is a true (step, value) pair
    for a in range(0, len(t) - width + 1, width):
        inside = y[(x >= a) & (x < a + width)]
        assert inside.size and inside.min() == t[a:a + width].min() and inside.max() == t[a:a + width].max(), a


# Bug: long curves were thinned to every k-th point, which aliases a short cyclical period: a triangular cycle of
# 11 steps sampled every 10th step drew a slow 110-step "beat" that never reached max_lr.
@pytest.mark.parametrize("spec", [
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=5 step_size_down=6",  # period 11 ~ the old stride 10
    "cyclic base_lr=0.001 max_lr=0.1 step_size_up=7",
])
def test_long_cyclical_curves_keep_their_envelope(spec: str) -> None:
    rec = from_spec(spec, total_steps=200_000).record()
    fig = plot_schedule(rec)
    line = fig.axes[0].get_lines()[0]  # the data handed to matplotlib, not pixels
    xs, ys = list(line.get_xdata()), list(line.get_ydata())
    assert len(ys) <= 20_000 and xs[0] == 0 and xs[-1] == len(rec["lr"]) - 1
    _assert_windows_keep_min_and_max(xs, ys, rec["lr"], width=100)
    assert max(ys) == pytest.approx(0.1) and min(ys) == pytest.approx(0.001)
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == _envelope(rec["momentum"])[1]


def test_envelope_of_a_random_walk_and_its_gaps() -> None:
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.standard_normal(49_800)).tolist()
    xs, ys = _envelope(walk, max_points=1_000)
    assert len(xs) <= 1_000 and xs == sorted(set(xs))
    assert max(ys) == max(walk) and min(ys) == min(walk)
    # 332 buckets of 150 steps ((1000 - 2) // 3 buckets over 49 800 steps): each keeps its own min and max
    _assert_windows_keep_min_and_max(xs, ys, walk, width=150)
    # a gap (momentum None -> NaN) stays a gap, and short curves are drawn whole
    holed = [1.0] * 10_000 + [math.nan] * 10 + [2.0] * 10_000
    _, hy = _envelope(holed, max_points=300)
    assert any(math.isnan(v) for v in hy) and hy[0] == 1.0 and hy[-1] == 2.0
    assert _envelope([3.0, 1.0, 2.0]) == ([0, 1, 2], [3.0, 1.0, 2.0])
