"""Small shared helpers: did-you-mean errors, lazy optional imports, atomic file writes.

Private module: everything here is used by several subpackages and is not part of the public API.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import math
import numbers
import os
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "adapts_step_size",
    "atomic_write",
    "atomic_write_text",
    "canonical_name",
    "check_int",
    "check_positive",
    "describe_yaml_error",
    "did_you_mean",
    "first_line",
    "increment_dir",
    "is_float_text",
    "named_keywords",
    "optional_import",
    "stacklevel_outside_lrkit",
    "unknown_name_error",
    "yaml_load",
]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def named_keywords(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` with a ``TypeError`` that names the closest valid keyword for a misspelt one (Python's own names only
    the bad one: ``Monitor(..., on_divergance="stop")``), and lists the valid ones.

    The signature stays ``fn``'s (``functools.wraps``: ``inspect.signature``, ``help()``); a call with valid keywords
    pays one set test. A ``TypeError`` raised inside ``fn`` propagates as it is.

    >>> @named_keywords
    ... def f(a, *, start_lr=1e-7, end_lr=10.0): return a
    >>> f(1, strat_lr=1e-5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: f() got an unexpected keyword argument 'strat_lr'. Did you mean 'start_lr'? Valid keywords: a, ...
    """
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn
    valid = frozenset(k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    shown = sorted(valid - {"self", "cls"})
    name = fn.__qualname__.removesuffix(".__init__")

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not valid.issuperset(kwargs):
            bad = next(k for k in kwargs if k not in valid)
            raise TypeError(f"{name}() got an unexpected keyword argument {bad!r}.{did_you_mean(bad, shown)} Valid "
                            f"keywords: {', '.join(shown)}")
        return fn(*args, **kwargs)

    wrapper.__kwdefaults__ = fn.__kwdefaults__  # (read by code that inspects defaults without inspect.signature)
    return wrapper


def did_you_mean(name: str, choices: Iterable[str], *, ignore_case: bool = False) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when nothing is close.

    With ``ignore_case`` (for names matched case-insensitively, such as optimizers) the comparison is made on
    lower-cased text, so that ``adamw2`` is closest to ``AdamW`` rather than to ``Adam``; the suggestion keeps the
    choice's own spelling.

    A name of two or more characters that begins some choices (``ep`` for ``epochs``) is matched among those
    first, so that a cut-short name is not answered with a one-letter choice that merely scores higher.

    >>> did_you_mean("adamw2", ["SGD", "Adam", "AdamW"], ignore_case=True)
    " Did you mean 'AdamW'?"
    >>> did_you_mean("ep", ["e", "epochs"])
    " Did you mean 'epochs'?"
    """
    spelt: dict[str, str] = {}  # the compared text -> the choice's own spelling
    for c in choices:
        spelt.setdefault(c.lower() if ignore_case else c, c)
    text = str(name).lower() if ignore_case else str(name)
    started = [c for c in spelt if len(text) >= 2 and c.startswith(text)]
    close = difflib.get_close_matches(text, started or list(spelt), n=1, cutoff=0.5 if not started else 0.0)
    return f" Did you mean {spelt[close[0]]!r}?" if close else ""


def describe_yaml_error(e: BaseException) -> str:
    """Where a YAML file is broken and why, in one line: ``"line 2, column 2: expected ',' or ']', but got ':'
    (while parsing a flow sequence)"``. Falls back to the error's first line when yaml gives no position.

    ``problem_mark`` is 0-based; editors count lines and columns from 1, so both are shifted by one.
    """
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    context = getattr(e, "context", None)
    if problem is None and mark is None:
        lines = str(e).splitlines()
        return lines[0] if lines else type(e).__name__
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    text = str(problem) if problem else (str(context) if context else type(e).__name__)
    if context and problem:
        text += f" ({context})"
    return f"{where}: {text}" if where else text


_UNIQUE_LOADER: Any = None


def yaml_load(text: str) -> Any:
    r"""``yaml.safe_load(text)`` (plain data only), except that a mapping giving a key twice is an error naming the key
    and both lines — ``safe_load`` silently keeps the last one, so a second ``epochs:`` would overrule the first
    without a word. A ``yaml.YAMLError`` either way (with the position, for :func:`describe_yaml_error`).

    >>> yaml_load("epochs: 3\nlr0: 0.01")
    {'epochs': 3, 'lr0': 0.01}
    >>> yaml_load("epochs: 3\nepochs: 5")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    yaml.constructor.ConstructorError: the key 'epochs' is given twice (lines 1 and 2); give it once
    ...
    """
    global _UNIQUE_LOADER
    yaml = optional_import("yaml", "cli")
    if _UNIQUE_LOADER is None:

        class UniqueKeySafeLoader(yaml.SafeLoader):  # type: ignore[name-defined,misc]
            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *base' merges may be overridden
                        continue
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: the base class says what is wrong with it
                        continue
                    if first is not None:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"the key {key!r} is given twice (lines {first + 1} and "
                            f"{key_node.start_mark.line + 1}); give it once", key_node.start_mark)
                    seen[key] = key_node.start_mark.line
                return super().construct_mapping(node, deep)

        _UNIQUE_LOADER = UniqueKeySafeLoader
    return yaml.load(text, Loader=_UNIQUE_LOADER)  # a SafeLoader subclass: plain data only


def unknown_name_error(kind: str, name: str, choices: Iterable[str], *, ignore_case: bool = False) -> ValueError:
    """A ``ValueError`` naming the bad ``name``, the closest valid one, and every valid one (``ignore_case``: as
    in :func:`did_you_mean`).

    >>> str(unknown_name_error("rule", "valey", ["valley", "steepest"]))
    "unknown rule 'valey'. Did you mean 'valley'? Valid: steepest, valley"
    """
    choices = sorted(choices)
    hint = did_you_mean(name, choices, ignore_case=ignore_case)
    return ValueError(f"unknown {kind} {name!r}.{hint} Valid: {', '.join(choices)}")


def canonical_name(kind: str, name: Any, choices: Iterable[str]) -> str:
    """``name`` spelt as in ``choices``, matched in any case; else :func:`unknown_name_error` (case-insensitive).

    >>> canonical_name("optimizer", "adamw", ["SGD", "AdamW"])
    'AdamW'
    """
    choices = tuple(choices)
    by_lower = {c.lower(): c for c in choices}
    if isinstance(name, str) and name.lower() in by_lower:
        return by_lower[name.lower()]
    # matched case-insensitively, so suggested case-insensitively too ('adamw2' -> 'AdamW', not 'Adam')
    raise unknown_name_error(kind, str(name), choices, ignore_case=True)


def adapts_step_size(optimizer: Any) -> bool:
    """Whether an optimizer's ``lr`` multiplies a step size it adapts itself (Prodigy, D-Adaptation): a class named
    ``Prodigy*``/``DAdapt*``, or param groups carrying its estimate ``d`` and ``d0``.

    >>> import torch
    >>> adapts_step_size(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
    False
    """
    if type(optimizer).__name__.startswith(("Prodigy", "DAdapt")):
        return True
    return any("d" in g and "d0" in g for g in getattr(optimizer, "param_groups", None) or ())


def maximize_sign(optimizer: Any, why: str) -> float:
    """The sign a loss is read with: ``-1.0`` when every param group that holds parameters has ``maximize=True`` (the
    optimizer ascends the value it gets gradients of, so the quantity it lowers is its negative), else ``1.0``. Groups
    that disagree are a ``ValueError`` naming the first group of each kind; ``why`` says who needs one direction.

    >>> import torch
    >>> w = torch.zeros(1, requires_grad=True)
    >>> maximize_sign(torch.optim.SGD([w], lr=0.1, maximize=True), "a test"), maximize_sign(torch.optim.SGD([w]), "")
    (-1.0, 1.0)
    """
    flags = {gi: bool(g.get("maximize", False)) for gi, g in enumerate(optimizer.param_groups) if g["params"]}
    if len(set(flags.values())) > 1:  # the first group of each kind, in group order
        a, b = sorted(next(gi for gi, f in flags.items() if f is kind) for kind in (True, False))
        raise ValueError(
            f"param groups disagree on maximize (group {a} has maximize={flags[a]}, group {b} maximize={flags[b]}): "
            f"{why}; give every group the same maximize"
        )
    return -1.0 if flags and all(flags.values()) else 1.0


def error_text(error: BaseException) -> str:
    """``"Type: message"`` for an error (``"Type"`` when its message is empty, or when its ``__str__`` itself raises:
    a user's exception class must not turn a clean error line into a traceback); the message stripped, so that a
    message starting with a newline still shows on the first line.

    >>> error_text(KeyError("x")), error_text(RuntimeError()), error_text(ValueError("\\nwhy"))
    ("KeyError: 'x'", 'RuntimeError', 'ValueError: why')
    """
    try:
        message = str(error).strip()
    except Exception:
        message = ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def last_frame_in(error: BaseException, paths: Iterable[str | os.PathLike[str]]) -> tuple[Any, Path] | None:
    """``(frame, path)`` of the innermost traceback frame of ``error`` in one of ``paths`` (a user's file; ``path`` as
    given), or ``None``. A frame carries the path its file was imported by (symlinks kept), so the real files are
    compared.

    >>> try:
    ...     raise KeyError("x")
    ... except KeyError as e:
    ...     last_frame_in(e, ["no_such_file.py"]) is None
    True
    """
    import traceback

    real = {_real_path(Path(p)): Path(p) for p in paths}
    frames = traceback.extract_tb(error.__traceback__)
    found = [(f, real[r]) for f in frames if (r := _real_path(Path(f.filename))) in real]
    return found[-1] if found else None


def _real_path(path: Path) -> Path:
    """``path`` with symlinks resolved (as it is, when it cannot be resolved: a symlink loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def check_int(name: str, value: Any, minimum: int, hint: str = "", *, maximum: int | None = None) -> int:
    """Validate an integer (numpy/torch integer scalars too, never a bool) ``>= minimum`` (and ``<= maximum`` when
    given); raise ``ValueError`` naming it, with ``hint`` appended.

    >>> check_int("num_steps", 20, 10)
    20
    >>> check_int("num_steps", 5, 10, " (100 is typical)")
    Traceback (most recent call last):
    ...
    ValueError: num_steps=5 must be an integer >= 10 (100 is typical)
    >>> check_int("num_steps", 10**400, 10, " (100 is typical)", maximum=10**6)
    Traceback (most recent call last):
    ...
    ValueError: num_steps=1.00e+400 must be at most 1,000,000 (100 is typical)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}{hint}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={_int_text(int(value))} must be at most {maximum:,}{hint}")
    return int(value)


def _int_text(n: int) -> str:
    """``n`` with thousands separators, or as ``1.23e+400`` when it is too long to read (or for ``str()``, past 4300
    digits): exact integer arithmetic, no float overflow."""
    if n < 10**16:
        return f"{n:,}"
    exponent = int(math.log10(n))  # may be one off at a power of ten (float rounding): fixed below
    lead = n // 10 ** (exponent - 2)  # the three leading digits
    if lead >= 1000:
        exponent, lead = exponent + 1, lead // 10
    elif lead < 100:
        exponent, lead = exponent - 1, n // 10 ** (exponent - 3)
    return f"{lead / 100:.2f}e+{exponent}"


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Validate a positive finite number and return it as ``float``; raise ``ValueError`` naming it.

    >>> check_positive("lr", "0.1")
    0.1
    >>> check_positive("lrf", True)
    Traceback (most recent call last):
    ...
    ValueError: lrf=True must be a number, not a boolean
    """
    # bool is an int subclass: lrf=true must not silently become 1.0; nor numpy's True_ or torch.tensor(True)
    # (told by their dtype's name: this module imports neither)
    if isinstance(value, bool) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool"):
        raise ValueError(f"{name}={value!r} must be a number, not a boolean")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number") from None
    except OverflowError:  # float(10**400): an int beyond any float
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}=<an integer of {len(str(abs(int(value))))} digits> must be a finite number "
                         f"{bound}") from None
    ok = v >= 0 if allow_zero else v > 0
    if not ok or v != v or v in (float("inf"), float("-inf")):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}={value!r} must be a finite number {bound}")
    return v


#: the words every true/false setting reads (any case), as YAML 1.1 does: lrkit.train's true/false keys, amp=,
#: monitor=, and find_lr's amp=
BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False, "1": True, "0": False}


