"""``MonitorCallback``: :class:`lrkit.Monitor` as a Hugging Face ``transformers.Trainer`` callback.

The ``Trainer`` runs the training loop, so its user cannot place the monitor's calls by hand. The callback places
them where the monitor's loop contract wants them::

    from transformers import Trainer, TrainingArguments
    from lrkit.integrations.transformers import MonitorCallback

    callback = MonitorCallback(on_divergence="rollback")        # any lrkit.Monitor keyword
    trainer = Trainer(model=model, args=TrainingArguments(...), train_dataset=train, eval_dataset=val,
                      callbacks=[callback])
    trainer.train()                                             # or trainer.train(resume_from_checkpoint=True)
    callback.monitor.summary()                                  # {"steps", "events", "rollbacks", "lr_scale", ...}

Where each call goes (transformers 5.x, ``Trainer._run_epoch``):

- ``on_train_begin``: the monitor is built over the model, the optimizer the ``Trainer`` steps (the torch optimizer
  inside accelerate's ``AcceleratedOptimizer``), ``trainer.lr_scheduler`` and accelerate's ``GradScaler`` (fp16), and
  a forward hook is put on the model: it keeps the loss of each training-mode forward (``output.loss``,
  ``output["loss"]``, or ``output[0]`` of a ``return_dict=False`` tuple).
- ``on_pre_optimizer_step`` (after the last micro-batch's backward and the Trainer's gradient clipping, before
  ``optimizer.step()``): ``monitor.after_backward(loss)`` with the step's loss — once per optimizer step; under
  ``gradient_accumulation_steps=k`` the mean of the step's micro-batch losses (their sum when the model normalises
  each by the step's ``num_items_in_batch``, as the Trainer's GA loss fix does; ``trainer.loss_is_scaled_for_ga``,
  when set, decides instead, as it does for the Trainer).
- ``on_step_end`` (after ``optimizer.step()`` *and* ``lr_scheduler.step()``): ``monitor.after_step()``, so a rollback
  restores a consistent model, optimizer and scheduler. A stop sets ``control.should_training_stop``.
- ``on_evaluate`` during ``train()``: ``monitor.after_validation(metrics[monitor_metric])`` (``"eval_loss"``).
- ``on_save``: the monitor's ``state_dict`` (with its snapshots) is written to ``lrkit_monitor.pt`` in the checkpoint
  folder (atomically); ``train(resume_from_checkpoint=...)`` loads it (``weights_only=True``) at ``on_train_begin``.

A loss the model's forward does not return (``label_smoothing_factor``, ``compute_loss_func``, a custom
``compute_loss``) cannot be read by the hook: mix :class:`MonitorLossMixin` into the Trainer class
(``class MyTrainer(MonitorLossMixin, Trainer)``), which hands the callback the loss ``training_step`` returns.

:func:`find_trainer_lr` runs :func:`lrkit.find_lr` on a ``Trainer`` before ``train()``: its model, optimizer, training
data loader, ``compute_loss``, gradient accumulation, clipping and mixed precision, and sets the LR found as
``args.learning_rate``. :func:`choose_trainer_lr` is ``lr0="auto"`` for it: :func:`lrkit.train.auto.choose_lr0`'s
range test plus short trials of the Trainer's own schedule, compressed, within a budget: the peak LR for this run.

The ``transformers.TrainerCallback`` subclass is created when ``MonitorCallback`` is first looked up, so importing
lrkit never imports transformers; without transformers that lookup raises an ``ImportError`` saying
``pip install transformers``.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from lrkit._state import RNGState
from lrkit._utils import MissingExtraError, _a, atomic_write, unknown_name_error
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

if TYPE_CHECKING:
    from lrkit.finder.result import FinderResult
    from lrkit.train.auto import AutoLR

__all__ = ["STATE_FILE", "MonitorCallback", "MonitorLossMixin", "choose_trainer_lr", "find_trainer_lr"]  # noqa: F822 -- MonitorCallback: made on first lookup

#: The file the monitor's state is saved to in each ``Trainer`` checkpoint folder.
STATE_FILE = "lrkit_monitor.pt"

#: The fewest training forwards without an optimizer step after which ``MonitorCallback``'s loss hook takes itself
#: off the model (its ``train()`` ended in an error); at least 64 x the run's accumulation steps x its GPUs.
_LOSS_CAP = 10_000

#: Monitor arguments the callback supplies itself, from the Trainer.
_SUPPLIED = {
    "model": "the Trainer's model",
    "optimizer": "the torch optimizer the Trainer steps (inside accelerate's AcceleratedOptimizer)",
    "scheduler": "trainer.lr_scheduler",
    "grad_scaler": "accelerate's GradScaler (fp16=True)",
}

def _inner_optimizer(optimizer: Any) -> Any:
    """The torch optimizer inside accelerate's ``AcceleratedOptimizer`` (any depth): the one the scheduler was built
    on and the one ``AcceleratedOptimizer.step`` (and accelerate's ``GradScaler``) steps."""
    for _ in range(8):  # accelerate's wrappers only: another wrapper (Lookahead, ...) is the optimizer stepped
        inner = getattr(optimizer, "optimizer", None)
        if not type(optimizer).__module__.startswith("accelerate") or not isinstance(inner, torch.optim.Optimizer):
            break
        optimizer = inner
    return optimizer


def _read_loss(output: Any) -> torch.Tensor | None:
    """The loss in a model's output: ``output.loss`` / ``output["loss"]`` (a ``ModelOutput`` or dict), ``output[0]``
    of a tuple (``return_dict=False``: the loss comes first when labels are given), or a scalar tensor itself."""
    if isinstance(output, dict):  # ModelOutput is an OrderedDict
        value = output.get("loss")
    elif isinstance(output, (tuple, list)) and output:
        value = output[0]
    else:
        value = output
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return value
    return None


def _describe(output: Any) -> str:
    """A model output the loss hook cannot read a loss from (:func:`_read_loss`), in words, for the warning."""
    if isinstance(output, dict):
        value = output.get("loss")
        if value is None:
            return f"{type(output).__name__} with keys {sorted(map(str, output))} and no 'loss'"
        what = (f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}" if isinstance(value, torch.Tensor)
                else f"{_a(type(value).__name__)} ({value!r:.40})")
        return f"{type(output).__name__} whose 'loss' is {what}, not a floating-point scalar tensor"
    if isinstance(output, (tuple, list)):
        first = output[0] if output else None
        what = f"a tensor of shape {tuple(first.shape)}" if isinstance(first, torch.Tensor) else type(first).__name__
        return f"a {type(output).__name__} whose first element is {what}, not a scalar loss"
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}, not a scalar loss"
    return type(output).__name__


class MonitorLossMixin:
    """Mix into a ``transformers.Trainer`` subclass to hand :class:`MonitorCallback` the loss ``training_step``
    returns — the loss the Trainer backpropagates and logs, whatever computed it::

        class MyTrainer(MonitorLossMixin, Trainer):      # the mixin first
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                ...                                      # a loss the model's forward does not return

    Needed when the model's forward does not return the loss trained on: ``label_smoothing_factor > 0``,
    ``compute_loss_func=...``, or a custom ``compute_loss`` (which may also return the model's loss plus a term of
    its own: the forward hook would then read the model's part only). With the mixin the callback's forward hook is
    not used. The losses are the Trainer's per-micro-batch ones (divided by the accumulation steps, or normalised by
    ``num_items_in_batch``), so the step's loss is their sum, as in the Trainer's logged ``loss``.
    """

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
        """The Trainer's ``training_step``; its (detached) loss is given to every :class:`MonitorCallback`."""
        loss = super().training_step(model, inputs, num_items_in_batch)  # type: ignore[misc]
        handler = getattr(self, "callback_handler", None)
        for callback in getattr(handler, "callbacks", ()):
            reported = getattr(callback, "_report_training_step_loss", None)
            built = globals().get("MonitorCallback")  # made by the first lookup, before any callback
            if built is not None and isinstance(callback, built) and callable(reported):
                reported(loss)
        return loss


#: ``lrkit.find_lr`` arguments :func:`find_trainer_lr` takes from the Trainer itself (name -> where from).
_FINDER_SUPPLIED = {
    "model": "trainer.model",
    "optimizer": "the Trainer's optimizer (yours, from Trainer(optimizers=(optimizer, scheduler)), else the one "
                 "trainer.create_optimizer() builds from the TrainingArguments)",
    "train_loader": "trainer.get_train_dataloader()",
    "loss_fn": "trainer.compute_loss (override compute_loss, or set compute_loss_func or label_smoothing_factor, to "
               "change the loss)",
    "step_fn": "trainer.compute_loss (override compute_loss, or set compute_loss_func or label_smoothing_factor, to "
               "change the loss)",
    "accumulation_steps": "args.gradient_accumulation_steps",
    "max_grad_norm": "args.max_grad_norm (0 or less: no clipping)",
    "amp": "args.bf16 / args.fp16",
    "device": "the model's device (the Trainer put it on args.device)",
}


def _unsupported_setup(trainer: Any) -> str | None:
    """The setup :func:`find_trainer_lr` cannot run the range test under, in words; ``None`` for a supported one."""
    args = trainer.args
    if getattr(trainer, "is_deepspeed_enabled", False) or getattr(args, "deepspeed", None):
        return "DeepSpeed (args.deepspeed): its engine owns the optimizer, the loss scaling and the step"
    if getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_fsdp_xla_enabled", False) \
            or getattr(args, "fsdp", None):
        return "FSDP (args.fsdp / an FSDP plugin): the model is sharded only inside train()"
    if getattr(trainer, "is_model_parallel", False):
        return "a model split over several devices (trainer.is_model_parallel: a device_map over devices)"
    world = getattr(args, "world_size", 1)
    if isinstance(world, int) and world > 1:
        why = _not_data_parallel(trainer)
        if why is not None:
            return f"{world} processes (args.world_size={world}) {why}"
    return None


#: accelerate's ``distributed_type`` values whose ``train()`` wraps the model in a plain ``DistributedDataParallel``
#: (``Accelerator.prepare_model``): the tests run under the same wrapper (:func:`_data_parallel`).
_DDP_TYPES = ("MULTI_CPU", "MULTI_GPU", "MULTI_HPU", "MULTI_MLU", "MULTI_MUSA", "MULTI_NEURON", "MULTI_NPU",
              "MULTI_SDAA", "MULTI_XPU")


