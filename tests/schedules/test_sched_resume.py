"""Resume (save, new optimizer + scheduler, load, continue == uninterrupted) for every family; seek; lr_multiplier."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from _sched_helpers import group_momentum, make_optimizer, trace

from lrkit._state import Snapshot
from lrkit.schedules import available, from_spec

EPOCHS, SPE = 6, 8
TOTAL = EPOCHS * SPE
METRICS = [1.0, 0.8, 0.8, 0.81, 0.79, 0.8]  # one per epoch: improves, then stalls (plateau reduces)

# every registered family, several composed with warmup / bias warmup / momentum, one without lr0 (peak from groups)
SPECS = {
    "constant": "constant lr0=0.05 warmup_steps=7",
    "step": "step lr0=0.1 step_size=2 gamma=0.5",
    "multistep": "multistep lr0=0.1 milestones=1,3",
    "exponential": "exponential lr0=0.1 gamma=0.7",
    "polynomial": "polynomial lr0=0.1 power=2",
    "linear": "linear lr0=0.1 lrf=0.05 warmup_epochs=1",
    "cosine": "cosine lr0=0.1 lrf=0.01 warmup_epochs=1 warmup_bias_lr=0.2 warmup_momentum=0.5 momentum=0.9",
    "cosine_restarts": "cosine_restarts lr0=0.1 T_0=1 T_mult=2",
    "cyclic": "cyclic base_lr=0.01 max_lr=0.1 step_size_up=5 mode=triangular2",
    "onecycle": "onecycle max_lr=0.1 three_phase=true",
    "wsd": "wsd lr0=0.1 warmup_steps=5 decay_frac=0.3 decay_type=1-sqrt",
    "linear_to_zero": "linear_to_zero lr0=0.1 warmup_steps=5",
    "inverse_sqrt": "inverse_sqrt lr0=0.1 warmup_steps=5",
    "plateau": "plateau lr0=0.1 patience=1 factor=0.5 warmup_steps=5",
    "ultralytics": "ultralytics lr0=0.1 cos_lr=true warmup_epochs=1",
    "cosine-from-optimizer": "cosine eta_min=0.001 cooldown_steps=6",
}


def test_every_registered_family_is_covered() -> None:
    assert {e.name for e in available()} <= {k.split("-")[0] for k in SPECS}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


def _optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    groups = [
        {"params": [model.weight], "lr": 0.1},
        {"params": [model.bias], "lr": 0.05, "lr_scale": 0.5, "is_bias": True},
    ]
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(5, 4, generator=g), torch.randn(5, 3, generator=g)) for _ in range(TOTAL)]


def _run(model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any, start: int, stop: int,
         data: list[tuple[torch.Tensor, torch.Tensor]], log: list[tuple[float, ...]]) -> None:
    for t in range(start, stop):
        log.append((*(float(g["lr"]) for g in opt.param_groups), group_momentum(opt.param_groups[0])))
        x, y = data[t]
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
        if (t + 1) % SPE == 0 and sched.schedule.stateful:
            sched.observe(METRICS[t // SPE])


def _save(*objs: Any) -> list[Any]:
    buf = io.BytesIO()
    torch.save([o.state_dict() for o in objs], buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("order", ["sched-opt-load", "opt-sched-load", "load-sched-first"])
@pytest.mark.parametrize("stop", [13, 16, 37])
@pytest.mark.parametrize("name", list(SPECS))
def test_resume_equals_uninterrupted(name: str, stop: int, order: str) -> None:
    spec, data = SPECS[name], _data()
    model = _model()
    opt = _optimizer(model)
    sched = from_spec(spec, epochs=EPOCHS, steps_per_epoch=SPE).to_torch(opt)
    ref: list[tuple[float, ...]] = []
    _run(model, opt, sched, 0, TOTAL, data, ref)

    model1 = _model()
    opt1 = _optimizer(model1)
    sched1 = from_spec(spec, epochs=EPOCHS, steps_per_epoch=SPE).to_torch(opt1)
    got: list[tuple[float, ...]] = []
    _run(model1, opt1, sched1, 0, stop, data, got)
    m_state, o_state, s_state = _save(model1, opt1, sched1)

    model2 = _model()
    model2.load_state_dict(m_state)
    opt2 = _optimizer(model2)
    if order == "sched-opt-load":
        sched2 = from_spec(spec, epochs=EPOCHS, steps_per_epoch=SPE).to_torch(opt2)
        opt2.load_state_dict(o_state)
        sched2.load_state_dict(s_state)
    elif order == "opt-sched-load":
        opt2.load_state_dict(o_state)
        sched2 = from_spec(spec, epochs=EPOCHS, steps_per_epoch=SPE).to_torch(opt2)
        sched2.load_state_dict(s_state)
    else:  # the scheduler's state before the optimizer's: the restored LR must still be right
        sched2 = from_spec(spec, epochs=EPOCHS, steps_per_epoch=SPE).to_torch(opt2)
        sched2.load_state_dict(s_state)
        opt2.load_state_dict(o_state)
    _run(model2, opt2, sched2, stop, TOTAL, data, got)

    assert got == ref  # exactly: LR of both groups and momentum at every step
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    if name == "plateau":
        assert sched2.schedule.main.reductions  # the run did reduce, so the state really had to travel


def test_resume_with_last_step_like_torch() -> None:
    spec = SPECS["onecycle"]
    opt = make_optimizer([0.1])
    ref, _ = trace(opt, from_spec(spec, total_steps=TOTAL).to_torch(opt), TOTAL)
    opt1 = make_optimizer([0.1])
    s1 = from_spec(spec, total_steps=TOTAL).to_torch(opt1)
    trace(opt1, s1, 20)
    opt2 = make_optimizer([0.1])
    opt2.load_state_dict(opt1.state_dict())
    s2 = from_spec(spec, total_steps=TOTAL).to_torch(opt2, last_step=19)
    got, _ = trace(opt2, s2, TOTAL - 20)
    assert got == ref[20:]


def test_seek_equals_stepping() -> None:
    spec = "cosine lr0=0.1 lrf=0.01 warmup_steps=10 warmup_momentum=0.5 momentum=0.9"
    opt = make_optimizer([0.1, 0.1], bias=[True, False])
    ref, ref_m = trace(opt, from_spec(spec, total_steps=100).to_torch(opt), 100)
    opt2 = make_optimizer([0.1, 0.1], bias=[True, False])
    s2 = from_spec(spec, total_steps=100).to_torch(opt2)
    for k in (57, 3, 99, 0, 42):
        s2.seek(k)
        assert [g["lr"] for g in opt2.param_groups] == ref[k]
        assert [g["momentum"] for g in opt2.param_groups] == ref_m[k]
        assert s2.get_last_lr() == ref[k]
    with pytest.raises(ValueError, match="step=-1"):
        s2.seek(-1)


def test_lr_multiplier_backs_off_permanently_and_is_saved() -> None:
    spec = "cosine lr0=0.1 lrf=0.01"
    opt = make_optimizer([0.1, 0.05], scales=[1.0, 0.5])
    ref, _ = trace(opt, from_spec(spec, total_steps=60).to_torch(opt), 60)
    opt1 = make_optimizer([0.1, 0.05], scales=[1.0, 0.5])
    s1 = from_spec(spec, total_steps=60).to_torch(opt1)
    got, _ = trace(opt1, s1, 20)
    s1.lr_multiplier = 0.25  # a health monitor backs off: effective at once, and for every later step
    assert opt1.param_groups[0]["lr"] == pytest.approx(0.25 * ref[20][0], abs=1e-15)
    state = s1.state_dict()
    assert state["lr_multiplier"] == 0.25
    opt2 = make_optimizer([0.1, 0.05], scales=[1.0, 0.5])
    opt2.load_state_dict(opt1.state_dict())
    s2 = from_spec(spec, total_steps=60).to_torch(opt2)
    s2.load_state_dict(state)
    rest, _ = trace(opt2, s2, 40)
    flat = [v for row in rest for v in row]
    assert flat == pytest.approx([0.25 * v for row in ref[20:] for v in row], abs=1e-15)
    assert got == ref[:20]
    for bad in (0, -1.0, float("inf"), "x"):
        with pytest.raises(ValueError, match="lr_multiplier"):
            s2.lr_multiplier = bad  # type: ignore[assignment]


def test_snapshot_restores_scheduler_with_model_and_optimizer() -> None:
    model = _model()
    opt = _optimizer(model)
    sched = from_spec(SPECS["wsd"], total_steps=TOTAL).to_torch(opt)
    data = _data()
    _run(model, opt, sched, 0, 10, data, [])
    snap = Snapshot.capture(model, opt, sched)
    lrs = [g["lr"] for g in opt.param_groups]
    _run(model, opt, sched, 10, 30, data, [])
    snap.restore()
    assert sched.last_epoch == 10 and [g["lr"] for g in opt.param_groups] == lrs


def test_adapter_rejects_what_it_cannot_do() -> None:
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="momentum"):
        from_spec("onecycle max_lr=0.1", total_steps=10).to_torch(torch.optim.Adagrad(p, lr=0.1))
    from_spec("onecycle max_lr=0.1 cycle_momentum=false", total_steps=10).to_torch(torch.optim.Adagrad(p, lr=0.1))
    opt = torch.optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="initial_lr"):
        from_spec("cosine", total_steps=10).to_torch(opt, last_step=3)
    sched = from_spec("cosine", total_steps=10).to_torch(opt)
    with pytest.raises(TypeError, match="no argument"):
        sched.step(3)
    with pytest.raises(TypeError, match="only 'plateau'"):
        sched.observe(1.0)
    torch_state = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(p, lr=0.1), 3).state_dict()
    with pytest.raises(ValueError, match="not an lrkit scheduler state"):
        sched.load_state_dict(torch_state)
    two = make_optimizer([0.1, 0.1])
    with pytest.raises(ValueError, match="param groups"):
        from_spec("cosine", total_steps=10).to_torch(two).load_state_dict(sched.state_dict())
    with pytest.raises(TypeError, match="Optimizer"):
        from_spec("cosine", total_steps=10).to_torch("sgd")  # type: ignore[arg-type]


def test_peak_from_spec_honours_lr_scale_and_ignores_group_lr() -> None:
    opt = make_optimizer([0.5, 0.5, 0.5], scales=[1.0, 0.1, 0.0])
    from_spec("constant lr0=0.01").to_torch(opt)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.001, 0.0])
    # without lr0 each group's own LR is its peak (it already carries its ratio, e.g. from scaling.param_groups)
    opt2 = make_optimizer([0.5, 0.05], scales=[1.0, 0.1])
    from_spec("constant").to_torch(opt2)
    assert [g["lr"] for g in opt2.param_groups] == [0.5, 0.05]


@pytest.mark.parametrize(
    ("saved", "other"),
    [
        ("cosine lr0=0.1", "step lr0=0.1 step_size=3 unit=step"),  # another family
        ("cosine lr0=0.1", "cosine lr0=0.2"),  # another peak
        ("cosine eta_min=0.001", "cosine eta_min=0.01"),  # another floor (peak from the optimizer)
        ("wsd lr0=0.1 warmup_steps=5 decay_frac=0.3", "wsd lr0=0.1 warmup_steps=5 decay_frac=0.5"),
    ],
)
def test_load_refuses_a_state_from_another_schedule(saved: str, other: str) -> None:
    model = _model()
    opt = _optimizer(model)
    sched = from_spec(saved, total_steps=TOTAL).to_torch(opt)
    _run(model, opt, sched, 0, 5, _data(), [])
    (state,) = _save(sched)
    target = from_spec(other, total_steps=TOTAL).to_torch(_optimizer(_model()))
    before = target.state_dict()
    with pytest.raises(ValueError, match="different schedule") as err:
        target.load_state_dict(state)
    assert repr(saved) in str(err.value) and repr(other) in str(err.value)
    assert target.state_dict() == before  # nothing half-loaded
    # another length is another curve too
    with pytest.raises(ValueError, match=f"total_steps={TOTAL + 8}"):
        from_spec(saved, total_steps=TOTAL + 8).to_torch(_optimizer(_model())).load_state_dict(state)


def test_load_accepts_the_same_schedule_replanned_and_states_without_a_fingerprint() -> None:
    model = _model()
    opt = _optimizer(model)
    sched = from_spec(SPECS["cosine"], epochs=EPOCHS, steps_per_epoch=SPE).to_torch(opt)
    _run(model, opt, sched, 0, 10, _data(), [])
    sched.replan(total_steps=2 * TOTAL)
    (state,) = _save(sched)
    fresh = from_spec(SPECS["cosine"], epochs=EPOCHS, steps_per_epoch=SPE).to_torch(_optimizer(_model()))
    fresh.load_state_dict(state)  # the re-plan is replayed before the comparison
    assert fresh.schedule.total_steps == 2 * TOTAL and fresh.last_epoch == sched.last_epoch
    assert fresh.get_last_lr() == pytest.approx(sched.get_last_lr(), rel=1e-12)
    legacy = {k: v for k, v in state.items() if k != "fingerprint"}  # saved before lrkit recorded it
    other = from_spec("cosine lr0=0.3", total_steps=TOTAL).to_torch(_optimizer(_model()))
    other.load_state_dict(legacy)
    assert other.last_epoch == sched.last_epoch
