"""A curve too flat to judge, read from where it blew up (``flat_edge`` / ``suggest_robust(flat=...)``): the eighth
fresh set's pre-registered candidate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from _helpers import flat_band_exit
from lrkit.finder import suggest as S
from lrkit.finder.result import FinderResult

LRS = np.logspace(-7, 1, 100)
NOISE = np.random.default_rng(0).normal(0, 0.01, 100)
FLAT = 1.39 + NOISE + (LRS / 0.3) ** 4  # learns nothing, blows up near 0.3 (a GRU's range test)
LEARNS = 1 / (1 + LRS / 1e-3) + (LRS / 0.3) ** 4 + NOISE  # falls, then blows up: an ordinary curve


def test_flat_edge_is_where_the_smoothed_loss_leaves_its_band() -> None:
    edge = S.flat_edge(LRS, FLAT)
    assert edge == flat_band_exit(FLAT) + 1
    assert 0.03 < LRS[edge - 1] < 0.3  # on the way up, before the blow-up itself


def test_flat_edge_is_none_on_a_curve_that_learns_or_never_leaves_the_band() -> None:
    assert S.flat_edge(LRS, LEARNS) is None
    assert S.flat_edge(LRS, 1.39 + NOISE) is None  # flat to the end: nothing to read
    # a 2% drop is learning (the range test's own "too flat" line): at 1.9% the curve is still flat
    assert S.flat_edge(LRS, FLAT, flat=0.001) is None


def test_suggest_robust_with_flat_backs_off_a_decade_from_the_edge() -> None:
    edge = S.flat_edge(LRS, FLAT)
    assert S.suggest_robust(LRS, FLAT, flat=0.02) == pytest.approx(LRS[edge - 1] / 10)
    assert S.suggest_robust(LRS, FLAT, flat=0.02, backoff_decades=0.5) == pytest.approx(LRS[edge - 1] / 10**0.5)
    assert S.robust_backoff(LRS, FLAT, flat=0.02) == 1.0
    assert S.robust_regime(LRS, FLAT, flat=0.02) == "explosion"
    # on by default since the eighth fresh set; off, the curve's minimum (scatter on a flat curve) decides
    assert S.ROBUST_FLAT == 0.02 and S.suggest_robust(LRS, FLAT) == S.suggest_robust(LRS, FLAT, flat=0.02)
    assert S.suggest_robust(LRS, FLAT, flat=None) < LRS[edge - 1] / 100
    # a curve that learns is read as before
    assert S.suggest_robust(LRS, LEARNS, flat=0.02) == S.suggest_robust(LRS, LEARNS)


def test_never_below_the_first_lr() -> None:
    lrs = np.logspace(-3, 1, 100)
    curve = 1.0 + 0.001 * np.random.default_rng(1).normal(size=100) + (lrs / 1e-2) ** 4  # leaves the band early
    edge = S.flat_edge(lrs, curve)
    assert edge is not None and lrs[edge - 1] / 10 < lrs[0]  # a decade below the edge is below the test's range
    assert S.suggest_robust(lrs, curve, flat=0.02) == lrs[0]


@pytest.mark.parametrize("bad", [-0.02, math.nan, math.inf])
def test_a_bad_flat_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match="flat"):
        S.suggest_robust(LRS, FLAT, flat=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flat"):
        S.flat_edge(LRS, FLAT, flat=bad)  # type: ignore[arg-type]


def test_finder_result_reads_flat_as_an_option_and_from_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    r = FinderResult(lrs=list(LRS), losses=list(FLAT), start_lr=1e-7, end_lr=10.0, passes=2.0)
    edge_lr = float(LRS[S.flat_edge(LRS, FLAT) - 1])
    assert r.suggest(flat=0.02) == pytest.approx(edge_lr / 10) == pytest.approx(r.suggestion)
    assert r.edge == edge_lr and r.regime == "explosion" and r.backoff == 1.0
    monkeypatch.setattr(S, "ROBUST_FLAT", None)  # off: the edge is the (noisy) smoothed minimum
    assert r.edge != edge_lr and r.suggestion == r.suggest(flat=None) != pytest.approx(edge_lr / 10)


# ------------------------------------------------------------------ flat_sigmas: flat within the curve's own scatter
NOISY_FLAT = 0.69 + 0.03 * np.random.default_rng(1).normal(size=100) + (LRS / 0.3) ** 4  # ln 2 read in small batches


def test_a_chance_dip_within_the_scatter_is_flat_with_flat_sigmas() -> None:
    s = S.smooth_curve(NOISY_FLAT)
    start = float(np.median(NOISY_FLAT[:12]))
    assert start - s.min() > 0.02 * start  # the chance dip passes the 2% line: "learning" without flat_sigmas
    assert S.flat_edge(LRS, NOISY_FLAT) is None
    edge = S.flat_edge(LRS, NOISY_FLAT, flat_sigmas=2.0)
    assert edge is not None and 0.03 < LRS[edge - 1] < 0.5
    assert S.suggest_robust(LRS, NOISY_FLAT, flat_sigmas=2.0) == pytest.approx(LRS[edge - 1] / 10)
    assert S.suggest_robust(LRS, NOISY_FLAT, flat_sigmas=2.0, flat=None) == S.suggest_robust(LRS, NOISY_FLAT, flat=None)
    # a curve that really learns is not flat whatever flat_sigmas (its drop is many sigmas)
    assert S.flat_edge(LRS, LEARNS, flat_sigmas=2.0) is None
    assert S.ROBUST_FLAT_SIGMAS == 2.0  # the default since the ninth fresh set
    assert S.suggest_robust(LRS, NOISY_FLAT) == S.suggest_robust(LRS, NOISY_FLAT, flat_sigmas=2.0)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_a_bad_flat_sigmas_is_named(bad: float) -> None:
    with pytest.raises(ValueError, match="flat_sigmas"):
        S.suggest_robust(LRS, FLAT, flat_sigmas=bad)
    with pytest.raises(ValueError, match="flat_sigmas"):
        S.robust_regime(LRS, FLAT, flat_sigmas=bad)


def test_finder_result_takes_flat_sigmas(monkeypatch: pytest.MonkeyPatch) -> None:
    r = FinderResult(lrs=list(LRS), losses=list(NOISY_FLAT), start_lr=1e-7, end_lr=10.0, passes=2.0)
    edge_lr = float(LRS[S.flat_edge(LRS, NOISY_FLAT, flat_sigmas=2.0) - 1])
    assert r.suggest(flat_sigmas=2.0) == pytest.approx(edge_lr / 10) == pytest.approx(r.suggestion)
    assert r.edge == edge_lr and r.suggest(flat_sigmas=None) != pytest.approx(r.suggestion)
    monkeypatch.setattr(S, "ROBUST_FLAT_SIGMAS", None)
    assert r.suggestion == r.suggest(flat_sigmas=None) and r.edge != edge_lr


def test_a_flat_curve_that_turns_non_finite_left_its_band_at_its_last_finite_point() -> None:
    """A hunt found it: a flat curve ending in NaN/inf (the range test's non-finite stop) read as no flat curve at all
    — an explosion scaled by its (huge) noise to almost no back-off — while the same curve ending in one large finite
    loss got the full decade from its edge."""
    n = 70
    flat = 0.69 + 0.01 * np.random.default_rng(3).normal(size=n)
    lrs = LRS[:n]
    with_inf = np.r_[flat, np.inf]
    with_big = np.r_[flat, 1e6]
    edge_inf = S.flat_edge(LRS[: n + 1], with_inf)
    assert edge_inf == n  # the last finite point (the curve as every rule reads it has n points)
    assert S.suggest_robust(LRS[: n + 1], with_inf) == pytest.approx(lrs[-1] / 10)
    big = S.suggest_robust(LRS[: n + 1], with_big)
    assert LRS[n] / 100 < big <= lrs[-1] / 10 * 1.5  # the finite twin: a decade below a nearby edge
    nan_tail = np.r_[flat, np.nan, np.nan]
    assert S.flat_edge(LRS[: n + 2], nan_tail) == n
    assert S.flat_edge(lrs, flat) is None  # all finite and never leaving the band: nothing blew up
