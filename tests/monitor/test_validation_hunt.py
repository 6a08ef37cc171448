"""Bugs found by driving ``Monitor.after_validation`` the way users do: validation rollbacks mixed with training
rollbacks, optimizers that grow param groups, and resumes around both."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S

from _helpers import assert_same
from lrkit.monitor import Monitor, NonFinite, ValidationRising


def make(**kwargs: object) -> tuple[nn.Module, torch.optim.Optimizer, S.LambdaLR, Monitor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = S.LambdaLR(opt, lambda t: 1.0 / (1.0 + 0.01 * t))
    return model, opt, sched, Monitor(model, opt, sched, **kwargs)  # type: ignore[arg-type]


def train(model: nn.Module, opt: torch.optim.Optimizer, sched: S.LRScheduler | None, monitor: Monitor, steps: int,
          start: int = 0, nan_at: tuple[int, ...] = ()) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 4, generator=g)
    y = x.sum(1, keepdim=True)
    for step in range(start, start + steps):
        idx = torch.randint(0, 256, (32,), generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        monitor.after_backward(loss * float("nan") if step in nan_at else loss)
        opt.step()
        if sched is not None:
            sched.step()
        monitor.after_step()


def state(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, object]:
    return {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict()["state"])}


# ------------------------------------------------------------------ a training rollback keeps the validation history
def test_a_training_rollback_keeps_the_best_validation_loss_and_its_snapshot() -> None:
    """The healthy snapshot (step 0 here: snapshot_every=100) is older than two evaluations. A NaN loss rolls the
    training back to it; the validation losses seen since are still the run's history, so the best (0.5) and its
    snapshot must survive: a later, worse evaluation (0.8) is no new best, and a rise rolls back to the 0.5 weights
    (the training-loss condition is off here: the rolled-back run's training loss is above its value at the best)."""
    model, opt, sched, monitor = make(checks=[NonFinite(), ValidationRising(min_train_drop=0.0)])
    train(model, opt, sched, monitor, 10)
    monitor.after_validation(0.9)
    train(model, opt, sched, monitor, 10, start=10)
    monitor.after_validation(0.5)
    best = state(model, opt)
    held = monitor._healthy
    assert held is not None and held.step == 0  # older than both evaluations
    train(model, opt, sched, monitor, 1, start=20, nan_at=(20,))
    assert [(e.check, e.action) for e in monitor.events] == [("non_finite", "rollback")]
    assert monitor.record.window("val_loss", 10) == [0.9, 0.5]  # not wiped by the training rollback
    assert monitor.record.last_val_loss == 0.5
    train(model, opt, sched, monitor, 10, start=21)
    monitor.after_validation(0.8)  # worse than 0.5: no new best
    assert monitor._best_val is not None and monitor._best_val.step == 19
    train(model, opt, sched, monitor, 10, start=31)
    monitor.after_validation(0.85)  # two evaluations above the best, 70% up
    assert [(e.check, e.action) for e in monitor.events][-1] == ("val_rising", "rollback")
    assert monitor.events[-1].values["best"] == 0.5
    assert_same(state(model, opt), best)
    assert monitor.lr_scale == pytest.approx(0.3 * 0.1) and monitor.rollbacks == 2


def test_a_training_stop_keeps_the_validation_history() -> None:
    model, opt, sched, monitor = make(on_divergence="stop")
    train(model, opt, sched, monitor, 10)
    monitor.after_validation(0.7)
    train(model, opt, sched, monitor, 5, start=10, nan_at=(14,))
    assert monitor.should_stop
    assert monitor.record.window("val_loss", 10) == [0.7] and monitor.record.last_val_loss == 0.7


# ------------------------------------------------------------------ add_param_group after the best snapshot
def _unfreezing() -> tuple[nn.Module, torch.optim.Optimizer, nn.Module]:
    torch.manual_seed(0)
    body, head = nn.Linear(4, 8), nn.Linear(8, 1)
    model = nn.Sequential(body, nn.Tanh(), head)
    body.requires_grad_(False)
    return model, torch.optim.Adam(head.parameters(), lr=1e-2), body


def _adam_steps(model: nn.Module, opt: torch.optim.Optimizer, monitor: Monitor, n: int) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 4, generator=g)
    y = x.sum(1, keepdim=True)
    for _ in range(n):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()


def test_a_monitor_saved_after_add_param_group_resumes_and_rolls_back_like_the_uninterrupted_one() -> None:
    """Progressive unfreezing: the best-validation snapshot was taken with one param group, the backbone's group
    was added after it. A validation rollback in that run works (the new group keeps its hyperparameters); a monitor
    saved there must load into the resumed run and roll back to the same state, not refuse the checkpoint."""

    def run(split: bool) -> tuple[dict[str, object], list[float]]:
        model, opt, body = _unfreezing()
        monitor = Monitor(model, opt)
        _adam_steps(model, opt, monitor, 10)
        monitor.after_validation(0.5)
        body.requires_grad_(True)
        opt.add_param_group({"params": list(body.parameters()), "lr": 1e-3})
        _adam_steps(model, opt, monitor, 10)
        monitor.after_validation(0.6)
        _adam_steps(model, opt, monitor, 10)
        if split:  # save everything, then go on in a "new process"
            saved = copy.deepcopy((model.state_dict(), opt.state_dict(), monitor.state_dict(snapshot=True)))
            model, opt, body = _unfreezing()
            body.requires_grad_(True)
            opt.add_param_group({"params": list(body.parameters()), "lr": 1e-3})
            model.load_state_dict(saved[0])
            opt.load_state_dict(saved[1])
            monitor = Monitor(model, opt)
            monitor.load_state_dict(saved[2])
        monitor.after_validation(0.7)
        assert [(e.check, e.action) for e in monitor.events] == [("val_rising", "rollback")]
        _adam_steps(model, opt, monitor, 5)
        return state(model, opt), [g["lr"] for g in opt.param_groups]

    whole, lrs = run(False)
    assert lrs == pytest.approx([1e-3, 1e-4])
    resumed, resumed_lrs = run(True)
    assert resumed_lrs == lrs
    assert_same(resumed, whole)


def test_a_snapshot_with_more_param_groups_than_the_optimizer_is_still_refused() -> None:
    model, opt, body = _unfreezing()
    body.requires_grad_(True)
    opt.add_param_group({"params": list(body.parameters()), "lr": 1e-3})
    monitor = Monitor(model, opt)
    _adam_steps(model, opt, monitor, 3)
    monitor.after_validation(0.5)
    saved = monitor.state_dict(snapshot=True)
    model2, opt2, _ = _unfreezing()
    with pytest.raises(ValueError, match="has 2 param groups, the optimizer has 1"):
        Monitor(model2, opt2).load_state_dict(saved)
