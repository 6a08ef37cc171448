"""Training with the learning rate taken care of: :func:`train` and its :class:`TrainResults`.

``lrkit.train`` is both this package and the function: the package is *callable*, ``lrkit.train(...)`` runs
:func:`lrkit.train.trainer.train`. (A package attribute cannot be a function while a subpackage of that name
exists — importing ``lrkit.train.auto`` would rebind ``lrkit.train`` to the package — so the package itself
forwards calls.)

>>> import tempfile, lrkit
>>> results = lrkit.train(data="iris", model="linear", epochs=2, project=tempfile.mkdtemp(), verbose=False,
...                       plots=False)
>>> results.epochs_run, results.lr0_source
(2, 'default')
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

from lrkit.train.results import TrainResults
from lrkit.train.reuse import LoadedRun, load_run
from lrkit.train.trainer import train

__all__ = ["LoadedRun", "TrainResults", "load_run", "train"]

#: ``inspect.signature(lrkit.train)`` shows train()'s keywords.
__signature__ = inspect.signature(train)


class _CallablePackage(types.ModuleType):
    """The ``lrkit.train`` package, callable as :func:`train`."""

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResults:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
