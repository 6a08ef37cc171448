"""benchmarks/lr_precision.py (session 30, measured, deciding nothing): its pieces on fakes, no real training — the
grid neighbours it reads off the oracle (edges included), the off-grid LRs it trains, and the pooled rows it prints."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from _helpers import bench_script, keep_torch_threads  # noqa: F401 (a fixture, used through usefixtures)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture
def lp(monkeypatch: pytest.MonkeyPatch) -> Any:
    return bench_script("lr_precision", monkeypatch)


def test_grid_neighbours_are_one_and_two_points_away_and_none_past_either_edge(lp: Any) -> None:
    grid = [10 ** (k / 4) for k in range(-8, 1)]  # 0.01 .. 1, nine points
    losses = [float(k) for k in range(9)]
    assert lp.grid_neighbours(grid, losses, grid[4]) == {-0.5: 2.0, -0.25: 3.0, 0.25: 5.0, 0.5: 6.0}
    assert lp.grid_neighbours(grid, losses, grid[0]) == {-0.5: None, -0.25: None, 0.25: 1.0, 0.5: 2.0}
    assert lp.grid_neighbours(grid, losses, grid[8]) == {-0.5: 6.0, -0.25: 7.0, 0.25: None, 0.5: None}
    # a best LR a rounding error off its grid point is still that point
    assert lp.grid_neighbours(grid, losses, grid[4] * (1 + 1e-12))[0.25] == 5.0


def test_worse_side_takes_the_larger_regret_and_needs_both(lp: Any) -> None:
    assert lp.worse_side({-0.5: 0.3, 0.5: 0.1}, 0.5) == 0.3
    assert lp.worse_side({-0.5: math.inf, 0.5: 0.1}, 0.5) == math.inf
    assert lp.worse_side({-0.5: 0.3, 0.5: None}, 0.5) is None


def test_regret_row_counts_within_one_and_five_percent(lp: Any) -> None:
    assert lp.regret_row("t", [0.01, 0.011, 0.05, math.inf]) == "| t | +3.05% | diverged | 1/4 | 3/4 |"


def test_main_trains_the_off_grid_lrs_and_prints_each_offsets_regret(lp: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: Any) -> None:  # fmt: skip
    grid = [10 ** (k / 4) for k in range(-12, 1)]  # 0.001 .. 1
    best = grid[6]  # ~0.0316
    losses = [2.0] * len(grid)
    losses[6], losses[5], losses[7], losses[4], losses[8] = 1.0, 1.02, 1.04, 1.2, 1.3
    fake = type("O", (), {"grid": grid, "losses": losses, "best_lr": best, "best_loss": 1.0})()
    monkeypatch.setattr(lp, "oracle", lambda task, jobs: fake)
    monkeypatch.setattr(lp, "CACHE_DIR", tmp_path)
    asked: list[tuple[list[tuple[float, int]], Path]] = []

    def evaluate(task: Any, pairs: list[tuple[float, int]], *, jobs: int, cache_dir: Path) -> dict[Any, float]:
        asked.append((list(pairs), cache_dir))
        # a loss that grows with the distance from the best, diverging on seed 2 below it by an eighth of a decade
        out = {}
        for lr, seed in pairs:
            d = math.log10(lr / best)
            out[(float(lr), seed)] = math.inf if (seed == 2 and d < -0.1) else 1.0 + abs(d) / 10
        return out

    monkeypatch.setattr(lp, "evaluate_lrs", evaluate)
    assert lp.main(["--tasks", "wine_mlp"]) == 0
    [(pairs, where)] = asked
    assert where == tmp_path
    offsets = sorted({round(math.log10(lr / best), 9) for lr, _ in pairs})
    assert offsets == pytest.approx(sorted(lp.TRAINED)) and {s for _, s in pairs} == set(lp.SEEDS)
    out = capsys.readouterr().out
    # grid neighbours from the oracle's losses; trained offsets from the runs (median of 3 seeds; one diverged)
    row = "| wine_mlp | calibration | 0.0316 | +20.0% | +2.0% | +1.2% | +0.8% | +0.8% | +1.2% | +4.0% | +30.0% |"
    assert row in out
    assert "| calibration (1) | ±0.25 decade, the worse side | +4.00% | +4.00% | 0/1 | 1/1 |" in out
    assert "held out" not in out  # no held-out task was asked for


def test_main_refuses_an_unknown_task(lp: Any, capsys: Any) -> None:
    with pytest.raises(SystemExit) as info:
        lp.main(["--tasks", "no_such_task"])
    assert info.value.code == 2 and "unknown task 'no_such_task'" in capsys.readouterr().err


def test_main_places_lrkits_recorded_choices_against_the_oracle_for_held_out_tasks(
        lp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:  # fmt: skip
    grid = [10 ** (k / 4) for k in range(-12, 1)]
    best = grid[6]
    fake = type("O", (), {"grid": grid, "losses": [1.0] * len(grid), "best_lr": best, "best_loss": 1.0})()
    monkeypatch.setattr(lp, "oracle", lambda task, jobs: fake)
    monkeypatch.setattr(lp, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(lp, "evaluate_lrs", lambda task, pairs, **kw: {(float(lr), s): 1.0 for lr, s in pairs})
    monkeypatch.setattr(lp.ps, "CACHE_DIR", tmp_path)
    ps = lp.ps

    def seed(s: float, auto: float) -> dict[str, Any]:  # trials best at the suggestion s itself
        return {"s": s, "auto": {"lr": auto}, "trials": {f"{c:.17g}": v for c, v in zip(ps.candidates(s),
                                                                                          [3, 2, 1, 2, 3])}}

    record = {"seeds": {"0": seed(best, best * 10), "1": seed(best * 10**0.1, best), "2": seed(best / 10, best)}}
    (tmp_path / "search_digits_linear.json").write_text(__import__("json").dumps(record))
    assert lp.main(["--tasks", "digits_linear,wine_mlp"]) == 0
    out = capsys.readouterr().out
    # lr0="auto": offsets +1, 0, 0 decades; the prefix picks (= s here): 0, +0.1, -1
    assert '| lr0="auto" | 3 | 0.00 | +0.00 | 2/3 | 2/3 | 2/3 | 2/3 |' in out
    assert "| prefix search | 3 | 0.10 | +0.00 | 1/3 | 2/3 | 2/3 | 2/3 |" in out
    assert "| range test (s) | 3 | 0.10 | +0.00 | 1/3 | 2/3 | 2/3 | 2/3 |" in out
    # s: 0, +0.1, -1 decades -> a population standard deviation of 0.50 over the one task
    assert "a standard deviation of 0.50 decade (median over 1 tasks)" in out
