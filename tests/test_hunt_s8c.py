"""Hunt of the last commits (flat reading display, Monitor maximize, collapse_check): regressions for the bugs found,
and the invariants checked on the way."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from lrkit.cli.find import _curve_reading
from lrkit.finder import FinderResult
from lrkit.finder import suggest as S
from lrkit.monitor.checks import LRTooLow, NonFinite
from lrkit.monitor.monitor import Monitor


# -- Monitor(maximize=True): the "step" checks' events (lr_too_low) --------------------------------------------------
def _low_lr_run(maximize: bool, steps: int = 200) -> Monitor:
    """SGD at LR 1e-7 on a learnable problem: the loss stays put and the weights barely move, so lr_too_low (a
    "step" check, run from after_step) warns. The maximised twin ascends -CE: the same steps."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=1e-7, maximize=maximize)
    monitor = Monitor(model, opt, checks=[NonFinite(), LRTooLow()], on_overfit=None)
    g = torch.Generator().manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            i = torch.randint(0, 256, (32,), generator=g)
            ce = torch.nn.functional.cross_entropy(model(x[i]), y[i])
            value = -ce if maximize else ce
            opt.zero_grad()
            value.backward()
            monitor.after_backward(value)
            opt.step()
            if monitor.after_step():
                break
    return monitor


def test_a_step_check_event_of_a_maximised_run_carries_the_sign_as_every_event_does() -> None:
    down, up = _low_lr_run(False), _low_lr_run(True)
    assert [e.check for e in down.events] == [e.check for e in up.events] == ["lr_too_low"]
    d, u = down.events[0], up.events[0]
    assert d.step == u.step
    # the values hold the negated objective (= the twin's loss), and say so, as the class docstring promises
    assert u.values["loss"] == pytest.approx(d.values["loss"])
    assert u.values["loss_sign"] == -1.0 and "loss_sign" not in d.values
    assert "maximize=True" in u.reason and "maximize=True" not in d.reason
    assert {k: v for k, v in u.values.items() if k != "loss_sign"} == pytest.approx(d.values)


# -- the flat reading --------------------------------------------------------------------------------------------------
LRS = np.logspace(-7, 1, 100)
FLAT = 1.39 + 0.01 * np.random.default_rng(0).normal(size=100) + (LRS / 0.3) ** 4  # learns nothing, blows up


def test_a_flat_curve_with_a_nan_tail_reads_as_the_finite_one() -> None:
    # the test stopped on a non-finite loss after the flat loss had blown up: the same reading as without the tail
    cut = int(np.nonzero(FLAT > 3.0)[0][0]) + 1
    finite = FinderResult(lrs=list(LRS[:cut]), losses=list(FLAT[:cut]), stop_reason="diverged")
    tail = FinderResult(lrs=list(LRS[: cut + 2]), losses=[*FLAT[:cut], math.nan, math.inf], stop_reason="non-finite")
    assert finite.flat and tail.flat
    assert tail.edge == finite.edge and tail.suggestion == finite.suggestion
    assert tail.range == (tail.suggestion, tail.edge)
    assert tail.edge / tail.suggestion == pytest.approx(10.0)  # a decade, never noise-scaled
    d = tail.to_dict()
    assert d["flat"] is True and d["noise_scaled"] is False and d["losses"][-2:] == [None, None]


def test_the_flat_row_follows_the_switches_set_at_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    r = FinderResult(lrs=list(LRS), losses=list(FLAT))
    assert "2 sigma" in _curve_reading(r)
    monkeypatch.setattr(S, "ROBUST_FLAT_SIGMAS", None)
    assert r.flat and "never fell 2%" in _curve_reading(r) and "sigma" not in _curve_reading(r)
    monkeypatch.setattr(S, "ROBUST_FLAT", None)
    assert not r.flat and r.noise_scaled and "too flat" not in _curve_reading(r)
    assert r.to_dict()["flat"] is False and r.range != (r.suggestion, r.edge)
