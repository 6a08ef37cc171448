"""Session 21: a model or loss_fn that raises on one rank's first batch only, under torch.distributed (gloo, 2 CPU
ranks, DDP). That rank raised at once while the others went on into DDP's gradient all-reduce and waited there for
the process group's timeout (30 minutes by default); now the first loss is agreed on every rank (one all-reduce of a
flag, at the first step only) and every other rank raises a ValueError naming the failing rank."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from _helpers import free_port, init_gloo

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")

TIMEOUT = 60.0  # the process group's timeout: a rank left waiting fails the test after this


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import lrkit

    init_gloo(rank, world, port, seconds=TIMEOUT)
    record: dict[str, object] = {}
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(128, 6, generator=g)
        ds = TensorDataset(x, (x[:, 0] > 0).long())
        loader = DataLoader(ds, batch_size=16, sampler=DistributedSampler(ds, seed=0))
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(6, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if rank == 1:
                raise RuntimeError("a bad target on rank 1")
            return torch.nn.functional.cross_entropy(out, y)

        before = [p.detach().clone() for p in model.parameters()]
        start = time.monotonic()
        try:
            lrkit.find_lr(model, opt, loader, loss_fn=loss_fn, num_steps=20)
            record["error"] = None
        except Exception as e:  # the outcome under test
            record["error"] = f"{type(e).__name__}: {e}"
        record["seconds"] = time.monotonic() - start
        record["restored"] = all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
        # the ranks are still in step: a valid call afterwards agrees
        good = lrkit.find_lr(model, opt, loader, loss_fn=torch.nn.functional.cross_entropy, num_steps=20)
        record["after"] = good.suggestion
    finally:
        Path(out, f"{rank}.json").write_text(json.dumps(record))
        dist.barrier()
        os._exit(0)


def test_a_loss_that_raises_on_one_ranks_first_batch_stops_every_rank(tmp_path: Path) -> None:
    try:
        mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    except Exception:  # a rank that failed: the records say how far each got
        pass
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) if (tmp_path / f"{r}.json").exists() else {}
             for r in range(2)]
    own = "ValueError: loss_fn(model(x), y) failed: a bad target on rank 1"  # lrkit's wording of the loss's error
    assert ranks[1].get("error", "").startswith(own), ranks
    assert ranks[0].get("error", "").startswith("ValueError: find_lr under torch.distributed (rank 0 of 2) stopped on "
                                                "every rank at the first step"), ranks
    assert "rank 1's first batch" in ranks[0]["error"]
    assert all(r["seconds"] < TIMEOUT / 2 and r["restored"] for r in ranks), ranks
    assert ranks[0]["after"] == ranks[1]["after"]
