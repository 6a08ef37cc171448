"""Second bug-hunt pass on lrkit.schedules: one regression test per defect found, plus hypothesis properties over
random valid specs of every registered family (to_torch against the closed form, resume with back-offs, seeks and
re-plans, string/dict/YAML round trips)."""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lrkit.schedules import available, from_spec

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(1))


# ---------------------------------------------------------------------------------------------------------------
# Defects, one test each
# ---------------------------------------------------------------------------------------------------------------
def test_state_dict_of_a_peakless_cyclic_with_base_lr_above_one() -> None:
    # the fingerprint bound the schedule to a peak of 1.0, which cyclic refuses below base_lr: state_dict() raised
    def build() -> tuple[torch.optim.Optimizer, Any]:
        opt = torch.optim.SGD([_param()], lr=5.0, momentum=0.9)
        return opt, from_spec("cyclic base_lr=2 step_size_up=4").to_torch(opt)

    opt, sched = build()
    for _ in range(3):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert state["last_step"] == 3
    opt2, sched2 = build()
    sched2.load_state_dict(state)
    # base_lr + (max_lr - base_lr) * h with max_lr = the group's own LR 5.0, h = 3/4 at step 3 (torch's CyclicLR)
    assert opt2.param_groups[0]["lr"] == pytest.approx(2.0 + 3.0 * 0.75, rel=1e-12)
    # and a state from another cyclic is still refused
    opt3 = torch.optim.SGD([_param()], lr=5.0, momentum=0.9)
    other = from_spec("cyclic base_lr=3 step_size_up=4").to_torch(opt3)
    with pytest.raises(ValueError, match="different schedule"):
        other.load_state_dict(state)


def test_a_plateau_state_does_not_load_into_a_closed_form_schedule_with_the_same_warmup() -> None:
    # both are Composed (warmup in front) with the same length: the plateau state has no curve to compare, so it
    # loaded silently and the reductions it carried were dropped
    def build(spec: str) -> tuple[torch.optim.Optimizer, Any]:
        opt = torch.optim.SGD([_param()], lr=0.1)
        return opt, from_spec(spec, total_steps=100).to_torch(opt)

    opt, plateau = build("plateau lr0=0.1 patience=0 warmup_steps=10")
    for _ in range(20):
        opt.step()
        plateau.step()
    plateau.observe(1.0)
    plateau.observe(1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01, rel=1e-12)
    state = plateau.state_dict()
    for other in ("constant lr0=0.1 warmup_steps=10", "linear lr0=0.1 lrf=1 warmup_steps=10"):
        _, sched = build(other)
        with pytest.raises(ValueError, match="different schedule"):
            sched.load_state_dict(state)
    _, same = build("plateau lr0=0.1 patience=0 warmup_steps=10")
    same.load_state_dict(state)
    assert same.schedule.lr(20) == pytest.approx(0.01, rel=1e-12)


def test_state_saved_right_after_add_param_group_resumes() -> None:
    # state_dict() before the next step() saved the bases of the old groups only; the resume then refused it
    def build() -> tuple[torch.optim.Optimizer, Any]:
        opt = torch.optim.SGD([_param()], lr=0.1)
        return opt, from_spec("cosine lr0=0.1 lrf=0.1", total_steps=20).to_torch(opt)

    opt, sched = build()
    for _ in range(5):
        opt.step()
        sched.step()
    opt.add_param_group({"params": [_param()], "lr": 0.01, "lr_scale": 0.5})
    state = sched.state_dict()  # a checkpoint taken at the end of the epoch that unfroze the backbone
    assert len(state["base_lrs"]) == 2
    opt2, sched2 = build()
    opt2.add_param_group({"params": [_param()], "lr": 0.01, "lr_scale": 0.5})
    sched2.load_state_dict(state)
    s = from_spec("cosine lr0=0.1 lrf=0.1", total_steps=20)
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([s.lr(5), 0.5 * s.lr(5)], rel=1e-12)


