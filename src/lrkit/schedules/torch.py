"""``to_torch(optimizer)``: a real, resumable ``torch.optim.lr_scheduler.LRScheduler`` over any :class:`Schedule`.

One counter (``last_epoch``: the index of the optimizer step about to be taken) is the whole state of a
closed-form schedule, so save/load, fast-forward and re-planning are exact. Call ``scheduler.step()`` after every
``optimizer.step()`` (per batch, not per epoch).

>>> import torch
>>> from lrkit.schedules import from_spec
>>> model = torch.nn.Linear(2, 1)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> sched = from_spec("onecycle max_lr=0.1", total_steps=100).to_torch(opt)
>>> for _ in range(30):
...     opt.step(); sched.step()
>>> round(opt.param_groups[0]["lr"], 6), round(opt.param_groups[0]["momentum"], 6)
(0.09995, 0.85005)
"""

from __future__ import annotations

import copy
import math
import operator
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from lrkit._utils import check_positive, stacklevel_outside_lrkit, torch_dir
from lrkit.schedules.base import Schedule

__all__ = ["LRSchedulerAdapter"]

_STATE_KEYS = ("last_step", "step_count", "lr_multiplier", "base_lrs", "replans", "schedule_state")


def _as_int(value: Any) -> Any:
    """A numpy / torch integer scalar (a step read back from a checkpoint) as ``int``; anything else unchanged."""
    if isinstance(value, (bool, int, float)):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


class _StepCounter:
    """The optimizer steps an lrkit scheduler has seen taken, kept on the optimizer as one object (not plain ints:
    lrkit's Snapshot rewinds an optimizer's int attributes on a restore, which would move the count)."""

    __slots__ = ("depth", "steps")

    def __init__(self) -> None:
        self.depth = 0
        self.steps = 0


def _counter(optimizer: torch.optim.Optimizer) -> _StepCounter:
    counter = optimizer.__dict__.get("_lrkit_step_counter")
    if not isinstance(counter, _StepCounter):
        counter = optimizer.__dict__["_lrkit_step_counter"] = _StepCounter()
    return counter


def _enter_optimizer_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """A step pre-hook: one level deeper into ``optimizer.step`` (a subclass whose ``step`` calls ``super().step()``
    runs torch's hooks once per level)."""
    _counter(optimizer).depth += 1


def _count_optimizer_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """A step post-hook: count a step when the outermost ``step`` returns (a step GradScaler skips on inf gradients
    is not taken, so not counted)."""
    counter = _counter(optimizer)
    counter.depth = max(counter.depth - 1, 0)
    if counter.depth == 0:
        counter.steps += 1


def _optimizer_steps(optimizer: torch.optim.Optimizer) -> int:
    """How many steps ``optimizer`` has taken since an lrkit scheduler first counted them (0 before that)."""
    hooks = getattr(optimizer, "_optimizer_step_post_hooks", None)
    # registered once per optimizer, told by the hooks themselves: a restore that rewinds the optimizer's attributes
    # (lrkit's Snapshot, around lr0="auto"'s trials) keeps its hooks, and a second pair would count every step twice
    if hooks is not None and not any(h is _count_optimizer_step for h in hooks.values()):
        # module-level functions and one counter object on the optimizer: a copy of it stays self-contained
        optimizer.register_step_pre_hook(_enter_optimizer_step)
        optimizer.register_step_post_hook(_count_optimizer_step)
    counter = _counter(optimizer)
    # read from a scheduler's methods, never inside optimizer.step: no step is under way, so the depth is 0 (a step
    # that raised skipped its post-hook and left it one level deep, which would stop every later count)
    counter.depth = 0
    return counter.steps


def keep_step_counts(optimizers: Sequence[torch.optim.Optimizer]) -> Any:
    """A function that puts back the optimizer steps lrkit's schedulers have counted on ``optimizers`` (each, and
    only where a scheduler counts them). For steps that are not the training loop's, such as ``lrkit.find_lr``'s:
    a scheduler stepped after every training step would otherwise read the range test's steps as taken between two
    of its ``step()`` calls, and warn that it is stepped once per epoch. (A :class:`~lrkit._state.Snapshot` restore
    alone keeps the count: the steps before a monitor's rollback were the loop's.)"""
    counts = [(c, c.steps) for c in (o.__dict__.get("_lrkit_step_counter") for o in optimizers)
              if isinstance(c, _StepCounter)]

    def restore() -> None:
        for counter, steps in counts:
            counter.steps = steps
            counter.depth = 0

    return restore


def _probe_steps(schedule: Schedule) -> list[int]:
    total = schedule.total_steps
    if total is None:
        return [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000]
    return sorted({round(i * (total - 1) / 16) for i in range(17)})


#: The made-up reductions (in the plateau's own clock) a reduce-on-plateau schedule is probed with for its fingerprint:
#: its curve after them shows ``factor``, ``min_lr``, ``eps`` and any warmup or cooldown around it.
_PROBE_REDUCTIONS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
#: The rules of reduce-on-plateau that decide when it reduces (not seen in a curve), compared on a load.
_PLATEAU_RULES = ("mode", "patience", "threshold", "threshold_mode", "cooldown")


