"""Session 12, s12d: the inner optimizers' snapshots through ``Monitor.state_dict`` / ``load_state_dict`` (a resume
then a rollback, one process and 2 gloo ranks), LBFGS's closure under DDP (``find_lr`` and ``lr0="auto"``'s trial),
and a monitor state of one rank loaded on another. The spawned functions live in ``tests/_dist_s12d.py``.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lrkit
from _dist_s12d import monitored_run, worker
from _helpers import SAMStyle, free_port

needs_gloo = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32",
                                reason="needs torch.distributed with gloo")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One 2-process gloo run shared by the distributed tests below."""
    out = tmp_path_factory.mktemp("ddp_s12d")
    mp.spawn(worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the monitor's event warnings
        return fn(*args, **kwargs)


# Bug: Monitor.state_dict(snapshot=True) left out the snapshots of the optimizers the one passed wraps (SAM's and
# Lookahead's base_optimizer): after a resume, the rollback put the model and the wrapper back but left the base
# optimizer's Adam moments at the bad step's, so the resumed run ended elsewhere than the uninterrupted one.
def test_resume_then_rollback_with_a_wrapped_base_optimizer_is_bit_identical() -> None:
    plain = _quiet(monitored_run, "sam")
    resumed = _quiet(monitored_run, "sam", resume_at=22)
    assert [27, "loss_spike", "rollback"] in plain["events"]
    assert resumed["events"] == plain["events"]
    assert resumed["params"] == plain["params"]


# Bug: state_dict(snapshot=True) left out the optimizer state kept under keys that are not parameters (a global step
# counter); a rollback after the resume cleared the optimizer's state and put back the parameters' entries only, so
# that counter was gone (here: restarted from 0), where the uninterrupted run's rollback restored it.
def test_resume_then_rollback_keeps_optimizer_state_under_other_keys() -> None:
    plain = _quiet(monitored_run, "counting")
    resumed = _quiet(monitored_run, "counting", resume_at=22)
    assert [27, "loss_spike", "rollback"] in plain["events"]
    # 40 steps, those since the healthy snapshot at step 20 undone (not wiped: 13 steps are left after the rollback)
    assert 13 < plain["other_state"]["calls"] < 40
    assert resumed["other_state"] == plain["other_state"]
    assert resumed["params"] == plain["params"]

def _monitored_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> lrkit.Monitor:
    """A monitor over ``steps`` healthy steps of ``model`` on a fixed batch."""
    monitor = lrkit.Monitor(model, opt)
    for _ in range(steps):
        opt.zero_grad()
        loss = model(torch.ones(4, 2)).pow(2).mean()
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
    return monitor


def test_monitor_state_without_inner_snapshots_still_loads() -> None:
    """A state saved before the inner snapshots were kept (no ``"inner"`` key) loads: no inner snapshots, as then."""
    model = torch.nn.Linear(2, 1)
    opt = SAMStyle(model.parameters(), torch.optim.Adam, lr=1e-2)
    monitor = _monitored_steps(model, opt, 3)
    state = monitor.state_dict(snapshot=True)
    assert len(state["healthy"]["inner"]) == 1  # the base optimizer's
    del state["healthy"]["inner"]
    fresh = lrkit.Monitor(model, opt)
    fresh.load_state_dict(state)
    assert fresh._healthy is not None and fresh._healthy.snapshot.inner == []


def test_monitor_state_refuses_inner_snapshots_of_another_optimizer() -> None:
    """A state whose inner snapshots do not fit this optimizer's wrapped ones is refused, naming both counts."""
    model = torch.nn.Linear(2, 1)
    opt = SAMStyle(model.parameters(), torch.optim.Adam, lr=1e-2)
    monitor = _monitored_steps(model, opt, 1)
    state = monitor.state_dict(snapshot=True)
    plain = torch.optim.Adam(model.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match=r"1 wrapped optimizer.*has 0"):
        lrkit.Monitor(model, plain).load_state_dict(state)


# Bug (the same, under DDP): ZeroRedundancyOptimizer keeps each rank's shard of the Adam state in its inner ``optim``;
# after a resume (every rank loading its own monitor state) a rollback left that shard at the bad step's.
@needs_gloo
def test_zero_resume_then_rollback_is_bit_identical_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        plain, resumed = r["zero_plain"], r["zero_resumed"]
        assert [27, "loss_spike", "rollback"] in plain["events"]
        assert resumed["events"] == plain["events"]
        assert resumed["same_on_ranks"] and plain["same_on_ranks"]
        assert resumed["params"] == plain["params"]


# A checkpoint only rank 0 writes, loaded on every rank: with a replicated wrapper (SAM-style) that is fine, every
# rank's inner state is the same; with ZeRO each rank's inner state is its own shard, and rank 0's loaded on rank 1
# would roll rank 1's shard back to rank 0's moments. It is refused on every rank instead, with a message that says why.
@needs_gloo
def test_monitor_state_of_rank_0_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        assert r["sam_resumed_rank0"]["params"] == r["sam_plain"]["params"]
        assert r["sam_resumed_rank0"]["same_on_ranks"]
    assert ranks[0]["zero_rank0"] == {"error": None}  # rank 0's own state fits; it stops because rank 1 refused
    error = ranks[1]["zero_rank0"].get("error", "")
    assert "saved on rank 0" in error and "rank 1" in error and "each rank" in error, error


# Bug: find_lr's LBFGS closure returned each rank's own loss; LBFGS's strong-Wolfe line search (f_new against
# f + c1 t gtd) and its tolerance_change test read that loss, so the ranks took different numbers of closure
# evaluations, i.e. of DDP gradient all-reduces: gloo aborted the process with a collective mismatch ("Received data
# size doesn't match expected size"), or the ranks hung. The closure now returns the mean loss over ranks.
@needs_gloo
@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_find_lr_lbfgs_under_ddp_takes_the_same_steps_on_every_rank(ranks: list[dict[str, Any]],
                                                                   line_search: str | None) -> None:
    r0, r1 = (r["lbfgs"][f"find_lr_{line_search}"] for r in ranks)
    assert r0["calls"] == r1["calls"] > 15  # LBFGS evaluated the closure more than once per step
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == 15


# Bug (the same in lr0="auto"'s trial closure, with the strong-Wolfe line search).
@needs_gloo
def test_auto_trial_lbfgs_under_ddp_takes_the_same_steps_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["lbfgs"]["trial"] for r in ranks)
    assert r0["calls"] == r1["calls"] > 6
    assert r0["steps"] == r1["steps"] == 6
    assert r0["params"] == r1["params"]
