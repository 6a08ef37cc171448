"""``LossAboveStart`` (``loss_above_start``) and ``Monitor(collapse_check=True)``: a run whose loss never gets clearly
below its starting loss — collapsed to chance, or jumped above it and stuck there — is rolled back after the window;
a learning run, and a noisy one that dips back below its start, are not; the check is off by default."""

from __future__ import annotations

import math

import pytest
import torch

from lrkit.monitor import Monitor
from lrkit.monitor.checks import LossAboveStart, LossRising, default_checks
from lrkit.monitor.record import RollingRecord

L0 = math.log(10)  # a 10-class cross-entropy at initialisation: chance


def _stuck(n: int, level: float = 1.0, noise: float = 0.03) -> list[float]:
    """``n`` losses alternating ``level * L0 +- noise``: a run that collapsed to chance (median exactly level*L0)."""
    return [level * L0 + (noise if i % 2 else -noise) for i in range(n)]


def _learning(n: int) -> list[float]:
    """L0, then an exponential fall to 0.2*L0 with a 20-step time constant: a healthy run."""
    return [L0 * (0.2 + 0.8 * math.exp(-i / 20)) for i in range(n)]


def _record(losses: list[float]) -> RollingRecord:
    return RollingRecord.from_stream(losses, capacity=256)


# --------------------------------------------------------------------------------------------------- the check
def test_collapse_to_chance_fires_with_the_median_and_threshold_of_the_window() -> None:
    losses = [L0, *_stuck(99)]  # step 99
    finding = LossAboveStart().check(_record(losses))
    assert finding is not None
    assert finding.values["loss_median"] == pytest.approx(L0)  # 25 high, 25 low: the mean of the two middle values
    assert finding.values["threshold"] == pytest.approx(0.95 * L0)
    assert finding.values["start_loss"] == pytest.approx(L0)
    assert "never learned or collapsed" in finding.reason


def test_jump_above_start_then_creeping_fires() -> None:
    # the digits_logreg_rmsprop 30x shape: up to 1.3x L0 in the warmup, then creeping down slowly
    losses = [L0] + [L0 * (1.3 - 0.002 * i) for i in range(99)]
    finding = LossAboveStart().check(_record(losses))
    assert finding is not None and finding.values["ratio"] > 1.1


def test_not_before_min_steps_and_not_before_the_window_is_full() -> None:
    check = LossAboveStart(window=50, min_steps=75)
    assert check.check(_record([L0, *_stuck(74)])) is None  # 75 losses: step 74 < 75
    assert check.check(_record([L0, *_stuck(75)])) is not None  # step 75
    short = LossAboveStart(window=50, min_steps=10)
    assert short.check(_record([L0, *_stuck(40)])) is None  # 41 losses < window 50
    assert short.check(_record([L0, *_stuck(49)])) is not None  # 50 losses: the window is full


def test_healthy_decreasing_run_never_fires_at_any_step() -> None:
    losses = _learning(600)
    check = LossAboveStart()
    for n in range(2, 601):
        assert check.check(_record(losses[:n])) is None, n


def test_slow_but_real_progress_does_not_fire() -> None:
    # 10% below the start after the first few steps: slower than any healthy suite run, still below 0.95 * L0
    losses = [L0] + [0.9 * L0 + (0.05 if i % 2 else -0.05) for i in range(199)]
    assert LossAboveStart().check(_record(losses)) is None


def test_noisy_run_that_dips_back_below_start_does_not_fire() -> None:
    # heavy noise above the start early (a catapult in warmup), then back below it for the window
    torch.manual_seed(0)
    early = [L0 * (1.2 + 0.3 * float(torch.rand(()))) for _ in range(40)]
    later = [L0 * (0.6 + 0.3 * float(torch.rand(()))) for _ in range(80)]  # all in [0.6, 0.9] * L0
    losses = [L0, *early, *later]
    check = LossAboveStart()
    assert check.check(_record(losses[:45])) is None  # too early
    assert check.check(_record(losses)) is None
    # and the window, not one value, decides: a few noisy steps above the start do not make the median
    spiky = [L0] + [0.7 * L0] * 100 + [1.5 * L0] * 10
    assert check.check(_record(spiky)) is None


def test_threshold_at_the_level_boundary() -> None:
    below = [L0] + [0.94 * L0] * 99
    at = [L0] + [0.95 * L0] * 99
    assert LossAboveStart().check(_record(below)) is None
    assert LossAboveStart().check(_record(at)) is not None
    assert LossAboveStart(level=0.9).check(_record(below)) is not None


def test_negative_starting_loss_uses_its_magnitude() -> None:
    # L0 = -1: the threshold is -1 - 0.05 = -1.05; a loss stuck at -1.0 fires, one at -1.2 (lower = better) does not
    assert LossAboveStart().check(_record([-1.0] * 100)).values["threshold"] == pytest.approx(-1.05)
    assert LossAboveStart().check(_record([-1.0] + [-1.2] * 99)) is None


def test_non_finite_values_are_left_out_of_the_window() -> None:
    losses = [L0, *_stuck(60), math.nan, math.inf, *_stuck(40)]
    finding = LossAboveStart().check(_record(losses))
    assert finding is not None and math.isfinite(finding.values["loss_median"])


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"window": 1}, "window"), ({"level": 0.0}, "level"), ({"level": math.nan}, "level"),
     ({"min_steps": -1}, "min_steps"), ({"every": 0}, "every"), ({"cooldown": -2}, "cooldown"),
     ({"window": 2.5}, "window")],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        LossAboveStart(**kwargs)  # type: ignore[arg-type]


