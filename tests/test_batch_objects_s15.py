"""Session 15 (noticed by hunt s15a): a batch object of the user's own class with a ``.to(device)`` method (PyTorch
Geometric's ``Data``/``Batch``, a dataclass batch) passed through ``move_to`` unmoved, so a ``step_fn`` on a GPU
model got CPU tensors; such objects now move with their own ``.to()``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

import lrkit
from lrkit._step import move_to


@dataclass
class GraphBatch:
    x: torch.Tensor
    y: torch.Tensor
    moves: int = 0

    def to(self, device: torch.device) -> GraphBatch:
        return replace(self, x=self.x.to(device), y=self.y.to(device), moves=self.moves + 1)


class Unrelated:
    """An object whose ``to`` means something else (takes no device): passed through as before."""

    def to(self) -> str:
        return "elsewhere"


def test_move_to_moves_an_object_with_its_own_to() -> None:
    b = GraphBatch(torch.zeros(3, 2), torch.zeros(3))
    moved = move_to({"graph": b, "n": 3}, torch.device("meta"))
    assert moved["graph"].x.device.type == "meta" and moved["graph"].y.device.type == "meta"
    assert moved["n"] == 3 and b.x.device.type == "cpu"  # the caller's batch is not changed
    odd = Unrelated()
    assert move_to(odd, torch.device("meta")) is odd
    model = nn.Linear(2, 1)
    assert move_to(model, torch.device("meta")) is model  # a module in a batch is not moved


def test_find_lr_hands_the_step_fn_the_moved_batch_object() -> None:
    torch.manual_seed(0)
    data = [GraphBatch(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(8)]
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def step_fn(m: nn.Module, b: GraphBatch) -> torch.Tensor:
        seen.append(b.moves)
        return nn.functional.mse_loss(m(b.x), b.y)

    lrkit.find_lr(model, opt, data, step_fn=step_fn, num_steps=12)
    assert seen and set(seen) == {1}  # every batch went through its own .to(device) once
