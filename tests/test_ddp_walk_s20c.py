"""A practitioner's walk through lrkit under torch.distributed on CPU (gloo, 2 ranks), session 20c.

What the walk found, each tested here on 2 spawned gloo processes:

* Ranks given different settings for the range test (``num_steps``, ``end_lr``, ``accumulation_steps``, ...) ran
  different tests: a different ``end_lr`` returned a *different* suggestion on each rank without a word (the README
  promises the same one), a different ``num_steps`` or ``accumulation_steps`` left one rank in the test while the
  other went on, ending in gloo's bare "Connection reset by peer" or a timeout. Now every rank raises the same
  ``ValueError`` naming each differing setting with every rank's value, before any step is taken.
* The same for ``choose_lr0`` (``total_steps``, ``budget``, ... decide how many trial steps run), and an empty
  ``val_loader`` on one rank raised there at once while the other rank waited for the process group's timeout and then
  blamed a missing ``find_lr`` call; now every rank raises, naming the rank whose shard is empty.
* A loader without a ``DistributedSampler`` gives every rank the same batches: the test then runs at one rank's batch
  size, not the global one, with nothing said. Now ``find_lr`` warns when every rank's first batch is the same.
* ``find_lr(model.module, ...)`` (the model without its DDP wrapper) in a process group: nothing averages the
  gradients, each rank's copy steps on its own shard and the curve is the mean of separate tests, with nothing said.
  Now it warns when the first step's gradients differ between ranks.
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
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

from _helpers import free_port, init_gloo, outcome


def _outcome_user(fn: Any) -> dict[str, Any]:
    """:func:`outcome` with lrkit's UserWarnings only (not torch's own deprecation notes)."""
    return outcome(fn, UserWarning)


pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")


def _data(n: int = 400) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x[:, :2].sum(1) > 0).long())


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    return torch.nn.parallel.DistributedDataParallel(net)




def _settings_worker(rank: int, world: int, port: int, out: str) -> None:
    """Several calls in a row on the same group: each mismatch must leave the ranks in step for the next call."""
    import lrkit
    from lrkit.train.auto import choose_lr0

    init_gloo(rank, world, port)
    ds = _data()
    loader = DataLoader(ds, batch_size=16, sampler=DistributedSampler(ds, seed=0))
    val = DataLoader(ds, batch_size=50, sampler=DistributedSampler(ds, shuffle=False))
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def sched(o: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 - s / steps)

    cases = {
        "end_lr": lambda: lrkit.find_lr(model, opt, loader, num_steps=20, end_lr=10.0 if rank == 0 else 0.1).suggestion,
        "num_steps": lambda: lrkit.find_lr(model, opt, loader, num_steps=20 + 10 * rank).suggestion,
        "accumulation": lambda: lrkit.find_lr(model, opt, loader, num_steps=20, accumulation_steps=1 + rank,
                                              diverge_factor=None if rank else 4.0).suggestion,
        "same": lambda: lrkit.find_lr(model, opt, loader, num_steps=20).suggestion,
        "auto_total_steps": lambda: choose_lr0(model, opt, loader, val, total_steps=200 + 200 * rank,
                                               make_scheduler=sched).lr,
        "auto_empty_val": lambda: choose_lr0(model, opt, loader, val if rank == 0 else [], total_steps=200,
                                             make_scheduler=sched).lr,
        "auto_same": lambda: choose_lr0(model, opt, loader, val, total_steps=200, make_scheduler=sched).lr,
    }
    record: dict[str, Any] = {}
    for name, fn in cases.items():
        record[name] = _outcome_user(fn)
        record[name]["restored"] = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        Path(out, f"{rank}.json").write_text(json.dumps(record))  # what was reached, also if a later case hangs
    dist.barrier()
    os._exit(0)  # leave without the process group's teardown (gloo can abort there)


@pytest.fixture(scope="module")
def settings_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("settings")
    try:
        mp.spawn(_settings_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    except Exception:  # a rank that failed: the tests below read how far each got
        pass
    return [json.loads((out / f"{r}.json").read_text()) if (out / f"{r}.json").exists() else {} for r in range(2)]


@pytest.mark.parametrize("case, named", [
    ("end_lr", ["end_lr: rank 0 10.0, rank 1 0.1"]),
    ("num_steps", ["num_steps: rank 0 20, rank 1 30"]),
    ("accumulation", ["accumulation_steps: rank 0 1, rank 1 2", "diverge_factor: rank 0 4.0, rank 1 None"]),
])
def test_ranks_with_different_find_lr_settings_all_raise_naming_them(settings_ranks: list[dict[str, Any]], case: str,
                                                                     named: list[str]) -> None:
    for record in settings_ranks:
        got = record[case]
        assert got["error"] is not None and got["error"].startswith("ValueError: find_lr under torch.distributed"), got
        for text in named:
            assert text in got["error"]
        assert "the same settings on every rank" in got["error"]
        assert got["restored"]


def test_the_ranks_stay_in_step_after_a_mismatch(settings_ranks: list[dict[str, Any]]) -> None:
    same = [record["same"] for record in settings_ranks]
    assert all(s["error"] is None for s in same), same
    assert same[0]["value"] == same[1]["value"]


def test_choose_lr0_with_different_total_steps_raises_on_every_rank(settings_ranks: list[dict[str, Any]]) -> None:
    for record in settings_ranks:
        got = record["auto_total_steps"]
        assert got["error"] is not None and got["error"].startswith("ValueError: choose_lr0 under torch.distributed")
        assert "total_steps: rank 0 200, rank 1 400" in got["error"]
        assert got["restored"]


def test_choose_lr0_with_an_empty_val_shard_raises_on_every_rank_at_once(settings_ranks: list[dict[str, Any]]) -> None:
    own, other = settings_ranks[1]["auto_empty_val"], settings_ranks[0]["auto_empty_val"]
    assert own["error"] is not None and "val_loader yielded no batches" in own["error"]
    assert other["error"] is not None and "rank 1's val_loader has no batches" in other["error"], other
    assert "timed out" not in other["error"].lower()
    auto = [record["auto_same"] for record in settings_ranks]
    assert all(a["error"] is None for a in auto) and auto[0]["value"] == auto[1]["value"], auto


def _same_data_worker(rank: int, world: int, port: int, out: str) -> None:
    import lrkit

    init_gloo(rank, world, port)
    ds = _data()
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    record = {
        "unsharded": _outcome_user(lambda: lrkit.find_lr(model, opt, DataLoader(ds, batch_size=16), num_steps=20,
                                                    accumulation_steps=2).suggestion),
        "sharded": _outcome_user(lambda: lrkit.find_lr(model, opt, DataLoader(ds, batch_size=16,
                                                                         sampler=DistributedSampler(ds)),
                                                  num_steps=20).suggestion),
        # shards cut by hand (no DistributedSampler) are sharded all the same
        "subset": _outcome_user(lambda: lrkit.find_lr(model, opt, DataLoader(Subset(ds, range(rank, 400, 2)),
                                                                        batch_size=16), num_steps=20).suggestion),
        # the model without its DDP wrapper: each rank's copy steps alone
        "unwrapped": _outcome_user(lambda: lrkit.find_lr(model.module, opt, DataLoader(ds, batch_size=16,
                                                                                  sampler=DistributedSampler(ds)),
                                                    num_steps=20).suggestion),
        # ... the same on the same data on every rank: only the unsharded data is said (the gradients agree)
        "unwrapped_unsharded": _outcome_user(lambda: lrkit.find_lr(model.module, opt, DataLoader(ds, batch_size=16),
                                                              num_steps=20).suggestion),
    }
    Path(out, f"{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    os._exit(0)


def test_every_rank_reading_the_same_data_is_warned_about(tmp_path: Path) -> None:
    mp.spawn(_same_data_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        record = json.loads((tmp_path / f"{rank}.json").read_text())
        assert all(record[k]["error"] is None for k in record), record
        same = [w for w in record["unsharded"]["warnings"] if "the same first batch" in w]
        assert len(same) == 1, record["unsharded"]["warnings"]
        assert "DistributedSampler" in same[0] and "2 ranks" in same[0]
        for case in ("sharded", "subset"):
            assert not [w for w in record[case]["warnings"] if "the same first batch" in w], record[case]


def test_a_model_without_its_ddp_wrapper_is_warned_about(tmp_path: Path) -> None:
    mp.spawn(_same_data_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        record = json.loads((tmp_path / f"{rank}.json").read_text())
        unwrapped = [w for w in record["unwrapped"]["warnings"] if "not wrapped" in w]
        assert len(unwrapped) == 1, record["unwrapped"]["warnings"]
        assert "DistributedDataParallel" in unwrapped[0] and "model.module" in unwrapped[0]
        for case in ("sharded", "subset", "unsharded", "unwrapped_unsharded"):
            assert not [w for w in record[case]["warnings"] if "not wrapped" in w], record[case]
        assert [w for w in record["unwrapped_unsharded"]["warnings"] if "the same first batch" in w]
        assert record["unwrapped"]["value"] is not None
