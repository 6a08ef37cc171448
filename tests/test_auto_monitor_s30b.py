"""benchmarks/auto_monitor.py (session 30, measured, deciding nothing): lr0="auto"'s recorded choices trained with the
default Monitor — on fakes, no real training: the choices it reads back, the runs it asks for, the pooled rows, and
the refusal without records."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from _helpers import bench_script, keep_torch_threads  # noqa: F401 (a fixture, used through usefixtures)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture
def am(monkeypatch: pytest.MonkeyPatch) -> Any:
    return bench_script("auto_monitor", monkeypatch)


def test_auto_choices_reads_each_seeds_lr(am: Any) -> None:
    assert am.auto_choices({"1": {"auto": {"lr": "0.5"}, "s": 1.0}, "0": {"auto": {"lr": 0.25}}}) == {1: 0.5, 0: 0.25}


def test_regret_row_counts_and_shows_a_diverged_worst(am: Any) -> None:
    assert am.regret_row("t", [0.0, 0.02, 0.06]) == "| t | +2.00% | +6.00% | 1/3 | 2/3 |"
    assert am.regret_row("t", [0.0, math.inf]).endswith("| diverged | 1/2 | 1/2 |")


def test_main_trains_each_choice_with_the_default_monitor_and_reports_both_regrets(
        am: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:  # fmt: skip
    monkeypatch.setattr(am.ps, "CACHE_DIR", tmp_path)
    rec = {"seeds": {str(k): {"auto": {"lr": 0.01 * (k + 1)}} for k in am.SEEDS}}
    (tmp_path / "search_digits_linear.json").write_text(json.dumps(rec))
    monkeypatch.setattr(am, "oracle", lambda task: type("O", (), {"best_lr": 0.01, "best_loss": 1.0})())
    plain_asked: list[Any] = []

    def evaluate(task: Any, pairs: list[tuple[float, int]], *, cache_dir: Path) -> dict[Any, float]:
        plain_asked.append((list(pairs), cache_dir))
        return {p: 1.5 for p in pairs}

    monitored: list[tuple[str, float, int, Any]] = []

    def one_run(task: Any, lr: float, seed: int, options: Any) -> dict[str, Any]:
        monitored.append((task.name, lr, seed, options))
        return {"val_loss": 1.1, "diverged": seed == 2, "events": seed}

    monkeypatch.setattr(am, "evaluate_lrs", evaluate)
    monkeypatch.setattr(am, "one_run", one_run)
    assert am.main(["--tasks", "digits_linear,wine_mlp"]) == 0  # wine_mlp has no record here: left out
    [(pairs, where)] = plain_asked
    assert where == tmp_path and pairs == [(0.01, 0), (0.02, 1), (0.03, 2)]
    # the default monitor ({} = Monitor's defaults) on every seed's choice
    assert monitored == [("digits_linear", 0.01, 0, {}), ("digits_linear", 0.02, 1, {}),
                         ("digits_linear", 0.03, 2, {})]  # fmt: skip
    out = capsys.readouterr().out
    # plain: median 1.5 -> +50%; monitored: 1.1, 1.1, inf -> median 1.1 -> +10%
    assert "| digits_linear | held_out | 0.01, 0.02, 0.03 | 0.01 | +50.00% | +10.00% | 0, 1, 2 |" in out
    assert "| held out (1) | with the default monitor | +10.00% | +10.00% | 0/1 | 0/1 |" in out
    assert "wine_mlp" not in out


def test_main_refuses_without_any_record(am: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: Any) -> None:  # fmt: skip
    monkeypatch.setattr(am.ps, "CACHE_DIR", tmp_path)
    with pytest.raises(SystemExit) as info:
        am.main(["--tasks", "wine_mlp"])
    assert info.value.code == 2 and "run python benchmarks/prefix_search.py first" in capsys.readouterr().err


def test_choice_prefix_trains_the_prefix_searchs_pick(am: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: Any) -> None:  # fmt: skip
    ps = am.ps
    monkeypatch.setattr(ps, "CACHE_DIR", tmp_path)
    s = 0.01
    # trial scores best at the top candidate's neighbour below: the pick is the vertex of a parabola, not s
    seed = {"s": s, "auto": {"lr": 123.0},
            "trials": {f"{c:.17g}": v for c, v in zip(ps.candidates(s), [5.0, 4.0, 3.0, 1.0, 2.0])}}  # fmt: skip
    (tmp_path / "search_digits_linear.json").write_text(json.dumps({"seeds": {str(k): seed for k in am.SEEDS}}))
    monkeypatch.setattr(am, "oracle", lambda task: type("O", (), {"best_lr": 0.01, "best_loss": 1.0})())
    monkeypatch.setattr(am, "evaluate_lrs", lambda task, pairs, **kw: {p: 1.0 for p in pairs})
    asked: list[float] = []
    monkeypatch.setattr(am, "one_run", lambda task, lr, seed, o: asked.append(lr) or {"val_loss": 1.0,
                                                                                    "diverged": False, "events": 0})
    assert am.main(["--tasks", "digits_linear", "--choice", "prefix"]) == 0
    cands = ps.candidates(s)
    want = ps.pick(cands, [5.0, 4.0, 3.0, 1.0, 2.0], s)
    assert asked == [want] * 3 and want != 123.0 and cands[2] < want < cands[4]
    assert "the prefix search's pick trained" in capsys.readouterr().out
