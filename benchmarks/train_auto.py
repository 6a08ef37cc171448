"""lr0="auto" end to end: ``lrkit.train`` with its own defaults, against a grid of explicit ``lr0`` on the same path.

``benchmarks/auto_lr.py`` scores ``lr0="auto"``'s choice on the finder suite, trained by the suite's loop (5% warmup
then cosine to zero, the task's own optimizer). A user gets something else: ``lrkit.train``'s default schedule
(Ultralytics': ``warmup_epochs=3`` then linear from ``lr0`` to ``lr0 * lrf``, momentum and bias warmups), its
``nbs`` accumulation and weight-decay scaling, ``optimizer="auto"`` and the default :class:`lrkit.Monitor`. This script
measures that path. For each task (a built-in dataset, a built-in model and an optimizer name, exactly as ``lrkit
train data=... model=... optimizer=...`` takes them) it runs ``lrkit.train`` at every LR of the suite's grid (1e-5..10,
4 per decade) and with ``lr0="auto"``, for seeds 0, 1 and 2 (the seed draws the split, the weights and the batches),
everything else at its default. The oracle is the grid LR with the lowest median-over-seeds final validation loss;
``lr0="auto"``'s regret is its median final validation loss over the oracle's, minus one. The extra compute is
``lr0="auto"``'s own count (``AutoLR.extra_fraction``: its range test and trials, over one training run's steps).

``--monitor off`` runs both sides with ``monitor=False``. Runs are cached in ``benchmarks/results/train_auto/``, keyed
by task, monitor setting, LR and seed (delete the folder after changing lrkit). The protocol and the hypotheses were
registered in docs/benchmarks/auto_lr.md before the first run.

    python benchmarks/train_auto.py --jobs 2                 # every task, default monitor (about 15 min on 2 cores)
    python benchmarks/train_auto.py --jobs 2 --monitor off
    python benchmarks/train_auto.py --tasks iris_mlp,wine_linear_adam
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lrkit
from _suite import RESULTS_DIR, capped_jobs, default_grid, regret, regret_row, run_main
from lrkit._utils import atomic_write_text

CACHE_DIR = RESULTS_DIR / "train_auto"
SEEDS = (0, 1, 2)
EPOCHS = 20
AUTO = "auto"


@dataclass(frozen=True)
class TrainTask:
    """One ``lrkit train`` configuration: a built-in dataset (or ``"text"``: :func:`text_file`), a built-in model and
    an optimizer name."""

    name: str
    data: str
    model: str
    optimizer: str = "auto"


TASKS: dict[str, TrainTask] = {t.name: t for t in (
    TrainTask("iris_mlp", "iris", "mlp"),
    TrainTask("wine_mlp", "wine", "mlp"),
    TrainTask("breast_cancer_mlp", "breast_cancer", "mlp"),
    TrainTask("digits_mlp", "digits", "mlp"),
    TrainTask("digits_cnn", "digits", "cnn"),
    TrainTask("classification_mlp", "synthetic-classification", "mlp"),
    TrainTask("regression_mlp", "synthetic-regression", "mlp"),
    TrainTask("text_charlm", "text", "charlm"),
    TrainTask("digits_mlp_sgd", "digits", "mlp", "SGD"),
    TrainTask("breast_cancer_linear_sgd", "breast_cancer", "linear", "SGD"),
    TrainTask("classification_mlp_sgd", "synthetic-classification", "mlp", "SGD"),
    TrainTask("wine_linear_adam", "wine", "linear", "Adam"),
)}  # fmt: skip

_WORDS = ("the", "a", "cat", "dog", "bird", "sees", "finds", "likes", "small", "red", "old", "house", "tree", "river",
          "near", "under", "and", "runs", "sleeps", "quickly")  # fmt: skip


def text_file(directory: Path, n_chars: int = 24_000, seed: int = 0) -> Path:
    """A generated plain-text corpus for the ``charlm`` task (no download): sentences drawn from a fixed word list by a
    seeded generator, the same file on every machine.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     text = text_file(Path(d), n_chars=200).read_text(encoding="utf-8")
    >>> len(text) >= 200, text[0].isupper(), text == text_file(Path(tempfile.mkdtemp()), 200).read_text("utf-8")
    (True, True, True)
    """
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 9))]
        sentence = " ".join(words).capitalize() + rng.choice((".", ".", "!", "?")) + " "
        parts.append(sentence)
        size += len(sentence)
    path = directory / "text_charlm.txt"
    path.write_text("".join(parts), encoding="utf-8")
    return path


def run_key(lr0: float | str) -> str:
    """The cache key of one ``lr0``: ``"auto"`` or the LR's shortest round-trip text.

    >>> run_key(0.001), run_key("auto")
    ('0.001', 'auto')
    """
    return AUTO if lr0 == AUTO else repr(float(lr0))


def train_once(task: TrainTask, lr0: float | str, seed: int, monitor: bool) -> dict[str, Any]:
    """One ``lrkit.train`` call with every default but ``epochs``, ``lr0``, ``optimizer``, ``seed`` and ``monitor``,
    in a temporary run folder; its record: the final and best validation loss (``None`` when not finite), the LR it
    trained at, ``lr0="auto"``'s extra compute, the monitor's events by check and the wall time."""
    with tempfile.TemporaryDirectory(prefix="lrkit-train-auto-") as tmp:
        data: str = str(text_file(Path(tmp))) if task.data == "text" else task.data
        started = time.perf_counter()
        r = lrkit.train(task.model, data=data, epochs=EPOCHS, lr0=lr0, optimizer=task.optimizer, seed=seed,
                        monitor=monitor, project=tmp, name="run", plots=False, verbose=False)  # fmt: skip
        seconds = time.perf_counter() - started

    def finite(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    return {
        "final_val_loss": finite(r.final_val_loss),
        "best_val_loss": finite(r.best_val_loss),
        "lr0": float(r.lr0),
        "optimizer": r.optimizer,
        "extra_fraction": None if r.auto is None else float(r.auto.extra_fraction),
        "events": dict(r.events_by_check),
        "seconds": seconds,
    }


def _worker(args: tuple[str, float | str, int, bool]) -> dict[str, Any]:
    torch.set_num_threads(1)
    name, lr0, seed, monitor = args
    return train_once(TASKS[name], lr0, seed, monitor)


def _cache_path(name: str, monitor: bool) -> Path:
    return CACHE_DIR / f"{name}_monitor-{'on' if monitor else 'off'}.json"


def _load(name: str, monitor: bool) -> dict[str, dict[str, Any]]:
    path = _cache_path(name, monitor)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def run_all(names: Sequence[str], lrs: Sequence[float | str], monitor: bool, jobs: int,
            progress: Callable[[str], None] = print) -> dict[str, dict[str, dict[str, Any]]]:  # fmt: skip
    """Every ``(task, lr0, seed)`` run not yet cached, in ``jobs`` processes; ``{task: {"<lr0>/<seed>": record}}``.
    Each finished run is written to the task's cache file at once (atomically), so an interrupted call goes on from
    there."""
    runs = {n: _load(n, monitor) for n in names}
    todo = [(n, lr, s, monitor) for n in names for lr in lrs for s in SEEDS if f"{run_key(lr)}/{s}" not in runs[n]]
    if todo:
        progress(f"training {len(todo)} runs in {jobs} process(es)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)

    def record(job: tuple[str, float | str, int, bool], rec: dict[str, Any]) -> None:
        name, lr, seed, _ = job
        runs[name][f"{run_key(lr)}/{seed}"] = rec
        atomic_write_text(_cache_path(name, monitor), json.dumps(runs[name], indent=1, sort_keys=True))

    if jobs > 1 and len(todo) > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            for job, rec in zip(todo, pool.map(_worker, todo)):
                record(job, rec)
    else:
        for job in todo:
            record(job, _worker(job))
    return runs


def _median_loss(runs: dict[str, dict[str, Any]], key: str) -> float:
    values = [runs[f"{key}/{s}"]["final_val_loss"] for s in SEEDS]
    return statistics.median(math.inf if v is None else v for v in values)


def score(runs: dict[str, dict[str, Any]], grid: Sequence[float]) -> dict[str, Any]:
    """The oracle (the grid LR of lowest median final val loss) and ``lr0="auto"``'s regret against it.

    >>> rec = lambda v: {"final_val_loss": v, "lr0": 0.01, "extra_fraction": 0.25, "events": {}}
    >>> runs = {f"{k}/{s}": rec(v) for k, v in (("0.1", 2.0), ("0.01", 1.0), ("auto", 1.1)) for s in SEEDS}
    >>> s = score(runs, [0.1, 0.01])
    >>> s["oracle_lr"], s["oracle_loss"], round(s["regret"], 6), s["extra"]
    (0.01, 1.0, 0.1, 0.25)
    """
    losses = [_median_loss(runs, run_key(lr)) for lr in grid]
    best = min(range(len(grid)), key=lambda i: losses[i])
    auto = [runs[f"{AUTO}/{s}"] for s in SEEDS]
    return {
        "oracle_lr": float(grid[best]),
        "oracle_loss": losses[best],
        "auto_lrs": [r["lr0"] for r in auto],
        "auto_loss": _median_loss(runs, AUTO),
        "regret": regret(_median_loss(runs, AUTO), losses[best]),
        "extra": statistics.median(r["extra_fraction"] for r in auto),
        "events": sum(sum(r["events"].values()) for r in auto),
    }


def _distance(lrs: Sequence[float], best: float) -> float:
    return statistics.median(abs(math.log10(lr / best)) for lr in lrs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="all", help=f"comma-separated names ({', '.join(TASKS)}) or all")
    parser.add_argument("--monitor", default="on", choices=("on", "off"), help="the monitor on both sides")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table's values here")
    args = parser.parse_args(argv)
    names = list(TASKS) if args.tasks == "all" else [n.strip() for n in args.tasks.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        problem = f"unknown {unknown[0]!r}" if unknown else "none named"
        parser.error(f"--tasks: {problem}; valid: {', '.join(TASKS)} or all")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    torch.set_num_threads(1)
    grid = default_grid()
    monitor = args.monitor == "on"
    started = time.perf_counter()
    runs = run_all(names, [*grid, AUTO], monitor, capped_jobs(args.jobs))
    print(f"\nlrkit {lrkit.__version__}, torch {torch.__version__}, {EPOCHS} epochs, seeds {list(SEEDS)}, monitor "
          f"{args.monitor}, grid {len(grid)} LRs 1e-5..10; {time.perf_counter() - started:.0f} s\n")
    print("| task | data | model | optimizer | oracle lr0 | lr0=auto (per seed) | distance (decades) | oracle val loss "
          "| lr0=auto val loss | regret | extra compute | monitor events (auto) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    scores: dict[str, dict[str, Any]] = {}
    for name in names:
        task, s = TASKS[name], score(runs[name], grid)
        scores[name] = s
        chosen = ", ".join(f"{v:.3g}" for v in s["auto_lrs"])
        optimizer = runs[name][f"{AUTO}/0"]["optimizer"]
        shown = "diverged" if math.isinf(s["regret"]) else f"{100 * s['regret']:+.2f}%"
        print(f"| {name} | {task.data} | {task.model} | {task.optimizer} ({optimizer}) | {s['oracle_lr']:.3g} | "
              f"{chosen} | {_distance(s['auto_lrs'], s['oracle_lr']):.2f} | {s['oracle_loss']:.4f} | "
              f"{s['auto_loss']:.4f} | {shown} | {100 * s['extra']:.0f}% | {s['events']} |")
    print("\n| pooled | median | worst | within 1% | within 5% |\n|---|---|---|---|---|")
    print(regret_row(f"lr0=auto, {len(names)} tasks", [s["regret"] for s in scores.values()]))
    extras = [s["extra"] for s in scores.values()]
    print(f"\nextra compute: median {100 * statistics.median(extras):.0f}%, most {100 * max(extras):.0f}% (target "
          "<= 30%)")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(scores, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    run_main(main)
