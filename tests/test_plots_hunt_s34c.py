"""Session 34c hunt: pictures of values near the float's ends, zeros on a log axis, and bad results.csv cells."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

import matplotlib

matplotlib.use("Agg")

from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.plots.finder import plot_finder
from lrkit.plots.results import plot_results
from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import from_spec


def _rec(lr: list[float], label: str = "s") -> dict[str, Any]:
    return {"lr": lr, "momentum": [None] * len(lr), "label": label}


# --- lead 1: an LR near the largest float -------------------------------------------------------------------------

@pytest.mark.parametrize("log_y", [False, True])
def test_schedule_lr_near_float_max_is_named(log_y: bool) -> None:
    # was: ValueError "arange: cannot compute length" deep in matplotlib's ticker (or, on the log axis, an
    # OverflowError, or an axis of 1..10 with no curve on it)
    with pytest.raises(ValueError, match=r"1e\+308 at step 0 of 'const'.*1e\+300"):
        plot_schedule(_rec([1e308] * 5, "const"), log_y=log_y)


def test_schedule_lr_inf_is_named() -> None:
    with pytest.raises(ValueError, match=r"inf at step 2"):
        plot_schedule(_rec([0.1, 0.2, math.inf, 0.1]))


def test_schedule_large_but_drawable_lr_still_draws() -> None:
    fig = plot_schedule(_rec([1e300 * (1 - i / 20) for i in range(10)]), log_y=True)
    lo, hi = fig.axes[0].get_ylim()
    assert lo <= 0.55e300 and 1e300 <= hi < math.inf


def test_cli_schedule_lr_near_float_max_fails_cleanly(tmp_path: Path) -> None:
    r = CliRunner().invoke(build_app(), ["schedule", "constant lr0=1e308", "--total-steps", "100",
                                         "--out", str(tmp_path / "lr.png")])
    assert r.exit_code != 0
    assert not isinstance(r.exception, ValueError) or isinstance(r.exception, SystemExit)
    assert "Traceback" not in r.output and "arange" not in r.output
    assert "1e+308" in r.output and "too large to draw" in r.output
    assert not (tmp_path / "lr.png").exists()


# --- lead 2: LRs of exactly 0 on a log axis ----------------------------------------------------------------------

def test_schedule_log_axis_leaves_zeros_out_with_a_note() -> None:
    sched = from_spec("step lr0=0.1 gamma=1e-200 step_size=1 unit=step", total_steps=10)
    fig = plot_schedule(sched, log_y=True)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    # was about 1e-212 .. 1e9 (matplotlib's 5% margin of 200 decades): ten decades above the largest LR
    assert 1e-205 < lo <= 1e-201 and 0.1 <= hi < 1.0
    notes = [t.get_text() for t in ax.texts if "not drawn" in t.get_text()]
    assert notes and "8 steps" in notes[0] and "step 2" in notes[0]


def test_schedule_log_axis_all_zero_is_refused() -> None:
    # was: an empty axis from 1 to 10 (matplotlib's default for no positive data), no curve, no word about it
    with pytest.raises(ValueError, match=r"log_y.*no LR above 0"):
        plot_schedule(_rec([0.0] * 4), log_y=True)


def test_schedule_log_axis_without_zeros_has_no_note() -> None:
    fig = plot_schedule(from_spec("cosine lr0=0.1 lrf=0.01", total_steps=50), log_y=True)
    assert not [t for t in fig.axes[0].texts if "not drawn" in t.get_text()]


# --- results.csv --------------------------------------------------------------------------------------------------

def _captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import lrkit.plots.finder as finder_mod

    figs: list[Any] = []
    real = finder_mod.write_figure

    def keep(fig: Any, path: Any, **kw: Any) -> Any:
        figs.append(fig)
        return real(fig, path, **kw)

    monkeypatch.setattr(finder_mod, "write_figure", keep)
    return figs


@pytest.mark.parametrize("cell", ["a", "inf", "nan", ""])
def test_results_epoch_cell_not_a_number_is_named(tmp_path: Path, cell: str) -> None:
    # was: a picture with an empty loss panel (the epochs NaN) or a point silently left out (epoch inf)
    csv = tmp_path / "results.csv"
    csv.write_text(f"epoch,train_loss\n1,1.0\n{cell},0.5\n")
    with pytest.raises(ValueError, match=rf"epoch {cell!r} in row 2.*not a finite number"):
        plot_results(csv, tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()


def test_results_loss_near_float_max_is_marked_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # was: ValueError "arange: cannot compute length" from matplotlib's ticker
    figs = _captured(monkeypatch)
    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss,lr/g\n1,1e308,0.1\n2,1e308,0.1\n")
    plot_results(csv, tmp_path / "r.png")
    ax_loss = figs[0].axes[0]
    assert "loss NaN/inf" in ax_loss.get_legend_handles_labels()[1]


def test_results_lr_near_float_max_is_not_an_empty_panel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # was: a log LR axis from 1 to 10 with no line on it
    figs = _captured(monkeypatch)
    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss,lr/g\n1,1.0,1e308\n2,0.5,1e308\n")
    plot_results(csv, tmp_path / "r.png")
    ax_lr = figs[0].axes[2]
    assert any("no finite values" in t.get_text() for t in ax_lr.texts)


# --- the range-test curve -----------------------------------------------------------------------------------------

def test_finder_loss_near_float_max_is_marked_not_a_crash() -> None:
    lrs = [1e-4 * 10 ** (i / 10) for i in range(20)]
    fig = plot_finder({"lrs": lrs, "losses": [1e308] * 20})
    ax = fig.axes[0]
    assert "loss NaN/inf" in ax.get_legend_handles_labels()[1]
    fig.canvas.draw()


# --- labels are text, not mathtext --------------------------------------------------------------------------------

def test_schedule_label_with_dollars_is_drawn_as_written(tmp_path: Path) -> None:
    # was: ValueError from matplotlib's mathtext parser ("Unknown symbol: \foo") when the picture was written
    plot_schedule(_rec([0.1, 0.2], r"cost $\foo$ 50%"), path=tmp_path / "lr.png")
    fig = plot_schedule(_rec([0.1, 0.2], "a $x$ b"))
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == [r"a \$x\$ b"]


def test_results_group_name_with_dollars_is_drawn(tmp_path: Path) -> None:
    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss,lr/$\\foo$,val_$\\bar$\n1,1.0,0.1,0.5\n2,0.5,0.1,0.6\n")
    plot_results(csv, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, None, "x", 1e308])
def test_finder_record_lr_not_drawable_is_named(bad: Any) -> None:
    # was: a NaN/inf LR silently left out and the curve drawn on a linear LR axis; None: a TypeError from a comparison
    with pytest.raises(ValueError, match=r"lrs\[1\]=.*finite number"):
        plot_finder({"lrs": [1e-3, bad, 1e-1], "losses": [1.0, 0.9, 0.8]})


@pytest.mark.parametrize("ascii_", [False, True])
def test_schedule_text_log_axis_names_its_zeros(ascii_: bool) -> None:
    # was: the curve stopped at step 1 and steps 2-9 were blank, with no word why (the finder's chart names its gaps)
    from lrkit.plots.text import schedule_text

    rec = from_spec("step lr0=0.1 gamma=1e-200 step_size=1 unit=step", total_steps=10).record()
    chart = schedule_text(rec, log_y=True, width=40, ascii=ascii_)
    assert "LR 0 at 8 steps, from step 2: not drawn on the log axis" in " ".join(chart.split())
    assert all(len(line) <= 40 for line in chart.splitlines())
    assert "not drawn" not in schedule_text(rec, width=40)  # the linear axis draws the zeros


def test_results_event_past_drawable_epoch_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # was: a flood of numpy overflow warnings and an epoch axis stretched to 1e308, the run squashed at its left end
    import warnings

    figs = _captured(monkeypatch)
    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss\n1,1.0\n2,0.5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        plot_results(csv, tmp_path / "r.png", events=[{"epoch": 1e308, "check": "loss_spike", "action": "stop"}])
    assert figs[0].axes[0].get_xlim()[1] < 10


def test_results_event_names_with_dollars_are_drawn(tmp_path: Path) -> None:
    # was: ValueError from matplotlib's mathtext parser ("Unknown symbol: \foo") when results.png was written
    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss\n1,1.0\n2,0.5\n")
    plot_results(csv, tmp_path / "r.png", events=[{"epoch": 1.5, "check": r"$\foo$", "action": "warn"}])
    assert (tmp_path / "r.png").stat().st_size > 0


@pytest.mark.parametrize("text", ["epoch;train_loss\n1;1.0\n2;0.5\n", " epoch , train_loss \n1,1.0\n2,0.5\n"])
def test_results_csv_with_no_known_column_is_named(tmp_path: Path, text: str) -> None:
    # was: a picture of four empty panels, each saying its values were "not recorded" (they were, under a header
    # split by ';' or padded with spaces)
    csv = tmp_path / "results.csv"
    csv.write_text(text)
    with pytest.raises(ValueError, match=r"none of the columns.*train_loss.*header"):
        plot_results(csv, tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()
