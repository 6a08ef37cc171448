"""Session 12: ``lrkit.train`` saves the monitor's held snapshots into ``last.pt`` without copying them first (a
transient second copy of the model and its optimizer state at every save, on the model's device). The values, and
what a resume gets from them, are those of ``state_dict(snapshot=True)``."""

from __future__ import annotations

import io
from typing import Any

import torch

import lrkit


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree, key=str) for leaf in _leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]


def _monitor() -> lrkit.Monitor:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    monitor = lrkit.Monitor(model, opt, grad_every=1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    for step in range(12):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
        if step % 4 == 3:
            monitor.after_validation(1.0 / (step + 1))  # a new best each time: the best-validation snapshot
    return monitor


def test_checkpoint_state_is_state_dict_without_the_copies() -> None:
    monitor = _monitor()
    copied, shared = monitor.state_dict(snapshot=True), monitor._checkpoint_state()
    a, b = _leaves(copied), _leaves(shared)
    assert len(a) == len(b) and {"healthy", "best_val"} <= set(shared)
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y) and x.dtype == y.dtype
        else:
            assert x == y or (x != x and y != y)  # NaN == NaN here
    held = monitor._healthy.snapshot
    assert shared["healthy"]["params"][0] is held.params[0]  # the snapshot's own tensor, not a copy
    assert copied["healthy"]["params"][0] is not held.params[0]  # the public state_dict still copies


def test_checkpoint_state_round_trips_through_a_file() -> None:
    monitor = _monitor()
    buf = io.BytesIO()
    torch.save(monitor._checkpoint_state(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh = lrkit.Monitor(monitor.model, monitor.optimizer, grad_every=1)
    fresh.load_state_dict(state)
    for mine, theirs in zip(fresh._healthy.snapshot.params, monitor._healthy.snapshot.params):
        assert torch.equal(mine, theirs) and mine is not theirs  # loaded as copies of its own
