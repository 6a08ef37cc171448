"""Key points of a schedule record, a bounded record of a long schedule, and per-step JSON written in chunks.

A schedule is closed-form, so a picture or a table of a run of ten million steps never needs ten million values:
:func:`sampled_record` evaluates it at a bounded set of steps that always holds every phase boundary (a restart, a
step-decay edge, the end of a warmup) on both sides, so the curve stays exact where it jumps.
:func:`write_json` streams the full per-step record for scripts without holding it in memory.

>>> from lrkit.schedules import from_spec
>>> kp = key_points(from_spec("wsd lr0=1e-3 warmup_steps=10 decay_frac=0.2", total_steps=100).record())
>>> [(r["phase"], r["start"], r["end"]) for r in kp["phases"]]
[('warmup', 0, 9), ('stable', 10, 79), ('decay', 80, 99)]
>>> kp["max"]["lr"], kp["max"]["step"]
(0.001, 10)
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from lrkit._utils import check_positive

if TYPE_CHECKING:  # pragma: no cover
    from lrkit.schedules.base import Schedule, Span

__all__ = ["MAX_PHASES", "MAX_POINTS", "key_points", "sample_steps", "sampled_record", "write_json"]

#: The default bound on the number of evenly spaced steps :func:`sampled_record` evaluates (boundaries come on top).
MAX_POINTS = 20_000
#: The default bound on the phases a :func:`sampled_record` lists (and samples both sides of). A run with more
#: (a short cycle over a long run) keeps its first and last :data:`END_PHASES`, and counts the rest.
MAX_PHASES = 20_000
#: How many phases an elided record keeps at each end (the ``lrkit schedule`` table shows the first 8 and the last 8).
END_PHASES = 8


def _end_indices(count: int) -> list[int]:
    """The indices of the phases an elided record keeps: the first and the last :data:`END_PHASES`."""
    return sorted({*range(min(count, END_PHASES)), *range(max(0, count - END_PHASES), count)})


def key_points(record: Mapping[str, Any]) -> dict[str, Any]:
    """Summarize a ``Schedule.record()`` (or a :func:`sampled_record`): per phase the first/last step and LR (and
    momentum), plus min/max/final.

    ``end`` in a row is the last step *inside* the phase (inclusive), so the row reads "from step s to step e".
    A sampled record (one with ``"steps"``) gives the same rows: it holds every phase's first and last step; its
    min/max are those of the sampled steps, which hold each phase's ends (exact wherever a phase is monotone).
    ``phase_count`` counts the phases: the rows, plus those an elided record (more than :data:`MAX_PHASES`) leaves
    out between its first and last rows.

    >>> from lrkit.schedules import from_spec
    >>> s = from_spec("step lr0=0.1 step_size=3 gamma=0.5 unit=step", total_steps=1_000_000)
    >>> kp = key_points(sampled_record(s, max_points=100))
    >>> kp["steps"], kp["phases"][1]["start"], kp["phases"][1]["lr_start"], kp["last"]["step"]
    (1000000, 3, 0.05, 999999)
    """
    lr = list(record["lr"])
    mom = list(record["momentum"])
    listed = len(record.get("phases", []))
    omitted = int(record.get("phase_count", listed)) - listed  # phases an elided sampled record only counts
    steps = record.get("steps")
    if steps is None:
        n = len(lr)
        steps = range(n)
    else:
        steps = list(steps)
        if len(steps) != len(lr) or len(mom) != len(lr):
            raise ValueError(f"a sampled record needs as many 'steps' as 'lr' and 'momentum' values, got "
                             f"{len(steps)}, {len(lr)} and {len(mom)}")
        n = int(record.get("total_steps") or (steps[-1] + 1 if steps else 0))
    if not lr:
        raise ValueError("the record has no steps")
    at = {t: i for i, t in enumerate(steps)}
    rows = []
    for ph in record.get("phases", []):
        s = int(ph["start"])
        e = n if ph["end"] is None else min(int(ph["end"]), n)
        if s >= n or e <= s or s not in at or (e - 1) not in at:
            continue
        i, j = at[s], at[e - 1]
        rows.append({
            "phase": ph["name"], "kind": ph.get("kind", ""), "start": s, "end": e - 1,
            "lr_start": lr[i], "lr_end": lr[j], "momentum_start": mom[i], "momentum_end": mom[j],
        })
    k = len(lr)
    imin = min(range(k), key=lambda i: (lr[i], i))
    imax = min(range(k), key=lambda i: (-lr[i], i))
    return {
        "steps": n,
        "phases": rows,
        "phase_count": len(rows) + omitted,
        "min": {"step": steps[imin], "lr": lr[imin]},
        "max": {"step": steps[imax], "lr": lr[imax]},
        "first": {"step": steps[0], "lr": lr[0], "momentum": mom[0]},
        "last": {"step": steps[-1], "lr": lr[-1], "momentum": mom[-1]},
    }


# ----------------------------------------------------------------------------------------------------------------
# a bounded record of a long schedule
# ----------------------------------------------------------------------------------------------------------------
def _epoch_edges(sched: Schedule, lo: float, hi: float, limit: int) -> list[float] | None:
    """Where an ``interval="epoch"`` staircase inside ``sched`` steps (in ``sched``'s own time, within ``[lo, hi]``);
    ``None`` when there are more than ``limit`` (finer than any picture: the even grid stands for them)."""
    from lrkit.schedules.base import Composed, Replanned

    if isinstance(sched, Composed):  # the main schedule's clock starts after a prefix warmup
        shift = float(sched._w) if sched._prefix else 0.0
        inner = _epoch_edges(sched.main, max(0.0, lo - shift), hi - shift, limit)
        return None if inner is None else [t + shift for t in inner]
    if isinstance(sched, Replanned):  # the inner schedule runs on a warped clock
        inner = _epoch_edges(sched.inner, sched._warp(lo), sched._warp(hi), limit)
        return None if inner is None else [sched._unwarp(t) for t in inner]
    spe = sched.steps_per_epoch
    if getattr(sched, "interval", "step") != "epoch" or not spe:
        return []
    first, last = math.ceil(lo / spe), math.floor(hi / spe)
    if last - first + 1 > limit:
        return None
    return [k * spe for k in range(max(first, 0), last + 1)]


def sample_steps(
    schedule: Schedule, total_steps: int, *, max_points: int = MAX_POINTS, max_phases: int = MAX_PHASES
) -> list[int]:
    """The steps :func:`sampled_record` evaluates: every step of a run up to ``max_points`` long; of a longer run,
    ``max_points`` evenly spaced steps plus, for every phase boundary ``b`` (and every epoch edge of an
    ``interval="epoch"`` staircase, while there are at most ``max_points`` of them), the steps around it
    (``floor(b) - 1``, ``floor(b)``, ``ceil(b)``), so the last value before a jump and the first after it are both
    there. A schedule with more than ``max_phases`` phases has its boundaries sampled only near its two ends (the
    phases an elided record lists; the rest are finer than any picture). Sorted, unique, always holding ``0`` and
    ``total_steps - 1``.

    >>> from lrkit.schedules import from_spec
    >>> s = from_spec("step lr0=0.1 step_size=250 gamma=0.5 unit=step", total_steps=1000)
    >>> sample_steps(s, 1000, max_points=5)
    [0, 249, 250, 499, 500, 749, 750, 999]
    """
    from lrkit.schedules.base import _check_count

    n = _check_count("total_steps", total_steps)
    cap = _check_count("max_points", max_points)
    limit = _check_count("max_phases", max_phases)
    if n <= max(cap, 2):
        return list(range(n))
    phases = schedule.phases
    count = len(phases)
    if count > limit and cap > 1:
        # cycles shorter than the grid's stride: an even grid lands on a slowly drifting point of the cycle and a
        # line through it draws a slow false wave; one step at a random (seeded) place in each stride does not
        stride = (n - 1) / cap
        rng = random.Random(0)
        picked = {min(n - 1, int((i + rng.random()) * stride)) for i in range(cap)}
    else:
        picked = {round(i * (n - 1) / (cap - 1)) for i in range(cap)} if cap > 1 else set()
    picked.update((0, n - 1))
    bounds: list[float] = []
    if count > limit:  # a short cycle over a long run: only the phases an elided record lists (O(1) of them)
        spans: Sequence[Span] = [phases._span_of(k) for k in _end_indices(count)]
    else:
        spans = schedule._phase_spans()
    for _, start, end, _ in spans:
        bounds.append(float(start))
        if end is not None:
            bounds.append(float(end))
    edges = _epoch_edges(schedule, 0.0, float(n), cap)
    bounds.extend(edges or ())
    for b in bounds:
        if not math.isfinite(b):
            continue
        f = math.floor(b)
        picked.update(t for t in (f - 1, f, math.ceil(b)) if 0 <= t < n)
    return sorted(picked)


def sampled_record(
    schedule: Schedule,
    *,
    max_points: int = MAX_POINTS,
    base_lr: float | None = None,
    steps: int | None = None,
    max_phases: int = MAX_PHASES,
) -> dict[str, Any]:
    """``Schedule.record()`` at a bounded number of steps: the same keys plus ``"steps"``, the steps the ``lr``,
    ``momentum`` (and ``lr_bias``) values are taken at (see :func:`sample_steps`).

    A run of up to ``max_points`` steps is recorded whole, value for value as ``record()`` does (``steps`` is then
    ``0 .. n - 1``); a longer one costs ``O(max_points + phases)`` evaluations instead of one per step, and every
    value is the schedule's exact value at its step. ``base_lr`` and ``steps`` (the run length, default
    ``total_steps``) are as in ``record()``. :func:`lrkit.plots.schedule.plot_schedule` and :func:`key_points`
    read it like a full record.

    A schedule with more than ``max_phases`` phases (a cycle of a few steps over millions) lists only its first and
    last :data:`END_PHASES` in ``"phases"`` and counts them all in ``"phase_count"`` (a key only such a record
    has), so its cost stays ``O(max_points)`` however many cycles the run has.

    >>> from lrkit.schedules import from_spec
    >>> s = from_spec("cosine_restarts lr0=0.1 T_0=2500 unit=step", total_steps=10_000_000)
    >>> rec = sampled_record(s, max_points=1000)
    >>> len(rec["lr"]) < 10_000, rec["steps"][:4], rec["lr"][rec["steps"].index(2500)] == s.lr(2500) == 0.1
    (True, [0, 2499, 2500, 4999], True)
    """
    n = steps if steps is not None else schedule.total_steps
    if n is None:
        raise ValueError(f"{schedule.name}: the schedule has no fixed length; pass steps=... to record it")
    sched = schedule if base_lr is None else schedule.with_peak(check_positive("base_lr", base_lr))
    at = sample_steps(sched, n, max_points=max_points, max_phases=max_phases)
    phases = sched.phases
    count = len(phases)
    elided = count > max_phases
    if elided:  # the first and the last few: what a table shows
        phases = [phases[k] for k in _end_indices(count)]
    peak = sched.peak_lr
    scale = 1.0 if peak is None else peak
    rec: dict[str, Any] = {
        "label": sched.label,
        "total_steps": int(n),
        "steps_per_epoch": schedule.steps_per_epoch,
        "peak_lr": peak,
        "absolute": peak is not None,
        "steps": at,
        "lr": [scale * sched.multiplier(t) for t in at],  # the same float record() gives at each step
        "momentum": [sched.momentum(t) for t in at],
        "phases": [p.to_dict() for p in phases],
    }
    if elided:
        rec["phase_count"] = count
    if sched._has_bias_warmup():
        rec["lr_bias"] = [scale * sched.multiplier(t, is_bias=True) for t in at]
    return rec


# ----------------------------------------------------------------------------------------------------------------
# per-step JSON, streamed
# ----------------------------------------------------------------------------------------------------------------
def _chunks(values: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for v in values:
        chunk.append(v)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_json(
    schedule: Schedule,
    stream: IO[str],
    *,
    base_lr: float | None = None,
    steps: int | None = None,
    chunk_size: int = 65_536,
) -> None:
    """Write ``{"lr": [...], "momentum": [...]}``, one value per step, to a text ``stream`` in chunks of
    ``chunk_size`` values: the same text as ``json.dumps({"lr": rec["lr"], "momentum": rec["momentum"]})`` of
    ``record()`` (plus a newline), without holding the run in memory. A value that is not finite raises
    ``ValueError`` naming its step (JSON has no ``Infinity``); what was written before it stays written.

    >>> import io
    >>> from lrkit.schedules import from_spec
    >>> buf = io.StringIO()
    >>> write_json(from_spec("step lr0=0.1 step_size=2 gamma=0.5 unit=step", total_steps=5), buf)
    >>> buf.getvalue()
    '{"lr": [0.1, 0.1, 0.05, 0.05, 0.025], "momentum": [null, null, null, null, null]}\\n'
    """
    n = steps if steps is not None else schedule.total_steps
    if n is None:
        raise ValueError(f"{schedule.name}: the schedule has no fixed length; pass steps=... to record it")
    from lrkit.schedules.base import _check_count

    n = _check_count("steps", n)
    size = _check_count("chunk_size", chunk_size)
    sched = schedule if base_lr is None else schedule.with_peak(check_positive("base_lr", base_lr))
    peak = sched.peak_lr
    scale = 1.0 if peak is None else peak
    # record()'s own expressions (the steps are known valid, so the public methods' checks are skipped: ~30% faster)
    series = (
        ("lr", lambda t: scale * float(sched._eval(float(t), False))),
        ("momentum", lambda t: sched._eval_momentum(float(t))),
    )
    for k, (key, value_at) in enumerate(series):
        stream.write(("{" if k == 0 else ", ") + json.dumps(key) + ": [")
        done = 0
        for chunk in _chunks((value_at(t) for t in range(n)), size):
            try:
                text = json.dumps(chunk, allow_nan=False)[1:-1]
            except ValueError:
                bad = next(i for i, v in enumerate(chunk) if v is not None and not math.isfinite(v))
                raise ValueError(f"the {key} at step {done + bad} is {chunk[bad]}, which JSON cannot hold") from None
            stream.write((", " if done else "") + text)
            done += len(chunk)
        stream.write("]")
    stream.write("}\n")
