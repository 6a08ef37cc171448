"""find_lr on an optimizer whose parameters the loss does not depend on (frozen, left out, detached): the curve moves
with the batches alone, and the suggestion (near start_lr) was returned without a word. Now a warning says why the
curve means nothing (session 23, found in a user walk of the Lightning callbacks)."""

from __future__ import annotations

import warnings

import pytest
import torch

import lrkit


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)) for _ in range(8)]


def _said(fn: object) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()  # type: ignore[operator]
    return [str(w.message) for w in caught if "non-zero gradient" in str(w.message)]


def test_an_optimizer_over_parameters_the_loss_does_not_use_is_warned_about() -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1).requires_grad_(False)  # frozen: the loss does not depend on what is stepped
    dummy = torch.nn.Parameter(torch.zeros(3))
    holder = torch.nn.Module()
    holder.dummy = dummy

    def step_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(net(x), y) + 0 * model.dummy.sum()

    result: list[lrkit.FinderResult] = []
    said = _said(lambda: result.append(lrkit.find_lr(holder, torch.optim.SGD([dummy], lr=0.1), _data(),
                                                     step_fn=step_fn, num_steps=20)))
    assert said and "none of the 1 parameters the optimizer steps has a non-zero gradient" in said[0]
    assert "frozen (requires_grad=False)" in said[0] and said[0] in result[0].warnings


@pytest.mark.parametrize("case", ["trained", "half_frozen", "sparse"])
def test_a_loss_that_moves_some_stepped_parameter_is_not_warned_about(case: str) -> None:
    torch.manual_seed(0)
    if case == "sparse":
        emb = torch.nn.Embedding(10, 4, sparse=True)
        head = torch.nn.Linear(4, 1).requires_grad_(False)
        model = torch.nn.Sequential(emb, head)
        data = [(torch.randint(0, 10, (16,)), torch.randn(16, 1)) for _ in range(8)]
        optimizer: torch.optim.Optimizer = torch.optim.SGD(emb.parameters(), lr=0.1)
    else:
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        if case == "half_frozen":
            model[0].requires_grad_(False)
        data = _data()
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    said = _said(lambda: lrkit.find_lr(model, optimizer, data, loss_fn=torch.nn.functional.mse_loss, num_steps=20))
    assert said == []
