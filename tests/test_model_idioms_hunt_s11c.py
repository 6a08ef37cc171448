"""Hunt s11c: find_lr, choose_lr0 and lrkit.train pointed at loaders written the way real code writes them (worker
processes, persistent workers, a worker_init_fn)."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lrkit
from lrkit.train.auto import choose_lr0
from lrkit.train.data import load_data


class _Augmented(Dataset):
    """A dataset whose items carry a random "augmentation" drawn from torch's RNG (in a worker: its own RNG)."""

    def __init__(self, n: int = 96) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] + 0.1 * torch.randn(4), self.y[i]


def _first_batches(loader: DataLoader, n: int = 3) -> list[torch.Tensor]:
    out = []
    for i, (x, _) in enumerate(loader):
        if i == n:
            break
        out.append(x)
    return out


def _children() -> set[int]:
    return {p.pid for p in mp.active_children()}


def test_find_lr_leaves_a_persistent_workers_loader_as_it_found_it() -> None:
    # A DataLoader(persistent_workers=True) keeps the iterator (and its worker processes, seeded when it was made) of
    # its first epoch; made by the range test, it made the user's next epoch differ from the one without the test.
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loader() -> DataLoader:
        return DataLoader(_Augmented(), batch_size=8, shuffle=True, num_workers=2, persistent_workers=True)

    torch.manual_seed(1)
    expected = _first_batches(loader())
    torch.manual_seed(1)
    train = loader()
    lrkit.find_lr(model, opt, train, num_steps=10)
    assert train._iterator is None  # no workers left behind that the user did not have
    got = _first_batches(train)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_choose_lr0_trials_see_the_same_batches_with_persistent_workers() -> None:
    # Each trial reseeds the RNGs and starts the loader afresh; persistent workers were seeded once (in the range
    # test) and their RNGs ran on, so every trial saw other augmentations: not the like-for-like comparison promised.
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train = DataLoader(_Augmented(), batch_size=8, shuffle=True, num_workers=2, persistent_workers=True)
    seen: list[torch.Tensor] = []

    def step_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        seen.append(batch[0].clone())
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    auto = choose_lr0(model, opt, train, None, total_steps=200, step_fn=step_fn, budget=0.3, num_candidates=2,
                      finder_kwargs={"num_steps": 20},
                      make_scheduler=lambda o, steps: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0))
    assert len(auto.trials) >= 2
    start = auto.finder.num_steps_run
    firsts = []
    for t in auto.trials:
        firsts.append(seen[start])
        start += t.steps
    assert start == len(seen)
    assert all(torch.equal(f, firsts[0]) for f in firsts[1:])
    assert train._iterator is None


def _interrupted_at(call: int) -> tuple[nn.Module, torch.optim.Optimizer, DataLoader, Any]:
    """A model, its optimizer, a 2-worker loader and a step_fn that raises KeyboardInterrupt (Ctrl-C) at ``call``."""
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train = DataLoader(_Augmented(), batch_size=8, shuffle=True, num_workers=2)
    calls = [0]

    def step_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == call:
            raise KeyboardInterrupt
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    return model, opt, train, step_fn


def test_an_interrupted_find_lr_does_not_keep_the_loader_s_worker_processes() -> None:
    # The range test's batches came from a generator over the DataLoader, held by find_lr's frame; an exception's
    # traceback (kept by Jupyter/IPython as sys.last_traceback) kept the frame, the iterator and its workers alive.
    model, opt, train, step_fn = _interrupted_at(4)
    before = _children()
    with pytest.raises(KeyboardInterrupt) as info:
        lrkit.find_lr(model, opt, train, num_steps=20, step_fn=step_fn)
    assert info.value.__traceback__ is not None  # the traceback is still held here
    assert _children() - before == set()


def test_an_interrupted_choose_lr0_trial_does_not_keep_the_loader_s_worker_processes() -> None:
    model, opt, train, step_fn = _interrupted_at(30)  # inside the first trial (the range test runs 20 steps)
    before = _children()
    with pytest.raises(KeyboardInterrupt) as info:
        choose_lr0(model, opt, train, None, total_steps=200, step_fn=step_fn, budget=0.3, num_candidates=2,
                   finder_kwargs={"num_steps": 20},
                   make_scheduler=lambda o, steps: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0))
    assert info.value.__traceback__ is not None
    assert _children() - before == set()


def _init_worker(worker_id: int) -> None:
    os.environ["LRKIT_TEST_WORKER_INIT"] = str(worker_id)  # e.g. an HDF5 file opened, numpy seeded, per worker


class _NeedsWorkerInit(TensorDataset):
    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        if torch.utils.data.get_worker_info() is not None and "LRKIT_TEST_WORKER_INIT" not in os.environ:
            raise RuntimeError("the worker_init_fn did not run")
        return super().__getitem__(i)


def test_data_dataloader_keeps_its_worker_settings() -> None:
    # data=DataLoader(...) is split into train/val loaders that kept batch_size, collate_fn, num_workers and
    # drop_last, but dropped worker_init_fn (per-worker file handles, numpy seeding), pin_memory,
    # persistent_workers, prefetch_factor, timeout and multiprocessing_context.
    ds = TensorDataset(torch.randn(40, 4), torch.randint(0, 3, (40,)))
    loader = DataLoader(ds, batch_size=8, num_workers=2, worker_init_fn=_init_worker, persistent_workers=True,
                        prefetch_factor=3, timeout=30)
    data = load_data(loader)
    for built in (data.train, data.val):
        assert built.worker_init_fn is _init_worker
        assert built.persistent_workers is True
        assert built.prefetch_factor == 3
        assert built.timeout == 30


def test_train_on_a_dataloader_whose_dataset_needs_its_worker_init_fn(tmp_path: object) -> None:
    torch.manual_seed(0)
    ds = _NeedsWorkerInit(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    loader = DataLoader(ds, batch_size=16, num_workers=2, worker_init_fn=_init_worker)
    r = lrkit.train(model=nn.Linear(4, 3), data=loader, epochs=1, lr0=0.01, project=str(tmp_path), verbose=False,
                    plots=False)
    assert len(r.history) == 1
