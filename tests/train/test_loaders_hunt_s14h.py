"""Session 14h: DataLoaders and Datasets as users bring them to lrkit.train / lr0="auto"."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit

QUIET = {"verbose": False, "plots": False}


def _xy(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_batchnorm_model_leaves_out_a_last_training_batch_of_one_sample(tmp_path):
    # 33 training samples at batch=8 leave a last batch of 1; before: torch's "Expected more than 1 value per
    # channel when training" in the middle of the first epoch
    x, y = _xy()
    data = (TensorDataset(x[:33], y[:33]), TensorDataset(x[33:60], y[33:60]))
    r = lrkit.train(_bn_model(), data=data, epochs=2, batch=8, nbs=8, lr0=0.01, project=tmp_path, **QUIET)
    assert r.epochs_run == 2 and r.steps_per_epoch == 4  # 4 batches of 8; the 33rd sample is left out
    again = lrkit.train(_bn_model(), data=data, epochs=2, batch=8, nbs=8, lr0=0.01, project=tmp_path, **QUIET)
    assert again.final_val_loss == r.final_val_loss  # reproducible from seed=


def test_batchnorm_last_batch_of_one_in_a_split_dataset_a_user_loader_and_auto(tmp_path):
    x, y = _xy()
    # a Dataset split by val=: 41 samples -> 33 train (batch 32: a last batch of 1)
    r = lrkit.train(_bn_model(), data=TensorDataset(x[:41], y[:41]), epochs=1, batch=32, lr0=0.01,
                    project=tmp_path, **QUIET)
    assert r.epochs_run == 1
    # a user's DataLoader pair: the same, its last batch left out
    loader = DataLoader(TensorDataset(x[:49], y[:49]), batch_size=16, shuffle=True)
    r = lrkit.train(_bn_model(), data=(loader, TensorDataset(x[60:90], y[60:90])), epochs=1, nbs=16, lr0=0.01,
                    project=tmp_path, **QUIET)
    assert r.steps_per_epoch == 3
    # lr0="auto": the range test and the trials read the same batches
    r = lrkit.train(_bn_model(), data=(TensorDataset(x[:65], y[:65]), TensorDataset(x[65:95], y[65:95])),
                    epochs=10, batch=16, nbs=16, lr0="auto", project=tmp_path, **QUIET)
    assert r.lr0_source == "auto" and r.lr0 > 0


def test_batchnorm_with_a_single_training_sample_is_a_clear_error(tmp_path):
    x, y = _xy()
    with pytest.raises(ValueError, match=r"1 training sample.*BatchNorm"):
        lrkit.train(_bn_model(), data=(TensorDataset(x[:1], y[:1]), TensorDataset(x[1:9], y[1:9])), epochs=1,
                    lr0=0.01, project=tmp_path, **QUIET)


def test_a_model_without_batchnorm_keeps_its_last_batch_of_one(tmp_path):
    x, y = _xy()
    r = lrkit.train(_mlp(), data=(TensorDataset(x[:33], y[:33]), TensorDataset(x[33:60], y[33:60])), epochs=1,
                    batch=8, nbs=8, lr0=0.01, project=tmp_path, **QUIET)
    assert r.steps_per_epoch == 5


def test_resume_refuses_a_dataloader_whose_batch_size_changed(tmp_path):
    # with nbs=64 accumulation, batch 16 (4 per step) and 32 (2 per step) give the same steps per epoch: before, the
    # resume went on silently with other batches, accumulation and weight decay
    x, y = _xy()
    va = TensorDataset(x[150:], y[150:])
    first = lrkit.train(_mlp(), data=(DataLoader(TensorDataset(x[:150], y[:150]), batch_size=16), va), epochs=2,
                        lr0=0.01, project=tmp_path, **QUIET)
    with pytest.raises(ValueError, match=r"resume: the training batches now hold 32 samples, the run's held 16"):
        lrkit.train(_mlp(), data=(DataLoader(TensorDataset(x[:150], y[:150]), batch_size=32), va), epochs=3,
                    resume=first.run_dir, **QUIET)
    # the same loader again resumes
    r = lrkit.train(_mlp(), data=(DataLoader(TensorDataset(x[:150], y[:150]), batch_size=16), va), epochs=3,
                    resume=first.run_dir, **QUIET)
    assert r.epochs_run == 3
