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
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lrkit.plots.schedule import MAX_DRAWN, pyplot

__all__ = ["plot_results"]


def _read(path: Path, missing: dict[str, set[int]] | None = None) -> dict[str, list[float]]:
    """The CSV's columns as floats; an empty cell (a column a row does not have) and text read as NaN. ``missing``,
    when given, collects the row numbers of those cells per column: *not recorded*, unlike a ``nan``/``inf`` the
    run wrote (a diverged epoch)."""
    import csv

    try:  # utf-8-sig: a CSV saved by a spreadsheet starts with a byte-order mark, which would rename 'epoch'
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError as e:
        raise ValueError(f"{str(path)!r} is not UTF-8 text ({e.reason} at byte {e.start}); pass the run's "
                         "results.csv") from None
    if not rows:
        raise ValueError(f"{path} has no rows to plot")
    # a ragged row's extra fields land under the key None (csv.DictReader's restkey): not a column
    cols: dict[str, list[float]] = {k: [] for k in rows[0] if k is not None}
    for row in rows:
        for k in cols:
            v = row.get(k, "")
            try:
                value = float(v) if v not in ("", None) else None
            except ValueError:
                value = None
            if k == "epoch" and not (value is not None and abs(value) <= MAX_DRAWN):
                # an epoch that cannot be placed: the row's values were left out of the picture without a word
                why = (f"too large to draw (at most {MAX_DRAWN:g})" if value is not None and math.isfinite(value)
                       else "not a finite number")
                raise ValueError(f"{path}: epoch {v or ''!r} in row {len(cols[k]) + 1} is {why}; the epoch column "
                                 "holds each row's epoch, a number such as 1, 2, 3")
            if value is not None and math.isfinite(value) and abs(value) > MAX_DRAWN:
                value = math.copysign(math.inf, value)  # past what matplotlib can draw: shown as a diverged value
            if value is None and missing is not None:
                missing.setdefault(k, set()).add(len(cols[k]))
            cols[k].append(math.nan if value is None else value)
    return cols


def plot_results(
    csv_path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    events: Iterable[Mapping[str, Any]] | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    _run_file: bool = False,
) -> Path:
    """Draw ``results.png`` from a run's ``results.csv``: losses, the validation metric, every group's LR and the
    gradient norm, one panel each, against the epoch; monitor ``events`` (dicts with an ``epoch``, as in a run's
    ``events.json``; the whole ``json.load`` of that file works too, and so does the file's path,
    ``events="runs/train/events.json"``) are marked on every panel with
    :func:`lrkit.plots.monitor.mark_events` and listed in the loss panel's legend. Returns the picture's path
    (default: ``results.png`` beside the CSV; the format follows the suffix, see
    :func:`lrkit.plots.finder.figure_format`; missing folders are made, and a path that is a folder, or lies under a
    file, is a ``ValueError`` naming it before anything is drawn). The figure is closed once written, or on failure.

    ``csv_path`` may also be a run folder (``plot_results("runs/train")``): its ``results.csv``, with the monitor
    events of its ``events.json`` where ``events`` is not given, as ``lrkit.train`` drew its ``results.png``.

    Param groups whose LR curves are identical share one line (``layer3/decay, layer3/bias``); with more than
    :data:`MAX_LR_LEGEND` lines the LR legend lists the first and last few and says how many it left out.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> csv = "epoch,train_loss,val_loss,lr/all/decay\\n1,1.0,0.9,0.01\\n2,0.5,0.7,0.005\\n"
    >>> _ = (d / "results.csv").write_text(csv)
    >>> events = [{"epoch": 1.5, "check": "loss_spike", "action": "rollback", "values": {}, "reason": ""}]
    >>> plot_results(d / "results.csv", d / "run.svg", events=events).name
    'run.svg'
    """
    from lrkit.plots.finder import picture_target, write_figure

    csv_path = Path(csv_path)
    if csv_path.is_dir():  # a run folder (runs/train): its results.csv, and its events.json unless events= is given
        if not (csv_path / "results.csv").is_file():
            raise ValueError(f"{str(csv_path)!r} is a folder with no results.csv; pass a run folder (runs/train) or "
                             "the results.csv lrkit.train writes in it")
        if events is None and (csv_path / "events.json").is_file():
            events = csv_path / "events.json"
        csv_path = csv_path / "results.csv"
    elif not csv_path.exists():  # open()'s bare FileNotFoundError named neither the argument nor what it takes
        raise ValueError(f"{str(csv_path)!r} does not exist; pass a run folder (runs/train) or the results.csv "
                         "lrkit.train writes in it")
    out_path = Path(out) if out is not None else csv_path.with_name("results.png")
    picture_target(out_path)  # a bad suffix or a folder fails before anything is drawn
    if isinstance(events, (str, os.PathLike)):
        events = _load_events(events)
    missing: dict[str, set[int]] = {}
    cols = _read(csv_path, missing)
    drawn = ("epoch", "train_loss", "grad_norm", "grad_norm_max")
    if not any(k in drawn or k.startswith(("val_", "lr/")) for k in cols):
        # a header split by ';' or padded with spaces: four empty panels each said "not recorded"
        raise ValueError(f"{csv_path} has none of the columns plot_results draws (epoch, train_loss, val_loss, "
                         f"val_<metric>, lr/<group>, grad_norm), comma-separated as lrkit.train writes them; its "
                         f"header is {list(cols)}")
    plt = pyplot()  # Agg only where no backend was chosen (or no display): the user's own is kept
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)  # shared: a panel with no data keeps the epochs
    try:
        _draw(axes, cols, events, missing)
        _make_room_below(fig, axes.ravel()[2])
        fig.tight_layout()
        write_figure(fig, out_path, dpi=110, _run_file=_run_file)  # (_run_file: lrkit.train's own results.png)
    finally:  # closed whatever happens: a failed write does not leave the figure open in pyplot
        plt.close(fig)
    return out_path


