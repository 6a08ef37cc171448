"""Session 25d: a user walk of what ``lrkit.train`` leaves behind — a damaged checkpoint (empty, truncated, not a
torch file) named in plain words on resume and in ``load_run`` (with the whole sibling checkpoint offered), raw rows
with a missing value (NaN, ``None``, a short ``csv.DictReader`` line) refused instead of predicted as NaN or as the
first class, an empty batch named, and ``lrkit predict`` on an ``.npy`` that is not one."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app
from lrkit.train import run as _run

QUIET = {"verbose": False, "plots": False}


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier trained on a CSV with an ID column and string labels (standardised features)."""
    d = tmp_path_factory.mktemp("s25d")
    rng = np.random.default_rng(0)
    with open(d / "cls.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "sqft", "rooms", "kind"])
        for i in range(60):
            sqft, rooms = rng.uniform(500, 3000), int(rng.integers(1, 6))
            w.writerow([f"H{i}", f"{sqft:.1f}", rooms, "big" if sqft > 1800 else "small"])
    r = lrkit.train(data=str(d / "cls.csv"), target="kind", drop="id", model="linear", epochs=1, lr0=0.01,
                    project=str(d / "runs"), **QUIET)
    return r.run_dir


@pytest.fixture(scope="module")
def reg_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("s25d_reg")
    r = lrkit.train(data="synthetic-regression", model="linear", epochs=1, lr0=0.01, project=str(d), **QUIET)
    return r.run_dir


# ------------------------------------------------------------------------------------------------ damaged files
def test_an_empty_last_pt_is_named_not_an_index_error(tmp_path: Path) -> None:
    empty = tmp_path / "last.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"it is empty \(0 bytes\), so the run cannot resume from it"):
        _run.load_checkpoint(empty)


def test_a_truncated_last_pt_is_named_on_resume_with_the_way_on(csv_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "cut"
    shutil.copytree(csv_run, run)
    whole = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"is truncated or damaged .*cannot resume from it; its best\.pt, if whole, "
                                         r"still loads .*cfg=.*args\.yaml resume=false") as e:
        lrkit.train(resume=str(run), epochs=2, **QUIET)
    assert "miniz" not in str(e.value) and "central directory" not in str(e.value)


def test_a_file_that_is_no_torch_file_is_named_on_resume(tmp_path: Path) -> None:
    bad = tmp_path / "last.pt"
    bad.write_text("epochs: 3\n")
    with pytest.raises(ValueError, match=r"it is not a torch \.pt file") as e:
        _run.load_checkpoint(bad)
    assert "weights_only" not in str(e.value)  # torch's advice to load it unsafely


def test_load_run_names_a_truncated_best_pt_and_offers_last_pt(csv_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "cut"
    shutil.copytree(csv_run, run)
    whole = (run / "best.pt").read_bytes()
    (run / "best.pt").write_bytes(whole[:-100])
    with pytest.raises(ValueError, match=r"best\.pt cannot be read: it is truncated or damaged .*"
                                         r"the run's last\.pt may be whole: load_run\(.*which='last'\)") as e:
        lrkit.load_run(run)
    assert "not a torch .pt file" not in str(e.value)
    assert lrkit.load_run(run, which="last").epoch == 1  # the way out works


# ------------------------------------------------------------------------------------------------ raw rows
def test_a_missing_feature_is_refused_not_predicted_as_the_first_class(csv_run: Path) -> None:
    run = lrkit.load_run(csv_run)
    with pytest.raises(ValueError, match=r"x's row 1 \(counting from 0\) holds nan in column 'rooms'; the model "
                                         r"takes finite numbers"):
        run.predict({"sqft": [1200.0, 2500.0], "rooms": [3, float("nan")]})
    with pytest.raises(ValueError, match=r"holds inf in column 'sqft'"):
        run.predict([[float("inf"), 3]])
    assert len(run.predict([[1200.0, 3], [2500.0, 2]])) == 2  # finite rows still predict


def test_a_short_csv_line_is_named_not_read_as_nan(csv_run: Path) -> None:
    rows = list(csv.DictReader(io.StringIO("id,sqft,rooms\nA,1200,3\nB,2500\n")))
    with pytest.raises(ValueError, match=r"x's column 'rooms' is missing in row 1 \(counting from 0: None"):
        lrkit.load_run(csv_run).predict(rows)


def test_a_regression_run_refuses_nan_rather_than_answering_nan(reg_run: Path) -> None:
    run = lrkit.load_run(reg_run)
    x = torch.zeros(2, run.input_shape[0], dtype=torch.float64)
    x[0, 2] = float("nan")
    with pytest.raises(ValueError, match=r"x's row 0 \(counting from 0\) holds nan in value 2 \(counting from 0\)"):
        run.predict(x)


@pytest.mark.parametrize("empty", [[], np.zeros((0, 2)), {"sqft": [], "rooms": []}])
def test_no_rows_is_named_not_a_numpy_reshape_error(csv_run: Path, empty: object) -> None:
    with pytest.raises(ValueError, match=r"x holds no samples \(x of shape \(0,(| 2)\)\); give at least one row of "
                                         r"the 2 values the run was trained on \(sqft, rooms\)"):
        lrkit.load_run(csv_run).predict(empty)


# ------------------------------------------------------------------------------------------------ lrkit predict
def test_lrkit_predict_refuses_an_npy_holding_nan(csv_run: Path, tmp_path: Path) -> None:
    src = tmp_path / "rows.npy"
    np.save(src, np.array([[1200.0, 3.0], [np.nan, 2.0]]))
    res = CliRunner().invoke(build_app(), ["predict", str(csv_run), str(src)])
    assert res.exit_code == 2, res.output
    assert "row 1 (counting from 0) holds nan in column 'sqft'" in res.output
    assert "kind" not in res.stdout.splitlines()[:1]  # no predictions were written


@pytest.mark.parametrize(("suffix", "body", "said"), [
    (".npy", b"garbage", "it is not an .npy file (write one with np.save(path, rows))"),
    (".npy", b"", "it is empty"),
    (".npz", b"garbage", "it is not an .npz (a zip of arrays) file"),
])
def test_lrkit_predict_names_a_file_that_is_no_numpy_array(csv_run: Path, tmp_path: Path, suffix: str, body: bytes,
                                                         said: str) -> None:
    src = tmp_path / f"rows{suffix}"
    src.write_bytes(body)
    res = CliRunner().invoke(build_app(), ["predict", str(csv_run), str(src)])
    assert res.exit_code == 2, res.output
    assert said in res.output and "pickled" not in res.output


def test_lrkit_predict_refuses_a_feature_column_named_twice(csv_run: Path, tmp_path: Path) -> None:
    src = tmp_path / "dup.csv"
    src.write_text("sqft,sqft,rooms\n1200,9999,3\n")  # which sqft? the old code took the first without a word
    res = CliRunner().invoke(build_app(), ["predict", str(csv_run), str(src)])
    assert res.exit_code == 2, res.output
    assert "dup.csv has 2 columns named 'sqft' (columns 1, 2), and the run reads 1" in res.output
    src.write_text("rooms,id,sqft\n3,A,1200\n")  # reordered, an extra column: still by name
    res = CliRunner().invoke(build_app(), ["predict", str(csv_run), str(src), "--keep", "id"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1] == f"A,{lrkit.load_run(csv_run).predict([[1200.0, 3.0]])[0]}"
