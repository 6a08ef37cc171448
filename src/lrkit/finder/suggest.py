"""Suggestion rules: small pure functions over a range-test curve ``(lrs, losses)``.

Every rule takes the LRs and the *raw* per-step losses of one range test (already cut at divergence) and returns a
learning rate. They share one smoothing step (:func:`smooth_curve`) so the rules differ only in how they read the
curve, not in how they denoise it.

>>> import numpy as np
>>> lrs = np.logspace(-5, 0, 60)
>>> losses = 1.0 / (1.0 + (lrs / 1e-3)) + (lrs / 0.1) ** 2   # learns from ~1e-3, blows up from ~0.1
>>> lo, hi = 1e-4, 1e-1
>>> lo < suggest_robust(lrs, losses) < hi
True
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Callable

import numpy as np

from lrkit._utils import check_positive, unknown_name_error

__all__ = [
    "DEFAULT_RULE",
    "REGIME_BACKOFF",
    "ROBUST_BACKOFF_DECADES",
    "ROBUST_DIP_GATE",
    "ROBUST_DIP_NOISE",
    "ROBUST_DIP_PASSES",
    "ROBUST_DIP_RISE",
    "ROBUST_FLAT",
    "ROBUST_FLAT_SIGMAS",
    "ROBUST_MAX_PASSES",
    "ROBUST_NOISE_BAND",
    "ROBUST_PLATEAU_BACKOFF_DECADES",
    "ROBUST_PLATEAU_RISE",
    "RULES",
    "dip_cut",
    "flat_edge",
    "lr_range",
    "noise_ratio",
    "robust_backoff",
    "robust_regime",
    "smooth_curve",
    "suggest",
    "suggest_minimum",
    "suggest_robust",
    "suggest_steepest",
    "suggest_valley",
]

Rule = Callable[[np.ndarray, np.ndarray], float]


def ema(values: np.ndarray, beta: float = 0.9) -> np.ndarray:
    """Bias-corrected exponential moving average (fastai's smoothing): ``s_i = beta*s_{i-1} + (1-beta)*x_i``."""
    out = np.empty(len(values), dtype=float)
    avg = 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1.0 - beta) * float(v)
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


#: Above this many window cells (curve length × window) the running median slides one sorted window along the curve
#: instead of sorting every window: the same values (the exact middle element), O(n·w) memory moves instead of a sort
#: of n·w numbers. A default 100-step curve has 100 × 7 cells; a 20,000-step one 20,000 × 1,401.
_SORT_CELLS = 200_000


def _running_median(padded: np.ndarray, w: int) -> np.ndarray:
    """The middle value of each length-``w`` (odd) window of ``padded`` (finite values), one sorted window slid
    along: each step removes the value that leaves and inserts the one that enters (binary search)."""
    values = padded.tolist()
    window = sorted(values[:w])
    h = w // 2
    out = np.empty(len(values) - w + 1)
    out[0] = window[h]
    for i in range(1, len(out)):
        del window[bisect.bisect_left(window, values[i - 1])]
        bisect.insort(window, values[i + w - 1])
        out[i] = window[h]
    return out


def smooth_curve(losses: np.ndarray, window: int | None = None) -> np.ndarray:
    """Denoise a range-test loss curve without shifting it.

    A running median (robust to single bad batches) followed by a centred moving average. Unlike an EMA, a centred
    filter has no lag, so the minimum of the smoothed curve sits at the LR where the loss really bottomed out rather
    than a few steps later (the lag is why EMA-based ``argmin`` rules overshoot). ``window`` defaults to ~7% of the
    curve (odd, at least 3).
    """
    y = np.asarray(losses, dtype=float)
    n = len(y)
    window = _check_window(window)
    if n < 3:
        return y.copy()
    w = window or max(3, round(0.07 * n) | 1)
    w = min(w | 1, n if n % 2 else n - 1)
    h = w // 2
    padded = np.concatenate([np.full(h, y[0]), y, np.full(h, y[-1])])
    windows = np.lib.stride_tricks.sliding_window_view(padded, w)
    # the odd window's middle value: np.median's own result, in one C call when every value is finite (np.median's
    # layers of Python cost more than the sort on the short curves here; it still handles NaN as NaN)
    if not np.isfinite(y).all():
        med = np.median(windows, axis=1)
    elif n * w <= _SORT_CELLS:
        med = np.sort(windows, axis=1)[:, h]
    else:  # a long curve (a 20,000-step test: w = 1401): sorting every window is O(n·w·log w), seconds
        med = _running_median(padded, w)
    padded = np.concatenate([np.full(h, med[0]), med, np.full(h, med[-1])])
    kernel = np.ones(w) / w
    return np.convolve(padded, kernel, mode="valid")


def _check_window(window: object) -> int | None:
    """``smooth_curve``'s ``window``: ``None`` (the default width) or a whole number >= 1, named otherwise (a
    negative one was numpy's ``negative dimensions``, a float a ``TypeError``, ``0`` silently the default)."""
    if window is None:
        return None
    if isinstance(window, (bool, np.bool_)) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window={window!r}: the smoothing window is a whole number >= 1 (made odd), or None for "
                         "~7% of the curve")
    return int(window)


