"""`lrkit find` third bug hunt: output folders and paths a user types. Each test failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _helpers import MSE_LOSS_FN, write_task
from lrkit.cli.app import build_app
from lrkit.cli.find import run_find

runner = CliRunner()


def _find(*args: str):
    return runner.invoke(build_app(), ["find", *args])


@pytest.mark.parametrize("out", ["", ".", "..", "./", "sub/.."])
def test_an_out_with_no_folder_name_is_refused(out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: --out "" and --out . wrote into a new folder called "2" (then "3", ...) in the working directory, and
    # --out .. into one called "..2": increment_dir appended a number to an empty (or "..") name.
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work)
    task = write_task(tmp_path, MSE_LOSS_FN)
    calls: list[int] = []
    with pytest.raises(ValueError, match=r"--out=.* names no folder of its own.*e\.g\. --out runs/find"):
        run_find(str(task), num_steps=10, out=out, progress=lambda *a: calls.append(1))
    assert calls == []  # refused before the test
    res = _find(str(task), "--num-steps", "10", "--out", out)
    assert res.exit_code == 2 and "names no folder of its own" in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in work.iterdir()) == ["sub"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "my_task.py", "work"]


def test_tilde_in_out_and_task_file_means_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: --out=~/lr (no shell expands ~ after "=") created a folder literally named "~" in the working directory,
    # and a task file given as "~/my_task.py" was "does not exist"; `lrkit train project=~/...` expands it.
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    write_task(home, MSE_LOSS_FN)
    res = _find("~/my_task.py", "--num-steps", "12", "--out=~/lr")
    assert res.exit_code == 0, res.output
    assert json.loads((home / "lr" / "lr_find.json").read_text())["num_steps"] == 12
    assert not (work / "~").exists()
