"""``lrkit predict RUN INPUT``: a finished run's predictions for raw rows from the shell (session 19d).

The counterpart of Ultralytics' ``yolo predict model=best.pt source=...`` over :func:`lrkit.load_run`: each test
trains a tiny run in a temporary folder, runs the command through typer's CliRunner, and checks its CSV against
``lrkit.load_run(run).predict(...)`` on the same rows, the ``--out`` file, and the one-line errors.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app

runner = CliRunner()


def _train(project: Path, **kw: Any) -> Path:
    kw = {"epochs": 1, "verbose": False, "plots": False, "seed": 0, **kw}
    return lrkit.train(project=str(project), **kw).run_dir


def _invoke(*args: str, stdin: str | None = None) -> Any:
    return runner.invoke(build_app(), ["predict", *args], input=stdin)


def _table(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four tiny runs: iris (built-in), a CSV regression with named columns (target: the last, 'price'), a CSV of
    text class labels (target='species', not the last column), and a character-level LM."""
    d = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    n = 60
    sqft, rooms = rng.normal(1000, 200, n), rng.integers(1, 6, n).astype(float)
    price = 0.2 * sqft + 30 * rooms + rng.normal(0, 5, n)
    house = d / "house.csv"
    house.write_text("sqft,rooms,price\n" + "".join(f"{a:.2f},{b:.0f},{c:.2f}\n"
                                                   for a, b, c in zip(sqft, rooms, price)))
    flowers = d / "flowers.csv"
    names = np.array(["setosa", "versicolor", "virginica"])
    label = rng.integers(0, 3, n)
    petal = label * 2.0 + rng.normal(0, 0.3, n)
    width = rng.normal(1, 0.2, n)
    flowers.write_text("petal;species;width\n" + "".join(f"{p:.3f};{names[k]};{w:.3f}\n"
                                                         for p, k, w in zip(petal, label, width)))
    text = d / "t.txt"
    text.write_text("abcab abca " * 40)
    return {
        "dir": d,
        "iris": _train(d / "r", data="iris", name="iris"),
        "house": _train(d / "r", data=str(house), name="house"),
        "house_rows": (sqft, rooms, price),
        "flowers": _train(d / "r", data=str(flowers), target="species", name="flowers"),
        "text": _train(d / "r", data=str(text), model="charlm", seq_len=8, name="text"),
    }


# ----------------------------------------------------------------------------------------------- happy paths
def test_iris_rows_without_a_header_give_the_runs_predictions(runs: dict[str, Any], tmp_path: Path) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    src = tmp_path / "x.csv"
    src.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))
    res = _invoke(str(runs["iris"]), str(src))
    assert res.exit_code == 0, res.output
    header, body = _table(res.stdout)
    expected = lrkit.load_run(runs["iris"]).predict(rows)
    assert header == ["prediction"]
    assert [r[0] for r in body] == [str(v) for v in expected] and len(body) == 3
    assert "error" not in res.stderr and "3 rows" in res.stderr  # the human line goes to stderr, not the CSV


def test_csv_run_reads_columns_by_name_names_the_target_and_reports_it(runs: dict[str, Any], tmp_path: Path) -> None:
    sqft, rooms, price = runs["house_rows"]
    src = tmp_path / "new.csv"  # another order, an id column, and the target column present
    rows = zip(sqft[:7], rooms[:7], price[:7])
    lines = "".join(f"{i},{b:.0f},{c:.2f},{a:.2f}\n" for i, (a, b, c) in enumerate(rows))
    src.write_text("id,rooms,price,sqft\n" + lines)
    res = _invoke(str(runs["house"]), str(src))
    assert res.exit_code == 0, res.output
    header, body = _table(res.stdout)
    run = lrkit.load_run(runs["house"])
    expected = run.predict({"sqft": [round(a, 2) for a in sqft[:7]], "rooms": [round(b) for b in rooms[:7]]})
    assert header == ["price"]  # the training file's target column (the last: target= was not given)
    assert [float(r[0]) for r in body] == [float(v) for v in expected]  # full precision, the target's units
    assert "'price'" in res.stderr and "RMSE" in res.stderr  # the target column is compared, not predicted from
    assert "'id'" in res.stderr  # an extra column is named as ignored


