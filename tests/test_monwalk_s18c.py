"""Session 18c: a hand-written training loop's walk through ``lrkit.Monitor`` (the README's loop contract, records and
pictures), as a demanding user would write it: numpy float16 settings and losses, a GradScaler, several param groups,
BatchNorm, rushed call orders. Each test failed before its fix."""

from __future__ import annotations

import copy
import json
import math
import warnings

import numpy as np
import pytest
import torch

import lrkit
from lrkit.monitor import MonitorEvent, RollingRecord, backoff_lr
from lrkit.monitor.actions import resolve_action

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _model() -> torch.nn.Module:
    torch.manual_seed(1)
    nn = torch.nn
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


def _groups(m: torch.nn.Module) -> list[dict]:
    return [{"params": m[0].parameters(), "lr": 0.05},
            {"params": [*m[1].parameters(), *m[3].parameters()], "lr": 0.1}]


_X = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
_Y = (_X.sum(1) > 0).long()


# ------------------------------------------------------------------------------------------------ numpy float16 input
def test_val_min_share_numpy_float16_raises_no_overflow_warning() -> None:
    m = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's RuntimeWarning "overflow encountered in cast" was raised here
        mon = lrkit.Monitor(m, opt, val_min_share=np.float16(0.25))
    share = [c.min_share for c in mon.checks if c.name == "val_rising"]
    assert share == [0.25] and type(share[0]) is float


def test_val_min_share_takes_a_zero_dim_tensor_as_backoff_does() -> None:
    m = torch.nn.Linear(2, 1)
    mon = lrkit.Monitor(m, torch.optim.SGD(m.parameters(), lr=0.1), val_min_share=torch.tensor(0.5))
    assert [c.min_share for c in mon.checks if c.name == "val_rising"] == [0.5]


@pytest.mark.parametrize("bad", [np.float16("inf"), np.float16("nan"), -1, "0.1", torch.tensor([0.1, 0.2])])
def test_val_min_share_bad_values_still_refused_with_the_value(bad: object) -> None:
    m = torch.nn.Linear(2, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"val_min_share=.*must be None .* or a finite number >= 0"):
            lrkit.Monitor(m, torch.optim.SGD(m.parameters(), lr=0.1), val_min_share=bad)


def test_val_min_share_huge_int_message_is_short() -> None:
    m = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r"val_min_share=<an integer of 401 digits> must be None") as info:
        lrkit.Monitor(m, torch.optim.SGD(m.parameters(), lr=0.1), val_min_share=10**400)
    assert len(str(info.value)) < 300


# ------------------------------------------------------------------------------------------------ odd loss types
def test_timedelta_loss_is_a_clear_value_error_not_a_float_typeerror() -> None:
    m = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    mon = lrkit.Monitor(m, opt)
    m(_X).sum().backward()
    # np.timedelta64 subclasses numpy's signedinteger (so numbers.Real): float() of its .item() was a TypeError
    with pytest.raises(ValueError, match="after_backward.*timedelta64"):
        mon.after_backward(np.timedelta64(1, "s"))
    assert mon.step == -1  # nothing counted
    with pytest.raises(ValueError, match="after_validation.*timedelta64"):
        mon.after_validation(np.timedelta64(1, "s"))
    assert mon.after_backward(np.float16(0.5)) is True  # still usable
    opt.step()
    mon.after_step()


# ------------------------------------------------------------------------------------------------ what a user reads
def test_repr_lists_the_validation_check_too() -> None:
    m = torch.nn.Linear(2, 1)
    mon = lrkit.Monitor(m, torch.optim.SGD(m.parameters(), lr=0.1))
    assert "val_rising->rollback" in repr(mon)
    off = lrkit.Monitor(m, torch.optim.SGD(m.parameters(), lr=0.1), on_overfit=None)
    assert "val_rising" not in repr(off)


def _spiking_run(**kw: object) -> lrkit.Monitor:
    m = _model()
    opt = torch.optim.SGD(_groups(m), momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10, 0.5)
    scaler = torch.amp.GradScaler("cpu")
    mon = lrkit.Monitor(m, opt, scheduler=sched, grad_scaler=scaler, **kw)
    for step in range(20):
        i = (step * 16) % 256
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(_X[i:i + 16]), _Y[i:i + 16])
        if step == 14:
            loss = loss * 1000
        scaler.scale(loss).backward()
        mon.after_backward(loss)
        scaler.step(opt)
        scaler.update()
        sched.step()
        mon.after_step()
    return mon


