"""`lrkit find task.py` launched with torchrun: rank 0 alone draws, prints and writes; the others run the same test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _helpers import free_port

#: a task file that starts torch.distributed itself and runs one test over every rank's shard
_DDP_TASK = '''
import torch
import torch.distributed as dist

torch.manual_seed(0)
X = torch.randn(256, 8)
Y = (X[:, 0] > 0).long()


def model():
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    return torch.nn.parallel.DistributedDataParallel(net)


def optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


def train_loader():
    rank, world = dist.get_rank(), dist.get_world_size()
    {fail}
    data = torch.utils.data.TensorDataset(X[rank::world], Y[rank::world])
    return torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)


loss_fn = torch.nn.functional.cross_entropy
'''

#: the same task with no process group: each process runs alone
_PLAIN_TASK = '''
import torch

torch.manual_seed(0)
X = torch.randn(256, 8)
Y = (X[:, 0] > 0).long()


def model():
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


def train_loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=16, shuffle=True)


loss_fn = torch.nn.functional.cross_entropy
'''


def _torchrun(tmp: Path, task: str | None, *args: str, steps: int = 40) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node 2 -m lrkit find [task.py] ...`` in ``tmp`` (``task=None``: the built-in demo)."""
    if task is not None:
        (tmp / "task.py").write_text(task)
    src = str(Path(__file__).parents[1] / "src")  # this checkout's lrkit, installed or not
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120",
           "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         "-m", "lrkit", "find", *(["task.py"] if task is not None else []), "--out", str(tmp / "lr"),
         "--num-steps", str(steps), "--no-chart", *args],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp)


def test_a_ddp_task_under_torchrun_prints_and_writes_one_record(tmp_path: Path) -> None:
    done = _torchrun(tmp_path, _DDP_TASK.format(fail=""))
    assert done.returncode == 0, done.stderr[-3000:]
    # one folder, one record and one picture: rank 1 took no lr2 beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr", "task.py"]
    assert sorted(p.name for p in (tmp_path / "lr").iterdir()) == ["lr_find.json", "lr_find.png"]
    record = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    # one table, which says the test ran over both ranks
    assert done.stdout.count("LR range test —") == 1, done.stdout
    assert "2 ranks (torch.distributed)" in done.stdout
    assert f"{record['suggestion']:.3g}" in done.stdout
    assert done.stdout.count("record:") == 1


def test_a_task_without_a_process_group_under_torchrun_is_written_once_and_said(tmp_path: Path) -> None:
    done = _torchrun(tmp_path, _PLAIN_TASK)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr", "task.py"]
    out = " ".join(done.stdout.split())  # (rich wraps long lines)
    assert out.count("LR range test —") == 1 and "ranks" not in out.split("LR range test —")[1].split("\n")[0]
    assert out.count("did not start torch.distributed") == 1, done.stdout
    assert "2 processes were launched (WORLD_SIZE=2)" in out


def test_an_error_on_one_rank_names_that_rank_and_fails_the_launch(tmp_path: Path) -> None:
    fail = "if rank == 1: raise RuntimeError('no shard for this rank')"
    done = _torchrun(tmp_path, _DDP_TASK.format(fail=fail))
    assert done.returncode != 0
    err = " ".join(done.stderr.split())
    assert "rank 1 of 2:" in err and "no shard for this rank" in err, done.stderr[-3000:]
    assert not (tmp_path / "lr").exists()  # nothing half-written


def test_device_is_refused_where_the_task_file_placed_a_ddp_model(tmp_path: Path) -> None:
    # moving a DistributedDataParallel wrapper after it was built breaks it: the task file places the model
    done = _torchrun(tmp_path, _DDP_TASK.format(fail=""), "--device", "cpu")
    assert done.returncode != 0
    err = " ".join(done.stderr.split())
    assert "--device cpu under torch.distributed" in err and "leave out --device" in err, done.stderr[-3000:]
    assert not (tmp_path / "lr").exists()


def test_the_demo_under_torchrun_is_shown_once_and_said_to_run_alone(tmp_path: Path) -> None:
    done = _torchrun(tmp_path, None, steps=20)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr"]
    out = " ".join(done.stdout.split())
    assert out.count("LR range test —") == 1
    assert out.count("each ran the built-in demo on its own") == 1 and "task file did not" not in out


def test_a_bad_option_under_a_launch_names_the_rank(tmp_path: Path, monkeypatch) -> None:
    # checked before anything runs, on every rank: each says which it is, as a later error does
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    for args in (["--rule", "slide"], ["--diverge-factor", "x"]):
        out = CliRunner().invoke(build_app(), ["find", *args, "--out", str(tmp_path / "o")])
        assert out.exit_code == 2
        assert " ".join(out.output.split()).startswith("error: rank 1 of 2: "), out.output