def _as_curve(lrs: object, losses: object) -> tuple[np.ndarray, np.ndarray]:
    """``(lrs, losses)`` as float arrays, checked as a range test's curve: numbers, one loss per LR, every LR finite
    and ``> 0``, the LRs non-decreasing (the sweep). A ``ValueError`` names what is wrong (before, a length mismatch
    was numpy's ``boolean index did not match``, and a zero, NaN or falling LR a ``nan`` or an LR off no curve)."""
    arrays = []
    for name, values in (("lrs", lrs), ("losses", losses)):
        try:
            if values is None:  # (np.asarray(None, dtype=float) is a NaN, which would read as a bad LR)
                raise TypeError
            arrays.append(np.asarray(values, dtype=float).ravel())
        except (TypeError, ValueError):
            raise ValueError(f"{name}={values!r:.120}: a range-test curve's {name} are numbers") from None
    x, y = arrays
    if len(x) != len(y):
        raise ValueError(f"lrs and losses must have the same length (one loss per LR), got {len(x)} LRs and "
                         f"{len(y)} losses")
    bad = np.flatnonzero(~(np.isfinite(x) & (x > 0)))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"lrs[{i}]={float(x[i])!r}: every LR of a range test is a finite number > 0")
    down = np.flatnonzero(x[1:] < x[:-1])
    if len(down):
        i = int(down[0]) + 1
        raise ValueError(f"lrs must increase step by step (the range test's sweep), but lrs[{i}]={float(x[i])!r} is "
                         f"below lrs[{i - 1}]={float(x[i - 1])!r}")
    return x, y


def _trim(lrs: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve's finite points, with a run of repeated LRs merged into one point at its mean loss (several
    measurements at one LR are one point of the curve: slopes over a zero LR step would be infinite or NaN)."""
    lrs, losses = _as_curve(lrs, losses)
    keep = np.isfinite(losses)
    lrs, losses = lrs[keep], losses[keep]
    if len(lrs) > 1 and np.any(lrs[1:] == lrs[:-1]):
        starts = np.flatnonzero(np.r_[True, lrs[1:] != lrs[:-1]])
        losses = np.add.reduceat(losses, starts) / np.diff(np.r_[starts, len(lrs)])
        lrs = lrs[starts]
    if len(lrs) < 3:
        at = f" at {len(lrs)} different LRs" if len(lrs) < keep.sum() else ""
        raise ValueError(
            f"need at least 3 finite loss values (at 3 different LRs) to suggest an LR, got {int(keep.sum())}{at}"
        )
    return lrs, losses


def _gradient(lrs: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    return np.gradient(smoothed, np.log10(lrs))


def suggest_steepest(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The LR where the smoothed loss falls fastest per decade: ``argmin d loss / d log10(lr)``.

    This is torch-lr-finder's and Lightning's rule; it tends to sit low, at the start of the descent.
    """
    lrs, losses = _trim(lrs, losses)
    s = smooth_curve(losses)
    end = int(np.argmin(s)) + 1  # only the descending part counts
    end = max(end, 3)
    g = _gradient(lrs[:end], s[:end])
    return float(lrs[int(np.argmin(g))])


def suggest_minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``minimum``: one tenth of the LR at the minimum of the EMA-smoothed loss (``lr_min / 10``).

    Transcribed with fastai's smoothing (bias-corrected EMA, beta 0.98), whose lag puts ``lr_min`` a few steps past
    the real bottom of the curve; the ``robust`` rule reads the same point off a lag-free curve.
    """
    lrs, losses = _trim(lrs, losses)
    return float(lrs[int(np.argmin(ema(losses, 0.98)))] / 10.0)


def suggest_valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``valley``: the longest decreasing run of the loss, then a point ~1/2 of the way down it.

    Re-implemented from fastai's ``valley`` (longest decreasing subsequence over the smoothed losses; index
    ``start + int(L/3) + int(L/6)`` where ``L`` is its length).
    """
    lrs, losses = _trim(lrs, losses)
    s = ema(losses, 0.98)
    n = len(s)
    max_start, max_end = _longest_decrease(s)
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[min(idx, n - 1)])


def _longest_decrease(s: np.ndarray) -> tuple[int, int]:
    """fastai's ``valley`` search: ``(max_end - length, max_end)`` of the longest strictly decreasing subsequence of
    ``s`` ending at ``max_end`` (the first index where the longest ends). fastai runs an O(n²) double loop; this
    finds the same lengths in O(n log n) (the longest run ending at ``i`` extends the longest among earlier, higher
    values: patience sorting on ``-s``), so a 10⁴-step record takes milliseconds, not seconds. A NaN compares false
    with everything in fastai's loop: it is a run of 1 that extends nothing, and is skipped here.

    >>> _longest_decrease(np.array([3.0, 1.0, 2.0, 0.5, 0.4]))  # 3 > 2 > 0.5 > 0.4, ending at index 4
    (0, 4)
    """
    n = len(s)
    if n == 0:
        return 0, 0
    lds = np.ones(n, dtype=int)
    tails: list[float] = []  # tails[k]: the least -s ending a strictly increasing run (in -s) of length k + 1
    for i, value in enumerate((-np.asarray(s, dtype=float)).tolist()):
        if math.isnan(value):
            continue
        k = bisect.bisect_left(tails, value)
        lds[i] = k + 1
        if k == len(tails):
            tails.append(value)
        else:
            tails[k] = value
    max_end = int(np.argmax(lds))  # the first index with the longest (fastai moves only on a strictly longer one)
    return (max_end - int(lds[max_end]) if max_end > 0 else 0), max_end


