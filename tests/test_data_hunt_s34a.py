"""Session 34a: data files a practitioner brings to lrkit.train that gave a deep numpy/csv traceback, silently wrong
data, or advice that did not fit the file."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from lrkit.train.data import load_data

ROWS = [(i, (i * 3) % 7, i % 2) for i in range(12)]


def _csv_text(newline: str) -> str:
    return newline.join(["f1,f2,y", *(f"{a},{b},{c}" for a, b, c in ROWS)]) + newline


# ---------------------------------------------------------------- NPZ targets of no numeric or label kind
@pytest.mark.parametrize("y", [
    np.array([np.datetime64("2020-01-01") + i for i in range(20)]),
    np.arange(20).astype("m8[s]"),
    np.zeros(20, dtype=[("a", "f8"), ("b", "i4")]),
], ids=["datetime64", "timedelta64", "structured"])
def test_npz_target_of_dates_or_records_is_a_clear_error(tmp_path, y):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.random.default_rng(0).standard_normal((20, 3)), y=y)
    with pytest.raises(ValueError, match=r"d\.npz: the target .*dtype") as info:
        load_data(str(path))
    assert str(y.dtype) in str(info.value)


def test_npz_target_with_no_values_per_sample_is_an_error(tmp_path):
    # y of shape (N, 0) trained a regression with 0 outputs and a NaN target scale (numpy's "Mean of empty slice")
    path = tmp_path / "empty_y.npz"
    np.savez(path, x=np.random.default_rng(0).standard_normal((20, 3)), y=np.zeros((20, 0)))
    for task in (None, "regression"):
        with pytest.raises(ValueError, match=r"empty_y\.npz: y of shape \(20, 0\) has no target values"):
            load_data(str(path), task=task)


# ---------------------------------------------------------------- data YAML `path:`
def _tree(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "tr.csv").write_text(_csv_text("\n"))
    return sub


def test_yaml_empty_path_key_is_the_yaml_folder(tmp_path):
    # `path:` left empty is YAML's null: it read sub/None/tr.csv
    sub = _tree(tmp_path)
    (sub / "d.yaml").write_text("path:\ntrain: tr.csv\n")
    d = load_data(str(sub / "d.yaml"))
    assert d.info.n_train + d.info.n_val == len(ROWS)


def test_yaml_path_key_expands_home(tmp_path, monkeypatch):
    sub = _tree(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "d.yaml").write_text("path: ~/sub\ntrain: tr.csv\n")
    d = load_data(str(tmp_path / "d.yaml"))
    assert d.info.n_train + d.info.n_val == len(ROWS)
    assert sub.is_dir()


# ---------------------------------------------------------------- UTF-16 files (Excel's "Unicode Text", Notepad)
@pytest.mark.parametrize("name", ["u16.csv", "u16.txt"])
def test_utf16_file_is_named_so_with_the_right_conversion(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(("f1,y\n" + "\n".join(f"{i},{i % 2}" for i in range(40)) + "\n").encode("utf-16"))
    with pytest.raises(ValueError, match="UTF-16") as info:
        load_data(str(path), seq_len=8)
    message = str(info.value)
    assert "iconv -f utf-16 -t utf-8" in message
    assert "latin1" not in message  # converting UTF-16 as latin1 gives a file full of NUL bytes


# ---------------------------------------------------------------- CSV line endings
def test_csv_with_classic_mac_line_endings_reads_as_with_newlines(tmp_path):
    # Excel for Mac's "CSV (Macintosh)" ends lines with a bare \r: _csv.Error "new-line character seen in unquoted
    # field" came out of the csv module
    (tmp_path / "lf.csv").write_text(_csv_text("\n"), newline="")
    (tmp_path / "cr.csv").write_text(_csv_text("\r"), newline="")
    a, b = (load_data(str(tmp_path / n), seed=3) for n in ("lf.csv", "cr.csv"))
    assert a.info.features == b.info.features == ["f1", "f2"]
    for part in ("train", "val"):
        for u, v in zip(getattr(a, part).tensors, getattr(b, part).tensors):
            assert torch.equal(u, v)


def test_csv_the_csv_module_cannot_read_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "big.csv"
    import csv
    huge = "x" * (csv.field_size_limit() + 10)
    path.write_text(f"f1,note,y\n1,{huge},0\n2,a,1\n3,b,0\n")
    with pytest.raises(ValueError, match=r"big\.csv: .*line 2"):
        load_data(str(path), drop="note")


# ---------------------------------------------------------------- NPZ images saved channels-last
def test_npz_channels_last_images_are_not_read_as_channels_first(tmp_path):
    # Keras/TF and PIL save images (N, H, W, C): a CIFAR-like (N, 32, 32, 3) was read as 32 channels of 32x3 pixels,
    # and the built-in ConvNet trained on the scrambled axes without a word
    rng = np.random.default_rng(0)
    path = tmp_path / "cifar_like.npz"
    np.savez(path, x=rng.integers(0, 255, (40, 32, 32, 3)).astype(np.uint8), y=np.arange(40) % 10)
    with pytest.raises(ValueError, match=r"cifar_like\.npz: .*\(40, 32, 32, 3\).*channels-last") as info:
        load_data(str(path))
    assert "np.transpose(x, (0, 3, 1, 2))" in str(info.value)
    # channels-first, as the file format says, loads as it is
    first = tmp_path / "first.npz"
    np.savez(first, x=rng.integers(0, 255, (40, 3, 32, 32)).astype(np.uint8), y=np.arange(40) % 10)
    assert load_data(str(first)).info.input_shape == (3, 32, 32)
    gray = tmp_path / "gray.npz"
    np.savez(gray, x=rng.standard_normal((40, 1, 8, 8)), y=np.arange(40) % 2)
    assert load_data(str(gray)).info.input_shape == (1, 8, 8)


# ---------------------------------------------------------------- NPZ numbers saved as text
def test_npz_numbers_saved_as_strings_are_read_as_numbers_as_a_csv_column_is(tmp_path):
    # y = prices as strings (np.loadtxt(dtype=str), df.astype(str)): every distinct price became a class of its own
    # (60 classes, most val samples scored against a class never trained on); a CSV's column reads them as numbers
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    prices = rng.uniform(1, 100, 60)
    path = tmp_path / "prices.npz"
    np.savez(path, x=x, y=np.array([f"{v:.2f}" for v in prices]))
    d = load_data(str(path))
    assert d.info.task == "regression" and d.info.num_outputs == 1
    assert any("as numbers" in n for n in d.info.notes)
    labels = tmp_path / "labels.npz"
    np.savez(labels, x=x, y=np.array([str(v) for v in np.arange(60) % 3]))
    d = load_data(str(labels))
    assert d.info.task == "classification" and d.info.classes == [0, 1, 2]
    words = tmp_path / "words.npz"  # text labels stay labels
    np.savez(words, x=x, y=np.array(["cat", "dog", "1"] * 20))
    assert load_data(str(words)).info.classes == ["1", "cat", "dog"]


# ---------------------------------------------------------------- task files of `lrkit find`
_TASK = '''
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


@dataclass
class Config:
    width: int = 8
    lr: float = 0.1


class Net(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.body = nn.Linear(4, cfg.width)
        self.head = nn.Linear(cfg.width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def model() -> nn.Module:
    return Net(Config())


def optimizer(params):
    return torch.optim.SGD(params, lr=Config().lr)


def train_loader():
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)),
                      batch_size=8)
'''


def test_task_file_with_a_dataclass_and_postponed_annotations_loads(tmp_path):
    # dataclasses look the class's module up in sys.modules to read string annotations: the task module was never
    # registered there, and the file failed with "AttributeError: 'NoneType' object has no attribute '__dict__'"
    import io
    import pickle

    from lrkit.finder.demo import load_task_file

    path = tmp_path / "dc_task.py"
    path.write_text(_TASK)
    task = load_task_file(path)
    assert type(task.model).__name__ == "Net"
    # the task file's own classes pickle (torch.save(model), a checkpoint of it), as an imported module's do
    buf = io.BytesIO()
    torch.save(task.model, buf)
    assert pickle.loads(pickle.dumps(task.model)).body.out_features == 8


def test_task_file_classes_are_importable_by_their_module_name(tmp_path):
    # a DataLoader worker under spawn (macOS, Windows) unpickles the file's Dataset class by importing its module by
    # name: 'lrkit_task_<stem>' could not be imported there (PicklingError / "No module named 'lrkit_task_...'")
    import importlib.machinery
    import sys

    from lrkit.finder.demo import _module_name, load_task_file

    path = tmp_path / "spawn_task_s34a.py"
    path.write_text(_TASK)
    task = load_task_file(path)
    name = type(task.model).__module__
    try:
        found = importlib.machinery.PathFinder.find_spec(name, sys.path)  # as a fresh process would, on its sys.path
        assert found is not None and found.origin == str(path.resolve())
    finally:
        sys.modules.pop(name, None)
    # a stem that names another module (the stdlib's json) keeps the prefixed name: it shadows nothing
    assert _module_name(tmp_path / "json.py") == "lrkit_task_json"
    assert _module_name(tmp_path / "my-task.py") == "lrkit_task_my-task"


# ---------------------------------------------------------------- CSV class labels with missing-value markers
@pytest.mark.parametrize("marker", ["NA", "?", "null"])
def test_missing_value_markers_among_numeric_labels_are_not_a_class(tmp_path, marker):
    # a 0/1 target with 'NA' for the rows without a label trained 3 classes, '0', '1' and 'NA', without a word
    path = tmp_path / "labels.csv"
    path.write_text("f1,y\n" + "".join(f"{i * 0.5},{marker if i % 7 == 3 else i % 2}\n" for i in range(30)))
    with pytest.raises(ValueError, match=rf"labels\.csv: the target column 'y' holds '{re.escape(marker)}' on line 5, "
                                         r"a missing value \(4 cells\)") as info:
        load_data(str(path))
    assert "task='classification'" in str(info.value)
    # said to be a class of its own, it is one
    d = load_data(str(path), task="classification")
    assert d.info.classes == ["0", "1", marker]
    # text labels with an 'NA' among them are labels (an 'NA' may be North America): unchanged
    words = tmp_path / "words.csv"
    words.write_text("f1,y\n" + "".join(f"{i * 0.5},{'NA' if i % 7 == 3 else 'ab'[i % 2]}\n" for i in range(30)))
    assert load_data(str(words)).info.classes == ["NA", "a", "b"]