def test_out_file_is_written_atomically_and_matches_stdout(runs: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("sqft,rooms\n1200,3\n800,1\n")
    out = tmp_path / "preds" / "p.csv"
    res = _invoke(str(runs["house"]), str(src), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert res.stdout == ""  # written to the file only
    plain = _invoke(str(runs["house"]), str(src))
    assert out.read_text() == plain.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["p.csv"]  # no temporary file left beside it
    assert str(out) in res.stderr


def test_text_class_labels_and_a_semicolon_file(runs: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "f.csv"
    src.write_text("width;petal\n1.0;0.1\n1.1;4.2\n0.9;2.0\n")
    res = _invoke(str(runs["flowers"]), str(src))
    assert res.exit_code == 0, res.output
    header, body = _table(res.stdout)
    expected = lrkit.load_run(runs["flowers"]).predict({"petal": [0.1, 4.2, 2.0], "width": [1.0, 1.1, 0.9]})
    assert header == ["species"] and [r[0] for r in body] == expected
    assert set(expected) <= {"setosa", "versicolor", "virginica"}


def test_target_column_of_labels_is_reported_as_accuracy(runs: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "f.csv"
    src.write_text("petal,width,species\n0.1,1.0,setosa\n4.2,1.1,virginica\n")
    res = _invoke(str(runs["flowers"]), str(src))
    assert res.exit_code == 0, res.output
    run = lrkit.load_run(runs["flowers"])
    hits = sum(p == t for p, t in zip(run.predict({"petal": [0.1, 4.2], "width": [1.0, 1.1]}),
                                      ["setosa", "virginica"]))
    assert f"accuracy {hits}/2" in res.stderr


def test_stdin_and_npz_inputs(runs: dict[str, Any], tmp_path: Path) -> None:
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    expected = [str(v) for v in lrkit.load_run(runs["iris"]).predict(rows)]
    res = _invoke(str(runs["iris"]), "-", stdin="a,b,c,d\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    assert res.exit_code == 0, res.output
    assert [r[0] for r in _table(res.stdout)[1]] == expected
    np.savez(tmp_path / "x.npz", x=rows, y=np.array([0, 2]))
    np.save(tmp_path / "x.npy", rows)
    for name in ("x.npz", "x.npy"):
        res = _invoke(str(runs["iris"]), str(tmp_path / name))
        assert res.exit_code == 0, res.output
        assert [r[0] for r in _table(res.stdout)[1]] == expected


def test_last_checkpoint_and_a_pt_path(runs: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("5.1,3.5,1.4,0.2\n")
    expected = str(lrkit.load_run(runs["iris"], which="last").predict([[5.1, 3.5, 1.4, 0.2]])[0])
    for args in (["--which", "last"], []):
        run = str(runs["iris"]) if args else str(runs["iris"] / "last.pt")
        res = _invoke(run, str(src), *args)
        assert res.exit_code == 0, res.output
        assert _table(res.stdout)[1] == [[expected]]


def test_text_run_predicts_the_next_character_of_each_text(runs: dict[str, Any]) -> None:
    res = _invoke(str(runs["text"]), "--text", "abcab ab", "--text", "ca")
    assert res.exit_code == 0, res.output
    run = lrkit.load_run(runs["text"])
    header, body = _table(res.stdout)
    assert header == ["text", "next"]
    assert body == [["abcab ab", run.predict("abcab ab")], ["ca", run.predict("ca")]]


def test_multi_target_regression_has_one_column_per_target(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    y = np.stack([x[:, 0] * 10 + 100, x[:, 1] - 5], axis=1)
    np.savez(tmp_path / "m.npz", x=x, y=y)
    run_dir = _train(tmp_path / "r", data=str(tmp_path / "m.npz"), task="regression")
    np.save(tmp_path / "new.npy", x[:4])
    res = _invoke(str(run_dir), str(tmp_path / "new.npy"))
    assert res.exit_code == 0, res.output
    header, body = _table(res.stdout)
    expected = lrkit.load_run(run_dir).predict(x[:4])
    assert header == ["y_0", "y_1"] and len(body) == 4
    assert [[float(v) for v in r] for r in body] == expected.tolist()


def test_the_command_is_listed_in_lrkit_help() -> None:
    res = runner.invoke(build_app(), ["--help"], env={"COLUMNS": "100"})
    assert res.exit_code == 0
    assert "predict" in res.output and "find | schedule | train | predict" in res.output
    res = _invoke("--help")
    assert res.exit_code == 0 and "--which" in res.output and "--text" in res.output and "<bool>" not in res.output


# ----------------------------------------------------------------------------------------------- errors
def _error(res: Any) -> str:
    assert res.exit_code == 2, res.output
    assert res.stdout == "", res.stdout  # nothing on stdout: a pipe gets no half-made CSV
    lines = res.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    return " ".join(res.stderr.split())


def test_a_run_that_does_not_exist(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("1,2\n")
    assert "no such run directory or checkpoint" in _error(_invoke(str(tmp_path / "nope"), str(src)))


def test_an_input_that_does_not_exist_or_is_empty(runs: dict[str, Any], tmp_path: Path) -> None:
    msg = _error(_invoke(str(runs["iris"]), str(tmp_path / "none.csv")))
    assert "none.csv" in msg and "no such file" in msg
    (tmp_path / "e.csv").write_text("")
    assert "e.csv" in _error(_invoke(str(runs["iris"]), str(tmp_path / "e.csv"))) and "no rows" in \
        _error(_invoke(str(runs["iris"]), str(tmp_path / "e.csv")))
    (tmp_path / "h.csv").write_text("sqft,rooms\n")
    assert "no rows" in _error(_invoke(str(runs["house"]), str(tmp_path / "h.csv")))


def test_wrong_column_names_are_named(runs: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text("sqft,bedrooms\n1200,3\n")
    msg = _error(_invoke(str(runs["house"]), str(tmp_path / "w.csv")))
    assert "'rooms'" in msg and "sqft" in msg and "bedrooms" in msg
    (tmp_path / "n.csv").write_text("1200,3\n")  # no header: a CSV run reads its columns by name
    msg = _error(_invoke(str(runs["house"]), str(tmp_path / "n.csv")))
    assert "header" in msg and "sqft,rooms" in msg


def test_bad_cells_and_wrong_widths_are_named(runs: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("sqft,rooms\n1200,3\n900,three\n")
    msg = _error(_invoke(str(runs["house"]), str(tmp_path / "b.csv")))
    assert "'rooms'" in msg and "'three'" in msg and "line 3" in msg
    (tmp_path / "r.csv").write_text("sqft,rooms\n1200,3\n900\n")
    assert "line 3" in _error(_invoke(str(runs["house"]), str(tmp_path / "r.csv")))
    (tmp_path / "five.csv").write_text("1,2,3,4,5\n")
    msg = _error(_invoke(str(runs["iris"]), str(tmp_path / "five.csv")))
    assert "5 values per sample" in msg and "4" in msg


def test_a_run_saved_without_preprocess_statistics(runs: dict[str, Any], tmp_path: Path) -> None:
    ck = torch.load(runs["iris"] / "best.pt", weights_only=True)
    del ck["preprocess"]
    old = tmp_path / "old.pt"
    torch.save(ck, old)
    (tmp_path / "x.csv").write_text("5.1,3.5,1.4,0.2\n")
    msg = _error(_invoke(str(old), str(tmp_path / "x.csv")))
    assert "from before load_run" in msg and "resume=false" in msg


def test_text_and_table_inputs_are_not_mixed_up(runs: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("5.1,3.5,1.4,0.2\n")
    assert "--text" in _error(_invoke(str(runs["text"]), str(tmp_path / "x.csv")))
    assert "--text" in _error(_invoke(str(runs["text"])))
    assert "--text" in _error(_invoke(str(runs["iris"]), "--text", "abc"))
    assert "INPUT" in _error(_invoke(str(runs["iris"])))
    msg = _error(_invoke(str(runs["text"]), "--text", "abz"))
    assert "'z'" in msg


def test_bad_options_and_outputs(runs: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("5.1,3.5,1.4,0.2\n")
    msg = _error(_invoke(str(runs["iris"]), str(src), "--which", "first"))
    assert "'first'" in msg and "best" in msg and "last" in msg
    assert "folder" in _error(_invoke(str(runs["iris"]), str(src), "--out", str(tmp_path)))
    msg = _error(_invoke(str(runs["iris"]), str(src), "--out", str(src)))  # would replace the rows it reads
    assert "INPUT" in msg
    assert src.read_text() == "5.1,3.5,1.4,0.2\n"
    assert "--device" in _error(_invoke(str(runs["iris"]), str(src), "--device", "nodevice"))


def test_non_finite_cells_are_refused(runs: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("sqft,rooms\n1200,nan\n")
    msg = _error(_invoke(str(runs["house"]), str(tmp_path / "x.csv")))
    assert "'rooms'" in msg and "line 2" in msg


def test_load_run_messages_name_the_command_lines_arguments(runs: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("5.1,3.5,1.4,0.2\n")
    msg = _error(_invoke(str(runs["iris"] / "best.pt"), str(src), "--which", "last"))
    assert msg.startswith("error: RUN ") and "--which last" in msg and "which=" not in msg
    msg = _error(_invoke(str(tmp_path / "nope"), str(src)))
    assert "load_run:" not in msg and "'" + str(tmp_path / "nope") + "'" in msg
