"""Training-health checks: small classes with one pure method over a :class:`~lrkit.monitor.record.RollingRecord`.

A check answers one question about the recent past ("did the loss just spike?") and returns a :class:`Finding`
(the numbers it looked at and a sentence a person can read) or ``None``. It never touches the model: what to *do*
about a finding is the monitor's job (:mod:`lrkit.monitor.actions`). Because a check is a pure function of the
record, it can be tested on a synthetic stream with a known answer:

>>> rec = RollingRecord.from_stream([2.0, 1.9, 1.8, 1.85, 1.7, 1.75, 1.6, 9.0])
>>> LossSpike().check(rec).values["loss"]
9.0
>>> LossSpike().check(RollingRecord.from_stream([2.0, 1.9, 1.8, 1.85, 1.7, 1.75, 1.6, 1.62])) is None
True

Writing a new check: subclass :class:`Check`, set ``name`` and ``category``, implement ``check(record)``.
:class:`lrkit.Monitor` calls it in ``after_backward`` (``phase = "backward"``: this step's loss and gradient norm are
known, the optimizer has not stepped yet) or in ``after_step`` (``phase = "step"``), and stays quiet for ``cooldown``
steps after it fired. A ``"step"`` check runs on the steps that are multiples of ``every``; a ``"backward"`` check
with ``every == 1`` on every step (through its :meth:`Check.screen` bound on the monitor's fast path); one with
``every > 1`` (a windowed check) on the first *full* step (see ``Monitor(grad_every=...)``) at least ``every`` steps
after its previous evaluation — with the default ``grad_every=64``, every 64 steps on a healthy run.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from lrkit._utils import as_scalar
from lrkit.monitor.record import RollingRecord, robust_stats

__all__ = [
    "CATEGORIES",
    "Check",
    "ExplodingGradients",
    "Finding",
    "GradientBlowup",
    "LRTooLow",
    "LossAboveStart",
    "LossRising",
    "LossSpike",
    "NonFinite",
    "Oscillation",
    "ValidationRising",
    "default_checks",
]

Category = Literal["divergence", "explode", "too_low", "overfit"]
Phase = Literal["backward", "step", "validation"]

#: Check categories and the Monitor keyword that chooses their action.
CATEGORIES: dict[str, str] = {"divergence": "on_divergence", "explode": "on_explode", "too_low": "on_too_low",
                              "overfit": "on_overfit"}


@dataclass(frozen=True)
class Finding:
    """What a check saw: the numbers it compared (``values``) and a reason a person can read.

    ``reason`` is a ``str``; ``values`` maps ``str`` names to real numbers (``int``/``float``; the monitor converts
    numpy scalars and one-element tensors to plain numbers and refuses anything else, ``bool``
    included, with a ``TypeError`` naming the check, when the finding becomes an event: events are JSON-ready).

    >>> Finding("loss is 9.1, above 3.0", {"loss": 9.1, "threshold": 3.0}).values["threshold"]
    3.0
    """

    reason: str
    values: dict[str, float] = field(default_factory=dict)


def _plain(obj: Any, name: str) -> Any:
    """The field ``name`` of a (frozen) check, a numpy scalar, 0-d array or 0-d tensor in it replaced by the plain
    Python number it holds (``np.int64(50)`` -> ``50``), so thresholds compare, print and serialise as numbers."""
    value = getattr(obj, name)
    plain = as_scalar(value)  # anything else: the caller's check names it
    if plain is not value:
        object.__setattr__(obj, name, plain)
    return plain


def _plain_counts(obj: Any) -> None:
    """``every`` and ``cooldown`` as plain ints when given as numpy/tensor integers (the Monitor validates them)."""
    for name in ("every", "cooldown"):
        _plain(obj, name)


def _int_at_least(obj: Any, name: str, low: int) -> None:
    value = _plain(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{type(obj).__name__}: {name}={value!r} must be an integer >= {low}")


def _positive(obj: Any, name: str, *, allow_zero: bool = False, below_one: bool = False) -> None:
    value = _plain(obj, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and -(2**1023) < value < 2**1023 and math.isfinite(value)  # math.isfinite(10**400) is an OverflowError
    ok = ok and (value >= 0 if allow_zero else value > 0) and (value < 1 if below_one else True)
    if not ok:
        bound = (">= 0" if allow_zero else "> 0") + (" and < 1" if below_one else "")
        huge = isinstance(value, int) and not -(2**1023) < value < 2**1023
        shown = f"<an integer of {int(math.log10(abs(value))) + 1} digits>" if huge else repr(value)
        raise ValueError(f"{type(obj).__name__}: {name}={shown} must be a finite number {bound}")


_UPDATE_RATIO: frozenset[str] = frozenset({"update_ratio"})


def _g(v: float) -> str:
    return f"{v:.3g}"


class Check(abc.ABC):
    """Base class of every health check (one method: :meth:`check`).

    Class attributes a subclass sets:
        name: short identifier used in events, ``actions={name: ...}`` overrides and plots.
        category: ``"divergence"``, ``"explode"``, ``"too_low"`` or ``"overfit"``: which Monitor keyword
            (``on_divergence``, ``on_explode``, ``on_too_low``, ``on_overfit``) chooses the action when it fires.
        phase: ``"backward"`` (called from ``Monitor.after_backward``, before ``optimizer.step()``), ``"step"``
            (called from ``Monitor.after_step``) or ``"validation"`` (called from ``Monitor.after_validation``,
            once per evaluation; ``every`` and ``cooldown`` then count evaluations).
        needs: extra signals the monitor must measure for it (``{"update_ratio"}``; costs a parameter copy every
            ``Monitor(sample_every=...)`` steps, so it is only measured when a check needs it).
        uses_grad: ``True`` when the check only looks at the gradient norm; it is then skipped on the steps where
            the monitor does not measure it (see ``Monitor(grad_every=...)``).

    Instance attributes (dataclass fields on the concrete checks): ``every`` (call at most every N steps: a
    ``"backward"`` check with ``every > 1`` runs on the first full step that far past its previous evaluation, see
    the module docstring) and ``cooldown`` (steps to stay quiet after firing).

    A check of your own, passed with the built-in ones (``Monitor(..., checks=[*default_checks(), LossAbove()])``):

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class LossAbove(Check):
    ...     name: ClassVar[str] = "loss_above"
    ...     limit: float = 5.0
    ...     def check(self, record: RollingRecord) -> Finding | None:
    ...         loss = record.window("loss", 1)
    ...         if loss and loss[-1] > self.limit:
    ...             return Finding(f"loss {loss[-1]:g} is above {self.limit:g}", {"loss": loss[-1]})
    ...         return None
    >>> LossAbove().check(RollingRecord.from_stream([1.0, 7.0])).reason
    'loss 7 is above 5'
    >>> LossAbove().check(RollingRecord.from_stream([1.0, 2.0])) is None
    True
    """

    name: ClassVar[str] = "check"
    category: ClassVar[Category] = "divergence"
    phase: ClassVar[Phase] = "backward"
    needs: ClassVar[frozenset[str]] = frozenset()
    uses_grad: ClassVar[bool] = False
    every: int = 1
    cooldown: int = 0

    @abc.abstractmethod
    def check(self, record: RollingRecord) -> Finding | None:
        """Return a :class:`Finding` when the latest state of ``record`` is unhealthy, else ``None``. Must be pure."""

    def screen(self, record: RollingRecord) -> float | None:
        """An optional fast bound: while the loss stays at or below it (and is finite), :meth:`check` cannot fire.

        The monitor uses it on its fast path: a step whose loss passes every every-step check's screen is only
        appended to the record, and the full checks run at the next full step. ``None`` (the default) means "no
        bound: evaluate me every step". Gradient checks (``uses_grad``) and checks with ``every > 1`` need none.
        """
        return None

    def idle(self, record: RollingRecord) -> bool:
        """An optional fast test: ``True`` when :meth:`check` cannot fire now, decided from signals other than the
        loss (update ratios, the LR), so that it holds whatever the newest losses are.

        The monitor asks its ``"step"`` checks (``phase = "step"``) before it brings the record's loss window up to
        date — the fast path buffers losses and pushes them in batches — and skips that work when every due check
        is idle. ``False`` (the default) means "evaluate me".
        """
        return False

    @property
    def history(self) -> int:
        """How many values of each signal the record must keep for this check."""
        return 2

    def config(self) -> dict[str, Any]:
        """The check's settings as a plain dict (``name`` plus its dataclass fields)."""
        out: dict[str, Any] = {"name": self.name}
        for f in fields(self):  # type: ignore[arg-type]
            out[f.name] = getattr(self, f.name)
        return out


