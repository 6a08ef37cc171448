"""Review of session 27's change (helper 27f): edge cases the change introduced or left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from _helpers import assert_same_run, killed_run
from lrkit.finder.range_test import _shut_workers
from lrkit.train import train


def _shut(*loaders: Any) -> None:
    """Stop a persistent-workers loader's worker processes now (left to interpreter exit, each costs seconds)."""
    for dl in loaders:
        _shut_workers(dl)


def _persistent_pair() -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    settings: dict[str, Any] = {"num_workers": 1, "persistent_workers": True}
    return (DataLoader(TensorDataset(x[:192], y[:192]), batch_size=32, shuffle=True, **settings),
            DataLoader(TensorDataset(x[192:], y[192:]), batch_size=64, **settings))


def _dropout_model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 2))


def test_a_resumed_run_with_a_persistent_val_loader_matches_the_uninterrupted_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A persistent-workers *validation* loader draws its workers' base seed from the global RNG when its first
    iterator is made (the first validation); the uninterrupted run drew it at epoch 1, a resumed process drew it at the
    resumed epoch's validation, after the checkpoint's RNG state was put back: every later shuffle and dropout mask
    moved."""
    common = {"epochs": 4, "lr0": 0.05, "seed": 0, "verbose": False, "plots": False, "project": tmp_path}
    made = [_persistent_pair() for _ in range(3)]
    try:
        full = train(_dropout_model(), data=made[0], name="full", **common)
        killed_run(monkeypatch, lambda: train(_dropout_model(), data=made[1], name="cut", **common), nth=2)
        resumed = train(_dropout_model(), data=made[2], resume=tmp_path / "cut", verbose=False)
    finally:
        for loaders in made:
            _shut(*loaders)
    assert_same_run(full, resumed, epochs=4)


def _small() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def _linear() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Linear(6, 2)


@pytest.mark.parametrize("kw", [{"replacement": True}, {"num_samples": 640}, {"replacement": True, "num_samples": 16}],
                         ids=["replacement", "num_samples", "both"])
def test_a_single_loader_over_a_resampling_random_sampler_is_not_split_silently(tmp_path: Path,
                                                                                  kw: dict[str, Any]) -> None:
    """A ``RandomSampler`` that draws with replacement or another count than the dataset's (an epoch of 10x the data)
    is a sampler of the user's too: split, lrkit shuffles the train split once each without it, and the epoch's
    length and draws changed without a word."""
    ds = _small()
    loader = DataLoader(ds, batch_size=8, sampler=torch.utils.data.RandomSampler(ds, **kw))
    shown = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    with pytest.raises(ValueError, match=rf"RandomSampler\({shown}\).*\(train, val\) pair of DataLoaders"):
        train(_linear(), data=loader, epochs=1, lr0=0.05, verbose=False, plots=False, project=tmp_path)


def test_a_single_loader_over_a_plain_random_sampler_is_still_split(tmp_path: Path) -> None:
    ds = _small()
    for sampler in (torch.utils.data.RandomSampler(ds), torch.utils.data.RandomSampler(ds, num_samples=len(ds))):
        loader = DataLoader(ds, batch_size=8, sampler=sampler)
        result = train(_linear(), data=loader, epochs=1, lr0=0.05, nbs=8, verbose=False, plots=False,
                       project=tmp_path)
        assert len(result.history) == 1


def test_resuming_a_multi_column_regression_saved_before_session_27_says_its_rmse_changed_units(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Session 27 scores a target of several columns in each column's units; a run saved before it holds val_rmse
    (and the best, which best.pt and patience compare with) in the former units, the RMSE of the standardised columns
    times their scales' root mean square. It still resumes, and the log says the record then holds two scales."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    y = np.stack([x[:, 0] * 1000 + rng.normal(size=120) * 300, x[:, 1] * 0.01], axis=1)
    np.savez(tmp_path / "two.npz", x=x, y=y)
    common = {"task": "regression", "epochs": 3, "lr0": 0.01, "seed": 0, "plots": False, "project": tmp_path}
    killed_run(monkeypatch, lambda: train("mlp", data=tmp_path / "two.npz", name="cut", verbose=False, **common),
               nth=2)
    path = tmp_path / "cut" / "last.pt"
    ck = torch.load(path, weights_only=False)
    assert ck.pop("rmse_per_column") is True  # what session 27 writes; a run saved before it has no such key
    torch.save(ck, path)
    capsys.readouterr()
    resumed = train("mlp", data=tmp_path / "two.npz", resume=tmp_path / "cut", verbose=True)
    out = capsys.readouterr().out
    assert len(resumed.history) == 3
    assert "saved by an earlier lrkit" in out and "val_rmse of epoch 1" in out


def test_a_one_column_regression_or_a_run_saved_now_resumes_without_that_note(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    np.savez(tmp_path / "two.npz", x=x, y=np.stack([x[:, 0] * 1000, x[:, 1] * 0.01], axis=1))
    np.savez(tmp_path / "one.npz", x=x, y=x[:, 0] * 1000)
    common = {"task": "regression", "epochs": 3, "lr0": 0.01, "seed": 0, "plots": False, "project": tmp_path}
    for name, legacy in (("two", False), ("one", True)):
        killed_run(monkeypatch, lambda n=name: train("mlp", data=tmp_path / f"{n}.npz", name=n, verbose=False,
                                                     **common), nth=2)
        if legacy:
            ck = torch.load(tmp_path / name / "last.pt", weights_only=False)
            ck.pop("rmse_per_column", None)
            torch.save(ck, tmp_path / name / "last.pt")
        capsys.readouterr()
        train("mlp", data=tmp_path / f"{name}.npz", resume=tmp_path / name, verbose=True)
        assert "saved by an earlier lrkit" not in capsys.readouterr().out