def _not_data_parallel(trainer: Any) -> str | None:
    """Why a multi-process Trainer is not one the tests can run under ``DistributedDataParallel`` as ``train()``
    does, in words (completing "N processes (args.world_size=N) ..."); ``None`` when it is."""
    from lrkit._dist import distributed

    kind = getattr(getattr(getattr(trainer, "accelerator", None), "distributed_type", None), "value", None)
    if kind not in _DDP_TYPES:
        return (f"under accelerate's distributed_type {kind}: the test runs under DistributedDataParallel, as train() "
                f"wraps the model, only for plain data-parallel runs ({', '.join(_DDP_TYPES)})")
    config = getattr(trainer.args, "parallelism_config", None)
    parallel = [name for name in ("tp", "cp", "sp") if getattr(config, f"{name}_enabled", False)]
    if parallel:
        return (f"with a parallelism_config that splits the model ({', '.join(parallel)} enabled): only plain data "
                "parallelism (DistributedDataParallel) is supported")
    if getattr(trainer, "is_distributed_loading_by_transformers", False) \
            or any(type(p).__name__ == "DTensor" for p in getattr(trainer.model, "parameters", list)()):
        return ("with a model sharded at load time (DTensor parameters: from_pretrained(..., tp_plan=...) or a "
                "DistributedConfig): train() does not wrap it in DistributedDataParallel, its parameters reduce "
                "their own gradients, and the test runs only under DistributedDataParallel")
    if not distributed():
        return "but torch.distributed is not initialised in this process (launch with torchrun or accelerate launch)"
    return None


def _data_parallel(trainer: Any, model: torch.nn.Module) -> torch.nn.Module:
    """``model`` wrapped for a multi-process data-parallel Trainer as ``train()`` wraps it (accelerate's
    ``prepare_model``: ``DistributedDataParallel`` with the Trainer's ``ddp_*`` settings, device ids and comm hook),
    so the tests' gradients are averaged over the ranks; ``model`` itself in one process. The wrapper skips the
    initial broadcast of rank 0's weights (``init_sync=False``), so each rank's weights stay its own and are put back
    bit for bit (a model built from one seed or from pretrained weights is the same on every rank anyway)."""
    if getattr(trainer.args, "world_size", 1) <= 1 or not any(p.requires_grad for p in model.parameters()):
        return model
    accelerator = trainer.accelerator
    handler = getattr(accelerator, "ddp_handler", None)
    kwargs: dict[str, Any] = handler.to_kwargs() if handler is not None else {}
    if "init_sync" in inspect.signature(torch.nn.parallel.DistributedDataParallel).parameters:
        kwargs["init_sync"] = False
    if accelerator.distributed_type.value != "MULTI_CPU" \
            and os.environ.get("ACCELERATE_BYPASS_DEVICE_MAP", "false") != "true":
        index = accelerator.device.index if accelerator.device.type == "hpu" else accelerator.local_process_index
        kwargs.update(device_ids=[index], output_device=index)
    wrapped = torch.nn.parallel.DistributedDataParallel(model, **kwargs)
    if handler is not None:
        handler.register_comm_hook(wrapped)
    return wrapped


@contextlib.contextmanager
def _reports(trainer: Any) -> Iterator[bool]:
    """Under several processes the world's main process alone reports, as the Trainer logs: the other ranks compute
    the same curve and trials, so their warnings are ignored (and the caller drops their ``progress``/``log``);
    yields whether this rank is quiet. Errors are raised on every rank."""
    quiet = getattr(trainer.args, "world_size", 1) > 1 and not trainer.is_world_process_zero()
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        yield quiet


@contextlib.contextmanager
def _unused_parameters_error(trainer: Any, model: torch.nn.Module, who: str) -> Iterator[None]:
    """Say DistributedDataParallel's error for parameters that get no gradient (``find_unused_parameters=False``) in
    the Trainer's terms: ``args.ddp_find_unused_parameters``. Every rank raises it at the same step (no hang), as
    ``train()`` would at its second step."""
    try:
        yield
    except RuntimeError as e:
        if not isinstance(model, torch.nn.parallel.DistributedDataParallel) \
                or "Expected to have finished reduction in the prior iteration" not in str(e):
            raise
        given = getattr(trainer.args, "ddp_find_unused_parameters", None)
        why = ("args.ddp_find_unused_parameters=False" if given is False else
               "args.ddp_find_unused_parameters=None: the Trainer's default for a PreTrainedModel with activation "
               "checkpointing")
        which = [line.strip() for line in str(e).splitlines() if line.strip().startswith("Parameter indices")]
        raise ValueError(
            f"{who}: the model has parameters that get no gradient (unused in its forward"
            f"{': ' + which[0] + ', counting those that require a gradient' if which else ''}), and "
            f"DistributedDataParallel is built without find_unused_parameters ({why}), so train() would fail the "
            "same way. Set ddp_find_unused_parameters=True in the TrainingArguments, or freeze those parameters "
            "(requires_grad_(False))"
        ) from None


def _enable_checkpointing(model: Any, args: Any) -> Callable[[], None]:
    """Turn on the activation checkpointing ``train()`` turns on (``args.activation_checkpointing``, formerly
    ``gradient_checkpointing``), so the test fits in the memory the training does; the function returned turns it off
    again, with the input-embedding hooks it added, when the model was not checkpointing before."""
    on = getattr(args, "activation_checkpointing", None)
    if on is None:
        on = getattr(args, "gradient_checkpointing", False)
    already = getattr(model, "is_activation_checkpointing", None)
    if already is None:
        already = getattr(model, "is_gradient_checkpointing", False)
    if not on or already:
        return lambda: None
    kwargs = dict(getattr(args, "activation_checkpointing_kwargs", None)
                  or getattr(args, "gradient_checkpointing_kwargs", None) or {})
    every_n_layers, offload = kwargs.pop("every_n_layers", 1), kwargs.pop("offload", False)
    missing = object()
    saved = {name: model.__dict__.get(name, missing) for name in ("_require_grads_hooks", "_require_grads_hook")}
    if hasattr(model, "activation_checkpointing_enable"):  # as Trainer.train() calls it (transformers 5.23)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs or None,
                                              every_n_layers=every_n_layers, offload=offload)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs or None)
    else:
        return lambda: None

    def undo() -> None:
        disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        disable()
        hooks = model.__dict__.get("_require_grads_hooks", missing)
        if hooks is not saved["_require_grads_hooks"]:  # enable added input-embedding hooks: take them off
            for hook in hooks if isinstance(hooks, list) else ():
                hook.remove()
            for name, value in saved.items():
                if value is missing:
                    model.__dict__.pop(name, None)
                else:
                    model.__dict__[name] = value

    return undo


def _transformers(who: str) -> Any:
    """The ``transformers`` module, or a :class:`MissingExtraError` naming ``who`` and the pip install."""
    try:
        import transformers
    except ImportError as e:
        raise MissingExtraError(
            f"lrkit.integrations.transformers.{who} needs Hugging Face transformers (with accelerate), which "
            "is not installed. Install it with: pip install transformers accelerate"
        ) from e
    return transformers


def _check_trainer(trainer: Any, who: str, other: str) -> None:
    """Refuse anything but a ``transformers.Trainer`` (``other``: the call for any other loop)."""
    from transformers import Trainer

    if not isinstance(trainer, Trainer):
        raise ValueError(f"{who}(trainer={type(trainer).__name__}): trainer must be a transformers.Trainer "
                         f"(or a subclass); for any other loop call {other} yourself")


def _check_setup(trainer: Any, who: str, advice: str) -> None:
    """Refuse what :func:`_trainer_parts` cannot run on, before any work: an unsupported setup (``advice``: what to do
    there), no or an empty ``train_dataset``. ``who`` is the entry point the errors name."""
    setup = _unsupported_setup(trainer)
    if setup is not None:
        raise ValueError(f"{who} does not support {setup}. {advice}")
    if trainer.train_dataset is None:
        raise ValueError(f"{who}: the Trainer has no train_dataset; the range test trains on its batches "
                         "(Trainer(..., train_dataset=...))")
    try:
        size = len(trainer.train_dataset)
    except TypeError:  # an IterableDataset: no length to check
        size = None
    if size == 0:
        raise ValueError(f"{who}: the Trainer's train_dataset is empty (len 0); the range test trains on its "
                         "batches, so give it at least one batch of examples")


def _trainer_step_fn(trainer: Any, who: str) -> Callable[[Any, Any], torch.Tensor]:
    """``step_fn(model, batch)``: the loss ``trainer.compute_loss`` gives the batch, as ``train()`` computes it."""
    args = trainer.args

    def step_fn(model: Any, batch: Any) -> torch.Tensor:
        inputs = trainer._prepare_inputs(batch)
        # train() hands compute_loss (and so compute_loss_func, or a model that accepts loss kwargs) the number of
        # label tokens of the accumulated batch; here each micro-batch is its own mean, so its own count (counted
        # before compute_loss pops the labels); a compute_loss_func dividing by it gets a number, not None
        count = getattr(trainer, "_get_num_items_in_batch", None)
        num_items = count([inputs], args.device) if callable(count) and isinstance(inputs, dict) else None
        extra = {"num_items_in_batch": num_items} if num_items is not None else {}
        try:
            with trainer.compute_loss_context_manager():
                loss = trainer.compute_loss(model, inputs, **extra)
        except ValueError as e:
            if "did not return a loss" not in str(e):
                raise
            raise ValueError(
                f"{who}: the model returned no loss, so there is nothing to train on ({e}). The "
                f"Trainer's batches must hold the labels the model computes its loss from (label_names: "
                f"{getattr(args, 'label_names', None) or 'labels'}), or compute_loss must compute one"
            ) from None
        if not (isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.is_floating_point()):
            what = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(
                f"{who}: trainer.compute_loss returned {what}, not a scalar loss: the model returned no "
                f"loss (a tuple output's first item is read as the loss; give the batches their labels, "
                f"label_names: {getattr(args, 'label_names', None) or 'labels'}), or compute_loss must return one"
            )
        return loss

    return step_fn


def _trainer_settings(args: Any) -> dict[str, Any]:
    """The ``find_lr`` settings the ``TrainingArguments`` give: accumulation, clipping (``None``: off) and amp."""
    return dict(
        accumulation_steps=args.gradient_accumulation_steps,
        max_grad_norm=args.max_grad_norm if args.max_grad_norm and args.max_grad_norm > 0 else None,
        amp="bf16" if args.bf16 else "fp16" if args.fp16 else False,
    )


class _Parts(NamedTuple):
    """What :func:`_trainer_parts` hands out: the torch ``optimizer`` (``created``: built by
    ``trainer.create_optimizer()``, dropped afterwards), the training ``loader``, ``step_fn``, and the ``model`` to
    test (``trainer.model``, wrapped in ``DistributedDataParallel`` under several processes: :func:`_data_parallel`)."""

    optimizer: torch.optim.Optimizer
    created: bool
    loader: Any
    step_fn: Callable[[Any, Any], torch.Tensor]
    model: torch.nn.Module


