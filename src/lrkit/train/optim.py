"""Optimizers for :func:`lrkit.train`: Ultralytics' names, any ``torch.optim.Optimizer`` class, and what
``optimizer="auto"`` picks and why.

``optimizer="auto"`` picks only the *family* — it never touches an explicit ``lr0`` (unlike Ultralytics, where
"auto" silently replaces it: ultralytics#8400):

* ``AdamW`` for language models (Transformers train with adaptive methods);
* ``SGD`` (momentum, Nesterov) for runs longer than 10,000 optimizer steps — the threshold Ultralytics uses;
* ``AdamW`` for shorter runs, where an adaptive method gets further in the few steps there are.

>>> choose_optimizer("auto", total_steps=500, task="classification")[0]
'AdamW'
>>> choose_optimizer("auto", total_steps=50_000, task="classification")[0]
'SGD'
>>> OPTIMIZERS["SGD"].default_lr, OPTIMIZERS["AdamW"].default_lr
(0.01, 0.001)

Any ``torch.optim.Optimizer`` subclass works too — torch's own or a third party's (``schedulefree``, ``prodigyopt``),
given as the class in Python or as ``"package.module:ClassName"`` on the command line and in YAML. It is built as
``cls(groups, lr=lr0, **mapped)``, where Ultralytics' ``momentum`` goes to the class's ``momentum`` argument, else to
``betas[0]`` (the class's own default ``beta2`` kept), else nowhere (:func:`momentum_target` says which):

>>> resolve_optimizer("torch.optim:Adagrad").__name__, class_default_lr(torch.optim.Adagrad)
('Adagrad', 0.01)
>>> momentum_target(torch.optim.RMSprop), momentum_target(torch.optim.Adam), momentum_target(torch.optim.Adagrad)
('momentum', 'betas[0]', None)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lrkit._config import class_spec
from lrkit._utils import canonical_name

__all__ = [
    "AUTO_SGD_MIN_STEPS",
    "OPTIMIZERS",
    "OptimInfo",
    "OptimizerSpec",
    "accepts_keyword",
    "build_optimizer",
    "choose_optimizer",
    "class_default_lr",
    "has_modes",
    "momentum_target",
    "optimizer_label",
    "resolve_optimizer",
]

#: What ``optimizer=`` takes: a registry name, ``"auto"``, ``"package.module:ClassName"``, or an Optimizer subclass.
OptimizerSpec = str | type[torch.optim.Optimizer]

#: optimizer="auto" picks SGD for runs longer than this many optimizer steps (Ultralytics' threshold).
AUTO_SGD_MIN_STEPS = 10_000


@dataclass(frozen=True)
class OptimInfo:
    """A registry entry: the torch class, how ``momentum`` maps onto it, its default ``lr0``, a description."""

    name: str
    make: Callable[[list[dict[str, Any]], float, float], torch.optim.Optimizer]
    default_lr: float
    description: str


def _betas(cls: type[torch.optim.Optimizer]) -> Callable[[list[dict[str, Any]], float, float], torch.optim.Optimizer]:
    # Ultralytics uses momentum as Adam's beta1 (and warmup_momentum warms it up)
    return lambda groups, lr, momentum: cls(groups, lr=lr, betas=(momentum, 0.999))


OPTIMIZERS: dict[str, OptimInfo] = {
    o.name: o
    for o in (
        OptimInfo("SGD", lambda g, lr, m: torch.optim.SGD(g, lr=lr, momentum=m, nesterov=m > 0), 0.01,
                  "SGD with Nesterov momentum (momentum=momentum)"),
        OptimInfo("Adam", _betas(torch.optim.Adam), 0.001, "Adam, betas=(momentum, 0.999), L2 weight decay"),
        OptimInfo("AdamW", _betas(torch.optim.AdamW), 0.001, "AdamW, betas=(momentum, 0.999), decoupled decay"),
        OptimInfo("NAdam", _betas(torch.optim.NAdam), 0.001, "NAdam, betas=(momentum, 0.999)"),
        OptimInfo("RAdam", _betas(torch.optim.RAdam), 0.001, "RAdam, betas=(momentum, 0.999)"),
        OptimInfo("Adamax", _betas(torch.optim.Adamax), 0.001, "Adamax, betas=(momentum, 0.999)"),
        OptimInfo("RMSProp", lambda g, lr, m: torch.optim.RMSprop(g, lr=lr, momentum=m), 0.01,
                  "RMSprop with momentum=momentum"),
    )
}


def choose_optimizer(name: OptimizerSpec, *, total_steps: int, task: str | None) -> tuple[str, str]:
    """``(optimizer name, why)``: ``name`` itself (in its registry spelling, matched in any case; a class as its
    ``"module:ClassName"``, see :func:`optimizer_label`) unless it is ``"auto"`` (see the module docstring).

    >>> choose_optimizer("adamw", total_steps=100, task=None)
    ('AdamW', 'as requested')
    >>> choose_optimizer(torch.optim.Adagrad, total_steps=100, task=None)
    ('torch.optim.adagrad:Adagrad', 'as requested (an Optimizer class)')
    """
    if isinstance(name, type) or ":" in name:
        return optimizer_label(name), "as requested (an Optimizer class)"
    name = canonical_name("optimizer", name, ["auto", *OPTIMIZERS])
    if name != "auto":
        return name, "as requested"
    if task == "lm":
        return "AdamW", "optimizer=auto: AdamW for a language model (Transformers train with adaptive methods)"
    if total_steps > AUTO_SGD_MIN_STEPS:
        return "SGD", (f"optimizer=auto: SGD for a long run ({total_steps:,} optimizer steps > "
                       f"{AUTO_SGD_MIN_STEPS:,}; momentum SGD generalises as well as adaptive methods given the time)")
    return "AdamW", (f"optimizer=auto: AdamW for a short run ({total_steps:,} optimizer steps <= "
                     f"{AUTO_SGD_MIN_STEPS:,}; an adaptive method gets further in few steps)")


def build_optimizer(name: OptimizerSpec, groups: list[dict[str, Any]], *, lr: float,
                    momentum: float) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``groups`` (each group keeps its own ``lr``/``weight_decay``/extra keys).

    A registry name (any case): ``momentum`` is SGD's and RMSprop's momentum and the Adam family's ``beta1``; no
    registry optimizer drops it. An Optimizer class (or ``"package.module:ClassName"``) is built as
    ``cls(groups, lr=lr, **mapped)`` with ``momentum`` where :func:`momentum_target` says (maybe nowhere).

    >>> p = torch.nn.Parameter(torch.zeros(2))
    >>> build_optimizer("adam", [{"params": [p]}], lr=0.1, momentum=0.9).param_groups[0]["betas"]
    (0.9, 0.999)
    >>> build_optimizer(torch.optim.Adamax, [{"params": [p]}], lr=0.1, momentum=0.8).param_groups[0]["betas"]
    (0.8, 0.999)
    """
    if isinstance(name, type) or ":" in name:
        cls = resolve_optimizer(name)
        label = optimizer_label(name)
        mapped: dict[str, Any] = {}
        target = momentum_target(cls)
        if target == "momentum":
            mapped["momentum"] = momentum
        elif target == "betas[0]":
            mapped["betas"] = (momentum, *_default_betas(cls)[1:])
        if accepts_keyword(cls, "lr"):  # (a class without an lr argument reads each group's own "lr")
            mapped = {"lr": lr, **mapped}
        try:
            return cls(groups, **mapped)
        except Exception as e:  # the user's class: say which call failed, keep its traceback as the cause
            given = ", ".join(f"{k}={v!r}" for k, v in mapped.items())
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ValueError(f"optimizer={label!r}: {cls.__name__}(param_groups, {given}) raised "
                             f"{type(e).__name__}: {first}") from e
    return OPTIMIZERS[canonical_name("optimizer", name, OPTIMIZERS)].make(groups, lr, momentum)


