"""What the monitor can do about a finding, and the LR back-off that survives any LR scheduler.

Actions, from mildest to most severe (when several checks fire in one step, the most severe action wins):

========== ==================================================================================================
``warn``   record the event and issue a :class:`MonitorWarning`; training goes on unchanged
``clip``   scale this step's gradients down to ``clip_to`` (a multiple of the running median norm)
``skip``   this optimizer step changes nothing (parameters and optimizer state are restored exactly)
``rollback`` restore the last healthy snapshot (model, optimizer, scheduler) and multiply the LR by the back-off
``stop``   ask the loop to stop (``Monitor.should_stop``), restoring the last healthy snapshot by default
========== ==================================================================================================

:func:`backoff_lr` multiplies the LR of every param group *and everything a scheduler computes the LR from*, so the
back-off is still there after the scheduler's next steps:

>>> import torch
>>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
>>> sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
>>> backoff_lr(opt, sched, 0.1)
>>> opt.step(); sched.step()
>>> round(opt.param_groups[0]["lr"], 6)  # 1.0 * 0.1 * 0.5
0.05
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import torch

__all__ = [
    "ACTIONS",
    "ALLOWED",
    "SEVERITY",
    "MonitorWarning",
    "backoff_lr",
    "clip_grads_",
    "resolve_action",
]

Action = Literal["warn", "clip", "skip", "rollback", "stop"]

#: Every action, mildest first.
ACTIONS: tuple[str, ...] = ("warn", "clip", "skip", "rollback", "stop")
#: Rank of each action (``"none"`` = nothing fired); the most severe action of a step wins.
SEVERITY: dict[str, int] = {"none": 0, "warn": 1, "clip": 2, "skip": 3, "rollback": 4, "stop": 5}
#: The actions that make sense for each check category (``None``/``"ignore"`` switch a category off).
ALLOWED: dict[str, tuple[str, ...]] = {
    "divergence": ("warn", "skip", "rollback", "stop"),
    "explode": ("warn", "clip", "skip", "rollback", "stop"),
    "too_low": ("warn", "stop"),
    "overfit": ("warn", "rollback", "stop"),
}
_OFF = ("ignore", "off", "none")

# Scheduler attributes holding per-group LRs that the scheduler computes the LR *from*.
_LIST_ATTRS = ("base_lrs", "max_lrs", "min_lrs", "_last_lr", "base_values")
# Scalar scheduler attributes that are LRs (CosineAnnealingLR/WarmRestarts' floor, ReduceLROnPlateau's default floor).
_SCALAR_ATTRS = ("eta_min", "default_min_lr")
# Param-group keys that are LRs: torch writes initial_lr (every scheduler), max_lr/min_lr (OneCycleLR), swa_lr
# (torch.optim.swa_utils.SWALR, which anneals each group towards it).
_GROUP_KEYS = ("lr", "initial_lr", "max_lr", "min_lr", "swa_lr")
# Per-parameter optimizer state that is the step size itself, derived from the group's lr: Rprop initialises its
# ``step_size`` to ``lr`` and adapts it from then on (``lr`` is never read again), ASGD computes ``eta`` from ``lr``
# *after* each step and takes the next step with the one in its state. (torch.optim class name, state key)
_STATE_LR_KEYS = (("Rprop", "step_size"), ("ASGD", "eta"))


class MonitorWarning(UserWarning):
    """Issued by :class:`lrkit.Monitor` for every event whose action is ``"warn"``; filter or escalate it as any
    warning (``warnings.simplefilter("error", MonitorWarning)`` makes each such event an exception).

    >>> issubclass(MonitorWarning, UserWarning)
    True
    """


def resolve_action(keyword: str, category: str, value: str | None) -> str | None:
    """Validate an ``on_*`` action name for ``category``; ``None``/``"ignore"``/``"off"`` switch the checks off.

    >>> resolve_action("on_explode", "explode", "clip")
    'clip'
    >>> try:
    ...     resolve_action("on_divergence", "divergence", "rolback")
    ... except ValueError as e:
    ...     print(str(e)[:80])
    on_divergence='rolback' is not an action for divergence checks. Did you mean 'ro
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{keyword}={value!r} must be an action name (a string) or None. "
                         f"Valid: {', '.join((*ALLOWED[category], 'ignore'))}")
    name = value.strip().lower()
    if name in _OFF:
        return None
    valid = ALLOWED[category]
    if name not in valid:
        from lrkit._utils import did_you_mean

        hint = ""
        if name in ACTIONS:
            hint = f" ({name!r} cannot help with {category} checks)"
        raise ValueError(
            f"{keyword}={value!r} is not an action for {category} checks{hint}.{did_you_mean(name, valid)} "
            f"Valid: {', '.join((*valid, 'ignore'))}"
        )
    return name


