"""What an end-to-end hunt of ``lrkit find my_task.py`` as a new user meets it found: each test failed before its fix.

A task file whose code raises *during* the range test (a forward whose shapes do not fit the data, a ``step_fn`` with
a typo, a Dataset whose ``__getitem__`` raises) printed a torch traceback and exited with code 1; a task file that
calls ``sys.exit()`` when loaded (a training script with ``argparse`` at module level) ended ``lrkit find`` silently
with its own exit code. Each now exits with code 2 and one line naming the task file (and the line, where the error
was raised in it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app

_HEAD = """import torch
X = torch.randn(64, 4)
y = torch.randint(0, 3, (64,))
def optimizer(params):
    return torch.optim.SGD(params, lr=0.1)
"""
_LOADER = """def train_loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
"""
_LOSS = "loss_fn = torch.nn.functional.cross_entropy\n"


def _find(tmp_path: Path, body: str, *extra: str) -> Any:
    task = tmp_path / "my_task.py"
    task.write_text(body)
    return CliRunner().invoke(build_app(), ["find", str(task), "--num-steps", "10", "--out", str(tmp_path / "o"),
                                            *extra])


def _clean_failure(res: Any, *parts: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    assert isinstance(res.exception, SystemExit)
    assert "error:" in res.output
    for part in parts:
        assert part in res.output, res.output


def _line_of(body: str, text: str) -> int:
    return next(i for i, line in enumerate(body.splitlines(), 1) if text in line)


def test_a_forward_whose_shapes_do_not_fit_the_data_is_one_line_naming_the_task_file(tmp_path: Path) -> None:
    body = _HEAD + _LOADER + _LOSS + "def model():\n    return torch.nn.Linear(5, 3)\n"  # the data has 4 features
    res = _find(tmp_path, body)
    _clean_failure(res, "my_task.py", "RuntimeError", "mat1 and mat2 shapes cannot be multiplied")
    assert not (tmp_path / "o").exists()  # nothing written for a test that never ran


def test_a_step_fn_that_raises_names_the_function_and_its_line(tmp_path: Path) -> None:
    body = _HEAD + _LOADER + (
        "def model():\n    return torch.nn.Linear(4, 3)\n"
        "def step_fn(model, batch):\n"
        "    out = model(batch[0])\n"
        "    return torch.nn.functional.cross_entropy(out, batch[1]) + undefined_name\n"
    )
    res = _find(tmp_path, body)
    _clean_failure(res, "my_task.py", "step_fn", f"line {_line_of(body, 'undefined_name')}", "NameError",
                   "undefined_name")


def test_a_model_forward_that_raises_names_its_line(tmp_path: Path) -> None:
    body = _HEAD + _LOADER + _LOSS + (
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(4, 3)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x) + self.missing\n"
        "def model():\n    return Net()\n"
    )
    res = _find(tmp_path, body)
    _clean_failure(res, "my_task.py", "forward", f"line {_line_of(body, 'self.missing')}", "AttributeError",
                   "missing")


def test_a_dataset_that_raises_while_loading_a_batch_names_its_line(tmp_path: Path) -> None:
    body = _HEAD + _LOSS + (
        "class DS(torch.utils.data.Dataset):\n"
        "    def __len__(self):\n        return 10\n"
        "    def __getitem__(self, i):\n        return {}[i]\n"
        "def model():\n    return torch.nn.Linear(4, 3)\n"
        "def train_loader():\n    return torch.utils.data.DataLoader(DS(), batch_size=2)\n"
    )
    res = _find(tmp_path, body)
    _clean_failure(res, "my_task.py", "__getitem__", f"line {_line_of(body, '{}[i]')}", "KeyError")


def test_lrkits_own_checks_keep_their_message(tmp_path: Path) -> None:
    """The wrapping is for the user's code only: an error lrkit raises itself reads as before."""
    body = _HEAD + _LOSS + "def model():\n    return torch.nn.Linear(4, 3)\ndef train_loader():\n    return []\n"
    res = _find(tmp_path, body)
    _clean_failure(res, "error: train_loader yielded no batches")


@pytest.mark.parametrize("code", ["import sys\nsys.exit(3)\n",
                                  "import argparse\nargparse.ArgumentParser().parse_args(['--nope'])\n"])
def test_a_task_file_that_exits_when_loaded_is_named_not_a_silent_exit(tmp_path: Path, code: str) -> None:
    res = _find(tmp_path, code)
    _clean_failure(res, "my_task.py", "SystemExit", "if __name__ == '__main__'")


def test_a_task_file_whose_model_exits_is_named(tmp_path: Path) -> None:
    body = _HEAD + _LOADER + _LOSS + "import sys\ndef model():\n    sys.exit(0)\n"
    res = _find(tmp_path, body)  # exit code 0 from a model() that was meant to return one: never a success
    _clean_failure(res, "model()", "my_task.py", f"line {_line_of(body, 'sys.exit(0)')}", "SystemExit")
