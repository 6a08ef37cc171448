"""Session 35c: lrkit.Monitor in hand-written loops (bugs found by a hunt through loops users write)."""

from __future__ import annotations

import math

import pytest
import torch

import lrkit

X = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
Y = X.sum(1, keepdim=True)


class _Branchy(torch.nn.Module):
    """Branch ``b`` takes part in the forward for the first steps only (a conditional branch, an unrouted expert)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 1)
        self.b = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.a(x) + (self.b(x) if t < 5 else 0.0)


def _opt(kind: str, model: torch.nn.Module) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    return torch.optim.AdamW(model.parameters(), lr=0.01)


def _run(*, monitored: bool, kind: str, to_none: bool, zero_at: str = "top", step_on_false: bool = True,
         bad: int = 8, n: int = 15) -> _Branchy:
    """A loop whose step ``bad`` is skipped: by the monitor (a NaN loss, ``non_finite -> skip``), or, unmonitored,
    by not calling ``optimizer.step()`` (the reference). ``zero_at``: where the loop calls ``zero_grad`` ("top":
    before the forward; "after_step": right after ``optimizer.step()``, before ``monitor.after_step()``)."""
    torch.manual_seed(0)
    model = _Branchy()
    opt = _opt(kind, model)
    monitor = lrkit.Monitor(model, opt, actions={"non_finite": "skip"}) if monitored else None
    for t in range(n):
        if zero_at == "top":
            opt.zero_grad(set_to_none=to_none)
        loss = torch.nn.functional.mse_loss(model(X, t), Y)
        loss.backward()
        if monitor is not None:
            ok = monitor.after_backward(float("nan") if t == bad else loss)
            if ok or step_on_false:
                opt.step()
            if zero_at == "after_step":
                opt.zero_grad(set_to_none=to_none)
            monitor.after_step()
        else:
            if t != bad:
                opt.step()
            if zero_at == "after_step":
                opt.zero_grad(set_to_none=to_none)
    return model


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
@pytest.mark.parametrize("to_none", [False, True])
@pytest.mark.parametrize("zero_at", ["top", "after_step"])
def test_skip_keeps_zeroed_grads_of_a_set_to_none_false_loop(kind: str, to_none: bool, zero_at: str) -> None:
    # before: the skip left every gradient None, so under zero_grad(set_to_none=False) a parameter that got no
    # gradient in the next backward passes was never stepped again (momentum, weight decay): branch b drifted
    # from the run that skipped that optimizer.step() itself (0.54 apart with SGD, 0.027 with AdamW)
    got = _run(monitored=True, kind=kind, to_none=to_none, zero_at=zero_at)
    ref = _run(monitored=False, kind=kind, to_none=to_none, zero_at=zero_at)
    for (name, p), q in zip(got.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("to_none", [False, True])
def test_skip_when_the_loop_skips_optimizer_step_itself(to_none: bool) -> None:
    got = _run(monitored=True, kind="sgd", to_none=to_none, step_on_false=False)
    ref = _run(monitored=False, kind="sgd", to_none=to_none)
    for p, q in zip(got.parameters(), ref.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("action", ["rollback", "stop"])
def test_rollback_and_stop_give_back_zeroed_grads_never_the_bad_ones(action: str) -> None:
    torch.manual_seed(0)
    model = _Branchy()
    opt = _opt("sgd", model)
    monitor = lrkit.Monitor(model, opt, actions={"non_finite": action})
    for t in range(4):
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.mse_loss(model(X, t), Y)
        loss.backward()
        if t == 3:
            model.a.weight.grad.fill_(math.nan)
        assert monitor.after_backward(float("nan") if t == 3 else loss) is (t != 3)
        opt.step()
        monitor.after_step()
    assert monitor.last_action == action
    # every gradient tensor is back on its parameter (what zero_grad(set_to_none=False) keeps), zeroed
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) == 0, name
    # the next step trains as a fresh one (no NaN accumulated into)
    if action == "rollback":
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.mse_loss(model(X, 9), Y)
        loss.backward()
        assert monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
        assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("via", ["backoff_lr", "rollback"])
def test_reduce_on_plateau_backoff_holds_below_its_eps(via: str) -> None:
    # ReduceLROnPlateau skips a reduction smaller than its eps (1e-8, an absolute LR difference): unscaled by the
    # back-off, the backed-off LR of a fine-tuning run (1e-6, factor 0.5) stopped being reduced two reductions
    # before the LR it was backed off from, and ended 1.2x above it instead of 0.3x
    def run(backoff: bool) -> list[float]:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=1e-6)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
        monitor = lrkit.Monitor(model, opt, sched) if via == "rollback" else None
        if backoff and monitor is None:
            lrkit.monitor.backoff_lr(opt, sched, 0.3)
        lrs = []
        for t in range(14):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(X), Y)
            loss.backward()
            if monitor is not None:
                monitor.after_backward(float("nan") if backoff and t == 0 else loss)
            opt.step()
            sched.step(1.0)  # a metric that never improves: a reduction at every step
            if monitor is not None:
                monitor.after_step()
            lrs.append(opt.param_groups[0]["lr"])
        return lrs

    got, ref = run(True), run(False)
    if via == "rollback":  # the first step rolled back (nothing healthy yet: undone), its reduction kept
        assert got[0] == pytest.approx(0.3 * ref[0], rel=1e-9)
    assert [g / r for g, r in zip(got, ref)] == pytest.approx([0.3] * len(ref), rel=1e-9)


def test_mark_events_keeps_each_own_check_colour_over_calls() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lrkit.plots.monitor import mark_events

    fig, ax = plt.subplots()
    try:
        ax.plot(range(100), [1.0] * 100, label="loss")
        first = mark_events(ax, [{"step": 10, "check": "mine_a", "action": "warn"}])
        second = mark_events(ax, [{"step": 20, "check": "mine_b", "action": "warn"},
                                  {"step": 30, "check": "mine_a", "action": "warn"}])
        # before: each call started from the first spare colour, so mine_b (drawn first by the second call) took
        # mine_a's colour, and mine_a's second line another one: the legend's two entries looked the same
        a1, b, a2 = (line.get_color() for line in (*first, *second))
        assert a1 == a2 and b != a1
        assert [t.get_text() for t in ax.legend().get_texts()] == ["loss", "mine_a → warn", "mine_b → warn"]
    finally:
        plt.close(fig)


def test_validation_rollback_leaves_the_loops_gradients_as_they_are() -> None:
    # between steps the gradients are the loop's: a val_rising rollback (or stop) restored the best-validation
    # weights and set every gradient to None, so a zero_grad(set_to_none=False) loop never stepped again a
    # parameter that got no gradient in the next backward passes (branch b here)
    torch.manual_seed(0)
    model = _Branchy()
    opt = _opt("sgd", model)
    monitor = lrkit.Monitor(model, opt, val_patience=1)
    for epoch, val in enumerate([1.0, 0.5, 0.9, 2.0]):
        for t in range(3):
            opt.zero_grad(set_to_none=False)
            loss = torch.nn.functional.mse_loss(model(X, 3 * epoch + t), Y) * (0.5 ** epoch)
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
        grads = {name: (p.grad, p.grad.clone()) for name, p in model.named_parameters()}
        monitor.after_validation(val)
        if monitor.last_action == "rollback":
            break
    assert monitor.last_action == "rollback" and monitor.events[-1].check == "val_rising"
    for name, p in model.named_parameters():
        held, values = grads[name]
        assert p.grad is held and torch.equal(p.grad, values), name


@pytest.mark.parametrize("to_none", [True, False])
def test_skip_keeps_the_other_optimizers_gradients_for_its_step_after_after_step(to_none: bool) -> None:
    # one model, two optimizers (a GAN's players under one module, Muon beside AdamW), a monitor on the first; the
    # loop steps the second after monitor.after_step(). Before, the skip's undo set every model parameter's gradient
    # to None, so the second optimizer's step at a skipped step was silently lost too
    def run(monitored: bool) -> torch.nn.Module:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        opt_a = torch.optim.SGD(model[0].parameters(), lr=0.05, momentum=0.9)
        opt_b = torch.optim.AdamW(model[2].parameters(), lr=0.01)
        monitor = lrkit.Monitor(model, opt_a, actions={"non_finite": "skip"}) if monitored else None
        for t in range(8):
            opt_a.zero_grad(set_to_none=to_none)
            opt_b.zero_grad(set_to_none=to_none)
            loss = torch.nn.functional.mse_loss(model(X), Y)
            loss.backward()
            if monitor is not None:
                monitor.after_backward(float("nan") if t == 4 else loss)
                opt_a.step()
                monitor.after_step()
            elif t != 4:
                opt_a.step()
            opt_b.step()
        return model

    got, ref = run(True), run(False)
    for (name, p), q in zip(got.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name
