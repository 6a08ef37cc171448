"""Session 37 (helper n): the schedule families checked numerically against torch's schedulers and the published
formulas, over grids that include the edge values (runs of 1 and 2 steps, periods longer than the run, gamma 1,
a floor equal to the peak, cycle lengths of 1)."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as L

from lrkit.schedules import from_spec


def _sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def _torch_lrs(make: Callable[[torch.optim.Optimizer], Any], steps: int) -> list[float]:
    """The LR torch's scheduler gives at each of ``steps`` calls (one per optimizer step, or per epoch)."""
    opt = _sgd()
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return out


def _epoch_starts(rec: list[float], epochs: int, spe: float) -> list[float]:
    """The LR at the first optimizer step of each epoch that starts inside the run."""
    firsts = [math.ceil(e * spe - 1e-9) for e in range(epochs)]
    return [rec[i] for i in firsts if i < len(rec)]


# ---- interval=epoch: the continuous families (cosine, linear, polynomial) against torch stepped per epoch --------
_PER_EPOCH = [
    ("cosine lr0=0.1 lrf=0 interval=epoch", lambda E: (lambda o: L.CosineAnnealingLR(o, E))),
    ("cosine lr0=0.1 eta_min=0.01 interval=epoch", lambda E: (lambda o: L.CosineAnnealingLR(o, E, eta_min=0.01))),
    ("cosine lr0=0.1 lrf=0 interval=epoch unit=epoch T_max={E}", lambda E: (lambda o: L.CosineAnnealingLR(o, E))),
    ("linear lr0=0.1 lrf=0.01 interval=epoch", lambda E: (lambda o: L.LinearLR(o, 1.0, 0.01, E))),
    ("linear lr0=0.1 start_factor=0.25 end_factor=1 interval=epoch",
     lambda E: (lambda o: L.LinearLR(o, 0.25, 1.0, E))),
    ("polynomial lr0=0.1 power=2 interval=epoch", lambda E: (lambda o: L.PolynomialLR(o, E, 2.0))),
    ("polynomial lr0=0.1 power=1 interval=epoch unit=epoch total_iters={E}",
     lambda E: (lambda o: L.PolynomialLR(o, E, 1.0))),
]


@pytest.mark.parametrize(("epochs", "spe"), [(5, 2.5), (5, 7.5), (10, 100 / 3), (3, 1.25), (4, 3), (2, 1)])
@pytest.mark.parametrize(("spec", "make"), _PER_EPOCH, ids=[s for s, _ in _PER_EPOCH])
def test_per_epoch_continuous_families_match_torch_stepped_per_epoch(
    spec: str, make: Callable[[int], Callable[[torch.optim.Optimizer], Any]], epochs: int, spe: float
) -> None:
    # an epoch of a fractional number of steps: the run is round(epochs * spe) steps, but the per-epoch staircase
    # is torch's scheduler of `epochs` steps stepped once per epoch (before session 37 the decay spanned the rounded
    # run: 5 epochs of 2.5 steps gave cos(pi * 2.5 / 12) at epoch 1 instead of cos(pi / 5))
    s = from_spec(spec.format(E=epochs), epochs=epochs, steps_per_epoch=spe)
    ref = _torch_lrs(make(epochs), epochs)
    got = _epoch_starts(s.record()["lr"], epochs, spe)
    assert got == pytest.approx(ref[: len(got)], rel=1e-12, abs=1e-15)


def test_ultralytics_per_epoch_is_lf_of_the_epoch_with_fractional_steps_per_epoch() -> None:
    # README: "add interval=epoch to get Ultralytics' per-epoch values exactly": lr0 * lf(epoch) after the warmup,
    # lf(x) = ((1 - cos(x pi / epochs)) / 2) (lrf - 1) + 1 (cos_lr) or (1 - x / epochs)(1 - lrf) + lrf
    epochs, spe, lr0, lrf = 9, 2.5, 0.01, 0.05  # 22.5 steps: a 22-step run
    for cos_lr in (True, False):
        s = from_spec(f"ultralytics lr0={lr0} lrf={lrf} cos_lr={cos_lr} warmup_epochs=2 interval=epoch",
                      epochs=epochs, steps_per_epoch=spe)
        rec = s.record()["lr"]
        for e in range(3, epochs):  # after the 15-step warmup
            lf = (((1 - math.cos(e * math.pi / epochs)) / 2) * (lrf - 1) + 1 if cos_lr
                  else (1 - e / epochs) * (1 - lrf) + lrf)
            assert rec[math.ceil(e * spe)] == pytest.approx(lr0 * lf, rel=1e-12), (cos_lr, e)


