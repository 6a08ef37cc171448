"""Pieces shared by the Hugging Face ``transformers.Trainer`` integration tests: the warning filters, the CPU
``TrainingArguments`` they all start from, tiny regression rows and models, an LR-recording callback, a Trainer
builder and bit-for-bit weight comparison.

Imported as ``from _hf_helpers import ...`` (``tests/`` is on ``sys.path``), and only after the test module's own
``transformers = transformers_or_skip()``: this module imports ``transformers`` at its top, so a machine without it
skips the test module at that guard, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from _helpers import transformers_or_skip

transformers_or_skip()
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

__all__ = [
    "CPU_ARGS",
    "HF_WARNINGS",
    "DropoutReg",
    "LRs",
    "LinearReg",
    "dropout_rows",
    "hf_args",
    "hf_trainer",
    "linear_rows",
    "same",
    "step_lrs",
    "weights",
]

#: The ``pytest.mark.filterwarnings`` of the Trainer tests: the CPU loader's pin_memory note, transformers'
#: deprecations, and the finder's own warnings about short or flat curves.
HF_WARNINGS = ("ignore:.*pin_memory.*", "ignore::FutureWarning",
               "ignore:.*(loss|curve|suggest|range|steps|flat).*:UserWarning")

#: The ``TrainingArguments`` every Trainer test starts from (CPU, no reporting, no saving, no logging, seed 0); each
#: test module adds its run length and schedule.
CPU_ARGS: dict[str, Any] = dict(per_device_train_batch_size=16, learning_rate=0.01, report_to=[], use_cpu=True,
                                disable_tqdm=True, save_strategy="no", logging_strategy="no", seed=0)


def dropout_rows(n: int = 192, *, labels: bool = True) -> list[dict[str, torch.Tensor]]:
    """``n`` rows ``{"x", "labels"}`` of a noisy 8-input linear task (``labels=False``: ``{"x"}`` alone), for
    :class:`DropoutReg`."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, generator=g)
    x = torch.randn(n, 8, generator=g)
    y = x @ w + 0.1 * torch.randn(n, generator=g)
    return [{"x": x[i], "labels": y[i]} if labels else {"x": x[i]} for i in range(n)]


def linear_rows(n: int = 192, *, labels: bool = True) -> list[dict[str, torch.Tensor]]:
    """``n`` rows ``{"x", "labels"}`` of a noiseless 8-input linear task (``labels=False``: ``{"x"}`` alone), for
    :class:`LinearReg`."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.randn(8, generator=g)
    return [{"x": x[i], "labels": y[i]} if labels else {"x": x[i]} for i in range(n)]


class DropoutReg(nn.Module):
    """A tiny regression MLP with dropout (so the RNG matters) returning ``{"loss", "logits"}`` (``{"logits"}``
    without labels); seeded, so every instance starts from the same weights."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self.net(x).squeeze(-1)
        if labels is None:
            return {"logits": out}
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


class LinearReg(nn.Module):
    """A seeded ``nn.Linear(8, 1)`` returning ``{"loss", "logits"}`` (``{"logits"}`` without labels)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self.net(x).squeeze(-1)
        return {"logits": out} if labels is None else {"loss": nn.functional.mse_loss(out, labels), "logits": out}


class LRs(TrainerCallback):
    """Records each optimizer step's LR of every group, read just before ``optimizer.step()``, and counts the steps
    begun (``calls``)."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []
        self.calls = 0

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
        self.lrs.append([float(g["lr"]) for g in optimizer.param_groups])

    def on_step_begin(self, *a: Any, **k: Any) -> None:
        self.calls += 1


def hf_args(tmp: Path, base: dict[str, Any], **kw: Any) -> TrainingArguments:
    """``TrainingArguments`` writing under ``tmp``: ``base``'s, with ``kw`` over them."""
    return TrainingArguments(output_dir=str(tmp), **{**base, **kw})


def hf_trainer(tmp: Path, base: dict[str, Any], *, model: nn.Module, data: Any, eval_dataset: Any = None,
               optimizers: Any = (None, None), cls: type = Trainer, callbacks: list[Any] | None = None,
               **kw: Any) -> Trainer:
    """A ``cls`` (a ``Trainer``) of ``model`` on ``data`` with :func:`hf_args` ``(tmp, base, **kw)``."""
    return cls(model=model, args=hf_args(tmp, base, **kw), train_dataset=data, eval_dataset=eval_dataset,
               optimizers=optimizers, callbacks=callbacks)


def step_lrs(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> list[float]:
    """The first group's LR at each of ``steps`` optimizer steps, stepping ``optimizer`` and ``scheduler`` in turn."""
    out = []
    for _ in range(steps):
        out.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    return out


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts (as :func:`weights` gives them) hold the same keys and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
