"""lr0="auto"'s choice (or the prefix search's pick) trained with the default Monitor, as lrkit.train runs it.

``benchmarks/auto_lr.py`` and ``prefix_search.py`` score ``lr0="auto"``'s choice by training at it with the suite's
plain loop. ``lrkit.train`` also runs :class:`lrkit.Monitor` by default (``monitor=True``): where the choice is too
high, a rollback may rescue the run; where the monitor raises a false alarm, it may cost. This script trains each
seed's recorded choice (``benchmarks/results/prefix_search/search_<task>.json``, which ``python
benchmarks/prefix_search.py`` writes: run that first) once more with the default monitor (the same wrapper as
``monitor_recovery.py``: a validation pass every epoch goes to ``after_validation``) and prints both regrets.
``--choice prefix`` does the same for the prefix search's pick (``auto_search="prefix"``; by the registered rule,
:func:`prefix_search.pick`), whose plain runs ``prefix_search.py`` cached too.

Measured, it decides nothing: no rule of lrkit is chosen on it.

    python benchmarks/auto_monitor.py                       # every task with a record, seeds 0 1 2
    python benchmarks/auto_monitor.py --tasks fresh12
    python benchmarks/auto_monitor.py --choice prefix
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prefix_search as ps
from _suite import TASKS, evaluate_lrs, oracle, regret, regret_row, run_main, task_names
from monitor_recovery import one_run
from prefix_shift_explore import picks

SEEDS = (0, 1, 2)
CHOICES = ("auto", "prefix")


def auto_choices(record: dict[str, Any], choice: str = "auto") -> dict[int, float]:
    """Each seed's ``lr0="auto"`` choice (``choice="auto"``) or prefix-search pick (``"prefix"``, by the registered
    rule) from a ``search_<task>.json`` record's ``seeds``.

    >>> auto_choices({"0": {"auto": {"lr": 0.01}}, "2": {"auto": {"lr": 0.02}}})
    {0: 0.01, 2: 0.02}
    >>> trials = {f"{c:.17g}": v for c, v in zip(ps.candidates(0.01), [3, 2, 1, 2, 3])}
    >>> auto_choices({"0": {"s": 0.01, "trials": trials}}, "prefix")
    {0: 0.01}
    """
    if choice == "auto":
        return {int(seed): float(r["auto"]["lr"]) for seed, r in record.items()}
    return picks(record)


def _pct(v: float) -> str:
    return "diverged" if math.isinf(v) else f"{100 * v:+.2f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="all", help="comma-separated task names or groups, or all (default)")
    parser.add_argument("--choice", default="auto", choices=CHOICES,
                        help="whose LR to train: lr0='auto''s choice (default) or the prefix search's pick")
    args = parser.parse_args(argv)
    names = task_names(parser, args.tasks)
    torch.set_num_threads(1)
    table: dict[str, tuple[float, float]] = {}
    print("| task | group | choice (per seed) | oracle LR | regret: plain loop | regret: default monitor | events "
          "(per seed) |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        path = ps.CACHE_DIR / f"search_{name}.json"
        if not path.exists():
            continue
        task = TASKS[name]
        chosen = auto_choices(json.loads(path.read_text(encoding="utf-8"))["seeds"], args.choice)
        if set(chosen) != set(SEEDS):
            continue
        orc = oracle(task)
        plain = evaluate_lrs(task, [(chosen[k], k) for k in SEEDS], cache_dir=ps.CACHE_DIR)
        runs = [one_run(task, chosen[k], k, {}) for k in SEEDS]
        with_monitor = [math.inf if r["diverged"] else float(r["val_loss"]) for r in runs]
        table[name] = (regret(statistics.median(plain.values()), orc.best_loss),
                       regret(statistics.median(with_monitor), orc.best_loss))  # fmt: skip
        lrs = ", ".join(f"{chosen[k]:.3g}" for k in SEEDS)
        print(f"| {name} | {task.group} | {lrs} | {orc.best_lr:.3g} | {_pct(table[name][0])} | {_pct(table[name][1])} "
              f"| {', '.join(str(r['events']) for r in runs)} |", flush=True)
    if not table:
        parser.error(f"no prefix-search records in {ps.CACHE_DIR}: run python benchmarks/prefix_search.py first")
    print()
    whose = "lr0=\"auto\"'s choice" if args.choice == "auto" else "the prefix search's pick"
    print(f"| tasks | {whose} trained | median regret | worst | within 1% | within 5% |")
    print("|---|---|---|---|---|---|")
    for label, held in (("held out", True), ("calibration", False)):
        group = [n for n in table if TASKS[n].held_out == held]
        if group:
            for k, how in ((0, "plain loop"), (1, "with the default monitor")):
                print(regret_row(f"{label} ({len(group)}) | {how}", [table[n][k] for n in group]))
    return 0


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130
