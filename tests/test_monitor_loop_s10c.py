"""A practitioner's own training loop around ``lrkit.Monitor``: AMP without ``unscale_``, numpy losses and numbers.

Each test failed before its fix:

- torch's canonical AMP recipe (``scaler.scale(loss).backward(); scaler.step(opt); scaler.update()``, no
  ``unscale_``) crashed with torch's ``AssertionError: No inf checks were recorded for this optimizer`` at the first
  step the monitor neutralised, and the monitor's checks read gradient norms multiplied by the loss scale;
- ``after_backward(np.array([v]))`` (a one-element numpy array, which the README lists as valid) raised numpy's
  ``TypeError: only 0-dimensional arrays can be converted to Python scalars`` — after counting the step;
- ``backoff=np.float32(0.5)`` was refused as "not a number in (0, 1)".
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import lrkit
from lrkit.monitor import MonitorWarning


def _setup(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


_X = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
_Y = _X[:, :1] * 2


def _amp_run(*, unscale_first: bool, steps: int = 40, bad: int = 25, init_scale: float = 2.0**10
             ) -> tuple[torch.nn.Module, lrkit.Monitor, torch.amp.GradScaler]:
    """The user's AMP loop (float32 model on CPU: the scaler multiplies the loss, as it does on a GPU)."""
    model, opt = _setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    monitor = lrkit.Monitor(model, opt, grad_scaler=scaler, grad_every=1)
    for t in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(_X), _Y)
        if t == bad:
            loss = loss * math.nan
        scaler.scale(loss).backward()
        if unscale_first:
            scaler.unscale_(opt)  # the documented order
        monitor.after_backward(loss)
        scaler.step(opt)
        scaler.update()
        monitor.after_step()
    return model, monitor, scaler


def test_amp_recipe_without_unscale_survives_a_neutralised_step_like_the_documented_order() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonitorWarning)
        ref_model, ref_mon, ref_scaler = _amp_run(unscale_first=True)
        model, monitor, scaler = _amp_run(unscale_first=False)  # AssertionError from scaler.step before the fix
    assert [(e.step, e.check, e.action) for e in monitor.events] == [(25, "non_finite", "rollback")]
    assert [e.to_dict() for e in monitor.events] == [e.to_dict() for e in ref_mon.events]
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert scaler.state_dict() == ref_scaler.state_dict()
    # the checks read the true gradient norms, not ones multiplied by the loss scale (1024 here)
    assert list(monitor.record.window("grad_norm", 10)) == list(ref_mon.record.window("grad_norm", 10))


def test_amp_without_unscale_records_unscaled_gradient_norms() -> None:
    model, opt = _setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    monitor = lrkit.Monitor(model, opt, grad_scaler=scaler, grad_every=1)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(_X), _Y)
    scaler.scale(loss).backward()
    scaled = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    monitor.after_backward(loss)
    true = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    assert true == pytest.approx(scaled / 2.0**16, rel=1e-6)
    assert monitor.record.window("grad_norm", 1)[-1] == pytest.approx(true, rel=1e-6)
    scaler.step(opt)  # does not unscale twice (torch would raise), and steps
    scaler.update()
    assert monitor.after_step() is False


def test_a_disabled_scaler_or_an_unscaled_loop_is_left_alone() -> None:
    model, opt = _setup()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    monitor = lrkit.Monitor(model, opt, grad_scaler=scaler)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(_X), _Y)
    scaler.scale(loss).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    monitor.after_backward(loss)
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))
    scaler.step(opt)
    scaler.update()
    monitor.after_step()
    # a scaler given to the monitor but not used by the loop (no scale() yet): nothing to unscale, no error
    model, opt = _setup()
    monitor = lrkit.Monitor(model, opt, grad_scaler=torch.amp.GradScaler("cpu"))
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(_X), _Y)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    assert monitor.after_backward(loss) is True
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))


def test_a_bad_loss_under_amp_unscales_nothing() -> None:
    """A refused loss leaves the monitor — and the user's scaler — as they were: the loop can still unscale_."""
    model, opt = _setup()
    scaler = torch.amp.GradScaler("cpu")
    monitor = lrkit.Monitor(model, opt, grad_scaler=scaler)
    opt.zero_grad()
    out = model(_X)
    scaler.scale(torch.nn.functional.mse_loss(out, _Y)).backward()
    with pytest.raises(ValueError, match="shape"):
        monitor.after_backward(torch.ones(3))
    assert monitor.step == -1
    scaler.unscale_(opt)  # would raise "unscale_() has already been called" had the monitor unscaled


