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

``--monitor off`` runs both sides with ``monitor=False``. ``--rescue`` reads both grids for issue 5's question on this
path (measured after the registered runs, deciding nothing): at the monitor-off oracle, the events the default
monitor raised; at 10x and 31.6x its LR, the loss without and with the monitor. Runs are cached in
``benchmarks/results/train_auto/``, keyed by task, monitor setting, LR and seed (delete the folder after changing
lrkit). The protocol and the hypotheses were registered in docs/benchmarks/auto_lr.md before the first run.

Exploratory options (session 31, after the registered runs; deciding nothing): ``--search prefix`` scores
``auto_search="prefix"``; ``--variant cosine|noisy`` changes one thing about the tasks (the suite's schedule; 10% of
the labels flipped); ``--rescue --variant overfit-warn`` and ``--rescue --monitor-options JSON`` give the monitor-on
side another setting, trained at the three LRs the rescue table reads.

    python benchmarks/train_auto.py --jobs 2                 # every task, default monitor (about 12 min on 2 cores)
    python benchmarks/train_auto.py --jobs 2 --monitor off
    python benchmarks/train_auto.py --tasks iris_mlp,wine_linear_adam
    python benchmarks/train_auto.py --jobs 2 --search prefix # the opt-in prefix search (auto_search="prefix")
    python benchmarks/train_auto.py --rescue                 # the monitor at 10x/31.6x the oracle, from both grids
    python benchmarks/train_auto.py --jobs 2 --monitor off --variant noisy --tasks digits_mlp,digits_mlp_sgd,digits_cnn
    python benchmarks/train_auto.py --jobs 2 --rescue --monitor-options '{"val_min_share": 0.5}'

Session 32: ``--tasks fresh-train1`` runs a fresh set of 8 tasks (data drawn by scikit-learn, :func:`generated_npz`),
registered to test ``val_patience=3`` for ``lrkit.train``'s monitor (docs/benchmarks/monitor.md), and ``--rescue``
also prints the geometric-mean regret of the monitor-on side (healthy runs; 10x/31.6x settings):

    python benchmarks/train_auto.py --jobs 2 --tasks fresh-train1 --rescue --monitor-options '{"val_patience": 3}'
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
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lrkit
from _suite import (
    RESULTS_DIR,
    capped_jobs,
    default_grid,
    format_regret,
    geometric_regret,
    positive_int,
    regret,
    regret_row,
    run_main,
)
from lrkit._utils import atomic_write_text

