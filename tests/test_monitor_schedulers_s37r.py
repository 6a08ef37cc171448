"""Session 37r: ``lrkit.Monitor`` in a hand-written loop with every scheduler of ``torch.optim.lr_scheduler``, SWALR
and lrkit's own ``to_torch``: after a rollback (or a validation rollback) every later LR is ``lr_scale`` times the LR
the same scheduler gives at the same clock without the monitor, the scheduler's whole ``state_dict()`` is the
reference's at that clock (its LR-valued entries times ``lr_scale``), and a save/resume (with or without the held
snapshot) keeps the back-off."""

from __future__ import annotations

import copy
import io
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as S
from torch.optim.swa_utils import SWALR

import lrkit
from lrkit.monitor.actions import backoff_lr
from lrkit.schedules import from_spec

Builder = Callable[[torch.optim.Optimizer], Any]
LRS = (0.1, 0.02)
# scheduler state entries that are LRs (scaled by the back-off); every other entry must equal the reference's
LR_KEYS = {"base_lrs", "_last_lr", "max_lrs", "min_lrs", "eta_min", "default_min_lr", "eps", "base_values"}
GROUP_LR_KEYS = {"lr", "initial_lr", "max_lr", "min_lr", "swa_lr"}

TORCH: dict[str, Builder] = {
    "StepLR": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[4, 9, 20], gamma=0.1),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
    "CosineAnnealingWarmRestarts T_mult=2": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-4),
    "CyclicLR cycle_momentum": lambda o: S.CyclicLR(o, base_lr=[0.01, 0.002], max_lr=[0.1, 0.02], step_size_up=4),
    "CyclicLR no momentum": lambda o: S.CyclicLR(o, base_lr=[0.01, 0.002], max_lr=[0.1, 0.02], step_size_up=4,
                                                 cycle_momentum=False),
    "CyclicLR exp_range": lambda o: S.CyclicLR(o, base_lr=[0.01, 0.002], max_lr=[0.1, 0.02], step_size_up=3,
                                               mode="exp_range", gamma=0.97),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=[1.0, 0.2], total_steps=60),
    "OneCycleLR three_phase linear": lambda o: S.OneCycleLR(o, max_lr=[1.0, 0.2], total_steps=60, three_phase=True,
                                                            anneal_strategy="linear"),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=0.1, total_iters=6),
    "ConstantLR": lambda o: S.ConstantLR(o, factor=0.25, total_iters=9),
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=50, power=2.0),
    "LambdaLR per group": lambda o: S.LambdaLR(o, [lambda t: 1.0 / (1 + t), lambda t: 0.99**t]),
    "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda t: 0.95 if t % 2 else 1.0),
    "SequentialLR across milestones": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=5), S.ExponentialLR(o, gamma=0.9),
            S.CosineAnnealingLR(o, T_max=20, eta_min=1e-3)], milestones=[24, 33]),
    "ChainedScheduler": lambda o: S.ChainedScheduler(
        [S.LinearLR(o, start_factor=0.2, total_iters=8), S.CosineAnnealingLR(o, T_max=15, eta_min=1e-3),
         S.MultiplicativeLR(o, lambda t: 0.98)]),
    "SWALR cos": lambda o: SWALR(o, swa_lr=[0.01, 0.004], anneal_epochs=6),
    "SWALR linear": lambda o: SWALR(o, swa_lr=[0.01, 0.004], anneal_epochs=6, anneal_strategy="linear"),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=2, min_lr=[1e-3, 1e-4]),
}
LRKIT: dict[str, Builder] = {
    "to_torch cosine warmup": lambda o: from_spec("cosine warmup_steps=5", total_steps=60).to_torch(o),
    "SequentialLR torch warmup -> to_torch": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=22), from_spec("cosine", total_steps=40).to_torch(o)],
        milestones=[22]),
    "SequentialLR to_torch -> ExponentialLR": lambda o: S.SequentialLR(
        o, [from_spec("cosine", total_steps=22).to_torch(o), S.ExponentialLR(o, gamma=0.9)], milestones=[22]),
}


def _metric(clock: int) -> float:
    """A plateau metric as a function of the scheduler's clock (a rollback replays it as the reference saw it)."""
    return 1.0 + 0.01 * ((clock * 7) % 5)


def _clock(sched: Any) -> int:
    return sched._schedulers[0].last_epoch if isinstance(sched, S.ChainedScheduler) else sched.last_epoch


