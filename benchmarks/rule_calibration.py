"""Calibrate and cross-check lrkit's default suggestion rule against the suite's oracle grids.

For each task and seed, run ``lrkit.find_lr`` once (curves cached in ``benchmarks/results/curves_<task>.json``),
then score suggestion rules *without training*: a suggested LR's loss is read off the oracle's median-loss curve by
linear interpolation in ``log10(lr)`` (``finder_quality.py`` then confirms the chosen rule by real training).

The robust rule has one constant, the back-off below the loss minimum (``ROBUST_BACKOFF_DECADES``). This script
prints the interpolated regret for a sweep of that constant, and a leave-one-task-out estimate: the back-off is chosen
on all tasks but one and scored on the one left out, so the number is not fit to the task it is measured on.
Consensus rules (``CONSENSUS``: combinations of the single-point rules' LRs) are scored the same way.

    python benchmarks/rule_calibration.py            # the six calibration tasks (_suite.SUITE), 3 finder seeds

The held-out tasks (``_suite.HELD_OUT``) and the fresh pre-registered set (``_suite.FRESH``) are never used to choose
anything here; pass them with ``--tasks`` to score the rules on them out-of-sample (``finder_quality.py --tasks ...``
then scores them by real training):

    python benchmarks/rule_calibration.py --tasks moons_deep_mlp diabetes_mlp circles_wide_mlp regression_layernorm_mlp
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lrkit
from _suite import RESULTS_DIR, SUITE, TASKS, Task, make_loaders, oracle, positive_int, run_main, task_key, task_names
from lrkit._utils import atomic_write_text
from lrkit.finder import suggest as S


def finder_curve(task: Task, seed: int) -> dict[str, list[float]]:
    """One range test with lrkit's defaults on the task's model, optimizer and train loader."""
    torch.manual_seed(seed)
    model = task.build_model(seed)
    opt = task.build_optimizer(model.parameters(), task.default_lr)
    train, _ = make_loaders(task, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = lrkit.find_lr(model, opt, train, loss_fn=task.loss_fn)
    return {"lrs": r.lrs, "losses": [v if math.isfinite(v) else None for v in r.losses]}


def curves(task: Task, seeds: list[int]) -> list[dict[str, list[float]]]:
    path = RESULTS_DIR / f"curves_{task.name}.json"
    key = task_key(task.name)
    cache = json.loads(path.read_text()) if path.exists() else {}
    if cache.get("key") != key:  # the task changed: its old curves say nothing about it
        cache = {"key": key}
    for s in seeds:
        if str(s) not in cache:
            cache[str(s)] = finder_curve(task, s)
            atomic_write_text(path, json.dumps(cache))
    return [cache[str(s)] for s in seeds]


def interp_loss(grid: list[float], losses: list[float], lr: float) -> float:
    """The oracle's median loss at ``lr``, linear in log10(lr); diverged grid points count as inf."""
    x = np.log10(grid)
    t = math.log10(lr)
    if t <= x[0]:
        return losses[0]
    if t >= x[-1]:
        return losses[-1]
    i = int(np.searchsorted(x, t)) - 1
    a, b = losses[i], losses[i + 1]
    if not (math.isfinite(a) and math.isfinite(b)):
        return a if (t - x[i]) < (x[i + 1] - t) else b
    w = (t - x[i]) / (x[i + 1] - x[i])
    return (1 - w) * a + w * b


def rule_regret(rule, curve_sets, oracles) -> dict[str, float]:
    """Median-over-seeds interpolated regret per task for ``rule(lrs, losses) -> lr``."""
    out = {}
    for name, cs in curve_sets.items():
        o = oracles[name]
        regs = []
        for c in cs:
            losses = np.array([np.nan if v is None else v for v in c["losses"]])
            lr = rule(np.array(c["lrs"]), losses)
            regs.append(interp_loss(o.grid, o.losses, lr) / o.best_loss - 1)
        out[name] = float(statistics.median(regs))
    return out


def _geomean(*values: float) -> float:
    return float(np.exp(np.mean(np.log(values))))


def noise_ratio(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The range test's batch-to-batch noise relative to the drop it saw: 1.4826 x the median absolute deviation of
    the raw losses around the smoothed curve (up to its minimum), over the drop from the first eighth's median loss
    to the smoothed minimum. Low on curves whose minimum is a stability edge, high on noise-dominated ones."""
    finite = np.isfinite(losses)
    raw = losses[finite]
    smooth = S.smooth_curve(raw)
    i = int(np.argmin(smooth))
    resid = (raw - smooth)[: i + 1]
    mad = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    drop = float(np.median(raw[: max(5, len(raw) // 8)])) - float(smooth[i])
    return mad / drop if drop > 0 else math.inf


#: The noise-aware back-off (pre-registered in docs/benchmarks/finder.md's "Third fresh set"): the robust rule's
#: back-offs scaled by w = clip((NOISE_HIGH - noise_ratio) / (NOISE_HIGH - NOISE_LOW), 0, 1): in full below
#: NOISE_LOW, none above NOISE_HIGH.
NOISE_LOW, NOISE_HIGH = 0.07, 0.10


def noise_aware(lrs: np.ndarray, losses: np.ndarray) -> float:
    w = min(1.0, max(0.0, (NOISE_HIGH - noise_ratio(lrs, losses)) / (NOISE_HIGH - NOISE_LOW)))
    return S.suggest_robust(lrs, losses, backoff_decades=S.ROBUST_BACKOFF_DECADES * w,
                            plateau_backoff_decades=S.ROBUST_PLATEAU_BACKOFF_DECADES * w, noise_band=None,
                            dip_rise=None)


# The double-dip cut and the passes gate, pre-registered here (docs/benchmarks/finder.md, "Fourth fresh set" and
# "Fifth fresh set") and now part of lrkit's default rule: the methods below read ``lrkit.finder.suggest.dip_cut``,
# ``ROBUST_DIP_RISE``, ``ROBUST_DIP_GATE`` and ``ROBUST_MAX_PASSES`` from the library.


def double_dip(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The default (robust, noise-scaled), read on the curve cut at its first instability when it dips twice (as if
    the range test had stopped there); otherwise the default itself — without the passes gate. ``stopped`` is read
    from the curve's length (the range test's 100 steps: a shorter curve stopped on divergence)."""
    return dip_gate(lrs, losses, passes=0.0)  # no gate: the noise scaling always applies


def dip_gate(lrs: np.ndarray, losses: np.ndarray, passes: float) -> float:
    """:func:`double_dip` with the noise scaling only when the range test made at most ``ROBUST_MAX_PASSES`` (6)
    passes over the training set (``passes``); above that, the default's full back-offs: lrkit's default rule
    today."""
    return S.suggest_robust(np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float), stopped=len(lrs) < 100,
                            passes=passes)


