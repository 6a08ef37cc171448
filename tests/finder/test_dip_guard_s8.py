"""The double-dip cut's two guards (``dip_noise``, ``dip_passes``): the seventh fresh set's pre-registered candidate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrkit.finder import suggest as S
from lrkit.finder.result import FinderResult

LRS = np.logspace(-4, 1, 100)
FIRST = 1 / (1 + LRS / 1e-2)  # learns from ~1e-2
BUMP = 0.6 * np.exp(-np.log10(LRS / 0.1) ** 2 / 0.02)  # turns up hard near 0.1
CLEAN = FIRST + BUMP - 0.3 * (LRS > 1)  # and falls lower again above 1: a clean double dip


def _scattered(bump: float, scale: float, seed: int = 0) -> np.ndarray:
    """A double dip whose bump is ``bump`` high, under Gaussian scatter of standard deviation ``scale``."""
    curve = FIRST + bump / 0.6 * BUMP - 0.3 * (LRS > 1)
    return curve + np.random.default_rng(seed).normal(0, scale, len(LRS))


def _sigma(curve: np.ndarray) -> float:
    """The scatter the guard measures: 1.4826 MAD of the losses around the smoothed curve, up to its minimum."""
    s = S.smooth_curve(curve)
    resid = (curve - s)[: int(np.argmin(s)) + 1]
    return 1.4826 * float(np.median(np.abs(resid - np.median(resid))))


def _peak(curve: np.ndarray, cut: int) -> float:
    s = S.smooth_curve(curve)
    rm = np.minimum.accumulate(s)
    return float((s - rm)[cut - 1 : int(np.argmin(s)) + 1].max())


# ------------------------------------------------------------------------------------------------- dip_noise
def test_a_clean_double_dip_is_cut_whatever_the_noise_guard() -> None:
    cut = S.dip_cut(LRS, CLEAN)
    assert cut is not None
    assert S.dip_cut(LRS, CLEAN, noise=1.5) == cut == S.dip_cut(LRS, CLEAN, noise=50.0)


def test_the_noise_guard_compares_the_dips_peak_with_the_curves_scatter() -> None:
    curve = _scattered(bump=0.6, scale=0.08, seed=1)
    cut = S.dip_cut(LRS, curve)
    assert cut is not None  # the rise passes the share-of-drop test ...
    ratio = _peak(curve, cut) / _sigma(curve)
    assert 1.5 < ratio < 5.0  # a rise a few sigma high
    # ... and the guard keeps it exactly while the peak stands above noise x sigma
    assert S.dip_cut(LRS, curve, noise=0.9 * ratio) == cut
    assert S.dip_cut(LRS, curve, noise=1.1 * ratio) is None
    assert S.dip_cut(LRS, curve, noise=None) == cut


def test_a_noise_guard_of_zero_keeps_every_cut() -> None:
    for seed in range(5):
        curve = _scattered(bump=0.6, scale=0.05, seed=seed)
        assert S.dip_cut(LRS, curve, noise=0.0) == S.dip_cut(LRS, curve)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "x"])
def test_a_bad_noise_guard_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match="noise"):
        S.dip_cut(LRS, CLEAN, noise=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dip_noise"):
        S.suggest_robust(LRS, CLEAN, dip_noise=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ dip_passes
def test_dip_passes_cuts_only_a_test_that_cycled_through_its_data() -> None:
    assert S.ROBUST_DIP_PASSES == 6.0 and S.ROBUST_DIP_NOISE == 1.5  # the defaults since the seventh fresh set
    cut_lr = S.suggest_robust(LRS, CLEAN, dip_passes=None)
    uncut_lr = S.suggest_robust(LRS, CLEAN, dip_rise=None)
    assert cut_lr < uncut_lr / 10  # the cut matters on this curve
    assert S.suggest_robust(LRS, CLEAN, passes=10.0) == cut_lr
    assert S.suggest_robust(LRS, CLEAN, passes=3.0) == uncut_lr
    assert S.suggest_robust(LRS, CLEAN, passes=6.0) == uncut_lr  # more than: 6 is not enough
    assert S.suggest_robust(LRS, CLEAN) == uncut_lr  # passes unknown: no cut
    assert S.suggest_robust(LRS, CLEAN, passes=3.0, dip_passes=2.0) == cut_lr
    assert S.robust_regime(LRS, CLEAN, passes=10.0) == "explosion"
    assert S.robust_regime(LRS, CLEAN, passes=3.0) == "plateau"


@pytest.mark.parametrize("bad", [-1.0, math.nan, "6", True])
def test_a_bad_dip_passes_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match="dip_passes"):
        S.suggest_robust(LRS, CLEAN, dip_passes=bad, passes=10.0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ FinderResult
def _result(passes: float | None) -> FinderResult:
    return FinderResult(lrs=list(LRS), losses=list(CLEAN), start_lr=1e-4, end_lr=10.0, num_steps=100,
                        passes=passes)


def test_finder_result_takes_the_guards_as_options() -> None:
    r = _result(passes=3.0)
    assert r.suggest() == S.suggest_robust(LRS, CLEAN, passes=3.0) == S.suggest_robust(LRS, CLEAN, dip_rise=None)
    assert r.suggest(dip_passes=None) != r.suggest()
    assert r.suggest(dip_passes=None, dip_noise=None) == r.suggest(dip_passes=None)  # a clean dip stands out


def test_finder_result_reads_the_module_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    few, many = _result(passes=3.0), _result(passes=10.0)
    assert not few.double_dip and many.double_dip
    assert few.regime == "plateau" and few.range[1] > 1.0  # read whole: the deeper second minimum
    assert many.regime == "explosion" and many.range[1] < 0.1
    monkeypatch.setattr(S, "ROBUST_DIP_PASSES", None)  # no passes guard: the cut as adopted on the fifth fresh set
    assert few.double_dip and few.regime == "explosion" and few.suggest() == many.suggest()
