"""What the framework integrations share: the lazily built class, checking the :class:`lrkit.Monitor` and
:func:`lrkit.find_lr` keywords a callback is given, a built schedule's peak, and recording a built schedule to replay it
compressed in ``lr0="auto"``'s trials."""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lrkit._state import set_group_lrs
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


def check_monitor_kwargs(kwargs: Mapping[str, Any], supplied: Mapping[str, str], named: Sequence[str] = (),
                         who: str = "MonitorCallback") -> None:
    """Refuse unknown keywords, those the framework supplies (``supplied``: name -> what the callback passes), and
    bad values, when the callback is built rather than at the first step. ``named``: the callback ``who``'s own
    arguments, offered (did-you-mean, the valid list) beside the monitor's, so that a misspelt one of them
    (``save_snapshot``) is not answered with a monitor keyword that merely looks alike (``snapshot_every``).

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
    kind = f"{who} keyword" if named else "lrkit.Monitor keyword"
    for name in kwargs:
        if name not in valid:
            raise unknown_name_error(kind, name, [*named, *valid])
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


def metric_driven(scheduler: Any) -> bool:
    """Whether ``scheduler`` follows a metric rather than the step count (torch's ``ReduceLROnPlateau``, an lrkit
    schedule with reduce-on-plateau in it): stepping it without the metric records no schedule.

    >>> from lrkit.schedules import from_spec
    >>> opt = torch.optim.SGD([torch.zeros(1)], lr=0.1)
    >>> metric_driven(from_spec("plateau patience=2").to_torch(opt)), metric_driven(from_spec("cosine",
    ...     total_steps=10).to_torch(opt))
    (True, False)
    """
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return True
    return bool(getattr(getattr(scheduler, "schedule", None), "stateful", False))


def group_values(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each param group's settings (``lr``, ``initial_lr``, ``momentum``, ``betas``, ...), copied, for
    :func:`put_group_values` to put back."""
    return [{k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
             for k, v in g.items() if k != "params"} for g in optimizer.param_groups]


def put_group_values(optimizer: torch.optim.Optimizer, saved: list[dict[str, Any]]) -> None:
    """Put back :func:`group_values`' copies (a tensor LR in place: the group keeps the tensor it was built with)."""
    for group, values in zip(optimizer.param_groups, saved):
        for key in [k for k in group if k != "params" and k not in values]:
            del group[key]
        for key, value in values.items():
            held = group.get(key)
            if isinstance(value, torch.Tensor) and isinstance(held, torch.Tensor) and held.shape == value.shape:
                held.copy_(value)
            else:
                group[key] = value


