"""`lrkit schedule`: key points table, PNG, --compare, --json, --list, clean errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.schedules import available, from_spec


@pytest.fixture
def app() -> typer.Typer:
    return build_app()  # the real app, every command registered


def run(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, ["schedule", *args])


def test_json_is_one_value_per_step(app: typer.Typer) -> None:
    res = run(app, "onecycle max_lr=0.1", "--epochs", "4", "--steps-per-epoch", "25", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == {"lr", "momentum"}
    ref = from_spec("onecycle max_lr=0.1", epochs=4, steps_per_epoch=25)
    assert data["lr"] == [ref.lr(t) for t in range(100)]
    assert data["momentum"] == [ref.momentum(t) for t in range(100)]


def test_spec_may_be_given_unquoted_like_train_keys(app: typer.Typer) -> None:
    quoted = run(app, "onecycle max_lr=0.1 pct_start=0.2", "-e", "4", "-n", "25", "--json")
    unquoted = run(app, "onecycle", "max_lr=0.1", "pct_start=0.2", "-e", "4", "-n", "25", "--json")
    assert quoted.exit_code == unquoted.exit_code == 0, unquoted.output
    assert json.loads(unquoted.stdout) == json.loads(quoted.stdout)
    keys = run(app, "onecycle", "max_lr=0.1", "pct_start=0.2", "epochs=4", "steps_per_epoch=25", "--json")
    assert json.loads(keys.stdout) == json.loads(quoted.stdout)  # run length as spec keys too
    bad = run(app, "onecycle", "max_lr=0.1", "pct_strat=0.2", "-t", "10")
    assert bad.exit_code != 0 and "pct_start" in bad.output


def test_json_momentum_is_null_when_not_scheduled(app: typer.Typer) -> None:
    res = run(app, "step lr0=0.1 step_size=30 gamma=0.1", "-e", "90", "-n", "2", "--json")
    data = json.loads(res.stdout)
    assert len(data["lr"]) == 180 and data["momentum"] == [None] * 180
    assert data["lr"][59] == 0.1 and data["lr"][60] == pytest.approx(0.01)


def test_table_and_png(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "lr.png"
    res = run(app, "cosine lr0=0.01 lrf=0.01 warmup_epochs=3 warmup_momentum=0.8 momentum=0.937", "-e", "100",
              "-n", "50", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    for text in ("warmup", "decay", "0–149", "150–4999", "momentum", "max 0.009"):
        assert text in res.output
    final = 0.01 * (((1 - math.cos(4999 / 50 * math.pi / 100)) / 2) * (0.01 - 1) + 1)
    assert f"final {final:.4g}" in res.output


def test_compare_overlays_several_specs(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "cmp.png"
    res = run(app, "onecycle max_lr=0.1", "-t", "300", "--compare", "cosine lr0=0.1 warmup_steps=30",
              "--compare", "wsd lr0=0.1 warmup_steps=30 decay_frac=0.2", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert out.exists()
    for text in ("onecycle max_lr=0.1", "anneal", "cosine lr0=0.1", "wsd lr0=0.1", "stable"):  # one table each
        assert text in res.output


def test_list_prints_the_registry(app: typer.Typer) -> None:
    res = run(app, "--list")
    assert res.exit_code == 0
    for e in available():
        assert e.name in res.output


@pytest.mark.parametrize(("args", "match"), [
    (("cosine lr0=0.01 lfr=0.01", "-t", "10", "--no-plot"), "Did you mean 'lrf'?"),
    (("cosin lr0=0.1", "-t", "10", "--no-plot"), "Did you mean 'cosine'?"),
    (("plateau lr0=0.1", "--no-plot"), "has no fixed length"),
    (("step lr0=0.1 step_size=30", "-t", "100", "--no-plot"), "--steps-per-epoch is needed"),
    ((), "give a schedule spec"),
    (("cosine", "-t", "10", "--json", "--compare", "linear"), "drop --compare"),
    # found by the adversarial pass: a bare OverflowError, and a bad --base-lr silently ignored
    (("exponential lr0=0.1 gamma=2 unit=step", "-t", "2000", "--no-plot"), "gamma=2.0 per step overflows"),
    (("cosine lr0=0.1", "-t", "10", "--no-plot", "--base-lr", "-1"), "--base-lr -1 must be a finite number > 0"),
])
def test_errors_exit_nonzero_with_one_line(app: typer.Typer, args: tuple[str, ...], match: str) -> None:
    res = run(app, *args)
    assert res.exit_code != 0
    assert match in res.output
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)  # a clean exit, not an exception CliRunner swallowed


def test_base_lr_turns_multipliers_into_lrs(app: typer.Typer) -> None:
    rel = json.loads(run(app, "cosine lrf=0.1", "-t", "20", "--json").stdout)
    ab = json.loads(run(app, "cosine lrf=0.1", "-t", "20", "--json", "--base-lr", "0.5").stdout)
    assert rel["lr"][0] == 1.0 and ab["lr"] == pytest.approx([0.5 * v for v in rel["lr"]])