def _step_sched(sched: Any) -> None:
    if isinstance(sched, S.ReduceLROnPlateau):
        sched.step(_metric(_clock(sched)))
    else:
        sched.step()


def _model_opt(tensor_lr: bool = False) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    lrs = [torch.tensor(v, dtype=torch.float64) if tensor_lr else v for v in LRS]
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": lrs[0]},
                           {"params": model[1].parameters(), "lr": lrs[1]}], momentum=0.9)
    return model, opt


def _plain(v: Any) -> Any:
    return float(v) if isinstance(v, torch.Tensor) else v


def _mismatches(got: Any, want: Any, scale: float, path: str = "", lr: bool = False) -> list[str]:
    """Where ``got`` (a state tree) differs from ``want``, LR-valued entries compared with ``want * scale``."""
    if isinstance(got, dict) and isinstance(want, dict):
        out = [f"{path}: keys {sorted(set(got) ^ set(want))}"] if set(got) != set(want) else []
        for k in set(got) & set(want):
            out += _mismatches(got[k], want[k], scale, f"{path}.{k}", lr or k in LR_KEYS)
        return out
    if isinstance(got, (list, tuple)) and isinstance(want, (list, tuple)):
        out = [f"{path}: length {len(got)} != {len(want)}"] if len(got) != len(want) else []
        for i, (a, b) in enumerate(zip(got, want)):
            out += _mismatches(a, b, scale, f"{path}[{i}]", lr)
        return out
    if callable(got) or callable(want):
        return []
    a, b = _plain(got), _plain(want)
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        expected = b * scale if lr else b
        return [] if math.isclose(a, expected, rel_tol=1e-9, abs_tol=1e-15) else [f"{path}: {a} != {expected}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _groups(opt: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]


def _reference(build: Builder, steps: int, tensor_lr: bool) -> tuple[dict[int, Any], dict[int, Any]]:
    """The scheduler's state and the groups' hyperparameters at each clock value, without a monitor."""
    _, opt = _model_opt(tensor_lr)
    sched = build(opt)
    states, groups = {}, {}
    for _ in range(steps + 1):
        states[_clock(sched)] = copy.deepcopy(sched.state_dict())
        groups[_clock(sched)] = _groups(opt)
        opt.step()
        _step_sched(sched)
    return states, groups


def _run(build: Builder, *, bad: tuple[int, ...], resume_at: int | None = None, snapshot: bool = True,
         tensor_lr: bool = False, whole_state: bool = True, steps: int = 45) -> lrkit.Monitor:
    """A monitored loop with NaN losses at ``bad``; after every step the LRs (and, with ``whole_state``, the whole
    scheduler state and the groups' hyperparameters) are the reference's at the scheduler's clock, times
    ``lr_scale``."""
    states, groups = _reference(build, steps + 2, tensor_lr)
    model, opt = _model_opt(tensor_lr)
    sched = build(opt)
    kw: dict[str, Any] = {"on_divergence": "rollback", "snapshot_every": 10, "grad_every": 1}
    monitor = lrkit.Monitor(model, opt, sched, **kw)
    torch.manual_seed(1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for t in range(steps):
        if t == resume_at:  # a checkpoint: fresh objects built the usual way, then every state loaded
            buf = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "monitor": monitor.state_dict(snapshot=snapshot)}, buf)
            buf.seek(0)
            ckpt = torch.load(buf, weights_only=False)
            model, opt = _model_opt(tensor_lr)
            sched = build(opt)
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["opt"])
            sched.load_state_dict(ckpt["sched"])
            monitor = lrkit.Monitor(model, opt, sched, **kw)
            monitor.load_state_dict(ckpt["monitor"])
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(float("nan") if t in bad else loss)
        opt.step()
        _step_sched(sched)
        monitor.after_step()
        c = _clock(sched)
        want = [monitor.lr_scale * g["lr"] for g in groups[c]]
        assert [float(g["lr"]) for g in opt.param_groups] == pytest.approx(want, rel=1e-9), f"step {t} (clock {c})"
        if whole_state:
            wrong = _mismatches(sched.state_dict(), states[c], monitor.lr_scale, "scheduler")
            for i, (g, ref) in enumerate(zip(_groups(opt), groups[c])):
                wrong += [w for k in ref for w in _mismatches(g.get(k), ref[k], monitor.lr_scale, f"group{i}.{k}",
                                                              k in GROUP_LR_KEYS)]
            assert not wrong, f"step {t} (clock {c}, {monitor.last_action}): {wrong[:4]}"
    return monitor


