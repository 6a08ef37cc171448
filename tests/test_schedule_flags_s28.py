"""``lrkit schedule cosine --lr0 0.1``: a spec key written as a flag is told where it goes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app


@pytest.mark.parametrize(("flag", "key"), [("--lr0", "lr0"), ("--warmup-epochs", "warmup_epochs"),
                                           ("--gamma", "gamma"), ("--max_lr", "max_lr")])
def test_a_spec_key_as_a_flag_says_to_write_it_in_the_spec(flag: str, key: str) -> None:
    # Bug: "No such option: --lr0 (Possible options: --end-lr)" — no word that lr0 is a key of the spec
    out = CliRunner().invoke(build_app(), ["schedule", "cosine", flag, "0.1", "--no-plot"])
    assert out.exit_code == 2
    text = " ".join(out.output.replace("│", " ").split())
    assert f"No such option: {flag} — {key} is a key of the spec" in text, text
    assert f"lrkit schedule <family> {key}=<value>" in text


@pytest.mark.parametrize("flag", ["--bogus", "--lr-0"])
def test_a_flag_that_names_no_key_keeps_clicks_error(flag: str) -> None:
    out = CliRunner().invoke(build_app(), ["schedule", "cosine", flag, "1", "--no-plot"])
    assert out.exit_code == 2
    assert f"No such option: {flag}" in out.output and "key of the spec" not in out.output


def test_the_command_s_own_options_still_work() -> None:
    out = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "--total-steps", "100", "--no-plot",
                                           "--no-chart"])
    assert out.exit_code == 0, out.output
