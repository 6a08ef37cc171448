"""Data for :func:`lrkit.train`: every ``data=`` source becomes a train/val pair of datasets plus what the trainer
needs to know about them (task, input shape, number of outputs).

Sources:

* a torch ``Dataset`` or ``DataLoader`` (split into train/val by ``val`` with a seeded permutation), or a
  ``(train, val)`` pair of them (used as given);
* a mapping of named splits, as a Hugging Face ``DatasetDict`` is: ``{"train": ds, "validation": ds}`` (the
  validation split is ``validation``, else ``val``, else ``test``; with ``train`` alone it is split by ``val``);
* a built-in name: ``digits``, ``breast_cancer``, ``wine``, ``iris`` (scikit-learn's bundled copies, no download),
  ``synthetic-regression``, ``synthetic-classification`` (generated);
* a ``.csv`` file with a header row (target column: ``target=``, default the last column — or a list of two or more
  columns, a regression of several targets; ``;``-, tab- or ``|``-separated files are recognised from the header) or
  an ``.npz`` file (arrays ``x``/``y``, or ``target=`` naming the target array; an ``x`` of shape ``(N, C, H, W)``
  is kept as images) — tabular, features standardised with the *train* split's mean and standard deviation only;
* a plain-text file: character-level language modelling (vocabulary from the train text, fixed-length windows);
  UTF-8 without NUL bytes, and not a suffix of another format (``.json``, ``.parquet``, ``.npy``, ``.pt``, ...:
  see ``UNSUPPORTED_SUFFIXES``) or of code (``.py``, ``.ipynb``: a task file is for ``lrkit find``), which is an
  error rather than a language model of its bytes;
* a data YAML ``{train: file, val: file or fraction, target: column (or a list of them), task: ..., seq_len: ...}``
  (paths relative to the YAML; a val CSV's columns are matched to the train file's by name).

The split depends only on ``seed`` (and ``val``), so the same seed gives the same split on every machine.

>>> d = load_data("iris", seed=0, val=0.2)
>>> d.info.task, d.info.input_shape, d.info.num_outputs, len(d.train), len(d.val)
('classification', (4,), 3, 120, 30)
"""

from __future__ import annotations

import codecs
import csv
import inspect
import io
import math
import numbers
import os
import re
import shlex
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    Subset,
    TensorDataset,
)

from lrkit._config import TASKS
from lrkit._hf import _INPUT_KEYS, _TARGET_KEYS
from lrkit._step import _leading_size, batch_size, named_fields, split_batch
from lrkit._utils import (
    check_int,
    describe_yaml_error,
    did_you_mean,
    first_few,
    is_float_text,
    optional_import,
    unknown_name_error,
    yaml_load,
)

__all__ = [
    "BUILTIN_DATASETS",
    "DataInfo",
    "SeededSampler",
    "TrainData",
    "describe_sample",
    "load_data",
]

TABULAR_SUFFIXES = (".csv", ".tsv")
YAML_SUFFIXES = (".yaml", ".yml")
# A target with at most this many distinct integer values is read as class labels (else regression).
MAX_INFERRED_CLASSES = 20


@dataclass
class DataInfo:
    """What the trainer knows about the data: task, per-sample input shape, outputs, vocabulary."""

    name: str
    task: str | None  # "classification" | "regression" | "lm" | None (unknown: a step_fn must compute the loss)
    input_shape: tuple[int, ...] | None
    num_outputs: int | None  # classes, regression targets, or vocabulary size
    source: str
    vocab: list[str] | None = None
    seq_len: int | None = None
    classes: list[Any] | None = None
    # standard deviation of a standardised one-column regression target (its RMSE in the target's units); with
    # several columns the root mean square of theirs (the trainer scores each column in its own units instead)
    target_scale: float = 1.0
    n_train: int = 0
    n_val: int = 0
    notes: list[str] = field(default_factory=list)
    #: the train / val DataLoader's items are whole batches (``batch_size=None``): ``n_train`` / ``n_val`` count
    #: batches, not samples
    train_batches: bool = False
    val_batches: bool = False
    #: the samples in the first training batch (:func:`lrkit._step.batch_size`) where the items are whole batches,
    #: ``None`` where that is not known; the others are not drawn to be counted
    first_batch: int | None = None
    #: how lrkit standardised a built-in or file source with its train split (``x_mean``/``x_std`` per feature, or
    #: one value over all pixels for images; ``y_mean``/``y_std`` for a regression target), as float64 tensors;
    #: empty where the data was used as given (a torch Dataset)
    scaling: dict[str, torch.Tensor] = field(default_factory=dict, compare=False)  # (== on tensors is no bool)
    #: a CSV's feature columns in the order the model reads them (``None`` for other sources)
    features: list[str] | None = None
    #: a CSV's target column, as its header names it; a list of the names for several target columns (a regression
    #: with a model output per column, in this order); ``None`` for other sources
    target: str | list[str] | None = None

    def preprocess_state(self) -> dict[str, Any]:
        """What a model trained on this data needs to take raw inputs (saved in ``last.pt``/``best.pt`` as
        ``"preprocess"``; :func:`lrkit.train.load_run` reads it): the :attr:`scaling` tensors, the class labels as
        plain values, the vocabulary and the feature names — tensors and plain containers only.

        >>> info = load_data("iris").info
        >>> state = info.preprocess_state()
        >>> state["x_mean"].shape, state["classes"], state["y_mean"]
        (torch.Size([4]), [0, 1, 2], None)
        """
        return {
            "version": 1, "task": self.task, "input_shape": list(self.input_shape or []),
            **{k: self.scaling.get(k) for k in ("x_mean", "x_std", "y_mean", "y_std")},
            "classes": self._plain_classes(),
            "vocab": list(self.vocab) if self.vocab is not None else None, "seq_len": self.seq_len,
            "features": list(self.features) if self.features is not None else None,
            "target": list(self.target) if isinstance(self.target, list) else self.target,
        }

    def _plain_classes(self) -> list[Any] | None:
        """The class labels as they read in the file, as YAML and ``weights_only`` checkpoints hold them: numbers as
        numbers (``3``, not ``'3'`` or ``3.0``), text as text; anything else as its text."""
        if self.classes is None:
            return None
        return [c if isinstance(c, (bool, int, float, str)) else str(c) for c in self.classes]

    def sizes(self) -> str:
        """The splits' sizes for the log: ``1438 train / 359 val`` in samples; a split of whole batches in batches,
        with the first training batch's size where it is known (``5 train batches (the first of 64 samples)``).

        >>> DataInfo("d", None, None, None, "pair", n_train=5, n_val=2, train_batches=True, val_batches=True,
        ...          first_batch=64).sizes()
        '5 train batches (the first of 64 samples) / 2 val batches'
        """
        if self.train_batches:
            first = "" if self.first_batch is None else \
                f" (the first of {self.first_batch} sample{'s' * (self.first_batch != 1)})"
            train = f"{self.n_train} train batch{'es' * (self.n_train != 1)}{first}"
        else:
            train = f"{self.n_train} train"
        val = f"{self.n_val} val batch{'es' * (self.n_val != 1)}" if self.val_batches else f"{self.n_val} val"
        return f"{train} / {val}"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for checkpoints and args.yaml); ``train_unit`` / ``val_unit`` say what ``n_train`` /
        ``n_val`` count: ``"samples"``, or ``"batches"`` for a DataLoader of whole batches (``batch_size=None``)."""
        return {
            "name": self.name, "task": self.task, "input_shape": list(self.input_shape or []),
            "num_outputs": self.num_outputs, "source": self.source, "vocab": self.vocab, "seq_len": self.seq_len,
            "classes": self._plain_classes(),
            "target_scale": self.target_scale, "n_train": self.n_train, "n_val": self.n_val,
            "train_unit": "batches" if self.train_batches else "samples",
            "val_unit": "batches" if self.val_batches else "samples",
        }

    def batch_above_split(self, batch: int) -> str:
        """The log line for a ``batch`` above the ``n_train`` training samples: every batch is the whole training
        split. A text's samples are its windows of ``seq_len``, so its line says that the text holds only so many."""
        n, s = self.n_train, "s" * (self.n_train != 1)
        if self.task == "lm" and self.vocab is not None and self.seq_len:  # a text file (or a text data YAML)
            return (f"data: batch={batch} is larger than the training text of {self.name}, which holds only {n} "
                    f"window{s} of seq_len={self.seq_len}: every batch is all {n} (batch {n} for accumulate and "
                    "weight decay; a longer text or a smaller seq_len gives more windows)")
        return (f"data: batch={batch} is larger than the {n} training sample{s}; every batch is the whole training "
                f"split (batch {n} for accumulate and weight decay)")


@dataclass
class TrainData:
    """A train/val pair (Datasets, or DataLoaders the user built) and its :class:`DataInfo`."""

    train: Any
    val: Any
    info: DataInfo
    #: ``train`` and ``val`` are DataLoaders lrkit built from one of the user's (split and reloaded with its
    #: settings, ``persistent_workers`` included): the caller cannot reach them, so the run shuts their workers down
    owned: bool = False

    def loaders(
        self, *, batch: int, workers: int = 0, seed: int = 0
    ) -> tuple[Any, Any, SeededSampler | None]:
        """``(train_loader, val_loader, sampler)``. Datasets get a :class:`SeededSampler` (call ``set_epoch``);
        DataLoaders the user passed are returned as they are (their order follows the restored torch RNG)."""
        sampler = None
        if isinstance(self.train, DataLoader):
            train_loader = self.train
        elif isinstance(self.train, IterableDataset):  # it yields its own order: no sampler can be given
            train_loader = DataLoader(self.train, batch_size=batch, num_workers=workers,
                                      generator=torch.Generator().manual_seed(seed))
        else:
            sampler = SeededSampler(len(self.train), seed=seed)
            train, collate = _batch_indexed(self.train)
            # A batch above the split is one batch of the whole split either way; torch 2.4 allocates a list
            # of batch_size slots per batch (batch=2**63-1: MemoryError). Never below 2, so that a 1-sample split
            # still reads as a 1-sample last batch (the BatchNorm check).
            train_loader = DataLoader(
                train, batch_size=min(batch, max(len(self.train), 2)), sampler=sampler, num_workers=workers,
                collate_fn=collate,
                persistent_workers=False, generator=torch.Generator().manual_seed(seed),
            )
        if isinstance(self.val, DataLoader):
            val_loader = self.val
        else:
            val, collate = _batch_indexed(self.val)
            val_loader = DataLoader(val, batch_size=min(max(batch, 256), max(len(self.val), 1)), shuffle=False,
                                    num_workers=workers,
                                    collate_fn=collate,
                                    generator=torch.Generator().manual_seed(seed))  # never draws the global RNG
        return train_loader, val_loader, sampler


class _IndexedTensors(Dataset):
    """The samples of a ``TensorDataset`` (through the ``Subset`` indices over it, if any), fetched a whole batch at
    a time: ``__getitems__`` indexes each tensor once with the batch's indices, where the default path indexes the
    dataset sample by sample and then stacks (on small tabular models most of a step's host time). The batch holds
    the same values in the same order and layout as the default collation gives (tested bit for bit)."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], index: torch.Tensor | None) -> None:
        self.tensors = tensors
        self.index = index

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.tensors[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        j = self.index[i] if self.index is not None else i
        return tuple(t[j] for t in self.tensors)

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        j = torch.as_tensor(indices, dtype=torch.long)
        if self.index is not None:
            j = self.index[j]
        # default_collate makes a list of a batch of tuples too, and stacks into contiguous memory (indexing keeps
        # a channels_last tensor's strides: made contiguous, as the default's, which costs nothing otherwise)
        return [t[j].contiguous() for t in self.tensors]


def _whole_batch(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """The ``collate_fn`` of an :class:`_IndexedTensors` loader: its ``__getitems__`` returns the batch already."""
    return batch


def _batch_indexed(ds: Any) -> tuple[Any, Any]:
    """``(dataset, collate_fn)`` for a DataLoader over ``ds``: a plain ``TensorDataset`` (or plain ``Subset`` chain
    over one) of CPU tensors as an :class:`_IndexedTensors` with :func:`_whole_batch`; anything else (a subclass,
    which may transform its samples, a user's Dataset) as it is, with the default collation (``None``)."""
    index = None
    base = ds
    while type(base) is Subset:
        step = torch.as_tensor(base.indices, dtype=torch.long)
        index = step if index is None else step[index]
        base = base.dataset
    if type(base) is not TensorDataset or not all(t.device.type == "cpu" for t in base.tensors):
        return ds, None
    return _IndexedTensors(base.tensors, index), _whole_batch


class SeededSampler(Sampler[int]):
    """A random permutation per epoch, drawn from ``seed`` and the epoch number alone (no global RNG).

    So the data order of epoch ``e`` is the same in an uninterrupted run and in a run resumed at epoch ``e``.

    >>> s = SeededSampler(5, seed=0); s.set_epoch(3); a = list(s); s.set_epoch(3)
    >>> a == list(s), sorted(a)
    (True, [0, 1, 2, 3, 4])
    """

    def __init__(self, n: int, *, seed: int = 0) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        # modulo torch's seed range: a seed above 2**64 / 1,000,003 would overflow it (smaller ones are unchanged)
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**64)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


