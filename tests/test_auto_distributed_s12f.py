"""Session 12: ``lr0="auto"`` (``choose_lr0``) under torch.distributed. Each trial's per-step loss (its divergence
check, the no-val_loader score) and each validation loss were each rank's own: ranks whose shards differ stopped a
trial at different steps or chose differently, and the others waited in DDP's next all-reduce until the process group
timed out. Both are now averaged over ranks (as ``find_lr``'s curve is), so every rank runs the same trials and
chooses the same LR. The spawned function lives in ``tests/_dist_s12f.py``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from _dist_s12f import monitor_worker, worker
from _helpers import free_port

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32",
                                reason="needs torch.distributed with gloo")


def _run(tmp_path: Path, val: bool) -> list[dict[str, Any]]:
    mp.spawn(worker, args=(2, free_port(), str(tmp_path), val), nprocs=2, join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize("val", [True, False], ids=["val_loader", "no_val_loader"])
def test_choose_lr0_makes_the_same_choice_on_every_rank(tmp_path: Path, val: bool) -> None:
    r0, r1 = _run(tmp_path, val)
    assert "error" not in r0 and "error" not in r1, (r0.get("error"), r1.get("error"))
    assert r0["trials"] == r1["trials"] and r0["lr"] == r1["lr"] and r0["reason"] == r1["reason"]
    assert r0["trials"] and "trial" in r0["reason"]  # a trial ran (not a budget too small for any)
    assert r0["log"] == r1["log"]


def test_monitor_sync_loss_takes_the_same_action_on_every_rank(tmp_path: Path) -> None:
    """``Monitor(sync_loss=True)``: each rank passes its own loss; a spike on one rank's batch is averaged in, so both
    ranks take the same action at the same step and end with the same weights (without it, only rank 1 acts)."""
    mp.spawn(monitor_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"monitor{r}.json").read_text()) for r in range(2))
    assert r0["events"] and r0["events"] == r1["events"]
    assert any(step == 30 for step, _, _ in r0["events"])  # the spike was acted on, on both ranks
    assert r0["weights"] == r1["weights"] and r0["lr"] == r1["lr"]


def test_sync_loss_without_a_process_group_changes_nothing() -> None:
    import torch

    import lrkit

    runs = []
    for sync in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        monitor = lrkit.Monitor(model, opt, sync_loss=sync)
        x, y = torch.randn(16, 4), torch.randn(16, 1)
        for step in range(40):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x * (30.0 if step == 25 else 1.0)), y)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
        runs.append(([(e.step, e.check, e.action) for e in monitor.events], model.weight.detach().clone()))
    assert runs[0][0] and runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    with pytest.raises(ValueError, match=r"sync_loss='yes' must be True or False"):
        lrkit.Monitor(torch.nn.Linear(1, 1), torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1),
                      sync_loss="yes")