def _make_room_below(fig: Any, ax: Any) -> None:
    """Grow the figure by the height of a legend placed under ``ax`` (many LR levels), so ``tight_layout`` keeps
    the panels their size instead of squashing the bottom row to fit it."""
    legend = ax.get_legend()
    if legend is None:
        return
    renderer = None  # each artist finds its figure's renderer (only an Agg canvas has get_renderer())
    box = legend.get_window_extent(renderer)
    below = ax.get_window_extent(renderer).y0 - box.y0  # pixels of legend under the panel's bottom edge
    if below > 0:
        width, height = fig.get_size_inches()
        fig.set_size_inches(width, height + below / fig.dpi)


def _load_events(path: str | os.PathLike[str]) -> Any:
    """The events record at ``path`` (a run's ``events.json``: ``{"lr0": ..., "optimizer": ..., "events": [...]}``,
    or a JSON list of event dicts); ``FileNotFoundError`` or ``ValueError`` naming the path when it is missing, not
    JSON, or holds something else."""
    import json

    p = Path(path)
    what = "pass the events.json lrkit.train writes beside results.csv, or the list of events itself"
    if p.is_dir():
        hint = f" (it has an events.json: events={str(p / 'events.json')!r})" if (p / "events.json").is_file() else ""
        raise ValueError(f"events={str(path)!r} is a folder, not an events file{hint}; {what}")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"events={str(path)!r}: no such file; {what}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"events={str(path)!r} is not UTF-8 text ({e.reason} at byte {e.start}); {what}") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"events={str(path)!r} is not valid JSON ({e.msg}: line {e.lineno} column {e.colno}); "
                         f"{what}") from None
    if isinstance(record, list) or (isinstance(record, dict) and isinstance(record.get("events"), list)):
        return record
    held = f"a dict with keys {sorted(record)}" if isinstance(record, dict) else f"a JSON {type(record).__name__}"
    raise ValueError(f"events={str(path)!r} holds {held}, not an events record ({{\"events\": [...]}}, as "
                     f"lrkit.train's events.json) or a list of events; {what}")


#: The run's own curves, in colours no monitor check's event line has (:data:`lrkit.plots.monitor.CHECK_COLORS`):
#: a rollback's line is never read as part of a curve (``loss_spike`` is orange, as matplotlib's second colour is).
CURVE_COLORS: dict[str, str] = {"train_loss": "tab:blue", "val_loss": "navy", "metric": "darkgreen",
                                "grad_norm": "darkred"}


