"""Log wording and data-file checks of ``lrkit.train`` found by a CLI walkthrough (session 16, s16f).

* a batch capped by lrkit's own loader (a small text, a small Dataset) was logged as "comes from the DataLoader you
  passed" when no DataLoader was passed;
* a ``.py`` (or ``.ipynb``) data file trained a character-level LM on its source instead of being refused;
* "1 epochs x 1 optimizer steps": the plan line's plural for one.

Each test failed before its fix, except the guards marked as such.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lrkit

QUIET = {"plots": False, "verbose": False}


def _text(path: Path, n: int) -> Path:
    rng = random.Random(0)
    path.write_text("".join(rng.choice("abcdefgh \n") for _ in range(n)), encoding="utf-8")
    return path


def _log(capsys: pytest.CaptureFixture[str], **kwargs: object) -> tuple[lrkit.TrainResults, str]:
    capsys.readouterr()
    r = lrkit.train(plots=False, verbose=True, **kwargs)  # type: ignore[arg-type]
    return r, capsys.readouterr().out


def _plan_batch(out: str) -> int:
    """The batch of the plan line ("lrkit.train: E epochs x S optimizer steps (batch B, ...")."""
    m = re.search(r"^lrkit\.train: \d+ epochs? x \d+ optimizer steps? \(batch (\d+),", out, re.M)
    assert m is not None, out
    return int(m.group(1))


# --- 1. a batch capped by lrkit's own loader is not "the DataLoader you passed" ------------------------------------


def test_a_small_text_says_its_windows_cap_the_batch_not_a_dataloader(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: `lrkit train data=small.txt` (640 characters) logged "data: batch=7 comes from the DataLoader you passed
    # (batch=32 ignored)"; no DataLoader was passed: the text holds only 7 windows of seq_len=64.
    _, out = _log(capsys, data=str(_text(tmp_path / "small.txt", 640)), epochs=1, lr0=1e-3, batch=32,
                  project=str(tmp_path / "runs"))
    # val=0.2 of 640 characters: 512 train characters -> (512 - 1) // 64 = 7 windows of seq_len=64
    n = 7
    assert "DataLoader you passed" not in out
    line = next(x for x in out.splitlines() if x.startswith("data: batch=32"))
    assert f"only {n} windows of seq_len=64" in line and "small.txt" in line
    assert "a longer text or a smaller seq_len" in line
    assert _plan_batch(out) == n


def test_the_text_wording_counts_the_windows_of_the_seq_len_given(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # 640 characters, val=0.2: 512 train characters -> (512 - 1) // 16 = 31 windows of seq_len=16
    _, out = _log(capsys, data=str(_text(tmp_path / "small.txt", 640)), epochs=1, lr0=1e-3, batch=64, seq_len=16,
                  project=str(tmp_path / "runs"))
    assert "only 31 windows of seq_len=16" in out and "DataLoader you passed" not in out
    assert _plan_batch(out) == 31


def test_a_batch_above_a_built_in_split_is_said_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: data="iris" batch=1000 logged "batch=120 comes from the DataLoader you passed (batch=1000 ignored)", and
    # the line meant for it ("is larger than the 120 training samples") never showed.
    _, out = _log(capsys, data="iris", model="linear", epochs=1, lr0=0.01, batch=1000, project=str(tmp_path))
    assert "DataLoader you passed" not in out
    assert "data: batch=1000 is larger than the 120 training samples; every batch is the whole training split" in out
    assert _plan_batch(out) == 120


def test_a_small_dataset_of_the_users_is_not_called_a_dataloader(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(10, 3, generator=g), torch.randint(0, 2, (10,), generator=g))
    val = TensorDataset(torch.randn(4, 3, generator=g), torch.randint(0, 2, (4,), generator=g))
    _, out = _log(capsys, data=(ds, val), model="linear", epochs=1, lr0=0.01, batch=32, project=str(tmp_path))
    assert "DataLoader you passed" not in out
    assert "data: batch=32 is larger than the 10 training samples" in out
    assert _plan_batch(out) == 10


def test_a_dataloader_the_user_passed_still_sets_the_batch(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # guard (passed before the fix): the wording stays for a DataLoader the user did pass
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(40, 3, generator=g), torch.randint(0, 2, (40,), generator=g))
    val = TensorDataset(torch.randn(8, 3, generator=g), torch.randint(0, 2, (8,), generator=g))
    _, out = _log(capsys, data=(DataLoader(ds, batch_size=16), DataLoader(val, batch_size=8)), model="linear",
                  epochs=1, lr0=0.01, batch=32, project=str(tmp_path))
    assert "data: batch=16 comes from the DataLoader you passed (batch=32 ignored)" in out
    assert _plan_batch(out) == 16


# --- 2. a Python file (or notebook) is refused as data ----------------------------------------------------------


TASK = "import torch\n\n\ndef model():\n    return torch.nn.Linear(4, 3)\n" + "# padding\n" * 80


@pytest.mark.parametrize("name", ["my_task.py", "My_Task.PY"])
def test_a_python_file_as_data_is_refused_with_what_was_probably_meant(tmp_path: Path, name: str) -> None:
    # Bug: data=my_task.py trained a character-level LM on the Python source (rc 0, no word of it).
    path = tmp_path / name
    path.write_text(TASK, encoding="utf-8")
    with pytest.raises(ValueError) as e:
        lrkit.train(data=str(path), epochs=1, project=str(tmp_path / "runs"), **QUIET)
    msg = str(e.value)
    assert repr(str(path)) in msg and "Python file" in msg
    assert f"lrkit find {path}" in msg  # a task file
    assert f"model={path}:" in msg  # a model factory
    assert ".txt" in msg  # a text corpus
    assert not (tmp_path / "runs").exists()  # refused before any run folder is made


def test_a_notebook_as_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "explore.ipynb"
    path.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}) + " " * 800,
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"Jupyter notebook") as e:
        lrkit.train(data=str(path), epochs=1, project=str(tmp_path / "runs"), **QUIET)
    assert "explore.ipynb" in str(e.value) and ".txt" in str(e.value)


def test_a_data_yaml_naming_a_python_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "my_task.py").write_text(TASK, encoding="utf-8")
    _text(tmp_path / "val.txt", 400)
    spec = tmp_path / "data.yaml"
    spec.write_text("train: my_task.py\nval: val.txt\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"data\.yaml: train='my_task\.py'.*Python file"):
        lrkit.train(data=str(spec), epochs=1, project=str(tmp_path / "runs"), **QUIET)


def test_a_python_file_renamed_to_txt_still_trains_as_text(tmp_path: Path) -> None:
    # guard: the refusal is by suffix; the README's way out (a .txt name) still trains a character-level LM
    path = tmp_path / "source.txt"
    path.write_text(TASK, encoding="utf-8")
    r = lrkit.train(data=str(path), epochs=1, lr0=1e-3, project=str(tmp_path / "runs"), **QUIET)
    assert r.epochs_run == 1


def test_the_cli_refuses_a_python_data_file_with_rc_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    (tmp_path / "my_task.py").write_text(TASK, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(build_app(), ["train", "data=my_task.py", "epochs=1", "plots=False"],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "lrkit find my_task.py" in text and not (tmp_path / "runs").exists()


# --- 3. "1 epoch x 1 optimizer step" ----------------------------------------------------------------------------


def _plan_line(out: str) -> str:
    return next(x for x in out.splitlines() if re.match(r"lrkit\.train: \d+ epochs? x ", x))


def test_the_plan_line_says_1_epoch_and_1_optimizer_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: "lrkit.train: 1 epochs x 1 optimizer steps (batch 120, ...)"
    _, out = _log(capsys, data="iris", model="linear", epochs=1, lr0=0.01, batch=120, project=str(tmp_path))
    assert _plan_line(out).startswith("lrkit.train: 1 epoch x 1 optimizer step (batch 120, accumulate 1 -> ")


def test_the_plan_line_keeps_the_plural_for_more_than_one(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # iris: 120 training samples, batch 64 -> 2 batches, accumulate 1 -> 2 optimizer steps per epoch
    _, out = _log(capsys, data="iris", model="linear", epochs=2, lr0=0.01, batch=64, project=str(tmp_path))
    assert _plan_line(out).startswith("lrkit.train: 2 epochs x 2 optimizer steps (batch 64, ")
