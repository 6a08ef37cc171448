"""Finder quality: how good is the LR each finder suggests, measured by training at it, against an oracle?

For every task of the suite (``benchmarks/_suite.py``) and every method — lrkit's default rule, each of its other
rules, the consensus rule ``max(robust, valley)`` and the default before its plateau branch (``one-regime``; both in
``CONSENSUS_METHODS``), torch-lr-finder (steepest gradient),
Lightning's ``Tuner.lr_find``, fastai's ``lr_find`` valley, and the plain optimizer defaults (SGD/RMSprop/Adagrad
0.01, Adam/AdamW 1e-3) — the benchmark

1. runs the finder once per seed s in (0, 1, 2) on the seed-s model and loader (the finder's own defaults: 100
   steps; lrkit, torch-lr-finder and fastai sweep 1e-7..10, Lightning 1e-8..1, its default),
2. trains the full budget at each suggestion with the same seed s (``train_run``: 5% warmup + cosine),
3. reports the median validation loss over seeds, the regret against the oracle's best grid LR
   (``loss / oracle_loss - 1``; inf when training diverged or the finder gave no LR) and the finder's cost.

Usage::

    python benchmarks/finder_quality.py                      # the full benchmark (oracle cached after 1st run)
    python benchmarks/finder_quality.py --quick --tasks wine_mlp,digits_mlp   # development only
    python benchmarks/finder_quality.py --methods lrkit,fastai --json out.json
    # the fresh held-out set (_suite.FRESH), out-of-sample:
    python benchmarks/finder_quality.py --jobs 2 \\
        --tasks moons_deep_mlp,diabetes_mlp,circles_wide_mlp,regression_layernorm_mlp

Peers are optional: a missing one prints "skipped (pip install X)". Install them without replacing torch/numpy:
``pip install -c benchmarks/constraints.txt -e ".[bench]"`` (torch-lr-finder, lightning) and
``pip install -c benchmarks/constraints.txt --no-deps fastai`` plus ``fastcore fastprogress fasttransform
fastdownload plum-dispatch pandas``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _suite import (
    SUITE,
    TASKS,
    OracleResult,
    Task,
    default_grid,
    evaluate_lrs,
    make_loaders,
    oracle,
    output_file,
    positive_int,
    regret,
    run_main,
    task_names,
)

SEEDS = (0, 1, 2)
#: What a missing peer's row says to install: the ``bench`` extra, pinned so that it keeps torch and numpy.
BENCH_EXTRA = 'pip install -c benchmarks/constraints.txt -e ".[bench]"'
#: Rule variants scored by real training too, as methods ``lrkit:<name>``: name -> its label in
#: ``rule_calibration.CONSENSUS`` (computed by that very function, from the same range-test run as the other rules).
CONSENSUS_METHODS: dict[str, str] = {
    "max(robust,valley)": "consensus: max(robust, valley)",
    "one-regime": "one-regime: robust without the plateau branch",
    "two-regime": "two-regime: robust without the noise scaling",
    "noise-aware": "noise-aware: robust, back-off scaled by the curve's noise",
    "double-dip": "double-dip: robust, cut at the first of two dips",
}
#: The guards of method ``lrkit:dip-guard``: ``(dip_noise, dip_passes)`` of ``lrkit.finder.suggest.suggest_robust``.
DIP_GUARD = (1.5, 6.0)
#: The ``flat`` of method ``lrkit:flat-edge`` (``lrkit.finder.suggest.suggest_robust``): the range test's own "too flat
#: to judge" line, 2% of the starting loss.
FLAT = 0.02
#: The ``flat_sigmas`` of method ``lrkit:flat-noise``: a dip within 2 robust standard deviations of the scatter is flat.
FLAT_SIGMAS = 2.0
#: The shift of method ``lrkit:adagrad-shift``, in decades: the default suggestion times ``10**ADAGRAD_SHIFT`` when the
#: optimizer is ``torch.optim.Adagrad`` (the eleventh fresh set's pre-registered test, docs/benchmarks/finder.md).
ADAGRAD_SHIFT = 0.5
START_LR = 1e-7  # lrkit's, fastai's default; torch-lr-finder starts from the optimizer's LR, so we set it to this


class PeerMissing(Exception):
    """A peer package is not installed; the message says what to install."""


@dataclass
class FinderRun:
    """One finder call on one seed: the LR(s) it suggests (``None`` = no suggestion) and what it cost."""

    lrs: dict[str, float | None]
    steps: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence a peer's progress bars, prints and warnings (they go to stdout/stderr and would garble the tables)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield


def _fresh(task: Task, seed: int) -> tuple[torch.nn.Module, Any]:
    """The seed-``seed`` model and train loader: exactly what ``train_run(task, lr, seed)`` starts from."""
    _seed_everything(seed)
    return task.build_model(seed), make_loaders(task, seed)[0]


# ----------------------------------------------------------------------------------------------------- methods
def _lrkit_rules() -> tuple[str, ...]:
    try:
        import lrkit

        return tuple(lrkit.SUGGESTION_RULES)
    except (ImportError, AttributeError):
        return ()


def _consensus_rules() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """``CONSENSUS_METHODS`` resolved to ``rule(lrs, losses) -> lr`` functions from ``rule_calibration.CONSENSUS``."""
    from rule_calibration import CONSENSUS  # lazily: it imports lrkit, which run_lrkit reports missing on its own

    return {name: CONSENSUS[label] for name, label in CONSENSUS_METHODS.items()}


def run_lrkit(task: Task, seed: int) -> FinderRun:
    """lrkit.find_lr with its defaults; one run yields the default suggestion, every rule's and each consensus's."""
    try:
        import lrkit

        find_lr = lrkit.find_lr
        rules = tuple(lrkit.SUGGESTION_RULES)
    except (ImportError, AttributeError) as e:
        raise PeerMissing(f"skipped (lrkit.find_lr not importable: {e})") from None
    model, loader = _fresh(task, seed)
    optimizer = task.build_optimizer(model.parameters(), task.default_lr)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = find_lr(model, optimizer, loader, loss_fn=task.loss_fn, start_lr=START_LR)
        lrs: dict[str, float | None] = {"lrkit": float(res.suggestion)}
        for rule in rules:
            lrs[f"lrkit:{rule}"] = float(res.suggest(rule))
        curve = (np.asarray(res.lrs, dtype=float), np.asarray(res.losses, dtype=float))  # the rules drop non-finite
        for name, combo in _consensus_rules().items():
            lrs[f"lrkit:{name}"] = float(combo(*curve))
        # the default before its noise scaling, exactly as it read this run (stopped on divergence: never a plateau)
        lrs["lrkit:two-regime"] = float(res.suggest(noise_band=None, dip_rise=None, max_passes=None))
        # the double-dip cut with the passes gate (the fifth fresh set's test): needs the training set's size
        from rule_calibration import dip_gate

        passes = res.num_steps_run * task.batch_size / len(task.data().x_train)
        lrs["lrkit:dip+gate"] = float(dip_gate(*curve, passes))
        # the double-dip cut with its two guards (the seventh fresh set's pre-registered test,
        # docs/benchmarks/finder.md)
        lrs["lrkit:dip-guard"] = float(res.suggest(dip_noise=DIP_GUARD[0], dip_passes=DIP_GUARD[1]))
        # a curve too flat to judge read from where it blew up (the eighth fresh set's pre-registered test,
        # docs/benchmarks/finder.md)
        lrs["lrkit:flat-edge"] = float(res.suggest(flat=FLAT))
        # a flat curve told from one that learned by its scatter too (the ninth fresh set's pre-registered test)
        lrs["lrkit:flat-noise"] = float(res.suggest(flat=FLAT, flat_sigmas=FLAT_SIGMAS))
        # Adagrad's suggestion half a decade up (the eleventh fresh set's pre-registered test); others unchanged
        shift = 10 ** ADAGRAD_SHIFT if isinstance(optimizer, torch.optim.Adagrad) else 1.0
        lrs["lrkit:adagrad-shift"] = float(res.suggestion) * shift
    seconds = time.perf_counter() - t0
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning) and "lrkit" in w.filename]
    return FinderRun(lrs, res.num_steps_run, seconds, notes)


def run_torch_lr_finder(task: Task, seed: int) -> FinderRun:
    """torch-lr-finder: range_test(end_lr=10, num_iter=100, step_mode="exp"), then plot()'s steepest-gradient LR."""
    try:
        from torch_lr_finder import LRFinder
    except ImportError:
        raise PeerMissing(f"skipped (pip install torch-lr-finder; or every peer but fastai: {BENCH_EXTRA})") from None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, loader = _fresh(task, seed)
    optimizer = task.build_optimizer(model.parameters(), START_LR)
    t0 = time.perf_counter()
    finder = LRFinder(model, optimizer, task.loss_fn, device="cpu")
    notes: list[str] = []
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        finder.range_test(loader, end_lr=10, num_iter=100, step_mode="exp")
        fig, ax = plt.subplots()
        try:
            _, lr = finder.plot(ax=ax, suggest_lr=True)
        except (RuntimeError, ValueError) as e:  # too few points after an early divergence
            lr = None
            notes.append(f"no suggestion: {e}")
        finally:
            plt.close(fig)
        finder.reset()
    seconds = time.perf_counter() - t0
    return FinderRun({"torch-lr-finder": None if lr is None else float(lr)}, len(finder.history["lr"]), seconds, notes)


