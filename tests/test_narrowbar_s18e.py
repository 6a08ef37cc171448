"""Session 18: in a narrow terminal the progress bar drops the bar, then the elapsed time, then the time remaining
before it wraps the live fields into a sliver (a 40-column terminal wrapped them three letters a line)."""
from __future__ import annotations

import io
import re

import pytest


def _frame(width: int, info: str, total: int = 12345, done: int = 6172) -> list[str]:
    from rich.console import Console

    from lrkit.cli._common import progress_bar

    out = io.StringIO()
    with progress_bar("train", total, console_=Console(file=out, width=width, force_terminal=True,
                                                        color_system=None)) as update:
        update(advance=done, info=info)
    frame = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue()).split("\r")[-1]
    return [line.rstrip() for line in frame.split("\n") if line.strip()]


def test_forty_columns_show_count_and_fields_on_one_line() -> None:
    lines = _frame(40, "epoch 3/10 loss 0.1234")
    assert lines == ["train  6172/12345 epoch 3/10 loss 0.1234"], lines


def test_fifty_columns_keep_the_time_remaining_before_the_elapsed() -> None:
    (line,) = _frame(50, "epoch 3/10 loss 0.1234")
    assert "6172/12345" in line and "-:--:--" in line and "0:00:00" not in line and "━" not in line
    assert line.endswith("epoch 3/10 loss 0.1234") and len(line) <= 50


@pytest.mark.parametrize("width", [30, 36])
def test_very_narrow_wraps_the_fields_never_the_count(width: int) -> None:
    lines = _frame(width, "epoch 3/10 loss 0.1234")
    assert "6172/12345" in lines[0] and "…" not in "".join(lines)
    assert all(len(line) <= width for line in lines)
    assert " ".join(" ".join(lines).split()).endswith("epoch 3/10 loss 0.1234")
    assert len(lines) <= 3  # words a line, not letters


def test_wide_terminal_keeps_every_column() -> None:
    (line,) = _frame(120, "loss 0.5")
    assert "━" in line and "0:00:00" in line and "-:--:--" in line and line.endswith("loss 0.5")
