"""The range-test picture: loss vs LR on a log axis, the suggestion marked and the usable range shaded."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lrkit._utils import atomic_write, optional_import, write_named
from lrkit.finder.suggest import REGIME_BACKOFF
from lrkit.plots.schedule import MAX_DRAWN, pyplot

__all__ = ["figure_format", "picture_target", "plot_finder", "save_figure", "write_figure"]


def figure_format(path: str | os.PathLike[str]) -> str:
    """The picture format a file name asks for: its suffix (``.png``, ``.pdf``, ``.svg``, ``.jpg``, ... — whatever
    matplotlib writes), PNG when it has none; ``ValueError`` naming the valid suffixes otherwise.

    >>> figure_format("lr.svg"), figure_format("plots/lr"), figure_format("LR.PNG")
    ('svg', 'png', 'png')
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    optional_import("matplotlib", "plot")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise ValueError(
            f"cannot write a picture to {str(path)!r}: '.{suffix}' is not an image format; use one of "
            f"{', '.join('.' + f for f in sorted(formats))}"
        )
    return suffix


def picture_target(path: str | os.PathLike[str]) -> str:
    """Check, before anything is drawn, that a picture can be written to ``path``; return its format (see
    :func:`figure_format`). ``ValueError`` naming the path when it is a folder, or when one of its parents is a file
    (folders that do not exist yet are fine: they are made when the picture is written).

    >>> import tempfile; d = tempfile.mkdtemp()
    >>> picture_target(f"{d}/new/lr.svg")
    'svg'
    >>> picture_target(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot write a picture to '...': it is a folder; name a file in it, e.g. '.../plot.png'
    """
    fmt = figure_format(path)
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"cannot write a picture to {str(path)!r}: it is a folder; name a file in it, e.g. "
                         f"{str(target / 'plot.png')!r}")
    for parent in target.parents:
        if parent.exists() or parent.is_symlink():
            if parent.is_symlink() and not parent.exists():
                raise ValueError(f"cannot write a picture to {str(path)!r}: {str(parent)!r} is a broken symlink (it "
                                 f"points to {os.readlink(parent)!r}, which does not exist)")
            if not parent.is_dir():
                raise ValueError(f"cannot write a picture to {str(path)!r}: {str(parent)!r} is a file, not a folder")
            break
    return fmt


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically, in the format its suffix names (PNG without one; see
    :func:`figure_format`). The temporary file has no meaningful suffix, so the format is passed explicitly.

    >>> import tempfile, pathlib
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(); _ = ax.plot([1, 2], [3, 4])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     print(save_figure(fig, pathlib.Path(d) / "curve.svg").read_text()[:5])
    <?xml
    >>> plt.close(fig)
    """
    return write_figure(fig, path, dpi=dpi, bbox_inches="tight")


def write_figure(fig: Any, path: str | os.PathLike[str], *, _run_file: bool = False, **savefig: Any) -> Path:
    """``fig.savefig(path, **savefig)`` atomically, in the format ``path``'s suffix names (through a symlink to the
    file it points to; into a named pipe or ``/dev/stdout`` as it is: :func:`lrkit._utils.write_named`). A
    format matplotlib lists but cannot write on this machine (``.pgf`` without a TeX installation: matplotlib's
    ``RuntimeError`` from inside ``savefig``) is a ``ValueError`` naming the file, matplotlib's reason and the formats
    that need nothing more; no file (and no temporary file) is left.

    >>> import tempfile, pathlib
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(); _ = ax.plot([1, 2], [3, 4])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     print(write_figure(fig, pathlib.Path(d) / "curve.png", dpi=50).read_bytes()[1:4])
    b'PNG'
    >>> plt.close(fig)
    """
    fmt = picture_target(path)
    try:
        # a run folder's own file (``_run_file``, lrkit.train's results.png) replaces a link planted there, as every
        # file of a run does (atomic_write): lrkit never writes into a file elsewhere that it did not create
        writer = atomic_write if _run_file else write_named
        return writer(path, lambda p: fig.savefig(p, format=fmt, **savefig))
    except RuntimeError as e:
        raise ValueError(f"cannot write a picture to {str(path)!r}: matplotlib cannot write .{fmt} here ({e}); "
                         "use .png, .pdf or .svg, which need nothing more") from None


#: A range-test curve with at most this many finite points gets a dot per step (a 1-point curve draws no line).
MAX_DOTTED_STEPS = 10


def plot_finder(record: Mapping[str, Any] | Any, *, path: str | os.PathLike[str] | None = None, ax: Any = None,
                show_rules: bool = True) -> Any:
    """Draw a range-test record (``FinderResult.to_dict()``, or the ``FinderResult`` itself) and optionally save it;
    return the Figure.

    A figure made here and saved to ``path`` is closed in pyplot once written (it stays usable: ``fig.savefig``
    works, a notebook shows the returned figure), so plotting many range tests does not keep them all open.

    Loss against LR on a log axis: the raw and smoothed curves, the usable range shaded, the suggestion marked
    (and every other rule's LR dotted when ``show_rules``). A record without a suggestion (a test that diverged
    within its first steps: ``"suggestion": null``) still shows its curve, titled "no suggestion".

    >>> import numpy as np
    >>> from lrkit.finder import FinderResult
    >>> lrs = list(np.geomspace(1e-5, 1, 40))
    >>> losses = [1.0 / (1 + 1e3 * lr) + (0 if lr < 0.2 else 10 * lr) for lr in lrs]
    >>> fig = plot_finder(FinderResult(lrs=lrs, losses=losses).to_dict())
    >>> fig.axes[0].get_xscale()
    'log'
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts() if t.get_text().startswith("suggestion")]
    ['suggestion (robust, a decade below the edge): 0.0127']
    """
    if not isinstance(record, Mapping) and callable(getattr(record, "to_dict", None)):
        record = record.to_dict()  # a FinderResult
    if not isinstance(record, Mapping) or "lrs" not in record or "losses" not in record:
        raise ValueError(f"plot_finder needs a range-test record with 'lrs' and 'losses' (FinderResult.to_dict(), "
                         f"lr_find.json), got {type(record).__name__}")
    lrs = list(record["lrs"])
    raw = [_loss_value(i, v) for i, v in enumerate(record["losses"])]
    if len(lrs) != len(raw):
        raise ValueError(f"the range-test record has {len(lrs)} lrs but {len(raw)} losses; they must pair up")
    for i, lr in enumerate(lrs):  # a hand-made record: a NaN/inf LR was left out without a word, None a TypeError
        try:
            ok = math.isfinite(float(lr)) and abs(float(lr)) <= MAX_DRAWN
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"lrs[{i}]={lr!r}: every LR of a range-test record is a finite number (at most "
                             f"{MAX_DRAWN:g}), as FinderResult.to_dict() and lr_find.json hold")
    lrs = [float(lr) for lr in lrs]  # "0.001" (a record read from text) compares and scales as a number
    record = _readings(record)
    record, raw = _past_drawable(record, raw)
    if path is not None:
        picture_target(path)  # a bad suffix or folder fails before anything is drawn
    plt = pyplot()  # Agg only where no backend was chosen (or no display): the user's own is kept
    own = ax is None  # a figure made here (not the caller's axes)
    if own:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    else:
        fig = ax.figure
    try:
        _draw_finder(ax, record, lrs, raw, show_rules)
        if own:
            _legend_below(fig, ax)
        else:  # the caller's axes, in the caller's layout: the legend stays on them
            ax.legend(fontsize=8, loc="best")
        if path is not None:
            save_figure(fig, path)
    except BaseException:
        if own:  # not left open in pyplot after a failure
            plt.close(fig)
        raise
    if path is not None and own:  # written to a file: off pyplot's list of open figures (a loop of range tests)
        plt.close(fig)
    return fig


def _readings(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The record with its ``suggestion``, ``suggestions`` and ``range`` as numbers (a hand-edited record: ``"0.01"``
    reads as 0.01, a rule whose LR is null is left out of the picture); ``ValueError`` naming a field of another shape,
    rather than a TypeError from a format string deep in the drawing."""
    def number(name: str, value: Any) -> float:
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value!r}: a range-test record holds it as a number (or null), as "
                             "FinderResult.to_dict() and lr_find.json do") from None

    fixed: dict[str, Any] = {}
    if record.get("suggestion") is not None:
        fixed["suggestion"] = number("suggestion", record["suggestion"])
    rules = record.get("suggestions")
    if rules is not None:
        if not isinstance(rules, Mapping):
            raise ValueError(f"suggestions={rules!r}: a range-test record holds each rule's LR by name, "
                             "{\"steepest\": 0.003, ...}, as FinderResult.to_dict() and lr_find.json do")
        fixed["suggestions"] = {str(k): number(f"suggestions[{k!r}]", v) for k, v in rules.items() if v is not None}
    span = record.get("range")
    if span is not None:
        ends = list(span) if isinstance(span, Iterable) and not isinstance(span, (str, bytes)) else []
        if len(ends) != 2 or any(v is None for v in ends):
            raise ValueError(f"range={span!r}: a range-test record holds the range as [low, high] (or null), as "
                             "FinderResult.to_dict() and lr_find.json do")
        fixed["range"] = [number("range", v) for v in ends]
    return {**record, **fixed} if fixed else record


