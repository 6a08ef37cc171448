"""lrkit._utils.write_named: a path the user named is written where open(path, "w") would (session 33, folded from
the finder/schedule fix of 33c into one helper beside atomic_write).

Bug: the atomic rename replaced a symlink the user named (``lrkit schedule -o latest.png``, ``result.to_json(link)``)
with a new file, its target left as it was, and a named pipe with a regular file (the reader got nothing). The files
of a run folder keep :func:`atomic_write`'s rule — a link planted there is replaced, never written through — and so
does ``lrkit.train``'s ``results.png``, which the figure writer now tells apart."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from lrkit._utils import atomic_write_text, write_named

CSV = "epoch,train_loss,val_loss,lr/all/decay\n1,1.0,0.9,0.01\n2,0.5,0.7,0.005\n"


def _text(p: Path, text: str) -> None:
    p.write_text(text, encoding="utf-8")


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    (tmp_path / "v1.txt").write_text("old")
    link = tmp_path / "latest.txt"
    link.symlink_to(tmp_path / "v1.txt")
    assert write_named(link, lambda p: _text(p, "new")) == link
    assert link.is_symlink() and (tmp_path / "v1.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.txt", "v1.txt"]  # no temporary file left


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "sub" / "target.json")
    write_named(link, lambda p: _text(p, "{}"))
    assert link.is_symlink() and (tmp_path / "sub" / "target.json").read_text() == "{}"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_gets_the_whole_file_and_stays_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()

    def write(p: Path) -> None:  # a writer that seeks, as a PNG writer does
        with open(p, "wb") as f:
            f.write(b"xxxx-tail")
            f.seek(0)
            f.write(b"head")

    write_named(fifo, write)
    reader.join(timeout=10)
    assert got == [b"head-tail"] and fifo.is_fifo()


def test_run_files_still_replace_a_planted_link_and_leave_its_target(tmp_path: Path) -> None:
    user = tmp_path / "elsewhere.csv"
    user.write_text("precious")
    link = tmp_path / "results.csv"
    link.symlink_to(user)
    atomic_write_text(link, "epoch\n")
    assert user.read_text() == "precious" and not link.is_symlink()


def test_results_png_of_a_run_replaces_a_link_and_a_named_picture_is_written_through(tmp_path: Path) -> None:
    from lrkit.plots.results import plot_results

    (tmp_path / "results.csv").write_text(CSV)
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"precious")
    run_png = tmp_path / "results.png"
    run_png.symlink_to(mine)
    plot_results(tmp_path / "results.csv", run_png, _run_file=True)  # as lrkit.train writes its own
    assert mine.read_bytes() == b"precious" and not run_png.is_symlink() and run_png.read_bytes()[1:4] == b"PNG"
    named = tmp_path / "latest.png"
    named.symlink_to(mine)
    plot_results(tmp_path / "results.csv", named)  # a user's plot_results(csv, out): written where out points
    assert named.is_symlink() and mine.read_bytes()[1:4] == b"PNG"


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``os.access`` as a user who may not write into ``folder`` (the tests run as root, who may write anywhere)."""
    real = os.access

    def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        if Path(path).resolve() == folder.resolve() and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_schedule_out_checks_the_folder_a_link_points_into_not_the_links(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.cli.schedule import _check_out

    shared, mine = tmp_path / "shared", tmp_path / "mine"
    shared.mkdir()
    mine.mkdir()
    link = shared / "latest.png"
    link.symlink_to(mine / "lr.png")
    _deny(monkeypatch, shared)
    _check_out(link)  # written into mine/, which is writable: no error
    with pytest.raises(ValueError, match="not writable"):
        _check_out(shared / "new.png")  # a new file in the read-only folder still is one


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_schedule_out_into_a_pipe_in_a_read_only_folder_is_not_refused(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.cli.schedule import _check_out

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    _deny(monkeypatch, tmp_path)  # as /dev is to a user: /dev/stdout is written in place
    _check_out(fifo)
