"""Session 35: a tensor ``lr`` shared by param groups of different scales (``Adam(groups, lr=torch.tensor(1e-3))``)
keeps each group's scale in ``lr0="auto"``'s trials and in the integrations' peak setting, as in ``find_lr``."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from lrkit._state import set_group_lrs
from lrkit.integrations._common import peaks_first
from lrkit.schedules import from_spec
from lrkit.train.auto import choose_lr0


def _setup() -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, tuple]:
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()
    ds = torch.utils.data.TensorDataset(x, y)
    loaders = (torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True),
               torch.utils.data.DataLoader(ds, batch_size=64))
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    shared = torch.tensor(1e-3)
    opt = torch.optim.Adam([{"params": model[0].parameters(), "lr_scale": 0.1},
                            {"params": model[2].parameters(), "lr_scale": 1.0}], lr=shared)
    assert opt.param_groups[0]["lr"] is opt.param_groups[1]["lr"]  # torch gives both groups the one tensor
    return model, opt, shared, loaders


def test_choose_lr0_trials_keep_each_groups_scale_with_a_shared_tensor_lr() -> None:
    model, opt, shared, (train, val) = _setup()
    ratios: list[float] = []

    def make(o: torch.optim.Optimizer, n: int) -> torch.optim.lr_scheduler.LRScheduler:
        ratios.append(float(o.param_groups[0]["lr"]) / float(o.param_groups[1]["lr"]))
        return from_spec("cosine lrf=0.01", total_steps=n).to_torch(o)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the schedule warned of unapplied scales (both groups at one LR)
        choose_lr0(model, opt, train, val, total_steps=400, make_scheduler=make,
                   loss_fn=nn.functional.cross_entropy)
    assert ratios, "make_scheduler was never called"
    assert all(abs(r - 0.1) < 1e-6 for r in ratios), ratios  # 1.0 before: the backbone at the head's LR
    # afterwards the user's one tensor is back in both groups, with its value
    assert opt.param_groups[0]["lr"] is shared and opt.param_groups[1]["lr"] is shared
    assert float(shared) == float(torch.tensor(1e-3))


def test_peaks_first_sets_each_group_to_its_own_peak_with_a_shared_tensor_lr() -> None:
    _, opt, shared, _ = _setup()
    peaks_first(opt, np.array([[0.01, 0.1], [0.02, 0.2]]))
    assert [float(g["lr"]) for g in opt.param_groups] == [float(torch.tensor(0.02)), float(torch.tensor(0.2))]
    assert opt.param_groups[0]["lr"] is shared  # the first keeps the tensor; the second got its own copy


def test_set_group_lrs_keeps_one_tensor_for_groups_set_alike() -> None:
    shared = torch.tensor(1.0)
    groups = [{"lr": shared}, {"lr": shared}]
    set_group_lrs(groups, [0.5, 0.5])
    assert groups[0]["lr"] is shared and groups[1]["lr"] is shared and float(shared) == 0.5
    set_group_lrs(groups, [0.5, 0.25])
    assert groups[0]["lr"] is shared and groups[1]["lr"] is not shared
    assert (float(groups[0]["lr"]), float(groups[1]["lr"])) == (0.5, 0.25)