def _loss_value(i: int, value: Any) -> float:
    """``losses[i]`` of a range-test record as a float (``None``, JSON's null, is NaN); ``ValueError`` naming it when it
    is not a number (a hand-made record), rather than float()'s bare "could not convert string to float"."""
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"losses[{i}]={value!r}: every loss of a range-test record is a number or null (NaN/inf), as "
                         "FinderResult.to_dict() and lr_find.json hold") from None


def _past_drawable(record: Mapping[str, Any], raw: list[float]) -> tuple[Mapping[str, Any], list[float]]:
    """A loss larger in size than :data:`lrkit.plots.schedule.MAX_DRAWN` (a float64 test that blew up to 1e308)
    is drawn as the inf it nearly is, a red × on the top edge: matplotlib's ticker fails on such values. The smoothed
    losses paired with those steps are left out with them, and any other past that size become gaps."""
    huge = [math.isfinite(v) and abs(v) > MAX_DRAWN for v in raw]
    smoothed = record.get("smoothed_losses") or []
    big_smooth = any(v is not None and not abs(float(v)) <= MAX_DRAWN for v in smoothed)
    if not any(huge) and not big_smooth:
        return record, raw
    if smoothed and len(smoothed) == sum(math.isfinite(v) for v in raw):
        at_finite = [h for h, v in zip(huge, raw) if math.isfinite(v)]
        smoothed = [v for v, h in zip(smoothed, at_finite) if not h]
    smoothed = [v if v is not None and abs(float(v)) <= MAX_DRAWN else math.nan for v in smoothed]
    raw = [math.copysign(math.inf, v) if h else v for v, h in zip(raw, huge)]
    return {**record, "smoothed_losses": smoothed}, raw


