"""The schedule families: closed-form multipliers of the peak LR, one small class each.

Every family takes keyword-only arguments, its time-like parameters in the unit given by ``unit`` (``"epoch"`` or
``"step"``; the default of each family is in its docstring and in ``lrkit schedule --list``), and the run length as
``total_steps`` or ``epochs`` + ``steps_per_epoch`` (see :func:`lrkit.schedules.base.resolve_timeline`).
Parameter names follow torch's where torch has the policy, and Ultralytics' (``lr0``, ``lrf``) elsewhere.

``t`` below is the optimizer step (0-based) and ``T`` the run length in steps; each formula gives the multiplier
``m(t)`` of the peak LR, so the absolute LR is ``lr0 * m(t)`` (``max_lr * m(t)`` for cyclic and one-cycle).
"""

from __future__ import annotations

import math
import numbers
import warnings
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lrkit._utils import check_positive
from lrkit.schedules.base import (
    _SHAPE_ALIASES,
    COOLDOWN_TYPES,
    UNITS,
    Composed,
    Cooldown,
    Schedule,
    Span,
    SpanSeq,
    Warmup,
    _check_choice,
    _check_count,
    _check_ratio,
    resolve_timeline,
)

__all__ = [
    "WSD",
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "Exponential",
    "InverseSqrt",
    "Linear",
    "LinearToZero",
    "MultiStep",
    "OneCycle",
    "Polynomial",
    "ReduceOnPlateau",
    "StepDecay",
    "ultralytics",
]


def _unit(unit: str) -> str:
    return _check_choice("unit", unit, UNITS)


def _fraction(name: str, value: Any, *, allow_one: bool = True, why: str = "") -> float:
    return _check_ratio(name, value, allow_one=allow_one, why=why)


#: Why a final-LR ratio (``lrf``, ``end_factor``, ...) above 1 is refused: the schedule would end above its peak.
_ABOVE_PEAK = " (a multiplier of lr0, the peak LR; above 1 the LR would end above its peak)"


def _floor_below_peak(eta_min: Any, peak: float | None) -> float:
    """Validate torch's absolute floor ``eta_min``; with a known peak ``lr0`` it must not be above it (as ``lrf``
    must not be above 1). Without a peak (the group's LR is the peak in ``to_torch``) torch's rule applies."""
    v = check_positive("eta_min", eta_min, allow_zero=True)
    if peak is not None and v > peak:
        raise ValueError(f"eta_min={eta_min!r} must not exceed lr0={peak!r}: it is the LR the decay ends at, so above "
                         "the peak the LR would climb instead of decay (lrf=... gives the floor as a ratio of lr0)")
    return v


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    # 0 / 1 (numpy and 0-d tensors too); never ``in`` on an array, whose == is elementwise and truth ambiguous
    if isinstance(value, numbers.Real) or getattr(value, "ndim", None) == 0:
        try:
            if float(value) in (0.0, 1.0):
                return bool(float(value))
        except (TypeError, ValueError, OverflowError):
            pass
    raise ValueError(f"{name}={value!r} must be true or false")


def _momentum_value(name: str, value: Any) -> float:
    v = check_positive(name, value, allow_zero=True)
    if v >= 1:
        raise ValueError(f"{name}={value!r} must be in [0, 1)")
    return v


def _set_momentum_cycling(sched: Schedule, cycle_momentum: Any, base_momentum: Any, max_momentum: Any) -> None:
    """Validate and set the momentum cycling of cyclic and one-cycle (torch's ``cycle_momentum``,
    ``base_momentum``, ``max_momentum``); the schedule couples momentum when it cycles it."""
    sched.cycle_momentum = _bool("cycle_momentum", cycle_momentum)  # type: ignore[attr-defined]
    sched.base_momentum = _momentum_value("base_momentum", base_momentum)  # type: ignore[attr-defined]
    sched.max_momentum = _momentum_value("max_momentum", max_momentum)  # type: ignore[attr-defined]
    sched.couples_momentum = sched.cycle_momentum  # type: ignore[attr-defined]


def _length(sched: Schedule, key: str, value: Any) -> float:
    """A decay length (``total_iters``, ``T_max``) in steps: ``value`` in the family's ``unit``, or the run length
    when it is ``None``. A length that rounds to the run's length is the run's length: the run's own ``epochs x
    steps_per_epoch`` is rounded to whole steps, so ``T_max=1.5`` epochs of 7 steps (10.5) ends with the 10-step
    run instead of half a step after it, above the floor at the last step.

    Per epoch (``interval="epoch"``) the staircase reads the formula at the epochs' starts ``e * steps_per_epoch``
    unrounded, so the length stays unrounded too: the run's whole epochs (:func:`_run_epochs_length`), or ``value``
    as given, so that epoch ``e`` of a decay over ``E`` epochs is at ``e / E`` (torch's scheduler of ``E`` steps
    stepped once per epoch), also when an epoch is a fractional number of steps."""
    if value is None:
        total = sched._require_total(key)
        return _run_epochs_length(sched, total) if sched.interval == "epoch" else float(total)
    steps = sched._span(key, value, sched.unit, integer=False)  # type: ignore[attr-defined]
    total = sched.total_steps
    if sched.interval == "epoch":
        return steps
    return float(total) if total is not None and round(steps) == total else steps


def _run_epochs_length(sched: Schedule, total: int) -> float:
    """The length in steps of a ``total``-step run stepped per epoch: ``E * steps_per_epoch`` for the whole number
    of epochs ``E`` whose length rounds to the run's (the run was ``round(epochs * steps_per_epoch)`` steps: 5
    epochs of 2.5 steps are a 12-step run, whose epochs' starts are read at ``e * 2.5 / 12.5``, as torch's
    ``T_max=5`` stepped per epoch reads them), else the run's own ``total`` (a run of fractional epochs).

    >>> from lrkit.schedules import Cosine
    >>> _run_epochs_length(Cosine(epochs=5, steps_per_epoch=2.5, interval="epoch"), 12)
    12.5
    """
    spe = float(sched.steps_per_epoch)  # type: ignore[arg-type]
    epochs = round(total / spe)
    if epochs >= 1 and round(epochs * spe) == total and abs(epochs * spe - total) > _ON_EDGE * total:
        return epochs * spe
    return float(total)


def _floor_args(lrf: Any, eta_min: Any, peak: float | None) -> tuple[float | None, float | None]:
    """The floor of a cosine family as given: ``lrf`` (a ratio of the peak) or ``eta_min`` (absolute), at most one;
    each validated, ``None`` where not given (the family picks its default)."""
    if lrf is not None and eta_min is not None:
        raise ValueError(
            f"lrf={lrf!r} (a ratio of lr0) and eta_min={eta_min!r} (an absolute LR) both set the floor: give one"
        )
    return (None if lrf is None else _fraction("lrf", lrf, why=_ABOVE_PEAK),
            None if eta_min is None else _floor_below_peak(eta_min, peak))


def _cos_anneal(floor: float, x: float, n: float) -> float:
    """Cosine annealing from 1 down to ``floor`` at ``x`` of ``n``: ``f + (1 - f) * (1 + cos(pi x / n)) / 2``.

    >>> _cos_anneal(0.0, 0.0, 10), _cos_anneal(0.0, 5.0, 10), _cos_anneal(0.1, 10.0, 10)
    (1.0, 0.5, 0.1)
    """
    return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * x / n)) / 2.0


