"""The monitor's cheaper paths give exactly what the plain ones give: traversal, snapshot, update ratio, batched
pushes of the loss, idle step checks, and the caches that must follow param groups, resumes and rollbacks."""

from __future__ import annotations

import copy
import math
import statistics
import struct
import warnings
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from _helpers import assert_same
from lrkit._state import Snapshot
from lrkit.monitor import Monitor, MonitorWarning
from lrkit.monitor import monitor as monitor_module
from lrkit.monitor.checks import LRTooLow, default_checks
from lrkit.monitor.monitor import _REUSE_NUMEL, _Healthy, _walk
from lrkit.monitor.record import RollingRecord, robust_stats


def data(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)


def mlp(seed: int = 0, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(4, 16)] + ([nn.BatchNorm1d(16)] if bn else []) + [nn.Tanh(), nn.Linear(16, 1)]
    return nn.Sequential(*layers)


def loop(model: nn.Module, opt: torch.optim.Optimizer, monitor: Monitor, steps: int, *, sched: Any = None,
         start: int = 0, extra: nn.Module | None = None, hook: Any = None) -> None:
    """Train ``steps`` steps on a fixed batch stream (batch ``i`` is the same for every run); ``hook(step)`` runs
    after ``loss.backward()``."""
    x, y = data()
    for step in range(start, start + steps):
        g = torch.Generator().manual_seed(step)
        idx = torch.randint(0, len(x), (32,), generator=g)
        opt.zero_grad()
        out = model(x[idx]) if extra is None else model(x[idx]) + extra(x[idx])
        loss = nn.functional.mse_loss(out, y[idx])
        loss.backward()
        if hook is not None:
            hook(step)
        monitor.after_backward(loss)
        opt.step()
        if sched is not None:
            sched.step()
        if monitor.after_step():
            break


# ------------------------------------------------------------------------------------------- module traversal
class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 3, bias=False)
        self.b = nn.Linear(3, 3)
        self.b.weight = self.a.weight  # tied weights: one Parameter in two modules
        self.shared = nn.BatchNorm1d(3)
        self.again = nn.Sequential(self.shared, nn.ReLU())  # the same module twice in the tree
        self.register_buffer("nothing", None)
        self.frozen = nn.Parameter(torch.ones(2), requires_grad=False)


class OwnParameters(nn.Linear):
    def parameters(self, recurse: bool = True) -> Any:  # a model that decides itself what its parameters are
        return iter([self.weight])


@pytest.mark.parametrize("build", [lambda: mlp(bn=True), Tied, lambda: OwnParameters(2, 2)])
def test_walk_gives_torchs_own_traversals(build: Any) -> None:
    model = build()
    if isinstance(model, Tied):
        model.eval()  # modes differ from the default
    params, buffers, modes = _walk(model)
    assert [id(p) for p in params] == [id(p) for p in model.parameters()]
    assert [id(b) for b in buffers] == [id(b) for b in model.buffers()]
    assert [id(b) for b in buffers] == [id(b) for b in model.buffers()]
    assert modes == [m.training for m in model.modules()]


# ------------------------------------------------------------------------------------------------- snapshot
def test_the_monitors_snapshot_is_snapshot_capture_without_gradients() -> None:
    model = mlp(bn=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.95), weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=100)
    monitor = Monitor(model, opt, sched)
    loop(model, opt, monitor, 7, sched=sched)  # Adam moments and step tensors, BatchNorm statistics
    x, y = data()
    opt.zero_grad()
    nn.functional.mse_loss(model(x[:32]), y[:32]).backward()  # gradients exist: the snapshot must leave them out
    grads = [p.grad.clone() for p in model.parameters()]

    ours, params, buffers = monitor._capture(scheduler=True)
    saved = [p.grad for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    reference = Snapshot.capture(model, opt, sched)
    for p, g in zip(model.parameters(), saved):
        p.grad = g

    assert [id(p) for p in params] == [id(p) for p in model.parameters()]
    assert [id(b) for b in buffers] == [id(b) for b in model.buffers()]
    for name in ("params", "grads", "buffers", "modes", "opt_state", "opt_groups", "sched_state"):
        assert_same(getattr(ours, name), getattr(reference, name), name)
    assert ours.model is model and ours.optimizer is opt and ours.scheduler is sched and ours.rng is None
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))  # gradients untouched
    assert not any(t.data_ptr() == p.data_ptr() for t, p in zip(ours.params, model.parameters()))  # copies


