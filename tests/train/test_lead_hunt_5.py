"""Lead's hunt: NaN logits score accuracy 0 (never the share of class 0); optimizer= takes a name."""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

import lrkit
from lrkit.train.tasks import task_spec


class _NaNAfterFirst(torch.nn.Module):
    """A classifier whose logits turn NaN once it has been trained for a step (a stand-in for a diverged run)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("broken", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.broken.fill_(True)
        out = self.lin(x)
        return out * math.nan if bool(self.broken) else out


def test_nan_logits_are_never_right():
    spec = task_spec("classification")
    target = torch.zeros(10, dtype=torch.long)  # every sample in class 0: argmax of NaN logits "predicts" it
    output = torch.full((10, 4), math.nan)
    output[:3] = torch.tensor([5.0, 0.0, 0.0, 0.0])  # three finite, right rows
    assert spec.metric_sums(output, target) == (3.0, 10)


def test_a_diverged_run_does_not_report_the_majority_class_as_its_accuracy(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=g)
    y = (torch.arange(100) % 5 == 0).long()  # 80% class 0
    data = (TensorDataset(x, y), TensorDataset(x, y))
    results = lrkit.train(_NaNAfterFirst(), data=data, epochs=2, lr0=0.01, monitor=False, project=str(tmp_path),
                          name="nan", verbose=False, plots=False)
    assert all(math.isnan(row["val_loss"]) for row in results.history)
    assert [row["val_accuracy"] for row in results.history] == [0.0, 0.0]
    assert results.best["val_accuracy"] == 0.0


def test_scale_lr_overflow_names_huge_batches_briefly():
    import pytest

    with pytest.raises(ValueError, match=r"to_batch=1e\+300, rule='linear'\) overflows a float") as info:
        lrkit.scale_lr(1e300, 1, 1e300)
    assert len(str(info.value)) < 200  # not the 301 digits of int(1e300)


def test_an_empty_validation_batch_does_not_make_the_validation_loss_nan(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = (x[:, 0] > 0).long()
    class Batches(torch.utils.data.IterableDataset):  # yields an empty batch between two real ones
        def __iter__(self):
            return iter([(x[:32], y[:32]), (x[:0], y[:0]), (x[32:], y[32:])])

        def __len__(self) -> int:
            return 3

    val = torch.utils.data.DataLoader(Batches(), batch_size=None)
    results = lrkit.train(torch.nn.Linear(3, 2), data=(TensorDataset(x, y), val), epochs=1, lr0=0.01, monitor=False,
                          project=str(tmp_path), name="empty", verbose=False, plots=False)
    assert math.isfinite(results.history[0]["val_loss"])
    full = torch.nn.functional.cross_entropy(results.model.cpu()(x), y).item()
    assert abs(results.history[0]["val_loss"] - full) < 1e-5  # the mean over the 64 real samples
