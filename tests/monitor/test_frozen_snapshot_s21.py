"""Monitor snapshots leave frozen parameters uncopied (a frozen backbone, a base model under LoRA adapters): the
held snapshots, ``state_dict(snapshot=True)`` and a rollback cover what the optimizer trains, exactly, also across a
backbone unfrozen mid-run; ``snapshot_frozen=True`` copies everything, as before."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from _helpers import assert_same
from lrkit.monitor import Monitor

DEVICES = [None, "cpu"]


def make_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))


def freeze_backbone(model: nn.Sequential) -> list[nn.Parameter]:
    """Freeze the first two Linear layers (the "backbone"); return their parameters."""
    frozen = [*model[0].parameters(), *model[2].parameters()]
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g)
    return x, x.sum(1, keepdim=True).sin()


def run(model: nn.Module, opt: torch.optim.Optimizer, monitor: Monitor, steps: int, *, poison: int | None = None,
        at: dict[int, Any] | None = None) -> dict[int, dict[str, torch.Tensor]]:
    """Train ``steps`` steps of full-batch SGD; ``at[step](model, opt)`` runs before that step; the loss of step
    ``poison`` is inf. Returns the model's state before each step."""
    x, y = data()
    seen = {}
    for step in range(steps):
        if at and step in at:
            at[step](model, opt)
        seen[step] = copy.deepcopy(model.state_dict())
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        if step == poison:
            loss = loss * float("inf")
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
    return seen


