"""``choose_trainer_lr`` with your own scheduler (``Trainer(optimizers=(optimizer, scheduler))``): refused before
session 23 ("cannot be rebuilt from a scheduler object"). Now it is recorded over the run — stepped once per optimizer
step, as ``train()`` steps it, then put back — and replayed compressed in each trial; ``train()`` afterwards runs that
very schedule scaled to the chosen LR."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _helpers import spy_results

pytest.importorskip("transformers")

from lrkit.integrations import transformers as hf
from lrkit.integrations.transformers import choose_trainer_lr
from test_hf_auto_s22e import LRs, Reg, _trainer, _val, _weights

pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning",
                                        "ignore:.*(loss|curve|suggest|range|steps|flat).*:UserWarning")


def _onecycle(model: torch.nn.Module, max_lr: float = 0.01) -> tuple[torch.optim.Optimizer, Any]:
    optimizer = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=60)


def _warmup_cosine(model: torch.nn.Module, lr: float = 0.01) -> tuple[torch.optim.Optimizer, Any]:
    head = list(model.net[3].parameters())
    body = [p for p in model.parameters() if all(p is not h for h in head)]
    optimizer = torch.optim.AdamW([{"params": body, "lr": lr * 0.1}, {"params": head, "lr": lr}])
    warm = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=6)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=54)
    return optimizer, torch.optim.lr_scheduler.SequentialLR(optimizer, [warm, cos], milestones=[6])


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The schedule records choose_trainer_lr makes (spied on)."""
    return spy_results(monkeypatch, hf, "record_schedule")


@pytest.mark.parametrize("build", [_onecycle, _warmup_cosine], ids=["onecycle", "warmup-cosine-2-groups"])
def test_your_scheduler_is_recorded_and_train_runs_it_at_the_chosen_peak(
        tmp_path: Path, build: Any, recorded: list[Any]) -> None:
    model = Reg()
    optimizer, scheduler = build(model)
    lrs_cb = LRs()
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, scheduler), eval_dataset=_val(),
                       callbacks=[lrs_cb])
    auto = choose_trainer_lr(trainer, budget=1.0)
    assert auto.trials and len(recorded) == 1
    lrs, momenta = recorded[0]
    assert lrs.shape == (60, len(optimizer.param_groups))
    if build is _onecycle:
        assert "momentum" in momenta
    trainer.train()
    assert trainer.state.global_step == 60
    np.testing.assert_allclose(np.array(lrs_cb.lrs), lrs * auto.lr / lrs.max(), rtol=1e-9)


def test_train_after_the_choice_is_train_with_your_scheduler_built_at_the_chosen_lr(tmp_path: Path) -> None:
    model = Reg()
    trainer = _trainer(tmp_path / "a", model=model, optimizers=_onecycle(model), eval_dataset=_val())
    auto = choose_trainer_lr(trainer, budget=1.0)
    trainer.train()
    reference_model = Reg()
    reference = _trainer(tmp_path / "b", model=reference_model, optimizers=_onecycle(reference_model, auto.lr),
                         eval_dataset=_val())
    reference.train()
    a, b = _weights(model), _weights(reference_model)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_set_lr_false_leaves_your_optimizer_and_scheduler_as_they_were(tmp_path: Path) -> None:
    model = Reg()
    optimizer, scheduler = _warmup_cosine(model)
    groups = copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups])
    state = copy.deepcopy(scheduler.state_dict())
    weights = _weights(model)
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, scheduler))
    auto = choose_trainer_lr(trainer, budget=1.0, set_lr=False)
    assert auto.trials
    assert [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups] == groups
    assert str(scheduler.state_dict()) == str(state) and optimizer.state == {}
    assert all(torch.equal(v, weights[k]) for k, v in _weights(model).items())


def test_a_plateau_scheduler_of_yours_is_refused(tmp_path: Path) -> None:
    model = Reg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = _trainer(tmp_path, model=model,
                       optimizers=(optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)))
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau that follows a metric.*find_trainer_lr"):
        choose_trainer_lr(trainer)


def test_a_scheduler_of_yours_that_has_stepped_is_refused(tmp_path: Path) -> None:
    model = Reg()
    optimizer, scheduler = _onecycle(model)
    optimizer.step()
    scheduler.step()
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, scheduler))
    with pytest.raises(ValueError, match=r"\(OneCycleLR\) has already stepped \(last_epoch=1"):
        choose_trainer_lr(trainer)


def test_the_chosen_lr_is_the_highest_train_runs_at_also_when_it_never_reaches_your_schedules_peak(
        tmp_path: Path) -> None:
    """A OneCycleLR over 400 steps in a 60-step run never reaches its max_lr: the chosen LR is the highest LR the run
    trains at (the range test sweeps the LRs themselves), not the unreached max_lr."""
    model = Reg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=400)  # peak at step 120
    lrs_cb = LRs()
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, scheduler), eval_dataset=_val(),
                       callbacks=[lrs_cb])
    auto = choose_trainer_lr(trainer, budget=1.0)
    trainer.train()
    assert max(lr[0] for lr in lrs_cb.lrs) == pytest.approx(auto.lr, rel=1e-9)