@dataclass(frozen=True)
class NonFinite(Check):
    """The loss or the global gradient norm is ``nan``/``inf``. Fires on the first bad step; never a false alarm.

    A non-finite gradient norm means some gradient holds an ``inf``/``nan`` (``||g||_2`` propagates both), so one
    number covers every parameter. Set ``grads=False`` to watch only the loss (e.g. when a ``GradScaler`` already
    skips steps with overflowing gradients).

    >>> NonFinite().check(RollingRecord.from_stream([1.0, float("nan")])).reason
    'loss is nan'
    """

    name: ClassVar[str] = "non_finite"
    category: ClassVar[Category] = "divergence"
    grads: bool = True
    every: int = 1
    cooldown: int = 0

    def __post_init__(self) -> None:
        _plain_counts(self)

    def screen(self, record: RollingRecord) -> float | None:
        return math.inf  # any finite loss passes; gradients are checked on full steps

    def check(self, record: RollingRecord) -> Finding | None:
        loss, gnorm = record.last_loss, record.last_grad_norm
        bad_loss = not math.isfinite(loss)
        bad_grad = self.grads and record.grad_measured and not math.isfinite(gnorm)
        if not (bad_loss or bad_grad):
            return None
        parts = []
        if bad_loss:
            parts.append(f"loss is {loss}")
        if bad_grad:
            parts.append(f"gradient norm is {gnorm} (a gradient holds inf/nan)")
        return Finding(" and ".join(parts), {"loss": loss, "grad_norm": gnorm})


