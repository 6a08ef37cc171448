"""User walk of lr0="auto" (session 25c): what a new user passes as ``make_scheduler`` first.

A torch scheduler *class* passed as it is (``make_scheduler=ExponentialLR``) is called as ``ExponentialLR(optimizer,
steps)``: ``steps`` became its ``gamma``, every trial diverged, and choose_lr0 silently returned a too-low LR. A
schedule spec string or an lrkit ``Schedule`` were refused without saying how to turn them into a
``make_scheduler`` (the Schedule only after the whole range test had run). Each is now refused before any compute,
with a recipe that works.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch.optim import lr_scheduler

import lrkit
from _helpers import regression_batches
from lrkit.schedules import from_spec
from lrkit.train.auto import choose_lr0


def _data(n: int = 8, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return regression_batches(n, 4, seed)


class _Counting:
    """An MSE loss that counts its calls (a forward of the range test or a trial)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.nn.functional.mse_loss(out, y)


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


@pytest.mark.parametrize(("cls", "param"), [
    (lr_scheduler.ExponentialLR, "gamma"),
    (lr_scheduler.OneCycleLR, "max_lr"),
    (lr_scheduler.LambdaLR, "lr_lambda"),
    (lr_scheduler.LinearLR, "start_factor"),
])
def test_torch_scheduler_class_without_a_run_length_is_refused_before_any_step(cls: type, param: str) -> None:
    model, opt = _setup()
    loss = _Counting()
    with pytest.raises(ValueError, match=rf"make_scheduler=torch\.optim\.lr_scheduler\.{cls.__name__} is a scheduler "
                                         rf"class.*'{param}'.*make_scheduler=lambda optimizer, steps: "):
        choose_lr0(model, opt, _data(), _data(2, 1), total_steps=400, make_scheduler=cls, loss_fn=loss)
    assert loss.calls == 0  # refused before the range test (ExponentialLR used to run it, then diverge every trial)


def test_reduce_on_plateau_class_is_refused_before_any_step() -> None:
    model, opt = _setup()
    loss = _Counting()
    with pytest.raises(ValueError, match="ReduceLROnPlateau follows a metric"):
        choose_lr0(model, opt, _data(), None, total_steps=400, make_scheduler=lr_scheduler.ReduceLROnPlateau,
                   loss_fn=loss)
    assert loss.calls == 0


def test_the_exponential_recipe_in_the_message_runs() -> None:
    model, opt = _setup()
    with pytest.raises(ValueError) as info:
        choose_lr0(model, opt, _data(), _data(2, 1), total_steps=400, make_scheduler=lr_scheduler.ExponentialLR,
                   loss_fn=torch.nn.functional.mse_loss)
    recipe = re.search(r"make_scheduler=(lambda optimizer, steps: ExponentialLR\(.*?\)\)) \(", str(info.value))
    assert recipe is not None, str(info.value)
    make = eval(recipe.group(1), {"ExponentialLR": lr_scheduler.ExponentialLR})  # the code the message shows
    auto = choose_lr0(model, opt, _data(), _data(2, 1), total_steps=400, make_scheduler=make,
                      loss_fn=torch.nn.functional.mse_loss)
    assert auto.trials and all(t.val_loss < float("inf") for t in auto.trials)  # none diverged on the schedule


def test_a_class_whose_second_argument_is_the_run_length_still_runs() -> None:
    model, opt = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    auto = choose_lr0(model, opt, _data(), _data(2, 1), total_steps=400,
                      make_scheduler=lr_scheduler.CosineAnnealingLR, loss_fn=torch.nn.functional.mse_loss)
    assert auto.lr > 0 and auto.extra_steps <= 0.3 * 400
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert opt.param_groups[0]["lr"] == 0.1


def test_a_spec_string_is_refused_with_a_from_spec_recipe_that_works() -> None:
    model, opt = _setup()
    with pytest.raises(ValueError, match=r"make_scheduler='cosine' is a string.*lrkit\.schedules\.from_spec\('cosine', "
                                         r"total_steps=steps\)\.to_torch\(optimizer\)"):
        choose_lr0(model, opt, _data(), None, total_steps=400, make_scheduler="cosine",
                   loss_fn=torch.nn.functional.mse_loss)
    # the recipe, on param groups at different LRs: the trials keep their ratio
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.01}, {"params": model[1].parameters(), "lr": 0.1}])
    seen: list[list[float]] = []

    def make(optimizer: torch.optim.Optimizer, steps: int) -> lr_scheduler.LRScheduler:
        seen.append([float(g["lr"]) for g in optimizer.param_groups])
        return from_spec("cosine", total_steps=steps).to_torch(optimizer)

    auto = choose_lr0(model, opt, _data(), _data(2, 1), total_steps=400, make_scheduler=make,
                      loss_fn=torch.nn.functional.mse_loss)
    assert seen and all(lrs[0] == pytest.approx(0.1 * lrs[1]) for lrs in seen)
    assert seen[-len(auto.trials)][1] == pytest.approx(auto.trials[0].lr)  # (first: the peak probe, s26a)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]


def test_an_lrkit_schedule_is_refused_before_the_range_test_with_a_replan_recipe() -> None:
    model, opt = _setup()
    loss = _Counting()
    schedule = from_spec("cosine", total_steps=400)
    with pytest.raises(ValueError, match=r"is an lrkit Schedule .*schedule\.replan\(at_step=0, total_steps=steps\)"
                                         r"\.to_torch\(optimizer\)"):
        choose_lr0(model, opt, _data(), None, total_steps=400, make_scheduler=schedule, loss_fn=loss)
    assert loss.calls == 0  # it used to run the whole range test, then fail on Schedule.__call__'s arguments
    auto = lrkit.choose_lr0(model, opt, _data(), None, total_steps=400, loss_fn=loss,
                            make_scheduler=lambda o, n: schedule.replan(at_step=0, total_steps=n).to_torch(o))
    assert auto.lr > 0


def test_a_val_batch_the_model_cannot_take_is_raised_as_it_is_with_a_note_naming_val_loader() -> None:
    """The model's own error is raised as it is (test_review_s21e), but torch's words alone ("mat1 and mat2 shapes
    cannot be multiplied", after the whole range test) did not say that val_loader's batch was the one."""
    model, opt = _setup()
    first = [p.detach().clone() for p in model.parameters()]
    bad_val = [(torch.randn(4, 5), torch.randn(4, 1))]  # 5 features where the model (and train_loader) take 4
    with pytest.raises(RuntimeError, match="mat1 and mat2") as info:
        choose_lr0(model, opt, _data(), bad_val, total_steps=400, make_scheduler=lr_scheduler.CosineAnnealingLR,
                   loss_fn=torch.nn.functional.mse_loss)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert ("scored on val_loader's batch 0, a tuple of 2: (shape (4, 5) dtype float32, shape (4, 1) dtype "
            "float32)") in notes, notes
    assert "val_loader=None" in notes
    assert all(torch.equal(a, b) for a, b in zip(first, model.parameters()))  # restored on the way out
