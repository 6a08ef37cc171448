"""Session 25g: a review of the 25f data walk (freeze-index note, task=regression on integer targets, CSV missing-value
markers, NPZ arrays beside x/y, data=mnist/URL refusals, model spec hints) for regressions of inputs that worked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lrkit
from lrkit.train.data import load_data


class _Stack(nn.Module):
    """A top-level child that holds a stack of blocks: its layers are ``1.layers.0``, ``1.layers.1``."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def test_an_index_at_a_module_split_into_layers_is_not_called_parameterless(tmp_path: Path, capsys) -> None:
    # freeze=[1] on Sequential(Linear, <a block stack>, Linear): index 1 is '1.layers.0', inside the module named
    # '1'; the note said that module "has no parameters to freeze", while the run froze its parameters
    torch.manual_seed(0)
    x = torch.randn(40, 3)
    model = nn.Sequential(nn.Linear(3, 8), _Stack(), nn.Linear(8, 2))
    lrkit.train(model, data=TensorDataset(x, (x[:, 0] > 0).long()), epochs=1, freeze=[1], lr0=0.01,
                project=str(tmp_path))
    text = " ".join(capsys.readouterr().out.split())
    assert "froze 2 parameter tensors (72 parameters) in layer 1" in text
    assert "has no parameters to freeze" not in text


def test_resume_of_an_integer_regression_run_saved_before_it_was_sized(tmp_path: Path) -> None:
    # a run of one's own model on integer targets with task=regression recorded num_outputs None (lrkit did not size
    # such targets); sizing them now (1 output) made its resume fail as "the data changed since the run was saved"
    torch.manual_seed(0)
    x, counts = torch.randn(40, 3), torch.randint(0, 5, (40,))
    kw = dict(data=TensorDataset(x, counts), task="regression", lr0=0.01, project=str(tmp_path), name="r",
              exist_ok=True, verbose=False)
    lrkit.train(nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), epochs=1, **kw)
    path = tmp_path / "r" / "last.pt"
    ck = torch.load(path, weights_only=True)
    assert ck["data"]["num_outputs"] == 1
    ck["data"]["num_outputs"] = None  # as the run was saved before integer regression targets were sized
    torch.save(ck, path)
    r = lrkit.train(nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), epochs=2, resume=str(path), **kw)
    assert r.best_metric is not None
    # a run of another task still counts as changed data
    ck = torch.load(path, weights_only=True)
    ck["data"].update(task="classification", num_outputs=None)
    torch.save(ck, path)
    with pytest.raises(ValueError, match=r"the data changed since the run was saved \(task"):
        lrkit.train(nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), epochs=3, resume=str(path), **kw)


def _csv(tmp_path: Path, name: str, first: str) -> Path:
    rows = "".join(f"{i % 7 - 3},{i * 0.5},{i % 2}\n" for i in range(30))
    p = tmp_path / name
    p.write_text(f"a,b,y\n{first}{rows}")
    return p


def test_negative_numbers_and_a_column_named_na_still_read(tmp_path: Path) -> None:
    # '-' and 'NA' cells are missing values now; '-1', ' -2 ' and a column *named* NA are not
    p = tmp_path / "n.csv"
    p.write_text("NA,b,y\n" + "".join(f" {-(i % 3) - 1} ,{i},{i % 2}\n" for i in range(30)))
    data = load_data(str(p), seed=0, val=0.2)
    assert (data.info.task, data.info.input_shape, data.info.num_outputs) == ("classification", (2,), 2)
    assert load_data(str(p), target="NA", seed=0, val=0.2).info.task == "classification"


@pytest.mark.parametrize("cell", ["-", "?", "NA", "null", "."])
def test_a_missing_value_marker_is_named_as_one(tmp_path: Path, cell: str) -> None:
    with pytest.raises(ValueError, match=rf"feature column 'a' holds '{__import__('re').escape(cell)}' on line 2, a "
                                         r"missing value \(1 cell"):
        load_data(str(_csv(tmp_path, "m.csv", f"{cell},1,0\n")), seed=0, val=0.2)


@pytest.mark.parametrize("cell", ["nan", "NaN"])
def test_nan_cells_keep_their_nan_error(tmp_path: Path, cell: str) -> None:
    with pytest.raises(ValueError, match=r"NaN/infinite value\(s\), first in column 'a' on line 2"):
        load_data(str(_csv(tmp_path, "n.csv", f"{cell},1,0\n")), seed=0, val=0.2)


def test_npz_extra_arrays_and_array_targets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    p = tmp_path / "a.npz"
    np.savez(p, x=x, y=(x[:, 0] > 0).astype(np.int64), extra=x[:, :2])
    for target in (None, "y"):
        info = load_data(str(p), target=target, seed=0, val=0.2).info
        assert (info.task, info.num_outputs) == ("classification", 2)
        assert info.notes == ["a.npz: arrays ['extra'] are not used (the features are 'x', the target 'y')"]
    info = load_data(str(p), target="extra", seed=0, val=0.2).info
    assert (info.task, info.num_outputs) == ("regression", 2)
    assert info.notes == ["a.npz: arrays ['y'] are not used (the features are 'x', the target 'extra')"]


def test_local_files_named_like_downloadable_datasets_still_load(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("mnist.csv").write_text("a,b,y\n" + "".join(f"{i},{i * 0.3},{i % 2}\n" for i in range(30)))
    assert load_data("mnist.csv", seed=0, val=0.2).info.n_train == 24
    Path("cifar10").mkdir()
    for name in ("cifar10", "cifar10/"):
        with pytest.raises(ValueError, match="is a directory"):
            load_data(name, seed=0, val=0.2)
    with pytest.raises(ValueError, match=r"torchvision\.datasets\.MNIST\(root"):
        load_data("mnist", seed=0, val=0.2)


def test_factory_specs_still_build(tmp_path: Path, monkeypatch) -> None:
    from lrkit.train.data import DataInfo
    from lrkit.train.models import build_model

    (tmp_path / "mymodels_s25g.py").write_text("import torch.nn as nn\n\ndef make(in_features, num_outputs):\n"
                                                "    return nn.Linear(in_features, num_outputs)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    info = DataInfo("d", "classification", (3,), 2, "pair")
    for spec in ("mymodels_s25g:make", "mymodels_s25g.py:make", " mlp "):
        assert build_model(spec, info)(torch.zeros(1, 3)).shape == (1, 2)
    with pytest.raises(ValueError, match=r"model='mymodels_s25g:make'"):
        build_model("mymodels_s25g.make", info)
