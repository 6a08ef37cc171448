"""Schedules follow-up (hunt 7): the two findings hunt 6 left open, each test failing before its fix.

1. A re-planned reduce-on-plateau truncated the warped step of an observation to a whole inner step, so when the run
   was stretched, a reduction applied one step early when the curve was read back (``record()``, ``seek()`` back,
   the phases). The same held for a reduction observed inside a prefix warmup: it was moved back to step 0. Here the
   live run is the reference; record, seek, resume and phases must agree with it step for step.
2. Malformed ``key=value`` tokens (``"cosine =3"``: the suggestion was ``'cosine cosine=3'``) now name the token and
   show the valid form.
"""

from __future__ import annotations

import copy
import io
import re
from typing import Any

import pytest
import torch
from _sched_helpers import make_optimizer
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.schedules import Composed, ReduceOnPlateau, Replanned, Schedule, from_spec, parse_spec

TOTAL = 120
# (spec, re-plans as (at step, new total), steps at which a never-improving metric is observed)
CASES: list[tuple[str, list[tuple[int, int]], list[int]]] = [
    # stretched: step 89 maps to inner 45.3; truncated to 45, step 88 (inner 45.04) read back reduced
    ("plateau lr0=0.1 patience=0 factor=0.5", [(30, 300)], [37, 61, 89, 140, 233]),
    ("plateau lr0=0.1 patience=0 factor=0.5", [(10, 400), (50, 1000)], [11, 23, 51, 77, 300, 701]),  # twice
    ("plateau lr0=0.1 patience=1 factor=0.5 cooldown=1", [(20, 333)], [3, 21, 22, 47, 48, 49, 95, 96, 97, 211]),
    ("plateau lr0=0.1 patience=0 factor=0.5", [(40, 90)], [41, 57, 63, 80]),  # shrunk: ratio > 1
    ("plateau lr0=0.1 patience=0 factor=0.5 min_lr=0.01", [(7, 257)], [8, 19, 33, 59, 101, 167, 251]),
    # a reduction observed inside a prefix warmup (steps 12 and 15 of 20) applied from step 0 of the record
    ("plateau lr0=0.1 patience=0 factor=0.5 warmup_steps=20", [], [5, 12, 15, 30, 70]),
    ("plateau lr0=0.1 patience=0 factor=0.5 warmup_steps=20", [(25, 301)], [5, 12, 27, 66, 131, 290]),
    ("plateau lr0=0.1 patience=0 factor=0.5 warmup_steps=20", [(10, 250)], [3, 11, 17, 41, 97]),  # mid-warmup
    ("plateau lr0=0.1 patience=0 factor=0.5 warmup_steps=20 warmup_prefix=false", [(25, 301)], [5, 12, 27, 131]),
    ("plateau lr0=0.1 patience=0 factor=0.5 cooldown_steps=10", [(30, 250)], [31, 67, 101, 239, 245]),
]


def _ids() -> list[str]:
    return [f"{i}-{spec.split(' ', 1)[1].replace(' ', '_')}" for i, (spec, _, _) in enumerate(CASES)]


def _build(spec: str) -> tuple[torch.optim.Optimizer, Any]:
    opt = make_optimizer([0.1, 0.1], scales=[1.0, 0.25])
    return opt, from_spec(spec, total_steps=TOTAL).to_torch(opt)


def _live(spec: str, replans: list[tuple[int, int]], observe: list[int], *, stop: int | None = None,
          ) -> tuple[list[list[float]], Any, list[tuple[int, bool]]]:
    """Run the schedule live: re-plan and observe at the given steps, record every group's LR at every step.

    With ``stop``, save the optimizer and scheduler there, build both afresh, load and go on (a resumed run)."""
    opt, sched = _build(spec)
    plans = dict(replans)
    end = replans[-1][1] if replans else TOTAL
    lrs, reduced = [], []
    for t in range(end):
        if t == stop:
            saved = io.BytesIO()
            torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, saved)
            saved.seek(0)
            state = torch.load(saved, weights_only=True)
            opt, sched = _build(spec)
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
        if t in plans:
            sched.replan(total_steps=plans[t])
        if t in observe:
            reduced.append((t, sched.observe(1.0)))
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        sched.step()
    return lrs, sched, reduced


