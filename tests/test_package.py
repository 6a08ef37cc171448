"""The package surface: public names and subpackages are reachable lazily from a bare ``import lrkit``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _helpers import fresh_python


def test_subpackages_are_attributes_of_a_bare_import() -> None:
    got = fresh_python(
        "import sys, lrkit\n"
        "print(lrkit.monitor.LossSpike.__name__, lrkit.plots.finder.plot_finder.__name__, "
        "lrkit.scaling.layer_names.__name__, lrkit.finder.find_lr.__name__, 'matplotlib' in sys.modules)"
    )
    assert got == "LossSpike plot_finder layer_names find_lr False"  # and no matplotlib until a picture is drawn


def test_unknown_attributes_still_raise() -> None:
    import lrkit

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = lrkit.nope  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = lrkit.plots.nope  # type: ignore[attr-defined]
