"""Session 18: param_groups' head errors show head= as given (head='fcc', as `lrkit train head=fcc` typed it), not the
tuple it becomes."""
from __future__ import annotations

import pytest
import torch

from lrkit.scaling import param_groups


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_a_string_head_is_shown_as_the_string() -> None:
    with pytest.raises(ValueError, match=r"head='fcc' matches no parameter") as e:
        param_groups(_model(), 0.1, backbone_lr_scale=0.1, head="fcc")
    assert "('fcc',)" not in str(e.value)


def test_a_sequence_head_is_shown_as_a_tuple() -> None:
    with pytest.raises(ValueError, match=r"head=\('fcc', 'x'\) matches no parameter"):
        param_groups(_model(), 0.1, backbone_lr_scale=0.1, head=["fcc", "x"])


def test_milestones_out_of_order_show_the_order_to_write() -> None:
    from lrkit.schedules import from_spec

    with pytest.raises(ValueError, match=r"milestones=\[60, 30\] must be in increasing order \(e.g. \[30, 60\]"):
        from_spec("multistep lr0=0.1 milestones=60,30 unit=step", total_steps=100)
