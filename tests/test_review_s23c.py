"""Review (helper s23c) of ``choose_trainer_lr`` with your own scheduler (record and replay) and of the polynomial
``lr_end`` floor checks of ``find_trainer_lr`` / ``choose_trainer_lr``.

- a scheduler the Trainer built itself (``trainer.create_optimizer_and_scheduler(n)`` called before, not stepped) is
  dropped and rebuilt by ``train()`` over its own ``max_steps``: the trials must run that schedule, not a record of the
  pre-built one as if it were yours;
- transformers' ``GreedyLR`` follows a metric (``train()`` never steps it per step): refused, not a ``TypeError``
  from its ``step()``;
- a scheduler of yours built on another optimizer than the Trainer's: refused, and the other optimizer left as it was
  (recording it stepped that optimizer's groups and left them at the run's end);
- a scheduler of yours that fails inside the run's length (a ``OneCycleLR`` shorter than the run): an error in
  ``choose_trainer_lr``'s words naming the scheduler and the step, as ``train()`` would fail there;
- ``lr_scheduler_kwargs``' ``lr_end`` / ``min_lr`` are not read by ``train()`` when you give your own scheduler: no
  warning about them;
- a created optimizer whose LR comes from ``optimizer_cls_and_kwargs`` (not ``args.learning_rate``): the floor check
  reads the LR the optimizer is built at, not ``args.learning_rate`` (a false refusal before).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from transformers import Trainer, TrainingArguments

from lrkit.integrations.transformers import choose_trainer_lr, find_trainer_lr
from lrkit.train import auto as auto_mod
from test_hf_auto_s22e import BASE, LRs, Reg, _data, _trainer, _val

pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning",
                                        "ignore:.*(loss|curve|suggest|range|steps|flat).*:UserWarning")


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ``make_scheduler`` each ``choose_lr0`` call is given (the call still runs for real)."""
    seen: list[Any] = []
    real = auto_mod.choose_lr0

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["make_scheduler"])
        return real(*args, **kwargs)

    monkeypatch.setattr(auto_mod, "choose_lr0", spy)
    return seen


def _groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]


def test_a_scheduler_the_trainer_built_itself_is_the_trainers_schedule_train_rebuilds(
        tmp_path: Path, made: list[Any]) -> None:
    """``create_optimizer_and_scheduler(200)`` builds a 200-step cosine; ``train()`` drops it (the Trainer made it) and
    builds the 60-step one: the trials at ``n == total_steps`` must be the schedule ``train()`` runs."""
    lrs_cb = LRs()
    trainer = _trainer(tmp_path, callbacks=[lrs_cb], lr_scheduler_type="cosine", eval_dataset=_val())
    trainer.create_optimizer_and_scheduler(num_training_steps=200)
    auto = choose_trainer_lr(trainer, budget=1.0)
    make_scheduler = made[0]
    groups = len(trainer.optimizer.param_groups)  # AdamW's decay / no-decay groups, both at the same LR
    probe = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(groups)], lr=1.0)
    sched = make_scheduler(probe, 60)
    trial = []
    for _ in range(60):
        trial.append(probe.param_groups[0]["lr"])
        probe.step()
        sched.step()
    trainer.train()
    ran = np.array([lr[0] for lr in lrs_cb.lrs])
    assert len(ran) == 60
    np.testing.assert_allclose(ran / auto.lr, np.array(trial), rtol=1e-6, atol=1e-12)


def test_greedy_lr_of_yours_is_refused_as_metric_driven(tmp_path: Path) -> None:
    from transformers.optimization import GreedyLR

    model = Reg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, GreedyLR(optimizer)))
    with pytest.raises(ValueError, match=r"choose_trainer_lr: the Trainer's scheduler is a GreedyLR that follows a "
                                         r"metric.*find_trainer_lr"):
        choose_trainer_lr(trainer)
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_a_scheduler_of_yours_on_another_optimizer_is_refused_and_that_optimizer_left_alone(tmp_path: Path) -> None:
    model = Reg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    other = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(other, step_size=10, gamma=0.5)
    before = _groups(other)
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, scheduler))
    with pytest.raises(ValueError, match=r"StepLR.*steps another optimizer than the Trainer's"):
        choose_trainer_lr(trainer, budget=1.0, set_lr=False)
    assert _groups(other) == before and scheduler.last_epoch == 0


def test_a_scheduler_of_yours_that_fails_within_the_run_is_named_with_the_step(tmp_path: Path) -> None:
    model = Reg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=50)  # the run takes 60
    before = _groups(optimizer)
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, scheduler))
    with pytest.raises(ValueError, match=r"choose_trainer_lr: your OneCycleLR fails when stepped after optimizer step "
                                         r"51 of the run's 60 .*Tried to step 51 times"):
        choose_trainer_lr(trainer, budget=1.0)
    assert _groups(optimizer) == before and scheduler.last_epoch == 0


@pytest.mark.parametrize("entry", ["find", "choose"])
def test_lr_scheduler_kwargs_floor_is_not_warned_about_with_a_scheduler_of_yours(tmp_path: Path, entry: str) -> None:
    """train() ignores lr_scheduler_type/lr_scheduler_kwargs when you give a scheduler: lr_end=100 is no floor."""
    model = Reg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: min(1.0, (t + 1) / 6))
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, scheduler), lr_scheduler_type="polynomial",
                       lr_scheduler_kwargs={"lr_end": 100.0})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if entry == "find":
            find_trainer_lr(trainer, num_steps=20)
        else:
            choose_trainer_lr(trainer, budget=1.0)
    assert not [w for w in caught if "absolute floor" in str(w.message)]


def test_floor_check_reads_the_lr_optimizer_cls_and_kwargs_builds_at(tmp_path: Path) -> None:
    """args.learning_rate=1e-8 is not the LR the optimizer is built at (optimizer_cls_and_kwargs' lr=0.05): a
    suggestion far above lr_end=1e-5 is set, and train() builds the polynomial schedule on it."""
    args = TrainingArguments(output_dir=str(tmp_path), **{**BASE, "learning_rate": 1e-8, "max_steps": 20,
                                                          "lr_scheduler_type": "polynomial",
                                                          "lr_scheduler_kwargs": {"lr_end": 1e-5}})
    trainer = Trainer(model=Reg(), args=args, train_dataset=_data(),
                      optimizer_cls_and_kwargs=(torch.optim.SGD, {"lr": 0.05}))
    result = find_trainer_lr(trainer, num_steps=30, start_lr=1e-3, end_lr=1.0)
    assert result.suggestion > 1e-3
    assert trainer.optimizer_cls_and_kwargs[1]["lr"] == pytest.approx(result.suggestion)
    trainer.train()
    assert trainer.state.global_step == 20


def test_a_stepped_scheduler_inside_accelerates_wrapper_is_refused_as_stepped(tmp_path: Path) -> None:
    """accelerate's AcceleratedScheduler has no last_epoch of its own: the one it wraps is read."""
    from accelerate.scheduler import AcceleratedScheduler

    model = Reg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    inner = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    optimizer.step()
    inner.step()
    wrapped = AcceleratedScheduler(inner, [optimizer], step_with_optimizer=False)
    trainer = _trainer(tmp_path, model=model, optimizers=(optimizer, wrapped))
    with pytest.raises(ValueError, match=r"\(AcceleratedScheduler\) has already stepped \(last_epoch=1"):
        choose_trainer_lr(trainer, budget=1.0)