@pytest.mark.parametrize("grad_every", [1, 64])  # the full path and the fast path
def test_one_element_numpy_array_loss_of_shape_1(grad_every: int) -> None:
    model, opt = _setup()
    twin_model, twin_opt = _setup()
    monitor = lrkit.Monitor(model, opt, grad_every=grad_every)
    twin = lrkit.Monitor(twin_model, twin_opt, grad_every=grad_every)
    for _ in range(70):
        for m, o, mon, wrap in ((model, opt, monitor, lambda v: np.array([v], dtype=np.float32)),
                                (twin_model, twin_opt, twin, lambda v: np.float32(v))):
            o.zero_grad()
            loss = torch.nn.functional.mse_loss(m(_X), _Y)
            loss.backward()
            assert mon.after_backward(wrap(loss.item())) is True  # TypeError from numpy before the fix
            o.step()
            mon.after_step()
    assert monitor.step == twin.step == 69
    assert monitor.record.start_loss == twin.record.start_loss == float(np.float32(monitor.record.start_loss))
    assert list(monitor.record.window("loss", 64)) == list(twin.record.window("loss", 64))


def test_numpy_array_loss_with_a_nan_is_a_divergence_not_a_crash() -> None:
    model, opt = _setup()
    monitor = lrkit.Monitor(model, opt)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(_X), _Y)
    loss.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonitorWarning)
        assert monitor.after_backward(np.array([math.nan])) is False
    opt.step()
    monitor.after_step()
    assert [(e.step, e.check) for e in monitor.events] == [(0, "non_finite")]


def test_numpy_floats_are_numbers_for_backoff_and_val_min_share() -> None:
    model, opt = _setup()
    monitor = lrkit.Monitor(model, opt, backoff=np.float32(0.5), val_backoff=np.float32(0.25),
                            val_min_share=np.float32(0.125))
    assert (monitor.backoff, monitor.val_backoff) == (0.5, 0.25)
    assert type(monitor.backoff) is float
    assert [c.min_share for c in monitor.checks if c.name == "val_rising"] == [0.125]
    for bad in (np.float32(1.0), np.float32(0.0), True, "0.5"):
        with pytest.raises(ValueError, match=r"backoff=.* must be a number in \(0, 1\)"):
            lrkit.Monitor(model, opt, backoff=bad)


def _loop(model: torch.nn.Module, opt: torch.optim.Optimizer, monitor: lrkit.Monitor, *, backward_first: bool,
          steps: int = 70) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(_X), _Y)
        if backward_first:
            loss.backward()
            monitor.after_backward(loss)
        else:
            monitor.after_backward(loss)  # the order mistake: no gradient exists yet
            loss.backward()
        opt.step()
        monitor.after_step()


def test_after_backward_before_backward_warns_once_naming_the_fix() -> None:
    model, opt = _setup()
    monitor = lrkit.Monitor(model, opt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _loop(model, opt, monitor, backward_first=False)
    found = [w for w in caught if "found no gradient" in str(w.message)]
    assert len(found) == 1  # once per monitor, not once per full step
    message = str(found[0].message)
    assert "step 0" in message and "4 trainable parameters" in message and "after loss.backward()" in message
    assert found[0].filename == __file__  # points at the user's call
    assert list(monitor.record.window("grad_norm", 2)) == [0.0, 0.0]  # what the checks would otherwise see


def test_no_gradient_warning_for_the_right_order_or_a_frozen_optimizer() -> None:
    model, opt = _setup()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _loop(model, opt, lrkit.Monitor(model, opt), backward_first=True)
        frozen, frozen_opt = _setup()
        for p in frozen.parameters():
            p.requires_grad_(False)
        monitor = lrkit.Monitor(frozen, frozen_opt)
        monitor.after_backward(torch.tensor(1.0))  # nothing trainable: nothing to warn about
        monitor.after_step()
    assert [str(w.message) for w in caught if "found no gradient" in str(w.message)] == []
