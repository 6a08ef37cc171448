"""Benchmark ``lr0="auto"`` (:func:`lrkit.train.auto.choose_lr0`) against the suite's exhaustive-grid oracle.

For every task of ``benchmarks/_suite.py`` and every seed, ``choose_lr0`` runs on that seed's freshly initialised
model and data order, with ``make_scheduler`` = the suite's own schedule (5% linear warmup, cosine to zero) compressed
to each trial; then the full budget is trained at the chosen LR (same seed) and scored on validation loss:

    regret = median_seeds(val_loss at the chosen LR) / oracle best median val_loss - 1
    extra  = (range-test steps + trial steps) / total_steps            (targets: regret median <= 1%, worst <= 5%,
                                                                         extra <= 30% of one run)

Run (prints a Markdown table; full runs are cached under benchmarks/results/auto_lr/):

    python benchmarks/auto_lr.py                    # every task, seeds 0 1 2
    python benchmarks/auto_lr.py --quick            # 2 tasks, 1 seed: a smoke test while developing
    python benchmarks/auto_lr.py --set SEARCH=bracket FINDER_FRACTION=0.15   # try other defaults
    python benchmarks/auto_lr.py --search prefix --tasks all --jobs 2   # the opt-in prefix search (~1.5 runs)
    python benchmarks/auto_lr.py --horizon-bias     # why short trials mislead: trial-optimal LR vs the oracle's
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _suite import (
    RESULTS_DIR,
    SUITE,
    TASKS,
    Task,
    cached_val_loss,
    make_loaders,
    oracle,
    positive_float,
    positive_int,
    regret,
    run_main,
    seed_list,
    task_names,
    warmup_cosine,
)
from lrkit._state import Snapshot
from lrkit._step import cycle_batches
from lrkit.train import auto as auto_mod

CACHE_DIR = RESULTS_DIR / "auto_lr"


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The suite's schedule over ``steps`` steps, on the optimizer's current LRs (what ``make_scheduler`` must be)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps))


@dataclass
class SeedOutcome:
    seed: int
    lr: float
    suggestion: float
    val_loss: float
    extra_steps: int
    extra_fraction: float
    choose_seconds: float
    reason: str


def choose(task: Task, seed: int, budget: float | None, log: bool = False, search: str = "guard") -> tuple[Any, float]:
    """Run ``choose_lr0`` on the seed-``seed`` run's starting state; return (AutoLR, seconds). ``search="prefix"``
    takes no budget (``None``: its cost is fixed)."""
    train, val = make_loaders(task, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # as train_run does before building the model
        model = task.build_model(seed)
        model.train()
        optimizer = task.build_optimizer(model.parameters(), task.default_lr)
        t0 = time.perf_counter()
        result = auto_mod.choose_lr0(
            model, optimizer, train, val, total_steps=task.total_steps(), make_scheduler=warmup_cosine_scheduler,
            loss_fn=task.loss_fn, budget=budget, seed=seed, log=print if log else None, search=search,
        )  # fmt: skip
        return result, time.perf_counter() - t0


def run_task(task: Task, seeds: list[int], budget: float | None, log: bool,
             search: str = "guard") -> tuple[list[SeedOutcome], float]:  # fmt: skip
    outcomes = []
    for seed in seeds:
        result, seconds = choose(task, seed, budget, log, search)
        val = cached_val_loss(task, result.lr, seed, cache_dir=CACHE_DIR)
        outcomes.append(SeedOutcome(
            seed, result.lr, float(result.to_dict()["suggestion"]), val, result.extra_steps, result.extra_fraction,
            seconds, result.reason,
        ))  # fmt: skip
    # seconds of one full training run at the default LR, for the wall-time overhead column
    t0 = time.perf_counter()
    from _suite import train_run

    train_run(task, task.default_lr, seeds[0])
    return outcomes, time.perf_counter() - t0


def horizon_bias(names: list[str], seeds: list[int], fractions: tuple[float, ...] = (0.05, 0.1, 0.2)) -> None:
    """Print, per task, the best peak LR of short runs (the schedule compressed to a fraction of the budget, full
    data, same start and batches, scored on validation loss) divided by the oracle's full-budget best LR."""
    import numpy as np

    grid = [float(v) for v in np.logspace(-4, 1, 41)]  # 8 per decade
    print("| task | oracle LR | " + " | ".join(f"trial {int(100 * f)}% of the run" for f in fractions) + " |")
    print("|---|---|" + "---|" * len(fractions))
    for name in names:
        task = TASKS[name]
        best = oracle(task).best_lr
        cells = []
        for frac in fractions:
            ratios = []
            for seed in seeds:
                steps = max(4, round(frac * task.total_steps()))
                train, val = make_loaders(task, seed)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    model = task.build_model(seed)
                    opt = task.build_optimizer(model.parameters(), task.default_lr)
                    snap = Snapshot.capture(model, opt)
                    losses = []
                    for lr in grid:
                        snap.restore()
                        auto_mod._seed_everything(seed, train.generator)
                        _, diverged, _ = auto_mod._run_trial(
                            model, opt, [1.0], lr, steps, cycle_batches(train, "train_loader"), warmup_cosine_scheduler,
                            task.loss_fn, None, 1, None, torch.device("cpu"),
                        )  # fmt: skip
                        losses.append(math.inf if diverged else auto_mod._val_loss(
                            model, val, task.loss_fn, None, torch.device("cpu")))  # fmt: skip
                ratios.append(grid[int(np.argmin(losses))] / best)
            cells.append(f"{statistics.median(ratios):.2g}x ({min(ratios):.2g}-{max(ratios):.2g})")
        print(f"| {name} | {best:.3g} | " + " | ".join(cells) + " |", flush=True)


