"""Pictures in the terminal: a range-test curve or a schedule drawn in text, for a shell where a PNG is a download away.

No matplotlib: Unicode braille dots (each character cell holds 2 x 4 of them, so a 72 x 14 chart is 144 x 56 dots),
or plain ASCII (``ascii=True``: one mark a cell) for a console that cannot show braille. A chart is a ``str`` of
lines, each at most ``width`` characters; :func:`lrkit.finder.FinderResult.text_plot` and
:meth:`lrkit.schedules.Schedule.text_plot` draw with it, ``lrkit find`` and ``lrkit schedule`` print it.

>>> print(text_chart([([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0], "line")], width=40, height=4, x_log=False, ascii=True))
 4 +******
   |      ***********
   |                 ************
 1 +                             ******
   ++----------+-----------+----------+
    1          2           3          4
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from lrkit._utils import check_int, is_float_text

__all__ = ["finder_text", "schedule_text", "text_chart", "zero_note"]

_BOX = {"y": "│", "tick_y": "┤", "x": "─", "tick_x": "┬", "corner": "└", "mark": "┊", "mark_x": "┴",
        "tick_mark_x": "┼", "arrow": "▲"}
_ASCII_BOX = {"y": "|", "tick_y": "+", "x": "-", "tick_x": "+", "corner": "+", "mark": ":", "mark_x": "^",
              "tick_mark_x": "^", "arrow": "^"}
# braille: the bit of dot (row 0-3, column 0-1) within a cell (Unicode's dot numbering 1-8)
_BRAILLE_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_STYLES = ("line", "dots")
_MIN_WIDTH, _MIN_HEIGHT = 40, 3  # 40 columns: room for a mark's label and the axis names, never cut


def _fmt(v: float, digits: int = 3) -> str:
    """A tick label: a whole number as its digits (below a million), else ``digits`` significant digits (3 unless
    more are needed to tell labels apart: :func:`_labels`), ``1e-05`` style for the very small and large."""
    if v == 0:
        return "0"
    if float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    mant, _, exp = f"{v:.{digits}g}".partition("e")
    return f"{mant}e{int(exp):+03d}" if exp else mant  # as Python prints it: 1e-05, 2e+06


def _labels(values: Sequence[float], tol: float) -> list[str]:
    """``values`` as labels with the fewest significant digits (3 or more) that keep each label within ``tol`` of
    its value and different labels for different values: ``2.3027`` / ``2.3026``, never ``2.3`` / ``2.3``."""
    labels: list[str] = []
    for digits in range(3, 18):
        labels = [_fmt(v, digits) for v in values]
        close = all(abs(float(s) - v) <= tol for s, v in zip(labels, values))
        if close and len(set(labels)) == len(set(values)):
            break
    return labels


def _half_span(lo: float, hi: float) -> float:
    """``(hi - lo) / 2`` without overflow (``-1e308`` to ``1e308`` is a span past the largest float)."""
    return hi / 2 - lo / 2


def _nice_step(span: float, n: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts ``span`` into about ``n`` parts."""
    raw = span / max(1, n)
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)


