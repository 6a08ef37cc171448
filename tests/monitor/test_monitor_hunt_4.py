"""Defects found by a fourth hunt through lrkit.Monitor in hand-written loops: each test failed before its fix.

Known answers: the model's train/eval modes the loop set, the weights held at the best validation loss (bit for
bit), and the optimizer whose LR the scheduler actually drives.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S

import lrkit
from lrkit.monitor import Check, Finding, Monitor, NonFinite, ValidationRising


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.1), nn.Linear(8, 1))


def _train(model: nn.Module, opt: torch.optim.Optimizer, monitor: Monitor, steps: int, *,
           bad: int | None = None) -> None:
    g = torch.Generator().manual_seed(1)
    for t in range(steps):
        x = torch.randn(32, 4, generator=g)
        y = x.sum(dim=1, keepdim=True)  # learnable: the loss falls whatever dropout draws (torch releases differ)
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        if t == bad:
            loss = loss * float("nan")
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()


# ------------------------------------------------------------------------------------------- train/eval modes
def _validate(monitor: Monitor, model: nn.Module, val_loss: float) -> None:
    """The usual validation: eval mode for the evaluation and the monitor's call, train mode again after it."""
    model.eval()
    monitor.after_validation(val_loss)
    model.train()


def test_a_training_rollback_after_a_validation_rollback_leaves_the_model_in_train_mode() -> None:
    # the validation rollback took a fresh healthy snapshot while the loop had the model in eval mode; a later
    # training rollback restored those modes: BatchNorm stopped tracking statistics and dropout switched off
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, grad_every=1, checks=[NonFinite(), ValidationRising(min_train_drop=0.0)])
    for val_loss in (1.0, 0.5, 0.9, 0.95, 0.97):
        _train(model, opt, monitor, 3)
        _validate(monitor, model, val_loss)
    assert [(e.check, e.action) for e in monitor.events] == [("val_rising", "rollback")]
    _train(model, opt, monitor, 5, bad=2)
    assert monitor.events[-1].check == "non_finite" and monitor.events[-1].action == "rollback"
    assert [m.training for m in model.modules()] == [True] * 5


def test_a_rollback_keeps_the_modes_the_loop_set_since_the_snapshot() -> None:
    # a loop that freezes BatchNorm mid-run (fine-tuning) keeps it frozen through a rollback, and a stop with
    # restore_on_stop does not switch modes either
    for action in ("rollback", "stop"):
        model = _net()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        monitor = Monitor(model, opt, grad_every=1, on_divergence=action)
        _train(model, opt, monitor, 5)
        model[1].eval()
        _train(model, opt, monitor, 3, bad=1)
        assert [e.action for e in monitor.events] == [action]
        assert [m.training for m in model.modules()] == [True, True, False, True, True], action


# ------------------------------------------------------------------------------------------- -inf validation loss
def test_a_minus_inf_validation_loss_does_not_replace_the_best_validation_weights() -> None:
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, opt)
    monitor.after_validation(1.0)
    best = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        model.weight.add_(5.0)  # training went on and broke the model
    monitor.after_validation(float("-inf"))
    assert monitor.events[-1].check == "val_rising" and monitor.events[-1].action == "rollback"
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), best))
    # and the best stays the finite one for later evaluations
    monitor.after_validation(torch.tensor(float("-inf")))
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), best))


# ------------------------------------------------------------------------------------------- what scheduler= takes
def test_a_scheduler_of_another_optimizer_is_refused() -> None:
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    other = torch.optim.SGD(nn.Linear(3, 1).parameters(), lr=0.5)
    for sched in (S.StepLR(other, 1), S.ReduceLROnPlateau(other),
                  S.SequentialLR(other, [S.ConstantLR(other), S.StepLR(other, 2)], [3]),
                  lrkit.schedules.Cosine(total_steps=10).to_torch(other)):
        with pytest.raises(ValueError, match="another optimizer") as info:
            Monitor(model, opt, scheduler=sched)
        assert type(sched).__name__ in str(info.value)


