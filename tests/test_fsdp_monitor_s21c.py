"""lrkit.Monitor under FSDP2 (``fully_shard``, 2 gloo ranks), session 21c: the gradient checks read the global norm.

Under FSDP2 the gradients are DTensors sharded over the ranks, and the norm of a DTensor read with ``.item()`` is this
rank's shard's alone. The monitor's gradient norm was then each rank's own: a gradient blow-up (or an inf) in one
rank's shard made that rank alone clip, roll back and back off its LR while the other stepped on — ranks deciding
apart, which the monitor's ``torch.distributed`` support exists to prevent. Now every DTensor norm is reduced over the
ranks (one collective on a full step) and every rank takes the same action at the same step.
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
from test_fsdp_walk_s21c import NEEDS_FSDP2, _Blow, _full, _Separable, _spawn

pytestmark = [pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed"),
              NEEDS_FSDP2]


def _one_shard_worker(rank: int, world: int, port: int, out: str) -> None:
    from torch.distributed.fsdp import fully_shard

    import lrkit

    init_gloo(rank, world, port, seconds=60)
    record: dict[str, Any] = {}
    try:
        for case, factor in (("spike", 1e4), ("inf", float("inf"))):
            torch.manual_seed(0)
            model = fully_shard(_Separable())
            opt = torch.optim.SGD(model.parameters(), lr=0.05)
            mon = lrkit.Monitor(model, opt, sync_loss=True, grad_every=1)
            for step in range(30):
                g = torch.Generator().manual_seed(1000 * rank + step)
                x = torch.randn(16, 8, generator=g)
                # rank 0's backward blows up the first half of w's gradient: after FSDP2's reduce-scatter the blow-up
                # sits in rank 0's shard only (the loss, the same on every rank through sync_loss, does not show it)
                _Blow.factor = factor if (step == 25 and rank == 0) else 1.0
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), 0.5 * x)
                loss.backward()
                mon.after_backward(loss)
                opt.step()
                mon.after_step()
            _Blow.factor = 1.0
            record[case] = {"events": [(e.step, e.check, e.action) for e in mon.events],
                            "lr": opt.param_groups[0]["lr"], "rollbacks": mon.rollbacks,
                            "weights": _full(model.w.detach()).tolist()}
    finally:
        Path(out, f"{rank}.json").write_text(json.dumps(record))
        dist.barrier()
        os._exit(0)


def test_a_gradient_blow_up_in_one_ranks_shard_is_acted_on_by_every_rank(tmp_path: Path) -> None:
    ranks = _spawn(_one_shard_worker, tmp_path)
    assert all("inf" in r for r in ranks), ranks
    for case in ("spike", "inf"):
        got = [r[case] for r in ranks]
        assert got[0]["events"] and all(e[0] == 25 for e in got[0]["events"]), got[0]["events"]
        assert got[0]["events"] == got[1]["events"], (case, got)
        assert got[0]["lr"] == got[1]["lr"] < 0.05 and got[0]["rollbacks"] == got[1]["rollbacks"] == 1, (case, got)
        assert all(map(float.__eq__, *[map(float, g["weights"]) for g in got]))
    assert [e[1] for e in ranks[0]["inf"]["events"]] == ["non_finite"]


def _val_worker(rank: int, world: int, port: int, out: str) -> None:
    """A validation pass (forward without backward) leaves FSDP2's root unsharded; the monitor's best-validation
    snapshot taken right after it, and the val_rising rollback that restores it, must see the sharded parameters."""
    import warnings

    from torch.distributed.fsdp import fully_shard

    import lrkit

    init_gloo(rank, world, port, seconds=60)
    record: dict[str, Any] = {}
    try:
        torch.manual_seed(0)
        model = fully_shard(torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mon = lrkit.Monitor(model, opt, sync_loss=True)
            g = torch.Generator().manual_seed(rank)
            x = torch.randn(32, 8, generator=g)
            y = x.sum(1, keepdim=True).sin()
            vals = [1.0, 0.9, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
            best = None
            for step in range(80):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                mon.after_backward(loss)
                opt.step()
                mon.after_step()
                if step % 10 == 9:
                    with torch.no_grad():
                        model(x)  # the validation pass: forward only
                    if step == 29:
                        best = [_full(p.detach()).clone() for p in model.parameters()]
                    mon.after_validation(vals[step // 10])
                if mon.events:
                    break
        record["events"] = [(e.step, e.check, e.action) for e in mon.events]
        record["types"] = sorted({type(p).__name__ for p in model.parameters()})  # (the rollback resharded it)
        record["back_at_best"] = best is not None and all(
            torch.equal(_full(p.detach()), b) for p, b in zip(model.parameters(), best))
        record["warnings"] = [str(w.message)[:200] for w in caught if "lrkit" in str(w.message) or "Monitor" in
                              str(w.message)]
        # a checkpoint written right after a validation pass holds every parameter's copy, and loads after one
        with torch.no_grad():
            model(x)
        state = mon.state_dict(snapshot=True)
        record["saved"] = [t is not None for t in state["healthy"]["params"] + state["best_val"]["params"]]
        with torch.no_grad():
            model(x)  # (a monitor built right after a forward-only pass: no "unrelated model" warning)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = lrkit.Monitor(model, opt, sync_loss=True)
        again.load_state_dict(state)
        record["loaded"] = again.summary() == mon.summary()
    except Exception as e:
        import traceback
        record["error"] = f"{type(e).__name__}: {e}"[:500] + traceback.format_exc()[-1500:]
    finally:
        Path(out, f"{rank}.json").write_text(json.dumps(record))
        dist.barrier()
        os._exit(0)


def test_a_validation_rollback_after_a_forward_only_pass_restores_the_sharded_model(tmp_path: Path) -> None:
    ranks = _spawn(_val_worker, tmp_path)
    for r in ranks:
        assert "error" not in r, r
        assert [e[1] for e in r["events"]] == ["val_rising"], r
        assert r["types"] == ["DTensor"] and r["back_at_best"], r
        assert not r["warnings"], r
        assert r["saved"] == [True] * 8 and r["loaded"], r
    assert ranks[0]["events"] == ranks[1]["events"]
