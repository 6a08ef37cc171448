"""The built-in demo task for ``lrkit find``: scikit-learn's digits with the built-in MLP and SGD + momentum.

Also the loader for a user's task file (``lrkit find my_task.py``).
"""

from __future__ import annotations

import difflib
import importlib.machinery
import importlib.util
import inspect
import keyword
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lrkit._utils import error_text, last_frame_in

__all__ = ["FinderTask", "demo_task", "load_task_file"]


@dataclass
class FinderTask:
    """What ``find_lr`` needs: a model, its optimizer, a loader, and how to compute the loss (neither ``loss_fn``
    nor ``step_fn``: ``find_lr``'s default)."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: Any
    loss_fn: Any = None
    step_fn: Any = None


def demo_task(seed: int = 0, batch_size: int = 64) -> FinderTask:
    """Digits with the built-in MLP and SGD(momentum=0.9): the data and model of ``lrkit train data=digits model=mlp``.

    The train split of :func:`lrkit.train.data.load_data` (standardised on it, reproducible from ``seed``) and
    :func:`lrkit.train.models.build_model`, so the demo's suggestion applies to the training quick start.

    >>> task = demo_task()
    >>> task.name, isinstance(task.model, torch.nn.Module)
    ('digits-mlp', True)
    """
    from lrkit.train.data import load_data
    from lrkit.train.models import build_model

    data = load_data("digits", seed=seed)
    loader, _, _ = data.loaders(batch=batch_size, seed=seed)
    torch.manual_seed(seed)
    model = build_model("mlp", data.info)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return FinderTask("digits-mlp", model, optimizer, loader, torch.nn.functional.cross_entropy)


_REQUIRED = ("model", "optimizer", "train_loader")

#: names other frameworks and tutorials give a task's functions, with the name a task file uses for each: a file that
#: defines ``criterion()`` or ``train_step(model, batch)`` and no ``loss_fn``/``step_fn`` is asked whether it meant
#: them (else the default loss would run, silently), and a missing ``model()`` beside a ``get_model()`` is named so
_CONVENTIONAL: dict[str, str] = {
    **dict.fromkeys(("get_model", "build_model", "make_model", "create_model", "load_model", "model_fn"), "model"),
    **dict.fromkeys(("get_optimizer", "make_optimizer", "build_optimizer", "create_optimizer", "configure_optimizers",
                     "configure_optimizer", "optimizer_fn", "optim", "opt"), "optimizer"),
    **dict.fromkeys(("train_dataloader", "get_train_loader", "get_train_dataloader", "dataloader", "data_loader",
                     "get_dataloader", "make_dataloader", "build_dataloader", "create_dataloader", "get_loader",
                     "make_loader", "build_loader", "trainloader", "loader"), "train_loader"),
    **dict.fromkeys(("criterion", "get_criterion", "make_criterion", "loss", "get_loss", "make_loss", "build_loss",
                     "loss_function", "get_loss_fn", "loss_func", "lossfn", "compute_loss"), "loss_fn"),
    **dict.fromkeys(("step", "train_step", "training_step", "forward_step", "step_func", "stepfn"), "step_fn"),
}


def load_task_file(path: str | os.PathLike[str]) -> FinderTask:
    """Build a task from a Python file that defines ``model()``, ``optimizer(params)``, ``train_loader()`` and
    ``loss_fn()`` (returning the loss function) or ``step_fn(model, batch)`` — or neither: then ``find_lr``'s default
    applies, as in the Python API (a Hugging Face batch goes to the model whole, ``model(**batch)``, and its own loss
    is used; ``(x, y)`` batches get the default loss, cross-entropy or mean squared error). A file that defines its
    loss or step under another framework's name (``criterion``, ``compute_loss``, ``train_step``, ...; see
    ``_CONVENTIONAL``) or a misspelt one, and neither ``loss_fn`` nor ``step_fn``, is refused with a "did you mean
    loss_fn()?" rather than run with the default loss in its place; ``loss_fn = None`` says the default is meant.
    A missing ``model()``/``optimizer(params)``/``train_loader()`` beside a ``get_model()``, ``make_optimizer()``,
    ``train_dataloader()``, ... is named so too.

    The file is executed as a module, with its folder first on ``sys.path`` (as ``python my_task.py`` runs it, so it
    can import the modules beside it), then last (its functions still import them; a neighbour named like a module
    imported later, a ``profile.py``, hides nothing); errors name the file and the missing or broken function.
    """
    path = Path(path)
    if path.is_dir():
        example = str(path / "my_task.py")
        raise ValueError(f"task file {str(path)!r} is a directory, not a Python file (e.g. {example!r})")
    if not path.is_file():
        with_py = path.with_name(path.name + ".py")
        hint = f"; did you mean {str(with_py)!r}?" if path.suffix != ".py" and with_py.is_file() else ""
        raise FileNotFoundError(f"task file {str(path)!r} does not exist{hint}")
    spec = importlib.util.spec_from_file_location(_module_name(path), path)
    if spec is None or spec.loader is None:
        raise ValueError(f"task file {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    # as `python my_task.py` does: the file's own folder first on sys.path while its body runs, so that it imports
    # its neighbours (`from my_model import Net`); the console script's sys.path holds neither that folder nor the
    # working one. Then last: its functions still import their neighbours when called, but a neighbour named like a
    # module imported later (a profile.py beside it, which torch.optim's lazy `import cProfile` would run instead of
    # the stdlib's) shadows nothing for the rest of the process
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    # registered as an import registers a module: dataclasses (and typing.get_type_hints) look a class's module up in
    # sys.modules to read its string annotations, and pickle (torch.save of a model whose class the file defines)
    # finds the class through it
    sys.modules[spec.name] = module
    try:
        try:
            _call_user(path, "the module body", spec.loader.exec_module, module)
        except ValueError as e:
            hint = _relative_import_hint(e.__cause__, path)
            if hint:
                raise ValueError(f"{e}{hint}") from e.__cause__
            raise
    except BaseException:
        if sys.modules.get(spec.name) is module:
            del sys.modules[spec.name]
        raise
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
            sys.path.append(folder)
    for name in _REQUIRED:  # `model = Net()` instead of `def model(): return Net()`: say so, do not call it
        value = getattr(module, name, None)
        if isinstance(value, (torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader)):
            raise ValueError(
                f"{name} in task file {str(path)!r} is a {type(value).__name__}, not a function: define {name}() "
                f"returning it{' (from params)' if name == 'optimizer' else ''}"
            )
    missing = [name for name in _REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise ValueError(
            f"task file {str(path)!r} must define {', '.join(f'{m}()' for m in missing)}"
            f"{_hint_text(_alternatives(module, missing))}; see `lrkit find --help` for the expected functions"
        )
    for name in ("loss_fn", "step_fn"):  # loss_fn = "mse": not a function, and not the default loss either
        value = getattr(module, name, None)
        if value is not None and not callable(value):
            what = "a loss function (or loss_fn() returning one)" if name == "loss_fn" else "step_fn(model, batch)"
            raise ValueError(f"{name} in task file {str(path)!r} is a {type(value).__name__}, not a function: define "
                             f"{what}, or set {name} = None for the default loss")
    has_loss = callable(getattr(module, "loss_fn", None))
    has_step = callable(getattr(module, "step_fn", None))
    # Neither: find_lr's default, as in the Python API — a Hugging Face batch (labels, no x/input key) goes to the
    # model whole and its own loss is used, (x, y) batches get the default loss. A misspelt name (lossfn) or another
    # framework's (criterion, train_step) is not meant so: the default loss would run in its place, silently, and
    # the suggestion would be for another loss. `loss_fn = None` says the default is meant.
    chosen = "loss_fn" in vars(module) or "step_fn" in vars(module)
    found = [] if has_loss or has_step or chosen else _alternatives(module, ["loss_fn", "step_fn"])
    if found:
        aliases = " or ".join(f"{name} = {alt}" for alt, name in found)
        raise ValueError(
            f"task file {str(path)!r} must define loss_fn() (returning a loss function) or step_fn(model, batch)"
            f"{_hint_text(found)}: rename {'it' if len(found) == 1 else 'one'}, or add {aliases}; without them the "
            "default loss would run instead — "
            "set loss_fn = None if that is what you mean"
        )
    model = _call_user(path, "model()", module.model)
    if not isinstance(model, torch.nn.Module):
        missing = ": is a `return` missing?" if model is None else ""
        raise ValueError(f"model() in {str(path)!r} returned {type(model).__name__}, expected a torch.nn.Module"
                         f"{missing}")
    # optimizer(params) gets model.parameters(); optimizer(model) the model, to build param groups from its modules
    called = "optimizer(model)" if _first_parameter(module.optimizer) == "model" else "optimizer(params)"
    if called == "optimizer(model)":
        optimizer = _call_user(path, called, module.optimizer, model)
    else:
        try:
            optimizer = _call_user(path, "optimizer(params)", module.optimizer, model.parameters())
        except ValueError as e:
            if "'generator' object" not in str(e):
                raise
            raise ValueError(
                f"{e} (params is model.parameters(), a generator of parameters; to build param groups from the "
                "model's modules, define optimizer(model), which gets the model)"
            ) from e.__cause__
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"{called} in {str(path)!r} returned {type(optimizer).__name__}, expected a torch.optim.Optimizer"
            + (": is a `return` missing?" if optimizer is None else "")
        )
    loss_fn = None
    if has_loss and not has_step:
        # loss_fn() returns the loss function; a file that defines the loss itself (def loss_fn(output, target),
        # or loss_fn = torch.nn.functional.cross_entropy) means that function.
        loss_fn = module.loss_fn if _takes_arguments(module.loss_fn) else _call_user(path, "loss_fn()", module.loss_fn)
        if not callable(loss_fn):
            raise ValueError(
                f"loss_fn() in task file {str(path)!r} returned {type(loss_fn).__name__}, expected a loss function "
                "(e.g. return torch.nn.functional.cross_entropy), or define step_fn(model, batch) -> loss"
            )
    loader = _call_user(path, "train_loader()", module.train_loader)
    if loader is None:  # a body that builds the loader and forgets to return it; find_lr would name only the None
        raise ValueError(f"train_loader() in {str(path)!r} returned None, expected a DataLoader (or any iterable of "
                         "batches): is a `return` missing?")
    if _one_shot(loader):  # a generator (train_loader() that yields batches): each pass calls train_loader() again
        loader = _EachPass(path, module.train_loader, loader)
    return FinderTask(path.stem, model, optimizer, loader, loss_fn=loss_fn,
                      step_fn=module.step_fn if has_step else None)


def _relative_import_hint(error: BaseException | None, path: Path) -> str:
    """For a task file's ``from .helper import K`` (it runs as a script, in no package: Python's "attempted relative
    import with no known parent package"), the hint to import the neighbour by name, ``from helper import K``, which
    works because the file's folder is on ``sys.path``; ``""`` for any other error."""
    if not isinstance(error, ImportError) or "relative import" not in str(error):
        return ""
    found = last_frame_in(error, [path])
    line = (found[0].line or "").strip() if found else ""
    fixed = re.sub(r"^from\s+\.+\s+import\b", "import", line)
    fixed = re.sub(r"^from\s+\.+(?=\w)", "from ", fixed)
    example = f"`{fixed}`" if fixed != line else "`from helper import name`, not `from .helper import name`"
    return (f" (a task file is run as a script, in no package: import the modules beside it by name, {example}; its "
            "folder is on sys.path)")


