"""Session 21a: a bad argument on one rank only, under torch.distributed (gloo, 2 CPU ranks).

``find_lr`` and ``choose_lr0`` check their arguments before their first collective (the settings check, one small
all-reduce). When a check failed on one rank only (``num_steps=0``, ``start_lr=-1``, ``rule="nonsense"``, a
``train_loader`` that is not a loader, a misspelt keyword, ``budget=-1``, a bad ``finder_kwargs`` value ...), that
rank raised its clear error at once while the other ranks went on into the settings check and waited there for the
process group's timeout (30 minutes by default), then blamed a missing call. Now the failing rank takes part in the
settings check as a failed rank (``lrkit._dist.same_settings(failed=...)``), so every other rank stops at once with a
``ValueError`` naming the call and the failing rank; the failing rank's own error is the one it raises without a
process group.

The cases run in a row on one process group, so each must also leave the ranks in step. Before the fix rank 1 ran on
to its next case while rank 0 waited in the first one: a collective mismatch (gloo aborts) or, at worst, a wait of
:data:`TIMEOUT` seconds (a short process-group timeout), never the default 30 minutes.
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

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")

#: The process group's timeout (seconds): a rank left waiting fails the test after this, not after 30 minutes.
TIMEOUT = 60.0


def _data(n: int = 256) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x[:, :2].sum(1) > 0).long())


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def _sched(o: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 - s / steps)


#: find_lr's cases: the keyword arguments rank 1 passes (rank 0 passes none of them); ``None`` values are filled in.
FIND_LR_BAD = {
    "num_steps": {"num_steps": 0},
    "start_lr": {"start_lr": -1.0},
    "rule": {"rule": "nonsense"},
    "train_loader": {"train_loader": 3},  # not a loader: refused by the argument check
    "mode": {"mode": 7},  # not a name: refused before the settings table could hold it
    "keyword": {"num_step": 20},  # a misspelt keyword: find_lr's TypeError, before its body runs
}

#: choose_lr0's cases, as for find_lr: its own arguments, and find_lr's through finder_kwargs (checked by the range
#: test it runs: rank 0 is then in find_lr's settings check), and the budget checks after choose_lr0's settings check.
CHOOSE_LR0_BAD = {
    "budget": {"budget": -1.0},
    "total_steps": {"total_steps": 0},
    "finder_rule": {"finder_kwargs": {"rule": "nonsense"}},
    "finder_amp": {"finder_kwargs": {"amp": "fp8"}},
    "finder_num_steps": {"finder_kwargs": {"num_steps": 500}},  # over the budget of 0.3 x 200 steps
}


def _find_lr_call(model: torch.nn.Module, opt: torch.optim.Optimizer, loader: Any, bad: dict[str, Any]) -> Any:
    import lrkit

    kwargs = {"num_steps": 20, **bad}
    train_loader = kwargs.pop("train_loader", loader)
    return lrkit.find_lr(model, opt, train_loader, **kwargs).suggestion


def _choose_lr0_call(model: torch.nn.Module, opt: torch.optim.Optimizer, loader: Any, val: Any,
                     bad: dict[str, Any]) -> Any:
    from lrkit.train.auto import choose_lr0

    return choose_lr0(model, opt, loader, val, make_scheduler=_sched, **{"total_steps": 200, **bad}).lr


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """Every case in a row on one process group: each must stop both ranks at once and leave them in step."""
    init_gloo(rank, world, port, seconds=TIMEOUT)
    ds = _data()
    loader = DataLoader(ds, batch_size=16, sampler=DistributedSampler(ds, seed=0))
    val = DataLoader(ds, batch_size=64, sampler=DistributedSampler(ds, shuffle=False))
    model = torch.nn.parallel.DistributedDataParallel(_model())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    cases: dict[str, Any] = {}
    for name, bad in FIND_LR_BAD.items():
        cases[f"find_lr:{name}"] = lambda bad=bad: _find_lr_call(model, opt, loader, bad if rank == 1 else {})
    for name, bad in CHOOSE_LR0_BAD.items():
        cases[f"choose_lr0:{name}"] = lambda bad=bad: _choose_lr0_call(model, opt, loader, val,
                                                                       bad if rank == 1 else {})
    cases.update({
        # both ranks' checks fail: each raises its own error (both take part in the settings check)
        "find_lr:both": lambda: _find_lr_call(model, opt, loader, {"num_steps": 5 + rank}),
        # rank 1 fails, rank 0 passes with other settings: the failure is said, not the difference
        "find_lr:fail_and_differ": lambda: _find_lr_call(model, opt, loader, {"rule": "nonsense"} if rank else
                                                         {"end_lr": 1.0}),
        # valid but different settings: today's "different settings" error on every rank
        "find_lr:differ": lambda: _find_lr_call(model, opt, loader, {"end_lr": 10.0 if rank == 0 else 1.0}),
        "choose_lr0:differ": lambda: _choose_lr0_call(model, opt, loader, val, {"budget": 0.3 + 0.1 * rank}),
        # an empty val_loader shard on rank 1: named on rank 0 as before
        "choose_lr0:empty_val": lambda: _choose_lr0_call(model, opt, loader, val if rank == 0 else [], {}),
        # an empty train_loader shard on rank 1: stopped by the first batches' check, as before
        "find_lr:empty_train": lambda: _find_lr_call(model, opt, loader if rank == 0 else [], {}),
        # and the ranks are still in step: a valid call runs on both
        "find_lr:same": lambda: _find_lr_call(model, opt, loader, {}),
        "choose_lr0:same": lambda: _choose_lr0_call(model, opt, loader, val, {}),
    })
    record: dict[str, Any] = {}
    for name, fn in cases.items():
        record[name] = outcome(fn, UserWarning)
        record[name]["restored"] = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        Path(out, f"{rank}.json").write_text(json.dumps(record))  # what was reached, also if a later case hangs
    dist.barrier()
    os._exit(0)  # leave without the process group's teardown (torch 2.13's gloo can abort there)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("distval")
    try:
        mp.spawn(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    except Exception:  # a rank that failed: the tests below read how far each got
        pass
    return [_Record(json.loads((out / f"{r}.json").read_text()) if (out / f"{r}.json").exists() else {}, r)
            for r in range(2)]


class _Record(dict):  # type: ignore[type-arg]
    """A rank's outcomes by case; a case it never finished (it hung, or a collective mismatch killed it) fails the
    test with that said, not a bare KeyError."""

    def __init__(self, outcomes: dict[str, Any], rank: int) -> None:
        super().__init__(outcomes)
        self.rank = rank

    def __missing__(self, case: str) -> Any:
        pytest.fail(f"rank {self.rank} did not finish case {case!r} (reached: {list(self)})")


def _alone(call: Any) -> str:
    """The error ``call()`` raises without a process group (what the failing rank must raise as it is)."""
    got = outcome(call)
    assert got["error"] is not None, got
    return str(got["error"])


def _assert_others_told(got: dict[str, Any], call: str) -> None:
    assert got["error"] is not None, got
    assert got["error"].startswith(f"ValueError: {call} under torch.distributed"), got["error"]
    assert "rank 1" in got["error"] and "see that rank's error" in got["error"], got["error"]
    assert "timed out" not in got["error"].lower() and "rank 0" not in got["error"].replace("rank 0 of 2", ""), got
    assert got["restored"]


@pytest.mark.parametrize("case", list(FIND_LR_BAD))
def test_a_bad_find_lr_argument_on_one_rank_stops_every_rank(ranks: list[dict[str, Any]], case: str) -> None:
    own, other = ranks[1][f"find_lr:{case}"], ranks[0][f"find_lr:{case}"]
    ds = _data()
    alone = _alone(lambda: _find_lr_call(_model(), torch.optim.SGD(_model().parameters(), lr=0.1),
                                         DataLoader(ds, batch_size=16), FIND_LR_BAD[case]))
    assert own["error"] == alone  # the failing rank's own error, as without a process group
    _assert_others_told(other, "find_lr")


@pytest.mark.parametrize("case", list(CHOOSE_LR0_BAD))
def test_a_bad_choose_lr0_argument_on_one_rank_stops_every_rank(ranks: list[dict[str, Any]], case: str) -> None:
    own, other = ranks[1][f"choose_lr0:{case}"], ranks[0][f"choose_lr0:{case}"]
    ds = _data()
    model = _model()
    alone = _alone(lambda: _choose_lr0_call(model, torch.optim.SGD(model.parameters(), lr=0.1),
                                            DataLoader(ds, batch_size=16), DataLoader(ds, batch_size=64),
                                            CHOOSE_LR0_BAD[case]))
    assert own["error"] == alone
    _assert_others_told(other, "choose_lr0")


def test_checks_failing_on_every_rank_each_raise_their_own_error(ranks: list[dict[str, Any]]) -> None:
    for rank, record in enumerate(ranks):
        assert record["find_lr:both"]["error"] is not None
        assert record["find_lr:both"]["error"].startswith(f"ValueError: num_steps={5 + rank}"), record["find_lr:both"]


def test_a_failure_is_said_before_a_difference(ranks: list[dict[str, Any]]) -> None:
    assert "'nonsense'" in ranks[1]["find_lr:fail_and_differ"]["error"]
    _assert_others_told(ranks[0]["find_lr:fail_and_differ"], "find_lr")


def test_valid_settings_that_differ_still_name_the_difference_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    for record in ranks:
        got = record["find_lr:differ"]
        assert got["error"] is not None and got["error"].startswith("ValueError: find_lr under torch.distributed"), got
        assert "end_lr: rank 0 10.0, rank 1 1.0" in got["error"]
        got = record["choose_lr0:differ"]
        assert got["error"] is not None and "budget: rank 0 0.3, rank 1 0.4" in got["error"], got


def test_empty_shards_are_still_named_and_the_ranks_stay_in_step(ranks: list[dict[str, Any]]) -> None:
    own, other = ranks[1]["choose_lr0:empty_val"], ranks[0]["choose_lr0:empty_val"]
    assert own["error"] is not None and "val_loader yielded no batches" in own["error"], own
    assert other["error"] is not None and "rank 1's val_loader has no batches" in other["error"], other
    own, other = ranks[1]["find_lr:empty_train"], ranks[0]["find_lr:empty_train"]
    assert own["error"] is not None and own["error"].startswith("ValueError: on rank 1:"), own
    assert other["error"] is not None and "rank 1 could not give its first batch" in other["error"], other
    for call in ("find_lr:same", "choose_lr0:same"):
        same = [record[call] for record in ranks]
        assert all(s["error"] is None for s in same), same
        assert same[0]["value"] == same[1]["value"]
