"""``lrkit.train``: Ultralytics-style training for any PyTorch model, with the learning rate handled end to end.

The flow is one way — **config → plan → run → record**: keyword arguments (or CLI tokens, or a YAML file) become a
validated :class:`~lrkit._config.TrainConfig`; the config becomes data loaders, a model, parameter groups, an
optimizer, a schedule and a monitor; the loop runs them; every epoch leaves its row in ``results.csv`` and a
``last.pt`` to resume from.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
import math
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lrkit._config import TrainConfig, _unknown_key_error, load_yaml_mapping
from lrkit._config import _plain as _config_plain
from lrkit._dlr import group_step_sizes
from lrkit._step import (
    _INPUT_KEYS,
    _TARGET_KEYS,
    _bad_loss_hint,
    _emit,
    _layout_mismatch,
    _squeezed,
    _token_logits,
    _warn_class_probabilities,
    _warn_dropped_keys,
    all_ignored,
    autocast_context,
    batch_loss,
    batch_size,
    class_targets,
    dtype_name,
    first_batch_loss,
    first_line,
    ignored_batch_error,
    model_outputs,
    move_to,
    not_a_tensor_error,
    own_loss,
    rebuild_like,
    refuse_broadcast,
    split_batch,
    takes_whole_batch,
    target_dtype_error,
)
from lrkit._utils import adapts_step_size, first_few, unknown_name_error
from lrkit.finder.range_test import _held_loaders, _loader_generators, _persistent_loaders, _shut_workers
from lrkit.train import run as _run
from lrkit.train.data import (
    SeededSampler,
    TrainData,
    _first_sample,
    count_classes,
    describe_sample,
    last_batch_size,
    load_data,
    tensor_target_range,
)
from lrkit.train.models import build_model, default_model_name
from lrkit.train.optim import (
    OPTIMIZERS,
    accepts_keyword,
    build_optimizer,
    choose_optimizer,
    class_default_lr,
    has_modes,
    momentum_target,
    resolve_optimizer,
)
from lrkit.train.results import TrainResults
from lrkit.train.reuse import run_checkpoint
from lrkit.train.tasks import TaskSpec, task_spec

__all__ = ["RESUME_OVERRIDES", "train"]

#: Keys that may change when resuming (everything else must match the checkpoint's run).
RESUME_OVERRIDES = frozenset(
    {"epochs", "patience", "device", "workers", "verbose", "plots", "resume", "amp", "project", "name", "exist_ok",
     "snapshot_device"}
)
#: The ``val_rising`` patience of ``lrkit.train``'s monitor (``Monitor(val_patience=...)``; the check's own default is
#: 2): a validation loss must stay above its best for 3 evaluations before the run rolls back. Adopted in session 32
#: by a test pre-registered on a fresh set of lrkit.train tasks (docs/benchmarks/monitor.md); ``monitor=
#: {"val_patience": 2}`` gives the earlier behaviour, and a ``checks=`` list keeps its own.
TRAIN_VAL_PATIENCE = 3
# keys that may hold Python objects, which a checkpoint stores only as "<TypeName>"
_OBJECT_KEYS = ("data", "model", "schedule")
_PY_ONLY = ("loss_fn", "step_fn", "progress", "cfg")
#: the Python-only arguments that take a callable, and what it is: a command line or a cfg= file cannot give one
_CALLABLES = {
    "loss_fn": "loss_fn(model(x), y) -> scalar loss; the default is the task's (task=classification|regression|lm)",
    "step_fn": "step_fn(model, batch) -> scalar loss, for any other batch layout",
    "progress": "progress(advance=, total=, info=, ...), called after every step and epoch",
}


def python_only_key_error(key: str, where: str) -> ValueError | None:
    """The error for a Python-only callable argument (``loss_fn``, ``step_fn``, ``progress``) given in ``where`` (the
    command line, a ``cfg=`` file), which cannot hold a function: its did-you-mean sent ``loss_fn`` to ``plots``.
    ``None`` for any other key."""
    meaning = _CALLABLES.get(key)
    if meaning is None:
        return None
    return ValueError(f"{key}= is a Python-only argument of lrkit.train (a callable: {meaning}); {where} cannot give "
                      f"a function: pass it from Python, lrkit.train(..., {key}=...)")

Progress = Callable[..., None]

# the keyword names the caller of train() actually passed (None: train's body was called some other way)
_PASSED: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("lrkit_train_passed", default=None)


def _records_passed_keys(fn: Callable[..., TrainResults]) -> Callable[..., TrainResults]:
    """Let ``train`` tell a key the caller passed from one left at its default, even when the values are equal
    (``resume=..., epochs=10`` must mean 10 epochs although 10 is the default)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> TrainResults:
        passed = set(kwargs)
        if args:
            passed.add("model")
        token = _PASSED.set(frozenset(passed))
        try:
            return fn(*args, **kwargs)
        finally:
            _PASSED.reset(token)

    return wrapper


@_records_passed_keys
def train(
    model: torch.nn.Module | str | None = None,
    *,
    data: Any = None,
    epochs: int = 10,
    lr0: float | str | None = None,
    lrf: float = 0.01,
    batch: int = 32,
    optimizer: str | type[torch.optim.Optimizer] = "auto",
    momentum: float = 0.937,
    weight_decay: float = 5e-4,
    warmup_epochs: float = 3.0,
    warmup_momentum: float = 0.8,
    warmup_bias_lr: float = 0.1,
    cos_lr: bool = False,
    schedule: Any = None,
    nbs: int = 64,
    patience: int | None = 50,
    seed: int = 0,
    project: str = "runs",
    name: str | None = None,
    exist_ok: bool = False,
    resume: bool | str = False,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    step_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
    device: str | None = None,
    amp: bool = False,
    backbone_lr_scale: float | None = None,
    head: str | list[str] | None = None,
    layer_decay: float | None = None,
    freeze: int | list[int | str] | None = None,
    monitor: bool | str | dict[str, Any] = True,
    snapshot_device: str | None = None,
    val: float = 0.2,
    workers: int = 0,
    verbose: bool = True,
    progress: Progress | None = None,
    task: str | None = None,
    target: str | int | Sequence[str | int] | None = None,
    drop: str | list[str] | None = None,
    seq_len: int = 64,
    auto_budget: float = 0.3,
    auto_search: str = "guard",
    plots: bool = True,
    cfg: str | None = None,
    **unknown: Any,
) -> TrainResults:
    """Train ``model`` on ``data`` with Ultralytics' hyperparameters and lrkit's LR handling; return the results.

    The schedule (unless ``schedule=`` gives another) is Ultralytics': over ``warmup_epochs`` the LR rises to
    ``lr0`` (bias groups fall from ``warmup_bias_lr``) and momentum rises from ``warmup_momentum``; then it decays
    from ``lr0`` to ``lr0 * lrf``, linearly, or along a cosine with ``cos_lr=True``:

        linear:  lr(e) = lr0 * ((1 - e / epochs) * (1 - lrf) + lrf)
        cosine:  lr(e) = lr0 * ((1 - cos(pi * e / epochs)) / 2 * (lrf - 1) + 1)

    Floating-point inputs are cast to the model's floating dtype as they are loaded (float64 numpy data and a
    float32 model just work; the log says so once); floating targets too when ``loss_fn`` is given (the built-in
    task losses compute in float32 whatever the dtypes). Integer inputs and targets are never touched; batches for a
    ``step_fn`` are passed as they are. Integer class targets of shape ``(N, 1)`` are read as class indices.

    Each optimizer step sees about ``nbs`` samples: ``accumulate = max(round(nbs / batch), 1)`` batches are
    accumulated and ``weight_decay`` is scaled by ``batch * accumulate / nbs``.

    Args:
        model: an ``nn.Module``, a built-in name (``linear``, ``mlp``, ``cnn``, ``charlm``; sized from the data),
            ``"package.module:factory"``, or ``None`` (``charlm`` for text, ``cnn`` for images, else ``mlp``).
        data: a built-in dataset name (``digits``, ``breast_cancer``, ``wine``, ``iris``, ``synthetic-regression``,
            ``synthetic-classification``), a ``.csv``/``.npz``/text/data-``.yaml`` file, a torch
            ``Dataset``/``DataLoader``, or a ``(train, val)`` pair of them.
        epochs, batch, lrf, momentum, weight_decay, warmup_epochs, warmup_momentum, warmup_bias_lr, cos_lr, nbs,
            patience, seed, project, name, exist_ok, resume: as in Ultralytics (see the README table). A warmup
            longer than the run (also one from a ``schedule=`` spec, such as ``"ultralytics"``'s default
            ``warmup_epochs=3``) is capped at the run length, with a note. ``resume=True`` resumes the newest
            ``last.pt`` anywhere under ``project`` (searched recursively, by modification time).
            ``exist_ok=True`` over a directory holding an earlier run moves that run's files into
            ``previous-<YYYYmmdd-HHMMSS>/`` inside it once the new run finishes its first epoch; a new run that
            fails before then leaves the directory as it was.
        lr0: the peak LR, always honoured when given; ``"auto"`` chooses it for this run (a range test plus short
            confirmation trials within ``auto_budget`` extra compute); ``None``: 0.01 for SGD/RMSProp, 0.001 for
            the Adam family, an optimizer class's own default ``lr`` (a class without one needs lr0).
        optimizer: ``"auto"`` (picks the family only: AdamW for language models and runs of at most 10,000
            optimizer steps, else SGD; the choice and the reason are logged), or ``SGD``, ``Adam``, ``AdamW``,
            ``NAdam``, ``RAdam``, ``RMSProp``, ``Adamax``; or any ``torch.optim.Optimizer`` subclass
            (``torch.optim.Adagrad``, ``schedulefree.AdamWScheduleFree``, ``prodigyopt.Prodigy``; on the command line
            ``"package.module:ClassName"``), built as ``cls(groups, lr=lr0, momentum=momentum)`` or with
            ``betas=(momentum, <its default beta2>)``, or without momentum when it takes neither. An optimizer
            with ``train()``/``eval()`` modes (schedule-free) is in eval mode for validation and checkpoints.
        schedule: any :mod:`lrkit.schedules` spec (string, dict or Schedule); replaces the lr0/lrf/cos_lr shape.
        loss_fn: ``loss_fn(model(x), y)``; default by task (cross-entropy, MSE, token cross-entropy).
        step_fn: ``step_fn(model, batch) -> loss`` for any other batch layout (the metric is then the val loss).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; default CUDA when available.
        amp: mixed precision (float16 + GradScaler on CUDA, bfloat16 autocast on CPU).
        backbone_lr_scale, head, layer_decay, freeze: fine-tuning (see :func:`lrkit.param_groups`). ``head``
            names the head's modules for ``backbone_lr_scale`` (default :data:`lrkit.scaling.DEFAULT_HEAD`: ``head``,
            ``fc``, ``classifier`` and Hugging Face's task heads; a causal LM's is ``"lm_head"``). ``freeze`` is a
            number of leading layers (``3``), or layers by name prefix / index: ``"body"``, ``"body,head"``,
            ``["body", 0]``.
        monitor: the training-health monitor (:class:`lrkit.Monitor`): ``True`` (its defaults), ``False``, an
            ``on_divergence`` action name, or a dict of Monitor options. It gets every step's loss and every
            epoch's validation loss (``val_rising``: back to the best epoch at a lower LR when the validation loss
            rises while the training loss falls; ``{"on_overfit": None}`` leaves that out). Its events land in
            ``events.json``, the results and ``results.png``.
        snapshot_device: where the monitor's snapshots (the healthy one and the best-validation one) and
            ``lr0="auto"``'s are kept: ``None`` (the default) on each tensor's own device — on a GPU, up to two extra
            copies of the model and its optimizer state in GPU memory — or ``"cpu"``: in host memory, so a model that
            fits a plain training loop fits here too (rollbacks copy back from the host; results are the same).
        val: the validation fraction when ``data`` has no separate validation part.
        workers: DataLoader worker processes.
        verbose: print what was chosen and why, and one line per epoch.
        progress: ``progress(advance=..., total=..., info=..., **fields)``, called once at the start (fields
            ``event="start"`` and ``run_dir``, the run's folder), after every optimizer step (fields
            ``event="step"``, ``epoch``, ``step``, ``loss``, ``lr``) and after every epoch (``event="epoch"`` with the
            epoch's row) — the CLI passes its progress bar here.
        task: ``classification``, ``regression`` or ``lm``; inferred from the data when ``None``.
        target: the target column of a CSV (name or index) or array of an NPZ file (or of a data YAML's files);
            default the last column; a list of two or more CSV columns (names or indexes), ``target=["y1", "y2"]``,
            trains a regression of several targets (one model output per column, in the list's order). Any other
            ``data=`` (a built-in, text, a Dataset/DataLoader) is an error.
        drop: CSV/TSV columns to leave out of the features (an ID column, a free-text note): a name, a
            comma-separated string (``"id,name"``) or a list; a name the file does not have is an error.
        seq_len: window length for text data.
        auto_budget: ``lr0="auto"``'s extra compute, as a fraction of the run's optimizer steps.
        auto_search: ``lr0="auto"``'s search: ``"guard"`` (the default: a range test and short confirmation trials
            within ``auto_budget``) or ``"prefix"`` (opt-in: the range test, then five trials of the run's own
            schedule over its first 20% plus a 5% anneal, at the suggestion times 10^(k/2), k=-2..2: about 1.5
            runs of extra compute, ``auto_budget`` does not apply; lower regret where the range test is far off,
            see the README's ``lr0="auto"`` section).
        plots: write ``results.png``.
        cfg: a YAML file of keys; the keyword arguments you pass override it (even one equal to its default).

    Returns:
        :class:`TrainResults`: ``model``, ``lr0`` and ``lr0_source`` (``"user"``, ``"auto"``, ``"default"``),
        ``auto``, ``history``, ``best_epoch``, ``final``/``best`` rows, ``run_dir``, ``events``, ...

    Raises:
        ValueError: a bad or unknown key (naming it and the closest valid one), bad data, or a bad resume.

    Example:
        >>> import tempfile, lrkit
        >>> r = lrkit.train(data="iris", model="mlp", epochs=3, lr0=0.01, optimizer="SGD",
        ...                 project=tempfile.mkdtemp(), verbose=False, plots=False)
        >>> r.lr0, r.optimizer, r.epochs_run, sorted(p.name for p in r.run_dir.iterdir())
        (0.01, 'SGD', 3, ['args.yaml', 'best.pt', 'events.json', 'last.pt', 'results.csv'])
    """
    if unknown:
        key = next(iter(unknown))
        raise _unknown_key_error(key, [*TrainConfig.keys(), *_PY_ONLY], list(unknown))  # all of them at once
    _refuse_multi_process()
    if (not isinstance(val, (str, bytes)) and getattr(val, "ndim", None) != 0
            and (hasattr(val, "__len__") or hasattr(val, "__iter__"))):
        # a validation set passed as val= (a Dataset, a DataLoader, a list of samples): say where it goes (a 0-dim
        # array or tensor is one number: a fraction, as before)
        raise ValueError(
            f"val= got a {type(val).__name__}, but val is the validation fraction held out of data= (default 0.2); "
            "to validate on a set of your own, pass data=(train, val)"
        )
    given = {k: v for k, v in locals().items() if k in TrainConfig.keys()}
    defaults = TrainConfig.defaults()
    passed = _PASSED.get()
    # a key counts as given when the caller passed it (None where None is the default means "not set")
    explicit = {k for k, v in given.items() if not _same(v, defaults[k])
                or (passed is not None and k in passed and not (v is None and defaults[k] is None))}
    if cfg is not None:
        file_keys = load_yaml_mapping(cfg)
        for key in file_keys:
            error = python_only_key_error(str(key), f"a cfg= file ({cfg})")
            if error is not None:
                raise error
        TrainConfig.check_keys(file_keys)
        given = {**given, **{k: v for k, v in file_keys.items() if k not in explicit}}
        explicit |= set(file_keys)
    config = TrainConfig.from_kwargs(**given)
    if config.lr0 == "auto" and config.auto_search == "prefix" and "auto_budget" in explicit:
        # before any data is read: the prefix search's cost is fixed, so an auto_budget with it would be ignored
        from lrkit.train.auto import _FOR_LRKIT_TRAIN, _check_search

        token = _FOR_LRKIT_TRAIN.set(True)
        try:
            _check_search("prefix", config.auto_budget, None)
        finally:
            _FOR_LRKIT_TRAIN.reset(token)
    if loss_fn is not None and step_fn is not None:
        raise ValueError("pass either loss_fn or step_fn, not both (step_fn computes the loss itself)")
    for fname, fn in (("loss_fn", loss_fn), ("step_fn", step_fn), ("progress", progress)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{fname}={fn!r} must be callable")
    trainer = _Trainer(config, explicit, loss_fn=loss_fn, step_fn=step_fn, progress=progress)
    try:
        return trainer.fit()
    finally:
        trainer.shut_own_workers()


def _name_still_valid(name: Any) -> bool:
    """Whether a run name recorded in a checkpoint passes today's checks (an earlier lrkit took ``'exp '``)."""
    from lrkit._config import _run_name

    try:
        if name is not None:
            _run_name("name", name)
    except ValueError:
        return False
    return True


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, (bool, int, float, str, type(None))) and isinstance(b, (bool, int, float, str, type(None))):
        return type(a) is type(b) and a == b
    return False


def _same_monitor(new: Any, old: Any) -> bool:
    """Whether two ``monitor=`` settings build the same :class:`lrkit.Monitor`: ``True``, ``{}``, ``"rollback"`` and
    ``{"on_divergence": "rollback"}`` are one monitor (its defaults); an option given at its default value is the
    same as one left out. ``val_patience`` left out is :data:`TRAIN_VAL_PATIENCE` (the train loop's own default).

    >>> _same_monitor(True, {"on_divergence": "rollback"}), _same_monitor(True, "stop"), _same_monitor(False, {})
    (True, False, False)
    """
    from lrkit._config import _monitor
    from lrkit.monitor import Monitor

    try:
        a, b = _monitor("monitor", new), _monitor("monitor", old)
    except ValueError:
        return False
    if a is False or b is False:
        return a is b
    defaults = {k: p.default for k, p in inspect.signature(Monitor).parameters.items()
                if p.default is not inspect.Parameter.empty}
    defaults["val_patience"] = TRAIN_VAL_PATIENCE

    def _at_default(value: Any, default: Any) -> bool:  # 5 is 5.0; True is not 1
        numbers = all(type(v) in (int, float) for v in (value, default))
        return _same(value, default) or (numbers and value == default)

    def options(setting: bool | dict[str, Any]) -> dict[str, Any]:
        given = {} if setting is True else setting
        assert isinstance(given, dict)
        kept = {k: v for k, v in given.items() if not (k in defaults and _at_default(v, defaults[k]))}
        return {k: _config_plain(v) for k, v in kept.items()}

    return options(a) == options(b)


def _names_class(spec: str, cls: type | None) -> bool:
    """Whether ``"module:ClassName"`` imports as ``cls`` (``"torch.optim:Adagrad"`` names ``torch.optim.Adagrad``)."""
    found = _spec_class(spec)
    if found is None:
        return False
    # a .py file is imported afresh each time, as a new class object: the same file and name is the same class
    return found is cls or (cls is not None and found.__qualname__ == cls.__qualname__ and _source(found) is not None
                            and _source(found) == _source(cls))


def _source(cls: type) -> Path | None:
    """The resolved file ``cls`` is defined in, or ``None`` (a built-in or a class made at run time)."""
    try:
        return Path(inspect.getfile(cls)).resolve()
    except (TypeError, OSError):
        return None


def _spec_class(spec: str) -> type | None:
    """The class ``"module:ClassName"`` imports as, or ``None`` when it does not import."""
    try:
        return resolve_optimizer(spec)
    except ValueError:
        return None


def _frozen_norms(model: torch.nn.Module, frozen: set[str]) -> list[torch.nn.Module]:
    """The BatchNorm/InstanceNorm layers (``_NormBase``, tracking running statistics) whose parameters are all in
    ``frozen`` (parameter names). A norm layer without parameters (``affine=False``) belongs to the nearest module
    above it that has parameters (its block): it is frozen when that block's parameters are all frozen, one of them
    by ``freeze=`` (a norm directly under the model root, whose parameters never all freeze, is left as it is)."""
    modules = dict(model.named_modules())
    norms = []
    for prefix, module in modules.items():
        if not isinstance(module, torch.nn.modules.batchnorm._NormBase) or not module.track_running_stats:
            continue
        names = [f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)]
        if names:
            if all(n in frozen for n in names):
                norms.append(module)
            continue
        parent = prefix
        while parent:  # up to the nearest enclosing module with parameters
            parent = parent.rpartition(".")[0]
            block = modules.get(parent)
            named = [] if block is None else list(block.named_parameters())
            if named:
                full = [f"{parent}.{n}" if parent else n for n, _ in named]
                if all(not p.requires_grad for _, p in named) and any(n in frozen for n in full):
                    norms.append(module)
                break
    return norms


