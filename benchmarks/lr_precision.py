"""How precise must a learning rate be? The regret of the oracle's own LR, moved by a known factor.

Every target of the suite is a regret against the exhaustive grid's best LR (``_suite.oracle``: 1e-5..10, 4 per
decade, seeds 0 1 2, median over seeds). This script asks what the targets demand of *any* method, lrkit's or not:
for each task it trains the same seeds at the oracle's LR times ``10^d`` for the off-grid offsets ``d`` in
:data:`TRAINED` (a twelfth and an eighth of a decade: 12% and 33% off), and reads the grid's own neighbours for
:data:`GRID` (a quarter and a half decade) from the oracle's cache. A method whose LR lands ``d`` decades from the
best cannot do better than the regret printed for ``d``, whatever it did to get there.

Where ``python benchmarks/prefix_search.py`` has left its records (``benchmarks/results/prefix_search/``), a last
table says where lrkit's own choices land against the same oracles: each seed's range-test suggestion ``s``, its
``lr0="auto"`` choice (the default guard, as that script recorded it) and its prefix-search pick, as decades off the
best LR, and how much ``s`` moves from seed to seed.

Measured, it decides nothing: no rule of lrkit is chosen on it.

    python benchmarks/lr_precision.py --jobs 2                       # all tasks, seeds 0 1 2
    python benchmarks/lr_precision.py --jobs 2 --tasks fresh12,wine_mlp
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prefix_search as ps
from _suite import RESULTS_DIR, TASKS, evaluate_lrs, oracle, positive_int, regret, regret_row, run_main, task_names
from prefix_shift_explore import picks

CACHE_DIR = RESULTS_DIR / "lr_precision"
#: Offsets (decades) trained here, off the oracle's grid.
TRAINED = (-0.125, -1 / 12, 1 / 12, 0.125)
#: Offsets (decades) read from the oracle's grid (4 points per decade): its neighbours one and two points away.
GRID = (-0.5, -0.25, 0.25, 0.5)
OFFSETS = tuple(sorted(TRAINED + GRID))
SEEDS = (0, 1, 2)


def _label(d: float) -> str:
    """``+1/12``, ``-0.25``: an offset as the table heads it.

    >>> [_label(d) for d in OFFSETS]
    ['-0.5', '-0.25', '-0.125', '-1/12', '+1/12', '+0.125', '+0.25', '+0.5']
    """
    return f"{'+' if d > 0 else '-'}1/12" if math.isclose(abs(d), 1 / 12) else f"{d:+g}"


def grid_neighbours(grid: Sequence[float], losses: Sequence[float], best_lr: float) -> dict[float, float | None]:
    """The median loss at the grid points 1 and 2 steps either side of ``best_lr`` (a quarter and a half decade on
    the suite's grid), keyed by their offset in :data:`GRID`; ``None`` where the best sits at the grid's edge.

    >>> grid = [10 ** (k / 4) for k in range(-4, 1)]          # 0.1 .. 1
    >>> grid_neighbours(grid, [5.0, 4.0, 3.0, 2.0, 1.0], grid[3])
    {-0.5: 4.0, -0.25: 3.0, 0.25: 1.0, 0.5: None}
    """
    i = min(range(len(grid)), key=lambda k: abs(math.log10(grid[k] / best_lr)))
    out: dict[float, float | None] = {}
    for d in GRID:
        j = i + round(d * 4)
        out[d] = losses[j] if 0 <= j < len(grid) else None
    return out


def worse_side(regrets: dict[float, float | None], d: float) -> float | None:
    """The larger regret of ``+d`` and ``-d``: what an LR ``d`` decades off guarantees when the side is unknown
    (``None`` if either side is unknown).

    >>> worse_side({-0.25: 0.02, 0.25: 0.07}, 0.25), worse_side({-0.25: None, 0.25: 0.07}, 0.25)
    (0.07, None)
    """
    lo, hi = regrets.get(-d), regrets.get(d)
    return None if lo is None or hi is None else max(lo, hi)


def choice_offsets(record: dict[str, Any], best_lr: float) -> dict[str, list[float]]:
    """Decades from ``best_lr`` of each seed's ``lr0="auto"`` choice and prefix-search pick, from a
    ``search_<task>.json`` record's ``seeds`` (the pick by the registered rule, :func:`prefix_search.pick`).

    >>> s = 0.01
    >>> trials = {f"{c:.17g}": v for c, v in zip(ps.candidates(s), [3, 2, 1, 2, 3])}
    >>> seed = {"s": s, "auto": {"lr": 0.02}, "trials": trials}
    >>> {k: [round(x, 3) for x in v] for k, v in choice_offsets({"0": seed}, 0.01).items()}
    {'range test (s)': [0.0], 'lr0="auto"': [0.301], 'prefix search': [0.0]}
    """
    out: dict[str, list[float]] = {"range test (s)": [], 'lr0="auto"': [], "prefix search": []}
    pick = picks(record)
    for seed, r in record.items():
        out["range test (s)"].append(math.log10(float(r["s"]) / best_lr))
        out['lr0="auto"'].append(math.log10(float(r["auto"]["lr"]) / best_lr))
        out["prefix search"].append(math.log10(pick[int(seed)] / best_lr))
    return out


def offsets_row(label: str, offsets: Sequence[float]) -> str:
    """One row of the choices table: the median distance from the best (decades), the median signed offset, and the
    share within each of :data:`TRAINED`'s and :data:`GRID`'s distances.

    >>> offsets_row("x", [0.05, -0.2, 0.4, -1.0])
    '| x | 4 | 0.30 | -0.08 | 1/4 | 1/4 | 2/4 | 3/4 |'
    """
    dist = [abs(v) for v in offsets]
    n = len(dist)
    shares = " | ".join(f"{sum(v <= d + 1e-9 for v in dist)}/{n}" for d in sorted({abs(x) for x in OFFSETS}))
    return f"| {label} | {n} | {statistics.median(dist):.2f} | {statistics.median(offsets):+.2f} | {shares} |"


def _pct(v: float | None) -> str:
    return "—" if v is None else ("diverged" if not math.isfinite(v) else f"{100 * v:+.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="all", help="comma-separated task names or groups, or all (default)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="processes for the runs not yet cached")
    args = parser.parse_args(argv)
    names = task_names(parser, args.tasks)
    torch.set_num_threads(1)
    table: dict[str, dict[float, float | None]] = {}
    print("| task | group | oracle LR | " + " | ".join(_label(d) for d in OFFSETS) + " |")
    print("|---|---|---|" + "---|" * len(OFFSETS))
    for name in names:
        task = TASKS[name]
        orc = oracle(task, jobs=args.jobs)
        runs = evaluate_lrs(task, [(orc.best_lr * 10**d, s) for d in TRAINED for s in SEEDS], jobs=args.jobs,
                            cache_dir=CACHE_DIR)  # fmt: skip
        losses: dict[float, float | None] = dict(grid_neighbours(orc.grid, orc.losses, orc.best_lr))
        for d in TRAINED:
            losses[d] = statistics.median(runs[(float(orc.best_lr * 10**d), s)] for s in SEEDS)
        table[name] = {d: None if v is None else regret(v, orc.best_loss) for d, v in losses.items()}
        print(f"| {name} | {task.group} | {orc.best_lr:.3g} | "
              + " | ".join(_pct(table[name][d]) for d in OFFSETS) + " |", flush=True)  # fmt: skip
    print()
    print("| tasks | LR off the best by | median regret | worst | within 1% | within 5% |")
    print("|---|---|---|---|---|---|")
    for label, held in (("held out", True), ("calibration", False)):
        group = [n for n in table if TASKS[n].held_out == held]
        for d in sorted({abs(x) for x in OFFSETS}):
            for side in (-d, d):
                values = [v for n in group if (v := table[n][side]) is not None]
                if values:
                    print(regret_row(f"{label} ({len(values)}) | {_label(side)} decade", values))
            worse = [v for n in group if (v := worse_side(table[n], d)) is not None]
            if worse:
                print(regret_row(f"{label} ({len(worse)}) | ±{_label(d)[1:]} decade, the worse side", worse))
    choices: dict[str, list[float]] = {}
    spreads: list[float] = []  # per task: the seed-to-seed spread of the range test's suggestion
    for name in names:
        path = ps.CACHE_DIR / f"search_{name}.json"
        if TASKS[name].held_out and path.exists():
            best = oracle(TASKS[name], jobs=args.jobs).best_lr
            for method, v in choice_offsets(json.loads(path.read_text(encoding="utf-8"))["seeds"], best).items():
                choices.setdefault(method, []).extend(v)
                if method == "range test (s)" and len(v) > 1:
                    spreads.append(statistics.pstdev(v))
    if choices:
        print()
        heads = " | ".join(f"within {_label(d)[1:]}" for d in sorted({abs(x) for x in OFFSETS}))
        print(f"| lrkit's choice (held-out tasks, every seed) | seeds | median distance (decades) | median offset | "
              f"{heads} |")
        print("|---|---|---|---|" + "---|" * len(GRID))
        for method, v in choices.items():
            print(offsets_row(method, v))
        if spreads:  # small against the distances above: the miss is the task's, not the seed's
            spread = statistics.median(spreads)
            print(f"\nThe range test's suggestion from seed to seed: a standard deviation of {spread:.2f} decade "
                  f"(median over {len(spreads)} tasks) of log10(s).")
    return 0


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
