"""``lr0="auto"`` for a Hugging Face ``transformers.Trainer`` in one call
(``lrkit.integrations.transformers.choose_trainer_lr``), session 22e.

Tiny models (a hand-written dict-output MLP with dropout, so the RNGs matter; GPT-2 built from a config: nothing is
downloaded), a CPU Trainer with ``report_to=[]``, ``save_strategy="no"`` and ``output_dir`` under ``tmp_path``. The
key tests: a ``train()`` after ``choose_trainer_lr(trainer, set_lr=False)`` is bit-identical to one without it, and
after ``set_lr=True`` bit-identical to a Trainer built by hand with ``learning_rate=auto.lr``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub: every model here is built from a config

import copy
import functools
import math
import random
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from _helpers import transformers_or_skip

transformers = transformers_or_skip()
from transformers import Trainer, TrainingArguments, get_scheduler  # noqa: E402

import lrkit  # noqa: E402
from _hf_helpers import CPU_ARGS, HF_WARNINGS, DropoutReg, LRs, dropout_rows, hf_trainer  # noqa: E402
from _hf_helpers import same as _same  # noqa: E402
from _hf_helpers import weights as _weights  # noqa: E402
from lrkit.integrations import transformers as hf  # noqa: E402
from lrkit.integrations.transformers import MonitorCallback, choose_trainer_lr, find_trainer_lr  # noqa: E402
from lrkit.train import auto as auto_mod  # noqa: E402
from lrkit.train.auto import AutoLR, choose_lr0  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings(*HF_WARNINGS)


def _data(n: int = 192) -> list[dict[str, torch.Tensor]]:
    return dropout_rows(n)


def _val(n: int = 48) -> list[dict[str, torch.Tensor]]:
    return _data(192 + n)[192:]


class Reg(DropoutReg):
    """:class:`DropoutReg` counting its forward passes in eval mode (``eval_forwards``)."""

    def __init__(self) -> None:
        super().__init__()
        self.eval_forwards = 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = super().forward(x, labels)
        if not self.training:
            self.eval_forwards += 1
        return out


#: A run long enough for trials at budget=1: 60 steps (range test 15 steps, then up to 3 trials of 15).
BASE: dict[str, Any] = dict(CPU_ARGS, max_steps=60, lr_scheduler_type="linear", warmup_steps=6)


def _trainer(tmp: Path, *, model: nn.Module | None = None, data: Any = None, **kw: Any) -> Trainer:
    return hf_trainer(tmp, BASE, model=model if model is not None else Reg(),
                      data=data if data is not None else _data(), **kw)


def _sgd(model: nn.Module) -> tuple[torch.optim.Optimizer, None]:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), None


@pytest.fixture
def spy_choose(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every call of ``choose_lr0`` (positional arguments as ``args``, and its keywords), still run for real."""
    seen: list[dict[str, Any]] = []
    real = auto_mod.choose_lr0

    @functools.wraps(real)
    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append({"args": args, **kwargs})
        return real(*args, **kwargs)

    monkeypatch.setattr(auto_mod, "choose_lr0", spy)
    return seen


# ------------------------------------------------------------------ the key tests: nothing is left behind
@pytest.mark.parametrize("case", ["adamw-ga-clip-eval", "user-sgd-no-eval"])
def test_train_after_choose_trainer_lr_set_lr_false_is_bit_identical_to_train_without_it(
        tmp_path: Path, case: str) -> None:
    own = case.startswith("user")
    kw: dict[str, Any] = dict(gradient_accumulation_steps=2, max_grad_norm=1.0, weight_decay=0.01, max_steps=30)

    def build(sub: str, spy: LRs) -> Trainer:
        model = Reg()
        return _trainer(tmp_path / sub, model=model, optimizers=_sgd(model) if own else (None, None),
                        eval_dataset=None if own else _val(), callbacks=[spy], **kw)

    plain_lrs = LRs()
    plain = build("a", plain_lrs)
    plain.train()

    probed_lrs = LRs()
    probed = build("b", probed_lrs)
    before = _weights(probed.model)
    auto = choose_trainer_lr(probed, set_lr=False, budget=1.0)
    assert len(auto.trials) >= 1 and auto.finder.num_steps_run >= 7  # it really trained (range test and trials)
    assert _same(_weights(probed.model), before) and probed_lrs.calls == 0 and probed_lrs.lrs == []
    assert probed.args.learning_rate == 0.01 and (probed.optimizer is None) is (not own)
    probed.train()
    assert probed_lrs.lrs == plain_lrs.lrs and len(plain_lrs.lrs) == 30
    assert _same(_weights(probed.model), _weights(plain.model))

    # the comparison can fail: one RNG draw before train() (dropout, shuffling) changes the result
    shifted = build("c", LRs())
    torch.rand(1)
    shifted.train()
    assert not _same(_weights(shifted.model), _weights(plain.model))