@dataclass(frozen=True)
class LossSpike(Check):
    """This step's loss is far above its running median: the last update overshot.

    With ``m``, ``s`` the median and robust standard deviation (``1.4826 * MAD``) of the previous ``window`` finite
    losses and ``L0`` the loss at initialisation, the check fires when

        loss > m + max(sigmas * s,  (ratio - 1) * |m|,  floor * |L0|)

    i.e. the loss must be an outlier (``sigmas``), at least ``ratio`` times the median, *and* up by more than
    ``floor`` times the starting loss, so the heavy-tailed batch noise of a healthy run (median 0.02, a hard batch
    at 0.3) is no alarm while a blow-up is caught on its first step — from the second step of training on
    (``min_history=1``: the reference is then the initial loss itself, and the loss must exceed ``2.5 * L0``).

    >>> calm = [1.0, 0.95, 0.9, 0.92, 0.88, 0.86, 0.87, 0.85]
    >>> LossSpike().check(RollingRecord.from_stream(calm + [2.0])) is None
    True
    >>> round(LossSpike().check(RollingRecord.from_stream(calm + [3.0])).values["threshold"], 3)  # 0.89 + 1.5 * 1
    2.39
    """

    name: ClassVar[str] = "loss_spike"
    category: ClassVar[Category] = "divergence"
    window: int = 50
    min_history: int = 1
    ratio: float = 2.0
    sigmas: float = 6.0
    floor: float = 1.5
    every: int = 1
    cooldown: int = 0

    def __post_init__(self) -> None:
        _plain_counts(self)
        _int_at_least(self, "window", 2)
        _int_at_least(self, "min_history", 1)
        _positive(self, "ratio")
        _positive(self, "sigmas", allow_zero=True)
        _positive(self, "floor", allow_zero=True)
        if self.ratio <= 1:
            raise ValueError(f"LossSpike: ratio={self.ratio!r} must be > 1 (the loss must at least exceed its median)")

    @property
    def history(self) -> int:
        return self.window + 1

    def _threshold(self, record: RollingRecord) -> tuple[float, float]:
        ref = record.reference("loss", self.window)
        if ref.n < self.min_history:
            return math.inf, ref.median
        m = ref.median
        return m + max(self.sigmas * ref.sigma, (self.ratio - 1.0) * abs(m), self.floor * abs(record.start_loss)), m

    def screen(self, record: RollingRecord) -> float | None:
        return self._threshold(record)[0]

    def check(self, record: RollingRecord) -> Finding | None:
        loss = record.last_loss
        if not math.isfinite(loss):
            return None  # NonFinite's business
        threshold, m = self._threshold(record)
        if loss <= threshold:
            return None
        times = f"{loss / m:.3g}x" if m > 0 else "far above"
        return Finding(
            f"loss {_g(loss)} is {times} its running median {_g(m)} (threshold {_g(threshold)}): the last update "
            "overshot",
            {"loss": loss, "median": m, "threshold": threshold},
        )


@dataclass(frozen=True)
class Oscillation(Check):
    """The loss's spread grows while its mean does not fall: the LR bounces across the valley instead of descending.

    Over the last ``2 * window`` finite losses, with ``A`` the older half and ``B`` the newer, it fires when

        std(B) > growth * std(A)   and   std(B) > floor * |L0|   and   mean(B) >= (1 - min_drop) * mean(A)

    (``L0`` is the loss at initialisation; the ``floor`` keeps the tiny wiggles of a converged run quiet; a mean
    that fell by less than ``min_drop`` counts as not falling).
    Evaluated on the first full step at least ``every`` steps after its previous evaluation (see the module
    docstring: every 64 steps on a healthy run under ``Monitor``'s default ``grad_every=64``).

    >>> calm = [1.0 - 0.002 * i + (0.01 if i % 2 else -0.01) for i in range(40)]
    >>> wild = [1.0 + (0.3 if i % 2 else -0.3) for i in range(40)]
    >>> Oscillation(window=40).check(RollingRecord.from_stream(calm + wild)).values["std_ratio"] > 2
    True
    >>> Oscillation(window=40).check(RollingRecord.from_stream(calm + calm)) is None
    True
    """

    name: ClassVar[str] = "oscillation"
    category: ClassVar[Category] = "divergence"
    window: int = 50
    growth: float = 2.0
    floor: float = 0.05
    min_drop: float = 0.05
    every: int = 25
    cooldown: int = 50

    def __post_init__(self) -> None:
        _plain_counts(self)
        _int_at_least(self, "window", 3)
        _positive(self, "growth")
        _positive(self, "floor", allow_zero=True)
        _positive(self, "min_drop", allow_zero=True, below_one=True)
        _int_at_least(self, "every", 1)
        _int_at_least(self, "cooldown", 0)

    @property
    def history(self) -> int:
        return 2 * self.window

    def check(self, record: RollingRecord) -> Finding | None:
        if record.count("loss") < 2 * self.window:
            return None
        values = record.window("loss", 2 * self.window)
        a, b = values[: self.window], values[self.window :]
        mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
        sd_a = math.sqrt(max(0.0, sum([v * v for v in a]) / len(a) - mean_a * mean_a))
        sd_b = math.sqrt(max(0.0, sum([v * v for v in b]) / len(b) - mean_b * mean_b))
        if sd_b <= self.growth * sd_a or sd_b <= self.floor * abs(record.start_loss):
            return None
        if mean_b < (1.0 - self.min_drop) * mean_a:
            return None
        return Finding(
            f"loss spread grew {sd_b / max(sd_a, 1e-300):.3g}x (std {_g(sd_a)} -> {_g(sd_b)}) over the last "
            f"{2 * self.window} steps while its mean did not fall ({_g(mean_a)} -> {_g(mean_b)}): the LR is "
            "overshooting",
            {"std_before": sd_a, "std_after": sd_b, "std_ratio": sd_b / max(sd_a, 1e-300), "mean_before": mean_a,
             "mean_after": mean_b},
        )


