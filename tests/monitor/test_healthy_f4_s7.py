"""``ValidationRising(min_share=...)`` / ``Monitor(val_min_share=...)``: a validation rise must also give back a share
of the progress made since the first evaluation, ``val_loss - best > min_share * (V1 - best)``. Known answers on
synthetic validation streams (the share is computed by hand), the default left exactly as it was, the keyword's
wiring and errors, and the Monitor end to end on the fourth fresh set's false alarm (s_curve_mlp, seed 1: a regression
at its noise floor whose validation loss wanders 25% around a best 50x below the first evaluation)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.monitor import LossSpike, Monitor, MonitorWarning, RollingRecord, ValidationRising

# s_curve_mlp seed 1 at its oracle LR, rounded: the evaluations from the first to the one that fired
S_CURVE_VALS = [0.29, 0.0703, 0.0155, 0.0155, 0.0226, 0.0083, 0.00578, 0.00671, 0.00761, 0.0072]
S_CURVE_TRAIN = [0.24, 0.0225, 0.0204, 0.0113, 0.0165, 0.0126, 0.00681, 0.00713, 0.00804, 0.0053]
# a memorising run: the validation loss gives back most of what it had gained while training keeps falling
MEMO_VALS = [1.0, 0.6, 0.5, 0.62, 0.7]
MEMO_TRAIN = [1.0, 0.6, 0.5, 0.35, 0.25]


def rec(vals: list[float], trains: list[float] | None = None, capacity: int = 200) -> RollingRecord:
    return RollingRecord.from_stream([1.0], val_losses=vals, val_train_losses=trains, capacity=capacity)


def share(vals: list[float]) -> float:
    best = min(vals[:-1])
    return (vals[-1] - best) / (vals[0] - best)


@pytest.mark.parametrize(
    ("vals", "min_share", "fires"),
    [
        ([1.0, 0.2, 0.25, 0.3], 0.10, True),  # share 0.1 / 0.8 = 0.125 > 0.10
        ([1.0, 0.2, 0.25, 0.3], 0.125, False),  # the bound itself: not above it
        ([1.0, 0.2, 0.25, 0.3], 0.20, False),
        ([0.5, 0.2, 0.25, 0.5], 0.99, True),  # back at the first evaluation: share 1
        ([-1.0, -2.0, -1.8, -1.7], 0.25, True),  # sign-safe: 0.3 / 1.0 = 0.3
        ([-1.0, -2.0, -1.8, -1.7], 0.35, False),
    ],
)
def test_min_share_known_answers(vals: list[float], min_share: float, fires: bool) -> None:
    found = ValidationRising(min_share=min_share).check(rec(vals))
    assert (found is not None) == fires
    assert ValidationRising().check(rec(vals)) is not None  # the default fires on every one of them
    if found is not None:
        assert found.values["share"] == pytest.approx(share(vals))
        assert "of the progress since the first evaluation" in found.reason


def test_the_s_curve_false_alarm_is_quiet_and_memorisation_is_not() -> None:
    noisy, memo = rec(S_CURVE_VALS, S_CURVE_TRAIN), rec(MEMO_VALS, MEMO_TRAIN)
    # today's check fires on both: 24.6% above the best while the training loss fell 22%
    found = ValidationRising().check(noisy)
    assert found is not None and found.values["rise"] == pytest.approx(0.0072 / 0.00578 - 1)
    assert ValidationRising().check(memo) is not None
    assert share(S_CURVE_VALS) == pytest.approx((0.0072 - 0.00578) / (0.29 - 0.00578))  # 0.5%
    for s in (0.01, 0.02, 0.05):
        assert ValidationRising(min_share=s).check(noisy) is None
        assert ValidationRising(min_share=s).check(memo).values["share"] == pytest.approx(0.4)  # 0.2 / 0.5


def test_a_first_evaluation_that_was_the_best_leaves_the_condition_met() -> None:
    vals = [0.5, 0.55, 0.6]  # never better than at the first evaluation: no progress to measure against
    found = ValidationRising(min_share=0.9).check(rec(vals, [1.0, 0.8, 0.6]))
    assert found is not None and "share" not in found.values


def test_the_oldest_evaluation_held_stands_in_for_the_first_when_the_record_is_full() -> None:
    vals = [9.0, 1.0, 0.2, 0.25, 0.3]  # capacity 4 keeps [1.0, 0.2, 0.25, 0.3]: share 0.1 / 0.8
    found = ValidationRising(min_share=0.1).check(rec(vals, capacity=4))
    assert found is not None and found.values["share"] == pytest.approx(0.125)
    assert ValidationRising(min_share=0.13).check(rec(vals, capacity=4)) is None


def test_non_finite_validation_losses_still_fire_at_once() -> None:
    found = ValidationRising(min_share=0.5).check(rec([1.0, 0.2, math.nan]))
    assert found is not None and "nan" in found.reason


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.01, 10.0), min_size=2, max_size=12),
    st.lists(st.floats(0.01, 10.0), min_size=2, max_size=12),
    st.floats(0.0, 2.0),
)
def test_min_share_only_ever_silences_and_exactly_by_the_share(
    vals: list[float], trains: list[float], min_share: float
) -> None:
    n = min(len(vals), len(trains))
    vals, trains = vals[:n], trains[:n]
    base = ValidationRising().check(rec(vals, trains))
    zero = ValidationRising(min_share=0.0).check(rec(vals, trains))
    assert (base is None) == (zero is None)
    if base is not None:  # min_share=0 is today's check, to the reason and values
        assert zero is not None and zero.reason == base.reason and zero.values == base.values
    new = ValidationRising(min_share=min_share).check(rec(vals, trains))
    if base is None:
        assert new is None
    else:
        best = min(vals[:-1])
        expected = min_share == 0 or vals[0] <= best or (vals[-1] - best) > min_share * (vals[0] - best)
        assert (new is not None) == expected


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, True])
def test_bad_min_share_names_the_value(bad: float) -> None:
    with pytest.raises(ValueError, match="min_share"):
        ValidationRising(min_share=bad)


# ------------------------------------------------------------------------------------------ the Monitor keyword
def make(**kw: object) -> Monitor:
    model = torch.nn.Linear(2, 1)
    return Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), **kw)  # type: ignore[arg-type]


def val_check(monitor: Monitor) -> ValidationRising:
    (check,) = [c for c in monitor.checks if isinstance(c, ValidationRising)]
    return check


def test_the_default_keyword_leaves_every_check_as_it_was() -> None:
    assert [c.config() for c in make().checks] == [c.config() for c in make(val_min_share=None).checks]
    assert val_check(make()).min_share == 0.0
    mine = ValidationRising(min_share=0.3, patience=3)
    assert val_check(make(checks=[mine])) is mine  # None keeps a check the user configured


def test_a_number_sets_min_share_on_the_validation_check_only() -> None:
    default, set_ = make().checks, make(val_min_share=0.02).checks
    for a, b in zip(default, set_, strict=True):
        if isinstance(a, ValidationRising):
            assert b.config() == {**a.config(), "min_share": 0.02}
        else:
            assert b.config() == a.config()
    check = val_check(make(checks=[LossSpike(), ValidationRising(min_share=0.3, patience=3)], val_min_share=0.01))
    assert (check.min_share, check.patience) == (0.01, 3)


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf, True, "0.02"])
def test_bad_val_min_share_is_a_clear_error(bad: object) -> None:
    with pytest.raises(ValueError, match=r"val_min_share=.*must be None .* or a finite number >= 0"):
        make(val_min_share=bad)


# the same run's evaluations as the Monitor sees them without training steps (the training-loss condition is then
# skipped): the second evaluation after the best, 31.7% above it and 0.64% of the 0.284 gained, fires today
S_CURVE_MONITOR = [0.29, 0.0083, 0.00578, 0.00671, 0.00761]


@pytest.mark.parametrize(("vals", "kw", "events"), [
    (S_CURVE_MONITOR, {}, 1),  # today's false alarm on the fourth fresh set
    (S_CURVE_MONITOR, {"val_min_share": 0.02}, 0),
    (MEMO_VALS, {}, 1),
    (MEMO_VALS, {"val_min_share": 0.02}, 1),  # memorisation is still rolled back
])
def test_monitor_end_to_end(vals: list[float], kw: dict[str, float], events: int) -> None:
    monitor = make(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonitorWarning)
        for v in vals:
            monitor.after_validation(v)
    assert len(monitor.events) == events
    if events:
        assert monitor.events[0].check == "val_rising" and monitor.events[0].action == "rollback"
        assert monitor.lr_scale == pytest.approx(0.1)
        assert ("share" in monitor.events[0].values) == bool(kw)
    else:
        assert monitor.lr_scale == 1.0 and monitor.rollbacks == 0
