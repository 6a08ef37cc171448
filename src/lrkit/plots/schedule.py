"""The schedule picture: LR (and momentum, in a second panel) against the optimizer step, drawn from records.

A record is ``Schedule.record()``: ``{"lr": [...], "momentum": [...], "phases": [...], "label": ...}``, or a bounded
:func:`lrkit.schedules.report.sampled_record` of a long run, whose values sit at the steps it lists in ``"steps"``;
several records are overlaid (``lrkit schedule --compare``).

>>> from lrkit.schedules import from_spec
>>> rec = from_spec("onecycle max_lr=0.1", total_steps=200).record()
>>> fig = plot_schedule(rec)
>>> [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
['learning rate', 'momentum']
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lrkit._utils import optional_import

__all__ = ["MAX_DRAWN", "check_drawable", "plot_schedule", "pyplot", "save_figure"]

_MAX_POINTS = 20_000

#: A schedule of at most this many steps gets a dot per step: a 1-step run is one point, which a line alone never
#: draws.
MAX_DOTTED_STEPS = 10


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically, in the format its suffix names (PNG without one): the one implementation,
    :func:`lrkit.plots.finder.save_figure`, re-exported here for callers of the schedule plot.

    >>> import tempfile, pathlib
    >>> from lrkit.schedules import from_spec
    >>> fig = plot_schedule(from_spec("cosine lr0=0.1", total_steps=50).record())
    >>> with tempfile.TemporaryDirectory() as d:
    ...     print(save_figure(fig, pathlib.Path(d) / "lr.png").read_bytes()[1:4])
    b'PNG'
    """
    from lrkit.plots.finder import save_figure as _save

    return _save(fig, path, dpi=dpi)


#: The largest LR or momentum (in size) a picture draws: matplotlib's limit and tick arithmetic overflows near the
#: float's end (a constant 1e308 failed in its ticker with "arange: cannot compute length"; on a log axis 1e307 did).
MAX_DRAWN = 1e300


def check_drawable(records: Sequence[Mapping[str, Any]]) -> None:
    """``ValueError`` naming the first LR or momentum of ``records`` that is ±inf or larger in size than
    :data:`MAX_DRAWN`, with its step and the record's label (NaN and ``None`` are gaps, drawn as such).

    >>> check_drawable([{"lr": [0.1, 1e308], "momentum": [None, None], "label": "big"}])
    Traceback (most recent call last):
    ...
    ValueError: the LR 1e+308 at step 1 of 'big' is too large to draw (at most 1e+300 in size); lower lr0 or gamma
    """
    for i, r in enumerate(records):
        label = str(r.get("label") or f"schedule {i + 1}")
        at = _steps(r)
        bias = r.get("lr_bias") if _given(r.get("lr_bias")) else []
        for what, values in (("LR", r["lr"]), ("bias-group LR", bias),
                             ("momentum", r["momentum"])):
            y = np.asarray([math.nan if v is None else v for v in values], dtype=float)
            bad = np.flatnonzero(~(np.abs(y) <= MAX_DRAWN) & ~np.isnan(y))
            if len(bad):
                j = int(bad[0])
                step = at[j] if at is not None else j
                why = "not finite" if math.isinf(y[j]) else f"too large to draw (at most {MAX_DRAWN:g} in size)"
                hint = "; lower lr0 or gamma" if what != "momentum" else ""
                raise ValueError(f"the {what} {y[j]:g} at step {step} of {label!r} is {why}{hint}")


def _given(values: Any) -> bool:
    """A record's optional list is there and not empty (a numpy array has no truth value: ``if r.get(...)`` failed)."""
    return values is not None and len(values) > 0


def _steps(record: Mapping[str, Any]) -> Sequence[int] | None:
    """The steps a sampled record's values sit at, or ``None`` for a record of every step from 0."""
    at = record.get("steps")
    return at if _given(at) else None


