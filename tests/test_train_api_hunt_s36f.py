"""Session 36 (helper f): lrkit.train with the user's own model and data objects — bugs found and fixed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lrkit

KW = dict(epochs=1, lr0=0.01, verbose=False, plots=False)


def _data(n: int = 24) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] > 0).long()
    ds = TensorDataset(x, y)
    return ds, ds


def test_device_meta_refused_and_users_model_left_where_it_was(tmp_path: Path) -> None:
    # before: device="meta" moved the user's model to the meta device (its weights gone) and then failed deep in torch
    model = nn.Linear(5, 2)
    before = model.weight.detach().clone()
    with pytest.raises(ValueError, match=r"device='meta'.*no values.*'cpu'"):
        lrkit.train(model, data=_data(), device="meta", project=tmp_path, **KW)
    assert model.weight.device.type == "cpu"
    assert torch.equal(model.weight.detach(), before)
    assert not (tmp_path / "train").exists()


def test_device_torch_cannot_use_is_a_value_error(tmp_path: Path) -> None:
    # before: RuntimeError "PyTorch is not linked with support for xla devices" from model.to(...)
    model = nn.Linear(5, 2)
    with pytest.raises(ValueError, match=r"device='xla' cannot be used.*'cpu'"):
        lrkit.train(model, data=_data(), device="xla", project=tmp_path, **KW)
    assert model.weight.device.type == "cpu"


def test_model_on_meta_device_is_a_clear_error(tmp_path: Path) -> None:
    # before: NotImplementedError "Cannot copy out of meta tensor; no data!" from model.to(device)
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"meta device.*'0.weight'.*to_empty"):
        lrkit.train(model, data=_data(), device="cpu", project=tmp_path, **KW)
    assert not (tmp_path / "train").exists()


@pytest.mark.parametrize("name", ["mlp", "linear", "cnn"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8])
def test_builtin_models_take_integer_and_bool_inputs(tmp_path: Path, name: str, dtype: torch.dtype) -> None:
    # before: "mat1 and mat2 must have the same dtype, but got Long and Float" (or Byte/Bool) for a built-in model
    g = torch.Generator().manual_seed(0)
    shape = (24, 1, 8, 8) if name == "cnn" else (24, 5)
    x = torch.randint(0, 3, shape, generator=g).to(dtype)
    y = torch.randint(0, 3, (24,), generator=g)
    ds = TensorDataset(x, y)
    r = lrkit.train(name, data=(ds, ds), project=tmp_path, **KW)
    assert r.task == "classification" and 0.0 <= r.best_metric <= 1.0
    with torch.no_grad():
        out = r.model(x[:4])
    assert out.shape == (4, 3) and out.dtype == torch.float32


def test_one_score_per_sample_with_default_cross_entropy_names_the_fix(tmp_path: Path) -> None:
    # before: torch's "Expected floating point type for target with class probabilities, got Long"
    model = nn.Sequential(nn.Linear(5, 1), nn.Flatten(0))
    with pytest.raises(ValueError, match=r"one score per sample.*\(24,\).*output 2.*BCEWithLogitsLoss"):
        lrkit.train(model, data=_data(), project=tmp_path, **KW)


class _TemperatureLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.log_t = nn.Parameter(torch.zeros(()))

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out / self.log_t.exp(), y)


def test_loss_module_with_its_own_trainable_parameters_is_refused(tmp_path: Path) -> None:
    # before: the loss's parameter was in no param group: it stayed at 0.0 for the whole run, without a word
    loss = _TemperatureLoss()
    with pytest.raises(ValueError, match=r"loss_fn=_TemperatureLoss\(...\) computes the loss with trainable "
                                         r"parameters.*'log_t'.*requires_grad_\(False\)"):
        lrkit.train(nn.Linear(5, 2), data=_data(), loss_fn=loss, project=tmp_path, **KW)
    assert not (tmp_path / "train").exists()


def test_loss_module_frozen_or_sharing_the_models_parameters_trains(tmp_path: Path) -> None:
    frozen = _TemperatureLoss().requires_grad_(False)
    r = lrkit.train(nn.Linear(5, 2), data=_data(), loss_fn=frozen, project=tmp_path, name="a", **KW)
    assert len(r.history) == 1

    class Net(nn.Module):  # a loss module whose parameter is the model's own: trained with it
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(5, 2)
            self.log_t = nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    net = Net()
    shared = _TemperatureLoss()
    shared.log_t = net.log_t
    r = lrkit.train(net, data=_data(), loss_fn=shared, project=tmp_path, name="b", **{**KW, "epochs": 2})
    assert float(net.log_t) != 0.0  # (epoch 1 is at warmup LR 0; epoch 2 steps)


def test_one_score_per_sample_with_float_class_targets_is_not_trained_silently(tmp_path: Path) -> None:
    # before: task='classification', float 0/1 targets (B,) and outputs (B,): cross-entropy read the batch as ONE
    # sample with B classes and the targets as its class probabilities — it trained, on garbage, without a word
    x, y = _data()[0].tensors
    ds = TensorDataset(x, y.float())
    model = nn.Sequential(nn.Linear(5, 1), nn.Flatten(0))
    with pytest.raises(ValueError, match=r"one score per sample.*output 2"):
        lrkit.train(model, data=(ds, ds), task="classification", project=tmp_path, **KW)


class _DistillLoss(nn.Module):
    """A loss module holding a network the loss does not reach with gradients (a distillation teacher run under
    no_grad, here not run at all): its parameters never get a gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.teacher = nn.Linear(5, 2)  # requires_grad left on, as many scripts leave it

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out, y)


def test_loss_module_with_parameters_the_loss_does_not_use_still_trains(tmp_path: Path) -> None:
    r = lrkit.train(nn.Linear(5, 2), data=_data(), loss_fn=_DistillLoss(), project=tmp_path, **KW)
    assert len(r.history) == 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_targets_are_not_rounded_to_a_half_precision_model(tmp_path: Path, dtype: torch.dtype) -> None:
    # before: a bfloat16 model with a loss_fn got its float targets cast to bfloat16: 1000 + 0.5 * noise all became
    # 1000.0 — the whole signal erased, the loss and the RMSE read against the rounded targets, without a word
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=g)
    y = 1000 + x[:, 0] * 0.5
    seen: list[torch.Tensor] = []

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(target.detach().clone())
        return nn.functional.mse_loss(out.squeeze(1), target)

    ds = TensorDataset(x, y)
    model = nn.Linear(3, 1).to(dtype)
    lrkit.train(model, data=(ds, ds), loss_fn=loss_fn, project=tmp_path, **KW)
    assert seen and all(t.dtype == torch.float32 for t in seen)
    assert torch.equal(torch.sort(torch.cat(seen[-1:]))[0], torch.sort(y)[0])  # the validation batch, exact


def test_targets_a_half_precision_model_holds_exactly_are_still_cast(tmp_path: Path) -> None:
    # 0/1 float targets (BCEWithLogitsLoss) are exact in bfloat16: cast as before, so dtype-strict losses still run
    x, y = _data()[0].tensors
    ds = TensorDataset(x, y.float()[:, None])
    seen: list[torch.dtype] = []
    bce = nn.BCEWithLogitsLoss()

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(target.dtype)
        return bce(out, target)

    lrkit.train(nn.Linear(5, 1).bfloat16(), data=(ds, ds), loss_fn=loss_fn, project=tmp_path, **KW)
    assert seen and set(seen) == {torch.bfloat16}
