"""lrkit.Monitor in real training loops: quiet when healthy; exact skip, rollback and stop; recovery at a huge LR."""

from __future__ import annotations

import copy
import json
import math
import warnings
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from _helpers import assert_same
from lrkit.monitor import Check, Finding, Monitor, MonitorEvent, MonitorWarning, NonFinite, RollingRecord


def make_data(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def batches(x: torch.Tensor, y: torch.Tensor, bs: int = 32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    while True:
        idx = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - bs + 1, bs):
            yield x[idx[i : i + bs]], y[idx[i : i + bs]]


def small_model(seed: int = 0, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(4, 16)]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.Tanh(), nn.Linear(16, 1)]
    return nn.Sequential(*layers)


def state_of(model: nn.Module, opt: torch.optim.Optimizer, sched: Any = None) -> dict[str, Any]:
    return copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict(),
                          "sched": sched.state_dict() if sched is not None else None})  # fmt: skip


def train(model: nn.Module, opt: torch.optim.Optimizer, monitor: Monitor | None, steps: int, *,
          sched: Any = None, poison: dict[int, float] | None = None) -> list[float]:
    """A hand-written loop exactly as in the issue; ``poison[step] = value`` replaces that step's loss value."""
    x, y = make_data()
    losses = []
    it = batches(x, y)
    for step in range(steps):
        xb, yb = next(it)
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(xb), yb)
        if poison and step in poison:
            loss = loss * poison[step]
        loss.backward()
        losses.append(loss.item())
        if monitor is not None:
            monitor.after_backward(loss)
        opt.step()
        if sched is not None:
            sched.step()
        if monitor is not None and monitor.after_step():
            break
    return losses


# ---------------------------------------------------------------------------------------------------- healthy
@pytest.mark.parametrize("grad_every", [1, 16])
def test_healthy_run_raises_no_event(grad_every: int) -> None:
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=400)
    monitor = lrkit.Monitor(model, opt, sched, grad_every=grad_every, sample_every=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MonitorWarning)
        losses = train(model, opt, monitor, 400, sched=sched)
    assert losses[-1] < 0.1 * losses[0]  # it really trained
    assert monitor.events == [] and monitor.summary()["healthy"] and not monitor.should_stop
    assert monitor.record.count("update_ratio") > 0  # the ratio was sampled (lr_too_low stayed quiet)


# ---------------------------------------------------------------------------------------------------- skip
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("call_step", [True, False])
def test_skip_leaves_parameters_and_optimizer_state_unchanged(opt_name: str, call_step: bool) -> None:
    model = small_model(bn=True)
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-2)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-2)
    monitor = Monitor(model, opt, on_divergence="skip")
    train(model, opt, monitor, 12)  # builds momentum / Adam moments, so a zero-grad step would still move
    x, y = make_data()
    opt.zero_grad()
    out = model(x[:32])
    before = state_of(model, opt)  # after the forward (BatchNorm stats updated), before the step
    loss = nn.functional.mse_loss(out, y[:32]) * float("nan")
    loss.backward()
    assert monitor.after_backward(loss) is False
    assert all(p.grad is None for p in model.parameters())
    if call_step:
        opt.step()
    assert monitor.after_step() is False
    assert_same(state_of(model, opt), before)
    assert monitor.skipped == 1 and monitor.events[-1].action == "skip" and monitor.events[-1].check == "non_finite"
    train(model, opt, monitor, 5)  # and training goes on normally
    assert all(torch.isfinite(p).all() for p in model.parameters())


class DecayAlways(torch.optim.Optimizer):
    """A toy optimizer that moves every parameter and bumps its state even when the gradient is None."""

    def __init__(self, params: Any, lr: float = 0.1) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.mul_(1 - group["lr"])
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
                self.state[p]["n"] = self.state[p].get("n", torch.zeros(())) + 1


def test_skip_is_exact_even_for_an_optimizer_that_ignores_missing_gradients() -> None:
    model = small_model()
    opt = DecayAlways(model.parameters(), lr=0.01)
    monitor = Monitor(model, opt, on_divergence="skip")
    train(model, opt, monitor, 5)
    before = state_of(model, opt)
    train(model, opt, monitor, 1, poison={0: float("nan")})
    assert_same(state_of(model, opt), before)
    assert monitor.skipped == 1


# ---------------------------------------------------------------------------------------------------- rollback
def test_rollback_before_any_healthy_state_undoes_the_step_and_backs_off() -> None:
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    before = state_of(model, opt)
    monitor = Monitor(model, opt)
    train(model, opt, monitor, 1, poison={0: float("nan")})  # the very first step is bad: nothing healthy yet
    now = state_of(model, opt)
    assert now["opt"]["param_groups"][0]["lr"] == pytest.approx(0.3 * 0.05)
    now["opt"]["param_groups"][0]["lr"] = 0.05
    assert_same(now, before)
    assert monitor.rollbacks == 1 and monitor.lr_scale == pytest.approx(0.3)


