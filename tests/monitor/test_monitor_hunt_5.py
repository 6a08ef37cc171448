"""Defects found by a fifth hunt through lrkit.Monitor: each test failed before its fix.

Known answers: the GradScaler's own state before training (a rollback to the first snapshot brings it back), the
weights the monitor held at its healthy / best-validation snapshots (bit for bit), the gradient norm of the
parameters the optimizer actually holds, and plain numbers that ``json.dumps`` takes.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from lrkit.monitor import Check, Finding, Monitor, MonitorWarning, NonFinite, RollingRecord


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def _batch(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + t)
    return torch.randn(32, 4, generator=g), torch.randn(32, 1, generator=g)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def _amp_train(model: nn.Module, opt: torch.optim.Optimizer, scaler: Any, monitor: Monitor, steps: int, *,
               start: int = 0, bad: int | None = None) -> None:
    """The documented AMP loop: scale, backward, unscale_, after_backward, scaler.step/update, after_step; at step
    ``bad`` the monitor is given a nan loss (the gradients stay finite: the scaler sees nothing wrong)."""
    for t in range(start, start + steps):
        x, y = _batch(t)
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        monitor.after_backward(loss * float("nan") if t == bad else loss)
        scaler.step(opt)
        scaler.update()
        monitor.after_step()


def _train(model: nn.Module, opt: torch.optim.Optimizer, monitor: Monitor, steps: int, *, start: int = 0,
           bad: int | None = None) -> None:
    for t in range(start, start + steps):
        x, y = _batch(t)
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(loss * float("nan") if t == bad else loss)
        opt.step()
        monitor.after_step()


# ------------------------------------------------------------------------------------------- 1. GradScaler state
def _scaler() -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)


def test_a_rollback_restores_the_grad_scalers_state_with_the_model() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = _scaler()
    before = scaler.state_dict()  # the healthy snapshot is taken at step 0, before the scaler's first update
    weights = _weights(model)
    monitor = Monitor(model, opt, grad_scaler=scaler, grad_every=1)
    _amp_train(model, opt, scaler, monitor, 8, bad=7)
    assert [(e.step, e.action) for e in monitor.events] == [(7, "rollback")]
    assert _same(_weights(model), weights)
    assert scaler.state_dict() == before  # scale 1024 and growth tracker 0 again (it had grown to 8192)
    assert scaler.get_scale() == 2.0**10


def test_the_grad_scaler_state_travels_with_the_snapshot_in_state_dict(tmp_path) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = _scaler()
    before = scaler.state_dict()
    monitor = Monitor(model, opt, grad_scaler=scaler, grad_every=1)
    _amp_train(model, opt, scaler, monitor, 5)
    assert scaler.state_dict() != before
    torch.save(monitor.state_dict(snapshot=True), tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["healthy"]["scaler"] == before
    # a resumed run: a fresh scaler loaded from the checkpoint (here: its state now), a fresh monitor
    scaler2 = _scaler()
    scaler2.load_state_dict(scaler.state_dict())
    resumed = Monitor(model, opt, grad_scaler=scaler2, grad_every=1)
    resumed.load_state_dict(state)
    _amp_train(model, opt, scaler2, resumed, 2, start=5, bad=6)
    assert [(e.step, e.action) for e in resumed.events] == [(6, "rollback")]
    assert scaler2.state_dict() == before


def test_a_disabled_grad_scaler_leaves_non_finite_gradients_to_the_monitor() -> None:
    # GradScaler("cpu", enabled=use_amp) with use_amp=False skips nothing: a nan gradient must still be caught
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    monitor = Monitor(model, opt, grad_scaler=scaler, grad_every=1, on_divergence="skip")
    _amp_train(model, opt, scaler, monitor, 3)
    x, y = _batch(3)
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    scaler.scale(loss).backward()
    model[0].weight.grad[0, 0] = float("nan")
    assert monitor.after_backward(loss) is False
    scaler.step(opt)
    scaler.update()
    monitor.after_step()
    assert [(e.check, e.action) for e in monitor.events] == [("non_finite", "skip")]
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_a_grad_scaler_without_state_dict_is_refused_clearly() -> None:
    model = _model()
    with pytest.raises(ValueError, match=r"grad_scaler=.*object.*state_dict"):
        Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), grad_scaler=object())


# ------------------------------------------------------------------------------------------- 2. on_event raising
class _Boom(RuntimeError):
    pass


def _raise_on(action: str, seen: list[Any]) -> Any:
    def on_event(event: Any) -> None:
        seen.append(event)
        if event.action == action and len([e for e in seen if e.action == action]) == 1:
            raise _Boom(f"logger failed on {event.check}")
    return on_event


def test_on_event_raising_on_a_rollback_propagates_after_the_rollback_is_done() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    seen: list[Any] = []
    monitor = Monitor(model, opt, grad_every=1, on_event=_raise_on("rollback", seen))
    weights = _weights(model)  # the healthy snapshot of step 0
    _train(model, opt, monitor, 5)
    x, y = _batch(5)
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert monitor.after_backward(loss * float("nan")) is False  # the decision is made; the step is neutralised
    opt.step()
    with pytest.raises(_Boom, match="logger failed on non_finite"):
        monitor.after_step()  # ... the rollback is done, then the callback's error reaches the loop
    assert _same(_weights(model), weights) and opt.state_dict()["state"] == {}
    assert monitor.rollbacks == 1 and monitor.lr_scale == pytest.approx(0.3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.015)
    assert [(e.step, e.action) for e in monitor.events] == [(5, "rollback")] and seen == monitor.events
    # the monitor carries on: healthy steps, then a second rollback handled as usual
    _train(model, opt, monitor, 6, start=6, bad=10)
    assert monitor.step == 11 and [(e.step, e.action) for e in monitor.events] == [(5, "rollback"), (10, "rollback")]
    assert monitor.rollbacks == 2 and seen == monitor.events


def test_on_event_raising_on_a_warning_keeps_the_step_consistent() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    seen: list[Any] = []
    monitor = Monitor(model, opt, grad_every=1, on_divergence="warn", on_event=_raise_on("warn", seen))
    _train(model, opt, monitor, 3)
    x, y = _batch(3)
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    with pytest.warns(MonitorWarning):
        assert monitor.after_backward(loss * float("nan")) is True
    opt.step()
    with pytest.raises(_Boom):
        monitor.after_step()
    assert monitor.last_action == "warn" and [e.action for e in monitor.events] == ["warn"]
    _train(model, opt, monitor, 3, start=4)  # no "after_backward called twice" error: the step was finished
    assert monitor.step == 6 and len(monitor.events) == 1


def test_warnings_turned_into_errors_do_not_leave_a_step_half_handled() -> None:
    # two checks fire on one step, the first one warns: with warnings as errors the second one (a rollback) must
    # still be recorded and done before the MonitorWarning reaches the loop
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, grad_every=1, checks=[_Always(), NonFinite()],
                      actions={"always": "warn", "non_finite": "rollback"})
    weights = _weights(model)
    x, y = _batch(0)
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MonitorWarning)
        assert monitor.after_backward(loss * float("nan")) is False
        opt.step()
        with pytest.raises(MonitorWarning):
            monitor.after_step()
    assert [(e.check, e.action) for e in monitor.events] == [("always", "warn"), ("non_finite", "rollback")]
    assert monitor.rollbacks == 1 and _same(_weights(model), weights)


def test_on_event_raising_on_a_validation_rollback_propagates_after_the_rollback() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[Any] = []
    monitor = Monitor(model, opt, checks=[_ValAbove()], on_event=_raise_on("rollback", seen))
    best = None
    for i, v in enumerate((1.0, 0.5, 0.8, 0.95)):
        _train(model, opt, monitor, 2, start=2 * i)
        if i == 3:
            with pytest.raises(_Boom):
                monitor.after_validation(v)
        else:
            monitor.after_validation(v)
        if i == 1:
            best = _weights(model)
    assert best is not None and _same(_weights(model), best)
    assert monitor.rollbacks == 1 and monitor.lr_scale == pytest.approx(0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01) and monitor.last_action == "rollback"
    _train(model, opt, monitor, 2, start=8)
    assert monitor.step == 9


class _ValAbove(Check):
    """Fires when the validation loss is above 0.9 (after the first evaluation)."""

    name: ClassVar[str] = "val_above"
    category: ClassVar[str] = "overfit"
    phase: ClassVar[str] = "validation"

    def check(self, record: RollingRecord) -> Finding | None:
        if record.seen["val_loss"] > 1 and record.last_val_loss > 0.9:
            return Finding("validation loss above 0.9", {"val_loss": record.last_val_loss})
        return None


# ------------------------------------------------------------------------------------------- 3. Finding values
class _Always(Check):
    """Fires on every step with the values it was given."""

    name: ClassVar[str] = "always"
    category: ClassVar[str] = "divergence"

    def __init__(self, values: Any = None, reason: Any = "always fires") -> None:
        self.values = {"x": 1.0} if values is None else values
        self.reason = reason

    def check(self, record: RollingRecord) -> Finding | None:
        return Finding(self.reason, self.values)


def _one_step(monitor: Monitor, model: nn.Module) -> None:
    x, y = _batch(0)
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    monitor.after_backward(loss)


@pytest.mark.parametrize(("values", "key", "kind"), [
    ({"loss": "high"}, "loss", "str"),
    ({"loss": [1.0, 2.0]}, "loss", "list"),
    ({"flag": True}, "flag", "bool"),
    ({"t": torch.ones(3)}, "t", "Tensor"),
    ({"c": 1j}, "c", "complex"),
])
def test_a_finding_with_non_number_values_is_refused_naming_the_check_key_and_type(values: Any, key: str,
                                                                                  kind: str) -> None:
    model = _model()
    monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), checks=[_Always(values)],
                      actions={"always": "warn"})
    with pytest.raises(TypeError, match=rf"'always'.*{key!r}.*{kind}"):
        _one_step(monitor, model)
    assert monitor.events == []


def test_a_finding_with_bad_keys_values_or_reason_is_refused() -> None:
    for values, reason, match in (({1: 2.0}, "r", r"'always'.*key 1.*int"), ([("a", 1.0)], "r", r"'always'.*list"),
                                  ({"a": 1.0}, None, r"'always'.*reason.*NoneType")):
        model = _model()
        monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), checks=[_Always(values, reason)],
                          actions={"always": "warn"})
        with pytest.raises(TypeError, match=match):
            _one_step(monitor, model)


def test_numpy_and_tensor_scalars_in_a_finding_become_plain_numbers() -> None:
    model = _model()
    values = {"a": np.float32(2.5), "b": torch.tensor(3.0), "c": np.int64(4), "d": 5, "e": np.array(6.5),
              "f": torch.tensor([7.0]), "g": float("nan")}
    monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), checks=[_Always(values)],
                      actions={"always": "warn"})
    with pytest.warns(MonitorWarning):
        _one_step(monitor, model)
    got = monitor.events[0].values
    assert {k: v for k, v in got.items() if k != "g"} == {"a": 2.5, "b": 3.0, "c": 4, "d": 5, "e": 6.5, "f": 7.0,
                                                           "lr": 0.1}
    assert all(type(v) in (int, float) for v in got.values()) and math.isnan(got["g"])
    assert json.loads(json.dumps([e.to_dict() for e in monitor.events], allow_nan=False))[0]["values"]["g"] == "nan"


# ------------------------------------------------------------------------------------------- 4. event step numbers
class _ValAlways(Check):
    name: ClassVar[str] = "val_always"
    category: ClassVar[str] = "overfit"
    phase: ClassVar[str] = "validation"

    def check(self, record: RollingRecord) -> Finding | None:
        return Finding("evaluated", {"val_loss": record.last_val_loss})


def test_a_validation_event_before_any_training_step_is_at_step_0() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, opt, checks=[_ValAlways()], on_overfit="warn")
    with pytest.warns(MonitorWarning, match="step 0"):
        monitor.after_validation(1.0)  # a baseline evaluation before training
    _train(model, opt, monitor, 3)
    with pytest.warns(MonitorWarning, match="step 2"):
        monitor.after_validation(0.9)  # after steps 0, 1, 2: numbered by the latest step, as before
    assert [e.step for e in monitor.events] == [0, 2]


# ------------------------------------------------------------------------------------------- 5. param cache
def test_params_replaced_in_a_group_other_than_the_last_are_seen() -> None:
    torch.manual_seed(0)
    first, second, new = nn.Linear(4, 4), nn.Linear(4, 1), nn.Linear(4, 4)
    model = nn.Sequential(first, nn.Tanh(), second)
    opt = torch.optim.SGD([{"params": first.parameters()}, {"params": second.parameters()}], lr=0.05)
    monitor = Monitor(model, opt, grad_every=1, on_divergence="skip")
    _train(model, opt, monitor, 3)
    model[0] = new  # swap the first layer, and its param group's list (same length: 2 tensors)
    opt.param_groups[0]["params"] = list(new.parameters())
    x, y = _batch(3)
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    expected = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()]))
    assert monitor.after_backward(loss) is True
    assert monitor.record.last_grad_norm == pytest.approx(float(expected), rel=1e-6)
    opt.step()
    monitor.after_step()
    # a nan gradient in the new layer is caught, and the skip clears *its* gradient before optimizer.step()
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    new.weight.grad[0, 0] = float("nan")
    assert monitor.after_backward(loss) is False
    assert new.weight.grad is None
    opt.step()
    monitor.after_step()
    assert [(e.check, e.action) for e in monitor.events] == [("non_finite", "skip")]
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


# ------------------------------------------------------------------------------------------- load_state_dict
def test_a_state_dict_that_does_not_fit_leaves_the_monitor_as_it_was() -> None:
    other = nn.Linear(3, 2)
    other_opt = torch.optim.SGD(other.parameters(), lr=0.1)
    source = Monitor(other, other_opt, grad_every=1)
    for t in range(7):
        other_opt.zero_grad()
        loss = other(torch.randn(5, 3)).pow(2).mean()
        loss.backward()
        source.after_backward(loss * float("nan") if t == 4 else loss)
        other_opt.step()
        source.after_step()
    state = source.state_dict(snapshot=True)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, grad_every=1)
    _train(model, opt, monitor, 3)
    before = monitor.state_dict()
    with pytest.raises(ValueError, match="does not fit this model"):
        monitor.load_state_dict(state)
    assert monitor.state_dict() == before and monitor._healthy is not None
    _train(model, opt, monitor, 2, start=3, bad=4)  # still this run's monitor: rolls back to its own snapshot
    assert monitor.step == 4 and [(e.step, e.action) for e in monitor.events] == [(4, "rollback")]


def _swap_run(resume: bool) -> tuple[list[torch.Tensor], Monitor]:
    torch.manual_seed(0)
    first, second, new = nn.Linear(4, 4), nn.Linear(4, 1), nn.Linear(4, 4)
    model = nn.Sequential(first, nn.Tanh(), second)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, grad_every=1)
    _train(model, opt, monitor, 3)
    model[0] = new  # a layer replaced mid-run (same shapes), after the healthy snapshot of step 0
    opt.param_groups[0]["params"] = list(model.parameters())
    _train(model, opt, monitor, 2, start=3)
    if resume:
        state = monitor.state_dict(snapshot=True)
        monitor = Monitor(model, opt, grad_every=1)
        monitor.load_state_dict(state)
    _train(model, opt, monitor, 2, start=5, bad=6)
    return _weights(model), monitor


def test_a_resumed_snapshot_does_not_write_a_removed_layers_weights_into_its_replacement() -> None:
    # state_dict(snapshot=True) saved the snapshot by position; after a resume the rollback restored the removed
    # layer's step-0 weights into the new layer, where the uninterrupted run leaves the new layer as it is
    straight, straight_monitor = _swap_run(resume=False)
    resumed, resumed_monitor = _swap_run(resume=True)
    assert [e.action for e in straight_monitor.events] == [e.action for e in resumed_monitor.events] == ["rollback"]
    assert _same(resumed, straight)
