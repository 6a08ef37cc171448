"""Review of lrkit.integrations.lightning.MonitorCallback against Lightning's real loop (session 20g)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn

from lrkit.integrations.lightning import MonitorCallback

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:lightning.*", "ignore:.*LeafSpec.*:FutureWarning",
                                        "ignore:.*does not have many workers.*",
                                        "ignore:.*LitLogger.*")


def _loader(n: int = 256, batch_size: int = 16, seed: int = 0) -> torch.utils.data.DataLoader:
    w = torch.randn(8, 1, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x @ w + 0.1 * torch.randn(n, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False)


class Net(pl.LightningModule):
    """A tiny regression MLP. ``nan_at``: optimizer steps whose loss is NaN; ``none_at``: batch indices (within an
    epoch) whose ``training_step`` returns ``None`` (Lightning's documented way to skip a batch)."""

    def __init__(self, *, optimizer: str = "sgd", nan_at: tuple[int, ...] = (),
                 none_at: tuple[int, ...] = ()) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
        self.optimizer, self.nan_at, self.none_at = optimizer, nan_at, none_at

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x).float(), y)
        if self.trainer.global_step in self.nan_at:
            loss = loss * float("nan")
        return None if batch_idx in self.none_at else loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x).float(), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer == "lbfgs":
            return torch.optim.LBFGS(self.parameters(), lr=0.1, max_iter=4)
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def _trainer(callbacks: list[Any], **kw: Any) -> pl.Trainer:
    kw.setdefault("enable_checkpointing", False)
    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, callbacks=callbacks, **kw)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ------------------------------------------------------------------ (1) a closure optimizer (LBFGS)
def test_an_lbfgs_fit_is_monitored_once_per_optimizer_step_and_left_as_it_is() -> None:
    # Lightning runs on_before_optimizer_step after every closure evaluation, and LBFGS evaluates its closure up
    # to max_iter times per step: the callback called after_backward each time (RuntimeError "called twice").
    plain = Net(optimizer="lbfgs")
    _trainer([], max_steps=6).fit(plain, _loader())
    model, callback = Net(optimizer="lbfgs"), MonitorCallback()
    _trainer([callback], max_steps=6).fit(model, _loader())
    assert callback.monitor.summary()["steps"] == 6 and callback.monitor.events == []
    assert _same_weights(plain, model)


def test_a_nan_step_under_lbfgs_is_rolled_back() -> None:
    model, callback = Net(optimizer="lbfgs", nan_at=(3,)), MonitorCallback(on_divergence="rollback")
    _trainer([callback], max_steps=6).fit(model, _loader())
    assert [(e.check, e.action) for e in callback.monitor.events] == [("non_finite", "rollback")]
    assert callback.monitor.summary()["steps"] == 6
    assert all(math.isfinite(p.sum().item()) for p in model.parameters())


# ------------------------------------------------------------------ (2) AMP + accumulation + a skipped batch
def test_a_none_last_micro_batch_under_a_grad_scaler_does_not_crash_the_next_step() -> None:
    # Under a GradScaler, Lightning skips the whole optimizer step (no unscale_, no scaler.step/update) when the
    # window's last training_step returned None. The callback still called after_backward, whose unscale_ left the
    # scaler's optimizer state UNSCALED: Lightning's unscale_ at the next step raised "unscale_() has already been
    # called on this optimizer since the last update()".
    def fit(callbacks: list[Any]) -> tuple[Net, torch.amp.GradScaler]:
        model = Net(none_at=(3,))  # the window of batches 2 and 3 (accumulate 2) ends with None
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        _trainer(callbacks, max_steps=6, accumulate_grad_batches=2,
                 plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)]).fit(model, _loader())
        return model, scaler

    plain, plain_scaler = fit([])
    callback = MonitorCallback()
    model, scaler = fit([callback])
    assert _same_weights(plain, model) and scaler.get_scale() == plain_scaler.get_scale()
    # 6 windows, one of them not stepped by Lightning: 5 optimizer steps for the monitor
    assert callback.monitor.summary()["steps"] == 5 and callback.monitor.events == []


