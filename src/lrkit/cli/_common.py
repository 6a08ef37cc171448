"""Helpers shared by the CLI commands: a rich console, a progress-bar callback, clean error exits."""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lrkit._config import TypedFloat
from lrkit._utils import error_text, last_frame_in, optional_import


def console(stderr: bool = False):  # -> rich.console.Console
    """A rich console on stdout (``stderr=True``: on stderr), as wide as :func:`_console_width` says."""
    return optional_import("rich.console", "cli").Console(stderr=stderr, width=_console_width())


def _console_width() -> int | None:
    """The width to give a rich console: ``None`` (rich's own choice) unless ``COLUMNS`` is ``0``, which rich takes
    as a console 0 columns wide that prints nothing — no table, no suggestion, not even an error, exit code 2 and an
    empty stderr. Then the terminal's width, or 80, as :func:`shutil.get_terminal_size` reads a ``COLUMNS`` of 0."""
    columns = os.environ.get("COLUMNS", "").strip()
    if not (columns.isdigit() and int(columns) == 0):
        return None
    return shutil.get_terminal_size().columns or 80


#: the progress bar's width: at most rich's default, at least enough to read
_BAR_WIDTH = (10, 40)
_INFO_MIN = 24  # the live fields' least width before the bar and the times make room for them


