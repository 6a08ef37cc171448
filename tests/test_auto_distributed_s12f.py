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

from _dist_s12f import worker
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
