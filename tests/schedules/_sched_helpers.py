"""Shared helpers for the schedule tests: run a scheduler over a whole run and record every group's LR/momentum."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def make_optimizer(lrs: list[float], *, kind: str = "sgd", scales: list[float] | None = None,
                   bias: list[bool] | None = None, momentum: float = 0.9) -> torch.optim.Optimizer:
    """An optimizer with one tiny parameter per group, at the given LRs (and optional lr_scale / is_bias flags)."""
    groups: list[dict[str, Any]] = []
    for i, lr in enumerate(lrs):
        g: dict[str, Any] = {"params": [torch.nn.Parameter(torch.full((2,), float(i + 1)))], "lr": lr}
        if scales is not None:
            g["lr_scale"] = scales[i]
        if bias is not None:
            g["is_bias"] = bias[i]
        groups.append(g)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lrs[0])
    raise ValueError(kind)


def group_momentum(g: dict[str, Any]) -> float:
    return float(g["momentum"]) if "momentum" in g else float(g["betas"][0])


def trace(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int,
          on_step: Callable[[int], None] | None = None) -> tuple[list[list[float]], list[list[float]]]:
    """LR and momentum of every group at steps 0..steps-1, stepping optimizer then scheduler (the torch order)."""
    lrs, moms = [], []
    for t in range(steps):
        lrs.append([float(g["lr"]) for g in optimizer.param_groups])
        moms.append([group_momentum(g) for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
        if on_step is not None:
            on_step(t)
    return lrs, moms


def max_abs_diff(a: list[list[float]], b: list[list[float]]) -> float:
    assert len(a) == len(b) and all(len(x) == len(y) for x, y in zip(a, b))
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
