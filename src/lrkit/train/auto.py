"""``lr0="auto"``: choose the peak learning rate for *this* run's schedule and budget.

Two stages within a bounded extra budget (``budget × total_steps`` optimizer steps, everything counted):

1. **Range test** (:func:`lrkit.find_lr`) with most of the budget: its suggestion ``s`` is the measured best
   single signal for the full run's best LR (``benchmarks/auto_lr.py``), and it gets sharper with more steps.
2. **Confirmation** ("guard"): short trials on the run's own schedule, compressed to the trial length, each from
   the *same* starting state with the same batches and seed, scored on validation loss. A short run's best LR is
   not the full run's (usually larger, in sample up to 40x; out of sample sometimes far smaller), so the trials are
   trusted only where that cannot mislead them: ``s`` moves *down* when it diverges, *up* only when it did not learn
   at all, and otherwise stays (:data:`STEP_DOWN_MARGIN` ``= inf``; a finite margin also follows a lower candidate
   that wins its short trial by that margin).

Opt-in, ``search="prefix"`` replaces the guard with five trials of the run's *real* schedule (its first 20%, then a
5% anneal to zero) at the suggestion times ``10^(k/2)``, ``k = -2..2``, and picks the best: about 1.5 runs of extra
compute, pre-registered and measured before it was built (docs/benchmarks/auto_lr.md).

Everything the caller had is restored afterwards — parameters, buffers, grads, optimizer state and settings,
train/eval modes, the torch/numpy/python RNGs and the train loader's generator.

>>> import torch
>>> from torch.utils.data import DataLoader, TensorDataset
>>> _ = torch.manual_seed(0)
>>> x = torch.randn(512, 8); y = x @ torch.randn(8, 1) + 0.1 * torch.randn(512, 1)
>>> train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=32, shuffle=True)
>>> val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=128)
>>> model = torch.nn.Linear(8, 1)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
>>> def cosine(o, steps): return torch.optim.lr_scheduler.CosineAnnealingLR(o, steps)
>>> auto = choose_lr0(model, opt, train, val, total_steps=600, make_scheduler=cosine)
>>> 1e-3 < auto.lr < 1.0, auto.extra_steps <= 0.3 * 600, opt.param_groups[0]["lr"]
(True, True, 0.1)
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import math
import numbers
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from lrkit._dist import distributed, failed_check, failed_error, rank_mean, reshard, same_settings
from lrkit._state import Snapshot, check_snapshot_device, set_group_lrs
from lrkit._step import (
    _structure,
    autocast_context,
    batch_loss,
    batch_size,
    clip_grad_norm_,
    cycle_batches,
    move_to,
    optimizer_step,
    train_mode,
)
from lrkit._utils import canonical_name, check_positive, did_you_mean, named_keywords, unknown_name_error
from lrkit.finder import suggest as _suggest
from lrkit.finder.range_test import MIN_NUM_STEPS

if TYPE_CHECKING:
    from lrkit.finder.result import FinderResult

__all__ = ["AutoLR", "Trial", "choose_lr0", "plan_budget"]

MakeScheduler = Callable[[torch.optim.Optimizer, int], Any]

# ---- defaults, chosen on benchmarks/auto_lr.py (one setting for every task; see docs/benchmarks/auto_lr.md) ----
#: The range test runs this fraction of the run's steps (capped by the budget, at least 10 steps). A range test's
#: suggestion falls as its ramp slows (measured: 0.08 -> 0.02 -> 0.012 on digits_mlp for 20 -> 100 -> 189 steps),
#: so its length scales with the run's, like the run's own exposure to each LR.
FINDER_FRACTION = 0.25
#: The range test's LR range in lr0="auto" (``finder_kwargs`` overrides).
FINDER_START_LR = 1e-6
FINDER_END_LR = 10.0
#: Ratio between neighbouring candidates.
SPACING = 2.0
#: A trial shorter than this is too short to judge; fewer candidates are tried instead.
MIN_TRIAL_STEPS = 8
#: A trial is stopped as diverged when its training loss exceeds this multiple of its first loss and of the typical
#: starting loss (or is not finite); see :func:`_diverged`.
DIVERGE_FACTOR = 10.0
#: The typical starting loss the trials' divergence check reads is the median of the range test's first this-many
#: losses (see :func:`_start_reference`).
REFERENCE_STEPS = 5
#: A trial "did not learn" when its validation loss is not at least this fraction below the starting one.
MIN_PROGRESS = 0.005
#: ``"guard"`` (default: move only where the short-horizon bias cannot mislead) or ``"bracket"`` (pick the best of
#: a bracket around ``s``, trusting the trials both ways; measured worse, kept for the benchmark's comparison).
SEARCH = "guard"
#: ``"bracket"`` only: a trial for candidate ``c`` trains at ``c * (total_steps / trial_steps) ** HORIZON_EXPONENT``.
HORIZON_EXPONENT = 0.0
#: The default rule's back-off, in decades, from a range test that plateaus (``suggest_robust``'s
#: ``plateau_backoff_decades``). ``lrkit.find_lr`` uses 0.5; here the run-sized range test keeps a decade, because
#: half a decade hurt the one held-out task where it applied (digits_linear: +0.4% -> +7.2%;
#: docs/benchmarks/auto_lr.md).
PLATEAU_BACKOFF_DECADES = 1.0
#: Whether the default rule's noise scaling (``lrkit.finder.suggest.ROBUST_NOISE_BAND``, on in ``find_lr``) applies
#: to the run-sized range test too: on since its pre-registered test on the third fresh set
#: (docs/benchmarks/auto_lr.md).
NOISE_SCALING = True
#: The guard steps down from a candidate to the next lower one only when the lower one's validation loss is lower by
#: more than this fraction of the higher one's (``lower < higher - STEP_DOWN_MARGIN × |higher|``). ``math.inf`` (the
#: default since the sixth fresh set's pre-registered test, docs/benchmarks/auto_lr.md) never steps down on a win: a
#: short trial does not reliably favour higher LRs, so a lower LR winning one proves nothing; a diverging suggestion
#: still steps down, and one that does not learn still steps up. ``0.0`` follows any strict win (the guard before that
#: test); with a finite margin the choice is the lowest candidate that won by the margin (a within-margin win below it
#: is a tie, which goes to the higher LR), refined by the parabola through it and its neighbours when it scores best.
STEP_DOWN_MARGIN = math.inf
#: ``search="prefix"`` (opt-in, pre-registered and tested on a fresh set, docs/benchmarks/auto_lr.md): each trial runs
#: the run's real schedule (built over ``total_steps``) for its first ``PREFIX_FRACTION`` of the steps, then anneals
#: linearly to zero over ``ANNEAL_FRACTION`` of them; the candidates are ``s · PREFIX_SPACING**k`` for
#: ``k in PREFIX_EXPONENTS``; the range test takes ``PREFIX_RANGE_FRACTION`` of the run. About 1.5 runs in all.
PREFIX_FRACTION = 0.2
ANNEAL_FRACTION = 0.05
PREFIX_SPACING = 10**0.5
PREFIX_EXPONENTS = (-2, -1, 0, 1, 2)
PREFIX_RANGE_FRACTION = 0.25
#: ``choose_lr0``'s searches: the default guard within ``budget``, and the opt-in prefix search of fixed cost.
SEARCHES = ("guard", "prefix")
#: Whether the run-sized range test is read with ``find_lr``'s double-dip cut and its passes gate on the noise
#: scaling (``lrkit.finder.suggest.dip_cut``, ``ROBUST_MAX_PASSES``): on since the sixth fresh set's pre-registered
#: test (with ``STEP_DOWN_MARGIN = inf``); ``False`` reads it without them, as before.
DIP_AND_PASSES = True


#: Set by ``lrkit.train`` around its :func:`choose_lr0` call: errors then name its settings (``auto_budget``, an
#: explicit ``lr0``) rather than ``choose_lr0``'s own arguments (``budget=``).
_FOR_LRKIT_TRAIN: ContextVar[bool] = ContextVar("_FOR_LRKIT_TRAIN", default=False)
#: The range test's settings as a direct call of :func:`choose_lr0` sets them (its quality warnings' words).
_FINDER_KWARGS_NAMES = {key: f"finder_kwargs['{key}']" for key in ("start_lr", "num_steps", "end_lr")}
#: Said after the range test's quality warnings inside ``lrkit.train``, which takes none of its settings.
_NOT_IN_LRKIT_TRAIN = (
    " (lrkit.train runs the range test of lr0='auto' with settings of its own, which it does not take: to change "
    "them, run lrkit.find_lr, or `lrkit find`, on the model and pass the LR you choose as lr0)"
)


def _suggestion(finder: FinderResult) -> float:
    """The range test's suggestion, with :data:`PLATEAU_BACKOFF_DECADES` (and :data:`NOISE_SCALING`,
    :data:`DIP_AND_PASSES`) for the default rule."""
    if finder.rule == "robust":
        band = _suggest.ROBUST_NOISE_BAND if NOISE_SCALING else None
        extra: dict[str, Any] = {} if DIP_AND_PASSES else {"dip_rise": None, "max_passes": None}
        return float(finder.suggest(plateau_backoff_decades=PLATEAU_BACKOFF_DECADES, noise_band=band, **extra))
    return float(finder.suggestion)


def _settings(search: str = "guard") -> dict[str, Any]:
    """The module settings that decide how the choice is read and guarded, JSON-ready (``inf`` as ``"inf"``: a
    run's records write a non-finite float as ``null``); ``search``: choose_lr0's (``"prefix"`` is recorded as
    such, ``"guard"`` as :data:`SEARCH`, which a benchmark may set to ``"bracket"``)."""
    margin = float(STEP_DOWN_MARGIN)
    return {
        "search": search if search == "prefix" else SEARCH,
        "step_down_margin": margin if math.isfinite(margin) else "inf",
        "dip_and_passes": bool(DIP_AND_PASSES),
        "noise_scaling": bool(NOISE_SCALING),
    }


class Trial(NamedTuple):
    """One confirmation run: its peak LR, its validation loss (``inf`` if it diverged) and its optimizer steps."""

    lr: float
    val_loss: float
    steps: int


@dataclass(repr=False)
class AutoLR:
    """What :func:`choose_lr0` chose and why.

    Attributes:
        lr: the chosen peak LR (the group with ``lr_scale`` 1; other groups keep their ratios).
        finder: the range test's :class:`~lrkit.FinderResult`.
        trials: every confirmation run, in the order tried, as ``(lr, val_loss, steps)``.
        extra_steps: optimizer steps spent choosing (range test + trials).
        extra_fraction: ``extra_steps / total_steps``.
        reason: one paragraph: what was tried and why this LR was chosen.
        trial_steps: the length of each trial (0 when the confirmation was skipped).

    ``to_dict()["suggestion"]`` is the range test's suggestion the choice started from, as read when it was made
    (a later change of :data:`NOISE_SCALING` does not rewrite the record); ``to_dict()["settings"]`` the guard's and
    the reading's settings it was made under (:data:`SEARCH`, :data:`STEP_DOWN_MARGIN`, :data:`DIP_AND_PASSES`,
    :data:`NOISE_SCALING`); ``to_dict()["finder_loss"]`` which loss the range test ran (:attr:`finder_loss`).

    Example (a record read back, as a run's ``events.json`` keeps it; :func:`choose_lr0` returns one)::

        >>> auto = AutoLR.from_dict({"lr": 0.02, "trials": [{"lr": 0.02, "val_loss": 0.41, "steps": 16}],
        ...                          "extra_steps": 49, "extra_fraction": 0.049, "reason": "it trained and learned"})
        >>> auto.lr, auto.trials[0].val_loss, auto.extra_fraction
        (0.02, 0.41, 0.049)
    """

    lr: float
    finder: Any
    trials: list[Trial]
    extra_steps: int
    extra_fraction: float
    reason: str
    trial_steps: int = 0
    log_lines: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        """One line: the LR, the suggestion it started from, the trials and the cost, not the range test's curve and
        the log (the attributes hold them).

        >>> AutoLR(lr=0.02, finder=None, trials=[Trial(0.02, 0.41, 16)], extra_steps=49, extra_fraction=0.049,
        ...        reason="the suggestion trained and learned", trial_steps=16)
        AutoLR(lr=0.02, trials=[(0.02, val_loss=0.41)], trial_steps=16, extra_steps=49, extra_fraction=0.049)
        """
        parts = [f"lr={self.lr:.4g}"]
        try:
            suggestion = self.to_dict()["suggestion"]
        except ValueError:  # a range test too short to judge: nothing to show
            suggestion = None
        if suggestion is not None:
            parts.append(f"suggestion={suggestion:.4g}")
        trials = ", ".join(f"({t.lr:.4g}, val_loss={t.val_loss:.4g})" for t in self.trials)
        parts += [f"trials=[{trials}]", f"trial_steps={self.trial_steps}", f"extra_steps={self.extra_steps}",
                  f"extra_fraction={self.extra_fraction:.3g}"]
        return f"AutoLR({', '.join(parts)})"

    @property
    def finder_loss(self) -> str | None:
        """Which loss the range test ran, in words: its ``FinderResult.loss`` (``"cross-entropy (the classification
        task's loss)"`` under ``lrkit.train``, ``"loss_fn (my_loss)"``, ...); after a resume (``finder=None``), the
        record's. ``None`` when it was not recorded (a record from before it was, a hand-built ``FinderResult``)."""
        if self.finder is not None:
            loss = getattr(self.finder, "loss", None)
            return loss if isinstance(loss, str) else None
        recorded = getattr(self, "_finder_loss", None)
        return None if recorded is _NOT_RECORDED else recorded

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (for a run's ``args.yaml``/results)."""
        return {
            "lr": self.lr,
            "suggestion": (used if (used := getattr(self, "_used_suggestion", None)) is not None
                           else _suggestion(self.finder) if self.finder is not None else None),
            "trials": [
                {"lr": t.lr, "val_loss": t.val_loss if math.isfinite(t.val_loss) else None, "steps": t.steps}
                for t in self.trials
            ],
            "trial_steps": self.trial_steps,
            "extra_steps": self.extra_steps,
            "extra_fraction": self.extra_fraction,
            "reason": self.reason,
            # a record read back by from_dict keeps what it said (None: written before settings were recorded)
            "settings": self._settings if hasattr(self, "_settings") else _settings(),
        } | ({} if getattr(self, "_finder_loss", None) is _NOT_RECORDED else {"finder_loss": self.finder_loss})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AutoLR:
        """The inverse of :meth:`to_dict`: an ``AutoLR`` from its record (a resumed run's ``results.auto``).

        The range test's curve is not in the record, so ``finder`` is ``None`` and ``log_lines`` is empty;
        ``to_dict()`` gives the record back (its ``suggestion`` and ``settings`` as written, not re-read). A trial's
        ``val_loss`` of ``None`` (diverged) reads as ``inf``. Records of older versions may lack keys: only ``lr`` is
        required; ``trials`` defaults to ``[]``, ``trial_steps``, ``extra_steps`` and ``extra_fraction`` to 0,
        ``reason`` to ``""``, ``suggestion``, ``settings`` and ``finder_loss`` to ``None`` (not recorded: a record
        from before ``settings`` existed is not given today's, and one without ``finder_loss`` gives it back
        without it). An unknown key (with a did-you-mean), a missing ``lr`` or a value of the wrong kind is a
        ``ValueError`` naming the key.

        >>> a = AutoLR(lr=0.02, finder=None, trials=[Trial(0.01, 0.5, 16), Trial(0.04, math.inf, 3)],
        ...            extra_steps=49, extra_fraction=0.049, reason="stepped up", trial_steps=16)
        >>> b = AutoLR.from_dict(a.to_dict())
        >>> b.reason, b.trials[1].val_loss, b.to_dict() == a.to_dict()
        ('stepped up', inf, True)
        """
        where = "AutoLR.from_dict"
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected a dict (AutoLR.to_dict()'s record), got {type(d).__name__}")
        for key in d:
            if key not in _RECORD_KEYS:
                raise unknown_name_error(f"{where} key", str(key), _RECORD_KEYS)
        if "lr" not in d:
            raise ValueError(f"{where}: the record has no 'lr' (the chosen peak LR); keys: {sorted(map(str, d))}")
        lr = _record_number(where, "lr", d["lr"], positive=True)
        raw_trials = d.get("trials", [])
        if raw_trials is None:
            raw_trials = []
        if not isinstance(raw_trials, (list, tuple)):
            raise ValueError(f"{where}: 'trials' must be a list of {{'lr', 'val_loss', 'steps'}} records, got "
                             f"{type(raw_trials).__name__}")
        trials = [_record_trial(where, i, t) for i, t in enumerate(raw_trials)]
        extra_steps = _record_count(where, "extra_steps", d.get("extra_steps", 0))
        suggestion = d.get("suggestion")
        settings = d.get("settings")
        if settings is not None and not isinstance(settings, Mapping):
            raise ValueError(f"{where}: 'settings' must be a dict (search, step_down_margin, ...) or None, got "
                             f"{type(settings).__name__}")
        reason = d.get("reason", "")
        if not isinstance(reason, str):
            raise ValueError(f"{where}: 'reason' must be a string, got {type(reason).__name__}")
        finder_loss = d.get("finder_loss")
        if finder_loss is not None and not isinstance(finder_loss, str):
            raise ValueError(f"{where}: 'finder_loss' must be a string (which loss the range test ran, e.g. "
                             f"'loss_fn (cross_entropy)') or None, got {type(finder_loss).__name__}")
        auto = cls(
            lr=lr,
            finder=None,
            trials=trials,
            extra_steps=extra_steps,
            extra_fraction=_record_number(where, "extra_fraction", d.get("extra_fraction", 0.0)),
            reason=reason,
            trial_steps=_record_count(where, "trial_steps", d.get("trial_steps", 0)),
        )
        auto._used_suggestion = (  # type: ignore[attr-defined]
            None if suggestion is None else _record_number(where, "suggestion", suggestion, positive=True)
        )
        auto._settings = dict(settings) if settings is not None else None  # type: ignore[attr-defined]
        # a record from before finder_loss existed is given back without it (not as a None it did not say)
        auto._finder_loss = d["finder_loss"] if "finder_loss" in d else _NOT_RECORDED  # type: ignore[attr-defined]
        return auto


class _Unrecorded(enum.Enum):
    """A singleton that a copy or a pickle gives back as itself (an ``object()`` would come back as a new one)."""

    NOT_RECORDED = "not recorded"


#: ``AutoLR._finder_loss`` of a record read back (:meth:`AutoLR.from_dict`) that had no ``finder_loss`` key.
_NOT_RECORDED = _Unrecorded.NOT_RECORDED

#: The keys of :meth:`AutoLR.to_dict`'s record.
_RECORD_KEYS = ("lr", "suggestion", "trials", "trial_steps", "extra_steps", "extra_fraction", "reason", "settings",
                "finder_loss")


def _record_number(where: str, key: str, value: Any, *, positive: bool = False) -> float:
    """A record's finite number (``> 0`` when ``positive``, else ``>= 0``), as a float; else an error naming ``key``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        raise ValueError(f"{where}: {key}={value!r} must be a finite number {'> 0' if positive else '>= 0'}")
    return float(value)


def _record_count(where: str, key: str, value: Any) -> int:
    """A record's step count: an integer ``>= 0`` (``12.0`` from a JSON reader too); else an error naming ``key``."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and float(value).is_integer():
        value = int(value)
    return _check_int(f"{where}: {key}", value, 0)


def _record_trial(where: str, i: int, t: Any) -> Trial:
    """``trials[i]`` of a record (``{"lr", "val_loss", "steps"}``; ``val_loss`` ``None``: diverged) as a Trial."""
    name = f"trials[{i}]"
    if not isinstance(t, Mapping):
        raise ValueError(f"{where}: {name} must be a dict with 'lr', 'val_loss', 'steps', got {type(t).__name__}")
    for key in t:
        if key not in ("lr", "val_loss", "steps"):
            raise unknown_name_error(f"{where} {name} key", str(key), ["lr", "val_loss", "steps"])
    missing = [k for k in ("lr", "val_loss", "steps") if k not in t]
    if missing:
        raise ValueError(f"{where}: {name} has no {missing[0]!r} (a trial records 'lr', 'val_loss' — None when it "
                         "diverged — and 'steps')")
    loss = t["val_loss"]
    if loss is None:
        val_loss = math.inf
    elif isinstance(loss, numbers.Real) and not isinstance(loss, bool):
        val_loss = float(loss) if math.isfinite(loss) else math.inf  # as a trial scores a non-finite loss
    else:
        raise ValueError(f"{where}: {name}['val_loss']={loss!r} must be a number, or None (diverged)")
    return Trial(_record_number(where, f"{name}['lr']", t["lr"], positive=True), val_loss,
                 _record_count(where, f"{name}['steps']", t["steps"]))


class BudgetPlan(NamedTuple):
    """How :func:`choose_lr0` splits its extra budget: range-test steps, number of trials, steps per trial."""

    budget_steps: int
    finder_steps: int
    num_trials: int
    trial_steps: int


def plan_budget(
    total_steps: int, budget: float, num_candidates: int, finder_steps_run: int | None = None
) -> BudgetPlan:
    """Split ``floor(budget * total_steps)`` extra optimizer steps between the range test and the trials.

    The range test gets ``FINDER_FRACTION * total_steps`` steps (at most the budget, at least 10); what it leaves
    (also whatever it did not use, when it stopped early) is shared by up to ``num_candidates`` trials of at least
    ``MIN_TRIAL_STEPS`` steps each — fewer, longer trials when the budget is small, none when two do not fit.
    A trial is never longer than the run itself (``budget > 1``). Trials the search does not need are not run, so
    the real cost is often lower.

    >>> plan_budget(1000, 0.3, 3)
    BudgetPlan(budget_steps=300, finder_steps=250, num_trials=3, trial_steps=16)
    >>> plan_budget(1000, 0.6, 3)
    BudgetPlan(budget_steps=600, finder_steps=250, num_trials=3, trial_steps=116)
    """
    total_steps = _check_total_steps(total_steps)
    budget = check_positive("budget", budget)
    num_candidates = _check_num_candidates(num_candidates)
    if finder_steps_run is not None:
        finder_steps_run = _check_int("finder_steps_run", finder_steps_run, 0)
    fraction = FINDER_FRACTION
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
        raise ValueError(f"lrkit.train.auto.FINDER_FRACTION={fraction!r} must be a number in (0, 1]: the range test's "
                         "share of the run's steps (e.g. 0.25; the test never takes more than the budget)")
    budget_steps = math.floor(budget * total_steps + 1e-9)
    finder_steps = max(MIN_NUM_STEPS, min(budget_steps, round(fraction * total_steps)))
    used = finder_steps if finder_steps_run is None else finder_steps_run
    left = max(0, budget_steps - used)
    n = min(num_candidates, left // MIN_TRIAL_STEPS)
    if n < 2:
        return BudgetPlan(budget_steps, finder_steps, 0, 0)
    return BudgetPlan(budget_steps, finder_steps, n, min(left // n, total_steps))


def _check_int(name: str, value: Any, minimum: int, hint: str = "") -> int:
    """An integer (numpy/torch integer scalars too, never a bool) ``>= minimum``, as a python ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} must be {hint or f'an integer >= {minimum}'}")
    return int(value)


def _check_total_steps(value: Any) -> int:
    return _check_int("total_steps", value, 1, "a positive integer (the run's optimizer steps)")


def _check_num_candidates(value: Any) -> int:
    return _check_int(
        "num_candidates", value, 2,
        "an integer >= 2 (the confirmation compares the suggestion with at least one other candidate; with a budget "
        "too small for two trials the suggestion is used as is)",
    )


def _prefix_cost() -> float:
    """``search="prefix"``'s nominal extra compute, as a fraction of the run: the range test's share plus five
    trials of the prefix and its anneal (1.5 with the defaults; rounding each trial's two parts to whole steps may add
    a few steps on a short run).

    >>> _prefix_cost()
    1.5
    """
    return PREFIX_RANGE_FRACTION + len(PREFIX_EXPONENTS) * (PREFIX_FRACTION + ANNEAL_FRACTION)


def _check_search(search: Any, budget: Any, num_candidates: Any) -> str:
    """``search`` as one of :data:`SEARCHES` (any case); ``"prefix"`` refuses a ``budget`` or ``num_candidates``
    (its cost and candidates are fixed: a value given for them would be ignored)."""
    if not isinstance(search, str):
        raise ValueError(f"search={search!r:.60} must be one of: {', '.join(SEARCHES)}")
    search = canonical_name("search", search, SEARCHES)
    if search == "prefix":
        train = _FOR_LRKIT_TRAIN.get()
        for name, value in (("budget", budget), ("num_candidates", num_candidates)):
            if value is not None:
                name = "auto_budget" if train and name == "budget" else name
                raise ValueError(
                    f"{name}={value!r:.40} does not apply to "
                    f"{'auto_search' if train else 'search'}='prefix': its cost is fixed (a range test of "
                    f"{PREFIX_RANGE_FRACTION:g} of the run and {len(PREFIX_EXPONENTS)} trials of "
                    f"{PREFIX_FRACTION + ANNEAL_FRACTION:g}: about {_prefix_cost():g} runs of extra compute); leave "
                    f"{name} out, or use {'auto_search' if train else 'search'}='guard' to cap the cost"
                )
    return search


def _prefix_range_steps(total_steps: int) -> int:
    """``search="prefix"``'s most range-test steps for a run of ``total_steps``: its share of the run, rounded down
    (as :func:`plan_budget` rounds a budget of that share).

    >>> _prefix_range_steps(39), _prefix_shortest_run()
    (9, 40)
    """
    return math.floor(PREFIX_RANGE_FRACTION * total_steps + 1e-9)


def _prefix_shortest_run() -> int:
    """The fewest optimizer steps a run needs for ``search="prefix"``: its range test's share must hold
    :data:`MIN_NUM_STEPS`."""
    return math.ceil(MIN_NUM_STEPS / PREFIX_RANGE_FRACTION)


def _guard_hint(total_steps: int, search: str = "search", budget: str = "budget", most: float = math.inf) -> str:
    """For a run too short for ``search="prefix"``: how the guard would choose for it — its default budget (0.3 of the
    run) when that holds the range test's :data:`MIN_NUM_STEPS`, else the budget that would (``""`` above ``most``:
    lrkit.train's ``auto_budget`` is at most 1). ``search``/``budget``: the caller's names for them.

    >>> _guard_hint(39)
    "use search='guard' (its default budget=0.3 holds a range test of 11 steps)"
    >>> _guard_hint(30, "auto_search", "auto_budget")
    "use auto_search='guard' with auto_budget=0.34 or more"
    >>> _guard_hint(8, most=1.0)
    ''
    """
    need = math.ceil(MIN_NUM_STEPS / total_steps * 100) / 100
    if need <= 0.3:
        return (f"use {search}='guard' (its default {budget}=0.3 holds a range test of "
                f"{math.floor(0.3 * total_steps + 1e-9)} steps)")
    return f"use {search}='guard' with {budget}={need:g} or more" if need <= most else ""


#: What a ``val_loader`` may be, said by :func:`_check_val_loader`'s errors.
_VAL_LOADER_FORMS = (
    "pass a DataLoader or a list of batches, e.g. [(inputs, targets)], to score the trials on, or val_loader=None to "
    "score them on the training loss"
)


def _check_val_loader(val_loader: Any, step_fn: Any) -> None:
    """Refuse, before any compute, a ``val_loader`` that is not an iterable of batches: not iterable at all, a string
    (a path), or a single batch (a dict, a tensor, or an ``(inputs, targets)`` tuple or list of tensors without
    ``step_fn``), whose iteration would give its keys or its rows as "batches" and fail only after the range test."""
    if val_loader is None:
        return
    kind = type(val_loader).__name__
    if isinstance(val_loader, (str, bytes)):
        raise ValueError(f"val_loader={val_loader!r:.60} is a string, not a loader of batches; {_VAL_LOADER_FORMS}")
    if isinstance(val_loader, Mapping):
        raise ValueError(
            f"val_loader is a dict (keys {', '.join(map(repr, list(val_loader)[:4]))}): one batch, whose iteration "
            f"would give its keys; pass [batch] for that one batch, or {_VAL_LOADER_FORMS.removeprefix('pass ')}"
        )
    if isinstance(val_loader, torch.Tensor):
        raise ValueError(
            f"val_loader is a Tensor of shape {tuple(val_loader.shape)}, whose iteration would give its rows as "
            f"batches; {_VAL_LOADER_FORMS}"
        )
    if (step_fn is None and isinstance(val_loader, (tuple, list)) and val_loader
            and all(isinstance(v, torch.Tensor) for v in val_loader)):  # (a bare tensor is no batch without step_fn)
        shapes = ", ".join(str(tuple(v.shape)) for v in val_loader[:4])
        raise ValueError(
            f"val_loader is a {kind} of tensors ({shapes}): one (inputs, targets) batch, whose iteration would give "
            f"its tensors as batches; pass [(inputs, targets)] for that one batch, or "
            f"{_VAL_LOADER_FORMS.removeprefix('pass ')}"
        )
    if not (hasattr(type(val_loader), "__iter__") or hasattr(type(val_loader), "__getitem__")):
        raise ValueError(f"val_loader={val_loader!r:.60} ({kind}) is not iterable; {_VAL_LOADER_FORMS}")


#: The error for a validation loader with nothing to score on.
_EMPTY_VAL = (
    "val_loader yielded no batches ({what}): lr0='auto' scores its candidates on the validation loss; pass a "
    "val_loader with at least one non-empty batch, or val_loader=None to score them on the training loss"
)


def _sized_empty(loader: Any) -> bool:
    """Whether ``loader`` has a length and it is 0 (a loader without ``len()`` is checked when first used)."""
    try:
        return len(loader) == 0
    except Exception:  # no len(): an IterableDataset's DataLoader, a generator
        return False


@torch.no_grad()
def _val_loss(
    model: torch.nn.Module, loader: Iterable[Any], loss_fn: Any, step_fn: Any, device: torch.device, amp: Any = None
) -> float:
    model.eval()
    try:
        total, count = _val_sums(model, loader, loss_fn, step_fn, device, amp)
        error: Exception | None = None
    except Exception as e:
        if not distributed():
            raise
        total, count, error = 0.0, 0, e  # raised below, after the other ranks heard of it (see _rank_sums)
    finally:
        reshard(model)  # a forward without backward leaves FSDP2's root unsharded: the restores need it sharded
    if distributed():  # the mean over every rank's shard: each rank scores (and so chooses) the same
        total, count = _rank_sums(total, count, error, device)
    if count == 0:
        raise ValueError(_EMPTY_VAL.format(what="or only empty ones"))
    value = total / count
    return value if math.isfinite(value) else math.inf


def _val_sums(
    model: torch.nn.Module, loader: Iterable[Any], loss_fn: Any, step_fn: Any, device: torch.device, amp: Any
) -> tuple[float, int]:
    """This rank's summed validation loss over ``loader`` (each batch's mean loss times its size) and its sample
    count (:func:`_val_loss` takes their ratio)."""
    total, count = 0.0, 0
    for i, batch in enumerate(loader):
        batch = move_to(batch, device)
        n = batch_size(batch)
        if n == 0:  # an empty batch holds no samples: its loss is NaN (a mean over nothing), and NaN x 0 is NaN
            continue
        try:
            with amp if amp is not None else _NO_AMP:
                loss = batch_loss(model, batch, loss_fn, step_fn)
        except (RuntimeError, TypeError, IndexError, KeyError, ValueError) as e:  # raised as it is (the model's own,
            # with a note saying where: torch's words alone ("mat1 and mat2 shapes cannot be multiplied") do not
            if not isinstance(e, torch.OutOfMemoryError):
                e.add_note(
                    f"(lrkit: raised while lr0='auto' scored on val_loader's batch {i}, {_structure(batch)}, "
                    "in eval mode; the range test's train_loader batches went through the model in train mode. "
                    "If val_loader's batches differ from those in form, fix val_loader, or pass val_loader=None "
                    "to score the trials on the training loss)"
                )
            raise
        total += float(loss) * n
        count += n
    return total, count


def _rank_sums(total: float, count: int, error: Exception | None, device: torch.device) -> tuple[float, int]:
    """Under torch.distributed: a validation pass's ``total`` loss and sample ``count`` summed over the ranks, in one
    all-reduce that also carries each rank's ``error`` flag. A scoring pass that raised on one rank only (a bad batch
    in its shard) then stops every rank at once: that rank raises its own error, every other rank a ``ValueError``
    naming it, where before they waited in this all-reduce for the process group's timeout (30 minutes by default)."""
    from lrkit._dist import flagged_all_reduce

    t, who = flagged_all_reduce([total, float(count)], error, device, "the validation loss", "choose_lr0")
    if who is not None:
        dist = torch.distributed
        raise ValueError(
            f"choose_lr0 under torch.distributed (rank {dist.get_rank()} of {dist.get_world_size()}) stopped on "
            f"every rank: scoring on val_loader raised on {who} (see that rank's error for the batch and the cause); "
            "every rank's val_loader shard must give batches the model and loss accept"
        )
    return float(t[0]), int(t[1])


def _seed_everything(seed: int, generator: torch.Generator | Iterable[torch.Generator] | None) -> None:
    """Seed torch, numpy, python and the loader's generator(s) with ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    for gen in [generator] if isinstance(generator, torch.Generator) else (generator or []):
        gen.manual_seed(seed)


#: A no-op context (no autocast).
_NO_AMP = contextlib.nullcontext()


def _blown_up(value: float, ref: float) -> bool:
    """Whether ``value`` is above ``DIVERGE_FACTOR × ref`` (for a negative ``ref``: risen by
    ``(DIVERGE_FACTOR - 1) × |ref|``)."""
    if ref >= 0:
        return value > DIVERGE_FACTOR * max(ref, 1e-12)
    return value > ref - (DIVERGE_FACTOR - 1) * ref


def _diverged(value: float, first: float, reference: float | None = None) -> bool:
    """Whether a trial's training loss ``value`` counts as diverged: not finite, or a ``DIVERGE_FACTOR`` blow-up
    (:func:`_blown_up`) against both the trial's first loss ``first`` and ``reference``, the typical loss at the
    starting weights (:func:`_start_reference`; ``None``: against ``first`` alone).

    Why both: ``first`` is one batch, and an easy one (a regression batch with tiny targets: 0.02 where the loss is
    usually 0.5) made a healthy trial's ordinary second loss a "25x blow-up". ``reference`` is the median over
    several batches at the starting weights, so one atypical batch cannot set it, and a trial that starts typically
    is still stopped at the first blown-up step (no warm-up steps without a verdict, which a median of the trial's
    own first losses would need). Asking for a blow-up against ``first`` too keeps the check never stricter than the
    first loss alone: a loss below ten times the trial's own start is not called divergence whatever the range test
    read (one whose first steps already trained, with a high ``start_lr``, reads a lower reference)."""
    if not math.isfinite(value):
        return True
    return _blown_up(value, first) and (reference is None or _blown_up(value, reference))


def _start_reference(finder: FinderResult) -> float | None:
    """The typical training loss at the starting weights: the median of the finite ones among the range test's first
    :data:`REFERENCE_STEPS` losses (``None`` when none of them is finite). The range test starts at a tiny LR
    (:data:`FINDER_START_LR`) from the trials' starting state, on the same loader with the same loss, so its first
    losses are the starting loss over several batches: the median is robust to an easy or a hard one."""
    head = [float(v) for v in finder.losses[:REFERENCE_STEPS] if math.isfinite(v)]
    return float(np.median(head)) if head else None


def _no_progress_bound(l0: float) -> float:
    """The loss a trial must get below to count as having learned: ``MIN_PROGRESS`` of ``|l0|`` below ``l0``."""
    return (1 - MIN_PROGRESS) * l0 if l0 >= 0 else (1 + MIN_PROGRESS) * l0


def _has_modes(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` has train/eval modes (schedule-free: callable ``train()``/``eval()`` and a
    ``train_mode`` group key), as :func:`lrkit.train` detects them."""
    return (callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))
            and any("train_mode" in g for g in optimizer.param_groups))


def _set_opt_mode(optimizer: torch.optim.Optimizer, *, train: bool) -> None:
    """A schedule-free optimizer into train (steps) or eval (scoring: the averaged weights a run validates) mode
    through its own ``train()``/``eval()``, called only when the mode changes; nothing for other optimizers. The
    snapshot puts the caller's mode and weights back."""
    if _has_modes(optimizer) and any(g.get("train_mode", train) is not train for g in optimizer.param_groups):
        (optimizer.train if train else optimizer.eval)()  # type: ignore[attr-defined]


#: The run-length parameters of torch's scheduler classes: a class whose first argument after the optimizer is one of
#: these builds a schedule over ``steps`` steps when called as ``make_scheduler(optimizer, steps)``.
_STEP_COUNT_PARAMS = ("T_max", "T_0", "total_iters", "step_size", "total_steps")

#: How to write a torch scheduler class whose first argument is not the run length as a ``make_scheduler``.
_CLASS_EXAMPLES = {
    "ExponentialLR": "ExponentialLR(optimizer, gamma=0.01 ** (1 / steps))",
    "OneCycleLR": "OneCycleLR(optimizer, max_lr=[g['lr'] for g in optimizer.param_groups], total_steps=steps)",
    "LinearLR": "LinearLR(optimizer, start_factor=1.0, end_factor=0.01, total_iters=steps)",
    "ConstantLR": "ConstantLR(optimizer, factor=0.5, total_iters=steps // 10)",
    "MultiStepLR": "MultiStepLR(optimizer, milestones=[steps // 2, 3 * steps // 4])",
}


def _check_make_scheduler(make_scheduler: Any) -> None:
    """Refuse, before any compute, a ``make_scheduler`` that cannot be ``(optimizer, steps) -> LRScheduler``: not a
    callable (a schedule spec string: how to build one from it), an lrkit ``Schedule`` (a multiplier of the step, not a
    scheduler factory), or one of torch's scheduler classes whose second argument is not a run length
    (``ExponentialLR(optimizer, steps)`` would take ``steps`` as its ``gamma`` and every trial would diverge)."""
    from lrkit.schedules.base import Schedule

    recipe = ("; pass a function that builds the run's schedule over `steps` steps, e.g. "
              "make_scheduler=lambda optimizer, steps: ")
    if isinstance(make_scheduler, str):
        raise ValueError(
            f"make_scheduler={make_scheduler!r} is a string, but choose_lr0 needs a callable (optimizer, steps) -> "
            f"LRScheduler{recipe}lrkit.schedules.from_spec({make_scheduler!r}, total_steps=steps).to_torch(optimizer) "
            "(leave the peak, lr0= or max_lr=, out of the spec: it would override every candidate's LR), or let "
            "lrkit.train(schedule=..., lr0='auto') build it"
        )
    if isinstance(make_scheduler, Schedule):
        label = getattr(make_scheduler, "label", None)
        raise ValueError(
            f"make_scheduler={label if isinstance(label, str) else type(make_scheduler).__name__!r}"
            f" is an lrkit Schedule (step -> LR multiplier), not a callable (optimizer, steps) -> LRScheduler{recipe}"
            "schedule.replan(at_step=0, total_steps=steps).to_torch(optimizer) (leave the peak, lr0= or max_lr=, out "
            "of the schedule: it would override every candidate's LR)"
        )
    if not callable(make_scheduler):
        raise ValueError(f"make_scheduler={make_scheduler!r} must be a callable (optimizer, steps) -> LRScheduler")
    lr_scheduler = torch.optim.lr_scheduler
    kinds = (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau)
    if not (isinstance(make_scheduler, type) and issubclass(make_scheduler, kinds)
            and make_scheduler.__module__.startswith("torch.optim")):
        # a function, or a class of the user's own: called first by the probe, which leaves a failing call to the
        # trials (after the range test), so one that cannot take (optimizer, steps) at all is refused now
        try:
            signature: inspect.Signature | None = inspect.signature(make_scheduler)
        except (TypeError, ValueError):  # no signature to read (a builtin): left to the call
            signature = None
        if signature is not None:
            try:
                signature.bind(None, 0)
            except TypeError as e:
                name = getattr(make_scheduler, "__name__", type(make_scheduler).__name__)
                raise ValueError(
                    f"make_scheduler={name} cannot be called as make_scheduler(optimizer, steps) ({e}): its signature "
                    f"is {name}{signature}{recipe}CosineAnnealingLR(optimizer, steps)"
                ) from None
        return
    name = make_scheduler.__name__
    if issubclass(make_scheduler, lr_scheduler.ReduceLROnPlateau):
        raise ValueError(
            "make_scheduler=ReduceLROnPlateau follows a metric, not the step count, so lr0='auto' cannot compress it "
            "into a short trial; pass the run's schedule over `steps` steps (LambdaLR, CosineAnnealingLR, OneCycleLR, "
            "...), or choose the LR with lrkit.find_lr"
        )
    try:
        params = [p for p in inspect.signature(make_scheduler).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):  # no signature to read: leave it to the call
        return
    second = params[1].name if len(params) > 1 else None
    if second in _STEP_COUNT_PARAMS and params[0].name == "optimizer":
        return  # CosineAnnealingLR(optimizer, steps): T_max=steps, the run's length
    example = _CLASS_EXAMPLES.get(name, "LambdaLR(optimizer, lambda t: 1 - t / steps)")
    took = (f"which passes `steps` as its {second!r}, not as the run's length" if second is not None
            else "which takes no run length")
    raise ValueError(
        f"make_scheduler=torch.optim.lr_scheduler.{name} is a scheduler class: lr0='auto' would call "
        f"{name}(optimizer, steps), {took}{recipe}{example} (classes whose second argument is the run's length, "
        "such as CosineAnnealingLR or PolynomialLR, may be passed as they are)"
    )


def _make_trial_scheduler(make_scheduler: MakeScheduler, optimizer: torch.optim.Optimizer, steps: int) -> Any:
    """``make_scheduler(optimizer, steps)``, checked: a failure or a result that cannot drive a trial is an error
    naming ``make_scheduler``."""
    name = getattr(make_scheduler, "__name__", type(make_scheduler).__name__)
    try:
        scheduler = make_scheduler(optimizer, steps)
    except Exception as e:  # any failure of the user's callable is theirs
        if isinstance(e, torch.OutOfMemoryError):
            raise
        raise ValueError(
            f"make_scheduler={name}(optimizer, {steps}) failed: {type(e).__name__}: {str(e).removesuffix('.')}. "
            "lr0='auto' calls it as make_scheduler(optimizer, steps) -> LRScheduler: the run's schedule over `steps` "
            "optimizer steps, on the optimizer it is given"
        ) from e
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise ValueError(
            f"make_scheduler={name} returned a ReduceLROnPlateau, which follows a metric, not the step count, so "
            "lr0='auto' cannot compress it into a short trial; return the run's schedule over `steps` steps "
            "(LambdaLR, CosineAnnealingLR, OneCycleLR, ...), or choose the LR with lrkit.find_lr"
        )
    if not callable(getattr(scheduler, "step", None)):
        hint = " (an lrkit schedule? return schedule.to_torch(optimizer))" if hasattr(scheduler, "to_torch") else ""
        raise ValueError(
            f"make_scheduler={name} returned {type(scheduler).__name__}, not an LR scheduler with a .step() method"
            f"{hint}; it must return make_scheduler(optimizer, steps) -> LRScheduler"
        )
    owner = getattr(scheduler, "optimizer", optimizer)
    if owner is not optimizer:
        raise ValueError(
            f"make_scheduler={name} returned a scheduler of another optimizer ({type(owner).__name__}), so the trials "
            "would not follow it; build the scheduler on the optimizer make_scheduler is given"
        )
    return scheduler


#: The base LRs :func:`_check_schedule_scales` builds ``make_scheduler``'s schedule at: a decade apart, and high
#: enough that a floor of the schedule's own (``eta_min``, a warmup's ``warmup_bias_lr``) does not set its peak.
_PROBE_LRS = (1.0, 10.0)
#: The most steps :func:`_check_schedule_scales` builds the schedule over (a trial's length, up to this): a schedule
#: that sets its own peak shows it at any length, and a budget above 1 makes trials as long as the run.
_PROBE_MAX_STEPS = 2000


class _ProbeOptimizer(torch.optim.Optimizer):
    """A stand-in for the caller's optimizer: its param groups' settings on fresh one-element tensors, and a
    ``step`` that does nothing, so a scheduler can be built and stepped on it without touching the caller's."""

    def step(self, closure: Callable[[], Any] | None = None) -> None:  # type: ignore[override]
        """Nothing to update (the scheduler's step-order check only needs it called)."""
        return None


def _copy_setting(value: Any) -> Any:
    """A copy of a param group's setting that the stand-in may change freely (tensors cloned, lists copied)."""
    import copy

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    try:
        return copy.deepcopy(value)
    except Exception:  # an object of the user's that cannot be copied: shared (a scheduler only reads such)
        return value


class _OptimizerSettings:
    """What building and stepping a scheduler on an optimizer changes, kept to be put back exactly: each param
    group's settings (the same objects; a tensor's values too, as schedulers fill a tensor LR in place), and the
    instance attributes a scheduler adds (its wrapped ``step``, ``_opt_called``)."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        self.values = [{k: v.detach().clone() for k, v in g.items() if isinstance(v, torch.Tensor)}
                       for g in self.groups]
        self.attrs = {k: vars(optimizer)[k] for k in ("step", "_opt_called") if k in vars(optimizer)}

    def restore(self) -> None:
        """Put the optimizer back as it was captured: added keys and attributes removed, the rest restored."""
        with torch.no_grad():
            for group, settings, values in zip(self.optimizer.param_groups, self.groups, self.values):
                for key in [k for k in group if k != "params" and k not in settings]:
                    del group[key]
                group.update(settings)
                for key, value in values.items():
                    settings[key].copy_(value)
        for key in ("step", "_opt_called"):
            if key in self.attrs:
                vars(self.optimizer)[key] = self.attrs[key]
            else:
                vars(self.optimizer).pop(key, None)


def _set_peak(groups: list[dict[str, Any]], peak: float, scales: list[float]) -> None:
    """Set each group's LR to ``peak`` times its ratio (a tensor LR in place) and drop ``initial_lr``, as a trial
    does before building its scheduler, so the scheduler takes these LRs as its base."""
    set_group_lrs(groups, [peak * scale for scale in scales])  # (a tensor LR in place; one shared: a copy each)
    for group in groups:
        group.pop("initial_lr", None)


def _schedule_peaks(make_scheduler: MakeScheduler, optimizer: torch.optim.Optimizer, steps: int) -> Any:
    """Build ``make_scheduler(optimizer, steps)`` and step it ``steps`` times: each group's highest LR, or the
    optimizer the scheduler is of when that is another one (not stepped), or ``None`` when it cannot be stepped
    (the trial's own call says why)."""
    scheduler = make_scheduler(optimizer, steps)
    owner = getattr(scheduler, "optimizer", optimizer)
    if owner is not optimizer:
        return owner
    if not callable(getattr(scheduler, "step", None)) or isinstance(
            scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return None
    peaks = [float(g["lr"]) for g in optimizer.param_groups]
    for _ in range(steps):
        if isinstance(optimizer, _ProbeOptimizer):
            optimizer.step()  # (marks the step taken: the scheduler's step-order check stays quiet)
        scheduler.step()
        peaks = [max(p, float(g["lr"])) for p, g in zip(peaks, optimizer.param_groups)]
    return peaks


def _step_failed(make_scheduler: MakeScheduler, built_over: int, done: int, error: Exception) -> ValueError:
    """The error for a scheduler from ``make_scheduler(optimizer, built_over)`` whose ``step()`` raised ``error``
    after optimizer step ``done``: whose scheduler it is, and where it failed."""
    name = getattr(make_scheduler, "__name__", type(make_scheduler).__name__)
    return ValueError(
        f"the scheduler from make_scheduler={name}(optimizer, {built_over}) failed at step {done} of "
        f"{built_over}: {type(error).__name__}: {error}; it must run for `steps` optimizer steps"
    )


def _dry_run_on_caller(
    make_scheduler: MakeScheduler, optimizer: torch.optim.Optimizer, scales: list[float], base: float, steps: int,
    saved: _OptimizerSettings,
) -> None:
    """Build ``make_scheduler(optimizer, steps)`` on the caller's optimizer at peak ``base`` and step it ``steps``
    times, as a trial of ``steps`` steps would (no parameter is stepped), then put the optimizer back (``saved``).
    Raises the error a trial would raise (:func:`_make_trial_scheduler`, :func:`_step_failed`) when it fails."""
    import warnings

    try:
        with warnings.catch_warnings():  # (the scheduler stepped before any optimizer step: torch warns)
            warnings.simplefilter("ignore")
            _set_peak(optimizer.param_groups, base, scales)
            scheduler = _make_trial_scheduler(make_scheduler, optimizer, steps)
            for done in range(1, steps + 1):
                try:
                    scheduler.step()
                except Exception as e:
                    if isinstance(e, torch.OutOfMemoryError):
                        raise
                    raise _step_failed(make_scheduler, steps, done, e) from e
    finally:
        saved.restore()


def _check_schedule_scales(
    make_scheduler: MakeScheduler, optimizer: torch.optim.Optimizer, scales: list[float], steps: int,
    exact: bool = False,
) -> None:
    """Refuse, before any compute, a ``make_scheduler`` whose schedule does not follow the LRs it is built on.

    Every trial sets the optimizer's LRs to its candidate and calls ``make_scheduler(optimizer, steps)``; a schedule
    that sets its own peak (``OneCycleLR(o, max_lr=0.1, ...)``, a spec with ``lr0=``, ``CyclicLR``'s ``max_lr``)
    trains every candidate at that peak, and the "choice" is noise. So the schedule is built at two base LRs
    (:data:`_PROBE_LRS`, times each group's ratio) and stepped ``steps`` times; each group's highest LR must scale as
    its base did. It is built on a stand-in (:class:`_ProbeOptimizer`: the caller's group settings on fresh tensors);
    a factory that builds on the caller's optimizer itself (a closure over it: the trials pass that very optimizer)
    is probed on it, and the optimizer is put back exactly (:class:`_OptimizerSettings`); no parameter is stepped. A
    factory that fails here is left to the trials (their error names it), unless ``exact`` (``steps`` is the length
    every trial builds its schedule over): then it is built and stepped on the caller's optimizer as a trial would,
    and a failure there, which every trial would meet, is raised now in the trial's words, before the range test
    spends its steps (:func:`_dry_run_on_caller`); one returning a scheduler of another
    optimizer is refused now, as a trial would refuse it. So a user's factory is called twice more than there are
    trials (four times when it closes over the caller's optimizer); lrkit's own factories are not probed.
    """
    import warnings

    if str(getattr(make_scheduler, "__module__", None) or "").startswith("lrkit."):
        # lrkit's own (lrkit.train's, the integrations' replays) build on the optimizer's LRs by construction, and
        # some count their calls to word their errors: not probed
        return
    name = getattr(make_scheduler, "__name__", type(make_scheduler).__name__)
    saved = _OptimizerSettings(optimizer)
    defaults = _copy_setting(dict(optimizer.defaults))
    peaks: list[list[float]] = []
    on_callers = False
    for base in _PROBE_LRS:
        try:
            # the probe's schedules are thrown away: the trials show whatever warnings the schedule gives
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if on_callers:
                    _set_peak(optimizer.param_groups, base, scales)
                    target: torch.optim.Optimizer = optimizer
                else:
                    groups = [{**{k: _copy_setting(v) for k, v in settings.items()},
                               "params": [torch.zeros(1, requires_grad=True)]} for settings in saved.groups]
                    _set_peak(groups, base, scales)
                    target = _ProbeOptimizer(groups, defaults)
                try:
                    found = _schedule_peaks(make_scheduler, target, steps)
                finally:
                    saved.restore()  # also when the factory built on the caller's optimizer instead of the stand-in
                if found is optimizer and not on_callers:  # a closure over the caller's: the trials pass it, probe it
                    on_callers = True
                    _set_peak(optimizer.param_groups, base, scales)
                    try:
                        found = _schedule_peaks(make_scheduler, optimizer, steps)
                    finally:
                        saved.restore()
        except Exception as e:  # the trials call the factory for real, and name it if it fails there
            if isinstance(e, torch.OutOfMemoryError):
                raise
            if exact:  # a failure on the trials' own optimizer and length fails every trial: said now
                _dry_run_on_caller(make_scheduler, optimizer, scales, base, steps, saved)
            return
        if found is None:
            return
        if isinstance(found, torch.optim.Optimizer):
            raise ValueError(
                f"make_scheduler={name} returned a scheduler of another optimizer ({type(found).__name__}), so the "
                "trials would not follow it; build the scheduler on the optimizer make_scheduler is given"
            )
        if len(found) != len(scales):  # a factory that adds groups: nothing to compare group by group
            return
        peaks.append(found)
    (low, high), ratio = _PROBE_LRS, _PROBE_LRS[1] / _PROBE_LRS[0]
    for i, (a, b, scale) in enumerate(zip(*peaks, scales)):
        if not (scale > 0 and math.isfinite(a) and math.isfinite(b) and a > 0):
            continue  # a frozen group (LR 0), or a schedule that never rises above 0 here: nothing to compare
        if math.isclose(b, ratio * a, rel_tol=1e-3):
            continue
        group = f" in param group {i}" if len(scales) > 1 else ""
        bases = (f"base LRs {low:g} and {high:g}" if scale == 1 else
                 f"base LRs {low:g} and {high:g} (this group's {low * scale:g} and {high * scale:g})")
        if math.isclose(a, b, rel_tol=1e-3):
            seen = f"reached the same peak {a:.3g}{group} for {bases}"
        else:
            seen = (f"peaked at {a:.3g} and {b:.3g}{group} for {bases}: x{b / a:.3g}, not x{ratio:g} as the LRs it "
                    "was built on")
        raise ValueError(
            f"make_scheduler={name} sets its own LRs: built before any compute over {steps} steps (as a trial "
            f"is), its schedule {seen}, so every "
            "candidate lr0='auto' tries would train at the schedule's LRs instead of its own and the choice would be "
            "noise. Build the schedule on the LRs of the optimizer it is given (each trial sets them to its "
            "candidate), leaving the peak out: OneCycleLR(optimizer, max_lr=[g['lr'] for g in "
            "optimizer.param_groups], total_steps=steps), lrkit.schedules.from_spec('onecycle', total_steps=steps)"
            ".to_torch(optimizer) (no lr0= or max_lr= in the spec), LambdaLR(optimizer, lambda t: ...), "
            "CosineAnnealingLR(optimizer, steps)"
        )


def _run_trial(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scales: list[float],
    peak: float,
    steps: int,
    batches: Iterator[Any],
    make_scheduler: MakeScheduler,
    loss_fn: Any,
    step_fn: Any,
    accumulate: int,
    max_grad_norm: float | None,
    device: torch.device,
    amp: bool | str = False,
    reference: float | None = None,
    prefix: _Prefix | None = None,
) -> tuple[int, bool, list[float]]:
    """Train ``steps`` steps at peak LR ``peak`` on the compressed schedule; return (steps run, diverged, losses).

    ``prefix`` (``search="prefix"``): the run's own schedule instead, built over ``prefix.total_steps`` and followed
    for its first ``prefix.steps`` steps, then each group's LR annealed linearly from where the schedule left it to
    zero over ``prefix.anneal`` steps (``steps`` is their sum).

    As the run would: ``amp`` autocast (with a GradScaler for float16 on CUDA), clipping, accumulation, and a
    closure for optimizers that need one (LBFGS). The trial stops at the first diverged loss (:func:`_diverged`:
    against its first loss and ``reference``, the typical starting loss, :func:`_start_reference`).
    """
    from lrkit.finder.range_test import _IN_SYNC, _defers_sync, _may_skip_sync, _needs_closure, _step_mean

    _set_peak(optimizer.param_groups, peak, scales)  # (initial_lr dropped: the new scheduler takes these as its base)
    built_over = prefix.total_steps if prefix is not None else steps
    scheduler = _make_trial_scheduler(make_scheduler, optimizer, built_over)
    at_prefix: list[float] = []  # each group's LR where the schedule's prefix ends (prefix trials)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    autocast, use_scaler = autocast_context(amp, device)
    scaler = torch.amp.GradScaler(device.type) if use_scaler else None
    needs_closure = _needs_closure(optimizer)
    dist_on = distributed()
    train_mode(model)  # as find_lr: a module put in eval mode inside a training model stays so
    _set_opt_mode(optimizer, train=True)  # a schedule-free optimizer refuses to step in eval mode (it is built so)
    losses: list[float] = []
    first = None

    # under DistributedDataParallel the gradients are averaged over the ranks once per optimizer step, at its last
    # micro-batch, as a training loop does (no_sync on the others; find_lr's range test does the same)
    defer = accumulate > 1 and _defers_sync(model)

    def forward_backward(micro: list[Any], syncs: bool = True) -> float:
        """The summed loss of ``micro``'s batches, their gradients accumulated; ``syncs``: its last batch is the
        optimizer step's last, whose backward averages the gradients over the ranks (under DDP)."""
        total = 0.0
        last = len(micro) - 1 if syncs else len(micro)
        for j, batch in enumerate(micro):
            with model.no_sync() if defer and j < last and _may_skip_sync(model) else _IN_SYNC:
                with autocast:
                    loss = batch_loss(model, move_to(batch, device), loss_fn, step_fn)
                scaled = loss / accumulate
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            total += float(loss.detach())
        if max_grad_norm is not None and needs_closure:
            clip_grad_norm_(params, max_grad_norm, model=model)  # sparse gradients too (LBFGS steps them)
        return total

    def draw() -> tuple[list[Any] | None, Exception | None]:
        """(torch.distributed) The next step's micro-batches, or the error drawing them raised (raised by
        ``_step_mean`` once every rank has heard of it: a loader failing on one rank only stops every rank)."""
        try:
            return [next(batches) for _ in range(accumulate)], None
        except Exception as e:
            return None, e

    upcoming: list[Any] | None = None  # (torch.distributed) the next step's batches, drawn before its loss all-reduce
    if dist_on and steps:  # the first step's: agreed on every rank before any gradient all-reduce
        upcoming, error = draw()
        _step_mean(0.0, error, device, call="choose_lr0")
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        if upcoming is not None:  # (the same batches as below, drawn a step ahead)
            micro, upcoming = upcoming, None
            value = forward_backward(micro) / accumulate
        elif needs_closure:  # the closure re-evaluates the same micro-batches
            micro = [next(batches) for _ in range(accumulate)]
            value = forward_backward(micro) / accumulate
        else:  # batch by batch, as the run draws them
            total = 0.0
            for k in range(accumulate):
                total += forward_backward([next(batches)], syncs=k == accumulate - 1)
            value = total / accumulate
        if dist_on:  # the mean over ranks, as find_lr's curve: every rank stops (or scores) the trial alike
            error = None
            if step + 1 < steps:
                upcoming, error = draw()
            value = _step_mean(value, error, device, call="choose_lr0")
        losses.append(value)
        if first is None:
            first = value
        if _diverged(value, first, reference):
            return step + 1, True, losses
        closure = None
        if needs_closure:

            def closure(micro: list[Any] = micro) -> torch.Tensor:
                optimizer.zero_grad(set_to_none=True)
                loss = forward_backward(micro) / accumulate
                # the mean over ranks under torch.distributed, as find_lr's closure: LBFGS's line search and
                # tolerance_change test read it, so every rank takes the same number of evaluations (DDP all-reduces)
                return torch.tensor(rank_mean(loss, device) if dist_on else loss)

        optimizer_step(optimizer, params, closure=closure, scaler=scaler, max_grad_norm=max_grad_norm, model=model)
        done = step + 1  # optimizer steps taken: the LR set now is the next step's
        if prefix is None or done <= prefix.steps:
            try:
                scheduler.step()
            except Exception as e:  # the user's scheduler: say whose it is
                raise _step_failed(make_scheduler, built_over, done, e) from e
        if prefix is not None and done >= prefix.steps:  # the anneal: from the schedule's LRs at the prefix's end
            if done == prefix.steps:
                at_prefix = [float(g["lr"]) for g in optimizer.param_groups]
            _set_lrs(optimizer.param_groups, at_prefix, max(0.0, 1.0 - (done - prefix.steps + 1) / prefix.anneal))
    return steps, False, losses


class _Prefix(NamedTuple):
    """A prefix trial's plan (``search="prefix"``): the run's schedule over ``total_steps``, followed for ``steps``
    steps, then a linear anneal to zero over ``anneal`` steps."""

    total_steps: int
    steps: int
    anneal: int

    @classmethod
    def of(cls, total_steps: int) -> _Prefix:
        """The plan for a run of ``total_steps``: ``round(PREFIX_FRACTION · T)`` and ``round(ANNEAL_FRACTION · T)``
        steps, each at least 1.

        >>> _Prefix.of(1000)
        _Prefix(total_steps=1000, steps=200, anneal=50)
        """
        return cls(total_steps, max(1, round(PREFIX_FRACTION * total_steps)),
                   max(1, round(ANNEAL_FRACTION * total_steps)))


def _set_lrs(groups: list[dict[str, Any]], lrs: list[float], factor: float) -> None:
    """Set each group's LR to ``factor`` times its entry of ``lrs`` (a tensor LR in place)."""
    set_group_lrs(groups, [lr * factor for lr in lrs])


def _pick(trials: list[Trial], spacing: float = SPACING) -> tuple[float, str]:
    """The LR to choose from the scored trials, and how it was read off them.

    The best trial (ties: the lower LR), refined by the vertex of a parabola through it and its two neighbours in
    log-LR space when it has a finite neighbour on each side; the vertex is kept between those neighbours' midpoints
    (in log space: a quarter decade for candidates half a decade apart). When every trial diverged: ``spacing``
    below the lowest (the candidates' ratio).

    >>> _pick([Trial(0.01, 1.0, 10), Trial(0.1, 0.5, 10), Trial(1.0, 2.0, 10)])[0] < 0.1
    True
    >>> round(_pick([Trial(0.1, math.inf, 3), Trial(1.0, math.inf, 2)], spacing=10**0.5)[0], 4)
    0.0316
    """
    ordered = sorted(trials, key=lambda t: t.lr)
    scores = [t.val_loss for t in ordered]
    finite = [i for i, v in enumerate(scores) if math.isfinite(v)]
    if not finite:
        lowest = ordered[0].lr
        return lowest / spacing, f"every candidate diverged, so one step below the lowest ({lowest:.3g})"
    best = min(finite, key=lambda i: (scores[i], ordered[i].lr))  # ties: the lower LR
    lr_best = ordered[best].lr
    if 0 < best < len(ordered) - 1 and all(math.isfinite(scores[i]) for i in (best - 1, best + 1)):
        x = np.log([ordered[i].lr for i in (best - 1, best, best + 1)])
        y = np.array([scores[i] for i in (best - 1, best, best + 1)])
        a, b, _ = np.polyfit(x, y, 2)
        if a > 0:
            lo = 0.5 * (x[0] + x[1])
            hi = 0.5 * (x[1] + x[2])
            vertex = float(np.clip(-b / (2 * a), lo, hi))
            how = f"the vertex of a parabola through the best trial ({lr_best:.3g}) and its neighbours"
            return float(np.exp(vertex)), how
    edge = ""
    if best == 0:
        edge = " (the lowest candidate)"
    elif best == len(ordered) - 1:
        edge = " (the highest candidate)"
    return lr_best, f"the best trial{edge}"


@named_keywords
def choose_lr0(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    *,
    total_steps: int,
    make_scheduler: MakeScheduler,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    step_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
    budget: float | None = None,
    num_candidates: int | None = None,
    seed: int = 0,
    finder_kwargs: dict[str, Any] | None = None,
    accumulate: int = 1,
    max_grad_norm: float | None = None,
    log: Callable[[str], None] | None = None,
    snapshot_device: torch.device | str | None = None,
    search: str = "guard",
) -> AutoLR:
    """Choose the peak LR for a run of ``total_steps`` optimizer steps under ``make_scheduler``'s schedule.

    1. The LR range test (:func:`lrkit.find_lr`), ``FINDER_FRACTION * total_steps`` steps long, suggests ``s``.
    2. Confirmation trials, each ``trial_steps`` long, from the same starting state with the same batches and
       seed, under ``make_scheduler(optimizer, trial_steps)`` (the run's schedule compressed to the trial), scored
       by the validation loss ``L``. With ``L0`` the loss before training and ``d = SPACING``:

       * ``s`` diverges → try ``s/d, s/d², ...`` until one trains;
       * ``s`` does not learn (``L(s) > (1 - MIN_PROGRESS) · L0``) → try ``s·d², s·d⁴, ...`` and take the first
         that learns (not the best-scoring one: the short run's bias towards higher LRs); a candidate that diverges
         ends the climb, and the next ones halve the log-distance between it and the highest that trained;
       * otherwise → ``s`` is used as it is (:data:`STEP_DOWN_MARGIN` ``= inf``, the default: one trial). With a
         finite margin → try ``s/d, s/d², ...`` while each beats the one above it by the margin.

       A short run's best LR is not the full run's (usually larger, sometimes far smaller out of sample), so a
       candidate that wins a short trial is not followed; only divergence and a failure to learn move ``s``.
    3. When the guard moved: the best trial (ties: the lower LR), refined by the vertex of a parabola through it and
       its neighbours in log-LR space when it has one on each side.

    The extra compute — range test plus trials, in optimizer steps (forward + backward), including a step whose
    loss diverged — never exceeds ``budget * total_steps``; validation passes are forward-only and not counted.

    ``search="prefix"`` (opt-in; about **1.5 runs** of extra compute, five times the default's): the range test as
    above (a quarter of the run) suggests ``s``; five trials at ``s · 10^(k/2)``, ``k = -2..2``, each the run's *real*
    schedule (``make_scheduler(optimizer, total_steps)``) for its first ``round(0.2 · total_steps)`` steps, then a
    linear anneal to zero over ``round(0.05 · total_steps)``, from the same start, batches and seed, scored on the
    validation loss; the best (ties: the lower LR), refined by the parabola through it and its neighbours in log-LR
    (kept within a quarter decade of it); every trial diverged: ``s / 10^1.5``. Pre-registered and measured
    (docs/benchmarks/auto_lr.md): lower regret than the guard where ``s`` is far off, but it drifts high on tasks
    that memorise their training set. Its cost is fixed: ``budget`` and ``num_candidates`` do not apply.

    ``optimizer``'s param groups keep their ratios (``lr_scale``, or their LRs relative to the largest); the
    returned ``lr`` is the peak (ratio 1) LR.

    Under ``torch.distributed`` call it on every rank with its shard and the same settings: the losses are averaged
    over ranks, so every rank chooses the same LR; settings that differ between ranks (``total_steps``, ``budget``,
    ...) and a rank whose ``val_loader`` is empty stop every rank at once with an error naming them.

    Args:
        model, optimizer, train_loader: as for :func:`lrkit.find_lr`; the optimizer's current LRs are ignored.
        val_loader: batches to score trials on (``None``: the mean training loss over each trial's last fifth). A
            one-shot iterator is read once into a list, so every trial is scored on the same batches.
        total_steps: the run's length in optimizer steps.
        make_scheduler: ``make_scheduler(optimizer, steps) -> LRScheduler``: the run's schedule over ``steps``
            steps, built on the optimizer's current LRs as the peak (as ``LambdaLR`` does). It is called once per
            trial on the optimizer it is given; a failure, a result without ``.step()``, a ``ReduceLROnPlateau``
            (metric-driven: no step schedule to compress) or a scheduler of another optimizer is a ``ValueError``
            naming ``make_scheduler``. Before any compute it is also called twice on a stand-in optimizer (the
            optimizer's group settings at base LRs 1 and 10): a schedule whose peak does not follow the LRs it is
            built on (``OneCycleLR(o, max_lr=0.1, ...)``, a spec with ``lr0=``) would train every candidate at its
            own peak, and is a ``ValueError`` saying what it reached.
        loss_fn, step_fn: how to get a batch's loss (``loss_fn(model(x), y)`` or ``step_fn(model, batch)``).
        budget: the most extra compute, as a fraction of ``total_steps`` (default 0.3 = 30% of one run);
            ``search="guard"`` only.
        num_candidates: the most confirmation trials (default 3; fewer when the budget is small or the search stops
            early); ``search="guard"`` only.
        seed: seeds torch/numpy/python and the train loader's generator(s) (the loader's and its sampler's) before
            each trial, so every candidate sees the same batches and randomness (differences are the LR's, not
            noise). The range test runs on the caller's RNG state, as :func:`lrkit.find_lr` does: seed before the
            call for a reproducible choice (``lrkit.train`` does).
        finder_kwargs: extra arguments for :func:`lrkit.find_lr` (``num_steps``, ``start_lr``, ``end_lr``, ``rule``,
            ``amp``, ...); ``amp`` applies to the trials and their validation passes too, as in the run.
        accumulate: micro-batches per optimizer step (gradient accumulation), as in the run.
        max_grad_norm: clip the global gradient norm at each step, as the run does (optional).
        log: called with one line per stage and per trial (e.g. ``print``).
        snapshot_device: where the one in-memory copy of the starting state (which the range test and every trial
            start from, and which is restored at the end) is kept: ``None`` on each tensor's own device, ``"cpu"``
            in host memory (see :func:`lrkit.find_lr`). ``finder_kwargs={"snapshot_device": ...}`` says the same
            (the range test shares this copy).
        search: ``"guard"`` (default: the range test and up to ``num_candidates`` short trials within ``budget``)
            or ``"prefix"`` (the range test and five prefix trials: about 1.5 runs; see above).

    Returns:
        :class:`AutoLR` with ``lr``, ``finder``, ``trials``, ``extra_steps``, ``extra_fraction`` and ``reason``.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(4, 1)
        >>> data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(8)]
        >>> opt = torch.optim.Adam(model.parameters())
        >>> sched = lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / n)
        >>> auto = choose_lr0(model, opt, data, data[:2], total_steps=400, make_scheduler=sched)
        >>> auto.lr > 0 and auto.extra_steps <= 120
        True
    """
    from lrkit.finder import find_lr
    from lrkit.finder.range_test import (
        _CALLER_SNAPSHOT,
        _QUALITY_WORDS,
        _check_arguments,
        _check_materialized,
        _check_sweepable,
        _checks_failed_on_this_rank,
        _close,
        _loader_epochs,
        _loader_generators,
        _OwnWorkers,
        group_scales,
    )

    # the argument checks, before the first collective: a bad value on one rank only must stop every rank
    try:
        # before the snapshot touches them: a swapped argument or a lazy module's parameters would fail inside it
        _check_arguments(model, optimizer, train_loader, loss_fn, step_fn, warn=False,
                         order="choose_lr0(model, optimizer, train_loader, val_loader, *, total_steps, ...)")
        _check_materialized(model, "choose_lr0")
        reshard(model)  # FSDP2's root after a forward without backward: the snapshot must see the sharded parameters
        _check_sweepable(optimizer, "choose_lr0 (lr0='auto')")
        total_steps = _check_total_steps(total_steps)
        search = _check_search(search, budget, num_candidates)
        budget = _prefix_cost() if search == "prefix" else 0.3 if budget is None else check_positive("budget", budget)
        num_candidates = len(PREFIX_EXPONENTS) if search == "prefix" else _check_num_candidates(
            3 if num_candidates is None else num_candidates)
        accumulate = _check_int("accumulate", accumulate, 1)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not -(2**63) <= seed < 2**64:
            raise ValueError(f"seed={seed!r} must be an integer in [-2**63, 2**64) (torch's seed range)")
        seed = int(seed)
        _check_make_scheduler(make_scheduler)
        _check_val_loader(val_loader, step_fn)
        if log is not None and not callable(log):
            raise ValueError(f"log={log!r} must be a callable taking one line of text (e.g. print), or None")
        if max_grad_norm is not None:
            max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
        if SEARCH not in ("guard", "bracket"):
            raise ValueError(f"lrkit.train.auto.SEARCH={SEARCH!r} must be 'guard' or 'bracket'")
        margin = STEP_DOWN_MARGIN
        if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not margin >= 0:
            raise ValueError(
                f"lrkit.train.auto.STEP_DOWN_MARGIN={margin!r} must be a number >= 0 (a fraction of the validation "
                "loss, e.g. 0.02; 0 follows any win, math.inf never steps down on a win)"
            )
        for name, flag in (("DIP_AND_PASSES", DIP_AND_PASSES), ("NOISE_SCALING", NOISE_SCALING)):
            if not isinstance(flag, (bool, np.bool_)):  # a string "false" would read as on
                raise ValueError(f"lrkit.train.auto.{name}={flag!r} must be True or False")
        finder_kwargs = _check_finder_kwargs(finder_kwargs, find_lr)
        snapshot_device = check_snapshot_device(snapshot_device)
        if "snapshot_device" in finder_kwargs:  # the range test shares the one snapshot: one device for it
            asked = check_snapshot_device(finder_kwargs["snapshot_device"], "finder_kwargs snapshot_device")
            if snapshot_device is not None and asked != snapshot_device:
                raise ValueError(
                    f"snapshot_device={str(snapshot_device)!r} and finder_kwargs snapshot_device="
                    f"{str(asked) if asked is not None else None!r} disagree: the range test shares lr0='auto''s one "
                    "snapshot; give one of them"
                )
            snapshot_device = asked
        finder_kwargs["snapshot_device"] = snapshot_device
    except Exception:
        if distributed():  # the other ranks are on their way into the settings check: stop them there
            failed_check("choose_lr0", _SAME_ON_EVERY_RANK, model, all_reduce=_settings_all_reduce)
        raise
    settings = _settings(search)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if log is not None:
            log(line)

    first_param = next(iter(model.parameters()), None)
    device = first_param.device if first_param is not None else torch.device("cpu")
    empty_val = val_loader is not None and _sized_empty(val_loader)
    failed: dict[int, int] = {}
    if distributed():  # before the budget's checks and any compute: a total_steps too short on one rank only, or
        # ranks that would run different trials, or cannot score them, stop every rank together, naming them
        failed = _same_on_every_rank(device, empty_val, total_steps=total_steps, budget=budget,
                                     num_candidates=num_candidates, accumulate=accumulate, max_grad_norm=max_grad_norm,
                                     val_loader_given=val_loader is not None, search=search)
    # checks of settings the ranks may still give differently (finder_kwargs' num_steps and amp): the next collective
    # is the range test's settings check, so a rank failing one stops the others there
    try:
        prefix = _Prefix.of(total_steps) if search == "prefix" else None
        # search="prefix": the range test takes its share of the run, as a budget of that share would give it
        plan = plan_budget(total_steps, PREFIX_RANGE_FRACTION if prefix else budget, num_candidates)
        if plan.budget_steps < MIN_NUM_STEPS and "num_steps" not in finder_kwargs and prefix is not None:
            if _FOR_LRKIT_TRAIN.get():  # lrkit.train's auto_budget is at most 1
                guard = _guard_hint(total_steps, "auto_search", "auto_budget", most=1.0)
                fix = f"train longer (more epochs or a smaller batch/nbs), {guard + ', ' if guard else ''}or pass an " \
                      "explicit lr0"
            else:
                fix = f"choose for a longer run (a larger total_steps), or {_guard_hint(total_steps)}"
            raise ValueError(
                f"{_PREFIX_WORDS[_FOR_LRKIT_TRAIN.get()]} needs at least {MIN_NUM_STEPS} optimizer steps for its "
                f"range test ({PREFIX_RANGE_FRACTION:g} of the run), but total_steps={total_steps} allows "
                f"{plan.budget_steps}: it needs a run of at least {_prefix_shortest_run()} steps; {fix}"
            )
        if plan.budget_steps < MIN_NUM_STEPS and "num_steps" not in finder_kwargs:
            need = math.ceil(MIN_NUM_STEPS / total_steps * 100) / 100
            if _FOR_LRKIT_TRAIN.get():  # in lrkit.train's words: its auto_budget, lr0
                # auto_budget is at most 1 (one extra run): past that, only a longer run (or an explicit lr0) helps
                fix = (f"raise budget (auto_budget= in lrkit.train) to at least {need:g}, train longer" if need <= 1
                       else f"train longer (at least {math.ceil(MIN_NUM_STEPS / budget)} optimizer steps at "
                       f"budget={budget:g}; more epochs or a smaller batch/nbs)")
                raise ValueError(
                    f"lr0='auto' needs at least {MIN_NUM_STEPS} extra optimizer steps for its range test, but "
                    f"budget={budget:g} (lrkit.train's auto_budget) x "
                    f"total_steps={total_steps} allows {plan.budget_steps}; {fix}, or pass an explicit lr0"
                )
            raise ValueError(
                f"choose_lr0 needs at least {MIN_NUM_STEPS} extra optimizer steps for its range test, but "
                f"budget={budget:g} x "
                f"total_steps={total_steps} allows {plan.budget_steps}; raise budget= to at least {need:g}, choose for "
                "a longer run (a larger total_steps), or use lrkit.find_lr (the range test alone); budget may exceed "
                "1"
            )
        num_steps = finder_kwargs.get("num_steps", 0)
        if isinstance(num_steps, numbers.Real) and not isinstance(num_steps, bool) and num_steps > plan.budget_steps:
            if prefix is not None:
                raise ValueError(
                    f"finder_kwargs num_steps={finder_kwargs['num_steps']} exceeds the range test's share of "
                    f"search='prefix': {PREFIX_RANGE_FRACTION:g} x total_steps={total_steps} = {plan.budget_steps} "
                    "steps; lower num_steps"
                )
            raise ValueError(
                f"finder_kwargs num_steps={finder_kwargs['num_steps']} exceeds the extra budget of {plan.budget_steps} "
                f"steps (budget={budget:g} x total_steps={total_steps}); lower num_steps or raise budget"
            )
        finder_kwargs.setdefault("num_steps", plan.finder_steps)
        finder_kwargs.setdefault("start_lr", FINDER_START_LR)
        finder_kwargs.setdefault("end_lr", FINDER_END_LR)
        given = {k: finder_kwargs[k] for k in ("accumulation_steps", "max_grad_norm") if k in finder_kwargs}
        if max_grad_norm is not None:
            finder_kwargs.setdefault("max_grad_norm", max_grad_norm)
        if accumulate > 1:
            finder_kwargs.setdefault("accumulation_steps", accumulate)
        for key, run_value in (("accumulation_steps", accumulate), ("max_grad_norm", max_grad_norm)):
            if key in given and given[key] != (run_value if key == "max_grad_norm" or run_value > 1 else 1):
                what = "batches per optimizer step" if key == "accumulation_steps" else "gradient clipping"
                run = "accumulate" if key == "accumulation_steps" else "max_grad_norm"
                say(f"lr0=auto: note — finder_kwargs {key}={given[key]!r} differs from the run's {run}="
                    f"{run_value!r}: the range test runs with other {what} than the trials and the run, and its "
                    "suggestion is for those")

        amp = finder_kwargs.get("amp", False)
        autocast, _ = autocast_context(amp, device)  # checks the setting before any work
        # a schedule that sets its own peak trains every candidate at it: refused now, not after the range test
        probe = prefix.total_steps if prefix is not None else plan.trial_steps or min(MIN_TRIAL_STEPS, total_steps)
        _check_schedule_scales(make_scheduler, optimizer, group_scales(optimizer), min(probe, _PROBE_MAX_STEPS),
                               exact=prefix is None and plan.num_trials >= 2 and probe <= _PROBE_MAX_STEPS)
    except Exception:
        if distributed() and not failed:  # (failed: the others have stopped already)
            _checks_failed_on_this_rank(model)
        raise
    if empty_val:  # before any compute is spent
        raise ValueError(_EMPTY_VAL.format(what=f"it is empty: len(val_loader) == 0, {type(val_loader).__name__}"))
    if isinstance(val_loader, Iterator):  # a one-shot iterator: every trial is scored on the same batches
        kind = type(val_loader).__name__
        val_loader = list(val_loader)
        if not val_loader:  # as an empty sized one, before any compute
            if distributed():  # every rank needs batches (a rank without any would leave the others in the
                # collectives of their scoring passes: DDP's buffer broadcast, FSDP's all-gathers): the others are on
                # their way into the range test's settings check, and stop there naming this rank
                _checks_failed_on_this_rank(model)
            raise ValueError(_EMPTY_VAL.format(what=f"it is a one-shot {kind} that yielded nothing"))
        say(f"lr0=auto: val_loader is a one-shot iterator; its {len(val_loader)} batches are kept to score every "
            "trial on them")
    if isinstance(train_loader, Iterator):
        say("lr0=auto: note — train_loader is a one-shot iterator, so each trial draws fresh batches from it and "
            "the candidates are compared on different batches; pass a re-iterable loader (a DataLoader or a list) "
            "for a like-for-like comparison")
    generators = _loader_generators(train_loader)  # the loader's and its sampler's: iterating advances them
    # a shuffling val_loader's generators advance on every scoring pass: put them back too (not reseeded per trial:
    # a validation loss does not depend on the order of its batches)
    val_generators = _loader_generators(val_loader) if val_loader is not None else []
    gen_states = [(g, g.get_state()) for g in dict.fromkeys([*generators, *val_generators])]
    epochs = _loader_epochs(train_loader, val_loader)  # accelerate's prepared loaders' pass counters
    # a scheduler wraps optimizer.step in an instance attribute (torch's step-order check): put back what was there
    had_step = "step" in vars(optimizer)
    own_step = vars(optimizer).get("step")
    snapshot = Snapshot.capture(model, optimizer, rng=True, device=snapshot_device)
    trials: list[Trial] = []
    plan_line = _range_test_plan(finder_kwargs, total_steps, train_loader)
    if plan_line is not None:
        say(plan_line)
    # persistent-workers loaders: the user's workers are put aside untouched; each trial starts workers of its own,
    # seeded from the trial's seed (workers that ran on from trial to trial would give each other augmentations)
    train_workers = _OwnWorkers(train_loader)
    val_workers = _OwnWorkers(val_loader)
    try:
        # the range test starts from the state just captured and restores it from this snapshot: one copy, not two
        token = _CALLER_SNAPSHOT.set(snapshot)
        # the range test's warnings name its settings as the caller sets them (an integration sets its own words)
        words = _QUALITY_WORDS.get()
        if words is None:
            words = ({}, _NOT_IN_LRKIT_TRAIN) if _FOR_LRKIT_TRAIN.get() else (_FINDER_KWARGS_NAMES, "")
        words_token = _QUALITY_WORDS.set(words)
        try:
            try:
                finder = find_lr(model, optimizer, train_loader, loss_fn=loss_fn, step_fn=step_fn, **finder_kwargs)
            finally:
                _CALLER_SNAPSHOT.reset(token)
            s = _suggestion(finder)  # a curve too short to read: its error in the same words
        finally:
            _QUALITY_WORDS.reset(words_token)
        used = finder.num_steps_run
        say(
            f"lr0=auto: range test ({used} steps, {finder.start_lr:g}..{finder.end_lr:g}, "
            f"{finder.stop_reason}) suggests {s:.3g}"
        )
        plan = plan_budget(total_steps, budget, num_candidates, finder_steps_run=used)
        if prefix is not None:  # five trials of fixed length, whatever the range test used
            plan = BudgetPlan(plan.budget_steps, plan.finder_steps, len(PREFIX_EXPONENTS), prefix.steps + prefix.anneal)
        if plan.num_trials < 2:
            reason = (
                f"range test ({used} steps) suggested {s:.3g}; the budget ({plan.budget_steps} extra steps = "
                f"{budget:g} x {total_steps}) leaves no room for 2 trials of {MIN_TRIAL_STEPS}+ steps, so the "
                "suggestion is used as is"
            )
            say(f"lr0=auto: {reason}")
            lr = s
        else:
            scales = group_scales(optimizer)
            reference = _start_reference(finder)  # the trials' divergence check: see _diverged
            steps = plan.trial_steps
            bracket = SEARCH == "bracket" and prefix is None
            horizon = (total_steps / steps) ** HORIZON_EXPONENT if bracket else 1.0
            scored_on = "validation" if val_loader is not None else "training"
            if val_loader is not None:
                _set_opt_mode(optimizer, train=False)  # scored on the weights a schedule-free run validates
                start_loss: float | None = _val_loss(model, val_loader, loss_fn, step_fn, device, autocast)
            else:
                start_loss = None
            snapshot.restore()
            # without a val_loader, the reference is the training loss at the starting weights: the median of the
            # range test's first losses (several batches at a tiny LR, so neither one easy batch nor a short trial's
            # few first batches can set it), against the score's mean over each trial's last fifth. Without those,
            # the first trial that trains sets it: its mean training loss over its first fifth.
            if start_loss is not None:
                start: list[Any] = [start_loss, "before training"]
            elif reference is not None and math.isfinite(reference):
                start = [reference, f"at the start (the median of the range test's first {REFERENCE_STEPS} losses)"]
            else:
                start = [None, "in its first fifth"]
            if prefix is not None:
                shape = (f"the run's schedule for its first {prefix.steps} steps, then a linear anneal to zero over "
                         f"{prefix.anneal}")
                what = (f"{plan.num_trials} trials of {steps} steps at {s:.3g} x 10^(k/2), k={PREFIX_EXPONENTS[0]}.."
                        f"{PREFIX_EXPONENTS[-1]} ({shape})")
            else:
                shape = f"the run's schedule compressed {total_steps / steps:.0f}x"
                what = f"up to {plan.num_trials} trials of {steps} steps ({shape})"
            say(
                f"lr0=auto: {what}, scored on {scored_on} loss"
                + (" (the last fifth of each trial's steps)" if val_loader is None else "")
                + (f" (before training: {start_loss:.5g})" if start_loss is not None else "")
            )

            def run(peak: float) -> Trial:
                snapshot.restore()
                _seed_everything(seed, generators)
                train_workers.fresh()
                batches = cycle_batches(train_loader, "train_loader")
                try:
                    n, diverged, losses = _run_trial(
                        model, optimizer, scales, peak * horizon, steps, batches, make_scheduler, loss_fn, step_fn,
                        accumulate, max_grad_norm, device, amp, reference, prefix,
                    )
                finally:
                    _close(batches)  # its worker processes go now, also when an exception's traceback is kept
                if diverged:
                    score = math.inf
                elif val_loader is not None:
                    _set_opt_mode(optimizer, train=False)
                    score = _val_loss(model, val_loader, loss_fn, step_fn, device, autocast)
                else:
                    score = float(np.mean(losses[-max(1, len(losses) // 5) :]))
                trial = Trial(float(peak), float(score), int(n))
                trials.append(trial)
                say(f"lr0=auto: trial lr={peak:.3g}: {'diverged' if diverged else f'loss {score:.5g}'} ({n} steps)")
                if start[0] is None and losses and not diverged:  # no val_loader: see `start`
                    start[0] = float(np.mean(losses[: max(1, len(losses) // 5)]))
                return trial

            if prefix is not None:
                for k in PREFIX_EXPONENTS:  # every candidate, lowest first
                    run(s * PREFIX_SPACING**k)
                lr, how = _pick(trials, spacing=PREFIX_SPACING)
            elif SEARCH == "guard":
                lr, how = _guard(s, run, plan.num_trials, start)
            else:
                lr, how = _bracket(s, run, plan.num_trials)
            listing = ", ".join(
                f"{t.lr:.3g} ({'diverged' if not math.isfinite(t.val_loss) else f'{t.val_loss:.4g}'})"
                for t in sorted(trials, key=lambda t: t.lr)
            )
            reason = (
                f"range test ({used} steps) suggested {s:.3g}; {len(trials)} trial{'s' if len(trials) != 1 else ''} of "
                f"{steps} steps ({shape}) scored {listing}; "
                f"chose {lr:.3g}: {how}"
            )
            say(f"lr0=auto: chose {lr:.3g} — {how}")
    except BaseException:  # a forward or backward stopped part-way leaves FSDP2's root mid-iteration: reset it
        reshard(model, after_error=True)
        raise
    finally:
        reshard(model)  # (a trial or a validation pass that stopped on an exception can leave FSDP2's root unsharded)
        snapshot.restore()
        # freed now, also while a caller keeps an exception's traceback (and this frame, and `run`'s cell)
        snapshot = None  # type: ignore[assignment]
        for gen, state in gen_states:
            gen.set_state(state)
        for loader, epoch in epochs:
            loader.iteration = epoch
        if had_step:
            vars(optimizer)["step"] = own_step
        else:
            vars(optimizer).pop("step", None)
        try:
            val_workers.restore()
        finally:
            train_workers.restore()
    extra = int(finder.num_steps_run + sum(t.steps for t in trials))
    auto = AutoLR(
        lr=float(lr),
        finder=finder,
        trials=trials,
        extra_steps=extra,
        extra_fraction=extra / total_steps,
        reason=reason,
        trial_steps=plan.trial_steps,
        log_lines=lines,
    )
    auto._used_suggestion = float(s)  # type: ignore[attr-defined]  # what to_dict() records (not a field: README)
    auto._settings = settings  # type: ignore[attr-defined]  # the module settings the choice was made under
    return auto


#: How a too-short run's error names ``search="prefix"``: by ``choose_lr0``'s argument, or by ``lrkit.train``'s key.
_PREFIX_WORDS = {False: "choose_lr0(search='prefix')", True: "lr0='auto' with auto_search='prefix'"}

#: The settings every rank must give ``choose_lr0`` alike, in the order :func:`_same_on_every_rank` sends them.
_SAME_ON_EVERY_RANK = ("total_steps", "budget", "num_candidates", "accumulate", "max_grad_norm", "val_loader_given",
                       "search")

#: ``same_settings``'s ``failed`` code of a rank whose ``val_loader`` is empty (1: its argument checks failed).
_EMPTY_VAL_SHARD = 2


def _settings_all_reduce(t: torch.Tensor) -> None:
    from lrkit._dist import named_all_reduce as _all_reduce

    _all_reduce(t, "lr0='auto''s settings", call="choose_lr0")


def _same_on_every_rank(device: torch.device, empty_val: bool, **settings: Any) -> dict[int, int]:
    """Under torch.distributed: every rank must run the same range test and trials (``total_steps``, ``budget``, ...
    decide how many steps each runs: a rank with other ones would leave the others in a collective), and score them
    alike. One small all-reduce; a mismatch raises the same error on every rank, naming the settings, and a rank
    whose ``val_loader`` is empty (it raises its own error after this) or whose argument checks failed (it raised its
    own error before this, taking part as a failed rank) is named on the others, at once rather than after the process
    group's timeout. Returns the failed ranks (this one among them: it raises its own error next)."""
    assert tuple(settings) == _SAME_ON_EVERY_RANK  # every rank's row must line up: the keys, in this order
    failed = same_settings("choose_lr0", settings, device, failed=_EMPTY_VAL_SHARD if empty_val else False,
                           names={"search": SEARCHES}, all_reduce=_settings_all_reduce)
    if failed and not empty_val:
        empty = [r for r, code in failed.items() if code == _EMPTY_VAL_SHARD]
        checks = [r for r, code in failed.items() if code != _EMPTY_VAL_SHARD]
        shards = (f"rank {', '.join(map(str, empty))}'s val_loader has no batches (see that rank's error); every rank "
                  "needs a non-empty val_loader shard when one is given")
        if not checks:
            raise ValueError(f"choose_lr0 under torch.distributed stopped on every rank: {shards}")
        error = failed_error("choose_lr0", checks)
        raise ValueError(f"{error}; and {shards}") if empty else error
    return failed


def _range_test_plan(finder_kwargs: dict[str, Any], total_steps: int, train_loader: Any) -> str | None:
    """The log line said before the range test: its length (a quarter of a huge run can take long), its LR range, and
    how many passes over ``train_loader`` that is when the loader has a length. ``None`` when a setting is not a
    number (``find_lr`` names it right after)."""
    steps, acc = finder_kwargs["num_steps"], finder_kwargs.get("accumulation_steps", 1)
    start, end = finder_kwargs["start_lr"], finder_kwargs["end_lr"]
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in (steps, acc)) or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (start, end)
    ):
        return None
    try:
        n = len(train_loader)
    except TypeError:  # no len(): an iterable dataset, a generator
        n = 0
    shard = " per rank" if distributed() else ""  # each rank's loader holds its shard
    count = f"{steps * acc / n:.3g}" if n > 0 else ""
    word = "pass" if count == "1" else "passes"
    passes = f", {count} {word} over train_loader ({n} batches{shard})" if n > 0 else ""
    return (f"lr0=auto: range test of {steps} steps ({steps / total_steps:.3g} of the {total_steps}-step run"
            f"{passes}), {float(start):g}..{float(end):g}")  # (float: a Fraction has no :g before Python 3.12)


def _check_finder_kwargs(finder_kwargs: Any, find_lr: Callable[..., Any]) -> dict[str, Any]:
    """A copy of ``finder_kwargs`` whose keys are :func:`lrkit.find_lr` options choose_lr0 does not set itself."""
    if finder_kwargs is None:
        return {}
    if not isinstance(finder_kwargs, dict):
        raise ValueError(f"finder_kwargs must be a dict of lrkit.find_lr options, got {type(finder_kwargs).__name__}")
    own = {"model", "optimizer", "train_loader", "loss_fn", "step_fn"}
    valid = [k for k in inspect.signature(find_lr).parameters if k not in own]
    for key in finder_kwargs:
        if key in own:
            raise ValueError(
                f"finder_kwargs[{key!r}]: pass {key} to choose_lr0 itself (it is used by the range test and the trials)"
            )
    bad = [key for key in finder_kwargs if key not in valid]
    if not bad:
        return dict(finder_kwargs)
    from lrkit.finder.range_test import PEER_KEYWORDS  # (as find_lr names a peer's keyword in its TypeError)

    if not any(isinstance(key, str) and key in PEER_KEYWORDS for key in bad):
        raise unknown_name_error("finder_kwargs key (an lrkit.find_lr option)", str(bad[0]), valid)
    parts, unmapped = [], False
    for key in bad:
        peer = PEER_KEYWORDS.get(key) if isinstance(key, str) else None
        if peer is None:
            unmapped = True
            parts.append(f"unknown finder_kwargs key (an lrkit.find_lr option) {key!r}."
                         f"{did_you_mean(str(key), sorted(valid))}")
        else:
            parts.append(f"unknown finder_kwargs key (an lrkit.find_lr option) {key!r}, {peer[0]}'s name: "
                         f"{_as_finder_kwarg(peer[1](finder_kwargs[key]), finder_kwargs[key], own)}")
    text = "; ".join(parts)
    if unmapped:
        text += f" Valid: {', '.join(sorted(valid))}"
    raise ValueError(text)


def _as_finder_kwarg(advice: str, value: Any, own: set[str]) -> str:
    """``find_lr``'s advice for a peer's keyword (:data:`lrkit.finder.range_test.PEER_KEYWORDS`: "lrkit calls it
    num_steps: pass num_steps=200", said of a ``find_lr`` keyword) as it reads for a ``finder_kwargs`` key: lrkit's
    name as a key of ``finder_kwargs`` (``finder_kwargs={'num_steps': 200}``), or, for an argument choose_lr0 takes
    itself (``loss_fn``, the loaders), choose_lr0's."""
    renamed = re.match(r"lrkit calls it (\w+): pass \1=" + re.escape(f"{value!r:.60}"), advice)
    if renamed is not None:
        name, rest = renamed.group(1), advice[renamed.end():]
        if name in own:
            return f"lrkit calls it {name}: pass {name}= to choose_lr0 itself, not in finder_kwargs{rest}"
        return f"lrkit calls it {name}: finder_kwargs={{{name!r}: {value!r:.60}}}{rest}"
    if advice.startswith("lrkit's range test reads the training loss only"):  # val_loader: choose_lr0 takes it
        return ("the range test reads the training loss only; the validation loader is choose_lr0's fourth argument, "
                "choose_lr0(model, optimizer, train_loader, val_loader, ...), which scores its trials: leave it out "
                "of finder_kwargs")
    return advice.replace("find_lr's third positional argument: find_lr(model, optimizer, ",
                          "choose_lr0's third positional argument: choose_lr0(model, optimizer, ")


def _guard(s: float, run: Callable[[float], Trial], n: int, start: list[Any]) -> tuple[float, str]:
    """The guarded search around the suggestion ``s`` (see :func:`choose_lr0`); returns (lr, how it was chosen).
    ``start``: ``[reference loss or None, what it is]`` (``"before training"``; filled in by the first trial)."""
    first = run(s)
    tried = [first]
    if not math.isfinite(first.val_loss):
        c = s
        while len(tried) < n and not math.isfinite(tried[-1].val_loss):
            c /= SPACING
            tried.append(run(c))
        lr, how = _pick(tried)
        return lr, f"the suggestion diverged on the run's schedule; {how}"
    l0 = start[0]
    when = start[1] if len(start) > 1 else "before training"
    if l0 is not None and math.isfinite(l0) and first.val_loss > _no_progress_bound(l0):
        lr, how = _step_up(s, run, n, tried, _no_progress_bound(l0))
        return lr, f"the suggestion did not learn (loss {first.val_loss:.4g} vs {l0:.4g} {when}); {how}"
    if math.isinf(STEP_DOWN_MARGIN):  # never step down on a win: no lower candidate is run
        before = f" vs {l0:.4g} {when}" if l0 is not None and math.isfinite(l0) else ""
        return s, (
            f"the suggestion trained and learned in its trial (loss {first.val_loss:.4g}{before}), so it is used as "
            "is; no lower LR was tried (a short trial does not tell which LR the full run prefers, so a lower LR that "
            "wins one is not followed: lrkit.train.auto.STEP_DOWN_MARGIN=inf)"
        )
    if STEP_DOWN_MARGIN != 0.0:
        return _guard_step_down_margin(s, run, n, tried)
    c = s
    while len(tried) < n:
        c /= SPACING
        tried.append(run(c))
        if not tried[-1].val_loss < tried[-2].val_loss:
            break
    if len(tried) >= 2 and tried[1].val_loss < first.val_loss:
        lr, how = _pick(tried)
        return min(lr, s), f"a lower LR scored better even on the short run, which favours higher LRs; {how}"
    return s, (
        "the suggestion scored at least as well as the lower candidates (a short run favours higher LRs, so a "
        "higher candidate winning there would not carry over to the full run)"
    )


def _step_up(
    s: float, run: Callable[[float], Trial], n: int, tried: list[Trial], bound: float
) -> tuple[float, str]:
    """The guard's step up from a suggestion ``s`` whose trial (``tried[0]``) did not get below ``bound``: try
    ``s·d², s·d⁴, ...`` and take the first that learns. A candidate that diverges ends the climb (a higher one would
    diverge too): the next candidates bisect, in log space, between the highest that trained and the lowest that
    diverged."""
    lo, hi = s, math.inf  # the highest candidate that trained (did not learn), the lowest that diverged
    while len(tried) < n and not tried[-1].val_loss <= bound:
        c = lo * SPACING**2 if math.isinf(hi) else math.sqrt(lo * hi)
        trial = run(c)
        tried.append(trial)
        if math.isfinite(trial.val_loss):
            lo = max(lo, c)
        else:
            hi = min(hi, c)
    if tried[-1].val_loss <= bound:
        # the lowest candidate that learns, not the best-scoring one: a short run favours higher LRs, so the
        # step up goes no further than it must
        lr = tried[-1].lr
        bisected = f" ({hi:.3g} diverged, so the step up bisected back below it)" if math.isfinite(hi) else ""
        return lr, f"stepped up to {lr:.3g}, the lowest candidate that learned{bisected}"
    lr, how = _pick(tried)
    if math.isfinite(hi):
        return lr, (
            f"{how}; no candidate learned: {hi:.3g} diverged and {lo:.3g} and below did not lower the loss by "
            f"{MIN_PROGRESS:.1%}: an LR between them may; try one as an explicit lr0, or raise num_candidates"
        )
    return lr, (
        f"{how}; no candidate up to {max(t.lr for t in tried):.3g} lowered the loss by {MIN_PROGRESS:.1%}: check "
        "that the model can learn from this data (a detached loss, frozen parameters, constant targets?)"
    )


def _wins_by_margin(lower: float, higher: float) -> bool:
    """Whether a lower candidate's score ``lower`` beats the higher one's ``higher`` by :data:`STEP_DOWN_MARGIN` (a
    finite margin: ``inf`` never reaches the step-down)."""
    return lower < higher - STEP_DOWN_MARGIN * abs(higher)


def _guard_step_down_margin(
    s: float, run: Callable[[float], Trial], n: int, tried: list[Trial]
) -> tuple[float, str]:
    """The guard's step-down branch with a finite margin (:data:`STEP_DOWN_MARGIN` ``!= 0``; ``inf`` never gets
    here): ``tried`` holds the suggestion's finite trial; step down while the lower candidate wins by the margin."""
    c = s
    while len(tried) < n:
        c /= SPACING
        tried.append(run(c))
        if not _wins_by_margin(tried[-1].val_loss, tried[-2].val_loss):
            break
    winners = [i for i in range(1, len(tried)) if all(_wins_by_margin(tried[j].val_loss, tried[j - 1].val_loss)
                                                      for j in range(1, i + 1))]
    if not winners:
        return s, (
            f"no lower candidate beat the suggestion by the {STEP_DOWN_MARGIN:.1%} margin (a short run favours higher "
            "LRs, so a higher candidate winning there would not carry over to the full run)"
        )
    k = winners[-1]
    lr, how = tried[k].lr, f"the lowest candidate that won by the {STEP_DOWN_MARGIN:.1%} margin"
    if k + 1 < len(tried) and math.isfinite(tried[k + 1].val_loss) and tried[k].val_loss <= tried[k + 1].val_loss:
        lr, how = _pick(tried[k - 1 : k + 2])
    return min(lr, s), f"a lower LR scored better by more than {STEP_DOWN_MARGIN:.1%} even on the short run; {how}"


def _bracket(s: float, run: Callable[[float], Trial], n: int) -> tuple[float, str]:
    """Best of ``s·SPACING**k`` around ``s``, extended at a winning edge, else refined (``SEARCH="bracket"``)."""
    tried: dict[float, Trial] = {}
    for k in ([0.0, -1.0, 1.0] if n >= 3 else [0.0, 1.0]):
        tried[k] = run(s * SPACING**k)
    while len(tried) < n:
        ks = sorted(tried)
        scores = [tried[k].val_loss for k in ks]
        best = min(range(len(ks)), key=lambda i: (scores[i], ks[i]))
        if best == 0:
            k = ks[0] - 1.0
        elif best == len(ks) - 1:
            k = ks[-1] + 1.0
        else:
            nb = best - 1 if scores[best - 1] <= scores[best + 1] else best + 1
            k = 0.5 * (ks[best] + ks[nb])
        tried[k] = run(s * SPACING**k)
    return _pick(list(tried.values()))
