"""Session 18: the range-test curve drawn as text in the terminal (``FinderResult.text_plot``, ``lrkit find``)."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from _helpers import MSE_LOSS_FN, write_task
from lrkit.cli.app import build_app
from lrkit.finder import FinderResult
from lrkit.plots.text import finder_text, text_chart


def _result(n: int = 60) -> FinderResult:
    lrs = list(np.geomspace(1e-5, 1, n))
    return FinderResult(lrs=lrs, losses=[1 / (1 + 1e3 * lr) + (0 if lr < 0.2 else 10 * lr) for lr in lrs])


def _plot_rows(chart: str, height: int) -> list[str]:
    return chart.splitlines()[:height]


@pytest.mark.parametrize("ascii", [False, True])
@pytest.mark.parametrize("width,height", [(40, 3), (50, 6), (100, 20)])
def test_size_is_as_asked(width: int, height: int, ascii: bool) -> None:
    chart = _result().text_plot(width=width, height=height, ascii=ascii)
    lines = chart.splitlines()
    assert all(len(line) <= width for line in lines), [len(line) for line in lines]
    # the plot rows, the axis, the tick labels, the suggestion line and the axis names (one line each where both
    # do not fit on one)
    assert len(lines) == height + (4 if width >= 50 else 5)
    names = " ".join(lines[height + 3:])
    assert "x: learning rate" in names and "y: training loss" in names
    assert lines[height].lstrip()[0] in "└+"
    if ascii:
        assert all(ord(ch) < 128 for ch in chart), chart
    else:
        assert any(0x2800 <= ord(ch) <= 0x28FF for ch in chart)


def test_a_falling_line_goes_from_top_left_to_bottom_right() -> None:
    chart = text_chart([(list(range(50)), [50.0 - i for i in range(50)], "line")], width=60, height=8, ascii=True)
    rows = _plot_rows(chart, 8)
    start = rows[0].index("+") + 1  # the cells begin after the axis
    top = [i for i, ch in enumerate(rows[0][start:]) if ch == "*"]
    bottom = [i for i, ch in enumerate(rows[-1][start:]) if ch == "*"]
    assert top and bottom and max(top) < min(bottom)
    assert rows[0].split()[0] == "50" and rows[-1].split()[0] == "1"  # y labels: the data's top and bottom


def test_values_outside_ylim_run_along_the_edge_and_nan_is_a_gap() -> None:
    ys = [1.0, 2.0, math.nan, math.nan, math.nan, 100.0]
    chart = text_chart([(list(range(1, 7)), ys, "dots")], width=40, height=5, x_log=False, ylim=(0.0, 3.0),
                       ascii=True)
    rows = _plot_rows(chart, 5)
    cells = [r[r.index(next(c for c in r if c in "|+")) + 1:] for r in rows]
    assert cells[0].rstrip().endswith(".")  # 100 drawn on the top row, at the right
    assert sum(r.count(".") for r in cells) == 3  # the NaNs draw nothing


def test_mark_sits_at_its_x_on_the_log_axis() -> None:
    r = _result()
    chart = r.text_plot(width=80, height=8, ascii=True)
    lines = chart.splitlines()
    axis = lines[8]
    corner = axis.index("+")
    cols = 80 - (corner + 1) - 1
    mark = axis.index("^") - corner - 1
    want = (math.log10(r.suggestion) - math.log10(1e-5)) / (0 - math.log10(1e-5)) * (cols - 1)
    assert abs(mark - want) <= 1, (mark, want)
    # the arrow under the mark, its label beside it
    label = lines[10]
    assert label[corner + 1 + mark] == "^" and f"suggestion {r.suggestion:.3g} (robust)" in label


def test_record_from_json_draws_the_same(tmp_path: Path) -> None:
    r = _result()
    path = r.to_json(tmp_path / "lr_find.json")
    assert FinderResult.from_json(path).text_plot() == r.text_plot() == finder_text(r.to_dict())


def test_no_finite_loss_is_a_note_not_an_error() -> None:
    d = _result().to_dict()
    d["losses"] = [None] * len(d["losses"])
    assert finder_text(d).startswith("(no finite loss in 60 steps")


@pytest.mark.parametrize("kwargs,match", [
    ({"width": 39}, r"width=39"),
    ({"height": 1}, r"height=1"),
    ({"ylim": (2.0, 1.0)}, r"ylim=\(2.0, 1.0\) must be two finite numbers, low < high"),
])
def test_bad_sizes_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        text_chart([([1.0, 2.0], [1.0, 2.0], "line")], **kwargs)


def test_bad_series_are_named() -> None:
    with pytest.raises(ValueError, match=r"style='bars' is not one of 'line', 'dots'"):
        text_chart([([1.0], [1.0], "bars")])
    with pytest.raises(ValueError, match=r"has 2 x values but 1 y values"):
        text_chart([([1.0, 2.0], [1.0], "line")])
    with pytest.raises(ValueError, match=r"x_log=True needs every x > 0, got 0.0"):
        text_chart([([0.0, 1.0], [1.0, 2.0], "line")], x_log=True)
    with pytest.raises(ValueError, match=r"at least one"):
        text_chart([])
    with pytest.raises(ValueError, match=r"lrs but"):
        finder_text({"lrs": [1e-3, 1e-2], "losses": [1.0]})


def _find(tmp_path: Path, *extra: str, columns: int = 90) -> str:
    task = write_task(tmp_path, MSE_LOSS_FN)
    res = CliRunner().invoke(build_app(), ["find", str(task), "--num-steps", "40", "--out", str(tmp_path / "o"),
                                           *extra], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    return res.output


def test_lrkit_find_prints_the_chart_and_no_chart_leaves_it_out(tmp_path: Path) -> None:
    out = _find(tmp_path)
    assert "x: learning rate   y: training loss" in out and "suggestion" in out
    rows = [line for line in out.splitlines() if "┤" in line or ("│" in line and "┃" not in line)]
    assert rows and all(len(line) <= 90 for line in out.splitlines() if "x: learning rate" in line)
    assert "x: learning rate" not in _find(tmp_path, "--no-chart")
    assert "x: learning rate" not in _find(tmp_path, columns=30)  # no room: no chart


def test_a_console_without_braille_gets_ascii() -> None:
    from rich.console import Console

    from lrkit.cli._common import print_chart

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252")
    con = Console(file=stream, width=60, force_terminal=False)
    print_chart(con, _result().text_plot, height=5)
    stream.flush()
    text = raw.getvalue().decode("cp1252")
    assert "x: learning rate" in text and all(ord(ch) < 128 for ch in text)


def test_a_mark_label_too_long_for_the_line_keeps_its_number_whole() -> None:
    label = "a very long label that cannot fit on any forty column line 0.0117 (robust)"
    chart = text_chart([([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0], "line")], x_log=True, width=40, height=3,
                       marks=[(1e-2, label)], ascii=True)
    line = chart.splitlines()[5]
    assert line.split() in (["^", "0.0117"], ["0.0117", "^"]), chart


def test_schedule_text_plot_follows_the_lr() -> None:
    from lrkit.schedules import from_spec

    s = from_spec("step lr0=0.1 step_size=10 gamma=0.1", total_steps=40, steps_per_epoch=1)
    chart = s.text_plot(width=60, height=6, ascii=True)
    rows = chart.splitlines()[:6]
    assert rows[0].split()[0] == "0.1" and rows[-1].split()[0] == "0.0001"
    start = rows[0].index("+") + 1
    first = [i for i, ch in enumerate(rows[0][start:]) if ch == "*"]
    last = [i for i, ch in enumerate(rows[-1][start:]) if ch == "*"]
    assert max(first) < min(last)  # the LR falls in steps, left to right
    log = s.text_plot(width=60, height=6, ascii=True, log_y=True)
    # on a log axis the four levels are evenly spaced: each decade's plateau is on its own row band
    levels = [r for r in log.splitlines()[:6] if "*" in r]
    assert len(levels) >= 4


def test_schedule_text_plot_needs_a_length_and_names_it() -> None:
    from lrkit.schedules import from_spec

    open_ended = from_spec("step lr0=0.1 step_size=10 gamma=0.5", steps_per_epoch=1)
    with pytest.raises(ValueError, match="no fixed length; pass steps="):
        open_ended.text_plot()
    assert open_ended.text_plot(30, width=50).splitlines()[0].split()[0] == "0.1"
    assert "0.5" in from_spec("cosine", total_steps=50).text_plot(base_lr=0.5, width=50).splitlines()[0]


def _schedule(*args: str, columns: int = 90) -> str:
    res = CliRunner().invoke(build_app(), ["schedule", *args, "--no-plot"], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    return res.output


def test_lrkit_schedule_draws_the_lr_and_no_chart_or_json_leave_it_out() -> None:
    out = _schedule("cosine lr0=0.01 warmup_steps=100", "-t", "1000")
    assert "x: optimizer step   y: learning rate" in out
    assert "x: optimizer step" not in _schedule("cosine lr0=0.01", "-t", "1000", "--no-chart")
    js = _schedule("cosine lr0=0.01", "-t", "100", "--json")
    assert js.lstrip().startswith("{") and "optimizer step" not in js
    both = _schedule("cosine lr0=0.01", "-t", "500", "--compare", "linear lr0=0.01")
    assert "(2 schedules)" in both


def test_ticks_on_short_axes() -> None:
    from lrkit.plots.text import _ticks

    # a log axis spanning less than a decade (a test that diverged early) still gets two ticks at round values
    assert _ticks(100.0, 226.0, True, 60) == [100.0, 200.0]
    # optimizer steps: no tick between two whole numbers
    assert _ticks(0.0, 2.0, False, 60, whole=True) == [0.0, 1.0, 2.0]
    assert 0.5 in _ticks(0.0, 2.0, False, 60)
