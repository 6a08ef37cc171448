"""``Monitor(spike_grace=k)``: a transient loss spike from a trained state is forgiven, a persistent, repeated, huge or
early one is acted on, non-finite losses always at once; ``spike_grace=0`` keeps the old behaviour; 3 is the
default."""

from __future__ import annotations

import math

import pytest
import torch

from lrkit.monitor import Monitor
from lrkit.monitor.monitor import _GRACE_CAP, _GRACE_TRAINED, _GRACE_WINDOW


def _trained(n: int = 60) -> list[float]:
    """L0 = 1.0, down to ~0.1 within 10 steps, then flat with small noise: the run has learned (median ~0.1)."""
    head = [1.0 - 0.09 * i for i in range(10)]
    return head + [0.1 + (0.01 if i % 2 else -0.01) for i in range(n - 10)]


def _run(losses: list[float], **kw: object) -> tuple[Monitor, torch.nn.Linear, list[torch.Tensor]]:
    """Feed a synthetic loss stream; each step moves the weights by +1 so a rollback is visible in them. Returns the
    monitor, the model and the weights *before* each step."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, opt, on_overfit=None, **kw)  # type: ignore[arg-type]
    before = []
    for value in losses:
        before.append(model.weight.detach().clone())
        for p in model.parameters():
            p.grad = torch.full_like(p, -10.0)  # SGD at lr 0.1: every step adds +1 to every weight
        monitor.after_backward(value)
        opt.step()
        monitor.after_step()
    return monitor, model, before


def _spike_events(monitor: Monitor) -> list[object]:
    return [e for e in monitor.events if e.check == "loss_spike"]


def test_transient_spike_from_trained_state_is_forgiven() -> None:
    # a catapult: 3x L0 (30x the median), 2x L0 the next step, then back to the trained level
    stream = _trained() + [3.0, 2.0] + [0.1] * 30
    monitor, _, _ = _run(stream, spike_grace=3)
    assert monitor.events == [] and monitor.rollbacks == 0 and monitor.lr_scale == 1.0
    assert monitor.summary()["healthy"]


def test_same_stream_without_grace_rolls_back_at_once() -> None:
    stream = _trained() + [3.0, 2.0] + [0.1] * 30
    monitor, _, _ = _run(stream, spike_grace=0)  # the old behaviour
    spikes = _spike_events(monitor)
    assert [e.step for e in spikes] == [60] and spikes[0].action == "rollback"
    assert monitor.rollbacks == 1


def test_persistent_spike_rolls_back_after_the_grace_to_the_pre_spike_snapshot() -> None:
    k = 3
    stream = _trained() + [3.0] * (k + 2)  # the last step is the first one past the grace
    monitor, model, before = _run(stream, spike_grace=k, snapshot_every=5, grad_every=1)
    spikes = _spike_events(monitor)
    # forgiven at steps 60..60+k, acted on at the first spike past the grace
    assert [e.step for e in spikes] == [60 + k + 1] and spikes[0].action == "rollback"
    assert spikes[0].values["grace_start"] == 60.0 and "persisted or came back" in spikes[0].reason
    # the snapshot was not refreshed while the spike was forgiven (snapshot_every=5 would have): the rollback lands
    # on weights from before the spike, not on any of the forgiven steps' weights
    assert any(torch.equal(model.weight, w) for w in before[55:61])
    assert not any(torch.equal(model.weight, w) for w in before[61:])


def test_a_second_spike_within_the_window_is_acted_on() -> None:
    k = 3
    stream = _trained() + [3.0] + [0.1] * 15 + [3.0] + [0.1] * 10
    monitor, _, _ = _run(stream, spike_grace=k)
    spikes = _spike_events(monitor)
    assert [e.step for e in spikes] == [76] and spikes[0].action == "rollback"


def test_a_second_spike_after_the_window_opens_a_new_episode() -> None:
    stream = _trained() + [3.0] + [0.1] * (_GRACE_WINDOW + 5) + [3.0] + [0.1] * 10
    monitor, _, _ = _run(stream, spike_grace=3)
    assert monitor.events == []


def test_spike_above_the_cap_is_acted_on_at_once() -> None:
    stream = _trained() + [_GRACE_CAP * 1.0 * 1.5] + [0.1] * 5  # L0 = 1.0
    monitor, _, _ = _run(stream, spike_grace=3)
    spikes = _spike_events(monitor)
    assert [e.step for e in spikes] == [60] and "no grace" in spikes[0].reason


def test_spike_before_the_run_has_learned_is_acted_on_at_once() -> None:
    flat = [1.0 + (0.01 if i % 2 else -0.01) for i in range(30)]  # median ~1.0 > 0.7 * L0
    assert 1.0 > _GRACE_TRAINED
    monitor, _, _ = _run(flat + [3.0] + [1.0] * 5, spike_grace=3)
    spikes = _spike_events(monitor)
    assert [e.step for e in spikes] == [30] and "has learned" in spikes[0].reason


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_inside_an_episode_is_immediate(bad: float) -> None:
    stream = _trained() + [3.0, bad] + [0.1] * 5
    monitor, _, _ = _run(stream, spike_grace=3)
    assert [(e.step, e.check, e.action) for e in monitor.events] == [(61, "non_finite", "rollback")]


def test_grace_is_dense_and_counts_full_steps() -> None:
    # the episode's steps are full steps even when the loss is back below the fast-path bound
    stream = _trained() + [3.0] + [0.1] * 10
    monitor, _, _ = _run(stream, spike_grace=4)
    assert monitor._dense_until >= 60 + 4 + 1


def test_state_dict_round_trip_keeps_the_episode() -> None:
    stream = [*_trained(), 3.0, 0.1]
    monitor, model, _ = _run(stream, spike_grace=3)
    state = monitor.state_dict()
    assert state["grace_start"] == 60
    fresh = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), spike_grace=3)
    fresh.load_state_dict(state)
    assert fresh._grace_start == 60


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_spike_grace_names_the_value(bad: object) -> None:
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match="spike_grace"):
        Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), spike_grace=bad)  # type: ignore[arg-type]


def test_the_default_is_three_steps_of_grace() -> None:
    # the fourth fresh set's pre-registered test made spike_grace=3 the default: the catapult is forgiven by default
    stream = _trained() + [3.0, 2.0] + [0.1] * 30
    monitor, _, _ = _run(stream)
    assert monitor.spike_grace == 3 and _spike_events(monitor) == [] and monitor.rollbacks == 0