def head_only(model: nn.Sequential, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(model[4].parameters(), lr=0.05, momentum=0.9, **kw)


@pytest.mark.parametrize("device", DEVICES)
def test_the_snapshot_holds_no_copy_of_frozen_parameters_and_saves_none_for_them(device: str | None) -> None:
    model = make_model()
    freeze_backbone(model)
    opt = head_only(model)
    monitor = Monitor(model, opt, snapshot_device=device)
    run(model, opt, monitor, 3)
    saved = monitor.state_dict(snapshot=True)["healthy"]["params"]
    # model.parameters(): backbone weight, bias, weight, bias (frozen), head weight, bias (trained)
    assert [t is None for t in saved] == [True, True, True, True, False, False]
    # the trained ones are copies, not the live tensors
    assert all(t is not p for t, p in zip(saved[4:], model[4].parameters()))
    # snapshot_frozen=True copies every parameter, as before
    everything = Monitor(model, opt, snapshot_device=device, snapshot_frozen=True)
    run(model, opt, everything, 3)
    saved = everything.state_dict(snapshot=True)["healthy"]["params"]
    assert all(t is not None for t in saved)
    assert all(t is not p for t, p in zip(saved, model.parameters()))


@pytest.mark.parametrize("device", DEVICES)
def test_a_rollback_with_a_frozen_backbone_is_exact_and_leaves_the_backbone_untouched(device: str | None) -> None:
    results = []
    for snapshot_frozen in (False, True):
        model = make_model()
        frozen = freeze_backbone(model)
        before = [p.detach().clone() for p in frozen]
        opt = head_only(model)
        monitor = Monitor(model, opt, snapshot_device=device, snapshot_frozen=snapshot_frozen)
        seen = run(model, opt, monitor, 8, poison=7)  # the healthy snapshot is taken at step 0
        assert monitor.rollbacks == 1
        assert_same(model.state_dict(), seen[0])  # back at the snapshot, bit for bit
        assert all(torch.equal(p, b) for p, b in zip(frozen, before))
        results.append((model.state_dict(), opt.state_dict()))
    assert_same(results[0], results[1])


@pytest.mark.parametrize("device", DEVICES)
def test_a_backbone_unfrozen_after_the_snapshot_is_restored_exactly_by_a_rollback(device: str | None) -> None:
    """The gradual-unfreezing case: the backbone joins the optimizer (add_param_group) after the healthy snapshot
    was taken without it; the next after_backward copies it into the snapshot before any step trains it."""

    def unfreeze(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
        params = [*model[0].parameters(), *model[2].parameters()]
        for p in params:
            p.requires_grad_(True)
        opt.add_param_group({"params": params, "lr": 0.01})

    states = []
    for snapshot_frozen in (False, True):
        model = make_model()
        freeze_backbone(model)
        opt = head_only(model)
        monitor = Monitor(model, opt, snapshot_device=device, snapshot_frozen=snapshot_frozen)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing to warn about: the rollback is exact
            seen = run(model, opt, monitor, 10, poison=9, at={4: unfreeze})
        assert monitor.rollbacks == 1 and monitor.step == 9
        assert not torch.equal(seen[9]["0.weight"], seen[0]["0.weight"])  # the backbone did train after step 4
        assert_same(model.state_dict(), seen[0])  # every layer back at the step-0 snapshot
        states.append((model.state_dict(), opt.state_dict()))
    assert_same(states[0], states[1])


def test_an_unfreeze_the_monitor_cannot_see_in_time_is_named_at_the_rollback() -> None:
    """Parameters appended to an existing group's list (no new group) are noticed at the next full step only, after
    steps have trained them: the snapshot has no copy, the rollback warns naming them and leaves them as they are."""

    def unfreeze_in_place(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
        model[2].weight.requires_grad_(True)
        opt.param_groups[0]["params"].append(model[2].weight)

    model = make_model()
    freeze_backbone(model)
    opt = head_only(model)
    monitor = Monitor(model, opt)
    with pytest.warns(UserWarning, match=r"'2\.weight' was frozen .* snapshot_frozen=True") as caught:
        seen = run(model, opt, monitor, 10, poison=9, at={4: unfreeze_in_place})
    assert caught[0].filename == __file__  # pointed at the loop's after_step() call
    assert monitor.rollbacks == 1
    restored = model.state_dict()
    assert torch.equal(restored["4.weight"], seen[0]["4.weight"])  # the rest is back at the snapshot
    assert not torch.equal(restored["2.weight"], seen[0]["2.weight"])  # this one stayed as trained
    # with snapshot_frozen=True the same loop is restored exactly, without a warning
    model = make_model()
    freeze_backbone(model)
    opt = head_only(model)
    monitor = Monitor(model, opt, snapshot_frozen=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seen = run(model, opt, monitor, 10, poison=9, at={4: unfreeze_in_place})
    assert_same(model.state_dict(), seen[0])


def test_a_frozen_parameter_written_in_place_is_named_at_the_rollback() -> None:
    """An EMA-style write into a frozen parameter kept inside the model: not covered by default (warned), covered by
    snapshot_frozen=True."""

    def ema(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            model[0].bias.mul_(0.5)

    model = make_model()
    freeze_backbone(model)
    opt = head_only(model)
    monitor = Monitor(model, opt)
    with pytest.warns(UserWarning, match=r"'0\.bias' was frozen"):
        run(model, opt, monitor, 8, poison=7, at={3: ema})
    model2 = make_model()
    freeze_backbone(model2)
    opt2 = head_only(model2)
    monitor2 = Monitor(model2, opt2, snapshot_frozen=True)
    seen = run(model2, opt2, monitor2, 8, poison=7, at={3: ema})
    assert_same(model2.state_dict(), seen[0])


@pytest.mark.parametrize("device", DEVICES)
def test_a_resumed_monitor_rolls_back_as_the_uninterrupted_one(device: str | None) -> None:
    """state_dict(snapshot=True) saves None for the uncopied parameters; loaded into a fresh monitor of the resumed
    run, a rollback lands where the uninterrupted run's does, and an unfreeze after the resume is still exact."""

    def unfreeze(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
        params = [*model[0].parameters(), *model[2].parameters()]
        for p in params:
            p.requires_grad_(True)
        opt.add_param_group({"params": params, "lr": 0.01})

    model = make_model()
    freeze_backbone(model)
    opt = head_only(model)
    monitor = Monitor(model, opt, snapshot_device=device)
    run(model, opt, monitor, 3)
    ckpt = {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict()),
            "monitor": monitor.state_dict(snapshot=True)}
    saved = ckpt["monitor"]["healthy"]["params"]
    assert sum(t is None for t in saved) == 4
    twin = make_model(seed=1)
    freeze_backbone(twin)
    twin.load_state_dict(ckpt["model"])
    twin_opt = head_only(twin)
    twin_opt.load_state_dict(ckpt["opt"])
    resumed = Monitor(twin, twin_opt, snapshot_device=device)
    resumed.load_state_dict(ckpt["monitor"])
    x, y = data()
    snapshot_state = copy.deepcopy(model.state_dict())  # (the same model state: steps 0-2 ran, the snapshot is step 0)
    for m, o, mon in ((model, opt, monitor), (twin, twin_opt, resumed)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            unfreeze(m, o)
            for step in range(4):
                o.zero_grad()
                loss = nn.functional.mse_loss(m(x), y) * (float("inf") if step == 3 else 1.0)
                loss.backward()
                mon.after_backward(loss)
                o.step()
                mon.after_step()
        assert mon.rollbacks == 1
    assert_same(twin.state_dict(), model.state_dict())
    assert torch.equal(twin[0].weight, snapshot_state["0.weight"])  # the backbone is back where it was


def test_snapshot_frozen_must_be_a_bool() -> None:
    model = make_model()
    with pytest.raises(ValueError, match=r"snapshot_frozen='yes' must be True or False"):
        Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), snapshot_frozen="yes")  # type: ignore[arg-type]


def test_lrkit_train_with_frozen_layers_keeps_no_copy_of_them_in_last_pt(tmp_path: Any) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    res = lrkit.train(model, data="digits", epochs=1, lr0=0.01, freeze=1, project=str(tmp_path), name="f",
                      verbose=False)
    ckpt = torch.load(res.run_dir / "last.pt", weights_only=True)
    monitor_state = ckpt["monitor"]
    params = monitor_state["healthy"]["params"]
    assert [t is None for t in params] == [True, True, False, False]


def test_a_validation_rollback_across_an_unfreeze_restores_the_best_weights_exactly() -> None:
    """The best-validation snapshot, taken while the backbone was frozen, gets the backbone's copy when it joins the
    optimizer: rolling back to the best weights puts the backbone back too."""
    vals = [1.0, 0.9, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
    states = []
    for snapshot_frozen in (False, True):
        model = make_model()
        freeze_backbone(model)
        opt = head_only(model)
        monitor = Monitor(model, opt, snapshot_frozen=snapshot_frozen)
        x, y = data()
        best = None
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            for step in range(80):
                if step == 35:  # after the best evaluation (step 29)
                    params = [*model[0].parameters(), *model[2].parameters()]
                    for p in params:
                        p.requires_grad_(True)
                    opt.add_param_group({"params": params, "lr": 0.01})
                opt.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                monitor.after_backward(nn.functional.mse_loss(model(x), y).detach())
                opt.step()
                monitor.after_step()
                if step % 10 == 9:
                    if step == 29:
                        best = copy.deepcopy(model.state_dict())
                    monitor.after_validation(vals[step // 10])
                if monitor.events:
                    break
        assert [e.check for e in monitor.events] == ["val_rising"] and monitor.rollbacks == 1
        assert best is not None
        assert_same(model.state_dict(), best)
        states.append(model.state_dict())
    assert_same(states[0], states[1])
