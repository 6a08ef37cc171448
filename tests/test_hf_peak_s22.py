"""``find_trainer_lr(set_lr=True)`` on a user's optimizer with a ``OneCycleLR`` or ``CyclicLR``: the schedule must
peak at the suggestion. The peak was read as the groups' ``initial_lr``, which for these two is the *starting* LR
(``max_lr / div_factor``, ``base_lr``), so the run peaked at 25x / 10x the suggestion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")

from lrkit.integrations.transformers import find_trainer_lr
from test_hf_finder_s22b import LRs, Reg, _trainer


def _one_cycle(opt: torch.optim.Optimizer) -> Any:
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=20)


def _cyclic(opt: torch.optim.Optimizer) -> Any:
    return torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.001, max_lr=0.01, step_size_up=5)


def _warmup(opt: torch.optim.Optimizer) -> Any:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (t + 1) / 5))


@pytest.mark.parametrize("make", [_one_cycle, _cyclic, _warmup])
def test_a_users_schedule_peaks_at_the_suggestion(tmp_path: Path, make: Any) -> None:
    model = Reg()
    opt = torch.optim.SGD([{"params": model.net[0].parameters()},
                           {"params": model.net[3].parameters(), "lr": 0.001}], lr=0.01)
    sched = make(opt)
    peaks = [g.get("max_lr", g.get("initial_lr")) for g in opt.param_groups]  # each group's own peak
    ratio = peaks[1] / peaks[0]  # (OneCycleLR given one max_lr peaks every group there: 1)
    spy = LRs()
    trainer = _trainer(tmp_path, model=model, optimizers=(opt, sched), callbacks=[spy], max_steps=20)
    result = find_trainer_lr(trainer, num_steps=30)
    trainer.train()
    peak = max(lrs[0] for lrs in spy.lrs)
    assert peak == pytest.approx(result.suggestion, rel=1e-9)
    if make is not _cyclic:  # (CyclicLR's groups share one max_lr unless given a list)
        assert max(lrs[1] for lrs in spy.lrs) == pytest.approx(ratio * result.suggestion, rel=1e-9)