def _one_shot(loader: Any) -> bool:
    """True for a one-shot iterator (a generator, ``iter(batches)``): iterating it again yields nothing. Read from
    its type, without calling ``iter()`` (which would start a DataLoader's worker processes for nothing)."""
    return isinstance(loader, Iterator)


class _EachPass:
    """A task file's ``train_loader()`` that returned a one-shot iterator (``def train_loader(): ... yield x, y``):
    the first pass reads it, and each later pass calls ``train_loader()`` again, as a DataLoader starts a new epoch.
    Without it the range test stopped when the first pass ran out ("pass a re-iterable loader"), though the help
    promises "an iterable of batches". It has no ``len()``, as the iterator has none."""

    def __init__(self, path: Path, make: Any, first: Any) -> None:
        self._path, self._make, self._first = path, make, first

    def __iter__(self) -> Any:
        first, self._first = self._first, None
        if first is not None:
            return first
        again = _call_user(self._path, "train_loader()", self._make)
        if again is None:
            raise ValueError(f"train_loader() in {str(self._path)!r} returned None when called again for the next "
                             "pass over the data, expected an iterable of batches: is a `return` missing?")
        return iter(again)

    def __repr__(self) -> str:
        return f"<train_loader() of {self._path.name}, called again for each pass>"


def _module_name(path: Path) -> str:
    """The name the task file is imported under: its stem (``my_task``), as ``import my_task`` would name it, where
    that name is free or already this file — so a worker process that imports it afresh (a DataLoader's workers under
    ``spawn``, the default on macOS and Windows) finds the Dataset classes the file defines by that name on the
    ``sys.path`` it inherits (the file's folder is on it); else (``test.py``, ``torch.py``: a name another module
    has) ``lrkit_task_<stem>``, which shadows nothing.

    >>> _module_name(Path("/nowhere/my-task.py"))
    'lrkit_task_my-task'
    """
    stem, here = path.stem, path.resolve()
    if not stem.isidentifier() or keyword.iskeyword(stem):
        return f"lrkit_task_{stem}"
    loaded = sys.modules.get(stem)
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
    else:
        try:
            found = importlib.machinery.PathFinder.find_spec(stem, sys.path)
        except (ImportError, ValueError):
            return f"lrkit_task_{stem}"
        if found is None and stem not in sys.builtin_module_names \
                and importlib.machinery.FrozenImporter.find_spec(stem) is None:
            return stem
        origin = found.origin if found is not None else None
    return stem if origin is not None and Path(origin).resolve() == here else f"lrkit_task_{stem}"


