"""Bug hunt 7 over the pictures and records of today's features: each test failed before its fix.

Checks read the drawn Figure (its legend texts, the data handed to matplotlib) or the files a run writes, not pixels.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lrkit.finder import FinderResult
from lrkit.finder.suggest import smooth_curve
from lrkit.plots.finder import plot_finder
from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import from_spec
from lrkit.schedules.report import sampled_record


@pytest.fixture(autouse=True)
def _no_figures_left_open() -> Any:
    plt.close("all")
    yield
    plt.close("all")


def _suggestion_label(record: dict[str, Any]) -> str:
    fig = plot_finder(record)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts() if t.get_text().startswith("suggestion")]
    assert len(texts) == 1
    return texts[0]


# ------------------------------------------------------------------------------------------- the finder's label
def _cliff_record() -> dict[str, Any]:
    """A clean curve that stays flat, drops sharply just below its minimum, then explodes: the robust rule's
    decade below the minimum lies on the flat part, so the rule keeps its LR inside the (short) descent."""
    lrs = np.logspace(-4, 1, 100)
    losses = 2.0 - 1.5 / (1 + np.exp(-(np.log10(lrs) - np.log10(0.08)) * 40)) + (lrs / 0.3) ** 6
    return FinderResult(lrs=list(lrs), losses=list(losses)).to_dict()


def test_the_label_says_how_far_below_the_minimum_a_clipped_suggestion_really_is() -> None:
    # Bug: the legend said "a decade below the edge" for a suggestion 0.5 decades below the loss minimum (the rule
    # keeps its LR inside the descent; the record's backoff_decades is the back-off *before* that clip).
    d = _cliff_record()
    assert d["regime"] == "explosion" and d["backoff_decades"] == 1.0  # the curve the bug needs: clean, explodes
    lrs = [lr for lr, v in zip(d["lrs"], d["losses"]) if v is not None]
    lr_min = lrs[int(np.argmin(smooth_curve(np.asarray([v for v in d["losses"] if v is not None]))))]
    decades = math.log10(lr_min / d["suggestion"])  # the known answer, from the curve itself
    assert 0.3 < decades < 0.7
    label = _suggestion_label(d)
    assert "a decade below" not in label
    assert f"{decades:.2g} decades below the minimum" in label and "descent" in label


def test_a_suggestion_a_full_back_off_below_keeps_the_regime_label() -> None:
    # the fix must not relabel the ordinary case: a clean explosion whose suggestion is a decade below its minimum
    lrs = np.logspace(-4, 1, 100)
    d = FinderResult(lrs=list(lrs), losses=list(1.0 / (1.0 + lrs / 1e-2) + (lrs / 1.0) ** 2)).to_dict()
    assert _suggestion_label(d).startswith("suggestion (robust, a decade below the edge): ")


def test_an_old_record_without_the_back_off_field_is_read_against_its_regime() -> None:
    # a record written before backoff_decades existed: its regime's full back-off (a decade) is what it claimed
    d = _cliff_record()
    del d["backoff_decades"], d["noise"]
    label = _suggestion_label(d)
    assert "a decade below" not in label and "below the minimum (kept inside the descent)" in label


# ------------------------------------------- a million short cycles: the band they sweep, not a slow false beat
def _drawn_y(ax: Any, lo: float, hi: float) -> np.ndarray:
    """Every y value drawn on ``ax`` (lines and filled bands) at an x in ``[lo, hi)``."""
    pts = [np.column_stack([line.get_xdata(), line.get_ydata()]) for line in ax.get_lines()]
    for coll in ax.collections:
        pts.extend(p.vertices for p in coll.get_paths())
    xy = np.concatenate(pts).astype(float)
    keep = (xy[:, 0] >= lo) & (xy[:, 0] < hi) & np.isfinite(xy[:, 1])
    return xy[keep, 1]


def test_a_million_short_cycles_are_drawn_as_the_band_they_sweep_not_a_slow_beat() -> None:
    # Bug: the sampled record of a 10-step cycle over 10^7 steps holds one value every ~500 steps, on an even grid
    # whose stride (500.03 steps) drifts 0.03 steps a sample through the cycle: the picture drew ~50 slow waves
    # (a 200k-step beat) with levels between, where the LR really sweeps 0.001 .. 0.1 every 10 steps.
    n = 10_000_000
    rec = sampled_record(from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=5 unit=step", total_steps=n))
    assert rec["phase_count"] == n // 5
    fig = plot_schedule(rec)
    for ax, (lo_true, hi_true) in ((fig.axes[0], (0.001, 0.1)), (fig.axes[1], (0.8, 0.9))):  # LR, momentum
        for a in np.linspace(0, n, 201)[:-1]:  # every 1/200 of the run (50k steps, 5000 cycles) sweeps it all
            y = _drawn_y(ax, a, a + n / 200)
            assert y.size and y.min() == pytest.approx(lo_true) and y.max() == pytest.approx(hi_true), a
