"""``lrkit predict RUN INPUT`` with a NumPy file whose name does not say so.

Before: INPUT was read as an array only for a ``.npy``/``.npz`` suffix, so ``np.save`` output renamed ``rows.bin``,
``rows.dat`` or given no suffix was read as CSV and failed with "is not UTF-8 (byte 0x93 on line 1) ... lrkit.train
reads ...". Now the file's own header says what it is (``\\x93NUMPY``; a zip holding ``.npy`` members). The reverse
(a CSV named ``.npy``) still errors clearly, and ``LoadedRun.predict`` given such a file's name says how to read it.
"""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app

runner = CliRunner()
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])



def _invoke(*args: str) -> Any:
    return runner.invoke(build_app(), ["predict", *args])


def _predicted(res: Any) -> list[str]:
    assert res.exit_code == 0, res.output
    return [r[0] for r in list(csv.reader(io.StringIO(res.stdout)))[1:]]


def _error(res: Any) -> str:
    assert res.exit_code == 2, res.output
    assert res.stdout == "" and "Traceback" not in res.output
    return " ".join(res.stderr.split())


@pytest.mark.parametrize("name", ["rows.bin", "rows.dat", "rows", "rows.csv"])
@pytest.mark.parametrize("kind", [".npy", ".npz"])
def test_a_numpy_file_is_read_as_an_array_whatever_its_name(iris: Path, tmp_path: Path, kind: str,
                                                            name: str) -> None:
    expected = [str(v) for v in lrkit.load_run(iris).predict(ROWS)]
    real = tmp_path / f"real{kind}"
    np.save(real, ROWS) if kind == ".npy" else np.savez(real, x=ROWS)
    renamed = tmp_path / name
    shutil.copy(real, renamed)
    res = _invoke(str(iris), str(renamed))
    assert _predicted(res) == expected
    assert f"read {renamed} as an {kind} array" in " ".join(res.stderr.split())  # said, on stderr


def test_keep_is_refused_for_a_renamed_array(iris: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", ROWS)
    shutil.copy(tmp_path / "a.npy", tmp_path / "rows.bin")
    msg = _error(_invoke(str(iris), str(tmp_path / "rows.bin"), "--keep", "id"))
    assert "--keep" in msg and "is an array" in msg


def test_a_zip_without_arrays_is_named(iris: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "rows.bin", "w") as z:
        z.writestr("rows.csv", "1,2,3,4\n")
    msg = _error(_invoke(str(iris), str(tmp_path / "rows.bin")))
    assert "rows.bin" in msg and "zip archive" in msg and "rows.csv" in msg and "UTF-8" not in msg


def test_other_binary_input_names_what_lrkit_predict_reads(iris: Path, tmp_path: Path) -> None:
    (tmp_path / "rows.bin").write_bytes(b"\xff\xfe\x00garbage")
    msg = _error(_invoke(str(iris), str(tmp_path / "rows.bin")))
    assert "not UTF-8" in msg and "lrkit predict reads" in msg and "lrkit.train reads" not in msg


def test_a_csv_named_npy_still_errors_clearly(iris: Path, tmp_path: Path) -> None:
    (tmp_path / "rows.npy").write_text("5.1,3.5,1.4,0.2\n")
    msg = _error(_invoke(str(iris), str(tmp_path / "rows.npy")))
    assert "is not a NumPy array file" in msg and "np.save(path, rows)" in msg


@pytest.mark.parametrize("kind", [".npy", ".npz"])
def test_loaded_run_predict_given_an_array_file_name_says_numpy_load(iris: Path, tmp_path: Path, kind: str) -> None:
    real = tmp_path / f"real{kind}"
    np.save(real, ROWS) if kind == ".npy" else np.savez(real, x=ROWS)
    shutil.copy(real, tmp_path / "rows.bin")
    with pytest.raises(ValueError) as info:
        lrkit.load_run(iris).predict(str(tmp_path / "rows.bin"))
    msg = str(info.value)
    assert "numpy.load(" in msg and "read_csv" not in msg
    assert ("['x']" in msg) == (kind == ".npz")