# ---- cyclic: gamma only means something with mode=exp_range ------------------------------------------------------
@pytest.mark.parametrize("mode", ["triangular", "triangular2"])
def test_cyclic_gamma_without_exp_range_warns_instead_of_being_ignored_silently(mode: str) -> None:
    # torch's CyclicLR ignores gamma outside exp_range without a word: "cyclic ... gamma=0.99" then cycled at full
    # amplitude for ever, the decay the user asked for silently dropped. It is still ignored (as torch), but said.
    spec = f"cyclic base_lr=0.001 max_lr=0.1 step_size_up=10 mode={mode}"
    with pytest.warns(UserWarning, match=rf"gamma=0\.99 has no effect with mode='{mode}'.*mode=exp_range"):
        s = from_spec(f"{spec} gamma=0.99")
    assert s.record(steps=60)["lr"] == from_spec(spec).record(steps=60)["lr"]
    # gamma=1 (the default, no scaling) stays quiet, as torch's own calls pass it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert from_spec(f"{spec} gamma=1").lr(10) == pytest.approx(0.1)


def test_cyclic_gamma_with_a_custom_scale_fn_warns() -> None:
    from lrkit.schedules import Cyclic

    with pytest.warns(UserWarning, match=r"gamma=0\.9 has no effect with a custom scale_fn"):
        s = Cyclic(base_lr=0.0, max_lr=0.1, step_size_up=4, scale_fn=lambda x: 0.5, gamma=0.9)
    assert s.lr(4) == pytest.approx(0.05)


# ---- per step: every family torch has, over grids with the edge values (pass before session 37 too; they cover
# ---- runs of 1 and 2 steps, periods longer than the run, gamma 1, a floor equal to the peak, cycles of 1 step) ----
def _both(spec: str | dict[str, Any], make: Callable[[torch.optim.Optimizer], Any], n: int,
          momentum: bool = False) -> None:
    """record() and to_torch() stepped n times both equal torch's scheduler stepped n times (LR, and momentum)."""
    opt = _sgd()
    ref_sched = make(opt)
    ref, ref_m = [], []
    for _ in range(n):
        ref.append(float(opt.param_groups[0]["lr"]))
        ref_m.append(float(opt.param_groups[0]["momentum"]))
        opt.step()
        ref_sched.step()
    s = from_spec(spec, total_steps=n)
    rec = s.record()
    assert rec["lr"] == pytest.approx(ref, rel=1e-10, abs=1e-15)
    opt2 = _sgd()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cooldown-free spec never warns; keep the assert about values only
        adapter = s.to_torch(opt2)
    got, got_m = [], []
    for _ in range(n):
        got.append(float(opt2.param_groups[0]["lr"]))
        got_m.append(float(opt2.param_groups[0]["momentum"]))
        opt2.step()
        adapter.step()
    assert got == pytest.approx(ref, rel=1e-10, abs=1e-15)
    if momentum:
        assert rec["momentum"] == pytest.approx(ref_m, rel=1e-10)
        assert got_m == pytest.approx(ref_m, rel=1e-10)


