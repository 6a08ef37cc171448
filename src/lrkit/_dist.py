"""torch.distributed helpers shared by the range test, ``lr0="auto"``'s trials and the monitor."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["distributed", "failed_check", "failed_error", "flagged_all_reduce", "fsdp1_root", "fsdp1_shard_sum",
           "fsdp2_modules", "named_all_reduce", "rank_mean", "reshard", "same_settings"]

#: A setting compared across ranks: a number, a flag, ``None``, or a name from a short list (see ``same_settings``).
Setting = float | int | bool | str | None


def distributed() -> bool:
    """Whether a torch.distributed process group is running."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def fsdp2_modules(model: Any) -> list[torch.nn.Module]:
    """The FSDP2 modules of ``model`` (``torch.distributed.fsdp.fully_shard``; told by class name, nothing imported),
    in ``model.modules()`` order; empty for any other model."""
    if not isinstance(model, torch.nn.Module):
        return []
    return [m for m in model.modules()
            if callable(getattr(m, "reshard", None)) and any(c.__name__ == "FSDPModule" for c in type(m).__mro__)]


def reshard(model: Any, *, after_error: bool = False) -> None:
    """Put every FSDP2 module of ``model`` (``torch.distributed.fsdp.fully_shard``) back in its sharded state.

    After a forward pass without a backward (a validation pass, a sanity check ``model(x)``) FSDP2 leaves the root
    module's parameters unsharded: ``model.parameters()`` then gives plain full tensors in place of the DTensors the
    optimizer holds, and a snapshot taken or restored then mixes the two (``aten.copy_.default got mixed
    torch.Tensor and DTensor``). Resharding is local (no collective) and a no-op for a module already sharded, so any
    rank may call it at any time; a model without FSDP2 modules is left alone.

    ``after_error``: an exception may have stopped a forward or a backward part-way (the clean-up on the way out of
    ``find_lr`` / ``choose_lr0`` with one). The root is then left in its forward state, where ``reshard()`` keeps its
    parameters unsharded; each outermost FSDP2 module's ``reset_iter_state()`` (torch's recovery from an exception
    mid-forward or mid-backward, where this torch has it: it waits for its in-flight work, local) resets it first.
    """
    inside: set[int] = set()  # (after_error) the modules of an outermost FSDP2 module already reset
    for m in fsdp2_modules(model):
        if after_error and id(m) not in inside:
            inside.update(id(sub) for sub in m.modules())
            reset = getattr(m, "reset_iter_state", None)
            if callable(reset):
                try:
                    reset()
                except Exception:  # not a root (torch says so): its reshard() below is what is left to do
                    pass
        m.reshard()  # type: ignore[operator]


def fsdp1_root(model: Any) -> Any:
    """The outermost ``FullyShardedDataParallel`` (FSDP1) module of ``model`` when it has exactly one, else ``None``.

    Under FSDP1 each rank's gradients are its shard of the flat parameters: a norm over them is this rank's part
    only. The root's own ``clip_grad_norm_`` norms over every rank's shard (and knows the sharding strategy)."""
    if not isinstance(model, torch.nn.Module):
        return None
    roots: list[Any] = []
    inside: set[int] = set()
    for m in model.modules():
        if type(m).__name__ != "FullyShardedDataParallel" or not callable(getattr(m, "clip_grad_norm_", None)):
            continue
        if id(m) not in inside:
            roots.append(m)
        inside.update(id(sub) for sub in m.modules())
    return roots[0] if len(roots) == 1 else None


