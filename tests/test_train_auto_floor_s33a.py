"""train_auto reads a regret against an oracle loss at the float floor as undefined, not only one of exactly 0.

Bug (session 32): separable blobs' monitor-on oracle ended at a median validation loss of 2e-11 (float32
cross-entropy at its floor), and ``lr0="auto"``'s regret against it printed as +356680852%; only an oracle loss of
exactly 0 was read as undefined. And ``--rescue``'s geometric means printed "+nan%" when no task had a defined ratio.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from _helpers import cached_rescue, keep_torch_threads, train_auto_script  # noqa: F401 (fixtures: usefixtures, ta)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def _rec(loss: float, lr0: float = 1e-3) -> dict[str, Any]:
    return {"final_val_loss": loss, "lr0": lr0, "extra_fraction": 0.25, "events": {}, "optimizer": "AdamW"}


def test_the_floor_is_float32_epsilon_and_a_tiny_oracle_loss_is_below_it(ta: Any) -> None:
    assert ta.FLOAT_FLOOR == pytest.approx(1.1920929e-07)
    assert ta.at_floor(2e-11) and ta.at_floor(0.0) and not ta.at_floor(1e-6)
    assert math.isinf(ta._ratio(0.05, 2e-11))
    assert ta._ratio(3e-11, 2e-11) == 0.0  # both at the floor: no measurable difference
    assert ta._ratio(0.2, 0.1) == pytest.approx(1.0)


def test_a_tiny_oracle_loss_reads_undefined_in_the_table_and_leaves_the_defined_pooled_row(ta: Any,
                                                                                          capsys: Any) -> None:
    grid = ta.default_grid()
    ta.CACHE_DIR.mkdir(parents=True)
    for name, best in (("wine_mlp", 2e-11), ("iris_mlp", 1.0)):
        runs = {f"{ta.run_key(lr)}/{s}": _rec(best + abs(math.log10(lr / 1e-3))) for lr in grid for s in ta.SEEDS}
        runs.update({f"auto/{s}": _rec(best + 0.02) for s in ta.SEEDS})
        (ta.CACHE_DIR / f"{name}_monitor-on.json").write_text(json.dumps(runs), encoding="utf-8")
    assert ta.main(["--tasks", "wine_mlp,iris_mlp"]) == 0
    out = capsys.readouterr().out
    row = out.split("| wine_mlp |")[1].split("\n")[0].split("|")
    assert row[8].strip() == "undefined (oracle loss at the float floor)"  # the regret cell, not +1e8%
    assert "| lr0=auto, the 1 tasks whose oracle loss is above the float floor | +2.00% | +2.00% | 0/1 | 1/1 |" in out


def test_rescue_with_every_oracle_at_the_floor_prints_none_for_the_geometric_means(
        ta: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:  # fmt: skip
    grid = ta.default_grid()
    runs = {f"{ta.run_key(lr)}/{s}": _rec(1e-12 + abs(math.log10(lr / grid[10]))) for lr in grid for s in ta.SEEDS}
    out = cached_rescue(ta, monkeypatch, capsys, "wine_mlp", runs, runs)
    assert out.count("undefined (oracle loss at the float floor)") == 5
    assert "nan" not in out
    assert "healthy runs none over 0 tasks, 10x/31.6x settings none over 0" in out