@dataclass(frozen=True)
class LossRising(Check):
    """The loss climbed back toward where it started: training lost a large part of the progress it had made.

    The typical end of a too-high LR that does not produce a NaN: ReLUs die, the network collapses to predicting
    the class prior, and the loss sits at its initial value. With ``T`` the median of the last ``trend_window``
    losses (``RollingRecord.trend``), ``B`` the lowest value ``T`` ever had (``trend_low``) and ``L0`` the loss at
    initialisation, it fires when

        B < (1 - min_progress) * L0     and     T - B > rise * (L0 - B)

    i.e. after the run made real progress, the median climbed back by more than ``rise`` of it.
    Evaluated on the first full step at least ``every`` steps after its previous evaluation (see the module
    docstring: every 64 steps on a healthy run under ``Monitor``'s default ``grad_every=64``).

    >>> down = [2.0 - 0.015 * i for i in range(100)]            # 2.0 -> 0.5
    >>> back = [0.5 + 0.03 * i for i in range(50)]              # 0.5 -> 2.0: the net collapsed
    >>> f = LossRising().check(RollingRecord.from_stream(down + back, refresh=10))
    >>> round(f.values["loss_median"], 3), round(f.values["best_median"], 4), round(f.values["lost"], 2)
    (1.685, 0.5975, 0.78)
    >>> LossRising().check(RollingRecord.from_stream(down + [0.5] * 50, refresh=10)) is None
    True
    """

    name: ClassVar[str] = "loss_rising"
    category: ClassVar[Category] = "divergence"
    rise: float = 0.5
    min_progress: float = 0.2
    every: int = 25
    cooldown: int = 25

    def __post_init__(self) -> None:
        _plain_counts(self)
        _positive(self, "rise")
        _positive(self, "min_progress", below_one=True)
        _int_at_least(self, "every", 1)
        _int_at_least(self, "cooldown", 0)

    def check(self, record: RollingRecord) -> Finding | None:
        t, low, start = record.trend, record.trend_low, record.start_loss
        if not (math.isfinite(t) and math.isfinite(low) and math.isfinite(start)):
            return None
        progress = start - low
        if not (low < (1.0 - self.min_progress) * start and progress > 0):
            return None
        lost = (t - low) / progress
        if lost <= self.rise:
            return None
        return Finding(
            f"the running median loss climbed back to {_g(t)} from its best {_g(low)} (start {_g(start)}): "
            f"{lost:.0%} of the progress is lost — the LR is too high",
            {"loss_median": t, "best_median": low, "start_loss": start, "lost": lost},
        )