def fsdp1_shard_sum(root: Any, values: list[float], device: torch.device) -> list[float]:
    """``values`` (sums of squares over this rank's shard of ``root``'s parameters or gradients) summed over the ranks
    that hold the other shards: ``root``'s process group (under hybrid sharding the shard group within a node; the
    replicas hold the same shards), as FSDP1's ``clip_grad_norm_`` reduces. Under ``NO_SHARD`` every rank holds
    everything: ``values`` as they are. One all-reduce (on ``device`` under NCCL, on the CPU otherwise); every rank
    of the group must call it. NaN and inf spread to every rank."""
    if "NO_SHARD" in str(getattr(root, "sharding_strategy", "")):
        return values
    dist = torch.distributed
    group = getattr(root, "process_group", None)
    t = torch.tensor(values, dtype=torch.float64,
                     device=device if dist.get_backend(group) == "nccl" else "cpu")
    dist.all_reduce(t, group=group)
    return t.tolist()


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
                  names: Mapping[str, tuple[str, ...]] | None = None, failed: bool | int = False,
                  all_reduce: Callable[[torch.Tensor], object] | None = None) -> dict[int, int]:
    """Check that every rank of the default group called ``call`` with the same ``settings``; return the ranks that
    passed a true ``failed`` (a rank whose own check failed: the caller raises its error there and names it elsewhere),
    each with the ``failed`` it passed (``True`` as 1; a caller with several checks passes a code of its own, >= 1, to
    tell them apart). Empty when no rank failed.

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
    own = [float(int(failed))]
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
    failed_ranks = {r: int(table[r][0]) for r in range(world) if table[r][0]}
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
    return {}


def failed_check(call: str, keys: Sequence[str], model: Any, *, code: int = 1,
                 all_reduce: Callable[[torch.Tensor], object] | None = None) -> None:
    """On a rank whose own argument checks for ``call`` failed, before the error is raised: take part in the settings
    check (:func:`same_settings`, with ``keys``, the ones the other ranks compare, in their order) as a failed rank
    (``failed=code``), so the other ranks, on their way into it, stop at once and name this rank rather than wait there
    for the process group's timeout (30 minutes by default). Call only under torch.distributed, with every rank
    calling ``same_settings`` for ``call`` next. Nothing is raised here: the caller's own error is the one to raise,
    also when this all-reduce fails (another rank died, say). ``model`` tells NCCL which GPU the tensor goes on."""
    try:
        same_settings(call, dict.fromkeys(keys), _device_of(model), failed=code, all_reduce=all_reduce)
    except Exception:  # the caller raises the error that brought it here, which says more
        pass


def failed_error(call: str, ranks: Sequence[int]) -> ValueError:
    """The error the other ranks raise when the argument checks for ``call`` failed on ``ranks`` (:func:`failed_check`):
    it names the call and those ranks and points to their own errors, which say what was wrong."""
    dist = torch.distributed
    who = f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {', '.join(map(str, ranks))}"
    see = "see that rank's error" if len(ranks) == 1 else "see those ranks' errors"
    return ValueError(
        f"{call} under torch.distributed (rank {dist.get_rank()} of {dist.get_world_size()}) stopped on every rank "
        f"before any step: the arguments of {who} failed {call}'s checks — {see} for the bad value and what would be "
        f"valid. Every rank must call {call} with valid arguments, the same settings on every rank (each with its own "
        "shard of the data)"
    )


def _device_of(model: Any) -> torch.device:
    """The device for a collective on this rank when the checks that find it failed: the model's first CUDA
    parameter's under NCCL (the one the other ranks' checks use), else the current CUDA device; gloo takes the CPU."""
    if torch.distributed.get_backend() != "nccl":
        return torch.device("cpu")
    try:
        for p in model.parameters() if isinstance(model, torch.nn.Module) else ():
            if p.device.type == "cuda":
                return p.device
    except Exception:  # a model whose parameters() fails: the current device is the one left
        pass
    return torch.device("cuda", torch.cuda.current_device())


def named_all_reduce(t: torch.Tensor, what: str, op: Any = None, call: str = "find_lr") -> None:
    """``torch.distributed.all_reduce(t)``, and when it fails (another rank did not call ``find_lr`` — or ``call`` —
    and the process group timed out, or another rank's process died), an error that names ``call`` and what it needs
    instead of the backend's bare "Timed out waiting ... for recv" / "Connection closed by peer"."""
    dist = torch.distributed
    try:
        dist.all_reduce(t) if op is None else dist.all_reduce(t, op=op)
    except RuntimeError as e:  # DistBackendError is a RuntimeError
        raise RuntimeError(
            f"{call} under torch.distributed (rank {dist.get_rank()} of {dist.get_world_size()}): the all-reduce of "
            f"{what} failed ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}). Every rank "
            f"must call {call} at the same time, each with its shard of the data — a call on some ranks only waits "
            "for the others until the process group times out; to run it on one process, call it before "
            "init_process_group (or after destroy_process_group)"
        ) from e


def flagged_all_reduce(values: list[float], error: Exception | None, device: torch.device, what: str,
                       call: str) -> tuple[torch.Tensor, str | None]:
    """Sum ``values`` over the ranks in one all-reduce that also carries one flag per rank: whether ``error`` (this
    rank's failure) is set. A rank with an error raises it once the others have heard of it; the others get the
    summed tensor and the failed ranks in words (``"rank 1"``, ``"ranks 1, 3"``; ``None`` when none failed), for
    an error of their own naming them — every rank stops at once, none waits in a later collective for the process
    group's timeout. ``what`` and ``call`` name the all-reduce in its own error."""
    dist = torch.distributed
    rank, world, n = dist.get_rank(), dist.get_world_size(), len(values)
    t = torch.zeros(n + world, dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu")
    t[:n] = torch.tensor(values, dtype=torch.float64)
    t[n + rank] = float(error is not None)
    if error is not None:
        try:  # the others hear of it; this rank's own error is the one raised
            named_all_reduce(t, what, call=call)
        except Exception:  # (another rank gone, say): that error says less than this one
            pass
        raise error
    named_all_reduce(t, what, call=call)
    failed = [r for r in range(world) if t[n + r]]
    if not failed:
        return t, None
    return t, f"rank {failed[0]}" if len(failed) == 1 else f"ranks {', '.join(map(str, failed))}"