def _draw(axes: Any, cols: dict[str, list[float]], events: Any, missing: Mapping[str, set[int]] | None = None) -> None:
    """Draw the four panels; ``missing`` (from :func:`_read`) tells empty cells from NaN/inf the run wrote."""
    x = cols.get("epoch") or list(range(1, len(next(iter(cols.values()))) + 1))
    metric_cols = [k for k in cols if k.startswith("val_") and k != "val_loss"]
    # column names are text, not mathtext: a `$` is drawn as written ("lr/$\\foo$" made savefig fail)
    names = {k: k.replace("$", r"\$") for k in cols}
    lr_cols = [k for k in cols if k.startswith("lr/")]
    ax_loss, ax_metric, ax_lr, ax_grad = axes.ravel()
    dot = _marker(x)
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        if key in cols:
            ax_loss.plot(x, cols[key], marker=dot, color=CURVE_COLORS[key], label=label)
    ax_loss.set_title("loss")
    # a NaN/inf loss is a gap in the line, easy to miss: the epochs it happened in are marked on the top edge
    _mark_non_finite(ax_loss, x, {k: cols[k] for k in ("train_loss", "val_loss") if k in cols}, missing or {},
                     "loss NaN/inf")
    for key in metric_cols:
        ax_metric.plot(x, cols[key], marker=dot, color=CURVE_COLORS["metric"], label=names[key].removeprefix("val_"))
    ax_metric.set_title(f"validation {', '.join(names[k].removeprefix('val_') for k in metric_cols) or 'loss'}")
    if not metric_cols and "val_loss" in cols:
        ax_metric.plot(x, cols["val_loss"], marker=dot, color=CURVE_COLORS["metric"])
    _plot_lrs(ax_lr, x, {names[k].removeprefix("lr/"): cols[k] for k in lr_cols})
    ax_lr.set_title("learning rate (end of epoch)")
    if _log_lrs([cols[k] for k in lr_cols]):
        ax_lr.set_yscale("log")
    if "grad_norm" in cols:
        ax_grad.plot(x, cols["grad_norm"], marker=dot, color=CURVE_COLORS["grad_norm"], label="mean")
    if "grad_norm_max" in cols:
        # dotted like the mean: a one-epoch run's dashed line of one point drew nothing at all
        ax_grad.plot(x, cols["grad_norm_max"], ls="--", marker=dot, color=CURVE_COLORS["grad_norm"], alpha=0.5,
                     label="max")
    ax_grad.set_title("gradient norm")
    if ax_grad.get_lines():
        ax_grad.legend(fontsize="small")
    for ax, keys, what in ((ax_loss, ("train_loss", "val_loss"), "loss"), (ax_metric, metric_cols or ["val_loss"],
                           "validation metric"), (ax_lr, lr_cols, "LR"), (ax_grad, ("grad_norm", "grad_norm_max"),
                                                                          "gradient norm")):
        _note_if_empty(ax, [cols[k] for k in keys if k in cols], what)
    _auto_log(ax_loss, [cols.get("train_loss", []), cols.get("val_loss", [])])
    _auto_log(ax_grad, [cols.get("grad_norm", []), cols.get("grad_norm_max", [])])
    from matplotlib.ticker import MaxNLocator

    # epochs are whole numbers: no 0.96 .. 1.04 axis for a 1-epoch run, no 1.25 ticks for a 3-epoch one (shared x,
    # so one locator serves every panel; fractional event positions are still drawn where they happened)
    axes.ravel()[0].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1, steps=[1, 2, 2.5, 5, 10]))
    for ax in axes.ravel():
        # room above the top edge for the rollback/stop and NaN marks (a ▼ under a title touched its letters)
        ax.set_title(ax.get_title(), pad=_TITLE_PAD)
        ax.tick_params(labelbottom=True)  # sharex hides the top row's epoch labels; keep them
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if isinstance(events, Iterable) and not isinstance(events, (str, bytes, Mapping)):
        events = list(events)  # drawn on every panel: a generator would be spent on the first one
    has_events = events is not None and (not hasattr(events, "__len__") or len(events) > 0)  # a numpy array of
    if has_events:  # events has no truth value; anything else non-empty reaches mark_events, which names it
        from lrkit.plots.monitor import mark_events

        for i, ax in enumerate(axes.ravel()):  # lrkit.train's events carry the fractional epoch they happened in
            if i == 0:
                mark_events(ax, events, x="epoch", legend=ax is ax_loss)
                continue
            with warnings.catch_warnings():  # events it cannot place were named once, on the first panel
                warnings.simplefilter("ignore", UserWarning)
                mark_events(ax, events, x="epoch", legend=ax is ax_loss)
    if ax_loss.get_legend_handles_labels()[0]:  # no legend box (and no matplotlib warning) with nothing to list
        ax_loss.legend(fontsize="small" if has_events else None)


#: Points between a panel's top edge and its title: clears the 7-8 pt markers drawn centred on that edge.
_TITLE_PAD = 11


