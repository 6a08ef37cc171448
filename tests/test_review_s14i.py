"""Review s14i of the later part of session 14: lrkit.train's metric scoring of (B, K) float targets with a wrapped
loss, and the last 1-sample batch left out for BatchNorm models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit


def _train(model: nn.Module, data: Any, tmp_path: Path, **kw: Any) -> lrkit.TrainResults:
    kw = {"epochs": 1, "project": str(tmp_path), "verbose": False, "plots": False, "monitor": False,
          "exist_ok": True, **kw}
    return lrkit.train(model, data=data, **kw)


def test_a_wrapped_multi_label_loss_scores_a_batch_of_single_label_rows_per_label_too(tmp_path: Path) -> None:
    # Bug: with a loss lrkit cannot name (a lambda around binary_cross_entropy_with_logits, e.g. for pos_weight), the
    # choice between "multi-hot, scored per label" and "class probabilities, scored by argmax" was made per batch
    # from its rows: a validation batch whose rows each held one label was scored by argmax (1 count per sample)
    # among batches scored per label (K counts per sample), so the epoch's accuracy mixed two units: 0.375, not 11/24.
    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([2.0, -2.0, -2.0]))  # every sample: label 0 only
    x = torch.zeros(8, 4)
    y_val = torch.tensor([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1],  # batch 1: multi-hot rows
                          [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]]).float()  # batch 2: one label per row
    data = (DataLoader(TensorDataset(x, y_val), batch_size=4), DataLoader(TensorDataset(x, y_val), batch_size=4))
    w = torch.ones(3)
    r = _train(model, data, tmp_path, lr0=1e-12, optimizer="sgd", task="classification", warmup_epochs=0,
               loss_fn=lambda out, y: F.binary_cross_entropy_with_logits(out, y, pos_weight=w))
    # per label: batch 1 has 5 of 12 labels right, batch 2 6 of 12
    assert r.history[-1]["val_accuracy"] == 11 / 24


def test_a_cnn_whose_batchnorm_sees_feature_maps_keeps_its_last_batch_of_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # review s14i: BatchNorm2d on (1, C, 4, 4) trains (16 values per channel); only a layer seeing one value per
    # channel (BatchNorm1d on features, BatchNorm2d on 1x1 maps) cannot. Before, any BatchNorm model lost its last
    # 1-sample batch every epoch, and the log said the model could not train on it.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 1, 4, 4, generator=g), torch.randint(0, 3, (60,), generator=g)

    def cnn(pool_to_1x1: bool) -> nn.Module:
        torch.manual_seed(0)
        layers: list[nn.Module] = [nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()]
        if pool_to_1x1:  # then a BatchNorm2d on 1x1 maps: one value per channel in a 1-sample batch
            layers += [nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(4)]
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(4 if pool_to_1x1 else 64, 3))

    data = (TensorDataset(x[:33], y[:33]), TensorDataset(x[33:], y[33:]))
    r = lrkit.train(cnn(False), data=data, epochs=1, batch=8, nbs=8, lr0=0.01, project=tmp_path, plots=False,
                    verbose=True)
    out = capsys.readouterr().out
    assert r.steps_per_epoch == 5 and "left out" not in out  # 4 batches of 8, and the last one of 1
    r = lrkit.train(cnn(True), data=data, epochs=1, batch=8, nbs=8, lr0=0.01, project=tmp_path, plots=False,
                    verbose=True)
    out = capsys.readouterr().out
    assert r.steps_per_epoch == 4 and "('4')" in out and "left out" in out