# ---------------------------------------------------------------------------------------------- update ratio
@pytest.mark.parametrize(("snapshot_every", "sample_every"), [(100, 100), (1000, 37)])
def test_update_ratio_is_the_norm_of_the_update_over_the_norm_of_the_weights(snapshot_every: int,
                                                                              sample_every: int) -> None:
    """(100, 100): the sample reuses the snapshot's copies (taken at the same step); (1000, 37): its own copy."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_every=snapshot_every, sample_every=sample_every, grad_every=1)
    expected: list[float] = []
    before: list[torch.Tensor] = []

    def hook(step: int) -> None:
        before[:] = [p.detach().clone() for p in model.parameters()]

    x, y = data()
    for step in range(300):
        g = torch.Generator().manual_seed(step)
        idx = torch.randint(0, len(x), (32,), generator=g)
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        hook(step)
        sampled = monitor.record.seen["update_ratio"]
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
        if monitor.record.seen["update_ratio"] > sampled:
            num = math.sqrt(sum(torch.linalg.vector_norm(p.detach() - b).item() ** 2
                                for p, b in zip(model.parameters(), before)))  # fmt: skip
            den = math.sqrt(sum(torch.linalg.vector_norm(p.detach()).item() ** 2 for p in model.parameters()))
            expected.append(num / den)
    got = monitor.record.window("update_ratio", 100)
    assert len(got) == len(expected) >= 300 // max(sample_every, 100) and got == pytest.approx(expected, rel=1e-6)
    assert monitor._sample is None


def test_update_ratio_of_a_parameter_the_model_does_not_hold() -> None:
    model, extra = mlp(), nn.Linear(4, 1)
    opt = torch.optim.SGD([*model.parameters(), *extra.parameters()], lr=0.05)
    monitor = Monitor(model, opt)  # the snapshot holds the model only; the sample copies what it needs itself
    w0 = [p.detach().clone() for p in opt.param_groups[0]["params"]]
    loop(model, opt, monitor, 1, extra=extra)
    w1 = [p.detach() for p in opt.param_groups[0]["params"]]
    num = math.sqrt(sum(torch.linalg.vector_norm(a - b).item() ** 2 for a, b in zip(w1, w0)))
    den = math.sqrt(sum(torch.linalg.vector_norm(a).item() ** 2 for a in w1))
    assert monitor.record.window("update_ratio", 5) == pytest.approx([num / den], rel=1e-6)


# --------------------------------------------------------------------------------- param groups and caches
def test_a_param_group_added_mid_run_has_its_gradients_checked() -> None:
    model, extra = mlp(), nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, on_divergence="skip", grad_every=32)
    loop(model, opt, monitor, 40)
    opt.add_param_group({"params": list(extra.parameters()), "lr": 0.05})
    norms: dict[int, float] = {}

    def hook(step: int) -> None:
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norms[step] = math.sqrt(sum(torch.linalg.vector_norm(g).item() ** 2 for g in grads))
        if step == 96:  # a full step (a multiple of grad_every=32)
            extra.weight.grad[0, 0] = float("inf")

    loop(model, opt, monitor, 60, start=40, extra=extra, hook=hook)
    # the global norm of the full step at 64 covers the new group ...
    assert any(n == pytest.approx(norms[64], rel=1e-6) for n in monitor.record.window("grad_norm", 100))
    # ... and an inf in it is seen
    assert [(e.step, e.check, e.action) for e in monitor.events] == [(96, "non_finite", "skip")]


class Tracking(Monitor):
    """Records the steps that ran as full steps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.full_steps: list[int] = []

    def _full_step(self, step: int, loss: Any, value: float | None) -> bool:
        self.full_steps.append(step)
        return super()._full_step(step, loss, value)


def test_resume_and_a_new_grad_every_keep_the_full_step_schedule() -> None:
    def run(resume: bool) -> tuple[Monitor, list[int]]:
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        monitor = Tracking(model, opt, grad_every=16)
        loop(model, opt, monitor, 150)
        full = monitor.full_steps
        state = monitor.state_dict()  # flushes: both runs do it at the same step
        if resume:
            monitor = Tracking(model, opt, grad_every=16)
            monitor.load_state_dict(copy.deepcopy(state))
            monitor.full_steps = full
        loop(model, opt, monitor, 150, start=150)
        monitor.grad_every = 40
        loop(model, opt, monitor, 100, start=300)
        return monitor, monitor.full_steps

    def losses_and_norms(monitor: Monitor) -> dict[str, Any]:
        # a resumed monitor samples the update ratio afresh (its sampling clock is not saved), so leave that out
        rec = monitor.state_dict()["record"]
        rec["values"].pop("update_ratio")
        return {k: v for k, v in rec.items() if k not in ("seen", "lr", "peak_lr")} | {"seen": rec["seen"]["loss"]}

    (straight, full), (resumed, full_resumed) = run(False), run(True)
    assert full_resumed == full
    assert set(range(0, 300, 16)) <= set(full) and [s for s in full if s >= 300] == [320, 360]
    assert_same(losses_and_norms(resumed), losses_and_norms(straight))


