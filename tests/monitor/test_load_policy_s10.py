"""A monitor state loaded into a model whose tensors live elsewhere (another device after
``torch.load(map_location="cpu")``, or another floating dtype) rolls back optimizer state that fits the parameters, as
``optimizer.load_state_dict`` would (session 10). On this CPU machine the dtype is the visible half of the policy."""

from __future__ import annotations

import io

import torch

import lrkit


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, mon: lrkit.Monitor, x: torch.Tensor,
          y: torch.Tensor, nan: bool = False) -> None:
    loss = torch.nn.functional.mse_loss(model(x), y) * (float("nan") if nan else 1.0)
    loss.backward()
    mon.after_backward(loss)
    opt.step()
    mon.after_step()
    opt.zero_grad()


def test_a_rollback_after_loading_into_a_float64_model_keeps_adam_state_in_float64() -> None:
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    m = _net()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    mon = lrkit.Monitor(m, opt, grad_every=1)
    for _ in range(105):  # past the healthy snapshot's first refresh (every 100 steps): it holds Adam's state
        _step(m, opt, mon, x, y)
    assert mon.state_dict(snapshot=True)["healthy"]["opt_state"]
    buf = io.BytesIO()
    torch.save({"m": m.state_dict(), "o": opt.state_dict(), "mon": mon.state_dict(snapshot=True)}, buf)
    buf.seek(0)
    ck = torch.load(buf, map_location="cpu", weights_only=True)

    m2 = _net().double()
    opt2 = torch.optim.Adam(m2.parameters(), lr=1e-3)
    m2.load_state_dict(ck["m"])
    opt2.load_state_dict(ck["o"])  # torch casts the state to the parameters' dtype (and device)
    mon2 = lrkit.Monitor(m2, opt2, grad_every=1)
    mon2.load_state_dict(ck["mon"])
    x2, y2 = x.double(), y.double()
    _step(m2, opt2, mon2, x2, y2, nan=True)  # a rollback to the loaded snapshot
    assert mon2.rollbacks == 1
    dtypes = {k: t.dtype for s in opt2.state.values() for k, t in s.items() if torch.is_tensor(t)}
    assert dtypes["exp_avg"] == dtypes["exp_avg_sq"] == torch.float64
    assert dtypes["step"] == torch.float32  # Adam's step count stays as torch keeps it (not cast)
    _step(m2, opt2, mon2, x2, y2)  # the next step runs on that state
    assert all(torch.isfinite(p).all() for p in m2.parameters())
