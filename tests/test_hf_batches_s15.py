"""Session 15: Hugging Face style batches (a dict with ``labels`` and no x/input key, e.g. ``input_ids``,
``attention_mask``, ``labels``) with no ``loss_fn``/``step_fn``. ``find_lr`` and ``choose_lr0`` raised "cannot split
a dict batch" and ``lrkit.train`` asked for ``step_fn=lambda model, batch: model(**batch).loss``; now each calls the
model with the whole batch and reads its loss, as Hugging Face's Trainer does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import lrkit
from lrkit.train.auto import choose_lr0

QUIET = {"verbose": False, "plots": False}


class _SeqClassifier(nn.Module):
    """A Hugging Face-like classifier: forward(input_ids, attention_mask=None, labels=None) -> {"loss", "logits"}."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> dict[str, Any]:
        h = self.emb(input_ids)
        if attention_mask is not None:
            h = h * attention_mask.unsqueeze(-1)
        logits = self.head(h.mean(1))
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class _Samples(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 30, (n, 5), generator=g)
        self.labels = self.ids[:, 0] % 3

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(5, dtype=torch.long), "labels": self.labels[i]}


def _batches(n: int = 12) -> list[dict[str, torch.Tensor]]:
    loader = torch.utils.data.DataLoader(_Samples(16 * n, 0), batch_size=16)
    return list(loader)


def _model() -> _SeqClassifier:
    torch.manual_seed(0)
    return _SeqClassifier()


def _hf_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch)["loss"]


def test_find_lr_reads_the_loss_the_model_computes_from_labels() -> None:
    curves = []
    for step_fn in (None, _hf_step):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        torch.manual_seed(1)
        r = lrkit.find_lr(model, opt, _batches(), step_fn=step_fn, start_lr=1e-3, end_lr=10.0, num_steps=20)
        curves.append(r.losses)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert len(curves[0]) >= 10 and curves[0] == curves[1]


def test_choose_lr0_trains_and_scores_hugging_face_batches() -> None:
    batches = _batches()
    picks = []
    for step_fn in (None, _hf_step):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(1)
        auto = choose_lr0(model, opt, batches, batches[:3], total_steps=300, step_fn=step_fn, seed=0,
                          make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0))
        picks.append((auto.lr, [t.score for t in auto.trials]))
    assert picks[0] == picks[1] and picks[0][0] > 0


def test_train_runs_hugging_face_samples_and_scores_the_validation_loss(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    runs = []
    for name, step_fn in (("default", None), ("explicit", _hf_step)):
        r = lrkit.train(_model(), data=(_Samples(96, 0), _Samples(32, 1)), epochs=2, batch=16, lr0=0.05,
                        optimizer="SGD", seed=0, project=tmp_path, name=name, step_fn=step_fn, verbose=True,
                        plots=False)
        runs.append([(h["train_loss"], h["val_loss"]) for h in r.history])
        if step_fn is None:
            assert "model(**batch).loss" in capsys.readouterr().out
            # the checkpoint records no custom loss: a resume passes none again
            assert torch.load(r.run_dir / "last.pt", weights_only=True)["custom_loss"] is None
    assert len(runs[0]) == 2 and runs[0] == runs[1]


def test_a_model_that_takes_no_keyword_batch_is_a_clear_error() -> None:
    model = nn.Sequential(nn.Embedding(30, 4), nn.Flatten(), nn.Linear(20, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"model\(\*\*batch\).*unexpected keyword argument"):
        lrkit.find_lr(model, opt, _batches(), num_steps=10)


def test_a_model_that_returns_no_loss_is_a_clear_error() -> None:
    class NoLoss(_SeqClassifier):
        def forward(self, input_ids: torch.Tensor, attention_mask: Any = None, labels: Any = None) -> Any:
            return super().forward(input_ids, attention_mask)

    model = NoLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"its output \(a dict\) has no 'loss' tensor; pass step_fn"):
        lrkit.find_lr(model, opt, _batches(), num_steps=10)


def test_a_loss_fn_with_hugging_face_batches_points_at_the_step_fn_that_fits() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"with no loss_fn, a batch with 'labels' and no input key goes to the model"):
        lrkit.find_lr(model, opt, _batches(), loss_fn=nn.functional.cross_entropy, num_steps=10)
