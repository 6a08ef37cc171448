"""The schedule protocol, phase records, and composition (warmup ∘ main ∘ cooldown) and re-planning.

A :class:`Schedule` is a closed-form function of the optimizer step: ``schedule(step)`` is the multiplier of the
peak LR at that step, ``schedule.lr(step)`` the absolute LR (for a param group with ``lr_scale`` 1) and
``schedule.momentum(step)`` the coupled momentum, or ``None`` where the policy does not set momentum. Nothing is
counted inside a schedule (the one exception, reduce-on-plateau, keeps the metric history it was shown), so a run
is resumed, fast-forwarded or plotted by evaluating the formula at a step.

Who calls what: :meth:`Schedule._value` (and :meth:`Schedule._momentum`) are the two methods a new family
implements; the torch adapter (:mod:`lrkit.schedules.torch`), the CLI and the plots call the public methods.

>>> from lrkit.schedules import Cosine
>>> s = Cosine(lr0=0.1, lrf=0.01, total_steps=100)
>>> round(s(0), 6), round(s(50), 6), round(s.lr(100), 6)
(1.0, 0.505, 0.001)
"""

from __future__ import annotations

import bisect
import copy
import math
import numbers
import operator
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from lrkit._utils import check_positive, unknown_name_error

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from lrkit.schedules.torch import LRSchedulerAdapter

__all__ = [
    "COOLDOWN_TYPES",
    "WARMUP_TYPES",
    "Composed",
    "Cooldown",
    "Phase",
    "Phases",
    "Replanned",
    "Schedule",
    "Warmup",
    "resolve_timeline",
]

#: A main schedule that ends below this multiplier of its peak LR leaves a cooldown behind it nothing to decay from
#: (``onecycle`` ends at ``1 / (div_factor * final_div_factor)``, 4e-6): it is warned about.
_NEARLY_ZERO = 1e-3

UNITS = ("step", "epoch")
INTERVALS = ("step", "epoch")
#: The name a family's own rising phase (one-cycle's first ``pct_start`` of the run, named ``warmup`` as fastai does)
#: takes behind a warmup in front of it, so a table or picture never shows two phases named ``warmup``.
RISE = "rise"


# --------------------------------------------------------------------------------------------------------------
# Phase records
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Phase:
    """One phase of a schedule, as data: steps ``[start, end)`` with a shape and its multipliers.

    ``end`` is ``None`` for an open-ended last phase (a schedule with no fixed length). ``start_value`` and
    ``end_value`` are the multipliers of the peak LR at the first and the last step of the phase.

    >>> from lrkit.schedules import from_spec
    >>> [(p.name, p.start, p.end) for p in from_spec("wsd lr0=1e-3 warmup_steps=10 decay_frac=0.2",
    ...                                               total_steps=100).phases]
    [('warmup', 0, 10), ('stable', 10, 80), ('decay', 80, 100)]
    """

    name: str
    start: int
    end: int | None
    kind: str
    start_value: float | None = None
    end_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The phase as a plain dict (for JSON records).

        >>> Phase("warmup", 0, 10, "linear", 0.0, 1.0).to_dict()["end"]
        10
        """
        # dataclasses.asdict's recursive copy made 24 us of every record's phase; the fields are all immutable
        return {"name": self.name, "start": self.start, "end": self.end, "kind": self.kind,
                "start_value": self.start_value, "end_value": self.end_value}


# A phase before its values are filled in: (name, start, end, kind), with float boundaries.
Span = tuple[str, float, float | None, str]

#: A block of span indices ``[lo, hi)`` whose spans all round to at least one step: ``(lo, hi, integral, min_len)``,
#: because every boundary in it is a whole step (``integral``) or every span in it is ``min_len > 1`` steps long.
Block = tuple[int, int, bool, float]

#: :class:`Phases` checks at most this many spans of a lazy :class:`SpanSeq` one by one (those outside its blocks);
#: with more it checks them all, as for a list.
_MAX_CHECKED = 1024


class SpanSeq(Sequence[Span]):
    """The spans of a schedule with one phase per cycle or level, computed on access: O(1) memory however many
    cycles a run has, and ``O(1)`` per item (``item(i)`` is the i-th ``(name, start, end, kind)``).

    Spans are contiguous and in order. ``blocks`` say where :class:`Phases` may skip rounding each span (see
    :data:`Block`); a span outside every block is checked when the phases are built.

    >>> spans = SpanSeq.uniform(1_000_000, lambda i: (f"level {i}", float(i), float(i + 1), "step"), integral=True)
    >>> len(spans), spans[-1], spans.blocks
    (1000000, ('level 999999', 999999.0, 1000000.0, 'step'), ((1, 999999, True, 0.0),))
    """

    def __init__(self, n: int, item: Callable[[int], Span], *, blocks: Sequence[Block] = ()) -> None:
        self._n = int(n)
        self._item = item
        self.blocks: tuple[Block, ...] = tuple(b for b in blocks if b[1] > b[0])

    @classmethod
    def uniform(cls, n: int, item: Callable[[int], Span], *, edge: int = 1, integral: bool = False,
                min_len: float = 0.0) -> SpanSeq:
        """Spans alike but for ``edge`` at each end (a run's end can cut the last one short)."""
        return cls(n, item, blocks=[(edge, n - edge, integral, min_len)])

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._item(j) for j in range(*i.indices(self._n))]
        j = _as_index(i)
        if j < 0:
            j += self._n
        if not 0 <= j < self._n:
            raise IndexError(f"span index {i} out of range for {self._n} spans")
        return self._item(j)

    def __iter__(self) -> Iterator[Span]:
        return (self._item(j) for j in range(self._n))

    def first_ending_after(self, t: float) -> int:
        """The index of the first span that ends after ``t`` (ends are in order: a bisection)."""
        lo, hi = 0, self._n
        while lo < hi:
            mid = (lo + hi) // 2
            end = self._item(mid)[2]
            if end is not None and end <= t:
                lo = mid + 1
            else:
                hi = mid
        return lo


def _as_index(i: Any) -> int:
    """``operator.index`` (an int index, or a TypeError naming what was given)."""
    try:
        return operator.index(i)
    except TypeError:
        raise TypeError(f"phase indices must be integers or slices, not {type(i).__name__}") from None


