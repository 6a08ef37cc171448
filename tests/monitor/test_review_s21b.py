"""Review of the frozen-parameter snapshots (session 21): a state saved by the default monitor and loaded into a
``snapshot_frozen=True`` one, a monitor state loaded before the model's, and a frozen backbone built under
``torch.inference_mode()`` (whose parameters have no version counter)."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch
from test_frozen_snapshot_s21 import data, freeze_backbone, head_only, make_model
from torch import nn

from _helpers import assert_same
from lrkit.monitor import Monitor


def unfreeze(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    params = [*model[0].parameters(), *model[2].parameters()]
    for p in params:
        p.requires_grad_(True)
    opt.add_param_group({"params": params, "lr": 0.01})


def steps(model: nn.Module, opt: torch.optim.Optimizer, monitor: Monitor, n: int, *, poison: int | None = None) -> None:
    x, y = data()
    for step in range(n):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y) * (float("inf") if step == poison else 1.0)
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()


def saved_run(**kw: Any) -> tuple[nn.Sequential, torch.optim.Optimizer, Monitor, dict[str, Any]]:
    """Three steps of a head-only run (the healthy snapshot is step 0's, the backbone uncopied), and its checkpoint."""
    model = make_model()
    freeze_backbone(model)
    opt = head_only(model)
    monitor = Monitor(model, opt, **kw)
    steps(model, opt, monitor, 3)
    ckpt = copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict(),
                          "monitor": monitor.state_dict(snapshot=True)})
    return model, opt, monitor, ckpt


def unfreeze_and_roll_back(model: nn.Sequential, opt: torch.optim.Optimizer, monitor: Monitor) -> None:
    """The backbone joins the optimizer, trains three steps, and the fourth step's inf loss rolls everything back."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: the rollback is exact
        unfreeze(model, opt)
        steps(model, opt, monitor, 4, poison=3)
    assert monitor.rollbacks == 1


@pytest.mark.parametrize("device", [None, "cpu"])
def test_a_default_monitors_state_loaded_with_snapshot_frozen_true_restores_an_unfrozen_backbone(
        device: str | None) -> None:
    """Saved by the default monitor (backbone saved as None), resumed with snapshot_frozen=True (the setting the
    rollback warning recommends): the backbone unfrozen after the resume is restored by the rollback, as in the
    uninterrupted run, instead of being left as trained."""
    model, opt, monitor, ckpt = saved_run(snapshot_device=device)
    at_snapshot = copy.deepcopy(model.state_dict())  # steps 0-2 trained the head only; the backbone is as at step 0
    twin = make_model(seed=1)
    freeze_backbone(twin)
    twin.load_state_dict(ckpt["model"])
    twin_opt = head_only(twin)
    twin_opt.load_state_dict(ckpt["opt"])
    resumed = Monitor(twin, twin_opt, snapshot_device=device, snapshot_frozen=True)
    resumed.load_state_dict(ckpt["monitor"])
    unfreeze_and_roll_back(model, opt, monitor)
    unfreeze_and_roll_back(twin, twin_opt, resumed)
    assert torch.equal(twin[0].weight, at_snapshot["0.weight"])  # the backbone is back where it was
    assert_same(twin.state_dict(), model.state_dict())


def test_a_monitor_state_loaded_before_the_models_resumes_as_the_uninterrupted_run() -> None:
    """monitor.load_state_dict() before model.load_state_dict(): the model's load writes the frozen backbone (the
    same values), which is no change since the snapshot: no warning at the rollback, and a backbone unfrozen after
    the resume is still copied in and restored exactly."""
    model, opt, monitor, ckpt = saved_run()
    twin = make_model(seed=1)
    freeze_backbone(twin)
    twin_opt = head_only(twin)
    resumed = Monitor(twin, twin_opt)
    resumed.load_state_dict(ckpt["monitor"])  # the monitor first ...
    twin.load_state_dict(ckpt["model"])  # ... then model and optimizer
    twin_opt.load_state_dict(ckpt["opt"])
    unfreeze_and_roll_back(model, opt, monitor)
    unfreeze_and_roll_back(twin, twin_opt, resumed)
    assert_same(twin.state_dict(), model.state_dict())
    # without the unfreeze too: a plain rollback after the resume names nothing
    _, _, _, ckpt = saved_run()
    twin = make_model(seed=1)
    freeze_backbone(twin)
    twin_opt = head_only(twin)
    resumed = Monitor(twin, twin_opt)
    resumed.load_state_dict(ckpt["monitor"])
    twin.load_state_dict(ckpt["model"])
    twin_opt.load_state_dict(ckpt["opt"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steps(twin, twin_opt, resumed, 2, poison=1)
    assert resumed.rollbacks == 1


@pytest.mark.parametrize("device", [None, "cpu"])
def test_a_frozen_backbone_built_under_inference_mode_trains_rolls_back_and_saves(device: str | None) -> None:
    """Parameters created under torch.inference_mode() have no version counter (reading it raises): a frozen backbone
    of them is not copied, and the monitor neither fails at its first snapshot nor at the rollback."""
    torch.manual_seed(0)
    with torch.inference_mode():
        backbone = nn.Linear(4, 32)
    backbone.requires_grad_(False)
    assert backbone.weight.is_inference()
    model = nn.Sequential(backbone, nn.Tanh(), nn.Linear(32, 1))
    before = backbone.weight.clone()
    opt = torch.optim.SGD(model[2].parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_device=device)
    x, y = data()
    head_at_snapshot = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(6):
            if step == 0:
                head_at_snapshot = copy.deepcopy(model[2].state_dict())
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y) * (float("inf") if step == 5 else 1.0)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
    assert monitor.rollbacks == 1
    assert head_at_snapshot is not None
    assert_same(model[2].state_dict(), head_at_snapshot)
    assert torch.equal(backbone.weight, before)
    assert [t is None for t in monitor.state_dict(snapshot=True)["healthy"]["params"]] == [True, True, False, False]
