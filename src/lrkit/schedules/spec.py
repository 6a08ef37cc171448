"""Spec strings and dicts → schedules: the same words in Python, YAML and on the command line.

A spec is ``"<name> key=value key=value ..."`` or a dict ``{"name": ..., key: value, ...}`` (YAML).
Values are numbers, ``true``/``false``, ``none``, words, or lists (``milestones=30,60,90`` or ``[30,60,90]``).

Keys are the family's own parameters (torch's names where torch has the policy) plus the generic ones every
family takes:

* run length: ``epochs``, ``steps_per_epoch``, ``total_steps`` (also keyword arguments of :func:`from_spec`);
* warmup: ``warmup_steps`` | ``warmup_epochs`` (fractional), ``warmup_type`` (``linear``, ``exponential``,
  ``cosine``, ``1-sqrt``), ``warmup_start_factor``, ``warmup_bias_lr`` (groups flagged ``is_bias`` start there
  and come down), ``warmup_momentum`` (ramped up to the schedule's momentum), ``warmup_prefix``;
* ``momentum``: a constant momentum outside the warmup (Ultralytics' ``momentum``);
* cooldown: ``cooldown_steps`` | ``cooldown_epochs`` | ``cooldown_frac``, ``cooldown_type`` (``linear``,
  ``cosine``, ``1-sqrt``), ``cooldown_min_ratio``.

>>> s = from_spec("cosine lr0=0.01 lrf=0.01 warmup_epochs=3", epochs=100, steps_per_epoch=50)
>>> [p.name for p in s.phases], s.lr(0), round(s.lr(5000), 12)
(['warmup', 'decay'], 0.0, 0.0001)
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from lrkit._utils import check_positive, named_keywords, unknown_name_error
from lrkit.schedules.base import (
    _SHAPE_ALIASES,
    WARMUP_TYPES,
    Composed,
    Cooldown,
    Schedule,
    Warmup,
    _check_choice,
    resolve_timeline,
)
from lrkit.schedules.library import _bool, _steps_from
from lrkit.schedules.registry import ScheduleInfo, lookup

__all__ = ["GENERIC_KEYS", "TIME_KEYS", "from_spec", "parse_spec"]

TIME_KEYS = ("epochs", "steps_per_epoch", "total_steps")
WARMUP_KEYS = ("warmup_steps", "warmup_epochs", "warmup_type", "warmup_start_factor", "warmup_bias_lr",
               "warmup_momentum", "warmup_prefix")
COOLDOWN_KEYS = ("cooldown_steps", "cooldown_epochs", "cooldown_frac", "cooldown_type", "cooldown_min_ratio")
GENERIC_KEYS = (*WARMUP_KEYS, "momentum", *COOLDOWN_KEYS)

_INT = re.compile(r"[+-]?\d+")



#: the keys that set where a family's LR ends (its lowest, for cyclic): a peer's ``min_lr``/``final_lr``/... is
#: answered with the first one the family takes, and a family taking none says so (not the closest spelling)
_FINAL = ("eta_min", "min_lr", "lrf", "min_lr_ratio", "base_lr", "final_div_factor")
#: other libraries' names for a spec key -> lrkit's, the first the family takes: ``cosine lr=0.1`` is told it is
#: ``lr0`` (not asked whether it meant ``lrf``), ``min_lr`` is the absolute floor ``eta_min`` where the family has one
_SYNONYMS: dict[str, tuple[str, ...]] = {
    **{k: ("lr0", "max_lr") for k in ("lr", "learning_rate", "peak_lr", "init_lr", "initial_lr")},
    **{k: _FINAL for k in ("min_lr", "final_lr", "end_lr", "lr_min", "minimum_lr")},
}
#: the final-LR keys that are fractions of the peak (the others are absolute LRs, or final_div_factor)
_RATIO_FINAL = ("lrf", "min_lr_ratio")
_MEANING = {"lr0": "the peak LR", "max_lr": "the peak LR", "eta_min": "the absolute final LR",
            "min_lr": "the absolute final LR", "lrf": "the final LR as a fraction of lr0",
            "min_lr_ratio": "the final LR as a fraction of lr0", "base_lr": "the lowest LR of each cycle",
            "final_div_factor": "the final LR is lr0 / (div_factor * final_div_factor)"}

def _scalar(text: str) -> Any:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    low = t.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null", "~"):
        return None
    # a number pasted from a paper or a web page may carry U+2212 MINUS SIGN ('1e\u22123'), which float() refuses:
    # it is read as '-' in a number (a word keeps it)
    num = t.replace("\u2212", "-")
    if _INT.fullmatch(num):
        return int(num)
    try:
        return float(num)
    except ValueError:
        return t


def _value(text: str) -> Any:
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        return [_scalar(x) for x in t[1:-1].split(",") if x.strip()]
    if "," in t:
        items = [_scalar(x) for x in t.split(",") if x.strip()]
        # "lr0=0.1," (a stray trailing comma): the one value, not a list of one ("lr0=[0.1] must be a number")
        return items[0] if len(items) == 1 else items
    return _scalar(t)


def _join_equals(tokens: list[str]) -> list[str]:
    """Join a ``key=value`` written with spaces around ``=`` (``lr0 = 0.1``, ``lr0 =0.1``, ``lr0= 0.1``) into one
    token. The name (the first token) never takes a value, and a complete ``key=value`` never takes more, so
    ``"cosine =3"`` keeps ``=3`` as a token of its own, a value with no key.

    >>> _join_equals(["cosine", "lr0", "=", "0.1", "lrf=", "0.01", "=3"])
    ['cosine', 'lr0=0.1', 'lrf=0.01', '=3']
    """
    out = tokens[:1]
    for tok in tokens[1:]:
        prev = out[-1] if len(out) > 1 else None
        if prev is not None and ((tok.startswith("=") and "=" not in prev)  # key | =value
                                 or (prev.endswith("=") and prev.count("=") == 1 and "=" not in tok)):  # key= | value
            out[-1] = prev + tok
        else:
            out.append(tok)
    return out


def _malformed(tok: str) -> str | None:
    """What is wrong with a ``key=value`` token, with the valid form; ``None`` when it is well formed.

    >>> _malformed("lr0=0.1") is None, _malformed("=3")
    (True, "the value '3' has no key: expected key=value, the parameter's name before '=' (e.g. 'lr0=3')")
    """
    key, sep, val = tok.partition("=")
    if not sep:
        # lr0:0.1 (a YAML/dict habit); not a URL or a path (http://x, C:/x: no key 'http' with value '//x')
        other = re.fullmatch(r"([A-Za-z_]\w*)\s*(?::|->)\s*(?![/\\])(\S+)", tok)
        if other:
            return f"expected key=value, with '=' between the key and its value: '{other[1]}={other[2]}'"
        return f"expected key=value, e.g. '{tok}=...' (no spaces inside a value; quote one that has them)"
    if "=" in val:
        return f"'=' appears {tok.count('=')} times: expected key=value, one '=' between the key and its value"
    if not key and not val:
        return "a bare '=' with neither key nor value: expected key=value, e.g. 'lr0=0.01'"
    if not key:
        return f"the value {val!r} has no key: expected key=value, the parameter's name before '=' (e.g. 'lr0={val}')"
    if not val:
        return f"{key!r} has no value: expected key=value, the value right after '=' (e.g. '{key}=<value>')"
    return None


def parse_spec(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split a spec into its family name and a dict of typed parameters (nothing is validated yet).

    >>> parse_spec("multistep lr0=0.1 milestones=30,60,90 gamma=0.1")
    ('multistep', {'lr0': 0.1, 'milestones': [30, 60, 90], 'gamma': 0.1})
    >>> parse_spec({"name": "cosine", "lr0": "1e-3"})
    ('cosine', {'lr0': 0.001})
    """
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise ValueError(
                f"a schedule dict needs a 'name' (e.g. {{'name': 'cosine', 'lr0': 0.01}}), got {dict(spec)}"
            )
        name = spec["name"]
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"schedule name={name!r} must be a non-empty string")
        # YAML reads 1e-3 as a string: parse string values like the CLI does
        params = {str(k): (_value(v) if isinstance(v, str) else v) for k, v in spec.items() if k != "name"}
        return name.strip(), params
    if not isinstance(spec, str):
        raise ValueError(f"spec={spec!r} must be a string like 'cosine lr0=0.01', a dict, or a Schedule")
    # any Unicode space (a no-break space pasted from a web page) separates tokens like a plain one
    text = "".join(" " if ch.isspace() else ch for ch in spec.strip())
    text = re.sub(r"\s*,\s*", ",", text)  # "milestones=[30, 60]" is one token
    text = re.sub(r"\[\s*|\s*\]", lambda m: m.group(0).strip(), text)
    try:
        tokens = _join_equals(shlex.split(text))
    except ValueError as e:
        raise ValueError(f"cannot parse spec {spec!r}: {e}") from None
    if not tokens:
        raise ValueError("empty schedule spec: give a name, e.g. 'cosine lr0=0.01 lrf=0.01'")
    name, rest = tokens[0], tokens[1:]
    if "=" in name:
        # "cosine,lr0=0.01", "cosine:lr0=0.01", "cosine(lr0=0.01, lrf=0.1)": a separator joined the name to the keys
        joined = re.fullmatch(r"([A-Za-z_][\w-]*)\s*([,:;(])(.*?)\)?", " ".join(tokens))
        if joined and "=" in joined[3]:
            what = {",": "a comma", ":": "a colon", ";": "a semicolon", "(": "parentheses"}[joined[2]]
            body = joined[3]
            if joined[2] == "(":  # the ')' closing the name's '(' goes, wherever it is: cosine(lr0=0.1) lrf=0.1
                depth = 0
                for k, ch in enumerate(body):
                    depth += (ch == "(") - (ch == ")")
                    if depth < 0:
                        body = f"{body[:k]} {body[k + 1:]}"
                        break
            keys = re.sub(r",(?![^\[]*\])", " ", body).split()  # commas between keys, not inside [30,60]
            raise ValueError(f"spec {spec!r}: separate the schedule name from its keys with a space, not {what}, "
                             f"e.g. {' '.join([joined[1], *keys])!r}")
        example = name if _malformed(name) is None else "lr0=0.01"
        raise ValueError(f"spec {spec!r} must start with the schedule name, then key=value pairs, e.g. "
                         f"'cosine {example}'")
    params: dict[str, Any] = {}
    for tok in rest:
        why = _malformed(tok)
        if why is not None:
            spaced = _spaced_name(tokens)
            if spaced is not None:  # 'cosine restarts T_0=10': a family's name written with spaces, not a key
                keys = " ".join(t for t in tokens if "=" in t)
                raise ValueError(f"spec {spec!r}: a schedule's name has no spaces: did you mean {spaced!r}? e.g. "
                                 f"{' '.join([spaced, keys]).strip()!r}")
            raise ValueError(f"bad token {tok!r} in spec {spec!r}: {why}")
        key, _, val = tok.partition("=")
        if key in params:
            raise ValueError(f"{key} is given twice in spec {spec!r}")
        params[key] = _value(val)
    return name, params


