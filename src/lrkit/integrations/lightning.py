"""``MonitorCallback``: :class:`lrkit.Monitor` as a PyTorch Lightning callback.

Lightning runs the training loop, so a Lightning user cannot place the monitor's calls by hand. The callback
places them where the monitor's loop contract wants them::

    import lightning.pytorch as pl
    from lrkit.integrations.lightning import MonitorCallback

    callback = MonitorCallback(on_divergence="rollback")        # any lrkit.Monitor keyword
    trainer = pl.Trainer(max_epochs=10, callbacks=[callback])
    trainer.fit(model, train_loader, val_loader)                # training_step returns the loss
    callback.monitor.summary()                                  # {"steps", "events", "rollbacks", "lr_scale", ...}

Where each call goes (automatic optimization, one optimizer):

- ``on_before_backward``: the loss of each micro-batch is kept (Lightning hands it divided by
  ``accumulate_grad_batches`` and, under a ``GradScaler``, scaled; both are undone).
- ``on_before_optimizer_step`` (gradients complete, unscaled by Lightning's AMP plugin):
  ``monitor.after_backward(loss)`` with the step's loss, the mean over its micro-batches — once per optimizer step.
- ``on_train_batch_end`` of a batch whose optimizer stepped (after Lightning stepped the step-interval scheduler):
  ``monitor.after_step()``; a micro-batch that did not step is passed over. A stop sets ``trainer.should_stop``.
- ``on_validation_end`` (not during the sanity check): ``monitor.after_validation(callback_metrics[monitor_metric])``.
- ``state_dict`` / ``load_state_dict``: the monitor's state (with its snapshots), saved in Lightning's checkpoints
  (plain tensors and containers: ``torch.load(weights_only=True)`` reads them) and continued by
  ``trainer.fit(..., ckpt_path=...)``.

``FindLRCallback`` runs :func:`lrkit.find_lr` inside ``trainer.fit`` (Lightning's ``LearningRateFinder``, with
lrkit's test, suggestion and exact restore) and sets the fit's LR to the suggestion::

    from lrkit.integrations.lightning import FindLRCallback

    finder = FindLRCallback(num_steps=100)                      # any lrkit.find_lr keyword it does not supply
    trainer = pl.Trainer(max_epochs=10, callbacks=[finder])
    trainer.fit(model, train_loader)                            # the fit trains at finder.lr
    finder.result.suggestion, finder.lr

``ChooseLRCallback`` is ``lr0="auto"`` inside ``trainer.fit`` (:func:`lrkit.train.auto.choose_lr0`: the range test,
then short trials of the fit's own schedule, replayed compressed from a record of its schedulers, scored on its
validation loader) and sets the fit's peak LR to the choice::

    from lrkit.integrations.lightning import ChooseLRCallback

    chooser = ChooseLRCallback(budget=0.3, log=print)
    trainer = pl.Trainer(max_epochs=10, callbacks=[chooser])
    trainer.fit(model, train_loader, val_loader)                # the fit trains at chooser.lr
    chooser.auto.reason, chooser.auto.trials

The ``lightning.pytorch.Callback`` subclasses are created when first looked up, so importing lrkit never imports
Lightning; without Lightning that lookup raises an ``ImportError`` saying ``pip install lightning``.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import numbers
import os
import re
import tempfile
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from lrkit._state import RNGState, check_snapshot_device
from lrkit._utils import MissingExtraError, atomic_write_text, check_positive
from lrkit.integrations._common import (
    Replay,
    check_finder_keywords,
    check_monitor_kwargs,
    group_values,
    lazy_class,
    metric_driven,
    peaks_first,
    put_group_values,
    record_schedule,
    run_peak,
    schedule_peak,
)

# created on first lookup (module __getattr__), so lightning loads lazily
__all__ = ["ChooseLRCallback", "FindLRCallback", "MonitorCallback"]  # noqa: F822

#: Monitor arguments the callback supplies itself: the LightningModule, its optimizer and scheduler, Lightning's scaler.
_SUPPLIED = {
    "model": "the LightningModule being fitted",
    "optimizer": "trainer.optimizers[0]",
    "scheduler": "the scheduler of trainer.lr_scheduler_configs",
    "grad_scaler": "the GradScaler of Lightning's precision plugin (precision='16-mixed')",
}

def _scheduler_configs(trainer: Any, optimizer: torch.optim.Optimizer) -> tuple[Any, list[Any], str]:
    """``optimizer``'s scheduler configs in ``trainer.lr_scheduler_configs``: the chosen one (its only one, else its
    step-interval one, which writes the LR at every step; ``None`` without any), the others, and the others named
    for a warning."""
    configs = [c for c in trainer.lr_scheduler_configs if getattr(c.scheduler, "optimizer", None) is optimizer]
    if not configs:
        return None, [], ""
    chosen = next((c for c in configs if c.interval == "step" and not c.reduce_on_plateau), configs[0])
    others = [c for c in configs if c is not chosen]
    names = ", ".join(f"{type(c.scheduler).__name__} (interval={c.interval!r})" for c in others)
    return chosen, others, names


def _pick_scheduler(trainer: Any, optimizer: torch.optim.Optimizer) -> Any:
    """The scheduler to pass as ``Monitor(scheduler=...)``: the one Lightning steps for ``optimizer``.

    One scheduler, whatever its interval (``"step"``, ``"epoch"``, ``ReduceLROnPlateau``): it is the scheduler the
    loop steps, so a back-off must scale what it computes the LR from and a rollback must restore its state. With
    several, the step-interval one (it writes the LR at every step); the others are named in a warning.
    """
    chosen, others, names = _scheduler_configs(trainer, optimizer)
    if chosen is None:
        return None
    if others:
        configs = [chosen, *others]
        warnings.warn(
            f"MonitorCallback: the optimizer has {len(configs)} LR schedulers; the monitor is given "
            f"{type(chosen.scheduler).__name__} (interval={chosen.interval!r}). A rollback does not restore the state "
            f"of {names}, and a back-off does not scale the LRs it computes from: combine them into one scheduler "
            f"(e.g. torch.optim.lr_scheduler.SequentialLR) to have them handled too",
            UserWarning,
            stacklevel=2,
        )
    return chosen.scheduler


def _lightning(who: str) -> Any:
    """The ``lightning.pytorch`` module, or a :class:`MissingExtraError` naming ``who`` and the pip install."""
    try:
        import lightning.pytorch
    except ImportError as e:
        raise MissingExtraError(
            f"lrkit.integrations.lightning.{who} needs PyTorch Lightning (lightning>=2.1), which is not "
            "installed. Install it with: pip install lightning"
        ) from e
    return lightning.pytorch


def _build() -> type:
    Callback = _lightning("MonitorCallback").Callback

    from lrkit.monitor import Monitor

    class MonitorCallback(Callback):  # type: ignore[misc,valid-type]
        """:class:`lrkit.Monitor` as a PyTorch Lightning callback: watch every optimizer step and act.

        Args:
            monitor_metric: the key of ``trainer.callback_metrics`` passed to ``monitor.after_validation`` at the end
                of each validation (what ``self.log("val_loss", ...)`` in ``validation_step`` logs); ``None``: never
                (the ``val_rising`` check then never fires). A missing key is warned about once, naming the keys
                there are.
            log_metrics: at each training epoch's end, log ``lrkit/events``, ``lrkit/rollbacks`` and
                ``lrkit/lr_scale`` with ``pl_module.log`` (three numbers per epoch).
            save_snapshots: save the monitor's snapshots (a copy of the model's parameters and buffers and the
                optimizer and scheduler state, the best-validation one too once there is one) in Lightning's
                checkpoints, so a resumed fit rolls back where the uninterrupted one would; ``False`` keeps the
                checkpoints smaller and the resumed monitor takes a fresh snapshot at its next healthy step.
            **monitor_kwargs: keywords of :class:`lrkit.Monitor` (``on_divergence="rollback"``, ``backoff=0.3``,
                ``grad_every``, ``snapshot_device``, ...), checked now. ``model``, ``optimizer``, ``scheduler`` and
                ``grad_scaler`` come from Lightning and are refused. Under more than one process
                (``trainer.world_size > 1``) ``sync_loss`` defaults to ``True``: every rank calls the monitor at
                every step, so the monitor all-reduces the loss and every rank takes the same decision.

        The monitor is built at ``on_train_start`` of every ``fit`` (after Lightning restored a checkpoint) and is
        ``.monitor`` afterwards (``None`` before). Automatic optimization with one optimizer only: manual
        optimization (``automatic_optimization = False``) is refused at ``on_fit_start`` — build
        ``lrkit.Monitor(self, opt, sched)`` in your LightningModule and call it in ``training_step``.

        The optimizer's scheduler from ``configure_optimizers`` is the monitor's ``scheduler=``, whatever its
        interval: a per-step one is stepped by Lightning before ``after_step`` (so a rollback restores a consistent
        model, optimizer and scheduler), a per-epoch one and ``ReduceLROnPlateau`` are the scheduler the loop steps,
        whose base LRs (``min_lrs``) a back-off must scale; a rollback returns the scheduler's clock to the
        snapshot's, as in a hand loop. Under ``precision="16-mixed"`` with a ``GradScaler`` the scaler is the
        monitor's ``grad_scaler=`` (Lightning unscales the gradients before ``on_before_optimizer_step``).
        """

        def __init__(self, *, monitor_metric: str | None = "val_loss", log_metrics: bool = True,
                     save_snapshots: bool = True, **monitor_kwargs: Any) -> None:
            super().__init__()
            if monitor_metric is not None and (not isinstance(monitor_metric, str) or not monitor_metric.strip()):
                # ("" named no metric: every validation was then warned about as missing, at run time)
                raise ValueError(
                    f"monitor_metric={monitor_metric!r} must be the name of a logged metric (a non-empty str, e.g. "
                    "'val_loss') or None"
                )
            for key, value in (("log_metrics", log_metrics), ("save_snapshots", save_snapshots)):
                if not isinstance(value, bool):
                    raise ValueError(f"{key}={value!r} must be True or False")
            check_monitor_kwargs(monitor_kwargs, _SUPPLIED, ("monitor_metric", "log_metrics", "save_snapshots"))
            self.monitor_metric = monitor_metric
            self.log_metrics = log_metrics
            self.save_snapshots = save_snapshots
            self.monitor_kwargs = dict(monitor_kwargs)
            #: The :class:`lrkit.Monitor` of the current (or last) fit; ``None`` before the first ``on_train_start``.
            self.monitor: Monitor | None = None
            self._losses: list[torch.Tensor] = []  # this optimizer step's micro-batch losses, as training_step gave
            self._stepping = False  # after_backward called, after_step due at this batch's end
            self._backward = False  # this batch's training_step gave a loss (Lightning ran backward)
            self._loaded: dict[str, Any] | None = None  # a checkpoint's monitor state, until the monitor exists
            self._ignore_load = False  # the checkpoint being restored is for validate/test/predict, not fit
            self._warned_metric = False
            self._scaler: Any = None

        # ---------------------------------------------------------------- set-up
        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            """Refuse what the callback cannot monitor: several optimizers, manual optimization."""
            optimizers = list(trainer.optimizers)
            if len(optimizers) != 1:
                names = ", ".join(type(o).__name__ for o in optimizers) or "none"
                raise ValueError(
                    f"MonitorCallback monitors one optimizer, but configure_optimizers gave {len(optimizers)} "
                    f"({names}). With several optimizers (manual optimization), build one lrkit.Monitor per "
                    f"optimizer in your LightningModule (Monitor(self.generator, opt_g), ...) and call "
                    f"after_backward(loss) / after_step() around each opt.step() in training_step"
                )
            if not pl_module.automatic_optimization:
                raise ValueError(
                    f"MonitorCallback needs automatic optimization, but {type(pl_module).__name__}"
                    f".automatic_optimization is False: Lightning cannot tell the callback where your training_step "
                    f"steps. Use lrkit.Monitor by hand in training_step: build it in on_train_start "
                    f"(self.monitor = lrkit.Monitor(self, self.optimizers().optimizer, scheduler)), and call "
                    f"self.monitor.after_backward(loss) after self.manual_backward(loss), opt.step(), then "
                    f"self.monitor.after_step()"
                )

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            """Build the monitor over the module, its optimizer and scheduler (checkpoint state restored)."""
            optimizer = trainer.optimizers[0]
            scaler = getattr(trainer.precision_plugin, "scaler", None)
            self._scaler = scaler if scaler is not None and scaler.is_enabled() else None
            kwargs = dict(self.monitor_kwargs)
            if "sync_loss" not in kwargs and trainer.world_size > 1:
                kwargs["sync_loss"] = True
            self.monitor = Monitor(pl_module, optimizer, _pick_scheduler(trainer, optimizer),
                                   grad_scaler=self._scaler, **kwargs)
            self._losses = []
            self._stepping = False
            self._warned_metric = False
            if self._loaded is not None:
                state, self._loaded = self._loaded, None
                self.monitor.load_state_dict(state)

        # ---------------------------------------------------------------- every step
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            """Note that this batch has not run backward yet; forget losses whose gradients Lightning zeroes now.

            Lightning zeroes the gradients at the first micro-batch of each accumulation window, so a loss kept
            from before (a batch whose closure ran but whose ``optimizer_step`` override took no step) is not part
            of the next step.
            """
            self._backward = False
            if batch_idx % trainer.accumulate_grad_batches == 0:
                self._losses = []

        def on_before_backward(self, trainer: Any, pl_module: Any, loss: torch.Tensor) -> None:
            """Keep this micro-batch's loss as ``training_step`` returned it (undo Lightning's division and scaling)."""
            self._backward = True
            if self.monitor is None:
                return
            loss = loss.detach()
            if self._scaler is not None:
                loss = loss / self._scaler.get_scale()
            accumulate = trainer.accumulate_grad_batches
            self._losses.append(loss * accumulate if accumulate != 1 else loss)

        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            """``monitor.after_backward`` with the step's loss (the mean over its micro-batches).

            Once per optimizer step: Lightning runs this hook after every evaluation of the step's closure, and a
            closure optimizer (``LBFGS``) evaluates it several times per step. The first evaluation's loss and
            gradients are the step's (a hand loop's ``loss = closure()`` before ``optimizer.step(closure)``); a
            skipped or rolled-back step is undone at ``after_step`` whatever the later evaluations did.
            """
            if self._stepping:  # a later closure evaluation within the same optimizer step (LBFGS)
                self._losses = []
                return
            if self.monitor is None or not self._losses:  # training_step returned None: no loss, no backward
                return
            if self._scaler is not None and not self._backward:
                # Lightning's AMP plugin takes no step (no unscale_, scaler.step or update) when the window's last
                # training_step returned None; the window's gradients are zeroed at the next one: nothing to monitor
                self._losses = []
                return
            losses, self._losses = self._losses, []
            loss = losses[0] if len(losses) == 1 else torch.stack([x.float() for x in losses]).mean()
            self.monitor.after_backward(loss)
            self._stepping = True

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            """``monitor.after_step`` on a batch whose optimizer stepped (not on accumulating micro-batches)."""
            if not self._stepping:
                return
            self._stepping = False
            if self.monitor is not None and self.monitor.after_step():
                trainer.should_stop = True

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            """``monitor.after_validation(trainer.callback_metrics[monitor_metric])`` during ``fit``."""
            if (self.monitor is None or self.monitor_metric is None or trainer.sanity_checking
                    or trainer.state.fn != "fit"):
                return
            value = trainer.callback_metrics.get(self.monitor_metric)
            if value is None:
                if not self._warned_metric:
                    self._warned_metric = True
                    there = ", ".join(repr(k) for k in sorted(trainer.callback_metrics)) or "none"
                    warnings.warn(
                        f"MonitorCallback: monitor_metric={self.monitor_metric!r} is not among the logged metrics "
                        f"(trainer.callback_metrics: {there}), so the monitor gets no validation loss. Log it in "
                        f"validation_step (self.log({self.monitor_metric!r}, loss)) or pass monitor_metric= one of "
                        f"those (None: no validation checks)",
                        UserWarning,
                        stacklevel=2,
                    )
                return
            if self.monitor.after_validation(value):
                trainer.should_stop = True

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            """Log the monitor's event count, rollbacks and cumulative back-off (``log_metrics=True``)."""
            if self.monitor is None or not self.log_metrics:
                return
            pl_module.log_dict(
                {"lrkit/events": float(len(self.monitor.events)), "lrkit/rollbacks": float(self.monitor.rollbacks),
                 "lrkit/lr_scale": float(self.monitor.lr_scale)},
                on_step=False, on_epoch=True,
            )

        # ---------------------------------------------------------------- checkpoints
        def state_dict(self) -> dict[str, Any]:
            """The monitor's state for Lightning's checkpoint (plain tensors and containers)."""
            if self._loaded is not None:  # loaded from a checkpoint, not yet given to a monitor
                return {"monitor": self._loaded}
            if self.monitor is None:
                return {}
            return {"monitor": self.monitor.state_dict(snapshot=self.save_snapshots)}

        def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            """Note whether Lightning restores this checkpoint for a ``fit`` (just before ``load_state_dict``)."""
            self._ignore_load = trainer.state.fn != "fit"

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            """Forget the note (a checkpoint without this callback's state gets no ``load_state_dict`` call)."""
            self._ignore_load = False

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            """Keep a checkpoint's monitor state; it is loaded into the monitor built at ``on_train_start``.

            Lightning restores callbacks for ``validate``/``test``/``predict(ckpt_path=...)`` too: that state is not
            kept, so a later ``fit`` without ``ckpt_path`` starts a fresh monitor (not the checkpoint's step count,
            back-off and snapshots over a freshly configured optimizer).
            """
            ignore, self._ignore_load = self._ignore_load, False
            if ignore:
                return
            state = state_dict.get("monitor")
            if state is not None:  # Lightning restores callbacks before fit's on_train_start builds the monitor
                self._loaded = state

    MonitorCallback.__module__ = __name__
    MonitorCallback.__qualname__ = "MonitorCallback"
    return MonitorCallback


