"""Session 37 (p): batches and losses as users bring them to lrkit.find_lr — targets of another layout than the
output, targets that are not tensors, a one-output model with class targets, an empty batch, nested tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lrkit
from lrkit._step import batch_loss, batch_size, default_loss


def _find(model: torch.nn.Module, batches: list, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    return lrkit.find_lr(model, opt, batches, num_steps=12, **kw)


def test_default_loss_refuses_transposed_float_target():
    # same number of elements, another layout: reshaping pairs each output with another sample's target
    torch.manual_seed(0)
    out, y = torch.randn(8, 4), torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"\(4, 8\).*\(8, 4\)"):
        default_loss(out, y)


def test_find_lr_refuses_channels_last_regression_target():
    torch.manual_seed(0)
    batches = [(torch.randn(4, 3, 5, 5), torch.randn(4, 5, 5, 2))] * 3
    with pytest.raises(ValueError, match=r"\(4, 5, 5, 2\)") as err:
        _find(torch.nn.Conv2d(3, 2, 1), batches)
    assert "(4, 2, 5, 5)" in str(err.value)


@pytest.mark.parametrize(("out_shape", "y_shape"), [((8, 1), (8,)), ((8,), (8, 1)), ((8, 1, 1), (8,)), ((2, 1, 3),
                                                                                                       (2, 3))])
def test_default_loss_still_lines_up_size_one_dims(out_shape, y_shape):
    torch.manual_seed(0)
    out, y = torch.randn(out_shape), torch.randn(y_shape)
    expected = ((out.reshape(-1) - y.reshape(-1)) ** 2).mean()
    assert torch.allclose(default_loss(out, y), expected)


@pytest.mark.parametrize("target", [[0, 1, 2, 0, 1, 2, 0, 1], np.array([0, 1, 2, 0, 1, 2, 0, 1]), ["a"] * 8],
                         ids=["list", "numpy", "strings"])
def test_default_loss_target_not_a_tensor_is_a_value_error(target):
    batch = {"x": torch.randn(8, 4), "label": target}
    with pytest.raises(ValueError, match=type(target).__name__) as err:
        batch_loss(torch.nn.Linear(4, 3), batch, None, None)
    assert "tensor" in str(err.value) and "loss_fn" in str(err.value)


def test_loss_fn_attribute_error_is_the_users_own():
    def bad(out, y):
        return out.nope  # the user's bug: not lrkit's to reword

    with pytest.raises(AttributeError, match="nope"):
        batch_loss(torch.nn.Linear(4, 3), (torch.randn(8, 4), torch.randint(0, 3, (8,))), bad, None)


def test_one_output_model_with_all_zero_class_targets_is_refused():
    # cross-entropy over one class is 0 whatever the model says: a silent no-op range test before
    torch.manual_seed(0)
    batches = [(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))] * 3
    with pytest.raises(ValueError, match=r"\(8, 1\)") as err:
        _find(torch.nn.Linear(4, 1), batches)
    assert "binary_cross_entropy_with_logits" in str(err.value)


@pytest.mark.parametrize("shape", [(8,), (8, 1)])
def test_one_output_model_with_bool_targets_names_the_fix(shape):
    torch.manual_seed(0)
    y = torch.arange(8).reshape(shape) % 2 == 0
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits"):
        _find(torch.nn.Linear(4, 1), [(torch.randn(8, 4), y)] * 3)


def test_empty_first_batch_is_named():
    batches = [(torch.randn(0, 4), torch.zeros(0, dtype=torch.long))] * 3
    with pytest.raises(ValueError, match="no samples|empty") as err:
        _find(torch.nn.Linear(4, 3), batches)
    assert "(0, 4)" in str(err.value)


def test_batch_size_of_a_nested_tensor():
    nt = torch.nested.nested_tensor([torch.randn(3, 4), torch.randn(2, 4)])
    assert batch_size((nt, torch.tensor([0, 1]))) == 2


def test_default_losses_match_hand_computation():
    torch.manual_seed(0)
    x = torch.randn(8, 4)
    model = torch.nn.Linear(4, 3)
    y = torch.randint(0, 3, (8, 1), dtype=torch.int32)
    got = batch_loss(model, {"x": x, "y": y, "name": ["a"] * 8, "id": 3, "none": None}, None, None)
    assert torch.allclose(got, F.cross_entropy(model(x), y.squeeze(1).long()))


@pytest.mark.parametrize("key", ["sample_weight", "weight", "mask"])
def test_dict_batch_with_a_weight_or_mask_it_drops_warns(key):
    # the default loss (or loss_fn(model(x), y)) never reads them: an unweighted, unmasked loss, without a word before
    torch.manual_seed(0)
    batch = {"x": torch.randn(8, 4), "y": torch.randint(0, 3, (8,)), key: torch.rand(8), "id": ["a"] * 8}
    with pytest.warns(UserWarning, match=repr(key)) as rec:
        _find(torch.nn.Linear(4, 3), [batch] * 3)
    text = next(str(w.message) for w in rec if repr(key) in str(w.message))
    assert "step_fn" in text and "'id'" not in text


def test_dict_batch_with_metadata_only_does_not_warn_of_dropped_keys():
    import warnings

    torch.manual_seed(0)
    batch = {"x": torch.randn(8, 4), "y": torch.randint(0, 3, (8,)), "idx": torch.arange(8), "name": ["a"] * 8}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        _find(torch.nn.Linear(4, 3), [batch] * 3)
    assert not [w for w in rec if "never" in str(w.message) and "idx" in str(w.message)]


class _TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.cat([a, b], 1))


@pytest.mark.parametrize(("inputs", "call"), [("tuple", "model(*batch[0])"), ("dict", "model(**batch['inputs'])")])
def test_model_of_several_inputs_given_one_is_told_how_to_unpack(inputs, call):
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    batch = ((x, x), y) if inputs == "tuple" else {"inputs": {"a": x, "b": x}, "y": y}
    with pytest.raises(TypeError, match="missing 1 required positional argument") as err:
        _find(_TwoInputs(), [batch] * 3)
    notes = " ".join(getattr(err.value, "__notes__", []))
    assert call in notes and "step_fn" in notes


def test_float_class_column_against_logits_says_to_cast():
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8, 1)).float()
    with pytest.raises(ValueError, match=r"y\.long\(\)"):
        _find(torch.nn.Linear(4, 3), [(x, y)] * 3)


def test_first_batch_of_only_ignored_targets_is_named():
    # cross-entropy skips targets of -100 (ignore_index): over none left it is NaN, not "a data or model problem"
    x, y = torch.randn(8, 4), torch.full((8,), -100)
    with pytest.raises(ValueError, match="-100") as err:
        _find(torch.nn.Linear(4, 3), [(x, y)] * 3)
    assert "ignore_index" in str(err.value)


def test_some_ignored_targets_train_as_cross_entropy_does():
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    y[:3] = -100
    model = torch.nn.Linear(4, 3)
    assert torch.allclose(batch_loss(model, (x, y), None, None), F.cross_entropy(model(x), y))


def test_move_to_moves_a_dataclass_batch_without_to():
    # a collate_fn's dataclass with no .to(): its tensors were left where they were (a model on the GPU then failed
    # with torch's device mismatch inside the user's step_fn)
    from dataclasses import dataclass, field

    from lrkit._step import move_to

    @dataclass
    class Batch:
        x: torch.Tensor
        y: torch.Tensor
        names: list = field(default_factory=list)

    b = Batch(torch.zeros(2, 3), torch.ones(2), ["a", "b"])
    moved = move_to(b, torch.device("meta"))
    assert type(moved) is Batch and moved.x.device.type == "meta" and moved.y.device.type == "meta"
    assert moved.names == ["a", "b"] and b.x.device.type == "cpu"  # the caller's batch is not changed
    assert move_to(b, torch.device("cpu")) is b  # nothing to move: the same object
