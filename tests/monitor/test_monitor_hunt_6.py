"""Hunt 6: the monitor with the schedulers and optimizers users really have.

Schedule-free optimizers (``optimizer.train()``/``eval()``, counters in the param groups), lrkit's scheduler with a
param group added mid-run, every torch scheduler's back-off through a real rollback, and the gradient-accumulation
contract. ``schedulefree`` is optional (``pytest.importorskip``): CI needs it installed to run those tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as S

import lrkit
from _helpers import TINY_X as X  # noqa: F401
from _helpers import TINY_Y as Y  # noqa: F401
from _helpers import assert_same
from _helpers import tiny_loss as _loss
from _helpers import tiny_model as _model


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, monitor: lrkit.Monitor, sched: Any = None, *,
          bad: bool = False, call_step: bool = True) -> bool:
    opt.zero_grad()
    loss = _loss(model)
    loss.backward()
    take = monitor.after_backward(float("nan") if bad else loss)
    if call_step:
        opt.step()
    if sched is not None:
        sched.step()
    monitor.after_step()
    return take


def _groups(opt: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


def _opt_state(model: torch.nn.Module, opt: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [dict(opt.state[p]) for p in model.parameters()]


# ---------------------------------------------------------------------------------------------- schedule-free
def _schedule_free(kind: str, model: torch.nn.Module) -> torch.optim.Optimizer:
    sf = pytest.importorskip("schedulefree")
    if kind == "adamw":
        return sf.AdamWScheduleFree(model.parameters(), lr=0.05, warmup_steps=5)
    return sf.SGDScheduleFree(model.parameters(), lr=0.05, warmup_steps=5)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
@pytest.mark.parametrize("call_step", [True, False])
def test_a_skipped_schedule_free_step_leaves_its_group_counters_as_they_were(kind: str, call_step: bool) -> None:
    # schedule-free keeps k, weight_sum, lr_max in the param groups and advances them in step() even when no
    # parameter has a gradient; a skip must undo that too, and stepping or not on False must end the same
    model = _model()
    opt = _schedule_free(kind, model)
    opt.train()
    monitor = lrkit.Monitor(model, opt, on_divergence="skip", grad_every=1)
    for _ in range(3):
        _step(model, opt, monitor)
    params = [p.detach().clone() for p in model.parameters()]
    groups, state = _groups(opt), _opt_state(model, opt)
    assert _step(model, opt, monitor, bad=True, call_step=call_step) is False
    assert monitor.last_action == "skip"
    assert _groups(opt) == groups  # k, weight_sum, lr_max, scheduled_lr: as before the skipped step
    assert_same([p.detach() for p in model.parameters()], params)
    assert_same(_opt_state(model, opt), state)


def test_a_skip_keeps_what_the_scheduler_wrote_and_undoes_what_the_optimizer_wrote() -> None:
    pytest.importorskip("schedulefree")
    # the scheduler sets lr after the (neutralised) step: that stays; the optimizer's own counters go back
    model = _model()
    opt = _schedule_free("adamw", model)
    opt.train()
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    monitor = lrkit.Monitor(model, opt, sched, on_divergence="skip", grad_every=1)
    for _ in range(3):
        _step(model, opt, monitor, sched)
    before = _groups(opt)[0]
    _step(model, opt, monitor, sched, bad=True)
    after = _groups(opt)[0]
    assert after["lr"] == pytest.approx(before["lr"] * 0.5, rel=1e-12)  # the schedule's clock ran on
    assert (after["k"], after["weight_sum"], after["lr_max"]) == (before["k"], before["weight_sum"],
                                                                  before["lr_max"])


class CountingSGD(torch.optim.SGD):
    """SGD that counts its steps in the param groups, as schedule-free and D-Adaptation do."""

    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        for g in self.param_groups:
            g["calls"] = g.get("calls", 0) + 1
        return super().step(closure)


def test_a_key_the_optimizers_step_adds_to_a_group_is_removed_by_the_skip() -> None:
    model = _model()
    opt = CountingSGD(model.parameters(), lr=0.1)
    monitor = lrkit.Monitor(model, opt, on_divergence="skip", grad_every=1)
    _step(model, opt, monitor, bad=True)  # the first step is skipped: "calls" did not exist before it
    assert "calls" not in opt.param_groups[0]
    _step(model, opt, monitor)
    _step(model, opt, monitor, bad=True)
    assert opt.param_groups[0]["calls"] == 1


def _sf_run(validate: Callable[[torch.optim.Optimizer, lrkit.Monitor, float], None]) -> tuple[Any, ...]:
    model = _model()
    opt = _schedule_free("adamw", model)
    opt.train()
    monitor = lrkit.Monitor(model, opt, grad_every=1)
    for _ in range(5):
        _step(model, opt, monitor)
    validate(opt, monitor, 0.5)  # the best validation loss: its snapshot
    opt.train()
    best_y = [p.detach().clone() for p in model.parameters()]
    best_z = [opt.state[p]["z"].clone() for p in model.parameters()]
    for _ in range(5):
        _step(model, opt, monitor)
    for v in (0.8, 0.9, 1.0):
        validate(opt, monitor, v)
        opt.train()
    return model, opt, monitor, best_y, best_z


def _eval_then_validate(opt: torch.optim.Optimizer, monitor: lrkit.Monitor, v: float) -> None:
    opt.eval()
    monitor.after_validation(v)


def _validate_in_train_mode(opt: torch.optim.Optimizer, monitor: lrkit.Monitor, v: float) -> None:
    monitor.after_validation(v)


def test_a_training_rollback_after_a_validation_rollback_in_eval_mode_leaves_schedule_free_in_train_mode() -> None:
    pytest.importorskip("schedulefree")
    # documented schedule-free use: optimizer.eval() around validation. The validation rollback re-takes the healthy
    # snapshot there (in eval mode); a later training rollback must not put the optimizer back into eval mode
    model, opt, monitor, _, _ = _sf_run(_eval_then_validate)
    assert [e.action for e in monitor.events] == ["rollback"]
    y = [p.detach().clone() for p in model.parameters()]
    _step(model, opt, monitor, bad=True)
    assert monitor.events[-1].action == "rollback"
    assert opt.param_groups[0]["train_mode"] is True
    for p, want in zip(model.parameters(), y):  # back at the (train-mode) weights of the healthy snapshot
        torch.testing.assert_close(p.detach(), want, rtol=1e-5, atol=1e-6)
    _step(model, opt, monitor)  # and the optimizer steps (schedule-free refuses a step in eval mode)
    with torch.no_grad():
        assert math.isfinite(_loss(model).item())


def test_a_validation_rollback_to_an_eval_mode_snapshot_in_train_mode_restores_the_train_weights() -> None:
    pytest.importorskip("schedulefree")
    # the best snapshot taken in eval mode (x), the rollback asked in train mode: the weights must be y, not x
    calls = iter([_eval_then_validate, _validate_in_train_mode, _validate_in_train_mode, _validate_in_train_mode])
    model, opt, monitor, best_y, best_z = _sf_run(lambda o, m, v: next(calls)(o, m, v))
    assert [e.action for e in monitor.events] == ["rollback"]
    assert opt.param_groups[0]["train_mode"] is True
    assert_same([opt.state[p]["z"] for p in model.parameters()], best_z)
    for p, want in zip(model.parameters(), best_y):  # eval()/train() round trip: float rounding only
        torch.testing.assert_close(p.detach(), want, rtol=1e-5, atol=1e-6)


def test_schedule_free_in_eval_mode_for_validation_gives_the_same_rollback_as_a_train_mode_validation() -> None:
    pytest.importorskip("schedulefree")
    a = _sf_run(_eval_then_validate)
    b = _sf_run(_validate_in_train_mode)
    for pa, pb in zip(a[0].parameters(), b[0].parameters()):
        torch.testing.assert_close(pa.detach(), pb.detach(), rtol=1e-5, atol=1e-6)
    assert a[1].param_groups[0]["train_mode"] is b[1].param_groups[0]["train_mode"] is True


# ---------------------------------------------------------------------------------------------- lrkit's scheduler
def test_a_rollback_after_add_param_group_with_lrkits_scheduler_restores_and_backs_off_every_group() -> None:
    # a backbone unfrozen mid-run (add_param_group, which the adapter supports) after the healthy snapshot: the
    # rollback must restore the schedule's clock and back off both groups, not fail in scheduler.load_state_dict
    model = _model()
    for p in model[0].parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD([{"params": list(model[2].parameters())}], lr=0.1, momentum=0.9)
    sched = lrkit.schedules.from_spec("cosine lr0=0.1", total_steps=100).to_torch(opt)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref_opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr_scale": 0.1})
    lrkit.schedules.from_spec("cosine lr0=0.1", total_steps=100).to_torch(ref_opt)  # sets the LRs of step 0
    monitor = lrkit.Monitor(model, opt, sched, grad_every=1)
    for t in range(8):
        if t == 4:
            for p in model[0].parameters():
                p.requires_grad_(True)
            opt.add_param_group({"params": list(model[0].parameters()), "lr_scale": 0.1})
        _step(model, opt, monitor, sched, bad=t == 7)
    assert monitor.last_action == "rollback" and monitor.rollbacks == 1
    assert sched.last_epoch == 0  # back at the snapshot taken before step 0
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.3 * g["lr"] for g in ref_opt.param_groups])
    _step(model, opt, monitor, sched)  # and the run goes on
    assert monitor.last_action == "none"


# ---------------------------------------------------------------------------------------------- torch's schedulers
def _two_groups(model: torch.nn.Module, kind: str) -> torch.optim.Optimizer:
    groups = [{"params": list(model[0].parameters()), "lr": 0.05}, {"params": list(model[2].parameters()), "lr": 0.01}]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=0.05, momentum=0.9)
    return torch.optim.AdamW(groups, lr=0.05)


def _resumed_step_lr(o: torch.optim.Optimizer) -> Any:
    for g in o.param_groups:
        g.setdefault("initial_lr", g["lr"])
    return S.StepLR(o, step_size=3, gamma=0.5, last_epoch=4)


def _lrkit_scaled(o: torch.optim.Optimizer) -> Any:
    o.param_groups[1]["lr_scale"] = 0.1  # a different peak LR per group
    return lrkit.schedules.from_spec("onecycle lr0=0.1", total_steps=60).to_torch(o)


SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer], Any]] = {
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=[0.1, 0.02], total_steps=60, three_phase=True),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=[0.01, 0.002], max_lr=[0.1, 0.02], step_size_up=4,
                                     cycle_momentum=True),
    "LambdaLR per group": lambda o: S.LambdaLR(o, [lambda t: 1 / (1 + t), lambda t: 0.9**t]),
    "MultiplicativeLR per group": lambda o: S.MultiplicativeLR(o, [lambda t: 0.95, lambda t: 0.9]),
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=30, power=2.0),
    "SequentialLR": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=5), S.ExponentialLR(o, gamma=0.9)], milestones=[5]),
    "ChainedScheduler": lambda o: S.ChainedScheduler([S.ExponentialLR(o, gamma=0.95), S.StepLR(o, 4, 0.5)]),
    "StepLR last_epoch=4": _resumed_step_lr,
    "lrkit onecycle, lr_scale per group": _lrkit_scaled,
}


def _sched_run(name: str, kind: str, bad_at: int | None, steps: int) -> tuple[list[list[float]], list[Any]]:
    model = _model()
    opt = _two_groups(model, kind)
    sched = SCHEDULERS[name](opt)
    monitor = lrkit.Monitor(model, opt, sched, grad_every=1)
    lrs, moms = [], []
    for t in range(steps):
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        moms.append([g.get("momentum", g.get("betas")) for g in opt.param_groups])
        _step(model, opt, monitor, sched, bad=t == bad_at)
    return lrs, moms


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_after_a_rollback_every_scheduler_replays_its_curve_backed_off_with_its_momentum(name: str, kind: str) -> None:
    # the rollback at step 6 goes back to the snapshot taken before step 0: from step 7 on the run replays the
    # schedule from its start, every group's LR times the back-off, momentum/betas exactly as the schedule sets them
    ref_lrs, ref_moms = _sched_run(name, kind, None, 16)
    lrs, moms = _sched_run(name, kind, 6, 23)
    for j in range(7, 23):
        assert lrs[j] == pytest.approx([0.3 * v for v in ref_lrs[j - 7]], rel=1e-9), f"step {j}"
        assert moms[j] == ref_moms[j - 7], f"step {j}"


def test_cosine_warm_restarts_stepped_with_a_float_epoch_keeps_the_back_off() -> None:
    def run(bad_at: int | None) -> list[list[float]]:
        model = _model()
        opt = _two_groups(model, "sgd")
        sched = S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=1e-4)
        monitor = lrkit.Monitor(model, opt, sched, grad_every=1)
        lrs = []
        for t in range(20):
            lrs.append([float(g["lr"]) for g in opt.param_groups])
            opt.zero_grad()
            _loss(model).backward()
            monitor.after_backward(float("nan") if t == bad_at else _loss(model).detach())
            opt.step()
            sched.step((t + 1) / 3)  # the loop's own clock (epoch + batch / batches): it does not go back
            monitor.after_step()
        return lrs

    ref, got = run(None), run(6)
    for j in range(8, 20):
        assert got[j] == pytest.approx([0.3 * v for v in ref[j]], rel=1e-9), f"step {j}"


def test_a_rollback_restores_reduce_lr_on_plateaus_bookkeeping_and_backs_off_its_floor() -> None:
    model = _model()
    opt = _two_groups(model, "sgd")
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=1, cooldown=2, min_lr=[1e-3, 2e-4])
    assert isinstance(sched, S.LRScheduler)  # torch 2.13: an LRScheduler whose step() takes the metric
    monitor = lrkit.Monitor(model, opt, sched, grad_every=1)
    before = dict(sched.state_dict())
    for t in range(6):  # a flat metric: it reduces, enters cooldown, counts bad epochs
        opt.zero_grad()
        loss = _loss(model)
        loss.backward()
        monitor.after_backward(float("nan") if t == 5 else loss)
        opt.step()
        sched.step(1.0)
        monitor.after_step()
    assert monitor.last_action == "rollback"
    state = sched.state_dict()
    for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
        assert state[key] == before[key], key
    assert sched.min_lrs == pytest.approx([0.3e-3, 0.3 * 2e-4])
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.3 * 0.05, 0.3 * 0.01])


# ---------------------------------------------------------------------------------------------- optimizers
OPTIMIZERS: dict[str, Callable[[torch.nn.Module], torch.optim.Optimizer]] = {
    "Adam fused": lambda m: torch.optim.Adam(m.parameters(), lr=0.01, fused=True),
    "AdamW foreach": lambda m: torch.optim.AdamW(m.parameters(), lr=0.01, foreach=True, weight_decay=0.1),
    "SGD fused": lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, fused=True),
    "SGD foreach=False": lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, foreach=False),
    "Prodigy": lambda m: pytest.importorskip("prodigyopt").Prodigy(m.parameters(), lr=1.0),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_skip_is_exact_for_fused_foreach_and_prodigy(name: str) -> None:
    model = _model()
    opt = OPTIMIZERS[name](model)
    monitor = lrkit.Monitor(model, opt, on_divergence="skip", grad_every=1)
    for _ in range(3):
        _step(model, opt, monitor)
    params, state, groups = [p.detach().clone() for p in model.parameters()], _opt_state(model, opt), _groups(opt)
    _step(model, opt, monitor, bad=True)
    assert monitor.last_action == "skip"
    assert_same([p.detach() for p in model.parameters()], params)
    assert_same(_opt_state(model, opt), state)
    assert_same(_groups(opt), groups)  # Prodigy's d, d_max, k live in the groups


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_rollback_is_exact_and_backs_off_for_fused_foreach_and_prodigy(name: str) -> None:
    model = _model()
    opt = OPTIMIZERS[name](model)
    params, groups = [p.detach().clone() for p in model.parameters()], _groups(opt)
    monitor = lrkit.Monitor(model, opt, grad_every=1)
    for t in range(4):
        _step(model, opt, monitor, bad=t == 3)
    assert monitor.last_action == "rollback"  # to the snapshot taken before step 0
    assert_same([p.detach() for p in model.parameters()], params)
    assert all(not opt.state[p] for p in model.parameters())
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.3 * g["lr"] for g in groups])  # Prodigy: d*lr


def test_lbfgs_skip_and_rollback_with_after_backward_outside_the_closure() -> None:
    model = _model()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4, history_size=5)
    monitor = lrkit.Monitor(model, opt, on_divergence="skip", grad_every=1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _loss(model)
        loss.backward()
        return loss

    def step(bad: bool = False) -> None:
        loss = closure()
        monitor.after_backward(float("nan") if bad else loss)
        opt.step(closure)  # LBFGS re-evaluates (the gradients come back): after_step undoes it all the same
        monitor.after_step()

    for _ in range(3):
        step()
    params, state = [p.detach().clone() for p in model.parameters()], _clone(opt.state[next(model.parameters())])
    step(bad=True)
    assert monitor.last_action == "skip"
    assert_same([p.detach() for p in model.parameters()], params)
    assert_same(_clone(opt.state[next(model.parameters())]), state)  # n_iter, func_evals, old_dirs, ...
    step()
    assert monitor.last_action == "none"

    # after_backward inside the closure (called several times per step) is refused, naming the fix
    inside = lrkit.Monitor(model, opt)

    def bad_closure() -> torch.Tensor:
        loss = closure()
        inside.after_backward(loss)
        return loss

    with pytest.raises(RuntimeError, match="outside the closure"):
        opt.step(bad_closure)


def _clone(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_clone(v) for v in tree)
    return tree
