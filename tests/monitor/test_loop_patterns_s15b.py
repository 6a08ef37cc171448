"""Hunt s15b: ``lrkit.Monitor`` under mid-run patterns of real training loops.

Optimizers whose step size lives in their per-parameter state (Rprop's ``step_size``, ASGD's ``eta``), gradual
unfreezing (``requires_grad`` switched on, ``add_param_group``) before a rollback, an EMA / SWA copy of the model
(``torch.optim.swa_utils``) rolled back with it, and the rollback's exactness for torch's optimizer variants
(fused, foreach, amsgrad, maximize, Adafactor, decoupled NAdam/RAdam, ASGD, Rprop), also after the monitor's state
went through ``torch.save`` / ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

import lrkit
from _helpers import SharedStateWrapper
from _helpers import tiny_loss as _loss
from _helpers import tiny_model as _model
from lrkit.monitor import backoff_lr
from lrkit.monitor.checks import NonFinite

O = torch.optim
MakeOpt = Callable[[Any], torch.optim.Optimizer]


def _nan_monitor(model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any = None, *,
                 snapshot_every: int = 3) -> lrkit.Monitor:
    """A monitor acting on non-finite values only (rollback), every step full, a snapshot every few steps."""
    return lrkit.Monitor(model, opt, sched, checks=[NonFinite()], grad_every=1, snapshot_every=snapshot_every)


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, monitor: lrkit.Monitor, *, bad: bool = False,
          sched: Any = None) -> None:
    opt.zero_grad()
    loss = _loss(model)
    if opt.param_groups[0].get("maximize"):
        loss = -loss
    if bad:
        loss = loss * float("nan")
    loss.backward()
    monitor.after_backward(loss)
    opt.step()
    if sched is not None:
        sched.step()
    monitor.after_step()


def _same(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two state trees differ (tensors bit for bit, with dtype and shape)."""
    if isinstance(a, torch.Tensor):
        ok = (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b))
        return [] if ok else [f"{where}: {a!r:.60} != {b!r:.60}"]
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return [f"{where}: keys differ"]
        return [d for k in a for d in _same(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return [f"{where}: lengths differ"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _same(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _update_size(model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
    """The L2 size of one plain optimizer step on the tiny task."""
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    _loss(model).backward()
    opt.step()
    return float(sum(((p.detach() - q) ** 2).sum() for p, q in zip(model.parameters(), before)).sqrt())


# ---------------------------------------------------------------------------------------------------------------
# 1. A back-off must slow down optimizers whose step size is optimizer state, not the group's lr


@pytest.mark.parametrize("make", [
    lambda p: O.Rprop(p, lr=0.01),
    lambda p: O.Rprop(p, lr=0.01, foreach=True),
    lambda p: O.ASGD(p, lr=0.01, t0=2, weight_decay=0.01),
    lambda p: O.ASGD(p, lr=0.01, t0=2, foreach=True),
], ids=["Rprop", "Rprop-foreach", "ASGD", "ASGD-foreach"])
def test_rollback_backoff_slows_the_next_step_of_state_step_size_optimizers(make: MakeOpt) -> None:
    """Bug: Rprop reads the group's ``lr`` once, to initialise each parameter's ``step_size`` in its state, and
    adapts that from then on; ASGD computes its ``eta`` from ``lr`` *after* each step and steps with the one kept in
    its state. A rollback restored those states from the snapshot and scaled the groups' ``lr`` only: Rprop's next
    steps were exactly as large as without the back-off (the rolled-back run replayed the trajectory that had
    diverged, at the same step sizes, for the rest of the run), ASGD's first step after it was at the full LR. Now
    the size of the first step after a rollback is proportional to ``backoff``, as for SGD or Adam: ``backoff=0.3``
    takes a third of the step ``backoff=0.9`` takes (before: the same step)."""
    sizes = {}
    for backoff in (0.3, 0.9):
        model = _model()
        opt = make(model.parameters())
        monitor = lrkit.Monitor(model, opt, checks=[NonFinite()], grad_every=1, snapshot_every=3, backoff=backoff)
        for _ in range(7):
            _step(model, opt, monitor)
        _step(model, opt, monitor, bad=True)
        assert monitor.last_action == "rollback" and monitor.lr_scale == backoff
        sizes[backoff] = _update_size(model, opt)
    # before the fix: Rprop 1.0 (its steps ignore the lr), ASGD 1.0 (its first step takes the eta kept in its state)
    assert sizes[0.3] / sizes[0.9] == pytest.approx(1 / 3, rel=1e-4)


def test_backoff_lr_scales_rprop_step_sizes_and_asgd_eta_in_place() -> None:
    """``backoff_lr`` itself (public) scales Rprop's per-parameter ``step_size`` and ASGD's ``eta`` with the LR, in
    place (the same tensor objects: a foreach step that holds them keeps the live ones); an optimizer that has not
    stepped yet has no state, and its first step starts from the scaled ``lr``."""
    for make, key in ((lambda p: O.Rprop(p, lr=0.01), "step_size"), (lambda p: O.ASGD(p, lr=0.01), "eta")):
        model = _model()
        opt = make(model.parameters())
        backoff_lr(opt, None, 0.5)  # no state yet: the group's lr only
        assert opt.param_groups[0]["lr"] == 0.005 and not opt.state
        _loss(model).backward()
        opt.step()
        held = {p: opt.state[p][key] for p in model.parameters()}
        values = {p: t.clone() for p, t in held.items()}
        backoff_lr(opt, None, 0.5)
        for p in model.parameters():
            assert opt.state[p][key] is held[p]
            torch.testing.assert_close(held[p], values[p] * 0.5, rtol=0, atol=0)
        assert opt.param_groups[0]["lr"] == 0.0025


# ---------------------------------------------------------------------------------------------------------------
# 2. A loss on the meta device (no value) is a bad loss like the others: a ValueError, nothing counted


def test_a_meta_device_loss_is_a_clear_value_error_and_counts_nothing() -> None:
    """Bug: a loss tensor on the ``meta`` device (a model built or moved there, as for size estimates, then a
    forward pass) reached torch's ``Tensor.item() cannot be called on meta tensors`` RuntimeError from both
    ``after_backward`` and ``after_validation``, where the loop contract promises a ``ValueError`` saying what was
    given. Now it is one, naming the device; the monitor is left as it was and the next step is normal."""
    model = _model()
    opt = O.SGD(model.parameters(), lr=0.05)
    monitor = _nan_monitor(model, opt)
    for _ in range(3):  # the full path, then the fast path (grad_every=64 would screen most steps)
        _step(model, opt, monitor)
    fast = lrkit.Monitor(model, opt)
    for _ in range(3):
        _step(model, opt, fast)
    meta = torch.tensor(0.5, device="meta")
    for mon in (monitor, fast):
        before = (mon.step, mon.record.state_dict())
        for call, what in ((mon.after_backward, "after_backward(loss)"), (mon.after_validation,
                                                                          "after_validation(val_loss)")):
            with pytest.raises(ValueError, match=r"meta device") as info:
                call(meta)
            assert what in str(info.value)
        assert (mon.step, mon.record.state_dict()) == before
        _step(model, opt, mon)
        assert mon.step == before[0] + 1 and mon.last_action == "none"


# ---------------------------------------------------------------------------------------------------------------
# 3. Rollbacks are exact for every torch optimizer variant, also after a save / load of the monitor mid-run

VARIANTS: dict[str, MakeOpt] = {
    "SGD-foreach-nesterov": lambda p: O.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3,
                                            foreach=True),
    "SGD-fused-maximize": lambda p: O.SGD(p, lr=0.05, momentum=0.9, fused=True, maximize=True),
    "Adam-fused-tensor-lr": lambda p: O.Adam(p, lr=torch.tensor(1e-2), fused=True),
    "AdamW-fused-amsgrad": lambda p: O.AdamW(p, lr=1e-2, fused=True, amsgrad=True),
    "Adam-amsgrad-maximize": lambda p: O.Adam(p, lr=1e-2, amsgrad=True, maximize=True),
    "Adafactor": lambda p: O.Adafactor(p, lr=1e-2),
    "NAdam-decoupled": lambda p: O.NAdam(p, lr=1e-2, decoupled_weight_decay=True, weight_decay=0.01),
    "RAdam-decoupled": lambda p: O.RAdam(p, lr=1e-2, decoupled_weight_decay=True, weight_decay=0.01),
    "ASGD": lambda p: O.ASGD(p, lr=1e-2, t0=2),
    "Rprop": lambda p: O.Rprop(p, lr=1e-2),
    "RMSprop-centered": lambda p: O.RMSprop(p, lr=1e-3, momentum=0.9, centered=True),
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.skipif(
    not hasattr(O, n.split("-")[0]), reason=f"no torch.optim.{n.split('-')[0]} in torch {torch.__version__}"))
    for n in sorted(VARIANTS)])
def test_rollback_restores_every_optimizer_state_bit_for_bit_also_after_a_reload(name: str) -> None:
    """A rollback returns model and optimizer state (fused ``step`` tensors, ``max_exp_avg_sq``, Adafactor's
    factored ``row_var``/``col_var``, ASGD's ``eta``/``mu``/``ax``, Rprop's ``prev``/``step_size``, ...) to the
    healthy snapshot exactly, with only the LRs (and the step sizes derived from them) backed off — and a monitor
    saved with ``state_dict(snapshot=True)``, loaded in a fresh "process" (``torch.load(weights_only=True)``, a new
    model, optimizer and monitor) ends the same rollback in the same state as the run that never stopped."""
    make = VARIANTS[name]

    def build() -> tuple[torch.nn.Module, torch.optim.Optimizer, lrkit.Monitor]:
        model = _model()
        opt = make(model.parameters())
        return model, opt, _nan_monitor(model, opt)

    model, opt, monitor = build()
    for _ in range(8):
        _step(model, opt, monitor)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "monitor": monitor.state_dict(snapshot=True)},
               buf)
    at_snapshot = None
    for _ in range(3):
        at = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
        _step(model, opt, monitor)
        if monitor._healthy.step == monitor.step:  # type: ignore[union-attr]  # taken at this step, before its update
            at_snapshot = at
    assert at_snapshot is not None  # snapshot_every=3: one refresh in these 3 steps
    _step(model, opt, monitor, bad=True)
    assert monitor.last_action == "rollback"
    assert not _same(at_snapshot[0], model.state_dict())
    now = opt.state_dict()
    step_sizes = {"step_size", "eta"}  # scaled with the LR (see test 1)
    for i, state in at_snapshot[1]["state"].items():
        assert not _same({k: v for k, v in state.items() if k not in step_sizes},
                         {k: v for k, v in now["state"][i].items() if k not in step_sizes}, f"state[{i}]")
        for k in step_sizes & set(state):
            torch.testing.assert_close(now["state"][i][k], state[k] * 0.3)
    for then, group in zip(at_snapshot[1]["param_groups"], now["param_groups"]):
        assert float(group["lr"]) == pytest.approx(0.3 * float(then["lr"]), rel=1e-6)
        assert not _same({k: v for k, v in then.items() if k != "lr"}, {k: v for k, v in group.items() if k != "lr"})
    # the same from the saved checkpoint, in a fresh model / optimizer / monitor
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model2, opt2, monitor2 = build()
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    monitor2.load_state_dict(saved["monitor"])
    for _ in range(3):
        _step(model2, opt2, monitor2)
    _step(model2, opt2, monitor2, bad=True)
    assert monitor2.last_action == "rollback" and monitor2.lr_scale == monitor.lr_scale
    assert not _same(model.state_dict(), model2.state_dict())
    assert not _same(opt.state_dict(), opt2.state_dict())


