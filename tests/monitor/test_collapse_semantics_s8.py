"""``Monitor(collapse_check=...)`` semantics: ``False`` (the default) never adds ``loss_above_start``, ``None`` adds it
to the default checks only, ``True`` to any list; and ``LossAboveStart``'s low-LR guard has its update-ratio samples
whatever the other checks (it declares ``needs={"update_ratio"}``), so a too-low LR is never rolled back."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch

from lrkit.monitor import Monitor
from lrkit.monitor.checks import LossAboveStart, LRTooLow, NonFinite, default_checks

L0 = math.log(10)


def _names(monitor: Monitor) -> list[str]:
    return [c.name for c in monitor.checks]


def _monitor(**kw: Any) -> Monitor:
    model = torch.nn.Linear(2, 1)
    return Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), **kw)


# -- collapse_check: None / True / False -----------------------------------------------------------------------------
def test_none_adds_it_to_the_default_checks_only_and_the_default_never() -> None:
    assert _names(_monitor()) == [c.name for c in default_checks()]  # opt-in since the eighth fresh set
    assert _names(_monitor(collapse_check=None)) == [*(c.name for c in default_checks()), "loss_above_start"]
    assert _names(_monitor(checks=[], collapse_check=None)) == []  # asked for no checks: gets none
    assert _names(_monitor(checks=[NonFinite()], collapse_check=None)) == ["non_finite"]
    assert _names(_monitor(checks=default_checks(), collapse_check=None)) == [c.name for c in default_checks()]


def test_true_adds_it_to_any_list_and_false_never() -> None:
    assert _names(_monitor(checks=[], collapse_check=True)) == ["loss_above_start"]
    assert _names(_monitor(checks=[NonFinite()], collapse_check=True)) == ["non_finite", "loss_above_start"]
    assert _names(_monitor(collapse_check=True)).count("loss_above_start") == 1
    assert "loss_above_start" not in _names(_monitor(collapse_check=False))
    assert _names(_monitor(checks=[NonFinite()], collapse_check=False)) == ["non_finite"]
    mine = LossAboveStart(window=20)  # a list that already holds one keeps it, whatever the keyword
    for flag in (None, True, False):
        assert [c for c in _monitor(checks=[mine], collapse_check=flag).checks] == [mine]


def test_default_in_the_signature_is_false() -> None:
    import inspect

    assert inspect.signature(Monitor).parameters["collapse_check"].default is False


@pytest.mark.parametrize("bad", [1, 0, "yes", 1.0])
def test_a_bad_collapse_check_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"collapse_check={bad!r} must be None .* True .* or False"):
        _monitor(collapse_check=bad)


# -- the guard's samples ---------------------------------------------------------------------------------------------
def test_needs_the_update_ratio_only_with_its_guard() -> None:
    assert LossAboveStart().needs == frozenset({"update_ratio"})
    assert LossAboveStart(min_update_ratio=None).needs == frozenset()
    assert LRTooLow.needs == frozenset({"update_ratio"})  # the other checks' class attribute is untouched
    assert _monitor(checks=[NonFinite()], collapse_check=True)._needs_ratio
    assert not _monitor(checks=[NonFinite(), LossAboveStart(min_update_ratio=None)])._needs_ratio
    assert not _monitor(checks=[NonFinite()])._needs_ratio  # nothing asks: nothing is sampled
    # the check off (its action None): no samples for it
    assert not _monitor(checks=[LossAboveStart()], actions={"loss_above_start": None})._needs_ratio


def _low_lr_run(steps: int = 400, **kw: Any) -> tuple[Monitor, list[str]]:
    """SGD at LR 1e-7 on a learnable problem: the loss stays at its start (the collapse check's picture by the loss),
    but the weights barely move (update/weight ratio ~1e-8, far below the guard's 1e-4)."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=1e-7)
    monitor = Monitor(model, opt, on_overfit=None, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            i = torch.randint(0, 256, (32,))
            loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
    return monitor, [str(w.message) for w in caught]


LOW_LR_CONFIGS = {
    "on_too_low=None": {"on_too_low": None, "collapse_check": True},
    "lr_too_low off": {"actions": {"lr_too_low": None}, "collapse_check": True},
    "checks without LRTooLow": {"checks": [NonFinite()], "collapse_check": True},
}


@pytest.mark.parametrize("kw", list(LOW_LR_CONFIGS.values()), ids=list(LOW_LR_CONFIGS))
def test_a_low_lr_run_is_not_rolled_back_without_lr_too_low(kw: dict[str, Any]) -> None:
    monitor, caught = _low_lr_run(**kw)
    assert "loss_above_start" in _names(monitor)
    assert monitor.record.count("update_ratio") >= 2  # sampled for the guard alone
    assert monitor.rollbacks == 0 and monitor.lr_scale == 1.0
    assert monitor.optimizer.param_groups[0]["lr"] == 1e-7
    assert monitor.events == [] and caught == []


def test_the_same_low_lr_run_without_the_guard_is_rolled_back() -> None:
    # the known answer the guard changes: the loss alone reads this run as collapsed
    monitor, _ = _low_lr_run(steps=200, checks=[NonFinite(), LossAboveStart(min_update_ratio=None)])
    assert monitor.record.count("update_ratio") == 0
    assert monitor.rollbacks >= 1 and monitor.lr_scale < 1.0
    assert {e.check for e in monitor.events} == {"loss_above_start"}


def test_with_lr_too_low_on_only_it_warns() -> None:
    monitor, _ = _low_lr_run(collapse_check=True)
    assert monitor.rollbacks == 0 and monitor.lr_scale == 1.0
    assert {e.check for e in monitor.events} == {"lr_too_low"}


def _collapsed_run(n: int = 150, **kw: Any) -> Monitor:
    """A run stuck at chance (losses L0 +- 0.03) whose weights move a lot (gradient -10 at LR 0.1): a collapse."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, opt, on_overfit=None, **kw)
    for i in range(n):
        for p in model.parameters():
            p.grad = torch.full_like(p, -10.0)
        monitor.after_backward(L0 if i == 0 else L0 + (0.03 if i % 2 else -0.03))
        opt.step()
        monitor.after_step()
    return monitor


@pytest.mark.parametrize("kw", [{"collapse_check": True}, *LOW_LR_CONFIGS.values()],
                         ids=["default checks", *LOW_LR_CONFIGS])
def test_a_collapsed_run_is_still_rolled_back(kw: dict[str, Any]) -> None:
    monitor = _collapsed_run(**kw)
    assert monitor.record.count("update_ratio") >= 1
    events = [e for e in monitor.events if e.check == "loss_above_start"]
    assert events and events[0].action == "rollback" and events[0].step >= 75
    assert monitor.rollbacks >= 1 and monitor.lr_scale == pytest.approx(0.3 ** monitor.rollbacks)


def test_the_check_runs_before_any_sample_exists() -> None:
    # needs={"update_ratio"} only asks the monitor for samples: with none in the record the loss alone decides
    from lrkit.monitor.record import RollingRecord

    stuck = RollingRecord.from_stream([L0, *[L0 + (0.03 if i % 2 else -0.03) for i in range(99)]])
    assert stuck.count("update_ratio") == 0 and LossAboveStart().check(stuck) is not None
