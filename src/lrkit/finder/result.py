"""FinderResult: the record of one LR range test, its suggestions, and its JSON/plot outputs."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrkit._utils import unknown_name_error, write_named
from lrkit.finder import suggest as _suggest

__all__ = ["FinderResult"]

_MIN_POINTS = 3
#: A test that stopped (diverged, non-finite) with fewer finite losses than this is too short to judge: the loss rose
#: from its first steps, so every LR it tried was already too high (the range test warns at the same length).
MIN_STOPPED_POINTS = 10
_STOP_REASONS = ("completed", "diverged", "non-finite")
#: The keyword options of the robust rule that :meth:`FinderResult.suggest` passes through.
_ROBUST_OPTIONS = ("backoff_decades", "plateau_backoff_decades", "plateau_rise", "noise_band", "dip_rise", "passes",
                   "max_passes", "dip_noise", "dip_passes", "flat", "flat_sigmas")


def _guards() -> dict[str, float | None]:
    """The robust rule's module-level switches, read when used (so that a changed default takes effect)."""
    return {"dip_noise": _suggest.ROBUST_DIP_NOISE, "dip_passes": _suggest.ROBUST_DIP_PASSES,
            "flat": _suggest.ROBUST_FLAT, "flat_sigmas": _suggest.ROBUST_FLAT_SIGMAS}


