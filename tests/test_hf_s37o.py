"""Hugging Face ``transformers.Trainer`` integration hunt, session 37o: ``MonitorCallback`` after a ``train()`` that
ended in an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from _helpers import transformers_or_skip

transformers = transformers_or_skip()
from transformers import TrainerCallback  # noqa: E402

from _hf_helpers import CPU_ARGS, HF_WARNINGS, LinearReg, hf_trainer, linear_rows  # noqa: E402
from lrkit.integrations.transformers import MonitorCallback  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings(*HF_WARNINGS)


class _Boom(TrainerCallback):
    """Raises at the end of optimizer step ``at``: a ``train()`` that ends in an error (no ``on_train_end``)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step >= self.at:
            raise RuntimeError("boom")


def test_crashed_train_does_not_leave_a_growing_loss_hook(tmp_path: Path) -> None:
    """A ``train()`` that raises never calls ``on_train_end``, so the callback's loss hook stayed on the model: every
    training forward afterwards (a hand loop, another Trainer) appended its loss to a list no optimizer step ever
    emptied again, without end. The hook now takes itself off, with a warning, once far more forwards than the run's
    accumulation could explain have run without an optimizer step."""
    model = LinearReg()
    callback = MonitorCallback()
    trainer = hf_trainer(tmp_path, CPU_ARGS, model=model, data=linear_rows(64), max_steps=4,
                         callbacks=[callback, _Boom(2)])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    assert len(model._forward_hooks) == 1  # (the crash left it there)
    x, y = torch.randn(4, 8), torch.randn(4)
    model.train()
    with pytest.warns(UserWarning, match="MonitorCallback.*without an optimizer step"):
        for _ in range(12_000):
            model(x, y)
    assert len(model._forward_hooks) == 0
    assert len(callback._losses) == 0


def test_hook_bound_does_not_fire_in_a_long_accumulation(tmp_path: Path) -> None:
    """The bound scales with the run's accumulation: a healthy ``gradient_accumulation_steps=4`` run keeps its hook
    and monitors every optimizer step."""
    callback = MonitorCallback()
    trainer = hf_trainer(tmp_path, {**CPU_ARGS, "per_device_train_batch_size": 4}, model=LinearReg(),
                         data=linear_rows(64), max_steps=4, gradient_accumulation_steps=4, callbacks=[callback])
    trainer.train()
    assert callback.monitor is not None and callback.monitor.summary()["steps"] == 4


class _FloatLoss(torch.nn.Module):
    """A Hugging Face style model whose ``loss`` went through ``.item()``: a float, no gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        out = self.net(input_ids).squeeze(-1)
        return {"loss": float(((out - labels) ** 2).mean()), "logits": out}


class _TupleNoLoss(torch.nn.Module):
    """A ``return_dict=False`` style model that returns ``(logits,)``: no loss first."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor]:
        return (self.net(input_ids).squeeze(-1),)


def test_own_loss_error_names_a_loss_that_is_no_tensor() -> None:
    """A model whose ``loss`` is a Python float was said to have "no 'loss' tensor" in its output, as if the key were
    missing; the error now names what ``loss`` holds and why it cannot train (no gradient)."""
    from lrkit._hf import own_loss

    batch = {"input_ids": torch.randn(8, 4), "labels": torch.randn(8)}
    with pytest.raises(ValueError, match=r"'loss' is a float \(.*\).*no gradient"):
        own_loss(_FloatLoss(), batch)


def test_own_loss_error_names_a_tuple_first_item() -> None:
    """A tuple output whose first item is no scalar (logits: ``return_dict=False`` without a loss) is described by
    that item's shape."""
    from lrkit._hf import own_loss

    batch = {"input_ids": torch.randn(8, 4), "labels": torch.randn(8)}
    with pytest.raises(ValueError, match=r"first item is a tensor of shape \(8,\), not a scalar loss"):
        own_loss(_TupleNoLoss(), batch)


def test_monitor_callback_warning_names_a_loss_that_is_no_tensor(tmp_path: Path) -> None:
    """``MonitorCallback``'s warning about an unreadable loss said the output had "no 'loss'" when it had one that
    was not a scalar tensor; it now names what ``loss`` holds."""
    from lrkit.integrations.transformers import _describe

    assert "'loss' is a float" in _describe({"loss": 0.5, "logits": torch.zeros(2)})
    assert "'loss' is a tensor of shape (4,)" in _describe({"loss": torch.zeros(4)})
    assert "no 'loss'" in _describe({"logits": torch.zeros(2)})


class _TakesLossKwargs(LinearReg):
    """A model that takes the Trainer's loss kwargs (``**kwargs``: it is handed ``num_items_in_batch``) but returns a
    per-batch mean, as many transformers classifiers do: its user sets ``trainer.loss_is_scaled_for_ga = False``."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,  # type: ignore[override]
                **kwargs: Any) -> dict[str, torch.Tensor]:
        return super().forward(x, labels)


class _Logged(TrainerCallback):
    """The Trainer's logged per-step training ``loss``, and (``seen``) the losses ``monitor`` is handed."""

    def __init__(self, monitor_callback: Any) -> None:
        self.losses: list[float] = []
        self.seen: list[float] = []
        self.monitor_callback = monitor_callback

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        monitor = self.monitor_callback.monitor
        after_backward = monitor.after_backward

        def spy(loss: torch.Tensor) -> bool:
            self.seen.append(float(loss))
            return after_backward(loss)

        monitor.after_backward = spy

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


@pytest.mark.parametrize(("scaled", "cls"), [(False, _TakesLossKwargs), (None, _TakesLossKwargs), (True, LinearReg)])
def test_monitor_loss_follows_loss_is_scaled_for_ga(tmp_path: Path, scaled: bool | None, cls: type) -> None:
    """``Trainer.loss_is_scaled_for_ga = False`` (transformers 5.x: the model's loss is a per-batch mean although it
    is handed ``num_items_in_batch``) makes the Trainer divide each micro-batch's loss by the accumulation steps, so
    the step's loss is their mean; the callback summed them (it saw ``num_items_in_batch``): the monitor watched
    ``gradient_accumulation_steps`` x the loss the Trainer trains on and logs (and ``True`` on a model without loss
    kwargs: the Trainer sums, the callback took the mean). It now follows the Trainer's setting (``None``, the
    default, decides as before)."""
    callback = MonitorCallback()
    logged = _Logged(callback)
    trainer = hf_trainer(tmp_path, {**CPU_ARGS, "per_device_train_batch_size": 8, "logging_strategy": "steps",
                                    "logging_steps": 1}, model=cls(), data=linear_rows(64),
                         max_steps=4, gradient_accumulation_steps=2, callbacks=[callback, logged])
    trainer.loss_is_scaled_for_ga = scaled
    trainer.train()
    assert len(logged.seen) == len(logged.losses) == 4
    assert logged.seen == pytest.approx(logged.losses, rel=1e-3)
