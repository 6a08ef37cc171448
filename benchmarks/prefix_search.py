"""Prefix trials around the range test's suggestion, at about 1.5 runs of extra compute (research for ``lr0="auto"``).

Implements the protocol pre-registered in docs/benchmarks/auto_lr.md ("Pre-registered (session 28 ...): prefix
trials around the suggestion, at about 1.5 runs"). Per task and seed, on that seed's starting state and batches:

1. the range test exactly as ``lr0="auto"`` runs it, with no trials: ``choose_lr0(..., budget=0.25)`` (as
   ``benchmarks/auto_lr.py`` calls it); its suggestion ``s`` (``to_dict()["suggestion"]``) and the range test's steps
   (a range test that stopped early leaves steps for ``choose_lr0``'s own trials: they are ignored, not counted);
2. five candidates ``s * 10^(k/2)``, ``k = -2..2``;
3. one trial per candidate (``trial_predictors.trial``): the run's real schedule for its first ``round(0.2 T)``
   steps, then a linear anneal to zero over ``round(0.05 T)`` steps (``trial_predictors.prefix_anneal``), scored on
   the validation loss at its end; ``inf`` when it diverged under the suite's rule;
4. the pick: the best candidate (ties to the lower LR), moved to the vertex of the parabola through it and its two
   neighbours in (log10 LR, loss) when both neighbours trained (exist and did not diverge), clamped to +-0.25 decade;
   every candidate diverged -> ``s / 10^1.5``;
5. the full run at the pick, same seed.

Scored as ``auto_lr.py`` scores: regret = median over seeds of the val loss / the oracle grid's best - 1; compared with
today's ``lr0="auto"`` (budget 0.3, ``auto_lr.py``'s own code path and cache) and with training at ``s``.

    python benchmarks/prefix_search.py --jobs 2          # all 71 tasks, seeds 0 1 2

Range tests, trial scores and today's choices are cached in ``benchmarks/results/prefix_search/search_<task>.json``
(keyed by the task and the source of the code that produced them); full runs at the pick and at ``s`` in
``benchmarks/results/prefix_search/oracle_<task>.json`` (the suite's run cache), so a rerun is cheap.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import auto_lr
from _suite import (
    RESULTS_DIR,
    TASKS,
    Task,
    cached_val_loss,
    oracle,
    positive_int,
    regret,
    run_main,
    seed_list,
    task_key,
    task_names,
)
from lrkit._utils import atomic_write_text
from lrkit.train import auto as auto_mod
from trial_predictors import prefix_anneal, trial

CACHE_DIR = RESULTS_DIR / "prefix_search"
#: The pre-registered design: range test alone (budget 0.25), five candidates half a decade apart, prefix 0.2 + anneal
#: 0.05 of the run per trial, parabola refinement clamped to a quarter decade, 1.5 decades below s if all diverge.
RANGE_BUDGET = 0.25
TODAY_BUDGET = 0.3
EXPONENTS = (-2, -1, 0, 1, 2)
PREFIX = 0.2
ANNEAL = 0.05
CLAMP_DECADES = 0.25
FALLBACK_DECADES = 1.5


def candidates(s: float) -> list[float]:
    """The five candidates ``s * 10^(k/2)``, ``k = -2..2``, ascending (the middle one is ``s`` itself).

    >>> [round(v, 6) for v in candidates(0.01)]
    [0.001, 0.003162, 0.01, 0.031623, 0.1]
    """
    return [s * 10 ** (k / 2) for k in EXPONENTS]


def trial_lengths(total: int) -> tuple[int, int]:
    """(prefix steps, anneal steps) of a trial for a run of ``total`` steps: ``round(0.2 T)`` and ``round(0.05 T)``,
    each at least 1 (as ``trial_predictors.py`` sizes them).

    >>> trial_lengths(1000)
    (200, 50)
    """
    return max(1, round(PREFIX * total)), max(1, round(ANNEAL * total))


def trial_multiplier(total: int) -> tuple[Callable[[int], float], int]:
    """The trial's LR multiplier (real schedule's prefix, then a linear anneal to zero) and its length in steps."""
    p, c = trial_lengths(total)
    return prefix_anneal(total, p, c), p + c


def pick(cands: Sequence[float], scores: Sequence[float], s: float) -> float:
    """The prefix search's LR from the candidates (ascending) and their trial scores (``inf`` = diverged).

    The best-scoring candidate (ties to the lower LR), moved to the vertex of the parabola through it and its two
    neighbours in (log10 LR, loss) when both neighbours exist and trained, by at most ``CLAMP_DECADES``; every
    candidate diverged -> ``s / 10^FALLBACK_DECADES``.

    >>> pick([0.1, 1.0, 10.0], [2.0, 1.0, 2.0], 1.0)
    1.0
    >>> pick([0.1, 1.0, 10.0], [float("inf")] * 3, 1.0) == 10 ** -1.5
    True
    """
    if len(cands) != len(scores) or not cands:
        raise ValueError(f"{len(cands)} candidates and {len(scores)} scores: give one score per candidate")
    finite = [i for i, v in enumerate(scores) if math.isfinite(v)]
    if not finite:
        return s / 10**FALLBACK_DECADES
    b = min(finite, key=lambda i: (scores[i], i))  # the lowest loss; among equal losses the lowest LR
    if not (0 < b < len(cands) - 1 and math.isfinite(scores[b - 1]) and math.isfinite(scores[b + 1])):
        return float(cands[b])
    x0, x1, x2 = (math.log10(cands[i]) for i in (b - 1, b, b + 1))
    y0, y1, y2 = scores[b - 1], scores[b], scores[b + 1]
    denom = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    if denom == 0:  # collinear: no vertex (cannot happen with a strict minimum, kept for safety)
        return float(cands[b])
    vertex = x1 - 0.5 * ((x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)) / denom
    shift = min(CLAMP_DECADES, max(-CLAMP_DECADES, vertex - x1))
    return float(cands[b]) if shift == 0 else 10 ** (x1 + shift)


# ---------------------------------------------------------------------------------------------------------- cache
@functools.cache
def _code_hash() -> str:
    """A hash of the code whose results the search cache holds: the range test, ``choose_lr0``, the trial."""
    import inspect

    root = Path(auto_mod.__file__).resolve().parent.parent  # src/lrkit
    files = sorted([*(root / "finder").glob("*.py"), root / "train" / "auto.py", root / "_state.py", root / "_step.py"])
    parts = [f.read_text(encoding="utf-8") for f in files]
    parts += [inspect.getsource(f) for f in (trial, prefix_anneal, auto_lr.choose, auto_lr.warmup_cosine_scheduler)]
    parts.append(repr((RANGE_BUDGET, TODAY_BUDGET, EXPONENTS, PREFIX, ANNEAL)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _key(name: str) -> str:
    return f"{task_key(name)}-{_code_hash()}"


def _search_path(name: str, cache_dir: Path) -> Path:
    return cache_dir / f"search_{name}.json"


def load_record(name: str, cache_dir: Path = CACHE_DIR) -> dict[str, Any]:
    """The cached per-seed measurements of task ``name`` (``{}`` when none, or when the code or task changed)."""
    try:
        record = json.loads(_search_path(name, cache_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record.get("seeds", {}) if record.get("key") == _key(name) else {}


def save_record(name: str, seeds: dict[str, Any], cache_dir: Path = CACHE_DIR) -> None:
    """Write task ``name``'s per-seed measurements atomically."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(_search_path(name, cache_dir),
                      json.dumps({"task": name, "key": _key(name), "seeds": seeds}, indent=1, sort_keys=True))


