"""benchmarks/auto_shift.py (session 31, interpolated, deciding nothing): lr0="auto"'s recorded choices moved by a
constant number of decades, read off the oracle grids — on fakes: the interpolation's regret per shift, the pooled
table, the calibration tasks left out, and the refusal without records."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from _helpers import bench_script, keep_torch_threads  # noqa: F401 (a fixture, used through usefixtures)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture
def sh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    module = bench_script("auto_shift", monkeypatch)
    monkeypatch.setattr(module.ps, "CACHE_DIR", tmp_path)
    return module


def _oracle(sh: Any, name: str) -> Any:
    grid = [10.0 ** (k / 2) for k in range(-8, 1)]  # 1e-4 .. 1, half a decade apart; best at 1e-2
    per_seed = [[1.0 + abs(math.log10(lr) + 2)] * 3 for lr in grid]
    return sh.OracleResult(task=name, grid=grid, seeds=(0, 1, 2), losses=[r[0] for r in per_seed], per_seed=per_seed,
                           best_lr=1e-2, best_loss=1.0, good_range=(1e-2, 1e-2), seconds=0.0)  # fmt: skip


def _record(tmp_path: Path, name: str, lr: float) -> None:
    seeds = {str(s): {"auto": {"lr": lr}} for s in (0, 1, 2)}
    (tmp_path / f"search_{name}.json").write_text(json.dumps({"seeds": seeds}), encoding="utf-8")


def test_shifted_regrets_reads_the_interpolated_loss_at_each_shift(sh: Any) -> None:
    o = _oracle(sh, "t")
    regrets = sh.shifted_regrets({0: 1e-3, 1: 1e-3, 2: 1e-3}, o, [0.0, 0.5, 1.0, 1.25])
    assert regrets[0.0] == pytest.approx(1.0) and regrets[0.5] == pytest.approx(0.5)
    assert regrets[1.0] == pytest.approx(0.0) and regrets[1.25] == pytest.approx(0.25)  # between grid points


def test_main_pools_held_out_tasks_with_a_record_and_leaves_calibration_out(
        sh: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:  # fmt: skip
    asked: list[str] = []
    monkeypatch.setattr(sh, "oracle", lambda task: asked.append(task.name) or _oracle(sh, task.name))
    _record(tmp_path, "digits_linear", 1e-3)  # held out: a decade low
    _record(tmp_path, "friedman_mlp", 1e-2)  # held out: at the best
    _record(tmp_path, "digits_mlp", 1e-2)  # calibration: left out
    assert sh.main(["--tasks", "digits_linear,friedman_mlp,breast_cancer_mlp,digits_mlp", "--shifts", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert sorted(asked) == ["digits_linear", "friedman_mlp"]  # breast_cancer_mlp has no record
    assert "2 held-out tasks" in out
    assert "| +0.00 | x1 | +50.00% | 1/2 | 1/2 |" in out  # one task at the best (0), one a decade low (+100%)
    assert "| +1.00 | x10 | +50.00% | 1/2 | 1/2 |" in out  # the shift fixes one and breaks the other


def test_main_without_any_record_says_which_script_to_run_first(sh: Any, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        sh.main(["--tasks", "fresh12"])
    assert exc.value.code == 2 and "prefix_search.py --jobs 2" in capsys.readouterr().err
