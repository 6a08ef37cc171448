"""Session 25f: a user's walk through lrkit.train's data= and model= inputs (dict samples with a built-in model,
an NPZ column index beside x/y arrays, a True/False CSV column, a factory spelt with a dot)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import lrkit
from lrkit.train.data import count_classes, load_data
from lrkit.train.models import build_model

X = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


class _Dicts(Dataset):
    """Samples as {"x": ..., "y": ...} (the dict layout the README says infers its task as (x, y) pairs do)."""

    def __init__(self, keys: tuple[str, str] = ("x", "y")) -> None:
        self.keys = keys

    def __len__(self) -> int:
        return len(X)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {self.keys[0]: X[i], self.keys[1]: Y[i]}


@pytest.mark.parametrize("data", [_Dicts(), DataLoader(_Dicts(), batch_size=8, drop_last=True),
                                  (_Dicts(), _Dicts())], ids=["dataset", "loader", "pair"])
def test_dict_samples_train_a_builtin_model(tmp_path: Path, data) -> None:
    # was KeyError: 1 from count_classes, which indexed every sample as a tuple
    r = lrkit.train(data=data, model="mlp", epochs=1, lr0=0.01, project=tmp_path, verbose=False)
    assert r.best_metric is not None
    assert count_classes(load_data(_Dicts(), seed=0, val=0.2)) == 2  # read through the dicts' "y"


def test_dict_samples_of_other_keys_with_task_say_why(tmp_path: Path) -> None:
    # was KeyError: 1; now the keys and the accepted names, and no run folder
    with pytest.raises(ValueError, match=r"class labels of data= .*keys \['a', 'b'\]") as e:
        lrkit.train(data=_Dicts(("a", "b")), task="classification", epochs=1, lr0=0.01, project=tmp_path,
                    verbose=False)
    assert "KeyError" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_npz_column_index_beside_x_and_y_is_an_error(tmp_path: Path) -> None:
    # target=1 with arrays x, y (and z) was silently ignored: the run trained on y whatever the index said
    p = tmp_path / "d.npz"
    np.savez(p, x=X.numpy(), y=Y.numpy(), z=X.numpy())
    with pytest.raises(ValueError, match=r"target=1 is a column index.*\['x', 'y', 'z'\].*target=y"):
        load_data(str(p), target=1)
    assert load_data(str(p), target="y").info.num_outputs == 2  # an array's name still works
    table = tmp_path / "t.npz"
    np.savez(table, t=np.c_[X.numpy(), Y.numpy()])
    assert load_data(str(table), target=0).info.task == "regression"  # a column index of one table still works


def test_true_false_feature_column_names_the_fix(tmp_path: Path) -> None:
    p = tmp_path / "bools.csv"
    p.write_text("a,flag,y\n" + "".join(f"{i},{'True' if i % 3 else 'False'},{i % 2}\n" for i in range(12)))
    with pytest.raises(ValueError, match=r"'flag' holds 'False' on line 2, a True/False column.*astype\(int\)"):
        load_data(str(p))


@pytest.mark.parametrize(("spec", "hint"), [("mymodels.make", "model='mymodels:make'"),
                                            ("mymodels.py", "model='mymodels.py:make'")])
def test_factory_spelt_without_its_colon_gets_the_spelling(spec: str, hint: str) -> None:
    info = load_data("iris").info
    with pytest.raises(ValueError, match=f"unknown model '{spec}'.*{hint}"):
        build_model(spec, info)
    with pytest.raises(ValueError, match=r"Did you mean 'mlp'\? Valid: [^;]*$"):  # a near built-in: no colon hint
        build_model("m.lp", info)


@pytest.mark.parametrize("marker", ["NA", "?", "#N/A"])
def test_missing_value_marker_in_a_feature_column_is_named_as_missing(tmp_path: Path, marker: str) -> None:
    # was "a non-numeric value 'NA' ...; encode it as numbers (a text category: ...)"
    p = tmp_path / "na.csv"
    p.write_text("a,b,y\n" + "".join(f"{i},{marker if i in (3, 7) else i},{i % 2}\n" for i in range(12)))
    pattern = rf"'b' holds '{re.escape(marker)}' on line 5, a missing value \(2 cell\(s\).*dropna"
    with pytest.raises(ValueError, match=pattern):
        load_data(str(p))
    p.write_text("a,b,y\n" + "".join(f"{i},{marker if i % 2 else 'red'},{i % 2}\n" for i in range(12)))
    with pytest.raises(ValueError, match="non-numeric value"):  # beside text categories: a text column as before
        load_data(str(p))


def test_task_regression_on_integer_targets_sizes_a_builtin(tmp_path: Path) -> None:
    # integer targets (a count, a rating) with task=regression: was "cannot size model='mlp' ... (unknown input
    # shape or output count)"
    counts = (X[:, 0] * 3).round().long()
    data = load_data(torch.utils.data.TensorDataset(X, counts), seed=0, val=0.2, task="regression")
    assert (data.info.task, data.info.num_outputs) == ("regression", 1)
    r = lrkit.train(data=torch.utils.data.TensorDataset(X, counts), task="regression", model="mlp", epochs=1,
                    lr0=0.01, project=tmp_path, verbose=False)
    assert r.best_metric is not None and np.isfinite(r.best_metric)


def test_task_regression_on_a_text_label_column_says_it_holds_no_numbers(tmp_path: Path) -> None:
    # was "... 12 cell(s), first 'no' on line 2; drop or fill in those rows (missing values?) ..."
    p = tmp_path / "buy.csv"
    p.write_text("a,buy\n" + "".join(f"{i},{'yes' if i % 2 else 'no'}\n" for i in range(12)))
    with pytest.raises(ValueError, match=r"task='regression' needs a numeric target, but .*'buy' holds only text"):
        load_data(str(p), task="regression")
    assert load_data(str(p)).info.classes == ["no", "yes"]  # without task=: class labels, sorted


def test_a_download_name_or_url_says_nothing_is_downloaded() -> None:
    # Ultralytics' data=mnist / data=cifar10 download the dataset; lrkit's was a bare "unknown dataset" / "no such file"
    with pytest.raises(ValueError, match=r"'CIFAR-10'.*downloads nothing.*torchvision\.datasets\.CIFAR10\("):
        load_data("CIFAR-10")
    with pytest.raises(ValueError, match=r"'https://example\.org/a\.csv' is a URL: lrkit\.train downloads nothing"):
        load_data("https://example.org/a.csv")
    with pytest.raises(ValueError, match=r"Did you mean 'digits'\? Valid: [^;]*$"):  # a near built-in: no hint
        load_data("digitz")


def test_drop_of_a_column_name_with_a_comma_says_to_give_a_list(tmp_path: Path) -> None:
    # drop="id,size, m2" splits 'size, m2' at its comma; the did-you-mean offered 'size, m2', which it cannot spell
    p = tmp_path / "flats.csv"
    p.write_text('id,"size, m2",y\n' + "".join(f"{i},{i * 2.5},{i % 2}\n" for i in range(12)))
    with pytest.raises(ValueError, match=r"drop='size' is not a column\. \('size, m2' holds a comma.*give drop as a "
                                         r"list.*Columns: id, 'size, m2', y$"):
        load_data(str(p), drop="id,size, m2")
    assert load_data(str(p), drop=["size, m2"]).info.input_shape == (1,)
    with pytest.raises(ValueError, match=r"drop='ID' is not a column\. Did you mean 'id'\?"):
        load_data(str(p), drop="ID")


def test_a_text_file_that_is_not_utf8_gets_no_spreadsheet_advice(tmp_path: Path) -> None:
    p = tmp_path / "book.txt"
    p.write_bytes("café ".encode("latin-1") * 50)
    with pytest.raises(ValueError, match=r"is not UTF-8 \(byte 0xe9 on line 1\); save it as UTF-8 \(iconv") as e:
        load_data(str(p), seq_len=8)
    assert "spreadsheet" not in str(e.value)
    (tmp_path / "t.csv").write_bytes(b"a,y\n" + "".join(f"{i},é{i % 2}\n" for i in range(6)).encode("latin-1"))
    with pytest.raises(ValueError, match="spreadsheets: 'CSV UTF-8'"):  # a CSV keeps it
        load_data(str(tmp_path / "t.csv"))


def test_npz_arrays_left_out_are_named_in_the_log(tmp_path: Path) -> None:
    # np.savez(f, x=..., y=..., x_test=...): x_test was left out without a word
    p = tmp_path / "d.npz"
    np.savez(p, x=X.numpy(), y=Y.numpy(), x_test=X.numpy()[:5])
    assert load_data(str(p)).info.notes == [
        "d.npz: arrays ['x_test'] are not used (the features are 'x', the target 'y')"]
    np.savez(p, x=X.numpy(), y=Y.numpy())
    assert load_data(str(p)).info.notes == []
