"""Per-task defaults for :func:`lrkit.train`: the loss, the validation metric, and which way is better.

================ ======================= ===================================== ======
task             default loss            metric (validation)                   better
================ ======================= ===================================== ======
classification   cross-entropy           accuracy                              higher
regression       mean squared error      RMSE, in the target's own units       lower
lm               token cross-entropy     perplexity = exp(mean token CE)       lower
(``step_fn``)    ``step_fn(model, b)``   the validation loss itself            lower
================ ======================= ===================================== ======

>>> import torch
>>> spec = task_spec("classification")
>>> float(spec.loss(torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0]))) > 0, spec.metric_name
(True, 'accuracy')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lrkit._step import class_targets, described_as, long_targets

__all__ = ["TaskSpec", "class_targets", "task_spec"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _match(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if output.shape != target.shape and output.numel() == target.numel():
        return output.reshape(target.shape)
    return output


def _same_shape(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``output`` in the target's shape (:func:`_match`), or a ``ValueError`` where the two hold different numbers of
    values: the squared error would only broadcast them — model outputs ``(N, 1)`` against targets ``(N, 2)`` trained
    the one output toward the mean of the two targets, with no more than torch's warning; ``(N, 2)`` against ``(N,)``
    (class indices stored as floats) failed with torch's words."""
    out = _match(output, target)
    if out.shape == target.shape:
        return out
    per_out, per_y = (math.prod(t.shape[1:]) if t.ndim else 1 for t in (output, target))
    classes = (" Class indices stored as floats? Pass task='classification' (or store them as integers)."
               if output.ndim == target.ndim + 1 and target.ndim and output.shape[-1] > 1 else "")
    raise ValueError(
        f"the model's output of shape {tuple(output.shape)} ({per_out} value(s) per sample) does not match the "
        f"regression targets of shape {tuple(target.shape)} ({per_y} per sample), and the mean squared error would "
        f"only broadcast them; make the model output {per_y} value(s) per sample.{classes}"
    )


@described_as("mean squared error (the regression task's loss)")  # FinderResult.loss's words for it
def regression_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (``output`` reshaped to the target's shape when only the shape differs; outputs that hold
    another number of values than the targets are a ``ValueError``, never a broadcast).

    >>> try:
    ...     regression_loss(torch.zeros(4, 1), torch.zeros(4, 2))
    ... except ValueError as e:
    ...     print(str(e)[:73])
    the model's output of shape (4, 1) (1 value(s) per sample) does not match
    """
    return F.mse_loss(_same_shape(output, target).float(), target.float())


@described_as("token cross-entropy (the lm task's loss)")
def lm_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: ``output`` ``(B, T, V)`` logits, ``target`` ``(B, T)`` token ids (any integer dtype).

    >>> round(float(lm_loss(torch.zeros(1, 2, 4), torch.tensor([[1, 3]], dtype=torch.int32))), 4)  # log(4)
    1.3863
    """
    return F.cross_entropy(output.reshape(-1, output.shape[-1]).float(), long_targets(target).reshape(-1))


@described_as("cross-entropy (the classification task's loss)")
def classification_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over class logits ``(B, C)`` and integer targets ``(B,)`` (or a column ``(B, 1)``)."""
    target = class_targets(output, target)  # float class indices (1.0, 0.0) as int64
    if target.is_floating_point() and target.ndim == output.ndim - 1:  # F.cross_entropy: "expected ... Long"
        bad = target[~(torch.isfinite(target) & (target == target.round()))].reshape(-1)
        raise ValueError(f"the classification targets are floats of shape {tuple(target.shape)}, read as class "
                         f"indices, but they hold {float(bad[0]) if bad.numel() else 'none'!r}, not a whole number; "
                         "class targets are 0 .. number of classes - 1 (for float targets to regress, pass "
                         "task='regression')")
    return F.cross_entropy(output.float(), target)


@dataclass(frozen=True)
class TaskSpec:
    """A task's default loss, and its metric as ``metric_sums(output, target) -> (sum, count)`` plus a finisher."""

    task: str | None
    loss: LossFn | None
    metric_name: str
    mode: str  # "max" or "min"
    metric_sums: Callable[[torch.Tensor, torch.Tensor], tuple[float, int]] | None
    finish: Callable[[float, float], float]  # (sum / count, target_scale) -> metric

    def better(self, a: float, b: float) -> bool:
        """``True`` when metric ``a`` is strictly better than ``b`` (a non-finite ``a`` never is)."""
        if not math.isfinite(a):
            return False
        if not math.isfinite(b):
            return True
        return a > b if self.mode == "max" else a < b


def _acc_sums(output: torch.Tensor, target: torch.Tensor) -> tuple[float, int]:
    target = class_targets(output, target)  # (B, 1) would broadcast against (B,) predictions into (B, B)
    # argmax of NaN logits is class 0: a diverged model would score the share of class 0. Non-finite is never right.
    right = (output.argmax(dim=-1) == target) & torch.isfinite(output).all(dim=-1)
    return float(right.sum()), int(target.numel())


def _sq_sums(output: torch.Tensor, target: torch.Tensor) -> tuple[float, int]:
    diff = _same_shape(output, target).float() - target.float()
    return float((diff * diff).sum()), int(target.numel())


def _ce_sums(output: torch.Tensor, target: torch.Tensor) -> tuple[float, int]:
    logits = output.reshape(-1, output.shape[-1]).float()
    ce = F.cross_entropy(logits, long_targets(target).reshape(-1), reduction="sum")
    return float(ce), int(target.numel())


def _perplexity(mean_ce: float, _: float) -> float:
    """``exp(mean_ce)``, ``inf`` where that overflows a float (a diverged run: a mean CE above ~709.78, or ``inf``)
    rather than a finite cap that ``exp(val_loss)`` is not; NaN stays NaN.

    >>> _perplexity(800.0, 1.0), round(_perplexity(1.0, 1.0), 4)
    (inf, 2.7183)
    """
    try:
        return math.exp(mean_ce)
    except OverflowError:
        return math.inf


def task_spec(task: str | None) -> TaskSpec:
    """The defaults for ``task`` (``None``: a custom ``step_fn``; the metric is the validation loss)."""
    if task == "classification":
        return TaskSpec(task, classification_loss, "accuracy", "max", _acc_sums, lambda m, _: m)
    if task == "regression":
        return TaskSpec(task, regression_loss, "rmse", "min", _sq_sums, lambda m, s: math.sqrt(max(m, 0.0)) * s)
    if task == "lm":
        return TaskSpec(task, lm_loss, "perplexity", "min", _ce_sums, _perplexity)
    return TaskSpec(None, None, "val_loss", "min", None, lambda m, _: m)
