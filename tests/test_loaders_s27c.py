"""DataLoader features real users have, through ``lrkit.train``, ``find_lr`` and ``choose_lr0`` (session 27 walk).

What this walk found and fixed in ``lrkit.train`` with a DataLoader of the user's:

* a ``DistributedSampler`` (code shared with a DDP script, run in one process with ``num_replicas=1``) was never
  told the epoch: ``lrkit.train`` is the training loop, but did not call ``sampler.set_epoch(epoch)`` as
  Lightning, the Hugging Face ``Trainer`` and accelerate do, so every epoch trained on epoch 0's order;
* the ``torch.Generator`` a sampler shuffles with (``WeightedRandomSampler(generator=g)``, a ``batch_sampler`` over
  ``RandomSampler(ds, generator=g)``) was left out of ``last.pt`` (only ``DataLoader(generator=g)`` was saved), so a
  killed-then-resumed run read the resumed epochs in the order of the first ones and ended elsewhere;
* ``data=DataLoader(ds, sampler=WeightedRandomSampler(...))`` was split and reshuffled uniformly, its sampler dropped
  without a word (now an error naming it, asking for a (train, val) pair);
* a loader that yields more batches than its ``len()`` (an ``IterableDataset`` sharded over workers, each shard
  ending in a short batch) lost the extra ones each epoch, and one that yields fewer left the schedule short of its
  end, both unsaid (now a note in the log);
* the worker processes of ``persistent_workers`` loaders that lrkit split from the user's outlived the run (torch's
  shutdown then waited 5 s per worker when the garbage collector met them);
* ``workers=`` beside a DataLoader of the user's was dropped without a word (or said capped to a count never used);
* a ``collate_fn``'s batch object without a ``step_fn`` got no hint of the ``step_fn`` that reads it.

The rest pins what the walk found working: the range test and ``choose_lr0`` over such loaders leave training
afterwards bit for bit as without them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    get_worker_info,
)
from torch.utils.data.distributed import DistributedSampler

import lrkit
from _helpers import assert_same_run, killed_run
from lrkit.finder.range_test import _shut_workers
from lrkit.train import train
from lrkit.train.auto import choose_lr0

N = 48
_G = torch.Generator().manual_seed(0)
X = torch.randn(N, 6, generator=_G)
Y = (X[:, 0] + X[:, 1] > 0).long()


class _Recorded(Dataset):
    """``X, Y`` that records the index of every sample read (in this process: no workers)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append(int(i))
        return X[i], Y[i]


class _Augmented(Dataset):
    """``X, Y`` with noise drawn from torch's and numpy's RNGs in ``__getitem__`` (a random augmentation)."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return X[i] + 0.1 * torch.randn(6) + 0.01 * float(np.random.randn()), Y[i]


class _Sharded(IterableDataset):
    """Yields ``X, Y`` with noise, each worker its own shard (``get_worker_info``), as torch's docs show."""

    def __iter__(self) -> Any:
        info = get_worker_info()
        rows = range(N) if info is None else range(info.id, N, info.num_workers)
        for i in rows:
            yield X[i] + 0.1 * torch.randn(6), Y[i]


@dataclasses.dataclass
class _Batch:
    x: torch.Tensor
    y: torch.Tensor


def _collate_dataclass(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> _Batch:
    xs, ys = zip(*samples)
    return _Batch(torch.stack(xs), torch.stack(ys))


def _step_dataclass(model: torch.nn.Module, batch: _Batch) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(batch.x), batch.y)


def _model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.1), torch.nn.ReLU(),
                               torch.nn.Linear(16, 2))


def _val() -> DataLoader:
    return DataLoader(TensorDataset(X[:24], Y[:24]), batch_size=24)


def _shut(*loaders: DataLoader) -> None:
    """Stop a persistent-workers loader's worker processes now (left to interpreter exit, each costs seconds)."""
    for dl in loaders:
        _shut_workers(dl)


def _ordered(sampler: Callable[[], Any]) -> DataLoader:
    return DataLoader(TensorDataset(X, Y), batch_size=8, sampler=sampler())