def _is_real(value: Any) -> bool:
    """A real number (Python or numpy), not a bool or a string."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _float(value: Any) -> float:
    """``float(value)`` for a real number; an integer too large for a float (a JSON literal such as ``1`` and 400
    zeros) is ``±inf``, as ``json.loads`` reads ``1e400``, so the checks name it rather than an ``OverflowError``."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _numbers(name: str, values: Any) -> list[float]:
    """``values`` (a list, tuple or 1-D array of real numbers) as a list of floats; a ``ValueError`` naming the
    field (and the first bad item) otherwise."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise ValueError(f"{name}={values!r}: a range-test record's {name} are a list of numbers")
    if set(map(type, values)) <= {float}:  # the usual case (a range test's own record), checked in one pass
        return list(values)
    for i, v in enumerate(values):
        if not _is_real(v):
            raise ValueError(f"{name}[{i}]={v!r}: a range-test record's {name} are numbers")
    return [_float(v) for v in values]


def _positive(name: str, value: Any) -> float:
    if not _is_real(value) or not (math.isfinite(_float(value)) and _float(value) > 0):
        raise ValueError(f"{name}={value!r:.80}: an LR of the range test is a finite number > 0")
    return _float(value)


def _whole_steps(value: Any) -> int:
    """``num_steps`` as an ``int``: a whole number >= 0, also one written as a float (``100.0``, as another tool's
    JSON writer or a hand edit gives it); a ``ValueError`` naming it otherwise (a bool, ``100.5``, NaN, a string)."""
    steps = value
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        steps = int(value)
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"num_steps={value!r:.80}: the range test's optimizer steps are a whole number >= 0")
    return int(steps)


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _nonfinite_marks(losses: list[float]) -> dict[str, list[int]]:
    """Where ``losses`` is NaN, +inf or -inf, by kind (only the kinds that occur): what ``null`` stood for in JSON.

    >>> _nonfinite_marks([1.0, float("inf"), float("nan"), float("-inf"), float("inf")])
    {'nan': [2], 'inf': [1, 4], '-inf': [3]}
    """
    marks: dict[str, list[int]] = {}
    for i, v in enumerate(losses):
        if not math.isfinite(v):
            kind = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
            marks.setdefault(kind, []).append(i)
    return {k: marks[k] for k in _NONFINITE if k in marks}


def _read_marks(marks: Any, losses: list[Any]) -> dict[int, float]:
    """``nonfinite_losses`` of a JSON record as ``{index: nan/inf/-inf}``, each index checked against ``losses``
    (a hand-edited record is named, not misread); ``None`` (a record written before the field existed) is ``{}``."""
    if marks is None:
        return {}
    if not isinstance(marks, dict):
        raise ValueError(f"nonfinite_losses={marks!r}: a range-test record's nonfinite_losses are a mapping "
                         "{'nan'|'inf'|'-inf': [indices into losses]}")
    out: dict[int, float] = {}
    marked: dict[int, str] = {}  # index -> the kind it was first marked with (a null is one kind, once)
    for kind, indices in marks.items():
        if kind not in _NONFINITE:
            raise unknown_name_error("nonfinite_losses kind", str(kind), _NONFINITE)
        if not isinstance(indices, list):
            raise ValueError(f"nonfinite_losses[{kind!r}]={indices!r}: a list of indices into losses")
        for j, i in enumerate(indices):
            where = f"nonfinite_losses[{kind!r}][{j}]={i!r}"
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(losses):
                raise ValueError(f"{where}: not an index into losses (0..{len(losses) - 1})")
            if losses[i] is not None:
                raise ValueError(f"{where}: losses[{i}] is {losses[i]!r}, not null (the non-finite losses are null)")
            if i in marked:
                raise ValueError(f"{where}: losses[{i}] is marked twice, as {marked[i]!r} and {kind!r} (each null "
                                 "loss is one of 'nan', 'inf', '-inf', listed once)")
            marked[i] = kind
            out[i] = _NONFINITE[kind]
    return out


def _check_setup(setup: Any) -> dict[str, Any] | None:
    """``FinderResult.setup``: ``None``, or a mapping of names to what JSON holds (a hand-edited record is named when
    loaded, not when :meth:`FinderResult.to_json` fails after a test has run)."""
    if setup is None:
        return None
    try:
        if not isinstance(setup, Mapping) or not all(isinstance(k, str) for k in setup):
            raise TypeError
        json.dumps(dict(setup), allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError(f"setup={setup!r:.120}: how the range test ran is a mapping of names to JSON values "
                         "(numbers, strings, booleans, None, lists of them), or None when unknown") from None
    return dict(setup)


def _same_field(a: Any, b: Any) -> bool:
    """``a == b``, with NaN equal to NaN (in a list of losses, item by item, or as a number)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_field(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


@dataclass(repr=False)
class FinderResult:
    """The outcome of :func:`lrkit.find_lr`: the curve, how the test ended, and the suggested LRs.

    Attributes:
        lrs: the peak LR (group with ``lr_scale`` 1) at each step that ran.
        losses: the raw mean training loss at each step (all ranks' mean under ``torch.distributed``).
        start_lr, end_lr, num_steps, mode: the test's settings.
        stop_reason: ``"completed"``, ``"diverged"`` or ``"non-finite"``.
        seconds: wall time of the test (restore included).
        rule: the default suggestion rule's name.
        warnings: human-readable notes about the curve's quality (too short, too flat), with what to change.
        passes: how many times the test went over the training loader (optimizer steps run x micro-batches per step
            / ``len(train_loader)``; ``None`` when the loader has no length): the robust rule keeps its full back-off
            on a test that cycled through a tiny dataset (more than :data:`~lrkit.finder.suggest.ROBUST_MAX_PASSES`).
        loss: which loss the test computed, decided at its first step: ``"loss_fn (cross_entropy)"`` (the caller's,
            by its function's or class's name), ``"cross-entropy (the classification task's loss)"`` (a task's loss
            under ``lrkit.train``: ``lr0="auto"``), ``"step_fn (my_step)"``, ``"default: cross-entropy (integer
            targets)"`` (``"... (boolean targets)"``; ``"default: cross-entropy per position ..."`` for token logits
            ``(B, T, V)``), ``"default: MSE (float targets)"`` (either default ``"... over the output's logits"``
            when the model returned a dict-like output), or ``"the model's own loss, from model(**batch)"`` for a
            Hugging Face batch; ``None`` for a record built by hand or written before the field existed.
        setup: how :func:`lrkit.find_lr` ran the test, for the record (the LR it suggests holds for this setup, the
            batch size above all): ``optimizer`` (class name), ``param_groups``, ``lr_scales`` (each group's LR over
            the peak), ``batch_size`` (of the first batch; ``None`` when it has none), ``accumulation_steps``,
            ``max_grad_norm``, ``amp`` (``"bf16"``, ``"fp16"`` or ``None``), ``diverge_factor``, ``device``,
            ``world_size``, and the ``lrkit`` and ``torch`` versions; ``lrkit find`` adds ``task`` and ``seed``. A
            mapping of names to JSON values; ``None`` for a record built by hand or written before the field existed
            (session 37).

    Example:
        >>> r = FinderResult(lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses=[2.0, 1.9, 1.2, 0.9, 5.0])
        >>> r.suggest("minimum")
        0.01
        >>> sorted(r.suggestions())
        ['minimum', 'robust', 'steepest', 'valley']
    """

    lrs: list[float]
    losses: list[float]
    start_lr: float = 1e-7
    end_lr: float = 10.0
    num_steps: int = 100
    mode: str = "exp"
    stop_reason: str = "completed"
    seconds: float = 0.0
    rule: str = _suggest.DEFAULT_RULE
    warnings: list[str] = field(default_factory=list)
    passes: float | None = None
    loss: str | None = None
    setup: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.lrs = _numbers("lrs", self.lrs)
        self.losses = _numbers("losses", self.losses)
        # settings: plain Python numbers (a numpy int64 would fail json.dumps in to_json, after the test has run),
        # each checked so that a hand-edited record is named when loaded, not when a message formats it
        self.start_lr = _positive("start_lr", self.start_lr)
        self.end_lr = _positive("end_lr", self.end_lr)
        self.num_steps = _whole_steps(self.num_steps)
        if self.mode not in ("exp", "linear"):
            raise unknown_name_error("mode", str(self.mode), ["exp", "linear"])
        if not _is_real(self.seconds) or not (math.isfinite(_float(self.seconds)) and _float(self.seconds) >= 0):
            raise ValueError(f"seconds={self.seconds!r:.80}: the test's wall time is a finite number >= 0")
        self.seconds = float(self.seconds)
        if isinstance(self.warnings, (str, bytes)) or not isinstance(self.warnings, (list, tuple)) or not all(
                isinstance(w, str) for w in self.warnings):
            raise ValueError(f"warnings={self.warnings!r}: the notes about the curve are a list of strings")
        self.warnings = list(self.warnings)
        if len(self.lrs) != len(self.losses):
            raise ValueError(
                f"lrs and losses must have the same length, got {len(self.lrs)} LRs and {len(self.losses)} losses"
            )
        # A record built by hand or edited: what no range test gives would turn into NaN or misread suggestions
        for i, lr in enumerate(self.lrs):
            if not (math.isfinite(lr) and lr > 0):
                raise ValueError(f"lrs[{i}]={lr!r}: every LR of a range test is a finite number > 0")
        for i in range(1, len(self.lrs)):
            if self.lrs[i] < self.lrs[i - 1]:
                raise ValueError(
                    f"lrs must increase step by step (the range test's sweep), but lrs[{i}]={self.lrs[i]!r} is below "
                    f"lrs[{i - 1}]={self.lrs[i - 1]!r}"
                )
        if self.stop_reason not in _STOP_REASONS:  # the robust rule reads its regime from it
            raise unknown_name_error("stop_reason", self.stop_reason, _STOP_REASONS)
        if not isinstance(self.rule, str) or self.rule not in _suggest.RULES:  # (a list or dict is unhashable)
            raise _suggest.unknown_rule_error(str(self.rule))
        if self.passes is not None:
            try:  # any real number, numpy scalars included (a count computed with numpy); not a bool or a string
                self.passes = _suggest._as_count("passes", self.passes)
            except (ValueError, OverflowError):  # (an integer too large for a float: a hand-edited record)
                raise ValueError(f"passes={self.passes!r:.80}: the passes over the training data are a finite number "
                                 ">= 0, or None when unknown") from None
        self.setup = _check_setup(self.setup)
        if self.loss is not None and not isinstance(self.loss, str):
            raise ValueError(f"loss={self.loss!r:.80}: which loss the range test used is a string (e.g. 'loss_fn "
                             "(cross_entropy)', 'default: MSE (float targets)'), or None when unknown")

    def __eq__(self, other: object) -> bool:
        """Field by field, as a dataclass compares, except that a NaN loss equals a NaN loss at the same step: a
        result equals its own saved record (:meth:`from_json`), whose NaN is another float object (``NaN != NaN``
        made a result with a non-finite step unequal to its copy from the JSON, equal to ``copy.deepcopy`` of it).
        """
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(_same_field(getattr(self, name), getattr(other, name)) for name in self.__dataclass_fields__)

    def __repr__(self) -> str:
        """One line a person can read: the suggestion, the range and how the test ended, not the whole curve
        (``lrs`` and ``losses`` hold it). A curve no rule can judge shows ``suggestion=None``; ``suggest()`` says why.

        >>> FinderResult(lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses=[2.0, 1.9, 1.2, 0.9, 5.0], num_steps=5)
        FinderResult(suggestion=0.003162, range=(0.001, 0.01), rule='robust', steps=5 of 5, stop_reason='completed')
        >>> FinderResult(lrs=[], losses=[])
        FinderResult(suggestion=None, rule='robust', steps=0 of 100, stop_reason='completed')
        """
        parts: list[str] = []
        for name, read in (("suggestion", lambda: f"{self.suggestion:.4g}"),
                           ("range", lambda: "({:.4g}, {:.4g})".format(*self.range))):
            try:
                parts.append(f"{name}={read()}")
            except ValueError:  # too short or too flat to judge: the repr still shows what there is
                if name == "suggestion":
                    parts.append("suggestion=None")
        parts += [f"rule={self.rule!r}", f"steps={self.num_steps_run} of {self.num_steps}",
                  f"stop_reason={self.stop_reason!r}"]
        if self.loss is not None:
            parts.append(f"loss={self.loss!r}")
        if self.warnings:
            parts.append(f"warnings={len(self.warnings)}")
        return f"FinderResult({', '.join(parts)})"

    # -- the curve -------------------------------------------------------------------------------------------
    @property
    def num_steps_run(self) -> int:
        """How many optimizer steps the test ran before it completed or stopped."""
        return len(self.lrs)

    @property
    def smoothed_losses(self) -> list[float]:
        """The lag-free smoothed curve of the finite losses, one value per finite loss (see
        :func:`lrkit.finder.suggest.smooth_curve`): what the rules read, except that a rule first merges losses
        recorded at one LR (a hand-made or merged record) into one point at their mean."""
        finite = [v for v in self.losses if math.isfinite(v)]
        return [float(v) for v in _suggest.smooth_curve(np.asarray(finite))] if finite else []

    def _curve(self) -> tuple[np.ndarray, np.ndarray]:
        lrs = np.asarray(self.lrs, dtype=float)
        losses = np.asarray(self.losses, dtype=float)
        keep = np.isfinite(losses)
        return lrs[keep], losses[keep]

    # -- suggestions -----------------------------------------------------------------------------------------
    def suggest(self, rule: str | None = None, **options: Any) -> float:
        """The LR that ``rule`` (default: :attr:`rule`) reads off the curve; names are in ``lrkit.SUGGESTION_RULES``.

        ``options`` go to the rule's function: ``backoff_decades``, ``plateau_backoff_decades``, ``plateau_rise``,
        ``noise_band``, ``dip_rise``, ``passes`` (default: :attr:`passes`), ``max_passes``, ``dip_noise``,
        ``dip_passes`` and ``flat`` for ``"robust"``
        (:func:`lrkit.finder.suggest.suggest_robust`); the other rules take none.

        >>> import numpy as np
        >>> lrs = list(np.logspace(-4, 0, 60)); losses = list(1 / (1 + np.asarray(lrs) / 1e-2))   # a plateau
        >>> r = FinderResult(lrs=lrs, losses=losses, start_lr=1e-4, end_lr=1.0, num_steps=60)
        >>> round(r.suggest() / r.suggest(plateau_backoff_decades=1.0), 2)   # half a decade vs a decade below
        3.16
        """
        rule = self.rule if rule is None else rule
        if not isinstance(rule, str) or rule not in _suggest.RULES:  # (a list or dict is unhashable)
            raise _suggest.unknown_rule_error(str(rule))
        if options and rule != "robust":
            raise ValueError(f"rule {rule!r} takes no options, got {sorted(options)}; only 'robust' has options "
                             f"({', '.join(_ROBUST_OPTIONS)})")
        bad = sorted(set(options) - set(_ROBUST_OPTIONS))
        if bad:  # (named whatever the curve: a typo must not wait until a curve is long enough to judge)
            raise unknown_name_error("option of the robust rule", bad[0], _ROBUST_OPTIONS)
        self._check_judgeable()
        lrs, losses = np.asarray(self.lrs, dtype=float), np.asarray(self.losses, dtype=float)
        if rule == "robust":  # a test that stopped on divergence reached the stability edge: never a plateau
            return _suggest.suggest_robust(lrs, losses, stopped=self.stop_reason != "completed",
                                           **{"passes": self.passes, **_guards(), **options})
        return _suggest.suggest(lrs, losses, rule)  # the raw curve: a rule drops non-finite losses itself

    def _view(self) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None, bool, bool]:
        """The curve as the default robust rule reads it (cut at a double dip; the noise scaling gated by passes)."""
        self._check_judgeable()
        return _suggest._robust_view(np.asarray(self.lrs, dtype=float), np.asarray(self.losses, dtype=float),
                                     noise_band=_suggest.ROBUST_NOISE_BAND, stopped=self.stop_reason != "completed",
                                     dip_rise=_suggest.ROBUST_DIP_RISE, passes=self.passes,
                                     max_passes=_suggest.ROBUST_MAX_PASSES, dip_noise=_suggest.ROBUST_DIP_NOISE,
                                     dip_passes=_suggest.ROBUST_DIP_PASSES)

    def _flat_edge(self, lrs: np.ndarray, losses: np.ndarray) -> int | None:
        """:func:`lrkit.finder.suggest.flat_edge` on the default rule's view, when :data:`ROBUST_FLAT` is on."""
        return _suggest._flat_at(lrs, losses, _suggest.ROBUST_FLAT, _suggest.ROBUST_FLAT_SIGMAS)

    @property
    def regime(self) -> str:
        """How the default ``robust`` rule reads the curve: ``"explosion"`` (the loss blew up past its minimum, the
        stability edge, dipped twice, or blew up after a :attr:`flat` start: it backs off a decade) or ``"plateau"``
        (the loss only flattened, the edge was not reached: half a decade); see
        :func:`lrkit.finder.suggest.robust_regime`."""
        lrs, losses, _, stopped, _ = self._view()
        return _suggest.robust_regime(lrs, losses, stopped=stopped, dip_rise=None, flat=_suggest.ROBUST_FLAT,
                                      flat_sigmas=_suggest.ROBUST_FLAT_SIGMAS)

    @property
    def backoff(self) -> float:
        """The back-off, in decades below :attr:`edge`, that the default ``robust`` rule takes on this curve: 1
        after an explosion, ½ after a plateau (:attr:`regime`), scaled down towards 0 on a noise-dominated curve
        (:attr:`noise`) unless :attr:`noise_scaled` is off; see :func:`lrkit.finder.suggest.robust_backoff`."""
        lrs, losses, band, stopped, _ = self._view()
        return _suggest.robust_backoff(lrs, losses, stopped=stopped, noise_band=band, dip_rise=None,
                                       flat=_suggest.ROBUST_FLAT, flat_sigmas=_suggest.ROBUST_FLAT_SIGMAS)

    @property
    def noise(self) -> float:
        """The curve's batch-to-batch scatter over the drop it made (:func:`lrkit.finder.suggest.noise_ratio`), read
        up to :attr:`edge`: below ~0.07 the minimum reads as the stability edge, above ~0.1 as a noise floor."""
        lrs, losses, _, _, _ = self._view()
        return _suggest.noise_ratio(lrs, losses)

    @property
    def noise_scaled(self) -> bool:
        """Whether the default rule may scale its back-off by :attr:`noise`: ``False`` when the test made more than
        :data:`~lrkit.finder.suggest.ROBUST_MAX_PASSES` :attr:`passes` over the training data, and on a :attr:`flat`
        reading (the full back-off from where the flat loss blew up, never scaled)."""
        if self.passes is not None and self.passes > _suggest.ROBUST_MAX_PASSES:
            return False
        return not (self._judgeable() and self.flat)

    @property
    def flat(self) -> bool:
        """Whether the default rule read the curve as *too flat to judge, then blew up*: its smoothed loss never got
        :data:`~lrkit.finder.suggest.ROBUST_FLAT` (2%) of ``|start|`` below its start, then left its flat band
        upwards (:func:`lrkit.finder.suggest.flat_edge`). The rule then backs off a full decade (never scaled by
        :attr:`noise`) from where it left the band (:attr:`edge`); always ``False`` with ``ROBUST_FLAT = None``.

        >>> import numpy as np
        >>> lrs = np.logspace(-7, 1, 100)
        >>> flat = 1.39 + 0.01 * np.random.default_rng(0).normal(size=100) + (lrs / 0.3) ** 4   # learns nothing
        >>> r = FinderResult(lrs=list(lrs), losses=list(flat))
        >>> r.flat, r.noise_scaled, round(r.edge / r.suggestion, 6), r.range == (r.suggestion, r.edge)
        (True, False, 10.0, True)
        >>> FinderResult(lrs=list(lrs), losses=list(1 / (1 + lrs / 1e-3) + (lrs / 0.3) ** 4)).flat   # one that learns
        False
        """
        lrs, losses, _, _, _ = self._view()
        return self._flat_edge(lrs, losses) is not None

    @property
    def double_dip(self) -> bool:
        """Whether the curve dips twice (:func:`lrkit.finder.suggest.dip_cut`): the default rule then backs off from
        the first dip's minimum (:attr:`edge`), not the deeper second one."""
        return self._view()[4]

    @property
    def edge(self) -> float:
        """The LR the default rule backs off from: the smoothed loss minimum (of the first dip on a
        :attr:`double_dip` curve; on a curve too flat to judge that blew up, with
        :data:`~lrkit.finder.suggest.ROBUST_FLAT` on, where it left its flat band)."""
        lrs, losses, _, _, _ = self._view()
        t_lrs, t_losses = _suggest._trim(lrs, losses)
        flat = self._flat_edge(lrs, losses)
        if flat is not None:  # a flat curve that blew up: where it left its flat band
            return float(t_lrs[flat - 1])
        return float(t_lrs[int(np.argmin(_suggest.smooth_curve(t_losses)))])

    def _judgeable(self) -> bool:
        """Whether the curve has finite losses at enough different LRs (3) for the rules to read an LR off it, and,
        when the test stopped early, at least :data:`MIN_STOPPED_POINTS` of them."""
        lrs = self._curve()[0]
        stopped_short = self.stop_reason != "completed" and len(lrs) < MIN_STOPPED_POINTS
        return len(np.unique(lrs)) >= _MIN_POINTS and not stopped_short

    def _check_judgeable(self) -> None:
        if not self._judgeable():
            from lrkit.finder.range_test import _QUALITY_WORDS  # (that module imports this one)

            names, suffix = _QUALITY_WORDS.get() or ({}, "")  # a caller's words for start_lr (choose_lr0's, ...)
            lower = self._lower_advice(names)
            last = f" at lr={self.lrs[-1]:.3g}" if self.lrs else ""
            lrs = self._curve()[0]
            if len(np.unique(lrs)) >= _MIN_POINTS:  # enough points, but a test that stopped within its first steps
                raise ValueError(
                    f"cannot suggest an LR: the range test stopped ({self.stop_reason}{last}) after "
                    f"{self.num_steps_run} steps, too short to judge (a test that stops needs {MIN_STOPPED_POINTS} "
                    f"finite losses): the loss rose from the start, so every LR it tried was too high; {lower} so the "
                    f"test sees the loss fall before it diverges{suffix}"
                )
            distinct = len(np.unique(lrs))
            at = ("" if distinct == len(lrs) else f" all at lr={lrs[0]:.3g}" if distinct == 1
                  else f" at {distinct} different LRs")
            steps = f"{self.num_steps_run} step{'s' * (self.num_steps_run != 1)}"
            finite = f"{len(lrs)} finite loss{'es' * (len(lrs) != 1)}"
            if distinct == 1 and len(lrs) >= _MIN_POINTS:  # more steps at the one LR would not help
                fix = (f"a range test needs the LR to rise from step to step: {names.get('end_lr', 'end_lr')} "
                       f"above {names.get('start_lr', 'start_lr')}")
                ended = (f"ran {steps}" if self.stop_reason == "completed"
                         else f"stopped ({self.stop_reason}{last}) after {steps}")
            elif self.stop_reason == "completed" and len(lrs) == len(self.lrs):  # it ran its steps: too few of them
                fix = f"raise {names.get('num_steps', 'num_steps')} (now {self.num_steps_run})"
                ended = f"ran all the {steps} it was given{(' (to' + last.removeprefix(' at') + ')') if last else ''}"
            else:
                fix = f"{lower} so the test sees the loss fall before it diverges"
                ended = f"stopped ({self.stop_reason}{last}) after {steps}"
            raise ValueError(
                f"cannot suggest an LR: the range test {ended} with {finite}{at}, and a rule needs {_MIN_POINTS} "
                f"different LRs; {fix}{suffix}"
            )

    def _lower_advice(self, names: Mapping[str, str]) -> str:
        """How to start a test that blew up in its first steps lower: ``start_lr`` in an exponential sweep; in a
        linear one its second LR is ``start_lr + (end_lr - start_lr) / (num_steps - 1)``, about ``end_lr /
        num_steps`` whatever ``start_lr`` is, so lower ``end_lr``, raise ``num_steps`` or sweep exponentially."""
        start = names.get("start_lr", "start_lr")
        if self.mode != "linear":
            return f"lower {start} (now {self.start_lr:g})"
        second = self.start_lr + (self.end_lr - self.start_lr) / max(self.num_steps - 1, 1)
        return (f"the linear sweep's second LR was already {second:.3g} whatever {start} is: lower "
                f"{names.get('end_lr', 'end_lr')} (now {self.end_lr:g}), raise {names.get('num_steps', 'num_steps')} "
                f"(now {self.num_steps}) or sweep exponentially ({names.get('mode', 'mode')}='exp')")

    @property
    def suggestion(self) -> float:
        """The default rule's LR."""
        return self.suggest()

    def suggestions(self) -> dict[str, float]:
        """Every rule's LR, by name."""
        return {name: self.suggest(name) for name in _suggest.RULES}

    @property
    def range(self) -> tuple[float, float]:
        """``(low, high)`` LR bounds for cyclical / one-cycle policies (see :func:`lrkit.finder.suggest.lr_range`).

        On a :attr:`double_dip` curve it is read up to the first dip, as the default rule reads it: ``high`` is
        :attr:`edge`, never the deeper second minimum past the stability edge. On a :attr:`flat` curve there is no
        descent to start the range from: it is ``(low, high) = (robust suggestion, edge)``, from the default rule's
        LR (a decade below where the flat loss blew up) to that edge; ``high`` is :attr:`edge` as on every other curve.
        """
        self._check_judgeable()
        if self.flat:
            return self.suggest("robust"), self.edge
        if self.double_dip:
            lrs, losses, _, _, _ = self._view()
            return _suggest.lr_range(lrs, losses)
        return _suggest.lr_range(*self._curve())

    # -- records ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: settings, curve, which ``loss`` the test used, every rule's suggestion and the default
        rule's reading (``regime``, ``noise``, ``backoff_decades``, ``noise_scaled``, ``flat``, ``double_dip``,
        ``edge``; ``None`` when the curve is too short).

        Strict JSON has no NaN or infinity: such a loss is ``null`` in ``losses``, and ``nonfinite_losses`` says which
        it was — ``{"nan": [indices], "inf": [...], "-inf": [...]}``, the kinds that occur (``{}`` when none) — so
        :meth:`from_json` gives each back (a record without the field, written before it existed, loads ``null`` as
        NaN)."""
        d = asdict(self)
        d["losses"] = [v if math.isfinite(v) else None for v in self.losses]
        d["nonfinite_losses"] = _nonfinite_marks(self.losses)
        d["smoothed_losses"] = self.smoothed_losses
        ok = self._judgeable()
        d["suggestion"] = self.suggestion if ok else None
        d["suggestions"] = self.suggestions() if ok else {}
        d["range"] = list(self.range) if ok else None
        d["regime"] = self.regime if ok else None
        noise = self.noise if ok else math.nan
        d["noise"] = noise if math.isfinite(noise) else None
        d["backoff_decades"] = self.backoff if ok else None
        d["noise_scaled"] = self.noise_scaled
        d["flat"] = self.flat if ok else None
        d["double_dip"] = self.double_dip if ok else None
        d["edge"] = self.edge if ok else None
        return d

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` to ``path`` atomically and return the path (through a symlink to the file it points
        to, the link kept; into a named pipe or ``/dev/stdout`` as it is, as ``open(path, "w")`` would)."""
        if Path(path).is_dir():
            example = str(Path(path) / "lr_find.json")
            raise ValueError(f"to_json needs a file path, but {str(path)!r} is a directory; e.g. {example!r}")
        for parent in Path(path).parents:  # folders that do not exist yet are made; one that is a file cannot be
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    raise ValueError(f"cannot write the record to {str(path)!r}: {str(parent)!r} is a file, not a "
                                     "folder")
                break
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        return write_named(path, lambda p: p.write_text(text, encoding="utf-8"))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> FinderResult:
        """Load a record written by :meth:`to_json` (so a plot can be redrawn later); the readings it also holds
        (``suggestion``, ``regime``, ``flat``, ...) are recomputed from the curve, so an older record without some
        of them loads the same; one without ``loss`` (written before it existed) loads with ``loss=None``."""
        try:
            # (utf-8-sig: a record re-saved by an editor that writes a byte-order mark loads as the same JSON)
            d = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:  # a truncated copy, a CSV, a picture
            # (RecursionError: arrays nested thousands deep, which no record has)
            raise ValueError(
                f"{str(path)!r} is not a range-test record (lr_find.json from FinderResult.to_json): it is not JSON "
                f"({e})"
            ) from None
        return cls._from_dict(d, repr(str(path)))

    @classmethod
    def _from_dict(cls, d: Any, where: str) -> FinderResult:
        """:meth:`from_json`'s reading of a :meth:`to_dict` record (``where`` names it in errors)."""
        if not isinstance(d, dict) or "lrs" not in d or "losses" not in d:
            got = f"keys {sorted(d)[:8]}" if isinstance(d, dict) else f"a JSON {type(d).__name__}"
            raise ValueError(
                f"{where} is not a range-test record (lr_find.json from FinderResult.to_json): it needs 'lrs' "
                f"and 'losses', got {got}"
            )
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        losses = fields.get("losses", [])
        if isinstance(losses, list):  # anything else is named by the checks in __post_init__
            kinds = _read_marks(d.get("nonfinite_losses"), losses)
            fields["losses"] = [kinds.get(i, math.nan) if v is None else v for i, v in enumerate(losses)]
        return cls(**fields)

    def text_plot(self, width: int = 72, height: int = 14, *, ascii: bool = False) -> str:
        """The curve as text, for a terminal: raw losses as dots, the smoothed curve as a line, the suggestion
        marked, on a log LR axis (:func:`lrkit.plots.text.finder_text`; Unicode braille, or plain ASCII with
        ``ascii=True``). No matplotlib needed. ``lrkit find`` prints it.

        >>> import numpy as np
        >>> lrs = list(np.geomspace(1e-5, 1, 60))
        >>> r = FinderResult(lrs=lrs, losses=[1 / (1 + 1e3 * lr) + (0 if lr < 0.2 else 10 * lr) for lr in lrs])
        >>> print(r.text_plot(width=50, height=5, ascii=True))
            2.96 +                       :          *****
                 |                       :         *
                 |                       :         *
                 |******************     :        *
         0.00576 +                 ***************.
                 ++--------------+-------^------+--------
                  1e-05        0.001           0.1
                                         ^ 0.0117
                  x: learning rate   y: training loss
        """
        from lrkit.plots.text import finder_text

        return finder_text(self.to_dict(), width=width, height=height, ascii=ascii)

    def plot(self, path: str | os.PathLike[str] | None = None, *, ax: Any = None, show_rules: bool = True) -> Any:
        """Draw loss vs LR (log axis), the suggestion marked and the usable range shaded.

        Writes a PNG when ``path`` is given; returns the matplotlib ``Figure``. Needs matplotlib (``lrkit[plot]``). A
        test too short to judge (it diverged within its first steps) is still drawn, titled "no suggestion: lower
        start_lr": that curve is the one worth a look.
        """
        from lrkit.plots.finder import plot_finder

        return plot_finder(self.to_dict(), path=path, ax=ax, show_rules=show_rules)
