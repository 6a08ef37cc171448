"""Session 35e: ``lrkit.train`` on a practitioner's own model and data (torch Datasets, DataLoaders, custom models).

Bugs found and fixed here:

* class indices stored as floats (``y.float()``) with ``task="classification"``: a built-in was sized with one
  output (a float target's) and every model failed at its first loss with torch's "expected target dtype to be
  Long"; they are read as int64 class indices now, range-checked like integer ones;
* the default regression loss broadcast outputs ``(N, 1)`` against targets ``(N, 2)`` with no more than torch's
  warning (the one output trained toward the targets' mean), and outputs ``(N, 2)`` against ``(N,)`` failed with
  torch's words; both are a ``ValueError`` naming the shapes now;
* ``load_run(...).predict(loader)`` on a DataLoader was numpy's ``TypeError`` (object array);
* a ``forward(x1, x2)`` model on ``((x1, x2), y)`` samples got torch's "missing 1 required positional argument"
  without a word on how lrkit calls the model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lrkit
from lrkit._step import class_targets
from lrkit.train.tasks import regression_loss, task_spec

KW = {"epochs": 1, "verbose": False, "plots": False, "monitor": False, "lr0": 0.01}


def _data(n: int = 96, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = torch.arange(n) % classes
    return x + y[:, None].float(), y


# ----------------------------------------------------------------------------- float class indices
def test_class_targets_reads_whole_float_indices_as_int64() -> None:
    out = torch.zeros(3, 2)
    assert class_targets(out, torch.tensor([1.0, 0.0, 1.0])).dtype == torch.int64
    assert class_targets(out, torch.tensor([[1.0], [0.0], [1.0]])).tolist() == [1, 0, 1]
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [1.0, 0.0]])
    assert class_targets(out, probs).is_floating_point()  # class probabilities keep their shape and dtype
    assert class_targets(out, torch.tensor([0.5, 0.0, 1.0])).is_floating_point()


def test_float_class_indices_train_a_builtin_with_one_score_per_class(tmp_path) -> None:
    x, y = _data()
    r = lrkit.train("mlp", data=TensorDataset(x, y.float()), task="classification", project=str(tmp_path), **KW)
    model = lrkit.load_run(r.run_dir).model
    assert model(x[:2]).shape == (2, 3)  # was 1 output: the size of a float (regression) target
    assert r.task == "classification" and r.metric_name == "accuracy"
    twin = lrkit.train("mlp", data=TensorDataset(x, y), task="classification", project=str(tmp_path), **KW)
    for key in ("train_loss", "val_loss", "val_accuracy"):  # int64 labels of the same values: the same run
        assert r.best[key] == pytest.approx(twin.best[key])


def test_float_class_indices_train_a_model_of_yours(tmp_path) -> None:
    x, y = _data(classes=2)
    torch.manual_seed(0)
    r = lrkit.train(nn.Linear(4, 2), data=TensorDataset(x, y.float()[:, None]), task="classification",
                    project=str(tmp_path), **KW)
    assert r.metric_name == "accuracy" and 0.0 <= r.best["val_accuracy"] <= 1.0


def test_float_class_index_beyond_the_scores_is_named(tmp_path) -> None:
    x, y = _data(classes=3)
    with pytest.raises(ValueError, match="the model gives 2 scores per sample, but the data has 3 classes"):
        lrkit.train(nn.Linear(4, 2), data=TensorDataset(x, y.float()), task="classification",
                    project=str(tmp_path), **KW)


def test_float_targets_that_are_not_class_indices_are_named() -> None:
    loss = task_spec("classification").loss
    assert loss is not None
    with pytest.raises(ValueError, match=r"they hold 0\.5, not a whole number"):
        loss(torch.zeros(3, 2), torch.tensor([0.5, 0.0, 1.0]))


# ----------------------------------------------------------------------------- regression shapes
def test_default_regression_loss_refuses_a_broadcast(tmp_path) -> None:
    x, _ = _data()
    two = torch.stack([x.sum(1), x[:, 0]], dim=1)
    with pytest.raises(ValueError, match=r"\(19, 1\).*\(19, 2\).*only broadcast them; make the model output 2"):
        lrkit.train(nn.Linear(4, 1), data=TensorDataset(x, two), project=str(tmp_path), **KW)


def test_regression_loss_keeps_reshaping_one_value_per_sample() -> None:
    out, y = torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 4.0])
    assert float(regression_loss(out, y)) == pytest.approx(2.0)  # (N, 1) against (N,): no (N, N) broadcast
    assert task_spec("regression").metric_sums(out, y) == (4.0, 2)  # type: ignore[misc]


def test_float_class_indices_without_task_say_task_classification(tmp_path) -> None:
    x, y = _data(classes=2)
    with pytest.raises(ValueError, match="Pass task='classification'"):
        lrkit.train(nn.Linear(4, 2), data=TensorDataset(x, y.float()), project=str(tmp_path), **KW)


# ----------------------------------------------------------------------------- predict on a DataLoader
class _Samples(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, dict_samples: bool = False) -> None:
        self.x, self.y, self.dict_samples = x, y, dict_samples

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return {"x": self.x[i], "y": self.y[i]} if self.dict_samples else (self.x[i], self.y[i])


def test_predict_takes_a_dataloader(tmp_path) -> None:
    x, y = _data()
    torch.manual_seed(0)
    r = lrkit.train(nn.Linear(4, 3), data=_Samples(x, y), project=str(tmp_path), **KW)
    run = lrkit.load_run(r.run_dir, model=nn.Linear(4, 3))
    want = run.predict(x)
    assert run.predict(DataLoader(_Samples(x, y), batch_size=7)) == want  # was numpy's TypeError
    assert run.predict(DataLoader(_Samples(x, y, dict_samples=True), batch_size=10)) == want
    assert run.predict(DataLoader(TensorDataset(x), batch_size=10)) == want  # batches of inputs alone


def test_predict_on_a_padding_dataloader_says_to_go_batch_by_batch(tmp_path) -> None:
    x, y = _data()
    torch.manual_seed(0)
    r = lrkit.train(nn.Linear(4, 3), data=TensorDataset(x, y), project=str(tmp_path), **KW)
    run = lrkit.load_run(r.run_dir, model=nn.Linear(4, 3))

    def ragged(batch):  # a collate_fn that pads each batch to its own width
        xs = torch.stack([s[0] for s in batch])
        return torch.cat([xs, torch.zeros(len(xs), len(batch) % 3)], dim=1), torch.stack([s[1] for s in batch])

    with pytest.raises(ValueError, match="batch by batch"):
        run.predict(DataLoader(TensorDataset(x[:11], y[:11]), batch_size=4, collate_fn=ragged))


# ----------------------------------------------------------------------------- forward(x1, x2)
class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.a(x1) + self.b(x2)


class _Pairs(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return (self.x[i], -self.x[i]), self.y[i]


def test_two_input_forward_is_told_how_lrkit_calls_the_model(tmp_path) -> None:
    x, y = _data()
    with pytest.raises(ValueError, match=r"missing 1 required positional argument.*model\(\*batch\[0\]\)"):
        lrkit.train(_TwoInputs(), data=_Pairs(x, y), task="classification", project=str(tmp_path), **KW)
    # and the step_fn it names trains
    r = lrkit.train(_TwoInputs(), data=_Pairs(x, y), project=str(tmp_path),
                    step_fn=lambda model, batch: nn.functional.cross_entropy(model(*batch[0]), batch[1]), **KW)
    assert r.epochs_run == 1
