"""Lightning FindLRCallback / ChooseLRCallback: the ddp_spawn hand-back file, for copies and after a killed launcher.

Session 26 left two gaps in the private file through which a spawned rank hands ``.lr``/``.result`` back to the
launching process: ``copy.deepcopy(callback)`` (or ``copy.copy``) shared the file with the original, so a fit of the
copy under ddp_spawn set the original's ``.lr`` too (and the first of the two to read it took it from the other); and
a launcher killed before it read the file left it in the temporary folder for good. Now a copy made in the launching
process gets its own file (after taking any unread results into the original, so both keep them), and a new callback
removes the files of launchers that no longer run (this user's only, and only lrkit's own names).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("lightning.pytorch")

from lrkit.integrations.lightning import ChooseLRCallback, FindLRCallback


def _write(path: str, lr: float) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"lr": lr, "attr_lr": None, "result": None, "auto": None}, f)


@pytest.mark.parametrize("how", [copy.deepcopy, copy.copy])
@pytest.mark.parametrize("cls", [FindLRCallback, ChooseLRCallback])
def test_a_copy_has_its_own_hand_back_file(cls: type, how: object) -> None:
    """Before: the copy's file was the original's, so results handed to one showed up in the other."""
    cb = cls(num_steps=20) if cls is FindLRCallback else cls(log=False)
    twin = how(cb)  # type: ignore[operator]
    assert twin._outbox != cb._outbox
    _write(twin._outbox, 0.25)  # a ddp_spawn fit of the copy hands its LR back
    assert cb.lr is None
    assert twin.lr == 0.25
    assert not os.path.exists(twin._outbox)


def test_a_copy_keeps_the_results_the_original_had_not_read_yet() -> None:
    """Unread results of an earlier spawned fit of the original: both the original and its copy say them."""
    cb = FindLRCallback(num_steps=20)
    _write(cb._outbox, 0.125)
    twin = copy.deepcopy(cb)
    assert twin.lr == 0.125 and cb.lr == 0.125
    assert not os.path.exists(cb._outbox) and not os.path.exists(twin._outbox)


def test_a_copy_inside_a_spawned_rank_still_hands_back_to_the_launcher() -> None:
    """In a rank (another process than the launcher's), a copy keeps the launcher's file: that is where its results
    must go."""
    cb = FindLRCallback(num_steps=20)
    cb.__dict__["_launcher_pid"] = os.getpid() + 1  # as the callback reads in a spawned rank
    twin = copy.deepcopy(cb)
    assert twin._outbox == cb._outbox and twin._launcher_pid == cb._launcher_pid


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_new_callback_removes_the_files_of_launchers_that_no_longer_run() -> None:
    """A launcher killed before it read its rank's results left ``lrkit-<class>-<pid>-<id>.json`` (and perhaps a
    half-written ``.lrkit-<pid>-*.part``) in the temporary folder; the next callback made removes them. A running
    launcher's file, and files not named by lrkit, stay."""
    tmp = tempfile.gettempdir()
    dead, alive = _dead_pid(), os.getpid()
    stale = os.path.join(tmp, f"lrkit-FindLRCallback-{dead}-{'a' * 32}.json")
    stale_part = os.path.join(tmp, f".lrkit-{dead}-xyz.part")
    live = os.path.join(tmp, f"lrkit-FindLRCallback-{alive}-{'b' * 32}.json")
    other = os.path.join(tmp, f"lrkit-notes-{dead}.json")
    recent = os.path.join(tmp, f"lrkit-ChooseLRCallback-{dead}-{'c' * 32}.json")  # perhaps another container's
    subclass = os.path.join(tmp, f"lrkit-MyFinder-{dead}-{'d' * 32}.json")  # a subclass of the user's
    day_ago = time.time() - 25 * 3600
    for path in (stale, stale_part, live, other, recent, subclass):
        Path(path).write_text("{}", encoding="utf-8")
        if path != recent:
            os.utime(path, (day_ago, day_ago))
    try:
        FindLRCallback(num_steps=20)
        assert not os.path.exists(stale) and not os.path.exists(stale_part) and not os.path.exists(subclass)
        assert os.path.exists(live) and os.path.exists(other) and os.path.exists(recent)
    finally:
        for path in (stale, stale_part, live, other, recent, subclass):
            Path(path).unlink(missing_ok=True)


def test_the_hand_back_file_is_named_by_the_launchers_process() -> None:
    cb = ChooseLRCallback(log=False)
    name = os.path.basename(cb._outbox)
    assert name.startswith(f"lrkit-ChooseLRCallback-{os.getpid()}-") and name.endswith(".json")
