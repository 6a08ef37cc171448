"""Validation-loss health: ValidationRising on known streams, and Monitor.after_validation's rollback to the best
validation snapshot (bit for bit), its back-off on the schedule's clock, the other actions, errors and resume."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S

from _helpers import assert_same
from lrkit.monitor import Monitor, MonitorWarning, NonFinite, RollingRecord, ValidationRising


def rec(vals: list[float]) -> RollingRecord:
    return RollingRecord.from_stream([1.0], val_losses=vals)


# ------------------------------------------------------------------------------------------ the check
@pytest.mark.parametrize(
    ("vals", "fires"),
    [
        ([0.9, 0.7, 0.8, 0.9], True),  # two evaluations without a new best, the last 29% above it
        ([0.9, 0.7, 0.9], False),  # one evaluation since the best: a single bump is no alarm
        ([0.9, 0.7, 0.72, 0.73], False),  # within 5% of the best
        ([0.9, 0.7, 0.8, 0.9, 0.6], False),  # a new best
        ([0.9, 0.7, 0.8, 0.74], True),  # 5.7% above the best, two evaluations on
        ([0.7], False),  # nothing to compare with
        ([-1.0, -2.0, -1.8, -1.5], True),  # sign-safe: -1.5 is 25% of |best| above it
        ([-1.0, -2.0, -1.95, -1.92], False),
    ],
)
def test_validation_rising_known_answers(vals: list[float], fires: bool) -> None:
    found = ValidationRising().check(rec(vals))
    assert (found is not None) == fires
    if found is not None:
        finite = vals[:-1]
        assert found.values["best"] == min(finite)
        assert found.values["since"] == len(finite) - finite.index(min(finite))
        assert found.values["rise"] == pytest.approx((vals[-1] - min(finite)) / abs(min(finite)))
        assert "above its best" in found.reason


@pytest.mark.parametrize(
    ("trains", "fires"),
    [
        ([1.0, 0.6, 0.5, 0.45], True),  # training fell 25% since the best evaluation: memorisation
        ([1.0, 0.6, 0.58, 0.55], False),  # 8%: training has levelled off, the validation loss is only noisy
        ([1.0, 0.6, 0.6, 0.7], False),  # training got worse too: the training-signal checks' business
        ([1.0, -0.6, -0.7, -0.8], True),  # sign-safe: -0.6 -> -0.8 is a 33% fall
        ([1.0, math.nan, 0.5, 0.45], True),  # unknown at the best: the condition is skipped
    ],
)
def test_validation_rising_needs_the_training_loss_to_fall(trains: list[float], fires: bool) -> None:
    record = RollingRecord.from_stream([1.0], val_losses=[0.9, 0.7, 0.75, 0.8], val_train_losses=trains)
    found = ValidationRising().check(record)
    assert (found is not None) == fires
    if found is not None and math.isfinite(trains[1]):
        assert found.values["train_drop"] == pytest.approx((trains[1] - trains[-1]) / abs(trains[1]))
    assert ValidationRising(min_train_drop=0.05).check(
        RollingRecord.from_stream([1.0], val_losses=[0.9, 0.7, 0.75, 0.8], val_train_losses=[1.0, 0.6, 0.58, 0.55])
    ) is not None
    with pytest.raises(ValueError, match="val_train_losses has 2 values but val_losses has 4"):
        RollingRecord.from_stream([1.0], val_losses=[0.9, 0.7, 0.75, 0.8], val_train_losses=[1.0, 0.6])


def test_the_best_is_the_runs_not_the_records_window() -> None:
    """The record keeps only its last ``capacity`` values; the best validation loss is tracked over the whole run, so
    a long plateau cannot push it out and let a worse evaluation become the "best" (and its snapshot)."""
    stream = [0.5] + [0.52] * 300 + [0.6, 0.62]  # the best, a long plateau within tolerance, then a clear rise
    trains = [1.0] + [0.9] * 300 + [0.5, 0.5]
    record = RollingRecord.from_stream([1.0], val_losses=stream, val_train_losses=trains, capacity=64)
    assert record.count("val_loss") == 64 and record.val_best == 0.5 and record.val_best_at == 0
    found = ValidationRising().check(record)
    assert found is not None and found.values["best"] == 0.5 and found.values["since"] == 302.0
    back = RollingRecord(capacity=64)
    back.load_state_dict(record.state_dict())
    assert (back.val_best, back.val_best_at, back.val_best_train) == (0.5, 0, 1.0)
    old = record.state_dict()
    del old["val_best"]  # a state saved before the run-long best: the best of the window it holds
    back.load_state_dict(old)
    assert back.val_best == 0.52 and back.val_best_at == 303 - 64


def test_validation_rising_settings_and_non_finite() -> None:
    assert ValidationRising(patience=1).check(rec([0.9, 0.7, 0.9])) is not None
    assert ValidationRising(tolerance=0.5).check(rec([0.9, 0.7, 0.8, 0.9])) is None
    early = ValidationRising().check(rec([0.1, 0.9, 0.7, 0.8, 0.9]))
    assert early is not None and early.values["best"] == 0.1 and early.values["since"] == 4.0  # the run's best
    nan = ValidationRising().check(rec([0.9, 0.7, math.nan]))
    assert nan is not None and "validation loss is nan" in nan.reason  # at once: no patience for a nan
    assert ValidationRising().check(rec([math.nan])) is None
    for bad, match in (({"tolerance": -0.1}, "tolerance=-0.1"), ({"patience": 0}, "patience=0"),
                       ({"min_train_drop": -1}, "min_train_drop=-1")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ValidationRising(**bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ the monitor
def make(**kwargs: object) -> tuple[nn.Module, torch.optim.Optimizer, S.LambdaLR, Monitor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = S.LambdaLR(opt, lambda t: 1.0 / (1.0 + 0.01 * t))
    return model, opt, sched, Monitor(model, opt, sched, **kwargs)  # type: ignore[arg-type]


def train(model: nn.Module, opt: torch.optim.Optimizer, sched: S.LRScheduler | None, monitor: Monitor, steps: int,
          start: int = 0, nan_at: tuple[int, ...] = ()) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 4, generator=g)
    y = x.sum(1, keepdim=True)
    for step in range(start, start + steps):
        idx = torch.randint(0, 256, (32,), generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        monitor.after_backward(loss * float("nan") if step in nan_at else loss)
        opt.step()
        if sched is not None:
            sched.step()
        monitor.after_step()


def state(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, object]:
    return {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict()["state"])}


def test_rollback_returns_to_the_best_validation_state_and_backs_off_on_the_schedules_clock() -> None:
    model, opt, sched, monitor = make()
    train(model, opt, sched, monitor, 20)
    monitor.after_validation(0.5)
    best = state(model, opt)  # the snapshot the monitor must return to, bit for bit
    for epoch, val in enumerate((0.6, 0.7)):  # two evaluations without a new best, the last 40% above it
        train(model, opt, sched, monitor, 20, start=20 * (epoch + 1))
        model.eval()  # the user validates in eval mode and calls the monitor there
        assert monitor.after_validation(torch.tensor(val)) is False
    assert [(e.check, e.action) for e in monitor.events] == [("val_rising", "rollback")]
    assert monitor.events[0].values["best"] == 0.5 and monitor.events[0].values["since"] == 2.0
    assert_same(state(model, opt), best)  # weights, BatchNorm statistics and momentum buffers
    assert not model.training  # modes are the caller's, not the snapshot's
    assert sched.last_epoch == 60  # the clock was not rewound ...
    lam = sched.lr_lambdas[0]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * lam(60) * 0.1)  # ... and the LR is 0.1x its value now
    assert monitor.lr_scale == pytest.approx(0.1) and monitor.rollbacks == 1
    model.train()
    train(model, opt, sched, monitor, 5, start=60)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * lam(65) * 0.1)  # the back-off survives the schedule
    assert monitor.after_validation(0.55) is False and len(monitor.events) == 1  # compared with the same best


def test_warn_stop_and_off() -> None:
    model, opt, sched, monitor = make(on_overfit="warn")
    before = state(model, opt)
    with pytest.warns(MonitorWarning, match="validation loss 0.8 is 60.0% above its best 0.5"):
        for v in (0.5, 0.7, 0.8):
            monitor.after_validation(v)
    assert monitor.events[0].action == "warn" and monitor.lr_scale == 1.0
    assert_same(state(model, opt), before)

    model, opt, sched, monitor = make(on_overfit="stop")
    monitor.after_validation(0.5)
    best = state(model, opt)
    train(model, opt, sched, monitor, 10)
    monitor.after_validation(0.6)
    assert monitor.after_validation(0.7) is True and "val_rising" in monitor.stop_reason
    assert_same(state(model, opt), best)  # restore_on_stop: the best weights

    model, opt, sched, monitor = make(on_overfit="stop", restore_on_stop=False)
    monitor.after_validation(0.5)
    train(model, opt, sched, monitor, 10)
    after = state(model, opt)
    monitor.after_validation(0.6)
    assert monitor.after_validation(0.7) is True
    assert_same(state(model, opt), after)

    model, opt, sched, monitor = make(on_overfit=None)
    for v in (0.5, 0.7, 0.8, 0.9):
        assert monitor.after_validation(v) is False
    assert monitor.events == [] and monitor._best_val is None  # no check: no snapshot either


def test_rollback_limit_turns_into_a_stop() -> None:
    monitor = make(max_rollbacks=1)[3]
    for v in (0.5, 0.6, 0.7):
        monitor.after_validation(v)
    assert monitor.rollbacks == 1
    for v in (0.6, 0.7):
        monitor.after_validation(v)
    assert monitor.should_stop and monitor.events[-1].action == "stop" and "rollback limit" in monitor.stop_reason
    n = len(monitor.events)
    assert monitor.after_validation(5.0) is True and len(monitor.events) == n  # a stopped monitor acts no more


def test_bad_calls_and_bad_settings_are_clear_errors() -> None:
    model, _, _, monitor = make()
    with pytest.raises(ValueError, match=r"after_validation\(val_loss\) needs a scalar loss, got a tensor of shape"):
        monitor.after_validation(torch.ones(2))
    with pytest.raises(ValueError, match="got str"):
        monitor.after_validation("0.5")  # type: ignore[arg-type]
    x = torch.randn(8, 4)
    loss = model(x).pow(2).mean()
    loss.backward()
    monitor.after_backward(loss)
    with pytest.raises(RuntimeError, match="between after_backward\\(\\) and after_step\\(\\)"):
        monitor.after_validation(0.5)
    with pytest.raises(ValueError, match="on_overfit='skip' is not an action for overfit checks"):
        make(on_overfit="skip")
    with pytest.raises(ValueError, match="val_backoff=1.5 must be a number in \\(0, 1\\)"):
        make(val_backoff=1.5)


def test_a_resumed_monitor_rolls_back_to_the_same_best_state() -> None:
    vals = (0.5, 0.45, 0.6, 0.7, 0.5)

    def run(split: int | None) -> tuple[dict[str, object], list[dict[str, object]]]:
        model, opt, sched, monitor = make()
        for epoch, val in enumerate(vals):
            if epoch == split:  # save, then go on in a "new process"
                saved = copy.deepcopy((model.state_dict(), opt.state_dict(), sched.state_dict(),
                                       monitor.state_dict(snapshot=True)))  # fmt: skip
                model, opt, sched, monitor = make()
                model.load_state_dict(saved[0])
                opt.load_state_dict(saved[1])
                sched.load_state_dict(saved[2])
                monitor.load_state_dict(saved[3])
            train(model, opt, sched, monitor, 15, start=15 * epoch)
            monitor.after_validation(val)
        return state(model, opt), [e.to_dict() for e in monitor.events]

    whole, events = run(None)
    assert [e["check"] for e in events] == ["val_rising"]
    for split in (2, 3):
        resumed, resumed_events = run(split)
        assert resumed_events == events
        assert_same(resumed, whole)


def test_a_training_rollback_after_a_validation_rollback_does_not_return_to_the_memorised_weights() -> None:
    model, opt, sched, monitor = make()
    train(model, opt, sched, monitor, 10)
    monitor.after_validation(0.5)
    best = state(model, opt)
    train(model, opt, sched, monitor, 150, start=10)  # the healthy snapshot moves on, past the best
    monitor.after_validation(0.6)
    monitor.after_validation(0.7)
    assert monitor.events[-1].action == "rollback"
    held = monitor._healthy
    assert held is not None and held.step == monitor.step
    assert_same({"model": held.snapshot.params}, {"model": [p.detach() for p in model.parameters()]})
    assert_same(state(model, opt), best)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing else fires on the restored weights
        train(model, opt, sched, monitor, 30, start=160)
    assert len(monitor.events) == 1


def test_a_custom_validation_check_runs_every_n_evaluations_and_only_with_actions_that_fit() -> None:
    from dataclasses import dataclass
    from typing import ClassVar

    from lrkit.monitor import Check, Finding

    @dataclass(frozen=True)
    class AboveOne(Check):
        name: ClassVar[str] = "above_one"
        category: ClassVar[str] = "divergence"  # type: ignore[assignment]
        phase: ClassVar[str] = "validation"  # type: ignore[assignment]
        every: int = 2
        cooldown: int = 0

        def check(self, record: RollingRecord) -> Finding | None:
            return Finding("above one", {"v": record.last_val_loss}) if record.last_val_loss > 1 else None

    model, opt, sched, _ = make()
    monitor = Monitor(model, opt, sched, checks=[AboveOne()], on_divergence="warn")
    with pytest.warns(MonitorWarning, match="above one"):
        for v in (2.0, 2.0, 2.0):  # evaluations 1 and 3 are checked (every=2), the 2nd is not
            monitor.after_validation(v)
    assert [e.values["v"] for e in monitor.events] == [2.0, 2.0] and len(monitor.events) == 2
    with pytest.raises(ValueError, match="'above_one' runs on validation losses.*got 'skip'"):
        Monitor(model, opt, checks=[AboveOne()], on_divergence="skip")


def test_warnings_point_at_the_callers_line() -> None:
    model = nn.Linear(2, 1)
    monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), on_divergence="warn", on_overfit="warn")
    x = torch.randn(4, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(3):
            loss = model(x).pow(2).mean() * (1e6 if i == 2 else 1.0)
            loss.backward()
            monitor.after_backward(loss)  # the spike's warning points here, not into lrkit
            monitor.after_step()
        for v in (0.5, 0.7, 0.8):
            monitor.after_validation(v)
    assert len(caught) >= 2 and all(w.filename == __file__ for w in caught), [(w.filename, w.lineno) for w in caught]
    assert any("validation loss" in str(w.message) for w in caught)


def test_an_int_too_large_for_a_float_is_a_clear_error() -> None:
    monitor = make()[3]
    with pytest.raises(ValueError, match="needs a loss a float can hold, got an int of 401 digits"):
        monitor.after_validation(10**400)  # was an OverflowError from float()
    assert monitor.record.count("val_loss") == 0
    assert monitor.after_validation(10**300) is False  # large, but a float holds it


# ------------------------------------------------------------------ a training rollback keeps the validation history
def test_a_training_rollback_keeps_the_best_validation_loss_and_its_snapshot() -> None:
    """The healthy snapshot (step 0 here: snapshot_every=100) is older than two evaluations. A NaN loss rolls the
    training back to it; the validation losses seen since are still the run's history, so the best (0.5) and its
    snapshot must survive: a later, worse evaluation (0.8) is no new best, and a rise rolls back to the 0.5 weights
    (the training-loss condition is off here: the rolled-back run's training loss is above its value at the best)."""
    model, opt, sched, monitor = make(checks=[NonFinite(), ValidationRising(min_train_drop=0.0)])
    train(model, opt, sched, monitor, 10)
    monitor.after_validation(0.9)
    train(model, opt, sched, monitor, 10, start=10)
    monitor.after_validation(0.5)
    best = state(model, opt)
    held = monitor._healthy
    assert held is not None and held.step == 0  # older than both evaluations
    train(model, opt, sched, monitor, 1, start=20, nan_at=(20,))
    assert [(e.check, e.action) for e in monitor.events] == [("non_finite", "rollback")]
    assert monitor.record.window("val_loss", 10) == [0.9, 0.5]  # not wiped by the training rollback
    assert monitor.record.last_val_loss == 0.5
    train(model, opt, sched, monitor, 10, start=21)
    monitor.after_validation(0.8)  # worse than 0.5: no new best
    assert monitor._best_val is not None and monitor._best_val.step == 19
    train(model, opt, sched, monitor, 10, start=31)
    monitor.after_validation(0.85)  # two evaluations above the best, 70% up
    assert [(e.check, e.action) for e in monitor.events][-1] == ("val_rising", "rollback")
    assert monitor.events[-1].values["best"] == 0.5
    assert_same(state(model, opt), best)
    assert monitor.lr_scale == pytest.approx(0.3 * 0.1) and monitor.rollbacks == 2


def test_a_training_stop_keeps_the_validation_history() -> None:
    model, opt, sched, monitor = make(on_divergence="stop")
    train(model, opt, sched, monitor, 10)
    monitor.after_validation(0.7)
    train(model, opt, sched, monitor, 5, start=10, nan_at=(14,))
    assert monitor.should_stop
    assert monitor.record.window("val_loss", 10) == [0.7] and monitor.record.last_val_loss == 0.7


# ------------------------------------------------------------------ add_param_group after the best snapshot
def _unfreezing() -> tuple[nn.Module, torch.optim.Optimizer, nn.Module]:
    torch.manual_seed(0)
    body, head = nn.Linear(4, 8), nn.Linear(8, 1)
    model = nn.Sequential(body, nn.Tanh(), head)
    body.requires_grad_(False)
    return model, torch.optim.Adam(head.parameters(), lr=1e-2), body


def _adam_steps(model: nn.Module, opt: torch.optim.Optimizer, monitor: Monitor, n: int) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 4, generator=g)
    y = x.sum(1, keepdim=True)
    for _ in range(n):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()


