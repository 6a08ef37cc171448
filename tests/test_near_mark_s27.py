"""A distance within float rounding of a mark prints as the mark, as ``_number_apart``'s docstring says: a back-off
1e-16 decades from the minimum is "at the minimum" (it printed "1e-16 decades below the minimum": review 27f)."""

from __future__ import annotations

from lrkit.plots.finder import _below, _number_apart


def test_a_tiny_distance_from_zero_prints_as_zero() -> None:
    assert _number_apart(1e-16, (0.0, 1.0)) == "0"
    assert _below(1e-16, "the minimum") == ", at the minimum"


def test_values_off_the_marks_read_as_before() -> None:
    assert _number_apart(0.99924, (0.0, 1.0)) == "0.999"
    assert _number_apart(1e-3, (0.0, 1.0)) == "0.001"
    assert _number_apart(0.07002, (0.07, 0.1), fixed=True) == "0.07002"