#: How far below the loss minimum's LR the robust rule sits, in decades, when the loss explodes past its minimum
#: (calibrated on benchmarks/finder_quality.py's six calibration tasks).
ROBUST_BACKOFF_DECADES = 1.0
#: The back-off, in decades, for a curve that plateaus instead (tested on a pre-registered held-out set;
#: docs/benchmarks/finder.md).
ROBUST_PLATEAU_BACKOFF_DECADES = 0.5
#: A curve "plateaus" when its smoothed loss ends less than this many times ``|first smoothed loss|`` above its
#: minimum (and no loss was non-finite); the calibration tasks' curves rose at most 0.7x or at least 12x.
ROBUST_PLATEAU_RISE = 3.0
#: The robust rule scales its back-off by ``w = clip((high - noise_ratio) / (high - low), 0, 1)``: in full on a curve
#: whose :func:`noise_ratio` is at most ``low``, none (``lr_min`` itself) at ``high`` and above. Chosen on 17 tasks,
#: then tested on six pre-registered ones (docs/benchmarks/finder.md, "Third fresh set").
ROBUST_NOISE_BAND: tuple[float, float] = (0.07, 0.10)
#: The robust rule's back-off by regime (:func:`robust_regime`), before any noise scaling.
REGIME_BACKOFF: dict[str, float] = {"explosion": ROBUST_BACKOFF_DECADES, "plateau": ROBUST_PLATEAU_BACKOFF_DECADES}
#: A *double dip* (:func:`dip_cut`): once the smoothed loss has made ``ROBUST_DIP_GATE`` of its total drop, a rise
#: above its running minimum by more than ``ROBUST_DIP_RISE`` times the drop made so far, followed later by a lower
#: minimum, marks the stability edge; the robust rule reads the curve cut there. Chosen on 29 tasks, adopted after a
#: pre-registered test on six fresh ones (docs/benchmarks/finder.md, "Fifth fresh set").
ROBUST_DIP_RISE = 0.2
ROBUST_DIP_GATE = 0.5
#: Guards on the double-dip cut: the first dip's rise must stand out of the curve's scatter — its peak above the
#: running minimum more than ``ROBUST_DIP_NOISE`` robust standard deviations of the losses around the smoothed curve
#: (:func:`dip_cut`'s ``noise``) — and the range test must have cycled through its training set more than
#: ``ROBUST_DIP_PASSES`` times, the regime the cut was built for (a linear model on a tiny noisy dataset). Read off
#: the 6 curves of 123 where the cut fired (2 helped, 4 hurt), adopted by a pre-registered test on the seventh fresh
#: set, where the cut fired on none (docs/benchmarks/finder.md, "Seventh fresh set"). ``None``: no such guard.
ROBUST_DIP_NOISE: float | None = 1.5
ROBUST_DIP_PASSES: float | None = 6.0
#: The noise scaling applies only to a range test that passed over the training set at most this many times
#: (:attr:`FinderResult.passes <lrkit.finder.result.FinderResult.passes>`): on a tiny dataset that the test cycles
#: through, the curve's scatter is not gradient noise that an annealed run averages out, and the full back-off stays.
ROBUST_MAX_PASSES = 6.0
#: A curve *too flat to judge* — its smoothed loss never gets ``ROBUST_FLAT`` of ``|start|`` below its start (the
#: range test warns) — has no minimum worth reading: the loss did not learn in the test's few steps (a recurrent
#: net before it escapes its plateau). If it then blows up, the place it leaves its flat band (:func:`flat_edge`) is
#: the one edge the test saw, and the rule backs off from there. ``None``: off (a flat curve is read like any other).
#: Written for a GRU of the seventh fresh set, adopted by a pre-registered test on the eighth
#: (docs/benchmarks/finder.md, "Eighth fresh set").
ROBUST_FLAT: float | None = 0.02
#: With ``ROBUST_FLAT``, a curve also counts as flat when its dip below the start is within ``ROBUST_FLAT_SIGMAS``
#: robust standard deviations of its batch-to-batch scatter (:func:`flat_edge`'s ``flat_sigmas``): a noisy flat curve
#: dips a few percent below its start by chance. ``None``: off. Read off the eighth fresh set's failures, adopted by a
#: pre-registered test on the ninth (docs/benchmarks/finder.md, "Ninth fresh set").
ROBUST_FLAT_SIGMAS: float | None = 2.0