def _alternatives(module: Any, missing: list[str]) -> list[tuple[str, str]]:
    """``(found, expected)`` for each ``missing`` name the task file defines under another name: first a conventional
    one (:data:`_CONVENTIONAL`: ``get_model``, ``criterion``, ``train_step``, ... — bound in the file under that name,
    whether defined there or imported or an instance such as ``criterion = nn.CrossEntropyLoss()``), else a public
    function defined in the file itself whose name is spelt close to it (``modle``; imported names such as
    ``DataLoader`` are not candidates) and closer to it than to any other expected name (``loader`` is no guess for
    ``model()``). One found name explains one missing name.

    A loss-like name whose function takes ``model`` first (``compute_loss(model, batch)``) is a ``step_fn``.
    """
    namespace = vars(module)
    expected = (*_REQUIRED, "loss_fn", "step_fn")

    def role(alt: str) -> str:
        meant = _CONVENTIONAL[alt]
        if meant == "loss_fn" and _first_parameter(namespace[alt]) == "model":
            return "step_fn"
        return meant

    conventional = [alt for alt in _CONVENTIONAL if callable(namespace.get(alt))]
    defined = [
        name for name, value in namespace.items()
        if not name.startswith("_") and name not in expected and name not in _CONVENTIONAL and callable(value)
        and getattr(value, "__module__", None) == module.__name__
    ]

    def closeness(name: str, target: str) -> float:
        return difflib.SequenceMatcher(None, name, target).ratio()

    found: list[tuple[str, str]] = []
    for name in missing:
        alt = next((a for a in conventional if role(a) == name), None)
        if alt is None:
            close = [d for d in defined if closeness(d, name) >= 0.5
                     and closeness(d, name) == max(closeness(d, e) for e in expected)]
            alt = max(close, key=lambda d: closeness(d, name), default=None)
        if alt is not None:
            found.append((alt, name))
            (conventional if alt in conventional else defined).remove(alt)
    return found


