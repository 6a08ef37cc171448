"""lrkit.train's loaders fetch a plain TensorDataset (or Subsets of one) a batch at a time: one indexing per tensor
instead of one per sample and a stack. The batches must be the very ones the default DataLoader path gives."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

import lrkit
import lrkit.train.data
from lrkit.train.data import SeededSampler, TrainData, _batch_indexed, _IndexedTensors, load_data


def _pairs(ds: object, batch: int, seed: int) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    fast, collate = _batch_indexed(ds)
    out = []
    for d, c in ((ds, None), (fast, collate)):
        sampler = SeededSampler(len(ds), seed=seed)  # type: ignore[arg-type]
        sampler.set_epoch(3)
        out.append(list(DataLoader(d, batch_size=batch, sampler=sampler, collate_fn=c)))
    return out[0], out[1]


def test_batches_are_bit_identical_to_the_default_collation() -> None:
    g = torch.Generator().manual_seed(0)
    base = TensorDataset(torch.randn(101, 3, 4, generator=g), torch.randint(0, 5, (101,), generator=g),
                         torch.randn(101, 1, generator=g).double())
    nested = Subset(Subset(base, list(range(100, -1, -2))), [0, 5, 7, 3, 49, 2, 11, 13, 1, 8, 6])
    for ds in (base, Subset(base, range(3, 90)), nested):
        plain, fast = _pairs(ds, batch=4, seed=1)
        assert len(plain) == len(fast) > 1
        for a, b in zip(plain, fast):
            assert type(a) is type(b) is list and len(a) == len(b) == 3
            for s, t in zip(a, b):
                assert s.dtype == t.dtype and s.shape == t.shape and s.stride() == t.stride()
                assert torch.equal(s, t)


def test_only_plain_tensor_datasets_are_fetched_by_batch() -> None:
    class Augmented(TensorDataset):  # a subclass may transform its samples: left to the default path
        def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
            x, y = super().__getitem__(i)
            return x + 1, y

    x, y = torch.zeros(8, 2), torch.zeros(8, dtype=torch.long)
    for ds in (Augmented(x, y), Subset(Augmented(x, y), [1, 2])):
        assert _batch_indexed(ds) == (ds, None)
    fast, collate = _batch_indexed(Subset(TensorDataset(x, y), [1, 2]))
    assert isinstance(fast, _IndexedTensors) and collate is not None and len(fast) == 2


def test_a_run_is_bit_identical_with_and_without_batch_fetching(tmp_path: Path, monkeypatch) -> None:
    data = load_data("iris", seed=0)
    assert isinstance(data, TrainData)
    train_loader, val_loader, _ = data.loaders(batch=16, seed=0)
    assert isinstance(train_loader.dataset, _IndexedTensors) and isinstance(val_loader.dataset, _IndexedTensors)
    kw = {"data": "iris", "model": "mlp", "epochs": 3, "lr0": 0.05, "device": "cpu", "project": tmp_path,
          "verbose": False, "plots": False}
    fast = lrkit.train(name="fast", **kw)
    monkeypatch.setattr(lrkit.train.data, "_batch_indexed", lambda ds: (ds, None))
    plain = lrkit.train(name="plain", **kw)
    drop = ("time", "epoch_time")
    assert [{k: v for k, v in h.items() if k not in drop} for h in fast.history] == \
        [{k: v for k, v in h.items() if k not in drop} for h in plain.history]
    for a, b in zip(fast.model.state_dict().values(), plain.model.state_dict().values()):
        assert torch.equal(a, b)
