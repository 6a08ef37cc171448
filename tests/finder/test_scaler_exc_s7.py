"""find_lr with the user's GradScaler, when the test stops on an exception mid-step.

The promise (README "Find the learning rate", ``scaler`` row): the test runs at the scale the user's training reached
and the scaler's state is put back. On the exception path that must include the scaler's per-optimizer stage: an
exception between ``unscale_`` and ``update`` used to leave the user's optimizer marked UNSCALED, so the user's next
``scaler.unscale_(opt)`` raised "unscale_() has already been called on this optimizer since the last update()".

Known answers: the scaler's ``state_dict()`` and its per-optimizer stage before the call; the user's own next
training step, run on the scaler afterwards, matches the same step run on an identical scaler that never saw find_lr.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

import lrkit


class Boom(RuntimeError):
    pass


class StepBoomSGD(torch.optim.SGD):
    """SGD whose ``step`` raises on its ``fail_at``-th call: after the scaler has unscaled its gradients."""

    def __init__(self, params: Any, fail_at: int, **kw: Any) -> None:
        super().__init__(params, **kw)
        self.fail_at = fail_at
        self.calls = 0

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        self.calls += 1
        if self.calls == self.fail_at:
            raise Boom("optimizer step failed")
        return super().step(closure)


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, 96, 16)]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The user's own fp16-style step: scale, backward, unscale_, clip, step, update."""
    opt.zero_grad(set_to_none=True)
    x, y = batch
    scaler.scale(torch.nn.functional.mse_loss(model(x), y)).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(opt)
    scaler.update()


def _stage(scaler: torch.amp.GradScaler, opt: torch.optim.Optimizer) -> Any:
    return scaler._per_optimizer_states[id(opt)]["stage"]


def _user_setup(warm: bool) -> tuple[torch.nn.Module, StepBoomSGD, torch.amp.GradScaler]:
    """A model, an optimizer and a CPU GradScaler; ``warm``: the user has trained two steps (scale 2**9, tracker 2)."""
    model = _model()
    opt = StepBoomSGD(model.parameters(), fail_at=10**9, lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=3)
    assert scaler.is_enabled()  # the CPU GradScaler is a real one, not a disabled no-op
    if warm:
        for batch in _data()[:5]:
            _train_step(model, opt, scaler, batch)
        assert scaler.get_scale() == 2.0**9 and scaler.state_dict()["_growth_tracker"] == 2
    return model, opt, scaler


@pytest.mark.parametrize("warm", [True, False], ids=["trained", "fresh"])
@pytest.mark.parametrize("where", ["optimizer_step", "optimizer_step_clipped", "step_fn"])
def test_an_exception_mid_step_gives_the_scaler_back_as_it_was(where: str, warm: bool) -> None:
    model, opt, scaler = _user_setup(warm)
    twin_model, twin_opt, twin_scaler = _user_setup(warm)  # the same user, who never called find_lr
    before = scaler.state_dict()
    stage_before = _stage(scaler, opt)
    calls = {"n": 0}

    def step_fn(m: torch.nn.Module, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        if where == "step_fn" and calls["n"] == 4:
            raise Boom("step_fn failed")
        x, y = batch
        return torch.nn.functional.mse_loss(m(x), y)

    if where.startswith("optimizer_step"):
        opt.fail_at = opt.calls + 4  # the 4th step of the test: after scaler.unscale_, before scaler.update
    with pytest.raises(Boom):
        lrkit.find_lr(model, opt, _data(), step_fn=step_fn, scaler=scaler, num_steps=20, start_lr=1e-4,
                      end_lr=1.0, max_grad_norm=1.0 if where == "optimizer_step_clipped" else None)
    opt.fail_at = 10**9
    assert scaler.state_dict() == before  # scale, growth tracker and factors as the user had them
    assert _stage(scaler, opt) is stage_before  # READY: not left UNSCALED by the interrupted step
    # the user's own next steps work, and do exactly what they would have done without the test
    for batch in _data()[:4]:
        _train_step(model, opt, scaler, batch)
        _train_step(twin_model, twin_opt, twin_scaler, batch)
    assert scaler.state_dict() == twin_scaler.state_dict()
    for a, b in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(a, b)


def test_an_interrupt_between_unscale_and_update_in_the_users_own_clip() -> None:
    """A KeyboardInterrupt (Ctrl-C) during the test, from the progress callback, is an exception path too."""
    model, opt, scaler = _user_setup(True)
    before = copy.deepcopy(scaler.state_dict())

    def progress(step: int, total: int, lr: float, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lrkit.find_lr(model, opt, _data(), scaler=scaler, num_steps=20, start_lr=1e-4, end_lr=1.0,
                      max_grad_norm=1.0, progress=progress)
    assert scaler.state_dict() == before
    _train_step(model, opt, scaler, _data()[0])  # no "unscale_() has already been called"
