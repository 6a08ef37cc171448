"""Session 34d: using a finished run (load_run / LoadedRun.predict) with damaged runs and awkward inputs."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import lrkit
from lrkit.train.reuse import load_run
from lrkit.train.run import CHECKPOINT_FORMAT


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("iris")
    return Path(lrkit.train(data="iris", epochs=1, project=str(project), verbose=False, plots=False).run_dir)


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("csvrun")
    rng = np.random.default_rng(0)
    with open(folder / "rows.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "c", "label"])
        for _ in range(60):
            a, b, c = rng.normal(size=3)
            w.writerow([a * 10 + 5, b, c, "cat" if a + b > 0 else "dog"])
    r = lrkit.train(data=str(folder / "rows.csv"), target="label", epochs=1, project=str(folder), verbose=False,
                    plots=False)
    return Path(r.run_dir)


def _copy(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest


# ------------------------------------------------------------------------------------------ load_run
def test_which_last_without_last_pt_names_best_not_a_killed_start(iris_run: Path, tmp_path: Path) -> None:
    run = _copy(iris_run, tmp_path)
    (run / "last.pt").unlink()  # kept only best.pt, to save space
    with pytest.raises(FileNotFoundError) as e:
        load_run(run, which="last")
    message = str(e.value)
    assert "stopped before its first epoch" not in message
    assert "best.pt" in message
    assert load_run(run).checkpoint.name == "best.pt"


def test_checkpoint_of_another_lrkit_format_is_named_as_such(iris_run: Path, tmp_path: Path) -> None:
    ck = torch.load(iris_run / "best.pt", weights_only=True)
    ck["format"] = "lrkit.train/99"
    torch.save(ck, tmp_path / "best.pt")
    with pytest.raises(ValueError) as e:
        load_run(tmp_path / "best.pt")
    message = str(e.value)
    assert "'lrkit.train/99'" in message and repr(CHECKPOINT_FORMAT) in message
    assert "plain state_dict" not in message


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_with_pickled_code_is_refused_without_advising_weights_only_false(iris_run: Path,
                                                                                      tmp_path: Path) -> None:
    ck = torch.load(iris_run / "best.pt", weights_only=True)
    ck["extra"] = _Evil()
    torch.save(ck, tmp_path / "best.pt")
    with pytest.raises(ValueError) as e:
        load_run(tmp_path / "best.pt")
    message = str(e.value)
    assert "weights_only` set to `False" not in message
    assert "posix.system" in message or "system" in message  # the code it would have run is named
    assert "weights_only=True" in message


# ------------------------------------------------------------------------------------------ predict inputs
def test_non_numeric_cell_in_rows_is_named_by_row_and_column(iris_run: Path) -> None:
    run = load_run(iris_run)
    with pytest.raises(ValueError, match=r"row 1 .*'abc'.*column 'sepal width \(cm\)'"):  # by name since s36
        run.predict([[5.1, 3.5, 1.4, 0.2], [5.1, "abc", 1.4, 0.2]])
    with pytest.raises(ValueError, match=r"row 0 .*'abc'"):
        run.predict([5.1, "abc", 1.4, 0.2])  # one sample


def test_rows_of_different_lengths_are_named(iris_run: Path) -> None:
    run = load_run(iris_run)
    with pytest.raises(ValueError, match=r"row 1 .*3 values.*row 0 has 4"):
        run.predict([[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4]])


def test_unreadable_x_is_a_value_error_naming_its_type(iris_run: Path) -> None:
    run = load_run(iris_run)
    with pytest.raises(ValueError, match="generator"):
        run.predict(r for r in [[5.1, 3.5, 1.4, 0.2]])
    with pytest.raises(ValueError, match=r"row 0 .*1j"):
        run.predict([[1j, 3.5, 1.4, 0.2]])


def test_datetime_values_are_refused_not_read_as_nanoseconds(iris_run: Path, csv_run: Path) -> None:
    run = load_run(iris_run)
    with pytest.raises(ValueError, match="datetime64"):
        run.predict(np.array([["2020-01-01"] * 4], dtype="datetime64[D]"))
    import pandas as pd
    table = pd.DataFrame({"a": pd.to_datetime(["2020-01-01"]), "b": [1.0], "c": [2.0]})
    with pytest.raises(ValueError, match=r"column 'a'.*datetime64"):
        load_run(csv_run).predict(table)


def test_columns_of_different_lengths_are_named(csv_run: Path) -> None:
    run = load_run(csv_run)
    with pytest.raises(ValueError, match=r"'a': 2.*'b': 1"):
        run.predict({"a": [1.0, 2.0], "b": [1.0], "c": [2.0]})


def test_dataframe_with_a_repeated_feature_column_is_named(csv_run: Path) -> None:
    import pandas as pd
    run = load_run(csv_run)
    table = pd.DataFrame([[1.0, 2.0, 3.0, 4.0]], columns=["a", "a", "b", "c"])
    with pytest.raises(ValueError, match=r"2 columns named 'a'"):
        run.predict(table)


def test_csv_run_predictions_match_the_model_on_the_training_rows(csv_run: Path) -> None:
    run = load_run(csv_run)
    rows = list(csv.DictReader(open(csv_run.parent / "rows.csv")))
    x = np.array([[float(r[c]) for c in ("a", "b", "c")] for r in rows])
    expect = (x - run.scaling["x_mean"].numpy()) / run.scaling["x_std"].numpy()
    assert torch.equal(run.inputs(rows), torch.as_tensor(expect, dtype=torch.float32))
    with torch.no_grad():
        index = run.model(torch.as_tensor(expect, dtype=torch.float32)).argmax(-1).tolist()
    assert run.predict(rows) == [run.classes[i] for i in index]


# ------------------------------------------------------------------------------------------ fine-tuning from a run
def test_finetuning_on_the_runs_columns_in_another_order_is_refused(csv_run: Path, tmp_path: Path) -> None:
    rows = list(csv.DictReader(open(csv_run.parent / "rows.csv")))
    with open(tmp_path / "reordered.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["c", "a", "b", "label"])
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(ValueError, match=r"\['a', 'b', 'c'\].*\['c', 'a', 'b'\]"):
        lrkit.train(data=str(tmp_path / "reordered.csv"), target="label", model=str(csv_run), epochs=1,
                    project=str(tmp_path), verbose=False, plots=False)


def test_table_with_integer_column_keys_reads_a_numbered_header_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    with open(tmp_path / "num.csv", "w", newline="") as f:  # as pandas writes DataFrame(array).to_csv(index=False)
        w = csv.writer(f)
        w.writerow(["0", "1", "2", "3"])
        w.writerows([[*row, int(row[0] > 0)] for row in x])
    r = lrkit.train(data=str(tmp_path / "num.csv"), target="3", epochs=1, project=str(tmp_path), verbose=False,
                    plots=False)
    run = load_run(r.run_dir)
    assert run.features == ["0", "1", "2"]
    expect = run.predict(x[:2])
    assert run.predict({0: x[:2, 0], 1: x[:2, 1], 2: x[:2, 2]}) == expect  # int keys, as DataFrame(array) has
    import pandas as pd
    assert run.predict(pd.DataFrame(x[:2])) == expect


# ------------------------------------------------------------------------------------------ lrkit predict
def test_cli_names_the_file_row_of_a_nan_past_the_first_chunk(iris_run: Path, tmp_path: Path) -> None:
    from lrkit.cli.predict import _CHUNK, predict_file

    x = np.zeros((_CHUNK + 10, 4))
    x[_CHUNK + 4, 2] = np.nan
    np.save(tmp_path / "rows.npy", x)
    with pytest.raises(ValueError, match=rf"row {_CHUNK + 4} \(counting from 0\)"):
        predict_file(load_run(iris_run), str(tmp_path / "rows.npy"))


def test_cli_names_the_whole_arrays_shape_not_a_chunks(iris_run: Path, tmp_path: Path) -> None:
    from lrkit.cli.predict import _CHUNK, predict_file

    np.save(tmp_path / "rows.npy", np.zeros((_CHUNK + 10, 5)))
    with pytest.raises(ValueError, match=rf"x of shape \({_CHUNK + 10}, 5\)"):
        predict_file(load_run(iris_run), str(tmp_path / "rows.npy"))


def test_a_dataframe_row_series_is_read_by_column_name(csv_run: Path) -> None:
    import pandas as pd
    run = load_run(csv_run)
    table = pd.read_csv(csv_run.parent / "rows.csv")
    expect = run.inputs(table.iloc[:1])
    assert torch.equal(run.inputs(table.iloc[0]), expect)  # df.iloc[0]: a Series holding the target too
    row = table.iloc[0]
    reordered = pd.Series({"c": row["c"], "a": row["a"], "b": row["b"]})
    assert torch.equal(run.inputs(reordered), expect)


def test_cli_errors_name_the_which_flag_not_pythons_keyword(iris_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    run = _copy(iris_run, tmp_path)
    (run / "best.pt").unlink()
    result = CliRunner().invoke(build_app(), ["predict", str(run), "rows.npy"])
    assert result.exit_code == 2
    assert "--which last" in result.output and "which='last'" not in result.output
    (run / "best.pt").write_bytes((run / "last.pt").read_bytes()[:1000])  # cut short
    result = CliRunner().invoke(build_app(), ["predict", str(run), "rows.npy"])
    assert "--which last" in result.output and "load_run(" not in result.output
