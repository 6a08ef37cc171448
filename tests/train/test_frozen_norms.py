"""``lrkit.train(freeze=...)``: a frozen layer's BatchNorm keeps its running statistics too (it is kept in eval mode
while training), as a fine-tuner expects of "frozen"; layers that train keep updating theirs."""

from __future__ import annotations

import torch
from torch import nn

import lrkit


def _model() -> nn.Module:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU())
    head = nn.Sequential(nn.Linear(32, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    return nn.Sequential(body, head)


def _train(tmp_path, capsys, freeze):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    results = lrkit.train(model, data="digits", epochs=2, lr0=0.01, freeze=freeze, project=tmp_path, plots=False)
    return before, {k: v.cpu() for k, v in results.model.state_dict().items()}, capsys.readouterr().out


def test_a_frozen_layers_batchnorm_statistics_stay_put(tmp_path, capsys) -> None:
    before, after, out = _train(tmp_path, capsys, freeze=1)
    for key in ("0.2.running_mean", "0.2.running_var", "0.2.num_batches_tracked", "0.2.weight", "0.1.weight"):
        assert torch.equal(after[key], before[key]), key
    # the layer that trains keeps updating its statistics
    assert not torch.equal(after["1.1.running_mean"], before["1.1.running_mean"])
    assert "1 normalisation layer among them their running statistics" in " ".join(out.split())


def test_without_freeze_every_batchnorm_updates(tmp_path, capsys) -> None:
    before, after, _ = _train(tmp_path, capsys, freeze=None)
    assert not torch.equal(after["0.2.running_mean"], before["0.2.running_mean"])
    assert not torch.equal(after["1.1.running_mean"], before["1.1.running_mean"])
