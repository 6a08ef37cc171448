"""Review s14f: defects found reviewing session 14 (ac6a07e..HEAD).

- a one-score binary classifier trained with a *wrapped* probability loss (``lambda out, y: F.binary_cross_entropy(
  out, y)``) was scored at the logit threshold 0: every probability is above it, so the accuracy was the share of
  positives, flat over the run (and the best epoch, early stopping and best.pt followed it);
- the dtype advice of the first step (and of the loss's error) fired on any error that spoke of a scalar type: class
  labels stored as float64 given to ``cross_entropy`` were told to be cast to float32, token ids stored as float64
  given to an ``nn.Embedding`` were told to be cast to float32 or the model moved to float64 — neither fixes them;
- ``data={"train": (X, y), "validation": (Xv, yv)}`` (scikit-learn's arrays in a mapping of splits) failed deep in
  the loader ("stack expects each tensor to be equal size") instead of naming the fix, as ``data=(X, y)`` does;
- the warnings recorded around the first step were emitted again under a module name made from the file name, so a
  filter by module (``filterwarnings("ignore", module="noisy")``, pytest's ``ignore::DeprecationWarning:torch.*``)
  no longer applied to them.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit._step import refuse_broadcast


def _binary(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0.6).float()  # about a third positive
    return TensorDataset(x, y)


def _train(model: nn.Module, data: Any, tmp_path: Path, **kw: Any) -> lrkit.TrainResults:
    kw = {"epochs": 4, "lr0": 0.3, "project": str(tmp_path), "verbose": False, "plots": False, "monitor": False,
          "exist_ok": True, **kw}
    return lrkit.train(model, data=data, **kw)


def _prob_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid(), nn.Flatten(0))


def _logit_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1), nn.Flatten(0))


def _accuracies(r: lrkit.TrainResults) -> list[float]:
    return [h["val_accuracy"] for h in r.history]


def test_a_wrapped_probability_loss_scores_as_bce_loss_does(tmp_path: Path) -> None:
    data = (_binary(256, 0), _binary(64, 1))
    known = _train(_prob_model(), data, tmp_path, name="known", loss_fn=nn.BCELoss(), task="classification")
    wrapped = _train(_prob_model(), data, tmp_path, name="wrapped", task="classification",
                     loss_fn=lambda out, y: F.binary_cross_entropy(out, y))
    positives = float(data[1].tensors[1].mean())
    assert _accuracies(known)[-1] > 0.85
    assert _accuracies(wrapped) == pytest.approx(_accuracies(known))  # not the share of positives every epoch
    assert _accuracies(wrapped)[-1] != pytest.approx(positives)


def test_a_wrapped_logit_loss_still_thresholds_at_zero(tmp_path: Path) -> None:
    data = (_binary(256, 0), _binary(64, 1))
    known = _train(_logit_model(), data, tmp_path, name="known", loss_fn=nn.BCEWithLogitsLoss(),
                   task="classification")
    wrapped = _train(_logit_model(), data, tmp_path, name="wrapped", task="classification",
                     loss_fn=lambda out, y: F.binary_cross_entropy_with_logits(out, y))
    assert _accuracies(known)[-1] > 0.85
    assert _accuracies(wrapped) == pytest.approx(_accuracies(known))


def _finder_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> BaseException:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(Exception) as err:
        lrkit.find_lr(model, opt, DataLoader(TensorDataset(x, y), batch_size=8), num_steps=10, **kw)
    return err.value


def test_float_class_labels_for_cross_entropy_are_not_told_to_cast_to_the_output_dtype() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,)).double()  # labels as numpy's float64
    err = _finder_error(nn.Linear(4, 3), x, y, loss_fn=F.cross_entropy)
    text = str(err)
    assert re.search(r"expected (target dtype to be|scalar type) Long", text)  # torch's reason (2.4: the latter)
    assert "y.to(torch.float32)" not in text and "model.to(torch.float64)" not in text
    assert "class-index targets" in text  # the fix that does apply


def test_float_token_ids_for_an_embedding_are_not_blamed_on_the_model_dtype() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    x, y = torch.randint(0, 10, (32, 3)).double(), torch.randint(0, 2, (32,))
    err = _finder_error(model, x, y)
    assert "indices" in str(err)
    assert "x.to(torch.float32)" not in str(err) and "model.to(torch.float64)" not in str(err)


def test_a_real_input_dtype_mismatch_is_still_named() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    err = _finder_error(nn.Linear(4, 1).double(), x, y)
    assert isinstance(err, ValueError) and "model.to(torch.float32)" in str(err)


def test_a_mapping_of_feature_target_arrays_names_the_fix(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    with pytest.raises(ValueError, match=r"data\['train'\].*\(features, targets\).*TensorDataset"):
        _train(nn.Linear(4, 2), {"train": (x[:48], y[:48]), "validation": (x[48:], y[48:])}, tmp_path)
    with pytest.raises(ValueError, match=r"data\['train'\].*TensorDataset"):
        _train(nn.Linear(4, 2), {"train": (x.numpy(), y.numpy())}, tmp_path)


def test_a_mapping_of_datasets_and_loaders_still_trains(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), (torch.randn(64) > 0).long()
    train = DataLoader(TensorDataset(x[:48], y[:48]), batch_size=8, shuffle=True)
    r = _train(nn.Linear(4, 2), {"train": train, "validation": TensorDataset(x[48:], y[48:])}, tmp_path, epochs=1)
    assert len(r.history) == 1


NOISY = '''
import warnings


def forward(x):
    warnings.warn("s14f noisy library warning", UserWarning)
    return x
'''


@pytest.fixture
def noisy(tmp_path: Path) -> Any:
    path = tmp_path / "s14f_noisy.py"
    path.write_text(NOISY)
    spec = importlib.util.spec_from_file_location("s14f_noisy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["s14f_noisy"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["s14f_noisy"]


def _shown(call: Any) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module="s14f_noisy")  # the user silenced that library by module
        call()
    return [str(w.message) for w in caught if "s14f noisy" in str(w.message)]


def test_a_warning_filtered_by_module_stays_filtered_on_the_first_step(noisy: Any) -> None:
    assert _shown(lambda: noisy.forward(1)) == []  # the filter works on the library's own warning
    assert _shown(lambda: refuse_broadcast(lambda: noisy.forward(1), None)) == []

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return noisy.forward(self.fc(x))

    torch.manual_seed(0)
    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
    assert _shown(lambda: lrkit.find_lr(model, opt, data, loss_fn=F.mse_loss, num_steps=10)) == []


def test_other_warnings_of_the_first_step_still_reach_the_user(noisy: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refuse_broadcast(lambda: noisy.forward(1), None)
    assert [str(w.message) for w in caught] == ["s14f noisy library warning"]
    assert caught[0].filename.endswith("s14f_noisy.py")


def test_a_multi_label_classifier_is_scored_per_label_not_crashed_after_an_epoch(tmp_path: Path) -> None:
    # BCEWithLogitsLoss over K labels, task="classification": the accuracy read argmax (B,) against targets (B, K)
    # and failed at the first evaluation, after a whole epoch of training
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = torch.stack([x[:, 0] > 0, x[:, 1] > 0.5, x[:, 2] + x[:, 3] < 0], dim=1).float()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    r = _train(model, TensorDataset(x, y), tmp_path, loss_fn=nn.BCEWithLogitsLoss(), task="classification")
    acc = _accuracies(r)
    assert len(acc) == 4 and all(0.0 <= a <= 1.0 for a in acc) and acc[-1] > 0.85


def test_class_probability_targets_for_cross_entropy_are_scored_by_their_class(tmp_path: Path) -> None:
    # one-hot float targets (B, C) for cross_entropy: argmax (B,) against (B, C) failed at the first evaluation
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    labels = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    data = (TensorDataset(x[:192], labels[:192]), TensorDataset(x[192:], labels[192:]))
    onehot = tuple(TensorDataset(d.tensors[0], F.one_hot(d.tensors[1], 3).float()) for d in data)

    def model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    by_index = _train(model(), data, tmp_path, name="index", loss_fn=F.cross_entropy, task="classification")
    by_prob = _train(model(), onehot, tmp_path, name="prob", loss_fn=F.cross_entropy, task="classification")
    assert _accuracies(by_prob) == pytest.approx(_accuracies(by_index)) and _accuracies(by_index)[-1] > 0.7
