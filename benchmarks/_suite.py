"""A suite of small, real training tasks with an exhaustive-grid oracle for the best peak learning rate.

Shared by the benchmarks (finder quality, health monitor, ``lr0="auto"``). Every task trains in a few seconds on
one CPU thread from data that ships with scikit-learn or is generated, under ONE fixed schedule: 5% linear warmup,
then cosine to zero, stepped per optimizer step, peaking at ``peak_lr``:

    lr(t) = peak_lr * (t + 1) / W                                   for t < W,   W = max(1, round(0.05 * T))
    lr(t) = peak_lr * 0.5 * (1 + cos(pi * (t - W) / (T - W)))       for W <= t < T

The oracle trains every LR of a log-spaced grid (default 1e-5..10, 4 per decade) for the full budget with 3 seeds
and takes the median validation loss per LR; its best LR is the reference a finder is judged against:

    regret = val_loss(method's LR) / val_loss(oracle's best LR) - 1        (inf if the run diverged)

Every finished run (task, lr, seed) is cached in ``benchmarks/results/oracle_<task>.json`` (atomic writes), keyed
by a hash of the task's configuration and of the training code, so reruns only train what is new.

>>> import torch; torch.set_num_threads(1)
>>> from _suite import TASKS, train_run, regret
>>> out = train_run(TASKS["wine_mlp"], 1e-3, seed=0)
>>> out.diverged, out.steps == TASKS["wine_mlp"].total_steps()
(False, True)
>>> regret(0.105, 0.1) < 0.06
True
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import inspect
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

__all__ = [
    "DIVERGENCE_FACTOR",
    "FRESH",
    "FRESH2",
    "FRESH3",
    "FRESH4",
    "FRESH5",
    "FRESH6",
    "FRESH7",
    "FRESH8",
    "FRESH9",
    "FRESH10",
    "FRESH11",
    "GROUPS",
    "HELD_OUT",
    "RESULTS_DIR",
    "SUITE",
    "TASKS",
    "OracleResult",
    "RunOutcome",
    "Task",
    "TaskData",
    "cached_val_loss",
    "capped_jobs",
    "default_grid",
    "device_arg",
    "device_label",
    "evaluate_lrs",
    "make_loaders",
    "non_negative_int",
    "oracle",
    "output_file",
    "positive_float",
    "positive_int",
    "positive_numbers",
    "regret",
    "run_main",
    "seed_list",
    "synchronize",
    "train_run",
    "warmup_cosine",
]

#: Bump when the meaning of a cached run changes in a way the source hashes below would not catch.
SUITE_VERSION = "1"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: A run counts as diverged when its loss is non-finite or exceeds this multiple of its first step's loss.
DIVERGENCE_FACTOR = 100.0
WARMUP_FRACTION = 0.05
#: Fraction of digits/wine labels replaced by random classes (see ``_noisy_labels``).
LABEL_NOISE = 0.1
#: The task groups, in the order they were added: calibrated on, held out, then a fresh pre-registered held-out set.
GROUPS: tuple[str, ...] = (
    "calibration", "held_out", "fresh", "fresh2", "fresh3", "fresh4", "fresh5", "fresh6", "fresh7", "fresh8", "fresh9",
    "fresh10", "fresh11", "fresh12", "fresh13", "fresh14", "fresh15",
)


# ----------------------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class TaskData:
    """A fixed train/validation split; features standardised with the training split's statistics."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


@dataclass(frozen=True)
class Task:
    """One benchmark task: data, model, optimizer, loss and the full training budget.

    ``build_model(seed)`` returns a freshly initialised model (the global RNG is left untouched);
    ``build_optimizer(params, lr)`` returns the task's optimizer at learning rate ``lr``.
    ``default_lr`` is the optimizer's textbook default (SGD/RMSprop/Adagrad 0.01, Adam/AdamW 1e-3), the "no tuning"
    baseline. ``group`` names the task's role (one of :data:`GROUPS`): ``"calibration"`` (the default rule's constant
    was fit on it), ``"held_out"`` (the first out-of-sample set), ``"fresh"`` (a second out-of-sample set,
    pre-registered before any rule was scored on it), ``"fresh2"`` to ``"fresh10"`` (a third to an eleventh,
    pre-registered the same way). Left
    out, it follows ``held_out``; ``held_out`` is True exactly for the groups other than ``"calibration"``.

    >>> task = TASKS["digits_mlp"]
    >>> task.total_steps() == task.epochs * task.steps_per_epoch()
    True
    """

    name: str
    description: str
    optimizer_name: str
    build_data: Callable[[], TaskData]
    build_model: Callable[[int], nn.Module]
    build_optimizer: Callable[[Iterable[Any], float], torch.optim.Optimizer]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batch_size: int
    epochs: int
    default_lr: float
    #: Held out from calibrating the finder's rule (benchmarks/rule_calibration.py): its numbers are out-of-sample.
    held_out: bool = False
    #: ``"calibration"`` | ``"held_out"`` | ``"fresh"`` ... ``"fresh10"`` (:data:`GROUPS`); ``None``: from ``held_out``.
    #: Not part of the cache key.
    group: str | None = None

    def __post_init__(self) -> None:
        if self.group is None:
            object.__setattr__(self, "group", "held_out" if self.held_out else "calibration")
        if self.group not in GROUPS:
            from lrkit._utils import unknown_name_error

            raise unknown_name_error(f"group of task {self.name!r}:", self.group, GROUPS)
        if self.held_out != (self.group != "calibration"):
            raise ValueError(f"task {self.name!r}: held_out={self.held_out} contradicts group={self.group!r} "
                             f"(held_out must be True exactly for the groups other than 'calibration')")  # fmt: skip

    def data(self) -> TaskData:
        """The task's data (built once per process, then cached)."""
        return _data(self.build_data)

    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch (the train loader drops its last incomplete batch)."""
        return len(self.data().x_train) // self.batch_size

    def total_steps(self) -> int:
        """The full budget in optimizer steps: ``epochs * steps_per_epoch``."""
        return self.epochs * self.steps_per_epoch()


@functools.cache
def _data(build: Callable[[], TaskData]) -> TaskData:
    return build()


def _standardise(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)  # constant pixels (digits' borders) stay 0
    return (x_train - mean) / std, (x_val - mean) / std


def _split(x: np.ndarray, y: np.ndarray, test_size: float, stratify: bool) -> TaskData:
    from sklearn.model_selection import train_test_split

    xt, xv, yt, yv = train_test_split(x, y, test_size=test_size, random_state=0, stratify=y if stratify else None)
    xt, xv = _standardise(xt, xv)
    ydtype = torch.long if stratify else torch.float32
    return TaskData(
        torch.tensor(xt, dtype=torch.float32),
        torch.tensor(yt, dtype=ydtype),
        torch.tensor(xv, dtype=torch.float32),
        torch.tensor(yv, dtype=ydtype),
    )


def _noisy_labels(y: np.ndarray, fraction: float = LABEL_NOISE, seed: int = 7) -> np.ndarray:
    """Replace ``fraction`` of the labels (train and val alike) with uniformly random classes, reproducibly.

    digits and wine are nearly separable: without noise the best val loss is ~0.01 and ``loss / best - 1`` measures
    seed noise rather than LR quality. With noise the floor is ~0.3-0.7 and the loss-vs-LR curve is smooth.
    """
    rng = np.random.default_rng(seed)
    y = y.copy()
    flip = rng.random(len(y)) < fraction
    y[flip] = rng.integers(0, int(y.max()) + 1, int(flip.sum()))
    return y


def _digits_flat() -> TaskData:
    from sklearn.datasets import load_digits

    d = load_digits()
    return _split(d.data, _noisy_labels(d.target), 0.25, stratify=True)


def _digits_images(noise: float = LABEL_NOISE, seed: int = 7, split_seed: int = 0) -> TaskData:
    """digits as 1x8x8 images, ``noise`` of the labels replaced (by ``seed``), split by ``split_seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    y = _noisy_labels(d.target, fraction=noise, seed=seed)
    xt, xv, yt, yv = train_test_split(d.data, y, test_size=0.25, random_state=split_seed, stratify=y)
    mean, std = xt.mean(), xt.std()  # one scale for every pixel keeps the images' spatial structure
    shape = (-1, 1, 8, 8)
    return TaskData(
        torch.tensor((xt - mean) / std, dtype=torch.float32).reshape(shape),
        torch.tensor(yt, dtype=torch.long),
        torch.tensor((xv - mean) / std, dtype=torch.float32).reshape(shape),
        torch.tensor(yv, dtype=torch.long),
    )


def _breast_cancer() -> TaskData:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    data = _split(d.data, d.target, 0.3, stratify=True)
    # BCEWithLogitsLoss wants float targets shaped like the (N, 1) logits
    return TaskData(data.x_train, data.y_train.float().unsqueeze(1), data.x_val, data.y_val.float().unsqueeze(1))


def _wine() -> TaskData:
    from sklearn.datasets import load_wine

    d = load_wine()
    return _split(d.data, _noisy_labels(d.target), 0.4, stratify=True)


def _synthetic_classes() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=3000, n_features=20, n_informative=10, n_redundant=4, n_classes=4,
        n_clusters_per_class=2, flip_y=0.05, class_sep=1.0, random_state=0,
    )  # fmt: skip
    return _split(x, y, 1 / 3, stratify=True)


def _teacher_student() -> TaskData:
    gen = torch.Generator().manual_seed(1234)
    dim, n_train, n_val = 16, 2048, 1024
    teacher = nn.Sequential(nn.Linear(dim, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / math.sqrt(p.shape[-1])))
        x = torch.randn(n_train + n_val, dim, generator=gen)
        y = teacher(x)
        y = (y - y[:n_train].mean()) / y[:n_train].std()
        y = y + 0.3 * torch.randn(y.shape, generator=gen)  # label noise: the val MSE floor is ~0.09
    return TaskData(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def _friedman() -> TaskData:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=2000, noise=1.0, random_state=0)
    data = _split(x, y, 1 / 3, stratify=False)
    mean, std = data.y_train.mean(), data.y_train.std()
    return TaskData(data.x_train, ((data.y_train - mean) / std).unsqueeze(1), data.x_val,
                    ((data.y_val - mean) / std).unsqueeze(1))  # fmt: skip


def _standardised_target(data: TaskData) -> TaskData:
    """Standardise a regression target with the training split's mean/std and shape it ``(N, 1)`` like the output."""
    mean, std = data.y_train.mean(), data.y_train.std()
    return TaskData(data.x_train, ((data.y_train - mean) / std).unsqueeze(1), data.x_val,
                    ((data.y_val - mean) / std).unsqueeze(1))  # fmt: skip


def _moons() -> TaskData:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=2000, noise=0.3, random_state=0)
    return _split(x, y, 1 / 3, stratify=True)


def _diabetes() -> TaskData:
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    return _standardised_target(_split(d.data, d.target, 0.3, stratify=False))


def _circles() -> TaskData:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=2000, noise=0.15, factor=0.5, random_state=0)
    return _split(x, y, 1 / 3, stratify=True)


def _linear_regression() -> TaskData:
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=3000, n_features=30, n_informative=15, noise=30.0, random_state=0)
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _iris() -> TaskData:
    from sklearn.datasets import load_iris

    d = load_iris()
    return _split(d.data, _noisy_labels(d.target), 0.4, stratify=True)


def _regression_20() -> TaskData:
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=2000, n_features=20, n_informative=10, noise=20.0, random_state=1)
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _six_classes() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=3000, n_features=20, n_informative=10, n_redundant=4, n_classes=6,
                               n_clusters_per_class=1, flip_y=0.05, random_state=1)  # fmt: skip
    return _split(x, y, 1 / 3, stratify=True)


def _friedman2() -> TaskData:
    from sklearn.datasets import make_friedman2

    x, y = make_friedman2(n_samples=2000, noise=100.0, random_state=2)
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _blobs() -> TaskData:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=2000, centers=5, n_features=2, cluster_std=2.5, random_state=2)
    return _split(x, y, 1 / 3, stratify=True)


def _sparse_regression() -> TaskData:
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=2000, n_features=50, n_informative=5, noise=10.0, random_state=2)
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _hastie() -> TaskData:
    from sklearn.datasets import make_hastie_10_2

    x, y = make_hastie_10_2(n_samples=4000, random_state=3)
    data = _split(x, (y > 0).astype(np.int64), 1 / 3, stratify=True)
    return TaskData(data.x_train, data.y_train.float().unsqueeze(1), data.x_val, data.y_val.float().unsqueeze(1))


def _friedman3() -> TaskData:
    from sklearn.datasets import make_friedman3

    x, y = make_friedman3(n_samples=2000, noise=0.1, random_state=3)
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _gaussian_quantiles() -> TaskData:
    from sklearn.datasets import make_gaussian_quantiles

    x, y = make_gaussian_quantiles(n_samples=3000, n_features=4, n_classes=4, random_state=3)
    return _split(x, _noisy_labels(y), 1 / 3, stratify=True)


def _s_curve() -> TaskData:
    from sklearn.datasets import make_s_curve

    x, t = make_s_curve(n_samples=2000, noise=0.1, random_state=3)
    return _standardised_target(_split(x, t, 1 / 3, stratify=False))


def _small_classes() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=240, n_features=12, n_informative=6, n_redundant=2, n_classes=3,
                               n_clusters_per_class=1, flip_y=0.1, random_state=5)  # fmt: skip
    return _split(x, y, 0.5, stratify=True)


def _wine_small_batches() -> TaskData:
    return _wine()


def _breast_cancer_subset() -> TaskData:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    rng = np.random.default_rng(5)
    keep = rng.choice(len(d.target), 150, replace=False)
    data = _split(d.data[keep], _noisy_labels(d.target[keep], seed=5), 0.4, stratify=True)
    return TaskData(data.x_train, data.y_train.float().unsqueeze(1), data.x_val, data.y_val.float().unsqueeze(1))


def _swiss_roll() -> TaskData:
    from sklearn.datasets import make_swiss_roll

    x, t = make_swiss_roll(n_samples=2400, noise=0.5, random_state=5)
    return _standardised_target(_split(x, t, 1 / 3, stratify=False))


def _many_classes() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=4000, n_features=30, n_informative=15, n_redundant=5, n_classes=10,
                               n_clusters_per_class=1, flip_y=0.05, class_sep=1.2, random_state=5)  # fmt: skip
    return _split(x, y, 1 / 3, stratify=True)


