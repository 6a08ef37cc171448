"""Every picture lrkit draws, from saved records only (matplotlib with the Agg backend, imported lazily).

One module per record kind: ``finder`` (range-test curves), ``schedule`` (LR/momentum vs step),
``results`` (a training run's results.csv), ``monitor`` (health events on a run's curves).
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = frozenset({"finder", "schedule", "results", "monitor"})


def __getattr__(name: str) -> Any:
    """``lrkit.plots.finder`` etc. without an explicit import (each module imports matplotlib only when it draws)."""
    if name in _MODULES:
        return importlib.import_module(f"lrkit.plots.{name}")
    raise AttributeError(f"module 'lrkit.plots' has no attribute {name!r}")