def test_spike_event_carries_no_sentinel_grace_start() -> None:
    mon = _spiking_run()
    spikes = [e for e in mon.events if e.check == "loss_spike"]
    assert spikes and spikes[0].action == "rollback"
    # no grace episode ever began: the event used to carry grace_start=-1e9, a number no step has
    assert all(v > -1 for v in spikes[0].values.values() if isinstance(v, float) and math.isfinite(v))
    assert "grace_start" not in spikes[0].values


def test_non_finite_reason_under_a_grad_scaler_does_not_say_the_loss_is_in_a_parameter() -> None:
    m = _model()
    opt = torch.optim.AdamW(_groups(m))
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    mon = lrkit.Monitor(m, opt, grad_scaler=scaler, on_divergence="stop")
    for step in range(4):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(m(_X[:16]).float(), _Y[:16])
        if step == 3:
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        mon.after_backward(loss)
        scaler.step(opt)
        scaler.update()
        mon.after_step()
    (event,) = mon.events
    assert event.check == "non_finite"
    # before: "loss is inf in '0.weight', ..." (the gradient note glued to the loss clause)
    assert "loss is inf in" not in event.reason
    assert "non-finite gradients in '0.weight'" in event.reason
    assert "loss is inf in" not in mon.stop_reason


def test_grad_scaler_class_instead_of_instance_is_refused() -> None:
    m = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r"grad_scaler=GradScaler is a class: pass the scaler instance"):
        lrkit.Monitor(m, torch.optim.SGD(m.parameters(), lr=0.1), grad_scaler=torch.amp.GradScaler)


@pytest.mark.parametrize("bad", [1, True, 0.3])
def test_action_of_the_wrong_type_lists_the_valid_actions(bad: object) -> None:
    with pytest.raises(ValueError, match=r"on_divergence=.* must be an action name .*Valid: warn, skip, rollback, "
                                         r"stop, ignore"):
        resolve_action("on_divergence", "divergence", bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ backoff_lr
@pytest.mark.parametrize("factor", [np.float32(0.5), np.float16(0.5), torch.tensor(0.5), np.array(0.5)])
def test_backoff_lr_takes_numpy_and_tensor_scalars(factor: object) -> None:
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    backoff_lr(opt, sched, factor)  # type: ignore[arg-type]
    assert opt.param_groups[0]["lr"] == 0.5 and sched.base_lrs == [0.5]
    assert type(opt.param_groups[0]["lr"]) is float


@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), np.float16("inf"), "0.5", True, torch.tensor([0.5, 0.5])])
def test_backoff_lr_bad_factor_named(bad: object) -> None:
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
    with pytest.raises(ValueError, match=r"factor=.* must be a finite number > 0"):
        backoff_lr(opt, None, bad)  # type: ignore[arg-type]
    assert opt.param_groups[0]["lr"] == 1.0


# ------------------------------------------------------------------------------------------------ records
@pytest.mark.parametrize("step", ["x", 3.7, None, True, float("nan")])
def test_event_from_dict_bad_step_named(step: object) -> None:
    d = {"step": step, "check": "loss_spike", "values": {}, "action": "warn", "reason": "r"}
    with pytest.raises(ValueError, match=r"not a MonitorEvent dict: 'step' must be an integer"):
        MonitorEvent.from_dict(d)


def test_event_from_dict_takes_an_integral_float_step_from_json() -> None:
    d = {"step": 12.0, "check": "loss_spike", "values": {"loss": "nan"}, "action": "warn", "reason": "r"}
    e = MonitorEvent.from_dict(d)
    assert e.step == 12 and type(e.step) is int and math.isnan(e.values["loss"])


def test_record_window_unknown_signal_is_a_clear_error() -> None:
    rec = RollingRecord.from_stream([3.0, 2.0])
    with pytest.raises(ValueError, match=r"unknown signal 'losses'.*Did you mean 'loss'\?.*Valid: "):
        rec.window("losses", 5)
    with pytest.raises(ValueError, match=r"unknown signal 'gradnorm'"):
        rec.count("gradnorm")
    with pytest.raises(ValueError, match=r"unknown signal 'val'"):
        rec.reference("val", 5)
    assert rec.window("loss", 5) == [3.0, 2.0]


