"""Review 24c of gradient accumulation under DistributedDataParallel (``no_sync()`` on all but the last micro-batch
of an optimizer step, session 24) and of the range test's quality words.

- A ``static_graph=True`` DDP: its first backward must all-reduce (torch's reducer fails an internal assert on
  ``expect_autograd_hooks_`` under ``no_sync()`` before it), so find_lr and choose_lr0 with accumulation raised
  on a fresh wrapper; the first micro-batch now syncs, the rest as before.
- ``torch.compile(DDP(model))`` (torch's recommended order) all-reduced after every micro-batch: its ``no_sync()``
  is the wrapper's, and now used.
- LBFGS: each closure evaluation re-runs the step's micro-batches and all-reduces once, at its last one.
"""

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
STEPS = 10


def _data(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(20 + rank)  # each rank its own shard
    x = torch.randn(96, 6, generator=g)
    y = x @ torch.linspace(-1, 1, 6) + 0.1 * torch.randn(96, generator=g)
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, 96, 8)]


def _counting(**ddp_kwargs: Any) -> tuple[nn.Module, list[int], list[int]]:
    """A small model in DDP, with a comm hook counting the all-reduces of its (one) gradient bucket and a forward
    hook counting its forwards."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))
    forwards: list[int] = []
    inner.register_forward_hook(lambda *_: forwards.append(1))
    ddp = nn.parallel.DistributedDataParallel(inner, **ddp_kwargs)
    calls: list[int] = []
    # a lambda: torch refuses a hook whose bucket annotation is not dist.GradBucket (a string here)
    ddp.register_comm_hook(None, lambda state, bucket: calls.append(1) or allreduce_hook(state, bucket))
    return ddp, calls, forwards


def _outcome(fn: Any) -> dict[str, Any]:
    try:
        return {"value": fn(), "error": None}
    except Exception as e:  # recorded for the test to show
        return {"value": None, "error": f"{type(e).__name__}: {e}"}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    init_gloo(rank, world, port, seconds=60)
    import warnings

    import lrkit

    warnings.simplefilter("ignore")
    record: dict[str, Any] = {}

    def find(model: nn.Module, ddp: nn.Module, make_opt: Any = None) -> dict[str, Any]:
        opt = (make_opt or (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)))(ddp.parameters())
        result = lrkit.find_lr(model, opt, _data(rank), loss_fn=nn.functional.mse_loss, num_steps=STEPS,
                               accumulation_steps=ACCUMULATE, end_lr=1.0)
        return {"losses": [float(v) for v in result.losses], "steps": len(result.losses)}

    def choose(ddp: nn.Module) -> float:
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
        auto = lrkit.choose_lr0(ddp, opt, _data(rank), _data(rank + 5)[:3], total_steps=300,
                                make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 - s / n),
                                loss_fn=nn.functional.mse_loss, accumulate=ACCUMULATE, budget=0.3)
        return float(auto.lr)

    ddp, calls, _ = _counting()
    record["plain"] = find(ddp, ddp)
    record["plain_choose"] = choose(ddp)

    ddp, calls, _ = _counting(static_graph=True)
    record["static"] = _outcome(lambda: find(ddp, ddp))
    record["static_calls"] = len(calls)
    ddp, calls, _ = _counting(static_graph=True)  # a fresh wrapper: choose_lr0's range test is its first backward
    record["static_choose"] = _outcome(lambda: choose(ddp))

    ddp, calls, _ = _counting()
    compiled = torch.compile(ddp, backend="eager")
    record["compiled"] = _outcome(lambda: find(compiled, ddp))
    record["compiled_calls"] = len(calls)
    record["compiled_synced"] = ddp.require_backward_grad_sync

    ddp, calls, forwards = _counting()
    record["lbfgs"] = _outcome(lambda: find(ddp, ddp, lambda p: torch.optim.LBFGS(p, lr=0.1, max_iter=3)))
    record["lbfgs_calls"], record["lbfgs_forwards"] = len(calls), len(forwards)
    leave_rank(out, rank, record)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("review_s24c")
    return spawn_ranks(_worker, out)


def test_a_static_graph_ddp_accumulates_from_its_first_step(ranks: list[dict[str, Any]]) -> None:
    for got in ranks:
        assert got["static"]["error"] is None and got["static_choose"]["error"] is None
        assert got["static"]["value"]["losses"] == pytest.approx(got["plain"]["losses"], rel=1e-5)
        # the first step syncs its first micro-batch too (the wrapper's first backward), then one per step
        assert got["static_calls"] == got["static"]["value"]["steps"] + 1
        assert got["static_choose"]["value"] == pytest.approx(got["plain_choose"], rel=1e-5)


def test_a_compiled_ddp_all_reduces_once_per_optimizer_step(ranks: list[dict[str, Any]]) -> None:
    for got in ranks:
        assert got["compiled"]["error"] is None
        assert got["compiled_calls"] == got["compiled"]["value"]["steps"]
        assert got["compiled"]["value"]["losses"] == pytest.approx(got["plain"]["losses"], rel=1e-5)
        assert got["compiled_synced"] is True


def test_each_lbfgs_closure_evaluation_syncs_once_at_its_last_micro_batch(ranks: list[dict[str, Any]]) -> None:
    for got in ranks:
        assert got["lbfgs"]["error"] is None
        assert got["lbfgs_calls"] * ACCUMULATE == got["lbfgs_forwards"]  # every evaluation: k forwards, one sync
        assert got["lbfgs_calls"] > got["lbfgs"]["value"]["steps"]  # (the closure evaluated more than once a step)
    assert ranks[0]["lbfgs"]["value"]["losses"] == ranks[1]["lbfgs"]["value"]["losses"]


def test_choose_lr0_puts_the_quality_words_back_when_its_range_test_raises() -> None:
    from lrkit.finder.range_test import _QUALITY_WORDS

    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(8)]

    def bad_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("a bad loss")

    with pytest.raises(ValueError, match="a bad loss"):
        import lrkit

        lrkit.choose_lr0(model, opt, batches, batches[:2], total_steps=200, loss_fn=bad_loss,
                         make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0))
    assert _QUALITY_WORDS.get() is None
