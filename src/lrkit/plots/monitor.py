"""Health-monitor events drawn on any matplotlib axis, from the event records only.

``mark_events(ax, events)`` draws one vertical line per event, coloured by the check that fired and styled by the
action taken, with one legend entry per (check, action); rollbacks and stops also get a marker on the top edge.
Events may be :class:`lrkit.monitor.MonitorEvent` objects or their ``to_dict()`` form (what ``events.json``
holds), so a saved run can be redrawn later.

>>> import matplotlib; matplotlib.use("Agg")
>>> import matplotlib.pyplot as plt
>>> fig, ax = plt.subplots()
>>> _ = ax.plot(range(100), [1 / (1 + i) for i in range(100)])
>>> events = [{"step": 40, "check": "loss_spike", "action": "rollback", "values": {}, "reason": "loss spiked"}]
>>> len(mark_events(ax, events))
2
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lrkit._step import stacklevel_outside_lrkit
from lrkit.plots.schedule import MAX_DRAWN

__all__ = ["ACTION_STYLES", "CHECK_COLORS", "mark_events"]

#: Line colour per check name (unknown checks cycle through the remaining matplotlib colours).
CHECK_COLORS: dict[str, str] = {
    "non_finite": "tab:red",
    "loss_spike": "tab:orange",
    "gradient_blowup": "tab:purple",
    "loss_rising": "tab:brown",
    "oscillation": "tab:pink",
    "exploding_gradients": "tab:olive",
    "lr_too_low": "tab:cyan",
    "val_rising": "tab:green",
    "loss_above_start": "tab:gray",
    "monitor": "black",
}
#: Line style per action: the more severe, the more solid.
ACTION_STYLES: dict[str, str] = {"warn": ":", "clip": "--", "skip": "-.", "rollback": "-", "stop": "-"}
# none of them a curve's colour: not matplotlib's first (tab:blue, "C0", of the curve the events are usually drawn
# on), nor one of lrkit.plots.results.CURVE_COLORS (navy is its val-loss curve), nor a CHECK_COLORS colour
_SPARE_COLORS = ("gold", "magenta", "teal", "lime", "salmon", "darkkhaki")


def _as_dict(event: Any) -> Mapping[str, Any]:
    if isinstance(event, Mapping):
        return event
    to_dict = getattr(event, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise ValueError(f"an event must be a MonitorEvent or a dict (its to_dict()), got {type(event).__name__}")


def _is_log_x(ax: Any) -> bool:
    """``ax``'s x axis is logarithmic (``"log"``; ``"symlog"`` and ``"logit"`` place 0 or are refused by matplotlib
    itself); ``False`` for an axis-like object without ``get_xscale``."""
    get_xscale = getattr(ax, "get_xscale", None)
    return callable(get_xscale) and get_xscale() == "log"


def _axis_colors(ax: Any) -> dict[str, str]:
    """The check -> colour map of ``ax``: :data:`CHECK_COLORS` and the colours earlier calls gave checks of the
    user's own, kept on the axis (a fresh map when it takes no attribute)."""
    colors = getattr(ax, "_lrkit_event_colors", None)
    if not isinstance(colors, dict):
        colors = dict(CHECK_COLORS)
        try:
            ax._lrkit_event_colors = colors
        except (AttributeError, TypeError):  # pragma: no cover - an axis-like object with __slots__
            pass
    return colors


