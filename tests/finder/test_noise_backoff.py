"""The robust rule's noise scaling (``noise_band``): its back-off shrinks from a decade to none as a range-test
curve's batch-to-batch scatter grows relative to the drop it made (docs/benchmarks/finder.md, "Third fresh set")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrkit.finder import FinderResult
from lrkit.finder import suggest as S

LRS = np.logspace(-6, 0, 100)
CLEAN = 1 / (1 + LRS / 1e-3) + (LRS / 0.1) ** 2  # learns from ~1e-3, blows up past ~0.1


def _noisy(scale: float, seed: int = 0) -> np.ndarray:
    return CLEAN + np.random.default_rng(seed).normal(0, scale, len(LRS))


def _lr_min(curve: np.ndarray) -> float:
    return float(LRS[int(np.argmin(S.smooth_curve(curve)))])


def test_noise_ratio_is_the_robust_scatter_over_the_drop() -> None:
    curve = _noisy(0.05)
    smooth = S.smooth_curve(curve)
    i = int(np.argmin(smooth))
    resid = (curve - smooth)[: i + 1]
    mad = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    drop = np.median(curve[:12]) - smooth[i]  # the first eighth of 100 points
    assert S.noise_ratio(LRS, curve) == pytest.approx(mad / drop, rel=1e-12)
    assert S.noise_ratio(LRS, CLEAN) < 0.01
    assert math.isnan(S.noise_ratio(LRS, np.ones(100)))  # no drop: no reading


@pytest.mark.parametrize("scale", [0.0, 0.002, 0.01])
def test_a_clean_curve_keeps_the_full_back_off(scale: float) -> None:
    curve = _noisy(scale)
    assert S.noise_ratio(LRS, curve) <= S.ROBUST_NOISE_BAND[0]
    assert S.robust_backoff(LRS, curve) == 1.0
    assert S.suggest_robust(LRS, curve) == S.suggest_robust(LRS, curve, noise_band=None)


def test_a_noise_dominated_curve_takes_the_minimum_itself() -> None:
    curve = _noisy(0.3)
    assert S.noise_ratio(LRS, curve) >= S.ROBUST_NOISE_BAND[1]
    assert S.robust_backoff(LRS, curve) == 0.0
    assert S.suggest_robust(LRS, curve) == pytest.approx(_lr_min(curve))
    assert S.suggest_robust(LRS, curve, noise_band=None) == pytest.approx(_lr_min(curve) / 10, rel=0.2)


def test_between_the_band_the_back_off_is_linear_in_the_ratio() -> None:
    # find a noise scale whose ratio falls inside the band, then check w = (high - ratio) / (high - low)
    low, high = S.ROBUST_NOISE_BAND
    inside = [(s, S.noise_ratio(LRS, _noisy(s, 3))) for s in np.linspace(0.01, 0.2, 60)]
    scale, ratio = next((s, r) for s, r in inside if low < r < high)
    assert S.robust_backoff(LRS, _noisy(scale, 3)) == pytest.approx((high - ratio) / (high - low), rel=1e-12)
    # a plateau's half decade is scaled the same way
    assert S.robust_backoff(LRS, _noisy(scale, 3), plateau_rise=1e9) == pytest.approx(
        0.5 * (high - ratio) / (high - low), rel=1e-12)


def test_a_custom_band_moves_the_ramp() -> None:
    curve = _noisy(0.3)
    ratio = S.noise_ratio(LRS, curve)
    assert S.robust_backoff(LRS, curve, noise_band=(ratio + 1, ratio + 2)) == 1.0  # all of the band above it
    assert S.robust_backoff(LRS, curve, noise_band=(0.0, 2 * ratio)) == pytest.approx(0.5)


@pytest.mark.parametrize("band", [(0.1, 0.07), (0.1, 0.1), (-0.1, 0.1), (0.0, math.inf), (0.1,), "0.1", (0.1, "x")])
def test_a_bad_noise_band_is_named(band: object) -> None:
    with pytest.raises(ValueError, match=r"noise_band="):
        S.suggest_robust(LRS, CLEAN, noise_band=band)  # type: ignore[arg-type]


def test_the_finder_result_reports_the_reading_and_the_back_off() -> None:
    curve = _noisy(0.3)
    r = FinderResult(lrs=list(LRS), losses=list(curve), start_lr=1e-6, end_lr=1.0, num_steps=100)
    assert r.noise == pytest.approx(S.noise_ratio(LRS, curve)) and r.backoff == 0.0
    d = r.to_dict()
    assert d["backoff_decades"] == 0.0 and d["noise"] == pytest.approx(r.noise)
    assert r.suggest(noise_band=None) < r.suggestion  # the option reaches the rule
    clean = FinderResult(lrs=list(LRS), losses=list(CLEAN), start_lr=1e-6, end_lr=1.0, num_steps=100)
    assert clean.backoff == 1.0 and clean.to_dict()["backoff_decades"] == 1.0


def test_lr0_auto_reads_the_range_test_with_the_noise_scaling_unless_switched_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.train import auto
    from lrkit.train.auto import PLATEAU_BACKOFF_DECADES, _suggestion

    curve = _noisy(0.3)
    r = FinderResult(lrs=list(LRS), losses=list(curve), start_lr=1e-6, end_lr=1.0, num_steps=100)
    assert auto.NOISE_SCALING is True
    assert _suggestion(r) == S.suggest_robust(LRS, curve, plateau_backoff_decades=PLATEAU_BACKOFF_DECADES)
    monkeypatch.setattr(auto, "NOISE_SCALING", False)
    assert _suggestion(r) == S.suggest_robust(LRS, curve, plateau_backoff_decades=PLATEAU_BACKOFF_DECADES,
                                              noise_band=None) < r.suggestion


@pytest.mark.parametrize("curve", [np.linspace(1.0, 2.0, 100), np.ones(100), 1.0 + (LRS / 1e-3) ** 2])
def test_the_robust_suggestion_never_falls_below_the_lowest_lr_tested(curve: np.ndarray) -> None:
    """A curve lowest at its start (rising, flat) suggested lr_min / 10: below anything the test saw. (A flat one
    that blows up is read from where it left its flat band since the eighth fresh set: still never below LRS[0].)"""
    assert S.suggest_robust(LRS, curve, flat=None) == LRS[0]
    edge = S.flat_edge(LRS, curve)
    want = LRS[0] if edge is None else max(LRS[0], LRS[edge - 1] / 10)
    assert S.suggest_robust(LRS, curve) == want >= LRS[0]
