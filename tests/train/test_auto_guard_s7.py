"""Known-answer tests for lr0="auto"'s guard margin (``lrkit.train.auto.STEP_DOWN_MARGIN``).

The guard steps down from the suggestion ``s`` to ``s/2, s/4, ...`` while the lower candidate wins the short trial.
With a margin ``m`` a lower candidate must score below ``(1 - m) ×`` the higher one's loss; ``m = inf`` never follows
a win (a diverged suggestion still steps down). ``m = 0`` is the default and today's behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lrkit.train import auto as auto_mod
from lrkit.train.auto import Trial, _guard, choose_lr0


def _scripted(scores: dict[int, float]) -> tuple[Callable[[float], Trial], list[float]]:
    """A fake trial runner for the suggestion ``s = 1.0``: candidate ``2**-k`` scores ``scores[k]``."""
    tried: list[float] = []

    def run(c: float) -> Trial:
        tried.append(c)
        k = round(-math.log2(c))
        return Trial(c, scores[k], 10)

    return run, tried


def test_the_default_never_steps_down_on_a_win() -> None:
    # since the sixth fresh set's pre-registered test: a short-trial win of a lower LR is not followed
    assert auto_mod.STEP_DOWN_MARGIN == math.inf and auto_mod.DIP_AND_PASSES is True
    run, tried = _scripted({0: 1.000, 1: 0.5, 2: 0.1})  # s/2 and s/4 would win by 50% and 80%
    lr, how = _guard(1.0, run, 3, [10.0])
    assert lr == 1.0 and tried == pytest.approx([1.0]) and "STEP_DOWN_MARGIN=inf" in how


def test_a_zero_margin_follows_a_within_noise_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", 0.0)  # the guard before the sixth fresh set's test
    run, tried = _scripted({0: 1.000, 1: 0.995, 2: 1.2})  # s/2 wins by 0.5%: followed
    lr, how = _guard(1.0, run, 3, [10.0])
    assert tried == pytest.approx([1.0, 0.5, 0.25]) and lr < 1.0 and "lower LR scored better" in how


def test_a_margin_keeps_a_within_noise_win_from_stepping_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", 0.01)
    run, tried = _scripted({0: 1.000, 1: 0.995, 2: 0.99})  # 0.5% better, inside the 1% margin
    lr, how = _guard(1.0, run, 3, [10.0])
    assert lr == 1.0 and tried == pytest.approx([1.0, 0.5]) and "1.0% margin" in how


def test_a_clear_win_still_steps_down_and_a_within_margin_one_below_is_a_tie(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", 0.02)
    # s/2 beats s by 5% (> 2%); s/4 beats s/2 by 0.5% (< 2%): a tie, which goes to the higher LR, s/2
    run, tried = _scripted({0: 1.0, 1: 0.95, 2: 0.945})
    lr, how = _guard(1.0, run, 3, [10.0])
    assert tried == pytest.approx([1.0, 0.5, 0.25]) and lr == 0.5 and "won by the 2.0% margin" in how


def test_a_margin_winner_with_worse_neighbours_is_refined_by_the_parabola(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", 0.02)
    # scores 1 + (u - u*)^2 in u = log2(lr / s) with u* = -1.25: the parabola's vertex is exactly s * 2**-1.25
    star = -1.25
    run, _ = _scripted({k: 1.0 + (-k - star) ** 2 for k in range(3)})
    lr, how = _guard(1.0, run, 3, [10.0])
    assert lr == pytest.approx(2.0**star, rel=1e-9) and "parabola" in how


def test_infinite_margin_never_steps_down_on_a_win_but_still_on_divergence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", math.inf)
    run, tried = _scripted({0: 1.0, 1: 0.1, 2: 0.01})  # lower candidates would win by 90%
    lr, how = _guard(1.0, run, 3, [10.0])
    assert lr == 1.0 and tried == [1.0] and "used as is" in how
    run, tried = _scripted({0: math.inf, 1: math.inf, 2: 0.5})  # s and s/2 diverge: step down to s/4
    lr, how = _guard(1.0, run, 3, [10.0])
    assert tried == pytest.approx([1.0, 0.5, 0.25]) and lr == pytest.approx(0.25) and "diverged" in how


def test_choose_lr0_with_infinite_margin_keeps_the_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: with ``STEP_DOWN_MARGIN = inf`` the chosen LR is the range test's suggestion (one trial run)
    unless that trial diverges, and the extra compute is the range test plus that one trial."""
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", math.inf)
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(512, 1)
    train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=128)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def cosine(o: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.CosineAnnealingLR:
        return torch.optim.lr_scheduler.CosineAnnealingLR(o, steps)

    auto = choose_lr0(model, opt, train, val, total_steps=600, make_scheduler=cosine)
    suggestion = auto.to_dict()["suggestion"]
    assert len(auto.trials) >= 1 and math.isfinite(auto.trials[0].val_loss)
    assert len(auto.trials) == 1 and auto.lr == suggestion
    assert auto.extra_steps == auto.finder.num_steps_run + auto.trials[0].steps <= 0.3 * 600


@pytest.mark.parametrize("bad", [-0.01, math.nan, "0.02", True])
def test_a_bad_margin_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch, bad: object) -> None:
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", bad)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(4, 2), torch.randn(4, 1))]
    with pytest.raises(ValueError, match=r"STEP_DOWN_MARGIN=.* must be a number >= 0"):
        choose_lr0(model, opt, data, data, total_steps=100, make_scheduler=lambda o, n: None)