class Phases(Sequence[Phase]):
    """A schedule's phases as a read-only sequence of :class:`Phase` records (``Schedule.phases``), each built on
    access from its span (boundaries rounded to whole steps, a span that rounds to no step left out).

    A schedule with millions of cycles keeps O(1) memory: ``len()``, ``phases[i]`` and ``phases[-1]`` cost
    ``O(1)`` (two evaluations of the schedule per record); iterating costs one record per phase. It compares equal
    to a tuple of the same records (``tuple(phases)`` makes one).

    >>> from lrkit.schedules import from_spec
    >>> ph = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=1", total_steps=10_000_000).phases
    >>> len(ph), ph[-1].name, ph[-1].start, ph[-1].end
    (10000000, 'down 5000000', 9999999, 10000000)
    """

    def __init__(self, schedule: Schedule, spans: Sequence[Span]) -> None:
        self._sched = schedule
        self._spans = spans
        n = len(spans)
        sure: list[tuple[int, int]] = []  # index ranges whose spans all round to a phase
        if isinstance(spans, SpanSeq) and spans.blocks:
            last = spans[n - 1]
            far = abs(last[2] if last[2] is not None else last[1])
            # min_len needs a margin above one step wider than the float rounding of boundaries this far out
            sure = [(lo, hi) for lo, hi, integral, min_len in spans.blocks
                    if integral or (min_len > 1.001 and far < 2.0**40)]
            if n - sum(hi - lo for lo, hi in sure) > _MAX_CHECKED:
                sure = []
        # runs of consecutive kept spans, and how many phases come before each
        self._runs: list[list[int]] = []
        pos = 0
        for lo, hi in [*sure, (n, n)]:
            for j in range(pos, lo):
                if self._rounds(spans[j]):
                    self._add(j, j + 1)
            self._add(lo, hi)
            pos = hi
        self._before: list[int] = []
        total = 0
        for lo, hi in self._runs:
            self._before.append(total)
            total += hi - lo
        self._len = total

    def _add(self, lo: int, hi: int) -> None:
        if hi <= lo:
            return
        if self._runs and self._runs[-1][1] == lo:
            self._runs[-1][1] = hi
        else:
            self._runs.append([lo, hi])

    @staticmethod
    def _rounds(span: Span) -> bool:
        s = round(span[1])
        return span[2] is None or round(span[2]) > s

    def __len__(self) -> int:
        return self._len

    def _span_index(self, k: int) -> int:
        r = bisect.bisect_right(self._before, k) - 1
        return self._runs[r][0] + k - self._before[r]

    def _span_of(self, k: int) -> Span:
        """The unrounded span phase ``k`` comes from."""
        return self._spans[self._span_index(k)]

    def _phase(self, k: int) -> Phase:
        name, start, end, kind = self._span_of(k)
        s = round(start)
        e = None if end is None else round(end)
        sv = self._sched._safe_eval(s)
        ev = None if e is None else self._sched._safe_eval(e - 1)
        return Phase(name, s, e, kind, sv, ev)

    def __getitem__(self, i: Any) -> Any:
        n = len(self)
        if isinstance(i, slice):
            return tuple(self._phase(k) for k in range(*i.indices(n)))
        k = _as_index(i)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"phase index {i} out of range for {n} phases")
        return self._phase(k)

    def __iter__(self) -> Iterator[Phase]:
        return (self._phase(k) for k in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Phases):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        if isinstance(other, tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        n = len(self)
        if n <= 6:
            return f"Phases({tuple(self)!r})"
        return f"Phases({n} phases: {self[0]!r}, {self[1]!r}, ..., {self[-1]!r})"


# --------------------------------------------------------------------------------------------------------------
# Time: epochs + steps_per_epoch or total_steps
# --------------------------------------------------------------------------------------------------------------
def _check_count(name: str, value: Any, *, allow_zero: bool = False, what: str = "steps") -> int:
    """Validate an integral count (``30`` or ``30.0``) of ``what`` (optimizer steps by default) and return it as
    ``int``."""
    v = check_positive(name, value, allow_zero=allow_zero)
    if v != int(v):
        raise ValueError(f"{name}={value!r} must be a whole number of {what}")
    return int(v)


def _check_ratio(name: str, value: Any, *, why: str = "", allow_zero: bool = True, allow_one: bool = True) -> float:
    """Validate a multiplier of the peak LR in ``[0, 1]`` (``(0, 1]`` without ``allow_zero``; ``[0, 1)`` without
    ``allow_one``); the error names the key, the value, the valid range and, with ``why``, what a value outside
    it would do."""
    try:
        v = check_positive(name, value, allow_zero=True)
    except ValueError:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # not a number at all: say that
            raise
        v = float(value)  # a negative, nan or inf: the range below names what is valid
    if not ((v > 0 or (allow_zero and v == 0)) and (v < 1 or (allow_one and v == 1))):
        lo, hi = "[" if allow_zero else "(", "]" if allow_one else ")"
        raise ValueError(f"{name}={value!r} must be in {lo}0, 1{hi}{why}")
    return v


#: The longest run length: steps are counted in floats, which count whole numbers exactly up to 2**53 (above it
#: consecutive steps share a float, and phase arithmetic stops moving).
MAX_STEPS = 2**53


def resolve_timeline(
    *, epochs: float | None = None, steps_per_epoch: float | None = None, total_steps: int | None = None
) -> tuple[int | None, float | None]:
    """Resolve the run length in optimizer steps and the steps per epoch.

    Precedence (the same as ``torch.optim.lr_scheduler.OneCycleLR``):

    1. ``total_steps`` when given is the run length;
    2. else ``epochs * steps_per_epoch`` (rounded to a whole step);
    3. else the length is unknown (``None``), which families without a fixed end accept.

    ``steps_per_epoch`` converts epoch-valued parameters (``warmup_epochs``, ``step_size`` of ``step`` …) to
    steps; when only ``epochs`` and ``total_steps`` are given it is ``total_steps / epochs``.

    >>> resolve_timeline(epochs=90, steps_per_epoch=100)
    (9000, 100)
    >>> resolve_timeline(epochs=10, total_steps=250)
    (250, 25.0)
    """
    ep = None if epochs is None else check_positive("epochs", epochs)
    spe: float | None = None
    if steps_per_epoch is not None:
        spe = check_positive("steps_per_epoch", steps_per_epoch)
        if spe == int(spe):
            spe = int(spe)
    total = None if total_steps is None else _check_count("total_steps", total_steps)
    if total is not None and total > MAX_STEPS:
        raise ValueError(f"total_steps={total_steps!r} is more optimizer steps than a float counts exactly "
                         f"(2**53 = {MAX_STEPS}): give the run length of a run that can be trained")
    if total is None and ep is not None:
        if spe is None:
            raise ValueError(
                f"epochs={epochs!r} needs steps_per_epoch (time is counted in optimizer steps): "
                "pass steps_per_epoch=..., or total_steps=... instead"
            )
        if math.isinf(ep * spe):  # round(inf) would be a bare OverflowError
            raise ValueError(f"epochs={epochs!r} * steps_per_epoch={steps_per_epoch!r} overflows a float: give a run "
                             "length a run can have")
        total = round(ep * spe)
        if total > MAX_STEPS:
            raise ValueError(f"epochs={epochs!r} * steps_per_epoch={steps_per_epoch!r} = {total:.4g} optimizer steps "
                             f"is more than a float counts exactly (2**53 = {MAX_STEPS}): give the run length of a "
                             "run that can be trained")
        if total < 1:
            raise ValueError(f"epochs={epochs!r} * steps_per_epoch={steps_per_epoch!r} is less than one step")
    if spe is None and ep is not None and total is not None:
        spe = total / ep
    return total, spe


def _check_step(step: Any) -> float:
    if isinstance(step, bool):  # an int subclass: s(True) must not silently mean step 1
        raise ValueError(f"step={step!r} must be a number of optimizer steps (>= 0), not a boolean")
    try:
        t = float(step)
    except (TypeError, ValueError):
        raise ValueError(f"step={step!r} must be a number of optimizer steps (>= 0)") from None
    if not t >= 0 or math.isinf(t):
        raise ValueError(f"step={step!r} must be a finite number of optimizer steps >= 0")
    return t


def _check_choice(name: str, value: Any, choices: tuple[str, ...], aliases: dict[str, str] | None = None) -> str:
    key = str(value).lower().replace("_", "-") if isinstance(value, str) else value
    aliases = aliases or {}
    if isinstance(key, str) and key in aliases:
        key = aliases[key]
    for choice in choices:  # only a str can match: an array's == would be elementwise, its truth ambiguous
        if isinstance(key, str) and (key == choice or key == choice.replace("_", "-")):
            return choice
    raise unknown_name_error(f"value for {name}", str(value), choices)


# --------------------------------------------------------------------------------------------------------------
# Shapes shared by warmup and cooldown
# --------------------------------------------------------------------------------------------------------------
WARMUP_TYPES = ("linear", "exponential", "cosine", "1-sqrt")
COOLDOWN_TYPES = ("linear", "cosine", "1-sqrt")
_SHAPE_ALIASES = {"exp": "exponential", "cos": "cosine", "sqrt": "1-sqrt", "1sqrt": "1-sqrt", "one-sqrt": "1-sqrt"}


def _ramp_up(kind: str, p: float) -> float:
    """0 → 1 as p goes 0 → 1 (transformers' warmup shapes)."""
    if kind == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * p))
    if kind == "1-sqrt":
        return 1.0 - math.sqrt(max(0.0, 1.0 - p))
    return p


