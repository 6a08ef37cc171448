"""Review of session 26: ``LoadedRun.predict`` given an ``.npz``'s file name says how to read it, and the advice works.

Before: the message said ``run.predict(numpy.load(path)['x'])`` for any ``.npz``, also one whose features are named
``features`` (which ``lrkit.train`` and ``lrkit predict`` read), where following it was a ``KeyError``; now it names
the array those read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import lrkit

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])  # iris: tests/conftest.py


@pytest.mark.parametrize("key", ["x", "X", "features", "inputs"])
def test_the_advice_for_an_npz_names_its_features_array(iris: Path, tmp_path: Path, key: str) -> None:
    path = tmp_path / "rows.npz"
    np.savez(path, **{key: ROWS, "labels": np.array([0, 2, 1])})
    run = lrkit.load_run(iris)
    with pytest.raises(ValueError) as info:
        run.predict(str(path))
    said = re.search(r"run\.predict\((numpy\.load\([^)]*\)\['[^']*'\])\)", str(info.value))
    assert said is not None, str(info.value)
    rows = eval(said.group(1), {"numpy": np})  # the advice, followed as written
    assert run.predict(rows) == run.predict(ROWS)


@pytest.mark.parametrize("name", ["rows.xlsx", "rows.csv"])
def test_a_spreadsheet_is_not_told_to_be_unzipped(iris: Path, tmp_path: Path, name: str) -> None:
    """``lrkit predict RUN rows.xlsx`` (an Excel workbook is a zip of XML parts; also one misnamed ``.csv``): before,
    "is a zip archive ...: unzip it and give the .csv inside" — there is no CSV inside; now the error says it is a
    spreadsheet and how to save the sheet as CSV."""
    import zipfile

    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        for part in ("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/worksheets/sheet1.xml"):
            z.writestr(part, "<x/>")
    res = CliRunner().invoke(build_app(), ["predict", str(iris), str(path)])
    assert res.exit_code != 0
    msg = " ".join(str(res.output).split())
    assert "spreadsheet" in msg and "CSV" in msg and "unzip" not in msg
