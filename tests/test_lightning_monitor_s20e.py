"""lrkit.Monitor as a PyTorch Lightning callback (lrkit.integrations.lightning.MonitorCallback), session 20e."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn

from _lightning_helpers import LIGHTNING_WARNINGS, ManualOptimizationMixin, quiet_lightning_logs
from lrkit.integrations.lightning import MonitorCallback

quiet_lightning_logs()
pytestmark = pytest.mark.filterwarnings(*LIGHTNING_WARNINGS)

SANE_LR = 0.01


def _loader(n: int = 256, batch_size: int = 16, seed: int = 0) -> torch.utils.data.DataLoader:
    w = torch.randn(8, 1, generator=torch.Generator().manual_seed(0))  # one task; seed draws its inputs
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x @ w + 0.1 * torch.randn(n, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False)


class Net(pl.LightningModule):
    """A tiny regression MLP; ``nan_at`` makes the loss of those optimizer steps NaN (a blow-up on cue)."""

    def __init__(self, lr: float = SANE_LR, *, nan_at: tuple[int, ...] = (), scheduler: str | None = None,
                 optimizer: str = "sgd") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
        self.lr, self.nan_at, self.scheduler, self.optimizer = lr, nan_at, scheduler, optimizer
        self.losses: list[float] = []  # every micro-batch's loss, as training_step returns it

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x).float(), y)
        if self.trainer.global_step in self.nan_at:
            loss = loss * float("nan")
        self.losses.append(loss.item())
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x).float(), y))

    def configure_optimizers(self) -> Any:
        if self.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        else:
            opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if self.scheduler == "lambda_step":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 / (1.0 + 0.05 * e))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if self.scheduler == "lambda_epoch":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 ** e)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        return opt


def _trainer(callbacks: list[Any] | None = None, **kw: Any) -> pl.Trainer:
    kw.setdefault("max_steps", 40)
    kw.setdefault("enable_checkpointing", False)
    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, callbacks=callbacks or [], **kw)


def _fit(model: pl.LightningModule, callbacks: list[Any] | None = None, *, val: bool = False,
         loader: torch.utils.data.DataLoader | None = None, **kw: Any) -> pl.Trainer:
    trainer = _trainer(callbacks, **kw)
    trainer.fit(model, loader or _loader(), _loader(64, seed=1) if val else None)
    return trainer


class Recorder(pl.Callback):
    """After the monitor's ``after_backward`` (it is listed after the MonitorCallback): the state a snapshot holds."""

    def __init__(self) -> None:
        self.states: dict[int, tuple[dict[str, torch.Tensor], dict[str, Any]]] = {}
        self.lrs: list[tuple[int, int, float]] = []  # (global step, scheduler clock, lr) of each optimizer step

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        step = trainer.global_step
        self.states[step] = (copy.deepcopy(pl_module.state_dict()), copy.deepcopy(optimizer.state_dict()))
        configs = trainer.lr_scheduler_configs
        clock = configs[0].scheduler.last_epoch if configs else -1
        self.lrs.append((step, clock, optimizer.param_groups[0]["lr"]))


# ------------------------------------------------------------------ (1) a too-high LR is rescued
def test_rollback_rescues_a_run_at_30x_a_sane_lr_that_diverges_without_the_callback() -> None:
    plain = Net(30 * SANE_LR)
    _fit(plain, max_steps=300)
    assert not math.isfinite(plain.losses[-1])  # the run without the monitor diverges

    model = Net(30 * SANE_LR)
    callback = MonitorCallback(on_divergence="rollback")
    _fit(model, [callback], max_steps=300)
    summary = callback.monitor.summary()
    assert math.isfinite(model.losses[-1]) and model.losses[-1] < 0.05 * model.losses[0]
    assert summary["steps"] == 300 and summary["rollbacks"] > 0 and summary["events"] > 0
    assert summary["lr_scale"] == pytest.approx(0.3 ** summary["rollbacks"])
    assert model.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(30 * SANE_LR * summary["lr_scale"])
    assert all(math.isfinite(p.sum().item()) for p in model.parameters())


