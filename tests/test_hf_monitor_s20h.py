"""lrkit.Monitor as a Hugging Face Trainer callback (lrkit.integrations.transformers.MonitorCallback), session 20h."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from _helpers import transformers_or_skip

transformers = transformers_or_skip()
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from lrkit.integrations.transformers import STATE_FILE, MonitorCallback, MonitorLossMixin  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning")

SANE_LR = 0.01


def _data(n: int = 256, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    w = torch.randn(8, generator=torch.Generator().manual_seed(0))  # one task; seed draws its inputs
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x @ w + 0.1 * torch.randn(n, generator=g)
    return [{"x": x[i], "labels": y[i]} for i in range(n)]


class Reg(nn.Module):
    """A tiny regression MLP returning ``{"loss", "logits"}``; ``nan_at`` makes those optimizer steps' loss NaN."""

    def __init__(self, nan_at: tuple[int, ...] = ()) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
        self.nan_at, self.step = set(nan_at), 0
        self.losses: list[float] = []  # every training micro-batch's loss, as the forward returns it

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self.net(x).squeeze(-1)
        loss = nn.functional.mse_loss(out, labels)
        if self.training and self.step in self.nan_at:
            loss = loss * float("nan")
        if self.training and torch.is_grad_enabled():
            self.losses.append(loss.item())
        return {"loss": loss, "logits": out}


