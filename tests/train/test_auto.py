"""Tests for lr0="auto" (lrkit.train.auto.choose_lr0): known answer, budget, exact restore, ratios, errors."""

from __future__ import annotations

import copy
import math
import random
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit.finder
from lrkit.finder import FinderResult
from lrkit.train.auto import AutoLR, Trial, _guard, _pick, choose_lr0, plan_budget

# the guard's step-down machinery and its trials, as it was before the sixth fresh set's test made
# STEP_DOWN_MARGIN = inf (and DIP_AND_PASSES) the default; the defaults have their own tests (test_auto_guard_s7.py)
pytestmark = pytest.mark.usefixtures("step_down_guard")


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """5% linear warmup then cosine to zero over ``steps`` steps (the benchmark suite's schedule)."""
    warm = max(1, round(0.05 * steps))

    def f(t: int) -> float:
        if t < warm:
            return (t + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (t - warm) / max(1, steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def quadratic_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise-free linear regression with a spread spectrum: the best GD step size is set by the Hessian."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([2.0, 1.0, 0.6, 0.3])
    x = torch.randn(320, 4, generator=g) * scales
    w = torch.randn(4, 1, generator=g)
    y = x @ w
    return x[:256], y[:256], x[256:], y[256:]


def gd_final_loss(x: torch.Tensor, y: torch.Tensor, peak: float, steps: int) -> float:
    """Closed-form-per-step GD on ``mean((x w - y)^2)`` from w = 0 under the warmup-cosine schedule, in float64."""
    x, y = x.double(), y.double()
    w = torch.zeros(x.shape[1], 1, dtype=torch.float64)
    opt = torch.optim.SGD([w], lr=peak)
    sched = warmup_cosine(opt, steps)
    for _ in range(steps):
        grad = 2 * x.T @ (x @ w - y) / len(x)
        if not torch.isfinite(grad).all():
            return math.inf
        w.grad = grad
        opt.step()
        sched.step()
    return float(((x @ w - y) ** 2).mean())


def test_known_answer_quadratic() -> None:
    """On full-batch GD over a quadratic the best peak LR is computable from the Hessian.

    The range test's default rule backs off a decade from the loss minimum, which on a noise-free quadratic sits at
    the stability edge, so the choice is conservative (measured 0.20-0.23x the best over 5 problem seeds): within
    8x of the best and never above the stability bound.
    """
    x, y, xv, yv = quadratic_problem()
    total = 200
    hess_max = float(torch.linalg.eigvalsh(2 * x.T @ x / len(x)).max())
    stable = 2.0 / hess_max  # constant-step GD diverges above this
    grid = np.geomspace(stable / 30, stable * 3, 121)
    losses = [gd_final_loss(x, y, float(lr), total) for lr in grid]
    best = float(grid[int(np.argmin(losses))])
    assert stable / 4 < best < 3 * stable  # sanity: the answer is set by the Hessian

    model = nn.Linear(4, 1, bias=False)
    nn.init.zeros_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = choose_lr0(
            model, opt, [(x, y)], [(xv, yv)], total_steps=total, make_scheduler=warmup_cosine,
            loss_fn=nn.functional.mse_loss,
        )  # fmt: skip
    assert best / 8 <= auto.lr <= stable, (auto.lr, best, auto.reason)
    # and the chosen LR trains: its full run removes 99.9% of the initial loss
    assert gd_final_loss(x, y, auto.lr, total) < 1e-3 * float((y**2).mean())


def _regression_loaders(seed: int = 0, n: int = 512) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
    cut = n * 3 // 4
    train = DataLoader(TensorDataset(x[:cut], y[:cut]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(1))  # fmt: skip
    val = DataLoader(TensorDataset(x[cut:], y[cut:]), batch_size=256)
    return train, val


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _quiet(fn: Callable[[], AutoLR]) -> AutoLR:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


@pytest.mark.parametrize(("total", "budget"), [(100, 0.3), (400, 0.3), (1000, 0.1), (300, 0.5), (60, 0.2)])
def test_budget_is_respected(total: int, budget: float) -> None:
    train, val = _regression_loaders()
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    steps: list[int] = []
    passes: list[int] = []  # training forward passes: each costs about a step, applied or not
    handle = opt.register_step_post_hook(lambda *_: steps.append(1))
    hook = model.register_forward_hook(lambda m, *_: passes.append(1) if m.training else None)
    auto = _quiet(lambda: choose_lr0(model, opt, train, val, total_steps=total, make_scheduler=warmup_cosine,
                                     budget=budget))  # fmt: skip
    handle.remove()
    hook.remove()
    assert len(passes) == auto.extra_steps  # the report counts every training step computed
    assert len(steps) <= auto.extra_steps  # (a step whose loss diverged is computed but not applied)
    assert auto.extra_steps <= math.floor(budget * total)
    assert auto.extra_fraction == pytest.approx(auto.extra_steps / total)
    assert auto.extra_steps == auto.finder.num_steps_run + sum(t.steps for t in auto.trials)


def test_plan_budget_never_overspends() -> None:
    for total in (34, 50, 99, 240, 630, 5000, 10**6):
        for budget in (0.05, 0.1, 0.3, 1.0):
            for k in (2, 3, 5, 8):
                plan = plan_budget(total, budget, k)
                if plan.budget_steps < 10:
                    continue
                assert plan.num_trials == 0 or 2 <= plan.num_trials <= k
                assert plan.finder_steps + plan.num_trials * plan.trial_steps <= plan.budget_steps


def _state(model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator) -> dict:
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "opt": copy.deepcopy(opt.state_dict()),
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
        "modes": [m.training for m in model.modules()],
        "torch_rng": torch.get_rng_state(),
        "np_rng": np.random.get_state(),
        "py_rng": random.getstate(),
        "gen": gen.get_state(),
    }


def _assert_same(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b)
        for u, v in zip(a, b):
            _assert_same(u, v)
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b)
    else:
        assert a == b


def test_restores_everything_bit_for_bit() -> None:
    train, val = _regression_loaders()
    torch.manual_seed(3)
    model = SmallNet()
    opt = torch.optim.SGD(
        [{"params": model.body.parameters(), "lr": 0.01, "lr_scale": 0.1}, {"params": model.head.parameters()}],
        lr=0.1, momentum=0.9, weight_decay=1e-4,
    )  # fmt: skip
    sched = warmup_cosine(opt, 50)  # leaves 'initial_lr' in the groups, as a trainer would
    for x, y in list(train)[:3]:  # momentum buffers, BN stats, grads: a model mid-way, not fresh
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
    model.body[1].eval()  # a mixed train/eval state must come back as it was
    np.random.seed(5)
    random.seed(6)
    before = _state(model, opt, train.generator)
    auto = _quiet(lambda: choose_lr0(model, opt, train, val, total_steps=300, make_scheduler=warmup_cosine, seed=1,
                                     budget=0.5))  # fmt: skip
    assert auto.trials, "the test needs the trials to have run"
    _assert_same(before, _state(model, opt, train.generator))


def test_deterministic_and_logged() -> None:
    train, val = _regression_loaders()
    lines: list[str] = []
    results = []
    for log in (lines.append, None):
        torch.manual_seed(0)
        model = SmallNet()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        results.append(_quiet(lambda: choose_lr0(
            model, opt, train, val, total_steps=400, make_scheduler=warmup_cosine, log=log)))  # noqa: B023
    a, b = results
    assert a.lr == b.lr and a.trials == b.trials  # same seed, same start: same choice
    assert len(a.trials) >= 2
    trial_lines = [ln for ln in lines if "trial lr=" in ln]
    assert len(trial_lines) == len(a.trials)
    assert any("range test" in ln for ln in lines) and any("chose" in ln for ln in lines)
    for t in a.trials:
        assert f"{t.lr:.3g}" in a.reason
    assert f"{a.lr:.3g}" in a.reason


def test_group_ratios_survive_the_trials() -> None:
    train, val = _regression_loaders()
    model = SmallNet()
    opt = torch.optim.SGD(
        [{"params": model.body.parameters(), "lr_scale": 0.25}, {"params": model.head.parameters(), "lr_scale": 1.0}],
        lr=0.05, momentum=0.9,
    )  # fmt: skip
    ratios: list[float] = []

    def record(o: torch.optim.Optimizer, *_: object) -> None:
        ratios.append(o.param_groups[0]["lr"] / o.param_groups[1]["lr"])

    handle = opt.register_step_pre_hook(record)
    auto = _quiet(lambda: choose_lr0(model, opt, train, val, total_steps=400, make_scheduler=warmup_cosine))
    handle.remove()
    assert auto.trials and len(ratios) >= auto.extra_steps - len(auto.trials) - 1
    assert all(r == pytest.approx(0.25) for r in ratios)


def test_pick_reads_the_vertex_of_a_log_parabola() -> None:
    best = 0.03
    trials = [Trial(lr, 1.0 + (math.log(lr / best)) ** 2, 10) for lr in (0.01, 0.02, 0.04, 0.08)]
    lr, how = _pick(trials)
    assert lr == pytest.approx(best, rel=1e-6)
    assert "parabola" in how


def test_pick_edges_ties_and_divergence() -> None:
    lr, how = _pick([Trial(0.01, 0.5, 10), Trial(0.02, 0.6, 10), Trial(0.04, math.inf, 3)])
    assert lr == 0.01 and "lowest" in how  # no neighbour below: no extrapolation
    lr, _ = _pick([Trial(0.01, 0.5, 10), Trial(0.02, 0.5, 10)])
    assert lr == 0.01  # a tie goes to the lower, safer LR
    lr, how = _pick([Trial(0.01, math.inf, 2), Trial(0.02, math.inf, 1)])
    assert lr < 0.01 and "diverged" in how


def test_skips_confirmation_when_the_budget_is_too_small() -> None:
    train, val = _regression_loaders()
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    auto = _quiet(lambda: choose_lr0(model, opt, train, val, total_steps=50, make_scheduler=warmup_cosine, budget=0.3))
    # the range test's own suggestion, as lr0=auto reads it (a decade below a plateau too: _suggestion)
    assert auto.trials == [] and auto.lr == auto.finder.suggest(plateau_backoff_decades=1.0)
    assert "no room" in auto.reason and auto.extra_steps <= 15


def test_errors_name_the_bad_value() -> None:
    train, val = _regression_loaders()
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def call(**kw: object) -> AutoLR:
        args = {"total_steps": 300, "make_scheduler": warmup_cosine, **kw}
        return choose_lr0(model, opt, train, val, **args)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match=r"total_steps=0 must be a positive integer"):
        call(total_steps=0)
    with pytest.raises(ValueError, match=r"total_steps=True"):
        call(total_steps=True)
    with pytest.raises(ValueError, match=r"budget=0 must be a finite number > 0"):
        call(budget=0)
    with pytest.raises(ValueError, match=r"num_candidates=1 must be an integer >= 2"):
        call(num_candidates=1)
    with pytest.raises(ValueError, match=r"make_scheduler=3 must be a callable"):
        call(make_scheduler=3)
    with pytest.raises(ValueError, match=r"needs at least 10 extra optimizer steps.*allows 6.*to at least 0.5,"):
        call(total_steps=20)  # budget 0.3 x 20 = 6 steps; 10 / 20 = 0.5 would do
    with pytest.raises(ValueError, match=r"num_steps=200 exceeds the extra budget of 90 steps"):
        call(finder_kwargs={"num_steps": 200})
    with pytest.raises(ValueError, match=r"accumulate=0"):
        call(accumulate=0)
    with pytest.raises(ValueError, match="val_loader yielded no batches"):
        _quiet(lambda: choose_lr0(model, opt, train, [], total_steps=300, make_scheduler=warmup_cosine))