# ==================================================================== FindLRCallback
#: find_lr arguments the callback supplies itself, and where each comes from.
_FINDER_SUPPLIED = {
    "model": "the LightningModule being fitted",
    "optimizer": "trainer.optimizers[0], the optimizer configure_optimizers built",
    "train_loader": "the fit's train dataloader (trainer.fit(model, train_loader), the datamodule's or the module's "
                    "train_dataloader())",
    "step_fn": "a step_fn calling the module's training_step(batch, batch_idx)",
    "loss_fn": "the module's training_step, which computes the loss",
    "accumulation_steps": "Trainer(accumulate_grad_batches=...)",
    "scaler": "the GradScaler of Lightning's precision plugin (precision='16-mixed')",
    "amp": "Trainer(precision=...): '16-mixed' is amp='fp16', 'bf16-mixed' amp='bf16'",
    "max_grad_norm": "Trainer(gradient_clip_val=...) (gradient_clip_algorithm='norm')",
    "device": "the strategy's device, where Lightning put the module",
}


_FROM_THE_FIT = ("the callback tests on the fit's own train dataloader: pass it to trainer.fit(model, "
                 "train_loader), or trainer.fit(model, datamodule=dm)")
_FROM_PRECISION = ("the callback takes autocast and the GradScaler from the fit: Trainer(precision='16-mixed') or "
                   "Trainer(precision='bf16-mixed')")

#: A peer's keyword whose ``find_lr`` advice (:data:`lrkit.finder.range_test.PEER_KEYWORDS`) does not hold for the
#: callbacks -> (advice for ``FindLRCallback``, advice for ``ChooseLRCallback``); the other peer keywords (renamed
#: ones such as Lightning's ``min_lr`` -> ``start_lr``) are advised as ``find_lr`` advises them.
_CALLBACK_PEER_ADVICE: dict[str, tuple[str, str]] = {
    "update_attr": ("the callback always sets the fit's LR to its suggestion: attr_name= names the attribute "
                    "configure_optimizers reads (None, the default: 'lr' or 'learning_rate' on the module or its "
                    "hparams), attr_name=False scales the optimizer Lightning built instead",) * 2,
    "train_dataloaders": (_FROM_THE_FIT,) * 2,
    "dataloaders": (_FROM_THE_FIT,) * 2,
    "datamodule": (_FROM_THE_FIT,) * 2,
    "val_dataloaders": (
        "FindLRCallback reads the training loss only; ChooseLRCallback scores short trials at the suggestion on the "
        "fit's validation loader (trainer.fit(model, train_loader, val_loader))",
        "the trials are scored on the fit's own validation loader: pass it to trainer.fit(model, train_loader, "
        "val_loader), or give the datamodule a val_dataloader()"),
    "criterion": ("the callback's loss is the module's training_step: leave it out",) * 2,
    "grad_scaler": (_FROM_PRECISION,) * 2,
    "amp_backend": (_FROM_PRECISION,) * 2,
    "amp_config": (_FROM_PRECISION,) * 2,
    "suggest_funcs": ("pass rule='valley' (fastai's default) to train at that rule's suggestion; after the fit, "
                      "callback.result.suggestions() gives every rule's (minimum, steepest for fastai's steep, "
                      "valley, robust)",) * 2,
    "show_plot": ("out='folder' writes lr_find.png (and lr_find.json) there; or, after the fit, "
                  "callback.result.plot('lr_find.png') or print(callback.result.text_plot())",) * 2,
}
_CALLBACK_PEER_ADVICE["val_loader"] = _CALLBACK_PEER_ADVICE["val_dataloaders"]


def _peer_keyword_error(kwargs: Mapping[str, Any], who: str) -> ValueError | None:
    """The error for the first keyword in ``kwargs`` that is a peer's (torch-lr-finder's, fastai's, Lightning's: the
    keywords :data:`lrkit.finder.range_test.PEER_KEYWORDS` maps), naming whose it is and what to write instead in
    the callback ``who``; ``None`` when there is none.

    >>> print(str(_peer_keyword_error({"min_lr": 1e-8}, "FindLRCallback"))[:103])
    unknown FindLRCallback keyword 'min_lr', Lightning's name: lrkit calls it start_lr: pass start_lr=1e-08
    """
    from lrkit.finder.range_test import PEER_KEYWORDS

    for key, value in kwargs.items():
        peer = PEER_KEYWORDS.get(key)
        if peer is None:
            continue
        advice = _CALLBACK_PEER_ADVICE.get(key)
        text = advice[who == "ChooseLRCallback"] if advice is not None else peer[1](value)
        return ValueError(f"unknown {who} keyword {key!r}, {peer[0]}'s name: {text}")
    return None


def _check_test_settings(start_lr: Any, end_lr: Any, num_steps: Any, mode: Any, rule: Any) -> tuple[float, float, int]:
    """Check the range test's settings when a callback is built (``ChooseLRCallback`` passes its ``find_lr`` keywords,
    or ``choose_lr0``'s defaults, so that a bad value is refused there, not at the fit's start), each error naming the
    value and what would be valid; ``(start_lr, end_lr, num_steps)`` as numbers.

    >>> _check_test_settings(1e-8, 1, 100, "exp", "robust")
    (1e-08, 1.0, 100)
    >>> try:
    ...     _check_test_settings(None, 10.0, 100, "exp", "robust")
    ... except ValueError as e:
    ...     print(str(e)[:62])
    start_lr=None must be a number: the range test starts at start
    """
    from lrkit.finder.range_test import _check_sweep

    if start_lr is None:  # torch-lr-finder's "start at the optimizer's LR"
        raise ValueError("start_lr=None must be a number: the range test starts at start_lr whatever the "
                         "optimizer holds; for torch-lr-finder's start_lr=None (start at the "
                         "optimizer's LR) pass the LR configure_optimizers sets, e.g. start_lr=1e-3")
    return _check_sweep(start_lr, end_lr, num_steps, mode, rule)


def _check_finder_kwargs(kwargs: Mapping[str, Any], who: str = "FindLRCallback",
                         named: tuple[str, ...] = ("start_lr", "end_lr", "num_steps", "rule", "mode", "attr_name",
                                                   "out")) -> None:
    """Refuse the :func:`lrkit.find_lr` keywords ``FindLRCallback`` supplies itself (saying where each comes from),
    a peer's keyword (``min_lr``, ``update_attr``, ``num_iter``, ...: whose it is and what to write instead), other
    unknown ones (did-you-mean), and the bad values of those it is given, when the callback is built.

    >>> _check_finder_kwargs({"diverge_factor": 5.0})
    >>> try:
    ...     _check_finder_kwargs({"accumulation_steps": 2})
    ... except ValueError as e:
    ...     print(str(e)[:80])
    FindLRCallback(accumulation_steps=...): the callback takes it from Trainer(accum
    """
    error = _peer_keyword_error({k: v for k, v in kwargs.items() if k not in _FINDER_SUPPLIED}, who)
    if error is not None:
        raise error
    check_finder_keywords(kwargs, _FINDER_SUPPLIED,
                          lambda name, where: f"{who}({name}=...): the callback takes it from {where}; "
                                              f"leave {name}= out",
                          f"{who} keyword (lrkit.find_lr's)", list(named))
    factor = kwargs.get("diverge_factor")
    if factor is not None:
        try:
            ok = check_positive("diverge_factor", factor) > 1
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"diverge_factor={factor!r} must be a finite number > 1 (4 is typical), or None for no "
                             "stop")
    progress = kwargs.get("progress")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress={progress!r} must be a function progress(step, total, lr, loss), or None")
    device = kwargs.get("snapshot_device")
    if device is not None:
        # checked now as the docstrings promise, not at the fit's start: a value that is no device, or "meta",
        # fails here; a GPU device is only parsed (allocating on it here would start CUDA in the launching
        # process, which a forking strategy such as ddp_fork cannot have), find_lr checks it at the fit's start
        try:
            kind = torch.device(device).type if isinstance(device, (str, torch.device)) else None
        except (RuntimeError, ValueError):
            kind = None
        if kind in (None, "cpu", "meta"):
            check_snapshot_device(device)


def _finder_scheduler(trainer: Any, optimizer: torch.optim.Optimizer, warn: bool = True) -> Any:
    """The scheduler whose bases the no-attribute path scales (``backoff_lr``): the optimizer's only one, or its
    step-interval one; with ``warn``, the others are named in a warning (their bases are not scaled). The attribute
    path, which rebuilds them all from the attribute, reads the peak with ``warn=False``."""
    chosen, others, names = _scheduler_configs(trainer, optimizer)
    if chosen is None:
        return None
    if others and warn:
        configs = [chosen, *others]
        warnings.warn(
            f"FindLRCallback: the optimizer has {len(configs)} LR schedulers; the suggestion is applied through "
            f"{type(chosen.scheduler).__name__} (interval={chosen.interval!r}), and the LRs that {names} compute "
            f"from are not scaled: combine them into one scheduler (torch.optim.lr_scheduler.SequentialLR), or read "
            f"the LR from an attribute (self.lr) in configure_optimizers",
            UserWarning,
            stacklevel=3,
        )
    return chosen.scheduler


