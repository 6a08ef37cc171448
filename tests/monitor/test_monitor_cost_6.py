"""The monitor's cheaper snapshot refresh (``Monitor._recapture``), module walk and small copies give exactly what the
general paths give, and the refresh falls back to the general path whenever what it reuses may have changed: a
parameter or buffer replaced, a tensor's shape or dtype changed, the optimizer's parameters or state changed."""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from _helpers import assert_same
from lrkit.monitor import Monitor
from lrkit.monitor import monitor as monitor_module
from lrkit.monitor.monitor import _OPT_ATTR_TYPES, _copy_state, _Healthy, _opt_attrs, _walk

FIELDS = ("params", "grads", "buffers", "modes", "opt_state", "opt_groups", "sched_state", "opt_other_state",
          "opt_attrs")


def data(n: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)


def mlp(seed: int = 0, bn: bool = True) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(4, 8)] + ([nn.BatchNorm1d(8)] if bn else []) + [nn.Tanh(), nn.Linear(8, 1)]
    return nn.Sequential(*layers)


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, *, monitor: Monitor | None = None,
          sched: Any = None, start: int = 0, hook: Any = None) -> None:
    """``steps`` steps on a fixed batch stream; ``hook(step)`` runs after ``loss.backward()``."""
    x, y = data()
    for step in range(start, start + steps):
        idx = torch.randint(0, len(x), (16,), generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        if hook is not None:
            hook(step)
        if monitor is not None:
            monitor.after_backward(loss)
        opt.step()
        if sched is not None:
            sched.step()
        if monitor is not None and monitor.after_step():
            break


def held_now(monitor: Monitor, *, scheduler: bool = True) -> _Healthy:
    """A held snapshot of the current state, taken by the general path (as the monitor's first snapshot is)."""
    snapshot, params, buffers = monitor._capture(scheduler=scheduler)
    return _Healthy(snapshot, monitor.step, 1.0, {}, (params, buffers))


def tensors(snapshot: Any) -> list[torch.Tensor]:
    out = [*snapshot.params, *snapshot.buffers]
    for state in snapshot.opt_state.values():
        out += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return out


class Spy:
    """Counts the general-path refreshes (``_capture`` with ``reuse=``) made while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.general = 0
        original = Monitor._capture

        def capture(monitor: Monitor, *, scheduler: bool, reuse: Any = None) -> Any:
            if reuse is not None:
                self.general += 1
            return original(monitor, scheduler=scheduler, reuse=reuse)

        monkeypatch.setattr(Monitor, "_capture", capture)


def refresh_equals_fresh(monitor: Monitor, held: _Healthy, *, scheduler: bool = True) -> Any:
    """Refresh ``held`` and check the result field by field against a fresh general capture; return the refresh."""
    again, params, buffers, plan = monitor._recapture(held, scheduler=scheduler)
    fresh, fresh_params, fresh_buffers = monitor._capture(scheduler=scheduler)
    for name in FIELDS:
        assert_same(getattr(again, name), getattr(fresh, name), name)
    assert [(p, c, g) for p, c, g in again.extra_params] == [] or all(
        torch.equal(c, d) for (_, c, _), (_, d, _) in zip(again.extra_params, fresh.extra_params))
    assert again.opt_param_refs == fresh.opt_param_refs and again.scheduler is fresh.scheduler
    assert [id(p) for p in params] == [id(p) for p in fresh_params]
    assert [id(b) for b in buffers] == [id(b) for b in fresh_buffers]
    return again, params, buffers, plan


# ------------------------------------------------------------------------------------------------- module walk
class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        self.outer = nn.Sequential(nn.ReLU(), nn.Sequential(self.inner, nn.Linear(3, 3)))  # inner twice, deeper
        self.register_module("absent", None)
        self.tail = nn.Linear(3, 1)
        self.tail.weight = self.outer[1][1].weight  # a tied weight
        self.register_buffer("scale", torch.ones(1))


class OwnWalk(nn.Sequential):
    def named_modules(self, memo: Any = None, prefix: str = "", remove_duplicate: bool = True) -> Any:
        yield prefix, self  # a submodule that hides its children from the traversal


def test_walk_follows_named_modules_order_and_deduplication() -> None:
    model = Shared()
    model.outer.eval()
    params, buffers, modes = _walk(model)
    assert [id(p) for p in params] == [id(p) for p in model.parameters()]
    assert [id(b) for b in buffers] == [id(b) for b in model.buffers()]
    assert modes == [m.training for m in model.modules()] and False in modes


def test_walk_of_a_model_with_a_submodule_that_overrides_named_modules_is_torchs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = nn.Sequential(nn.Linear(2, 2), OwnWalk(nn.Linear(2, 3), nn.BatchNorm1d(3)))
    calls: list[int] = []
    plain = monitor_module._walk_plain
    monkeypatch.setattr(monitor_module, "_walk_plain", lambda m: calls.append(1) or plain(m))
    params, buffers, modes = _walk(model)
    assert calls == [1]
    assert [id(p) for p in params] == [id(p) for p in model.parameters()]  # the hidden Linear is not among them
    assert len(params) == 2 and buffers == [] and len(modes) == len(list(model.modules())) == 3


# --------------------------------------------------------------------------------------------- planned refresh
@pytest.mark.parametrize("make_opt", [
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
    lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.95)),
    lambda ps: torch.optim.AdamW(ps, lr=1e-2, amsgrad=True),
    lambda ps: torch.optim.Adagrad(ps, lr=0.05),
])
def test_a_planned_refresh_writes_every_copy_in_place_and_equals_a_fresh_capture(
        make_opt: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model = mlp()
    opt = make_opt(model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, 3, gamma=0.5)
    monitor = Monitor(model, opt, sched)
    train(model, opt, 4, sched=sched)
    held = held_now(monitor)
    before = [t.clone() for t in tensors(held.snapshot)]
    ids = [id(t) for t in tensors(held.snapshot)]
    train(model, opt, 3, sched=sched, start=4)  # weights, optimizer state, BatchNorm statistics and LR move on
    spy = Spy(monkeypatch)
    again, _, _, plan = refresh_equals_fresh(monitor, held)
    assert spy.general == 0 and plan is not None
    assert [id(t) for t in tensors(again)] == ids  # small tensors too: the same objects, new values
    assert any(not torch.equal(a, b) for a, b in zip(tensors(again), before))
    # the plan carries over: the next refresh reuses it and still equals a fresh capture
    train(model, opt, 2, sched=sched, start=7)
    held2 = _Healthy(again, 9, 1.0, {}, (_walk(model)[0], _walk(model)[1]), plan=plan)
    third, _, _, plan3 = refresh_equals_fresh(monitor, held2)
    assert spy.general == 0 and plan3 is not None and plan3.index is plan.index
    assert [id(t) for t in tensors(third)] == ids


def test_a_refresh_without_a_scheduler_or_before_any_state(monkeypatch: pytest.MonkeyPatch) -> None:
    model = mlp(bn=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)  # plain SGD keeps no tensors in its state
    monitor = Monitor(model, opt)
    held = held_now(monitor, scheduler=False)
    train(model, opt, 2)
    spy = Spy(monkeypatch)
    again, _, _, plan = refresh_equals_fresh(monitor, held, scheduler=False)
    assert spy.general == 0 and plan is not None and again.sched_state is None


def _replace_parameter(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    new = nn.Parameter(model[0].weight.detach() * 2)
    model[0].weight = new
    opt.param_groups[0]["params"][0] = new


def _change_dtype(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    with torch.no_grad():
        model[0].bias.data = model[0].bias.data.double()  # the same Parameter, another dtype
    opt.state[model[0].bias]["momentum_buffer"] = opt.state[model[0].bias]["momentum_buffer"].double()


def _change_shape(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    # the same objects and numel, another shape: copy_ would broadcast (1, 8) into (8,) silently
    with torch.no_grad():
        model[0].bias.data = model[0].bias.data.reshape(1, 8)
    opt.state[model[0].bias]["momentum_buffer"] = opt.state[model[0].bias]["momentum_buffer"].reshape(1, 8)


def _new_buffer(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    model[1].register_buffer("extra", torch.arange(3.0))


def _replaced_buffer(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    model[1].running_mean = model[1].running_mean.clone() + 1


def _added_group(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    opt.add_param_group({"params": [nn.Parameter(torch.ones(3))], "lr": 0.01})


def _state_tensor_replaced_by_a_number(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    opt.state[model[0].weight]["momentum_buffer"] = 0.5


def _state_gains_a_key(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    opt.state[model[0].weight]["trace"] = torch.zeros(3)


def _state_key_renamed(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    st = opt.state[model[0].weight]
    st["renamed"] = st.pop("momentum_buffer")


def _state_nested(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    st = opt.state[model[0].weight]
    st["momentum_buffer"] = [st["momentum_buffer"]]


def _state_not_a_parameter(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    opt.state.pop(model[0].bias)
    opt.state["global_step"] = {"count": 3}  # same number of entries, one keyed by something else


def _state_reordered(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    # the same entries, another order: two of the same shape swap places (Linear bias, BatchNorm weight)
    entries = list(opt.state.items())
    entries[1], entries[2] = entries[2], entries[1]
    assert entries[1][1]["momentum_buffer"].shape == entries[2][1]["momentum_buffer"].shape
    opt.state.clear()
    opt.state.update(entries)


def _state_subclass_tensor(model: nn.Sequential, opt: torch.optim.Optimizer) -> None:
    st = opt.state[model[0].weight]
    st["momentum_buffer"] = nn.Parameter(st["momentum_buffer"], requires_grad=False)


@pytest.mark.parametrize("change", [
    _replace_parameter, _change_dtype, _change_shape, _new_buffer, _replaced_buffer, _added_group, _state_gains_a_key,
    _state_key_renamed, _state_nested,
    _state_not_a_parameter, _state_reordered, _state_subclass_tensor,
])
def test_a_refresh_after_a_change_takes_the_general_path_and_equals_a_fresh_capture(
        change: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 3)
    monitor = Monitor(model, opt, sched)
    train(model, opt, 3, sched=sched)
    held = held_now(monitor)
    change(model, opt)
    spy = Spy(monkeypatch)
    _, _, _, plan = refresh_equals_fresh(monitor, held)
    assert spy.general == 1 and plan is None


def test_state_values_that_turn_from_tensors_into_numbers_and_back(monkeypatch: pytest.MonkeyPatch) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt)
    train(model, opt, 3)
    held = held_now(monitor)
    _state_tensor_replaced_by_a_number(model, opt)
    spy = Spy(monkeypatch)
    again, params, buffers, plan = refresh_equals_fresh(monitor, held)  # a number needs no copy: still planned
    assert spy.general == 0 and plan is not None and again.opt_state[0]["momentum_buffer"] == 0.5
    opt.state[model[0].weight]["momentum_buffer"] = torch.ones(8, 4)  # and back: no copy to write it into
    _, _, _, plan = refresh_equals_fresh(monitor, _Healthy(again, 3, 1.0, {}, (params, buffers), plan=plan))
    assert spy.general == 1 and plan is None


def test_a_refresh_after_the_optimizer_gains_state_takes_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    monitor = Monitor(model, opt)
    held = held_now(monitor)  # before the first step: no optimizer state yet
    train(model, opt, 1)
    spy = Spy(monkeypatch)
    again, _, _, plan = refresh_equals_fresh(monitor, held)
    assert spy.general == 1 and plan is None and len(again.opt_state) == len(list(model.parameters()))
    # and the one after that, with the state now known, is planned again
    held = _Healthy(again, 1, 1.0, {}, (_walk(model)[0], _walk(model)[1]))
    train(model, opt, 1, start=1)
    _, _, _, plan = refresh_equals_fresh(monitor, held)
    assert spy.general == 1 and plan is not None


def test_a_refresh_of_a_snapshot_loaded_from_a_state_dict_takes_the_general_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_every=5)
    train(model, opt, 8, monitor=monitor)
    other = Monitor(model, opt, snapshot_every=5)
    other.load_state_dict(monitor.state_dict(snapshot=True))
    spy = Spy(monkeypatch)
    _, _, _, plan = refresh_equals_fresh(other, other._healthy)  # type: ignore[arg-type]
    assert spy.general == 1 and plan is None


# ------------------------------------------------------------------------------------- the monitor's decisions
def run(monkeypatch: pytest.MonkeyPatch | None, steps: int = 90) -> tuple[Monitor, nn.Module, torch.optim.Optimizer]:
    """A monitored run with training rollbacks (nan gradients) and validation rollbacks (a rising validation loss);
    with ``monkeypatch`` every refresh takes the general path."""
    if monkeypatch is not None:
        def general(monitor: Monitor, held: Any, *, scheduler: bool) -> Any:
            if held is None:
                return (*monitor._capture(scheduler=scheduler), None)
            return (*monitor._capture(scheduler=scheduler, reuse=held), None)

        monkeypatch.setattr(Monitor, "_recapture", general)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + 0.01 * s))
    monitor = Monitor(model, opt, sched, snapshot_every=7, grad_every=4)

    def poison(step: int) -> None:
        if step in (24, 60):  # full steps (grad_every=4): caught before the optimizer steps on them
            model[0].weight.grad.fill_(math.nan)

    val = iter([1.0, 0.8, 0.7, 0.75, 0.9, 0.95, 0.6, 0.55, 0.7, 0.8, 0.9, 0.5])
    for start in range(0, steps, 8):
        train(model, opt, 8, monitor=monitor, sched=sched, start=start, hook=poison)
        monitor.after_validation(next(val, 0.4))
    return monitor, model, opt


def test_planned_refreshes_make_the_same_decisions_and_restores_as_general_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned, model_a, opt_a = run(None)
    with monkeypatch.context() as m:
        general, model_b, opt_b = run(m)
    assert [e.to_dict() for e in planned.events] == [e.to_dict() for e in general.events]
    assert {e.action for e in planned.events} >= {"rollback"} and planned.rollbacks >= 3
    assert any(e.check == "val_rising" for e in planned.events)
    assert_same(list(model_a.state_dict().values()), list(model_b.state_dict().values()), "model")
    assert_same(opt_a.state_dict(), opt_b.state_dict(), "optimizer")
    assert_same(planned.state_dict(snapshot=True), general.state_dict(snapshot=True), "monitor")


def test_a_rollback_after_planned_refreshes_restores_the_latest_healthy_state_bit_for_bit() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_every=10, grad_every=1)
    train(model, opt, 45, monitor=monitor)  # several planned refreshes of the healthy snapshot
    healthy = monitor._healthy
    assert healthy is not None and healthy.plan is not None
    ids = [id(t) for t in tensors(healthy.snapshot)]
    expected = [t.clone() for t in tensors(healthy.snapshot)]

    def blow_up(step: int) -> None:
        if step == 45:
            model[0].weight.grad.fill_(math.inf)

    train(model, opt, 1, monitor=monitor, start=45, hook=blow_up)
    assert monitor.rollbacks == 1
    live = [*model.parameters(), *model.buffers(), *(opt.state[p]["momentum_buffer"] for p in model.parameters())]
    assert all(torch.equal(a, b) for a, b in zip(live, expected))
    assert [id(t) for t in tensors(monitor._healthy.snapshot)] == ids  # refreshed again after the rollback


# ------------------------------------------------------------------------------------------------ small copies
class Flag(enum.IntEnum):
    ON = 1


def test_opt_attrs_keeps_what_the_plain_rule_keeps() -> None:
    opt = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    extra = {"count": 3, "ratio": 0.5, "name": "x", "none": None, "flag": True, "raw": b"ab", "z": 1j,
             "np_float": np.float64(2.5), "np_int": np.int64(4), "enum": Flag.ON, "t": torch.arange(3),
             "d": {"a": 1}, "lst": [1], "tup": (1, 2)}
    for k, v in extra.items():
        setattr(opt, k, v)
    plain = {k: _copy_state(v) for k, v in vars(opt).items() if isinstance(v, _OPT_ATTR_TYPES)}
    ours = _opt_attrs(opt)
    assert_same(ours, plain)
    assert set(ours) >= {"count", "ratio", "name", "none", "flag", "np_float", "enum", "t"}
    assert not set(ours) & {"raw", "z", "np_int", "d", "lst", "tup"}
    assert ours["t"] is not opt.t  # tensors copied


@pytest.mark.parametrize("value", [0.7, torch.tensor(0.7), np.float64(0.7), torch.tensor([0.7])])
def test_after_validation_reads_floats_and_scalars_alike(value: Any) -> None:
    model = mlp(bn=False)
    monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    monitor.after_validation(1.0)
    monitor.after_validation(value)
    rec = monitor.record
    assert rec.last_val_loss == pytest.approx(0.7) and rec.val_best == rec.last_val_loss


@pytest.mark.parametrize("value", [True, "0.5", torch.tensor([0.1, 0.2])])
def test_after_validation_still_refuses_what_is_not_one_number(value: Any) -> None:
    model = mlp(bn=False)
    monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="after_validation"):
        monitor.after_validation(value)
    assert monitor.record.seen["val_loss"] == 0