def _spaced_name(tokens: list[str]) -> str | None:
    """The registered family that the spec's leading words (those before any ``key=value``) spell when joined by
    ``_`` (``cosine restarts`` -> ``cosine_restarts``, ``one cycle`` -> ``onecycle``), or ``None``."""
    words: list[str] = []
    for tok in tokens:
        if "=" in tok:
            break
        words.append(tok)
    for k in range(len(words), 1, -1):
        try:
            return lookup("_".join(words[:k])).name
        except ValueError:
            continue
    return None


def _label(info: ScheduleInfo, params: Mapping[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return ",".join(fmt(x) for x in v)
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    return " ".join([info.name, *(f"{k}={fmt(v)}" for k, v in params.items())])


@named_keywords
def from_spec(
    spec: str | Mapping[str, Any] | Schedule,
    *,
    epochs: float | None = None,
    steps_per_epoch: float | None = None,
    total_steps: int | None = None,
) -> Schedule:
    """Build a :class:`Schedule` from a spec string or dict (a Schedule is returned as it is).

    The run length: ``total_steps`` if given, else ``epochs * steps_per_epoch`` (keys in the spec or keyword
    arguments here; giving both with different values is an error). ``steps_per_epoch`` converts epoch-valued
    parameters. With warmup (``warmup_prefix`` on) or cooldown keys, the main schedule is fitted into what is left,
    so ``total_steps`` is always the whole run.

    Errors name the bad key or value and suggest the closest valid one.

    >>> round(from_spec("step lr0=0.1 step_size=30 gamma=0.1", epochs=90, steps_per_epoch=100).lr(3000), 12)
    0.01
    >>> round(from_spec("onecycle max_lr=0.1", total_steps=1000).lr(299), 12)
    0.1
    >>> from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=200 mode=triangular2").lr(600)
    0.0505
    >>> from_spec("wsd lr0=0.001 warmup_steps=100 decay_frac=0.1", total_steps=1000).lr(500)
    0.001
    >>> from_spec("cosine lr0=0.01 lfr=0.01", total_steps=10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown cosine parameter 'lfr'. Did you mean 'lrf'? Valid: ...
    """
    if isinstance(spec, Schedule):
        return spec
    name, params = parse_spec(spec)
    info = lookup(name)
    for alias, target in info.key_aliases:
        if alias in params:
            if target in params:
                raise ValueError(f"{alias}={params[alias]!r} and {target}={params[target]!r} are the same thing "
                                 f"for {info.name!r}: give {target}")
            params[target] = params.pop(alias)
    label = _label(info, params)

    # the run length: spec keys and keyword arguments must agree
    timeline = {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "total_steps": total_steps}
    for key in TIME_KEYS:
        if key in params:
            v = params.pop(key)
            if v is not None and timeline[key] is not None:  # name a non-number before comparing the two
                check_positive(key, v)
                check_positive(key, timeline[key])
            if timeline[key] is not None and v is not None and float(v) != float(timeline[key]):  # type: ignore[arg-type]
                raise ValueError(f"{key}={v!r} in the spec disagrees with {key}={timeline[key]!r} given separately")
            if v is not None:
                timeline[key] = v
    total, spe = resolve_timeline(**timeline)  # type: ignore[arg-type]

    accepted = set(info.parameters) - set(TIME_KEYS)
    valid = sorted(accepted | set(GENERIC_KEYS) | set(TIME_KEYS) | {a for a, _ in info.key_aliases})
    for key in params:
        if key not in accepted and key not in GENERIC_KEYS:
            same = [v for v in valid if v.lower() == key.lower()]  # difflib misses 'LR0' -> 'lr0'
            lengths = [f"{key}_{unit}" for unit in ("steps", "epochs", "frac") if f"{key}_{unit}" in valid]
            if lengths:  # 'warmup=10': a length, not the closest spelling ('warmup_type', whose hint would then fail)
                also = f" (or {' / '.join(lengths[1:])})" if len(lengths) > 1 else ""
                raise ValueError(f"unknown {info.name} parameter {key!r}. Did you mean {lengths[0]!r}?{also} Valid: "
                                 f"{', '.join(valid)}")
            if same:
                raise ValueError(f"unknown {info.name} parameter {key!r}. Did you mean {same[0]!r}? (keys are "
                                 f"case-sensitive) Valid: {', '.join(valid)}")
            ours = next((k for k in _SYNONYMS.get(key.lower(), ()) if k in valid), None)
            if ours is not None:  # 'lr=0.1': the peak, not the closest spelling ('lrf', a different meaning)
                raise ValueError(f"unknown {info.name} parameter {key!r}: lrkit calls it {ours}= ({_MEANING[ours]}). "
                                 f"Valid: {', '.join(valid)}")
            if key in _FINAL:  # another family's final-LR key ('wsd lrf=0.01'): this family's own, not 'lr0'
                ratio = key in _RATIO_FINAL
                theirs = sorted((k for k in _FINAL if k in accepted), key=lambda k: (k in _RATIO_FINAL) != ratio)
                if theirs:
                    raise ValueError(f"unknown {info.name} parameter {key!r}: {info.name} sets its final LR with "
                                     f"{theirs[0]}= ({_MEANING[theirs[0]]}). Valid: {', '.join(valid)}")
            if _SYNONYMS.get(key.lower()) == _FINAL or key in _FINAL:  # not the closest spelling: 'max_lr', ...
                raise ValueError(f"unknown {info.name} parameter {key!r}: {info.name} takes no final LR (its shape "
                                 "sets where the LR ends; eta_min= or lrf= set it in cosine, min_lr= in plateau). "
                                 f"Valid: {', '.join(valid)}")
            raise unknown_name_error(f"{info.name} parameter", key, valid, ignore_case=True)  # t0 -> T_0
    missing = [k for k in info.required if k not in params]
    if missing:
        raise ValueError(f"schedule {info.name!r} needs {', '.join(f'{k}=...' for k in missing)} (spec {label!r})")

    if "warmup_steps" in params and "warmup_epochs" in params:  # also for families that own both keys
        raise ValueError(f"warmup_steps={params['warmup_steps']!r} and warmup_epochs={params['warmup_epochs']!r} "
                         "give the warmup length twice: keep one")
    if "warmup_prefix" in params and "warmup_prefix" not in accepted:
        # read as every other on/off key is (three_phase, cycle_momentum): 1/0 and numpy booleans from a sweep too
        params["warmup_prefix"] = _bool("warmup_prefix", params["warmup_prefix"])
    if "warmup_prefix" in params and "warmup_prefix" not in accepted and {"warmup_steps", "warmup_epochs"} & accepted:
        _own_warmup_prefix(info, params.pop("warmup_prefix"))
    generic = {k: params.pop(k) for k in list(params) if k in GENERIC_KEYS and k not in accepted}
    try:
        if not generic:
            sched = info.constructor(**params, total_steps=total, steps_per_epoch=spe)
        else:
            sched = _compose(info, params, generic, total, spe)
    except TypeError as e:  # a wrongly typed value that slipped past validation
        raise ValueError(f"schedule {info.name!r}: {e} (spec {label!r})") from None
    sched.label = label
    return sched


def _own_warmup_prefix(info: ScheduleInfo, value: Any) -> None:
    """``warmup_prefix`` for a family that builds its own warmup (``wsd``, ``ultralytics``): its fixed value is a
    no-op, the other one an error that says what the family does instead."""
    if not isinstance(value, bool):
        raise ValueError(f"warmup_prefix={value!r} must be true or false")
    if value == info.warmup_prefix:
        return
    does = ("always puts its warmup in front of the schedule" if info.warmup_prefix else
            "blends its warmup into the schedule (as Ultralytics' trainer does)")
    other = ("'constant lr0=... warmup_steps=... cooldown_frac=...' (blended by warmup_prefix=false)"
             if info.warmup_prefix else "'cosine lr0=... warmup_epochs=3 warmup_prefix=true'")
    raise ValueError(f"warmup_prefix={str(value).lower()}: {info.name!r} {does}; drop warmup_prefix, or use a "
                     f"generic warmup, e.g. {other}")


def _compose(
    info: ScheduleInfo, params: dict[str, Any], generic: dict[str, Any], total: int | None, spe: float | None
) -> Schedule:
    for group, lengths in (("warmup", ("warmup_steps", "warmup_epochs")),
                           ("cooldown", ("cooldown_steps", "cooldown_epochs", "cooldown_frac"))):
        options = [k for k in generic if k.startswith(group) and k not in lengths]
        if options and not any(k in generic for k in lengths):
            raise ValueError(
                f"{', '.join(options)} without a {group} length has no effect: add {' or '.join(lengths)}=..."
            )
    w = _steps_from("warmup", generic.get("warmup_steps"), generic.get("warmup_epochs"), None, total, spe,
                    allow_zero=True) or 0
    if "warmup_type" in generic:  # checked even for a zero-length warmup, so a typo never passes silently
        _check_choice("warmup_type", generic["warmup_type"], WARMUP_TYPES, _SHAPE_ALIASES)
    c = _steps_from("cooldown", generic.get("cooldown_steps"), generic.get("cooldown_epochs"),
                    generic.get("cooldown_frac"), total, spe) or 0
    prefix = generic.get("warmup_prefix", info.warmup_prefix)
    if not isinstance(prefix, bool):
        raise ValueError(f"warmup_prefix={prefix!r} must be true or false")
    main_total = None
    if total is not None:
        main_total = total - (w if prefix else 0) - c
        if main_total < 1:
            raise ValueError(_no_room(info.name, generic, w if prefix else 0, c, total, spe))
    elif c:
        raise ValueError("a cooldown needs the run length: total_steps=... or epochs=... and steps_per_epoch=...")
    if info.prepare is not None:
        params = info.prepare(params, w)
    main = info.constructor(**params, total_steps=main_total, steps_per_epoch=spe)
    warm = None
    if w:
        warm = Warmup(
            w,
            type=generic.get("warmup_type", "linear"),
            start_factor=generic.get("warmup_start_factor"),
            bias_lr=generic.get("warmup_bias_lr"),
            start_momentum=generic.get("warmup_momentum"),
            prefix=prefix,
        )
    cool = None
    if c:
        cool = Cooldown(c, type=generic.get("cooldown_type", "linear"),
                        min_ratio=generic.get("cooldown_min_ratio", 0.0))
    return Composed(main, warmup=warm, cooldown=cool, momentum=generic.get("momentum"))


def _no_room(name: str, generic: dict[str, Any], w: int, c: int, total: int, spe: float | None) -> str:
    """The error for a warmup in front (``w`` steps, 0 when blended) and a cooldown (``c``) that leave the main
    schedule no step of the ``total``-step run, with the lengths that would fit, in the keys the user gave.
    (lrkit.train recognises it by "leave nothing".)"""
    taken = [f"{what} ({n} steps)" for what, n in (("warmup", w), ("cooldown", c)) if n]
    fits: list[str] = []
    for what, n, other in (("warmup", w, c), ("cooldown", c, w)):
        room = total - 1 - other  # the main schedule needs a step
        if not n or room < (0 if what == "warmup" else 1):
            continue
        if generic.get(f"{what}_epochs") is not None and spe:
            fits.append(f"{what}_epochs <= {room / spe:g}")
        elif generic.get(f"{what}_frac") is not None:
            fits.append(f"{what}_frac <= {room / total:g}")
        else:
            fits.append(f"{what}_steps <= {room}")
    give = " or ".join(fits) + ", or " if fits else ""
    return (f"{' and '.join(taken)} would leave nothing of the {total}-step run for {name!r} (it needs at least one "
            f"step): give {give}a run of at least {w + c + 1} steps")