@pytest.mark.parametrize("case", ["adamw-linear-warmup-ga-eval", "sgd-cosine-ratio-warmup", "gpt2-checkpointing-bf16"])
def test_train_after_set_lr_is_bit_identical_to_a_trainer_built_with_learning_rate_auto_lr(
        tmp_path: Path, case: str) -> None:
    data, eval_dataset = _data, _val
    make: Any = Reg
    if case.startswith("adamw"):
        kw: dict[str, Any] = dict(gradient_accumulation_steps=2, max_grad_norm=1.0, weight_decay=0.01, max_steps=40,
                                  warmup_steps=4)
    elif case.startswith("sgd"):
        kw = dict(optim="sgd", lr_scheduler_type="cosine", warmup_steps=0.1, max_grad_norm=0.0)
        eval_dataset = None  # type: ignore[assignment]
    else:
        kw = dict(activation_checkpointing=True, bf16=True, per_device_train_batch_size=8, max_steps=40,
                  warmup_steps=2)

        def make() -> nn.Module:
            torch.manual_seed(0)
            return transformers.GPT2LMHeadModel(transformers.GPT2Config(
                vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32, bos_token_id=0, eos_token_id=0,
                pad_token_id=0))

        def data() -> list[dict[str, torch.Tensor]]:
            g = torch.Generator().manual_seed(1)
            rows = [torch.randint(1, 50, (12,), generator=g) for _ in range(80)]
            return [{"input_ids": r, "labels": r} for r in rows]

        def eval_dataset() -> list[dict[str, torch.Tensor]]:
            return data()[64:]

    chosen = LRs()
    trainer = _trainer(tmp_path / "a", model=make(), data=data(), callbacks=[chosen],
                       eval_dataset=eval_dataset() if eval_dataset is not None else None, **kw)
    auto = choose_trainer_lr(trainer, budget=1.0)
    assert isinstance(auto, AutoLR) and auto.lr != 0.01 and trainer.args.learning_rate == auto.lr
    assert trainer.optimizer is None and trainer.lr_scheduler is None
    trainer.train()

    by_hand = LRs()
    manual = _trainer(tmp_path / "b", model=make(), data=data(), callbacks=[by_hand],
                      eval_dataset=eval_dataset() if eval_dataset is not None else None,
                      **{**kw, "learning_rate": auto.lr})
    manual.train()
    assert chosen.lrs == by_hand.lrs and len(chosen.lrs) == manual.state.global_step
    assert max(max(step) for step in chosen.lrs) == pytest.approx(auto.lr, rel=1e-6)  # the schedule peaks at it
    assert _same(_weights(trainer.model), _weights(manual.model))


def test_set_lr_scales_a_users_optimizer_and_train_then_peaks_at_the_choice(tmp_path: Path) -> None:
    model = Reg()
    optimizer = torch.optim.SGD([{"params": model.net[0].parameters(), "lr": 0.01},
                                 {"params": model.net[3].parameters(), "lr": 0.001}], momentum=0.9)
    spy = LRs()
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, None), callbacks=[spy],
                       lr_scheduler_type="constant", warmup_steps=0)
    auto = choose_trainer_lr(trainer, budget=1.0)
    assert trainer.optimizer is optimizer and trainer.args.learning_rate == auto.lr
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([auto.lr, auto.lr / 10], rel=1e-12)
    trainer.train()  # the Trainer builds its constant schedule on the scaled optimizer
    assert spy.lrs[0] == pytest.approx([auto.lr, auto.lr / 10], rel=1e-12)


def test_the_trainer_its_accelerator_rngs_and_callbacks_are_as_before(tmp_path: Path) -> None:
    spy = LRs()
    trainer = _trainer(tmp_path, callbacks=[spy, MonitorCallback()], eval_dataset=_val())
    state = copy.deepcopy(vars(trainer.state))
    callbacks = list(trainer.callback_handler.callbacks)
    accelerator = trainer.accelerator
    prepared = list(accelerator._dataloaders)
    refs = list(accelerator.gradient_state._dataloader_references_ref)
    had_cache = "_eval_dataloaders" in vars(trainer)
    rngs = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    before = _weights(trainer.model)
    choose_trainer_lr(trainer, set_lr=False, budget=1.0)
    assert trainer.model.eval_forwards > 0  # the eval loader was built and scored on
    assert vars(trainer.state) == state
    assert trainer.callback_handler.callbacks == callbacks
    assert spy.calls == 0 and spy.lrs == []  # no callback ran
    assert accelerator._dataloaders == prepared  # neither the train nor the eval loader is left in accelerate's lists
    assert accelerator.gradient_state._dataloader_references_ref == refs
    assert ("_eval_dataloaders" in vars(trainer)) is had_cache
    assert torch.equal(torch.get_rng_state(), rngs[0])
    assert np.array_equal(np.random.get_state()[1], rngs[1]) and random.getstate() == rngs[2]
    assert trainer.optimizer is None and trainer.lr_scheduler is None and trainer.model.training
    assert _same(_weights(trainer.model), before)


