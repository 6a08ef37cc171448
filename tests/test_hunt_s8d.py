"""Bug hunt s8d on the last five commits: ``flat_edge``'s non-finite rule, ``user_code_error`` (find / train) and the
trainer's once-per-epoch ``adapts`` flag for results.csv's ``d_lr`` columns. Each test failed before its fix, but
the two on a curve that *ends* non-finite: they keep the rule the fix narrows to.

1. ``flat_edge`` read *any* non-finite loss as the curve having blown up past its last finite point, so a flat curve
   with one NaN in the middle (or at its start) that went on flat to the end of the sweep was read as blowing up at
   the very last LR tested: ``FinderResult.flat`` was True and the suggestion a decade below the *end* of the sweep.
   Its own docstring says the NaN reads like one large finite loss in its place — which the running median ignores.
   Only a curve that *ends* non-finite (where the range test stops) blew up past its last finite point.
2. ``user_code_error`` matched traceback frames against ``path.resolve()`` but the frames carry the path the file was
   imported by (absolute, symlinks kept): a task file reached through a symlink (or in a folder reached through one,
   as ``/tmp`` is on macOS) lost its function and line. An exception whose ``__str__`` raises crashed the CLI with a
   traceback from inside the error handling; an empty message left a dangling ``"RuntimeError: "``. The task file's
   own loading (``finder.demo._call_user``) had the same symlink and ``__str__`` faults.
3. ``_Trainer`` read whether the optimizer adapts its step size (groups carrying ``d``/``d0``) once per epoch: an
   optimizer whose groups gain ``d`` in their first ``step()`` had no ``d_lr`` read before any step of epoch 0, so
   the row fell back to the group's *next* step size (the grown ``d``, the scheduler's next LR), not the last one's.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lrkit
from _helpers import three_class_split
from lrkit.cli._common import user_code_error
from lrkit.cli.app import build_app
from lrkit.finder import FinderResult
from lrkit.finder import suggest as S
from lrkit.finder.demo import load_task_file

# -- 1. flat_edge: only a curve that *ends* non-finite blew up past its last finite point ---------------------------

_LRS = np.logspace(-6, 0, 100)
_FLAT = 1.0 + 0.005 * np.random.default_rng(0).normal(size=100)  # learns nothing, never blows up


@pytest.mark.parametrize("at", [0, 2, 40, 90])
def test_a_flat_curve_with_one_nan_that_goes_on_flat_has_no_edge(at: int) -> None:
    spiked = _FLAT.copy()
    spiked[at] = 1e3  # the docstring's rule: the NaN reads like one large finite loss in its place
    assert S.flat_edge(_LRS, spiked) is None  # (the running median ignores one bad batch)
    holed = _FLAT.copy()
    holed[at] = np.nan
    assert S.flat_edge(_LRS, holed) is None
    r = FinderResult(lrs=list(_LRS), losses=list(holed))
    assert r.flat is False
    assert r.suggestion == S.suggest_robust(_LRS, holed) == S.suggest_robust(_LRS, holed, flat=None)
    assert r.backoff == S.robust_backoff(_LRS, holed, flat=None)  # read as any curve is: the flat rule stays out


@pytest.mark.parametrize("at", [20, 60])
def test_a_flat_curve_that_ends_non_finite_still_blows_up_past_its_last_finite_point(at: int) -> None:
    ended = _FLAT.copy()
    ended[at] = np.inf
    ended[at + 1:] = np.nan
    assert S.flat_edge(_LRS, ended) == at  # the finite curve's first `at` points: its last one is the edge
    r = FinderResult(lrs=list(_LRS), losses=list(ended), stop_reason="non-finite")
    assert r.flat is True and r.edge == float(_LRS[at - 1])
    assert r.suggestion == pytest.approx(max(float(_LRS[at - 1]) / 10.0, float(_LRS[0])), rel=1e-12)
    assert r.range == (r.suggestion, r.edge)


def test_a_nan_in_the_middle_and_a_non_finite_end_reads_the_end() -> None:
    both = _FLAT.copy()
    both[30] = np.nan
    both[70:] = np.nan
    assert S.flat_edge(_LRS, both) == 69  # 70 points before the end, less the NaN at 30


# -- 2. user_code_error: symlinks, broken or empty messages -------------------------------------------------------

_TASK = """import torch
X = torch.randn(64, 4)
y = torch.randint(0, 3, (64,))
def model():
    return torch.nn.Linear(4, 3)
def optimizer(params):
    return torch.optim.SGD(params, lr=0.1)
def train_loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("this message cannot be shown")
def step_fn(model, batch):
    {raise_line}  # BAD