@dataclass(frozen=True)
class LossAboveStart(Check):
    """The loss never got clearly below where it started: the run collapsed to chance, or jumped above its starting
    loss and stays there, without a spike, a gradient blow-up or a rise to see. **Opt-in**: not among
    :func:`default_checks`; ``Monitor(collapse_check=True)`` adds it to any checks, ``collapse_check=None`` to the
    default ones only. (The default for one fresh task set, then off again: a slow starter at the right LR looks the
    same, README.)

    The end of a too-high LR that :class:`LossRising` cannot see, because the run never made progress to lose: the
    network collapses to predicting the class prior within its warmup (cross-entropy at ``ln(classes)``, which is
    also roughly the untrained model's loss) and sits there. With ``m`` the median of the last ``window`` finite
    losses and ``L0`` the loss at initialisation, it fires when

        step >= min_steps     and     m >= L0 - (1 - level) * |L0|        (= level * L0 for a positive L0)

    i.e. once ``min_steps`` steps have passed, the recent losses have not, as a median, come down by even
    ``1 - level`` (5%) of ``|L0|``. Its finding's ``ratio = 1 + (m - L0) / |L0|`` (``= m / L0`` for a positive
    ``L0``) reads the same whatever the sign of ``L0``: 1 where the run started, above 1 higher, and the check fires
    when ``ratio >= level``. Healthy runs on the benchmark suite are below ``0.7 * L0`` by step 50-60
    (the slowest, a CNN, sits at ``0.93-0.98 * L0`` at the end of its 17-step warmup), collapsed ones at
    ``0.97-1.04 * L0`` for the whole run. A run whose loss barely moves at a *low* LR looks the same by its loss, but
    its weights barely move: while the latest sampled update-to-weight ratios (median of up to 2) are below
    ``min_update_ratio`` (``1e-4``, :class:`LRTooLow`'s line; on the suite collapsed runs read 6e-3 to 0.4, runs at
    1/100-1/1000 of the best LR 1e-10 to 3e-5) the check stays quiet, and ``lr_too_low`` reports the LR instead of a
    rollback lowering it further. The guard declares ``needs={"update_ratio"}`` (:attr:`needs`), so the monitor
    samples the ratios whatever the other checks; before the first sample it cannot judge and the loss alone decides.

    When it runs: it needs the loss window only, so :class:`~lrkit.Monitor` evaluates it on a *full* step (see
    ``Monitor(grad_every=...)``), the first full step at least ``every`` steps after its previous evaluation. Every
    step is full with ``grad_every=1`` (then it runs every ``every`` steps); with the default ``grad_every=64`` a
    healthy run has full steps only every 64 steps (plus every step of the 50 after any event, and any step whose
    loss is above the starting loss or the spike bound), so the first evaluation at or past ``min_steps=75`` is
    typically at step 128.

    After a rollback or back-off it judges only losses trained since (``RollingRecord.losses_since_mark``): the
    record holds the restored snapshot's losses again, made at the old LR, so it waits until ``window`` new finite
    losses are in, whatever its ``cooldown``.

    >>> flat = [2.30 + (0.02 if i % 2 else -0.02) for i in range(100)]      # stuck at chance
    >>> f = LossAboveStart().check(RollingRecord.from_stream([2.3] + flat))
    >>> round(f.values["ratio"], 2)
    1.0
    >>> down = [2.3 * (1 - 0.008 * i) for i in range(100)]                 # learning: 2.3 -> 0.48
    >>> LossAboveStart().check(RollingRecord.from_stream(down)) is None
    True
    >>> up = [-1.0] + [-0.5] * 100                                          # a negative loss stuck above its start
    >>> round(LossAboveStart().check(RollingRecord.from_stream(up)).values["ratio"], 2)
    1.5
    >>> slow = RollingRecord.from_stream([2.3] + flat, update_ratios=[1e-6] * 2, lr=1e-5)   # weights barely move
    >>> LossAboveStart().check(slow) is None, LossAboveStart(min_update_ratio=None).check(slow) is None
    (True, False)
    """

    name: ClassVar[str] = "loss_above_start"
    category: ClassVar[Category] = "divergence"
    window: int = 50
    level: float = 0.95
    min_steps: int = 75
    every: int = 25
    cooldown: int = 50
    #: Quiet while the weights barely move: the median of the last (up to 2) sampled update-to-weight ratios below this
    #: (:class:`LRTooLow`'s ``max_ratio``) is an LR too low, which ``lr_too_low`` reports — a rollback and a back-off
    #: would lower it further. ``None``: no such guard.
    min_update_ratio: float | None = 1e-4

    def __post_init__(self) -> None:
        _plain_counts(self)
        _int_at_least(self, "window", 2)
        _positive(self, "level")
        _int_at_least(self, "min_steps", 0)
        _int_at_least(self, "every", 1)
        _int_at_least(self, "cooldown", 0)
        if self.min_update_ratio is not None:
            _positive(self, "min_update_ratio", allow_zero=True)

    @property
    def history(self) -> int:
        return self.window

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]  # (a ClassVar on other checks)
        """``{"update_ratio"}`` while the ``min_update_ratio`` guard is on: :class:`~lrkit.Monitor` then samples the
        update-to-weight ratio whatever the other checks (with ``on_too_low=None`` or a ``checks=`` list without
        :class:`LRTooLow` too), so the guard always has samples to judge a low LR by; ``frozenset()`` without it.
        It only asks for the samples: the check still runs, on the loss alone, before the first one exists.

        >>> sorted(LossAboveStart().needs), sorted(LossAboveStart(min_update_ratio=None).needs)
        (['update_ratio'], [])
        """
        return _UPDATE_RATIO if self.min_update_ratio is not None else frozenset()

    def check(self, record: RollingRecord) -> Finding | None:
        start = record.start_loss
        if (record.step < self.min_steps or record.count("loss") < self.window
                or record.losses_since_mark() < self.window or not math.isfinite(start)):
            return None
        m = robust_stats(record.window("loss", self.window)).median
        scale = abs(start)
        threshold = start - (1.0 - self.level) * scale
        if m < threshold:
            return None
        if self.min_update_ratio is not None and record.count("update_ratio") \
                and robust_stats(record.window("update_ratio", 2)).median < self.min_update_ratio:
            return None  # the weights barely move: an LR too low (lr_too_low's business), not a collapse
        if scale > 0:
            ratio = 1.0 + (m - start) / scale
        else:  # L0 = 0: the threshold is 0, and m >= 0 here
            ratio = 1.0 if m == 0 else math.inf
        delta = m - start
        if delta > 0:
            where = f"{_g(delta)} above the starting loss {_g(start)}"
        elif delta == 0:
            where = f"level with the starting loss {_g(start)}"
        else:
            where = f"only {_g(-delta)} below the starting loss {_g(start)}"
        need = (f"below {_g(threshold)} = L0 - {1.0 - self.level:.3g} x |L0|" if self.level <= 1
                else f"below {_g(threshold)} = L0 + {self.level - 1.0:.3g} x |L0|")
        return Finding(
            f"after {record.step} steps the median of the last {self.window} losses is {_g(m)}, {where} "
            f"({ratio:.3g} relative to the start, 1 + (m - L0) / |L0|; learning means a median {need}): the run "
            "never learned or collapsed to chance — the LR is too high",
            {"loss_median": m, "start_loss": start, "threshold": threshold, "ratio": ratio},
        )


