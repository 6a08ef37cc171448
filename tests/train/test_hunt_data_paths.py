"""Bug hunt over the data and run-directory paths of lrkit.train: missing-value markers in a numeric target,
files that are not UTF-8, CSVs with too few rows or a trailing separator, YAML booleans as a target, binary files
mistaken for text, and ``~`` in project=/cfg= paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import lrkit
from lrkit._config import TrainConfig, load_yaml_mapping, tokens_to_kwargs
from lrkit.train.data import load_data


def _prices(path: Path, n: int = 60, *, bad: dict[int, str] | None = None) -> Path:
    """A regression CSV: price = 1000 * area (non-integral, many distinct values); ``bad`` replaces some targets."""
    rng = np.random.default_rng(0)
    lines = ["area,price"]
    for i, a in enumerate(rng.uniform(30, 200, n)):
        lines.append(f"{a:.2f},{(bad or {}).get(i, f'{1000 * a + 0.5:.2f}')}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- numeric target + "NA"
@pytest.mark.parametrize("marker", ["NA", "?", "n/a", "-", "missing"])
def test_missing_value_marker_in_a_numeric_target_is_an_error_not_100_classes(tmp_path, marker):
    f = _prices(tmp_path / "houses.csv", bad={5: marker, 9: marker})
    with pytest.raises(ValueError, match=rf"target column 'price'.*{_re(marker)!s}.*line 7") as e:
        load_data(str(f))
    assert "2 " in str(e.value) and "task=" in str(e.value)  # how many cells, and how to say it is classification


def _re(s: str) -> str:
    import re

    return re.escape(repr(s))


def test_numeric_target_with_a_marker_may_still_be_classes_when_asked(tmp_path):
    f = _prices(tmp_path / "houses.csv", bad={5: "NA"})
    d = load_data(str(f), task="classification")  # the user said so: every distinct value is a class
    assert d.info.task == "classification" and "NA" in d.info.classes


def test_mixed_small_integer_and_text_labels_stay_classes(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("a,y\n" + "".join(f"{i},{['0', '1', 'x'][i % 3]}\n" for i in range(30)), encoding="utf-8")
    d = load_data(str(f))
    assert d.info.task == "classification" and d.info.num_outputs == 3


def test_regression_task_with_a_text_cell_names_the_cell(tmp_path):
    f = _prices(tmp_path / "houses.csv", n=10, bad={3: "unknown"})
    with pytest.raises(ValueError, match=r"'unknown'.*line 5"):
        load_data(str(f), task="regression")


def test_data_yaml_numeric_train_target_and_val_file_with_a_marker_is_an_error(tmp_path):
    _prices(tmp_path / "train.csv", n=40)
    _prices(tmp_path / "val.csv", n=10, bad={2: "NA"})
    (tmp_path / "d.yaml").write_text("train: train.csv\nval: val.csv\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"val.csv.*'NA'.*line 4"):
        load_data(str(tmp_path / "d.yaml"))


# ------------------------------------------------------------------------------------------- not UTF-8
def test_latin1_csv_names_the_file_and_line(tmp_path):
    f = tmp_path / "cafe.csv"
    f.write_bytes("a,b,y\n1,2,th\xe9\n3,4,caf\xe9\n5,6,th\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"cafe.csv.*not UTF-8.*line 2"):
        load_data(str(f))


def test_latin1_data_yaml_names_the_file(tmp_path):
    f = tmp_path / "d.yaml"
    f.write_bytes(b"train: caf\xe9.csv\n")
    with pytest.raises(ValueError, match=r"d.yaml.*not UTF-8"):
        load_data(str(f))


def test_latin1_cfg_yaml_names_the_file(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_bytes(b"data: caf\xe9.csv\n")
    with pytest.raises(ValueError, match=r"cfg=.*t.yaml.*not UTF-8"):
        load_yaml_mapping(f)


# ------------------------------------------------------------------------------------------- too few rows
@pytest.mark.parametrize(("text", "found"), [("", "an empty file"), ("a,b,y\n", "only the header row"),
                                             ("a,b,y\n1,2,3\n", "the header row and 1 data row")])
def test_too_few_rows_says_how_many_data_rows_there_are(tmp_path, text, found):
    f = tmp_path / "small.csv"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="at least 2 data rows") as e:
        load_data(str(f))
    assert found in str(e.value)


# ------------------------------------------------------------------------------------------- trailing separator
def test_trailing_separator_column_is_named_as_such(tmp_path):
    f = tmp_path / "excel.csv"
    f.write_text("a,b,y,\n1,2,0,\n3,4,1,\n5,6,0,\n7,8,1,\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"column 4 has no name and no values.*trailing") as e:
        load_data(str(f))
    assert "drop the rows" not in str(e.value)


def test_trailing_separator_with_a_named_target_is_an_error_too(tmp_path):
    f = tmp_path / "excel.csv"
    f.write_text("a,b,y,\n1,2,0,\n3,4,1,\n5,6,0,\n7,8,1,\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"column 4 has no name and no values"):
        load_data(str(f), target="y")


# ------------------------------------------------------------------------------------------- YAML booleans
@pytest.mark.parametrize("word", ["yes", "no", "true", "off"])
def test_data_yaml_target_that_yaml_reads_as_a_bool_is_an_error(tmp_path, word):
    (tmp_path / "t.csv").write_text("no,yes,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(10)),
                                    encoding="utf-8")
    (tmp_path / "d.yaml").write_text(f"train: t.csv\ntarget: {word}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"target={word in ('yes', 'true')}.*quote"):
        load_data(str(tmp_path / "d.yaml"))


def test_data_yaml_quoted_target_works(tmp_path):
    (tmp_path / "t.csv").write_text("no,yes,y\n" + "".join(f"{i * 0.5},{i % 3},{i % 2}\n" for i in range(10)),
                                    encoding="utf-8")
    (tmp_path / "d.yaml").write_text("train: t.csv\ntarget: 'yes'\n", encoding="utf-8")
    d = load_data(str(tmp_path / "d.yaml"))
    assert d.info.num_outputs == 3  # the column named "yes" (0, 1, 2), not column 1 by a bool


# ------------------------------------------------------------------------------------------- binary files
@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet", ".pt", ".pkl", ".xlsx"])
def test_structured_or_binary_suffixes_are_not_read_as_text(tmp_path, suffix):
    f = tmp_path / f"data{suffix}"
    f.write_text('{"x": [1, 2], "y": 0}\n' * 200, encoding="utf-8")  # valid UTF-8, so it would train a char LM
    with pytest.raises(ValueError, match=rf"{suffix}.*CSV.*NPZ.*\.txt"):
        load_data(str(f))


def test_npy_suggests_npz(tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"x.npy.*np.savez"):
        load_data(str(f))


def test_text_with_nul_bytes_is_not_a_text_file(tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(b"abc\x00\x00\x01def" * 100)
    with pytest.raises(ValueError, match=r"blob.bin.*NUL"):
        load_data(str(f))


def test_plain_text_with_any_other_suffix_still_trains_a_char_lm(tmp_path):
    f = tmp_path / "README"
    f.write_text("hello world, this is text. " * 20, encoding="utf-8")
    assert load_data(str(f), seq_len=8).info.task == "lm"


# ------------------------------------------------------------------------------------------- ~ in paths
def test_project_tilde_is_expanded_not_a_folder_named_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, project="~/runs", verbose=False, plots=False)
    assert not (work / "~").exists()
    assert r.run_dir == tmp_path / "home" / "runs" / "train" and r.last_checkpoint.is_file()
    # resume=True searches the same folder
    r2 = lrkit.train(resume=True, project="~/runs", epochs=2, verbose=False, plots=False)
    assert r2.run_dir == r.run_dir and r2.epochs_run == 2


def test_cfg_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "t.yaml").write_text("data: iris\nepochs: 3\n", encoding="utf-8")
    assert load_yaml_mapping("~/t.yaml") == {"data": "iris", "epochs": 3}
    assert tokens_to_kwargs(["cfg=~/t.yaml", "epochs=5"]) == {"data": "iris", "epochs": 5}
    assert TrainConfig.from_kwargs(project="~/r").project == os.path.join(str(tmp_path), "r")


# ------------------------------------------------------------------------------------------- models
def test_factory_returning_an_int_says_an_int(tmp_path):
    f = tmp_path / "facs.py"
    f.write_text("def seven():\n    return 7\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"returned an int, not a torch nn.Module"):
        lrkit.train(data="iris", model=f"{f}:seven", epochs=1, project=str(tmp_path / "runs"), verbose=False,
                    plots=False)
    assert not (tmp_path / "runs").exists()
    assert isinstance(torch.nn.Linear(1, 1), torch.nn.Module)


# ------------------------------------------------------------------------------------------- (X, y) arrays
@pytest.mark.parametrize("as_tensor", [False, True])
def test_sklearn_style_features_targets_pair_says_how_to_pass_it(as_tensor):
    x, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 2
    pair = (torch.as_tensor(x), torch.as_tensor(y)) if as_tensor else (x, y)
    with pytest.raises(ValueError, match=r"20 rows each looks like \(features, targets\).*TensorDataset.*np.savez"):
        load_data(pair)


def test_pair_of_arrays_of_different_lengths_keeps_the_plain_message():
    with pytest.raises(ValueError, match=r"train is a ndarray, not a torch Dataset"):
        load_data((np.zeros((20, 3)), np.zeros(5)))


# ------------------------------------------------------------------------------------------- name=
@pytest.mark.parametrize("name", [".", "..", "../elsewhere", "a/../../b"])
def test_name_that_leaves_the_project_is_an_error_before_anything_is_created(tmp_path, name):
    project = tmp_path / "runs"
    with pytest.raises(ValueError, match=r"must name a folder inside project"):
        lrkit.train(data="iris", model="linear", epochs=1, project=str(project), name=name, verbose=False,
                    plots=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["exp", "sweep/lr3", "2024"])
def test_ordinary_names_still_pass(name):
    assert TrainConfig.from_kwargs(name=name).name == name
