"""Defects found by driving lrkit.Monitor from hand-written loops: each test failed before its fix.

Known answers: torch's own scheduler run without a back-off (times the factor), the state before a skipped or rolled
back step (bit for bit), and gradient norms computed densely in float64.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S

from _helpers import assert_same
from lrkit.monitor import LossSpike, Monitor, MonitorEvent, MonitorWarning, NonFinite
from lrkit.monitor.actions import backoff_lr


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


def step(model: Any, opt: torch.optim.Optimizer, monitor: Monitor, loss_fn: Any, *, sched: Any = None,
         poison: float = 1.0) -> bool:
    """One loop iteration as the README writes it; ``poison`` multiplies the loss."""
    opt.zero_grad()
    loss = loss_fn() * poison
    loss.backward()
    took = monitor.after_backward(loss)
    opt.step()
    if sched is not None:
        sched.step()
    monitor.after_step()
    return took


# ------------------------------------------------------------------------------------- scheduler interplay
def test_backoff_survives_swalr() -> None:
    """SWALR anneals each group towards its ``swa_lr`` group key: that key must be backed off too."""
    ref_opt = torch.optim.SGD([nn.Parameter(torch.ones(2))], lr=0.1)
    opt = torch.optim.SGD([nn.Parameter(torch.ones(2))], lr=0.1)
    ref = torch.optim.swa_utils.SWALR(ref_opt, swa_lr=0.02, anneal_epochs=4)
    sched = torch.optim.swa_utils.SWALR(opt, swa_lr=0.02, anneal_epochs=4)
    backoff_lr(opt, sched, 0.3)
    for t in range(10):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.3 * ref_opt.param_groups[0]["lr"], rel=1e-9), t
        for o, s in ((ref_opt, ref), (opt, sched)):
            o.step()
            s.step()
    assert ref_opt.param_groups[0]["lr"] == pytest.approx(0.02)  # annealed onto swa_lr, and the back-off holds


TENSOR_LR_SCHEDULERS = {
    "LambdaLR": lambda o: S.LambdaLR(o, lambda t: 1.0 / (1 + t)),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=40),
    "SequentialLR": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=5), S.ExponentialLR(o, gamma=0.8)], milestones=[5]
    ),
}


@pytest.mark.parametrize("name", sorted(TENSOR_LR_SCHEDULERS))
def test_backoff_scales_a_tensor_lr_in_place_once_and_it_survives(name: str) -> None:
    """A tensor ``lr`` stays the same object (a compiled/fused step holds it) and is scaled exactly once, although
    torch's ``base_lrs`` are the very ``initial_lr`` tensors of the groups."""

    def build(tensor: bool) -> tuple[torch.optim.Optimizer, Any]:
        a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2))
        lr = (lambda v: torch.tensor(v)) if tensor else (lambda v: v)
        opt = torch.optim.SGD([{"params": [a], "lr": lr(0.1)}, {"params": [b], "lr": lr(0.02)}], lr=lr(0.1),
                              momentum=0.9, foreach=False)  # fmt: skip
        return opt, TENSOR_LR_SCHEDULERS[name](opt)

    # the reference has tensor LRs too: torch <= 2.9's own SequentialLR gives a tensor-LR run another curve than a
    # float-LR one from its milestone on (it restarts the next scheduler from the float base_lrs), back-off or not
    ref_opt, ref = build(True)
    opt, sched = build(True)
    for t in range(25):
        if t == 3:
            held = [g["lr"] for g in opt.param_groups]
            backoff_lr(opt, sched, 0.3)
            assert all(g["lr"] is h for g, h in zip(opt.param_groups, held))  # the same tensors
        if t >= 3:
            for g, r in zip(opt.param_groups, ref_opt.param_groups):
                assert float(g["lr"]) == pytest.approx(0.3 * float(r["lr"]), rel=1e-5), t  # float32 tensors
        for o, s in ((ref_opt, ref), (opt, sched)):
            o.step()
            s.step()


def test_skip_with_a_tensor_lr_keeps_the_lr_the_scheduler_just_set() -> None:
    """A skipped step keeps the scheduler's clock running: with a tensor lr the undo must not write the pre-step
    LR back into the group's tensor (ExponentialLR then stayed one step behind, for good)."""
    x, y = data()
    for tensor in (False, True):
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        lr = torch.tensor(0.01) if tensor else 0.01
        opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=False)
        sched = S.ExponentialLR(opt, gamma=0.5)
        monitor = Monitor(model, opt, sched, on_divergence="skip", grad_every=1)
        loss_fn = (lambda m: lambda: nn.functional.mse_loss(m(x), y))(model)
        for t in range(4):
            step(model, opt, monitor, loss_fn, sched=sched, poison=math.nan if t == 2 else 1.0)
        assert monitor.skipped == 1
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.01 * 0.5**4, rel=1e-6), tensor
        assert float(sched.get_last_lr()[0]) == pytest.approx(0.01 * 0.5**4, rel=1e-6)


