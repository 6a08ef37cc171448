"""FindLRCallback / ChooseLRCallback under ``strategy="ddp_spawn"``: the result reaches the launching process.

Before: the callback ran in the spawned ranks, Lightning sent back the weights only, and the callback object the user
holds in the launching process said ``.lr is None`` / ``.result is None`` / ``.auto is None`` after the fit, without
a word. Now the ranks' local rank 0 hands ``.lr``, ``.result`` (and ``.auto``) back through a private file that the
launching process's callback reads when they are first looked at (2 CPU processes, gloo; kept to two small fits).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from _lightning_helpers import regression_loader  # noqa: E402
from lrkit.finder.result import FinderResult  # noqa: E402
from lrkit.integrations.lightning import ChooseLRCallback, FindLRCallback  # noqa: E402
from lrkit.train.auto import AutoLR  # noqa: E402


@pytest.fixture(autouse=True)
def _environment(environment_as_it_was: None) -> None:
    """Lightning's spawn launcher writes MASTER_ADDR/MASTER_PORT into the environment: put back after each test."""


def _loader(n: int = 96, seed: int = 0) -> torch.utils.data.DataLoader:
    return regression_loader(n, seed)


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lr = 0.01
        torch.manual_seed(1)
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(batch[0]), batch[1]), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class _Record(pl.Callback):
    """Each rank writes the LR its callback set to ``folder/rank{r}.json``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        cb = next(c for c in trainer.callbacks if isinstance(c, FindLRCallback))
        (Path(self.folder) / f"rank{trainer.global_rank}.json").write_text(
            json.dumps({"lr": cb.lr, "losses": list(cb.result.losses)}))


def _spawn_fit(cb: Any, tmp_path: Path, val: bool, **kwargs: Any) -> list[dict[str, Any]]:
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[cb, _Record(str(tmp_path))], **kwargs)
    trainer.fit(Net(), _loader(), _loader(32, seed=1) if val else None)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_find_lr_callback_result_reaches_the_launching_process(tmp_path: Path) -> None:
    cb = FindLRCallback(num_steps=20)
    ranks = _spawn_fit(cb, tmp_path, val=False, max_steps=4)
    assert ranks[0]["lr"] is not None and ranks[0]["lr"] == ranks[1]["lr"]
    assert cb.lr == ranks[0]["lr"]  # before: None in the launching process
    assert isinstance(cb.result, FinderResult) and list(cb.result.losses) == ranks[0]["losses"]
    assert not os.path.exists(cb._outbox)  # read once, then removed
    assert cb.state_dict() == {"lr": cb.lr}


def test_choose_lr_callback_result_reaches_the_launching_process(tmp_path: Path) -> None:
    cb = ChooseLRCallback(budget=0.5, log=False)
    ranks = _spawn_fit(cb, tmp_path, val=True, max_epochs=4)
    assert isinstance(cb.auto, AutoLR) and cb.auto.lr == cb.lr == ranks[0]["lr"] == ranks[1]["lr"]
    assert cb.result is not None and list(cb.result.losses) == ranks[0]["losses"]


def test_a_fit_in_this_process_sends_nothing(tmp_path: Path) -> None:
    cb = FindLRCallback(num_steps=20)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=2, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, callbacks=[cb])
    trainer.fit(Net(), _loader())
    assert cb.lr is not None and not os.path.exists(cb._outbox)