def test_ultralytics_takes_its_warmup_in_steps_instead_of_stacking_a_second_warmup() -> None:
    s = from_spec("ultralytics lr0=0.01 warmup_steps=10", epochs=10, steps_per_epoch=10)
    assert [p.name for p in s.phases] == ["warmup", "decay"]
    ref = from_spec("linear lr0=0.01 warmup_steps=10 warmup_bias_lr=0.1 warmup_momentum=0.8 momentum=0.937",
                    epochs=10, steps_per_epoch=10)
    for t in range(100):
        assert s.lr(t) == ref.lr(t) and s.lr(t, is_bias=True) == ref.lr(t, is_bias=True)
        assert s.momentum(t) == ref.momentum(t)
    with pytest.raises(ValueError, match="warmup_steps=10 and warmup_epochs=2"):
        from_spec("ultralytics warmup_steps=10 warmup_epochs=2", epochs=10, steps_per_epoch=10)


@pytest.mark.parametrize(("extra", "generic"), [
    ("warmup_type=cosine", "warmup_type=cosine"),
    ("warmup_start_factor=0.5", "warmup_start_factor=0.5"),
])
def test_ultralytics_honours_the_generic_warmup_options(extra: str, generic: str) -> None:
    # they were refused with "add warmup_steps or warmup_epochs", even with warmup_epochs given
    s = from_spec(f"ultralytics lr0=0.01 cos_lr=true warmup_epochs=2 {extra}", epochs=10, steps_per_epoch=10)
    ref = from_spec(f"cosine lr0=0.01 warmup_epochs=2 {generic} warmup_bias_lr=0.1 warmup_momentum=0.8 "
                    "momentum=0.937", epochs=10, steps_per_epoch=10)
    assert [s.lr(t) for t in range(100)] == [ref.lr(t) for t in range(100)]


