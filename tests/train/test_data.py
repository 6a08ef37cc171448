"""Every data source: built-ins, CSV, NPZ, text, data YAML, torch Datasets/DataLoaders; splits; errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lrkit.train.data import BUILTIN_DATASETS, SeededSampler, load_data


@pytest.mark.parametrize(
    ("name", "task", "shape", "outputs", "n"),
    [("iris", "classification", (4,), 3, 150), ("wine", "classification", (13,), 3, 178),
     ("breast_cancer", "classification", (30,), 2, 569), ("digits", "classification", (1, 8, 8), 10, 1797),
     ("synthetic-regression", "regression", (10,), 1, 1000),
     ("synthetic-classification", "classification", (10,), 3, 1000)],
)
def test_builtin_datasets(name, task, shape, outputs, n):
    d = load_data(name, seed=0, val=0.25)
    assert (d.info.task, d.info.input_shape, d.info.num_outputs) == (task, shape, outputs)
    assert len(d.train) + len(d.val) == n and len(d.val) == round(0.25 * n)
    x, y = d.train.tensors
    assert x.dtype == torch.float32 and tuple(x.shape[1:]) == shape
    assert (y.dtype == torch.long) == (task == "classification")


def test_builtin_name_aliases_and_errors():
    assert load_data("synthetic_regression").info.name == "synthetic-regression"
    with pytest.raises(ValueError, match="Did you mean 'digits'"):
        load_data("digitz")
    with pytest.raises(ValueError, match="regression"):
        load_data("iris", task="regression")
    assert set(BUILTIN_DATASETS) == {"digits", "breast_cancer", "wine", "iris", "synthetic-regression",
                                     "synthetic-classification"}


def test_split_is_reproducible_from_seed():
    a, b, c = (load_data("wine", seed=s) for s in (3, 3, 4))
    assert torch.equal(a.train.tensors[0], b.train.tensors[0]) and torch.equal(a.val.tensors[1], b.val.tensors[1])
    assert not torch.equal(a.val.tensors[0], c.val.tensors[0])


def test_tabular_standardised_on_train_split_only():
    d = load_data("wine", seed=0)
    xt, xv = d.train.tensors[0].double(), d.val.tensors[0].double()
    assert torch.allclose(xt.mean(0), torch.zeros(13, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(xt.std(0, unbiased=False), torch.ones(13, dtype=torch.float64), atol=1e-5)
    assert xv.mean(0).abs().max() > 1e-3  # the val split is transformed with the train statistics, not its own


def test_csv_with_named_string_target(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    labels = np.where(x[:, 0] > 0, "yes", "no")
    f = tmp_path / "t.csv"
    lines = ["a,label,b,c"] + [f"{r[0]},{lab},{r[1]},{r[2]}" for r, lab in zip(x, labels)]
    f.write_text("\n".join(lines) + "\n")
    d = load_data(str(f), target="label", seed=1, val=0.2)
    assert (d.info.task, d.info.num_outputs, d.info.classes, d.info.input_shape) == (
        "classification", 2, ["no", "yes"], (3,))
    xt, yt = d.train.tensors
    assert torch.allclose(xt.double().mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    # "yes" (class 1) marks rows whose raw first feature is > 0, i.e. standardised above -mu/sd of the train split
    train_rows = np.sort(np.random.default_rng(1).permutation(60)[12:])
    a = x[train_rows, 0]
    threshold = (0.0 - a.mean()) / a.std()
    assert torch.equal(xt[:, 0] > threshold, yt == 1)
    assert len(d.train) == 48 and len(d.val) == 12


def test_csv_numeric_target_regression_and_errors(tmp_path):
    f = tmp_path / "r.csv"
    rows = ["x1,x2,y"] + [f"{i},{i * 2 % 7},{0.5 * i + 0.1}" for i in range(40)]
    f.write_text("\n".join(rows))
    d = load_data(f)
    assert d.info.task == "regression" and d.info.num_outputs == 1
    assert d.train.tensors[1].shape == (32, 1)
    sd = np.std([0.5 * i + 0.1 for i in np.sort(np.random.default_rng(0).permutation(40)[8:])])
    assert d.info.target_scale == pytest.approx(sd)
    with pytest.raises(ValueError, match="target column"):
        load_data(f, target="price")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,x,0\n2,3,1\n4,5,0\n")
    with pytest.raises(ValueError, match="feature column 'b' holds a non-numeric value 'x'"):
        load_data(bad)
    with pytest.raises(ValueError, match="no such file"):
        load_data(tmp_path / "nope.csv")


def test_npz_sources(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 4)), rng.integers(0, 3, 50)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    d = load_data(tmp_path / "xy.npz")
    assert (d.info.task, d.info.num_outputs, d.info.input_shape) == ("classification", 3, (4,))
    np.savez(tmp_path / "named.npz", features=x, price=x @ [1.0, 2.0, 3.0, 4.0])
    d = load_data(tmp_path / "named.npz", target="price")  # the one other array holds the features
    assert (d.info.task, d.info.input_shape) == ("regression", (4,))
    np.savez(tmp_path / "three.npz", a=x, b=x, price=x[:, 0])
    with pytest.raises(ValueError, match="name the features 'x'"):
        load_data(tmp_path / "three.npz", target="price")
    with pytest.raises(ValueError, match="Did you mean 'price'"):
        load_data(tmp_path / "three.npz", target="prise")
    np.savez(tmp_path / "table.npz", data=np.column_stack([x, x[:, 0] * 2.5]))
    d = load_data(tmp_path / "table.npz")
    assert d.info.task == "regression" and d.info.input_shape == (4,)
    with pytest.raises(ValueError, match=r"target=7 is out of range: table.npz has 5 columns"):
        load_data(tmp_path / "table.npz", target=7)  # a clear error, not numpy's IndexError


def test_text_is_character_lm(tmp_path):
    text = "hello world, the quick brown fox jumps over the lazy dog. " * 20
    f = tmp_path / "book.txt"
    f.write_text(text)
    d = load_data(f, seq_len=16, val=0.2)
    info = d.info
    assert info.task == "lm" and info.seq_len == 16 and info.input_shape == (16,)
    assert info.vocab == sorted(set(text[: len(text) - round(0.2 * len(text))]))
    x, y = d.train.tensors
    assert x.shape[1] == 16 and torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    decoded = "".join(info.vocab[i] for i in x[0].tolist())
    assert decoded == text[:16]
    with pytest.raises(ValueError, match="too few for one window"):
        load_data(f, seq_len=5000)


def test_text_val_with_unseen_characters_gets_unk(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("ab" * 200 + "xyz" * 40)
    d = load_data(f, seq_len=8, val=0.3)
    assert d.info.vocab[-1] == "\ufffd" and int(d.val.tensors[0].max()) == len(d.info.vocab) - 1


def test_data_yaml_with_separate_val(tmp_path):
    (tmp_path / "d").mkdir()
    for part, n in (("train", 40), ("val", 10)):
        rows = ["f1,f2,target"] + [f"{i},{(i * 3) % 5},{i % 2}" for i in range(n)]
        (tmp_path / "d" / f"{part}.csv").write_text("\n".join(rows))
    y = tmp_path / "data.yaml"
    y.write_text("path: d\ntrain: train.csv\nval: val.csv\ntarget: target\ntask: classification\n")
    d = load_data(y)
    assert (len(d.train), len(d.val), d.info.task, d.info.source) == (40, 10, "classification", "yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: d/train.csv\ntargte: x\n")
    with pytest.raises(ValueError, match="Did you mean 'target'"):
        load_data(bad)


def test_broken_data_yaml_names_line_column_and_problem(tmp_path):
    y = tmp_path / "data.yaml"
    y.write_text("train: train.csv\ntarget: a: b\n")
    with pytest.raises(ValueError, match=r"data=data.yaml: not valid YAML \(line 2, column 10: mapping values are not"):
        load_data(y)


def test_torch_sources():
    x = torch.randn(50, 3)
    ds = TensorDataset(x, torch.randint(0, 4, (50,)))
    d = load_data(ds, seed=0, val=0.2)
    assert (len(d.train), len(d.val), d.info.task, d.info.input_shape) == (40, 10, "classification", (3,))
    idx = set(d.train.indices) | set(d.val.indices)
    assert idx == set(range(50))
    reg = TensorDataset(x, torch.randn(50, 2))
    pair = load_data((reg, reg))
    assert pair.info.task == "regression" and pair.info.num_outputs == 2 and pair.train is reg
    loaders = load_data((DataLoader(reg, batch_size=5), DataLoader(reg, batch_size=7)))
    assert loaders.loaders(batch=32)[0].batch_size == 5
    one = load_data(DataLoader(ds, batch_size=6))
    assert one.train.batch_size == 6 and len(one.train.dataset) == 40
    with pytest.raises(ValueError, match="not a torch Dataset"):
        load_data((ds, [1, 2]))
    with pytest.raises(ValueError, match="is not supported"):
        load_data(np.zeros((3, 3)))


def test_seeded_sampler_is_a_function_of_seed_and_epoch():
    s = SeededSampler(20, seed=5)
    orders = []
    for epoch in (0, 1, 0):
        s.set_epoch(epoch)
        orders.append(list(s))
    assert orders[0] == orders[2] and orders[0] != orders[1] and sorted(orders[1]) == list(range(20))


def test_huge_and_tiny_values_standardise_without_overflow(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3)) * [1e155, 1e-160, 1.0]  # x.std() squares 1e155 to inf: the column became 0
    y = rng.standard_normal(50) * 1e200  # a regression target that large: (y - mean) / inf was all zeros
    f = tmp_path / "big.npz"
    np.savez(f, x=x, y=y)
    d = load_data(str(f), seed=0, task="regression")
    xt, yt = d.train.tensors
    assert torch.isfinite(xt).all() and torch.isfinite(yt).all()
    assert torch.allclose(xt.double().std(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(yt.double().std(unbiased=False), torch.ones((), dtype=torch.float64), atol=1e-5)
    assert 1e199 < d.info.target_scale < 1e201