def _fin(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _unfin(v: float | None) -> float:
    return math.inf if v is None else float(v)


# -------------------------------------------------------------------------------------------------------- measure
@dataclass
class SeedResult:
    seed: int
    s: float
    pick: float
    scores: list[float]
    extra: float  # (range-test steps + 5 full trials) / T
    range_extra: float  # range-test steps / T (what training at s costs)
    auto_lr: float
    auto_extra: float
    val_pick: float
    val_auto: float
    val_s: float


def measure_seed(task: Task, seed: int, seeds_rec: dict[str, Any], save: Callable[[], None],
                 cache_dir: Path = CACHE_DIR) -> SeedResult:  # fmt: skip
    """Steps 1-5 of the protocol for one seed, plus today's ``lr0="auto"`` and the full run at ``s``."""
    rec = seeds_rec.setdefault(str(seed), {})
    if "s" not in rec:
        result, _ = auto_lr.choose(task, seed, RANGE_BUDGET)
        # s is the range test's suggestion and its cost the range test's steps. A range test that stops early (a
        # divergence) leaves steps of the 0.25 unused, and choose_lr0 spends them on trials of its own: those are not
        # part of this design, so neither their steps nor their choice count (recorded, to say how often it happens).
        rec["s"] = float(result.to_dict()["suggestion"])
        rec["range_steps"] = int(result.finder.num_steps_run)
        rec["range_trials"] = len(result.trials)
        rec["range_choice"] = float(result.lr)
        save()
    s = float(rec["s"])
    total = task.total_steps()
    mult, steps = trial_multiplier(total)
    cands = candidates(s)
    trials = rec.setdefault("trials", {})
    scores = []
    for lr in cands:
        k = f"{lr:.17g}"
        if k not in trials:
            trials[k] = _fin(trial(task, lr, seed, mult, steps))
            save()
        scores.append(_unfin(trials[k]))
    lr_pick = pick(cands, scores, s)
    if "auto" not in rec:  # today's lr0="auto", exactly as benchmarks/auto_lr.py's run_task chooses it
        result, _ = auto_lr.choose(task, seed, TODAY_BUDGET)
        rec["auto"] = {"lr": float(result.lr), "suggestion": float(result.to_dict()["suggestion"]),
                       "extra_fraction": float(result.extra_fraction)}  # fmt: skip
        save()
    auto = rec["auto"]
    return SeedResult(
        seed=seed, s=s, pick=lr_pick, scores=scores,
        extra=(int(rec["range_steps"]) + len(cands) * steps) / total, range_extra=int(rec["range_steps"]) / total,
        auto_lr=float(auto["lr"]), auto_extra=float(auto["extra_fraction"]),
        val_pick=cached_val_loss(task, lr_pick, seed, cache_dir=cache_dir),
        val_auto=cached_val_loss(task, float(auto["lr"]), seed, cache_dir=auto_lr.CACHE_DIR),
        val_s=cached_val_loss(task, s, seed, cache_dir=cache_dir),
    )  # fmt: skip


METHODS = (("prefix", "prefix search"), ("auto", 'lr0="auto" today'), ("at_s", "training at s"))


def pooled(rows: Sequence[dict[str, Any]], method: str) -> dict[str, float]:
    """Median, worst, and the share within 1% and 5% of the oracle, of ``method``'s regrets over ``rows``."""
    values = [row[method] for row in rows]
    return {
        "n": len(values),
        "median": statistics.median(values),
        "worst": max(values),
        "within1": sum(v <= 0.01 for v in values),
        "within5": sum(v <= 0.05 for v in values),
    }


def _pct(v: float) -> str:
    return "diverged" if not math.isfinite(v) else f"{100 * v:+.2f}%"


def _lrs(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="all", help="comma-separated task names or groups (default: all 71)")
    parser.add_argument("--seeds", nargs="*", default=["0", "1", "2"], help="seeds (default: 0 1 2)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="processes for the oracle grid, if not cached")
    args = parser.parse_args(argv)
    names = task_names(parser, args.tasks)
    seeds = seed_list(parser, args.seeds)
    torch.set_num_threads(1)

    print(f"prefix search (pre-registered, session 28): candidates s*10^(k/2), k=-2..2; trials = real schedule's "
          f"first {PREFIX:g} + linear anneal {ANNEAL:g} of the run; seeds {seeds}", flush=True)  # fmt: skip
    print()
    print("| task | group | s (per seed) | pick (per seed) | oracle LR | regret: prefix search | regret: lr0=\"auto\" "
          "| regret: at s | extra: prefix search | extra: lr0=\"auto\" |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for name in names:
        task = TASKS[name]
        orc = oracle(task, jobs=args.jobs, progress=lambda m: print(f"  ({m})", file=sys.stderr, flush=True))
        seeds_rec = load_record(name)
        out = [measure_seed(task, seed, seeds_rec, lambda n=name, r=seeds_rec: save_record(n, r)) for seed in seeds]
        med = {key: statistics.median(getattr(o, attr) for o in out)
               for key, attr in (("prefix", "val_pick"), ("auto", "val_auto"), ("at_s", "val_s"))}  # fmt: skip
        row = {
            "task": name,
            "group": task.group,
            "held_out": task.held_out,
            "s": [o.s for o in out],
            "pick": [o.pick for o in out],
            "oracle_lr": orc.best_lr,
            **{key: regret(v, orc.best_loss) for key, v in med.items()},
            "extra": max(o.extra for o in out),
            "auto_extra": max(o.auto_extra for o in out),
            "range_extra": max(o.range_extra for o in out),
        }
        rows.append(row)
        print(f"| {name} | {task.group} | {_lrs(row['s'])} | {_lrs(row['pick'])} | {orc.best_lr:.3g} "
              f"| {_pct(row['prefix'])} | {_pct(row['auto'])} | {_pct(row['at_s'])} | {100 * row['extra']:.0f}% "
              f"| {100 * row['auto_extra']:.0f}% |", flush=True)  # fmt: skip

    print()
    print("| tasks | method | median regret | worst | within 1% | within 5% | extra compute (max over tasks) |")
    print("|---|---|---|---|---|---|---|")
    for label, group in (("held out", [r for r in rows if r["held_out"]]),
                         ("calibration", [r for r in rows if not r["held_out"]])):  # fmt: skip
        if not group:
            continue
        for key, method in METHODS:
            p = pooled(group, key)
            extra = max(r[{"prefix": "extra", "auto": "auto_extra", "at_s": "range_extra"}[key]] for r in group)
            print(f"| {label} ({p['n']}) | {method} | {_pct(p['median'])} | {_pct(p['worst'])} "
                  f"| {p['within1']}/{p['n']} | {p['within5']}/{p['n']} | {100 * extra:.0f}% |")  # fmt: skip
    return 0


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