# ------------------------------------------------------------------------- optimizer params outside the model
class DecayAlways(torch.optim.Optimizer):
    """Moves every parameter even without a gradient (weight decay as a separate step) and counts its steps in an
    attribute."""

    def __init__(self, params: Any, lr: float = 0.05) -> None:
        super().__init__(params, {"lr": lr})
        self.steps_taken = 0

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        self.steps_taken += 1
        for group in self.param_groups:
            for p in group["params"]:
                p.mul_(1 - group["lr"])
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


def _temperature_task() -> tuple[nn.Module, nn.Parameter, Any]:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    temperature = nn.Parameter(torch.tensor(1.0))  # a learnable loss parameter the model does not hold
    x, y = data()
    return model, temperature, lambda: nn.functional.mse_loss(model(x) * temperature, y)


def test_rollback_restores_an_optimizer_parameter_the_model_does_not_hold() -> None:
    model, temperature, loss_fn = _temperature_task()
    opt = torch.optim.SGD([*model.parameters(), temperature], lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_every=3, grad_every=1)
    for t in range(8):
        if t == 6:  # the snapshot is taken in this step's after_backward (steps 0, 3, 6)
            then = {"t": temperature.detach().clone(), "m": copy.deepcopy(model.state_dict()),
                    "o": copy.deepcopy(opt.state_dict())}  # fmt: skip
        step(model, opt, monitor, loss_fn)
    step(model, opt, monitor, loss_fn, poison=math.nan)
    assert monitor.rollbacks == 1
    now = {"t": temperature.detach().clone(), "m": model.state_dict(), "o": copy.deepcopy(opt.state_dict())}
    assert now["o"]["param_groups"][0]["lr"] == pytest.approx(0.3 * 0.05)
    now["o"]["param_groups"][0]["lr"] = then["o"]["param_groups"][0]["lr"]
    assert_same(now, then)


def test_skip_undoes_what_the_optimizer_did_to_an_outside_parameter_and_its_counter() -> None:
    model, temperature, loss_fn = _temperature_task()
    opt = DecayAlways([*model.parameters(), temperature])
    monitor = Monitor(model, opt, on_divergence="skip", grad_every=1)
    for _ in range(4):
        step(model, opt, monitor, loss_fn)
    before = (temperature.detach().clone(), [p.detach().clone() for p in model.parameters()], opt.steps_taken)
    assert step(model, opt, monitor, loss_fn, poison=math.nan) is False
    assert monitor.skipped == 1
    assert torch.equal(temperature, before[0]) and opt.steps_taken == before[2] == 4
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before[1]))


def test_a_saved_snapshot_carries_the_outside_parameter() -> None:
    model, temperature, loss_fn = _temperature_task()
    opt = torch.optim.SGD([*model.parameters(), temperature], lr=0.05)
    monitor = Monitor(model, opt, snapshot_every=1000, grad_every=1)
    healthy_t = temperature.detach().clone()  # the snapshot is step 0's
    for _ in range(5):
        step(model, opt, monitor, loss_fn)
    buffer = io.BytesIO()
    torch.save(monitor.state_dict(snapshot=True), buffer)
    buffer.seek(0)
    resumed = Monitor(model, opt, snapshot_every=1000, grad_every=1)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    step(model, opt, resumed, loss_fn, poison=math.nan)
    assert resumed.rollbacks == 1 and torch.equal(temperature.detach(), healthy_t)


# ------------------------------------------------------------------------------------------ gradient norms
def test_sparse_gradients_are_measured_and_clipped() -> None:
    torch.manual_seed(0)
    emb = nn.Embedding(20, 4, sparse=True)
    opt = torch.optim.SparseAdam(emb.parameters(), lr=0.01)
    monitor = Monitor(emb, opt, grad_every=1, snapshot_every=5, on_divergence="warn")
    idx = torch.tensor([1, 2, 3, 2])  # index 2 twice: an uncoalesced gradient
    for _ in range(25):
        opt.zero_grad()
        loss = emb(idx).pow(2).sum()
        loss.backward()
        dense = emb.weight.grad.to_dense().double().norm().item()
        monitor.after_backward(loss)
        assert monitor.record.last_grad_norm == pytest.approx(dense, rel=1e-6)
        opt.step()
        monitor.after_step()
    opt.zero_grad()
    loss = emb(idx).pow(2).sum()
    loss.backward()
    emb.weight.grad = emb.weight.grad * 30.0  # 30x the running median: exploding_gradients clips it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonitorWarning)
        assert monitor.after_backward(loss) is True
    event = [e for e in monitor.events if e.check == "exploding_gradients"][-1]
    assert event.action == "clip" and monitor.clipped == 1
    assert emb.weight.grad.to_dense().norm().item() == pytest.approx(event.values["clip_to"], rel=1e-4)
    opt.step()
    monitor.after_step()


