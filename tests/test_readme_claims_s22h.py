"""README claims of session 22 on the Hugging Face ``Trainer`` functions that no other test guards (check 22h).

- ``choose_trainer_lr``: a run too short for the range test is refused before any work (the model and the Trainer
  untouched), and the fix it names, a ``budget`` above 1, is accepted.
- ``find_trainer_lr(set_lr=True)`` with ``optimizer_cls_and_kwargs`` carrying its own ``lr``: that ``lr`` becomes
  the suggestion, and ``args.learning_rate`` (which the built optimizer did not use) is scaled by the same factor.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub: nothing here is downloaded

from pathlib import Path
from typing import Any

import pytest
import torch

from _helpers import transformers_or_skip

transformers = transformers_or_skip()
from transformers import Trainer, TrainingArguments  # noqa: E402

from _hf_helpers import LinearReg as _Reg  # noqa: E402
from _hf_helpers import linear_rows  # noqa: E402
from lrkit.integrations.transformers import choose_trainer_lr, find_trainer_lr  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning",
                                        "ignore:.*(loss|curve|suggest|range|steps|flat|trial).*:UserWarning")


def _data(n: int = 128) -> list[dict[str, torch.Tensor]]:
    return linear_rows(n)


def _args(tmp: Path, **kw: Any) -> TrainingArguments:
    base: dict[str, Any] = dict(output_dir=str(tmp), per_device_train_batch_size=16, max_steps=8, report_to=[],
                                use_cpu=True, disable_tqdm=True, save_strategy="no", logging_strategy="no",
                                lr_scheduler_type="cosine", seed=0)
    base.update(kw)
    return TrainingArguments(**base)


def test_choose_trainer_lr_refuses_a_too_short_run_before_any_work_and_accepts_a_budget_above_1(
        tmp_path: Path) -> None:
    trainer = Trainer(model=_Reg(), args=_args(tmp_path / "a"), train_dataset=_data())
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(ValueError, match=r"budget=0\.3 x total_steps=8 allows 2 .*raise budget to at least 1\.25"):
        choose_trainer_lr(trainer)
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())
    assert trainer.optimizer is None and trainer.args.learning_rate == 5e-5  # nothing set

    auto = choose_trainer_lr(Trainer(model=_Reg(), args=_args(tmp_path / "b"), train_dataset=_data()), budget=2.0)
    assert 10 <= auto.extra_steps <= 2.0 * 8 and len(auto.finder.lrs) >= 10


def test_find_trainer_lr_sets_optimizer_cls_and_kwargs_lr_and_scales_args_learning_rate(tmp_path: Path) -> None:
    trainer = Trainer(model=_Reg(), args=_args(tmp_path, lr_scheduler_type="constant"), train_dataset=_data(),
                      optimizer_cls_and_kwargs=(torch.optim.SGD, {"lr": 0.003, "momentum": 0.9}))
    result = find_trainer_lr(trainer, num_steps=20)
    s = result.suggestion
    assert trainer.optimizer_cls_and_kwargs[1]["lr"] == s  # the LR the built optimizer trains at
    # args.learning_rate was not the optimizer's LR: it is scaled by the same factor, not set to the suggestion
    assert trainer.args.learning_rate == pytest.approx(5e-5 * s / 0.003, rel=1e-12) != s
