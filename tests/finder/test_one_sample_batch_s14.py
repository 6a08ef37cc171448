"""find_lr on a loader whose last batch holds one sample, with a BatchNorm model (session 14, from hunt s14h).

torch refuses to train BatchNorm on a batch of 1 ("Expected more than 1 value per channel when training"); find_lr let
that raw error through mid-test. It is now a ValueError with the fix, the model restored; lrkit.train leaves such a
batch out by itself (tests/train/test_loaders_hunt_s14h.py).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from _helpers import assert_same, finder_state
from lrkit.train.auto import choose_lr0


def _setup(n: int, drop_last: bool = False) -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x, y = torch.randn(n, 4), torch.randint(0, 2, (n,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8, drop_last=drop_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), loader


def test_a_last_batch_of_one_sample_with_batchnorm_is_a_clear_error_and_restores() -> None:
    model, opt, loader = _setup(17)  # batches of 8, 8, 1
    before = finder_state(model, opt)
    with pytest.raises(ValueError, match=r"holds 1 sample.*BatchNorm.*drop_last=True") as err:
        lrkit.find_lr(model, opt, loader, num_steps=20)
    assert "Expected more than 1 value per channel" in str(err.value.__cause__)
    assert_same(finder_state(model, opt), before)
    with pytest.raises(ValueError, match=r"holds 1 sample.*drop_last=True"):  # lr0="auto"'s range test too
        choose_lr0(model, opt, loader, None, total_steps=100,
                   make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1.0))
    assert_same(finder_state(model, opt), before)


def test_the_fix_it_names_works_and_other_value_errors_pass_through() -> None:
    model, opt, loader = _setup(17, drop_last=True)
    assert len(lrkit.find_lr(model, opt, loader, num_steps=20).lrs) == 20

    class Picky(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("a model's own complaint")

    with pytest.raises(ValueError, match="^a model's own complaint$"):
        lrkit.find_lr(Picky(), torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1),
                      [(torch.ones(1, 4), torch.zeros(1, dtype=torch.long))], num_steps=10)