#: The robust rule as it read a curve before the double-dip cut (every rule below was scored with it): noise-scaled.
_robust = functools.partial(S.suggest_robust, dip_rise=None)


#: Rules that combine the single-point rules' LRs (tried for the default; none meets the targets, see
#: docs/benchmarks/finder.md).
CONSENSUS = {
    "consensus: geometric mean(robust, valley)": lambda lrs, losses: _geomean(
        _robust(lrs, losses), S.suggest_valley(lrs, losses)),
    "consensus: median(robust, valley, steepest)": lambda lrs, losses: float(np.median(
        [_robust(lrs, losses), S.suggest_valley(lrs, losses), S.suggest_steepest(lrs, losses)])),
    "consensus: max(robust, valley)": lambda lrs, losses: max(
        _robust(lrs, losses), S.suggest_valley(lrs, losses)),
    # not a consensus: the default before its plateau branch (a decade below every curve's minimum), for comparison
    "one-regime: robust without the plateau branch": functools.partial(
        S.suggest_robust, plateau_backoff_decades=None, noise_band=None, dip_rise=None),
    # the default before its noise scaling (two regimes, fresh2's test), for comparison
    "two-regime: robust without the noise scaling": functools.partial(S.suggest_robust, noise_band=None,
                                                                       dip_rise=None),
    # not a consensus either: the back-off scaled down on noise-dominated curves (the third fresh set's test)
    "noise-aware: robust, back-off scaled by the curve's noise": noise_aware,
    # the default, cut at a double dip's first instability (the fifth held-out set's test)
    "double-dip: robust, cut at the first of two dips": double_dip,
}


def with_backoff(decades: float):
    """The two-regime rule (no noise scaling) with the explosion back-off ``decades``: the constant's calibration."""
    return functools.partial(S.suggest_robust, backoff_decades=decades, noise_band=None, dip_rise=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="*", default=list(SUITE), help="space-separated task names (default: the six)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="finder seeds per task: 0 .. N-1 (default 3)")
    args = parser.parse_args()
    tasks = [TASKS[t] for t in task_names(parser, ",".join(args.tasks))]
    if len(tasks) < 2:  # the back-off is chosen on the other tasks, so one task leaves nothing to choose it on
        parser.error(f"--tasks: the leave-one-task-out check needs at least 2 tasks (got {len(tasks)})")
    torch.set_num_threads(1)
    oracles = {t.name: oracle(t) for t in tasks}
    curve_sets = {t.name: curves(t, list(range(args.seeds))) for t in tasks}

    print("## Oracle\n\n| task | best LR | best loss | LRs within 3% |\n|---|---|---|---|")
    for name, o in oracles.items():
        print(f"| {name} | {o.best_lr:.3g} | {o.best_loss:.4f} | {o.good_range[0]:.3g} – {o.good_range[1]:.3g} |")

    backoffs = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
    table = {f"robust, back-off {b:g} dec": rule_regret(with_backoff(b), curve_sets, oracles) for b in backoffs}
    for name in ("steepest", "minimum", "valley"):
        table[name] = rule_regret(S.RULES[name], curve_sets, oracles)
    # consensus of rules that fail on different tasks (robust: mildly everywhere; valley: badly on logistic regression)
    for label, combo in CONSENSUS.items():
        table[label] = rule_regret(combo, curve_sets, oracles)
    names = list(oracles)
    print("\n## Interpolated regret (median over finder seeds)\n")
    print("| rule | " + " | ".join(names) + " | median | worst |")
    print("|---" * (len(names) + 3) + "|")
    for label, regs in table.items():
        vals = [regs[n] for n in names]
        cells = " | ".join(f"{100 * v:.1f}%" for v in vals)
        print(f"| {label} | {cells} | {100 * statistics.median(vals):.1f}% | {100 * max(vals):.1f}% |")

    print("\n## Leave-one-task-out back-off\n\n| held-out task | back-off chosen on the rest | regret |\n|---|---|---|")
    held = []
    for n in names:
        rest = [m for m in names if m != n]

        def score(b: float, rest: list[str] = rest) -> tuple[float, float]:
            regs = [table[f"robust, back-off {b:g} dec"][m] for m in rest]
            return (statistics.median(regs), max(regs))

        best_b = min(backoffs, key=score)
        reg = table[f"robust, back-off {best_b:g} dec"][n]
        held.append(reg)
        print(f"| {n} | {best_b:g} | {100 * reg:.1f}% |")
    print(f"\nleave-one-out: median {100 * statistics.median(held):.1f}%, worst {100 * max(held):.1f}%")


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
