"""Predicting with a finished run, as a newcomer does it (session 19l): rows from ``csv.DictReader``, a file name
given to ``run.predict``, a misspelt run folder, Ultralytics' ``weights/best.pt`` path, ``--keep`` for an ID column,
``key=value`` and swapped arguments to ``lrkit predict``, and a did-you-mean for a misspelt feature column.

Each test trains (once per module) a tiny CSV run in a temporary folder and checks the message or the CSV.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app

runner = CliRunner()


def _invoke(*args: str) -> Any:
    return runner.invoke(build_app(), ["predict", *args])


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A CSV classification run (features tenure_months, monthly_charges; target churn = churned/stayed) in
    project/train, a second run project/train2, and a new-customers file with a text ID column."""
    d = tmp_path_factory.mktemp("predictux")
    rng = np.random.default_rng(0)
    n = 60
    tenure = rng.integers(1, 60, n).astype(float)
    charges = rng.normal(70, 20, n)
    label = np.where(tenure < 20, "churned", "stayed")
    data = d / "churn.csv"
    data.write_text("tenure_months,monthly_charges,churn\n" + "".join(
        f"{t:.0f},{c:.2f},{y}\n" for t, c, y in zip(tenure, charges, label)))
    new = d / "new_customers.csv"
    new.write_text("customer_id,tenure_months,monthly_charges\nC001,3,80.5\nC002,50,40.25\nC003,12,99.0\n")
    project = d / "runs"
    kw: dict[str, Any] = {"data": str(data), "epochs": 1, "verbose": False, "plots": False, "seed": 0,
                          "project": str(project)}
    run = lrkit.train(name="train", **kw).run_dir
    lrkit.train(name="train2", **kw)
    return {"dir": d, "run": run, "project": project, "new": new}


# ------------------------------------------------------------------------------ 1. rows as dicts, a file name
def test_a_list_of_dict_rows_is_a_table_of_named_columns(churn: dict[str, Any]) -> None:
    run = lrkit.load_run(churn["run"])
    with open(churn["new"], newline="") as f:
        rows = list(csv.DictReader(f))  # values are strings, and an extra column
    expected = run.predict({"tenure_months": [3, 50, 12], "monthly_charges": [80.5, 40.25, 99.0]})
    assert run.predict(rows) == expected and len(expected) == 3
    assert run.predict(tuple(rows)) == expected
    assert run.inputs(rows).shape == (3, 2)


def test_dict_rows_with_a_bad_cell_or_a_missing_key_are_named(churn: dict[str, Any]) -> None:
    run = lrkit.load_run(churn["run"])
    rows = [{"tenure_months": "3", "monthly_charges": "80"}, {"tenure_months": "x9", "monthly_charges": "1"}]
    with pytest.raises(ValueError, match=r"'tenure_months'.*'x9'.*row 1"):
        run.predict(rows)
    rows = [{"tenure_months": "3", "monthly_charges": "80"}, {"tenure_months": "4"}]
    with pytest.raises(ValueError, match=r"row 1 .*no column 'monthly_charges'"):
        run.predict(rows)


def test_dict_rows_for_a_run_without_column_names_say_so(tmp_path: Path) -> None:
    # (since session 35 a built-in scikit-learn table's run reads its feature_names: generated data has none)
    r = lrkit.train(data="synthetic-classification", epochs=1, verbose=False, plots=False, project=str(tmp_path))
    with pytest.raises(ValueError, match="not trained on a CSV file"):
        lrkit.load_run(r.run_dir).predict([{"a": 1.0}])


@pytest.mark.parametrize("as_path", [False, True])
def test_a_file_name_given_to_predict_points_to_the_ways_that_read_it(churn: dict[str, Any], as_path: bool) -> None:
    run = lrkit.load_run(churn["run"])
    src = churn["new"] if as_path else str(churn["new"])
    with pytest.raises(ValueError) as e:
        run.predict(src)
    text = str(e.value)
    assert "new_customers.csv" in text and "lrkit predict" in text and "read_csv" in text
    assert "DictReader" in text  # the stdlib way too: pandas is not one of lrkit's dependencies


def test_a_word_given_to_predict_is_named_not_a_numpy_error(churn: dict[str, Any]) -> None:
    run = lrkit.load_run(churn["run"])
    with pytest.raises(ValueError, match=r"'hello'.*rows"):
        run.predict("hello")


# ------------------------------------------------------------------------------ 2. a misspelt run folder
def test_misspelt_run_folder_gets_a_did_you_mean(churn: dict[str, Any]) -> None:
    bad = churn["project"] / "trian"
    with pytest.raises(FileNotFoundError) as e:
        lrkit.load_run(bad)
    assert f"Did you mean {str(churn['project'] / 'train')!r}?" in str(e.value)
    res = _invoke(str(bad), str(churn["new"]))
    assert res.exit_code == 2 and "Did you mean" in res.stderr and "load_run:" not in res.stderr


def test_misspelt_project_folder_gets_a_did_you_mean(churn: dict[str, Any]) -> None:
    bad = churn["dir"] / "rusn" / "train"
    with pytest.raises(FileNotFoundError, match="Did you mean") as e:
        lrkit.load_run(bad)
    assert str(churn["project"] / "train") in str(e.value)


def test_unrelated_name_lists_the_runs_beside_it(churn: dict[str, Any]) -> None:
    with pytest.raises(FileNotFoundError) as e:
        lrkit.load_run(churn["project"] / "zzzzzz")
    text = str(e.value)
    assert "Did you mean" not in text
    assert str(churn["project"] / "train") in text and str(churn["project"] / "train2") in text