def _periods(label: str, size: float, end: int, kind: str, sched: Schedule | None = None) -> SpanSeq:
    """One span per period of ``size`` steps up to the run's ``end`` (``"{label} k"``, the last cut short), computed
    when asked for, never listed. A fractional ``size`` (:func:`_period`) gives fractional boundaries, which the
    phases round as :func:`_periods_before` does; a per-epoch ``sched`` (``interval="epoch"``) moves each boundary
    to the step its staircase takes it at (:func:`_edge`)."""
    if sched is not None and sched.interval == "epoch":
        def moved(k: int) -> Span:
            return f"{label} {k}", _edge(sched, k * size), min(_edge(sched, (k + 1) * size), float(end)), kind

        spe = float(sched.steps_per_epoch)  # type: ignore[arg-type]
        whole = spe >= 1  # every epoch holds a step: the boundaries moved to distinct epochs are distinct steps
        if size >= spe:  # a period of at least one epoch: each boundary moves to an epoch of its own
            n = math.ceil(end / size)
            return SpanSeq.uniform(n, moved, integral=True) if whole else SpanSeq(n, moved)

        # periods shorter than an epoch: the staircase moves at every epoch's start (by one period or more), so one
        # span per epoch, named after the period it is in
        def epoch(j: int) -> Span:
            k = _periods_on_clock(sched, j * spe, size)
            return f"{label} {k}", _edge(sched, j * spe), min(_edge(sched, (j + 1) * spe), float(end)), kind

        n = math.ceil(end / spe)
        return SpanSeq.uniform(n, epoch, integral=True) if whole else SpanSeq(n, epoch)

    def period(k: int) -> Span:
        return f"{label} {k}", float(k * size), float(min((k + 1) * size, end)), kind

    if isinstance(size, int):
        return SpanSeq.uniform(-(-end // size), period, integral=True)
    return SpanSeq.uniform(math.ceil(end / size), period, min_len=size)


def _edge(sched: Schedule, b: float) -> float:
    """The step at which a boundary ``b`` (in local steps) shows: ``b`` itself stepped per step (the phases round it),
    and with ``interval="epoch"`` the first step of the first epoch whose start reaches it (see
    :func:`_periods_on_clock`): 7.5 steps with 2.5-step epochs is step 8, the first step of epoch 3.

    >>> from lrkit.schedules import StepDecay
    >>> _edge(StepDecay(step_size=1, interval="epoch", steps_per_epoch=2.5), 7.5)
    8.0
    """
    if sched.interval != "epoch":
        return float(b)
    spe = float(sched.steps_per_epoch)  # type: ignore[arg-type]
    e = math.ceil(b / spe - _ON_EDGE)
    return float(max(0, math.ceil((e - _ON_EDGE) * spe)))


def _period(sched: Schedule, key: str, value: Any, unit: str) -> float:
    """A period (``step_size``, ``T_0``) in optimizer steps: an ``int`` when it is whole (torch's), else, when it
    is longer than one step, the fractional length (1.5 epochs of 7 steps: 10.5), whose boundaries are rounded one
    by one (:func:`_periods_before`) instead of rounding the period: a period rounded to 10 steps would drift half
    a step a period and put a drop or a restart at 20 in a 21-step run of two 1.5-epoch periods."""
    steps = sched._span(key, value, unit, integer=True)  # validated: at least one optimizer step
    real = sched._span(key, value, unit, integer=False)
    return float(real) if real > 1 and not float(real).is_integer() else int(steps)


def _periods_before(t: float, size: float) -> int:
    """How many period boundaries ``k * size`` (``k >= 1``), each rounded to a whole step as a run's length is,
    are at or before step ``t``: ``t // size`` for a whole ``size``."""
    if isinstance(size, int):
        return int(t // size)
    k = int(t // size)
    while k > 0 and round(k * size) > t:
        k -= 1
    while round((k + 1) * size) <= t:
        k += 1
    return k


#: How far (in periods or epochs) a per-epoch clock may fall short of a boundary and still count as on it: the
#: clock is ``e * steps_per_epoch`` and a boundary ``k * S * steps_per_epoch``, equal up to float rounding.
_ON_EDGE = 1e-9


def _periods_on_clock(sched: Schedule, t: float, size: float) -> int:
    """How many period boundaries ``k * size`` (``k >= 1``) are at or before local time ``t``.

    Stepped per optimizer step, a boundary falls on a whole step (:func:`_periods_before` rounds it). With
    ``interval="epoch"``, ``t`` is the start of an epoch in steps (``e * steps_per_epoch``, fractional when an epoch
    is not a whole number of steps) and the boundary is compared as it is, as torch's schedulers stepped once per
    epoch count epochs: a period of 3 epochs of 2.5 steps ends at 7.5, the start of epoch 3, not at step 8 after
    it (which would hold epoch 3 at the old LR and put the drop or restart an epoch late).
    """
    if sched.interval == "epoch":
        return math.floor(t / size + _ON_EDGE)
    return _periods_before(t, size)


def _levels(bounds: Sequence[float], total: int | None, name: Callable[[int], str], kind: str) -> list[Span]:
    """One span per level between ``bounds`` (from ``bounds[0]``), the last open-ended without a run length; cut
    at the run's end (levels that start after it are left out)."""
    spans: list[Span] = []
    for k, start in enumerate(bounds):
        if total is not None and start >= total:
            break
        end = bounds[k + 1] if k + 1 < len(bounds) else total
        if end is not None and total is not None:
            end = min(end, total)
        spans.append((name(k), float(start), None if end is None else float(end), kind))
    return spans


# ==============================================================================================================
class Constant(Schedule):
    """Constant LR: ``m(t) = 1``.

    >>> Constant(lr0=3e-4).lr(10_000)
    0.0003
    """

    name = "constant"

    def __init__(
        self,
        *,
        lr0: float | None = None,
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)

    def _value(self, t: float) -> float:
        return 1.0


# ==============================================================================================================
def _power(what: str, gamma: float, k: float, t: float) -> float:
    """``gamma ** k`` for a decay family; a ``gamma > 1`` that grows past a float names itself instead of raising a
    bare ``OverflowError``.

    >>> _power("step: gamma=0.1", 0.1, 2, 60)
    0.010000000000000002
    >>> _power("step: gamma=1e+300", 1e300, 2, 60)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: step: gamma=1e+300 overflows a float by step 60 (the multiplier passes 1e308); use gamma <= 1, ...
    """
    try:
        return gamma**k
    except OverflowError:
        raise ValueError(
            f"{what} overflows a float by step {t:g} (the multiplier passes 1e308); use gamma <= 1, or a shorter run"
        ) from None


class StepDecay(Schedule):
    """Step decay (torch ``StepLR``): ``m(t) = gamma ** floor(t / S)``, ``S = step_size`` in steps.

    ``step_size`` is in epochs by default (``unit="epoch"``: ÷10 every 30 epochs is ``step_size=30``); a
    fractional number of optimizer steps (1.5 epochs of 7 steps) drops at each multiple rounded to a whole step
    (10, 21, 32: no drift); ``unit="step"`` gives it in optimizer steps.

    >>> s = StepDecay(lr0=0.1, step_size=30, gamma=0.1, steps_per_epoch=100)
    >>> s.lr(2999), round(s.lr(3000), 12), round(s.lr(6000), 12)
    (0.1, 0.01, 0.001)
    """

    name = "step"

    def __init__(
        self,
        *,
        step_size: float,
        gamma: float = 0.1,
        lr0: float | None = None,
        unit: str = "epoch",
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        self.unit = _unit(unit)
        self.gamma = check_positive("gamma", gamma)
        self.step_size = _period(self, "step_size", step_size, self.unit)

    def _value(self, t: float) -> float:
        return _power(f"step: gamma={self.gamma!r}", self.gamma, _periods_on_clock(self, t, self.step_size), t)

    def _phase_spans(self) -> Sequence[Span]:
        end, size = self.total_steps, self.step_size
        if end is None:
            edge = _edge(self, size)
            return [("level 0", 0.0, edge, "step"), ("level 1+", edge, None, "step")]
        return _periods("level", size, end, "step", self)  # one level per step_size


# ==============================================================================================================
class MultiStep(Schedule):
    """Multi-step decay (torch ``MultiStepLR``): ``m(t) = gamma ** #{milestones <= t}``.

    ``milestones`` are in epochs by default (``unit="epoch"``), rounded to whole steps; a milestone listed ``n``
    times decays by ``gamma ** n`` (as in torch).

    >>> s = MultiStep(lr0=0.1, milestones=[30, 80], steps_per_epoch=10)
    >>> s.lr(299), round(s.lr(300), 12), round(s.lr(800), 12)
    (0.1, 0.01, 0.001)
    """

    name = "multistep"

    def __init__(
        self,
        *,
        milestones: Sequence[float] | float,
        gamma: float = 0.1,
        lr0: float | None = None,
        unit: str = "epoch",
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        self.unit = _unit(unit)
        self.gamma = check_positive("gamma", gamma)
        if isinstance(milestones, numbers.Real) or getattr(milestones, "ndim", None) == 0:  # a bool, a 0-d tensor too
            ms: list[Any] = [milestones]
        elif isinstance(milestones, (str, bytes, Mapping)) or not isinstance(milestones, Iterable):
            raise ValueError(f"milestones={milestones!r} must be a number or a list of numbers (e.g. 30,60,90)")
        else:
            ms = list(milestones)
        if not ms:
            raise ValueError("milestones=[] must list at least one milestone")
        steps = [int(self._span("milestones", m, self.unit, integer=True)) for m in ms]
        if steps != sorted(steps):
            raise ValueError(f"milestones={ms!r} must be in increasing order (e.g. {sorted(ms)!r}; a milestone given "
                             "twice applies gamma twice, as torch's MultiStepLR does)")
        self.milestones = steps
        # per epoch (interval="epoch") a milestone is reached at the start of the epoch it falls on, compared in
        # epochs as it is, not rounded to a whole step (see _periods_on_clock)
        self._epoch_milestones = (sorted(self._span("milestones", m, self.unit, integer=False)
                                         / self.steps_per_epoch for m in ms)  # type: ignore[operator]
                                  if self.interval == "epoch" else [])

    def _value(self, t: float) -> float:
        if self.interval == "epoch":
            k = bisect_right(self._epoch_milestones, t / self.steps_per_epoch + _ON_EDGE)  # type: ignore[operator]
        else:
            k = bisect_right(self.milestones, t)
        return _power(f"multistep: gamma={self.gamma!r}", self.gamma, k, t)

    def _phase_spans(self) -> list[Span]:
        if self.interval == "epoch":  # where the staircase takes each milestone: the first step of its epoch
            spe = float(self.steps_per_epoch)  # type: ignore[arg-type]
            bounds = sorted({_edge(self, m * spe) for m in self._epoch_milestones})
        else:
            bounds = sorted(set(self.milestones))
        return _levels([0, *bounds], self.total_steps, "level {}".format, "step")


# ==============================================================================================================
class Exponential(Schedule):
    """Exponential decay (torch ``ExponentialLR``): ``m(t) = gamma ** (t / U)``.

    ``gamma`` is the decay per epoch by default (``unit="epoch"``, ``U = steps_per_epoch``, decayed smoothly at
    every step; add ``interval="epoch"`` for torch's per-epoch staircase) or per optimizer step (``unit="step"``,
    ``U = 1``, torch stepped per batch). ``m <= 1`` when ``gamma <= 1``.

    >>> s = Exponential(lr0=0.1, gamma=0.5, steps_per_epoch=10)
    >>> round(s.lr(10), 12), round(s.lr(15), 12)
    (0.05, 0.035355339059)
    """

    name = "exponential"

    def __init__(
        self,
        *,
        gamma: float,
        lr0: float | None = None,
        unit: str = "epoch",
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        self.unit = _unit(unit)
        self.gamma = check_positive("gamma", gamma)
        if self.unit == "epoch" and self.steps_per_epoch is None:
            raise ValueError(
                f"exponential: gamma={gamma!r} is the decay per epoch (unit='epoch'), so steps_per_epoch is needed: "
                "pass steps_per_epoch=..., or unit='step' for the decay per optimizer step"
            )
        self.period = 1.0 if self.unit == "step" else float(self.steps_per_epoch)  # type: ignore[arg-type]

    def _value(self, t: float) -> float:
        k = t if self.period == 1.0 else t / self.period
        return _power(f"exponential: gamma={self.gamma!r} per {self.unit}", self.gamma, k, t)


# ==============================================================================================================
class Polynomial(Schedule):
    """Polynomial decay (torch ``PolynomialLR``): ``m(t) = (1 - min(t, N) / N) ** power``, ``N = total_iters``.

    ``total_iters`` defaults to the run length ``T`` (unit ``"step"`` by default).

    >>> s = Polynomial(lr0=1.0, power=2.0, total_steps=10)
    >>> s(0), round(s(5), 12), s(10)
    (1.0, 0.25, 0.0)
    """

    name = "polynomial"

    def __init__(
        self,
        *,
        power: float = 1.0,
        total_iters: float | None = None,
        lr0: float | None = None,
        unit: str = "step",
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        self.unit = _unit(unit)
        self.power = check_positive("power", power, allow_zero=True)
        self.total_iters = _length(self, "total_iters", total_iters)

    def _value(self, t: float) -> float:
        return (1.0 - min(self.total_iters, t) / self.total_iters) ** self.power

    def _phase_spans(self) -> list[Span]:
        return _decay_then_hold(self.total_iters, self.total_steps, "poly")


def _decay_then_hold(n: float, total: int | None, kind: str) -> list[Span]:
    spans: list[Span] = [("decay", 0.0, n if total is None else min(n, float(total)), kind)]
    if total is None or n < total:
        spans.append(("hold", n, None if total is None else float(total), "constant"))
    return spans


# ==============================================================================================================
class Linear(Schedule):
    """Linear from ``start_factor`` to ``end_factor`` over ``total_iters`` steps, then held (torch ``LinearLR``).

    ``m(t) = s + (e - s) * min(t, N) / N``. With Ultralytics' names, ``linear lr0=0.01 lrf=0.01`` decays
    ``lr0 -> lr0 * lrf`` over the whole run: ``lf(x) = (1 - x / epochs) * (1 - lrf) + lrf`` evaluated per step at
    fractional epochs ``x = t / steps_per_epoch`` (add ``interval="epoch"`` for Ultralytics' per-epoch steps).
    ``lrf`` is a synonym of ``end_factor`` (default 0.01, Ultralytics'); ``start_factor`` defaults to 1 and
    ``total_iters`` to the run length ``T``.

    >>> s = Linear(lr0=0.01, lrf=0.1, epochs=10, steps_per_epoch=100)
    >>> s.lr(0), round(s.lr(500), 12), round(s.lr(1000), 12)
    (0.01, 0.0055, 0.001)
    """

    name = "linear"

    def __init__(
        self,
        *,
        lr0: float | None = None,
        lrf: float | None = None,
        start_factor: float = 1.0,
        end_factor: float | None = None,
        total_iters: float | None = None,
        unit: str = "step",
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        if lrf is not None and end_factor is not None:
            raise ValueError(f"lrf={lrf!r} and end_factor={end_factor!r} are the same thing: give one")
        self.unit = _unit(unit)
        self.start_factor = _fraction(
            "start_factor", start_factor, why=" (a multiplier of lr0, the peak LR; above 1 the LR would start above it)"
        )
        end = 0.01 if lrf is None and end_factor is None else (lrf if lrf is not None else end_factor)
        self.end_factor = _fraction("lrf" if lrf is not None else "end_factor", end, why=_ABOVE_PEAK)
        self.total_iters = _length(self, "total_iters", total_iters)

    def _value(self, t: float) -> float:
        p = min(self.total_iters, t) / self.total_iters
        return self.start_factor * (1.0 - p) + self.end_factor * p  # exact at both ends, never below min(s, e)

    def _phase_spans(self) -> list[Span]:
        return _decay_then_hold(self.total_iters, self.total_steps, "linear")


# ==============================================================================================================
class Cosine(Schedule):
    """Cosine annealing ``lr0 -> lr0 * lrf`` (Ultralytics ``cos_lr``; torch ``CosineAnnealingLR``).

    ``m(t) = f + (1 - f) * (1 + cos(pi * min(t, N) / N)) / 2`` with ``N = T_max`` (default: the run length) and
    the floor ``f = lrf`` (a ratio, default 0.01) or ``f = eta_min / lr0`` (torch's absolute ``eta_min``).
    Ultralytics writes it ``lf(x) = ((1 - cos(x * pi / epochs)) / 2) * (lrf - 1) + 1``; lrkit evaluates it per
    step at fractional epochs (``interval="epoch"`` for Ultralytics' per-epoch values). After ``T_max`` the LR is
    held at the floor (torch's ``CosineAnnealingLR`` would climb back up).

    >>> s = Cosine(lr0=0.01, lrf=0.01, epochs=100, steps_per_epoch=10)
    >>> s.lr(0), round(s.lr(500), 12), round(s.lr(1000), 12)
    (0.01, 0.00505, 0.0001)
    """

    name = "cosine"

    def __init__(
        self,
        *,
        lr0: float | None = None,
        lrf: float | None = None,
        eta_min: float | None = None,
        T_max: float | None = None,
        unit: str = "step",
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        self.lrf, self.eta_min = _floor_args(lrf, eta_min, self._peak)
        self.unit = _unit(unit)
        if lrf is None and eta_min is None:
            self.lrf = 0.01
        self.T_max = _length(self, "T_max", T_max)

    def _floor(self) -> float:
        return self.lrf if self.lrf is not None else self._rel(self.eta_min, "eta_min")  # type: ignore[arg-type]

    def _value(self, t: float) -> float:
        return _cos_anneal(self._floor(), min(t, self.T_max), self.T_max)

    def _phase_spans(self) -> list[Span]:
        return _decay_then_hold(self.T_max, self.total_steps, "cos")


# ==============================================================================================================
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts, SGDR (torch ``CosineAnnealingWarmRestarts``).

    ``m(t) = f + (1 - f) * (1 + cos(pi * T_cur / T_i)) / 2``: cycle ``i`` lasts ``T_i = T_0 * T_mult ** i``
    steps and ``T_cur`` counts the steps since the last restart. ``T_0`` is in epochs by default
    (``unit="epoch"``); a fractional number of optimizer steps restarts at each cycle's end rounded to a whole step
    (no drift: two 1.5-epoch cycles of 7-step epochs end with the 21-step run). Floor ``f = eta_min / lr0``
    (absolute, torch, default 0) or ``lrf``.

    >>> s = CosineRestarts(lr0=1.0, T_0=10, T_mult=2, unit="step")
    >>> s(0), round(s(5), 12), s(10), s(30)
    (1.0, 0.5, 1.0, 1.0)
    """

    name = "cosine_restarts"

    def __init__(
        self,
        *,
        T_0: float,
        T_mult: int = 1,
        eta_min: float | None = None,
        lrf: float | None = None,
        lr0: float | None = None,
        unit: str = "epoch",
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        lrf_v, eta = _floor_args(lrf, eta_min, self._peak)
        self.unit = _unit(unit)
        self.T_0 = _period(self, "T_0", T_0, self.unit)
        try:
            mult = check_positive("T_mult", T_mult, allow_zero=True)
        except ValueError:
            if isinstance(T_mult, bool):
                raise
            mult = math.nan  # negative, NaN, not a number: the message below names the valid range
        if not (1 <= mult < math.inf and mult == int(mult)):  # a factor, not "a whole number of steps" (before)
            raise ValueError(f"T_mult={T_mult!r} must be an integer >= 1 (each cycle lasts T_mult times the one "
                             "before, as in torch's CosineAnnealingWarmRestarts)")
        self.T_mult = int(mult)
        self.lrf, self.eta_min = lrf_v, 0.0 if eta is None else eta

    def _cycle(self, t: float) -> tuple[int, float, float]:
        """(cycle index, start step of the cycle, its length); a fractional ``T_0``'s cycles run between their
        ends rounded to whole steps. Per epoch (``interval="epoch"``) the cycles run between their real ends, as
        torch's scheduler stepped once per epoch counts them (see :func:`_periods_on_clock`)."""
        if self.interval == "epoch":
            size = float(self.T_0)
            if self.T_mult == 1:
                i = _periods_on_clock(self, t, size)
                return i, i * size, size
            start, length, i = 0.0, size, 0
            while (t - start) / length + _ON_EDGE >= 1.0:
                start += length
                length *= self.T_mult
                i += 1
            return i, start, length
        if isinstance(self.T_0, int):
            if self.T_mult == 1:
                i = int(t // self.T_0)
                return i, float(i * self.T_0), float(self.T_0)
            start, length, i = 0.0, float(self.T_0), 0
            while t >= start + length:
                start += length
                length *= self.T_mult
                i += 1
            return i, start, length
        if self.T_mult == 1:
            i = _periods_before(t, self.T_0)
            first = round(i * self.T_0)
            return i, float(first), float(round((i + 1) * self.T_0) - first)
        start, length, i = 0.0, self.T_0, 0
        while t >= round(start + length):
            start += length
            length *= self.T_mult
            i += 1
        return i, float(round(start)), float(round(start + length) - round(start))

    _floor = Cosine._floor

    def _value(self, t: float) -> float:
        _, start, length = self._cycle(t)
        return _cos_anneal(self._floor(), max(0.0, t - start), length)

    def _end_value(self) -> float:
        # a run that ends with a cycle ends at its floor: the restart at total_steps is a cycle the run never has,
        # and a cooldown from it would jump back to the peak
        t = self._clock(float(self.total_steps))  # type: ignore[arg-type]
        _, start, _ = self._cycle(t)
        if t > 0 and abs(t - start) <= _ON_EDGE * t:  # per epoch the cycle starts are float products
            return self._floor()
        return self._value(t)

    def _phase_spans(self) -> Sequence[Span]:
        end, size = self.total_steps, self.T_0
        if end is not None and self.T_mult == 1:
            return _periods("cycle", size, end, "cos", self)  # one cycle per T_0 steps
        # T_mult > 1: the cycles grow geometrically, so a run has only log(T / T_0) of them
        spans: list[Span] = []
        start, length, i = 0.0, float(self.T_0), 0
        while (start < end) if end is not None else i < 1:
            stop = start + length
            a, b = _edge(self, start), _edge(self, stop)
            spans.append((f"cycle {i}", a, b if end is None else min(b, float(end)), "cos"))
            start, length, i = stop, length * self.T_mult, i + 1
        if end is None:
            spans.append((f"cycle {i}+", _edge(self, start), None, "cos"))
        return spans


# ==============================================================================================================
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def _check_gamma_applies(given: Any, gamma: float, mode: str) -> None:
    """``cyclic``'s ``gamma`` scales the amplitude only in ``exp_range``: elsewhere a ``gamma`` other than 1 (the
    default, no scaling) is ignored, as torch's ``CyclicLR`` ignores it, but with a ``UserWarning`` instead of
    without a word (the decay it asked for never happens)."""
    if gamma == 1.0 or mode == "exp_range":
        return
    if mode == "custom":
        msg = (f"cyclic: gamma={given!r} has no effect with a custom scale_fn (scale_fn gives the whole amplitude "
               "scale) and is ignored: put the decay in scale_fn, or drop gamma")
    else:
        msg = (f"cyclic: gamma={given!r} has no effect with mode={mode!r} and is ignored (as torch's CyclicLR "
               "ignores it): gamma scales the amplitude by gamma ** t only with mode=exp_range; use mode=exp_range "
               "for a decaying amplitude, or drop gamma")
    warnings.warn(msg, UserWarning, stacklevel=3)


class Cyclic(Schedule):
    """Cyclical LR (Smith 2017; torch ``CyclicLR``) between ``base_lr`` and ``max_lr``, with momentum cycling.

    With ``C = step_size_up + step_size_down``, ``cycle = floor(1 + t / C)``, ``x = 1 + t / C - cycle`` and
    ``r = step_size_up / C``: ``h = x / r`` while ``x <= r`` (rising), else ``(x - 1) / (r - 1)`` (falling);
    ``lr = base_lr + (max_lr - base_lr) * h * scale`` and ``momentum = max_momentum - (max_momentum -
    base_momentum) * h * scale``, where ``scale`` is 1 (``triangular``), ``1 / 2 ** (cycle - 1)``
    (``triangular2``) or ``gamma ** t`` (``exp_range``), or ``scale_fn`` of the cycle or of ``t``
    (``scale_mode``); ``t`` in ``exp_range`` and ``scale_fn`` counts epochs with ``unit="epoch"``. The multiplier
    is ``lr / max_lr``. Step sizes are in optimizer steps (``unit="step"``).

    >>> s = Cyclic(base_lr=0.001, max_lr=0.1, step_size_up=200, mode="triangular2")
    >>> s.lr(0), s.lr(200), s.lr(400), s.lr(600), s.momentum(200)
    (0.001, 0.1, 0.001, 0.0505, 0.8)
    """

    name = "cyclic"

    def __init__(
        self,
        *,
        base_lr: float,
        max_lr: float | None = None,
        step_size_up: float = 2000,
        step_size_down: float | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: str | None = None,
        cycle_momentum: bool = True,
        base_momentum: float = 0.8,
        max_momentum: float = 0.9,
        unit: str = "step",
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=max_lr, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval, peak_name="max_lr")
        self.unit = _unit(unit)
        self.base_lr = check_positive("base_lr", base_lr, allow_zero=True)
        if self._peak is not None and self.base_lr > self._peak:
            raise ValueError(f"base_lr={base_lr!r} must not exceed max_lr={max_lr!r}")
        up = self._span("step_size_up", step_size_up, self.unit, integer=False)
        down = up if step_size_down is None else self._span("step_size_down", step_size_down, self.unit,
                                                           integer=False)
        for key, value, steps in (("step_size_up", step_size_up, up), ("step_size_down", step_size_down, down)):
            if value is not None and steps < 1:  # the LR is sampled once a step: a shorter half cycle aliases
                of = "" if self.unit == "step" else f" epochs = {steps:g} optimizer steps, that"
                raise ValueError(f"cyclic: {key}={value!r}{of} is less than one optimizer step: the LR is set once "
                                 "a step, so a half cycle must last at least one step")
        if not math.isfinite(up + down):
            raise ValueError(f"cyclic: step_size_up={step_size_up!r} and step_size_down={step_size_down!r} make a "
                             "cycle longer than a float can count; give step sizes in optimizer steps of a real run")
        self.step_size_up, self.step_size_down = up, down
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.gamma = check_positive("gamma", gamma)
        if self.gamma > 1 and scale_fn is None and mode in ("exp_range", "exp-range", "exprange"):
            raise ValueError(
                f"gamma={gamma!r} must be in (0, 1] for mode='exp_range': the amplitude is scaled by gamma ** t, so "
                "above 1 it grows and the LR passes max_lr"
            )
        if scale_fn is not None:
            if not callable(scale_fn):
                raise ValueError(f"scale_fn={scale_fn!r} must be a callable x -> [0, 1]")
            self.mode = "custom"
            self.scale_mode = _check_choice("scale_mode", scale_mode or "cycle", ("cycle", "iterations"))
        else:
            self.mode = _check_choice("mode", mode, CYCLIC_MODES, {"exp-range": "exp_range", "exprange": "exp_range"})
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"
            if scale_mode is not None and _check_choice("scale_mode", scale_mode, ("cycle", "iterations")) != \
                    self.scale_mode:
                raise ValueError(f"scale_mode={scale_mode!r} only applies with a custom scale_fn (mode={mode!r})")
        _check_gamma_applies(gamma, self.gamma, self.mode)
        self.scale_fn = scale_fn
        _set_momentum_cycling(self, cycle_momentum, base_momentum, max_momentum)

    def with_peak(self, lr0: float) -> Schedule:
        if lr0 < self.base_lr:
            raise ValueError(f"cyclic: max_lr={lr0!r} (the peak LR) must not be below base_lr={self.base_lr!r}")
        return super().with_peak(lr0)

    def _scale(self, x: float) -> float:
        if self.scale_fn is not None:
            raw = self.scale_fn(x)
            try:
                v = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"cyclic: scale_fn({x:g}) returned {raw!r}, not a number in [0, 1]") from None
            if not 0.0 <= v <= 1.0:  # NaN too: it would reach the optimizer as the LR, silently
                raise ValueError(
                    f"cyclic: scale_fn({x:g}) = {v!r} must be in [0, 1] (the fraction of the max_lr - base_lr "
                    "amplitude; above 1 the LR passes max_lr, below 0 it drops under base_lr or goes negative)"
                )
            return v
        if self.mode == "triangular2":
            # torch's 1 / 2.0 ** (x - 1), written so that it underflows to 0 instead of overflowing after 1024
            # cycles (the same numbers: powers of two are exact)
            return 0.5 ** (x - 1)
        if self.mode == "exp_range":
            return self.gamma**x
        return 1.0

    def _height(self, t: float) -> float:
        """``h * scale`` in [0, 1] at step ``t``, computed exactly as torch's ``CyclicLR.get_lr``."""
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        if x <= self.step_ratio:
            h = x / self.step_ratio
        else:
            h = (x - 1) / (self.step_ratio - 1)
        if self.scale_mode == "cycle":
            return h * self._scale(cycle)
        # ``gamma ** t`` counts the schedule's own time unit: with unit="epoch" (step sizes in epochs) an epoch, as
        # torch's CyclicLR stepped once an epoch and `exponential unit=epoch` count it (per step it scaled the
        # amplitude by gamma ** steps: gamma=0.9 over 500-step epochs left nothing of it after the first epoch)
        spe = self.steps_per_epoch
        return h * self._scale(t / spe if self.unit == "epoch" and spe else t)

    def _value(self, t: float) -> float:
        b = self._rel(self.base_lr, "base_lr")
        return b + (1.0 - b) * self._height(t)

    def _momentum(self, t: float) -> float | None:
        if not self.cycle_momentum:
            return None
        return self.max_momentum - (self.max_momentum - self.base_momentum) * self._height(t)

    def _phase_spans(self) -> Sequence[Span]:
        up, size, end = self.step_size_up, self.total_size, self.total_steps
        if end is None:
            return [("up 1", 0.0, up, "linear"), ("down 1", up, size, "linear"), ("cycles 2+", size, None, "cyclic")]
        # cycle k (from 0) rises over [k C, k C + up) and falls over [k C + up, (k + 1) C): two phases a cycle,
        # computed when asked for, never listed. Cycles start below the end: k < K, the least K with K C >= end
        cycles = max(1, math.ceil(end / size))
        while cycles > 1 and (cycles - 1) * size >= end:
            cycles -= 1
        while cycles * size < end:
            cycles += 1
        n = 2 * cycles - (0 if (cycles - 1) * size + up < end else 1)
        stop = float(end)
        integral = float(up).is_integer() and float(self.step_size_down).is_integer()
        # a fractional boundary shows at the first whole step past it (where the formula turns), not at the step
        # nearest to it: with step_size_up=1.5 the LR still rises at step 4 (the peak is at 4.5), so rounding 4.5
        # half to even would open 'down 2' a step early; whole boundaries are exact as they are
        at = (lambda k, turn: k * size + (up if turn else 0.0)) if integral else self._first_step

        def half(j: int) -> Span:
            k, down = divmod(j, 2)
            if down:
                return f"down {k + 1}", float(at(k, True)), min(float(at(k + 1, False)), stop), "linear"
            return f"up {k + 1}", float(at(k, False)), min(float(at(k, True)), stop), "linear"

        if integral:
            return SpanSeq.uniform(n, half, integral=True, min_len=min(up, self.step_size_down))
        # each half then holds at least ceil(L) - 1 whole steps, L its length: a fractional L > 1 at least one, but a
        # whole L = 1 beside a fractional half none where the formula's floats reach its end a hair late (up=1.5,
        # down=1: step 9 still rises, x = 0.5999..96 < 0.6), so such halves are checked one by one
        sure = math.ceil(min(up, self.step_size_down)) - 1
        return SpanSeq.uniform(n, half, integral=sure >= 1, min_len=float(sure))

    def _first_step(self, k: int, turn: bool) -> int:
        """The first whole step of cycle ``k`` (from 0), or with ``turn`` the first of its falling half, by the same
        float arithmetic as :meth:`_height` (a step at the peak itself opens the falling half, as with whole step
        sizes)."""
        size = self.total_size

        def reached(t: int) -> bool:
            cycle = math.floor(1 + t / size)
            if not turn:
                return cycle >= k + 1
            return cycle > k + 1 or (cycle == k + 1 and 1.0 + t / size - cycle >= self.step_ratio)

        t = math.ceil(k * size + (self.step_size_up if turn else 0.0))
        while t > 0 and reached(t - 1):
            t -= 1
        while not reached(t):
            t += 1
        return t


# ==============================================================================================================
def _onecycle_ends(p: float, length: float, three_phase: bool) -> list[float]:
    """The steps (per epoch: epochs) at which one-cycle's phases end, as torch's ``OneCycleLR`` puts them."""
    if three_phase:
        return [float(p * length) - 1, float(2 * p * length) - 2, float(length) - 1]
    return [float(p * length) - 1, float(length) - 1]


def _empty_phase_end(ends: Sequence[float]) -> float | None:
    """The end of the first phase that ends where it starts (torch divides by its length, 0), else ``None``."""
    start = 0.0
    for end in ends:
        if end == start:
            return end
        start = end
    return None


def _empty_phase_error(given: Any, p: float, total: int, length: float, three_phase: bool, end: float, *,
                       per_epoch: bool) -> str:
    """The error for a ``pct_start`` that leaves a one-cycle phase empty, with a ``pct_start`` that works."""
    at = f"epoch {end:g} (interval=epoch)" if per_epoch else f"step {end:g}"
    n = f"{length:g} epochs" if per_epoch else f"total_steps={total}"
    if end == length - 1:  # the anneal has no step left: the rise (two rises, three-phase) take the whole run
        return (f"pct_start={given!r} with {n} gives an empty one-cycle phase ending at {at}: the rise takes the "
                f"whole run and leaves no step for the anneal; give pct_start < 1 (e.g. 0.3, torch's default)"
                + (" and <= 0.5 with three_phase=true" if three_phase else ""))
    top = 0.5 if three_phase else 1.0
    # a rise of 2 steps (epochs), else none at all (torch's pct_start=0: the cycle anneals from max_lr at once)
    works = [c for c in (2.0 / length, 0.0) if c <= top and _empty_phase_end(_onecycle_ends(c, length, three_phase))
             is None]
    if not works:  # pragma: no cover - pct_start=0 never leaves a phase empty
        return f"pct_start={given!r} with {n} gives an empty one-cycle phase ending at {at}: give a longer run"
    fix = works[0]
    why = f"a rise of 2 {'epochs' if per_epoch else 'steps'}" if fix else "no rise: the cycle anneals from max_lr"
    return (f"pct_start={given!r} with {n} gives an empty one-cycle phase ending at {at}: pct_start * "
            f"{'epochs' if per_epoch else 'total_steps'} = {p * length:g} makes the rise end where the cycle starts; "
            f"give another pct_start, e.g. pct_start={fix:g} ({why}), or a longer run")


class OneCycle(Schedule):
    """One-cycle policy (Smith & Topin 2018; torch ``OneCycleLR``), two- or three-phase, with momentum cycling.

    ``initial = 1 / div_factor``, ``min = initial / final_div_factor`` (multipliers of ``max_lr``). Phases end at
    steps ``pct_start * T - 1`` and ``T - 1`` (two-phase: ``initial -> 1 -> min``) or ``pct_start * T - 1``,
    ``2 * pct_start * T - 2`` and ``T - 1`` (three-phase: ``initial -> 1 -> initial -> min``), each annealed by
    ``cos`` (``end + (start - end) * (1 + cos(pi p)) / 2``) or ``linear`` (``start + (end - start) * p``);
    momentum goes the other way between ``max_momentum`` and ``base_momentum``. Needs the run length ``T``;
    past ``T - 1`` the final LR is held (torch raises "Tried to step N times").

    The phases are ``warmup`` (the rise over ``pct_start`` of the run, fastai's name), ``anneal-down`` (three-phase)
    and ``anneal``. Behind a ``warmup_steps=``/``warmup_epochs=`` warmup (from ``warmup_start_factor``, default 0, up
    to ``1 / div_factor``, where the cycle starts) the rise is named ``rise``, so the outer warmup is the one phase
    named ``warmup``.

    >>> s = OneCycle(max_lr=0.1, total_steps=100)
    >>> round(s.lr(0), 12), s.lr(29), round(s.lr(99), 12)
    (0.004, 0.1, 4e-07)
    """

    name = "onecycle"

    def __init__(
        self,
        *,
        max_lr: float | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=max_lr, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval, peak_name="max_lr")
        total = self._require_total("one-cycle")
        self.pct_start = _fraction("pct_start", pct_start)
        self.anneal_strategy = _check_choice("anneal_strategy", anneal_strategy, ("cos", "linear"),
                                             {"cosine": "cos"})
        _set_momentum_cycling(self, cycle_momentum, base_momentum, max_momentum)
        self.div_factor = check_positive("div_factor", div_factor)
        if self.div_factor < 1:
            raise ValueError(
                f"div_factor={div_factor!r} must be >= 1: the initial LR is max_lr / div_factor, so below 1 the "
                "one-cycle would start above max_lr and warm *down*"
            )
        self.final_div_factor = check_positive("final_div_factor", final_div_factor)
        if self.final_div_factor < 1:
            raise ValueError(
                f"final_div_factor={final_div_factor!r} must be >= 1: the final LR is the initial LR / "
                "final_div_factor, so below 1 the one-cycle would end above where it started"
            )
        self.three_phase = _bool("three_phase", three_phase)
        if self.three_phase and self.pct_start > 0.5:  # torch accepts it, and the run ends before the final anneal
            raise ValueError(
                f"pct_start={pct_start!r} must be <= 0.5 with three_phase=true: the second phase mirrors the first, "
                "so the two take 2 * pct_start of the run, and above 0.5 the LR never reaches its final anneal"
            )
        init = 1.0 / self.div_factor
        low = init / self.final_div_factor
        hi_m, lo_m = self.max_momentum, self.base_momentum
        p = self.pct_start
        # the cycle's time unit: an optimizer step, or per epoch (interval="epoch") an epoch, as torch's OneCycleLR
        # stepped once per epoch counts it: its phase ends (pct_start * T - 1, T - 1) are then in epochs, so the
        # last epoch reaches the final LR instead of holding the per-step curve's value at its start
        self._unit = float(self.steps_per_epoch) if self.interval == "epoch" else 1.0  # type: ignore[arg-type]
        # per epoch the cycle lasts as many epochs as start inside the run: 3 epochs of 7.5 steps are a 22-step run
        # (rounded) whose third epoch starts at step 15, so 3, not 22 / 7.5 = 2.93
        length = float(total) if self._unit == 1.0 else float(math.floor((total - 1) / self._unit + _ON_EDGE) + 1)
        self._length = length
        # (end, start_lr, end_lr, start_momentum, end_momentum) in that unit, as torch's _schedule_phases
        if self.three_phase:
            self._phases_def = [
                (float(p * length) - 1, init, 1.0, hi_m, lo_m),
                (float(2 * p * length) - 2, 1.0, init, lo_m, hi_m),
                (float(length) - 1, init, low, hi_m, hi_m),
            ]
        else:
            self._phases_def = [
                (float(p * length) - 1, init, 1.0, hi_m, lo_m),
                (float(length) - 1, 1.0, low, lo_m, hi_m),
            ]
        empty = _empty_phase_end([end for end, *_ in self._phases_def])
        if empty is not None:
            raise ValueError(_empty_phase_error(pct_start, p, total, length, self.three_phase, empty,
                                                per_epoch=self._unit != 1.0))

    def _anneal(self, a: float, b: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (b - a) * pct + a

    def _locate(self, t: float) -> tuple[int, float]:
        t = min(t / self._unit, self._length - 1)
        start = 0.0
        for i, (end, *_) in enumerate(self._phases_def):
            if t <= end or i == len(self._phases_def) - 1:
                return i, (t - start) / (end - start)
            start = end
        raise AssertionError("unreachable")  # pragma: no cover

    def _value(self, t: float) -> float:
        i, pct = self._locate(t)
        _, a, b, _, _ = self._phases_def[i]
        return self._anneal(a, b, pct)

    def _momentum(self, t: float) -> float | None:
        if not self.cycle_momentum:
            return None
        i, pct = self._locate(t)
        _, _, _, a, b = self._phases_def[i]
        return self._anneal(a, b, pct)

    def _phase_spans(self) -> list[Span]:
        names = ("warmup", "anneal-down", "anneal") if self.three_phase else ("warmup", "anneal")
        spans: list[Span] = []
        start = 0.0
        for name, (end, *_) in zip(names, self._phases_def):
            # phase i covers the steps (per epoch: the epochs) t <= end_i (torch); an epoch from its first step
            stop = min(_edge(self, max(0, math.floor(end) + 1) * self._unit), float(self.total_steps))  # type: ignore[arg-type]
            spans.append((name, start, stop, self.anneal_strategy))
            start = max(start, stop)
        return spans


# ==============================================================================================================
class LinearToZero(Schedule):
    """Linear decay to zero (transformers' ``get_linear_schedule_with_warmup``; "straight to zero").

    ``m(t) = max(0, 1 - t / T)``. With ``warmup_steps=W`` in a spec, the decay starts after the warmup
    (``warmup_prefix`` is on for this family): ``m(t) = (T - t) / (T - W)``.

    >>> s = LinearToZero(lr0=1.0, total_steps=100)
    >>> s(0), s(50), s(100)
    (1.0, 0.5, 0.0)
    """

    name = "linear_to_zero"

    def __init__(
        self,
        *,
        lr0: float | None = None,
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        self._total = float(self._require_total("linear decay to zero"))

    def _value(self, t: float) -> float:
        return max(0.0, 1.0 - t / self._total)

    def _phase_spans(self) -> list[Span]:
        return [("decay", 0.0, self._total, "linear")]


# ==============================================================================================================
class InverseSqrt(Schedule):
    """Inverse square-root decay (transformers' ``get_inverse_sqrt_schedule``; Vaswani et al. without the scale).

    ``m(t) = 1 / sqrt(1 + t / timescale)``. After a warmup of ``W`` steps (``warmup_prefix`` on) this is
    transformers' ``1 / sqrt((t + timescale - W) / timescale)``; in a spec ``timescale`` defaults to the warmup
    length, or 10 000 without warmup (transformers' default).

    >>> s = InverseSqrt(lr0=1.0, timescale=100)
    >>> s(0), s(300)
    (1.0, 0.5)
    """

    name = "inverse_sqrt"

    def __init__(
        self,
        *,
        timescale: float = 10_000,
        lr0: float | None = None,
        unit: str = "step",
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        self.unit = _unit(unit)
        self.timescale = self._span("timescale", timescale, self.unit, integer=False)

    def _value(self, t: float) -> float:
        return 1.0 / math.sqrt((t + self.timescale) / self.timescale)


# ==============================================================================================================
class WSD(Composed):
    """Warmup-stable-decay (MiniCPM; Hägele et al. 2024; transformers' ``get_wsd_schedule``).

    Warmup over ``W`` steps from ``warmup_start_factor`` (default ``min_lr_ratio``, as transformers) to 1, stable
    at 1, then a decay over ``D`` steps to ``min_lr_ratio``: ``m = r + (1 - r) * shape(p)`` with ``shape`` one of
    ``linear`` (``1 - p``), ``cosine`` (``(1 + cos(pi p)) / 2``, the default, as transformers) or ``1-sqrt``
    (``1 - sqrt(p)``). ``D`` is ``decay_steps``, ``decay_epochs`` or ``decay_frac`` of the whole run; the stable
    part is what remains, ``T - W - D``. Warmup and decay may fill the run (transformers' ``num_stable_steps=0``):
    then there is no ``stable`` phase, and the decay starts at the peak where the warmup ends; ``W + D > T`` is
    refused with the lengths that would fit.

    >>> s = WSD(lr0=1e-3, warmup_steps=100, decay_frac=0.1, total_steps=1000)
    >>> [p.name for p in s.phases], s(50), s(500), round(s.lr(950), 12)
    (['warmup', 'stable', 'decay'], 0.5, 1.0, 0.0005)
    >>> [p.name for p in WSD(lr0=1e-3, warmup_steps=100, decay_frac=0.9, total_steps=1000).phases]
    ['warmup', 'decay']
    """

    name = "wsd"

    def __init__(
        self,
        *,
        lr0: float | None = None,
        decay_steps: int | None = None,
        decay_frac: float | None = None,
        decay_epochs: float | None = None,
        decay_type: str = "cosine",
        min_lr_ratio: float = 0.0,
        warmup_steps: int | None = None,
        warmup_epochs: float | None = None,
        warmup_type: str | None = None,
        warmup_start_factor: float | None = None,
        warmup_bias_lr: float | None = None,
        warmup_momentum: float | None = None,
        momentum: float | None = None,
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
    ) -> None:
        total, spe = resolve_timeline(epochs=epochs, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
        if warmup_steps is None and warmup_epochs is None:
            # as for every family's generic warmup: an option of a warmup nobody asked for is a mistake, not a no-op
            options = [k for k, v in (("warmup_type", warmup_type), ("warmup_start_factor", warmup_start_factor),
                                      ("warmup_bias_lr", warmup_bias_lr), ("warmup_momentum", warmup_momentum))
                       if v is not None]
            if options:
                raise ValueError(f"{', '.join(options)} without a warmup length has no effect: add warmup_steps or "
                                 "warmup_epochs=...")
        warmup_type = "linear" if warmup_type is None else warmup_type
        if total is None:
            raise ValueError("wsd needs the run length: pass total_steps=... or epochs=... and steps_per_epoch=...")
        # checked here under its own name: the decay is built as a Cooldown, whose error would say cooldown_type
        decay_type = _check_choice("decay_type", decay_type, COOLDOWN_TYPES, _SHAPE_ALIASES)
        ratio = _fraction("min_lr_ratio", min_lr_ratio,
                          why=" (the multiplier of the peak LR the decay ends at; above 1 it would raise the LR)")
        w = _steps_from("warmup", warmup_steps, warmup_epochs, None, total, spe, allow_zero=True) or 0
        d = _steps_from("decay", decay_steps, decay_epochs, decay_frac, total, spe)
        if d is None:
            raise ValueError("wsd needs the decay length: decay_steps=..., decay_frac=... or decay_epochs=...")
        if w + d > total:
            w, d = _fill_exactly(w, d, total, warmup_steps, warmup_epochs, decay_steps, decay_epochs, decay_frac, spe)
        stable = total - w - d
        if stable < 0:
            raise ValueError(_wsd_too_long(w, d, total, spe, warmup_epochs is not None, decay_epochs is not None,
                                           decay_frac is not None))
        main = Constant(lr0=lr0, steps_per_epoch=spe)
        # warmup and decay may fill the run (transformers' num_stable_steps=0): a stable phase of no steps, which
        # the phases (and so the table and the picture) leave out; Constant itself only takes a length >= 1
        main.total_steps = stable
        # built even for an empty warmup, so a bad warmup option never passes silently (Composed drops 0 steps);
        # the default start (min_lr_ratio, as transformers) only where there is a warmup to start
        start = warmup_start_factor if warmup_start_factor is not None or not w else ratio
        warm = Warmup(w, type=warmup_type, start_factor=start, bias_lr=warmup_bias_lr,
                      start_momentum=warmup_momentum, prefix=True)
        super().__init__(main, warmup=warm, cooldown=Cooldown(d, type=decay_type, min_ratio=ratio, name="decay"),
                         momentum=momentum)
        self.min_lr_ratio = ratio
        self.label = "wsd"

    def _phase_spans(self) -> list[Span]:
        return [("stable" if name == "constant" else name, s, e, kind) for name, s, e, kind in super()._phase_spans()]


def _fill_exactly(w: int, d: int, total: int, warmup_steps: Any, warmup_epochs: Any, decay_steps: Any,
                  decay_epochs: Any, decay_frac: Any, spe: float | None) -> tuple[int, int]:
    """``wsd``'s warmup and decay lengths ``(w, d)``, each rounded to whole steps on its own, when they round past
    the ``total``-step run: if the lengths as given, added before rounding, fill the run (to the nearest step, as
    the run's own ``epochs x steps_per_epoch`` is rounded), the warmup ends at its rounded step and the decay takes
    the steps left, so the last phase ends where the run does, as a boundary rounded once would; otherwise
    ``(w, d)`` as they are, for the caller's "do not fit" error.

    ``warmup_epochs=0.5, decay_epochs=2.5`` of a 3-epoch run of 7 steps an epoch: 3.5 and 17.5 steps fill the
    21-step run, but round to 4 + 18 = 22; they get 4 + 17."""
    def real(steps: Any, epochs: Any, frac: Any) -> float:
        if steps is not None:
            return float(steps)
        if epochs is not None:
            return float(epochs) * spe  # type: ignore[operator]  # _steps_from needed spe for an epoch length
        return 0.0 if frac is None else float(frac) * total

    exact = real(warmup_steps, warmup_epochs, None) + real(decay_steps, decay_epochs, decay_frac)
    if exact > (total + 0.5) * (1 + 1e-12):  # over by more than rounding (1e-12: 0.7 + 0.3 epochs in floats)
        return w, d
    over = w + d - total  # 1: each length rounds up by at most half a step
    cut = min(over, d - 1)  # the decay gives the steps back, keeping one; the warmup the rest
    return w - (over - cut), d - cut


def _wsd_too_long(w: int, d: int, total: int, spe: float | None, warm_epochs: bool, decay_epochs: bool,
                  decay_frac: bool) -> str:
    """The error for a ``wsd`` whose warmup and decay do not fit in the run, with the lengths that would."""
    def fits(what: str, room: int, in_epochs: bool, as_frac: bool = False) -> str | None:
        if room < (0 if what == "warmup" else 1):
            return None
        if as_frac:
            return f"decay_frac <= {room / total:g}"
        if in_epochs and spe:
            return f"{what}_epochs <= {room / spe:g}"
        return f"{what}_steps <= {room}"

    options = [o for o in (fits("decay", total - w, decay_epochs, decay_frac), fits("warmup", total - d, warm_epochs))
               if o is not None]
    give = " or ".join(options) + ", or " if options else ""
    return (f"wsd: warmup ({w} steps) + decay ({d} steps) = {w + d} steps do not fit in the {total}-step run (they "
            f"may fill it, leaving no stable phase, but not exceed it): give {give}a run of at least {w + d} steps")


def _steps_from(
    what: str,
    steps: Any,
    epochs: Any,
    frac: Any,
    total: int | None,
    spe: float | None,
    *,
    allow_zero: bool = False,
) -> int | None:
    """``{what}_steps`` / ``{what}_epochs`` / ``{what}_frac`` (at most one) as whole optimizer steps."""
    given = [(k, v) for k, v in ((f"{what}_steps", steps), (f"{what}_epochs", epochs), (f"{what}_frac", frac))
             if v is not None]
    if len(given) > 1:
        keys = " and ".join(f"{k}={v!r}" for k, v in given)
        raise ValueError(f"{keys} give the {what} length twice: keep one")
    if not given:
        return None
    key, value = given[0]
    if key.endswith("_steps"):
        return _check_count(key, value, allow_zero=allow_zero)
    v = check_positive(key, value, allow_zero=allow_zero)
    if key.endswith("_epochs"):
        if spe is None:
            raise ValueError(f"{key}={value!r} needs steps_per_epoch (or epochs and total_steps)")
        if math.isinf(v * spe):  # round(inf) would be a bare OverflowError
            raise ValueError(f"{key}={value!r} epochs x steps_per_epoch={spe!r} overflows a float: give a length a "
                             "run can have")
        n = round(v * spe)
        # the arithmetic, so the user sees which side is too small: the value or the run
        of = f"{v:g} epochs x {spe:g} optimizer steps per epoch = {v * spe:g} steps"
    else:
        if v > 1:
            lo = "[" if allow_zero else "("  # a cooldown or decay of no steps is refused above: 0 is not valid
            raise ValueError(f"{key}={value!r} must be a fraction of the run in {lo}0, 1]")
        if total is None:
            raise ValueError(f"{key}={value!r} is a fraction of the run, so the run length is needed (total_steps)")
        n = round(v * total)
        of = f"{v:g} of a {total}-step run = {v * total:g} steps"
    if n < 1 and not (allow_zero and v == 0):
        raise ValueError(f"{key}={value!r} is less than one optimizer step ({of}); give more, or a longer run")
    return n


# ==============================================================================================================
def _time(t: Any) -> float:
    """A plateau time as saved: an ``int`` when whole (so states and records read as steps), else the float.

    >>> _time(30.0), _time(30.25)
    (30, 30.25)
    """
    v = float(t)
    return int(v) if v.is_integer() else v


@dataclass
class _PlateauState:
    best: float
    num_bad_epochs: int = 0
    cooldown_counter: int = 0
    reductions: list[float] = field(default_factory=list)
    last_step: float = -1
    observations: int = 0


class ReduceOnPlateau(Schedule):
    """Reduce on plateau (torch ``ReduceLROnPlateau``) as a schedule — the one *stateful* family.

    ``m(t) = min(1, max(factor ** k(t), min_lr / lr0))`` where ``k(t)`` counts the reductions made at steps
    ``<= t`` (a group already below ``min_lr`` keeps its LR, and a group stops at the first reduction that would
    change its LR by no more than ``eps``, as torch's per-group rule does).
    A reduction happens in :meth:`observe` (call it after each validation, with the step it applies from; the
    torch adapter's ``scheduler.observe(metric)`` does that) when the metric has not improved by ``threshold``
    (``rel`` or ``abs``, ``mode`` ``min`` or ``max``) for more than ``patience`` observations, then waits
    ``cooldown`` observations — exactly torch's rules. Because it is a schedule, a warmup can go in front
    (``"plateau warmup_steps=500"``, pytorch#68978). The observation history is its state: ``state_dict()``
    holds it and the torch adapter saves it with the step counter. ``eps`` (torch's minimal change) is checked
    against the peak LR when it is known, and against each group's own LR in ``to_torch`` otherwise.

    >>> s = ReduceOnPlateau(lr0=0.1, patience=1, factor=0.5)
    >>> [s.observe(v, step=10 * i) for i, v in enumerate([1.0, 1.0, 1.0])]
    [False, False, True]
    >>> s.lr(19), s.lr(20)
    (0.1, 0.05)
    """

    name = "plateau"
    stateful = True

    def __init__(
        self,
        *,
        lr0: float | None = None,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
    ) -> None:
        super().__init__(lr0=lr0, total_steps=total_steps, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         interval=interval)
        self.mode = _check_choice("mode", mode, ("min", "max"))
        f = check_positive("factor", factor)
        if f >= 1:
            raise ValueError(f"factor={factor!r} must be < 1 (new_lr = lr * factor)")
        self.factor = f
        self.patience = _check_count("patience", patience, allow_zero=True, what="observations (observe() calls)")
        self.threshold = check_positive("threshold", threshold, allow_zero=True)
        self.threshold_mode = _check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = _check_count("cooldown", cooldown, allow_zero=True, what="observations (observe() calls)")
        self.min_lr = check_positive("min_lr", min_lr, allow_zero=True)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self._state = _PlateauState(best=math.inf if self.mode == "min" else -math.inf)

    # torch's _is_better
    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _level(self, k: int) -> float:
        # torch never raises an LR: a group already below min_lr keeps its LR (min(1, ...))
        return min(1.0, max(self.factor**k, self._rel(self.min_lr, "min_lr")))

    def _taken(self, k: int) -> int:
        """How many of ``k`` reductions a group at this peak LR takes: torch skips a change ``<= eps`` and, its LR
        being unchanged, skips every later one too. Without a peak LR (the shared, unbound copy) all ``k``."""
        peak = self.peak_lr
        if peak is None or self.eps == 0:
            return k
        for j in range(k):
            if not peak * (self._level(j) - self._level(j + 1)) > self.eps:
                return j
        return k

    def _observe(self, metric: float, t: float) -> bool:
        """Feed one validation ``metric``; a reduction applies from local time ``t`` on (see :meth:`observe`: a
        whole step, or behind a wrapper the time that wrapper maps its step to). Returns True if reduced."""
        try:
            current = float(metric)
        except (TypeError, ValueError):
            raise ValueError(f"metric={metric!r} must be a number") from None
        st = self._state
        # last_step -1 with nothing observed is the fresh state: a prefix warmup's negative times come after it
        if t < st.last_step and (st.observations or st.last_step >= 0):
            raise ValueError(f"step={t:g} is before the last observed step {st.last_step:g}: observe steps in order")
        st.last_step = _time(t)
        st.observations += 1
        if self._is_better(current, st.best):
            st.best = current
            st.num_bad_epochs = 0
        else:
            st.num_bad_epochs += 1
        if st.cooldown_counter > 0:
            st.cooldown_counter -= 1
            st.num_bad_epochs = 0
        reduced = False
        if st.num_bad_epochs > self.patience:
            peak = self.peak_lr
            if peak is None:  # unbound (one copy per param group): each group clamps at min_lr by itself
                record = True
            else:
                k = len(st.reductions)
                record = peak * (self._level(k) - self._level(k + 1)) > self.eps
            if record:
                st.reductions.append(_time(t))
                reduced = True
            st.cooldown_counter = self.cooldown
            st.num_bad_epochs = 0
        return reduced

    @property
    def reductions(self) -> tuple[float, ...]:
        """The steps at which the LR was reduced, in this schedule's own clock: whole steps, except behind a
        re-plan (a stretched step falls between two) or a prefix warmup (a reduction observed mid-warmup is
        before step 0)."""
        return tuple(self._state.reductions)

    def _value(self, t: float) -> float:
        return self._level(self._taken(bisect_right(self._state.reductions, t)))

    def _phase_spans(self) -> list[Span]:
        # cut at the run's end like multistep's: a reduction observed inside a cooldown has no phase of its own
        return _levels([0, *self._state.reductions], self.total_steps,
                       lambda k: "plateau" if k == 0 else f"reduced x{k}", "constant")

    def state_dict(self) -> dict[str, Any]:
        st = self._state
        return {
            "best": st.best,
            "num_bad_epochs": st.num_bad_epochs,
            "cooldown_counter": st.cooldown_counter,
            "reductions": list(st.reductions),
            "last_step": st.last_step,
            "observations": st.observations,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # in place: copies made by with_peak() share this state object
        st = self._state
        st.best = float(state["best"])
        st.num_bad_epochs = int(state["num_bad_epochs"])
        st.cooldown_counter = int(state["cooldown_counter"])
        st.reductions[:] = [_time(r) for r in state["reductions"]]
        st.last_step = _time(state["last_step"])
        st.observations = int(state.get("observations", 0))


# ==============================================================================================================
def _ultralytics(
    *,
    lr0: float | None = 0.01,
    lrf: float | None = 0.01,
    cos_lr: bool = False,
    warmup_epochs: float = 3.0,
    warmup_steps: int | None = None,
    warmup_type: str = "linear",
    warmup_start_factor: float | None = None,
    warmup_bias_lr: float | None = 0.1,
    warmup_momentum: float | None = 0.8,
    momentum: float | None = 0.937,
    interval: str = "step",
    total_steps: int | None = None,
    epochs: float | None = None,
    steps_per_epoch: float | None = None,
) -> Schedule:
    """Ultralytics' schedule with its defaults (the ``ultralytics`` registry entry); see :func:`ultralytics`.

    ``warmup_steps`` (when given) replaces ``warmup_epochs`` as the warmup length; ``warmup_type`` and
    ``warmup_start_factor`` shape it as in any spec. ``lrf=None`` is the default 0.01.
    """
    total, spe = resolve_timeline(epochs=epochs, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    family = Cosine if _bool("cos_lr", cos_lr) else Linear
    main = family(lr0=lr0, lrf=lrf, total_steps=total, steps_per_epoch=spe, interval=interval)
    if warmup_steps is not None:
        w = _steps_from("warmup", warmup_steps, None, None, total, spe, allow_zero=True) or 0
    else:
        w = _steps_from("warmup", None, warmup_epochs, None, total, spe, allow_zero=True) or 0
    # built even for an empty warmup, so a bad warmup option never passes silently (Composed drops 0 steps)
    warm = Warmup(w, type=warmup_type, start_factor=warmup_start_factor, bias_lr=warmup_bias_lr,
                  start_momentum=warmup_momentum, prefix=False)
    sched = Composed(main, warmup=warm, momentum=momentum)
    peak = "" if lr0 is None else f" lr0={lr0:g}"  # None: multipliers of whatever peak the caller sets
    floor = main.lrf if isinstance(main, Cosine) else main.end_factor
    sched.label = f"ultralytics {'cosine' if family is Cosine else 'linear'}{peak} lrf={floor:g}"
    return sched


def ultralytics(
    *,
    lr0: float,
    lrf: float,
    cos_lr: bool,
    epochs: float,
    steps_per_epoch: float,
    warmup_epochs: float = 3.0,
    warmup_bias_lr: float = 0.1,
    warmup_momentum: float = 0.8,
    momentum: float = 0.937,
) -> Schedule:
    """Ultralytics' LR schedule: linear or cosine ``lr0 -> lr0 * lrf`` with Ultralytics' warmup.

    The same as the spec ``"cosine lr0=.. lrf=.. warmup_epochs=.. warmup_bias_lr=.. warmup_momentum=..
    momentum=.."`` (``"linear ..."`` when ``cos_lr`` is false):

    * ``lf(x) = (1 - x / epochs) * (1 - lrf) + lrf`` (linear) or ``((1 - cos(x * pi / epochs)) / 2) * (lrf - 1)
      + 1`` (cosine) at fractional epochs ``x = step / steps_per_epoch``;
    * warmup over ``W = round(warmup_epochs * steps_per_epoch)`` steps (Ultralytics' trainer uses
      ``max(round(warmup_epochs * nb), 100)`` iterations; lrkit uses exactly what you ask for): groups flagged
      ``is_bias`` go from ``warmup_bias_lr`` down to ``lr0 * lf(x)``, the others from 0 up, momentum from
      ``warmup_momentum`` up to ``momentum`` — blended into the live schedule as Ultralytics does;
    * ``momentum`` is held after the warmup.

    >>> s = ultralytics(lr0=0.01, lrf=0.01, cos_lr=True, epochs=100, steps_per_epoch=50)
    >>> s.lr(0), s.lr(0, is_bias=True), s.momentum(0), s.momentum(150), round(s.lr(5000), 12)
    (0.0, 0.1, 0.8, 0.937, 0.0001)
    """
    return _ultralytics(lr0=lr0, lrf=lrf, cos_lr=cos_lr, warmup_epochs=warmup_epochs, warmup_bias_lr=warmup_bias_lr,
                        warmup_momentum=warmup_momentum, momentum=momentum, epochs=epochs,
                        steps_per_epoch=steps_per_epoch)
