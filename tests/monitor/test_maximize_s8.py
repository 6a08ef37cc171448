"""Monitor with ``maximize=True`` optimizers: the loss is read negated (find_lr's convention), so a maximised run and
its minimising twin (objective negated, same model/data) see the same events at the same steps."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import lrkit
from lrkit.monitor.monitor import Monitor


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(64, 1, generator=g)
    return x, y


def _run(*, maximize: bool, lr: float, steps: int, opt_cls: type[torch.optim.Optimizer] = torch.optim.SGD,
         stop_at: int | None = None, **monitor_kw: Any) -> tuple[Monitor, torch.nn.Module, list[float]]:
    """Train Linear(4, 1) on fixed data: minimise the MSE, or (maximize=True) ascend the objective -MSE."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = opt_cls(model.parameters(), lr=lr, maximize=maximize)
    monitor = Monitor(model, opt, **monitor_kw)
    x, y = _data()
    passed: list[float] = []
    for i in range(steps):
        if stop_at is not None and i == stop_at:
            break
        opt.zero_grad()
        mse = torch.nn.functional.mse_loss(model(x), y)
        value = -mse if maximize else mse
        value.backward()
        passed.append(value.item())
        monitor.after_backward(value)
        opt.step()
        if monitor.after_step():
            break
    return monitor, model, passed


def _strip(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if k != "loss_sign"}


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.filterwarnings("ignore::lrkit.monitor.actions.MonitorWarning")
@pytest.mark.parametrize("opt_cls", [torch.optim.SGD, torch.optim.Adam])
def test_exploding_maximised_run_is_caught_at_the_same_step_as_its_minimising_twin(opt_cls: Any) -> None:
    lr = 1.5 if opt_cls is torch.optim.SGD else 20.0
    kw: dict[str, Any] = {"on_divergence": "warn", "on_explode": "warn"}  # let both runs go on, events recorded
    mini, m_model, m_passed = _run(maximize=False, lr=lr, steps=40, opt_cls=opt_cls, **kw)
    maxi, x_model, x_passed = _run(maximize=True, lr=lr, steps=40, opt_cls=opt_cls, **kw)
    assert max(m_passed[:6]) > 10 * m_passed[0]  # the minimising run does explode ...
    assert mini.events and mini.events[0].step <= 2  # ... and is caught at once
    # the twin passes the negated values, and the monitor reads them back as the same losses
    assert [-v for v in x_passed] == m_passed
    assert [(e.step, e.check, e.action) for e in maxi.events] == [(e.step, e.check, e.action) for e in mini.events]
    for a, b in zip(maxi.events, mini.events):
        assert a.values["loss_sign"] == -1.0 and "loss_sign" not in b.values
        assert all(_same(a.values[k], v) for k, v in b.values.items())
        assert "negated objective" in a.reason and "negated objective" not in b.reason
    for p, q in zip(x_model.parameters(), m_model.parameters()):
        assert torch.equal(p, q)


def test_exploding_maximised_run_rolls_back_as_its_twin_does() -> None:
    mini, m_model, _ = _run(maximize=False, lr=1.5, steps=60)
    maxi, x_model, _ = _run(maximize=True, lr=1.5, steps=60)
    assert mini.rollbacks >= 1 and mini.events[0].step <= 2
    assert (maxi.rollbacks, maxi.lr_scale, maxi.should_stop) == (mini.rollbacks, mini.lr_scale, mini.should_stop)
    assert [(e.step, e.check, e.action) for e in maxi.events] == [(e.step, e.check, e.action) for e in mini.events]
    for p, q in zip(x_model.parameters(), m_model.parameters()):
        assert torch.equal(p, q)


def test_healthy_maximised_run_raises_no_event() -> None:
    # every step full, so every check sees every step; the objective -MSE rises from about -14 towards -0.01, which a
    # monitor reading it as a loss to lower would call rising / above its start
    maxi, _, passed = _run(maximize=True, lr=0.05, steps=300, grad_every=1)
    assert passed[0] < -10 and passed[-1] > passed[0] / 100  # it did ascend, by more than 99% of the way
    assert maxi.events == [] and maxi.summary()["healthy"]
    assert maxi.loss_sign == -1.0
    assert maxi.record.start_loss == -passed[0] > 0
    assert maxi.record.last_loss == pytest.approx(-passed[-1])


def test_minimising_monitor_is_unchanged() -> None:
    mini, _, passed = _run(maximize=False, lr=0.05, steps=50, grad_every=1)
    assert mini.loss_sign == 1.0 and mini.events == []
    assert mini.record.start_loss == passed[0] and mini.record.last_loss == pytest.approx(passed[-1])


