"""An .npz of (N, H, W) samples names its train-constant features by position, ``(row, col)``, not by flattened index.

Before: a 12x12 image's blank border read "(0-based: 0, 1, 2, 3, 4 and 78 more)" — indices into the flattened
144 values, which the user never wrote down. Now "(0-based (row, col) of x's 12x12 values: (0, 0), (0, 1), ...)".
A 2-D x (a table) reads as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrkit.train.data import load_data


def _images(tmp_path: Path, border: int) -> Path:
    rng = np.random.default_rng(0)
    x = np.zeros((60, 12, 12))
    x[:, border:12 - border, border:12 - border] = rng.normal(size=(60, 12 - 2 * border, 12 - 2 * border))
    path = tmp_path / "img.npz"
    np.savez(path, x=x, y=rng.integers(0, 3, 60))
    return path


def _note(path: Path) -> str:
    notes = [n for n in load_data(str(path), seed=0).info.notes if "one value on the train split" in n]
    assert len(notes) == 1, notes
    return notes[0]


def test_many_constant_pixels_are_named_by_row_and_column(tmp_path: Path) -> None:
    note = _note(_images(tmp_path, border=2))
    assert "80 of the 144 features of x" in note
    assert "(0-based (row, col) of x's 12x12 values: (0, 0), (0, 1), (0, 2), (0, 3), (0, 4) and 75 more)" in note


def test_a_few_constant_pixels_are_named_by_row_and_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 4, 5))
    x[:, 0, 0] = 1.0
    x[:, 3, 4] = 2.0
    path = tmp_path / "few.npz"
    np.savez(path, x=x, y=rng.integers(0, 2, 60))
    note = _note(path)
    assert "features (0, 0), (3, 4) (0-based (row, col) of x's 4x5 values) of x hold one value" in note


def test_a_table_reads_as_before(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 6))
    x[:, 3] = 0.0
    path = tmp_path / "t.npz"
    np.savez(path, x=x, y=rng.integers(0, 2, 60))
    assert "feature 3 (0-based) of x holds one value" in _note(path)