def _digits_pairs() -> TaskData:
    """digits, the odd-vs-even parity of the digit (binary), 10% label noise."""
    from sklearn.datasets import load_digits

    d = load_digits()
    data = _split(d.data, _noisy_labels(d.target % 2, seed=5), 0.25, stratify=True)
    return TaskData(data.x_train, data.y_train.float().unsqueeze(1), data.x_val, data.y_val.float().unsqueeze(1))


def _covtype_like() -> TaskData:
    """A 7-class problem with unequal class sizes and 54 features, 10 of them informative (make_classification)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=3500, n_features=54, n_informative=10, n_redundant=6, n_classes=7,
                               n_clusters_per_class=2, weights=[0.3, 0.25, 0.15, 0.1, 0.1, 0.05, 0.05], flip_y=0.03,
                               random_state=6)  # fmt: skip
    return _split(x, y, 1 / 3, stratify=True)


def _friedman1_wide() -> TaskData:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=2400, n_features=30, noise=0.5, random_state=6)
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _digits_images_clean() -> TaskData:
    """digits as 1x8x8 images, 5% label noise."""
    return _digits_images(noise=0.05, seed=6, split_seed=6)


def _wine_regression() -> TaskData:
    """wine's 12 other measurements predicting its alcohol content (column 0): a small regression (106/72)."""
    from sklearn.datasets import load_wine

    d = load_wine()
    return _standardised_target(_split(d.data[:, 1:], d.data[:, 0], 0.4, stratify=False))


def _moons_many() -> TaskData:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=3000, noise=0.35, random_state=6)
    return _split(x, y, 1 / 3, stratify=True)


def _low_rank_regression() -> TaskData:
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=2400, n_features=40, n_informative=20, effective_rank=8, tail_strength=0.3,
                           noise=5.0, random_state=6)  # fmt: skip
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _multilabel() -> TaskData:
    """8 labels per sample, about 2 of them on (make_multilabel_classification): a multi-label problem."""
    from sklearn.datasets import make_multilabel_classification
    from sklearn.model_selection import train_test_split

    x, y = make_multilabel_classification(n_samples=2400, n_features=30, n_classes=8, n_labels=2, random_state=7)
    xt, xv, yt, yv = train_test_split(x, y, test_size=1 / 3, random_state=0)
    xt, xv = _standardise(xt, xv)
    return TaskData(*(torch.tensor(a, dtype=torch.float32) for a in (xt, yt, xv, yv)))


def _heavy_tailed_regression() -> TaskData:
    """A linear-plus-sine target with Student-t (3 degrees of freedom) noise: outliers a Huber loss is meant for."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2400, 20))
    w = rng.normal(size=20) / np.sqrt(20)
    y = x @ w + 0.5 * np.sin(2 * x[:, 0]) + 0.3 * rng.standard_t(3, size=2400)
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _four_classes_40() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=3000, n_features=40, n_informative=15, n_redundant=10, n_classes=4,
                               n_clusters_per_class=3, flip_y=0.05, class_sep=0.8, random_state=7)  # fmt: skip
    return _split(x, y, 1 / 3, stratify=True)


def _sine_frequencies() -> TaskData:
    """Sequences of 32 noisy samples of a sine at one of 4 frequencies, random phase and amplitude: classify the
    frequency from the sequence (shape ``(n, 32, 1)``)."""
    rng = np.random.default_rng(7)
    n, length = 2400, 32
    y = rng.integers(0, 4, n)
    freq = np.array([0.05, 0.08, 0.12, 0.17])[y]
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, n)
    amp = rng.uniform(0.5, 1.5, n)
    x = amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None, :] + phase[:, None]) + rng.normal(0, 0.6, (n, length))
    cut = 1600
    return TaskData(torch.tensor(x[:cut, :, None], dtype=torch.float32), torch.tensor(y[:cut], dtype=torch.long),
                    torch.tensor(x[cut:, :, None], dtype=torch.float32), torch.tensor(y[cut:], dtype=torch.long))


def _bag_of_words() -> TaskData:
    """Documents of 24 token ids from a 400-word vocabulary, 5 topics: each token comes from the document's topic
    (a Zipf-like distribution over 60 topic words) with probability 0.35, else from the whole vocabulary (Zipf-like)."""
    rng = np.random.default_rng(7)
    n, length, vocab, topics = 3000, 24, 400, 5
    base = 1.0 / np.arange(1, vocab + 1)
    base /= base.sum()
    topic_words = [rng.choice(vocab, 60, replace=False) for _ in range(topics)]
    topic_p = 1.0 / np.arange(1, 61)
    topic_p /= topic_p.sum()
    y = rng.integers(0, topics, n)
    x = np.empty((n, length), dtype=np.int64)
    for i in range(n):
        own = rng.random(length) < 0.35
        x[i] = np.where(own, rng.choice(topic_words[y[i]], length, p=topic_p), rng.choice(vocab, length, p=base))
    cut = 2000
    return TaskData(torch.tensor(x[:cut]), torch.tensor(y[:cut], dtype=torch.long), torch.tensor(x[cut:]),
                    torch.tensor(y[cut:], dtype=torch.long))


def _breast_cancer_dropout_data() -> TaskData:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return _split(d.data, d.target, 0.3, stratify=True)


def _first_sign() -> TaskData:
    """Sequences of 20 Gaussian values; the label is the sign of the first one (flipped for 5%): the model must carry
    one early input through 19 steps (shape ``(n, 20, 1)``)."""
    rng = np.random.default_rng(8)
    n, length = 2400, 20
    x = rng.normal(size=(n, length))
    y = (x[:, 0] > 0).astype(np.int64)
    flip = rng.random(n) < 0.05
    y[flip] = 1 - y[flip]
    cut = 1600
    return TaskData(torch.tensor(x[:cut, :, None], dtype=torch.float32), torch.tensor(y[:cut]),
                    torch.tensor(x[cut:, :, None], dtype=torch.float32), torch.tensor(y[cut:]))


def _running_sum() -> TaskData:
    """Sequences of 16 uniform values in [-1, 1]; the target is their sum plus noise (a regression over time)."""
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, size=(2400, 16))
    y = x.sum(axis=1) + 0.3 * rng.normal(size=2400)
    y = (y - y[:1600].mean()) / y[:1600].std()
    cut = 1600
    xs, ys = x[:, :, None], y[:, None]
    return TaskData(*(torch.tensor(a, dtype=torch.float32) for a in (xs[:cut], ys[:cut], xs[cut:], ys[cut:])))


def _three_classes_20() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=2400, n_features=20, n_informative=8, n_redundant=4, n_classes=3,
                               n_clusters_per_class=2, flip_y=0.05, random_state=8)  # fmt: skip
    return _split(x, y, 1 / 3, stratify=True)


def _parity_bits() -> TaskData:
    """8 random +-1 bits and 4 Gaussian distractors; the label is the parity of the first 4 bits (flipped for 5%)."""
    rng = np.random.default_rng(8)
    n = 3000
    bits = rng.integers(0, 2, size=(n, 8))
    y = bits[:, :4].sum(axis=1) % 2
    flip = rng.random(n) < 0.05
    y[flip] = 1 - y[flip]
    x = np.concatenate([2.0 * bits - 1.0, rng.normal(size=(n, 4))], axis=1)
    cut = 2000
    return TaskData(torch.tensor(x[:cut], dtype=torch.float32), torch.tensor(y[:cut]),
                    torch.tensor(x[cut:], dtype=torch.float32), torch.tensor(y[cut:]))


def _token_order() -> TaskData:
    """Sequences of 10 tokens from 16 that hold tokens 1 and 2 once each at random places (the rest from 3..15); the
    label is whether 1 comes before 2 (flipped for 5%)."""
    rng = np.random.default_rng(8)
    n, length = 3000, 10
    x = rng.integers(3, 16, size=(n, length))
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        a, b = rng.choice(length, 2, replace=False)
        x[i, a], x[i, b] = 1, 2
        y[i] = int(a < b)
    flip = rng.random(n) < 0.05
    y[flip] = 1 - y[flip]
    cut = 2000
    return TaskData(torch.tensor(x[:cut]), torch.tensor(y[:cut]), torch.tensor(x[cut:]), torch.tensor(y[cut:]))


def _bumps() -> TaskData:
    """Signals of 64 noisy samples with nothing, a positive bump or a negative dip (a 7-sample Gaussian shape) at a
    random place: 3 classes (shape ``(n, 1, 64)``)."""
    rng = np.random.default_rng(8)
    n, length = 2400, 64
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1.0, size=(n, length))
    shape = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
    for i in range(n):
        if y[i]:
            at = rng.integers(0, length - 7)
            x[i, at:at + 7] += (1.6 if y[i] == 1 else -1.6) * shape
    cut = 1600
    return TaskData(torch.tensor(x[:cut, None, :], dtype=torch.float32), torch.tensor(y[:cut]),
                    torch.tensor(x[cut:, None, :], dtype=torch.float32), torch.tensor(y[cut:]))


def _delayed_recall() -> TaskData:
    """Sequences of 15 one-hot tokens of 4 kinds; the label is the first token (10% replaced at random): the model
    must carry it through 14 distractors (shape ``(n, 15, 4)``)."""
    rng = np.random.default_rng(9)
    n, length = 2400, 15
    tokens = rng.integers(0, 4, size=(n, length))
    y = tokens[:, 0].copy()
    flip = rng.random(n) < 0.1
    y[flip] = rng.integers(0, 4, int(flip.sum()))
    x = np.eye(4, dtype=np.float32)[tokens]
    cut = 1600
    return TaskData(torch.tensor(x[:cut]), torch.tensor(y[:cut]), torch.tensor(x[cut:]), torch.tensor(y[cut:]))


def _two_classes_16() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=2400, n_features=16, n_informative=6, n_redundant=4, n_classes=2,
                               n_clusters_per_class=3, flip_y=0.05, random_state=9)  # fmt: skip
    return _split(x, y, 1 / 3, stratify=True)


def _xor_bits() -> TaskData:
    """12 random +-1 bits; the label is the XOR of the first two (flipped for 5%)."""
    rng = np.random.default_rng(9)
    n = 3000
    bits = rng.integers(0, 2, size=(n, 12))
    y = bits[:, 0] ^ bits[:, 1]
    flip = rng.random(n) < 0.05
    y[flip] = 1 - y[flip]
    x = 2.0 * bits - 1.0
    cut = 2000
    return TaskData(torch.tensor(x[:cut], dtype=torch.float32), torch.tensor(y[:cut]),
                    torch.tensor(x[cut:], dtype=torch.float32), torch.tensor(y[cut:]))


def _sparse_uncorrelated() -> TaskData:
    from sklearn.datasets import make_sparse_uncorrelated

    x, y = make_sparse_uncorrelated(n_samples=2400, n_features=12, random_state=9)
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _wine_plain() -> TaskData:
    from sklearn.datasets import load_wine

    d = load_wine()
    return _split(d.data, d.target, 0.35, stratify=True)


def _digits_images_fresh10() -> TaskData:
    """digits as 1x8x8 images, 10% label noise drawn with seed 10, split with seed 10."""
    return _digits_images(noise=LABEL_NOISE, seed=10, split_seed=10)


def _moons_fresh10() -> TaskData:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=2400, noise=0.25, random_state=10)
    return _split(x, y, 1 / 3, stratify=True)


def _friedman1_fresh10() -> TaskData:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=2400, n_features=8, noise=0.5, random_state=10)
    return _standardised_target(_split(x, y, 1 / 3, stratify=False))


def _classes_fresh10() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=2400, n_features=24, n_informative=10, n_redundant=6, n_classes=5,
                               n_clusters_per_class=2, flip_y=0.05, random_state=10)  # fmt: skip
    return _split(x, y, 1 / 3, stratify=True)


def _seeded(build: Callable[[], nn.Module]) -> Callable[[int], nn.Module]:
    """Wrap a model constructor so that ``build(seed)`` is deterministic and leaves the global RNG alone."""

    def build_with_seed(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build()

    build_with_seed.__wrapped__ = build  # type: ignore[attr-defined]
    return build_with_seed


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _digits_mlp() -> nn.Module:
    return _mlp([64, 128, 128, 10])


def _digits_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
    )  # fmt: skip


def _logreg() -> nn.Module:
    return nn.Linear(30, 1)


def _wine_mlp() -> nn.Module:
    return _mlp([13, 32, 3])


def _synthetic_mlp() -> nn.Module:
    return _mlp([20, 64, 64, 4])


def _student() -> nn.Module:
    return _mlp([16, 64, 64, 64, 64, 1])


def _digits_linear() -> nn.Module:
    return nn.Linear(64, 10)


def _breast_cancer_mlp() -> nn.Module:
    return _mlp([30, 32, 1])


def _friedman_mlp() -> nn.Module:
    return _mlp([10, 64, 64, 1])


def _moons_mlp() -> nn.Module:
    return _mlp([2, 32, 32, 32, 32, 2])


def _diabetes_mlp() -> nn.Module:
    return _mlp([10, 64, 1])


def _circles_mlp() -> nn.Module:
    return _mlp([2, 256, 2])


def _layernorm_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(30, 128), nn.LayerNorm(128), nn.ReLU(),
        nn.Linear(128, 128), nn.LayerNorm(128), nn.ReLU(),
        nn.Linear(128, 1),
    )  # fmt: skip


def _iris_linear() -> nn.Module:
    return nn.Linear(4, 3)


def _regression_linear() -> nn.Module:
    return nn.Linear(20, 1)


def _six_classes_mlp() -> nn.Module:
    return _mlp([20, 128, 6])


def _wine_linear() -> nn.Module:
    return nn.Linear(13, 3)


def _friedman2_mlp() -> nn.Module:
    return _mlp([4, 64, 64, 1])


def _blobs_mlp() -> nn.Module:
    return _mlp([2, 64, 5])


def _breast_cancer_deep() -> nn.Module:
    return _mlp([30, 64, 64, 1])


def _sparse_mlp() -> nn.Module:
    return _mlp([50, 32, 1])


def _hastie_mlp() -> nn.Module:
    return _mlp([10, 64, 64, 1])


def _friedman3_mlp() -> nn.Module:
    return _mlp([4, 64, 64, 1])


def _iris_mlp() -> nn.Module:
    return _mlp([4, 32, 3])


def _quantiles_mlp() -> nn.Module:
    return _mlp([4, 128, 128, 4])


def _digits_dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10))


def _s_curve_mlp() -> nn.Module:
    return _mlp([3, 64, 64, 64, 1])


def _small_classes_mlp() -> nn.Module:
    return _mlp([12, 64, 3])


def _wine_deep_mlp() -> nn.Module:
    return _mlp([13, 64, 64, 3])


def _bc_subset_linear() -> nn.Module:
    return nn.Linear(30, 1)


def _swiss_roll_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(3, 128), nn.LayerNorm(128), nn.GELU(),
        nn.Linear(128, 128), nn.LayerNorm(128), nn.GELU(),
        nn.Linear(128, 1),
    )  # fmt: skip


def _many_classes_mlp() -> nn.Module:
    return _mlp([30, 256, 128, 10])


def _digits_parity_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 1))


def _covtype_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(54, 128), nn.BatchNorm1d(128), nn.ReLU(),
        nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Linear(64, 7),
    )  # fmt: skip


def _friedman1_wide_mlp() -> nn.Module:
    return _mlp([30, 128, 64, 1])


def _small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 10),
    )  # fmt: skip


def _wine_regression_mlp() -> nn.Module:
    return _mlp([12, 32, 1])


def _moons_silu_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))


def _low_rank_linear() -> nn.Module:
    return nn.Linear(40, 1)


class _ResidualMLP(nn.Module):
    """``Linear(d_in, width)``, then ``blocks`` residual blocks ``x + Linear(ReLU(LayerNorm(x)))``, then a head."""

    def __init__(self, d_in: int, width: int, blocks: int, d_out: int) -> None:
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, width)) for _ in range(blocks)
        )
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


class _GRUClassifier(nn.Module):
    """A one-layer GRU over the sequence; its last hidden state goes to a linear head."""

    def __init__(self, hidden: int = 32, classes: int = 4) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)
        return self.head(h[-1])


class _BagOfEmbeddings(nn.Module):
    """Mean of the tokens' embeddings (``nn.EmbeddingBag``), then a linear layer."""

    def __init__(self, vocab: int = 400, dim: int = 32, classes: int = 5) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(x))


