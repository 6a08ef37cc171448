"""Every family torch also has matches torch's own scheduler to 1e-12 over a whole run, with two param groups."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from _sched_helpers import make_optimizer, max_abs_diff, trace
from torch.optim import lr_scheduler as tls

from lrkit.schedules import from_spec

TOL = 1e-12
LRS = [0.1, 0.02]  # two groups with different LRs: the peak comes from each group's own LR, as in torch

# (id, torch factory, lrkit spec, spec timeline kwargs, steps)
CASES: list[tuple[str, Callable[[torch.optim.Optimizer], Any], str, dict[str, Any], int]] = [
    ("StepLR", lambda o: tls.StepLR(o, step_size=7, gamma=0.5), "step step_size=7 gamma=0.5 unit=step", {}, 60),
    ("StepLR-epochs", lambda o: tls.StepLR(o, step_size=15, gamma=0.1), "step step_size=3 gamma=0.1",
     {"steps_per_epoch": 5}, 70),
    ("MultiStepLR", lambda o: tls.MultiStepLR(o, milestones=[10, 25, 25, 40], gamma=0.3),
     "multistep milestones=10,25,25,40 gamma=0.3 unit=step", {}, 60),
    ("MultiStepLR-epochs", lambda o: tls.MultiStepLR(o, milestones=[8, 20], gamma=0.5),
     "multistep milestones=[2,5] gamma=0.5", {"steps_per_epoch": 4}, 30),
    ("ExponentialLR", lambda o: tls.ExponentialLR(o, gamma=0.95), "exponential gamma=0.95 unit=step", {}, 120),
    ("PolynomialLR", lambda o: tls.PolynomialLR(o, total_iters=40, power=2.0),
     "polynomial total_iters=40 power=2", {"total_steps": 60}, 60),
    ("PolynomialLR-run", lambda o: tls.PolynomialLR(o, total_iters=50, power=0.5),
     "polynomial power=0.5", {"total_steps": 50}, 51),
    ("LinearLR-warmup", lambda o: tls.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=12),
     "linear start_factor=0.25 end_factor=1.0 total_iters=12", {"total_steps": 40}, 40),
    ("LinearLR-decay", lambda o: tls.LinearLR(o, start_factor=1.0, end_factor=0.01, total_iters=50),
     "linear lrf=0.01", {"total_steps": 50}, 51),
    ("CosineAnnealingLR", lambda o: tls.CosineAnnealingLR(o, T_max=50), "cosine lrf=0", {"total_steps": 50}, 51),
    ("CosineAnnealingLR-eta_min", lambda o: tls.CosineAnnealingLR(o, T_max=64, eta_min=1e-3),
     "cosine eta_min=0.001", {"total_steps": 64}, 65),
    ("CosineAnnealingWarmRestarts", lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-4),
     "cosine_restarts T_0=5 T_mult=2 eta_min=0.0001 unit=step", {}, 80),
    ("CosineAnnealingWarmRestarts-mult1", lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=7),
     "sgdr T_0=7 unit=step", {}, 50),
    ("CosineAnnealingWarmRestarts-epochs", lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=6, T_mult=3),
     "cosine_restarts T_0=2 T_mult=3", {"steps_per_epoch": 3}, 80),
]


def _lrkit_scheduler(optimizer: torch.optim.Optimizer, spec: str, kw: dict[str, Any]) -> Any:
    return from_spec(spec, **kw).to_torch(optimizer)


@pytest.mark.parametrize(("make_torch", "spec", "kw", "steps"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_matches_torch_scheduler(make_torch: Callable[[torch.optim.Optimizer], Any], spec: str,
                                 kw: dict[str, Any], steps: int) -> None:
    opt_t = make_optimizer(LRS)
    opt_l = make_optimizer(LRS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref, _ = trace(opt_t, make_torch(opt_t), steps)
    got, _ = trace(opt_l, _lrkit_scheduler(opt_l, spec, kw), steps)
    assert max_abs_diff(ref, got) <= TOL
    # the schedule changes the LR at all (a constant match would prove nothing)
    assert len({round(r[0], 15) for r in ref}) > 2
    if "eta_min" not in spec:  # a relative schedule keeps the groups' ratio (torch's absolute eta_min does not)
        assert all(abs(r[1] * LRS[0] - r[0] * LRS[1]) <= TOL for r in got)


CYCLIC_MODES = [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.97)]


@pytest.mark.parametrize(("mode", "gamma"), CYCLIC_MODES, ids=[m for m, _ in CYCLIC_MODES])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_cyclic_matches_torch_with_momentum(mode: str, gamma: float, kind: str) -> None:
    scales = [1.0, 0.5]  # the second group at half the LR: torch takes per-group lists, lrkit the groups' lr_scale
    opt_t = make_optimizer([0.1, 0.05], kind=kind)
    opt_l = make_optimizer([0.1, 0.05], kind=kind, scales=scales)
    torch_sched = tls.CyclicLR(opt_t, base_lr=[0.001, 0.0005], max_lr=[0.1, 0.05], step_size_up=10,
                               step_size_down=6, mode=mode, gamma=gamma, base_momentum=0.8, max_momentum=0.9)
    ref, ref_m = trace(opt_t, torch_sched, 100)
    spec = f"cyclic base_lr=0.001 max_lr=0.1 step_size_up=10 step_size_down=6 mode={mode} gamma={gamma}"
    got, got_m = trace(opt_l, from_spec(spec).to_torch(opt_l), 100)
    assert max_abs_diff(ref, got) <= TOL
    assert max_abs_diff(ref_m, got_m) <= TOL
    assert min(r[0] for r in got) == pytest.approx(0.001)
    peak = max(r[0] for r in got)
    assert peak == pytest.approx(0.1) if mode != "exp_range" else 0.001 < peak < 0.1 * gamma**9


ONECYCLE = [
    ("two-phase-cos", {}, ""),
    ("three-phase-linear", {"three_phase": True, "anneal_strategy": "linear", "pct_start": 0.25, "div_factor": 10.0,
                            "final_div_factor": 100.0},
     "three_phase=true anneal_strategy=linear pct_start=0.25 div_factor=10 final_div_factor=100"),
    ("two-phase-linear", {"anneal_strategy": "linear", "base_momentum": 0.8, "max_momentum": 0.99},
     "anneal_strategy=linear base_momentum=0.8 max_momentum=0.99"),
    ("three-phase-cos", {"three_phase": True, "pct_start": 0.4}, "three_phase=true pct_start=0.4"),
]


@pytest.mark.parametrize(("torch_kw", "spec_kw"), [c[1:] for c in ONECYCLE], ids=[c[0] for c in ONECYCLE])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_onecycle_matches_torch_with_momentum(torch_kw: dict[str, Any], spec_kw: str, kind: str) -> None:
    total = 97
    opt_t = make_optimizer([0.1, 0.05], kind=kind)
    opt_l = make_optimizer([0.1, 0.05], kind=kind, scales=[1.0, 0.5])
    ref, ref_m = trace(opt_t, tls.OneCycleLR(opt_t, max_lr=[0.1, 0.05], total_steps=total, **torch_kw), total)
    sched = from_spec(f"onecycle max_lr=0.1 {spec_kw}", total_steps=total).to_torch(opt_l)
    got, got_m = trace(opt_l, sched, total)
    assert max_abs_diff(ref, got) <= TOL
    assert max_abs_diff(ref_m, got_m) <= TOL
    # torch raises past the end ("Tried to step N times", pytorch#38170); lrkit holds the final LR
    opt_l.step()
    sched.step()
    sched.step()
    assert opt_l.param_groups[0]["lr"] == pytest.approx(ref[-1][0], abs=TOL)


def test_onecycle_epochs_and_steps_per_epoch_like_torch() -> None:
    opt_t, opt_l = make_optimizer([0.1]), make_optimizer([0.1])
    ref, _ = trace(opt_t, tls.OneCycleLR(opt_t, max_lr=0.3, epochs=4, steps_per_epoch=13), 52)
    got, _ = trace(opt_l, from_spec("onecycle lr0=0.3", epochs=4, steps_per_epoch=13).to_torch(opt_l), 52)
    assert max_abs_diff(ref, got) <= TOL
