"""A batch above the split is built as a DataLoader batch of the whole split (session 16): torch 2.4's BatchSampler
allocates a list of ``batch_size`` slots per batch, so ``lrkit.train(batch=2**63 - 1)`` was a MemoryError there
(found by ``tools/compat.sh`` with torch 2.4.1); the batches themselves are unchanged."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from lrkit.train.data import load_data


def _data(n_train: int, n_val: int) -> object:
    x, y = torch.randn(n_train + n_val, 3), torch.randint(0, 2, (n_train + n_val,))
    return load_data((TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:])))


def test_a_batch_above_the_split_is_the_whole_split() -> None:
    train, val, _ = _data(10, 7).loaders(batch=2**63 - 1)
    assert train.batch_size == 10 and val.batch_size == 7
    assert [len(b[0]) for b in train] == [10] and [len(b[0]) for b in val] == [7]


def test_a_batch_within_the_split_is_untouched() -> None:
    train, val, _ = _data(10, 300).loaders(batch=4)
    assert train.batch_size == 4 and val.batch_size == 256  # validation: at least 256 per batch, as before
    assert [len(b[0]) for b in train] == [4, 4, 2]


def test_a_one_sample_split_keeps_a_one_sample_last_batch() -> None:
    """Never below 2: a 1-sample training split still reads as a 1-sample last batch (the BatchNorm check)."""
    from lrkit.train.data import last_batch_size

    train, _, _ = _data(1, 3).loaders(batch=64)
    assert train.batch_size == 2 and last_batch_size(train) == 1
