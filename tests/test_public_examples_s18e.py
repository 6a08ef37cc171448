"""Session 18: every public function and class (each module's ``__all__``) has a docstring with a runnable example
(``>>>``; the doctests run with the suite); constants, and the names of things that are data, are exempt."""
from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = ("lrkit", "lrkit.schedules", "lrkit.monitor", "lrkit.scaling", "lrkit.finder", "lrkit.train",
           "lrkit.plots.finder", "lrkit.plots.schedule", "lrkit.plots.results", "lrkit.plots.monitor",
           "lrkit.plots.text")


def _public(module: str) -> list[tuple[str, object]]:
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    assert names, f"{module} has no __all__"
    return [(f"{module}.{n}", getattr(mod, n)) for n in names]


@pytest.mark.parametrize("module", MODULES)
def test_every_public_function_and_class_has_an_example(module: str) -> None:
    missing = [name for name, obj in _public(module)
               if (inspect.isclass(obj) or inspect.isfunction(obj)) and ">>>" not in (inspect.getdoc(obj) or "")]
    assert not missing, f"public objects without a >>> example: {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_every_public_method_has_a_docstring(module: str) -> None:
    missing = []
    for name, obj in _public(module):
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_") or not (callable(value) or isinstance(value, (property, classmethod,
                                                                                    staticmethod))):
                continue
            if not inspect.getdoc(getattr(obj, attr)):
                missing.append(f"{name}.{attr}")
    assert not missing, f"public methods without a docstring: {missing}"
