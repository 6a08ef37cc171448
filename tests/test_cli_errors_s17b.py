"""`lrkit schedule` / `lrkit find`: an error about an option's value names the option the user typed (`-t` is
`--total-steps`) and shows the value as typed (`-5`, not `-5.0`; `1e400`, not `inf`)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lrkit.cli._common import cli_message, typed_float
from lrkit.cli.app import build_app


def _run(*args: str):
    return CliRunner().invoke(build_app(), list(args))


@pytest.mark.parametrize(("args", "expected"), [
    (["-t", "-5"], "--total-steps -5 must be a finite number > 0"),
    (["--total-steps", "0"], "--total-steps 0 must be a finite number > 0"),
    (["-t", "1e400"], "--total-steps 1e400 must be a finite number > 0"),
    (["-e", "-2", "-n", "10"], "--epochs -2 must be a finite number > 0"),
    (["-e", "2", "-n", "-10"], "--steps-per-epoch -10 must be a finite number > 0"),
    (["-e", "3"], "--epochs 3 needs --steps-per-epoch"),
    (["-e", "3", "-n", "0.1"], "--epochs 3 * --steps-per-epoch 0.1 is less than one step"),
    (["--base-lr", "-1", "-t", "10"], "--base-lr -1 must be a finite number > 0"),
])
def test_schedule_errors_name_the_flag_and_the_value_as_typed(args: list[str], expected: str) -> None:
    res = _run("schedule", "cosine", "--no-plot", *args)
    assert res.exit_code == 2
    assert expected in res.output, res.output
    for keyword in ("total_steps=", "steps_per_epoch=", "epochs=", "base_lr="):
        assert keyword not in res.output, res.output


def test_schedule_spec_keys_keep_their_spec_spelling() -> None:
    """A key the spec gave (not an option) is named as the spec wrote it; a hint to pass a length names the flags."""
    res = _run("schedule", "cosine warmup_epochs=3", "-t", "100", "--no-plot")
    assert res.exit_code == 2
    assert "warmup_epochs=3 needs --steps-per-epoch (or --epochs and --total-steps)" in res.output, res.output
    spec = _run("schedule", "cosine total_steps=-5", "--no-plot")
    assert spec.exit_code == 2 and "total_steps=-5 must be a finite number > 0" in spec.output, spec.output
    assert "--total-steps" not in spec.output
    both = _run("schedule", "cosine total_steps=5", "-t", "7", "--no-plot")
    assert both.exit_code == 2
    assert "total_steps=5 in the spec disagrees with --total-steps 7 given separately" in both.output, both.output


def test_bad_number_is_named_with_the_option() -> None:
    res = _run("schedule", "cosine", "-t", "abc", "--no-plot")
    assert res.exit_code == 2 and "'abc' is not a number" in res.output, res.output


@pytest.mark.parametrize(("args", "expected"), [
    (["--start-lr", "-1"], "--start-lr -1 must be a finite number > 0"),
    (["--start-lr", "1", "--end-lr", "0.5"], "--end-lr 0.5 must be greater than --start-lr 1"),
    (["--end-lr", "1e400"], "--end-lr 1e400 must be a finite number > 0"),
    (["--max-grad-norm", "-1"], "--max-grad-norm -1 must be a finite number > 0"),
    (["--num-steps", "5"], "--num-steps 5 must be an integer >= 10"),
])
def test_find_errors_name_the_flag_and_the_value_as_typed(tmp_path, args: list[str], expected: str) -> None:
    res = _run("find", *args, "--out", str(tmp_path / "f"))
    assert res.exit_code == 2
    assert expected in res.output, res.output
    assert not (tmp_path / "f").exists()


def test_cli_message_is_one_mechanism() -> None:
    """The rewrite: ``key=VALUE`` of an option's own value becomes ``--flag TYPED``; another value (a spec's) stays;
    a bare keyword in a hint becomes the flag; ``key=...`` becomes ``--flag N``."""
    flags = {"total_steps": ("--total-steps", typed_float("1e7")), "steps_per_epoch": ("--steps-per-epoch", None)}
    assert cli_message("total_steps=10000000.0 is too long", flags) == "--total-steps 1e7 is too long"
    assert cli_message("total_steps=5 in the spec disagrees with total_steps=10000000.0 given separately", flags) == \
        "total_steps=5 in the spec disagrees with --total-steps 1e7 given separately"
    assert cli_message("pass steps_per_epoch=..., or total_steps=... instead", flags) == \
        "pass --steps-per-epoch N, or --total-steps N instead"
    assert cli_message("warmup_steps=3 needs steps_per_epoch", flags) == "warmup_steps=3 needs --steps-per-epoch"
    assert typed_float("-5") == -5.0 and typed_float("-5").typed == "-5"