def test_a_monitor_saved_after_add_param_group_resumes_and_rolls_back_like_the_uninterrupted_one() -> None:
    """Progressive unfreezing: the best-validation snapshot was taken with one param group, the backbone's group
    was added after it. A validation rollback in that run works (the new group keeps its hyperparameters); a monitor
    saved there must load into the resumed run and roll back to the same state, not refuse the checkpoint."""

    def run(split: bool) -> tuple[dict[str, object], list[float]]:
        model, opt, body = _unfreezing()
        monitor = Monitor(model, opt)
        _adam_steps(model, opt, monitor, 10)
        monitor.after_validation(0.5)
        body.requires_grad_(True)
        opt.add_param_group({"params": list(body.parameters()), "lr": 1e-3})
        _adam_steps(model, opt, monitor, 10)
        monitor.after_validation(0.6)
        _adam_steps(model, opt, monitor, 10)
        if split:  # save everything, then go on in a "new process"
            saved = copy.deepcopy((model.state_dict(), opt.state_dict(), monitor.state_dict(snapshot=True)))
            model, opt, body = _unfreezing()
            body.requires_grad_(True)
            opt.add_param_group({"params": list(body.parameters()), "lr": 1e-3})
            model.load_state_dict(saved[0])
            opt.load_state_dict(saved[1])
            monitor = Monitor(model, opt)
            monitor.load_state_dict(saved[2])
        monitor.after_validation(0.7)
        assert [(e.check, e.action) for e in monitor.events] == [("val_rising", "rollback")]
        _adam_steps(model, opt, monitor, 5)
        return state(model, opt), [g["lr"] for g in opt.param_groups]

    whole, lrs = run(False)
    assert lrs == pytest.approx([1e-3, 1e-4])
    resumed, resumed_lrs = run(True)
    assert resumed_lrs == lrs
    assert_same(resumed, whole)


def test_a_snapshot_with_more_param_groups_than_the_optimizer_is_still_refused() -> None:
    model, opt, body = _unfreezing()
    body.requires_grad_(True)
    opt.add_param_group({"params": list(body.parameters()), "lr": 1e-3})
    monitor = Monitor(model, opt)
    _adam_steps(model, opt, monitor, 3)
    monitor.after_validation(0.5)
    saved = monitor.state_dict(snapshot=True)
    model2, opt2, _ = _unfreezing()
    with pytest.raises(ValueError, match="has 2 param groups, the optimizer has 1"):
        Monitor(model2, opt2).load_state_dict(saved)
