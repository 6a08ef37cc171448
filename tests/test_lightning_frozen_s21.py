"""The Lightning MonitorCallback with Lightning's own gradual unfreezing (BackboneFinetuning), session 21: the
backbone, frozen (and uncopied) when the healthy snapshot was taken, is copied in when BackboneFinetuning adds it to
the optimizer, so a rollback after the unfreeze restores it exactly — as with every parameter copied."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")
from lightning.pytorch.callbacks import BackboneFinetuning  # noqa: E402

from lrkit.integrations.lightning import MonitorCallback  # noqa: E402

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:lightning.*", "ignore:.*LeafSpec.*:FutureWarning",
                                        "ignore:.*does not have many workers.*", "ignore:.*LitLogger.*")


def _loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x.sum(1, keepdim=True).sin()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=False)


class FineTune(pl.LightningModule):
    """A backbone (frozen by BackboneFinetuning until epoch 1) and a head; the loss of optimizer step ``nan_at`` is
    NaN. The state just before each optimizer step is recorded."""

    def __init__(self, nan_at: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(8, 32), nn.Tanh())
        self.head = nn.Linear(32, 1)
        self.nan_at = nan_at
        self.seen: dict[int, dict[str, torch.Tensor]] = {}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        step = self.trainer.global_step
        self.seen[step] = {k: v.detach().clone() for k, v in self.state_dict().items()}
        loss = nn.functional.mse_loss(self.head(self.backbone(x)), y)
        return loss * float("nan") if step == self.nan_at else loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.05, momentum=0.9)


@pytest.mark.parametrize("snapshot_frozen", [False, True])
def test_a_rollback_after_backbone_finetuning_unfroze_the_backbone_restores_it_exactly(snapshot_frozen: bool) -> None:
    model = FineTune(nan_at=20)  # epoch 1 (16 steps per epoch): the backbone unfroze at step 16
    monitor = MonitorCallback(snapshot_every=1000, snapshot_frozen=snapshot_frozen)  # one healthy snapshot: step 0
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, max_steps=21,
                         callbacks=[BackboneFinetuning(unfreeze_backbone_at_epoch=1), monitor])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", module="lightning.*")
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(model, _loader())
    assert [e.action for e in monitor.monitor.events] == ["rollback"] and monitor.monitor.events[0].step == 20
    assert len(trainer.optimizers[0].param_groups) == 2  # BackboneFinetuning added the backbone's group
    assert not torch.equal(model.seen[20]["backbone.0.weight"], model.seen[0]["backbone.0.weight"])  # it trained
    now = model.state_dict()
    for key, value in model.seen[0].items():
        assert torch.equal(now[key], value), key  # back at the step-0 snapshot, the backbone too