# ---------------------------------------------------------------------------------------------------------------
# 4. Gradual unfreezing: the backbone switched on mid-run, then a rollback to a snapshot from before


@pytest.mark.parametrize("how", ["requires_grad", "add_param_group"])
def test_unfreezing_after_the_snapshot_then_rollback(how: str) -> None:
    """Fine-tuning: the head trains first, then the backbone is unfrozen — ``requires_grad_(True)`` on parameters
    the optimizer already holds, or ``add_param_group`` with its own LR — after the healthy snapshot; a divergence
    then rolls back. What existed at the snapshot comes back bit for bit (weights, the head's state and LR backed
    off); the backbone's weights return to the snapshot's (frozen then) and its optimizer state, which did not exist
    then, is dropped (the optimizer starts it afresh); an added group keeps its hyperparameters, backed off, and the
    back-off survives the scheduler (ExponentialLR, which follows every group); training goes on."""
    model = _model()
    backbone, head = list(model[0].parameters()), list(model[2].parameters())
    for p in backbone:
        p.requires_grad_(False)
    opt = O.AdamW(model.parameters() if how == "requires_grad" else head, lr=1e-2, fused=True)
    sched = O.lr_scheduler.ExponentialLR(opt, 0.9)
    monitor = lrkit.Monitor(model, opt, sched, checks=[NonFinite()], grad_every=1, snapshot_every=5)
    at_snapshot = None
    for i in range(9):
        if i == 7:  # unfreeze, two steps after the snapshot of step 5
            for p in backbone:
                p.requires_grad_(True)
            if how == "add_param_group":
                opt.add_param_group({"params": backbone, "lr": 1e-3})
        at = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict()))
        _step(model, opt, monitor, sched=sched)
        if monitor._healthy.step == monitor.step:  # type: ignore[union-attr]
            at_snapshot = at
    assert at_snapshot is not None and monitor._healthy.step == 5  # type: ignore[union-attr]
    assert all(len(opt.state[p]) > 0 for p in backbone)  # the backbone trained two steps
    _step(model, opt, monitor, bad=True, sched=sched)
    new_lr = opt.param_groups[-1]["lr"] / 0.3  # as the scheduler left it at this step, before the back-off
    assert monitor.last_action == "rollback"
    assert not _same(at_snapshot[0], model.state_dict())
    assert all(p not in opt.state for p in backbone)  # no state at the snapshot: none now
    saved = at_snapshot[1]
    assert not _same(saved["state"], {i: s for i, s in opt.state_dict()["state"].items() if i in saved["state"]})
    assert set(opt.state_dict()["state"]) == set(saved["state"])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.3 * saved["param_groups"][0]["lr"], rel=1e-12)
    assert sched.last_epoch == at_snapshot[2]["last_epoch"]  # the schedule's clock went back
    if how == "add_param_group":
        assert len(opt.param_groups) == 2
        assert new_lr == pytest.approx(1e-3 * 0.9 ** 3, rel=1e-12)  # its own schedule, three steps on
    lrs = [g["lr"] for g in opt.param_groups]
    for k in range(1, 4):  # the back-off survives the scheduler, in every group; the backbone trains
        before = [p.detach().clone() for p in backbone]
        _step(model, opt, monitor, sched=sched)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr * 0.9 ** k for lr in lrs], rel=1e-12)
        assert all(not torch.equal(p, q) for p, q in zip(backbone, before))
    assert monitor.last_action == "none" and len(monitor.events) == 1


