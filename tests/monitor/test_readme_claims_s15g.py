"""Session 15g: the README's ``lrkit.Monitor`` section, claim by claim (prose the README examples do not execute).

Each test quotes the sentence it holds the code to. One was false in the code when written: the back-off-undone
warning judged only the first param group the loop had written (the README: "takes *any* group more than halfway
back up"). Others were false in the README (corrections proposed to the lead): ``plot_results(csv,
events=(e.to_dict() for e in monitor.events))`` marks nothing (a hand loop's events carry a ``step``, not the
``epoch`` the picture's axis needs), and an ``lr_too_low`` stop does not restore the healthy snapshot.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from lrkit import Monitor
from lrkit.monitor import MonitorEvent, MonitorWarning


def _mse_loop(monitor: Monitor, model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, *,
              nan_at: tuple[int, ...] = (), before_step: Callable[[int], Any] | None = None,
              stop: bool = True) -> None:
    """A tiny hand loop (the README's contract): a NaN loss is passed at the steps in ``nan_at``."""
    torch.manual_seed(1)
    x, y = torch.randn(16, model.in_features), torch.randn(16, model.out_features)  # type: ignore[arg-type]
    for t in range(steps):
        if before_step is not None:
            before_step(t)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(float("nan") if t in nan_at else loss)
        opt.step()
        if monitor.after_step() and stop:
            return


# --------------------------------------------------------------------------------------- bugs found (failed first)
def test_an_undone_backoff_is_warned_about_when_any_group_is_written_back_up() -> None:
    """README (Scheduler interplay): "when that write takes *any* group more than halfway back up (in log space) to
    where the back-off took it from, it warns once per monitor". A loop that decays one group on its own (lower than
    the back-off) while writing another back to its full LR undid the back-off of that other group: it was not
    warned about, because only the first group written was judged."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD([{"params": [model.weight], "lr": 0.1}, {"params": [model.bias], "lr": 0.1}], lr=0.1)
    monitor = Monitor(model, opt)
    bad = 120

    def write(t: int) -> None:
        if t > bad:  # the loop's own LRs: group 0 decayed below the back-off's 0.03, group 1 back at 0.1
            opt.param_groups[0]["lr"] = 0.001
            opt.param_groups[1]["lr"] = 0.1

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _mse_loop(monitor, model, opt, 200, nan_at=(bad,), before_step=write)
    assert monitor.rollbacks == 1
    undone = [w for w in caught if issubclass(w.category, MonitorWarning) and "undone" in str(w.message)]
    assert len(undone) == 1, [str(w.message)[:80] for w in caught]
    assert "param group 1's LR is 0.1 again" in str(undone[0].message)


def test_plot_results_marks_events_with_an_epoch_on_all_four_panels_and_leaves_step_only_ones_out(
        tmp_path: Any) -> None:
    """README (Records and pictures, as corrected): ``plot_results(csv, events=...)`` draws against the epoch: events
    that carry one (``lrkit.train``'s) are marked on all four panels, from any iterable (here a generator); a hand
    loop's ``MonitorEvent.to_dict()`` has a ``step`` only and is left out. The README used to offer
    ``(e.to_dict() for e in monitor.events)`` as an example of what it marks."""
    import matplotlib

    matplotlib.use("Agg")
    from unittest import mock

    import lrkit.plots.monitor as plots_monitor
    from lrkit.plots.results import plot_results

    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss,val_loss,lr/pg0,grad_norm\n1,1.0,1.1,0.1,2\n2,0.8,0.9,0.1,2\n")
    events = [MonitorEvent(5, "non_finite", {"lr": 0.01}, "rollback", "loss is nan")]
    drawn: list[int] = []
    real = plots_monitor.mark_events

    def spy(ax: Any, evs: Any, **kw: Any) -> list[Any]:
        artists = real(ax, evs, **kw)
        drawn.append(len(artists))
        return artists

    with mock.patch.object(plots_monitor, "mark_events", spy):
        plot_results(csv, tmp_path / "a.png", events=({**e.to_dict(), "epoch": 1.5} for e in events))
        assert drawn == [2, 2, 2, 2]  # a line and a rollback marker on each panel
        drawn.clear()
        with pytest.warns(UserWarning, match=r"have no 'epoch' key, so they were not drawn \(they carry 'step'\)"):
            plot_results(csv, tmp_path / "b.png", events=(e.to_dict() for e in events))
        assert drawn == [0, 0, 0, 0]  # no epoch: nothing to place on the epoch axis, and a warning says so


# ------------------------------------------------------------------------------ claims no other test pins down
def test_an_lr_too_low_stop_keeps_the_weights_the_run_has() -> None:
    """A stop restores the healthy snapshot for a training-loss or gradient check (``restore_on_stop``); an
    ``lr_too_low`` stop (``on_too_low="stop"``, judged after the step) keeps the weights as they are: the run is
    healthy, only slow, and an older snapshot would throw its progress away."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-9)
    monitor = Monitor(model, opt, on_too_low="stop", snapshot_every=10)
    seen: list[torch.Tensor] = []
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    for _ in range(1000):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        seen.append(model.weight.detach().clone())
        if monitor.after_step():
            break
    assert monitor.should_stop and monitor.stop_reason.startswith("lr_too_low")
    assert monitor.events[-1].action == "stop"
    assert torch.equal(model.weight.detach(), seen[-1])  # not put back to the healthy snapshot


def test_a_stop_by_a_divergence_check_restores_the_healthy_snapshot() -> None:
    """README (Actions): ``stop`` — "``should_stop`` becomes ``True`` with a ``stop_reason``; the last healthy
    snapshot is restored (``restore_on_stop=True``)"."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, on_divergence="stop")
    held: list[torch.Tensor] = []
    _mse_loop(monitor, model, opt, 60, nan_at=(40,), before_step=lambda t: held.append(model.weight.detach().clone()))
    assert monitor.should_stop and monitor.stop_reason.startswith("non_finite at step 40")
    snap_step = monitor._healthy.step  # type: ignore[union-attr]
    assert snap_step < 40 and torch.equal(model.weight.detach(), held[snap_step])


def test_non_finite_event_values_survive_a_weights_only_round_trip() -> None:
    """README (Records): ``to_dict()`` is JSON-ready (non-finite values become ``"nan"``/``"inf"``) and
    ``MonitorEvent.from_dict`` reads it back; ``state_dict()`` carries the events and
    ``torch.load(weights_only=True)`` works."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt)
    _mse_loop(monitor, model, opt, 30, nan_at=(10,))
    monitor.events.append(MonitorEvent(29, "custom", {"low": -math.inf, "high": math.inf}, "warn", "x"))
    assert monitor.events[0].to_dict()["values"]["loss"] == "nan"
    buf = io.BytesIO()
    torch.save(monitor.state_dict(snapshot=True), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    model2 = torch.nn.Linear(3, 1)
    other = Monitor(model2, torch.optim.SGD(model2.parameters(), lr=0.05))
    other.load_state_dict(state)
    assert [e.to_dict() for e in other.events] == [e.to_dict() for e in monitor.events]
    assert math.isnan(other.events[0].values["loss"])
    assert other.events[-1].values == {"low": -math.inf, "high": math.inf}
    assert other.summary() == monitor.summary()


def test_validation_events_carry_the_latest_step_and_0_for_a_baseline() -> None:
    """README (Records): "a validation event carries the latest step before the evaluation (``0`` for a baseline
    evaluation before any training step)"; ``values`` holds the numbers compared plus the LR."""
    from lrkit.monitor.checks import Check, Finding

    class Always(Check):
        name = "always_val"
        category = "overfit"
        phase = "validation"

        def check(self, record: Any) -> Finding:
            return Finding("always", {"val_loss": record.last("val_loss") if hasattr(record, "last") else 0.0})

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt, checks=[Always()], actions={"always_val": "warn"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonitorWarning)
        monitor.after_validation(1.0)  # a baseline, before any step
        _mse_loop(monitor, model, opt, 7)
        monitor.after_validation(0.9)
    assert [e.step for e in monitor.events] == [0, 6]
    assert all(e.values["lr"] == 0.05 for e in monitor.events)


def test_the_first_step_bad_undoes_that_step_and_backs_off() -> None:
    """README (Actions): "If the very first step is bad (nothing healthy yet), a rollback undoes that step and backs
    off" — bit for bit, with SGD + momentum + weight decay (which move the weights even with no gradient)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    start = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.1)
    monitor = Monitor(model, opt)
    _mse_loop(monitor, model, opt, 1, nan_at=(0,))
    assert monitor.last_action == "rollback" and monitor.rollbacks == 1
    assert all(torch.equal(p.detach(), s) for p, s in zip(model.parameters(), start))
    assert opt.state_dict()["state"] == {} or all(
        not torch.is_tensor(v.get("momentum_buffer")) for v in opt.state.values())
    assert monitor.lr_scale == pytest.approx(0.3) and opt.param_groups[0]["lr"] == pytest.approx(0.015)


def test_val_train_loss_is_the_median_of_the_steps_since_the_previous_evaluation() -> None:
    """README (Checks): "the training loss at each evaluation (median of the steps since the previous one) as
    ``"val_train_loss"``" — of at most the latest 50 of them."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    monitor = Monitor(model, opt)
    losses = [5.0, 4.0, 3.0, 9.0, 1.0]  # median of all five: 4.0; of the last three: 3.0
    for i, value in enumerate(losses):
        model(torch.ones(1, 2)).sum().backward()
        monitor.after_backward(value)
        opt.step()
        monitor.after_step()
        opt.zero_grad()
        if i == 1:
            monitor.after_validation(1.0)
    monitor.after_validation(1.0)
    assert list(monitor.record.window("val_train_loss", 2)) == [4.5, 3.0]


@pytest.mark.parametrize("broken", ["record", "timers"])
def test_a_refused_state_leaves_the_monitor_exactly_as_it_was(broken: str) -> None:
    """README (Records): a state that cannot be loaded "is refused and leaves the monitor exactly as it was" (the
    code's own rule: "a refused state changes nothing"). A malformed rolling record or timers entry was refused only
    after the step, back-off and counters had been overwritten."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(model, opt)
    _mse_loop(monitor, model, opt, 12, nan_at=(5,))
    before = monitor.state_dict()
    state = monitor.state_dict()
    state.update(step=99, lr_scale=0.01, rollbacks=7, events=[])
    state[broken] = {"bogus": 1}
    with pytest.raises((ValueError, KeyError, TypeError)):
        monitor.load_state_dict(state)
    after = monitor.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        assert repr(after[key]) == repr(before[key]), key
    _mse_loop(monitor, model, opt, 3)  # and it goes on
    assert monitor.step == 14


def test_plot_results_names_events_it_cannot_place_once_not_once_per_panel(tmp_path: Any) -> None:
    """Session 15: the warning for events without an epoch came four times, once per results panel."""
    from lrkit.plots.results import plot_results

    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss,val_loss,lr/pg0,grad_norm\n1,1.0,1.1,0.1,2\n2,0.8,0.9,0.1,2\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_results(csv, tmp_path / "r.png", events=[{"step": 3, "check": "loss_spike", "action": "warn"}])
    assert sum("have no 'epoch' key" in str(w.message) for w in caught) == 1
