"""Session 18: `lrkit schedule`'s key-points table never folds a number across two lines in a narrow terminal
(``6.168e-`` / ``07``): it prints 3 significant digits with a short exponent there instead."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app


def _table(columns: int) -> str:
    res = CliRunner().invoke(build_app(), ["schedule", "wsd lr0=0.01 warmup_steps=10 decay_frac=0.2", "-t", "1000",
                                           "--no-plot", "--no-chart"], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    return res.output


def test_narrow_terminal_shortens_numbers_rather_than_folding_them() -> None:
    out = _table(40)
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert any("6.17e-7" in r for r in rows), out
    assert not any(r.rstrip("│ ").endswith("e-") for r in rows), out
    assert all(len(line) <= 40 for line in out.splitlines())


@pytest.mark.parametrize("columns", [80, 120])
def test_wide_terminal_keeps_four_digits(columns: int) -> None:
    assert "6.168e-07 │" in _table(columns)