# ---------------------------------------------------------------------------------------------------------------
# 5. An EMA / SWA copy of the model (torch.optim.swa_utils), with SWALR as the scheduler


def test_an_ema_copy_monitored_with_the_model_is_rolled_back_with_it() -> None:
    """``torch.optim.swa_utils.AveragedModel`` keeps its averaged weights (and ``n_averaged``) in a module of its own:
    outside the monitored model a rollback leaves it holding the discarded steps. Monitored together with the model
    (``Monitor(torch.nn.ModuleDict({"model": model, "ema": ema}), opt, swalr)``) it returns to the snapshot with it,
    bit for bit; SWALR (``scheduler=``) gets its clock back and its ``swa_lr`` backed off."""
    from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    torch.manual_seed(0)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    outside = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    opt = O.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = SWALR(opt, swa_lr=0.02, anneal_epochs=3)
    both = torch.nn.ModuleDict({"model": model, "ema": ema})
    monitor = lrkit.Monitor(both, opt, sched, checks=[NonFinite()], grad_every=1, snapshot_every=4)
    at_snapshot = None
    for i in range(10):
        opt.zero_grad()
        loss = _loss(model) * (float("nan") if i == 9 else 1.0)
        loss.backward()
        at = (copy.deepcopy(both.state_dict()), copy.deepcopy(sched.state_dict()))  # BatchNorm's stats updated
        monitor.after_backward(loss)
        opt.step()
        sched.step()
        monitor.after_step()
        if monitor.last_action == "none":
            ema.update_parameters(model)
            outside.update_parameters(model)
            if monitor._healthy.step == monitor.step:  # type: ignore[union-attr]
                at_snapshot = at
    assert monitor.last_action == "rollback" and at_snapshot is not None
    assert not _same(at_snapshot[0], both.state_dict())
    assert int(ema.n_averaged) == int(at_snapshot[0]["ema.n_averaged"]) < int(outside.n_averaged)
    assert sched.state_dict()["_step_count"] == at_snapshot[1]["_step_count"]
    assert opt.param_groups[0]["swa_lr"] == pytest.approx(0.3 * 0.02)