CACHE_DIR = RESULTS_DIR / "train_auto"
SEEDS = (0, 1, 2)
EPOCHS = 20
AUTO = "auto"
PREFIX = "auto-prefix"  # lr0="auto" with auto_search="prefix" (the opt-in search of about 1.5 runs)
SEARCHES = {"guard": AUTO, "prefix": PREFIX}


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
IN_SAMPLE = tuple(TASKS)  # --tasks all: the 12 tasks of session 31's registered test (in sample since)
# -- the first fresh set of lrkit.train tasks (session 32, "fresh-train1"): the test of lrkit.train's monitor default
# -- val_patience, registered in docs/benchmarks/monitor.md before any of its tasks was trained ----------------------
FRESH_TRAIN1: dict[str, TrainTask] = {t.name: t for t in (
    TrainTask("moons_mlp", "gen:moons", "mlp"),
    TrainTask("circles_mlp_sgd", "gen:circles", "mlp", "SGD"),
    TrainTask("diabetes_mlp", "gen:diabetes", "mlp"),
    TrainTask("friedman1_mlp_adam", "gen:friedman1", "mlp", "Adam"),
    TrainTask("blobs_mlp_rmsprop", "gen:blobs", "mlp", "RMSprop"),
    TrainTask("digits_noisy20_mlp", "gen:digits_noisy20", "mlp"),
    TrainTask("breast_cancer_noisy_mlp_sgd", "gen:breast_cancer_noisy10", "mlp", "SGD"),
    TrainTask("wine_noisy_linear_adam", "gen:wine_noisy15", "linear", "Adam"),
)}  # fmt: skip
TASKS.update(FRESH_TRAIN1)
GROUPS: dict[str, tuple[str, ...]] = {"all": IN_SAMPLE, "fresh-train1": tuple(FRESH_TRAIN1)}

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

    >>> run_key(0.001), run_key("auto"), run_key("auto-prefix")
    ('0.001', 'auto', 'auto-prefix')
    """
    return lr0 if lr0 in (AUTO, PREFIX) else repr(float(lr0))


VARIANTS = ("default", "cosine", "noisy", "overfit-warn")
MONITOR_PREFIX = "monitor:"  # + a JSON object of lrkit.Monitor options: the variant --monitor-options makes
_NOISY_SOURCES = {"iris": "load_iris", "wine": "load_wine", "breast_cancer": "load_breast_cancer",
                  "digits": "load_digits"}  # fmt: skip


def noisy_npz(directory: Path, data: str, fraction: float = 0.1, seed: int = 7) -> Path:
    """scikit-learn's copy of a built-in dataset (digits as 1x8x8 images, as lrkit's built-in) with ``fraction`` of
    its labels replaced by another class (a seeded draw), saved as an ``.npz`` for ``lrkit.train(data=...)``.

    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> with tempfile.TemporaryDirectory() as d:
    ...     arrays = np.load(noisy_npz(Path(d), "iris"))
    ...     x, y = arrays["x"], arrays["y"]
    >>> x.shape, int((y != load_iris().target).sum())
    ((150, 4), 15)
    """
    import numpy as np
    import sklearn.datasets

    if data not in _NOISY_SOURCES:
        raise ValueError(f"variant 'noisy' needs data from {sorted(_NOISY_SOURCES)}, not {data!r}")
    bunch = getattr(sklearn.datasets, _NOISY_SOURCES[data])()
    x = bunch.images[:, None].astype(np.float32) if data == "digits" else bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64).copy()
    rng = np.random.default_rng(seed)
    flip = rng.choice(len(y), size=round(fraction * len(y)), replace=False)
    n_classes = int(y.max()) + 1
    y[flip] = (y[flip] + rng.integers(1, n_classes, size=len(flip))) % n_classes
    path = directory / f"{data}_noisy.npz"
    np.savez(path, x=x, y=y)
    return path


_GENERATED = ("moons", "circles", "diabetes", "friedman1", "blobs")
_GENERATED_NOISY = {"digits_noisy20": ("digits", 0.2), "breast_cancer_noisy10": ("breast_cancer", 0.1),
                    "wine_noisy15": ("wine", 0.15)}  # fmt: skip


def generated_npz(directory: Path, data: str, seed: int = 32) -> Path:
    """The data of a fresh-set task, ``data="gen:<name>"``, as an ``.npz`` for ``lrkit.train(data=...)``: drawn by
    scikit-learn with ``seed`` (no download; the same file on every machine) — two-moons, circles, blobs (5 classes,
    10 features, standard deviation 2.5) and a Friedman #1 regression, the diabetes regression, or a built-in
    dataset with a share of its labels flipped (:func:`noisy_npz`). Integer labels train a classification, float
    targets a regression.

    >>> import tempfile
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     moons, diabetes = (np.load(generated_npz(Path(d), f"gen:{n}")) for n in ("moons", "diabetes"))
    ...     shapes = moons["x"].shape, moons["y"].dtype.kind, diabetes["x"].shape, diabetes["y"].dtype.kind
    >>> shapes
    ((1000, 2), 'i', (442, 10), 'f')
    """
    import numpy as np
    import sklearn.datasets as ds

    name = data.removeprefix("gen:")
    if name in _GENERATED_NOISY:
        source, fraction = _GENERATED_NOISY[name]
        return noisy_npz(directory, source, fraction, seed)
    if name == "moons":
        x, y = ds.make_moons(1000, noise=0.3, random_state=seed)
    elif name == "circles":
        x, y = ds.make_circles(1000, noise=0.15, factor=0.5, random_state=seed)
    elif name == "diabetes":
        x, y = ds.load_diabetes(return_X_y=True)
    elif name == "friedman1":
        x, y = ds.make_friedman1(1500, noise=0.5, random_state=seed)
    elif name == "blobs":
        x, y = ds.make_blobs(1200, n_features=10, centers=5, cluster_std=2.5, random_state=seed)
    else:
        valid = ", ".join(f"gen:{n}" for n in (*_GENERATED, *_GENERATED_NOISY))
        raise ValueError(f"data={data!r}; generated data: {valid}")
    y = y.astype(np.float32) if name in ("diabetes", "friedman1") else y.astype(np.int64)
    path = directory / f"{name}.npz"
    np.savez(path, x=x.astype(np.float32), y=y)
    return path


def train_once(task: TrainTask, lr0: float | str, seed: int, monitor: bool, variant: str = "default",
               ) -> dict[str, Any]:  # fmt: skip
    """One ``lrkit.train`` call with every default but ``epochs``, ``lr0``, ``optimizer``, ``seed`` and ``monitor``,
    in a temporary run folder; its record: the final and best validation loss (``None`` when not finite), the LR it
    trained at, ``lr0="auto"``'s extra compute, the monitor's events by check and the wall time.

    ``variant`` (exploratory, session 31) changes one thing: ``"cosine"`` the schedule to the suite's (one warmup
    epoch of 20, 5%, then cosine to zero: ``schedule="cosine lrf=0 warmup_epochs=1"``), ``"noisy"`` the data to
    :func:`noisy_npz`'s (10% of the labels flipped, as many suite tasks have), ``"overfit-warn"`` the monitor's
    ``val_rising`` action from a rollback to a warning (``monitor={"on_overfit": "warn"}``; with ``monitor=True``)."""
    with tempfile.TemporaryDirectory(prefix="lrkit-train-auto-") as tmp:
        data: str = str(text_file(Path(tmp))) if task.data == "text" else task.data
        if data.startswith("gen:"):
            data = str(generated_npz(Path(tmp), data))
        extra: dict[str, Any] = {}
        if variant == "cosine":
            extra["schedule"] = "cosine lrf=0 warmup_epochs=1"
        elif variant == "noisy":
            data = str(noisy_npz(Path(tmp), task.data))
        elif variant == "overfit-warn" or variant.startswith(MONITOR_PREFIX):
            if not monitor:
                raise ValueError(f"variant {variant!r} changes the monitor: it needs monitor=True")
            options = json.loads(variant[len(MONITOR_PREFIX):]) if variant.startswith(MONITOR_PREFIX) else {}
            extra["monitor"] = options or {"on_overfit": "warn"}
        elif variant != "default":
            raise ValueError(f"variant={variant!r}; valid: {', '.join(VARIANTS)}")
        if lr0 == PREFIX:
            lr0, extra["auto_search"] = AUTO, "prefix"
        started = time.perf_counter()
        extra.setdefault("monitor", monitor)
        r = lrkit.train(task.model, data=data, epochs=EPOCHS, lr0=lr0, optimizer=task.optimizer, seed=seed,
                        project=tmp, name="run", plots=False, verbose=False, **extra)  # fmt: skip
        seconds = time.perf_counter() - started

    def finite(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    return {
        "final_val_loss": finite(r.final_val_loss),
        "best_val_loss": finite(r.best_val_loss),
        "metric": r.metric_name,
        "final_metric": finite(r.final_metric),
        "lr0": float(r.lr0),
        "optimizer": r.optimizer,
        "extra_fraction": None if r.auto is None else float(r.auto.extra_fraction),
        "events": dict(r.events_by_check),
        "seconds": seconds,
    }


def _worker(args: tuple[str, float | str, int, bool, str]) -> dict[str, Any]:
    torch.set_num_threads(1)
    name, lr0, seed, monitor, variant = args
    with warnings.catch_warnings():  # a grid's far ends make the monitor and the range test warn on most runs:
        warnings.simplefilter("ignore")  # the events are in the record; the table is what the script prints
        return train_once(TASKS[name], lr0, seed, monitor, variant)


def _cache_path(name: str, monitor: bool, variant: str = "default") -> Path:
    suffix = "" if variant == "default" else "_" + "".join(c if c.isalnum() or c in "-." else "_" for c in variant)
    return CACHE_DIR / f"{name}_monitor-{'on' if monitor else 'off'}{suffix}.json"


def _load(name: str, monitor: bool, variant: str = "default") -> dict[str, dict[str, Any]]:
    path = _cache_path(name, monitor, variant)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def run_all(names: Sequence[str], lrs: Sequence[float | str], monitor: bool, jobs: int,
            progress: Callable[[str], None] = print, variant: str = "default",
            ) -> dict[str, dict[str, dict[str, Any]]]:  # fmt: skip
    """Every ``(task, lr0, seed)`` run not yet cached, in ``jobs`` processes; ``{task: {"<lr0>/<seed>": record}}``.
    Each finished run is written to the task's cache file at once (atomically), so an interrupted call goes on from
    there."""
    runs = {n: _load(n, monitor, variant) for n in names}
    todo = [(n, lr, s, monitor, variant) for n in names for lr in lrs for s in SEEDS
            if f"{run_key(lr)}/{s}" not in runs[n]]  # fmt: skip
    if todo:
        progress(f"training {len(todo)} runs in {jobs} process(es)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)

    def record(job: tuple[str, float | str, int, bool, str], rec: dict[str, Any]) -> None:
        name, lr, seed = job[:3]
        runs[name][f"{run_key(lr)}/{seed}"] = rec
        atomic_write_text(_cache_path(name, monitor, variant), json.dumps(runs[name], indent=1, sort_keys=True))

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


#: An oracle's median validation loss below float32's machine epsilon (1.19e-7) is at the float floor: float32
#: cross-entropy underflows when a small validation set is classified with huge margins (wine: exactly 0; separable
#: blobs: 2e-11), and a ratio to it measures rounding, not learning (session 32's blobs read +356680852%).
FLOAT_FLOOR = float(torch.finfo(torch.float32).eps)


def at_floor(oracle_loss: float) -> bool:
    """Whether a regret against ``oracle_loss`` is undefined: the loss is below :data:`FLOAT_FLOOR`.

    >>> at_floor(0.0), at_floor(2e-11), at_floor(1e-6), at_floor(0.05)
    (True, True, False, False)
    """
    return oracle_loss < FLOAT_FLOOR


def _ratio(loss: float, oracle_loss: float) -> float:
    """:func:`_suite.regret`, with an oracle loss at the float floor (:func:`at_floor`) read as ``inf`` (``0`` when
    ``loss`` is at it too)."""
    if at_floor(oracle_loss):
        return 0.0 if at_floor(loss) else math.inf
    return regret(loss, oracle_loss)


def _oracle(runs: dict[str, dict[str, Any]], grid: Sequence[float]) -> tuple[list[float], int]:
    """Each grid LR's median final val loss, and the index of the lowest (the oracle)."""
    losses = [_median_loss(runs, run_key(lr)) for lr in grid]
    return losses, min(range(len(grid)), key=lambda i: losses[i])