def as_scalar(value: Any) -> Any:
    """A numpy scalar, 0-d numpy array or 0-d tensor as the plain Python number it holds; anything else as it is
    (for the caller's own check to name).

    >>> import numpy as np, torch
    >>> as_scalar(np.int64(10)), as_scalar(torch.tensor(0.5)), as_scalar(np.array([1, 2])).shape
    (10, 0.5, (2,))
    """
    if type(value) in (str, bool, int, float) or getattr(value, "ndim", None) != 0 or \
            not callable(getattr(value, "item", None)):
        return value
    try:
        return value.item()
    except Exception:  # not a plain scalar after all
        return value


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the ``lrkit[extra]`` that brings it."""


def optional_import(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or raise ``MissingExtraError`` (an ``ImportError``) naming the extra to install.

    >>> optional_import("math", "plot").sqrt(4.0)
    2.0
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"{module!r} is needed for this feature but is not installed. "
            f'Install it with: pip install "lrkit[{extra}]"'
        ) from e


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary file beside ``path``, then it replaces it.

    A crash mid-write leaves the old file (or none), never a half-written one. Permissions are those of a plain
    ``open(path, "w")``: a new file gets ``0o666 & ~umask`` (and the folder's default ACL, if any), and a file that
    is replaced keeps its own mode. (``tempfile.mkstemp`` would leave every file ``0o600``, unreadable to the group.)

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> atomic_write(d / "a.txt", lambda tmp: tmp.write_text("hi")).read_text()
    'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        st = os.stat(path)
        # the permission bits only: a setuid/setgid bit is not carried onto new contents (the kernel drops it on write)
        keep_mode: int | None = st.st_mode & 0o777 if stat.S_ISREG(st.st_mode) else None
    except OSError:
        keep_mode = None
    tmp_path = _create_temp_beside(path)
    try:
        write(tmp_path)
        if keep_mode is not None:
            os.chmod(tmp_path, keep_mode)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def write_named(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """:func:`atomic_write` for a path the *user* named (``FinderResult.to_json(path)``, ``plot(path)``, ``lrkit
    schedule --out``): the file ``open(path, "w")`` would write, atomically where it can be. Returns ``path``.

    * ``path`` a symlink: the file it points to is written (atomically, beside it), and the link stays a link — a
      rename onto the link would replace it with a new file and leave its target as it was;
    * ``path`` an existing file that is not a regular one — a named pipe, ``/dev/stdout``, a device: written in place
      (a rename would replace the pipe, or as root the device node, with a regular file, and the reader would get
      nothing). The whole file goes to a temporary file first, then is copied in: a PNG writer seeks, a pipe cannot.

    The files of a run folder that lrkit owns go through :func:`atomic_write` instead, which replaces a link planted
    there and never writes into a file elsewhere.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "v1.txt").write_text("old")
    3
    >>> (d / "latest.txt").symlink_to(d / "v1.txt")
    >>> _ = write_named(d / "latest.txt", lambda p: p.write_text("new"))
    >>> (d / "latest.txt").is_symlink(), (d / "v1.txt").read_text()
    (True, 'new')
    """
    given = Path(path)
    try:
        mode: int | None = os.stat(given).st_mode  # (through any link)
    except OSError:  # none yet, or a link to nothing: written where it points
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        fd, name = tempfile.mkstemp(prefix="lrkit-", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            write(tmp)
            with open(tmp, "rb") as src, open(given, "wb") as dst:
                shutil.copyfileobj(src, dst)
        finally:
            tmp.unlink(missing_ok=True)
        return given
    atomic_write(os.path.realpath(given) if given.is_symlink() else given, write)
    return given


def _create_temp_beside(path: Path) -> Path:
    """Create an empty, uniquely named file beside ``path`` the way ``open()`` does (``O_CREAT`` with mode
    ``0o666``), so the kernel applies the umask and any default ACL itself: no need to read the process-wide
    umask, which only ``os.umask`` can (by setting it, a race with other threads)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:  # pragma: no cover - 48 random bits collide only by design of a test
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")  # pragma: no cover


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def increment_dir(path: str | os.PathLike[str], *, exist_ok: bool = False) -> Path:
    """``runs/find`` if free (or ``exist_ok``), else the first free ``runs/find2``, ``runs/find3``, ... (not created).

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> increment_dir(d / "run").name, (d / "run").mkdir(), increment_dir(d / "run").name
    ('run', None, 'run2')
    """
    path = Path(path)
    if exist_ok or not path.exists():
        return path
    n = 2
    while (path.parent / f"{path.name}{n}").exists():
        n += 1
    return path.parent / f"{path.name}{n}"


