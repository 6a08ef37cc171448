"""Which feature of a range-test curve predicts how far the default rule's suggestion misses the oracle's best LR?

For every task (``--tasks``, default: all) and seeds 0, 1, 2 it reads lrkit's range test (cached by
``rule_calibration.py`` in ``benchmarks/results/curves_<task>.json``; run here when missing) and the task's oracle,
then prints, per task (median over seeds):

- ``miss``: ``log10(oracle best LR / default suggestion)`` in decades (positive: the suggestion is too low);
- ``edge``: ``log10(oracle best LR / lr_min)``, where ``lr_min`` is the LR at the smoothed curve's minimum;
- curve features: ``drop`` (the smoothed curve's drop over its first value), ``width`` (decades from where the loss
  made a tenth of its drop to its minimum), ``noise`` (``FinderResult.noise``), ``passes``, and the run's length;

and the Spearman rank correlation of each feature with ``miss`` over the tasks, and the misses by optimizer
family. Nothing here trains a model except the range tests of tasks whose curves are not cached yet (and their
oracles, if those are missing).

    python benchmarks/miss_features.py
    python benchmarks/miss_features.py --tasks digits_mlp,wine_mlp
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _suite import TASKS, make_loaders, oracle, run_main, task_names
from lrkit.finder.result import FinderResult
from rule_calibration import curves

FEATURES = ("drop", "width", "noise", "passes", "steps", "lr_min")


def _smoothed(losses: np.ndarray) -> np.ndarray:
    """find_lr's debiased EMA (0.98) up to the first non-finite loss."""
    out, avg = [], 0.0
    for i, v in enumerate(losses):
        if not math.isfinite(v):
            break
        avg = 0.98 * avg + 0.02 * v
        out.append(avg / (1 - 0.98 ** (i + 1)))
    return np.array(out)


def curve_row(task_name: str, curve: dict, best_lr: float, batches_per_pass: int, steps: int) -> dict[str, float]:
    """The miss and the features of one cached range test."""
    lrs = np.array(curve["lrs"])
    losses = np.array([math.nan if v is None else v for v in curve["losses"]])
    stop = "non-finite" if not math.isfinite(losses[-1]) else ("diverged" if len(losses) < 100 else "completed")
    r = FinderResult(lrs=list(lrs), losses=list(losses), stop_reason=stop, passes=len(losses) / batches_per_pass)
    sm = _smoothed(losses)
    i_min = int(np.argmin(sm))
    first, low = sm[0], sm[i_min]
    below = sm < first - 0.1 * (first - low)
    onset = int(np.argmax(below)) if below.any() else i_min
    return {
        "miss": math.log10(best_lr / r.suggestion),
        "edge": math.log10(best_lr / lrs[i_min]),
        "drop": (first - low) / abs(first) if first else 0.0,
        "width": math.log10(lrs[i_min] / lrs[onset]) if onset < i_min else 0.0,
        "noise": r.noise,
        "passes": float(r.passes or math.nan),
        "steps": float(steps),
        "lr_min": math.log10(lrs[i_min]),
    }


def _ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(float)


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation over the pairs where both are finite."""
    pairs = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 3:
        return math.nan
    a, b = (np.array(v) for v in zip(*pairs))
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    names = task_names(parser, args.tasks)
    table = []
    for name in names:
        task = TASKS[name]
        best = oracle(task).best_lr
        train, _ = make_loaders(task, 0)
        rows = [curve_row(name, c, best, len(train), task.total_steps()) for c in curves(task, [0, 1, 2])]
        med = {k: statistics.median([r[k] for r in rows if math.isfinite(r[k])] or [math.nan]) for k in rows[0]}
        table.append((name, task.group, task.optimizer_name, med))
    table.sort(key=lambda row: -row[3]["miss"])
    print("| task | group | optimizer | miss (decades) | edge (decades) | " + " | ".join(FEATURES) + " |")
    print("|---|---|---|---|---|" + "---|" * len(FEATURES))
    for name, group, opt, m in table:
        feats = " | ".join(f"{m[k]:.2f}" for k in FEATURES)
        print(f"| {name} | {group} | {opt} | {m['miss']:+.2f} | {m['edge']:+.2f} | {feats} |")
    print("\n| feature | Spearman correlation with the miss |\n|---|---|")
    misses = [m["miss"] for *_, m in table]
    for k in FEATURES:
        print(f"| {k} | {spearman([m[k] for *_, m in table], misses):+.2f} |")
    families: dict[str, list[float]] = {}
    for _, _, opt, m in table:
        families.setdefault(opt.split()[0].rstrip(","), []).append(m["miss"])
    print("\n| optimizer | tasks | median miss (decades) | suggestion too low by > 0.5 decade |\n|---|---|---|---|")
    for fam, ms in sorted(families.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"| {fam} | {len(ms)} | {statistics.median(ms):+.2f} | {sum(v > 0.5 for v in ms)} of {len(ms)} |")


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
