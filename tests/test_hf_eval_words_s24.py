"""choose_trainer_lr's error for an eval_dataset whose batches give no loss says it once (session 24): a model whose
output holds ``loss=None`` without labels made lrkit's own "compute_loss returned NoneType ..." message appear, prefix
and advice included, inside the outer one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from _helpers import transformers_or_skip

transformers = transformers_or_skip()
from transformers import Trainer, TrainingArguments  # noqa: E402

from lrkit.integrations.transformers import choose_trainer_lr  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_review_s22g import BASE, _data  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning",
                                        "ignore:.*(loss|curve|suggest|range|steps|flat).*:UserWarning")


class NoneLoss(nn.Module):
    """Returns ``{"loss": None, "logits": ...}`` when the batch has no labels (as some models do)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        out = self.net(x).squeeze(-1)
        return {"loss": None if labels is None else nn.functional.mse_loss(out, labels), "logits": out}


def test_an_eval_dataset_without_labels_is_said_once(tmp_path: Path) -> None:
    trainer = Trainer(model=NoneLoss(), args=TrainingArguments(output_dir=str(tmp_path), **BASE),
                      train_dataset=_data(), eval_dataset=_data(32, labels=False))
    with pytest.raises(ValueError, match=r"choose_trainer_lr: the eval_dataset's batches give no loss") as info:
        choose_trainer_lr(trainer, budget=1.0, finder_kwargs={"num_steps": 12})
    text = str(info.value)
    assert "(trainer.compute_loss returned NoneType)" in text
    assert text.count("choose_trainer_lr") == 1 and "give the batches their labels" not in text  # said once
    assert "trainer.eval_dataset = None" in text