def test_ultralytics_weights_path_points_to_the_run_folders_best_pt(churn: dict[str, Any]) -> None:
    bad = churn["run"] / "weights" / "best.pt"
    with pytest.raises(FileNotFoundError) as e:
        lrkit.load_run(bad)
    assert str(churn["run"] / "best.pt") in str(e.value) and "weights" in str(e.value)
    res = _invoke(str(bad), str(churn["new"]))
    assert res.exit_code == 2 and str(churn["run"] / "best.pt") in res.stderr.replace("\n", "")


# ------------------------------------------------------------------------------ 3. --keep
def test_keep_copies_id_columns_before_the_prediction(churn: dict[str, Any]) -> None:
    res = _invoke(str(churn["run"]), str(churn["new"]), "--keep", "customer_id")
    assert res.exit_code == 0, res.output
    rows = list(csv.reader(io.StringIO(res.stdout)))
    assert rows[0] == ["customer_id", "churn"]
    assert [r[0] for r in rows[1:]] == ["C001", "C002", "C003"]  # the input's order
    plain = list(csv.reader(io.StringIO(_invoke(str(churn["run"]), str(churn["new"])).stdout)))
    assert [r[1] for r in rows] == [r[0] for r in plain]
    assert "ignored" not in res.stderr  # a kept column is not "ignored"
    two = _invoke(str(churn["run"]), str(churn["new"]), "--keep", "customer_id", "--keep", "tenure_months")
    assert two.exit_code == 0, two.output
    rows = list(csv.reader(io.StringIO(two.stdout)))
    assert rows[0] == ["customer_id", "tenure_months", "churn"] and rows[1][:2] == ["C001", "3"]


def test_keep_an_unknown_column_names_the_files_columns(churn: dict[str, Any]) -> None:
    res = _invoke(str(churn["run"]), str(churn["new"]), "--keep", "customerid")
    assert res.exit_code == 2
    err = res.stderr.replace("\n", "")
    assert "'customerid'" in err and "customer_id, tenure_months, monthly_charges" in err
    assert "Did you mean 'customer_id'?" in err


def test_help_says_rows_keep_the_inputs_order() -> None:
    res = runner.invoke(build_app(), ["predict", "--help"], terminal_width=200)
    assert "--keep" in res.stdout and "input's order" in " ".join(res.stdout.split())


# ------------------------------------------------------------------------------ 4. key=value, swapped
def test_ultralytics_key_value_arguments_get_the_lrkit_form(churn: dict[str, Any]) -> None:
    run, new = str(churn["run"]), str(churn["new"])
    res = _invoke(f"model={run}", f"source={new}")
    assert res.exit_code == 2
    err = " ".join(res.stderr.split())
    assert f"lrkit predict {run} {new}" in err and "model=" in err
    res = _invoke(run, f"source={new}")
    assert res.exit_code == 2 and f"lrkit predict {run} {new}" in " ".join(res.stderr.split())


def test_swapped_arguments_are_named(churn: dict[str, Any]) -> None:
    run, new = str(churn["run"]), str(churn["new"])
    res = _invoke(new, run)
    assert res.exit_code == 2
    err = " ".join(res.stderr.split())
    assert "swapped" in err and f"lrkit predict {run} {new}" in err


# ------------------------------------------------------------------------------ 5. did-you-mean for a column
def test_missing_column_gets_a_did_you_mean_in_python_and_the_cli(churn: dict[str, Any], tmp_path: Path) -> None:
    run = lrkit.load_run(churn["run"])
    with pytest.raises(ValueError, match="Did you mean to rename 'Tenure_Months' to 'tenure_months'?"):
        run.predict({"Tenure_Months": [3], "monthly_charges": [80]})
    src = tmp_path / "bad.csv"
    src.write_text("customer_id,Tenure_Months,monthly_charge\nC1,3,80\n")
    res = _invoke(str(churn["run"]), str(src))
    assert res.exit_code == 2
    err = " ".join(res.stderr.split())
    assert "rename 'Tenure_Months' to 'tenure_months'" in err
    assert "'monthly_charge' to 'monthly_charges'" in err  # one did-you-mean per missing column
    assert "(the file's columns: customer_id, Tenure_Months, monthly_charge)" in err


def test_misspelt_checkpoint_file_gets_a_did_you_mean(churn: dict[str, Any]) -> None:
    with pytest.raises(FileNotFoundError) as e:
        lrkit.load_run(churn["run"] / "bset.pt")
    assert f"Did you mean {str(churn['run'] / 'best.pt')!r}?" in str(e.value)


def test_an_unreadable_folder_on_the_way_still_gives_the_plain_error(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "locked").mkdir()
    is_file = Path.is_file

    def refuse(self: Path) -> bool:  # as a folder without read permission answers (root reads any, so patched)
        if self.parent.name == "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return is_file(self)

    monkeypatch.setattr(Path, "is_file", refuse)
    with pytest.raises(FileNotFoundError, match="no such run directory or checkpoint$"):
        lrkit.load_run(tmp_path / "lockd")


def test_key_value_input_first_and_a_plain_run_second_still_gives_the_lrkit_form(churn: dict[str, Any]) -> None:
    run, new = str(churn["run"]), str(churn["new"])
    res = _invoke(f"source={new}", run)
    assert res.exit_code == 2 and f"lrkit predict {run} {new}" in " ".join(res.stderr.split())
