"""Loose ends of the monitor and trainer, s8.

1. One meaning of ``d_lr``: a Monitor event's ``values["d_lr"]`` and results.csv's ``d_lr/<group>`` are both the step
   size the optimizer applies (``lrkit._dlr.group_step_sizes``), Prodigy's bias correction included. Known answer:
   prodigyopt's own ``dlr = d * lr * sqrt(1 - beta2^(k+1)) / (1 - beta1^(k+1))`` (``use_bias_correction=True``; ``d *
   lr`` otherwise), evaluated from the optimizer's state as its ``step()`` reads it.
2. results.csv's ``d_lr`` is read when the step starts: an optimizer growing a tensor ``d`` in place after its update
   cannot change it afterwards.
3. ``LossAboveStart`` after a rollback judges only losses trained since, whatever its ``cooldown``.
4. ``LossAboveStart`` on a negative starting loss: a ratio and a reason that read the right way round.
5. A Monitor state saved by a monitor without the fast path, loaded into one with it: the resumed run takes the fast
   path as the uninterrupted one does, and makes the same events.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

import lrkit
from _helpers import three_class_split
from lrkit._dlr import group_step_sizes
from lrkit.monitor import Monitor
from lrkit.monitor.checks import Check, Finding, LossAboveStart, default_checks
from lrkit.monitor.record import RollingRecord

prodigyopt = pytest.importorskip("prodigyopt")


def _prodigy_dlr(opt: torch.optim.Optimizer) -> float:
    """prodigyopt's ``Prodigy.step``, its first lines: the step size it is about to apply, by hand."""
    group = opt.param_groups[0]
    beta1, beta2 = group["betas"][:2]
    k = group["k"]
    lr = max(g["lr"] for g in opt.param_groups)
    bias_correction = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1)) if group["use_bias_correction"] else 1
    return group["d"] * lr * bias_correction


_SEEN: list[float] = []


class _ProdigySeen(prodigyopt.Prodigy):  # type: ignore[misc]
    """Prodigy noting, as each step starts, the step size it applies (:func:`_prodigy_dlr`)."""

    def step(self, closure: Any = None) -> Any:
        _SEEN.append(_prodigy_dlr(self))
        return super().step(closure)


class _ProdigyBC(_ProdigySeen):
    def __init__(self, params: Any, lr: float = 1.0, **kw: Any) -> None:
        kw.pop("use_bias_correction", None)
        super().__init__(params, lr=lr, use_bias_correction=True, **kw)


@dataclass(frozen=True)
class _Always(Check):
    """Fires on every step (a ``warn``): every step's event carries that step's ``d_lr``."""

    name: ClassVar[str] = "always"
    category: ClassVar[Any] = "too_low"
    every: int = 1
    cooldown: int = 0

    def check(self, record: RollingRecord) -> Finding | None:
        return Finding("every step", {"loss": record.last_loss})


