"""``choose_trainer_lr(trainer, search="prefix")`` (session 29): ``lr0="auto"``'s opt-in prefix search for a Hugging
Face ``Trainer`` — five trials of the Trainer's real schedule (built over the whole run, its warmup in steps not
shrunk) around the range test's suggestion; a budget given with it, or a run too short for it, refused in the
Trainer's terms before anything changes."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub: the model is hand-written

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from _helpers import transformers_or_skip

transformers = transformers_or_skip()
from transformers import Trainer, TrainingArguments  # noqa: E402

from lrkit.integrations.transformers import choose_trainer_lr  # noqa: E402
from lrkit.train import auto as auto_mod  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning",
                                        "ignore:.*(loss|curve|suggest|range|steps|flat).*:UserWarning")


class Reg(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self.net(x).squeeze(-1)
        return {"logits": out} if labels is None else {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _trainer(tmp: Path, max_steps: int = 60) -> Trainer:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(240, 8, generator=g)
    y = x @ torch.randn(8, generator=g) + 0.1 * torch.randn(240, generator=g)
    data = [{"x": x[i], "labels": y[i]} for i in range(240)]
    args = TrainingArguments(output_dir=str(tmp), max_steps=max_steps, per_device_train_batch_size=16,
                             learning_rate=0.01, lr_scheduler_type="linear", warmup_steps=6, report_to=[],
                             use_cpu=True, disable_tqdm=True, save_strategy="no", logging_strategy="no", seed=0)
    return Trainer(model=Reg(), args=args, train_dataset=data[:192], eval_dataset=data[192:])


def test_five_trials_of_the_trainers_real_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built_over: list[int] = []
    real = auto_mod._make_trial_scheduler

    def spy(make_scheduler: Any, optimizer: torch.optim.Optimizer, steps: int) -> Any:
        built_over.append(steps)
        scheduler = real(make_scheduler, optimizer, steps)
        lrs = [scheduler.get_last_lr()[0]]
        for _ in range(6):
            optimizer.step()  # (no gradients: nothing moves; the scheduler's step-order check stays quiet)
            scheduler.step()
            lrs.append(scheduler.get_last_lr()[0])
        built_lrs.append(lrs)
        return real(make_scheduler, optimizer, steps)  # a fresh one for the trial itself

    built_lrs: list[list[float]] = []
    monkeypatch.setattr(auto_mod, "_make_trial_scheduler", spy)
    trainer = _trainer(tmp_path)
    auto = choose_trainer_lr(trainer, search="prefix")
    assert len(auto.trials) == 5 and auto.trial_steps == 12 + 3  # round(0.2 * 60) + round(0.05 * 60)
    assert auto.to_dict()["settings"]["search"] == "prefix"
    assert trainer.args.learning_rate == auto.lr
    assert built_over == [60] * 5  # the Trainer's schedule over the whole run
    for lrs, trial in zip(built_lrs, auto.trials):  # its 6-step warmup not shrunk to the trial: rises for 6 steps
        assert lrs == pytest.approx([trial.lr * k / 6 for k in range(7)], rel=1e-9)


def test_a_budget_with_the_prefix_search_or_a_misspelt_search_is_refused(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    with pytest.raises(ValueError, match=r"^choose_trainer_lr: budget=0\.5 does not apply to search='prefix'"):
        choose_trainer_lr(trainer, search="prefix", budget=0.5)
    with pytest.raises(ValueError, match=r"^choose_trainer_lr: unknown search 'prefx'\. Did you mean 'prefix'\?"):
        choose_trainer_lr(trainer, search="prefx")
    assert trainer.args.learning_rate == 0.01 and trainer.optimizer is None


def test_a_run_too_short_for_the_prefix_search_is_named_in_the_trainers_terms(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, max_steps=30)
    with pytest.raises(ValueError, match=r"choose_trainer_lr\(search='prefix'\) needs a run of at least 40 optimizer "
                                         r"steps .* but train\(\) will take 30; train longer .* or use "
                                         r"search='guard' with budget=0\.34 or more"):
        choose_trainer_lr(trainer, search="prefix")
    assert trainer.args.learning_rate == 0.01