@torch.no_grad()
def clip_grads_(grads: list[torch.Tensor], total_norm: float, max_norm: float) -> float:
    """Scale ``grads`` in place so that their global L2 norm (``total_norm``, already measured) is ``max_norm``.

    Same rule as :func:`torch.nn.utils.clip_grad_norm_`: ``g <- g * max_norm / (total_norm + 1e-6)`` when
    ``total_norm > max_norm``. Returns the coefficient applied (1.0 when nothing was clipped).

    >>> g = [torch.tensor([3.0, 4.0])]
    >>> clip_grads_(g, 5.0, 1.0) < 1, [round(v, 4) for v in g[0].tolist()]
    (True, [0.6, 0.8])
    """
    if not grads or not total_norm > max_norm:
        return 1.0
    coef = max_norm / (total_norm + 1e-6)
    torch._foreach_mul_(grads, coef)
    return coef


def wrapped_scheduler(scheduler: Any) -> Any:
    """The scheduler a wrapper steps (accelerate's ``AcceleratedScheduler`` holds it as ``.scheduler`` and has no
    ``last_epoch``, ``base_lrs`` or ``lr_multiplier`` of its own), or ``None`` for a scheduler that wraps none.

    >>> model = torch.nn.Linear(2, 1)
    >>> wrapped_scheduler(torch.optim.lr_scheduler.StepLR(torch.optim.SGD(model.parameters(), lr=0.1), 5)) is None
    True
    """
    inner = vars(scheduler).get("scheduler") if hasattr(scheduler, "__dict__") else None
    if inner is None or inner is scheduler or not callable(getattr(inner, "step", None)):
        return None
    return inner


def _schedulers(scheduler: Any) -> Iterable[Any]:
    """The scheduler and, recursively, the ones it chains (SequentialLR / ChainedScheduler ``_schedulers``) or wraps
    (:func:`wrapped_scheduler`: accelerate's ``AcceleratedScheduler``)."""
    seen: set[int] = set()
    stack = [scheduler]
    while stack:
        s = stack.pop()
        if s is None or id(s) in seen:
            continue
        seen.add(id(s))
        yield s
        stack.extend(getattr(s, "_schedulers", None) or [])
        inner = wrapped_scheduler(s)
        if inner is not None:
            stack.append(inner)


def _scaled(value: Any, factor: float, done: set[int]) -> Any:
    """``value * factor`` for a number; a tensor is scaled *in place* and stays the same object (a compiled or
    fused step, or the user, may hold it), once however often it is met (torch's ``base_lrs`` are the groups'
    ``initial_lr`` tensors themselves; ``done`` holds the ids already scaled)."""
    if isinstance(value, torch.Tensor):
        if id(value) not in done:
            done.add(id(value))
            with torch.no_grad():
                value.mul_(factor)
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value * factor
    return value


