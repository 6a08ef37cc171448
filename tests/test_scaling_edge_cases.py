"""Edge cases of lrkit.scaling found by an adversarial pass: each test failed before its fix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lrkit.scaling import freeze_layers, nominal_batch, param_groups, scale_lr


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


@pytest.mark.parametrize("batch", [np.int64(32), np.int32(32), torch.tensor(32), 32.0])
def test_batch_sizes_from_numpy_or_torch_integers_are_accepted(batch: object) -> None:
    # Bug: np.int64(32) / torch.tensor(32) were refused as "must be a positive integer batch size".
    assert scale_lr(0.1, batch, 128) == pytest.approx(0.4, rel=1e-12)  # type: ignore[arg-type]
    assert scale_lr(1e-3, 8, batch, rule="sqrt") == pytest.approx(1e-3 * 2.0, rel=1e-12)  # type: ignore[arg-type]
    assert nominal_batch(batch) == nominal_batch(32)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 32.5, 0, -8, "32", np.float64(2.5), True])
def test_bad_batch_sizes_name_the_value(bad: object) -> None:
    # Bug: nan gave "cannot convert float NaN to integer" and inf an OverflowError, neither naming from_batch.
    with pytest.raises(ValueError, match=r"from_batch=.* must be a positive integer batch size"):
        scale_lr(0.1, bad, 64)  # type: ignore[arg-type]


def test_freeze_accepts_numpy_integers_like_ints() -> None:
    # Bug: freeze=np.int64(1) was refused as "must be a number of layers".
    m = _model()
    assert freeze_layers(m, np.int64(1)) == ["0.weight", "0.bias"]
    m2 = _model()
    assert freeze_layers(m2, [np.int64(2)]) == ["2.weight", "2.bias"]
    m3 = _model()
    groups = param_groups(m3, 0.1, layer_decay=0.5, layer_id_fn=lambda n: np.int64(int(n.split(".")[0])))
    assert {g["name"]: g["lr_scale"] for g in groups}["layer0/decay"] == pytest.approx(0.25)


def test_freezing_every_layer_names_freeze_not_requires_grad() -> None:
    # Bug: freeze=3 on a 3-layer model said "all have requires_grad=False", which was not (yet) true.
    m = _model()
    with pytest.raises(ValueError, match=r"freeze=3 would freeze every trainable parameter"):
        param_groups(m, 0.1, freeze=3)
    assert all(p.requires_grad for p in m.parameters())  # a failed call changes nothing


def test_layer_decay_with_a_single_layer_and_no_decay_patterns_matching_nothing() -> None:
    # Not bugs: pinned so they stay right. One layer is the top layer (scale 1); patterns that match nothing
    # leave the weights decayed and, with "bias" absent, the biases decayed too.
    groups = param_groups(nn.Linear(3, 2), 0.1, weight_decay=0.05, layer_decay=0.5, no_decay=("nothing_here",))
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [("layer0/decay", 0.1, 0.05),
                                                                       ("layer0/bias", 0.1, 0.05)]
    assert math.isclose(scale_lr(0.1, 64, 64, rule="sqrt"), 0.1)


@pytest.mark.parametrize("optimizer, rule", [("AdamW", "linear"), (torch.optim.Adam, "linear"), ("SGD", "sqrt")])
def test_an_optimizer_that_contradicts_the_rule_is_not_silently_ignored(optimizer: object, rule: str) -> None:
    # Bug: scale_lr(3e-4, 64, 256, optimizer="AdamW") scaled linearly (4x, the default rule) and ignored optimizer=
    # without a word; the family of the optimizer says sqrt (2x). An explicit contradiction is now named (and with
    # the rule left out, the optimizer decides).
    with pytest.raises(ValueError, match=rf"rule='{rule}'.*rule='auto'"):
        scale_lr(3e-4, 64, 256, rule=rule, optimizer=optimizer)


def test_an_optimizer_that_agrees_with_the_rule_or_cannot_be_judged_is_accepted() -> None:
    assert scale_lr(0.1, 64, 256, rule="linear", optimizer="SGD") == pytest.approx(0.4)
    assert scale_lr(3e-4, 64, 256, rule="sqrt", optimizer="AdamW") == pytest.approx(6e-4)
    # an optimizer outside both families: the explicit rule is the user's answer to "which one?"
    assert scale_lr(1e-4, 64, 256, rule="sqrt", optimizer="Lion") == pytest.approx(2e-4)


@pytest.mark.parametrize("optimizer, factor", [("AdamW", 2.0), (torch.optim.RMSprop, 2.0), ("SGD", 4.0), (None, 4.0)])
def test_without_a_rule_the_optimizer_decides(optimizer: object, factor: float) -> None:
    # rule left out: the optimizer's family when one is given (sqrt for adaptive ones), linear otherwise
    assert scale_lr(3e-4, 64, 256, optimizer=optimizer) == pytest.approx(3e-4 * factor)
