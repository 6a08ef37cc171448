"""Session 18: results.png's curves never share a colour with a monitor event line (a loss_spike rollback drawn in
the validation curve's orange read as part of it)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import to_rgba

from lrkit.plots.monitor import CHECK_COLORS
from lrkit.plots.results import _draw


def test_curves_and_event_lines_differ_in_colour() -> None:
    fig, axes = plt.subplots(2, 2)
    cols = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.95],
            "val_accuracy": [0.5, 0.6, 0.7], "grad_norm": [1.0, 1.2, 1.1], "grad_norm_max": [2.0, 2.2, 2.1],
            "lr/all/decay": [0.1, 0.05, 0.01]}
    events = [{"epoch": 2.5, "check": name, "action": "rollback", "values": {}, "reason": ""} for name in CHECK_COLORS]
    _draw(axes, cols, events)
    event_colors = {to_rgba(c) for c in CHECK_COLORS.values()}
    panels = axes.ravel()
    curves = [line for i in (0, 1, 3) for line in panels[i].get_lines()
              if line.get_label() in ("train", "val", "accuracy", "mean", "max")]
    assert len(curves) == 5
    for line in curves:
        assert to_rgba(line.get_color(), 1.0) not in event_colors, (line.get_label(), line.get_color())
    plt.close(fig)
