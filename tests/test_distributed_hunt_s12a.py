"""lrkit under torch.distributed as a DDP user writes it (session 12, s12a): 2 CPU processes on gloo, one spawn.

- ``lrkit.Monitor`` in a DDP loop (each rank its own shard, the loss all-reduced before ``after_backward``): a loss
  spike on one rank's batch makes both ranks take the same action at the same step and leaves the parameters
  bit-identical on both ranks — rollback with a torch scheduler, skip with ``gradient_as_bucket_view=True``, rollback
  with BatchNorm, ``no_sync()`` gradient accumulation and ``after_validation`` (the README's claim).
- ``find_lr`` under DDP with a ``DistributedSampler`` (its epoch kept), dict batches through ``step_fn``, two param
  groups, ``accumulation_steps=2``, ``amp="bf16"`` and BatchNorm with ``broadcast_buffers``: the same curve on both
  ranks, and training after the test is bit for bit training without it.
- ``torch.distributed.optim.ZeroRedundancyOptimizer`` (the optimizer state sharded in an inner optimizer): the range
  test and the monitor's rollback restore that inner optimizer's state too.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.optim import ZeroRedundancyOptimizer

import lrkit
from _helpers import SAMStyle, free_port

F = torch.nn.functional


def _flat(tensors: Any) -> torch.Tensor:
    return torch.cat([t.detach().double().flatten() for t in tensors])


def _same_on_every_rank(t: torch.Tensor) -> bool:
    """Whether ``t`` is bit for bit rank 0's."""
    mine = t.detach().double().flatten().clone()
    theirs = mine.clone()
    dist.broadcast(theirs, 0)
    return bool(torch.equal(mine, theirs))


def _mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / dist.get_world_size()


def _net(bn: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [torch.nn.Linear(8, 16)]
    if bn:
        layers.append(torch.nn.BatchNorm1d(16))
    return torch.nn.Sequential(*layers, torch.nn.Tanh(), torch.nn.Linear(16, 1))


def _monitor_run(rank: int, *, action: str, bucket_view: bool = False, sched: str | None = None, accum: int = 1,
                 bn: bool = False, zero: bool = False, steps: int = 60, spike: int = 30) -> dict[str, Any]:
    """A DDP loop with a monitor; rank 1's batch at step ``spike`` has its targets blown up (a bad batch)."""
    model = torch.nn.parallel.DistributedDataParallel(_net(bn), gradient_as_bucket_view=bucket_view)
    if zero:
        opt: torch.optim.Optimizer = ZeroRedundancyOptimizer(
            model.parameters(), optimizer_class=torch.optim.Adam, lr=1e-2)
    elif sched == "onecycle":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler: Any = None
    if sched == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps)
    elif sched == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(opt, 20, 0.5)
    monitor = lrkit.Monitor(model, opt, scheduler=scheduler, on_divergence=action, spike_grace=0, snapshot_every=10)
    g = torch.Generator().manual_seed(rank)  # each rank its own shard
    x = torch.randn(steps * accum * 16, 8, generator=g)
    y = x.sum(1, keepdim=True)
    actions = []
    for step in range(steps):
        opt.zero_grad(set_to_none=not bucket_view)
        total = torch.zeros(())
        for m in range(accum):
            i = (step * accum + m) * 16
            xb, yb = x[i:i + 16], y[i:i + 16]
            if step == spike and rank == 1:
                yb = yb * 30 + 30
            with model.no_sync() if m < accum - 1 else torch.enable_grad():  # DDP syncs the last micro-batch only
                loss = F.mse_loss(model(xb), yb) / accum
                loss.backward()
            total += loss.detach()
        monitor.after_backward(_mean_over_ranks(total))  # the same loss on every rank
        opt.step()
        if scheduler is not None:
            scheduler.step()
        monitor.after_step()
        actions.append(monitor.last_action)
        if step % 20 == 19:  # the same validation loss on every rank
            with torch.no_grad():
                monitor.after_validation(_mean_over_ranks(F.mse_loss(model(x[:64]), y[:64])))
    params = _flat(model.parameters())
    out = {
        "events": [(e.step, e.check, e.action) for e in monitor.events],
        "actions": actions,
        "params_same_on_ranks": _same_on_every_rank(params),
        "params": params,
    }
    if bucket_view:  # DDP has made the grads its bucket's views again after the monitor set them to None
        out["bucket_views"] = len({p.grad.untyped_storage().data_ptr() for p in model.parameters()}) == 1
    del model, opt, monitor, scheduler
    gc.collect()
    return out


