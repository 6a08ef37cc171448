"""fastai's ``valley`` search in O(n log n) gives fastai's O(n²) answer exactly (session 26: a 10⁴-step record took
16 s to build, all of it in the double loop; 10⁵ steps did not finish in 5 minutes)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import fastai_valley_search
from lrkit.finder import FinderResult
from lrkit.finder.suggest import _longest_decrease


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.floats(-5, 5, allow_nan=False), st.integers(0, 3).map(float)), min_size=0, max_size=60))
def test_the_fast_search_is_fastais(values: list[float]) -> None:
    s = np.asarray(values, dtype=float)
    assert _longest_decrease(s) == fastai_valley_search(s)


def test_a_curve_with_nan_takes_fastais_loop() -> None:
    s = np.array([3.0, np.nan, 2.0, 2.5, 1.0, np.nan, 0.5])
    assert _longest_decrease(s) == fastai_valley_search(s)


def test_long_random_walks_agree() -> None:
    rng = np.random.default_rng(0)
    for n in (200, 1000):
        s = np.cumsum(rng.normal(size=n))
        assert _longest_decrease(s) == fastai_valley_search(s)


def test_a_long_record_reads_its_valley() -> None:
    n = 10**4  # built in milliseconds now (no timing asserted here: benchmarks time things)
    lrs = np.geomspace(1e-7, 10, n)
    loss = 2 / (1 + np.exp((np.log10(lrs) + 2) * 2.5)) + np.where(lrs > 1, (lrs - 1) * 5, 0)
    valley = FinderResult(lrs=list(lrs), losses=list(loss)).suggest("valley")
    assert 1e-4 < valley < 1  # on the way down the sigmoid's drop, before the blow-up at lr > 1
