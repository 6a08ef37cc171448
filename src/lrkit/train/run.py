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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrkit._utils import atomic_write, atomic_write_text, increment_dir, optional_import

__all__ = [
    "CHECKPOINT_FORMAT",
    "find_resume_checkpoint",
    "get_rng_state",
    "load_checkpoint",
    "make_run_dir",
    "save_checkpoint",
    "set_rng_state",
    "write_args_yaml",
    "write_events",
    "write_results_csv",
]

CHECKPOINT_FORMAT = "lrkit.train/1"


def make_run_dir(project: str | os.PathLike[str], name: str | None, *, exist_ok: bool = False) -> Path:
    """Create ``project/name`` (default name ``train``), or ``name2``, ``name3``, ... if taken (unless ``exist_ok``).

    Creation is atomic (``mkdir`` without ``exist_ok``), so two runs started together never share a directory.
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
    for _ in range(1000):
        path = increment_dir(base, exist_ok=exist_ok)
        try:
            path.mkdir(parents=True, exist_ok=exist_ok)
            return path
        except FileExistsError:  # another process took it between the check and mkdir: try the next name
            continue
    raise RuntimeError(f"could not create a run directory under {base}")  # pragma: no cover


def find_resume_checkpoint(resume: bool | str | os.PathLike[str], project: str | os.PathLike[str]) -> Path:
    """``resume=True``: the most recently written ``last.pt`` under ``project``; a path: that ``last.pt`` (or the
    ``last.pt`` inside that run directory)."""
    if resume is True:
        candidates = sorted(Path(project).glob("*/last.pt"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise ValueError(
                f"resume=True found no last.pt under project={os.fspath(project)!r}; pass resume=<path to last.pt>"
            )
        return candidates[-1]
    path = Path(os.fspath(resume)).expanduser()  # type: ignore[arg-type]
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
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
        torch.cuda.set_rng_state_all(list(state["cuda"]))


# ------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """``torch.save`` ``state`` atomically (a temporary file beside ``path``, then an atomic rename)."""
    return atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load an lrkit training checkpoint with ``weights_only=True``; ``ValueError`` if it is not one."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # any unpickling failure means "not a (safe) lrkit checkpoint"
        raise ValueError(f"cannot load checkpoint {os.fspath(path)!r}: {str(e).splitlines()[0]}") from None
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
