"""Session 34: ``find_lr`` (and ``choose_lr0``, the integrations, through ``group_scales``) accepted a param group
with a negative LR or ``lr_scale`` — the test then trained that group uphill — read a NaN LR as ratio 1, and met
``lr_scale="x"`` with a bare "could not convert string to float". Each is a ValueError naming the group and value."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lrkit
from lrkit.finder.range_test import group_scales


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.01},
                           {"params": model[2].parameters(), "lr": 0.01}])
    data = [(torch.randn(16, 4), torch.randint(0, 2, (16,))) for _ in range(8)]
    return model, opt, data


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("lr", -0.01, "lr=-0.01"), ("lr", float("nan"), "lr=nan"),
    ("lr_scale", -1.0, "lr_scale=-1.0"), ("lr_scale", "x", "lr_scale='x'"), ("lr_scale", float("inf"), "lr_scale=inf"),
])
def test_a_bad_group_lr_or_scale_is_named_before_the_test(key: str, value: Any, shown: str) -> None:
    model, opt, data = _setup()
    opt.param_groups[1][key] = value
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=rf"param group 1's {shown} must be a finite number >= 0"):
        lrkit.find_lr(model, opt, data, num_steps=20)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_valid_groups_keep_their_ratios() -> None:
    _, opt, _ = _setup()
    opt.param_groups[0]["lr"] = 0.001
    assert group_scales(opt) == pytest.approx([0.1, 1.0])
    opt.param_groups[1]["lr"] = torch.tensor(0.01)  # a tensor LR is a number too
    assert group_scales(opt) == pytest.approx([0.1, 1.0])
    opt.param_groups[0]["lr_scale"] = 0.5
    assert group_scales(opt) == pytest.approx([0.5, 1.0])