class _Batches:
    """The fit's train (or validation) data as the range test draws it: each batch as the fit loop prepares it — the
    precision plugin's ``convert_input`` (``"64-true"``/``"bf16-true"`` cast float inputs), the module's
    ``on_before_batch_transfer``, then ``transfer_batch_to_device`` and ``on_after_batch_transfer`` to the module's
    device. A pass holds the batches an epoch of the fit holds: ``limit`` (``Trainer(limit_train_batches=...)``, an
    int or a fraction) cuts each loader as the fit loop cuts it. Re-iterable, so ``find_lr`` can cycle a short
    loader. ``loader`` is the one DataLoader (``None`` for a collection) and ``loaders`` every one, so lrkit's tests
    find their shuffling generators and persistent workers (``lr0="auto"`` reseeds them before each trial)."""

    def __init__(self, data: Any, trainer: Any, pl_module: Any, limit: float = 1.0, stage: str = "train") -> None:
        from lightning.pytorch.trainer.connectors.data_connector import _parse_num_batches
        from lightning.pytorch.trainer.states import RunningStage
        from lightning.pytorch.utilities import CombinedLoader

        self.trainer = trainer
        self.pl_module = pl_module
        self.loader = data if isinstance(data, torch.utils.data.DataLoader) else None
        self.loaders = _loaders(data)  # (each trial reseeds their generators and starts their workers afresh)
        running = RunningStage.TRAINING if stage == "train" else RunningStage.VALIDATING

        def cut(loader: Any) -> float:
            try:
                length: float = len(loader)
            except TypeError:  # an IterableDataset's loader: as many batches as it yields
                length = math.inf
            return _parse_num_batches(running, length, limit)

        if isinstance(data, (CombinedLoader, Mapping, list, tuple)):
            combined = data if isinstance(data, CombinedLoader) else CombinedLoader(data, "max_size_cycle")
            copy = CombinedLoader(combined.iterables, combined._mode)  # the limits on a copy: the fit's untouched
            copy.flattened = combined.flattened
            copy.limits = [cut(d) for d in combined.flattened]
            self.data: Any = copy
            self.limit: float = math.inf
        else:
            self.data = data
            self.limit = cut(data)

    def _prepare(self, batch: Any) -> Any:
        batch = self.trainer.precision_plugin.convert_input(batch)
        batch = self.pl_module._on_before_batch_transfer(batch, dataloader_idx=0)
        return self.trainer.strategy.batch_to_device(batch, dataloader_idx=0)

    def __iter__(self) -> Iterator[Any]:
        from lightning.pytorch.utilities import CombinedLoader

        if isinstance(self.data, CombinedLoader):
            # a CombinedLoader's limits set its length, not where its iterator stops: the fit loop ends the epoch at
            # that length, and so does a pass here
            try:
                passes: Any = itertools.islice(self.data, len(self))
            except TypeError:  # a loader without a length in it: as long as it yields
                passes = self.data
            for out in passes:  # (batch, batch_idx, dataloader_idx), as the fit loop unpacks it
                yield self._prepare(out[0] if isinstance(out, tuple) and len(out) == 3 else out)
            return
        it = self.data if math.isinf(self.limit) else itertools.islice(self.data, int(self.limit))
        for batch in it:
            yield self._prepare(batch)

    def __len__(self) -> int:
        """The batches in one pass, as the fit loop counts them: a collection of loaders (a dict, a list, a
        CombinedLoader) by its mode — the longest loader for ``"max_size_cycle"`` (a dict/list's) and ``"max_size"``,
        the shortest for ``"min_size"``, their sum for ``"sequential"`` — not the number of loaders in it; each
        loader cut at its limit. A loader without a length: ``TypeError``."""
        if self.loader is not None or not hasattr(self.data, "flattened"):
            if math.isinf(self.limit):
                raise TypeError("the fit's train loader has no length")
            return int(self.limit)
        lengths = [len(d) if math.isinf(lim) else int(lim) for d, lim in zip(self.data.flattened, self.data.limits)]
        mode = self.data._mode
        return sum(lengths) if mode == "sequential" else min(lengths) if mode == "min_size" else max(lengths)


def _loaders(data: Any) -> list[Any]:
    """The ``torch.utils.data.DataLoader`` objects in the fit's train data (one, or a CombinedLoader's / a
    collection's)."""
    from lightning.pytorch.utilities import CombinedLoader

    if isinstance(data, torch.utils.data.DataLoader):
        return [data]
    if isinstance(data, CombinedLoader):
        return _loaders(data.iterables)
    if isinstance(data, Mapping):
        return [d for v in data.values() for d in _loaders(v)]
    if isinstance(data, (list, tuple)):
        return [d for v in data for d in _loaders(v)]
    return []


class _Parts(NamedTuple):
    """What the Lightning callbacks' tests train on (``_fit_parts``)."""

    model: Any  # the LightningModule, or under DDP its DistributedDataParallel
    batches: Any  # a _Batches of the fit's train data
    val_batches: Any  # a _Batches of the fit's first validation loader, or None
    step_fn: Any  # (model, batch) -> the loss of training_step
    settings: dict[str, Any]  # find_lr's keywords from the Trainer
    quiet: bool  # a rank other than 0: no progress, no warnings


def _skipped_loss(skips: dict[str, bool], name: str, what: str, device: torch.device) -> torch.Tensor:
    """The loss a test records for a batch whose ``training_step`` returned ``None`` after earlier batches gave
    losses — Lightning's way to skip a batch, most often one whose loss is not finite (``if not
    torch.isfinite(loss): return None``), as it becomes at the high LRs of a range test: NaN, which ends the test as a
    non-finite loss does (Lightning's own LR finder records a skipped step as NaN too); said once per test. A NaN leaf
    that requires grad, so the test's backward runs and leaves the model's gradients untouched. Training passes only:
    a trial's scoring pass (eval mode) still refuses a ``None``, whose NaN would read as a diverged trial."""
    if not skips["warned"]:
        skips["warned"] = True
        warnings.warn(
            f"{name}.training_step returned None (Lightning's skip) in the {what}: the step is recorded as a NaN loss, "
            "which ends the range test there as a non-finite loss does; a skip at a low LR cuts the curve short too "
            "(return the loss at every batch the test draws)",
            UserWarning,
            stacklevel=4,
        )
    return torch.full((), math.nan, device=device, requires_grad=True)


def _check_train_mode(data: Any, who: str) -> None:
    """Refuse train data the fit loop refuses (a ``CombinedLoader(mode="sequential")``: Lightning raises at its
    ``setup_data``, after the callbacks' ``on_fit_start``), before the callback ``who`` spends a range test on it."""
    from lightning.pytorch.utilities import CombinedLoader

    if isinstance(data, CombinedLoader) and data._mode == "sequential":
        raise ValueError(
            f"{who}: the fit's train data is a CombinedLoader(mode='sequential'), which Lightning's fit loop does not "
            "train on (it raises after this callback's test); build it with mode='max_size_cycle' (the default), "
            "'max_size' or 'min_size'"
        )


def _val_loader(trainer: Any, pl_module: Any) -> Any:
    """The fit's first validation DataLoader (``val_dataloaders=``, the datamodule's or module's
    ``val_dataloader()``), or ``None`` when the fit validates on nothing: no ``validation_step``, no val data, or
    ``limit_val_batches=0``."""
    from lightning.pytorch.utilities import CombinedLoader
    from lightning.pytorch.utilities.model_helpers import is_overridden

    source = trainer.fit_loop.epoch_loop.val_loop._data_source
    if trainer.limit_val_batches == 0 or not is_overridden("validation_step", pl_module) or not source.is_defined():
        return None
    data = source.dataloader()
    combined = data if isinstance(data, CombinedLoader) else CombinedLoader(data, "sequential")
    flat = combined.flattened
    return flat[0] if flat else None


def _shard(trainer: Any, data: Any, stage: str = "train") -> Any:
    """The fit's train (or validation) data as the fit loop shards it under DDP (``fit_loop.setup_data``): each
    DataLoader through Lightning's ``_process_dataloader``, which gives a copy the fit's ``DistributedSampler`` (at
    epoch 0, its seed and this rank's shard; unshuffled for validation) and lets the strategy process it. The loaders
    the fit trains on are built by the fit itself."""
    from lightning.pytorch.trainer.connectors.data_connector import _process_dataloader
    from lightning.pytorch.trainer.states import RunningStage, TrainerFn
    from lightning.pytorch.utilities import CombinedLoader

    running = RunningStage.TRAINING if stage == "train" else RunningStage.VALIDATING
    combined = data if isinstance(data, CombinedLoader) else CombinedLoader(data, "max_size_cycle")
    with warnings.catch_warnings():  # its worker-count hints: the fit's own processing gives them once
        warnings.simplefilter("ignore")
        flat = [_process_dataloader(trainer, TrainerFn.FITTING, running, d) for d in combined.flattened]
    if isinstance(data, torch.utils.data.DataLoader):
        return flat[0]
    copy = CombinedLoader(combined.iterables, combined._mode)
    copy.flattened = flat
    return copy


def _unshuffled(data: Any) -> Any:
    """The fit's train data as the fit loop draws it under ``overfit_batches`` (``fit_loop.setup_data``'s
    ``_resolve_overfit_batches``): each shuffling DataLoader copied with a ``SequentialSampler``, so the range test
    draws the batches the fit trains on (the same first ones every epoch). Copies: the fit's loaders are not
    touched."""
    from lightning.pytorch.trainer.connectors.data_connector import _resolve_overfit_batches
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities import CombinedLoader

    combined = data if isinstance(data, CombinedLoader) else CombinedLoader(data, "max_size_cycle")
    copy = CombinedLoader(combined.iterables, combined._mode)
    copy.flattened = list(combined.flattened)
    with warnings.catch_warnings():  # "turning off the shuffling": the fit says it once
        warnings.simplefilter("ignore")
        _resolve_overfit_batches(copy, RunningStage.TRAINING)
    return copy.flattened[0] if isinstance(data, torch.utils.data.DataLoader) else copy


def _silence_logging(module: Any) -> dict[str, Any]:
    """Make ``module.log`` / ``module.log_dict`` no-ops (instance attributes over the methods) for the test: the
    fit's logged metrics get nothing from the finder's steps, and Lightning's check that logging happens inside a
    loop hook is not reached. Returns what :func:`_restore_logging` puts back."""
    saved = {k: module.__dict__[k] for k in ("log", "log_dict") if k in module.__dict__}

    def no_log(*args: Any, **kwargs: Any) -> None:
        return None

    module.__dict__["log"] = no_log
    module.__dict__["log_dict"] = no_log
    return saved


def _restore_logging(module: Any, saved: dict[str, Any]) -> None:
    for key in ("log", "log_dict"):
        module.__dict__.pop(key, None)
        if key in saved:
            module.__dict__[key] = saved[key]


def _metric_states(module: torch.nn.Module) -> list[tuple[Any, dict[str, Any]]]:
    """The accumulated state of every torchmetrics ``Metric`` in the module (not buffers: ``find_lr`` does not restore
    them), so the metric values the fit logs do not count the finder's batches."""
    import copy
    import sys

    tm = sys.modules.get("torchmetrics")
    if tm is None:
        return []
    saved = []
    for m in module.modules():
        if isinstance(m, tm.Metric):
            state = {k: copy.deepcopy(getattr(m, k)) for k in getattr(m, "_defaults", {})}
            extra = {k: copy.deepcopy(m.__dict__[k]) for k in ("_update_count", "_computed", "_forward_cache")
                     if k in m.__dict__}
            saved.append((m, {**state, **extra}))
    return saved


def _restore_metric_states(saved: list[tuple[Any, dict[str, Any]]]) -> None:
    for metric, state in saved:
        for key, value in state.items():
            setattr(metric, key, value)


def _warn_schedule_changers(trainer: Any, who: str) -> None:
    """Warn about the fit's callbacks that change its schedule or param groups part-way, which a record of its
    schedulers made before the fit cannot foresee: ``StochasticWeightAveraging`` (its SWALR from ``swa_epoch_start``)
    and ``BaseFinetuning`` (``BackboneFinetuning``: groups added when it unfreezes)."""
    from lightning.pytorch.callbacks import BaseFinetuning, StochasticWeightAveraging

    found = [type(c).__name__ for c in trainer.callbacks if isinstance(c, (StochasticWeightAveraging, BaseFinetuning))]
    if found:
        warnings.warn(
            f"{who}: {', '.join(found)} change{'s' if len(found) == 1 else ''} the fit's LR schedule or param groups "
            "part-way, which the record of its schedulers made before the fit does not see: the trials follow the "
            "schedulers of configure_optimizers alone. Pass make_scheduler= (the schedule the fit follows over "
            "`steps` steps) for trials that follow the whole schedule",
            UserWarning,
            stacklevel=4,
        )