# ------------------------------------------------------------------------------------------------ pictures
def test_mark_events_twice_on_one_axis_lists_each_pair_once() -> None:
    import matplotlib.pyplot as plt

    from lrkit.plots.monitor import mark_events

    mon = _spiking_run()
    pairs = {(e.check, e.action) for e in mon.events}
    fig, ax = plt.subplots()
    try:
        ax.plot(range(20), range(20), label="loss")
        mark_events(ax, mon.events)
        mark_events(ax, json.loads(json.dumps([e.to_dict() for e in mon.events])))  # the record, redrawn
        labels = ax.get_legend_handles_labels()[1]
        assert sorted(labels) == sorted(["loss", *(f"{c} → {a}" for c, a in pairs)])
    finally:
        plt.close(fig)


def test_val_rising_and_loss_above_start_have_their_own_colours_not_the_first_line_colour() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from lrkit.plots.monitor import mark_events

    events = [{"step": 5, "check": "val_rising", "action": "rollback", "values": {}, "reason": ""},
              {"step": 9, "check": "loss_above_start", "action": "rollback", "values": {}, "reason": ""},
              {"step": 12, "check": "my_check", "action": "warn", "values": {}, "reason": ""}]
    fig, ax = plt.subplots()
    try:
        (line,) = ax.plot(range(20), range(20))  # the user's loss curve: matplotlib's first colour (C0)
        drawn = [a for a in mark_events(ax, events) if a.get_linestyle() != "None"]
        colours = [to_rgba(a.get_color()) for a in drawn]
        assert to_rgba(line.get_color()) not in colours
        assert len(set(colours)) == 3
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------ the walk itself
def test_recovery_restores_model_optimizer_scheduler_and_scaler_exactly() -> None:
    """The healthy snapshot is taken in ``after_backward`` of a healthy step; a rollback brings back that state (BN
    buffers included), with every group's LR x0.3 and the scheduler's clock at the snapshot's step: no stale LR, no
    double step. Gradient accumulation (2 micro-batches), bf16 autocast, a GradScaler, two param groups."""
    m = _model()
    opt = torch.optim.AdamW(_groups(m), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[0.05, 0.1], total_steps=400)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=3)
    mon = lrkit.Monitor(m, opt, scheduler=sched, grad_scaler=scaler, snapshot_every=10)
    held: dict[int, tuple] = {}
    rollbacks = 0
    step = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing for a user to see on this healthy-but-for-two-spikes run
        for _epoch in range(3):
            for i in range(0, 256, 16):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = m(_X[i:i + 16])
                loss = torch.nn.functional.cross_entropy(out.float(), _Y[i:i + 16])
                last_micro = (i // 16) % 2 == 1
                if step in (14, 20) and last_micro:
                    loss = loss * 1000
                scaler.scale(loss / 2).backward()
                if not last_micro:
                    continue
                state = tuple(copy.deepcopy(x.state_dict()) for x in (m, opt, sched, scaler))
                if mon.after_backward(loss):
                    held[mon.step] = state
                at = mon._healthy.step
                scaler.step(opt)
                scaler.update()
                sched.step()
                mon.after_step()
                if mon.last_action == "rollback":
                    rollbacks += 1
                    m_sd, o_sd, s_sd, sc_sd = held[at]
                    for k, v in m.state_dict().items():
                        assert torch.equal(v, m_sd[k]), k
                    now = opt.state_dict()
                    for pid, entry in o_sd["state"].items():
                        for k, v in entry.items():
                            assert torch.equal(now["state"][pid][k], v), (pid, k)
                    for g_old, g_new in zip(o_sd["param_groups"], now["param_groups"]):
                        assert g_new["lr"] == pytest.approx(g_old["lr"] * 0.3, rel=1e-12)
                        assert g_new["betas"] == g_old["betas"]
                    assert sched.last_epoch == s_sd["last_epoch"]  # the clock of the snapshot, not one step on
                    assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
                    assert scaler.state_dict() == sc_sd
                    held[mon._healthy.step] = tuple(copy.deepcopy(x.state_dict()) for x in (m, opt, sched, scaler))
                opt.zero_grad()
                step += 1
            with torch.no_grad():
                m.eval()
                val = torch.nn.functional.cross_entropy(m(_X), _Y)
                m.train()
            mon.after_validation(np.float16(val.item()))
    assert rollbacks == 2 and mon.rollbacks >= 2
    assert json.loads(json.dumps([e.to_dict() for e in mon.events]))[0]["check"] in ("loss_spike", "gradient_blowup")