@pytest.mark.parametrize(("spec", "match"), [
    ("ultralytics warmup_prefix=true", "ultralytics.*blends its warmup"),
    ("wsd lr0=0.1 decay_frac=0.1 warmup_steps=5 warmup_prefix=false", "wsd.*warmup in front"),
])
def test_warmup_prefix_on_a_family_with_its_own_warmup_is_named_clearly(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_spec(spec, epochs=10, steps_per_epoch=10)
    # the family's own value is accepted (it changes nothing)
    same = spec.replace("=true", "=false") if "ultralytics" in spec else spec.replace("=false", "=true")
    assert from_spec(same, epochs=10, steps_per_epoch=10).total_steps == 100


@pytest.mark.parametrize("spec", [
    "wsd lr0=0.1 decay_frac=0.1 warmup_type=cosien",
    "wsd lr0=0.1 decay_frac=0.1 warmup_steps=0 warmup_type=cosien",
    "wsd lr0=0.1 decay_frac=0.1 warmup_start_factor=1.5",
    "ultralytics warmup_epochs=0 warmup_type=cosien",
])
def test_warmup_options_are_checked_without_a_warmup(spec: str) -> None:
    # a typo in a warmup option passed silently when the family's warmup was empty
    with pytest.raises(ValueError, match="warmup_type|warmup_start_factor"):
        from_spec(spec, total_steps=100, steps_per_epoch=10)


def test_exponential_warmup_with_a_zero_bias_lr_is_refused_up_front() -> None:
    # it built, then raised "exponential warmup needs a start > 0" from inside scheduler.step()
    with pytest.raises(ValueError, match=r"warmup_bias_lr=0 .*exponential"):
        from_spec("cosine lr0=0.1 warmup_steps=5 warmup_type=exponential warmup_bias_lr=0", total_steps=100)
    s = from_spec("cosine lr0=0.1 warmup_steps=5 warmup_type=exponential warmup_bias_lr=0.2", total_steps=100)
    assert s.lr(0, is_bias=True) == pytest.approx(0.2, rel=1e-12)


def test_ultralytics_lrf_none_takes_the_default() -> None:
    # the label formatted None with :g and the user saw "unsupported format string passed to NoneType.__format__"
    s = from_spec("ultralytics lr0=0.01 lrf=none", epochs=10, steps_per_epoch=10)
    assert s.lr(99) == from_spec("ultralytics lr0=0.01", epochs=10, steps_per_epoch=10).lr(99)
    assert s.lr(99) == pytest.approx(0.01 * (0.01 + (1 - 0.01) * (1 - 99 / 100)), rel=1e-12)  # Ultralytics' linear lf


@pytest.mark.parametrize("value", [None, "abc", {"a": 1}])
def test_milestones_that_are_not_numbers_name_the_whole_value(value: object) -> None:
    with pytest.raises(ValueError, match=r"milestones=.* must be a number or a list of numbers"):
        from_spec({"name": "multistep", "lr0": 0.1, "milestones": value}, steps_per_epoch=10)


# ---------------------------------------------------------------------------------------------------------------
# Properties over random valid specs of every family
# ---------------------------------------------------------------------------------------------------------------
FAMILIES = [e.name for e in available()]


@st.composite
def specs(draw: st.DrawFn) -> tuple[dict[str, Any], int, int]:
    """A random valid spec dict of any registered family, with optional warmup/cooldown, and its epochs, spe."""
    name = draw(st.sampled_from(FAMILIES))
    spe, epochs = draw(st.integers(1, 10)), draw(st.integers(2, 12))
    total = spe * epochs
    d: dict[str, Any] = {"name": name}
    peak = draw(st.sampled_from([None, 0.1, 2.0]))
    if name == "step":
        d.update(step_size=draw(st.integers(1, 5)), gamma=draw(st.floats(0.05, 1.0)))
    elif name == "multistep":
        d.update(milestones=sorted(draw(st.lists(st.integers(1, 15), min_size=1, max_size=3))),
                 gamma=draw(st.floats(0.05, 1.0)))
    elif name == "exponential":
        d["gamma"] = draw(st.floats(0.5, 1.0))
    elif name == "polynomial":
        d["power"] = draw(st.floats(0.0, 3.0))
    elif name in ("linear", "cosine"):
        d["lrf"] = draw(st.floats(0.0, 1.0))
    elif name == "cosine_restarts":
        d.update(T_0=draw(st.integers(1, 4)), T_mult=draw(st.integers(1, 3)), lrf=draw(st.floats(0.0, 1.0)))
    elif name == "cyclic":
        d.update(base_lr=0.0 if peak is None else peak * draw(st.floats(0.0, 1.0)),
                 step_size_up=draw(st.integers(1, 15)),
                 mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])))
        if d["mode"] == "exp_range":
            d["gamma"] = draw(st.floats(0.9, 1.0))
    elif name == "onecycle":
        d.update(pct_start=draw(st.floats(0.1, 0.5)), three_phase=draw(st.booleans()),
                 anneal_strategy=draw(st.sampled_from(["cos", "linear"])))
    elif name == "wsd":
        d.update(decay_frac=draw(st.floats(0.05, 0.4)), warmup_steps=draw(st.integers(0, total // 4)),
                 decay_type=draw(st.sampled_from(["linear", "cosine", "1-sqrt"])),
                 min_lr_ratio=draw(st.floats(0.0, 1.0)))
    elif name == "inverse_sqrt":
        d.update(timescale=draw(st.integers(1, 40)), unit="step")
    elif name == "plateau":
        d.update(patience=draw(st.integers(0, 3)), factor=draw(st.floats(0.1, 0.9)))
    if peak is not None:
        d["max_lr" if name in ("cyclic", "onecycle") else "lr0"] = peak
    if name not in ("wsd", "ultralytics"):
        if draw(st.booleans()):
            d["interval"] = "epoch"
        if draw(st.booleans()):
            d.update(warmup_steps=draw(st.integers(1, max(1, total // 4))),
                     warmup_type=draw(st.sampled_from(["linear", "cosine", "1-sqrt", "exponential"])))
            if draw(st.booleans()):
                d["warmup_prefix"] = draw(st.booleans())
        if name != "plateau" and draw(st.booleans()):
            d.update(cooldown_steps=draw(st.integers(1, max(1, total // 4))),
                     cooldown_type=draw(st.sampled_from(["linear", "cosine", "1-sqrt"])))
    return d, epochs, spe


def _build(d: dict[str, Any], epochs: int, spe: int) -> Any:
    try:
        return from_spec(d, epochs=epochs, steps_per_epoch=spe)
    except ValueError as e:  # the documented refusals of a random draw (nothing left of the run, ...)
        refusals = ("leave nothing", "leave no stable", "empty one-cycle", "longer than the schedule",
                    "less than one", "cooldown_min_ratio", "would lower the LR")
        assume(not any(r in str(e) for r in refusals))
        raise


def _as_string(d: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, list):
            return ",".join(fmt(x) for x in v)
        if isinstance(v, bool):
            return str(v).lower()
        return repr(v) if isinstance(v, float) else str(v)

    return " ".join([d["name"], *(f"{k}={fmt(v)}" for k, v in d.items() if k != "name")])


def _optimizer(kind: str = "sgd") -> torch.optim.Optimizer:
    groups = [{"params": [_param()], "lr": 0.5},
              {"params": [_param()], "lr": 0.25, "lr_scale": 0.5, "is_bias": True}]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=0.5, momentum=0.9)
    return torch.optim.Adam(groups, lr=0.5)


def _row(opt: torch.optim.Optimizer) -> list[float]:
    g = opt.param_groups[0]
    return [float(x["lr"]) for x in opt.param_groups] + [float(g["momentum"] if "momentum" in g else g["betas"][0])]


@SETTINGS
@given(specs())
def test_random_specs_are_bounded_round_trip_and_match_to_torch(arg: tuple[dict[str, Any], int, int]) -> None:
    d, epochs, spe = arg
    s = _build(d, epochs, spe)
    total = s.total_steps
    bound = s if s.peak_lr is not None else s.with_peak(0.5)
    vals = [bound(t) for t in range(total + 5)]
    assert all(math.isfinite(v) and v >= 0.0 for v in vals)
    if d["name"] not in ("cyclic", "onecycle", "cosine_restarts"):  # no family but these climbs above its peak
        assert max(vals) <= 1.0 + 1e-12
    assert bound.record()["lr"] == [bound.lr(t) for t in range(total)]
    # the same schedule from the string, the dict and the dict through YAML
    for other in (from_spec(_as_string(d), epochs=epochs, steps_per_epoch=spe),
                  from_spec(yaml.safe_load(yaml.safe_dump(d)), epochs=epochs, steps_per_epoch=spe)):
        ob = other if other.peak_lr is not None else other.with_peak(0.5)
        assert [ob(t) for t in range(total)] == vals[:total]
    # interval=epoch holds the value inside every epoch (no warmup/cooldown drawn across it)
    if d.get("interval") == "epoch" and "warmup_steps" not in d and "cooldown_steps" not in d:
        assert all(len(set(vals[e * spe:(e + 1) * spe])) == 1 for e in range(epochs))
    # to_torch: group 0 at base 0.5 (lr0 * 1 or its own LR), group 1 a bias group at lr_scale 0.5 (or its own 0.25)
    opt = _optimizer()
    sched = s.to_torch(opt)
    for t in range(total + 3):
        lr0, lr1, mom = _row(opt)
        if s.peak_lr is not None:
            want = [s.lr(t), 0.5 * s.lr(t, is_bias=True)]
        else:
            want = [0.5 * s.with_peak(0.5)(t), 0.25 * s.with_peak(0.25)(t, is_bias=True)]
        assert [lr0, lr1] == pytest.approx(want, rel=1e-12, abs=1e-15)
        if s.momentum(t) is not None:
            assert mom == s.momentum(t)
        opt.step()
        sched.step()


@SETTINGS
@given(specs(), st.floats(0.0, 1.0), st.sampled_from(["sgd", "adam"]), st.data())
def test_random_specs_resume_exactly_with_backoffs_seeks_and_replans(
    arg: tuple[dict[str, Any], int, int], where: float, kind: str, data: st.DataObject
) -> None:
    d, epochs, spe = arg
    total = _build(d, epochs, spe).total_steps
    stop = int(where * (total + 2))
    actions = st.sampled_from(["mult", "seek", "replan", "observe"])
    events = data.draw(st.lists(st.tuples(st.integers(0, total), actions), max_size=3))

    def act(sched: Any, t: int) -> None:
        for at, what in events:
            if at != t:
                continue
            if what == "mult":
                sched.lr_multiplier = sched.lr_multiplier * 0.7
            elif what == "seek":
                sched.seek(max(0, t - 2))
            elif what == "replan" and sched.current_step < sched.total_steps:
                sched.replan(total_steps=sched.total_steps + 7)
            elif what == "observe" and sched.schedule.stateful:
                sched.observe(1.0)

    def run(opt: torch.optim.Optimizer, sched: Any, steps: range, out: list[list[float]]) -> None:
        for t in steps:
            out.append(_row(opt))
            opt.step()
            sched.step()
            act(sched, t)

    ref: list[list[float]] = []
    opt = _optimizer(kind)
    run(opt, from_spec(d, epochs=epochs, steps_per_epoch=spe).to_torch(opt), range(total + 5), ref)
    got: list[list[float]] = []
    opt = _optimizer(kind)
    sched = from_spec(d, epochs=epochs, steps_per_epoch=spe).to_torch(opt)
    run(opt, sched, range(stop), got)
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    opt = _optimizer(kind)
    sched = from_spec(d, epochs=epochs, steps_per_epoch=spe).to_torch(opt)
    if data.draw(st.booleans()):
        opt.load_state_dict(ckpt["opt"])
        sched.load_state_dict(ckpt["sched"])
    else:
        sched.load_state_dict(ckpt["sched"])
        opt.load_state_dict(ckpt["opt"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "scheduler.step() before optimizer.step()" after a resume
        run(opt, sched, range(stop, total + 5), got)
    assert got == ref


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 5), st.integers(1, 3),
       st.sampled_from(["step", "multistep", "exponential", "cosine_restarts", "polynomial", "linear", "cosine",
                        "inverse_sqrt", "cyclic"]))
def test_epoch_and_step_units_agree_at_epoch_boundaries(spe: int, k: int, k2: int, family: str) -> None:
    key = {"step": "step_size", "multistep": "milestones", "cosine_restarts": "T_0", "polynomial": "total_iters",
           "linear": "total_iters", "cosine": "T_max", "inverse_sqrt": "timescale",
           "cyclic": "step_size_up"}.get(family)
    extra = {"cosine_restarts": " T_mult=2", "cyclic": " base_lr=0.1"}.get(family, "")
    if family == "exponential":
        in_epochs, in_steps = "gamma=0.7", f"gamma={0.7 ** (1 / spe)!r}"
    elif family == "multistep":
        in_epochs, in_steps = f"milestones={k},{k + k2}", f"milestones={k * spe},{(k + k2) * spe}"
    else:
        in_epochs, in_steps = f"{key}={k}", f"{key}={k * spe}"
    e = from_spec(f"{family} lr0=1 {in_epochs}{extra} unit=epoch", epochs=12, steps_per_epoch=spe)
    s = from_spec(f"{family} lr0=1 {in_steps}{extra} unit=step", epochs=12, steps_per_epoch=spe)
    ie = from_spec(f"{family} lr0=1 {in_epochs}{extra} unit=epoch interval=epoch", epochs=12, steps_per_epoch=spe)
    for epoch in range(12):
        t = epoch * spe
        assert e(t) == pytest.approx(s(t), rel=1e-9, abs=1e-12)
        assert {ie(t + j) for j in range(spe)} == {e(t)}