def _read(lrs: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, float]:
    """The curve as the readings share it: ``(lrs, losses, smoothed, head, start)`` — the finite points (repeated LRs
    merged, :func:`_trim`), their :func:`smooth_curve`, the length of the curve's head (its first eighth, at least 5
    points) and ``start``, the median loss over that head."""
    t_lrs, raw = _trim(lrs, losses)
    head = max(5, len(raw) // 8)
    return t_lrs, raw, smooth_curve(raw), head, float(np.median(raw[:head]))


def _scatter(resid: np.ndarray) -> float:
    """A robust standard deviation: ``1.4826 * MAD`` (the median absolute deviation from the median)."""
    return 1.4826 * float(np.median(np.abs(resid - np.median(resid))))


def dip_cut(lrs: np.ndarray, losses: np.ndarray, *, rise: float = ROBUST_DIP_RISE,
            gate: float = ROBUST_DIP_GATE, noise: float | None = ROBUST_DIP_NOISE) -> int | None:
    """Where a curve that dips twice met its stability edge: the number of points of the finite curve (non-finite
    losses dropped, repeated LRs merged, as every rule reads it) to keep, or ``None`` for a curve with one dip.

    A curve dips twice when its smoothed loss, after making at least ``gate`` of its total drop, rises above its
    running minimum by more than ``rise`` times the drop made so far, and *later* falls to a lower minimum (the
    optimizer bounced into another regime at a 10-100x higher LR, e.g. a linear model under SGD with momentum on a
    tiny noisy dataset). A loss that turns up by a fifth of its progress has met the edge; the rule backs off from
    the first dip, not the deeper second one. A rise within twice the curve's head (its first eighth, at least 5
    points) is too early to tell from the head's scatter and does not count. With ``noise`` (default
    :data:`ROBUST_DIP_NOISE`), the dip must also stand out of the scatter: its peak above the running minimum, before
    the curve reaches its lowest point, more than ``noise`` times ``1.4826 * MAD`` of the losses around the smoothed
    curve (up to that lowest point).

    >>> lrs = np.logspace(-4, 1, 100)
    >>> first = 1 / (1 + lrs / 1e-2)                                  # learns from ~1e-2 ...
    >>> bump = 0.6 * np.exp(-np.log10(lrs / 0.1) ** 2 / 0.02)         # ... turns up hard near 0.1 ...
    >>> curve = first + bump - 0.3 * (lrs > 1)                         # ... and drops lower again above 1
    >>> cut = dip_cut(lrs, curve)
    >>> round(float(lrs[cut - 1]), 3), dip_cut(lrs, first + (lrs / 1.0) ** 2)   # cut on the way up; one dip: None
    (0.076, None)
    >>> # a test that cycled 10 times through its data: below the first edge; without the cut, half a decade below the
    >>> # second minimum (the curve ends as a plateau)
    >>> round(suggest_robust(lrs, curve, passes=10), 4), round(suggest_robust(lrs, curve, dip_rise=None), 4)
    (0.0048, 3.1623)
    """
    rise = check_positive("rise", rise, allow_zero=True)
    gate = check_positive("gate", gate, allow_zero=True)
    if noise is not None:
        noise = check_positive("noise", noise, allow_zero=True)
    _, raw, s, head, start = _read(lrs, losses)
    if len(raw) < 2 * head + 2:
        return None
    running_min = np.minimum.accumulate(s)
    drop = start - running_min
    total = start - float(s.min())
    over = np.nonzero((drop >= gate * total) & (drop > 0) & (s - running_min > rise * drop))[0]
    i_min = int(np.argmin(s))
    if not len(over) or i_min < over[0] + 1 or over[0] + 1 < 2 * head:
        return None  # one dip, or a rise too early to tell from the head's scatter (noise_ratio's own guard)
    if noise is not None:
        if not float((s - running_min)[over[0] : i_min + 1].max()) > noise * _scatter((raw - s)[: i_min + 1]):
            return None  # a rise within the curve's scatter
    return int(over[0]) + 1


def _dip_at(lrs: np.ndarray, losses: np.ndarray, *, dip_rise: float | None, dip_noise: float | None,
            passes: float | None, dip_passes: float | None) -> int | None:
    """:func:`dip_cut` as the robust rule applies it: ``None`` without ``dip_rise``, and with ``dip_passes`` unless
    the test made more than that many ``passes`` (unknown ``passes``: no cut)."""
    # the guards are checked even with the cut off (dip_rise=None): a bad value is refused whatever the curve
    if dip_noise is not None:
        dip_noise = check_positive("dip_noise", dip_noise, allow_zero=True)
    dip_passes = _as_count("dip_passes", dip_passes)
    if dip_rise is None:
        return None
    dip_rise = check_positive("dip_rise", dip_rise, allow_zero=True)  # named as the caller passed it
    if dip_passes is not None and not (passes is not None and passes > dip_passes):
        return None
    return dip_cut(lrs, losses, rise=dip_rise, noise=dip_noise)


def flat_edge(lrs: np.ndarray, losses: np.ndarray, *, flat: float = 0.02, band_sigmas: float = 3.0,
              flat_sigmas: float | None = None) -> int | None:
    """Where a curve too flat to judge blows up: the number of points of the finite curve (as every rule reads it) up
    to the first whose smoothed loss leaves the flat band, or ``None``.

    The curve is flat when its smoothed minimum is less than ``flat`` times ``|start|`` below ``start``, the median
    of its first eighth (at least 5 points, "the head") — no learning to read; with ``flat_sigmas``, less than
    ``max(flat * |start|, flat_sigmas * sigma)`` below it (a dip within the curve's own scatter is no learning
    either). It leaves the band at the first smoothed loss past the head above
    ``start + max(flat * |start|, band_sigmas * sigma)`` (within the head a rise is the smoother's boundary and the
    head's own scatter),
    with ``sigma`` = 1.4826 MAD of the losses around the smoothed curve over its flat part (up to where it first rises
    ``flat * |start|`` above ``start``, at least the first eighth): its batch-to-batch scatter. ``None`` for a curve
    that drops further, or that never leaves the band. A curve whose finite losses stay in the band but that then
    turned non-finite (NaN/inf, where the range test stops) left it past its last finite point: that point is the
    edge (the same curve with one large finite loss in place of the NaN reads alike). Only a curve that *ends*
    non-finite blew up so: a non-finite loss it went on from reads as one large finite loss (one bad batch) would.

    >>> lrs = np.logspace(-7, 1, 100)
    >>> flat = 1.39 + 0.01 * np.random.default_rng(0).normal(size=100) + (lrs / 0.3) ** 4   # blows up near 0.3
    >>> edge = flat_edge(lrs, flat)
    >>> 0.05 < float(lrs[edge - 1]) < 0.3, flat_edge(lrs, 1 / (1 + lrs / 1e-3) + (lrs / 0.3) ** 4)  # one that learns
    (True, None)
    >>> noisy = 0.69 + 0.03 * np.random.default_rng(1).normal(size=100) + (lrs / 0.3) ** 4  # ln 2, scatter 4%
    >>> flat_edge(lrs, noisy) is None, flat_edge(lrs, noisy, flat_sigmas=2.0) is not None  # its chance dips: 2 sigma
    (True, True)
    """
    flat = check_positive("flat", flat, allow_zero=True)
    band_sigmas = check_positive("band_sigmas", band_sigmas, allow_zero=True)
    if flat_sigmas is not None:
        flat_sigmas = check_positive("flat_sigmas", flat_sigmas, allow_zero=True)
    _, raw, s, head, start = _read(lrs, losses)
    if len(raw) <= head:
        return None
    # a curve that ends non-finite blew up past its last finite point (the range test stops at the first one); a
    # non-finite loss the curve went on from reads as one large finite loss would (the running median ignores it)
    tail = np.asarray(losses, dtype=float).ravel()[-1:]
    blew = bool(len(tail)) and not bool(np.isfinite(tail[0]))
    # a rise within the head is the smoother's boundary and the head's own scatter, not a blow-up (``start`` is read
    # there): only points past it can leave the band
    out = head + np.nonzero(s[head:] > start + flat * abs(start))[0]
    if not len(out) and not blew:
        return None  # never rises out of the band: nothing blew up (or it learned)
    flat_end = int(out[0]) if len(out) else len(raw)
    sigma = _scatter((raw - s)[: max(flat_end, head)])  # the flat part's (the blow-up's residuals are no noise)
    if start - float(s.min()) >= max(flat * abs(start), (flat_sigmas or 0.0) * sigma):
        return None  # it learned: the minimum is readable
    above = head + np.nonzero(s[head:] > start + max(flat * abs(start), band_sigmas * sigma))[0]
    if len(above):
        return int(above[0]) + 1
    return len(raw) if blew else None


def _flat_at(lrs: np.ndarray, losses: np.ndarray, flat: float | None,
             flat_sigmas: float | None = None) -> int | None:
    """:func:`flat_edge` as the robust rule applies it (``flat=None``: never)."""
    if flat_sigmas is not None:
        flat_sigmas = check_positive("flat_sigmas", flat_sigmas, allow_zero=True)
    if flat is None:
        return None
    return flat_edge(lrs, losses, flat=check_positive("flat", flat, allow_zero=True), flat_sigmas=flat_sigmas)


def _as_count(name: str, v: object) -> float | None:
    """``v`` as a finite float >= 0 (``None`` stays ``None``); any real number counts, numpy scalars included
    (``passes`` is often computed with numpy), a bool or a string does not."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.integer, np.floating)):
        raise ValueError(f"{name}={v!r} must be a finite number >= 0, or None")
    f = float(v)
    if not (math.isfinite(f) and f >= 0):
        raise ValueError(f"{name}={v!r} must be a finite number >= 0, or None")
    return f


def _robust_view(
    lrs: np.ndarray,
    losses: np.ndarray,
    *,
    noise_band: tuple[float, float] | None,
    stopped: bool,
    dip_rise: float | None,
    passes: float | None,
    max_passes: float | None,
    dip_noise: float | None = ROBUST_DIP_NOISE,
    dip_passes: float | None = ROBUST_DIP_PASSES,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None, bool, bool]:
    """The curve as the robust rule reads it: ``(lrs, losses, noise_band, stopped, cut)`` — cut at a double dip's
    first edge (read as an explosion: ``stopped``), and without the noise scaling when the test made more than
    ``max_passes`` passes over the training set."""
    band = _check_band(noise_band)
    passes, max_passes = _as_count("passes", passes), _as_count("max_passes", max_passes)
    if passes is not None and max_passes is not None and passes > max_passes:
        band = None
    cut = _dip_at(lrs, losses, dip_rise=dip_rise, dip_noise=dip_noise, passes=passes, dip_passes=dip_passes)
    if cut is not None:
        t_lrs, t_losses = _trim(lrs, losses)
        return t_lrs[:cut], t_losses[:cut], band, True, True
    return np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float), band, stopped, False


def noise_ratio(lrs: np.ndarray, losses: np.ndarray) -> float:
    """How noise-dominated a range-test curve is: its batch-to-batch scatter over the drop it made.

    ``1.4826 * MAD(raw - smoothed)`` over the points up to the smoothed minimum (a robust standard deviation of the
    losses around :func:`smooth_curve`), divided by the drop from the median of the first eighth of the losses (at
    least 5) to the smoothed minimum. ``nan`` when the loss did not drop, or when the minimum comes within twice that
    head of the curve's start (a curve that rises from the start, or one of a few points): over so few points the
    smoother's own bias at a sharp minimum reads as scatter (a noiseless curve read 0.1 to 1e6) and the head overlaps
    the minimum. Clean curves, whose minimum is the stability edge, read below ~0.07; noise-dominated ones, which
    bottom out where gradient noise stops progress (and whose full run, annealed, takes a higher peak), above ~0.1.

    >>> lrs = np.logspace(-6, 0, 100)
    >>> clean = 1 / (1 + lrs / 1e-3) + (lrs / 0.1) ** 2
    >>> noisy = clean + np.random.default_rng(0).normal(0, 0.2, 100)
    >>> bool(noise_ratio(lrs, clean) < 0.01 < 0.1 < noise_ratio(lrs, noisy))
    True
    """
    _, raw, smooth, head, start = _read(lrs, losses)
    i_min = int(np.argmin(smooth))
    if i_min + 1 < 2 * head:  # too early to tell scatter from the curve's shape: no reading (the back-off stays)
        return math.nan
    mad = _scatter((raw - smooth)[: i_min + 1])
    drop = start - float(smooth[i_min])
    return mad / drop if drop > 1e-12 * abs(start) else math.nan  # (a flat curve's drop is float rounding)


def _check_band(noise_band: tuple[float, float] | None) -> tuple[float, float] | None:
    if noise_band is None:
        return None
    pair = f"noise_band={noise_band!r:.120} must be a pair (low, high) of numbers, or None"
    if isinstance(noise_band, (str, bytes, dict)):  # (iterable, but not a pair: a dict's keys are no band)
        raise ValueError(pair)
    try:
        values = list(noise_band)
        if len(values) != 2 or any(isinstance(v, (bool, np.bool_)) for v in values):  # (True is no bound: 1.0)
            raise ValueError(pair)
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(pair) from None
    except OverflowError:  # an integer beyond any float (10**400)
        raise ValueError(f"noise_band={noise_band!r:.120} must be finite with 0 <= low < high (default "
                         f"{ROBUST_NOISE_BAND}), or None for no noise scaling") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < high):
        raise ValueError(f"noise_band={noise_band!r} must be finite with 0 <= low < high (default "
                         f"{ROBUST_NOISE_BAND}), or None for no noise scaling")
    return low, high


def robust_backoff(
    lrs: np.ndarray,
    losses: np.ndarray,
    *,
    backoff_decades: float = ROBUST_BACKOFF_DECADES,
    plateau_backoff_decades: float | None = ROBUST_PLATEAU_BACKOFF_DECADES,
    plateau_rise: float = ROBUST_PLATEAU_RISE,
    noise_band: tuple[float, float] | None = ROBUST_NOISE_BAND,
    stopped: bool = False,
    dip_rise: float | None = ROBUST_DIP_RISE,
    passes: float | None = None,
    max_passes: float | None = ROBUST_MAX_PASSES,
    dip_noise: float | None = ROBUST_DIP_NOISE,
    dip_passes: float | None = ROBUST_DIP_PASSES,
    flat: float | None = ROBUST_FLAT,
    flat_sigmas: float | None = ROBUST_FLAT_SIGMAS,
) -> float:
    """The back-off, in decades below ``lr_min``, that :func:`suggest_robust` takes (before it clips the LR into the
    descent): ``backoff_decades`` for an explosion or ``plateau_backoff_decades`` for a plateau
    (:func:`robust_regime`), scaled down on a noise-dominated curve by ``noise_band`` (:data:`ROBUST_NOISE_BAND`;
    ``None``: no scaling) unless the test made more than ``max_passes`` ``passes`` over the data; on a double dip
    (:func:`dip_cut`, ``dip_rise=None``: never) it is read on the curve cut at the first edge.

    >>> lrs = np.logspace(-4, 1, 100)
    >>> explode = 1.0 / (1.0 + lrs / 1e-2) + (lrs / 1.0) ** 2
    >>> robust_backoff(lrs, explode), robust_backoff(lrs, explode + np.random.default_rng(0).normal(0, 0.3, 100))
    (1.0, 0.0)
    """
    # Checked up front whatever the regime: a NaN back-off would suggest NaN, an inf or negative one be clipped away
    backoff_decades = check_positive("backoff_decades", backoff_decades, allow_zero=True)
    plateau_rise = check_positive("plateau_rise", plateau_rise, allow_zero=True)
    if plateau_backoff_decades is not None:  # (also when a flat curve's reading returns before it is used)
        plateau_backoff_decades = check_positive("plateau_backoff_decades", plateau_backoff_decades, allow_zero=True)
    lrs, losses, band, stopped, _ = _robust_view(lrs, losses, noise_band=noise_band, stopped=stopped,
                                                 dip_rise=dip_rise, passes=passes, max_passes=max_passes,
                                                 dip_noise=dip_noise, dip_passes=dip_passes)
    if _flat_at(lrs, losses, flat, flat_sigmas) is not None:  # a flat curve that blew up: the full back-off
        return float(backoff_decades)
    if plateau_backoff_decades is not None:
        if robust_regime(lrs, losses, plateau_rise=plateau_rise, stopped=stopped, dip_rise=None) == "plateau":
            backoff_decades = plateau_backoff_decades
    if band is not None:
        ratio = noise_ratio(lrs, losses)
        if ratio == ratio:  # a curve that did not drop says nothing about its noise: the back-off stays
            low, high = band
            backoff_decades *= min(1.0, max(0.0, (high - ratio) / (high - low)))
    return float(backoff_decades)


def suggest_robust(
    lrs: np.ndarray,
    losses: np.ndarray,
    *,
    backoff_decades: float = ROBUST_BACKOFF_DECADES,
    plateau_backoff_decades: float | None = ROBUST_PLATEAU_BACKOFF_DECADES,
    plateau_rise: float = ROBUST_PLATEAU_RISE,
    noise_band: tuple[float, float] | None = ROBUST_NOISE_BAND,
    stopped: bool = False,
    dip_rise: float | None = ROBUST_DIP_RISE,
    passes: float | None = None,
    max_passes: float | None = ROBUST_MAX_PASSES,
    dip_noise: float | None = ROBUST_DIP_NOISE,
    dip_passes: float | None = ROBUST_DIP_PASSES,
    flat: float | None = ROBUST_FLAT,
    flat_sigmas: float | None = ROBUST_FLAT_SIGMAS,
) -> float:
    """lrkit's default rule: a back-off below where the loss stopped improving, kept inside the descent.

    1. Smooth with a lag-free filter (:func:`smooth_curve`) and find ``lr_min``, the LR at the smoothed minimum —
       the edge past which this model/optimizer stops making progress.
    2. Read the curve's regime. It *explodes* when the smoothed loss ends at least ``plateau_rise`` times
       ``|first smoothed loss|`` above its minimum, a loss was non-finite, or the range test ``stopped`` early on
       divergence (:attr:`FinderResult.suggest <lrkit.finder.result.FinderResult.suggest>` passes it): ``lr_min`` is
       the stability edge. Otherwise it *plateaus*: the test never reached the edge, so ``lr_min`` is only a lower
       bound on it.
    3. Find the descent: the LRs where the smoothed loss is falling by at least 5% of its total drop per decade.
    4. Suggest ``lr_min / 10**backoff`` clipped into the descent, with ``backoff = backoff_decades`` (1) for an
       explosion and ``plateau_backoff_decades`` (0.5; ``None`` treats every curve as an explosion) for a plateau:
       a full training run spends hundreds of steps at its peak LR, so it needs a margin below the edge the short
       test found; but it must still be an LR at which the loss was seen to fall, and never one below the lowest LR
       tested (a curve lowest at its start suggests its first LR; the range test warns to lower ``start_lr``).
    5. On a noise-dominated curve the minimum is not the stability edge but where gradient noise stopped progress,
       and a full run (annealed at the end) takes a higher peak: the back-off is scaled down by the curve's
       :func:`noise_ratio`, in full below ``noise_band[0]`` (0.07), to none at ``noise_band[1]`` (0.10) and above
       (``noise_band=None``: no scaling) — unless the range test made more than ``max_passes`` (6) ``passes`` over
       the training set (``None``: unknown, the scaling applies): a tiny dataset cycled through many times scatters
       the loss without its minimum being a noise floor. :func:`robust_backoff` gives the back-off taken.
    6. A curve that dips twice (:func:`dip_cut`; ``dip_rise=None`` turns this off) is read cut at its first edge,
       as an explosion there; with ``dip_noise`` only when the first dip stands out of the curve's scatter, and with
       ``dip_passes`` only when the test made more than that many ``passes`` (defaults :data:`ROBUST_DIP_NOISE`,
       :data:`ROBUST_DIP_PASSES`: ``None``, no such guard).
    7. With ``flat`` (default :data:`ROBUST_FLAT`, 0.02; ``None``: off), a curve too flat to judge — its loss never got
       ``flat`` of ``|start|`` below its start — that then blows up is read from where it left its flat band
       (:func:`flat_edge`): ``backoff_decades`` below that LR, with no noise scaling (the curve's scatter is all it
       has); with ``flat_sigmas`` (default :data:`ROBUST_FLAT_SIGMAS`), a dip within that many standard deviations
       of the curve's scatter still counts as flat.

    >>> lrs = np.logspace(-4, 1, 100)
    >>> plateau = 1.0 / (1.0 + lrs / 1e-2)             # falls, then flattens out: no edge in sight
    >>> explode = plateau + (lrs / 1.0) ** 2            # the same, then blows up past lr ~ 0.15
    >>> lr_min = lambda curve: lrs[int(np.argmin(smooth_curve(curve)))]
    >>> round(float(lr_min(explode) / suggest_robust(lrs, explode)), 2)   # a decade below the edge
    10.0
    >>> round(float(lr_min(plateau) / suggest_robust(lrs, plateau)), 2)   # half a decade below a plateau
    3.16
    """
    lrs, losses, band, stopped, _ = _robust_view(lrs, losses, noise_band=noise_band, stopped=stopped,
                                                 dip_rise=dip_rise, passes=passes, max_passes=max_passes,
                                                 dip_noise=dip_noise, dip_passes=dip_passes)
    edge = _flat_at(lrs, losses, flat, flat_sigmas)
    if edge is not None:  # too flat to judge, then blew up: a back-off from where it left its flat band
        # (robust_backoff: the full back-off, every option checked as on any other curve)
        backoff_decades = robust_backoff(lrs, losses, backoff_decades=backoff_decades,
                                         plateau_backoff_decades=plateau_backoff_decades, plateau_rise=plateau_rise,
                                         noise_band=band, stopped=stopped, dip_rise=None, flat=flat,
                                         flat_sigmas=flat_sigmas)
        t_lrs, _ = _trim(lrs, losses)
        return float(max(t_lrs[edge - 1] / 10.0**backoff_decades, t_lrs[0]))
    backoff_decades = robust_backoff(lrs, losses, backoff_decades=backoff_decades,
                                     plateau_backoff_decades=plateau_backoff_decades, plateau_rise=plateau_rise,
                                     noise_band=band, stopped=stopped, dip_rise=None)
    lrs, losses = _trim(lrs, losses)
    s = smooth_curve(losses)
    i_min = int(np.argmin(s))
    lr_min = lrs[i_min]
    cand = lr_min / 10.0**backoff_decades
    drop = s[0] - s[i_min]
    if i_min < 2 or drop <= 0:  # the loss was lowest at the start: the lowest LR tested (the test warns to go lower)
        return float(max(cand, lrs[0]))
    g = _gradient(lrs[: i_min + 1], s[: i_min + 1])
    falling = np.nonzero(g < -0.05 * drop)[0]
    if len(falling):
        lo = lrs[falling[0]]
        cand = max(cand, lo)
    return float(max(min(cand, lr_min), lrs[0]))


def robust_regime(lrs: np.ndarray, losses: np.ndarray, *, plateau_rise: float = ROBUST_PLATEAU_RISE,
                  stopped: bool = False, dip_rise: float | None = ROBUST_DIP_RISE, passes: float | None = None,
                  dip_noise: float | None = ROBUST_DIP_NOISE, dip_passes: float | None = ROBUST_DIP_PASSES,
                  flat: float | None = ROBUST_FLAT, flat_sigmas: float | None = ROBUST_FLAT_SIGMAS) -> str:
    """How the robust rule reads a range-test curve: ``"explosion"`` or ``"plateau"`` (see :func:`suggest_robust`).

    ``"explosion"`` when the test ``stopped`` early on divergence, a loss was non-finite, or the smoothed loss ends at
    least ``plateau_rise`` times ``|first smoothed loss|`` above its minimum (the loss minimum is the stability edge),
    or the curve dips twice (:func:`dip_cut`; not with ``dip_rise=None``, and under ``dip_noise`` / ``dip_passes``
    as in :func:`suggest_robust`), or (with ``flat``) a flat curve left its flat band upwards (:func:`flat_edge`);
    ``"plateau"`` otherwise (the test never reached the edge).

    >>> lrs = np.logspace(-4, 1, 100)
    >>> robust_regime(lrs, 1 / (1 + lrs / 1e-2)), robust_regime(lrs, 1 / (1 + lrs / 1e-2) + lrs**2)
    ('plateau', 'explosion')
    """
    plateau_rise = check_positive("plateau_rise", plateau_rise, allow_zero=True)
    passes = _as_count("passes", passes)  # checked whatever the curve (as below, on an explosion read early too)
    if flat is not None:
        flat = check_positive("flat", flat, allow_zero=True)
    if flat_sigmas is not None:
        flat_sigmas = check_positive("flat_sigmas", flat_sigmas, allow_zero=True)
    lrs, losses = _as_curve(lrs, losses)  # (checked also when a stopped test reads as an explosion at once)
    if stopped or not np.all(np.isfinite(losses)):
        _dip_at(lrs, losses, dip_rise=None, dip_noise=dip_noise, passes=passes, dip_passes=dip_passes)  # (checks)
        return "explosion"
    if _dip_at(lrs, losses, dip_rise=dip_rise, dip_noise=dip_noise, passes=passes,
               dip_passes=dip_passes) is not None or _flat_at(lrs, losses, flat, flat_sigmas) is not None:
        return "explosion"
    _, finite = _trim(lrs, losses)
    s = smooth_curve(finite)
    return "plateau" if s[-1] - s.min() < plateau_rise * abs(s[0]) else "explosion"


def lr_range(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, float]:
    """``(low, high)`` bounds for cyclical and one-cycle policies (Smith 2017, section 3.3).

    ``low`` is where the loss starts to fall (the smoothed loss has covered 10% of its total drop); ``high`` is where
    it stops falling (the smoothed minimum, before the curve turns ragged). Smith's ``base_lr``/``max_lr``.
    """
    lrs, losses = _trim(lrs, losses)
    s = smooth_curve(losses)
    i_min = int(np.argmin(s))
    drop = s[0] - s[i_min]
    if i_min == 0 or drop <= 0:
        return float(lrs[0]), float(lrs[i_min])
    below = np.nonzero(s[: i_min + 1] <= s[0] - 0.1 * drop)[0]
    i_lo = int(below[0]) if len(below) else 0
    return float(lrs[i_lo]), float(lrs[i_min])


RULES: dict[str, Rule] = {
    "robust": suggest_robust,
    "steepest": suggest_steepest,
    "minimum": suggest_minimum,
    "valley": suggest_valley,
}
DEFAULT_RULE = "robust"


#: A peer's rule name that spelling alone would not lead back to lrkit's -> what to use instead.
_PEER_RULES = {
    "slide": "fastai's slide is not in lrkit: 'valley' is fastai's default reading, 'robust' lrkit's",
    "lr_min": "fastai's lr_min (the minimum over 10) is lrkit's 'minimum'",
    "lr_steep": "fastai's lr_steep is lrkit's 'steepest'",
}


def unknown_rule_error(rule: str, kind: str = "suggestion rule") -> ValueError:
    """The error for a rule name that is not one of :data:`RULES` (``kind``: what the caller calls it, e.g.
    ``--rule``): a did-you-mean, the valid names, and for a peer's rule (fastai's ``slide``) what to use instead.

    >>> print(str(unknown_rule_error("slide")).split(" (")[1])
    fastai's slide is not in lrkit: 'valley' is fastai's default reading, 'robust' lrkit's)
    """
    error = unknown_name_error(kind, rule, RULES)
    note = _PEER_RULES.get(rule)
    return ValueError(f"{error} ({note})") if note is not None else error


def suggest(lrs: np.ndarray, losses: np.ndarray, rule: str = DEFAULT_RULE) -> float:
    """Apply the rule called ``rule`` (one of :data:`RULES`) to a range-test curve."""
    if not isinstance(rule, str) or rule not in RULES:  # (a list or dict is unhashable)
        raise unknown_rule_error(str(rule))
    return RULES[rule](*_as_curve(lrs, losses))
