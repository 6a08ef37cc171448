"""Session 35: a failure on one rank only, after the first step, under torch.distributed (gloo, 2 CPU ranks, DDP).

- ``find_lr``: rank 1's loader failing at a later step (a sample its dataset cannot load, a one-shot iterator
  shorter than rank 0's) raised there at once while rank 0 went on into DDP's gradient all-reduce and waited for the
  process group's timeout, then raised gloo's bare "Timed out waiting ... for recv". Each step's next batches are now
  drawn before the step's loss all-reduce, which carries a failure flag per rank: every rank stops at that step.
- ``choose_lr0``'s trials: the same, for a loader failing on one rank during a trial.
- ``choose_lr0``'s scoring on ``val_loader``: a batch the model or loss rejects on rank 1's shard only left rank 0 in
  the scoring pass's all-reduce until the timeout; the all-reduce now carries the failure flag too.
- ``choose_lr0`` with a one-shot ``val_loader`` that is empty on one rank only (a BatchNorm model, so DDP broadcasts
  buffers at the first eval forward): the ranks' collectives paired up wrongly and both waited for the timeout; it is
  now refused on that rank before any step, and the other ranks stop naming it.

Every rank keeps its record in ``<tmp>/<scenario>.<rank>.json``; the process group's timeout is short, so a rank left
waiting fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from _helpers import free_port, init_gloo

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")

TIMEOUT = 30.0  # the process group's timeout: a rank left waiting fails the test after this

F = torch.nn.functional


def _data(n: int = 128) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


class _CorruptAfter(Dataset):
    """``_data()``, except that on rank 1 the ``after``-th sample read and every later one fail to load (a corrupt
    file in that rank's shard)."""

    def __init__(self, rank: int, after: int) -> None:
        self.base, self.rank, self.after, self.reads = _data(), rank, after, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Any:
        self.reads += 1
        if self.rank == 1 and self.reads > self.after:
            raise OSError(f"sample {i} on rank 1 is corrupt")
        return self.base[i]


def _constant(optimizer: torch.optim.Optimizer, steps: int) -> Any:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)


def _run(rank: int, scenario: str) -> Any:
    import lrkit
    from lrkit.train.auto import choose_lr0

    ds = _data()
    loader = DataLoader(ds, batch_size=16, sampler=DistributedSampler(ds, seed=0))
    torch.manual_seed(0)
    bn = scenario == "empty_val_iterator"
    net = (torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)) if bn
           else torch.nn.Linear(6, 2))
    model = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    call: Any
    if scenario == "find_lr_corrupt_sample":  # rank 1's 7th batch (16 samples each) fails to load
        corrupt = _CorruptAfter(rank, after=16 * 6)
        bad = DataLoader(corrupt, batch_size=16, sampler=DistributedSampler(corrupt, seed=0))
        call = lambda: lrkit.find_lr(model, opt, bad, loss_fn=F.cross_entropy, num_steps=20,
                                     diverge_factor=None)
    elif scenario == "find_lr_short_iterator":  # rank 1's one-shot iterator has 4 batches, rank 0's 12
        batches = iter(list(loader) * (3 if rank == 0 else 1))
        call = lambda: lrkit.find_lr(model, opt, batches, loss_fn=F.cross_entropy, num_steps=10,
                                     diverge_factor=None)
    elif scenario == "trial_loader_fails":  # past the range test's 20 batches, in the first trial

        def stream() -> Any:  # endless, a one-shot generator
            drawn = 0
            while True:
                for b in loader:
                    drawn += 1
                    if rank == 1 and drawn > 24:
                        raise OSError("a sample on rank 1 is corrupt")
                    yield b

        call = lambda: choose_lr0(model, opt, stream(), None, total_steps=1000, make_scheduler=_constant,
                                  loss_fn=F.cross_entropy, finder_kwargs={"num_steps": 20, "diverge_factor": None})
    elif scenario == "val_batch_raises":  # rank 1's validation batches have a feature missing
        val: Any = list(DataLoader(ds, batch_size=32))
        if rank == 1:
            val = [(x[:, :5], y) for x, y in val]
        call = lambda: choose_lr0(model, opt, loader, val, total_steps=1000, make_scheduler=_constant,
                                  loss_fn=F.cross_entropy)
    elif scenario == "empty_val_iterator":  # rank 1's one-shot val_loader yields nothing
        val = iter(list(DataLoader(ds, batch_size=32)) if rank == 0 else [])
        call = lambda: choose_lr0(model, opt, loader, val, total_steps=1000, make_scheduler=_constant,
                                  loss_fn=F.cross_entropy)
    else:
        raise AssertionError(scenario)
    torch.manual_seed(100 + rank)  # each rank's own RNG, which the call must give back
    rng = torch.get_rng_state()
    record: dict[str, Any] = {}
    start = time.monotonic()
    try:
        call()
        record["error"] = None
    except Exception as e:  # the outcome under test
        record["error"] = f"{type(e).__name__}: {e}"
    record["seconds"] = time.monotonic() - start
    record["restored"] = all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    record["rng_restored"] = torch.equal(torch.get_rng_state(), rng)
    # the ranks are still in step: a valid call afterwards runs and agrees
    record["after"] = lrkit.find_lr(model, opt, loader, loss_fn=F.cross_entropy, num_steps=10).suggestion
    return record


