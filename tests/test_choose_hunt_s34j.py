"""choose_lr0 (lr0="auto" for a user's own loop) as a practitioner meets it (session 34j): bad inputs stop before
any compute with an error naming them."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lrkit.train.auto import choose_lr0


def _data() -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g)
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, 192, 32)], [(x[192:], y[192:])]


class _Counting(torch.nn.Linear):
    """A linear model that counts its forward calls (how much compute was spent before an error)."""

    def __init__(self) -> None:
        super().__init__(8, 1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(x)


def _cosine(o: torch.optim.Optimizer, n: int) -> Any:
    return torch.optim.lr_scheduler.CosineAnnealingLR(o, n)


@pytest.mark.parametrize("budget", [None, 1.0])
def test_an_empty_one_shot_val_iterator_is_refused_before_any_compute(budget: float | None) -> None:
    # val_loader=[] is refused up front; the same nothing as a one-shot iterator was accepted silently (no trials to
    # score) or refused only after the range test had run
    train, _ = _data()
    torch.manual_seed(0)
    model = _Counting()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"val_loader yielded no batches \(it is a one-shot list_iterator"):
        choose_lr0(model, opt, train, iter([]), total_steps=100, make_scheduler=_cosine, budget=budget)
    assert model.calls == 0


@pytest.mark.parametrize(
    ("factory", "said"),
    [
        (lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10), "too many positional arguments"),
        (lambda o, n, k: torch.optim.lr_scheduler.CosineAnnealingLR(o, n), "missing a required argument: 'k'"),
        (lambda o, *, steps: torch.optim.lr_scheduler.CosineAnnealingLR(o, steps), "too many positional arguments"),
    ],
)
def test_a_make_scheduler_that_cannot_take_optimizer_and_steps_is_refused_before_any_compute(
    factory: Any, said: str
) -> None:
    # the stand-in probe swallowed the TypeError, so a full range test ran before the first trial named it
    train, val = _data()
    torch.manual_seed(0)
    model = _Counting()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=rf"make_scheduler=<lambda> cannot be called as make_scheduler\(optimizer, "
                                         rf"steps\) \({said}\)"):
        choose_lr0(model, opt, train, val, total_steps=100, make_scheduler=factory, budget=1.0)
    assert model.calls == 0


def test_make_schedulers_with_defaults_or_varargs_still_run() -> None:
    train, val = _data()
    for factory in (lambda o, n, eta_min=0.0: torch.optim.lr_scheduler.CosineAnnealingLR(o, n, eta_min),
                    lambda *args: torch.optim.lr_scheduler.CosineAnnealingLR(*args),
                    torch.optim.lr_scheduler.CosineAnnealingLR):
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        auto = choose_lr0(model, opt, train, val, total_steps=100, make_scheduler=factory, budget=1.0)
        assert auto.lr > 0 and len(auto.trials) >= 1
