"""Bug hunt (s8a) of 053cde9..8ac27ff: ``Monitor(collapse_check=True)`` resumed from a state that had no windowed
check, and the ``d_lr`` of a Monitor event with param groups whose ``d`` and ``lr`` differ.

Known answers: the uninterrupted run's events (the check fires once its 75 steps and 50-loss window are in), and
``max over groups of d_g x lr_g`` computed by hand for two groups.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from lrkit.monitor import Monitor
from lrkit.monitor.checks import NonFinite

L0 = math.log(10)
STUCK = [L0] + [L0 + (0.03 if i % 2 else -0.03) for i in range(199)]  # collapsed to chance from the first step


def _make(**kw: Any) -> tuple[torch.nn.Linear, torch.optim.SGD, Monitor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, Monitor(model, opt, on_overfit=None, **kw)


def _feed(monitor: Monitor, model: torch.nn.Module, opt: torch.optim.Optimizer, losses: list[float]) -> None:
    for value in losses:
        for p in model.parameters():
            p.grad = torch.full_like(p, -1.0)
        monitor.after_backward(value)
        opt.step()
        monitor.after_step()


def test_collapse_check_runs_after_resuming_a_state_saved_without_windowed_checks() -> None:
    # reference: collapse_check on from the start (only non_finite besides it) fires on the collapsed stream
    model, opt, ref = _make(checks=[NonFinite()], collapse_check=True)
    _feed(ref, model, opt, STUCK)
    want = [e.step for e in ref.events if e.check == "loss_above_start"]
    assert want and 75 <= want[0] < 100
    # the state of a monitor without any windowed check (its windowed timer at "never"), resumed with the check on
    model, opt, old = _make(checks=[NonFinite()], collapse_check=False)
    _feed(old, model, opt, STUCK[:10])
    model2, opt2, new = _make(checks=[NonFinite()], collapse_check=True)
    model2.load_state_dict(model.state_dict())
    new.load_state_dict(old.state_dict())
    _feed(new, model2, opt2, STUCK[10:])
    got = [e.step for e in new.events if e.check == "loss_above_start"]
    # was: never evaluated after the resume, so never fired. Now due every 25 steps from the resume (steps 10, 35,
    # 60, 85: the first past min_steps=75 is 85), it runs on the next full step, as the reference does from step 75
    assert got and 85 <= got[0] < 100
    assert len(got) == len(want)


class _PerGroupD(torch.optim.SGD):
    """An optimizer adapting its step size per group (``d``/``d0`` in each group, as Prodigy-like optimizers with an
    independent estimate per group keep them); ``step`` is plain SGD, only the group keys matter here."""

    def __init__(self, groups: list[dict[str, Any]]) -> None:
        super().__init__(groups, lr=1.0)


def test_event_d_lr_is_the_largest_step_size_of_any_group() -> None:
    torch.manual_seed(0)
    a, b, c = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    model = torch.nn.Sequential(a, b, c)
    opt = _PerGroupD([
        {"params": a.parameters(), "lr": 0.1, "d": 1e-2, "d0": 1e-6},   # step 1e-3
        {"params": b.parameters(), "lr": 1.0, "d": 1e-4, "d0": 1e-6},   # step 1e-4
        {"params": c.parameters(), "lr": 5.0},                          # no d: no adapted step size to report
    ])
    monitor = Monitor(model, opt, on_divergence="skip")
    model(torch.randn(4, 2)).sum().backward()
    monitor.after_backward(float("nan"))
    opt.step()
    monitor.after_step()
    event = monitor.events[-1]
    assert event.check == "non_finite" and event.values["lr"] == 5.0  # the largest group LR, as before
    # d_lr = max over the groups with a d of d_g x lr_g = max(1e-2 x 0.1, 1e-4 x 1.0); was max(d) x max(lr) = 5e-2
    assert event.values["d_lr"] == pytest.approx(1e-3, rel=1e-12)


def test_event_d_lr_with_one_shared_d_is_d_times_the_largest_lr() -> None:
    # the usual Prodigy layout (one d in every group): unchanged, d x max lr
    torch.manual_seed(0)
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    model = torch.nn.Sequential(a, b)
    opt = _PerGroupD([{"params": a.parameters(), "lr": 0.5, "d": 2e-3, "d0": 1e-6},
                      {"params": b.parameters(), "lr": 0.0, "d": 2e-3, "d0": 1e-6}])
    monitor = Monitor(model, opt, on_divergence="skip")
    model(torch.randn(4, 2)).sum().backward()
    monitor.after_backward(float("nan"))
    opt.step()
    monitor.after_step()
    assert monitor.events[-1].values["d_lr"] == pytest.approx(2e-3 * 0.5, rel=1e-12)
