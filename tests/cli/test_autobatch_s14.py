"""batch=-1 and batch=0.7 — Ultralytics' AutoBatch — are named as such (session 14).

An Ultralytics user types batch=-1 for AutoBatch; lrkit said only "batch=-1 must be an integer >= 1". Now the error
says what the value means there and what to pass instead, from the CLI and from Python, before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app as app

runner = CliRunner()


@pytest.mark.parametrize("value", ["-1", "0.7", "-1.0"])
def test_autobatch_values_are_named_from_the_cli(tmp_path: Path, value: str) -> None:
    project = tmp_path / "runs"
    res = runner.invoke(app(), ["train", "data=iris", "epochs=1", f"batch={value}", f"project={project}"])
    assert res.exit_code == 2, res.output
    text = res.output.replace("\n", " ")
    assert f"batch={value!r}" in text or f"batch={value}" in text
    assert "Ultralytics' AutoBatch" in text and "batch=32" in text and "Traceback" not in res.output
    assert not project.exists()


def test_autobatch_from_python_and_other_bad_batches_keep_their_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"batch=-1 is Ultralytics' AutoBatch"):
        lrkit.train(None, data="iris", batch=-1, project=tmp_path)
    for bad, message in ((0, "batch=0 must be an integer >= 1"), (-2, "batch=-2 must be an integer >= 1"),
                         (2.5, "batch=2.5 must be an integer"), (True, "batch=True must be an integer")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            lrkit.train(None, data="iris", batch=bad, project=tmp_path)
    assert not any(tmp_path.iterdir())