def test_loss_rising_misses_the_collapse_this_check_exists_for() -> None:
    # the reason for the check: no progress was ever made, so there is nothing for loss_rising to see being lost
    rec = RollingRecord.from_stream([L0, *_stuck(150)], capacity=256, refresh=10)
    assert LossRising().check(rec) is None
    assert LossAboveStart().check(rec) is not None


# --------------------------------------------------------------------------------------------------- the monitor
def _run(losses: list[float], **kw: object) -> tuple[Monitor, torch.nn.Linear]:
    """Feed a synthetic loss stream to a Monitor over a tiny model (every step adds +lr_scale to every weight)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, opt, on_overfit=None, **kw)  # type: ignore[arg-type]
    for value in losses:
        for p in model.parameters():
            p.grad = torch.full_like(p, -10.0)
        monitor.after_backward(value)
        opt.step()
        monitor.after_step()
    return monitor, model


def test_off_by_default_and_on_with_collapse_check_true() -> None:
    # opt-in (the default for the seventh fresh set only: the eighth turned it off again); not in default_checks()
    assert "loss_above_start" not in [c.name for c in default_checks()]
    off, _ = _run([L0, *_stuck(150)])
    assert "loss_above_start" not in [c.name for c in off.checks]
    assert off.events == [] and off.rollbacks == 0
    monitor, _ = _run([L0, *_stuck(150)], collapse_check=True)
    assert [c.name for c in monitor.checks].count("loss_above_start") == 1
    assert [e.check for e in monitor.events][:1] == ["loss_above_start"] and monitor.rollbacks >= 1


def test_collapse_check_rolls_back_once_the_window_is_due() -> None:
    monitor, model = _run([L0, *_stuck(80)], collapse_check=True)
    events = [e for e in monitor.events if e.check == "loss_above_start"]
    # due every 25 steps; it runs on the next full step from step 75 (min_steps) on, within the 25-step period
    assert len(events) == 1 and 75 <= events[0].step < 100
    assert events[0].action == "rollback" and monitor.rollbacks == 1
    assert monitor.lr_scale == pytest.approx(0.3)
    # back to the step-0 snapshot; the steps after the rollback (80 - its step of them) each add 0.3 (LR backed off)
    torch.manual_seed(0)
    init = torch.nn.Linear(2, 1).weight.detach()
    assert torch.allclose(model.weight.detach(), init + 0.3 * (80 - events[0].step))


def test_collapse_check_quiet_on_a_learning_run_and_when_its_action_is_warn() -> None:
    monitor, _ = _run(_learning(300), collapse_check=True)
    assert monitor.events == []
    with pytest.warns(UserWarning, match="never learned or collapsed"):
        warned, _ = _run([L0, *_stuck(80)], collapse_check=True, actions={"loss_above_start": "warn"})
    assert [e.action for e in warned.events] == ["warn"] and warned.rollbacks == 0


def test_collapse_check_keeps_a_check_given_in_checks() -> None:
    mine = LossAboveStart(min_steps=30, window=20, every=10)
    monitor, _ = _run([L0, *_stuck(40)], checks=[mine], collapse_check=True)
    assert [c for c in monitor.checks if c.name == "loss_above_start"] == [mine]
    steps = [e.step for e in monitor.events if e.check == "loss_above_start"]
    assert len(steps) == 1 and 30 <= steps[0] < 40  # its own min_steps and period, not the keyword's 75 / 25


def test_collapse_check_must_be_a_bool() -> None:
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match="collapse_check=1"):
        Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), collapse_check=1)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ a too-low LR is not a collapse
def test_quiet_while_the_weights_barely_move() -> None:
    stuck = [L0, *_stuck(100)]
    for ratio, fires in ((1e-6, False), (9.9e-5, False), (1e-4, True), (0.2, True)):
        rec = RollingRecord.from_stream(stuck, update_ratios=[ratio] * 2, lr=0.1)
        assert (LossAboveStart().check(rec) is not None) is fires, ratio
    # the median of the latest two samples: one sample above the line and one below read as their middle
    rec = RollingRecord.from_stream(stuck, update_ratios=[1e-2, 1e-2, 1e-6, 1e-3], lr=0.1)
    assert LossAboveStart().check(rec) is not None
    rec = RollingRecord.from_stream(stuck, update_ratios=[1e-2, 1e-2, 1e-6, 1e-5], lr=0.1)
    assert LossAboveStart().check(rec) is None
    # no sample: the loss alone decides; None: no guard
    assert LossAboveStart().check(RollingRecord.from_stream(stuck)) is not None
    low = RollingRecord.from_stream(stuck, update_ratios=[1e-6] * 2, lr=0.1)
    assert LossAboveStart(min_update_ratio=None).check(low) is not None


@pytest.mark.parametrize("bad", [-1e-4, math.nan, "1e-4"])
def test_a_bad_min_update_ratio_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match="min_update_ratio"):
        LossAboveStart(min_update_ratio=bad)  # type: ignore[arg-type]


def test_a_too_low_lr_gets_a_warning_not_a_rollback() -> None:
    """An SGD run at LR 1e-7 on a learnable problem: its loss stays at L0 (the collapse check's picture), but its
    weights barely move — lr_too_low warns, and nothing is rolled back or backed off."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=1e-7)
    monitor = Monitor(model, opt, on_overfit=None, collapse_check=True)
    with pytest.warns(Warning):
        for _ in range(400):
            i = torch.randint(0, 256, (32,))
            loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
    assert "loss_above_start" in [c.name for c in monitor.checks]
    assert monitor.rollbacks == 0 and monitor.lr_scale == 1.0
    assert {e.check for e in monitor.events} == {"lr_too_low"}
