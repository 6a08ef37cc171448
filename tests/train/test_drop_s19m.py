"""``drop=``: CSV columns that are not features (an ID, a note) are left out (session 19m, from a newcomer's walk).

Before, a CSV with a ``customer_id`` column stopped training with "drop the column", and lrkit had no way to: the
file had to be rewritten with another tool first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import lrkit
from lrkit._config import TrainConfig
from lrkit.cli.app import build_app
from lrkit.train.data import load_data

QUIET = {"verbose": False, "plots": False}


def _csv(path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    rows = [f"C{i:03d},{a:.3f},{b:.3f},note {i},{int(a + b > 0)}" for i, (a, b) in enumerate(rng.normal(size=(n, 2)))]
    path.write_text("customer_id,a,b,comment,label\n" + "\n".join(rows) + "\n")
    return path


def test_text_column_error_names_drop(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"feature column 'customer_id' .* leave it out with drop='customer_id'"):
        load_data(str(_csv(tmp_path / "c.csv")))


@pytest.mark.parametrize("drop", ["customer_id,comment", ["customer_id", "comment"], " customer_id , comment "])
def test_dropped_columns_are_not_features(tmp_path: Path, drop: object) -> None:
    d = load_data(str(_csv(tmp_path / "c.csv")), drop=drop)  # type: ignore[arg-type]
    assert d.info.features == ["a", "b"] and d.info.input_shape == (2,) and d.info.target == "label"


def test_train_and_predict_with_drop(tmp_path: Path) -> None:
    data = _csv(tmp_path / "c.csv")
    r = lrkit.train(data=str(data), drop="customer_id,comment", epochs=2, lr0=0.01, project=str(tmp_path), **QUIET)
    assert yaml.safe_load((r.run_dir / "args.yaml").read_text())["drop"] == ["customer_id", "comment"]
    run = lrkit.load_run(r.run_dir)
    assert run.features == ["a", "b"]
    res = CliRunner().invoke(build_app(), ["predict", str(r.run_dir), str(data)])
    assert res.exit_code == 0, res.output
    assert len(res.stdout.splitlines()) == 61  # header + one prediction per row; the dropped columns are ignored


def test_bad_drops(tmp_path: Path) -> None:
    data = str(_csv(tmp_path / "c.csv"))
    with pytest.raises(ValueError, match=r"drop='customer' is not a column\. Did you mean 'customer_id'\? Columns: "):
        load_data(data, drop=["customer"])
    with pytest.raises(ValueError, match=r"drop='label' is the target column"):
        load_data(data, drop=["customer_id", "comment", "label"])
    with pytest.raises(ValueError, match=r"data='iris' is a built-in dataset; leave drop out"):
        load_data("iris", drop=["x"])
    for bad in ("", ",", 3, ["a", 1]):
        with pytest.raises(ValueError, match=r"drop="):
            TrainConfig.from_kwargs(data=data, drop=bad)
    res = CliRunner().invoke(build_app(), ["train", f"data={data}", "drop=customer", "epochs=1",
                                           f"project={tmp_path / 'p'}"])
    assert res.exit_code != 0 and "Did you mean 'customer_id'" in res.output


def test_data_yaml_with_val_file_drops_in_both(tmp_path: Path) -> None:
    _csv(tmp_path / "tr.csv")
    _csv(tmp_path / "va.csv", n=20)
    (tmp_path / "d.yaml").write_text("train: tr.csv\nval: va.csv\n")
    d = load_data(str(tmp_path / "d.yaml"), drop=("customer_id", "comment"))
    assert d.info.features == ["a", "b"] and d.info.n_val == 20
