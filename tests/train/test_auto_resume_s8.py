"""``lr0="auto"`` after a resume, and the step up's bisection driven end to end.

* A resumed run's ``results.auto`` was the checkpoint's plain dict, so ``results.auto.reason`` (README) raised
  ``AttributeError``; it is now ``AutoLR.from_dict(record)``, equal to the fresh run's (same type, same
  ``to_dict()``), while the checkpoint keeps the plain record (``torch.load(..., weights_only=True)``).
* ``AutoLR.from_dict`` is the inverse of ``to_dict``, reads older records (missing keys get defaults; a record from
  before ``settings`` existed is not given today's) and names the bad key of a bad record.
* The guard's step up stops at a diverging candidate and bisects: driven through ``choose_lr0`` on a double-well
  loss whose LR response is known in closed form, and ``reason`` says it.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.train import auto as auto_mod
from lrkit.train import train
from lrkit.train.auto import AutoLR, Trial, choose_lr0

QUIET = {"verbose": False, "plots": False}
# 4 epochs x 13 steps = 52; auto_budget 0.6 -> a 13-step range test and room for trials of 9 steps
RUN = dict(data="synthetic-regression", model="linear", epochs=4, batch=64, lr0="auto", optimizer="SGD",
           auto_budget=0.6, warmup_epochs=0, seed=0)  # fmt: skip


def _kill_at(step: int) -> Any:
    def progress(**kw: Any) -> None:
        if kw.get("event") == "step" and kw["step"] == step:
            raise KeyboardInterrupt

    return progress


@pytest.fixture(scope="module")
def fresh_and_resumed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path, dict[str, Any]]:
    project = tmp_path_factory.mktemp("auto_resume")
    full = train(name="full", project=project, **RUN, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        train(name="cut", project=project, progress=_kill_at(2 * full.steps_per_epoch + 1), **RUN, **QUIET)
    cut = project / "cut"
    # what the checkpoint held before the resume rewrote it
    saved = torch.load(cut / "last.pt", weights_only=True)
    resumed = train(resume=cut / "last.pt", **QUIET)
    return full, resumed, cut, saved


# ------------------------------------------------------------------------------------------ results.auto on resume
def test_a_resumed_run_has_the_fresh_runs_autolr(fresh_and_resumed: Any) -> None:
    full, resumed, _, saved = fresh_and_resumed
    assert resumed.lr0_source == "auto" and resumed.lr0 == full.lr0
    assert type(full.auto) is AutoLR and type(resumed.auto) is AutoLR
    assert len(full.auto.trials) >= 1  # a record with a trial, not only the range test's suggestion
    assert resumed.auto.to_dict() == full.auto.to_dict()
    assert resumed.auto.reason == full.auto.reason and resumed.auto.reason.startswith("range test (13 steps)")
    assert resumed.auto.lr == full.auto.lr == resumed.lr0
    assert resumed.auto.trials == full.auto.trials and all(isinstance(t, Trial) for t in resumed.auto.trials)
    # the range test's curve is not in the checkpoint: the suggestion is the one recorded, not re-read
    assert resumed.auto.finder is None and full.auto.finder is not None
    assert resumed.auto.to_dict()["suggestion"] == saved["auto"]["suggestion"] is not None
    # the checkpoint held the plain record (loaded with weights_only=True above)
    assert saved["auto"] == full.auto.to_dict() and type(saved["auto"]) is dict


def test_records_and_checkpoint_after_a_resume_stay_plain(fresh_and_resumed: Any) -> None:
    full, resumed, cut, _ = fresh_and_resumed
    ck = torch.load(cut / "last.pt", weights_only=True)  # rewritten by the resumed run
    assert type(ck["auto"]) is dict and ck["auto"] == full.auto.to_dict()
    record = json.loads((cut / "events.json").read_text())
    assert record["lr0"]["auto"] == full.auto.to_dict() and record["lr0"]["source"] == "auto"
    summary = json.loads(json.dumps(resumed.to_dict(), allow_nan=False))
    assert summary["auto"] == full.to_dict()["auto"] == full.auto.to_dict()
    yaml.safe_load((cut / "args.yaml").read_text())  # still safe YAML


def test_the_cli_prints_a_resumed_auto_run(fresh_and_resumed: Any, tmp_path: Path) -> None:
    full = fresh_and_resumed[0]
    # resume a fresh copy of the cut run (the fixture's copy has finished)
    project = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        train(name="cut", project=project, progress=_kill_at(full.steps_per_epoch + 1), **RUN, **QUIET)
    res = CliRunner().invoke(build_app(), ["train", f"resume={project / 'cut' / 'last.pt'}", "plots=false"])
    assert res.exit_code == 0, res.output
    extra = f"{full.auto.extra_fraction:.0%} extra compute"
    assert f"{full.lr0:.4g} (auto), {extra}" in res.output.replace("\n", "")


def test_a_corrupt_auto_record_in_a_checkpoint_is_a_clear_resume_error(fresh_and_resumed: Any,
                                                                       tmp_path: Path) -> None:
    full = fresh_and_resumed[0]
    project = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        train(name="cut", project=project, progress=_kill_at(full.steps_per_epoch + 1), **RUN, **QUIET)
    path = project / "cut" / "last.pt"
    ck = torch.load(path, weights_only=True)
    ck["auto"]["reasn"] = ck["auto"].pop("reason")
    torch.save(ck, path)
    with pytest.raises(ValueError, match=r"resume: the lr0='auto' record in .*last\.pt is not readable: unknown "
                                         r"AutoLR\.from_dict key 'reasn'\. Did you mean 'reason'\?"):
        train(resume=path, **QUIET)


# ------------------------------------------------------------------------------------------ from_dict
def _auto(**kw: Any) -> AutoLR:
    base: dict[str, Any] = dict(lr=0.02, finder=None, trials=[Trial(0.01, 0.5, 16), Trial(0.04, math.inf, 3)],
                                extra_steps=49, extra_fraction=0.049, reason="stepped up", trial_steps=16)
    base.update(kw)
    return AutoLR(**base)


def test_round_trip_of_a_real_choice_keeps_its_suggestion_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    data = list(zip(x.split(32), (x @ torch.ones(4, 1)).split(32)))
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    a = choose_lr0(model, opt, data, data[:2], total_steps=200, budget=0.6,
                   make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / n))
    d = a.to_dict()
    b = AutoLR.from_dict(d)
    assert b.to_dict() == d and b.reason == a.reason and b.trials == a.trials and b.lr == a.lr
    # JSON (the run's events.json) and back
    assert AutoLR.from_dict(json.loads(json.dumps(d, allow_nan=False))).to_dict() == d
    # a later change of the module settings does not rewrite a record read back
    monkeypatch.setattr(auto_mod, "NOISE_SCALING", not auto_mod.NOISE_SCALING)
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", 0.02)
    assert AutoLR.from_dict(d).to_dict()["settings"] == d["settings"]
    assert AutoLR.from_dict(d).to_dict()["suggestion"] == d["suggestion"]


_finite = st.floats(min_value=1e-8, max_value=1e3, allow_nan=False, allow_infinity=False)
_trial = st.builds(Trial, _finite, st.one_of(st.floats(-1e3, 1e3), st.just(math.inf)), st.integers(0, 10_000))


@settings(max_examples=60, deadline=None)
@given(lr=_finite, trials=st.lists(_trial, max_size=5), extra=st.integers(0, 10**6), frac=st.floats(0, 5),
       reason=st.text(max_size=40), trial_steps=st.integers(0, 1000),
       suggestion=st.one_of(st.none(), _finite))  # fmt: skip
def test_from_dict_inverts_to_dict(lr: float, trials: list[Trial], extra: int, frac: float, reason: str,
                                   trial_steps: int, suggestion: float | None) -> None:
    a = _auto(lr=lr, trials=trials, extra_steps=extra, extra_fraction=frac, reason=reason, trial_steps=trial_steps)
    if suggestion is not None:
        a._used_suggestion = suggestion  # type: ignore[attr-defined]
    d = a.to_dict()
    b = AutoLR.from_dict(d)
    assert b.to_dict() == d
    assert b.trials == trials  # a diverged trial (None in the record) reads back as inf
    assert AutoLR.from_dict(b.to_dict()).to_dict() == d


def test_an_older_record_reads_with_defaults_and_keeps_what_it_did_not_say() -> None:
    # the first version's record (no "settings"): not given today's settings
    old = {"lr": 0.01, "suggestion": 0.008, "trials": [{"lr": 0.008, "val_loss": 0.3, "steps": 12},
                                                       {"lr": 0.016, "val_loss": None, "steps": 4}],
           "trial_steps": 12, "extra_steps": 41, "extra_fraction": 0.041, "reason": "why"}  # fmt: skip
    a = AutoLR.from_dict(old)
    assert a.trials == [Trial(0.008, 0.3, 12), Trial(0.016, math.inf, 4)] and a.reason == "why"
    assert a.to_dict() == {**old, "settings": None}
    # only lr is required
    b = AutoLR.from_dict({"lr": 3e-4})
    assert (b.lr, b.trials, b.extra_steps, b.extra_fraction, b.reason, b.trial_steps, b.finder) == (
        3e-4, [], 0, 0.0, "", 0, None)
    assert b.to_dict()["suggestion"] is None and b.to_dict()["settings"] is None
    # counts written as floats by another JSON/YAML writer
    assert AutoLR.from_dict({"lr": 0.1, "extra_steps": 12.0, "trial_steps": 4.0}).extra_steps == 12


def test_an_autolr_built_by_hand_still_records_the_current_settings() -> None:
    assert _auto().to_dict()["settings"] == auto_mod._settings()


@pytest.mark.parametrize(("record", "match"), [
    ({"lr": 0.1, "reasn": "x"}, r"unknown AutoLR\.from_dict key 'reasn'\. Did you mean 'reason'\?"),
    ({"reason": "x"}, r"AutoLR\.from_dict: the record has no 'lr'"),
    ({"lr": "fast"}, r"AutoLR\.from_dict: lr='fast' must be a finite number > 0"),
    ({"lr": None}, r"lr=None must be a finite number > 0"),
    ({"lr": -0.1}, r"lr=-0\.1 must be a finite number > 0"),
    ({"lr": True}, r"lr=True must be a finite number > 0"),
    ({"lr": 0.1, "extra_steps": -3}, r"AutoLR\.from_dict: extra_steps=-3 must be an integer >= 0"),
    ({"lr": 0.1, "trial_steps": 2.5}, r"trial_steps=2\.5 must be an integer >= 0"),
    ({"lr": 0.1, "extra_fraction": "30%"}, r"extra_fraction='30%' must be a finite number >= 0"),
    ({"lr": 0.1, "suggestion": 0}, r"suggestion=0 must be a finite number > 0"),
    ({"lr": 0.1, "reason": 3}, r"'reason' must be a string, got int"),
    ({"lr": 0.1, "settings": "guard"}, r"'settings' must be a dict"),
    ({"lr": 0.1, "trials": "none"}, r"'trials' must be a list"),
    ({"lr": 0.1, "trials": [[0.1, 0.5, 3]]}, r"trials\[0\] must be a dict with 'lr', 'val_loss', 'steps', got list"),
    ({"lr": 0.1, "trials": [{"lr": 0.1, "val_loss": 1.0, "steps": 3}, {"lr": 0.2, "val_loss": 1.0}]},
     r"trials\[1\] has no 'steps'"),
    ({"lr": 0.1, "trials": [{"lr": 0.1, "val_los": 1.0, "steps": 3}]},
     r"unknown AutoLR\.from_dict trials\[0\] key 'val_los'\. Did you mean 'val_loss'\?"),
    ({"lr": 0.1, "trials": [{"lr": 0.1, "val_loss": "nan", "steps": 3}]},
     r"trials\[0\]\['val_loss'\]='nan' must be a number, or None \(diverged\)"),
    ({"lr": 0.1, "trials": [{"lr": 0, "val_loss": 1.0, "steps": 3}]}, r"trials\[0\]\['lr'\]=0 must be"),
])  # fmt: skip
def test_a_bad_record_names_the_bad_key(record: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AutoLR.from_dict(record)


def test_a_non_dict_record_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"AutoLR\.from_dict: expected a dict .*got list"):
        AutoLR.from_dict([("lr", 0.1)])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ step up, end to end
# A scalar parameter w on U(w) = min(C1 + H1 w² / 2, H2 (w - M)² / 2), from w0 = 0.01, under a constant schedule:
# a shallow well at 0 (value C1) and a deep one at M (value 0). Gradient descent at LR η is stable in a well of
# curvature h iff η h < 2, so (H1 = 1.4, H2 = 0.7):
#   η <= 1.1: stays in the shallow well (η H1 < 2): the loss does not fall by MIN_PROGRESS — "did not learn";
#   1.8 <= η <= 2.2: oscillates out of the shallow well (η H1 > 2) and settles in the deep one (η H2 < 2): learns;
#   η >= 3.6: unstable in both wells: the training loss passes DIVERGE_FACTOR x its first — diverges.
# The range test is confined to [0.9, 1.1] with a rule that returns a tested LR, so s is in [0.9, 1.1] whatever it
# reads: the step up tries 4s (diverges), then the bisection's midpoint sqrt(s * 4s) = 2s (learns). Without the
# bisection the climb would go on to 16s (diverges) and no candidate would learn.
H1, H2, M, C1 = 1.4, 0.7, 3.0, 1.0


class _Scalar(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.01))


def _double_well(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    w = model.w
    return torch.minimum(C1 + 0.5 * H1 * w**2, 0.5 * H2 * (w - M) ** 2)


def _constant(o: torch.optim.Optimizer, n: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1.0)


def test_the_step_up_bisects_below_a_diverging_candidate_through_choose_lr0() -> None:
    assert auto_mod.SEARCH == "guard" and auto_mod.SPACING == 2.0
    model = _Scalar()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = [(torch.zeros(1), torch.zeros(1))]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the loss barely moved")  # the flat range test, by design
        auto = choose_lr0(model, opt, batch, batch, total_steps=400, make_scheduler=_constant, step_fn=_double_well,
                          finder_kwargs={"start_lr": 0.9, "end_lr": 1.1, "rule": "steepest", "num_steps": 20})
    s = auto.to_dict()["suggestion"]
    assert 0.9 <= s <= 1.1 and auto.finder.num_steps_run == 20 and auto.trial_steps == 33
    lrs = [t.lr for t in auto.trials]
    assert lrs == pytest.approx([s, 4 * s, 2 * s])  # 2s: the midpoint in log space of s and 4s
    first, climb, mid = auto.trials
    l0 = _double_well(_Scalar(), None).item()
    assert first.val_loss > (1 - auto_mod.MIN_PROGRESS) * l0  # did not learn
    assert math.isinf(climb.val_loss) and climb.steps < auto.trial_steps  # diverged, stopped early
    assert mid.val_loss < 1e-6  # settled in the deep well
    assert auto.lr == pytest.approx(2 * s)
    assert auto.extra_steps == 20 + first.steps + climb.steps + mid.steps
    assert "the suggestion did not learn" in auto.reason
    assert f"stepped up to {2 * s:.3g}, the lowest candidate that learned ({4 * s:.3g} diverged, so the step up " \
           "bisected back below it)" in auto.reason
    assert model.w.detach().item() == pytest.approx(0.01)  # the caller's model is put back
