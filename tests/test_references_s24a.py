"""Session 24: every repository path that src/ and benchmarks/ name in a docstring, comment or message exists.

A reference such as ``see docs/readme/auto_lr.md`` went stale when the docs moved; this test fails on the next one.
It scans the text of every ``.py`` file under ``src/`` and ``benchmarks/`` (string literals and comments alike: a
plain text scan) for two kinds of path, each matched by one simple regex:

* ``docs/<path>.md``                       — ``_DOCS``
* ``benchmarks/<name>.py``, ``tests/<name>.py`` (one level, no subfolder) — ``_SCRIPTS``

Free-text section names ("README, *How it chooses*") are not checked here: they are prose, not paths.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("src", "benchmarks")

#: ``docs/`` then path characters, ending in ``.md`` (``docs/benchmarks/auto_lr.md``).
_DOCS = re.compile(r"\bdocs/[\w./-]+?\.md\b")
#: ``benchmarks/`` or ``tests/`` then one file name ending in ``.py`` (``benchmarks/auto_lr.py``); the lookbehind
#: skips ``src/lrkit/tests/...``-style suffixes of longer paths.
_SCRIPTS = re.compile(r"(?<![\w/])(?:benchmarks|tests)/\w+\.py\b")


def _references(root: Path = ROOT) -> list[tuple[str, int, str]]:
    """``(file, line, path)`` for every path the two regexes find in the scanned folders' ``.py`` files."""
    found = []
    for folder in SCANNED:
        for py in sorted((root / folder).rglob("*.py")):
            for i, line in enumerate(py.read_text(encoding="utf-8").splitlines(), 1):
                for pattern in (_DOCS, _SCRIPTS):
                    found += [(str(py.relative_to(root)), i, m.group(0)) for m in pattern.finditer(line)]
    return found


def test_every_referenced_path_exists() -> None:
    refs = _references()
    assert len(refs) >= 20, refs  # the scan sees the references there are (a broken regex finds none)
    missing = [f"{file}:{line}: {path}" for file, line, path in refs if not (ROOT / path).is_file()]
    assert not missing, "stale references (no such file):\n" + "\n".join(missing)


def test_both_kinds_are_found() -> None:
    paths = {path for _, _, path in _references()}
    assert {"docs/benchmarks/auto_lr.md", "docs/benchmarks/finder.md", "benchmarks/auto_lr.py"} <= paths


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("# see docs/readme/auto_lr.md) ----", ["docs/readme/auto_lr.md"]),
        ('"(docs/benchmarks/finder.md, \\"Third fresh set\\")"', ["docs/benchmarks/finder.md"]),
        ("chosen on benchmarks/auto_lr.py (one setting", ["benchmarks/auto_lr.py"]),
        ("``tests/test_package.py``.", ["tests/test_package.py"]),
        ("src/lrkit/tests/x.py and benchmarks/results/auto_lr/ and docs/ alone", []),
    ],
)
def test_the_regexes(text: str, want: list[str], tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "src" / "m.py").write_text(text + "\n", encoding="utf-8")
    assert [path for _, _, path in _references(tmp_path)] == want
