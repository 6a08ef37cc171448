"""The range-test picture: loss vs LR on a log axis, the suggestion marked and the usable range shaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lrkit._utils import atomic_write, optional_import

__all__ = ["plot_finder", "save_figure"]


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    return atomic_write(path, lambda p: fig.savefig(p, dpi=dpi, bbox_inches="tight", format="png"))


def plot_finder(record: dict[str, Any], *, path: str | os.PathLike[str] | None = None, ax: Any = None,
                show_rules: bool = True) -> Any:
    """Draw a range-test record (``FinderResult.to_dict()``) and optionally save it as PNG; return the Figure."""
    optional_import("matplotlib", "plot").use("Agg", force=False)
    plt = optional_import("matplotlib.pyplot", "plot")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    else:
        fig = ax.figure
    lrs = record["lrs"]
    raw = [float("nan") if v is None else v for v in record["losses"]]
    finite = [(lr, v) for lr, v in zip(lrs, raw) if v == v]
    ax.plot(lrs, raw, color="0.75", lw=1, label="loss (raw)")
    if record.get("smoothed_losses"):
        ax.plot([lr for lr, _ in finite], record["smoothed_losses"], color="C0", lw=2, label="loss (smoothed)")
    low, high = record["range"]
    ax.axvspan(low, high, color="C2", alpha=0.12, label=f"range {low:.2g} – {high:.2g}")
    if show_rules:
        for i, (name, lr) in enumerate(sorted(record["suggestions"].items())):
            if name != record["rule"]:
                ax.axvline(lr, color=f"C{3 + i}", ls=":", lw=1, label=f"{name}: {lr:.2g}")
    sug = record["suggestion"]
    ax.axvline(sug, color="C3", lw=2, label=f"suggestion ({record['rule']}): {sug:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test — {record.get('stop_reason', '')}, {len(lrs)} steps")
    # Keep the divergence tail from squashing the interesting part of the curve.
    if finite:
        vals = sorted(v for _, v in finite)
        lo_v, hi_v = vals[0], vals[min(len(vals) - 1, int(0.9 * len(vals)))]
        first = finite[0][1]
        top = max(first, hi_v)
        pad = 0.05 * (top - lo_v if top > lo_v else 1.0)
        ax.set_ylim(lo_v - pad, top + pad)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    if path is not None:
        save_figure(fig, path)
    return fig
