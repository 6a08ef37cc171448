"""Session 18, a newcomer's first half hour: what a fresh install hit when following the README from the top.

1. ``lrkit.train(data="digits", model="mlp", epochs=20, lr0="auto")`` — the README's first training example, from
   Python — warned ``scheduler.step() was called once per 2 optimizer steps ... Call scheduler.step() after every
   optimizer.step()`` from lrkit's own training loop. ``lr0="auto"``'s trials build an lrkit scheduler over the
   run's optimizer inside a :class:`~lrkit._state.Snapshot`; the restore removed the optimizer's
   ``_lrkit_counts_steps`` flag but not the step post-hook it stood for, so the run's own scheduler registered a
   second hook and every optimizer step counted twice.
2. On a console whose encoding cannot show an em dash (``PYTHONIOENCODING=ascii``, a cp437 code page) the CLI
   draws its chart in ASCII, as the README says, then died on the table title's ``—``: ``lrkit find`` and ``lrkit
   schedule`` with a traceback, ``lrkit train`` with ``error: 'ascii' codec can't encode ...`` and no run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch

import lrkit
from lrkit import schedules
from lrkit._state import Snapshot

_RATE_WARNING = "scheduler.step() was called once per"


def _model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def _train_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, n: int) -> None:
    x = torch.randn(8, 4)
    for _ in range(n):
        model(x).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)


def test_scheduler_built_after_a_restore_counts_each_optimizer_step_once() -> None:
    """A scheduler built (and dropped) inside a snapshot window — what ``lr0="auto"``'s trials do — leaves the
    optimizer with one step counter, so the next scheduler stepped once per optimizer step does not warn."""
    model, optimizer = _model_and_optimizer()
    spec = "cosine lr0=0.1"
    snapshot = Snapshot.capture(model, optimizer)
    trial = schedules.from_spec(spec, epochs=2, steps_per_epoch=5).to_torch(optimizer)
    _train_steps(model, optimizer, trial, 3)
    snapshot.restore()
    scheduler = schedules.from_spec(spec, epochs=2, steps_per_epoch=5).to_torch(optimizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train_steps(model, optimizer, scheduler, 4)
    assert [str(w.message) for w in caught if _RATE_WARNING in str(w.message)] == []
    from lrkit.schedules.torch import _count_optimizer_step

    hooks = [h for h in optimizer._optimizer_step_post_hooks.values() if h is _count_optimizer_step]
    assert len(hooks) == 1


def test_scheduler_rate_warning_still_fires_after_a_restore() -> None:
    """The fix keeps the check: stepping the scheduler once per 3 optimizer steps still warns after a restore."""
    model, optimizer = _model_and_optimizer()
    snapshot = Snapshot.capture(model, optimizer)
    schedules.from_spec("cosine lr0=0.1", epochs=2, steps_per_epoch=6).to_torch(optimizer)
    snapshot.restore()
    scheduler = schedules.from_spec("cosine lr0=0.1", epochs=2, steps_per_epoch=6).to_torch(optimizer)
    x = torch.randn(8, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            model(x).pow(2).mean().backward()
            optimizer.step()
        scheduler.step()
    messages = [str(w.message) for w in caught if _RATE_WARNING in str(w.message)]
    assert len(messages) == 1 and "once per 3 optimizer steps" in messages[0]


def test_readme_train_example_with_auto_lr0_gives_no_scheduler_warning(tmp_path: Path) -> None:
    """The README's first ``lrkit.train`` example, as written (a ``project=`` in tmp): no warning about how lrkit's
    own loop steps its scheduler."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = lrkit.train(data="digits", model="mlp", epochs=20, lr0="auto", project=str(tmp_path), plots=False)
    assert results.lr0_source == "auto"
    assert [str(w.message) for w in caught if _RATE_WARNING in str(w.message)] == []


_TASK = """
import torch
g = torch.Generator().manual_seed(0)
X = torch.randn(128, 4, generator=g)
y = (X[:, 0] > 0).long()

def model():
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

def optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)

def train_loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16, shuffle=True)

loss_fn = torch.nn.functional.cross_entropy
"""


def _cli(args: list[str], cwd: Path, encoding: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": encoding, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "lrkit", *args], cwd=cwd, env=env, capture_output=True,
                          timeout=300)


def _check_ascii_run(res: subprocess.CompletedProcess, encoding: str) -> str:
    out, err = res.stdout.decode(encoding), res.stderr.decode(encoding)  # every byte shows in that encoding
    assert res.returncode == 0, (out, err)
    assert "Traceback" not in err and "codec can't encode" not in out + err, err
    return out


def test_find_cli_on_an_ascii_console_prints_its_table(tmp_path: Path) -> None:
    task = tmp_path / "task.py"
    task.write_text(_TASK)
    for encoding in ("ascii", "cp437"):
        out_dir = tmp_path / f"out_{encoding}"
        res = _cli(["find", str(task), "--num-steps", "30", "--end-lr", "1", "--out", str(out_dir)], tmp_path,
                   encoding)
        out = _check_ascii_run(res, encoding)
        assert "suggestion (robust)" in out and "LR range test" in out
        assert (out_dir / "lr_find.json").is_file()


def test_schedule_cli_on_an_ascii_console_prints_its_table(tmp_path: Path) -> None:
    for encoding in ("ascii", "cp437"):
        res = _cli(["schedule", "cosine lr0=0.1 warmup_steps=10", "-t", "100", "--no-plot"], tmp_path, encoding)
        out = _check_ascii_run(res, encoding)
        assert "warmup" in out and "decay" in out and "100 steps" in out


def test_train_cli_on_an_ascii_console_trains(tmp_path: Path) -> None:
    res = _cli(["train", "data=iris", "epochs=1", f"project={tmp_path / 'runs'}", "plots=false"], tmp_path, "ascii")
    out = _check_ascii_run(res, "ascii")
    assert "epoch 1/1" in out
    assert (tmp_path / "runs" / "train" / "last.pt").is_file()
