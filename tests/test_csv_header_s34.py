"""Session 34: a comment line above a CSV's header was read as the header, and the error ("line 2 has 3 fields, the
header has 1") did not say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.train.data import load_data


def test_a_comment_above_the_header_is_named(tmp_path: Path) -> None:
    path = tmp_path / "com.csv"
    path.write_text("# exported 2026-11-26\nf,g,y\n1,2,0\n3,4,1\n5,6,0\n")
    with pytest.raises(ValueError, match=r"line 2 has 3 fields, the header has 1 \(line 1, '# exported.*comment"):
        load_data(str(path))


def test_distinct_names_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("f,g,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    info = load_data(str(path)).info
    assert info.features == ["f", "g"] and info.target == "y"