def _place_as_train_does(trainer: Any) -> None:
    """Put the model on ``args.device`` as ``train()`` does before its first step. Under ``fp16_full_eval`` /
    ``bf16_full_eval`` the Trainer's ``__init__`` leaves the model where it is (its evaluation casts and moves it in
    one go) and ``train()`` moves it; the range test trains, so it moves it first (else a model left on the CPU met
    batches ``_prepare_inputs`` had put on the GPU, an error from inside torch). The move is not undone: ``train()``
    makes it anyway."""
    args = trainer.args
    if ((getattr(args, "fp16_full_eval", False) or getattr(args, "bf16_full_eval", False))
            and not getattr(trainer, "is_model_parallel", False) and getattr(trainer, "model_init", None) is None):
        trainer._move_model_to_device(trainer.model, args.device)


@contextlib.contextmanager
def _trainer_parts(trainer: Any, who: str) -> Iterator[_Parts]:
    """The parts ``train()`` would train with, ready to step, and everything put back on exit.

    On entry: activation checkpointing on as ``train()`` turns it on; the optimizer (the Trainer's, else
    ``trainer.create_optimizer()``'s); ``trainer.get_train_dataloader()``; a ``step_fn`` over ``compute_loss``. On
    exit (also on an error): checkpointing off again (when it was off), a created optimizer dropped
    (``trainer.optimizer = None``), accelerate's lists of prepared loaders and its gradient-sync flag as they were
    (also for loaders built inside the block, ``get_eval_dataloader()``'s too, and the Trainer's cache of eval
    loaders), and the torch/numpy/python RNGs as on entry (building a loader can draw from them). The model and the
    optimizer's state are the caller's to restore (``find_lr`` and ``choose_lr0`` do)."""
    args = trainer.args
    _place_as_train_does(trainer)
    model = trainer.model
    step_fn = _trainer_step_fn(trainer, who)
    rng = RNGState.capture()  # building the loader (a seeded sampler) must not move the RNGs train() starts from
    accelerator = getattr(trainer, "accelerator", None)
    prepared = list(getattr(accelerator, "_dataloaders", ()))
    gradient_state = getattr(accelerator, "gradient_state", None)
    refs = list(getattr(gradient_state, "_dataloader_references_ref", ()))
    sync = getattr(gradient_state, "sync_gradients", None)
    missing = object()
    eval_cache = vars(trainer).get("_eval_dataloaders", missing)  # get_eval_dataloader's (persistent workers)
    eval_cache = dict(eval_cache) if isinstance(eval_cache, dict) else eval_cache
    given = trainer.optimizer
    created = given is None
    undo_checkpointing = _enable_checkpointing(model, args)
    try:
        optimizer = trainer.create_optimizer() if created else _inner_optimizer(given)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"{who}: the Trainer's optimizer is a {type(optimizer).__name__}, not a "
                             "torch.optim.Optimizer the range test can sweep; call lrkit.find_lr yourself")
        optimizer = _inner_optimizer(optimizer)
        loader = trainer.get_train_dataloader()
        yield _Parts(optimizer, created, loader, step_fn, _data_parallel(trainer, model))
    finally:
        undo_checkpointing()
        if created:
            trainer.optimizer = None  # train() builds it afresh, from the (new) args.learning_rate
        if accelerator is not None and hasattr(accelerator, "_dataloaders"):
            accelerator._dataloaders[:] = prepared
        if gradient_state is not None and hasattr(gradient_state, "_dataloader_references_ref"):
            gradient_state._dataloader_references_ref = refs
            gradient_state.sync_gradients = sync
        if eval_cache is missing:
            vars(trainer).pop("_eval_dataloaders", None)
        elif isinstance(eval_cache, dict):
            trainer._eval_dataloaders.clear()
            trainer._eval_dataloaders.update(eval_cache)
        rng.restore()


def _trainer_built_scheduler(trainer: Any) -> bool:
    """Whether ``trainer.lr_scheduler`` is one the Trainer built itself (``create_scheduler``: a previous ``train()``,
    or ``create_optimizer_and_scheduler`` called by hand), which ``train()`` drops and builds afresh from
    ``args.lr_scheduler_type`` over its own length."""
    return trainer.lr_scheduler is not None and getattr(trainer, "_created_lr_scheduler", False) is True


def _train_builds_schedule(trainer: Any) -> bool:
    """Whether the coming ``train()`` builds its schedule from ``args.lr_scheduler_type`` / ``lr_scheduler_kwargs``
    (no scheduler set, or one the Trainer built itself), rather than stepping a scheduler of yours (which ignores
    them)."""
    return trainer.lr_scheduler is None or _trainer_built_scheduler(trainer)


def _metric_scheduler(scheduler: Any) -> bool:
    """Whether ``scheduler`` (or the one accelerate's wrapper holds) follows a metric: ``ReduceLROnPlateau``, an lrkit
    plateau schedule, transformers' ``GreedyLR`` (``train()`` steps none of them once per optimizer step)."""
    from lrkit.monitor.actions import wrapped_scheduler

    inner = wrapped_scheduler(scheduler) or scheduler
    if metric_driven(inner):
        return True
    try:
        from transformers.optimization import GreedyLR
    except ImportError:  # a transformers without it
        return False
    return isinstance(inner, GreedyLR)


def _set_peak_lr(trainer: Any, optimizer: torch.optim.Optimizer, created: bool, lr: float,
                 who: str = "find_trainer_lr", peak: float | None = None) -> None:
    """Make ``lr`` the peak LR of the Trainer's coming ``train()``: ``args.learning_rate`` (and
    ``optimizer_cls_and_kwargs``' ``lr``, added there when those kwargs have none: the class's own default LR is what
    ``train()`` would build at), scaled by the same factor as the largest group's LR when the groups are not all at
    it; a user's optimizer (and scheduler) scaled with :func:`lrkit.monitor.actions.backoff_lr`."""
    args = trainer.args
    # the peak ``lr`` replaces: the schedule's (or, given, the highest LR a recorded schedule of yours reaches)
    peak = schedule_peak(optimizer, trainer.lr_scheduler) if peak is None else peak
    factor = lr / peak
    floor = _polynomial_floor(args) if _train_builds_schedule(trainer) else None  # train() builds the schedule
    if floor is not None:
        # the LR the polynomial schedule train() builds reads lr_end against: the optimizer's defaults["lr"] (a
        # created one is rebuilt at its LR scaled as below: args.learning_rate, or optimizer_cls_and_kwargs' lr)
        if created:
            built = optimizer.defaults.get("lr")
            built = float(built) if _is_number(built) else args.learning_rate
            init = lr if math.isclose(peak, built, rel_tol=1e-12) else built * factor
        else:
            default = optimizer.defaults.get("lr")
            init = default * factor if _is_number(default) else lr
        if not init > floor:
            raise _BelowFloor(
                f"{who}: the LR to set, {lr:.3g}, is at or below lr_end={floor:g} of "
                "lr_scheduler_type='polynomial', so train() at it would refuse the schedule (transformers: lr_end "
                f"must be smaller than the initial lr); nothing was set. Lower lr_end below {lr:.3g} "
                "(lr_scheduler_kwargs), or set args.learning_rate yourself above it; the range test's result is this "
                "error's .result"
            )
    if created:
        cls_kwargs = getattr(trainer, "optimizer_cls_and_kwargs", None)
        given = cls_kwargs[1] if cls_kwargs is not None and isinstance(cls_kwargs[1], dict) else None
        built = optimizer.defaults.get("lr")
        # optimizer_cls_and_kwargs without an "lr": train() builds the optimizer at its class's own default LR
        # (torch's SGD: 1e-3), not at args.learning_rate, so the new LR must go into those kwargs
        class_default = given is not None and "lr" not in given and _is_number(built)
        base = float(built) if class_default else args.learning_rate
        same = math.isclose(peak, base, rel_tol=1e-12)
        args.learning_rate = lr if same else base * factor
        if given is not None and "lr" in given:
            old = given["lr"]
            new = lr if math.isclose(peak, float(old), rel_tol=1e-12) else old * factor
            trainer.optimizer_cls_and_kwargs = (cls_kwargs[0], {**given, "lr": new})
        elif class_default:
            trainer.optimizer_cls_and_kwargs = (cls_kwargs[0], {**given, "lr": args.learning_rate})
    else:
        from lrkit.monitor.actions import backoff_lr

        args.learning_rate = lr
        backoff_lr(optimizer, trainer.lr_scheduler, factor)
        default = optimizer.defaults.get("lr")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            # the schedule train() builds on it reads an absolute floor (polynomial's lr_end, cosine_with_min_lr's
            # min_lr) against defaults["lr"], as it would on an optimizer built at the new LR
            optimizer.defaults["lr"] = default * factor
    if _train_builds_schedule(trainer):  # a scheduler of yours: train() does not read lr_scheduler_kwargs
        _warn_floor_above(args, lr)


def _warn_floor_above(args: Any, lr: float) -> None:
    """Warn when an absolute floor of the Trainer's schedule (``lr_scheduler_kwargs``' ``min_lr`` or ``lr_end``) is at
    or above the peak LR just set: transformers' cosine then *rises* from the peak to the floor (polynomial refuses
    it when ``train()`` builds the schedule)."""
    kwargs = getattr(args, "lr_scheduler_kwargs", None) or {}
    for key in ("min_lr", "lr_end"):
        floor = kwargs.get(key) if isinstance(kwargs, dict) else None
        if isinstance(floor, (int, float)) and not isinstance(floor, bool) and floor >= lr:
            warnings.warn(
                f"the LR set, {lr:.3g}, is at or below lr_scheduler_kwargs' {key}={floor:g}, an absolute floor: the "
                f"schedule would run from {lr:.3g} up to {floor:g} rather than decay. Lower {key} (or give "
                "min_lr_rate, a fraction of the peak, for cosine_with_min_lr)",
                UserWarning,
                stacklevel=3,
            )


