"""``target=`` of several CSV columns trains a multi-output regression, as an NPZ whose ``y`` has a column per target.

Before (session 28): ``lrkit.train(data="d.csv", target=["y1", "y2"])`` (and ``target=[y1, y2]`` on the command line,
``target: [y1, y2]`` in a data YAML) was refused with advice to save an NPZ. Now the CSV trains both columns (y of
shape (N, 2) in the columns' order, standardised per column), the run records the target names, and ``lrkit
predict`` writes one column per target under its name (``y1``, ``y2``, not ``y_0``, ``y_1``).
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
from lrkit.train.data import load_data

N = 80


def _frame(seed: int = 0) -> np.ndarray:
    """Columns a, b, c, y1, y2: y1 = 3a - 2b + 10 and y2 = 100(b + c) - 50, two targets in different units."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 3))
    y1 = 3 * x[:, 0] - 2 * x[:, 1] + 10
    y2 = 100 * (x[:, 1] + x[:, 2]) - 50
    return np.column_stack([x, y1, y2])


def _write_csv(path: Path, table: np.ndarray, header: str = "a,b,c,y1,y2") -> Path:
    # repr: the CSV holds the float64 values exactly, so it reads back to the NPZ's arrays bit for bit
    path.write_text("\n".join([header, *(",".join(repr(float(v)) for v in row) for row in table)]) + "\n")
    return path


def _train(data: Path, tmp_path: Path, name: str, **kw: Any) -> Any:
    kw = {"epochs": 3, "lr0": 0.05, "batch": 16, **kw}
    return lrkit.train("linear", data=str(data), project=str(tmp_path / "runs"), name=name, verbose=False,
                       plots=False, **kw)


def _message(err: pytest.ExceptionInfo[BaseException]) -> str:
    return " ".join(str(err.value).split())


