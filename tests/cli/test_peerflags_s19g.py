"""``lrkit find``: a peer's argument typed as a flag is told the command's name for it, and ``--diverge-factor``
(fastai's ``stop_div=False`` as ``none``) is an option (session 19g).

Before, ``lrkit find --min-lr 1e-8`` answered "Possible options: --end-lr" (click's spelling guess: the wrong end of
the range), and the command line had no way to run a range test to its end past a divergence.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import PEER_FLAGS, build_app


def _invoke(*args: str):
    return CliRunner().invoke(build_app(), list(args), env={"COLUMNS": "200"})


@pytest.mark.parametrize("flag, name", [("--min-lr", "--start-lr"), ("--max-lr", "--end-lr"),
                                        ("--num-iter", "--num-steps"), ("--step-mode", "--mode"),
                                        ("--no-stop-div", "--diverge-factor none")])
def test_peer_flags_name_lrkits(flag: str, name: str) -> None:
    res = _invoke("find", flag, "1")
    assert res.exit_code == 2
    assert f"No such option: {flag} — lrkit find calls it {name}" in res.output
    assert "Possible options" not in res.output


def test_flag_with_equals_and_other_flags_keep_clicks_message() -> None:
    res = _invoke("find", "--min-lr=1e-8")
    assert "calls it --start-lr" in res.output
    res = _invoke("find", "--bogus-flag", "1")
    assert res.exit_code == 2 and "No such option: --bogus-flag" in res.output and "calls it" not in res.output


def test_every_peer_flag_is_refused_and_names_a_real_option() -> None:
    params = {opt for p in build_app_find_params() for opt in p.opts + getattr(p, "secondary_opts", [])}
    for flag, advice in PEER_FLAGS["find"].items():
        assert flag not in params, flag
        assert advice.split()[0] in params, advice


def build_app_find_params() -> list:
    import typer.main

    group = typer.main.get_command(build_app())
    return group.commands["find"].params  # type: ignore[attr-defined]


def test_diverge_factor_none_runs_to_the_end(tmp_path: Path) -> None:
    out = tmp_path / "f"
    res = _invoke("find", "--num-steps", "20", "--end-lr", "1e4", "--diverge-factor", "none", "--no-chart",
                  "--out", str(out))
    assert res.exit_code == 0, res.output
    record = json.loads((out / "lr_find.json").read_text())
    assert len(record["lrs"]) == 20  # default 4x would have stopped at such LRs


def test_diverge_factor_bad_values(tmp_path: Path) -> None:
    res = _invoke("find", "--diverge-factor", "0.5", "--out", str(tmp_path / "a"))
    assert res.exit_code != 0 and "--diverge-factor 0.5 must be a finite number > 1" in res.output
    assert "or none for no stop" in res.output
    res = _invoke("find", "--diverge-factor", "x", "--out", str(tmp_path / "b"))
    assert res.exit_code != 0 and "--diverge-factor 'x' must be a number" in res.output