def _grad_over_median(
    record: RollingRecord, window: int, min_history: int, factor: float
) -> tuple[float, float] | None:
    """``(||g||, median)`` when the last finite gradient norm exceeds ``factor`` x the median of the previous
    ``window`` norms (at least ``min_history`` of them), else ``None``. Non-finite norms are NonFinite's business."""
    g = record.last_grad_norm
    if not math.isfinite(g):
        return None
    ref = record.reference("grad_norm", window)
    if ref.n < min_history or not ref.median > 0:
        return None
    return (g, ref.median) if g > factor * ref.median else None


@dataclass(frozen=True)
class ExplodingGradients(Check):
    """The global gradient norm is far above its running median: a gradient spike to clip.

    With ``m`` the median of the previous ``window`` finite gradient norms, it fires when

        ||g|| > factor * m        (once min_history norms are known)

    Its finding carries ``clip_to = clip * m``, the norm the ``"clip"`` action scales the gradients down to:
    clipping that switches on only when needed, relative to the run's own scale. (The first ``min_history`` steps
    are left to :class:`GradientBlowup`: while the optimizer leaves the initialisation, healthy runs see 20-30x jumps
    over a median of few values.)

    >>> norms = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98, 1.01, 0.99] * 2
    >>> f = ExplodingGradients().check(RollingRecord.from_stream([1.0] * 21, norms + [12.0]))
    >>> round(f.values["clip_to"], 2)
    2.0
    >>> ExplodingGradients().check(RollingRecord.from_stream([1.0] * 21, norms + [8.0])) is None
    True
    """

    name: ClassVar[str] = "exploding_gradients"
    category: ClassVar[Category] = "explode"
    uses_grad: ClassVar[bool] = True
    window: int = 50
    min_history: int = 20
    factor: float = 10.0
    clip: float = 2.0
    every: int = 1
    cooldown: int = 0

    def __post_init__(self) -> None:
        _plain_counts(self)
        _int_at_least(self, "window", 2)
        _int_at_least(self, "min_history", 1)
        _positive(self, "factor")
        _positive(self, "clip")
        if self.factor <= 1:
            raise ValueError(f"ExplodingGradients: factor={self.factor!r} must be > 1")

    @property
    def history(self) -> int:
        return self.window + 1

    def check(self, record: RollingRecord) -> Finding | None:
        over = _grad_over_median(record, self.window, self.min_history, self.factor)
        if over is None:
            return None
        g, m = over
        return Finding(
            f"gradient norm {_g(g)} is {g / m:.3g}x its running median {_g(m)} (threshold {self.factor:g}x)",
            {"grad_norm": g, "median": m, "threshold": self.factor * m, "clip_to": self.clip * m},
        )


@dataclass(frozen=True)
class GradientBlowup(Check):
    """The global gradient norm jumped so far above its running median that the run is diverging, not spiking.

    With ``m`` the median of the previous ``window`` finite gradient norms (at least ``min_history`` of them),
    it fires when

        ||g|| > factor * m

    It is a *divergence* check (default action: rollback with an LR back-off) because clipping cannot stop this:
    Adam-style optimizers normalise the gradient, so a clipped step is as large as an unclipped one, and the next
    loss is often already 100x the start. Active from the second step on.

    >>> GradientBlowup().check(RollingRecord.from_stream([1.0, 1.5], [0.1, 8.0])).values["ratio"]
    80.0
    >>> GradientBlowup().check(RollingRecord.from_stream([1.0, 1.5], [0.1, 3.0])) is None
    True
    """

    name: ClassVar[str] = "gradient_blowup"
    category: ClassVar[Category] = "divergence"
    uses_grad: ClassVar[bool] = True
    window: int = 50
    min_history: int = 1
    factor: float = 50.0
    every: int = 1
    cooldown: int = 0

    def __post_init__(self) -> None:
        _plain_counts(self)
        _int_at_least(self, "window", 1)
        _int_at_least(self, "min_history", 1)
        _positive(self, "factor")
        if self.factor <= 1:
            raise ValueError(f"GradientBlowup: factor={self.factor!r} must be > 1")

    @property
    def history(self) -> int:
        return self.window + 1

    def check(self, record: RollingRecord) -> Finding | None:
        over = _grad_over_median(record, self.window, self.min_history, self.factor)
        if over is None:
            return None
        g, m = over
        return Finding(
            f"gradient norm {_g(g)} is {g / m:.3g}x its running median {_g(m)} (threshold {self.factor:g}x): the "
            "update that produced it overshot badly",
            {"grad_norm": g, "median": m, "threshold": self.factor * m, "ratio": g / m},
        )