def _warn_optimizer_step(pl_module: Any, who: str) -> None:
    """Warn when the module overrides ``optimizer_step``, which the trials do not call: an LR it writes (the hand
    warm-up of Lightning's docs, ``pg["lr"] = scale * self.hparams.lr`` in the first steps) is not in the record of
    the fit's schedulers, so the trials do not follow the fit's schedule."""
    from lightning.pytorch.utilities.model_helpers import is_overridden

    if is_overridden("optimizer_step", pl_module):
        warnings.warn(
            f"{who}: {type(pl_module).__name__} overrides optimizer_step, which the range test and trials do not call "
            "(they step the optimizer themselves): an LR it sets (a warm-up written there) is not in the record of "
            "the fit's schedulers, so the trials do not follow the fit's schedule. Put the warm-up in a scheduler "
            "(LinearLR in a SequentialLR, a LambdaLR; interval='step'), or pass make_scheduler= (the schedule the fit "
            "follows over `steps` steps)",
            UserWarning,
            stacklevel=4,
        )


def _accumulation(trainer: Any) -> Callable[[int], int]:
    """Epoch -> the batches each optimizer step accumulates in it (a ``GradientAccumulationScheduler``'s, else
    ``accumulate_grad_batches``)."""
    from lightning.pytorch.callbacks import GradientAccumulationScheduler

    scheduler = next((c for c in trainer.callbacks if isinstance(c, GradientAccumulationScheduler)), None)
    fixed = int(trainer.accumulate_grad_batches)
    if scheduler is None:
        return lambda epoch: fixed
    return lambda epoch: int(scheduler.get_accumulate_grad_batches(epoch))


def _max_time(trainer: Any) -> bool:
    """Whether the fit has a ``Trainer(max_time=...)`` (a ``Timer`` callback with a duration)."""
    from lightning.pytorch.callbacks import Timer

    return any(isinstance(c, Timer) and c._duration is not None for c in trainer.callbacks)


def _warn_default_length(trainer: Any, total: int, budget: float | None, steps_per_epoch: float, who: str,
                         search: str = "guard") -> None:
    """Warn when the fit's length is Lightning's default (``max_epochs`` not set: 1000 epochs): the choice budgets
    for all of them, however soon ``EarlyStopping`` ends the fit — up to ``budget`` x 1000 epochs of extra steps
    (``search="prefix"``: its fixed cost, about 1.5 x 1000 epochs; ``budget`` is ``None`` then)."""
    if trainer.max_epochs != 1000 or trainer.max_steps != -1 or trainer.current_epoch or trainer.global_step:
        return
    if search == "prefix":
        from lrkit.train.auto import _prefix_cost

        extra = int(_prefix_cost() * total)
        cost, bound = f"search='prefix': about {_prefix_cost():g} runs of extra compute", "about"
    else:
        budget = 0.3 if budget is None else budget  # (the guard's default; the callback passes it resolved)
        extra = int(budget * total)
        cost, bound = f"budget={budget:g}", "up to"
    epochs = extra / steps_per_epoch
    passes = (f" ({epochs:.3g} epochs' worth)" if epochs < 1000 else f" ({epochs:.0f} epochs' worth)"  # not 1.5e+03
              ) if math.isfinite(steps_per_epoch) else ""
    warnings.warn(
        f"{who}: the fit runs max_epochs=1000 (Lightning's default when max_epochs is not set), {total} optimizer "
        f"steps: the LR is chosen for all of them, with {bound} {extra} extra optimizer steps{passes} ({cost}) "
        "before the first epoch, even if EarlyStopping ends the fit sooner. Set "
        "pl.Trainer(max_epochs=...) (or max_steps) to the fit you mean",
        UserWarning,
        stacklevel=4,
    )


def _run_length(trainer: Any, per_epoch: float, accumulation: Callable[[int], int], who: str) -> int:
    """The optimizer steps the fit takes from where it starts (``trainer.current_epoch`` and ``global_step``: 0, or
    where an earlier ``fit`` of the same trainer stopped), as ``trainer.estimated_stepping_batches`` counts them, with
    a ``GradientAccumulationScheduler``'s epochs counted each at its own accumulation: the epochs left to
    ``max_epochs``, ``ceil(per_epoch / accumulation)`` steps each, cut where ``global_step`` reaches ``max_steps``. A
    fit without an end (an iterable loader without ``max_steps``, ``max_epochs=-1``), or with no step left, is an
    error: there is no run to budget for."""
    max_steps = int(trainer.max_steps)
    max_epochs = trainer.max_epochs
    start_epoch, start_step = int(trainer.current_epoch), int(trainer.global_step)
    if per_epoch == 0:
        raise ValueError(f"{who}: the fit's train data holds no batches (limit_train_batches, an empty loader), so "
                         "there is no run to choose the LR for")
    if math.isinf(per_epoch) or max_epochs is None or max_epochs < 0:
        counted = math.isinf(per_epoch) and max_epochs is not None and max_epochs >= 0
        if max_steps < 0:
            why = ("its train loader has no length" if math.isinf(per_epoch) else f"max_epochs={max_epochs}")
            if not math.isinf(per_epoch) and _max_time(trainer):  # Lightning's max_epochs with max_time alone
                why += " — Lightning's when only max_time is given, which the choice cannot count ahead"
            if counted:
                raise ValueError(
                    f"{who} chooses the LR for the fit's length, but this fit's length cannot be counted ahead (its "
                    f"train loader has no length, so the optimizer steps of max_epochs={max_epochs} passes are not "
                    "known; max_steps=-1): set pl.Trainer(max_steps=...), the steps the fit takes"
                )
            raise ValueError(
                f"{who} chooses the LR for the fit's length, but this fit has no end ({why}, max_steps=-1): set "
                "pl.Trainer(max_steps=...) (or max_epochs with a sized loader)"
            )
        if counted:
            warnings.warn(
                f"{who}: the fit's train loader has no length, so the LR is chosen for a fit of max_steps={max_steps} "
                f"optimizer steps; if its max_epochs={max_epochs} passes end sooner, the fit is shorter than the one "
                "chosen for (max_epochs=-1 says the fit runs to max_steps)",
                UserWarning,
                stacklevel=3,
            )
        steps = max(max_steps - start_step, 0)
    else:
        steps = 0
        for epoch in range(start_epoch, int(max_epochs)):
            steps += math.ceil(per_epoch / accumulation(epoch))
            if 0 <= max_steps <= start_step + steps:
                steps = max(max_steps - start_step, 0)
                break
    if steps == 0:
        earlier = ": an earlier fit of this trainer got there" if start_epoch or start_step else ""
        raise ValueError(
            f"{who}: this fit has no optimizer steps left to take (current_epoch={start_epoch}, max_epochs="
            f"{max_epochs}, global_step={start_step}, max_steps={max_steps}{earlier}), so there is no run to choose "
            "the LR for; raise max_epochs / max_steps, or fit without the callback (FindLRCallback runs its range "
            "test in a fit of max_steps=0)"
        )
    return steps


