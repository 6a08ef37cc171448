"""Session 34: a task file whose ``train_loader()`` builds the loader and forgets ``return`` got find_lr's
"train_loader is a NoneType, which cannot be iterated: pass a DataLoader" — Python-API advice that did not name the
task file's function. ``model()`` / ``optimizer(params)`` returning None now also ask whether a ``return`` is
missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.finder.demo import load_task_file

_TASK = """
import torch
def model():
    {model}torch.nn.Linear(4, 2)
def optimizer(params):
    {opt}torch.optim.SGD(params, lr=0.01)
def train_loader():
    ds = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    {loader}torch.utils.data.DataLoader(ds, batch_size=8)
def loss_fn():
    return torch.nn.CrossEntropyLoss()
"""


@pytest.mark.parametrize(("forgot", "function"), [("model", "model()"), ("opt", "optimizer(params)"),
                                                  ("loader", "train_loader()")])
def test_a_function_without_return_is_named_with_the_likely_cause(tmp_path: Path, forgot: str, function: str) -> None:
    keys = {k: "" if k == forgot else "return " for k in ("model", "opt", "loader")}
    path = tmp_path / f"task_{forgot}.py"
    path.write_text(_TASK.format(**keys))
    with pytest.raises(ValueError) as info:
        load_task_file(path)
    message = str(info.value)
    assert message.startswith(f"{function} in {str(path)!r} returned None") or \
        message.startswith(f"{function} in {str(path)!r} returned NoneType"), message
    assert "is a `return` missing?" in message


def test_a_task_file_that_returns_everything_loads(tmp_path: Path) -> None:
    path = tmp_path / "task_ok.py"
    path.write_text(_TASK.format(model="return ", opt="return ", loader="return "))
    task = load_task_file(path)
    assert len(list(task.train_loader)) == 8
