"""Session 19f: messages of one training step, found by a walkthrough of ``lrkit.find_lr`` with users' own code.

1. ``choose_lr0(finder_kwargs={"num_iter": 200})``: a peer's keyword (torch-lr-finder, fastai, Lightning) is named
   as ``find_lr`` names it (``PEER_KEYWORDS``), with lrkit's name as a finder_kwargs key; still a ``ValueError``.
2. A dict batch without an input/target key said "the default loss needs one of ..." also when a ``loss_fn`` was
   given: it is the split in front of ``loss_fn(model(x), y)`` that needs the keys; a near key gets a did-you-mean.
3. One-hot / probability float targets got the default MSE on the logits silently: a ``UserWarning`` on the first
   step now (the loss chosen is unchanged).
4. An error raised inside the user's model at the first step carries a note (Python >= 3.11) naming the input it
   was given; its type is unchanged.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lrkit
from lrkit._step import first_batch_loss, split_batch
from lrkit.train.auto import choose_lr0

# ------------------------------------------------------------------------------------------ 1. finder_kwargs


def _choose(finder_kwargs: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(4)]
    choose_lr0(model, opt, data, data, total_steps=400,
               make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0),
               finder_kwargs=finder_kwargs)


def test_a_torch_lr_finder_keyword_in_finder_kwargs_names_lrkits_key() -> None:
    with pytest.raises(ValueError) as e:
        _choose({"num_iter": 200})
    text = str(e.value)
    assert "'num_iter', torch-lr-finder's name: lrkit calls it num_steps" in text, text
    assert "finder_kwargs={'num_steps': 200}" in text, text
    assert "Valid:" not in text, text


def test_a_fastai_and_a_lightning_keyword_in_finder_kwargs_are_named_too() -> None:
    with pytest.raises(ValueError, match=r"'num_it', fastai's name: lrkit calls it num_steps: "
                                         r"finder_kwargs=\{'num_steps': 50\}"):
        _choose({"num_it": 50})
    with pytest.raises(ValueError, match=r"'max_lr', Lightning's name: lrkit calls it end_lr: "
                                         r"finder_kwargs=\{'end_lr': 1.0\} \(lrkit's default is 10"):
        _choose({"max_lr": 1.0})
    with pytest.raises(ValueError, match=r"'smooth_f', torch-lr-finder's name: lrkit has no smoothing option"):
        _choose({"smooth_f": 0.05})


def test_a_peer_keyword_for_an_argument_choose_lr0_takes_itself_says_so() -> None:
    with pytest.raises(ValueError) as e:
        _choose({"criterion": F.cross_entropy})
    text = str(e.value)
    assert "'criterion', torch-lr-finder's name: lrkit calls it loss_fn: pass loss_fn= to choose_lr0 itself" in text
    assert "finder_kwargs={'loss_fn'" not in text, text
    with pytest.raises(ValueError, match=r"'val_loader', torch-lr-finder's name: .*choose_lr0's fourth argument"):
        _choose({"val_loader": []})
    with pytest.raises(ValueError, match=r"choose_lr0's third positional argument: choose_lr0\(model, optimizer, "):
        _choose({"train_dataloaders": []})


def test_a_peer_keyword_beside_a_misspelt_one_names_both_and_lists_the_valid_keys() -> None:
    with pytest.raises(ValueError) as e:
        _choose({"num_iter": 200, "strat_lr": 1e-6})
    text = str(e.value)
    assert "lrkit calls it num_steps" in text and "'strat_lr'. Did you mean 'start_lr'?" in text, text
    assert "Valid: " in text and "num_steps" in text.split("Valid: ")[1], text


# ------------------------------------------------------------------------------------------ 2. dict batch keys


def test_a_dict_batch_without_known_keys_says_what_needs_them_and_suggests_a_near_key() -> None:
    with pytest.raises(ValueError) as e:
        split_batch({"feats": torch.zeros(2, 3), "lbl": torch.zeros(2)})
    text = str(e.value)
    assert text.startswith("cannot split a dict batch with keys ['feats', 'lbl'] into input and target"), text
    assert "the default loss needs" not in text, text
    assert "loss_fn(model(x), y)" in text and "default loss" in text, text
    assert "Did you mean 'features' for 'feats' and 'label' for 'lbl'?" in text, text
    assert "pass step_fn=lambda model, batch: loss instead" in text, text


def test_the_did_you_mean_is_for_the_missing_side_only() -> None:
    with pytest.raises(ValueError) as e:
        split_batch({"x": torch.zeros(2, 3), "labels_": torch.zeros(2), "images_": torch.zeros(2)})
    text = str(e.value)
    assert "Did you mean 'labels' for 'labels_'?" in text, text
    assert "'images_'" not in text.split("]", 1)[1], text  # the input side has its key: no suggestion for it


def test_find_lr_with_a_loss_fn_on_a_dict_batch_without_known_keys_does_not_blame_the_default_loss() -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [{"feats": torch.randn(4, 3), "lbl": torch.randint(0, 2, (4,))}] * 3
    with pytest.raises(ValueError) as e:
        lrkit.find_lr(model, opt, data, loss_fn=F.cross_entropy, num_steps=10)
    text = str(e.value)
    assert "cannot split a dict batch with keys ['feats', 'lbl']" in text and "the default loss needs" not in text


def test_a_hugging_face_batch_keeps_its_note_and_gets_no_input_ids_suggestion() -> None:
    with pytest.raises(ValueError) as e:
        split_batch({"input_ids": torch.zeros(2, 3, dtype=torch.long), "labels": torch.zeros(2, dtype=torch.long)})
    text = str(e.value)
    assert "with no loss_fn, a batch with 'labels' and no input key goes to the model whole" in text, text
    assert "did you mean" not in text.lower(), text


# ------------------------------------------------------------------------------------------ 3. one-hot targets


def _run(targets: torch.Tensor, out_features: int, **kw: Any) -> tuple[lrkit.FinderResult, list[Any]]:
    torch.manual_seed(0)
    model = nn.Linear(5, out_features)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(len(targets), 5), targets)] * 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = lrkit.find_lr(model, opt, data, num_steps=12, **kw)
    return result, [w for w in caught if "class probabilities" in str(w.message)]


def test_one_hot_float_targets_warn_once_and_keep_the_mse() -> None:
    y = F.one_hot(torch.arange(8) % 4, 4).float()
    result, found = _run(y, 4)
    assert result.loss == "default: MSE (float targets)"
    assert len(found) == 1, [str(w.message) for w in found]
    w = found[0]
    assert issubclass(w.category, UserWarning)
    text = str(w.message)
    assert "(8, 4)" in text and "loss_fn=torch.nn.functional.cross_entropy" in text and "integer class" in text, text
    assert w.filename == __file__  # points at the caller's find_lr(...)


def test_soft_label_probabilities_warn_too() -> None:
    y = torch.softmax(torch.randn(8, 3), dim=1)
    assert len(_run(y, 3)[1]) == 1


@pytest.mark.parametrize("targets, out", [
    (torch.ones(8, 1), 1),  # one column of ones: each row sums to 1, but a regression target
    (torch.randn(8, 4), 4),  # regression
    (torch.full((8, 2), 0.5) + torch.tensor([0.3, -0.1]), 2),  # rows sum to 1.2
    (torch.tensor([[1.5, -0.5]] * 8), 2),  # rows sum to 1, but a negative entry
])
def test_regression_targets_do_not_warn(targets: torch.Tensor, out: int) -> None:
    assert _run(targets, out)[1] == []


def test_one_hot_targets_with_a_loss_fn_do_not_warn() -> None:
    y = F.one_hot(torch.arange(8) % 4, 4).float()
    result, found = _run(y, 4, loss_fn=F.mse_loss)
    assert found == [] and result.loss == "loss_fn (mse_loss)"


# ------------------------------------------------------------------------------------------ 4. model errors


def _note(e: BaseException) -> str:
    return "\n".join(getattr(e, "__notes__", []))


def test_a_shape_error_in_the_model_at_the_first_step_keeps_its_type_and_gets_a_note() -> None:
    model = nn.Linear(7, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(32, 10), torch.randint(0, 4, (32,)))] * 3
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied") as e:
        lrkit.find_lr(model, opt, data, num_steps=10)
    assert type(e.value) is RuntimeError
    if sys.version_info >= (3, 11):
        note = _note(e.value)
        assert "lrkit: raised by model(x) at the first step of" in note, note
        assert "x of shape (32, 10) dtype float32" in note, note
    else:
        assert not hasattr(e.value, "__notes__")


def test_a_dict_batchs_input_is_named_by_its_key() -> None:
    model = nn.Linear(7, 4)
    batch = {"features": torch.randn(5, 10), "label": torch.randint(0, 4, (5,))}
    with pytest.raises(RuntimeError) as e:
        first_batch_loss(model, batch, None, None)
    if sys.version_info >= (3, 11):
        note = _note(e.value)
        assert "x = batch['features']" in note and "(5, 10)" in note, note
        assert "['features', 'label']" in note, note


def test_a_models_own_exception_of_another_type_is_noted_and_a_nested_input_described() -> None:
    class Picky(nn.Module):
        def forward(self, x: Any) -> torch.Tensor:
            raise KeyError("no such token")

    x = (torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(KeyError) as e:
        first_batch_loss(Picky(), (x, torch.zeros(3)), F.mse_loss, None)
    if sys.version_info >= (3, 11):
        note = _note(e.value)
        assert "x: a tuple of 2" in note and "(3, 2) dtype float32" in note and "(3,) dtype int64" in note, note


def test_lrkits_own_errors_and_loss_errors_get_no_note() -> None:
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError) as e:
        first_batch_loss(model, {"a": torch.zeros(2, 3)}, None, None)
    assert _note(e.value) == ""
    with pytest.raises(ValueError) as e:  # the loss fails, not the model: batch_loss's own message
        first_batch_loss(model, (torch.zeros(2, 3), torch.zeros(2)), None, None)
    assert _note(e.value) == "" and "'lrkit: raised by model(x)" not in str(e.value)


def test_an_input_dtype_error_is_still_lrkits_value_error() -> None:
    model = nn.Linear(3, 2).double()
    with pytest.raises(ValueError, match="The model.s floating parameters are float64") as e:
        first_batch_loss(model, (torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)), None, None)
    assert _note(e.value) == ""


def test_two_input_keys_no_longer_blame_the_default_loss() -> None:
    with pytest.raises(ValueError) as e:
        split_batch({"x": torch.zeros(1), "input": torch.zeros(1), "y": torch.zeros(1)})
    text = str(e.value)
    assert "has 2 input keys ['x', 'input']: lrkit cannot tell which is the input" in text, text
    assert "the default loss cannot tell" not in text, text


def test_one_hot_targets_warn_from_choose_lr0s_range_test_too() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="num_iter"):  # (stops before any work: the warning is not from here)
            _choose({"num_iter": 10})
    assert not caught
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), F.one_hot(torch.arange(8) % 3, 3).float()) for _ in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choose_lr0(model, opt, data, data, total_steps=200,
                   make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0))
    found = [w for w in caught if "sum to 1 along dim 1" in str(w.message)]
    assert len(found) == 1 and found[0].filename == __file__, [str(w.message) for w in caught]


def test_a_models_own_value_error_passes_through_without_a_note() -> None:
    class Picky(nn.Module):
        def forward(self, x: Any) -> torch.Tensor:
            raise ValueError("a model's own complaint")

    with pytest.raises(ValueError, match="^a model's own complaint$") as e:
        first_batch_loss(Picky(), (torch.zeros(2, 3), torch.zeros(2)), None, None)
    assert _note(e.value) == ""