# ---------------------------------------------------------------------------------------------------------------
# 6. An optimizer rebuilt mid-run (at unfreezing): the monitor still watches the old one


def test_an_optimizer_rebuilt_mid_run_is_warned_about_by_its_real_cause() -> None:
    """Bug: a loop that builds a new optimizer mid-run (common at unfreezing: ``opt = AdamW(model.parameters())``)
    leaves the monitor on the old one: a rollback then restores the old optimizer's state and backs off the old
    optimizer's LR, which nothing steps — the new optimizer trains on at the full LR while ``monitor.lr_scale`` says
    0.3. The only hint was the gradient-accumulation warning (``optimizer.step() was not called ... micro-batch``),
    at the second sampled step. Now the first sampled step whose parameters moved while the monitored optimizer did
    not step warns about another optimizer training them, and says what to do; a micro-batch loop (nothing moves
    between micro-batches) keeps its own warning."""
    model = _model()
    opt = O.AdamW(model.parameters(), lr=1e-2)
    monitor = lrkit.Monitor(model, opt, grad_every=1, sample_every=5)
    with pytest.warns(UserWarning) as caught:
        for i in range(30):
            if i == 12:
                opt = O.AdamW(model.parameters(), lr=1e-2)  # rebuilt: the monitor still holds the first one
            opt.zero_grad()
            loss = _loss(model)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
    found = [w for w in caught if "optimizer.step()" in str(w.message)]
    assert len(found) == 1, [str(w.message) for w in found]
    message = str(found[0].message)
    assert "another optimizer" in message and "new Monitor" in message and "micro-batch" not in message
    assert "step 15" in message  # the first sampled step after the switch (samples at 0, 5, 10, 15, ...)
    assert found[0].filename == __file__  # points at the loop's after_step()


