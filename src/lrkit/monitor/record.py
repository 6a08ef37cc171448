"""The rolling record that the health checks read: recent losses, gradient norms, update ratios and the LR.

:class:`lrkit.Monitor` pushes one loss and one global gradient norm per optimizer step (and an update-to-weight ratio
every few steps); the checks in :mod:`lrkit.monitor.checks` are pure functions of this record, so a test can build a
record from a synthetic stream and know the answer:

>>> rec = RollingRecord.from_stream(losses=[1.0, 0.9, 0.8, 0.7, 0.6])
>>> rec.step, rec.last_loss, rec.start_loss
(4, 0.6, 1.0)
>>> round(rec.reference("loss", 10).median, 3)  # the median of the values *before* the newest one
0.85
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import Any, NamedTuple

__all__ = ["SIGNALS", "RobustStats", "RollingRecord"]

#: The signals a record keeps: per-step training loss, global L2 gradient norm (before any clipping), and the
#: sampled update-to-weight ratio ``||w_{t+1} - w_t|| / ||w_t||``.
SIGNALS = ("loss", "grad_norm", "update_ratio", "val_loss", "val_train_loss")
#: The signals ``Monitor.after_validation`` writes (one value per evaluation, aligned).
VAL_SIGNALS = ("val_loss", "val_train_loss")

#: ``1.4826 * MAD`` estimates the standard deviation of normally distributed values.
MAD_TO_SIGMA = 1.4826


def _unknown_signal(signal: object) -> ValueError:
    """The error for a signal name the record does not keep (a custom check's typo), naming the valid ones."""
    from lrkit._utils import unknown_name_error

    return unknown_name_error("signal", signal, SIGNALS)  # type: ignore[arg-type]


class RobustStats(NamedTuple):
    """Median and median absolute deviation (MAD) of a window of values; ``n == 0`` when the window is empty.

    >>> s = RobustStats(median=1.0, mad=0.5, n=3)
    >>> round(s.sigma, 4)
    0.7413
    """

    median: float
    mad: float
    n: int

    @property
    def sigma(self) -> float:
        """A robust standard deviation, ``1.4826 * MAD``."""
        return MAD_TO_SIGMA * self.mad


_EMPTY = RobustStats(math.nan, math.nan, 0)


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


def robust_stats(values: Sequence[float]) -> RobustStats:
    """Median and MAD of ``values`` (finite floats).

    >>> robust_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    RobustStats(median=3.0, mad=1.0, n=5)
    """
    n = len(values)
    if not n:
        return _EMPTY
    s = sorted(values)
    mid = n // 2
    med = s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])
    if med - med == 0.0:
        # |v - med| without abs(): med - v below the median (descending), v - med from it on (ascending); the
        # two sorted runs merge in linear time
        d = [med - v for v in s[:mid]]
        d.reverse()
        d += [v - med for v in s[mid:]]
        d.sort()
    else:  # an overflowing sum of the two middle values: keep the plain formula
        d = sorted([abs(v - med) for v in s])
    mad = d[mid] if n % 2 else 0.5 * (d[mid - 1] + d[mid])
    return RobustStats(med, mad + 0.0, n)  # + 0.0: a zero MAD is +0.0, as abs() gives, never -0.0