def test_rollback_with_the_lrkit_scheduler_restores_its_step_and_scales_its_multiplier() -> None:
    from lrkit.schedules import from_spec

    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = from_spec("onecycle max_lr=0.1", total_steps=200).to_torch(opt)
    ref_opt = torch.optim.SGD(small_model().parameters(), lr=0.1, momentum=0.9)
    ref = from_spec("onecycle max_lr=0.1", total_steps=200).to_torch(ref_opt)
    monitor = Monitor(model, opt, sched, snapshot_every=10, grad_every=1)
    train(model, opt, monitor, 16, sched=sched, poison={15: float("nan")})  # snapshot at step 10, rollback at 15
    assert monitor.rollbacks == 1 and sched.lr_multiplier == pytest.approx(0.3)
    assert sched.current_step == 10  # the scheduler went back with the model
    ref.seek(10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.3 * ref_opt.param_groups[0]["lr"])
    for _ in range(50):
        opt.step()
        sched.step()
        ref_opt.step()
        ref.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(0.3 * ref_opt.param_groups[0]["lr"])


def test_rollback_restores_model_optimizer_and_scheduler_exactly_then_backs_off() -> None:
    model = small_model(bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
    monitor = Monitor(model, opt, sched, snapshot_every=10, grad_every=1, backoff=0.25)
    x, y = make_data()
    it = batches(x, y)
    snap_state = None
    for step in range(14):
        xb, yb = next(it)
        opt.zero_grad()
        out = model(xb)
        if step == 10:  # the snapshot is taken inside this step's after_backward, before the optimizer step
            snap_state = state_of(model, opt, sched)
        loss = nn.functional.mse_loss(out, yb) * (float("inf") if step == 13 else 1.0)
        loss.backward()
        took = monitor.after_backward(loss)
        assert took is (step != 13)
        opt.step()
        sched.step()
        monitor.after_step()
    assert monitor.rollbacks == 1 and monitor.events[-1].action == "rollback"
    now = state_of(model, opt, sched)
    # everything but the LR is restored bit for bit ...
    lr_keys = ("lr", "initial_lr")
    for g_now, g_then in zip(now["opt"]["param_groups"], snap_state["opt"]["param_groups"]):
        for k in lr_keys:
            assert g_now[k] == pytest.approx(0.25 * g_then[k], rel=1e-12)
            g_now[k] = g_then[k]
    now["sched"]["base_lrs"] = snap_state["sched"]["base_lrs"] = None
    now["sched"]["_last_lr"] = snap_state["sched"]["_last_lr"] = None
    assert_same(now, snap_state)
    # ... and the back-off survives the scheduler's later steps (StepLR halves every 7 steps from the restored step)
    ref_lr = snap_state["opt"]["param_groups"][0]["lr"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25 * ref_lr)
    for _ in range(7):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25 * 0.5 * ref_lr)


def test_rollback_on_the_fast_path_recovers_a_run_at_a_huge_lr() -> None:
    def run(with_monitor: bool) -> tuple[list[float], Monitor | None]:
        model = small_model()
        opt = torch.optim.SGD(model.parameters(), lr=1.5)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.5, total_steps=300, pct_start=0.1)
        mon = Monitor(model, opt, sched) if with_monitor else None
        return train(model, opt, mon, 300, sched=sched), mon

    plain, _ = run(False)
    assert not math.isfinite(plain[-1]) or plain[-1] > 100 * plain[0]  # without the monitor the run blows up
    losses, mon = run(True)
    assert mon is not None and mon.rollbacks >= 1 and not mon.should_stop
    assert math.isfinite(losses[-1]) and losses[-1] < 0.05 * losses[0]
    assert mon.lr_scale == pytest.approx(0.3**mon.rollbacks)
    assert {e.action for e in mon.events} <= {"rollback", "clip", "warn"}


def test_rollback_loop_is_capped_then_stops_with_a_reason() -> None:
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, max_rollbacks=3)
    healthy = state_of(model, opt)
    losses = train(model, opt, monitor, 50, poison={s: float("nan") for s in range(1, 50)})
    assert monitor.rollbacks == 3 and monitor.should_stop and len(losses) == 5  # rollbacks on 1, 2, 3; stop on 4
    assert "rollback limit reached (3 rollbacks" in monitor.stop_reason
    assert [e.action for e in monitor.events] == ["rollback"] * 3 + ["stop"]
    params_now = state_of(model, opt)["model"]
    assert_same(params_now, healthy["model"])  # the stop restored the last healthy state (step 0's)


# ---------------------------------------------------------------------------------------------------- stop, clip
def test_stop_action() -> None:
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, on_divergence="stop", grad_every=1)
    losses = train(model, opt, monitor, 40, poison={20: 1e6})
    assert len(losses) == 21 and monitor.should_stop and monitor.last_action == "stop"
    assert monitor.stop_reason.startswith("loss_spike at step 20")
    x, y = make_data()
    loss = nn.functional.mse_loss(model(x[:8]), y[:8])
    loss.backward()
    assert monitor.after_backward(loss) is False and monitor.after_step() is True  # stays stopped