def test_a_float16_gradient_next_to_float32_ones_is_normed_in_float32() -> None:
    """The first gradient's dtype decided the accumulation dtype: a finite float16 gradient with a norm above
    65504 then read as inf, a false non_finite on every step."""
    module = nn.Module()
    module.norm = nn.Parameter(torch.ones(3))  # float32, first (a LayerNorm kept in float32)
    module.body = nn.Parameter(torch.ones(10_000, dtype=torch.float16))
    opt = torch.optim.SGD(module.parameters(), lr=1e-12)
    monitor = Monitor(module, opt, grad_every=1)
    for _ in range(3):
        opt.zero_grad()
        loss = module.norm.sum() + module.body.float().sum() * 1e-6
        loss.backward()
        module.body.grad.fill_(1000.0)  # norm 1e5: finite, above float16's largest value
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
    assert monitor.events == []
    assert monitor.record.last_grad_norm == pytest.approx(math.sqrt(1000.0**2 * 10_000 + 3), rel=1e-5)  # float32 sums


# ------------------------------------------------------------------------------------------------ the loss
def test_numpy_losses_are_accepted_and_bad_ones_leave_the_monitor_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = Monitor(model, opt)
    x, y = data()
    values = []
    for value_of in (float, np.float32, np.float64, np.array, lambda v: torch.tensor([v]), lambda v: torch.tensor(v)):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        values.append(float(np.float32(loss.item())))
        assert monitor.after_backward(value_of(values[-1])) is True
        opt.step()
        monitor.after_step()
    state = copy.deepcopy(monitor.state_dict())
    for bad, match in ((torch.tensor(1.0 + 0j), "real-valued"),
                       (True, "got bool"), ("0.5", "got str"), (torch.ones(2), "shape \\(2,\\)")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            monitor.after_backward(bad)
        assert_same(monitor.state_dict(), state)  # nothing counted, nothing pushed
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert monitor.after_backward(loss) is True and monitor.step == 6  # and it goes on as before
    opt.step()
    monitor.after_step()
    assert monitor.record.window("loss", 10)[:6] == pytest.approx(values, rel=1e-6)


# ------------------------------------------------------------------------------------------ bad arguments
def test_bad_checks_actions_and_flags_name_the_argument() -> None:
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="pass an instance, e.g. lrkit.monitor.LossSpike"):
        Monitor(model, opt, checks=["loss_spike"])
    with pytest.raises(ValueError, match="got one check: write checks=\\[LossSpike"):
        Monitor(model, opt, checks=LossSpike())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="check 'loss_spike': every=0 must be an integer >= 1"):
        Monitor(model, opt, checks=[LossSpike(every=0)])  # was silently never run
    with pytest.raises(ValueError, match="check 'non_finite': cooldown=-1"):
        Monitor(model, opt, checks=[NonFinite(cooldown=-1)])
    with pytest.raises(ValueError, match="restore_on_stop='no' must be True or False"):
        Monitor(model, opt, restore_on_stop="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="actions=.* must be a dict"):
        Monitor(model, opt, actions="warn")  # type: ignore[arg-type]


def test_event_dicts_and_the_plot_reject_what_is_not_an_event() -> None:
    import matplotlib.pyplot as plt

    from lrkit.plots.monitor import mark_events

    with pytest.raises(ValueError, match="'values' must be a dict"):
        MonitorEvent.from_dict({"step": 1, "check": "x", "values": None, "action": "warn", "reason": ""})
    with pytest.raises(ValueError, match="got list"):
        MonitorEvent.from_dict([1, 2])  # type: ignore[arg-type]
    fig, ax = plt.subplots()
    try:
        for bad in (None, 3, MonitorEvent(1, "loss_spike", {}, "warn", "")):
            with pytest.raises(ValueError, match="events must be a list"):
                mark_events(ax, bad)  # type: ignore[arg-type]
        drawn = mark_events(ax, [{"step": True, "check": "loss_spike", "action": "warn"},
                                 {"step": 1e12, "check": "loss_spike", "action": "stop"}])  # fmt: skip
        assert len(drawn) == 2 and drawn[0].get_xdata()[0] == 1e12  # a bool step is no position; a huge one is
    finally:
        plt.close(fig)


def test_a_bool_loss_tensor_is_refused_on_the_fast_path_too() -> None:
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = Monitor(model, opt)
    x, y = data()
    for _ in range(80):  # past the dense start: later steps take the fast path
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        monitor.after_backward(nn.functional.mse_loss(model(x), y).detach())
        opt.step()
        monitor.after_step()
    assert monitor._dense_until <= monitor.step + 1 < monitor._next_grad  # the next call is a fast-path call
    state = copy.deepcopy(monitor.state_dict())
    with pytest.raises(ValueError, match="real-valued loss, got a tensor of dtype torch.bool"):
        monitor.after_backward(torch.tensor(True))  # read as True <= bound: was counted as a healthy loss of 1
    assert_same(monitor.state_dict(), state)