def _record_schedule(trainer: Any, pl_module: Any, optimizer: torch.optim.Optimizer, total: int, per_epoch: float,
                     accumulation: Callable[[int], int], who: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every param group's LR at each of the fit's ``total`` optimizer steps (from ``trainer.current_epoch`` and
    ``global_step`` on), as the fit loop will step the optimizer's schedulers (``trainer.lr_scheduler_configs``:
    ``interval="step"`` after an optimizer step whose ``(batch_idx + 1) % frequency == 0``, ``"epoch"`` after an epoch
    whose ``(epoch + 1) % frequency == 0``, each through the module's ``lr_scheduler_step``, with the trainer's
    ``current_epoch``, ``global_step`` and batch index reading as the fit's there), and the momentum / ``betas[0]`` a
    scheduler cycles (OneCycleLR, CyclicLR): arrays of shape ``(total, groups)``. The schedulers, the groups and the
    trainer's clock are put back afterwards."""
    configs = [c for c in trainer.lr_scheduler_configs if getattr(c.scheduler, "optimizer", None) is optimizer]
    plateau = next((c for c in configs if c.reduce_on_plateau or metric_driven(c.scheduler)), None)
    if plateau is not None:
        raise ValueError(
            f"{who}: the fit's {type(plateau.scheduler).__name__} follows a metric, not the step count, so it cannot "
            f"be compressed into short trials; pass {who}(make_scheduler=...) — the schedule the run would follow, "
            "make_scheduler(optimizer, steps) -> LRScheduler — or find the LR with FindLRCallback"
        )
    epochly = [c for c in configs if c.interval == "epoch"]
    if math.isinf(per_epoch) and epochly:
        names = ", ".join(type(c.scheduler).__name__ for c in epochly)
        warnings.warn(
            f"{who}: the fit's train loader has no length, so where its epochs end cannot be foreseen: the schedule "
            f"is recorded as one epoch of the fit's {total} optimizer steps, without the steps of {names} "
            "(interval='epoch'). If the loader ends and the fit runs several epochs, the trials do not follow its "
            "schedule: step it with interval='step', or pass make_scheduler=",
            UserWarning,
            stacklevel=3,
        )
    # the fit loop's clock (trainer.current_epoch, global_step, the batch index) reads as the fit's at each scheduler
    # step, for an lr_scheduler_step that steps from it (timm's scheduler.step(epoch=self.current_epoch)); put back
    epoch_progress = trainer.fit_loop.epoch_progress
    batch_progress = trainer.fit_loop.epoch_loop.batch_progress
    optim_progress = trainer.fit_loop.epoch_loop.automatic_optimization.optim_progress
    clocks = [(p, copy.deepcopy(p.state_dict())) for p in (epoch_progress, batch_progress, optim_progress)]
    start_step = int(trainer.global_step)
    # where the fit loop is: the epoch, its batch of the optimizer step being recorded, the batches seen in all
    where = {"epoch": int(trainer.current_epoch), "batch": -1, "seen": batch_progress.total.ready}

    def set_clock(batch: int, completed: int) -> None:  # the clock at a scheduler step after this epoch's ``batch``
        epoch_progress.current.completed = epoch_progress.total.completed = where["epoch"]
        batch_progress.current.ready = batch + 1
        batch_progress.total.ready = where["seen"]
        batch_progress.is_last_batch = batch + 1 == per_epoch
        optim_progress.optimizer.step.total.completed = start_step + completed

    def to_next_step() -> None:  # on through the batches to the next one whose optimizer steps
        accumulate = accumulation(where["epoch"])
        while True:
            where["batch"] += 1
            where["seen"] += 1
            batch = where["batch"]
            if (batch + 1) % accumulate == 0 or batch + 1 == per_epoch:
                return

    def advance(t: int) -> None:  # the fit loop's scheduler steps after optimizer step ``t``, as the fit makes them
        batch = where["batch"]
        for c in configs:
            if c.interval == "step" and (batch + 1) % c.frequency == 0:
                set_clock(batch, t + 1)
                pl_module.lr_scheduler_step(c.scheduler, None)
        if batch + 1 == per_epoch:  # the epoch's last batch: the epoch ends
            for c in configs:
                if c.interval == "epoch" and (where["epoch"] + 1) % c.frequency == 0:
                    set_clock(batch, t + 1)
                    pl_module.lr_scheduler_step(c.scheduler, None)
            where["epoch"] += 1
            where["batch"] = -1
        if t + 1 < total:
            to_next_step()

    to_next_step()
    try:
        return record_schedule(optimizer, [c.scheduler for c in configs], total, advance)
    finally:
        for progress, state in clocks:
            progress.load_state_dict(state)


def _build_finder() -> type:
    Callback = _lightning("FindLRCallback").Callback
    from lightning.pytorch.plugins.precision import MixedPrecision
    from lightning.pytorch.utilities.parsing import lightning_getattr, lightning_hasattr, lightning_setattr
    from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

    from lrkit.finder import suggest as _suggest
    from lrkit.finder.range_test import _loader_generators, _OwnWorkers, find_lr
    from lrkit.finder.result import FinderResult
    from lrkit.monitor.actions import backoff_lr

    def _set_lr_attr(pl_module: Any, attr: str, lr: float) -> None:
        """Set the LR attribute where Lightning looks (the module, its ``hparams``), and in the initial hparams the
        fit hands its loggers right after ``on_fit_start`` (``hparams.yaml``, TensorBoard/W&B/MLflow params), so
        the run is logged at the LR it trains at."""
        lightning_setattr(pl_module, attr, lr)  # the module, its hparams, and the datamodule's if they hold it
        trainer = getattr(pl_module, "_trainer", None)
        for holder in (pl_module, getattr(trainer, "datamodule", None)):  # the fit merges both (equal values)
            initial = getattr(holder, "_hparams_initial", None)
            if isinstance(initial, dict) and attr in initial:
                initial[attr] = lr

    class FindLRCallback(Callback):  # type: ignore[misc,valid-type]
        """:func:`lrkit.find_lr` inside ``trainer.fit``: run the LR range test at the fit's start and train at its
        suggestion (Lightning's ``LearningRateFinder``, with lrkit's test, suggestion rules and exact restore).

        Args:
            start_lr, end_lr, num_steps, mode, rule: as :func:`lrkit.find_lr` (the LR range, its optimizer steps,
                ``"exp"``/``"linear"``, the suggestion rule), checked now.
            attr_name: where the fit's LR lives. ``None`` (default): ``lr`` or ``learning_rate`` on the module or its
                ``hparams``, as Lightning looks; a name: that attribute (it must exist); ``False``: none. With an
                attribute, it is set to the suggestion and ``configure_optimizers`` is run again, so the optimizer and
                schedulers are built from the new LR (``OneCycleLR(max_lr=self.lr)`` peaks at it). Without one, the
                optimizer and scheduler Lightning built are scaled by ``suggestion / peak``
                (:func:`lrkit.monitor.actions.backoff_lr`), ``peak`` being the largest group's schedule peak
                (OneCycleLR's ``max_lr``, CyclicLR's ``max_lr``, else the ``initial_lr`` a scheduler scales from,
                else ``lr``): every group keeps its ratio, and the schedule peaks at the suggestion.
            out: a folder: the curve is written there as ``lr_find.json`` (:meth:`FinderResult.to_json`, atomic) and
                ``lr_find.png`` (:meth:`FinderResult.plot`, needs matplotlib).
            **find_lr_kwargs: other :func:`lrkit.find_lr` keywords (``diverge_factor``, ``progress``,
                ``snapshot_device``), checked now. ``model``, ``optimizer``, ``train_loader``, ``step_fn``,
                ``loss_fn``, ``accumulation_steps``, ``scaler``, ``amp``, ``max_grad_norm`` and ``device`` come from
                the fit and are refused, naming where.

        At ``on_fit_start`` (optimizers and schedulers built, before the first batch) the test runs on the module
        with ``trainer.optimizers[0]``, the fit's train dataloader (each batch as the fit loop prepares it: the
        precision plugin's ``convert_input``, then the module's batch transfer hooks, ``on_before_batch_transfer``
        included, to its device), ``training_step(batch, batch_idx)`` (or ``training_step(batch)``, as the fit
        calls it) as the loss (a tensor, or a dict's ``"loss"``; a ``None`` — Lightning's skip, of a non-finite loss
        say — after earlier losses is a NaN loss, which ends the test; in the plugin's ``train_step_context``, as the
        fit runs it: ``"64-true"``/``"bf16-true"`` work),
        ``accumulate_grad_batches`` (or a ``GradientAccumulationScheduler``'s first epoch's) as
        ``accumulation_steps``, ``gradient_clip_val`` as ``max_grad_norm``, and ``precision="16-mixed"``/
        ``"bf16-mixed"`` as ``amp`` (with Lightning's ``GradScaler``). ``self.log`` in ``training_step`` logs nothing
        during the test, and torchmetrics ``Metric`` states are put back. Afterwards the module, optimizer, RNGs and
        scaler are as before (``find_lr``'s restore), and so are the RNG draws of the extra ``train_dataloader()``
        call, the loaders' own shuffling generators and a ``persistent_workers`` loader's iterator: with an LR
        attribute the fit is bit-identical to one without the callback at the suggestion set by hand (scaling the
        built optimizer, ``suggestion / peak`` may differ from it in the last bit). Then the LR is set.
        ``.result`` is the :class:`~lrkit.FinderResult` and ``.lr`` the LR set (``None`` before).

        Under DDP (``strategy="ddp"``, ``"ddp_spawn"``, ... with ``devices > 1``) every rank runs the test at once, as
        :func:`lrkit.find_lr` under ``torch.distributed`` wants: on its shard (a copy of the fit's train loader with
        the ``DistributedSampler`` the fit loop gives its own, at epoch 0; the fit's loaders are not touched), with
        ``training_step`` called through the DDP wrapper (Lightning's forward redirection, as in the fit), so the
        gradients are averaged over the ranks; the per-step loss is the mean over the ranks, every rank gets the same
        suggestion and sets it. ``out=`` is written by rank 0. Under ``ddp_spawn`` (and ``ddp_fork``/``ddp_notebook``)
        the ranks run copies of the callback and Lightning sends back the weights only, so local rank 0 hands
        ``.lr``/``.result`` (``ChooseLRCallback``: ``.auto`` too) back through a private temporary file that the
        launching process's callback reads when they are first looked at after the fit; the module's LR attribute
        (``model.lr``, ``hparams``) in the launching process is not changed (the ranks' is; ``strategy="ddp"``,
        whose rank 0 is the launching process, changes it there too).

        Not run: when the fit resumes from a checkpoint (``ckpt_path=``: the checkpoint's optimizer state, LR
        included, is loaded after ``on_fit_start``; ``.lr`` is the checkpoint's callback state, and is put back in
        the module's LR attribute, ``hparams`` included, without rebuilding anything), and under
        ``fast_dev_run``. Refused at ``on_fit_start`` with a ``ValueError`` saying what to do instead: manual
        optimization, several optimizers, more than one process with another strategy than DDP (FSDP, DeepSpeed,
        ...: the module is not in a ``DistributedDataParallel``), DDP with post-local SGD model averaging.

        Example (needs lightning):
            >>> import lightning.pytorch as pl, torch
            >>> from lrkit.integrations.lightning import FindLRCallback
            >>> class Net(pl.LightningModule):
            ...     def __init__(self):
            ...         super().__init__(); self.lr = 0.01; self.net = torch.nn.Linear(4, 1)
            ...     def training_step(self, batch, batch_idx):
            ...         x, y = batch; return torch.nn.functional.mse_loss(self.net(x), y)
            ...     def configure_optimizers(self):
            ...         return torch.optim.SGD(self.parameters(), lr=self.lr)
            >>> x = torch.randn(256, 4); y = x.sum(1, keepdim=True)
            >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
            >>> finder = FindLRCallback(num_steps=40)
            >>> trainer = pl.Trainer(max_steps=5, callbacks=[finder], logger=False, enable_progress_bar=False,
            ...                      enable_checkpointing=False, enable_model_summary=False)
            >>> model = Net(); trainer.fit(model, loader)
            >>> model.lr == finder.lr == finder.result.suggestion
            True
        """

        def __init__(self, *, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100,
                     mode: str = "exp", rule: str = _suggest.DEFAULT_RULE, attr_name: str | bool | None = None,
                     out: str | os.PathLike[str] | None = None, **find_lr_kwargs: Any) -> None:
            super().__init__()
            start, end, num_steps = _check_test_settings(start_lr, end_lr, num_steps, mode, rule)
            if attr_name is True or not (attr_name is None or attr_name is False or
                                         (isinstance(attr_name, str) and attr_name)):
                raise ValueError(f"attr_name={attr_name!r} must be the name of the module's LR attribute (e.g. "
                                 "'lr'), None to look for 'lr'/'learning_rate', or False to scale the built "
                                 "optimizer instead")
            if out is not None and not isinstance(out, (str, os.PathLike)):
                raise ValueError(f"out={out!r} must be a folder path (str or PathLike), or None")
            _check_finder_kwargs(find_lr_kwargs)
            self.start_lr, self.end_lr, self.num_steps, self.mode, self.rule = start, end, num_steps, mode, rule
            self.attr_name = attr_name
            self.out = Path(out) if out is not None else None
            self.find_lr_kwargs = dict(find_lr_kwargs)
            # under a spawning strategy (ddp_spawn, ddp_fork, ...) the ranks run copies of this callback: local rank 0
            # hands its results back to this process through this private file (see _send / _receive)
            self._open_outbox()
            self.result = None
            self.lr = None

        # ---------------------------------------------------------------- checks
        def _refuse(self, trainer: Any, pl_module: Any) -> None:
            optimizers = list(trainer.optimizers)
            if len(optimizers) != 1:
                names = ", ".join(type(o).__name__ for o in optimizers) or "none"
                raise ValueError(
                    f"{self._who} tests one optimizer, but configure_optimizers gave {len(optimizers)} ({names}). "
                    "Run lrkit.find_lr per optimizer before the fit (each over the parameters it trains)"
                )
            if not optimizers[0].param_groups:
                # configure_optimizers returned None: Lightning fits with a placeholder (_MockOptimizer) that holds
                # no param groups and steps nothing -- there is no LR to test or set
                raise ValueError(
                    f"{self._who} sets the fit's LR, but {type(pl_module).__name__}.configure_optimizers gave no "
                    f"optimizer (Lightning fits with a placeholder, {type(optimizers[0]).__name__}, that trains "
                    "nothing): return the optimizer the fit trains with from configure_optimizers, or leave the "
                    "callback out"
                )
            if not pl_module.automatic_optimization:
                raise ValueError(
                    f"{self._who} needs automatic optimization, but {type(pl_module).__name__}"
                    ".automatic_optimization is False: the callback cannot know how your training_step steps. Run "
                    "lrkit.find_lr yourself before the fit, with a step_fn that computes the loss "
                    "(lrkit.find_lr(module, optimizer, loader, step_fn=...)), and set the LR you get"
                )
            if is_param_in_hook_signature(pl_module.training_step, "dataloader_iter", explicit=True):
                raise ValueError(
                    f"{self._who} calls training_step with one batch at a time, but {type(pl_module).__name__}"
                    ".training_step(dataloader_iter) draws its own batches from the loader's iterator: the callback "
                    "cannot know how many it takes per step. Run lrkit.find_lr yourself before the fit, with a "
                    "step_fn that computes the loss of one batch (lrkit.find_lr(module, optimizer, loader, "
                    "step_fn=...)), and set the LR you get"
                )
            if trainer.world_size > 1:
                strategy = trainer.strategy
                wrapped = getattr(strategy, "model", None)
                if not isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
                    raise ValueError(
                        f"{self._who} runs under several processes with DDP only (strategy='ddp', 'ddp_spawn', "
                        f"...), but this fit has world_size={trainer.world_size} with {type(strategy).__name__}, "
                        f"whose model is a {type(wrapped).__name__}. Run the test in a one-device fit first "
                        f"(pl.Trainer(devices=1, max_steps=0, callbacks=[{self._who}(...)]) or lrkit.find_lr by "
                        "hand) and pass the LR it found (finder.lr) to this fit"
                    )
                if getattr(strategy, "_model_averager", None) is not None:
                    raise ValueError(
                        f"{self._who} does not run under DDP with post-local SGD model averaging "
                        "(DDPStrategy(ddp_comm_state=PostLocalSGDState(...))): its optimizer wrapper is not what "
                        "configure_optimizers builds. Run the test in a fit without it first and pass the LR it found "
                        "(finder.lr) to this fit"
                    )
            source = trainer.fit_loop._data_source
            if trainer.limit_train_batches == 0 or not source.is_defined():
                raise ValueError(f"{self._who} needs the fit's train data: pass train_dataloaders= to trainer.fit, "
                                 "or define train_dataloader() in the module or datamodule (limit_train_batches > 0)")

        def _attr(self, pl_module: Any) -> str | None:
            if self.attr_name is False:
                return None
            if isinstance(self.attr_name, str):
                if not lightning_hasattr(pl_module, self.attr_name):
                    raise ValueError(
                        f"{self._who}(attr_name={self.attr_name!r}): {type(pl_module).__name__} has no attribute "
                        f"{self.attr_name!r}, neither on the module nor in its hparams. Name the attribute "
                        "configure_optimizers reads the LR from, or attr_name=None (look for 'lr'/'learning_rate') "
                        "or False (scale the optimizer Lightning built)"
                    )
                return self.attr_name
            return next((a for a in ("lr", "learning_rate") if lightning_hasattr(pl_module, a)), None)

        def _resume_attr(self, pl_module: Any) -> None:
            """On a resumed fit, put the LR the checkpoint's optimizer trains at (``.lr``, from the checkpoint) back
            in the module's LR attribute, so ``self.lr`` / ``hparams`` (and the hparams of the checkpoints the fit
            writes) say the LR it trains at. Nothing is rebuilt: the checkpoint's optimizer is loaded after."""
            if self.lr is None or self.attr_name is False:
                return
            if isinstance(self.attr_name, str):
                attr = self.attr_name if lightning_hasattr(pl_module, self.attr_name) else None
            else:
                attr = self._attr(pl_module)
            if attr is not None and isinstance(lightning_getattr(pl_module, attr), (int, float)):
                # the value the choice set it to (ChooseLRCallback: chosen x attribute / peak where the attribute
                # is not the schedule's peak), else the LR found
                _set_lr_attr(pl_module, attr, self._attr_lr if self._attr_lr is not None else self.lr)

        def _settings(self, trainer: Any) -> dict[str, Any]:
            """``find_lr``'s keywords from the Trainer: accumulation, clipping, mixed precision and its scaler."""
            from lightning.pytorch.utilities.model_helpers import is_overridden

            # a GradientAccumulationScheduler sets accumulate_grad_batches at each epoch's start, after this
            accumulation = _accumulation(trainer)(trainer.current_epoch)
            kwargs: dict[str, Any] = {"accumulation_steps": accumulation, "device": trainer.strategy.root_device}
            module = trainer.lightning_module
            if is_overridden("configure_gradient_clipping", module):
                warnings.warn(
                    f"{self._who}: {type(module).__name__} overrides configure_gradient_clipping, which the range "
                    "test does not call: it clips as Trainer(gradient_clip_val=..., gradient_clip_algorithm='norm') "
                    f"says (gradient_clip_val={trainer.gradient_clip_val}), by lrkit.find_lr's max_grad_norm",
                    UserWarning,
                    stacklevel=3,
                )
            clip = trainer.gradient_clip_val
            if clip is not None and float(clip) > 0:
                algorithm = trainer.gradient_clip_algorithm  # None: Lightning's default, "norm"
                algorithm = "norm" if algorithm is None else str(getattr(algorithm, "value", algorithm))
                if algorithm == "norm":
                    kwargs["max_grad_norm"] = float(clip)
                else:
                    warnings.warn(
                        f"{self._who}: the fit clips gradients by value (gradient_clip_val={clip}, "
                        f"gradient_clip_algorithm={algorithm!r}); lrkit.find_lr clips by norm only, so the range "
                        "test runs without clipping",
                        UserWarning,
                        stacklevel=3,
                    )
            plugin = trainer.precision_plugin
            if isinstance(plugin, MixedPrecision):
                kwargs["amp"] = "fp16" if str(plugin.precision).startswith("16") else "bf16"
                scaler = getattr(plugin, "scaler", None)
                if scaler is not None and scaler.is_enabled():
                    kwargs["scaler"] = scaler
            return kwargs

        # ---------------------------------------------------------------- the test
        @property
        def _who(self) -> str:
            return type(self).__name__

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            """Run the range test, restore everything, and set the fit's LR to the suggestion."""
            attr = self._start(trainer, pl_module)
            if attr is False:
                return
            result = self.run_test(trainer, pl_module)
            self._write_curve(trainer, result)
            suggestion = float(result.suggest(self.rule))  # a curve too short to judge raises, naming why
            self.set_lr(trainer, pl_module, suggestion, attr)
            from lightning.pytorch.utilities import rank_zero_info

            rank_zero_info(f"{self._who}: the range test ({result.num_steps_run} steps) suggests {suggestion:.4g} "
                           f"(rule {self.rule!r}); the fit trains at it")

        def _start(self, trainer: Any, pl_module: Any) -> str | bool | None:
            """The checks before a test: ``False`` when none runs (a resumed fit, ``fast_dev_run``), else the LR
            attribute to set (``None``: scale the built optimizer). Refuses what the test cannot run on."""
            if trainer.ckpt_path is not None:  # the checkpoint's optimizer (its LR) is loaded after this hook
                if self.lr is None:  # a checkpoint written without this callback (or before it set an LR)
                    from lightning.pytorch.utilities import rank_zero_warn

                    rank_zero_warn(
                        f"{self._who}: the fit resumes from ckpt_path={str(trainer.ckpt_path)!r}, which holds no LR "
                        f"this callback set, so the callback runs no {self._what} (the checkpoint's optimizer, its LR "
                        "included, is loaded after on_fit_start and the fit trains at that LR) and .lr stays None. To "
                        "test anew, "
                        f"fit without ckpt_path on the checkpoint's weights ({type(pl_module).__name__}"
                        ".load_from_checkpoint(...))",
                        category=UserWarning,
                        stacklevel=3,
                    )
                self._resume_attr(pl_module)
                return False
            if trainer.fast_dev_run:
                warnings.warn(f"{self._who}: no range test under fast_dev_run", UserWarning, stacklevel=3)
                return False
            self._refuse(trainer, pl_module)
            setters = [c for c in trainer.callbacks if isinstance(c, FindLRCallback)]
            if len(setters) > 1 and self is setters[0]:
                names = ", ".join(type(c).__name__ for c in setters)
                warnings.warn(
                    f"{self._who}: the fit has {len(setters)} callbacks that set its LR ({names}): each runs at the "
                    f"fit's start and the last one's LR ({type(setters[-1]).__name__}) is the one the fit trains at. "
                    "Keep one",
                    UserWarning,
                    stacklevel=3,
                )
            return self._attr(pl_module)  # checked before the test runs

        def _write_curve(self, trainer: Any, result: FinderResult) -> None:
            """``out``'s ``lr_find.json`` and ``lr_find.png`` (rank 0: every rank has the same curve)."""
            if self.out is None or not trainer.is_global_zero:
                return
            self.out.mkdir(parents=True, exist_ok=True)
            result.to_json(self.out / "lr_find.json")
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                warnings.warn(f"{self._who}: matplotlib is not installed, so lr_find.png is not drawn "
                              "(pip install matplotlib); lr_find.json is written", UserWarning, stacklevel=3)
            else:
                import matplotlib.pyplot as plt

                plt.close(result.plot(self.out / "lr_find.png"))

        def run_test(self, trainer: Any, pl_module: Any) -> FinderResult:
            """:func:`lrkit.find_lr` on the module, its optimizer and the fit's train data; sets ``.result``."""
            with self._fit_parts(trainer, pl_module) as parts:
                kwargs = {**parts.settings, **self.find_lr_kwargs}
                if parts.quiet:
                    kwargs["progress"] = None
                result = find_lr(parts.model, trainer.optimizers[0], parts.batches, step_fn=parts.step_fn,
                                 start_lr=self.start_lr, end_lr=self.end_lr, num_steps=self.num_steps,
                                 mode=self.mode, rule=self.rule, **kwargs)
            self.result = result
            return result

        @contextlib.contextmanager
        def _fit_parts(self, trainer: Any, pl_module: Any, val: bool = False) -> Iterator[_Parts]:
            """What a test trains on, as the fit trains: the module (under DDP its wrapper), the fit's train batches
            (and with ``val`` its first validation loader's, ``None`` without one), ``training_step`` as the loss,
            ``find_lr``'s keywords from the Trainer. On exit: the test's logging silenced and metric states, the
            loaders' generators and workers, and the RNG draws of the extra ``*_dataloader()`` calls put back."""
            # train_dataloader() runs once more in the fit: its RNG draws (a random split, ...) are put back after
            # the test, so the fit's call draws what it would have drawn without the test
            restore_rng = RNGState.capture().restore
            raw = trainer.fit_loop._data_source.dataloader()
            try:
                _check_train_mode(raw, self._who)
            except ValueError:
                restore_rng()
                raise
            # overfit_batches: the fit loop draws its batches unshuffled (a SequentialSampler), the same ones each epoch
            fitted = _unshuffled(raw) if trainer.overfit_batches > 0 else raw
            # under DDP each rank draws its shard, as the fit's first epoch does: the loaders get the sampler the fit
            # loop gives its own (a DistributedSampler, at epoch 0); copies, so the fit's loaders are not touched
            distributed = trainer.world_size > 1
            data = _shard(trainer, fitted) if distributed else fitted
            val_raw = _val_loader(trainer, pl_module) if val else None
            val_data = _shard(trainer, val_raw, "val") if distributed and val_raw is not None else val_raw
            # iterating the loaders advances their own shuffling generators (DataLoader(generator=...)) and makes the
            # iterator a persistent_workers loader keeps (its workers' seeds): both put back after the test, so the
            # fit's first epoch has the order and worker seeds it would have had without the test
            loaders = list({id(d): d for d in _loaders(raw) + _loaders(fitted) + _loaders(data) + _loaders(val_raw)
                            + _loaders(val_data)}.values())
            generators = [(g, g.get_state()) for d in loaders for g in _loader_generators(d)]
            workers = _OwnWorkers(*loaders)
            limit = trainer.overfit_batches if trainer.overfit_batches > 0 else trainer.limit_train_batches
            batches = _Batches(data, trainer, pl_module, limit)
            val_batches = (_Batches(val_data, trainer, pl_module, trainer.limit_val_batches, "val")
                           if val_data is not None else None)
            counter = itertools.count()
            # a None from training_step after it gave losses (Lightning's skip, e.g. of a non-finite loss): see
            # _skipped_loss; "losses": it gave one, "warned": the None was said
            skips = {"losses": False, "warned": False}
            name = type(pl_module).__name__
            plugin = trainer.precision_plugin
            # the fit runs training_step in the plugin's train_step_context (a default dtype for "64-true" and
            # "bf16-true"); MixedPrecision's is autocast, which find_lr's amp= does itself
            step_context = contextlib.nullcontext if isinstance(plugin, MixedPrecision) else plugin.train_step_context

            # under DDP the forward goes through the DDP wrapper (Lightning's forward redirection, as the fit's
            # training_step does), so backward all-reduces the gradients and every rank steps alike
            model = trainer.strategy.model if distributed else pl_module
            redirect: Any = trainer.strategy._forward_redirection if distributed else None
            # the batch index only where training_step takes it, as the fit loop passes it (``_build_kwargs``):
            # ``def training_step(self, batch)`` is a valid Lightning signature
            takes_idx = is_param_in_hook_signature(pl_module.training_step, "batch_idx", min_args=2)

            def step_fn(module: Any, batch: Any) -> torch.Tensor:
                args = (batch, next(counter)) if takes_idx else (batch,)
                try:
                    with step_context():
                        if distributed:
                            out = redirect(module, pl_module, "training_step", *args)
                        else:
                            out = module.training_step(*args)
                except Exception as e:
                    # a scoring pass runs in eval mode (lr0="auto"'s validation loss), the test and trials in train
                    if hasattr(e, "add_note") and not pl_module.training:  # Python 3.11+
                        e.add_note(
                            f"lrkit: raised by {name}.training_step on a batch of the fit's first validation loader, "
                            f"on which {type(self).__name__} scores its trials (the loss the fit trains on, on "
                            "held-out batches): training_step must take the validation loader's batches too"
                        )
                    elif hasattr(e, "add_note"):
                        # the test runs at the callbacks' on_fit_start, which Lightning calls before the module's
                        # own on_fit_start / on_train_start: what those set up is not there yet
                        e.add_note(
                            f"lrkit: raised by {name}.training_step in {type(self).__name__}'s {self._what} at the "
                            "start of the fit (the callbacks' on_fit_start), before the module's own on_fit_start "
                            "and on_train_start hooks run: set up what training_step needs in __init__, setup() or "
                            "configure_optimizers"
                        )
                    raise
                loss = out.get("loss") if isinstance(out, Mapping) else out
                if not isinstance(loss, torch.Tensor):
                    if out is None and skips["losses"] and pl_module.training:  # (not a trial's scoring pass)
                        return _skipped_loss(skips, name, self._what, pl_module.device)
                    got = "a dict without 'loss'" if isinstance(out, Mapping) else repr(out)[:60]
                    raise ValueError(
                        f"{type(self).__name__}: {name}.training_step returned {got}; the range test needs the loss "
                        "(a tensor, or a dict with 'loss') at every batch"
                    )
                skips["losses"] = True
                return loss

            # the records (lr_find.json's "loss", lr_auto.json's "finder_loss") name the loss by step_fn's name
            step_fn.__name__ = step_fn.__qualname__ = f"{name}.training_step"

            quiet = trainer.global_rank > 0  # every rank records the same curve: rank 0 alone reports on it
            logging_state = _silence_logging(pl_module)
            metrics = _metric_states(pl_module)
            try:
                with warnings.catch_warnings():
                    if quiet:
                        warnings.simplefilter("ignore")
                    yield _Parts(model, batches, val_batches, step_fn, self._settings(trainer), quiet)
            finally:
                _restore_logging(pl_module, logging_state)
                _restore_metric_states(metrics)
                workers.restore()
                for generator, state in generators:
                    generator.set_state(state)
                restore_rng()

        def set_lr(self, trainer: Any, pl_module: Any, lr: float, attr: str | None) -> None:
            """Train at ``lr``: set the module's LR attribute and rebuild the optimizers, or scale the built ones."""
            optimizer = trainer.optimizers[0]
            self._attr_lr = None
            if attr is not None:
                before = lightning_getattr(pl_module, attr)
                old_peak = schedule_peak(optimizer, _finder_scheduler(trainer, optimizer, warn=False))
                value = self._attr_value(lr, before, self._fit_peak or old_peak)
                _set_lr_attr(pl_module, attr, value)
                self._attr_lr = value
                # the fit ran configure_optimizers once: its draws, if any, not twice
                restore_rng = RNGState.capture().restore
                trainer.strategy.setup_optimizers(trainer)  # configure_optimizers again, from the new attribute
                restore_rng()
                optimizer = trainer.optimizers[0]
                new_peak = schedule_peak(optimizer, _finder_scheduler(trainer, optimizer, warn=False))
                moved = isinstance(before, (int, float)) and not math.isclose(float(before), value, rel_tol=1e-9)
                if not (moved and math.isclose(new_peak, old_peak, rel_tol=1e-9)):
                    self.lr = lr
                    return
                warnings.warn(
                    f"{self._who}: {type(pl_module).__name__}.{attr} was set to {value:.4g}, but the optimizer "
                    f"configure_optimizers builds from it still peaks at {new_peak:.4g}: it does not read "
                    f"{attr}. The built optimizer and scheduler are scaled instead; pass attr_name= the attribute it "
                    "reads, or attr_name=False",
                    UserWarning,
                    stacklevel=3,
                )
            scheduler = _finder_scheduler(trainer, optimizer)
            backoff_lr(optimizer, scheduler, lr / (self._fit_peak or schedule_peak(optimizer, scheduler)))
            self.lr = lr

        #: The LR the fit's schedule peaks at, as a subclass read it off the fit (``None``: ``schedule_peak``'s).
        _fit_peak: float | None = None
        #: The value the LR attribute was set to (``None``: none was); a resumed fit puts it back.
        _attr_lr: float | None = None
        #: What the callback trains before the fit, as its messages name it.
        _what: str = "range test"

        def _attr_value(self, lr: float, before: Any, old_peak: float) -> float:
            """The value the LR attribute is set to for the fit to train at ``lr``: ``lr`` itself (as Lightning's
            ``LearningRateFinder`` sets its suggestion)."""
            return lr

        # ---------------------------------------------------------------- results, also from spawned ranks
        @property
        def lr(self) -> float | None:
            """The LR the fit trains at (the suggestion); ``None`` before a test set one. After a fit under a spawning
            strategy (``ddp_spawn``), the ranks' (see :meth:`_receive`)."""
            self._receive()
            return self._lr

        @lr.setter
        def lr(self, value: float | None) -> None:
            self._lr = value
            self._drop_unread()

        @property
        def result(self) -> FinderResult | None:
            """The :class:`~lrkit.FinderResult` of the last test; ``None`` before one ran (after a ``ddp_spawn`` fit:
            the ranks')."""
            self._receive()
            return self._result

        @result.setter
        def result(self, value: FinderResult | None) -> None:
            self._result = value
            self._drop_unread()

        def _drop_unread(self) -> None:
            """In the launching process, a value set here (a fit in this process, a resumed state) is newer than any
            results an earlier spawned fit handed back unread: that file is removed, so reading ``.lr`` does not
            replace the new value with the old one."""
            if self.__dict__.get("_launcher_pid") == os.getpid() and "_outbox" in self.__dict__:
                with contextlib.suppress(OSError):
                    os.remove(self._outbox)

        def _open_outbox(self) -> None:
            """Name this callback's own hand-back file (``lrkit-<class>-<pid>-<id>.json`` in the temporary folder; made
            only when a spawned rank writes it, removed when read or when the callback goes), first removing the files
            launchers that no longer run left unread (:func:`_sweep_outboxes`)."""
            folder = tempfile.gettempdir()
            _sweep_outboxes(folder)
            self._launcher_pid = os.getpid()
            name = f"lrkit-{type(self).__name__}-{self._launcher_pid}-{uuid.uuid4().hex}.json"
            self._outbox = os.path.join(folder, name)
            weakref.finalize(self, _discard_outbox, self._outbox, self._launcher_pid)

        def __copy__(self) -> Any:
            return self._copied(None)

        def __deepcopy__(self, memo: dict[int, Any]) -> Any:
            return self._copied(memo)

        def _copied(self, memo: dict[int, Any] | None) -> Any:
            """A copy (deep with ``memo``) that, made in the launching process, has its own hand-back file — a shared
            one gave one copy's spawned results to the other. Results handed back unread are taken first, so the
            original and the copy both keep them. In a spawned rank the copy keeps the launcher's file."""
            self._receive()
            new = type(self).__new__(type(self))
            if memo is not None:
                memo[id(self)] = new
            for key, value in self.__dict__.items():
                new.__dict__[key] = value if memo is None else copy.deepcopy(value, memo)
            if self.__dict__.get("_launcher_pid") == os.getpid():
                new._open_outbox()
            return new

        def _send(self, trainer: Any) -> None:
            """In a rank that a spawning launcher started (``ddp_spawn``, ``ddp_fork``, ``ddp_notebook``: Lightning
            sends back the weights only), local rank 0 writes the results to the launching process's file (atomically:
            written beside it, then renamed). Nothing elsewhere: a rank started by a script launcher (``ddp``) built
            its own callback, and the launching process is rank 0 itself."""
            if self.__dict__.get("_launcher_pid") in (None, os.getpid()) or trainer.local_rank != 0 or self._lr is None:
                return
            try:
                from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
            except ImportError:  # pragma: no cover - another Lightning layout: nothing to hand back through
                return
            if not isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher):
                return
            sent = self._sent_record()
            fd, part = tempfile.mkstemp(dir=os.path.dirname(self._outbox), prefix=f".lrkit-{self._launcher_pid}-",
                                        suffix=".part")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(sent, f)
                os.replace(part, self._outbox)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.remove(part)
                warnings.warn(f"{self._who}: could not hand the LR ({self._lr:.4g}) back to the launching process "
                              f"({type(e).__name__}: {e}); there .lr stays None: read out=/lr_find.json, or use "
                              "strategy='ddp'", UserWarning, stacklevel=2)

        def _receive(self) -> None:
            """In the launching process, take the results a spawned rank handed back (:meth:`_send`), once."""
            if self.__dict__.get("_launcher_pid") != os.getpid() or not os.path.exists(self._outbox):
                return
            try:  # JSON, never a pickle: the file sits in the shared temporary folder
                with open(self._outbox, encoding="utf-8") as f:
                    sent = json.load(f)
                self._take_record(sent)
            except (OSError, ValueError, TypeError, KeyError):
                return
            finally:
                with contextlib.suppress(OSError):
                    os.remove(self._outbox)

        def _sent_record(self) -> dict[str, Any]:
            """What :meth:`_send` hands back, as JSON-ready values (:meth:`_take_record` reads it)."""
            return {"lr": self._lr, "attr_lr": self._attr_lr,
                    "result": self._result.to_dict() if self._result is not None else None}

        def _take_record(self, sent: dict[str, Any]) -> None:
            """Set what :meth:`_sent_record` wrote (in the launching process)."""
            self.__dict__["_lr"] = None if sent["lr"] is None else float(sent["lr"])
            self.__dict__["_attr_lr"] = None if sent["attr_lr"] is None else float(sent["attr_lr"])
            record = sent["result"]
            self.__dict__["_result"] = None if record is None else FinderResult._from_dict(record, "the ranks' record")

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            """Hand the results back to the launching process under a spawning strategy (:meth:`_send`)."""
            self._send(trainer)

        # ---------------------------------------------------------------- checkpoints
        def state_dict(self) -> dict[str, Any]:
            """The LR found, and the value the LR attribute was set to where that is not it (a resumed fit runs no
            test: both come back from the checkpoint; plain floats, ``torch.load(weights_only=True)`` reads them)."""
            if self.lr is None:
                return {}
            state = {"lr": float(self.lr)}
            if self._attr_lr is not None and self._attr_lr != self.lr:  # an attribute that is not the fit's peak
                state["attr_lr"] = float(self._attr_lr)
            return state

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            """Take ``.lr`` (and the value the LR attribute was set to, where it is not ``.lr``) from a checkpoint
            (restored before ``on_fit_start``, which then runs no test)."""
            if "lr" in state_dict:
                self.lr = float(state_dict["lr"])
                self._attr_lr = float(state_dict["attr_lr"]) if "attr_lr" in state_dict else None

    FindLRCallback.__module__ = __name__
    FindLRCallback.__qualname__ = "FindLRCallback"
    return FindLRCallback