def _fmt(v: float, spec: str = ".4f") -> str:
    return "diverged" if not math.isfinite(v) else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="*", default=None, help=f"task names (default: {', '.join(SUITE)})")
    parser.add_argument("--seeds", nargs="*", default=["0", "1", "2"], help="space-separated seeds (default: 0 1 2)")
    parser.add_argument("--budget", type=positive_float, default=None,
                        help="extra compute (fraction of one run; default 0.3; --search guard only)")  # fmt: skip
    parser.add_argument("--search", choices=auto_mod.SEARCHES, default="guard",
                        help="choose_lr0's search: guard (default) or prefix (opt-in, ~1.5 runs of extra compute)")
    parser.add_argument("--quick", action="store_true", help="2 tasks, seed 0: a smoke test")
    parser.add_argument("--jobs", type=positive_int, default=1, help="processes for the oracle grid, if not cached")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="override a default of lrkit.train.auto (e.g. SPACING=1.5) to try it")  # fmt: skip
    parser.add_argument("--log", action="store_true", help="print choose_lr0's log lines")
    parser.add_argument("--horizon-bias", action="store_true",
                        help="instead: short trials' best LR relative to the oracle's (why they mislead)")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.search == "prefix" and args.budget is not None:
        parser.error(f"--budget {args.budget:g} does not apply to --search prefix (its cost is fixed: about "
                     f"{auto_mod._prefix_cost():g} runs)")  # fmt: skip
    budget = args.budget if args.budget is not None or args.search == "prefix" else 0.3

    for item in args.set:
        name, _, value = item.partition("=")
        if not hasattr(auto_mod, name):
            parser.error(f"lrkit.train.auto has no setting {name!r}")
        kind = type(getattr(auto_mod, name))
        if kind is bool:  # bool("false") would be True
            if value.lower() not in ("true", "false", "1", "0"):
                parser.error(f"--set {name}={value!r}: expected true or false")
            setattr(auto_mod, name, value.lower() in ("true", "1"))
        else:
            try:
                setattr(auto_mod, name, kind(value))
            except ValueError:
                parser.error(f"--set {name}={value!r}: expected a {kind.__name__} like {getattr(auto_mod, name)!r}")
    # `--tasks` with no names is an error (task_names), not the whole suite
    names = task_names(parser, ",".join(args.tasks)) if args.tasks is not None else list(SUITE)
    seeds = seed_list(parser, args.seeds)
    if args.quick:
        names, seeds = (names if args.tasks else ["wine_mlp", "breast_cancer_logreg"]), [0]

    if args.horizon_bias:
        horizon_bias(names, seeds)
        return 0

    rows = []
    how = "search=prefix" if budget is None else f"budget={budget:g}"
    print(f"lr0='auto' benchmark: {how}, seeds={seeds}"
          + (f", settings {' '.join(args.set)}" if args.set else ""), flush=True)  # fmt: skip
    for name in names:
        task = TASKS[name]
        orc = oracle(task, jobs=args.jobs, progress=lambda m: print(m, flush=True))
        try:
            outcomes, run_seconds = run_task(task, seeds, budget, args.log, args.search)
        except ValueError as e:  # lrkit.train.auto checks its settings when choose_lr0 runs: name the --set value
            if not args.set:
                raise
            parser.error(f"--set {' '.join(args.set)}: {e}")
        med_loss = statistics.median(o.val_loss for o in outcomes)
        r = regret(med_loss, orc.best_loss)
        row = {
            "task": name,
            "held_out": task.held_out,
            "optimizer": task.optimizer_name,
            "steps": task.total_steps(),
            "suggestion": statistics.median(o.suggestion for o in outcomes),
            "chosen": statistics.median(o.lr for o in outcomes),
            "chosen_all": [o.lr for o in outcomes],
            "oracle_lr": orc.best_lr,
            "oracle_loss": orc.best_loss,
            "loss": med_loss,
            "regret": r,
            "extra": max(o.extra_fraction for o in outcomes),
            "extra_time": statistics.median(o.choose_seconds for o in outcomes) / run_seconds,
        }
        rows.append(row)
        print(f"  {name}: chosen {', '.join(f'{v:.3g}' for v in row['chosen_all'])} (oracle {orc.best_lr:.3g}), "
              f"loss {_fmt(med_loss)} vs {orc.best_loss:.4f}, regret {100 * r:.2f}%, extra {100 * row['extra']:.0f}%",
              flush=True)  # fmt: skip
        if args.log:
            for o in outcomes:
                print(f"    seed {o.seed}: {o.reason}")

    print()
    print("| task | optimizer | steps | finder suggestion | chosen LR | oracle LR | val loss (chosen / oracle) "
          "| regret | extra steps | extra time |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['task']} | {row['optimizer']} | {row['steps']} | {row['suggestion']:.3g} | {row['chosen']:.3g} "
              f"| {row['oracle_lr']:.3g} | {_fmt(row['loss'])} / {row['oracle_loss']:.4f} | {100 * row['regret']:.2f}% "
              f"| {100 * row['extra']:.0f}% | {100 * row['extra_time']:.0f}% |")  # fmt: skip
    regrets = [row["regret"] for row in rows]
    extras = [row["extra"] for row in rows]
    print()
    print(f"regret: median {100 * statistics.median(regrets):.2f}%, worst {100 * max(regrets):.2f}%  "
          f"(targets <= 1%, <= 5%)")  # fmt: skip
    print(f"extra compute (optimizer steps, fraction of one run): median {100 * statistics.median(extras):.0f}%, "
          f"max {100 * max(extras):.0f}%  (target <= 30%)")  # fmt: skip
    held_out = [row["regret"] for row in rows if row["held_out"]]
    if held_out and len(held_out) < len(rows):  # both kinds: each pooled on its own (the calibration set is in sample)
        calibration = [row["regret"] for row in rows if not row["held_out"]]
        for label, values in (("held out", held_out), ("calibration", calibration)):
            print(f"{label} ({len(values)} tasks): median {100 * statistics.median(values):.2f}%, worst "
                  f"{100 * max(values):.2f}%, within 1%: {sum(v <= 0.01 for v in values)}/{len(values)}, within 5%: "
                  f"{sum(v <= 0.05 for v in values)}/{len(values)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