@dataclass(frozen=True)
class LRTooLow(Check):
    """The LR is too low: the weights barely move *and* the loss is flat, early in the run.

    Over the last ``window`` steps it fires when all of these hold:

    * the median sampled update-to-weight ratio ``||w_{t+1} - w_t|| / ||w_t||`` is below ``max_ratio``
      (healthy training sits near ``1e-3``; the median of the last ``samples`` samples, taken every
      ``Monitor(sample_every=100)`` steps);
    * the loss is flat: ``(mean(first half) - mean(second half)) / |mean(first half)| < flat``;
    * the loss is still high: ``mean(second half) > stuck * |L0|`` (a converged run is flat too, but low);
    * the LR is not being annealed on purpose: current LR ``>= anneal * peak LR`` seen so far.

    Evaluated every ``every`` steps, after the optimizer step.

    >>> flat = [2.3 - 1e-4 * i for i in range(100)]
    >>> LRTooLow().check(RollingRecord.from_stream(flat, update_ratios=[1e-6] * 5, lr=1e-5)).values["ratio"]
    1e-06
    >>> LRTooLow().check(RollingRecord.from_stream(flat, update_ratios=[1e-3] * 5, lr=1e-2)) is None
    True
    """

    name: ClassVar[str] = "lr_too_low"
    category: ClassVar[Category] = "too_low"
    phase: ClassVar[Phase] = "step"
    needs: ClassVar[frozenset[str]] = frozenset({"update_ratio"})
    window: int = 100
    max_ratio: float = 1e-4
    flat: float = 0.01
    stuck: float = 0.5
    anneal: float = 0.1
    samples: int = 2
    every: int = 50
    cooldown: int = 100

    def __post_init__(self) -> None:
        _plain_counts(self)
        _int_at_least(self, "window", 4)
        _positive(self, "max_ratio")
        _positive(self, "flat", allow_zero=True)
        _positive(self, "stuck", allow_zero=True)
        _positive(self, "anneal", allow_zero=True)
        _int_at_least(self, "samples", 1)
        _int_at_least(self, "every", 1)
        _int_at_least(self, "cooldown", 0)

    @property
    def history(self) -> int:
        return self.window

    def idle(self, record: RollingRecord) -> bool:
        """Quiet without looking at the loss: too few ratio samples, an annealed LR, or weights that move enough.

        >>> LRTooLow().idle(RollingRecord.from_stream([1.0], update_ratios=[1e-3] * 2, lr=0.1))
        True
        >>> LRTooLow().idle(RollingRecord.from_stream([1.0], update_ratios=[1e-6] * 2, lr=0.1))
        False
        """
        if record.count("update_ratio") < self.samples or record.lr < self.anneal * record.peak_lr:
            return True
        return robust_stats(record.window("update_ratio", self.samples)).median >= self.max_ratio

    def check(self, record: RollingRecord) -> Finding | None:
        if record.count("loss") < self.window or record.count("update_ratio") < self.samples:
            return None
        if record.lr < self.anneal * record.peak_lr:
            return None  # a schedule is deliberately annealing: small updates are the plan
        ratio = robust_stats(record.window("update_ratio", self.samples)).median
        if ratio >= self.max_ratio:
            return None
        losses = record.window("loss", self.window)
        half = len(losses) // 2
        first, second = sum(losses[:half]) / half, sum(losses[half:]) / (len(losses) - half)
        drop = (first - second) / abs(first) if first != 0 else 0.0
        if drop >= self.flat or second <= self.stuck * abs(record.start_loss):
            return None
        return Finding(
            f"update/weight ratio {ratio:.2g} is far below the healthy ~1e-3 (threshold {self.max_ratio:g}) and the "
            f"loss fell only {drop:.2%} over the last {self.window} steps (still {_g(second)} vs "
            f"{_g(record.start_loss)} at start): the LR looks too low",
            {"ratio": ratio, "loss_drop": drop, "loss": second, "start_loss": record.start_loss, "lr": record.lr},
        )


