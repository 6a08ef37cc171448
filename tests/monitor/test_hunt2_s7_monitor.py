"""Hunt of 7998622/07a9518/78b24a1: a monitor saved and loaded in the middle of a ``spike_grace`` episode decides as an
uninterrupted one; ``val_min_share`` keeps a custom ``ValidationRising``'s other settings. (No bug found; pinned.)"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from lrkit.monitor import Monitor
from lrkit.monitor.checks import ValidationRising


def _trained(n: int = 60) -> list[float]:
    head = [1.0 - 0.09 * i for i in range(10)]
    return head + [0.1 + (0.01 if i % 2 else -0.01) for i in range(n - 10)]


def _setup() -> tuple[torch.nn.Linear, torch.optim.SGD]:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def _feed(monitor: Monitor, model: torch.nn.Module, opt: torch.optim.Optimizer, losses: list[float]) -> None:
    for value in losses:
        for p in model.parameters():
            p.grad = torch.full_like(p, -10.0)  # +1 per step on every weight: a rollback shows in them
        monitor.after_backward(value)
        opt.step()
        monitor.after_step()


@pytest.mark.parametrize(("stream_tail", "cut"), [([3.0] * 5 + [0.1] * 15, 62), ([3.0] * 5 + [0.1] * 15, 64),
                                                  ([3.0, 2.0] + [0.1] * 10 + [3.0] + [0.1] * 8, 61)])
def test_resume_mid_grace_episode_decides_as_uninterrupted(stream_tail: list[float], cut: int) -> None:
    stream = _trained() + stream_tail
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, opt = _setup()
        ref = Monitor(model, opt, on_overfit=None, snapshot_every=5)
        _feed(ref, model, opt, stream)
        ref_weight = model.weight.detach().clone()

        model, opt = _setup()
        first = Monitor(model, opt, on_overfit=None, snapshot_every=5)
        _feed(first, model, opt, stream[:cut])
        state = copy.deepcopy(first.state_dict(snapshot=True))
        weights, opt_state = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
        model, opt = _setup()
        model.load_state_dict(weights)
        opt.load_state_dict(opt_state)
        resumed = Monitor(model, opt, on_overfit=None, snapshot_every=5)
        resumed.load_state_dict(state)
        _feed(resumed, model, opt, stream[cut:])
    assert ref.spike_grace == 3 and ref.events  # the default grace, and a stream it acts on
    assert [(e.step, e.check, e.action) for e in resumed.events] == [(e.step, e.check, e.action) for e in ref.events]
    assert torch.equal(model.weight, ref_weight) and resumed.rollbacks == ref.rollbacks


def test_val_min_share_keeps_a_custom_check_other_settings() -> None:
    model, opt = _setup()
    custom = ValidationRising(tolerance=0.2, patience=3, min_train_drop=0.3)
    m = Monitor(model, opt, checks=[custom], val_min_share=0.02)
    (vr,) = [c for c in m.checks if isinstance(c, ValidationRising)]
    assert (vr.tolerance, vr.patience, vr.min_train_drop, vr.min_share) == (0.2, 3, 0.3, 0.02)
    assert custom.min_share == 0.0  # the caller's check object is not changed


@pytest.mark.parametrize("bad", [-0.01, float("nan"), "0.01", True])
def test_bad_val_min_share_named(bad: object) -> None:
    model, opt = _setup()
    with pytest.raises(ValueError, match="val_min_share="):
        Monitor(model, opt, val_min_share=bad)  # type: ignore[arg-type]
