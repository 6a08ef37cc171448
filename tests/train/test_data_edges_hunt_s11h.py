"""Edge cases of lrkit.train's data= on a user's own small or awkward files (hunt s11h)."""

from __future__ import annotations

import numpy as np
import pytest

from lrkit.train.data import load_data


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- formatted numbers in a target column
@pytest.mark.parametrize(("cell", "shown"), [
    (lambda i: f'"{200 + i},{(i * 137) % 1000:03d}"', "'200,000'"),  # thousands separators (quoted)
    (lambda i: f"${200 + i * 3}.50", "'$200.50'"),  # a currency symbol
    (lambda i: f"{i * 0.7:.1f}%", "'0.0%'"),  # a percent sign
])
def test_formatted_number_target_is_an_error_not_one_class_per_row(tmp_path, cell, shown):
    # a spreadsheet export with formatted prices: read as text, every price became a class of its own (40 classes
    # for 40 rows), and the run trained a 40-way classifier on a regression target
    f = _write(tmp_path / "houses.csv", "sqft,price\n" + "".join(f"{1000 + i * 37},{cell(i)}\n" for i in range(40)))
    with pytest.raises(ValueError, match="formatted number") as e:
        load_data(f)
    msg = str(e.value)
    assert shown in msg and "line 2" in msg and "'price'" in msg and "task=classification" in msg


def test_formatted_number_labels_with_few_values_stay_classes(tmp_path):
    # a handful of discount tiers ("10%", "20%") read as labels is what the numbers would give too: no error
    f = _write(tmp_path / "tiers.csv", "a,tier\n" + "".join(f"{i},{10 * (1 + i % 2)}%\n" for i in range(20)))
    d = load_data(f)
    assert d.info.task == "classification" and d.info.classes == ["10%", "20%"]


def test_formatted_number_target_kept_as_labels_with_task_classification(tmp_path):
    f = _write(tmp_path / "p.csv", "a,price\n" + "".join(f"{i},${100 + i}\n" for i in range(30)))
    d = load_data(f, task="classification")
    assert d.info.num_outputs == 30


def test_formatted_number_feature_cell_gets_a_formatting_hint(tmp_path):
    f = _write(tmp_path / "x.csv", "sqft,price\n" + "".join(f'"{1 + i},{(i * 37) % 1000:03d}",{i * 1.5}\n'
                                                          for i in range(20)))
    with pytest.raises(ValueError, match="formatted number") as e:
        load_data(f)
    assert "'1,000'" in str(e.value) and "line 2" in str(e.value)


# ---------------------------------------------------------------- header-less CSV
def test_headerless_csv_is_an_error_not_a_lost_first_row(tmp_path):
    # np.savetxt writes no header: the first sample became the column names ('5.1', ..., '0') and was lost
    f = _write(tmp_path / "iris.csv", "5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,0\n6.2,3.4,5.4,2.3,2\n5.9,3.0,5.1,1.8,2\n"
                                      "7.0,3.2,4.7,1.4,1\n")
    with pytest.raises(ValueError, match="header") as e:
        load_data(f)
    assert "'5.1,3.5,1.4,0.2,0'" in str(e.value)


@pytest.mark.parametrize("header", ["0,1,2", "1,2,3", "a,b,y", "x1,2024,y"])
def test_numbered_headers_are_still_headers(tmp_path, header):
    # pandas' DataFrame(arr).to_csv(index=False) writes the column numbers 0..n-1 as its header
    f = _write(tmp_path / "d.csv", header + "\n" + "".join(f"{i}.5,{i * 2}.5,{i % 2}\n" for i in range(10)))
    d = load_data(f)
    assert d.info.n_train + d.info.n_val == 10 and d.info.classes == [0, 1]


# ---------------------------------------------------------------- one-hot targets in an NPZ
@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.bool_])
def test_one_hot_npz_target_is_classification(tmp_path, dtype):
    # keras' to_categorical(y) / np.eye(K)[y]: read as a K-output regression (MSE, RMSE) before
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 4
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(40, 3)), y=np.eye(4, dtype=dtype)[labels])
    d = load_data(tmp_path / "d.npz", seed=0)
    assert d.info.task == "classification" and d.info.num_outputs == 4 and d.info.classes == [0, 1, 2, 3]
    x_all = np.concatenate([d.train.tensors[1].numpy(), d.val.tensors[1].numpy()])
    assert sorted(x_all.tolist()) == sorted(labels.tolist())
    assert any("one-hot" in n for n in d.info.notes)


def test_one_hot_npz_target_stays_regression_when_asked(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(20, 3)), y=np.eye(4)[np.arange(20) % 4])
    d = load_data(tmp_path / "d.npz", task="regression")
    assert d.info.task == "regression" and d.info.num_outputs == 4


def test_multi_hot_npz_target_is_not_read_as_one_hot(tmp_path):
    rng = np.random.default_rng(0)
    y = np.eye(3)[np.arange(20) % 3]
    y[0, :] = 1.0  # a multi-label row: not one-hot
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(20, 3)), y=y)
    assert load_data(tmp_path / "d.npz").info.task == "regression"


# ---------------------------------------------------------------- integer regression targets in an NPZ
def test_npz_integer_prices_are_not_one_class_per_value(tmp_path):
    # np.savez(..., y=df.price.values) with an int64 price column: 100 classes for 100 rows before
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "houses.npz", x=rng.normal(size=(100, 3)), y=150_000 + 7 * np.arange(100))
    with pytest.raises(ValueError, match="task=regression") as e:
        load_data(tmp_path / "houses.npz")
    assert "100 distinct" in str(e.value) and "task=classification" in str(e.value)
    assert load_data(tmp_path / "houses.npz", task="regression").info.task == "regression"
    assert load_data(tmp_path / "houses.npz", task="classification").info.num_outputs == 100


@pytest.mark.parametrize("start", [0, 1])
def test_npz_many_integer_classes_numbered_from_0_or_1_stay_classes(tmp_path, start):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(200, 3)), y=start + np.arange(200) % 50)
    d = load_data(tmp_path / "d.npz")
    assert d.info.task == "classification" and d.info.num_outputs == 50


# ---------------------------------------------------------------- seed
def test_load_data_negative_seed_names_the_value(tmp_path):
    with pytest.raises(ValueError, match="seed=-1"):
        load_data("iris", seed=-1)
