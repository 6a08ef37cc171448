"""``find_trainer_lr`` with ``lr_scheduler_type="polynomial"``: a suggestion at or below ``lr_end`` was set with a
warning, and ``train()`` then failed inside transformers ("lr_end must be smaller than initial lr"). Now it is a clear
error before anything is set (the curve on the error's ``.result``); an ``lr_end`` no suggestion can clear is refused
before the range test; ``set_lr=False`` only returns the result."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from lrkit.integrations.transformers import find_trainer_lr
from test_hf_finder_s22b import Reg, _sgd, _trainer


@pytest.mark.parametrize("own_optimizer", [False, True], ids=["trainer-built", "user-SGD"])
def test_a_suggestion_at_or_below_lr_end_is_an_error_and_nothing_is_set(tmp_path: Path, own_optimizer: bool) -> None:
    model = Reg()
    trainer = _trainer(tmp_path, model=model, optimizers=_sgd(model) if own_optimizer else (None, None),
                       lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 5.0})
    default = trainer.optimizer.defaults["lr"] if own_optimizer else None
    with pytest.raises(ValueError, match=r"find_trainer_lr: the LR to set, .* is at or below lr_end=5 of "
                                         r"lr_scheduler_type='polynomial'.*nothing was set.*Lower lr_end") as err:
        find_trainer_lr(trainer, num_steps=20)
    result = err.value.result  # type: ignore[attr-defined]
    assert result.suggestion <= 5.0 and len(result.lrs) > 0
    assert trainer.args.learning_rate == 0.01
    if own_optimizer:
        assert trainer.optimizer.defaults["lr"] == default
        assert all(g["lr"] == 0.01 for g in trainer.optimizer.param_groups)


def test_an_lr_end_at_or_above_the_range_is_refused_before_the_test(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 2.0})
    steps: list[int] = []
    with pytest.raises(ValueError, match=r"find_trainer_lr: lr_end=2 .* at or above every LR the range test sweeps "
                                         r"\(up to end_lr=1\)"):
        find_trainer_lr(trainer, num_steps=20, end_lr=1.0, progress=lambda *a: steps.append(1))
    assert steps == []


def test_below_an_lr_end_the_suggestion_is_set_and_train_runs(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 1e-6})
    result = find_trainer_lr(trainer, num_steps=20)
    assert trainer.args.learning_rate == result.suggestion > 1e-6
    trainer.train()
    assert trainer.state.global_step == 12


def test_set_lr_false_returns_the_result_whatever_lr_end_says(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 5.0})
    result = find_trainer_lr(trainer, num_steps=20, set_lr=False)
    assert result.suggestion <= 5.0 and trainer.args.learning_rate == 0.01


def test_find_trainer_lr_refuses_to_set_through_a_scheduler_of_another_optimizer(tmp_path: Path) -> None:
    """Setting the suggestion scales your optimizer and scheduler: one built on another optimizer would be scaled
    while the Trainer's optimizer keeps a schedule nobody steps. Refused, naming both, before the test; set_lr=False
    is fine."""
    model = Reg()
    optimizer, _ = _sgd(model)
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(other, lambda t: 1.0)
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, scheduler))
    with pytest.raises(ValueError, match=r"find_trainer_lr: your LambdaLR steps another optimizer than the Trainer's"):
        find_trainer_lr(trainer, num_steps=20)
    assert other.param_groups[0]["lr"] == 0.5 and optimizer.param_groups[0]["lr"] == 0.01
    assert find_trainer_lr(trainer, num_steps=20, set_lr=False).suggestion > 0
