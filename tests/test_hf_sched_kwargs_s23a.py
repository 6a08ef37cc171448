"""Session 23a: ``choose_trainer_lr``'s trial schedules and ``choose_lr0``'s too-small-budget wording.

Bugs fixed:

- a float step count in ``args.lr_scheduler_kwargs`` (``{"num_decay_steps": 30.0}``, as a JSON string on the command
  line gives it, or a numpy integer) was passed to every trial uncompressed, so each trial ran another schedule than
  the run's; a step count that is not one (negative, NaN, a string, a bool) and kwargs transformers cannot build
  (a misspelt key) failed inside transformers after the range test's compute, or not at all;
- ``lr_scheduler_type="polynomial"`` with a candidate LR at or below ``lr_end`` stopped the call with transformers'
  words wrapped in ``make_scheduler=... failed`` (naming neither the candidate nor a fix), and a suggestion used
  without trials (a small budget) came back and was set although ``train()`` refuses it;
- ``lrkit.train.auto.choose_lr0`` called directly named ``lrkit.train``'s ``auto_budget`` in its too-small-budget
  error.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from _helpers import transformers_or_skip

transformers = transformers_or_skip()
from transformers import Trainer, TrainingArguments  # noqa: E402

import lrkit  # noqa: E402
from _hf_helpers import CPU_ARGS, HF_WARNINGS, LinearReg, hf_trainer, linear_rows  # noqa: E402
from _hf_helpers import step_lrs as _lrs  # noqa: E402
from lrkit.integrations import transformers as hf  # noqa: E402
from lrkit.integrations.transformers import choose_trainer_lr  # noqa: E402
from lrkit.train import auto as auto_mod  # noqa: E402
from lrkit.train.auto import choose_lr0  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings(*HF_WARNINGS)

BASE: dict[str, Any] = dict(CPU_ARGS, max_steps=60, warmup_steps=6)


def _data(n: int = 192) -> list[dict[str, torch.Tensor]]:
    return linear_rows(n)


class Reg(LinearReg):
    """:class:`LinearReg` counting every forward pass (``forwards``)."""

    def __init__(self) -> None:
        super().__init__()
        self.forwards = 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        self.forwards += 1
        return super().forward(x, labels)


def _trainer(tmp: Path, **kw: Any) -> Trainer:
    return hf_trainer(tmp, BASE, model=Reg(), data=_data(), **kw)


def _opt(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def _trial(tmp: Path, n: int, **kw: Any) -> list[float]:
    """The LRs of make_scheduler's ``n``-step trial schedule for a 100-step run with ``kw``'s TrainingArguments."""
    args = TrainingArguments(output_dir=str(tmp), max_steps=100, report_to=[], use_cpu=True, **kw)
    return _lrs(opt := _opt(), hf._trainer_make_scheduler(args, 100)(opt, n), n)


class _NoCompute(Exception):
    pass


@pytest.fixture
def no_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    """``choose_lr0`` stops at once: an error raised with it in place came before any forward pass."""
    def stop(*a: Any, **k: Any) -> Any:
        raise _NoCompute

    monkeypatch.setattr(auto_mod, "choose_lr0", stop)


# ------------------------------------------------------------------------------- 1. float step counts compressed
WSD = dict(lr_scheduler_type="warmup_stable_decay", warmup_steps=10)


@pytest.mark.filterwarnings("ignore:Both num_training_steps and num_stable_steps")
@pytest.mark.parametrize("kind, ints, others", [
    ("warmup_stable_decay", {"num_decay_steps": 30, "num_stable_steps": 60}, {"warmup_steps": 10}),
    ("warmup_stable_decay", {"num_decay_steps": 30}, {"warmup_steps": 10}),
    ("inverse_sqrt", {"timescale": 50}, {"warmup_steps": 10}),
])
@pytest.mark.parametrize("as_type", [float, np.int64, np.float32, "json"])
def test_a_float_or_numpy_step_count_is_compressed_as_the_integer_one(
        tmp_path: Path, kind: str, ints: dict[str, int], others: dict[str, Any], as_type: Any) -> None:
    given: Any = ({k: float(v) for k, v in ints.items()} if as_type == "json" else  # '{"num_decay_steps": 30.0}'
                  {k: as_type(v) for k, v in ints.items()})
    if as_type == "json":
        given = json.dumps(given)
        assert "30.0" in given or "50.0" in given
    short_ints = _trial(tmp_path, 20, lr_scheduler_type=kind, lr_scheduler_kwargs=ints, **others)
    short = _trial(tmp_path, 20, lr_scheduler_type=kind, lr_scheduler_kwargs=given, **others)
    assert short == short_ints  # before: 30.0 decay steps in a 20-step trial, the trial all stable/decay
    full = _trial(tmp_path, 100, lr_scheduler_type=kind, lr_scheduler_kwargs=given, **others)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=100, report_to=[], use_cpu=True,
                             lr_scheduler_type=kind, lr_scheduler_kwargs=given, **others)
    opt = _opt()
    run = Trainer(model=Reg(), args=args, train_dataset=_data()).create_scheduler(100, optimizer=opt)
    assert full == _lrs(opt, run, 100)  # n == total_steps: exactly what train() builds


@pytest.mark.filterwarnings("ignore:Both num_training_steps and num_stable_steps")
def test_a_fractional_step_count_is_kept_at_full_length_and_rounded_up_in_a_trial(tmp_path: Path) -> None:
    kw = dict(WSD, lr_scheduler_kwargs={"num_decay_steps": 30.5})
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=100, report_to=[], use_cpu=True, **kw)
    opt = _opt()
    run = Trainer(model=Reg(), args=args, train_dataset=_data()).create_scheduler(100, optimizer=opt)
    assert _trial(tmp_path, 100, **kw) == _lrs(opt, run, 100)
    # 30.5 x 20 / 100 = 6.1 -> 7 decay steps, as 35 x 20 / 100 = 7 are
    assert _trial(tmp_path, 20, **kw) == _trial(tmp_path, 20, **dict(WSD, lr_scheduler_kwargs={"num_decay_steps": 35}))
    assert _trial(tmp_path, 20, **kw) != _trial(tmp_path, 20, **dict(WSD, lr_scheduler_kwargs={"num_decay_steps": 30}))


def test_ratios_and_floors_are_not_compressed(tmp_path: Path) -> None:
    kw = dict(WSD, lr_scheduler_kwargs={"num_decay_steps": 30, "min_lr_ratio": 0.1, "num_cycles": 0.5})
    short = _trial(tmp_path, 20, **kw)
    assert short[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 6)))  # 6 decay steps, ratio 0.1
    cyc = dict(lr_scheduler_type="cosine_with_restarts", warmup_steps=0, lr_scheduler_kwargs={"num_cycles": 2})
    assert max(_trial(tmp_path, 20, **cyc)[1:]) == pytest.approx(1.0)  # two cycles in the trial, as in the run


@pytest.mark.parametrize("key, value, why", [
    ("num_decay_steps", -5, "a number of steps >= 0"),
    ("num_decay_steps", float("nan"), "a number of steps >= 0"),
    ("num_decay_steps", float("inf"), "a number of steps >= 0"),
    ("num_stable_steps", "60", "a number of steps >= 0"),
    ("num_decay_steps", True, "a number of steps >= 0"),
    ("num_decay_steps", None, "a number of steps >= 0"),
    ("timescale", 0, "a number of steps > 0"),
    ("timescale", -3.0, "a number of steps > 0"),
])
def test_a_step_count_that_is_not_one_is_refused_before_any_compute(
        tmp_path: Path, no_compute: None, key: str, value: Any, why: str) -> None:
    kind = "inverse_sqrt" if key == "timescale" else "warmup_stable_decay"
    kwargs = {key: value} if key != "num_stable_steps" else {key: value, "num_decay_steps": 10}
    trainer = _trainer(tmp_path, lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs)
    with pytest.raises(ValueError) as info:
        choose_trainer_lr(trainer)
    text = str(info.value)
    assert f"lr_scheduler_kwargs {key}={value!r}" in text and why in text, text
    assert trainer.model.forwards == 0 and trainer.args.learning_rate == 0.01 and trainer.optimizer is None


@pytest.mark.parametrize("kind, kwargs, words", [
    ("warmup_stable_decay", {"num_decay_step": 30}, "unexpected keyword argument 'num_decay_step'"),
    ("warmup_stable_decay", {"num_decay_steps": 10, "decay_type": "exp"}, "Unknown decay type: exp"),
    ("polynomial", {"lr_end": "1e-3"}, "lr_end='1e-3' must be a number >= 0"),
    ("polynomial", {"lr_end": None}, "lr_end=None must be a number >= 0"),
    ("cosine_with_min_lr", {"min_lr": -1e-3}, "min_lr=-0.001 must be a number >= 0"),
])
def test_kwargs_transformers_cannot_build_are_refused_before_any_compute(
        tmp_path: Path, no_compute: None, kind: str, kwargs: dict[str, Any], words: str) -> None:
    trainer = _trainer(tmp_path, lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs)
    with pytest.raises(ValueError, match=r"choose_trainer_lr: .*lr_scheduler_kwargs") as info:
        choose_trainer_lr(trainer)
    assert words in str(info.value), str(info.value)
    assert trainer.model.forwards == 0 and trainer.optimizer is None


def test_good_kwargs_still_reach_choose_lr0(tmp_path: Path, no_compute: None) -> None:
    trainer = _trainer(tmp_path, lr_scheduler_type="warmup_stable_decay",
                       lr_scheduler_kwargs={"num_decay_steps": 30.0, "min_lr_ratio": 0.1})
    with pytest.raises(_NoCompute):
        choose_trainer_lr(trainer)


# ----------------------------------------------------------------------------- 2. polynomial's lr_end as the floor
def test_a_suggestion_at_or_below_lr_end_is_a_clear_error_not_transformers_wrapped(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 5.0})
    lines: list[str] = []
    with pytest.raises(ValueError, match=r"^choose_trainer_lr: ") as info:
        choose_trainer_lr(trainer, budget=1.0, log=lines.append)
    text = str(info.value)
    assert "lr_end=5" in text and "polynomial" in text and "Lower lr_end" in text
    assert "trial at peak LR 1 (the first candidate: the range test's suggestion)" in text  # see the log
    assert "make_scheduler=" not in text
    assert any("suggests 1" in line for line in lines)
    assert trainer.args.learning_rate == 0.01 and trainer.optimizer is None and trainer.lr_scheduler is None


def test_a_suggestion_below_lr_end_used_without_trials_is_not_returned_nor_set(tmp_path: Path) -> None:
    # budget 0.25 x 60 = 15 steps: all for the range test, the suggestion is used as is, without a trial; before,
    # it came back and was set as args.learning_rate, and train() then refused it
    trainer = _trainer(tmp_path, lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 5.0})
    with pytest.raises(ValueError, match=r"^choose_trainer_lr: .*lr_end=5") as info:
        choose_trainer_lr(trainer, budget=0.25)
    assert "without a trial" in str(info.value)
    assert trainer.args.learning_rate == 0.01 and trainer.optimizer is None


def test_a_stepped_down_candidate_at_or_below_lr_end_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_mod, "STEP_DOWN_MARGIN", 0.0)  # the guard steps down from a suggestion that trained
    trainer = _trainer(tmp_path, lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 0.6})
    lines: list[str] = []
    with pytest.raises(ValueError, match=r"^choose_trainer_lr: ") as info:
        choose_trainer_lr(trainer, budget=1.0, log=lines.append)
    text = str(info.value)
    assert "trial at peak LR 0.5" in text and "lr_end=0.6" in text and "Lower lr_end" in text, text
    assert any("trial lr=1:" in line for line in lines)  # the suggestion's trial ran first
    assert trainer.args.learning_rate == 0.01


def test_lr_end_above_every_lr_the_range_test_sweeps_is_refused_before_any_compute(
        tmp_path: Path, no_compute: None) -> None:
    trainer = _trainer(tmp_path, lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 0.5})
    with pytest.raises(ValueError, match=r"^choose_trainer_lr: .*lr_end=0.5.*end_lr=0.1") as info:
        choose_trainer_lr(trainer, finder_kwargs={"end_lr": 0.1})
    assert "Lower lr_end" in str(info.value)
    assert trainer.model.forwards == 0
    with pytest.raises(_NoCompute):  # below the sweep's end: the suggestion may be above it
        choose_trainer_lr(_trainer(tmp_path, lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 0.05}),
                          finder_kwargs={"end_lr": 0.1})


def test_the_make_scheduler_error_names_the_candidate_and_lr_end(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=100, report_to=[], use_cpu=True,
                             lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 0.005})
    make = hf._trainer_make_scheduler(args, 100, 0.01)
    opt = _opt(0.01)
    for group in opt.param_groups:
        group["lr"] = 0.004
    with pytest.raises(ValueError, match=r"trial at peak LR 0.004 .*lr_end=0.005") as info:
        make(opt, 20)
    assert "transformers" in str(info.value)
    assert opt.defaults["lr"] == 0.01  # put back
    assert make.__name__ == "the Trainer's polynomial schedule"  # before: "SchedulerType.POLYNOMIAL"
    for group in opt.param_groups:
        group["lr"] = 0.02
    assert _lrs(opt, make(opt, 20), 20)[-1] == pytest.approx(0.005 + 0.015 / 20)


# ------------------------------------------------------------------------ 3. choose_lr0's too-small-budget wording
def _direct(total_steps: int, budget: float) -> str:
    model = nn.Linear(4, 1)
    data = [(torch.randn(4, 4), torch.randn(4, 1)) for _ in range(4)]
    with pytest.raises(ValueError, match="needs at least 10 extra optimizer steps") as info:
        choose_lr0(model, torch.optim.SGD(model.parameters(), lr=0.1), data, None, total_steps=total_steps,
                   make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1.0), budget=budget)
    return str(info.value)


def test_choose_lr0_called_directly_names_its_own_budget_argument() -> None:
    text = _direct(20, 0.3)
    assert text.startswith("choose_lr0 needs at least 10 extra optimizer steps"), text
    assert "raise budget= to at least 0.5" in text and "total_steps" in text
    assert "auto_budget" not in text and "lrkit.train" not in text and "lr0'" not in text
    text = _direct(8, 1.0)  # 10 / 8 = 1.25: choose_lr0's budget may exceed 1 (lrkit.train's auto_budget may not)
    assert "raise budget= to at least 1.25" in text and "auto_budget" not in text and "nbs" not in text


def test_lrkit_train_and_choose_trainer_lr_keep_their_callers_words(tmp_path: Path) -> None:
    x, y = torch.randn(8, 6), torch.zeros(8, dtype=torch.long)
    ds = torch.utils.data.TensorDataset(x, y)
    with pytest.raises(ValueError, match=r"budget=0\.3 \(lrkit\.train's auto_budget\) x total_steps") as info:
        lrkit.train(nn.Linear(6, 3), data=(ds, ds), epochs=1, lr0="auto", project=str(tmp_path), verbose=False,
                    plots=False)
    assert "explicit lr0" in str(info.value)
    with pytest.raises(ValueError, match=r"^choose_trainer_lr needs at least 10 extra optimizer steps") as info:
        choose_trainer_lr(_trainer(tmp_path, max_steps=9), budget=1.0)
    assert "auto_budget" not in str(info.value)
    assert _direct(20, 0.3).startswith("choose_lr0")  # and not left set after either call