# ------------------------------------------------------------------ what it runs on
@pytest.mark.parametrize("run", [
    dict(max_steps=60),
    dict(max_steps=-1, num_train_epochs=20, gradient_accumulation_steps=5),  # 12 batches: 3 steps an epoch (2.4)
    dict(max_steps=-1, num_train_epochs=2.5, per_device_train_batch_size=4),  # 48 batches an epoch: 120 steps
], ids=["max_steps", "epochs-with-a-partial-accumulation", "fractional-epochs"])
def test_total_steps_are_the_steps_train_takes_and_the_extra_compute_is_within_budget(
        tmp_path: Path, spy_choose: list[dict[str, Any]], run: dict[str, Any]) -> None:
    trainer = _trainer(tmp_path, **run)
    auto = choose_trainer_lr(trainer, set_lr=False, budget=0.5)
    total = spy_choose[-1]["total_steps"]
    assert auto.extra_steps <= 0.5 * total and auto.extra_fraction == auto.extra_steps / total
    trainer.train()
    assert trainer.state.global_step == total == trainer.state.max_steps


def test_the_result_equals_choose_lr0_run_by_hand_on_the_trainers_parts(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, gradient_accumulation_steps=2, max_grad_norm=0.5, eval_dataset=_val(), seed=7)
    auto = choose_trainer_lr(trainer, set_lr=False, budget=1.0, num_candidates=2, finder_kwargs={"num_steps": 12})

    # by hand, from the same RNG state (the call put it back), building the parts in the same order
    optimizer = trainer.create_optimizer()
    loader = trainer.get_train_dataloader()
    val = trainer.get_eval_dataloader()

    def sched(o: torch.optim.Optimizer, n: int) -> Any:  # the linear schedule, warmup 6 of 60 steps compressed
        return get_scheduler("linear", o, num_warmup_steps=math.ceil(6 * n / 60), num_training_steps=n)

    hand = choose_lr0(trainer.model, optimizer, loader, val, total_steps=60, make_scheduler=sched, budget=1.0,
                      num_candidates=2, seed=7, accumulate=2, max_grad_norm=0.5,
                      finder_kwargs={"num_steps": 12, "amp": False},
                      step_fn=lambda m, b: trainer.compute_loss(m, trainer._prepare_inputs(b)))
    assert auto.trials and auto.trials == hand.trials
    assert auto.lr == hand.lr and auto.finder.losses == hand.finder.losses
    assert auto.extra_steps == hand.extra_steps and auto.trial_steps == hand.trial_steps


def test_an_eval_dataset_scores_the_trials_on_it_and_none_on_the_training_loss(
        tmp_path: Path, spy_choose: list[dict[str, Any]]) -> None:
    with_eval = _trainer(tmp_path / "a", eval_dataset=_val(40), per_device_eval_batch_size=20)
    auto = choose_trainer_lr(with_eval, set_lr=False, budget=1.0)
    val = spy_choose[-1]["args"][3]
    assert val is not None and len(val) == 2  # get_eval_dataloader(): 40 rows in eval batches of 20
    assert any("scored on validation loss" in line for line in auto.log_lines)
    assert with_eval.model.eval_forwards >= 2 * (1 + len(auto.trials))  # before training, then after each trial

    without = _trainer(tmp_path / "b")
    auto = choose_trainer_lr(without, set_lr=False, budget=1.0)
    assert spy_choose[-1]["args"][3] is None
    assert any("scored on training loss" in line for line in auto.log_lines)
    assert without.model.eval_forwards == 0

    several = _trainer(tmp_path / "c", eval_dataset={"small": _val(20), "big": _val(60)},
                       per_device_eval_batch_size=20)
    choose_trainer_lr(several, set_lr=False, budget=1.0)
    assert len(spy_choose[-1]["args"][3]) == 1  # the first of a dict of eval datasets


