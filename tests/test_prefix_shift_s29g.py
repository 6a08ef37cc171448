"""benchmarks/prefix_shift_explore.py (session 29, exploratory): its pieces on fakes, no real training — the picks it
reads back from a prefix-search record, and the shifted runs it asks for, with the unshifted ones from that script's
cache; and the refusal when no record exists."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from _helpers import bench_script, keep_torch_threads  # noqa: F401 (a fixture, used through usefixtures)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture
def sx(monkeypatch: pytest.MonkeyPatch) -> Any:
    return bench_script("prefix_shift_explore", monkeypatch)


def _record(ps: Any, scores: list[float | None], s: float = 0.01) -> dict[str, Any]:
    return {"s": s, "trials": {f"{c:.17g}": v for c, v in zip(ps.candidates(s), scores)}}


def test_picks_follow_the_registered_rule_diverged_trials_included(sx: Any) -> None:
    ps = sx.ps
    got = sx.picks({"0": _record(ps, [3.0, 2.0, 1.0, 2.0, 3.0]), "1": _record(ps, [1.0, 2.0, 3.0, None, None]),
                    "2": _record(ps, [None] * 5)})  # fmt: skip
    assert got[0] == pytest.approx(0.01) and got[1] == pytest.approx(0.001)  # the vertex; the lowest at the edge
    assert got[2] == pytest.approx(0.01 / 10**1.5)  # every trial diverged


def test_main_trains_the_shifted_lrs_and_reads_the_picks_runs_from_the_search_cache(
        sx: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:  # fmt: skip
    ps = sx.ps
    monkeypatch.setattr(ps, "CACHE_DIR", tmp_path / "search")
    monkeypatch.setattr(sx, "CACHE_DIR", tmp_path / "shift")
    (tmp_path / "search").mkdir()
    rec = {str(k): _record(ps, [3.0, 2.0, 1.0, 2.0, 3.0]) for k in sx.SEEDS}
    (tmp_path / "search" / "search_wine_mlp.json").write_text(json.dumps({"seeds": rec}))
    asked: list[tuple[list[tuple[float, int]], Path]] = []

    def evaluate(task: Any, pairs: list[tuple[float, int]], *, jobs: int, cache_dir: Path) -> dict[Any, float]:
        asked.append((list(pairs), cache_dir))
        shifted = cache_dir == tmp_path / "shift"
        return {p: (1.1 if shifted else 1.0) for p in pairs}

    monkeypatch.setattr(sx, "evaluate_lrs", evaluate)
    monkeypatch.setattr(sx, "oracle", lambda task: type("O", (), {"best_loss": 1.0})())
    assert sx.main([]) == 0
    (base, where0), (shifted, where1) = asked
    assert where0 == tmp_path / "search" and where1 == tmp_path / "shift"
    assert [lr for lr, _ in shifted] == pytest.approx([lr / 10**0.25 for lr, _ in base])
    out = capsys.readouterr().out
    assert "| wine_mlp | calibration | +0.00% | +10.00% |" in out
    assert math.isclose(base[0][0], 0.01)


def test_main_refuses_when_no_prefix_search_record_exists(sx: Any, tmp_path: Path, monkeypatch: Any,
                                                          capsys: Any) -> None:  # fmt: skip
    monkeypatch.setattr(sx.ps, "CACHE_DIR", tmp_path)
    with pytest.raises(SystemExit) as info:
        sx.main([])
    assert info.value.code == 2 and "run python benchmarks/prefix_search.py first" in capsys.readouterr().err