# -------------------------------------------------------------------------------------- any Optimizer class
def resolve_optimizer(spec: OptimizerSpec) -> type[torch.optim.Optimizer]:
    """The Optimizer class ``spec`` names: the class itself, or ``"package.module:ClassName"`` imported as
    ``model="package.module:factory"`` is (:func:`lrkit.train.models.resolve_import_spec`: ``sys.path``, then the
    working directory, or a ``path/to/file.py``).

    Raises ``ValueError`` naming the spec when the module does not import, the name is missing (with the closest
    Optimizer class in the module), or it is not a ``torch.optim.Optimizer`` subclass (an instance: pass the class).

    >>> resolve_optimizer("torch.optim:SGD") is torch.optim.SGD
    True
    >>> resolve_optimizer("torch.optim:Adagard")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown Optimizer class in torch.optim: 'Adagard'. Did you mean 'Adagrad'? ...
    """
    if isinstance(spec, type):
        obj: Any = spec
        label = class_spec(spec)
    else:
        from lrkit.train.models import resolve_import_spec

        label = spec.strip()
        module_name, _, attr = (part.strip() for part in label.rpartition(":"))  # rpartition: C:\\ paths
        if not module_name or not attr:
            raise ValueError(f"optimizer={spec!r}: write an optimizer class as 'package.module:ClassName', e.g. "
                             "'torch.optim:Adagrad' (or 'path/to/file.py:ClassName')")
        obj = resolve_import_spec(label, module_name, attr, key="optimizer", kind="Optimizer class", offer=_offer)
    if isinstance(obj, torch.optim.Optimizer):
        kind = type(obj).__name__
        raise ValueError(f"optimizer={label!r} is an instance of {kind}, bound to the parameters it was built on; "
                         f"pass the class ({kind}) and lrkit.train builds it over the model's parameter groups")
    if not _is_optimizer_class(obj):
        what = f"the class {obj.__module__}.{obj.__qualname__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise ValueError(f"optimizer={label!r} is {what}, not a torch.optim.Optimizer subclass; pass an Optimizer "
                         "class (torch.optim.Adagrad, schedulefree.AdamWScheduleFree, ...) or one of: auto, "
                         f"{', '.join(OPTIMIZERS)}")
    if obj is torch.optim.Optimizer:
        raise ValueError(f"optimizer={label!r} is the abstract base class, which has no step(); pass a concrete "
                         "Optimizer class (torch.optim.Adagrad, schedulefree.AdamWScheduleFree, ...)")
    if issubclass(obj, torch.optim.SparseAdam):
        raise ValueError(f"optimizer={label!r}: SparseAdam only takes sparse gradients (nn.Embedding(sparse=True)) "
                         "and lrkit.train's parameters have dense ones; use torch.optim:Adam or AdamW")
    return obj  # type: ignore[no-any-return]


