"""Monitor rollbacks of a model whose own forward changes its parameter, buffer or submodule entries after the
snapshot was taken: every value goes back onto the tensor it was taken from (by identity, else by the slot's
name), never onto the one that now sits at its position; the structure stays the model's own."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from _helpers import assert_same
from lrkit.monitor import Monitor


class Net(nn.Module):
    """Linear -> BatchNorm -> Linear, with a root-module buffer (listed ahead of BatchNorm's in ``buffers()``)
    that the forward changes: ``assign`` replaces ``ema`` by a new tensor every call (``self.ema = ...``, a common
    idiom for a running statistic), ``register`` registers ``seen`` on call ``at``, ``regrow`` replaces ``cache``
    by a longer one on call ``at`` (a RoPE cache), ``layer`` builds a submodule on call ``at``."""

    def __init__(self, kind: str, at: int = 3) -> None:
        super().__init__()
        self.kind, self.at, self.calls = kind, at, 0
        self.lin = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.out = nn.Linear(8, 1)
        self.register_buffer("ema", torch.zeros(8))
        self.register_buffer("cache", torch.arange(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        h = self.lin(x)
        with torch.no_grad():
            if self.kind == "assign":
                self.ema = 0.9 * self.ema + 0.1 * h.mean(0)
            if self.kind == "register" and self.calls == self.at:
                self.register_buffer("seen", torch.full((8,), 7.0))
            if self.kind == "regrow" and self.calls == self.at:
                self.cache = torch.arange(16.0)
        if self.kind == "layer" and self.calls == self.at:
            self.extra = nn.Linear(8, 8)
        if "extra" in self._modules:
            h = self.extra(h)
        return self.out(torch.tanh(self.bn(h) + self.ema))


def _state(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    return copy.deepcopy({"model": dict(model.state_dict()), "opt": opt.state_dict()["state"]})


def _run(kind: str, *, at: int = 3, steps: int = 8, bad: int = 7, poison_input: bool = True,
         snapshot_device: str | None = None
         ) -> tuple[nn.Module, torch.optim.Optimizer, Monitor, dict[int, dict[str, Any]], int]:
    """Train ``steps`` steps; step ``bad`` feeds a NaN input (its forward poisons BatchNorm's statistics and the
    running ``ema``) so the monitor rolls back. Returns the state seen by each ``after_backward`` and the step of the
    healthy snapshot the rollback restored."""
    torch.manual_seed(0)
    model = Net(kind, at)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_every=4, grad_every=1, snapshot_device=snapshot_device)
    g = torch.Generator().manual_seed(0)
    states: dict[int, dict[str, Any]] = {}
    restored = -1
    for step in range(steps):
        x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
        if step == bad and poison_input:
            x[0, 0] = float("nan")
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        if step == bad and not poison_input:
            loss = loss * float("nan")
        loss.backward()
        states[step] = _state(model, opt)  # what a snapshot taken in this after_backward holds
        if step == bad:
            restored = monitor._healthy.step
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
    if bad >= 0:
        assert monitor.rollbacks == 1 and monitor.events[-1].action == "rollback"
    return model, opt, monitor, states, restored


@pytest.mark.parametrize("snapshot_device", [None, "cpu"])
def test_buffer_replaced_by_a_new_tensor_each_forward_is_restored_bit_for_bit(snapshot_device: str | None) -> None:
    # old: the snapshot's copy of `ema` belonged to a tensor no longer in the model, so the rollback left the live
    # one as the bad step made it (NaN here: every later forward NaN, rollback after rollback)
    model, opt, monitor, states, restored = _run("assign", snapshot_device=snapshot_device)
    assert restored == 4
    now = _state(model, opt)
    assert torch.isfinite(now["model"]["ema"]).all()
    assert_same(now, states[restored])
    assert [n for n, _ in model.named_modules()] == ["", "lin", "bn", "out"]
    # training goes on healthy from the restored state
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert torch.isfinite(loss) and monitor.after_backward(loss) is True


def test_buffer_registered_in_forward_ahead_of_batchnorm_leaves_every_value_on_its_own_tensor() -> None:
    # `seen` is registered at the 3rd call, after the first snapshot (step 0) and before the one restored (step 4);
    # a second run registers it at call 6, after the restored snapshot: BatchNorm's statistics must not shift by one
    for at, snap_has_it in ((3, True), (6, False)):
        model, opt, _, states, restored = _run("register", at=at)
        assert restored == 4
        now = _state(model, opt)
        then = states[restored]
        assert ("seen" in then["model"]) is snap_has_it
        # the buffer the forward registered stays (the model's own bookkeeping says it is registered), at its value
        assert torch.equal(now["model"].pop("seen"), torch.full((8,), 7.0))
        then["model"].pop("seen", None)
        assert_same(now, then)
        assert [n for n, _ in model.named_modules()] == ["", "lin", "bn", "out"]


def test_cache_regrown_to_another_shape_stays_and_every_other_value_is_restored() -> None:
    model, opt, _, states, restored = _run("regrow", at=6)
    now = _state(model, opt)
    then = states[restored]
    assert then["model"]["cache"].shape == (4,)
    # a tensor replaced by one of another shape is left as it is (the model's code sized it: putting the old one
    # back could break the next forward); no shape error, and nothing else moves
    assert torch.equal(now["model"].pop("cache"), torch.arange(16.0))
    then["model"].pop("cache")
    assert_same(now, then)


def test_layer_built_in_forward_after_the_snapshot_keeps_its_weights_the_rest_restored() -> None:
    model, opt, _, states, restored = _run("layer", at=6, poison_input=False)
    now = _state(model, opt)
    then = states[restored]
    extra = {k: now["model"].pop(k) for k in ("extra.weight", "extra.bias")}
    assert torch.equal(extra["extra.weight"], model.extra.weight) and "extra.weight" not in then["model"]
    assert_same(now, then)
    assert [n for n, _ in model.named_modules()] == ["", "lin", "bn", "out", "extra"]


def test_validation_rollback_restores_a_replaced_buffer_from_the_best_validation_snapshot() -> None:
    torch.manual_seed(0)
    model = Net("assign")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_every=4, grad_every=1, val_patience=1)
    g = torch.Generator().manual_seed(0)
    best = None
    for epoch, val in enumerate([1.0, 0.5, 0.9, 1.5]):
        for _ in range(3):
            x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
        if epoch == 1:
            best = _state(model, opt)
        monitor.after_validation(val)
        if monitor.rollbacks:
            break
    assert monitor.rollbacks == 1 and monitor.events[-1].check == "val_rising"
    assert_same(_state(model, opt), best)


def test_a_resumed_monitor_restores_a_buffer_replaced_since_the_state_was_saved() -> None:
    model, opt, monitor, states, _ = _run("assign", steps=5, bad=-1)
    assert monitor._healthy.step == 4
    with torch.no_grad():
        model(torch.randn(16, 4))  # replaces `ema` after the snapshot, before the save
    saved = monitor.state_dict(snapshot=True)
    then = copy.deepcopy(saved)
    snap_ema = then["healthy"]["buffers"][0]
    # old: None (the snapshot's copy belonged to a tensor no longer in the model): lost in the checkpoint
    assert snap_ema is not None and torch.equal(snap_ema, states[4]["model"]["ema"])
    fresh = Monitor(model, opt, snapshot_every=4, grad_every=1)
    fresh.load_state_dict(saved)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    x[0, 0] = float("nan")
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)  # replaces `ema` (with NaN) after the load
    loss.backward()
    fresh.after_backward(loss)
    opt.step()
    fresh.after_step()
    assert fresh.rollbacks == 1
    assert torch.equal(model.ema, snap_ema)


def test_a_module_replaced_under_the_same_name_keeps_its_own_weights() -> None:
    # the restore by name follows a tensor's slot in a module that is still the model's; a new module object under
    # an old attribute name is another layer: the snapshot's weights of the old one are never written into it
    torch.manual_seed(0)
    model = Net("none")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_every=4, grad_every=1)
    g = torch.Generator().manual_seed(0)
    for step in range(8):
        if step == 6:
            model.out = nn.Linear(8, 1)  # the same shapes, not in the optimizer
            new = copy.deepcopy(model.out.state_dict())
        x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y) * (float("nan") if step == 7 else 1.0)
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
    assert monitor.rollbacks == 1
    assert_same(dict(model.out.state_dict()), dict(new))


def test_refreshes_in_place_take_no_walk_of_the_module_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    # the entries are walked with the general capture only; a refresh in place (the same members) keeps them
    import lrkit.monitor.monitor as mm

    calls = []
    real = mm._named_slots
    monkeypatch.setattr(mm, "_named_slots", lambda model: calls.append(1) or real(model))
    torch.manual_seed(0)
    model = Net("none")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_every=2, grad_every=1)
    held = []
    for _ in range(12):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(torch.randn(16, 4)), torch.randn(16, 1))
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
        held.append(monitor._healthy)
    assert len({id(h) for h in held}) >= 5 and held[-1].plan is not None
    # the first capture, and the one after the optimizer's state appeared (its first step): general ones
    assert len(calls) == 2 and all(h.slots is held[-1].slots for h in held[2:])
