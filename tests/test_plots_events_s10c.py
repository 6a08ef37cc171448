"""``plot_results(events=...)`` marks the monitor's events on every panel, whatever iterable holds them.

Before the fix a generator of events (``(e.to_dict() for e in monitor.events)``) was spent on the loss panel and the
other three panels silently showed none; a numpy array of two or more events raised numpy's "truth value of an array
with more than one element is ambiguous".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from lrkit.plots.results import _draw, _read, plot_results

_EVENTS = [
    {"step": 3, "epoch": 1.5, "check": "loss_spike", "action": "rollback", "values": {"loss": "inf"}, "reason": "a"},
    {"step": 5, "epoch": 2.5, "check": "non_finite", "action": "skip", "values": {"loss": "nan"}, "reason": "b"},
]


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "results.csv"
    path.write_text("epoch,train_loss,val_loss,val_accuracy,lr/all,grad_norm\n"
                    "1,1.0,0.9,0.5,0.01,2.0\n2,0.5,0.6,0.8,0.005,1.0\n3,0.4,0.5,0.9,0.001,0.5\n")
    return path


def _event_lines(ax: plt.Axes) -> list[float]:
    """x positions of the vertical lines mark_events drew (two points at the same x, spanning the axis)."""
    out = []
    for line in ax.get_lines():
        xs = list(line.get_xdata())
        if len(xs) == 2 and xs[0] == xs[1] and line.get_label() != "_child":
            out.append(float(xs[0]))
    return sorted(out)


@pytest.mark.parametrize("wrap", [list, tuple, lambda ev: (e for e in ev), lambda ev: iter(ev), np.array,
                                  lambda ev: {"lr0": 0.1, "events": list(ev)}],
                         ids=["list", "tuple", "generator", "iterator", "numpy", "events.json"])
def test_events_are_marked_on_every_panel(tmp_path: Path, wrap) -> None:  # type: ignore[no-untyped-def]
    cols = _read(_csv(tmp_path))
    fig, axes = plt.subplots(2, 2)
    try:
        _draw(axes, cols, wrap(_EVENTS))
        marked = [_event_lines(ax) for ax in axes.ravel()]
    finally:
        plt.close(fig)
    assert marked == [[1.5, 2.5]] * 4


def test_plot_results_with_a_generator_and_odd_values_writes_the_picture(tmp_path: Path) -> None:
    odd = [*_EVENTS, {"step": 7, "epoch": math.inf, "check": "x", "action": "stop", "values": {}, "reason": ""},
           {"step": 8, "epoch": "nan", "check": "x", "action": "warn", "values": {"v": 1e308}, "reason": ""}]
    record = json.loads(json.dumps({"events": odd}, allow_nan=True))
    out = plot_results(_csv(tmp_path), events=(e for e in record["events"]))
    assert out.exists() and out.stat().st_size > 1000


def test_no_events_and_bad_events(tmp_path: Path) -> None:
    cols = _read(_csv(tmp_path))
    for empty in (None, [], (e for e in ()), np.array([]), {"events": []}):
        fig, axes = plt.subplots(2, 2)
        try:
            _draw(axes, cols, empty)
            assert all(_event_lines(ax) == [] for ax in axes.ravel())
        finally:
            plt.close(fig)
    with pytest.raises(FileNotFoundError, match="no such file"):
        plot_results(_csv(tmp_path), events=str(tmp_path / "events.json"))  # a path: read as events.json (session 16)
    with pytest.raises(ValueError, match="events must be a list of MonitorEvent"):
        plot_results(_csv(tmp_path), events=5)  # type: ignore[arg-type]
