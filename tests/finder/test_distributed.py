"""Under torch.distributed every rank sees the same mean loss and returns the same suggestion (2 CPU procs, gloo)."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lrkit
from _helpers import free_port


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
    record = {"losses": r.losses, "suggestion": r.suggestion, "restored": restored, "local0": local0}
    # shards of different lengths (16 and 17 batches): each rank's own passes would lie either side of the gate (6)
    n = 256 + 16 * rank
    uneven = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:n], y[:n]), batch_size=16)
    ru = lrkit.find_lr(model, opt, uneven, num_steps=100, start_lr=1e-5, end_lr=10.0)
    record["uneven"] = {"passes": ru.passes, "own": ru.num_steps_run / len(uneven), "suggestion": ru.suggestion}
    record["bucket_view"] = _bucket_view_run(loader)
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    # Free every DDP model (and its reference to the gloo group) while the group is alive and both ranks are here:
    # a DDP object collected at interpreter exit, after destroy_process_group, can abort the process.
    del model, opt
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def _bucket_view_run(loader: torch.utils.data.DataLoader) -> dict[str, object]:
    """DDP with ``gradient_as_bucket_view=True``: the grads are views into DDP's communication bucket. Train 3 steps,
    run find_lr, train 4 more; and the same 7 steps without find_lr. Report what the grads are after find_lr."""

    def make() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        model = torch.nn.parallel.DistributedDataParallel(net, gradient_as_bucket_view=True)
        return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def train(model: torch.nn.Module, opt: torch.optim.Optimizer, batches: list) -> None:
        for xb, yb in batches:
            opt.zero_grad(set_to_none=False)  # in place: the grads stay the bucket's views
            torch.nn.functional.mse_loss(model(xb), yb).backward()
            opt.step()

    def storages(model: torch.nn.Module) -> list[int]:
        return [p.grad.untyped_storage().data_ptr() for p in model.parameters()]

    batches = list(loader)[:7]
    model, opt = make()
    train(model, opt, batches[:3])
    held = [p.grad for p in model.parameters()]
    ptrs = [g.data_ptr() for g in held]
    values = [g.clone() for g in held]
    shared_before = len(set(storages(model))) == 1  # one bucket: every grad a view of the same storage
    lrkit.find_lr(model, opt, loader, num_steps=20, start_lr=1e-4, end_lr=1.0)
    after = {
        "shared_before": shared_before,
        "shared_after": len(set(storages(model))) == 1,
        "same_objects": all(p.grad is g for p, g in zip(model.parameters(), held)),
        "same_ptrs": [p.grad.data_ptr() for p in model.parameters()] == ptrs,
        "same_values": all(torch.equal(p.grad, v) for p, v in zip(model.parameters(), values)),
    }
    train(model, opt, batches[3:])
    ref, ref_opt = make()
    train(ref, ref_opt, batches)
    after["training_matches"] = all(torch.equal(a, b) for a, b in zip(model.parameters(), ref.parameters()))
    after["still_views"] = [p.grad.data_ptr() for p in model.parameters()] == ptrs
    del model, opt, ref, ref_opt, held
    gc.collect()
    return after


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """One 2-process gloo run shared by the tests below (spawning costs a few seconds)."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


needs_gloo = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32",
                                reason="needs torch.distributed with gloo")


@needs_gloo
def test_every_rank_gets_the_same_curve_and_suggestion(ranks):
    r0, r1 = ranks
    assert r0["losses"] == r1["losses"]
    assert r0["suggestion"] == r1["suggestion"]
    assert r0["restored"] and r1["restored"]
    # the shards differ, so the shared value is the mean, not either rank's own
    assert r0["local0"] != r1["local0"]
    assert r0["losses"][0] == pytest.approx((r0["local0"] + r1["local0"]) / 2, rel=1e-6)


# Bug: find_lr restored the grads' values into new tensors, so under gradient_as_bucket_view=True the grads stopped
# being views of DDP's bucket (and anything holding the old .grad was cut off).
@needs_gloo
def test_bucket_view_grads_stay_bucket_views(ranks):
    for r in ranks:
        bv = r["bucket_view"]
        assert bv["shared_before"], "the set-up did not give bucket-view grads"
        assert bv["same_objects"] and bv["same_ptrs"] and bv["same_values"], bv
        assert bv["shared_after"] and bv["still_views"], bv
        assert bv["training_matches"], bv  # training after find_lr is bit-for-bit training without it


# Bug: each rank divided by its own len(train_loader), so uneven shards put the ranks either side of the passes gate
# (6.25 vs 5.88 passes) and the robust rule scaled the back-off on one rank only.
@needs_gloo
def test_every_rank_reads_the_same_passes(ranks):
    u0, u1 = ranks[0]["uneven"], ranks[1]["uneven"]
    assert u0["own"] != u1["own"]  # the shards really differ in length
    assert u0["passes"] == u1["passes"] == max(u0["own"], u1["own"])
    assert u0["suggestion"] == u1["suggestion"]