# ------------------------------------------------------------------------------------------- 1. one meaning of d_lr
@pytest.mark.parametrize("bias_correction", [True, False])
def test_group_step_sizes_is_prodigys_own_dlr_at_every_step(bias_correction: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = prodigyopt.Prodigy(model.parameters(), lr=0.7, betas=(0.9, 0.99), use_bias_correction=bias_correction)
    x = torch.randn(64, 4)
    y = x.sum(1, keepdim=True)
    ratios = []
    for _ in range(12):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        want = _prodigy_dlr(opt)
        assert group_step_sizes(opt) == [pytest.approx(want, rel=1e-12)]
        ratios.append(want / (opt.param_groups[0]["d"] * 0.7))
        opt.step()
    if bias_correction:  # the correction is large early on: d * lr alone is off by 3x at the first step
        assert ratios[0] == pytest.approx(math.sqrt(1 - 0.99) / (1 - 0.9)) and ratios[0] < 1.05
    else:
        assert ratios == [pytest.approx(1.0)] * 12


@pytest.mark.parametrize("bias_correction", [True, False])
def test_monitor_event_d_lr_is_the_step_size_prodigy_applies(bias_correction: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    cls = _ProdigyBC if bias_correction else _ProdigySeen
    opt = cls(model.parameters(), lr=1.0)
    monitor = Monitor(model, opt, checks=[_Always()])
    x = torch.randn(64, 4)
    y = x.sum(1, keepdim=True)
    _SEEN.clear()
    with pytest.warns(lrkit.monitor.MonitorWarning):
        for _ in range(10):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
    got = [e.values["d_lr"] for e in monitor.events if e.check == "always"]
    assert len(got) == len(_SEEN) == 10
    assert got == [pytest.approx(v, rel=1e-12) for v in _SEEN]
    d0 = opt.param_groups[0]["d0"]
    if bias_correction:  # step 0: d = d0, k = 0, default betas (0.9, 0.999): d0 x sqrt(0.001) / 0.1
        assert got[0] == pytest.approx(d0 * math.sqrt(1 - 0.999) / (1 - 0.9), rel=1e-12)
    else:
        assert got[0] == pytest.approx(d0, rel=1e-12)


def _csv_rows(path: Any) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.filterwarnings("ignore::lrkit.monitor.MonitorWarning")
@pytest.mark.parametrize("bias_correction", [True, False])
def test_event_d_lr_equals_the_csv_d_lr_of_the_same_step(tmp_path: Any, bias_correction: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    _SEEN.clear()
    r = lrkit.train(model, data=three_class_split(200), optimizer=_ProdigyBC if bias_correction else _ProdigySeen,
                    epochs=2, batch=16, nbs=16, warmup_bias_lr=0.0, project=tmp_path, plots=False, verbose=False,
                    monitor={"checks": [_Always()]})
    spe = r.steps_per_epoch
    events = {e["step"]: e["values"]["d_lr"] for e in r.events if e["check"] == "always"}
    assert len(events) == len(_SEEN) == 2 * spe
    assert [events[s] for s in range(2 * spe)] == [pytest.approx(v, rel=1e-12) for v in _SEEN]  # by hand
    rows = _csv_rows(r.run_dir / "results.csv")
    assert len(rows) == 2
    for epoch, row in enumerate(rows):
        last = (epoch + 1) * spe - 1  # the epoch's last step
        for key in ("d_lr/all/decay", "d_lr/all/bias"):  # Prodigy: one d, one lr, so both groups step alike
            assert float(row[key]) == pytest.approx(events[last], rel=1e-9)
            assert r.history[epoch][key] == pytest.approx(_SEEN[last], rel=1e-12)


# --------------------------------------------------------------------------------- 2. d read when the step starts
class _DAdaptTensorD(torch.optim.Optimizer):
    """SGD with step size ``d * lr``, ``d`` a tensor that doubles *in place* after each update (as an optimizer keeping
    its estimate on the device might)."""

    def __init__(self, params: Any, lr: float = 1.0, **kw: Any) -> None:
        d = torch.tensor(1e-3, dtype=torch.float64)
        super().__init__(params, {"lr": lr, "d": d, "d0": 1e-3, "weight_decay": 0.0})
        shared = self.param_groups[0]["d"]
        for g in self.param_groups:
            g["d"] = shared  # one estimate, the same tensor in every group

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        d = self.param_groups[0]["d"]
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-float(d) * g["lr"])
        d.mul_(2.0)  # grown in place: the group holds the next step's value
        return None


def test_group_step_sizes_reads_a_tensor_d_as_a_float_now() -> None:
    p = nn.Parameter(torch.ones(2))
    opt = _DAdaptTensorD([p], lr=0.5)
    before = group_step_sizes(opt)
    p.grad = torch.ones(2)
    opt.step()
    assert before == [pytest.approx(1e-3 * 0.5)] and type(before[0]) is float
    assert group_step_sizes(opt) == [pytest.approx(2e-3 * 0.5)]
    assert torch.allclose(p.detach(), torch.full((2,), 1 - 1e-3 * 0.5))  # the step size it applied


def test_csv_d_lr_is_the_d_the_step_used_with_a_tensor_d_grown_in_place(tmp_path: Any) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    r = lrkit.train(model, data=three_class_split(200), optimizer=_DAdaptTensorD, lr0=1.0, epochs=1, batch=32,
                    nbs=32, warmup_epochs=0, warmup_bias_lr=0.0, lrf=1.0, project=tmp_path, plots=False,
                    verbose=False, monitor=False)
    steps = r.steps_per_epoch
    row = r.history[-1]
    for key in ("all/decay", "all/bias"):
        lr = row[f"lr/{key}"]
        # the last step started from d = 1e-3 * 2^(steps - 1) and doubled it afterwards
        assert row[f"d_lr/{key}"] == pytest.approx(1e-3 * 2 ** (steps - 1) * lr, rel=1e-12)
        assert row[f"d_lr/{key}"] != pytest.approx(1e-3 * 2**steps * lr)


# ------------------------------------------------------------------------------ 3. LossAboveStart after a rollback
def test_loss_above_start_counts_only_losses_since_the_mark() -> None:
    rec = RollingRecord.from_stream([2.3] * 100, capacity=128)
    check = LossAboveStart(cooldown=0)
    assert check.check(rec) is not None  # stuck at its start: fires
    rec.mark()  # a rollback / back-off
    for i in range(49):
        rec.push(2.3)
        assert check.check(rec) is None, i  # the window is full, but of losses from before the back-off
    rec.push(2.3)
    assert rec.losses_since_mark() == 50 and check.check(rec) is not None
    # non-finite losses do not count as "in"
    rec.mark()
    for _ in range(49):
        rec.push(2.3)
    rec.push(float("nan"))
    assert check.check(rec) is None
    rec.push(2.3)
    assert check.check(rec) is not None


def test_the_mark_survives_a_state_round_trip() -> None:
    rec = RollingRecord.from_stream([1.0] * 10)
    rec.mark()
    rec.push(1.0)
    other = RollingRecord()
    other.load_state_dict(rec.state_dict())
    assert other.losses_since_mark() == 1 and other.loss_mark == 10
    old = rec.state_dict()
    del old["loss_mark"]  # a state from before the mark: every loss counts
    other.load_state_dict(old)
    assert other.losses_since_mark() == 11


def _stuck_monitor(check: LossAboveStart, steps: int) -> Monitor:
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # snapshot_every=10: the healthy snapshot a rollback returns to holds a full window of (stuck) losses
    monitor = Monitor(model, opt, checks=[check], grad_every=1, max_rollbacks=100, snapshot_every=10)
    for i in range(steps):
        opt.zero_grad()
        model(torch.ones(1, 2)).sum().backward()
        monitor.after_backward(2.3 + (0.01 if i % 2 else -0.01))  # a run stuck at its starting loss
        opt.step()
        monitor.after_step()
    return monitor


@pytest.mark.parametrize("cooldown", [0, 5])
def test_after_a_rollback_loss_above_start_waits_for_a_full_window_whatever_the_cooldown(cooldown: int) -> None:
    monitor = _stuck_monitor(LossAboveStart(cooldown=cooldown), 260)
    steps = [e.step for e in monitor.events]
    assert all(e.check == "loss_above_start" and e.action == "rollback" for e in monitor.events)
    # every step full (grad_every=1): evaluated at 0, 25, 50, ...; first at min_steps=75; then at the first evaluation
    # with 50 losses pushed since the rollback (steps r+1 .. r+50): r + 50 rounded up to a multiple of 25 (judging
    # the restored snapshot's losses, it fired again at 100, 125, ...: after 25 new losses)
    assert steps == [75, 125, 175, 225]


def test_with_the_default_cooldown_nothing_changed() -> None:
    monitor = _stuck_monitor(LossAboveStart(), 260)  # cooldown 50 >= window 50: the wait the docstring promised
    assert [e.step for e in monitor.events] == [75, 150, 225]  # quiet up to r + 50, so due at r + 75 (every 25)


# ------------------------------------------------------------------------- 4. LossAboveStart, negative start loss
def test_a_negative_start_stuck_above_reads_as_above() -> None:
    f = LossAboveStart().check(RollingRecord.from_stream([-1.0] + [-0.5] * 100))
    assert f is not None
    assert f.values["ratio"] == pytest.approx(1.5)  # 1 + (m - L0) / |L0|: half of |L0| above the start
    assert f.values["threshold"] == pytest.approx(-1.05)
    assert "0.5 above the starting loss -1" in f.reason and "0.5x" not in f.reason
    assert "below -1.05" in f.reason


def test_a_negative_start_that_barely_fell_reads_as_only_below() -> None:
    f = LossAboveStart().check(RollingRecord.from_stream([-1.0] + [-1.02] * 100))
    assert f is not None and f.values["ratio"] == pytest.approx(0.98)  # fires: ratio >= level 0.95
    assert "only 0.02 below the starting loss -1" in f.reason
    assert LossAboveStart().check(RollingRecord.from_stream([-1.0] + [-1.06] * 100)) is None  # came down 6%


def test_ratio_is_m_over_l0_for_a_positive_start_and_fires_exactly_when_ratio_reaches_level() -> None:
    for m, fires in ((2.0 * 0.96, True), (2.0 * 0.94, False), (2.6, True)):
        f = LossAboveStart().check(RollingRecord.from_stream([2.0] + [m] * 100))
        assert (f is not None) is fires
        if f is not None:
            assert f.values["ratio"] == pytest.approx(m / 2.0)
    f = LossAboveStart().check(RollingRecord.from_stream([2.0] * 101))
    assert f is not None and "level with the starting loss 2" in f.reason
    f = LossAboveStart().check(RollingRecord.from_stream([0.0] + [0.1] * 100))  # L0 = 0: any m >= 0 fires
    assert f is not None and f.values["ratio"] == math.inf


# ------------------------------------------------------------------ 5. resumed from a monitor without the fast path
@dataclass(frozen=True)
class _Unscreened(Check):
    """An every-step check with no screen that never fires: a monitor holding it has no fast path."""

    name: ClassVar[str] = "unscreened"
    every: int = 1

    def check(self, record: RollingRecord) -> Finding | None:
        return None


def _drive(monitor: Monitor, start: int, stop: int, full: list[int]) -> None:
    torch.manual_seed(start)
    model, opt = monitor.model, monitor.optimizer
    inner = monitor._full_step

    def counting(step: int, *args: Any) -> bool:
        full.append(step)
        return inner(step, *args)

    monitor._full_step = counting  # type: ignore[method-assign]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 4, generator=g)
    y = x.sum(1, keepdim=True)
    for step in range(stop):
        if step < start:
            continue
        i = (step * 32) % 512
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[i:i + 32]), y[i:i + 32])
        if step == 300:
            loss = loss * float("nan")  # an event after the resume
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
    del monitor._full_step


