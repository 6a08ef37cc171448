"""Session 21d: ``find_lr`` and ``lr0="auto"`` (``choose_lr0``) on accelerate's prepared loader keep its epoch.

accelerate's ``DataLoaderShard`` counts its full passes in ``iteration`` and calls ``set_epoch(iteration)`` at the
start of each, which reseeds accelerate's ``SeedableRandomSampler`` (``DataLoaderConfiguration(
use_seedable_sampler=True)``, transformers' Trainer's default) and a ``DistributedSampler``. A range test that made
full passes over the loader left the counter advanced, so the user's next epoch trained on the order of a later
epoch: not "the data order it would have seen without the test".
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

accelerate = pytest.importorskip("accelerate")
from accelerate import Accelerator, DataLoaderConfiguration  # noqa: E402
from accelerate.state import AcceleratorState, GradientState  # noqa: E402

import lrkit  # noqa: E402
from lrkit.train.auto import choose_lr0  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(autouse=True)
def _fresh_accelerate() -> Any:
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _prepared() -> tuple[nn.Module, torch.optim.Optimizer, Any, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.arange(128.0).unsqueeze(1).repeat(1, 8)
    y = x.sum(1, keepdim=True) / 100
    data = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    val = torch.utils.data.DataLoader(data, batch_size=64)
    acc = Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    return acc.prepare(model, opt, loader, val)


def _order(loader: Any) -> list[float]:
    return torch.cat([x[:, 0] for x, _ in loader]).tolist()


def _without_test() -> list[float]:
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    _, _, loader, _ = _prepared()
    return _order(loader)


def test_find_lr_keeps_the_prepared_loaders_epoch() -> None:
    model, opt, loader, _ = _prepared()
    lrkit.find_lr(model, opt, loader, loss_fn=nn.functional.mse_loss, num_steps=20)  # 2.5 passes over 8 batches
    assert loader.iteration == 0
    assert _order(loader) == _without_test()


def test_choose_lr0_keeps_the_prepared_loaders_epoch() -> None:
    model, opt, loader, val = _prepared()
    choose_lr0(model, opt, loader, val, total_steps=100, loss_fn=nn.functional.mse_loss,
                     make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 - s / n))
    assert loader.iteration == 0 and val.iteration == 0
    assert _order(loader) == _without_test()
