"""Guards of the record-and-replay (session 23): an lrkit schedule with reduce-on-plateau in it follows a metric, as
torch's ReduceLROnPlateau does, and is refused by ChooseLRCallback and choose_trainer_lr instead of being recorded as
a constant; a Lightning callback that changes the schedule part-way (StochasticWeightAveraging, BaseFinetuning) is
warned about."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from lrkit.schedules import from_spec

pl = pytest.importorskip("lightning.pytorch")

from lrkit.integrations.lightning import ChooseLRCallback  # noqa: E402
from test_lightning_choose_s23 import Net, _loader, _trainer  # noqa: E402

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:lightning.*", "ignore:.*LeafSpec.*:FutureWarning",
                                        "ignore:.*does not have many workers.*", "ignore:.*lr_scheduler.step.*")


class LrkitPlateau(Net):
    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr)
        return [opt], [{"scheduler": from_spec("plateau patience=2").to_torch(opt), "interval": "epoch"}]


def test_an_lrkit_plateau_schedule_is_refused_in_a_lightning_fit() -> None:
    with pytest.raises(ValueError, match=r"LRSchedulerAdapter follows a metric.*make_scheduler="):
        _trainer([ChooseLRCallback(budget=0.5, log=False)]).fit(LrkitPlateau(), _loader(), _loader(32, seed=1))


def test_an_lrkit_plateau_schedule_of_yours_is_refused_by_choose_trainer_lr(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from lrkit.integrations.transformers import choose_trainer_lr
    from test_hf_auto_s22e import Reg
    from test_hf_auto_s22e import _trainer as hf_trainer

    model = Reg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = hf_trainer(tmp_path, model=model, optimizers=(optimizer, from_spec("plateau").to_torch(optimizer)))
    with pytest.raises(ValueError, match=r"LRSchedulerAdapter that follows a metric"):
        choose_trainer_lr(trainer)


@pytest.mark.parametrize("callback", ["swa", "finetuning"])
def test_a_callback_that_changes_the_schedule_part_way_is_warned_about(callback: str) -> None:
    extra: Any = (pl.callbacks.StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=3) if callback == "swa" else
                  pl.callbacks.BackboneFinetuning(unfreeze_backbone_at_epoch=3))
    model = Net("cosine")
    model.backbone = model.net[0]  # what BackboneFinetuning freezes
    with pytest.warns(UserWarning, match=r"ChooseLRCallback: (StochasticWeightAveraging|BackboneFinetuning) "
                                         r"changes the fit's LR schedule"):
        _trainer([ChooseLRCallback(budget=0.5, log=False), extra]).fit(model, _loader(), _loader(32, seed=1))