@pytest.mark.parametrize("n", [1, 2, 9])
@pytest.mark.parametrize("gamma", [0.1, 1.0, 2.0])
@pytest.mark.parametrize("size", [1, 3, 50])
def test_step_and_multistep_and_exponential_edges_match_torch(n: int, gamma: float, size: int) -> None:
    _both(f"step lr0=0.1 step_size={size} gamma={gamma} unit=step", lambda o: L.StepLR(o, size, gamma), n)
    ms = [size, size, size + 2]  # a repeated milestone decays twice, as torch's
    _both({"name": "multistep", "lr0": 0.1, "milestones": ms, "gamma": gamma, "unit": "step"},
          lambda o: L.MultiStepLR(o, ms, gamma), n)
    _both(f"exponential lr0=0.1 gamma={gamma} unit=step", lambda o: L.ExponentialLR(o, gamma), n)


# runs no longer than T_max: past it torch climbs back up, lrkit holds the floor (documented)
@pytest.mark.parametrize(("n", "t_max"), [(1, 1), (1, 2), (2, 2), (1, 7), (2, 7), (7, 7)])
@pytest.mark.parametrize("eta_min", [0.0, 0.03, 0.1])  # 0.1: the floor is the peak
def test_cosine_edges_match_torch(n: int, t_max: int, eta_min: float) -> None:
    _both(f"cosine lr0=0.1 eta_min={eta_min} T_max={t_max}", lambda o: L.CosineAnnealingLR(o, t_max, eta_min), n)


@pytest.mark.parametrize("n", [1, 2, 31])
@pytest.mark.parametrize(("t0", "t_mult"), [(1, 1), (1, 2), (2, 3), (50, 2)])
@pytest.mark.parametrize("eta_min", [0.0, 0.1])
def test_warm_restarts_edges_match_torch(n: int, t0: int, t_mult: int, eta_min: float) -> None:
    _both(f"cosine_restarts lr0=0.1 T_0={t0} T_mult={t_mult} eta_min={eta_min} unit=step",
          lambda o: L.CosineAnnealingWarmRestarts(o, t0, t_mult, eta_min), n)


@pytest.mark.parametrize("n", [1, 2, 6])
@pytest.mark.parametrize(("start", "end", "iters"), [(1.0, 0.0, 1), (0.25, 1.0, 2), (0.5, 0.5, 3), (1.0, 0.01, 6)])
def test_linear_and_polynomial_edges_match_torch(n: int, start: float, end: float, iters: int) -> None:
    _both(f"linear lr0=0.1 start_factor={start} end_factor={end} total_iters={iters}",
          lambda o: L.LinearLR(o, start, end, iters), n)
    for power in (0.0, 0.5, 2.0):
        _both(f"polynomial lr0=0.1 power={power} total_iters={iters}",
              lambda o, p=power: L.PolynomialLR(o, iters, p), n)


@pytest.mark.parametrize("n", [1, 2, 25])
@pytest.mark.parametrize(("up", "down"), [(1, None), (1, 1), (1.5, 2.5), (4, 1)])
@pytest.mark.parametrize(("mode", "gamma"), [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.9)])
def test_cyclic_edges_match_torch_with_momentum(n: int, up: float, down: float | None, mode: str,
                                                gamma: float) -> None:
    spec: dict[str, Any] = {"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": up, "mode": mode,
                            "gamma": gamma}
    if down is not None:
        spec["step_size_down"] = down
    _both(spec, lambda o: L.CyclicLR(o, 0.01, 0.1, up, down, mode=mode, gamma=gamma), n, momentum=True)


_ONECYCLE = [
    {"pct_start": 0.3}, {"pct_start": 0.0}, {"pct_start": 0.01}, {"pct_start": 0.99},
    {"pct_start": 0.25, "three_phase": True}, {"pct_start": 0.5, "three_phase": True, "anneal_strategy": "linear"},
    {"anneal_strategy": "linear", "div_factor": 1.0, "final_div_factor": 1.0},
    {"div_factor": 10.0, "final_div_factor": 100.0, "base_momentum": 0.7, "max_momentum": 0.99},
]


