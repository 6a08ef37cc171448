"""A Lightning user's walk through ChooseLRCallback / FindLRCallback (session 23, helper d).

- ``training_step(self, batch)`` without ``batch_idx`` (Lightning passes the index only when the signature takes
  it) failed in the range test with a raw ``TypeError`` from the callbacks' step function;
- the ``training_step(self, dataloader_iter)`` flavor failed the same way: now refused in the callbacks' terms;
- an error ``training_step`` raised in the test (what the module's own ``on_fit_start`` sets up, which Lightning runs
  after the callbacks'; a validation batch ``training_step`` cannot take, for the trials' score) came with no word of
  where it was raised: now a note says;
- a fit resumed from a checkpoint of a fit whose attribute was not the schedule's peak (``OneCycleLR(max_lr=2 *
  self.lr)``) put the chosen peak in ``hparams.lr`` (twice the LR the optimizer was built from): the callback's state
  keeps the attribute's value too;
- lr_find.json / lr_auto.json named the loss "step_fn (step_fn)", the callback's inner function;
- ``pl.Trainer()`` without ``max_epochs`` (Lightning's 1000 epochs, for a fit EarlyStopping ends) was budgeted for in
  silence (300 epochs' worth of extra steps), and ``max_time`` alone was refused as ``max_epochs=-1``, which the user
  never wrote;
- an LR written in an overridden ``optimizer_step`` (the hand warm-up of Lightning's docs) is not in the record the
  trials replay: warned about.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from _lightning_helpers import LIGHTNING_WARNINGS, quiet_lightning_logs, quiet_trainer, regression_loader  # noqa: E402
from lrkit.integrations.lightning import ChooseLRCallback, FindLRCallback  # noqa: E402

quiet_lightning_logs()
pytestmark = pytest.mark.filterwarnings(*LIGHTNING_WARNINGS, "ignore:.*lr_scheduler.step.*",
                                        "ignore:.*dataloader_iter.*")


def _loader(n: int = 96, seed: int = 0, shuffle: bool = True) -> torch.utils.data.DataLoader:
    return regression_loader(n, seed, shuffle=shuffle)


class _Net(pl.LightningModule):
    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _BatchOnly(_Net):
    def training_step(self, batch: Any) -> torch.Tensor:  # type: ignore[override]
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)


class _DataloaderIter(_Net):
    def training_step(self, dataloader_iter: Any) -> torch.Tensor:  # type: ignore[override]
        batch, _, _ = next(dataloader_iter)
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)


def _trainer(callbacks: list[Any], **kwargs: Any) -> Any:
    return quiet_trainer(callbacks, **{"max_epochs": 4, **kwargs})


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


@pytest.mark.parametrize("who", ["choose", "find"])
def test_a_training_step_without_batch_idx_is_called_as_the_fit_calls_it(who: str) -> None:
    callback = ChooseLRCallback(budget=1.0, log=False) if who == "choose" else FindLRCallback(num_steps=12)
    pl.seed_everything(0)
    model = _BatchOnly()
    _trainer([callback]).fit(model, _loader(), _loader(48, seed=1, shuffle=False))
    assert callback.lr is not None and model.hparams.lr == callback.lr
    # the fit afterwards is the fit at that LR set by hand
    pl.seed_everything(0)
    by_hand = _BatchOnly(lr=callback.lr)
    _trainer([]).fit(by_hand, _loader(), _loader(48, seed=1, shuffle=False))
    assert all(torch.equal(a, b) for a, b in zip(_weights(model), _weights(by_hand)))


@pytest.mark.parametrize("who", ["choose", "find"])
def test_the_dataloader_iter_flavor_is_refused_in_the_callbacks_terms(who: str) -> None:
    callback = ChooseLRCallback(budget=1.0, log=False) if who == "choose" else FindLRCallback(num_steps=12)
    name = type(callback).__name__
    with pytest.raises(ValueError, match=rf"{name}.*training_step\(dataloader_iter\).*lrkit.find_lr"):
        _trainer([callback]).fit(_DataloaderIter(), _loader())
    assert callback.lr is None


class _SetUpOnFitStart(_Net):
    def on_fit_start(self) -> None:  # runs after the callbacks' on_fit_start
        self.weight = torch.tensor(2.0)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return self.weight * torch.nn.functional.mse_loss(self.net(x), y)


@pytest.mark.skipif(not hasattr(BaseException, "add_note"), reason="exception notes need Python 3.11+")
@pytest.mark.parametrize("who", ["choose", "find"])
def test_a_training_step_error_in_the_test_says_it_ran_before_the_modules_on_fit_start(who: str) -> None:
    callback = ChooseLRCallback(budget=1.0, log=False) if who == "choose" else FindLRCallback(num_steps=12)
    with pytest.raises(AttributeError, match="weight") as err:
        _trainer([callback]).fit(_SetUpOnFitStart(), _loader())
    notes = "\n".join(getattr(err.value, "__notes__", []))
    assert f"_SetUpOnFitStart.training_step in {type(callback).__name__}'s range test" in notes
    assert "before the module's own on_fit_start and on_train_start hooks run" in notes


class _OneCycleTwice(_Net):
    def configure_optimizers(self) -> Any:  # the attribute is half the schedule's peak
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2 * self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def test_a_resumed_fit_puts_back_the_attribute_the_choice_set_not_the_chosen_peak(tmp_path: Any) -> None:
    """With OneCycleLR(max_lr=2 * lr) the choice sets lr to chosen / 2; a fit resumed from its checkpoint (which
    runs no choice) must say the same lr in its hparams and checkpoints, not the chosen peak (twice the LR the
    optimizer was built from)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    chooser = ChooseLRCallback(budget=1.0, log=False)
    model = _OneCycleTwice()
    checkpoints = ModelCheckpoint(dirpath=tmp_path, filename="{epoch}", save_top_k=-1)
    trainer = pl.Trainer(max_epochs=2, callbacks=[chooser, checkpoints],
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(model, _loader(), _loader(48, seed=1, shuffle=False))
    assert chooser.lr is not None and model.hparams.lr == pytest.approx(chooser.lr / 2, rel=0.01)
    saved = torch.load(tmp_path / "epoch=0.ckpt", weights_only=True)  # the callback's state loads weights-only
    assert saved["hyper_parameters"]["lr"] == model.hparams.lr

    resumed_chooser = ChooseLRCallback(budget=1.0, log=False)
    resumed = _OneCycleTwice()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "resumed", save_last=True)
    pl.Trainer(max_epochs=2, callbacks=[resumed_chooser, checkpoint], logger=False, enable_progress_bar=False,
               enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu").fit(
        resumed, _loader(), _loader(48, seed=1, shuffle=False), ckpt_path=tmp_path / "epoch=0.ckpt")
    assert resumed_chooser.auto is None and resumed_chooser.lr == chooser.lr
    assert resumed.hparams.lr == model.hparams.lr
    again = torch.load(tmp_path / "resumed" / "last.ckpt", weights_only=True)
    assert again["hyper_parameters"]["lr"] == model.hparams.lr