@pytest.mark.parametrize("name", sorted(TORCH))
def test_rollbacks_restore_the_whole_scheduler_state_and_keep_the_back_off(name: str) -> None:
    # two rollbacks (to two different snapshots), then consecutive ones to the same snapshot; groups 0.1 and 0.02
    monitor = _run(TORCH[name], bad=(25, 36, 37, 38))
    assert monitor.rollbacks == 4
    assert monitor.lr_scale == pytest.approx(0.3**4)


@pytest.mark.parametrize("snapshot", [True, False])
@pytest.mark.parametrize("name", sorted(TORCH))
def test_a_resume_keeps_the_back_off_and_the_next_rollback_compounds(name: str, snapshot: bool) -> None:
    # rolled back at 25, saved and resumed at 30, rolled back again at 31: to the loaded snapshot (snapshot=True)
    # or, without it, undone in place and backed off from the loaded lr_scale
    monitor = _run(TORCH[name], bad=(25, 31), resume_at=30, snapshot=snapshot)
    assert monitor.lr_scale == pytest.approx(0.09)


@pytest.mark.parametrize("name", sorted(LRKIT))
def test_lrkit_to_torch_alone_and_in_a_sequential_lr_keeps_the_back_off(name: str) -> None:
    # lrkit's adapter keeps the back-off in lr_multiplier, not in base_lrs: its LRs are compared, not its state
    monitor = _run(LRKIT[name], bad=(0, 1, 25, 31), resume_at=30, whole_state=False)
    assert monitor.lr_scale == pytest.approx(0.3**4)


@pytest.mark.parametrize("name", sorted(TORCH))
def test_tensor_lrs_first_step_rollbacks(name: str) -> None:
    # no healthy snapshot yet at steps 0-2 (undo and back off in place), then a snapshot rollback; tensor LRs
    monitor = _run(TORCH[name], bad=(0, 1, 2, 26), tensor_lr=True, steps=35)
    assert monitor.lr_scale == pytest.approx(0.3**4)