# ------------------------------------------------------------------------------------------- built-in datasets
@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: name, loader returning ``(X, y)``, task, one-line description."""

    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    task: str
    description: str
    image_shape: tuple[int, ...] | None = None


def _sklearn(name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def load() -> tuple[np.ndarray, np.ndarray]:
        datasets = optional_import("sklearn.datasets", "cli")
        bunch = getattr(datasets, f"load_{name}")()
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)

    return load


def builtin_feature_names(name: str) -> list[str] | None:
    """scikit-learn's ``feature_names`` of a built-in table (``breast_cancer``, ``wine``, ``iris``; ``-`` for ``_``
    and any case), in the order training read the columns; ``None`` for any other name (``digits`` is images, the
    generated sets have no names).

    >>> builtin_feature_names("iris")[:2], builtin_feature_names("digits")
    (['sepal length (cm)', 'sepal width (cm)'], None)
    """
    key = str(name).strip().lower().replace("-", "_")
    entry = BUILTIN_DATASETS.get(key)
    if entry is None or entry.image_shape is not None or key.startswith("synthetic"):
        return None
    datasets = optional_import("sklearn.datasets", "cli")
    return [str(c) for c in getattr(datasets, f"load_{key}")().feature_names]


def _synthetic_regression() -> tuple[np.ndarray, np.ndarray]:
    """1,000 samples, 10 features; ``y = x·w + 0.5·tanh(x·v) + 0.1·noise`` (a fixed generator: the same data always)."""
    rng = np.random.default_rng(12345)
    x = rng.standard_normal((1000, 10))
    w, v = rng.standard_normal(10), rng.standard_normal(10)
    y = x @ w + 0.5 * np.tanh(x @ v) + 0.1 * rng.standard_normal(1000)
    return x, y


def _synthetic_classification() -> tuple[np.ndarray, np.ndarray]:
    """1,000 samples, 10 features, 3 classes: ``y = argmax(x·W + 0.5·noise)`` (fixed generator)."""
    rng = np.random.default_rng(54321)
    x = rng.standard_normal((1000, 10))
    w = rng.standard_normal((10, 3))
    y = np.argmax(x @ w + 0.5 * rng.standard_normal((1000, 3)), axis=1)
    return x, y


BUILTIN_DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("digits", _sklearn("digits"), "classification", "8x8 handwritten digits, 1,797 images, 10 classes",
                    image_shape=(1, 8, 8)),
        DatasetInfo("breast_cancer", _sklearn("breast_cancer"), "classification",
                    "Wisconsin breast cancer, 569 samples, 30 features, 2 classes"),
        DatasetInfo("wine", _sklearn("wine"), "classification", "wine cultivars, 178 samples, 13 features, 3 classes"),
        DatasetInfo("iris", _sklearn("iris"), "classification", "iris flowers, 150 samples, 4 features, 3 classes"),
        DatasetInfo("synthetic-regression", _synthetic_regression, "regression",
                    "generated: 1,000 samples, 10 features, linear + tanh target"),
        DatasetInfo("synthetic-classification", _synthetic_classification, "classification",
                    "generated: 1,000 samples, 10 features, 3 classes"),
    )
}


# ------------------------------------------------------------------------------------------- entry point
#: The settings of a DataLoader passed as ``data=`` that its train/val split keeps besides batch_size, collate_fn,
#: num_workers and drop_last: how its worker processes start (a ``worker_init_fn`` that opens a file per worker or
#: seeds numpy, a multiprocessing context), live (persistent_workers, prefetch_factor, timeout) and hand batches over
#: (pin_memory). Those this torch's DataLoader does not know are left out.
_WORKER_SETTINGS = ("worker_init_fn", "multiprocessing_context", "persistent_workers", "prefetch_factor", "timeout",
                    "pin_memory", "pin_memory_device", "in_order")


def _worker_settings(loader: DataLoader) -> dict[str, Any]:
    """The :data:`_WORKER_SETTINGS` of ``loader``, as keywords for a new DataLoader over another dataset."""
    accepted = inspect.signature(DataLoader.__init__).parameters
    return {k: getattr(loader, k) for k in _WORKER_SETTINGS if k in accepted and hasattr(loader, k)}


def load_data(
    data: Any,
    *,
    seed: int = 0,
    val: float = 0.2,
    task: str | None = None,
    target: str | int | Sequence[str | int] | None = None,
    seq_len: int = 64,
    drop: Sequence[str] | None = None,
) -> TrainData:
    """Turn any ``data=`` source into a :class:`TrainData` (see the module docstring for the sources).

    ``task`` overrides the inferred task; ``target`` names the target column (CSV) or array (NPZ) — for any other
    source it is a ``ValueError`` rather than silently ignored; a list or tuple of two or more CSV columns (names or
    indexes) is a regression of several targets, ``y`` of shape ``(N, K)`` in the list's order (one item is that one
    column); ``drop`` names CSV/TSV columns to leave out of the
    features (an ID; a name or a comma-separated string, or a sequence of names); ``seq_len`` is the window length
    for text. Raises
    ``ValueError`` naming the bad source and what would be valid.

    A torch Dataset's task is inferred from its first sample ``(x, y)``: integer ``y`` of shape ``()`` — or ``(1,)``
    with floating ``x``, a column of class indices (the trainer's losses and accuracy squeeze the trailing 1) — is
    classification; floating ``y`` is regression; integer ``x`` and ``y`` of one shape ``(T,)`` is ``lm``.
    """
    if isinstance(val, bool) or not isinstance(val, numbers.Real) or not 0.0 < val < 1.0:  # NaN fails too
        raise ValueError(f"val={val!r} must be a fraction in (0, 1): the share of the data held out for validation")
    seq_len = check_int("seq_len", seq_len, 1, " (the window length of a character-level LM)")
    seed = check_int("seed", seed, 0, " (it seeds the train/val split)")  # numpy's own error names no value
    target = _target_arg(target)
    if drop is not None and not isinstance(drop, str) and (
            not isinstance(drop, (list, tuple)) or not all(isinstance(c, str) for c in drop)):
        # (drop=3: "'int' object is not iterable"; drop=0 was read as no drop at all)
        raise ValueError(f"drop={drop!r} must be column names: one name, a comma-separated list (drop='id,name') or "
                         "a list of names")
    drop = tuple(c.strip() for c in drop.split(",")) if isinstance(drop, str) else tuple(drop or ())
    if data is None:
        raise ValueError("data= is required: a built-in name (" + ", ".join(BUILTIN_DATASETS) + "), a CSV/NPZ/text/"
                         "YAML file, a torch Dataset/DataLoader, or a (train, val) pair")
    if isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        if isinstance(text, str) and not text.strip():  # Path('') is '.', a directory
            raise ValueError(f"data={text!r} is blank: give a built-in name ({', '.join(BUILTIN_DATASETS)}) or a "
                             "CSV/NPZ/text/YAML file")
        key = text.strip().lower().replace("_", "-")
        builtin = {n.replace("_", "-"): n for n in BUILTIN_DATASETS}
        if key in builtin:
            _no_target(target, f"data={text!r} is a built-in dataset with its own target")
            if drop:
                raise ValueError(f"drop={list(drop)} names CSV columns to leave out, but data={text!r} is a built-in "
                                 "dataset; leave drop out")
            out = _from_builtin(BUILTIN_DATASETS[builtin[key]], seed=seed, val=val, task=task)
            if Path(text).expanduser().is_file():  # a file of that name here: the built-in wins, and says so
                out.info.notes.append(f"data={text!r} is the built-in dataset; the file of that name in this folder is "
                                      "not read: to train on it, give it its format's suffix (.csv, .tsv, .npz, "
                                      ".yaml, .txt) and pass that path")
            return out
        path = Path(text).expanduser()
        if not path.exists():
            if re.match(r"(https?|s3|gs|ftp)://", text.strip(), re.IGNORECASE):
                raise ValueError(f"data={text!r} is a URL: lrkit.train downloads nothing; save the file and pass its "
                                 "path")
            if path.suffix or os.sep in text or "/" in text:
                raise ValueError(f"data={text!r}: no such file")
            error = unknown_name_error("dataset", text, BUILTIN_DATASETS)
            known = _TORCHVISION_DATASETS.get(key.replace("-", ""))
            if known is not None and "Did you mean" not in str(error):  # Ultralytics' data=mnist downloads it
                raise ValueError(f"{error}; lrkit.train downloads nothing: in Python, pass data=torchvision.datasets."
                                 f"{known}(root, download=True, transform=torchvision.transforms.ToTensor()) (split "
                                 "by val=)") from None
            raise error
        if path.is_dir():
            raise ValueError(f"data={text!r} is a directory; pass a CSV, NPZ, text or data-YAML file")
        if drop and _file_kind(path) not in ("table", "yaml"):
            raise ValueError(f"drop={list(drop)} names CSV columns to leave out, but data={text!r} is not a CSV/TSV "
                             "file (or a data YAML of them); leave drop out")
        return _from_file(path, seed=seed, val=val, task=task, target=target, seq_len=seq_len, drop=drop)
    if drop:
        raise ValueError(f"drop={list(drop)} names CSV columns to leave out, but data= is not a CSV/TSV file; leave "
                         "drop out")
    if isinstance(data, Mapping):  # a DatasetDict, {"train": ds, "validation": ds}
        return _from_splits(data, seed=seed, val=val, task=task, target=target)
    if target is not None:  # a torch Dataset/DataLoader (or a pair) yields its own (input, target) samples
        _no_target(target, f"data= is a {type(data).__name__}, whose samples carry their own targets")
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(
                f"data= as a sequence must be a (train, val) pair, got a {type(data).__name__} of {len(data)} items; "
                "for a list of samples pass data=(train_samples, val_samples) (a list of samples is a dataset), or a "
                "Dataset to split by val="
            )
        tr, va = data
        arrays = (np.ndarray, torch.Tensor)
        if isinstance(tr, arrays) and isinstance(va, arrays) and tr.ndim >= 1 and va.ndim >= 1 and len(tr) == len(va):
            # scikit-learn's habit, (X, y): name the reading lrkit takes and the two ways to say it
            raise ValueError(
                f"data=({type(tr).__name__}, {type(va).__name__}) of {len(tr)} rows each looks like (features, "
                "targets), but a pair is read as (train, val) datasets; pass data=TensorDataset(torch.as_tensor(X), "
                "torch.as_tensor(y)) (split by val=), or save np.savez('data.npz', x=X, y=y) and pass data='data.npz'"
            )
        for role, obj in (("train", tr), ("val", va)):
            _check_part(f"data=(train, val): {role}", obj)
        return _from_torch(tr, va, task=task, source="pair")
    if isinstance(data, DataLoader) or _map_style(data):
        return _split_one(data, seed=seed, val=val, task=task)
    raise ValueError(
        f"data={type(data).__name__} is not supported: pass a built-in name ({', '.join(BUILTIN_DATASETS)}), a file "
        "path (.csv, .npz, .txt, .yaml), a torch Dataset/DataLoader, a (train, val) pair, or a mapping of splits "
        "({'train': ds, 'validation': ds}, a DatasetDict)"
    )


#: image datasets Ultralytics (and tutorials) download by name, as lowercase keys without '-'/'_': their torchvision
#: class, whose (root, download=True, transform=ToTensor()) gives fixed-size images
_TORCHVISION_DATASETS = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "kmnist": "KMNIST", "cifar10": "CIFAR10",
                         "cifar100": "CIFAR100", "svhn": "SVHN"}


def _split_one(data: Any, *, seed: int, val: float, task: str | None) -> TrainData:
    """A DataLoader (its dataset split and reloaded with its settings) or a map-style dataset, split by ``val``."""
    if isinstance(data, DataLoader):
        if data.batch_size is None:
            raise ValueError(
                "data=DataLoader without a batch_size (a batch_sampler, or batch_size=None) cannot be split into "
                "train/val; pass a (train, val) pair of DataLoaders, or a Dataset with batch="
            )
        ds = data.dataset
        sampler = data.sampler
        if not isinstance(ds, IterableDataset) and not _plain_sampler(sampler, ds):
            # a WeightedRandomSampler's weights, a DistributedSampler's shard, a sampler of yours, a RandomSampler
            # drawing with replacement or another count: each draws over the whole dataset, and the split is
            # reshuffled without it (before session 27 it was dropped without a word)
            raise ValueError(
                f"data=DataLoader with sampler={_sampler_name(sampler)} cannot be split into train/val: the sampler "
                "draws over the whole dataset, and lrkit would shuffle the train split without it; pass a (train, "
                "val) pair of DataLoaders, the train one with its sampler over the train split, e.g. "
                "data=(DataLoader(train_ds, sampler=..., batch_size=...), DataLoader(val_ds, batch_size=...))"
            )
        tr, va = _split_dataset(ds, seed=seed, val=val)
        kw = {"batch_size": data.batch_size, "collate_fn": data.collate_fn, "num_workers": data.num_workers,
              **_worker_settings(data)}
        g = torch.Generator().manual_seed(seed)
        out = _from_torch(  # drop_last is kept for training (e.g. BatchNorm and a last batch of one), not for val
            DataLoader(tr, shuffle=True, generator=g, drop_last=data.drop_last, **kw),
            DataLoader(va, shuffle=False, **kw), task=task, source="dataloader",
        )
        out.owned = True
        out.info.notes.append(f"split the DataLoader's dataset {1 - val:.0%}/{val:.0%} (seed {seed}); kept its "
                              f"batch_size={data.batch_size}, collate_fn, drop_last={data.drop_last} and worker "
                              f"settings (num_workers={data.num_workers}, worker_init_fn, pin_memory, ...)")
        return out
    # a torch Dataset, or one with only __getitem__/__len__ (a Hugging Face datasets.Dataset)
    tr, va = _split_dataset(data, seed=seed, val=val)
    return _from_torch(tr, va, task=task, source="dataset")


def _plain_sampler(sampler: Any, ds: Any) -> bool:
    """Whether ``sampler`` is what ``DataLoader(shuffle=True/False)`` makes: a ``SequentialSampler``, or a
    ``RandomSampler`` that draws each sample once (no replacement, ``num_samples`` the dataset's length) — one a split
    can stand in for. Its ``generator`` does not count: the split shuffles from ``seed``."""
    if type(sampler) is SequentialSampler:
        return True
    if type(sampler) is not RandomSampler:
        return False
    try:
        return not sampler.replacement and sampler.num_samples == len(ds)
    except TypeError:  # a dataset without a length: the split says so itself
        return True


def _sampler_name(sampler: Any) -> str:
    """``WeightedRandomSampler``, or ``RandomSampler(replacement=True, num_samples=640)`` with what makes it draw
    otherwise than ``shuffle=True``."""
    name = type(sampler).__name__
    if type(sampler) is not RandomSampler:
        return name
    own = [f"replacement={sampler.replacement!r}"] if sampler.replacement else []
    if getattr(sampler, "_num_samples", None) is not None:
        own.append(f"num_samples={sampler._num_samples!r}")
    return f"{name}({', '.join(own)})"


def _check_part(label: str, obj: Any) -> None:
    """``obj``, one split of a ``(train, val)`` pair or of a mapping of splits, is a DataLoader or a map-style dataset
    whose length is known; ``label`` names it in the error."""
    if not isinstance(obj, DataLoader) and not _map_style(obj):
        raise ValueError(f"{label} is a {type(obj).__name__}, not a torch Dataset/DataLoader "
                         "(or a list of samples / a map-style dataset with __getitem__ and __len__)")
    if isinstance(_dataset_of(obj), IterableDataset) and not _sized(obj):
        raise ValueError(
            f"{label} is an IterableDataset without __len__; lrkit plans the schedule in "
            "steps, so it needs the number of samples per epoch: give the dataset a __len__ (the samples it yields "
            "per epoch; a DataLoader over it then has a length too)"
        )


#: the split names of a ``data=`` mapping (a Hugging Face ``DatasetDict``): the train split, and the validation split
#: (the first of these present)
TRAIN_SPLIT = "train"
VAL_SPLITS = ("validation", "val", "test")


def _from_splits(data: Mapping[Any, Any], *, seed: int, val: float, task: str | None,
                 target: str | int | list[str | int] | None) -> TrainData:
    """``data=`` as a mapping of named splits (a ``datasets.DatasetDict``, ``{"train": ds, "validation": ds}``):
    ``train`` is the train split and the first of :data:`VAL_SPLITS` present the validation split, each a Dataset,
    DataLoader or list of samples as a ``(train, val)`` pair's parts are; with ``train`` alone, it is split by
    ``val`` as a single dataset is. Other splits are left out (and named in the log)."""
    keys = sorted(data, key=lambda k: (str(k), type(k).__name__))
    accepted = f"{TRAIN_SPLIT!r}, with {', '.join(repr(k) for k in VAL_SPLITS[:-1])} or {VAL_SPLITS[-1]!r} as the " \
               "validation split"
    if TRAIN_SPLIT not in data:
        hint = ""
        if any(isinstance(v, (np.ndarray, torch.Tensor)) for v in data.values()):
            hint = ("; for arrays of features and targets pass data=TensorDataset(torch.as_tensor(X), "
                    "torch.as_tensor(y)) (split by val=)")
        raise ValueError(
            f"data= is a {type(data).__name__} with keys {keys} and no 'train' split: a mapping as data= holds "
            f"datasets by split name — {accepted} (without one, train is split by val=){hint}"
        )
    found = [k for k in VAL_SPLITS if k in data]
    if "validation" in found and "val" in found:
        raise ValueError(f"data= has both 'validation' and 'val' splits (keys {keys}): which validates is ambiguous; "
                         "keep one of them")
    val_key = found[0] if found else None
    for key in (TRAIN_SPLIT, val_key) if val_key is not None else (TRAIN_SPLIT,):
        part = data[key]
        if isinstance(part, (str, os.PathLike)):
            text = os.fspath(part)
            if text.startswith("<") and text.endswith(">"):  # what args.yaml / a checkpoint records of an object
                raise ValueError(
                    f"data[{key!r}]={text!r} is the record of a Python object (a run's args.yaml or checkpoint cannot "
                    "hold a dataset): pass the datasets themselves again, data={'train': ..., 'validation': ...}"
                )
            raise ValueError(
                f"data[{key!r}]={text!r} is a string: a mapping as data= holds datasets by split name, not files; "
                "name the files in a data YAML (train: train.csv, val: val.csv) and pass data='data.yaml'"
            )
        if (isinstance(part, (tuple, list)) and len(part) == 2
                and all(isinstance(a, (np.ndarray, torch.Tensor)) and a.ndim >= 1 for a in part)
                and len(part[0]) == len(part[1])):  # scikit-learn's (X, y), as data=(X, y) is refused
            raise ValueError(
                f"data[{key!r}] is a ({type(part[0]).__name__}, {type(part[1]).__name__}) pair of {len(part[0])} rows "
                "each, which looks like (features, targets), but each split of a mapping is a dataset; pass "
                f"{{{key!r}: TensorDataset(torch.as_tensor(X), torch.as_tensor(y)), ...}}"
            )
        _check_part(f"data[{key!r}]", part)
    _no_target(target, f"data= is a {type(data).__name__} of datasets, whose samples carry their own targets")
    if val_key is None:
        out = _split_one(data[TRAIN_SPLIT], seed=seed, val=val, task=task)
        used = f"train={TRAIN_SPLIT!r} split {1 - val:.0%}/{val:.0%} by val= (seed {seed}): no validation split"
    else:
        out = _from_torch(data[TRAIN_SPLIT], data[val_key], task=task, source="splits")
        used = f"train={TRAIN_SPLIT!r}, val={val_key!r}"
    out.info.source = "splits"
    unused = [k for k in keys if k not in (TRAIN_SPLIT, val_key)]
    out.info.notes.append(f"data= splits: {used}" + (f"; not used: {unused}" if unused else ""))
    return out


def _map_style(obj: Any) -> bool:
    """Whether ``obj`` is a dataset a DataLoader can index: a torch ``Dataset``, or any sized object with
    ``__getitem__`` (a list of samples, a Hugging Face ``datasets.Dataset``) that is not a string, a mapping (a dict
    of columns is indexed by name, not by sample) or an array/tensor (a pair of those is (X, y), named above). A
    list or tuple counts when its items are samples (dicts, pairs, tensors, arrays), not bare numbers."""
    if isinstance(obj, Dataset):
        return True
    if isinstance(obj, (str, bytes, range, Mapping, np.ndarray, torch.Tensor)):
        return False
    if type(obj).__name__ in ("DataFrame", "Series", "LazyFrame"):  # pandas/polars: indexed by column or label
        return False
    if isinstance(obj, (list, tuple)):
        return not obj or isinstance(obj[0], (Mapping, list, tuple, torch.Tensor, np.ndarray))
    return hasattr(type(obj), "__getitem__") and hasattr(type(obj), "__len__")


def several_targets_hint(target: object) -> str:
    """For a ``target=`` of several arrays of an NPZ file (a list or tuple of two or more): an NPZ's target is one
    array, so how to save several regression targets as one — a ``y`` with a column per target. ``""`` for anything
    else. (A CSV trains a list of target columns itself.)

    >>> several_targets_hint(["y1", "y2"])[:57]
    '; for several regression targets save them as one array y'
    >>> several_targets_hint("y1"), several_targets_hint(["y1"])
    ('', '')
    """
    if not isinstance(target, (list, tuple)) or len(target) < 2:
        return ""
    names = ", ".join(str(t) for t in target)
    return (f"; for several regression targets save them as one array y with a column per target and leave target= "
            f"out: np.savez('data.npz', x=x, y=np.column_stack([{names}])) — or save the table as a CSV, whose "
            f"target= takes a list of columns")


def _target_arg(target: object) -> str | int | list[str | int] | None:
    """``target=`` as :func:`load_data` reads it: ``None``, one column name or index (``np.int64(2)`` is ``2``), or a
    list of two or more of them (several regression targets); a list of one is that one column.

    >>> _target_arg(["y1"]), _target_arg(("y1", np.int64(-1)))
    ('y1', ['y1', -1])
    """
    if isinstance(target, (list, tuple)):
        if not target:
            raise ValueError(f"target={target!r} names no column; give a column name or index, or a list of two or "
                             "more of them for several regression targets")
        for item in target:
            if isinstance(item, bool) or not isinstance(item, (str, numbers.Integral)):
                raise ValueError(f"target={target!r}: {item!r} is not a column name (str) or index (int); a list of "
                                 "target columns holds names or indexes")
        items: list[str | int] = [t if isinstance(t, str) else int(t) for t in target]
        return items[0] if len(items) == 1 else items
    if isinstance(target, bool):  # an int subclass: target=True would silently be column 1
        raise ValueError(f"target={target!r} must be a column name or index, not a boolean")
    if isinstance(target, numbers.Integral):
        return int(target)  # np.int64(2) is column 2
    if target is not None and not isinstance(target, str):
        raise ValueError(f"target={target!r} must be a column name (str) or index (int), or a list of them (several "
                         "regression targets)")
    return target


def _no_target(target: str | int | list[str | int] | None, why: str) -> None:
    """``target=`` picks a column of a CSV/NPZ file (or a data YAML's files); anywhere else it would be ignored."""
    if target is not None:
        raise ValueError(f"target={target!r} applies only to CSV/NPZ files (and a data YAML of them); {why}. Drop "
                         "target=, or pass the data as a .csv/.npz file")


# ------------------------------------------------------------------------------------------- arrays -> datasets
def _split_indices(n: int, *, seed: int, val: float) -> tuple[np.ndarray, np.ndarray]:
    if n < 2:
        raise ValueError(f"the data has {n} sample(s); at least 2 are needed to split off a validation set")
    n_val = min(max(1, round(val * n)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _split_dataset(ds: Dataset, *, seed: int, val: float) -> tuple[Subset, Subset]:
    if isinstance(ds, IterableDataset):  # a Subset indexes samples, which a stream cannot do
        raise ValueError(f"data= is an IterableDataset ({type(ds).__name__}), which cannot be split into train/val "
                         "by index; pass a (train, val) pair of datasets")
    try:
        n = len(ds)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError("data= is a Dataset without __len__ (an IterableDataset?); pass a (train, val) pair") from None
    tr, va = _split_indices(n, seed=seed, val=val)
    return Subset(ds, tr.tolist()), Subset(ds, va.tolist())


def _infer_task(y: np.ndarray, task: str | None) -> str:
    if task is not None:
        return task
    if y.dtype.kind in "OUSb":
        return "classification"
    if y.ndim == 1 and y.dtype.kind in "iu":
        return "classification"
    integral = y.ndim == 1 and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))
    if integral and len(np.unique(y)) <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def _arrays_to_data(
    x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, *, task: str | None, name: str,
    source: str, image_shape: tuple[int, ...] | None = None,
) -> TrainData:
    inferred = task is None
    task = _infer_task(np.concatenate([y_tr, y_va]) if y_tr.dtype.kind not in "OUS" else y_tr, task)
    if inferred and task == "classification" and y_tr.dtype.kind in "iu" and y_va.dtype.kind in "iu":
        _check_integer_labels(np.concatenate([y_tr, y_va]), name)
    if task == "lm":
        raise ValueError(f"task='lm' needs a plain-text file; {name!r} is tabular (use classification or regression)")
    x_tr = x_tr.astype(np.float64)
    x_va = x_va.astype(np.float64)
    if image_shape is not None:  # images: one mean/std over all pixels (per-pixel stats would erase the strokes)
        mu, sd = _mean_std(x_tr, None)
        x_tr, x_va = (x_tr - mu) / sd, (x_va - mu) / sd
        x_tr = x_tr.reshape(len(x_tr), *image_shape)
        x_va = x_va.reshape(len(x_va), *image_shape)
    else:  # tabular: per-feature standardisation with the *train* split's statistics only
        mu, sd = _mean_std(x_tr, 0)
        x_tr, x_va = (x_tr - mu) / sd, (x_va - mu) / sd
    info = DataInfo(name=name, task=task, input_shape=tuple(x_tr.shape[1:]), num_outputs=None, source=source,
                    n_train=len(x_tr), n_val=len(x_va))
    # kept so that raw inputs can be prepared the same way after training (load_run)
    info.scaling = {"x_mean": torch.as_tensor(np.asarray(mu, dtype=np.float64).reshape(-1)),
                    "x_std": torch.as_tensor(np.asarray(sd, dtype=np.float64).reshape(-1))}
    if task == "classification":
        l_tr, l_va = _labels(y_tr), _labels(y_va)
        classes = sorted(set(l_tr) | set(l_va), key=_label_key)
        index = {c: i for i, c in enumerate(classes)}
        t_tr = torch.tensor([index[c] for c in l_tr], dtype=torch.long)
        t_va = torch.tensor([index[c] for c in l_va], dtype=torch.long)
        info.num_outputs, info.classes = len(classes), classes
        if len(classes) < 2:
            raise ValueError(f"{name}: the target has a single class ({classes[0]!r}); nothing to classify")
    else:
        try:
            yt = y_tr.astype(np.float64).reshape(len(y_tr), -1)
            yv = y_va.astype(np.float64).reshape(len(y_va), -1)
        except ValueError:
            raise ValueError(f"{name}: task='regression' needs a numeric target") from None
        # standardise the target too (train statistics) so one lr0 suits any target scale; the metric (RMSE) is
        # reported back in the target's own units via target_scale
        my, sy = _mean_std(yt, 0)
        t_tr = torch.tensor((yt - my) / sy, dtype=torch.float32)
        t_va = torch.tensor((yv - my) / sy, dtype=torch.float32)
        info.num_outputs = yt.shape[1]
        info.scaling.update(y_mean=torch.as_tensor(np.asarray(my, dtype=np.float64).reshape(-1)),
                            y_std=torch.as_tensor(np.asarray(sy, dtype=np.float64).reshape(-1)))
        info.target_scale = float(sy[0]) if yt.shape[1] == 1 else float(np.sqrt(np.mean(sy**2)))
    return TrainData(
        TensorDataset(torch.tensor(x_tr, dtype=torch.float32), t_tr),
        TensorDataset(torch.tensor(x_va, dtype=torch.float32), t_va),
        info,
    )


def _numbered_labels_note(fname: str, y: np.ndarray, target: str | list[str] | None) -> list[str]:
    """A log note for a numeric target read as a regression (more than :data:`MAX_INFERRED_CLASSES` values) whose
    values are every whole number ``0..K-1`` (or ``1..K``): class labels, as likely as a count — a CSV's column of
    30 classes trained a regression without a word, where an NPZ's int64 labels of them classify.

    >>> _numbered_labels_note("d.csv", np.arange(25.0), "y")[0][:56]
    "d.csv: the target 'y' holds 25 distinct whole numbers, e"
    """
    if y.ndim != 1 or y.dtype.kind not in "iuf" or not len(y) or not np.all(np.isfinite(y)):
        return []
    values = np.unique(y)
    if len(values) <= MAX_INFERRED_CLASSES or not np.all(values == np.round(values)):
        return []
    lo, hi = int(values[0]), int(values[-1])
    if lo not in (0, 1) or hi - lo != len(values) - 1:
        return []
    named = f"target {target!r}" if isinstance(target, str) else "target"
    return [f"{fname}: the {named} holds {len(values)} distinct whole numbers, every one of {lo}..{hi}: trained as a "
            f"regression (a count, a score), as a whole-number target of more than {MAX_INFERRED_CLASSES} values is; "
            "if they are class labels, pass task=classification"]


def _check_integer_labels(y: np.ndarray, name: str) -> None:
    """An integer target (an NPZ's int64 ``y``) is read as class labels; but more than
    :data:`MAX_INFERRED_CLASSES` distinct values not numbered ``0..K-1`` (or ``1..K``) are a price or a count saved as
    integers, which would train one class per distinct value: an error asking for ``task=``."""
    values = np.unique(y)
    if len(values) <= MAX_INFERRED_CLASSES or y.ndim != 1:
        return
    first = int(values[0])
    if first in (0, 1) and int(values[-1]) - first == len(values) - 1:  # every label 0..K-1 (1..K) is there
        return
    shown = ", ".join(str(int(v)) for v in values[:5])
    raise ValueError(
        f"{name}: the integer target has {len(values)} distinct values ({shown}, ..., {int(values[-1])}), not "
        f"numbered 0..K-1 as class labels are, so it is not read as {len(values)} classes; pass task=regression for "
        "a numeric target (a price, a count), or task=classification to make every distinct value a class"
    )


def _mean_std(x: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (1 where it is 0) that do not overflow: the values are divided by their largest
    magnitude first, so a column of ~1e200 standardises like a column of ~1 (``x.std()`` would square it to inf).

    >>> mu, sd = _mean_std(np.array([[1e200], [3e200]]), 0)
    >>> [round(float(v) / 1e200, 9) for v in (mu[0], sd[0])]
    [2.0, 1.0]
    """
    scale = np.abs(x).max(axis=axis, keepdims=axis is not None) if x.size else np.ones(())
    scale = np.where(scale > 0, scale, 1.0)
    unit = x / scale
    mu = unit.mean(axis=axis) * np.squeeze(scale, axis) if axis is not None else unit.mean() * scale
    sd = unit.std(axis=axis) * np.squeeze(scale, axis) if axis is not None else unit.std() * scale
    return mu, np.where(sd > 0, sd, 1.0)


def _labels(y: np.ndarray) -> list[Any]:
    """Class labels as Python values; integer-valued floats (a CSV column of 0/1, read as numbers) as ints, so the
    saved classes read ``3``, not ``3.0``."""
    if y.ndim != 1:
        raise ValueError(f"classification needs one class label per sample, but the target has shape {y.shape}; pass "
                         "task='regression' for several target values per sample")
    values = y.tolist()
    if y.dtype.kind == "f" and all(float(v).is_integer() for v in values):
        return [int(v) for v in values]
    if y.dtype.kind == "S":  # bytes (h5py's strings): text labels, saved and predicted as 'cat', not "b'cat'"
        return [v.decode("utf-8", "replace") for v in values]
    return values


def _label_key(c: Any) -> tuple[int, Any]:
    return (0, c) if isinstance(c, (int, float)) else (1, str(c))


def _from_builtin(entry: DatasetInfo, *, seed: int, val: float, task: str | None) -> TrainData:
    if task is not None and task != entry.task:
        raise ValueError(f"data={entry.name!r} is a {entry.task} dataset; task={task!r} does not fit it")
    x, y = entry.load()
    tr, va = _split_indices(len(x), seed=seed, val=val)
    return _arrays_to_data(x[tr], y[tr], x[va], y[va], task=entry.task, name=entry.name, source="builtin",
                           image_shape=entry.image_shape)


# ------------------------------------------------------------------------------------------- files
class _Table(NamedTuple):
    """A CSV/NPZ file read: features ``x`` (``(N, ...)``), target ``y``, and what the YAML/split code needs."""

    x: np.ndarray
    y: np.ndarray
    raw_y: np.ndarray | None = None  # a CSV target column as text (to read train and val labels alike)
    columns: list[str] | None = None  # CSV feature names (to match a val file's columns to the train file's)
    target_name: str | list[str] | None = None  # a list for several target columns
    image_shape: tuple[int, ...] | None = None  # (C, H, W) for an NPZ of images (N, C, H, W)
    notes: tuple[str, ...] = ()
    index: str | None = None  # the header of the first column, left out as pandas' index (None: none was)
    #: the shape of one sample of an NPZ's x of 3 or more dimensions, flattened for the model: the log names its
    #: features by position, ``(row, col)``, not by flattened index (None for a table)
    sample_shape: tuple[int, ...] | None = None


def _file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in TABULAR_SUFFIXES:
        return "table"
    if suffix == ".npz":
        return "npz"
    return "yaml" if suffix in YAML_SUFFIXES else "text"


def _from_file(path: Path, *, seed: int, val: float, task: str | None, target: str | int | list[str | int] | None,
               seq_len: int, drop: tuple[str, ...] = ()) -> TrainData:
    kind = _file_kind(path)
    if kind == "yaml":
        return _from_yaml(path, seed=seed, val=val, task=task, target=target, seq_len=seq_len, drop=drop)
    if drop and kind != "table":
        raise ValueError(f"drop={list(drop)} names CSV columns to leave out, but {path.name} is not a CSV/TSV file")
    if kind in ("table", "npz"):
        if task == "lm":
            raise ValueError(f"task='lm' needs a plain-text file, not {path.name}")
        t = _read_table(path, target, task, drop=drop)
        tr, va = _split_indices(len(t.x), seed=seed, val=val)
        x_tr, x_va = t.x[tr], t.x[va]  # (once: the constant-column note reads them too)
        out = _arrays_to_data(x_tr, t.y[tr], x_va, t.y[va], task=task, name=path.name,
                              source=path.suffix.lower().lstrip("."), image_shape=t.image_shape)
        out.info.notes.extend(t.notes)
        out.info.notes.extend(_unseen_val_labels(out, path.name, split=True))
        if task is None and out.info.task == "regression":
            out.info.notes.extend(_numbered_labels_note(path.name, t.y, t.target_name))
        out.info.notes.extend(_constant_note(path.name, x_tr, x_va, t.columns, shape=t.sample_shape))
        out.info.features, out.info.target = t.columns, t.target_name if t.columns is not None else None
        return out
    _check_readable_suffix(path, f"data={str(path)!r}")
    if task not in (None, "lm"):
        raise ValueError(f"data={str(path)!r} is read as plain text (character-level LM); task={task!r} needs a "
                         "CSV/NPZ file")
    _no_target(target, f"data={str(path)!r} is read as plain text (character-level LM: the target is the next "
                       "character)")
    text = _read_text(path)
    if not text:
        raise ValueError(f"{path.name} is empty (no characters of text): a character-level LM needs a text file "
                         f"of at least {2 * (seq_len + 1)} characters for seq_len={seq_len}")
    n_val = max(seq_len + 1, round(val * len(text)))
    if len(text) - n_val < seq_len + 1 <= len(text) // 2:
        # the text holds a window for each part: it is val that leaves too little for training
        most = math.floor((len(text) - seq_len - 1) / len(text) * 100) / 100
        raise ValueError(
            f"{path.name}: val={val} leaves {len(text) - n_val} characters of its {len(text)} for training, too few "
            f"for one window of seq_len={seq_len} (+1); use a smaller val (at most {most}) or a smaller seq_len"
        )
    if len(text) - n_val < seq_len + 1:
        raise ValueError(
            f"{path.name}: {len(text)} characters are too few for one window of seq_len={seq_len} (+1) in both the "
            f"train and the validation part; use a longer text or a smaller seq_len"
            + _largest_seq_len(min(len(text) // 2, len(text) - round(val * len(text))) - 1, f" with val={val}")
        )
    out = _text_data(text[:-n_val], text[-n_val:], seq_len=seq_len, name=path.name)
    out.info.notes.extend(_table_as_text_note(path.name, text))
    asked = round(val * len(text))
    if n_val > asked:  # a val too small for one window is enlarged to one: say so, the split is not what was asked
        out.info.notes.append(
            f"{path.name}: val={val} gives {asked} characters, fewer than one window of seq_len={seq_len} (+1): the "
            f"validation part is the last {n_val} characters ({n_val / len(text):.1%} of the text); raise val or "
            "lower seq_len to change it")
    return out


# Suffixes of formats lrkit.train does not read: as "any other suffix is text", a JSON file would silently train a
# character-level LM on its braces and quotes, and a binary file that happens to decode would train one on bytes.
UNSUPPORTED_SUFFIXES = (".json", ".jsonl", ".ndjson", ".parquet", ".feather", ".arrow", ".pkl", ".pickle", ".pt",
                        ".pth", ".ckpt", ".safetensors", ".npy", ".h5", ".hdf5", ".xlsx", ".xls", ".zip", ".gz", ".bz2",
                        ".xz", ".zst", ".tar")


def _table_as_text_note(name: str, text: str) -> list[str]:
    """A note where a file read as plain text looks like a table — its first lines (at least 3) split on one
    separator into the same number (>= 2) of fields, those after the first line numbers (all of them for
    whitespace, 80% otherwise) — as ``np.savetxt``'s ``.txt`` or a renamed CSV does: it trains a character-level LM
    of its digits, which is rarely what was meant."""
    head = text[:100_000].split("\n")
    if len(text) > 100_000:
        head = head[:-1]  # its last line may be cut short
    lines = [ln for ln in head[:50] if ln.strip()]
    if len(lines) < 3:
        return []
    for sep, what, share, how in ((",", "comma", 0.8, "give it a .csv name"), ("\t", "tab", 0.8, "give it a .tsv name"),
                                  (";", "semicolon", 0.8, "give it a .csv name"),
                                  (None, "space", 1.0, "rewrite it as a .csv: pd.read_csv(path, sep=r'\\s+')"
                                                       ".to_csv('data.csv', index=False)")):
        rows = [ln.split(sep) for ln in lines]
        width = len(rows[0])
        cells = [c for row in rows[1:] for c in row]
        if width < 2 or any(len(row) != width for row in rows) or sum(map(is_float_text, cells)) < share * len(cells):
            continue
        return [f"{name} looks like a table ({width} {what}-separated columns of numbers on each of its first "
                f"{len(lines)} lines), but it is read as plain text: a character-level LM of its characters. To "
                f"train on its columns, {how} (a .txt file is never read as a table)"]
    return []


def _check_readable_suffix(path: Path, what: str) -> None:
    """A file whose suffix names a format lrkit.train does not read is an error, not character-level LM data."""
    suffix = path.suffix.lower()
    # Code, not data: a newcomer may give data= the task file of `lrkit find` (or a notebook); read as text, it would
    # silently train a character-level LM on the source.
    if suffix == ".py":
        raise ValueError(f"{what}: {path.name} is a Python file, not data. A task file for the LR range test runs "
                         f"with `lrkit find {shlex.quote(str(path))}`; a model factory in it goes in "
                         f"{shlex.quote(f'model={path}:factory_name')} (with data= naming the data, e.g. "
                         "data=digits); a text corpus for a character-level LM should be a .txt file")
    if suffix == ".ipynb":
        raise ValueError(f"{what}: {path.name} is a Jupyter notebook, not data. Put a task in a .py file for "
                         "`lrkit find my_task.py`, a model factory in a .py file for model=my_models.py:factory_name; "
                         "a text corpus for a character-level LM should be a .txt file")
    if suffix == ".npy":
        raise ValueError(f"{what}: {path.name} is a single .npy array; save the features and targets together with "
                         "np.savez(path.npz, x=features, y=targets) and pass the .npz")
    if suffix in UNSUPPORTED_SUFFIXES:
        raise ValueError(f"{what}: {suffix} files are not read by lrkit.train; convert it to CSV (.csv/.tsv) or NPZ "
                         "(np.savez(path, x=features, y=targets)), or pass a torch Dataset — or, to train a "
                         "character-level LM on its text, give it a .txt name")


def _decode(data: bytes, what: str, *, table: bool = False) -> str:
    """``data`` as UTF-8 (a byte-order mark dropped), or a ``ValueError`` naming the file, the line and the byte
    (``table``: a CSV/TSV file, for which a spreadsheet's export option is named too); NUL bytes, which no text
    holds, are an error too (:func:`_nul_error`)."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                       (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):  # Excel's "Unicode Text", Notepad's "Unicode": iconv -f latin1 would make NUL bytes
            how = ("spreadsheets: 'CSV UTF-8'; or " if table else "") + f"iconv -f {codec.lower()} -t utf-8"
            raise ValueError(f"{what} is {codec} (it starts with a {codec} byte-order mark), not UTF-8; save it as "
                             f"UTF-8 ({how}). lrkit.train reads .csv/.tsv, .npz, data .yaml and UTF-8 text files")
    if b"\x00" in data:  # UTF-16 without a byte-order mark decodes as UTF-8 into text (or cells) of NULs
        raise _nul_error(data, what, table=table)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        how = "spreadsheets: 'CSV UTF-8'; or iconv -f latin1 -t utf-8" if table else "iconv -f latin1 -t utf-8"
        raise ValueError(f"{what} is not UTF-8 (byte 0x{data[e.start]:02x} on line {line}); save it as UTF-8 "
                         f"({how}). lrkit.train reads .csv/.tsv, .npz, data .yaml and UTF-8 text files") from None


def _nul_error(data: bytes, what: str, *, table: bool = False) -> ValueError:
    """The error for a file holding NUL bytes, which no UTF-8 text or CSV holds: UTF-16 text saved without a
    byte-order mark (every other byte of its ASCII characters NUL: named with the ``iconv`` that converts it), or a
    binary file (the line of the first NUL named).

    >>> str(_nul_error("a,b".encode("utf-16-le"), "d.csv"))[:67]
    'd.csv holds NUL bytes: it looks like UTF-16 (little-endian) without'
    """
    head = data[:4096 - 4096 % 2]
    for order, offset in (("le", 1), ("be", 0)):
        if len(head) >= 4 and head[offset::2].count(0) >= 0.9 * (len(head) // 2) and 0 not in head[1 - offset::2]:
            how = ("spreadsheets: 'CSV UTF-8'; or " if table else "") + f"iconv -f utf-16{order} -t utf-8"
            endian = "little-endian" if order == "le" else "big-endian"
            return ValueError(f"{what} holds NUL bytes: it looks like UTF-16 ({endian}) without a byte-order mark, "
                              f"not UTF-8; save it as UTF-8 ({how}). lrkit.train reads .csv/.tsv, .npz, data .yaml "
                              "and UTF-8 text files")
    line = data.count(b"\n", 0, data.index(b"\x00")) + 1
    return ValueError(f"{what} holds NUL bytes (the first on line {line}): it is a binary file, not text. "
                      "lrkit.train reads .csv/.tsv, .npz, data .yaml and UTF-8 text files")


def _read_text(path: Path) -> str:
    # utf-8-sig: a byte-order mark is not a character of the text; newlines (\r\n, \r) are read as \n
    return _decode(path.read_bytes(), f"data={str(path)!r}").replace("\r\n", "\n").replace("\r", "\n")


def _read_table(path: Path, target: str | int | list[str | int] | None, task: str | None = None, *,
                reference: Sequence[float] = (), drop: Sequence[str] = (), index_of: str | None = None) -> _Table:
    """A CSV/TSV (or NPZ) file as features and target. ``index_of``: the other file of a train/val pair, whose
    nameless first column was left out as pandas' index, so this file's nameless first column is left out too,
    whatever it holds (a ``pd.concat`` of frames repeats index labels).

    ``target`` a list (two or more columns, see :func:`_target_arg`): several regression targets, ``y`` of shape
    ``(N, K)`` in the list's order, each column read as one numeric target is (:func:`_target_column`)."""
    several = isinstance(target, list)
    if several and task == "classification":
        raise ValueError(f"task='classification' with target={target!r}: several target columns train a regression "
                         "(a model output per column, scored by RMSE); leave task= out (or pass task=regression), or "
                         "give one target column to classify")
    if path.suffix.lower() == ".npz":
        return _read_npz(path, target, task)
    content = _decode(path.read_bytes(), path.name, table=True)  # -sig: a spreadsheet's byte-order mark is not a name
    notes: tuple[str, ...] = ()
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        delimiter = _sniff_delimiter(content)
        if delimiter != ",":
            notes = (f"{path.name}: read as {delimiter!r}-separated (its header has no commas between fields)",)
    # newline="": a bare \r (Excel for Mac's "CSV (Macintosh)") ends a line too, as the csv module asks
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    lines: list[int] = []  # the file line each row starts on (blank lines are skipped, a quoted cell may span lines)
    try:
        start = 1
        for r in reader:
            if r and any(c.strip() for c in r):
                rows.append(r)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as e:  # a cell above the csv module's field size limit, ...: the file and the line, named
        raise ValueError(f"{path.name}: line {reader.line_num} cannot be read as {delimiter!r}-separated values "
                         f"({e})") from None
    if rows and all(is_float_text(h) for h in rows[0]) and not _numbered_header(rows[0]):
        # np.savetxt writes no header: the first sample would become the column names and be lost
        names = delimiter.join([*(f"x{j + 1}" for j in range(len(rows[0]) - 1)), "target"])
        raise ValueError(f"{path.name}: the first line {delimiter.join(rows[0])!r} is all numbers, but lrkit.train "
                         "reads the first line as the column names (header row): the file seems to have no header, "
                         f"and its first sample would be lost. Add a header line, e.g. {names!r}")
    words = rows[0][0].split() if rows and len(rows[0]) == 1 else []
    if len(words) > 1 and len(rows) > 1 and all(len(r) == 1 and len(r[0].split()) == len(words) for r in rows[1:]):
        # R's write.table(), np.savetxt(), aligned text: one field per line, which read as one column would be "no
        # feature columns besides the target 'a b y'"
        numbers = all(is_float_text(w) for w in words)
        how = ("pd.read_csv(path, sep=r'\\s+', header=None, names=[...]).to_csv(new_path, index=False) with a name "
               "per column" if numbers else "pd.read_csv(path, sep=r'\\s+').to_csv(new_path, index=False)")
        raise ValueError(f"{path.name}: the header {rows[0][0]!r} is one field, but it and every row split into "
                         f"{len(words)} fields at spaces: the file looks space-separated"
                         f"{' and has no header row' if numbers else ''}, which lrkit.train does not read; save it "
                         f"comma-separated with a header row (pandas: {how})")
    if len(rows) < 3:
        found = ("an empty file", "only the header row", "the header row and 1 data row")[len(rows)]
        raise ValueError(f"{path.name}: needs a header row and at least 2 data rows, found {found}")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    lines = lines[1:]  # of the body rows, as the messages below name them
    for i, r in zip(lines, body):
        if len(r) != len(header):
            comment = (f" (line 1, {delimiter.join(rows[0])[:40]!r}, looks like a comment and was read as the header: "
                       "remove the lines starting with '#' above the header)"
                       if rows[0][0].lstrip().startswith("#") else "")
            raise ValueError(f"{path.name}: line {i} has {len(r)} fields, the header has {len(header)}{comment}")
    cols = list(zip(*body))
    for j, col in enumerate(cols):  # a separator at the end of every line (spreadsheet exports) makes such a column
        if not header[j] and not any(v.strip() for v in col):
            raise ValueError(f"{path.name}: column {j + 1} has no name and no values (a trailing {delimiter!r} at the "
                             "end of every line?); remove it")
    if isinstance(target, list):
        ts = [_column_index(header, c, path.name) for c in target]
        twice = next((k for k in range(len(ts)) if ts[k] in ts[:k]), None)
        if twice is not None:
            first = target[ts.index(ts[twice])]
            raise ValueError(f"{path.name}: target={target!r} names column {ts[twice]} ({header[ts[twice]]!r}) twice "
                             f"({first!r} and {target[twice]!r}); give each target column once")
    else:
        ts = [_column_index(header, target, path.name)]
    t = ts[0]
    # pandas shows a nameless column as 'Unnamed: <its 0-based number>' (pd.read_csv): drop= takes that name for it
    unnamed = {f"Unnamed: {j}": j for j, h in enumerate(header) if not h}
    for name in drop:  # columns that are no features (an ID, a note): named, never guessed
        if name not in header and name not in unnamed:
            comma = [h for h in header if "," in h and name in (p.strip() for p in h.split(","))]
            # drop="id,size, m2" was split at its commas: a name holding one is given in a list
            hint = (f" ({comma[0]!r} holds a comma, which separates the names of drop='a,b': give drop as a list, "
                    f"drop=[..., {comma[0]!r}])" if comma else did_you_mean(name, header, ignore_case=True))
            shown = ", ".join(repr(h) if "," in h else h for h in header)
            raise ValueError(f"{path.name}: drop={name!r} is not a column.{hint} Columns: {shown}")
        if (header.index(name) if name in header else unnamed[name]) in ts:
            if several:
                raise ValueError(f"{path.name}: drop={name!r} is one of the target columns "
                                 f"{[header[j] for j in ts]}; drop names feature columns to leave out (target= picks "
                                 "the targets)")
            raise ValueError(f"{path.name}: drop={name!r} is the target column; drop names feature columns to leave "
                             "out (target= picks the target)")
    dropped = {j for j, h in enumerate(header) if h in drop} | {unnamed[n] for n in drop if n not in header}
    index = _pandas_index(header, cols, ts, dropped)
    paired = index is None and index_of is not None and 0 not in ts and 0 not in dropped and _nameless(header[0])
    left_out = ""  # what the log (and a "no feature columns" error) says of pandas' index
    if index is not None or paired:  # pandas' index, as df.to_csv(path) writes it: row labels, not a feature
        index = 0
        dropped.add(index)
        shown = "with no name" if not header[index] else f"{header[index]!r}"
        held = (f"is left out, as {index_of}'s column 1 is: pandas' index" if paired else
                "holds a distinct whole number per row, as pandas writes its index (df.to_csv without index=False): "
                "left out")
        left_out = (f"column {index + 1} ({shown}) {held}, as row labels rather than a feature (to train on it, give "
                    "it a name in the header)")
        notes += (f"{path.name}: {left_out}",)
    features = []
    for j, col in enumerate(cols):
        if j in ts or j in dropped:
            continue
        try:
            features.append([float(v) for v in col])
        except ValueError:
            line, bad = next((i, v) for i, v in zip(lines, col) if not is_float_text(v))
            if not bad.strip():
                raise ValueError(f"{path.name}: feature column {header[j]!r} is empty on line {line}; fill in or drop "
                                 "the rows with missing values") from None
            if bad.strip().lower() in _MISSING_MARKERS and all(is_float_text(v) or v.strip().lower()
                                                               in _MISSING_MARKERS for v in col):
                missing = sum(not is_float_text(v) for v in col)
                raise ValueError(f"{path.name}: feature column {header[j]!r} holds {bad!r} on line {line}, a missing "
                                 f"value ({missing} cell(s) of the column); fill in or drop the rows with missing "
                                 f"values (pandas: df = pd.read_csv(path, na_values=[{bad.strip()!r}]).dropna()), or "
                                 f"leave the column out with drop={header[j]!r}") from None
            if delimiter != "," and _DECIMAL_COMMA.fullmatch(bad.strip()):
                where = f"feature column {header[j]!r}"
                raise ValueError(_decimal_comma_message(path.name, where, bad, line)) from None
            if _formatted_number(bad) is not None:
                where = f"feature column {header[j]!r}"
                raise ValueError(_formatted_number_message(path.name, where, header[j], bad, line)) from None
            if all(is_float_text(v) or v.strip().lower() in ("true", "false") for v in col):
                # pandas writes a bool column as True/False, a spreadsheet as TRUE/FALSE
                raise ValueError(
                    f"{path.name}: feature column {header[j]!r} holds {bad!r} on line {line}, a True/False column "
                    f"that lrkit.train does not read as numbers; save it as 1/0 (pandas: df[{header[j]!r}] = "
                    f"df[{header[j]!r}].astype(int)), or leave it out with drop={header[j]!r}"
                ) from None
            raise ValueError(
                f"{path.name}: feature column {header[j]!r} holds a non-numeric value {bad!r} on line {line}; encode "
                f"it as numbers (a text category: one 0/1 column per category), or leave it out with "
                f"drop={header[j]!r} (an ID, a note)"
            ) from None
    if several:  # each column a numeric target, read as one is under task=regression
        y: np.ndarray = np.column_stack([_target_column(path.name, header[j], cols[j], delimiter, "regression", (),
                                                        several=True, lines=lines)[0] for j in ts])
        raw: np.ndarray | None = None
    else:
        y, raw_y = _target_column(path.name, header[t], cols[t], delimiter, task, reference, lines=lines)
        raw = np.array(raw_y)
    if not features:
        why = f"; {left_out}" if left_out else ""
        what = f"targets {[header[j] for j in ts]}" if several else f"target {header[t]!r}"
        raise ValueError(f"{path.name}: no feature columns besides the {what}{why}")
    x = np.array(features, dtype=np.float64).T
    kept = [j for j in range(len(header)) if j not in ts and j not in dropped]
    columns = [header[j] for j in kept]
    for k, j in enumerate(ts):  # the features once, then each target column, named
        _check_finite(x if k == 0 else x[:0], y[:, k] if several else y, path.name, columns, header[j], lines)
    notes += _id_notes(path.name, header, cols, kept, x)
    name: str | list[str] = [header[j] for j in ts] if several else header[t]
    return _Table(x, y, raw, columns, name, None, notes, header[index] if index is not None else None)


def _target_column(fname: str, column: str, col: Sequence[str], delimiter: str, task: str | None,
                   reference: Sequence[float], *, several: bool = False,
                   lines: Sequence[int] | None = None) -> tuple[np.ndarray, list[str]]:
    """A CSV's target column ``col`` (its cells as text): ``(y, the cells stripped)`` — numbers where every cell is
    one, else the text (class labels). An empty cell, a decimal comma, a formatted number or a text cell in a numeric
    target is a ``ValueError`` naming the column and the line. ``several``: one of several target columns (a
    regression, ``task='regression'``), whose messages offer no reading as class labels. ``reference``: see
    :func:`_check_text_target`. ``lines``: the file line of each cell (default: the header on line 1, a cell a line)."""
    raw_y = [v.strip() for v in col]
    lines = range(2, len(raw_y) + 2) if lines is None else lines
    empty = [i for i, v in zip(lines, raw_y) if not v]
    if empty:
        raise ValueError(f"{fname}: the target column {column!r} is empty on line {empty[0]} ({len(empty)} "
                         "empty cells); drop the rows without a target")
    numeric = [is_float_text(v) for v in raw_y]
    if not all(numeric) and delimiter != "," and task != "classification":
        # '1,05' in a ';'-separated export (a spreadsheet in a decimal-comma locale) is a number, not a class label:
        # read as text, every price would become a class of its own
        commas = [(i, v) for i, v, ok in zip(lines, raw_y, numeric) if not ok]
        if all(_DECIMAL_COMMA.fullmatch(v) for _, v in commas):
            line, bad = commas[0]
            raise ValueError(_decimal_comma_message(fname, f"the target column {column!r}", bad, line,
                                                    labels=not several))
    if not all(numeric) and task != "classification":
        # '200,000', '$200.50', '12.5%' (a spreadsheet's formatted numbers) read as text would make every price a
        # class of its own; an error when the numbers they stand for would be read as a regression target
        texts = [(i, v) for i, v, ok in zip(lines, raw_y, numeric) if not ok]
        parsed = [_formatted_number(v) for _, v in texts]
        if all(p is not None for p in parsed):
            values = [*reference, *(float(v) for v, n in zip(raw_y, numeric) if n), *parsed]
            if task == "regression" or _infer_task(np.asarray(values, dtype=np.float64), None) == "regression":
                line, bad = texts[0]
                raise _TextTargetError(_formatted_number_message(fname, f"the target column {column!r}",
                                                                 column, bad, line, labels=not several))
    if not all(numeric):
        own = [float(v) for v, n in zip(raw_y, numeric) if n]
        _check_text_target(fname, column, raw_y, numeric, task, [*reference, *own], several=several, lines=lines)
    y: np.ndarray = np.array([float(v) for v in raw_y]) if all(numeric) else np.array(raw_y)
    return y, raw_y


def _whole_numbers(col: Sequence[str]) -> list[int] | None:
    """The cells of ``col`` as ints when every one is a plain whole number (``12``, not ``12.5`` or ``1e3``)."""
    try:
        return [int(v) for v in col]
    except ValueError:
        return None


_UNNAMED = re.compile(r"Unnamed: \d+")  # pandas' name for a nameless column read back (pd.read_csv)
# a name that reads as a row ID: "id", "customer_id", "row index", "PassengerId", "customerID"
_ID_NAME = re.compile(r"(?i:(?:^|[_\s.-])(?:id|idx|index))$|[a-z]I[Dd]$")


def _nameless(name: str) -> bool:
    """A column header with no name, as a CSV holds it (``''``) or pandas names it when read back (``Unnamed: 0``)."""
    return name == "" or _UNNAMED.fullmatch(name) is not None


def _pandas_index(header: Sequence[str], cols: Sequence[Sequence[str]], targets: Sequence[int],
                  dropped: set[int]) -> int | None:
    """The column pandas' ``df.to_csv(path)`` writes for the index, or ``None``: the first column, with no name (or
    pandas' ``Unnamed: 0`` for one), holding a distinct whole number on every row (``0, 1, 2, ...``, or a shuffled
    or sliced frame's labels), and no target (``targets``: the target columns' indexes)."""
    if 0 in targets or 0 in dropped or not _nameless(header[0]):
        return None
    ids = _whole_numbers(cols[0])
    return 0 if ids is not None and len(set(ids)) == len(ids) else None


def _id_notes(fname: str, header: Sequence[str], cols: Sequence[Sequence[str]], feature_cols: Sequence[int],
              x: np.ndarray) -> tuple[str, ...]:
    """Log notes for feature columns that look like row IDs (a distinct whole number per row, named like an ID or
    numbering the rows, 0..N-1 or 1..N in any order): trained on as features they only let the model memorise rows.
    Said, not dropped (``drop=`` leaves one out). ``x`` holds the values of the columns ``feature_cols`` of
    ``cols``, read: a column is ruled out on them (vectorised) before its cells are read as whole numbers, so a large
    file's columns of counts or measurements cost next to nothing here."""
    notes: list[str] = []
    n = len(x)
    if n < 20:
        return ()
    for k, j in enumerate(feature_cols):
        v = x[:, k]
        lo, hi = float(v.min()), float(v.max())
        # n distinct whole numbers span at least n - 1; beyond 2**53 a float does not tell whole numbers apart
        exact = max(abs(lo), abs(hi)) < 2**53
        if exact and (hi - lo < n - 1 or not np.array_equal(v, np.floor(v)) or len(np.unique(v)) != n):
            continue
        ids = _whole_numbers(cols[j])
        if ids is None or len(set(ids)) != len(ids):
            continue
        # named like an ID, or the row numbers themselves (0..N-1 or 1..N in any order: not a year or a time axis)
        if _ID_NAME.search(header[j]) or (min(ids) in (0, 1) and max(ids) - min(ids) == len(ids) - 1):
            notes.append(f"{fname}: column {header[j]!r} holds a distinct whole number on every row, as an ID does: "
                         "it is trained on as a feature, which can only memorise rows; if it is an ID, leave it out "
                         f"with drop={header[j]!r}")
    return tuple(notes)


#: :func:`_constant_note` names up to this many constant features one by one; with more it counts them and names
#: the first :data:`_CONSTANT_SHOWN` (the blank border of an (N, H, W) image .npz is dozens of flattened pixels).
_CONSTANT_NAMED = 8
_CONSTANT_SHOWN = 5


def _constant_note(fname: str, x_tr: np.ndarray, x_va: np.ndarray, columns: Sequence[str] | None, *,
                   shape: tuple[int, ...] | None = None) -> list[str]:
    """A log note for features that hold one value on the train split: they teach the model nothing, and
    standardised with the train split's statistics (a spread of 0 is taken as 1) a value that differs elsewhere
    enters the model unscaled.

    Up to :data:`_CONSTANT_NAMED` such features are named one by one (with the ``drop=`` that leaves CSV columns
    out); with more, the note says how many of the features there are and names the first few, so a 28x28 image's
    blank border is one short line rather than a list of every pixel. With ``shape`` (one sample's shape before it
    was flattened: an (N, H, W) .npz) a feature is named by its position, ``(row, col)``.

    >>> x = np.zeros((4, 12)); x[:, 10:] = np.arange(8).reshape(4, 2)
    >>> print(_constant_note("img.npz", x, x[:0], None)[0].replace(": they", ":\\n they"))
    img.npz: 10 of the 12 features of x hold one value on the train split (0-based: 0, 1, 2, 3, 4 and 5 more):
     they teach the model nothing
    """
    if x_tr.ndim != 2 or not len(x_tr):
        return []
    const = np.flatnonzero(np.all(x_tr == x_tr[:1], axis=0))
    if not len(const):
        return []
    one = len(const) == 1
    if columns is not None:
        names = [repr(columns[j]) for j in const]
    elif shape is not None and math.prod(shape) == x_tr.shape[1]:
        names = [str(tuple(int(i) for i in np.unravel_index(int(j), shape))) for j in const]
    else:
        names, shape = [str(int(j)) for j in const], None
    where = ("0-based" if shape is None else
             f"0-based ({'row, col' if len(shape) == 2 else 'index'}) of x's {'x'.join(map(str, shape))} values")
    moved = [names[i] for i, j in enumerate(const) if len(x_va) and np.any(x_va[:, j] != x_tr[0, j])]
    unseen = "where the model meets values it never saw in training (unscaled: a spread of 0 is taken as 1)"
    if len(const) > _CONSTANT_NAMED:  # many: counted, a few named
        what = (f"{len(const)} of the {x_tr.shape[1]} feature columns" if columns is not None
                else f"{len(const)} of the {x_tr.shape[1]} features of x")
        shown = first_few(names, _CONSTANT_SHOWN, quote=False)
        which = f"({shown})" if columns is not None else f"({where}: {shown})"
        fix = " (drop= with their names leaves them out)" if columns is not None else ""
        also = (f"; {len(moved)} of them {'differs' if len(moved) == 1 else 'differ'} on the validation split "
                f"({first_few(moved, _CONSTANT_SHOWN, quote=False)}), {unseen}" if moved else "")
        return [f"{fname}: {what} hold one value on the train split {which}: they teach the model nothing{fix}{also}"]
    shown = ", ".join(names)
    what = (f"column{'' if one else 's'} {shown}" if columns is not None
            else f"feature{'' if one else 's'} {shown} ({where}) of x")
    also = (f"; {', '.join(moved)} {'differs' if len(moved) == 1 else 'differ'} on the validation split, {unseen}"
            if moved else "")
    fix = ""
    if columns is not None:
        dropped = repr(columns[const[0]]) if one else repr([columns[j] for j in const])
        fix = f" (drop={dropped} leaves {'it' if one else 'them'} out)"
    return [f"{fname}: {what} {'holds' if one else 'hold'} one value on the train split: "
            f"{'it teaches' if one else 'they teach'} the model nothing{fix}{also}"]


#: cells that spreadsheets, R and databases write for a missing value (numpy reads 'nan' itself: a NaN error)
_MISSING_MARKERS = frozenset({"na", "n/a", "#n/a", "null", "none", "?", "-", "--", "missing", ".", "nil"})


class _TextTargetError(ValueError):
    """A numeric target column with text cells (see :func:`_check_text_target`)."""


def _check_text_target(fname: str, column: str, raw_y: Sequence[str], numeric: Sequence[bool], task: str | None,
                       reference: Sequence[float], *, several: bool = False,
                       lines: Sequence[int] | None = None) -> None:
    """A target column with text cells is read as class labels, every distinct value a class. That is right for
    labels (``cat``/``dog``, or ``0``/``1``/``x``), but a numeric target with a missing-value marker (``NA``, ``?``)
    would become a classification with as many classes as prices: an error unless ``task='classification'``.
    ``reference``: the numeric targets that say whether the column is a regression target (this file's numeric
    cells, plus the train file's targets for a val file). ``several``: one of several target columns, a regression
    whose every column holds numbers (no reading as class labels is offered). ``lines``: the file line of each cell."""
    if task == "classification":
        return
    lines = range(2, len(raw_y) + 2) if lines is None else lines
    ref = np.asarray(reference, dtype=np.float64)
    if task == "regression" or (ref.size and _infer_task(ref, None) == "regression"):
        bad = [(i, v) for i, v, ok in zip(lines, raw_y, numeric) if not ok]
        if several:
            raise _TextTargetError(
                f"{fname}: the target column {column!r} holds text where numbers are expected: {len(bad)} cell(s), "
                f"first {bad[0][1]!r} on line {bad[0][0]}; several target columns train a regression, which reads "
                "numbers only: drop or fill in those rows (missing values?), or leave the column out of target="
            )
        if not any(numeric) and not ref.size:  # task=regression on a column of labels ('yes'/'no'): no number at all
            raise _TextTargetError(
                f"{fname}: task='regression' needs a numeric target, but the target column {column!r} holds only "
                f"text ({bad[0][1]!r} on line {bad[0][0]}); leave task= out (or pass task='classification') to read "
                "its values as class labels, or pick a numeric column with target="
            )
        raise _TextTargetError(
            f"{fname}: the target column {column!r} holds text where numbers are expected: {len(bad)} cell(s), first "
            f"{bad[0][1]!r} on line {bad[0][0]}; drop or fill in those rows (missing values?), or pass "
            "task='classification' to read every distinct value as a class label"
        )
    bad = [(i, v) for i, v, ok in zip(lines, raw_y, numeric) if not ok]
    if task is None and any(numeric) and all(v.lower() in _MISSING_MARKERS for _, v in bad):
        # numeric class labels (0/1) with 'NA' or '?' for the rows without one: read as text, the marker would be a
        # class of its own, trained on and scored
        raise _TextTargetError(
            f"{fname}: the target column {column!r} holds {bad[0][1]!r} on line {bad[0][0]}, a missing value "
            f"({len(bad)} cell{'s' * (len(bad) != 1)}) among numeric labels; drop the rows without a label "
            f"(pandas: df = pd.read_csv(path, "
            f"na_values=[{bad[0][1]!r}]).dropna(subset=[{column!r}])), or pass task='classification' to train "
            f"{bad[0][1]!r} as a class of its own"
        )


def _sniff_delimiter(content: str) -> str:
    """``,`` unless the header row splits into more fields on ``;``, a tab or ``|`` (European spreadsheets write
    ``;``-separated ".csv" files). Ties keep the comma."""
    first = next((line for line in content.splitlines() if line.strip()), "")
    best, fields = ",", len(next(csv.reader([first], delimiter=","), []))
    for d in (";", "\t", "|"):
        n = len(next(csv.reader([first], delimiter=d), []))
        if n > fields:
            best, fields = d, n
    return best


def _check_finite(x: np.ndarray, y: np.ndarray, fname: str, columns: Sequence[str] | None = None,
                  target: str = "target", lines: Sequence[int] | None = None) -> None:
    """NaN or infinite cells would make every loss NaN (and the standardisation with them): name the first one
    (``lines``: a CSV's file line of each row; default the header on line 1, a row a line)."""
    line = (lambda row: row + 2) if lines is None else (lambda row: lines[row])
    bad_x = ~np.isfinite(x)
    if bad_x.any():
        row, col = (int(v) for v in np.argwhere(bad_x)[0])
        where = f"column {columns[col]!r} on line {line(row)}" if columns is not None else f"row {row}, column {col}"
        raise ValueError(f"{fname}: the features hold {int(bad_x.sum())} NaN/infinite value(s), first in {where} "
                         f"({x[row, col]}); drop or fill in those rows")
    if y.dtype.kind in "fc":
        bad_y = ~np.isfinite(y.reshape(len(y), -1)).all(axis=1)
        if bad_y.any():
            row = int(np.argmax(bad_y))
            where = f"line {line(row)}" if columns is not None else f"row {row}"
            what = f"target column {target!r}" if columns is not None else "target"
            raise ValueError(f"{fname}: the {what} holds {int(bad_y.sum())} NaN/infinite value(s), first on {where}; "
                             "drop those rows")


#: a number written with a decimal comma ('0,5', '-12,75', '1.234,5'), as spreadsheets in many locales export it
_DECIMAL_COMMA = re.compile(r"[+-]?(\d{1,3}(\.\d{3})+|\d*),\d+")


def _decimal_comma_message(fname: str, where: str, value: str, line: int, *, labels: bool = False) -> str:
    fix = ", or pass task=classification if they are class labels" if labels else ""
    return (f"{fname}: {where} holds {value.strip()!r} on line {line}, a number with a decimal comma; lrkit.train "
            f"reads '.' as the decimal point: save the file with '.' decimals (pandas: pd.read_csv(path, sep=';', "
            f"decimal=',').to_csv(new_path, index=False)){fix}")


def _numbered_header(header: Sequence[str]) -> bool:
    """A header of the column numbers ``0..n-1`` or ``1..n`` (pandas' ``DataFrame(array).to_csv(index=False)``)."""
    names = [h.strip() for h in header]
    return names in ([str(j) for j in range(len(names))], [str(j + 1) for j in range(len(names))])


#: a number formatted for reading: thousands separators ('200,000'), a currency sign ('$200.50', '200 €') or a percent
#: sign ('12.5%'), as spreadsheets export formatted cells
_FORMATTED_NUMBER = re.compile(r"(?P<sign>[+-]?)\s*(?P<pre>[$€£¥]?)\s*(?P<sign2>[+-]?)"
                               r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)\s*(?P<post>[%$€£¥]?)")


def _formatted_number(v: str) -> float | None:
    """The value of a formatted number (``'200,000'`` → 200000, ``'$1.50'`` → 1.5, ``'12.5%'`` → 12.5), or ``None``
    for anything else — plain numbers included (they need no reading).

    >>> [_formatted_number(v) for v in ("200,000", "$1.50", "-12.5 %", "1.5", "cat", "$")]
    [200000.0, 1.5, -12.5, None, None, None]
    """
    m = _FORMATTED_NUMBER.fullmatch(v.strip())
    if m is None or (m["sign"] and m["sign2"]) or (m["pre"] and m["post"]):
        return None
    if not (m["pre"] or m["post"] or "," in m["num"]):
        return None
    value = float(m["num"].replace(",", ""))
    return -value if "-" in (m["sign"] + m["sign2"]) else value


def _formatted_number_message(fname: str, where: str, column: str, value: str, line: int, *,
                               labels: bool = False) -> str:
    fix = (", or pass task=classification if they are class labels (every distinct value a class)" if labels
           else "")
    return (f"{fname}: {where} holds {value.strip()!r} on line {line}, a formatted number (thousands separators, a "
            "currency or percent sign) that lrkit.train would read as text; save the column as plain numbers "
            f"(200000, 1.5; pandas: df[{column!r}] = pd.to_numeric(df[{column!r}].astype(str).str.replace("
            f"r'[,$€£¥%\\s]', '', regex=True))){fix}")


def _column_index(header: Sequence[str], target: str | int | None, fname: str) -> int:
    if target is None:
        return len(header) - 1
    if isinstance(target, int):
        if str(target) in header:  # `target=2024` on the command line arrives as a number: a column may be named so
            named = header.index(str(target))
            if -len(header) <= target < len(header) and target % len(header) != named:
                raise ValueError(f"target={target} is ambiguous in {fname}: column {target} is {header[target]!r} but "
                                 f"column {named} is named {str(target)!r}; pass target={named} for that one")
            return named
        if not -len(header) <= target < len(header):
            raise ValueError(f"target={target} is out of range: {fname} has {len(header)} columns")
        return target % len(header)
    if target in header:
        where = [j for j, h in enumerate(header) if h == target]
        if len(where) > 1:
            raise ValueError(f"target={target!r} is ambiguous: {target!r} names {len(where)} columns "
                             f"({', '.join(map(str, where))}) of {fname}; pass the column's index, e.g. "
                             f"target={where[-1]}")
        return where[0]
    parts = [p.strip() for p in target.split(",")]
    if len(parts) > 1 and all(p in header for p in parts):  # target=y1,y2 on the command line: one name, as written
        listed = ", ".join(parts)
        raise ValueError(f"unknown target column of {fname}: {target!r}; for the {len(parts)} columns {listed} as "
                         f"several regression targets give a list: target=[{listed}] (Python: target={parts!r})")
    raise unknown_name_error(f"target column of {fname}:", target, header)


def _read_npz(path: Path, target: str | int | list[str | int] | None, task: str | None = None) -> _Table:
    if isinstance(target, list):  # a CSV's list of target columns; an NPZ's several targets are one array's columns
        raise ValueError(f"{path.name}: target={target!r} names several targets, but an NPZ's target is one array (or "
                         f"one column of its single 2-D array){several_targets_hint(target)}")
    if not zipfile.is_zipfile(path):  # numpy would try to unpickle it and say so, which misleads
        raise ValueError(f"{path.name}: not a readable .npz file (not a zip archive); write one with "
                         "np.savez(path, x=features, y=targets)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {}
            for k in z.files:
                try:
                    arrays[k] = z[k]
                except ValueError as e:
                    if "object" not in str(e).lower():  # e.g. a zip member that is no .npy array
                        raise
                    raise ValueError(f"{path.name}: array {k!r} holds Python objects (dtype=object); save numeric "
                                     "(or string) arrays, e.g. np.savez(f, x=x.astype(np.float32), y=y)") from None
                if not isinstance(arrays[k], np.ndarray):  # numpy hands a member that is no .npy array back as bytes
                    raise ValueError(f"{path.name}: member {k!r} is not a numpy array; write the file with "
                                     "np.savez(path, x=features, y=targets)")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{path.name}: not a readable .npz file ({type(e).__name__}: {e}); write one with "
                         "np.savez(path, x=features, y=targets)") from None
    except ValueError as e:
        if str(e).startswith(path.name):
            raise
        raise ValueError(f"{path.name}: not a readable .npz file ({e}); write one with "  # e.g. pickled data
                         "np.savez(path, x=features, y=targets)") from None
    unused: list[str] = []  # arrays beside the features and the target (np.savez(f, x=..., y=..., x_test=...))
    xk: str | None = None
    yk: str | None = None
    if isinstance(target, str):
        if target not in arrays:
            raise unknown_name_error(f"target array of {path.name}:", target, arrays)
        y = arrays.pop(target)
        xk = _npz_key(arrays, "x", path) or (next(iter(arrays)) if len(arrays) == 1 else None)
        if xk is None:
            raise ValueError(f"{path.name}: with target={target!r}, name the features 'x' (arrays: {sorted(arrays)})")
        x = arrays[xk]
        unused, yk = sorted(k for k in arrays if k != xk), target
    elif (xk := _npz_key(arrays, "x", path)) and (yk := _npz_key(arrays, "y", path)):
        if target is not None:  # a column index names a column of one 2-D table, not one of several arrays
            raise ValueError(f"{path.name}: target={target} is a column index, but the file holds the arrays "
                             f"{sorted(arrays)}, whose target is {yk!r}; leave target= out, or name an array "
                             f"(target={yk})")
        x, y = arrays[xk], arrays[yk]
        unused = sorted(k for k in arrays if k not in (xk, yk))
    elif len(arrays) == 1:
        xk = yk = None  # one 2-D table, whatever its name
        table = next(iter(arrays.values()))
        if table.ndim != 2 or table.shape[1] < 2:
            raise ValueError(f"{path.name}: a single array must be 2-D with the target as a column")
        t = -1 if target is None else int(target)
        if not -table.shape[1] <= t < table.shape[1]:
            raise ValueError(f"target={target} is out of range: {path.name} has {table.shape[1]} columns")
        y = table[:, t]
        x = np.delete(table, t % table.shape[1], axis=1)
    else:
        raise ValueError(f"{path.name}: expected arrays 'x' and 'y' (or target=<array name>); found {sorted(arrays)} "
                         f"(other names read: {', '.join(_NPZ_NAMES['x'])} for x; {', '.join(_NPZ_NAMES['y'])} for y)")
    x = np.asarray(x)
    if x.dtype.kind not in "iufb":
        raise ValueError(f"{path.name}: the features must be numeric, got dtype {x.dtype}")
    y = np.asarray(y)
    if y.dtype.kind == "c":
        raise ValueError(f"{path.name}: the target is complex ({y.dtype}); pass real values (e.g. y.real, or the "
                         "real and imaginary parts as two columns)")
    if y.dtype.kind not in "biufUS":  # dates, time spans, records: numpy's own TypeError named nothing
        raise ValueError(f"{path.name}: the target must be numbers (a regression) or labels (integers, booleans or "
                         f"strings), got dtype {y.dtype}; convert it, e.g. y.astype(np.float64) for time spans, or "
                         "one field of a structured array")
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{path.name}: x and y must be arrays with one row per sample, got shapes {x.shape} and "
                         f"{y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{path.name}: x has {len(x)} rows but y has {len(y)}")
    if len(x) == 0:
        raise ValueError(f"{path.name}: the arrays have 0 rows")
    if math.prod(x.shape[1:]) == 0:
        raise ValueError(f"{path.name}: x of shape {x.shape} has no feature values per sample")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # a column of labels/values is the same target as a vector
    if y.ndim >= 2 and math.prod(y.shape[1:]) == 0:  # else a regression of 0 outputs and a NaN target scale
        raise ValueError(f"{path.name}: {yk or 'y'} of shape {y.shape} has no target values per sample")
    notes: tuple[str, ...] = ()
    read_as = [f"{k!r} as the {role}" for k, role, ok in ((xk, "features", "x"), (yk, "target", "y"))
               if k is not None and k.lower() != ok and not (role == "target" and isinstance(target, str))]
    if read_as:  # another name than x/y (features=, labels=): which array is which, said
        notes += (f"{path.name}: read {' and '.join(read_as)}",)
    if unused:  # said in the log rather than left out silently
        notes += (f"{path.name}: arrays {unused} are not used (the features are {xk!r}, the target {yk!r})",)
    if y.dtype.kind in "US" and y.size and all(is_float_text(v) for v in y.astype(str).reshape(-1).tolist()):
        # numbers saved as text (np.loadtxt(dtype=str), df.astype(str)): read as numbers, as a CSV column of them is;
        # as text every distinct price would be a class of its own
        y = np.array([float(v) for v in y.astype(str).reshape(-1).tolist()], dtype=np.float64).reshape(y.shape)
        notes += (f"{path.name}: the target holds numbers saved as text ({y.shape[0]} strings): read as numbers",)
    if task != "regression" and _is_one_hot(y):  # keras' to_categorical(y), np.eye(K)[y]: class labels
        notes += (f"{path.name}: the target of shape {y.shape} is one-hot: read as class indices (its argmax); pass "
                 f"task=regression to train on its {y.shape[1]} values instead",)
        y = y.argmax(axis=1)
    elif task is None and _is_zero_one(y):
        # 0/1 in several columns per row: multi-hot labels, most likely, which the MSE of a regression fits badly
        notes += (f"{path.name}: the target of shape {y.shape} holds 0/1 values, several per row (multi-hot "
                  f"labels?): trained as {y.shape[1]} regression outputs (MSE, RMSE); for multi-label "
                  "classification pass a torch Dataset with loss_fn=torch.nn.BCEWithLogitsLoss() and "
                  "task='classification' (accuracy per label)",)
    # (N, C, H, W): images, kept in shape for a CNN and standardised with one mean/std, as data='digits' is
    image_shape = tuple(int(s) for s in x.shape[1:]) if x.ndim == 4 else None
    if image_shape is not None and image_shape[2] in (1, 3, 4) and image_shape[0] > 4 and image_shape[1] > 4:
        # (an image at least 5 pixels wide: (N, 8, 4, 4) is 8 channels of 4x4, as (N, C, H, W) reads it)
        # (N, H, W, C) as Keras, TF and PIL save images: read as (N, C, H, W) it would be H channels of W-pixel-wide
        # images, and a ConvNet would train on the scrambled axes
        raise ValueError(f"{path.name}: x of shape {x.shape} looks channels-last (N, H, W, C), with {image_shape[2]} "
                         f"channel(s) of {image_shape[0]}x{image_shape[1]} pixels, but lrkit.train reads 4-D images "
                         "as (N, C, H, W), as torch does; save x = np.transpose(x, (0, 3, 1, 2)) (or pass a torch "
                         "Dataset of (C, H, W) tensors)")
    flat = x.reshape(len(x), -1).astype(np.float64)
    _check_finite(flat, y, path.name)
    return _Table(x.astype(np.float64) if image_shape else flat, y, image_shape=image_shape, notes=notes,
                  sample_shape=tuple(int(s) for s in x.shape[1:]) if x.ndim >= 3 and image_shape is None else None)


def _is_zero_one(y: np.ndarray) -> bool:
    """``y`` of shape ``(N, K)``, ``K >= 2``, ``N >= 1``, of 0s and 1s only (bool, integer or float)."""
    return bool(y.ndim == 2 and y.shape[1] >= 2 and len(y) and y.dtype.kind in "biuf" and np.all((y == 0) | (y == 1)))


def _is_one_hot(y: np.ndarray) -> bool:
    """``y`` of shape ``(N, K)``, ``K >= 2``, whose every row is 0 but for a single 1 (bool, integer or float)."""
    return _is_zero_one(y) and bool(np.all(y.sum(axis=1) == 1))


#: other names an .npz's feature / target array is read under when it has no ``x`` / ``y`` (in any case): the batch
#: keys of the default loss, and scikit-learn's ``data``/``target``
_NPZ_NAMES: dict[str, tuple[str, ...]] = {"x": (*_INPUT_KEYS[1:], "data"), "y": _TARGET_KEYS[1:]}


def _npz_key(arrays: Mapping[str, np.ndarray], name: str, path: Path) -> str | None:
    """The array called ``name`` in any case (``x`` or ``X``), else the one array under another name for it
    (:data:`_NPZ_NAMES`: ``features``, ``labels``, ...), or ``None``; two of them (``x`` and ``X``, ``features`` and
    ``inputs``) are an error rather than whichever the file happens to list last."""
    role, hint = ("features", "") if name == "x" else ("target", ", or name it with target=<array name>")
    for names in ((name,), _NPZ_NAMES[name]):
        same = sorted(k for k in arrays if k.lower() in names)
        if len(same) > 1:
            why = "differ only in case" if len(names) == 1 else f"could each be the {role}"
            raise ValueError(f"{path.name}: arrays {' and '.join(map(repr, same))} {why}, so which holds the {role} "
                             f"is unclear; keep one, or name it {name} (np.savez(path, x=features, y=targets)){hint}")
        if same:
            return same[0]
    return None


_CLASSES_FROM_DATA = ("lrkit.train counts the classes from the labels (their sorted names are resolved.data.classes "
                      "in args.yaml)")
#: keys of an Ultralytics data YAML that a data YAML here does not have, with what lrkit does instead
_ULTRALYTICS_DATA_KEYS: dict[str, str] = {
    "test": "lrkit.train trains on train and validates on val; it has no test split (score one yourself with best.pt)",
    "nc": _CLASSES_FROM_DATA,
    "names": _CLASSES_FROM_DATA,
    "download": "lrkit.train does not download data: name local files",
    **{k: "a YOLO dataset setting" for k in ("kpt_shape", "flip_idx", "channels", "minival")},
}


def _from_yaml(path: Path, *, seed: int, val: float, task: str | None, target: str | int | list[str | int] | None,
               seq_len: int, drop: tuple[str, ...] = ()) -> TrainData:
    yaml = optional_import("yaml", "cli")
    try:
        spec = yaml_load(_decode(path.read_bytes(), f"data={path.name}"))  # safe_load; a key given twice is refused
    except yaml.YAMLError as e:
        raise ValueError(f"data={path.name}: not valid YAML ({describe_yaml_error(e)})") from None
    if not isinstance(spec, dict) or "train" not in spec:
        raise ValueError(f"data={path.name}: a data YAML must be a mapping with at least a 'train' file")
    allowed = ("train", "val", "target", "task", "seq_len", "path")
    for k in spec:
        if k not in allowed:
            why = _ULTRALYTICS_DATA_KEYS.get(str(k).lower())
            if why is not None:  # an Ultralytics data YAML's test:/nc:/names: — not 'Did you mean target?'
                raise ValueError(f"data={path.name}: {k!r} is an Ultralytics data-YAML key lrkit does not read — "
                                 f"{why}; remove it. Valid: {', '.join(sorted(allowed))}")
            raise unknown_name_error(f"key in data YAML {path.name}:", str(k), allowed)
    root = spec.get("path")  # `path:` left empty is YAML's null: the YAML's folder, as no path: key is
    base = path.parent if root is None else path.parent / Path(str(root)).expanduser()
    if task is None and spec.get("task") is not None:
        task = str(spec["task"]).strip().lower()  # in any case, as task= is on the command line and in Python
        if task not in TASKS:
            raise unknown_name_error(f"task in data YAML {path.name}:", task, TASKS)
    if target is None and spec.get("target") is not None:
        target = spec["target"]
        if isinstance(target, bool):  # YAML 1.1: an unquoted yes/no/true/false/on/off is a boolean, not a name
            raise ValueError(f"{path.name}: target={target!r} — YAML reads an unquoted yes/no/true/false/on/off as a "
                             "boolean; quote the column name (target: 'yes') or give its index")
        if isinstance(target, list) and any(isinstance(t, bool) for t in target):
            raise ValueError(f"{path.name}: target={target!r} — YAML reads an unquoted yes/no/true/false/on/off as a "
                             "boolean; quote the column name (target: ['yes', y2]) or give its index")
        if not isinstance(target, (str, int, list)):
            raise ValueError(f"{path.name}: target={target!r} must be a column name or index (or an NPZ array "
                             "name), or a list of columns (several regression targets)")
        try:
            target = _target_arg(target)
        except ValueError as e:
            raise ValueError(f"{path.name}: {e}") from None
    if "seq_len" in spec:
        raw = spec["seq_len"]
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 2:
            raise ValueError(f"{path.name}: seq_len={raw!r} must be an integer >= 2")
        seq_len = raw
    train_path = _yaml_file(base, spec["train"], path.name, "train")
    raw_val = spec.get("val")
    if isinstance(raw_val, (bool, int, float)):  # a fraction of the train file, like val= (the YAML's wins)
        if isinstance(raw_val, bool) or not 0.0 < raw_val < 1.0:
            raise ValueError(f"{path.name}: val={raw_val!r} must be a file or a fraction in (0, 1) of the train file")
        val, raw_val = float(raw_val), None
    if isinstance(raw_val, str) and not (base / Path(raw_val).expanduser()).exists():
        number = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", raw_val)
        if number is not None:  # val: '0.3' (quoted) or 30%: text, which would be looked up as a file
            frac = float(number[1]) / (100 if number[2] else 1)
            write = f"write val: {frac:g} (unquoted" if 0.0 < frac < 1.0 else "write a fraction in (0, 1) (unquoted"
            raise ValueError(f"{path.name}: val={raw_val!r} is text, not a fraction: {write}, as a number; the share "
                             "of the train file held out for validation), or name the val file")
    if raw_val is None:
        out = _from_file(train_path, seed=seed, val=val, task=task, target=target, seq_len=seq_len, drop=drop)
        out.info.source = "yaml"
        return out
    val_path = _yaml_file(base, raw_val, path.name, "val")
    same = ([f"{path.name}: val names the train file itself ({train_path.name}): the model is scored on the samples "
             "it trains on, which measures memorisation, not generalisation; name a separate val file, or give val: "
             "0.2 to split the train file"] if val_path.resolve() == train_path.resolve() else [])
    kinds = (_file_kind(train_path), _file_kind(val_path))
    if kinds[0] != kinds[1]:
        raise ValueError(f"{path.name}: train is a {train_path.suffix or 'suffix-less'} file ({kinds[0]}) but val is "
                         f"a {val_path.suffix or 'suffix-less'} file ({kinds[1]}); give both in one format")
    if kinds[0] in ("table", "npz"):
        tr = _read_table(train_path, target, task, drop=drop)
        val_target: str | int | list[str | int] | None = target
        if isinstance(tr.target_name, list):  # several target columns: found by their names in val too
            if not all(isinstance(c, str) for c in target or ()):
                val_target = list(tr.target_name)
        elif tr.columns is not None and not isinstance(target, str) and tr.target_name not in tr.columns:
            val_target = tr.target_name  # the train file's target column, found by name (val may order columns anew)
        # a numeric train target: NA in val? (several target columns are read as numbers only, each)
        ref = [float(v) for v in tr.y] if tr.y.dtype.kind in "iuf" and tr.y.ndim == 1 else []
        # pandas' index left out of one file is left out of the other (its labels may repeat there: pd.concat)
        index_of = train_path.name if tr.index is not None else None
        try:
            va = _read_table(val_path, val_target, task, reference=ref, drop=drop, index_of=index_of)
        except ValueError as e:
            if val_target is target or isinstance(e, _TextTargetError):
                raise
            # another name for its target: take it by position
            va = _read_table(val_path, target, task, reference=ref, drop=drop, index_of=index_of)
        if va.index is not None and tr.index is None and tr.columns and _nameless(tr.columns[0]):
            tr = _read_table(train_path, target, task, drop=drop, index_of=val_path.name)
        x_va = va.x
        if tr.columns is not None and va.columns is not None and va.columns != tr.columns:
            if sorted(va.columns) != sorted(tr.columns) or len(set(tr.columns)) != len(tr.columns):
                raise ValueError(f"{path.name}: val has columns {va.columns} but train has {tr.columns} (besides the "
                                 f"target {tr.target_name!r}); give both files the same feature columns")
            x_va = x_va[:, [va.columns.index(c) for c in tr.columns]]  # the same columns in another order
        if tr.x.shape[1:] != x_va.shape[1:]:
            raise ValueError(f"{path.name}: train has features of shape {tr.x.shape[1:]} but val has "
                             f"{x_va.shape[1:]}")
        y_tr, y_va = tr.y, va.y
        if (y_tr.dtype.kind in "US") != (y_va.dtype.kind in "US") and tr.raw_y is not None and va.raw_y is not None:
            y_tr, y_va = tr.raw_y, va.raw_y  # one file has a text label: read both columns as text, "0" == "0"
        out = _arrays_to_data(tr.x, y_tr, x_va, y_va, task=task, name=path.name, source="yaml",
                              image_shape=tr.image_shape)
        out.info.notes.extend((*tr.notes, *va.notes))
        out.info.notes.extend(_unseen_val_labels(out, path.name))
        if task is None and out.info.task == "regression" and y_tr.dtype.kind in "iuf" and y_va.dtype.kind in "iuf":
            out.info.notes.extend(_numbered_labels_note(path.name, np.concatenate([y_tr, y_va]), tr.target_name))
        out.info.notes.extend(_constant_note(path.name, tr.x, x_va, tr.columns, shape=tr.sample_shape))
        out.info.features, out.info.target = tr.columns, tr.target_name if tr.columns is not None else None
        out.info.notes.extend(same)
        return out
    if kinds[0] == "yaml":
        raise ValueError(f"{path.name}: train/val cannot name another data YAML ({train_path.name}); name the "
                         "CSV/NPZ/text files")
    if task not in (None, "lm"):
        raise ValueError(f"{path.name}: text files are read as character-level LM; task={task!r} needs CSV/NPZ")
    _no_target(target, f"{path.name} names text files (character-level LM: the target is the next character)")
    out = _text_data(_read_text(train_path), _read_text(val_path), seq_len=seq_len, name=path.name, source="yaml")
    out.info.notes.extend(same)
    return out


def _unseen_val_labels(data: TrainData, yname: str, *, split: bool = False) -> list[str]:
    """A data YAML's val file against its train file, for classification: labels that share none with the train
    file's (the same classes written another way, ``0, 1, 2`` for ``setosa, ...``) are an error — the model would be
    scored on classes it never trains on, accuracy 0 — and a val label the train file lacks (a typo) is a note.

    ``split``: the train and val splits of one file (seeded, :func:`_split_indices`): a val label the train split
    lacks (a class of a sample or two, a continuous target under ``task=classification``) is a note, never an error.
    """
    classes = data.info.classes
    if data.info.task != "classification" or not classes:
        return []
    y_tr, y_va = data.train.tensors[1], data.val.tensors[1]
    seen = set(y_tr.tolist())
    counts: dict[int, int] = {}
    for c in y_va.tolist():
        counts[c] = counts.get(c, 0) + 1
    unseen = [c for c in counts if c not in seen]
    if not unseen:
        return []

    def shown(ids: Any, most: int = 5) -> str:
        ids = sorted(ids)
        return ", ".join(repr(classes[i]) for i in ids[:most]) + (f", ... ({len(ids)} in all)" if len(ids) > most
                                                                   else "")

    missing = sum(counts[c] for c in unseen)
    if split:
        some = "s" * (len(unseen) != 1)
        them = "them" if len(unseen) != 1 else "it"
        note = (f"{yname}: {len(unseen)} val label{some} the train split lacks: {shown(unseen)} ({missing} of "
                f"{len(y_va)} val samples); the model never trains on {them}, so those samples always count as wrong")
        if len(classes) > MAX_INFERRED_CLASSES and any(isinstance(c, float) for c in classes):
            # one class per distinct number of a continuous target: task=classification on a regression target?
            return [f"{note}; task=classification makes each of the {len(classes)} distinct values of the target a "
                    "class (a numeric target such as a price: leave task= out or pass task=regression)"]
        return [f"{note} (a class of few samples: more data, or another seed= or val=)"]
    if len(unseen) == len(counts):
        raise ValueError(f"{yname}: the val file's labels ({shown(counts)}) share none with the train file's "
                         f"({shown(seen)}): every validation sample would be scored against a class the model never "
                         "trains on; write the labels the same way in both files")
    return [f"{yname}: {len(unseen)} val label{'s' if len(unseen) != 1 else ''} the train file lacks: {shown(unseen)} "
            f"({missing} of {len(y_va)} val samples); the model never trains on "
            f"{'them' if len(unseen) != 1 else 'it'}, so those samples always count as wrong (a label written "
            "another way in one file?)"]


def _yaml_file(base: Path, value: Any, yname: str, role: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{yname}: {role} must be a file path (relative to the YAML or absolute), got {value!r}")
    p = Path(value).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise ValueError(f"{yname}: {role}={value!r} -> {p}: no such file")
    _check_readable_suffix(p, f"{yname}: {role}={value!r}")
    if _file_kind(p) == "yaml":
        raise ValueError(f"{yname}: {role}={value!r}: a data YAML cannot name another data YAML; name the "
                         "CSV/NPZ/text file")
    return p


# ------------------------------------------------------------------------------------------- text (char LM)
UNK = "\ufffd"


def _char_ids(text: str, known: np.ndarray, unk: int) -> torch.Tensor:
    """``text``'s characters as int64 ids: the position of each code point in ``known`` (the sorted code points of
    the vocabulary's first ``len(known)`` entries), ``unk`` for any other — one table look-up over the text's code
    points (a Python loop over every character took seconds for a 10 MB text). A decoded text holds no lone
    surrogates, so UTF-32 encodes every character."""
    table = np.full(sys.maxunicode + 1, unk, dtype=np.int64)  # 9 MB, whatever the text's length
    table[known] = np.arange(len(known))
    return torch.from_numpy(table[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)])


def _largest_seq_len(most: int, where: str) -> str:
    """The tail of a too-short-text error naming the largest ``seq_len`` that fits (``most``), or that none does: a
    window needs ``seq_len + 1`` characters, and ``seq_len`` is at least 2 (``lrkit.train``'s bound)."""
    if most >= 2:
        return f" (at most seq_len={most} fits{where})"
    return f" (no seq_len >= 2 fits{where}: the text is too short for a character-level LM)"


def _text_data(train_text: str, val_text: str, *, seq_len: int, name: str, source: str = "text") -> TrainData:
    vocab = sorted(set(train_text))  # by code point: a character's id is its place among the sorted code points
    known = np.array([ord(c) for c in vocab], dtype=np.int64)
    shown = ", ".join(repr(c) for c in vocab[:10]) + (", ..." if len(vocab) > 10 else "")
    if len(vocab) < 2:
        raise ValueError(f"{name}: the training text has {len(vocab)} distinct character(s)"
                         f"{f' ({shown})' if vocab else ''}; nothing to model (a character-level LM needs at least 2)")
    if train_text.isspace():  # blank lines and spaces: a failed export, not a text to learn
        raise ValueError(f"{name}: the training text holds only whitespace ({shown}); nothing to model — check the "
                         "file (a character-level LM learns the characters of a text)")
    missing = set(val_text) - set(vocab)
    unseen = sorted(missing)
    if unseen and UNK not in vocab:
        vocab.append(UNK)  # characters seen only in the validation text (the train text may hold U+FFFD itself)
    notes: list[str] = []
    if unseen:  # said, not silent: a validation text of unseen characters measures what the model never saw
        shown = ", ".join(repr(c) for c in unseen[:10]) + (", ..." if len(unseen) > 10 else "")
        held = sum(c in missing for c in val_text)
        notes.append(f"{name}: the validation text holds {len(unseen)} character(s) the training text does not "
                     f"({shown}): {held} of its {len(val_text)} characters are read as {UNK!r} (the vocabulary is "
                     "the training text's)")
    unk = vocab.index(UNK) if UNK in vocab else 0  # (0: no character is unknown)
    fits = _largest_seq_len(min(len(train_text), len(val_text)) - 1, " for both texts")

    def windows(text: str, role: str) -> TensorDataset:
        ids = _char_ids(text, known, unk)
        n = (len(ids) - 1) // seq_len
        if n < 1:
            raise ValueError(
                f"{name}: the {role} text has {len(text)} characters, too few for one window of seq_len={seq_len} "
                f"(+1); use a longer text or a smaller seq_len{fits}"
            )
        # views of one id tensor (the targets are the inputs shifted by one): 8 bytes a character, not 24
        return TensorDataset(ids[:n * seq_len].view(n, seq_len), ids[1:n * seq_len + 1].view(n, seq_len))

    tr, va = windows(train_text, "train"), windows(val_text, "validation")
    info = DataInfo(name=name, task="lm", input_shape=(seq_len,), num_outputs=len(vocab), source=source,
                    vocab=vocab, seq_len=seq_len, n_train=len(tr), n_val=len(va), notes=notes)
    return TrainData(tr, va, info)


# ------------------------------------------------------------------------------------------- torch datasets
def _first_sample(obj: Any) -> Any:
    if isinstance(obj, DataLoader):
        obj = obj.dataset
    try:
        if isinstance(obj, IterableDataset):  # a stream: peek with a fresh iterator (the epochs make their own)
            return next(iter(obj))
        return obj[0]
    except Exception:  # any failure means we cannot peek; the trainer then needs task=/step_fn
        return None


def _from_torch(train: Any, val: Any, *, task: str | None, source: str) -> TrainData:
    for role, part in (("train", train), ("val", val)):
        if _sized(part) and _len(part) == 0:
            raise ValueError(f"data=(train, val): the {role} {type(_dataset_of(part)).__name__} is empty (0 samples)")
    sample = _first_sample(train)
    # a DataLoader with batch_size=None (and no batch_sampler) yields its dataset's items as they are: whole batches,
    # which its length counts; the first one, peeked here already, gives its size (the others are not drawn)
    whole = [isinstance(part, DataLoader) and part.batch_size is None and part.batch_sampler is None
             for part in (train, val)]
    first_batch = batch_size(sample) if whole[0] and _leading_size(sample) is not None else None  # (None: no tensor)
    input_shape: tuple[int, ...] | None = None
    inferred: str | None = None
    num_outputs: int | None = None
    one_hot_note: str | None = None
    # input/target keys or namedtuple fields ("x"/"y", "image"/"label", ...): the batches' own layout, as split_batch
    # reads them (Sample(label, image) by name)
    if isinstance(sample, Mapping) or named_fields(sample) is not None:
        try:
            sample = split_batch(sample)
        except ValueError:  # other keys: the task is not inferred (the trainer's error describes the sample)
            pass
    if isinstance(sample, (tuple, list)) and len(sample) == 2:
        x, y = (torch.as_tensor(v) if isinstance(v, (int, float, np.ndarray, np.generic)) else v for v in sample)
        if whole[0] and isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.ndim and y.ndim \
                and len(x) == len(y) and len(x):
            # a whole batch: its first row is the sample that tells the task and sizes a built-in model
            x, y = x[0], y[0]
            sample = (x, y)
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            input_shape = tuple(x.shape)
            # a first target that is a one-hot row: every target is read at once where the data is tensors
            one_hot_first = y.is_floating_point() and task is None and _one_hot_rows(y)
            train_targets, val_targets = (_all_targets(train), _all_targets(val)) if one_hot_first else (None, None)
            # whole batches (batch_size=None): a TensorDataset of (batches, B, K) rows
            if whole[0] and train_targets is not None and train_targets.ndim == 3:
                train_targets = train_targets.reshape(-1, train_targets.shape[-1])
            if whole[1] and val_targets is not None and val_targets.ndim == 3:
                val_targets = val_targets.reshape(-1, val_targets.shape[-1])
            if not y.is_floating_point() and not x.is_floating_point() and y.shape == x.shape and y.ndim == 1:
                inferred = "lm"
            elif not y.is_floating_point() and y.ndim == 0:
                inferred = "classification"
            elif not y.is_floating_point() and tuple(y.shape) == (1,) and x.is_floating_point():
                # class indices stored as a column, (N, 1): the trainer squeezes the trailing 1 of each batch
                inferred = "classification"
            elif one_hot_first and _one_hot_rows(train_targets) and (val_targets is None or _one_hot_rows(val_targets)):
                # keras' to_categorical(y), F.one_hot(y).float(): class labels, as an NPZ file's one-hot target is
                inferred, num_outputs = "classification", int(y.shape[-1])
                # (a loss_fn of one's own is not known here: the loss named is the default one)
                one_hot_note = (f"the targets are one-hot rows of {num_outputs} classes: trained as "
                                "classification (the default loss: cross-entropy on them; accuracy of their argmax); "
                                f"pass task=regression to regress their {num_outputs} values instead")
            elif y.is_floating_point():
                inferred = "regression"
                # task=classification on class indices stored as floats (y.float()): a built-in gets one score per
                # class (count_classes), and the losses and the accuracy read them as int64 (class_targets)
                num_outputs = None if task == "classification" and y.numel() == 1 else max(1, int(y.numel()))
                # only the first target read: a sample's row (K,) (a whole batch's first row); a sample's (T, K) is
                # a sequence of rows, which task=classification does not score, so it gets no advice to pass it
                rows = y.ndim == 1
                if one_hot_first and rows and train_targets is None:
                    one_hot_note = (f"the first target is a one-hot row of {y.shape[-1]} values: trained as "
                                    "regression (the default loss: mean squared error), as float targets are; for "
                                    "classification pass task=classification (one-hot rows are read as class "
                                    "probabilities)")
    if task == "regression" and inferred != "regression" and input_shape is not None:
        # task=regression on integer targets (a count, a rating): one output per target value, as float targets get
        num_outputs = max(1, int(torch.as_tensor(sample[1]).numel()))
    info = DataInfo(name=type(_dataset_of(train)).__name__, task=task or inferred, input_shape=input_shape,
                    num_outputs=num_outputs, source=source, n_train=_len(train), n_val=_len(val),
                    train_batches=whole[0], val_batches=whole[1], first_batch=first_batch)
    if one_hot_note is not None:
        info.notes.append(one_hot_note)
    if info.task == "lm" and input_shape:
        info.seq_len = input_shape[0]
    if info.task == "lm" and info.num_outputs is None:  # vocabulary: the largest token id + 1 (tensors: cheap)
        tops = [_tensor_pair(part) for part in (train, val)]
        if all(t is not None for t in tops):
            info.num_outputs = 1 + max(int(t.max()) for pair in tops for t in pair if t.numel())  # type: ignore[union-attr]
    return TrainData(train, val, info)


def describe_sample(part: Any) -> str:
    """A short description of the first sample of a Dataset/DataLoader, for error messages.

    >>> describe_sample(TensorDataset(torch.zeros(3, 4), torch.zeros(3, 2, dtype=torch.long)))
    'an (input, target) pair: input float32 of shape (4,), target int64 of shape (2,)'
    """
    sample = _first_sample(part)
    if isinstance(sample, (tuple, list)) and len(sample) == 2:
        parts = [_describe_value(v) for v in sample]
        return f"an (input, target) pair: input {parts[0]}, target {parts[1]}"
    if isinstance(sample, (tuple, list)):
        return f"a {type(sample).__name__} of {len(sample)} items (not an (input, target) pair)"
    if isinstance(sample, dict):
        return f"a dict with keys {sorted(map(str, sample))} (not an (input, target) pair)"
    return "unreadable (indexing the dataset failed)" if sample is None else f"a {type(sample).__name__}"


def _describe_value(v: Any) -> str:
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return f"{str(v.dtype).removeprefix('torch.')} of shape {tuple(v.shape)}"
    return type(v).__name__


def last_batch_size(loader: Any) -> int | None:
    """The number of samples in the last batch of an epoch of ``loader`` (a DataLoader, or a wrapper with a
    ``loader`` attribute around one) when it can be told without iterating: a ``batch_size``, ``drop_last=False`` and
    a sampler (or, single-process, an ``IterableDataset``) whose length is known; else ``None`` (a full last batch
    included: 0 is never returned).

    >>> last_batch_size(DataLoader(TensorDataset(torch.zeros(33, 2)), batch_size=8))
    1
    """
    while not isinstance(loader, DataLoader) and hasattr(loader, "loader"):
        loader = loader.loader
    if not isinstance(loader, DataLoader) or loader.batch_size is None or loader.drop_last:
        return None
    try:
        if isinstance(loader.dataset, IterableDataset):
            if loader.num_workers > 0:  # each worker ends its own stream with a short batch
                return None
            n = len(loader.dataset)  # type: ignore[arg-type]
        else:
            n = len(loader.sampler)  # type: ignore[arg-type]
    except TypeError:
        return None
    return n % loader.batch_size or None


def _dataset_of(obj: Any) -> Any:
    obj = obj.dataset if isinstance(obj, DataLoader) else obj
    while isinstance(obj, Subset):
        obj = obj.dataset
    return obj


def _sized(obj: Any) -> bool:
    try:
        len(obj.dataset if isinstance(obj, DataLoader) else obj)
    except TypeError:
        return False
    return True


def _len(obj: Any) -> int:
    try:
        return len(obj.dataset if isinstance(obj, DataLoader) else obj)
    except TypeError:
        return 0


def count_classes(data: TrainData) -> int:
    """The number of classes (max integer target + 1) over train and val, for building a model from a name; for
    ``lm`` data the vocabulary size (max token id + 1 over inputs and targets)."""
    lm = data.info.task == "lm"
    top, low = -1, 0
    for part in (data.train, data.val):
        ds = part.dataset if isinstance(part, DataLoader) else part
        pair = _tensor_pair(ds)
        if pair is not None:
            values = list(pair) if lm else [pair[1]]
        else:
            samples = ds if isinstance(ds, IterableDataset) else (ds[i] for i in range(len(ds)))
            values = [torch.as_tensor(v).reshape(-1) for s in samples for v in _sample_ids(s, lm)]
        ys = torch.cat([v.reshape(-1) for v in values]) if values else None
        if ys is not None and ys.numel():
            top, low = max(top, int(ys.max())), min(low, int(ys.min()))
    if lm:
        if low < 0 or top < 0:
            raise ValueError(f"token ids must be 0 .. vocab_size-1, but data= has the id {low if low < 0 else top}")
        return top + 1
    if low < 0:
        raise ValueError(f"class labels must be 0 .. num_classes-1, but data= has the label {low}; map the labels "
                         "to 0, 1, 2, ... (or pass task='regression' for a numeric target)")
    if top < 1:
        raise ValueError("could not find at least 2 classes in the integer targets of data=")
    return top + 1


def _sample_ids(sample: Any, lm: bool) -> tuple[Any, ...]:
    """The values :func:`count_classes` reads from one sample: its target (``lm``: its inputs and target), from an
    ``(x, y, ...)`` sequence or a dict with input/target keys (``{"x": ..., "y": ...}``, as the batches are split).

    >>> _sample_ids({"x": torch.zeros(2), "y": 3}, lm=False)
    (3,)
    """
    if isinstance(sample, Mapping) or named_fields(sample) is not None:
        try:
            x, y = split_batch(sample)
        except ValueError as e:
            raise ValueError(f"cannot read the {'token ids' if lm else 'class labels'} of data= to size the model "
                             f"(the number of {'tokens' if lm else 'classes'}): {e}") from None
        return (x, y) if lm else (y,)
    return (sample[0], sample[1]) if lm else (sample[1],)


def tensor_target_range(data: TrainData) -> tuple[int, int] | None:
    """The smallest and the largest integer target (or whole-number float class index) over train and val, leaving
    out cross-entropy's ignored ``-100``,
    when both are tensors (a ``TensorDataset``, a ``Subset`` of one, a ``DataLoader`` over either: read at once,
    cheap); ``None`` for any other data, which would have to be read sample by sample, or no target at all."""
    lows, tops = [], []
    for part in (data.train, data.val):
        pair = _tensor_pair(part)
        if pair is None:
            return None
        y = pair[1]
        if y.is_floating_point() and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)) and y.numel() \
                and bool(torch.isfinite(y).all()) and bool((y == y.round()).all()):
            y = y.long()  # class indices stored as floats, as the classification loss reads them (class_targets)
        if y.is_floating_point() or y.is_complex():
            return None
        y = y[y != -100]
        if y.numel():
            lows.append(int(y.min()))
            tops.append(int(y.max()))
    return (min(lows), max(tops)) if tops else None


def _one_hot_rows(y: torch.Tensor | None) -> bool:
    """Whether ``y`` ends in a class axis of ``K >= 2`` whose every row is 0 but for a single 1 (a sample's ``(K,)``
    or a batch's ``(N, K)``); ``False`` for ``None`` (targets that cannot be read at once).

    >>> _one_hot_rows(torch.tensor([[0.0, 1.0], [1.0, 0.0]])), _one_hot_rows(torch.tensor([[0.5, 0.5]]))
    (True, False)
    """
    if y is None or y.ndim not in (1, 2) or y.shape[-1] < 2 or not y.numel() or not y.is_floating_point():
        return False
    return bool(((y == 0) | (y == 1)).all()) and bool((y.sum(-1) == 1).all())


def _all_targets(ds: Any) -> torch.Tensor | None:
    """The targets of a (Subset of a) TensorDataset at once (:func:`_tensor_pair`), else ``None``."""
    pair = _tensor_pair(ds)
    return None if pair is None else pair[1]


def _tensor_pair(ds: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The (inputs, targets) tensors of a (Subset of a) TensorDataset or a DataLoader over one, without indexing
    sample by sample; ``None`` for any other dataset."""
    ds = ds.dataset if isinstance(ds, DataLoader) else ds
    idx = None
    while isinstance(ds, Subset):
        idx = torch.as_tensor(ds.indices) if idx is None else torch.as_tensor(ds.indices)[idx]
        ds = ds.dataset
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        x, y = ds.tensors
        return (x, y) if idx is None else (x[idx], y[idx])
    return None
