"""Review of ChooseLRCallback (session 23, helper b): the recorded schedule and the run length against the fit's.

- a module's ``lr_scheduler_step`` that reads the trainer's clock (``self.current_epoch``, ``self.global_step``: the
  pattern of timm's schedulers in Lightning) was recorded at epoch 0 / step 0 throughout;
- a second ``fit`` on the same trainer (``max_epochs`` raised) starts at its epoch and global step: the callback
  budgeted for, and recorded, the whole fit from epoch 0;
- a fit too short for the budget got choose_lr0's message (``total_steps``, ``lrkit.find_lr``), not the fit's terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from _helpers import spy_results

pl = pytest.importorskip("lightning.pytorch")

import lrkit.integrations.lightning as lightning_mod  # noqa: E402
from _lightning_helpers import LIGHTNING_WARNINGS, quiet_lightning_logs  # noqa: E402
from _lightning_helpers import Stream as _Stream  # noqa: E402
from lrkit.integrations.lightning import ChooseLRCallback  # noqa: E402
from test_lightning_choose_s23 import _loader, _Seen  # noqa: E402
from test_lightning_choose_s23 import _trainer as choose_trainer  # noqa: E402

quiet_lightning_logs()
pytestmark = pytest.mark.filterwarnings(*LIGHTNING_WARNINGS, "ignore:.*lr_scheduler.step.*")


class _Clocked:
    """A scheduler driven by the trainer's clock, as timm's are: ``step(epoch)`` / ``step_update(num_updates)``
    (not a torch LRScheduler: the module's ``lr_scheduler_step`` steps it)."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.base = [float(g["lr"]) for g in optimizer.param_groups]

    def step(self, epoch: int) -> None:
        for g, base in zip(self.optimizer.param_groups, self.base):
            g["lr"] = base * 0.5 ** epoch

    def step_update(self, num_updates: int) -> None:
        for g, base in zip(self.optimizer.param_groups, self.base):
            g["lr"] = base / (1 + 0.1 * num_updates)

    def state_dict(self) -> dict[str, Any]:
        return {"base": list(self.base)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base = list(state["base"])


class Net(pl.LightningModule):
    """A tiny MLP recording the LR of every optimizer step; ``sched``: ``"epoch_clock"`` / ``"step_clock"`` (a
    ``_Clocked`` stepped from ``current_epoch`` / ``global_step``), ``"step_epoch2"`` (StepLR every 2 epochs)."""

    def __init__(self, sched: str, lr: float = 0.01) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        self.lr = lr
        self.sched = sched
        self.lrs: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        self.lrs.append(float(optimizer.param_groups[0]["lr"]))

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        if self.sched == "epoch_clock":
            scheduler.step(epoch=self.current_epoch + 1)
        elif self.sched == "step_clock":
            scheduler.step_update(num_updates=self.global_step)
        else:
            scheduler.step()

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if self.sched == "step_epoch2":
            sched: Any = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
            return [opt], [{"scheduler": sched, "interval": "epoch", "frequency": 2}]
        sched = _Clocked(opt)
        return [opt], [{"scheduler": sched, "interval": "epoch" if self.sched == "epoch_clock" else "step"}]


def _trainer(callbacks: list[Any], **kwargs: Any) -> Any:
    return choose_trainer(callbacks, **{"max_epochs": 4, **kwargs})


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The schedule records the callback makes (spied on)."""
    return spy_results(monkeypatch, lightning_mod, "_record_schedule")


class _Clock(pl.Callback):
    """The trainer's clock when the fit's training starts (after every on_fit_start)."""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        loop = trainer.fit_loop.epoch_loop
        self.clock = (trainer.current_epoch, trainer.global_step, loop.batch_idx, loop.total_batch_idx)


@pytest.mark.parametrize("sched", ["epoch_clock", "step_clock"])
def test_a_scheduler_stepped_from_the_trainer_clock_is_recorded_as_the_fit_steps_it(
        sched: str, recorded: list[Any]) -> None:
    """lr_scheduler_step reading self.current_epoch / self.global_step (timm's pattern) sees the fit's clock while
    the schedule is recorded — the epoch, the optimizer steps taken, the batch — and the clock is put back."""
    chooser = ChooseLRCallback(budget=0.5, log=False)
    clock = _Clock()
    accumulate = {"accumulate_grad_batches": 5, "max_epochs": 10} if sched == "step_clock" else {}
    trainer = _trainer([chooser, clock], **accumulate)
    model = Net(sched)
    trainer.fit(model, _loader(), _loader(32, seed=1))
    lrs = recorded[0][0][:, 0]
    actual = np.array(model.lrs)
    assert chooser.lr is not None and lrs.shape == actual.shape == (trainer.global_step,)
    assert np.ptp(lrs) > 0  # before: a constant record (epoch 0 / step 0 at every scheduler step)
    np.testing.assert_allclose(actual, lrs * chooser.lr / lrs.max(), rtol=1e-9)
    assert clock.clock == (0, 0, -1, -1)


def test_a_second_fit_on_the_same_trainer_chooses_for_the_steps_it_has_left(recorded: list[Any]) -> None:
    """The second fit starts at epoch 2, global step 24: it takes 36 more steps, and a StepLR every 2 epochs halves
    at the end of its epochs 3 (not 2) — the budget's run length and the record are those 36 steps."""
    trainer = _trainer([], max_epochs=2)
    model = Net("step_epoch2")
    trainer.fit(model, _loader(), _loader(32, seed=1))
    assert trainer.global_step == 24
    trainer.fit_loop.max_epochs = 5
    chooser = ChooseLRCallback(budget=0.5, log=False)
    trainer.callbacks.append(chooser)
    model.lrs.clear()
    trainer.fit(model, _loader(), _loader(32, seed=1))
    auto = chooser.auto
    assert auto is not None and trainer.global_step == 60
    lrs = recorded[0][0][:, 0]
    assert lrs.shape == (36,) and round(auto.extra_steps / auto.extra_fraction) == 36
    np.testing.assert_allclose(model.lrs, lrs * auto.lr / lrs.max(), rtol=1e-9)
    np.testing.assert_allclose(lrs[::12] / lrs[0], [1.0, 1.0, 0.5])


def test_a_fit_with_no_steps_left_is_refused_naming_its_clock() -> None:
    trainer = _trainer([], max_epochs=2)
    model = Net("step_epoch2")
    trainer.fit(model, _loader())
    trainer.callbacks.append(ChooseLRCallback(budget=0.5, log=False))
    trainer.fit_loop.max_epochs = 3
    trainer.fit_loop.epoch_loop.max_steps = 24
    with pytest.raises(ValueError, match=r"ChooseLRCallback: this fit has no optimizer steps left.*global_step=24.*"
                                         r"max_steps=24: an earlier fit of this trainer got there"):
        trainer.fit(model, _loader())
    with pytest.raises(ValueError, match=r"no optimizer steps left.*global_step=0, max_steps=0\), so"):
        _trainer([ChooseLRCallback(log=False)], max_steps=0).fit(Net("step_epoch2"), _loader())


def test_a_fit_too_short_for_the_budget_is_refused_in_the_fits_terms() -> None:
    with pytest.raises(ValueError) as err:
        _trainer([ChooseLRCallback(budget=0.5, log=False)], max_steps=3).fit(Net("step_epoch2"), _loader())
    message = str(err.value)
    assert message.startswith("ChooseLRCallback needs at least 10 extra optimizer steps")
    for words in ("budget=0.5", "3 optimizer steps", "max_steps", "at least 3.34", "FindLRCallback"):
        assert words in message
    assert "lrkit.find_lr" not in message and "total_steps" not in message


def test_under_overfit_batches_the_range_test_draws_the_fits_unshuffled_batches() -> None:
    """overfit_batches=2 trains on the loader's first 2 batches, unshuffled, every epoch (Lightning turns the
    shuffling off): so does the range test (before: 2 batches of a fresh shuffle each pass, 18 different ones)."""
    from lrkit.integrations.lightning import FindLRCallback

    shuffled = torch.utils.data.DataLoader(_loader().dataset, batch_size=8, shuffle=True)
    first = [float(x[0, 0]) for x, _ in _loader()][:2]
    model = _Seen()
    _trainer([FindLRCallback(num_steps=20)], max_steps=4, overfit_batches=2).fit(model, shuffled)
    assert model.seen[20:] == first * 2  # the fit
    assert model.seen[:20] == first * 10  # the range test


def test_an_iterable_loader_with_max_epochs_is_not_said_to_have_no_end_and_max_steps_is_warned_about() -> None:
    """Its 2 passes end the fit (24 steps), but they cannot be counted ahead: refused without max_steps, saying
    so (before: "this fit has no end"); with max_steps=100 the choice is for 100 steps, which the fit may not reach
    — said in a warning (before: silently)."""
    stream = torch.utils.data.DataLoader(_Stream(), batch_size=None)
    with pytest.raises(ValueError, match=r"cannot be counted ahead.*max_epochs=2 passes.*max_steps=\.\.\.") as err:
        _trainer([ChooseLRCallback(log=False)], max_epochs=2).fit(Net("step_epoch2"), stream)
    assert "has no end" not in str(err.value)
    with pytest.warns(UserWarning, match=r"chosen for a fit of max_steps=100 .*max_epochs=2 passes end sooner"):
        _trainer([ChooseLRCallback(budget=0.5, log=False)], max_epochs=2, max_steps=100).fit(Net("step_epoch2"),
                                                                                            stream)


class _Pairs(pl.LightningModule):
    """Trains on a dict of two loaders; records the first input value of both of each batch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.lr = 0.01
        self.net = torch.nn.Linear(4, 1)
        self.seen: list[tuple[float, float]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch["a"]
        self.seen.append((float(x[0, 0]), float(batch["b"][0][0, 0])))
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


@pytest.mark.parametrize("limit", [3, 0.25])
def test_a_dict_of_train_loaders_is_cut_at_limit_train_batches_in_the_range_test(limit: float) -> None:
    """A CombinedLoader's limits set its length, not where its iterator stops (the fit loop stops the epoch): the
    range test read all 12 batches of each pass (before), not the fit's first 3."""
    from lrkit.integrations.lightning import FindLRCallback

    model = _Pairs()
    _trainer([FindLRCallback(num_steps=12)], max_steps=3, limit_train_batches=limit).fit(
        model, {"a": _loader(), "b": _loader(48, seed=3)})
    fit = model.seen[12:]
    assert len(fit) == 3
    assert model.seen[:12] == fit * 4


def test_num_steps_over_the_budget_is_refused_in_the_callbacks_words() -> None:
    with pytest.raises(ValueError) as err:
        _trainer([ChooseLRCallback(budget=0.5, log=False, num_steps=40)], max_epochs=4).fit(
            Net("step_epoch2"), _loader())
    message = str(err.value)
    assert message.startswith("ChooseLRCallback(num_steps=40): the range test's steps exceed the extra budget of 24")
    assert "the fit's 48 optimizer steps" in message and "finder_kwargs" not in message


def test_an_epoch_scheduler_over_a_loader_without_length_is_warned_about() -> None:
    """The loader's epochs cannot be foreseen: the record has no epoch steps (before: silently constant)."""
    stream = torch.utils.data.DataLoader(_Stream(), batch_size=None)
    with pytest.warns(UserWarning, match=r"recorded as one epoch of the fit's 40 optimizer steps, without the steps "
                                         r"of StepLR \(interval='epoch'\)"):
        _trainer([ChooseLRCallback(budget=0.5, log=False)], max_epochs=-1, max_steps=40).fit(
            Net("step_epoch2"), stream)