def _monitor_cases(rank: int) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, kw in {
        "rollback_onecycle": {"action": "rollback", "sched": "onecycle"},
        "skip_bucket_view": {"action": "skip", "bucket_view": True, "sched": "step"},
        "rollback_bn_nosync": {"action": "rollback", "bucket_view": True, "sched": "step", "accum": 2, "bn": True},
    }.items():
        run = _monitor_run(rank, **kw)
        run.pop("params")
        record[name] = run
    # ZeroRedundancyOptimizer(Adam) steps every parameter exactly as Adam does (each rank steps its shard and
    # broadcasts it); a rollback must therefore end where Adam's does
    adam = _monitor_run(rank, action="rollback", sched="step")
    zero = _monitor_run(rank, action="rollback", sched="step", zero=True)
    record["zero_rollback"] = {
        "events": [adam["events"], zero["events"]],
        "same_as_adam": bool(torch.equal(adam["params"], zero["params"])),
        "params_same_on_ranks": zero["params_same_on_ranks"],
    }
    return record


def _sharded_loader(rank: int, world: int) -> tuple[torch.utils.data.DataLoader, Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = (x @ torch.randn(8, generator=g)).unsqueeze(1)

    class Dicts(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(x)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"x": x[i], "y": y[i]}

    data = Dicts()
    sampler = torch.utils.data.distributed.DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=1)
    sampler.set_epoch(3)
    return torch.utils.data.DataLoader(data, batch_size=16, sampler=sampler), sampler


def _step_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.mse_loss(model(batch["x"]), batch["y"])


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, batches: list[Any]) -> None:
    for batch in batches:
        opt.zero_grad(set_to_none=False)
        _step_fn(model, batch).backward()
        opt.step()