def _plateau_of(schedule: Schedule) -> Schedule | None:
    """The reduce-on-plateau schedule inside ``schedule`` (through warmups, cooldowns and re-plans), or None."""
    from lrkit.schedules.library import ReduceOnPlateau

    for _ in range(16):
        if isinstance(schedule, ReduceOnPlateau):
            return schedule
        inner = getattr(schedule, "main", None) or getattr(schedule, "inner", None)
        if not isinstance(inner, Schedule):
            return None
        schedule = inner
    return None


def _probe_copy(schedule: Schedule) -> Schedule | None:
    """A stateless stand-in for the curve of a stateful schedule: a copy of a reduce-on-plateau schedule (and what
    wraps it) with the fixed history :data:`_PROBE_REDUCTIONS`, so that two plateaus whose reductions would give
    different LRs, or that sit behind warmups of different lengths, have different fingerprints; None for any other
    stateful schedule (identified without its curve)."""
    plateau = _plateau_of(schedule)
    if plateau is None:
        return None
    probe = copy.deepcopy(schedule)
    inner = _plateau_of(probe)
    assert inner is not None
    inner.load_state_dict({**plateau.state_dict(), "reductions": list(_PROBE_REDUCTIONS), "last_step": -1,
                           "observations": 0})
    return probe


def _fingerprint(schedule: Schedule, probe_peaks: Sequence[float] = (1.0,)) -> dict[str, Any]:
    """What identifies a schedule's LR curve: its class, length, peak LR and its multiplier at 17 probe steps.

    A schedule without a peak LR is probed bound to the first of ``probe_peaks`` it accepts (absolute ``eta_min``,
    ``base_lr`` … need one; cyclic refuses a peak below its ``base_lr``), recorded as ``probe_peak`` so a load
    probes at the same one. Reduce-on-plateau (stateful: its curve depends on the metrics it saw) is probed with a
    fixed, made-up history of reductions instead of its own, and its rules (``patience``, ``mode`` …) are recorded
    as ``rules``; another stateful schedule, and a schedule that accepts none of the peaks, are identified without
    the curve.
    """
    curve: list[list[float]] = []
    probe: float | None = None
    source: Schedule | None = schedule if not schedule.state_dict() else _probe_copy(schedule)
    if source is not None:
        schedule = source
        for peak in ([schedule.peak_lr] if schedule.peak_lr is not None else probe_peaks):
            try:
                bound = schedule if schedule.peak_lr is not None else schedule.with_peak(peak)
                curve = [[t, float(bound.multiplier(t))] for t in _probe_steps(schedule)]
            except ValueError:
                continue
            probe = None if schedule.peak_lr is not None else float(peak)
            break
    fp: dict[str, Any] = {
        "label": schedule.label,
        "type": type(schedule).__name__,
        "total_steps": schedule.total_steps,
        "peak_lr": schedule.peak_lr,
        "stateful": bool(schedule.stateful),
        "curve": curve,
    }
    if probe is not None and probe != 1.0:  # 1.0: the probe of states saved before probe_peak was recorded
        fp["probe_peak"] = probe
    plateau = _plateau_of(schedule)
    if plateau is not None:
        fp["rules"] = {k: getattr(plateau, k) for k in _PLATEAU_RULES}
    return fp


def _same_fingerprint(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if (a.get("type"), a.get("total_steps"), a.get("peak_lr")) != (b.get("type"), b.get("total_steps"),
                                                                    b.get("peak_lr")):
        return False
    if "stateful" in a and "stateful" in b and a["stateful"] != b["stateful"]:  # e.g. a warmup over plateau/cosine
        return False
    if "rules" in a and "rules" in b and a["rules"] != b["rules"]:  # reduce-on-plateau: when it reduces
        return False
    ca, cb = a.get("curve") or [], b.get("curve") or []
    if not ca:  # saved from a stateful schedule before lrkit probed its curve (or before it recorded the curve)
        return True
    if not cb:  # the saved curve cannot even be drawn from this schedule
        return False
    return len(ca) == len(cb) and all(
        ta == tb and math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12) for (ta, va), (tb, vb) in zip(ca, cb)
    )


def _where_curves_part(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """``"; the two curves part at step 0: LR 0 in the saved one, 0.1 in this one"`` — what tells apart two
    fingerprints whose descriptions are the same (``('cosine', total_steps=65, peak_lr=0.1)`` twice)."""
    rules_a, rules_b = saved.get("rules") or {}, current.get("rules") or {}
    for key in _PLATEAU_RULES:
        if key in rules_a and key in rules_b and rules_a[key] != rules_b[key]:
            return f"; {key}={rules_a[key]!r} in the saved one, {key}={rules_b[key]!r} in this one"
    peak = saved.get("peak_lr")
    what, scale = ("LR", float(peak)) if peak is not None and peak == current.get("peak_lr") else ("multiplier", 1.0)
    after = " after the same reductions" if saved.get("stateful") else ""
    for (ta, va), (tb, vb) in zip(saved.get("curve") or [], current.get("curve") or []):
        if ta == tb and not math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12):
            return (f"; the two curves part at step {ta}{after}: {what} {va * scale:.6g} in the saved one, "
                    f"{vb * scale:.6g} in this one")
    return ""