def _multilabel_mlp() -> nn.Module:
    return _mlp([30, 128, 8])


def _huber_mlp() -> nn.Module:
    return _mlp([20, 64, 64, 1])


def _residual_mlp() -> nn.Module:
    return _ResidualMLP(40, 64, 3, 4)


def _gru() -> nn.Module:
    return _GRUClassifier()


def _bag_model() -> nn.Module:
    return _BagOfEmbeddings()


def _breast_cancer_dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(64, 2))


class _LSTMClassifier(nn.Module):
    """A one-layer LSTM over the sequence; its last hidden state goes to a linear head."""

    def __init__(self, hidden: int = 32, classes: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


class _RNNRegressor(nn.Module):
    """A one-layer tanh RNN over the sequence; its last hidden state goes to a linear head."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.rnn = nn.RNN(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)
        return self.head(h[-1])


class _OrderAttention(nn.Module):
    """Token and position embeddings, one transformer encoder layer (4 heads, no dropout), mean pool, linear head."""

    def __init__(self, vocab: int = 16, length: int = 10, dim: int = 32) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(length, dim) * 0.1)
        self.layer = nn.TransformerEncoderLayer(dim, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(self.tok(x) + self.pos).mean(dim=1))


def _lstm() -> nn.Module:
    return _LSTMClassifier()


def _rnn() -> nn.Module:
    return _RNNRegressor()


def _deep_tanh_mlp() -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(20, 64), nn.Tanh()]
    for _ in range(8):
        layers += [nn.Linear(64, 64), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(64, 3))


def _parity_mlp() -> nn.Module:
    return _mlp([12, 64, 64, 2])


def _order_attention() -> nn.Module:
    return _OrderAttention()


def _bump_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 16, 5, padding=2), nn.ReLU(), nn.AdaptiveMaxPool1d(1),
        nn.Flatten(), nn.Linear(16, 3),
    )  # fmt: skip


class _LSTMRecall(nn.Module):
    """A one-layer LSTM over one-hot tokens; its last hidden state goes to a linear head."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


def _lstm_recall() -> nn.Module:
    return _LSTMRecall()


def _deep_sigmoid_mlp() -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(16, 64), nn.Sigmoid()]
    for _ in range(6):
        layers += [nn.Linear(64, 64), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(64, 2))


def _xor_mlp() -> nn.Module:
    return _mlp([12, 32, 2])


def _sparse_uncorrelated_mlp() -> nn.Module:
    return _mlp([12, 64, 1])


def _digits_wide_mlp() -> nn.Module:
    return _mlp([64, 512, 10])


def _wine_bn_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(13, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))


def _sgd_momentum(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _sgd_momentum_wd(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)


def _sgd(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr)


def _sgd_nesterov(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)


def _rmsprop(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr)


def _adagrad(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=lr)


def _adam(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def _adamw(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def _sgd_nesterov_wd(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)


def _adamw_strong_wd(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.05)


def _digits_gelu_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 10))


def _breast_cancer_tanh_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(30, 32), nn.Tanh(), nn.Linear(32, 1))


def _friedman1_mlp8() -> nn.Module:
    return _mlp([8, 64, 64, 1])


def _digits_groupnorm_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )  # fmt: skip


def _moons_mlp64() -> nn.Module:
    return _mlp([2, 64, 64, 2])


def _classes_dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(24, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 5))


def _radam(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.RAdam(params, lr=lr)


def _nadam(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.NAdam(params, lr=lr)


def _adamax(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adamax(params, lr=lr)


def _sgd_momentum_wd_fresh10(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)


# -- the twelfth held-out set (group "fresh11"): six Adagrad tasks, registered before any of them was trained --------
def _wine_fresh11() -> TaskData:
    """sklearn wine, 10% label noise drawn with seed 11, split 60/40 with seed 11."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    d = load_wine()
    y = _noisy_labels(d.target, seed=11)
    xt, xv, yt, yv = train_test_split(d.data, y, test_size=0.4, random_state=11, stratify=y)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.long))


def _digits_images_fresh11() -> TaskData:
    """digits as 1x8x8 images, 10% label noise drawn with seed 11, split with seed 11."""
    return _digits_images(noise=LABEL_NOISE, seed=11, split_seed=11)


def _breast_cancer_fresh11() -> TaskData:
    """sklearn breast_cancer split 70/30 with seed 11; float (N, 1) targets for BCEWithLogitsLoss."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    d = load_breast_cancer()
    xt, xv, yt, yv = train_test_split(d.data, d.target, test_size=0.3, random_state=11, stratify=d.target)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32).unsqueeze(1),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.float32).unsqueeze(1))


def _diabetes_fresh11() -> TaskData:
    """sklearn diabetes regression split 70/30 with seed 11, target standardised on the training split."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    d = load_diabetes()
    xt, xv, yt, yv = train_test_split(d.data, d.target, test_size=0.3, random_state=11)
    xt, xv = _standardise(xt, xv)
    return _standardised_target(TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32),
                                         torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.float32)))


def _click_fields() -> TaskData:
    """Generated click-through data: 8 categorical fields of 30 values each; the click's logit is a sum of per-value
    weights and of pairwise factor products (a factorization-machine teacher, factors of size 4) minus 1; clicks are
    drawn from it (Bernoulli), 4000 train / 2000 val. Float (N, 1) targets for BCEWithLogitsLoss."""
    rng = np.random.default_rng(11)
    n, fields, vocab, k = 6000, 8, 30, 4
    x = np.stack([rng.zipf(1.6, n) % vocab for _ in range(fields)], axis=1).astype(np.int64)
    w = rng.normal(0, 0.5, (fields, vocab))
    v = rng.normal(0, 0.35, (fields, vocab, k))
    lin = w[np.arange(fields), x].sum(axis=1)
    f = v[np.arange(fields), x]  # (n, fields, k)
    pair = 0.5 * ((f.sum(axis=1) ** 2).sum(axis=1) - (f ** 2).sum(axis=(1, 2)))
    logit = lin + pair - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    offsets = (np.arange(fields) * vocab)[None, :]
    x = x + offsets  # one id space: field i's values at i*vocab .. i*vocab+vocab-1
    cut = 4000
    return TaskData(torch.tensor(x[:cut]), torch.tensor(y[:cut]).unsqueeze(1), torch.tensor(x[cut:]),
                    torch.tensor(y[cut:]).unsqueeze(1))


def _blobs_fresh11() -> TaskData:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=2400, centers=6, n_features=10, cluster_std=4.0, random_state=11)
    return _split(x, y, 1 / 3, stratify=True)


def _wine_mlp64() -> nn.Module:
    return _mlp([13, 64, 3])


def _digits_plain_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
    )  # fmt: skip


def _diabetes_mlp32() -> nn.Module:
    return _mlp([10, 32, 32, 1])


class _FieldEmbeddings(nn.Module):
    """One embedding of size 8 per categorical value (all fields in one table), concatenated, then an MLP."""

    def __init__(self, fields: int = 8, vocab: int = 30, dim: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(fields * vocab, dim)
        self.mlp = _mlp([fields * dim, 64, 32, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.emb(x).flatten(1))


def _field_embeddings() -> nn.Module:
    return _FieldEmbeddings()


def _blobs_deep_mlp() -> nn.Module:
    return _mlp([10, 64, 64, 64, 6])


def _adagrad_accumulator(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    """Adagrad started from an accumulator of 0.1 (TensorFlow's and many recommender codebases' default)."""
    return torch.optim.Adagrad(params, lr=lr, initial_accumulator_value=0.1)


def _adagrad_wd(params: Iterable[Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=lr, weight_decay=1e-4)


# -- the thirteenth held-out set (group "fresh12"): the test of lr0="auto"'s 1.5-run prefix search, registered
# -- (docs/benchmarks/auto_lr.md) before any of its tasks was trained, range-tested or given an oracle ----------------
def _digits_noisy_fresh12() -> TaskData:
    """sklearn digits flattened, 20% label noise drawn with seed 12, split 75/25 with seed 12."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    y = _noisy_labels(d.target, fraction=0.2, seed=12)
    xt, xv, yt, yv = train_test_split(d.data, y, test_size=0.25, random_state=12, stratify=y)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.long))


def _wine_noisy_fresh12() -> TaskData:
    """sklearn wine, 10% label noise drawn with seed 12, split 60/40 with seed 12."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    d = load_wine()
    y = _noisy_labels(d.target, seed=12)
    xt, xv, yt, yv = train_test_split(d.data, y, test_size=0.4, random_state=12, stratify=y)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.long))


def _breast_cancer_fresh12() -> TaskData:
    """sklearn breast_cancer split 70/30 with seed 12; float (N, 1) targets for BCEWithLogitsLoss."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    d = load_breast_cancer()
    xt, xv, yt, yv = train_test_split(d.data, d.target, test_size=0.3, random_state=12, stratify=d.target)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32).unsqueeze(1),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.float32).unsqueeze(1))


def _friedman1_fresh12() -> TaskData:
    """make_friedman1, 2000 samples, noise 1.0, seed 12; split 70/30 with seed 12, target standardised."""
    from sklearn.datasets import make_friedman1
    from sklearn.model_selection import train_test_split

    x, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=12)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, random_state=12)
    xt, xv = _standardise(xt, xv)
    return _standardised_target(TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32),
                                         torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.float32)))


def _moons_fresh12() -> TaskData:
    """make_moons, 1500 samples, noise 0.25, seed 12; split 2/3 : 1/3 with seed 12."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split

    x, y = make_moons(n_samples=1500, noise=0.25, random_state=12)
    xt, xv, yt, yv = train_test_split(x, y, test_size=1 / 3, random_state=12, stratify=y)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.long))


def _digits_images_fresh12() -> TaskData:
    """digits as 1x8x8 images, 10% label noise drawn with seed 12, split with seed 12."""
    return _digits_images(noise=LABEL_NOISE, seed=12, split_seed=12)


# -- the fourteenth held-out set (group "fresh13"): the test of the prefix search with the default monitor, registered
# -- (docs/benchmarks/auto_lr.md, session 30) before any of its tasks was trained, range-tested or given an oracle -----
def _iris_noisy_fresh13() -> TaskData:
    """sklearn iris, 10% label noise drawn with seed 13, split 60/40 with seed 13."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    d = load_iris()
    y = _noisy_labels(d.target, seed=13)
    xt, xv, yt, yv = train_test_split(d.data, y, test_size=0.4, random_state=13, stratify=y)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.long))


def _digits_noisy_fresh13() -> TaskData:
    """sklearn digits flattened, 20% label noise drawn with seed 13, split 75/25 with seed 13."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    y = _noisy_labels(d.target, fraction=0.2, seed=13)
    xt, xv, yt, yv = train_test_split(d.data, y, test_size=0.25, random_state=13, stratify=y)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.long))


def _breast_cancer_fresh13() -> TaskData:
    """sklearn breast_cancer split 70/30 with seed 13; float (N, 1) targets for BCEWithLogitsLoss."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    d = load_breast_cancer()
    xt, xv, yt, yv = train_test_split(d.data, d.target, test_size=0.3, random_state=13, stratify=d.target)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32).unsqueeze(1),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.float32).unsqueeze(1))


def _regression_fresh13() -> TaskData:
    """make_regression, 1500 samples, 20 features (8 informative), noise 20, seed 13; split 70/30 with seed 13,
    target standardised."""
    from sklearn.datasets import make_regression
    from sklearn.model_selection import train_test_split

    x, y = make_regression(n_samples=1500, n_features=20, n_informative=8, noise=20.0, random_state=13)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, random_state=13)
    xt, xv = _standardise(xt, xv)
    return _standardised_target(TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32),
                                         torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.float32)))


def _classes4_fresh13() -> TaskData:
    """make_classification, 2000 samples, 20 features (6 informative), 4 classes, class_sep 0.8, no flipped labels,
    seed 13; split 70/30 with seed 13."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(n_samples=2000, n_features=20, n_informative=6, n_classes=4, class_sep=0.8,
                               flip_y=0.0, random_state=13)  # fmt: skip
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, random_state=13, stratify=y)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.long))


def _wine_fresh13() -> TaskData:
    """sklearn wine, clean labels, split 60/40 with seed 13."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    d = load_wine()
    xt, xv, yt, yv = train_test_split(d.data, d.target, test_size=0.4, random_state=13, stratify=d.target)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.long))


def _iris_mlp32x2() -> nn.Module:
    return _mlp([4, 32, 32, 3])


def _digits_mlp128() -> nn.Module:
    return _mlp([64, 128, 10])


def _breast_cancer_mlp32() -> nn.Module:
    return _mlp([30, 32, 1])


def _regression_mlp64x2() -> nn.Module:
    return _mlp([20, 64, 64, 1])


def _classes4_mlp() -> nn.Module:
    return _mlp([20, 64, 4])