def claim_dir(path: str | os.PathLike[str], *, exist_ok: bool = False, what: str = "the folder") -> Path:
    """:func:`increment_dir`, then created with an exclusive ``mkdir``: a name another process takes between the check
    and the ``mkdir`` moves on to the next one, so two runs never share a folder. ``ValueError`` when the name can
    never be created (it, or a folder on its path, is a file or a broken symlink).

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> claim_dir(d / "run").name, claim_dir(d / "run").name, (d / "run2").is_dir()
    ('run', 'run2', True)
    """
    return claim_dir_created(path, exist_ok=exist_ok, what=what)[0]


def claim_dir_created(path: str | os.PathLike[str], *, exist_ok: bool = False,
                      what: str = "the folder") -> tuple[Path, list[Path]]:
    """:func:`claim_dir`, also returning the folders this call created, deepest first: the claimed folder itself when
    this call's ``mkdir`` made it, then the missing parents it made. What a caller may remove again when it fails —
    never a folder that existed before, nor one another process made first (with ``exist_ok`` the name is shared, so
    whoever's ``mkdir`` succeeded made it: the answer comes from the ``mkdir`` itself, not from an earlier look).

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> folder, made = claim_dir_created(d / "a" / "run", exist_ok=True)
    >>> [p.relative_to(d).as_posix() for p in made], claim_dir_created(folder, exist_ok=True)[1]
    (['a/run', 'a'], [])
    """
    for _ in range(1000):
        chosen = increment_dir(path, exist_ok=exist_ok)
        try:
            parents = _make_parents(chosen)
            try:
                chosen.mkdir()
            except FileExistsError:
                if exist_ok and chosen.is_dir():  # there already, or another process made it first: not ours
                    return chosen, parents
                raise
            return chosen, [chosen, *parents]
        except FileExistsError:
            if not chosen.is_dir():  # not a folder another run took: a file or a broken symlink on its path
                raise ValueError(f"cannot create {what} {str(chosen)!r}: it, or a folder on its path, is a file or a "
                                 "broken symlink") from None
    raise RuntimeError(f"could not create {what} under {path}")  # pragma: no cover