def _keep_eval(module: torch.nn.Module, args: Any) -> None:
    """A forward pre-hook that runs ``module`` in eval mode whatever ``model.train()`` set (a frozen norm)."""
    module.training = False


def _names_object(value: Any) -> bool:
    """``True`` when a saved config value holds a placeholder ``"<TypeName>"`` for a Python object."""
    if isinstance(value, str):
        return value.startswith("<") and value.endswith(">")
    if isinstance(value, dict):
        return any(_names_object(v) for v in value.values())
    if isinstance(value, list):
        return any(_names_object(v) for v in value)
    return False


def _resolve_device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here; use device='cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= (count := torch.cuda.device_count()):
        raise ValueError(f"device={name!r} but this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1}); "
                         "use one of those, or device='cpu'")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device={name!r} but MPS is not available here; use device='cpu'")
    valid = "use 'cpu', 'cuda', 'cuda:N' or 'mps' (one this machine has)"
    if dev.type == "meta":  # model.to("meta") would have dropped the weights of the user's own model
        raise ValueError(f"device={name!r} cannot train a model (a meta tensor holds no values); {valid}")
    try:  # a device type this torch is not built for ('xla', 'ipu', ...): torch's error came from model.to(...)
        if dev.type not in ("cpu", "cuda", "mps"):  # (those three are checked above, by what the machine has)
            torch.empty(0, device=dev)
    except Exception as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"device={name!r} cannot be used: {why}; {valid}") from None
    return dev


def _place_loss_module(fn: Any, device: torch.device) -> str:
    """Move a ``loss_fn``/``step_fn`` that is an ``nn.Module`` with tensors elsewhere than ``device`` (a class
    ``weight`` of ``CrossEntropyLoss``, a ``pos_weight``: left on the CPU, the first loss on a GPU failed with torch's
    device mismatch) to ``device``, as the model is moved; return what was moved, in words (``""``: nothing).

    >>> loss = torch.nn.CrossEntropyLoss(weight=torch.ones(3))
    >>> _place_loss_module(loss, torch.device("meta")), loss.weight.device.type
    ('1 buffer', 'meta')
    >>> _place_loss_module(loss, torch.device("meta")), _place_loss_module(len, torch.device("cpu"))
    ('', '')
    """
    if not isinstance(fn, torch.nn.Module):
        return ""
    def elsewhere(t: torch.Tensor) -> bool:
        return t.device.type != device.type or (device.index is not None and t.device.index != device.index)

    params = sum(1 for p in fn.parameters() if elsewhere(p))
    buffers = sum(1 for b in fn.buffers() if elsewhere(b))
    if not params and not buffers:
        return ""
    fn.to(device)
    parts = [f"{n} {what}{'s' * (n != 1)}" for n, what in ((params, "parameter"), (buffers, "buffer")) if n]
    return " and ".join(parts)


def _meta_tensors(model: torch.nn.Module) -> list[str]:
    """The names of ``model``'s parameters and buffers on the ``meta`` device (built under
    ``torch.device("meta")`` or Accelerate's ``init_empty_weights``: shapes without values)."""
    return [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]