def backoff_lr(optimizer: torch.optim.Optimizer, scheduler: Any, factor: float) -> None:
    """Multiply every param group's LR by ``factor``, and everything ``scheduler`` scales from, so it survives.

    What is scaled:

    * every param group's ``lr``, ``initial_lr`` (written by every torch scheduler), OneCycleLR's ``max_lr`` and
      ``min_lr`` and SWALR's ``swa_lr`` group keys (a tensor is scaled in place: it stays the same object);
    * on the scheduler and every scheduler it chains (``SequentialLR``, ``ChainedScheduler``) or wraps
      (accelerate's ``AcceleratedScheduler``, :func:`wrapped_scheduler`): ``base_lrs``,
      CyclicLR's ``max_lrs``, ReduceLROnPlateau's ``min_lrs``/``default_min_lr`` and ``eps`` (the smallest LR
      change it makes), CosineAnnealing's ``eta_min``,
      the cached ``_last_lr`` (what ``get_last_lr()`` returns), and timm-style ``base_values``;
    * a scheduler exposing ``lr_multiplier`` (lrkit's ``LRSchedulerAdapter``, ``Schedule.to_torch``) has that
      multiplied instead, and nothing else: it computes ``lr = base_lr * schedule(step) * lr_multiplier`` itself,
      writes the new LR at once, and keeps the multiplier in its ``state_dict`` — while another scheduler of the
      chain sets the LRs (the torch warmup of a ``SequentialLR`` before its hand-over to the adapter), the groups'
      ``lr`` is scaled too, so that one goes on from the backed-off LR;
    * the step sizes an optimizer keeps per parameter in its state, derived from the LR (in place, in the optimizer
      and in those it wraps): ``torch.optim.Rprop``'s ``step_size`` (initialised to ``lr`` at the first step and
      adapted from then on, so a new ``lr`` alone would change nothing) and ``torch.optim.ASGD``'s ``eta``
      (recomputed from ``lr`` after each step: the next step would still take the old one).

    Closed-form schedulers (LambdaLR, OneCycleLR, CyclicLR, CosineAnnealingWarmRestarts) recompute the LR from the
    scaled bases, chainable ones (StepLR, ExponentialLR, CosineAnnealingLR's recursive form, ReduceLROnPlateau)
    continue from the scaled group LR, so ``lr_after(t) == factor * lr_without_backoff(t)`` for every later step.

    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    >>> backoff_lr(opt, sched, 0.5)
    >>> opt.param_groups[0]["max_lr"], sched.base_lrs
    (0.5, [0.02])
    """
    from lrkit._utils import as_scalar

    shown = factor
    factor = as_scalar(factor)  # a numpy scalar (float16, ...), 0-d array or 0-d tensor: the number it holds
    if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor > 0 and factor < math.inf):
        raise ValueError(f"factor={shown!r} must be a finite number > 0 (e.g. 0.3 for the monitor's back-off)")
    factor = float(factor)
    if factor == 1.0:
        return
    chain = list(_schedulers(scheduler))
    adapters = [s for s in chain if hasattr(s, "lr_multiplier")]
    done: set[int] = set()
    if not adapters:  # torch's schedulers (or none): the LR lives in the groups and in what they scale from
        for group in optimizer.param_groups:
            for key in _GROUP_KEYS:
                if key in group:
                    group[key] = _scaled(group[key], factor, done)
    elif not any(_in_charge(s) for s in adapters):
        # another scheduler of the chain sets the LRs now (the torch warmup of a SequentialLR before it hands over to
        # the adapter): the adapter applies its multiplier from the hand-over on, and the scheduler in charge goes on
        # from the groups' LRs (LinearLR is chainable), so those are scaled too, or the back-off would wait
        for group in optimizer.param_groups:
            if "lr" in group:
                group["lr"] = _scaled(group["lr"], factor, done)
    # lrkit's adapters first: a SequentialLR's _last_lr is the list its active scheduler's get_last_lr() returned, the
    # adapter's own, and a tensor LR is scaled there in place: scaled first, the adapter's record of the LR it wrote
    # no longer matched the groups, it took itself for not in charge and left the LR as it was until its next step
    for s in sorted(chain, key=lambda s: not hasattr(s, "lr_multiplier")):
        if hasattr(s, "lr_multiplier"):
            # lrkit's adapter: lr = base * schedule(t) * lr_multiplier; its setter writes the new LR right away
            s.lr_multiplier = float(s.lr_multiplier) * factor
            continue
        for attr in _LIST_ATTRS:
            values = getattr(s, attr, None)
            if isinstance(values, (list, tuple)):
                setattr(s, attr, type(values)(_scaled(v, factor, done) for v in values))
        for attr in _SCALAR_ATTRS:
            value = getattr(s, attr, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(s, attr, value * factor)
        if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau) and isinstance(s.eps, (int, float)):
            # it skips a reduction smaller than eps (an absolute LR difference): unscaled, a backed-off LR stopped
            # being reduced sooner (or later) than the LR it was backed off from, and the ratio drifted off factor
            s.eps = s.eps * factor
    _scale_state_step_sizes(optimizer, factor, done)


def _in_charge(adapter: Any) -> bool:
    """Whether lrkit's adapter set the optimizer's LRs last (``LRSchedulerAdapter._in_charge``; an object that
    exposes ``lr_multiplier`` without it is taken as in charge)."""
    check = getattr(adapter, "_in_charge", None)
    return bool(check()) if callable(check) else True


def _scale_state_step_sizes(optimizer: torch.optim.Optimizer, factor: float, done: set[int]) -> None:
    """Scale the per-parameter step sizes kept in the state of ``optimizer`` and of the optimizers it wraps
    (``_STATE_LR_KEYS``: Rprop's ``step_size``, ASGD's ``eta``) by ``factor``, tensors in place."""
    from lrkit._state import every_optimizer

    keyed = [(cls, key) for name, key in _STATE_LR_KEYS if isinstance(cls := getattr(torch.optim, name, None), type)]
    states: set[int] = set()  # each state once: an accelerate-style wrapper shares its optimizer's
    # own_state=False: an Rprop behind a wrapper that shares its state (accelerate's AcceleratedOptimizer) is one
    for opt in every_optimizer(optimizer):
        keys = [key for cls, key in keyed if isinstance(opt, cls)]
        if not keys or id(opt.state) in states:
            continue
        states.add(id(opt.state))
        for group in opt.param_groups:
            for p in group["params"]:
                state = opt.state.get(p)
                if not state:
                    continue
                for key in keys:
                    if key in state:
                        state[key] = _scaled(state[key], factor, done)