def _make_parents(path: Path) -> list[Path]:
    """Create the missing folders above ``path`` one at a time (``mkdir -p``); return those this call made, deepest
    first. A folder another process makes meanwhile is used, not counted; a file in the way is a ``FileExistsError``."""
    made: list[Path] = []
    for folder in reversed(path.parents):  # the root first
        if folder.is_dir():
            continue
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue
        made.append(folder)
    return made[::-1]


# ---- message helpers (lrkit._hf, lrkit._step and the modules that import them from there) ----

def _keys(batch: Mapping[Any, Any]) -> list[Any]:
    """A batch's keys in a stable order for a message: sorted by their text, so keys of mixed types (``0`` and
    ``"x"``, which ``sorted`` refuses to compare) are listed too, each as itself."""
    return sorted(batch, key=lambda k: (str(k), type(k).__name__))


def _a(name: str) -> str:
    """``name`` with its article: "a tuple", "an InceptionOutputs"."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def first_few(names: Sequence[Any], shown: int, *, quote: bool = True) -> str:
    """``'a', 'b' and 3 more``: the first ``shown`` of ``names`` (each ``repr``-quoted, or as they are with
    ``quote=False``) and the count of the rest.

    >>> first_few(["w", "b", "x", "y"], 2), first_few(["w"], 3), first_few(["a", "b"], 1, quote=False)
    ("'w', 'b' and 2 more", "'w'", 'a and 1 more')
    """
    head = ", ".join(repr(n) if quote else str(n) for n in names[:shown])
    return head + (f" and {len(names) - shown} more" if len(names) > shown else "")


def first_line(error: BaseException) -> str:
    """An exception's message, first line (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_LRKIT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep  # src/lrkit/


