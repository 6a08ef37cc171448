"""Gradient accumulation under DistributedDataParallel (session 24): find_lr's range test and lr0="auto"'s trials
average the gradients over the ranks once per optimizer step, at its last micro-batch (``no_sync()`` on the others),
as a training loop does — they all-reduced after every micro-batch before, k times the communication — with the same
curve up to rounding, and the wrapper's sync flag put back whatever happens (2 CPU ranks on gloo)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _helpers import init_gloo, leave_rank, spawn_ranks

ACCUMULATE = 3


def _data(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(10 + rank)  # each rank its own shard
    x = torch.randn(96, 6, generator=g)
    y = x @ torch.linspace(-1, 1, 6) + 0.1 * torch.randn(96, generator=g)
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, 96, 8)]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))


def _counting(model: nn.Module) -> tuple[nn.Module, list[int]]:
    """``model`` in DDP with a comm hook that counts the all-reduces of its gradient buckets."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    ddp = nn.parallel.DistributedDataParallel(model)
    calls: list[int] = []

    # a lambda: torch refuses a hook whose bucket annotation is not dist.GradBucket (a string, under this module's
    # postponed annotations)
    ddp.register_comm_hook(None, lambda state, bucket: calls.append(1) or allreduce_hook(state, bucket))
    return ddp, calls


def _worker(rank: int, world: int, port: int, out: str) -> None:
    init_gloo(rank, world, port, seconds=60)
    import lrkit
    import lrkit.finder.range_test as rt
    from lrkit.train.auto import choose_lr0

    record: dict[str, Any] = {}
    for defer in (True, False):
        if not defer:  # the behaviour before: an all-reduce after every micro-batch
            rt._defers_sync = lambda model: False
        ddp, calls = _counting(_model())
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
        result = lrkit.find_lr(ddp, opt, _data(rank), loss_fn=nn.functional.mse_loss, num_steps=12,
                               accumulation_steps=ACCUMULATE, end_lr=1.0)
        record[f"find_{defer}"] = {"losses": [float(v) for v in result.losses], "calls": len(calls),
                                   "steps": len(result.losses), "synced": ddp.require_backward_grad_sync}
        calls.clear()
        lines: list[str] = []
        auto = choose_lr0(ddp, opt, _data(rank), _data(rank + 5)[:3], total_steps=400,
                          make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 - s / n),
                          loss_fn=nn.functional.mse_loss, accumulate=ACCUMULATE, budget=0.3, log=lines.append)
        record[f"choose_{defer}"] = {"lr": auto.lr, "calls": len(calls), "steps": auto.extra_steps,
                                     "trials": [[t.lr, t.val_loss] for t in auto.trials],
                                     "synced": ddp.require_backward_grad_sync, "plan": lines[0]}
    rt._defers_sync = lambda model: isinstance(model, nn.parallel.DistributedDataParallel)

    # an error in a micro-batch that runs under no_sync: the wrapper syncs again afterwards (it is the user's model)
    ddp, calls = _counting(_model())
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    seen = [0]

    def step_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        seen[0] += 1
        if seen[0] == 2 * ACCUMULATE + 1:  # the first micro-batch of the third step
            raise RuntimeError("a bad batch")
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    try:
        lrkit.find_lr(ddp, opt, _data(rank), step_fn=step_fn, num_steps=12, accumulation_steps=ACCUMULATE)
        record["error"] = None
    except RuntimeError as e:
        record["error"] = str(e)
    record["synced_after_error"] = ddp.require_backward_grad_sync
    leave_rank(out, rank, record)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("no_sync")
    return spawn_ranks(_worker, out)


def test_the_range_test_all_reduces_once_per_optimizer_step(ranks: list[dict[str, Any]]) -> None:
    for got in ranks:
        now, before = got["find_True"], got["find_False"]
        assert now["calls"] == now["steps"]  # one bucket, one all-reduce per step
        assert before["calls"] == ACCUMULATE * before["steps"]
        assert now["losses"] == pytest.approx(before["losses"], rel=1e-5)  # the same gradients, up to rounding
        assert now["synced"] and before["synced"]
    assert ranks[0]["find_True"]["losses"] == ranks[1]["find_True"]["losses"]


def test_the_trials_all_reduce_once_per_optimizer_step(ranks: list[dict[str, Any]]) -> None:
    for got in ranks:
        now, before = got["choose_True"], got["choose_False"]
        assert now["calls"] == now["steps"] and before["calls"] == ACCUMULATE * before["steps"]
        assert now["lr"] == pytest.approx(before["lr"], rel=1e-5) and now["synced"]
        assert [t[0] for t in now["trials"]] == pytest.approx([t[0] for t in before["trials"]], rel=1e-5)
    assert ranks[0]["choose_True"] == ranks[1]["choose_True"]
    # the plan line counts the rank's own loader: "(12 batches per rank)", not the whole data's
    assert "passes over train_loader (12 batches per rank)" in ranks[0]["choose_True"]["plan"]


def test_an_error_inside_a_deferred_micro_batch_leaves_the_wrapper_syncing(ranks: list[dict[str, Any]]) -> None:
    for got in ranks:
        assert got["error"] is not None and "a bad batch" in got["error"]
        assert got["synced_after_error"] is True
