"""Framework integrations bug hunt (session 35g): the Hugging Face Trainer helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from _helpers import transformers_or_skip

transformers_or_skip()
from transformers import Trainer  # noqa: E402

from _hf_helpers import CPU_ARGS, HF_WARNINGS, LinearReg, LRs, hf_args, linear_rows, same, weights  # noqa: E402
from lrkit.integrations.transformers import choose_trainer_lr, find_trainer_lr  # noqa: E402

pytestmark = pytest.mark.filterwarnings(*HF_WARNINGS)

_ARGS = dict(CPU_ARGS, max_steps=40, lr_scheduler_type="constant")


def _cls_trainer(tmp: Path, kwargs: dict[str, Any], lrs: LRs | None = None) -> Trainer:
    """A Trainer whose optimizer ``train()`` builds from ``optimizer_cls_and_kwargs=(SGD, kwargs)``."""
    return Trainer(model=LinearReg(), args=hf_args(tmp, _ARGS), train_dataset=linear_rows(),
                   optimizer_cls_and_kwargs=(torch.optim.SGD, dict(kwargs)), callbacks=[lrs] if lrs else None)


# ------------------------------------------------------------------ (2) optimizer_cls_and_kwargs without an "lr"
@pytest.mark.parametrize("who", ["find", "choose"])
def test_an_optimizer_cls_and_kwargs_without_lr_trains_at_the_lr_set(tmp_path: Path, who: str) -> None:
    # the optimizer is built at SGD's own default LR (1e-3), which args.learning_rate does not change: before, the
    # LR found was written to args.learning_rate alone and train() ran at 1e-3
    lrs = LRs()
    trainer = _cls_trainer(tmp_path / "a", {"momentum": 0.9}, lrs)
    if who == "find":
        lr = find_trainer_lr(trainer, num_steps=20).suggestion
    else:
        lr = choose_trainer_lr(trainer, budget=1.0).lr
    assert lr != pytest.approx(1e-3)
    assert trainer.optimizer_cls_and_kwargs[1] == {"momentum": 0.9, "lr": lr}
    assert trainer.args.learning_rate == lr
    trainer.train()
    assert lrs.lrs[0] == [lr, lr] and lrs.lrs[-1] == [lr, lr]  # (LinearReg: weight and bias groups)

    by_hand = _cls_trainer(tmp_path / "b", {"momentum": 0.9, "lr": lr})  # the LR set by hand instead
    by_hand.train()
    assert same(weights(trainer.model), weights(by_hand.model))


def test_an_optimizer_cls_and_kwargs_with_lr_still_has_it_replaced(tmp_path: Path) -> None:
    trainer = _cls_trainer(tmp_path, {"lr": 0.05, "momentum": 0.9})
    lr = find_trainer_lr(trainer, num_steps=20).suggestion
    assert trainer.optimizer_cls_and_kwargs[1] == {"lr": lr, "momentum": 0.9}
