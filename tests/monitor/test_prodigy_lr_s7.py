"""Monitor events with Prodigy: ``lr`` is the group's multiplier (1.0); the step it takes is ``d * lr``.

An event's ``values["lr"]`` stays what the param group holds (what a back-off scales, and what every other optimizer
reports); with an optimizer that adapts its own step size (groups carrying ``d``: Prodigy, D-Adaptation) the event
also records ``values["d_lr"] = max over groups of d * lr``, the step size at that step. Known answers: Prodigy's own
``group["d"]`` at the event, and no ``d_lr`` for an optimizer without one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from lrkit import Monitor

prodigyopt = pytest.importorskip("prodigyopt")


def _run(opt_factory: Callable[[Any], torch.optim.Optimizer], poison_at: int = 12,
         steps: int = 14) -> tuple[Monitor, torch.optim.Optimizer, list[float]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = opt_factory(model.parameters())
    monitor = Monitor(model, opt, on_divergence="skip")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = x.sum(1, keepdim=True)
    d_at_poison: list[float] = []
    for step in range(steps):
        i = (step * 32) % 256
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[i:i + 32]), y[i:i + 32])
        if step == poison_at:
            loss = loss * float("nan")
            d_at_poison.append(float(opt.param_groups[0].get("d", float("nan"))))
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
    return monitor, opt, d_at_poison


def test_a_prodigy_event_records_the_multiplier_and_the_step_size() -> None:
    monitor, _, d_at = _run(lambda p: prodigyopt.Prodigy(p, lr=1.0))
    event = next(e for e in monitor.events if e.check == "non_finite")
    assert event.values["lr"] == 1.0  # the multiplier, as the group holds it
    assert d_at[0] != 1.0 and d_at[0] > 0  # d has adapted away from its d0 by step 12
    assert event.values["d_lr"] == pytest.approx(d_at[0] * 1.0, rel=1e-12)  # the step size Prodigy took
    assert event.to_dict()["values"]["d_lr"] == pytest.approx(d_at[0])  # and in the record


def test_an_ordinary_optimizer_has_no_d_lr() -> None:
    monitor, _, _ = _run(lambda p: torch.optim.Adam(p, lr=0.01))
    event = next(e for e in monitor.events if e.check == "non_finite")
    assert event.values["lr"] == pytest.approx(0.01) and "d_lr" not in event.values
