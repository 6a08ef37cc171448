"""Session 14a: ``lrkit.train(data=...)`` given a mapping of named splits — a Hugging Face ``DatasetDict`` or a plain
``{"train": ds, "validation": ds}`` — instead of a generic 'data=dict is not supported'. ``train`` is the train split;
``validation``, else ``val``, else ``test`` is the validation split; a mapping with only ``train`` is split by
``val=`` as a single dataset is. Mappings it cannot read are errors that name their keys and what is accepted.

Tests marked "Bug:" failed before the fix (src/lrkit/train/data.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from lrkit.train import train
from lrkit.train.data import load_data

QUIET = {"verbose": False, "plots": False}


def _parts(n: int = 100, seed: int = 0) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    a, b = int(0.7 * n), int(0.85 * n)
    return TensorDataset(x[:a], y[:a]), TensorDataset(x[a:b], y[a:b]), TensorDataset(x[b:], y[b:])


class DatasetDict(dict):
    """What ``datasets.DatasetDict`` is to lrkit: a dict subclass of split name -> dataset."""


@pytest.mark.parametrize("val_key", ["validation", "val", "test"])
def test_a_mapping_of_splits_is_train_and_val(val_key: str) -> None:
    """Bug: ``data={"train": ds, "validation": ds}`` (a DatasetDict) was 'data=dict is not supported'. The train and
    validation splits are used as given ('val', then 'test', when there is no 'validation')."""
    tr, va, _ = _parts()
    for kind in (dict, DatasetDict):
        d = load_data(kind({"train": tr, val_key: va}))
        assert d.train is tr and d.val is va
        assert (d.info.task, d.info.input_shape, d.info.n_train, d.info.n_val) == ("classification", (5,), 70, 15)
        assert any(f"val={val_key!r}" in n for n in d.info.notes), d.info.notes


def test_validation_wins_over_test_and_other_splits_are_noted() -> None:
    """A DatasetDict with train/validation/test (GLUE's) validates on 'validation'; the unused splits are named."""
    tr, va, te = _parts()
    d = load_data({"train": tr, "test": te, "validation": va, "unsupervised": te})
    assert d.train is tr and d.val is va
    assert any("not used: ['test', 'unsupervised']" in n for n in d.info.notes), d.info.notes
    assert load_data({"train": tr, "test": te, "val": va}).val is va


def test_only_a_train_split_is_split_like_a_single_dataset() -> None:
    """``{"train": ds}`` splits ``ds`` by ``val=`` with the seed, exactly as ``data=ds`` does (a DataLoader keeps its
    batch_size; a list of samples, ambiguous alone, is a dataset here)."""
    tr, _, _ = _parts()
    one, split = load_data(tr, seed=3, val=0.3), load_data({"train": tr}, seed=3, val=0.3)
    assert split.train.indices == one.train.indices and split.val.indices == one.val.indices
    assert split.train.dataset is tr
    loader = load_data({"train": DataLoader(tr, batch_size=7)}, seed=1)
    assert loader.train.batch_size == 7 and len(loader.train.dataset) + len(loader.val.dataset) == 70
    samples = [{"x": x, "y": y} for x, y in tr]
    listed = load_data({"train": samples}, val=0.2)
    assert (len(listed.train), len(listed.val), listed.info.task) == (56, 14, "classification")


@pytest.mark.parametrize(("data", "match"), [
    ({"training": 1, "eval": 2}, r"data= is a dict with keys \['eval', 'training'\].*no 'train' split.*"
                                 r"'train'.*'validation', 'val' or 'test'"),
    ({"validation": "v"}, r"keys \['validation'\].*no 'train' split"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(4)}, r"keys \['x', 'y'\].*no 'train' split.*TensorDataset"),
])
def test_a_mapping_without_a_train_split_names_its_keys(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_data(data)


def test_splits_that_are_not_datasets_are_errors_that_say_what_to_pass() -> None:
    tr, va, _ = _parts()
    with pytest.raises(ValueError, match=r"both 'validation' and 'val'.*keep one"):
        load_data({"train": tr, "validation": va, "val": va})
    with pytest.raises(ValueError, match=r"data\['validation'\] is a Tensor, not a torch Dataset/DataLoader"):
        load_data({"train": tr, "validation": torch.zeros(3, 5)})
    # file names (an inline data YAML in a cfg= file): a data YAML file says it
    with pytest.raises(ValueError, match=r"data\['train'\]='a\.csv' is a string.*data YAML.*data='data\.yaml'"):
        load_data({"train": "a.csv", "val": "b.csv"})
    # what args.yaml records of the datasets: they must be passed again
    with pytest.raises(ValueError, match=r"data\['train'\]='<TensorDataset>' is the record of a Python object.*again"):
        load_data({"train": "<TensorDataset>", "validation": "<TensorDataset>"})
    with pytest.raises(ValueError, match=r"target='y' applies only to CSV/NPZ files"):
        load_data({"train": tr, "validation": va}, target="y")


def test_train_on_a_dataset_dict_and_resume_it(tmp_path) -> None:
    """End to end: ``lrkit.train(data=DatasetDict(train=..., validation=...))`` trains on the train split and
    validates on the validation split; a resume with the same splits passed again continues the run."""
    tr, va, _ = _parts(200)
    common = dict(epochs=2, batch=16, lr0=0.05, optimizer="SGD", project=tmp_path, **QUIET)
    torch.manual_seed(0)
    r = train(torch.nn.Linear(5, 3), data=DatasetDict(train=tr, validation=va), name="dd", **common)
    resolved = yaml.safe_load((r.run_dir / "args.yaml").read_text())["resolved"]["data"]
    assert (resolved["n_train"], resolved["n_val"], resolved["source"]) == (140, 30, "splits")
    assert len(r.history) == 2
    with pytest.raises(ValueError, match=r"given a Python object in data=.*pass the same data= again"):
        train(torch.nn.Linear(5, 3), resume=r.run_dir, epochs=3, **QUIET)  # the splits not passed again
    torch.manual_seed(0)
    longer = train(torch.nn.Linear(5, 3), data=DatasetDict(train=tr, validation=va), resume=r.run_dir, epochs=3,
                   **QUIET)
    assert longer.epochs_run == 3
