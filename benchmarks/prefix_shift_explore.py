"""Exploratory (session 29; no rule depends on it): the prefix search's picks shifted down a quarter decade.

Over the held-out seeds the prefix search's pick sat a median 1.7x above the oracle's LR (session 28). This reads what
training at ``pick / 10^SHIFT_DECADES`` would score instead, from the registered prototype's cached trials
(``benchmarks/results/prefix_search/search_<task>.json``, which ``python benchmarks/prefix_search.py`` writes: run
that first; its records are read whatever code wrote them). The unshifted picks' full runs come from that script's
cache, the shifted ones are trained here (cached in ``benchmarks/results/prefix_shift/``).

    python benchmarks/prefix_shift_explore.py --jobs 2      # every task with a prefix-search record, seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prefix_search as ps
from _suite import RESULTS_DIR, TASKS, evaluate_lrs, oracle, positive_int, regret, run_main

CACHE_DIR = RESULTS_DIR / "prefix_shift"
#: How far below the prefix search's pick the shifted LR is, in decades.
SHIFT_DECADES = 0.25
SEEDS = (0, 1, 2)


def picks(record: dict[str, Any]) -> dict[int, float]:
    """Each seed's prefix-search pick from a ``search_<task>.json`` record's ``seeds`` (its suggestion and the five
    trial scores, ``None`` = diverged), by the registered rule (:func:`prefix_search.pick`).

    >>> s = 0.01
    >>> rec = {"0": {"s": s, "trials": {f"{c:.17g}": v for c, v in zip(ps.candidates(s), [3, 2, 1, 2, 3])}}}
    >>> picks(rec)
    {0: 0.01}
    """
    out = {}
    for seed, r in record.items():
        cands = ps.candidates(float(r["s"]))
        scores = [ps._unfin(r["trials"][f"{c:.17g}"]) for c in cands]
        out[int(seed)] = ps.pick(cands, scores, float(r["s"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=positive_int, default=1, help="processes for the full runs not yet cached")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows: dict[str, tuple[float, float]] = {}
    print("| task | group | regret at the pick | at pick / 10^0.25 |")
    print("|---|---|---|---|")
    for name, task in TASKS.items():
        path = ps.CACHE_DIR / f"search_{name}.json"
        if not path.exists():
            continue
        chosen = picks(json.loads(path.read_text(encoding="utf-8"))["seeds"])
        if set(chosen) != set(SEEDS):
            continue
        orc = oracle(task)
        base = evaluate_lrs(task, [(chosen[k], k) for k in SEEDS], jobs=args.jobs, cache_dir=ps.CACHE_DIR)
        shifted = evaluate_lrs(task, [(chosen[k] / 10**SHIFT_DECADES, k) for k in SEEDS], jobs=args.jobs,
                               cache_dir=CACHE_DIR)  # fmt: skip
        rows[name] = (regret(statistics.median(base.values()), orc.best_loss),
                      regret(statistics.median(shifted.values()), orc.best_loss))  # fmt: skip
        print(f"| {name} | {task.group} | {100 * rows[name][0]:+.2f}% | {100 * rows[name][1]:+.2f}% |", flush=True)
    if not rows:
        parser.error(f"no prefix-search records in {ps.CACHE_DIR}: run python benchmarks/prefix_search.py first")
    print()
    print("| tasks | LR | median regret | worst | within 1% | within 5% |")
    print("|---|---|---|---|---|---|")
    for label, held in (("held out", True), ("calibration", False)):
        names = [n for n in rows if TASKS[n].held_out == held]
        for k, what in ((0, "the pick"), (1, f"pick / 10^{SHIFT_DECADES:g}")):
            v = [rows[n][k] for n in names]
            if v:
                print(f"| {label} ({len(v)}) | {what} | {100 * statistics.median(v):+.2f}% | {100 * max(v):+.2f}% "
                      f"| {sum(x <= 0.01 for x in v)}/{len(v)} | {sum(x <= 0.05 for x in v)}/{len(v)} |")
    return 0


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
