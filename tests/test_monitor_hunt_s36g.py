"""Session 36 helper g: a bug hunt in ``lrkit.Monitor`` used standalone in a hand-written loop."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import lrkit


class _TwoPart(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(2, 2)
        self.head = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _run_with_group_change(change: str, device: str | None = None
                           ) -> tuple[torch.optim.Optimizer, _TwoPart, lrkit.Monitor]:
    torch.manual_seed(0)
    model = _TwoPart()
    opt = torch.optim.AdamW([{"params": model.body.parameters(), "lr": 1e-3, "weight_decay": 0.0},
                             {"params": model.head.parameters(), "lr": 1e-2, "weight_decay": 0.5}])
    monitor = lrkit.Monitor(model, opt, grad_every=1, snapshot_every=3, snapshot_device=device)
    x = torch.ones(4, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(10):
            if t == 7:  # after the healthy snapshot: the loop changes the optimizer's groups
                if change == "pop_first":
                    opt.param_groups.pop(0)
                elif change == "reverse":
                    opt.param_groups.reverse()
                elif change == "insert_first":
                    extra = torch.nn.Parameter(torch.zeros(1))
                    model.register_parameter("extra", extra)
                    opt.param_groups.insert(0, {**opt.param_groups[0], "params": [extra], "lr": 5e-3,
                                                "weight_decay": 0.1})
            opt.zero_grad()
            loss = (model(x) - 1).pow(2).mean()
            loss.backward()
            monitor.after_backward(loss * float("nan") if t == 8 else loss)
            opt.step()
            monitor.after_step()
    assert monitor.rollbacks == 1
    return opt, model, monitor


@pytest.mark.parametrize("device", [None, "cpu"])
@pytest.mark.parametrize("change", ["pop_first", "reverse", "insert_first"])
def test_rollback_restores_each_groups_hyperparameters_to_its_own_group_after_groups_reordered(
        change: str, device: str | None) -> None:
    # Before session 36 the rollback wrote the snapshot's groups back by position: after the loop removed or
    # reordered param groups, the head's group got the body's LR and weight decay (10x too low an LR, silently).
    opt, model, monitor = _run_with_group_change(change, device)
    by_first = {id(g["params"][0]): g for g in opt.param_groups}
    head = by_first[id(model.head.weight)]
    assert math.isclose(head["lr"], 1e-2 * monitor.backoff, rel_tol=1e-9)
    assert head["weight_decay"] == 0.5
    if change != "pop_first":
        body = by_first[id(model.body.weight)]
        assert math.isclose(body["lr"], 1e-3 * monitor.backoff, rel_tol=1e-9)
        assert body["weight_decay"] == 0.0
    if change == "insert_first":  # the group added after the snapshot keeps its own values, backed off once
        added = by_first[id(model.extra)]
        assert math.isclose(added["lr"], 5e-3 * monitor.backoff, rel_tol=1e-9)
        assert added["weight_decay"] == 0.1


def test_rollback_to_a_loaded_snapshot_matches_groups_by_their_parameters_after_groups_reordered() -> None:
    # The same after a resume: a healthy snapshot loaded with load_state_dict(state_dict(snapshot=True)) was
    # restored by position when the loop reordered the groups afterwards (the head got the body's LR and decay).
    def build() -> tuple[_TwoPart, torch.optim.Optimizer, lrkit.Monitor]:
        torch.manual_seed(0)
        model = _TwoPart()
        opt = torch.optim.AdamW([{"params": model.body.parameters(), "lr": 1e-3, "weight_decay": 0.0},
                                 {"params": model.head.parameters(), "lr": 1e-2, "weight_decay": 0.5}])
        return model, opt, lrkit.Monitor(model, opt, grad_every=1, snapshot_every=100)

    def step(model: _TwoPart, opt: torch.optim.Optimizer, monitor: lrkit.Monitor, bad: bool = False) -> None:
        opt.zero_grad()
        loss = (model(torch.ones(4, 2)) - 1).pow(2).mean()
        loss.backward()
        monitor.after_backward(loss * float("nan") if bad else loss)
        opt.step()
        monitor.after_step()

    model, opt, monitor = build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            step(model, opt, monitor)
        saved = ({k: v.clone() for k, v in model.state_dict().items()}, opt.state_dict(),
                 monitor.state_dict(snapshot=True))
        model, opt, monitor = build()
        model.load_state_dict(saved[0])
        opt.load_state_dict(saved[1])
        monitor.load_state_dict(saved[2])
        step(model, opt, monitor)
        opt.param_groups.reverse()
        step(model, opt, monitor, bad=True)
    assert monitor.rollbacks == 1
    head, body = opt.param_groups
    assert head["params"][0] is model.head.weight
    assert math.isclose(head["lr"], 1e-2 * monitor.backoff, rel_tol=1e-9) and head["weight_decay"] == 0.5
    assert math.isclose(body["lr"], 1e-3 * monitor.backoff, rel_tol=1e-9) and body["weight_decay"] == 0.0
    # the snapshot was taken before the first step: the weights it held, and no optimizer state yet
    first = build()[0]
    assert torch.equal(model.head.weight, first.head.weight) and torch.equal(model.body.weight, first.body.weight)
    assert not opt.state
