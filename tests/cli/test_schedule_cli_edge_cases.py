"""`lrkit schedule` edge cases: each test failed before its fix (found by a bug hunt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app


def run(*args: str):
    return CliRunner().invoke(build_app(), ["schedule", *args])


def _clean_failure(res, match: str) -> None:
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("spec", ["step lr0=0.1 gamma=1e300 step_size=1", "multistep milestones=1,2 gamma=1e200"])
def test_overflowing_spec_exits_cleanly(spec: str) -> None:
    # Bug: a bare OverflowError traceback (the command caught ValueError and TypeError only).
    _clean_failure(run(spec, "-t", "20", "-n", "2", "--no-plot"), spec)


def test_infinite_lr_is_refused_not_printed_as_invalid_json() -> None:
    # Bug: --json printed `Infinity`, which no JSON parser accepts, and the table showed "final inf".
    res = run("exponential lr0=1e300 gamma=1.5 unit=step", "-t", "80", "--json")
    _clean_failure(res, "the LR is not finite from step 47 on")
    assert "Infinity" not in res.output
    _clean_failure(run("exponential lr0=1e300 gamma=1.5 unit=step", "-t", "80", "--no-plot"), "step 47")


def test_json_stays_strict_json_for_ordinary_specs() -> None:
    res = run("cosine lr0=0.1 warmup_steps=3", "-t", "10", "--json")
    assert res.exit_code == 0
    data = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert len(data["lr"]) == 10


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_out_suffix_picks_the_format(tmp_path: Path, suffix: str, magic: bytes) -> None:
    # Bug: --out lr.pdf wrote PNG bytes into a file named .pdf.
    out = tmp_path / f"lr{suffix}"
    res = run("cosine lr0=0.1", "-t", "10", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[: len(magic)] == magic


def test_out_with_an_unknown_suffix_is_refused_before_printing(tmp_path: Path) -> None:
    res = run("cosine lr0=0.1", "-t", "10", "-o", str(tmp_path / "lr.txt"))
    _clean_failure(res, "'.txt'")
    assert ".png" in res.output and not (tmp_path / "lr.txt").exists()


@pytest.mark.parametrize("spec", ["cosine eta_min=0.001", "cosine warmup_steps=3 warmup_bias_lr=0.1",
                                  "cyclic base_lr=0.001"])
def test_a_spec_without_its_peak_points_to_base_lr(spec: str) -> None:
    # Bug: the error told a command-line user to "pass lr0=..., or use to_torch(optimizer)", never naming the
    # command's own answer, --base-lr.
    _clean_failure(run(spec, "-t", "10", "--no-plot"), "--base-lr")
    res = run(spec, "-t", "10", "--base-lr", "0.1", "--no-plot")
    assert res.exit_code == 0, res.output
