"""``Monitor(sync_loss=None)``, the default since session 14, warns once under torch.distributed.

A per-rank loss lets the ranks decide apart (one skips or rolls back, the others do not; a stop leaves them waiting in
DDP's all-reduce), and nothing said so: the README documented it. Unset, the monitor now says so once per rank at the
first ``after_backward`` of a process group of more than one rank; ``True`` or ``False`` silence it.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lrkit
from _dist_s14 import sync_warning_worker
from _helpers import free_port

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")


@pytest.mark.parametrize("sync", ["unset", "true", "false"])
def test_unset_sync_loss_warns_once_per_rank_under_distributed(tmp_path: Path, sync: str) -> None:
    mp.spawn(sync_warning_worker, args=(2, free_port(), str(tmp_path), sync), nprocs=2, join=True)
    for rank in range(2):
        record = json.loads((tmp_path / f"{sync}{rank}.json").read_text())
        assert record["steps"] == 5
        if sync != "unset":
            assert record["warnings"] == []
            continue
        assert len(record["warnings"]) == 1
        category, text, filename = record["warnings"][0]
        assert category == "MonitorWarning" and filename == "_dist_s14.py"  # points at the loop's call
        assert "torch.distributed (2 ranks) with sync_loss unset" in text
        assert "sync_loss=True" in text and "sync_loss=False" in text


def test_unset_sync_loss_outside_distributed_is_silent_and_false() -> None:
    from lrkit.monitor import MonitorWarning

    model = torch.nn.Linear(2, 1)
    monitor = lrkit.Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert monitor.sync_loss is False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            model(torch.ones(1, 2)).sum().backward()
            monitor.after_backward(1.0)
            monitor.after_step()
    assert not [w for w in caught if issubclass(w.category, MonitorWarning)] and monitor.step == 2
    with pytest.raises(ValueError, match=r"sync_loss='yes' must be True or False \(or None"):
        lrkit.Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), sync_loss="yes")