@pytest.mark.parametrize(("spec", "replans", "observe"), CASES, ids=_ids())
def test_record_seek_and_phases_of_a_replanned_plateau_agree_with_the_live_run(
    spec: str, replans: list[tuple[int, int]], observe: list[int]
) -> None:
    live, sched, reduced = _live(spec, replans, observe)
    cuts = [t for t, r in reduced if r]
    assert len(cuts) >= 3  # the metrics did reduce the LR, at steps the stretch maps between two inner steps
    n = len(live)
    # record(): the curve read back is the one the run followed, to the bit
    rec = sched.schedule.record()
    assert rec["lr"] == [row[0] for row in live]
    # each reduction applies from the step it was observed at: unreduced the step before, reduced from it on
    for t in cuts:
        assert live[t][0] < live[t - 1][0]
    # seek(): back to any step, then on; every group (lr_scale 1 and 0.25) as it was live
    for t in [*range(0, n, 7), *(c + d for c in cuts for d in (-1, 0, 1) if 0 <= c + d < n)]:
        sched.seek(t)
        opt = sched.optimizer
        assert [g["lr"] for g in opt.param_groups] == live[t], f"seek({t})"
    # the phases start where the reductions did (a reduction inside a warmup shows from the warmup's end; the
    # cooldown starts from the main schedule's end, so one observed inside it has no phase)
    phases = sched.schedule.phases
    warm = next((p.end for p in phases if p.name == "warmup"), 0)
    cool = next((p.start for p in phases if p.name == "cooldown"), n)
    starts = {p.name: p.start for p in phases if p.name.startswith("reduced")}
    after = [c for c in cuts if warm < c < cool]
    assert after
    assert sorted(starts.values())[-len(after):] == after


@pytest.mark.parametrize(("spec", "replans", "observe"), CASES, ids=_ids())
def test_a_resumed_replanned_plateau_equals_the_uninterrupted_run(
    spec: str, replans: list[tuple[int, int]], observe: list[int]
) -> None:
    full, _, _ = _live(spec, replans, observe)
    # resumed just before and just after each observation and each re-plan
    for stop in sorted({1, *(t + d for t in observe[:4] for d in (0, 1)), *(at + 1 for at, _ in replans)}):
        if stop < len(full):
            got, _, _ = _live(spec, replans, observe, stop=stop)
            assert got == full, f"resumed at step {stop}"


def test_the_inner_reduction_lies_at_the_warped_time_and_survives_a_state_round_trip() -> None:
    base = ReduceOnPlateau(lr0=1.0, patience=0, factor=0.5, total_steps=100)
    r = base.replan(at_step=30, total_steps=300)  # inner time 30 + (t - 30) * 70 / 270
    assert isinstance(r, Replanned)
    r.observe(1.0, step=80)
    assert r.observe(1.0, step=89) is True
    (cut,) = base.reductions
    assert cut == r._warp(89.0) and cut == pytest.approx(30 + 59 * 70 / 270) and cut != int(cut)
    assert r(88) == 1.0 and r(89) == 0.5  # truncated to 45, step 88 (inner 45.04) was already 0.5
    state = base.state_dict()
    assert state["reductions"] == [cut] and state["last_step"] == cut
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    fresh = ReduceOnPlateau(lr0=1.0, patience=0, factor=0.5, total_steps=100)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    again = fresh.replan(at_step=30, total_steps=300)
    assert [again(t) for t in range(300)] == [r(t) for t in range(300)]
    # whole steps stay ints in the state (a checkpoint reads as steps, as before)
    plain = ReduceOnPlateau(lr0=1.0, patience=0)
    plain.observe(1.0, step=0)
    plain.observe(1.0, step=5)
    assert plain.state_dict()["reductions"] == [5] and isinstance(plain.state_dict()["reductions"][0], int)


def test_a_reduction_inside_a_prefix_warmup_applies_from_its_step() -> None:
    s = from_spec("plateau lr0=0.1 patience=0 factor=0.5 warmup_steps=20", total_steps=100)
    assert isinstance(s, Composed)
    s.observe(1.0, step=5)
    assert s.observe(1.0, step=12) is True
    assert s.main.reductions == (-8,)  # the plateau's clock starts after the warmup
    # steps 0..11 warm up towards the peak, as they did live; from step 12 on towards the reduced LR
    assert [s.lr(t) for t in range(12)] == pytest.approx([0.1 * t / 20 for t in range(12)], rel=1e-12)
    assert [s.lr(t) for t in range(12, 21)] == pytest.approx([0.05 * t / 20 for t in range(12, 21)], rel=1e-12)
    assert s.lr(60) == pytest.approx(0.05)
    assert [(p.name, p.start, p.end) for p in s.phases] == [("warmup", 0, 20), ("reduced x1", 20, 100)]
    with pytest.raises(ValueError, match="before the last observed step"):
        s.observe(1.0, step=11)


@pytest.mark.parametrize("spec", ["plateau lr0=0.1 warmup_steps=20", "plateau lr0=0.1 cooldown_steps=5"])
@pytest.mark.parametrize(("step", "match"), [(2.5, "whole number"), (-3, "step=-3"), (True, "step=True")])
def test_a_wrapped_plateau_validates_the_step_it_is_given(spec: str, step: Any, match: str) -> None:
    # before: Composed.observe passed int(max(0, step - warmup)) on, so 2.5 and -3 were taken as some other step
    s = from_spec(spec, total_steps=100)
    with pytest.raises(ValueError, match=re.escape(match)):
        s.observe(1.0, step=step)
    with pytest.raises(ValueError, match=re.escape(match)):
        s.replan(at_step=30, total_steps=200).observe(1.0, step=step)
    assert s.main.state_dict()["observations"] == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("schedule", [from_spec("cosine lr0=0.1", total_steps=10),
                                      from_spec("cosine lr0=0.1 warmup_steps=2", total_steps=10),
                                      from_spec("cosine lr0=0.1", total_steps=10).replan(at_step=3, total_steps=20)])
