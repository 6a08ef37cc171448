"""Which short trial ranks peak LRs the way the full run does? (research for ``lr0="auto"``)

``lr0="auto"`` confirms its range-test suggestion with short trials, and short trials favour larger LRs than the full
run. This script measures that bias for two kinds of trial, each scored on validation loss, over the grid LRs
within one decade of the oracle's best (9 points, 3 seeds, median):

* ``compressed``: the run's schedule (5% warmup, cosine to zero) squeezed into ``(prefix + cooldown) * T`` steps —
  what ``choose_lr0`` runs today;
* ``prefix+anneal``: the first ``prefix * T`` steps of the *real* schedule, then a linear anneal to zero over
  ``cooldown * T`` steps (the warmup-stable-decay trick: annealing from mid-run predicts where a run would end).
  A prefix is the start of the real run, so the winner's prefix need not be thrown away.

For each it reports the regret (on the oracle's full-run losses) of the LR the trials rank first. It says how
informative a trial is, not what ``choose_lr0`` costs (a grid of 9 trials is far more than its 30% budget).

    python benchmarks/trial_predictors.py --prefix 0.2 --cooldown 0.05          # every task, ~6 min on 1 core
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _suite import (
    DIVERGENCE_FACTOR,
    HELD_OUT,
    SUITE,
    TASKS,
    Task,
    _evaluate,
    make_loaders,
    oracle,
    run_main,
    task_names,
    warmup_cosine,
)


def trial(task: Task, lr: float, seed: int, multiplier: Callable[[int], float], steps: int) -> float:
    """Validation loss after ``steps`` steps at peak ``lr`` under ``multiplier`` (``inf`` when it diverged)."""
    train, val = make_loaders(task, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = task.build_model(seed)
        model.train()
        opt = task.build_optimizer(model.parameters(), lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, multiplier)
        step, first = 0, math.nan
        while step < steps:
            for x, y in train:
                opt.zero_grad(set_to_none=True)
                loss = task.loss_fn(model(x), y)
                value = loss.item()
                first = value if step == 0 else first
                if not math.isfinite(value) or value > DIVERGENCE_FACTOR * max(first, 1e-12):
                    return math.inf
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                if step >= steps:
                    break
        return _evaluate(model, val, task.loss_fn)


def prefix_anneal(total: int, prefix: int, cooldown: int) -> Callable[[int], float]:
    """The real schedule's first ``prefix`` steps, then a linear anneal from there to zero over ``cooldown`` steps."""
    real = warmup_cosine(total)

    def multiplier(t: int) -> float:
        return real(t) if t < prefix else real(prefix) * max(0.0, 1.0 - (t - prefix + 1) / cooldown)

    return multiplier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join([*SUITE, *HELD_OUT]), help="comma-separated task names")
    parser.add_argument("--prefix", type=float, default=0.2, help="prefix of the real schedule, fraction of the run")
    parser.add_argument("--cooldown", type=float, default=0.05, help="anneal after the prefix, fraction of the run")
    args = parser.parse_args(argv)
    names = task_names(parser, args.tasks)
    for flag, value in (("--prefix", args.prefix), ("--cooldown", args.cooldown)):
        if not (math.isfinite(value) and value > 0):
            parser.error(f"{flag} {value:g} must be > 0 (a fraction of the run)")
    if args.prefix + args.cooldown > 1:  # a trial longer than the run would read the schedule past its end
        parser.error(f"--prefix {args.prefix:g} + --cooldown {args.cooldown:g} must be <= 1: a trial is part of "
                     f"one run")
    torch.set_num_threads(1)
    seeds = (0, 1, 2)
    rows: dict[str, tuple[float, float]] = {}
    print(f"| task | oracle LR | prefix+anneal picks | regret | compressed picks | regret |  "
          f"(prefix {args.prefix:g}, cooldown {args.cooldown:g} of the run)")
    print("|---|---|---|---|---|---|")
    for name in names:
        task = TASKS[name]
        total = task.total_steps()
        orc = oracle(task)
        best = orc.grid.index(orc.best_lr)
        idx = [i for i in range(best - 4, best + 5) if 0 <= i < len(orc.grid)]
        p, c = max(1, round(args.prefix * total)), max(1, round(args.cooldown * total))
        kinds = {"prefix+anneal": prefix_anneal(total, p, c), "compressed": warmup_cosine(p + c)}
        picks = {}
        for kind, mult in kinds.items():
            scores = [statistics.median(trial(task, orc.grid[i], s, mult, p + c) for s in seeds) for i in idx]
            picks[kind] = idx[min(range(len(idx)), key=scores.__getitem__)]
        reg = {k: orc.losses[i] / orc.best_loss - 1 for k, i in picks.items()}
        rows[name] = (reg["prefix+anneal"], reg["compressed"])
        print(f"| {name} | {orc.best_lr:.3g} | {orc.grid[picks['prefix+anneal']]:.3g} | {reg['prefix+anneal']:+.1%} | "
              f"{orc.grid[picks['compressed']]:.3g} | {reg['compressed']:+.1%} |", flush=True)
    for k, label in ((0, "prefix+anneal"), (1, "compressed")):
        for group, names in (("calibration", SUITE), ("held out", HELD_OUT)):
            vals = [rows[n][k] for n in names if n in rows]
            if vals:
                print(f"{label}, {group}: median {statistics.median(vals):+.1%}, worst {max(vals):+.1%}")


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
