"""The ``drop=`` a CSV error proposes is quoted, so a column name with a space can be pasted as given (session 26)."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrkit


@pytest.mark.parametrize(("cell", "what"), [("abc", "non-numeric"), ("True", "True/False"), ("NA", "missing")])
def test_the_proposed_drop_is_a_quoted_name_that_works(tmp_path: Path, cell: str, what: str) -> None:
    rows = [f"{i},{cell if i % 2 else ('False' if cell == 'True' else i)},{i % 2}" for i in range(40)]
    if cell == "NA":
        rows = [f"{i},{'NA' if i % 2 else i},{i % 2}" for i in range(40)]
    path = tmp_path / "t.csv"
    path.write_text("size,customer id,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=what) as err:
        lrkit.train("mlp", data=str(path), epochs=1, verbose=False, plots=False, project=tmp_path)
    assert "drop='customer id'" in str(err.value)
    # the proposal, pasted as given, trains
    r = lrkit.train("mlp", data=str(path), drop="customer id", task="classification", epochs=1, verbose=False,
                    plots=False, project=tmp_path)
    assert r.epochs_run == 1
