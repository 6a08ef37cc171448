"""Review 22g of ``choose_trainer_lr`` (``lr0="auto"`` for a ``transformers.Trainer``).

Bugs found and fixed in ``lrkit.integrations.transformers``:

- an absolute floor in ``lr_scheduler_kwargs`` (``polynomial``'s ``lr_end``, ``cosine_with_min_lr``'s ``min_lr``)
  is read by transformers against ``optimizer.defaults["lr"]``: the trials built every candidate's schedule on the
  optimizer made at the old ``args.learning_rate``, so the floor became a fraction of the candidate (a 0.1 trial
  ended at 0.01, not at ``min_lr=1e-3`` as the run at 0.1 does);
- a run too short for the range test was refused in ``lrkit.train``'s words (``auto_budget``, ``explicit lr0``,
  ``nbs``), which a Trainer user cannot act on;
- an ``eval_dataset`` without labels failed the scoring pass with "the Trainer's batches must hold the labels ...
  nothing to train on", blaming the training batches, which have them.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from _helpers import transformers_or_skip

transformers = transformers_or_skip()
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from _hf_helpers import CPU_ARGS, HF_WARNINGS, hf_trainer, linear_rows  # noqa: E402
from _hf_helpers import LinearReg as Reg  # noqa: E402
from _hf_helpers import step_lrs as _lrs  # noqa: E402
from lrkit.integrations.transformers import choose_trainer_lr  # noqa: E402
from lrkit.train import auto as auto_mod  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings(*HF_WARNINGS)

BASE: dict[str, Any] = dict(CPU_ARGS, max_steps=60, warmup_steps=6)


def _data(n: int = 192, labels: bool = True) -> list[dict[str, torch.Tensor]]:
    return linear_rows(n, labels=labels)


def _trainer(tmp: Path, eval_dataset: Any = None, **kw: Any) -> Trainer:
    return hf_trainer(tmp, BASE, model=Reg(), data=_data(), eval_dataset=eval_dataset, **kw)


@pytest.mark.parametrize("kind, kwargs", [("polynomial", {"lr_end": 1e-3, "power": 2.0}),
                                          ("cosine_with_min_lr", {"min_lr": 1e-3})])
@pytest.mark.parametrize("peak", [0.1, 0.003])
def test_an_absolute_floor_in_lr_scheduler_kwargs_stays_absolute_in_the_trials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, kwargs: dict[str, float], peak: float) -> None:
    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake(model: Any, optimizer: Any, *a: Any, **kw: Any) -> Any:  # capture the trial schedule, run nothing
        seen.update(kw, optimizer=optimizer)
        raise Stop

    monkeypatch.setattr(auto_mod, "choose_lr0", fake)
    trainer = _trainer(tmp_path / "a", lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs)
    with pytest.raises(Stop):
        choose_trainer_lr(trainer)
    # a trial at `peak` over the run's whole length, as choose_lr0 runs it: groups at the peak, then make_scheduler
    optimizer = trainer.create_optimizer()
    for group in optimizer.param_groups:
        group["lr"] = peak
        group.pop("initial_lr", None)
    trial = _lrs(optimizer, seen["make_scheduler"](optimizer, 60), 60)
    assert optimizer.defaults["lr"] == 0.01  # put back
    run = _trainer(tmp_path / "b", lr_scheduler_type=kind, lr_scheduler_kwargs=kwargs, learning_rate=peak)
    run.create_optimizer_and_scheduler(60)
    expected = _lrs(run.optimizer, run.lr_scheduler, 60)
    assert trial == pytest.approx(expected, rel=1e-9, abs=0)
    assert trial[-1] > 0.9e-3  # the absolute floor, not floor x peak / 0.01


def test_a_run_too_short_for_the_range_test_is_refused_in_the_trainers_words(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, max_steps=9)
    with pytest.raises(ValueError, match=r"choose_trainer_lr needs at least 10 extra optimizer steps") as info:
        choose_trainer_lr(trainer, budget=1.0)
    text = str(info.value)
    assert "x total_steps=9 allows 9 (total_steps: the optimizer steps train() will take)" in text
    assert "max_steps or num_train_epochs" in text
    assert "raise budget to at least 1.12" in text and "find_trainer_lr" in text
    assert "auto_budget" not in text and "lr0" not in text and "nbs" not in text
    # no finder_kwargs num_steps can help here (>= 10 for the range test, <= budget x total_steps < 10): not offered
    assert "num_steps" not in text
    for n in (5, 10):
        with pytest.raises(ValueError):
            choose_trainer_lr(trainer, budget=1.0, finder_kwargs={"num_steps": n})
    assert trainer.optimizer is None and trainer.args.learning_rate == 0.01


def test_an_eval_dataset_without_labels_is_named_as_the_batches_without_a_loss(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, eval_dataset=_data(32, labels=False))
    with pytest.raises(ValueError, match=r"choose_trainer_lr: the eval_dataset's batches give no loss") as info:
        choose_trainer_lr(trainer, budget=1.0, finder_kwargs={"num_steps": 12})
    text = str(info.value)
    assert "did not return a loss" in text and "trainer.eval_dataset = None" in text
    assert "nothing to train on" not in text
    assert trainer.optimizer is None and trainer.model.training


class _LastLRs(TrainerCallback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
        self.lrs.append(float(optimizer.param_groups[0]["lr"]))


def test_set_lr_on_a_users_optimizer_keeps_an_absolute_floor_absolute_in_train(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_mod, "choose_lr0", lambda *a, **k: SimpleNamespace(lr=0.1))  # the choice: 0.1

    def run(tmp: Path, lr: float, choose: bool) -> list[float]:
        model = Reg()
        lrs = _LastLRs()
        trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp), **{
                              **BASE, "lr_scheduler_type": "cosine_with_min_lr",
                              "lr_scheduler_kwargs": {"min_lr": 1e-3}}),
                          train_dataset=_data(), optimizers=(torch.optim.SGD(model.parameters(), lr=lr), None),
                          callbacks=[lrs])
        if choose:
            choose_trainer_lr(trainer)
        trainer.train()
        return lrs.lrs

    chosen = run(tmp_path / "a", 0.01, True)
    by_hand = run(tmp_path / "b", 0.1, False)  # the user's optimizer built at the chosen LR
    assert chosen == pytest.approx(by_hand, rel=1e-9, abs=0)
    assert chosen[-1] < 2e-3  # ends near min_lr=1e-3, not near 1e-3 x 0.1 / 0.01


def test_the_trial_schedule_on_a_users_optimizer_keeps_the_absolute_floor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake(model: Any, optimizer: Any, *a: Any, **kw: Any) -> Any:
        seen.update(kw)
        return SimpleNamespace(lr=0.01)

    monkeypatch.setattr(auto_mod, "choose_lr0", fake)
    kw = {**BASE, "lr_scheduler_type": "polynomial", "lr_scheduler_kwargs": {"lr_end": 1e-3}}
    model = Reg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path / "a"), **kw),
                      train_dataset=_data(), optimizers=(optimizer, None))
    choose_trainer_lr(trainer, set_lr=False)
    for group in optimizer.param_groups:
        group["lr"] = 0.1
    trial = _lrs(optimizer, seen["make_scheduler"](optimizer, 60), 60)
    assert optimizer.defaults["lr"] == 0.01
    assert trial[-1] == pytest.approx(1e-3 + (0.1 - 1e-3) / 54, rel=1e-9)  # the run at 0.1's last step's LR