class SummedReg(Reg):
    """Accepts the Trainer's loss kwargs: the loss is summed and divided by the step's ``num_items_in_batch``."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        out = self.net(x).squeeze(-1)
        n = kwargs.get("num_items_in_batch")
        loss = ((out - labels) ** 2).sum() / n if n is not None else nn.functional.mse_loss(out, labels)
        if self.training and torch.is_grad_enabled():
            self.losses.append(loss.item())
        return {"loss": loss, "logits": out}


class StepTracker(TrainerCallback):
    """Tells the model the optimizer step it is in (for ``nan_at``); records the LR and scheduler clock per step."""

    def __init__(self) -> None:
        self.lrs: list[tuple[int, int, float]] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        model.step = state.global_step

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                              lr_scheduler: Any = None, **kw: Any) -> None:
        self.lrs.append((state.global_step, lr_scheduler.last_epoch, optimizer.param_groups[0]["lr"]))


def _args(tmp: Path, **kw: Any) -> TrainingArguments:
    base: dict[str, Any] = dict(output_dir=str(tmp), max_steps=40, per_device_train_batch_size=16,
                                learning_rate=SANE_LR, lr_scheduler_type="constant", report_to=[], use_cpu=True,
                                disable_tqdm=True, save_strategy="no", logging_strategy="no", max_grad_norm=0.0,
                                seed=0)
    base.update(kw)
    return TrainingArguments(**base)


def _train(model: nn.Module, tmp: Path, callbacks: list[Any] | None = None, *, data: Any = None,
           eval_data: Any = None, sgd: bool = True, trainer_cls: type = Trainer,
           resume: Any = None, **kw: Any) -> Trainer:
    args = _args(tmp, **kw)
    optimizers: Any = (None, None)
    if sgd:
        optimizers = (torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9), None)
    trainer = trainer_cls(model=model, args=args, train_dataset=data or _data(), eval_dataset=eval_data,
                          callbacks=[StepTracker(), *(callbacks or [])], optimizers=optimizers)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def _spy(callback: Any) -> tuple[list[float], TrainerCallback]:
    """Records every loss the monitor's ``after_backward`` gets (listed after the MonitorCallback)."""
    calls: list[float] = []

    class Spy(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            real = callback.monitor.after_backward
            callback.monitor.after_backward = lambda loss: (calls.append(float(loss)), real(loss))[1]

    return calls, Spy()


# ------------------------------------------------------------------ (1) a too-high LR is rescued
def test_rollback_rescues_a_run_at_30x_a_sane_lr_that_diverges_without_the_callback(tmp_path: Path) -> None:
    plain = Reg()
    _train(plain, tmp_path, learning_rate=30 * SANE_LR, max_steps=300)
    assert not math.isfinite(plain.losses[-1])  # the run without the monitor diverges

    model = Reg()
    callback = MonitorCallback(on_divergence="rollback")
    trainer = _train(model, tmp_path, [callback], learning_rate=30 * SANE_LR, max_steps=300)
    summary = callback.monitor.summary()
    assert math.isfinite(model.losses[-1]) and model.losses[-1] < 0.05 * model.losses[0]
    assert summary["steps"] == 300 and summary["rollbacks"] > 0 and summary["events"] > 0
    assert summary["lr_scale"] == pytest.approx(0.3 ** summary["rollbacks"])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(30 * SANE_LR * summary["lr_scale"])
    assert callback.monitor.optimizer is trainer.optimizer.optimizer  # the torch SGD inside AcceleratedOptimizer
    assert all(math.isfinite(p.sum().item()) for p in model.parameters())


# ------------------------------------------------------------------ (2) a healthy run is left as it is
def test_a_healthy_run_raises_nothing_and_ends_bit_for_bit_where_it_would_without_the_callback(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(max_steps=200, eval_strategy="steps", eval_steps=50, sgd=False,  # HF's AdamW
                              lr_scheduler_type="linear", warmup_steps=10, max_grad_norm=1.0)
    plain = Reg()
    _train(plain, tmp_path, eval_data=_data(64, seed=1), **kw)
    model = Reg()
    callback = MonitorCallback()
    trainer = _train(model, tmp_path, [callback], eval_data=_data(64, seed=1), **kw)
    assert callback.monitor.events == [] and callback.monitor.summary()["steps"] == 200
    assert callback.monitor.state_dict()["evals"] == 4  # after_validation at each evaluation during train()
    for (name, a), b in zip(plain.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    assert plain.losses == model.losses
    trainer.evaluate()  # an evaluation outside train() is not the monitor's
    assert callback.monitor.state_dict()["evals"] == 4


# ------------------------------------------------------------------ (3) gradient accumulation
def test_gradient_accumulation_calls_the_monitor_once_per_optimizer_step_with_the_steps_mean_loss(
        tmp_path: Path) -> None:
    model = Reg()
    callback = MonitorCallback()
    calls, spy = _spy(callback)
    # 5 micro-batches per epoch, 2 per step: steps of 2, 2, 1 micro-batches per epoch
    trainer = _train(model, tmp_path, [callback, spy], data=_data(80), max_steps=12, gradient_accumulation_steps=2)
    assert trainer.state.global_step == 12 == len(calls) == callback.monitor.summary()["steps"]
    windows = [[0, 1], [2, 3], [4]]
    expected = [sum(model.losses[5 * e + i] for i in w) / len(w) for e in range(4) for w in windows]
    assert calls == pytest.approx(expected, rel=1e-6)


def test_a_loss_normalised_by_num_items_in_batch_is_summed_over_the_step_as_the_trainer_logs_it(
        tmp_path: Path) -> None:
    model = SummedReg()
    callback = MonitorCallback()
    calls, spy = _spy(callback)
    trainer = _train(model, tmp_path, [callback, spy], data=_data(80), max_steps=6, gradient_accumulation_steps=2,
                     logging_strategy="steps", logging_steps=1)
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(calls) == len(logged) == 6
    assert calls == pytest.approx(logged, rel=1e-5)  # the Trainer's own per-step training loss
    windows = [[0, 1], [2, 3], [4]]
    assert calls == pytest.approx([sum(model.losses[5 * e + i] for i in w) for e in range(2) for w in windows],
                                  rel=1e-6)


# ------------------------------------------------------------------ (4) the back-off survives HF's scheduler
def test_the_back_off_survives_the_trainers_linear_warmup_decay_scheduler(tmp_path: Path) -> None:
    model = Reg(nan_at=(20,))
    callback, tracker = MonitorCallback(), StepTracker()
    trainer = _train(model, tmp_path, [callback, tracker], max_steps=40, lr_scheduler_type="linear",
                     warmup_steps=5)
    sched = trainer.lr_scheduler
    assert callback.monitor.scheduler is sched and callback.monitor.rollbacks == 1
    assert [(e.step, e.check, e.action) for e in callback.monitor.events] == [(20, "non_finite", "rollback")]
    lam = sched.lr_lambdas[0]
    for step, clock, lr in tracker.lrs:  # lr = base × lambda(clock), × 0.3 after the rollback at step 20
        scale = 0.3 if step > 20 else 1.0
        assert lr == pytest.approx(scale * SANE_LR * lam(clock), rel=1e-12, abs=1e-15), (step, clock)
    assert sched.last_epoch < trainer.state.global_step  # the rollback returned the scheduler's clock to its snapshot
    # the snapshot (taken before step 0's optimizer step) had the clock at 0: the warmup replays, backed off
    assert [clock for step, clock, _ in tracker.lrs if step > 20][:3] == [0, 1, 2]


# ------------------------------------------------------------------ (5) resume from a Trainer checkpoint
def test_resuming_from_a_trainer_checkpoint_continues_the_monitor(tmp_path: Path) -> None:
    whole_dir, resumed_dir = tmp_path / "whole", tmp_path / "resumed"
    whole, whole_model = MonitorCallback(grad_every=1, snapshot_every=10), Reg(nan_at=(12, 27))
    _train(whole_model, whole_dir, [whole], max_steps=32, save_strategy="steps", save_steps=16)
    saved = whole_dir / "checkpoint-16" / STATE_FILE
    state = torch.load(saved, weights_only=True)  # plain tensors and containers
    assert state["step"] == 15 and state["rollbacks"] == 1  # saved after step 15's after_step (16 steps done)
    assert "healthy" in state  # the snapshot travels with it

    shutil.copytree(whole_dir / "checkpoint-16", resumed_dir / "checkpoint-16")
    resumed, model = MonitorCallback(grad_every=1, snapshot_every=10), Reg(nan_at=(12, 27))
    _train(model, resumed_dir, [resumed], max_steps=32, save_strategy="steps", save_steps=16, resume=True)
    assert resumed.monitor.summary() == whole.monitor.summary()
    assert resumed.monitor.summary()["steps"] == 32 and resumed.monitor.rollbacks == 2
    assert [e.to_dict() for e in resumed.monitor.events] == [e.to_dict() for e in whole.monitor.events]
    for (name, a), b in zip(whole_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name  # the rollback after the resume went where the uninterrupted run's did


def test_a_checkpoint_outside_output_dir_is_read_through_load_checkpoint_and_a_missing_file_is_warned_about(
        tmp_path: Path) -> None:
    first = MonitorCallback()
    _train(Reg(nan_at=(3,)), tmp_path / "a", [first], max_steps=8, save_strategy="steps", save_steps=8)
    ckpt = tmp_path / "a" / "checkpoint-8"
    other = MonitorCallback()
    other.load_checkpoint(ckpt)
    _train(Reg(), tmp_path / "b", [other], max_steps=10, resume=str(ckpt))
    assert other.monitor.summary()["steps"] == 10 and other.monitor.rollbacks == 1

    unused = MonitorCallback()
    unused.load_checkpoint(ckpt)
    _train(Reg(), tmp_path / "d", [unused], max_steps=3, save_strategy="steps", save_steps=3)  # not a resume:
    assert unused.monitor.summary()["steps"] == 3 and unused.monitor.rollbacks == 0  # the checkpoint is not loaded
    _train(Reg(), tmp_path / "d", [unused], max_steps=5, resume=True)  # nor kept for a later resume: this one's own
    assert unused.monitor.summary()["steps"] == 5 and unused.monitor.rollbacks == 0

    (ckpt / STATE_FILE).unlink()
    fresh = MonitorCallback()
    with pytest.warns(UserWarning, match=r"resumes at step 8 but there is no .*lrkit_monitor.pt.*load_checkpoint"):
        _train(Reg(), tmp_path / "c", [fresh], max_steps=10, resume=str(ckpt))
    assert fresh.monitor.summary()["steps"] == 2 and fresh.monitor.rollbacks == 0
    with pytest.raises(ValueError, match=r"no lrkit_monitor.pt in that folder"):
        MonitorCallback().load_checkpoint(ckpt)


# ------------------------------------------------------------------ (6) a loss the callback cannot read
def _bert() -> Any:
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, num_labels=2)
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def _tokens(n: int = 64) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 50, (n, 6), generator=g)
    return [{"input_ids": ids[i], "labels": (ids[i, 0] > 25).long()} for i in range(n)]


def test_a_loss_computed_outside_the_model_is_warned_about_once_and_the_mixin_hands_it_over(tmp_path: Path) -> None:
    callback = MonitorCallback()
    with pytest.warns(UserWarning, match=r"cannot read the training loss.*no 'loss'.*MonitorLossMixin") as record:
        _train(_bert(), tmp_path, [callback], data=_tokens(), max_steps=6, label_smoothing_factor=0.1, sgd=False,
               learning_rate=1e-3)
    assert sum("cannot read the training loss" in str(w.message) for w in record) == 1
    assert callback.monitor.summary()["steps"] == 0  # not called: the run trained unmonitored, as it says

    class MonitoredTrainer(MonitorLossMixin, Trainer):
        pass

    callback = MonitorCallback()
    calls, spy = _spy(callback)
    trainer = _train(_bert(), tmp_path, [callback, spy], data=_tokens(), max_steps=6, label_smoothing_factor=0.1,
                     sgd=False, learning_rate=1e-3, trainer_cls=MonitoredTrainer, gradient_accumulation_steps=2,
                     logging_strategy="steps", logging_steps=1)
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert callback.monitor.summary()["steps"] == 6 and calls == pytest.approx(logged, rel=1e-5)


def test_a_tuple_output_without_a_loss_names_what_it_got(tmp_path: Path) -> None:
    class NoLoss(Reg):
        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
            out = self.net(x).squeeze(-1)
            return (out, nn.functional.mse_loss(out, labels))  # the loss second: not where HF reads it

    class LossSecond(Trainer):
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False, **kw: Any) -> Any:
            outputs = model(**inputs)
            return (outputs[1], outputs) if return_outputs else outputs[1]

    callback = MonitorCallback()
    with pytest.warns(UserWarning, match=r"returned a tuple whose first element is a tensor of shape \(16,\)"):
        _train(NoLoss(), tmp_path, [callback], max_steps=3, trainer_cls=LossSecond)


# ------------------------------------------------------------------ stop, validation metric
def test_a_stop_ends_the_training_on_the_healthy_weights(tmp_path: Path) -> None:
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    class Before(TrainerCallback):
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            snapshots[state.global_step] = {k: v.clone() for k, v in model.state_dict().items()}

    model = Reg(nan_at=(5,))
    callback = MonitorCallback(on_divergence="stop")
    trainer = _train(model, tmp_path, [callback, Before()], max_steps=40)
    assert trainer.state.global_step == 6 and callback.monitor.should_stop
    assert "non_finite" in callback.monitor.stop_reason
    for key, value in snapshots[0].items():  # the step-0 snapshot (the only one so far)
        assert torch.equal(model.state_dict()[key], value), key


def test_a_missing_metric_is_warned_about_once_naming_the_metrics_there_are(tmp_path: Path) -> None:
    callback = MonitorCallback(monitor_metric="val_loss")
    with pytest.warns(UserWarning, match=r"val_loss.*'eval_loss'") as record:
        _train(Reg(), tmp_path, [callback], eval_data=_data(32, seed=1), max_steps=20, eval_strategy="steps",
               eval_steps=5)
    assert sum("monitor_metric" in str(w.message) for w in record) == 1
    assert callback.monitor.state_dict()["evals"] == 0


# ------------------------------------------------------------------ clear errors
def test_bad_keywords_are_refused_when_the_callback_is_built() -> None:
    with pytest.raises(ValueError, match="on_divergnce.*Did you mean 'on_divergence'"):
        MonitorCallback(on_divergnce="rollback")
    with pytest.raises(ValueError, match=r"scheduler=.*trainer.lr_scheduler"):
        MonitorCallback(scheduler=None)
    with pytest.raises(ValueError, match="backoff=1.5"):
        MonitorCallback(backoff=1.5)
    with pytest.raises(ValueError, match="monitor_metric=3"):
        MonitorCallback(monitor_metric=3)
    with pytest.raises(ValueError, match="save_snapshots='yes'"):
        MonitorCallback(save_snapshots="yes")


def test_import_lrkit_does_not_import_transformers_and_a_missing_one_says_how_to_install_it() -> None:
    code = (
        "import sys, lrkit, lrkit.integrations.transformers\n"
        "assert 'transformers' not in sys.modules and 'accelerate' not in sys.modules\n"
        "sys.modules['transformers'] = None\n"
        "try:\n"
        "    from lrkit.integrations.transformers import MonitorCallback\n"
        "except ImportError as e:\n"
        "    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "pip install transformers" in out.stdout
