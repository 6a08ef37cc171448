"""Session 34: an NPZ whose target is multi-hot (0/1, several per row) trained as a regression with no word; the log
now says so and names the multi-label route. A one-hot target is still read as class indices, and a real-valued
(N, K) target gets no note."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrkit.train.data import load_data


def _npz(tmp_path: Path, y: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.normal(size=(len(y), 5)).astype(np.float32), y=y)
    return str(path)


def test_a_multi_hot_target_is_noted_as_such(tmp_path: Path) -> None:
    y = (np.random.default_rng(1).random((40, 3)) > 0.5).astype(np.int64)
    y[0] = [1, 1, 0]  # at least one row with two labels
    info = load_data(_npz(tmp_path, y)).info
    assert info.task == "regression"
    assert any("multi-hot" in n and "BCEWithLogitsLoss" in n for n in info.notes), info.notes


def test_one_hot_and_real_valued_targets_get_no_multi_hot_note(tmp_path: Path) -> None:
    labels = np.arange(40) % 3
    one_hot = load_data(_npz(tmp_path, np.eye(3, dtype=np.int64)[labels])).info
    assert one_hot.task == "classification" and not any("multi-hot" in n for n in one_hot.notes)
    real = load_data(_npz(tmp_path, np.random.default_rng(2).normal(size=(40, 3)))).info
    assert real.task == "regression" and not any("multi-hot" in n for n in real.notes)
