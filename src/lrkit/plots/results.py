"""Pictures of a training run, drawn from its records only: ``results.csv`` (and the monitor's events).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "results.csv").write_text("epoch,train_loss,val_loss,val_accuracy,lr/all/decay,grad_norm\\n"
...                                    "1,1.0,0.9,0.5,0.01,2.0\\n2,0.5,0.6,0.8,0.005,1.0\\n")
>>> plot_results(d / "results.csv").name
'results.png'
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lrkit._utils import atomic_write, optional_import

__all__ = ["plot_results"]


def _read(path: Path) -> dict[str, list[float]]:
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows to plot")
    cols: dict[str, list[float]] = {k: [] for k in rows[0]}
    for row in rows:
        for k in cols:
            v = row.get(k, "")
            try:
                cols[k].append(float(v) if v not in ("", None) else math.nan)
            except ValueError:
                cols[k].append(math.nan)
    return cols


def plot_results(
    csv_path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    events: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Draw ``results.png`` from a run's ``results.csv``: losses, the validation metric, every group's LR and the
    gradient norm, one panel each, against the epoch; monitor ``events`` (dicts with an ``epoch``, as in a run's
    ``events.json``) are marked on every panel with :func:`lrkit.plots.monitor.mark_events` and listed in the loss
    panel's legend. Returns the PNG's path (default: beside the CSV).
    """
    csv_path = Path(csv_path)
    out_path = Path(out) if out is not None else csv_path.with_name("results.png")
    cols = _read(csv_path)
    optional_import("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    plt = optional_import("matplotlib.pyplot", "plot")
    x = cols.get("epoch") or list(range(1, len(next(iter(cols.values()))) + 1))
    metric_cols = [k for k in cols if k.startswith("val_") and k != "val_loss"]
    lr_cols = [k for k in cols if k.startswith("lr/")]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax_loss, ax_metric, ax_lr, ax_grad = axes.ravel()
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        if key in cols:
            ax_loss.plot(x, cols[key], marker=".", label=label)
    ax_loss.set_title("loss")
    ax_loss.legend()
    for key in metric_cols:
        ax_metric.plot(x, cols[key], marker=".", color="tab:green", label=key.removeprefix("val_"))
    ax_metric.set_title(f"validation {', '.join(k.removeprefix('val_') for k in metric_cols) or 'loss'}")
    if not metric_cols and "val_loss" in cols:
        ax_metric.plot(x, cols["val_loss"], marker=".", color="tab:green")
    for key in lr_cols:
        ax_lr.plot(x, cols[key], marker=".", label=key.removeprefix("lr/"))
    ax_lr.set_title("learning rate (end of epoch)")
    if lr_cols and all(v > 0 for k in lr_cols for v in cols[k] if math.isfinite(v)):
        ax_lr.set_yscale("log")
    if lr_cols:
        ax_lr.legend(fontsize="small")
    if "grad_norm" in cols:
        ax_grad.plot(x, cols["grad_norm"], marker=".", color="tab:red", label="mean")
    if "grad_norm_max" in cols:
        ax_grad.plot(x, cols["grad_norm_max"], ls="--", color="tab:red", alpha=0.5, label="max")
    ax_grad.set_title("gradient norm")
    ax_grad.legend(fontsize="small")
    _auto_log(ax_loss, [cols.get("train_loss", []), cols.get("val_loss", [])])
    _auto_log(ax_grad, [cols.get("grad_norm", []), cols.get("grad_norm_max", [])])
    for ax in axes.ravel():
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if events:
        from lrkit.plots.monitor import mark_events

        for ax in axes.ravel():  # lrkit.train's events carry the fractional epoch they happened in
            mark_events(ax, events, x="epoch", legend=ax is ax_loss)
        ax_loss.legend(fontsize="small")
    fig.tight_layout()
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out_path


def _auto_log(ax: Any, series: Sequence[Sequence[float]]) -> None:
    """Log y-scale when the finite values are positive and span more than two decades (diverging runs)."""
    values = [v for s in series for v in s if math.isfinite(v)]
    if values and min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
