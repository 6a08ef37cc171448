"""Framework integrations bug hunt (session 35g): Lightning callbacks and the Hugging Face Trainer helpers."""

from __future__ import annotations

from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from _lightning_helpers import LIGHTNING_WARNINGS, quiet_lightning_logs, quiet_trainer, regression_loader  # noqa: E402
from lrkit.integrations.lightning import ChooseLRCallback, FindLRCallback  # noqa: E402

pytestmark = pytest.mark.filterwarnings(*LIGHTNING_WARNINGS, "ignore:.*configure_optimizers.*returned.*None.*")
quiet_lightning_logs()


class _NoOptimizer(pl.LightningModule):
    """``configure_optimizers`` returns ``None``: Lightning fits with its placeholder optimizer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 1)
        self.lr = 0.01

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> None:
        return None


# ------------------------------------------------------------------ (1) a fit without an optimizer
@pytest.mark.parametrize("make", [lambda: FindLRCallback(num_steps=20), lambda: ChooseLRCallback(log=False)],
                         ids=["FindLRCallback", "ChooseLRCallback"])
def test_a_fit_whose_configure_optimizers_returns_none_is_refused_naming_it(make: Any) -> None:
    # before: FindLRCallback said "optimizer has no param groups" from inside find_lr, ChooseLRCallback
    # "max() arg is an empty sequence" from schedule_peak
    callback = make()
    model = _NoOptimizer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"_NoOptimizer\.configure_optimizers gave no optimizer .*_MockOptimizer"
                                         r".*return the optimizer"):
        quiet_trainer([callback], max_epochs=2).fit(model, regression_loader())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert callback.lr is None


# ------------------------------------------------------------------ (3) ChooseLRCallback's seed, checked when built
def test_a_numpy_integer_seed_is_taken_and_one_out_of_torchs_range_is_refused_when_built() -> None:
    import numpy as np

    # before: seed=np.int64(3) was refused with "seed=3 must be an int", while choose_lr0 takes any integer; and
    # seed=2**70 passed the check here, to be refused only at the fit's start
    assert ChooseLRCallback(seed=np.int64(3), log=False).seed == 3
    assert type(ChooseLRCallback(seed=np.int64(3), log=False).seed) is int
    assert ChooseLRCallback(seed=-1, log=False).seed == -1
    for bad in (2**70, -(2**64), 1.5, True, "3"):
        with pytest.raises(ValueError, match=r"seed=.* must be an integer in \[-2\*\*63, 2\*\*64\)"):
            ChooseLRCallback(seed=bad, log=False)