def score(runs: dict[str, dict[str, Any]], grid: Sequence[float], auto_key: str = AUTO) -> dict[str, Any]:
    """The oracle (the grid LR of lowest median final val loss) and ``lr0="auto"``'s regret against it.

    >>> rec = lambda v: {"final_val_loss": v, "lr0": 0.01, "extra_fraction": 0.25, "events": {}}
    >>> runs = {f"{k}/{s}": rec(v) for k, v in (("0.1", 2.0), ("0.01", 1.0), ("auto", 1.1)) for s in SEEDS}
    >>> s = score(runs, [0.1, 0.01])
    >>> s["oracle_lr"], s["oracle_loss"], round(s["regret"], 6), s["extra"]
    (0.01, 1.0, 0.1, 0.25)

    A median validation loss at the float floor at the oracle (:func:`at_floor`: float32 cross-entropy underflows
    when a tiny validation set is classified with huge margins) leaves the ratio undefined: the regret is then
    ``inf`` unless ``lr0="auto"`` reads a loss at the floor too, and ``oracle_floor`` says so.

    >>> runs.update({f"0.1/{s}": rec(2e-11) for s in SEEDS})
    >>> s = score(runs, [0.1, 0.01])
    >>> s["oracle_loss"], s["regret"], s["oracle_floor"]
    (2e-11, inf, True)
    """
    losses, best = _oracle(runs, grid)
    auto = [runs[f"{auto_key}/{s}"] for s in SEEDS]
    auto_loss, oracle_loss = _median_loss(runs, auto_key), losses[best]
    return {
        "oracle_lr": float(grid[best]),
        "oracle_loss": oracle_loss,
        "oracle_floor": at_floor(oracle_loss),
        "auto_lrs": [r["lr0"] for r in auto],
        "auto_loss": auto_loss,
        "regret": _ratio(auto_loss, oracle_loss),
        "extra": statistics.median(r["extra_fraction"] for r in auto),
        "events": sum(sum(r["events"].values()) for r in auto),
    }


