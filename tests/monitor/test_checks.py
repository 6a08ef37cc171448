"""Each health check on synthetic loss / gradient streams with a known answer, and the rolling record under them."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.monitor.checks import (
    ExplodingGradients,
    GradientBlowup,
    LossRising,
    LossSpike,
    LRTooLow,
    NonFinite,
    Oscillation,
    default_checks,
)
from lrkit.monitor.record import RollingRecord, robust_stats

NAN, INF = float("nan"), float("inf")


def noisy(n: int, level: float, spread: float, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.uniform(-spread, spread) for _ in range(n)]


# ------------------------------------------------------------------------------------------------------ record
def test_robust_stats_known_values() -> None:
    stats = robust_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (stats.median, stats.mad, stats.n) == (3.0, 1.0, 5)
    assert stats.sigma == pytest.approx(1.4826)
    assert robust_stats([]).n == 0


def test_reference_excludes_the_value_being_judged_and_skips_non_finite() -> None:
    rec = RollingRecord.from_stream([1.0, 2.0, NAN, 3.0, 50.0])
    assert rec.reference("loss", 10).median == pytest.approx(2.0)  # of 1, 2, 3 — not 50, not nan
    assert rec.window("loss", 10) == [1.0, 2.0, 3.0, 50.0]
    assert rec.seen["loss"] == 4 and rec.step == 4 and rec.start_loss == 1.0


def test_trend_and_its_low_follow_the_running_median() -> None:
    rec = RollingRecord.from_stream([2.0] * 20 + [1.0] * 20 + [1.5] * 20, refresh=10, trend_window=20)
    assert rec.trend == 1.5 and rec.trend_low == 1.0


def test_push_losses_equals_pushing_one_by_one() -> None:
    values = [*noisy(57, 1.0, 0.3), NAN, 2.0]
    a = RollingRecord(capacity=64, refresh=1, trend_window=8)
    b = RollingRecord(capacity=64, refresh=1, trend_window=8)
    for v in values:
        a.push(v)
    b.push_losses(values)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["values"] == sb["values"] and sa["seen"] == sb["seen"] and sa["step"] == sb["step"]
    assert sa["last_loss"] == sb["last_loss"] and sa["start_loss"] == sb["start_loss"]


def test_record_state_dict_round_trips_through_json() -> None:
    rec = RollingRecord.from_stream(noisy(80, 2.0, 0.5), noisy(80, 1.0, 0.1), update_ratios=[1e-3, 2e-3],
                                    val_losses=[0.5, 0.4], val_train_losses=[0.6, 0.5], lr=0.1)
    state = json.loads(json.dumps(rec.state_dict()))
    back = RollingRecord(capacity=rec.capacity, refresh=rec.refresh)
    back.load_state_dict(state)
    assert back.state_dict() == rec.state_dict()
    with pytest.raises(ValueError, match="missing keys"):
        back.load_state_dict({"values": {}})


def test_record_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="capacity=1"):
        RollingRecord(capacity=1)
    with pytest.raises(ValueError, match="trend_window=50"):
        RollingRecord(capacity=20, trend_window=50)


# ------------------------------------------------------------------------------------------------------ non-finite
@pytest.mark.parametrize(
    ("loss", "grad", "fires"),
    [(1.0, 1.0, False), (NAN, 1.0, True), (INF, 1.0, True), (1.0, NAN, True), (1.0, INF, True), (-INF, 0.0, True)],
)
def test_non_finite(loss: float, grad: float, fires: bool) -> None:
    rec = RollingRecord.from_stream([1.0, loss], [1.0, grad])
    assert (NonFinite().check(rec) is not None) == fires


def test_non_finite_grads_off_and_unmeasured_gradients() -> None:
    assert NonFinite(grads=False).check(RollingRecord.from_stream([1.0, 1.0], [1.0, NAN])) is None
    assert NonFinite().check(RollingRecord.from_stream([1.0, 1.0])) is None  # no gradient norm pushed
    assert "gradient norm is nan" in NonFinite().check(RollingRecord.from_stream([1.0], [NAN])).reason


# ------------------------------------------------------------------------------------------------------ loss spike
def test_loss_spike_threshold_is_the_documented_formula() -> None:
    calm = noisy(40, 1.0, 0.05, seed=3)
    rec = RollingRecord.from_stream([*calm, 1.0])
    ref = robust_stats(calm)
    check = LossSpike()
    expected = ref.median + max(6.0 * ref.sigma, 1.0 * ref.median, 1.5 * calm[0])
    assert check.screen(rec) == pytest.approx(expected)
    just_below = RollingRecord.from_stream([*calm, expected - 1e-09])
    just_above = RollingRecord.from_stream([*calm, expected + 1e-09])
    assert check.check(just_below) is None
    found = check.check(just_above)
    assert found is not None and found.values["threshold"] == pytest.approx(expected)
    assert "overshot" in found.reason


def test_loss_spike_is_quiet_on_heavy_tailed_batch_noise() -> None:
    # a healthy logistic-regression-like stream: losses near 0.05 with occasional hard batches at 0.3 (6x median)
    rng = random.Random(0)
    stream = [0.67] + [0.05 * rng.uniform(0.2, 1.8) if rng.random() > 0.05 else 0.3 for _ in range(300)]
    for i in range(2, len(stream)):
        assert LossSpike().check(RollingRecord.from_stream(stream[: i + 1])) is None


def test_loss_spike_catches_a_blow_up_from_the_second_step() -> None:
    assert LossSpike().check(RollingRecord.from_stream([1.0, 2.4])) is None  # below 2.5 * L0
    assert LossSpike().check(RollingRecord.from_stream([1.0, 2.6])) is not None
    assert LossSpike(min_history=5).check(RollingRecord.from_stream([1.0, 9.0])) is None
    assert LossSpike().check(RollingRecord.from_stream([1.0, NAN])) is None  # NonFinite's business


@settings(max_examples=40, deadline=None)
@given(level=st.floats(0.01, 100.0), jitter=st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=60))
def test_loss_spike_never_fires_on_a_stream_within_20_percent(level: float, jitter: list[float]) -> None:
    rec = RollingRecord.from_stream([level * (1.0 + j) for j in jitter])
    assert LossSpike().check(rec) is None


# ------------------------------------------------------------------------------------------------------ gradients
def test_gradient_blowup_from_the_second_step() -> None:
    found = GradientBlowup().check(RollingRecord.from_stream([1.0, 1.2], [0.1, 8.0]))
    assert found is not None and found.values["ratio"] == pytest.approx(80.0)
    assert GradientBlowup().check(RollingRecord.from_stream([1.0, 1.2], [0.1, 4.0])) is None  # 40x < 50x
    assert GradientBlowup().check(RollingRecord.from_stream([1.0], [5.0])) is None  # no history yet


def test_exploding_gradients_needs_history_and_reports_the_clip_target() -> None:
    norms = noisy(25, 2.0, 0.2, seed=1)
    med = statistics.median(norms)
    found = ExplodingGradients().check(RollingRecord.from_stream([1.0] * 26, [*norms, 10.5 * med]))
    assert found is not None
    assert found.values["median"] == pytest.approx(med) and found.values["clip_to"] == pytest.approx(2.0 * med)
    assert ExplodingGradients().check(RollingRecord.from_stream([1.0] * 26, [*norms, 9.5 * med])) is None
    short = norms[:5]
    assert ExplodingGradients().check(RollingRecord.from_stream([1.0] * 6, [*short, 40 * med])) is None


# ------------------------------------------------------------------------------------------------------ windows
def test_oscillation_fires_when_spread_grows_and_mean_does_not_fall() -> None:
    calm = noisy(50, 1.0, 0.02, seed=2)
    wild_flat = [1.0 + (0.3 if i % 2 else -0.3) for i in range(50)]
    wild_falling = [0.5 + (0.3 if i % 2 else -0.3) for i in range(50)]
    found = Oscillation().check(RollingRecord.from_stream(calm + wild_flat))
    assert found is not None and found.values["std_ratio"] > 2.0
    assert found.values["std_after"] == pytest.approx(0.3, rel=1e-6)
    assert Oscillation().check(RollingRecord.from_stream(calm + wild_falling)) is None  # mean fell: descending
    assert Oscillation().check(RollingRecord.from_stream(calm + calm)) is None
    tiny = [1e-3 * v for v in calm] + [1e-3 * v for v in wild_flat]  # spread grew but is tiny next to L0 = 1
    assert Oscillation().check(RollingRecord.from_stream([1.0, *tiny[1:]])) is None
    assert Oscillation().check(RollingRecord.from_stream(calm + wild_flat[:10])) is None  # not enough history


def test_loss_rising_detects_a_collapse_back_to_the_start() -> None:
    down = [2.3 - 1.8 * i / 99 for i in range(100)]
    dead = [2.3] * 60
    found = LossRising().check(RollingRecord.from_stream(down + dead, refresh=10))
    assert found is not None and found.values["lost"] == pytest.approx(1.0, abs=0.05)
    assert LossRising().check(RollingRecord.from_stream(down + [0.5] * 60, refresh=10)) is None
    no_progress = [2.3 - 0.2 * i / 99 for i in range(100)] + [2.3] * 60  # never got 20% below the start
    assert LossRising().check(RollingRecord.from_stream(no_progress, refresh=10)) is None


def test_lr_too_low_needs_small_updates_a_flat_loss_and_no_anneal() -> None:
    flat_high = [2.3 - 1e-4 * i for i in range(100)]
    check = LRTooLow()
    found = check.check(RollingRecord.from_stream(flat_high, update_ratios=[1e-6, 2e-6], lr=1e-5))
    assert found is not None and found.values["ratio"] == pytest.approx(1.5e-6)
    assert check.check(RollingRecord.from_stream(flat_high, update_ratios=[1e-3, 1e-3], lr=1e-2)) is None
    falling = [2.3 * (1 - i / 150) for i in range(100)]
    assert check.check(RollingRecord.from_stream(falling, update_ratios=[1e-6, 1e-6], lr=1e-5)) is None
    converged = [0.01] * 100
    assert check.check(RollingRecord.from_stream([2.3, *converged[1:]], update_ratios=[1e-6] * 2, lr=1e-5)) is None
    annealed = RollingRecord.from_stream(flat_high, update_ratios=[1e-6, 1e-6], lr=1.0)
    annealed.set_lr(0.05)  # the schedule decays to 5% of its peak: small updates are the plan
    assert check.check(annealed) is None


# ------------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: LossSpike(ratio=1.0), "ratio=1.0"),
        (lambda: LossSpike(window=1), "window=1"),
        (lambda: LossSpike(floor=-1.0), "floor=-1.0"),
        (lambda: ExplodingGradients(factor=0.5), "factor=0.5"),
        (lambda: GradientBlowup(factor=float("nan")), "factor=nan"),
        (lambda: Oscillation(min_drop=1.5), "min_drop=1.5"),
        (lambda: LRTooLow(samples=0), "samples=0"),
        (lambda: LossRising(rise=0), "rise=0"),
    ],
)
def test_bad_thresholds_name_the_value(factory, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


def test_default_checks_are_fresh_distinct_and_configurable() -> None:
    a, b = default_checks(), default_checks()
    assert [c.name for c in a] == [
        "non_finite", "loss_spike", "gradient_blowup", "loss_rising", "oscillation", "exploding_gradients",
        "lr_too_low", "val_rising",
    ]  # fmt: skip
    assert a is not b and len({c.name for c in a}) == len(a)
    assert LossSpike(ratio=3.0).config() == {"name": "loss_spike", "window": 50, "min_history": 1, "ratio": 3.0,
                                             "sigmas": 6.0, "floor": 1.5, "every": 1, "cooldown": 0}
    assert all(math.isfinite(v) for c in a for v in c.config().values() if isinstance(v, float))
