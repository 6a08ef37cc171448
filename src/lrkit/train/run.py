"""A run's record on disk: the run directory, ``args.yaml``, ``results.csv``, ``events.json`` and checkpoints.

Every file is written atomically (a crash leaves the previous version, never half a file). Checkpoints hold only
tensors and plain containers, so ``torch.load(path, weights_only=True)`` loads them.

Layout of ``<project>/<name>/``::

    args.yaml      every train key as used (plus what was chosen: lr0, optimizer, accumulate, ...)
    results.csv    one row per epoch: epoch, time, train/val loss, metric, LR of every group, grad norm
    events.json    training-health events (lrkit.Monitor) and lr0="auto" trials
    last.pt        the state at the end of the last finished epoch (resume from here)
    best.pt        the model at its best validation metric
    results.png    curves drawn from results.csv (and events.json)
    previous-<YYYYmmdd-HHMMSS>/   with exist_ok=True over an older run: that run's files, moved aside when the
                   new run finishes its first epoch (a new run that fails before then leaves the folder untouched)

>>> import tempfile
>>> d = make_run_dir(tempfile.mkdtemp(), None)
>>> d.name, make_run_dir(d.parent, None).name
('train', 'train2')
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import shlex
import time
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrkit._utils import atomic_write, atomic_write_text, claim_dir_created, optional_import

__all__ = [
    "CHECKPOINT_FORMAT",
    "RUN_FILES",
    "checkpoint_damage",
    "claim_run_dir",
    "find_resume_checkpoint",
    "get_rng_state",
    "killed_start",
    "load_checkpoint",
    "lost_checkpoint",
    "make_run_dir",
    "move_previous_run",
    "previous_run_files",
    "remove_stale_temp_files",
    "restart_command",
    "save_checkpoint",
    "set_rng_state",
    "write_args_yaml",
    "write_events",
    "write_results_csv",
]

CHECKPOINT_FORMAT = "lrkit.train/1"
#: The files a run writes into its directory (a reused directory's old ones move aside: see move_previous_run).
RUN_FILES = ("args.yaml", "results.csv", "events.json", "last.pt", "best.pt", "results.png")


def make_run_dir(project: str | os.PathLike[str], name: str | None, *, exist_ok: bool = False) -> Path:
    """Create ``project/name`` (default name ``train``), or ``name2``, ``name3``, ... if taken (unless ``exist_ok``).

    Creation is atomic (``mkdir`` without ``exist_ok``), so two runs started together never share a directory.
    """
    return claim_run_dir(project, name, exist_ok=exist_ok)[0]


def claim_run_dir(project: str | os.PathLike[str], name: str | None, *,
                  exist_ok: bool = False) -> tuple[Path, list[Path]]:
    """:func:`make_run_dir`, also returning the folders this call created (deepest first: the run directory itself
    when its ``mkdir`` was this call's, then the parents it made) — the only ones a run that fails before its first
    epoch may remove. With ``exist_ok`` a folder that was there, or that another run made a moment earlier, is
    not among them (``_utils.claim_dir_created``: the answer comes from the ``mkdir`` itself).

    >>> import tempfile
    >>> d, made = claim_run_dir(tempfile.mkdtemp(), "exp", exist_ok=True)
    >>> made == [d], claim_run_dir(d.parent, "exp", exist_ok=True) == (d, [])
    (True, True)
    """
    base = Path(project) / (name or "train")
    for folder in (base.parent, *base.parent.parents):  # the nearest existing ancestor must be a folder
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"project={os.fspath(project)!r}: {folder} is a file, not a folder for run "
                                 "directories")
            break
    if exist_ok and base.exists() and not base.is_dir():
        raise ValueError(f"name={base.name!r}: {base} is a file, not a run directory")
    return claim_dir_created(base, exist_ok=exist_ok, what="the run directory")


def killed_start(run_dir: str | os.PathLike[str]) -> bool:
    """Whether ``run_dir`` holds a run stopped before its first epoch was saved: its ``args.yaml`` (written when the
    run starts) and no ``last.pt`` (written when an epoch is in). A ``SIGKILL`` leaves this; a run that fails with
    an error removes what it wrote.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "args.yaml").write_text("epochs: 3")
    >>> killed_start(d), killed_start(d.parent)
    (True, False)
    """
    folder = Path(run_dir)
    return ((folder / "args.yaml").is_file() and not (folder / "last.pt").exists()
            and lost_checkpoint(folder) is None)  # (epochs recorded: its last.pt is gone, see lost_checkpoint)


def lost_checkpoint(run_dir: str | os.PathLike[str]) -> str | None:
    """What a run folder without a ``last.pt`` records of finished epochs — ``"2 epochs in results.csv, best.pt"``
    — or ``None`` when it records none. Such a run got past its first epoch and its ``last.pt`` is gone (removed to
    save space, or not copied with the folder): no killed start (before session 35 it was called one). A
    ``best.pt``, or two rows of ``results.csv``, say that a ``last.pt`` was once written (each epoch writes
    ``results.csv``, then ``last.pt``, then ``best.pt``); one row alone is a run killed before its first ``last.pt``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "results.csv").write_text("epoch,val_loss\\n1,0.5\\n2,0.4\\n")
    >>> cut = Path(tempfile.mkdtemp()); _ = (cut / "results.csv").write_text("epoch,val_loss\\n1,0.5\\n")
    >>> lost_checkpoint(d), lost_checkpoint(cut)
    ('2 epochs in results.csv', None)
    """
    folder = Path(run_dir)
    if (folder / "last.pt").exists():
        return None
    found = []
    try:
        rows = sum(1 for line in (folder / "results.csv").read_text(encoding="utf-8", errors="replace")
                   .splitlines()[1:] if line.strip())
    except OSError:
        rows = 0
    best = (folder / "best.pt").is_file()
    if rows < 2 and not best:
        return None
    if rows:
        found.append(f"{rows} epoch{'s' if rows != 1 else ''} in results.csv")
    if best:
        found.append("best.pt")
    return ", ".join(found)


def _lost_checkpoint_error(prefix: str, folder: Path, records: str) -> ValueError:
    """The error for resuming a run whose ``last.pt`` is gone although it records finished epochs."""
    best = (f"its best.pt still loads (lrkit.load_run({os.fspath(folder)!r})) and fine-tunes "
            f"(model={os.fspath(folder / 'best.pt')}), and " if (folder / "best.pt").is_file() else "")
    return ValueError(f"{prefix}: the run in {folder} has finished epochs ({records}) but no last.pt (removed, or not "
                      "copied with the folder), and only last.pt holds the training state a resume continues from, "
                      f"so it cannot be resumed; {best}the same settings train again with lrkit train "
                      f"cfg={shlex.quote(os.fspath(folder / 'args.yaml'))} resume=false")


def restart_command(run_dir: str | os.PathLike[str]) -> str:
    """The command that starts the run in ``run_dir`` again from its ``args.yaml``, in that same folder (its old
    ``args.yaml`` moves to ``previous-<time>/`` once the new first epoch is in: nothing is lost). ``project=`` and
    ``name=`` are given, since ``args.yaml`` records ``name: null`` for an auto-numbered ``train2``.

    >>> restart_command("runs/exp")
    'lrkit train cfg=runs/exp/args.yaml resume=false project=runs name=exp exist_ok=true'
    """
    folder = Path(run_dir)
    q = shlex.quote
    return (f"lrkit train cfg={q(os.fspath(folder / 'args.yaml'))} resume=false project={q(os.fspath(folder.parent))} "
            f"name={q(folder.name)} exist_ok=true")


def previous_run_files(run_dir: str | os.PathLike[str]) -> list[str]:
    """The names of the run files (:data:`RUN_FILES`) a previous run left in ``run_dir``, in :data:`RUN_FILES` order.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "last.pt").write_bytes(b""); _ = (d / "notes.txt").write_text("mine")
    >>> previous_run_files(d)
    ['last.pt']
    """
    folder = Path(run_dir)
    return [name for name in RUN_FILES if (folder / name).exists() or (folder / name).is_symlink()]  # dangling too


def move_previous_run(run_dir: str | os.PathLike[str], names: Sequence[str]) -> Path:
    """Move a previous run's files ``names`` out of the way, into ``run_dir/previous-<YYYYmmdd-HHMMSS>/`` (``-2``,
    ``-3``, ... if taken); return that folder. Renames within one folder: nothing is copied or lost.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "results.csv").write_text("epoch")
    >>> aside = move_previous_run(d, ["results.csv"])
    >>> aside.name.startswith("previous-"), (aside / "results.csv").is_file(), (d / "results.csv").exists()
    (True, True, False)
    """
    folder = Path(run_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1, 1000):
        dest = folder / (f"previous-{stamp}" if i == 1 else f"previous-{stamp}-{i}")
        try:
            dest.mkdir()
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover
        raise RuntimeError(f"could not create a previous-{stamp} folder in {folder}")
    for name in names:
        src = folder / name
        if src.exists() or src.is_symlink():  # a link is moved as a link, even one whose target is gone
            os.replace(src, dest / name)
    return dest


def remove_stale_temp_files(run_dir: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files (``.<name>.<12 hex>.tmp``) that a killed process left beside the run files
    (:data:`RUN_FILES`) in ``run_dir``; return their names. A kill during an atomic write leaves the old file intact
    and this half-written temporary file beside it; a resume sweeps them.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / ".last.pt.0123456789ab.tmp").write_bytes(b"half")
    >>> _ = (d / ".notes.txt.0123456789ab.tmp").write_bytes(b"not ours")
    >>> remove_stale_temp_files(d), sorted(p.name for p in d.iterdir())
    (['.last.pt.0123456789ab.tmp'], ['.notes.txt.0123456789ab.tmp'])
    """
    folder = Path(run_dir)
    removed = []
    for name in RUN_FILES:
        for tmp in sorted(folder.glob(f".{name}.*.tmp")):
            token = tmp.name[len(name) + 2:-len(".tmp")]
            if len(token) == 12 and all(c in "0123456789abcdef" for c in token) and tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp.name)
    return removed


