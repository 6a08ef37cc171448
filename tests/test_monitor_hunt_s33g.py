"""Session 33 bug hunt (helper g): lrkit.Monitor in hand-written training loops."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

import lrkit


def _run(opt_kind: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, lrkit.Monitor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    if opt_kind == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
    monitor = lrkit.Monitor(model, opt, grad_every=1)
    x = torch.randn(4, 3)
    for _ in range(3):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
    return model, opt, monitor


def _saved(opt_kind: str) -> dict:
    _, _, monitor = _run(opt_kind)
    buf = io.BytesIO()
    torch.save(monitor.state_dict(snapshot=True), buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_snapshot_of_another_optimizer_is_refused_at_load_not_at_the_next_rollback():
    # a resume that switched SGD -> Adam: the SGD snapshot used to load silently, and the first rollback put SGD's
    # groups (no 'betas') and momentum buffers into Adam, whose next step() failed with KeyError: 'betas'
    state = _saved("sgd")
    _, _, monitor = _run("adam")
    before = monitor.state_dict(snapshot=True)
    match = r"has no 'betas'.*which Adam's groups hold.*another kind of optimizer"
    with pytest.raises(ValueError, match=match) as info:
        monitor.load_state_dict(state)
    assert "healthy" in str(info.value) and "same optimizer" in str(info.value)
    after = monitor.state_dict(snapshot=True)  # a refused state changes nothing
    assert after["step"] == before["step"] and after["events"] == before["events"]
    assert all(torch.equal(a, b) for a, b in zip(after["healthy"]["params"], before["healthy"]["params"]))


def test_the_suggested_way_with_a_new_optimizer_loads_and_rolls_back_cleanly():
    state = _saved("sgd")
    model, opt, monitor = _run("adam")
    with pytest.raises(ValueError, match="leave the snapshots out"):
        monitor.load_state_dict(state)
    monitor.load_state_dict({k: v for k, v in state.items() if k not in ("healthy", "best_val")})
    x = torch.randn(4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(4):
            opt.zero_grad()
            loss = model(x).pow(2).mean() * (float("nan") if i == 2 else 1.0)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()  # Adam's own groups and state: no KeyError after the rollback
            monitor.after_step()
    assert monitor.rollbacks == 1 and "betas" in opt.param_groups[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_snapshot_of_the_same_optimizer_still_loads():
    state = _saved("adam")
    _, _, monitor = _run("adam")
    monitor.load_state_dict(state)
    assert monitor.step == 2


@pytest.mark.parametrize("scheduled", [False, True])
def test_a_group_added_after_the_snapshot_is_backed_off_once_per_rollback(scheduled: bool):
    # a head (or an unfrozen backbone) joins with add_param_group after the healthy snapshot; two rollbacks before the
    # snapshot is refreshed: its LR used to end at 0.02 * 0.3 * 0.09 (every earlier back-off applied again), not at
    # 0.02 * 0.3 ** 2 as the restored group's 0.01 * 0.3 ** 2 -- the groups' LR ratio went from 2 to 0.6
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=1.0) if scheduled else None
    monitor = lrkit.Monitor(model, opt, sched, grad_every=1, snapshot_every=1000)
    x = torch.randn(8, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(12):
            if i == 3:
                model.append(torch.nn.Linear(3, 1))
                opt.add_param_group({"params": model[2].parameters(), "lr": 0.02})
            opt.zero_grad()
            loss = model(x).pow(2).mean() * (float("nan") if i in (6, 9) else 1.0)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            if sched is not None:
                sched.step()
            monitor.after_step()
    assert monitor.rollbacks == 2 and monitor.lr_scale == pytest.approx(0.09)
    body, head = (group["lr"] for group in opt.param_groups)
    assert body == pytest.approx(0.01 * 0.09, rel=1e-9)
    assert head == pytest.approx(0.02 * 0.09, rel=1e-9)
