"""Hunt s11d: ``lrkit.Monitor`` in hand-written loops written the way real code is written.

Covers the idioms earlier hunts did not: ``scheduler.step()`` called before ``optimizer.step()`` (older loops do),
two optimizers over one model (Muon + AdamW style, a GAN's generator and discriminator under one wrapper) with a
monitor per optimizer, and gradient accumulation with the monitor called once per micro-batch.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import lrkit
from _helpers import TINY_X as X  # noqa: F401
from _helpers import TINY_Y as Y  # noqa: F401
from _helpers import tiny_loss as _loss
from _helpers import tiny_model as _model
from lrkit.monitor.checks import NonFinite


def _nan_monitor(model: torch.nn.Module, opt: torch.optim.Optimizer, sched: object = None,
                 action: str = "skip") -> lrkit.Monitor:
    """A monitor acting on non-finite values only, every step full (the steps are tiny)."""
    return lrkit.Monitor(model, opt, sched, on_divergence=action, checks=[NonFinite()], grad_every=1)


# ---------------------------------------------------------------------------------------------------------------
# 1. scheduler.step() before optimizer.step(): a skipped step must keep the scheduler's LR


@pytest.mark.parametrize("make", [
    lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9),  # chainable: the next LR is computed from group["lr"]
    lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5),
    lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 0.8 ** t),
], ids=["ExponentialLR", "StepLR", "LambdaLR"])
def test_skip_with_scheduler_stepped_before_optimizer_keeps_the_schedule(make: object) -> None:
    """A loop that steps its scheduler *before* ``optimizer.step()`` (the pre-1.1 torch order, still common) and
    meets a skipped step: the LR the scheduler wrote stays, as it does in the usual order. Before the fix, the undo
    took the scheduler's write (made between ``after_backward`` and ``optimizer.step()``) for the optimizer's own
    bookkeeping and put the previous LR back: a chainable scheduler (ExponentialLR) then ran one factor behind for
    the rest of the run, a closed-form one (StepLR, LambdaLR) trained one step at the wrong LR."""
    lrs = {}
    for order in ("optimizer_first", "scheduler_first"):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = make(opt)  # type: ignore[operator]
        monitor = _nan_monitor(model, opt, sched)
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's "lr_scheduler.step() before optimizer.step()" warning
            for i in range(7):
                opt.zero_grad()
                loss = _loss(model)
                loss.backward()
                monitor.after_backward(loss * float("nan") if i == 2 else loss)
                if order == "scheduler_first":
                    sched.step()
                    opt.step()
                else:
                    opt.step()
                    sched.step()
                monitor.after_step()
                seen.append(opt.param_groups[0]["lr"])
        assert monitor.skipped == 1
        lrs[order] = seen
    assert lrs["scheduler_first"] == pytest.approx(lrs["optimizer_first"], rel=1e-12)


def test_skip_still_undoes_what_the_optimizer_step_wrote_into_its_groups_with_scheduler_first() -> None:
    """The pre-step record must not weaken the undo of the optimizer's own group writes: a group counter that
    ``optimizer.step()`` bumps is put back on a skipped step whichever order the loop steps in."""

    class Counting(torch.optim.SGD):
        @torch.no_grad()
        def step(self, closure=None):  # type: ignore[no-untyped-def]
            for g in self.param_groups:
                g["k"] = g.get("k", 0) + 1
            return super().step(closure)

    model = _model()
    opt = Counting(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)
    monitor = _nan_monitor(model, opt, sched)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(4):
            opt.zero_grad()
            loss = _loss(model)
            loss.backward()
            monitor.after_backward(loss * float("nan") if i == 2 else loss)
            sched.step()
            opt.step()
            monitor.after_step()
    assert monitor.skipped == 1
    assert opt.param_groups[0]["k"] == 3  # four steps, one of them skipped
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**4, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# 2. two optimizers over one model, one monitor each: a skip undoes its own optimizer's step only


def _two_optimizers() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.Optimizer,
                               list[torch.Tensor], list[torch.Tensor]]:
    model = _model()
    mats = [p for p in model.parameters() if p.ndim == 2]
    vecs = [p for p in model.parameters() if p.ndim < 2]
    return model, torch.optim.SGD(mats, lr=0.1, momentum=0.9), torch.optim.Adam(vecs, lr=0.01), mats, vecs


@pytest.mark.parametrize("action", ["skip", "rollback"])  # a rollback before any healthy snapshot undoes the step
def test_skip_on_one_optimizer_keeps_the_other_optimizers_step(action: str) -> None:
    """Muon + AdamW style: matrices in one optimizer, biases in another, a monitor on each (or on the main one
    only). A non-finite gradient in the matrices makes the first monitor skip its step; the second optimizer's step
    on the biases was healthy and must stay — its state (Adam's moments, step count) has already moved on. Before
    the fix the undo wrote the whole model back, so the biases lost that step while Adam kept counting it."""
    model, o1, o2, mats, vecs = _two_optimizers()
    m1 = _nan_monitor(model, o1, action=action)
    m2 = _nan_monitor(model, o2)
    ref_model, r1, r2, ref_mats, _ = _two_optimizers()  # the same loop, o1 skipping its bad step itself
    for i in range(4):
        for opt in (o1, o2, r1, r2):
            opt.zero_grad()
        _loss(model).backward()
        _loss(ref_model).backward()
        if i == (0 if action == "rollback" else 2):
            mats[0].grad[0, 0] = float("nan")
            ref_mats[0].grad = None
            ref_mats[1].grad = None
        m1.after_backward(_loss(model).detach())
        m2.after_backward(_loss(model).detach())
        o1.step()
        o2.step()
        m1.after_step()
        m2.after_step()
        r1.step()
        r2.step()
        if action == "rollback" and i == 0:
            r1.param_groups[0]["lr"] *= m1.backoff  # what the rollback's back-off did to o1
    assert m1.events and m1.events[0].action == action and not m2.events
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert int(o2.state[vecs[0]]["step"]) == 4


# ---------------------------------------------------------------------------------------------------------------
# 3. gradient accumulation with the monitor called once per micro-batch


def _accumulate(per_micro_batch: bool, *, skip_once_at: int | None = None) -> tuple[lrkit.Monitor, list[str]]:
    """Four micro-batches per optimizer step, the monitor called once per micro-batch (the misuse) or once per
    optimizer step (the contract); the update-to-weight ratio sampled at every step so that every step counts."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = lrkit.Monitor(model, opt, sample_every=1, grad_every=1)
    caught = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for step in range(12):
            opt.zero_grad()
            for micro in range(4):
                loss = _loss(model) / 4
                loss.backward()
                last = micro == 3
                if per_micro_batch or last:
                    monitor.after_backward(loss)
                if last and step != skip_once_at:
                    opt.step()
                if per_micro_batch or last:
                    monitor.after_step()
    caught = [str(w.message) for w in seen if issubclass(w.category, UserWarning)]
    return monitor, caught


def test_monitor_called_per_micro_batch_is_named_and_records_no_zero_update() -> None:
    """A loop that calls ``after_backward``/``after_step`` once per micro-batch while ``optimizer.step()`` runs once
    per four: the monitor counts micro-batches as steps. Before the fix nothing said so, and every update-ratio
    sample taken on a micro-batch without an optimizer step recorded a ratio of exactly 0 — an LR "too low" by any
    measure, fed to ``lr_too_low`` and to ``loss_above_start``'s "are the weights moving" test. Now such a sample
    is dropped, and the second one raises one ``UserWarning`` naming the fix."""
    monitor, caught = _accumulate(per_micro_batch=True)
    ratios = monitor.record.window("update_ratio", 1000)
    assert ratios and min(ratios) > 0
    assert len(caught) == 1
    assert "optimizer.step() was not called" in caught[0] and "micro-batch" in caught[0]


def test_accumulation_by_the_contract_and_one_skipped_step_do_not_warn() -> None:
    """Called once per optimizer step (the contract) nothing is said; one optimizer step the loop leaves out itself
    (``GradScaler`` skipping an overflow, a guard in the loop) is not a pattern either: its sample is dropped, no
    warning."""
    monitor, caught = _accumulate(per_micro_batch=False)
    assert caught == [] and len(monitor.record.window("update_ratio", 1000)) == 12
    monitor, caught = _accumulate(per_micro_batch=False, skip_once_at=5)
    ratios = monitor.record.window("update_ratio", 1000)
    assert caught == [] and len(ratios) == 11 and min(ratios) > 0


def test_micro_batch_warning_points_at_the_loop_and_an_error_filter_leaves_the_monitor_consistent() -> None:
    """The warning is attributed to the loop's ``after_step()`` line; with a filter that turns it into an error,
    ``after_step`` raises it only after the step is finished, and the monitor can be used on."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = lrkit.Monitor(model, opt, sample_every=1, grad_every=1)
    raised = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for step in range(8):
            opt.zero_grad()
            loss = _loss(model)
            loss.backward()
            monitor.after_backward(loss)
            if step % 4 == 3:
                opt.step()
            try:
                monitor.after_step()
            except UserWarning as exc:
                raised += 1
                assert "once per micro-batch" in str(exc)
    assert raised == 1 and monitor.step == 7
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        monitor = lrkit.Monitor(model, opt, sample_every=1, grad_every=1)
        for _ in range(3):
            opt.zero_grad()
            _loss(model).backward()
            monitor.after_backward(_loss(model).detach())
            monitor.after_step()
    assert [w.filename for w in seen if issubclass(w.category, UserWarning)] == [__file__]
