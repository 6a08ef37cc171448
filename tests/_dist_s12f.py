"""Functions for tests/test_auto_distributed_s12f.py: ``choose_lr0`` (``lr0="auto"``) on every rank of a 2-process gloo
group, each rank with its own shard. A module of its own so the spawned processes can import them by name."""

from __future__ import annotations

import datetime
import gc
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from lrkit.train.auto import choose_lr0


def _cosine(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)


def _shard(rank: int, n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of one regression; rank 1's inputs are 6x larger, so its own loss blows up at LRs where rank 0's
    does not, and its validation loss is on another scale: every judgement read from one rank's loss alone differs."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(8, 1, generator=torch.Generator().manual_seed(99))
    x = torch.randn(n, 8, generator=g) * (6.0 if rank == 1 else 1.0)
    y = x @ w + 0.1 * torch.randn(n, 1, generator=g)
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, n, 16)]


def _join(rank: int, world: int, port: int) -> None:
    """Join the 2-process gloo group (a collective mismatch fails in 40 s, not 30 minutes)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=40))
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")


def _leave() -> None:
    """Leave the group together: the DDP reducer's threads go before the group does (else gloo can abort at exit)."""
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def worker(rank: int, world: int, port: int, out: str, val: bool) -> None:
    """``choose_lr0`` on a DDP model, each rank with its shard; writes what the rank chose and logged."""
    _join(rank, world, port)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    lines: list[str] = []
    record: dict[str, Any] = {}
    try:
        auto = choose_lr0(model, opt, _shard(rank, 320, 1), _shard(rank, 96, 2) if val else None, total_steps=400,
                          make_scheduler=_cosine, loss_fn=torch.nn.functional.mse_loss, log=lines.append)
        record = {"lr": auto.lr, "trials": [[t.lr, t.val_loss, t.steps] for t in auto.trials], "reason": auto.reason}
    except Exception as e:  # a collective mismatch or timeout: recorded, so the test names it
        record = {"error": f"{type(e).__name__}: {e}"[:500]}
    record["log"] = lines
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    _leave()


def monitor_worker(rank: int, world: int, port: int, out: str) -> None:
    """A DDP loop whose monitor gets each rank's own loss with ``sync_loss=True``; rank 1's batch spikes at step 30."""
    _join(rank, world, port)
    import lrkit

    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = lrkit.Monitor(model, opt, sync_loss=True)
    batches = _shard(rank, 16 * 40, 3)
    losses = []
    for step, (x, y) in enumerate(batches):
        if rank == 1 and step == 30:
            x = x * 50.0  # this rank's batch alone blows the loss up
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(loss)  # the rank's own loss: the monitor averages it
        opt.step()
        monitor.after_step()
        losses.append(float(loss))
    monitor.after_validation(torch.tensor(0.5 + rank))  # different per rank: averaged too
    record = {
        "events": [[e.step, e.check, e.action] for e in monitor.events],
        "weights": [p.detach().flatten().tolist() for p in model.parameters()],
        "lr": opt.param_groups[0]["lr"],
    }
    Path(out, f"monitor{rank}.json").write_text(json.dumps(record))
    _leave()