def test_the_trial_schedule_is_the_trainers_own_compressed(tmp_path: Path) -> None:
    def lrs(sched: Any, n: int) -> list[float]:
        out = []
        for _ in range(n):
            out.append(sched.optimizer.param_groups[0]["lr"])
            sched.optimizer.step()
            sched.step()
        return out

    def opt() -> torch.optim.Optimizer:
        return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)

    for warmup in (10, 0.1):  # in steps, and as a ratio: 10 of 100 steps either way
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=100, warmup_steps=warmup, report_to=[],
                                 lr_scheduler_type="linear", use_cpu=True)
        make = hf._trainer_make_scheduler(args, 100)
        trainer = Trainer(model=Reg(), args=args, train_dataset=_data())
        full = trainer.create_scheduler(100, optimizer=opt())  # what train() builds
        assert lrs(make(opt(), 100), 100) == lrs(full, 100)  # n == total_steps: exactly the run's schedule
        short = lrs(make(opt(), 20), 20)
        assert short[:3] == [0.0, 0.5, 1.0]  # 2 warmup steps of a 20-step trial, then the linear decay
        assert short[3:] == pytest.approx([1 - k / 18 for k in range(1, 18)])

    wsd = TrainingArguments(output_dir=str(tmp_path), max_steps=100, warmup_steps=10, report_to=[], use_cpu=True,
                            lr_scheduler_type="warmup_stable_decay",
                            lr_scheduler_kwargs={"num_decay_steps": 30, "num_stable_steps": 60})
    with pytest.warns(UserWarning, match="num_stable_steps will be used"):  # transformers', for both given
        short = lrs(hf._trainer_make_scheduler(wsd, 100)(opt(), 20), 20)
    assert short[:2] == [0.0, 0.5] and short[2:15] == [1.0] * 13 and short[15] < 1.0  # 2 warmup, 12 stable, 6 decay
    assert dict(wsd.lr_scheduler_kwargs) == {"num_decay_steps": 30, "num_stable_steps": 60}  # not changed


def test_the_trainers_accumulation_clipping_bf16_and_seed_are_passed(
        tmp_path: Path, spy_choose: list[dict[str, Any]]) -> None:
    trainer = _trainer(tmp_path / "a", gradient_accumulation_steps=3, max_grad_norm=0.5, bf16=True, seed=11,
                       max_steps=40)
    choose_trainer_lr(trainer, set_lr=False, budget=0.5, num_candidates=2, finder_kwargs={"end_lr": 1.0})
    seen = spy_choose[-1]
    assert seen["accumulate"] == 3 and seen["max_grad_norm"] == 0.5 and seen["seed"] == 11
    assert seen["finder_kwargs"] == {"amp": "bf16", "end_lr": 1.0}
    assert seen["budget"] == 0.5 and seen["num_candidates"] == 2 and seen["total_steps"] == 40
    choose_trainer_lr(_trainer(tmp_path / "b", max_grad_norm=0.0), set_lr=False, budget=1.0)
    assert spy_choose[-1]["max_grad_norm"] is None and spy_choose[-1]["accumulate"] == 1
    assert spy_choose[-1]["finder_kwargs"] == {"amp": False}


def test_log_gets_every_line(tmp_path: Path) -> None:
    lines: list[str] = []
    auto = choose_trainer_lr(_trainer(tmp_path), set_lr=False, budget=1.0, log=lines.append)
    assert lines == auto.log_lines and any(line.startswith("lr0=auto: chose") for line in lines)


# ------------------------------------------------------------------ errors
def test_a_scheduler_a_previous_train_left_is_refused(tmp_path: Path) -> None:
    # (a user scheduler that has not stepped is replayed since session 23: tests/test_hf_user_sched_s23.py)
    trained = _trainer(tmp_path / "b", max_steps=2)
    trained.train()
    with pytest.raises(ValueError, match=r"has already stepped.*trainer.optimizer = trainer.lr_scheduler = None"):
        choose_trainer_lr(trained)
    trained.optimizer = trained.lr_scheduler = None  # as the message says: a fresh optimizer and schedule
    assert choose_trainer_lr(trained, budget=5.0).lr == trained.args.learning_rate


def test_a_metric_schedule_or_a_subclass_schedule_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"lr_scheduler_type='reduce_lr_on_plateau' follows a metric.*"
                                         r"find_trainer_lr"):
        choose_trainer_lr(_trainer(tmp_path / "a", lr_scheduler_type="reduce_lr_on_plateau", eval_strategy="steps",
                                   eval_dataset=_val()))

    class Mine(Trainer):
        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            return super().create_scheduler(num_training_steps, optimizer)

    with pytest.raises(ValueError, match=r"Mine overrides create_scheduler.*lrkit.choose_lr0"):
        choose_trainer_lr(_trainer(tmp_path / "b", cls=Mine))


