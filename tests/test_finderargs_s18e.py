"""Session 18 (from the migration guide's findings): ``find_lr(diverge_factor=None)`` runs to ``end_lr`` as fastai's
``stop_div=False`` does; an optimizer whose ``zero_grad`` takes no ``set_to_none`` (fastai's ``learn.opt``) is refused
up front, not with torch's TypeError inside the first step."""
from __future__ import annotations

from typing import Any

import pytest
import torch

import lrkit


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return model, opt, [(x[i:i + 16], y[i:i + 16]) for i in range(0, 128, 16)]


def test_no_divergence_stop_runs_to_end_lr() -> None:
    model, opt, batches = _setup()
    stopped = lrkit.find_lr(model, opt, batches, start_lr=1e-4, end_lr=100.0, num_steps=60)
    assert stopped.stop_reason == "diverged" and stopped.num_steps_run < 60
    model, opt, batches = _setup()
    full = lrkit.find_lr(model, opt, batches, start_lr=1e-4, end_lr=100.0, num_steps=60, diverge_factor=None)
    assert full.stop_reason in ("completed", "non-finite")
    assert full.num_steps_run > stopped.num_steps_run


@pytest.mark.parametrize("bad", [1.0, 0.5, float("inf"), -2.0])
def test_bad_diverge_factor_names_none_as_the_off_switch(bad: float) -> None:
    model, opt, batches = _setup()
    with pytest.raises(ValueError, match="diverge_factor"):
        lrkit.find_lr(model, opt, batches, diverge_factor=bad)


class _FastaiLikeOptimizer:
    """param_groups and step() as a torch optimizer has, but its own zero_grad() without set_to_none."""

    def __init__(self, params: Any) -> None:
        self.param_groups = [{"params": list(params), "lr": 0.1}]

    def step(self) -> None:
        pass

    def zero_grad(self) -> None:
        pass


class _Wrapper:
    """A wrapper of a torch optimizer whose zero_grad forwards keywords: accepted."""

    def __init__(self, inner: torch.optim.Optimizer) -> None:
        self.inner = inner

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.inner.param_groups

    @property
    def state(self) -> Any:
        return self.inner.state

    def step(self, *a: Any, **k: Any) -> Any:
        return self.inner.step(*a, **k)

    def zero_grad(self, **kwargs: Any) -> None:
        self.inner.zero_grad(**kwargs)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.inner.load_state_dict(d)


def test_optimizer_without_set_to_none_is_refused_up_front() -> None:
    model, _, batches = _setup()
    opt = _FastaiLikeOptimizer(model.parameters())
    with pytest.raises(ValueError, match=r"zero_grad\(\) takes no set_to_none: not a torch optimizer; pass a "
                                         r"torch.optim optimizer"):
        lrkit.find_lr(model, opt, batches)


def test_wrapper_forwarding_keywords_is_accepted() -> None:
    model, opt, batches = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    r = lrkit.find_lr(model, _Wrapper(opt), batches, num_steps=20)
    assert r.num_steps_run > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