def _fake_run(score: Callable[[float], float]) -> tuple[Callable[[float], Trial], list[float]]:
    tried: list[float] = []

    def run(c: float) -> Trial:
        tried.append(c)
        return Trial(c, score(c), 10)

    return run, tried


def test_guard_steps_down_when_a_lower_lr_wins_even_on_the_short_run() -> None:
    best = 0.01
    run, tried = _fake_run(lambda c: 1.0 + math.log(c / best) ** 2)
    lr, how = _guard(0.08, run, 5, [10.0])  # the suggestion is 8x too high
    assert tried[:4] == pytest.approx([0.08, 0.04, 0.02, 0.01])
    assert lr == pytest.approx(best, rel=1e-6) and "lower LR scored better" in how


def test_guard_does_not_follow_a_higher_lr() -> None:
    run, tried = _fake_run(lambda c: 1.0 / c)  # a short run always prefers the larger LR: that is the bias
    lr, how = _guard(0.01, run, 3, [1e9])
    assert lr == 0.01 and max(tried) == 0.01 and "favours higher" in how


def test_guard_steps_down_from_divergence_and_up_from_no_learning() -> None:
    run, tried = _fake_run(lambda c: math.inf if c > 0.03 else 0.5)
    lr, how = _guard(0.2, run, 4, [2.0])
    assert tried == pytest.approx([0.2, 0.1, 0.05, 0.025]) and lr == pytest.approx(0.025) and "diverged" in how
    run, tried = _fake_run(lambda c: 2.0 if c < 1e-4 else 0.5)  # 1e-7 learns nothing; 4 steps of 4x reach 1e-4+
    lr, how = _guard(1e-7, run, 6, [2.0])
    assert lr >= 1e-4 and lr == min(c for c in tried if c >= 1e-4) and "did not learn" in how