def _momentum_off_hint(schedule: Schedule) -> str:
    """The spec keys that turn off the momentum a schedule sets, for an optimizer without momentum (Adagrad, LBFGS)."""
    keys: list[str] = []
    for _ in range(16):  # through the wrappers: a re-plan's inner schedule, a composition's main schedule
        warmup = getattr(schedule, "warmup", None)
        if getattr(warmup, "start_momentum", None) is not None:
            keys.append("warmup_momentum=none")
        if getattr(schedule, "const_momentum", None) is not None:
            keys.append("momentum=none")
        inner = getattr(schedule, "main", None) or getattr(schedule, "inner", None)
        if not isinstance(inner, Schedule):
            break
        schedule = inner
    if getattr(schedule, "cycle_momentum", False):
        keys.append("cycle_momentum=false")
    return " ".join(dict.fromkeys(keys)) or "cycle_momentum=false / no warmup_momentum"


def _describe(fp: dict[str, Any]) -> str:
    peak = "" if fp.get("peak_lr") is None else f", peak_lr={fp['peak_lr']:g}"
    return f"{fp.get('label')!r}, total_steps={fp.get('total_steps')}{peak}"


#: id(stateful schedule) -> (its weakref, the weakref of the scheduler it drives): not an attribute on the schedule,
#: which would make it (and the scheduler holding it) unpicklable
_DRIVEN: dict[int, tuple[weakref.ref[Any], weakref.ref[Any]]] = {}


def _warn_if_shared(schedule: Schedule, scheduler: Any) -> None:
    """Warn when the stateful ``schedule`` (reduce-on-plateau) already drives another live scheduler: its history
    (best value, counters, reductions) lives on the schedule object, so one scheduler's ``observe()`` would move the
    other's LR and a second run from the same object would start with the first one's reductions. Then record that
    it drives ``scheduler``."""
    for key in [k for k, (s, d) in _DRIVEN.items() if s() is None or d() is None]:  # (gone: forgotten)
        del _DRIVEN[key]
    held = _DRIVEN.get(id(schedule))
    other = held[1]() if held is not None and held[0]() is schedule else None
    if other is not None and other is not scheduler:
        warnings.warn(
            f"this {schedule.name} schedule object already drives another scheduler, and its history (best value, "
            "counters, reductions) lives on the object: the two schedulers share it, so one's observe() moves the "
            "other's LR. Build each scheduler from its own schedule (from_spec(...) again, or "
            "copy.deepcopy(schedule)).",
            UserWarning, stacklevel=stacklevel_outside_lrkit(),
        )
    try:
        _DRIVEN[id(schedule)] = (weakref.ref(schedule), weakref.ref(scheduler))
    except TypeError:  # (a schedule of yours with __slots__ and no __weakref__: not told)
        pass


