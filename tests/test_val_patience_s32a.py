"""``Monitor(val_patience=k)``: how many evaluations old the best validation loss must be before a rise above it counts
(session 32). ``None`` leaves the ``val_rising`` check's own patience (2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lrkit
from _helpers import spy_monitors
from lrkit.monitor.checks import ValidationRising


def _monitor(**kwargs: object) -> lrkit.Monitor:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    return lrkit.Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def _feed(monitor: lrkit.Monitor, vals: list[float]) -> list[int]:
    """Give ``vals`` to ``after_validation`` with a training loss that keeps falling (one fast step before each
    evaluation); return the 1-based indexes of the evaluations that raised ``val_rising``."""
    fired = []
    x, y = torch.ones(4, 2), torch.zeros(4, 1)
    model, opt = monitor.model, monitor.optimizer
    for i, v in enumerate(vals, 1):
        for _ in range(3):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y) + 1.0 / i  # falls with every evaluation
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
        before = len(monitor.events)
        monitor.after_validation(v)
        fired += [i for e in monitor.events[before:] if e.check == "val_rising"]
    return fired


def test_default_leaves_the_checks_patience_and_a_number_sets_it() -> None:
    assert [c.patience for c in _monitor().checks if c.name == "val_rising"] == [ValidationRising().patience] == [2]
    assert [c.patience for c in _monitor(val_patience=3).checks if c.name == "val_rising"] == [3]
    assert [c.patience for c in _monitor(val_patience=np.int64(4)).checks if c.name == "val_rising"] == [4]
    assert [c.patience for c in _monitor(val_patience=torch.tensor(5)).checks if c.name == "val_rising"] == [5]


def test_it_sets_every_validation_check_in_a_checks_list_and_leaves_the_others() -> None:
    spike = lrkit.monitor.LossSpike()
    m = _monitor(checks=[spike, ValidationRising(patience=7, tolerance=0.1)], val_patience=3)
    assert m.checks[0] is spike
    assert (m.checks[1].patience, m.checks[1].tolerance) == (3, 0.1)


def test_a_two_evaluation_jump_that_comes_back_fires_at_patience_2_not_3() -> None:
    # best 0.10 at evaluation 3; 4 and 5 jump above it; 6 comes back under it (the run at the edge of stability)
    vals = [0.5, 0.2, 0.10, 0.15, 0.25, 0.09, 0.08]
    assert _feed(_monitor(), vals) == [5]
    assert _feed(_monitor(val_patience=3), vals) == []


def test_a_lasting_rise_still_fires_one_evaluation_later() -> None:
    vals = [0.5, 0.2, 0.10, 0.15, 0.25, 0.3, 0.35]
    default = _feed(_monitor(on_overfit="warn"), vals)
    assert default[0] == 5
    assert _feed(_monitor(on_overfit="warn", val_patience=3), vals)[0] == 6


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3", np.float64(3.0), [3]])
def test_bad_values_are_named(bad: object) -> None:
    with pytest.raises(ValueError, match=r"val_patience=.* must be None \(leave val_rising as it is\) or an integer"):
        _monitor(val_patience=bad)


def _train_monitor(monkeypatch: pytest.MonkeyPatch, tmp_path: object, monitor: object) -> lrkit.Monitor:
    """The monitor ``lrkit.train`` builds for ``monitor=`` (a 1-epoch iris run)."""
    made = spy_monitors(monkeypatch)
    lrkit.train("mlp", data="iris", epochs=1, lr0=0.01, project=str(tmp_path), name="r", plots=False, verbose=False,
                monitor=monitor)
    return made[0]


@pytest.mark.parametrize(("monitor", "patience"), [
    (True, 3), ("warn", 3), ({"backoff": 0.5}, 3), ({"val_patience": 2}, 2), ({"val_patience": 5}, 5),
    ({"checks": [ValidationRising(patience=4)]}, 4),
])  # fmt: skip
def test_lrkit_trains_monitor_waits_3_evaluations_unless_told_otherwise(
        monkeypatch: pytest.MonkeyPatch, tmp_path: object, monitor: object, patience: int) -> None:  # fmt: skip
    made = _train_monitor(monkeypatch, tmp_path, monitor)
    assert [c.patience for c in made.checks if c.name == "val_rising"] == [patience]
