"""Suggestion rules on synthetic curves with a known best point."""

from __future__ import annotations

import numpy as np
import pytest

from lrkit.finder import suggest as S


def curve(n: int = 100, lr_learn: float = 1e-3, lr_blow: float = 0.3, noise: float = 0.0, seed: int = 0):
    """Loss falls like a sigmoid in log10(lr) centred at lr_learn, then explodes from lr_blow on."""
    lrs = np.logspace(-7, 1, n)
    t = np.log10(lrs)
    fall = 1.0 / (1.0 + np.exp(-(t - np.log10(lr_learn)) * 3.0))
    loss = 2.0 - 1.5 * fall + np.where(lrs > lr_blow, (np.log10(lrs / lr_blow)) ** 2 * 8, 0.0)
    rng = np.random.default_rng(seed)
    return lrs, loss + noise * rng.standard_normal(n)


def test_steepest_finds_the_inflection():
    lrs, losses = curve(n=200)
    assert S.suggest_steepest(lrs, losses) == pytest.approx(1e-3, rel=0.15)


def test_minimum_is_a_tenth_of_fastais_ema_argmin():
    lrs = np.logspace(-4, 0, 41)
    losses = (np.log10(lrs) + 1.5) ** 2  # minimum exactly at 10**-1.5
    smoothed = S.ema(losses, 0.98)
    assert S.suggest_minimum(lrs, losses) == pytest.approx(lrs[int(np.argmin(smoothed))] / 10, rel=1e-12)
    # the EMA's lag puts fastai's minimum past the true one; the robust rule reads the lag-free curve
    assert S.suggest_minimum(lrs, losses) > 10**-1.5 / 10
    # this parabola ends below its starting loss (a plateau, by the robust rule's reading): half a decade below
    assert S.suggest_robust(lrs, losses) == pytest.approx(10**-1.5 / 10**0.5, rel=1e-9)
    assert S.suggest_robust(lrs, losses, plateau_backoff_decades=None) == pytest.approx(10**-1.5 / 10, rel=1e-9)


def _rise(losses):
    s = S.smooth_curve(losses)
    return (s[-1] - s.min()) / abs(s[0])


@pytest.mark.parametrize("blow_scale", [0.0, 0.05, 0.2, 8.0, 50.0])
def test_robust_backs_off_a_decade_from_an_explosion_and_half_a_decade_from_a_plateau(blow_scale):
    # the same descent; past lr=0.3 the loss rises by blow_scale * (decades past 0.3)^2
    lrs = np.logspace(-7, 1, 200)
    t = np.log10(lrs)
    loss = 2.0 - 1.5 / (1.0 + np.exp(-(t + 3.0) * 3.0)) + np.where(lrs > 0.3, np.log10(lrs / 0.3) ** 2 * blow_scale,
                                                                     0.0)
    s = S.smooth_curve(loss)
    lr_min = lrs[int(np.argmin(s))]
    plateau = _rise(loss) < S.ROBUST_PLATEAU_RISE
    assert plateau == (blow_scale <= 0.2)  # rises of 0, 0.05, 0.2 |first loss| (plateaus) and 8, 53 (explosions)
    decades = S.ROBUST_PLATEAU_BACKOFF_DECADES if plateau else S.ROBUST_BACKOFF_DECADES
    assert S.suggest_robust(lrs, loss) == pytest.approx(lr_min / 10**decades, rel=1e-9)


def test_a_non_finite_loss_is_an_explosion_whatever_the_rise():
    lrs = np.logspace(-4, 0, 60)
    losses = 1.0 / (1.0 + lrs / 1e-2)
    s = S.smooth_curve(losses)
    assert S.suggest_robust(lrs, losses) == pytest.approx(lrs[int(np.argmin(s))] / 10**0.5, rel=1e-9)
    cut = losses.copy()
    cut[-1] = np.nan  # the range test stopped on a non-finite loss: the edge was reached
    s = S.smooth_curve(cut[:-1])
    assert S.suggest_robust(lrs, cut) == pytest.approx(lrs[int(np.argmin(s))] / 10, rel=1e-9)


def fastai_valley(lrs, losses):
    """fastai.callback.schedule.valley, transcribed literally (losses already smoothed by fastai's recorder)."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx])


@pytest.mark.parametrize("seed", range(5))
def test_valley_matches_fastai(seed):
    lrs, losses = curve(noise=0.05, seed=seed)
    assert S.suggest_valley(lrs, losses) == fastai_valley(lrs, S.ema(losses, 0.98))


def test_ema_is_bias_corrected():
    np.testing.assert_allclose(S.ema(np.full(10, 3.0), 0.98), 3.0)


def test_smoothing_has_no_lag():
    lrs = np.logspace(-4, 0, 101)
    losses = (np.log10(lrs) + 2) ** 2
    assert int(np.argmin(S.smooth_curve(losses))) == 50  # an EMA would put it later
    assert int(np.argmin(S.ema(losses, 0.9))) > 50


@pytest.mark.parametrize("seed", range(5))
def test_robust_sits_inside_the_descent_below_the_edge(seed):
    lrs, losses = curve(noise=0.03, seed=seed)
    lr = S.suggest_robust(lrs, losses)
    assert 3e-4 < lr < 0.3  # the loss falls from ~1e-4 and the curve's edge is 0.3
    lr_min = lrs[int(np.argmin(S.smooth_curve(losses)))]
    assert lr < lr_min


def test_robust_ignores_a_single_spike():
    lrs, losses = curve(noise=0.02, seed=1)
    base = S.suggest_robust(lrs, losses)
    spiky = losses.copy()
    spiky[60] = 50.0  # one bad batch
    spiky[30] = -5.0
    assert S.suggest_robust(lrs, spiky) == pytest.approx(base, rel=0.25)


def test_range_brackets_the_suggestion():
    lrs, losses = curve(noise=0.02, seed=3)
    low, high = S.lr_range(lrs, losses)
    assert low < S.suggest_robust(lrs, losses) <= high
    assert 1e-5 < low < 1e-3 < high <= 0.3


def test_unknown_rule_suggests_the_closest():
    lrs, losses = curve()
    with pytest.raises(ValueError, match="Did you mean 'steepest'"):
        S.suggest(lrs, losses, "steepst")


def test_too_few_points():
    with pytest.raises(ValueError, match="at least 3 finite"):
        S.suggest([1e-3, 1e-2], [1.0, float("nan")])