def _ticks(lo: float, hi: float, log: bool, cols: int, whole: bool = False) -> list[float]:
    """Tick positions in data units: whole decades on a log axis (every k-th when there are many), else round
    numbers about every 12 columns; ``[lo, hi]`` where neither fits (no decade inside, a span too small or too large
    for round numbers)."""
    if log:
        a, b = math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9)
        decades = list(range(a, b + 1))
        room = max(1, cols // 9)  # a label is at most 8 characters wide, plus a space
        step = max(1, math.ceil(len(decades) / room))
        ticks = [10.0**d for d in decades[::step]]
        if len(ticks) < 2:  # less than a decade's span (a test that diverged early): 1-2-5 in each decade
            ticks = [m * 10.0**d for d in range(a - 1, b + 1) for m in (1, 2, 5) if lo <= m * 10.0**d <= hi]
        return ticks if len(ticks) >= 2 else [lo, hi]
    n = max(1, min(5, cols // 12))
    ticks = [lo, hi]
    try:
        for parts in (n, 2 * n):  # a round step can leave two ticks on a short axis (1 to 4: 2 and 4): halve it once
            step = _nice_step(hi - lo, parts)  # (a span past the largest float: inf, an OverflowError below)
            if whole:  # counts (optimizer steps): no tick between two of them
                step = max(1.0, math.ceil(step))
            places = 2 - math.floor(math.log10(step))  # float noise off (0.30000000000000004), the step's digits kept
            first = math.ceil(lo / step - 1e-9)
            count = int((hi / step - first) + 1e-9) + 1
            ticks = [round((first + i) * step, places) for i in range(count)]
            if len(ticks) >= 3:
                break
    except (ValueError, OverflowError):  # a step of 0 (a subnormal span) or past the largest float
        return [lo, hi]
    return ticks or [lo, hi]


def _flat_band(lo: float, hi: float, log: bool) -> tuple[float, float]:
    """A range around a flat curve (``lo == hi``): 5% each side (0.05 decades on a log axis; ±0.5 around 0), kept
    within the floats (a flat 1.7e308 pads downwards only, a flat -1.7e308 upwards)."""
    pad = 0.05 if log else abs(lo) * 0.05 or 0.5
    top = 308.25 if log else 1.7976931348623157e308  # log10 of the largest float, and that float
    if hi + pad > top:
        return lo - 2 * pad, hi
    if not log and lo - pad < -top:  # a flat -1.7e308: upwards only
        return lo, hi + 2 * pad
    return lo - pad, hi + pad


def text_chart(
    series: Sequence[tuple[Sequence[float], Sequence[float], str]],
    *,
    width: int = 72,
    height: int = 14,
    x_log: bool = False,
    x_whole: bool = False,
    y_log: bool = False,
    ylim: tuple[float, float] | None = None,
    marks: Sequence[tuple[float, str]] = (),
    ascii: bool = False,
    y_label: str = "",
    x_label: str = "",
) -> str:
    """A line chart as text: ``series`` of ``(xs, ys, style)``, style ``"line"`` (points joined) or ``"dots"``.

    ``ylim``: the y range shown (default: the data's); a value above it is drawn on the top row, below it on the
    bottom row (a divergence tail stays visible without squashing the rest). Non-finite values leave a gap. ``marks``:
    ``(x, label)`` pairs, each drawn as a dotted vertical line with a ``▲`` under the axis and its label below; a
    mark outside the data widens the x axis to it. ``x_log``: a log x axis (every x must then be > 0, or NaN: a
    gap); ``y_log``: a log y axis (a y <= 0 leaves a gap; with none > 0 the chart says there is nothing to draw and
    names no y range); ``x_whole``: x counts something (optimizer steps), so no tick falls between two whole
    numbers. Labels carry as many digits as it takes to tell them apart (``2.30265`` / ``2.30255``), 3 at
    least. The result has ``height`` chart rows plus the axis, the tick labels, and one line for the marks and one
    for ``x_label`` when there are any (axis names too long for a line wrap between words); each line is at most
    ``width`` characters (at least 40).

    >>> chart = text_chart([([1e-4, 1e-3, 1e-2], [1.0, 0.5, 2.0], "line")], x_log=True, width=40, height=6,
    ...                    marks=[(1e-3, "here")])
    >>> len(chart.splitlines()), max(len(line) for line in chart.splitlines()) <= 40, "▲ here" in chart
    (9, True, True)
    """
    width = check_int("width", width, minimum=_MIN_WIDTH)
    height = check_int("height", height, minimum=_MIN_HEIGHT)
    if not series:
        raise ValueError("text_chart needs at least one (xs, ys, style) series, got none")
    points: list[tuple[list[float], list[float], str]] = []
    for i, item in enumerate(series):
        try:
            xs, ys, style = item
        except (TypeError, ValueError):
            raise ValueError(f"series[{i}] must be (xs, ys, style), got {item!r:.80}") from None
        if style not in _STYLES:
            raise ValueError(f"series[{i}]: style={style!r} is not one of {', '.join(map(repr, _STYLES))}")
        xs, ys = [float(x) for x in xs], [float(y) for y in ys]
        if len(xs) != len(ys):
            raise ValueError(f"series[{i}] has {len(xs)} x values but {len(ys)} y values; they must pair up")
        bad = next((x for x in xs if x <= 0), None) if x_log else None  # (a NaN is a gap, as on a linear axis)
        if bad is not None:
            raise ValueError(f"series[{i}]: x_log=True needs every x > 0, got {bad!r}")
        if y_log:
            ys = [math.log10(y) if y > 0 else math.nan for y in ys]
        points.append((xs, ys, style))
    all_x = [x for xs, _, _ in points for x in xs if math.isfinite(x)]
    finite_y = [y for _, ys, _ in points for y in ys if math.isfinite(y)]
    if not all_x:
        raise ValueError("text_chart has no finite x value to draw")
    # a mark outside the data widens the axis to it (as matplotlib's axvline does): at the edge it would name a value
    # the edge is not
    marks = [(float(x), str(label)) for x, label in marks if math.isfinite(x) and (not x_log or x > 0)]
    x_lo, x_hi = min(all_x + [x for x, _ in marks]), max(all_x + [x for x, _ in marks])
    empty = ylim is None and not finite_y  # nothing to draw: no y range to make up, no labels to name one
    if ylim is not None:
        y_lo, y_hi = float(ylim[0]), float(ylim[1])
        if not (math.isfinite(y_lo) and math.isfinite(y_hi) and y_lo < y_hi and (y_lo > 0 or not y_log)):
            raise ValueError(f"ylim={ylim!r} must be two finite numbers, low < high" + " (> 0 on a log axis)" * y_log)
        if y_log:
            y_lo, y_hi = math.log10(y_lo), math.log10(y_hi)
    elif finite_y:
        y_lo, y_hi = min(finite_y), max(finite_y)
    else:
        y_lo, y_hi = 0.0, 1.0
    if not _half_span(y_lo, y_hi) > 0:  # a flat curve (or one flat to within a subnormal): a band around it
        y_lo, y_hi = _flat_band(y_lo, y_hi, y_log)

    ends = [10**y_hi, 10**y_lo] if y_log else [y_hi, y_lo]
    # as many digits as it takes to tell top from bottom, each label within 1% of the axis of its value
    labels = ["", ""] if empty else _labels(ends, 0.01 * abs(ends[0] - ends[1]))
    gutter = max(len(s) for s in labels) + 2  # labels right-aligned, a space, then "┤"
    cols = width - gutter - 2  # "┤" and one cell of margin at the right
    box = _ASCII_BOX if ascii else _BOX
    sub_x, sub_y = (1, 1) if ascii else (2, 4)
    dots_w, dots_h = cols * sub_x, height * sub_y
    if x_log:
        fx_lo, fx_hi = math.log10(x_lo), math.log10(x_hi)
    else:
        fx_lo, fx_hi = x_lo, x_hi
    half_x = _half_span(fx_lo, fx_hi) or 0.5  # (halves: a span past the largest float stays finite)
    half_y = _half_span(y_lo, y_hi)

    def col(x: float) -> int:
        fx = math.log10(x) if x_log else x
        return min(dots_w - 1, max(0, round(_half_span(fx_lo, fx) / half_x * (dots_w - 1))))

    def row(y: float) -> int:  # 0 = top
        r = round(_half_span(y, y_hi) / half_y * (dots_h - 1))
        return min(dots_h - 1, max(0, r))

    line_dots: set[tuple[int, int]] = set()
    point_dots: set[tuple[int, int]] = set()
    for xs, ys, style in points:
        prev: tuple[int, int] | None = None
        for x, y in zip(xs, ys):
            if not (math.isfinite(x) and math.isfinite(y)):
                prev = None
                continue
            here = (row(y), col(x))
            if style == "dots":
                point_dots.add(here)
                continue
            if prev is None:
                line_dots.add(here)
            else:  # every dot between the two points, so a steep fall is a line, not two dots
                (r0, c0), (r1, c1) = prev, here
                n = max(abs(r1 - r0), abs(c1 - c0), 1)
                for k in range(n + 1):
                    line_dots.add((round(r0 + (r1 - r0) * k / n), round(c0 + (c1 - c0) * k / n)))
            prev = here
    mark_cols = {col(x) // sub_x: label for x, label in marks}

    grid: list[list[str]] = [[" "] * cols for _ in range(height)]
    if ascii:
        for r, c in point_dots:
            grid[r][c] = "."
        for r, c in line_dots:
            grid[r][c] = "*"
    else:
        bits = [[0] * cols for _ in range(height)]
        for r, c in line_dots | point_dots:
            bits[r // 4][c // 2] |= _BRAILLE_BITS[r % 4][c % 2]
        for r in range(height):
            for c in range(cols):
                if bits[r][c]:
                    grid[r][c] = chr(0x2800 + bits[r][c])
    for c in mark_cols:
        for r in range(height):
            if grid[r][c] == " ":
                grid[r][c] = box["mark"]

    out: list[str] = []
    mid = {0: labels[0], height - 1: labels[1]}
    for r in range(height):
        label = mid.get(r, "")
        out.append(f"{label + ' ' if label else '':>{gutter}}{box['tick_y'] if label else box['y']}"
                   f"{''.join(grid[r])}".rstrip())
    # the x axis: ticks at the tick positions, their labels centred under them where they fit
    ticks = [t for t in _ticks(x_lo, x_hi, x_log, cols, x_whole) if x_lo <= t <= x_hi] if x_hi > x_lo else [x_lo]
    axis = [box["x"]] * cols
    tick_cols = [col(t) // sub_x for t in ticks]
    for c in tick_cols:
        axis[c] = box["tick_x"]
    for c in mark_cols:
        axis[c] = box["mark_x"] if axis[c] == box["x"] else box["tick_mark_x"]
    out.append(f"{'':>{gutter}}{box['corner']}{''.join(axis)}".rstrip())
    text = [" "] * (cols + 1)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    for c, s in zip(tick_cols, _labels(ticks, 1e-3 * min(gaps, default=abs(ticks[0])))):
        if len(s) > cols + 1:  # wider than the line: left out, never cut
            continue
        start = min(max(0, c - len(s) // 2), cols + 1 - len(s))
        if all(ch == " " for ch in text[max(0, start - 1): start + len(s) + 1]):
            text[start: start + len(s)] = list(s)
    out.append((" " * (gutter + 1) + "".join(text)).rstrip())
    if mark_cols:
        line = [" "] * (cols + 1)
        for c, label in sorted(mark_cols.items()):
            start, s = _place_mark_label(c, label, cols + 1, box["arrow"])
            if all(ch == " " for ch in line[start: start + len(s) + 1]):
                line[start: start + len(s)] = list(s)
        out.append((" " * (gutter + 1) + "".join(line)).rstrip())
    names = [w for w in (f"x: {x_label}" if x_label else "", f"y: {y_label}" if y_label else "") if w]
    if empty:
        names.append("(no y value > 0 on the log axis: nothing to draw)" if y_log else "(no finite y value: nothing "
                     "to draw)")
    if names[:2] and gutter + 1 + len("   ".join(names[:2])) <= width:
        names[:2] = ["   ".join(names[:2])]
    for name in names:  # one a line where both do not fit; a line too long wraps between words, never within one
        out.extend(" " * (gutter + 1) + part for part in textwrap.wrap(
            name, width - gutter - 1, break_long_words=False, break_on_hyphens=False))
    return "\n".join(line[:width] for line in out)


def _place_mark_label(c: int, label: str, room: int, arrow: str) -> tuple[int, str]:
    """``(start, text)`` of a mark's label line: the arrow always in column ``c`` (under the mark), the label to its
    right, else to its left, else the label's number alone (right, then left), else the arrow alone — the first
    that fits in ``room`` columns. (A label that fitted on neither side was pushed to column 0, its arrow columns
    away from the mark: in a 40-column terminal it pointed at a larger LR than the one it named.)

    >>> _place_mark_label(2, "suggestion 0.0167 (robust)", 20, "^")
    (2, '^ 0.0167')
    >>> _place_mark_label(15, "suggestion 0.0167 (robust)", 20, "^")
    (8, '0.0167 ^')
    """
    short = next((w for w in label.split() if is_float_text(w)), label.split()[-1] if label.split() else "")
    for text in (label, short):
        if not text:
            continue
        if c + len(text) + 2 <= room:
            return c, f"{arrow} {text}"
        if c - len(text) - 1 >= 0:
            return c - len(text) - 1, f"{text} {arrow}"
    return c, arrow


def finder_text(record: Mapping[str, Any] | Any, *, width: int = 72, height: int = 14, ascii: bool = False) -> str:
    """A range-test record (``FinderResult.to_dict()``, ``lr_find.json``, or the ``FinderResult``) as a text chart:
    the raw losses as dots, the smoothed curve as a line, the suggestion marked, on a log LR axis; the y range as
    :func:`lrkit.plots.finder.plot_finder` sets it (a divergence tail does not squash the descent: it runs along the
    top row). A test with no finite loss is a one-line note.

    >>> import numpy as np
    >>> from lrkit.finder import FinderResult
    >>> lrs = list(np.geomspace(1e-5, 1, 60))
    >>> r = FinderResult(lrs=lrs, losses=[1 / (1 + 1e3 * lr) + (0 if lr < 0.2 else 10 * lr) for lr in lrs])
    >>> chart = finder_text(r, width=60, height=8)
    >>> "suggestion 0.0117 (robust) ▲" in chart, chart.splitlines()[-1].strip()
    (True, 'x: learning rate   y: training loss')
    """
    from lrkit.plots.finder import _loss_value, _readings, loss_ylim

    if not isinstance(record, Mapping) and callable(getattr(record, "to_dict", None)):
        record = record.to_dict()  # a FinderResult
    if not isinstance(record, Mapping) or "lrs" not in record or "losses" not in record:
        raise ValueError(f"finder_text needs a range-test record with 'lrs' and 'losses' (FinderResult.to_dict(), "
                         f"lr_find.json), got {type(record).__name__}")
    # as plot_finder reads a record: every LR named where it is not a number the log axis can place (a NaN one was
    # left out without a word, 0 was "series[0]: x_log=True needs every x > 0"), a suggestion written as text read
    lrs = [_finder_lr(i, lr) for i, lr in enumerate(record["lrs"])]
    raw = [_loss_value(i, v) for i, v in enumerate(record["losses"])]
    record = _readings(record)
    if len(lrs) != len(raw):
        raise ValueError(f"the range-test record has {len(lrs)} lrs but {len(raw)} losses; they must pair up")
    finite = [(lr, v) for lr, v in zip(lrs, raw) if math.isfinite(v)]
    if not finite:
        return f"(no finite loss in {len(lrs)} step{'s' * (len(lrs) != 1)}: nothing to draw)"
    smoothed = list(record.get("smoothed_losses") or [])
    series: list[tuple[Sequence[float], Sequence[float], str]] = [(lrs, raw, "dots")]
    if smoothed and len(smoothed) == len(finite):
        series.append(([lr for lr, _ in finite], smoothed, "line"))
    marks: list[tuple[float, str]] = []
    sug = record.get("suggestion")
    if isinstance(sug, (int, float)) and math.isfinite(sug) and sug > 0:
        rule = record.get("rule")
        marks.append((float(sug), f"suggestion {sug:.3g}" + (f" ({rule})" if rule else "")))
    ylim = loss_ylim(finite, smoothed, pad=False)
    if ylim is not None and not ylim[0] < ylim[1]:  # one loss, or a flat one, past 1e16: its ±0.05 is lost to rounding
        ylim = None  # (the chart's own band around a flat curve is relative)
    chart = text_chart(series, width=width, height=height, x_log=True, ylim=ylim,
                       marks=marks, ascii=ascii, x_label="learning rate", y_label="training loss")
    bad = [lr for lr, v in zip(lrs, raw) if not math.isfinite(v)]
    if bad:  # the picture marks them on its top edge; in text they are only a gap, so say where it is
        what = "step" if len(bad) == 1 else "steps"
        note = (f"(loss NaN/inf in {len(bad)} {what}, the first at lr={min(bad):.3g}: not drawn)" if len(bad) > 1
                else f"(loss NaN/inf in 1 step, at lr={bad[0]:.3g}: not drawn)")
        last = chart.splitlines()[-1]
        indent = " " * (len(last) - len(last.lstrip()))  # under the axis names
        chart += "\n" + "\n".join(textwrap.wrap(note, width, initial_indent=indent, subsequent_indent=indent,
                                                break_long_words=False, break_on_hyphens=False))
    return chart


def zero_note(steps: Sequence[float], lrs: Sequence[float], *, every_step: bool) -> str:
    """Where a schedule's LR is 0 (or below), the LRs a log axis cannot draw: ``""`` where there are none.

    ``steps[i]`` is the step of ``lrs[i]``; ``every_step``: the record holds every step (a sampled record of a long
    run does not, so it gives no count). Each run of consecutive values is named: one value as ``step S``, a run as
    ``steps S to E``; a single run of several steps keeps the short form ``at N steps, from step S``.

    >>> zero_note([0, 1, 2, 3], [0.0, 0.1, 0.0, 0.0], every_step=True)
    'LR 0 at 3 steps: step 0, steps 2 to 3'
    >>> zero_note([0, 5000, 9999], [0.0, 0.1, 0.05], every_step=False)
    'LR 0 at step 0'
    """
    at = [i for i, v in enumerate(lrs) if v <= 0]  # (NaN is not: a gap on any axis)
    if not at:
        return ""
    what = "LR 0" if all(lrs[i] == 0 for i in at) else "LR <= 0"
    runs: list[tuple[int, int]] = []
    for i in at:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))

    def step(i: int) -> str:
        return f"{int(steps[i])}"

    count = f"{len(at)} step{'' if len(at) == 1 else 's'}"
    if len(runs) == 1 and len(at) == 1:
        return f"{what} at step {step(at[0])}"
    if len(runs) == 1:
        first, last = runs[0]
        return f"{what} at {count}, from step {step(first)}" if every_step else (
            f"{what} from step {step(first)} to step {step(last)}")
    named = [f"step {step(a)}" if a == b else f"steps {step(a)} to {step(b)}" for a, b in runs[:3]]
    more = f", and {len(runs) - 3} more" if len(runs) > 3 else ""
    return (f"{what} at {count}: " if every_step else f"{what} at ") + ", ".join(named) + more


def _finder_lr(i: int, lr: Any) -> float:
    """``lrs[i]`` of a range-test record as a float; ``ValueError`` naming it unless it is a finite number > 0."""
    try:
        value = float(lr) if not isinstance(lr, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"lrs[{i}]={lr!r}: every LR of a range-test record is a finite number > 0, as "
                         "FinderResult.to_dict() and lr_find.json hold")
    return value


def schedule_text(records: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, width: int = 72, height: int = 12,
                  ascii: bool = False, log_y: bool = False) -> str:
    """Schedule records (``Schedule.record()``, or :func:`lrkit.schedules.report.sampled_record` of a long run) as a
    text chart of the LR against the optimizer step; several records are overlaid (``lrkit schedule --compare``:
    in text the curves share one mark, so the PNG tells them apart). Momentum is left to the PNG.

    >>> from lrkit.schedules import from_spec
    >>> print(schedule_text(from_spec("step lr0=0.1 step_size=5 gamma=0.5", total_steps=20,
    ...                               steps_per_epoch=1).record(), width=40, height=4, ascii=True))
        0.1 +*******
            |       *
            |        *******
     0.0125 +               ***************
            ++-------+------+-------+------
             0       5     10      15
             x: optimizer step
             y: learning rate
    """
    recs = [records] if isinstance(records, Mapping) else list(records)
    if not recs:
        raise ValueError("schedule_text needs at least one record")
    series: list[tuple[Sequence[float], Sequence[float], str]] = []
    for r in recs:
        if not isinstance(r, Mapping) or "lr" not in r:
            raise ValueError("a schedule record needs an 'lr' list (Schedule.record())")
        lrs = [math.nan if v is None else float(v) for v in r["lr"]]
        steps = r.get("steps")  # (a numpy array has no truth value: `or` failed on one)
        steps = range(len(lrs)) if steps is None or len(steps) == 0 else steps
        series.append(([float(t) for t in steps], lrs, "line"))
    absolute = all(bool(r.get("absolute", True)) for r in recs)
    y = "learning rate" if absolute else "LR multiplier (x peak)"
    chart = text_chart(series, width=width, height=height, y_log=log_y, ascii=ascii, x_whole=True,
                       x_label="optimizer step",
                       y_label=y + (f" ({len(recs)} schedules)" if len(recs) > 1 else ""))
    notes = []
    if log_y and any(v > 0 for _, ys, _ in series for v in ys):  # (none above 0: the chart says so itself)
        for r, (xs, ys, _) in zip(recs, series):
            # an LR of 0 (a decay that underflowed) is a gap on the log axis: say where, as finder_text does
            every_step = int(xs[-1]) + 1 == len(xs)  # a sampled long run skips steps
            note = zero_note(xs, ys, every_step=every_step)
            if note:
                who = f"{r.get('label') or 'a schedule'}: " if len(recs) > 1 else ""
                notes.append(who + note)
    if notes:
        last = chart.splitlines()[-1]
        indent = " " * (len(last) - len(last.lstrip()))  # under the axis names
        chart += "\n" + "\n".join(textwrap.wrap(f"({'; '.join(notes)}: not drawn on the log axis)", width,
                                                initial_indent=indent, subsequent_indent=indent,
                                                break_long_words=False, break_on_hyphens=False))
    return chart