def test_closed_form_schedules_still_refuse_to_observe(schedule: Schedule) -> None:
    with pytest.raises(TypeError, match="closed-form and does not observe"):
        schedule.observe(1.0, step=5)
    with pytest.raises(TypeError, match="closed-form and does not observe"):
        schedule.observe(1.0, step=-1)  # which kind of schedule it is comes first


def test_a_state_saved_before_hunt_7_loads_as_it_did() -> None:
    # integer reductions, no "observations" key (the oldest states): the order check still guards the next step
    s = ReduceOnPlateau(lr0=1.0, patience=0)
    s.load_state_dict({"best": 1.0, "num_bad_epochs": 0, "cooldown_counter": 0, "reductions": [5, 9],
                       "last_step": 9})
    assert s.reductions == (5, 9) and s(4) == 1.0 and s(5) == 0.1 and s(9) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="step=8 is before the last observed step 9"):
        s.observe(1.0, step=8)


# ==============================================================================================================
# 2. malformed key=value tokens
# ==============================================================================================================
MALFORMED = [
    # (spec, the token named, what is said about it)
    ("cosine =3", "=3", "the value '3' has no key"),  # was: "e.g. 'cosine cosine=3'"
    ("cosine = 3", "=3", "the value '3' has no key"),
    ("cosine lr0=0.1 =3", "=3", "the value '3' has no key"),  # was: lr0='0.1=3' must be a number
    ("cosine lr0=", "lr0=", "'lr0' has no value"),  # was: lr0='' must be a number
    ("cosine lr0 =", "lr0=", "'lr0' has no value"),
    ("cosine lr0= gamma=0.5", "lr0=", "'lr0' has no value"),
    ("cosine ==", "==", "'=' appears 2 times"),
    ("cosine lr0==3", "lr0==3", "'=' appears 2 times"),  # was: lr0='=3' must be a number
    ("cosine lr0=0.1=3", "lr0=0.1=3", "'=' appears 2 times"),
    ("cosine =", "=", "a bare '=' with neither key nor value"),
    ("cosine lr0=0.1 =", "=", "a bare '=' with neither key nor value"),
    ("cosine lr0 0.1", "lr0", "expected key=value, e.g. 'lr0=...'"),
]


@pytest.mark.parametrize(("spec", "token", "why"), MALFORMED)
def test_a_malformed_token_is_named_with_the_valid_form(spec: str, token: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        from_spec(spec, total_steps=10)
    msg = str(info.value)
    assert msg.startswith(f"bad token {token!r} in spec {spec!r}: {why}"), msg
    assert "expected key=value" in msg and "cosine cosine" not in msg
    with pytest.raises(ValueError, match=re.escape(f"bad token {token!r}")):
        parse_spec(spec)  # the parser says it, before any family is looked up


@pytest.mark.parametrize("spec", ["=3", "==", "= cosine", "lr0=0.1 cosine"])
def test_a_spec_that_does_not_start_with_a_name_shows_a_well_formed_example(spec: str) -> None:
    with pytest.raises(ValueError, match="must start with the schedule name, then key=value pairs") as info:
        parse_spec(spec)
    example = re.search(r"e\.g\. '([^']*)'", str(info.value))
    assert example is not None
    name, params = parse_spec(example.group(1))  # the example itself parses
    assert name == "cosine" and len(params) == 1


@pytest.mark.parametrize("spec", ["cosine lr0 = 0.1 lrf= 0.5 T_max =30", "cosine  lr0=0.1  lrf=0.5 T_max = 30",
                                  "cosine lr0 =0.1 lrf =0.5 T_max= 30",
                                  "cosine\u00a0lr0\u00a0=\u00a00.1 lrf=0.5 T_max=30"])
def test_spaces_around_the_equals_sign_still_join_key_and_value(spec: str) -> None:
    assert parse_spec(spec) == ("cosine", {"lr0": 0.1, "lrf": 0.5, "T_max": 30})


def test_spaced_lists_still_parse() -> None:
    assert parse_spec("multistep milestones = [30, 60] gamma =0.5") == (
        "multistep", {"milestones": [30, 60], "gamma": 0.5})


def test_the_cli_names_the_malformed_token() -> None:
    res = CliRunner().invoke(build_app(), ["schedule", "cosine =3", "-t", "10", "--no-plot"])
    assert res.exit_code == 2, res.output
    flat = " ".join(res.output.split())
    assert "bad token '=3'" in flat and "has no key" in flat and "cosine cosine" not in flat
    assert "Traceback" not in res.output


def test_observing_a_copy_of_a_replanned_plateau_does_not_touch_the_original() -> None:
    # deep copies (a user's snapshot of a schedule) keep their own state; the fix added no shared module state
    r = from_spec("plateau lr0=1.0 patience=0", total_steps=50).replan(at_step=10, total_steps=90)
    snap = copy.deepcopy(r)
    r.observe(1.0, step=20)
    r.observe(1.0, step=33)
    assert r.state_dict()["reductions"] and not snap.state_dict()["reductions"]