def _wine_mlp64x3() -> nn.Module:
    return _mlp([13, 64, 64, 64, 3])


# -- the fifteenth held-out set (group "fresh14"): the test of lr0="auto" with the default monitor, registered
# -- (docs/benchmarks/auto_lr.md, session 30) before any of its tasks was trained, range-tested or given an oracle -----
def _split_classes_fresh14(x: Any, y: Any, test_size: float) -> TaskData:
    """Standardised features and long labels, a stratified split with seed 14."""
    from sklearn.model_selection import train_test_split

    xt, xv, yt, yv = train_test_split(x, y, test_size=test_size, random_state=14, stratify=y)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.long))


def _digits_fresh14() -> TaskData:
    """sklearn digits flattened, clean labels, split 75/25 with seed 14."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _split_classes_fresh14(d.data, d.target, 0.25)


def _breast_cancer_fresh14() -> TaskData:
    """sklearn breast_cancer split 70/30 with seed 14; float (N, 1) targets for BCEWithLogitsLoss."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    d = load_breast_cancer()
    xt, xv, yt, yv = train_test_split(d.data, d.target, test_size=0.3, random_state=14, stratify=d.target)
    xt, xv = _standardise(xt, xv)
    return TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32).unsqueeze(1),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.float32).unsqueeze(1))


def _friedman2_fresh14() -> TaskData:
    """make_friedman2, 1500 samples, noise 50, seed 14; split 70/30 with seed 14, target standardised."""
    from sklearn.datasets import make_friedman2
    from sklearn.model_selection import train_test_split

    x, y = make_friedman2(n_samples=1500, noise=50.0, random_state=14)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, random_state=14)
    xt, xv = _standardise(xt, xv)
    return _standardised_target(TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32),
                                         torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=torch.float32)))


def _wine_noisy_fresh14() -> TaskData:
    """sklearn wine, 10% label noise drawn with seed 14, split 60/40 with seed 14."""
    from sklearn.datasets import load_wine

    d = load_wine()
    return _split_classes_fresh14(d.data, _noisy_labels(d.target, seed=14), 0.4)


def _circles_fresh14() -> TaskData:
    """make_circles, 1500 samples, noise 0.15, factor 0.5, seed 14; split 2/3 : 1/3 with seed 14."""
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=1500, noise=0.15, factor=0.5, random_state=14)
    return _split_classes_fresh14(x, y, 1 / 3)


def _classes3_fresh14() -> TaskData:
    """make_classification, 1500 samples, 12 features (5 informative), 3 classes, seed 14; split 70/30, seed 14."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=1500, n_features=12, n_informative=5, n_classes=3, random_state=14)
    return _split_classes_fresh14(x, y, 0.3)


# -- the sixteenth held-out set (group "fresh15"): the test of val_patience=3 as lrkit.Monitor's own default,
# -- registered (docs/benchmarks/monitor.md, session 33) before any of its tasks was trained or given an oracle ------
def _split_fresh15(x: Any, y: Any, test_size: float, *, classes: bool = True) -> TaskData:
    """Standardised features, a split with seed 15 (stratified for classes: long labels; else a standardised
    ``(N, 1)`` float target)."""
    from sklearn.model_selection import train_test_split

    xt, xv, yt, yv = train_test_split(x, y, test_size=test_size, random_state=15, stratify=y if classes else None)
    xt, xv = _standardise(xt, xv)
    dtype = torch.long if classes else torch.float32
    data = TaskData(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=dtype),
                    torch.tensor(xv, dtype=torch.float32), torch.tensor(yv, dtype=dtype))
    return data if classes else _standardised_target(data)


def _digits_noisy15() -> TaskData:
    """sklearn digits flattened, 15% label noise drawn with seed 15, split 75/25 with seed 15."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _split_fresh15(d.data, _noisy_labels(d.target, fraction=0.15, seed=15), 0.25)


def _breast_cancer_fresh15() -> TaskData:
    """sklearn breast_cancer, clean, split 75/25 with seed 15; float (N, 1) targets for BCEWithLogitsLoss."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    data = _split_fresh15(d.data, d.target, 0.25)
    return TaskData(data.x_train, data.y_train.float().unsqueeze(1), data.x_val, data.y_val.float().unsqueeze(1))


def _wine_noisy_fresh15() -> TaskData:
    """sklearn wine, 10% label noise drawn with seed 15, split 60/40 with seed 15."""
    from sklearn.datasets import load_wine

    d = load_wine()
    return _split_fresh15(d.data, _noisy_labels(d.target, seed=15), 0.4)


def _moons_fresh15() -> TaskData:
    """make_moons, 1200 samples, noise 0.25, seed 15; split 2/3 : 1/3 with seed 15."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=1200, noise=0.25, random_state=15)
    return _split_fresh15(x, y, 1 / 3)


