"""Session 37l hunt: the schedule picture and the terminal chart on odd-but-real input (a backend the user chose,
numpy records, phase names with ``$``, where an LR of 0 sits on a log axis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from lrkit.plots.schedule import plot_schedule
from lrkit.plots.text import schedule_text
from lrkit.schedules import from_spec
from lrkit.schedules.report import sampled_record


def _rec(lr: list[float], label: str = "s", **extra: Any) -> dict[str, Any]:
    return {"lr": lr, "momentum": [None] * len(lr), "label": label, **extra}


def _flat(text: str) -> str:
    return " ".join(text.split())


# --- the user's matplotlib backend is theirs ----------------------------------------------------------------------

def test_plot_schedule_keeps_the_backend_the_user_chose(tmp_path: Path) -> None:
    # was: plot_schedule called matplotlib.use("Agg"), which switches an imported pyplot to Agg: after one picture a
    # user's interactive backend (QtAgg, a notebook's inline one) was gone and plt.show() showed nothing; it also set
    # rcParams["backend_fallback"] = False for the rest of the session
    plt.switch_backend("svg")  # a backend of the user's own that runs without a display
    fallback = matplotlib.rcParams["backend_fallback"]
    matplotlib.rcParams["backend_fallback"] = True
    try:
        fig = plot_schedule(from_spec("cosine lr0=0.1", total_steps=20).record(), path=tmp_path / "lr.png")
        assert matplotlib.get_backend().lower() == "svg"
        assert matplotlib.rcParams["backend_fallback"] is True
        assert (tmp_path / "lr.png").read_bytes()[1:4] == b"PNG"  # the suffix still decides the format
        assert fig.axes[0].get_ylabel() == "learning rate"
    finally:
        matplotlib.rcParams["backend_fallback"] = fallback
        plt.switch_backend("agg")


_BACKEND_SCRIPT = """
import sys
from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import from_spec
plot_schedule(from_spec("cosine lr0=0.1", total_steps=20).record(), path=sys.argv[1])
import matplotlib
print(matplotlib.get_backend().lower(), matplotlib.rcParams["backend_fallback"])
"""


@pytest.mark.parametrize(("chosen", "expected"), [("svg", "svg"), ("tkagg", "agg"), (None, "agg")])
def test_plot_schedule_backend_before_pyplot(tmp_path: Path, chosen: str | None, expected: str) -> None:
    # a backend named before pyplot is imported (MPLBACKEND, a notebook's inline one) is kept (was: replaced by Agg,
    # and backend_fallback set to False); one that opens windows on a machine with no display, or none named: Agg
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY")}
    if chosen:
        env["MPLBACKEND"] = chosen
    out = subprocess.run([sys.executable, "-c", _BACKEND_SCRIPT, str(tmp_path / "lr.png")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [expected, "True"]
    assert (tmp_path / "lr.png").read_bytes()[1:4] == b"PNG"


# --- numpy records ------------------------------------------------------------------------------------------------

def test_plot_schedule_takes_numpy_steps_and_bias_lrs(tmp_path: Path) -> None:
    # was: "The truth value of an array with more than one element is ambiguous" from `if r.get("steps")` /
    # `if r.get("lr_bias")` (numpy 'lr' and 'momentum' were already drawn)
    lr = np.linspace(0.1, 0.01, 20)
    rec = _rec(list(lr), steps=np.arange(0, 200, 10), lr_bias=lr * 2)
    fig = plot_schedule(rec, path=tmp_path / "lr.png", log_y=True)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2  # the LR and the bias groups' dashed line
    assert list(lines[0].get_xdata())[-1] == 190


def test_schedule_text_takes_numpy_steps() -> None:
    # was: the same ambiguous-truth ValueError from `r.get("steps") or range(...)`
    chart = schedule_text(_rec(list(np.linspace(0.1, 0.01, 5)), steps=np.arange(0, 50, 10)), width=40, height=4,
                          ascii=True)
    assert chart.splitlines()[-3].split()[-1] == "40"  # the last step's tick: 40, not 4


# --- phase names are text -----------------------------------------------------------------------------------------

def test_phase_name_with_dollars_is_drawn_as_written(tmp_path: Path) -> None:
    # was: ValueError from matplotlib's mathtext parser ("Unknown symbol: \foo") when the picture was written
    rec = _rec([0.1] * 10, phases=[{"name": r"$\foo$ 50%", "start": 0, "end": 5}, {"name": "b", "start": 5,
                                                                                    "end": None}])
    fig = plot_schedule(rec, path=tmp_path / "lr.png")
    names = [t.get_text() for t in fig.axes[0].texts]
    assert r"\$\foo\$ 50%" in names
    assert (tmp_path / "lr.png").stat().st_size > 0


# --- where an LR of 0 is, on a log axis ---------------------------------------------------------------------------

def test_log_axis_note_for_a_single_zero_does_not_say_from() -> None:
    # was: "LR 0 from step 0: not drawn on the log axis" for a warmup from 0 over 10^7 steps (sampled): it read as an
    # LR of 0 from step 0 on, when only step 0 is 0; a full record said "LR 0 at 1 step, from step 0"
    s = from_spec("cosine lr0=0.1 warmup_steps=1000", total_steps=10_000_000)
    chart = _flat(schedule_text(sampled_record(s), width=60, log_y=True))
    assert "(LR 0 at step 0: not drawn on the log axis)" in chart
    short = _flat(schedule_text(from_spec("cosine lr0=0.1 warmup_steps=10", total_steps=100).record(), width=60,
                                log_y=True))
    assert "(LR 0 at step 0: not drawn on the log axis)" in short
    fig = plot_schedule(sampled_record(s), log_y=True)
    assert [t.get_text() for t in fig.axes[0].texts if "log axis" in t.get_text()] == [
        "LR 0 at step 0: not drawn on the log axis"]
    plt.close(fig)


def test_log_axis_note_names_zeros_at_both_ends() -> None:
    # was: "LR 0 at 3 steps, from step 0" for zeros at steps 0, 8 and 9: as if steps 0-2 were the ones
    lr = [0.0, 0.1, 0.08, 0.06, 0.04, 0.02, 0.01, 0.005, 0.0, 0.0]
    chart = _flat(schedule_text(_rec(lr), width=72, log_y=True))
    assert "(LR 0 at 3 steps: step 0, steps 8 to 9: not drawn on the log axis)" in chart
    fig = plot_schedule(_rec(lr), log_y=True)
    assert any(t.get_text() == "LR 0 at 3 steps: step 0, steps 8 to 9: not drawn on the log axis"
               for t in fig.axes[0].texts)
    plt.close(fig)


def test_log_axis_note_calls_a_negative_lr_what_it_is() -> None:
    # was: "LR 0 at 1 step, from step 1" for an LR of -0.05
    chart = _flat(schedule_text(_rec([0.1, -0.05, 0.1]), width=72, log_y=True))
    assert "(LR <= 0 at step 1: not drawn on the log axis)" in chart


def test_log_axis_note_keeps_a_run_of_zeros_counted() -> None:
    rec = from_spec("step lr0=0.1 gamma=1e-200 step_size=1 unit=step", total_steps=10).record()
    assert "LR 0 at 8 steps, from step 2: not drawn on the log axis" in _flat(schedule_text(rec, log_y=True))


# --- events on a log step axis ------------------------------------------------------------------------------------

def test_mark_events_on_a_log_axis_names_events_it_cannot_place() -> None:
    # was: an event at step 0 (a baseline validation) on a log step axis returned its artists and took a legend
    # entry, but no line could be drawn at log(0): the legend named an event the picture did not show, without a word
    from lrkit.plots.monitor import mark_events

    fig, ax = plt.subplots()
    ax.plot(range(1, 100), [1.0] * 99, label="loss")
    ax.set_xscale("log")
    events = [{"step": 0, "check": "val_rising", "action": "rollback"},
              {"step": 40, "check": "loss_spike", "action": "warn"}]
    with pytest.warns(UserWarning, match=r"1 of the 2 events are at step <= 0 \(the lowest at step 0\).*log x axis"):
        artists = mark_events(ax, events)
    assert len(artists) == 1 and list(artists[0].get_xdata()) == [40, 40]
    assert [t.get_text() for t in ax.legend().get_texts()] == ["loss", "loss_spike → warn"]
    plt.close(fig)


@pytest.mark.parametrize("step", [10**400, -(10**400)], ids=["1e400", "-1e400"])
def test_mark_events_skips_a_step_past_the_floats(step: int) -> None:
    # was: OverflowError "int too large to convert to float" (a float 1e308 was already skipped)
    from lrkit.plots.monitor import mark_events

    fig, ax = plt.subplots()
    assert mark_events(ax, [{"step": step, "check": "a", "action": "stop"}]) == []
    plt.close(fig)


# --- the range test's terminal chart reads a record as the picture does ---------------------------------------------

_LRS = [1e-5 * 10 ** (i / 4) for i in range(20)]
_LOSSES = [2.0 - 0.05 * i for i in range(20)]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "x", 0.0, -1e-3], ids=repr)
def test_finder_text_names_a_bad_lr(bad: Any) -> None:
    # was: a NaN/inf LR left out without a word (plot_finder refuses it, naming lrs[i]); 0 or below: "series[0]:
    # x_log=True needs every x > 0", naming a series the user never made; None: a bare TypeError from float()
    from lrkit.plots.text import finder_text

    with pytest.raises(ValueError, match=r"lrs\[3\]=.*finite number > 0"):
        finder_text({"lrs": [*_LRS[:3], bad, *_LRS[4:]], "losses": _LOSSES}, width=50)


def test_finder_text_names_a_loss_that_is_not_a_number() -> None:
    # was: float()'s bare "could not convert string to float: 'x'", naming no step
    from lrkit.plots.text import finder_text

    with pytest.raises(ValueError, match=r"losses\[0\]='x'"):
        finder_text({"lrs": _LRS, "losses": ["x", *_LOSSES[1:]]}, width=50)


def test_finder_text_marks_a_suggestion_written_as_text() -> None:
    # was: a hand-edited lr_find.json's "suggestion": "0.001" was marked by plot_finder but left out of the terminal
    # chart without a word
    from lrkit.plots.text import finder_text

    chart = finder_text({"lrs": _LRS, "losses": _LOSSES, "suggestion": "0.001", "rule": "robust"}, width=60)
    assert "suggestion 0.001 (robust)" in chart
