"""Session 37 (q): lrkit.train's loop with the user's own model and torch data — the first-step checks find_lr runs
(lrkit._step.first_batch_loss), once, and validation batches that differ from the training batches."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lrkit


class _Dicts(Dataset):
    def __init__(self, n: int, weight_key: str | None = "weight") -> None:
        g = torch.Generator().manual_seed(n)
        self.x, self.y, self.w = torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g), torch.rand(n)
        self.key = weight_key

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        item = {"x": self.x[i], "y": self.y[i]}
        if self.key:
            item[self.key] = self.w[i]
        return item


def _train(model, train, val, tmp_path, **kw):
    kw.setdefault("epochs", 1)
    kw.setdefault("lr0", 0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = lrkit.train(model, data=(train, val), project=str(tmp_path), verbose=False, plots=False, **kw)
    return result, [str(w.message) for w in caught]


def _dropped(messages: list[str]) -> list[str]:
    return [m for m in messages if "never used" in m and "'weight'" in m]


def test_dict_batches_with_weight_key_warn_once(tmp_path):
    torch.manual_seed(0)
    _, messages = _train(torch.nn.Linear(4, 2), DataLoader(_Dicts(32), batch_size=8),
                         DataLoader(_Dicts(16), batch_size=8), tmp_path, epochs=2)
    assert len(_dropped(messages)) == 1, messages


def test_weight_key_only_in_validation_batches_warns(tmp_path):
    torch.manual_seed(0)
    _, messages = _train(torch.nn.Linear(4, 2), DataLoader(_Dicts(32, None), batch_size=8),
                         DataLoader(_Dicts(16), batch_size=8), tmp_path)
    assert len(_dropped(messages)) == 1, messages


def test_lr0_auto_does_not_warn_twice(tmp_path):
    torch.manual_seed(0)
    _, messages = _train(torch.nn.Linear(4, 2), DataLoader(_Dicts(512), batch_size=8),
                         DataLoader(_Dicts(16), batch_size=8), tmp_path, lr0="auto", epochs=1, nbs=8)
    assert len(_dropped(messages)) == 1, messages


class _FirstEmpty(Dataset):
    """Whole batches (batch_size=None); the first holds no samples."""

    def __init__(self) -> None:
        self.x, self.y = torch.randn(32, 4), torch.randint(0, 2, (32,))

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        return (self.x[:0], self.y[:0]) if i == 0 else (self.x[8 * i:8 * i + 8], self.y[8 * i:8 * i + 8])


def test_empty_first_training_batch_is_an_error(tmp_path):
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    with pytest.raises(ValueError, match="no samples"):
        _train(torch.nn.Linear(4, 2), DataLoader(_FirstEmpty(), batch_size=None),
               DataLoader(TensorDataset(x, y), batch_size=8), tmp_path, task="classification")


def test_first_training_batch_of_only_ignored_targets_is_an_error(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    y_train = y.clone()
    y_train[:8] = -100
    with pytest.raises(ValueError, match="-100"):
        _train(torch.nn.Linear(4, 2), DataLoader(TensorDataset(x, y_train), batch_size=8),
               DataLoader(TensorDataset(x, y), batch_size=8), tmp_path)


def test_class_probability_targets_with_the_regression_loss_warn_once(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    y = torch.softmax(torch.randn(32, 3), 1)  # soft labels: read as regression targets, MSE on the logits
    _, messages = _train(torch.nn.Linear(4, 3), DataLoader(TensorDataset(x, y), batch_size=8),
                         DataLoader(TensorDataset(x, y), batch_size=8), tmp_path, epochs=2)
    assert len([m for m in messages if "class probabilities?" in m]) == 1, messages


def test_regression_target_in_another_layout_is_refused(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 5, 5), torch.randn(16, 5, 5, 2)  # channels last against a conv's channels first
    with pytest.raises(ValueError, match=r"\(8, 2, 5, 5\)") as err:
        _train(torch.nn.Conv2d(3, 2, 1), DataLoader(TensorDataset(x, y), batch_size=8),
               DataLoader(TensorDataset(x, y), batch_size=8), tmp_path)
    assert "layout" in str(err.value) and "permute" in str(err.value)


def test_regression_column_against_flat_output_still_trains(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    y = x.sum(1, keepdim=True)  # (N, 1) targets, (N,) outputs: one layout
    model = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    result, _ = _train(model, DataLoader(TensorDataset(x, y), batch_size=8),
                       DataLoader(TensorDataset(x, y), batch_size=8), tmp_path)
    assert result.history[-1]["val_loss"] == result.history[-1]["val_loss"]  # finite (not NaN)


def test_validation_batches_of_another_layout_are_named(tmp_path):
    torch.manual_seed(0)
    x, y, w = torch.randn(32, 4), torch.randint(0, 2, (32,)), torch.rand(32)
    with pytest.raises(ValueError, match="validation") as err:
        _train(torch.nn.Linear(4, 2), DataLoader(TensorDataset(x, y), batch_size=8),
               DataLoader(TensorDataset(x, y, w), batch_size=8), tmp_path)
    assert "length 3" in str(err.value)


def test_validation_loader_without_batches_is_refused_before_training_with_step_fn(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    val = DataLoader(TensorDataset(x[:4], y[:4]), batch_size=8, drop_last=True)  # yields nothing
    calls = []

    def step_fn(model, batch):
        calls.append(1)
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    with pytest.raises(ValueError, match="validation.*no batches"):
        _train(torch.nn.Linear(4, 2), DataLoader(TensorDataset(x, y), batch_size=8), val, tmp_path, step_fn=step_fn)
    assert calls == []  # refused before a whole epoch was trained


@pytest.mark.parametrize("kind", ["tuple", "vector"])
def test_validation_loss_that_is_not_a_scalar_is_named(tmp_path, kind):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))

    def loss_fn(out, target):  # a scalar while training, something else under no_grad (validation)
        if torch.is_grad_enabled():
            return torch.nn.functional.cross_entropy(out, target)
        per = torch.nn.functional.cross_entropy(out, target, reduction="none")
        return (per.mean(), out) if kind == "tuple" else per

    # (the check before training runs the loss under no_grad too: it is what reports it)
    with pytest.raises(ValueError, match="validation loss must be a scalar"):
        _train(torch.nn.Linear(4, 2), DataLoader(TensorDataset(x, y), batch_size=8),
               DataLoader(TensorDataset(x, y), batch_size=8), tmp_path, loss_fn=loss_fn)


def test_three_item_samples_suggest_a_step_fn_not_a_task(tmp_path):
    x, y, w = torch.randn(32, 4), torch.randint(0, 2, (32,)), torch.rand(32)
    loader = DataLoader(TensorDataset(x, y, w), batch_size=8)
    with pytest.raises(ValueError, match="step_fn") as err:
        _train(torch.nn.Linear(4, 2), loader, loader, tmp_path)
    assert "task='classification'" not in str(err.value)
    assert "batch[2]" in str(err.value)


def test_validation_batch_of_only_ignored_targets_leaves_the_val_loss_finite(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    y_val = y.clone()
    y_val[24:] = -100  # the last validation batch is all padding: no target to score
    result, _ = _train(torch.nn.Linear(4, 2), DataLoader(TensorDataset(x, y), batch_size=8),
                       DataLoader(TensorDataset(x, y_val), batch_size=8), tmp_path)
    model = result.model.eval()
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(x[:24]), y[:24]).item()
    assert result.history[-1]["val_loss"] == pytest.approx(expected, rel=1e-5)


def test_dict_output_with_a_loss_fn_that_reads_a_tensor_is_told_what_it_got(tmp_path):
    class DictModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x):
            return {"logits": self.linear(x), "features": x}

    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with pytest.raises(ValueError, match="dict") as err:
        _train(DictModel(), loader, loader, tmp_path, loss_fn=torch.nn.functional.cross_entropy)
    assert "out['logits']" in str(err.value)


def test_first_backward_on_uncast_targets_of_a_16_bit_model_says_to_cast_the_output(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4).bfloat16(), 1000 + 0.5 * torch.randn(32, 1)  # bfloat16 would round these targets
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with pytest.raises(ValueError, match="BFloat16") as err:
        _train(torch.nn.Linear(4, 1).bfloat16(), loader, loader, tmp_path, loss_fn=torch.nn.HuberLoss())
    assert "out.float()" in str(err.value) and "y.to(torch.bfloat16)" not in str(err.value)


def test_validation_split_of_only_ignored_targets_is_named(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    with pytest.raises(ValueError, match="-100"):
        _train(torch.nn.Linear(4, 2), DataLoader(TensorDataset(x, y), batch_size=8),
               DataLoader(TensorDataset(x, torch.full_like(y, -100)), batch_size=8), tmp_path)