"""


def _task(raise_line: str) -> str:
    return _TASK.replace("{raise_line}", raise_line)


def _line_of(body: str, text: str) -> int:
    return next(i for i, line in enumerate(body.splitlines(), 1) if text in line)


def _raised_in(path: Path, call: str) -> Exception:
    """The error raised by ``call`` (a function of the task file at ``path``, loaded as lrkit loads it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"s8d_{abs(hash(str(path))):x}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        getattr(module, call)(None, None)
    except Exception as e:
        return e
    raise AssertionError(f"{call} did not raise")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_task_file_reached_through_a_symlink_is_named_with_its_function_and_line(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    body = _task('raise RuntimeError("boom")')
    (real / "my_task.py").write_text(body)
    link = tmp_path / "link_task.py"
    link.symlink_to(real / "my_task.py")
    error = user_code_error(_raised_in(link, "step_fn"), {link: "task file"}, "it failed")
    assert str(error) == f"it failed running task file {str(link)!r} (in step_fn, line {_line_of(body, '# BAD')}): " \
                         "RuntimeError: boom"
    res = CliRunner().invoke(build_app(), ["find", str(link), "--num-steps", "10", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert f"(in step_fn, line {_line_of(body, '# BAD')})" in res.output, res.output


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_symlinked_task_files_model_that_raises_names_its_line(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    body = _task("pass").replace("    return torch.nn.Linear(4, 3)", "    return {}['net']  # MODEL")
    (real / "my_task.py").write_text(body)
    link = tmp_path / "link_task.py"
    link.symlink_to(real / "my_task.py")
    with pytest.raises(ValueError) as info:
        load_task_file(link)
    assert f"(line {_line_of(body, '# MODEL')})" in str(info.value)


def test_an_error_whose_message_cannot_be_shown_is_still_one_clean_line(tmp_path: Path) -> None:
    body = _task("raise Unprintable()")
    task = tmp_path / "my_task.py"
    task.write_text(body)
    error = user_code_error(_raised_in(task, "step_fn"), {task: "task file"}, "it failed")
    text = str(error)  # built without calling the broken __str__ again
    assert text.startswith(f"it failed running task file {str(task)!r} (in step_fn, line {_line_of(body, '# BAD')})")
    assert "Unprintable" in text
    res = CliRunner().invoke(build_app(), ["find", str(task), "--num-steps", "10", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert isinstance(res.exception, SystemExit)
    assert "Unprintable" in res.output


def test_a_task_file_whose_model_raises_an_unprintable_error_is_named(tmp_path: Path) -> None:
    body = _task("pass").replace("    return torch.nn.Linear(4, 3)", "    raise Unprintable()  # MODEL")
    task = tmp_path / "my_task.py"
    task.write_text(body)
    with pytest.raises(ValueError) as info:
        load_task_file(task)
    assert f"(line {_line_of(body, '# MODEL')})" in str(info.value) and "Unprintable" in str(info.value)


def test_an_empty_message_leaves_no_dangling_colon(tmp_path: Path) -> None:
    task = tmp_path / "my_task.py"
    task.write_text(_task("raise RuntimeError()"))
    error = user_code_error(_raised_in(task, "step_fn"), {task: "task file"}, "it failed")
    assert str(error).endswith(f"(in step_fn, line {_line_of(_TASK, '# BAD')}): RuntimeError"), str(error)


def test_a_message_that_starts_with_a_newline_keeps_its_text_on_the_first_line(tmp_path: Path) -> None:
    task = tmp_path / "my_task.py"
    task.write_text(_task('raise RuntimeError("\\nthe real reason\\nmore detail")'))
    error = user_code_error(_raised_in(task, "step_fn"), {task: "task file"}, "it failed")
    assert str(error).splitlines()[0].endswith("RuntimeError: the real reason"), str(error)


_MODEL = """import torch


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("this message cannot be shown")


class Net(torch.nn.Module):
    def __init__(self, in_features, num_outputs):
        super().__init__()
        self.fc = torch.nn.Linear(in_features, num_outputs)

    def forward(self, x):
        raise Unprintable()  # BAD


def make(in_features, num_outputs):
    return Net(in_features, num_outputs)
"""


def test_lrkit_train_with_a_forward_raising_an_unprintable_error_is_one_clean_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mm.py").write_text(_MODEL)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(build_app(), ["train", "data=iris", "epochs=1", f"project={tmp_path / 'runs'}",
                                           "model=mm.py:make", "lr0=0.01"])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    error_lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, res.output
    assert f"(in forward, line {_line_of(_MODEL, '# BAD')})" in error_lines[0] and "Unprintable" in error_lines[0]


# -- 3. d_lr of an optimizer whose groups gain d in their first step --------------------------------------------------

_D_BEFORE: list[float] = []


class LazyD(torch.optim.SGD):
    """An SGD whose step is ``d x lr``, with ``d`` (and ``d0``) set in its groups by the first ``step()`` and grown
    1.5x after every step, as D-Adaptation grows its estimate (the step uses the ``d`` it starts from)."""

    def step(self, closure: Any = None) -> Any:
        for g in self.param_groups:
            g.setdefault("d", 1e-3)
            g.setdefault("d0", 1e-3)
        _D_BEFORE.append(float(self.param_groups[0]["d"]))
        out = super().step(closure)
        for g in self.param_groups:
            g["d"] *= 1.5
        return out


def test_d_lr_of_an_optimizer_whose_groups_gain_d_mid_run_is_the_last_steps(tmp_path: Path) -> None:
    _D_BEFORE.clear()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    r = lrkit.train(model, data=three_class_split(120), optimizer=LazyD, lr0=0.05, epochs=2, batch=16, nbs=16,
                    warmup_bias_lr=0.0, project=tmp_path, plots=False, verbose=False, monitor=False)
    steps = math.ceil(96 / 16)
    assert len(_D_BEFORE) == 2 * steps
    for epoch, row in enumerate(r.history):
        d = _D_BEFORE[(epoch + 1) * steps - 1]  # the d the epoch's last step used
        assert row["d_lr/all/decay"] == pytest.approx(d * row["lr/all/decay"], rel=1e-12), (epoch, row)