RESCUE_STEPS = {"10x": 4, "31.6x": 6}  # grid steps above the oracle: the grid is 4 per decade


def rescue(on: dict[str, dict[str, Any]], off: dict[str, dict[str, Any]], grid: Sequence[float]) -> dict[str, Any]:
    """The monitor on ``lrkit.train``'s path, read from the same grid runs (issue 5's benchmark, there): the oracle
    of the monitor-off grid; at it, the events the default monitor raised (healthy runs) and its loss with the
    monitor; 4 and 6 grid steps above it (10x and 31.6x its LR), the loss over the oracle's minus one, without and
    with the monitor (``None`` past the grid's end).

    >>> rec = lambda v, e=0: {"final_val_loss": v, "events": {"loss_spike": e} if e else {}}
    >>> grid = [10 ** (k / 4) for k in range(8)]
    >>> off = {f"{run_key(lr)}/{s}": rec(1.0 if k == 1 else 3.0) for k, lr in enumerate(grid) for s in SEEDS}
    >>> on = {f"{run_key(lr)}/{s}": rec(1.0 if k == 1 else 1.05, e=k > 1) for k, lr in enumerate(grid) for s in SEEDS}
    >>> r = rescue(on, off, grid)
    >>> r["oracle_lr"] == grid[1], r["healthy_events"], r["10x"], r["31.6x"]
    (True, [0, 0, 0], (2.0, 0.050000000000000044), (2.0, 0.050000000000000044))
    """
    losses, best = _oracle(off, grid)
    key = run_key(grid[best])
    out: dict[str, Any] = {
        "oracle_lr": float(grid[best]),
        "oracle_loss": losses[best],
        "healthy_events": [sum(on[f"{key}/{s}"]["events"].values()) for s in SEEDS],
        "healthy_on": _ratio(_median_loss(on, key), losses[best]),
    }
    for label, steps in RESCUE_STEPS.items():
        i = best + steps
        out[label] = None if i >= len(grid) else (
            _ratio(losses[i], losses[best]), _ratio(_median_loss(on, run_key(grid[i])), losses[best]))
    return out


