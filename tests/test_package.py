"""The package surface: public names and subpackages are reachable lazily from a bare ``import lrkit``."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return its stdout."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_subpackages_are_attributes_of_a_bare_import() -> None:
    got = _fresh(
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
