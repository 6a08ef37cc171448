"""Hypothesis properties: finite, non-negative, within the documented bounds; warmups monotone; re-plan continuous."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lrkit.schedules import (
    Composed,
    Constant,
    Cosine,
    CosineRestarts,
    Cyclic,
    Exponential,
    InverseSqrt,
    Linear,
    OneCycle,
    Polynomial,
    ReduceOnPlateau,
    Schedule,
    StepDecay,
    Warmup,
    from_spec,
)

SETTINGS = settings(max_examples=60, deadline=None)
totals = st.integers(min_value=1, max_value=300)
ratios = st.floats(min_value=0.0, max_value=1.0)
peaks = st.floats(min_value=1e-6, max_value=10.0)


def _checked(s: Schedule, lo: float, hi: float, steps: int, tol: float = 1e-12) -> list[float]:
    """Every multiplier (including past the end) is finite, >= 0 and inside [lo, hi]; momentum finite when set."""
    vals = [s(t) for t in range(steps + 20)]
    for v in vals:
        assert math.isfinite(v) and v >= 0.0
        assert lo - tol <= v <= hi + tol
    for t in range(0, steps + 20, 7):
        m = s.momentum(t)
        assert m is None or (math.isfinite(m) and 0.0 <= m < 1.0)
    return vals


@st.composite
def families(draw: st.DrawFn) -> tuple[Schedule, float, float, int]:
    """(schedule, documented lower bound, upper bound, total steps) for a random family and parameters."""
    total = draw(totals)
    lr0 = draw(peaks)
    kind = draw(st.sampled_from(["cosine", "linear", "step", "exp", "poly", "restarts", "cyclic", "onecycle",
                                 "inverse_sqrt", "constant", "wsd", "plateau"]))
    if kind == "cosine":
        f = draw(ratios)
        return Cosine(lr0=lr0, lrf=f, total_steps=total), f, 1.0, total
    if kind == "linear":
        a, b = draw(st.floats(0, 1)), draw(st.floats(0, 1))
        return Linear(lr0=lr0, start_factor=a, end_factor=b, total_steps=total), min(a, b), max(a, b), total
    if kind == "step":
        g = draw(st.floats(1e-3, 1.0))
        return StepDecay(lr0=lr0, step_size=draw(st.integers(1, 50)), gamma=g, unit="step", total_steps=total), \
            0.0, 1.0, total
    if kind == "exp":
        return Exponential(lr0=lr0, gamma=draw(st.floats(0.5, 1.0)), unit="step", total_steps=total), 0.0, 1.0, total
    if kind == "poly":
        return Polynomial(lr0=lr0, power=draw(st.floats(0, 4)), total_steps=total), 0.0, 1.0, total
    if kind == "restarts":
        f = draw(ratios)
        return CosineRestarts(lr0=lr0, lrf=f, T_0=draw(st.integers(1, 40)), T_mult=draw(st.integers(1, 3)),
                              unit="step", total_steps=total), f, 1.0, total
    if kind == "cyclic":
        base = lr0 * draw(ratios)
        s = Cyclic(base_lr=base, max_lr=lr0, step_size_up=draw(st.integers(1, 60)),
                   step_size_down=draw(st.none() | st.integers(1, 60)),
                   mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
                   gamma=draw(st.floats(0.9, 1.0)), total_steps=total)
        return s, base / lr0, 1.0, total
    if kind == "onecycle":
        div, final = draw(st.floats(1.0, 100.0)), draw(st.floats(1.0, 1e4))
        try:
            s = OneCycle(max_lr=lr0, total_steps=max(total, 4), pct_start=draw(st.floats(0.05, 0.95)),
                         div_factor=div, final_div_factor=final, three_phase=draw(st.booleans()),
                         anneal_strategy=draw(st.sampled_from(["cos", "linear"])))
        except ValueError:
            assume(False)
        return s, 1.0 / div / final, 1.0, max(total, 4)
    if kind == "inverse_sqrt":
        return InverseSqrt(lr0=lr0, timescale=draw(st.floats(1.0, 1e4)), total_steps=total), 0.0, 1.0, total
    if kind == "constant":
        return Constant(lr0=lr0, total_steps=total), 1.0, 1.0, total
    if kind == "wsd":
        r = draw(ratios)
        total = max(total, 10)
        s = from_spec({"name": "wsd", "lr0": lr0, "warmup_steps": total // 5, "decay_frac": 0.3, "min_lr_ratio": r,
                       "decay_type": draw(st.sampled_from(["linear", "cosine", "1-sqrt"])),
                       "warmup_type": draw(st.sampled_from(["linear", "cosine", "1-sqrt", "exponential"])) if r > 0
                       else "linear"}, total_steps=total)
        return s, r, 1.0, total
    factor, min_lr = draw(st.floats(0.05, 0.9)), lr0 * draw(st.floats(0.0, 0.5))
    s = ReduceOnPlateau(lr0=lr0, factor=factor, patience=draw(st.integers(0, 3)), min_lr=min_lr, total_steps=total)
    for i, metric in enumerate(draw(st.lists(st.floats(-10, 10), max_size=20))):
        s.observe(metric, step=i * max(1, total // 20))
    return s, min_lr / lr0, 1.0, total


@SETTINGS
@given(families())
def test_finite_non_negative_within_bounds(case: tuple[Schedule, float, float, int]) -> None:
    s, lo, hi, total = case
    vals = _checked(s, lo, hi, total)
    peak = s.peak_lr
    assert peak is not None and s.lr(total // 2) == pytest.approx(peak * vals[total // 2])


@SETTINGS
@given(families())
def test_decaying_families_never_increase(case: tuple[Schedule, float, float, int]) -> None:
    s, _, _, total = case
    assume(isinstance(s, (Cosine, StepDecay, Exponential, Polynomial, InverseSqrt, ReduceOnPlateau))
           or (isinstance(s, Linear) and s.end_factor <= s.start_factor))
    vals = [s(t) for t in range(total + 5)]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(vals))


@SETTINGS
@given(families(), st.integers(1, 100), st.sampled_from(["linear", "cosine", "1-sqrt", "exponential"]),
       st.floats(0.0, 1.0), st.booleans())
def test_prefix_warmup_is_monotone(case: tuple[Schedule, float, float, int], w: int, wtype: str, sf: float,
                                   bias: bool) -> None:
    main, _, hi, _ = case
    target = main(0)
    assume(target > 0)
    start = min(sf, target) if wtype != "exponential" else max(min(sf, target), 1e-3 * target)
    assume(wtype != "exponential" or start > 0)  # 1e-3 x a subnormal target (5e-324) is 0: no exponential from 0
    bias_lr = (main.peak_lr or 1.0) * hi * 2 if bias else None  # the bias group starts above and comes down
    s = Composed(main, warmup=Warmup(w, type=wtype, start_factor=start, bias_lr=bias_lr, prefix=True))
    up = [s(t) for t in range(w + 1)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(up))
    assert up[0] == pytest.approx(start) and up[-1] == pytest.approx(target)
    if bias:
        down = [s(t, is_bias=True) for t in range(w + 1)]
        assert all(b <= a + 1e-12 for a, b in itertools.pairwise(down))
        assert down[0] == pytest.approx(2 * hi) and down[-1] == pytest.approx(target)


@SETTINGS
@given(st.sampled_from(["cosine", "linear"]), totals, ratios, st.floats(0.0, 0.25), st.booleans())
def test_blended_warmup_is_monotone_when_at_most_a_quarter_of_the_run(name: str, total: int, lrf: float,
                                                                       frac: float, bias: bool) -> None:
    # documented: blending into the live schedule (Ultralytics) stays monotone while warmup <= total / 4
    w = int(frac * total)
    assume(w >= 1)
    extra = " warmup_bias_lr=0.5 warmup_momentum=0.8 momentum=0.9" if bias else ""
    s = from_spec(f"{name} lr0=0.01 lrf={lrf} warmup_steps={w}{extra}", total_steps=total)
    up = [s(t) for t in range(w + 1)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(up))
    if bias:
        down = [s(t, is_bias=True) for t in range(w + 1)]
        assert all(b <= a + 1e-12 for a, b in itertools.pairwise(down))
        mom = [s.momentum(t) for t in range(w + 1)]
        assert all(b >= a for a, b in itertools.pairwise(mom))  # type: ignore[operator]


@SETTINGS
@given(families(), st.floats(0.0, 0.99), st.floats(0.05, 4.0))
def test_replan_is_continuous(case: tuple[Schedule, float, float, int], at_frac: float, scale: float) -> None:
    s, lo, hi, total = case
    assume(not s.stateful)
    at = int(at_frac * total)
    assume(at < total)
    new_total = max(at + 1, round(total * scale))
    r = s.replan(at_step=at, total_steps=new_total)
    assert all(r(t) == s(t) for t in range(at + 1))
    assert r(new_total + 3) == pytest.approx(s(total + 3), abs=1e-12)
    _checked(r, lo, hi, new_total)