class LRSchedulerAdapter(LRScheduler):
    """A ``torch.optim.lr_scheduler.LRScheduler`` that sets every param group's LR (and momentum) from a Schedule.

    Per group ``g`` at step ``t``::

        lr_g(t) = base_g * schedule(t, is_bias=g.get("is_bias", False)) * lr_multiplier
        base_g  = lr0 * g.get("lr_scale", 1.0)   if the schedule knows its peak LR (lr0 / max_lr in the spec)
                = g["initial_lr"]                  otherwise (the group's own LR, as torch's schedulers do; it
                                                   already carries the group's ratio, e.g. from
                                                   lrkit.scaling.param_groups, so lr_scale is not applied twice)

    Absolute parameters of a schedule (``eta_min``, ``base_lr``, ``min_lr``, ``warmup_bias_lr``) are taken
    relative to ``base_g`` in the second case, which reproduces torch's own schedulers exactly. Groups without
    ``lr_scale`` that were given different LRs lose that ratio in the first case (each takes ``lr0`` as its peak):
    a ``UserWarning`` says so, once, naming the two ways to keep it (``lr_scale`` on the groups, or no ``lr0``).
    When the schedule couples momentum (one-cycle, cyclic, Ultralytics' warmup) every group's ``momentum``
    (SGD, RMSprop) or ``betas[0]`` (Adam, AdamW …) is set too.

    Beyond torch's scheduler API:

    * ``state_dict()`` / ``load_state_dict()`` hold the step counter, the bases, ``lr_multiplier``, the re-plans
      and the schedule's own state (reduce-on-plateau), as plain numbers (``torch.load(weights_only=True)``
      works). Loading writes the LR for the restored step into the optimizer, so the load order does not matter —
      unless another scheduler had set the LRs when the state was saved (the active one of a ``SequentialLR``, or
      a later one of a ``ChainedScheduler``): then, as torch's own schedulers, it leaves the LRs to the
      optimizer's state.
    * ``seek(step)`` fast-forwards (or rewinds) to any step.
    * ``replan(total_steps=...)`` / ``replan(epochs=..., steps_per_epoch=...)`` stretches the rest of the run
      to a new length from the current step without a jump in the LR (yolov5#7343).
    * ``lr_multiplier`` (default 1.0, saved in ``state_dict``): a permanent factor on every LR set from now on —
      the hook a health monitor uses to back off the LR.
    * ``observe(metric)`` feeds reduce-on-plateau (``step()`` never takes a metric); ``schedule.observe(metric,
      step=...)`` on the schedule object it was built from does the same, as the scheduler holds that very object.
      So two schedulers built from one ``plateau`` object would share their reductions: building the second warns
      (build each from its own spec, or ``copy.deepcopy(schedule)``).
    * groups added later with ``optimizer.add_param_group()`` (a backbone unfrozen mid-run) follow the schedule
      from the next ``step()`` on, with their base taken as above.

    The LRs it sets are absolute (closed form): torch's ``SequentialLR`` can hand over to or from it, but inside
    ``ChainedScheduler`` it overrides rather than multiplies the others; put warmup/cooldown in the lrkit spec.

    Args:
        optimizer: the optimizer whose groups are scheduled.
        schedule: any :class:`~lrkit.schedules.Schedule`.
        last_step: the index of the last optimizer step already taken (``-1``: a fresh run). As in torch, the
            scheduler then sets the LR for step ``last_step + 1``.

    >>> import torch
    >>> from lrkit.schedules import from_spec
    >>> opt = torch.optim.SGD([{"params": [torch.zeros(1)], "lr_scale": 0.1}, {"params": [torch.zeros(1)]}], lr=1.0)
    >>> sched = from_spec("step lr0=0.1 step_size=2 unit=step gamma=0.5").to_torch(opt)
    >>> [round(g["lr"], 6) for g in opt.param_groups]
    [0.01, 0.1]
    >>> sched.seek(2); [round(g["lr"], 6) for g in opt.param_groups]
    [0.005, 0.05]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule, *, last_step: int = -1) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer={type(optimizer).__name__} is not a torch.optim.Optimizer")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule={schedule!r} is not an lrkit Schedule (use lrkit.schedules.from_spec)")
        step = optimizer.step
        if not hasattr(step, "_wrapped_by_lr_sched") and not hasattr(step, "__func__"):
            # torch's LRScheduler.__init__ re-wraps the bound method optimizer.step (step.__func__) and fails with an
            # AttributeError on anything else — checked before any group is touched
            raise TypeError(
                f"optimizer.step is {type(step).__name__} {getattr(step, '__name__', step)!r}, not the optimizer's "
                "own method (optimizer.step = torch.compile(optimizer.step)?): a torch LR scheduler wraps that "
                "method, so build the scheduler first and compile the step after it, or compile a function that "
                "calls it (@torch.compile def step(): optimizer.step())"
            )
        last_step = _as_int(last_step)
        if isinstance(last_step, bool) or not isinstance(last_step, int) or last_step < -1:
            raise ValueError(f"last_step={last_step!r} must be an int >= -1 (-1 starts a fresh run)")
        if schedule.stateful:
            _warn_if_shared(schedule, self)
        self._base_schedule = schedule
        self.schedule = schedule
        self._replans: list[dict[str, Any]] = []
        self._lr_multiplier = 1.0
        guessed: set[int] = set()  # groups whose initial_lr is only their current LR (a resume): not compared
        added = [g for g in optimizer.param_groups if "initial_lr" not in g]  # taken out again if a check fails
        try:
            for i, group in enumerate(optimizer.param_groups):
                if last_step == -1:
                    lr = group["lr"]
                    group.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
                elif "initial_lr" not in group:
                    guessed.add(i)
                    if schedule.peak_lr is None:
                        raise ValueError(
                            f"param_groups[{i}] has no 'initial_lr' to resume from at last_step={last_step}: load "
                            "the optimizer's state_dict first, give the schedule its peak LR (lr0=...), or resume "
                            "with load_state_dict() on a fresh scheduler"
                        )
                    lr = group["lr"]  # a tensor LR is filled in place from now on: initial_lr keeps its own copy
                    group["initial_lr"] = lr.clone() if isinstance(lr, torch.Tensor) else lr
            self._check_momentum(optimizer, optimizer.param_groups)
            self._bases = self._compute_bases(optimizer.param_groups)
            self._ratios_warned = False
            self._guessed_initial = guessed
            self._warn_lost_ratios(optimizer.param_groups)
            self._bind()
        except BaseException:  # a refused schedule leaves the optimizer's groups as they were
            for group in added:
                group.pop("initial_lr", None)
            raise
        self._rate_checked = False  # the per-epoch stepping warning is given once
        self._opt_seen = _optimizer_steps(optimizer)
        super().__init__(optimizer, last_epoch=last_step)
        self.base_lrs = list(self._bases)

    # ---- bookkeeping -----------------------------------------------------------------------------------------
    def _check_momentum(self, optimizer: torch.optim.Optimizer, groups: list[dict[str, Any]], start: int = 0) -> None:
        if not self.schedule.couples_momentum:
            return
        for i, group in enumerate(groups, start=start):
            if "momentum" not in group and "betas" not in group:
                raise ValueError(
                    f"schedule {self.schedule.label!r} sets momentum, but param_groups[{i}] of "
                    f"{type(optimizer).__name__} has neither 'momentum' nor 'betas': use an optimizer with "
                    f"momentum, or turn momentum scheduling off ({_momentum_off_hint(self.schedule)})"
                )

    def _compute_bases(self, groups: list[dict[str, Any]], start: int = 0) -> list[float]:
        peak = self.schedule.peak_lr
        bases = []
        for i, group in enumerate(groups, start=start):
            if peak is not None:
                scale = check_positive(f"param_groups[{i}]['lr_scale']", group.get("lr_scale", 1.0), allow_zero=True)
                bases.append(peak * scale)
            else:
                bases.append(float(group["initial_lr"]))
        return bases

    def _warn_lost_ratios(self, groups: list[dict[str, Any]]) -> None:
        """Warn once when groups without ``lr_scale`` were given different LRs and the spec names the peak: each
        then takes ``lr0`` as its own peak, so the ratio the user set between them (a backbone at a tenth of the
        head) is lost, silently. Compared by ``initial_lr`` (the LR the run started from), not the current LR."""
        peak = self.schedule.peak_lr
        if getattr(self, "_ratios_warned", False):
            return
        skip = getattr(self, "_guessed_initial", set())
        if peak is None:
            self._warn_unapplied_scales(groups, skip)
            return
        own = [(i, float(g["initial_lr"])) for i, g in enumerate(groups)
               if "lr_scale" not in g and i not in skip and "initial_lr" in g]
        for i, lr in own[1:]:
            if not math.isclose(lr, own[0][1], rel_tol=1e-9):
                j, first = own[0]
                self._ratios_warned = True
                key = "max_lr" if " max_lr=" in f" {self.schedule.label}" else "lr0"  # as the spec named the peak
                warnings.warn(
                    f"param_groups[{j}] and [{i}] have different LRs ({first:g}, {lr:g}) but no 'lr_scale': schedule "
                    f"{self.schedule.label!r} gives its peak LR, {key}={peak:g}, and every group without 'lr_scale' "
                    f"takes {key} as its own peak ({key} * lr_scale, lr_scale defaulting to 1), so these groups "
                    f"train at the same LR. To keep their ratio, give each group 'lr_scale' (its LR / {key}; "
                    f"lrkit.param_groups sets it), or leave {key} out of the spec so that each group's own LR is its "
                    "peak",
                    UserWarning,
                    stacklevel=stacklevel_outside_lrkit(torch_dir()),
                )
                return

    def _warn_unapplied_scales(self, groups: list[dict[str, Any]], skip: set[int]) -> None:
        """The mirror case, for a spec without ``lr0``: each group's own LR is its peak and its ``lr_scale`` is
        taken as already in it (as :func:`lrkit.param_groups` builds groups), so groups given ``lr_scale`` by hand
        but left at one LR train at that LR. Warned when two groups' ``initial_lr / lr_scale`` differ."""
        scaled = []
        for i, g in enumerate(groups):
            scale = g.get("lr_scale")
            if i in skip or "initial_lr" not in g or isinstance(scale, bool) or not isinstance(scale, (int, float)):
                continue
            if scale > 0:
                scaled.append((i, float(g["initial_lr"]), float(scale)))
        for i, lr, scale in scaled[1:]:
            j, first, first_scale = scaled[0]
            # (1e-6: a float32 tensor lr holds peak * lr_scale to ~6e-8, and a hand-made mismatch is far larger)
            if math.isclose(lr / scale, first / first_scale, rel_tol=1e-6):
                continue
            self._ratios_warned = True
            start = (f"both start at LR {lr:g}" if math.isclose(lr, first, rel_tol=1e-6) else
                     f"they start at LRs {first:g} and {lr:g}, a ratio of {lr / first:g}, not {scale / first_scale:g}")
            warnings.warn(
                f"param_groups[{j}] has lr_scale={first_scale:g} and param_groups[{i}] lr_scale={scale:g}, but "
                f"{start}: "
                f"schedule {self.schedule.label!r} gives no peak LR, so each group's own LR is its peak and its "
                "lr_scale is taken as already in it (lrkit.param_groups sets lr = peak * lr_scale). To apply the "
                "scales, give the spec its peak (lr0=...), or set each group's lr to peak * lr_scale",
                UserWarning,
                stacklevel=stacklevel_outside_lrkit(torch_dir()),
            )
            return

    def _sync_groups(self) -> None:
        """Adopt groups added by ``optimizer.add_param_group()`` after this scheduler was built (a backbone
        unfrozen mid-run): each gets its base as in ``__init__`` (``lr0 * lr_scale``, else its own LR) and follows
        the schedule from the next step on, as torch's schedulers let new groups do."""
        groups = self.optimizer.param_groups
        n = len(self._bases)
        if len(groups) == n:
            return
        if len(groups) < n:
            raise ValueError(f"the optimizer has {len(groups)} param groups, fewer than the {n} this scheduler "
                             "was built (or loaded) with: build a new scheduler for a new optimizer")
        new = groups[n:]
        self._check_momentum(self.optimizer, new, start=n)
        for group in new:
            lr = group["lr"]
            group.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
        self._bases = [*self._bases, *self._compute_bases(new, start=n)]
        self._warn_lost_ratios(groups)
        self.base_lrs = list(self._bases)
        self._bind()

    def _bind(self) -> None:
        """One schedule per group: the schedule itself, or a copy bound to the group's own LR as its peak."""
        if self.schedule.peak_lr is not None:
            self._group_schedules = [self.schedule] * len(self._bases)
        else:
            self._group_schedules = [self._group_schedule(i, b) for i, b in enumerate(self._bases)]

    def _group_schedule(self, index: int, base: float) -> Any:
        """The schedule bound to param group ``index``'s own LR ``base`` as its peak; a peak the schedule refuses
        (a group LR below ``cyclic``'s ``base_lr``) is named as the group's, not as a ``max_lr`` never written."""
        if base <= 0:
            return self.schedule
        try:
            return self.schedule.with_peak(base)
        except ValueError as e:
            raise ValueError(
                f"param group {index}'s lr={base:g} is the peak LR of {self.schedule.name!r} for that group (the "
                f"spec names none), and the schedule refuses it: {e}; give the spec its own peak (e.g. max_lr=...) "
                "or raise that group's lr"
            ) from None

    def _unshare_lrs(self) -> None:
        """Give every group its own LR tensor before LRs are written into them in place.

        An optimizer built with ``lr=torch.tensor(...)`` hands that one tensor to every group that takes the default
        (``add_param_group``'s ``setdefault``; a saved and reloaded optimizer state keeps the aliasing), so filling
        it group by group would leave every group at the last group's LR (its ``lr_scale`` lost), and would change
        ``optimizer.defaults`` for groups added later. Cloning keeps each LR a tensor (capturable / compiled steps).
        """
        default = self.optimizer.defaults.get("lr")
        seen = {id(default)} if isinstance(default, torch.Tensor) else set()
        for group in self.optimizer.param_groups:
            lr = group["lr"]
            if isinstance(lr, torch.Tensor):
                if id(lr) in seen:
                    group["lr"] = lr = lr.clone()
                seen.add(id(lr))

    def _restart_count(self) -> None:
        """Count optimizer steps per ``step()`` from here: a jump (seek, load, a SequentialLR hand-over) is no
        evidence of how the loop steps."""
        self._opt_seen = _optimizer_steps(self.optimizer)

    def _check_rate(self) -> None:
        """Warn once when ``step()`` is called once per several optimizer steps though the schedule counts
        optimizer steps (its ``steps_per_epoch`` says so): torch's habit of stepping a scheduler per epoch, which
        here would stretch the run by ``steps_per_epoch`` and leave the LR near its start, silently.

        Without ``steps_per_epoch`` the step is the user's unit (``total_steps=epochs`` stepped per epoch, as
        ``CosineAnnealingLR(T_max=epochs)``), and fewer optimizer steps than calls (a step ``GradScaler`` skipped,
        stepping per micro-batch) cannot stretch a run that way; both stay quiet.
        """
        seen = _optimizer_steps(self.optimizer)
        taken, self._opt_seen = seen - getattr(self, "_opt_seen", seen), seen
        spe = self.schedule.steps_per_epoch
        if self._rate_checked or taken < 2 or spe is None or spe < 2:
            return
        self._rate_checked = True
        warnings.warn(
            f"scheduler.step() was called once per {taken} optimizer steps, but schedule {self.schedule.label!r} "
            f"counts optimizer steps (steps_per_epoch={spe:g}): stepped like that, its run lasts {taken}x longer "
            "than planned and the LR stays near its start. Call scheduler.step() after every optimizer.step(); for "
            "an LR that changes only at epoch starts, add interval=epoch to the spec (and still step every "
            "optimizer step)",
            UserWarning,
            stacklevel=3,
        )

    def _values(self, step: int) -> list[float]:
        self._sync_groups()
        self._unshare_lrs()
        out = []
        for group, base, sched in zip(self.optimizer.param_groups, self._bases, self._group_schedules):
            if base == 0:
                out.append(0.0)
                continue
            m = sched.multiplier(step, is_bias=bool(group.get("is_bias", False)))
            out.append(base * m * self._lr_multiplier)
        return out

    def _set_momentum(self, step: int) -> None:
        mom = self.schedule.momentum(step)
        if mom is None:
            return
        defaults = self.optimizer.defaults
        shared = {id(v) for v in (defaults.get("momentum"), *tuple(defaults.get("betas") or ())[:1])
                  if isinstance(v, torch.Tensor)}
        for group in self.optimizer.param_groups:
            # a tensor momentum / beta1 (capturable or compiled steps, as a tensor LR) stays a tensor, filled in
            # place (a float in its place would make a compiled step recompile at every new value); one shared
            # with optimizer.defaults is copied first, as the LR is, so the defaults stay what was set
            if "momentum" in group:
                value = group["momentum"]
                if isinstance(value, torch.Tensor):
                    if id(value) in shared:
                        group["momentum"] = value = value.clone()
                    value.fill_(mom)
                else:
                    group["momentum"] = mom
            elif "betas" in group:
                betas = tuple(group["betas"])
                if isinstance(betas[0], torch.Tensor):
                    if id(betas[0]) in shared:
                        betas = (betas[0].clone(), *betas[1:])
                        group["betas"] = betas
                    betas[0].fill_(mom)
                else:
                    group["betas"] = (mom, *betas[1:])

    def _apply(self) -> None:
        """Write the LR (and momentum) for the current step into the optimizer, without advancing."""
        step = max(self.last_epoch, 0)
        for group, lr in zip(self.optimizer.param_groups, self._values(step)):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._set_momentum(step)
        # as torch's own step() keeps it: each group's LR in its own type, a tensor LR as a copy (not an alias)
        self._last_lr = [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else float(g["lr"])
                         for g in self.optimizer.param_groups]

    # ---- torch's API -----------------------------------------------------------------------------------------
    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The closed-form LRs at ``last_epoch`` (and, as a side effect, the momentum), as torch expects."""
        step = max(self.last_epoch, 0)
        self._set_momentum(step)
        return self._values(step)

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance one optimizer step. Takes no argument: use ``seek(step)`` to jump, ``observe(m)`` for plateau.

        ``step(0)`` alone is taken, as torch's own ``_update_lr(0)``: the restart that ``SequentialLR`` gives the
        scheduler it hands over to at a milestone in torch 2.6 and earlier (later releases call ``_update_lr(0)``).
        """
        if epoch == 0 and type(epoch) is int:
            with warnings.catch_warnings():  # torch's "the epoch parameter ... is being deprecated"
                warnings.simplefilter("ignore", UserWarning)
                if hasattr(LRScheduler, "_update_lr"):  # newer torch: what its own SequentialLR calls
                    super()._update_lr(0)
                else:
                    super().step(0)
            self._restart_count()
            return
        if epoch is not None:
            raise TypeError(
                f"step({epoch!r}): lrkit schedulers step once per optimizer step and take no argument; use "
                "seek(step) to jump to a step, or observe(metric) to feed reduce-on-plateau"
            )
        super().step()
        self._check_rate()

    def _update_lr(self, epoch: int | None = None) -> None:
        """torch's own update (newer releases); ``SequentialLR`` calls ``_update_lr(0)`` to hand over to this
        scheduler at a milestone, a jump that restarts the count of optimizer steps per ``step()``."""
        super()._update_lr(epoch)  # type: ignore[misc]
        if epoch is not None:
            self._restart_count()

    def state_dict(self) -> dict[str, Any]:
        """Plain-number state: step counter, bases, ``lr_multiplier``, re-plans and the schedule's own state."""
        self._sync_groups()  # groups added since the last step() are part of the run being saved
        return {
            "last_step": int(self.last_epoch),
            "step_count": int(self._step_count),
            "lr_multiplier": float(self._lr_multiplier),
            "base_lrs": [float(b) for b in self._bases],
            "replans": [dict(r) for r in self._replans],
            "schedule_state": self.schedule.state_dict(),
            "total_steps": self.schedule.total_steps,
            "schedule": self.schedule.label,
            "last_lr": [float(v) for v in getattr(self, "_last_lr", [])],
            "fingerprint": self._fingerprint(),
            "in_charge": self._in_charge(),
        }

    def _apply_if_in_charge(self) -> None:
        """Write the current step's LR (after a change of ``lr_multiplier``, a re-plan or a plateau reduction) only
        while the optimizer's LRs are this scheduler's: while another scheduler of a ``SequentialLR`` is in charge
        (a torch warmup before the hand-over) writing ours would overwrite its LR mid-run, and a chainable one
        (``LinearLR``) would go on from the wrong value. The change takes effect at this scheduler's next step."""
        if self._in_charge():
            self._apply()

    def _in_charge(self) -> bool:
        """Whether the optimizer's LRs are the ones this scheduler last set: False when another scheduler has set
        them since (the active one of a ``SequentialLR``, or one after it in a ``ChainedScheduler``)."""
        last = getattr(self, "_last_lr", None)
        groups = self.optimizer.param_groups  # groups added since the last step are adopted, not someone else's
        return last is not None and len(last) <= len(groups) and all(
            float(g["lr"]) == float(v) for g, v in zip(groups, last))

    def _fingerprint(self) -> dict[str, Any]:
        """The current schedule's fingerprint, cached per schedule object (replans make new ones)."""
        cached = getattr(self, "_fp_cache", None)
        if cached is None or cached[0] is not self.schedule or not cached[1]["curve"]:
            probes = (1.0, *sorted((b for b in self._bases if b > 0), reverse=True))
            cached = self._fp_cache = (self.schedule, _fingerprint(self.schedule, probes))
        return {**cached[1], "curve": [list(p) for p in cached[1]["curve"]]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (re-applying any re-plans) and write the restored step's LR to the optimizer."""
        if not isinstance(state_dict, dict):
            raise ValueError(f"state_dict must be a dict from LRSchedulerAdapter.state_dict(), got {type(state_dict)}")
        missing = [k for k in _STATE_KEYS if k not in state_dict]
        if missing:
            raise ValueError(
                f"not an lrkit scheduler state: missing {', '.join(missing)} (was it saved from a torch scheduler?)"
            )
        bases = [float(b) for b in state_dict["base_lrs"]]
        if len(bases) != len(self.optimizer.param_groups):
            raise ValueError(
                f"the saved state has {len(bases)} param groups, the optimizer has {len(self.optimizer.param_groups)}"
            )
        schedule = self._base_schedule
        for r in state_dict["replans"]:
            schedule = schedule.replan(at_step=int(r["at_step"]), total_steps=int(r["total_steps"]),
                                       steps_per_epoch=r.get("steps_per_epoch"))
        saved = state_dict.get("fingerprint")  # absent in states saved before lrkit recorded it
        current = None if saved is None else _fingerprint(schedule, (float(saved.get("probe_peak", 1.0)),))
        if saved is not None and current is not None and not _same_fingerprint(saved, current):
            longer = ""
            if (saved.get("label"), saved.get("type")) == (current.get("label"), current.get("type")) and (
                    saved.get("total_steps") is not None and current.get("total_steps") is not None
                    and saved.get("total_steps") != current.get("total_steps")):
                # the same spec with a new run length: resuming a run trained longer or shorter (yolov5#7343)
                longer = (f"; to change the run length, load it into that scheduler, then call "
                          f"scheduler.replan(total_steps={current['total_steps']}) (or replan(epochs=...)): the "
                          "rest of the run stretches, the current LR does not move")
            if _describe(saved) == _describe(current):  # two schedules that print alike (Python-built ones)
                longer += _where_curves_part(saved, current)
            raise ValueError(
                f"the scheduler state was saved from a different schedule ({_describe(saved)}) than this scheduler's "
                f"({_describe(current)}): loading it would silently change the LR curve. Build the "
                f"scheduler from the same spec (and total_steps) the state was saved with, then load it{longer}"
            )
        schedule.load_state_dict(state_dict["schedule_state"])
        self.schedule = schedule
        self._replans = [dict(r) for r in state_dict["replans"]]
        self._bases = bases
        self.base_lrs = list(bases)
        self._lr_multiplier = float(state_dict["lr_multiplier"])
        self.last_epoch = int(state_dict["last_step"])
        self._step_count = int(state_dict["step_count"])
        self._restart_count()
        self._bind()
        if state_dict.get("in_charge", True):
            self._apply()
        else:
            # another scheduler of a SequentialLR / ChainedScheduler set the LRs it was saved with: they come back
            # with the optimizer's state (as torch restores its own schedulers), and writing ours would override them
            self._last_lr = [float(v) for v in state_dict.get("last_lr", [])] or list(self._bases)

    # ---- lrkit's additions -----------------------------------------------------------------------------------
    @property
    def total_steps(self) -> int | None:
        """The run length in optimizer steps (after any re-plan)."""
        return self.schedule.total_steps

    @property
    def current_step(self) -> int:
        """The index of the optimizer step the current LR is for."""
        return max(self.last_epoch, 0)

    @property
    def lr_multiplier(self) -> float:
        """A permanent factor on every LR this scheduler sets (1.0 by default; saved in ``state_dict``)."""
        return self._lr_multiplier

    @lr_multiplier.setter
    def lr_multiplier(self, value: float) -> None:
        v = check_positive("lr_multiplier", value)
        if math.isinf(v):
            raise ValueError(f"lr_multiplier={value!r} must be finite")
        self._lr_multiplier = v
        self._apply_if_in_charge()

    def seek(self, step: int) -> None:
        """Jump to optimizer ``step`` (fast-forward or rewind) and set its LR and momentum.

        >>> import torch
        >>> from lrkit.schedules import from_spec
        >>> opt = torch.optim.SGD([torch.zeros(1)], lr=0.1)
        >>> sched = from_spec("linear lrf=0.0", total_steps=10).to_torch(opt)
        >>> sched.seek(5); round(opt.param_groups[0]["lr"], 12)
        0.05
        """
        step = _as_int(step)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step={step!r} must be an int >= 0")
        self.last_epoch = step
        self._restart_count()
        self._apply()

    def replan(
        self, total_steps: int | None = None, *, epochs: float | None = None, steps_per_epoch: float | None = None
    ) -> None:
        """Stretch the rest of the run to a new length from the current step; the current LR does not change.

        >>> import torch
        >>> from lrkit.schedules import from_spec
        >>> opt = torch.optim.SGD([torch.zeros(1)], lr=0.1)
        >>> sched = from_spec("cosine lrf=0.01", epochs=10, steps_per_epoch=10).to_torch(opt)
        >>> sched.seek(50); before = opt.param_groups[0]["lr"]
        >>> sched.replan(epochs=20); opt.param_groups[0]["lr"] == before, sched.total_steps
        (True, 200)
        """
        at = self.current_step
        new = self.schedule.replan(at_step=at, total_steps=total_steps, epochs=epochs,
                                   steps_per_epoch=steps_per_epoch)
        self._replans.append({"at_step": at, "total_steps": int(new.total_steps),  # type: ignore[arg-type]
                              "steps_per_epoch": new.steps_per_epoch})
        self.schedule = new
        self._bind()
        self._apply_if_in_charge()

    def observe(self, metric: float) -> bool:
        """Feed a validation metric to reduce-on-plateau; a reduction applies from the current step on.

        Returns True when the LR was reduced. Raises ``TypeError`` for closed-form schedules.

        >>> import torch
        >>> from lrkit.schedules import from_spec
        >>> opt = torch.optim.SGD([torch.zeros(1)], lr=0.1)
        >>> sched = from_spec("plateau patience=0 factor=0.5").to_torch(opt)
        >>> sched.observe(1.0), sched.observe(1.0), opt.param_groups[0]["lr"]
        (False, True, 0.05)
        """
        if isinstance(metric, torch.Tensor):
            if metric.numel() != 1:
                raise ValueError(f"metric=tensor of shape {tuple(metric.shape)} must be one number (e.g. the mean "
                                 "validation loss: metric.mean())")
            metric = float(metric.detach())
        reduced = self.schedule.observe(metric, step=self.current_step)
        self._apply_if_in_charge()
        return reduced
