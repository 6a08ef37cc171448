"""A pre-batched DataLoader (batch_size=None) whose task cannot be told is told why (session 14, from hunt s14h).

Its dataset's items are whole batches, so the first "sample" lrkit reads is a batch: the generic "cannot tell the task"
error described a (16, 4) input without saying why. It now names batch_size=None; with task= it trains. (Since
session 26 the first row of the first batch tells the task where it can: these batches' (16, 2) integer targets
cannot tell one.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import lrkit


class _Batches(Dataset):
    """10 ready-made batches of 16 samples: 4 features, 3 classes."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(10, 16, 4, generator=g), torch.randint(0, 3, (10, 16), generator=g)

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class _PairBatches(_Batches):
    """The same batches with two integer labels per sample, (16, 2): no task can be told from them."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], torch.stack([self.y[i], self.y[i]], 1)


def test_a_prebatched_loader_is_named_in_the_task_error_and_trains_with_task(tmp_path: Path) -> None:
    # (session 26: a batch's first row now tells the task where it can, tests/train/test_prebatched_s26.py)
    data = (DataLoader(_PairBatches(), batch_size=None), DataLoader(_PairBatches(), batch_size=None))
    with pytest.raises(ValueError, match=r"batch_size=None: its dataset's items are whole batches.*pass "
                                         r"task='classification'"):
        lrkit.train(torch.nn.Linear(4, 3), data=data, epochs=1, verbose=False, plots=False, project=tmp_path)
    r = lrkit.train(torch.nn.Linear(4, 2), data=data, epochs=1, task="regression", verbose=False, plots=False,
                    project=tmp_path)
    assert r.epochs_run == 1 and r.task == "regression"
    # a plain loader's message does not mention it
    with pytest.raises(ValueError, match="cannot tell the task") as err:
        lrkit.train(torch.nn.Linear(4, 3), data=(DataLoader(_PairBatches(), batch_size=2),) * 2, epochs=1,
                    verbose=False, plots=False, project=tmp_path)
    assert "batch_size=None" not in str(err.value)
