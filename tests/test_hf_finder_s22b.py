"""lrkit's LR range test on a Hugging Face ``transformers.Trainer`` in one call
(``lrkit.integrations.transformers.find_trainer_lr``), session 22b.

Tiny models (a hand-written dict-output MLP with dropout, and GPT-2 built from a config: nothing is downloaded), a
CPU Trainer with ``report_to=[]``, ``save_strategy="no"`` and ``output_dir`` under ``tmp_path``. The key test: a
``train()`` after ``find_trainer_lr(trainer, set_lr=False)`` gives bit-identical weights to one without it.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub: every model here is built from a config

import copy
import functools
import random
import subprocess
import sys
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
from _hf_helpers import CPU_ARGS, HF_WARNINGS, DropoutReg, LRs, dropout_rows, hf_trainer  # noqa: E402
from _hf_helpers import same as _same  # noqa: E402
from _hf_helpers import weights as _weights  # noqa: E402
from lrkit.finder import range_test  # noqa: E402
from lrkit.integrations.transformers import MonitorCallback, find_trainer_lr  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings(*HF_WARNINGS)


def _data(n: int = 192, *, labels: bool = True) -> list[dict[str, torch.Tensor]]:
    return dropout_rows(n, labels=labels)


class Reg(DropoutReg):
    """:class:`DropoutReg` counting its training forward passes with gradients (``forwards``)."""

    def __init__(self) -> None:
        super().__init__()
        self.forwards = 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = super().forward(x, labels)
        if self.training and torch.is_grad_enabled():
            self.forwards += 1
        return out


BASE: dict[str, Any] = dict(CPU_ARGS, max_steps=12, lr_scheduler_type="constant")


def _trainer(tmp: Path, *, model: nn.Module | None = None, data: Any = None, **kw: Any) -> Trainer:
    return hf_trainer(tmp, BASE, model=model if model is not None else Reg(),
                      data=data if data is not None else _data(), **kw)


def _sgd(model: nn.Module) -> tuple[torch.optim.Optimizer, None]:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), None


# ------------------------------------------------------------------ the key test: nothing is left behind
@pytest.mark.parametrize("own_optimizer", [False, True], ids=["trainer-built-AdamW", "user-SGD"])
def test_train_after_find_trainer_lr_set_lr_false_is_bit_identical_to_train_without_it(
        tmp_path: Path, own_optimizer: bool) -> None:
    kw: dict[str, Any] = dict(gradient_accumulation_steps=2, max_grad_norm=1.0, weight_decay=0.01)

    def build(sub: str) -> Trainer:
        model = Reg()
        return _trainer(tmp_path / sub, model=model, optimizers=_sgd(model) if own_optimizer else (None, None), **kw)

    plain = build("a")
    plain.train()
    expected = _weights(plain.model)

    probed = build("b")
    before = _weights(probed.model)
    result = find_trainer_lr(probed, set_lr=False, num_steps=20)
    assert len(result.lrs) >= 10 and probed.model.forwards >= 2 * 10  # the test really trained (2 micro-batches)
    assert _same(_weights(probed.model), before)
    assert probed.args.learning_rate == 0.01
    assert (probed.optimizer is None) is (not own_optimizer)
    probed.train()
    assert _same(_weights(probed.model), expected)

    # the comparison can fail: one RNG draw before train() (dropout, shuffling) changes the result
    shifted = build("c")
    torch.rand(1)
    shifted.train()
    assert not _same(_weights(shifted.model), expected)


def test_a_tiny_gpt2_trains_bit_identically_after_the_test(tmp_path: Path) -> None:
    hf = transformers

    def build(sub: str) -> Trainer:
        torch.manual_seed(0)
        model = hf.GPT2LMHeadModel(hf.GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32,
                                                 bos_token_id=0, eos_token_id=0, pad_token_id=0))
        g = torch.Generator().manual_seed(1)
        rows = [torch.randint(1, 50, (12,), generator=g) for _ in range(64)]
        data = [{"input_ids": r, "attention_mask": torch.ones(12, dtype=torch.long), "labels": r} for r in rows]
        return _trainer(tmp_path / sub, model=model, data=data, max_steps=4, per_device_train_batch_size=8,
                        gradient_accumulation_steps=2, lr_scheduler_type="linear", warmup_steps=1)

    plain = build("a")
    plain.train()
    probed = build("b")
    result = find_trainer_lr(probed, set_lr=False, num_steps=12)
    assert len(result.lrs) >= 10 and result.loss is not None
    probed.train()
    assert _same(_weights(probed.model), _weights(plain.model))


def test_the_trainer_its_accelerator_rngs_and_callbacks_are_as_before(tmp_path: Path) -> None:
    spy = LRs()
    trainer = _trainer(tmp_path, callbacks=[spy, MonitorCallback()])
    state = copy.deepcopy(vars(trainer.state))
    callbacks = list(trainer.callback_handler.callbacks)
    accelerator = trainer.accelerator
    prepared = list(accelerator._dataloaders)
    refs = list(accelerator.gradient_state._dataloader_references_ref)
    rngs = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    find_trainer_lr(trainer, set_lr=False, num_steps=12)
    assert vars(trainer.state) == state
    assert trainer.callback_handler.callbacks == callbacks
    assert spy.calls == 0 and spy.lrs == []  # no callback ran during the test
    assert accelerator._dataloaders == prepared  # the test's loader is not left in accelerate's lists
    assert accelerator.gradient_state._dataloader_references_ref == refs
    assert torch.equal(torch.get_rng_state(), rngs[0])
    assert np.array_equal(np.random.get_state()[1], rngs[1]) and random.getstate() == rngs[2]
    assert trainer.optimizer is None and trainer.lr_scheduler is None


# ------------------------------------------------------------------ what it runs on
def test_the_suggestion_equals_find_lr_run_by_hand_on_the_trainers_parts(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, gradient_accumulation_steps=2, max_grad_norm=0.5)
    result = find_trainer_lr(trainer, set_lr=False, num_steps=25)

    optimizer = trainer.create_optimizer()
    loader = trainer.get_train_dataloader()
    by_hand = lrkit.find_lr(trainer.model, optimizer, loader, num_steps=25, accumulation_steps=2, max_grad_norm=0.5,
                            step_fn=lambda m, b: trainer.compute_loss(m, trainer._prepare_inputs(b)))
    assert result.lrs == by_hand.lrs and result.losses == by_hand.losses
    assert result.suggestion == by_hand.suggestion


def test_a_compute_loss_override_is_the_loss_the_curve_records(tmp_path: Path) -> None:
    class Plus5(Trainer):
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch) + 5.0

    plain = find_trainer_lr(_trainer(tmp_path / "a"), set_lr=False, num_steps=15, diverge_factor=None)
    plus = find_trainer_lr(_trainer(tmp_path / "b", cls=Plus5), set_lr=False, num_steps=15, diverge_factor=None)
    assert len(plain.losses) == len(plus.losses) == 15
    # the same gradients (a constant added), so the same weights at every step: the curve is shifted by 5
    np.testing.assert_allclose(np.array(plus.losses) - np.array(plain.losses), 5.0, rtol=0, atol=1e-4)


def test_the_trainers_accumulation_clipping_and_bf16_are_passed(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    real = range_test.find_lr

    @functools.wraps(real)
    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(range_test, "find_lr", spy)
    trainer = _trainer(tmp_path / "a", gradient_accumulation_steps=3, max_grad_norm=0.5, bf16=True)
    result = find_trainer_lr(trainer, set_lr=False, num_steps=10, diverge_factor=None)
    assert seen[-1]["accumulation_steps"] == 3 and seen[-1]["max_grad_norm"] == 0.5 and seen[-1]["amp"] == "bf16"
    assert trainer.model.forwards == 3 * len(result.lrs) == 30  # three micro-batches per optimizer step
    find_trainer_lr(_trainer(tmp_path / "b", max_grad_norm=0.0), set_lr=False, num_steps=10)
    assert seen[-1]["max_grad_norm"] is None and seen[-1]["accumulation_steps"] == 1 and seen[-1]["amp"] is False


# ------------------------------------------------------------------ set_lr
@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_set_lr_makes_the_first_training_step_run_at_the_suggestion(tmp_path: Path, schedule: str) -> None:
    spy = LRs()
    trainer = _trainer(tmp_path, callbacks=[spy], lr_scheduler_type=schedule, warmup_steps=0)
    result = find_trainer_lr(trainer, num_steps=20)
    assert trainer.args.learning_rate == result.suggestion != 0.01
    assert trainer.optimizer is None
    trainer.train()
    assert spy.lrs[0] == [result.suggestion, result.suggestion]  # both of the Trainer's weight-decay groups


def test_set_lr_scales_a_users_optimizer_and_scheduler_keeping_the_group_ratios(tmp_path: Path) -> None:
    model = Reg()
    optimizer = torch.optim.SGD([{"params": model.net[0].parameters(), "lr": 0.01},
                                 {"params": model.net[3].parameters(), "lr": 0.001}], momentum=0.9)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, step / 4))  # lr 0 at step 0
    spy = LRs()
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, warmup), callbacks=[spy])
    result = find_trainer_lr(trainer, num_steps=20)
    s = result.suggestion
    assert trainer.optimizer is optimizer and trainer.lr_scheduler is warmup
    assert trainer.args.learning_rate == s
    assert [g["initial_lr"] for g in optimizer.param_groups] == pytest.approx([s, s / 10], rel=1e-12)
    assert warmup.base_lrs == pytest.approx([s, s / 10], rel=1e-12)
    trainer.train()
    assert spy.lrs[0] == [0.0, 0.0]
    assert spy.lrs[4] == pytest.approx([s, s / 10], rel=1e-12)  # the warmup's peak is the suggestion


def test_set_lr_with_a_user_optimizer_and_no_scheduler(tmp_path: Path) -> None:
    model = Reg()
    spy = LRs()
    trainer = _trainer(tmp_path, model=model, optimizers=_sgd(model), callbacks=[spy])
    result = find_trainer_lr(trainer, num_steps=20)
    trainer.train()  # the Trainer builds its constant scheduler on the scaled optimizer
    assert spy.lrs[0] == pytest.approx([result.suggestion], rel=1e-12)


def test_set_lr_scales_the_lr_of_optimizer_cls_and_kwargs(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=16, report_to=[],
                             use_cpu=True, disable_tqdm=True, save_strategy="no", lr_scheduler_type="constant")
    spy = LRs()
    trainer = Trainer(model=Reg(), args=args, train_dataset=_data(), callbacks=[spy],
                      optimizer_cls_and_kwargs=(torch.optim.SGD, {"lr": 0.003, "momentum": 0.9}))
    result = find_trainer_lr(trainer, num_steps=20)
    assert trainer.optimizer_cls_and_kwargs[1] == {"lr": result.suggestion, "momentum": 0.9}
    trainer.train()
    assert spy.lrs[0] == [result.suggestion, result.suggestion]  # the weight-decay groups


# ------------------------------------------------------------------ errors
def test_bad_keywords_are_refused_naming_the_valid_ones_or_where_the_value_comes_from(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    with pytest.raises(ValueError, match=r"num_step'.*Did you mean 'num_steps'.*Valid: .*end_lr"):
        find_trainer_lr(trainer, num_step=20)
    with pytest.raises(ValueError, match=r"step_fn=.*trainer.compute_loss"):
        find_trainer_lr(trainer, step_fn=lambda m, b: 0)
    with pytest.raises(ValueError, match=r"accumulation_steps=.*args.gradient_accumulation_steps"):
        find_trainer_lr(trainer, accumulation_steps=2)
    with pytest.raises(ValueError, match=r"amp=.*args.bf16"):
        find_trainer_lr(trainer, amp="bf16")
    with pytest.raises(ValueError, match=r"optimizer=.*optimizers=\(optimizer, scheduler\)"):
        find_trainer_lr(trainer, optimizer=None)
    with pytest.raises(ValueError, match="set_lr='yes'"):
        find_trainer_lr(trainer, set_lr="yes")
    with pytest.raises(ValueError, match="must be a transformers.Trainer"):
        find_trainer_lr(Reg())
    with pytest.raises(ValueError, match="end_lr=1e-09 must be greater"):  # find_lr's own checks still run
        find_trainer_lr(trainer, end_lr=1e-9)
    assert trainer.optimizer is None and trainer.args.learning_rate == 0.01


def test_a_batch_without_labels_is_a_clear_error_and_leaves_the_trainer_untouched(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, data=_data(labels=False))
    before = _weights(trainer.model)
    with pytest.raises(ValueError, match=r"model returned no loss.*label_names: labels") as info:
        find_trainer_lr(trainer)
    assert "find_trainer_lr" in str(info.value)
    assert trainer.optimizer is None and _same(_weights(trainer.model), before)


def test_a_tuple_output_without_a_loss_is_a_clear_error(tmp_path: Path) -> None:
    class Tup(Reg):
        def forward(self, x: torch.Tensor, labels: Any = None) -> Any:
            return (self.net(x),)

    with pytest.raises(ValueError, match=r"compute_loss returned a tensor of shape \(16, 1\), not a scalar loss"):
        find_trainer_lr(_trainer(tmp_path, model=Tup()))


def test_no_train_dataset_is_a_clear_error(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    trainer.train_dataset = None
    with pytest.raises(ValueError, match="has no train_dataset"):
        find_trainer_lr(trainer)


@pytest.mark.parametrize("setup, expected", [
    ("is_deepspeed_enabled", "DeepSpeed"),
    ("is_fsdp_enabled", "FSDP"),
    ("is_model_parallel", "model split over several devices"),
    ("world_size", "2 processes"),
])
def test_unsupported_setups_are_refused_naming_them_and_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   setup: str, expected: str) -> None:
    trainer = _trainer(tmp_path)
    if setup == "world_size":
        monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    else:
        monkeypatch.setattr(trainer, setup, True)
    with pytest.raises(ValueError, match=rf"does not support .*{expected}.*lrkit.find_lr\(model, optimizer"):
        find_trainer_lr(trainer)


@pytest.fixture(scope="module")
def without_transformers() -> str:
    """What ``find_trainer_lr`` and ``choose_trainer_lr`` raise in a process where transformers cannot be imported
    (one subprocess for both: each start imports torch)."""
    code = (
        "import sys, lrkit, lrkit.integrations.transformers as m\n"
        "assert 'transformers' not in sys.modules and 'accelerate' not in sys.modules\n"
        "sys.modules['transformers'] = None\n"
        "for f in (m.find_trainer_lr, m.choose_trainer_lr):\n"
        "    try:\n"
        "        f(object())\n"
        "    except lrkit._utils.MissingExtraError as e:\n"
        "        print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("name", ["find_trainer_lr", "choose_trainer_lr"])
def test_without_transformers_the_function_says_how_to_install_it(without_transformers: str, name: str) -> None:
    line = next(ln for ln in without_transformers.splitlines() if name in ln)
    assert line.startswith("ERR") and "pip install transformers" in line


def test_after_a_first_train_the_next_train_runs_at_the_suggestion(tmp_path: Path) -> None:
    spy = LRs()
    trainer = _trainer(tmp_path, callbacks=[spy], max_steps=3)
    trainer.train()  # the Trainer's optimizer (in accelerate's wrapper) and scheduler are kept for the next train()
    result = find_trainer_lr(trainer, num_steps=20)
    spy.lrs.clear()
    trainer.train()
    assert spy.lrs[0] == pytest.approx([result.suggestion] * 2, rel=1e-12)


def test_the_docstring_example_runs_as_written(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The example in ``find_trainer_lr``'s docstring (a literal block, not a doctest: it needs transformers, which
    the test extra installs only on Python >= 3.11) runs and prints what its comment says."""
    import textwrap

    from lrkit.integrations.transformers import find_trainer_lr

    doc = find_trainer_lr.__doc__ or ""
    block = doc[doc.index("runs it)::") + len("runs it)::"):]
    code = textwrap.dedent(block)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "find_trainer_lr.__doc__", "exec"), {})
    assert capsys.readouterr().out.split()[-2:] == ["True", "True"]