class _SAM(torch.optim.Optimizer):
    """SAM as it is commonly written (github.com/davda54/sam): ``first_step()`` climbs to the sharpness point,
    ``second_step()`` returns and steps ``base_optimizer``; the wrapper's own ``step()`` is never called."""

    def __init__(self, params: Any, base: type[torch.optim.Optimizer], rho: float = 0.05, **kwargs: Any) -> None:
        super().__init__(params, {"rho": rho, **kwargs})
        self.base_optimizer = base(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups

    @torch.no_grad()
    def first_step(self) -> None:
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.state[p]["old_p"] = p.detach().clone()
                    p.add_(p.grad * (group["rho"] / (norm + 1e-12)))
        self.zero_grad()

    @torch.no_grad()
    def second_step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.copy_(self.state[p]["old_p"])
        self.base_optimizer.step()
        self.zero_grad()


def test_sam_first_and_second_step_count_as_the_optimizer_stepping() -> None:
    """Bug: a SAM loop (``first_step()`` / ``second_step()``, which steps the wrapped ``base_optimizer``) never
    calls the wrapper's ``step()``, so every update-ratio sample was dropped as "the optimizer did not step" (the
    ``lr_too_low`` check never got one) and the second raised the gradient-accumulation warning, ``optimizer.step()
    was not called ... micro-batch``, a false alarm. The step of a wrapped optimizer counts now: no warning, the
    ratios are recorded."""
    model = _model()
    opt = _SAM(model.parameters(), O.SGD, lr=0.05, momentum=0.9)
    monitor = lrkit.Monitor(model, opt, grad_every=1, sample_every=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(30):
            loss = _loss(model)
            loss.backward()
            monitor.after_backward(loss)
            opt.first_step()
            _loss(model).backward()
            opt.second_step()
            monitor.after_step()
    assert monitor.record.seen["update_ratio"] == 6  # steps 0, 5, ..., 25
    assert monitor.events == []



def test_a_loop_stepping_the_optimizer_a_shared_state_wrapper_holds_is_no_false_alarm() -> None:
    """The monitor given an accelerate-style wrapper while the loop calls the wrapped optimizer's ``step()``: the
    same step, so the samples are recorded and nothing is warned about (before: every sample dropped, then the
    micro-batch warning)."""
    model = _model()
    inner = O.SGD(model.parameters(), lr=0.05, momentum=0.9)
    monitor = lrkit.Monitor(model, SharedStateWrapper(inner), grad_every=1, sample_every=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(20):
            inner.zero_grad()
            loss = _loss(model)
            loss.backward()
            monitor.after_backward(loss)
            inner.step()
            monitor.after_step()
    assert monitor.record.seen["update_ratio"] == 4 and monitor.events == []