def _finder_cases(rank: int, world: int) -> dict[str, Any]:
    """Train 2 steps, run find_lr, train 4 more; compare with the same 6 steps and no find_lr."""
    record: dict[str, Any] = {}
    for name, kw in {"dict_groups_accum_bf16": {"accumulation_steps": 2, "amp": "bf16"}, "zero": {}}.items():

        def make(name: str = name) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
            model = torch.nn.parallel.DistributedDataParallel(_net(bn=name != "zero"))
            if name == "zero":
                return model, ZeroRedundancyOptimizer(
                    model.parameters(), optimizer_class=torch.optim.Adam, lr=1e-2)
            first, rest = list(model.module[0].parameters()), list(model.module[1:].parameters())
            return model, torch.optim.AdamW([{"params": first, "lr": 1e-3}, {"params": rest, "lr": 1e-2}])

        loader, sampler = _sharded_loader(rank, world)
        batches = list(loader)[:6]
        model, opt = make()
        _train(model, opt, batches[:2])
        before = _flat([*model.parameters(), *model.buffers()])
        r = lrkit.find_lr(model, opt, loader, step_fn=_step_fn, num_steps=30, start_lr=1e-5, end_lr=1.0, **kw)
        restored = bool(torch.equal(before, _flat([*model.parameters(), *model.buffers()])))
        _train(model, opt, batches[2:])
        ref, ref_opt = make()
        _train(ref, ref_opt, batches)
        record[name] = {
            "restored": restored,
            "epoch": sampler.epoch,
            "curve_same_on_ranks": _same_on_every_rank(torch.tensor(r.losses)),
            "suggestion": r.suggestion,
            "training_matches": bool(torch.equal(_flat([*model.parameters(), *model.buffers()]),
                                                 _flat([*ref.parameters(), *ref.buffers()]))),
        }
        del model, opt, ref, ref_opt
        gc.collect()
    return record


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # the monitor's event warnings and the finder's curve notes
    record = {"monitor": _monitor_cases(rank), "finder": _finder_cases(rank, world)}
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    gc.collect()  # every DDP model freed while the group is alive (see tests/finder/test_distributed.py)
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One 2-process gloo run shared by the tests below."""
    out = tmp_path_factory.mktemp("ddp_s12a")
    mp.spawn(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


needs_gloo = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32",
                                reason="needs torch.distributed with gloo")


@needs_gloo
@pytest.mark.parametrize("case", ["rollback_onecycle", "skip_bucket_view", "rollback_bn_nosync"])
def test_monitor_takes_the_same_action_on_every_rank(ranks: list[dict[str, Any]], case: str) -> None:
    r0, r1 = ranks[0]["monitor"][case], ranks[1]["monitor"][case]
    assert r0["events"] and r0["events"][0][:2] == [30, "loss_spike"], r0["events"]  # the spike on rank 1 only
    assert r0["events"] == r1["events"]
    assert r0["actions"] == r1["actions"]
    assert r0["params_same_on_ranks"] and r1["params_same_on_ranks"]
    if "bucket_views" in r0:
        assert r0["bucket_views"] and r1["bucket_views"]


@needs_gloo
def test_find_lr_under_ddp_with_sampler_dicts_groups_accumulation_bf16(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = ranks[0]["finder"]["dict_groups_accum_bf16"], ranks[1]["finder"]["dict_groups_accum_bf16"]
    for r in (r0, r1):
        assert r["restored"] and r["curve_same_on_ranks"] and r["training_matches"], r
        assert r["epoch"] == 3  # the DistributedSampler's epoch is the one the loop set
    assert r0["suggestion"] == r1["suggestion"]


# Bug: ZeroRedundancyOptimizer keeps the optimizer state in an inner optimizer (its ``optim``: each rank's shard),
# which the snapshot did not capture: after find_lr the Adam moments and step counts were the range test's (up to
# lr=1), so training after the test silently differed from training without it.
@needs_gloo
def test_find_lr_restores_zero_redundancy_optimizer_state(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        zero = r["finder"]["zero"]
        assert zero["restored"] and zero["curve_same_on_ranks"], zero
        assert zero["training_matches"], zero


# Bug: the same for the monitor's rollback: the model went back to the healthy snapshot, the inner Adam state did not.
@needs_gloo
def test_monitor_rollback_restores_zero_redundancy_optimizer_state(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        zero = r["monitor"]["zero_rollback"]
        adam_events, zero_events = zero["events"]
        assert adam_events == zero_events and [30, "loss_spike", "rollback"] in adam_events
        assert zero["params_same_on_ranks"]
        assert zero["same_as_adam"]


# Bug (same cause, one process): an optimizer that wraps a base optimizer holding the Adam state (SAM's and
# Lookahead's ``base_optimizer``) left find_lr with that state changed.
def test_find_lr_restores_a_wrapped_base_optimizer_state() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = SAMStyle(model.parameters(), torch.optim.Adam, lr=1e-2)
    x = torch.randn(64, 4)
    data = [(x[i:i + 16], x[i:i + 16].sum(1, keepdim=True)) for i in range(0, 64, 16)]
    for xb, yb in data[:2]:
        opt.zero_grad()
        F.mse_loss(model(xb), yb).backward()
        opt.step()
    base_before = {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.base_optimizer.state.items()}
    lrkit.find_lr(model, opt, data, num_steps=20, start_lr=1e-4, end_lr=1.0, loss_fn=F.mse_loss)
    base_after = opt.base_optimizer.state
    assert len(base_after) == len(base_before) == 2
    for p in model.parameters():
        for k, v in base_before[id(p)].items():
            assert torch.equal(base_after[p][k], v), k
    assert opt.param_groups is opt.base_optimizer.param_groups  # the wrapper still shares its groups
