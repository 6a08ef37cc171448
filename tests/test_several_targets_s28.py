"""``target=`` of several CSV columns: an error that says how to train several regression targets (an NPZ)."""

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


def _says_how(message: str) -> None:
    # Bug: it said only "target=['y1', 'y2'] must be a column name or index" — nothing on how to train both
    text = " ".join(message.split())
    assert "target=['y1', 'y2']" in text and "a CSV trains one target column" in text, text
    assert "np.savez('data.npz', x=df.drop(columns=['y1', 'y2']).to_numpy(), y=df[['y1', 'y2']].to_numpy())" in text


def test_python_api(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        lrkit.train("mlp", data=str(_csv(tmp_path)), target=["y1", "y2"], epochs=1, project=str(tmp_path / "runs"))
    _says_how(str(err.value))
    assert not (tmp_path / "runs").exists()


def test_cli(tmp_path: Path) -> None:
    out = CliRunner().invoke(build_app(), ["train", f"data={_csv(tmp_path)}", "target=[y1, y2]", "epochs=1",
                                           f"project={tmp_path / 'runs'}"])
    assert out.exit_code != 0
    _says_how(out.output)


def test_data_yaml(tmp_path: Path) -> None:
    _csv(tmp_path)
    (tmp_path / "d.yaml").write_text("train: d.csv\nval: 0.2\ntarget: [y1, y2]\n")
    with pytest.raises(ValueError) as err:
        lrkit.train("mlp", data=str(tmp_path / "d.yaml"), epochs=1, project=str(tmp_path / "runs"))
    _says_how(str(err.value))


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


def test_one_name_in_a_list_is_not_offered_the_npz() -> None:
    from lrkit.train.data import several_targets_hint

    assert several_targets_hint(["y1"]) == "" and several_targets_hint(("y1", "y2")).startswith("; a CSV trains")
