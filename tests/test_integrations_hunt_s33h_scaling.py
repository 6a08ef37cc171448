"""Bug hunt s33h, lrkit.scaling: a group LR that underflows a float is refused, not left silently untrained."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lrkit


def _stack(n: int = 4) -> nn.Sequential:
    return nn.Sequential(*[nn.Linear(2, 2) for _ in range(n)])


def test_a_layer_decay_whose_lowest_layer_lr_underflows_is_refused_naming_the_layer() -> None:
    # 1e-200 ** 3 underflows to 0.0: layer 0 used to get lr 0.0 and lr_scale 0.0 -- a group that never trains
    model = _stack()
    with pytest.raises(ValueError, match=r"layer_decay=1e-200 \*\* 3 \(layer 0 of 0\.\.3\).*underflows") as caught:
        lrkit.param_groups(model, 1e-3, layer_decay=1e-200)
    assert "'0.weight'" in str(caught.value)


def test_a_layer_id_fn_numbering_thousands_of_layers_underflows_and_is_refused() -> None:
    with pytest.raises(ValueError, match=r"layer_decay=0\.5 \*\* 5000 .*underflows .*layer_id_fn"):
        lrkit.param_groups(_stack(2), 1e-3, layer_decay=0.5, layer_id_fn=lambda name: 5000 * int(name[0]))


def test_a_backbone_lr_that_underflows_is_refused_and_nothing_is_frozen() -> None:
    model = _stack()
    with pytest.raises(ValueError, match=r"backbone_lr_scale=1e-30, underflows"):
        lrkit.param_groups(model, 1e-300, backbone_lr_scale=1e-30, head=("3",), freeze=1)
    assert all(p.requires_grad for p in model.parameters())  # a failed call changes nothing


def test_tiny_but_representable_ratios_are_kept_as_they_are() -> None:
    groups = lrkit.param_groups(_stack(), 1e-3, layer_decay=1e-100)
    assert [g["lr_scale"] for g in groups[::2]] == [1e-100 ** 3, 1e-100 ** 2, 1e-100, 1.0]
    assert all(g["lr"] > 0 for g in groups)
    torch.optim.SGD(groups)  # a usable optimizer
