"""A newcomer's walk through the README's shell commands: the CLI examples as written, and the mistakes made on the way.

The first tests failed before their fix (found by running every README command by hand); the README tests keep the
examples from drifting away from the CLI (a renamed option or key fails here, not on a user's machine).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _helpers import MSE_LOSS_FN, write_task
from lrkit._config import TrainConfig, tokens_to_kwargs
from lrkit.cli.app import build_app
from lrkit.cli.find import run_find

README = Path(__file__).resolve().parents[2] / "README.md"
runner = CliRunner()


def _invoke(*args: str, width: int = 120):
    return runner.invoke(build_app(), list(args), terminal_width=width)


def _clean_failure(res, match: str) -> None:
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)


# --- lrkit find --out -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lr.png", "lr_find.json", "plot.PDF"])
def test_find_out_named_like_a_file_is_refused_before_the_test(name: str, tmp_path: Path) -> None:
    # Bug: `lrkit find --out lr.png` (the way `lrkit schedule --out` is used) ran the test and created a *folder*
    # called lr.png holding lr_find.png and lr_find.json.
    calls: list[int] = []
    out = tmp_path / name
    with pytest.raises(ValueError, match=r"names a file, but --out is the folder that receives lr_find\.png"):
        run_find(None, num_steps=10, out=out, progress=lambda *a: calls.append(1))
    assert calls == []  # refused up front: not one step was spent
    res = _invoke("find", "--num-steps", "10", "--out", str(out))
    _clean_failure(res, "give a folder, e.g. --out")
    assert str(out.with_suffix("")) in res.output  # the suggested folder is the name without its suffix
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_find_out_that_is_an_existing_file_is_refused(tmp_path: Path) -> None:
    # Bug: `--out afile` with a file called afile quietly wrote afile2/lr_find.png instead.
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    res = _invoke("find", "--num-steps", "10", "--out", str(blocker))
    _clean_failure(res, "it is a file, not a folder")
    assert "LR range test" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and blocker.read_text() == "keep me"


def test_find_out_folder_with_a_dot_in_its_name_still_works(tmp_path: Path) -> None:
    # The suffix check refuses file-like names only: a folder such as runs/v1.0 is fine, and an existing folder
    # named lr.png (made by an earlier version) is still used as a folder.
    task = write_task(tmp_path, MSE_LOSS_FN)
    for name in ("v1.0", "old.png"):
        (tmp_path / "old.png").mkdir(exist_ok=True)
        _, out_dir = run_find(str(task), num_steps=10, out=tmp_path / name)
        assert (out_dir / "lr_find.json").is_file() and (out_dir / "lr_find.png").is_file()
        assert out_dir.parent == tmp_path and out_dir.name.startswith(name)


def test_find_help_keeps_the_task_file_lines_indented_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: at 80 columns the loss_fn() line wrapped and "torch.nn.functional.cross_entropy" fell to column 1,
    # breaking the two-column layout of the task-file description.
    monkeypatch.setenv("COLUMNS", "80")  # rich sizes typer's help from COLUMNS (tests/conftest.py sets 120)
    res = _invoke("find", "--help", width=80)
    assert res.exit_code == 0
    lines = res.output.splitlines()
    hits = [line for line in lines if "torch.nn.functional.cross_entropy" in line]
    assert hits, res.output
    for line in hits:
        assert len(line) - len(line.lstrip()) > 20, line  # under the "->" column, not at the margin
    assert max(len(line) for line in lines) <= 80


# --- lrkit schedule --out -------------------------------------------------------------------------------------------

def test_schedule_out_that_is_a_folder_is_refused_before_printing(tmp_path: Path) -> None:
    # Bug: the table was printed, then "cannot write d: [Errno 21] Is a directory: '.d.971d6ece7f31.tmp' -> 'd'",
    # naming the atomic write's temporary file.
    folder = tmp_path / "d"
    folder.mkdir()
    res = _invoke("schedule", "cosine lr0=0.1", "-t", "10", "--out", str(folder))
    _clean_failure(res, "is a folder; give a file name, e.g. --out")
    assert str(folder / "schedule.png") in res.output
    assert ".tmp" not in res.output and "max " not in res.output  # no key-points line before the error
    assert list(folder.iterdir()) == []


def test_schedule_json_with_out_through_a_file_prints_no_json(tmp_path: Path) -> None:
    # Bug: `--json --out afile/lr.png` printed the whole JSON to stdout, then failed with "[Errno 17] File exists",
    # so `> lr.json` left a complete-looking record beside a failed command.
    blocker = tmp_path / "afile"
    blocker.write_text("")
    res = _invoke("schedule", "cosine lr0=0.1", "-t", "10", "--json", "--out", str(blocker / "lr.png"))
    _clean_failure(res, "is a file, not a folder")
    assert '"lr"' not in res.stdout
    res = _invoke("schedule", "cosine lr0=0.1", "-t", "10", "--out", str(blocker / "sub" / "lr.png"))
    _clean_failure(res, f"{str(blocker)!r} is a file, not a folder")


def test_schedule_out_in_a_new_folder_is_created(tmp_path: Path) -> None:
    # Not a bug: pinned. A missing folder on --out's path is created (the up-front check must not refuse it).
    out = tmp_path / "new" / "sub" / "lr.svg"
    res = _invoke("schedule", "cosine lr0=0.1", "-t", "10", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes().startswith(b"<?xml")


# --- the README's own examples --------------------------------------------------------------------------------------

def _readme_commands(prefix: str) -> list[list[str]]:
    """Every ``prefix ...`` line of the README's ```bash blocks, continuations joined and comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[: len(prefix.split())] == prefix.split():
                commands.append(words)
    return commands