def find_resume_checkpoint(resume: bool | str | os.PathLike[str], project: str | os.PathLike[str],
                           name: str | None = None) -> Path:
    """``resume=True``: the most recently modified ``last.pt`` anywhere under ``project`` (searched recursively, as
    Ultralytics does) — under ``project/name`` when a ``name`` is given, so that ``resume=True, name="exp"`` resumes
    ``exp`` and never another run saved more recently; a path: that ``last.pt`` (or the ``last.pt`` inside that run
    directory).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "a" / "b").mkdir(parents=True)
    >>> _ = (root / "a" / "b" / "last.pt").write_bytes(b"")
    >>> find_resume_checkpoint(True, root).relative_to(root).as_posix()
    'a/b/last.pt'
    """
    if resume is True:
        root = Path(project).expanduser() / (name or "")
        given = f"project={os.fspath(project)!r}" + (f", name={name!r}" if name else "")
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise ValueError(f"resume=True found no last.pt: it searches {given} for the newest one, but "
                             f"{root.resolve()} {what}; pass project=<the folder of your runs> (and name=<the run>) or "
                             "resume=<path to last.pt or a run directory>")
        candidates, killed = [], []
        for folder, _, files in os.walk(root):  # os.walk does not follow symlinked folders: no loops
            if "last.pt" in files:
                path = Path(folder) / "last.pt"
                candidates.append((path.stat().st_mtime, str(path), path))
            elif "args.yaml" in files and not Path(folder).name.startswith("previous-"):  # not a record moved aside
                path = Path(folder) / "args.yaml"
                killed.append((path.stat().st_mtime, str(path), Path(folder)))
        newest = max(candidates) if candidates else None
        if killed and (newest is None or max(killed)[0] > newest[0]):
            # the run started last has nothing saved: resuming an older one instead would train a run the user did
            # not mean (and extend it, with epochs=), so say which is which
            dead = max(killed)[2]
            other = (f"; or pass resume={os.fspath(newest[2])!r} to resume the newest run that has a last.pt"
                     if newest is not None else "")
            which = "the run" if dead == root else f"the newest run under {root.resolve()} is"
            records = lost_checkpoint(dead)
            if records is not None:  # it trained, and its last.pt is gone: no killed start
                error = _lost_checkpoint_error(f"resume=True: {which} {dead}", dead, records)
                raise ValueError(f"{error}{other}")
            raise ValueError(f"resume=True: {which} {dead}, which was stopped before "
                             "its first epoch was saved (it has an args.yaml but no last.pt, or is still in its first "
                             f"epoch), so there is nothing to resume; start it again in that folder: "
                             f"{restart_command(dead)}{other}")
        if newest is None:
            raise ValueError(f"resume=True found no last.pt anywhere under {root.resolve()} ({given}, searched "
                             "recursively); pass resume=<path to last.pt or a run directory>, or the project= (and "
                             "name=) the run used")
        return newest[2]
    path = Path(os.fspath(resume)).expanduser()  # type: ignore[arg-type]
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        records = lost_checkpoint(path.parent) if path.name == "last.pt" and (path.parent / "args.yaml").is_file() \
            else None
        if records is not None:  # a run that trained, whose last.pt is gone
            raise _lost_checkpoint_error(f"resume={os.fspath(resume)!r}: no checkpoint at {path}",  # type: ignore[arg-type]
                                         path.parent, records)
        if path.name == "last.pt" and killed_start(path.parent):  # a run killed in its first epoch
            raise ValueError(f"resume={os.fspath(resume)!r}: no checkpoint at {path}: the run in {path.parent} "  # type: ignore[arg-type]
                             "was stopped before its first epoch was saved, so there is nothing to resume; start it "
                             f"again (lrkit train cfg={path.parent / 'args.yaml'} resume=false) in a new folder, or "
                             f"start it again in the same folder: {restart_command(path.parent)} (its args.yaml moves "
                             "to previous-<time>/ once the new first epoch is in)")
        raise ValueError(f"resume={os.fspath(resume)!r}: no checkpoint at {path}")  # type: ignore[arg-type]
    return path


