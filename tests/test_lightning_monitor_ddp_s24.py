"""MonitorCallback under Lightning's DDP on CPU (strategy="ddp_spawn", 2 processes, gloo; session 24 — the README said
"the DDP path is not tested"). A loss spike on one rank only: with ``sync_loss`` (the default under several
processes) every rank sees the ranks' mean loss, acts on the same step alike and the ranks' weights stay equal;
with ``sync_loss=False`` rank 1 rolls back alone, rank 0 a step later, and the ranks' weights part (the check could
fail)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from _lightning_helpers import regression_loader  # noqa: E402
from lrkit.integrations.lightning import MonitorCallback  # noqa: E402

SPIKE_AT = 12  # the optimizer step (0-based) whose loss rank 1 blows up


@pytest.fixture(autouse=True)
def _environment(environment_as_it_was: None) -> None:
    """Lightning's spawned ranks set environment variables: put back after each test (conftest)."""


def _loader() -> torch.utils.data.DataLoader:
    return regression_loader(256)


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        if self.global_rank == 1 and self.trainer.global_step == SPIKE_AT:
            loss = loss * 1e4  # one rank's batch goes wrong: finite, far above the running loss
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.02, momentum=0.9)


class Record(pl.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        monitor = next(c for c in trainer.callbacks if isinstance(c, MonitorCallback)).monitor
        torch.save({"events": [(e.step, e.check, e.action) for e in monitor.events],
                    "sync": monitor.sync_loss, "world": trainer.world_size,
                    "weights": {k: v.clone() for k, v in pl_module.state_dict().items()}},
                   os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))


def _fit(tmp: Path, **monitor: Any) -> list[dict[str, Any]]:
    tmp.mkdir(parents=True, exist_ok=True)
    trainer = pl.Trainer(strategy="ddp_spawn", accelerator="cpu", devices=2, max_steps=24,
                         callbacks=[MonitorCallback(log_metrics=False, **monitor), Record(str(tmp))], logger=False,
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(Net(), _loader())
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _same_weights(r0: dict[str, Any], r1: dict[str, Any]) -> bool:
    return all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])


def test_a_spike_on_one_rank_is_acted_on_by_every_rank_alike(tmp_path: Path) -> None:
    r0, r1 = _fit(tmp_path / "synced")
    assert r0["world"] == r1["world"] == 2 and r0["sync"] is True and r1["sync"] is True  # the default under DDP
    assert r0["events"] == r1["events"]
    assert (SPIKE_AT, "loss_spike", "rollback") in r0["events"]
    assert _same_weights(r0, r1)
    assert all(torch.isfinite(v).all() for v in r0["weights"].values())


def test_without_sync_loss_the_rank_that_saw_the_spike_rolls_back_alone(tmp_path: Path) -> None:
    # (rank 0 only meets the spike a step later, through the gradients DDP averaged with rank 1's: rank 1 had
    # skipped that step, rank 0 stepped on it)
    r0, r1 = _fit(tmp_path / "unsynced", sync_loss=False)
    assert (SPIKE_AT, "loss_spike", "rollback") in r1["events"]
    assert (SPIKE_AT, "loss_spike", "rollback") not in r0["events"] and r0["events"] != r1["events"]
    assert not _same_weights(r0, r1)