def test_a_step_up_stops_at_the_lowest_candidate_that_learns() -> None:
    """A short trial prefers higher LRs (the horizon bias): once the suggestion has not learned, the guard steps up
    only until a candidate learns and takes that one, not the best-scoring of a longer climb (on the fresh held-out
    set a 9-step trial that "did not learn" once sent lr0=auto to 7x the oracle that way)."""
    run, tried = _fake_run(lambda c: 2.0 if c < 1e-3 else 0.5 * (1e-3 / c) ** 0.1)  # higher keeps scoring better
    lr, how = _guard(5e-4, run, 4, [2.0])
    assert tried == pytest.approx([5e-4, 2e-3]) and lr == pytest.approx(2e-3)
    assert "lowest candidate that learned" in how


def test_a_suggestion_that_diverges_on_the_run_is_not_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the range test is badly wrong (here: 10x the stability bound), the guard keeps the run stable."""
    x, y, xv, yv = quadratic_problem()
    stable = 2.0 / float(torch.linalg.eigvalsh(2 * x.T @ x / len(x)).max())

    def overshooting(*args: object, **kwargs: object) -> FinderResult:  # "minimum" rule: lr_min / 10 = 10 x stable
        return FinderResult(lrs=[1e-4, stable * 100, stable * 200], losses=[5.0, 1.0, 50.0], rule="minimum")

    monkeypatch.setattr(lrkit.finder, "find_lr", overshooting)
    model = nn.Linear(4, 1, bias=False)
    nn.init.zeros_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    auto = _quiet(lambda: choose_lr0(model, opt, [(x, y)], [(xv, yv)], total_steps=200, make_scheduler=warmup_cosine,
                                     loss_fn=nn.functional.mse_loss, budget=0.6))  # fmt: skip
    assert auto.finder.suggestion > 5 * stable
    assert auto.lr <= stable * 1.5 and math.isfinite(gd_final_loss(x, y, auto.lr, 200))


def test_accumulation_and_training_loss_scoring() -> None:
    """With accumulate=2 each counted step is 2 forward passes; without a val_loader trials score on training loss."""
    train, _ = _regression_loaders()
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    passes: list[int] = []
    hook = model.register_forward_hook(lambda m, *_: passes.append(1) if m.training else None)
    auto = _quiet(lambda: choose_lr0(model, opt, train, None, total_steps=400, make_scheduler=warmup_cosine,
                                     accumulate=2, budget=0.5, finder_kwargs={"num_steps": 40}))  # fmt: skip
    hook.remove()
    assert auto.finder.num_steps_run <= 40 and auto.trials
    assert all(math.isfinite(t.val_loss) for t in auto.trials)
    assert len(passes) == 2 * auto.extra_steps and auto.extra_steps <= 200
    assert "training loss" in " ".join(auto.log_lines)


@pytest.mark.parametrize("plateau_backoff, decades", [(None, 1.0), (0.5, 0.5)])
def test_the_range_test_inside_auto_backs_off_a_decade_from_a_plateau(monkeypatch: pytest.MonkeyPatch,
                                                                    plateau_backoff: float | None,
                                                                    decades: float) -> None:
    """lrkit.find_lr's default backs off half a decade from a plateau; lr0="auto" keeps a decade
    (``PLATEAU_BACKOFF_DECADES``, README: it hurt the held-out task where it applied)."""
    import lrkit.train.auto as auto_mod

    lrs = list(np.logspace(-4, 0, 60))
    plateau = FinderResult(lrs=lrs, losses=list(1 / (1 + np.asarray(lrs) / 1e-2)), start_lr=1e-4, end_lr=1.0,
                           num_steps=60)
    monkeypatch.setattr(lrkit.finder, "find_lr", lambda *a, **k: plateau)
    if plateau_backoff is not None:
        monkeypatch.setattr(auto_mod, "PLATEAU_BACKOFF_DECADES", plateau_backoff)
    train, val = _regression_loaders()
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    auto = _quiet(lambda: choose_lr0(model, opt, train, val, total_steps=50, make_scheduler=warmup_cosine, budget=0.3))
    lr_min = lrs[int(np.argmin(lrkit.finder.suggest.smooth_curve(np.asarray(plateau.losses))))]
    assert auto.trials == [] and auto.lr == pytest.approx(lr_min / 10**decades, rel=1e-9)
    assert plateau.suggestion == pytest.approx(lr_min / 10**0.5, rel=1e-9)  # the finder's own default
    assert auto.to_dict()["suggestion"] == pytest.approx(auto.lr)
