"""Spec strings/dicts: the documented examples work as written; errors name the bad key/value; the registry."""

from __future__ import annotations

import dataclasses
import math

import pytest
import yaml

from lrkit.schedules import (
    Cosine,
    OneCycle,
    Schedule,
    ScheduleInfo,
    available,
    from_spec,
    lookup,
    parse_spec,
    resolve_timeline,
)


def test_documented_examples_work_as_written() -> None:
    step = from_spec("step lr0=0.1 step_size=30 gamma=0.1", epochs=90, steps_per_epoch=100)  # step_size in epochs
    assert step.total_steps == 9000
    assert [step.lr(t) for t in (0, 2999, 3000, 5999, 6000, 8999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], abs=1e-15)

    one = from_spec("onecycle max_lr=0.1", epochs=10, steps_per_epoch=100)
    assert one.lr(299) == pytest.approx(0.1) and one.lr(0) == pytest.approx(0.1 / 25)
    assert one.lr(999) == pytest.approx(0.1 / 25 / 1e4)

    cyc = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=200 mode=triangular2", total_steps=2000)
    assert [cyc.lr(t) for t in (0, 100, 200, 400, 600, 1000)] == pytest.approx(
        [0.001, 0.0505, 0.1, 0.001, 0.0505, 0.02575], abs=1e-12)

    cos = from_spec("cosine lr0=0.01 lrf=0.01 warmup_epochs=3", epochs=100, steps_per_epoch=10)
    assert cos.lr(0) == 0.0 and cos.phases[0].end == 30
    assert cos.lr(500) == pytest.approx(0.01 * (((1 - math.cos(50 * math.pi / 100)) / 2) * (0.01 - 1) + 1))

    wsd = from_spec("wsd lr0=0.001 warmup_steps=100 decay_frac=0.1", total_steps=5000)
    assert [(p.name, p.start, p.end) for p in wsd.phases] == [("warmup", 0, 100), ("stable", 100, 4500),
                                                               ("decay", 4500, 5000)]


def test_dict_and_yaml_specs_equal_the_string() -> None:
    text = "multistep lr0=0.1 milestones=30,60 gamma=0.2"
    as_dict = {"name": "multistep", "lr0": 0.1, "milestones": [30, 60], "gamma": 0.2}
    as_yaml = yaml.safe_load("schedule: {name: multistep, lr0: 1e-1, milestones: [30, 60], gamma: 0.2}")["schedule"]
    in_yaml = yaml.safe_load(f"schedule: '{text}'")["schedule"]
    scheds = [from_spec(s, epochs=90, steps_per_epoch=10) for s in (text, as_dict, as_yaml, in_yaml)]
    for t in (0, 299, 300, 599, 600, 899):
        assert len({s.lr(t) for s in scheds}) == 1
    assert parse_spec("multistep milestones=[30, 60] three_phase=true x=none mode='exp_range'") == (
        "multistep", {"milestones": [30, 60], "three_phase": True, "x": None, "mode": "exp_range"})
    assert parse_spec("cosine lr0 = 0.1") == ("cosine", {"lr0": 0.1})
    obj = Cosine(lr0=0.1, total_steps=10)
    assert from_spec(obj) is obj


def test_precedence_of_total_steps_epochs_and_steps_per_epoch() -> None:
    assert resolve_timeline(epochs=10, steps_per_epoch=50) == (500, 50)
    # total_steps wins over epochs * steps_per_epoch (torch's OneCycleLR order) ...
    s = from_spec("cosine lr0=1", epochs=10, steps_per_epoch=50, total_steps=300)
    assert s.total_steps == 300 and s.steps_per_epoch == 50
    # ... steps_per_epoch is derived from total_steps / epochs when missing
    assert from_spec("step step_size=2", epochs=10, total_steps=100).steps_per_epoch == 10.0
    assert from_spec("step step_size=2", epochs=10, total_steps=100)(20) == pytest.approx(0.1)
    # the run length may also live in the spec; a disagreement with the keyword is an error
    assert from_spec("cosine epochs=5 steps_per_epoch=4").total_steps == 20
    with pytest.raises(ValueError, match="epochs=5 in the spec disagrees with epochs=6"):
        from_spec("cosine epochs=5", epochs=6, steps_per_epoch=4)
    assert from_spec("linear_to_zero", total_steps=1000, epochs=10).epochs == 10