# ------------------------------------------------------------------------------------------------ training
def test_two_csv_targets_train_as_the_npz_of_the_same_data(tmp_path: Path) -> None:
    table = _frame()
    csv_path = _write_csv(tmp_path / "d.csv", table)
    np.savez(tmp_path / "d.npz", x=table[:, :3], y=table[:, 3:])
    from_csv = _train(csv_path, tmp_path, "csv", target=["y1", "y2"])
    from_npz = _train(tmp_path / "d.npz", tmp_path, "npz")
    assert from_csv.task == "regression" and from_csv.metric_name == "rmse"
    assert all("val_rmse" in row for row in from_csv.history) and len(from_csv.history) == 3
    rows = torch.as_tensor(table[:4, :3], dtype=torch.float32)
    assert from_csv.model(rows).shape == (4, 2)
    # the same split, standardisation, init and steps: the same weights, bit for bit, and the same scores
    for (k, a), (_, b) in zip(from_csv.model.state_dict().items(), from_npz.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert [r["val_rmse"] for r in from_csv.history] == [r["val_rmse"] for r in from_npz.history]


def test_a_loaded_run_predicts_both_targets_in_their_units(tmp_path: Path) -> None:
    table = _frame()
    run = _train(_write_csv(tmp_path / "d.csv", table), tmp_path, "fit", target=["y1", "y2"], epochs=30, lr0=0.1,
                 optimizer="SGD")
    loaded = lrkit.load_run(run.run_dir)
    assert loaded.target == ["y1", "y2"] and loaded.features == ["a", "b", "c"]
    got = loaded.predict(table[:, :3]).numpy()
    assert got.shape == (N, 2)
    # the linear relations, learned loosely, each column in its own units (y1 ~10 +- 4, y2 ~-50 +- 140): standardised
    # outputs (mean 0, spread 1) or the columns swapped would miss by far
    for k in range(2):
        truth = table[:, 3 + k]
        assert np.corrcoef(got[:, k], truth)[0, 1] > 0.95
        assert abs(got[:, k].mean() - truth.mean()) < 0.25 * truth.std()
        assert 0.5 < got[:, k].std() / truth.std() < 2.0
    # dict rows (csv.DictReader's) holding the target columns too: the features are read by name
    dict_rows = [dict(zip(["y2", "c", "y1", "b", "a"], map(str, row[[4, 2, 3, 1, 0]]))) for row in table[:6]]
    assert np.allclose(loaded.predict(dict_rows).numpy(), got[:6])


def test_indexes_and_names_mix_and_the_order_is_the_lists(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", _frame())
    d = load_data(str(path), target=[-1, "y1"])  # y2 first, then y1
    assert d.info.target == ["y2", "y1"] and d.info.features == ["a", "b", "c"]
    assert d.info.num_outputs == 2 and d.info.task == "regression"
    table = _frame()
    assert np.allclose(d.info.scaling["y_mean"].numpy(), [table[:, 4][_train_rows()].mean(),
                                                         table[:, 3][_train_rows()].mean()])
    assert d.train.tensors[1].shape == (len(d.train), 2)
    state = d.info.preprocess_state()
    assert state["target"] == ["y2", "y1"]


def _train_rows() -> np.ndarray:
    from lrkit.train.data import _split_indices

    return _split_indices(N, seed=0, val=0.2)[0]


def test_one_name_in_a_list_is_that_one_target(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", _frame())
    one, listed = load_data(str(path), target="y1"), load_data(str(path), target=["y1"])
    assert listed.info.target == one.info.target == "y1" and listed.info.features == one.info.features
    assert torch.equal(listed.train.tensors[1], one.train.tensors[1]) and listed.train.tensors[1].shape[1:] == (1,)
    from lrkit._config import TrainConfig

    assert TrainConfig(target=["y1"]).target == "y1" and TrainConfig(target=("y1", 2)).target == ["y1", 2]


# ------------------------------------------------------------------------------------------------ CLI and YAML
def _cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def test_cli_trains_several_targets_and_predict_names_them(tmp_path: Path) -> None:
    table = _frame()
    path = _write_csv(tmp_path / "d.csv", table)
    res = _cli("train", f"data={path}", "target=[y1, y2]", "model=linear", "epochs=2", "batch=16", "plots=false",
               f"project={tmp_path / 'runs'}", "name=cli")
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "runs" / "cli"
    args = (run_dir / "args.yaml").read_text()
    assert "target:\n- y1\n- y2\n" in args, args
    # INPUT holds the features (in another order), an ID and both targets
    rows = ["id,c,y2,b,a,y1", *(f"{i}," + ",".join(repr(float(r[k])) for k in (2, 4, 1, 0, 3))
                                for i, r in enumerate(table[:5]))]
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n")
    res = _cli("predict", str(run_dir), str(tmp_path / "new.csv"), "--keep", "id")
    assert res.exit_code == 0, res.output
    out = list(csv.reader(io.StringIO(res.stdout)))
    assert out[0] == ["id", "y1", "y2"] and len(out) == 6
    expected = lrkit.load_run(run_dir).predict(table[:5, :3])
    assert np.allclose(np.array([[float(v) for v in r[1:]] for r in out[1:]]), expected.numpy())
    # the targets in INPUT are compared with the predictions, one note per column
    text = " ".join(res.output.split())
    assert "against column 'y1' (5 rows)" in text and "against column 'y2' (5 rows)" in text, text
    assert "ignored column" not in text


def test_a_cfg_yaml_list_and_a_data_yaml_list(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", _frame())
    (tmp_path / "cfg.yaml").write_text(f"data: {path}\ntarget: [y1, y2]\nepochs: 1\nmodel: linear\n")
    res = _cli("train", f"cfg={tmp_path / 'cfg.yaml'}", "plots=false", f"project={tmp_path / 'runs'}", "name=cfg")
    assert res.exit_code == 0, res.output
    assert lrkit.load_run(tmp_path / "runs" / "cfg").target == ["y1", "y2"]
    (tmp_path / "d.yaml").write_text("train: d.csv\nval: 0.2\ntarget: [y2, y1]\n")
    run = _train(tmp_path / "d.yaml", tmp_path, "yaml", epochs=1)
    assert lrkit.load_run(run.run_dir).target == ["y2", "y1"] and run.model(torch.zeros(1, 3)).shape == (1, 2)


def test_a_data_yaml_pair_reads_both_files_by_the_target_names(tmp_path: Path) -> None:
    table = _frame()
    _write_csv(tmp_path / "train.csv", table[:60])
    # the val file orders its columns anew: the targets and the features are found by name
    val = table[60:][:, [4, 2, 0, 3, 1]]
    _write_csv(tmp_path / "val.csv", val, header="y2,c,a,y1,b")
    (tmp_path / "d.yaml").write_text("train: train.csv\nval: val.csv\ntarget: [3, y2]\n")
    d = load_data(str(tmp_path / "d.yaml"))
    assert d.info.target == ["y1", "y2"] and (d.info.n_train, d.info.n_val) == (60, 20)
    mean, std = d.info.scaling["y_mean"].numpy(), d.info.scaling["y_std"].numpy()
    val_y = d.val.tensors[1].numpy() * std + mean
    assert np.allclose(val_y, table[60:, 3:], atol=1e-4)
    x_mean, x_std = d.info.scaling["x_mean"].numpy(), d.info.scaling["x_std"].numpy()
    assert np.allclose(d.val.tensors[0].numpy() * x_std + x_mean, table[60:, :3], atol=1e-4)


# ------------------------------------------------------------------------------------------------ refusals
def test_a_missing_column_is_named_with_a_did_you_mean(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", _frame())
    with pytest.raises(ValueError) as err:
        load_data(str(path), target=["y1", "y_2"])
    assert "'y_2'" in _message(err) and "Did you mean 'y2'?" in _message(err)


def test_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", _frame())
    for target in (["y1", "y1"], ["y2", -1], ["y1", 3]):
        with pytest.raises(ValueError) as err:
            load_data(str(path), target=target)
        msg = _message(err)
        assert f"target={target!r}" in msg and "twice" in msg, msg


def test_a_text_cell_in_a_target_is_named(tmp_path: Path) -> None:
    table = _frame()
    lines = _write_csv(tmp_path / "d.csv", table).read_text().splitlines()
    cells = lines[5].split(",")
    cells[4] = "NA"
    lines[5] = ",".join(cells)
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as err:
        load_data(str(tmp_path / "d.csv"), target=["y1", "y2"])
    msg = _message(err)
    assert "'y2'" in msg and "'NA' on line 6" in msg, msg
    assert "task='classification'" not in msg  # no advice to read the column as labels: several targets regress
    cells[4] = ""
    lines[5] = ",".join(cells)
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"target column 'y2' is empty on line 6"):
        load_data(str(tmp_path / "d.csv"), target=["y1", "y2"])
    cells[4] = "$1,200.50"
    lines[5] = ",".join(f'"{c}"' if "," in c else c for c in cells)
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"'y2'.* a formatted number"):
        load_data(str(tmp_path / "d.csv"), target=["y1", "y2"])
    cells[4] = "inf"
    lines[5] = ",".join(cells)
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"target column 'y2' holds 1 NaN/infinite value\(s\), first on line 6"):
        load_data(str(tmp_path / "d.csv"), target=["y1", "y2"])


def test_a_decimal_comma_in_a_target_is_named(tmp_path: Path) -> None:
    table = _frame()
    rows = ["a;b;c;y1;y2", *(";".join(f"{v:.3f}" for v in r) for r in table)]
    rows[3] = rows[3].rsplit(";", 1)[0] + ";12,5"
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError) as err:
        load_data(str(tmp_path / "d.csv"), target=["y1", "y2"])
    msg = _message(err)
    assert "'y2'" in msg and "'12,5' on line 4" in msg and "decimal comma" in msg, msg
    assert "classification" not in msg


def test_classification_with_several_targets_is_refused(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", _frame())
    with pytest.raises(ValueError) as err:
        lrkit.train("linear", data=str(path), target=["y1", "y2"], task="classification", epochs=1,
                    project=str(tmp_path / "runs"))
    msg = _message(err)
    assert "task='classification'" in msg and "target=['y1', 'y2']" in msg and "regression" in msg, msg
    assert not (tmp_path / "runs").exists()
    (tmp_path / "d.yaml").write_text("train: d.csv\ntarget: [y1, y2]\ntask: classification\n")
    with pytest.raises(ValueError, match=r"task='classification'.*target=\['y1', 'y2'\]"):
        load_data(str(tmp_path / "d.yaml"))


def test_drop_naming_a_target_is_refused(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", _frame())
    with pytest.raises(ValueError, match=r"drop='y2' is .*target column"):
        load_data(str(path), target=["y1", "y2"], drop=["c", "y2"])


def test_bad_items_and_an_empty_list_are_refused() -> None:
    from lrkit._config import TrainConfig

    for bad in ([], ["y1", 2.5], ["y1", True], ["y1", None], [["y1"]]):
        with pytest.raises(ValueError) as err:
            TrainConfig(target=bad)
        assert f"target={bad!r}" in _message(err), _message(err)


def test_an_npz_with_several_target_arrays_says_how(tmp_path: Path) -> None:
    table = _frame()
    np.savez(tmp_path / "d.npz", x=table[:, :3], y1=table[:, 3], y2=table[:, 4])
    with pytest.raises(ValueError) as err:
        load_data(str(tmp_path / "d.npz"), target=["y1", "y2"])
    msg = _message(err)
    assert "target=['y1', 'y2']" in msg and "np.column_stack" in msg and "a CSV trains one" not in msg, msg


def test_names_joined_by_a_comma_are_told_to_be_a_list(tmp_path: Path) -> None:
    # `target=y1,y2` unbracketed on the command line is one string: not split (a column may hold a comma), but named
    path = _write_csv(tmp_path / "d.csv", _frame())
    with pytest.raises(ValueError) as err:
        load_data(str(path), target="y1,y2")
    assert "give a list: target=[y1, y2] (Python: target=['y1', 'y2'])" in _message(err), _message(err)
