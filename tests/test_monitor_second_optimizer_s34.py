"""Session 34: ``Monitor(model, opt1, scheduler_of_opt2)`` where ``opt2`` is a second optimizer over the *same*
parameters was accepted (the check compared parameter sets only). That scheduler never moves ``opt1``'s LR, and the
monitor's back-off then scaled the wrong scheduler's base LRs. Wrappers, which share the wrapped optimizer's group
dicts or hold it as ``.optimizer``, stay accepted."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lrkit


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 1)


def test_a_second_optimizer_over_the_same_parameters_is_refused() -> None:
    model = _model()
    mine = torch.optim.SGD(model.parameters(), lr=0.1)
    other = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(other, 10)
    with pytest.raises(ValueError, match="steps another optimizer") as info:
        lrkit.Monitor(model, mine, sched)
    assert "StepLR" in str(info.value) and "scheduler=None" in str(info.value)


class _Wrapper:
    """An accelerate/Lightning-style wrapper: delegates, and shares the wrapped optimizer's groups."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups


class _CopyingWrapper(_Wrapper):
    """A wrapper that keeps its own group dicts (same parameters), reachable through ``.optimizer``."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        super().__init__(optimizer)
        self._groups = [dict(g) for g in optimizer.param_groups]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self._groups


@pytest.mark.parametrize("wrapper", [_Wrapper, _CopyingWrapper])
def test_a_scheduler_on_a_wrapper_of_the_monitors_optimizer_is_accepted(wrapper: type[_Wrapper]) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    sched.optimizer = wrapper(opt)  # type: ignore[assignment]  # as a framework that wraps after building would
    monitor = lrkit.Monitor(model, opt, sched)
    assert monitor.scheduler is sched