def record_schedule(optimizer: torch.optim.Optimizer, schedulers: Sequence[Any], total: int,
                    advance: Callable[[int], None]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every param group's LR at each of a run's ``total`` optimizer steps, and the momentum / ``betas[0]`` a
    scheduler cycles (OneCycleLR, CyclicLR): arrays of shape ``(total, groups)``. ``advance(t)`` steps the
    ``schedulers`` as the run steps them after its optimizer step ``t``. The schedulers' states and the optimizer's
    groups are put back afterwards (no optimizer step is taken).

    >>> opt = torch.optim.SGD([torch.zeros(1)], lr=1.0)
    >>> sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs, cycled = record_schedule(opt, [sched], 5, lambda t: sched.step())
    >>> lrs[:, 0].tolist(), cycled, opt.param_groups[0]["lr"], sched.last_epoch
    ([1.0, 1.0, 0.5, 0.5, 0.25], {}, 1.0, 0)
    """
    groups = optimizer.param_groups
    lrs = np.empty((total, len(groups)))
    keys = [k for k in ("momentum", "betas") if all(k in g for g in groups)]

    def momentum(k: str) -> list[float]:
        return [float(g[k][0] if k == "betas" else g[k]) for g in groups]

    first = {k: momentum(k) for k in keys}
    momenta: dict[str, np.ndarray] = {}  # made at a key's first change: most schedules cycle none
    saved_groups = group_values(optimizer)
    saved_states = [copy.deepcopy(s.state_dict()) for s in schedulers]
    try:
        with warnings.catch_warnings():  # torch's "lr_scheduler.step() before optimizer.step()"
            warnings.simplefilter("ignore")
            for t in range(total):
                lrs[t] = [float(g["lr"]) for g in groups]
                for k in keys:
                    now = momentum(k)
                    if k in momenta:
                        momenta[k][t] = now
                    elif now != first[k]:
                        momenta[k] = np.empty((total, len(groups)))
                        momenta[k][:t] = first[k]
                        momenta[k][t] = now
                advance(t)
    finally:
        for scheduler, state in zip(schedulers, saved_states):
            scheduler.load_state_dict(state)
        put_group_values(optimizer, saved_groups)
    return lrs, momenta


def peaks_first(optimizer: torch.optim.Optimizer, lrs: np.ndarray) -> None:
    """Set each group's LR to its peak in a recorded schedule (``lrs``' column max), so a range test sweeps the groups
    at the ratios the schedule gives their peaks (not the ratios of its first step's LRs)."""
    set_group_lrs(optimizer.param_groups, [float(top) for top in lrs.max(axis=0)])


#: How close (relative) the highest LR of a recorded run must come to its schedule's own peak to count as reaching it:
#: a OneCycleLR whose peak falls between two steps tops out at 0.99984 x max_lr, and the chosen LR should still set
#: ``max_lr`` itself (``self.lr == chooser.lr``); a warmup the run does not finish stays short of it by far more.
PEAK_REACHED = 0.01


def run_peak(lrs: np.ndarray, built_peak: float) -> float:
    """The peak LR a recorded run's choice replaces: the schedule's own (``built_peak``, :func:`schedule_peak`) when
    the run reaches it (within :data:`PEAK_REACHED`), else the highest LR the run trains at — the range test sweeps
    the LRs themselves, so a chosen LR is what the run should top out at.

    >>> run_peak(np.array([[0.5], [0.99984], [0.3]]), 1.0), run_peak(np.array([[0.1], [0.5]]), 1.0)
    (1.0, 0.5)
    """
    top = float(lrs.max())
    return built_peak if math.isclose(top, built_peak, rel_tol=PEAK_REACHED) else top


class Replay(torch.optim.lr_scheduler.LRScheduler):
    """A recorded schedule (:func:`record_schedule`) over a trial of ``steps`` steps: at trial step ``k`` each group
    gets the run's LR at step ``k * total // steps`` times ``lr / peak`` (``lr``: the trial's peak LR, read off the
    optimizer as ``lr0="auto"`` set it; ``peak``: the run's), and the momentum the run's scheduler cycles to there.
    At ``steps == total`` and ``lr == peak`` it is the run's schedule, step for step.

    >>> opt = torch.optim.SGD([torch.zeros(1)], lr=0.5)   # a trial at peak 0.5 of a run that peaked at 1.0
    >>> replay = Replay(opt, np.array([[1.0], [0.8], [0.6], [0.4]]), {}, 1.0, 2)
    >>> lrs = [opt.param_groups[0]["lr"]]; opt.step(); replay.step(); lrs.append(opt.param_groups[0]["lr"])
    >>> lrs   # the run's steps 0 and 2, halved
    [0.5, 0.3]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lrs: np.ndarray, momenta: dict[str, np.ndarray],
                 peak: float, steps: int) -> None:
        from lrkit.finder.range_test import group_scales

        self._lrs, self._momenta, self._steps = lrs, momenta, max(int(steps), 1)
        scales = group_scales(optimizer)
        lr = max(float(g["lr"]) / s for g, s in zip(optimizer.param_groups, scales) if s > 0)
        self._factor = lr / peak
        super().__init__(optimizer)

    def _index(self) -> int:
        return min(len(self._lrs) - 1, max(self.last_epoch, 0) * len(self._lrs) // self._steps)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return [self._factor * float(v) for v in self._lrs[self._index()]]

    def step(self, epoch: int | None = None) -> None:
        super().step()
        i = self._index()
        for key, values in self._momenta.items():
            for group, value in zip(self.optimizer.param_groups, values[i]):
                group[key] = float(value) if key == "momentum" else (float(value), *group[key][1:])
