"""Helpers shared by the CLI commands: a rich console, a progress-bar callback, clean error exits."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lrkit._utils import error_text, last_frame_in, optional_import


def console():  # -> rich.console.Console
    """A rich console on stdout."""
    return optional_import("rich.console", "cli").Console()


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """Yield ``update(advance=1, **fields)`` that drives a rich progress bar with ETA and live fields.

    Progress is a callback handed to the library function, never tangled into its loop.
    """
    progress_mod = optional_import("rich.progress", "cli")
    columns = [
        progress_mod.TextColumn("[bold]{task.description}"),
        progress_mod.BarColumn(),
        progress_mod.MofNCompleteColumn(),
        progress_mod.TimeElapsedColumn(),
        progress_mod.TimeRemainingColumn(),
        progress_mod.TextColumn("{task.fields[info]}"),
    ]
    progress = progress_mod.Progress(*columns, transient=False)
    task = progress.add_task(description, total=total, info="")
    started = False

    def update(advance: int = 1, *, total: int | None = None, info: str = "", **_: Any) -> None:
        nonlocal started
        if not started:  # shown from the first step on: an error while setting up prints no empty bar
            progress.start()
            started = True
        if total is not None:
            progress.update(task, total=total)
        progress.update(task, advance=advance, info=info)

    try:
        yield update
    finally:
        if started:
            progress.stop()


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` as an error and exit with ``code`` (no traceback)."""
    typer = optional_import("typer", "cli")
    console_ = optional_import("rich.console", "cli").Console(stderr=True)
    escape = optional_import("rich.markup", "cli").escape  # a column "area [sqm]" is text, not rich markup
    console_.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def check_writable(target: Path, shown: Path | None = None) -> None:
    """``ValueError`` unless ``target`` (a file or folder to create) can be made: its nearest existing ancestor must be
    a writable folder, not a file, with no broken symlink on the way to it. ``shown`` is the path the message names
    (default ``target``)."""
    shown = target if shown is None else shown
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        if parent.is_symlink():  # a broken symlink: nothing can be made under it (mkdir fails on the link itself)
            raise ValueError(f"cannot write {str(shown)!r}: {str(parent)!r} is a broken symlink (it points to "
                             f"{os.readlink(parent)!r}, which does not exist)")
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"cannot write {str(shown)!r}: {str(parent)!r} is a file, not a folder")
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {str(shown)!r}: the folder {str(parent)!r} is not writable")


def user_code_error(error: Exception, files: Mapping[Path, str], failed: str,
                    keep: tuple[type[Exception], ...] = (ValueError, TypeError, OSError)) -> Exception:
    """What to raise for ``error``, raised while lrkit ran code from the user's ``files`` (``{shown path: label}``,
    e.g. ``{Path("my_task.py"): "task file"}``): a ``ValueError`` naming the file, and the function and line where the
    error was raised in it, rather than a torch traceback. An error of a ``keep`` type raised outside the files
    (lrkit's own checks) is returned as it is, and so is any error when there are no ``files``; any other error
    raised outside them names the file(s) without a line.

    >>> try:
    ...     {}["x"]
    ... except KeyError as e:
    ...     print(user_code_error(e, {Path("mm.py"): "model file"}, "training failed"))
    training failed running model file 'mm.py': KeyError: 'x'
    """
    if not files:
        return error
    found = last_frame_in(error, files)
    if found is None and isinstance(error, keep):
        return error
    if found is not None:
        frame, path = found
        named, where = f"{files[path]} {str(path)!r}", f" (in {frame.name}, line {frame.lineno})"
    else:
        named, where = " and ".join(f"{label} {str(path)!r}" for path, label in files.items()), ""
    return ValueError(f"{failed} running {named}{where}: {error_text(error)}")


