"""``load_run(...).predict`` reads a classifier's scores as training scored them (session 19i, from the own-model
walkthrough): a one-score binary classifier (BCEWithLogits on 0/1 targets) used to predict class 0 for every row (an
argmax over one column), a multi-label run one class per row, and a ``{"logits": ...}`` model got its dict back; a
torch Dataset given to ``predict`` failed inside numpy, and a float64 model got float32 inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

import lrkit


class _DS(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, as_dict: bool = False) -> None:
        self.x, self.y, self.as_dict = x, y, as_dict

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Any:
        return {"features": self.x[i], "label": self.y[i]} if self.as_dict else (self.x[i], self.y[i])


class _Net(nn.Module):
    def __init__(self, k: int, as_dict: bool = False) -> None:
        super().__init__()
        self.body, self.as_dict = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, k)), as_dict

    def forward(self, x: torch.Tensor) -> Any:
        out = self.body(x)
        return {"logits": out} if self.as_dict else out


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(200, 6, generator=g), torch.randn(6, 3, generator=g)


def _train(tmp_path: Path, model: nn.Module, y: torch.Tensor, x: torch.Tensor, **kw: Any) -> Any:
    torch.manual_seed(0)
    return lrkit.train(model, data=(_DS(x[:160], y[:160]), _DS(x[160:], y[160:])), epochs=6, lr0=0.05,
                       warmup_epochs=0, project=str(tmp_path), verbose=False, plots=False, **kw)


def _accuracy(pred: Any, y: torch.Tensor) -> float:
    return (torch.as_tensor(pred).reshape(y.shape).float() == y.float()).double().mean().item()


def test_one_score_binary_classifier_predicts_as_scored(tmp_path: Path) -> None:
    x, _w = _data()
    y = (x[:, :1] > 0).float()
    r = _train(tmp_path, _Net(1), y, x, loss_fn=nn.BCEWithLogitsLoss(), task="classification")
    run = lrkit.load_run(r.run_dir, model=_Net(1))
    assert run.scores == "logit"
    pred = run.predict(x[160:])
    assert set(pred) == {0, 1}  # not class 0 for every row
    assert abs(_accuracy(pred, y[160:]) - r.best_metric) < 1e-6


def test_multi_label_run_gives_one_decision_per_label(tmp_path: Path) -> None:
    x, w = _data(1)
    y = (x @ w > 0).float()  # (N, 3) multi-hot
    r = _train(tmp_path, _Net(3), y, x, loss_fn=nn.BCEWithLogitsLoss(), task="classification")
    run = lrkit.load_run(r.run_dir, model=_Net(3))
    pred = run.predict(x[160:])
    assert run.scores == "multi_label" and pred.shape == (40, 3) and set(pred.unique().tolist()) <= {0, 1}
    assert abs(_accuracy(pred, y[160:]) - r.best_metric) < 1e-6


def test_logits_dict_model_and_dataset_input(tmp_path: Path) -> None:
    x, w = _data(2)
    y = (x @ w).argmax(1)
    r = _train(tmp_path, _Net(3, as_dict=True), y, x)
    run = lrkit.load_run(r.run_dir, model=_Net(3, as_dict=True))
    pred = run.predict(x[160:])
    assert isinstance(pred, list) and abs(_accuracy(pred, y[160:]) - r.best_metric) < 1e-6
    assert run.predict(_DS(x[160:], y[160:])) == pred  # a Dataset: each sample's x, stacked
    assert run.predict(_DS(x[160:], y[160:], as_dict=True)) == pred  # dict samples: the input key


def test_float64_model_gets_float64_inputs(tmp_path: Path) -> None:
    x, w = _data(3)
    y = (x @ w).argmax(1)
    r = _train(tmp_path, _Net(3).double(), y, x.double())
    run = lrkit.load_run(r.run_dir, model=_Net(3).double())
    assert run.inputs(x[:2].double()).dtype == torch.float64
    assert len(run.predict(x[:5].double())) == 5


def test_messages_name_the_keys_users_pass(tmp_path: Path) -> None:
    import pytest

    from lrkit.train.data import load_data

    class _It(torch.utils.data.IterableDataset):
        def __iter__(self) -> Any:
            return iter([(torch.zeros(2), torch.tensor(0))] * 4)

    with pytest.raises(ValueError, match=r"give the dataset a __len__ \(the samples it yields per epoch") as e:
        load_data((_It(), _It()))
    assert "whose length is known" not in str(e.value)
    x, y = _data()[0][:8], torch.zeros(8, dtype=torch.long)
    with pytest.raises(ValueError, match=r"budget=0\.3 \(lrkit\.train's auto_budget\) x total_steps"):
        lrkit.train(nn.Linear(6, 3), data=(_DS(x, y), _DS(x, y)), epochs=1, lr0="auto", project=str(tmp_path),
                    verbose=False, plots=False)
