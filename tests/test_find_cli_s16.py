"""``lrkit find`` details from the session-16 walkthrough: a task file named without ``.py``, and the progress bar
after a test that stopped early."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app

_TASK = '''
import torch
from torch.utils.data import DataLoader, TensorDataset

def model():
    return torch.nn.Linear(4, 3)

def optimizer(params):
    return torch.optim.SGD(params, lr=0.01)

def train_loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)
'''


def test_a_task_file_named_without_its_suffix_gets_a_did_you_mean(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_task.py").write_text(_TASK)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(build_app(), ["find", "my_task", "--out", "o"])
    assert res.exit_code == 2
    assert "task file 'my_task' does not exist; did you mean 'my_task.py'?" in " ".join(res.output.split())
    res = CliRunner().invoke(build_app(), ["find", "other", "--out", "o"])  # no such .py either: no guess
    assert res.exit_code == 2 and "does not exist" in res.output and "did you mean" not in res.output


def test_the_bar_ends_at_the_step_the_test_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def fake_bar(description: str, total: int | None) -> Iterator[Any]:
        calls.append({"total": total})
        yield lambda advance=1, *, total=None, info="": calls.append({"advance": advance, "total": total, "info": info})

    monkeypatch.setattr("lrkit.cli.find.progress_bar", fake_bar)
    task = tmp_path / "t.py"
    task.write_text(_TASK)
    res = CliRunner().invoke(build_app(), ["find", str(task), "--num-steps", "60", "--end-lr", "1e6",
                                           "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    steps = sum(c.get("advance", 0) for c in calls[1:])
    assert steps < 60  # the test stopped early (diverged at LRs up to 1e6)
    last = calls[-1]
    assert last["advance"] == 0 and last["total"] == steps, calls[-3:]
    assert last["info"] in ("stopped: diverged", "stopped: non-finite"), last
