"""``choose_lr0(search="prefix")`` under torch.distributed (session 29): ranks that were given different searches
stop together with an error naming the setting (the searches run different trials: a rank left alone would wait in
a collective for the process group's timeout); ranks that agree choose the same LR."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from _helpers import init_gloo, leave_rank, outcome, spawn_ranks


def _worker(rank: int, world: int, port: int, out: str) -> None:
    from lrkit.train.auto import choose_lr0

    init_gloo(rank, world, port)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    ds = TensorDataset(x, (x[:, :2].sum(1) > 0).long())
    loader = DataLoader(ds, batch_size=16, sampler=DistributedSampler(ds, seed=0))
    val = DataLoader(TensorDataset(x[:64], (x[:64, :2].sum(1) > 0).long()), batch_size=32)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def sched(o: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 - s / steps)

    def choose(search: str) -> float:
        return choose_lr0(model, opt, loader, val, total_steps=80, make_scheduler=sched,
                          loss_fn=torch.nn.functional.cross_entropy, search=search).lr

    leave_rank(out, rank, {"differ": outcome(lambda: choose("guard" if rank == 0 else "prefix")),
                           "agree": outcome(lambda: choose("prefix"))})


@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")
def test_ranks_with_different_searches_stop_together_and_agreeing_ranks_choose_alike(tmp_path: Path) -> None:
    records = spawn_ranks(_worker, tmp_path)  # (both calls return on every rank: neither is left waiting)
    for got in records:
        assert got["differ"]["error"] is not None, got
        assert "search: rank 0 'guard', rank 1 'prefix'" in got["differ"]["error"], got
        assert got["agree"]["error"] is None, got
    assert records[0]["agree"]["value"] == records[1]["agree"]["value"] > 0
