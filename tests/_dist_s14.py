"""Functions for tests/test_monitor_sync_warning_s14.py, run in 2 spawned gloo processes (importable by name)."""

from __future__ import annotations

import datetime
import gc
import json
import os
import warnings
from pathlib import Path

import torch
import torch.distributed as dist


def sync_warning_worker(rank: int, world: int, port: int, out: str, sync: str) -> None:
    """A DDP loop of 5 steps whose monitor is built with ``sync_loss`` = ``sync`` ("unset", "true", "false"); writes
    the lrkit warnings the rank saw."""
    import lrkit
    from lrkit.monitor import MonitorWarning

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=40))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    kw = {} if sync == "unset" else {"sync_loss": sync == "true"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor = lrkit.Monitor(model, opt, **kw)
        for _ in range(5):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1))
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
    seen = [[w.category.__name__, str(w.message), os.path.basename(w.filename)] for w in caught
            if issubclass(w.category, MonitorWarning)]
    Path(out, f"{sync}{rank}.json").write_text(json.dumps({"warnings": seen, "steps": monitor.step + 1}))
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
