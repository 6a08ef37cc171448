"""Second bug-hunt pass over lrkit.train.data: separators, column names, data YAML edge cases, NPZ images and
unreadable files, text files with a BOM or U+FFFD, torch datasets with numpy targets, IterableDatasets, LM
datasets' vocabulary, and the loss on int32/bool labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

import lrkit
from lrkit.train.data import count_classes, describe_sample, load_data
from lrkit.train.tasks import task_spec


def _rows(n: int) -> list[tuple[float, int, int]]:
    return [(i * 0.5, i % 3, i % 2) for i in range(n)]


def _quick(tmp_path) -> dict:
    return {"epochs": 1, "verbose": False, "plots": False, "project": str(tmp_path / "runs"), "monitor": False,
            "lr0": 0.01}


# ------------------------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(("kw", "match"), [({"val": 0.0}, "val=0.0"), ({"val": 1.0}, "val=1.0"),
                                           ({"val": float("nan")}, "val=nan"), ({"val": -0.5}, "val=-0.5"),
                                           ({"seq_len": 0}, "seq_len=0"), ({"seq_len": -3}, "seq_len=-3")])
def test_load_data_checks_val_and_seq_len(tmp_path, kw, match):
    f = tmp_path / "t.txt"
    f.write_text("hello world " * 50)
    with pytest.raises(ValueError, match=match):
        load_data(str(f), **kw)


# ------------------------------------------------------------------------------------------- CSV
@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_csv_separator_other_than_comma_is_detected(tmp_path, sep):
    f = tmp_path / "semi.csv"
    f.write_text(sep.join("aby") + "\n" + "".join(sep.join(map(str, r)) + "\n" for r in _rows(30)))
    d = load_data(str(f), target="y")
    assert d.info.input_shape == (2,) and d.info.classes == [0, 1]
    assert any(repr(sep) in n for n in d.info.notes)
    # the same table with commas gives the same tensors
    g = tmp_path / "comma.csv"
    g.write_text("a,b,y\n" + "".join(",".join(map(str, r)) + "\n" for r in _rows(30)))
    e = load_data(str(g), target="y")
    assert torch.equal(d.train.tensors[0], e.train.tensors[0]) and torch.equal(d.val.tensors[1], e.val.tensors[1])


def test_csv_comma_separated_with_semicolons_in_quoted_header_stays_comma(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('"a;1",b,y\n' + "".join(",".join(map(str, r)) + "\n" for r in _rows(20)))
    assert load_data(str(f)).info.input_shape == (2,)


def test_csv_duplicate_column_name_as_target_is_ambiguous(tmp_path):
    f = tmp_path / "dup.csv"
    f.write_text("a,a,y\n" + "".join(f"{i},{i % 2},{i % 3}\n" for i in range(20)))
    with pytest.raises(ValueError, match=r"'a' names 2 columns \(0, 1\)"):
        load_data(str(f), target="a")
    assert load_data(str(f), target=1).info.classes == [0, 1]  # by index it is fine
    assert load_data(str(f)).info.input_shape == (2,)  # a duplicate feature name is harmless


def test_integer_valued_labels_are_saved_as_integers(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("a,y\n" + "".join(f"{i},{[3, 5, 7][i % 3]}\n" for i in range(30)))
    d = load_data(str(f))
    assert d.info.classes == [3, 5, 7] and all(type(c) is int for c in d.info.classes)
    # as in the file: numbers, not "3" (session 26; they were strings) nor 3.0
    assert d.info.to_dict()["classes"] == [3, 5, 7] and all(type(c) is int for c in d.info.to_dict()["classes"])
    g = tmp_path / "h.csv"
    g.write_text("a,y\n" + "".join(f"{i},{[0.5, 1.0][i % 2]}\n" for i in range(30)))
    assert load_data(str(g), task="classification").info.classes == [0.5, 1.0]


# ------------------------------------------------------------------------------------------- data YAML
def _csv(path, header: str, rows) -> None:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def test_yaml_val_csv_columns_are_matched_by_name(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(40), rng.standard_normal(40) * 10
    y = (a > 0).astype(int)
    _csv(tmp_path / "tr.csv", "a,b,y", zip(a[:30], b[:30], y[:30]))
    _csv(tmp_path / "va.csv", "b,y,a", zip(b[30:], y[30:], a[30:]))  # the same columns, another order
    _csv(tmp_path / "ref.csv", "a,b,y", zip(a[30:], b[30:], y[30:]))
    (tmp_path / "d.yaml").write_text("train: tr.csv\nval: va.csv\n")
    (tmp_path / "r.yaml").write_text("train: tr.csv\nval: ref.csv\n")
    d, r = load_data(str(tmp_path / "d.yaml"), target="y"), load_data(str(tmp_path / "r.yaml"), target="y")
    assert torch.equal(d.val.tensors[0], r.val.tensors[0]) and torch.equal(d.val.tensors[1], r.val.tensors[1])
    _csv(tmp_path / "other.csv", "a,c,y", zip(a[30:], b[30:], y[30:]))
    (tmp_path / "o.yaml").write_text("train: tr.csv\nval: other.csv\n")
    with pytest.raises(ValueError, match=r"val has columns .*'c'.* train has .*'b'"):
        load_data(str(tmp_path / "o.yaml"))


def test_yaml_val_labels_are_read_like_the_train_labels(tmp_path):
    _csv(tmp_path / "tr.csv", "a,y", [(i, i % 2) for i in range(20)])
    _csv(tmp_path / "va.csv", "a,y", [(i, ["0", "1", "x"][i % 3]) for i in range(9)])
    (tmp_path / "d.yaml").write_text("train: tr.csv\nval: va.csv\n")
    d = load_data(str(tmp_path / "d.yaml"))
    assert d.info.classes == ["0", "1", "x"]  # "0" in val is the same class as 0 in train, not a fourth class
    assert d.info.num_outputs == 3
    assert d.train.tensors[1].tolist() == [i % 2 for i in range(20)]


def test_yaml_val_as_a_fraction_splits_the_train_file(tmp_path):
    _csv(tmp_path / "tr.csv", "a,y", [(i, i % 2) for i in range(40)])
    (tmp_path / "d.yaml").write_text("train: tr.csv\nval: 0.25\n")
    d = load_data(str(tmp_path / "d.yaml"), val=0.5, seed=3)
    assert (len(d.train), len(d.val)) == (30, 10)
    ref = load_data(str(tmp_path / "tr.csv"), val=0.25, seed=3)
    assert torch.equal(d.val.tensors[0], ref.val.tensors[0])
    for bad in ("0", "1.5", "true"):
        (tmp_path / "b.yaml").write_text(f"train: tr.csv\nval: {bad}\n")
        with pytest.raises(ValueError, match=r"val=.* a fraction in \(0, 1\)"):
            load_data(str(tmp_path / "b.yaml"))


def test_yaml_files_must_be_paths_of_one_kind_and_not_yaml(tmp_path):
    _csv(tmp_path / "tr.csv", "a,y", [(i, i % 2) for i in range(20)])
    (tmp_path / "t.txt").write_text("hello world " * 40)
    cases = {
        "train: [tr.csv, tr.csv]\n": "train must be a file path",
        "train:\n": "train must be a file path",
        "train: self.yaml\n": "cannot name another data YAML",
        "train: tr.csv\nval: t.txt\n": r"train is a \.csv file .* val is a \.txt file",
        "train: t.txt\nval: tr.csv\n": r"train is a \.txt file .* val is a \.csv file",
    }
    for text, match in cases.items():
        (tmp_path / "self.yaml").write_text(text)
        with pytest.raises(ValueError, match=match):
            load_data(str(tmp_path / "self.yaml"))


# ------------------------------------------------------------------------------------------- NPZ
def test_npz_images_keep_their_shape_and_fit_the_cnn(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 1, 6, 6)).astype(np.uint8)
    np.savez(tmp_path / "img.npz", x=x, y=rng.integers(0, 3, 40))
    d = load_data(str(tmp_path / "img.npz"))
    assert d.info.input_shape == (1, 6, 6)
    xt = d.train.tensors[0].double()
    assert abs(float(xt.mean())) < 1e-6 and abs(float(xt.std(unbiased=False)) - 1) < 1e-6  # one mean/std
    from lrkit.train.models import ConvNet, default_model_name
    assert default_model_name(d.info) == "cnn"
    assert isinstance(lrkit.train.models.build_model("cnn", d.info), ConvNet)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [({"x": np.zeros((0, 3)), "y": np.zeros(0)}, "0 rows"),
     ({"x": np.zeros((10, 0)), "y": np.arange(10.0)}, "no feature"),
     ({"x": np.ones((10, 2)), "y": np.arange(10) + 1j}, "complex"),
     ({"x": np.array([[1, 2]] * 10, dtype=object), "y": np.zeros(10)}, "Python objects")],
)
def test_npz_bad_arrays_are_named(tmp_path, arrays, match):
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(ValueError, match=f"a.npz.*{match}"):
        load_data(str(tmp_path / "a.npz"))


def test_npz_that_is_not_a_zip_is_named(tmp_path):
    (tmp_path / "a.npz").write_text("hello")
    with pytest.raises(ValueError, match=r"a.npz: not a readable \.npz file \(not a zip archive\)"):
        load_data(str(tmp_path / "a.npz"))
    import zipfile

    with zipfile.ZipFile(tmp_path / "b.npz", "w") as z:
        z.writestr("x.npy", b"not an array")
    with pytest.raises(ValueError, match=r"b.npz: member 'x' is not a numpy array"):
        load_data(str(tmp_path / "b.npz"))


# ------------------------------------------------------------------------------------------- text
def test_text_byte_order_mark_is_not_a_character(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"\xef\xbb\xbf" + b"abcab" * 40)
    assert load_data(str(f), seq_len=8).info.vocab == ["a", "b", "c"]


def test_text_replacement_character_is_one_vocabulary_entry(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("ab\ufffd" * 60 + "xyz" * 10)  # U+FFFD in the train text, unseen x/y/z in the validation text
    d = load_data(str(f), seq_len=8, val=0.2)
    assert len(d.info.vocab) == len(set(d.info.vocab)) == d.info.num_outputs == 3
    assert int(d.val.tensors[0].max()) < d.info.num_outputs


# ------------------------------------------------------------------------------------------- torch datasets
class _NumpyTargets(Dataset):
    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int64]:
        return np.full(4, i, dtype=np.float32), np.int64(i % 3)


def test_numpy_scalar_targets_are_read(tmp_path):
    d = load_data(_NumpyTargets())
    assert (d.info.task, d.info.input_shape) == ("classification", (4,))
    assert lrkit.train("linear", data=_NumpyTargets(), **_quick(tmp_path)).model.head.out_features == 3


class _Stream(IterableDataset):
    def __init__(self, n: int, sized: bool) -> None:
        self.n, self.sized = n, sized

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for i in range(self.n):
            yield torch.randn(4, generator=g), i % 2

    def __len__(self) -> int:
        if not self.sized:
            raise TypeError("no len")
        return self.n


class _Unsized(IterableDataset):
    def __iter__(self):
        yield torch.zeros(4), 0


def test_iterable_datasets(tmp_path):
    with pytest.raises(ValueError, match="IterableDataset.*cannot be split"):
        load_data(_Stream(20, sized=True))
    with pytest.raises(ValueError, match=r"train is an IterableDataset without __len__"):
        load_data((_Unsized(), _Stream(8, sized=True)))
    d = load_data((_Stream(24, sized=True), _Stream(8, sized=True)))
    assert (d.info.task, d.info.input_shape) == ("classification", (4,))  # peeked from its first sample
    train_loader, _, sampler = d.loaders(batch=8)
    assert sampler is None and len(train_loader) == 3
    r = lrkit.train("mlp", data=(_Stream(24, sized=True), _Stream(8, sized=True)), **_quick(tmp_path))
    assert math.isfinite(r.final_val_loss)


def test_lm_tensor_dataset_gets_its_vocabulary_size(tmp_path):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 7, (30, 9), generator=g)
    tokens[3, 4] = 11  # the largest id: vocabulary 12
    ds = TensorDataset(tokens[:, :-1], tokens[:, 1:])
    d = load_data(ds)
    assert (d.info.task, d.info.num_outputs, d.info.seq_len) == ("lm", 12, 8)
    r = lrkit.train("charlm", data=ds, **_quick(tmp_path))
    assert r.model.head.out_features == 12 and math.isfinite(r.final_val_loss)


class _TokenDataset(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = (torch.arange(9) + i) % 5
        if i == 0:
            t[0] = 9  # the largest id appears only as an input, never as a target
        return t[:-1], t[1:]


def test_count_classes_counts_tokens_of_an_lm_dataset():
    d = load_data(_TokenDataset(), val=0.5)
    assert d.info.task == "lm" and d.info.num_outputs is None  # not a TensorDataset: counted on demand
    assert count_classes(d) == 10


def test_dict_samples_are_described_with_their_keys():
    class D(Dataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> dict:
            return {"image": torch.zeros(2), "label": 1}

    assert describe_sample(D()) == "a dict with keys ['image', 'label'] (not an (input, target) pair)"


# ------------------------------------------------------------------------------------------- losses
@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.bool])
def test_class_labels_of_any_integer_dtype_train(tmp_path, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    y = (x[:, 0] > 0).long()
    ref = lrkit.train("mlp", data=TensorDataset(x, y), seed=0, **_quick(tmp_path))
    got = lrkit.train("mlp", data=TensorDataset(x, y.to(dtype)), seed=0, **_quick(tmp_path))
    assert got.final_val_loss == ref.final_val_loss
    spec = task_spec("classification")
    out = torch.randn(5, 2, generator=g)
    assert torch.equal(spec.loss(out, y[:5].to(dtype)), torch.nn.functional.cross_entropy(out, y[:5]))


def test_lm_loss_takes_int32_token_ids():
    g = torch.Generator().manual_seed(0)
    out, t = torch.randn(2, 3, 5, generator=g), torch.randint(0, 5, (2, 3), generator=g)
    spec = task_spec("lm")
    ref = torch.nn.functional.cross_entropy(out.reshape(-1, 5), t.reshape(-1))
    assert torch.allclose(spec.loss(out, t.int()), ref)
    s, n = spec.metric_sums(out, t.int())
    assert n == 6 and abs(s / n - float(ref)) < 1e-5


def test_split_ignores_the_global_random_state():
    np.random.seed(1)
    torch.manual_seed(1)
    a = load_data("iris", seed=5)
    np.random.seed(2)
    torch.manual_seed(2)
    np.random.random(10)
    b = load_data("iris", seed=5)
    assert torch.equal(a.val.tensors[0], b.val.tensors[0])
    ds = TensorDataset(torch.arange(50.0)[:, None], torch.arange(50) % 2)
    torch.manual_seed(3)
    first = load_data(ds, seed=5).val.indices
    torch.manual_seed(4)
    assert load_data(ds, seed=5).val.indices == first
    assert load_data(ds, seed=6).val.indices != first
