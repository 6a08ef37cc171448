"""Fine-tuning from an lrkit run, as Ultralytics' ``YOLO("best.pt").train(data=...)`` (session 19k).

Before, ``model=runs/train/best.pt`` was refused with a factory recipe (``def make(): return
lrkit.load_run(path).model``), and the run that recipe made could be loaded again only while the first run was still
there, from the same working directory (``load_run`` called the factory again). Now ``model=`` takes an lrkit run's
checkpoint or folder, and a run whose model came from ``load_run`` records the architecture it was rebuilt from, so
it loads on its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app

QUIET: dict[str, Any] = {"verbose": False, "plots": False}


@pytest.fixture()
def first(tmp_path: Path) -> lrkit.TrainResults:
    return lrkit.train(data="iris", model="mlp", epochs=3, lr0=0.01, project=str(tmp_path / "a"), **QUIET)


def _start(run: lrkit.TrainResults) -> dict[str, torch.Tensor]:
    return torch.load(run.run_dir / "best.pt", weights_only=True)["model"]


def _drift(model: torch.nn.Module, start: dict[str, torch.Tensor]) -> float:
    return max(float((model.state_dict()[k] - v).abs().max()) for k, v in start.items())


@pytest.mark.parametrize("form", ["file", "folder"])
def test_model_names_a_run_to_fine_tune(first: lrkit.TrainResults, tmp_path: Path, form: str) -> None:
    spec = str(first.run_dir / "best.pt") if form == "file" else str(first.run_dir)
    r = lrkit.train(data="iris", model=spec, epochs=1, lr0=1e-5, project=str(tmp_path / "b"), **QUIET)
    assert _drift(r.model, _start(first)) < 1e-3  # trained on from the run's weights, not a fresh model
    ck = torch.load(r.run_dir / "best.pt", weights_only=True)
    assert ck["model_spec"] == "mlp" and ck["config"]["model"] == spec
    shutil.rmtree(first.run_dir)  # the new run loads on its own
    run = lrkit.load_run(r.run_dir)
    assert type(run.model).__name__ == "MLP" and len(run.predict([[5.1, 3.5, 1.4, 0.2]])) == 1


def test_python_and_factory_recipes_load_without_the_first_run(first: lrkit.TrainResults, tmp_path: Path) -> None:
    py = lrkit.train(lrkit.load_run(first.run_dir).model, data="iris", epochs=1, lr0=1e-5,
                     project=str(tmp_path / "py"), **QUIET)
    (tmp_path / "ft.py").write_text(
        f"import lrkit\ndef make():\n    return lrkit.load_run({str(first.run_dir)!r}).model\n")
    fac = lrkit.train(data="iris", model=f"{tmp_path / 'ft.py'}:make", epochs=1, lr0=1e-5,
                      project=str(tmp_path / "fac"), **QUIET)
    shutil.rmtree(first.run_dir)
    for r in (py, fac):
        assert type(lrkit.load_run(r.run_dir).model).__name__ == "MLP"


def test_cli_fine_tune_and_bad_checkpoints(first: lrkit.TrainResults, tmp_path: Path) -> None:
    res = CliRunner().invoke(build_app(), ["train", "data=iris", f"model={first.run_dir}", "epochs=1", "lr0=1e-5",
                                           f"project={tmp_path / 'c'}", "plots=false"])
    assert res.exit_code == 0, res.output
    assert f"MLP (from {first.run_dir / 'best.pt'})" in res.output
    other = tmp_path / "plain.pt"
    torch.save(torch.nn.Linear(4, 3).state_dict(), other)
    with pytest.raises(ValueError, match=r"model='.*plain\.pt' \(fine-tuning from an lrkit run's checkpoint\): .*is "
                                         r"not an lrkit run's checkpoint"):
        lrkit.train(data="iris", model=str(other), epochs=1, project=str(tmp_path / "d"), **QUIET)
    with pytest.raises(ValueError, match=r"cannot run on the data 'digits'"):  # another shape of data
        lrkit.train(data="digits", model=str(first.run_dir), epochs=1, project=str(tmp_path / "e"), **QUIET)