def test_mixed_maximize_groups_raise_naming_the_groups() -> None:
    a, b, c = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    model = torch.nn.Sequential(a, b, c)
    opt = torch.optim.SGD([{"params": a.parameters(), "maximize": True},
                           {"params": b.parameters(), "maximize": True},
                           {"params": c.parameters()}], lr=0.1)
    with pytest.raises(ValueError, match=r"group 0 has maximize=True, group 2 maximize=False") as err:
        Monitor(model, opt)
    assert "same maximize" in str(err.value)
    opt = torch.optim.Adam([{"params": a.parameters()}, {"params": b.parameters(), "maximize": True}], lr=0.1)
    with pytest.raises(ValueError, match=r"group 0 has maximize=False, group 1 maximize=True"):
        Monitor(model, opt)


def test_every_group_maximising_and_empty_groups_ignored() -> None:
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    opt = torch.optim.SGD([{"params": a.parameters(), "maximize": True},
                           {"params": b.parameters(), "maximize": True}], lr=0.1)
    assert Monitor(torch.nn.Sequential(a, b), opt).loss_sign == -1.0
    opt.add_param_group({"params": [], "maximize": False})  # no parameters: no direction to disagree on
    assert Monitor(torch.nn.Sequential(a, b), opt).loss_sign == -1.0


def test_validation_losses_are_read_negated() -> None:
    def events(values: list[float], maximize: bool) -> list[tuple[int, str, str]]:
        model = torch.nn.Linear(2, 1)
        m = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1, maximize=maximize))
        for v in values:
            m.after_validation(v)
        return [(e.step, e.check, e.action) for e in m.events]

    rising = [0.9, 0.7, 0.8, 0.9]  # a validation loss gone up: rollback
    assert events(rising, False)[-1][1:] == ("val_rising", "rollback")
    assert events([-v for v in rising], True) == events(rising, False)
    # a validation objective going up is improving when maximised (no event), and a rise when minimised
    improving = [0.6, 0.7, 0.8, 0.9]
    assert events(improving, True) == []
    assert events(improving, False)[-1][1:] == ("val_rising", "rollback")


def test_state_dict_round_trip_keeps_the_sign() -> None:
    full, _, _ = _run(maximize=True, lr=1.5, steps=60)
    half, model, _ = _run(maximize=True, lr=1.5, steps=60, stop_at=30)
    state = half.state_dict(snapshot=True)
    assert state["loss_sign"] == -1.0
    # resume in a new monitor over the same objects, and finish the run
    resumed = Monitor(model, half.optimizer)
    resumed.load_state_dict(state)
    x, y = _data()
    for _ in range(30, 60):
        half.optimizer.zero_grad()
        obj = -torch.nn.functional.mse_loss(model(x), y)
        obj.backward()
        resumed.after_backward(obj)
        half.optimizer.step()
        if resumed.after_step():
            break
    assert [(e.step, e.check, e.action) for e in resumed.events] == [(e.step, e.check, e.action) for e in full.events]
    assert resumed.rollbacks == full.rollbacks and resumed.lr_scale == full.lr_scale
    assert resumed.record.window("loss", 64) == full.record.window("loss", 64) and full.record.last_loss > 0


def test_state_dict_of_the_other_sign_is_refused() -> None:
    half, model, _ = _run(maximize=True, lr=0.05, steps=10)
    state = half.state_dict()
    minimiser = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.05))
    with pytest.raises(ValueError, match=r"loss_sign=-1\.0.*maximize=True.*maximize=False"):
        minimiser.load_state_dict(state)
    assert minimiser.step == -1  # refused: nothing changed
    older = {k: v for k, v in state.items() if k != "loss_sign"}  # saved before the sign was kept: loads
    again = Monitor(model, half.optimizer)
    again.load_state_dict(older)
    assert again.step == half.step and again.loss_sign == -1.0


@pytest.mark.filterwarnings("ignore:the loss barely moved")
def test_find_lr_and_monitor_agree_on_the_sign() -> None:
    # find_lr records the negated objective under maximize=True; the monitor's record holds the same quantity
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, maximize=True)
    x, y = _data()
    res = lrkit.find_lr(model, opt, [(x, y)], loss_fn=lambda out, t: -torch.nn.functional.mse_loss(out, t),
                        num_steps=10, start_lr=1e-7, end_lr=1e-6)
    start = torch.nn.functional.mse_loss(model(x), y).item()  # restored after the test: the starting MSE
    assert res.losses[0] == pytest.approx(start, rel=1e-4)
    m = Monitor(model, opt)
    opt.zero_grad()
    obj = -torch.nn.functional.mse_loss(model(x), y)
    obj.backward()
    m.after_backward(obj)
    assert m.record.start_loss == pytest.approx(res.losses[0], rel=1e-4)
    opt.step()
    m.after_step()
