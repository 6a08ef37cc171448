"""benchmarks/prefix_search.py (the session-28 pre-registered prefix-trial measurement): its pieces on fakes, no real
training — the candidate set, the trial's prefix+anneal multiplier, the parabola pick with its clamp, the all-diverged
fallback, and one seed's flow (cached, the full run at the pick)."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace
from typing import Any

import pytest

from _helpers import bench_script, keep_torch_threads  # noqa: F401 (a fixture, used through usefixtures)

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture
def ps(monkeypatch: pytest.MonkeyPatch) -> Any:
    return bench_script("prefix_search", monkeypatch)


def test_candidates_are_a_decade_each_side_half_a_decade_apart(ps: Any) -> None:
    c = ps.candidates(0.02)
    assert len(c) == 5 and c[2] == 0.02  # the middle one is s itself, exactly (its full run is the run at s)
    for a, b in itertools.pairwise(c):
        assert b / a == pytest.approx(10**0.5)
    assert c[0] == pytest.approx(0.002) and c[-1] == pytest.approx(0.2)


def test_trial_is_the_real_schedules_prefix_then_a_linear_anneal_to_zero(ps: Any) -> None:
    import _suite

    assert ps.trial_lengths(1000) == (200, 50)
    assert ps.trial_lengths(3) == (1, 1)  # never a zero-step phase
    mult, steps = ps.trial_multiplier(200)
    assert steps == 40 + 10
    real = _suite.warmup_cosine(200)
    assert [mult(t) for t in range(40)] == [real(t) for t in range(40)]
    anneal = [mult(t) for t in range(40, 50)]
    assert anneal[0] == pytest.approx(0.9 * real(40))
    assert anneal[-1] == 0.0
    assert all(a > b for a, b in itertools.pairwise(anneal))


def test_pick_moves_to_the_parabolas_vertex(ps: Any) -> None:
    cands = ps.candidates(1.0)  # log10: -1, -0.5, 0, 0.5, 1
    # through (-0.5, 2), (0, 1), (0.5, 1.5): vertex at 0.5 * 0.5 / (2 * 1.5) = +1/12 decade
    assert ps.pick(cands, [5.0, 2.0, 1.0, 1.5, 5.0], 1.0) == pytest.approx(10 ** (1 / 12))
    # mirrored: the same distance down
    assert ps.pick(cands, [5.0, 1.5, 1.0, 2.0, 5.0], 1.0) == pytest.approx(10 ** (-1 / 12))


def test_pick_clamps_the_vertex_to_a_quarter_decade(ps: Any) -> None:
    # unequal spacing puts the vertex far beyond the best candidate; it moves only 0.25 decade
    cands = [0.9, 1.0, 100.0]
    scores = [1.5, 1.0, 1.01]
    x0, x2 = math.log10(0.9), 2.0
    unclamped = -0.5 * (x0**2 * (1.0 - 1.01) - x2**2 * (1.0 - 1.5)) / (-x0 * (1.0 - 1.01) + x2 * (1.0 - 1.5))
    assert unclamped > 0.25  # the case really needs the clamp
    assert ps.pick(cands, scores, 1.0) == pytest.approx(10**0.25)


def test_pick_keeps_the_best_when_a_neighbour_is_missing_or_diverged(ps: Any) -> None:
    cands = ps.candidates(1.0)
    inf = math.inf
    assert ps.pick(cands, [1.0, 2.0, 3.0, 4.0, 5.0], 1.0) == cands[0]  # at the edge: no parabola
    assert ps.pick(cands, [5.0, 4.0, 3.0, 2.0, 1.0], 1.0) == cands[4]
    assert ps.pick(cands, [5.0, 2.0, 1.0, inf, inf], 1.0) == cands[2]  # the upper neighbour diverged
    assert ps.pick(cands, [inf, inf, inf, 1.0, 2.0], 1.0) == cands[3]


def test_pick_breaks_a_tie_towards_the_lower_lr(ps: Any) -> None:
    cands = ps.candidates(1.0)
    assert ps.pick(cands, [1.0, 1.0, 2.0, 3.0, 4.0], 1.0) == cands[0]
    # tie -> the lower; the parabola through (0, 2), (0.5, 1), (1, 1) has its vertex halfway between the tied two
    assert ps.pick(cands, [4.0, 3.0, 2.0, 1.0, 1.0], 1.0) == pytest.approx(10**0.75)


def test_every_candidate_diverged_falls_back_a_decade_and_a_half_below_s(ps: Any) -> None:
    assert ps.pick(ps.candidates(0.3), [math.inf] * 5, 0.3) == pytest.approx(0.3 / 10**1.5)
    with pytest.raises(ValueError, match="5 candidates and 4 scores"):
        ps.pick(ps.candidates(0.3), [1.0] * 4, 0.3)


class _Auto:
    def __init__(self, lr: float, trials: list[Any] | None = None) -> None:
        self.lr, self.trials, self.extra_steps, self.extra_fraction = lr, trials or [], 25, 0.25
        self.finder = SimpleNamespace(num_steps_run=20 if trials else 25)

    def to_dict(self) -> dict[str, Any]:
        return {"suggestion": 0.01}


def test_one_seed_trains_five_trials_once_and_the_full_run_at_the_pick(ps: Any, monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Any) -> None:  # fmt: skip
    task = SimpleNamespace(name="fake", total_steps=lambda: 100)
    chosen: list[float] = []
    trained: list[tuple[float, int]] = []
    full: list[tuple[float, str]] = []
    monkeypatch.setattr(ps.auto_lr, "choose", lambda t, seed, budget: (chosen.append(budget) or
                        _Auto(0.01 if budget == ps.RANGE_BUDGET else 0.004), 0.0))  # fmt: skip
    losses = {-2: 0.9, -1: 0.5, 0: 0.4, 1: 0.45, 2: math.inf}

    def fake_trial(t: Any, lr: float, seed: int, mult: Any, steps: int) -> float:
        trained.append((lr, steps))
        return losses[round(2 * math.log10(lr / 0.01))]

    monkeypatch.setattr(ps, "trial", fake_trial)
    monkeypatch.setattr(ps, "cached_val_loss", lambda t, lr, seed, cache_dir: full.append((lr, cache_dir.name)) or lr)
    rec: dict[str, Any] = {}
    out = ps.measure_seed(task, 0, rec, lambda: None, cache_dir=tmp_path)
    assert chosen == [0.25, 0.3]
    assert len(trained) == 5 and {s for _, s in trained} == {25}  # 20 prefix + 5 anneal
    # parabola through (-0.5, 0.5), (0, 0.4), (0.5, 0.45): vertex 0.5 * 0.05 / (2 * 0.15) = +1/12 decade
    assert out.pick == pytest.approx(0.01 * 10 ** (1 / 12))
    assert full[0] == (out.pick, tmp_path.name) and full[1] == (0.004, "auto_lr") and full[2] == (0.01, tmp_path.name)
    assert out.extra == pytest.approx((25 + 5 * 25) / 100)
    # a second call reads everything back from the record: no range test, no trial, no choice again
    again = ps.measure_seed(task, 0, rec, lambda: None, cache_dir=tmp_path)
    assert len(trained) == 5 and chosen == [0.25, 0.3] and again.pick == out.pick and again.scores == out.scores


def test_a_range_test_that_stopped_early_counts_only_its_steps_and_its_suggestion(ps: Any,
                                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                                 tmp_path: Any) -> None:  # fmt: skip
    # choose_lr0(budget=0.25) ran two trials with the steps its early-stopped range test left, and moved to 0.02:
    # the design starts from the suggestion (0.01) and charges only the range test's 20 steps
    task = SimpleNamespace(name="fake", total_steps=lambda: 100)
    monkeypatch.setattr(ps.auto_lr, "choose", lambda t, seed, budget: (_Auto(0.02, trials=[1, 2]), 0.0))
    monkeypatch.setattr(ps, "trial", lambda t, lr, seed, mult, steps: abs(math.log10(lr / 0.01)))
    monkeypatch.setattr(ps, "cached_val_loss", lambda t, lr, seed, cache_dir: 1.0)
    rec: dict[str, Any] = {}
    out = ps.measure_seed(task, 0, rec, lambda: None, cache_dir=tmp_path)
    assert out.s == 0.01 and out.range_extra == pytest.approx(0.2) and out.extra == pytest.approx(0.2 + 1.25)
    assert rec["0"]["range_trials"] == 2 and rec["0"]["range_choice"] == 0.02


def test_pooled_counts_within_one_and_five_percent(ps: Any) -> None:
    rows = [{"m": v} for v in (0.0, 0.01, 0.03, 0.2, math.inf)]
    p = ps.pooled(rows, "m")
    assert p == {"n": 5, "median": 0.03, "worst": math.inf, "within1": 2, "within5": 3}
