"""``lrkit train model=mm.py:make ...`` whose own code raises mid-training (a ``forward`` with a ``KeyError`` after a
few steps, an optimizer class's ``step``) printed a full traceback and exited with code 1. Each now exits with code 2
and one line naming the user's file, the function and the line where the error was raised, and the run directory is
removed as for any failed first epoch. lrkit's own errors read as before; Ctrl-C still exits with 130.
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app

# a model whose forward works for `ok_calls` calls, then raises on line `BAD` (marked "# BAD")
_MODEL = """import torch


class Net(torch.nn.Module):
    def __init__(self, in_features, num_outputs, ok_calls):
        super().__init__()
        self.fc = torch.nn.Linear(in_features, num_outputs)
        self.calls = 0
        self.ok_calls = ok_calls

    def forward(self, x):
        self.calls += 1
        if self.calls > self.ok_calls:
            {raise_line}  # BAD
        return self.fc(x)


def make(in_features, num_outputs):
    return Net(in_features, num_outputs, {ok_calls})
"""

_OPTIMIZER = """import torch


class Opt(torch.optim.SGD):
    def __init__(self, params, lr=0.01, **kwargs):
        super().__init__(params, lr=lr)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        if self.steps > 1:
            {raise_line}  # BAD
        return super().step(closure)
"""


def _line_of(body: str, text: str) -> int:
    return next(i for i, line in enumerate(body.splitlines(), 1) if text in line)


def _model(raise_line: str = 'return {"a": x}["b"]', ok_calls: int = 3) -> str:
    return _MODEL.replace("{raise_line}", raise_line).replace("{ok_calls}", str(ok_calls))


def _train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *tokens: str) -> Any:
    monkeypatch.chdir(tmp_path)
    epochs = [] if any(t.startswith("epochs=") for t in tokens) else ["epochs=2"]
    return CliRunner().invoke(build_app(), ["train", "data=iris", *epochs, f"project={tmp_path / 'runs'}", *tokens])


def _clean_failure(res: Any, tmp_path: Path, *parts: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    assert isinstance(res.exception, SystemExit)
    error_lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, res.output
    for part in parts:
        assert part in error_lines[0], res.output
    assert not (tmp_path / "runs" / "train").exists()  # no epoch finished: the run directory is removed
    assert not (tmp_path / "runs").exists()


def test_a_forward_that_raises_after_a_few_steps_names_the_file_function_and_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _model()
    (tmp_path / "mm.py").write_text(body)
    res = _train(tmp_path, monkeypatch, "model=mm.py:make", "lr0=0.01")
    line = _line_of(body, "# BAD")
    _clean_failure(res, tmp_path, "training failed running model file 'mm.py'", f"(in forward, line {line})",
                   "KeyError: 'b'")


def test_a_model_file_given_by_absolute_path_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    body = _model('raise IndexError("row 7 is missing")', ok_calls=1)
    sub = tmp_path / "models"
    sub.mkdir()
    (sub / "net.py").write_text(body)
    res = _train(tmp_path, monkeypatch, f"model={sub / 'net.py'}:make", "lr0=0.01")
    line = _line_of(body, "# BAD")
    _clean_failure(res, tmp_path, f"model file {str(sub / 'net.py')!r}", f"(in forward, line {line})",
                   "IndexError: row 7 is missing")


def test_a_module_of_the_working_directory_named_by_import_path_is_named_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"s8_user_models_{uuid.uuid4().hex[:8]}"
    body = _model()
    (tmp_path / f"{name}.py").write_text(body)
    try:
        res = _train(tmp_path, monkeypatch, f"model={name}:make", "lr0=0.01")
    finally:
        sys.modules.pop(name, None)
    line = _line_of(body, "# BAD")
    _clean_failure(res, tmp_path, f"{name}.py", "model file", f"(in forward, line {line})", "KeyError: 'b'")


def test_an_optimizer_class_from_a_user_file_whose_step_raises_names_its_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _OPTIMIZER.replace("{raise_line}", 'return {}["state"]')
    (tmp_path / "myopt.py").write_text(body)
    res = _train(tmp_path, monkeypatch, "model=mlp", "optimizer=myopt.py:Opt", "lr0=0.01")
    line = _line_of(body, "# BAD")
    _clean_failure(res, tmp_path, "training failed running optimizer file 'myopt.py'", f"(in step, line {line})",
                   "KeyError: 'state'")


def test_lrkits_own_message_for_an_optimizer_step_that_fails_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myopt.py").write_text(_OPTIMIZER.replace("{raise_line}", 'raise RuntimeError("my optimizer gave up")'))
    res = _train(tmp_path, monkeypatch, "model=mlp", "optimizer=myopt.py:Opt", "lr0=0.01")
    _clean_failure(res, tmp_path, "error: optimizer='myopt.py:Opt': Opt.step() failed on this model's parameter "
                   "groups: my optimizer gave up")
    assert "training failed running" not in res.output


def test_a_forward_that_raises_during_the_automatic_lr_search_is_named_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _model(ok_calls=5)
    (tmp_path / "mm.py").write_text(body)
    res = _train(tmp_path, monkeypatch, "model=mm.py:make", "lr0=auto", "epochs=10", "batch=8", "nbs=8")
    assert "lr0=auto" in res.output  # the error came from the search, before the first epoch
    assert not re.search(r"epoch +1/", res.output)
    line = _line_of(body, "# BAD")
    _clean_failure(res, tmp_path, "model file 'mm.py'", f"(in forward, line {line})", "KeyError: 'b'")


def test_a_value_error_raised_in_the_users_forward_gains_its_file_and_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _model('raise ValueError("bad batch")')
    (tmp_path / "mm.py").write_text(body)
    res = _train(tmp_path, monkeypatch, "model=mm.py:make", "lr0=0.01")
    line = _line_of(body, "# BAD")
    _clean_failure(res, tmp_path, "model file 'mm.py'", f"(in forward, line {line})", "ValueError: bad batch")


def test_lrkits_own_error_about_a_user_factory_reads_as_the_library_raises_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = "def make(in_features, num_outputs):\n    return {}['net']\n"
    (tmp_path / "mm.py").write_text(body)
    res = _train(tmp_path, monkeypatch, "model=mm.py:make", "lr0=0.01")
    from lrkit.train import train

    with pytest.raises(ValueError) as info:  # the library's own message, which the CLI shows unchanged
        train(data="iris", model="mm.py:make", epochs=2, lr0=0.01, project=str(tmp_path / "runs2"), verbose=False)
    expected = str(info.value).splitlines()[0]
    assert expected.startswith("model='mm.py:make': calling make(")
    _clean_failure(res, tmp_path, expected)
    assert "training failed running" not in res.output


def test_ctrl_c_in_the_users_forward_still_exits_130_with_the_resume_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mm.py").write_text(_model("raise KeyboardInterrupt"))
    res = _train(tmp_path, monkeypatch, "model=mm.py:make", "lr0=0.01")
    assert res.exit_code == 130, res.output
    assert "Traceback" not in res.output
    assert "interrupted" in res.output and "training failed running" not in res.output
    assert not (tmp_path / "runs").exists()
