"""Review 22d of ``lrkit.integrations.transformers.find_trainer_lr``: what a Hugging Face user runs into.

- a ``compute_loss_func`` is handed ``num_items_in_batch`` (``train()`` always gives it a count; the test gave it
  ``None``, and the usual ``loss.sum() / num_items_in_batch`` raised a ``TypeError`` inside the user's function);
- ``activation_checkpointing=True`` is on during the test, as in ``train()`` (the test ran without it: the memory of
  a run that needs checkpointing to fit), and off again afterwards;
- an empty ``train_dataset`` is a clear error (it was torch's ``num_samples should be a positive integer``);
- the key check: ``find_trainer_lr`` then ``train()`` is bit-identical to a run built with
  ``TrainingArguments(learning_rate=suggestion)`` by hand.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub: every model here is built from a config

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from _helpers import transformers_or_skip

transformers = transformers_or_skip()
from transformers import Trainer, TrainingArguments  # noqa: E402

from _hf_helpers import CPU_ARGS, HF_WARNINGS, LRs, dropout_rows, hf_args  # noqa: E402
from _hf_helpers import DropoutReg as Reg  # noqa: E402
from _hf_helpers import same as _same  # noqa: E402
from _hf_helpers import weights as _weights  # noqa: E402
from lrkit.integrations.transformers import find_trainer_lr  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings(*HF_WARNINGS)

BASE: dict[str, Any] = dict(CPU_ARGS, max_steps=8, lr_scheduler_type="constant")


def _data(n: int = 192) -> list[dict[str, torch.Tensor]]:
    return dropout_rows(n)


def _args(tmp: Path, **kw: Any) -> TrainingArguments:
    return hf_args(tmp, BASE, **kw)


def _gpt2() -> nn.Module:
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32, bos_token_id=0, eos_token_id=0,
        pad_token_id=0))


def _tokens(n: int = 64) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(1, 50, (12,), generator=g) for _ in range(n)]
    return [{"input_ids": r, "labels": r} for r in rows]


# ------------------------------------------------------------------ compute_loss_func and num_items_in_batch
def test_a_compute_loss_func_dividing_by_num_items_in_batch_works_and_records_the_models_loss(
        tmp_path: Path) -> None:
    seen: list[Any] = []

    def summed_mse(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        seen.append(num_items_in_batch)  # train() always passes a count here; so must the test
        return ((outputs["logits"] - labels) ** 2).sum() / num_items_in_batch

    plain = find_trainer_lr(Trainer(model=Reg(), args=_args(tmp_path / "a"), train_dataset=_data()),
                            set_lr=False, num_steps=15, diverge_factor=None)
    custom = find_trainer_lr(Trainer(model=Reg(), args=_args(tmp_path / "b"), train_dataset=_data(),
                                     compute_loss_func=summed_mse), set_lr=False, num_steps=15, diverge_factor=None)
    assert len(seen) == 15 and all(int(n) == 16 for n in seen)  # each micro-batch's own label count
    # the sum over the micro-batch / its count is the model's own mean: the same curve
    np.testing.assert_allclose(custom.losses, plain.losses, rtol=1e-5)


def test_with_gradient_accumulation_each_micro_batch_is_its_own_mean(tmp_path: Path) -> None:
    seen: list[int] = []

    def summed_mse(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        seen.append(int(num_items_in_batch))
        return ((outputs["logits"] - labels) ** 2).sum() / num_items_in_batch

    args = _args(tmp_path / "b", gradient_accumulation_steps=2)
    plain = find_trainer_lr(Trainer(model=Reg(), args=_args(tmp_path / "a", gradient_accumulation_steps=2),
                                    train_dataset=_data()), set_lr=False, num_steps=10, diverge_factor=None)
    custom = find_trainer_lr(Trainer(model=Reg(), args=args, train_dataset=_data(), compute_loss_func=summed_mse),
                             set_lr=False, num_steps=10, diverge_factor=None)
    assert seen == [16] * 20
    np.testing.assert_allclose(custom.losses, plain.losses, rtol=1e-5)


# ------------------------------------------------------------------ activation checkpointing
def test_activation_checkpointing_is_on_during_the_test_as_in_train_and_off_afterwards(tmp_path: Path) -> None:
    model = _gpt2()
    during: list[bool] = []
    spy = model.register_forward_pre_hook(lambda module, args: during.append(module.is_activation_checkpointing))
    embeddings = model.get_input_embeddings()
    hooks_before = dict(embeddings._forward_hooks)
    trainer = Trainer(model=model, args=_args(tmp_path, activation_checkpointing=True, per_device_train_batch_size=8,
                                              max_steps=2), train_dataset=_tokens())
    assert not model.is_activation_checkpointing  # train() turns it on, not Trainer(...)
    find_trainer_lr(trainer, set_lr=False, num_steps=10, diverge_factor=None)
    spy.remove()
    assert during and set(during) == {True}
    assert not model.is_activation_checkpointing  # the model is as it was
    assert dict(embeddings._forward_hooks) == hooks_before and "_require_grads_hooks" not in model.__dict__


def test_a_model_already_checkpointing_stays_so(tmp_path: Path) -> None:
    model = _gpt2()
    model.activation_checkpointing_enable()
    hooks = model.__dict__.get("_require_grads_hooks")
    trainer = Trainer(model=model, args=_args(tmp_path, activation_checkpointing=True, per_device_train_batch_size=8,
                                              max_steps=2), train_dataset=_tokens())
    find_trainer_lr(trainer, set_lr=False, num_steps=10, diverge_factor=None)
    assert model.is_activation_checkpointing and model.__dict__.get("_require_grads_hooks") is hooks


# ------------------------------------------------------------------ errors
def test_an_empty_train_dataset_is_a_clear_error(tmp_path: Path) -> None:
    trainer = Trainer(model=Reg(), args=_args(tmp_path), train_dataset=[])
    with pytest.raises(ValueError, match=r"find_trainer_lr: the Trainer's train_dataset is empty"):
        find_trainer_lr(trainer)
    assert trainer.optimizer is None and trainer.args.learning_rate == 0.01


# ------------------------------------------------------------------ the key check
@pytest.mark.parametrize("case", ["adamw-linear-warmup-ga-clip", "sgd-cosine", "gpt2-checkpointing-bf16"])
def test_train_after_find_trainer_lr_is_bit_identical_to_a_run_built_with_the_suggestion_by_hand(
        tmp_path: Path, case: str) -> None:
    if case.startswith("gpt2"):
        kw: dict[str, Any] = dict(activation_checkpointing=True, bf16=True, per_device_train_batch_size=8,
                                  lr_scheduler_type="linear", warmup_steps=2, max_steps=4)
        make, data = _gpt2, _tokens
    else:
        kw = (dict(gradient_accumulation_steps=2, max_grad_norm=1.0, weight_decay=0.01, lr_scheduler_type="linear",
                   warmup_steps=3) if case.startswith("adamw") else
              dict(optim="sgd", lr_scheduler_type="cosine", max_grad_norm=0.0))
        make, data = Reg, _data

    found = LRs()
    trainer = Trainer(model=make(), args=_args(tmp_path / "a", **kw), train_dataset=data(), callbacks=[found])
    s = find_trainer_lr(trainer, num_steps=20).suggestion
    assert s != 0.01 and trainer.args.learning_rate == s
    trainer.train()

    by_hand = LRs()
    manual = Trainer(model=make(), args=_args(tmp_path / "b", **{**kw, "learning_rate": s}), train_dataset=data(),
                     callbacks=[by_hand])
    manual.train()
    assert found.lrs == by_hand.lrs and len(found.lrs) >= 4
    assert _same(_weights(trainer.model), _weights(manual.model))
