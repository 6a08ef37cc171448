"""Session 35: a back-off while a torch warmup of a ``SequentialLR`` is in charge, before its hand-over to lrkit's
adapter, takes effect at once (since the adapter writes its LR only while in charge, it waited for the hand-over)."""

from __future__ import annotations

import warnings

import pytest
import torch

from lrkit.monitor.actions import backoff_lr
from lrkit.schedules import from_spec


def _lrs(backoff_at: int | None, *, chained: bool = False, steps: int = 15) -> list[float]:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if chained:
        ad = from_spec("cosine lr0=0.1 lrf=0.1", total_steps=20).to_torch(opt)
        sched = torch.optim.lr_scheduler.ChainedScheduler([ad, torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)])
    else:
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
        ad = from_spec("cosine lr0=0.1 lrf=0.1", total_steps=20).to_torch(opt)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, ad], milestones=[5])
    out = []
    for t in range(steps):
        if t == backoff_at:
            backoff_lr(opt, sched, 0.3)
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("at", [0, 2, 4, 5, 9])
def test_backoff_holds_before_and_after_the_sequentiallr_handover(at: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "the epoch parameter in scheduler.step()" at the hand-over
        plain, backed = _lrs(None), _lrs(at)
    ratios = [b / p for p, b in zip(plain, backed)]
    assert ratios[:at] == pytest.approx([1.0] * at)
    assert ratios[at:] == pytest.approx([0.3] * (len(ratios) - at), rel=1e-9)  # 1.0 during the warmup, before


def test_backoff_with_the_adapter_in_charge_still_scales_only_its_multiplier() -> None:
    plain, backed = _lrs(None, chained=True), _lrs(3, chained=True)
    assert [b / p for p, b in zip(plain, backed)][3:] == pytest.approx([0.3] * 12, rel=1e-9)
