"""Session 33c's bug hunt of the schedules and ``lrkit schedule``: writing the picture through a symlink, into a
FIFO or a device, as ``open(path, "w")`` would — never replacing the link or the special file with a new file."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrkit.cli.app import build_app


def _read_fifo(path: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as f:  # (opens once the writer does)
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader, got


def test_schedule_out_through_a_symlink_writes_the_linked_file_and_keeps_the_link(tmp_path: Path) -> None:
    # `-o latest.png` where latest.png is a link into a figures folder: the picture goes where the link points, and
    # the link stays a link (the atomic write's rename used to replace the link with a new file, the target untouched)
    figures = tmp_path / "figures"
    figures.mkdir()
    target = figures / "lr_v1.png"
    target.write_bytes(b"old")
    link = tmp_path / "latest.png"
    link.symlink_to(target)
    res = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "-t", "20", "--no-chart", "-o", str(link)])
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes()[1:4] == b"PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "latest.png"]  # no temporary file left
    assert sorted(p.name for p in figures.iterdir()) == ["lr_v1.png"]


def test_schedule_out_into_a_fifo_streams_the_picture_and_keeps_the_fifo(tmp_path: Path) -> None:
    # a named pipe (or /dev/stdout) is written into, as open() does; it was replaced by a regular file, and the
    # reader on the other end got nothing (as root, `-o /dev/full` replaced the device node itself)
    fifo = tmp_path / "lr.png"
    os.mkfifo(fifo)
    reader, got = _read_fifo(fifo)
    res = CliRunner().invoke(build_app(), ["schedule", "cosine lr0=0.1", "-t", "20", "--no-chart", "-o", str(fifo)])
    reader.join(timeout=20)
    assert res.exit_code == 0, res.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and got[0][1:4] == b"PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.png"]


def test_register_refuses_to_replace_a_family_of_the_same_name_without_overwrite() -> None:
    # register(ScheduleInfo("cosine", ...)) replaced the built-in cosine (and dropped its aliases: 'cos' stopped
    # working) without a word, though a name already taken needs overwrite=True; re-registering the very same
    # entry stays allowed (a module imported twice), and overwrite=True still replaces
    from lrkit.schedules import Constant, from_spec
    from lrkit.schedules.registry import _REGISTRY, ScheduleInfo, lookup, register

    builtin = lookup("cosine")
    with pytest.raises(ValueError, match=r"cosine already registered \(pass overwrite=True\)"):
        register(ScheduleInfo("cosine", Constant, "my own cosine"))
    assert lookup("cosine") is builtin and lookup("cos") is builtin
    assert from_spec("cosine lr0=0.1", total_steps=10).lr(9) < 0.1
    assert register(builtin) is builtin  # the same entry again: nothing changes
    mine = ScheduleInfo("s33c_flat", Constant, "a flat LR")
    try:
        register(mine)
        assert register(mine) is mine
        with pytest.raises(ValueError, match="s33c_flat already registered"):
            register(ScheduleInfo("s33c_flat", Constant, "another description"))
        other = ScheduleInfo("s33c_flat", Constant, "replaced on purpose")
        assert register(other, overwrite=True) is other and lookup("s33c_flat") is other
    finally:
        _REGISTRY.pop("s33c_flat", None)
        _REGISTRY["cosine"] = builtin  # (whatever happened above)


def test_plot_schedule_written_to_a_file_is_not_left_open_in_pyplot(tmp_path: Path) -> None:
    # plotting schedules in a loop kept every figure open in pyplot (matplotlib: "More than 20 figures have been
    # opened"), unlike FinderResult.plot(path) and plot_results; a figure written to a file is closed in pyplot
    # afterwards (still usable), one drawn without a path stays open for plt.show(), and a failed write (a read-only
    # folder, .pgf without TeX) leaves none behind
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lrkit.plots.schedule import plot_schedule
    from lrkit.schedules import from_spec

    plt.close("all")
    s = from_spec("onecycle max_lr=0.1", total_steps=30)
    figs = [plot_schedule(s, path=tmp_path / f"{i}.png") for i in range(3)]
    assert plt.get_fignums() == []
    assert all((tmp_path / f"{i}.png").read_bytes()[1:4] == b"PNG" for i in range(3))
    figs[0].savefig(tmp_path / "again.svg")  # the figure returned is still whole
    assert len(figs[0].axes[0].get_lines()) == 1
    shown = plot_schedule(s)
    assert plt.get_fignums() == [shown.number]
    plt.close("all")
    (tmp_path / "file").write_text("x")
    with pytest.raises((OSError, ValueError)):
        plot_schedule(s, path=tmp_path / "file" / "lr.png")  # under a file: cannot be written
    assert plt.get_fignums() == []
