"""Session 18: `lrkit find --help` names `loss_fn = None` (the default loss, said explicitly) and the refusal of a loss
under another name."""
from __future__ import annotations

from typer.testing import CliRunner

from lrkit.cli.app import build_app


def test_find_help_names_loss_fn_none_and_other_names() -> None:
    out = CliRunner().invoke(build_app(), ["find", "--help"], env={"COLUMNS": "200"}).output
    text = " ".join(out.split())
    assert "loss_fn = None to say so" in text
    assert "criterion, is refused" in text