# ------------------------------------------------------------------ (2) a healthy run is left as it is
def test_a_healthy_run_raises_nothing_and_ends_bit_for_bit_where_it_would_without_the_callback() -> None:
    plain = Net()
    _fit(plain, max_steps=300, val=True)
    model = Net()
    callback = MonitorCallback()
    trainer = _fit(model, [callback], max_steps=300, val=True)
    assert callback.monitor.events == [] and callback.monitor.summary()["steps"] == 300
    assert callback.monitor.state_dict()["evals"] == 300 // 16  # one after_validation per (whole) epoch
    for (name, a), b in zip(plain.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    opt_a, opt_b = plain.trainer.optimizers[0].state_dict(), model.trainer.optimizers[0].state_dict()
    for key, state in opt_a["state"].items():
        assert torch.equal(state["momentum_buffer"], opt_b["state"][key]["momentum_buffer"])
    assert trainer.callback_metrics["lrkit/events"] == 0 and trainer.callback_metrics["lrkit/lr_scale"] == 1


# ------------------------------------------------------------------ (3) rollback exactness
def test_rollback_restores_the_modules_parameters_and_the_optimizer_state_exactly() -> None:
    model = Net(nan_at=(35,))
    callback, recorder = MonitorCallback(grad_every=1, snapshot_every=10), Recorder()
    _fit(model, [callback, recorder], max_steps=36)
    monitor = callback.monitor
    assert [(e.step, e.check, e.action) for e in monitor.events] == [(35, "non_finite", "rollback")]
    # the snapshot the rollback returned to: the latest state recorded (before a step) that the model now equals
    now_model = model.state_dict()
    now_opt = model.trainer.optimizers[0].state_dict()
    matches = [step for step, (m, _) in recorder.states.items()
               if all(torch.equal(now_model[k], v) for k, v in m.items())]
    assert len(matches) == 1 and 10 <= matches[0] < 35, matches
    saved_opt = recorder.states[matches[0]][1]
    assert saved_opt["state"].keys() == now_opt["state"].keys() and saved_opt["state"]  # momentum buffers there
    for key, state in saved_opt["state"].items():
        assert torch.equal(state["momentum_buffer"], now_opt["state"][key]["momentum_buffer"])
    assert now_opt["param_groups"][0]["lr"] == pytest.approx(0.3 * SANE_LR, rel=1e-12)


# ------------------------------------------------------------------ (4) the back-off survives the scheduler
def test_the_back_off_survives_a_lightning_stepped_per_step_scheduler() -> None:
    model = Net(nan_at=(20,), scheduler="lambda_step")
    callback, recorder = MonitorCallback(), Recorder()
    trainer = _fit(model, [callback, recorder], max_steps=40)
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert callback.monitor.scheduler is sched and callback.monitor.rollbacks == 1
    for step, clock, lr in recorder.lrs:  # lr = base × lambda(clock), × 0.3 after the rollback at step 20
        scale = 0.3 if step > 20 else 1.0
        assert lr == pytest.approx(scale * SANE_LR / (1.0 + 0.05 * clock), rel=1e-12), (step, clock)
    assert sched.last_epoch < trainer.global_step  # the rollback returned the scheduler's clock to its snapshot's
    assert sum(step > 20 for step, _, _ in recorder.lrs) == 19


def test_an_epoch_interval_scheduler_is_the_monitors_scheduler_and_keeps_the_back_off() -> None:
    model = Net(nan_at=(20,), scheduler="lambda_epoch")
    callback, recorder = MonitorCallback(), Recorder()
    trainer = _fit(model, [callback, recorder], max_steps=48)  # 16 steps per epoch: epoch steps at 16 and 32
    assert callback.monitor.scheduler is trainer.lr_scheduler_configs[0].scheduler
    for step, clock, lr in recorder.lrs:
        assert lr == pytest.approx((0.3 if step > 20 else 1.0) * SANE_LR * 0.5 ** clock, rel=1e-12), (step, clock)
    # the rollback at step 20 (epoch 1) returned the epoch scheduler's clock to its snapshot's (step 0: epoch 0),
    # as in a hand loop; the epoch step at the end of epoch 1 moved it on with the back-off kept
    assert {clock for step, clock, _ in recorder.lrs if 20 < step < 32} == {0}
    assert {clock for step, clock, _ in recorder.lrs if step >= 32} == {1}


# ------------------------------------------------------------------ (5) gradient accumulation
def test_accumulate_grad_batches_calls_the_monitor_once_per_optimizer_step_with_the_steps_mean_loss() -> None:
    model = Net()
    callback = MonitorCallback()
    calls: list[float] = []

    class Spy(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            real = callback.monitor.after_backward
            callback.monitor.after_backward = lambda loss: (calls.append(float(loss)), real(loss))[1]

    # 5 micro-batches per epoch, 2 per step: steps of 2, 2, 1 micro-batches per epoch (Lightning steps at the end)
    trainer = _fit(model, [callback, Spy()], loader=_loader(80), max_epochs=4, max_steps=-1,
                   accumulate_grad_batches=2)
    assert trainer.global_step == 12 == len(calls) == callback.monitor.summary()["steps"]
    windows = [[0, 1], [2, 3], [4]]
    expected = [sum(model.losses[5 * e + i] for i in w) / len(w) for e in range(4) for w in windows]
    assert calls == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ (6) resume from a Lightning checkpoint
def test_resuming_from_a_lightning_checkpoint_continues_the_monitor(tmp_path: Any) -> None:
    whole = MonitorCallback(grad_every=1, snapshot_every=10)
    whole_model = Net(nan_at=(12, 27))
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=16, save_top_k=-1)
    _fit(whole_model, [whole, saver], max_steps=32, enable_checkpointing=True)
    path = tmp_path / "epoch=0-step=16.ckpt"
    saved = torch.load(path, weights_only=True)  # plain tensors and containers
    state = saved["callbacks"]["MonitorCallback"]["monitor"]
    assert state["step"] == 15 and state["rollbacks"] == 1  # saved after the step's after_step
    assert "healthy" in state  # the snapshot travels with it

    resumed, model = MonitorCallback(grad_every=1, snapshot_every=10), Net(nan_at=(12, 27))
    trainer = _trainer([resumed], max_steps=32)
    trainer.fit(model, _loader(), ckpt_path=path)
    assert resumed.monitor.summary() == whole.monitor.summary()
    assert resumed.monitor.summary()["steps"] == 32 and resumed.monitor.rollbacks == 2
    assert [e.to_dict() for e in resumed.monitor.events] == [e.to_dict() for e in whole.monitor.events]
    for (name, a), b in zip(whole_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name  # the rollback after the resume went where the uninterrupted run's did


# ------------------------------------------------------------------ stop
def test_a_stop_ends_the_fit_and_restores_the_healthy_weights() -> None:
    model = Net(nan_at=(5,))
    callback, recorder = MonitorCallback(on_divergence="stop"), Recorder()
    trainer = _fit(model, [callback, recorder], max_steps=40)
    assert trainer.global_step == 6 and callback.monitor.should_stop and "non_finite" in callback.monitor.stop_reason
    for key, value in recorder.states[0][0].items():  # the step-0 snapshot (the only one so far)
        assert torch.equal(model.state_dict()[key], value), key


class ScriptedVal(Net):
    """A validation loss that bottoms out at epoch 1 and then rises (the training loss keeps falling)."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", [1.0, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4][self.current_epoch])


def test_a_rising_validation_loss_stops_the_fit_with_the_best_validation_weights() -> None:
    weights: list[dict[str, torch.Tensor]] = []

    class AtValidation(pl.Callback):
        def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            weights.append(copy.deepcopy(pl_module.state_dict()))

    model = ScriptedVal()
    callback = MonitorCallback(on_overfit="stop")
    trainer = _fit(model, [callback, AtValidation()], max_epochs=8, max_steps=-1, val=True)
    events = callback.monitor.events
    assert [(e.check, e.action) for e in events] == [("val_rising", "stop")] and trainer.current_epoch < 7
    for key, value in weights[1].items():  # epoch 1's weights: the best validation loss
        assert torch.equal(model.state_dict()[key], value), key


# ------------------------------------------------------------------ AMP
def test_a_grad_scaler_is_the_monitors_and_the_loss_it_gets_is_unscaled() -> None:
    model = Net()
    callback = MonitorCallback()
    calls: list[float] = []

    class Spy(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            real = callback.monitor.after_backward
            callback.monitor.after_backward = lambda loss: (calls.append(float(loss)), real(loss))[1]

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    _fit(model, [callback, Spy()], max_steps=10, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    assert callback.monitor.grad_scaler is scaler and callback.monitor.events == []
    assert calls == pytest.approx(model.losses, rel=1e-6)  # not 1024 × the loss


def test_bf16_mixed_on_cpu_is_monitored() -> None:
    model = Net(nan_at=(5,))
    callback = MonitorCallback()
    _fit(model, [callback], max_steps=10, precision="bf16-mixed")
    assert callback.monitor.grad_scaler is None and callback.monitor.summary()["steps"] == 10
    assert [(e.step, e.action) for e in callback.monitor.events] == [(5, "rollback")]


# ------------------------------------------------------------------ validation metric
def test_a_missing_validation_metric_is_warned_about_once_naming_the_metrics_there_are() -> None:
    callback = MonitorCallback(monitor_metric="valid_loss")
    with pytest.warns(UserWarning, match="valid_loss.*'val_loss'") as record:
        _fit(Net(), [callback], max_steps=48, val=True)
    assert sum("monitor_metric" in str(w.message) for w in record) == 1
    assert callback.monitor.state_dict()["evals"] == 0


# ------------------------------------------------------------------ (7) clear errors
class TwoOptimizers(Net):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        for opt in self.optimizers():
            opt.zero_grad()
            self.manual_backward(super().training_step(batch, batch_idx))
            opt.step()

    def configure_optimizers(self) -> Any:
        return [torch.optim.SGD(self.net[0].parameters(), lr=0.01), torch.optim.Adam(self.net[2].parameters())]


class Manual(ManualOptimizationMixin, Net):
    """``Net`` optimized by hand (``automatic_optimization = False``)."""


def test_two_optimizers_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"one optimizer.*gave 2 \(SGD, Adam\).*one lrkit.Monitor per optimizer"):
        _fit(TwoOptimizers(), [MonitorCallback()], max_steps=2)


def test_manual_optimization_is_refused_with_a_message_saying_to_use_the_monitor_by_hand() -> None:
    with pytest.raises(ValueError, match=r"automatic_optimization is False.*lrkit.Monitor by hand in training_step"):
        _fit(Manual(), [MonitorCallback()], max_steps=2)


def test_bad_keywords_are_refused_when_the_callback_is_built() -> None:
    with pytest.raises(ValueError, match="on_divergnce.*Did you mean 'on_divergence'"):
        MonitorCallback(on_divergnce="rollback")
    with pytest.raises(ValueError, match="scheduler=.*lr_scheduler_configs"):
        MonitorCallback(scheduler=None)
    with pytest.raises(ValueError, match="backoff=1.5"):
        MonitorCallback(backoff=1.5)
    with pytest.raises(ValueError, match="monitor_metric=3"):
        MonitorCallback(monitor_metric=3)


def test_import_lrkit_does_not_import_lightning_and_a_missing_lightning_says_how_to_install_it() -> None:
    code = (
        "import sys, lrkit, lrkit.integrations.lightning\n"
        "assert not any(m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning')) for m in sys.modules)\n"
        "sys.modules['lightning'] = None; sys.modules['lightning.pytorch'] = None\n"
        "try:\n"
        "    from lrkit.integrations.lightning import MonitorCallback\n"
        "except ImportError as e:\n"
        "    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "pip install lightning" in out.stdout


@pytest.mark.parametrize(("world_size", "given", "expected"),
                         [(1, {}, False), (2, {}, True), (2, {"sync_loss": False}, False)])
def test_sync_loss_defaults_to_true_under_several_processes(world_size: int, given: dict,
                                                            expected: bool) -> None:
    # every rank calls the monitor at every step under Lightning's DDP, so the monitor can all-reduce the loss
    model = Net()
    trainer = SimpleNamespace(optimizers=[torch.optim.SGD(model.parameters(), lr=0.1)], lr_scheduler_configs=[],
                              precision_plugin=SimpleNamespace(), world_size=world_size)
    callback = MonitorCallback(**given)
    callback.on_train_start(trainer, model)
    assert callback.monitor.sync_loss is expected and callback.monitor.model is model
