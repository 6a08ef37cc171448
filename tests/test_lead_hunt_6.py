"""Bug hunt 6 on the shared plumbing (``lrkit._step``): the default loss of ``find_lr`` takes class targets the way
``lrkit.train`` does (any integer dtype, a ``(N, 1)`` column), and a dict batch with two input (or target) keys is
an error rather than a silent pick of the first; a ``step_fn`` that returns ``loss.item()`` or ``(loss, logs)`` is
told to return the loss tensor itself (it was told to "reduce it with loss.mean()")."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import lrkit
from lrkit._step import default_loss, split_batch


def _curve(targets: torch.Tensor) -> list[float]:
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    model = nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [(x[i:i + 16], targets[i:i + 16]) for i in range(0, 64, 16)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lrkit.find_lr(model, opt, loader, num_steps=12, end_lr=1.0).losses


@pytest.mark.parametrize("make", [
    lambda y: y.to(torch.int32),      # numpy on Windows, torch.randint(..., dtype=torch.int32)
    lambda y: y.to(torch.int16),
    lambda y: y.unsqueeze(1),          # a column of labels, as a DataFrame column gives it
    lambda y: y.to(torch.int32).unsqueeze(1),
])
def test_find_lr_reads_any_integer_class_target_as_the_int64_vector(make) -> None:
    """torch's cross-entropy refuses int32/int16 targets and a (N, 1) column; ``find_lr``'s default loss refused
    them too (``lrkit.train`` already took them), so the same data worked in one and not the other."""
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(1))
    assert _curve(make(y)) == _curve(y)


def test_default_loss_squeezes_a_label_column_but_not_a_one_logit_output() -> None:
    out = torch.randn(4, 3)
    col = torch.tensor([[0], [2], [1], [0]])
    assert torch.equal(default_loss(out, col), nn.functional.cross_entropy(out, col.squeeze(1)))
    with pytest.raises(RuntimeError):  # (N, 1) logits against (N, 1) labels is no label column: torch's own error
        default_loss(torch.randn(4, 1), col)


@pytest.mark.parametrize("batch, keys", [
    ({"x": 1, "input": 2, "y": 3}, "['x', 'input']"),
    ({"x": 1, "label": 2, "labels": 3}, "['label', 'labels']"),
])
def test_a_dict_batch_with_two_input_or_target_keys_is_an_error_naming_them(batch, keys) -> None:
    """It silently took the first key in lrkit's search order: a dict with both ``x`` and ``input`` trained on
    ``x`` whichever the user meant."""
    with pytest.raises(ValueError, match=r"cannot tell which") as info:
        split_batch(batch)
    assert keys in str(info.value) and "step_fn" in str(info.value)


def test_a_dict_batch_with_one_input_and_one_target_key_splits() -> None:
    assert split_batch({"features": 1, "labels": 2, "id": 3}) == (1, 2)


# ------------------------------------------- a step_fn that returns no tensor is told what to return
@pytest.mark.parametrize("wrap, match", [
    (lambda loss: loss.item(), r"got float \(.*\); return the loss tensor itself.*not loss\.item\(\)"),
    (lambda loss: np.float32(loss.item()), r"got float32 .*return the loss tensor itself"),
    (lambda loss: (loss, {"acc": 1.0}), r"got tuple; return the loss tensor alone .*out\[0\]"),
    (lambda loss: {"loss": loss}, r"got dict; return the loss tensor alone .*out\['loss'\]"),
])
def test_a_loss_that_is_not_a_tensor_says_what_to_return(wrap: Any, match: str) -> None:
    model = torch.nn.Linear(4, 1)
    data = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(4)]

    def step_fn(m: torch.nn.Module, b: Any) -> Any:
        return wrap(torch.nn.functional.mse_loss(m(b[0]), b[1]))

    with pytest.raises(ValueError, match=match):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), data, step_fn=step_fn, num_steps=10)