def torch_dir() -> str:
    """torch's installed package folder (with a trailing separator), for :func:`stacklevel_outside_lrkit`."""
    import torch

    return os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def stacklevel_outside_lrkit(*also: str) -> int:
    """The ``stacklevel`` that makes a warning raised by this function's caller point at the first frame outside
    lrkit (the user's ``find_lr(...)``, ``lrkit.train(...)`` or ``plot_results(...)``, however deep in lrkit it was
    raised); ``warnings.warn``'s ``skip_file_prefixes`` does this from Python 3.12 on. Called only when warning.

    ``also``: more folders to pass over — :func:`torch_dir` for a warning raised in a hook or wrapper that torch runs
    (``optimizer.step()``'s hooks, ``scheduler.step()``), so that it points at the loop's own call."""
    frame = sys._getframe(1)
    level = 1
    inside = (_LRKIT_DIR, *also)
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame = frame.f_back
        level += 1
    return level


def in_lrkit(path: str) -> bool:
    """Whether the source file ``path`` is one of lrkit's own (under its package folder).

    >>> in_lrkit(__file__), in_lrkit("/tmp/my_task.py")
    (True, False)
    """
    return os.path.abspath(path).startswith(_LRKIT_DIR)


def is_float_text(text: str) -> bool:
    """Whether ``float(text)`` reads ``text`` as a number (``"1e-3"``, ``" 2 "``, ``"nan"``, ``"inf"``).

    >>> is_float_text("1e-3"), is_float_text("0.0117"), is_float_text("(robust)")
    (True, True, False)
    """
    try:
        float(text)
    except ValueError:
        return False
    return True
