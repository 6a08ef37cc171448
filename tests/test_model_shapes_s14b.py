"""Hunt s14b: model and loss shapes real users bring to ``lrkit.train`` — a user loss that would only broadcast the
output against the target, a one-logit binary classifier, and targets with ignored (-100) positions."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lrkit


def _regression(n: int, seed: int, *, column: bool) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    return TensorDataset(x, y[:, None] if column else y)


def _binary(n: int, seed: int, *, dtype: torch.dtype = torch.float32, column: bool = True) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).to(dtype)
    return TensorDataset(x, y[:, None] if column else y)


def _mlp(outputs: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, outputs))


def _train(model: nn.Module, data: Any, tmp_path: Any, **kw: Any) -> lrkit.TrainResults:
    kw = {"epochs": 2, "lr0": 0.05, "project": str(tmp_path), "verbose": False, "plots": False, "monitor": False,
          **kw}
    return lrkit.train(model, data=data, **kw)


@pytest.mark.parametrize("loss_fn", [nn.MSELoss(), nn.functional.mse_loss, nn.L1Loss(), nn.HuberLoss()],
                         ids=["MSELoss", "mse_loss", "L1Loss", "HuberLoss"])
def test_user_loss_that_only_broadcasts_is_an_error_not_a_silent_nxn_loss(tmp_path: Any, loss_fn: Any) -> None:
    # targets (N,) against outputs (N, 1): torch's MSELoss broadcasts them to (N, N) and only warns, so the model
    # learned the targets' mean. lrkit.train refuses it before the run, naming both shapes and the fix.
    data = (_regression(64, 0, column=False), _regression(32, 1, column=False))
    with pytest.raises(ValueError, match=r"\(32, 1\).*\(32,\).*broadcast.*\(32, 32\)") as err:
        _train(_mlp(1), data, tmp_path, loss_fn=loss_fn)
    assert "view_as" in str(err.value)  # what to do instead
    assert not any(tmp_path.iterdir())  # nothing written
    # the same loss on matching shapes trains, and so does a broadcast that keeps the output's shape
    r = _train(_mlp(1), (_regression(64, 0, column=True), _regression(32, 1, column=True)), tmp_path,
               loss_fn=loss_fn)
    assert math.isfinite(r.final_val_loss)


def test_user_loss_broadcast_that_keeps_the_outputs_shape_still_trains(tmp_path: Any) -> None:
    # a (1, K) target row against (N, K) outputs: broadcasting gives the output's shape, which a loss may mean
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    target = torch.randn(1, 3, generator=g)
    data = (TensorDataset(x, target.expand(64, 3)), TensorDataset(x[:32], target.expand(32, 3)))
    r = _train(_mlp(3), data, tmp_path, loss_fn=lambda out, y: nn.functional.mse_loss(out, y[:1]))
    assert math.isfinite(r.final_val_loss)


def _true_accuracy(model: nn.Module, ds: TensorDataset, threshold: float = 0.0) -> float:
    x, y = ds.tensors
    with torch.no_grad():
        pred = (model(x).reshape(-1) > threshold).float()
    return float((pred == y.float().reshape(-1)).float().mean())


@pytest.mark.parametrize(("dtype", "column"), [(torch.float32, True), (torch.float32, False), (torch.long, True),
                                              (torch.bool, False)])
def test_one_logit_binary_classifier_scores_its_real_accuracy(tmp_path: Any, dtype: torch.dtype,
                                                              column: bool) -> None:
    # a single logit + BCEWithLogitsLoss: accuracy read argmax over one score (always class 0: the share of
    # class 0) or, for (N, 1) targets, broadcast (N,) against (N, 1) and scored 15.0 out of 1
    train, val = _binary(128, 0, dtype=dtype, column=column), _binary(32, 1, dtype=dtype, column=column)

    def bce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(out.reshape(-1), y.float().reshape(-1))

    r = _train(_mlp(1), (train, val), tmp_path, loss_fn=bce, task="classification", epochs=3)
    assert r.metric_name == "accuracy"
    assert 0.0 <= r.final_metric <= 1.0
    assert r.final_metric == pytest.approx(_true_accuracy(r.model, val))
    assert r.final_metric > float((val.tensors[1].float() == 0).float().mean())  # not the share of class 0


def test_one_probability_binary_classifier_thresholds_at_one_half(tmp_path: Any) -> None:
    # sigmoid in the model + BCELoss: the output is a probability, so the decision is p > 0.5, not p > 0
    train, val = _binary(128, 0), _binary(32, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    r = _train(model, (train, val), tmp_path, loss_fn=nn.BCELoss(), task="classification", epochs=3)
    assert r.final_metric == pytest.approx(_true_accuracy(r.model, val, threshold=0.5))


def test_accuracy_leaves_ignored_targets_out(tmp_path: Any) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    y[::5] = -100  # cross-entropy's ignore_index: these positions have no label
    train, val = TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:])
    r = _train(_mlp(3), (train, val), tmp_path)
    xv, yv = val.tensors
    kept = yv != -100
    with torch.no_grad():
        right = (r.model(xv).argmax(-1) == yv)[kept]
    assert r.final_metric == pytest.approx(float(right.float().mean()))  # out of the 25 labelled, not all 32


def test_perplexity_leaves_ignored_tokens_out(tmp_path: Any) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 10, (96, 8), generator=g)
    y = torch.roll(x, -1, 1).clone()
    y[:, -3:] = -100  # padding positions, as Hugging Face collators write them

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.head = nn.Embedding(10, 16), nn.Linear(16, 10)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.head(self.emb(t))

    torch.manual_seed(0)
    r = _train(LM(), (TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])), tmp_path, batch=32)
    assert r.task == "lm"
    # every validation batch has the same number of labelled tokens, so exp(mean val loss) is the perplexity
    assert r.final_metric == pytest.approx(math.exp(r.final_val_loss), rel=1e-5)
