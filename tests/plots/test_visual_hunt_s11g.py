"""Hunt s11g: the pictures in awkward situations — legends over the curve, labels on top of each other, markers on
titles, invisible points, axes that flatten what matters. Each test checks the figure's geometry, not its pixels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from lrkit.finder import FinderResult
from lrkit.plots.finder import plot_finder
from lrkit.plots.results import _draw, _read
from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import from_spec


def _extent(artist: Any) -> Any:
    fig = artist.figure
    return artist.get_window_extent(fig.canvas.get_renderer())


def _overlap(a: Any, b: Any) -> bool:
    """Whether two display boxes share area (touching edges do not count)."""
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


def _finder_curve(n: int = 100, shift: float = 0.0, seed: int = 0) -> tuple[list[float], list[float]]:
    """A noisy range-test curve: a plateau, a descent over three decades, a minimum, then the blow-up."""
    rng = np.random.default_rng(seed)
    lrs = np.geomspace(1e-7, 10, n)
    loss = 30 / (1 + np.exp((np.log10(lrs) + 2) * 2.5)) + np.where(lrs > 1, (lrs - 1) * 500, 0)
    return list(map(float, lrs)), list(map(float, loss + 5 * rng.standard_normal(n) * (lrs < 0.05) + shift))


def _data_points_in(ax: Any, box: Any) -> int:
    """How many drawn points of the loss curves (not vertical rule lines) fall inside a display box."""
    count = 0
    for line in ax.get_lines():
        if not line.get_label().startswith("loss"):
            continue
        xy = np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float)
        xy = xy[np.isfinite(xy).all(axis=1)]
        if not len(xy):
            continue
        pts = ax.transData.transform(xy)
        lo, hi = ax.get_ylim()
        inside_y = (xy[:, 1] >= lo) & (xy[:, 1] <= hi)
        count += int(np.sum(inside_y & (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0)
                            & (pts[:, 1] < box.y1)))
    return count


# ------------------------------------------------------------------------------------------------ range test
@pytest.mark.parametrize("shift", [0.0, -100.0])  # a loss that is maximised (negative values) is the same picture
def test_the_range_test_legend_never_covers_the_curve(shift: float, tmp_path: Path) -> None:
    # Bug: eight legend entries (raw, smoothed, range, three rules, the suggestion's long label) sat "best" inside
    # the axes and covered the descent — the part of the curve the picture is for (a real test on a noisy loss)
    lrs, losses = _finder_curve(shift=shift)
    fig = plot_finder(FinderResult(lrs=lrs, losses=losses, stop_reason="diverged").to_dict())
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = fig.legends[0] if fig.legends else ax.get_legend()
    assert legend is not None and len(legend.get_texts()) >= 6
    box, frame = _extent(legend), fig.bbox
    assert not _overlap(box, _extent(ax)), "the legend lies on the axes"
    assert _data_points_in(ax, box) == 0
    assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0, "legend cut off"
    assert 4 <= fig.get_figheight() <= 8 and fig.get_figwidth() <= 8  # grows to fit, stays a normal figure
    # what savefig(bbox_inches="tight") keeps (lr_find.png) holds the legend too
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    assert tight.y0 * fig.dpi <= box.y0 + 1
    plot_finder(FinderResult(lrs=lrs, losses=losses).to_dict(), path=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0
    plt.close(fig)


def test_a_caller_axes_keeps_its_legend_inside() -> None:
    # the caller's own layout (a grid of subplots): the legend stays on their axes, nothing is resized
    lrs, losses = _finder_curve()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    plot_finder(FinderResult(lrs=lrs, losses=losses).to_dict(), ax=axes[0])
    assert axes[0].get_legend() is not None and not fig.legends
    assert tuple(fig.get_size_inches()) == (10, 4)
    plt.close(fig)


def test_a_twelve_step_test_and_a_nan_tail_keep_the_legend_off_the_curve() -> None:
    # the two awkward range tests: diverged after 12 steps (a long suggestion label), NaN from 1e-1 on
    lrs, losses = _finder_curve()
    short = FinderResult(lrs=lrs[:12], losses=[*losses[:11], 400.0], stop_reason="diverged").to_dict()
    nan = FinderResult(lrs=lrs, losses=losses[:80] + [math.nan] * 20, stop_reason="non-finite").to_dict()
    for record in (short, nan):
        fig = plot_finder(record)
        fig.canvas.draw()
        box = _extent(fig.legends[0] if fig.legends else fig.axes[0].get_legend())
        assert _data_points_in(fig.axes[0], box) == 0 and not _overlap(box, _extent(fig.axes[0]))
        if record is short:  # a curve with no descent keeps the old view: the blown-up last step only is cut off
            assert fig.axes[0].get_ylim()[1] >= sorted(record["losses"])[-2]
        # the NaN marks on the top edge stay clear of the title
        title = _extent(fig.axes[0].title)
        for line in fig.axes[0].get_lines():
            if line.get_label() == "loss NaN/inf":
                assert title.y0 >= _extent(line).y1 + 1  # wholly above them, wherever along the edge they lie
        plt.close(fig)


def test_a_back_off_of_zero_decades_reads_at_the_minimum() -> None:
    # Rough edge: a noisy curve's scaled back-off of 0 read "0 decades below the minimum (noisy curve)"
    lrs, losses = _finder_curve()
    record = FinderResult(lrs=lrs, losses=losses).to_dict()
    record.update(rule="robust", regime="plateau", backoff_decades=0.0, suggestion=0.05, edge=None)
    fig = plot_finder(record)
    texts = [t.get_text() for t in (fig.legends[0] if fig.legends else fig.axes[0].get_legend()).get_texts()]
    label = next(t for t in texts if t.startswith("suggestion"))
    assert "0 decades" not in label and "at the minimum" in label
    plt.close(fig)


def test_a_long_divergence_tail_does_not_flatten_the_descent() -> None:
    # Bug: a test run to end_lr without the divergence stop (diverge_factor=inf) spent a fifth of its steps
    # blowing up; the y axis reached the 90th percentile (~900) and the descent from 30 to 0 was a flat line
    lrs, losses = _finder_curve()
    fig = plot_finder(FinderResult(lrs=lrs, losses=losses).to_dict())
    lo, hi = fig.axes[0].get_ylim()
    descent = max(losses[: int(0.5 * len(losses))]) - min(losses)
    assert hi - lo < 4 * descent, (lo, hi, descent)
    assert hi >= max(losses[:5])  # the start of the curve is still in view
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("spec", ["sgdr lr0=0.1 T_0=1000 unit=step warmup_steps=200",
                                  "cosine lr0=0.01 lrf=0.01 warmup_steps=300"])
def test_phase_names_never_print_on_top_of_each_other(spec: str) -> None:
    # Bug: a short warmup (200 of 10,000 steps) put "warmup" and "cycle 0" (or "decay") on the same spot: "warmcyde"
    fig = plot_schedule(from_spec(spec, total_steps=10_000).record())
    fig.canvas.draw()
    names = [t for t in fig.axes[0].texts if t.get_visible()]
    assert len(names) >= 2 and names[0].get_text() == "warmup"  # the first phase keeps its name
    boxes = [_extent(t) for t in names]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ results.png
def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return path


def _results_figure(csv: Path, events: Any = None) -> Any:
    missing: dict[str, set[int]] = {}
    cols = _read(csv, missing)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)  # as plot_results draws it
    _draw(axes, cols, events, missing)
    fig.tight_layout()
    fig.canvas.draw()
    return fig


def test_rollback_marks_on_the_top_edge_stay_clear_of_the_panel_titles(tmp_path: Path) -> None:
    # Bug: a ▼ (rollback) or ✖ (stop) under a panel title touched its letters ("▼learning rate (end of epoch)")
    header = ["epoch", "train_loss", "val_loss", "val_accuracy", "lr/all", "grad_norm"]
    rows = [[e, 2 / e, 2.1 / e, 0.5 + e / 100, 0.001, 2.0] for e in range(1, 31)]
    csv = _csv(tmp_path / "results.csv", header, rows)
    events = [{"epoch": e + 0.3, "check": "loss_spike", "action": "rollback" if e % 2 else "stop"}
              for e in range(1, 30, 2)]
    fig = _results_figure(csv, events)
    for ax in fig.axes:
        title = _extent(ax.title)
        marks = [line for line in ax.get_lines() if line.get_marker() in ("v", "X")]
        assert marks
        assert not any(_overlap(_extent(m), title) for m in marks), ax.get_title()
        assert all(title.y0 >= _extent(m).y1 + 1 for m in marks), ax.get_title()  # a gap, not touching
    plt.close(fig)


def test_a_one_epoch_run_shows_its_max_gradient_norm(tmp_path: Path) -> None:
    # Bug: with one epoch the dashed "max" gradient norm was a line of one point, drawn as nothing — the axis
    # reached up to it but the value was invisible
    header = ["epoch", "train_loss", "val_loss", "lr/all", "grad_norm", "grad_norm_max"]
    fig = _results_figure(_csv(tmp_path / "results.csv", header, [[1, 1.2, 1.1, 0.001, 2.9, 5.6]]))
    ax_grad = fig.axes[3]
    for line in ax_grad.get_lines():
        if len(line.get_xdata()) == 1:
            assert line.get_marker() not in ("", "None", None), line.get_label()
    plt.close(fig)


def test_layer_decay_lrs_stay_on_a_log_axis_when_the_run_ends_at_zero(tmp_path: Path) -> None:
    # Bug: 12 layer-decay levels (0.75 ** 11 = 1/24 of the peak) over a cosine that reaches 0 at the last epoch:
    # that single 0 turned the LR panel linear, and the lower half of the levels lay on top of each other at 0
    epochs, levels = 100, 12
    header = ["epoch", "train_loss", "val_loss", *[f"lr/layer{i}/decay" for i in range(levels)]]
    rows = []
    for e in range(1, epochs + 1):
        base = 1e-3 * 0.5 * (1 + math.cos(math.pi * e / epochs))
        rows.append([e, 1 / e, 1.1 / e, *[base * 0.75 ** (levels - 1 - i) for i in range(levels)]])
    fig = _results_figure(_csv(tmp_path / "results.csv", header, rows))
    ax_lr = fig.axes[2]
    assert ax_lr.get_yscale() == "log"
    legend = ax_lr.get_legend()
    assert legend is not None and len(legend.get_texts()) <= 8
    plt.close(fig)
    # one group's cosine to 0 stays linear (its end is drawn), as it was
    rows = [[e, 1 / e, 1.1 / e, *[1e-3 * 0.5 * (1 + math.cos(math.pi * e / 20))] * levels] for e in range(1, 21)]
    fig = _results_figure(_csv(tmp_path / "one.csv", header, rows))
    assert fig.axes[2].get_yscale() == "linear"
    plt.close(fig)
    # a constant LR keeps the scale it had
    rows = [[e, 1 / e, 1.1 / e, *[0.01] * levels] for e in range(1, 5)]
    fig = _results_figure(_csv(tmp_path / "const.csv", header, rows))
    assert fig.axes[2].get_yscale() == "log"
    plt.close(fig)
    # an LR that is 0 throughout (a frozen group) and one that barely moves from 0 stay linear
    rows = [[e, 1 / e, 1.1 / e, *[0.0] * (levels - 1), 0.01 if e > 1 else 0.0] for e in range(1, 5)]
    fig = _results_figure(_csv(tmp_path / "frozen.csv", header, rows))
    assert fig.axes[2].get_yscale() == "linear"
    plt.close(fig)