def mark_events(
    ax: Any,
    events: Iterable[Any],
    *,
    x: str | Callable[[Mapping[str, Any]], float | None] = "step",
    legend: bool = True,
    alpha: float = 0.7,
) -> list[Any]:
    """Draw monitor ``events`` on ``ax`` as vertical lines coloured by check; return the artists drawn.

    Args:
        ax: a matplotlib ``Axes`` whose x axis is in the unit chosen by ``x``.
        events: ``MonitorEvent`` objects or dicts with at least ``check``, ``action`` and the ``x`` key; or the
            whole record a run's ``events.json`` holds (its ``"events"`` list is drawn).
        x: the event key giving the x position (``"step"``; ``"epoch"`` for ``lrkit.train``'s events, which carry
            a fractional epoch), or a function of the event dict returning it (``None`` skips the event).
        legend: label one line per (check, action) so that ``ax.legend()`` lists them.
        alpha: line opacity.

    Events without a finite x position (or one past :data:`~lrkit.plots.schedule.MAX_DRAWN`) are skipped; events at
    x <= 0 on a log x axis are skipped with a ``UserWarning`` (no line can sit there); events
    without the ``x`` key at all (a hand loop's ``MonitorEvent`` has a ``step``, no ``epoch``) are skipped with a
    ``UserWarning`` that says so. Colours: :data:`CHECK_COLORS`; styles: :data:`ACTION_STYLES` (rollbacks and stops
    also get a triangle on the axis' top edge).

    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(); _ = ax.plot(range(100), [1.0] * 100, label="loss")
    >>> events = [{"step": 40, "check": "loss_spike", "action": "rollback"},
    ...           {"step": 70, "check": "loss_spike", "action": "rollback"}]
    >>> _ = mark_events(ax, events)
    >>> [t.get_text() for t in ax.legend().get_texts()]
    ['loss', 'loss_spike → rollback']
    >>> plt.close(fig)
    """
    if isinstance(events, Mapping) and isinstance(events.get("events"), (list, tuple)):
        events = events["events"]  # the whole events.json record ({"lr0": ..., "optimizer": ..., "events": [...]})
    if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Iterable) or hasattr(events, "to_dict"):
        raise ValueError(
            f"events must be a list of MonitorEvent objects or their to_dict() dicts (monitor.events, events.json), "
            f"got {type(events).__name__}"
        )
    if not (isinstance(x, str) or callable(x)):
        raise ValueError(f"x={x!r} must be an event key (e.g. 'step' or 'epoch') or a function of the event dict")
    artists: list[Any] = []
    keyless, total, has = 0, 0, ""  # events with no ``x`` key at all: a silent empty plot would hide them
    # one legend entry per (check, action) on the axis, also over several calls (training and validation events
    # drawn apart, a record redrawn on the same axis)
    labelled = set(ax.get_legend_handles_labels()[1]) if legend else set()
    # a check keeps its colour over several calls on one axis, and two checks never share one: the colours given
    # to checks of your own are kept on the axis (each call started from the first spare colour again, so a check
    # first drawn by the second call took the colour of the first call's own check, and the legend could not
    # tell them apart)
    colors = _axis_colors(ax)
    log_x = _is_log_x(ax)
    unplaced: list[float] = []  # events at x <= 0 on a log x axis
    for raw in events:
        ev = _as_dict(raw)
        total += 1
        if not callable(x) and x not in ev:
            keyless += 1
            has = has or ", ".join(repr(k) for k in ev if k in ("step", "epoch"))
        pos = x(ev) if callable(x) else ev.get(x)
        if isinstance(pos, bool):
            continue  # not a position (float(True) would draw it at 1)
        try:
            pos = float(pos)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):  # (an int past the floats: 10**400)
            continue
        if not abs(pos) <= MAX_DRAWN:  # NaN, inf, or past what matplotlib draws (1e308 stretched the axis to it)
            continue
        if pos <= 0 and log_x:  # no place on a log axis: its line was invisible, yet listed in the legend
            unplaced.append(pos)
            continue
        check = str(ev.get("check", ev.get("kind", "event")))
        action = str(ev.get("action", "warn"))
        if check not in colors:
            taken = set(colors.values())
            own = len(colors) - len(CHECK_COLORS)  # past six checks of your own, the spare colours repeat
            colors[check] = next((c for c in _SPARE_COLORS if c not in taken), _SPARE_COLORS[own % len(_SPARE_COLORS)])
        label = f"{check} → {action}".replace("$", r"\$")  # text, not mathtext (r"$\foo$" failed in savefig)
        if not legend or label in labelled:
            label = "_nolegend_"
        labelled.add(label)
        artists.append(ax.axvline(pos, color=colors[check], ls=ACTION_STYLES.get(action, ":"), lw=1.2, alpha=alpha,
                                  label=label, zorder=1))  # fmt: skip
        if action in ("rollback", "stop"):
            (marker,) = ax.plot([pos], [1.0], marker="v" if action == "rollback" else "X", color=colors[check],
                                markersize=7, transform=ax.get_xaxis_transform(), clip_on=False, ls="none",
                                label="_nolegend_")  # fmt: skip
            artists.append(marker)
    if unplaced:
        import warnings

        key = x if isinstance(x, str) else "x"
        warnings.warn(
            f"mark_events: {len(unplaced)} of the {total} events are at {key} <= 0 (the lowest at {key} "
            f"{min(unplaced):g}), which the log x axis cannot show, so they were not drawn; draw them on a linear "
            "axis (ax.set_xscale('symlog') keeps 0)",
            UserWarning,
            stacklevel=stacklevel_outside_lrkit(),
        )
    if keyless:
        import warnings

        warnings.warn(
            f"mark_events: {keyless} of the {total} events have no {x!r} key, so they were not drawn"
            + (f" (they carry {has})" if has else "")
            + ". A Monitor's own events carry the step only: draw them with x='step' on a step axis; on an epoch "
            "axis (lrkit.plots.results.plot_results) pass events with an 'epoch', as lrkit.train's events.json holds "
            "them, or x=<a function of the event dict>",
            UserWarning,
            stacklevel=stacklevel_outside_lrkit(),  # the user's call: plot_results' own frames passed over
        )
    return artists
