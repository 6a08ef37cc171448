"""A pre-batched DataLoader (batch_size=None) whose task cannot be told is told why (session 14, from hunt s14h).

Its dataset's items are whole batches, so the first "sample" lrkit reads is a batch: the generic "cannot tell the task"
error described a (16, 4) input without saying why. It now names batch_size=None; with task= it trains.
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


def test_a_prebatched_loader_is_named_in_the_task_error_and_trains_with_task(tmp_path: Path) -> None:
    data = (DataLoader(_Batches(), batch_size=None), DataLoader(_Batches(), batch_size=None))
    with pytest.raises(ValueError, match=r"batch_size=None: its dataset's items are whole batches.*pass "
                                         r"task='classification'"):
        lrkit.train(torch.nn.Linear(4, 3), data=data, epochs=1, verbose=False, plots=False, project=tmp_path)
    r = lrkit.train(torch.nn.Linear(4, 3), data=data, epochs=1, task="classification", verbose=False, plots=False,
                    project=tmp_path)
    assert r.epochs_run == 1 and 0.0 <= r.final_metric <= 1.0
    # a plain loader's message does not mention it
    with pytest.raises(ValueError, match="cannot tell the task") as err:
        lrkit.train(torch.nn.Linear(4, 3), data=(DataLoader(_Batches(), batch_size=2),) * 2, epochs=1,
                    verbose=False, plots=False, project=tmp_path)
    assert "batch_size=None" not in str(err.value)
