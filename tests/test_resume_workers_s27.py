"""A run whose train DataLoader keeps its worker processes (``persistent_workers=True``) resumes to the uninterrupted
run's record.

Such a loader draws its workers' base seed when its first iterator is made, and later epochs reuse that iterator:
the uninterrupted run drew it at its first epoch, but a resumed process made its first iterator at the resumed
epoch, after the checkpoint's RNG state was put back, so that draw shifted the sampler's shuffle of every later
epoch (val losses from the resumed epoch on differed by ~1e-3). Now the resumed run makes the iterator before it puts
the RNGs back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from _helpers import assert_same_run, killed_run
from lrkit.finder.range_test import _shut_workers
from lrkit.train import train


def _loaders(generator: bool) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    extra: dict[str, Any] = {"generator": torch.Generator().manual_seed(3)} if generator else {}
    train_loader = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=16, shuffle=True, num_workers=2,
                              persistent_workers=True, **extra)
    return train_loader, DataLoader(TensorDataset(x[192:], y[192:]), batch_size=64)


def _shut(loaders: tuple[DataLoader, DataLoader]) -> None:
    """Stop a persistent-workers loader's worker processes now (left to interpreter exit, each costs seconds)."""
    for dl in loaders:
        _shut_workers(dl)


def _model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


@pytest.mark.parametrize("generator", [False, True], ids=["global_rng", "loader_generator"])
def test_a_resumed_run_over_persistent_workers_matches_the_uninterrupted_run(tmp_path: Path, generator: bool,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    common = {"epochs": 4, "lr0": 0.05, "seed": 0, "verbose": False, "plots": False, "project": tmp_path}
    made = [_loaders(generator) for _ in range(3)]
    full = train(_model(), data=made[0], name="full", **common)

    killed_run(monkeypatch, lambda: train(_model(), data=made[1], name="cut", **common), nth=3)
    resumed = train(_model(), data=made[2], resume=tmp_path / "cut", verbose=False)
    for loaders in made:
        _shut(loaders)
    assert_same_run(full, resumed, epochs=4)