def test_readme_schedule_examples_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = _readme_commands("lrkit schedule")
    assert len(commands) >= 6, commands  # the CLI section's six examples plus the one beside the Python example
    monkeypatch.chdir(tmp_path)
    for words in commands:
        redirect = words[words.index(">") + 1] if ">" in words else None
        args = words[1: words.index(">")] if redirect else words[1:]
        res = _invoke(*args)
        assert res.exit_code == 0, (words, res.output)
        for flag in ("--out", "-o"):
            if flag in args:
                out = tmp_path / args[args.index(flag) + 1]
                assert out.read_bytes()[:4] == b"\x89PNG", words
        if redirect:
            data = json.loads(res.stdout)
            assert set(data) == {"lr", "momentum"}
            assert len(data["lr"]) == len(data["momentum"]) == int(args[args.index("--total-steps") + 1])
        if "--json" not in args and "--list" not in args:
            assert "max " in res.output and " at step " in res.output, words  # the key-points line


def test_readme_find_examples_and_options_exist() -> None:
    from lrkit.cli.find import find_command

    params = {"--" + name.replace("_", "-") for name in find_command.__annotations__ if name not in ("task_file",
                                                                                                     "return")}
    commands = _readme_commands("lrkit find")
    assert commands, "the README shows lrkit find"
    for words in commands:
        for w in words:
            if w.startswith("--"):
                assert w in params, (w, words)
    listed = re.search(r"Options: `(--[^`]+)`", README.read_text(encoding="utf-8"))
    assert listed is not None
    assert set(listed.group(1).split()) == params  # the README's option list is the command's, no more, no less


def test_readme_train_examples_use_valid_keys_and_values() -> None:
    commands = _readme_commands("lrkit train")
    assert len(commands) >= 7, commands
    for words in commands:
        tokens = [w for w in words[2:] if w != "--help" and not w.startswith("cfg=")]  # cfg= needs the user's file
        config = TrainConfig.from_kwargs(**tokens_to_kwargs(tokens))  # raises on a renamed key or a bad value
        for tok in tokens:
            key = tok.partition("=")[0]
            assert getattr(config, key) is not None, tok