# ------------------------------------------------------------------------------------------- RNG as tensors
def get_rng_state() -> dict[str, Any]:
    """torch (CPU, CUDA), numpy and python RNG states as tensors and numbers (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python_version": int(py_state[0]),
        "python_state": torch.tensor(py_state[1], dtype=torch.int64),
        "python_gauss": py_state[2],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` captured."""
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, int(state["numpy_pos"]), int(state["numpy_has_gauss"]), float(state["numpy_gauss"]))
    )
    py = tuple(int(v) for v in state["python_state"].tolist())
    random.setstate((int(state["python_version"]), py, state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        # one state per device of the machine that saved it: a machine with fewer devices restores the first ones
        torch.cuda.set_rng_state_all(list(state["cuda"])[: torch.cuda.device_count()])


# ------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """``torch.save`` ``state`` atomically (a temporary file beside ``path``, then an atomic rename).

    Tensors on an accelerator are saved as CPU tensors, so a checkpoint written on a GPU loads on any machine with a
    plain ``torch.load(path, weights_only=True)`` (no ``map_location``), and every checkpoint of a run is alike
    whichever path wrote it; ``load_state_dict`` copies them back onto the model's device.
    """
    plain = _on_cpu(dict(state), {})
    return atomic_write(path, lambda tmp: torch.save(plain, tmp))


def _on_cpu(obj: Any, memo: dict[Any, torch.Tensor]) -> Any:
    """``obj`` with every non-CPU tensor in its dicts, lists and tuples copied to the CPU (a tensor met twice, or
    two tensors that are the same view of one storage, copied once: :func:`_cpu_copy`); containers keep their type
    and a state dict its ``_metadata``; unchanged parts are not rebuilt.

    >>> s = {"w": torch.ones(2), "groups": [{"lr": 0.1}]}
    >>> _on_cpu(s, {}) is s
    True
    """
    if isinstance(obj, torch.Tensor):
        return obj if obj.device.type == "cpu" else _cpu_copy(obj, memo)
    if isinstance(obj, dict):
        items = {k: _on_cpu(v, memo) for k, v in obj.items()}
        if all(items[k] is v for k, v in obj.items()):
            return obj
        new = type(obj)(items) if type(obj) in (dict, OrderedDict) else items
        if isinstance(new, OrderedDict) and hasattr(obj, "_metadata"):
            new._metadata = obj._metadata  # type: ignore[union-attr]  # module versions for load_state_dict
        return new
    if type(obj) in (list, tuple):
        moved = [_on_cpu(v, memo) for v in obj]
        return obj if all(m is v for m, v in zip(moved, obj)) else type(obj)(moved)
    return obj


def _cpu_copy(t: torch.Tensor, memo: dict[Any, torch.Tensor]) -> torch.Tensor:
    """``t`` copied to the CPU, once per view: ``state_dict()`` returns tied weights (a GPT's ``lm_head.weight`` and
    ``wte.weight``) as two tensor objects over one storage, which ``torch.save`` stores once; keyed by the view
    (device, address, dtype, shape, strides), they get one CPU tensor, so the checkpoint stores them once too.

    >>> w = torch.ones(2, 2); memo = {}
    >>> _cpu_copy(w.detach(), memo) is _cpu_copy(w.detach(), memo)
    True
    """
    if t.layout != torch.strided:  # sparse and other layouts have no single address: one copy per object
        key: Any = ("object", id(t))
    else:
        key = (t.device, t.data_ptr(), t.dtype, tuple(t.shape), t.stride())
    if key not in memo:
        memo[key] = t.detach().to("cpu")
    return memo[key]


def checkpoint_damage(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be a whole ``torch.save`` file, in words, or ``None`` when it may be one: empty,
    truncated (a zip's start without its end: a copy or download cut short), or not a torch file at all. torch's
    own words for these are an internal zip error or a suggestion to load with ``weights_only=False``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.pt").write_bytes(b""); _ = (d / "b.pt").write_bytes(b"PK\x03\x04x")
    >>> checkpoint_damage(d / "a.pt"), checkpoint_damage(d / "b.pt")
    ('it is empty (0 bytes)', 'it is truncated or damaged (5 bytes: a torch file whose end is missing)')
    """
    try:
        size = os.path.getsize(path)
        if zipfile.is_zipfile(path):
            return None
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None  # torch.load says what is wrong with reading it
    if size == 0:
        return "it is empty (0 bytes)"
    if head == b"PK\x03\x04":  # torch.save's zip, cut short: its central directory is at the end
        return f"it is truncated or damaged ({size:,} bytes: a torch file whose end is missing)"
    return f"it is not a torch .pt file ({size:,} bytes that are no torch.save output)"


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load an lrkit training checkpoint with ``weights_only=True``; ``ValueError`` if it is not one (an empty,
    truncated or foreign file is named so, not in torch's words)."""
    damage = checkpoint_damage(path)
    if damage is not None:
        folder = Path(path).parent
        raise ValueError(f"cannot load checkpoint {os.fspath(path)!r}: {damage}, so the run cannot resume from it; "
                         f"its best.pt, if whole, still loads (lrkit.load_run({os.fspath(folder)!r})), and the same "
                         f"settings train again with lrkit train cfg={shlex.quote(os.fspath(folder / 'args.yaml'))} "
                         "resume=false")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # any unpickling failure means "not a (safe) lrkit checkpoint"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"cannot load checkpoint {os.fspath(path)!r}: {first}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not an lrkit training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


# ------------------------------------------------------------------------------------------- text records
def write_args_yaml(path: str | os.PathLike[str], args: Mapping[str, Any]) -> Path:
    """Write ``args`` as YAML (keys in the given order)."""
    yaml = optional_import("yaml", "cli")
    return atomic_write_text(path, yaml.safe_dump(_plain(dict(args)), sort_keys=False, allow_unicode=True))


def write_results_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write every epoch row (the union of their columns, in first-seen order) as CSV."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def write_events(path: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write ``events.json`` (monitor events and the lr0 choice)."""
    return atomic_write_text(path, json.dumps(_plain(dict(record)), indent=2, allow_nan=False) + "\n")


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return "" if v is None else v


def _plain(v: Any) -> Any:
    """JSON/YAML-safe: tensors/numpy to numbers or lists, non-finite floats to None, objects to short strings."""
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "to_dict"):
        return _plain(v.to_dict())
    return f"<{type(v).__name__}>"
