"""Session 15 (reported by hunt s15b): optimizers whose step size lives in their state, not in ``group["lr"]``.

``torch.optim.Rprop`` reads ``lr`` only to set each parameter's first step size and adapts it by itself: a range test
over it changed nothing after the first step, and two sweeps over different ranges gave the same curve and different
"suggestions". It is now refused with the reason. ``torch.optim.ASGD`` recomputes its ``eta`` from ``lr`` after each
step, so each range-test step trained at the previous step's LR; the range test now gives ``eta`` the LR it writes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lrkit
from lrkit.train.auto import choose_lr0


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = x @ torch.randn(10, 1, generator=g)
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))


@pytest.mark.parametrize("foreach", [False, True])
def test_find_lr_refuses_rprop_says_why_and_touches_nothing(foreach: bool) -> None:
    model = _model()
    opt = torch.optim.Rprop(model.parameters(), lr=0.01, foreach=foreach)
    x, y = _data()[0]
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()  # a stepped Rprop: its step sizes are in its state
    before = copy.deepcopy((model.state_dict(), opt.state_dict()))
    with pytest.raises(ValueError, match=r"find_lr cannot sweep the learning rate of torch.optim.Rprop.*step_size"):
        lrkit.find_lr(model, opt, _data(), num_steps=20)
    assert all(torch.equal(v, before[0][k]) for k, v in model.state_dict().items())
    after = opt.state_dict()
    assert after["param_groups"] == before[1]["param_groups"]
    for i, st in after["state"].items():
        assert all(torch.equal(v, before[1]["state"][i][k]) for k, v in st.items())


def test_choose_lr0_and_train_refuse_rprop_with_lr0_auto_and_train_it_with_an_explicit_lr0(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.Rprop(model.parameters(), lr=0.01)
    data = _data()
    with pytest.raises(ValueError, match=r"choose_lr0 \(lr0='auto'\) cannot sweep.*Rprop"):
        choose_lr0(model, opt, data, data[:2], total_steps=300,
                   make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0))
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])
    train_set, val_set = TensorDataset(x[:192], y[:192]), TensorDataset(x[192:], y[192:])
    with pytest.raises(ValueError, match=r"Rprop.*explicit lr0"):
        lrkit.train(_model(), data=(train_set, val_set), epochs=40, batch=8, nbs=8, lr0="auto",
                    optimizer=torch.optim.Rprop, project=tmp_path, name="auto", verbose=False, plots=False)
    r = lrkit.train(_model(), data=(train_set, val_set), epochs=2, batch=32, lr0=0.01, optimizer=torch.optim.Rprop,
                    project=tmp_path, name="explicit", verbose=False, plots=False)
    assert len(r.history) == 2


def test_find_lr_steps_asgd_at_the_lr_it_writes() -> None:
    """ASGD with ``lambd=0`` takes plain SGD steps of size ``eta``, and ``eta`` is ``lr``: its range-test curve must be
    plain SGD's. Before the fix every step used the previous step's LR (the curve lagged one step behind)."""
    curves = []
    for make in (lambda p: torch.optim.SGD(p, lr=0.01), lambda p: torch.optim.ASGD(p, lr=0.01, lambd=0.0)):
        model = _model()
        opt = make(model.parameters())
        for x, y in _data()[:2]:  # a stepped optimizer: ASGD has its eta in state
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        state = {k: v.clone() for k, v in opt.state[model[0].weight].items() if isinstance(v, torch.Tensor)}
        r = lrkit.find_lr(model, opt, _data(), loss_fn=nn.functional.mse_loss, start_lr=1e-4, end_lr=1.0,
                          num_steps=25)
        curves.append(r.losses)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
        assert all(torch.equal(opt.state[model[0].weight][k], v) for k, v in state.items())  # eta restored too
    n = min(map(len, curves))
    assert n >= 15
    torch.testing.assert_close(torch.tensor(curves[1][:n]), torch.tensor(curves[0][:n]), rtol=1e-5, atol=1e-6)
