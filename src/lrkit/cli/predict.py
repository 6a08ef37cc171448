"""``lrkit predict RUN INPUT``: a finished run's predictions for raw rows, as CSV (Ultralytics' ``yolo predict``).

A thin wrapper over :func:`lrkit.load_run`: the run's ``best.pt`` (``--which last``: ``last.pt``; or a checkpoint
path) is loaded with its preprocessing, the rows of ``INPUT`` (a CSV/TSV file, ``-`` for a CSV on stdin, or an
``.npz``/``.npy`` array) go through ``LoadedRun.predict``, and one prediction per row is written as CSV to
``--out`` (atomically) or to stdout. A text run predicts the next character of each ``--text``. The CSV is all that
goes to stdout, so the command pipes; what it has to say goes to stderr. Bad input exits with code 2 and one line.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from lrkit._utils import did_you_mean, is_float_text, write_named
from lrkit.cli._common import check_named_writable, fail, typed_float, typed_int

__all__ = ["Predictions", "predict_command", "predict_file", "register"]

_EPILOG = """Examples:

  lrkit predict runs/train new.csv                    (CSV to stdout)

  lrkit predict runs/train new.csv --out preds.csv    (written atomically)

  lrkit predict runs/train/last.pt rows.npy

  lrkit predict runs/train new.csv --keep customer_id  (the ID, then the prediction)

  cat new.csv | lrkit predict runs/train -

  lrkit predict runs/charlm --text "To be, or not to b"