@dataclass(frozen=True)
class ValidationRising(Check):
    """The validation loss has risen clearly above its best while the training loss kept falling: the LR is high
    enough for the model to memorise its training data instead of generalising.

    With ``best`` the lowest validation loss of the run so far, ``k`` the evaluations since it, and ``T_best``,
    ``T`` the training loss at that evaluation and now, the check fires when

        k >= patience   and   val_loss - best > tolerance * |best|   and   T_best - T >= min_train_drop * |T_best|

    (or at once when the validation loss is nan/inf). With ``min_share > 0`` (default ``0``: no such condition) the
    rise must also be a visible share of the progress the validation loss made, with ``V1`` the first finite
    validation loss the record holds (the run's first evaluation unless more evaluations than the record's capacity
    were made):

        val_loss - best > min_share * (V1 - best)

    so that the evaluation-to-evaluation jitter of a regression trained close to its noise floor (a loss that fell
    75x since the first evaluation and wanders by 25% around a best of 0.006) is no alarm, while a run whose
    validation loss gives back part of what it had gained still is. A first evaluation that was the best (``V1 <=
    best``) leaves the condition met. A single noisy evaluation above the best is no alarm
    (``patience=2``), and neither is a validation loss that wanders while training has levelled off (on small,
    noisy validation sets it moves by 10-20% between epochs at a good LR): memorisation shows as the two curves
    parting. An unknown training loss (``nan``) skips that condition. The check only sees what
    ``Monitor.after_validation(val_loss)`` gives it: without those calls it never fires. Its default action,
    ``rollback``, returns model and optimizer to the best-validation snapshot and backs the LR off by
    ``Monitor(val_backoff=...)``; the schedule's clock goes on.

    >>> rec = RollingRecord.from_stream([1.0], val_losses=[0.9, 0.7, 0.75, 0.8], val_train_losses=[1.0, 0.6, 0.4, 0.3])
    >>> ValidationRising().check(rec).values["best"]
    0.7
    >>> rec = RollingRecord.from_stream([1.0], val_losses=[0.9, 0.7, 0.75, 0.8], val_train_losses=[1.0, 0.6, 0.6, 0.58])
    >>> ValidationRising().check(rec) is None   # training has levelled off: validation noise, not memorisation
    True
    >>> vals, train = [0.29, 0.0155, 0.0058, 0.0067, 0.0072], [0.24, 0.02, 0.0068, 0.006, 0.0053]
    >>> rec = RollingRecord.from_stream([1.0], val_losses=vals, val_train_losses=train)
    >>> ValidationRising().check(rec).values["rise"] > 0.2   # 24% above its best: fires by default
    True
    >>> ValidationRising(min_share=0.02).check(rec) is None  # but 0.5% of the 0.284 gained since the first one
    True
    """

    name: ClassVar[str] = "val_rising"
    category: ClassVar[Category] = "overfit"
    phase: ClassVar[Phase] = "validation"
    tolerance: float = 0.05
    patience: int = 2
    min_train_drop: float = 0.15
    min_share: float = 0.0
    every: int = 1
    cooldown: int = 0

    def __post_init__(self) -> None:
        _plain_counts(self)
        _positive(self, "tolerance", allow_zero=True)
        _int_at_least(self, "patience", 1)
        _positive(self, "min_train_drop", allow_zero=True)
        _positive(self, "min_share", allow_zero=True)
        _int_at_least(self, "every", 1)
        _int_at_least(self, "cooldown", 0)

    def check(self, record: RollingRecord) -> Finding | None:
        best, at = record.val_best, record.val_best_at
        last = record.last_val_loss
        n = record.seen["val_loss"]  # finite evaluations so far, this one included when it is finite
        finite = math.isfinite(last)
        if at < 0 or (finite and at == n - 1):  # no best yet, or this evaluation is the new best
            return None
        since = (n - 1 if finite else n) - at
        if not finite:
            return Finding(f"validation loss is {last} (best {_g(best)})",
                           {"val_loss": last, "best": best, "since": float(since)})
        if since < self.patience or last - best <= self.tolerance * abs(best):
            return None
        share = math.nan
        if self.min_share > 0:
            first = record.window("val_loss", record.count("val_loss"))[0]  # the oldest finite evaluation held
            if first > best:  # else the first evaluation was the best: no progress to measure against
                share = (last - best) / (first - best)
                if share <= self.min_share:  # jitter near the floor, small next to what the run gained
                    return None
        t_best, t_now = record.val_best_train, record.window("val_train_loss", 1)[-1]
        drop = (t_best - t_now) / abs(t_best) if t_best != 0 else 0.0
        if drop < self.min_train_drop:  # False for nan: an unknown training loss skips the condition
            return None
        rise = (last - best) / abs(best) if best != 0 else math.inf
        return Finding(
            f"validation loss {_g(last)} is {rise:.1%} above its best {_g(best)} of {since} evaluation(s) ago "
            f"(tolerance {self.tolerance:.0%}) while the training loss fell {drop:.0%} ({_g(t_best)} -> {_g(t_now)})"
            + (f", giving back {share:.1%} of the progress since the first evaluation (min_share {self.min_share:.1%})"
               if math.isfinite(share) else "")
            + ": the LR is high enough to memorise the training data",
            {"val_loss": last, "best": best, "since": float(since), "rise": rise, "train_drop": drop,
             **({"share": share} if math.isfinite(share) else {})},
        )


def default_checks() -> list[Check]:
    """A fresh list of the default checks, in the order they are evaluated.

    >>> [c.name for c in default_checks()][-3:]
    ['exploding_gradients', 'lr_too_low', 'val_rising']
    """
    return [NonFinite(), LossSpike(), GradientBlowup(), LossRising(), Oscillation(), ExplodingGradients(), LRTooLow(),
            ValidationRising()]
