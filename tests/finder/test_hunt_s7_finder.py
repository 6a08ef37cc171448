"""Bug hunt on s7's find_lr changes: the user's GradScaler put back whole, LBFGS steps without curvature history.

No bug found here; these pin the promises against the inputs a user hits. Known answers: a twin scaler / optimizer /
model that never saw find_lr (the user's next training step after find_lr must equal the twin's, bit for bit), and
LBFGS's own ``state_dict()`` before the call.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch

import lrkit

F = torch.nn.functional


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, 96, 16)]


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _two_opt_step(model: torch.nn.Sequential, o1: torch.optim.Optimizer, o2: torch.optim.Optimizer,
                  scaler: torch.amp.GradScaler, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """One fp16-style step of a model trained by two optimizers sharing one scaler (GAN / two-part models)."""
    o1.zero_grad(set_to_none=True)
    o2.zero_grad(set_to_none=True)
    scaler.scale(F.mse_loss(model(batch[0]), batch[1])).backward()
    scaler.unscale_(o1)
    torch.nn.utils.clip_grad_norm_(model[0].parameters(), 1.0)
    scaler.step(o1)
    scaler.step(o2)
    scaler.update()


def _setup() -> tuple[torch.nn.Sequential, torch.optim.Optimizer, torch.optim.Optimizer, torch.amp.GradScaler]:
    m = _model()
    o1 = torch.optim.SGD(m[0].parameters(), lr=0.01, momentum=0.9)
    o2 = torch.optim.Adam(m[2].parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=2)
    for batch in _data()[:3]:
        _two_opt_step(m, o1, o2, scaler, batch)
    return m, o1, o2, scaler


@pytest.mark.parametrize("calls", [1, 2])
def test_a_scaler_shared_by_two_optimizers_comes_back_as_it_was(calls: int) -> None:
    m, o1, o2, scaler = _setup()
    twin_m, twin_o1, twin_o2, twin_scaler = _setup()
    before = scaler.state_dict()
    assert before["scale"] == 2.0**9  # grown once: the test starts from the scale training reached
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short-curve notes
        for _ in range(calls):  # twice in a row: the second call must see the first one's restored scaler
            r = lrkit.find_lr(m, o1, _data(), loss_fn=F.mse_loss, num_steps=12, amp="fp16", scaler=scaler)
            assert len(r.losses) >= 2
    assert scaler.state_dict() == before
    assert dict(scaler._per_optimizer_states) == dict(twin_scaler._per_optimizer_states) == {}
    # the next step of the user's loop, on both optimizers, is the twin's step bit for bit
    batch = _data()[4]
    _two_opt_step(m, o1, o2, scaler, batch)
    _two_opt_step(twin_m, twin_o1, twin_o2, twin_scaler, batch)
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), twin_m.parameters()))
    assert scaler.state_dict() == twin_scaler.state_dict()


def test_a_fresh_scaler_stays_lazy() -> None:
    """A scaler never used yet makes its scale tensor at the first ``scale()``: find_lr leaves it unmade."""
    m = _model()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lrkit.find_lr(m, opt, _data(), loss_fn=F.mse_loss, num_steps=12, amp="fp16", scaler=scaler)
    assert scaler._scale is None and scaler._growth_tracker is None and scaler.get_scale() == 2.0**10


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _trained_lbfgs(history_size: int) -> tuple[torch.nn.Sequential, torch.optim.LBFGS]:
    m = _model()
    opt = torch.optim.LBFGS(m.parameters(), lr=0.5, history_size=history_size, max_iter=4)
    for batch in _data()[:3]:
        def closure(batch: tuple[torch.Tensor, torch.Tensor] = batch) -> torch.Tensor:
            opt.zero_grad()
            loss = F.mse_loss(m(batch[0]), batch[1])
            loss.backward()
            return loss
        opt.step(closure)
    return m, opt


class Boom(Exception):
    pass


@pytest.mark.parametrize("fail", [False, True], ids=["completed", "exception"])
@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_lbfgs_history_comes_back_bit_for_bit(fail: bool, accumulation_steps: int) -> None:
    m, opt = _trained_lbfgs(history_size=3)
    state = opt.state[opt._params[0]]
    assert state["n_iter"] == 12 and len(state["old_dirs"]) == 3  # a full history: the pairs were trimmed
    before = copy.deepcopy(opt.state_dict())
    params = [p.detach().clone() for p in m.parameters()]
    calls = {"n": 0}

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if fail and calls["n"] == 25:  # inside an LBFGS closure, mid-test
            raise Boom("loss failed")
        return F.mse_loss(out, y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fail:
            with pytest.raises(Boom):
                lrkit.find_lr(m, opt, _data(), loss_fn=loss_fn, num_steps=20, accumulation_steps=accumulation_steps)
        else:
            lrkit.find_lr(m, opt, _data(), loss_fn=loss_fn, num_steps=20, accumulation_steps=accumulation_steps)
    assert calls["n"] >= 25
    assert _equal(opt.state_dict(), before)
    assert all(torch.equal(a, b) for a, b in zip(params, m.parameters()))


def test_lbfgs_steps_of_the_range_test_ignore_the_users_history() -> None:
    """The curve is the same whether the user's LBFGS had trained (with history) or not: each step starts afresh."""
    m, opt = _trained_lbfgs(history_size=5)
    fresh_m = copy.deepcopy(m)
    fresh_opt = torch.optim.LBFGS(fresh_m.parameters(), lr=0.5, history_size=5, max_iter=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = lrkit.find_lr(m, opt, _data(), loss_fn=F.mse_loss, num_steps=15, end_lr=1.0)
        b = lrkit.find_lr(fresh_m, fresh_opt, _data(), loss_fn=F.mse_loss, num_steps=15, end_lr=1.0)
    assert a.losses == b.losses and len(a.losses) > 2
    assert len(fresh_opt.state) == 0  # no history made up for the user's untouched optimizer
