"""Review 21f of sessions 21c (Monitor under FSDP2) and 21d (Monitor in accelerate hand loops).

* ``_unscale`` unscaled the ``.optimizer`` of any wrapper holding the same GradScaler as ``.scaler`` — meant for
  accelerate's ``AcceleratedOptimizer`` (which steps ``scaler.step(self.optimizer)``). A user's AMP wrapper stepped
  with ``scaler.step(wrapper)`` then had its gradients unscaled twice (the scaler saw the wrapper still READY): every
  step ``scale`` times too small. Only accelerate's class is read through now.
* Under FSDP2 with ``sync_loss`` unset (the default) each rank decides its full steps from its own loss; the DTensor
  norm reduction (a collective) then ran on the rank whose loss spiked and not on the other: a collective mismatch
  (both ranks failed at the process group's timeout), where before each rank decided apart (what the unset
  ``sync_loss`` warning says). The norms are reduced over the ranks only when ``sync_loss`` is given (True, or False
  for a loop passing the same loss on every rank), as the ranks then take the same full steps.
* The FSDP2 modules the monitor reshards were read once, when it was built: an FSDP2 root added later (a head
  ``fully_shard``-ed and given to ``add_param_group``) stayed unsharded after a validation pass, and
  ``state_dict(snapshot=True)`` then saved its unsharded plain tensors as the model's and its DTensors as parameters
  "outside the model": loading it failed. They are read again when the param groups change.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.distributed.fsdp
import torch.multiprocessing as mp

import lrkit
from _helpers import free_port, init_gloo


class _ScalerHolding(torch.optim.Optimizer):
    """A user's AMP wrapper (not accelerate's): holds its GradScaler as ``.scaler`` and the optimizer it wraps as
    ``.optimizer``, shares its param groups and state, and is stepped by the loop as ``scaler.step(wrapper)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
        self.optimizer = optimizer
        self.scaler = scaler
        self.defaults = optimizer.defaults
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        return self.optimizer.step(closure)



NEEDS_FSDP2 = pytest.mark.skipif(not hasattr(torch.distributed.fsdp, "fully_shard"),
                                 reason=f"torch {torch.__version__} has no torch.distributed.fsdp.fully_shard")

def _amp_run(monitored: bool) -> torch.Tensor:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    opt = _ScalerHolding(torch.optim.SGD(model.parameters(), lr=0.1), scaler)
    mon = lrkit.Monitor(model, opt, grad_scaler=scaler, grad_every=1) if monitored else None
    x = torch.randn(16, 4)
    y = x.sum(1, keepdim=True)
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        if mon is not None:
            mon.after_backward(loss)
        scaler.step(opt)
        scaler.update()
        if mon is not None:
            mon.after_step()
    return model.weight.detach().clone()


def test_a_users_wrapper_holding_the_scaler_is_unscaled_once() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone, monitored = _amp_run(False), _amp_run(True)
    assert torch.equal(alone, monitored), (alone, monitored)


def _unsynced_worker(rank: int, world: int, port: int, out: str) -> None:
    from torch.distributed.fsdp import fully_shard

    init_gloo(rank, world, port, seconds=60)
    record: dict[str, Any] = {}
    try:
        for case in ("unset", "false"):
            torch.manual_seed(0)
            model = fully_shard(torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)))
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mon = lrkit.Monitor(model, opt, sync_loss=None if case == "unset" else False)
                g = torch.Generator().manual_seed(rank)
                x = torch.randn(32, 8, generator=g)
                y = x.sum(1, keepdim=True).sin()
                for step in range(140):
                    opt.zero_grad()
                    # past the dense start (full steps on every rank alike): rank 0's loss alone spikes, a full step
                    # on rank 0 only when each rank passes its own loss
                    spike = 50.0 if (rank == 0 and step in (131, 132)) else 1.0
                    loss = torch.nn.functional.mse_loss(model(x * spike), y)
                    loss.backward()
                    if case == "false":  # the loop passes the same (averaged) loss on every rank
                        loss = loss.detach().clone()
                        dist.all_reduce(loss)
                        loss = loss / world
                    mon.after_backward(loss)
                    opt.step()
                    mon.after_step()
            record[case] = {"steps": step + 1, "events": [(e.step, e.check, e.action) for e in mon.events]}
    except Exception as e:
        record["error"] = f"{type(e).__name__}: {e}"[:400]
    finally:
        Path(out, f"{rank}.json").write_text(json.dumps(record))
        dist.barrier()
        os._exit(0)


@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")
@NEEDS_FSDP2
def test_fsdp2_with_a_per_rank_loss_takes_no_collective_on_one_rank_only(tmp_path: Path) -> None:
    try:
        mp.spawn(_unsynced_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    except Exception:  # a rank that failed: read how far each got
        pass
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) if (tmp_path / f"{r}.json").exists() else {}
             for r in range(2)]
    for r in ranks:
        assert "error" not in r and r.get("unset", {}).get("steps") == 140, ranks
    # sync_loss=False with the same loss on every rank: the ranks still act together (the norms are reduced)
    assert ranks[0]["false"] == ranks[1]["false"], ranks
    assert ranks[0]["false"]["steps"] == 140 and ranks[0]["false"]["events"], ranks


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(8, 32)
        self.head: torch.nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.body(x))
        return self.head(h) if self.head is not None else h.mean(1, keepdim=True)


def _late_worker(rank: int, world: int, port: int, out: str) -> None:
    from torch.distributed.fsdp import fully_shard

    init_gloo(rank, world, port, seconds=60)
    record: dict[str, Any] = {}
    try:
        torch.manual_seed(0)
        model = _Net()
        fully_shard(model.body)
        opt = torch.optim.SGD(model.body.parameters(), lr=0.05, momentum=0.9)
        mon = lrkit.Monitor(model, opt, sync_loss=True)
        model.head = fully_shard(torch.nn.Linear(32, 1))  # an FSDP2 root of its own, added after the monitor
        opt.add_param_group({"params": list(model.head.parameters())})
        g = torch.Generator().manual_seed(rank)
        x = torch.randn(32, 8, generator=g)
        y = x.sum(1, keepdim=True).sin()
        for _ in range(20):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            mon.after_backward(loss)
            opt.step()
            mon.after_step()
        with torch.no_grad():
            model(x)  # a validation pass: forward only (both roots left unsharded)
        mon.after_validation(1.0)
        state = mon.state_dict(snapshot=True)
        record["saved"] = [type(t).__name__ for t in state["healthy"]["params"] + state["best_val"]["params"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = lrkit.Monitor(model, opt, sync_loss=True)
        again.load_state_dict(state)
        record["loaded"] = again.summary() == mon.summary()
    except Exception as e:
        record["error"] = f"{type(e).__name__}: {e}"[:400]
    finally:
        Path(out, f"{rank}.json").write_text(json.dumps(record))
        dist.barrier()
        os._exit(0)


@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")
@NEEDS_FSDP2
def test_an_fsdp2_module_added_after_the_monitor_is_resharded_before_a_snapshot_is_saved(tmp_path: Path) -> None:
    try:
        mp.spawn(_late_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    except Exception:
        pass
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) if (tmp_path / f"{r}.json").exists() else {}
             for r in range(2)]
    for r in ranks:
        assert "error" not in r and r.get("loaded") is True, ranks
        assert r["saved"] == ["DTensor"] * 8, ranks