def _build_chooser() -> type:
    FindLRCallback = globals().get("FindLRCallback") or _LAZY["FindLRCallback"]("FindLRCallback")
    from lightning.pytorch.utilities import rank_zero_info

    from lrkit.finder.range_test import _QUALITY_WORDS, MIN_NUM_STEPS
    from lrkit.finder.suggest import DEFAULT_RULE
    from lrkit.train.auto import (
        FINDER_END_LR,
        FINDER_START_LR,
        PREFIX_RANGE_FRACTION,
        AutoLR,
        _check_num_candidates,
        _check_search,
        _guard_hint,
        _prefix_range_steps,
        _prefix_shortest_run,
        choose_lr0,
        plan_budget,
    )

    class ChooseLRCallback(FindLRCallback):  # type: ignore[misc,valid-type]
        """``lr0="auto"`` inside ``trainer.fit``: choose the peak LR for *this* fit — its schedule, its length — with
        :func:`lrkit.train.auto.choose_lr0`, and train at it.

        :class:`FindLRCallback` reads the range test's suggestion alone; this adds ``choose_lr0``'s confirmation:
        short trials of the fit's own schedule, compressed, from the same starting state, within ``budget`` of the
        fit's optimizer steps (see *How it chooses* under ``lr0="auto"`` in the README); or, opt-in,
        ``search="prefix"``: five trials of the fit's own schedule over its first 20% plus a 5% anneal to zero, about
        1.5 fits of extra compute (``choose_lr0``'s). It runs on what
        :class:`FindLRCallback` runs on (the module, ``trainer.optimizers[0]``, the fit's train batches prepared as
        the fit loop prepares them, ``training_step`` as the loss, accumulation, clipping, mixed precision, DDP), is
        refused where it is, and puts everything back the same way. From the fit too:

        - ``total_steps``: the optimizer steps the fit takes — ``max_epochs`` passes over the train batches
          (``limit_train_batches`` applied, ``accumulate_grad_batches`` or a ``GradientAccumulationScheduler``'s per
          epoch), cut at ``max_steps``; early stopping and ``max_time`` cannot be foreseen. A fit without an end
          (``max_time`` alone included) is refused; Lightning's default length (``max_epochs`` not set: 1000
          epochs) is warned about. A second ``fit`` of the same trainer counts from the epoch and ``global_step``
          it starts at.
        - the schedule: the LR schedulers ``configure_optimizers`` returned are stepped, as the fit loop steps them
          (``interval``, ``frequency``, the module's ``lr_scheduler_step``, with ``trainer.current_epoch``,
          ``global_step`` and the batch index reading as the fit's there), through the whole fit on the
          optimizer's settings, recording every group's LR (and a cycled momentum) at each step; then put back.
          Each trial replays that record over its own steps (step ``k`` of ``n`` plays the fit's step
          ``k * total // n``), scaled to the trial's peak LR. Any step- or epoch-interval scheduler works this way
          (warmup, cosine, OneCycleLR, SequentialLR, several at once, lrkit's); a ``ReduceLROnPlateau`` follows a
          metric and is refused — pass ``make_scheduler=`` then. No scheduler: a constant LR. An ``optimizer_step``
          the module overrides (a hand warm-up writing the LR there) is not called by the trials: warned about.
        - the trials' score: the loss ``training_step`` returns on the fit's first validation loader
          (``limit_val_batches`` applied), in eval mode without gradients — the loss the fit trains on, on held-out
          batches; without validation data (or ``validation_step``) the trials are scored on their training loss.
        - ``seed``: ``seed_everything``'s (``PL_GLOBAL_SEED``), else 0: each trial starts from it.

        The chosen LR is the highest LR the fit trains at (the largest param group's; with the record, the highest
        it holds: the schedule's peak — OneCycleLR's ``max_lr``, the LR a warmup rises to — unless the fit ends
        before reaching it or the schedule rises above its base; with ``make_scheduler``, the optimizer's largest
        LR, as ``choose_lr0`` reads it): the range test sweeps the LRs themselves. Every group keeps its ratio. It is
        set as :class:`FindLRCallback` sets its suggestion — the module's ``lr``/``learning_rate`` (or
        ``attr_name``) and ``configure_optimizers`` run again, or the built optimizer and scheduler scaled — with one
        difference: an attribute that is not itself that peak (``OneCycleLR(max_lr=2 * self.lr)``, a warmup longer
        than the fit) is set to ``chosen * attribute / peak``, so the fit peaks at the chosen LR. A fit with the
        callback is bit-identical to one without it at the chosen LR set by hand.

        Args:
            budget: the most extra compute, as a fraction of the fit's optimizer steps (``None``, the default: 0.3 =
                30% of the fit); ``search="guard"`` only.
            num_candidates: the most confirmation trials (``None``, the default: 3); ``search="guard"`` only.
            search: ``"guard"`` (the default: the range test and short confirmation trials within ``budget``) or
                ``"prefix"`` (any case; opt-in: the range test on a quarter of the fit, then five trials at the
                suggestion times ``10^(k/2)``, ``k = -2..2``, each the fit's schedule for its first 20% of the steps
                and a 5% linear anneal to zero — about 1.5 fits of extra compute, with lower regret where the range
                test is far off; ``choose_lr0(search="prefix")``). Its cost is fixed: a ``budget`` or
                ``num_candidates`` given with it is refused, and a fit needs at least 40 optimizer steps for it.
            make_scheduler: ``make_scheduler(optimizer, steps) -> LRScheduler``, the fit's schedule over ``steps``
                steps built on the optimizer's LRs as the peak (``choose_lr0``'s); ``None`` (default): replayed from
                the fit's schedulers, as above.
            seed: the trials' seed (``None``: ``PL_GLOBAL_SEED``, else 0).
            attr_name, out: as :class:`FindLRCallback`; ``out`` also gets ``lr_auto.json`` (:meth:`AutoLR.to_dict`:
                the suggestion, each trial, the reason).
            log: called on rank 0 with one line per stage and per trial; ``None`` (default): Lightning's info log
                (``rank_zero_info``, shown by default); ``False``: silent.
            **finder_kwargs: :func:`lrkit.find_lr` options for the range test (``num_steps``, ``start_lr``,
                ``end_lr``, ``rule``, ``progress``, ``snapshot_device``, ...); those the fit supplies are refused,
                naming where they come from.

        ``.auto`` is the :class:`~lrkit.train.auto.AutoLR` (``.lr``, ``.trials``, ``.extra_steps``, ``.reason``),
        ``.result`` its range test, ``.lr`` the LR set (``None`` before). A resumed fit (``ckpt_path=``) chooses
        nothing and takes ``.lr`` from the checkpoint, as :class:`FindLRCallback` does.

        Example (needs lightning):
            >>> import lightning.pytorch as pl, torch
            >>> from lrkit.integrations.lightning import ChooseLRCallback
            >>> class Net(pl.LightningModule):
            ...     def __init__(self):
            ...         super().__init__(); self.lr = 0.01; self.net = torch.nn.Linear(4, 1)
            ...     def training_step(self, batch, batch_idx):
            ...         x, y = batch; return torch.nn.functional.mse_loss(self.net(x), y)
            ...     def configure_optimizers(self):
            ...         opt = torch.optim.SGD(self.parameters(), lr=self.lr)
            ...         return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)]
            >>> x = torch.randn(256, 4); y = x.sum(1, keepdim=True)
            >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
            >>> chooser = ChooseLRCallback(budget=0.5, log=False)
            >>> trainer = pl.Trainer(max_epochs=10, callbacks=[chooser], logger=False, enable_progress_bar=False,
            ...                      enable_checkpointing=False, enable_model_summary=False)
            >>> model = Net(); trainer.fit(model, loader)
            >>> model.lr == chooser.lr == chooser.auto.lr, chooser.auto.extra_steps <= 80
            (True, True)
            >>> prefix = ChooseLRCallback(search="prefix", log=False)  # opt-in: about 1.5 fits of extra compute
            >>> trainer = pl.Trainer(max_epochs=10, callbacks=[prefix], logger=False, enable_progress_bar=False,
            ...                      enable_checkpointing=False, enable_model_summary=False)
            >>> model = Net(); trainer.fit(model, loader)
            >>> model.lr == prefix.auto.lr, len(prefix.auto.trials), prefix.auto.extra_steps <= 1.5 * 160
            (True, 5, True)
        """

        _what = "range test and trials"

        def __init__(self, *, budget: float | None = None, num_candidates: int | None = None,
                     make_scheduler: Callable[[torch.optim.Optimizer, int], Any] | None = None,
                     seed: int | None = None, attr_name: str | bool | None = None,
                     out: str | os.PathLike[str] | None = None, log: Callable[[str], None] | bool | None = None,
                     search: str = "guard", **finder_kwargs: Any) -> None:
            super().__init__(attr_name=attr_name, out=out)
            # "prefix" refuses a budget or num_candidates given with it (its cost is fixed): both stay None then
            self.search = _check_search(search, budget, num_candidates)
            self.budget: float | None = None
            self.num_candidates: int | None = None
            if self.search == "guard":
                self.budget = check_positive("budget", 0.3 if budget is None else budget)
                self.num_candidates = _check_num_candidates(3 if num_candidates is None else num_candidates)
            if make_scheduler is not None and not callable(make_scheduler):
                raise ValueError(f"make_scheduler={make_scheduler!r} must be a callable (optimizer, steps) -> "
                                 "LRScheduler, or None to replay the fit's schedulers")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                     or not -(2**63) <= seed < 2**64):
                # as choose_lr0 checks it (a numpy integer is one; torch's seed range), now rather than at the fit
                raise ValueError(f"seed={seed!r} must be an integer in [-2**63, 2**64) (torch's seed range), or None "
                                 "for seed_everything's seed")
            if not (log is None or log is False or callable(log)):
                raise ValueError(f"log={log!r} must be a callable taking one line of text (e.g. print), None "
                                 "(Lightning's info log) or False (silent)")
            _check_finder_kwargs(finder_kwargs, "ChooseLRCallback",
                                 ("budget", "num_candidates", "make_scheduler", "seed", "attr_name", "out", "log",
                                  "search"))
            defaults = {"start_lr": FINDER_START_LR, "end_lr": FINDER_END_LR, "num_steps": 100, "mode": "exp",
                        "rule": DEFAULT_RULE}  # choose_lr0's: only the values given are in question
            _check_test_settings(*({**defaults, **finder_kwargs}[k] for k in defaults))
            self.make_scheduler = make_scheduler
            self.seed = int(seed) if seed is not None else None
            self._log = log  # (not .log: Lightning sets every callback's .log to the module's at the fit's start)
            self.find_lr_kwargs = dict(finder_kwargs)
            self.auto = None

        def _sent_record(self) -> dict[str, Any]:
            return {**super()._sent_record(), "auto": self._auto.to_dict() if self._auto is not None else None}

        def _take_record(self, sent: dict[str, Any]) -> None:
            super()._take_record(sent)
            record = sent["auto"]
            auto = None if record is None else AutoLR.from_dict(record)
            if auto is not None and auto.finder is None:  # (the record holds no curve) its range test, as in a fit here
                auto.finder = self.__dict__["_result"]
            self.__dict__["_auto"] = auto

        @property
        def auto(self) -> AutoLR | None:
            """The :class:`~lrkit.train.auto.AutoLR` of the last choice; ``None`` before one ran (after a
            ``ddp_spawn`` fit: the ranks')."""
            self._receive()
            return self._auto

        @auto.setter
        def auto(self, value: AutoLR | None) -> None:
            self._auto = value
            self._drop_unread()

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            """Choose the peak LR for this fit, restore everything, and set the fit's LR to it."""
            attr = self._start(trainer, pl_module)
            if attr is False:
                return
            auto = self.run_choice(trainer, pl_module)
            self._write_curve(trainer, auto.finder)
            if self.out is not None and trainer.is_global_zero:
                atomic_write_text(self.out / "lr_auto.json", json.dumps(auto.to_dict(), indent=2) + "\n")
            self.set_lr(trainer, pl_module, float(auto.lr), attr)  # type: ignore[arg-type]

        def run_choice(self, trainer: Any, pl_module: Any) -> AutoLR:
            """:func:`lrkit.train.auto.choose_lr0` on the fit; sets ``.auto`` and ``.result``."""
            optimizer = trainer.optimizers[0]
            peak = schedule_peak(optimizer, _finder_scheduler(trainer, optimizer, warn=False))
            if not (math.isfinite(peak) and peak > 0):
                raise ValueError(f"{self._who}: the fit's optimizer peaks at LR {peak:g}; the chosen LR replaces a "
                                 "positive peak (every group keeps its ratio to it): build the optimizer with lr > 0")
            seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
            self._fit_peak = None
            with self._fit_parts(trainer, pl_module, val=True) as parts:
                try:
                    per_epoch: float = len(parts.batches)
                except TypeError:  # an iterable loader: as long as max_steps says
                    per_epoch = math.inf
                accumulation = _accumulation(trainer)
                total = _run_length(trainer, per_epoch, accumulation, self._who)
                _warn_default_length(trainer, total, self.budget, per_epoch / accumulation(0), self._who,
                                     self.search)
                saved = group_values(optimizer)
                make = self.make_scheduler
                if make is None:
                    _warn_schedule_changers(trainer, self._who)
                    _warn_optimizer_step(pl_module, self._who)
                    lrs, momenta = _record_schedule(trainer, pl_module, optimizer, total, per_epoch, accumulation,
                                                    self._who)
                    # the peak is the highest LR the fit trains at (the range test sweeps the LRs themselves): the
                    # schedule's own peak, unless the fit ends before reaching it or the schedule rises above it
                    peak = run_peak(lrs, peak)
                    if not (math.isfinite(peak) and peak > 0):
                        raise ValueError(f"{self._who}: the fit's schedule never rises above LR {peak:g}; there is no "
                                         "peak to choose (build the optimizer and schedule with LRs > 0)")
                    self._fit_peak = peak

                    def make(opt: torch.optim.Optimizer, steps: int) -> Any:
                        return Replay(opt, lrs, momenta, peak, steps)

                    make.__name__ = "the fit's schedule"  # type: ignore[attr-defined]
                    peaks_first(optimizer, lrs)  # the range test sweeps the groups at their peaks' ratios
                settings = dict(parts.settings)
                accumulate = int(settings.pop("accumulation_steps", 1))
                max_grad_norm = settings.pop("max_grad_norm", None)
                kwargs = {**settings, **self.find_lr_kwargs}
                if parts.quiet:
                    kwargs["progress"] = None
                if parts.quiet or self._log is False:
                    log = None
                else:
                    log = rank_zero_info if self._log is None else self._log  # type: ignore[assignment]
                # the range test's warnings name its settings as this callback takes them: num_steps=, start_lr=
                words = _QUALITY_WORDS.set(({}, ""))
                try:
                    auto = choose_lr0(parts.model, optimizer, parts.batches, parts.val_batches, total_steps=total,
                                      make_scheduler=make, step_fn=parts.step_fn, budget=self.budget,
                                      num_candidates=self.num_candidates, seed=seed, finder_kwargs=kwargs,
                                      accumulate=accumulate, max_grad_norm=max_grad_norm, log=log,
                                      search=self.search)
                except ValueError as e:
                    # choose_lr0's words (total_steps, finder_kwargs, lrkit.find_lr): say it in the fit's terms
                    if self.search == "prefix":
                        self._prefix_error(e, total)
                        raise
                    allows = plan_budget(total, self.budget, self.num_candidates).budget_steps
                    if "exceeds the extra budget" in str(e) and "num_steps" in self.find_lr_kwargs:
                        raise ValueError(
                            f"{self._who}(num_steps={self.find_lr_kwargs['num_steps']}): the range test's steps "
                            f"exceed the extra budget of {allows} optimizer steps (budget={self.budget:g} x the "
                            f"fit's {total} optimizer steps); lower num_steps= (or leave it out: the budget sets it) "
                            "or raise budget="
                        ) from None
                    if "needs at least 10 extra optimizer steps" not in str(e):
                        raise
                    need = math.ceil(10 / total * 100) / 100
                    raise ValueError(
                        f"{self._who} needs at least 10 extra optimizer steps for its range test, but budget="
                        f"{self.budget:g} x the fit's {total} optimizer steps allows {allows}; raise budget= to at "
                        f"least {need:g} (it may exceed 1), fit for longer (max_epochs / max_steps), or use "
                        "FindLRCallback (the range test alone)"
                    ) from None
                finally:
                    _QUALITY_WORDS.reset(words)
                    put_group_values(optimizer, saved)
            self.auto, self.result = auto, auto.finder
            return auto

        def _prefix_error(self, error: ValueError, total: int) -> None:
            """Raise ``choose_lr0``'s refusals of ``search="prefix"`` that name its own arguments (``total_steps``,
            ``finder_kwargs``) in the fit's terms; return for any other error (raised as it is)."""
            share = _prefix_range_steps(total)  # the range test's steps (choose_lr0's rounding)
            if "exceeds the range test's share" in str(error) and "num_steps" in self.find_lr_kwargs:
                raise ValueError(
                    f"{self._who}(num_steps={self.find_lr_kwargs['num_steps']}, search='prefix'): the range test's "
                    f"steps exceed its share of the prefix search, {share} optimizer steps ({PREFIX_RANGE_FRACTION:g} "
                    f"x the fit's {total} optimizer steps); lower num_steps= (or leave it out: the search sets it)"
                ) from None
            if "needs a run of at least" in str(error):
                raise ValueError(
                    f"{self._who}(search='prefix') needs at least {MIN_NUM_STEPS} optimizer steps for its range test "
                    f"({PREFIX_RANGE_FRACTION:g} of the fit), but the fit's {total} optimizer steps allow {share}: it "
                    f"needs a fit of at least {_prefix_shortest_run()} optimizer steps; fit "
                    f"for longer (max_epochs / max_steps), {_guard_hint(total)}, or use FindLRCallback (the range "
                    "test alone)"
                ) from None

        def _attr_value(self, lr: float, before: Any, old_peak: float) -> float:
            """The attribute that makes the rebuilt schedule peak at ``lr``: ``lr`` when the attribute is the peak
            (the usual ``lr=self.lr``), else ``lr * attribute / peak`` (``OneCycleLR(max_lr=2 * self.lr)``, a warmup
            the fit does not finish)."""
            if (not isinstance(before, (int, float)) or isinstance(before, bool) or not old_peak > 0
                    or math.isclose(float(before), old_peak, rel_tol=1e-9)):
                return lr
            return lr * float(before) / old_peak

    ChooseLRCallback.__module__ = __name__
    ChooseLRCallback.__qualname__ = "ChooseLRCallback"
    return ChooseLRCallback


