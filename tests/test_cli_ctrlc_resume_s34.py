"""Session 34: Ctrl-C while ``lrkit train resume=...`` is still setting up (before the run names its folder) printed
the placeholder ``resume with: lrkit train resume=<run>/last.pt``: a command that cannot be copied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import lrkit.train as train_pkg
from lrkit.cli.app import build_app


def _interrupt(*args: Any, **kwargs: Any) -> Any:
    raise KeyboardInterrupt


def _run(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args), catch_exceptions=False)


@pytest.fixture
def finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    res = _run("train", "data=iris", "model=linear", "epochs=1", "lr0=0.01", "plots=false", "verbose=false",
               "monitor=false")
    assert res.exit_code == 0, res.output
    last = Path("runs", "train", "last.pt")
    assert last.is_file()
    monkeypatch.setattr(train_pkg, "train", _interrupt)
    return last


def test_ctrl_c_while_resuming_a_named_run_repeats_its_path(finished_run: Path) -> None:
    res = _run("train", f"resume={finished_run}")
    assert res.exit_code == 130, res.output
    assert "<run>" not in res.output
    assert f"resume with: lrkit train resume={finished_run}" in res.output


def test_ctrl_c_while_resume_true_searches_says_run_it_again(finished_run: Path) -> None:
    res = _run("train", "resume=true")
    assert res.exit_code == 130, res.output
    assert "<run>" not in res.output
    assert "run the same command again" in res.output
