"""The ``lrkit`` console command shuts down a torch.distributed process group that its command started.

A ``lrkit find task.py`` whose task file starts a gloo group (``dist.init_process_group`` in ``model()``, as a DDP
task under torchrun does) left it to interpreter exit, where gloo's threads can abort the process ("terminate called
without an active exception", SIGABRT): under load one rank of a finished, successful ``torchrun ... lrkit find`` did
so (the fresh-clone CI of session 27), and torchrun reported the launch as failed. Now the command destroys such a
group before the process exits; a group that was there before the command started is left as it was.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from _helpers import free_port
from lrkit.cli.app import main

_TASK = '''
import torch
import torch.distributed as dist

torch.manual_seed(0)
X = torch.randn(64, 4)
Y = X.sum(1, keepdim=True)


def model():
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return torch.nn.Linear(4, 1)


def optimizer(params):
    return torch.optim.SGD(params, lr=0.01)


def train_loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=8, shuffle=True)


loss_fn = torch.nn.functional.mse_loss
'''


@pytest.fixture
def one_rank(environment_as_it_was: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-rank group's environment (as torchrun sets it); any group left at the end is destroyed."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def _find(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    (tmp_path / "task.py").write_text(_TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["lrkit", "find", "task.py", "--out", str(tmp_path / "lr"), "--num-steps", "20",
                                      "--no-chart"])
    with pytest.raises(SystemExit) as done:
        main()
    return int(done.value.code or 0)


@pytest.mark.usefixtures("one_rank")
def test_a_group_the_task_file_started_is_destroyed_before_the_command_ends(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert _find(tmp_path, monkeypatch) == 0
    assert (tmp_path / "lr" / "lr_find.json").exists()
    assert not dist.is_initialized()


@pytest.mark.usefixtures("one_rank")
def test_a_group_that_was_there_before_the_command_is_left_alone(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    dist.init_process_group("gloo")
    assert _find(tmp_path, monkeypatch) == 0
    assert dist.is_initialized() and dist.get_world_size() == 1


@pytest.mark.usefixtures("one_rank")
def test_a_failing_command_destroys_its_group_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "task.py").write_text(_TASK.replace("lr=0.01", "lr=0.01, nesterov=True"))  # nesterov needs momentum
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["lrkit", "find", "task.py", "--out", str(tmp_path / "lr"), "--no-chart"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code not in (0, None)
    assert os.environ["WORLD_SIZE"] == "1" and not dist.is_initialized()