@pytest.mark.parametrize("setup, expected", [
    ("is_deepspeed_enabled", "DeepSpeed"),
    ("is_fsdp_enabled", "FSDP"),
    ("is_model_parallel", "model split over several devices"),
    ("world_size", "2 processes"),
])
def test_unsupported_setups_are_refused_as_find_trainer_lr_refuses_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: str, expected: str) -> None:
    trainer = _trainer(tmp_path)
    if setup == "world_size":
        monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    else:
        monkeypatch.setattr(trainer, setup, True)
    with pytest.raises(ValueError, match=rf"choose_trainer_lr does not support .*{expected}.*"
                                         r"lrkit.choose_lr0\(model, optimizer, train_loader, val_loader"):
        choose_trainer_lr(trainer)
    with pytest.raises(ValueError, match=rf"find_trainer_lr does not support .*{expected}"):
        find_trainer_lr(trainer)


def test_bad_arguments_are_refused_naming_the_value_and_what_is_valid(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    with pytest.raises(ValueError, match=r"finder_kwargs=\{'amp': \.\.\.\}\): the Trainer supplies .*args.bf16"):
        choose_trainer_lr(trainer, finder_kwargs={"amp": "bf16"})
    with pytest.raises(ValueError, match=r"'accumulation_steps'.*args.gradient_accumulation_steps"):
        choose_trainer_lr(trainer, finder_kwargs={"accumulation_steps": 2})
    with pytest.raises(ValueError, match=r"'step_fn'.*trainer.compute_loss"):
        choose_trainer_lr(trainer, finder_kwargs={"step_fn": None})
    with pytest.raises(ValueError, match=r"num_step'.*Did you mean 'num_steps'"):
        choose_trainer_lr(trainer, finder_kwargs={"num_step": 20})
    with pytest.raises(ValueError, match=r"finder_kwargs=\[1\] must be a dict"):
        choose_trainer_lr(trainer, finder_kwargs=[1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="set_lr='yes'"):
        choose_trainer_lr(trainer, set_lr="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"must be a transformers.Trainer.*lrkit.choose_lr0"):
        choose_trainer_lr(Reg())
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_steps'"):
        choose_trainer_lr(trainer, num_steps=20)  # type: ignore[call-arg]
    for budget in (0, -0.5, float("nan")):
        with pytest.raises(ValueError, match=r"budget=.* must be"):
            choose_trainer_lr(trainer, budget=budget)
    with pytest.raises(ValueError, match=r"budget=0.1 .*x total_steps=60 allows 6"):  # too small for a range test
        choose_trainer_lr(trainer, budget=0.1)
    with pytest.raises(ValueError, match="num_candidates=0"):
        choose_trainer_lr(trainer, num_candidates=0)
    with pytest.raises(ValueError, match="log="):
        choose_trainer_lr(trainer, log="print")  # type: ignore[arg-type]
    assert trainer.optimizer is None and trainer.args.learning_rate == 0.01
    assert trainer.accelerator._dataloaders == []


def test_no_or_an_empty_train_dataset_is_a_clear_error(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    trainer.train_dataset = []
    with pytest.raises(ValueError, match=r"choose_trainer_lr: the Trainer's train_dataset is empty"):
        choose_trainer_lr(trainer)
    trainer.train_dataset = None
    with pytest.raises(ValueError, match=r"choose_trainer_lr: the Trainer has no train_dataset"):
        choose_trainer_lr(trainer)


def test_a_batch_without_labels_is_a_clear_error_naming_choose_trainer_lr(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, data=[{"x": r["x"]} for r in _data()])
    before = _weights(trainer.model)
    with pytest.raises(ValueError, match=r"choose_trainer_lr: the model returned no loss.*label_names: labels"):
        choose_trainer_lr(trainer)
    assert trainer.optimizer is None and _same(_weights(trainer.model), before)


def test_it_is_exported() -> None:
    assert "choose_trainer_lr" in hf.__all__ and "find_trainer_lr" in hf.__all__
    assert lrkit.train.auto.AutoLR is AutoLR


def test_the_docstring_example_runs_as_written(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The example in ``choose_trainer_lr``'s docstring (a literal block: it needs transformers) runs and prints what
    its comment says."""
    doc = choose_trainer_lr.__doc__ or ""
    block = doc[doc.index("runs it)::") + len("runs it)::"):]
    monkeypatch.chdir(tmp_path)
    exec(compile(textwrap.dedent(block), "choose_trainer_lr.__doc__", "exec"), {})
    assert capsys.readouterr().out.split()[-2:] == ["True", "True"]
