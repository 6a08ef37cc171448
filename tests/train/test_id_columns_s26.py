"""Columns that are not features in a CSV a user brings (session 26).

- pandas' index, as ``df.to_csv(path)`` writes it (a first column with no name, a distinct whole number per row), is
  left out and said; it used to train as a feature.
- a column that reads as a row ID (``customer_id``, ``PassengerId``, or row numbers without a gap) is named in the log
  with the ``drop=`` that leaves it out; it still trains (an ID is never guessed away).
- a feature holding one value on the train split is named in the log (and, where it differs on the validation split,
  that it meets the model unscaled there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lrkit
from lrkit.train.data import load_data


def _frame(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    return a, b, (a + b > 0).astype(int)


def _write(path: Path, header: str, rows: list[str]) -> str:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return str(path)


@pytest.mark.parametrize("first", ["", "Unnamed: 0"])
@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_pandas_index_column_is_left_out_and_said(tmp_path: Path, first: str, order: str) -> None:
    a, b, y = _frame()
    idx = np.arange(len(a)) if order == "sorted" else np.random.default_rng(1).permutation(len(a)) + 500
    path = _write(tmp_path / "t.csv", f"{first},a,b,label", [f"{i},{p},{q},{c}" for i, p, q, c in zip(idx, a, b, y)])
    data = load_data(path, val=0.25, seed=0)
    assert data.info.features == ["a", "b"]
    assert data.info.input_shape == (2,)
    assert any("as pandas writes its index" in n and "left out" in n for n in data.info.notes), data.info.notes
    # the same table without the index column gives the same data, bit for bit
    plain = load_data(_write(tmp_path / "p.csv", "a,b,label", [f"{p},{q},{c}" for p, q, c in zip(a, b, y)]),
                      val=0.25, seed=0)
    for got, want in ((data.train, plain.train), (data.val, plain.val)):
        assert all((u == v).all() for u, v in zip(got[:], want[:], strict=True))


@pytest.mark.parametrize("cell", ["1.5", "x", "7"])
def test_an_unnamed_column_that_is_no_index_stays(tmp_path: Path, cell: str) -> None:
    # not a distinct whole number per row (a fraction, text, a repeated value): not pandas' index
    a, b, y = _frame()
    rows = [f"{cell if i == 3 else (i if cell != '7' else 7)},{p},{q},{c}" for i, (p, q, c) in enumerate(zip(a, b, y))]
    path = _write(tmp_path / "t.csv", ",a,b,label", rows)
    if cell == "x":
        with pytest.raises(ValueError, match="non-numeric"):
            load_data(path, val=0.25, seed=0)
        return
    data = load_data(path, val=0.25, seed=0)
    assert data.info.features == ["", "a", "b"]
    assert not any("pandas writes its index" in n for n in data.info.notes)


@pytest.mark.parametrize(("name", "ids"), [("customer_id", "shuffled"), ("PassengerId", "shuffled"),
                                           ("row", "range"), ("ID", "shuffled")])
def test_an_id_like_column_is_named_with_its_drop(tmp_path: Path, name: str, ids: str) -> None:
    a, b, y = _frame()
    rng = np.random.default_rng(2)
    col = rng.permutation(len(a)) + 1 if ids == "range" else rng.choice(10**6, len(a), replace=False)
    path = _write(tmp_path / "t.csv", f"{name},a,b,label", [f"{i},{p},{q},{c}" for i, p, q, c in zip(col, a, b, y)])
    data = load_data(path, val=0.25, seed=0)
    assert data.info.features == [name, "a", "b"]  # said, not dropped
    assert any(f"column {name!r} holds a distinct whole number on every row" in n and f"drop={name!r}" in n
               for n in data.info.notes), data.info.notes
    dropped = load_data(path, val=0.25, seed=0, drop=[name])
    assert dropped.info.features == ["a", "b"]
    assert not any("distinct whole number" in n for n in dropped.info.notes)


def test_ordinary_integer_features_get_no_id_note(tmp_path: Path) -> None:
    a, _, y = _frame()
    rng = np.random.default_rng(3)
    age = rng.integers(18, 90, len(a))  # repeats
    income = rng.choice(10**6, len(a), replace=False)  # distinct, but neither named nor numbered like an ID
    path = _write(tmp_path / "t.csv", "age,income,a,label",
                  [f"{g},{m},{p},{c}" for g, m, p, c in zip(age, income, a, y)])
    assert not any("distinct whole number" in n for n in load_data(path, val=0.25, seed=0).info.notes)


def test_a_column_constant_on_the_train_split_is_named(tmp_path: Path) -> None:
    a, b, y = _frame()
    path = _write(tmp_path / "t.csv", "a,b,version,label", [f"{p},{q},3,{c}" for p, q, c in zip(a, b, y)])
    notes = load_data(path, val=0.25, seed=0).info.notes
    assert any("column 'version' holds one value on the train split" in n and "drop='version'" in n
               and "validation split" not in n for n in notes), notes
    plain = _write(tmp_path / "p.csv", "a,b,label", [f"{p},{q},{c}" for p, q, c in zip(a, b, y)])
    assert not any("one value" in n for n in load_data(plain, val=0.25, seed=0).info.notes)


def test_a_column_constant_on_train_but_not_on_val_says_so(tmp_path: Path) -> None:
    a, _, y = _frame()
    tr = _write(tmp_path / "tr.csv", "a,flag,label", [f"{p},0,{c}" for p, c in zip(a, y)])
    va = _write(tmp_path / "va.csv", "a,flag,label", [f"{p},{i % 2 * 5000},{c}" for i, (p, c) in enumerate(zip(a, y))])
    (tmp_path / "d.yaml").write_text(f"train: {tr}\nval: {va}\n")
    notes = load_data(str(tmp_path / "d.yaml"), val=0.25, seed=0).info.notes
    assert any("column 'flag' holds one value on the train split" in n and "'flag' differs on the validation split"
               in n for n in notes), notes


def test_npz_constant_features_are_named_by_index(tmp_path: Path) -> None:
    a, b, y = _frame()
    x = np.stack([a, np.ones_like(a), b, np.zeros_like(a)], 1)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    notes = load_data(str(tmp_path / "d.npz"), val=0.25, seed=0).info.notes
    assert any("features 1, 3 (0-based) of x hold one value on the train split" in n for n in notes), notes


def test_a_pandas_index_csv_trains_and_predicts(tmp_path: Path) -> None:
    a, b, y = _frame(120)
    path = _write(tmp_path / "t.csv", ",a,b,label", [f"{i},{p},{q},{c}" for i, (p, q, c) in enumerate(zip(a, b, y))])
    r = lrkit.train("mlp", data=path, epochs=1, verbose=False, plots=False, project=tmp_path)
    run = lrkit.load_run(r.run_dir)
    assert run.features == ["a", "b"]
    assert len(run.predict(np.stack([a[:4], b[:4]], 1).astype(np.float32))) == 4


def test_a_year_axis_gets_no_id_note(tmp_path: Path) -> None:
    # distinct whole numbers without a gap, but not the row numbers (review s26c: a yearly series' year read as an ID)
    a, _, y = _frame()
    path = _write(tmp_path / "t.csv", "year,a,label", [f"{1950 + i},{p},{c}" for i, (p, c) in enumerate(zip(a, y))])
    assert not any("distinct whole number" in n for n in load_data(path, val=0.25, seed=0).info.notes)


def test_prebatched_one_hot_tensor_batches_read_as_classification(tmp_path: Path) -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 16, 4, generator=g)
    labels = torch.randint(0, 3, (6, 16), generator=g)
    y = torch.nn.functional.one_hot(labels, 3).float()  # (batches, B, K): each item a batch of one-hot rows
    data = (DataLoader(TensorDataset(x, y), batch_size=None), DataLoader(TensorDataset(x[:2], y[:2]), batch_size=None))
    r = lrkit.train("mlp", data=data, epochs=1, verbose=False, plots=False, project=tmp_path)
    assert r.task == "classification"  # as the same rows un-batched are (review s26c: it trained as regression)


def test_predict_on_a_spreadsheet_name_says_read_excel(tmp_path: Path) -> None:
    a, b, y = _frame()
    path = _write(tmp_path / "t.csv", "a,b,label", [f"{p},{q},{c}" for p, q, c in zip(a, b, y)])
    run = lrkit.load_run(lrkit.train("mlp", data=path, epochs=1, verbose=False, plots=False,
                                     project=tmp_path).run_dir)
    sheet = tmp_path / "rows.xlsx"
    sheet.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ValueError, match=r"pandas\.read_excel\('.*rows\.xlsx'\)"):
        run.predict(str(sheet))