def _hint_text(found: list[tuple[str, str]]) -> str:
    """`` (it defines modle(): did you mean model()?)`` for :func:`_alternatives`' pairs, else ``""``."""
    signature = {"step_fn": "step_fn(model, batch)"}
    hints = [f"it defines {alt}(): did you mean {signature.get(name, name + '()')}?" for alt, name in found]
    return f" ({' '.join(hints)})" if hints else ""


def _first_parameter(fn: Any) -> str | None:
    """The name of ``fn``'s first parameter (``None`` when it has none or no signature)."""
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    return params[0] if params else None


def _takes_arguments(fn: Any) -> bool:
    """True when ``fn`` cannot be called without arguments (it is a loss itself, not a factory of one)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    if isinstance(fn, type):  # a loss class (torch.nn.MSELoss): calling it builds the loss
        return False
    if isinstance(fn, torch.nn.Module):  # a loss module (CrossEntropyLoss()): its __call__ reads (*args, **kwargs)
        try:
            sig = inspect.signature(fn.forward)
        except (TypeError, ValueError):
            return True
    required = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(q.kind in required and q.default is inspect.Parameter.empty for q in sig.parameters.values())


def _call_user(path: Path, what: str, fn: Any, *args: Any) -> Any:
    """Call a task file's function; an exception becomes an error naming the file, the function and the line."""
    try:
        return fn(*args)
    except (Exception, SystemExit) as e:  # SystemExit: sys.exit() or argparse in a script: never a silent exit
        found = last_frame_in(e, [path])
        where = f" (line {found[0].lineno})" if found else ""
        if isinstance(e, SyntaxError) and e.lineno is not None:
            where = f" (line {e.lineno})"
        if isinstance(e, SystemExit):
            raise ValueError(
                f"{what} in task file {str(path)!r} exited{where} (SystemExit({e.code!r})): a task file defines "
                "model(), optimizer(params), train_loader() and loss_fn()/step_fn; put a script's own code (argparse, "
                "training) under if __name__ == '__main__':"
            ) from e
        raise ValueError(f"{what} in task file {str(path)!r} failed{where}: {error_text(e)}") from e
