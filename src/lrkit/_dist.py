"""torch.distributed helpers shared by the range test, ``lr0="auto"``'s trials and the monitor."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["distributed", "rank_mean"]


def distributed() -> bool:
    """Whether a torch.distributed process group is running."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_mean(value: float, device: torch.device,
              all_reduce: Callable[[torch.Tensor], object] | None = None) -> float:
    """The mean of ``value`` over the ranks of the default group (every rank must call it; NaN and inf spread to every
    rank). The reduction runs on ``device`` under NCCL, on the CPU otherwise; ``all_reduce`` replaces
    ``torch.distributed.all_reduce`` (to name the caller when it fails)."""
    dist = torch.distributed
    t = torch.tensor([value], dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu")
    (all_reduce or dist.all_reduce)(t)
    return float(t.item()) / dist.get_world_size()