@pytest.mark.parametrize("n", [1, 2, 3, 40])
@pytest.mark.parametrize("kw", _ONECYCLE, ids=[str(k) for k in _ONECYCLE])
def test_onecycle_edges_match_torch_with_momentum(n: int, kw: dict[str, Any]) -> None:
    try:
        L.OneCycleLR(_sgd(), max_lr=0.1, total_steps=n, **kw)
        _torch_lrs(lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=n, **kw), n)
    except (ZeroDivisionError, ValueError):  # torch has no answer for an empty phase; lrkit refuses it
        with pytest.raises(ValueError, match="pct_start"):
            from_spec({"name": "onecycle", "max_lr": 0.1, **kw}, total_steps=n)
        return
    _both({"name": "onecycle", "max_lr": 0.1, **kw}, lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=n, **kw), n,
          momentum=True)


# ---- onecycle: an empty phase is refused with a pct_start that works ----------------------------------------------
@pytest.mark.parametrize(("spec", "n", "fix"), [
    ("onecycle max_lr=0.1 pct_start=0.1", 10, r"pct_start=0\.2"),  # 0.1 * 10 - 1 = 0: the rise ends where it starts
    ("onecycle max_lr=0.1 pct_start=0.25 three_phase=true", 4, r"pct_start=0\.5"),
    ("onecycle max_lr=0.1 pct_start=1", 10, r"pct_start < 1"),  # no step left for the anneal
])
def test_onecycle_empty_phase_error_says_which_pct_start_works(spec: str, n: int, fix: str) -> None:
    with pytest.raises(ValueError, match=rf"pct_start=\S+ .*total_steps={n}.*{fix}") as e:
        from_spec(spec, total_steps=n)
    # the value it proposes builds, and matches torch
    m = re.search(r"e\.g\. pct_start=([0-9.]+)", str(e.value))
    if m is not None:
        kw = {"three_phase": True} if "three_phase" in spec else {}
        _both(f"{spec.split(' pct_start')[0]} pct_start={m.group(1)}" + (" three_phase=true" if kw else ""),
              lambda o: L.OneCycleLR(o, 0.1, total_steps=n, pct_start=float(m.group(1)), **kw), n, momentum=True)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_constant_matches_torch_constant_lr_with_factor_one(n: int) -> None:
    _both("constant lr0=0.1", lambda o: L.ConstantLR(o, factor=1.0, total_iters=3), n)


# ---- plateau via observe(): random metric streams, eps and min_lr, two groups whose own LR is the peak -------------
@pytest.mark.parametrize("seed", range(30))
def test_plateau_observe_matches_torch_per_group_with_eps_and_min_lr(seed: int) -> None:
    import random

    rng = random.Random(seed)
    kw = {"mode": rng.choice(["min", "max"]), "threshold_mode": rng.choice(["rel", "abs"]),
          "factor": rng.choice([0.1, 0.5, 0.9]), "patience": rng.choice([0, 1, 3]), "cooldown": rng.choice([0, 2]),
          "threshold": rng.choice([0.0, 1e-4, 0.1]), "min_lr": rng.choice([0.0, 1e-3, 0.02]),
          "eps": rng.choice([0.0, 1e-8, 1e-3])}
    metrics = [rng.choice([1.0, 0.9, 1.1, 0.5, 2.0, -1.0, 0.0]) for _ in range(25)]
    every = rng.choice([1, 3])

    def opt() -> torch.optim.Optimizer:
        return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in (0.1, 0.004)],
                               lr=0.1)

    opt_t, opt_l = opt(), opt()
    ref_sched = L.ReduceLROnPlateau(opt_t, **kw)
    spec = "plateau " + " ".join(f"{k}={v}" for k, v in kw.items())  # no lr0: each group's own LR is its peak
    adapter = from_spec(spec, total_steps=len(metrics) * every).to_torch(opt_l)
    for i in range(len(metrics) * every):
        assert [g["lr"] for g in opt_l.param_groups] == pytest.approx([g["lr"] for g in opt_t.param_groups],
                                                                       rel=1e-12), (spec, i)
        opt_t.step()
        opt_l.step()
        adapter.step()
        if (i + 1) % every == 0:
            ref_sched.step(metrics[i // every])
            adapter.observe(metrics[i // every])
    assert [g["lr"] for g in opt_l.param_groups] == pytest.approx([g["lr"] for g in opt_t.param_groups], rel=1e-12)
