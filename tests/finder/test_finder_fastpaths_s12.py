"""Session 12: the range test's divergence check against an easy first batch, its caps on huge step counts, and the
fast paths of its per-step helpers (each must give exactly what the general path gives)."""

from __future__ import annotations

import re
import warnings
from collections import namedtuple

import numpy as np
import pytest
import torch

import lrkit
from lrkit._step import move_to
from lrkit._utils import check_int
from lrkit.finder.suggest import smooth_curve


def _regression(easy_first: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, ...]]]:
    torch.manual_seed(0)
    x = torch.randn(640, 8)
    y = 3 * (x @ torch.randn(8, 1) + 0.1 * torch.randn(640, 1))
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 640, 32)]
    model = torch.nn.Linear(8, 1)
    if easy_first:  # a first batch whose targets the untrained model nearly fits: a loss ~1e-4 against ~40
        with torch.no_grad():
            batches[0] = (batches[0][0], model(batches[0][0]) + 0.01)
    return model, torch.optim.SGD(model.parameters(), lr=0.01), batches


def test_an_easy_first_batch_is_not_read_as_divergence() -> None:
    model, opt, batches = _regression(easy_first=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = lrkit.find_lr(model, opt, batches, num_steps=100)
    assert result.losses[0] < 1e-3 < 10 < result.losses[1]  # the setting: one easy batch, then ordinary ones
    # the test ran into the LRs where this regression really diverges (~0.1-1 for SGD here), not two steps
    assert result.num_steps_run > 60, (result.num_steps_run, result.stop_reason)
    assert not any("too short" in str(w.message) for w in caught)
    # and it reads the same curve as the test without the easy batch, from step 2 on
    model2, opt2, batches2 = _regression(easy_first=False)
    plain = lrkit.find_lr(model2, opt2, batches2, num_steps=100)
    assert abs(np.log10(result.suggestion) - np.log10(plain.suggestion)) < 0.5


def test_a_divergence_from_the_first_step_still_stops_within_a_few_steps() -> None:
    model, opt, batches = _regression(easy_first=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too short to judge: that is the point here
        result = lrkit.find_lr(model, opt, batches, start_lr=1.0, end_lr=100.0, num_steps=100)
    assert result.losses[2] > 10 * result.losses[0]  # the setting: blowing up from the first step
    assert result.stop_reason == "diverged"
    # the best counts from the fifth step on (an easy first batch must not set it), so it stops a few steps later
    # than a check from the second step would (3 here), and never lets the loss run on
    assert result.num_steps_run <= 8, result.num_steps_run


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("accumulation_steps", 10**400, "1.00e+400"),
    ("accumulation_steps", 2_000_000, "2,000,000"),
    ("num_steps", 10**5000, "1.00e+5000"),  # past str()'s 4300 digits: still a clear message
], ids=["accumulation-1e400", "accumulation-2e6", "num_steps-1e5000"])
def test_huge_step_counts_are_refused_with_their_value(key: str, value: int, shown: str) -> None:
    model, opt, batches = _regression(easy_first=False)
    with pytest.raises(ValueError, match=re.escape(f"{key}={shown} must be at most 1,000,000")):
        lrkit.find_lr(model, opt, batches, **{key: value})


def test_check_int_maximum_names_value_and_bound() -> None:
    assert check_int("n", 7, 1, maximum=7) == 7
    with pytest.raises(ValueError, match=r"n=9,999,999,999,999,999 must be at most 100 \(hint\)"):
        check_int("n", 10**16 - 1, 1, " (hint)", maximum=100)
    with pytest.raises(ValueError, match=r"n=9\.99e\+399 must be at most"):
        check_int("n", 10**400 - 1, 1, maximum=100)


def test_move_to_rebuilds_only_what_moves_and_keeps_container_types() -> None:
    cpu, meta = torch.device("cpu"), torch.device("meta")
    x, y = torch.zeros(2), torch.ones(2)
    batch = [x, [y, "tag"]]
    assert move_to(batch, cpu) is batch  # nothing to move: the same object, nothing rebuilt
    moved = move_to(batch, meta)
    assert type(moved) is list and type(moved[1]) is list and moved[1][1] == "tag"
    assert moved[0].device == meta and moved[1][0].device == meta
    assert batch[0].device == cpu and batch[1][0].device == cpu  # the caller's batch is untouched
    # an item after the first that moves, in a named tuple: the type and every field come through
    Batch = namedtuple("Batch", "name x y")
    nb = move_to(Batch("a", x.to(meta), y), meta)
    assert type(nb) is Batch and nb.name == "a" and nb.x.device == meta and nb.y.device == meta


def _median_reference(y: np.ndarray, window: int | None = None) -> np.ndarray:
    """smooth_curve as written with np.median (before its fast path)."""
    n = len(y)
    w = window or max(3, round(0.07 * n) | 1)
    w = min(w | 1, n if n % 2 else n - 1)
    h = w // 2
    padded = np.concatenate([np.full(h, y[0]), y, np.full(h, y[-1])])
    med = np.median(np.lib.stride_tricks.sliding_window_view(padded, w), axis=1)
    padded = np.concatenate([np.full(h, med[0]), med, np.full(h, med[-1])])
    return np.convolve(padded, np.ones(w) / w, mode="valid")


@pytest.mark.parametrize("n", [3, 4, 10, 37, 100, 200, 1000])
@pytest.mark.parametrize("window", [None, 4, 9])
def test_smooth_curve_is_bit_identical_to_the_median_filter(n: int, window: int | None) -> None:
    rng = np.random.default_rng(n)
    for scale in (1e-8, 1.0, 1e8):
        y = scale * rng.standard_normal(n) + 3.0
        np.testing.assert_array_equal(smooth_curve(y, window), _median_reference(y, window))
    y[n // 2] = np.nan  # the general path: a NaN spreads as np.median spreads it
    np.testing.assert_array_equal(smooth_curve(y, window), _median_reference(y, window))


def test_a_record_of_floats_is_copied_and_other_numbers_converted() -> None:
    lrs = [1e-3, 1e-2, 1e-1]
    result = lrkit.FinderResult(lrs=lrs, losses=[1, np.float32(0.5), 2.0])
    assert result.lrs == lrs and result.lrs is not lrs
    assert result.losses == [1.0, 0.5, 2.0] and all(type(v) is float for v in result.losses)
    with pytest.raises(ValueError, match=r"losses\[1\]=True"):
        lrkit.FinderResult(lrs=lrs, losses=[1.0, True, 2.0])