def _worker(rank: int, world: int, port: int, out: str, scenario: str) -> None:
    import warnings

    warnings.simplefilter("ignore")
    init_gloo(rank, world, port, seconds=TIMEOUT)
    record: dict[str, Any] = {}
    try:
        record = _run(rank, scenario)
    except Exception as e:  # (the record says how far it got)
        record["worker_error"] = f"{type(e).__name__}: {e}"
    finally:
        Path(out, f"{scenario}.{rank}.json").write_text(json.dumps(record))
        try:
            dist.barrier()
        finally:
            os._exit(0)


def _spawn(tmp_path: Path, scenario: str) -> list[dict[str, Any]]:
    try:
        mp.spawn(_worker, args=(2, free_port(), str(tmp_path), scenario), nprocs=2, join=True)
    except Exception:  # a rank that failed: the records say how far each got
        pass
    files = [tmp_path / f"{scenario}.{r}.json" for r in range(2)]
    ranks = [json.loads(f.read_text()) if f.exists() else {} for f in files]
    for r in ranks:  # every rank stopped at once, gave everything back, and is still in step with the other
        assert "worker_error" not in r, ranks
        assert r.get("seconds", TIMEOUT) < TIMEOUT / 2, ranks
        assert r["restored"] and r["rng_restored"], ranks
    assert ranks[0]["after"] == ranks[1]["after"], ranks
    return ranks


@pytest.mark.parametrize(
    ("scenario", "own"),
    [("find_lr_corrupt_sample", "OSError: sample"),
     ("find_lr_short_iterator", "ValueError: train_loader ran out after 4 batches")],
)
def test_find_lr_stops_every_rank_when_one_ranks_loader_fails_at_a_later_step(
    tmp_path: Path, scenario: str, own: str
) -> None:
    ranks = _spawn(tmp_path, scenario)
    assert ranks[1]["error"].startswith(own), ranks  # rank 1's own error
    assert ranks[0]["error"].startswith(
        "ValueError: find_lr under torch.distributed (rank 0 of 2) stopped on every rank: train_loader failed to give "
        "the next step's batches on rank 1 (see that rank's error"), ranks


def test_choose_lr0_stops_every_rank_when_one_ranks_loader_fails_in_a_trial(tmp_path: Path) -> None:
    ranks = _spawn(tmp_path, "trial_loader_fails")
    assert ranks[1]["error"] == "OSError: a sample on rank 1 is corrupt", ranks
    assert ranks[0]["error"].startswith(
        "ValueError: choose_lr0 under torch.distributed (rank 0 of 2) stopped on every rank: train_loader failed to "
        "give the next step's batches on rank 1"), ranks


def test_choose_lr0_stops_every_rank_when_scoring_raises_on_one_rank(tmp_path: Path) -> None:
    ranks = _spawn(tmp_path, "val_batch_raises")
    assert ranks[1]["error"].startswith("RuntimeError: mat1 and mat2 shapes cannot be multiplied"), ranks
    assert ranks[0]["error"].startswith(
        "ValueError: choose_lr0 under torch.distributed (rank 0 of 2) stopped on every rank: scoring on val_loader "
        "raised on rank 1 (see that rank's error"), ranks


def test_choose_lr0_refuses_a_one_shot_val_loader_empty_on_one_rank(tmp_path: Path) -> None:
    ranks = _spawn(tmp_path, "empty_val_iterator")
    assert ranks[1]["error"].startswith(
        "ValueError: val_loader yielded no batches (it is a one-shot list_iterator that yielded nothing)"), ranks
    assert ranks[0]["error"].startswith(
        "ValueError: choose_lr0 under torch.distributed (rank 0 of 2) stopped on every rank before any step: the "
        "arguments of rank 1 failed"), ranks