"""

#: ``LoadedRun.generate``'s keywords as the flags of ``lrkit predict`` that set them, for its messages
_GENERATE_FLAGS = {"length": "--generate", "temperature": "--temperature", "seed": "--seed"}

#: rows handed to ``LoadedRun.predict`` at once: a large file is predicted in slices, not held on the device whole
_CHUNK = 4096


@dataclass
class Predictions:
    """What :func:`predict_file` returns: the output CSV's ``header`` and ``rows`` (strings, one row per input row),
    and ``notes`` for the user (columns ignored, the target column's agreement)."""

    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def to_csv(self) -> str:
        """The predictions as CSV text (a header line, then one line per input row; ``\\n`` line ends)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buf.getvalue()


# ------------------------------------------------------------------------------------------------ reading INPUT
@dataclass
class _Table:
    """A CSV read as text: ``header`` (``None`` when the first line is all numbers) and the data ``rows``, with the
    file line each row came from."""

    name: str
    header: list[str] | None
    rows: list[list[str]]
    lines: list[int]


def _read_csv(text: str, name: str, *, tab: bool = False, names: Sequence[str] | None = None) -> _Table:
    from lrkit.train.data import _numbered_header, _sniff_delimiter

    delimiter = "\t" if tab else _sniff_delimiter(text)
    rows, lines = [], []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    for row in reader:
        if row and any(c.strip() for c in row):
            rows.append(row)
            lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{name} is empty: no rows to predict")
    # a first line of numbers is a sample, but for the column numbers pandas writes above the rows
    # (DataFrame(array).to_csv(index=False): 0,1,...), which training reads as the header too, and for the run's own
    # column names (``names``: a CSV run trained on such a file); a line as short as 0,1 or 1 is as likely a sample
    # (0/1 features) and stays one, rather than being dropped as a header
    first = {c.strip() for c in rows[0]}
    header_line = len(rows) > 1 and ((len(rows[0]) >= 3 and _numbered_header(rows[0]))
                                     or (bool(names) and set(names or ()) <= first))
    numbers = all(is_float_text(c) for c in rows[0]) and not header_line
    header = None if numbers else [c.strip() for c in rows[0]]
    if header is not None:
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise ValueError(f"{name} holds only a header row ({delimiter.join(header)!r}): no rows to predict")
    width = len(header) if header is not None else len(rows[0])
    for row, line in zip(rows, lines):
        if len(row) != width:
            what = "the header has" if header is not None else "the first line has"
            raise ValueError(f"{name}: line {line} has {len(row)} fields, {what} {width}")
    return _Table(name, header, rows, lines)


def _numbers(table: _Table, j: int, column: str) -> np.ndarray:
    """Column ``j`` of ``table`` as float64, or a ``ValueError`` naming the column, the line and the cell."""
    values = np.empty(len(table.rows))
    for i, (row, line) in enumerate(zip(table.rows, table.lines)):
        cell = row[j].strip()
        try:
            values[i] = float(cell)
        except ValueError:
            what = "is empty" if not cell else f"holds a non-numeric value {cell!r}"
            raise ValueError(f"{table.name}: column {column} {what} on line {line}; the model takes numbers (fill in "
                             "or drop that row)") from None
        if not math.isfinite(values[i]):
            raise ValueError(f"{table.name}: column {column} holds {cell!r} on line {line}; the model takes finite "
                             "numbers (fill in or drop that row)")
    return values


#: the first bytes of a zip file (an ``.npz`` is a zip of ``.npy`` members)
_ZIP_MAGIC = b"PK\x03\x04"


def _array_kind(path: Path, source: str) -> str | None:
    """``".npy"`` or ``".npz"`` when the file's own header says it is one (whatever its name), else ``None``.

    A ``.npy`` starts with ``\x93NUMPY``; an ``.npz`` is a zip holding ``.npy`` members. A zip without any is
    refused here, naming its members (read as CSV it would only be "not UTF-8")."""
    import zipfile

    from lrkit.train.reuse import _numpy_file_kind

    kind = _numpy_file_kind(path)
    if kind is not None:
        return kind
    with open(path, "rb") as f:
        if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            return None
    try:
        with zipfile.ZipFile(path) as z:
            members = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None  # zip-like bytes that are no zip: left to the CSV reader's words
    if any(m.endswith("/data.pkl") or m == "data.pkl" for m in members):  # torch.save's zip: weights, not rows
        raise ValueError(f"INPUT {source!r} is a torch checkpoint (a model's weights), not rows to predict: a run's "
                         f"best.pt / last.pt is RUN, which comes first — lrkit predict {shlex.quote(source)} ROWS.csv "
                         "(INPUT: a .csv/.tsv file of rows, - for stdin, or an .npz/.npy array)")
    if any(m.startswith(("xl/", "content.xml")) for m in members):  # Excel's .xlsx, OpenDocument's .ods: zips too
        raise ValueError(f"INPUT {source!r} is a spreadsheet workbook (a zip of XML parts), not a CSV file: save the "
                         "sheet as CSV (Excel: Save As 'CSV UTF-8'; pandas: pd.read_excel(path).to_csv('rows.csv', "
                         "index=False)) and give the .csv")
    shown = ", ".join(repr(m) for m in members[:5]) + (f", ... ({len(members)} in all)" if len(members) > 5 else "")
    raise ValueError(f"INPUT {source!r} is a zip archive ({shown or 'empty'}), not a CSV file or an .npz of arrays: "
                     "unzip it and give the .csv inside, or save the rows with np.savez(path, x=rows)")


def _read_array(path: Path, kind: str | None = None) -> np.ndarray:
    """The rows of an ``.npy`` file or an ``.npz``'s ``x`` (or only) array — or the one array named like features
    (``features``, ``inputs``, ``data``, ...), as ``lrkit.train`` reads an ``.npz``; ``kind`` (``".npy"``/``".npz"``):
    what the file's header showed it to be, for a name that does not say (else its suffix)."""
    from lrkit.train.data import _NPZ_NAMES, _npz_key

    # numpy reads a file without its magic as a pickle and says "contains pickled (object) data": name it plainly
    suffix = kind or path.suffix.lower()
    with open(path, "rb") as f:
        head = f.read(6)
    if (suffix == ".npy" and head != b"\x93NUMPY") or (suffix == ".npz" and head[:2] != b"PK"):
        what = "empty" if not head else f"not {'an .npz (a zip of arrays)' if suffix == '.npz' else 'an .npy'} file"
        raise ValueError(f"{path} is not a NumPy array file: it is {what} (write one with "
                         f"{'np.savez(path, x=rows)' if suffix == '.npz' else 'np.save(path, rows)'})")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a NumPy array file ({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(loaded, np.ndarray):
        arr = loaded
    else:
        with loaded:
            names = list(loaded.files)
            # the features' array as lrkit.train reads it: x (either case), else features/inputs/data/...
            key = _npz_key(dict.fromkeys(names), "x", path) or (names[0] if len(names) == 1 else None)
            if key is None:
                raise ValueError(f"{path} holds the arrays {names}: name the inputs x (np.savez(path, x=rows)), or "
                                 f"save them alone (other names read: {', '.join(_NPZ_NAMES['x'])})")
            arr = loaded[key]
    if arr.ndim == 0 or len(arr) == 0:
        raise ValueError(f"{path}: the array has shape {arr.shape}: no rows to predict")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: the array holds {arr.dtype} values; the model takes numbers")
    return arr


def _decode_input(data: bytes, source: str) -> str:
    """INPUT's bytes as UTF-8 text, or a ``ValueError`` naming the byte, the line, and what ``lrkit predict``
    reads (``lrkit.train``'s reader names its own data files)."""
    from lrkit.train.data import _decode

    try:
        return _decode(data, source)
    except ValueError as e:
        said = str(e).split(". lrkit.train reads")[0]
        raise ValueError(f"{said}. lrkit predict reads a .csv/.tsv file of rows, - for CSV on stdin, or an .npz/.npy "
                         "array") from None


def _feature_columns(table: _Table, features: Sequence[str]) -> list[int]:
    """The index in ``table`` of each of the run's ``features`` (all present): a name the header holds more often
    than the run's features do is ambiguous (which of two ``sqft`` columns?) and a ``ValueError``; a name the run was
    trained with twice (a CSV whose header repeated it) takes the header's columns of that name in order."""
    header = table.header or []
    seen: dict[str, int] = {}
    columns = []
    for c in features:
        at = [j for j, h in enumerate(header) if h == c]
        need = list(features).count(c)
        if len(at) > need:
            numbers = ", ".join(str(j + 1) for j in at)
            raise ValueError(f"{table.name} has {len(at)} columns named {c!r} (columns {numbers}), and the run reads "
                             f"{need}: which one holds the feature is not clear; rename or drop the other"
                             f"{'s' * (len(at) - need > 1)}")
        if len(at) < need:
            raise ValueError(f"{table.name} has {len(at)} column{'s' * (len(at) != 1)} named {c!r}, but the run was "
                             f"trained on {need} (its CSV's header named {need} columns {c!r}): give all {need}, in "
                             "the order of the training file")
        columns.append(at[seen.get(c, 0)])
        seen[c] = seen.get(c, 0) + 1
    return columns


# ------------------------------------------------------------------------------------------------ the target
def _target_names(run: Any) -> list[str] | None:
    """The target columns of a run trained on several of a CSV's columns (``target=[y1, y2]``), as its header names
    them, in the order of the model's outputs; ``None`` for any other run (one target: :func:`_target_name`)."""
    target = getattr(run, "target", None)
    if isinstance(target, (list, tuple)) and len(target) > 1:
        return [str(t) for t in target]
    return None


def _target_name(run: Any) -> str:
    """The name of what the run predicts, for the header: the target column the run recorded (a CSV's, as its header
    names it), else the ``target=`` it was trained with, ``y`` for an NPZ (the array lrkit reads by default), and
    ``prediction`` where nothing names it. (A run of several target columns names each: :func:`_target_names`.)"""
    if getattr(run, "target", None) and _target_names(run) is None:
        return str(run.target)
    target, data = run.config.get("target"), run.config.get("data")
    if isinstance(target, str) and target:
        return target
    if target is None and isinstance(data, str) and data.lower().endswith(".npz"):
        return "y"
    return "prediction"


#: target cells read as "no value" (a row not labelled yet): left out of the comparison, not counted as wrong
_NO_VALUE = ("", "na", "n/a", "nan", "null", "none", "?")


def _agreement(run: Any, predicted: Any, cells: Sequence[str], column: str) -> str:
    """A note comparing the predictions with the target column the input holds: accuracy for class labels, RMSE
    (and MAE) for a regression target, over the rows whose cell holds a value (an empty cell — for a regression
    target also ``NA``, ``nan``, ... — is a row not labelled yet: left out and counted in the note); ``""`` where the
    column cannot be read as the target."""
    cells = [c.strip() for c in cells]
    if run.task == "classification":
        def same(p: Any, c: str) -> bool:
            if str(p) == c:
                return True
            return is_float_text(c) and isinstance(p, (int, float)) and float(c) == float(p)

        pairs = [(p, c) for p, c in zip(predicted, cells) if c]  # a label may be "NA": only an empty cell is none
        if not pairs:
            return ""
        hits = sum(same(p, c) for p, c in pairs)
        return (f"accuracy {hits}/{len(pairs)} ({hits / len(pairs):.1%}) against column {column!r}"
                f"{_left_out(len(cells) - len(pairs), '')}")
    if run.task == "regression":
        pairs = [(p, c) for p, c in zip(predicted, cells) if c.lower() not in _NO_VALUE]
        if not pairs or not all(is_float_text(c) and math.isfinite(float(c)) for _, c in pairs):
            return ""
        error = (np.asarray([p for p, _ in pairs], dtype=np.float64).reshape(len(pairs), -1)
                 - np.array([float(c) for _, c in pairs])[:, None])
        if error.shape[1] == 1:
            return (f"RMSE {math.sqrt(float(np.mean(error**2))):.4g}, MAE {float(np.mean(np.abs(error))):.4g} "
                    f"against column {column!r} ({len(pairs)} rows{_left_out(len(cells) - len(pairs), '; ')})")
    return ""


def _left_out(n: int, sep: str) -> str:
    """The note's words for ``n`` target cells without a value: ``" (2 rows without a value left out)"``."""
    if not n:
        return ""
    words = f"{n} row{'s' * (n != 1)} without a value left out"
    return f"{sep}{words}" if sep else f" ({words})"


def _kept_columns(table: _Table, keep: Sequence[str]) -> list[int]:
    """The indexes of ``table``'s columns named in ``keep`` (``--keep``), or a ``ValueError`` naming the file's
    columns."""
    if not keep:
        return []
    if table.header is None:
        raise ValueError(f"--keep {keep[0]!r} names a column by its header, but the first line of {table.name} is all "
                         "numbers (no header row): add one")
    for k in keep:
        if k not in table.header:
            hint = did_you_mean(k, table.header, ignore_case=True)
            raise ValueError(f"--keep {k!r}: {table.name} has no such column.{hint} The file's columns: "
                             f"{', '.join(table.header)}")
    return [table.header.index(k) for k in keep]


def _builtin_columns(run: Any, table: _Table) -> list[str] | None:
    """scikit-learn's ``feature_names`` for a run on a built-in table (``iris``, ``wine``, ``breast_cancer``) whose
    INPUT's header names any of them — its columns are then read by name, in any order, as ``run.predict`` reads a
    DataFrame (by position, a reordered ``frame.to_csv`` gave other inputs without a word); ``None`` for any other
    run or header (read by position, as before)."""
    names = getattr(run, "_column_names", None)
    features = names() if callable(names) and table.header is not None else None
    if not features or not set(features) & set(table.header or ()):
        return None
    return list(features)


# ------------------------------------------------------------------------------------------------ predicting
def _predict_in_chunks(run: Any, x: Any, n: int) -> list[Any]:
    """``run.predict`` over ``x`` (an array, or a ``{column: values}`` mapping) in slices of :data:`_CHUNK` rows;
    one prediction (a label, a float, or a row of floats) per row."""
    import torch

    from lrkit.train.reuse import check_finite_rows

    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and len(x):  # named by its row in INPUT, not in a slice
        check_finite_rows(x.reshape(len(x), -1), getattr(run, "features", None))
    out: list[Any] = []
    for start in range(0, n, _CHUNK):
        part = ({k: v[start:start + _CHUNK] for k, v in x.items()} if isinstance(x, dict)
                else x[start:start + _CHUNK])
        try:
            got = run.predict(part)
        except ValueError as e:  # the slice's shape is not INPUT's
            if not isinstance(part, np.ndarray) or part.shape == x.shape:
                raise
            raise ValueError(str(e).replace(f"of shape {part.shape}", f"of shape {x.shape}")) from None
        if isinstance(got, torch.Tensor):
            got = got.detach().cpu()
            # floats at full precision; integers (multi-label 0/1 decisions, token ids) stay integers, not "1.0"
            got = got.double() if got.is_floating_point() else got.long()
            got = got.reshape(len(got), -1) if got.dim() > 2 else got
            got = got.tolist()
        out.extend(got)
    if len(out) != n:
        raise ValueError(f"the model gave {len(out)} predictions for {n} rows; a run whose model returns one "
                         "output per row is needed")
    return out


def _cell(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def predict_file(run: Any, source: str | None, *, texts: Sequence[str] = (), stdin: str | None = None,
                 keep: Sequence[str] = (), generate: int | None = None, temperature: float = 1.0,
                 seed: int = 0) -> Predictions:
    """Predict with ``run`` (a :class:`~lrkit.train.reuse.LoadedRun`) for the rows of ``source``: a ``.csv``/``.tsv``
    file (a CSV-trained run takes its feature columns by name, in any order, and ignores other columns; any other
    run takes all columns in order, after an optional header line), ``"-"`` for CSV text given as ``stdin``, or an
    ``.npz`` (its ``x``) / ``.npy`` array; for a text run, each of ``texts`` instead — with ``generate=N``, the ``N``
    characters the run writes after each (:meth:`~lrkit.train.reuse.LoadedRun.generate` at ``temperature``, each
    text's draw seeded with ``seed``) rather than the next one.

    Returns :class:`Predictions`: one row per input row, in the input's order — the class label, or the regression
    value(s) in the target's units (one column per target) — under the target's name (:func:`_target_name`; a run of
    several CSV target columns: under each column's name), after the input columns named in ``keep`` (a CSV's, by
    its header: an ID column), copied as they are. Target columns INPUT holds are compared with the predictions:
    a note per column (accuracy, or RMSE and MAE). ``ValueError``
    for input that does not fit the run, naming the file, the column and the line.
    """
    keep = list(dict.fromkeys(keep))
    if run.task == "lm" and run.vocab is not None:
        if keep:
            raise ValueError("--keep copies columns of a CSV INPUT; a text run predicts for each --text, which it "
                             "repeats in its output's text column")
        if source is not None:
            raise ValueError(f"the run is a text run (a character-level LM): it predicts the next character of each "
                             f"--text, not rows of INPUT {source!r}; e.g. lrkit predict RUN --text 'To be'")
        if not texts:
            raise ValueError("the run is a text run (a character-level LM): give the text(s) to continue with "
                             "--text, e.g. --text 'To be'")
        if generate is not None:
            try:
                rows = [[t, run.generate(t, generate, temperature=temperature, seed=seed)] for t in texts]
            except ValueError as e:  # generate's keywords as the flags that set them
                raise ValueError(re.sub(r"^(length|temperature|seed)=", lambda m: _GENERATE_FLAGS[m.group(1)] + " ",
                                        str(e))) from None
            return Predictions(["text", "generated"], rows)
        return Predictions(["text", "next"], [[t, run.predict(t)] for t in texts])
    if generate is not None:
        raise ValueError(f"--generate writes text after each --text of a text run (a character-level LM); this run's "
                         f"task is {run.task!r}")
    if texts:
        raise ValueError(f"--text is for a text run (a character-level LM); this run's task is {run.task!r}: give "
                         "its rows as INPUT (a .csv/.tsv file, - for stdin, or an .npz/.npy array)")
    if source is None:
        raise ValueError("give INPUT: a .csv/.tsv file of raw rows, - for CSV on stdin, or an .npz/.npy array")
    notes: list[str] = []
    name = _target_name(run)
    outputs = _target_names(run) or [name]  # one per model output of a run of several target columns
    target_cells: dict[str, list[str]] = {}  # the target columns INPUT holds, by name
    if source == "-":
        # a spreadsheet's byte-order mark is not part of the first column's name (a file is read with utf-8-sig)
        table: _Table | None = _read_csv((stdin or "").removeprefix("\ufeff"), "stdin", names=run.features)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            why = "it is a folder" if path.is_dir() else "no such file"
            raise ValueError(f"INPUT {source!r}: {why}; give a .csv/.tsv file, - for stdin, or an .npz/.npy array")
        suffix = path.suffix.lower()
        # a NumPy file whose name does not say so (rows.bin, no suffix): its header does; a text file named .npy is
        # refused by _read_array, naming it
        kind = None if suffix in (".npz", ".npy") else _array_kind(path, source)
        if suffix in (".npz", ".npy") or kind is not None:
            if keep:
                raise ValueError(f"--keep names columns of a CSV INPUT by its header; {source!r} is an array "
                                 "(its rows come out in the array's order)")
            table = None
            x: Any = _read_array(path, kind)
            per = math.prod(run.input_shape) if run.input_shape else 1
            if x.ndim == 1 and per > 1:  # np.save(path, row): one sample's values, as run.predict(row) reads them
                x = x[None]
            n = len(x)
            if kind is not None:
                notes.append(f"read {source} as an {kind} array (NumPy's file header), not as CSV")
        else:
            table = _read_csv(_decode_input(path.read_bytes(), source), source, tab=suffix == ".tsv",
                              names=run.features)
    kept: list[int] = []
    if table is not None:
        n = len(table.rows)
        kept = _kept_columns(table, keep)
        features = run.features if run.features is not None else _builtin_columns(run, table)
        if features is not None:
            if table.header is None:
                raise ValueError(f"{table.name}: the first line is all numbers, but this run was trained on a CSV and "
                                 "reads its columns by name: add a header row naming them, e.g. "
                                 f"{','.join(features)}")
            missing = [c for c in features if c not in table.header]
            if missing:
                from lrkit.train.reuse import rename_hint  # one did-you-mean, as run.predict gives it

                raise ValueError(f"{table.name} has no column {', '.join(repr(c) for c in missing)}; the run's "
                                 f"features are {', '.join(features)} (the file's columns: "
                                 f"{', '.join(table.header)}).{rename_hint(missing, table.header, features)}")
            at = _feature_columns(table, features)
            x = np.stack([_numbers(table, j, repr(c)) for c, j in zip(features, at)], axis=1)
            extra = [c for c in table.header if c not in features and c not in keep]
            if run.features is None and len(outputs) == 1 and "target" in extra:
                # scikit-learn's own target column (load_iris(as_frame=True).frame.to_csv): compared, as a CSV's
                target_cells["target"] = [row[table.header.index("target")] for row in table.rows]
                extra.remove("target")
            for target in outputs:
                if target in extra:
                    target_cells[target] = [row[table.header.index(target)] for row in table.rows]
                    extra.remove(target)
            if extra:
                notes.append(f"ignored column{'s' * (len(extra) > 1)} {', '.join(repr(c) for c in extra)} (not "
                             "features of the run)")
        else:
            width = len(table.rows[0])
            columns = [repr(h) if table.header is not None else str(j + 1) for j, h in
                       enumerate(table.header or [""] * width)]
            x = np.stack([_numbers(table, j, columns[j]) for j in range(width)], axis=1)
    try:
        predicted = _predict_in_chunks(run, x, n)
    except ValueError as e:
        where = table.name if table is not None else source
        raise ValueError(f"{where}: {e}") from None
    first = predicted[0]
    named = isinstance(first, list) and len(outputs) > 1 and len(first) == len(outputs)  # an output per target
    if named:
        header = list(outputs)
        rows = [[_cell(v) for v in row] for row in predicted]
    elif isinstance(first, list):
        header = [f"{name}_{k}" for k in range(len(first))] if len(first) > 1 else [name]
        rows = [[_cell(v) for v in row] for row in predicted]
    else:
        header, rows = [name], [[_cell(v)] for v in predicted]
    if kept and table is not None:
        names = [table.header[j] for j in kept] if table.header is not None else []
        both = [c for c in names if c in header]
        if both:
            raise ValueError(f"--keep {both[0]!r} is also the name of the predictions' column: the output would hold "
                             f"two {both[0]!r} columns (a target column in INPUT is compared with the predictions on "
                             "stderr)")
        header = names + header
        rows = [[table.rows[i][j].strip() for j in kept] + row for i, row in enumerate(rows)]
    for target, cells in target_cells.items():
        # several target columns: each compared with its own output column
        column = [row[outputs.index(target)] for row in predicted] if named else predicted
        agreement = _agreement(run, column, cells, target) if named or len(outputs) == 1 else ""
        notes.append(agreement or f"column {target!r} (the target) is not read")
    return Predictions(header, rows, notes)


# ------------------------------------------------------------------------------------------------ the command
#: Ultralytics' ``yolo predict`` keys for what lrkit takes as RUN and as INPUT
_RUN_KEYS, _INPUT_KEYS = ("model", "run", "weights"), ("source", "input", "data")
_DATA_SUFFIXES = (".csv", ".tsv", ".npz", ".npy", ".txt")


def _check_arguments(run: str, source: str | None) -> None:
    """``ValueError`` for RUN/INPUT written as Ultralytics' ``model=... source=...`` (with the lrkit form), or given
    the other way round (a data file as RUN and a run as INPUT)."""
    given: dict[str, str] = {}
    plain: list[str] = []
    keyed: list[str] = []
    for token in (run, source):
        if token is None:
            continue
        m = re.fullmatch(r"([A-Za-z_]\w*)=(.*)", token, flags=re.DOTALL)
        if m is None or Path(token).expanduser().exists():
            plain.append(token)
            continue
        key, value = m.group(1).lower(), m.group(2)
        if key not in _RUN_KEYS + _INPUT_KEYS:
            raise ValueError(f"lrkit predict has no {m.group(1)}= key: it takes RUN and INPUT by position, then "
                             f"--flags (--out, --which, --keep, --device, --text); e.g. lrkit predict runs/train "
                             "new.csv")
        given["RUN" if key in _RUN_KEYS else "INPUT"] = value
        keyed.append(token)
    if keyed:
        for token in plain:  # a positional token fills the place the key=value ones left
            given.setdefault("RUN" if "RUN" not in given else "INPUT", token)
        form = f"lrkit predict {shlex.quote(given.get('RUN', 'RUN'))} {shlex.quote(given.get('INPUT', 'INPUT'))}"
        raise ValueError(f"lrkit predict takes RUN and INPUT by position, not as key=value ({' '.join(keyed)}: "
                         f"Ultralytics' model=/source= form): {form}")
    first, second = Path(run).expanduser(), Path(source).expanduser() if source not in (None, "-") else None
    if first.is_file() and first.suffix.lower() in _DATA_SUFFIXES:
        if second is not None and (second.is_dir() or (second.is_file() and second.suffix.lower() == ".pt")):
            raise ValueError("RUN and INPUT are swapped: the run comes first — lrkit predict "
                             f"{shlex.quote(source or '')} {shlex.quote(run)}")
        raise ValueError(f"RUN {run!r} is a data file, not a run: the run comes first — lrkit predict RUN "
                         f"{shlex.quote(run)} (RUN: a run folder such as runs/train, or its best.pt)")


def _check_out(out: Path, source: str | None) -> None:
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; give a file name, e.g. "
                         f"--out {str(out / 'predictions.csv')!r}")
    if source not in (None, "-") and out.exists() and Path(source).expanduser().exists() and \
            os.path.samefile(out, Path(source).expanduser()):
        raise ValueError(f"--out {str(out)!r} is INPUT itself: writing the predictions would replace the rows they "
                         "are made from; give another file")
    check_named_writable(out)


def _as_flags(message: str, which: str | None) -> str:
    """A library error's first line in the words of the command line: ``load_run``'s keywords named as the
    arguments (``run=`` as RUN, ``which=`` and ``device=`` as the flags), without its ``load_run:`` prefix.

    >>> _as_flags("run='a.pt' is a checkpoint file and which='last' picks one in a run directory", "last")
    "RUN 'a.pt' is a checkpoint file and --which last picks one in a run directory"
    """
    message = (message.strip().splitlines() or [""])[0] or "failed"
    message = message.removeprefix("load_run: ")
    message = re.sub(r"^device=", "--device ", message)
    message = re.sub(r"(?<![\w.])run=", "RUN ", message, count=1) if message.startswith("run=") else message
    if which is not None:
        message = message.replace(f"which={which!r}", f"--which {which}")
    # load_run's advice to load the other checkpoint: load_run('runs/x', which='last') / which='last'
    message = re.sub(r"load_run\((.+?), which='(best|last)'\)", r"lrkit predict \1 INPUT --which \2", message)
    return re.sub(r"(?<![\w.])which='(best|last)'", r"--which \1", message)


def predict_command(
    run: Annotated[str, typer.Argument(metavar="RUN",
                                       help="A run directory (its best.pt) or a checkpoint file (.pt).")],
    source: Annotated[
        Optional[str],  # noqa: UP045 - typer reads Optional on Python 3.10
        typer.Argument(metavar="INPUT", help="Raw rows: a .csv/.tsv file, - for CSV on stdin, or an .npz/.npy array "
                                             "(not for a text run: use --text)."),
    ] = None,
    which: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(metavar="<best|last>", help="Which checkpoint of a run directory: best (default) or last."),
    ] = None,
    out: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Write the CSV to this file (atomically) instead of stdout."),
    ] = None,
    text: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--text", metavar="<str>",
                     help="A text run: the text whose next character to predict (repeatable)."),
    ] = None,
    generate: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(metavar="<int>", parser=typed_int,
                     help="A text run: write this many characters after each --text (sampled), not the next one."),
    ] = None,
    temperature: Annotated[
        float, typer.Option(parser=typed_float, help="With --generate: divides the logits (0: the most likely "
                                                     "character each time).")
    ] = 1.0,
    seed: Annotated[int, typer.Option(parser=typed_int, help="With --generate: the draw's seed.")] = 0,
    device: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Run the model here, e.g. cuda, cuda:1, cpu. Default: cpu."),
    ] = None,
    keep: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--keep", metavar="COL",
                     help="Copy this column of a CSV INPUT (an ID) into the output, before the predictions "
                          "(repeatable; rows stay in the input's order)."),
    ] = None,
) -> None:
    """Predict with a finished run: one prediction per input row, as CSV.

    The run's model is rebuilt with its weights and the preprocessing that
    training used (lrkit.load_run): rows go in raw, as in the data; out come
    class labels, or regression values in the target's units (one column per
    target), under the target column's name (each one's, for a run of several
    target columns).

    A CSV-trained run reads INPUT's columns by name, in any order (other
    columns are ignored; a target column is compared with the predictions, on
    stderr); any other run reads all the columns in order. A text run predicts
    the next character of each --text. Rows come out in the input's order,
    one per input row; --keep COL copies input columns (an ID) in front of the
    predictions. The CSV goes to stdout (or --out), all else to stderr.
    """
    if which is not None and which not in ("best", "last"):
        fail(f"--which {which!r} must be best or last")
        return
    out_path = Path(out).expanduser() if out not in (None, "-") else None  # --out -: stdout, as INPUT - is stdin
    if out_path is None and sys.stdout is None:  # `>&-`: the CSV would be dropped without a word, and exit 0
        fail("stdout is closed, so the CSV has nowhere to go: give --out FILE, or the command a stdout")
        return
    if source == "-" and sys.stdin is None:  # `<&-`: not "the model failed on INPUT: ... binary stream for sys.stdin"
        fail("INPUT - reads the rows from stdin, which is closed: give a file as INPUT, or pipe the CSV in")
        return
    try:
        _check_arguments(run, source)
        if out_path is not None:
            _check_out(out_path, source)
        dev = None
        if device is not None:
            from lrkit.finder.range_test import _check_device

            dev = _check_device(device, "give --device cpu, cuda or cuda:N (one this machine has)")
        from lrkit.train.reuse import load_run

        loaded = load_run(run, which=which, device=dev)
        # bytes, decoded as a file of rows is (UTF-8, the byte and line named), not by the locale's codec
        stdin = _decode_input(typer.get_binary_stream("stdin").read(), "stdin") if source == "-" else None
        result = predict_file(loaded, source, texts=text or (), stdin=stdin, keep=keep or (), generate=generate,
                              temperature=temperature, seed=seed)
    except (ValueError, OSError) as e:
        message = _as_flags(str(e), which)
        if "load_run(run, model=" in message:  # a model the checkpoint cannot rebuild: no flag passes one
            message += (f" — lrkit predict cannot rebuild it; predict in Python: lrkit.load_run({run!r}, "
                        "model=...).predict(rows)")
        fail(message)
        return
    except RuntimeError as e:  # the model itself failing on the rows (torch's shape or device errors)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        fail(f"the model failed on INPUT: {first}")
        return
    for note in result.notes:
        typer.echo(note, err=True)
    rows = f"{len(result.rows)} row{'s' * (len(result.rows) != 1)}"
    if out_path is not None:
        try:
            text = result.to_csv()  # a path the user named: through a symlink, into a pipe (write_named)
            write_named(out_path, lambda p: p.write_text(text, encoding="utf-8"))
        except OSError as e:  # strerror only: str(e) names the temporary file the atomic write used
            fail(f"cannot write {out}: {e.strerror or e}")
            return
        typer.echo(f"predicted {rows} with {loaded.checkpoint}: wrote {out_path}", err=True)
    else:
        # UTF-8 bytes, as --out writes them: a stdout whose encoding cannot show a label (cp1252, Windows' default
        # for a redirect) wrote "??" for "東京", and exit 0
        typer.echo(result.to_csv().encode("utf-8"), nl=False)
        typer.echo(f"predicted {rows} with {loaded.checkpoint}", err=True)


def register(app: Any) -> None:
    """Add the ``predict`` command to a Typer app."""
    app.command("predict", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})(predict_command)
