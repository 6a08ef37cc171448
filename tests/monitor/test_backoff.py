"""The LR back-off survives every kind of scheduler's later steps: lr_after(t) == factor * lr_without(t) for all t."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as S

from lrkit.monitor.actions import backoff_lr, clip_grads_, resolve_action

FACTOR = 0.3
Builder = Callable[[torch.optim.Optimizer], Any]


def _two_groups(optimizer_cls: type = torch.optim.SGD, **kw: Any) -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    return optimizer_cls([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.02}], **kw)


SCHEDULERS: dict[str, Builder] = {
    "StepLR": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[4, 9], gamma=0.1),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
    "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=5, eta_min=1e-4),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=[1.0, 0.2], total_steps=40),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=[0.01, 0.002], max_lr=[0.1, 0.02], step_size_up=4),
    "LambdaLR": lambda o: S.LambdaLR(o, lambda t: 1.0 / (1 + t)),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=0.1, total_iters=6),
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=30, power=2.0),
    "SequentialLR": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=5), S.ExponentialLR(o, gamma=0.8)], milestones=[5]
    ),
    "ChainedScheduler": lambda o: S.ChainedScheduler(
        [S.ExponentialLR(o, gamma=0.95), S.StepLR(o, step_size=4, gamma=0.5)]
    ),
    "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda t: 0.9 if t % 2 else 1.0),
    "ConstantLR": lambda o: S.ConstantLR(o, factor=0.25, total_iters=9),
    "SWALR": lambda o: torch.optim.swa_utils.SWALR(o, swa_lr=[0.01, 0.004], anneal_epochs=6),
}


def _lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
@pytest.mark.parametrize("at", [0, 7])
def test_backoff_survives_later_scheduler_steps(name: str, at: int) -> None:
    ref_opt, opt = _two_groups(momentum=0.9), _two_groups(momentum=0.9)
    ref, sched = SCHEDULERS[name](ref_opt), SCHEDULERS[name](opt)
    for t in range(30):
        if t == at:
            backoff_lr(opt, sched, FACTOR)
        if t >= at:
            for got, want in zip(_lrs(opt), _lrs(ref_opt)):
                assert got == pytest.approx(FACTOR * want, rel=1e-9, abs=1e-15), f"step {t}"
            assert sched.get_last_lr() == pytest.approx([FACTOR * v for v in ref.get_last_lr()], rel=1e-9)
        for o in (ref_opt, opt):
            o.step()
        ref.step()
        sched.step()


def test_backoff_with_reduce_lr_on_plateau_scales_the_floor_too() -> None:
    ref_opt, opt = _two_groups(), _two_groups()
    ref = S.ReduceLROnPlateau(ref_opt, factor=0.5, patience=0, min_lr=[0.01, 0.004])
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=[0.01, 0.004])
    backoff_lr(opt, sched, FACTOR)
    for _ in range(12):  # a flat metric: reduce every step until each group sits on its floor
        ref.step(1.0)
        sched.step(1.0)
        assert _lrs(opt) == pytest.approx([FACTOR * v for v in _lrs(ref_opt)], rel=1e-9)
    assert _lrs(ref_opt) == pytest.approx([0.01, 0.004])  # the floor was reached, and the back-off still holds


def test_backoff_with_lrkit_adapter_uses_its_multiplier() -> None:
    from lrkit.schedules import from_spec

    ref_opt, opt = _two_groups(momentum=0.9), _two_groups(momentum=0.9)
    ref = from_spec("onecycle max_lr=0.1", total_steps=40).to_torch(ref_opt)
    sched = from_spec("onecycle max_lr=0.1", total_steps=40).to_torch(opt)
    for _ in range(5):
        for o, s in ((ref_opt, ref), (opt, sched)):
            o.step()
            s.step()
    backoff_lr(opt, sched, FACTOR)
    assert sched.lr_multiplier == pytest.approx(FACTOR)
    assert sched.state_dict()["lr_multiplier"] == pytest.approx(FACTOR)
    for _ in range(30):
        assert _lrs(opt) == pytest.approx([FACTOR * v for v in _lrs(ref_opt)], rel=1e-9)
        for o, s in ((ref_opt, ref), (opt, sched)):
            o.step()
            s.step()


def test_backoff_without_scheduler_and_validation() -> None:
    opt = _two_groups()
    backoff_lr(opt, None, 0.5)
    assert _lrs(opt) == pytest.approx([0.05, 0.01])
    with pytest.raises(ValueError, match="factor=0"):
        backoff_lr(opt, None, 0)
    with pytest.raises(ValueError, match="factor=inf"):
        backoff_lr(opt, None, float("inf"))


def test_clip_grads_matches_torch_clip_grad_norm() -> None:
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, 3, generator=g) * 10, torch.randn(7, generator=g)]
    params = [torch.nn.Parameter(torch.zeros_like(x)) for x in grads]
    for p, x in zip(params, grads):
        p.grad = x.clone()
    total = float(torch.linalg.vector_norm(torch.stack([x.norm() for x in grads])))
    coef = clip_grads_(grads, total, 2.0)
    torch.nn.utils.clip_grad_norm_(params, 2.0)
    assert coef < 1
    for p, x in zip(params, grads):
        assert torch.allclose(p.grad, x, rtol=1e-6, atol=0)
    assert clip_grads_(grads, 1.0, 2.0) == 1.0  # under the limit: untouched


def test_resolve_action_names_the_bad_value_and_the_valid_ones() -> None:
    assert resolve_action("on_explode", "explode", "CLIP") == "clip"
    assert resolve_action("on_divergence", "divergence", None) is None
    assert resolve_action("on_divergence", "divergence", "ignore") is None
    with pytest.raises(ValueError, match="Did you mean 'rollback'"):
        resolve_action("on_divergence", "divergence", "rolback")
    with pytest.raises(ValueError, match="cannot help with divergence"):
        resolve_action("on_divergence", "divergence", "clip")
    with pytest.raises(ValueError, match="Valid: warn, stop, ignore"):
        resolve_action("on_too_low", "too_low", "rollback")
    with pytest.raises(ValueError, match="must be an action name"):
        resolve_action("on_explode", "explode", 3)  # type: ignore[arg-type]