def _envelope(
    values: Sequence[Any], max_points: int = _MAX_POINTS, steps: Sequence[int] | None = None
) -> tuple[list[int], list[float]]:
    """Thin a long curve to at most ``max_points`` points while keeping its envelope; return ``(steps, values)``.

    ``values[i]`` is the value at step ``steps[i]`` (default: at step ``i``); buckets hold consecutive values.

    Up to ``max_points`` values are returned whole. A longer curve is cut into equal buckets of consecutive steps
    and each bucket keeps its minimum and its maximum (at their own steps, in step order), plus its first NaN so a
    gap (momentum ``None``) stays a gap; the first and last points are always kept. Taking every ``k``-th point
    instead aliases a cyclical schedule whose period is near ``k`` into a false, slow "beat" curve; the envelope
    draws the band the LR really sweeps. The record itself stays complete.

    >>> _envelope([0, 1] * 10, max_points=8)  # a period of 2 steps: every bucket keeps a 0 and a 1
    ([0, 1, 10, 11, 19], [0.0, 1.0, 0.0, 1.0, 1.0])
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    x = np.arange(n) if steps is None else np.asarray(steps, dtype=np.int64)
    if len(x) != n:
        raise ValueError(f"a sampled record needs one step per value, got {len(x)} steps for {n} values")
    if n <= max_points:
        return x.tolist(), y.tolist()
    buckets = max(1, (max_points - 2) // 3)  # up to 3 points a bucket (min, max, a NaN) and the two ends
    k = -(-n // buckets)
    m = -(-n // k)
    padded = np.full(m * k, np.nan)
    padded[:n] = y
    grid = padded.reshape(m, k)
    nan = np.isnan(grid)
    base = np.arange(m) * k
    lo = base + np.argmin(np.where(nan, np.inf, grid), axis=1)
    hi = base + np.argmax(np.where(nan, -np.inf, grid), axis=1)
    gap = base + np.argmax(nan, axis=1)
    keep = np.concatenate([lo, hi, gap[nan.any(axis=1)], [0, n - 1]])
    idx = np.unique(keep[keep < n])  # sorted: the points stay in step order
    return x[idx].tolist(), y[idx].tolist()


#: Least room between two phase names on the LR panel, in pixels (a word's space at 7 pt and 120 dpi).
_NAME_GAP_PX = 6


def _hide_crowded(fig: Any, ax: Any, names: Sequence[tuple[Any, float]]) -> None:
    """Keep phase names from printing over each other (a 200-step warmup in a 10,000-step run put "warmup" and
    "cycle 0" on the same spot): a name that would is moved right, past the one before it, while it still starts
    inside its own phase; otherwise it is hidden (the shading still shows the phase). ``names`` pairs each
    annotation with the step its phase ends at."""
    right = None
    for text, end in names:
        box = text.get_window_extent()  # (the figure's own renderer: only an Agg canvas has get_renderer())
        if right is None or box.x0 >= right + _NAME_GAP_PX:
            right = box.x1
            continue
        shift = right + _NAME_GAP_PX - box.x0  # pixels
        if box.x0 + shift >= ax.transData.transform((end, 0))[0] - 3:
            text.set_visible(False)  # no room in its own phase
            continue
        x, y = text.xyann
        text.xyann = (x + shift * 72 / fig.dpi, y)
        right = box.x1 + shift


#: matplotlib's backends that open windows, so need a display (``matplotlib.rcsetup.interactive_bk``, lower case).
_GUI_BACKENDS = frozenset({"gtk3agg", "gtk3cairo", "gtk4agg", "gtk4cairo", "macosx", "qt5agg", "qt5cairo", "qtagg",
                           "qtcairo", "tkagg", "tkcairo", "wx", "wxagg", "wxcairo"})


def _headless() -> bool:
    """No display to open a window on (Linux/BSD without ``DISPLAY`` or ``WAYLAND_DISPLAY``: a server, a container)."""
    return sys.platform not in ("darwin", "win32") and not (os.environ.get("DISPLAY")
                                                               or os.environ.get("WAYLAND_DISPLAY"))


def pyplot() -> Any:
    """``matplotlib.pyplot``, imported on first use with the Agg backend where no backend has been chosen, or where
    the one chosen opens windows and there is no display. A backend that works here and that the user chose
    (``matplotlib.use``, ``MPLBACKEND``, a notebook's inline one) is left as it is, and so is pyplot once imported.
    (``matplotlib.use("Agg", force=False)`` switched an imported pyplot to Agg, so a user's ``plt.show()`` showed
    nothing after one picture, and it set ``rcParams["backend_fallback"]`` for good.)

    >>> pyplot().__name__
    'matplotlib.pyplot'
    """
    matplotlib = optional_import("matplotlib", "plot")
    if "matplotlib.pyplot" not in sys.modules:
        chosen = dict.__getitem__(matplotlib.rcParams, "backend")  # (not rcParams["backend"]: that resolves it)
        auto = chosen is getattr(matplotlib.rcsetup, "_auto_backend_sentinel", None)
        if auto or (str(chosen).lower() in _GUI_BACKENDS and _headless()):
            matplotlib.rcParams["backend"] = "agg"  # what matplotlib.use does before pyplot is imported, no more
    return optional_import("matplotlib.pyplot", "plot")


def _is_schedule(obj: Any) -> bool:
    from lrkit.schedules.base import Schedule

    return isinstance(obj, Schedule)


def _listed(records: Any) -> list[Any]:
    # any iterable of records, as before (a dict's .values(), a generator): only what is not one is refused
    if isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
        raise TypeError(f"plot_schedule takes a schedule record (Schedule.record(), a mapping with 'lr' and "
                        f"'momentum'), a list of them, or a Schedule, not {type(records).__name__}")
    return list(records)


def _as_record(obj: Any) -> Any:
    """A Schedule is drawn from its bounded :func:`~lrkit.schedules.report.sampled_record` (what ``lrkit schedule``
    draws); a record passes through."""
    if not _is_schedule(obj):
        return obj
    if obj.total_steps is None:
        raise ValueError(f"{obj.label!r} has no fixed length, so there is no run to draw: plot "
                         "schedule.record(steps=N) for its first N steps, or give the spec total_steps=...")
    from lrkit.schedules.report import sampled_record

    return sampled_record(obj)


def plot_schedule(
    records: Mapping[str, Any] | Sequence[Mapping[str, Any]] | Any,
    *,
    path: str | os.PathLike[str] | None = None,
    log_y: bool = False,
    title: str | None = None,
    show_phases: bool = True,
) -> Any:
    """Draw one or several schedule records; save as PNG when ``path`` is given; return the Figure.

    A :class:`~lrkit.schedules.Schedule` may stand for its record (alone or in the list): it is drawn from its
    bounded :func:`~lrkit.schedules.report.sampled_record`, exact at every phase boundary.

    The top panel is the LR per optimizer step (a dashed line for bias groups when the record has ``lr_bias``),
    the phases of the first record shaded (up to 40 of them, counting the ones an elided record only counts in
    ``phase_count``); a bottom panel shows momentum when any record schedules it. With
    ``steps_per_epoch`` in the records (the same in each) an epoch axis runs along the top. Records that mix absolute
    LRs and multipliers of the peak (``"absolute"``) are drawn with the multipliers marked "(x peak)" in the legend.

    A figure written to ``path`` is closed in pyplot afterwards (still usable: ``fig.savefig`` works, and a notebook
    shows it), so plotting many schedules in a loop does not keep them all open; without ``path`` it stays open for
    ``plt.show()``. A figure whose drawing or writing failed is closed.

    >>> from lrkit.schedules import from_spec
    >>> fig = plot_schedule([from_spec("cosine lr0=0.1", total_steps=100).record(),
    ...                      from_spec("wsd lr0=0.1 decay_frac=0.2", total_steps=100).record()])
    >>> fig.axes[0].get_title(), len(fig.axes[0].get_lines())
    ('2 LR schedules', 2)
    """
    plt = pyplot()
    before = set(plt.get_fignums())
    try:
        fig = _draw_schedule(records, log_y=log_y, title=title, show_phases=show_phases)
        if path is not None:
            save_figure(fig, path)
    except BaseException:  # not left open in pyplot after a failure (a figure drawn part-way, a refused file)
        for number in set(plt.get_fignums()) - before:
            plt.close(number)
        raise
    if path is not None:  # written to a file: off pyplot's list of open figures (a loop over many schedules)
        plt.close(fig)
    return fig


#: On a log LR axis spanning many decades, the most padding above and below the curve, in decades (matplotlib's 5% of
#: a 200-decade range put the top edge ten decades above the largest LR).
_LOG_PAD_DECADES = 0.5


def _log_range(ax: Any, recs: Sequence[Mapping[str, Any]]) -> None:
    """The log LR axis, its range and its note: LRs of 0 (a step decay that underflowed, a decay to zero) cannot sit on
    a log axis, so they are left out of its range and named in a note on the panel ("LR 0 at 8 steps, from step 2:
    not drawn on the log axis"); ``ValueError`` when no LR is above 0. A range over more than 10 decades gets
    :data:`_LOG_PAD_DECADES` of padding, not matplotlib's 5% of it."""
    positive: list[float] = []
    notes = []
    from lrkit.plots.text import zero_note

    for i, r in enumerate(recs):
        at = _steps(r)
        every_step = at is None or int(at[-1]) + 1 == len(at)  # a sampled record of a long run skips steps
        for values in (r["lr"], r.get("lr_bias") if _given(r.get("lr_bias")) else []):
            y = np.asarray([math.nan if v is None else v for v in values], dtype=float)
            pos = y[y > 0]
            if len(pos):
                positive += [float(pos.min()), float(pos.max())]
            if values is r["lr"]:
                note = zero_note(range(len(y)) if at is None else at, y.tolist(), every_step=every_step)
                if note:
                    who = f"{r.get('label') or f'schedule {i + 1}'}: " if len(recs) > 1 else ""
                    notes.append(who + note)
    if not positive:
        raise ValueError("log_y=True: the schedule has no LR above 0, so nothing can be drawn on a log axis; draw it "
                         "with log_y=False")
    ax.set_yscale("log")
    lo, hi = min(positive), max(positive)
    if math.log10(hi / lo) * 0.05 > _LOG_PAD_DECADES:
        pad = 10.0**_LOG_PAD_DECADES
        ax.set_ylim(lo / pad, hi * pad)
    if notes:
        ax.text(0.01, 0.02, "; ".join(notes).replace("$", r"\$") + ": not drawn on the log axis",
                transform=ax.transAxes, fontsize=7, color="0.35", va="bottom")


def _draw_schedule(records: Any, *, log_y: bool, title: str | None, show_phases: bool) -> Any:
    """:func:`plot_schedule`'s drawing (its caller has set matplotlib's backend), left open in pyplot."""
    plt = optional_import("matplotlib.pyplot", "plot")
    recs = [_as_record(r) for r in ([records] if isinstance(records, Mapping) or _is_schedule(records)
                                    else _listed(records))]
    if not recs:
        raise ValueError("plot_schedule needs at least one record")
    for i, r in enumerate(recs):
        if not isinstance(r, Mapping) or "lr" not in r or "momentum" not in r:
            raise ValueError("a schedule record needs 'lr' and 'momentum' lists (Schedule.record())")
        label = str(r.get("label") or f"schedule {i + 1}")
        if len(r["lr"]) == 0:  # an empty frame, drawn without a word, before
            raise ValueError(f"the record of {label!r} has no steps ('lr' is empty): record at least one step "
                             "(Schedule.record(steps=N), N >= 1)")
        for key in ("momentum", "lr_bias"):  # one value per step, as 'lr' (a hand-made record may not match)
            values = r.get(key)
            if values is not None and len(values) != len(r["lr"]):
                raise ValueError(f"the record of {label!r} has {len(values)} {key!r} values for its {len(r['lr'])} "
                                 f"steps of 'lr': give one per step (None where it has none), as Schedule.record() "
                                 "does")
        spe = r.get("steps_per_epoch")
        if spe is not None and not (isinstance(spe, numbers.Real) and not isinstance(spe, bool)
                                    and 0 < float(spe) < math.inf):
            # NaN failed deep in matplotlib ("Axis limits cannot be NaN or Inf"), a negative one drew epochs backwards
            raise ValueError(f"steps_per_epoch={spe!r} in the record of {label!r} must be a finite number > 0, or "
                             "None (no epoch axis)")
    check_drawable(recs)
    has_mom = any(m is not None for r in recs for m in r["momentum"])
    if has_mom:
        fig, (ax, axm) = plt.subplots(2, 1, figsize=(8, 5.6), sharex=True, height_ratios=(2.2, 1))
    else:
        fig, ax = plt.subplots(figsize=(8, 4.2))
        axm = None
    scales = {bool(r.get("absolute", True)) for r in recs}
    absolute = scales == {True}
    mixed = len(scales) > 1  # absolute LRs and multipliers of the peak: each curve says which it is
    for i, r in enumerate(recs):
        color = f"C{i}"
        # a label is text, not mathtext: a spec's `$` is drawn as written (r"$\foo$" made savefig fail)
        label = str(r.get("label") or f"schedule {i + 1}").replace("$", r"\$")
        if mixed and not r.get("absolute", True):
            label += " (x peak)"
        at = _steps(r)  # a sampled record: the values sit at these steps
        xs, ys = _envelope(r["lr"], steps=at)
        dot = "." if len(xs) <= MAX_DOTTED_STEPS else ""
        ax.plot(xs, ys, color=color, lw=1.8, marker=dot, label=label)
        if _given(r.get("lr_bias")):
            xb, yb = _envelope(r["lr_bias"], steps=at)
            ax.plot(xb, yb, color=color, lw=1.0, ls="--", marker=dot, label=f"{label} (bias groups)")
        if axm is not None and any(m is not None for m in r["momentum"]):
            xm, ym = _envelope([float("nan") if m is None else m for m in r["momentum"]], steps=at)
            axm.plot(xm, ym, color=color, lw=1.4, marker=dot)
    if show_phases and recs[0].get("phases"):
        first = recs[0]
        at = _steps(first)
        n = len(first["lr"]) if at is None else int(first.get("total_steps") or at[-1] + 1)
        # an elided sampled record lists a few of its phases and counts them all in phase_count
        count = int(first.get("phase_count", len(first["phases"])))
        names = []
        for k, ph in enumerate(recs[0]["phases"]):
            # a phase is steps [start, end); the curve's last point is step n - 1, so the shading stops there too
            # (to n, the last phase ran a step past the run and the axis showed an empty step after it)
            start, end = ph["start"], n - 1 if ph["end"] is None else min(ph["end"], n - 1)
            if start >= n or count > 40:
                continue
            for a in (ax, axm):
                if a is not None:
                    a.axvspan(start, end, color="0.5" if k % 2 else "0.8", alpha=0.08, lw=0)
            if count <= 12:
                name = str(ph["name"]).replace("$", r"\$")  # text, not mathtext (r"$\foo$" failed in savefig)
                names.append((ax.annotate(name, xy=(start, 1.0), xycoords=("data", "axes fraction"),
                                         xytext=(2, -10), textcoords="offset points", fontsize=7, color="0.35"), end))
    if log_y:
        _log_range(ax, recs)
    ax.set_ylabel("learning rate" if absolute else "LR or multiplier (x peak)" if mixed else "LR multiplier (x peak)")
    ax.grid(True, alpha=0.25)
    bottom = axm if axm is not None else ax
    bottom.set_xlabel("optimizer step")
    from matplotlib.ticker import MaxNLocator

    # steps are whole numbers: no tick at step 0.25 on a short run's axis (shared x: one locator serves both panels)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if axm is not None:
        axm.set_ylabel("momentum")
        axm.grid(True, alpha=0.25)
    spes = {r.get("steps_per_epoch") for r in recs}
    spe = spes.pop() if len(spes) == 1 else None  # an epoch axis only where every curve's epoch is the same length
    if spe:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / spe, lambda e: e * spe))
        top.set_xlabel("epoch")
    ax.set_title(title or ("LR schedule" if len(recs) == 1 else f"{len(recs)} LR schedules"), fontsize=10,
                 pad=8 if not spe else 4)
    # the legend goes under the plot, where long spec labels cannot hide the curves
    fig.tight_layout()
    if show_phases and recs[0].get("phases"):
        _hide_crowded(fig, ax, names)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False)
    return fig
