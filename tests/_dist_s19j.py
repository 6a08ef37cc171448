"""Worker for tests/test_train_multiprocess_s19j.py, run in 2 spawned gloo processes (importable by name)."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist


def train_worker(rank: int, world: int, port: int, out: str) -> None:
    """``lrkit.train`` called on every rank of a 2-rank group: records the error each rank got."""
    import lrkit

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=40))
    torch.set_num_threads(1)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 3))
    try:
        lrkit.train(model, data="iris", epochs=1, lr0=0.01, project=str(Path(out, "runs")), verbose=False,
                    plots=False)
        error = None
    except ValueError as e:
        error = str(e)
    Path(out, f"{rank}.json").write_text(json.dumps({"error": error}))
    dist.barrier()
    dist.destroy_process_group()
