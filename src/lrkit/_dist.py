"""torch.distributed helpers shared by the range test, ``lr0="auto"``'s trials and the monitor."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

__all__ = ["distributed", "rank_mean", "same_settings"]

#: A setting compared across ranks: a number, a flag, ``None``, or a name from a short list (see ``same_settings``).
Setting = float | int | bool | str | None


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


def same_settings(call: str, settings: Mapping[str, Setting], device: torch.device, *,
                  names: Mapping[str, tuple[str, ...]] | None = None, failed: bool = False,
                  all_reduce: Callable[[torch.Tensor], object] | None = None) -> list[int]:
    """Check that every rank of the default group called ``call`` with the same ``settings``; return the ranks that
    passed ``failed=True`` (a rank whose own check failed: the caller raises its error there and names it elsewhere).

    One all-reduce of a small ``(world, 1 + 2 * len(settings))`` float64 tensor, every rank filling its own row, so
    every rank sees every rank's values. When any setting differs, every rank raises the same ``ValueError`` naming
    each differing setting with every rank's value. A string setting must be one of ``names[key]`` (its index is sent);
    ``None`` is told apart from every number. Every rank must call it, with the same keys in the same order.
    """
    dist = torch.distributed
    rank, world = dist.get_rank(), dist.get_world_size()
    names = names or {}
    keys = list(settings)
    row = torch.zeros(world, 1 + 2 * len(keys), dtype=torch.float64,
                      device=device if dist.get_backend() == "nccl" else "cpu")
    own = [float(failed)]
    for key in keys:
        value = settings[key]
        if value is None:
            own += [1.0, 0.0]
        elif isinstance(value, str):
            own += [0.0, float(names[key].index(value))]
        else:
            own += [0.0, float(value)]
    row[rank] = torch.tensor(own, dtype=torch.float64)
    (all_reduce or dist.all_reduce)(row)
    table = row.cpu().tolist()
    failed_ranks = [r for r in range(world) if table[r][0]]
    if failed_ranks:  # a rank whose own check failed has no settings worth comparing
        return failed_ranks

    def shown(key: str, is_none: float, value: float) -> str:
        if is_none:
            return "None"
        if key in names:
            return repr(names[key][int(value)])
        own_value = settings[key]
        if isinstance(own_value, bool):
            return str(bool(value))
        if isinstance(own_value, int) and math.isfinite(value) and value == int(value):
            return str(int(value))
        return repr(value)

    differing = []
    for i, key in enumerate(keys):
        column = [(table[r][1 + 2 * i], table[r][2 + 2 * i]) for r in range(world)]
        if len(set(column)) > 1:
            differing.append(f"{key}: " + ", ".join(f"rank {r} {shown(key, *column[r])}" for r in range(world)))
    if differing:
        raise ValueError(
            f"{call} under torch.distributed (rank {rank} of {world}): the ranks were given different settings — "
            f"{'; '.join(differing)}. Pass the same settings on every rank (each with its own shard of the data): "
            "with different ones the ranks would run different numbers of steps (a collective mismatch, or a wait "
            "for the process group's timeout) or return different results"
        )
    return []
