"""A back-off the loop writes over is reported (session 14).

Without a scheduler the monitor knows of, a back-off lives in the groups' ``lr`` alone: a scheduler the loop steps but
did not pass, or the loop's own schedule, writes over it and the trouble comes back. The monitor warns once; loops
that respect the back-off (a passed scheduler, LRs multiplied by ``monitor.lr_scale``, a lower LR) are left alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from lrkit import Monitor
from lrkit.monitor import MonitorWarning

BAD_STEP = 120


def _loop(*, pass_scheduler: bool, step_scheduler: bool = True, write: Callable[[Monitor, int], Any] | None = None,
          bad_steps: tuple[int, ...] = (BAD_STEP,), groups: int = 1, steps: int = 200, validate: bool = False,
          ) -> tuple[Monitor, list[list[float]], list[warnings.WarningMessage]]:
    """A hand loop over a tiny model whose loss (given as a float) is healthy except a NaN at ``bad_steps``."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, groups)
    params = [model.weight, model.bias]
    opt = torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.01}]
                          if groups == 2 else model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    monitor = Monitor(model, opt, sched if pass_scheduler else None)
    x = torch.randn(8, 4)
    lrs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for t in range(steps):
            if write is not None:
                write(monitor, t)
            model(x).pow(2).mean().backward()
            value = float("nan") if t in bad_steps else 1.0 - 0.002 * t + 0.01 * math.sin(t)
            monitor.after_backward(value)
            opt.step()
            if step_scheduler:
                sched.step()
            monitor.after_step()
            opt.zero_grad()
            if validate and t % 10 == 9:
                monitor.after_validation([1.0, 0.9, 0.8, 0.9, 1.0, 1.1][min(t // 10, 5)])
            lrs.append([float(g["lr"]) for g in opt.param_groups])
    undone = [w for w in caught if issubclass(w.category, MonitorWarning) and "undone" in str(w.message)]
    return monitor, lrs, undone


def test_a_scheduler_not_given_to_the_monitor_undoes_the_backoff_and_is_warned_about() -> None:
    monitor, lrs, undone = _loop(pass_scheduler=False)
    assert [e.action for e in monitor.events] == ["rollback"]
    assert lrs[BAD_STEP][0] == pytest.approx(0.03) and lrs[BAD_STEP + 1][0] == pytest.approx(0.1)  # undone
    assert len(undone) == 1
    text = str(undone[0].message)
    assert f"back-off at step {BAD_STEP}" in text and "LR is 0.1 again" in text and "set 0.03" in text
    assert "Monitor(model, optimizer, scheduler)" in text and "monitor.lr_scale (now 0.3)" in text
    assert undone[0].filename == __file__  # points at the loop's after_backward call


def test_the_same_loop_with_the_scheduler_given_keeps_the_backoff_and_says_nothing() -> None:
    monitor, lrs, undone = _loop(pass_scheduler=True)
    assert [e.action for e in monitor.events] == ["rollback"]
    assert all(lr[0] == pytest.approx(0.03) for lr in lrs[BAD_STEP:])
    assert undone == []


def test_a_loop_that_writes_its_lr_times_lr_scale_is_not_warned() -> None:
    def write(monitor: Monitor, t: int) -> None:
        for g in monitor.optimizer.param_groups:
            g["lr"] = 0.1 * (1 - t / 400) * monitor.lr_scale  # its own decay, with the monitor's back-off

    monitor, lrs, undone = _loop(pass_scheduler=False, step_scheduler=False, write=write)
    assert monitor.rollbacks == 1 and undone == []
    assert lrs[-1][0] == pytest.approx(0.1 * (1 - 199 / 400) * 0.3)


def test_a_loop_that_writes_a_lower_lr_is_not_warned_and_one_without_writes_neither() -> None:
    def decay(monitor: Monitor, t: int) -> None:
        if t == 150:  # a step decay the loop applies by hand, below the backed-off LR
            for g in monitor.optimizer.param_groups:
                g["lr"] = 0.01

    assert _loop(pass_scheduler=False, step_scheduler=False, write=decay)[2] == []
    monitor, lrs, undone = _loop(pass_scheduler=False, step_scheduler=False)
    assert monitor.rollbacks == 1 and undone == [] and lrs[-1][0] == pytest.approx(0.03)


def test_warned_once_however_often_the_backoff_is_undone() -> None:
    monitor, _, undone = _loop(pass_scheduler=False, bad_steps=(60, 120, 180))
    assert monitor.rollbacks == 3
    assert len(undone) == 1 and "back-off at step 60" in str(undone[0].message)


def test_a_later_write_is_judged_even_after_the_alert_window() -> None:
    def per_epoch(monitor: Monitor, t: int) -> None:  # the loop's own schedule, written every 80 steps
        if t % 80 == 0:
            for g in monitor.optimizer.param_groups:
                g["lr"] = 0.1

    monitor, lrs, undone = _loop(pass_scheduler=False, step_scheduler=False, write=per_epoch, bad_steps=(90,))
    assert monitor.rollbacks == 1 and lrs[100][0] == pytest.approx(0.03) and lrs[170][0] == pytest.approx(0.1)
    assert len(undone) == 1 and "back-off at step 90" in str(undone[0].message)


def test_two_groups_name_the_group_that_was_written_back() -> None:
    def group1(monitor: Monitor, t: int) -> None:
        if t > BAD_STEP:
            monitor.optimizer.param_groups[1]["lr"] = 0.01

    _, _, undone = _loop(pass_scheduler=False, step_scheduler=False, write=group1, groups=2)
    assert len(undone) == 1 and "param group 1's LR is 0.01 again" in str(undone[0].message)


def test_a_validation_rollback_undone_by_the_scheduler_is_warned_about_too() -> None:
    monitor, _, undone = _loop(pass_scheduler=False, bad_steps=(), validate=True)
    assert monitor.events and {e.check for e in monitor.events} == {"val_rising"}
    assert len(undone) == 1 and "set 0.01, down from 0.1" in str(undone[0].message)


def test_the_warning_filtered_into_an_error_leaves_the_monitor_consistent() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    monitor = Monitor(model, opt)
    x = torch.randn(8, 4)
    raised = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", MonitorWarning)
        for t in range(30):
            model(x).pow(2).mean().backward()
            monitor.after_backward(float("nan") if t == 10 else 1.0)
            opt.step()
            sched.step()
            try:
                monitor.after_step()
            except MonitorWarning as exc:
                raised.append((t, str(exc)))
            opt.zero_grad()
    assert len(raised) == 1 and raised[0][0] == 12 and "undone" in raised[0][1]  # after the step was handled
    assert monitor.step == 29 and monitor.rollbacks == 1
