"""Bug hunt 5 on the shared plumbing: ``lrkit._state.Snapshot`` (optimizer state matched to its parameter by
identity when a param group's list changed), ``lrkit._step`` (the default loss on a float target that only
broadcasts, the batch size of a dict whose first value is not a tensor) and the suggestion rules on a curve with
repeated LRs."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lrkit._state import Snapshot
from lrkit._step import batch_loss, batch_size, default_loss
from lrkit.finder import FinderResult
from lrkit.finder import suggest as S


# ------------------------------------------------------------------------------------------ Snapshot by identity
def _stepped(opt: torch.optim.Optimizer, *layers: nn.Module) -> None:
    for layer in layers:
        layer(torch.randn(3, layer.in_features)).square().sum().backward()
    opt.step()


def _state_of(opt: torch.optim.Optimizer, p: torch.Tensor) -> dict[str, Any]:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.state[p].items()}


@pytest.mark.parametrize("make", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: torch.optim.Adam(p, lr=0.1),
])
def test_a_reordered_param_list_gets_each_parameter_its_own_state_back(make: Any) -> None:
    """The state was restored by position: after the group's list was reordered, ``a``'s momentum/Adam moments
    went to ``b`` (a different tensor of the same shape) and ``b``'s to ``a``."""
    torch.manual_seed(0)
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    opt = make([*a.parameters(), *b.parameters()])
    _stepped(opt, a, b)
    saved = {id(p): _state_of(opt, p) for p in [*a.parameters(), *b.parameters()]}
    snap = Snapshot.capture(nn.ModuleList([a, b]), opt)
    _stepped(opt, a, b)  # the state moves on
    opt.param_groups[0]["params"] = [*b.parameters(), *a.parameters()]
    snap.restore()
    for p in [*a.parameters(), *b.parameters()]:
        got = opt.state[p]
        assert list(got) == list(saved[id(p)])
        for k, v in saved[id(p)].items():
            assert torch.equal(got[k], v) if isinstance(v, torch.Tensor) else got[k] == v, k
    assert opt.param_groups[0]["params"][0] is b.weight  # the user's new list is kept


def test_a_swapped_in_parameter_gets_no_stale_state_and_a_dropped_one_gets_none() -> None:
    """``b`` replaced ``a`` in the group after the capture: ``a``'s momentum must not be handed to ``b`` (the old
    restore did, position for position). ``b``, not optimized at capture, has no state again (as a group added after
    the capture has none after a restore); ``a``, no longer optimized, gets none either (a state keyed by a tensor
    outside the groups would break ``optimizer.state_dict()``)."""
    torch.manual_seed(0)
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    opt = torch.optim.SGD(list(a.parameters()), lr=0.1, momentum=0.9)
    _stepped(opt, a)
    snap = Snapshot.capture(nn.ModuleList([a, b]), opt)
    opt.param_groups[0]["params"] = list(b.parameters())
    opt.zero_grad()
    _stepped(opt, b)
    snap.restore()
    assert not any(p in opt.state for p in [*a.parameters(), *b.parameters()])
    assert opt.state_dict()["state"] == {}
    # and the positions of a list that only grew at its end are still restored as before
    opt.param_groups[0]["params"] = [*a.parameters(), *b.parameters()]
    _stepped(opt, a, b)
    snap.restore()
    assert all(p in opt.state for p in a.parameters()) and not any(p in opt.state for p in b.parameters())


def test_an_unchanged_param_list_restores_the_state_dict_exactly() -> None:
    """The common case (the finder, lr0='auto'): the same list, restored bit for bit with its key order."""
    torch.manual_seed(0)
    a = nn.Linear(3, 3)
    opt = torch.optim.Adam(a.parameters(), lr=0.1)
    _stepped(opt, a)
    before = opt.state_dict()
    before = {"state": {k: {n: t.clone() for n, t in v.items()} for k, v in before["state"].items()},
              "param_groups": before["param_groups"]}
    snap = Snapshot.capture(a, opt)
    _stepped(opt, a)
    _stepped(opt, a)
    snap.restore()
    after = opt.state_dict()
    assert list(after["state"]) == list(before["state"]) and after["param_groups"] == before["param_groups"]
    for k, v in before["state"].items():
        assert list(after["state"][k]) == list(v)
        assert all(torch.equal(after["state"][k][n], t) for n, t in v.items())


