"""lrkit: the learning-rate toolkit for PyTorch — find, schedule, watch and scale the learning rate.

>>> import lrkit
>>> lrkit.scale_lr(0.1, 256, 1024, rule="linear")
0.4

Public names are imported lazily (PEP 562), so ``import lrkit`` stays cheap and the CLI starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "find_lr": "lrkit.finder",
    "FinderResult": "lrkit.finder",
    "SUGGESTION_RULES": "lrkit.finder",
    "schedules": "lrkit.schedules",
    "Schedule": "lrkit.schedules",
    "Monitor": "lrkit.monitor",
    "MonitorEvent": "lrkit.monitor",
    "train": "lrkit.train",
    "TrainResults": "lrkit.train",
    "load_run": "lrkit.train",
    "choose_lr0": "lrkit.train.auto",
    "AutoLR": "lrkit.train.auto",
    "scale_lr": "lrkit.scaling",
    "param_groups": "lrkit.scaling",
    "freeze_layers": "lrkit.scaling",
    "nominal_batch": "lrkit.scaling",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

# subpackages reachable as attributes (``lrkit.monitor.LossSpike``, ``lrkit.plots.finder``), imported on first use
_SUBMODULES = frozenset({"finder", "monitor", "plots", "scaling"})

if TYPE_CHECKING:  # pragma: no cover
    from lrkit import schedules
    from lrkit.finder import SUGGESTION_RULES, FinderResult, find_lr
    from lrkit.monitor import Monitor, MonitorEvent
    from lrkit.scaling import freeze_layers, nominal_batch, param_groups, scale_lr
    from lrkit.schedules import Schedule
    from lrkit.train import TrainResults, load_run, train
    from lrkit.train.auto import AutoLR, choose_lr0


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None and name in _SUBMODULES:
        module = f"lrkit.{name}"
    if module is None:
        raise AttributeError(f"module 'lrkit' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module == f"lrkit.{name}" else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
