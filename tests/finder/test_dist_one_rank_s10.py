"""find_lr called on one rank only: the failed collective is named with what find_lr needs (session 10)."""

from __future__ import annotations

import datetime
import os
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lrkit
from _helpers import free_port


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    if rank == 1:  # this rank never calls find_lr: it leaves (a rank that stayed would leave rank 0 waiting until the
        # group's timeout, then fail the same way, with gloo's "Timed out waiting" instead) — at once, without the
        # process group's C++ teardown, which on a loaded machine could abort (SIGABRT) while rank 0 still wrote to it
        os._exit(0)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(64, 4)
    data = [(x[i:i + 16], x[i:i + 16].sum(1, keepdim=True)) for i in range(0, 64, 16)]
    try:
        lrkit.find_lr(model, opt, data, num_steps=20)
        message = "no error"
    except RuntimeError as e:
        message = str(e)
    restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    Path(out, "rank0.txt").write_text(f"{restored}\n{message}")
    # Leave at once too: with its peer gone, gloo's teardown at interpreter exit can abort ("terminate called without
    # an active exception", SIGABRT) on a loaded machine after the result is written (seen in CI, session 16)
    os._exit(0)


@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo")
def test_find_lr_on_one_rank_only_names_the_failed_collective(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    restored, message = (tmp_path / "rank0.txt").read_text().split("\n", 1)
    assert restored == "True"
    assert message.startswith("find_lr under torch.distributed (rank 0 of 2): the all-reduce of")
    assert "Every rank must call find_lr at the same time" in message