def _draw_finder(ax: Any, record: Mapping[str, Any], lrs: list[Any], raw: list[float], show_rules: bool) -> None:
    finite = [(lr, v) for lr, v in zip(lrs, raw) if math.isfinite(v)]
    # a short test (a few steps before it diverged) gets a dot per step: one finite point alone draws no line
    ax.plot(lrs, raw, color="0.75", lw=1, marker="." if len(finite) <= MAX_DOTTED_STEPS else "", label="loss (raw)")
    bad = [lr for lr, v in zip(lrs, raw) if not math.isfinite(v)]
    if bad:  # where the loss became NaN/inf: only a gap in the curve otherwise
        ax.plot(bad, [1.0] * len(bad), ls="none", marker="x", color="tab:red", markersize=7, clip_on=False,
                transform=ax.get_xaxis_transform(), label="loss NaN/inf")
    smoothed = record.get("smoothed_losses") or []
    if smoothed and len(smoothed) == len(finite):
        ax.plot([lr for lr, _ in finite], smoothed, color="C0", lw=2, label="loss (smoothed)")
    sug = record.get("suggestion")
    rule = record.get("rule")  # (a hand-made record may not name its rule)
    if record.get("range"):
        low, high = record["range"]
        ax.axvspan(low, high, color="C2", alpha=0.12, label=f"range {low:.2g} – {high:.2g}")
    if show_rules and sug is not None:
        # C3 is the suggestion's own colour: the other rules take the colours after it, one each
        others = [(name, lr) for name, lr in sorted((record.get("suggestions") or {}).items()) if name != rule]
        for i, (name, lr) in enumerate(others):
            ax.axvline(lr, color=f"C{4 + i}", ls=":", lw=1, label=f"{name}: {lr:.2g}")
    if sug is not None:
        # the default rule's reading of the curve (records written before it existed have no "regime")
        how = {"explosion": ", a decade below the edge", "plateau": ", half a decade below a plateau"}.get(
            record.get("regime") if rule == "robust" else None, "")
        back = record.get("backoff_decades") if rule == "robust" else None
        if (how and isinstance(back, (int, float)) and math.isfinite(back)  # (a hand-made record may hold NaN)
                and back != REGIME_BACKOFF[record["regime"]]):
            # the noise scaling changed the back-off
            how = _below(back, "the minimum") + " (noisy curve)"
        edge = record.get("edge") if rule == "robust" else None
        if how and record.get("double_dip") is True and isinstance(edge, (int, float)):
            how = how.replace("the edge", "the first dip").replace("the minimum", "the first dip")
        if not (isinstance(back, (int, float)) and math.isfinite(back)):  # a record from before the noise scaling
            back = REGIME_BACKOFF.get(record.get("regime"), math.nan) if how else math.nan  # type: ignore[arg-type]
        taken = _decades_below_edge(edge, sug) if how else None
        if taken is None and how:  # a record from before the edge was recorded: the smoothed minimum
            taken = _decades_below_minimum(lrs, raw, smoothed, sug)
        if taken is not None and taken < back - 0.05:
            # the rule kept its LR inside the descent: closer to the minimum than the back-off it names
            ref = "the first dip" if record.get("double_dip") is True else "the minimum"
            how = _below(taken, ref) + " (kept inside the descent)"
        if rule == "robust" and record.get("flat") is True:  # no descent, no minimum: the edge is where it blew up
            how = _flat_how(record.get("edge"), sug, record.get("backoff_decades"))
        ax.axvline(sug, color="C3", lw=2, label=f"suggestion ({rule}{how}): {sug:.3g}" if rule else
                   f"suggestion: {sug:.3g}")
    if lrs and all(lr > 0 for lr in lrs):
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    status = str(record.get("stop_reason") or "")  # (a hand-made record may have none, or null)
    if sug is None:
        # a test that ran all its steps with a finite loss at each was too short (a rule needs 3 LRs); with NaN/inf
        # losses it blew up early, as FinderResult's error says
        # (a linear sweep's second LR is ~end_lr / num_steps whatever start_lr is)
        lower = "lower end_lr" if record.get("mode") == "linear" else "lower start_lr"
        advice = "too few steps, raise num_steps" if status == "completed" and not bad else lower
        status += f"{', ' if status else ''}no suggestion: {advice}"
    # NaN/inf marks sit on the top edge: the title keeps clear of them
    ax.set_title(f"LR range test — {status + ', ' if status else ''}{len(lrs)} step{'' if len(lrs) == 1 else 's'}",
                 pad=11 if bad else None)
    ylim = loss_ylim(finite, smoothed)
    if ylim is not None:
        ax.set_ylim(*ylim)
    elif lrs:
        ax.text(0.5, 0.5, "no finite loss", transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.grid(True, which="both", alpha=0.25)


def loss_ylim(finite: list[tuple[Any, float]], smoothed: list[Any], *, pad: bool = True) -> tuple[float, float] | None:
    """The loss axis's range for a range-test curve (``finite``: its ``(lr, loss)`` points with a finite loss), so
    the divergence tail does not squash the interesting part of the curve: from the lowest loss to the first loss or
    the 90th percentile, whichever is higher, capped at twice the descent when the tail is long; 5% padding, never
    below zero for a loss that never was (``pad=False``: none, so a text chart's axis labels are the losses
    themselves). ``None`` with no finite point. The picture (:func:`plot_finder`) and the text chart
    (:func:`lrkit.plots.text.finder_text`) both use it.

    >>> loss_ylim([(1e-3, 2.3), (1e-2, 1.0), (1e-1, 0.01)], [2.3, 1.0, 0.01])
    (0.0, 2.4145)
    >>> loss_ylim([(1e-3, -1.0), (1e-2, -2.0)], [-1.0, -2.0])
    (-2.05, -0.95)
    """
    if not finite:
        return None
    vals = sorted(v for _, v in finite)
    lo_v, hi_v = vals[0], vals[min(len(vals) - 1, int(0.9 * len(vals)))]
    first = finite[0][1]
    top = max(first, hi_v)
    # a test run on past its blow-up (no divergence stop) can spend more than a tenth of its steps there: the
    # 90th percentile is then in the tail and the descent a flat line; keep the tail within twice the descent
    pre, at = _before_minimum(finite, smoothed)
    if pre > lo_v and at >= max(3, len(finite) // 10):  # (a curve with no descent before its minimum: no cap)
        top = max(first, min(top, pre + 2 * (pre - lo_v)))
    margin = 0.05 * (top - lo_v if top > lo_v else 1.0) if pad or top <= lo_v else 0.0
    # a loss that never went below zero gets no negative axis from the padding (a loss of 0.01 under 2.3 at the top)
    return (lo_v - margin if lo_v < 0 else max(lo_v - margin, 0.0)), top + margin


#: Margin below the legend under the range-test plot, in inches.
_LEGEND_GAP_IN = 0.08


def _legend_below(fig: Any, ax: Any) -> None:
    """Put the axes' legend under the plot, growing the figure by its height.

    Inside the axes, eight entries (raw, smoothed, range, three rules and a suggestion label of 80 characters) have
    no free corner: "best" laid them over the descent, the part of the curve the picture is for. Under the plot they
    hide nothing; the figure grows so the legend is inside it (a plain ``fig.savefig`` keeps it whole), and it stays
    the axes' legend (``ax.get_legend()``). Two columns when they fit the figure's width, else one.
    """
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    width, height = fig.get_size_inches()
    renderer = None  # each artist finds its figure's renderer (only an Agg canvas has get_renderer())

    def place(ncol: int) -> Any:
        return ax.legend(handles, labels, fontsize=8, ncol=ncol, loc="upper center", frameon=False,
                         bbox_to_anchor=(0.5, 0.0), bbox_transform=fig.transFigure)

    ncol = 2 if len(handles) > 3 else 1
    legend = place(ncol)
    if ncol > 1 and legend.get_window_extent(renderer).width > 0.98 * fig.bbox.width:
        legend.remove()  # a long suggestion label: one column
        legend = place(1)
    legend.set_in_layout(False)  # placed by hand below; tight_layout lays out the axes above it
    # (tight_layout pads the x-axis label from the legend's top)
    below = legend.get_window_extent(renderer).height / fig.dpi + _LEGEND_GAP_IN
    fig.set_size_inches(width, height + below)
    legend.set_bbox_to_anchor((0.5, below / (height + below)), transform=fig.transFigure)
    fig.tight_layout(rect=(0.0, below / (height + below), 1.0, 1.0))
    legend.set_in_layout(True)  # counted again by savefig(bbox_inches="tight"), which would crop it off otherwise


def _before_minimum(finite: list[tuple[Any, float]], smoothed: list[Any]) -> tuple[float, int]:
    """The highest finite loss up to the curve's minimum (the smoothed one where it pairs with the finite losses),
    the top of the descent, noise included; and the minimum's index among the finite points."""
    values = [v for _, v in finite]
    try:
        curve = [float(v) for v in smoothed] if smoothed and len(smoothed) == len(values) else values
    except (TypeError, ValueError):
        curve = values
    at = min((i for i in range(len(curve)) if math.isfinite(curve[i])), key=curve.__getitem__, default=len(values) - 1)
    return max(values[: at + 1]), at


def _flat_how(edge: Any, sug: Any, back: Any) -> str:
    """The legend's words for a curve too flat to judge that blew up (``"flat": true``): the back-off below where
    the flat loss blew up (the record's ``edge``), and how far below it really is when the first LR tested clipped it.

    >>> _flat_how(0.1, 0.01, 1.0)
    ', a decade below where the flat loss blew up'
    >>> _flat_how(0.1, 0.03, 1.0)   # the first LR tested is only half a decade below the edge
    ', 0.52 decades below where the flat loss blew up (the lowest LR tested)'
    """
    if not (isinstance(back, (int, float)) and math.isfinite(back)):
        back = REGIME_BACKOFF["explosion"]
    how = ", a decade below" if back == 1 else f", {back:.2g} decades below"
    taken = _decades_below_edge(edge, sug)
    clipped = taken is not None and taken < back - 0.05
    if clipped:
        return _below(taken, "where the flat loss blew up") + " (the lowest LR tested)"
    return how + " where the flat loss blew up"


def _number_apart(value: float, marks: Iterable[float] = (), *, digits: int = 2, fixed: bool = False) -> str:
    """``value`` with ``digits`` significant digits (decimals with ``fixed``), and more where fewer would print it on
    one of ``marks`` it is not on, or on the other side of one: a noise ratio of 0.07002 is ``"0.07002"``, not
    ``"0.07"`` (the noise band's edge, where the back-off is still taken in full), and a back-off of 0.9992 decades is
    ``"0.999"``, not ``"1"`` (the full decade). A value within float rounding of a mark prints as the mark; a small
    nonzero value never prints as zero (``fixed``: a noise of 0.0044 is ``"0.0044"``).

    >>> _number_apart(0.07002, (0.07, 0.1), fixed=True), _number_apart(0.0612, (0.07, 0.1), fixed=True)
    ('0.07002', '0.06')
    >>> _number_apart(0.99924, (0.0, 1.0)), _number_apart(1 - 1e-15, (0.0, 1.0)), _number_apart(0.52, (0.0, 1.0))
    ('0.999', '1', '0.52')
    >>> _number_apart(0.0044, fixed=True), _number_apart(0.0, fixed=True), _number_apart(4.9e-15, fixed=True)
    ('0.0044', '0.00', '4.9e-15')
    """
    def side(x: float, mark: float) -> int:
        return 0 if abs(x - mark) <= 1e-9 * max(1.0, abs(mark)) else (1 if x > mark else -1)

    marks = [float(m) for m in marks]
    for mark in marks:  # on a mark, to float rounding: the mark itself (1e-16 decades is "0")
        if side(value, mark) == 0:
            return f"{mark:.{digits}{'f' if fixed else 'g'}}"
    if fixed and value and abs(value) < 1e-6:  # 4.9e-15 is "4.9e-15", not "0.0000000000000049"
        fixed = False
    if fixed and value and float(f"{value:.{digits}f}") == 0:  # 0.0044 is "0.0044", not "0.00"
        digits = 1 - math.floor(math.log10(abs(value)))
    text = f"{value:.{digits}{'f' if fixed else 'g'}}"
    for more in range(digits, 18):
        text = f"{value:.{more}{'f' if fixed else 'g'}}"
        if all(side(float(text), m) == side(value, m) for m in marks):
            break
    return text


#: The distances (in decades) a legend must not round a back-off onto: none, half a decade (a plateau's full back-off)
#: and a decade (an explosion's).
_DECADE_MARKS = (0.0, *REGIME_BACKOFF.values())


def _below(decades: float, ref: str) -> str:
    """``", 0.52 decades below <ref>"``, or ``", at <ref>"`` for a distance that rounds to 0 (not "0 decades"); never
    rounded onto a decade, half a decade or nothing that it is not (0.9992 is "0.999 decades", not "a decade").

    >>> _below(0.52, "the minimum"), _below(1, "the minimum"), _below(0.0, "the minimum")
    (', 0.52 decades below the minimum', ', a decade below the minimum', ', at the minimum')
    >>> _below(0.99924, "the minimum"), _below(0.4995, "the minimum")
    (', 0.999 decades below the minimum', ', 0.499 decades below the minimum')
    """
    text = _number_apart(decades, _DECADE_MARKS)
    if float(text) == 0:
        return f", at {ref}"
    return f", {'a decade' if float(text) == 1 else text + ' decades'} below {ref}"


def _decades_below_edge(edge: Any, sug: Any) -> float | None:
    """How many decades the suggestion lies below the LR the rule backed off from (the record's ``edge``)."""
    try:
        edge, sug = float(edge), float(sug)
    except (TypeError, ValueError):
        return None
    if not (edge > 0 and sug > 0 and math.isfinite(edge) and math.isfinite(sug)):
        return None
    return max(0.0, math.log10(edge / sug))


def _decades_below_minimum(lrs: list[Any], raw: list[float], smoothed: list[Any], sug: Any) -> float | None:
    """How many decades the suggestion lies below the smoothed curve's minimum, read from the record; ``None`` when
    the record cannot say (no smoothed curve that pairs with its finite losses, a non-positive LR)."""
    finite = [lr for lr, v in zip(lrs, raw) if math.isfinite(v)]
    if not smoothed or len(smoothed) != len(finite):
        return None
    try:
        values = [float(v) for v in smoothed]
        lr_min = float(finite[min(range(len(values)), key=values.__getitem__)])
        sug = float(sug)
    except (TypeError, ValueError):
        return None
    if not (lr_min > 0 and sug > 0 and math.isfinite(lr_min) and math.isfinite(sug)):
        return None
    return max(0.0, math.log10(lr_min / sug))
