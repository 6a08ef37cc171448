"""Schedule names → constructors: a registry of frozen entries (for specs, YAML, the CLI and ``--list``).

>>> from lrkit.schedules import available
>>> [e.name for e in available()][:4]
['constant', 'step', 'multistep', 'exponential']
>>> lookup("CosineAnnealingLR").name
'cosine'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lrkit._utils import did_you_mean
from lrkit.schedules import library as lib
from lrkit.schedules.base import Schedule

__all__ = ["ScheduleInfo", "available", "lookup", "register"]


@dataclass(frozen=True)
class ScheduleInfo:
    """A registry entry: how a name in a spec becomes a :class:`Schedule`.

    Attributes:
        name: the canonical name (``"cosine"``).
        constructor: a class or function taking keyword-only parameters and ``total_steps``/``epochs``/
            ``steps_per_epoch``, returning a Schedule.
        description: one line for ``lrkit schedule --list``.
        aliases: other accepted names (case and ``-``/``_`` are ignored).
        torch_equivalent: the torch (or transformers/Ultralytics) scheduler it reproduces.
        warmup_prefix: the default of ``warmup_prefix`` — whether the main schedule's clock starts after the
            warmup (True) or runs on the global clock with the warmup blended in (False, Ultralytics).
        key_aliases: spec keys accepted as synonyms (``lr0`` → ``max_lr`` for cyclic/one-cycle).
        prepare: optional ``(params, warmup_steps) -> params`` filling defaults that depend on the warmup.

    >>> e = lookup("cosine")
    >>> e.name, e.unit, e.warmup_prefix, e.defaults["T_max"]
    ('cosine', 'step', False, None)
    """

    name: str
    constructor: Callable[..., Schedule]
    description: str
    aliases: tuple[str, ...] = ()
    torch_equivalent: str = ""
    warmup_prefix: bool = False
    key_aliases: tuple[tuple[str, str], ...] = ()
    prepare: Callable[[dict[str, Any], int], dict[str, Any]] | None = None

    def _signature(self) -> Mapping[str, inspect.Parameter]:
        return inspect.signature(self.constructor).parameters

    @property
    def parameters(self) -> tuple[str, ...]:
        """The keyword parameters the constructor accepts, in order."""
        return tuple(p.name for p in self._signature().values()
                     if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))

    @property
    def required(self) -> tuple[str, ...]:
        """Parameters without a default (a spec must give them)."""
        return tuple(p.name for p in self._signature().values()
                     if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is inspect.Parameter.empty)

    @property
    def defaults(self) -> dict[str, Any]:
        """Parameter defaults, for documentation and ``--list``."""
        return {p.name: p.default for p in self._signature().values()
                if p.default is not inspect.Parameter.empty}

    @property
    def unit(self) -> str:
        """The default unit of the family's time-like parameters (``"step"`` or ``"epoch"``)."""
        return str(self.defaults.get("unit", "step"))


def _timescale_from_warmup(params: dict[str, Any], warmup_steps: int) -> dict[str, Any]:
    # transformers' get_inverse_sqrt_schedule: timescale = num_warmup_steps or 10_000
    if "timescale" not in params:
        params = {**params, "timescale": warmup_steps or 10_000, "unit": "step"}
    return params


_REGISTRY: dict[str, ScheduleInfo] = {}


def register(entry: ScheduleInfo, *, overwrite: bool = False) -> ScheduleInfo:
    """Add a schedule family to the registry (so specs, YAML and the CLI know its name).

    >>> from lrkit.schedules import Constant
    >>> _ = register(ScheduleInfo("flat", Constant, "constant, under another name"))
    >>> lookup("flat").constructor is Constant
    True
    >>> _ = _REGISTRY.pop("flat")
    """
    if not isinstance(entry, ScheduleInfo):
        raise TypeError(f"entry={entry!r} must be a ScheduleInfo")
    names = [entry.name, *entry.aliases]
    index = _index()
    # a name taken by another entry, also one of the same name (register(ScheduleInfo("cosine", ...)) replaced the
    # built-in cosine silently); the very same entry again (a module imported twice) changes nothing and is allowed
    taken = [n for n in names if not overwrite and _norm(n) in index and _REGISTRY[index[_norm(n)]] != entry]
    if taken:
        raise ValueError(f"schedule name(s) {', '.join(taken)} already registered (pass overwrite=True)")
    _REGISTRY[entry.name] = entry
    return entry


def available() -> tuple[ScheduleInfo, ...]:
    """Every registered schedule family, in registration order.

    >>> [(e.name, e.torch_equivalent) for e in available() if e.name.startswith("cos")]
    [('cosine', 'CosineAnnealingLR'), ('cosine_restarts', 'CosineAnnealingWarmRestarts')]
    """
    return tuple(_REGISTRY.values())