def find_trainer_lr(trainer: Any, *, set_lr: bool = True, **find_lr_kwargs: Any) -> FinderResult:
    """Run :func:`lrkit.find_lr` on a Hugging Face ``transformers.Trainer`` as its ``train()`` would train, and set
    the LR found as its peak LR.

    The range test runs on what the ``Trainer`` trains with:

    - ``trainer.model``;
    - the optimizer: yours, given as ``Trainer(optimizers=(optimizer, scheduler))`` (or the one a previous
      ``train()`` left), else the one ``trainer.create_optimizer()`` builds from the ``TrainingArguments`` (its
      ``optim``, ``weight_decay`` groups, betas, ...), which is dropped afterwards (``trainer.optimizer`` is ``None``
      again, so ``train()`` builds it afresh with the new LR);
    - the batches of ``trainer.get_train_dataloader()`` (the Trainer's collator, sampler, batch size and columns);
    - the loss of ``trainer.compute_loss(model, trainer._prepare_inputs(batch))``, so a subclass's
      ``compute_loss``, ``compute_loss_func`` and ``label_smoothing_factor`` are honoured (``num_items_in_batch``, which
      ``train()`` counts over the accumulated batch, is each micro-batch's own label count here);
    - ``accumulation_steps=args.gradient_accumulation_steps`` (each micro-batch's mean loss, divided by the steps),
      ``max_grad_norm=args.max_grad_norm`` (when > 0), ``amp="bf16"``/``"fp16"`` for ``args.bf16``/``args.fp16``;
    - ``args.activation_checkpointing`` (``gradient_checkpointing``), turned on for the test as ``train()`` turns it
      on, and off again afterwards when the model was not checkpointing before.

    Everything is put back afterwards: the model's parameters, buffers and modes, the optimizer's state, the RNGs
    (so a ``train()`` afterwards is the very run it would have been, to the bit, but for the LR), and the Trainer
    (its ``state``, callbacks, and the accelerate data loader bookkeeping the test's loader added). No callback is
    called during the test.

    Args:
        trainer: a ``transformers.Trainer`` (or a subclass: ``Seq2SeqTrainer``, TRL's trainers, ...) with a
            ``train_dataset``, in one process or launched in several (``torchrun``, ``accelerate launch``: call
            it on every rank; the test runs under ``DistributedDataParallel`` with the Trainer's ``ddp_*``
            settings, as ``train()`` wraps the model, each rank on its shard of the batches, and every rank gets
            the same suggestion; the world's main process alone shows the warnings and calls ``progress``).
            DeepSpeed, FSDP, tensor/context parallelism and a model split over devices are
            refused: call :func:`lrkit.find_lr` yourself there.
        set_lr: set the suggestion as the peak LR of the Trainer's schedule: ``args.learning_rate`` (scaled by the
            same factor as the largest group's LR when the optimizer's groups are not all at it, and in
            ``optimizer_cls_and_kwargs``' ``lr``, added there when those kwargs have none: the optimizer class's
            default LR, which ``train()`` would otherwise build at, is replaced too); a user-given optimizer (and
            scheduler) is scaled with :func:`lrkit.monitor.actions.backoff_lr`, so its largest group's peak becomes
            the suggestion and every group keeps its ratio (its ``defaults["lr"]`` too, which the schedule
            ``train()`` builds reads an absolute ``lr_end``/``min_lr`` against). ``False``: change nothing, only
            return the result.
        **find_lr_kwargs: :func:`lrkit.find_lr` keywords: ``start_lr``, ``end_lr``, ``num_steps``, ``mode``,
            ``rule``, ``diverge_factor``, ``progress``, ``snapshot_device``, ``scaler``. Those taken from the
            Trainer (``optimizer``, ``step_fn``, ``accumulation_steps``, ``max_grad_norm``, ``amp``, ``device``,
            ...) are refused, naming where they come from.

    Returns:
        The :class:`lrkit.FinderResult` (``.suggestion``, ``.plot()``, ...).

    Example (needs transformers; ``tests/test_hf_finder_s22b.py`` runs it)::

        import torch, lrkit, tempfile
        from transformers import Trainer, TrainingArguments
        from lrkit.integrations.transformers import find_trainer_lr
        class Reg(torch.nn.Module):
            def __init__(self):
                super().__init__(); self.net = torch.nn.Linear(4, 1)
            def forward(self, x, labels=None):
                out = self.net(x).squeeze(-1)
                return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}
        g = torch.Generator().manual_seed(0)
        xs = torch.randn(256, 4, generator=g); ys = xs @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        data = [{"x": x, "labels": y} for x, y in zip(xs, ys)]
        args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=16, max_steps=20,
                                 report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
        trainer = Trainer(model=Reg(), args=args, train_dataset=data)
        result = find_trainer_lr(trainer, num_steps=50)
        print(trainer.args.learning_rate == result.suggestion, trainer.optimizer is None)   # True True
    """
    _transformers("find_trainer_lr")
    from lrkit.finder.range_test import find_lr

    who = "find_trainer_lr"
    _check_trainer(trainer, who, "lrkit.find_lr(model, optimizer, loader)")
    if not isinstance(set_lr, bool):
        raise ValueError(f"set_lr={set_lr!r} must be True or False")
    check_finder_keywords(find_lr_kwargs, _FINDER_SUPPLIED,
                          lambda name, where: f"find_trainer_lr({name}=...): the Trainer supplies the range test's "
                                              f"{name}: {where}; leave {name}= out",
                          "find_trainer_lr keyword (lrkit.find_lr's)")
    _check_setup(trainer, who, "Run the range test yourself where the model and optimizer are ready to step: "
                 "lrkit.find_lr(model, optimizer, loader, step_fn=...) on every rank (see its docstring on "
                 "torch.distributed), then set args.learning_rate to result.suggestion")
    with _reports(trainer) as quiet, _trainer_parts(trainer, who) as parts:
        if set_lr and trainer.lr_scheduler is not None:  # a scheduler of another optimizer: scaling it moves nothing
            _check_scheduler_of(trainer.lr_scheduler, parts.optimizer, who)
        if set_lr and _train_builds_schedule(trainer):  # a polynomial lr_end no suggestion can clear: first
            _floor_before_compute(trainer.args, _polynomial_floor(trainer.args), find_lr_kwargs, parts.optimizer,
                                  who, default_end_lr=10.0)
        kwargs: dict[str, Any] = dict(step_fn=parts.step_fn, **_trainer_settings(trainer.args))
        kwargs.update(find_lr_kwargs)
        if quiet and callable(kwargs.get("progress")):  # a bad value is kept: every rank then says what is wrong
            kwargs["progress"] = None
        with _unused_parameters_error(trainer, parts.model, who):
            result = find_lr(parts.model, parts.optimizer, parts.loader, **kwargs)
    if set_lr:
        with _reports(trainer):
            try:
                _set_peak_lr(trainer, parts.optimizer, parts.created, result.suggestion)
            except _BelowFloor as e:
                e.result = result  # type: ignore[attr-defined]
                raise
    return result


#: ``lr_scheduler_type`` values that follow a metric, not the step count: no schedule to compress into a trial.
_METRIC_SCHEDULES = ("reduce_lr_on_plateau", "greedy")

#: ``lr_scheduler_kwargs`` that are step counts (``warmup_stable_decay``'s phases, ``inverse_sqrt``'s timescale):
#: scaled with the run's length in a trial, as an absolute ``warmup_steps`` is, whatever their numeric type (an int,
#: a float such as a JSON ``30.0``, a numpy number). The others (``min_lr_ratio``, ``min_lr_rate``,
#: ``warmup_lr_rate``, ``num_cycles``, ``power``; the absolute floors ``lr_end``, ``min_lr``) are kept as they are.
_STEP_KWARGS = ("num_decay_steps", "num_stable_steps", "timescale")

#: ``lr_scheduler_kwargs`` that are an absolute LR floor (``polynomial``'s ``lr_end``, ``cosine_with_min_lr``'s
#: ``min_lr``): read by transformers against ``optimizer.defaults["lr"]``.
_FLOOR_KWARGS = ("lr_end", "min_lr")


def _compressed(steps: Any, n: int, total: int) -> Any:
    """``steps`` of a ``total``-step run as a share of an ``n``-step trial: ``ceil(steps * n / total)`` (exact, in
    fractions, for an int or a float alike), so a non-zero phase keeps at least one step; ``n == total`` gives
    ``steps`` back as it is, so the trial is exactly the run's schedule."""
    if n == total:
        return steps
    exact = Fraction(int(steps)) if isinstance(steps, numbers.Integral) else Fraction(float(steps))
    return math.ceil(exact * n / total)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def _check_schedule_kwargs(args: Any) -> dict[str, Any]:
    """``args.lr_scheduler_kwargs`` as a dict, its step counts (:data:`_STEP_KWARGS`) and floors
    (:data:`_FLOOR_KWARGS`) checked: a value transformers would take as something else, or fail on inside a trial
    (``timescale=0`` divides by zero), or that cannot be a number of steps (negative, NaN, a string, a bool) is a
    ``ValueError`` naming the key and the value."""
    kwargs = args.lr_scheduler_kwargs or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"choose_trainer_lr: args.lr_scheduler_kwargs={kwargs!r} must be a dict (or a JSON string "
                         "of one) of the schedule's keyword arguments, or None")
    for key in _STEP_KWARGS:
        if key not in kwargs or (kwargs[key] is None and key != "num_decay_steps"):  # None: transformers' default
            continue
        value = kwargs[key]
        strict = key == "timescale"  # inverse_sqrt divides by it
        if not _is_number(value) or value < 0 or (strict and value == 0):
            raise ValueError(
                f"choose_trainer_lr: lr_scheduler_kwargs {key}={value!r} must be a number of steps "
                f"{'> 0' if strict else '>= 0'} (an int, or a float such as 30.0)"
                + ("" if key == "num_decay_steps" else ", or None for transformers' default")
                + "; the trials compress it with the run's length, as train() runs it"
            )
    for key in _FLOOR_KWARGS:
        value = kwargs.get(key)
        if key in kwargs and (value is not None or key == "lr_end") and (not _is_number(value) or value < 0):
            raise ValueError(f"choose_trainer_lr: lr_scheduler_kwargs {key}={value!r} must be a number >= 0, the "
                             "absolute LR the schedule ends at")
    return kwargs


def _polynomial_floor(args: Any) -> float | None:
    """``polynomial``'s absolute ``lr_end`` (transformers' default when not given), or ``None`` for another
    schedule: ``get_polynomial_decay_schedule_with_warmup`` refuses an optimizer whose ``defaults["lr"]`` is not
    above it, in a trial as in ``train()``."""
    if _schedule_name(args) != "polynomial":
        return None
    kwargs = args.lr_scheduler_kwargs or {}
    if "lr_end" in kwargs:
        return float(kwargs["lr_end"])
    from transformers.optimization import get_polynomial_decay_schedule_with_warmup

    return float(inspect.signature(get_polynomial_decay_schedule_with_warmup).parameters["lr_end"].default)


def _schedule_name(args: Any) -> str:
    return str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))


class _BelowFloor(ValueError):
    """A trial's peak LR at or below ``polynomial``'s ``lr_end``: raised by the trial schedule, reworded by
    :func:`choose_trainer_lr` (``choose_lr0`` wraps a ``make_scheduler`` failure in its own words)."""


