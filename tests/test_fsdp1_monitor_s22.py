"""lrkit.Monitor under FSDP1 (``FullyShardedDataParallel``, 2 gloo ranks), session 22: the gradient checks and the
update-to-weight ratio read the norms over every rank's shard.

Under FSDP1 each rank's gradients (and parameters) are its shard of the flat parameter, plain tensors: a norm over
them is this rank's part alone. A gradient blow-up in one rank's shard made that rank alone roll back its shard and
back off its LR while the other stepped on — the shards then came from different steps and the ranks trained at
different LRs, silently. With ``sync_loss`` given (every rank runs the same full steps) the monitor now sums the
squared norms over the shard group (one scalar all-reduce on a full step), as FSDP1's own ``clip_grad_norm_`` does.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from _helpers import init_gloo
from test_fsdp_walk_s21c import _Blow, _Separable, _spawn

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")


def _full_w(model: Any) -> list[float]:
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(model):
        return model.module.w.detach().clone().tolist() if hasattr(model, "module") else []


def _worker(rank: int, world: int, port: int, out: str) -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy

    import lrkit

    init_gloo(rank, world, port, seconds=60)
    record: dict[str, Any] = {}
    try:
        for orig in (True, False):
            for case, factor in (("spike", 1e4), ("inf", float("inf"))):
                torch.manual_seed(0)
                model = FullyShardedDataParallel(_Separable(), device_id=torch.device("cpu"), use_orig_params=orig,
                                                 sharding_strategy=ShardingStrategy.FULL_SHARD)
                opt = torch.optim.SGD(model.parameters(), lr=0.05)
                mon = lrkit.Monitor(model, opt, sync_loss=True, grad_every=1, sample_every=5)
                norms = []
                for step in range(30):
                    g = torch.Generator().manual_seed(1000 * rank + step)
                    x = torch.randn(16, 8, generator=g)
                    # rank 0's backward blows up the first half of w's gradient: after FSDP1's reduce-scatter the
                    # blow-up sits in rank 0's shard only (the loss, the same on every rank by sync_loss, does not)
                    _Blow.factor = factor if (step == 25 and rank == 0) else 1.0
                    opt.zero_grad()
                    loss = torch.nn.functional.mse_loss(model(x), 0.5 * x)
                    loss.backward()
                    mon.after_backward(loss)
                    opt.step()
                    mon.after_step()
                    norms.append(mon.record.window("grad_norm", 1)[0])
                _Blow.factor = 1.0
                # the global norm of step 3's gradient, from both ranks' shards: read from the record
                record[f"{case}-{orig}"] = {
                    "events": [(e.step, e.check, e.action) for e in mon.events],
                    "lr": opt.param_groups[0]["lr"], "rollbacks": mon.rollbacks,
                    "norms": norms[:20], "ratios": list(mon.record.window("update_ratio", 100)),
                    "weights": _full_w(model)}
    except Exception as e:
        import traceback
        record["error"] = f"{type(e).__name__}: {e}"[:500] + traceback.format_exc()[-1500:]
    finally:
        Path(out, f"{rank}.json").write_text(json.dumps(record))
        dist.barrier()
        os._exit(0)


def test_a_gradient_blow_up_in_one_ranks_fsdp1_shard_is_acted_on_by_every_rank(tmp_path: Path) -> None:
    ranks = _spawn(_worker, tmp_path)
    assert all("error" not in r for r in ranks), [r.get("error") for r in ranks]
    for orig in (True, False):
        for case in ("spike", "inf"):
            got = [r[f"{case}-{orig}"] for r in ranks]
            assert got[0]["events"] and all(e[0] == 25 for e in got[0]["events"]), got[0]["events"]
            assert got[0]["events"] == got[1]["events"], (case, orig, got)
            assert got[0]["lr"] == got[1]["lr"] < 0.05, (case, orig, got)
            assert got[0]["rollbacks"] == got[1]["rollbacks"] == 1, (case, orig, got)
            # every rank read the same (global) gradient norm and update ratio at every step
            assert got[0]["norms"] == got[1]["norms"], (case, orig)
            assert got[0]["ratios"] and got[0]["ratios"] == got[1]["ratios"], (case, orig)
    assert [e[1] for e in ranks[0]["inf-True"]["events"]] == ["non_finite"]


def _empty_shard_worker(rank: int, world: int, port: int, out: str) -> None:
    """A model smaller than the world: rank 1's shard of the flat parameter is padding only, so it has no gradient
    at all. It still joins every sum the other rank's full steps and update-ratio samples make (it skipped the
    sample, and rank 0 waited for it at the first one until the process group timed out)."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    import lrkit

    init_gloo(rank, world, port, seconds=30)
    record: dict[str, Any] = {}
    try:
        torch.manual_seed(0)
        model = FullyShardedDataParallel(torch.nn.Linear(1, 1, bias=False), device_id=torch.device("cpu"),
                                         use_orig_params=True)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        mon = lrkit.Monitor(model, opt, sync_loss=True, grad_every=1, sample_every=5)
        for step in range(12):
            x = torch.randn(4, 1, generator=torch.Generator().manual_seed(step))
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), 0.5 * x)
            loss.backward()
            mon.after_backward(loss)
            opt.step()
            mon.after_step()
        record["has_grad"] = any(p.grad is not None for p in model.parameters())
        record["ratios"] = list(mon.record.window("update_ratio", 100))
        record["norms"] = list(mon.record.window("grad_norm", 100))
    except Exception as e:
        record["error"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        Path(out, f"{rank}.json").write_text(json.dumps(record))
        os._exit(0)


def test_a_rank_whose_fsdp1_shard_holds_no_gradient_joins_the_samples(tmp_path: Path) -> None:
    ranks = _spawn(_empty_shard_worker, tmp_path)
    assert all(r and "error" not in r for r in ranks), ranks
    assert [r["has_grad"] for r in ranks] == [True, False]
    assert len(ranks[0]["ratios"]) >= 2 and ranks[0]["ratios"] == ranks[1]["ratios"]
    assert ranks[0]["norms"] == ranks[1]["norms"] and all(n > 0 for n in ranks[0]["norms"])