def _norm(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def _index() -> dict[str, str]:
    idx: dict[str, str] = {}
    for e in _REGISTRY.values():
        for n in (e.name, *e.aliases):
            idx[_norm(n)] = e.name
    return idx


def lookup(name: str) -> ScheduleInfo:
    """The entry for ``name`` (or an alias); ``ValueError`` naming the closest valid name otherwise.

    >>> lookup("1cycle").name, lookup("OneCycleLR").required, lookup("cyclic").required
    ('onecycle', (), ('base_lr',))
    >>> lookup("warm-restart")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown schedule 'warm-restart'. Did you mean 'cosine_restarts'? Valid: constant, step, ...
    """
    idx = _index()
    key = _norm(name)
    if key not in idx:
        hint = did_you_mean(key, idx)
        if hint:  # suggest the canonical name even when the closest match is an alias
            hint = f" Did you mean {idx[hint.split(chr(39))[1]]!r}?"
        valid = ", ".join(e.name for e in _REGISTRY.values())
        raise ValueError(f"unknown schedule {str(name)!r}.{hint} Valid: {valid} (lrkit schedule --list)")
    return _REGISTRY[idx[key]]


for _entry in (
    ScheduleInfo("constant", lib.Constant, "constant LR: m = 1", ("const", "fixed"), "LambdaLR(lambda t: 1)"),
    ScheduleInfo("step", lib.StepDecay, "x gamma every step_size epochs (÷10 every 30 epochs is the classic)",
                 ("steplr", "step_decay"), "StepLR"),
    ScheduleInfo("multistep", lib.MultiStep, "x gamma at each milestone (epochs)",
                 ("multisteplr", "multi_step"), "MultiStepLR"),
    ScheduleInfo("exponential", lib.Exponential, "x gamma per epoch (or per step with unit=step)",
                 ("exp", "exponentiallr"), "ExponentialLR"),
    ScheduleInfo("polynomial", lib.Polynomial, "(1 - t/N) ** power to zero over total_iters",
                 ("poly", "polynomiallr"), "PolynomialLR"),
    ScheduleInfo("linear", lib.Linear, "linear lr0 -> lr0*lrf over the run (Ultralytics; start/end_factor as torch)",
                 ("linearlr",), "LinearLR"),
    ScheduleInfo("cosine", lib.Cosine, "cosine lr0 -> lr0*lrf over the run (Ultralytics cos_lr; eta_min as torch)",
                 ("cos", "cosineannealinglr", "cosine_annealing"), "CosineAnnealingLR"),
    ScheduleInfo("cosine_restarts", lib.CosineRestarts, "cosine with warm restarts every T_0 * T_mult**i (SGDR)",
                 ("sgdr", "warm_restarts", "cosineannealingwarmrestarts"), "CosineAnnealingWarmRestarts"),
    ScheduleInfo("cyclic", lib.Cyclic, "triangular / triangular2 / exp_range cycles, momentum cycled inversely",
                 ("cycliclr", "clr"), "CyclicLR", warmup_prefix=True, key_aliases=(("lr0", "max_lr"),)),
    ScheduleInfo("onecycle", lib.OneCycle, "one-cycle: up to max_lr and down to max_lr/(div*final_div), momentum "
                 "inverse", ("one_cycle", "1cycle", "onecyclelr"), "OneCycleLR", warmup_prefix=True,
                 key_aliases=(("lr0", "max_lr"),)),
    ScheduleInfo("wsd", lib.WSD, "warmup-stable-decay with linear / cosine / 1-sqrt decay",
                 ("warmup_stable_decay", "trapezoidal"), "transformers get_wsd_schedule", warmup_prefix=True),
    ScheduleInfo("linear_to_zero", lib.LinearToZero, "linear decay to zero after the warmup (D2Z)",
                 ("d2z", "linear_decay_to_zero"), "transformers get_linear_schedule_with_warmup", warmup_prefix=True),
    ScheduleInfo("inverse_sqrt", lib.InverseSqrt, "1/sqrt(1 + t/timescale) after the warmup",
                 ("rsqrt", "inverse_square_root"), "transformers get_inverse_sqrt_schedule", warmup_prefix=True,
                 prepare=_timescale_from_warmup),
    ScheduleInfo("plateau", lib.ReduceOnPlateau, "x factor when the metric stalls (stateful: observe(metric))",
                 ("reduce_on_plateau", "reducelronplateau"), "ReduceLROnPlateau", warmup_prefix=True),
    ScheduleInfo("ultralytics", lib._ultralytics, "Ultralytics' linear/cosine (cos_lr) with its warmup and defaults",
                 ("yolo",), "Ultralytics trainer (LambdaLR + warmup)"),
):
    register(_entry)
