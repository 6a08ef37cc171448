"""Pieces shared by the PyTorch Lightning integration tests: quiet loggers, the warning filters, a tiny regression
task (and a stream of it without a length), a quiet CPU ``pl.Trainer``, and a mixin for a manually optimized module
(which the callbacks refuse).

A module's own ``training_step`` stays in each test module: the callbacks name it in their records and messages by
its qualified name (``"step_fn (_Net.training_step)"``), which a shared mixin would change.

Imported as ``from _lightning_helpers import ...`` (``tests/`` is on ``sys.path``). Nothing here imports
``lightning`` at import time (:func:`quiet_trainer` imports it when called), so each test module keeps its own guard
(``pytest.importorskip("lightning.pytorch")`` or a plain import) and skips exactly as before.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

__all__ = [
    "LIGHTNING_WARNINGS",
    "ManualOptimizationMixin",
    "Stream",
    "quiet_lightning_logs",
    "quiet_trainer",
    "regression_data",
    "regression_loader",
]

#: The ``pytest.mark.filterwarnings`` of the Lightning tests: Lightning's own UserWarnings, a pytree
#: FutureWarning, the few-workers hint and the LitLogger advert. A test module adds its own after these.
LIGHTNING_WARNINGS = ("ignore::UserWarning:lightning.*", "ignore:.*LeafSpec.*:FutureWarning",
                      "ignore:.*does not have many workers.*", "ignore:.*LitLogger.*")

#: The 4-input task's weights: ``y = x @ W + 0.1 * noise``.
_W = [[1.0], [-2.0], [0.5], [3.0]]


def quiet_lightning_logs() -> None:
    """Lightning's and Fabric's loggers at ERROR: no GPU/TPU availability lines, no "fit stopped" notes."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)


def regression_data(n: int = 96, seed: int = 0) -> torch.utils.data.TensorDataset:
    """``n`` pairs ``(x, x @ W + 0.1 * noise)`` of 4 inputs, drawn from a generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor(_W) + 0.1 * torch.randn(n, 1, generator=g)
    return torch.utils.data.TensorDataset(x, y)


def regression_loader(n: int = 96, seed: int = 0, *, shuffle: bool = False,
                      batch_size: int = 8) -> torch.utils.data.DataLoader:
    """:func:`regression_data` ``(n, seed)`` in batches of ``batch_size``."""
    return torch.utils.data.DataLoader(regression_data(n, seed), batch_size=batch_size, shuffle=shuffle)


class Stream(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """12 batches of 8 pairs ``(x, x.sum(1))`` of 4 inputs (seed 0), and no length: a loader of it
    (``batch_size=None``) cannot be counted ahead."""

    def __iter__(self) -> Any:
        g = torch.Generator().manual_seed(0)
        for _ in range(12):
            x = torch.randn(8, 4, generator=g)
            yield x, x.sum(1, keepdim=True)


def quiet_trainer(callbacks: list[Any], **kwargs: Any) -> Any:
    """A CPU ``pl.Trainer`` with ``callbacks`` and ``kwargs`` (the run length among them): no logger, progress bar,
    checkpoints, model summary or sanity validation."""
    import lightning.pytorch as pl

    return pl.Trainer(callbacks=callbacks, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                      enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", **kwargs)


class ManualOptimizationMixin:
    """A ``LightningModule`` mixin (put it first in the bases): ``automatic_optimization`` off, and a
    ``training_step`` that steps the one optimizer by hand on the next base's loss."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt = self.optimizers()  # type: ignore[attr-defined]
        opt.zero_grad()
        self.manual_backward(super().training_step(batch, batch_idx))  # type: ignore[attr-defined,misc]
        opt.step()

