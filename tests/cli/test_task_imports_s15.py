"""Session 15 (noticed by audit s15d): ``lrkit find my_task.py`` where the task file imports a module beside it
(``from my_net import build``) failed with ModuleNotFoundError: the console script's ``sys.path`` holds neither the
task file's folder nor the working folder. The file's folder now comes first, as ``python my_task.py`` puts it."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app as app


def test_a_task_file_imports_the_module_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # whatever the loader adds is undone after the test
    sibling = f"s15_net_{uuid.uuid4().hex[:8]}"  # a fresh name: no earlier import can satisfy it
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{sibling}.py").write_text(textwrap.dedent("""
        import torch
        def build():
            torch.manual_seed(0)
            return torch.nn.Linear(3, 1)
    """))
    (folder / "my_task.py").write_text(textwrap.dedent(f"""
        import torch
        from {sibling} import build
        def model():
            return build()
        def optimizer(params):
            return torch.optim.SGD(params, lr=1e-3)
        def train_loader():
            g = torch.Generator().manual_seed(0)
            x = torch.randn(64, 3, generator=g)
            return [(x[i:i + 8], x[i:i + 8].sum(1, keepdim=True)) for i in range(0, 64, 8)]
        def loss_fn():
            return torch.nn.functional.mse_loss
    """))
    monkeypatch.chdir(tmp_path)  # run from elsewhere: the task's own folder is what counts
    res = CliRunner().invoke(app(), ["find", str(folder / "my_task.py"), "--num-steps", "20", "--out",
                                     str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "out" / "lr_find.json").read_text())
    assert len(record["lrs"]) >= 10
