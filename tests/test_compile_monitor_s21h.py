"""Session 21, s21h: ``lrkit.Monitor`` in a hand-written loop with ``torch.compile`` on CPU, as a user writes it.

(1) ``model = torch.compile(net)``: a forced rollback (an inf loss) and a skip (``actions={"non_finite": "skip"}``)
are those of the uncompiled net bit for bit, no ``MonitorWarning`` is issued and Dynamo compiles the model once (no
recompile at the rollback, the skip or after them). (2) A compiled ``optimizer.step`` (``opt.step =
torch.compile(opt.step)`` or a compiled function that calls ``opt.step()``) with a tensor and a float LR: the
rollback's back-off keeps the tensor LR object and the compiled step takes the backed-off LR. (3)
``state_dict(snapshot=True)`` of a monitor over a compiled model loads into one over the plain model and the reverse.

The ``eager``/``aot_eager`` backends trace with Dynamo (guards, graph capture, AOT autograd) without a C++ compiler.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from lrkit.monitor import MonitorWarning

pytest.importorskip("torch._dynamo")


def _compile_works() -> bool:
    try:
        return bool(torch.compile(lambda t: t + 1, backend="eager")(torch.zeros(1)).item() == 1.0)
    except Exception:  # torch.compile unsupported on this platform / Python
        return False


pytestmark = pytest.mark.skipif(not _compile_works(), reason="torch.compile is not available on this platform")

from torch._dynamo.utils import counters  # noqa: E402

_X = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
_Y = _X.sum(1, keepdim=True)
_BAD = 33  # the step whose loss is made inf


def _net(batchnorm: bool = True) -> nn.Module:
    torch.manual_seed(0)
    if batchnorm:
        return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 1))
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def _kw(action: str) -> dict[str, Any]:
    return {"actions": {"non_finite": "skip"}} if action == "skip" else {"on_divergence": action}


def _loop(model: nn.Module, opt: torch.optim.Optimizer, sched: Any, monitor: lrkit.Monitor, steps: range,
          step_fn: Callable[[], Any] | None = None, on_step: Callable[[int], None] | None = None) -> list[float]:
    losses = []
    for step in steps:
        i = (step * 32) % 256
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(_X[i:i + 32]), _Y[i:i + 32])
        if step == _BAD:
            loss = loss * float("inf")
        loss.backward()
        monitor.after_backward(loss)
        (step_fn or opt.step)()
        sched.step()
        if monitor.after_step():
            break
        losses.append(loss.item())
        if on_step is not None:
            on_step(step)
    return losses


def _same_losses(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


def _events(monitor: lrkit.Monitor) -> list[tuple[int, str, str]]:
    return [(e.step, e.check, e.action) for e in monitor.events]


# ------------------------------------------------------------------------------------- (1) a compiled model
@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("action", ["rollback", "skip"])
def test_compiled_model_rollback_and_skip_are_the_plain_models_without_recompiles(backend: str, action: str) -> None:
    """An inf loss at step 33 of a BatchNorm + Dropout net: the compiled model's run (losses, events, LR, final
    weights and buffers) is the plain one's bit for bit, no MonitorWarning, and Dynamo captures the model's graph
    once over 60 steps with the rollback/skip in them."""

    def run(compiled: bool) -> tuple[Any, ...]:
        torch._dynamo.reset()
        counters.clear()
        net = _net()
        model = torch.compile(net, backend=backend) if compiled else net
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, 20, 0.5)
        monitor = lrkit.Monitor(model, opt, scheduler=sched, snapshot_every=10, sample_every=5, grad_every=4,
                                **_kw(action))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            losses = _loop(model, opt, sched, monitor, range(60))
        lrkit_warnings = [str(w.message) for w in caught if issubclass(w.category, MonitorWarning)]
        return (losses, {k: v.clone() for k, v in net.state_dict().items()}, _events(monitor),
                opt.param_groups[0]["lr"], lrkit_warnings, dict(counters["stats"]))

    plain, compiled = run(False), run(True)
    assert plain[2] == compiled[2] == [(_BAD, "non_finite", action)]
    assert _same_losses(plain[0], compiled[0]) and len(compiled[0]) == 60
    assert all(math.isfinite(v) for v in compiled[0][_BAD + 1:])  # training goes on from finite weights
    assert plain[1].keys() == compiled[1].keys()
    assert all(torch.equal(plain[1][k], compiled[1][k]) for k in plain[1])
    # the skip keeps StepLR's clock (60 steps: halved 3 times); the rollback rewinds it to its snapshot (halved
    # twice by the end) and backs the LR off (x0.3)
    expected = 1e-2 * 0.25 * 0.3 if action == "rollback" else 1e-2 * 0.125
    assert plain[3] == compiled[3] == pytest.approx(expected)
    assert plain[4] == compiled[4] == []
    assert compiled[5].get("unique_graphs") == 1, compiled[5]  # no recompile at the rollback/skip or after it


# ------------------------------------------------------------------------------------- (2) a compiled step
@pytest.mark.parametrize("lr_kind", ["tensor", "float"])
@pytest.mark.parametrize("how", ["opt.step", "function"])
def test_compiled_step_takes_the_backed_off_lr_and_keeps_the_tensor_lr(lr_kind: str, how: str) -> None:
    """SGD (no momentum: the update is exactly ``-lr * grad``) with a compiled step, an inf loss at step 33 and a
    rollback: the tensor LR is the same object throughout, the LRs follow the plain twin's (back-off x0.3), and the
    compiled step right after the rollback moves each weight by ``-lr * grad`` at the backed-off LR."""

    def run(compiled: bool) -> tuple[Any, ...]:
        torch._dynamo.reset()
        net = _net(batchnorm=False)
        opt = torch.optim.SGD(net.parameters(), lr=torch.tensor(1e-2) if lr_kind == "tensor" else 1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, 20, 0.5)  # before compiling the step (see README)
        lr_obj = opt.param_groups[0]["lr"]
        step_fn: Callable[[], Any] = opt.step
        if compiled and how == "opt.step":
            opt.step = torch.compile(opt.step, backend="eager")  # type: ignore[method-assign]
            step_fn = opt.step
        elif compiled:
            @torch.compile(backend="eager")
            def step_fn() -> None:
                opt.step()
        monitor = lrkit.Monitor(net, opt, scheduler=sched, snapshot_every=10, sample_every=5, grad_every=4)
        lrs: list[float] = []
        moves: list[tuple[float, float]] = []
        w = net[0].weight
        before: dict[str, torch.Tensor] = {}

        def on_step(step: int) -> None:
            lrs.append(float(opt.param_groups[0]["lr"]))
            if lr_kind == "tensor":
                assert opt.param_groups[0]["lr"] is lr_obj

        orig_step = step_fn

        def watched_step() -> None:  # the step right after the rollback: weight before, grad, LR used
            if monitor.step == _BAD + 1:
                before["w"], before["g"] = w.detach().clone(), w.grad.detach().clone()
                before["lr"] = torch.as_tensor(opt.param_groups[0]["lr"]).clone()
            orig_step()
            if monitor.step == _BAD + 1:
                expected = before["w"] - before["lr"] * before["g"]
                moves.append(((w.detach() - expected).abs().max().item(), float(before["lr"])))

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            losses = _loop(net, opt, sched, monitor, range(60), step_fn=watched_step, on_step=on_step)
        assert not [w for w in caught if issubclass(w.category, MonitorWarning)]
        return losses, _events(monitor), lrs, moves, isinstance(opt.param_groups[0]["lr"], torch.Tensor)

    plain, compiled = run(False), run(True)
    assert plain[1] == compiled[1] == [(_BAD, "non_finite", "rollback")]
    assert plain[2] == compiled[2] and len(compiled[2]) == 60
    assert compiled[2][_BAD + 1] == pytest.approx(1e-2 * 0.5 * 0.3)  # StepLR's halving at 20, then the back-off
    assert compiled[4] == (lr_kind == "tensor")  # a float LR stays a float
    (err, lr_used), = compiled[3]
    assert lr_used == pytest.approx(1e-2 * 0.5 * 0.3)
    assert err <= 1e-6  # the compiled step used the backed-off LR (the old one would miss by ~lr*|grad|)
    assert all(math.isfinite(v) for v in compiled[0][_BAD + 1:])


# ------------------------------------------------------------------------------------- (3) state_dict across
@pytest.mark.parametrize(("src", "dst"), [(True, False), (False, True)])
def test_snapshot_state_dict_moves_between_compiled_and_plain_model(src: bool, dst: bool) -> None:
    """``state_dict(snapshot=True)`` of a monitor over ``torch.compile(net)`` loads into one over the plain net (and
    the reverse); the resumed run then rolls back at the inf loss exactly as the uninterrupted one: same losses,
    events and final weights."""

    def make(compiled: bool) -> tuple[Any, ...]:
        net = _net()
        model = torch.compile(net, backend="eager") if compiled else net
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, 20, 0.5)
        return net, model, opt, sched, lrkit.Monitor(model, opt, scheduler=sched, snapshot_every=10,
                                                     sample_every=5, grad_every=4)

    torch._dynamo.reset()
    net, model, opt, sched, monitor = make(src)
    _loop(model, opt, sched, monitor, range(32))  # saved after step 31: the rollback at 33 returns to the held snapshot
    saved = (monitor.state_dict(snapshot=True), {k: v.clone() for k, v in net.state_dict().items()},
             opt.state_dict(), sched.state_dict())
    assert "healthy" in saved[0]
    torch.manual_seed(1)  # the Dropout's RNG, the same for both continuations
    tail_a = _loop(model, opt, sched, monitor, range(32, 45))
    events_a, final_a = _events(monitor), {k: v.clone() for k, v in net.state_dict().items()}

    net2, model2, opt2, sched2, monitor2 = make(dst)
    net2.load_state_dict(saved[1])
    opt2.load_state_dict(saved[2])
    sched2.load_state_dict(saved[3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor2.load_state_dict(saved[0])
        torch.manual_seed(1)
        tail_b = _loop(model2, opt2, sched2, monitor2, range(32, 45))
    assert not [w for w in caught if issubclass(w.category, MonitorWarning)]
    assert events_a == _events(monitor2) and (_BAD, "non_finite", "rollback") in events_a
    assert _same_losses(tail_a, tail_b)
    assert all(torch.equal(final_a[k], net2.state_dict()[k]) for k in final_a)


# ------------------------------------------------------------------------------------- recompiles of a compiled step
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("action", ["rollback", "skip"])
def test_compiled_step_does_not_recompile_at_every_skip_or_rollback(optimizer: str, action: str) -> None:
    """``opt.step = torch.compile(opt.step)`` and an inf loss every 10 steps: Dynamo compiles the step's variants
    (the neutralised step, the first rollback/skip) once; later skips and rollbacks reuse them. Before, each skip
    registered new step hooks (Dynamo guards on the hook table's keys) and each restore put new optimizer-state
    tensors in (Dynamo guards on Adam's ``step`` tensor by identity): every bad step recompiled, and after 8 the
    step hit ``recompile_limit`` and ran uncompiled for the rest of the run."""
    torch._dynamo.reset()
    counters.clear()
    net = _net(batchnorm=False)
    cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = cls(net.parameters(), lr=torch.tensor(1e-2))
    sched = torch.optim.lr_scheduler.StepLR(opt, 1000, 0.5)
    opt.step = torch.compile(opt.step, backend="eager")  # type: ignore[method-assign]
    state_tensors = {}
    monitor = lrkit.Monitor(net, opt, scheduler=sched, snapshot_every=10, sample_every=5, grad_every=4,
                            max_rollbacks=100, **_kw(action))
    graphs = []
    for step in range(110):
        i = (step * 32) % 256
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(_X[i:i + 32]), _Y[i:i + 32])
        if step % 10 == 7 and step > 10:
            loss = loss * float("inf")
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        sched.step()
        assert not monitor.after_step()
        graphs.append(counters["stats"]["unique_graphs"])
        if step == 5:
            state_tensors = {id(t) for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)}
    assert monitor.summary()["by_action"] == {action: 10}
    assert graphs[-1] == graphs[40], graphs[::10]  # bad steps at 17, 27, 37 compiled what later ones need
    now = {id(t) for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)}
    assert now == state_tensors  # the restores wrote into the optimizer's own state tensors