def _ramp_down(kind: str, p: float) -> float:
    """1 → 0 as p goes 0 → 1 (transformers' WSD decay shapes)."""
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if kind == "1-sqrt":
        return 1.0 - math.sqrt(p)
    return 1.0 - p


# --------------------------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------------------------

#: a peak-LR token in a schedule's label: ``lr0=0.001`` / ``max_lr=0.1`` as a spec or the Ultralytics shorthand wrote it
_PEAK_TOKEN = re.compile(r"(?<!\S)(lr0|max_lr)=(\S+)")


def _relabel(label: str, peak: float) -> str:
    """``label`` with its peak-LR token (if any) naming ``peak``, so a schedule moved to another peak by
    :meth:`Schedule.with_peak` is not described by the spec's old ``lr0``; a token already equal to ``peak`` stays
    as written (``lr0=1e-3`` for 0.001)."""

    def repl(m: re.Match[str]) -> str:
        try:
            if float(m.group(2)) == peak:
                return m.group(0)
        except ValueError:
            pass
        return f"{m.group(1)}={peak:g}"

    return _PEAK_TOKEN.sub(repl, label, count=1)

class Schedule(ABC):
    """A closed-form LR schedule: ``schedule(step) -> multiplier of the peak LR``.

    Subclasses implement :meth:`_value` (the multiplier at a local step, a float ``t >= 0``) and, where the policy
    couples momentum, :meth:`_momentum`; :meth:`_phase_spans` lists their phases. The base class handles time
    (``epochs`` + ``steps_per_epoch`` or ``total_steps``, see :func:`resolve_timeline`), units, the peak LR and
    everything public.

    Public API:

    * ``schedule(step)`` / ``schedule.multiplier(step, is_bias=False)`` — the multiplier of the peak LR;
    * ``schedule.lr(step, is_bias=False)`` — the absolute LR, ``peak_lr * multiplier`` (needs the peak LR);
    * ``schedule.momentum(step)`` — momentum (SGD ``momentum`` / Adam ``beta1``) or ``None``;
    * ``schedule.total_steps``, ``schedule.steps_per_epoch``, ``schedule.peak_lr``, ``schedule.phases``;
    * ``schedule.record()`` — ``{"lr": [...], "momentum": [...], "phases": [...]}`` for plots and scripts;
    * ``schedule.replan(at_step=..., total_steps=...)`` — stretch the rest of the run, without a jump;
    * ``schedule.to_torch(optimizer)`` — a resumable ``torch.optim.lr_scheduler.LRScheduler``.

    Steps are optimizer steps counted from 0; ``step`` ranges over ``0 .. total_steps - 1`` in a run. Beyond
    ``total_steps`` a schedule never raises (unlike torch's ``OneCycleLR``): families with an end (cosine, linear,
    polynomial, one-cycle, linear-to-zero, WSD and any cooldown) hold their final value; open-ended ones (step,
    multi-step, exponential, cyclic, warm restarts, inverse-sqrt, plateau) keep following their formula, as torch's
    do.

    >>> from lrkit.schedules import StepDecay
    >>> s = StepDecay(lr0=0.1, step_size=30, gamma=0.1, steps_per_epoch=10)   # ÷10 every 30 epochs
    >>> s(299), round(s.lr(300), 12)
    (1.0, 0.01)
    """

    #: registry name of the family
    name: ClassVar[str] = "schedule"
    #: True when :meth:`momentum` can return a value
    couples_momentum: bool = False
    #: True for schedules that learn from :meth:`observe` (reduce-on-plateau)
    stateful: ClassVar[bool] = False

    def __init__(
        self,
        *,
        lr0: float | None = None,
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
        interval: str = "step",
        peak_name: str = "lr0",
    ) -> None:
        self._peak = None if lr0 is None else check_positive(peak_name, lr0)
        self._peak_name = peak_name
        self.total_steps, self.steps_per_epoch = resolve_timeline(
            epochs=epochs, steps_per_epoch=steps_per_epoch, total_steps=total_steps
        )
        self.interval = _check_choice("interval", interval, INTERVALS)
        if self.interval == "epoch" and self.steps_per_epoch is None:
            raise ValueError("interval='epoch' needs steps_per_epoch (or epochs and total_steps)")
        #: a short description (the spec string when built by ``from_spec``), used as a plot label
        self.label: str = self.name

    # ---- time helpers for subclasses --------------------------------------------------------------------------
    def _span(self, key: str, value: Any, unit: str, *, integer: bool) -> float:
        """Convert a time-like parameter given in ``unit`` to optimizer steps (validated, > 0)."""
        v = check_positive(key, value)
        if unit == "epoch":
            if self.steps_per_epoch is None:
                raise ValueError(
                    f"{self.name}: {key}={value!r} is in epochs (unit='epoch'), so steps_per_epoch is needed: "
                    "pass steps_per_epoch=... (or epochs and total_steps), or unit='step' to give it in steps"
                )
            v = v * self.steps_per_epoch
            if math.isinf(v):  # round(inf) would be a bare OverflowError
                raise ValueError(f"{self.name}: {key}={value!r} epochs x steps_per_epoch={self.steps_per_epoch!r} "
                                 "overflows a float: give a length a run can have")
        if integer:
            steps = round(v)
            if steps < 1:
                raise ValueError(f"{self.name}: {key}={value!r} ({unit}s) is less than one optimizer step")
            return steps
        return v

    def _require_total(self, what: str) -> int:
        if self.total_steps is None:
            raise ValueError(
                f"{self.name}: {what} needs the run length: pass total_steps=... or epochs=... and "
                "steps_per_epoch=..."
            )
        return self.total_steps

    def _rel(self, value: float, key: str) -> float:
        """An absolute LR parameter (``eta_min``, ``base_lr`` …) as a multiplier of the peak LR."""
        if value == 0:
            return 0.0
        peak = self.peak_lr
        if peak is None:
            raise ValueError(
                f"{self.name}: {key}={value!r} is an absolute LR, so the peak LR must be known: pass "
                f"{self._peak_name}=..., or use to_torch(optimizer), which takes it from the optimizer's groups"
            )
        rel = value / peak
        if not math.isfinite(rel):  # bias_lr=1e308 over lr0=0.1: an inf start would make the LR inf, then nan
            raise ValueError(f"{self.name}: {key}={value!r} is too far above the peak LR {self._peak_name}={peak!r} "
                             f"for a float ({key} / {self._peak_name} overflows): give {key} within a factor of "
                             "1e300 of the peak")
        return rel

    def _clock(self, t: float) -> float:
        """Quantize time to the start of the epoch when ``interval='epoch'`` (Ultralytics/torch per-epoch stepping)."""
        if self.interval == "epoch":
            spe = self.steps_per_epoch
            assert spe is not None  # checked in __init__
            return math.floor(t / spe + 1e-9) * spe
        return t

    # ---- what a family implements -----------------------------------------------------------------------------
    @abstractmethod
    def _value(self, t: float) -> float:
        """The multiplier of the peak LR at local step ``t`` (a float >= 0)."""

    def _momentum(self, t: float) -> float | None:
        """The coupled momentum at local step ``t``, or ``None`` (the default: momentum is not scheduled)."""
        return None

    def _phase_spans(self) -> Sequence[Span]:
        """The phases as ``(name, start, end, kind)`` in order (a list, or a lazy :class:`SpanSeq` for a family with
        a phase per cycle); the default is one phase over the whole run."""
        return [(self.name, 0.0, None if self.total_steps is None else float(self.total_steps), self.name)]

    # ---- evaluation pipeline (wrappers override these) --------------------------------------------------------
    def _eval(self, t: float, bias: bool) -> float:
        return self._value(self._clock(t))

    def _eval_momentum(self, t: float) -> float | None:
        return self._momentum(self._clock(t))

    # ---- public API -------------------------------------------------------------------------------------------
    @property
    def peak_lr(self) -> float | None:
        """The absolute LR the multipliers are relative to (``lr0``, or ``max_lr`` for cyclic/one-cycle)."""
        return self._peak

    @property
    def epochs(self) -> float | None:
        """The run length in epochs, when both ``total_steps`` and ``steps_per_epoch`` are known."""
        if self.total_steps is None or self.steps_per_epoch is None:
            return None
        return self.total_steps / self.steps_per_epoch

    def __call__(self, step: float, *, is_bias: bool = False) -> float:
        """The multiplier of the peak LR at optimizer ``step`` (see :meth:`multiplier`)."""
        return self.multiplier(step, is_bias=is_bias)

    def multiplier(self, step: float, *, is_bias: bool = False) -> float:
        """The multiplier of the peak LR at optimizer ``step``; ``is_bias`` selects the bias-group warmup.

        >>> from lrkit.schedules import from_spec
        >>> s = from_spec("linear lr0=0.01 lrf=0.1", total_steps=10)
        >>> s.multiplier(0), round(s.multiplier(5), 12), round(s.multiplier(10), 12)
        (1.0, 0.55, 0.1)
        """
        return float(self._eval(_check_step(step), bool(is_bias)))

    def lr(self, step: float, *, is_bias: bool = False) -> float:
        """The absolute LR at optimizer ``step`` for a group with ``lr_scale`` 1: ``peak_lr * multiplier``.

        >>> from lrkit.schedules import from_spec
        >>> from_spec("constant lr0=0.05").lr(123)
        0.05
        """
        peak = self.peak_lr
        if peak is None:
            raise ValueError(
                f"{self.name}: the peak LR is not known, so there is no absolute LR: give "
                f"{self._peak_name}=... (or call schedule(step) for the multiplier)"
            )
        return peak * self.multiplier(step, is_bias=is_bias)

    def momentum(self, step: float) -> float | None:
        """Momentum at optimizer ``step`` (SGD ``momentum`` / Adam ``beta1``), or ``None`` if not scheduled.

        >>> from lrkit.schedules import from_spec
        >>> s = from_spec("onecycle max_lr=0.1", total_steps=100)
        >>> s.momentum(0), s.momentum(29), s.momentum(99)
        (0.95, 0.85, 0.95)
        """
        return self._eval_momentum(_check_step(step))

    @property
    def phases(self) -> Phases:
        """The phases of the schedule as frozen :class:`Phase` records (boundaries rounded to whole steps), in a
        read-only, tuple-like :class:`Phases` sequence that builds each record on access (so a run of millions of
        cycles costs O(1) memory).

        >>> from lrkit.schedules import from_spec
        >>> [(p.name, p.start, p.end, p.kind) for p in from_spec("onecycle max_lr=0.1", total_steps=100).phases]
        [('warmup', 0, 30, 'cos'), ('anneal', 30, 100, 'cos')]
        """
        return Phases(self, self._phase_spans())

    def _safe_eval(self, t: float) -> float | None:
        try:
            return float(self._eval(float(t), False))
        except ValueError:  # an absolute parameter and no peak LR yet
            return None

    def _end_value(self) -> float:
        """The multiplier the run ends at, where a cooldown behind it starts: the value at ``total_steps`` (a
        family whose value there opens something new, such as a warm restart, gives the end of what it ran)."""
        return float(self._eval(float(self.total_steps), False))  # type: ignore[arg-type]

    def record(self, steps: int | None = None, *, base_lr: float | None = None) -> dict[str, Any]:
        """The schedule over a run as a record: one LR and one momentum (or ``None``) per step, and the phases.

        ``lr`` is absolute when the peak LR is known (or ``base_lr`` is given), else the multiplier. A ``base_lr``
        replaces a peak the schedule names (as :meth:`with_peak` does; ``lrkit schedule --base-lr`` instead leaves a
        spec's own ``lr0``/``max_lr`` alone and says so).
        Plots (:func:`lrkit.plots.schedule.plot_schedule`) and ``lrkit schedule --json`` read this record.

        >>> from lrkit.schedules import from_spec
        >>> r = from_spec("step lr0=0.1 step_size=2 gamma=0.5", steps_per_epoch=1, total_steps=5).record()
        >>> r["lr"], r["momentum"]
        ([0.1, 0.1, 0.05, 0.05, 0.025], [None, None, None, None, None])
        """
        n = steps if steps is not None else self.total_steps
        if n is None:
            raise ValueError(f"{self.name}: the schedule has no fixed length; pass steps=... to record it")
        n = _check_count("steps", n)
        sched = self
        if base_lr is not None:  # checked under the name the caller used (with_peak names the peak lr0/max_lr)
            sched = self.with_peak(check_positive("base_lr", base_lr))
        peak = sched.peak_lr
        scale = 1.0 if peak is None else peak
        lrs = [scale * float(sched._eval(float(t), False)) for t in range(n)]
        rec: dict[str, Any] = {
            "label": sched.label,
            "total_steps": n,
            "steps_per_epoch": self.steps_per_epoch,
            "peak_lr": peak,
            "absolute": peak is not None,
            "lr": lrs,
            "momentum": [sched._eval_momentum(float(t)) for t in range(n)],
            "phases": [p.to_dict() for p in sched.phases],
        }
        if sched._has_bias_warmup():
            rec["lr_bias"] = [scale * float(sched._eval(float(t), True)) for t in range(n)]
        return rec

    def text_plot(self, steps: int | None = None, *, width: int = 72, height: int = 12, ascii: bool = False,
                  log_y: bool = False, base_lr: float | None = None) -> str:
        """The LR over the run drawn as text, for a terminal (:func:`lrkit.plots.text.schedule_text`: Unicode
        braille, or plain ASCII with ``ascii=True``); ``steps`` and ``base_lr`` as in :meth:`record`. A long run is
        sampled (:func:`lrkit.schedules.report.sampled_record`: every phase boundary kept). ``lrkit schedule`` prints
        it.

        >>> from lrkit.schedules import from_spec
        >>> chart = from_spec("cosine lr0=0.1", total_steps=100).text_plot(width=60, height=6)
        >>> chart.splitlines()[0].split()[0], max(len(line) for line in chart.splitlines()) <= 60
        ('0.1', True)
        """
        from lrkit.plots.text import schedule_text
        from lrkit.schedules.report import sampled_record

        rec = sampled_record(self, steps=steps, base_lr=base_lr)
        return schedule_text(rec, width=width, height=height, ascii=ascii, log_y=log_y)

    def _has_bias_warmup(self) -> bool:
        return False

    def with_peak(self, lr0: float) -> Schedule:
        """A copy whose peak LR is ``lr0`` (state, if any, is shared with this one).

        >>> from lrkit.schedules import Cosine
        >>> Cosine(eta_min=0.001, total_steps=10).with_peak(0.1).lr(10)
        0.001
        """
        new = copy.copy(self)
        new._peak = check_positive(self._peak_name, lr0)
        new.label = _relabel(self.label, new._peak)
        return new

    def replan(
        self,
        *,
        at_step: int,
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
    ) -> Schedule:
        """Re-plan the run to a new length from ``at_step`` on: the rest of the schedule stretches (or shrinks).

        Steps up to ``at_step`` are unchanged, so the LR at ``at_step`` does not jump; every later point moves
        proportionally: ``t -> at_step + (t - at_step) * (T_old - at_step) / (T_new - at_step)``. The new
        length is ``total_steps``, else ``epochs * steps_per_epoch`` (``steps_per_epoch`` defaults to this
        schedule's).

        >>> from lrkit.schedules import from_spec
        >>> s = from_spec("cosine lr0=0.1 lrf=0.01", epochs=10, steps_per_epoch=10)
        >>> longer = s.replan(at_step=40, epochs=20)
        >>> longer.total_steps, longer.lr(40) == s.lr(40), round(longer.lr(200), 12)
        (200, True, 0.001)
        """
        return Replanned(self, at_step=at_step, total_steps=total_steps, epochs=epochs,
                         steps_per_epoch=steps_per_epoch)

    def to_torch(self, optimizer: torch.optim.Optimizer, *, last_step: int = -1) -> LRSchedulerAdapter:
        """A real ``torch.optim.lr_scheduler.LRScheduler`` that steps once per optimizer step.

        See :class:`lrkit.schedules.torch.LRSchedulerAdapter`.

        >>> import torch
        >>> from lrkit.schedules import from_spec
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
        >>> sched = from_spec("cosine lrf=0.1", total_steps=10).to_torch(opt)
        >>> opt.step(); sched.step(); round(opt.param_groups[0]["lr"], 6)
        0.097798
        """
        from lrkit.schedules.torch import LRSchedulerAdapter

        return LRSchedulerAdapter(optimizer, self, last_step=last_step)

    # ---- state (only reduce-on-plateau has any) ---------------------------------------------------------------
    def observe(self, metric: float, *, step: int) -> bool:
        """Feed a validation metric (reduce-on-plateau only); return True when the LR was reduced.

        >>> from lrkit.schedules import from_spec
        >>> s = from_spec("plateau lr0=0.1 patience=0 warmup_steps=10")
        >>> s.observe(1.0, step=20), s.observe(1.0, step=30), s.lr(29), round(s.lr(30), 12)
        (False, True, 0.1, 0.01)
        """
        t = _check_count("step", step, allow_zero=True) if self.stateful else 0  # closed-form: _observe says so
        return self._observe(metric, float(t))

    def _observe(self, metric: float, t: float) -> bool:
        """Feed ``metric`` at local time ``t``: the step :meth:`observe` was given, mapped through every wrapper's
        clock exactly as :meth:`_eval` maps it, so a float (a re-plan's stretch) or, inside a prefix warmup, a
        negative time. Wrappers forward it; reduce-on-plateau records it."""
        raise TypeError(
            f"schedule {self.name!r} is closed-form and does not observe metrics; only 'plateau' does "
            "(e.g. 'plateau patience=5 warmup_steps=500')"
        )

    def state_dict(self) -> dict[str, Any]:
        """The schedule's own state: empty for closed-form schedules (their state is the step counter).

        >>> from lrkit.schedules import from_spec
        >>> from_spec("cosine", total_steps=10).state_dict(), sorted(from_spec("plateau").state_dict())[:2]
        ({}, ['best', 'cooldown_counter'])
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - a no-op hook, overridden by plateau
        """Load :meth:`state_dict` (nothing to do for closed-form schedules)."""

    def __repr__(self) -> str:
        total = "" if self.total_steps is None else f", total_steps={self.total_steps}"
        return f"{type(self).__name__}({self.label!r}{total})"


# --------------------------------------------------------------------------------------------------------------
# Composition: warmup ∘ main ∘ cooldown
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Warmup:
    """A warmup in front of a schedule.

    Over steps ``0 .. steps`` the multiplier goes from ``start`` to the main schedule's value ``target``:

    * ``linear``: ``start + (target - start) * p`` with ``p = step / steps``;
    * ``cosine``: ``p`` replaced by ``(1 - cos(pi p)) / 2``; ``1-sqrt``: by ``1 - sqrt(1 - p)`` (transformers);
    * ``exponential``: geometric, ``start ** (1 - p) * target ** p`` (needs ``start > 0``).

    ``start`` is ``start_factor`` (default 0, or 0.01 for exponential), except for param groups flagged
    ``group["is_bias"] = True`` when ``bias_lr`` is given: they start at the absolute LR ``bias_lr`` and come
    *down* to the schedule (Ultralytics' ``warmup_bias_lr``). ``start_momentum`` (Ultralytics'
    ``warmup_momentum``) ramps momentum linearly up to the schedule's momentum.

    ``prefix=True`` runs the main schedule's clock from the end of the warmup (transformers, WSD); with
    ``prefix=False`` the main schedule runs on the global clock and the warmup blends into its live value
    (Ultralytics, timm's default).

    >>> w = Warmup(steps=100, start_factor=0.0)
    >>> w.steps, w.type
    (100, 'linear')
    """

    steps: int
    type: str = "linear"
    start_factor: float | None = None
    bias_lr: float | None = None
    start_momentum: float | None = None
    prefix: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", _check_count("warmup_steps", self.steps, allow_zero=True))
        object.__setattr__(self, "type", _check_choice("warmup_type", self.type, WARMUP_TYPES, _SHAPE_ALIASES))
        if self.start_factor is None:
            object.__setattr__(self, "start_factor", 0.01 if self.type == "exponential" else 0.0)
        sf = _check_ratio("warmup_start_factor", self.start_factor, allow_zero=self.type != "exponential",
                          why=(" (a multiplier of the peak LR: the warmup starts there and rises to the peak"
                               + (", geometrically, so it must be > 0" if self.type == "exponential" else "")
                               + "; above 1 it would start above the peak and warm *down*)"))
        object.__setattr__(self, "start_factor", sf)
        if self.bias_lr is not None:
            bias = check_positive("warmup_bias_lr", self.bias_lr, allow_zero=True)
            if bias == 0 and self.type == "exponential":  # found here, not mid-run in scheduler.step()
                raise ValueError(
                    f"warmup_bias_lr={self.bias_lr!r} must be > 0 for an exponential warmup: it is geometric, so a "
                    "start of 0 never leaves 0 (use warmup_type=linear to warm bias groups up from 0)"
                )
            object.__setattr__(self, "bias_lr", bias)
        if self.start_momentum is not None:
            m = check_positive("warmup_momentum", self.start_momentum, allow_zero=True)
            if m >= 1:
                raise ValueError(f"warmup_momentum={self.start_momentum!r} must be in [0, 1)")
            object.__setattr__(self, "start_momentum", m)
        if not isinstance(self.prefix, bool):
            raise ValueError(f"warmup_prefix={self.prefix!r} must be true or false")

    def blend(self, start: float, target: float, p: float) -> float:
        """The warmup multiplier at progress ``p`` in [0, 1] from ``start`` to ``target``."""
        if self.type == "exponential":
            if start <= 0:
                raise ValueError(f"exponential warmup needs a start > 0, got {start!r}")
            if target <= 0:
                return 0.0 if p > 0 else start
            return start ** (1.0 - p) * target**p
        return start + (target - start) * _ramp_up(self.type, p)


@dataclass(frozen=True)
class Cooldown:
    """A cooldown at the end of a schedule: from the main schedule's final value down to ``min_ratio``.

    ``multiplier = min_ratio + (v0 - min_ratio) * shape(p)`` with ``p`` the progress through the cooldown,
    ``v0`` the main schedule's value at its end and ``shape`` one of ``linear`` (``1 - p``), ``cosine``
    (``(1 + cos(pi p)) / 2``) or ``1-sqrt`` (``1 - sqrt(p)``) — transformers' ``get_wsd_schedule`` decay.

    >>> Cooldown(steps=50, type="1-sqrt").min_ratio
    0.0
    """

    steps: int
    type: str = "linear"
    min_ratio: float = 0.0
    name: str = "cooldown"

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", _check_count("cooldown_steps", self.steps))
        object.__setattr__(self, "type", _check_choice("cooldown_type", self.type, COOLDOWN_TYPES, _SHAPE_ALIASES))
        why = " (the multiplier of the peak LR the cooldown ends at; above 1 it would raise the LR)"
        object.__setattr__(self, "min_ratio", _check_ratio("cooldown_min_ratio", self.min_ratio, why=why))


class _Wrapper(Schedule):
    """A schedule around another one (composition, re-planning): it maps time and the wrapped schedule does the rest.

    The peak LR, the state (reduce-on-plateau's) and ``stateful`` are the wrapped schedule's; ``_wrapped_attr``
    names the attribute that holds it (``main`` for :class:`Composed`, ``inner`` for :class:`Replanned`).
    """

    _wrapped_attr: ClassVar[str]

    def _adopt(self, wrapped: Schedule, total: int | None, steps_per_epoch: float | None) -> None:
        """Take on the wrapped schedule's identity: its peak's name and label; the wrapper's own clock is in steps."""
        self.total_steps = total
        self.steps_per_epoch = steps_per_epoch
        self.interval = "step"
        self._peak_name = wrapped._peak_name
        self.label = wrapped.label

    @property
    def _wrapped(self) -> Schedule:
        return getattr(self, self._wrapped_attr)  # type: ignore[no-any-return]

    @property
    def peak_lr(self) -> float | None:
        return self._wrapped.peak_lr

    @property
    def stateful(self) -> bool:  # type: ignore[override]
        return self._wrapped.stateful

    def with_peak(self, lr0: float) -> Schedule:
        new = copy.copy(self)
        setattr(new, self._wrapped_attr, self._wrapped.with_peak(lr0))
        new.label = _relabel(self.label, float(lr0))
        return new

    def _has_bias_warmup(self) -> bool:
        return self._wrapped._has_bias_warmup()

    def _value(self, t: float) -> float:  # pragma: no cover - wrappers override _eval
        return self._eval(t, False)

    def state_dict(self) -> dict[str, Any]:
        return self._wrapped.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._wrapped.load_state_dict(state)


class Composed(_Wrapper):
    """``warmup ∘ main ∘ cooldown`` in sequence, phases as data.

    The total length is ``warmup.steps`` (when ``warmup.prefix``) ``+ main.total_steps + cooldown.steps``.
    ``momentum`` is a constant momentum for the steps where neither the main schedule nor the warmup sets one
    (Ultralytics' ``momentum``; the warmup ramps ``warmup_momentum`` up to it). A phase of the main schedule named
    ``warmup`` (one-cycle's rise) is named ``rise`` behind a warmup, so only the warmup in front is ``warmup``.

    >>> from lrkit.schedules import Constant
    >>> s = Composed(Constant(lr0=1.0, total_steps=80), warmup=Warmup(10), cooldown=Cooldown(10))
    >>> s.total_steps, s(0), s(5), s(50), s(95)
    (100, 0.0, 0.5, 1.0, 0.5)
    """

    name = "composed"
    _wrapped_attr = "main"

    def __init__(
        self,
        main: Schedule,
        *,
        warmup: Warmup | None = None,
        cooldown: Cooldown | None = None,
        momentum: float | None = None,
    ) -> None:
        if not isinstance(main, Schedule):
            raise TypeError(f"main={main!r} must be a Schedule")
        for key, value, kind in (("warmup", warmup, Warmup), ("cooldown", cooldown, Cooldown)):
            if value is not None and not isinstance(value, kind):  # Composed(s, warmup=100): a bare step count
                n = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 100
                raise TypeError(f"{key}={value!r} must be a {kind.__name__} or None, e.g. "
                                f"{key}={kind.__name__}({n}) for {n} steps")
        self.main = main
        self.warmup = warmup if warmup is not None and warmup.steps > 0 else None
        self.cooldown = cooldown
        self.const_momentum = None
        if momentum is not None:
            m = check_positive("momentum", momentum, allow_zero=True)
            if m >= 1:
                raise ValueError(f"momentum={momentum!r} must be in [0, 1)")
            if main.couples_momentum:
                raise ValueError(
                    f"momentum={momentum!r}: {main.name!r} already cycles momentum (base_momentum/max_momentum); "
                    "drop momentum=, or set cycle_momentum=false"
                )
            self.const_momentum = m
        w = self.warmup
        if w is not None and w.start_momentum is not None and not (main.couples_momentum or momentum is not None):
            raise ValueError(
                f"warmup_momentum={w.start_momentum!r} needs the momentum it warms up to: pass momentum=... "
                "(Ultralytics' default is 0.937)"
            )
        self._w = 0 if w is None else w.steps
        self._prefix = True if w is None else w.prefix
        if main.total_steps is None:
            if cooldown is not None:
                raise ValueError("a cooldown needs the main schedule's length: give total_steps (or epochs)")
            total = None
        else:
            total = (self._w if self._prefix else 0) + main.total_steps + (0 if cooldown is None else cooldown.steps)
            if w is not None and not w.prefix and w.steps > main.total_steps:
                spe = main.steps_per_epoch
                in_epochs = "" if not spe else f", or warmup_epochs <= {main.total_steps / spe:g}"
                raise ValueError(
                    f"warmup of {w.steps} steps is longer than the schedule it blends into ({main.total_steps} "
                    f"steps): give warmup_steps <= {main.total_steps}{in_epochs}, or a longer run"
                )
        self._cool_start = None if cooldown is None else total - cooldown.steps  # type: ignore[operator]
        if w is not None and w.prefix and w.steps and not main.stateful:
            # a warmup in front ramps to the main schedule's start (a blended one to a value still moving: not
            # checked); from above it, it would lower the LR — onecycle starts at max_lr / div_factor
            top = main._safe_eval(0.0)
            if top is not None and w.start_factor > top * (1 + 1e-12):  # type: ignore[operator]
                if w.type == "exponential" and top <= 0:  # no start > 0 is at or below 0: none would do
                    fix = ("an exponential warmup is geometric and starts above 0, so it cannot rise to a start "
                           "of 0: use warmup_type=linear (or cosine, 1-sqrt), or no warmup")
                elif w.type == "exponential":
                    fix = f"use warmup_start_factor in (0, {top:.6g}] (an exponential warmup starts above 0)"
                else:
                    fix = f"use warmup_start_factor <= {top:.6g} (0 warms up from zero)"
                raise ValueError(
                    f"warmup_start_factor={w.start_factor!r} is above the multiplier {top:.6g} the {main.name!r} "
                    f"schedule starts at, so the warmup in front of it would lower the LR: {fix}"
                )
        if cooldown is not None and not main.stateful:
            try:
                end: float | None = main._end_value()
            except ValueError:  # an absolute parameter and no peak LR yet
                end = None
            if end is not None and cooldown.min_ratio > end * (1 + 1e-12):
                raise ValueError(
                    f"cooldown_min_ratio={cooldown.min_ratio!r} is above the multiplier {end:.6g} the {main.name!r} "
                    f"schedule ends at, so the cooldown would raise the LR: use cooldown_min_ratio <= {end:.6g} "
                    "(0 cools down to zero)"
                )
            if end is not None and end < _NEARLY_ZERO:  # nothing left to cool down from (onecycle ends at 4e-6)
                at = "LR 0" if end <= 0 else f"{end:.2g} of its peak LR, nearly 0"
                warnings.warn(
                    f"the {main.name!r} schedule already ends at {at}, so its cooldown of {cooldown.steps} steps "
                    f"trains at {'LR 0' if end <= 0 else 'almost nothing'}: drop the cooldown (the main schedule "
                    "decays already), or end the main schedule higher (e.g. lrf=0.01) or use a flat one "
                    "('constant', 'wsd') for the cooldown to decay",
                    UserWarning, stacklevel=2)
        self._adopt(main, total, main.steps_per_epoch)
        self.couples_momentum = main.couples_momentum or self.const_momentum is not None or (
            w is not None and w.start_momentum is not None
        )

    def _has_bias_warmup(self) -> bool:
        return self.warmup is not None and self.warmup.bias_lr is not None

    def _main_t(self, t: float) -> float:
        if not self._prefix:
            return t
        # a stateful main (plateau) sees the warmup as negative time, so a reduction observed mid-warmup applies
        # from that step on, as it did live, not back to step 0; a closed form is held at its start
        return t - self._w if self.main.stateful else max(0.0, t - self._w)

    def _eval(self, t: float, bias: bool) -> float:
        cd = self.cooldown
        if cd is not None and t >= self._cool_start:  # type: ignore[operator]
            p = min(1.0, (t - self._cool_start) / cd.steps)  # type: ignore[operator]
            v0 = self.main._end_value()
            return cd.min_ratio + (v0 - cd.min_ratio) * _ramp_down(cd.type, p)
        target = self.main._eval(self._main_t(t), False)
        w = self.warmup
        if w is not None and t < w.steps:
            p = t / w.steps
            if bias and w.bias_lr is not None:
                start = self._rel(w.bias_lr, "warmup_bias_lr")
            else:
                start = w.start_factor  # type: ignore[assignment]
            return w.blend(start, target, p)  # type: ignore[arg-type]
        return target

    def _base_momentum(self, local: float) -> float | None:
        m = self.main._eval_momentum(local)
        return self.const_momentum if m is None else m

    def _eval_momentum(self, t: float) -> float | None:
        cd = self.cooldown
        if cd is not None and t >= self._cool_start:  # type: ignore[operator]
            return self._base_momentum(float(self.main.total_steps))  # type: ignore[arg-type]
        target = self._base_momentum(self._main_t(t))
        w = self.warmup
        if w is not None and w.start_momentum is not None and t < w.steps and target is not None:
            return w.start_momentum + (target - w.start_momentum) * (t / w.steps)
        return target

    def _phase_spans(self) -> Sequence[Span]:
        head: list[Span] = []
        tail: list[Span] = []
        w = self.warmup
        shift = float(self._w) if self._prefix else 0.0
        # a blended warmup hides the main spans under it; so does a prefix warmup over a stateful main, whose
        # reductions observed mid-warmup lie at negative main times
        blend = w is not None and (not self._prefix or self.main.stateful)
        if w is not None:
            head.append(("warmup", 0.0, float(w.steps), f"warmup-{w.type}"))
        if self.cooldown is not None:
            cd = self.cooldown
            tail.append((cd.name, float(self._cool_start), float(self.total_steps), f"{cd.name}-{cd.type}"))  # type: ignore[arg-type]

        def moved(span: Span) -> Span:
            name, start, end, kind = span
            if w is not None and name == "warmup":
                # the family's own rise (one-cycle's pct_start, fastai's "warm-up") behind this warmup: one phase
                # per name in the table and the picture, the outer warmup keeping "warmup" as in every family
                name = RISE
            s, e = start + shift, None if end is None else end + shift
            if blend:
                s = max(s, float(w.steps))  # type: ignore[union-attr]
            return name, s, e, kind

        main = self.main._phase_spans()
        if not isinstance(main, SpanSeq):
            kept = (sp for sp in map(moved, main) if not (blend and sp[2] is not None and sp[2] <= w.steps))  # type: ignore[union-attr]
            return [*head, *kept, *tail]
        # one phase per cycle: the same spans, lazily. Spans are in order, so the ones a blended warmup hides (those
        # ending by its end) are a prefix
        lo = main.first_ending_after(float(w.steps)) if blend else 0  # type: ignore[union-attr]
        m, h = len(main) - lo, len(head)

        def item(j: int) -> Span:
            if j < h:
                return head[j]
            if j - h < m:
                return moved(main[lo + j - h])
            return tail[j - h - m]

        # a whole-step shift keeps whole steps whole and lengths as they were; the blended warmup clips the first
        blocks = [(max(b_lo, lo + int(blend)) - lo + h, b_hi - lo + h, integral, min_len)
                  for b_lo, b_hi, integral, min_len in main.blocks]
        return SpanSeq(h + m + len(tail), item, blocks=blocks)

    def _observe(self, metric: float, t: float) -> bool:
        return self.main._observe(metric, self._main_t(t))


# --------------------------------------------------------------------------------------------------------------
# Re-planning: stretch the rest of a run
# --------------------------------------------------------------------------------------------------------------
class Replanned(_Wrapper):
    """A schedule whose remainder after ``at_step`` is stretched to a new total length (see ``Schedule.replan``).

    >>> from lrkit.schedules import from_spec
    >>> s = from_spec("linear lr0=1.0 lrf=0.0", total_steps=100)
    >>> r = s.replan(at_step=50, total_steps=150)
    >>> r(50), r(100), r(150)
    (0.5, 0.25, 0.0)
    """

    name = "replanned"
    _wrapped_attr = "inner"

    def __init__(
        self,
        inner: Schedule,
        *,
        at_step: int,
        total_steps: int | None = None,
        epochs: float | None = None,
        steps_per_epoch: float | None = None,
    ) -> None:
        if inner.total_steps is None:
            raise ValueError(
                f"{inner.name!r} has no fixed length, so there is nothing to re-plan; build a new schedule instead"
            )
        c = _check_count("at_step", at_step, allow_zero=True)
        spe = inner.steps_per_epoch if steps_per_epoch is None else steps_per_epoch
        if total_steps is None and epochs is None:
            raise ValueError("replan needs the new length: total_steps=... or epochs=... (with steps_per_epoch)")
        new_total, spe = resolve_timeline(epochs=epochs, steps_per_epoch=spe, total_steps=total_steps)
        assert new_total is not None
        if c >= inner.total_steps:
            raise ValueError(
                f"at_step={c} is at or past the end of the run ({inner.total_steps} steps): nothing is left to "
                "stretch; build a new schedule for the extra steps"
            )
        if new_total <= c:
            raise ValueError(f"new total_steps={new_total} must be greater than at_step={c}")
        self.inner = inner
        self.at_step = c
        self.old_total = inner.total_steps
        self._adopt(inner, new_total, spe)
        self.couples_momentum = inner.couples_momentum
        self._ratio = (self.old_total - c) / (new_total - c)

    def _warp(self, t: float) -> float:
        c = self.at_step
        if t <= c:
            return t
        if t >= self.total_steps:  # type: ignore[operator]
            return float(self.old_total) + (t - self.total_steps)  # type: ignore[operator]
        return c + (t - c) * self._ratio

    def _unwarp(self, t: float) -> float:
        c = self.at_step
        if t <= c:
            return t
        return c + (t - c) / self._ratio

    def _eval(self, t: float, bias: bool) -> float:
        return self.inner._eval(self._warp(t), bias)

    def _end_value(self) -> float:
        return self.inner._end_value()  # the new end maps to the old one

    def _eval_momentum(self, t: float) -> float | None:
        return self.inner._eval_momentum(self._warp(t))

    def _phase_spans(self) -> Sequence[Span]:
        def warped(span: Span) -> Span:
            name, s, e, kind = span
            return name, self._unwarp(s), None if e is None else self._unwarp(e), kind

        inner = self.inner._phase_spans()
        if not isinstance(inner, SpanSeq):
            return [warped(sp) for sp in inner]
        # spans ending by at_step stay as they are; the one across it is checked; after it every span is 1 / ratio
        # times as long, and whole steps stay whole only when nothing moves
        k = inner.first_ending_after(float(self.at_step))
        r = self._ratio
        blocks: list[Block] = []
        for lo, hi, integral, min_len in inner.blocks:
            blocks.append((lo, min(hi, k), integral, min_len))
            blocks.append((max(lo, k + 1), hi, integral and r == 1.0,
                           (max(min_len, 1.0) if integral else min_len) / r))
        return SpanSeq(len(inner), lambda j: warped(inner[j]), blocks=blocks)

    def _observe(self, metric: float, t: float) -> bool:
        # the warped time itself, not a whole step: stretched, step t maps between two inner steps, and a
        # reduction truncated to the one below would apply from step t - 1 when the curve is read back
        return self.inner._observe(metric, self._warp(t))


ScheduleFactory = Callable[..., Schedule]