def test_a_rollback_re_plans_the_step_checks() -> None:
    """After a rollback the record (and its update ratios) is the snapshot's: the idle state is recomputed."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e-7)  # far too low: lr_too_low wants to fire
    monitor = Monitor(model, opt, sample_every=10, snapshot_every=20, grad_every=4)
    with pytest.warns(MonitorWarning) as caught:
        loop(model, opt, monitor, 200)
    assert caught[0].filename == __file__  # the warning points at the loop's after_step() call
    warned = [e.step for e in monitor.events if e.check == "lr_too_low"]
    assert warned and not monitor._steps_idle
    x, y = data()
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x[:32]), y[:32]) * float("nan")
    loss.backward()
    monitor.after_backward(loss)
    opt.step()
    monitor.after_step()
    assert monitor.rollbacks == 1
    assert monitor._steps_idle == all(c.idle(monitor.record) for c, _ in monitor._step_checks)
    assert monitor._after_due > monitor.step


# ------------------------------------------------------------------------- batched pushes, idle step checks
class BusyLRTooLow(LRTooLow):
    """LRTooLow that never says it is idle: the monitor brings the record up to date at every step check."""

    def idle(self, record: RollingRecord) -> bool:
        return False


@pytest.mark.parametrize("lr", [0.05, 1e-6])
def test_idle_step_checks_leave_the_record_as_evaluating_them_would(lr: float) -> None:
    """With idle step checks the losses are pushed later, but in the same batches: same record, same events."""

    def run(lr_check: LRTooLow) -> tuple[Monitor, list[dict[str, Any]]]:
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        checks = [c for c in default_checks() if c.name != "lr_too_low"] + [lr_check]
        monitor = Monitor(model, opt, checks=checks, grad_every=100, sample_every=30)
        records = []
        for block in range(6):
            loop(model, opt, monitor, 97, start=97 * block)
            records.append(monitor.state_dict()["record"])
        return monitor, records

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonitorWarning)
        idle, idle_records = run(LRTooLow(every=10, cooldown=40))
        busy, busy_records = run(BusyLRTooLow(every=10, cooldown=40))
    assert_same(idle_records, busy_records)
    assert [e.to_dict() for e in idle.events] == [e.to_dict() for e in busy.events]
    assert bool(idle.events) == (lr < 1e-3)  # the too-low run warns, the healthy one does not


def test_lr_too_low_idle_holds_only_when_the_check_cannot_fire() -> None:
    check = LRTooLow(window=8, samples=2)
    flat = [2.0] * 20
    for ratios, lr, peak, idle in [([1e-6], 1.0, 1.0, True),          # one sample: too few
                                   ([1e-6, 1e-6], 0.05, 1.0, True),   # annealed below 10% of the peak
                                   ([1e-3, 1e-3], 1.0, 1.0, True),    # the weights move enough
                                   ([1e-6, 1e-6], 1.0, 1.0, False)]:  # could fire: depends on the loss
        rec = RollingRecord.from_stream(flat, update_ratios=ratios, lr=peak)
        rec.set_lr(lr)
        assert check.idle(rec) is idle
        if idle:
            for losses in ([2.0] * 20, [5.0 - 0.1 * i for i in range(20)], [1e-3] * 20):
                other = RollingRecord.from_stream(losses, update_ratios=ratios, lr=peak)
                other.set_lr(lr)
                assert check.check(other) is None
        else:
            assert check.check(rec) is not None


# ------------------------------------------------------------------------------------------- robust stats
def _bits(v: float) -> bytes:
    return struct.pack("<d", v)


def _textbook(values: list[float]) -> tuple[float, float]:
    med = statistics.median(values)
    return med, statistics.median([abs(v - med) for v in values])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                          st.sampled_from([0.0, -0.0, 1.0, 0.1, 1e308, -1e308])), min_size=1, max_size=60))
def test_robust_stats_is_bit_for_bit_the_textbook_median_and_mad(values: list[float]) -> None:
    stats = robust_stats(values)
    med, mad = _textbook(values)
    assert stats.n == len(values)
    assert _bits(stats.median) == _bits(med) or (math.isnan(stats.median) and math.isnan(med))
    assert _bits(stats.mad) == _bits(mad) or (math.isnan(stats.mad) and math.isnan(mad))


def test_events_are_unchanged_by_a_skipped_idle_step_check() -> None:
    """A healthy run with an idle lr_too_low never calls LRTooLow.check (the point of Check.idle)."""
    calls: list[int] = []

    class Counting(LRTooLow):
        def check(self, record: RollingRecord) -> Any:
            calls.append(record.step)
            return super().check(record)

    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    checks = [c for c in default_checks() if c.name != "lr_too_low"] + [Counting()]
    monitor = Monitor(model, opt, checks=checks)
    loop(model, opt, monitor, 400)
    assert monitor.events == [] and monitor.record.count("update_ratio") >= 3
    assert calls == []


def test_a_float_loss_gives_the_same_run_as_the_tensor() -> None:
    """``after_backward(loss.item())`` (a loop that already read the loss) decides exactly as with the tensor, also
    through a spike that rolls back and backs off."""

    def run(as_float: bool) -> tuple[Monitor, nn.Module]:
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        monitor = Monitor(model, opt, sched, on_divergence="rollback")
        x, y = data()
        for step in range(300):
            g = torch.Generator().manual_seed(step)
            idx = torch.randint(0, len(x), (32,), generator=g)
            opt.zero_grad()
            target = y[idx] * (50.0 if step == 150 else 1.0)  # one corrupted batch: a loss spike
            loss = nn.functional.mse_loss(model(x[idx]), target)
            loss.backward()
            monitor.after_backward(loss.item() if as_float else loss)
            opt.step()
            sched.step()
            monitor.after_step()
        return monitor, model

    (m_tensor, model_tensor), (m_float, model_float) = run(False), run(True)
    assert [e.to_dict() for e in m_tensor.events] == [e.to_dict() for e in m_float.events]
    assert any(e.action == "rollback" for e in m_tensor.events) and m_tensor.lr_scale < 1.0
    assert_same(m_tensor.record.state_dict(), m_float.record.state_dict())
    assert_same(model_tensor.state_dict(), model_float.state_dict())


@pytest.mark.parametrize("grad_every", [32, 64])
def test_a_state_with_its_snapshot_resumes_the_same_rollbacks_and_refuses_another_model(grad_every: int) -> None:
    """state_dict(snapshot=True) -> a fresh monitor on a copy of the model: the same rollbacks and weights as the
    monitor that was never saved; a snapshot of another model is refused with a clear error. (With grad_every=64 the
    save falls between a reference refresh and the next full step: loading used to refresh the reference there.)"""

    def spiky(model: nn.Module, opt: torch.optim.Optimizer, monitor: Monitor, start: int, steps: int) -> None:
        x, y = data()
        for step in range(start, start + steps):
            g = torch.Generator().manual_seed(step)
            idx = torch.randint(0, len(x), (32,), generator=g)
            opt.zero_grad()
            target = y[idx] * (50.0 if step in (140, 230) else 1.0)  # two corrupted batches after the save
            nn.functional.mse_loss(model(x[idx]), target).backward()
            monitor.after_backward(nn.functional.mse_loss(model(x[idx]), target))
            opt.step()
            monitor.after_step()

    def build() -> tuple[nn.Module, torch.optim.Optimizer, Monitor]:
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, Monitor(model, opt, on_divergence="rollback", grad_every=grad_every)

    model, opt, monitor = build()
    spiky(model, opt, monitor, 0, 300)  # uninterrupted
    assert sum(e.action == "rollback" for e in monitor.events) >= 2

    model2, opt2, monitor2 = build()
    spiky(model2, opt2, monitor2, 0, 120)
    saved = (copy.deepcopy(model2.state_dict()), copy.deepcopy(opt2.state_dict()), monitor2.state_dict(snapshot=True))
    assert "healthy" in saved[2]
    model3, opt3, monitor3 = build()  # a "new process"
    model3.load_state_dict(saved[0])
    opt3.load_state_dict(saved[1])
    monitor3.load_state_dict(saved[2])
    spiky(model3, opt3, monitor3, 120, 180)
    assert [e.to_dict() for e in monitor3.events] == [e.to_dict() for e in monitor.events]
    assert_same(model3.state_dict(), model.state_dict())

    other = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="does not fit this model"):
        Monitor(other, torch.optim.SGD(other.parameters(), lr=0.1)).load_state_dict(saved[2])


# -------------------------------------------------------------------------------------- snapshot refresh in place
def _tensors(snapshot: Snapshot) -> list[torch.Tensor]:
    out = [*snapshot.params, *snapshot.buffers]
    for state in snapshot.opt_state.values():
        out += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return out


def test_a_refreshed_snapshot_reuses_its_tensors_and_equals_a_fresh_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    # the healthy and best-validation snapshots are refreshed in place: no second copy of the model in memory
    monkeypatch.setattr(monitor_module, "_REUSE_NUMEL", 1)  # every tensor (by default only big ones)
    model = mlp(bn=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    monitor = Monitor(model, opt, sched)
    loop(model, opt, monitor, 5, sched=sched)
    first, params, buffers = monitor._capture(scheduler=True)
    held = _Healthy(first, 5, 1.0, {}, (params, buffers))
    before = [t.clone() for t in _tensors(first)]
    loop(model, opt, monitor, 5, sched=sched, start=5)  # the weights, moments and BatchNorm statistics move on
    again, _, _ = monitor._capture(scheduler=True, reuse=held)
    fresh, _, _ = monitor._capture(scheduler=True)
    assert [id(t) for t in _tensors(again)] == [id(t) for t in _tensors(first)]  # the same tensors ...
    assert any(not torch.equal(a, b) for a, b in zip(_tensors(again), before))  # ... with the new values
    for name in ("params", "buffers", "modes", "opt_state", "opt_groups", "sched_state"):
        assert_same(getattr(again, name), getattr(fresh, name), name)


def test_a_refresh_after_a_parameter_changed_shape_takes_fresh_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor_module, "_REUSE_NUMEL", 1)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    monitor = Monitor(model, opt)
    loop_x = torch.randn(8, 4)
    model(loop_x).sum().backward()
    opt.step()
    first, params, buffers = monitor._capture(scheduler=False)
    held = _Healthy(first, 1, 1.0, {}, (params, buffers))
    with torch.no_grad():
        model.weight.data = torch.zeros(2, 4, dtype=torch.float64)  # the same Parameter, another dtype
    opt.state[model.weight]["momentum_buffer"] = torch.zeros(2, 4, dtype=torch.float64)
    again, _, _ = monitor._capture(scheduler=False, reuse=held)
    assert again.params[0] is not first.params[0] and again.params[0].dtype == torch.float64
    assert torch.equal(again.params[0], model.weight.detach())
    assert again.opt_state[0]["momentum_buffer"].dtype == torch.float64


def test_rollbacks_after_in_place_refreshes_restore_the_latest_healthy_state_bit_for_bit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor_module, "_REUSE_NUMEL", 1)
    model = mlp(bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = Monitor(model, opt, snapshot_every=10, grad_every=1)
    loop(model, opt, monitor, 45)  # several refreshes of the healthy snapshot
    healthy = monitor._healthy
    expected = ([p.clone() for p in healthy.snapshot.params], [b.clone() for b in healthy.snapshot.buffers])
    ids = [id(t) for t in healthy.snapshot.params]

    def blow_up(step: int) -> None:
        if step == 45:
            for p in model.parameters():
                p.grad.fill_(float("nan"))

    loop(model, opt, monitor, 1, start=45, hook=blow_up)
    assert monitor.rollbacks == 1
    assert all(torch.equal(p, e) for p, e in zip(model.parameters(), expected[0]))
    assert all(torch.equal(b, e) for b, e in zip(model.buffers(), expected[1]))
    assert [id(t) for t in monitor._healthy.snapshot.params] == ids  # refreshed after the rollback, in place


def test_only_big_tensors_are_refreshed_in_place() -> None:
    # small tensors are cloned afresh (as fast, and no checks); a big one is written into its earlier copy
    model = nn.Sequential(nn.Linear(_REUSE_NUMEL // 64, 64), nn.Linear(64, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, opt)
    first, params, buffers = monitor._capture(scheduler=False)
    held = _Healthy(first, 0, 1.0, {}, (params, buffers))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    again, _, _ = monitor._capture(scheduler=False, reuse=held)
    reused = [a is b for a, b in zip(again.params, first.params)]
    assert reused == [p.numel() >= _REUSE_NUMEL for p in model.parameters()] and reused[0] and not reused[-1]
    assert all(torch.equal(a, p) for a, p in zip(again.params, model.parameters()))
