"""Review 21e: an exception part-way through a forward pass under FSDP2 (gloo, 2 CPU ranks).

FSDP2's root module does not reshard after its forward (its backward would all-gather the parameters again). When a
forward stops on an exception part-way (a module raising on a batch, a ``KeyboardInterrupt``), the root is left in
its forward state, where ``reshard()`` keeps its parameters unsharded: ``model.parameters()`` are plain tensors, not
the DTensors the snapshot holds. ``find_lr`` and ``choose_lr0`` reshard before they restore, but that reshard left the
root as it was, so the restore failed with ``aten.copy_.default got mixed torch.Tensor and DTensor`` in place of the
model's own error, and the model was left as the range test (or a trial) had trained it. torch's recovery for an
exception mid-forward or mid-backward is the root's ``reset_iter_state()``: the clean-up calls it on that way out.
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
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from _helpers import free_port, init_gloo, outcome
from test_fsdp_walk_s21c import NEEDS_FSDP2

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")

#: The process group's timeout (seconds): a rank left waiting fails the test after this, not after 30 minutes.
TIMEOUT = 60.0


class _Raising(torch.nn.Module):
    """Passes its input through; raises once ``calls`` reaches ``fail_at``, or on a pass without gradients (a
    validation pass) when ``fail_in_eval``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.fail_at: int | None = None
        self.fail_in_eval = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if (self.fail_at is not None and self.calls >= self.fail_at) or (
                self.fail_in_eval and not torch.is_grad_enabled()):
            raise RuntimeError("the model's own error, part-way through its forward")
        return x


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(8, 32)
        self.raising = _Raising()
        self.head = torch.nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.raising(self.body(x)).relu())


def _full(t: Any) -> Any:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: _full(v.detach()).clone() for k, v in model.named_parameters()}


def _sched(o: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 - s / steps)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    from torch.distributed.fsdp import fully_shard

    import lrkit
    from lrkit.train.auto import choose_lr0

    init_gloo(rank, world, port, seconds=TIMEOUT)
    record: dict[str, Any] = {}
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(256, 8, generator=g)
        ds = TensorDataset(x, x[:, :2].sum(1, keepdim=True))
        loader = DataLoader(ds, batch_size=16, sampler=DistributedSampler(ds, seed=0))
        val = DataLoader(ds, batch_size=64, sampler=DistributedSampler(ds, shuffle=False))
        mse = torch.nn.functional.mse_loss
        torch.manual_seed(0)
        net = _Net()
        fully_shard(net.body)
        model = fully_shard(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def case(name: str, call: Any) -> None:
            before = _params(model)
            got = outcome(call)
            net.raising.fail_at, net.raising.fail_in_eval = None, False
            types = sorted({type(p).__name__ for p in model.parameters()})
            try:
                restored: Any = all(torch.equal(before[k], v) for k, v in _params(model).items())
            except Exception as e:  # recorded for the test to read
                restored = repr(e)
            # and training goes on: one step on the model as the call left it
            step = outcome(lambda: (mse(model(x[:16]), x[:16, :2].sum(1, keepdim=True)).backward(), opt.step(),
                                    opt.zero_grad()))
            record[name] = {"error": got["error"], "types": types, "restored": restored, "step": step["error"]}

        def find_lr_raising() -> Any:
            net.raising.calls, net.raising.fail_at = 0, 4  # the 4th forward pass of the range test
            return lrkit.find_lr(model, opt, loader, loss_fn=mse, num_steps=20).suggestion

        def choose_lr0_raising_in_validation() -> Any:
            net.raising.fail_in_eval = True  # the trials' validation pass
            return choose_lr0(model, opt, loader, val, total_steps=600, make_scheduler=_sched, loss_fn=mse).lr

        case("find_lr", find_lr_raising)
        case("choose_lr0", choose_lr0_raising_in_validation)
    finally:
        Path(out, f"{rank}.json").write_text(json.dumps(record))
        dist.barrier()
        os._exit(0)  # leave without the process group's teardown (torch 2.13's gloo can abort there)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("review21e")
    try:
        mp.spawn(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    except Exception:  # a rank that failed: the tests read how far each got
        pass
    return [json.loads((out / f"{r}.json").read_text()) if (out / f"{r}.json").exists() else {} for r in range(2)]


@NEEDS_FSDP2
@pytest.mark.parametrize("call", ["find_lr", "choose_lr0"])
def test_an_exception_mid_forward_under_fsdp2_is_raised_as_it_is_and_the_model_restored(
        ranks: list[dict[str, Any]], call: str) -> None:
    for rank, record in enumerate(ranks):
        assert call in record, (rank, record)
        got = record[call]
        # the model's own error, not the restore's "mixed torch.Tensor and DTensor"
        assert got["error"] == "RuntimeError: the model's own error, part-way through its forward", (rank, got)
        assert got["types"] == ["DTensor"], (rank, got)  # every parameter sharded again, as the optimizer holds them
        assert got["restored"] is True, (rank, got)
        assert got["step"] is None, (rank, got)  # the next training step runs


def test_choose_lr0_logs_a_range_test_whose_lrs_are_fractions() -> None:
    """``finder_kwargs`` ``start_lr`` / ``end_lr`` that ``find_lr`` takes (any real number, a ``Fraction`` too) must not
    break the log line said before the range test: a ``TypeError`` there ("unsupported format string passed to
    Fraction.__format__") was raised after choose_lr0's settings check and before the range test's, so under
    torch.distributed the other ranks waited in the range test's settings check for the process group's timeout."""
    from fractions import Fraction

    from lrkit.train.auto import choose_lr0

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(8)]
    lines: list[str] = []
    auto = choose_lr0(model, torch.optim.Adam(model.parameters()), data, data[:2], total_steps=400,
                      make_scheduler=_sched, log=lines.append, finder_kwargs={"start_lr": Fraction(1, 10**6)})
    assert auto.lr > 0
    assert any(line.startswith("lr0=auto: range test of ") and "1e-06.." in line for line in lines), lines