def _diabetes_fresh15() -> TaskData:
    """sklearn diabetes regression, split 70/30 with seed 15, target standardised."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    return _split_fresh15(d.data, d.target, 0.3, classes=False)


def _quantiles_fresh15() -> TaskData:
    """make_gaussian_quantiles, 1500 samples, 6 features, 3 classes, seed 15; split 70/30 with seed 15."""
    from sklearn.datasets import make_gaussian_quantiles

    x, y = make_gaussian_quantiles(n_samples=1500, n_features=6, n_classes=3, random_state=15)
    return _split_fresh15(x, y, 0.3)


def _digits_mlp128() -> nn.Module:
    return _mlp([64, 128, 10])


def _breast_cancer_mlp32() -> nn.Module:
    return _mlp([30, 32, 1])


def _wine_mlp64() -> nn.Module:
    return _mlp([13, 64, 3])


def _moons_mlp64x3() -> nn.Module:
    return _mlp([2, 64, 64, 64, 2])


def _diabetes_mlp64() -> nn.Module:
    return _mlp([10, 64, 1])


def _quantiles_mlp64() -> nn.Module:
    return _mlp([6, 64, 3])


def _digits_mlp512() -> nn.Module:
    return _mlp([64, 512, 10])


def _breast_cancer_mlp64x3() -> nn.Module:
    return _mlp([30, 64, 64, 64, 1])


def _friedman2_mlp128() -> nn.Module:
    return _mlp([4, 128, 1])


def _wine_mlp32() -> nn.Module:
    return _mlp([13, 32, 3])


def _circles_mlp64x2() -> nn.Module:
    return _mlp([2, 64, 64, 2])


def _classes3_mlp() -> nn.Module:
    return _mlp([12, 64, 3])


def _digits_mlp256() -> nn.Module:
    return _mlp([64, 256, 10])


def _wine_mlp32x2() -> nn.Module:
    return _mlp([13, 32, 32, 3])


def _breast_cancer_mlp64x2() -> nn.Module:
    return _mlp([30, 64, 64, 1])


def _friedman_deep_mlp() -> nn.Module:
    return _mlp([10, 64, 64, 64, 1])


def _moons_bn_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 64), nn.BatchNorm1d(64),
                         nn.ReLU(), nn.Linear(64, 2))  # fmt: skip


_TASK_LIST = [
    Task(
        name="digits_mlp",
        description="sklearn digits, 10% label noise (1347/450), MLP 64-128-128-10",
        optimizer_name="SGD momentum 0.9",
        build_data=_digits_flat,
        build_model=_seeded(_digits_mlp),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=15,
        default_lr=0.01,
    ),
    Task(
        name="digits_cnn",
        description="sklearn digits as 1x8x8 images, 10% label noise (1347/450), 3-conv BatchNorm CNN",
        optimizer_name="SGD momentum 0.9, wd 5e-4",
        build_data=_digits_images,
        build_model=_seeded(_digits_cnn),
        build_optimizer=_sgd_momentum_wd,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=12,
        default_lr=0.01,
    ),
    Task(
        name="breast_cancer_logreg",
        description="sklearn breast_cancer (398/171), logistic regression",
        optimizer_name="SGD (plain)",
        build_data=_breast_cancer,
        build_model=_seeded(_logreg),
        build_optimizer=_sgd,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=32,
        epochs=25,
        default_lr=0.01,
    ),
    Task(
        name="wine_mlp",
        description="sklearn wine, 10% label noise (106/72), MLP 13-32-3",
        optimizer_name="Adam",
        build_data=_wine,
        build_model=_seeded(_wine_mlp),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=16,
        epochs=40,
        default_lr=1e-3,
    ),
    Task(
        name="synthetic_cls_mlp",
        description="make_classification, 4 classes, 5% label noise (2000/1000), MLP 20-64-64-4",
        optimizer_name="Adam",
        build_data=_synthetic_classes,
        build_model=_seeded(_synthetic_mlp),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=15,
        default_lr=1e-3,
    ),
    Task(
        name="teacher_student",
        description="teacher-student regression, noisy targets (2048/1024), ReLU MLP 16-64x4-1",
        optimizer_name="AdamW, wd 0.01",
        build_data=_teacher_student,
        build_model=_seeded(_student),
        build_optimizer=_adamw,
        loss_fn=nn.MSELoss(),
        batch_size=64,
        epochs=15,
        default_lr=1e-3,
    ),
    # Held out: added after the default rule's constants were calibrated on the six tasks above, and never used to
    # tune them, so their regrets are out-of-sample.
    Task(
        name="digits_linear",
        description="sklearn digits, 10% label noise (1347/450), linear softmax",
        optimizer_name="Adam",
        build_data=_digits_flat,
        build_model=_seeded(_digits_linear),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=10,
        default_lr=1e-3,
        held_out=True,
    ),
    Task(
        name="breast_cancer_mlp",
        description="sklearn breast_cancer (398/171), MLP 30-32-1",
        optimizer_name="AdamW, wd 0.01",
        build_data=_breast_cancer,
        build_model=_seeded(_breast_cancer_mlp),
        build_optimizer=_adamw,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=32,
        epochs=15,
        default_lr=1e-3,
        held_out=True,
    ),
    Task(
        name="friedman_mlp",
        description="make_friedman1 regression, noise 1.0 (1333/667), MLP 10-64-64-1",
        optimizer_name="SGD momentum 0.9",
        build_data=_friedman,
        build_model=_seeded(_friedman_mlp),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.MSELoss(),
        batch_size=64,
        epochs=15,
        default_lr=0.01,
        held_out=True,
    ),
    # Fresh: a second held-out set, pre-registered (tasks, hypothesis and decision rule written down) before any
    # suggestion rule was scored on it, to test max(robust, valley), which was chosen after seeing the set above.
    Task(
        name="moons_deep_mlp",
        description="make_moons, noise 0.3 (1333/667), deep ReLU MLP 2-32x4-2",
        optimizer_name="SGD nesterov, momentum 0.9",
        build_data=_moons,
        build_model=_seeded(_moons_mlp),
        build_optimizer=_sgd_nesterov,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh",
    ),
    Task(
        name="diabetes_mlp",
        description="sklearn diabetes regression (309/133), MLP 10-64-1",
        optimizer_name="RMSprop",
        build_data=_diabetes,
        build_model=_seeded(_diabetes_mlp),
        build_optimizer=_rmsprop,
        loss_fn=nn.MSELoss(),
        batch_size=16,
        epochs=30,
        default_lr=0.01,
        held_out=True,
        group="fresh",
    ),
    Task(
        name="circles_wide_mlp",
        description="make_circles, noise 0.15, factor 0.5 (1333/667), wide ReLU MLP 2-256-2",
        optimizer_name="Adagrad",
        build_data=_circles,
        build_model=_seeded(_circles_mlp),
        build_optimizer=_adagrad,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=20,
        default_lr=0.01,
        held_out=True,
        group="fresh",
    ),
    Task(
        name="regression_layernorm_mlp",
        description="make_regression, 30 features (15 informative), noise 30 (2000/1000), LayerNorm MLP 30-128-128-1",
        optimizer_name="AdamW, wd 0.01",
        build_data=_linear_regression,
        build_model=_seeded(_layernorm_mlp),
        build_optimizer=_adamw,
        loss_fn=nn.MSELoss(),
        batch_size=64,
        epochs=12,
        default_lr=1e-3,
        held_out=True,
        group="fresh",
    ),
    # Fresh 2: a third held-out set, pre-registered (docs/benchmarks/finder.md, "Second fresh set") before any rule
    # was scored on it, to test the two-regime back-off, which was chosen on the six calibration tasks after the sets
    # above were seen.
    Task(
        name="iris_logreg",
        description="sklearn iris, 10% label noise (90/60), linear softmax",
        optimizer_name="SGD (plain)",
        build_data=_iris,
        build_model=_seeded(_iris_linear),
        build_optimizer=_sgd,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=16,
        epochs=50,
        default_lr=0.01,
        held_out=True,
        group="fresh2",
    ),
    Task(
        name="linreg_momentum",
        description="make_regression, 20 features (10 informative), noise 20 (1333/667), linear",
        optimizer_name="SGD momentum 0.9",
        build_data=_regression_20,
        build_model=_seeded(_regression_linear),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh2",
    ),
    Task(
        name="six_classes_mlp",
        description="make_classification, 6 classes, 5% label noise (2000/1000), MLP 20-128-6",
        optimizer_name="Adam",
        build_data=_six_classes,
        build_model=_seeded(_six_classes_mlp),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=12,
        default_lr=1e-3,
        held_out=True,
        group="fresh2",
    ),
    Task(
        name="digits_logreg_rmsprop",
        description="sklearn digits, 10% label noise (1347/450), linear softmax",
        optimizer_name="RMSprop",
        build_data=_digits_flat,
        build_model=_seeded(_digits_linear),
        build_optimizer=_rmsprop,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh2",
    ),
    # Fresh 3: a fourth held-out set, pre-registered (docs/benchmarks/finder.md, "Third fresh set") before any rule
    # was scored on it, to test the noise-aware back-off, which was chosen after every task above had been seen.
    Task(
        name="wine_logreg_sgd",
        description="sklearn wine, 10% label noise (106/72), linear softmax",
        optimizer_name="SGD momentum 0.9",
        build_data=_wine,
        build_model=_seeded(_wine_linear),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=16,
        epochs=40,
        default_lr=0.01,
        held_out=True,
        group="fresh3",
    ),
    Task(
        name="friedman2_mlp",
        description="make_friedman2 regression, noise 100 (1333/667), MLP 4-64-64-1",
        optimizer_name="Adam",
        build_data=_friedman2,
        build_model=_seeded(_friedman2_mlp),
        build_optimizer=_adam,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=10,
        default_lr=1e-3,
        held_out=True,
        group="fresh3",
    ),
    Task(
        name="blobs_mlp",
        description="make_blobs, 5 overlapping centres, std 2.5 (1333/667), MLP 2-64-5",
        optimizer_name="RMSprop",
        build_data=_blobs,
        build_model=_seeded(_blobs_mlp),
        build_optimizer=_rmsprop,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh3",
    ),
    Task(
        name="breast_cancer_deep_mlp",
        description="sklearn breast_cancer (398/171), MLP 30-64-64-1",
        optimizer_name="SGD nesterov, momentum 0.9",
        build_data=_breast_cancer,
        build_model=_seeded(_breast_cancer_deep),
        build_optimizer=_sgd_nesterov,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=32,
        epochs=20,
        default_lr=0.01,
        held_out=True,
        group="fresh3",
    ),
    Task(
        name="digits_cnn_adamw",
        description="sklearn digits as 1x8x8 images, 10% label noise (1347/450), 3-conv BatchNorm CNN",
        optimizer_name="AdamW, wd 0.01",
        build_data=_digits_images,
        build_model=_seeded(_digits_cnn),
        build_optimizer=_adamw,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=8,
        default_lr=1e-3,
        held_out=True,
        group="fresh3",
    ),
    Task(
        name="sparse_regression_sgd",
        description="make_regression, 50 features (5 informative), noise 10 (1333/667), MLP 50-32-1",
        optimizer_name="SGD (plain)",
        build_data=_sparse_regression,
        build_model=_seeded(_sparse_mlp),
        build_optimizer=_sgd,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=15,
        default_lr=0.01,
        held_out=True,
        group="fresh3",
    ),
    Task(
        name="hastie_mlp",
        description="make_hastie_10_2 binary (2666/1334), MLP 10-64-64-1",
        optimizer_name="SGD momentum 0.9",
        build_data=_hastie,
        build_model=_seeded(_hastie_mlp),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=64,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh4",
    ),
    Task(
        name="friedman3_mlp_adagrad",
        description="make_friedman3 regression, noise 0.1 (1333/667), MLP 4-64-64-1",
        optimizer_name="Adagrad",
        build_data=_friedman3,
        build_model=_seeded(_friedman3_mlp),
        build_optimizer=_adagrad,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=12,
        default_lr=0.01,
        held_out=True,
        group="fresh4",
    ),
    Task(
        name="iris_mlp_adamw",
        description="sklearn iris, 10% label noise (90/60), MLP 4-32-3",
        optimizer_name="AdamW, wd 0.01",
        build_data=_iris,
        build_model=_seeded(_iris_mlp),
        build_optimizer=_adamw,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=8,
        epochs=60,
        default_lr=1e-3,
        held_out=True,
        group="fresh4",
    ),
    Task(
        name="quantiles_mlp",
        description="make_gaussian_quantiles, 4 classes in 4-D, 10% label noise (2000/1000), MLP 4-128-128-4",
        optimizer_name="Adam",
        build_data=_gaussian_quantiles,
        build_model=_seeded(_quantiles_mlp),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=1e-3,
        held_out=True,
        group="fresh4",
    ),
    Task(
        name="digits_dropout_mlp",
        description="sklearn digits, 10% label noise (1347/450), MLP 64-256-10 with dropout 0.3",
        optimizer_name="SGD nesterov, momentum 0.9",
        build_data=_digits_flat,
        build_model=_seeded(_digits_dropout_mlp),
        build_optimizer=_sgd_nesterov,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=12,
        default_lr=0.01,
        held_out=True,
        group="fresh4",
    ),
    Task(
        name="s_curve_mlp",
        description="make_s_curve: its position t from the noisy 3-D point (1333/667), MLP 3-64-64-64-1",
        optimizer_name="RMSprop",
        build_data=_s_curve,
        build_model=_seeded(_s_curve_mlp),
        build_optimizer=_rmsprop,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=15,
        default_lr=0.01,
        held_out=True,
        group="fresh4",
    ),
    Task(
        name="small_classes_mlp",
        description="make_classification, 3 classes, 10% flipped labels (120/120), MLP 12-64-3",
        optimizer_name="Adam",
        build_data=_small_classes,
        build_model=_seeded(_small_classes_mlp),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=8,
        epochs=40,
        default_lr=1e-3,
        held_out=True,
        group="fresh5",
    ),
    Task(
        name="wine_deep_mlp_rmsprop",
        description="sklearn wine, 10% label noise (106/72), MLP 13-64-64-3",
        optimizer_name="RMSprop",
        build_data=_wine_small_batches,
        build_model=_seeded(_wine_deep_mlp),
        build_optimizer=_rmsprop,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=8,
        epochs=30,
        default_lr=0.01,
        held_out=True,
        group="fresh5",
    ),
    Task(
        name="breast_cancer_small_logreg",
        description="sklearn breast_cancer, 150 random rows, 10% label noise (90/60), logistic regression",
        optimizer_name="SGD momentum 0.9",
        build_data=_breast_cancer_subset,
        build_model=_seeded(_bc_subset_linear),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=10,
        epochs=40,
        default_lr=0.01,
        held_out=True,
        group="fresh5",
    ),
    Task(
        name="swiss_roll_layernorm",
        description="make_swiss_roll: its position t from the noisy 3-D point (1600/800), GELU MLP with LayerNorm",
        optimizer_name="AdamW, wd 0.01",
        build_data=_swiss_roll,
        build_model=_seeded(_swiss_roll_mlp),
        build_optimizer=_adamw,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=10,
        default_lr=1e-3,
        held_out=True,
        group="fresh5",
    ),
    Task(
        name="many_classes_mlp",
        description="make_classification, 10 classes, 5% flipped labels (2666/1334), MLP 30-256-128-10",
        optimizer_name="SGD nesterov, momentum 0.9",
        build_data=_many_classes,
        build_model=_seeded(_many_classes_mlp),
        build_optimizer=_sgd_nesterov,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=12,
        default_lr=0.01,
        held_out=True,
        group="fresh5",
    ),
    Task(
        name="digits_parity_tanh",
        description="sklearn digits, odd vs even, 10% label noise (1347/450), tanh MLP 64-128-1",
        optimizer_name="Adagrad",
        build_data=_digits_pairs,
        build_model=_seeded(_digits_parity_mlp),
        build_optimizer=_adagrad,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh5",
    ),
    Task(
        name="covtype_like_bn_mlp",
        description="make_classification, 7 unequal classes, 54 features (2333/1167), MLP with BatchNorm",
        optimizer_name="SGD momentum 0.9",
        build_data=_covtype_like,
        build_model=_seeded(_covtype_mlp),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh6",
    ),
    Task(
        name="friedman1_wide_adam",
        description="make_friedman1 with 30 features (5 used), noise 0.5 (1600/800), MLP 30-128-64-1",
        optimizer_name="Adam",
        build_data=_friedman1_wide,
        build_model=_seeded(_friedman1_wide_mlp),
        build_optimizer=_adam,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=10,
        default_lr=1e-3,
        held_out=True,
        group="fresh6",
    ),
    Task(
        name="digits_small_cnn_rmsprop",
        description="sklearn digits as 1x8x8 images, 5% label noise (1347/450), 2-conv CNN without BatchNorm",
        optimizer_name="RMSprop",
        build_data=_digits_images_clean,
        build_model=_seeded(_small_cnn),
        build_optimizer=_rmsprop,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=8,
        default_lr=0.01,
        held_out=True,
        group="fresh6",
    ),
    Task(
        name="wine_alcohol_regression",
        description="sklearn wine: alcohol from the 12 other measurements (106/72), MLP 12-32-1",
        optimizer_name="SGD nesterov, momentum 0.9",
        build_data=_wine_regression,
        build_model=_seeded(_wine_regression_mlp),
        build_optimizer=_sgd_nesterov,
        loss_fn=nn.MSELoss(),
        batch_size=8,
        epochs=30,
        default_lr=0.01,
        held_out=True,
        group="fresh6",
    ),
    Task(
        name="moons_silu_adamw",
        description="make_moons, noise 0.35 (2000/1000), SiLU MLP 2-64-64-2",
        optimizer_name="AdamW, wd 0.01",
        build_data=_moons_many,
        build_model=_seeded(_moons_silu_mlp),
        build_optimizer=_adamw,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=1e-3,
        held_out=True,
        group="fresh6",
    ),
    Task(
        name="low_rank_linreg_adagrad",
        description="make_regression, 40 features of effective rank 8, noise 5 (1600/800), linear regression",
        optimizer_name="Adagrad",
        build_data=_low_rank_regression,
        build_model=_seeded(_low_rank_linear),
        build_optimizer=_adagrad,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh6",
    ),
    Task(
        name="multilabel_mlp_adam",
        description="make_multilabel_classification, 8 labels (1600/800), MLP 30-128-8, BCE with logits",
        optimizer_name="Adam",
        build_data=_multilabel,
        build_model=_seeded(_multilabel_mlp),
        build_optimizer=_adam,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=32,
        epochs=10,
        default_lr=1e-3,
        held_out=True,
        group="fresh7",
    ),
    Task(
        name="huber_regression_sgd",
        description="linear + sine target with Student-t noise (1600/800), MLP 20-64-64-1, Huber loss",
        optimizer_name="SGD momentum 0.9",
        build_data=_heavy_tailed_regression,
        build_model=_seeded(_huber_mlp),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.SmoothL1Loss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh7",
    ),
    Task(
        name="resmlp_nesterov_wd",
        description="make_classification, 4 classes, 40 features (2000/1000), residual MLP, 3 LayerNorm blocks of 64",
        optimizer_name="SGD nesterov, momentum 0.9, wd 5e-4",
        build_data=_four_classes_40,
        build_model=_seeded(_residual_mlp),
        build_optimizer=_sgd_nesterov_wd,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=12,
        default_lr=0.01,
        held_out=True,
        group="fresh7",
    ),
    Task(
        name="sine_freq_gru_adam",
        description="noisy sines of 4 frequencies, 32 steps (1600/800), GRU(1, 32) + linear head",
        optimizer_name="Adam",
        build_data=_sine_frequencies,
        build_model=_seeded(_gru),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=8,
        default_lr=1e-3,
        held_out=True,
        group="fresh7",
    ),
    Task(
        name="bag_of_words_adagrad",
        description="generated 24-token documents, 400 words, 5 topics (2000/1000), mean EmbeddingBag + linear",
        optimizer_name="Adagrad",
        build_data=_bag_of_words,
        build_model=_seeded(_bag_model),
        build_optimizer=_adagrad,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh7",
    ),
    Task(
        name="breast_cancer_dropout_adamw",
        description="sklearn breast_cancer (398/171), MLP 30-64-64-2 with dropout 0.3, batches of 16",
        optimizer_name="AdamW, wd 0.05",
        build_data=_breast_cancer_dropout_data,
        build_model=_seeded(_breast_cancer_dropout_mlp),
        build_optimizer=_adamw_strong_wd,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=16,
        epochs=15,
        default_lr=1e-3,
        held_out=True,
        group="fresh7",
    ),
    Task(
        name="lstm_first_sign_rmsprop",
        description="sign of the first of 20 Gaussian values, 5% flipped (1600/800), LSTM(1, 32) + linear",
        optimizer_name="RMSprop",
        build_data=_first_sign,
        build_model=_seeded(_lstm),
        build_optimizer=_rmsprop,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=8,
        default_lr=0.01,
        held_out=True,
        group="fresh8",
    ),
    Task(
        name="rnn_running_sum_sgd",
        description="sum of 16 uniform values plus noise (1600/800), tanh RNN(1, 32) + linear",
        optimizer_name="SGD momentum 0.9",
        build_data=_running_sum,
        build_model=_seeded(_rnn),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=8,
        default_lr=0.01,
        held_out=True,
        group="fresh8",
    ),
    Task(
        name="deep_tanh_mlp_sgd",
        description="make_classification, 3 classes, 20 features (1600/800), 10-layer tanh MLP of width 64",
        optimizer_name="SGD",
        build_data=_three_classes_20,
        build_model=_seeded(_deep_tanh_mlp),
        build_optimizer=_sgd,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh8",
    ),
    Task(
        name="parity_bits_adam",
        description="parity of 4 of 8 random bits, 4 distractors, 5% flipped (2000/1000), MLP 12-64-64-2",
        optimizer_name="Adam",
        build_data=_parity_bits,
        build_model=_seeded(_parity_mlp),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=12,
        default_lr=1e-3,
        held_out=True,
        group="fresh8",
    ),
    Task(
        name="token_order_attention_adamw",
        description="is token 1 before token 2 in 10 of 16 tokens (2000/1000), one transformer layer",
        optimizer_name="AdamW, wd 0.01",
        build_data=_token_order,
        build_model=_seeded(_order_attention),
        build_optimizer=_adamw,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=1e-3,
        held_out=True,
        group="fresh8",
    ),
    Task(
        name="bump_conv1d_nesterov",
        description="64-sample noisy signals with a bump, a dip or neither (1600/800), 2-layer 1-D CNN",
        optimizer_name="SGD nesterov, momentum 0.9",
        build_data=_bumps,
        build_model=_seeded(_bump_cnn),
        build_optimizer=_sgd_nesterov,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=8,
        default_lr=0.01,
        held_out=True,
        group="fresh8",
    ),
    Task(
        name="lstm_delayed_recall_adam",
        description="recall the first of 15 one-hot tokens of 4 kinds, 10% noise (1600/800), LSTM(4, 32) + linear",
        optimizer_name="Adam",
        build_data=_delayed_recall,
        build_model=_seeded(_lstm_recall),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=8,
        default_lr=1e-3,
        held_out=True,
        group="fresh9",
    ),
    Task(
        name="deep_sigmoid_mlp_sgd",
        description="make_classification, 2 classes, 16 features (1600/800), 7-layer sigmoid MLP of width 64",
        optimizer_name="SGD momentum 0.9",
        build_data=_two_classes_16,
        build_model=_seeded(_deep_sigmoid_mlp),
        build_optimizer=_sgd_momentum,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh9",
    ),
    Task(
        name="xor_bits_rmsprop",
        description="XOR of the first 2 of 12 random bits, 5% flipped (2000/1000), MLP 12-32-2",
        optimizer_name="RMSprop",
        build_data=_xor_bits,
        build_model=_seeded(_xor_mlp),
        build_optimizer=_rmsprop,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh9",
    ),
    Task(
        name="sparse_uncorrelated_adam",
        description="make_sparse_uncorrelated regression, 12 features (1600/800), MLP 12-64-1",
        optimizer_name="Adam",
        build_data=_sparse_uncorrelated,
        build_model=_seeded(_sparse_uncorrelated_mlp),
        build_optimizer=_adam,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=10,
        default_lr=1e-3,
        held_out=True,
        group="fresh9",
    ),
    Task(
        name="digits_wide_mlp_sgd",
        description="sklearn digits, 10% label noise (1347/450), MLP 64-512-10, batches of 128",
        optimizer_name="SGD",
        build_data=_digits_flat,
        build_model=_seeded(_digits_wide_mlp),
        build_optimizer=_sgd,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=128,
        epochs=30,
        default_lr=0.01,
        held_out=True,
        group="fresh9",
    ),
    Task(
        name="wine_bn_mlp_adam",
        description="sklearn wine (115/63), MLP 13-32-3 with BatchNorm, batches of 16",
        optimizer_name="Adam",
        build_data=_wine_plain,
        build_model=_seeded(_wine_bn_mlp),
        build_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=16,
        epochs=30,
        default_lr=1e-3,
        held_out=True,
        group="fresh9",
    ),
    Task(
        name="digits_gelu_radam",
        description="sklearn digits, 10% label noise (1347/450), MLP 64-128-10 with GELU",
        optimizer_name="RAdam",
        build_data=_digits_flat,
        build_model=_seeded(_digits_gelu_mlp),
        build_optimizer=_radam,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=12,
        default_lr=1e-3,
        held_out=True,
        group="fresh10",
    ),
    Task(
        name="breast_cancer_tanh_nadam",
        description="sklearn breast_cancer (398/171), MLP 30-32-1 with tanh",
        optimizer_name="NAdam",
        build_data=_breast_cancer,
        build_model=_seeded(_breast_cancer_tanh_mlp),
        build_optimizer=_nadam,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=32,
        epochs=15,
        default_lr=2e-3,
        held_out=True,
        group="fresh10",
    ),
    Task(
        name="friedman1_adamax",
        description="make_friedman1 regression, 8 features, noise 0.5 (1600/800), MLP 8-64-64-1",
        optimizer_name="Adamax",
        build_data=_friedman1_fresh10,
        build_model=_seeded(_friedman1_mlp8),
        build_optimizer=_adamax,
        loss_fn=nn.MSELoss(),
        batch_size=32,
        epochs=10,
        default_lr=2e-3,
        held_out=True,
        group="fresh10",
    ),
    Task(
        name="digits_groupnorm_cnn_sgd",
        description="sklearn digits as 1x8x8 images, 10% label noise (1347/450), 2-conv GroupNorm CNN",
        optimizer_name="SGD momentum 0.9, wd 1e-4",
        build_data=_digits_images_fresh10,
        build_model=_seeded(_digits_groupnorm_cnn),
        build_optimizer=_sgd_momentum_wd_fresh10,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=12,
        default_lr=0.01,
        held_out=True,
        group="fresh10",
    ),
    Task(
        name="moons_adagrad",
        description="make_moons, noise 0.25 (1600/800), MLP 2-64-64-2",
        optimizer_name="Adagrad",
        build_data=_moons_fresh10,
        build_model=_seeded(_moons_mlp64),
        build_optimizer=_adagrad,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh10",
    ),
    Task(
        name="classes_dropout_adamw",
        description="make_classification, 5 classes, 24 features, 5% noise (1600/800), MLP 24-128-5, dropout 0.2",
        optimizer_name="AdamW, wd 0.01",
        build_data=_classes_fresh10,
        build_model=_seeded(_classes_dropout_mlp),
        build_optimizer=_adamw,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=64,
        epochs=12,
        default_lr=1e-3,
        held_out=True,
        group="fresh10",
    ),
    Task(
        name="wine_mlp_adagrad",
        description="sklearn wine, 10% label noise (106/72), MLP 13-64-3",
        optimizer_name="Adagrad",
        build_data=_wine_fresh11,
        build_model=_seeded(_wine_mlp64),
        build_optimizer=_adagrad,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=16,
        epochs=40,
        default_lr=0.01,
        held_out=True,
        group="fresh11",
    ),
    Task(
        name="digits_cnn_adagrad",
        description="sklearn digits as 1x8x8 images, 10% label noise (1347/450), 2-conv CNN without normalisation",
        optimizer_name="Adagrad",
        build_data=_digits_images_fresh11,
        build_model=_seeded(_digits_plain_cnn),
        build_optimizer=_adagrad,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=8,
        default_lr=0.01,
        held_out=True,
        group="fresh11",
    ),
    Task(
        name="breast_cancer_logreg_adagrad",
        description="sklearn breast_cancer (398/171), logistic regression",
        optimizer_name="Adagrad",
        build_data=_breast_cancer_fresh11,
        build_model=_seeded(_logreg),
        build_optimizer=_adagrad,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=32,
        epochs=15,
        default_lr=0.01,
        held_out=True,
        group="fresh11",
    ),
    Task(
        name="diabetes_mlp_adagrad",
        description="sklearn diabetes regression (309/133), MLP 10-32-32-1",
        optimizer_name="Adagrad",
        build_data=_diabetes_fresh11,
        build_model=_seeded(_diabetes_mlp32),
        build_optimizer=_adagrad,
        loss_fn=nn.MSELoss(),
        batch_size=16,
        epochs=20,
        default_lr=0.01,
        held_out=True,
        group="fresh11",
    ),
    Task(
        name="click_fields_adagrad",
        description="generated clicks, 8 categorical fields of 30 values (4000/2000), embeddings + MLP 64-64-32-1",
        optimizer_name="Adagrad, initial accumulator 0.1",
        build_data=_click_fields,
        build_model=_seeded(_field_embeddings),
        build_optimizer=_adagrad_accumulator,
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=64,
        epochs=8,
        default_lr=0.01,
        held_out=True,
        group="fresh11",
    ),
    Task(
        name="blobs_deep_adagrad_wd",
        description="make_blobs, 6 centres in 10 dimensions, std 4 (1600/800), MLP 10-64-64-64-6",
        optimizer_name="Adagrad, wd 1e-4",
        build_data=_blobs_fresh11,
        build_model=_seeded(_blobs_deep_mlp),
        build_optimizer=_adagrad_wd,
        loss_fn=nn.CrossEntropyLoss(),
        batch_size=32,
        epochs=10,
        default_lr=0.01,
        held_out=True,
        group="fresh11",
    ),
    Task(name="digits_noisy_mlp_adamw", description="sklearn digits, 20% label noise (1347/450), MLP 64-256-10",
         optimizer_name="AdamW, wd 0.01", build_data=_digits_noisy_fresh12, build_model=_seeded(_digits_mlp256),
         build_optimizer=_adamw, loss_fn=nn.CrossEntropyLoss(), batch_size=32, epochs=15, default_lr=1e-3,
         held_out=True, group="fresh12"),
    Task(name="wine_noisy_mlp_sgd", description="sklearn wine, 10% label noise (106/72), MLP 13-32-32-3",
         optimizer_name="SGD momentum 0.9", build_data=_wine_noisy_fresh12, build_model=_seeded(_wine_mlp32x2),
         build_optimizer=_sgd_momentum, loss_fn=nn.CrossEntropyLoss(), batch_size=16, epochs=40, default_lr=0.01,
         held_out=True, group="fresh12"),
    Task(name="breast_cancer_mlp_rmsprop", description="sklearn breast_cancer (398/171), MLP 30-64-64-1",
         optimizer_name="RMSprop", build_data=_breast_cancer_fresh12, build_model=_seeded(_breast_cancer_mlp64x2),
         build_optimizer=_rmsprop, loss_fn=nn.BCEWithLogitsLoss(), batch_size=32, epochs=20, default_lr=0.01,
         held_out=True, group="fresh12"),
    Task(name="friedman1_deep_sgd", description="make_friedman1, noise 1.0 (1400/600), MLP 10-64-64-64-1",
         optimizer_name="SGD nesterov, momentum 0.9", build_data=_friedman1_fresh12,
         build_model=_seeded(_friedman_deep_mlp), build_optimizer=_sgd_nesterov, loss_fn=nn.MSELoss(),
         batch_size=32, epochs=12, default_lr=0.01, held_out=True, group="fresh12"),
    Task(name="moons_bn_mlp_adam", description="make_moons, noise 0.25 (1000/500), MLP 2-64-64-2 with BatchNorm",
         optimizer_name="Adam", build_data=_moons_fresh12, build_model=_seeded(_moons_bn_mlp), build_optimizer=_adam,
         loss_fn=nn.CrossEntropyLoss(), batch_size=32, epochs=10, default_lr=1e-3, held_out=True, group="fresh12"),
    Task(name="digits_cnn_nadam", description="sklearn digits as 1x8x8 images, 10% label noise (1347/450), "
         "3-conv BatchNorm CNN", optimizer_name="NAdam", build_data=_digits_images_fresh12,
         build_model=_seeded(_digits_cnn), build_optimizer=_nadam, loss_fn=nn.CrossEntropyLoss(), batch_size=64,
         epochs=8, default_lr=2e-3, held_out=True, group="fresh12"),
    Task(name="iris_noisy_mlp_adam", description="sklearn iris, 10% label noise (90/60), MLP 4-32-32-3",
         optimizer_name="Adam", build_data=_iris_noisy_fresh13, build_model=_seeded(_iris_mlp32x2),
         build_optimizer=_adam, loss_fn=nn.CrossEntropyLoss(), batch_size=16, epochs=40, default_lr=1e-3,
         held_out=True, group="fresh13"),
    Task(name="digits_noisy_mlp_nesterov", description="sklearn digits, 20% label noise (1347/450), MLP 64-128-10",
         optimizer_name="SGD nesterov, momentum 0.9", build_data=_digits_noisy_fresh13,
         build_model=_seeded(_digits_mlp128), build_optimizer=_sgd_nesterov, loss_fn=nn.CrossEntropyLoss(),
         batch_size=32, epochs=12, default_lr=0.01, held_out=True, group="fresh13"),
    Task(name="breast_cancer_mlp_adagrad", description="sklearn breast_cancer (398/171), MLP 30-32-1",
         optimizer_name="Adagrad", build_data=_breast_cancer_fresh13, build_model=_seeded(_breast_cancer_mlp32),
         build_optimizer=_adagrad, loss_fn=nn.BCEWithLogitsLoss(), batch_size=32, epochs=20, default_lr=0.01,
         held_out=True, group="fresh13"),
    Task(name="regression_mlp_adamw", description="make_regression, 20 features, noise 20 (1050/450), MLP 20-64-64-1",
         optimizer_name="AdamW, wd 0.01", build_data=_regression_fresh13, build_model=_seeded(_regression_mlp64x2),
         build_optimizer=_adamw, loss_fn=nn.MSELoss(), batch_size=32, epochs=10, default_lr=1e-3, held_out=True,
         group="fresh13"),
    Task(name="classes4_mlp_sgd", description="make_classification, 4 classes, class_sep 0.8 (1400/600), MLP 20-64-4",
         optimizer_name="SGD momentum 0.9", build_data=_classes4_fresh13, build_model=_seeded(_classes4_mlp),
         build_optimizer=_sgd_momentum, loss_fn=nn.CrossEntropyLoss(), batch_size=64, epochs=15, default_lr=0.01,
         held_out=True, group="fresh13"),
    Task(name="wine_deep_mlp_sgd", description="sklearn wine (106/72), MLP 13-64-64-64-3",
         optimizer_name="SGD momentum 0.9", build_data=_wine_fresh13, build_model=_seeded(_wine_mlp64x3),
         build_optimizer=_sgd_momentum, loss_fn=nn.CrossEntropyLoss(), batch_size=16, epochs=40, default_lr=0.01,
         held_out=True, group="fresh13"),
    Task(name="digits_wide_mlp_adam", description="sklearn digits (1347/450), MLP 64-512-10", optimizer_name="Adam",
         build_data=_digits_fresh14, build_model=_seeded(_digits_mlp512), build_optimizer=_adam,
         loss_fn=nn.CrossEntropyLoss(), batch_size=64, epochs=10, default_lr=1e-3, held_out=True, group="fresh14"),
    Task(name="breast_cancer_deep_rmsprop", description="sklearn breast_cancer (398/171), MLP 30-64-64-64-1",
         optimizer_name="RMSprop", build_data=_breast_cancer_fresh14, build_model=_seeded(_breast_cancer_mlp64x3),
         build_optimizer=_rmsprop, loss_fn=nn.BCEWithLogitsLoss(), batch_size=32, epochs=15, default_lr=0.01,
         held_out=True, group="fresh14"),
    Task(name="friedman2_wide_sgd", description="make_friedman2, noise 50 (1050/450), MLP 4-128-1",
         optimizer_name="SGD momentum 0.9", build_data=_friedman2_fresh14, build_model=_seeded(_friedman2_mlp128),
         build_optimizer=_sgd_momentum, loss_fn=nn.MSELoss(), batch_size=32, epochs=10, default_lr=0.01,
         held_out=True, group="fresh14"),
    Task(name="wine_noisy_mlp_adagrad", description="sklearn wine, 10% label noise (106/72), MLP 13-32-3",
         optimizer_name="Adagrad", build_data=_wine_noisy_fresh14, build_model=_seeded(_wine_mlp32),
         build_optimizer=_adagrad, loss_fn=nn.CrossEntropyLoss(), batch_size=16, epochs=40, default_lr=0.01,
         held_out=True, group="fresh14"),
    Task(name="circles_mlp_nadam", description="make_circles, noise 0.15 (1000/500), MLP 2-64-64-2",
         optimizer_name="NAdam", build_data=_circles_fresh14, build_model=_seeded(_circles_mlp64x2),
         build_optimizer=_nadam, loss_fn=nn.CrossEntropyLoss(), batch_size=32, epochs=10, default_lr=2e-3,
         held_out=True, group="fresh14"),
    Task(name="classes3_mlp_adamw", description="make_classification, 3 classes (1050/450), MLP 12-64-3",
         optimizer_name="AdamW, wd 0.05", build_data=_classes3_fresh14, build_model=_seeded(_classes3_mlp),
         build_optimizer=_adamw_strong_wd, loss_fn=nn.CrossEntropyLoss(), batch_size=32, epochs=12, default_lr=1e-3,
         held_out=True, group="fresh14"),
    Task(name="digits_noisy15_mlp_sgd", description="sklearn digits, 15% label noise (1347/450), MLP 64-128-10",
         optimizer_name="SGD momentum 0.9", build_data=_digits_noisy15, build_model=_seeded(_digits_mlp128),
         build_optimizer=_sgd_momentum, loss_fn=nn.CrossEntropyLoss(), batch_size=32, epochs=10, default_lr=0.01,
         held_out=True, group="fresh15"),
    Task(name="breast_cancer_mlp_adam", description="sklearn breast_cancer (426/143), MLP 30-32-1",
         optimizer_name="Adam", build_data=_breast_cancer_fresh15, build_model=_seeded(_breast_cancer_mlp32),
         build_optimizer=_adam, loss_fn=nn.BCEWithLogitsLoss(), batch_size=32, epochs=20, default_lr=1e-3,
         held_out=True, group="fresh15"),
    Task(name="wine_noisy_mlp_rmsprop", description="sklearn wine, 10% label noise (106/72), MLP 13-64-3",
         optimizer_name="RMSprop", build_data=_wine_noisy_fresh15, build_model=_seeded(_wine_mlp64),
         build_optimizer=_rmsprop, loss_fn=nn.CrossEntropyLoss(), batch_size=16, epochs=30, default_lr=0.01,
         held_out=True, group="fresh15"),
    Task(name="moons_deep_adamw", description="make_moons, noise 0.25 (800/400), MLP 2-64-64-64-2",
         optimizer_name="AdamW", build_data=_moons_fresh15, build_model=_seeded(_moons_mlp64x3),
         build_optimizer=_adamw, loss_fn=nn.CrossEntropyLoss(), batch_size=32, epochs=10, default_lr=1e-3,
         held_out=True, group="fresh15"),
    Task(name="diabetes_mlp_sgd", description="sklearn diabetes regression (309/133), MLP 10-64-1",
         optimizer_name="SGD momentum 0.9", build_data=_diabetes_fresh15, build_model=_seeded(_diabetes_mlp64),
         build_optimizer=_sgd_momentum, loss_fn=nn.MSELoss(), batch_size=16, epochs=30, default_lr=0.01,
         held_out=True, group="fresh15"),
    Task(name="quantiles3_mlp_adam",
         description="make_gaussian_quantiles, 6 features, 3 classes (1050/450), MLP 6-64-3",
         optimizer_name="Adam", build_data=_quantiles_fresh15, build_model=_seeded(_quantiles_mlp64),
         build_optimizer=_adam, loss_fn=nn.CrossEntropyLoss(), batch_size=32, epochs=12, default_lr=1e-3,
         held_out=True, group="fresh15"),
]
TASKS: dict[str, Task] = {t.name: t for t in _TASK_LIST}
#: The default task list of every benchmark (the six tasks the default rule was calibrated on).
SUITE: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "calibration")
#: The first held-out set, never used for calibration (`--tasks digits_linear,breast_cancer_mlp,friedman_mlp`).
HELD_OUT: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "held_out")
#: The second, fresh held-out set, pre-registered before any rule was scored on it (the test of max(robust, valley)).
FRESH: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh")
#: The third held-out set, pre-registered before any rule was scored on it (the test of the two-regime back-off).
FRESH2: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh2")
#: The fourth held-out set, pre-registered before any rule was scored on it (the test of the noise-aware back-off).
FRESH3: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh3")
#: The fifth held-out set, written down before any of its tasks was trained or range-tested (see
#: docs/benchmarks/finder.md).
FRESH4: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh4")
#: The sixth held-out set, written down before any of its tasks was trained or range-tested (see
#: docs/benchmarks/finder.md).
FRESH5: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh5")
#: The seventh held-out set, written down before any of its tasks was trained or range-tested (see
#: docs/benchmarks/finder.md).
FRESH6: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh6")
#: The eighth held-out set, written down before any of its tasks was trained or range-tested (see
#: docs/benchmarks/finder.md).
FRESH7: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh7")
#: The ninth held-out set, written down before any of its tasks was trained or range-tested (see
#: docs/benchmarks/finder.md).
FRESH8: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh8")
#: The tenth held-out set, written down before any of its tasks was trained or range-tested (see
#: docs/benchmarks/finder.md).
FRESH9: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh9")
#: The eleventh held-out set, written down before any of its tasks was trained or range-tested (see
#: docs/benchmarks/finder.md).
FRESH10: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh10")
#: The twelfth held-out set: six Adagrad tasks, written down before any of them was trained or range-tested (the test
#: of the Adagrad shift; docs/benchmarks/finder.md).
FRESH11: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh11")
#: The thirteenth held-out set, written down before any of its tasks was trained or range-tested (the test of
#: lr0="auto"'s 1.5-run prefix search; docs/benchmarks/auto_lr.md).
FRESH12: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh12")
#: The fourteenth held-out set, written down before any of its tasks was trained or range-tested (the test of the
#: prefix search trained with the default monitor; docs/benchmarks/auto_lr.md, session 30).
FRESH13: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh13")
#: The fifteenth held-out set, written down before any of its tasks was trained or range-tested (the test of
#: lr0="auto" trained with the default monitor; docs/benchmarks/auto_lr.md, session 30).
FRESH14: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh14")
#: The sixteenth held-out set, written down before any of its tasks was trained or given an oracle (the test of
#: val_patience=3 as lrkit.Monitor's own default; docs/benchmarks/monitor.md, session 33).
FRESH15: tuple[str, ...] = tuple(t.name for t in _TASK_LIST if t.group == "fresh15")


def make_loaders(task: Task, seed: int) -> tuple[DataLoader, DataLoader]:
    """The task's train loader (shuffled by ``seed``, last incomplete batch dropped) and its val loader.

    >>> train, val = make_loaders(TASKS["wine_mlp"], seed=0)
    >>> len(train) == TASKS["wine_mlp"].steps_per_epoch()
    True
    """
    d = task.data()
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(d.x_train, d.y_train), batch_size=task.batch_size, shuffle=True,
                       drop_last=True, generator=gen)  # fmt: skip
    val = DataLoader(TensorDataset(d.x_val, d.y_val), batch_size=1024, shuffle=False)
    return train, val


# -------------------------------------------------------------------------------------------------------- training
def warmup_cosine(total_steps: int, warmup_fraction: float = WARMUP_FRACTION) -> Callable[[int], float]:
    """The suite's fixed schedule as a multiplier of the peak LR: linear warmup, then cosine to zero.

    >>> f = warmup_cosine(100)
    >>> [round(f(t), 3) for t in (0, 4, 5, 100)]
    [0.2, 1.0, 1.0, 0.0]
    """
    warm = max(1, round(warmup_fraction * total_steps))

    def multiplier(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return multiplier


class StepMonitor(Protocol):
    """What ``monitor_factory(model, optimizer, scheduler)`` returns; :func:`train_run` calls it every step.

    ``after_backward(loss)`` runs after ``loss.backward()``; returning ``False`` skips this optimizer step.
    ``after_step()`` runs after ``optimizer.step()`` and ``scheduler.step()``; returning ``True`` stops training.
    An ``events`` attribute (a list), if present, is copied into :attr:`RunOutcome.events` at the end.
    """

    def after_backward(self, loss: torch.Tensor) -> bool | None: ...

    def after_step(self) -> bool | None: ...


@dataclass
class RunOutcome:
    """The result of one :func:`train_run`. ``val_loss`` is ``inf`` when the run diverged or ended non-finite."""

    val_loss: float
    final_train_loss: float
    diverged: bool
    steps: int
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)


@torch.no_grad()
def _evaluate(model: nn.Module, loader: DataLoader, loss_fn: Callable[..., torch.Tensor]) -> float:
    model.eval()
    total, count = 0.0, 0
    for x, y in loader:
        total += float(loss_fn(model(x), y)) * len(x)
        count += len(x)
    model.train()
    value = total / count
    return value if math.isfinite(value) else math.inf


def train_run(
    task: Task,
    peak_lr: float,
    seed: int,
    *,
    total_steps: int | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
    monitor_factory: Callable[[nn.Module, torch.optim.Optimizer, Any], StepMonitor] | None = None,
) -> RunOutcome:
    """Train ``task`` from the seed-``seed`` init for ``total_steps`` (default: the full budget) optimizer steps.

    The LR follows :func:`warmup_cosine` peaking at ``peak_lr``. The run stops as *diverged* when a training loss is
    non-finite or above ``DIVERGENCE_FACTOR`` times the first step's loss; its ``val_loss`` is then ``inf``. With a
    monitor, such a loss is shown to it first, and the run stops only if the optimizer still steps on it (the monitor
    did not skip or roll back that step).
    ``on_step(step, loss, lr)`` is called after every optimizer step. Deterministic for a given seed on CPU.

    >>> out = train_run(TASKS["wine_mlp"], 1e-2, seed=0, total_steps=20)
    >>> out.steps, math.isfinite(out.val_loss)
    (20, True)
    """
    if not (peak_lr > 0 and math.isfinite(peak_lr)):
        raise ValueError(f"peak_lr={peak_lr!r} must be a finite number > 0")
    total = task.total_steps() if total_steps is None else int(total_steps)
    if total < 1:
        raise ValueError(f"total_steps={total_steps!r} must be >= 1")
    train_loader, val_loader = make_loaders(task, seed)
    started = time.perf_counter()
    events: list[dict[str, Any]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = task.build_model(seed)
        model.train()
        optimizer = task.build_optimizer(model.parameters(), peak_lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total))
        monitor = monitor_factory(model, optimizer, scheduler) if monitor_factory is not None else None
        step, first_loss, last_loss, diverged = 0, math.nan, math.nan, False
        while step < total and not diverged:
            for x, y in train_loader:
                optimizer.zero_grad(set_to_none=True)
                loss = task.loss_fn(model(x), y)
                value = loss.item()
                if step == 0:
                    first_loss = value
                last_loss = value
                bad = not math.isfinite(value) or value > DIVERGENCE_FACTOR * max(first_loss, 1e-12)
                if bad and monitor is None:
                    diverged = True
                    events.append({"step": step, "kind": "diverged", "loss": value})
                    break
                loss.backward()
                do_step = True
                if monitor is not None and monitor.after_backward(loss) is False:
                    do_step = False
                if bad and do_step:  # a monitor saw the diverged step and let the optimizer take it
                    diverged = True
                    events.append({"step": step, "kind": "diverged", "loss": value})
                    break
                lr = optimizer.param_groups[0]["lr"]
                if do_step:
                    optimizer.step()
                scheduler.step()
                step += 1
                if on_step is not None:
                    on_step(step, value, lr)
                if monitor is not None and monitor.after_step():
                    events.append({"step": step, "kind": "stopped_by_monitor"})
                    total = step
                if step >= total:
                    break
        if monitor is not None:
            events.extend(list(getattr(monitor, "events", []) or []))
        val_loss = math.inf if diverged else _evaluate(model, val_loader, task.loss_fn)
    return RunOutcome(
        val_loss=val_loss,
        final_train_loss=last_loss if math.isfinite(last_loss) else math.inf,
        diverged=diverged or not math.isfinite(val_loss),
        steps=step,
        seconds=time.perf_counter() - started,
        events=events,
    )


def regret(loss: float, oracle_loss: float) -> float:
    """Relative excess validation loss, ``loss / oracle_loss - 1``; ``inf`` when ``loss`` is not finite.

    >>> regret(0.11, 0.10) == 0.11 / 0.10 - 1
    True
    >>> regret(float("nan"), 0.1)
    inf
    """
    if not math.isfinite(loss):
        return math.inf
    return loss / oracle_loss - 1.0


def geometric_regret(regrets: Sequence[float]) -> float:
    """The geometric mean of ``1 + regret``, minus one (``inf`` when any run diverged; ``nan`` for none): one figure
    for a set of settings in which a halved loss weighs as much as a doubled one.

    >>> round(geometric_regret([1.0, -0.5]), 12), geometric_regret([0.1, math.inf]), math.isnan(geometric_regret([]))
    (0.0, inf, True)
    """
    if not regrets:
        return math.nan
    return math.exp(statistics.fmean(math.log1p(r) for r in regrets)) - 1


def format_regret(value: float, digits: int = 1) -> str:
    """A regret as a signed percentage; "diverged" for ``inf``, "none" for ``nan`` (a mean over no setting).

    >>> format_regret(0.1234), format_regret(-0.5, 2), format_regret(math.inf), format_regret(math.nan)
    ('+12.3%', '-50.00%', 'diverged', 'none')
    """
    if math.isnan(value):
        return "none"
    return f"{value:+.{digits}%}" if math.isfinite(value) else "diverged"


# ---------------------------------------------------------------------------------------------------------- cache
def _source(obj: Any) -> str:
    try:
        return inspect.getsource(getattr(obj, "__wrapped__", obj))
    except (OSError, TypeError):
        return repr(obj)


def regret_row(label: str, values: Sequence[float]) -> str:
    """One pooled Markdown row of regrets: ``| label | median | worst | within 1% | within 5% |`` (``label`` may hold
    cells of its own); a non-finite worst reads ``diverged``.

    >>> regret_row("x", [0.0, 0.03, math.inf])
    '| x | +3.00% | diverged | 1/3 | 2/3 |'
    """
    worst = max(values)
    shown = "diverged" if math.isinf(worst) else f"{100 * worst:+.2f}%"
    n = len(values)
    return (f"| {label} | {100 * statistics.median(values):+.2f}% | {shown} | {sum(v <= 0.01 for v in values)}/{n} "
            f"| {sum(v <= 0.05 for v in values)}/{n} |")


@functools.cache
def task_key(name: str) -> str:
    """A hash of everything that determines a run's result: data, model, optimizer, loss, budget, training code."""
    task = TASKS[name]
    d = task.data()
    model = task.build_model(0)
    opt = task.build_optimizer(model.parameters(), 1.0)
    parts = [
        SUITE_VERSION,
        torch.__version__.split("+")[0],
        task.name,
        str(task.batch_size),
        str(task.epochs),
        str(model),
        type(opt).__name__,
        repr(sorted((k, repr(v)) for k, v in opt.defaults.items())),
        repr(task.loss_fn),
        *(f"{tuple(t.shape)}:{float(t.double().sum()):.10e}" for t in (d.x_train, d.y_train, d.x_val, d.y_val)),
        *(_source(f) for f in (task.build_data, task.build_model, task.build_optimizer)),
        *(_source(f) for f in (train_run, warmup_cosine, _evaluate, make_loaders)),
        repr(float(sum(p.detach().double().sum() for p in model.parameters()))),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _cache_path(name: str, cache_dir: Path | None) -> Path:
    return (cache_dir or RESULTS_DIR) / f"oracle_{name}.json"


def _lr_key(lr: float) -> str:
    return f"{lr:.6e}"


def _load_runs(name: str, cache_dir: Path | None) -> dict[str, dict[str, Any]]:
    path = _cache_path(name, cache_dir)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if record.get("key") != task_key(name):
        return {}
    return record.get("runs", {})


def _save_runs(name: str, runs: dict[str, dict[str, Any]], cache_dir: Path | None) -> None:
    from lrkit._utils import atomic_write_text

    # merge with what another process may have written meanwhile, so concurrent runs do not drop each other's work
    for lr_key, per_seed in _load_runs(name, cache_dir).items():
        for seed, rec in per_seed.items():
            runs.setdefault(lr_key, {}).setdefault(seed, rec)
    record = {"task": name, "key": task_key(name), "runs": runs}
    atomic_write_text(_cache_path(name, cache_dir), json.dumps(record, indent=1, sort_keys=True))


def _outcome_record(out: RunOutcome) -> dict[str, Any]:
    return {
        "val_loss": out.val_loss if math.isfinite(out.val_loss) else None,
        "diverged": out.diverged,
        "steps": out.steps,
        "seconds": round(out.seconds, 4),
    }


def _worker_init() -> None:
    torch.set_num_threads(1)


def _worker_run(name: str, lr: float, seed: int) -> dict[str, Any]:
    return _outcome_record(train_run(TASKS[name], lr, seed))


#: The ``--jobs`` values already warned about by :func:`capped_jobs` (each is said once a process, not once a task).
_JOBS_WARNED: set[int] = set()


def capped_jobs(jobs: int) -> int:
    """``jobs`` worker processes, or ``os.cpu_count()`` when it asks for more, saying so once on stderr.

    Each worker trains on one thread, so processes beyond the CPUs only queue for them (and hold a copy of torch
    each). The results do not depend on the count: every ``(lr, seed)`` run is trained on its own, from its own seed,
    in a worker started fresh (``spawn``), and keyed in the cache by ``lr`` and ``seed`` alone.

    >>> capped_jobs(1)
    1
    """
    cpus = os.cpu_count() or 1
    if jobs <= cpus:
        return jobs
    if jobs not in _JOBS_WARNED:
        _JOBS_WARNED.add(jobs)
        print(f"--jobs {jobs} is more than this machine's {cpus} CPUs (os.cpu_count()): using {cpus} worker "
              "processes (one thread each); the results are the same, only the speed depends on it", file=sys.stderr)
    return cpus


def evaluate_lrs(
    task: Task,
    pairs: Iterable[tuple[float, int]],
    *,
    jobs: int = 1,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[tuple[float, int], float]:
    """Full-budget validation loss for each ``(lr, seed)`` pair, training only those not in the cache.

    ``jobs > 1`` trains missing runs in that many worker processes (each on one thread), at most
    ``os.cpu_count()`` (see :func:`capped_jobs`; the count changes the speed, never a result).
    Returns ``{(lr, seed): val_loss}`` with ``inf`` for diverged runs.
    """
    jobs = capped_jobs(jobs)
    pairs = list(dict.fromkeys((float(lr), int(seed)) for lr, seed in pairs))
    runs = _load_runs(task.name, cache_dir)
    missing = [(lr, s) for lr, s in pairs if str(s) not in runs.get(_lr_key(lr), {})]
    if missing:
        if progress is not None:
            progress(f"{task.name}: training {len(missing)} runs ({jobs} process{'es' if jobs > 1 else ''})")
        last_save = time.perf_counter()

        def record(lr: float, seed: int, rec: dict[str, Any]) -> None:
            nonlocal last_save
            runs.setdefault(_lr_key(lr), {})[str(seed)] = rec
            if time.perf_counter() - last_save > 10.0:
                _save_runs(task.name, runs, cache_dir)
                last_save = time.perf_counter()

        try:
            if jobs > 1:
                import multiprocessing

                ctx = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
                    futures = {pool.submit(_worker_run, task.name, lr, s): (lr, s) for lr, s in missing}
                    for fut, (lr, s) in futures.items():
                        record(lr, s, fut.result())
            else:
                for lr, s in missing:
                    record(lr, s, _outcome_record(train_run(task, lr, s)))
        finally:
            _save_runs(task.name, runs, cache_dir)
    out: dict[tuple[float, int], float] = {}
    for lr, s in pairs:
        value = runs[_lr_key(lr)][str(s)]["val_loss"]
        out[(lr, s)] = math.inf if value is None else float(value)
    return out


def cached_val_loss(task: Task, lr: float, seed: int, *, cache_dir: Path | None = None) -> float:
    """Full-budget validation loss at peak ``lr`` for ``seed`` (``inf`` if diverged), cached on disk."""
    return evaluate_lrs(task, [(lr, seed)], cache_dir=cache_dir)[(float(lr), int(seed))]


# --------------------------------------------------------------------------------------------------------- oracle
def default_grid(per_decade: int = 4, low: float = 1e-5, high: float = 10.0) -> list[float]:
    """Log-spaced peak LRs from ``low`` to ``high`` inclusive, ``per_decade`` points per decade.

    >>> g = default_grid(4)
    >>> len(g), g[0], g[-1]
    (25, 1e-05, 10.0)
    """
    decades = math.log10(high) - math.log10(low)
    n = round(decades * per_decade) + 1
    return [float(f"{v:.6e}") for v in np.logspace(math.log10(low), math.log10(high), n)]


@dataclass
class OracleResult:
    """The exhaustive-grid reference for one task.

    ``losses[i]`` is the median over ``seeds`` of the full-budget val loss at ``grid[i]`` (``inf`` = diverged).
    ``good_range`` is the span of grid LRs whose median loss is within 3% of the best.
    """

    task: str
    grid: list[float]
    seeds: tuple[int, ...]
    losses: list[float]
    per_seed: list[list[float]]
    best_lr: float
    best_loss: float
    good_range: tuple[float, float]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``inf`` written as ``null``)."""

        def fin(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "task": self.task,
            "grid": self.grid,
            "seeds": list(self.seeds),
            "losses": [fin(v) for v in self.losses],
            "per_seed": [[fin(v) for v in row] for row in self.per_seed],
            "best_lr": self.best_lr,
            "best_loss": self.best_loss,
            "good_range": list(self.good_range),
            "seconds": self.seconds,
        }


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))  # inf sorts last, so a single diverged seed out of 3 is tolerated


def oracle(
    task: Task,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    grid: Sequence[float] | None = None,
    jobs: int = 1,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> OracleResult:
    """Train every grid LR (default :func:`default_grid`: 1e-5..10, 4 per decade) for every seed; pick the best.

    The best LR minimises the median-over-seeds validation loss. Runs are cached, so a second call is cheap.
    """
    grid = default_grid() if grid is None else [float(v) for v in grid]
    if len(grid) < 2:
        raise ValueError(f"grid={grid!r} needs at least 2 learning rates")
    started = time.perf_counter()
    results = evaluate_lrs(task, [(lr, s) for lr in grid for s in seeds], jobs=jobs, cache_dir=cache_dir,
                           progress=progress)  # fmt: skip
    per_seed = [[results[(lr, int(s))] for s in seeds] for lr in grid]
    losses = [_median(row) for row in per_seed]
    best = int(np.argmin(losses))
    if not math.isfinite(losses[best]):
        raise RuntimeError(f"every LR in the grid diverged for task {task.name!r}")
    good = [lr for lr, v in zip(grid, losses) if v <= losses[best] * 1.03]
    return OracleResult(
        task=task.name,
        grid=grid,
        seeds=tuple(int(s) for s in seeds),
        losses=losses,
        per_seed=per_seed,
        best_lr=grid[best],
        best_loss=losses[best],
        good_range=(min(good), max(good)),
        seconds=time.perf_counter() - started,
    )


if __name__ == "__main__":  # pragma: no cover - a quick look at the suite: budgets and one run's time per task
    torch.set_num_threads(1)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print("| task | optimizer | batch | epochs | steps | seconds at default LR | val loss |")
    print("|---|---|---|---|---|---|---|")
    for t in TASKS.values():
        o = train_run(t, t.default_lr, seed=0)
        print(f"| {t.name} | {t.optimizer_name} | {t.batch_size} | {t.epochs} | {t.total_steps()} "
              f"| {o.seconds:.2f} | {o.val_loss:.4f} |")  # fmt: skip


def task_names(parser: argparse.ArgumentParser, text: str, flag: str = "--tasks") -> list[str]:
    """The suite task names in a comma-separated ``text`` (a script's ``--tasks``): task names, a group's name from
    :data:`GROUPS` for its tasks (``fresh11``), or ``all`` for every task, in the suite's order, each task once;
    ``parser.error`` naming the first unknown one and the valid names, or saying that none was named.

    >>> task_names(argparse.ArgumentParser(), "fresh2,wine_mlp")
    ['iris_logreg', 'linreg_momentum', 'six_classes_mlp', 'digits_logreg_rmsprop', 'wine_mlp']
    """
    names: list[str] = []
    for n in (n.strip() for n in text.split(",")):
        if not n:
            continue
        if n == "all":
            expanded = list(TASKS)
        elif n in GROUPS:
            expanded = [t.name for t in _TASK_LIST if t.group == n]
        elif n in TASKS:
            expanded = [n]
        else:
            parser.error(f"{flag}: unknown task {n!r}; valid: a task ({', '.join(TASKS)}), a group "
                         f"({', '.join(GROUPS)}) or all")
        names.extend(x for x in expanded if x not in names)
    if not names:  # `--tasks ""` (an empty shell variable) would print an empty table and look like a result
        parser.error(f"{flag}: no task named; give task names, a group ({', '.join(GROUPS)}) or all")
    return names


def run_main(main: Callable[[], Any]) -> NoReturn:
    """Run a suite script's ``main()`` and exit with its status (0 when it returns no int). Ctrl-C ends it with one
    line and status 130 rather than a traceback from inside torch: every training run finished so far is already in
    the cache under ``benchmarks/results/`` (atomic writes), so the same command goes on from there; a record the
    script writes at its end (``--json``, ``monitor_recovery.json``) is not written, so none is ever half-written."""
    try:
        status = main()
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C): the runs finished so far are cached in benchmarks/results/ and the same "
              "command goes on from them; no record was written", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(status if isinstance(status, int) else 0)


def positive_int(text: str) -> int:
    """An argparse ``type=`` for counts that must be at least 1 (``--jobs``, ``--repeats``, ``--steps``): the error
    reads ``argument --jobs: 0 must be an integer >= 1``.

    >>> positive_int("3")
    3
    """
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse ``type=`` for counts that may be 0 (``--pairs 0``: skip the timing).

    >>> non_negative_int("0")
    0
    """
    return _int_at_least(text, 0)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give one >= {minimum}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be an integer >= {minimum}")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type=`` for a finite number > 0 (``--budget``).

    >>> positive_float("0.3")
    0.3
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a finite number > 0") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def seed_list(parser: argparse.ArgumentParser, values: str | Sequence[int | str], flag: str = "--seeds") -> list[int]:
    """A script's seeds — comma-separated text (``"0,1,2"``) or a list (``nargs``; its items may hold commas too) —
    as distinct integers >= 0; ``parser.error`` naming the bad one otherwise (a seed counted twice would weigh twice
    in a median over seeds; numpy refuses negative seeds).

    >>> seed_list(argparse.ArgumentParser(), "0, 1,2")
    [0, 1, 2]
    """
    items = [part.strip() for v in ([values] if isinstance(values, str) else values) for part in str(v).split(",")]
    seeds: list[int] = []
    for item in items:
        if item == "":
            continue
        try:
            seed = int(item)
        except ValueError:
            parser.error(f"{flag}: {item!r} is not an integer; give seeds like 0,1,2")
        if seed < 0:
            parser.error(f"{flag}: seed {seed} must be an integer >= 0")
        if seed in seeds:
            parser.error(f"{flag}: seed {seed} given twice")
        seeds.append(seed)
    if not seeds:
        parser.error(f"{flag}: no seed given; give seeds like 0,1,2")
    return seeds


def positive_numbers(parser: argparse.ArgumentParser, text: str, flag: str) -> list[float]:
    """Comma-separated finite numbers > 0 (``--mults 1,10,30``); ``parser.error`` naming the first bad one.

    >>> positive_numbers(argparse.ArgumentParser(), "1,10,30", "--mults")
    [1.0, 10.0, 30.0]
    """
    out: list[float] = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            parser.error(f"{flag}: {item!r} is not a number; give finite numbers > 0, comma-separated")
        if not (math.isfinite(value) and value > 0):
            parser.error(f"{flag}: {item} must be a finite number > 0")
        out.append(value)
    if not out:
        parser.error(f"{flag}: no value given; give finite numbers > 0, comma-separated")
    return out


def output_file(parser: argparse.ArgumentParser, path: str | os.PathLike[str], flag: str, hint: str = "") -> Path:
    """Check before a run that its record can be written at ``path`` (a folder is created as the write would), so a
    bad path fails in a second rather than after the whole benchmark; ``parser.error`` naming it otherwise. The
    check creates and removes one empty file beside ``path`` (the real write goes through ``atomic_write_text``,
    which needs exactly that); ``hint`` is added to the message (e.g. ``"; or pass --no-save"``).

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> output_file(argparse.ArgumentParser(), d / "out.json", "--json") == d / "out.json"
    True
    """
    import tempfile

    path = Path(path)
    if path.is_dir():
        parser.error(f"{flag} {path} is a folder; give a file name in it, like {path / 'out.json'}{hint}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as e:
        parser.error(f"{flag} {path}: cannot write in {path.parent} ({e.strerror or e}){hint}")
    return path


def device_arg(parser: argparse.ArgumentParser, text: str, flag: str = "--device") -> torch.device:
    """A script's ``--device`` (``cpu``, ``cuda`` or ``cuda:N``) as a ``torch.device``; ``parser.error`` naming the
    value and what would be valid when it is not a device or this machine cannot run on it (no traceback).

    >>> device_arg(argparse.ArgumentParser(), "cpu")
    device(type='cpu')
    """
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        parser.error(f"{flag} {text!r} is not a device; valid: cpu, cuda, cuda:N")
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        parser.error(f"{flag} {text} is not supported by this benchmark; valid: cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        parser.error(f"{flag} {text} but CUDA is not available here; use {flag} cpu")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        parser.error(f"{flag} {text} but this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1}); "
                     f"use one of those, or {flag} cpu")
    return dev


def device_label(device: torch.device) -> str:
    """``"cpu"``, or ``"cuda:0 (NVIDIA H100 80GB HBM3)"``: the device and, on CUDA, its name, for a table header."""
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels (CUDA only; a no-op on the CPU): call before every timer read, so a
    timed span includes the asynchronous work it launched."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