@contextmanager
def progress_bar(description: str, total: int | None, *, console_: Any = None) -> Iterator[Callable[..., None]]:
    """Yield ``update(advance=1, **fields)`` that drives a rich progress bar with ETA and live fields.

    Progress is a callback handed to the library function, never tangled into its loop. In a narrow terminal (80
    columns) the bar gives up its width first, down to 10 columns, to the live fields; fields longer than what is
    left then wrap onto a second line. Where that would leave the fields fewer than :data:`_INFO_MIN` columns (a
    40-column terminal), the bar goes, then the elapsed time, then the time remaining, until the fields fit or have
    that much room. The step count is never cut (rich's own layout made ``6172/12345`` into ``6172/1…`` to fit a
    long field, and a 40-column terminal wrapped the fields three letters a line). ``console_``: the rich console to
    draw on (default stdout's).
    """
    progress_mod = optional_import("rich.progress", "cli")
    column = optional_import("rich.table", "cli").Column
    bar = progress_mod.BarColumn(bar_width=_BAR_WIDTH[1])
    columns = [
        progress_mod.TextColumn("[bold]{task.description}", table_column=column(no_wrap=True)),
        bar,
        progress_mod.MofNCompleteColumn(table_column=column(no_wrap=True)),
        progress_mod.TimeElapsedColumn(table_column=column(no_wrap=True)),
        progress_mod.TimeRemainingColumn(table_column=column(no_wrap=True)),
        progress_mod.TextColumn("{task.fields[info]}", table_column=column(overflow="fold")),
    ]
    progress = progress_mod.Progress(*columns, transient=False, console=console_ if console_ is not None else console())
    task = progress.add_task(description, total=total, info="")
    started = False
    # what may go, first to last, in a terminal too narrow for the fields: the bar, the elapsed, the remaining time
    droppable = (columns[1], columns[3], columns[4])

    def fit(info: str) -> None:
        """The bar as wide as the line leaves it beside the other columns and ``info`` (10 to 40 columns); in a
        narrower line, columns dropped (``droppable``) until ``info`` fits or has :data:`_INFO_MIN` columns."""
        t = progress.tasks[task]
        steps = len(str(int(t.total))) if t.total is not None else 1  # (no total: "?")
        # rich pads the done count to the total's width: "     0/100000", not "0/100000"
        count = max(len(str(int(t.completed))), steps) + 1 + steps
        time = max(7, len(str(int(t.elapsed or 0) // 3600)) + 6)  # h:mm:ss
        # (the time remaining is empty with no total)
        width = {id(columns[1]): _BAR_WIDTH[0], id(columns[3]): time,
                 id(columns[4]): time if t.total is not None else 0}
        shown = list(columns)
        for gone in droppable:
            # the room the fields have beside the columns still shown (one space between columns)
            room = progress.console.width - len(description) - count - len(shown) + 1 - sum(
                width.get(id(c), 0) for c in shown)
            if room >= min(len(info), _INFO_MIN):
                break
            shown.remove(gone)
        progress.columns = tuple(shown)
        used = len(description) + count + len(info) + len(shown) - 1 + sum(
            width.get(id(c), 0) for c in shown if c is not bar)
        bar.bar_width = max(_BAR_WIDTH[0], min(_BAR_WIDTH[1], progress.console.width - used))

    def update(advance: int = 1, *, total: int | None = None, info: str = "", **_: Any) -> None:
        nonlocal started
        if not started:  # shown from the first step on: an error while setting up prints no empty bar
            progress.start()
            started = True
        if total is not None:
            progress.update(task, total=total)
        progress.update(task, advance=advance, info=info)
        fit(info)

    try:
        yield update
    finally:
        if started:
            progress.stop()


_CHART_WIDTH = (40, 100)  # a text chart's least and greatest width; a narrower terminal gets none


def print_chart(con: Any, draw: Callable[..., str], height: int = 14) -> None:
    """Print ``draw(width=, height=, ascii=)`` (a text chart: ``FinderResult.text_plot``, ``Schedule.text_plot``) on
    the rich console ``con``: as wide as the terminal (40 to 100 columns; nothing in a narrower one), in plain ASCII
    where the console's encoding cannot show braille (a legacy Windows code page), never read as rich markup."""
    width = min(_CHART_WIDTH[1], con.width)
    if width < _CHART_WIDTH[0]:
        return
    try:
        "⣿┤▲".encode(con.encoding or "ascii")
        ascii = False
    except (UnicodeEncodeError, LookupError):
        ascii = True
    con.print(draw(width=width, height=height, ascii=ascii), markup=False, highlight=False, soft_wrap=True)


def typed_float(text: Any) -> TypedFloat:
    """Typer's ``parser=`` for a float option: the number, remembering the text typed (a default, not typed, is
    shown as :func:`shown` prints it).

    >>> typed_float("1e7"), float(typed_float("1e7"))
    (1e7, 10000000.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return TypedFloat(float(text), shown(text))
    try:
        return TypedFloat(float(str(text).strip()), str(text).strip())
    except ValueError:
        typer = optional_import("typer", "cli")
        raise typer.BadParameter(f"{str(text)!r} is not a number (e.g. 100, 0.5 or 1e-3)") from None


typed_float.__name__ = "float"  # the type name an older typer shows for a parser= option


def typed_int(text: Any) -> int:
    """Typer's ``parser=`` for an integer option (``--num-steps``, ``--seed``): a bad value is named, with what would
    be valid, rather than pydantic's "Input should be a valid integer, unable to parse string as an integer", which
    typer 0.2x shows for an ``int`` option and which names neither the value nor a fix. A whole number written as a
    float (``1e3``, ``100.0``) is refused with its integer spelling; the range is the command's to check.

    >>> typed_int(" 200 "), typed_int("-3")
    (200, -3)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    typed = str(text).strip()
    if _INTEGER.fullmatch(typed):
        return int(typed)
    typer = optional_import("typer", "cli")
    whole = _whole_number(typed)
    fix = f"write it as {whole}" if whole is not None else "a whole number, e.g. 100"
    raise typer.BadParameter(f"{str(text)!r} is not an integer ({fix})") from None


typed_int.__name__ = "int"  # the type name an older typer shows for a parser= option

#: an integer as ``int()`` reads it from the command line: digits, an optional sign, ``_`` between digits
_INTEGER = re.compile(r"[-+]?\d+(?:_\d+)*")


def _whole_number(text: str) -> str | None:
    """``text`` as an integer's digits where it is a float with a whole value (``1e3`` -> ``"1000"``), else ``None``.

    >>> _whole_number("1e3"), _whole_number("2.5"), _whole_number("nan"), _whole_number("x")
    ('1000', None, None, None)
    """
    import decimal

    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value() or abs(number.adjusted()) > 30:
        return None
    return str(int(number))


def shown(value: Any) -> str:
    """``value`` as the user typed it where it is a :class:`TypedFloat`; else a whole float without its ``.0``
    (``-5``, not ``-5.0``; every digit of any other float, as ``repr``), and ``str`` of anything else."""
    if isinstance(value, TypedFloat):
        return value.typed
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


#: a value in a library message after ``key=``: a number as repr/``:g``/``:,`` prints it, ``nan``/``inf``, or ``...``
_VALUE = r"(?:\.\.\.|[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|inf))"


#: text of a library message that :func:`cli_message` leaves as it is: a quoted literal (``'cosine total_steps=5'``,
#: not a possessive's apostrophe) and an unknown name's ``Valid: a, b, ...`` list, to the end of its line
_LITERAL = re.compile(r"(?<!\w)'[^'\n]*'(?!\w)|\bValid: [^\n]*")


def cli_message(message: str, options: Mapping[str, tuple[str, Any]], *, any_value: bool = False) -> str:
    """A library error ``message`` in the words of the command line: each library keyword in ``options``
    (``{"total_steps": ("--total-steps", value or None)}``, ``value`` what the option received) is named as the flag.

    * ``key=VALUE`` where ``VALUE`` is the option's own value becomes ``--flag TYPED``, the value as the user typed
      it (:func:`shown`); ``key=VALUE`` with another value (a spec's own key) is left as it is, unless ``any_value``
      (a command without spec keys, ``lrkit find``: each ``key=VALUE`` is its option's, however the library spelt
      the value: ``num_steps=2,000,000``), which makes it ``--flag VALUE``;
    * ``key=...`` (a hint to pass the keyword) becomes ``--flag N``;
    * the bare keyword (a hint: ``needs steps_per_epoch``) becomes ``--flag``; a keyword without ``_`` (``epochs``,
      also a plain word) only after ``or `` or before ``and <another keyword>``;
    * what the message quotes (the user's spec or token: ``bad token 'steps_per_epoch' in spec '...'``, a
      did-you-mean) and a ``Valid: ...`` list of names are left as they are: they name spec keys, not flags.

    One mechanism for every command and option: each command lists its options once.

    >>> cli_message("total_steps=-5.0 must be a finite number > 0", {"total_steps": ("--total-steps", -5.0)})
    '--total-steps -5 must be a finite number > 0'
    """
    keys = "|".join(re.escape(k) for k in sorted(options, key=len, reverse=True))
    if not keys:
        return message

    def same(text: str, value: Any) -> bool:
        """``text`` is ``value`` as ``repr``, ``:g`` (six significant digits: ``end_lr=1.23457``) or ``:,`` prints
        it."""
        text = text.replace(",", "")  # (2,000,000: a count as {n:,} prints it)
        try:
            a, b = float(text), float(value)
        except OverflowError:  # an integer option past a float's range (--seed 1000...0): compared as written
            return text == str(value)
        except (TypeError, ValueError):
            return False
        return a == b or a == float(f"{b:g}") or (math.isnan(a) and math.isnan(b))

    def with_value(m: re.Match[str]) -> str:
        key, text = m.group(1), m.group(2)
        flag, value = options[key]
        if text == "...":
            return f"{flag} N"
        if value is not None and same(text, value):
            return f"{flag} {shown(value)}"
        return f"{flag} {text}" if any_value else m.group(0)

    others = "|".join(re.escape(k) for k in options)

    def rewrite(text: str) -> str:
        # (?<![\w-]): not the tail of another identifier (warmup_epochs) or of a flag already written (--epochs)
        text = re.sub(rf"(?<![\w-])({keys})=({_VALUE})(?!\w)", with_value, text)
        for key in options:
            if "_" in key:
                pattern = rf"(?<![\w=-])({re.escape(key)})(?![\w=])"
            else:  # a plain word: only where a hint lists it with the flags
                pattern = (rf"(?<=\bor )({re.escape(key)})(?![\w=])"
                           rf"|(?<![\w=-])({re.escape(key)})(?= and (?:{others})\b)")
            text = re.sub(pattern, lambda m: options[m.group(1) or m.group(2)][0], text)
        return text

    # what the message quotes (the user's spec or token, a did-you-mean) and a list of valid names are kept as written
    out, start = [], 0
    for literal in _LITERAL.finditer(message):
        out += [rewrite(message[start:literal.start()]), literal.group(0)]
        start = literal.end()
    return "".join([*out, rewrite(message[start:])])


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` as an error and exit with ``code`` (no traceback)."""
    typer = optional_import("typer", "cli")
    console_ = console(stderr=True)
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


def check_named_writable(out: Path) -> None:
    """:func:`check_writable` for a file the user named (``--out``), which :func:`lrkit._utils.write_named` writes
    as ``open(out, "w")`` would: a named pipe or a device (``/dev/stdout``) in place, so its own write permission
    counts; a symlink's target beside itself, so the target's folder counts, not the link's."""
    real = Path(os.path.realpath(out))
    if real.exists() and not real.is_file() and not real.is_dir():
        if not os.access(real, os.W_OK):
            raise ValueError(f"cannot write {str(out)!r}: it is not writable")
        return
    check_writable(real if out.is_symlink() else out, out)


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


