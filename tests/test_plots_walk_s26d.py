"""Session 26d (plots): a user's walk through every picture lrkit draws, in the awkward cases.

1. A text chart's mark label that fits on neither side of its mark (a 40-column terminal, the suggestion in the
   left half) was pushed to the line's start, so its ``▲`` sat several columns right of the mark it names: the
   arrow pointed at a larger LR than the one suggested.
2. The schedule picture of a 1-step run drew nothing (a line of one point has no length and had no marker), and a
   short run's step axis had ticks at 0.25 steps.
3. ``results.png`` of a run with many LR levels (layer decay over 13 layers) laid the LR legend over the curves.
4. ``lrkit schedule`` titled a 1-step table "1 steps", and without matplotlib printed its table and chart before
   failing for the picture it could never draw.
5. ``result.plot("lr.pgf")`` without a TeX installation failed with matplotlib's own RuntimeError from inside
   ``savefig``, after drawing; it now is a ValueError naming the file and the formats that need nothing more.

Figures are checked through matplotlib's API (lines, legends, ticks, extents), never pixels.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from lrkit.finder import FinderResult
from lrkit.plots.schedule import plot_schedule
from lrkit.plots.text import text_chart
from lrkit.schedules import from_spec

# --- 1. the mark's arrow sits under the mark -------------------------------------------------------------------------

def _arrow_and_mark(chart: str, arrow: str, mark_x: str, corner: str) -> tuple[int, int]:
    lines = chart.splitlines()
    axis = next(i for i, line in enumerate(lines) if line.strip().startswith(corner) and mark_x in line
                and set(line.strip()) <= set(corner + mark_x + "-+─┬┼"))
    return lines[axis + 2].index(arrow), lines[axis].index(mark_x)


@pytest.mark.parametrize("width", [40, 44, 50, 60, 72, 100])
@pytest.mark.parametrize("ascii", [True, False])
def test_mark_arrow_is_under_the_mark_in_a_narrow_chart(width: int, ascii: bool) -> None:
    lrs = list(np.geomspace(1e-7, 10, 100))
    losses = [2.3 - 1.5 / (1 + math.exp(-3 * (math.log10(lr) + 1.5))) + (50 * lr if lr > 0.3 else 0) for lr in lrs]
    r = FinderResult(lrs=lrs, losses=losses)
    assert 1e-3 < r.suggestion < 1  # right of the middle of the axis, but not far enough for the label on the left
    chart = r.text_plot(width=width, ascii=ascii)
    arrow, mark = ("^", "^") if ascii else ("▲", "┴")
    got, want = _arrow_and_mark(chart, arrow, mark, "+" if ascii else "└")
    assert got == want, chart
    assert max(len(line) for line in chart.splitlines()) <= width
    assert f"{r.suggestion:.3g}" in chart  # the number is always there, even where the words are not


@pytest.mark.parametrize("at", [1.0, 2.0, 3.0, 5.0, 8.0, 9.0])
def test_long_mark_label_never_moves_the_arrow(at: float) -> None:
    chart = text_chart([([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 5, 4, 3, 2, 1], "line")], width=40, height=4,
                       ascii=True, marks=[(at, f"a label of twenty-six chars {at:g}")])
    lines = chart.splitlines()
    axis = lines[4]
    assert lines[6].index("^") == axis.index("^"), chart
    assert f"{at:g}" in lines[6]


# --- 2. the schedule picture of a very short run ---------------------------------------------------------------------

@pytest.mark.parametrize("steps", [1, 2, 3])
def test_short_schedule_is_visible_and_its_step_axis_whole(steps: int) -> None:
    fig = plot_schedule(from_spec("cosine lr0=1e-12", total_steps=steps).record())
    try:
        ax = fig.axes[0]
        (line,) = ax.get_lines()
        assert line.get_marker() not in (None, "", "None", " ")  # one point (or two) is drawn, not a line of length 0
        fig.canvas.draw()
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    finally:
        plt.close(fig)


def test_long_schedule_keeps_a_plain_line() -> None:
    fig = plot_schedule(from_spec("cosine lr0=0.1", total_steps=500).record())
    try:
        assert fig.axes[0].get_lines()[0].get_marker() in (None, "", "None", " ")
    finally:
        plt.close(fig)


# --- 3. results.png: many LR levels, the legend off the curves -------------------------------------------------------

def _results_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, groups: int, epochs: int = 3) -> Any:
    from lrkit.plots.results import plot_results

    names = [f"lr/layer{i}/{kind}" for i in range(groups) for kind in ("decay", "bias")]
    rows = []
    for e in range(1, epochs + 1):
        lr = 0.01 * (1 + math.cos(math.pi * e / (epochs + 1))) / 2
        rows.append([e, 2.3 / e, 2.2 / e, 0.1 * e, *[lr * 0.75 ** (groups - 1 - i) for i in range(groups)
                                                    for _ in range(2)], 1.0, 2.0])
    csv = tmp_path / "results.csv"
    csv.write_text(",".join(["epoch", "train_loss", "val_loss", "val_accuracy", *names, "grad_norm",
                             "grad_norm_max"]) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    closed: list[Any] = []
    monkeypatch.setattr(plt, "close", closed.append)  # keep the figure plot_results closes
    out = plot_results(csv)
    assert out.is_file()
    return closed[0]


def _display_points(ax: Any) -> np.ndarray:
    pts = [ax.transData.transform(np.column_stack([ln.get_xdata(), ln.get_ydata()])) for ln in ax.get_lines()
           if len(ln.get_xdata())]
    return np.concatenate(pts)


@pytest.mark.parametrize("groups", [4, 13])
def test_lr_legend_covers_no_curve_with_many_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    groups: int) -> None:
    fig = _results_figure(tmp_path, monkeypatch, groups)
    ax_lr = fig.axes[2]
    assert ax_lr.get_title().startswith("learning rate")
    legend = ax_lr.get_legend()
    assert legend is not None
    fig.canvas.draw()
    box = legend.get_window_extent(fig.canvas.get_renderer())
    pts = _display_points(ax_lr)
    inside = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
    assert not inside.any(), f"{inside.sum()} curve points under the LR legend"
    # the legend is whole inside the figure (a plain savefig keeps it) and over no other panel
    fbox = fig.bbox
    assert fbox.x0 <= box.x0 and box.x1 <= fbox.x1 and fbox.y0 <= box.y0 and box.y1 <= fbox.y1
    for other in fig.axes:
        if other is not ax_lr:
            ob = other.get_window_extent(fig.canvas.get_renderer())
            assert not (box.x0 < ob.x1 and ob.x0 < box.x1 and box.y0 < ob.y1 and ob.y0 < box.y1)
    plt.close(fig)


# --- 4. lrkit schedule ----------------------------------------------------------------------------------------------

def test_one_step_table_says_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.cli.schedule import schedule_command

    schedule_command("cosine lr0=0.1", total_steps=1, no_plot=True, chart=False)
    out = capsys.readouterr().out
    assert "1 step" in out and "1 steps" not in out


def test_missing_matplotlib_fails_before_printing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    from lrkit.cli.app import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setattr(sys, "argv", ["lrkit", "schedule", "cosine lr0=0.1", "--total-steps", "10"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert 'pip install "lrkit[plot]"' in captured.err
    assert captured.out == ""  # no table, no chart: the one line, as for every other missing extra
    assert not list(tmp_path.iterdir())


def test_no_plot_needs_no_matplotlib(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.cli.schedule import schedule_command

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    schedule_command("cosine lr0=0.1", total_steps=10, no_plot=True)
    assert "max 0.1 at step 0" in capsys.readouterr().out


# --- 5. a format matplotlib lists but cannot write here --------------------------------------------------------------

@pytest.mark.skipif(any(shutil.which(t) for t in ("xelatex", "pdflatex", "lualatex")),
                    reason="a TeX installation can write .pgf")
def test_pgf_without_tex_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    r = FinderResult(lrs=list(np.geomspace(1e-5, 1, 30)), losses=list(np.linspace(2, 1, 30)))
    before = set(plt.get_fignums())
    with pytest.raises(ValueError, match=r"lr\.pgf.*\.png") as info:
        r.plot(tmp_path / "lr.pgf")
    assert "xelatex" in str(info.value)  # matplotlib's reason kept
    assert not list(tmp_path.iterdir())  # no temporary file left behind
    assert set(plt.get_fignums()) == before


@pytest.mark.skipif(any(shutil.which(t) for t in ("xelatex", "pdflatex", "lualatex")),
                    reason="a TeX installation can write .pgf")
def test_schedule_cli_pgf_without_tex_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from lrkit.cli.app import main

    monkeypatch.setattr(sys, "argv", ["lrkit", "schedule", "cosine lr0=0.1", "-t", "10", "--no-chart", "-o",
                                      str(tmp_path / "lr.pgf")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2  # as every other --out refusal
    err = capsys.readouterr().err
    assert "--out" in err and "lr.pgf" in err and ".png" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


# --- 6. the finder picture's title gives the advice that fits how the test stopped ----------------------------------

@pytest.mark.parametrize(("stop", "advice"), [("completed", "raise num_steps"), ("diverged", "lower start_lr"),
                                              ("non-finite", "lower start_lr")])
def test_no_suggestion_title_fits_the_stop(stop: str, advice: str) -> None:
    from lrkit.plots.finder import plot_finder

    r = FinderResult(lrs=[1e-3, 1e-2], losses=[1.0, 0.9], stop_reason=stop)
    fig = plot_finder(r)
    try:
        title = fig.axes[0].get_title()
        assert advice in title and "no suggestion" in title, title
        assert ("lower start_lr" in title) == (advice == "lower start_lr")
    finally:
        plt.close(fig)


# --- 7. the text chart says where the loss was NaN/inf (the picture marks it; the chart left a silent gap) -----------

@pytest.mark.parametrize("width", [40, 72])
def test_text_chart_names_the_non_finite_steps(width: int) -> None:
    lrs = list(np.geomspace(1e-5, 1, 40))
    losses = [1 / (1 + 1e3 * lr) for lr in lrs]
    losses[-3:] = [float("nan"), float("inf"), float("nan")]
    chart = FinderResult(lrs=lrs, losses=losses).text_plot(width=width, ascii=True)
    assert all(len(line) <= width for line in chart.splitlines())
    note = " ".join(line.strip() for line in chart.splitlines())
    assert "3 steps" in note and "NaN/inf" in note and f"{lrs[-3]:.3g}" in note, chart
    clean = FinderResult(lrs=lrs, losses=[1 / (1 + 1e3 * lr) for lr in lrs]).text_plot(width=width, ascii=True)
    assert "NaN" not in clean