SAMPLERS: dict[str, Callable[[], DataLoader]] = {
    "weighted_generator": lambda: _ordered(
        lambda: WeightedRandomSampler(torch.linspace(0.5, 1.5, N), N, generator=torch.Generator().manual_seed(5))),
    "batch_sampler_generator": lambda: DataLoader(TensorDataset(X, Y), batch_sampler=BatchSampler(
        RandomSampler(range(N), generator=torch.Generator().manual_seed(5)), 8, drop_last=False)),
    "distributed_sampler": lambda: _ordered(lambda: DistributedSampler(range(N), num_replicas=1, rank=0, seed=5)),
    "weighted_global_rng": lambda: _ordered(lambda: WeightedRandomSampler(torch.linspace(0.5, 1.5, N), N)),
}


def test_lrkit_train_sets_the_epoch_of_a_distributed_sampler(tmp_path: Path) -> None:
    ds = _Recorded()
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, seed=3)
    train(_model(), data=(DataLoader(ds, batch_size=8, sampler=sampler), _val()), epochs=2, lr0=0.05, nbs=8,
          seed=0, verbose=False, plots=False, monitor=False, project=tmp_path)
    expected = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        expected += list(sampler)
    assert expected[:N] != expected[N:]
    assert ds.seen[-2 * N:] == expected  # (reads before the epochs probe the first batch)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_a_resumed_run_reads_the_order_of_the_uninterrupted_one(tmp_path: Path, name: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    common = {"epochs": 3, "lr0": 0.05, "nbs": 8, "seed": 0, "verbose": False, "plots": False, "project": tmp_path}
    full = train(_model(), data=(SAMPLERS[name](), _val()), name="full", **common)
    killed_run(monkeypatch, lambda: train(_model(), data=(SAMPLERS[name](), _val()), name="cut", **common), nth=2)
    resumed = train(_model(), data=(SAMPLERS[name](), _val()), resume=tmp_path / "cut", verbose=False)
    assert_same_run(full, resumed, epochs=3)


# --- the walk's passing cases: find_lr / choose_lr0, then training, equals training without them --------------

LOADERS: dict[str, Callable[[], tuple[DataLoader, Any]]] = {
    "fork_workers_augmented": lambda: (DataLoader(_Augmented(), batch_size=8, shuffle=True, num_workers=2,
                                                  multiprocessing_context="fork"), None),
    "persistent_workers_prefetch": lambda: (DataLoader(_Augmented(), batch_size=8, shuffle=True, num_workers=2,
                                                       persistent_workers=True, prefetch_factor=3), None),
    "sharded_iterable_workers": lambda: (DataLoader(_Sharded(), batch_size=8, num_workers=2), None),
    "augmented_in_process": lambda: (DataLoader(_Augmented(), batch_size=8, shuffle=True), None),
    "weighted_generator": lambda: (SAMPLERS["weighted_generator"](), None),
    "distributed_sampler": lambda: (SAMPLERS["distributed_sampler"](), None),
    "dataclass_batches": lambda: (DataLoader(TensorDataset(X, Y), batch_size=8, shuffle=True,
                                             collate_fn=_collate_dataclass), _step_dataclass),
}