def _trainer_total_steps(trainer: Any, loader: Any) -> int:
    """The optimizer steps the coming ``train()`` takes: ``max_steps`` as ``train()`` computes it
    (``Trainer.set_initial_training_values``: ``args.max_steps`` when > 0, else ``ceil(num_train_epochs x
    ceil(len(loader) / gradient_accumulation_steps))``)."""
    args = trainer.args
    try:
        return int(trainer.set_initial_training_values(args, loader)[-1])
    except ValueError as e:  # a loader without a length and no max_steps
        raise ValueError(f"choose_trainer_lr cannot tell how many steps train() will take: {e}") from None


def _trainer_make_scheduler(args: Any, total_steps: int,
                            peak: float | None = None) -> Callable[[torch.optim.Optimizer, int], Any]:
    """``make_scheduler(optimizer, n)``: the schedule ``Trainer.create_scheduler`` builds, over ``n`` steps instead
    of ``total_steps``. A warmup given as a ratio (``warmup_steps < 1``) is that ratio of ``n``
    (``args.get_warmup_steps(n)``); one given in steps, and the step counts of ``lr_scheduler_kwargs``
    (:data:`_STEP_KWARGS`, an int or a float alike), are compressed by ``n / total_steps`` (:func:`_compressed`), so
    ``n == total_steps`` is exactly the run's schedule.

    An absolute floor in ``lr_scheduler_kwargs`` (``polynomial``'s ``lr_end``, ``cosine_with_min_lr``'s ``min_lr``)
    is read by transformers against ``optimizer.defaults["lr"]``, which a run built with ``learning_rate=lr`` has at
    ``lr`` (:func:`_set_peak_lr` scales a user optimizer's ``defaults["lr"]`` with its groups). So each trial's
    schedule is built with ``defaults["lr"]`` scaled as the groups' LRs are from ``peak`` (the largest group's LR
    before the trials), put back right after: the floor stays the absolute LR the run ends at, not a fraction of
    the candidate. A trial at or below ``polynomial``'s ``lr_end`` raises :class:`_BelowFloor` (``train()`` at that
    LR refuses the schedule too).

    The kwargs are checked here, before any trial (:func:`_check_schedule_kwargs`), and the run's schedule is built
    once on a throw-away optimizer: what transformers cannot build (a misspelt key, an unknown ``decay_type``) is a
    ``ValueError`` now, not after the range test."""
    kwargs = _check_schedule_kwargs(args)
    kind = _schedule_name(args)
    floor = _polynomial_floor(args)
    calls = [0]

    def build(optimizer: torch.optim.Optimizer, n: int) -> Any:
        from transformers import get_scheduler

        warmup = args.warmup_steps
        num_warmup = _compressed(int(warmup), n, total_steps) if warmup >= 1 else args.get_warmup_steps(n)
        specific = dict(kwargs)
        for key in _STEP_KWARGS:
            if specific.get(key) is not None:
                specific[key] = _compressed(specific[key], n, total_steps)
        return get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=num_warmup, num_training_steps=n,
                             scheduler_specific_kwargs=specific)

    probe_lr = 2.0 * max([1.0, *(float(kwargs[k]) for k in _FLOOR_KWARGS if kwargs.get(k) is not None)])
    try:
        with warnings.catch_warnings():  # transformers' own warnings come with each trial's schedule
            warnings.simplefilter("ignore")
            build(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=probe_lr), total_steps)
    except Exception as e:
        raise ValueError(
            f"choose_trainer_lr: lr_scheduler_type={kind!r} with lr_scheduler_kwargs={kwargs!r} cannot be built as "
            f"train() would build it: {type(e).__name__}: {str(e).removesuffix('.')}. Fix lr_scheduler_kwargs (the "
            "keyword arguments of the schedule function transformers' get_scheduler calls for this type)"
        ) from None

    def make_scheduler(optimizer: torch.optim.Optimizer, n: int) -> Any:
        calls[0] += 1
        default = optimizer.defaults.get("lr")
        if not (isinstance(default, (int, float)) and not isinstance(default, bool)):
            return build(optimizer, n)
        scaled = default
        if peak:
            now = max(float(g["lr"]) for g in optimizer.param_groups)
            scaled = now if math.isclose(default, peak, rel_tol=1e-12) else default * (now / peak)
        if floor is not None and not scaled > floor:
            now = max(float(g["lr"]) for g in optimizer.param_groups)
            which = " (the first candidate: the range test's suggestion)" if calls[0] == 1 else ""
            raise _BelowFloor(
                f"choose_trainer_lr: the trial at peak LR {now:.3g}{which} is at or below lr_end={floor:g} of "
                f"lr_scheduler_type='polynomial', an absolute LR the schedule decays to, so transformers refuses "
                f"the schedule (lr_end must be smaller than the initial lr), as train() at that LR would. Lower "
                f"lr_end below {now:.3g} (lr_scheduler_kwargs), or set args.learning_rate yourself above {floor:g} "
                "(find_trainer_lr(trainer, set_lr=False) shows the range test)"
            )
        optimizer.defaults["lr"] = scaled
        try:
            return build(optimizer, n)
        finally:
            optimizer.defaults["lr"] = default

    make_scheduler.__name__ = f"the Trainer's {kind} schedule"
    return make_scheduler


def _floor_before_compute(args: Any, floor: float | None, finder_kwargs: dict[str, Any] | None,
                          optimizer: torch.optim.Optimizer, who: str = "choose_trainer_lr",
                          default_end_lr: float | None = None) -> None:
    """Refuse, before the range test, a ``polynomial`` ``lr_end`` at or above the highest LR the range test sweeps
    (``end_lr``; ``default_end_lr`` when not given: ``choose_lr0``'s by default): every suggestion would be at or
    below it, and ``train()`` at it refuses the schedule."""
    from lrkit.train import auto as auto_mod

    end_lr = (finder_kwargs or {}).get("end_lr", auto_mod.FINDER_END_LR if default_end_lr is None else default_end_lr)
    default = optimizer.defaults.get("lr")
    peak = schedule_peak(optimizer)
    if floor is None or not _is_number(end_lr) or not _is_number(default) or not peak:
        return
    ratio = 1.0 if math.isclose(default, peak, rel_tol=1e-12) else default / peak  # as make_scheduler scales it
    if floor >= end_lr * ratio:
        raise ValueError(
            f"{who}: lr_end={floor:g} of lr_scheduler_type='polynomial' is at or above every LR the "
            f"range test sweeps (up to end_lr={end_lr:g}), so every candidate would be at or below it, and "
            "transformers refuses such a schedule (lr_end must be smaller than the initial lr), as train() at that "
            "LR would. Lower lr_end (an absolute LR, the end of the decay), or set args.learning_rate yourself above "
            "it"
        )


