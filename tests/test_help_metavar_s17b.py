"""`lrkit <command> --help`: a boolean flag (--help, --json, --version, ...) shows no `<bool>` value placeholder."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app


@pytest.mark.parametrize("command", [[], ["find"], ["schedule"], ["train"]])
def test_no_bool_metavar_on_flags(command: list[str]) -> None:
    res = CliRunner().invoke(build_app(), [*command, "--help"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    assert "--help" in res.output
    assert "<bool>" not in res.output and "BOOLEAN" not in res.output, res.output


def test_value_options_keep_their_type() -> None:
    res = CliRunner().invoke(build_app(), ["schedule", "--help"], env={"COLUMNS": "100"})
    line = next(s for s in res.output.splitlines() if "--total-steps" in s)
    assert "<float>" in line, res.output
    json_line = next(s for s in res.output.splitlines() if "--json" in s)
    assert "<" not in json_line.split("--json", 1)[1].split("Print", 1)[0], json_line
