"""A monitor stop under ``Trainer(min_epochs=...)``: Lightning ignores ``trainer.should_stop`` until the minimum is
met and keeps looping, but the stopped monitor drops every gradient from then on (``optimizer.step()`` changes
nothing), so the fit still ends on the weights the stop restored (the README said "followed by more training")."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from lrkit.integrations.lightning import MonitorCallback  # noqa: E402


class _Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        return loss * float("nan") if self.global_step == 20 else loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=0.01, weight_decay=0.1)


class _AtStop(pl.Callback):
    """The weights right after the batch on which the monitor stopped."""

    def __init__(self, monitor_cb: MonitorCallback) -> None:
        self.monitor_cb = monitor_cb
        self.weights: list[torch.Tensor] | None = None
        self.step: int | None = None

    def on_train_batch_end(self, trainer: object, pl_module: torch.nn.Module, *args: object) -> None:
        mon = self.monitor_cb.monitor
        if self.weights is None and mon is not None and mon.should_stop:
            self.weights = [p.detach().clone() for p in pl_module.parameters()]
            self.step = trainer.global_step  # type: ignore[attr-defined]


def test_a_stop_under_min_epochs_trains_no_further() -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    monitor_cb = MonitorCallback(on_divergence="stop")
    at_stop = _AtStop(monitor_cb)
    module = _Module()
    trainer = pl.Trainer(max_epochs=10, min_epochs=5, callbacks=[monitor_cb, at_stop], logger=False,
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(data, batch_size=8))
    assert at_stop.weights is not None and at_stop.step == 21
    assert trainer.global_step == 40  # Lightning looped on to min_epochs=5 (8 batches per epoch)
    assert all(torch.equal(a, p) for a, p in zip(at_stop.weights, module.parameters()))
    assert monitor_cb.monitor.summary()["by_action"] == {"stop": 1}
