"""Numbers you can trust from a finished run (session 27h): ``lrkit.load_run(run).predict`` and ``lrkit predict``
checked against an independent recomputation — ``best.pt`` read with ``torch.load(weights_only=True)``, the inputs
standardised with the recorded train-split statistics, the model run in plain torch, and the outputs mapped back
(argmax to the run's own class labels; regression de-standardised per target column)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app
from lrkit.train.models import build_model, default_model_name
from lrkit.train.reuse import _data_info

runner = CliRunner()


def _train(project: Path, **kw: Any) -> Path:
    kw = {"epochs": 2, "verbose": False, "plots": False, "seed": 0, **kw}
    return lrkit.train(project=str(project), **kw).run_dir


def _invoke(*args: str) -> Any:
    return runner.invoke(build_app(), ["predict", *args])


def _by_hand(run_dir: Path, rows: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """The prediction recomputed from ``best.pt`` with plain torch, and the checkpoint's ``preprocess`` record."""
    ck = torch.load(run_dir / "best.pt", weights_only=True)
    pre, info = ck["preprocess"], _data_info(ck)
    net = build_model(ck.get("model_spec") or ck["config"].get("model") or default_model_name(info), info)
    net.load_state_dict(ck["model"])
    net.eval()
    x = (np.asarray(rows, dtype=np.float64) - pre["x_mean"].numpy()) / pre["x_std"].numpy()
    with torch.no_grad():
        out = net(torch.tensor(x.reshape(len(x), *pre["input_shape"]), dtype=torch.float32))
    if pre["task"] == "classification":
        return [pre["classes"][i] for i in out.argmax(-1).tolist()], pre
    return out.double().reshape(len(out), -1) * pre["y_std"] + pre["y_mean"], pre


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("predictnumbers")


@pytest.fixture(scope="module")
def iris(project: Path) -> Path:
    return _train(project, data="iris", name="iris")


def test_one_row_npy_of_a_multi_feature_run_is_one_sample(iris: Path, project: Path) -> None:
    """A 1-D ``.npy`` holding one row's 4 values is that row (as ``run.predict`` takes it), not 4 rows of one
    value each (before: `the model gave 1 predictions for 4 rows`)."""
    row = np.array([6.7, 3.0, 5.2, 2.3])
    np.save(project / "one.npy", row)
    result = _invoke(str(iris), str(project / "one.npy"))
    assert result.exit_code == 0, result.output
    expected, _ = _by_hand(iris, row[None])
    assert result.stdout.splitlines() == ["prediction", str(expected[0])]
    assert lrkit.load_run(iris).predict(row) == expected


def test_one_dimensional_npy_of_the_wrong_length_names_the_count(iris: Path, project: Path) -> None:
    np.save(project / "five.npy", np.arange(5.0))
    result = _invoke(str(iris), str(project / "five.npy"))
    assert result.exit_code == 2
    assert "5 values per sample" in result.output and "trained on 4" in result.output


@pytest.fixture(scope="module")
def labelled(project: Path) -> Path:
    """A CSV run with text class labels ('x', 'y', 'z') in a 'label' column."""
    rng = np.random.default_rng(0)
    rows = "".join(f"{4 * (i % 3) + rng.normal() * 0.3},{rng.normal()},{'xyz'[i % 3]}\n" for i in range(150))
    (project / "labelled.csv").write_text("a,b,label\n" + rows)
    return _train(project, data=str(project / "labelled.csv"), name="labelled")


def test_accuracy_leaves_out_rows_without_a_label(labelled: Path, project: Path) -> None:
    """New rows whose target cell is empty (not labelled yet) are not counted as wrong predictions: the accuracy is
    over the labelled rows, and the note says how many were left out (before: `accuracy 1/3` for 1 of 1)."""
    table = [[0.0, 0.0], [4.0, 0.0], [8.0, 0.0]]
    predicted, _ = _by_hand(labelled, np.array(table))
    labels = [predicted[0], "", " "]
    lines = "".join(f"{a},{b},{c}\n" for (a, b), c in zip(table, labels))
    (project / "partly.csv").write_text("a,b,label\n" + lines)
    result = _invoke(str(labelled), str(project / "partly.csv"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["label", *predicted]
    assert "accuracy 1/1 (100.0%) against column 'label'" in result.output
    assert "2 rows without a value left out" in result.output


@pytest.fixture(scope="module")
def thousands(project: Path) -> Path:
    """A CSV regression run whose target is in the thousands."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=150)
    rows = "".join(f"{v},{rng.normal()},{1000 * v + 5000}\n" for v in a)
    (project / "thousands.csv").write_text("a,b,y\n" + rows)
    return _train(project, data=str(project / "thousands.csv"), name="thousands")


def test_rmse_leaves_out_rows_without_a_value(thousands: Path, project: Path) -> None:
    """Empty / NA target cells are left out of the RMSE rather than the whole comparison being dropped."""
    table = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [2.0, 1.0]])
    predicted, _ = _by_hand(thousands, table)
    truth = ["5000", "", "NA", "7000"]
    lines = "".join(f"{a},{b},{c}\n" for (a, b), c in zip(table.tolist(), truth))
    (project / "partly_y.csv").write_text("a,b,y\n" + lines)
    result = _invoke(str(thousands), str(project / "partly_y.csv"))
    assert result.exit_code == 0, result.output
    assert [float(v) for v in result.stdout.splitlines()[1:]] == predicted[:, 0].tolist()
    error = predicted[[0, 3], 0].numpy() - np.array([5000.0, 7000.0])
    assert f"RMSE {np.sqrt(np.mean(error**2)):.4g}, MAE {np.mean(np.abs(error)):.4g}" in result.output
    assert "against column 'y' (2 rows; 2 rows without a value left out)" in result.output


def test_two_targets_on_different_scales_come_back_in_their_own_units(project: Path) -> None:
    """An NPZ run with two regression targets (units of 1 and of 1000) is de-standardised per column: predict and
    ``lrkit predict`` (``y_0,y_1``, full precision) agree bit for bit with the recomputation from ``best.pt``."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = np.stack([x[:, 0] + 5, 1000 * x[:, 1] + 20000], axis=1)
    np.savez(project / "two.npz", x=x, y=y)
    run_dir = _train(project, data=str(project / "two.npz"), name="two")
    expected, pre = _by_hand(run_dir, x[:5])
    assert pre["y_std"][1] / pre["y_std"][0] > 100  # each column standardised with its own scale
    got = lrkit.load_run(run_dir).predict(x[:5])
    assert got.dtype == torch.float64 and torch.equal(got, expected)
    np.save(project / "two_rows.npy", x[:5])
    result = _invoke(str(run_dir), str(project / "two_rows.npy"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "y_0,y_1"
    assert [[float(v) for v in line.split(",")] for line in lines[1:]] == expected.tolist()