UNDEFINED = "undefined (oracle loss at the float floor)"


def print_rescue(names: Sequence[str], grid: Sequence[float], jobs: int, variant: str = "default") -> None:
    """Train what the two grids lack (monitor on and off), then print :func:`rescue`'s table and its counts. With a
    ``variant`` the monitor-on side trains that variant, at the three LRs the table reads only (the monitor-off grid
    stays the default's: it places the oracle)."""
    off = run_all(names, grid, False, jobs)
    if variant == "default":
        on = run_all(names, grid, True, jobs)
    else:
        on = {}
        for name in names:
            best = _oracle(off[name], grid)[1]
            lrs = [grid[i] for i in (best, *(best + k for k in RESCUE_STEPS.values())) if i < len(grid)]
            on.update(run_all([name], lrs, True, jobs, variant=variant))
    print(f"\nmonitor-on side: variant {variant}")
    print("\n| task | oracle lr0 (monitor off) | oracle val loss | healthy: events per seed (monitor on) | healthy: "
          "monitor on vs oracle | 10x: off | 10x: on | 31.6x: off | 31.6x: on |")
    print("|---|---|---|---|---|---|---|---|---|")
    events = within_off = within_on = settings = 0
    healthy_on: list[float] = []  # the monitor-on regrets with a defined ratio, for the geometric means
    high_on: list[float] = []
    for name in names:
        r = rescue(on[name], off[name], grid)
        events += sum(e > 0 for e in r["healthy_events"])
        if not at_floor(r["oracle_loss"]):
            healthy_on.append(r["healthy_on"])
            high_on += [r[label][1] for label in RESCUE_STEPS if r[label] is not None]
        cells = []
        for label in RESCUE_STEPS:
            if at_floor(r["oracle_loss"]):  # no ratio to a loss at the float floor: left out of the counts
                cells += [UNDEFINED] * 2
                continue
            if r[label] is None:
                cells += ["past the grid", "past the grid"]
                continue
            settings += 1
            within_off += r[label][0] <= 0.10
            within_on += r[label][1] <= 0.10
            cells += [format_regret(v) for v in r[label]]
        healthy = UNDEFINED if at_floor(r["oracle_loss"]) else format_regret(r["healthy_on"])
        print(f"| {name} | {r['oracle_lr']:.3g} | {r['oracle_loss']:.4g} | {', '.join(map(str, r['healthy_events']))} "
              f"| {healthy} | {' | '.join(cells)} |")
    print(f"\nhealthy runs with an event: {events}/{len(names) * len(SEEDS)}; 10x/31.6x settings within 10% of the "
          f"oracle: {within_on}/{settings} with the monitor, {within_off}/{settings} without")
    print(f"geometric-mean regret with the monitor: healthy runs {format_regret(geometric_regret(healthy_on))} over "
          f"{len(healthy_on)} tasks, 10x/31.6x settings {format_regret(geometric_regret(high_on))} over {len(high_on)}")