def test_a_scheduler_of_the_same_parameters_through_a_wrapper_is_accepted() -> None:
    # an optimizer wrapper (accelerate's AcceleratedOptimizer, ...) shares the wrapped optimizer's param groups
    model = nn.Linear(3, 1)
    inner = torch.optim.SGD(model.parameters(), lr=0.1)

    class Wrapped(torch.optim.Optimizer):
        def __init__(self, opt: torch.optim.Optimizer) -> None:
            self.optimizer = opt

        @property
        def param_groups(self) -> list:  # type: ignore[override]
            return self.optimizer.param_groups

        @property
        def state(self) -> dict:  # type: ignore[override]
            return self.optimizer.state

        def step(self, closure=None):  # type: ignore[no-untyped-def]
            return self.optimizer.step(closure)

    for opt in (Wrapped(inner), inner):  # neither raises: the scheduler drives these parameters' LR
        sched = S.StepLR(inner, 1)
        assert Monitor(model, opt, scheduler=sched).scheduler is sched


def test_a_scheduler_class_or_an_lrkit_schedule_is_refused_with_the_fix() -> None:
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"scheduler=StepLR is a class"):
        Monitor(model, opt, scheduler=S.StepLR)
    with pytest.raises(ValueError, match=r"to_torch\(optimizer\)"):
        Monitor(model, opt, scheduler=lrkit.schedules.Cosine(total_steps=10))


# ------------------------------------------------------------------------------------------- custom checks
def test_a_custom_check_that_returns_no_finding_gets_a_clear_error() -> None:
    class Loud(Check):
        name = "loud"
        category = "divergence"

        def check(self, record):  # type: ignore[no-untyped-def]
            return "loss is high" if record.last_loss > 5 else None

    class Fine(Check):
        name = "fine"
        category = "divergence"

        def check(self, record):  # type: ignore[no-untyped-def]
            return Finding("loss is high", {"loss": record.last_loss}) if record.last_loss > 5 else None

    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, opt, checks=[Fine(), Loud()])
    with pytest.raises(TypeError, match=r"check 'loud' returned str 'loss is high'.*Finding"):
        monitor.after_backward(10.0)


# ------------------------------------------------------------------------------------------- a model grown mid-run
def test_a_rollback_after_a_layer_was_inserted_mid_run_restores_each_parameter_its_own_value() -> None:
    # a layer inserted before the head (and given to the optimizer as a new group) shifted model.parameters(): the
    # healthy snapshot's copies were written back by position — the head's old weights into the new layer
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 4)), nn.Linear(4, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = Monitor(model, opt, grad_every=1, checks=[NonFinite(), ValidationRising(min_train_drop=0.0)])
    x = torch.randn(32, 4)

    def train(steps: int, bad: int | None = None) -> None:
        for t in range(steps):
            opt.zero_grad()
            loss = model(x).pow(2).mean() * (float("nan") if t == bad else 1.0)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()

    healthy = {id(p): p.detach().clone() for p in model.parameters()}  # the snapshot of step 0, taken before it
    train(3)
    monitor.after_validation(0.5)  # the best-validation snapshot, of the smaller model
    best = {id(p): p.detach().clone() for p in model.parameters()}
    model[0].append(nn.Linear(4, 4))
    opt.add_param_group({"params": model[0][1].parameters()})
    new = [p.detach().clone() for p in model[0][1].parameters()]
    train(2, bad=1)  # step 0 trains the new layer, step 1 is rolled back to the healthy snapshot of step 0
    assert [e.action for e in monitor.events] == ["rollback"]
    old = [*model[0][0].parameters(), *model[1].parameters()]
    assert all(torch.equal(p, healthy[id(p)]) for p in old)
    # the new layer keeps what it has (the snapshot does not know it), as the new group's hyperparameters do
    trained = [p.detach().clone() for p in model[0][1].parameters()]
    assert not any(torch.equal(a, b) for a, b in zip(trained, new))
    # the validation rollback returns to the best-validation weights the same way
    for val_loss in (0.9, 0.95, 0.97):
        monitor.after_validation(val_loss)
    assert [e.check for e in monitor.events] == ["non_finite", "val_rising"]
    assert all(torch.equal(p, best[id(p)]) for p in old)
    assert all(torch.equal(p, t) for p, t in zip(model[0][1].parameters(), trained))
