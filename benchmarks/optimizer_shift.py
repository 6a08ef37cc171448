"""What would shifting the default suggestion by a constant number of decades do for one optimizer family?

For every task whose optimizer is ``--optimizer`` (default ``Adagrad``; the groups registered before the eleventh
fresh set, ``fresh11``, unless ``--tasks`` names others) it reads lrkit's three cached range tests (seeds 0, 1, 2;
``benchmarks/results/curves_<task>.json``, run here when missing) and the task's oracle grid, and prints the
regret each shift would give: the suggestion times ``10**shift``, its validation loss *interpolated* linearly in
log-LR between the oracle's grid points of the same seed (no run is trained at it), over the oracle's best median
loss, minus 1; median over seeds. It is an estimate for choosing a hypothesis, not a measurement: a pre-registered
set trains at the shifted LR (``finder_quality.py``'s ``lrkit:adagrad-shift``).

    python benchmarks/optimizer_shift.py
    python benchmarks/optimizer_shift.py --optimizer Adam --shifts 0 0.25 0.5
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

from _suite import TASKS, OracleResult, make_loaders, oracle, run_main, task_names
from lrkit.finder.result import FinderResult
from rule_calibration import curves

#: Groups registered after the shift was estimated: left out by default, so the estimate stays in sample.
LATER_GROUPS = ("fresh11",)


def interpolated_loss(o: OracleResult, lr: float, seed_index: int) -> float:
    """Seed ``seed_index``'s validation loss at ``lr``, linear in log-LR between the oracle's grid points (clamped to
    the grid's ends; ``inf`` where the nearer neighbour diverged)."""
    grid = np.log10(np.asarray(o.grid, dtype=float))
    losses = np.array([row[seed_index] for row in o.per_seed], dtype=float)
    x = math.log10(lr)
    if x <= grid[0]:
        return float(losses[0])
    if x >= grid[-1]:
        return float(losses[-1])
    i = int(np.searchsorted(grid, x)) - 1
    t = (x - grid[i]) / (grid[i + 1] - grid[i])
    a, b = losses[i], losses[i + 1]
    if not (math.isfinite(a) and math.isfinite(b)):
        nearer = b if t > 0.5 else a
        return float(nearer) if math.isfinite(nearer) else math.inf
    return float(a + t * (b - a))


def suggestions(name: str) -> list[float]:
    """The default rule's suggestion on each of the task's three cached range tests."""
    task = TASKS[name]
    train, _ = make_loaders(task, 0)
    out = []
    for c in curves(task, [0, 1, 2]):
        losses = [math.nan if v is None else v for v in c["losses"]]
        stop = "non-finite" if not math.isfinite(losses[-1]) else ("diverged" if len(losses) < 100 else "completed")
        r = FinderResult(lrs=list(c["lrs"]), losses=losses, stop_reason=stop, passes=len(losses) / len(train))
        out.append(float(r.suggestion))
    return out


def _finite(text: str) -> float:
    """An argparse ``type=`` for a shift in decades: any finite number (``nan``/``inf`` would fill a column with NaN).

    >>> _finite("-0.5")
    -0.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give shifts in decades, e.g. 0 0.3 0.5") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number of decades, e.g. 0.5")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optimizer", default="Adagrad", help="the family: a task's optimizer name starts with it")
    parser.add_argument("--shifts", type=_finite, nargs="+", default=[0.0, 0.3, 0.5, 0.7, 1.0],
                        help="shifts in decades (default: 0 0.3 0.5 0.7 1)")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: the family's tasks)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    if args.tasks is None:
        names = [n for n, t in TASKS.items() if t.optimizer_name.split(",")[0].split()[0] == args.optimizer
                 and t.group not in LATER_GROUPS]
        if not names:
            families = sorted({t.optimizer_name.split(",")[0].split()[0] for t in TASKS.values()
                               if t.group not in LATER_GROUPS})  # fmt: skip
            parser.error(f"no task's optimizer is {args.optimizer!r}; valid: {', '.join(families)} (case matters)")
    else:
        names = task_names(parser, args.tasks)
    header = " | ".join(f"shift {s:+.2f}" for s in args.shifts)
    print(f"| task | optimizer | oracle best LR | suggestions (seeds 0, 1, 2) | {header} |")
    print("|---|---|---|---|" + "---|" * len(args.shifts))
    per_shift: dict[float, list[float]] = {s: [] for s in args.shifts}
    for name in names:
        o = oracle(TASKS[name])
        sugg = suggestions(name)
        cells = []
        for s in args.shifts:
            regs = [interpolated_loss(o, lr * 10**s, i) / o.best_loss - 1 for i, lr in enumerate(sugg)]
            reg = statistics.median(regs)
            per_shift[s].append(reg)
            cells.append("diverged" if not math.isfinite(reg) else f"{reg:+.1%}")
        shown = ", ".join(f"{v:.3g}" for v in sugg)
        print(f"| {name} | {TASKS[name].optimizer_name} | {o.best_lr:.3g} | {shown} | {' | '.join(cells)} |")
    print("\n| shift (decades) | median regret | worst regret | within 15% |\n|---|---|---|---|")
    for s, regs in per_shift.items():
        worst = max(regs)
        shown = "diverged" if not math.isfinite(worst) else f"{worst:+.1%}"
        within = sum(r <= 0.15 for r in regs)
        print(f"| {s:+.2f} | {statistics.median(regs):+.1%} | {shown} | {within} of {len(regs)} |")


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
