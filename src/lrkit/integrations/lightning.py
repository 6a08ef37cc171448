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

The ``lightning.pytorch.Callback`` subclass is created when ``MonitorCallback`` is first looked up, so importing
lrkit never imports Lightning; without Lightning that lookup raises an ``ImportError`` saying
``pip install lightning``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from lrkit._utils import MissingExtraError
from lrkit.integrations._common import check_monitor_kwargs, lazy_class

__all__ = ["MonitorCallback"]  # noqa: F822 -- created on first lookup (module __getattr__), so lightning loads lazily

#: Monitor arguments the callback supplies itself: the LightningModule, its optimizer and scheduler, Lightning's scaler.
_SUPPLIED = {
    "model": "the LightningModule being fitted",
    "optimizer": "trainer.optimizers[0]",
    "scheduler": "the scheduler of trainer.lr_scheduler_configs",
    "grad_scaler": "the GradScaler of Lightning's precision plugin (precision='16-mixed')",
}

def _pick_scheduler(trainer: Any, optimizer: torch.optim.Optimizer) -> Any:
    """The scheduler to pass as ``Monitor(scheduler=...)``: the one Lightning steps for ``optimizer``.

    One scheduler, whatever its interval (``"step"``, ``"epoch"``, ``ReduceLROnPlateau``): it is the scheduler the
    loop steps, so a back-off must scale what it computes the LR from and a rollback must restore its state. With
    several, the step-interval one (it writes the LR at every step); the others are named in a warning.
    """
    configs = [c for c in trainer.lr_scheduler_configs if getattr(c.scheduler, "optimizer", None) is optimizer]
    if not configs:
        return None
    chosen = next((c for c in configs if c.interval == "step" and not c.reduce_on_plateau), configs[0])
    others = [c for c in configs if c is not chosen]
    if others:
        names = ", ".join(f"{type(c.scheduler).__name__} (interval={c.interval!r})" for c in others)
        warnings.warn(
            f"MonitorCallback: the optimizer has {len(configs)} LR schedulers; the monitor is given "
            f"{type(chosen.scheduler).__name__} (interval={chosen.interval!r}). A rollback does not restore the state "
            f"of {names}, and a back-off does not scale the LRs it computes from: combine them into one scheduler "
            f"(e.g. torch.optim.lr_scheduler.SequentialLR) to have them handled too",
            UserWarning,
            stacklevel=2,
        )
    return chosen.scheduler


def _build() -> type:
    try:
        from lightning.pytorch import Callback
    except ImportError as e:
        raise MissingExtraError(
            "lrkit.integrations.lightning.MonitorCallback needs PyTorch Lightning (lightning>=2.1), which is not "
            "installed. Install it with: pip install lightning"
        ) from e

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
            if monitor_metric is not None and not isinstance(monitor_metric, str):
                raise ValueError(
                    f"monitor_metric={monitor_metric!r} must be the name of a logged metric (a str, e.g. 'val_loss') "
                    f"or None"
                )
            for key, value in (("log_metrics", log_metrics), ("save_snapshots", save_snapshots)):
                if not isinstance(value, bool):
                    raise ValueError(f"{key}={value!r} must be True or False")
            check_monitor_kwargs(monitor_kwargs, _SUPPLIED)
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


__getattr__ = lazy_class(globals(), "MonitorCallback", _build)