def test_the_records_name_the_loss_as_the_modules_training_step(tmp_path: Any) -> None:
    """lr_find.json's "loss" and lr_auto.json's "finder_loss" said "step_fn (step_fn)", the callback's inner name."""
    import json

    chooser = ChooseLRCallback(budget=1.0, log=False, out=tmp_path)
    _trainer([chooser]).fit(_Net(), _loader(), _loader(48, seed=1, shuffle=False))
    assert json.loads((tmp_path / "lr_find.json").read_text())["loss"] == "step_fn (_Net.training_step)"
    assert json.loads((tmp_path / "lr_auto.json").read_text())["finder_loss"] == "step_fn (_Net.training_step)"


def test_lightnings_default_1000_epochs_is_warned_about_before_its_range_test() -> None:
    """pl.Trainer() without max_epochs fits 1000 epochs (Lightning's default, for a fit EarlyStopping ends): the
    choice budgeted for all of them silently, a range test of 250 epochs' steps before the first."""
    import warnings

    chooser = ChooseLRCallback(log=False)
    trainer = pl.Trainer(callbacks=[chooser], logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", limit_train_batches=2)
    with warnings.catch_warnings():  # the warning raised ends the fit before its range test
        warnings.filterwarnings("error", message=".*Lightning's default.*", category=UserWarning)
        with pytest.raises(UserWarning, match=r"max_epochs=1000 \(Lightning's default.*2000 optimizer steps.*up to "
                                              r"600 extra optimizer steps \(300 epochs' worth\).*EarlyStopping"):
            trainer.fit(_Net(), _loader())
    assert chooser.auto is None


def test_max_time_alone_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"no end \(max_epochs=-1 — Lightning's when only max_time is given"):
        _trainer([ChooseLRCallback(log=False)], max_epochs=None, max_time="00:00:01:00").fit(_Net(), _loader())


class _HandWarmup(_Net):
    """Lightning's docs' learning-rate warm-up, written in optimizer_step (no scheduler)."""

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        optimizer.step(closure=optimizer_closure)
        scale = min(1.0, float(self.trainer.global_step + 1) / 20.0)
        for group in optimizer.param_groups:
            group["lr"] = scale * self.hparams.lr


def test_an_lr_written_in_optimizer_step_is_warned_about_as_not_in_the_record() -> None:
    chooser = ChooseLRCallback(budget=1.0, log=False)
    model = _HandWarmup()
    with pytest.warns(UserWarning, match=r"_HandWarmup overrides optimizer_step.*not in the record.*make_scheduler="):
        _trainer([chooser]).fit(model, _loader(), _loader(48, seed=1, shuffle=False))
    assert chooser.lr is not None and model.hparams.lr == chooser.lr  # the warm-up rises to the chosen LR


def test_make_scheduler_takes_the_optimizer_step_warning_away() -> None:
    import warnings

    def warmup(optimizer: torch.optim.Optimizer, steps: int) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: min(1.0, (t + 1) / max(1, steps // 2)))

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*overrides optimizer_step.*")
        _trainer([ChooseLRCallback(budget=1.0, log=False, make_scheduler=warmup)]).fit(
            _HandWarmup(), _loader(), _loader(48, seed=1, shuffle=False))


class _WeightedTrain(_Net):
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, w = batch  # the train loader's batches carry sample weights; the validation loader's do not
        return (w * (self.net(x) - y) ** 2).mean()


@pytest.mark.skipif(not hasattr(BaseException, "add_note"), reason="exception notes need Python 3.11+")
def test_a_training_step_that_cannot_take_a_validation_batch_is_named_as_such() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = x.sum(1, keepdim=True)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y, torch.ones(96, 1)), batch_size=8)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    with pytest.raises(ValueError, match="not enough values to unpack") as err:
        _trainer([ChooseLRCallback(budget=1.0, log=False)]).fit(_WeightedTrain(), train, val)
    notes = "\n".join(getattr(err.value, "__notes__", []))
    assert "_WeightedTrain.training_step on a batch of the fit's first validation loader" in notes
    assert "on_fit_start" not in notes