class _Trainer:
    """One training run: built from a validated config, run by :meth:`fit`. Private; :func:`train` is the API."""

    def __init__(self, config: TrainConfig, explicit: set[str], *, loss_fn: Any, step_fn: Any,
                 progress: Progress | None) -> None:
        self.cfg = config
        self.explicit = explicit
        self.user_loss = loss_fn
        self.step_fn = step_fn
        self.progress = progress
        self.ckpt: dict[str, Any] | None = None
        self.ckpt_path: Path | None = None
        self.created_dir = False
        self.created_parents: list[Path] = []
        self.previous_files: list[str] = []
        self.rewrite_args = False
        #: a relative ``file.py:Name`` spec resumed from another folder: its absolute spelling -> the recorded one
        self.moved_specs: dict[str, str] = {}
        #: log lines held back while a new run's schedule is planned: its notes ("warmup_epochs=3 is longer than
        #: the run") qualify the plan, so they follow its lines (data, model, optimizer, lr0), not open the log
        self.held_lines: list[str] | None = None
        #: the warnings this run has given (category, text): the first-step checks run on the first validation batch,
        #: in lr0="auto"'s range test and at the first training step, and each says a thing once (see _warn_once)
        self.said_warnings: set[tuple[type, str]] = set()
        #: the first training step of this call has run its checks (:meth:`_first_loss`); later steps run bare
        self.first_step_done = False
        #: the first training step's model output, for the error of a backward pass that fails on it (then dropped)
        self.first_out: Any = None

    # ---------------------------------------------------------------------------------------------- logging
    def log(self, line: str) -> None:
        """Print a log line (``verbose``); in a terminal wrapped to its width with a hanging indent
        (:func:`_wrap_log`), piped or redirected as one line per message, for grep."""
        if self.held_lines is not None:  # planning notes, said after the plan they qualify (see fit)
            self.held_lines.append(line)
            return
        if self.cfg.verbose:
            print("\n".join(_wrap_log(line, _terminal_width())), flush=True)

    def _stop_holding(self) -> list[str]:
        """The lines held back while the schedule was planned (:attr:`held_lines`); :meth:`log` prints again."""
        held, self.held_lines = self.held_lines or [], None
        return held

    # ---------------------------------------------------------------------------------------------- resume
    def _merge_resume(self) -> None:
        """The checkpoint's config, with the keys that may change on resume taken from this call."""
        cfg = self.cfg
        # resume=True searches project for the newest last.pt; a name given with it narrows that to project/name
        name = cfg.name if "name" in self.explicit else None
        self.ckpt_path = _run.find_resume_checkpoint(cfg.resume, cfg.project, name)
        self.ckpt = _run.load_checkpoint(self.ckpt_path)
        run = self.ckpt_path.parent
        if "optimizer" not in self.ckpt:  # best.pt: the best epoch's weights, without the training state
            raise ValueError(f"resume: {self.ckpt_path} holds only a model's weights (best.pt keeps the best epoch's); "
                             f"resume from the run's last.pt ({run / 'last.pt'}), which holds the whole training state")
        stale = _run.remove_stale_temp_files(run)
        if stale:
            self.log(f"resume: removed {len(stale)} half-written temporary file(s) a killed run left in {run}: "
                     f"{', '.join(stale)}")
        self._repair_best(self.ckpt, run)
        saved = dict(self.ckpt["config"])
        data, home = saved.get("data"), self.ckpt.get("cwd")
        if isinstance(data, str) and isinstance(home, str) and not Path(data).is_absolute() and not Path(data).exists():
            moved = Path(home) / data  # a relative data file, resumed from another working directory
            if moved.exists():
                saved["data"] = str(moved)
                self.log(f"resume: data={data!r} is read from the run's working directory: {moved}")
        for key in ("optimizer", "model"):  # a class or factory from a relative file.py, resumed from elsewhere
            spec = saved.get(key)
            if not (isinstance(spec, str) and isinstance(home, str) and ":" in spec):
                continue
            file, _, attr = spec.rpartition(":")
            moved = Path(home) / file
            if file.endswith(".py") and not Path(file).is_absolute() and not Path(file).exists() and moved.exists():
                saved[key] = f"{moved}:{attr}"
                self.moved_specs[saved[key]] = spec  # the same class or factory, under the name the run recorded
                self.log(f"resume: {key}={spec!r} is imported from the run's working directory: {moved}")
        merged: dict[str, Any] = {}
        for key in TrainConfig.keys():
            new, old = getattr(cfg, key), saved.get(key, getattr(cfg, key))
            class_spec_again = isinstance(old, str) and ":" in old and isinstance(new, str) and ":" in new
            if key == "optimizer" and isinstance(old, str) and (isinstance(new, type) or old.startswith("<")
                                                                or class_spec_again):
                merged[key] = self._resumed_optimizer(new, old, run)
            elif key in _OBJECT_KEYS and isinstance(old, str) and old.startswith("<"):
                # the run was given a Python object (Dataset, nn.Module, Schedule): it cannot be saved, so it must
                # be passed again
                if new is None:
                    what = {"data": "data=", "model": "model (freshly built)", "schedule": "schedule="}[key]
                    raise ValueError(f"resume: the run {run} was given a Python object for {key} ({old}); pass the "
                                     f"same {what} again to resume it")
                merged[key] = new
            elif key in self.explicit and key in RESUME_OVERRIDES:
                merged[key] = new
            elif key == "name" and not _name_still_valid(old):
                merged[key] = new  # a name an earlier lrkit took ('exp '): ignored on resume (the run's folder)
            elif key in self.explicit and not isinstance(new, (str, int, float, bool, type(None), dict, list)):
                merged[key] = new  # a Python object passed again where the run had a name: trust the caller
            elif key in self.explicit and _config_plain(new) == old:
                merged[key] = new  # the same setting, with the Python objects the checkpoint could only name
            elif key == "monitor" and key in self.explicit and _same_monitor(new, old):
                merged[key] = new  # monitor=True, {} and "rollback" are one monitor (the Monitor's defaults)
            elif key in self.explicit and not _same(new, old) and new != old:
                used = ""
                if key == "lr0" and (old is None or old == "auto") and self.ckpt.get("lr0") is not None:
                    # lr0=None/"auto": say which LR that was
                    used = f", which trained at lr0={float(self.ckpt['lr0']):g} ({self.ckpt.get('lr0_source')})"
                raise ValueError(
                    f"resume: {key}={new!r} differs from the run being resumed ({key}={old!r}{used}); only "
                    f"{', '.join(sorted(RESUME_OVERRIDES - {'resume'}))} may change on resume — start a new run instead"
                )
            else:
                if _names_object(old):  # e.g. monitor={"on_event": fn}: the checkpoint holds only "<function>"
                    raise ValueError(f"resume: the run {run} was given a Python object in {key}={old!r}; pass the "
                                     f"same {key}= again to resume it")
                merged[key] = old
        merged["resume"] = str(self.ckpt_path)
        used = self.ckpt.get("custom_loss")
        given = self._custom_loss()
        if used != given:
            raise ValueError(f"resume: the run was trained with {used or 'the default loss'}; pass "
                             f"{used + '= ' if used else 'no loss_fn/step_fn '}the same way again to resume it")
        self.cfg = TrainConfig.from_kwargs(**merged)

    def _repair_best(self, ck: dict[str, Any], run: Path) -> None:
        """A run killed between writing ``last.pt`` and ``best.pt`` left a ``best.pt`` older than the best epoch that
        ``last.pt`` records (or none): write it again from ``last.pt``, which holds that epoch's validated weights."""
        epoch = int(ck.get("epoch", 0))
        if int(ck.get("best_epoch", 0)) != epoch or epoch == 0:
            return  # the best epoch is older than last.pt's: its best.pt was complete before last.pt was written
        path = run / "best.pt"
        try:
            old = torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None
        except Exception:
            old = None
        if isinstance(old, dict) and old.get("format") == _run.CHECKPOINT_FORMAT and old.get("epoch") == epoch:
            return
        best = {k: v for k, v in ck.items() if k not in _NOT_IN_BEST}
        best["model"] = _without_wrapper_prefix(ck.get("best_model", ck["model"]))  # the plain model's names
        _run.save_checkpoint(path, best)
        self.log(f"resume: {path} was older than the best epoch ({epoch}) recorded in last.pt (the run was killed "
                 "while saving it); rewrote it from last.pt")

    def _resumed_optimizer(self, new: Any, old: str, run: Path) -> Any:
        """The optimizer to resume with when the run or this call has a class: the class passed again must be the
        one the run recorded (``"module:ClassName"``); a class the checkpoint could only name (``"<...>"``: defined
        inside a function) must be passed again."""
        given = "optimizer" in self.explicit
        if given and isinstance(new, type):
            if _config_plain(new) == old:
                return new
            if ":" in old and not old.startswith("<") and _names_class(old, new):
                return old  # the run's own spelling ("torch.optim:Adagrad"), so its recorded name still matches
            raise ValueError(f"resume: optimizer={_config_plain(new)!r} differs from the run being resumed "
                             f"(optimizer={old!r}); start a new run to change the optimizer")
        if given and isinstance(new, str) and ":" in new and ":" in old and not old.startswith("<"):
            # "torch.optim:Adagrad" and "torch.optim.adagrad:Adagrad" name one class: the run's spelling is kept
            if new.strip() == old or _names_class(new, _spec_class(old)):
                return old
            raise ValueError(f"resume: optimizer={new!r} differs from the run being resumed (optimizer={old!r}); "
                             "start a new run to change the optimizer")
        if old.startswith("<"):
            raise ValueError(f"resume: the run {run} was given an optimizer class that cannot be imported by name "
                             f"({old}, defined inside a function); pass the same optimizer= class again to resume it")
        if given and _config_plain(new) != old:
            raise ValueError(f"resume: optimizer={new!r} differs from the run being resumed (optimizer={old!r}); "
                             "start a new run to change the optimizer")
        return old

    def _custom_loss(self) -> str | None:
        if self.step_fn is not None and self.step_fn is not own_loss:  # (own_loss: lrkit's default for HF batches)
            return "step_fn"
        return "loss_fn" if self.user_loss is not None else None

    # ---------------------------------------------------------------------------------------------- build
    def shut_own_workers(self) -> None:
        """Shut down the worker processes of the ``persistent_workers`` loaders lrkit split from the user's
        DataLoader (:attr:`TrainData.owned`), which nothing outside the run can reach. Left alive, they outlived the
        run, and torch's shutdown of a loader met by the garbage collector waits 5 s for each worker (before session
        27: 20 s at a ``gc.collect()`` after the run). The user's own loaders keep theirs, for their next pass."""
        data = getattr(self, "data", None)
        if data is None or not data.owned:
            return
        for loader in (getattr(self, "train_loader", None), getattr(self, "val_loader", None)):
            for dl in _persistent_loaders(loader) if loader is not None else []:
                _shut_workers(dl)

    def _build(self) -> None:
        cfg = self.cfg
        _seed_all(cfg.seed)
        self.data: TrainData = load_data(cfg.data, seed=cfg.seed, val=cfg.val, task=cfg.task, target=cfg.target,
                                         drop=cfg.drop, seq_len=cfg.seq_len)
        info = self.data.info
        for note in info.notes:
            self.log(f"data: {note}")
        # lrkit cuts windows of a text file only; a seq_len at its default changes nothing either way, and is
        # "given" by every key of a cfg= file (a run's own args.yaml, which lists them all)
        if ("seq_len" in self.explicit and info.vocab is None
                and cfg.seq_len != TrainConfig.defaults()["seq_len"]):
            self.log(f"data: note — seq_len={cfg.seq_len} ignored: it is the window length lrkit cuts a text file "
                     f"into (a character-level LM), and data {info.name!r} is not a text file"
                     + (f" (its samples' shape sets the length: {info.seq_len})" if info.seq_len else ""))
        for line in self._data_yaml_overrides():
            self.log(line)
        if info.task is None and self.step_fn is None and self.user_loss is None:
            sample = _first_sample(self.data.train)
            # Hugging Face batches (input_ids, attention_mask, labels): the model takes them all and returns its loss
            if takes_whole_batch(sample):
                self.step_fn = own_loss
                self.log(f"data: dict samples with keys {sorted(map(str, sample))} ('labels' and no x/input key, a "
                         "Hugging Face batch): each batch goes to the model whole, model(**batch).loss, as "
                         "Hugging Face's Trainer does; the metric is the validation loss")
        if info.task is None and self.step_fn is None and self.user_loss is None:
            batched = (" (the train DataLoader has batch_size=None: its dataset's items are whole batches, and "
                       "the first row of the first of them is read as a sample)"
                       if isinstance(self.data.train, DataLoader) and self.data.train.batch_size is None else "")
            if isinstance(sample, (tuple, list)) and len(sample) > 2:  # (x, y, weight): no task= splits it
                raise ValueError(
                    f"cannot train on data {info.name!r}: its first sample is {describe_sample(self.data.train)}"
                    f"{batched}, and lrkit splits a batch into (inputs, targets) only — a task= would not read the "
                    f"other {len(sample) - 2} item(s). Pass step_fn=lambda model, batch: loss that reads them, e.g. "
                    "for per-sample weights (torch.nn.functional.cross_entropy(model(batch[0]), batch[1], "
                    "reduction='none') * batch[2]).mean()"
                )
            raise ValueError(
                f"cannot tell the task of data {info.name!r}: its first sample is {describe_sample(self.data.train)}"
                f"{batched}. lrkit reads integer class indices of shape () or (1,) as classification, float targets "
                "as regression, and integer token ids with targets of the inputs' shape as lm; pass "
                "task='classification'|'regression'|'lm', or step_fn=lambda model, batch: loss"
            )
        if (info.task in ("classification", "lm") and info.num_outputs is None
                and not isinstance(cfg.model, torch.nn.Module)):
            info.num_outputs = count_classes(self.data)
        self.spec: TaskSpec = task_spec(info.task if self.step_fn is None else None)
        self.loss_fn = self.user_loss or _on_outputs(self.spec.loss)
        self.device = _resolve_device(cfg.device)
        source = run_checkpoint(cfg.model)
        if source is not None:  # fine-tuning from an lrkit run (Ultralytics' model=best.pt): its model and weights
            self.model = _pretrained(cfg.model, source, info.features).to(self.device)
            self.model_name = f"{_model_class_name(self.model)} (from {source})"
        else:
            model = build_model(cfg.model, info)
            meta = _meta_tensors(model)
            if meta:  # torch: "Cannot copy out of meta tensor; no data!" from .to(device)
                raise ValueError(
                    f"model {_model_class_name(model)} has tensors on the meta device ({first_few(meta, 1)}): shapes "
                    "without values, which cannot train; give them values first, e.g. model.to_empty(device='cpu') "
                    "then initialise them (reset_parameters()) or load weights (load_state_dict(state, assign=True))"
                )
            self.model = model.to(self.device)
            # model=None is the default built-in, named as model=<that name> would name it ("mlp", not the class)
            self.model_name = (cfg.model.strip() if isinstance(cfg.model, str)  # (built as stripped: 'mlp ' is mlp)
                               else default_model_name(info) if cfg.model is None else _model_class_name(self.model))
        for key, fn in (("loss_fn", self.user_loss), ("step_fn", self.step_fn)):
            moved = _place_loss_module(fn, self.device)
            if moved:
                self.log(f"lrkit.train: {key} {type(fn).__name__} — moved its {moved} to {self.device}, where the "
                         "model and the batches are")
        #: the architecture load_run rebuilds this run's model from, where model= does not name it (a checkpoint)
        #: (a model from load_run: a checkpoint, a Python object, a factory returning load_run(...).model)
        self.model_spec: str | None = getattr(self.model, "_lrkit_model_spec", None)

        workers, cpus = cfg.workers, os.cpu_count() or 1
        # DataLoaders of the user's (or split from one) keep their own num_workers: workers= is not used (said below)
        yours = isinstance(self.data.train, DataLoader) and isinstance(self.data.val, DataLoader)
        if workers > cpus and not yours:  # (workers=1e6 would try to start a million processes and hang)
            plural = "s" * (cpus != 1)
            self.log(f"lrkit.train: note — workers={workers} is more than this machine's {cpus} CPU{plural}: "
                     f"using {cpus}, "
                     "as Ultralytics caps it")
            workers = cpus
        train_loader, val_loader, sampler = self.data.loaders(batch=cfg.batch, workers=workers, seed=cfg.seed)
        self.model_dtype = _floating_dtype(self.model)
        self.cast_said = False
        #: targets a 16-bit model's dtype would round have been kept in their own dtype, and the log said so
        self.target_cast_said = False
        #: an epoch has read more or fewer batches than len(train_loader) and the log has said so (see _train_epoch)
        self.batch_count_said = False
        #: a validation batch has shown multi-hot (B, K) targets (see _per_label): every later one is scored per label
        self.multi_hot_seen = False
        #: the first epoch (1-based) whose training batch with a non-finite loss held NaN values itself: the
        #: data's fault, not the LR's (see _backoff_note); None while no such batch was seen
        self.bad_data_epoch: int | None = None
        #: how a classifier's scores were read at validation (see _scored), recorded in the checkpoint
        self.scores_kind: str | None = None
        #: lr0 came from the schedule spec's own peak (lr0=/max_lr=), not from an lr0= key (see _plan_schedule)
        self.lr0_from_spec = False
        if self.step_fn is None and self.model_dtype is not None:  # a step_fn reads its batches itself
            train_loader = _CastingLoader(train_loader, self._cast_batch)
            val_loader = _CastingLoader(val_loader, self._cast_batch)
        train_loader = self._without_single_sample_batch(train_loader, val_loader)
        self.train_loader, self.val_loader, self.sampler = train_loader, val_loader, sampler
        try:
            self.num_batches = len(train_loader)
        except TypeError:
            raise ValueError("the train DataLoader has no length (an IterableDataset?); lrkit.train needs a sized "
                             "loader to plan the schedule") from None
        if self.num_batches < 1:
            hint = ""
            if getattr(train_loader, "drop_last", False):
                hint = (f" (drop_last=True with batch_size={train_loader.batch_size} and {info.n_train} training "
                        "samples drops every batch; use a smaller batch or drop_last=False)")
            raise ValueError(f"the training split of {info.name!r} yields no batches{hint}")
        self._check_model_runs()
        self._refuse_untrained_loss_parameters()
        # lrkit's own loaders: cfg.batch (TrainData.loaders caps a batch above the split at the split's size: said
        # just below); n_train counts the samples those batches draw from, unless a loader's items are whole batches
        batch, per_sample = cfg.batch, True
        if isinstance(self.data.train, DataLoader):
            batch, line, per_sample = _passed_batch(self.data.train, cfg.batch, given="batch" in self.explicit)
            if line is not None:
                self.log(line)
            own = self.data.train.num_workers
            if yours and "workers" in self.explicit and cfg.workers != own:  # (before session 27 it went unsaid)
                how = ("split and reloaded with its settings" if self.data.owned else "used as it is")
                self.log(f"data: workers={cfg.workers} is not used: the DataLoader you passed has num_workers={own}, "
                         f"and it is {how}; set num_workers on the DataLoader to change it")
        from lrkit.scaling import nominal_batch

        if per_sample and 0 < info.n_train < batch:  # a batch larger than the data: each step sees the n_train samples
            self.log(info.batch_above_split(batch))
            batch = info.n_train
        self.batch = batch
        self.accumulate, self.weight_decay = nominal_batch(batch, cfg.nbs, cfg.weight_decay)
        self.steps_per_epoch = math.ceil(self.num_batches / self.accumulate)
        self.total_steps = cfg.epochs * self.steps_per_epoch

        self.opt_name, self.opt_reason = choose_optimizer(cfg.optimizer, total_steps=self.total_steps, task=info.task)
        # an Optimizer class (or "package.module:ClassName"): resolved here, before anything is written
        self.opt_class = None if self.opt_name in OPTIMIZERS else resolve_optimizer(cfg.optimizer)
        if self.opt_class is None:
            default_lr: float | None = OPTIMIZERS[self.opt_name].default_lr
        else:
            default_lr = class_default_lr(self.opt_class)
        # no lr0 to default to (a class without a default lr): a schedule= spec that names its peak may still give
        # one; checked once the schedule is planned (_check_lr0_given), before anything is written
        self.lr0_missing = default_lr is None and cfg.lr0 is None
        if isinstance(cfg.lr0, float):
            self.lr0, self.lr0_source = cfg.lr0, "user"
        else:
            # lr0="auto" over a class without a default lr: a starting value only (the range test sets every group's)
            self.lr0 = default_lr if default_lr is not None else 1e-3
            self.lr0_source = "auto" if cfg.lr0 == "auto" else "default"
        from lrkit.scaling import param_groups

        already_frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        # one name as the name (its errors read head='hed', as typed), several as a tuple
        head = {} if cfg.head is None else {"head": cfg.head[0] if len(cfg.head) == 1 else tuple(cfg.head)}
        groups = param_groups(
            self.model, self.lr0, weight_decay=self.weight_decay, backbone_lr_scale=cfg.backbone_lr_scale,
            layer_decay=cfg.layer_decay, freeze=cfg.freeze, **head,
        )
        #: (name, numel) of the parameters freeze= froze (not those the user's model had frozen already)
        self.frozen = [(n, p.numel()) for n, p in self.model.named_parameters()
                       if not p.requires_grad and n not in already_frozen]
        #: normalisation layers with running statistics whose parameters freeze= froze: kept in eval mode while
        #: training, so their statistics are frozen with their weights (as timm's FrozenBatchNorm2d, detectron2)
        self.frozen_norms = _frozen_norms(self.model, {n for n, _ in self.frozen})
        self.optimizer = build_optimizer(self.opt_class or self.opt_name, groups, lr=self.lr0, momentum=cfg.momentum)
        # a momentum schedule (Ultralytics' warmup_momentum) needs every group to hold momentum or betas
        self.has_momentum = all("momentum" in g or "betas" in g for g in self.optimizer.param_groups)
        self.opt_modes = has_modes(self.optimizer)
        self.warmup_bias_lr = cfg.warmup_bias_lr
        self.bias_note: str | None = None
        self.one_lr = False  # Prodigy/D-Adaptation: one LR for every group (set by _one_lr_for_all_groups)
        self._one_lr_for_all_groups()
        if (cfg.optimizer == "auto" and "warmup_bias_lr" not in self.explicit and self.warmup_bias_lr
                and self.bias_note is None and cfg.schedule is None):
            # as Ultralytics' optimizer=auto does: a bias warmup from 0.1 is far above an adaptive optimizer's LR
            # (AdamW at lr0=3e-5 would start every bias of a pretrained model 3,000x above its peak)
            self.bias_note = (f"note — optimizer=auto: warmup_bias_lr=0 (the bias groups warm up with the rest, not "
                              f"from {self.warmup_bias_lr:g}), as Ultralytics' optimizer=auto does; pass "
                              "warmup_bias_lr= to set it")
            self.warmup_bias_lr = 0.0
            self.cfg = self.cfg.replace(warmup_bias_lr=0.0)  # args.yaml and last.pt record the value used
        self.group_names = [str(g.get("name", f"pg{i}")) for i, g in enumerate(self.optimizer.param_groups)]
        self.auto: Any = None
        self.step_lrs = [float(g["lr"]) for g in self.optimizer.param_groups]

    def _refuse_untrained_loss_parameters(self) -> None:
        """A ``loss_fn``/``step_fn`` that is an ``nn.Module`` whose loss depends on trainable parameters of its own (a
        learned temperature, uncertainty weights, an ArcFace margin layer): the optimizer holds the model's parameters
        only, so they stayed at their initial values, without a word. A ``ValueError`` naming them and the fix. Read
        on one validation batch with gradients on (eval mode), only for such a module: parameters the loss does not
        reach (a distillation teacher run under ``torch.no_grad()``) are left alone."""
        own = {id(p) for p in self.model.parameters()}
        for key, fn in (("loss_fn", self.user_loss), ("step_fn", self.step_fn)):
            if not isinstance(fn, torch.nn.Module):
                continue
            extra = [(n, p) for n, p in fn.named_parameters() if p.requires_grad and id(p) not in own]
            if not extra:
                continue
            was_training = self.model.training
            self.model.eval()
            try:
                batch = next(iter(self.val_loader), None)
                if batch is None:
                    return
                with torch.enable_grad():
                    loss = batch_loss(self.model, move_to(batch, self.device), self.loss_fn, self.step_fn)
                    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
                        return  # (the loop names a loss without a graph in its own words)
                    grads = torch.autograd.grad(loss, [p for _, p in extra], allow_unused=True)
            except Exception:  # a loss that cannot run here fails in the loop with its own message
                return
            finally:
                self.model.train(was_training)
            used = [n for (n, _), g in zip(extra, grads) if g is not None]
            if used:
                names = first_few(used, 3)
                raise ValueError(
                    f"{key}={type(fn).__name__}(...) computes the loss with trainable parameters of its own "
                    f"({names}), but lrkit.train optimises the model's parameters only: they would stay at their "
                    "initial values; put the loss module inside the model (an nn.Module holding both, with "
                    "step_fn=lambda model, batch: model.loss(model.net(batch[0]), batch[1])), or freeze them with "
                    f"{key}.requires_grad_(False)"
                )

    def _data_yaml_overrides(self) -> list[str]:
        """Notes for ``val=`` / ``seq_len=`` given beside a data YAML that sets its own (the YAML's win, as the README
        says; before, the given value was dropped without a word). A value at its default is "given" by every key of a
        cfg= file (a run's own args.yaml), so only one that differs from the default is named."""
        cfg, defaults = self.cfg, TrainConfig.defaults()
        keys = [k for k in ("val", "seq_len") if k in self.explicit and getattr(cfg, k) != defaults[k]]
        data = cfg.data
        if not keys or not isinstance(data, (str, os.PathLike)) or Path(data).suffix.lower() not in (".yaml", ".yml"):
            return []
        from lrkit._utils import yaml_load

        try:  # (load_data read it already: a file it could not read never gets here)
            spec = yaml_load(Path(data).expanduser().read_text(encoding="utf-8-sig"))
        except Exception:
            return []
        if not isinstance(spec, Mapping):
            return []
        name = Path(data).name
        return [f"data: note — {k}={getattr(cfg, k)!r} (given) is not used: {name} sets {k}: {spec[k]} (a data "
                "YAML's own value wins; change it there)" for k in keys if spec.get(k) is not None]

    def _without_single_sample_batch(self, train_loader: Any, val_loader: Any) -> Any:
        """``train_loader`` without its last batch when that batch holds one sample and the model has BatchNorm
        layers, which cannot train on it (torch: "Expected more than 1 value per channel when training") — as
        ``drop_last=True`` would, for that batch only; the loader as it is otherwise."""
        norms = [n for n, m in self.model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not norms or last_batch_size(train_loader) != 1:
            return train_loader
        norms = self._single_value_norms(norms, val_loader)
        if not norms:  # every BatchNorm sees more than one value per channel in a 1-sample batch (a CNN's 2-D maps)
            return train_loader
        info, batches = self.data.info, len(train_loader)
        where = first_few(norms, 1)
        if batches < 2:
            raise ValueError(
                f"the training split of {info.name!r} has 1 training sample, but the model's BatchNorm layers "
                f"({where}) need batches of at least 2 samples in training; give it more training data"
            )
        size = getattr(train_loader, "batch_size", None)
        self.log(f"data: the last training batch of each epoch holds 1 sample, which the model's BatchNorm layers "
                 f"({where}) cannot train on: it is left out, as drop_last=True would ({batches - 1} batches of "
                 f"{size} per epoch); pick a batch that does not leave 1 sample over to train on every sample")
        return _WithoutLastBatch(train_loader)

    def _single_value_norms(self, norms: list[str], val_loader: Any) -> list[str]:
        """Those of the BatchNorm layers ``norms`` that would see one value per channel in a batch of one sample —
        torch refuses to train on that: a ``BatchNorm1d`` on ``(N, C)`` features, a ``BatchNorm2d`` on ``1x1`` maps
        (``BatchNorm2d`` on ``(1, C, 4, 4)`` trains). Read from the layers' inputs in one forward pass over a
        validation batch (eval mode, no grad); with a ``step_fn`` (no batch to split) all of ``norms``."""
        if self.step_fn is not None:
            return norms
        batch = next(iter(val_loader), None)
        if batch is None:
            return norms
        modules = dict(self.model.named_modules())
        single: set[str] = set()

        def hook(name: str) -> Callable[..., None]:
            def record(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
                x = args[0] if args else None
                if isinstance(x, torch.Tensor) and x.dim() >= 2 and math.prod(x.shape[2:]) == 1:
                    single.add(name)
            return record

        handles = [modules[n].register_forward_pre_hook(hook(n)) for n in norms]
        was_training = self.model.training
        try:
            self.model.eval()
            with torch.no_grad():
                self.model(split_batch(move_to(batch, self.device))[0])
        except Exception:  # _check_model_runs reports a model that cannot run; here, keep the safe reading
            return norms
        finally:
            for h in handles:
                h.remove()
            self.model.train(was_training)
        return [n for n in norms if n in single]

    def _check_lr0_given(self) -> None:
        """An optimizer class without a default ``lr`` needs ``lr0`` (a number or ``"auto"``) or a ``schedule=``
        spec that names its peak."""
        if self.lr0_missing and self.lr0_source != "user":
            name = self.opt_class.__name__ if self.opt_class is not None else self.opt_name
            raise ValueError(
                f"optimizer={self.opt_name!r}: {name} has no default lr in its signature, so "
                "lr0 has nothing to default to; pass lr0=<number> (its peak LR) or lr0='auto'"
            )

    def _one_lr_for_all_groups(self) -> None:
        """Prodigy and D-Adaptation estimate one step size ``d`` for all groups and refuse groups whose LRs differ
        (other than 0). Ultralytics' bias warmup (bias groups start at ``warmup_bias_lr``) is then off unless asked
        for — the bias groups warm up with the rest — and asked-for LR differences fail here, before the run."""
        groups = self.optimizer.param_groups
        if self.opt_class is None or not adapts_step_size(self.optimizer):
            return
        self.one_lr = True
        name, cfg = self.opt_class.__name__, self.cfg
        if cfg.lr0 == "auto":  # a range test over a multiplier suggests a multiplier nobody should train with
            raise ValueError(f"optimizer={self.opt_name!r}: {name} adapts its own step size and takes lr as a "
                             "multiplier of it (1.0 is what it is designed for), so lr0='auto' does not apply; leave "
                             "lr0 unset (its default 1.0) or pass a number")
        scales = sorted({float(g.get("lr_scale", 1.0)) for g in groups})
        if len(scales) > 1:
            keys = [k for k in ("backbone_lr_scale", "layer_decay") if getattr(cfg, k) is not None]
            raise ValueError(f"optimizer={self.opt_name!r}: {name} adapts one step size for all param groups and "
                             f"refuses groups with different LRs, but {' and '.join(keys) or 'the groups'} set "
                             f"LR scales {', '.join(f'{x:g}' for x in scales)}; drop them for {name}")
        if cfg.schedule is not None or self.warmup_bias_lr == 0 or not any(g.get("is_bias") for g in groups):
            return
        if "warmup_bias_lr" in self.explicit:
            raise ValueError(f"optimizer={self.opt_name!r}: {name} adapts one step size for all param groups and "
                             f"refuses groups with different LRs, but warmup_bias_lr={cfg.warmup_bias_lr:g} starts the "
                             "bias groups at their own LR; use warmup_bias_lr=0 (bias groups warm up with the rest)")
        self.warmup_bias_lr = 0.0
        self.bias_note = (f"note — {name} needs one LR across its param groups: warmup_bias_lr=0 (the bias groups "
                          f"warm up with the rest, not from {cfg.warmup_bias_lr:g})")
        self.cfg = cfg.replace(warmup_bias_lr=0.0)  # args.yaml and last.pt record the value used

    def _cast_batch(self, batch: Any) -> Any:
        """Floating-point inputs in the model's floating dtype (float64 numpy data and a float32 model meet here,
        not in a deep torch error); floating targets too when a custom ``loss_fn`` compares them (the built-in task
        losses compute in float32 whatever the dtypes). Integer inputs and class/token targets are never touched."""
        dtype = self.model_dtype
        if isinstance(batch, Mapping):
            keys = list(batch)
            x_key = next((k for k in _INPUT_KEYS if k in batch), None)
            y_key = next((k for k in _TARGET_KEYS if k in batch), None)
            if x_key is None:
                return batch
            out = dict(batch)
            out[x_key] = self._cast_inputs(batch[x_key], dtype)
            if y_key is not None:
                out[y_key] = self._cast_target(batch[y_key], dtype)
            return rebuild_like(batch, {k: out[k] for k in keys})  # an OrderedDict/attribute dict keeps its type
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return rebuild_like(batch, [self._cast_inputs(batch[0], dtype), self._cast_target(batch[1], dtype)])
        return batch

    def _cast_inputs(self, x: Any, dtype: torch.dtype) -> Any:
        if isinstance(x, torch.Tensor):
            if x.is_floating_point() and x.dtype != dtype:
                if not self.cast_said:
                    self.cast_said = True
                    self.log(f"lrkit.train: data — the inputs are {dtype_name(x.dtype)} but the model is "
                             f"{dtype_name(dtype)}; casting floating-point inputs to {dtype_name(dtype)} on the fly "
                             f"(store the data as {dtype_name(dtype)} to skip this)")
                return x.to(dtype)
            return x
        if isinstance(x, Mapping):
            return {k: self._cast_inputs(v, dtype) for k, v in x.items()}
        if isinstance(x, (tuple, list)):  # a named tuple (a PackedSequence too) rebuilt field by field
            return rebuild_like(x, [self._cast_inputs(v, dtype) for v in x])
        return x

    def _cast_target(self, y: Any, dtype: torch.dtype) -> Any:
        """Floating targets in the model's dtype for a user's ``loss_fn`` — but never rounded: into a 16-bit model
        dtype (bfloat16, float16) only where it holds them exactly (0/1 labels, say). Before session 36 a bfloat16
        model's regression targets were cast too (1000 + 0.5 * noise all read 1000.0: the signal gone, the loss and
        RMSE read against the rounded targets); they stay in their own dtype now, said once."""
        if self.user_loss is None or not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dtype == dtype:
            return y
        if torch.finfo(dtype).bits < 32 and torch.finfo(dtype).bits < torch.finfo(y.dtype).bits:
            cast = y.to(dtype)
            if not torch.equal(cast.to(y.dtype), y):
                if not self.target_cast_said:
                    self.target_cast_said = True
                    self.log(f"lrkit.train: data — the targets are {dtype_name(y.dtype)} and the model is "
                             f"{dtype_name(dtype)}, which would round them; loss_fn gets them as "
                             f"{dtype_name(y.dtype)} (a loss that needs one dtype can cast the output: out.float())")
                return y
            return cast
        return y.to(dtype)

    @torch.no_grad()
    def _check_model_runs(self) -> None:
        """One forward pass on a validation batch (eval mode, no grad), so a model that does not fit the data fails
        here with a clear message instead of deep inside the loop."""
        if self.step_fn is not None:  # a step_fn reads its batches itself: only a loader with none is refused here
            try:
                count = len(self.val_loader)
            except TypeError:  # (no length: an IterableDataset)
                return
            if count == 0:
                raise self._no_val_batches()
            return
        batch = next(iter(self.val_loader), None)
        if batch is None:
            raise self._no_val_batches()
        batch = move_to(batch, self.device)
        try:
            x, y = split_batch(batch)
        except ValueError as e:  # the training batches may split fine: say which loader's did not
            raise ValueError(f"the validation loader's first batch: {e}") from None
        if isinstance(batch, Mapping):  # weights or a mask that the validation loss never reads: said once
            self._warn_once(lambda: _warn_dropped_keys(batch))
        was_training = self.model.training
        self.model.eval()
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        try:
            try:
                out = self.model(x)
            except (RuntimeError, IndexError, ValueError, TypeError, AttributeError) as e:
                flat = ""
                per = math.prod(x.shape[1:]) if isinstance(x, torch.Tensor) and x.dim() >= 3 else 0
                m = re.search(r"shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x\d+\)", str(e))
                # images (digits: 1x8x8) straight into nn.Linear(per, ...): torch multiplied the last dim (W) of the
                # raw batch, N*C*H rows of W, by a weight that wants the whole flattened sample
                if per and m and int(m.group(3)) == per and int(m.group(2)) == x.shape[-1] \
                        and int(m.group(1)) == math.prod(x.shape[:-1]):
                    flat = (f" (each sample is a {'x'.join(map(str, x.shape[1:]))} image: a model that starts with "
                            f"nn.Linear({per}, ...) needs nn.Flatten() in front of it, or pass model=cnn)")
                if isinstance(x, (tuple, list)) and isinstance(e, TypeError) and "positional argument" in str(e):
                    # forward(x1, x2) and samples ((x1, x2), y): lrkit calls model(x) with the inputs as one value
                    flat = (f" (the inputs are a {type(x).__name__} of {len(x)}, passed as one argument, model(x); "
                            "for a forward() that takes them one by one pass step_fn=lambda model, batch: "
                            "loss_fn(model(*batch[0]), batch[1]), or have forward() unpack one argument)")
                raise ValueError(
                    f"model {self.model_name} cannot run on the data {self.data.info.name!r} (a batch of inputs "
                    f"{shape}, task {self.data.info.task}): {first_line(e)}{flat}"
                ) from None
            which = "loss_fn" if self.user_loss is not None else f"the default {self.data.info.task} loss"
            raw, out = out, model_outputs(out)  # a Hugging Face ModelOutput: its logits are the outputs
            if not isinstance(out, torch.Tensor):
                if self.user_loss is None:
                    raise ValueError(
                        f"model {self.model_name} returned a {type(out).__name__}, but {which} needs a tensor of "
                        "outputs (or a dict-like output with a 'logits' tensor); return a tensor from forward(), or "
                        "pass loss_fn=/step_fn= to handle it"
                    )
                if self.spec.metric_sums is not None:  # the task's metric reads a tensor of outputs
                    self.log(f"lrkit.train: model {self.model_name} returns a {type(out).__name__}; the validation "
                             f"metric is the validation loss (not {self.spec.metric_name})")
                    self.spec = task_spec(None)
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            told = ""
            if self.user_loss is not None and not isinstance(raw, torch.Tensor):
                # loss_fn gets the output as forward() returns it (a dict, a ModelOutput, a tuple), never its logits
                keys = f" with keys {list(raw)[:6]}" if isinstance(raw, Mapping) else ""
                pick = ("out['logits']" if isinstance(raw, Mapping) and "logits" in raw
                        else "out[0]" if isinstance(raw, (tuple, list)) else "the output's tensor")
                got = f"a {type(raw).__name__}{keys}" + (f", logits {got}" if out is not raw else "")
                told = (f" (loss_fn gets the model's output as forward() returns it, a {type(raw).__name__}: read "
                        f"{pick} in it, e.g. loss_fn=lambda out, y: torch.nn.functional.cross_entropy({pick}, y))")
            want = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            mismatch = (f"{which} cannot compare the output of model {self.model_name} ({got}) with the targets "
                        f"({want}) of {self.data.info.name!r}")
            if self.user_loss is None:
                self._check_class_count(out, y, mismatch)
                self._refuse_layout(out, y, mismatch)

            def loss() -> Any:
                try:
                    return self.loss_fn(raw, y)  # a user's loss_fn gets the model's own output
                except (RuntimeError, IndexError, ValueError, TypeError, AttributeError) as e:
                    raise ValueError(f"{mismatch}: {first_line(e)}{told}") from None

            # a user loss that only broadcasts the outputs against the targets is an error; its other warnings reach
            # the user as they would have
            value = refuse_broadcast(loss, self.user_loss,
                                     where=f" from model {self.model_name} on {self.data.info.name!r}")
            # validation reads float(loss) (a float from loss.item() is the training step's to refuse, in its words)
            if (isinstance(value, torch.Tensor) and value.numel() != 1) or isinstance(value, (tuple, list, Mapping)):
                raise self._bad_val_loss(value)
        finally:
            self.model.train(was_training)

    def _no_val_batches(self) -> ValueError:
        """The error for a validation loader that yields no batches (found before training, not after its first
        epoch)."""
        loader = self.val_loader
        hint = ""
        if getattr(loader, "drop_last", False):
            hint = (f" (drop_last=True with batch_size={getattr(loader, 'batch_size', None)} and "
                    f"{self.data.info.n_val} validation samples drops every batch; use drop_last=False on the "
                    "validation loader)")
        return ValueError(f"the validation split of {self.data.info.name!r} yields no batches{hint}: lrkit.train "
                          "scores every epoch on it; give it at least one batch")

    def _bad_val_loss(self, loss: Any) -> ValueError:
        """The error for a validation loss that is no scalar (a ``loss_fn``/``step_fn`` that returns other values,
        or per-sample losses, under ``torch.no_grad()``): before, ``float(loss)``'s own words named nothing."""
        fn = "step_fn" if self.step_fn is not None and self.step_fn is not own_loss else "loss_fn"
        return ValueError(f"the validation loss must be a scalar: on a validation batch (eval mode, torch.no_grad()) "
                          f"{fn} returned {_bad_loss_hint(loss)}")

    def _warn_once(self, fn: Callable[[], Any]) -> Any:
        """``fn()``, each of its warnings given unless this run has given the same one already (the checks of a first
        batch run on the first validation batch, in ``lr0="auto"``'s range test and at the first training step, and
        a dict batch's unused weights are one thing to say). The user's filters apply as they would have."""
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                return fn()
        finally:
            new = []
            for w in caught:
                key = (w.category, str(w.message))
                if key not in self.said_warnings:
                    self.said_warnings.add(key)
                    new.append(w)
            _emit(new)

    def _refuse_layout(self, out: Any, y: Any, mismatch: str) -> None:
        """The regression task's loss reshapes an output to its target's shape when both hold as many values: right
        for ``(N, 1)`` against ``(N,)`` and for a flat ``(N, K)`` output against ``(N, ...)`` targets, but targets in
        another layout — channels last ``(N, H, W, C)`` against a conv's ``(N, C, H, W)``, ``(T, N)`` against
        ``(N, T)`` — were compared value by value with another sample's or position's (before session 37, without a
        word; ``lrkit.find_lr``'s default loss refused them)."""
        if (self.spec.task != "regression" or not isinstance(out, torch.Tensor) or not isinstance(y, torch.Tensor)
                or out.shape == y.shape or out.numel() != y.numel()
                or _squeezed(out.shape) == _squeezed(y.shape)):
            return
        if out.ndim and y.ndim and out.shape[0] == y.shape[0] and (out.ndim <= 2 or y.ndim <= 2):
            return  # one side flat per sample: read in row-major order, as a head of K outputs is
        raise ValueError(f"{mismatch}: {_layout_mismatch(out, y)}")

    def _check_class_count(self, out: Any, y: Any, mismatch: str) -> None:
        """The default loss's class targets fit the model's class scores: every class of the data has a score, and no
        target is negative (but cross-entropy's ignored ``-100``) — read over all of train and val when they are
        tensors (:func:`tensor_target_range`), with ``num_outputs`` when the data says, and over this batch.
        On CUDA a target out of range is a device-side assert that leaves the process unable to use the GPU again,
        so this is checked here, once, before the first loss."""
        if isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor) and y.is_floating_point():
            y = class_targets(out, y)  # class indices stored as floats are checked as the loss reads them: int64
        if (self.data.info.task == "classification" and isinstance(out, torch.Tensor) and out.ndim == 1
                and isinstance(y, torch.Tensor) and y.ndim == 1 and y.shape == out.shape and not y.is_complex()):
            # cross-entropy reads a (B,) output as ONE sample's B class scores: torch's words ("Expected floating
            # point type for target with class probabilities") named neither the model nor the fix
            classes = max(int(y.max()) + 1 if y.numel() else 2, self.data.info.num_outputs or 0, 2)
            raise ValueError(
                f"{mismatch}: the model gives one score per sample (output {tuple(out.shape)}), but the default "
                "classification loss, cross-entropy, needs one score per class, (batch, classes); make the model's "
                f"last layer output {classes}, or for one logit per sample pass "
                "loss_fn=torch.nn.BCEWithLogitsLoss() with float 0/1 targets"
            )
        if (not isinstance(out, torch.Tensor) or not isinstance(y, torch.Tensor) or out.ndim < 2 or not y.numel()
                or y.is_floating_point() or y.is_complex() or self.data.info.task not in ("classification", "lm")):
            return
        tokens = self.data.info.task == "lm"
        scores = int(out.shape[-1] if _token_logits(out, y, tokens) else out.shape[1])
        kept = y[y != -100]
        top = int(kept.max()) if kept.numel() else -1
        low = int(kept.min()) if kept.numel() else 0
        known = self.data.info.num_outputs or 0
        span = tensor_target_range(self.data)  # all of train and val when they are tensors (cheap to read)
        if span is not None:
            low, known = min(low, span[0]), max(known, span[1] + 1)
        classes = max(top + 1, known)
        what = "token ids (the vocabulary)" if tokens else "classes"
        if low < 0:
            raise ValueError(f"{mismatch}: the targets hold {low}, but class targets must be 0 .. number of "
                             "classes - 1 (or -100 for an ignored position); map the labels to 0, 1, 2, ...")
        if classes > scores:
            raise ValueError(
                f"{mismatch}: the model gives {scores} scores per {'position' if tokens else 'sample'}, but the data "
                f"has {classes} {what} (targets 0 .. {classes - 1}); make the model's last layer output {classes}"
            )

    # ---------------------------------------------------------------------------------------------- fit
    def fit(self) -> TrainResults:
        #: when this call began: TrainResults.seconds counts setup, data loading and lr0="auto"'s search too
        self.t_start = time.perf_counter()
        if self.cfg.resume:
            self._merge_resume()
        self._check_monitor_options()  # a typo in monitor= fails here, before data, model and lr0="auto" run
        self._build()
        cfg = self.cfg
        ck = self.ckpt
        # the schedule is planned once, for the run's first length; a resume with other epochs re-plans it
        plan_epochs = int(ck["schedule_epochs"]) if ck is not None else cfg.epochs
        plan_total = int(ck["schedule_total_steps"]) if ck is not None else self.total_steps
        self.held_lines = [] if ck is None else None
        try:
            self._plan_schedule(plan_epochs, plan_total, notes=ck is None)
            self._check_lr0_given()
        except BaseException:  # the plan failed: its notes still say what was not used
            for line in self._stop_holding():
                self.log(line)
            raise
        notes = self._stop_holding()
        self.plan_epochs, self.plan_total = plan_epochs, plan_total
        if ck is not None:
            self._restore_plan_from_checkpoint(ck)
        else:
            self._log_plan()
            for line in notes:  # (a resume holds none: it re-plans the same shape silently)
                self.log(line)
            if cfg.lr0 == "auto":
                self._choose_lr0()
            elif "auto_search" in self.explicit:
                self.log(f"lrkit.train: note — auto_search={cfg.auto_search} changes nothing: it is how lr0='auto' "
                         f"chooses the LR, and lr0 is {self.lr0:g} ({self.lr0_source})")
        self.scheduler = self._scheduler(self.optimizer, self.lr0)
        #: the re-plans of a resumed run's schedule (another epochs=, this resume's or an earlier one's), which a
        #: monitor rollback to a snapshot taken before them must not undo (see _keep_plan); [] for a new run
        self.replans: list[dict[str, Any]] = []
        self.step_lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        amp_ctx, use_scaler = autocast_context(cfg.amp, self.device)
        self.autocast = amp_ctx
        self.scaler = torch.amp.GradScaler(self.device.type) if use_scaler else None
        self.monitor = self._make_monitor()
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.best_metric = math.nan
        self.best_epoch = 0
        self.bad_epochs = 0
        self.elapsed = 0.0
        if ck is not None and self.ckpt_path is not None:
            self._load_checkpoint_state(ck)
            self.run_dir = self.ckpt_path.parent
            # a resume may change keys (epochs, patience, ...): args.yaml says so once the first epoch is in
            self.rewrite_args = True
        else:
            base = Path(cfg.project) / (cfg.name or "train")
            # what this run's own mkdir made — the run directory, and the folders above it (project=a/b/c,
            # name=sweep/lr3) — is what a failed start removes again: never a folder that was there, nor one another
            # run made first (exist_ok with the same name, started at the same moment)
            self.run_dir, made = _run.claim_run_dir(cfg.project, cfg.name, exist_ok=cfg.exist_ok)
            self.created_dir = self.run_dir in made
            self.created_parents = [f for f in made if f != self.run_dir]
            if self.run_dir != base and _run.killed_start(base):
                self.log(f"lrkit.train: note — {base} holds a run that was stopped before its first epoch was saved "
                         f"(args.yaml, no last.pt; or it is still in its first epoch); this run is in {self.run_dir} "
                         f"(to start over in {base} instead, pass exist_ok=True: its args.yaml moves to "
                         "previous-<time>/)")
            # exist_ok over an older run: its files stay as they are until this run has a first epoch of its own,
            # then move to previous-<time>/ — a failed start changes nothing, and no folder mixes two runs
            self.previous_files = _run.previous_run_files(self.run_dir)
            if self.previous_files:
                self.log(f"lrkit.train: exist_ok — {self.run_dir} holds an earlier run "
                         f"({', '.join(self.previous_files)}); its files move to previous-<time>/ in that folder once "
                         "this run finishes its first epoch")
            else:
                self._write_args()
        return self._loop()

    def _claim_run_dir(self) -> None:
        """Move an earlier run's files aside (exist_ok=True), then write this run's args.yaml; on a resume, rewrite
        args.yaml with the keys as now used."""
        if self.rewrite_args:
            self.rewrite_args = False
            self._write_args()
        if self.previous_files:
            aside = _run.move_previous_run(self.run_dir, self.previous_files)
            self.log(f"lrkit.train: exist_ok — moved the earlier run's {', '.join(self.previous_files)} to {aside}")
            self.previous_files = []
            self._write_args()

    def _log_plan(self) -> None:
        info = self.data.info
        task = info.task or ("the model's own loss" if self.step_fn is own_loss else "custom step_fn")
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        counts = f"{total:,} parameters" + (f", {trainable:,} trainable" if trainable != total else "")
        self.log(f"lrkit.train: {info.name} ({task}, {info.sizes()}), model {self.model_name} ({counts}) on "
                 f"{self.device}{_amp_text(self.cfg.amp, self.device)}")
        self.log(
            f"lrkit.train: {self.cfg.epochs} epoch{'s' * (self.cfg.epochs != 1)} x {self.steps_per_epoch} optimizer "
            f"step{'s' * (self.steps_per_epoch != 1)} (batch {self.batch}, "
            f"accumulate {self.accumulate} -> nominal batch {self.batch * self.accumulate}, weight_decay "
            f"{self.weight_decay:.3g})"
        )
        if self.cfg.freeze is not None:
            self.log(f"lrkit.train: {self._freeze_summary()}")
        if self.cfg.backbone_lr_scale is not None and not any(n.startswith("backbone/") for n in self.group_names):
            self.log(f"lrkit.train: note — backbone_lr_scale={self.cfg.backbone_lr_scale:g} changes nothing: every "
                     "backbone parameter is frozen, so only the head trains (at lr0)")
        self.log(f"lrkit.train: {self.opt_name} — {self.opt_reason}")
        if self.opt_class is not None:
            for line in self._class_notes():
                self.log(f"lrkit.train: {line}")
        elif self.bias_note is not None:  # (an Optimizer class's notes carry it)
            self.log(f"lrkit.train: {self.bias_note}")
        if self.lr0_source == "user" and self.lr0_from_spec:
            self.log(f"lrkit.train: lr0={self.lr0:g} (the peak of schedule={_short(self.cfg.schedule)})")
        elif self.lr0_source == "user":
            self.log(f"lrkit.train: lr0={self.lr0:g} (yours, honoured as given)")
        elif self.lr0_source == "default" and self.opt_class is not None:
            self.log(f"lrkit.train: lr0={self.lr0:g} ({self.opt_class.__name__}'s default lr, from its signature; pass "
                     "lr0= to set it, or lr0=auto)")
        elif self.lr0_source == "default":
            self.log(f"lrkit.train: lr0={self.lr0:g} ({self.opt_name}'s default; pass lr0= to set it, or lr0=auto)")
        loss = self.user_loss
        if (info.task == "regression" and "task" not in self.explicit
                and (isinstance(loss, _CLASS_LOSSES) or loss in _CLASS_LOSS_FNS)):
            name = type(loss).__name__ if isinstance(loss, torch.nn.Module) else getattr(loss, "__name__", "loss_fn")
            self.log(f"lrkit.train: note — the targets are floats, so the task is read as regression (metric rmse, "
                     f"of the model's raw outputs against the targets), but loss_fn={name} is a classification "
                     "loss: pass task='classification' to score accuracy (per label for multi-hot targets)")

    def _class_notes(self) -> list[str]:
        """What an Optimizer class got from Ultralytics' keys (where ``momentum`` went, or that it went nowhere), and
        how a schedule-free optimizer's train/eval modes are used."""
        cfg, cls = self.cfg, self.opt_class
        if cls is None:
            return []
        name = cls.__name__
        warm = f"; warmup_momentum={cfg.warmup_momentum:g} warms it up" if cfg.schedule is None else ""
        target = momentum_target(cls)
        group = self.optimizer.param_groups[0]
        if target == "momentum" and "momentum" in group:
            notes = [f"{name} built with momentum={cfg.momentum:g}{warm}"]
        elif target == "betas[0]" and "betas" in group:
            betas = ", ".join(f"{float(b):g}" for b in group["betas"])
            notes = [f"{name} built with betas=({betas}): momentum={cfg.momentum:g} is its beta1, its own default "
                     f"beta2 kept{warm}"]
        else:
            unused = (f" and warmup_momentum={cfg.warmup_momentum:g} does nothing" if cfg.schedule is None else "")
            notes = [f"note — {name} takes neither momentum nor betas: momentum={cfg.momentum:g} is not used{unused}"]
        if cfg.weight_decay and not accepts_keyword(cls, "weight_decay"):  # (its groups carry it, and it reads none)
            notes.append(f"note — {name} takes no weight_decay: weight_decay={cfg.weight_decay:g} is not used")
        if self.bias_note is not None:
            notes.append(self.bias_note)
        if self.opt_modes:
            notes.append(
                f"{name} has train/eval modes (schedule-free): steps run after optimizer.train(), validation, best.pt "
                "and last.pt use the eval-mode weights (optimizer.eval())"
                + ("; it is designed for a flat LR after warmup: lrf=1 keeps lr0" if cfg.schedule is None
                   and cfg.lrf < 1 else "")
            )
        return notes

    def _freeze_summary(self) -> str:
        """One line on what ``freeze=`` froze: how many parameter tensors and parameters, in which top-level layers."""
        if not self.frozen:
            return f"freeze={self.cfg.freeze!r} froze nothing (every parameter trains)"
        layers = list(dict.fromkeys(name.split(".")[0] for name, _ in self.frozen))
        total = sum(n for _, n in self.frozen)
        return (f"freeze={self.cfg.freeze!r} froze {len(self.frozen)} parameter tensor"
                f"{'s' if len(self.frozen) != 1 else ''} ({total:,} parameters) in "
                f"{'layer' if len(layers) == 1 else 'layers'} {', '.join(layers)}; they keep their weights"
                + (f", and {len(self.frozen_norms)} normalisation layer{'s' if len(self.frozen_norms) != 1 else ''} "
                   "among them their running statistics (kept in eval mode)" if self.frozen_norms else "")
                + self._freeze_index_note())

    def _freeze_index_note(self) -> str:
        """A note for each index in a ``freeze=`` list that points at a layer other than the module named as that
        number: indices count the layers with parameters (``nn.Sequential``'s ReLUs are skipped), so on
        ``Sequential(Linear, BatchNorm, ReLU, Linear, ...)`` index 3 is the module named ``'5'``."""
        freeze = self.cfg.freeze
        if not isinstance(freeze, (list, tuple)):
            return ""
        from lrkit.scaling import layer_names

        names = layer_names(self.model)
        children = dict(self.model.named_children())  # (a parameter-less child, Flatten or ReLU, is no layer)
        notes, wrong = [], []
        for item in freeze:
            if type(item) is not int or not 0 <= item < len(names) or names[item] == str(item):
                continue
            if str(item) in names:
                notes.append(f"index {item} is layer {names[item]!r} (the module named '{item}' is index "
                             f"{names.index(str(item))})")
                wrong.append(str(item))
            elif str(item) in children and next(children[str(item)].parameters(), None) is None:
                notes.append(f"index {item} is layer {names[item]!r} (the module named '{item}', a "
                             f"{type(children[str(item)]).__name__}, has no parameters to freeze)")
        if not notes:
            return ""
        return (f" — note: freeze indices count the layers with parameters ({', '.join(names)}): "
                f"{'; '.join(notes)}" + (f"; to freeze modules by name pass their names as strings, e.g. "
                                         f"freeze={wrong!r} in Python" if wrong else ""))

    # ---------------------------------------------------------------------------------------------- schedule
    def _plan_schedule(self, epochs: int, total_steps: int, *, notes: bool = True) -> None:
        """The run's Schedule shape over ``total_steps`` optimizer steps (its peak is set by :meth:`_scheduler`).

        ``schedule=`` (any lrkit.schedules spec) replaces Ultralytics' lr0/lrf/cos_lr shape. A spec that names its
        own peak LR (``lr0=``/``max_lr=``) fixes lr0; an explicit ``lr0=`` that disagrees, or ``lr0='auto'``, is an
        error rather than a silent override. A family's *default* peak (``"ultralytics"``: 0.01) does not fix it.
        """
        from lrkit import schedules

        cfg = self.cfg
        spe = total_steps / epochs
        if cfg.schedule is None:
            warmup = cfg.warmup_epochs
            whole_run = notes and warmup == epochs  # noted once the schedule is built, with the peak it reaches
            if warmup > epochs:
                warmup = float(epochs)
                if notes:  # said when the run started; a resume re-plans the same shape silently
                    self.log(f"lrkit.train: note — warmup_epochs={cfg.warmup_epochs:g} is longer than the run; the "
                             f"warmup spans the whole run ({_epochs(epochs)}; set warmup_epochs lower for short runs)")
            if self.has_momentum:
                self.schedule = schedules.ultralytics(
                    lr0=self.lr0, lrf=cfg.lrf, cos_lr=cfg.cos_lr, epochs=epochs, steps_per_epoch=spe,
                    warmup_epochs=warmup, warmup_bias_lr=self.warmup_bias_lr,
                    warmup_momentum=cfg.warmup_momentum, momentum=cfg.momentum,
                )
            else:  # an optimizer class without momentum or betas (Adagrad): the same LR shape, no momentum to set
                self.schedule = schedules.from_spec(
                    {"name": "ultralytics", "lr0": self.lr0, "lrf": cfg.lrf, "cos_lr": cfg.cos_lr,
                     "warmup_epochs": warmup, "warmup_bias_lr": self.warmup_bias_lr, "warmup_momentum": None,
                     "momentum": None},
                    epochs=epochs, steps_per_epoch=spe,
                )
            if notes and total_steps <= 4 and max(self.schedule(s) for s in range(total_steps)) == 0:
                # the warmup starts at LR 0: a run of one optimizer step (epochs=1 on at most nbs samples) is that
                # step alone, and ended with the weights it started with while the log said only "warmup"
                trains = (f"only the bias groups train (from warmup_bias_lr={self.warmup_bias_lr:g}), never the "
                          "weights" if self.warmup_bias_lr else "the model does not train")
                self.log(f"lrkit.train: note — every optimizer step of this run ({total_steps}) is at LR 0: the "
                         f"warmup starts from 0, so {trains}; set warmup_epochs=0, or train longer (more epochs, a "
                         "smaller batch or nbs)")
            if whole_run:
                # Ultralytics' warmup ramps toward a line that is already decaying: over the whole run the LR never
                # reaches lr0 (about a quarter of it at most), which "lr0 honoured" alone would hide
                top = max(self.schedule(s) for s in np.unique(np.linspace(0, max(total_steps - 1, 0), 2001).round()))
                lr0 = _lr0_text(cfg.lr0 if cfg.lr0 is not None else self.lr0)  # not given: the optimizer's default
                self.log(f"lrkit.train: note — warmup_epochs={cfg.warmup_epochs:g} spans the whole run "
                         f"({_epochs(epochs)}): the LR rises all run long and never reaches lr0={lr0} "
                         f"(it peaks at {top:.0%} of it); set warmup_epochs lower for short runs")
            return
        unused = [k for k in _SHAPE_KEYS if k in self.explicit]
        if unused and notes:  # given, but the spec owns the shape: say so rather than ignore them silently
            given = ", ".join(f"{k}={getattr(cfg, k)!r}" for k in unused)
            self.log(f"lrkit.train: note — schedule={_short(cfg.schedule)} sets the whole LR shape, so {given} "
                     "(given) are not used; write them into the spec instead")
        if isinstance(cfg.schedule, schedules.Schedule):
            sched = cfg.schedule
            if sched.total_steps is not None and sched.total_steps != total_steps:
                self.log(f"lrkit.train: note — your Schedule spans {sched.total_steps} steps, the run "
                         f"{total_steps}; it holds its final value after its end")
        else:
            spec = self._fit_spec_warmup(cfg.schedule, epochs, spe, total_steps, notes=notes)
            spec = _free_default_peak(self._fit_spec_to_optimizer(spec))
            try:
                sched = schedules.from_spec(spec, epochs=epochs, steps_per_epoch=spe)
            except ValueError as e:
                if "warmup" not in str(e) or not ("longer than" in str(e) or "leave nothing" in str(e)):
                    raise
                raise ValueError(
                    f"schedule={_short(cfg.schedule)}: {e}; the run has {total_steps} optimizer steps ({epochs} epochs "
                    f"x {spe:g}): set warmup_epochs/warmup_steps in the spec to fit it"
                ) from None
        if notes and "momentum" in self.explicit and self.has_momentum and sched.couples_momentum:
            # the spec sets momentum every step (ultralytics' warmup_momentum -> its momentum, onecycle's cycle): the
            # momentum given beside it is what the optimizer is built with, then overwritten at the first step
            self.log(f"lrkit.train: note — schedule={_short(cfg.schedule)} schedules momentum itself, so "
                     f"momentum={cfg.momentum!r} (given) is not used; write it into the spec instead")
        peak = sched.peak_lr
        if peak is not None:
            if cfg.lr0 == "auto":
                raise ValueError(
                    f"lr0='auto' chooses the peak LR, but schedule={_short(cfg.schedule)} sets it ({peak:g}); drop "
                    "the peak (lr0=/max_lr=) from the schedule spec to let lr0='auto' choose it"
                )
            if isinstance(cfg.lr0, float) and not math.isclose(cfg.lr0, peak, rel_tol=1e-12):
                raise ValueError(
                    f"lr0={cfg.lr0:g} disagrees with the peak LR {peak:g} in schedule={_short(cfg.schedule)}; give "
                    "it in one place"
                )
            self.lr0, self.lr0_source = float(peak), "user"
            self.lr0_from_spec = "lr0" not in self.explicit  # logged as the spec's, not as "yours"
        self.schedule = sched

    def _fit_spec_warmup(self, spec: Any, epochs: int, spe: float, total_steps: int, *, notes: bool) -> Any:
        """A ``schedule=`` spec whose blended warmup (Ultralytics': ``warmup_epochs=3`` by default) is longer than
        the run gets the warmup capped at the run length, with a note, as the default schedule does.

        Warmups that come *before* the main schedule (``warmup_prefix``, e.g. ``wsd``/``onecycle``) are left as given:
        capping those would leave nothing of the main schedule, so they fail with the spec's own error.
        """
        from lrkit.schedules import parse_spec
        from lrkit.schedules.registry import lookup

        try:
            name, params = parse_spec(spec)
            info = lookup(name)
        except ValueError:
            return spec  # from_spec names the problem
        if params.get("warmup_prefix", info.warmup_prefix) is not False:
            return spec
        if params.get("warmup_steps") is not None:
            key, value = "warmup_steps", params["warmup_steps"]
        elif params.get("warmup_epochs") is not None:
            key, value = "warmup_epochs", params["warmup_epochs"]
        elif info.defaults.get("warmup_epochs") is not None:
            key, value = "warmup_epochs", info.defaults["warmup_epochs"]
        else:
            return spec
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return spec  # from_spec names the bad value
        steps = value if key == "warmup_steps" else round(value * spe)
        if steps <= total_steps:
            return spec
        params[key] = total_steps if key == "warmup_steps" else float(epochs)
        if notes:
            span = f"{total_steps} optimizer steps" if key == "warmup_steps" else _epochs(epochs)
            self.log(f"lrkit.train: note — schedule={_short(spec)}: {key}={value:g} is longer than the run; the warmup "
                     f"spans the whole run ({span}; set {key} lower for short runs)")
        return {"name": name, **params}

    def _fit_spec_to_optimizer(self, spec: Any) -> Any:
        """A ``schedule=`` spec fitted to the optimizer as the default schedule is: for an optimizer without momentum
        or betas (Adagrad), the momentum its family schedules *by default* (``ultralytics``' warmup_momentum,
        ``onecycle``'s cycle_momentum) is off; for one that needs one LR across its groups (Prodigy), the family's
        default bias warmup is off (the bias groups warm up with the rest), and so it is for ``optimizer="auto"``, as in
        the default schedule. Momentum or a bias warmup written in the spec is the user's: the first fails in the
        scheduler with its own message, the second here (auto keeps it)."""
        from lrkit.schedules import parse_spec
        from lrkit.schedules.registry import lookup

        bias_groups = any(g.get("is_bias") for g in self.optimizer.param_groups)
        bias = self.one_lr and bias_groups
        # optimizer=auto: a bias warmup the family only defaults (ultralytics' 0.1) is off, as in the default schedule
        auto_bias = self.cfg.optimizer == "auto" and bias_groups
        if self.has_momentum and not bias and not auto_bias:
            return spec
        try:
            name, params = parse_spec(spec)
            info = lookup(name)
        except ValueError:
            return spec  # from_spec names the problem
        changed: dict[str, Any] = {}
        momentum_keys = ("warmup_momentum", "momentum", "cycle_momentum", "base_momentum", "max_momentum")
        if not self.has_momentum and not any(k in params for k in momentum_keys):
            for key, off in (("warmup_momentum", None), ("momentum", None), ("cycle_momentum", False)):
                if key not in params and info.defaults.get(key):
                    changed[key] = off
        value = params.get("warmup_bias_lr", info.defaults.get("warmup_bias_lr"))
        if bias and value:
            cls = self.opt_class.__name__ if self.opt_class is not None else self.opt_name
            if "warmup_bias_lr" in params:
                raise ValueError(f"optimizer={self.opt_name!r}: {cls} adapts one step size for all param groups and "
                                 f"refuses groups with different LRs, but warmup_bias_lr={value:g} in "
                                 f"schedule={_short(self.cfg.schedule)} starts the bias groups at their own LR; use "
                                 "warmup_bias_lr=0 (bias groups warm up with the rest)")
            changed["warmup_bias_lr"] = None
            self.bias_note = (f"note — {cls} needs one LR across its param groups: warmup_bias_lr=0 in "
                              f"schedule={_short(self.cfg.schedule)} (the bias groups warm up with the rest, not "
                              f"from {value:g})")
        elif auto_bias and value and "warmup_bias_lr" not in params:
            changed["warmup_bias_lr"] = None
            self.bias_note = (f"note — optimizer=auto: warmup_bias_lr=0 in schedule={_short(self.cfg.schedule)} (the "
                              f"bias groups warm up with the rest, not from {value:g}), as Ultralytics' optimizer=auto "
                              "does; write warmup_bias_lr= into the spec to set it")
        return {"name": name, **params, **changed} if changed else spec

    def _scheduler(self, optimizer: torch.optim.Optimizer, peak: float, total_steps: int | None = None) -> Any:
        """An LRScheduler over the planned schedule at peak ``peak`` (compressed to ``total_steps`` when given).

        The groups' LRs are set to ``peak * lr_scale`` first, so discriminative ratios hold.
        """
        for group in optimizer.param_groups:
            group["lr"] = peak * float(group.get("lr_scale", 1.0))
            group.pop("initial_lr", None)
        sched = self.schedule.with_peak(peak)
        if total_steps is not None and sched.total_steps is not None and total_steps != sched.total_steps:
            sched = sched.replan(at_step=0, total_steps=total_steps)  # the same shape in fewer steps
        return sched.to_torch(optimizer)

    def _choose_lr0(self) -> None:
        from lrkit.train.auto import (
            _FOR_LRKIT_TRAIN,
            MIN_NUM_STEPS,
            MIN_TRIAL_STEPS,
            _prefix_cost,
            _prefix_range_steps,
            choose_lr0,
            plan_budget,
        )

        def make_scheduler(optimizer: torch.optim.Optimizer, steps: int) -> Any:
            g = max(optimizer.param_groups, key=lambda g: float(g.get("lr_scale", 1.0)))
            peak = float(g["lr"]) / float(g.get("lr_scale", 1.0) or 1.0)
            return self._scheduler(optimizer, peak, steps)

        budget = self.cfg.auto_budget
        prefix = self.cfg.auto_search == "prefix"
        room = 0
        fits = True  # a budget too small for the range test: choose_lr0's error says so, with no plan line before it
        try:  # (choose_lr0 checks the same values again, and names them, below)
            plan = plan_budget(self.total_steps, budget, 3)  # choose_lr0's default num_candidates
            trials = plan.num_trials
            fits = plan.budget_steps >= MIN_NUM_STEPS  # else choose_lr0's "needs at least 10 extra optimizer steps"
            # choose_lr0 plans again with the steps the range test ran: one that stops early (diverged, the usual
            # end) by this step leaves room for two trials of MIN_TRIAL_STEPS after all
            room = min(plan.budget_steps - 2 * MIN_TRIAL_STEPS, plan.finder_steps - 1)
        except ValueError:
            trials = 1
        extra = f"within {budget:.0%} extra compute"
        if trials:
            line = f"range test + confirmation trials {extra}"
        elif room >= 1:
            line = (f"range test, then confirmation trials only if it stops early, by step {room} of its "
                    f"{plan.finder_steps} (diverging, as most do: a run of {self.total_steps} steps leaves no room for "
                    f"them after a full test), {extra}; auto_budget= buys room")
        else:
            line = (f"range test only, {extra} (a run of {self.total_steps} steps leaves no room for confirmation "
                    "trials; auto_budget= buys them)")
        if prefix:  # its cost is fixed: the range test takes a quarter of the run, five trials another 1.25
            fits = _prefix_range_steps(self.total_steps) >= MIN_NUM_STEPS
            line = (f"range test + five prefix trials of the run's own schedule (auto_search=prefix), about "
                    f"{_prefix_cost():.0%} extra compute")
        if fits:
            self.log(f"lrkit.train: lr0=auto — {line}")
        val_loader: Any = self.val_loader
        # the frozen norms stay in eval mode through the range test and the trials (which call model.train()), as
        # through the run: the trials then score the model the run trains
        hooks = [norm.register_forward_pre_hook(_keep_eval, prepend=True) for norm in self.frozen_norms]
        # the range test and the trials keep the modes of a model that is training (a user's frozen BatchNorm); the
        # run's loop calls model.train() every epoch, so they start from the modes the run trains in
        self.model.train()
        if self.opt_modes:
            # schedule-free: the range test and trials step in train mode, and each trial is scored on the weights
            # the run would validate (eval mode), as the run itself is
            self._optimizer_mode(train=True)
            val_loader = _EvalModeLoader(self.val_loader, self._optimizer_mode)
        token = _FOR_LRKIT_TRAIN.set(True)  # choose_lr0's errors in lrkit.train's words (auto_budget, lr0)
        try:
            # its range test's first-step warnings are this run's: the first training step does not give them again
            self.auto = self._warn_once(lambda: choose_lr0(
                self.model, self.optimizer, self.train_loader, val_loader, total_steps=self.total_steps,
                make_scheduler=make_scheduler, loss_fn=self.loss_fn, step_fn=self.step_fn,
                # (search='prefix' has a fixed cost: train() refused an auto_budget given with it, naming both)
                budget=None if prefix else self.cfg.auto_budget,
                search=self.cfg.auto_search, seed=self.cfg.seed, accumulate=self.accumulate, log=self.log,
                finder_kwargs={"amp": self.cfg.amp} if self.cfg.amp else None,  # the range test and trials as the run
                snapshot_device=self.cfg.snapshot_device,
            ))
        finally:
            _FOR_LRKIT_TRAIN.reset(token)
            for hook in hooks:
                hook.remove()
        self.lr0 = float(self.auto.lr)
        # the choice and its reason were logged by choose_lr0 just above ("lr0=auto: chose ..."): not again here
        self.log(f"lrkit.train: lr0={self.lr0:.4g} (auto; {self.auto.extra_steps} extra steps = "
                 f"{self.auto.extra_fraction:.0%} of the run; the reason is results.auto.reason)")

    # ---------------------------------------------------------------------------------------------- monitor
    def _monitor_options(self) -> dict[str, Any] | None:
        """``monitor=`` as ``lrkit.Monitor`` keyword arguments (``None``: ``monitor=False``): an unknown option is
        named with a did-you-mean, and an ``on_event`` that cannot be called is refused (the command line's
        ``monitor={on_event: 3}``: before session 35 it failed at the run's first event, deep inside the monitor)."""
        option = self.cfg.monitor
        if option is False:
            return None
        from lrkit.monitor import Monitor

        kwargs = dict(option) if isinstance(option, dict) else {}
        valid = [k for k in inspect.signature(Monitor).parameters if k not in ("model", "optimizer", "scheduler")]
        for key in kwargs:
            if key not in valid or key == "grad_scaler":
                raise unknown_name_error("monitor option", key, [k for k in valid if k != "grad_scaler"])
        hook = kwargs.get("on_event")
        if hook is not None and not callable(hook):
            raise ValueError(f"monitor option on_event={hook!r:.60} must be callable (a function that receives each "
                             "MonitorEvent) or None; the command line cannot give a function: pass it from Python, "
                             "lrkit.train(..., monitor={'on_event': fn})")
        if "val_patience" not in kwargs and "checks" not in kwargs:  # (a checks= list keeps its own patience)
            kwargs["val_patience"] = TRAIN_VAL_PATIENCE
        if self.cfg.snapshot_device is not None:  # (the config refused a monitor option that disagrees)
            kwargs["snapshot_device"] = self.cfg.snapshot_device
        return kwargs

    def _check_monitor_options(self) -> None:
        """Check every ``monitor=`` value before anything runs — data loading, the model, the plan's log,
        ``lr0="auto"``'s search: a throwaway ``lrkit.Monitor`` over a one-weight probe model refuses what the run's
        own would (before session 35 a typo failed only after all of that)."""
        kwargs = self._monitor_options()
        if kwargs is None:
            return
        from lrkit.monitor import Monitor

        probe = torch.nn.Module()
        probe.weight = torch.nn.Parameter(torch.zeros(1))  # (no random init: the global RNG is left as it was)
        kwargs.pop("on_event", None)  # (checked above; the probe raises no event)
        Monitor(probe, torch.optim.SGD(probe.parameters(), lr=0.1), **kwargs)

    def _make_monitor(self) -> Any:
        """``lrkit.Monitor`` over model, optimizer and scheduler (``monitor=False``: none)."""
        kwargs = self._monitor_options()
        if kwargs is None:
            return None
        from lrkit.monitor import Monitor

        user_hook = kwargs.pop("on_event", None)

        def on_event(event: Any) -> None:
            self.log(f"lrkit.train: monitor — step {event.step}: {event.check} -> {event.action}: {event.reason}")
            if user_hook is not None:
                user_hook(event)

        return Monitor(self.model, self.optimizer, self.scheduler, grad_scaler=self.scaler, on_event=on_event,
                       **kwargs)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The monitor's events as dicts, each with the (fractional) ``epoch`` it happened in for plotting."""
        if self.monitor is None:
            return []
        out = []
        for e in self.monitor.events:
            d = e.to_dict()
            d["epoch"] = (d["step"] + 1) / self.steps_per_epoch
            out.append(d)
        return out

    # ---------------------------------------------------------------------------------------------- checkpoints
    def _restore_plan_from_checkpoint(self, ck: dict[str, Any]) -> None:
        done = int(ck["epoch"])  # checked before anything is said or built
        bad, patience = int(ck.get("bad_epochs", 0)), self.cfg.patience
        if ck.get("stopped_early") and patience and bad >= patience and self.cfg.epochs > done:
            # patience ran out: with the same patience the run would train one more epoch and stop again
            best = int(ck.get("best_epoch", 0))
            raise ValueError(
                f"resume: {self.ckpt_path} stopped early at epoch {done}: no improvement for {bad} epochs since its "
                f"best (epoch {best}) and patience={patience}; pass patience=0 (no early stopping) or patience > "
                f"{bad} to train on, or start a new run"
            )
        monitor = ck.get("monitor")
        if ck.get("stopped_early") and isinstance(monitor, Mapping) and monitor.get("should_stop"):
            # the monitor's stop travels in last.pt (monitor= cannot change on resume): resumed, the run took one
            # more step, stopped again with the old reason and wrote an extra epoch into the finished run's records
            reason = str(monitor.get("stop_reason") or "").strip() or "its stop action"
            raise ValueError(
                f"resume: {self.ckpt_path} was stopped by the monitor at epoch {done}: {reason}. The run is over: its "
                "monitor, which cannot change on resume, would stop it again at its first step; start a new run "
                f"(a lower lr0, or from its best weights with model={self.ckpt_path.parent / 'best.pt'})"
            )
        if ck.get("finished") and self.cfg.epochs <= done:
            early = ", stopped early" if ck.get("stopped_early") else ""
            epochs = "1 epoch" if done == 1 else f"{done} epochs"
            raise ValueError(
                f"resume: {self.ckpt_path} already finished ({epochs}{early}); pass epochs > {done} to train "
                "longer, or start a new run"
            )
        if self.cfg.epochs < done:
            raise ValueError(f"resume: epochs={self.cfg.epochs} is less than the {done} epochs already trained")
        self.lr0 = float(ck["lr0"])
        self.lr0_source = str(ck["lr0_source"])
        if ck.get("auto") is not None:  # the checkpoint holds the plain record (weights_only=True loads it)
            from lrkit.train.auto import AutoLR

            try:  # as a fresh run's results.auto: .reason, .trials, to_dict()
                self.auto = AutoLR.from_dict(ck["auto"])
            except ValueError as e:
                raise ValueError(f"resume: the lr0='auto' record in {self.ckpt_path} is not readable: {e}") from None
        else:
            self.auto = None
        if ck.get("optimizer_name") not in (self.opt_name, self.moved_specs.get(self.opt_name)):
            raise ValueError(
                f"resume: the run used optimizer {ck.get('optimizer_name')!r} but this one resolves to "
                f"{self.opt_name!r} (optimizer='auto' decides by run length); pass optimizer={ck.get('optimizer_name')}"
            )
        self.log(f"lrkit.train: resuming {self.ckpt_path} at epoch {int(ck['epoch']) + 1}/{self.cfg.epochs} "
                 f"(lr0={self.lr0:g}, {self.opt_name})")

    def _load_checkpoint_state(self, ck: dict[str, Any]) -> None:
        done = int(ck["epoch"])
        if ck.get("batch") is not None and int(ck["batch"]) != self.batch:
            # a DataLoader's batch_size changed (batch= itself is checked with the config): with nbs accumulation
            # the steps per epoch may well be the same
            raise ValueError(
                f"resume: the training batches now hold {self.batch} samples, the run's held {ck['batch']}; resume "
                "with the same data and batch (a DataLoader's batch_size counts), or start a new run"
            )
        if int(ck["steps_per_epoch"]) != self.steps_per_epoch:
            raise ValueError(
                f"resume: the data now gives {self.steps_per_epoch} optimizer steps per epoch, the run had "
                f"{ck['steps_per_epoch']}; resume with the same data and batch"
            )
        saved, now = dict(ck.get("data") or {}), self.data.info.to_dict()
        if isinstance(saved.get("classes"), list) and isinstance(now["classes"], list):
            # a run saved before session 26 wrote every label as text ('3' for 3): the same labels
            saved["classes"], now["classes"] = ([str(c) for c in v] for v in (saved["classes"], now["classes"]))
        changed = [k for k in ("task", "input_shape", "num_outputs", "n_train", "n_val", "train_unit", "val_unit",
                                "classes", "vocab")
                   if k in saved and saved[k] != now[k]]
        # a regression run saved before integer targets were sized (num_outputs None: a model of one's own) is unchanged
        regression = now["task"] == "regression" == saved.get("task")
        if "num_outputs" in changed and saved["num_outputs"] is None and regression:
            changed.remove("num_outputs")
        if changed:
            k = changed[0]
            raise ValueError(f"resume: the data changed since the run was saved ({k}: {_brief(saved[k])} then, "
                             f"{_brief(now[k])} now); resume with the same data, or start a new run")
        try:
            # the plain model's names, whether this run or the saved one was compiled/DataParallel (see _saved_module)
            target = _saved_module(self.model)
            target.load_state_dict(_without_wrapper_prefix(ck["model"], target))
            self.optimizer.load_state_dict(ck["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"resume: the model or its parameter groups differ from the run's checkpoint "
                             f"{self.ckpt_path} ({_load_error(e)}); pass the same model, freeze, backbone_lr_scale "
                             "and layer_decay as the run") from None
        self.scheduler.load_state_dict(ck["scheduler"])
        if int(ck["total_steps"]) != self.total_steps:
            planned = self.scheduler.total_steps
            if planned is not None and self.scheduler.current_step >= planned:
                self.log(f"lrkit.train: the schedule had already ended (step {planned}); the extra epochs run at its "
                         "final LR")
            else:
                how = "stretches" if self.total_steps > int(ck["total_steps"]) else "shrinks"
                self.log(f"lrkit.train: epochs changed — re-planning the schedule from {ck['total_steps']} to "
                         f"{self.total_steps} optimizer steps (the rest {how}; the LR does not jump)")
                self.scheduler.replan(total_steps=self.total_steps)
        if hasattr(self.scheduler, "replan"):
            self.replans = [dict(r) for r in self.scheduler.state_dict()["replans"]]
        if self.scaler is not None and ck.get("scaler") is not None:
            self.scaler.load_state_dict(ck["scaler"])
        if self.monitor is not None and ck.get("monitor") is not None:
            self.monitor.load_state_dict(ck["monitor"])
        self.history = [dict(r) for r in ck["history"]]
        if self._column_weights is not None and not ck.get("rmse_per_column") and done > 0:
            self.log(_former_rmse_note(done))
        self.start_epoch = done
        self.best_metric = float(ck["best_metric"])
        self.best_epoch = int(ck["best_epoch"])
        self.bad_epochs = int(ck["bad_epochs"])
        self.elapsed = float(ck.get("elapsed", 0.0))
        self.step_lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        # a persistent_workers loader draws its workers' base seed when it makes its first iterator, which it then
        # keeps: the uninterrupted run drew it at its first epoch; made here, before the RNGs are put back, this
        # process's next epoch draws only the shuffle's seed, as that run's did (the workers' own RNGs, which a
        # dataset's random augmentations read, restart: they live in the worker processes)
        for dl in _persistent_loaders(self.train_loader):
            if getattr(dl, "_iterator", None) is None:
                iter(dl)
        gens, saved = _loader_generators(self.train_loader), ck.get("loader_generators")
        if isinstance(saved, list) and len(saved) == len(gens):
            # every generator the loader and its samplers shuffle with (a WeightedRandomSampler(generator=g), a
            # batch_sampler over RandomSampler(ds, generator=g)): before session 27 only the loader's own was saved
            for g, state in zip(gens, saved):
                g.set_state(state)
        else:  # a checkpoint from before session 27: the loader's own generator only
            gen = getattr(self.train_loader, "generator", None)
            if isinstance(gen, torch.Generator) and ck.get("loader_generator") is not None:
                gen.set_state(ck["loader_generator"])
        _run.set_rng_state(ck["rng"])

    def _state(self, epoch: int, *, finished: bool, stopped_early: bool) -> dict[str, Any]:
        gen = getattr(self.train_loader, "generator", None)
        return {
            "format": _run.CHECKPOINT_FORMAT,
            "epoch": epoch,
            "step": epoch * self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "batch": self.batch,  # a DataLoader's batch_size (not cfg.batch): checked on resume
            "total_steps": self.total_steps,
            "schedule_epochs": self.plan_epochs,
            "schedule_total_steps": self.plan_total,
            "finished": finished,
            "stopped_early": stopped_early,
            "model": _saved_module(self.model).state_dict(),  # no "_orig_mod."/"module." for a wrapped model
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            # with the healthy snapshot, so a rollback after a resume goes where it would have gone
            # (its tensors by reference: the checkpoint is written before the next step changes them)
            "monitor": self.monitor._checkpoint_state() if self.monitor is not None else None,
            "rng": _run.get_rng_state(),
            "loader_generator": gen.get_state() if isinstance(gen, torch.Generator) else None,
            # every generator the train loader's order draws from, its samplers' too (see _load)
            "loader_generators": [g.get_state() for g in _loader_generators(self.train_loader)],
            # val_rmse of a target of several columns is in each column's units (see _column_weights; _load)
            "rmse_per_column": True,
            "config": self.cfg.to_dict(),
            "cwd": str(Path.cwd()),  # where a relative data= path was read from (a resume may start elsewhere)
            "data": self.data.info.to_dict(),
            # the train split's standardisation, class labels, vocabulary: what raw inputs need (load_run)
            "preprocess": self.data.info.preprocess_state(),
            "history": [dict(r) for r in self.history],
            "events": _run._plain(self.events),
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "elapsed": self.elapsed,
            "lr0": self.lr0,
            "lr0_source": self.lr0_source,
            "auto": _run._plain(self.auto) if self.auto is not None else None,
            "optimizer_name": self.opt_name,
            "custom_loss": self._custom_loss(),
            # how the classifier's scores were read ("logit"/"probability": one score per sample, class 1 above
            # 0/0.5; "multi_label"/"multi_label_probability": per label, 1 above 0/0.5; None: argmax), so a
            # finished run can predict as it was scored
            "outputs": {"scores": self.scores_kind},
            "model_spec": self.model_spec,
        }

    def _write_args(self) -> None:
        args = self.cfg.to_dict()
        args["resolved"] = {
            "task": self.data.info.task, "model": self.model_name, "optimizer": self.opt_name,
            "optimizer_reason": self.opt_reason, "lr0": self.lr0, "lr0_source": self.lr0_source,
            "accumulate": self.accumulate, "weight_decay": self.weight_decay, "batch": self.batch,
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps, "device": str(self.device),
            "metric": self.spec.metric_name, "data": self.data.info.to_dict(),
            "run_dir": str(self.run_dir),  # the folder really used (name=None -> train, train2, ...)
        }
        _run.write_args_yaml(self.run_dir / "args.yaml", args)

    def _write_records(self) -> None:
        record = {
            "lr0": {"value": self.lr0, "source": self.lr0_source, "auto": self.auto},
            "optimizer": {"name": self.opt_name, "reason": self.opt_reason},
            "events": self.events,
        }
        _run.write_events(self.run_dir / "events.json", record)
        if self.cfg.plots and self.history:
            from lrkit.plots.results import plot_results

            plot_results(self.run_dir / "results.csv", self.run_dir / "results.png", events=self.events,
                         _run_file=True)

    # ---------------------------------------------------------------------------------------------- loop
    def _loop(self) -> TrainResults:
        cfg = self.cfg
        stopped_early, stop_reason = False, ""
        completed = self.start_epoch
        records_written = False
        try:
            if self.progress is not None:
                self.progress(advance=self.start_epoch * self.steps_per_epoch, total=self.total_steps,
                              info="", event="start", run_dir=str(self.run_dir))
            for epoch in range(self.start_epoch, cfg.epochs):
                t0 = time.perf_counter()
                train_loss, grad_norms, stop_now = self._train_epoch(epoch)
                val_loss, metric = self._validate()
                improved = self.spec.better(metric, self.best_metric) or self.best_epoch == 0
                validated = None  # best.pt holds the weights that scored the metric, whatever the monitor does next
                if self.monitor is not None and not stop_now:
                    if improved:
                        validated = {k: v.detach().clone() for k, v in _saved_module(self.model).state_dict().items()}
                    # a validation loss that rose clearly above its best: back to the best weights, lower LR
                    stop_now = self.monitor.after_validation(val_loss)
                if getattr(self.scheduler.schedule, "stateful", False):
                    self.scheduler.observe(val_loss)  # reduce-on-plateau learns from the validation loss
                seconds = time.perf_counter() - t0
                self.elapsed += seconds
                row = self._row(epoch + 1, train_loss, val_loss, metric, grad_norms, seconds)
                self.history.append(row)
                if improved:
                    self.best_metric, self.best_epoch, self.bad_epochs = metric, epoch + 1, 0
                else:
                    self.bad_epochs += 1
                if stop_now:
                    stopped_early = True
                    stop_reason = f"the monitor stopped the run: {self.monitor.stop_reason}"
                elif cfg.patience and self.bad_epochs >= cfg.patience:
                    stopped_early = True
                    stop_reason = (f"no improvement in val {self.spec.metric_name} for {cfg.patience} epochs "
                                   f"(best {self.best_metric:.5g} at epoch {self.best_epoch})")
                finished = stopped_early or epoch + 1 == cfg.epochs
                self._claim_run_dir()
                # last.pt is the commit point, written after every record it vouches for: a run killed at any
                # moment resumes from a last.pt whose results.csv (and, once finished, events.json and results.png)
                # are complete; best.pt comes after it, and a resume rewrites a best.pt the kill left stale
                _run.write_results_csv(self.run_dir / "results.csv", self.history)
                if finished:
                    self._write_records()
                    records_written = True
                state = self._state(epoch + 1, finished=finished, stopped_early=stopped_early)
                if validated is not None and not _same_tensors(validated, state["model"]):
                    state["best_model"] = validated  # the monitor restored other weights (val_rising) after scoring
                _run.save_checkpoint(self.run_dir / "last.pt", state)
                if improved:
                    best = {k: v for k, v in state.items() if k not in _NOT_IN_BEST}
                    if validated is not None:  # the monitor may have restored other weights (val_rising)
                        best["model"] = validated
                    _run.save_checkpoint(self.run_dir / "best.pt", best)
                completed = epoch + 1
                self._epoch_log(row, improved)
                if self.progress is not None:
                    self.progress(advance=0, info=self._info(row), event="epoch", **row)
                if stopped_early:
                    self.log(f"lrkit.train: stopping early — {stop_reason}")
                    break
        except BaseException:
            if completed == 0 and self.ckpt is None:  # nothing worth keeping: leave the folder as it was found
                if self.created_dir:
                    shutil.rmtree(self.run_dir, ignore_errors=True)
                    for folder in self.created_parents:  # deepest first; one that is no longer empty stays
                        try:
                            folder.rmdir()
                        except OSError:
                            break
                elif not self.previous_files:  # a folder without an earlier run (only other files): drop our args
                    (self.run_dir / "args.yaml").unlink(missing_ok=True)
            elif completed > self.start_epoch:
                try:
                    self._write_records()
                except Exception:  # never mask the original error with a plotting one
                    pass
                self.log(f"lrkit.train: interrupted after epoch {completed}; resume with resume="
                         f"{self.run_dir / 'last.pt'}")
            raise
        if not records_written:
            self._write_records()
        result = TrainResults(
            model=self.model, lr0=self.lr0, lr0_source=self.lr0_source, auto=self.auto, optimizer=self.opt_name,
            optimizer_reason=self.opt_reason, task=self.data.info.task if self.step_fn is None else None,
            metric_name=self.spec.metric_name, metric_mode=self.spec.mode, history=self.history,
            best_epoch=self.best_epoch, run_dir=self.run_dir, events=list(self.events), stopped_early=stopped_early,
            stop_reason=stop_reason, accumulate=self.accumulate, weight_decay=self.weight_decay,
            steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
            seconds=time.perf_counter() - self.t_start,
            lr_scale=float(self.monitor.lr_scale) if self.monitor is not None else 1.0,
        )
        note = _backoff_note(result, self.monitor, bad_data_epoch=self.bad_data_epoch)
        if note:
            self.log(f"lrkit.train: note — {note}")
        return result

    def _train_epoch(self, epoch: int) -> tuple[float, list[float], bool]:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        for obj in _epoch_aware(self.train_loader):  # a DataLoader of yours: its DistributedSampler, ...
            obj.set_epoch(epoch)
        gen = getattr(self.train_loader, "generator", None)
        if self.sampler is not None and isinstance(gen, torch.Generator):
            # worker seeds: a function of (seed, epoch) only, within torch's 64-bit range
            gen.manual_seed((self.cfg.seed * 1_000_003 + epoch) % 2**64)
        model, opt = self.model, self.optimizer
        model.train()
        for norm in self.frozen_norms:  # frozen with their layer: their running statistics do not move either
            norm.eval()
        self._optimizer_mode(train=True)  # schedule-free: the weights move back to the point gradients are taken at
        opt.zero_grad(set_to_none=True)
        nb, acc = self.num_batches, self.accumulate
        total_loss, total_n = 0.0, 0
        window_loss, window_n = 0.0, 0
        # each step's gradient norm stays a 0-dim tensor until _read_floats reads a whole run of them at once: one
        # device read per _READ_EVERY steps, not a sync per step; the values (and results.csv) are the same
        norms: list[Any] = []
        grad_norms: list[float] = []
        # the monitor and a progress callback read each step's loss as it comes; without them, only the epoch's mean
        # does: (loss, batch size) pairs wait and are summed, in step order, where the norms are read
        read_now = self.monitor is not None or self.progress is not None
        losses: list[tuple[torch.Tensor, int]] = []

        def fold() -> None:
            nonlocal total_loss, total_n
            grad_norms.extend(_read_floats(norms))
            norms.clear()
            for value, n in zip(_read_floats([t for t, _ in losses]), (n for _, n in losses)):
                total_loss += value * n
                total_n += n
            losses.clear()

        step = epoch * self.steps_per_epoch
        stop = False
        adapts = adapts_step_size(opt)  # Prodigy / D-Adaptation: d_lr per step (not read for an optimizer without d)
        read, more = 0, False
        first = not self.first_step_done  # the run's first step is checked as find_lr's is; later steps run bare
        for i, batch in enumerate(self.train_loader):
            if i >= nb:
                more = True
                break
            read = i + 1
            size = min(acc, nb - (i // acc) * acc)  # batches in this accumulation window (the last may be short)
            batch = move_to(batch, self.device)
            with self.autocast:
                loss = self._first_loss(batch) if first else self._loss(batch)
            n = batch_size(batch)
            if read_now:
                value = float(loss.detach())
                if not math.isfinite(value) and self.bad_data_epoch is None:
                    self._say_bad_data(batch, value, epoch, step)
                total_loss += value * n
                total_n += n
                window_loss += value
            else:
                losses.append((loss.detach(), n))
            window_n += 1
            if not loss.requires_grad:  # torch's own words ("element 0 of tensors does not require grad") name nothing
                raise self._no_graph_error()
            scaled = loss.float() / size
            if first:
                first = False
                self._first_backward(scaled, batch)
            else:
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            if window_n < size:
                continue
            mean_loss = window_loss / window_n
            window_loss, window_n = 0.0, 0
            if self.scaler is not None:
                self.scaler.unscale_(opt)
            norms.append(_grad_norm(opt))
            if len(norms) >= _READ_EVERY:
                fold()
            # the LR this step uses (before the scheduler moves it), for the progress callback
            lr = self._peak_lr() if self.progress is not None else math.nan
            self.step_lrs = [float(g["lr"]) for g in opt.param_groups]
            # Prodigy / D-Adaptation: the step size this step applies (bias correction included), as floats read
            # now: the optimizer grows d (maybe a tensor, in place) after using it
            if adapts:
                self.step_dlrs = group_step_sizes(opt)
            if self.monitor is not None:
                self.monitor.after_backward(mean_loss)  # may clip, or neutralise this step (undone in after_step)
            try:
                if self.scaler is not None:
                    self.scaler.step(opt)
                    self.scaler.update()
                else:
                    opt.step()
            except (RuntimeError, TypeError, ValueError, NotImplementedError) as e:
                if isinstance(e, torch.OutOfMemoryError):
                    raise
                sparse = [n for n, p in self.model.named_parameters() if p.grad is not None and p.grad.is_sparse]
                if sparse:  # torch's words name no parameter and suggest SparseAdam, which cannot train dense ones
                    decays = sorted({float(g.get("weight_decay", 0.0)) for g in opt.param_groups
                                     if any(p.grad is not None and p.grad.is_sparse for p in g["params"])})
                    raise ValueError(
                        f"optimizer={self.opt_name!r} cannot step the sparse gradients of {sparse[:3]} (an "
                        f"nn.Embedding/EmbeddingBag with sparse=True; their weight_decay here: "
                        f"{', '.join(f'{d:g}' for d in decays)}): {first_line(e).rstrip('.')}. Sparse gradients "
                        "train with weight_decay=0 and optimizer='SGD' (momentum is fine) or torch.optim.Adagrad; "
                        "or build the embedding with sparse=False") from e
                if self.opt_class is None:
                    raise
                # a user's Optimizer class that cannot train this model (Muon: 2-D parameters only, ...): its words
                raise ValueError(f"optimizer={self.opt_name!r}: {self.opt_class.__name__}.step() failed on this "
                                 f"model's parameter groups: {str(e).strip()}") from e
            if not adapts:  # an optimizer whose groups gained their estimate d in this step: read from the next one
                adapts = adapts_step_size(opt)
            self.scheduler.step()
            if self.monitor is not None:
                stop = self.monitor.after_step()
                if self.monitor.last_action == "rollback" and hasattr(self.scheduler, "seek"):
                    # the monitor rewound model, optimizer and scheduler to its snapshot; the run's budget is fixed
                    # in epochs, so the schedule keeps the run's clock (its back-off stays): it still anneals on time
                    self._keep_plan()
                    self.scheduler.seek(step + 1)
            opt.zero_grad(set_to_none=True)
            step += 1
            if self.progress is not None:
                self.progress(advance=1, info=f"loss {mean_loss:.4g}  lr {lr:.3g}", event="step", epoch=epoch + 1,
                              epochs=self.cfg.epochs, step=step, loss=mean_loss, lr=lr)
            if stop:
                break
        fold()
        if (more or (read < nb and not stop)) and not self.batch_count_said:
            self.batch_count_said = True
            self.log(_batch_count_note(epoch, nb, None if more else read))
        train_loss = total_loss / total_n if total_n else math.nan
        return train_loss, grad_norms, stop

    def _keep_plan(self) -> None:
        """After a monitor rollback: keep the run's re-planned length (:attr:`replans`). A snapshot taken before a
        resume with another ``epochs`` holds the schedule as first planned; restored as it is, it undid the re-plan
        (before session 35: the LR reached its final value at the old length and the added epochs ran at it)."""
        if not self.replans:
            return
        state = self.scheduler.state_dict()
        if state["replans"] == self.replans:
            return
        state["replans"] = [dict(r) for r in self.replans]
        state.pop("fingerprint", None)  # (the restored schedule's: the plan it is checked against is put back here)
        self.scheduler.load_state_dict(state)

    def _loss(self, batch: Any) -> torch.Tensor:
        loss = batch_loss(self.model, batch, self.loss_fn, self.step_fn)
        if loss.is_complex() or not loss.is_floating_point():
            raise self._loss_dtype_error(loss)
        return loss

    def _first_loss(self, batch: Any) -> torch.Tensor:
        """The first training step's loss, with the checks ``lrkit.find_lr`` runs on its first step
        (:func:`lrkit._step.first_batch_loss`: an empty batch, a dict batch whose weight/mask keys the loss never
        reads, a loss that only broadcasts, the model's own errors with what it was given) and, for the task's own
        loss, those of ``find_lr``'s default loss: a batch of only ignored (-100) class targets, regression targets
        in another layout than the output or that look like one-hot rows. Each warning once per run
        (:meth:`_warn_once`: ``lr0="auto"``'s range test ran the same checks). Later steps run :meth:`_loss`."""
        self.first_step_done = True
        seen: list[tuple[Any, Any]] = []
        loss_fn = self.loss_fn
        if self.step_fn is None and self.user_loss is None and loss_fn is not None:
            task_loss = loss_fn

            @functools.wraps(task_loss)  # (its name and words, for first_batch_loss's messages)
            def loss_fn(out: Any, y: Any) -> torch.Tensor:
                seen.append((out, y))
                return task_loss(out, y)

        def checked() -> tuple[torch.Tensor, Any]:
            loss, out, _ = first_batch_loss(self.model, batch, loss_fn, self.step_fn, loop="lrkit.train")
            if seen:
                self._task_loss_checks(*seen[0])
            return loss, out

        loss, self.first_out = self._warn_once(checked)
        if loss.is_complex() or not loss.is_floating_point():
            raise self._loss_dtype_error(loss)
        return loss

    def _task_loss_checks(self, out: Any, y: Any) -> None:
        """The checks of ``lrkit.find_lr``'s default loss, for the task's own (the first training step's output
        ``out`` and targets ``y``)."""
        out = model_outputs(out)
        if not isinstance(out, torch.Tensor) or not isinstance(y, torch.Tensor):
            return
        task = self.spec.task
        if task == "regression":
            self._refuse_layout(out, y, f"the regression loss cannot compare the output of model {self.model_name} "
                                        f"{tuple(out.shape)} with the targets {tuple(y.shape)}")
            _warn_class_probabilities(out, y)
        elif task in ("classification", "lm") and all_ignored(y):  # a sync: the first step only
            raise ignored_batch_error(y, "first training batch", f"the {task} task's loss",
                                      ", and so is the epoch's training loss")

    def _first_backward(self, scaled: torch.Tensor, batch: Any) -> None:
        """The first step's backward pass: one that fails on a floating target of another dtype than the output
        (a loss_fn that cannot mix them) is an error naming both dtypes and the fix, as in ``lrkit.find_lr``."""
        out, self.first_out = self.first_out, None  # (not held past the first step)
        try:
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        except RuntimeError as e:
            if isinstance(e, torch.OutOfMemoryError) or out is None:
                raise
            error = target_dtype_error(out, batch, self.loss_fn, e)
            if error is not None and self.target_cast_said:  # the targets were kept: cast, they would be rounded
                y = split_batch(batch)[1]
                name = getattr(self.loss_fn, "__name__", None) or f"{type(self.loss_fn).__name__}()"
                error = ValueError(
                    f"the first backward pass failed: {first_line(e).removesuffix('.')}. The model's output is "
                    f"{dtype_name(out.dtype)} and the targets are {dtype_name(y.dtype)}, kept so because "
                    f"{dtype_name(out.dtype)} would round them (as the log said), and {name} cannot mix them; cast "
                    f"the output in loss_fn, loss_fn=lambda out, y: {name}(out.float(), y), or train the model in "
                    f"{dtype_name(y.dtype)}"
                )
            if error is not None:
                raise error from e
            raise

    def _loss_dtype_error(self, loss: torch.Tensor) -> ValueError:
        """The error for a loss that is not a real floating-point tensor: torch's own words ("cannot be converted to
        type double without overflow", from the loss's first read) name nothing."""
        fn = "step_fn" if self.step_fn is not None else "loss_fn"
        dtype = str(loss.dtype).removeprefix("torch.")
        return ValueError(f"{fn} returned a loss of dtype {dtype}: the loss must be a real floating-point scalar "
                          "(for a complex one, e.g. its .abs() or .real)")

    def _say_bad_data(self, batch: Any, value: float, epoch: int, step: int) -> None:
        """A non-finite training loss from a batch that itself holds NaN values: say once that it is the data's
        (read only on that path, never for a healthy step). The monitor reads such a loss as divergence and backs the
        LR off, and without this the log's closing note blamed lr0 (:func:`_backoff_note`)."""
        bad = _nan_values(batch)
        if not bad:
            return
        self.bad_data_epoch = epoch + 1
        self.log(f"lrkit.train: data — the training batch at epoch {epoch + 1} (optimizer step {step}) holds {bad:,} "
                 f"NaN value{'s' if bad != 1 else ''}, and its loss is {value}: that is the data, whatever the LR "
                 "(the monitor reads it as divergence); clean or impute such values (a CSV or NPZ file holding them "
                 "is refused)")

    def _no_graph_error(self) -> ValueError:
        """A training loss that does not require grad: the user's loss_fn/step_fn cut it from the model's graph."""
        fn = self.step_fn if self.step_fn is not None else self.user_loss
        kind = "step_fn" if self.step_fn is not None else "loss_fn"
        who = (f"the model's own loss (model(**batch).loss of {self.model_name})" if fn is own_loss
               else f"{kind} {getattr(fn, '__name__', type(fn).__name__)}" if fn is not None
               else f"the model's output ({self.model_name})")
        return ValueError(
            f"the training loss from {who} does not require grad, so it cannot train the model: it was cut from the "
            "model's graph (a .detach(), .item(), torch.no_grad() or a tensor rebuilt with torch.tensor(...) on the "
            "way); return a loss computed from the model's output as it is"
        )

    def _optimizer_mode(self, *, train: bool) -> None:
        """An optimizer with train/eval modes (schedule-free) into ``train`` mode through its own ``train()`` /
        ``eval()``, which move the weights between the two points it keeps; called only when the mode changes (a
        third-party ``train()`` need not be idempotent). Nothing for an optimizer without modes."""
        if not self.opt_modes:
            return
        if any(g.get("train_mode", train) is not train for g in self.optimizer.param_groups):
            (self.optimizer.train if train else self.optimizer.eval)()  # type: ignore[attr-defined]

    @torch.no_grad()
    def _validate(self) -> tuple[float, float]:
        """The validation loss and metric. An optimizer with modes is put in eval mode first and left there: the
        checkpoints written after validation hold the same (eval-mode) weights; the next epoch switches back."""
        self._optimizer_mode(train=False)
        model = self.model
        was_training = model.training
        model.eval()
        loss_sum, n_sum = 0.0, 0
        m_sum, m_n = 0.0, 0
        ignored = 0  # batches of padding only (every target -100): no target to score
        # the task's own cross-entropy averages over the targets it scores: weigh each batch by them (below)
        by_targets = self.step_fn is None and self.user_loss is None and self.spec.task in ("classification", "lm")
        for batch in self.val_loader:
            n = batch_size(batch)
            if n == 0:  # an empty batch: its mean loss is NaN, and NaN x 0 samples would poison the sum
                continue
            batch = move_to(batch, self.device)
            with self.autocast:
                if self.step_fn is not None:
                    loss, out, y = self.step_fn(model, batch), None, None
                else:
                    x, y = split_batch(batch)
                    out = model(x)
                    loss = self.loss_fn(out, y)
            try:
                value = float(loss)
            except (TypeError, ValueError, RuntimeError) as e:  # (zero cost until raised)
                raise self._bad_val_loss(loss) from e
            if value != value and all_ignored(y):  # NaN: a batch of padding only holds no target to score
                ignored += 1
                continue
            if by_targets and isinstance(y, torch.Tensor) and not y.is_floating_point():
                # the batch's mean is over its targets that are not -100 (padding): weighted by them, as the
                # perplexity counts them (by samples, a batch of mostly padding weighed as much as a full one)
                n = int((y != -100).sum())
            loss_sum += value * n
            n_sum += n
            if self.spec.metric_sums is not None and out is not None:
                scored = self._scored(model_outputs(out).float(), y)
                s, c = self.spec.metric_sums(*self._in_column_units(*scored))
                m_sum += s
                m_n += c
        model.train(was_training)
        if n_sum == 0 and ignored:
            raise ValueError(f"every target of the validation split ({ignored} batch(es)) is -100, the ignored index "
                             "of cross-entropy: there is nothing to score the model on; check the validation labels")
        if n_sum == 0:
            raise ValueError("the validation split yields no batches; raise val= or pass a (train, val) pair")
        val_loss = loss_sum / n_sum
        if self.spec.metric_sums is None:
            return val_loss, val_loss
        weights = self._column_weights
        scale = self.data.info.target_scale if weights is None else weights[1]
        metric = self.spec.finish(m_sum / m_n, scale) if m_n else math.nan
        return val_loss, metric

    @functools.cached_property
    def _column_weights(self) -> tuple[torch.Tensor, float] | None:
        """For a regression target of several columns that lrkit standardised, each column's standard deviation over
        the largest of them, and that largest: ``(w, s_max)``. ``None`` for one column (``target_scale`` is its
        standard deviation) or a target used as given.

        The RMSE "in the target's units" is ``sqrt(mean((diff_k * s_k) ** 2))`` over every cell, ``diff`` in
        standardised units; ``sqrt(mean((diff_k * w_k) ** 2)) * s_max`` is the same number, and with ``w <= 1`` the
        squares stay within float32 whatever the columns' scale (the single-column path never leaves it either)."""
        if self.spec.task != "regression":
            return None
        std = self.data.info.scaling.get("y_std") if isinstance(self.data.info.scaling, Mapping) else None
        if not isinstance(std, torch.Tensor) or std.numel() < 2:
            return None
        std = std.reshape(-1).double()
        top = float(std.max())
        if not (math.isfinite(top) and top > 0):
            return None
        return (std / top).float().to(self.device), top

    def _in_column_units(self, out: Any, y: Any) -> tuple[Any, Any]:
        """``out`` and ``y`` with each target column weighted by :attr:`_column_weights` (unchanged without them), so
        the regression metric's squared errors are in every column's own units (over ``s_max``)."""
        weights = self._column_weights
        if (weights is None or not isinstance(out, torch.Tensor) or not isinstance(y, torch.Tensor)
                or y.ndim < 1 or y.shape[-1] != weights[0].numel() or out.numel() != y.numel()):
            return out, y
        w = weights[0].to(y.device)
        return out.reshape(y.shape).float() * w, y.float() * w

    @functools.cached_property
    def _probabilities(self) -> bool:
        """Whether a binary (or multi-label) classifier's scores are probabilities: see :func:`_probability_scores`."""
        return _probability_scores(self.user_loss, self.model)

    def _per_label(self, out: torch.Tensor, y: torch.Tensor) -> bool:
        """Whether ``(B, K)`` targets of the outputs' shape are multi-hot labels, scored per label
        (:func:`_multi_label`). A batch whose rows each hold one label reads as one-hot class probabilities by itself,
        so once any batch of the run has shown multi-hot rows every later one is scored per label too: a run's
        batches are scored in one unit (a batch scored by argmax among batches scored per label mixed counts of
        samples with counts of labels)."""
        if not (out.ndim == 2 and out.shape[1] > 1 and y.shape == out.shape):
            return False
        if not self.multi_hot_seen and _multi_label(out, y, self.user_loss):
            self.multi_hot_seen = True
        return self.multi_hot_seen

    def _scored(self, out: Any, y: Any) -> tuple[Any, Any]:
        """The outputs and class/token targets the task's metric reads. Positions whose target is cross-entropy's
        ignored ``-100`` (Hugging Face's padding label) are left out, as the loss leaves them out: they counted as
        wrong predictions (accuracy) and as tokens of zero loss (perplexity). A binary classifier with one score
        per sample (a logit for ``BCEWithLogitsLoss``, a probability for ``BCELoss``) predicts class 1 when the score
        is above 0 (0.5 for a probability: see :func:`_probability_scores`, which also reads a lambda's scores);
        argmax over one score always said class 0, and an ``(N, 1)`` target broadcast against it counted ``N x N``
        pairs. Multi-hot targets of the outputs' shape ``(B, K)`` are scored so per label (:func:`_multi_label`),
        class probabilities of that shape by their most likely class."""
        task = self.spec.task
        if (task not in ("classification", "lm") or not isinstance(out, torch.Tensor)
                or not isinstance(y, torch.Tensor) or y.is_complex() or not y.numel()):
            return out, y
        per_label = task == "classification" and self.user_loss is not None and self._per_label(out, y)
        if (task == "classification" and y.is_floating_point()
                and out.ndim == 2 and out.shape[1] > 1 and y.shape == out.shape and not per_label):
            y = y.argmax(dim=-1)  # class probabilities (one-hot, smoothed) for cross_entropy: the most likely class
        if task == "classification" and self.user_loss is not None and (per_label or _one_score(out, y)):
            z = out.reshape(-1)  # one decision per score: a sample's (binary) or a label's (multi-label)
            threshold = 0.5 if self._probabilities else 0.0
            # a multi-label run's scores may be probabilities too (a model ending in nn.Sigmoid, with BCELoss)
            kinds = ("multi_label_probability", "multi_label") if per_label else ("probability", "logit")
            self.scores_kind = kinds[0] if self._probabilities else kinds[1]
            out = torch.stack([torch.full_like(z, threshold), z], dim=-1)  # argmax: 1 exactly where z > threshold
            y = y.reshape(-1)
            y = (y > 0.5).long() if y.is_floating_point() else y.long()
        if y.is_floating_point():
            return out, y
        y = class_targets(out, y)
        if out.ndim == y.ndim + 1 and out.shape[:-1] == y.shape:  # classes last: (B, C) / (B, T, V)
            kept = y != -100
            if not bool(kept.all()):
                return out[kept], y[kept]
        return out, y

    def _peak_index(self) -> int:
        """The param group whose LR is the run's peak LR: the first with ``lr_scale`` 1 that is not a bias group;
        where none is (``layer_decay`` with the top layer frozen by the user), the first with the largest
        ``lr_scale``, non-bias groups first — the highest LR the run trains at, not the lowest layer's."""
        groups = self.optimizer.param_groups
        for i, group in enumerate(groups):
            if float(group.get("lr_scale", 1.0)) == 1.0 and not group.get("is_bias", False):
                return i
        return max(range(len(groups)), key=lambda i: (not groups[i].get("is_bias", False),
                                                      float(groups[i].get("lr_scale", 1.0)), -i))

    def _peak_lr(self) -> float:
        return float(self.optimizer.param_groups[self._peak_index()]["lr"])

    def _row(self, epoch: int, train_loss: float, val_loss: float, metric: float, grad_norms: list[float],
             seconds: float) -> dict[str, Any]:
        row: dict[str, Any] = {"epoch": epoch, "time": round(self.elapsed, 4), "train_loss": train_loss,
                               "val_loss": val_loss}
        if self.spec.metric_name != "val_loss":
            row[f"val_{self.spec.metric_name}"] = metric
        for name, lr in zip(self.group_names, self.step_lrs):
            row[f"lr/{name}"] = lr  # the LR of the epoch's last optimizer step
        if adapts_step_size(self.optimizer):  # Prodigy / D-Adaptation: lr is a multiplier of their estimate d
            # the step size the epoch's last step applied: d x lr (x Prodigy's bias correction), read before that
            # step (lrkit._dlr, the Monitor events' d_lr too); the groups now hold the next step's d and k
            dlrs = getattr(self, "step_dlrs", None) or group_step_sizes(self.optimizer)
            for name, dlr in zip(self.group_names, dlrs):
                if dlr is not None:
                    row[f"d_lr/{name}"] = dlr
        finite = [g for g in grad_norms if math.isfinite(g)]
        row["grad_norm"] = float(np.mean(finite)) if finite else math.nan
        row["grad_norm_max"] = float(np.max(finite)) if finite else math.nan
        row["epoch_time"] = round(seconds, 4)
        return row

    def _metric_text(self, row: dict[str, Any]) -> str:
        """``"  accuracy 0.9"`` after the validation loss, or nothing when the metric is the validation loss itself
        (a ``step_fn``'s)."""
        m = self.spec.metric_name
        return f"  {m} {row[f'val_{m}']:.4g}" if m != "val_loss" else ""

    def _info(self, row: dict[str, Any]) -> str:
        return f"epoch {row['epoch']}: val_loss {row['val_loss']:.4g}{self._metric_text(row)}"

    def _epoch_log(self, row: dict[str, Any], improved: bool) -> None:
        metric = self._metric_text(row)
        # the LR of the epoch's last step, as results.csv has it (the groups already hold the next step's)
        i = self._peak_index()
        lr = row.get(f"lr/{self.group_names[i]}") if i < len(self.group_names) else None
        lr = self._peak_lr() if lr is None else lr
        # the epoch right-aligned to the run's length (1/2, ..., 10/100), and the star (a new best) with the time: at 80
        # columns a line then wraps only where a long metric name asks for it, and never leaves the star alone
        self.log(
            f"epoch {row['epoch']:>{len(str(self.cfg.epochs))}}/{self.cfg.epochs}  train_loss "
            f"{row['train_loss']:.4g}  val_loss {row['val_loss']:.4g}{metric}  lr {lr:.3g}  "
            f"({row['epoch_time']:.1f}s{') *' if improved else ')'}"
        )


# -------------------------------------------------------------------------------------------------- helpers
def _terminal_width() -> int | None:
    """The width to wrap the log to: the terminal's (``COLUMNS`` where set) when stdout is a terminal (also under
    ``lrkit train``'s progress bar, whose stdout proxy is one), else ``None``: a log piped to a file or a pipe keeps
    each message on one line."""
    try:
        tty = bool(sys.stdout.isatty())
    except (AttributeError, ValueError):  # no stdout, or a closed one
        return None
    return shutil.get_terminal_size().columns if tty else None


#: a message's prefix (``lrkit.train: ``, ``data: ``, ``lr0=auto: ``): its wrapped lines are indented under its text
_LOG_PREFIX = re.compile(r"[\w.=-]{1,16}: ")


def _wrap_log(line: str, width: int | None) -> list[str]:
    """``line`` as lines of at most ``width`` columns (``None``: as it is), nothing dropped. A line of fields
    separated by two spaces (an epoch's ``train_loss 2.28  val_loss 2.20  ...``) breaks only between fields; other
    lines break between words. The wrapped lines are indented under the text after the message's prefix
    (``lrkit.train: ``), or by two spaces, so each message still starts at column 1. A word longer than the width is
    kept whole (a path): no line is cut.

    >>> for part in _wrap_log("lrkit.train: the schedule had already ended (step 46); the extra epochs run at its "
    ...                       "final LR", 60):
    ...     print(part)
    lrkit.train: the schedule had already ended (step 46); the
                 extra epochs run at its final LR
    """
    if width is None or len(line) <= width:
        return [line]
    if "\n" in line:  # each line of a message of several on its own
        return [part for piece in line.split("\n") for part in _wrap_log(piece, width)]
    prefix = _LOG_PREFIX.match(line)
    longest = max(map(len, line.split()), default=0)  # a long path: indented less, so that it fits if it can
    indent = " " * (prefix.end() if prefix and width - prefix.end() >= max(30, longest) else 2)
    fields = re.split(r"(?<=\S)  (?=\S)", line)
    if len(fields) > 2 and max(map(len, fields)) <= width - len(indent):
        lines = [fields[0]]
        for f in fields[1:]:
            if len(lines[-1]) + 2 + len(f) <= width:
                lines[-1] += "  " + f
            else:
                lines.append(indent + f)
        return lines
    import textwrap

    return textwrap.wrap(line, width=width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [line]


#: Ultralytics' shorthand for the LR shape; a ``schedule=`` spec replaces all of it.
_SHAPE_KEYS = ("lrf", "cos_lr", "warmup_epochs", "warmup_momentum", "warmup_bias_lr")


#: what best.pt leaves out of last.pt's state (the training state a resume needs)
_NOT_IN_BEST = ("optimizer", "scheduler", "scaler", "monitor", "best_model")


def _passed_batch(loader: DataLoader, batch: int, *, given: bool = True) -> tuple[int, str | None, bool]:
    """``(batch size, log line or None, whether the loader's dataset holds samples)`` of a DataLoader the user passed;
    ``batch`` is the config's (``given``: the user's own, so the line says it is ignored; the default is not named),
    ignored where the loader has its own: its ``batch_size``; with a ``batch_sampler``
    (``batch_size`` is ``None`` then), the sampler's ``batch_size`` where it has one (torch's ``BatchSampler``); with
    neither (``batch_size=None``: each of the dataset's items is a whole batch, and ``n_train`` counts batches), the
    first item's size. A custom batch sampler's batches are not drawn to be measured (that would draw the run's
    random numbers): ``batch`` is kept, and said to be.

    >>> from torch.utils.data import BatchSampler, SequentialSampler, TensorDataset
    >>> ds = TensorDataset(torch.zeros(100, 2))
    >>> _passed_batch(DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 64, False)), 32)[::2]
    (64, True)
    """
    ignored = f" (batch={batch} ignored)" if given else ""
    if loader.batch_size is not None:
        n = loader.batch_size
        return n, None if n == batch else f"data: batch={n} comes from the DataLoader you passed{ignored}", True
    sampler = loader.batch_sampler
    if sampler is not None:
        n = getattr(sampler, "batch_size", None)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n, None if n == batch else f"data: batch={n} comes from the batch_sampler of the DataLoader you " \
                f"passed{ignored}", True
        return batch, (f"data: the DataLoader you passed has a batch_sampler ({type(sampler).__name__}) without a "
                       f"batch_size, so its batches' size is not known: batch={batch} is taken as their size for "
                       "accumulate and weight decay (pass batch= their size)"), False
    from lrkit._step import _leading_size

    n = _leading_size(_first_sample(loader))  # batch_size=None: the dataset's items are whole batches
    if n is None or n < 1:
        return batch, (f"data: the DataLoader you passed has batch_size=None (each item of its dataset is a batch), "
                       f"and its batches' size is not known: batch={batch} is taken as their size for accumulate "
                       "and weight decay (pass batch= their size)"), False
    why = f"batch_size=None: each item of its dataset is a batch, the first of {n} samples"
    return n, None if n == batch else f"data: batch={n} comes from the DataLoader you passed ({why}" \
        f"{f'; batch={batch} ignored' if given else ''})", False


#: losses of class scores: a float target read as regression beside one of them gets a note (see _log_plan)
_CLASS_LOSSES = (torch.nn.BCEWithLogitsLoss, torch.nn.BCELoss, torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)
_CLASS_LOSS_FNS = (torch.nn.functional.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy,
                   torch.nn.functional.cross_entropy, torch.nn.functional.nll_loss)


def _lr0_text(lr0: Any) -> str:
    """``lr0`` as a note names it: a number as ``:g``, else as given (``auto``, ``None``)."""
    return f"{lr0:g}" if isinstance(lr0, float) else str(lr0)


def _amp_text(amp: Any, device: torch.device) -> str:
    """The plan line's mixed-precision part: ``", amp bf16 (bfloat16 autocast)"``, or ``""`` without amp.

    >>> _amp_text("bf16", torch.device("cpu")), _amp_text(False, torch.device("cpu"))
    (', amp bf16 (bfloat16 autocast)', '')
    """
    if not amp:
        return ""
    if isinstance(amp, torch.dtype):
        dtype = amp
    elif amp is True:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    else:
        from lrkit._step import _AMP_DTYPES

        dtype = _AMP_DTYPES.get(str(amp).lower(), torch.bfloat16)
    if dtype == torch.float16:
        return ", amp fp16 (float16 autocast" + (" + GradScaler)" if device.type == "cuda" else ")")
    return ", amp bf16 (bfloat16 autocast)"


def _on_outputs(loss: Callable[[Any, Any], torch.Tensor] | None) -> Any:
    """A task's default ``loss`` over :func:`lrkit._step.model_outputs` of the model's output (a Hugging Face
    ``ModelOutput``'s logits; a tensor as it is)."""
    if loss is None:
        return None

    @functools.wraps(loss)
    def on_outputs(out: Any, y: Any) -> torch.Tensor:
        logits = model_outputs(out)
        if type(logits) is not torch.Tensor and not isinstance(logits, torch.Tensor):
            # the eval-mode check before training saw a tensor: this output appears while training (aux heads)
            raise not_a_tensor_error(logits, training=torch.is_grad_enabled())
        return loss(logits, y)

    return on_outputs


def _one_score(out: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether ``out`` holds one score per sample, ``(B,)`` or ``(B, 1)``, for ``B`` targets ``(B,)`` or ``(B, 1)``."""
    return ((out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1)) and y.ndim in (1, 2)
            and y.numel() == y.shape[0] == out.shape[0])


def _multi_label(out: torch.Tensor, y: torch.Tensor, loss: Any) -> bool:
    """Whether ``out`` ``(B, K)`` holds one score per label of multi-hot targets of its shape (``BCEWithLogitsLoss``
    over ``K`` labels): each label is a binary decision, and the accuracy is the share of labels right. Targets of
    that shape are class probabilities instead (one-hot or smoothed, for ``cross_entropy``) when the loss is none
    of the binary ones and every row sums to 1."""
    if not (out.ndim == 2 and out.shape[1] > 1 and y.shape == out.shape):
        return False
    if isinstance(loss, (torch.nn.BCELoss, torch.nn.BCEWithLogitsLoss)) or loss in (
            torch.nn.functional.binary_cross_entropy, torch.nn.functional.binary_cross_entropy_with_logits):
        return True
    return not (y.is_floating_point() and bool(torch.isclose(y.sum(dim=-1), y.new_ones(())).all()))


def _probability_scores(loss: Any, model: torch.nn.Module) -> bool:
    """Whether a binary classifier's scores are probabilities (the model ends in a sigmoid), not logits: the loss is
    ``BCELoss`` / ``binary_cross_entropy``; or it is none that takes logits (a lambda or partial around either, any
    other callable) and the model's last layer, past any reshaping or dropout, is an ``nn.Sigmoid``. (A sigmoid
    inside ``forward`` cannot be seen: pass ``nn.BCELoss()`` itself then. The scores cannot tell: a classifier's
    logits early in training may all lie in ``[0, 1]``.)"""
    if isinstance(loss, torch.nn.BCELoss) or loss is torch.nn.functional.binary_cross_entropy:
        return True
    if isinstance(loss, torch.nn.BCEWithLogitsLoss) or loss is torch.nn.functional.binary_cross_entropy_with_logits:
        return False
    passive = (torch.nn.Flatten, torch.nn.Unflatten, torch.nn.Identity, torch.nn.Dropout)
    leaves = [m for m in _saved_module(model).modules() if not any(True for _ in m.children())]
    last = next((m for m in reversed(leaves) if not isinstance(m, passive)), None)
    return isinstance(last, torch.nn.Sigmoid)


def _saved_module(model: torch.nn.Module) -> torch.nn.Module:
    """The model whose ``state_dict()`` a checkpoint's ``"model"`` holds: under ``torch.compile``'s wrapper,
    ``nn.DataParallel`` or DDP (any depth, :data:`lrkit.scaling._STATE_WRAPPERS`) the model they wrap, whose names
    carry no ``_orig_mod.``/``module.`` — so ``best.pt``/``last.pt`` load into the plain model with
    ``model.load_state_dict(ckpt["model"])``, and a run resumes wrapped or not. These wrappers have no tensors of
    their own: both ``state_dict``s hold the same tensors."""
    from lrkit.scaling import _unwrap

    return _unwrap(model, state=True)[0]


def _model_class_name(model: torch.nn.Module) -> str:
    """The class of the model a run trains (logs, ``args.yaml``): ``"Net"``, or ``"Net (torch.compile)"`` /
    ``"Net (DataParallel)"`` rather than the wrapper's class (``OptimizedModule``)."""
    from lrkit.scaling import model_label

    return model_label(model)


#: the name prefixes the wrappers of :func:`_saved_module` give every key of a model's ``state_dict``
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")


def _without_wrapper_prefix(state: Mapping[str, Any], target: torch.nn.Module | None = None) -> Mapping[str, Any]:
    """A model ``state_dict`` whose every key starts with ``_orig_mod.`` (saved from a ``torch.compile``d model, as
    ``last.pt`` was before lrkit saved the plain names) with the prefix taken off, for the plain model; with the
    ``target`` module it will be loaded into, ``module.`` too (``nn.DataParallel``/DDP, the same), unless ``target``'s
    own names are the ones ``state`` has (a model whose child is called ``module``). Any other ``state`` as it is."""
    keys = None if target is None else set(target.state_dict())
    while state and (keys is None or set(state) != keys):
        prefix = next((p for p in _WRAPPER_PREFIXES[:1 if keys is None else None]
                       if all(isinstance(k, str) and k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = copy.copy(state)  # an OrderedDict keeps its _metadata (module versions), renamed with the keys
        torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(state, prefix)  # type: ignore[arg-type]
    return state


def _pretrained(spec: Any, checkpoint: Path, features: list[str] | None = None) -> torch.nn.Module:
    """The model of the lrkit run ``checkpoint`` names (``model=runs/train/best.pt`` or ``model=runs/train``), in train
    mode, to fine-tune; its errors name the ``model=`` value. ``features``: the new data's CSV columns, refused when
    they are the run's in another order (its weights would read each column as another)."""
    from lrkit.train.reuse import load_run

    try:
        loaded = load_run(checkpoint)
    except (ValueError, FileNotFoundError) as e:
        text = str(e).removeprefix("load_run: ")
        raise ValueError(f"model={spec!r} (fine-tuning from an lrkit run's checkpoint): {text}") from None
    if (features is not None and loaded.features is not None and list(features) != list(loaded.features)
            and sorted(features) == sorted(loaded.features)):
        raise ValueError(f"model={spec!r} (fine-tuning from an lrkit run's checkpoint) was trained on the columns "
                         f"{list(loaded.features)}, in that order, and the data holds them as {list(features)}: its "
                         "weights would read each column as another; put the data's columns in the run's order")
    return loaded.model.train()


def _refuse_multi_process() -> None:
    """``lrkit.train`` runs in one process: under a torch.distributed group of several ranks (or torchrun's
    ``WORLD_SIZE`` > 1 before one is made) every rank would train the whole data unsharded and write its own run
    folder (``train``, ``train2``, ...) for no speed-up, so it is refused with what does work there."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        world, rank = dist.get_world_size(), str(dist.get_rank())
    else:
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError:
            return
        rank = os.environ.get("RANK", "?").strip() or "?"
    if world <= 1:
        return
    raise ValueError(
        f"lrkit.train runs in one process, but this is rank {rank} of {world} (torch.distributed / torchrun): each "
        "rank would train on the whole data, unsharded, and write its own run folder (train, train2, ...), for no "
        "speed-up (and lr0='auto' on one rank alone would wait in its range test's all-reduce for the others). "
        "Run it as one process (python or lrkit train, not torchrun); for a multi-process run, write the "
        "DDP loop with lrkit's parts, which support torch.distributed: lrkit.find_lr or "
        "lrkit.train.auto.choose_lr0 on every rank with its shard, a schedule's to_torch(optimizer), and "
        "lrkit.Monitor(model, optimizer, sync_loss=True)"
    )


def _nan_values(batch: Any) -> int:
    """How many NaN values the floating-point tensors of ``batch`` hold (inputs and targets, nested in tuples, lists
    and mappings). NaN only: an inf may be meant (a float attention mask of -inf), and then the LR may be to blame."""
    if isinstance(batch, torch.Tensor):
        if not (batch.is_floating_point() or batch.is_complex()):
            return 0
        return int(torch.isnan(batch.detach()).sum())
    if isinstance(batch, Mapping):
        return sum(_nan_values(v) for v in batch.values())
    if isinstance(batch, (list, tuple)):
        return sum(_nan_values(v) for v in batch)
    return 0


def _backoff_note(result: TrainResults, monitor: Any, *, bad_data_epoch: int | None = None) -> str | None:
    """What the monitor's rollbacks after overshoots say about ``lr0``, for the end of the log; ``None`` without any.

    ``bad_data_epoch``: the first epoch a training batch holding NaN values gave a non-finite loss; the note then
    names the data, not lr0 (a lower LR cannot make such a loss finite).

    The back-offs of those rollbacks (``monitor.backoff`` each; ``val_rising``'s, which answer memorisation late in
    a run, are left out) put the rest of the run at ``scale`` times the schedule: the peak the run could take. The
    count is of rollbacks (``monitor.rollbacks``), not of events: two checks at one step are one rollback.
    """
    overshoots = [e for e in result.events if e.get("action") == "rollback" and e.get("check") != "val_rising"]
    if monitor is None or not overshoots:
        return None
    n_val = sum(1 for e in result.events if e.get("action") == "rollback" and e.get("check") == "val_rising")
    scale = float(monitor.lr_scale) / float(monitor.val_backoff) ** n_val
    if not 0.0 < scale < 1.0:  # a custom backoff >= 1 lowers nothing
        return None
    # checks that fire at one step (a loss_spike and a gradient_blowup) raise an event each but share one rollback:
    # the monitor's own count (val_rising's taken out), else one per step that raised any
    rollbacks = getattr(monitor, "rollbacks", None)
    times = (int(rollbacks) - n_val if isinstance(rollbacks, int) and rollbacks > n_val
             else len({("step", e["step"]) if "step" in e else ("event", i) for i, e in enumerate(overshoots)}))
    counts: dict[str, int] = {}
    for e in overshoots:
        counts[str(e.get("check"))] = counts.get(str(e.get("check")), 0) + 1
    which = ", ".join(f"{c} x{k}" if k > 1 else c for c, k in counts.items())
    if bad_data_epoch is not None:
        return (f"the monitor rolled the run back {times} time(s) ({which}) and went on at {scale:.2g}x the planned "
                f"LR, but the cause is NaN in the training data, not the LR: batches holding such values (the "
                f"first at epoch {bad_data_epoch}) give a non-finite loss at any LR; clean or impute the data rather "
                "than lowering lr0")
    peak = result.lr0 * scale
    whose = {"auto": "lr0=auto's choice", "default": "the default lr0"}.get(result.lr0_source, "lr0")
    return (f"the monitor rolled the run back {times} time(s) after the LR overshot ({which}) and went on "
            f"at {scale:.2g}x the planned LR (peak {peak:.3g} instead of {result.lr0:.4g}): {whose} was too high for "
            f"this run; start the next one at lr0={peak:.2g} or lower"
            + (" (or lr0=auto)" if result.lr0_source != "auto" else ""))


def _same_tensors(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        not isinstance(a[k], torch.Tensor) or (a[k].shape == b[k].shape and torch.equal(a[k], b[k])) for k in a
    )


def _free_default_peak(spec: Any) -> Any:
    """A ``schedule=`` spec whose family has a default peak LR it does not set itself (``"ultralytics"``: lr0=0.01)
    leaves the peak to the run (an explicit ``lr0``, ``lr0="auto"`` or the optimizer's default), as a spec without a
    peak does; only a peak written in the spec fixes lr0.

    >>> _free_default_peak("ultralytics lrf=0.1")
    {'name': 'ultralytics', 'lrf': 0.1, 'lr0': None}
    >>> _free_default_peak("ultralytics lr0=0.02"), _free_default_peak("cosine")
    ('ultralytics lr0=0.02', 'cosine')
    """
    from lrkit.schedules import parse_spec
    from lrkit.schedules.registry import lookup

    try:
        name, params = parse_spec(spec)
        info = lookup(name)
    except ValueError:
        return spec  # from_spec names the problem
    if info.defaults.get("lr0") is None or "lr0" in params:
        return spec
    return {"name": name, **params, "lr0": None}


def _batch_count_note(epoch: int, planned: int, read: int | None) -> str:
    """The log's note when epoch ``epoch`` (0-based) of the train loader read other than ``planned`` batches, its
    ``len()``: ``read`` fewer, or (``None``) more. The loader's length is what the schedule is planned in, and a
    loader may not keep to it: an ``IterableDataset`` reports a length that its workers' shards, each ending in a
    short batch, exceed, or one that counts more samples than it yields. Before session 27 both went unsaid."""
    if read is None:
        return (f"lrkit.train: note — the train loader yielded more batches in epoch {epoch + 1} than its len(), "
                f"{planned}: each epoch trains on its first {planned} batches (the steps the schedule is planned "
                "for) and leaves the rest out. An IterableDataset sharded over DataLoader workers ends each "
                "worker's shard with a short batch, which len() (samples / batch_size) does not count: give the "
                "DataLoader drop_last=True, or a batch size that divides each worker's shard")
    return (f"lrkit.train: note — the train loader yielded {read} batches in epoch {epoch + 1}, fewer than its "
            f"len(), {planned}: the epochs are shorter than the schedule is planned for, so it does not reach its "
            "end (the LR stays above its planned final value); give the dataset a __len__ that counts the samples "
            "it yields in an epoch")


def _former_rmse_note(done: int) -> str:
    """The log's note when a regression run of several target columns saved before session 27 (``done`` epochs) is
    resumed: its ``val_rmse`` so far, and the best it holds, are in the former units."""
    epochs = "epoch 1" if done == 1 else f"epochs 1-{done}"
    return (f"lrkit.train: note — this run was saved by an earlier lrkit, whose val_rmse of a target of several "
            f"columns was the RMSE of the standardised columns times the root mean square of their scales; the "
            f"val_rmse of {epochs} (results.csv, and the best that best.pt and patience compare with) is in those "
            "units, the later epochs' in each column's own units: the two do not compare; start a new run for one "
            "scale throughout")


def _epoch_aware(loader: Any) -> list[Any]:
    """The parts of a DataLoader of the user's whose order the epoch chooses through ``set_epoch(epoch)``: its
    ``sampler`` (a ``DistributedSampler``, also with ``num_replicas=1``), its ``batch_sampler`` and the sampler that
    one draws from, and an ``IterableDataset`` with a ``set_epoch`` (a Hugging Face streaming dataset). The training
    loop tells them each epoch, as Lightning, the Hugging Face ``Trainer`` and accelerate do: before session 27
    ``lrkit.train`` did not, and every epoch read epoch 0's order. A wrapper is read through (``_held_loaders``);
    lrkit's own :class:`SeededSampler` is set by the trainer itself and left out."""
    found: dict[int, Any] = {}
    for held in _held_loaders(loader):
        if not isinstance(held, DataLoader):
            continue
        batch_sampler = held.batch_sampler
        dataset = held.dataset if isinstance(held.dataset, torch.utils.data.IterableDataset) else None
        for obj in (held.sampler, batch_sampler, getattr(batch_sampler, "sampler", None), dataset):
            if obj is not None and not isinstance(obj, SeededSampler) and callable(getattr(obj, "set_epoch", None)):
                found[id(obj)] = obj
    return list(found.values())


class _LoaderProxy:
    """A wrapper around a loader: ``len`` and every other attribute (``batch_size``, ``generator``, ``drop_last``, ...)
    are the wrapped loader's, so the trainer, the range test and ``lr0="auto"`` see one object; subclasses change
    ``__iter__``."""

    loader: Any
    #: the subclass's own attributes, never looked up on the loader
    _own: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name == "loader" or name in type(self)._own:  # not set yet (e.g. during copy): never recurse
            raise AttributeError(name)
        return getattr(self.loader, name)


class _CastingLoader(_LoaderProxy):
    """A loader whose batches pass through ``cast``."""

    _own = ("cast",)

    def __init__(self, loader: Any, cast: Callable[[Any], Any]) -> None:
        self.loader = loader
        self.cast = cast

    def __iter__(self) -> Any:
        for batch in self.loader:
            yield self.cast(batch)


class _WithoutLastBatch(_LoaderProxy):
    """A loader without the last batch of each pass (``len`` one less): a train loader whose last batch holds one
    sample, which BatchNorm cannot train on."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader) - 1

    def __iter__(self) -> Any:
        n = len(self)
        for i, batch in enumerate(self.loader):
            if i >= n:
                return
            yield batch


class _EvalModeLoader(_LoaderProxy):
    """A validation loader for an optimizer with train/eval modes: each pass over it runs with the optimizer in eval
    mode (``set_mode(train=False)``) and puts train mode back when the pass ends, so ``lr0="auto"``'s trials are
    scored on the weights the run validates."""

    _own = ("set_mode",)

    def __init__(self, loader: Any, set_mode: Callable[..., None]) -> None:
        self.loader = loader
        self.set_mode = set_mode

    def __iter__(self) -> Any:
        self.set_mode(train=False)
        try:
            yield from self.loader
        finally:
            self.set_mode(train=True)


def _floating_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating-point parameter (or buffer); ``None`` when it has none."""
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def _epochs(n: float) -> str:
    return f"{n:g} epoch" + ("" if n == 1 else "s")


def _load_error(e: BaseException) -> str:
    """The first line of a ``load_state_dict`` error, with the line after it when the first only announces it
    (torch's ``Error(s) in loading state_dict for Net:`` — the next names the missing/unexpected keys or sizes),
    cut to 300 characters."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text if len(text) <= 300 else text[:297] + "..."


def _brief(v: Any) -> str:
    return f"{len(v)} entries" if isinstance(v, list) and len(v) > 8 else repr(v)


def _short(spec: Any) -> str:
    return repr(spec) if isinstance(spec, (str, dict)) else type(spec).__name__


def _seed_all(seed: int) -> None:
    import random

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@torch.no_grad()
def _grad_norm(optimizer: torch.optim.Optimizer) -> torch.Tensor | float:
    """The global L2 norm of the optimizer's gradients, as a 0-dim tensor on their device (read later, in bulk, by
    :func:`_read_floats`: no device sync here); ``0.0`` when no parameter has a gradient."""
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return 0.0
    if all(g.dtype == torch.float32 and g.layout == torch.strided and g.device.type == "cpu" for g in grads):
        # on the CPU _foreach_norm is vector_norm per tensor in one call (the same bits, without the Python loop);
        # elsewhere its fused kernel may round differently, and the recorded norms must not move
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    # a sparse gradient (nn.Embedding(sparse=True)) is normed over its coalesced values: vector_norm refuses it
    norms = torch.stack([torch.linalg.vector_norm((g.coalesce().values() if g.is_sparse else g).float())
                         for g in grads])
    return torch.linalg.vector_norm(norms)


#: how many per-step values (gradient norms, losses) _train_epoch keeps as tensors before reading them at once
_READ_EVERY = 256


def _read_floats(values: Sequence[torch.Tensor | float]) -> list[float]:
    """``[float(v) for v in values]`` with one device read for all the one-element tensors among them (exactly the
    same floats: no dtype is changed, and ``stack`` only widens, which is exact)."""
    tensors = [v.reshape(()) for v in values if isinstance(v, torch.Tensor)]
    if len(tensors) < 2:
        return [float(v) for v in values]
    try:
        read = iter(torch.stack(tensors).tolist())
    except RuntimeError:  # on different devices (a model split across GPUs): one read each
        return [float(v) for v in values]
    return [next(read) if isinstance(v, torch.Tensor) else float(v) for v in values]
