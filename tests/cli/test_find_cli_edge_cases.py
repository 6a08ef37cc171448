"""`lrkit find` used the way users misuse it: each test failed before its fix (found by a bug hunt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _helpers import MSE_LOSS_FN, write_task
from lrkit.cli.app import build_app
from lrkit.cli.find import run_find
from lrkit.finder.demo import load_task_file

runner = CliRunner()


def _find(*args: str):
    return runner.invoke(build_app(), ["find", *args])


def _clean_failure(res, match: str) -> None:
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)


def test_a_directory_is_not_reported_as_missing(tmp_path: Path) -> None:
    # Bug: `lrkit find .` said "task file '.' does not exist".
    _clean_failure(_find(str(tmp_path)), "is a directory, not a Python file")


def test_loss_fn_returning_no_function_is_named_at_load(tmp_path: Path) -> None:
    # Bug: loss_fn() returning 3 failed mid-test as "int(model(x), y) failed: 'int' object is not callable ...
    # pass a loss_fn that fits them", blaming shapes.
    task = write_task(tmp_path, "def loss_fn():\n    return 3\n")
    with pytest.raises(ValueError, match=r"loss_fn\(\) in task file .* returned int, expected a loss function"):
        load_task_file(task)


def test_model_given_as_an_instance_says_to_define_a_function(tmp_path: Path) -> None:
    # Bug: `model = torch.nn.Linear(3, 1)` was called with no input: "model() ... failed: TypeError:
    # Linear.forward() missing 1 required positional argument".
    task = tmp_path / "inst.py"
    task.write_text(write_task(tmp_path, MSE_LOSS_FN).read_text().replace(
        "def model():\n    torch.manual_seed(0)\n    return torch.nn.Linear(3, 1)", "model = torch.nn.Linear(3, 1)"))
    with pytest.raises(ValueError, match=r"model in task file .* is a Linear, not a function: define model\(\)"):
        load_task_file(task)


def test_a_misspelt_task_function_gets_a_did_you_mean(tmp_path: Path) -> None:
    # Bug: a file defining modle() was told only "must define model()", not which of its functions was meant.
    task = tmp_path / "typo.py"
    source = write_task(tmp_path, MSE_LOSS_FN).read_text()
    task.write_text(source.replace("def model():", "def modle():") + "\nfrom torch.utils.data import DataLoader\n")
    with pytest.raises(ValueError, match=r"must define model\(\) \(it defines modle\(\): did you mean model\(\)\?\);"):
        load_task_file(task)
    task.write_text(source.replace("def loss_fn():", "def lossfn():"))
    with pytest.raises(ValueError, match=r"or step_fn\(model, batch\) \(it defines lossfn\(\): did you mean loss_fn"):
        load_task_file(task)
    task.write_text(source.replace("def model():", "def network():"))  # nothing close: no guess
    with pytest.raises(ValueError, match=r"must define model\(\); see"):
        load_task_file(task)


@pytest.mark.parametrize("seed", ["-1", "18446744073709551615"])
def test_seed_out_of_range_is_named(seed: str, tmp_path: Path) -> None:
    # Bug: "--seed -1" on the demo gave "expected non-negative integer" and 2**64-1 "Overflow when unpacking long
    # long", neither naming --seed.
    _clean_failure(_find("--seed", seed, "--num-steps", "10", "--out", str(tmp_path / "o")), "seed")
    assert not (tmp_path / "o").exists()


def test_unusable_out_is_refused_before_the_test_runs(tmp_path: Path) -> None:
    # Bug: --out under a file ran the whole range test, then failed with "[Errno 20] Not a directory".
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    calls: list[int] = []
    with pytest.raises(ValueError, match=r"a_file.* is a file, not a folder"):
        run_find(None, num_steps=10, out=blocker / "sub", progress=lambda *a: calls.append(1))
    assert calls == []  # refused up front: not one step was spent
    res = _find("--num-steps", "10", "--out", str(blocker / "sub"))
    _clean_failure(res, "is a file, not a folder")
    assert "LR range test" not in res.output


def test_help_describes_the_task_file_in_readable_lines() -> None:
    res = runner.invoke(build_app(), ["find", "--help"], terminal_width=100)
    assert res.exit_code == 0
    text = res.output
    for needed in ("model()", "optimizer(params)", "train_loader()", "loss_fn", "step_fn(model, batch)",
                   "lr_find.png", "lr_find.json"):
        assert needed in text, needed
    # Bug: lines of the docstring were kept and then re-wrapped, leaving one-word fragments like "step_fn(model,".
    assert "\n step_fn(model, batch) -> loss." not in text


def test_relative_task_path_and_record_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not a bug: pinned. A relative task path and a relative --out resolve against the working directory.
    write_task(tmp_path, MSE_LOSS_FN)
    monkeypatch.chdir(tmp_path)
    res = _find("my_task.py", "--num-steps", "12", "--out", "rel/out")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "rel" / "out" / "lr_find.json").read_text())["num_steps"] == 12
    assert not list((tmp_path / "rel" / "out").glob(".*.tmp"))  # atomic writes leave no temporary files
