"""Lightning integration hunt (session 37, helper m): what a demanding Lightning user hits with ``MonitorCallback``,
``FindLRCallback`` and ``ChooseLRCallback``.

Each test failed on the code before its fix.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from _lightning_helpers import (  # noqa: E402
    LIGHTNING_WARNINGS,
    quiet_lightning_logs,
    quiet_trainer,
    regression_loader,
)
from lrkit.integrations.lightning import ChooseLRCallback, FindLRCallback, MonitorCallback  # noqa: E402

quiet_lightning_logs()
pytestmark = pytest.mark.filterwarnings(*LIGHTNING_WARNINGS)


@pytest.mark.parametrize(("typo", "meant"), [("save_snapshot", "save_snapshots"), ("log_metric", "log_metrics"),
                                             ("monitor", "monitor_metric"), ("monitor_metrics", "monitor_metric")])
def test_a_misspelt_monitor_callback_keyword_is_answered_with_the_callbacks_own_keyword(typo: str, meant: str) -> None:
    # before: only lrkit.Monitor's keywords were offered, so save_snapshot= got "Did you mean 'snapshot_every'?"
    # (a different setting) and Lightning's monitor= (EarlyStopping's name) no suggestion at all
    with pytest.raises(ValueError, match=rf"unknown MonitorCallback keyword '{typo}'\. Did you mean '{meant}'\?") as e:
        MonitorCallback(**{typo: False})
    valid = str(e.value).split("Valid: ")[1]
    assert "monitor_metric" in valid and "save_snapshots" in valid and "backoff" in valid


def test_a_monitor_keyword_misspelt_still_gets_the_monitors_keyword() -> None:
    with pytest.raises(ValueError, match=r"Did you mean 'val_patience'\?"):
        MonitorCallback(val_patiense=3)


class _Net(pl.LightningModule):
    """A linear regression on 4 inputs, SGD at ``self.lr``."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lr = lr
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if isinstance(batch, (list, tuple)) and isinstance(batch[0], (list, tuple)):  # a collection of loaders
            batch = batch[0]
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


@pytest.mark.parametrize("make", [lambda: FindLRCallback(num_steps=20), lambda: ChooseLRCallback(log=False)])
def test_a_sequential_combined_loader_that_the_fit_refuses_is_refused_before_the_test_runs(make: Any) -> None:
    # before: the whole range test (ChooseLRCallback: and its trials) ran on it, set .lr, and only then did the fit
    # loop refuse CombinedLoader(mode="sequential") -- the test's time lost, and .lr an LR no fit trained at
    from lightning.pytorch.utilities import CombinedLoader

    callback = make()
    trainer = quiet_trainer([callback], max_epochs=2)
    loader = CombinedLoader([regression_loader(), regression_loader(48, 1)], "sequential")
    with pytest.raises(ValueError, match=r"mode='sequential'.*max_size_cycle") as e:
        trainer.fit(_Net(), loader)
    assert type(callback).__name__ in str(e.value)
    assert callback.result is None and callback.lr is None


class _SkipsNonFinite(_Net):
    """Lightning's idiom for a bad batch: ``training_step`` returns ``None`` (the fit skips it) on a non-finite loss."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        loss = super().training_step(batch, batch_idx)
        return loss if torch.isfinite(loss) else None


def test_a_training_step_that_skips_a_non_finite_loss_ends_the_range_test_as_a_non_finite_loss_does() -> None:
    # before: the test reached the LRs where the loss overflows, training_step returned None there, and the callback
    # raised "training_step returned None; the range test needs the loss ... at every batch" -- the fit died at the
    # end of its range test. Lightning's own LR finder records such a step as NaN.
    callback = FindLRCallback(num_steps=60, end_lr=1e6, diverge_factor=None)
    model = _SkipsNonFinite()
    trainer = quiet_trainer([callback], max_steps=2)
    with pytest.warns(UserWarning, match="returned None"):
        trainer.fit(model, regression_loader())
    result = callback.result
    assert result.stop_reason == "non-finite" and result.num_steps_run < 60
    assert callback.lr == model.lr == result.suggestion and trainer.global_step == 2


def test_a_training_step_that_returns_none_at_the_first_step_is_still_refused() -> None:
    class _Never(_Net):
        def training_step(self, batch: Any, batch_idx: int) -> None:
            return None

    callback = FindLRCallback(num_steps=20)
    with pytest.raises(ValueError, match="training_step returned None"):
        quiet_trainer([callback], max_steps=2).fit(_Never(), regression_loader())


def test_a_fit_resumed_from_a_checkpoint_without_the_finders_lr_says_that_no_test_runs(tmp_path: Any) -> None:
    # before: FindLRCallback added to a resumed fit (ckpt_path= of a checkpoint written without it) did nothing and
    # said nothing -- no test, .lr None, the fit at the checkpoint's LR -- as if the callback were not there
    first = quiet_trainer([], max_steps=3)
    first.fit(_Net(), regression_loader())
    path = str(tmp_path / "plain.ckpt")
    first.save_checkpoint(path)
    callback = FindLRCallback(num_steps=20)
    model = _Net()
    with pytest.warns(UserWarning, match=r"FindLRCallback: the fit resumes from ckpt_path=.*runs no range test"):
        quiet_trainer([callback], max_steps=5).fit(model, regression_loader(), ckpt_path=path)
    assert callback.lr is None and callback.result is None and model.lr == 0.01
