"""Functions for tests/test_distributed_hunt_s12d.py: a monitored loop resumed mid-run (one process, or every rank of a
2-process gloo group), and LBFGS under DDP through ``find_lr`` and ``lr0="auto"``'s trial.

A module of its own so that the processes ``torch.multiprocessing.spawn`` starts can import these functions by name.
"""

from __future__ import annotations

import datetime
import gc
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import lrkit
from _helpers import SAMStyle

F = torch.nn.functional


class CountingAdam(torch.optim.Adam):
    """Adam that keeps a count of its steps in ``state`` under a key that is not a parameter (as some optimizers keep
    global counters)."""

    def step(self, closure: Any = None) -> Any:
        self.state["calls"] = self.state.get("calls", 0) + 1
        return super().step(closure)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def _make(kind: str, ddp: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    model = _net()
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model)
    if kind == "sam":
        opt: torch.optim.Optimizer = SAMStyle(model.parameters(), torch.optim.Adam, lr=1e-2)
    elif kind == "zero":
        from torch.distributed.optim import ZeroRedundancyOptimizer

        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=1e-2)
    elif kind == "counting":
        opt = CountingAdam(model.parameters(), lr=1e-2)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt, torch.optim.lr_scheduler.StepLR(opt, 15, 0.5)


def _opt_state(kind: str, opt: Any) -> Any:
    """The optimizer's checkpoint as its user saves it: SAM's base state too; ZeRO's consolidated on rank 0 and sent
    to every rank (``consolidate_state_dict`` is collective)."""
    if kind == "sam":
        return {"wrapper": opt.state_dict(), "base": opt.base_optimizer.state_dict()}
    if kind == "zero":
        opt.consolidate_state_dict(to=0)
        box = [opt.state_dict() if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return opt.state_dict()


def _load_opt_state(kind: str, opt: Any, state: Any) -> None:
    if kind == "sam":
        opt.load_state_dict(state["wrapper"])
        opt.base_optimizer.load_state_dict(state["base"])
        opt.param_groups = opt.base_optimizer.param_groups
    else:
        opt.load_state_dict(state)


def _roundtrip(obj: Any) -> Any:
    """Through ``torch.save`` / ``torch.load(weights_only=True)``, as a checkpoint file goes."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def monitored_run(kind: str, *, resume_at: int | None = None, ddp: bool = False, steps: int = 40, spike: int = 27,
                  monitor_from_rank0: bool = False) -> dict[str, Any]:
    """A loop with a rolling-back monitor; the batch at step ``spike`` (rank 1's under DDP) has its targets blown up.

    ``resume_at``: before that step, everything (model, optimizer, scheduler, ``monitor.state_dict(snapshot=True)``)
    is saved, thrown away, rebuilt from scratch and loaded, as a job restarted from its checkpoint does.
    ``monitor_from_rank0``: every rank loads rank 0's monitor state (a checkpoint only rank 0 writes).
    Returns the events and the parameters at the end (and whether they agree over ranks), or the load's error.
    """
    rank = dist.get_rank() if ddp else 0
    model, opt, sched = _make(kind, ddp)
    monitor = lrkit.Monitor(model, opt, scheduler=sched, on_divergence="rollback", spike_grace=0, snapshot_every=10,
                            grad_every=1)
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(steps * 16, 8, generator=g)
    y = x.sum(1, keepdim=True)
    for step in range(steps):
        if step == resume_at:
            ckpt = _roundtrip({"model": model.state_dict(), "opt": _opt_state(kind, opt), "sched": sched.state_dict(),
                               "monitor": monitor.state_dict(snapshot=True)})
            if monitor_from_rank0:
                box = [ckpt["monitor"] if rank == 0 else None]
                dist.broadcast_object_list(box, src=0)
                ckpt["monitor"] = box[0]
            del model, opt, sched, monitor
            gc.collect()
            model, opt, sched = _make(kind, ddp)
            model.load_state_dict(ckpt["model"])
            _load_opt_state(kind, opt, ckpt["opt"])
            sched.load_state_dict(ckpt["sched"])
            monitor = lrkit.Monitor(model, opt, scheduler=sched, on_divergence="rollback", spike_grace=0, grad_every=1,
                                    snapshot_every=10)
            error = None
            try:
                monitor.load_state_dict(ckpt["monitor"])
            except ValueError as e:
                error = str(e)
            failed = torch.tensor([error is not None], dtype=torch.int32)
            if ddp:  # every rank stops when one refused the state (the others would wait in DDP's all-reduce)
                dist.all_reduce(failed)
            if failed.item():
                del model, opt, sched, monitor
                gc.collect()
                return {"error": error}
        opt.zero_grad()
        xb, yb = x[step * 16:(step + 1) * 16], y[step * 16:(step + 1) * 16]
        if step == spike and rank == (1 if ddp else 0):
            yb = yb * 30 + 30
        loss = F.mse_loss(model(xb), yb)
        loss.backward()
        value = loss.detach()
        if ddp:  # the same loss on every rank
            dist.all_reduce(value)
            value = value / dist.get_world_size()
        monitor.after_backward(value)
        opt.step()
        sched.step()
        monitor.after_step()
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    out: dict[str, Any] = {"events": [[e.step, e.check, e.action] for e in monitor.events], "params": params.tolist(),
                           "other_state": {k: v for k, v in opt.state.items() if isinstance(k, str)}}
    if ddp:
        theirs = params.clone()
        dist.broadcast(theirs, 0)
        out["same_on_ranks"] = bool(torch.equal(params, theirs))
    del model, opt, sched, monitor
    gc.collect()
    return out


def _lbfgs_shard(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Shards whose losses pull apart: rank 1's targets are rank 0's function negated and shifted."""
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(64, 4, generator=g)
    y = x.sum(1, keepdim=True) if rank == 0 else 3 - x.sum(1, keepdim=True)
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]


def _lbfgs_model(line_search: str | None, tolerance_change: float = 1e-9
                 ) -> tuple[torch.nn.Module, torch.optim.Optimizer, list[int]]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    model = torch.nn.parallel.DistributedDataParallel(net)
    calls = [0]  # forward passes: the closure evaluations

    def count(module: torch.nn.Module, args: Any) -> None:
        calls[0] += 1

    model.register_forward_pre_hook(count)
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=5, line_search_fn=line_search,
                            tolerance_change=tolerance_change)
    return model, opt, calls