def optimizer_label(spec: OptimizerSpec) -> str:
    """How a run names its optimizer (results, ``args.yaml``, the checkpoint): a registry name as spelt there, a
    ``"module:ClassName"`` string as written, a class as ``"its.module:ClassName"`` (:func:`lrkit._config.class_spec`).

    >>> optimizer_label("sgd"), optimizer_label(" torch.optim:Adagrad "), optimizer_label(torch.optim.Adagrad)
    ('SGD', 'torch.optim:Adagrad', 'torch.optim.adagrad:Adagrad')
    """
    if isinstance(spec, type):
        return class_spec(spec)
    if ":" in spec:
        return spec.strip()
    return canonical_name("optimizer", spec, ["auto", *OPTIMIZERS])


def _is_optimizer_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)


def _offer(obj: Any) -> bool:
    """An Optimizer class worth suggesting in a did-you-mean (not the abstract base, nor SparseAdam)."""
    return _is_optimizer_class(obj) and obj is not torch.optim.Optimizer and not issubclass(obj, torch.optim.SparseAdam)


def _init_params(cls: type) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(cls).parameters)
    except (TypeError, ValueError):  # a class whose signature cannot be read: nothing is mapped
        return {}


def accepts_keyword(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` takes the keyword ``name`` (``**kwargs`` or an unreadable signature: assume it does).

    >>> accepts_keyword(torch.optim.Rprop, "weight_decay"), accepts_keyword(torch.optim.SGD, "weight_decay")
    (False, True)
    """
    params = _init_params(cls)
    return not params or name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def class_default_lr(cls: type[torch.optim.Optimizer]) -> float | None:
    """The default ``lr`` in ``cls``'s signature (``schedulefree.AdamWScheduleFree``: 0.0025, ``prodigyopt.Prodigy``:
    1.0), or ``None`` when it has none (a required ``lr``, or no ``lr`` argument at all).

    >>> class_default_lr(torch.optim.Adam)
    0.001
    """
    param = _init_params(cls).get("lr")
    if param is None or param.default is inspect.Parameter.empty:
        return None
    value = param.default
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def momentum_target(cls: type[torch.optim.Optimizer]) -> str | None:
    """Where Ultralytics' ``momentum`` goes in ``cls``: ``"momentum"`` (SGD, RMSprop, ...), ``"betas[0]"`` (the Adam
    family, schedule-free AdamW, Prodigy), or ``None`` (Adagrad, Adadelta, ...: ``momentum`` and
    ``warmup_momentum`` do nothing).

    >>> momentum_target(torch.optim.SGD), momentum_target(torch.optim.AdamW)
    ('momentum', 'betas[0]')
    """
    params = _init_params(cls)
    if "momentum" in params:
        return "momentum"
    if "betas" in params:
        return "betas[0]"
    return None


def _default_betas(cls: type[torch.optim.Optimizer]) -> tuple[Any, ...]:
    """The class's default ``betas`` (a sequence of at least two), else Adam's ``(0.9, 0.999)``."""
    param = _init_params(cls).get("betas")
    value = None if param is None else param.default
    if isinstance(value, (tuple, list)) and len(value) >= 2:
        return tuple(value)
    return (0.9, 0.999)


def has_modes(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` has train/eval modes (schedule-free: ``optimizer.train()``/``eval()`` move the weights
    between the point gradients are taken at and the average that is evaluated, and each group keeps ``train_mode``).

    >>> has_modes(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))]))
    False
    """
    return (callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))
            and any("train_mode" in g for g in optimizer.param_groups))