class RollingRecord:
    """The last ``capacity`` finite values of each signal, the current step's raw values, and a few run-level facts.

    Args:
        capacity: how many finite values of each signal are kept (the checks' longest window decides it).
        refresh: the robust reference statistics (:meth:`reference`) are recomputed every ``refresh`` pushes and
            reused in between; this keeps the per-step cost to a few float comparisons.

    Attributes:
        step: index of the latest pushed step (``-1`` before the first push).
        last_loss, last_grad_norm: this step's raw values, ``nan``/``inf`` included (non-finite values are kept
            out of the windows so that one NaN cannot poison a median); ``grad_measured`` is ``False`` when this
            step pushed no gradient norm.
        start_loss: the first finite loss, i.e. the loss at initialisation, before any update.
        last_val_loss: the latest validation loss (:meth:`push_val_loss`; ``nan`` before the first); the finite
            ones are the ``"val_loss"`` window.
        val_best, val_best_at, val_best_train: the lowest finite validation loss of the whole run (``inf`` before
            the first), which finite evaluation it was (0-based, counted like ``seen["val_loss"]``), and the
            training loss pushed with it.
        lr, peak_lr: the latest sampled learning rate (largest over param groups) and the largest seen.
        seen: how many finite values of each signal were ever pushed (not capped by ``capacity``).
        trend, trend_low: the median of the last ``trend_window`` finite losses (updated every ``refresh`` steps)
            and the lowest value it ever had: where the loss is now, and the best it sustained.
        loss_mark: ``seen["loss"]`` when :meth:`mark` was last called (``Monitor`` calls it at every rollback and
            back-off); :meth:`losses_since_mark` counts the finite losses pushed since, i.e. those trained at the
            current LR from the restored state (``0`` before any mark: every loss counts).

    >>> rec = RollingRecord(capacity=4, trend_window=2)
    >>> for v in [3.0, 2.0, float("nan"), 1.0]:
    ...     rec.push(v, grad_norm=1.0)
    >>> rec.window("loss", 10), rec.seen["loss"], rec.last_loss
    ([3.0, 2.0, 1.0], 3, 1.0)
    """

    def __init__(self, capacity: int = 200, *, refresh: int = 10, trend_window: int = 20) -> None:
        if int(capacity) < 2:
            raise ValueError(f"capacity={capacity!r} must be an integer >= 2")
        if int(refresh) < 1:
            raise ValueError(f"refresh={refresh!r} must be an integer >= 1")
        if not 1 <= int(trend_window) <= int(capacity):
            raise ValueError(f"trend_window={trend_window!r} must be an integer in [1, capacity={capacity}]")
        self.trend_window = int(trend_window)
        self.capacity = int(capacity)
        self.refresh = int(refresh)
        self._values: dict[str, deque[float]] = {s: deque(maxlen=self.capacity) for s in SIGNALS}
        self._loss_q = self._values["loss"]
        self._grad_q = self._values["grad_norm"]
        self.seen: dict[str, int] = dict.fromkeys(SIGNALS, 0)
        self.step = -1
        self.last_loss = math.nan
        self.last_grad_norm = math.nan
        self.grad_measured = False
        self.start_loss = math.nan
        self.last_val_loss = math.nan
        self.val_best = math.inf
        self.val_best_at = -1
        self.val_best_train = math.nan
        self.lr = math.nan
        self.peak_lr = 0.0
        self.trend = math.nan
        self.trend_low = math.nan
        self.loss_mark = 0
        # (signal, window) -> (step computed at, stats); `_fresh[s]` is True when this step's value was appended
        self._cache: dict[tuple[str, int], tuple[int, RobustStats, int]] = {}
        self._fresh: dict[str, bool] = dict.fromkeys(SIGNALS, False)

    # ------------------------------------------------------------------------------------------------ writing
    def push(self, loss: float, grad_norm: float | None = None) -> None:
        """Record one optimizer step's loss and global gradient norm (``None`` when not measured)."""
        self.step += 1
        self.last_loss = loss
        fresh = self._fresh
        if loss - loss == 0.0:  # finite (nan - nan and inf - inf are nan)
            self._add_loss(loss)
            fresh["loss"] = True
        else:
            fresh["loss"] = False
        if grad_norm is None:
            self.grad_measured = False
            self.last_grad_norm = math.nan
            fresh["grad_norm"] = False
        else:
            self.grad_measured = True
            self.last_grad_norm = grad_norm
            if grad_norm - grad_norm == 0.0:
                self._grad_q.append(grad_norm)
                self.seen["grad_norm"] += 1
                fresh["grad_norm"] = True
            else:
                fresh["grad_norm"] = False
        fresh["update_ratio"] = False

    def push_losses(self, losses: Sequence[float]) -> None:
        """:meth:`push` each loss of ``losses`` in order, without gradient norms (the monitor's fast path).

        Equivalent to pushing them one by one, except that ``trend`` is updated once, at the end of the batch.
        """
        if not losses:
            return
        total = sum(losses)
        # all finite (the usual case) when their sum is; otherwise keep the finite ones (nan - nan, inf - inf are nan)
        finite = losses if total - total == 0.0 else [v for v in losses if v - v == 0.0]
        if finite:
            seen = self.seen
            before = seen["loss"]
            if before == 0:
                self.start_loss = finite[0]
            self._loss_q.extend(finite)
            n = seen["loss"] = before + len(finite)
            if n // self.refresh != before // self.refresh and n >= self.trend_window:
                self._update_trend()
        self.step += len(losses)
        last = losses[-1]
        self.last_loss = last
        self.grad_measured = False
        self.last_grad_norm = math.nan
        fresh = self._fresh
        fresh["loss"] = last - last == 0.0
        fresh["grad_norm"] = False
        fresh["update_ratio"] = False

    def _update_trend(self) -> None:
        self.trend = t = _median(self.window("loss", self.trend_window))
        if not t >= self.trend_low:  # also true while trend_low is nan
            self.trend_low = t

    def _add_loss(self, loss: float) -> None:
        self._loss_q.append(loss)
        seen = self.seen
        n = seen["loss"] = seen["loss"] + 1
        if n == 1:
            self.start_loss = loss
        if n % self.refresh == 0 and n >= self.trend_window:
            self._update_trend()

    def push_val_loss(self, value: float, train_loss: float = math.nan) -> None:
        """Record one validation loss (``Monitor.after_validation``) and the training loss at that time (``nan``:
        unknown); a non-finite validation loss is kept only as ``last_val_loss``, out of the windows, so that the
        ``"val_loss"`` and ``"val_train_loss"`` windows stay aligned."""
        self.last_val_loss = float(value)
        if math.isfinite(self.last_val_loss):
            if self.last_val_loss < self.val_best:  # the best over the whole run, not only the window
                self.val_best, self.val_best_at, self.val_best_train = self.last_val_loss, self.seen["val_loss"], \
                    float(train_loss)
            self._values["val_loss"].append(self.last_val_loss)
            self._values["val_train_loss"].append(float(train_loss))
            self.seen["val_loss"] += 1
            self.seen["val_train_loss"] += 1

    def push_update_ratio(self, ratio: float, lr: float | None = None) -> None:
        """Record a sampled update-to-weight ratio (and the LR it was taken at)."""
        if math.isfinite(ratio):
            self._values["update_ratio"].append(float(ratio))
            self.seen["update_ratio"] += 1
            self._fresh["update_ratio"] = True
        if lr is not None:
            self.set_lr(lr)

    def set_lr(self, lr: float) -> None:
        """Record the current learning rate (the largest over param groups)."""
        self.lr = float(lr)
        if self.lr > self.peak_lr:
            self.peak_lr = self.lr

    def mark(self) -> None:
        """Note that the losses pushed so far predate a rollback / back-off (see :meth:`losses_since_mark`).

        >>> rec = RollingRecord.from_stream([3.0, 2.0])
        >>> rec.mark(); rec.push(1.0); rec.losses_since_mark()
        1
        """
        self.loss_mark = self.seen["loss"]

    # ------------------------------------------------------------------------------------------------ reading
    def losses_since_mark(self) -> int:
        """How many finite losses were pushed since the latest :meth:`mark` (all of them before any)."""
        return self.seen["loss"] - self.loss_mark

    def window(self, signal: str, n: int, *, skip_last: int = 0) -> list[float]:
        """The last ``n`` finite values of ``signal`` (oldest first), leaving out the newest ``skip_last``."""
        try:
            values = self._values[signal]
        except KeyError:
            raise _unknown_signal(signal) from None
        end = len(values) - skip_last
        start = max(0, end - n)
        return list(islice(values, start, max(start, end)))

    def count(self, signal: str) -> int:
        """How many finite values of ``signal`` the record holds now (at most ``capacity``)."""
        try:
            return len(self._values[signal])
        except KeyError:
            raise _unknown_signal(signal) from None

    def reference(self, signal: str, window: int) -> RobustStats:
        """Median and MAD of the last ``window`` finite values *before* this step's value.

        Once the window is full it is recomputed every ``refresh`` steps and reused in between (so it may lag by up to
        ``refresh - 1`` steps); while the window fills it follows every new value. It never includes the value being
        judged.
        """
        key = (signal, window)
        hit = self._cache.get(key)
        try:
            count = self.seen[signal]
        except KeyError:
            raise _unknown_signal(signal) from None
        if hit is not None and (
            count == hit[2]  # nothing new since
            or (self.step - hit[0] < self.refresh and hit[1].n >= window)  # full window: reuse for `refresh` steps
        ):
            return hit[1]
        values = self._values[signal]  # self.window(signal, window, skip_last=...), inlined
        end = len(values) - (1 if self._fresh[signal] else 0)
        start = max(0, end - window)
        stats = robust_stats(list(islice(values, start, max(start, end))))
        self._cache[key] = (self.step, stats, count)
        return stats

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The record as plain Python values (lists, floats, ints): JSON- and ``weights_only``-safe."""
        return {
            "capacity": self.capacity,
            "refresh": self.refresh,
            "values": {s: list(v) for s, v in self._values.items()},
            "seen": dict(self.seen),
            "step": self.step,
            "last_loss": self.last_loss,
            "last_grad_norm": self.last_grad_norm,
            "grad_measured": self.grad_measured,
            "start_loss": self.start_loss,
            "last_val_loss": self.last_val_loss,
            "val_best": [self.val_best, self.val_best_at, self.val_best_train],
            "lr": self.lr,
            "peak_lr": self.peak_lr,
            "trend": self.trend,
            "trend_low": self.trend_low,
            "loss_mark": self.loss_mark,
            # the reused reference statistics and which signals got a value this step: a resumed record judges the
            # next steps exactly as the uninterrupted one
            "fresh": dict(self._fresh),
            "cache": [[sig, win, step, st.median, st.mad, st.n, count]
                      for (sig, win), (step, st, count) in self._cache.items()],
        }

    def load_state_dict(self, state: dict[str, Any], *, keep_step: bool = False, keep_val: bool = False) -> None:
        """Load :meth:`state_dict` output; ``keep_step=True`` keeps this record's step counter and recomputes the
        reference statistics afresh (used by rollback); otherwise (a resume) they are restored as they were.
        ``keep_val=True`` keeps this record's validation signals (``"val_loss"``, ``"val_train_loss"``,
        ``last_val_loss``): a training rollback returns the weights to an older step, but the evaluations made
        since still happened, and the best of them is still held (``Monitor.after_validation``)."""
        missing = {"values", "seen", "step", "start_loss"} - set(state)
        if missing:
            raise ValueError(f"not a RollingRecord state: missing keys {sorted(missing)}")
        unknown = set(state["values"]) - set(SIGNALS)
        if unknown:
            raise ValueError(f"RollingRecord state has unknown signals {sorted(unknown)}; valid: {list(SIGNALS)}")
        last_val_loss = self.last_val_loss
        val_best = (self.val_best, self.val_best_at, self.val_best_train)
        for s in SIGNALS:
            if keep_val and s in VAL_SIGNALS:
                continue
            q = self._values[s]
            q.clear()
            q.extend(float(v) for v in state["values"].get(s, []))
            self.seen[s] = int(state["seen"].get(s, 0))
            self._fresh[s] = False
        if not keep_step:
            self.step = int(state["step"])
        self.last_loss = float(state.get("last_loss", math.nan))
        self.last_grad_norm = float(state.get("last_grad_norm", math.nan))
        self.grad_measured = bool(state.get("grad_measured", False))
        self.start_loss = float(state["start_loss"])
        self.last_val_loss = last_val_loss if keep_val else float(state.get("last_val_loss", math.nan))
        if keep_val:
            self.val_best, self.val_best_at, self.val_best_train = val_best
        elif "val_best" in state:
            best, at, train = state["val_best"]
            self.val_best, self.val_best_at, self.val_best_train = float(best), int(at), float(train)
        else:  # a state from before the run-long best: the best of its window
            vals, trains = self.window("val_loss", self.capacity), self.window("val_train_loss", self.capacity)
            i = vals.index(min(vals)) if vals else -1
            self.val_best = vals[i] if vals else math.inf
            self.val_best_at = self.seen["val_loss"] - len(vals) + i if vals else -1
            self.val_best_train = trains[i] if vals and i < len(trains) else math.nan
        self.lr = float(state.get("lr", math.nan))
        self.peak_lr = float(state.get("peak_lr", 0.0))
        self.trend = float(state.get("trend", math.nan))
        self.trend_low = float(state.get("trend_low", math.nan))
        self.loss_mark = min(int(state.get("loss_mark", 0)), self.seen["loss"])
        self._cache.clear()
        if not keep_step:
            for sig, fresh in dict(state.get("fresh", {})).items():
                if sig in self._fresh:
                    self._fresh[sig] = bool(fresh)
            for sig, win, step, median, mad, n, count in state.get("cache", []):
                self._cache[(str(sig), int(win))] = (int(step), RobustStats(float(median), float(mad), int(n)),
                                                     int(count))

    @classmethod
    def from_stream(
        cls,
        losses: Sequence[float],
        grad_norms: Sequence[float] | None = None,
        *,
        update_ratios: Sequence[float] = (),
        val_losses: Sequence[float] = (),
        val_train_losses: Sequence[float] | None = None,
        lr: float | None = None,
        capacity: int = 200,
        refresh: int = 1,
        trend_window: int = 20,
    ) -> RollingRecord:
        """A record after pushing a whole synthetic stream (for tests, docs and offline analysis).

        >>> rec = RollingRecord.from_stream([2.0, 1.0], grad_norms=[0.5, 0.4], update_ratios=[1e-3], lr=0.1)
        >>> rec.last_grad_norm, rec.window("update_ratio", 5), rec.peak_lr
        (0.4, [0.001], 0.1)
        """
        if grad_norms is not None and len(grad_norms) != len(losses):
            raise ValueError(f"grad_norms has {len(grad_norms)} values but losses has {len(losses)}")
        rec = cls(capacity=capacity, refresh=refresh, trend_window=min(trend_window, capacity))
        for i, loss in enumerate(losses):
            rec.push(float(loss), float(grad_norms[i]) if grad_norms is not None else None)
        for r in update_ratios:
            rec.push_update_ratio(float(r))
        if val_train_losses is not None and len(val_train_losses) != len(val_losses):
            raise ValueError(
                f"val_train_losses has {len(val_train_losses)} values but val_losses has {len(val_losses)}"
            )
        for i, v in enumerate(val_losses):
            rec.push_val_loss(float(v), math.nan if val_train_losses is None else float(val_train_losses[i]))
        if lr is not None:
            rec.set_lr(lr)
        return rec
