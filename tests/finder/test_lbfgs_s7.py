"""find_lr with torch.optim.LBFGS: the curve must show the loss against the LR, as for any other optimizer.

Bug: LBFGS keeps curvature pairs (s, y) and its scale H_diag = s·y / y·y from step to step. In a range test the first
steps move by ~1e-7..1e-5 while y, the gradient change between two different batches, is dominated by the batches'
difference, so H_diag collapsed to ~1e-9 and every later step, even at lr=1, moved nothing: the curve was flat (1.7%)
until it blew up. The test now starts LBFGS afresh at every step (its state is put back afterwards), so each step is a
quasi-Newton step at the LR being tested, built from that step's own closure evaluations of the same micro-batches.

Known answers: a hand-written loop that clears LBFGS's state before each step; a mini-batch problem the fixed test
learns on (the flat curve's 1.7% drop is the bug's signature); a line search makes the LR only its first trial step.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lrkit


def _data(batch: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = torch.sin(x @ torch.randn(8, 1, generator=g))
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, 512, batch)]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))


def test_lbfgs_on_mini_batches_is_not_flat() -> None:
    model = _model()
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "barely moved" warning: that was the bug
        r = lrkit.find_lr(model, opt, _data(), num_steps=40, start_lr=1e-5, end_lr=100.0)
    s = np.asarray(r.smoothed_losses)
    assert s.min() < 0.8 * s[0]  # it learned (the stale-curvature test: 1.7% below its start)
    assert r.stop_reason == "diverged" and r.lrs[-1] > 1.0  # and blew up only at large LRs
    assert 1e-3 < r.suggestion < r.lrs[-1]
    assert not opt.state  # the user's (empty) LBFGS state is back


@pytest.mark.parametrize("max_iter", [1, 4])
def test_lbfgs_matches_a_hand_written_loop_that_starts_each_step_afresh(max_iter: int) -> None:
    data = _data(128)
    model = _model()
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter, history_size=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 12 steps at small LRs: "too flat to judge" is expected here
        r = lrkit.find_lr(model, opt, data, num_steps=12, start_lr=1e-3, end_lr=1.0, diverge_factor=1e9)
    expected = []
    for i, lr in enumerate(r.lrs):
        opt.param_groups[0]["lr"] = lr
        x, y = data[i % len(data)]
        expected.append(torch.nn.functional.mse_loss(model(x), y).item())

        def closure(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss

        opt.state.clear()  # the known answer: no curvature pair spans two steps (two batches, two LRs)
        opt.step(closure)
    np.testing.assert_allclose(r.losses, expected, rtol=1e-5)
    assert expected[8] < expected[4] < expected[0]  # LBFGS did step: the same batch (every 4th) scores lower


def test_lbfgs_history_from_the_users_training_is_put_back() -> None:
    data = _data()
    model = _model()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3)
    for x, y in data[:2]:
        def closure(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss
        opt.step(closure)
    state = opt.state[opt.param_groups[0]["params"][0]]
    n_iter, dirs = state["n_iter"], [d.clone() for d in state["old_dirs"]]
    lrkit.find_lr(model, opt, data, num_steps=10, start_lr=1e-4, end_lr=1.0)
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert state["n_iter"] == n_iter and len(state["old_dirs"]) == len(dirs)
    assert all(torch.equal(a, b) for a, b in zip(state["old_dirs"], dirs))


def test_lbfgs_with_a_line_search_warns_that_the_lr_is_only_a_first_trial_step() -> None:
    model = _model()
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, line_search_fn="strong_wolfe")
    with pytest.warns(UserWarning, match=r"LBFGS.*line_search_fn='strong_wolfe'.*first trial step"):
        r = lrkit.find_lr(model, opt, _data(), num_steps=12, start_lr=1e-3, end_lr=10.0)
    assert any("strong_wolfe" in w for w in r.warnings)  # in the record too


def test_lbfgs_without_a_line_search_gives_no_such_warning() -> None:
    model = _model()
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        lrkit.find_lr(model, opt, _data(), num_steps=12, start_lr=1e-3, end_lr=10.0)
    assert not [w for w in seen if "line search" in str(w.message)]
