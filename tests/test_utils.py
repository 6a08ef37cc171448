from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from lrkit._utils import (
    atomic_write,
    atomic_write_text,
    check_positive,
    describe_yaml_error,
    did_you_mean,
    increment_dir,
    unknown_name_error,
)
from lrkit.schedules import from_spec


@pytest.mark.parametrize("bad", [True, False])
def test_booleans_are_not_numbers(bad):
    with pytest.raises(ValueError, match="not a boolean"):
        check_positive("lrf", bad)


def test_a_boolean_in_a_spec_is_refused():
    with pytest.raises(ValueError, match="lrf"):
        from_spec("linear lr0=0.1 lrf=true", total_steps=10)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "x", None])
def test_non_positive_or_non_numbers_name_the_value(bad):
    with pytest.raises(ValueError, match="start_lr="):
        check_positive("start_lr", bad)


def test_unknown_name_suggests_and_lists():
    msg = str(unknown_name_error("rule", "stepest", ["steepest", "valley"]))
    assert "Did you mean 'steepest'" in msg and "Valid: steepest, valley" in msg


def test_did_you_mean_ignore_case_compares_lower_case_and_keeps_the_canonical_spelling():
    names = ["auto", "SGD", "Adam", "AdamW", "RMSProp"]
    assert did_you_mean("adamw2", names, ignore_case=True) == " Did you mean 'AdamW'?"
    assert did_you_mean("rmsprop2", names, ignore_case=True) == " Did you mean 'RMSProp'?"
    assert did_you_mean("zzz", names, ignore_case=True) == ""
    assert did_you_mean("adamw2", names) == " Did you mean 'Adam'?"  # case-sensitive stays the default


def test_describe_yaml_error_without_a_position_keeps_the_first_line():
    assert describe_yaml_error(ValueError("first\nsecond")) == "first"
    import yaml

    try:
        yaml.safe_load("a: 1\n\tb: 2\n")
    except yaml.YAMLError as e:
        msg = describe_yaml_error(e)
    assert msg.startswith("line 2, column 1: found character '\\t' that cannot start any token"), msg


def test_increment_dir_never_reuses(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run2").mkdir()
    assert increment_dir(tmp_path / "run").name == "run3"
    assert increment_dir(tmp_path / "run", exist_ok=True).name == "run"


@pytest.fixture
def umask():
    """Set a known umask for one test (``umask(0o022)``), restoring the process's own afterwards."""
    saved = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(saved)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027], ids=oct)
def test_atomic_write_gives_new_files_the_mode_open_gives(tmp_path, umask, mask):
    umask(mask)
    atomic_write_text(tmp_path / "a.json", "{}")
    atomic_write(tmp_path / "b.png", lambda tmp: tmp.write_bytes(b"\x89PNG"))
    with open(tmp_path / "plain.txt", "w") as f:  # the reference: what a plain open() gives here
        f.write("x")
    want = 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == want
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == want
    assert stat.S_IMODE((tmp_path / "b.png").stat().st_mode) == want
    assert (tmp_path / "a.json").read_text() == "{}"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o640, 0o755, 0o600, 0o444], ids=oct)
def test_atomic_write_keeps_the_mode_of_a_file_it_replaces(tmp_path, umask, mode):
    umask(0o022)
    target = tmp_path / "record.json"
    target.write_text("old")
    os.chmod(target, mode)
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_atomic_write_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")

    def boom(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, boom)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