def _discard_outbox(path: str, launcher_pid: int) -> None:
    """Remove a callback's unread results file when the callback goes (in the process that made it only)."""
    if os.getpid() == launcher_pid:
        with contextlib.suppress(OSError):
            os.remove(path)


#: ``lrkit-<class>-<pid>-<id>.json`` (the class: FindLRCallback, ChooseLRCallback or a subclass of the user's) and the
#: ``.lrkit-<pid>-*.part`` a rank writes before renaming it
_OUTBOX_NAME = re.compile(r"lrkit-[A-Za-z_]\w*-(\d+)-[0-9a-f]{32}\.json|\.lrkit-(\d+)-.+\.part")


#: A hand-back file is swept only once it is this old (seconds): a process id that does not run here may be a live
#: launcher's in another PID namespace (a container sharing the temporary folder), which reads its file soon.
_OUTBOX_STALE_S = 24 * 3600


def _sweep_outboxes(folder: str) -> None:
    """Remove the hand-back files (and half-written ``.part`` files) of launching processes that no longer run — one
    killed before it read its ranks' results left its file in ``folder`` — a day after they were written, this user's
    only, by lrkit's names only. Not on Windows, where asking about a process with ``os.kill`` would end it."""
    if os.name == "nt":
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    uid, now = os.getuid(), time.time()
    for name in names:
        found = _OUTBOX_NAME.fullmatch(name)
        if found is None or _running(int(found.group(1) or found.group(2))):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            info = os.stat(path)
            if info.st_uid == uid and now - info.st_mtime > _OUTBOX_STALE_S:
                os.remove(path)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts: it cannot be signalled, but it runs)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


_LAZY = {"MonitorCallback": lazy_class(globals(), "MonitorCallback", _build),
         "FindLRCallback": lazy_class(globals(), "FindLRCallback", _build_finder),
         "ChooseLRCallback": lazy_class(globals(), "ChooseLRCallback", _build_chooser)}


def __getattr__(name: str) -> Any:
    """Build ``MonitorCallback`` / ``FindLRCallback`` / ``ChooseLRCallback`` on first lookup (importing Lightning
    then)."""
    if name in _LAZY:
        return _LAZY[name](name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
