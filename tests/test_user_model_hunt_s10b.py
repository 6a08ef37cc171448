"""A practitioner's own model through the Python API (find_lr, choose_lr0, train): bugs found in session 10b.

Each test failed before its fix.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lrkit
from lrkit.train.auto import choose_lr0


def _frozen_bn_model() -> nn.Sequential:
    """A model in train mode whose frozen first block (Linear + BatchNorm) the user put in eval mode, as the README's
    freeze_layers section tells them to."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    for p in model[:2].parameters():
        p.requires_grad_(False)
    model.train()
    model[1].eval()
    return model


def _batches(n: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 4, generator=g) + 2.0, torch.randint(0, 2, (8,), generator=g)) for _ in range(n)]


def _record_modes(module: nn.Module) -> list[bool]:
    seen: list[bool] = []
    module.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    return seen


# Bug: find_lr called model.train() unconditionally, so a BatchNorm the user froze with .eval() inside a training
# model ran in train mode through the range test: batch statistics instead of its frozen running ones (a curve of
# another model than the one the user trains) and its running statistics moving at every step.
def test_find_lr_keeps_a_frozen_batchnorm_in_eval_mode() -> None:
    model = _frozen_bn_model()
    seen = _record_modes(model[1])
    stats = model[1].running_mean.clone()
    moved = []
    model[1].register_forward_hook(lambda m, a, out: moved.append(not torch.equal(m.running_mean, stats)))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    result = lrkit.find_lr(model, opt, _batches(), num_steps=12)
    assert len(seen) == result.num_steps_run > 0
    assert not any(seen) and not any(moved)  # eval mode throughout: the frozen statistics never moved
    assert model.training and not model[1].training


def test_find_lr_still_trains_a_model_left_in_eval_mode() -> None:
    # a model left in eval mode as a whole (after a validation pass) is put in train mode for the test, and back
    model = _frozen_bn_model()
    model.eval()
    seen = _record_modes(model[1])
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    lrkit.find_lr(model, opt, _batches(), num_steps=12)
    assert seen and all(seen)
    assert not any(m.training for m in model.modules())


def test_choose_lr0_trials_keep_a_frozen_batchnorm_in_eval_mode() -> None:
    model = _frozen_bn_model()
    seen = _record_modes(model[1])
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    data = _batches(8)

    def make_scheduler(optimizer: torch.optim.Optimizer, steps: int) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / steps)

    auto = choose_lr0(model, opt, data, data[:2], total_steps=400, make_scheduler=make_scheduler, budget=0.3)
    assert auto.trials, "the budget leaves room for trials: they must have run"
    assert seen and not any(seen)
    assert model.training and not model[1].training


# Bug: find_lr's positional arguments were not checked: a model that is not a Module, an optimizer class, a
# generator of parameters (model.parameters()) or the optimizer and loader swapped failed with AttributeError
# ("'list' object has no attribute 'param_groups'"); a loss_fn that is not callable with "str(model(x), y) failed:
# 'str' object is not callable", and a step_fn of the wrong arity inside the first step with a bare TypeError.
@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        (("model", "opt", "data"), {}, None),  # the valid call, for reference
        (("fn", "opt", "data"), {}, ["model is a function", "torch.nn.Module", "find_lr(model, optimizer"]),
        (("model", "sgd_class", "data"), {}, ["class torch.optim", "not an instance", "SGD(model.parameters()"]),
        (("model", "params", "data"), {}, ["generator", "model.parameters()?", "torch.optim.SGD("]),
        (("model", "data", "opt"), {}, ["train_loader is an optimizer", "find_lr(model, optimizer, train_loader"]),
        (("model", "opt", 3), {}, ["train_loader is an int", "cannot be iterated"]),
        (("model", "opt", "data"), {"loss_fn": "cross_entropy"}, ["loss_fn='cross_entropy' is not a function"]),
        (("model", "opt", "data"), {"step_fn": lambda batch: batch}, ["step_fn cannot be called as step_fn(model, "]),
        (("model", "opt", "data"), {"loss_fn": lambda out: out}, ["loss_fn cannot be called as loss_fn(model(x), y)"]),
    ],
)
def test_find_lr_names_bad_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], words: list[str] | None) -> None:
    model = nn.Linear(4, 2)
    objects = {
        "model": model, "opt": torch.optim.SGD(model.parameters(), lr=0.1), "data": _batches(),
        "fn": lambda x: x, "sgd_class": torch.optim.SGD, "params": model.parameters(),
    }
    call = [objects[a] if isinstance(a, str) else a for a in args]
    if words is None:
        assert lrkit.find_lr(*call, num_steps=10, **kwargs).num_steps_run > 0
        return
    with pytest.raises(ValueError) as info:
        lrkit.find_lr(*call, num_steps=10, **kwargs)
    for word in words:
        assert word in str(info.value)


def test_find_lr_accepts_loss_modules_partials_and_map_style_batches() -> None:
    # the checks refuse none of the usual callables: a loss module, a partial, a builtin-like callable object
    import functools

    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for loss_fn in (nn.CrossEntropyLoss(), functools.partial(F.cross_entropy, label_smoothing=0.1), F.cross_entropy):
        assert lrkit.find_lr(model, opt, _batches(), num_steps=10, loss_fn=loss_fn).num_steps_run == 10

    class Batches:  # map-style: __getitem__ up to IndexError, no __iter__
        def __init__(self) -> None:
            self.items = _batches(3)

        def __getitem__(self, i: int) -> Any:
            return self.items[i]

    assert lrkit.find_lr(model, opt, Batches(), num_steps=10).num_steps_run == 10


# Bug: lrkit.train read a Dataset whose samples are dicts with the batch keys the default loss knows ({"x": ...,
# "y": ...}, as find_lr and split_batch read them) as a task it "cannot tell", and asked for task=.
class _DictDataset(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int, target_key: str = "y") -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        self.target_key = target_key

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], self.target_key: self.y[i]}


def test_train_infers_the_task_of_dict_samples() -> None:
    torch.manual_seed(0)
    r = lrkit.train(nn.Linear(6, 2), data=(_DictDataset(64, 0), _DictDataset(32, 1)), epochs=2, lr0=0.05,
                    batch=16, project=tempfile.mkdtemp(), verbose=False, plots=False)
    assert r.task == "classification" and r.metric_name == "accuracy"
    assert 0.0 <= r.final_metric <= 1.0 and r.epochs_run == 2
    # the same data as (x, y) pairs trains the same model to the same numbers
    pairs = [torch.utils.data.TensorDataset(d.x, d.y) for d in (_DictDataset(64, 0), _DictDataset(32, 1))]
    torch.manual_seed(0)
    ref = lrkit.train(nn.Linear(6, 2), data=tuple(pairs), epochs=2, lr0=0.05, batch=16, project=tempfile.mkdtemp(),
                      verbose=False, plots=False)
    assert [h["val_loss"] for h in r.history] == [h["val_loss"] for h in ref.history]


def test_train_still_asks_for_the_task_of_dicts_with_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"cannot tell the task .* dict with keys \['label_id', 'x'\]"):
        lrkit.train(nn.Linear(6, 2), data=(_DictDataset(64, 0, "label_id"), _DictDataset(32, 1, "label_id")),
                    epochs=1, lr0=0.05, project=tempfile.mkdtemp(), verbose=False, plots=False)