def accuracy(runs: dict[str, dict[str, Any]], grid: Sequence[float], auto_key: str = AUTO) -> dict[str, Any] | None:
    """For a classification task whose records carry the final accuracy (runs of session 31's later commit on): the
    grid LR of highest median final accuracy and ``lr0="auto"``'s median accuracy; ``None`` otherwise. A run whose
    accuracy is not finite (a diverged run) counts as 0.

    >>> rec = lambda a: {"metric": "accuracy", "final_metric": a}
    >>> runs = {f"{k}/{s}": rec(a) for k, a in (("0.1", 0.9), ("0.01", 0.95), ("auto", 0.93)) for s in SEEDS}
    >>> accuracy(runs, [0.1, 0.01])
    {'oracle_lr': 0.01, 'oracle': 0.95, 'auto': 0.93}
    >>> accuracy({f"{k}/{s}": {"final_val_loss": 1.0} for k in ("0.1", "auto") for s in SEEDS}, [0.1]) is None
    True
    """
    keys = [run_key(lr) for lr in grid] + [auto_key]
    records = [runs[f"{k}/{s}"] for k in keys for s in SEEDS]
    if any(r.get("metric") != "accuracy" for r in records):
        return None

    def median(key: str) -> float:
        return statistics.median(runs[f"{key}/{s}"]["final_metric"] or 0.0 for s in SEEDS)

    medians = [median(k) for k in keys[:-1]]
    best = max(range(len(grid)), key=lambda i: medians[i])
    return {"oracle_lr": float(grid[best]), "oracle": medians[best], "auto": median(auto_key)}


