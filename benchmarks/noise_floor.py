"""How small can a regret be? The exhaustive grid itself, scored out of sample.

Every regret in the finder and ``lr0="auto"`` benchmarks is ``loss(method's LR) / oracle_loss - 1`` with the oracle's
best LR picked on the *same* seeds (0, 1, 2) it is scored on, so the oracle enjoys a winner's curse: it keeps the
grid point whose three seeds happened to land low. This script measures the floor that any method faces, by
running the same exhaustive grid (25 LRs, 1e-5..10, 3 seeds) a second time on fresh seeds 3, 4, 5 and asking:

    if you had paid for a whole second grid search, picked its best LR, and trained at it on seeds 0, 1, 2,
    what would the benchmark's regret be?            regret = loss_012(best LR of the 345 grid) / best loss_012 - 1

and the same the other way round. Runs are cached with the oracle's (``benchmarks/results/oracle_<task>.json``).

    python benchmarks/noise_floor.py --jobs 2                 # the six calibration tasks (~5 min cold)
    python benchmarks/noise_floor.py --jobs 2 --tasks digits_linear,breast_cancer_mlp,friedman_mlp
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _suite import SUITE, TASKS, OracleResult, oracle, positive_int, regret, run_main, task_names

SEEDS_A = (0, 1, 2)
SEEDS_B = (3, 4, 5)


def cross_regret(scored_on: OracleResult, chosen_by: OracleResult) -> float:
    """Regret on ``scored_on``'s seeds of the LR that ``chosen_by``'s seeds found best (same grid)."""
    i = scored_on.grid.index(chosen_by.best_lr)
    return regret(scored_on.losses[i], scored_on.best_loss)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(SUITE), help="comma-separated task names (default: the suite)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="training processes (one thread each)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = task_names(parser, args.tasks)

    rows: dict[str, dict[str, float]] = {}
    for name in names:
        task = TASKS[name]
        a = oracle(task, seeds=SEEDS_A, jobs=args.jobs, progress=print)
        b = oracle(task, seeds=SEEDS_B, jobs=args.jobs, progress=print)
        rows[name] = {
            "best_a": a.best_lr,
            "best_b": b.best_lr,
            "loss_a": a.best_loss,
            "loss_b": b.best_loss,
            "b_on_a": cross_regret(a, b),  # the number comparable with the benchmarks' regrets (scored on 0, 1, 2)
            "a_on_b": cross_regret(b, a),
        }

    print("\n| task | best LR, seeds 0-2 | best LR, seeds 3-5 | best loss 0-2 / 3-5 | regret on 0-2 of the 3-5 grid's "
          "best | regret on 3-5 of the 0-2 grid's best |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['best_a']:.3g} | {r['best_b']:.3g} | {r['loss_a']:.4f} / {r['loss_b']:.4f} | "
              f"{r['b_on_a']:+.1%} | {r['a_on_b']:+.1%} |")
    both = [r["b_on_a"] for r in rows.values()]
    med, worst = statistics.median(both), max(both)
    print(f"\nAn independent exhaustive grid, scored on seeds 0-2: median {med:+.1%}, worst {worst:+.1%}")
    return rows


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
