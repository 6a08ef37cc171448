"""Session 25, the scaling walk's findings outside scaling.py: numpy/torch booleans as numbers, head= shown as
typed, and freeze= indices that point past the module named like them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lrkit
from lrkit._utils import check_positive


@pytest.mark.parametrize("value", [np.True_, np.False_, torch.tensor(True)])
def test_a_numpy_or_torch_boolean_is_no_number(value) -> None:
    with pytest.raises(ValueError, match="must be a number, not a boolean"):
        check_positive("lr", value)
    with pytest.raises(ValueError, match="lr=.* must be a number, not a boolean"):
        lrkit.scale_lr(value, 64, 256, rule="linear")


def test_numpy_and_torch_numbers_are_still_numbers() -> None:
    assert check_positive("lr", np.float32(0.5)) == 0.5
    assert check_positive("lr", torch.tensor(0.25)) == 0.25
    assert check_positive("lr", np.int64(2)) == 2.0


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(30, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 2))


def test_one_head_name_is_shown_as_typed(tmp_path) -> None:
    with pytest.raises(ValueError) as e:
        lrkit.train(_model(), data="breast_cancer", epochs=1, backbone_lr_scale=0.1, head=["hed"],
                    project=str(tmp_path), lr0=0.01)
    assert "head='hed' matches no parameter" in str(e.value)


def test_a_freeze_index_that_is_not_the_module_of_that_name_is_noted(tmp_path, capsys) -> None:
    lrkit.train(_model(), data="breast_cancer", epochs=1, freeze=[0, 3], project=str(tmp_path), lr0=0.01)
    text = " ".join(capsys.readouterr().out.split())  # (lrkit.train prints its notes)
    assert "froze 4 parameter tensors (530 parameters) in layers 0, 5" in text
    assert "index 3 is layer '5' (the module named '3' is index 2)" in text
    assert "freeze=['3'] in Python" in text
    assert "index 0 is" not in text  # index 0 is the module named '0'


def test_indices_that_match_the_module_names_get_no_note(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 16), nn.Linear(16, 16), nn.Linear(16, 2))  # every child has parameters
    lrkit.train(model, data="breast_cancer", epochs=1, freeze=[0, 1], project=str(tmp_path), lr0=0.01)
    out = " ".join(capsys.readouterr().out.split())
    assert "froze 4 parameter tensors" in out and "freeze indices count" not in out


def test_an_index_at_a_module_without_parameters_is_noted(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 2))
    lrkit.train(model, data="breast_cancer", epochs=1, freeze=[0, 2], project=str(tmp_path), lr0=0.01)
    text = " ".join(capsys.readouterr().out.split())
    assert "in layers 1, 5" in text
    assert "index 0 is layer '1' (the module named '0', a Flatten, has no parameters to freeze)" in text
    assert "index 2 is layer '5' (the module named '2', a ReLU, has no parameters to freeze)" in text
