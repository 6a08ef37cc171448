"""Under torch.distributed every rank sees the same mean loss and returns the same suggestion (2 CPU procs, gloo)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lrkit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 4, generator=g)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0])).unsqueeze(1)
    shard = torch.utils.data.TensorDataset(x[rank::world], y[rank::world])  # different data per rank
    loader = torch.utils.data.DataLoader(shard, batch_size=16)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    r = lrkit.find_lr(model, opt, loader, num_steps=40, start_lr=1e-5, end_lr=10.0)
    restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # the loss each rank saw locally at step 0, to check the recorded value is the cross-rank mean
    with torch.no_grad():
        xb, yb = next(iter(loader))
        local0 = torch.nn.functional.mse_loss(model(xb), yb).item()
    Path(out, f"rank{rank}.json").write_text(json.dumps(
        {"losses": r.losses, "suggestion": r.suggestion, "restored": restored, "local0": local0}
    ))
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo")
def test_every_rank_gets_the_same_curve_and_suggestion(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["losses"] == r1["losses"]
    assert r0["suggestion"] == r1["suggestion"]
    assert r0["restored"] and r1["restored"]
    # the shards differ, so the shared value is the mean, not either rank's own
    assert r0["local0"] != r1["local0"]
    assert r0["losses"][0] == pytest.approx((r0["local0"] + r1["local0"]) / 2, rel=1e-6)
