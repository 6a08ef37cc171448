"""Session 37 (k): ``lrkit find``'s integer options and an empty TASK_FILE name the bad value and what is valid.

Each error is checked before any step runs (no test is run here), exits with code 2 and prints no traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrkit.cli._common import typed_int
from lrkit.cli.app import build_app


def _find(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), ["find", *args, "--no-chart"], env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.mark.parametrize(("flag", "value", "advice"), [
    ("--num-steps", "1e3", "write it as 1000"),
    ("--num-steps", "2.5", "a whole number"),
    ("--seed", "1.5", "a whole number"),
    ("--accumulation-steps", "", "a whole number"),
    ("--accumulation-steps", "4x", "a whole number"),
])
def test_a_non_integer_option_names_its_value_and_what_is_valid(tmp_path: Path, flag: str, value: str,
                                                                advice: str) -> None:
    # before: typer's pydantic text "Input should be a valid integer, unable to parse string as an integer", which
    # names neither the value typed nor a valid one (`--num-steps 1e3` left the user guessing)
    code, output = _find(flag, value, "--out", str(tmp_path / "out"))
    assert code == 2, output
    flat = " ".join(output.replace("│", " ").split())
    assert f"{value!r} is not an integer" in flat, output
    assert advice in flat, output
    assert "unable to parse" not in flat
    assert "Traceback" not in output
    assert not (tmp_path / "out").exists()


def test_an_integer_option_still_takes_an_integer_and_its_range_check() -> None:
    # the parser reads the number; the range is still find_lr's to check, under the flag's name
    assert typed_int(" 200 ") == 200 and typed_int("1_000") == 1000 and typed_int(7) == 7
    code, output = _find("--num-steps", "5")
    assert code == 2 and "--num-steps 5 must be an integer >= 10" in output, output
    code, output = _find("--seed", "99999999999999999999999")
    assert code == 2 and "--seed 99999999999999999999999 must be an integer >= 0" in output, output


def test_help_still_shows_the_integer_options_type_and_default() -> None:
    result = CliRunner().invoke(build_app(), ["find", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    line = next(row for row in result.output.splitlines() if "--num-steps" in row)
    assert "<int>" in line and "[default: 100]" in line, line


@pytest.mark.parametrize("task_file", ["", "   "])
def test_an_empty_task_file_is_named_as_typed_not_as_the_current_folder(task_file: str) -> None:
    # before: Path("") is ".", so `lrkit find ''` (an unset shell variable, `lrkit find "$TASK"`) said
    # "task file '.' is a directory", naming a folder the user never typed
    code, output = _find(task_file)
    assert code == 2, output
    assert f"task file {task_file!r} is empty" in output, output
    assert "leave TASK_FILE out" in output
    assert "'.'" not in output


def test_an_out_folder_that_refuses_mkdir_fails_before_the_test(tmp_path: Path) -> None:
    # /proc passes the permission check (as root os.access says writable; so does a root-squashed NFS export) but
    # refuses a mkdir: before, the whole test ran and then failed with a bare "[Errno 2] No such file or directory:
    # '/proc/...'", the curve lost; now it is named before any step runs
    out = "/proc/lrkit_s37k_no_such_folder"
    code, output = _find("--out", out)
    assert code == 2, output
    assert f"cannot create the folder for lr_find.png and lr_find.json {out!r}" in output, output
    assert "a folder cannot be made in '/proc'" in output
    assert "LR range test" not in output  # no progress bar: no step ran
    assert "Traceback" not in output


def test_the_out_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    # the probe folder is removed again: a run in a clean folder leaves only its own output there
    code, output = _find("--out", str(tmp_path / "out"), "--num-steps", "10", "--diverge-factor", "none")
    assert code == 0, output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lr_find.json", "lr_find.png"]


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("stopped_in", ["plot", "to_json"])
def test_ctrl_c_while_the_results_are_written_says_what_was_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    stopped_in: str) -> None:
    # before: "interrupted — the range test stopped before it finished; nothing was written", while the test had
    # finished and out/lr_find.json was there (Ctrl-C in the second matplotlib takes to draw lr_find.png); Ctrl-C
    # before anything went in removes the folder claimed for the results, so "nothing was written" holds
    from lrkit.finder.result import FinderResult

    monkeypatch.setattr(FinderResult, stopped_in, _interrupt)
    out = tmp_path / "out"
    code, output = _find("--out", str(out), "--num-steps", "10", "--diverge-factor", "none")
    assert code == 130, output
    flat = " ".join(output.split())
    if stopped_in == "plot":
        assert "nothing was written" not in flat, output
        assert f"writing its results into {str(out)!r} stopped: it holds lr_find.json only" in flat, output
        assert sorted(p.name for p in out.iterdir()) == ["lr_find.json"]
    else:
        assert "nothing was written" in flat, output
        assert not out.exists()