@pytest.mark.parametrize(("spec", "kw", "match"), [
    ("cosin lr0=0.1", {}, r"unknown schedule 'cosin'\. Did you mean 'cosine'\?"),
    ("cosine lr0=0.01 lfr=0.01", {"total_steps": 10}, r"unknown cosine parameter 'lfr'\. Did you mean 'lrf'\?"),
    ("onecycle max_lr=0.1 pct_strt=0.3", {"total_steps": 10}, r"Did you mean 'pct_start'\?"),
    ("cosine lr0=0.01 warmup_epoch=3", {"total_steps": 10}, r"Did you mean 'warmup_epochs'\?"),
    ("step lr0=0.1 step_size=30", {"total_steps": 100},
     r"step_size=30 is in epochs .*steps_per_epoch is needed"),
    ("step lr0=0.1 gamma=0.1", {}, r"'step' needs step_size="),
    ("cyclic max_lr=0.1", {}, r"'cyclic' needs base_lr="),
    ("cyclic base_lr=0.001 max_lr=0.1 mode=triangle", {}, r"value for mode 'triangle'\. Did you mean 'triangular'"),
    ("step lr0=0.1 step_size=3 gamma=-1", {"steps_per_epoch": 2}, r"gamma=-1 must be a finite number > 0"),
    ("cosine lr0=abc", {"total_steps": 10}, r"lr0='abc' must be a number"),
    ("cosine lr0=0.1", {}, r"cosine: T_max needs the run length"),
    ("cosine lr0=0.1 lrf=0.01 eta_min=0.001", {"total_steps": 10}, r"lrf=0\.01 .*eta_min=0\.001.*give one"),
    ("cosine lr0=0.1 warmup_steps=10 warmup_epochs=1", {"total_steps": 100, "steps_per_epoch": 10},
     r"warmup_steps=10 and warmup_epochs=1 give the warmup length twice"),
    ("cosine lr0=0.1 warmup_steps=200", {"total_steps": 100}, r"longer than the schedule"),
    ("wsd lr0=0.1 warmup_steps=10 decay_frac=0.95", {"total_steps": 100}, r"no stable phase"),
    ("cosine lr0 0.1", {"total_steps": 10}, r"bad token 'lr0' .* expected key=value"),
    ("cosine lr0=0.1 lr0=0.2", {"total_steps": 10}, r"lr0 is given twice"),
    ("onecycle max_lr=0.1 lr0=0.2", {"total_steps": 10}, r"lr0=0\.2 and max_lr=0\.1 are the same thing"),
    ("onecycle max_lr=0.1 momentum=0.9", {"total_steps": 100}, r"already cycles momentum"),
    ("cosine lr0=0.1 warmup_steps=5 warmup_momentum=0.8", {"total_steps": 100}, r"needs the momentum it warms up to"),
    ("cosine lr0=0.1 warmup_steps=5 warmup_type=linaer", {"total_steps": 100}, r"Did you mean 'linear'"),
    ("onecycle max_lr=0.1 pct_start=1.5", {"total_steps": 100}, r"pct_start=1\.5 must be in \[0, 1\]"),
    ("cosine lr0=0.1 warmup_bias_lr=0.1", {"total_steps": 100}, r"warmup_bias_lr without a warmup length"),
    ("cosine lr0=0.1 cooldown_type=cosine", {"total_steps": 100}, r"add cooldown_steps or cooldown_epochs"),
    ("exponential lr0=0.1 gamma=0.9", {}, r"gamma=0\.9 is the decay per epoch .*steps_per_epoch is needed"),
    ("", {}, r"empty schedule spec"),
    ("epochs=3", {}, r"must start with the schedule name"),
    ("cosine", {"epochs": 10}, r"epochs=10 needs steps_per_epoch"),
    ("cosine", {"total_steps": 2.5}, r"total_steps=2\.5 must be a whole number"),
])
def test_spec_errors_name_the_bad_key_or_value(spec: str, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_spec(spec, **kw)


def test_dict_spec_errors() -> None:
    with pytest.raises(ValueError, match="needs a 'name'"):
        from_spec({"lr0": 0.1})
    with pytest.raises(ValueError, match="must be a string like"):
        from_spec(42)  # type: ignore[arg-type]


def test_absolute_parameters_need_the_peak() -> None:
    s = from_spec("cosine eta_min=0.001", total_steps=10)
    with pytest.raises(ValueError, match="eta_min=0.001 is an absolute LR"):
        s(5)
    with pytest.raises(ValueError, match="peak LR is not known"):
        from_spec("cosine lrf=0.1", total_steps=10).lr(3)
    assert s.with_peak(0.1).lr(10) == pytest.approx(0.001)


def test_registry_entries() -> None:
    entries = available()
    names = [e.name for e in entries]
    assert len(names) == len(set(names)) >= 15
    every = [n for e in entries for n in (e.name, *e.aliases)]
    assert len(every) == len(set(every))  # no alias points at two families
    for e in entries:
        assert isinstance(e, ScheduleInfo) and e.description and e.torch_equivalent
        assert lookup(e.name) is e and all(lookup(a) is e for a in e.aliases)
    assert lookup("One-Cycle").name == "onecycle" and lookup("CosineAnnealingWarmRestarts").name == "cosine_restarts"
    with pytest.raises(dataclasses.FrozenInstanceError):
        entries[0].name = "x"  # type: ignore[misc]
    assert lookup("onecycle").constructor is OneCycle and lookup("step").unit == "epoch"


SAMPLES = {
    "constant": "constant lr0=0.1", "step": "step lr0=0.1 step_size=2", "multistep": "multistep lr0=0.1 milestones=2,4",
    "exponential": "exponential lr0=0.1 gamma=0.9", "polynomial": "polynomial lr0=0.1",
    "linear": "linear lr0=0.1", "cosine": "cosine lr0=0.1", "cosine_restarts": "sgdr lr0=0.1 T_0=2",
    "cyclic": "cyclic base_lr=0.01 max_lr=0.1 step_size_up=7", "onecycle": "onecycle max_lr=0.1",
    "wsd": "wsd lr0=0.1 decay_frac=0.2", "linear_to_zero": "d2z lr0=0.1", "inverse_sqrt": "rsqrt lr0=0.1",
    "plateau": "plateau lr0=0.1", "ultralytics": "yolo lr0=0.1",
}


@pytest.mark.parametrize("name", [e.name for e in available()])
def test_every_family_builds_and_records(name: str) -> None:
    s = from_spec(SAMPLES[name], epochs=6, steps_per_epoch=10)
    assert isinstance(s, Schedule) and s.total_steps == 60
    rec = s.record()
    assert len(rec["lr"]) == len(rec["momentum"]) == 60
    assert rec["lr"][0] == s.lr(0) and rec["phases"] and rec["label"].split()[0] == name
    assert all(0 <= v <= 0.1 + 1e-12 for v in rec["lr"])


def test_warmup_type_is_checked_even_for_a_zero_length_warmup():
    from lrkit.schedules import from_spec as _from_spec

    with pytest.raises(ValueError, match="warmup_type 'bogus'"):
        _from_spec("cosine lr0=0.1 warmup_steps=0 warmup_type=bogus", total_steps=100)
    assert _from_spec("cosine lr0=0.1 warmup_steps=0 warmup_type=exp", total_steps=100).lr(0) == pytest.approx(0.1)
