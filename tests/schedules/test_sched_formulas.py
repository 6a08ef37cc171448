"""Schedules against their published formulas: Ultralytics, transformers' WSD / linear / inverse-sqrt, warmups."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from _sched_helpers import group_momentum, make_optimizer

from lrkit.schedules import Composed, Constant, Cosine, Warmup, from_spec, ultralytics


# ---------------------------------------------------------------------------------------------------------------
# Ultralytics (ultralytics/engine/trainer.py): lf, and the warmup loop of _do_train, written out as the reference.
# ---------------------------------------------------------------------------------------------------------------
def ultralytics_lf(lrf: float, epochs: int, cos_lr: bool):
    if cos_lr:
        return lambda x: ((1 - math.cos(x * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return lambda x: max(1 - x / epochs, 0) * (1.0 - lrf) + lrf


def ultralytics_reference(*, lr0: float, lrf: float, cos_lr: bool, epochs: int, nb: int, warmup_epochs: float,
                          warmup_bias_lr: float, warmup_momentum: float, momentum: float, per_epoch: bool):
    """(bias-group LR, other groups' LR, momentum) at every iteration ni, as Ultralytics' trainer sets them.

    ``per_epoch`` evaluates lf at the integer epoch (Ultralytics' LambdaLR stepped once per epoch); otherwise at the
    fractional epoch ni / nb (lrkit's default).
    """
    lf = ultralytics_lf(lrf, epochs, cos_lr)
    nw = max(round(warmup_epochs * nb), 100) if warmup_epochs > 0 else -1
    bias, other, mom = [], [], []
    for epoch in range(epochs):
        for i in range(nb):
            ni = i + nb * epoch
            x = epoch if per_epoch else ni / nb
            target = lr0 * lf(x)
            if ni <= nw:
                xi = [0, nw]
                bias.append(float(np.interp(ni, xi, [warmup_bias_lr, target])))
                other.append(float(np.interp(ni, xi, [0.0, target])))
                mom.append(float(np.interp(ni, xi, [warmup_momentum, momentum])))
            else:
                bias.append(target)
                other.append(target)
                mom.append(momentum)
    return bias, other, mom


@pytest.mark.parametrize("cos_lr", [False, True], ids=["linear", "cosine"])
@pytest.mark.parametrize("per_epoch", [False, True], ids=["per-step", "per-epoch"])
def test_ultralytics_formula_and_warmup(cos_lr: bool, per_epoch: bool) -> None:
    # warmup_epochs * nb = 120 >= 100, so Ultralytics' max(round(warmup_epochs * nb), 100) is exactly 120 too
    epochs, nb = 12, 40
    kw = dict(lr0=0.01, lrf=0.02, warmup_epochs=3.0, warmup_bias_lr=0.1, warmup_momentum=0.8, momentum=0.937)
    ref_bias, ref_other, ref_mom = ultralytics_reference(cos_lr=cos_lr, epochs=epochs, nb=nb, per_epoch=per_epoch,
                                                         **kw)  # type: ignore[arg-type]
    name = "cosine" if cos_lr else "linear"
    spec = " ".join([name, *(f"{k}={v}" for k, v in kw.items()), "interval=epoch" if per_epoch else ""])
    sched = from_spec(spec, epochs=epochs, steps_per_epoch=nb)
    assert sched.total_steps == epochs * nb
    for t in range(epochs * nb):
        assert sched.lr(t) == pytest.approx(ref_other[t], abs=1e-12)
        assert sched.lr(t, is_bias=True) == pytest.approx(ref_bias[t], abs=1e-12)
        assert sched.momentum(t) == pytest.approx(ref_mom[t], abs=1e-12)
    # and through torch: a bias group flagged is_bias (Ultralytics' g[2]), a weight group and a BN group
    opt = make_optimizer([0.01, 0.01, 0.01], bias=[True, False, False], momentum=0.937)
    torch_sched = sched.to_torch(opt)
    for t in range(epochs * nb):
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs[0] == pytest.approx(ref_bias[t], abs=1e-12)
        assert lrs[1] == lrs[2] == pytest.approx(ref_other[t], abs=1e-12)
        assert group_momentum(opt.param_groups[1]) == pytest.approx(ref_mom[t], abs=1e-12)
        opt.step()
        torch_sched.step()


def test_ultralytics_convenience_is_the_spec() -> None:
    a = ultralytics(lr0=0.01, lrf=0.01, cos_lr=True, epochs=20, steps_per_epoch=30)
    b = from_spec("cosine lr0=0.01 lrf=0.01 warmup_epochs=3 warmup_bias_lr=0.1 warmup_momentum=0.8 momentum=0.937",
                  epochs=20, steps_per_epoch=30)
    c = from_spec("ultralytics cos_lr=true", epochs=20, steps_per_epoch=30)  # the registry entry, same defaults
    for t in range(600):
        assert a.lr(t) == b.lr(t) == c.lr(t)
        assert a.lr(t, is_bias=True) == b.lr(t, is_bias=True) == c.lr(t, is_bias=True)
        assert a.momentum(t) == b.momentum(t) == c.momentum(t)
    lin = ultralytics(lr0=0.02, lrf=0.1, cos_lr=False, epochs=10, steps_per_epoch=10, warmup_epochs=0)
    lf = ultralytics_lf(0.1, 10, cos_lr=False)
    assert [lin.lr(t) for t in range(100)] == pytest.approx([0.02 * lf(t / 10) for t in range(100)], abs=1e-15)
    # warmup length is exactly warmup_epochs * steps_per_epoch (Ultralytics' trainer would use at least 100)
    short = ultralytics(lr0=0.01, lrf=0.01, cos_lr=True, epochs=10, steps_per_epoch=5)
    assert short.phases[0].name == "warmup" and short.phases[0].end == 15


# ---------------------------------------------------------------------------------------------------------------
# transformers.optimization (published formulas, written out; transformers is not a dependency)
# ---------------------------------------------------------------------------------------------------------------
def hf_wsd(step: int, *, W: int, S: int, D: int, warmup_type: str, decay_type: str, min_lr_ratio: float) -> float:
    """transformers' _get_wsd_scheduler_lambda (num_cycles=0.5)."""
    if step < W:
        p = step / max(1, W)
        f = {"linear": p, "cosine": 0.5 * (1.0 - math.cos(math.pi * p)), "1-sqrt": 1.0 - math.sqrt(1.0 - p)}
        return max(0.0, f[warmup_type] * (1.0 - min_lr_ratio) + min_lr_ratio)
    if step < W + S:
        return 1.0
    if step < W + S + D:
        p = (step - W - S) / max(1, D)
        f = {"linear": 1.0 - p, "cosine": 0.5 * (1.0 + math.cos(math.pi * 2.0 * 0.5 * p)), "1-sqrt": 1.0 - math.sqrt(p)}
        return max(0.0, f[decay_type] * (1.0 - min_lr_ratio) + min_lr_ratio)
    return min_lr_ratio


@pytest.mark.parametrize("warmup_type", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("decay_type", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1])
def test_wsd_matches_transformers(warmup_type: str, decay_type: str, min_lr_ratio: float) -> None:
    s = from_spec(f"wsd lr0=0.001 warmup_steps=100 decay_frac=0.1 warmup_type={warmup_type} "
                  f"decay_type={decay_type} min_lr_ratio={min_lr_ratio}", total_steps=1000)
    assert [(p.name, p.start, p.end) for p in s.phases] == [("warmup", 0, 100), ("stable", 100, 900),
                                                             ("decay", 900, 1000)]
    for t in range(0, 1001):
        ref = hf_wsd(t, W=100, S=800, D=100, warmup_type=warmup_type, decay_type=decay_type, min_lr_ratio=min_lr_ratio)
        assert s(t) == pytest.approx(ref, abs=1e-12)
        assert s.lr(t) == pytest.approx(0.001 * ref, abs=1e-15)


def test_wsd_documented_example_and_decay_units() -> None:
    s = from_spec("wsd lr0=0.001 warmup_steps=100 decay_frac=0.1", total_steps=2000)
    assert (s.lr(0), s.lr(100), s.lr(1799), s.lr(2000)) == (0.0, 0.001, 0.001, 0.0)
    by_epochs = from_spec("wsd lr0=0.001 warmup_epochs=1 decay_epochs=2", epochs=10, steps_per_epoch=100)
    assert [(p.start, p.end) for p in by_epochs.phases] == [(0, 100), (100, 800), (800, 1000)]


def test_linear_to_zero_matches_transformers_linear_with_warmup() -> None:
    W, T = 30, 200
    s = from_spec(f"linear_to_zero lr0=1 warmup_steps={W}", total_steps=T)
    for t in range(T + 5):
        ref = t / max(1, W) if t < W else max(0.0, (T - t) / max(1, T - W))
        assert s(t) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("timescale", [None, 200])
def test_inverse_sqrt_matches_transformers(timescale: int | None) -> None:
    W = 50
    extra = "" if timescale is None else f" timescale={timescale}"
    s = from_spec(f"inverse_sqrt lr0=1e-3 warmup_steps={W}{extra}")
    ts = timescale or W  # transformers: timescale = num_warmup_steps or 10_000
    for t in range(0, 3000, 7):
        ref = t / max(1, W) if t < W else 1.0 / math.sqrt((t + ts - W) / ts)
        assert s(t) == pytest.approx(ref, abs=1e-12)
    no_warmup = from_spec("inverse_sqrt")
    assert no_warmup(30_000) == pytest.approx(0.5)  # 1/sqrt(1 + 30000/10000)


# ---------------------------------------------------------------------------------------------------------------
# Warmup semantics
# ---------------------------------------------------------------------------------------------------------------
def test_warmup_prefix_vs_overlay() -> None:
    # prefix: the cosine starts after the warmup and spans the rest of the run
    pre = from_spec("cosine lr0=1 lrf=0 warmup_steps=10 warmup_prefix=true", total_steps=110)
    cos = Cosine(lr0=1.0, lrf=0.0, total_steps=100)
    assert [pre(10 + k) for k in range(101)] == pytest.approx([cos(k) for k in range(101)], abs=1e-15)
    assert [pre(t) for t in range(11)] == pytest.approx([t / 10 for t in range(11)], abs=1e-15)
    # overlay (cosine's default, Ultralytics): the cosine runs on the global clock and the warmup blends into it
    over = from_spec("cosine lr0=1 lrf=0 warmup_steps=10", total_steps=110)
    glob = Cosine(lr0=1.0, lrf=0.0, total_steps=110)
    assert [over(t) for t in range(10, 111)] == pytest.approx([glob(t) for t in range(10, 111)], abs=1e-15)
    assert [over(t) for t in range(10)] == pytest.approx([glob(t) * t / 10 for t in range(10)], abs=1e-15)


def test_step_decay_with_warmup_keeps_epoch_milestones() -> None:
    s = from_spec("step lr0=0.1 step_size=3 gamma=0.1 warmup_epochs=1", epochs=9, steps_per_epoch=10)
    assert s.lr(0) == 0.0 and s.lr(5) == pytest.approx(0.05)
    assert s.lr(29) == pytest.approx(0.1) and s.lr(30) == pytest.approx(0.01) and s.lr(60) == pytest.approx(0.001)


@pytest.mark.parametrize("wtype", ["linear", "cosine", "1-sqrt", "exponential"])
def test_warmup_shapes(wtype: str) -> None:
    W = 20
    s = from_spec(f"constant lr0=1 warmup_steps={W} warmup_type={wtype} warmup_start_factor=0.05", total_steps=60)
    sf = 0.05
    for t in range(W + 1):
        p = t / W
        ref = {
            "linear": sf + (1 - sf) * p,
            "cosine": sf + (1 - sf) * 0.5 * (1 - math.cos(math.pi * p)),
            "1-sqrt": sf + (1 - sf) * (1 - math.sqrt(1 - p)),
            "exponential": sf ** (1 - p),  # geometric from sf to 1
        }[wtype]
        assert s(t) == pytest.approx(ref, abs=1e-12)
    assert all(s(t) == 1.0 for t in range(W, 60))


def test_bias_groups_warm_down_others_up_momentum_up() -> None:
    s = Composed(Constant(lr0=0.01, total_steps=100),
                 warmup=Warmup(50, bias_lr=0.1, start_momentum=0.8, prefix=False), momentum=0.95)
    bias = [s.lr(t, is_bias=True) for t in range(51)]
    other = [s.lr(t) for t in range(51)]
    mom = [s.momentum(t) for t in range(51)]
    assert bias[0] == 0.1 and other[0] == 0.0 and mom[0] == 0.8
    assert bias[50] == pytest.approx(0.01) and other[50] == pytest.approx(0.01) and mom[50] == pytest.approx(0.95)
    assert all(a > b for a, b in itertools.pairwise(bias))
    assert all(a < b for a, b in itertools.pairwise(other))
    assert all(a < b for a, b in itertools.pairwise(mom))  # type: ignore[operator]
    assert s.momentum(99) == 0.95 and s.lr(99, is_bias=True) == 0.01


def test_warmup_in_front_of_onecycle_ramps_momentum_to_the_cycle() -> None:
    s = from_spec("onecycle max_lr=0.1 warmup_steps=10 warmup_momentum=0.5", total_steps=110)
    assert s.momentum(0) == 0.5
    assert s.momentum(10) == pytest.approx(0.95)  # one-cycle's max_momentum at its step 0
    assert s.lr(10) == pytest.approx(0.1 / 25)


def test_cooldown_after_any_schedule() -> None:
    s = from_spec("cosine lr0=1 lrf=0.5 cooldown_frac=0.2 cooldown_type=1-sqrt cooldown_min_ratio=0.05",
                  total_steps=100)
    main = Cosine(lr0=1.0, lrf=0.5, total_steps=80)
    assert [s(t) for t in range(80)] == pytest.approx([main(t) for t in range(80)], abs=1e-15)
    for t in range(80, 101):
        p = (t - 80) / 20
        assert s(t) == pytest.approx(0.05 + (0.5 - 0.05) * (1 - math.sqrt(p)), abs=1e-12)
    assert [p.name for p in s.phases] == ["decay", "cooldown"]


def test_phase_records_are_data() -> None:
    s = from_spec("onecycle max_lr=0.1 three_phase=true", total_steps=100)
    ph = s.phases
    assert [(p.name, p.start, p.end) for p in ph] == [("warmup", 0, 30), ("anneal-down", 30, 59), ("anneal", 59, 100)]
    assert ph[0].start_value == pytest.approx(1 / 25) and ph[0].end_value == pytest.approx(1.0)
    assert ph[2].end_value == pytest.approx(1 / 25 / 1e4)
    with pytest.raises(AttributeError):
        ph[0].start = 3  # type: ignore[misc]
    assert ph[0].to_dict()["kind"] == "cos"


def test_interval_epoch_is_a_staircase() -> None:
    s = from_spec("exponential lr0=1 gamma=0.5 interval=epoch", steps_per_epoch=4, total_steps=12)
    assert [s(t) for t in range(12)] == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    smooth = from_spec("exponential lr0=1 gamma=0.5", steps_per_epoch=4, total_steps=12)
    assert smooth(2) == pytest.approx(0.5**0.5)


@pytest.mark.parametrize("total", [45, 97, 1000])
@pytest.mark.parametrize("start", [1.0, 0.2286341391002226, 0.1])
def test_linear_to_zero_is_exactly_zero_at_the_end_never_negative(total: int, start: float) -> None:
    # hypothesis found -2.8e-17 from `s + (e - s) * t / T`; an interpolation is exact at both ends
    s = from_spec(f"linear start_factor={start} end_factor=0 total_iters={total} unit=step", total_steps=total)
    values = [s(t) for t in range(total + 5)] + [s.replan(at_step=0, total_steps=total)(t) for t in range(total + 5)]
    assert min(values) >= 0.0
    assert s(total) == 0.0 and s(0) == start