def choose_trainer_lr(
    trainer: Any,
    *,
    set_lr: bool = True,
    budget: float | None = None,
    num_candidates: int | None = None,
    log: Callable[[str], None] | None = None,
    finder_kwargs: dict[str, Any] | None = None,
    search: str = "guard",
) -> AutoLR:
    """``lr0="auto"`` for a Hugging Face ``transformers.Trainer``: choose the peak LR for the run its ``train()``
    will make — this schedule, this length — with :func:`lrkit.train.auto.choose_lr0`, and set it.

    :func:`find_trainer_lr` reads the range test's suggestion alone; this adds ``choose_lr0``'s confirmation: short
    trials of the Trainer's own schedule, compressed, from the same starting state, within ``budget`` of one run.
    It runs on what :func:`find_trainer_lr` runs on (the model, the optimizer, ``get_train_dataloader()``,
    ``compute_loss``, gradient accumulation, clipping, bf16/fp16, activation checkpointing; the same unsupported
    setups are refused) and puts everything back the same way, so a ``train()`` afterwards is the very run it would
    have been but for the LR. From the Trainer too:

    - ``total_steps``: the optimizer steps ``train()`` will take (``args.max_steps``, else ``num_train_epochs``
      passes over the loader, ``gradient_accumulation_steps`` batches a step; ``Trainer.set_initial_training_values``);
    - ``make_scheduler(optimizer, n)``: ``transformers.get_scheduler(args.lr_scheduler_type, ...,
      num_training_steps=n, scheduler_specific_kwargs=args.lr_scheduler_kwargs)`` — ``Trainer.create_scheduler``'s
      schedule over ``n`` steps. A warmup ratio (``warmup_steps < 1``) stays a ratio; a warmup in steps, and the
      step counts in ``lr_scheduler_kwargs`` (``num_decay_steps``, ``num_stable_steps``, ``timescale``; an int or
      a float such as ``30.0`` alike), shrink with the trial: ``ceil(steps x n / total_steps)``; ratios
      (``min_lr_ratio``, ``num_cycles``, ...) stay as they are; an absolute floor there (``polynomial``'s
      ``lr_end``, ``cosine_with_min_lr``'s ``min_lr``) stays that absolute LR in every trial, as in the run at that
      LR. A step count that is not one (negative, NaN, a string) or kwargs transformers cannot build are refused
      before any compute; a candidate at or below ``polynomial``'s ``lr_end`` (which ``train()`` at that LR would
      refuse too) stops the call with an error naming it, ``lr_end`` and the fix;
      Your own scheduler (``Trainer(optimizers=(optimizer, scheduler))``, not yet stepped) instead: stepped once per
      optimizer step through the run, as ``train()`` steps it, recording every group's LR (and a momentum it cycles),
      then put back; each trial of ``n`` steps replays the record compressed (its step ``k`` plays the run's
      ``k * total_steps // n``), scaled to the trial's peak LR;
    - ``val_loader``: ``trainer.get_eval_dataloader()`` when the Trainer has an ``eval_dataset`` (the first one of a
      dict of them), each batch's ``compute_loss`` in eval mode without gradients; none: the trials are scored on
      their training loss;
    - ``seed=args.seed`` (each trial starts from it).

    Args:
        trainer: a ``transformers.Trainer`` (or a subclass) with a ``train_dataset``, in one process or in
            several (call it on every rank: the range test and the trials run under ``DistributedDataParallel``
            as ``train()`` does, the trials are scored on the ranks' mean eval loss, and every rank chooses the same
            LR). Refused: DeepSpeed, FSDP, tensor/context parallelism, a model split over devices; a scheduler
            that has stepped (the one a previous ``train()`` built or ran), a ``ReduceLROnPlateau`` or
            ``GreedyLR`` of yours, one built on another optimizer than the Trainer's, a subclass's own
            ``create_scheduler``, and a metric-driven ``lr_scheduler_type`` (``reduce_lr_on_plateau``,
            ``greedy``): there is no step schedule to compress. A user optimizer without a scheduler is fine (the
            Trainer builds its schedule on it), and so is one with a scheduler of yours that has not stepped
            (replayed). A scheduler the Trainer built itself (``create_optimizer_and_scheduler`` called before, not
            stepped) is the Trainer's schedule: ``train()`` drops it and builds ``args.lr_scheduler_type``'s over its
            own length, and that is what the trials run.
        set_lr: set the chosen LR as the peak LR of the coming ``train()``, as :func:`find_trainer_lr` sets its
            suggestion (``args.learning_rate``; a user optimizer's groups scaled, keeping their ratios). ``False``:
            change nothing, only return the result.
        budget: the most extra compute, as a fraction of the run's optimizer steps (default 0.3: 30% of one
            ``train()``); ``search="guard"`` only.
        num_candidates: the most confirmation trials (default 3); ``search="guard"`` only.
        log: called with one line per stage and per trial (e.g. ``print``); under several processes on the world's
            main process only (``trainer.is_world_process_zero()``), where the range test's warnings are shown too.
        finder_kwargs: :func:`lrkit.find_lr` options for the range test (``num_steps``, ``start_lr``, ``end_lr``,
            ``rule``, ``snapshot_device``, ...). Those the Trainer supplies (``amp``, ``accumulation_steps``,
            ``max_grad_norm``, ``step_fn``, ...) are refused, naming where they come from.
        search: ``"guard"`` (default) or ``"prefix"``: ``choose_lr0``'s opt-in prefix search, about 1.5 runs of
            extra compute (a quarter-run range test, then five trials of the Trainer's real schedule — over the whole
            run, not compressed — for its first 20% of steps plus a 5% anneal, around the suggestion); ``budget``
            and ``num_candidates`` do not apply to it (giving one is an error naming it).

    Returns:
        The :class:`lrkit.train.auto.AutoLR`: ``.lr``, ``.finder``, ``.trials``, ``.extra_steps`` (at most
        ``budget`` x the run's steps; about 1.5 runs with ``search="prefix"``), ``.reason``.

    Example (needs transformers; ``tests/test_hf_auto_s22e.py`` runs it)::

        import torch, tempfile
        from transformers import Trainer, TrainingArguments
        from lrkit.integrations.transformers import choose_trainer_lr
        class Reg(torch.nn.Module):
            def __init__(self):
                super().__init__(); self.net = torch.nn.Linear(4, 1)
            def forward(self, x, labels=None):
                out = self.net(x).squeeze(-1)
                return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}
        g = torch.Generator().manual_seed(0)
        xs = torch.randn(256, 4, generator=g); ys = xs @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        data = [{"x": x, "labels": y} for x, y in zip(xs, ys)]
        args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=16, max_steps=100,
                                 lr_scheduler_type="cosine", warmup_steps=0.1, report_to=[], use_cpu=True,
                                 save_strategy="no", disable_tqdm=True)
        trainer = Trainer(model=Reg(), args=args, train_dataset=data[:192], eval_dataset=data[192:])
        auto = choose_trainer_lr(trainer, budget=0.5)
        print(trainer.args.learning_rate == auto.lr, auto.extra_steps <= 50)   # True True
    """
    _transformers("choose_trainer_lr")
    from transformers import Trainer

    from lrkit.train.auto import (
        MIN_NUM_STEPS,
        PREFIX_RANGE_FRACTION,
        _check_search,
        _guard_hint,
        _prefix_shortest_run,
        choose_lr0,
    )

    who = "choose_trainer_lr"
    _check_trainer(trainer, who, "lrkit.choose_lr0(model, optimizer, train_loader, val_loader, ...)")
    try:  # before any work: a misspelt search, or a budget/num_candidates the prefix search would ignore
        search = _check_search(search, budget, num_candidates)
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None
    if not isinstance(set_lr, bool):
        raise ValueError(f"set_lr={set_lr!r} must be True or False")
    if finder_kwargs is not None and not isinstance(finder_kwargs, dict):
        raise ValueError(f"finder_kwargs={finder_kwargs!r} must be a dict of lrkit.find_lr options (num_steps, "
                         "start_lr, end_lr, rule, ...) or None")
    for name in finder_kwargs or {}:
        if name in _FINDER_SUPPLIED:
            raise ValueError(f"choose_trainer_lr(finder_kwargs={{{name!r}: ...}}): the Trainer supplies the range "
                             f"test's {name}: {_FINDER_SUPPLIED[name]}; leave it out")
    if finder_kwargs:
        # a key find_lr does not take, checked here, before any work, against the keys this function leaves to the
        # user: choose_lr0's own message would list the ones the Trainer supplies (amp, device, ...) as valid. A
        # peer's name (num_iter, min_lr, ...) goes on to choose_lr0, which says what lrkit calls it
        from lrkit.finder.range_test import PEER_KEYWORDS, find_lr

        valid = [k for k in inspect.signature(find_lr).parameters if k not in _FINDER_SUPPLIED]
        for name in finder_kwargs:
            if name not in valid and not (isinstance(name, str) and name in PEER_KEYWORDS):
                raise unknown_name_error("choose_trainer_lr finder_kwargs key (an lrkit.find_lr option)", str(name),
                                         valid)
    by_hand = ("use find_trainer_lr(trainer) (the range test alone), or call lrkit.choose_lr0(model, optimizer, "
               "train_loader, val_loader, total_steps=..., make_scheduler=...) yourself with a make_scheduler that "
               "builds your schedule over n steps")
    user_scheduler = trainer.lr_scheduler
    if (_trainer_built_scheduler(trainer) and trainer.state.global_step == 0
            and getattr(user_scheduler, "last_epoch", 0) <= 0):
        user_scheduler = None  # create_optimizer_and_scheduler's, not stepped: train() rebuilds it from the args
    if user_scheduler is not None:
        if _metric_scheduler(user_scheduler):
            raise ValueError(
                f"choose_trainer_lr: the Trainer's scheduler is a {type(user_scheduler).__name__} that follows a "
                "metric (reduce-on-plateau), not the "
                "step count, so there is no schedule to compress into short trials; use find_trainer_lr(trainer) "
                f"(the range test alone), or {by_hand}"
            )
        from lrkit.monitor.actions import wrapped_scheduler

        stepped = getattr(wrapped_scheduler(user_scheduler) or user_scheduler, "last_epoch", 0)  # accelerate's
        if trainer.state.global_step > 0 or stepped > 0:
            raise ValueError(
                f"choose_trainer_lr: the Trainer's scheduler ({type(user_scheduler).__name__}) has already stepped "
                f"(last_epoch={stepped}: a previous train() built or ran it), so "
                "the coming train() does not run its schedule from the start. Set trainer.optimizer = "
                "trainer.lr_scheduler = None for a fresh optimizer and schedule (the Trainer builds "
                f"args.lr_scheduler_type's), give it a fresh scheduler of yours, or {by_hand}"
            )
    kind = str(getattr(trainer.args.lr_scheduler_type, "value", trainer.args.lr_scheduler_type))
    if user_scheduler is None and kind in _METRIC_SCHEDULES:
        raise ValueError(
            f"choose_trainer_lr: lr_scheduler_type={kind!r} follows a metric, not the step count, so there is no "
            "schedule to compress into short trials; use find_trainer_lr(trainer) (the range test alone)"
        )
    for method in ("create_scheduler", "create_optimizer_and_scheduler") if user_scheduler is None else ():
        if getattr(type(trainer), method) is not getattr(Trainer, method):
            raise ValueError(
                f"choose_trainer_lr: {type(trainer).__name__} overrides {method}, so its schedule is not the one "
                f"args.lr_scheduler_type names, and lrkit cannot compress it into short trials; {by_hand}"
            )
    _check_setup(trainer, who, "Choose the LR yourself where the model and optimizer are ready to step: "
                 "lrkit.choose_lr0(model, optimizer, train_loader, val_loader, total_steps=..., make_scheduler=..., "
                 "step_fn=...) on every rank (see its docstring on torch.distributed), then set "
                 "args.learning_rate to auto.lr")
    args = trainer.args
    settings = _trainer_settings(args)
    with _reports(trainer) as quiet, _trainer_parts(trainer, who) as parts:
        total_steps = _trainer_total_steps(trainer, parts.loader)
        val_loader = None
        if trainer.eval_dataset is not None:
            eval_dataset = trainer.eval_dataset
            first = next(iter(eval_dataset)) if isinstance(eval_dataset, dict) and eval_dataset else None
            val_loader = trainer.get_eval_dataloader(first)
        train_step_fn = parts.step_fn

        def step_fn(model: Any, batch: Any) -> torch.Tensor:
            try:
                return train_step_fn(model, batch)
            except ValueError as e:  # a scoring pass (eval mode) on eval batches that give no loss
                if model.training or val_loader is None or "returned no loss" not in str(e):
                    raise
                # transformers' own words; for lrkit's own check (an output whose loss is None) only what it found
                cause = e.__context__ if e.__context__ is not None else \
                    str(e).split(", not a scalar loss")[0].removeprefix("choose_trainer_lr: ")
                raise ValueError(
                    f"choose_trainer_lr: the eval_dataset's batches give no loss ({cause}), and the trials are "
                    f"scored on the eval loss. Give the eval_dataset its labels (label_names: "
                    f"{getattr(args, 'label_names', None) or 'labels'}), or score the trials on the training loss: "
                    "set trainer.eval_dataset = None for the call"
                ) from None

        saved_groups = group_values(parts.optimizer)
        if user_scheduler is None:
            make_scheduler = _trainer_make_scheduler(args, total_steps, schedule_peak(parts.optimizer))
            floor = _polynomial_floor(args)
            _floor_before_compute(args, floor, finder_kwargs, parts.optimizer)
        else:  # yours: recorded over the run (train() steps it once per optimizer step), replayed in each trial
            floor = None
            lrs, momenta = _record_yours(user_scheduler, parts.optimizer, total_steps)
            # the highest LR the run trains at (the range test sweeps the LRs themselves): the schedule's own peak,
            # unless the run ends before reaching it or the schedule rises above it
            peak = recorded_peak = run_peak(lrs, schedule_peak(parts.optimizer, user_scheduler))
            if not (math.isfinite(peak) and peak > 0):
                raise ValueError(f"choose_trainer_lr: your {type(user_scheduler).__name__} never rises above LR "
                                 f"{peak:g} in the run's {total_steps} steps; there is no peak to choose")

            def make_scheduler(optimizer: torch.optim.Optimizer, n: int) -> Any:
                return Replay(optimizer, lrs, momenta, peak, n)

            make_scheduler.__name__ = f"your {type(user_scheduler).__name__}"  # type: ignore[attr-defined]
            peaks_first(parts.optimizer, lrs)  # the range test sweeps the groups at their peaks' ratios
        progress = (finder_kwargs or {}).get("progress")
        try:
            with _unused_parameters_error(trainer, parts.model, who):
                auto = choose_lr0(
                    parts.model, parts.optimizer, parts.loader, val_loader,
                    total_steps=total_steps,
                    make_scheduler=make_scheduler,
                    step_fn=step_fn,
                    budget=budget,
                    num_candidates=num_candidates,
                    search=search,
                    seed=args.seed,
                    finder_kwargs={"amp": settings["amp"], **(finder_kwargs or {}),
                                   **({"progress": None} if quiet and callable(progress) else {})},
                    accumulate=settings["accumulation_steps"],
                    max_grad_norm=settings["max_grad_norm"],
                    log=None if quiet and callable(log) else log,  # a bad log= is refused on every rank alike
                )
        except ValueError as e:
            if isinstance(e.__cause__, _BelowFloor):  # choose_lr0 wraps a make_scheduler failure: say it plainly
                raise ValueError(str(e.__cause__)) from None
            train_longer = ("train longer (a larger max_steps or num_train_epochs, a smaller "
                            "per_device_train_batch_size or gradient_accumulation_steps)")
            if search == "prefix" and "needs a run of at least" in str(e):
                raise ValueError(
                    f"choose_trainer_lr(search='prefix') needs a run of at least {_prefix_shortest_run()} optimizer "
                    f"steps (its range test of {MIN_NUM_STEPS}+ steps is {PREFIX_RANGE_FRACTION:g} of the run), but "
                    f"train() will take {total_steps}; {train_longer}, or {_guard_hint(total_steps)}"
                ) from None
            if "needs at least 10 extra optimizer steps" not in str(e):
                raise
            # choose_lr0's wording names lrkit.train's auto_budget and lr0: say it in the Trainer's terms
            budget = 0.3 if budget is None else budget  # (choose_lr0's default)
            need = math.ceil(10 / total_steps * 100) / 100
            raise ValueError(
                f"choose_trainer_lr needs at least 10 extra optimizer steps for its range test, but budget="
                f"{budget:g} x total_steps={total_steps} allows {math.floor(budget * total_steps + 1e-9)} "
                f"(total_steps: the optimizer steps train() will take); raise budget to at least {need:g}, "
                f"{train_longer}, or use find_trainer_lr(trainer) (the range test alone), or set "
                "args.learning_rate yourself"
            ) from None
        finally:
            put_group_values(parts.optimizer, saved_groups)
        if floor is not None:
            _check_choice_above_floor(auto, floor, 0.3 if budget is None else budget, parts.optimizer)
    if set_lr:
        with _reports(trainer):
            _set_peak_lr(trainer, parts.optimizer, parts.created, auto.lr, "choose_trainer_lr",
                         recorded_peak if user_scheduler is not None else None)
    return auto


