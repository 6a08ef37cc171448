"""``target=`` of several CSV columns.

Session 28 made it an error that said how to train several regression targets (an NPZ); session 29 trains them from
the CSV itself (tests/test_csv_targets_s29e.py), so these tests now check that each form trains both targets, and
that the NPZ advice is left where it still applies: an NPZ's ``target=`` naming several arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app


def _csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    rows = ["a,b,c,y1,y2", *(f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{2 * r[0]:.4f},{r[1] - r[2]:.4f}" for r in x)]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _two_outputs(run_dir: Path) -> None:
    loaded = lrkit.load_run(run_dir)
    assert loaded.target == ["y1", "y2"] and loaded.model(torch.zeros(1, 3)).shape == (1, 2)


def test_python_api(tmp_path: Path) -> None:
    run = lrkit.train("mlp", data=str(_csv(tmp_path)), target=["y1", "y2"], epochs=1, project=str(tmp_path / "runs"),
                      verbose=False, plots=False)
    assert run.task == "regression" and "val_rmse" in run.history[0]
    _two_outputs(run.run_dir)


def test_cli(tmp_path: Path) -> None:
    out = CliRunner().invoke(build_app(), ["train", f"data={_csv(tmp_path)}", "target=[y1, y2]", "epochs=1",
                                           f"project={tmp_path / 'runs'}", "name=cli", "plots=false"])
    assert out.exit_code == 0, out.output
    _two_outputs(tmp_path / "runs" / "cli")


def test_data_yaml(tmp_path: Path) -> None:
    _csv(tmp_path)
    (tmp_path / "d.yaml").write_text("train: d.csv\nval: 0.2\ntarget: [y1, y2]\n")
    run = lrkit.train("mlp", data=str(tmp_path / "d.yaml"), epochs=1, project=str(tmp_path / "runs"), verbose=False,
                      plots=False)
    _two_outputs(run.run_dir)


def test_the_npz_it_proposes_trains_both_targets(tmp_path: Path) -> None:
    # the advice works: the same table as an NPZ with y of two columns trains a two-output regression
    a = np.loadtxt(_csv(tmp_path), delimiter=",", skiprows=1)
    np.savez(tmp_path / "data.npz", x=a[:, :3], y=a[:, 3:])
    run = lrkit.train("mlp", data=str(tmp_path / "data.npz"), epochs=1, lr0=0.01, project=str(tmp_path / "runs"),
                      verbose=False)
    assert run.model(torch_rows(a[:2, :3])).shape == (2, 2)


def torch_rows(a: np.ndarray) -> torch.Tensor:
    """``a`` as the float32 rows a model takes."""
    return torch.as_tensor(a, dtype=torch.float32)


def test_the_hint_is_for_an_npz_of_several_target_arrays(tmp_path: Path) -> None:
    from lrkit.train.data import several_targets_hint

    assert several_targets_hint(["y1"]) == "" and "np.column_stack([y1, y2])" in several_targets_hint(("y1", "y2"))
    a = np.loadtxt(_csv(tmp_path), delimiter=",", skiprows=1)
    np.savez(tmp_path / "data.npz", x=a[:, :3], y1=a[:, 3], y2=a[:, 4])
    with pytest.raises(ValueError) as err:
        lrkit.train("mlp", data=str(tmp_path / "data.npz"), target=["y1", "y2"], epochs=1,
                    project=str(tmp_path / "runs"))
    text = " ".join(str(err.value).split())
    assert "target=['y1', 'y2'] names several targets, but an NPZ's target is one array" in text, text
    assert "np.savez('data.npz', x=x, y=np.column_stack([y1, y2]))" in text
    assert not (tmp_path / "runs").exists()
