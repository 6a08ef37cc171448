"""Session 36b: data loading bugs of lrkit.train — error messages pointing at the wrong line of a CSV, files read as
something they are not, and splits that silently score the model on classes it never trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lrkit.train.data import load_data

# each a file's bytes, what load_data said before (in the comment) and what it says now
_REFUSED = [
    # blank lines are skipped; the error named the row's position among the non-blank rows ("line 4": the 6th line)
    ("blank.csv", b"a,b,y\n\n1,2,0\n\n3,4,1\n5,x,0\n7,8,1\n", r"'x' on line 6;"),
    ("blank.csv", b"a,b,y\n\n1,2,0\n\n3,4,1\n5,6,0\n7,8,1,3\n", r"line 7 has 4 fields, the header has 3"),
    # NUL bytes that are not UTF-16: a binary file, its line named
    ("nul.csv", b"a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n\x00\x00\x00", r"nul\.csv holds NUL bytes.*line 6.*UTF-8"),
    ("book.txt", ("hello world " * 30).encode("utf-16-le"),
     r"NUL bytes: it looks like UTF-16 .*iconv -f utf-16le -t utf-8"),
    # R's write.table() and aligned exports: read as one column, the error was "no feature columns besides the
    # target 'a b y'"
    ("sp.csv", b"a b y\n1 2 0\n3  4 1\n5 6 0\n7 8 1\n",
     r"sp\.csv: the header 'a b y' is one field, but it and every row split into 3 fields at spaces: the file looks "
     r"space-separated.*sep=r'\\s\+'"),
    # np.savetxt(path, table): spaces and no header
    ("saved.csv", b"0.0 0.0\n1.0 1.0\n2.0 0.0\n3.0 1.0\n4.0 0.0\n5.0 1.0\n",
     r"looks space-separated.*no header row.*header=None"),
    # the rows do not split at spaces as the header does: the old error stands
    ("one.csv", b"sepal length\n1.5\n2.5\n3.5\n", r"no feature columns besides the target 'sepal length'"),
]


@pytest.mark.parametrize(("name", "content", "said"), _REFUSED)
def test_a_file_is_refused_with_the_line_or_the_format_it_has(tmp_path: Path, name: str, content: bytes,
                                                              said: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=said):
        load_data(str(path), seq_len=8) if name.endswith(".txt") else load_data(str(path))


# ---------------------------------------------------------------- CSV line numbers: the file's own lines
def test_csv_target_errors_name_the_file_line_after_a_multiline_cell(tmp_path: Path) -> None:
    # a quoted cell over two lines shifts every later line by one
    path = tmp_path / "ml.csv"
    head = 'a,note,y\n1,"multi\nline",0.5\n3,"b",1.5\n5,"c",2.5\n'
    for row, said in [('7,"d",NA', r"'NA' on line 6"), ('7,"d",', r"empty on line 6 "),
                      ('7,"d",nan', r"first on line 6;"), ('inf,"d",1', r"column 'a' on line 6 ")]:
        path.write_text(f'{head}{row}\n8,"e",3.5\n')
        with pytest.raises(ValueError, match=said):
            load_data(str(path), drop="note")


# ---------------------------------------------------------------- classes the train split of one file lacks
def test_split_of_one_csv_names_val_classes_the_train_split_lacks(tmp_path: Path) -> None:
    # a rare class that the seeded split puts wholly into val: scored, never trained on, always wrong — said for a
    # data YAML's val file, silent for the split of one file
    rng = np.random.default_rng(0)
    labels = [i % 2 for i in range(40)] + list(range(2, 12))  # ten classes of one sample each
    path = tmp_path / "rare.csv"
    path.write_text("a,b,y\n" + "".join(f"{rng.normal():.4f},{rng.normal():.4f},{c}\n" for c in labels))
    d = load_data(str(path), val=0.5, seed=0)
    unseen = sorted(set(d.val.tensors[1].tolist()) - set(d.train.tensors[1].tolist()))
    assert unseen  # (the seed puts some of the one-sample classes into val)
    note = next(n for n in d.info.notes if "the train split lacks" in n)
    assert note.startswith(f"rare.csv: {len(unseen)} val labels the train split lacks: ")
    for c in unseen:
        assert repr(d.info.classes[c]) in note or "..." in note
    # a split in which every val class is trained on says nothing
    path.write_text("a,b,y\n" + "".join(f"{rng.normal():.4f},{rng.normal():.4f},{i % 2}\n" for i in range(40)))
    assert not [n for n in load_data(str(path)).info.notes if "lacks" in n]


def test_task_classification_on_a_continuous_target_says_so(tmp_path: Path) -> None:
    # task=classification on prices: one class per distinct price, most of the val ones never trained on — silent
    rng = np.random.default_rng(1)
    path = tmp_path / "price.npz"
    np.savez(path, x=rng.normal(size=(100, 3)), y=rng.normal(size=100) * 100)
    d = load_data(str(path), task="classification")
    assert d.info.num_outputs == 100
    note = next(n for n in d.info.notes if "the train split lacks" in n)
    assert "task=classification makes each of the 100 distinct values of the target a class" in note
    assert "task=regression" in note


# ---------------------------------------------------------------- NUL bytes: UTF-16 without a byte-order mark
def test_csv_in_utf16_without_bom_is_named_as_such(tmp_path: Path) -> None:
    # every other byte NUL: read as UTF-8 it said "line 6 has 1 fields, the header has 3"
    path = tmp_path / "u16.csv"
    path.write_bytes("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n".encode("utf-16-le"))
    with pytest.raises(ValueError, match=r"u16\.csv holds NUL bytes: it looks like UTF-16 .*without a byte-order "
                                         r"mark.*iconv -f utf-16le -t utf-8"):
        load_data(str(path))
    path.write_bytes("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n".encode("utf-16-be"))
    with pytest.raises(ValueError, match=r"iconv -f utf-16be -t utf-8"):
        load_data(str(path))


# ---------------------------------------------------------------- more than 20 class labels in a CSV
def test_csv_of_more_than_20_labels_numbered_from_0_says_it_trains_a_regression(tmp_path: Path) -> None:
    # 30 classes 0..29 in a CSV (read as numbers) silently trained a regression, where an NPZ's int64 labels classify
    rng = np.random.default_rng(0)
    path = tmp_path / "many.csv"
    path.write_text("a,b,label\n" + "".join(f"{rng.normal():.4f},{rng.normal():.4f},{i % 30}\n" for i in range(300)))
    d = load_data(str(path))
    assert d.info.task == "regression"
    note = next(n for n in d.info.notes if "whole numbers" in n)
    assert note == ("many.csv: the target 'label' holds 30 distinct whole numbers, every one of 0..29: trained as a "
                    "regression (a count, a score), as a whole-number target of more than 20 values is; if they are "
                    "class labels, pass task=classification")
    assert load_data(str(path), task="classification").info.num_outputs == 30
    # a count with gaps, or a measurement, says nothing
    path.write_text("a,label\n" + "".join(f"{rng.normal():.4f},{3 * i}\n" for i in range(40)))
    assert not [n for n in load_data(str(path)).info.notes if "whole numbers" in n]


def test_npz_of_more_than_20_int_labels_classifies_without_the_note(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "many.npz"
    np.savez(path, x=rng.normal(size=(300, 2)), y=np.arange(300) % 30)
    d = load_data(str(path))
    assert d.info.task == "classification" and d.info.num_outputs == 30
    assert not [n for n in d.info.notes if "whole numbers" in n]
    np.savez(path, x=rng.normal(size=(300, 2)), y=(np.arange(300) % 30).astype(np.float64))
    assert [n for n in load_data(str(path)).info.notes if "whole numbers" in n]


def test_data_yaml_pair_of_more_than_20_labels_gets_the_note(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name, n in (("tr.csv", 300), ("va.csv", 60)):
        (tmp_path / name).write_text("a,y\n" + "".join(f"{rng.normal():.4f},{i % 30}\n" for i in range(n)))
    (tmp_path / "d.yaml").write_text("train: tr.csv\nval: va.csv\n")
    d = load_data(str(tmp_path / "d.yaml"))
    assert d.info.task == "regression"
    assert [n for n in d.info.notes if n.startswith("d.yaml: the target 'y' holds 30 distinct whole numbers")]


# ---------------------------------------------------------------- NPZ labels saved as bytes
def test_npz_bytes_labels_are_text_classes(tmp_path: Path) -> None:
    # np.array([b"cat", ...]) (h5py's strings): the classes were saved, and predicted, as "b'cat'"
    path = tmp_path / "b.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(20, 2)), y=np.array([b"cat", b"dog"] * 10))
    d = load_data(str(path))
    assert d.info.classes == ["cat", "dog"]
    assert d.info.preprocess_state()["classes"] == ["cat", "dog"]


# ---------------------------------------------------------------- data YAML
@pytest.mark.parametrize("written", ["Regression", " regression", "REGRESSION"])
def test_data_yaml_task_in_any_case(tmp_path: Path, written: Any) -> None:
    # task=Regression is read in any case on the command line and in Python; in a data YAML it was an error
    (tmp_path / "tr.csv").write_text("a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(12)))
    (tmp_path / "d.yaml").write_text(f"train: tr.csv\ntask: '{written}'\n")
    assert load_data(str(tmp_path / "d.yaml")).info.task == "regression"


@pytest.mark.parametrize("written", ["'0.3'", "30%", "'.3'"])
def test_data_yaml_val_fraction_as_text_says_how_to_write_it(tmp_path: Path, written: Any) -> None:
    # val: '0.3' (quoted) was looked up as a file: "val='0.3' -> .../0.3: no such file"
    (tmp_path / "tr.csv").write_text("a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(12)))
    (tmp_path / "d.yaml").write_text(f"train: tr.csv\nval: {written}\n")
    with pytest.raises(ValueError, match=r"d\.yaml: val=.* is text, not a fraction: write val: 0\.3 \(unquoted"):
        load_data(str(tmp_path / "d.yaml"))


def test_data_yaml_val_file_that_is_the_train_file_is_said(tmp_path: Path) -> None:
    # validating on the training file scores memorisation: said in the log, not silent
    (tmp_path / "tr.csv").write_text("a,y\n" + "".join(f"{i * 0.7 % 1:.3f},{i % 3}\n" for i in range(12)))
    (tmp_path / "d.yaml").write_text("train: tr.csv\nval: ./tr.csv\n")
    d = load_data(str(tmp_path / "d.yaml"))
    assert [n for n in d.info.notes if n.startswith("d.yaml: val names the train file itself (tr.csv)")]


# ---------------------------------------------------------------- data= of blank text
@pytest.mark.parametrize("data", ["", "  "])
def test_blank_data_name_is_named_so(data: str) -> None:
    # data='' was "a directory" (Path('') is '.'), data='  ' an "unknown dataset '  '"
    with pytest.raises(ValueError, match=r"data=.* is blank: give a built-in name \(digits, "):
        load_data(data)


@pytest.mark.parametrize("drop", [3, 0, [0], ("a", 1)])
def test_load_data_drop_of_no_names_is_a_clear_error(tmp_path: Path, drop: Any) -> None:
    # drop=3 raised "TypeError: 'int' object is not iterable"; drop=0 was dropped without a word
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    with pytest.raises(ValueError, match=r"drop=.* must be column names: one name, a comma-separated list"):
        load_data(str(path), drop=drop)
