"""What would a constant shift of ``lr0="auto"``'s choice do on the suite? Interpolated from cached runs.

``benchmarks/train_auto.py`` found ``lr0="auto"`` a median 0.8 decade *below* the best LR through ``lrkit.train`` on
clean built-in data, while on the suite (rich in noisy-label tasks) it lands near the best. Would shifting every
choice up by a constant number of decades serve both? For every held-out task with a ``prefix_search.py`` record
(``benchmarks/results/prefix_search/search_<task>.json``, which holds each seed's ``lr0="auto"`` choice: run that
first), this script moves each seed's choice by ``10**shift`` and reads its validation loss *interpolated* linearly
in log-LR between the oracle's grid points of the same seed (:func:`optimizer_shift.interpolated_loss`), over the
oracle's best median loss, minus 1; median over seeds, then pooled over tasks. It is an estimate, deciding nothing:
the interpolation reads above the trained runs (shift 0 here against ``auto_monitor.py``'s plain-loop column).

    python benchmarks/auto_shift.py
    python benchmarks/auto_shift.py --shifts 0 0.25 0.5 --tasks fresh12,fresh13,fresh14
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prefix_search as ps
from _suite import TASKS, OracleResult, oracle, run_main, task_names
from auto_monitor import auto_choices
from optimizer_shift import interpolated_loss

SHIFTS = (-0.25, 0.0, 0.25, 0.5, 1.0)


def shifted_regrets(chosen: dict[int, float], o: OracleResult, shifts: Sequence[float]) -> dict[float, float]:
    """Each shift's regret for one task: the median over the oracle's seeds of the interpolated loss at each seed's
    choice times ``10**shift``, over the oracle's best loss, minus 1 (``inf`` when that median is not finite).

    >>> o = OracleResult(task="t", grid=[0.01, 0.1, 1.0], seeds=(0, 1, 2), losses=[2.0, 1.0, 3.0],
    ...                  per_seed=[[2.0] * 3, [1.0] * 3, [3.0] * 3], best_lr=0.1, best_loss=1.0,
    ...                  good_range=(0.1, 0.1), seconds=0.0)
    >>> r = shifted_regrets({0: 0.01, 1: 0.01, 2: 0.01}, o, [0.0, 0.5, 1.0])
    >>> [round(v, 6) for v in r.values()]
    [1.0, 0.5, 0.0]
    """
    out: dict[float, float] = {}
    for shift in shifts:
        losses = [interpolated_loss(o, chosen[seed] * 10**shift, i) for i, seed in enumerate(o.seeds)]
        median = statistics.median(losses)
        out[shift] = median / o.best_loss - 1.0 if math.isfinite(median) else math.inf
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="all", help="task names or groups, comma-separated (default: all); the "
                                                       "calibration tasks are always left out")  # fmt: skip
    parser.add_argument("--shifts", type=float, nargs="+", default=list(SHIFTS), help="decades (default: %(default)s)")
    args = parser.parse_args(argv)
    names = [n for n in task_names(parser, args.tasks) if TASKS[n].group != "calibration"]
    table: dict[float, list[float]] = {shift: [] for shift in args.shifts}
    used = []
    for name in names:
        path = ps.CACHE_DIR / f"search_{name}.json"
        if not path.exists():
            continue
        chosen = auto_choices(json.loads(path.read_text(encoding="utf-8"))["seeds"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = oracle(TASKS[name])
        if set(chosen) != set(o.seeds):
            continue
        used.append(name)
        for shift, value in shifted_regrets(chosen, o, args.shifts).items():
            table[shift].append(value)
    if not used:
        parser.error("no task has a prefix_search.py record: run `python benchmarks/prefix_search.py --jobs 2` first")
    print(f"lr0='auto''s choices shifted, {len(used)} held-out tasks, interpolated (nothing trained)\n")
    print("| shift (decades) | factor | median regret | within 5% | above 50% |\n|---|---|---|---|---|")
    for shift, values in table.items():
        print(f"| {shift:+.2f} | x{10**shift:.3g} | {100 * statistics.median(values):+.2f}% | "
              f"{sum(v <= 0.05 for v in values)}/{len(values)} | {sum(v > 0.5 for v in values)}/{len(values)} |")
    return 0


if __name__ == "__main__":
    run_main(main)
