"""What the framework callbacks share: the lazily built class, and checking the :class:`lrkit.Monitor` keywords a
callback is given."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from lrkit._utils import unknown_name_error


def lazy_class(module_globals: dict[str, Any], name: str, build: Callable[[], type]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that builds the class ``name`` on its first lookup (``build`` imports the framework)
    and puts it in the module, so later lookups find it there; any other missing name is an ``AttributeError``.

    >>> ns = {"__name__": "demo"}
    >>> getattr_ = lazy_class(ns, "Made", lambda: type("Made", (), {}))
    >>> getattr_("Made") is ns["Made"]
    True
    """

    def __getattr__(attr: str) -> Any:
        if attr != name:
            raise AttributeError(f"module {module_globals['__name__']!r} has no attribute {attr!r}")
        module_globals[name] = cls = build()
        return cls

    return __getattr__


def check_monitor_kwargs(kwargs: Mapping[str, Any], supplied: Mapping[str, str]) -> None:
    """Refuse unknown keywords, those the framework supplies (``supplied``: name -> what the callback passes), and
    bad values, when the callback is built rather than at the first step.

    >>> check_monitor_kwargs({"backoff": 0.3}, {"model": "the module"})
    >>> check_monitor_kwargs({"model": None}, {"model": "the module"})
    Traceback (most recent call last):
    ...
    ValueError: MonitorCallback(model=...): the callback passes the module as the monitor's model; leave model= out
    """
    from lrkit.monitor import Monitor

    for name in kwargs:
        if name in supplied:
            raise ValueError(f"MonitorCallback({name}=...): the callback passes {supplied[name]} as the monitor's "
                             f"{name}; leave {name}= out")
    params = inspect.signature(Monitor.__init__).parameters
    valid = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in supplied]
    for name in kwargs:
        if name not in valid:
            raise unknown_name_error("lrkit.Monitor keyword", name, valid)
    probe = torch.nn.Linear(1, 1)  # a throwaway monitor checks the values (backoff in (0, 1), actions, checks, ...)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Monitor(probe, torch.optim.SGD(probe.parameters(), lr=0.1), **kwargs)


def schedule_peak(optimizer: torch.optim.Optimizer, scheduler: Any = None) -> float:
    """The LR the largest param group's schedule peaks at — what a suggestion replaces when an optimizer and its
    scheduler are already built (every group keeps its ratio to it): per group, CyclicLR's ``max_lrs``, OneCycleLR's
    ``max_lr`` group key, else the ``initial_lr`` every torch scheduler writes (what LambdaLR, StepLR, cosine, a
    warmup scale from), else ``lr``. A scheduler wrapped by accelerate's ``AcceleratedScheduler`` is read through.

    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    >>> schedule_peak(opt, sched), round(opt.param_groups[0]["lr"], 6)   # the peak, not the start (max_lr / 25)
    (1.0, 0.04)
    """
    from lrkit.monitor.actions import wrapped_scheduler

    inner = wrapped_scheduler(scheduler) if scheduler is not None else None
    max_lrs = getattr(inner if inner is not None else scheduler, "max_lrs", None)

    def peak(index: int, group: Mapping[str, Any]) -> float:
        if isinstance(max_lrs, (list, tuple)) and index < len(max_lrs):
            return float(max_lrs[index])
        for key in ("max_lr", "initial_lr"):
            if key in group:
                return float(group[key])
        return float(group["lr"])

    return max(peak(i, g) for i, g in enumerate(optimizer.param_groups))


def check_finder_keywords(names: Iterable[str], supplied: Mapping[str, str], refuse: Callable[[str, str], str],
                          what: str, named: Sequence[str] = ()) -> None:
    """Refuse :func:`lrkit.find_lr` keywords a framework helper supplies itself (``supplied``: name -> where it comes
    from; ``refuse(name, where)`` words the error) and unknown ones (a did-you-mean naming ``what``, listing ``named``
    — the helper's own arguments — and every ``find_lr`` keyword left to the user).

    >>> check_finder_keywords(["num_steps"], {"model": "the module"}, lambda n, w: f"{n}: from {w}", "keyword")
    >>> check_finder_keywords(["model"], {"model": "the module"}, lambda n, w: f"{n}: from {w}", "keyword")
    Traceback (most recent call last):
    ...
    ValueError: model: from the module
    """
    from lrkit.finder.range_test import find_lr

    names = list(names)
    for name in names:
        if name in supplied:
            raise ValueError(refuse(name, supplied[name]))
    valid = [n for n, p in inspect.signature(find_lr).parameters.items()
             if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in supplied and n not in named]
    for name in names:
        if name not in valid:
            raise unknown_name_error(what, name, [*named, *valid])