# ------------------------------------------------------------------------- the bug: a tensor LR under SequentialLR
def _sequential_adapter_first(tensor_lr: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    model, opt = _model_opt(tensor_lr)
    sched = S.SequentialLR(opt, [from_spec("cosine", total_steps=22).to_torch(opt), S.ExponentialLR(opt, gamma=0.9)],
                           milestones=[22])
    return model, opt, sched


@pytest.mark.parametrize("tensor_lr", [False, True])
def test_backoff_lr_applies_at_once_to_a_tensor_lr_under_sequential_lr_with_lrkit_in_charge(tensor_lr: bool) -> None:
    # SequentialLR's _last_lr is the list its active scheduler returns from get_last_lr(): lrkit's adapter's own, with
    # the same tensors. Scaling SequentialLR's copy in place scaled the adapter's record of the LR it wrote, so it no
    # longer saw itself in charge and left the LR alone: the step after the back-off ran at the old LR
    _, opt, sched = _sequential_adapter_first(tensor_lr)
    for _ in range(3):
        opt.step()
        sched.step()
    before = [float(g["lr"]) for g in opt.param_groups]
    backoff_lr(opt, sched, 0.3)
    assert [float(g["lr"]) for g in opt.param_groups] == pytest.approx([0.3 * v for v in before], rel=1e-12)
    assert [float(v) for v in sched.get_last_lr()] == pytest.approx([0.3 * v for v in before], rel=1e-12)


def test_a_validation_rollback_backs_off_a_tensor_lr_under_sequential_lr_with_lrkit_at_once() -> None:
    # a validation rollback leaves the scheduler as it is and backs off: the next optimizer step's LR must be the
    # backed-off one (before the fix it was the old one, for one step)
    model, opt, sched = _sequential_adapter_first(True)
    monitor = lrkit.Monitor(model, opt, sched, grad_every=1)
    torch.manual_seed(1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(4):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        monitor.after_backward(torch.nn.functional.mse_loss(model(x), y).detach())
        opt.step()
        sched.step()
        monitor.after_step()
    before = [float(g["lr"]) for g in opt.param_groups]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monitor.after_validation(0.5)
        monitor.after_validation(float("inf"))  # a non-finite validation loss: val_rising at once
    assert monitor.events[-1].check == "val_rising"
    assert [float(g["lr"]) for g in opt.param_groups] == pytest.approx([0.1 * v for v in before], rel=1e-12)


# ------------------------------------------------------------------ the bug: a stop at the rollback cap undid back-offs
STOP_CASES: dict[str, Builder | None] = {
    "no scheduler": None,
    "StepLR": TORCH["StepLR"],
    "OneCycleLR": TORCH["OneCycleLR"],
    "CyclicLR cycle_momentum": TORCH["CyclicLR cycle_momentum"],
    "ReduceLROnPlateau": TORCH["ReduceLROnPlateau"],
    "to_torch cosine warmup": LRKIT["to_torch cosine warmup"],
}


@pytest.mark.parametrize("name", sorted(STOP_CASES))
def test_a_stop_at_the_rollback_cap_keeps_the_back_offs_made_since_the_snapshot(name: str) -> None:
    # rolled back at step 25 to the snapshot of step 20 (lr_scale 1 then), backed off to 0.3; the next bad step is
    # past max_rollbacks=1: a stop, restoring that same snapshot. Its LRs were the original ones: before the fix the
    # optimizer went back to them (the LR that diverged) while lr_scale, and the stop reason, said 0.3x
    build = STOP_CASES[name]
    model, opt = _model_opt()
    sched = build(opt) if build is not None else None
    ref_groups = _reference(build, 40, False)[1] if build is not None else None
    monitor = lrkit.Monitor(model, opt, sched, snapshot_every=10, grad_every=1, max_rollbacks=1)
    torch.manual_seed(1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(32):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            monitor.after_backward(float("nan") if t in (25, 31) else loss)
            opt.step()
            if sched is not None:
                _step_sched(sched)
            monitor.after_step()
    assert monitor.should_stop and monitor.last_action == "stop" and monitor.rollbacks == 1
    assert monitor.lr_scale == pytest.approx(0.3)
    want = [g["lr"] for g in ref_groups[_clock(sched)]] if sched is not None else list(LRS)
    assert [float(g["lr"]) for g in opt.param_groups] == pytest.approx([0.3 * v for v in want], rel=1e-9)


# ------------------------------------------- several schedulers: the refusal names the container that holds them all
def test_a_list_of_schedulers_is_refused_with_the_container_that_holds_them() -> None:
    # a loop stepping a warmup and a decay scheduler passed both: before, "got list" and nothing on what to do
    model, opt = _model_opt()
    warmup, decay = S.LinearLR(opt, start_factor=0.1, total_iters=5), S.StepLR(opt, step_size=3)
    with pytest.raises(ValueError, match=r"scheduler=\[LinearLR, StepLR\] is a list.*ChainedScheduler\(\[") as info:
        lrkit.Monitor(model, opt, [warmup, decay])
    assert "ReduceLROnPlateau" not in str(info.value)
    plateau = S.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match=r"scheduler=\(LinearLR, ReduceLROnPlateau\) is a tuple.*cannot chain"):
        lrkit.Monitor(model, opt, (warmup, plateau))
    # what the message proposes works: the container only holds them, the loop steps each as before
    lrkit.Monitor(model, opt, S.ChainedScheduler([warmup, decay]))


# ---------------------------- the bug: a snapshot of another kind of scheduler was loaded into this one at a rollback
def test_a_snapshot_of_another_kind_of_scheduler_is_refused_at_load() -> None:
    # trained with StepLR, resumed for a new phase with CosineAnnealingLR and the monitor's state_dict(snapshot=True):
    # the first rollback loaded StepLR's state into the cosine scheduler (its clock jumped to the old run's, and it
    # gained step_size and gamma), silently. Refused at load now, leaving the monitor as it was
    model, opt = _model_opt()
    sched = S.StepLR(opt, step_size=5, gamma=0.5)
    monitor = lrkit.Monitor(model, opt, sched, grad_every=1, snapshot_every=10)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(12):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        sched.step()
        monitor.after_step()
    state = monitor.state_dict(snapshot=True)
    model2, opt2 = _model_opt()
    cosine = S.CosineAnnealingLR(opt2, T_max=20)
    resumed = lrkit.Monitor(model2, opt2, cosine)
    refused = r"another kind of scheduler than this monitor's CosineAnnealingLR.*step_size"
    with pytest.raises(ValueError, match=refused) as info:
        resumed.load_state_dict(state)
    assert "state.pop('healthy')" in str(info.value)
    assert resumed.step == -1  # nothing loaded
    resumed.load_state_dict({k: v for k, v in state.items() if k != "healthy"})  # the way out the message gives
    assert resumed.step == monitor.step
    # the same kind of scheduler loads as before
    model3, opt3 = _model_opt()
    lrkit.Monitor(model3, opt3, S.StepLR(opt3, step_size=5, gamma=0.5)).load_state_dict(state)
