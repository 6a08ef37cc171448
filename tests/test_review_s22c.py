"""Review 22c of FindLRCallback (lrkit.integrations.lightning): a fit with the callback must be bit-identical to a
fit without it at the suggestion set by hand, whatever the precision, batch hooks, loader and data module."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lrkit.integrations.lightning import FindLRCallback

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:lightning.*", "ignore:.*LeafSpec.*:FutureWarning",
                                        "ignore:.*does not have many workers.*", "ignore:.*LitLogger.*",
                                        "ignore:.*precision.*:UserWarning")

STEPS = 20  # range-test steps


def _xy(n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return x, x @ torch.randn(8, 1, generator=g)


def _loader(n: int = 128, shuffle: bool = True, **kw: Any) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*_xy(n)), batch_size=16, shuffle=shuffle, **kw)


class Net(pl.LightningModule):
    """A tiny MLP with dropout (the fit's RNG matters), Adam, ``self.lr``; records each step's LRs."""

    def __init__(self, lr: float = 0.01, schedule: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1))
        self.lr, self.schedule = lr, schedule
        self.lrs: list[list[float]] = []

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss, prog_bar=True)
        return {"loss": loss, "extra": loss.detach()}

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        self.lrs.append([g["lr"] for g in optimizer.param_groups])

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        if self.schedule == "onecycle":  # the usual total: the Trainer's estimate
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr,
                                                        total_steps=self.trainer.estimated_stepping_batches)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt


def _trainer(callbacks: list[Any], **kw: Any) -> pl.Trainer:
    kw.setdefault("max_steps", 6)
    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, num_sanity_val_steps=0, callbacks=callbacks, **kw)


def _same(a: pl.LightningModule, b: pl.LightningModule) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _with_and_by_hand(make: Any, fit: Any) -> tuple[FindLRCallback, Any, Any]:
    """Fit ``make(None)`` with the callback, then ``make(callback.lr)`` without it; both with ``fit(model, cbs)``."""
    callback = FindLRCallback(num_steps=STEPS)
    with_cb = make(None)
    fit(with_cb, [callback])
    assert callback.lr is not None and callback.lr == callback.result.suggestion
    by_hand = make(callback.lr)
    fit(by_hand, [])
    return callback, with_cb, by_hand


# ------------------------------------------------------------------ the key check, over a few usual set-ups
@pytest.mark.parametrize("schedule", [None, "onecycle"])
def test_the_whole_fit_is_bit_identical_to_a_fit_at_the_suggestion_set_by_hand(schedule: str | None) -> None:
    def fit(model: Net, cbs: list[Any]) -> None:
        _trainer(cbs, max_epochs=2, max_steps=-1, limit_train_batches=4).fit(model, _loader())

    _, a, b = _with_and_by_hand(lambda lr: Net(lr or 0.01, schedule), fit)
    assert a.lrs == b.lrs and len(a.lrs) == 8  # every step's LR (the schedule's clock untouched by the test) ...
    assert _same(a, b)  # ... and the weights: same shuffled batches, same dropout masks, same updates


# ------------------------------------------------------------------ the fit's batch path: precision and hooks
@pytest.mark.parametrize("precision", ["64-true", "bf16-true"])
def test_a_true_precision_fit_gets_the_test_its_inputs_converted_as_the_fit_converts_them(precision: str) -> None:
    # the plugin casts the module; the fit loop casts each batch (convert_input): the test crashed deep in torch
    # ("mat1 and mat2 must have the same dtype") feeding float32 batches to float64 / bfloat16 weights
    def fit(model: Net, cbs: list[Any]) -> None:
        _trainer(cbs, precision=precision).fit(model, _loader())

    callback, a, b = _with_and_by_hand(lambda lr: Net(lr or 0.01), fit)
    assert len(callback.result.losses) > 5
    assert a.lrs == b.lrs == [[callback.lr]] * 6 and _same(a, b)


def test_a_true_precision_training_step_creates_its_tensors_in_the_fits_default_dtype() -> None:
    # the fit runs training_step under the plugin's train_step_context (float64 default dtype for "64-true")
    dtypes: list[torch.dtype] = []

    class Made(Net):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            dtypes.append(torch.zeros(1).dtype)
            return super().training_step(batch, batch_idx)

    callback = FindLRCallback(num_steps=STEPS)
    _trainer([callback], precision="64-true", max_steps=1).fit(Made(), _loader())
    assert len(dtypes) > STEPS // 2 and set(dtypes) == {torch.float64}


class DictDataset(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.x, self.y = _xy()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class BeforeTransfer(Net):
    """Turns the loader's dict batches into (x, y) in ``on_before_batch_transfer``, as the fit loop calls it."""

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch["x"], batch["y"]


def test_on_before_batch_transfer_is_applied_to_the_tests_batches_as_to_the_fits() -> None:
    # Strategy.batch_to_device runs transfer_batch_to_device and on_after_batch_transfer only: the test's
    # training_step got the raw dict batch and crashed inside torch
    def fit(model: Net, cbs: list[Any]) -> None:
        _trainer(cbs).fit(model, torch.utils.data.DataLoader(DictDataset(), batch_size=16, shuffle=True))

    callback, a, b = _with_and_by_hand(lambda lr: BeforeTransfer(lr or 0.01), fit)
    assert len(callback.result.losses) > 5 and a.lrs == b.lrs and _same(a, b)


# ------------------------------------------------------------------ the fit's data after the test
def test_a_loader_with_persistent_workers_gives_the_fit_the_batches_it_would_have_had() -> None:
    # the test's iteration left the loader's persistent iterator (its workers, base seed and sampler order) to the
    # fit, which then drew different batches and dropout masks than a fit without the callback
    def fit(model: Net, cbs: list[Any]) -> None:
        _trainer(cbs, max_steps=4).fit(model, _loader(num_workers=1, persistent_workers=True))

    _, a, b = _with_and_by_hand(lambda lr: Net(lr or 0.01), fit)
    assert a.lrs == b.lrs and _same(a, b)


class RandomSubset(pl.LightningDataModule):
    """A data module whose ``train_dataloader`` draws from the global RNG (a random subset), as some do."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[str] = []

    def setup(self, stage: str) -> None:
        self.stages.append(stage)

    def train_dataloader(self) -> Any:
        x, y = _xy(256)
        keep = torch.randperm(256)[:128]
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[keep], y[keep]), batch_size=16,
                                           shuffle=True)


def test_a_datamodule_whose_train_dataloader_draws_from_the_rng_leaves_the_fit_bit_identical() -> None:
    # the callback calls train_dataloader() once more before the fit does; its RNG draws were not put back, so the
    # fit's train_dataloader() drew another subset (and shuffled order) than a fit without the callback
    modules: list[RandomSubset] = []

    def fit(model: Net, cbs: list[Any]) -> None:
        torch.manual_seed(1)
        modules.append(RandomSubset())
        _trainer(cbs).fit(model, datamodule=modules[-1])

    _, a, b = _with_and_by_hand(lambda lr: Net(lr or 0.01), fit)
    assert modules[0].stages == ["fit"]  # setup("fit") ran once, before the test
    assert a.lrs == b.lrs and _same(a, b)


def test_the_test_changes_no_rng_draw_of_the_fit_after_it() -> None:
    draws: list[torch.Tensor] = []

    class Draw(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            draws.append(torch.rand(3))

    for callbacks in ([FindLRCallback(num_steps=STEPS), Draw()], [Draw()]):
        torch.manual_seed(3)
        model = RandomSubset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _trainer(callbacks, max_steps=1).fit(Net(), datamodule=model)
    assert torch.equal(draws[0], draws[1])


# ------------------------------------------------------------------ resuming
class HNet(Net):
    """The LR in ``hparams`` (``save_hyperparameters``), as most modules keep it."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)
        del self.lr
        self.save_hyperparameters()

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def test_a_resumed_fit_puts_the_suggestion_back_in_the_lr_attribute_and_its_checkpoints_hparams(tmp_path: Any) -> None:
    # the resumed optimizer trains at the suggestion (the checkpoint's), but hparams.lr was the constructor's 0.01:
    # the resumed run's checkpoints said lr=0.01, and load_from_checkpoint(...).hparams.lr was not what it trained at
    callback = FindLRCallback(num_steps=STEPS)
    trainer = _trainer([callback], max_steps=2)
    trainer.fit(HNet(), _loader())
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    resumed, model = FindLRCallback(num_steps=STEPS), HNet()
    trainer = _trainer([resumed], max_steps=3)
    trainer.fit(model, _loader(), ckpt_path=str(tmp_path / "a.ckpt"))
    assert resumed.result is None and resumed.lr == callback.lr  # no test: the checkpoint's LR
    assert model.lrs == [[callback.lr]] and model.hparams.lr == callback.lr
    trainer.save_checkpoint(tmp_path / "b.ckpt")
    assert HNet.load_from_checkpoint(tmp_path / "b.ckpt").hparams.lr == callback.lr


# ------------------------------------------------------------------ the fit's settings
def test_a_gradient_accumulation_scheduler_gives_the_test_the_first_epochs_accumulation() -> None:
    # GradientAccumulationScheduler sets trainer.accumulate_grad_batches at on_train_epoch_start, after the test:
    # the test ran with 1 micro-batch per step while the fit's first epoch accumulates 4
    from lightning.pytorch.callbacks import GradientAccumulationScheduler

    import lrkit

    seen: list[int] = []

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
            seen.append(trainer.accumulate_grad_batches)

    callback = FindLRCallback(num_steps=STEPS)
    _trainer([GradientAccumulationScheduler({0: 4}), callback, Spy()], max_steps=1).fit(Net(), _loader(256))
    model = Net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        by_hand = lrkit.find_lr(model, model.configure_optimizers(), _loader(256), num_steps=STEPS,
                                step_fn=lambda m, b: m.training_step(b, 0)["loss"], accumulation_steps=4)
    assert seen[0] == 4 and callback.result.losses == by_hand.losses


def test_a_loader_shuffling_with_its_own_generator_gives_the_fit_the_order_it_would_have_had() -> None:
    # DataLoader(shuffle=True, generator=g), the reproducible way: the test's passes advanced g (find_lr puts back the
    # generators of a loader it is given, but the callback gave it a wrapper), so the fit's first epoch was shuffled
    # otherwise than a fit without the callback
    def fit(model: Net, cbs: list[Any]) -> None:
        _trainer(cbs, max_steps=4).fit(model, _loader(generator=torch.Generator().manual_seed(5)))

    _, a, b = _with_and_by_hand(lambda lr: Net(lr or 0.01), fit)
    assert a.lrs == b.lrs and _same(a, b)


def test_the_loaders_of_a_dict_of_loaders_are_put_back_too() -> None:
    class Two(Net):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return sum(nn.functional.mse_loss(self.net(x), y) for x, y in batch.values())

    def fit(model: Net, cbs: list[Any]) -> None:
        loaders = {"a": _loader(generator=torch.Generator().manual_seed(5)),
                   "b": _loader(64, num_workers=1, persistent_workers=True)}
        _trainer(cbs, max_steps=4).fit(model, loaders)

    _, a, b = _with_and_by_hand(lambda lr: Two(lr or 0.01), fit)
    assert a.lrs == b.lrs and _same(a, b)


# ------------------------------------------------------------------ what the loggers record
class HparamsLogger(pl.loggers.Logger):
    """Keeps what the fit hands a logger's ``log_hyperparams`` (hparams.yaml, TensorBoard/W&B/MLflow params)."""

    def __init__(self) -> None:
        super().__init__()
        self.hparams: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return "spy"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.hparams.update(dict(params))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass


def test_the_loggers_hparams_say_the_lr_the_fit_trains_at() -> None:
    # the logged hparams come from hparams_initial (save_hyperparameters' copy): the run was logged at lr=0.01
    # while it trained at the suggestion
    callback, logger = FindLRCallback(num_steps=STEPS), HparamsLogger()
    model = HNet()
    pl.Trainer(accelerator="cpu", logger=logger, enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False, max_steps=1, callbacks=[callback]).fit(model, _loader())
    assert callback.lr != 0.01 and model.lrs == [[callback.lr]]
    assert logger.hparams == {"lr": callback.lr} == dict(model.hparams)


# ------------------------------------------------------------------ warnings
class TwoSchedulers(Net):
    """A step-interval warmup and an epoch-interval decay on one optimizer, both built from ``self.lr``."""

    def __init__(self, lr: float = 0.01, read_attr: bool = True) -> None:
        super().__init__(lr)
        self.read_attr = read_attr

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr if self.read_attr else 0.01)
        warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (t + 1) / 3))
        decay = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
        return [opt], [{"scheduler": warmup, "interval": "step"}, {"scheduler": decay, "interval": "epoch"}]


