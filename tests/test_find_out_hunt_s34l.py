"""Session 34l: a hand-edited ``lr_find.json`` is named when loaded, never a raw ``TypeError``/``OverflowError``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lrkit import FinderResult

LRS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
LOSSES = [2.0, 1.9, 1.2, 0.9, 5.0]
HUGE = 10**400  # a JSON integer literal this long is valid JSON, and too large for a float


def _record(tmp_path: Path, **changes: Any) -> Path:
    d = FinderResult(lrs=LRS, losses=LOSSES, num_steps=5).to_dict()
    d.update(changes)
    path = tmp_path / "lr_find.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    return path


@pytest.mark.parametrize("rule", [["robust"], {"robust": 1}])
def test_a_rule_that_is_not_a_string_is_named_when_loaded(tmp_path: Path, rule: Any) -> None:
    with pytest.raises(ValueError, match=r"unknown suggestion rule .*Valid: minimum, robust, steepest, valley"):
        FinderResult.from_json(_record(tmp_path, rule=rule))


@pytest.mark.parametrize("rule", [["robust"], {"robust": 1}])
def test_suggest_with_a_rule_that_is_not_a_string_is_named(rule: Any) -> None:
    r = FinderResult(lrs=LRS, losses=LOSSES, num_steps=5)
    with pytest.raises(ValueError, match=r"unknown suggestion rule .*Valid: minimum, robust, steepest, valley"):
        r.suggest(rule)


@pytest.mark.parametrize("key", ["start_lr", "end_lr", "seconds", "passes"])
def test_a_setting_too_large_for_a_float_is_named_when_loaded(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{key}="):
        FinderResult.from_json(_record(tmp_path, **{key: HUGE}))


def test_an_lr_too_large_for_a_float_is_named_when_loaded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"lrs\[2\]=inf: every LR of a range test is a finite number > 0"):
        FinderResult.from_json(_record(tmp_path, lrs=[1e-4, 1e-3, HUGE, 1e-1, 1.0]))


def test_a_loss_too_large_for_a_float_loads_as_inf_and_writes_strict_json(tmp_path: Path) -> None:
    # as json.loads reads 1e400 (inf): a loss that overflowed, which the record writes as null + nonfinite_losses
    r = FinderResult.from_json(_record(tmp_path, losses=[2.0, 1.9, 1.2, 0.9, HUGE]))
    assert r.losses[-1] == float("inf")
    d = r.to_dict()
    json.loads(json.dumps(d), parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))
    assert d["losses"][-1] is None and d["nonfinite_losses"] == {"inf": [4]}


def test_find_prints_an_out_folder_with_brackets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `--out 'runs/[adamw]'`: the folder was written, but rich read "[adamw]" as markup and printed runs//lr_find.png
    from typer.testing import CliRunner

    import lrkit.cli.find as find_cli
    from lrkit.cli.app import build_app

    out_dir = tmp_path / "[adamw]"
    result = FinderResult(lrs=LRS, losses=LOSSES, num_steps=5)
    monkeypatch.setattr(find_cli, "run_find", lambda *args, **kwargs: (result, out_dir))
    run = CliRunner().invoke(build_app(), ["find", "--no-chart", "--out", str(out_dir)], terminal_width=400)
    assert run.exit_code == 0, run.output
    assert f"plot:   {out_dir / 'lr_find.png'}" in run.output
    assert f"record: {out_dir / 'lr_find.json'}" in run.output
