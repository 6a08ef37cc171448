"""Loose ends in the schedules' user journeys (s11b).

1. ``wsd`` whose warmup and decay fill the run (``decay_frac=0.9`` after a 10% warmup): warmup then decay, with no
   stable phase in the phases, the table or the picture; refused only when warmup + decay exceed the run.
2. ``onecycle`` behind ``warmup_steps=``: the outer warmup is ``warmup``, one-cycle's own rise ``rise`` (two phases
   named ``warmup`` made the table and the picture ambiguous).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import typer
from _sched_helpers import make_optimizer, max_abs_diff, trace
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.schedules import WSD, OneCycle, from_spec
from lrkit.schedules.report import key_points, sampled_record


@pytest.fixture
def app() -> typer.Typer:
    return build_app()


def _cli(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, ["schedule", *args])


# ---- 1. wsd with no stable phase --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [
    "wsd lr0=0.1 warmup_steps=10 decay_frac=0.9",
    "wsd lr0=0.1 warmup_steps=10 decay_steps=90",
    "wsd lr0=0.1 warmup_epochs=1 decay_epochs=9 steps_per_epoch=10",
])
def test_wsd_warmup_and_decay_may_fill_the_run(spec: str) -> None:
    s = from_spec(spec, total_steps=100)
    assert s.total_steps == 100
    assert [(p.name, p.start, p.end) for p in s.phases] == [("warmup", 0, 10), ("decay", 10, 100)]
    assert s(0) == 0.0 and s(5) == pytest.approx(0.5)
    assert s(10) == pytest.approx(1.0)  # the peak is reached where the decay starts
    assert s(55) == pytest.approx((1 + math.cos(math.pi * 45 / 90)) / 2)
    assert s(99) == pytest.approx((1 + math.cos(math.pi * 89 / 90)) / 2) and s(100) == 0.0
    # the same as transformers' get_wsd_schedule with num_stable_steps=0 (cosine decay, min_lr_ratio 0)
    for t in range(100):
        want = t / 10 if t < 10 else 0.5 * (1 + math.cos(math.pi * (t - 10) / 90))
        assert s(t) == pytest.approx(want, abs=1e-12)


def test_wsd_decay_may_be_the_whole_run_without_warmup() -> None:
    s = WSD(lr0=1.0, decay_frac=1.0, decay_type="linear", total_steps=50)
    assert [(p.name, p.start, p.end) for p in s.phases] == [("decay", 0, 50)]
    assert [s(t) for t in (0, 25, 50)] == [1.0, 0.5, 0.0]


@pytest.mark.parametrize(("spec", "match"), [
    ("wsd lr0=0.1 warmup_steps=10 decay_frac=0.95",
     r"warmup \(10 steps\) \+ decay \(95 steps\) = 105 steps .* 100-step run.*decay_frac <= 0\.9 or warmup_steps <= 5"),
    ("wsd lr0=0.1 warmup_steps=10 decay_steps=95",
     r"give decay_steps <= 90 or warmup_steps <= 5, or a run of at least 105"),
    ("wsd lr0=0.1 warmup_steps=100 decay_steps=5",
     r"warmup \(100 steps\) \+ decay \(5 steps\) = 105 steps .* 100-step run.*warmup_steps <= 95"),
    ("wsd lr0=0.1 warmup_steps=100 decay_steps=5", r"no stable phase"),  # the phrase an older test looks for
])
def test_wsd_still_refuses_warmup_and_decay_longer_than_the_run(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_spec(spec, total_steps=100)


def test_wsd_refusal_names_the_epochs_that_would_fit() -> None:
    with pytest.raises(ValueError, match=r"decay_epochs <= 7 or warmup_epochs <= 2") as e:
        from_spec("wsd lr0=0.1 warmup_epochs=3 decay_epochs=8", epochs=10, steps_per_epoch=10)
    assert "30 steps" in str(e.value) and "80 steps" in str(e.value)
    with pytest.raises(ValueError, match=r"give a run of at least 700 steps$"):  # nothing shorter would fit
        from_spec("wsd lr0=0.1 warmup_steps=200 decay_steps=500", total_steps=100)


def test_wsd_without_stable_phase_steps_resumes_and_matches_its_closed_form() -> None:
    spec = "wsd lr0=0.1 warmup_steps=6 decay_frac=0.8 decay_type=1-sqrt"
    total = 30
    s = from_spec(spec, total_steps=total)
    opt = make_optimizer([0.1, 0.05], scales=[1.0, 0.5])
    lrs, _ = trace(opt, s.to_torch(opt), total)
    want = [[0.1 * s(t), 0.05 * s(t)] for t in range(total)]
    assert max_abs_diff(lrs, want) < 1e-12
    # stop at step 11, save, resume into a new optimizer + scheduler from the same spec
    opt1 = make_optimizer([0.1, 0.05], scales=[1.0, 0.5])
    sched1 = from_spec(spec, total_steps=total).to_torch(opt1)
    trace(opt1, sched1, 11)
    state = sched1.state_dict()
    opt2 = make_optimizer([0.1, 0.05], scales=[1.0, 0.5])
    sched2 = from_spec(spec, total_steps=total).to_torch(opt2)
    sched2.load_state_dict(state)
    rest, _ = trace(opt2, sched2, total - 11)
    assert max_abs_diff(rest, lrs[11:]) < 1e-12
    # and a state saved from a wsd with a stable phase is refused (another curve), not silently loaded
    opt3 = make_optimizer([0.1, 0.05], scales=[1.0, 0.5])
    other = from_spec("wsd lr0=0.1 warmup_steps=6 decay_frac=0.5 decay_type=1-sqrt", total_steps=total).to_torch(opt3)
    with pytest.raises(ValueError):
        other.load_state_dict(state)


def test_wsd_without_stable_phase_replans() -> None:
    s = from_spec("wsd lr0=0.1 warmup_steps=10 decay_frac=0.9", total_steps=100)
    r = s.replan(at_step=40, total_steps=200)
    assert r(40) == pytest.approx(s(40)) and r(199) < r(120) < r(40)
    assert "stable" not in [p.name for p in r.phases]


def test_cli_table_and_picture_of_wsd_without_stable_phase(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "wsd.png"
    res = _cli(app, "wsd lr0=0.1 warmup_steps=100 decay_frac=0.9", "-t", "1000", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "stable" not in res.output
    for text in ("warmup", "decay", "0–99", "100–999"):
        assert text in res.output
    res = _cli(app, "wsd lr0=0.1 warmup_steps=100 decay_frac=0.95", "-t", "1000", "--no-plot")
    assert res.exit_code != 0 and "decay_frac <= 0.9 or warmup_steps <= 50" in res.output


def test_plot_of_wsd_without_stable_phase_labels_two_phases() -> None:
    from lrkit.plots.schedule import plot_schedule

    fig = plot_schedule(from_spec("wsd lr0=0.1 warmup_steps=10 decay_frac=0.9", total_steps=100).record())
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["warmup", "decay"]


# ---- 2. onecycle behind a warmup ----------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["", " warmup_prefix=false"])
def test_onecycle_behind_a_warmup_names_its_rise_rise(prefix: str) -> None:
    s = from_spec("onecycle max_lr=0.1 warmup_steps=10" + prefix, total_steps=110)
    names = [p.name for p in s.phases]
    assert names.count("warmup") == 1 and names[0] == "warmup"
    assert names[1:] == ["rise", "anneal"]
    three = from_spec("onecycle max_lr=0.1 three_phase=true warmup_steps=10", total_steps=110)
    assert [p.name for p in three.phases] == ["warmup", "rise", "anneal-down", "anneal"]


def test_bare_onecycle_keeps_its_warmup_name() -> None:
    # without an outer warmup there is no ambiguity: fastai's and lrkit's name for the rise stays
    assert [p.name for p in OneCycle(max_lr=0.1, total_steps=100).phases] == ["warmup", "anneal"]


def test_onecycle_behind_a_warmup_table_and_plot_name_each_phase_once(app: typer.Typer, tmp_path: Path) -> None:
    from lrkit.plots.schedule import plot_schedule

    s = from_spec("onecycle max_lr=0.1 warmup_steps=10", total_steps=110)
    rows = [r["phase"] for r in key_points(sampled_record(s))["phases"]]
    assert rows == ["warmup", "rise", "anneal"]
    fig = plot_schedule(s.record())
    assert [t.get_text() for t in fig.axes[0].texts] == ["warmup", "rise", "anneal"]
    out = tmp_path / "oc.png"
    res = _cli(app, "onecycle max_lr=0.1 warmup_steps=10", "-t", "110", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert len(re.findall(r"\bwarmup\b", res.output.split("onecycle", 1)[-1].replace("warmup_steps", ""))) == 1
    assert "rise" in res.output


def test_onecycle_behind_a_warmup_curve_is_unchanged_by_the_naming() -> None:
    s = from_spec("onecycle max_lr=0.1 warmup_steps=10", total_steps=110)
    bare = OneCycle(max_lr=0.1, total_steps=100)
    assert s(0) == 0.0 and s(5) == pytest.approx(0.5 * bare(0))
    assert all(s(10 + t) == bare(t) for t in range(100))
    opt = make_optimizer([0.1])
    lrs, _ = trace(opt, s.to_torch(opt), 110)
    assert max_abs_diff(lrs, [[s.lr(t)] for t in range(110)]) < 1e-12
    assert torch.isfinite(torch.tensor(lrs)).all()


# ---- 3. wsd's warmup options without a warmup length -----------------------------------------------------------
@pytest.mark.parametrize("extra", [
    "warmup_type=cosine", "warmup_start_factor=0.1", "warmup_bias_lr=0.5", "warmup_momentum=0.5 momentum=0.9",
])
def test_wsd_warmup_options_without_a_warmup_length_are_refused_like_every_family(extra: str) -> None:
    # "cosine lr0=0.1 warmup_type=cosine" says the option has no effect; wsd dropped it silently (no warmup at all)
    with pytest.raises(ValueError, match=r"without a warmup length has no effect: add warmup_steps or warmup_epochs"):
        from_spec(f"cosine lr0=0.1 {extra}", total_steps=100)
    with pytest.raises(ValueError, match=r"without a warmup length has no effect: add warmup_steps or warmup_epochs"):
        from_spec(f"wsd lr0=0.1 decay_frac=0.2 {extra}", total_steps=100)
    with pytest.raises(ValueError, match=r"without a warmup length has no effect"):
        WSD(lr0=0.1, decay_frac=0.2, total_steps=100, **{k: (v if k == "warmup_type" else float(v))
                                                          for k, v in (kv.split("=") for kv in extra.split())})


def test_wsd_warmup_options_with_an_explicit_empty_warmup_still_pass() -> None:
    s = from_spec("wsd lr0=0.1 decay_frac=0.2 warmup_steps=0 warmup_type=cosine", total_steps=100)
    assert [p.name for p in s.phases] == ["stable", "decay"]
    assert from_spec("wsd lr0=0.1 decay_frac=0.2 momentum=0.9", total_steps=100).momentum(0) == 0.9