def _train_two_epochs(call: str | None, name: str) -> tuple[list[float], list[torch.Tensor], tuple[float, float]]:
    torch.manual_seed(7)
    np.random.seed(7)
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader, step = LOADERS[name]()
    if call == "find_lr":
        lrkit.find_lr(model, optimizer, loader, num_steps=10, step_fn=step)
    elif call == "choose_lr0":
        choose_lr0(model, optimizer, loader, _val() if step is None else None, total_steps=40, step_fn=step,
                   make_scheduler=torch.optim.lr_scheduler.CosineAnnealingLR)
    step = step or (lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]))
    losses = []
    for epoch in range(2):
        if isinstance(getattr(loader, "sampler", None), DistributedSampler):
            loader.sampler.set_epoch(epoch)
        for batch in loader:
            loss = step(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    _shut(loader)
    return losses, [p.detach().clone() for p in model.parameters()], (torch.rand(1).item(), float(np.random.rand()))


@pytest.mark.parametrize("call", ["find_lr", "choose_lr0"])
@pytest.mark.parametrize("name", list(LOADERS))
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_training_after_the_call_equals_training_without_it(name: str, call: str) -> None:
    losses, params, rngs = _train_two_epochs(None, name)
    losses_after, params_after, rngs_after = _train_two_epochs(call, name)
    assert losses_after == losses
    assert all(torch.equal(p, q) for p, q in zip(params, params_after))
    assert rngs_after == rngs


@pytest.mark.parametrize("sampler", [
    lambda ds: WeightedRandomSampler(torch.linspace(0.5, 1.5, N), N),
    lambda ds: DistributedSampler(ds, num_replicas=1, rank=0),
], ids=["weighted", "distributed"])
def test_a_single_loader_whose_sampler_cannot_be_split_is_named(tmp_path: Path, sampler: Callable[[Any], Any]) -> None:
    # before session 27 the loader's dataset was split and reshuffled uniformly, its sampler (class weights, ...)
    # dropped without a word
    ds = TensorDataset(X, Y)
    loader = DataLoader(ds, batch_size=8, sampler=sampler(ds))
    name = type(loader.sampler).__name__
    with pytest.raises(ValueError, match=rf"sampler={name}.*\(train, val\) pair of DataLoaders"):
        train(_model(), data=loader, epochs=1, lr0=0.05, verbose=False, plots=False, project=tmp_path)


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_single_loader_with_a_plain_sampler_is_still_split(tmp_path: Path, shuffle: bool) -> None:
    loader = DataLoader(TensorDataset(X, Y), batch_size=8, shuffle=shuffle)
    result = train(_model(), data=loader, epochs=1, lr0=0.05, nbs=8, verbose=False, plots=False, project=tmp_path)
    assert len(result.history) == 1


class _Claimed(IterableDataset):
    """Yields ``X, Y`` in order (each worker its shard) while ``__len__`` claims ``claimed`` samples."""

    def __init__(self, claimed: int) -> None:
        self.claimed = claimed

    def __len__(self) -> int:
        return self.claimed

    def __iter__(self) -> Any:
        info = get_worker_info()
        rows = range(N) if info is None else range(info.id, N, info.num_workers)
        for i in rows:
            yield X[i], Y[i]


def _train_log(capsys: pytest.CaptureFixture[str], tmp_path: Path, loader: DataLoader) -> str:
    capsys.readouterr()
    train(_model(), data=(loader, _val()), epochs=2, lr0=0.05, nbs=8, seed=0, verbose=True, plots=False,
          monitor=False, project=tmp_path)
    return capsys.readouterr().out


def test_batches_past_the_loaders_length_are_said_to_be_left_out(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # 2 workers, each 24 samples in batches of 10: 10, 10, 4 each, 6 batches; len() says ceil(48 / 10) = 5. Before
    # session 27 the 6th batch of every epoch (the same 4 samples) was left out without a word
    loader = DataLoader(_Claimed(N), batch_size=10, num_workers=2)
    assert (len(loader), sum(1 for _ in loader)) == (5, 6)
    out = _train_log(capsys, tmp_path, loader)
    assert out.count("yielded more batches in epoch 1 than its len(), 5") == 1
    assert "drop_last=True" in out


def test_an_epoch_shorter_than_the_loaders_length_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # len() claims 64 samples (8 batches), the dataset yields 48 (6): the schedule, planned for 8 steps per epoch,
    # never reached its end, without a word before session 27
    out = _train_log(capsys, tmp_path, DataLoader(_Claimed(64), batch_size=8))
    assert out.count("yielded 6 batches in epoch 1, fewer than its len(), 8") == 1


def test_a_loader_true_to_its_length_gets_no_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _train_log(capsys, tmp_path, DataLoader(_Claimed(N), batch_size=8))
    assert "len()" not in out


def test_the_workers_of_loaders_lrkit_split_from_yours_end_with_the_run(tmp_path: Path) -> None:
    # data=DataLoader(persistent_workers=True) is split into train/val loaders of lrkit's own, which the caller cannot
    # reach: before session 27 their 4 worker processes outlived the run, and whenever the garbage collector met
    # them torch's shutdown waited 5 s for each (20 s at a gc.collect() in a notebook)
    import multiprocessing

    before = len(multiprocessing.active_children())
    loader = DataLoader(TensorDataset(X, Y), batch_size=8, num_workers=2, persistent_workers=True)
    result = train(_model(), data=loader, epochs=2, lr0=0.05, nbs=8, verbose=False, plots=False, project=tmp_path)
    assert len(result.history) == 2
    assert len(multiprocessing.active_children()) == before


def test_the_workers_of_your_own_loaders_are_left_to_you(tmp_path: Path) -> None:
    loader = DataLoader(TensorDataset(X, Y), batch_size=8, shuffle=True, num_workers=2, persistent_workers=True)
    train(_model(), data=(loader, _val()), epochs=1, lr0=0.05, nbs=8, verbose=False, plots=False, project=tmp_path)
    try:
        assert loader._iterator is not None  # the run's workers, which the next pass over the loader reuses
    finally:
        _shut(loader)


@pytest.mark.parametrize("pair", [True, False], ids=["pair", "split"])
def test_workers_beside_a_dataloader_of_yours_is_said_unused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             pair: bool) -> None:
    # the DataLoader's own num_workers is used (a pair as it is, a split with its settings); before session 27 an
    # explicit workers=2 beside it was dropped without a word
    loader = DataLoader(TensorDataset(X, Y), batch_size=8)
    capsys.readouterr()
    train(_model(), data=(loader, _val()) if pair else loader, workers=1, epochs=1, lr0=0.05, nbs=8, verbose=True,
          plots=False, project=tmp_path)
    out = capsys.readouterr().out
    assert out.count("workers=1 is not used: the DataLoader you passed has num_workers=0") == 1


def test_workers_matching_the_dataloader_gets_no_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    train(_model(), data=(DataLoader(TensorDataset(X, Y), batch_size=8), _val()), workers=0, epochs=1, lr0=0.05,
          nbs=8, verbose=True, plots=False, project=tmp_path)
    assert "is not used" not in capsys.readouterr().out


class _Attrs:
    """A batch class of one's own, with ``.to()`` (as a collate_fn may return)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def to(self, device: Any) -> _Attrs:
        return _Attrs(self.images.to(device), self.labels.to(device))


def _collate_attrs(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> _Attrs:
    xs, ys = zip(*samples)
    return _Attrs(torch.stack(xs), torch.stack(ys))


@pytest.mark.parametrize("collate, fields", [(_collate_dataclass, ("x", "y")), (_collate_attrs, ("images", "labels"))],
                         ids=["dataclass", "object_with_to"])
def test_a_batch_object_without_step_fn_gets_the_step_fn_that_reads_it(collate: Callable[[Any], Any],
                                                                     fields: tuple[str, str]) -> None:
    # before session 27 the error said only "pass step_fn=lambda model, batch: loss"
    model = _model()
    loader = DataLoader(TensorDataset(X, Y), batch_size=8, collate_fn=collate)
    x, y = fields
    hint = f"step_fn=lambda model, batch: loss_fn(model(batch.{x}), batch.{y})"
    with pytest.raises(ValueError, match=re.escape(hint)):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, num_steps=10)


def test_workers_over_the_cpu_count_beside_a_dataloader_is_not_said_capped(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # the cap's note ("using N") named a number of workers the run never used: the loader's num_workers is used
    capsys.readouterr()
    train(_model(), data=(DataLoader(TensorDataset(X, Y), batch_size=8), _val()), workers=10_000, epochs=1,
          lr0=0.05, nbs=8, verbose=True, plots=False, project=tmp_path)
    out = capsys.readouterr().out
    assert "as Ultralytics caps it" not in out
    assert "workers=10000 is not used: the DataLoader you passed has num_workers=0" in out