def test_clip_switches_on_only_for_the_spiking_step() -> None:
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = Monitor(model, opt, grad_every=1, on_divergence="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonitorWarning)
        train(model, opt, monitor, 40)
        assert monitor.clipped == 0
        x, y = make_data()
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[:32]), y[:32])
        loss.backward()
        median = monitor.record.reference("grad_norm", 50).median
        norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))
        for p in model.parameters():
            p.grad.mul_(20.0 * median / norm)  # 20x the median: above exploding_gradients' 10x, below blowup's 50x
        assert monitor.after_backward(loss) is True
    event = monitor.events[-1]
    assert event.check == "exploding_gradients" and event.action == "clip" and monitor.clipped == 1
    norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))
    assert norm == pytest.approx(event.values["clip_to"], rel=1e-4)
    assert event.values["clip_to"] == pytest.approx(2.0 * event.values["median"])
    opt.step()
    monitor.after_step()


# ---------------------------------------------------------------------------------------------------- too low
def test_lr_too_low_warns() -> None:
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    monitor = Monitor(model, opt, sample_every=10)
    with pytest.warns(MonitorWarning, match="LR looks too low"):
        train(model, opt, monitor, 160)
    assert {e.check for e in monitor.events} == {"lr_too_low"} and monitor.events[0].action == "warn"
    assert monitor.events[0].values["ratio"] < 1e-4


# ---------------------------------------------------------------------------------------------------- records
def test_events_state_dict_and_summary_are_plain_and_resumable(tmp_path) -> None:
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    seen: list[MonitorEvent] = []
    monitor = Monitor(model, opt, on_event=seen.append)
    train(model, opt, monitor, 30, poison={12: float("nan"), 25: 1e3})
    # a 1000x loss also means 1000x gradients: two checks fire on step 25, one rollback is done
    assert seen == monitor.events and [e.check for e in seen] == ["non_finite", "loss_spike", "gradient_blowup"]
    assert [e.step for e in seen] == [12, 25, 25] and monitor.rollbacks == 2
    text = json.dumps([e.to_dict() for e in monitor.events], allow_nan=False)
    assert [MonitorEvent.from_dict(d) for d in json.loads(text)][1] == monitor.events[1]
    torch.save(monitor.state_dict(), tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    fresh = Monitor(model, opt)
    fresh.load_state_dict(state)
    assert fresh.summary() == monitor.summary()
    assert fresh.summary()["by_check"] == {"non_finite": 1, "loss_spike": 1, "gradient_blowup": 1}
    assert fresh.rollbacks == 2 and fresh.lr_scale == pytest.approx(0.09)
    train(model, opt, fresh, 10)  # resumes monitoring (takes a fresh snapshot at its next healthy step)
    assert fresh.step == monitor.step + 10 and fresh._healthy is not None


def test_grad_scaler_owns_non_finite_gradients() -> None:
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, grad_scaler=torch.amp.GradScaler("cpu"), grad_every=1)
    train(model, opt, monitor, 5)
    x, y = make_data()
    loss = nn.functional.mse_loss(model(x[:8]), y[:8])
    loss.backward()
    next(model.parameters()).grad[0, 0] = float("inf")
    assert monitor.after_backward(loss) is True and monitor.events == []
    monitor.after_step()


# ---------------------------------------------------------------------------------------------------- errors
class AfterStepCheck(Check):
    name = "after_step_check"
    category = "divergence"
    phase = "step"

    def check(self, record: RollingRecord) -> Finding | None:
        return None


def test_bad_input_raises_clear_errors() -> None:
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.raises(ValueError, match="Did you mean 'rollback'"):
        Monitor(model, opt, on_divergence="rolback")
    with pytest.raises(ValueError, match="backoff=1.5"):
        Monitor(model, opt, backoff=1.5)
    with pytest.raises(ValueError, match="snapshot_every=0"):
        Monitor(model, opt, snapshot_every=0)
    with pytest.raises(ValueError, match="Did you mean 'loss_spike'"):
        Monitor(model, opt, actions={"loss_spik": "warn"})
    with pytest.raises(ValueError, match="only 'warn' or 'stop'"):
        Monitor(model, opt, checks=[AfterStepCheck()])  # a divergence check after the step cannot roll back
    with pytest.raises(ValueError, match="more than one check named"):
        Monitor(model, opt, checks=[NonFinite(), NonFinite()])
    with pytest.raises(ValueError, match="state_dict"):
        Monitor(model, opt, scheduler=object())
    monitor = Monitor(model, opt)
    with pytest.raises(RuntimeError, match="without after_backward"):
        monitor.after_step()
    loss = nn.functional.mse_loss(model(torch.ones(3, 4)), torch.zeros(3, 1))
    loss.backward()
    monitor.after_backward(loss)
    with pytest.raises(RuntimeError, match="twice without after_step"):
        monitor.after_backward(loss)
    monitor.after_step()
    with pytest.raises(ValueError, match="shape \\(3, 1\\)"):
        monitor.after_backward(model(torch.ones(3, 4)))
    with pytest.raises(ValueError, match="not a Monitor state_dict"):
        monitor.load_state_dict({"version": 99})