def _pair() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    return model, torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)


def test_a_state_from_a_monitor_without_the_fast_path_resumes_on_it() -> None:
    model, opt = _pair()
    plain = Monitor(model, opt, checks=[*default_checks(), _Unscreened()])
    assert plain._fast is False
    _drive(plain, 0, 200, [])
    state = plain.state_dict(snapshot=True)
    assert state["dense_until"] >= 2**62  # "never": what kept the fast path off after the resume

    model_b, opt_b = _pair()
    ref = Monitor(model_b, opt_b)
    ref_full: list[int] = []
    _drive(ref, 0, 400, ref_full)

    model_c, opt_c = _pair()
    model_c.load_state_dict(model.state_dict())
    opt_c.load_state_dict(opt.state_dict())
    resumed = Monitor(model_c, opt_c)
    resumed.load_state_dict(state)
    assert not [e for e in ref.events if e.step < 200]  # a healthy start: dense for the first step only, as ref
    assert resumed._dense_until == 1
    res_full: list[int] = []
    _drive(resumed, 200, 400, res_full)
    assert [(e.step, e.check, e.action) for e in resumed.events] == [(e.step, e.check, e.action) for e in ref.events]
    assert any(e.step == 300 and e.check == "non_finite" for e in ref.events)
    # the fast path after the resume: the same full steps as the uninterrupted run (all 200 without the fix)
    assert res_full == [s for s in ref_full if s >= 200]
    assert len(res_full) < 120


def test_a_resumed_fast_monitor_keeps_its_dense_window_after_an_event() -> None:
    model, opt = _pair()
    monitor = Monitor(model, opt)
    _drive(monitor, 0, 320, [])  # the nan at step 300: full steps up to 350
    dense = monitor._dense_until
    assert dense == 350
    other = Monitor(*_pair())
    other.load_state_dict(monitor.state_dict())
    assert other._dense_until == dense
    stopped = monitor.state_dict()
    stopped["should_stop"] = True
    other.load_state_dict(stopped)
    assert other._dense_until >= 2**62
