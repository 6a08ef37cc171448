"""Hunt of lr0="auto"'s new defaults (``STEP_DOWN_MARGIN = inf``, ``DIP_AND_PASSES = True``).

Bugs found and pinned here:

* with the default, ``reason`` said the suggestion was "used as is (... a short-trial win of a lower LR is not
  followed)" although no lower LR had run, and "1 trials"; it now says what happened (the trial trained and learned,
  no lower LR was tried);
* the step up from a suggestion that did not learn kept climbing past a candidate that diverged (``s``, ``4s``,
  ``16s``), then told the user to "check that the model can learn" — it now bisects between the highest candidate
  that trained and the lowest that diverged, and says which diverged;
* ``DIP_AND_PASSES`` / ``NOISE_SCALING`` set to a non-bool (``"false"``) were read as on, silently;
* a run's record did not say which guard and reading chose its LR (the default changed under the same keys):
  ``AutoLR.to_dict()["settings"]`` now does, in events.json too (``inf`` written as ``"inf"``, not ``null``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit.train import auto as auto_mod
from lrkit.train.auto import Trial, _guard, choose_lr0

QUIET = dict(verbose=False, plots=False)


def _problem(seed: int = 0) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(512, 1, generator=g)
    train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))  # fmt: skip
    val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=128)
    return train, val


def _cosine(o: torch.optim.Optimizer, n: int) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    return torch.optim.lr_scheduler.CosineAnnealingLR(o, n)


def _runner(score: Callable[[float], float]) -> tuple[Callable[[float], Trial], list[float]]:
    tried: list[float] = []

    def run(c: float) -> Trial:
        tried.append(c)
        return Trial(c, score(c), 10)

    return run, tried


# ------------------------------------------------------------------------------------------ reason with the default
def test_the_default_reason_says_what_happened_not_a_step_down_that_never_ran() -> None:
    assert auto_mod.STEP_DOWN_MARGIN == math.inf and auto_mod.DIP_AND_PASSES is True
    train, val = _problem()
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    auto = choose_lr0(model, opt, train, val, total_steps=600, make_scheduler=_cosine)
    assert len(auto.trials) == 1 and auto.lr == auto.trials[0].lr  # the suggestion's trial only
    t = auto.trials[0]
    assert "1 trial of" in auto.reason and "1 trials" not in auto.reason
    # it names the trial's loss and says no lower LR ran (not "a short-trial win of a lower LR is not followed")
    assert f"loss {t.val_loss:.4g}" in auto.reason and "no lower LR was tried" in auto.reason
    assert "learned" in auto.log_lines[-1] and "STEP_DOWN_MARGIN=inf" in auto.log_lines[-1]
    # the budget: the range test plus the one trial, not the plan's three
    assert auto.extra_steps == auto.finder.num_steps_run + t.steps
    assert auto.extra_fraction == pytest.approx(auto.extra_steps / 600)


# ------------------------------------------------------------------------------ step up past a diverging candidate
def test_the_step_up_stops_at_divergence_and_bisects_back() -> None:
    # l0 = 10: lr <= 1 does not learn, 1 < lr < 3 learns, lr >= 3 diverges. Before: 1, 4, 16 and "check the model".
    run, tried = _runner(lambda c: 10.0 if c <= 1.0 else (5.0 if c < 3.0 else math.inf))
    lr, how = _guard(1.0, run, 3, [10.0])
    assert tried == pytest.approx([1.0, 4.0, 2.0]) and lr == pytest.approx(2.0)
    assert "lowest candidate that learned" in how


def test_no_learner_between_a_stall_and_a_divergence_is_reported_as_such() -> None:
    # nothing learns: lr < 3 stalls, lr >= 3 diverges; the reason must not blame the model/data
    run, tried = _runner(lambda c: 10.0 if c < 3.0 else math.inf)
    lr, how = _guard(1.0, run, 3, [10.0])
    assert tried == pytest.approx([1.0, 4.0, 2.0])
    assert lr in (1.0, 2.0) and math.isfinite(lr)
    assert "4 diverged" in how and "check that the model can learn" not in how
    # without a divergence the old advice stands
    run, tried = _runner(lambda c: 10.0)
    lr, how = _guard(1.0, run, 3, [10.0])
    assert tried == pytest.approx([1.0, 4.0, 16.0]) and "check that the model can learn" in how


def test_the_step_up_with_two_candidates_takes_the_first_that_learns() -> None:
    run, tried = _runner(lambda c: 10.0 if c <= 1.0 else 4.0)
    lr, how = _guard(1.0, run, 2, [10.0])
    assert tried == pytest.approx([1.0, 4.0]) and lr == pytest.approx(4.0) and "stepped up to 4" in how


# ------------------------------------------------------------------------------------- bad settings, before compute
@pytest.mark.parametrize("name", ["DIP_AND_PASSES", "NOISE_SCALING"])
@pytest.mark.parametrize("bad", ["false", 0, None])
def test_a_non_bool_reading_setting_is_an_error_naming_it_before_compute(
    monkeypatch: pytest.MonkeyPatch, name: str, bad: Any
) -> None:
    monkeypatch.setattr(auto_mod, name, bad)
    model = torch.nn.Linear(2, 1)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(4, 2), torch.randn(4, 1))]
    with pytest.raises(ValueError, match=rf"lrkit\.train\.auto\.{name}={bad!r} must be True or False"):
        choose_lr0(model, opt, data, data, total_steps=100, make_scheduler=_cosine)
    assert calls == []


# ---------------------------------------------------------------------------------------------------- the record
def test_to_dict_records_the_settings_the_choice_was_made_under(monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = _problem(1)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    auto = choose_lr0(model, opt, train, val, total_steps=300, make_scheduler=_cosine)
    record = json.loads(json.dumps(auto.to_dict(), allow_nan=False))
    assert record["settings"] == {"search": "guard", "step_down_margin": "inf", "dip_and_passes": True,
                                  "noise_scaling": True}  # fmt: skip
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", 0.0)  # a later change does not rewrite the record
    assert auto.to_dict()["settings"]["step_down_margin"] == "inf"
    monkeypatch.setattr(auto_mod, "DIP_AND_PASSES", False)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    old = choose_lr0(model, opt, train, val, total_steps=300, make_scheduler=_cosine)
    assert old.to_dict()["settings"]["step_down_margin"] == 0.0
    assert old.to_dict()["settings"]["dip_and_passes"] is False


def test_a_train_run_records_the_guard_and_resume_keeps_the_choice(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = lrkit.train(data="iris", model="linear", lr0="auto", epochs=2, batch=4, nbs=4, project=tmp_path, name="a",
                    **QUIET)  # fmt: skip
    record = json.loads((r.run_dir / "events.json").read_text())["lr0"]
    assert record["source"] == "auto" and record["auto"]["settings"]["step_down_margin"] == "inf"  # not null
    assert record["auto"]["lr"] == pytest.approx(r.lr0)

    def no_second_choice(*a: Any, **k: Any) -> Any:
        raise AssertionError("resume re-ran lr0='auto'")

    monkeypatch.setattr(auto_mod, "choose_lr0", no_second_choice)
    r2 = lrkit.train(resume=str(r.last_checkpoint), epochs=3, **QUIET)
    assert r2.lr0 == r.lr0 and r2.lr0_source == "auto"
    assert json.loads((r2.run_dir / "events.json").read_text())["lr0"] == record


# ------------------------------------------------------------------------------------ passes with accumulation
def test_the_run_sized_range_test_counts_passes_in_micro_batches() -> None:
    train, val = _problem(2)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    auto = choose_lr0(model, opt, train, val, total_steps=200, make_scheduler=_cosine, accumulate=3)
    f = auto.finder
    assert f.passes == pytest.approx(f.num_steps_run * 3 / len(train))
    assert auto.to_dict()["suggestion"] == pytest.approx(
        f.suggest(plateau_backoff_decades=auto_mod.PLATEAU_BACKOFF_DECADES, passes=f.num_steps_run * 3 / len(train)))