# ------------------------------------------------------------------ (3) validate/test(ckpt_path=...) then fit
def test_a_fresh_fit_after_validate_with_a_checkpoint_starts_a_fresh_monitor(tmp_path: Path) -> None:
    # Lightning restores callback state for validate/test/predict(ckpt_path=...) too; the callback kept it and gave
    # it to the monitor of the next fit: a fresh fit began with the checkpoint's step count, events, lr_scale (0.3
    # while the new optimizer runs at the full LR) and snapshots of the checkpoint's weights to roll back to.
    first = MonitorCallback()
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=10)
    _trainer([first, saver], max_steps=10, enable_checkpointing=True).fit(Net(nan_at=(5,)), _loader())
    assert first.monitor.summary()["rollbacks"] == 1
    path = tmp_path / "epoch=0-step=10.ckpt"

    callback = MonitorCallback()
    trainer = _trainer([callback], max_steps=4)
    trainer.validate(Net(), _loader(64, seed=1), ckpt_path=path, verbose=False)
    trainer.fit(Net(), _loader())
    summary = callback.monitor.summary()
    assert summary["steps"] == 4 and summary["events"] == 0 and summary["lr_scale"] == 1.0

    # a fit that resumes from the checkpoint still continues its monitor, also after a validate(ckpt_path=...)
    resumed = MonitorCallback()
    trainer = _trainer([resumed], max_steps=14)
    trainer.validate(Net(), _loader(64, seed=1), ckpt_path=path, verbose=False)
    trainer.fit(Net(), _loader(), ckpt_path=path)
    assert resumed.monitor.summary()["steps"] == 14 and resumed.monitor.summary()["lr_scale"] == pytest.approx(0.3)
    assert [e.to_dict() for e in resumed.monitor.events] == [e.to_dict() for e in first.monitor.events]


def test_a_healthy_fit_with_none_batches_and_accumulation_is_left_as_it_is() -> None:
    # guard for the fixes above: without a scaler Lightning steps a window whose last batch returned None
    def fit(callbacks: list[Any]) -> Net:
        model = Net(none_at=(3, 6))
        _trainer(callbacks, max_steps=12, accumulate_grad_batches=2).fit(model, _loader())
        return model

    plain = fit([])
    callback = MonitorCallback()
    model = fit([callback])
    assert _same_weights(plain, model) and callback.monitor.events == []
    assert callback.monitor.summary()["steps"] == 12


# ------------------------------------------------------------------ (4) a batch whose step the module does not take
class SkipOdd(Net):
    """Steps on even batches only; an odd batch runs the closure (training_step, zero_grad, backward) and no step —
    the way ``optimizer_step``'s contract allows skipping a step (the closure must run). ``losses``: each batch's."""

    nan_batches: tuple[int, ...] = ()  # batch indices whose loss is NaN

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.losses: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        loss = super().training_step(batch, batch_idx)
        if batch_idx in self.nan_batches:
            loss = loss * float("nan")
        self.losses.append(loss.item())
        return loss

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        if batch_idx % 2 == 0:
            optimizer.step(closure=optimizer_closure)
        else:
            optimizer_closure()


def test_the_loss_of_a_batch_whose_step_was_not_taken_is_not_carried_into_the_next_step() -> None:
    # The next batch's closure zeroes the gradients, so the step it takes is that batch's alone; the callback kept
    # the untaken batch's loss and gave after_backward the mean of both: a NaN in a batch the module chose not to
    # step on was charged to the next, healthy step and rolled it back.
    model, callback = SkipOdd(), MonitorCallback()
    calls: list[float] = []

    class Spy(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            real = callback.monitor.after_backward
            callback.monitor.after_backward = lambda loss: (calls.append(float(loss)), real(loss))[1]

    _trainer([callback, Spy()], max_steps=8).fit(model, _loader())
    assert calls == pytest.approx(model.losses[0::2], rel=1e-6)

    plain = SkipOdd()
    plain.nan_batches = (3,)
    _trainer([], max_steps=8).fit(plain, _loader())
    model, callback = SkipOdd(), MonitorCallback()
    model.nan_batches = (3,)
    _trainer([callback], max_steps=8).fit(model, _loader())
    assert callback.monitor.events == [] and _same_weights(plain, model)