def _finder_warnings(model: Net, callback: FindLRCallback) -> list[str]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _trainer([callback], max_steps=3).fit(model, _loader())
    return [str(w.message) for w in record if "FindLRCallback" in str(w.message)]


def test_several_schedulers_rebuilt_from_self_lr_are_not_warned_about() -> None:
    # the attribute path rebuilds every scheduler from self.lr, but warned (twice) that the others' LRs "are not
    # scaled" and to "read the LR from an attribute (self.lr)", which the module does
    model, callback = TwoSchedulers(), FindLRCallback(num_steps=STEPS)
    assert _finder_warnings(model, callback) == []
    assert model.lrs[2] == [callback.lr] and model.lr == callback.lr  # the warmup's 3rd step: the suggestion


def test_several_schedulers_scaled_without_an_attribute_are_warned_about_once() -> None:
    model, callback = TwoSchedulers(read_attr=False), FindLRCallback(num_steps=STEPS, attr_name=False)
    found = _finder_warnings(model, callback)
    assert len(found) == 1 and "2 LR schedulers" in found[0] and "StepLR (interval='epoch')" in found[0]


def test_an_lr_in_both_the_modules_and_the_datamodules_hparams_is_logged_once_at_the_suggestion() -> None:
    # Lightning merges both hparams_initial for the loggers and refuses a key they hold with different values
    class LrData(RandomSubset):
        def __init__(self, lr: float = 0.01) -> None:
            super().__init__()
            self.save_hyperparameters()

    callback, logger, model, data = FindLRCallback(num_steps=STEPS), HparamsLogger(), HNet(), LrData()
    pl.Trainer(accelerator="cpu", logger=logger, enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False, max_steps=1, callbacks=[callback]).fit(model, datamodule=data)
    assert logger.hparams == {"lr": callback.lr} and data.hparams.lr == model.hparams.lr == callback.lr
    assert model.lrs == [[callback.lr]]
