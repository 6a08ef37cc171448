"""What the first run of the suite on a CUDA machine (an H100, torch 2.11) found, checked here on the CPU.

On CUDA a class target out of range is a device-side assert: the process can no longer use the GPU (every later
CUDA call raises), where the CPU raised a catchable IndexError. So lrkit.train checks the targets against the model's
class scores before the first loss, with its own message, on every device. And find_lr's ``device=`` (where the
batches go) with a model elsewhere failed at the first forward pass deep inside torch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lrkit

QUIET = {"verbose": False, "plots": False}


def _split(train_labels: torch.Tensor, val_labels: torch.Tensor) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(0)
    return (TensorDataset(torch.randn(len(train_labels), 4, generator=g), train_labels),
            TensorDataset(torch.randn(len(val_labels), 4, generator=g), val_labels))


def test_a_class_only_the_training_split_has_is_named_before_training(tmp_path: Path) -> None:
    # the validation batch holds classes 0..1, the training split 0..3; the model gives 3 scores
    data = _split(torch.arange(64) % 4, torch.arange(16) % 2)
    with pytest.raises(ValueError, match=r"gives 3 scores per sample, but the data has 4 classes \(targets 0 \.\. 3\)"
                                         r"; make the model's last layer output 4"):
        lrkit.train(nn.Linear(4, 3), data=data, epochs=1, lr0=0.01, project=tmp_path, **QUIET)
    assert not any(tmp_path.rglob("*.pt"))


def test_a_negative_class_target_is_named(tmp_path: Path) -> None:
    labels = torch.arange(16) % 3
    labels[5] = -1
    with pytest.raises(ValueError, match=r"the targets hold -1, but class targets must be 0 \.\. number of classes"):
        lrkit.train(nn.Linear(4, 3), data=_split(torch.arange(64) % 3, labels), epochs=1, lr0=0.01,
                    project=tmp_path, **QUIET)


def test_ignored_targets_are_not_classes(tmp_path: Path) -> None:
    labels = torch.arange(16) % 3
    labels[::4] = -100  # cross-entropy's ignore_index
    r = lrkit.train(nn.Linear(4, 3), data=_split(torch.arange(64) % 3, labels), epochs=1, lr0=0.01,
                    project=tmp_path, device="cpu", **QUIET)
    assert len(r.history) == 1


def test_find_lr_device_where_the_model_is_not_is_a_clear_error() -> None:
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(4)]
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"device='meta' is where find_lr sends the batches, but the model's "
                                         r"parameters are on cpu: move the model first"):
        lrkit.find_lr(model, opt, loader, loss_fn=nn.functional.mse_loss, num_steps=10, device="meta")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # the device the model is on is fine, spelled either way
    assert lrkit.find_lr(model, opt, loader, loss_fn=nn.functional.mse_loss, num_steps=10,
                         device=torch.device("cpu")).num_steps_run == 10
