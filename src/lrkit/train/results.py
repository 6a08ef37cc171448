"""What :func:`lrkit.train` returns: the trained model and everything a script needs without parsing files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lrkit.train.run import _plain

__all__ = ["TrainResults"]


@dataclass(repr=False)
class TrainResults:
    """The outcome of :func:`lrkit.train`.

    Attributes:
        model: the trained model (weights of the *last* epoch; ``best.pt`` holds the best).
        lr0: the peak LR used (for the group with ``lr_scale`` 1).
        lr0_source: ``"user"`` (an explicit ``lr0``), ``"auto"`` (``lr0="auto"``; see ``auto``) or ``"default"``
            (no ``lr0`` given: the optimizer family's default, 0.01 for SGD/RMSProp, 0.001 for Adam-family).
        auto: the ``lr0="auto"`` record (``AutoLR``: ``lr``, ``finder``, ``trials``, ``extra_steps``,
            ``extra_fraction``, ``reason``), else ``None``. After a resume, the same record read back from the
            checkpoint (``AutoLR.from_dict``; ``finder`` is ``None`` there: the range test's curve is not saved).
        optimizer: the optimizer used (``"SGD"``, ``"AdamW"``, ...) and ``optimizer_reason``, why.
        task: ``"classification"``, ``"regression"``, ``"lm"`` or ``None`` (a custom ``step_fn``).
        metric_name: ``"accuracy"``, ``"rmse"``, ``"perplexity"``, or ``"val_loss"`` when no metric applies;
            ``metric_mode`` says whether higher (``"max"``) or lower (``"min"``) is better.
        history: one dict per epoch, the rows of ``results.csv``.
        best_epoch: the epoch (1-based) with the best validation metric (strictly better than every earlier one:
            of equal epochs the first; an epoch whose metric is NaN is never better, yet epoch 1 holds the title until
            an epoch scores a finite one). ``best.pt`` holds its weights.
        run_dir: the run directory (``args.yaml``, ``results.csv``, ``last.pt``, ``best.pt``, ...).
        events: training-health events from the monitor, as dicts (step, epoch, check, action, ...).
        lr_scale: the monitor's LR multiplier when the run ended: the product of its back-offs (``backoff`` per
            rollback after an overshoot, ``val_backoff`` per ``val_rising``), applied on top of the schedule; 1.0
            when it backed nothing off (or ran without a monitor).
        stopped_early: ``True`` when ``patience`` ran out (or the monitor stopped the run); ``stop_reason`` says
            which, in words (``""`` for a run that ran its epochs).
        accumulate, weight_decay: gradient accumulation steps and the weight decay after ``nbs`` scaling.
        steps_per_epoch, total_steps: optimizer steps per epoch and in the whole (planned) run.
        seconds: the wall time of this ``lrkit.train`` call: data loading, setup, ``lr0="auto"``'s search and the
            epochs it ran (with their checkpoints). A resumed run's earlier epochs are not in it; ``results.csv``'s
            ``time`` counts every epoch's ``epoch_time`` (training and validation), across resumes.

    Example:
        >>> import tempfile
        >>> import lrkit
        >>> r = lrkit.train(data="iris", model="linear", epochs=2, lr0=0.05, project=tempfile.mkdtemp(),
        ...                 verbose=False, plots=False)
        >>> r.lr0, r.lr0_source, len(r.history), (r.run_dir / "last.pt").exists()
        (0.05, 'user', 2, True)
    """

    model: torch.nn.Module
    lr0: float
    lr0_source: str
    auto: Any
    optimizer: str
    optimizer_reason: str
    task: str | None
    metric_name: str
    metric_mode: str
    history: list[dict[str, Any]]
    best_epoch: int
    run_dir: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    stop_reason: str = ""
    accumulate: int = 1
    weight_decay: float = 0.0
    steps_per_epoch: int = 0
    total_steps: int = 0
    seconds: float = 0.0
    lr_scale: float = 1.0

    def __repr__(self) -> str:
        """One line: where the run is, its LR and how it ended, not the model and the history (attributes hold them).

        >>> import tempfile
        >>> import lrkit
        >>> r = lrkit.train(data="iris", model="linear", epochs=2, lr0=0.05, project=tempfile.mkdtemp(),
        ...                 verbose=False, plots=False)
        >>> repr(r).split(", ")[1:5]
        ['lr0=0.05', "lr0_source='user'", "optimizer='AdamW'", 'epochs_run=2']
        """
        metric = self.metric_name.removeprefix("val_")
        parts = [f"run_dir={str(self.run_dir)!r}", f"lr0={self.lr0:.4g}", f"lr0_source={self.lr0_source!r}",
                 f"optimizer={self.optimizer!r}", f"epochs_run={self.epochs_run}", f"best_epoch={self.best_epoch}",
                 f"best_val_loss={self.best_val_loss:.4g}"]
        if metric != "loss":
            parts.append(f"best_{metric}={self.best_metric:.4g}")
        parts.append(f"events={len(self.events)}")
        if self.stopped_early:
            parts += ["stopped_early=True"] + ([f"stop_reason={self.stop_reason!r}"] if self.stop_reason else [])
        return f"TrainResults({', '.join(parts)})"

    # ------------------------------------------------------------------------------------------ shortcuts
    @property
    def epochs_run(self) -> int:
        """Epochs finished (including those before a resume)."""
        return len(self.history)

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's row (``{}`` if none finished)."""
        return dict(self.history[-1]) if self.history else {}

    @property
    def best(self) -> dict[str, Any]:
        """The best epoch's row (``{}`` if none finished)."""
        for row in self.history:
            if row.get("epoch") == self.best_epoch:
                return dict(row)
        return {}

    @property
    def events_by_check(self) -> dict[str, int]:
        """How many monitor events each check raised, most frequent first (ties in the order they first came).

        >>> r = TrainResults(model=torch.nn.Linear(1, 1), lr0=0.1, lr0_source="user", auto=None, optimizer="SGD",
        ...                  optimizer_reason="", task=None, metric_name="val_loss", metric_mode="min", history=[],
        ...                  best_epoch=0, run_dir=Path("runs/train"),
        ...                  events=[{"check": "loss_spike"}, {"check": "val_rising"}, {"check": "loss_spike"}])
        >>> r.events_by_check
        {'loss_spike': 2, 'val_rising': 1}
        """
        counts: dict[str, int] = {}
        for e in self.events:
            counts[str(e.get("check"))] = counts.get(str(e.get("check")), 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    @property
    def final_val_loss(self) -> float:
        """Validation loss after the last epoch."""
        return float(self.final.get("val_loss", math.nan))

    @property
    def best_val_loss(self) -> float:
        """The lowest validation loss of any epoch."""
        losses = [float(r["val_loss"]) for r in self.history if math.isfinite(float(r.get("val_loss", math.nan)))]
        return min(losses) if losses else math.nan

    @property
    def final_metric(self) -> float:
        """The validation metric (``metric_name``) after the last epoch."""
        return float(self.final.get(f"val_{self.metric_name.removeprefix('val_')}", math.nan))

    @property
    def best_metric(self) -> float:
        """The validation metric at ``best_epoch``."""
        return float(self.best.get(f"val_{self.metric_name.removeprefix('val_')}", math.nan))

    @property
    def last_checkpoint(self) -> Path:
        """``run_dir / "last.pt"``."""
        return self.run_dir / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        """``run_dir / "best.pt"``; ``lrkit.load_run(r.run_dir)`` rebuilds its model, ready for raw inputs."""
        return self.run_dir / "best.pt"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no model), strict JSON: ``json.dumps(r.to_dict(), allow_nan=False)`` works. A NaN or
        inf (the losses of a diverged epoch, a monitor event's values) is ``None`` here; the attributes keep them."""
        auto = self.auto.to_dict() if hasattr(self.auto, "to_dict") else self.auto
        return _plain({
            "run_dir": str(self.run_dir), "lr0": self.lr0, "lr0_source": self.lr0_source, "auto": auto,
            "optimizer": self.optimizer, "optimizer_reason": self.optimizer_reason, "task": self.task,
            "metric_name": self.metric_name, "metric_mode": self.metric_mode, "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch, "final": self.final, "best": self.best, "events": self.events,
            "stopped_early": self.stopped_early, "stop_reason": self.stop_reason, "accumulate": self.accumulate,
            "weight_decay": self.weight_decay, "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps, "seconds": self.seconds, "lr_scale": self.lr_scale,
        })
