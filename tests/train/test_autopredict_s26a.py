"""lr0='auto' and a ``make_scheduler`` that sets its own peak.

Before: ``choose_lr0(..., make_scheduler=lambda o, n: OneCycleLR(o, max_lr=0.1, total_steps=n))`` (or a spec with
``lr0=``) ran the range test and the trials, every candidate training at the schedule's own peak 0.1, and returned
a "choice" that was noise, without a word. Now the schedule is built on a stand-in optimizer before any compute and a
schedule whose peak does not follow the LRs it is built on is refused, naming the peak seen and the fix.
"""

from __future__ import annotations

import math
import re
import warnings

import pytest
import torch

import lrkit
from lrkit.schedules import from_spec

OneCycleLR = torch.optim.lr_scheduler.OneCycleLR


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g)
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]


def _setup(two_groups: bool = False) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 1))
    if two_groups:
        groups = [{"params": model[0].parameters(), "lr": 0.001}, {"params": model[1].parameters(), "lr": 0.01}]
        return model, torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def _choose(model: torch.nn.Module, opt: torch.optim.Optimizer, make, lines: list[str] | None = None):
    data = _data()
    return lrkit.choose_lr0(model, opt, data, data[:2], total_steps=200, make_scheduler=make,
                            loss_fn=torch.nn.functional.mse_loss,
                            log=lines.append if lines is not None else None)


def _settings(opt: torch.optim.Optimizer) -> list[dict]:
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


@pytest.mark.parametrize("make", [
    lambda o, n: OneCycleLR(o, max_lr=0.1, total_steps=n),
    lambda o, n: from_spec("onecycle lr0=0.1", total_steps=n).to_torch(o),
    lambda o, n: torch.optim.lr_scheduler.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=max(1, n // 2)),
], ids=["OneCycleLR-max_lr", "spec-lr0", "CyclicLR"])
def test_own_peak_is_refused_before_any_compute(make) -> None:
    model, opt = _setup()
    before_params = [p.detach().clone() for p in model.parameters()]
    before = _settings(opt)
    lines: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as info:
            _choose(model, opt, make, lines)
    msg = str(info.value)
    assert re.search(r"reached the same peak 0\.(1|09\d*) for base LRs 1 and 10", msg), msg
    assert "max_lr=[g['lr'] for g in optimizer.param_groups]" in msg  # the fix
    assert lines == []  # no range test, no trial: refused before any compute
    assert [w for w in caught if "lrkit" not in str(w.filename)] == []  # no torch warning from the probe
    assert _settings(opt) == before  # the caller's optimizer untouched (no initial_lr, max_lr, ... added)
    assert "step" not in vars(opt)  # no scheduler wrapped its step
    assert all(torch.equal(a, b) for a, b in zip(before_params, model.parameters()))


def test_param_group_with_fixed_peak_is_named() -> None:
    model, opt = _setup(two_groups=True)
    make = lambda o, n: OneCycleLR(o, max_lr=[0.05, o.param_groups[1]["lr"]], total_steps=n)
    with pytest.raises(ValueError, match=r"same peak 0\.0(5|4\d*) in param group 0 for base LRs 1 and 10 "
                                         r"\(this group's 0\.1 and 1\)"):
        _choose(model, opt, make)


def test_peak_not_in_proportion_is_refused() -> None:
    model, opt = _setup()

    def make(o: torch.optim.Optimizer, n: int):  # a peak of sqrt(base LR): moves, but not with the candidate
        base = o.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 / math.sqrt(base))

    with pytest.raises(ValueError, match=r"peaked at 1 and 3\.16 for base LRs 1 and 10: x3\.16, not x10"):
        _choose(model, opt, make)


@pytest.mark.parametrize("make", [
    lambda o, n: OneCycleLR(o, max_lr=[g["lr"] for g in o.param_groups], total_steps=n),
    lambda o, n: from_spec("onecycle", total_steps=n).to_torch(o),
    lambda o, n: torch.optim.lr_scheduler.CosineAnnealingLR(o, n, eta_min=1e-4),  # a floor of its own is fine
    lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / n),
], ids=["OneCycleLR-groups", "spec-no-lr0", "cosine-eta_min", "LambdaLR"])
def test_schedules_that_follow_the_candidate_are_accepted(make) -> None:
    model, opt = _setup(two_groups=True)
    before = _settings(opt)
    lines: list[str] = []
    auto = _choose(model, opt, make, lines)
    assert auto.lr > 0 and auto.trials  # the trials ran
    assert _settings(opt) == before


def test_closure_over_the_callers_optimizer_is_probed_on_it_and_put_back() -> None:
    # the trials pass the caller's optimizer itself, so a factory closing over it is fine when it follows its LRs
    model, opt = _setup()
    before = _settings(opt)
    fixed = lambda o, n: OneCycleLR(opt, max_lr=0.1, total_steps=n)
    lines: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"same peak 0\.(1|09\d*) for base LRs 1 and 10"):
            _choose(model, opt, fixed, lines)
    assert lines == [] and caught == []
    assert _settings(opt) == before and "step" not in vars(opt) and "_opt_called" not in vars(opt)
    follows = lambda o, n: OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=n)
    assert _choose(model, opt, follows).trials
    assert _settings(opt) == before


def test_scheduler_of_another_optimizer_is_refused_before_any_compute() -> None:
    model, opt = _setup()
    other = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    lines: list[str] = []
    with pytest.raises(ValueError, match=r"returned a scheduler of another optimizer \(SGD\)"):
        _choose(model, opt, lambda o, n: torch.optim.lr_scheduler.LambdaLR(other, lambda t: 1.0), lines)
    assert lines == []


def test_factory_failing_on_the_stand_in_is_left_to_the_trials() -> None:
    model, opt = _setup()
    calls: list[type] = []

    def make(o: torch.optim.Optimizer, n: int):
        calls.append(type(o))
        if not isinstance(o, torch.optim.SGD):  # a factory that only takes the user's own kind of optimizer
            raise TypeError("SGD only")
        return torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / n)

    auto = _choose(model, opt, make)
    assert auto.trials and torch.optim.SGD in calls