# ------------------------------------------------------------------------------------------ the default loss
def test_a_float_target_that_only_broadcasts_is_an_error_not_a_silent_mse() -> None:
    """Class indices as floats, (N,) against logits (N, C) with N == C: torch broadcast them into a meaningless MSE
    (with a UserWarning at most); the finder and lr0='auto' then chose an LR for that number."""
    model = nn.Linear(4, 3)
    batch = (torch.randn(3, 4), torch.tensor([0.0, 2.0, 1.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either: a clear error
        with pytest.raises(ValueError, match=r"shape \(3,\).*\(3, 3\).*\.long\(\)"):
            batch_loss(model, batch, None, None)


def test_a_float_target_of_the_outputs_size_still_uses_mse() -> None:
    out = torch.tensor([[1.0], [2.0], [4.0]])
    assert default_loss(out, torch.tensor([1.0, 1.0, 1.0])).item() == pytest.approx((0 + 1 + 9) / 3)
    assert default_loss(out, torch.ones(3, 1)).item() == pytest.approx((0 + 1 + 9) / 3)


# ------------------------------------------------------------------------------------------ batch size
@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ({"idx": 7, "x": torch.zeros(5, 3), "y": torch.zeros(5)}, 5),  # a non-tensor first value
        ({"meta": {"epoch": 2}, "x": torch.zeros(4, 3)}, 4),
        ((torch.tensor(0.5), torch.zeros(6, 2)), 6),  # a 0-dim first tensor has no samples to count
        ({"names": ["a", "b"], "x": [torch.zeros(2, 3), torch.zeros(2, 1)]}, 2),
        ({"names": ["a", "b"]}, 1),  # no tensor at all: 1, as documented
        ((torch.zeros(0, 3), torch.zeros(0)), 0),
    ],
)
def test_batch_size_is_the_first_tensors_leading_dimension(batch: Any, expected: int) -> None:
    assert batch_size(batch) == expected


# ------------------------------------------------------------------------------------------ suggest, repeated LRs
def _curve() -> tuple[np.ndarray, np.ndarray]:
    lrs = np.logspace(-5, 0, 50)
    return lrs, 1.0 / (1.0 + lrs / 1e-3) + (lrs / 0.1) ** 2


@pytest.mark.parametrize("rule", sorted(S.RULES))
def test_every_lr_measured_twice_reads_like_the_curve_measured_once(rule: str) -> None:
    """Each LR measured twice with the same loss is the same curve: np.gradient divided by the zero LR steps, the
    NaN slopes made ``steepest`` return the curve's first LR (1e-5, three decades below the descent)."""
    lrs, losses = _curve()
    once = S.suggest(lrs, losses, rule)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy divide-by-zero warnings either
        twice = S.suggest(np.repeat(lrs, 2), np.repeat(losses, 2), rule)
    assert twice == pytest.approx(once, rel=1e-12)


def test_repeated_lrs_average_their_losses() -> None:
    """Noisy repeats at one LR count as one point at their mean loss."""
    lrs, losses = _curve()
    noise = 0.01 * np.tile([1.0, -1.0], len(lrs))
    twice = S.suggest(np.repeat(lrs, 2), np.repeat(losses, 2) + noise, "steepest")
    assert twice == S.suggest(lrs, losses, "steepest")
    assert S.lr_range(np.repeat(lrs, 2), np.repeat(losses, 2) + noise) == S.lr_range(lrs, losses)


def test_a_curve_at_one_lr_cannot_be_judged() -> None:
    """Five losses at a single LR are one point, not a curve: a clear error, not an LR read off a NaN slope."""
    r = FinderResult(lrs=[1e-3] * 5, losses=[1.0, 0.9, 0.8, 0.7, 0.6], start_lr=1e-3, end_lr=1e-2, num_steps=5)
    with pytest.raises(ValueError, match="3 different LRs"):
        r.suggest("steepest")
    assert r.to_dict()["suggestion"] is None
