"""A range test's noise that is small but not zero reads as itself in ``lrkit find``'s table, never as "0.00"."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lrkit.cli.find import _curve_reading
from lrkit.finder import FinderResult

_LRS = np.logspace(-6, 1, 100)
_Z = np.random.default_rng(0).standard_normal(100)


@pytest.mark.parametrize("scale", [3e-4, 1e-3, 3e-3])
def test_a_small_noise_is_printed_with_its_own_digits(scale: float) -> None:
    # Bug: the row printed the noise with two decimals, so a clean curve's 0.0044 read "noise 0.00" — as if the
    # test had measured no scatter at all (a curve with none has noise nan and shows no noise).
    r = FinderResult(lrs=list(_LRS), losses=list(1 / (1 + _LRS / 1e-3) + (_LRS / 0.3) ** 2 + scale * _Z),
                     start_lr=1e-6, end_lr=10.0)
    assert 0 < r.noise < 0.005, r.noise  # the case: two decimals round it to zero
    shown = re.search(r"noise ([0-9.]+)", _curve_reading(r)).group(1)
    assert float(shown) > 0 and abs(float(shown) - r.noise) <= 0.05 * r.noise, (shown, r.noise)


def test_a_noise_of_a_hundredth_or_more_keeps_two_decimals() -> None:
    r = FinderResult(lrs=list(_LRS), losses=list(1 / (1 + _LRS / 1e-3) + (_LRS / 0.3) ** 2 + 0.03 * _Z),
                     start_lr=1e-6, end_lr=10.0)
    assert 0.01 < r.noise < 0.07, r.noise
    assert f"noise {r.noise:.2f}" in _curve_reading(r)


def test_the_picture_of_a_loss_that_reached_almost_zero_has_no_negative_axis() -> None:
    # Bug: the 5% padding under the lowest loss drew the loss axis from -0.1 for a curve that fell from 2.3 to 0.01
    # — negative training losses that no cross-entropy can have.
    from lrkit.plots.finder import plot_finder

    r = FinderResult(lrs=list(_LRS), losses=list(2.3 / (1 + _LRS / 1e-3) + 0.01 + (_LRS / 0.3) ** 2),
                     start_lr=1e-6, end_lr=10.0)
    low, high = plot_finder(r).axes[0].get_ylim()
    assert low == 0.0 and high > 2.3


def test_the_picture_of_a_negative_loss_keeps_its_padding() -> None:
    from lrkit.plots.finder import plot_finder

    r = FinderResult(lrs=list(_LRS), losses=list(-1.0 / (1 + _LRS / 1e-3) + (_LRS / 0.3) ** 2),
                     start_lr=1e-6, end_lr=10.0)
    low, _ = plot_finder(r).axes[0].get_ylim()
    assert low < min(r.losses)
