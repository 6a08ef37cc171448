"""The top-level ``lrkit`` app: --version, and the schedule picture's format following the file suffix."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app
from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import from_spec


def test_version_prints_the_package_version_and_exits() -> None:
    result = CliRunner().invoke(build_app(), ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"lrkit {lrkit.__version__}"


def test_commands_still_run_under_the_root_callback() -> None:
    result = CliRunner().invoke(build_app(), ["schedule", "cosine", "-t", "10", "--no-plot"])
    assert result.exit_code == 0, result.output
    assert "final" in result.output


def test_plot_schedule_writes_the_format_its_suffix_names(tmp_path: Path) -> None:
    rec = from_spec("cosine", total_steps=50).record()
    plot_schedule(rec, path=tmp_path / "s.svg")
    plot_schedule(rec, path=tmp_path / "s.pdf")
    plot_schedule(rec, path=tmp_path / "s.png")
    assert b"<svg" in (tmp_path / "s.svg").read_bytes()[:400]
    assert (tmp_path / "s.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "s.png").read_bytes().startswith(b"\x89PNG")