def _check_scheduler_of(scheduler: Any, optimizer: torch.optim.Optimizer, who: str) -> None:
    """Refuse your scheduler when it is built on another optimizer than the Trainer's: ``train()`` would step it
    without changing the LRs the Trainer trains at, and scaling it would not move them either."""
    from lrkit.monitor.actions import wrapped_scheduler

    target = getattr(wrapped_scheduler(scheduler) or scheduler, "optimizer", None)
    groups = getattr(target, "param_groups", None)  # a wrapper sharing its optimizer's groups schedules them too
    if isinstance(groups, list) and [id(g) for g in groups] != [id(g) for g in optimizer.param_groups]:
        raise ValueError(
            f"{who}: your {type(scheduler).__name__} steps another optimizer than the Trainer's (its .optimizer is a "
            f"{type(target).__name__} that is not the Trainer's {type(optimizer).__name__}), so train() would step "
            "it without changing the LRs the Trainer trains at. Build the scheduler on the optimizer you give the "
            "Trainer: Trainer(optimizers=(optimizer, Scheduler(optimizer, ...)))"
        )


def _record_yours(scheduler: Any, optimizer: torch.optim.Optimizer,
                  total_steps: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`record_schedule` of your scheduler over the run's ``total_steps``, as ``train()`` steps it (once after
    each optimizer step). Refused first: a scheduler built on another optimizer than the Trainer's (stepping it would
    change that optimizer, and ``train()`` would not schedule the Trainer's). A scheduler that fails within the run
    (a ``OneCycleLR`` shorter than it) is a ``ValueError`` naming the step, as ``train()`` would fail there."""
    name = type(scheduler).__name__
    _check_scheduler_of(scheduler, optimizer, "choose_trainer_lr")
    stepped = [0]

    def advance(t: int) -> None:
        stepped[0] = t + 1
        scheduler.step()

    try:
        return record_schedule(optimizer, [scheduler], total_steps, advance)
    except Exception as e:
        raise ValueError(
            f"choose_trainer_lr: your {name} fails when stepped after optimizer step {stepped[0]} of the run's "
            f"{total_steps} (train() steps it once after each, as the Trainer's args say: max_steps, or "
            f"num_train_epochs over the loader), so train() would fail there too: {type(e).__name__}: "
            f"{str(e).removesuffix('.')}. Build it for the run's {total_steps} steps"
        ) from None


def _check_choice_above_floor(auto: AutoLR, floor: float, budget: float, optimizer: torch.optim.Optimizer) -> None:
    """Refuse a chosen LR at or below ``polynomial``'s ``lr_end`` (a suggestion used without a trial, when the budget
    leaves no room for one: no trial schedule was built to refuse it), which ``train()`` would refuse."""
    default = optimizer.defaults.get("lr")
    peak = schedule_peak(optimizer)
    ratio = 1.0 if not _is_number(default) or not peak or math.isclose(default, peak, rel_tol=1e-12) else default / peak
    if auto.lr * ratio > floor:
        return
    how = (f"the range test suggested {auto.lr:.3g}, used without a trial (budget={budget:g} leaves no room for one)"
           if not getattr(auto, "trials", None) else f"the LR chosen, {auto.lr:.3g},")
    raise ValueError(
        f"choose_trainer_lr: {how} is at or below lr_end={floor:g} of lr_scheduler_type='polynomial', an absolute "
        "LR the schedule decays to: train() at that LR would refuse the schedule (transformers: lr_end must be smaller "
        f"than the initial lr). Lower lr_end below {auto.lr:.3g} (lr_scheduler_kwargs), or set args.learning_rate "
        f"yourself above {floor:g}; nothing was changed"
    )


def _calling_trainer() -> Any:
    """The ``transformers.Trainer`` whose ``train()`` is calling a callback's ``on_train_begin`` (the ``self`` of a
    calling frame: callbacks are not handed the Trainer), or ``None``; read once per ``train()``."""
    from transformers import Trainer

    frame = inspect.currentframe()
    for _ in range(12):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, Trainer):
            return owner
    return None


def _build() -> type:
    TrainerCallback = _transformers("MonitorCallback").TrainerCallback

    from lrkit.monitor import Monitor

    class MonitorCallback(TrainerCallback):  # type: ignore[misc,valid-type]
        """:class:`lrkit.Monitor` as a ``transformers.TrainerCallback``: watch every optimizer step and act.

        Args:
            monitor_metric: the key of the evaluation metrics passed to ``monitor.after_validation`` at each
                evaluation during ``train()`` (``"eval_loss"``; ``"eval_<name>_loss"`` with several eval datasets);
                ``None``: never (the ``val_rising`` check then never fires). A missing key is warned about once,
                naming the keys there are.
            save_snapshots: write the monitor's snapshots (a copy of the model's parameters and buffers and the
                optimizer and scheduler state, the best-validation one too once there is one) into
                ``lrkit_monitor.pt`` in each checkpoint folder, so a resumed run rolls back where the uninterrupted
                one would; ``False`` keeps the file small and the resumed monitor takes a fresh snapshot at its next
                healthy step.
            **monitor_kwargs: keywords of :class:`lrkit.Monitor` (``on_divergence="rollback"``, ``backoff=0.3``,
                ``grad_every``, ``snapshot_device``, ...), checked now. ``model``, ``optimizer``, ``scheduler`` and
                ``grad_scaler`` come from the Trainer and are refused. Under more than one process
                (``args.world_size > 1``) ``sync_loss`` defaults to ``True``.

        The monitor is built at every ``on_train_begin`` and is ``.monitor`` afterwards (``None`` before). The
        Trainer clips the gradients (``max_grad_norm=1.0`` by default) before ``on_pre_optimizer_step``, so the
        monitor's gradient checks read clipped norms (its loss and non-finite checks are unaffected); set
        ``max_grad_norm=0`` to let the monitor clip only when it sees gradients explode.

        Resume: at ``on_save`` the monitor's state goes to ``<output_dir>/checkpoint-<step>/lrkit_monitor.pt``; at
        ``on_train_begin`` of a resumed ``train`` (``state.global_step > 0``) it is read from
        ``<output_dir>/checkpoint-<global_step>``, or from the folder given to :meth:`load_checkpoint` before
        ``train`` (a checkpoint outside ``output_dir``). No file there: a warning, and a fresh monitor.
        """

        def __init__(self, *, monitor_metric: str | None = "eval_loss", save_snapshots: bool = True,
                     **monitor_kwargs: Any) -> None:
            super().__init__()
            if monitor_metric is not None and (not isinstance(monitor_metric, str) or not monitor_metric.strip()):
                # ("" named no metric: every evaluation was then warned about as missing, at run time)
                raise ValueError(
                    f"monitor_metric={monitor_metric!r} must be the name of an evaluation metric (a non-empty str, "
                    "e.g. 'eval_loss') or None"
                )
            if not isinstance(save_snapshots, bool):
                raise ValueError(f"save_snapshots={save_snapshots!r} must be True or False")
            check_monitor_kwargs(monitor_kwargs, _SUPPLIED)
            self.monitor_metric = monitor_metric
            self.save_snapshots = save_snapshots
            self.monitor_kwargs = dict(monitor_kwargs)
            #: The :class:`lrkit.Monitor` of the current (or last) ``train()``; ``None`` before ``on_train_begin``.
            self.monitor: Monitor | None = None
            self._hook: Any = None
            self._losses: list[torch.Tensor] = []  # this optimizer step's forward losses (the hook's)
            self._summed = False  # the model normalised its loss by num_items_in_batch: the step's loss is the sum
            self._summed_scale = 1  # what the Trainer's compute_loss multiplies such a loss by (data-parallel ranks)
            self._scaled_for_ga: bool | None = None  # the Trainer's loss_is_scaled_for_ga (None: decide as it does)
            self._reported: list[torch.Tensor] = []  # MonitorLossMixin's training_step losses (summed)
            self._mixin = False  # MonitorLossMixin reported: the hook's losses are not used
            self._unread: str | None = None  # what a training forward returned instead of a loss
            self._warned_loss = False
            self._warned_metric = False
            # monitor_metric missing from an evaluation: (global_step, the keys there were); warned at the next step
            # or at the end unless another evaluation at that step (another of several eval datasets) had it
            self._missing_metric: tuple[int, set[str]] | None = None
            self._metric_found_at = -1  # the global_step of the last evaluation that had monitor_metric
            self._stepping = False  # after_backward called, after_step due at on_step_end
            self._in_train = False
            self._resume_dir: Path | None = None
            self._loss_cap = _LOSS_CAP  # the hook's losses no optimizer step took: past it, a dead train() (below)

        # ---------------------------------------------------------------- set-up
        def load_checkpoint(self, checkpoint_dir: str | os.PathLike[str]) -> None:
            """Read the monitor's state from ``checkpoint_dir`` at the next ``train(resume_from_checkpoint=...)``
            (only needed for a checkpoint outside ``args.output_dir``)."""
            if not isinstance(checkpoint_dir, (str, os.PathLike)):  # pathlib's TypeError named no argument
                raise ValueError(f"load_checkpoint(checkpoint_dir={checkpoint_dir!r}): give the checkpoint folder "
                                 "as a str or Path (e.g. 'out/checkpoint-500')")
            path = Path(checkpoint_dir) / STATE_FILE
            if not path.is_file():
                raise ValueError(
                    f"load_checkpoint({str(checkpoint_dir)!r}): there is no {STATE_FILE} in that folder (the "
                    f"callback writes one into each checkpoint folder it saves)"
                )
            self._resume_dir = Path(checkpoint_dir)

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                           lr_scheduler: Any = None, **kwargs: Any) -> None:
            """Build the monitor and put the loss hook on the model; a resumed run loads the checkpoint's state."""
            if model is None or optimizer is None:
                raise ValueError(
                    "MonitorCallback: the Trainer gave the callback no model or optimizer at on_train_begin; it "
                    "needs both (a DeepSpeed or SageMaker run creates the optimizer elsewhere and is not supported)"
                )
            inner = _inner_optimizer(optimizer)
            scaler = getattr(optimizer, "scaler", None)  # accelerate's GradScaler under fp16
            scaler = scaler if scaler is not None and getattr(scaler, "is_enabled", lambda: True)() else None
            kwargs_ = dict(self.monitor_kwargs)
            if "sync_loss" not in kwargs_ and getattr(args, "world_size", 1) > 1:
                kwargs_["sync_loss"] = True
            self.monitor = Monitor(model, inner, lr_scheduler, grad_scaler=scaler, **kwargs_)
            # with average_tokens_across_devices (the default) num_items_in_batch counts the items of every rank, so
            # the model's loss is its rank's share; compute_loss multiplies it by the data-parallel ranks
            # (num_processes // tp_size) to give the loss the Trainer backpropagates and logs
            ranks = getattr(args, "world_size", 1)
            tp = getattr(model, "_tp_size", None) or 1
            average = getattr(args, "average_tokens_across_devices", False) and getattr(args, "n_gpu", 1) <= 1
            self._summed_scale = max(1, ranks // tp) if average and ranks > 1 else 1
            scaled = getattr(_calling_trainer(), "loss_is_scaled_for_ga", None)
            self._scaled_for_ga = scaled if isinstance(scaled, bool) else None
            self._remove_hook()
            self._hook = model.register_forward_hook(self._forward_hook, with_kwargs=True)
            self._losses, self._reported, self._mixin, self._unread = [], [], False, None
            self._stepping = False
            self._warned_loss = self._warned_metric = False
            self._missing_metric, self._metric_found_at = None, -1
            self._in_train = True
            self._loss_cap = max(_LOSS_CAP, 64 * max(1, int(getattr(args, "gradient_accumulation_steps", 1) or 1))
                                 * max(1, int(getattr(args, "n_gpu", 1) or 1)))
            resume_dir, self._resume_dir = self._resume_dir, None  # for this train() only, resumed or not
            if state.global_step > 0:  # only a resumed train() starts past step 0
                folder = resume_dir or Path(args.output_dir) / f"checkpoint-{state.global_step}"
                path = folder / STATE_FILE
                if path.is_file():
                    self.monitor.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                else:
                    warnings.warn(
                        f"MonitorCallback: the run resumes at step {state.global_step} but there is no {path}, so "
                        f"the monitor starts afresh (step count, events, back-off). A checkpoint outside "
                        f"args.output_dir: call callback.load_checkpoint(folder) before trainer.train(...)",
                        UserWarning,
                        stacklevel=2,
                    )

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            """Take the loss hook off the model."""
            self._remove_hook()
            self._warn_missing_metric()
            self._in_train = False

        def _remove_hook(self) -> None:
            if self._hook is not None:
                self._hook.remove()
                self._hook = None

        # ---------------------------------------------------------------- the loss
        def _forward_hook(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
            if not module.training or not torch.is_grad_enabled() or self._mixin:
                return
            loss = _read_loss(output)
            if loss is None:
                self._unread = _describe(output)
                return
            self._losses.append(loss.detach())
            self._summed = kwargs.get("num_items_in_batch") is not None
            if len(self._losses) > self._loss_cap:
                self._drop_stale_hook()

        def _drop_stale_hook(self) -> None:
            """Take the hook off a model whose ``train()`` ended in an error: no ``on_train_end`` took it off, and
            each training forward since (a hand loop, another Trainer) kept a loss no optimizer step ever collects."""
            count = len(self._losses)
            self._remove_hook()
            self._losses = []
            self._in_train = False
            warnings.warn(
                f"MonitorCallback: {count} training forwards of the model ran without an optimizer step of the "
                "Trainer's train() (one that ended in an error, with no on_train_end), so the callback's loss hook "
                "has been taken off the model; the next trainer.train() with this callback puts it back",
                UserWarning,
                stacklevel=2,
            )

        def _report_training_step_loss(self, loss: Any) -> None:
            if isinstance(loss, torch.Tensor):
                self._mixin = True
                self._reported.append(loss.detach())

        def _step_loss(self, state: Any) -> torch.Tensor | None:
            reported, losses = self._reported, self._losses
            self._reported, self._losses = [], []
            if self._mixin:
                if not reported:
                    return None
                return torch.stack([x.float().reshape(()) for x in reported]).sum()
            if not losses:
                if not self._warned_loss:
                    self._warned_loss = True
                    seen = (f"its training forward returned {self._unread}" if self._unread is not None
                            else "no training-mode forward of the model ran")
                    warnings.warn(
                        f"MonitorCallback cannot read the training loss at step {state.global_step}: {seen}. The "
                        f"callback reads the loss from the model's output (output.loss / output['loss'] / output[0]); "
                        f"label_smoothing_factor, compute_loss_func or a custom compute_loss compute it outside the "
                        f"model. Mix lrkit.integrations.transformers.MonitorLossMixin into your Trainer "
                        f"(class MyTrainer(MonitorLossMixin, Trainer)) to hand the callback the loss training_step "
                        f"returns. Until then the monitor is not called: the run trains unmonitored",
                        UserWarning,
                        stacklevel=2,
                    )
                return None
            # under nn.DataParallel (the Trainer's choice for several GPUs in one process) every replica runs the
            # hook (replicas share the module's hooks), each with the loss on its own device: combine them on one
            device = losses[0].device
            stacked = torch.stack([x.float().reshape(()).to(device) for x in losses])
            # the Trainer's rule (training_step): a loss normalised by num_items_in_batch is not divided by the
            # accumulation steps, so the step's loss is the sum; loss_is_scaled_for_ga set on the Trainer overrides it
            summed = self._summed if self._scaled_for_ga is None else self._scaled_for_ga
            value = stacked.sum() if summed else stacked.mean()
            return value * self._summed_scale if self._summed else value

        # ---------------------------------------------------------------- every step
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            """``monitor.after_backward`` with the step's loss, once per optimizer step (gradients complete)."""
            if self.monitor is None or not self._in_train:
                return
            loss = self._step_loss(state)
            if loss is None:
                return
            self.monitor.after_backward(loss)
            self._stepping = True

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            """``monitor.after_step()`` after the optimizer and scheduler stepped; a stop ends the training."""
            self._warn_missing_metric()
            if not self._stepping:
                return
            self._stepping = False
            if self.monitor is not None and self.monitor.after_step():
                control.should_training_stop = True

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                        **kwargs: Any) -> None:
            """``monitor.after_validation(metrics[monitor_metric])`` for evaluations during ``train()``."""
            if self.monitor is None or not self._in_train or self.monitor_metric is None or self._stepping:
                return
            metrics = metrics or {}
            value = metrics.get(self.monitor_metric)
            step = state.global_step
            if value is None:
                # several eval datasets: the Trainer calls on_evaluate once per dataset, each with its own
                # "eval_<name>_" metrics, so only one of them holds monitor_metric -- warned about later, when no
                # evaluation at this step had it
                if not self._warned_metric and self._metric_found_at != step:
                    missing = self._missing_metric
                    keys = missing[1] if missing is not None and missing[0] == step else set()
                    self._missing_metric = (step, keys | {str(k) for k in metrics})
                return
            self._metric_found_at = step
            if self._missing_metric is not None and self._missing_metric[0] == step:
                self._missing_metric = None
            if self.monitor.after_validation(value):
                control.should_training_stop = True

        def _warn_missing_metric(self) -> None:
            missing, self._missing_metric = self._missing_metric, None
            if missing is None or self._warned_metric or self._metric_found_at == missing[0]:
                return
            self._warned_metric = True
            there = ", ".join(repr(k) for k in sorted(missing[1])) or "none"
            warnings.warn(
                f"MonitorCallback: monitor_metric={self.monitor_metric!r} is not among the evaluation metrics "
                f"({there}), so the monitor gets no validation loss. Pass monitor_metric= one of those (None: no "
                f"validation checks)",
                UserWarning,
                stacklevel=3,
            )

        # ---------------------------------------------------------------- checkpoints
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            """Write the monitor's state to ``lrkit_monitor.pt`` in the checkpoint folder just saved."""
            if self.monitor is None or not getattr(args, "should_save", True):
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not folder.is_dir():  # a hyperparameter-search run dir: the Trainer saved elsewhere
                warnings.warn(
                    f"MonitorCallback: no checkpoint folder {folder} to save the monitor's state in; a run resumed "
                    f"from this checkpoint starts a fresh monitor",
                    UserWarning,
                    stacklevel=2,
                )
                return
            state_dict = self.monitor.state_dict(snapshot=self.save_snapshots)
            atomic_write(folder / STATE_FILE, lambda tmp: torch.save(state_dict, tmp))

    MonitorCallback.__module__ = __name__
    MonitorCallback.__qualname__ = "MonitorCallback"
    return MonitorCallback


__getattr__ = lazy_class(globals(), "MonitorCallback", _build)