def _distance(lrs: Sequence[float], best: float) -> float:
    return statistics.median(abs(math.log10(lr / best)) for lr in lrs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="all",
                        help=f"comma-separated names ({', '.join(TASKS)}), all (the 12 of session 31) or "
                             "fresh-train1 (session 32's registered set)")
    parser.add_argument("--monitor", default="on", choices=("on", "off"), help="the monitor on both sides")
    parser.add_argument("--jobs", type=positive_int, default=1, help="worker processes (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table's values here")
    parser.add_argument("--variant", default="default", choices=VARIANTS,
                        help="exploratory: the suite's schedule (cosine) or 10%% noisy labels (noisy) instead")
    parser.add_argument("--search", default="guard", choices=SEARCHES,
                        help="lr0='auto''s search: the default guard, or the opt-in prefix search (auto_search=prefix)")
    parser.add_argument("--monitor-options", default=None, metavar="JSON",
                        help="exploratory, with --rescue: lrkit.Monitor options for the monitor-on side, e.g. "
                             "'{\"val_backoff\": 0.5}'")  # fmt: skip
    parser.add_argument("--rescue", action="store_true",
                        help="instead: the monitor's rescue table from both grids (monitor on and off)")
    args = parser.parse_args(argv)
    names = list(GROUPS.get(args.tasks, ())) or [n.strip() for n in args.tasks.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        problem = f"unknown {unknown[0]!r}" if unknown else "none named"
        parser.error(f"--tasks: {problem}; valid: {', '.join(TASKS)}, or a group: {', '.join(GROUPS)}")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    torch.set_num_threads(1)
    grid = default_grid()
    if args.rescue and args.variant in ("cosine", "noisy"):
        parser.error(f"--rescue --variant {args.variant}: the rescue table places the oracle on the default grid, so "
                     "only --variant overfit-warn (a change to the monitor) fits it")
    if args.variant == "overfit-warn" and args.monitor == "off":
        parser.error("--variant overfit-warn changes the monitor: it needs --monitor on")
    variant = args.variant
    if args.monitor_options is not None:
        try:
            options = json.loads(args.monitor_options)
        except json.JSONDecodeError as exc:
            parser.error(f"--monitor-options {args.monitor_options!r} is not JSON: {exc}")
        if not isinstance(options, dict) or not options or not args.rescue or variant != "default":
            parser.error("--monitor-options takes a non-empty JSON object of lrkit.Monitor options, with --rescue "
                         "and no --variant")
        variant = MONITOR_PREFIX + json.dumps(options, sort_keys=True)
    if args.rescue:
        print_rescue(names, grid, capped_jobs(args.jobs), variant)
        return 0
    monitor = args.monitor == "on"
    started = time.perf_counter()
    auto_key = SEARCHES[args.search]
    runs = run_all(names, [*grid, auto_key], monitor, capped_jobs(args.jobs), variant=args.variant)
    print(f"\nlrkit {lrkit.__version__}, torch {torch.__version__}, {EPOCHS} epochs, seeds {list(SEEDS)}, monitor "
          f"{args.monitor}, variant {args.variant}, grid {len(grid)} LRs 1e-5..10; "
          f"{time.perf_counter() - started:.0f} s\n")
    print("| task | data | model | optimizer | oracle lr0 | lr0=auto (per seed) | distance (decades) | oracle val loss "
          "| lr0=auto val loss | regret | extra compute | monitor events (auto) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    scores: dict[str, dict[str, Any]] = {}
    for name in names:
        task, s = TASKS[name], score(runs[name], grid, auto_key)
        scores[name] = s
        chosen = ", ".join(f"{v:.3g}" for v in s["auto_lrs"])
        optimizer = runs[name][f"{auto_key}/0"]["optimizer"]
        shown = f"{100 * s['regret']:+.2f}%"
        if math.isinf(s["regret"]):
            shown = UNDEFINED if s["oracle_floor"] else "diverged"
        print(f"| {name} | {task.data} | {task.model} | {task.optimizer} ({optimizer}) | {s['oracle_lr']:.3g} | "
              f"{chosen} | {_distance(s['auto_lrs'], s['oracle_lr']):.2f} | {s['oracle_loss']:.4f} | "
              f"{s['auto_loss']:.4f} | {shown} | {100 * s['extra']:.0f}% | {s['events']} |")
    print("\n| pooled | median | worst | within 1% | within 5% |\n|---|---|---|---|---|")
    label = "lr0=auto" if args.search == "guard" else "lr0=auto auto_search=prefix"
    print(regret_row(f"{label}, {len(names)} tasks", [s["regret"] for s in scores.values()]))
    defined = [s["regret"] for s in scores.values() if not s["oracle_floor"]]
    if 0 < len(defined) < len(scores):  # the strict row counts an undefined regret as inf; this one leaves it out
        print(regret_row(f"{label}, the {len(defined)} tasks whose oracle loss is above the float floor", defined))
    accuracies = {n: a for n in names if (a := accuracy(runs[n], grid, auto_key)) is not None}
    if accuracies:
        print("\n| task (classification) | best-accuracy lr0 | best median accuracy | lr0=auto median accuracy | gap "
              "(points) |\n|---|---|---|---|---|")
        for name, a in accuracies.items():
            print(f"| {name} | {a['oracle_lr']:.3g} | {a['oracle']:.4f} | {a['auto']:.4f} | "
                  f"{100 * (a['oracle'] - a['auto']):.2f} |")
        gaps = [100 * (a["oracle"] - a["auto"]) for a in accuracies.values()]
        print(f"\naccuracy gap over {len(gaps)} tasks: median {statistics.median(gaps):.2f} points, most "
              f"{max(gaps):.2f}")
    extras = [s["extra"] for s in scores.values()]
    print(f"\nextra compute: median {100 * statistics.median(extras):.0f}%, most {100 * max(extras):.0f}% (target "
          "<= 30%)")
    if args.json is not None:
        strict = {n: {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in s.items()}
                  for n, s in scores.items()}  # fmt: skip
        atomic_write_text(args.json, json.dumps(strict, indent=1, sort_keys=True, allow_nan=False))
    return 0


if __name__ == "__main__":
    run_main(main)
