"""TEMPORARY stand-in for lrkit.schedules.ultralytics until the schedules package lands (to be deleted)."""

from __future__ import annotations

import math
from typing import Any

import torch


class _Sched:
    def __init__(self, cfg: Any, peak: float, spe: int, total: int) -> None:
        self.cfg, self.peak, self.spe, self.total = cfg, peak, spe, total

    def mult(self, step: int) -> float:
        epochs = max(1, round(self.total / self.spe))
        e = min(step // self.spe, epochs)
        lrf = self.cfg.lrf
        if self.cfg.cos_lr:
            f = ((1 - math.cos(e * math.pi / epochs)) / 2) * (lrf - 1) + 1
        else:
            f = (1 - e / epochs) * (1.0 - lrf) + lrf
        nw = round(self.cfg.warmup_epochs * self.spe)
        if step < nw:
            f *= step / nw
        return f

    def to_torch(self, optimizer: torch.optim.Optimizer) -> Any:
        outer = self

        class S(torch.optim.lr_scheduler.LambdaLR):
            def replan(self, total_steps: int) -> None:
                outer.total = total_steps

        return S(optimizer, self.mult)


def ultralytics_schedule(cfg: Any, peak: float, spe: int, total: int) -> Any:
    return _Sched(cfg, peak, spe, total)