def _log_lrs(series: Sequence[Sequence[float]]) -> bool:
    """Whether the LR panel reads better on a log axis: every finite LR positive, or — a schedule that reaches 0
    (cosine or linear to zero) — groups whose peaks lie more than a decade apart (12 layer-decay levels, 0.75 ** 11 =
    1/24: on a linear axis the lower half lay on top of each other). One group that ends at 0 stays linear, where
    its end is drawn; on the log axis an LR of 0 leaves the bottom edge.

    >>> _log_lrs([[1e-3, 1e-4, 0.0]]), _log_lrs([[1e-3, 0.0], [1e-5, 0.0]]), _log_lrs([[0.01, 0.01]]), _log_lrs([])
    (False, True, True, False)
    """
    values = [v for s in series for v in s if math.isfinite(v)]
    if not values or any(v < 0 for v in values) or not any(v > 0 for v in values):
        return False
    if all(v > 0 for v in values):
        return True
    peaks = [max(v for v in s if math.isfinite(v)) for s in series if any(math.isfinite(v) and v > 0 for v in s)]
    return len(peaks) > 1 and max(peaks) >= 10 * min(peaks)


#: The most LR lines the LR panel's legend lists; beyond it, the first and last few and a count of the rest.
MAX_LR_LEGEND = 8
#: The most LR lines whose legend sits inside the LR panel; with more it goes under the panel.
MAX_LR_LEGEND_INSIDE = 4


def _plot_lrs(ax: Any, x: Sequence[float], series: Mapping[str, Sequence[float]]) -> None:
    """One line per distinct LR curve (groups with identical curves share it and its legend entry); a short legend."""
    curves: dict[tuple[Any, ...], list[str]] = {}
    for name, values in series.items():
        key = tuple("nan" if not math.isfinite(v) else v for v in values)
        curves.setdefault(key, []).append(name)
    lines = []
    for i, names in enumerate(curves.values()):
        label = ", ".join(names) if len(names) <= 2 else f"{names[0]}, … ({len(names)} groups)"
        color = f"C{i % 10}"
        if len(curves) > MAX_LR_LEGEND:  # many levels (layer decay): one colour map from the first to the last
            import matplotlib

            color = matplotlib.colormaps["viridis"](i / max(len(curves) - 1, 1))
        (line,) = ax.plot(x, series[names[0]], marker=_marker(x), color=color, label=label)
        lines.append(line)
    if not lines:
        return
    shown = lines
    if len(lines) > MAX_LR_LEGEND:
        from matplotlib.lines import Line2D

        k = (MAX_LR_LEGEND - 1) // 2
        gap = Line2D([], [], ls="none", label=f"… {len(lines) - 2 * k} more")
        shown = [*lines[:k], gap, *lines[-k:]]
    if len(lines) > MAX_LR_LEGEND_INSIDE:
        # many levels fill the panel top to bottom (layer decay): no corner is free, and "best" laid the legend
        # over the lower ones; under the panel it hides nothing (plot_results grows the figure to hold it)
        ax.legend(handles=shown, fontsize="small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                  frameon=False)
    else:
        ax.legend(handles=shown, fontsize="small")


#: Up to this many epochs each one gets a dot on its curves; beyond it, dots would hide the line (1000 epochs).
MAX_DOTTED_EPOCHS = 100


def _marker(x: Sequence[float]) -> str:
    """``"."`` for a run short enough that each epoch's dot can be told apart, else no marker (a plain line)."""
    return "." if len(x) <= MAX_DOTTED_EPOCHS else ""


def _mark_non_finite(ax: Any, x: Sequence[float], series: Mapping[str, Sequence[float]],
                     missing: Mapping[str, set[int]], label: str) -> None:
    """A red ``x`` on the panel's top edge at every epoch where one of ``series`` is NaN or ±inf (a diverged
    epoch: the curve only has a gap there), listed once in the legend as ``label``. Cells listed in ``missing``
    (empty: not recorded) are not marked."""
    bad = [xi for i, xi in enumerate(x)
           if any(i < len(s) and not math.isfinite(s[i]) and i not in missing.get(k, ()) for k, s in series.items())]
    if bad:
        ax.plot(bad, [1.0] * len(bad), ls="none", marker="x", color="tab:red", markersize=8, clip_on=False,
                transform=ax.get_xaxis_transform(), label=label)


def _note_if_empty(ax: Any, series: Sequence[Sequence[float]], what: str) -> None:
    """Write on a panel that has nothing to show, instead of leaving a blank frame with made-up axes."""
    if not series:
        ax.text(0.5, 0.5, f"{what} not recorded", transform=ax.transAxes, ha="center", va="center", color="0.4")
    elif not any(math.isfinite(v) for s in series for v in s):
        ax.text(0.5, 0.5, f"{what}: no finite values", transform=ax.transAxes, ha="center", va="center",
                color="0.4")


def _auto_log(ax: Any, series: Sequence[Sequence[float]]) -> None:
    """Log y-scale when the finite values are positive and span more than two decades (diverging runs)."""
    values = [v for s in series for v in s if math.isfinite(v)]
    if values and min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
