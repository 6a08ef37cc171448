"""mark_events draws monitor events from their records: one line per event, coloured by check."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgba

from lrkit.monitor import MonitorEvent
from lrkit.plots.monitor import CHECK_COLORS, mark_events


def test_mark_events_draws_each_event_at_its_step_coloured_by_check() -> None:
    events = [
        MonitorEvent(10, "loss_spike", {"loss": 9.0}, "rollback", "spike"),
        {"step": 25, "check": "exploding_gradients", "values": {}, "action": "clip", "reason": "clip"},
        {"step": 30, "check": "loss_spike", "values": {"loss": "nan"}, "action": "rollback", "reason": "again"},
        {"check": "lr_too_low", "values": {}, "action": "warn", "reason": "no step: skipped"},
        {"step": 40, "check": "my_own_check", "values": {}, "action": "warn", "reason": "custom"},
    ]
    fig, ax = plt.subplots()
    artists = mark_events(ax, events)
    lines = [a for a in artists if a.get_linestyle() != "None"]
    assert [line.get_xdata()[0] for line in lines] == [10, 25, 30, 40]
    assert to_rgba(lines[0].get_color()) == to_rgba(CHECK_COLORS["loss_spike"])
    assert to_rgba(lines[1].get_color()) == to_rgba(CHECK_COLORS["exploding_gradients"])
    assert lines[0].get_linestyle() == "-" and lines[1].get_linestyle() == "--"
    assert len(artists) - len(lines) == 2  # a marker on top for each rollback
    labels = [h.get_label() for h in ax.get_legend_handles_labels()[0]]
    assert labels == ["loss_spike → rollback", "exploding_gradients → clip", "my_own_check → warn"]
    plt.close(fig)


def test_mark_events_by_epoch_or_function_and_bad_input() -> None:
    fig, ax = plt.subplots()
    events = [{"step": 99, "epoch": 2.5, "check": "loss_spike", "action": "rollback"}]
    assert mark_events(ax, events, x="epoch", legend=False)[0].get_xdata()[0] == 2.5
    assert mark_events(ax, events, x=lambda e: e["step"] / 10)[0].get_xdata()[0] == pytest.approx(9.9)
    with pytest.raises(ValueError, match="x=3"):
        mark_events(ax, events, x=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MonitorEvent or a dict"):
        mark_events(ax, [42])
    plt.close(fig)
