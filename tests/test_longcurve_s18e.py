"""Session 18: a long range test's curve (20,000 steps) is smoothed by a sliding median, not a sort per window —
the same values as the sort, exactly."""
from __future__ import annotations

import numpy as np
import pytest

from lrkit.finder import suggest as S


@pytest.mark.parametrize("n,w", [(50, 7), (999, 71), (3001, 211), (4000, 281)])
def test_running_median_equals_the_sorted_middle(n: int, w: int) -> None:
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n).round(2)  # rounded: many ties, where a slid window must still drop the right one
    h = w // 2
    padded = np.concatenate([np.full(h, y[0]), y, np.full(h, y[-1])])
    want = np.sort(np.lib.stride_tricks.sliding_window_view(padded, w), axis=1)[:, h]
    got = S._running_median(padded, w)
    assert got.shape == want.shape and np.array_equal(got, want)


def test_long_curve_takes_the_sliding_path_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 4000
    rng = np.random.default_rng(0)
    y = 2 - np.tanh(np.linspace(0, 3, n)) + 0.05 * rng.standard_normal(n)
    calls: list[int] = []
    real = S._running_median

    def spy(padded: np.ndarray, w: int) -> np.ndarray:
        calls.append(w)
        return real(padded, w)

    monkeypatch.setattr(S, "_running_median", spy)
    slid = S.smooth_curve(y)
    assert calls == [281]  # 7% of 4000, odd
    monkeypatch.setattr(S, "_SORT_CELLS", 10**9)  # the sort of every window, as before
    sorted_ = S.smooth_curve(y)
    assert calls == [281] and np.array_equal(slid, sorted_)


def test_short_curve_and_nan_keep_their_paths() -> None:
    y = np.array([3.0, 2.0, np.nan, 1.0, 0.5, 0.4, 0.3])
    out = S.smooth_curve(y, window=3)
    assert np.isnan(out).any()  # NaN stays NaN (np.median's path)
    z = np.array([3.0, 2.0, 2.5, 1.0, 0.5, 0.4, 0.3])
    med = np.array([3.0, 2.5, 2.0, 1.0, 0.5, 0.4, 0.3])
    assert np.allclose(S.smooth_curve(z, window=3), np.convolve(np.r_[med[0], med, med[-1]], np.ones(3) / 3, "valid"))