def lbfgs_cases(rank: int) -> dict[str, Any]:
    """find_lr with LBFGS under DDP: with the strong-Wolfe line search (its sufficient-decrease test reads the loss),
    and without one but with ``tolerance_change=0.1`` (its "the loss stopped changing" test reads it); and one
    lr0="auto" trial with the line search."""
    from lrkit.train.auto import _run_trial

    record: dict[str, Any] = {}
    for ls, tolerance in ((None, 0.1), ("strong_wolfe", 1e-9)):
        model, opt, calls = _lbfgs_model(ls, tolerance)
        r = lrkit.find_lr(model, opt, _lbfgs_shard(rank), loss_fn=F.mse_loss, num_steps=15, start_lr=1e-4,
                          end_lr=10.0)
        record[f"find_lr_{ls}"] = {"calls": calls[0], "losses": r.losses}
        del model, opt
        gc.collect()
    model, opt, calls = _lbfgs_model("strong_wolfe")
    batches = iter(_lbfgs_shard(rank) * 3)
    n, _, _ = _run_trial(
        model, opt, [1.0], 0.01, 6, batches, lambda o, s: torch.optim.lr_scheduler.LambdaLR(o, lambda i: 1.0),
        F.mse_loss, None, 1, None, torch.device("cpu"))
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    record["trial"] = {"calls": calls[0], "steps": n, "params": params.tolist()}
    del model, opt
    gc.collect()
    return record


def worker(rank: int, world: int, port: int, out: str) -> None:
    """Every case on one rank of a 2-process gloo group; a collective mismatch fails in seconds, not 30 minutes."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # the monitor's event warnings and the finder's curve notes
    record: dict[str, Any] = {
        "zero_plain": monitored_run("zero", ddp=True),
        "zero_resumed": monitored_run("zero", ddp=True, resume_at=22),
        "sam_resumed_rank0": monitored_run("sam", ddp=True, resume_at=22, monitor_from_rank0=True),
        "sam_plain": monitored_run("sam", ddp=True),
        "zero_rank0": monitored_run("zero", ddp=True, resume_at=22, monitor_from_rank0=True),
    }
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    record["lbfgs"] = lbfgs_cases(rank)
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