def run_lightning(task: Task, seed: int) -> FinderRun:
    """Lightning's Tuner.lr_find with its defaults (1e-8..1, 100 steps, steepest gradient of the smoothed loss)."""
    try:
        import lightning.pytorch as pl
        from lightning.pytorch.tuner import Tuner
    except ImportError:
        raise PeerMissing(f"skipped (pip install lightning; or every peer but fastai: {BENCH_EXTRA})") from None
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class Wrapped(pl.LightningModule):
        def __init__(self, model: torch.nn.Module, lr: float) -> None:
            super().__init__()
            self.model = model
            self.lr = lr

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return task.loss_fn(self.model(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return task.build_optimizer(self.parameters(), self.lr)

    model, loader = _fresh(task, seed)
    module = Wrapped(model, task.default_lr)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp,
        )  # fmt: skip
        result = Tuner(trainer).lr_find(module, train_dataloaders=loader)
        lr = result.suggestion() if result is not None else None
    seconds = time.perf_counter() - t0
    steps = len(result.results.get("lr", [])) if result is not None else 0
    return FinderRun({"lightning": None if lr is None else float(lr)}, steps, seconds)


def run_fastai(task: Task, seed: int) -> FinderRun:
    """fastai's learn.lr_find(suggest_funcs=(valley,)) with its defaults (1e-7..10, 100 steps), torch optimizer."""
    try:
        from fastai.callback.schedule import valley
        from fastai.data.core import DataLoaders
        from fastai.learner import Learner
        from fastai.optimizer import OptimWrapper
    except ImportError:
        raise PeerMissing(
            "skipped (pip install -c benchmarks/constraints.txt --no-deps fastai; pip install -c "
            "benchmarks/constraints.txt fastcore fastprogress fasttransform fastdownload plum-dispatch pandas)"
        ) from None
    model, loader = _fresh(task, seed)
    val_loader = make_loaders(task, seed)[1]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        dls = DataLoaders(loader, val_loader, device=torch.device("cpu"))
        # OptimWrapper runs the task's own torch optimizer, so every method trains the very same optimizer
        learn = Learner(dls, model, loss_func=task.loss_fn, opt_func=partial(OptimWrapper, opt=task.build_optimizer),
                        path=tmp, model_dir="models")  # fmt: skip
        with learn.no_bar(), learn.no_logging():  # fastai saves/loads the model under `path` (a temp dir here)
            suggested = learn.lr_find(start_lr=START_LR, suggest_funcs=(valley,), show_plot=False)
        steps = len(learn.recorder.lrs)
    seconds = time.perf_counter() - t0
    return FinderRun({"fastai": float(suggested.valley)}, steps, seconds)


def run_default(task: Task, seed: int) -> FinderRun:
    """The optimizer's textbook default LR (SGD 0.01, Adam/AdamW 1e-3): no finder, no cost."""
    return FinderRun({"default": task.default_lr}, 0, 0.0)


FAMILIES: dict[str, Callable[[Task, int], FinderRun]] = {
    "lrkit": run_lrkit,
    "torch-lr-finder": run_torch_lr_finder,
    "lightning": run_lightning,
    "fastai": run_fastai,
    "default": run_default,
}


def _family_methods(family: str) -> list[str]:
    if family == "lrkit":
        return ["lrkit", *(f"lrkit:{r}" for r in _lrkit_rules()), *(f"lrkit:{n}" for n in CONSENSUS_METHODS),
                "lrkit:dip+gate", "lrkit:dip-guard", "lrkit:flat-edge", "lrkit:flat-noise", "lrkit:adagrad-shift"]
    return [family]


# --------------------------------------------------------------------------------------------------------- scoring
@dataclass
class MethodResult:
    """One method on one task: per-seed suggestions and val losses, the median, regret and finder cost."""

    method: str
    lrs: list[float | None]
    losses: list[float]
    loss: float
    regret: float
    steps: float
    seconds: float
    status: str = "ok"
    notes: list[str] = field(default_factory=list)

    @property
    def lr(self) -> float | None:
        """The median suggestion over seeds (``None`` if no seed gave one)."""
        finite = [v for v in self.lrs if v is not None and math.isfinite(v)]
        return float(statistics.median(finite)) if finite else None


def score_task(
    task: Task,
    families: Sequence[str],
    *,
    seeds: Sequence[int],
    orc: OracleResult,
    jobs: int,
    log: Callable[[str], None],
) -> list[MethodResult]:
    """Run each family's finder for every seed, train at the suggestions (cached), and score every method."""
    runs: dict[str, list[FinderRun]] = {}
    skipped: dict[str, str] = {}
    for family in families:
        try:
            runs[family] = []
            for s in seeds:
                runs[family].append(FAMILIES[family](task, s))
        except PeerMissing as e:
            skipped[family] = str(e)
            runs.pop(family)
        except Exception as e:  # a peer that crashes on this task is a result, not a reason to stop the benchmark
            skipped[family] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            runs.pop(family)
            log(f"  {family} failed on {task.name}: {e!r}")
    pairs = [
        (lr, s)
        for family_runs in runs.values()
        for run, s in zip(family_runs, seeds)
        for lr in run.lrs.values()
        if lr is not None and math.isfinite(lr) and lr > 0
    ]
    losses = evaluate_lrs(task, pairs, jobs=jobs, progress=log)
    results: list[MethodResult] = []
    for family in families:
        if family in skipped:
            names = _family_methods(family) if family != "lrkit" or _lrkit_rules() else ["lrkit"]
            for name in names:
                results.append(MethodResult(name, [], [], math.inf, math.inf, 0, 0, status=skipped[family]))
            continue
        family_runs = runs[family]
        for name in family_runs[0].lrs:
            lrs = [run.lrs.get(name) for run in family_runs]
            per_seed = [
                losses[(float(lr), int(s))] if lr is not None and math.isfinite(lr) and lr > 0 else math.inf
                for lr, s in zip(lrs, seeds)
            ]
            loss = float(statistics.median(per_seed))
            notes = sorted({n for run in family_runs for n in run.notes})
            results.append(
                MethodResult(
                    method=name,
                    lrs=lrs,
                    losses=per_seed,
                    loss=loss,
                    regret=regret(loss, orc.best_loss),
                    steps=float(np.mean([r.steps for r in family_runs])),
                    seconds=float(np.mean([r.seconds for r in family_runs])),
                    notes=notes,
                )
            )
    return results


# --------------------------------------------------------------------------------------------------------- tables
def _fmt_lr(v: float | None) -> str:
    return "—" if v is None else f"{v:.2e}"


def _fmt_regret(v: float) -> str:
    return "diverged" if not math.isfinite(v) else f"{100 * v:+.1f}%"


def task_table(task: Task, orc: OracleResult, results: list[MethodResult]) -> str:
    """A Markdown table for one task."""
    lines = [
        f"### {task.name} — {task.description}; {task.optimizer_name}, {task.total_steps()} steps",
        "",
        f"Oracle: best peak LR {orc.best_lr:.2e}, val loss {orc.best_loss:.4f} (median of {len(orc.seeds)} seed(s); "
        f"within 3%: {orc.good_range[0]:.2e}..{orc.good_range[1]:.2e}).",
        "",
        "| method | suggested LR (median; per seed) | val loss | regret | finder steps | finder s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.status != "ok":
            lines.append(f"| {r.method} | {r.status} | | | | |")
            continue
        per_seed = ", ".join(_fmt_lr(v) for v in r.lrs)
        loss = f"{r.loss:.4f}" if math.isfinite(r.loss) else "inf"
        lines.append(
            f"| {r.method} | {_fmt_lr(r.lr)} ({per_seed}) | {loss} | {_fmt_regret(r.regret)} "
            f"| {r.steps:.0f} | {r.seconds:.2f} |"
        )
    return "\n".join(lines)


def summary_table(all_results: dict[str, list[MethodResult]]) -> tuple[str, list[dict[str, Any]]]:
    """Per method over tasks: median regret, worst regret, mean finder seconds, wins (lowest regret on a task)."""
    methods: list[str] = []
    for results in all_results.values():
        for r in results:
            if r.method not in methods:
                methods.append(r.method)
    best_per_task = {
        t: min((r.regret for r in rs if r.status == "ok"), default=math.inf) for t, rs in all_results.items()
    }
    rows = []
    for m in methods:
        rs = [(t, r) for t, results in all_results.items() for r in results if r.method == m and r.status == "ok"]
        if not rs:
            status = next(r.status for results in all_results.values() for r in results if r.method == m)
            rows.append({"method": m, "status": status})
            continue
        regrets = [r.regret for _, r in rs]
        rows.append(
            {
                "method": m,
                "tasks": len(rs),
                "median_regret": float(statistics.median(regrets)),
                "worst_regret": max(regrets),
                "mean_seconds": float(np.mean([r.seconds for _, r in rs])),
                "mean_steps": float(np.mean([r.steps for _, r in rs])),
                "wins": sum(1 for t, r in rs if r.regret <= best_per_task[t] + 1e-9),
            }
        )
    lines = [
        "| method | tasks | median regret | worst regret | mean finder s | mean finder steps | wins |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "status" in row:
            lines.append(f"| {row['method']} | {row['status']} | | | | | |")
        else:
            lines.append(
                f"| {row['method']} | {row['tasks']} | {_fmt_regret(row['median_regret'])} "
                f"| {_fmt_regret(row['worst_regret'])} | {row['mean_seconds']:.2f} | {row['mean_steps']:.0f} "
                f"| {row['wins']} |"
            )
    return "\n".join(lines), rows


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(SUITE), help=f"comma-separated, from: {', '.join(TASKS)}")
    parser.add_argument("--methods", default=",".join(FAMILIES), help=f"comma-separated, from: {', '.join(FAMILIES)}")
    parser.add_argument("--quick", action="store_true", help="2 grid points per decade and 1 seed (development only)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="worker processes for training runs (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this JSON file")
    args = parser.parse_args(argv)

    tasks = task_names(parser, args.tasks)
    families = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [n for n in families if n not in FAMILIES]
    if bad:
        parser.error(f"unknown method {bad[0]!r}; valid: {', '.join(FAMILIES)}")
    if not families:
        parser.error(f"--methods: no method named; valid: {', '.join(FAMILIES)}")
    if args.json is not None:  # found now, not after the whole run
        output_file(parser, args.json, "--json")

    torch.set_num_threads(1)
    seeds = (0,) if args.quick else SEEDS
    grid = default_grid(2) if args.quick else default_grid(4)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    all_results: dict[str, list[MethodResult]] = {}
    oracles: dict[str, OracleResult] = {}
    for name in tasks:
        task = TASKS[name]
        oracles[name] = orc = oracle(task, seeds=seeds, grid=grid, jobs=args.jobs, progress=log)
        all_results[name] = score_task(task, families, seeds=seeds, orc=orc, jobs=args.jobs, log=log)
        print(task_table(task, orc, all_results[name]), "\n", flush=True)
    table, rows = summary_table(all_results)
    elapsed = time.perf_counter() - started
    print(f"## Summary over {len(tasks)} tasks ({'QUICK: 1 seed, 2 LRs/decade' if args.quick else '3 seeds'})\n")
    print(table)
    print(f"\nregret = val loss / oracle's best val loss - 1 (median over seeds {', '.join(map(str, seeds))}); "
          f"{elapsed:.0f} s")  # fmt: skip
    if args.json is not None:
        from lrkit._utils import atomic_write_text

        record = {
            "quick": args.quick,
            "seeds": list(seeds),
            "seconds": elapsed,
            "oracle": {n: o.to_dict() for n, o in oracles.items()},
            "tasks": {n: [vars(r) | {"lr": r.lr} for r in rs] for n, rs in all_results.items()},
            "summary": rows,
        }
        atomic_write_text(args.json, json.dumps(_json_safe(record), indent=1))
    return 0


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: one line, status 130; finished runs stay cached
