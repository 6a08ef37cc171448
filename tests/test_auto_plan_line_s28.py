"""``lr0="auto"`` on a run too short for its range test: the error alone, no plan line promising a range test."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrkit


def test_no_plan_line_before_the_too_short_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: the log said "lr0=auto — range test only, within 30% extra compute (...)" and the next line was the error
    # that the budget allows no range test
    with pytest.raises(ValueError, match="needs at least 10 extra optimizer steps") as err:
        lrkit.train("mlp", data="iris", epochs=2, batch=64, lr0="auto", project=str(tmp_path / "runs"))
    assert "allows" in str(err.value)
    out = capsys.readouterr().out
    assert "lrkit.train: iris" in out and "lr0=auto —" not in out, out  # (the log ran up to the error)
    assert not (tmp_path / "runs").exists()


def test_a_run_that_fits_still_says_its_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lrkit.train("mlp", data="iris", epochs=12, batch=8, nbs=8, lr0="auto", project=str(tmp_path / "runs"))
    assert capsys.readouterr().out.count("lr0=auto —") == 1
