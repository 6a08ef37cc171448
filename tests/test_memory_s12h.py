"""Memory: lrkit's tools hold no more copies of the training state than they need (task s12h)."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

import lrkit
from lrkit import _state
from lrkit.finder import range_test
from lrkit.train.auto import choose_lr0


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1), torch.nn.Flatten(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(16, 4, generator=g), torch.randn(16, generator=g)) for _ in range(4)]
    x, y = data[0]
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()  # gradients and Adam state exist, as in the middle of a training
    return model, opt, data


def _choose(model: torch.nn.Module, opt: torch.optim.Optimizer, data: list) -> lrkit.train.auto.AutoLR:
    return choose_lr0(model, opt, data, None, total_steps=100, make_scheduler=lambda o, n: LambdaLR(o, lambda s: 1.0),
                      budget=0.4, num_candidates=2, finder_kwargs={"num_steps": 12}, log=lambda line: None)


def _count_captures(monkeypatch: pytest.MonkeyPatch, model: torch.nn.Module) -> list[int]:
    """Count the snapshots of ``model`` taken (each one a full copy of its parameters, gradients, optimizer state)."""
    calls: list[int] = []
    original = _state.Snapshot.capture.__func__

    def capture(cls: type, m: torch.nn.Module, *args: object, **kwargs: object) -> _state.Snapshot:
        if m is model:
            calls.append(1)
        return original(cls, m, *args, **kwargs)

    monkeypatch.setattr(_state.Snapshot, "capture", classmethod(capture))
    return calls


@pytest.mark.filterwarnings("ignore:the loss barely moved")
def test_choose_lr0_holds_one_snapshot_of_the_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """lr0="auto"'s range test restores from choose_lr0's own snapshot: one copy of the state in memory, not two."""
    model, opt, data = _setup()
    calls = _count_captures(monkeypatch, model)
    _choose(model, opt, data)
    assert len(calls) == 1


@pytest.mark.filterwarnings("ignore:the loss barely moved")
def test_choose_lr0_reusing_its_snapshot_changes_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bit-identical choice, curve, trials and restored state with find_lr's own snapshot as with choose_lr0's."""
    model, opt, data = _setup()
    shared = _choose(model, opt, data)
    after_shared = ([p.detach().clone() for p in model.parameters()], [p.grad.clone() for p in model.parameters()],
                    opt.state_dict())
    model2, opt2, data2 = _setup()
    monkeypatch.setattr(range_test, "_caller_snapshot", lambda model, optimizer: None)  # find_lr takes its own
    own = _choose(model2, opt2, data2)
    assert shared.lr == own.lr and shared.finder.losses == own.finder.losses and shared.trials == own.trials
    for a, b in zip(after_shared[0], model2.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(after_shared[1], model2.parameters()):
        assert torch.equal(a, b.grad)
    s1, s2 = after_shared[2]["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[k][n], s2[k][n]) for k in s1 for n in ("exp_avg", "exp_avg_sq", "step"))


@pytest.mark.filterwarnings("ignore:the loss barely moved")
def test_find_lr_takes_no_stale_caller_snapshot() -> None:
    """The caller's snapshot serves only the find_lr call choose_lr0 makes, for its model and optimizer."""
    model, opt, data = _setup()
    other, other_opt, _ = _setup()
    snap = _state.Snapshot.capture(other, other_opt, rng=True)
    token = range_test._CALLER_SNAPSHOT.set(snap)
    try:
        assert range_test._caller_snapshot(model, opt) is None  # another model's: not used
        before = [p.detach().clone() for p in model.parameters()]
        lrkit.find_lr(model, opt, data, num_steps=12)
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    finally:
        range_test._CALLER_SNAPSHOT.reset(token)


@pytest.mark.parametrize("tool", ["find_lr", "choose_lr0"])
def test_snapshot_dies_with_a_kept_traceback(tool: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A range test (or lr0="auto") that stops on an exception frees its snapshot of the model, gradients and
    optimizer state even while the caller keeps the traceback (and with it the function's frame)."""
    model, opt, data = _setup()
    refs: list[weakref.ref] = []
    original = _state.Snapshot.capture.__func__

    def capture(cls: type, m: torch.nn.Module, *args: object, **kwargs: object) -> _state.Snapshot:
        snapshot = original(cls, m, *args, **kwargs)
        refs.append(weakref.ref(snapshot))
        return snapshot

    def fail(model: torch.nn.Module, batch: object) -> torch.Tensor:
        raise RuntimeError("boom")

    monkeypatch.setattr(_state.Snapshot, "capture", classmethod(capture))
    with pytest.raises(RuntimeError, match="boom") as info:
        if tool == "find_lr":
            lrkit.find_lr(model, opt, data, num_steps=12, step_fn=fail)
        else:
            choose_lr0(model, opt, data, None, total_steps=100, step_fn=fail, log=lambda line: None,
                       make_scheduler=lambda o, n: LambdaLR(o, lambda s: 1.0), finder_kwargs={"num_steps": 12})
    gc.collect()
    assert info.value.__traceback__ is not None and refs
    assert [r() for r in refs] == [None] * len(refs)
