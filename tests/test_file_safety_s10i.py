"""Safety audit (s10i): lrkit never overwrites or deletes a file it did not create, loads checkpoints with
``weights_only=True`` and YAML with a safe loader, writes atomically, and needs no network.

The first three tests failed before their fix; the rest guard rules that held when audited.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import lrkit._utils as lrkit_utils
import lrkit.cli.find as find_cli
from lrkit._config import TrainConfig
from lrkit._utils import atomic_write, atomic_write_text, yaml_load
from lrkit.cli.app import build_app
from lrkit.train import run as _run

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


# --- violations found and fixed -------------------------------------------------------------------------------------

def test_schedule_default_picture_never_replaces_a_users_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: `lrkit schedule "cosine lr0=0.1" -t 10` (no --out) silently replaced a schedule.png of the user's own in
    # the working directory. Without --out the picture now takes the first free name: schedule.png, schedule2.png, ...
    monkeypatch.chdir(tmp_path)
    mine = b"my own picture, not lrkit's"
    (tmp_path / "schedule.png").write_bytes(mine)
    (tmp_path / "schedule2.png").mkdir()  # a folder of that name is skipped too
    res = runner.invoke(build_app(), ["schedule", "cosine lr0=0.1", "-t", "10"], terminal_width=120)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "schedule.png").read_bytes() == mine
    written = tmp_path / "schedule3.png"
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote schedule3.png" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schedule.png", "schedule2.png", "schedule3.png"]
    # --out names the file the user asked for: that one is replaced, as asked
    res = runner.invoke(build_app(), ["schedule", "cosine lr0=0.1", "-t", "10", "--out", "schedule.png"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "schedule.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_find_out_folder_taken_between_the_check_and_the_write_is_not_overwritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: run_find picked a free --out folder (runs/find, runs/find2, ...) and only created it when writing, so a
    # second `lrkit find` that picked the same name in between had its lr_find.json replaced ("never overwritten").
    # The folder is now claimed with an exclusive mkdir; a taken name moves on to the next one.
    out = tmp_path / "find"
    other = b'{"another": "run"}\n'
    real = lrkit_utils.increment_dir
    raced: list[Path] = []

    def racing_increment_dir(path: Path, **kw: object) -> Path:
        chosen = real(path, **kw)
        if not raced:  # another process takes this very name right after the check
            chosen.mkdir(parents=True)
            (chosen / "lr_find.json").write_bytes(other)
            raced.append(chosen)
        return chosen

    monkeypatch.setattr(lrkit_utils, "increment_dir", racing_increment_dir)  # what claim_dir calls
    _, out_dir = find_cli.run_find(None, num_steps=10, out=out)
    assert raced == [out]
    assert (out / "lr_find.json").read_bytes() == other
    assert sorted(p.name for p in out.iterdir()) == ["lr_find.json"]
    assert out_dir == tmp_path / "find2"
    assert (out_dir / "lr_find.json").is_file() and (out_dir / "lr_find.png").is_file()


@pytest.mark.parametrize("sub", ["", "sub"])
def test_find_out_through_a_broken_symlink_is_a_clean_error(tmp_path: Path, sub: str) -> None:
    # the exclusive mkdir above must not retry forever on a name it can never create (a dangling --out symlink)
    link = tmp_path / "dl"
    link.symlink_to(tmp_path / "missing")
    out = link / sub if sub else link
    with pytest.raises(ValueError, match="is a file or a broken symlink"):
        find_cli.run_find(None, num_steps=10, out=out)
    assert link.is_symlink() and not (tmp_path / "missing").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dl"]


def test_exist_ok_keeps_a_dangling_symlink_in_the_run_folder(tmp_path: Path) -> None:
    # Bug: with exist_ok=True, a run file name in the folder that is a symlink to a missing target (events.json ->
    # a drive not mounted) was not seen as an earlier run's file (Path.exists follows the link), so the new run's
    # atomic write replaced the user's link. It now moves aside into previous-<time>/ like any earlier run file.
    run = tmp_path / "exp"
    run.mkdir()
    target = tmp_path / "not-mounted" / "events.json"
    (run / "events.json").symlink_to(target)
    assert _run.previous_run_files(run) == ["events.json"]
    aside = _run.move_previous_run(run, ["events.json"])
    assert (aside / "events.json").is_symlink() and os.readlink(aside / "events.json") == str(target)
    assert not (run / "events.json").is_symlink()


# --- guards: rules that held when audited ---------------------------------------------------------------------------

def _python_files() -> list[Path]:
    return sorted([*(ROOT / "src" / "lrkit").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])


def _calls(path: Path) -> list[tuple[str, ast.Call]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value,
                                                                                              ast.Name):
            found.append((f"{node.func.value.id}.{node.func.attr}", node))
    return found


def test_every_torch_load_in_src_and_benchmarks_is_weights_only() -> None:
    seen = 0
    for path in _python_files():
        for name, call in _calls(path):
            if name == "torch.load":
                seen += 1
                kw = {k.arg: k.value for k in call.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                assert ok, f"{path.relative_to(ROOT)}:{call.lineno}: torch.load without weights_only=True"
    assert seen >= 2  # run.load_checkpoint and the trainer's best.pt check: the scan does see them


def test_no_unsafe_yaml_loader_in_src_or_benchmarks() -> None:
    for path in _python_files():
        for name, call in _calls(path):
            if name in ("yaml.full_load", "yaml.unsafe_load", "yaml.full_load_all", "yaml.unsafe_load_all",
                        "yaml.load_all"):
                raise AssertionError(f"{path.relative_to(ROOT)}:{call.lineno}: {name}")
            if name == "yaml.load":  # only _utils.yaml_load, whose loader is a SafeLoader subclass
                assert path == ROOT / "src" / "lrkit" / "_utils.py", f"{path.relative_to(ROOT)}:{call.lineno}"


def test_yaml_cfg_with_a_python_tag_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"epochs: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(yaml.YAMLError):
        yaml_load(text)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    with pytest.raises(ValueError):
        TrainConfig.from_yaml(cfg)
    assert not marker.exists()


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch RAN_S10I",))


def test_a_pickled_object_in_a_checkpoint_is_refused_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "last.pt"
    import torch

    torch.save({"format": _run.CHECKPOINT_FORMAT, "x": _Boom()}, bad)
    with pytest.raises(ValueError, match="cannot load checkpoint"):
        _run.load_checkpoint(bad)
    assert not (tmp_path / "RAN_S10I").exists()


@pytest.mark.parametrize("writer", ["text", "checkpoint"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "events.json"
    path.write_text("old")

    class Unsaveable:
        def __reduce__(self) -> object:
            raise RuntimeError("mid-write failure")

    with pytest.raises(RuntimeError, match="mid-write failure"):
        if writer == "text":
            atomic_write(path, lambda tmp: (tmp.write_text("half"), Unsaveable().__reduce__()))
        else:
            _run.save_checkpoint(path, {"x": Unsaveable()})
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.json"]


def test_atomic_write_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    # a run file that is a symlink to a user's file elsewhere: the link is replaced, the user's file is untouched
    user = tmp_path / "elsewhere.csv"
    user.write_text("precious")
    link = tmp_path / "run" / "results.csv"
    link.parent.mkdir()
    link.symlink_to(user)
    atomic_write_text(link, "epoch\n1\n")
    assert user.read_text() == "precious"
    assert not link.is_symlink() and link.read_text() == "epoch\n1\n"


@pytest.mark.parametrize("name", ["../../x", "../x", "/tmp/abs_s10i", "a/../../b", "."])
def test_run_name_cannot_leave_project(name: str) -> None:
    with pytest.raises(ValueError, match=r"name="):
        TrainConfig.from_kwargs(data="iris", name=name)


def test_no_network_at_import_or_run(tmp_path: Path) -> None:
    # every socket connection and name lookup raises: import lrkit (and its CLI) and run a range test and a schedule
    code = f"""
import socket
def refuse(*a, **k):
    raise AssertionError("network access")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import torch
torch.set_num_threads(1)
import lrkit, lrkit.cli.app, lrkit.plots
from lrkit.cli.find import run_find
run_find(None, num_steps=10, out={str(tmp_path / 'find')!r})
from lrkit.cli.schedule import schedule_command
schedule_command("cosine lr0=0.1", total_steps=10, out=__import__("pathlib").Path({str(tmp_path / 's.png')!r}))
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("ok")
    assert (tmp_path / "find" / "lr_find.json").is_file() and (tmp_path / "s.png").is_file()
