"""The LR range test (Smith 2017; fast.ai's "LR Finder"): ramp the LR up step by step and record the loss.

Everything the user had is restored afterwards, in memory: parameters, buffers, gradients (into the same ``.grad``
tensors), optimizer state and hyperparameters, every module's train/eval mode, and the torch/numpy/python RNG states.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch

from lrkit._dist import distributed as _distributed
from lrkit._dist import failed_check, failed_error, flagged_all_reduce, rank_mean, reshard, same_settings
from lrkit._dist import named_all_reduce as _all_reduce
from lrkit._state import Snapshot, check_snapshot_device, every_optimizer, inner_optimizers, set_group_lrs
from lrkit._step import (
    LossFn,
    StepFn,
    autocast_context,
    batch_loss,
    batch_size,
    clip_grad_norm_,
    cycle_batches,
    first_batch_loss,
    move_to,
    optimizer_step,
    target_dtype_error,
    train_mode,
)
from lrkit._utils import (
    adapts_step_size,
    check_int,
    check_positive,
    did_you_mean,
    in_lrkit,
    maximize_sign,
    unknown_name_error,
)
from lrkit.finder import suggest as _suggest
from lrkit.finder.result import MIN_STOPPED_POINTS, FinderResult

__all__ = ["find_lr", "group_scales"]

Progress = Callable[[int, int, float, float], None]

def group_scales(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each param group's LR relative to the peak: ``group["lr_scale"]`` if set, else ``lr / max(lr)``.

    The finder and the schedules multiply every group by the same factor, so discriminative ratios survive. When
    every group's LR is 0 (a warmup scheduler attached at its first step), the ratios of the groups' ``initial_lr``
    (the LRs the scheduler scales) are used instead.
    """
    groups = optimizer.param_groups
    key = "lr_scale" if any("lr_scale" in g for g in groups) else "lr"
    for i, g in enumerate(groups):  # without one, the LRs written would be new keys that nothing reads: a flat curve
        if "lr" not in g:
            keys = ", ".join(repr(k) for k in g if k != "params")
            raise ValueError(
                f"param group {i} of {type(optimizer).__name__} has no 'lr' (its settings: {keys or 'none'}): the "
                "range test and the schedules set each group's 'lr', which this optimizer does not read; give its "
                "groups an 'lr' that its step() uses as the learning rate"
            )
    for i, g in enumerate(groups):  # a negative one would train its group uphill, a NaN one silently as 1
        for k in ("lr", "lr_scale"):
            if k not in g:
                continue
            try:
                ok = math.isfinite(float(g[k])) and float(g[k]) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"param group {i}'s {k}={g[k]!r} must be a finite number >= 0 (the groups' LRs set "
                                 "their ratios, which every LR the test and the schedules set keeps)")
    if key == "lr_scale":
        return [float(g.get("lr_scale", 1.0)) for g in groups]
    if all(float(g["lr"]) == 0 for g in groups) and all("initial_lr" in g for g in groups):
        key = "initial_lr"
    top = max(float(g[key]) for g in groups)
    return [float(g[key]) / top if top > 0 else 1.0 for g in groups]


def _needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """True for optimizers whose ``step`` requires a closure (LBFGS): they re-evaluate the loss themselves.

    Read from the instance's ``step`` and from its class's: a wrapper put on the instance without
    ``functools.wraps`` (torch < 2.6 schedulers' step-order check, a user's patch) shows only ``(*args, **kwargs)``.
    """
    for step in (optimizer.step, getattr(type(optimizer), "step", None)):
        try:
            closure = inspect.signature(step).parameters.get("closure")  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if closure is not None and closure.default is inspect.Parameter.empty:
            return True
    return False


def _scaler_restorer(scaler: Any) -> Callable[[], None]:
    """Capture everything of the user's GradScaler that a range test changes; return a function that puts it back.

    ``state_dict()`` holds the scale, growth tracker and factors; it leaves out the per-optimizer stage, so a test
    stopped by an exception between ``unscale_`` and ``update`` would leave the optimizer marked UNSCALED (or
    STEPPED), and the user's next ``scaler.unscale_(opt)`` would raise "unscale_() has already been called on this
    optimizer since the last update()". That stage (torch's private ``_per_optimizer_states``, read only when it is
    there) and whether the scale tensor had been created yet (it is made lazily at the first ``scale()``) are put
    back too. A disabled scaler has nothing to put back.
    """
    state = scaler.state_dict()  # {} when disabled
    if not state:
        return lambda: None
    per_opt = getattr(scaler, "_per_optimizer_states", None)
    saved_per_opt = (
        {k: {**v, "found_inf_per_device": dict(v.get("found_inf_per_device", {}))} for k, v in per_opt.items()}
        if isinstance(per_opt, dict) else None
    )
    lazy = {name: getattr(scaler, name, False) is None for name in ("_scale", "_growth_tracker")}

    def restore() -> None:
        scaler.load_state_dict(state)
        if saved_per_opt is not None and isinstance(getattr(scaler, "_per_optimizer_states", None), dict):
            current = scaler._per_optimizer_states
            # ``update()`` replaces the dict with a fresh defaultdict: a copy of the current one keeps its factory
            fresh = copy.copy(current)
            fresh.clear()
            fresh.update({k: {**v, "found_inf_per_device": dict(v["found_inf_per_device"])}
                          for k, v in saved_per_opt.items()})
            scaler._per_optimizer_states = fresh
        for name, was_none in lazy.items():
            if was_none:  # made during the test: the scale starts again from init_scale (restored above)
                setattr(scaler, name, None)

    return restore


def _held_loaders(loader: Any) -> list[Any]:
    """``loader`` and the loaders it holds: a wrapper's ``.loader`` (``lrkit.train``'s, the Lightning callbacks'),
    read through, or the ``.loaders`` of a wrapper over several (the Lightning callbacks' over a dict or list of
    loaders)."""
    out, obj = [loader], loader
    for _ in range(8):
        if isinstance(obj, torch.utils.data.DataLoader) or not hasattr(obj, "__dict__"):
            break
        many = vars(obj).get("loaders")
        if isinstance(many, (list, tuple)):
            out.extend(many)
            break
        inner = vars(obj).get("loader")
        if inner is None or inner is obj:
            break
        out.append(inner)
        obj = inner
    return out


def _loader_generators(loader: Any) -> list[torch.Generator]:
    """The ``torch.Generator``s a DataLoader (or its sampler) shuffles with: iterating it advances them. A wrapper
    is read through (:func:`_held_loaders`)."""
    found: dict[int, torch.Generator] = {}
    for held in _held_loaders(loader):
        sampler = getattr(held, "sampler", None)
        batch_sampler = getattr(held, "batch_sampler", None)
        for obj in (held, sampler, batch_sampler, getattr(batch_sampler, "sampler", None)):
            gen = getattr(obj, "generator", None)
            if isinstance(gen, torch.Generator):
                found[id(gen)] = gen
    return list(found.values())


def _loader_epochs(*loaders: Any) -> list[tuple[Any, int]]:
    """The pass counters that iterating a loader advances and that choose its next order: accelerate's prepared
    loaders (``DataLoaderShard``, ``DataLoaderDispatcher``) count full passes in ``iteration`` and call
    ``set_epoch(iteration)`` at each pass's start, which reseeds a ``DistributedSampler`` or accelerate's
    ``SeedableRandomSampler`` (``DataLoaderConfiguration(use_seedable_sampler=True)``). Each with its value now, for
    the test to put back (else the next epoch trains on the order of a later one)."""
    found: dict[int, tuple[Any, int]] = {}
    for loader in loaders:
        value = getattr(loader, "iteration", None)
        if (type(value) is int and callable(getattr(loader, "set_epoch", None))
                and type(loader).__module__.startswith("accelerate")):
            found[id(loader)] = (loader, value)
    return list(found.values())


def _persistent_loaders(loader: Any) -> list[torch.utils.data.DataLoader]:
    """The DataLoaders behind ``loader`` (itself, or those a wrapper holds: :func:`_held_loaders`) that keep their
    worker processes between passes (``persistent_workers=True``)."""
    return [dl for dl in _held_loaders(loader) if isinstance(dl, torch.utils.data.DataLoader)
            and dl.persistent_workers and hasattr(dl, "_iterator")]


def _shut_workers(dl: torch.utils.data.DataLoader) -> None:
    """Shut down the worker processes of ``dl``'s kept iterator (``persistent_workers``) now and drop it: the next
    pass makes a new one. Left to the garbage collector, torch waits 5 s for each worker."""
    it, dl._iterator = getattr(dl, "_iterator", None), None
    shutdown = getattr(it, "_shutdown_workers", None)
    if callable(shutdown):
        shutdown()


class _OwnWorkers:
    """Runs the passes of a test over loaders with persistent workers on worker processes of its own.

    A ``DataLoader(persistent_workers=True)`` keeps the iterator of its first pass, and with it its workers, whose
    seeds were drawn when it was made and whose RNGs run on from pass to pass. A range test or trial that made it (or
    ran the user's on) would leave the user's next epoch with other worker seeds and augmentations than without the
    test, and would give each ``lr0="auto"`` trial other random augmentations. So the user's iterator (if any) is put
    aside untouched, the test's passes make their own, :meth:`fresh` shuts them down (the next pass makes new ones,
    seeded from the RNGs as they are then), and :meth:`restore` gives the user's back. A no-op for other loaders.
    """

    def __init__(self, *loaders: Any) -> None:
        found = {id(dl): dl for loader in loaders if loader is not None for dl in _persistent_loaders(loader)}
        self._saved = [(dl, dl._iterator) for dl in found.values()]
        for dl, _ in self._saved:
            dl._iterator = None

    def fresh(self) -> None:
        """Shut down the worker processes made since (the next pass over the loader starts new ones)."""
        for dl, _ in self._saved:
            _shut_workers(dl)

    def restore(self) -> None:
        """Shut down the test's workers and give each loader back the iterator it had (``None`` if it had none)."""
        self.fresh()
        for dl, it in self._saved:
            dl._iterator = it


def _close(batches: Any) -> None:
    """Close the generator of a test's batches: its loader iterator (and a DataLoader's worker processes) goes now,
    not when an exception's traceback, which holds the test's frame (IPython keeps the last one), is dropped."""
    if batches is not None:
        batches.close()


def _check_loss(loss: torch.Tensor) -> None:
    if loss.is_complex() or not loss.is_floating_point():
        raise ValueError(f"the loss must be a real floating-point scalar, got dtype {str(loss.dtype)[6:]}")
    if not loss.requires_grad:
        raise ValueError(
            f"the loss ({loss.item():.4g}) does not require grad, so the range test cannot train on it: was it "
            "computed under torch.no_grad() or .detach()ed in loss_fn/step_fn, or are all the model's parameters "
            "frozen (requires_grad=False)?"
        )


def _grad_versions(params: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor | None, int]]:
    """Each parameter with its ``.grad`` and that gradient's version counter, before the first batch's loss
    (:func:`_check_no_backward`)."""
    return [(p, p.grad, -1 if p.grad is None else p.grad._version) for p in params]


def _check_no_backward(before: list[tuple[torch.Tensor, torch.Tensor | None, int]], loss_fn: Any,
                       step_fn: Any) -> None:
    """A ``step_fn`` (or ``loss_fn``) that called ``loss.backward()`` itself, found by the gradients it wrote before
    the test's own backward (:func:`_grad_versions`): that backward then fails with torch's "Trying to backward
    through the graph a second time", or, after ``backward(retain_graph=True)``, silently doubles every gradient."""
    changed = [p for p, g, v in before if p.grad is not g or (g is not None and g._version != v)]
    if not changed:
        return
    who = "step_fn" if step_fn is not None else "loss_fn" if loss_fn is not None else "the model's forward"
    raise ValueError(
        f"{who} called backward() itself: {len(changed)} of the optimizer's {len(before)} parameters got a gradient "
        f"while it ran, before the range test's own backward. Return the loss without calling loss.backward() (nor "
        "optimizer.step() or zero_grad()): find_lr calls backward, zero_grad and step itself, and a second backward "
        "would fail (\"backward through the graph a second time\") or, after retain_graph=True, double every "
        "gradient"
    )


def _kind(value: Any) -> str:
    """A value as a short phrase for an error message: its class name, and ``a class`` for a class."""
    if isinstance(value, type):
        return f"the class {value.__module__}.{value.__qualname__}"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _is_optimizer(value: Any) -> bool:
    return not isinstance(value, type) and isinstance(getattr(value, "param_groups", None), list) and callable(
        getattr(value, "step", None))


def _takes_set_to_none(optimizer: Any) -> bool:
    """Whether ``optimizer.zero_grad(set_to_none=True)`` can be called, as every torch optimizer and wrapper of one
    allows (also ``True`` where the signature cannot be read: only a clear "no" refuses)."""
    zero_grad = getattr(optimizer, "zero_grad", None)
    if not callable(zero_grad):
        return False
    try:
        params = inspect.signature(zero_grad).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "set_to_none" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _check_callable(name: str, fn: Any, call: str, arity: int = 2) -> None:
    """``fn`` must be a function taking ``arity`` positional arguments (``call`` shows how it is called); a loss
    module's class (``torch.nn.CrossEntropyLoss`` without its parentheses) is named with the instance to pass, as
    calling it would build a module from the output and target (torch: "Boolean value of Tensor with more than one
    value is ambiguous")."""
    if fn is None:
        return
    if not callable(fn):
        raise ValueError(f"{name}={fn!r} is not a function: pass a callable {call} (or leave {name} out)")
    if isinstance(fn, type) and issubclass(fn, torch.nn.Module):
        raise ValueError(
            f"{name} is {_kind(fn)}, not an instance: pass {name}={fn.__name__}() (a {fn.__name__} object, called "
            f"as {call})"
        )
    try:
        inspect.signature(fn).bind(*[None] * arity)
    except TypeError as e:
        raise ValueError(f"{name} cannot be called as {call}: {e}") from None
    except ValueError:  # no signature to read (a builtin): it is called as it is
        pass


def _check_sweep(start_lr: Any, end_lr: Any, num_steps: Any, mode: Any, rule: Any) -> tuple[float, float, int]:
    """The range test's sweep settings checked, each error naming the value and what would be valid (``find_lr``'s,
    and the Lightning callbacks' when they are built); ``(start_lr, end_lr, num_steps)`` as numbers.

    >>> _check_sweep("1e-7", 10, 100, "exp", "robust")
    (1e-07, 10.0, 100)
    """
    start_lr = check_positive("start_lr", start_lr)
    end_lr = check_positive("end_lr", end_lr)
    if start_lr >= end_lr:
        raise ValueError(f"end_lr={end_lr:g} must be greater than start_lr={start_lr:g}")
    for key, value, valid in (("mode", mode, ("exp", "linear")), ("rule", rule, sorted(_suggest.RULES))):
        if not isinstance(value, str):  # `in` would be ambiguous for an array, unhashable for a list
            raise ValueError(f"{key}={value!r:.80} must be a name, one of: {', '.join(valid)}")
    if mode not in ("exp", "linear"):
        lightning = " (mode='exponential' is Lightning's name: lrkit's is mode='exp')" if mode == "exponential" else ""
        raise ValueError(f"{unknown_name_error('mode', mode, ['exp', 'linear'])}{lightning}")
    if rule not in _suggest.RULES:
        raise _suggest.unknown_rule_error(rule)
    # (allocated up front)
    num_steps = check_int("num_steps", num_steps, MIN_NUM_STEPS, " (100 is typical)", maximum=_MAX_STEPS)
    return start_lr, end_lr, num_steps


def _configure_optimizers_advice(value: Any) -> str | None:
    """What to pass when ``value`` is what a LightningModule's ``configure_optimizers()`` returns around its optimizer
    (a dict with an ``"optimizer"`` entry, a list/tuple of optimizers, an ``([optimizers], [schedulers])`` pair);
    ``None`` for anything else."""
    if isinstance(value, Mapping) and _is_optimizer(value.get("optimizer")):
        return ("a dict with an 'optimizer' entry, as a LightningModule's configure_optimizers() returns: pass that "
                "entry, configure_optimizers()['optimizer'] (its 'lr_scheduler' is not stepped by the range test)")
    if not isinstance(value, (list, tuple)) or not value:
        return None
    if len(value) == 2 and isinstance(value[0], (list, tuple)) and value[0] and all(map(_is_optimizer, value[0])):
        return ("an ([optimizers], [schedulers]) pair, as a LightningModule's configure_optimizers() returns: pass "
                "its first optimizer, configure_optimizers()[0][0]")
    if all(map(_is_optimizer, value)):
        if len(value) == 1:
            return f"a {type(value).__name__} holding an optimizer, as configure_optimizers() may return: pass it, [0]"
        return (f"a {type(value).__name__} of {len(value)} optimizers: find_lr tests one, e.g. [0]; for several, "
                "run it once per optimizer")
    if all(isinstance(v, Mapping) and _is_optimizer(v.get("optimizer")) for v in value):
        return (f"a {type(value).__name__} of {len(value)} dicts with an 'optimizer' entry: pass one of them, "
                "e.g. configure_optimizers()[0]['optimizer']")
    return None


def _check_arguments(model: Any, optimizer: Any, train_loader: Any, loss_fn: Any, step_fn: Any, *,
                     order: str = "find_lr(model, optimizer, train_loader, ...)", warn: bool = True) -> None:
    """The three positional arguments and the loss functions, each named with what it must be, before anything
    runs (torch would say ``AttributeError: 'list' object has no attribute 'param_groups'``, or a wrong-arity
    ``step_fn`` would fail inside the first step). ``order`` is the call the messages show; ``warn=False`` leaves
    the Dataset-for-a-loader warning to the ``find_lr`` call that follows (``choose_lr0``'s)."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model is {_kind(model)}, not a torch.nn.Module: the arguments are {order}")
    if not _is_optimizer(optimizer):
        if _is_optimizer(train_loader):
            raise ValueError(
                f"optimizer is {_kind(optimizer)} and train_loader is an optimizer: the arguments are {order}"
            )
        lightning = _configure_optimizers_advice(optimizer)
        if lightning is not None:
            raise ValueError(f"optimizer is {_kind(optimizer)}, not an optimizer: {lightning}")
        if isinstance(optimizer, type) or isinstance(optimizer, (torch.Tensor, Iterable)):
            hint = "not an instance" if isinstance(optimizer, type) else "not an optimizer (model.parameters()?)"
            raise ValueError(
                f"optimizer is {_kind(optimizer)}, {hint}: pass an optimizer built over the model's parameters, "
                "e.g. torch.optim.SGD(model.parameters(), lr=0.1)"
            )
        raise ValueError(
            f"optimizer is {_kind(optimizer)}, not a torch optimizer (it needs param_groups and step()): pass e.g. "
            f"torch.optim.AdamW(model.parameters(), lr=1e-3); the arguments are {order}"
        )
    if not isinstance(optimizer, torch.optim.Optimizer) and not _takes_set_to_none(optimizer):
        # fastai's learn.opt: param_groups and step(), but its own zero_grad(), which torch's set_to_none would
        # fail inside the first step with a bare TypeError
        fastai = " (a fastai Learner's learn.opt is fastai's own optimizer)" if type(optimizer).__module__.startswith(
            "fastai") else ""
        raise ValueError(
            f"optimizer is {_kind(optimizer)}, whose zero_grad() takes no set_to_none: not a torch optimizer{fastai}; "
            "pass a torch.optim optimizer over the model's parameters, e.g. torch.optim.AdamW(model.parameters(), "
            f"lr=1e-3); the arguments are {order}"
        )
    if (not isinstance(train_loader, Iterable) and not callable(getattr(train_loader, "__getitem__", None))) or \
            getattr(train_loader, "ndim", None) == 0:  # a 0-d tensor / numpy scalar: iterating it raises in torch
        raise ValueError(
            f"train_loader is {_kind(train_loader)}, which cannot be iterated: pass a DataLoader or a list of "
            "batches"
        )
    _check_callable("loss_fn", loss_fn, "loss_fn(model(x), y) -> scalar loss")
    _check_callable("step_fn", step_fn, "step_fn(model, batch) -> scalar loss")
    if warn and isinstance(train_loader, torch.utils.data.Dataset) and \
            not isinstance(train_loader, torch.utils.data.DataLoader):
        warnings.warn(
            f"train_loader is a {type(train_loader).__name__} (a Dataset, not a DataLoader): each step then trains on "
            "one unbatched item, not a batch; pass DataLoader(dataset, batch_size=32, shuffle=True) for a curve of "
            "the training you run",
            UserWarning,
            stacklevel=4,  # the call of find_lr (past find_lr's keyword check, _peer_keywords)
        )
    hooks = _user_step_hooks(optimizer) if warn else []
    if hooks:
        warnings.warn(
            f"the optimizer has step hooks of your own ({', '.join(hooks)}): they run at each of the range test's "
            "steps, and what they change outside the model and the optimizer (an EMA copy of the weights, a step "
            "counter, a log) is not put back afterwards — find_lr restores only what it owns. Remove them for the "
            "test (handle.remove()) and register them again after it, or update an EMA copy from your loop",
            UserWarning,
            stacklevel=4,
        )


def _user_step_hooks(optimizer: Any) -> list[str]:
    """The names of the step hooks (pre and post, this optimizer's and torch's global ones) that are not lrkit's own
    (its schedules' step counters, the monitor's order check): code of the user's that every step of a range test
    runs.

    >>> import torch
    >>> opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    >>> def ema_update(optimizer, args, kwargs): pass
    >>> handle = opt.register_step_post_hook(ema_update)
    >>> _user_step_hooks(opt)
    ['ema_update']
    >>> handle.remove(); _user_step_hooks(opt)
    []
    """
    from torch.optim import optimizer as _optim

    tables = [getattr(_optim, "_global_optimizer_pre_hooks", {}), getattr(_optim, "_global_optimizer_post_hooks", {})]
    for opt in (optimizer, *inner_optimizers(optimizer, own_state=False)):
        tables += [getattr(opt, "_optimizer_step_pre_hooks", None), getattr(opt, "_optimizer_step_post_hooks", None)]
    names: list[str] = []
    for table in tables:
        for hook in (table.values() if isinstance(table, dict) else ()):
            inner = hook
            while isinstance(inner, functools.partial):
                inner = inner.func
            if _lrkit_code(inner):
                continue
            name = (getattr(inner, "__qualname__", None) or type(inner).__name__).rsplit("<locals>.", 1)[-1]
            if name not in names:
                names.append(name)
    return names


def _lrkit_code(hook: Any) -> bool:
    """Whether ``hook`` (a function, a bound method or a callable object) is code from lrkit's own package (read
    from its code object's file, so a user's function is never taken for lrkit's)."""
    func = getattr(hook, "__func__", hook)
    if getattr(func, "__code__", None) is None:  # a callable object: its class's __call__
        func = next((c.__dict__["__call__"] for c in type(hook).__mro__ if "__call__" in c.__dict__), None)
    code = getattr(func, "__code__", None)
    return code is not None and in_lrkit(code.co_filename)


def _check_grad_mode(call: str) -> None:
    """The range test trains: called inside ``torch.no_grad()`` or ``torch.inference_mode()`` (an evaluation block, a
    hook that runs under one) no loss could require grad, and under inference mode the snapshot and its restore
    would make inference tensors of the copies; say so before anything is touched."""
    where = ("torch.inference_mode()" if torch.is_inference_mode_enabled()
             else None if torch.is_grad_enabled() else "torch.no_grad() (or torch.set_grad_enabled(False))")
    if where is not None:
        raise ValueError(
            f"{call} was called inside {where}: gradients are off, so the range test cannot train. Call it outside "
            "that block (with gradients on, as a training step runs)"
        )


def _check_materialized(model: torch.nn.Module, call: str) -> None:
    """A lazy module's parameters (``nn.LazyLinear``, ``nn.LazyConv2d``, ...) exist only after a forward pass: the
    snapshot and the range test cannot copy or step them, so say how to make them (torch's own error surfaces deep
    inside the snapshot)."""
    # the mixin, not UninitializedParameter: under torch < 2.5 Parameter's metaclass answers isinstance(...) with True
    # for any tensor flagged _is_param, a DTensor parameter of a tensor-parallel model included
    if any(isinstance(p, torch.nn.parameter.UninitializedTensorMixin) for p in model.parameters()):
        raise ValueError(
            "the model has uninitialized lazy parameters (LazyLinear, LazyConv2d, ...): run one forward pass, e.g. "
            f"model(x) on a batch, before building the optimizer and calling {call}"
        )


def _check_sweepable(optimizer: torch.optim.Optimizer, call: str) -> None:
    """An optimizer that reads ``lr`` only once cannot be range-tested: ``torch.optim.Rprop`` sets each parameter's
    first step size to ``lr`` and adapts it by itself from then on (``state["step_size"]``), so every LR the test
    writes after the first step would change nothing and the curve (and its suggestion) would mean nothing."""
    for opt in every_optimizer(optimizer):
        if isinstance(opt, torch.optim.Rprop):
            raise ValueError(
                f"{call} cannot sweep the learning rate of torch.optim.Rprop: Rprop reads lr only to set each "
                "parameter's first step size (state['step_size']) and adapts the step sizes by itself from then on "
                "(x etaplus / x etaminus per step, within step_sizes), so the LRs a range test writes would change "
                "nothing. Rprop needs no LR search: its lr is only the initial step size (default 0.01), to be used "
                "as it is (with lrkit.train, an explicit lr0)"
            )


def _asgd_groups(optimizer: torch.optim.Optimizer) -> list[tuple[torch.optim.Optimizer, dict[str, Any]]]:
    """The param groups of ``torch.optim.ASGD`` optimizers in ``optimizer`` (itself or one it wraps), with their
    optimizer: ASGD steps with ``state["eta"]``, which it derives from ``lr`` *after* each step (see
    :func:`_sync_asgd_eta`)."""
    return [(opt, g) for opt in every_optimizer(optimizer)
            if isinstance(opt, torch.optim.ASGD) for g in opt.param_groups]


def _sync_asgd_eta(groups: list[tuple[torch.optim.Optimizer, dict[str, Any]]]) -> None:
    """Give each ASGD parameter the step size ``eta`` its group's new ``lr`` means at its step count, as ASGD computes
    it (``lr / (1 + lambd * lr * step) ** alpha``): ASGD updates ``eta`` from ``lr`` only after a step, so without
    this each range-test step would train at the previous step's LR."""
    for opt, group in groups:
        lr = float(group["lr"])
        lambd, alpha = float(group["lambd"]), float(group["alpha"])
        for p in group["params"]:
            state = opt.state.get(p)
            if not state or "eta" not in state:
                continue  # a fresh parameter: its first step reads lr itself
            step = state.get("step", 0)
            if isinstance(step, torch.Tensor) and not step.is_cpu and isinstance(state["eta"], torch.Tensor):
                # on the device, as ASGD's capturable branch computes it: no host read per parameter and step
                state["eta"].copy_(lr / (1 + lambd * lr * step) ** alpha)
                continue
            eta = lr / ((1 + lambd * lr * float(step)) ** alpha)
            if isinstance(state["eta"], torch.Tensor):
                state["eta"].fill_(eta)
            else:
                state["eta"] = eta


#: The fewest steps a range test may run (``num_steps``): fewer cannot show a curve; ``lr0="auto"`` needs as many.
MIN_NUM_STEPS = 10
#: The most steps a range test takes (its LRs are allocated up front); 100 is typical.
_MAX_STEPS = 1_000_000
#: Steps before the divergence check's best smoothed loss counts (a non-finite loss stops the test at any step).
_DIVERGE_WARMUP = 4


def _schedule(start_lr: float, end_lr: float, num_steps: int, mode: str) -> np.ndarray:
    t = np.linspace(0.0, 1.0, num_steps)
    if mode == "exp":
        return start_lr * (end_lr / start_lr) ** t
    return start_lr + (end_lr - start_lr) * t


def _check_device(device: torch.device | str, hint: str = "pass device=None to use the model's device") -> torch.device:
    """``device`` as a ``torch.device`` that this torch can allocate on; a ``ValueError`` naming it and ending with
    ``hint`` otherwise (torch says "AssertionError: Torch not compiled with CUDA enabled" at the first batch)."""
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)
    except Exception as e:  # RuntimeError (a bad name), AssertionError (not compiled with it), NotImplementedError
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"device={str(device)!r} cannot be used: {why} (CUDA available: {torch.cuda.is_available()}); {hint}"
        ) from None
    return dev


def _check_model_on(model: torch.nn.Module, dev: torch.device) -> None:
    """``device`` is where find_lr sends the batches, not where it moves the model: a model none of whose
    parameters are on ``dev`` would fail at the first forward pass with torch's "Expected all tensors to be on the
    same device"; say so before anything runs. (A model split over several devices takes its batches on one.)"""
    devices = {p.device for p in model.parameters()}
    if any(d.type == "meta" for d in devices):  # weights loaded by hooks as the forward runs (accelerate's offload)
        return
    if devices and not any(d.type == dev.type and (d.index is None or dev.index is None or d.index == dev.index)
                           for d in devices):
        where = ", ".join(sorted(str(d) for d in devices))
        raise ValueError(
            f"device={str(dev)!r} is where find_lr sends the batches, but the model's parameters are on {where}: "
            f"move the model first (model.to({str(dev)!r})), or pass device=None to "
            "send the batches to the model's device"
        )


def _dist_mean(value: float, device: torch.device) -> float:
    """The mean of ``value`` over all ranks (call only when torch.distributed is running), failing with find_lr's
    error."""
    return rank_mean(value, device, lambda t: _all_reduce(t, "the step's loss"))


def _step_mean(value: float, fetch_error: Exception | None, device: torch.device, call: str = "find_lr") -> float:
    """The step's loss ``value`` averaged over the ranks, in one all-reduce that also carries each rank's
    ``fetch_error`` flag: whether drawing the next step's batches failed there (a one-shot iterator that ran out on
    that rank's shard, a sample its loader could not load). A rank whose loader fails at a later step then stops every
    rank at once: it raises its own error and every other rank a ``ValueError`` naming it, where before the others
    went on into the next step's gradient all-reduce (DDP's, FSDP's) and waited there for the process group's timeout
    (30 minutes by default). ``call`` names the caller (``choose_lr0``'s trials draw their batches the same way).
    Call only when torch.distributed is running."""
    t, who = flagged_all_reduce([value], fetch_error, device, "the step's loss", call)
    if who is not None:
        dist = torch.distributed
        raise ValueError(
            f"{call} under torch.distributed (rank {dist.get_rank()} of {dist.get_world_size()}) stopped on every "
            f"rank: train_loader failed to give the next step's batches on {who} (see that rank's error: a one-shot "
            "iterator that ran out, a sample its loader could not load); every rank's train_loader must give "
            "batches for every step (a re-iterable loader, a DataLoader with a DistributedSampler, is cycled as "
            "needed)"
        )
    return float(t[0].item()) / torch.distributed.get_world_size()


#: The settings every rank must give ``find_lr`` alike, in the order :func:`_same_settings_on_every_rank` sends them.
_SAME_ON_EVERY_RANK = ("start_lr", "end_lr", "num_steps", "mode", "rule", "diverge_factor", "accumulation_steps",
                       "max_grad_norm")


def _settings_all_reduce(t: torch.Tensor) -> None:
    _all_reduce(t, "the range test's settings")


def _same_settings_on_every_rank(device: torch.device, **settings: Any) -> None:
    """Every rank must run the same test: a rank with another ``num_steps``, ``accumulation_steps`` or
    ``diverge_factor`` would take a different number of steps (DDP's gradient all-reduces and the loss means then
    pair up wrongly: gloo aborts on a collective mismatch, or a rank waits for the timeout), and one with another
    ``start_lr``/``end_lr``/``mode``/``rule`` or ``max_grad_norm`` would return another suggestion from a curve the
    ranks ran together. One small all-reduce, once; on a mismatch every rank raises the same error, naming them. A rank
    whose argument checks failed takes part as a failed rank (:func:`_checks_failed_on_this_rank`): the others raise
    an error naming it (the call ``choose_lr0`` when it runs the range test)."""
    assert tuple(settings) == _SAME_ON_EVERY_RANK  # every rank's row must line up: the keys, in this order
    failed = same_settings("find_lr", settings, device,
                           names={"mode": ("exp", "linear"), "rule": tuple(sorted(_suggest.RULES))},
                           all_reduce=_settings_all_reduce)
    if failed:
        raise failed_error("choose_lr0" if _CALLER_SNAPSHOT.get() is not None else "find_lr", list(failed))


def _checks_failed_on_this_rank(model: Any) -> None:
    """Under torch.distributed, when ``find_lr``'s argument checks failed on this rank (or a check of ``choose_lr0``'s
    between its own settings check and its range test's): the other ranks go on into the range test's settings check
    (:func:`_same_settings_on_every_rank`) and would wait there for the process group's timeout; take part in it as a
    failed rank, so they stop at once naming this one. The caller then raises its own error."""
    if _distributed():
        failed_check("find_lr", _SAME_ON_EVERY_RANK, model, all_reduce=_settings_all_reduce)


def _fingerprint(batches: list[Any]) -> tuple[float, float]:
    """Two numbers that tell batches apart (sums over a strided sample of every tensor in them, at most 65,536
    elements each, and over a checksum of every string in them — text a ``step_fn`` tokenizes, beside label tensors
    that may agree between shards — the second weighted by position): equal on ranks that got the same batches.
    ``nan`` when the batches hold no tensor or string it can read (never equal, so nothing is said)."""
    tensors: list[torch.Tensor] = []
    strings: list[str | bytes] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            tensors.append(obj)
        elif isinstance(obj, (str, bytes)):
            strings.append(obj)
        elif isinstance(obj, Mapping):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(batches)
    total, weighted = 0.0, 0.0
    try:
        with torch.no_grad():
            for t in tensors:
                if t.is_complex() or t.is_sparse or t.numel() == 0:
                    continue
                x = t.detach().reshape(-1)
                x = x[:: max(1, x.numel() // 65536)].to(torch.float64)
                w = torch.arange(x.numel(), dtype=torch.float64, device=x.device) % 251 + 1
                total += float(x.sum()) + t.numel()
                weighted += float((x * w).sum())
    except Exception:  # a layout it cannot read (nested, meta, ...): nothing to compare
        return math.nan, math.nan
    for i, s in enumerate(strings):  # crc32, not hash(): str hashes differ between processes (PYTHONHASHSEED)
        check = zlib.crc32(s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s)
        total += check
        weighted += check * (i % 251 + 1)
    return (total, weighted) if tensors or strings else (math.nan, math.nan)


def _first_batches_on_every_rank(fetch: Callable[[], list[Any]], device: torch.device) -> tuple[list[Any], str | None]:
    """``fetch()`` on every rank; if it fails on any rank, every rank raises. Also returns a warning when every rank
    got the same first batches (``None`` otherwise).

    Without this, a rank whose loader is empty raises at once while the others wait in the first collective (DDP's
    gradient all-reduce, or the loss mean) until the process group times out, 30 minutes later. One all-reduce, once,
    which also carries each rank's :func:`_fingerprint` of its batches: identical on every rank means the loader is not
    sharded (no ``DistributedSampler``), which nothing else would reveal.
    """
    dist = torch.distributed
    rank, world = dist.get_rank(), dist.get_world_size()
    error: Exception | None = None
    batches: list[Any] = []
    try:
        batches = fetch()
    except Exception as e:  # re-raised below, after every rank has heard of it
        error = e
    dev = device if dist.get_backend() == "nccl" else torch.device("cpu")
    status = torch.zeros(world, 3, dtype=torch.float64, device=dev)
    status[rank, 0] = float(error is not None)
    if error is None:
        status[rank, 1:] = torch.tensor(_fingerprint(batches), dtype=torch.float64)
    _all_reduce(status, "the first batches' status")
    table = status.cpu().tolist()
    bad = [r for r, row in enumerate(table) if row[0]]
    if error is not None:
        if isinstance(error, ValueError):
            raise ValueError(f"on rank {rank}: {error}") from error
        raise error
    if bad:
        raise ValueError(
            f"the range test stopped on every rank: rank {', '.join(map(str, bad))} could not give its first batch "
            "(a train_loader with no batches there? see that rank's error); every rank needs a non-empty shard"
        )
    note = None
    if world > 1 and all(row[1:] == table[0][1:] for row in table) and all(map(math.isfinite, table[0][1:])):
        note = (
            f"find_lr under torch.distributed ({world} ranks): every rank got the same first batch, so train_loader "
            "does not seem to be sharded — without a DistributedSampler (DataLoader(dataset, "
            "sampler=DistributedSampler(dataset))) every rank steps on the same data, and the test (like a training "
            f"loop on that loader) runs at one rank's batch size, not the {world} ranks' together: the suggestion is "
            "for that batch size"
        )
    return batches, note


def _first_loss_on_every_rank(failed: bool, device: torch.device) -> None:
    """After the first batch's forward and loss on this rank (``failed``: they raised), before its backward: one
    all-reduce of a flag, so that a model or ``loss_fn`` that fails on one rank's first batch only (a shape error, a
    bad target there) stops every rank at once. Without it the others went on into DDP's/FSDP's gradient all-reduce
    and waited there for the process group's timeout. The failing rank raises its own error afterwards; every other
    rank raises a ``ValueError`` naming it."""
    dist = torch.distributed
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = device if dist.get_backend() == "nccl" else torch.device("cpu")
    flags = torch.zeros(world, dtype=torch.float64, device=dev)
    flags[rank] = float(failed)
    _all_reduce(flags, "the first loss's status")
    bad = [r for r, f in enumerate(flags.cpu().tolist()) if f]
    if bad and not failed:
        who = f"rank {bad[0]}" if len(bad) == 1 else f"ranks {', '.join(map(str, bad))}"
        raise ValueError(
            f"find_lr under torch.distributed (rank {rank} of {world}) stopped on every rank at the first step: the "
            f"model or loss on {who}'s first batch raised (see that rank's error)"
        )


#: Wrappers that average (or shard) the gradients over ranks themselves, by class name anywhere in a module's MRO.
_GRAD_SYNCING = frozenset({"DistributedDataParallel", "FullyShardedDataParallel", "FSDPModule", "DeepSpeedEngine"})


#: The context a micro-batch whose gradients are averaged over the ranks at once runs in (nothing to do).
_IN_SYNC = nullcontext()


def _defers_sync(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a ``DistributedDataParallel`` (or ``torch.compile`` of one, whose ``no_sync()`` and
    ``static_graph`` are the wrapper's) whose ``no_sync()`` lets the micro-batches of one optimizer step accumulate
    their gradients locally, to be averaged over the ranks once, at the last one."""
    return isinstance(getattr(model, "_orig_mod", model), torch.nn.parallel.DistributedDataParallel)


def _may_skip_sync(model: torch.nn.Module) -> bool:
    """Whether the next micro-batch of ``model`` (a ``DistributedDataParallel``) may run under ``no_sync()``: not
    before the first backward of a ``static_graph=True`` wrapper, whose first iteration must all-reduce (torch's
    reducer fails an internal assert on ``expect_autograd_hooks_`` otherwise); after it, yes."""
    return not getattr(model, "static_graph", False) or getattr(model, "_static_graph_delay_allreduce_enqueued", True)


def _has_syncing_wrapper(model: torch.nn.Module) -> bool:
    """Whether ``model`` is (or holds) a wrapper that averages or shards the gradients over ranks."""
    return any(c.__name__ in _GRAD_SYNCING for m in model.modules() for c in type(m).__mro__)


def _has_dtensors(model: torch.nn.Module) -> bool:
    """Whether ``model`` has sharded (DTensor) parameters."""
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


def _syncs_gradients(model: torch.nn.Module) -> bool:
    """Whether the ranks' gradients are averaged or sharded for ``model`` (a wrapper, or DTensor parameters): then
    the ranks' local gradients are not compared by :func:`_unsynced_gradients_note`."""
    return _has_syncing_wrapper(model) or _has_dtensors(model)


def _tensor_parallel(model: torch.nn.Module) -> bool:
    """Whether ``model`` is split over the ranks by tensor parallelism alone (DTensor parameters, no data-parallel
    wrapper: ``parallelize_module``): then every rank reads the same batch by design, and the ranks getting the same
    first batch is not a loader without a ``DistributedSampler``."""
    return _has_dtensors(model) and not _has_syncing_wrapper(model)


def _unsynced_gradients_note(params: list[torch.Tensor], device: torch.device) -> str | None:
    """After the first step's backward, on a model with no gradient-syncing wrapper: a warning when the gradients
    differ between ranks (nothing averages them: the model passed is not the DDP-wrapped one). One all-reduce, once;
    every rank calls it (every rank holds the same model)."""
    dist = torch.distributed
    rank, world = dist.get_rank(), dist.get_world_size()
    table = torch.zeros(world, 2, dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu")
    table[rank] = torch.tensor(_fingerprint([p.grad for p in params if p.grad is not None]), dtype=torch.float64)
    _all_reduce(table, "the first step's gradient check")
    rows = table.cpu().tolist()
    if not all(math.isfinite(v) for row in rows for v in row) or all(row == rows[0] for row in rows):
        return None
    return (
        f"find_lr under torch.distributed ({world} ranks): the model is not wrapped in DistributedDataParallel (or "
        "FSDP) and its gradients differ between ranks after the first step: nothing averages them, so each rank's "
        f"copy steps on its own shard alone, the curve is the mean of {world} separate tests at one rank's batch size, "
        "and the ranks' weights drift apart during it (they are restored afterwards). Pass the model your training "
        "steps: the DDP-wrapped one, not model.module"
    )


def _no_gradient_note(params: list[torch.Tensor]) -> str | None:
    """After the first step's backward (one process): a warning when no parameter the optimizer steps got a non-zero
    gradient — the loss does not depend on them (frozen, left out of the optimizer, or detached from the loss), so the
    curve moves with the batches alone and its suggestion means nothing. Stops at the first non-zero gradient."""
    grads = [p.grad for p in params if p.grad is not None]
    for g in grads:
        if bool((g.coalesce().values() if g.is_sparse else g).ne(0).any()):
            return None
    return (
        f"find_lr: after the first step's backward none of the {len(params)} parameters the optimizer steps has a "
        f"non-zero gradient ({len(grads)} with a gradient of zeros, {len(params) - len(grads)} without one): the loss "
        "does not depend on what the optimizer steps, so the curve moves with the batches alone and its suggestion "
        "means nothing. Are those parameters frozen (requires_grad=False), is the optimizer built over other "
        "parameters than the loss uses, or is the loss detached from them?"
    )


def _check_groups(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """Refuse param groups the range test cannot run on, naming the parameter or group; return the loss's sign.

    ``-1.0`` when every group has ``maximize=True`` (the optimizer ascends what ``loss_fn``/``step_fn`` returns, so
    the quantity it lowers is its negative), else ``1.0``.
    """
    from lrkit.scaling import bare_param_names

    names = bare_param_names(model)  # the user's names, without a wrapper's "module." / "_orig_mod."

    def name(p: torch.Tensor) -> str:
        return repr(names[id(p)]) if id(p) in names else f"of shape {tuple(p.shape)} (not the model's)"

    where: dict[int, int] = {}
    for gi, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            if id(p) in where:
                other = where[id(p)]
                place = f"groups {other} and {gi}" if other != gi else f"group {gi} twice"
                raise ValueError(
                    f"parameter {name(p)} is in param {place}: the optimizer would step it more than once per step "
                    "(torch refuses this when the groups are built, so it was added to a group's 'params' list "
                    "since); keep each parameter in one group"
                )
            where[id(p)] = gi
    params = [p for g in optimizer.param_groups for p in g["params"]]
    # (a model frozen as a whole is named at the first backward: its loss does not require grad)
    if params and not any(p.requires_grad for p in params) and any(p.requires_grad for p in model.parameters()):
        shown = ", ".join(name(p) for p in params[:4]) + (", ..." if len(params) > 4 else "")
        raise ValueError(
            f"every parameter the optimizer holds has requires_grad=False ({shown}), so the range test could not "
            "change the model: unfreeze them (p.requires_grad_(True)) or build the optimizer on the trainable ones"
        )
    return maximize_sign(optimizer, "the range test needs one direction to judge the loss by")


def _adaptive_step_note(optimizer: torch.optim.Optimizer) -> str | None:
    """A note for optimizers that adapt their own step size (Prodigy, D-Adaptation): their ``lr`` is a multiplier."""
    if not adapts_step_size(optimizer):
        return None
    name = type(optimizer).__name__
    d = optimizer.param_groups[0].get("d")
    now = f", now {float(d):.3g}" if isinstance(d, (int, float)) else ""
    return (
        f"{name} adapts its own step size (its estimate d{now}): its lr is a multiplier of d, not an LR, and 1.0 is "
        "the value it is designed for. The range test swept that multiplier while d was still adapting, so its "
        "suggestion is not an LR to train with: keep lr=1.0 (tune d_coef if at all), or run find_lr with a "
        "non-adaptive optimizer (SGD, AdamW) to find that optimizer's LR"
    )


def _line_search_note(optimizer: torch.optim.Optimizer) -> str | None:
    """A note for LBFGS with a line search: the search picks each step's length, ``lr`` is only its first trial."""
    searches = {g.get("line_search_fn") for g in optimizer.param_groups} - {None}
    if not isinstance(optimizer, torch.optim.LBFGS) or not searches:
        return None
    return (
        f"{type(optimizer).__name__} with line_search_fn={sorted(searches)[0]!r} chooses each step's length by "
        "its line search, and its lr is only the first trial step of that search: the range test's curve shows "
        "training progress rather than the loss against the LR, so its suggestion is not an LR to train with. Keep "
        "lr=1 (torch's default) with the line search, or run find_lr with line_search_fn=None to pick a fixed step"
    )


def _schedule_free_train_mode(optimizer: torch.optim.Optimizer) -> None:
    """Ready a schedule-free optimizer (``optimizer.train()``/``.eval()``, Defazio et al. 2024) for the test.

    In eval mode its ``step`` refuses to run (the parameters hold the average x, not the point y gradients are
    taken at), so it is put in train mode, as the model is; its ``warmup_steps`` would scale every LR by
    ``(k + 1) / warmup_steps`` inside ``step``, so the sweep would not be the LRs recorded: warmup is switched off.
    Called after the snapshot, which puts both back.
    """
    groups = optimizer.param_groups
    in_eval = getattr(optimizer, "train_mode", None) is False or any(g.get("train_mode") is False for g in groups)
    train = getattr(optimizer, "train", None)
    if in_eval and callable(train):
        train()
    for group in groups:
        if "train_mode" in group and group.get("warmup_steps"):
            group["warmup_steps"] = 0


#: A snapshot :func:`lrkit.train.auto.choose_lr0` already holds (``rng=True``) of exactly the state it calls
#: :func:`find_lr` on: that call restores from it instead of capturing its own, so the state is copied once, not twice.
_CALLER_SNAPSHOT: ContextVar[Snapshot | None] = ContextVar("_CALLER_SNAPSHOT", default=None)
#: How the range test's quality warnings (a curve too short or too flat to judge) name the settings they advise
#: changing, for a caller that runs the test with settings of its own: ``(names, suffix)``, ``names`` mapping
#: ``start_lr`` / ``num_steps`` / ``end_lr`` to the caller's words (``choose_lr0``: ``finder_kwargs['num_steps']``),
#: ``suffix`` a sentence added to each (``lrkit.train``, whose lr0="auto" range test cannot be set). ``None``:
#: ``find_lr``'s own names.
_QUALITY_WORDS: ContextVar[tuple[Mapping[str, str], str] | None] = ContextVar("_QUALITY_WORDS", default=None)


def _caller_snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Snapshot | None:
    """The caller's snapshot (:data:`_CALLER_SNAPSHOT`) when it is of ``model`` and ``optimizer`` with the RNGs, taken
    out so that it serves this one call only (not a ``find_lr`` a ``step_fn`` might run inside it)."""
    snapshot = _CALLER_SNAPSHOT.get()
    if snapshot is None or snapshot.model is not model or snapshot.optimizer is not optimizer or snapshot.rng is None:
        return None
    _CALLER_SNAPSHOT.set(None)
    return snapshot


_P = ParamSpec("_P")
_R = TypeVar("_R")

_TLF, _FASTAI, _LIGHTNING = "torch-lr-finder", "fastai", "Lightning"


def _renamed(new: str, note: str = "") -> Callable[[Any], str]:
    return lambda value: f"lrkit calls it {new}: pass {new}={value!r:.60}{note}"


def _said(text: str) -> Callable[[Any], str]:
    return lambda value: text


def _stop_div(value: Any) -> str:
    if value is True:
        return "lrkit's divergence stop is diverge_factor: diverge_factor=4.0 is the default (leave it out)"
    if value is False:
        return "lrkit's divergence stop is diverge_factor: pass diverge_factor=None (no stop; a NaN/inf loss still " \
               "ends the test)"
    return "lrkit's divergence stop is diverge_factor: diverge_factor=4.0 (the default) for stop_div=True, " \
           "diverge_factor=None for stop_div=False"


_NO_FILES = _said("lrkit writes no files: its copy of your state is kept in memory; snapshot_device='cpu' keeps it "
                  "in host memory instead of GPU memory")
_BY_VALIDATION = _said("lrkit's range test reads the training loss only (its rules are calibrated on it); to choose "
                       "the LR by validation loss, use lrkit.train(..., lr0='auto') or lrkit.train.auto.choose_lr0("
                       "model, optimizer, train_loader, val_loader, ...), which try the suggestion with short runs")
_SET_IT = _said("lrkit changes no LR and no attribute: set it yourself from result.suggestion (module.lr = "
                "result.suggestion, or each optimizer group's lr scaled to it; README: From Lightning)")

#: A peer's ``lr_find``/``range_test`` keyword -> (the peer, what to write in lrkit instead, given the value passed),
#: as the README's migration section ("Coming from torch-lr-finder, fastai, Lightning or Ultralytics") maps them.
#: Read only when a call has a keyword find_lr does not take.
PEER_KEYWORDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    # torch-lr-finder 0.2.2: LRFinder(model, optimizer, criterion, device, memory_cache, cache_dir, amp_backend,
    # amp_config, grad_scaler) and range_test(train_loader, val_loader, start_lr, end_lr, num_iter, step_mode,
    # smooth_f, diverge_th, accumulation_steps, non_blocking_transfer); accumulation_steps is lrkit's name too
    "num_iter": (_TLF, _renamed("num_steps")),
    "step_mode": (_TLF, _renamed("mode", " ('exp' or 'linear': the same LR grid, step for step)")),
    "diverge_th": (_TLF, _renamed("diverge_factor", " (lrkit's default is 4, torch-lr-finder's 5)")),
    "smooth_f": (_TLF, _said(
        "lrkit has no smoothing option: leave it out. Its divergence stop smooths with fastai's EMA (beta = 0.98), "
        "result.losses are the raw losses, and the suggestion rules read a lag-free smoothed curve "
        "(result.smoothed_losses)")),
    "criterion": (_TLF, _renamed("loss_fn", " (a function or an nn.Module such as CrossEntropyLoss())")),
    "grad_scaler": (_TLF, _renamed("scaler", " (your torch.amp.GradScaler; its state is put back after the test)")),
    "amp_backend": (_TLF, _said("autocast is one argument in lrkit: amp='fp16' (with a GradScaler on CUDA) or "
                                "amp='bf16'; scaler= takes your own GradScaler")),
    "amp_config": (_TLF, _said("autocast is one argument in lrkit: amp='fp16' (with a GradScaler on CUDA) or "
                               "amp='bf16'; scaler= takes your own GradScaler")),
    "memory_cache": (_TLF, _NO_FILES),
    "cache_dir": (_TLF, _NO_FILES),
    "non_blocking_transfer": (_TLF, _said("leave it out: lrkit copies batches to an accelerator without blocking "
                                          "(and to the CPU blocking) by itself")),
    "val_loader": (_TLF, _BY_VALIDATION),
    # fastai 2.8.12: learn.lr_find(start_lr, end_lr, num_it, stop_div, show_plot, suggest_funcs)
    "num_it": (_FASTAI, _renamed("num_steps")),
    "stop_div": (_FASTAI, _stop_div),
    "suggest_funcs": (_FASTAI, _said(
        "find_lr takes no suggestion functions: read them from its result, result.suggest('valley') (fastai's "
        "default), result.suggestions() for every rule (minimum, steepest for fastai's steep, valley, robust); "
        "rule='valley' makes valley the rule of result.suggestion")),
    "show_plot": (_FASTAI, _said("find_lr draws nothing by itself: print(result.text_plot()) in a terminal, or "
                                 "result.plot('lr_find.png')")),
    # Lightning 2.6.6: Tuner(trainer).lr_find(model, train_dataloaders, val_dataloaders, dataloaders, datamodule,
    # method, min_lr, max_lr, num_training, mode, early_stop_threshold, update_attr, attr_name)
    "min_lr": (_LIGHTNING, _renamed("start_lr", " (lrkit's default is 1e-7, Lightning's 1e-8)")),
    "max_lr": (_LIGHTNING, _renamed("end_lr", " (lrkit's default is 10, Lightning's 1)")),
    "num_training": (_LIGHTNING, _renamed("num_steps")),
    "early_stop_threshold": (_LIGHTNING, _renamed("diverge_factor", " (None: no divergence stop, as in Lightning)")),
    "update_attr": (_LIGHTNING, _SET_IT),
    "attr_name": (_LIGHTNING, _SET_IT),
    "train_dataloaders": (_LIGHTNING, _said("the loader is find_lr's third positional argument: "
                                            "find_lr(model, optimizer, train_loader, ...)")),
    "dataloaders": (_LIGHTNING, _said("the loader is find_lr's third positional argument: "
                                      "find_lr(model, optimizer, train_loader, ...)")),
    "method": (_LIGHTNING, _said("leave it out: lrkit's range test always trains, as Lightning's method='fit'")),
    "datamodule": (_LIGHTNING, _said("pass its training loader as find_lr's third positional argument: "
                                     "find_lr(model, optimizer, datamodule.train_dataloader(), ...)")),
    "val_dataloaders": (_LIGHTNING, _BY_VALIDATION),
}


def _keyword_error(name: str, positional: list[str], keywords: list[str], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> TypeError:
    """The ``TypeError`` for a call with too many positional arguments or keywords ``name`` does not take: each bad
    keyword named, with lrkit's name for a peer's (:data:`PEER_KEYWORDS`), else the closest valid one and the list."""
    if len(args) > len(positional):
        return TypeError(
            f"{name}() takes {len(positional)} positional arguments ({', '.join(positional)}) but {len(args)} were "
            f"given: every other argument is keyword-only, e.g. {name}({', '.join(positional)}, loss_fn=criterion) "
            "(torch-lr-finder's LRFinder(model, optimizer, criterion).range_test(train_loader) is that call)"
        )
    valid = set(positional) | set(keywords)
    parts, unmapped = [], False
    for key in kwargs:
        if key in valid:
            continue
        peer = PEER_KEYWORDS.get(key)
        if peer is not None:
            parts.append(f"{name}() got an unexpected keyword argument {key!r}, {peer[0]}'s name: "
                         f"{peer[1](kwargs[key])}")
        else:
            unmapped = True
            parts.append(f"{name}() got an unexpected keyword argument {key!r}.{did_you_mean(key, sorted(valid))}")
    text = "; ".join(parts)
    if unmapped:
        text += f" Valid keywords: {', '.join(sorted(keywords))}"
    return TypeError(text)


def _peer_keywords(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` with a clear ``TypeError`` for a keyword it does not take (a peer's name says lrkit's, a misspelt one
    the closest) or too many positional arguments, in place of Python's bare one.

    The signature users see stays ``fn``'s (``functools.wraps``: ``inspect.signature``, ``help()``; the
    ``ParamSpec`` keeps it for type checkers and IDEs), and a call with valid arguments pays one length test and one
    set test. Nothing is caught: a ``TypeError`` raised inside ``fn`` propagates as it is. Under torch.distributed a
    bad call on one rank only stops the others too, as ``find_lr``'s own checks do (:func:`_checks_failed_on_this_rank`:
    ``fn`` is ``find_lr``).
    """
    params = inspect.signature(fn).parameters
    positional = [k for k, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    keywords = [k for k, p in params.items() if p.kind is p.KEYWORD_ONLY]
    valid = frozenset(params)
    n = len(positional)

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if len(args) > n or not valid.issuperset(kwargs):
            error = _keyword_error(fn.__name__, positional, keywords, args, kwargs)
            _checks_failed_on_this_rank(args[0] if args else kwargs.get("model"))
            raise error
        return fn(*args, **kwargs)

    return wrapper


@_peer_keywords
def find_lr(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    *,
    loss_fn: LossFn | None = None,
    step_fn: StepFn | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    rule: str = _suggest.DEFAULT_RULE,
    diverge_factor: float | None = 4.0,
    accumulation_steps: int = 1,
    amp: bool | str = False,
    max_grad_norm: float | None = None,
    scaler: torch.amp.GradScaler | None = None,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
    snapshot_device: torch.device | str | None = None,
) -> FinderResult:
    """Run an LR range test and return the curve with a suggested learning rate.

    The LR of every param group grows from ``start_lr`` to ``end_lr`` over ``num_steps`` optimizer steps
    (geometrically for ``mode="exp"``, linearly for ``"linear"``), each group keeping its ratio to the peak
    (``group["lr_scale"]``, or its LR relative to the largest group's). At each step the loss of one batch (or of
    ``accumulation_steps`` micro-batches) is recorded; the test stops early once the loss is non-finite or its
    smoothed value exceeds ``diverge_factor`` × its best. Afterwards **everything is restored in memory**: parameters,
    buffers, grads, optimizer state and param-group settings, train/eval modes, and the torch/numpy/python RNGs.
    Gradients are copied back into the very ``.grad`` tensors they were in (``None`` stays ``None``), so grads that
    DDP keeps as bucket views (``gradient_as_bucket_view=True``) or that a hook or optimizer cached stay live.

    The model trains as a training loop would have it: a model in eval mode as a whole is put in train mode; in a
    model already in train mode, a module the user put in eval mode (a frozen BatchNorm) stays in eval mode.

    Under ``torch.distributed`` every rank must call ``find_lr`` with its shard of the data; the per-step loss is
    averaged over ranks, so every rank records the same curve and returns the same suggestion (a rank whose loader
    gives no batch stops every rank with an error naming it). Every rank must pass the same settings (``num_steps``,
    ``start_lr``, ``end_lr``, ``accumulation_steps``, ...): a difference is a ``ValueError`` on every rank naming
    them, before any step. Every rank getting the same first batch (no ``DistributedSampler``; not said for a
    tensor-parallel model, whose ranks all read the same batch) and a model without its DDP wrapper whose gradients
    differ between ranks are warned about.

    Optimizers: any ``torch.optim`` one. LBFGS gets a closure that re-evaluates the step's micro-batches, and
    starts each step without its curvature history (pairs from earlier steps were taken at other LRs on other
    batches, and made the curve flat); with a line search it warns that ``lr`` is only the search's first trial
    step. With ``maximize=True`` in every group the optimizer
    ascends what ``loss_fn``/``step_fn`` returns, so the curve records its negative, the quantity being lowered.
    A schedule-free optimizer (``optimizer.train()``/``.eval()``) is put in train mode with its ``warmup_steps``
    off for the test, so it sweeps the LRs recorded, and is put back afterwards. Prodigy and D-Adaptation adapt
    their own step size and take ``lr`` as a multiplier: the test runs and restores them but warns that its
    suggestion is not an LR for them. Called inside a ``torch.autocast`` region, it honours that region, with
    each step seeing the weights the last step wrote.

    Args:
        model: any ``nn.Module`` (DDP-wrapped is fine). Batches are moved to its device (or ``device``).
        optimizer: any ``torch.optim`` optimizer over the model's parameters; one or many param groups.
        train_loader: an iterable of batches — ``(x, y)`` pairs, dicts with input/target keys, or anything
            ``step_fn`` understands. Cycled if shorter than the test.
        loss_fn: ``loss_fn(model(x), y) -> scalar``; default cross-entropy for integer targets, else MSE, over the
            output (a dict-like output's ``logits``, as a Hugging Face ``ModelOutput`` has).
        step_fn: ``step_fn(model, batch) -> scalar loss`` for anything else (dict-in models, custom losses).
        start_lr, end_lr: the LR range (``0 < start_lr < end_lr``).
        num_steps: optimizer steps in the test (at least 10).
        mode: ``"exp"`` (log-spaced, the usual) or ``"linear"``.
        rule: the default suggestion rule (one of ``lrkit.SUGGESTION_RULES``).
        diverge_factor: stop when the smoothed loss exceeds this multiple of its best value (a loss that can be
            negative: when it has risen by ``diverge_factor - 1`` times its best's magnitude); ``None``: no such
            stop, the test runs to ``end_lr`` (fastai's ``stop_div=False``) unless a loss is NaN/inf.
        accumulation_steps: micro-batches per optimizer step (gradient accumulation).
        amp: ``True`` (fp16 on CUDA with a GradScaler, bf16 elsewhere), ``"bf16"``, ``"fp16"`` or ``False``; the
            words ``lrkit.train``'s ``amp=`` reads (``"on"``/``"off"``, ``"yes"``/``"no"``, ``"true"``/``"false"``).
        max_grad_norm: clip the global gradient norm at each step, as your training loop does (optional).
        scaler: your training's ``torch.amp.GradScaler`` (fp16), used instead of a fresh one so the test starts at
            the loss scale your training reached; its scale, growth tracker and per-optimizer stage are put back
            afterwards, also when the test stops on an exception.
        device: where batches go; defaults to the model's first parameter's device.
        progress: ``progress(step, num_steps, lr, loss)`` called after each step (the CLI's progress bar);
            ``None`` or ``False``: none.
        snapshot_device: where the in-memory copy of the state to restore is kept. ``None`` (the default): each
            copy on the device of the tensor it copies (on a GPU, a second copy of the model and its optimizer
            state in GPU memory); ``"cpu"``: in host memory (pinned when copied from CUDA), so the test needs no
            more GPU memory than training does. The restore is exact either way.

    Returns:
        A :class:`~lrkit.FinderResult` (``.suggestion``, ``.suggest(rule)``, ``.range``, ``.lrs``, ``.losses``).

    Example:
        >>> import torch, lrkit
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> x = torch.randn(256, 4); y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> before = model[0].weight.clone()
        >>> result = lrkit.find_lr(model, opt, loader, num_steps=60)
        >>> 1e-4 < result.suggestion < 1.5, torch.equal(model[0].weight, before), opt.param_groups[0]["lr"]
        (True, True, 0.1)
    """
    # the argument checks, before the first collective: a bad value on one rank only must stop every rank (see
    # _checks_failed_on_this_rank); cheap, and nothing is touched yet
    try:
        _check_arguments(model, optimizer, train_loader, loss_fn, step_fn)
        _check_grad_mode("find_lr")
        # FSDP2 leaves the root's parameters unsharded after a forward without backward (a validation pass): the
        # checks, the snapshot and the restore below must see the sharded ones, which the optimizer holds
        reshard(model)
        snapshot_device = check_snapshot_device(snapshot_device)
        for key, value in (("start_lr", start_lr), ("end_lr", end_lr)):  # a peer's meaning, said before the type check
            if value is None and key == "start_lr":
                raise ValueError(
                    "start_lr=None must be a number: lrkit starts at start_lr (1e-7 by default) whatever the optimizer "
                    "holds; for torch-lr-finder's start_lr=None (start at the optimizer's LR) pass "
                    "start_lr=optimizer.param_groups[0]['lr']"
                )
            if isinstance(value, (list, tuple)):
                raise ValueError(
                    f"{key}={value!r:.80} must be one number: lrkit sweeps the peak LR, and every param group keeps "
                    "its ratio to it (group['lr_scale'], or its lr relative to the largest group's), where fastai "
                    "takes a list with one LR per group"
                )
        start_lr, end_lr, num_steps = _check_sweep(start_lr, end_lr, num_steps, mode, rule)
        if isinstance(amp, (torch.Tensor, np.ndarray)):  # its truth value would be ambiguous deep inside the step
            if amp.ndim != 0:
                raise ValueError(f"amp={amp!r:.80} must be True, False, 'bf16' or 'fp16'")
            amp = amp.item()
        # each step draws this many batches: 10**400 would run for ever
        accumulation_steps = check_int("accumulation_steps", accumulation_steps, 1,
                                       " (the batches of one optimizer step; 1 to 64 is typical)", maximum=_MAX_STEPS)
        if diverge_factor is not None:  # None: no stop on the smoothed loss (a non-finite loss still ends the test)
            try:  # what start_lr/end_lr take (a 0-dim tensor, "4"), with one message for every bad value
                factor = check_positive("diverge_factor", diverge_factor)
            except ValueError:
                factor = 0.0
            if factor <= 1:
                raise ValueError(f"diverge_factor={diverge_factor!r} must be a finite number > 1 (4 is typical), or "
                                 "None for no stop")
            diverge_factor = factor
        if step_fn is not None and loss_fn is not None:
            raise ValueError("pass either loss_fn or step_fn, not both (step_fn computes the loss itself)")
        if max_grad_norm is not None:  # as a float: "1.0" or a 0-dim tensor is compared across ranks as its number
            max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
        if progress is False:  # as tqdm's disable= reads: no progress callback
            progress = None
        if progress is not None and not callable(progress):
            raise ValueError(f"progress={progress!r} must be a function progress(step, total, lr, loss), or None "
                             "(or False)")
        _check_callable("progress", progress, "progress(step, total, lr, loss)", arity=4)  # not after the first step
        if not optimizer.param_groups:
            raise ValueError("optimizer has no param groups")
        _check_materialized(model, "find_lr")
        _check_sweepable(optimizer, "find_lr")
        owned = {id(p) for p in model.parameters()}
        if owned and not any(id(p) in owned for g in optimizer.param_groups for p in g["params"]):
            raise ValueError(
                "the optimizer holds none of the model's parameters, so the range test could not change the model: "
                "build the optimizer on this model's parameters (not a copy's, e.g. after deepcopy or .to(); under "
                "FSDP, after fully_shard / FullyShardedDataParallel, which replace the parameters)"
            )

        sign = _check_groups(model, optimizer)
        scales = group_scales(optimizer)  # (here: a group without an lr, or a bad one, stops every rank)

        schedule = _schedule(start_lr, end_lr, num_steps, mode).tolist()
        if not all(math.isfinite(lr) and lr > 0 for lr in schedule):  # end_lr / start_lr overflowed float64
            # the fix is to the end further from its typical value (1e-7 .. 10): --end-lr 1e308 wants a lower end_lr
            high = abs(math.log10(end_lr) - 1) > abs(math.log10(start_lr) + 7)
            raise ValueError(
                f"start_lr={start_lr!r} and end_lr={end_lr!r} are too far apart for a float64 sweep ({mode}): "
                + ("lower end_lr (10 is typical)" if high else "raise start_lr (1e-7 is typical)")
            )
        first_param = next(iter(model.parameters()), None)
        dev = _check_device(device) if device is not None else (
            first_param.device if first_param is not None else torch.device("cpu")
        )
        if device is not None:
            _check_model_on(model, dev)
        autocast, use_scaler = autocast_context(amp, dev)
        scaler_state = None
        restore_scaler: Callable[[], None] = lambda: None  # noqa: E731
        if scaler is not None:
            missing = [m for m in ("scale", "step", "update", "unscale_", "state_dict", "load_state_dict")
                       if not callable(getattr(scaler, m, None))]
            if missing:
                raise ValueError(
                    f"scaler={type(scaler).__name__} is not a GradScaler (it has no {', '.join(missing)}): pass a "
                    "torch.amp.GradScaler, or None for find_lr's own when amp asks for one"
                )
            scaler_state = scaler.state_dict()  # {} when disabled
            restore_scaler = _scaler_restorer(scaler)
        elif use_scaler:
            scaler = torch.amp.GradScaler(dev.type)
        # Inside any autocast region of the caller's (enabled, disabled, or for another device), autocast keeps the
        # low-precision copy of each weight until that region ends: every step would run on the starting weights. The
        # cache is dropped before each forward instead (and after the test).
        needs_closure = _needs_closure(optimizer)
        fresh_each_step = isinstance(optimizer, torch.optim.LBFGS)
        if needs_closure and scaler is not None:
            raise ValueError(
                f"{type(optimizer).__name__} needs a closure, which torch's GradScaler "
                f"({'scaler=' if scaler_state is not None else f'amp={amp!r} on {dev.type}'}) does not support: use "
                "amp='bf16' or amp=False, without a scaler"
            )
    except Exception:
        _checks_failed_on_this_rank(model)
        raise

    if _distributed():  # before anything is touched: ranks that would run different tests stop together, now
        _same_settings_on_every_rank(dev, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, mode=mode, rule=rule,
                                     diverge_factor=diverge_factor, accumulation_steps=accumulation_steps,
                                     max_grad_norm=max_grad_norm)
    snapshot = _caller_snapshot(model, optimizer)  # (kept where the caller chose: lr0="auto" passes its own device)
    if snapshot is None:
        snapshot = Snapshot.capture(model, optimizer, rng=True, device=snapshot_device)
    generators = [(g, g.get_state()) for g in _loader_generators(train_loader)]
    epochs = _loader_epochs(train_loader)
    # the test's optimizer steps are not the training loop's: an lrkit scheduler attached to the optimizer must not
    # count them (it would read them as steps between two of its step() calls, and warn of stepping per epoch)
    from lrkit.schedules.torch import keep_step_counts

    restore_step_counts = keep_step_counts(every_optimizer(optimizer))
    t0 = time.perf_counter()
    lrs: list[float] = []
    losses: list[float] = []
    stop_reason = "completed"
    params = [p for g in optimizer.param_groups for p in g["params"]]
    distributed = _distributed()
    asgd = _asgd_groups(optimizer)  # (empty for every other optimizer: no cost per step)
    # The usual case takes no detours: this loop's cost per step must match a bare training loop's.
    plain = isinstance(autocast, nullcontext)
    plain_step = not needs_closure and scaler is None and max_grad_norm is None
    loss_used: str | None = None  # which loss ran, in words (FinderResult.loss): told by the first step's first batch
    first_batch_size: int | None = None  # (FinderResult.setup)
    defer = accumulation_steps > 1 and _defers_sync(model)  # DDP: one all-reduce per optimizer step

    def forward_backward(micro: list[Any], first: bool = False) -> float:
        """Accumulate the gradients of ``micro`` (its batches' mean loss) and return that mean loss. The ``first``
        step's batches are checked (:func:`first_batch_loss`: a loss that only broadcasts, inputs or targets of
        another dtype), and the first of them says which loss ran; later steps run bare."""
        nonlocal loss_used, first_batch_size
        total = 0.0
        out = None
        checked = not (first and distributed)  # under torch.distributed, the first loss is agreed on every rank
        last = len(micro) - 1
        for j, batch in enumerate(micro):
            # under DistributedDataParallel the gradients are averaged over the ranks once per optimizer step,
            # at the last micro-batch, as a training loop does (no_sync on the others): the same gradients
            with model.no_sync() if defer and j < last and _may_skip_sync(model) else _IN_SYNC:
                batch = move_to(batch, dev)
                # (also when the caller's region is disabled or for another device: any region keeps the cache alive)
                torch.clear_autocast_cache()
                try:
                    if first:
                        try:
                            grads = _grad_versions(params) if j == 0 else None
                            with autocast:
                                loss, out, text = first_batch_loss(model, batch, loss_fn, step_fn)
                            if grads is not None:
                                _check_no_backward(grads, loss_fn, step_fn)
                        except Exception:
                            if not checked:
                                try:  # the others hear of it; this rank's own error is the one raised
                                    _first_loss_on_every_rank(True, dev)
                                except Exception:  # (another rank gone, say): that error says less than this one
                                    pass
                            raise
                        if not checked:
                            checked = True
                            _first_loss_on_every_rank(False, dev)
                        if loss_used is None:
                            loss_used = text
                            first_batch_size = batch_size(batch)
                    elif plain:
                        loss = batch_loss(model, batch, loss_fn, step_fn)
                    else:
                        with autocast:
                            loss = batch_loss(model, batch, loss_fn, step_fn)
                except ValueError as e:  # (zero cost until raised)
                    error = _one_sample_batchnorm_error(e, batch)
                    if error is not None:
                        raise error from e
                    raise
                # No extra autograd ops when they would be no-ops: this loop's cost must match a bare loop's.
                scaled = loss if accumulation_steps == 1 else loss / accumulation_steps
                try:
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                except RuntimeError as e:
                    _check_loss(loss)  # checked only when backward fails: a clear error for the usual causes
                    error = target_dtype_error(out, batch, loss_fn, e) if first else None
                    if error is not None:
                        raise error from e
                    raise
                total += loss.item()
        if max_grad_norm is not None and needs_closure:
            clip_grad_norm_(params, max_grad_norm, model=model)  # sparse gradients too (LBFGS steps them)
        return total / accumulation_steps

    batches: Iterator[Any] | None = None
    unsharded: str | None = None  # the warning when every rank got the same first batch (torch.distributed)
    unsynced: str | None = None  # the warning when the ranks' gradients differ (a model without its DDP wrapper)
    no_gradient: str | None = None  # the warning when no parameter the optimizer steps gets a gradient
    workers = _OwnWorkers(train_loader)  # a persistent-workers loader: the user's workers are put aside untouched
    try:
        train_mode(model)  # a module the user put in eval mode (a frozen BatchNorm) stays so, as in their loop
        _schedule_free_train_mode(optimizer)
        batches = cycle_batches(train_loader, "train_loader")
        best = math.inf
        skipped = 0  # optimizer steps the GradScaler skipped (inf/NaN gradients at its scale)
        scales_seen: list[float] = []  # the scale before each step taken through the scaler
        avg = 0.0
        # (torch.distributed) the next step's batches, drawn before this step's loss all-reduce so that a rank whose
        # loader fails stops every rank there (see _step_mean); and that failure, raised after it
        upcoming: list[Any] | None = None
        fetch_error: Exception | None = None
        for i, lr in enumerate(schedule):
            # (a tensor lr in place; one shared by groups of different scales: a copy each, the snapshot puts it back)
            set_group_lrs(optimizer.param_groups, [lr * scale for scale in scales])
            if asgd:
                _sync_asgd_eta(asgd)
            optimizer.zero_grad(set_to_none=True)
            if distributed and i == 0:
                micro, unsharded = _first_batches_on_every_rank(
                    lambda: [next(batches) for _ in range(accumulation_steps)], dev
                )
                if unsharded is not None and _tensor_parallel(model):  # its ranks all read the same batch
                    unsharded = None
            elif upcoming is not None:
                micro, upcoming = upcoming, None
            elif accumulation_steps == 1:
                micro = [next(batches)]
            else:
                micro = [next(batches) for _ in range(accumulation_steps)]
            value = forward_backward(micro, i == 0) * sign
            if i == 0 and not distributed:
                no_gradient = _no_gradient_note(params)
            if distributed:
                if i == 0 and not _syncs_gradients(model):
                    unsynced = _unsynced_gradients_note(params, dev)
                if i + 1 < len(schedule):
                    try:
                        upcoming = [next(batches) for _ in range(accumulation_steps)]
                    except Exception as e:  # raised in _step_mean, after every rank has heard of it
                        fetch_error = e
                value = _step_mean(value, fetch_error, dev)
            lrs.append(lr)
            losses.append(value)
            if progress is not None:
                progress(i + 1, num_steps, lr, value)
            if not math.isfinite(value):
                if i == 0:
                    raise ValueError(
                        f"the loss is {value} at the very first step (lr={lr:.3g}): this is a data or model problem "
                        "(NaN/inf inputs, a log of zero, a bad loss), not a learning-rate one"
                    )
                stop_reason = "non-finite"
                break
            # Same EMA as fastai's divergence check, so the stop point is comparable across tools. Its first values
            # are the plain mean of the first few losses, so the best counts from step _DIVERGE_WARMUP on: an easy
            # first batch (a loss 20x below the others') would otherwise be a best that every ordinary batch after it
            # is far above, and the test would "diverge" at its second step.
            avg = 0.98 * avg + 0.02 * value
            smoothed = avg / (1 - 0.98 ** (i + 1))
            if i >= _DIVERGE_WARMUP:
                if smoothed < best:
                    best = smoothed
                # smoothed > diverge_factor * best, sign-safe: a loss that can be negative (a log-likelihood, an
                # offset MSE) diverges when it has risen by (diverge_factor - 1) times its best's magnitude
                elif diverge_factor is not None and smoothed - best > (diverge_factor - 1.0) * abs(best):
                    stop_reason = "diverged"
                    break
            closure = None
            if fresh_each_step:
                # LBFGS's curvature pairs (s, y) and scale H_diag = s·y / y·y carry over between steps. Here the
                # early steps move by ~start_lr while y, between two different batches, is mostly the batches'
                # difference: H_diag collapses (~1e-9) and every later step moves nothing, so the curve is flat.
                # Each step starts afresh: a quasi-Newton step at this LR from this step's own closure
                # evaluations of the same micro-batches. The snapshot puts the user's history back.
                optimizer.state.clear()
            if needs_closure:

                def closure(micro: list[Any] = micro) -> torch.Tensor:
                    optimizer.zero_grad(set_to_none=True)
                    loss = forward_backward(micro)
                    # Under torch.distributed, the mean over ranks (the loss of DDP's averaged gradients): LBFGS's
                    # line search and tolerance_change test read it, and a per-rank loss would make the ranks take
                    # different numbers of evaluations, i.e. of DDP's gradient all-reduces (a mismatch or a hang).
                    return torch.tensor(_dist_mean(loss, dev) if distributed else loss)

            if plain_step:
                optimizer.step()
            elif scaler is not None:
                scale = scaler.get_scale()  # (one host read; loss.item() has synced this step already)
                optimizer_step(optimizer, params, closure=closure, scaler=scaler, max_grad_norm=max_grad_norm,
                               model=model)
                scales_seen.append(scale)
                skipped += scaler.get_scale() < scale  # the scale backs off exactly when the step was skipped
            else:
                optimizer_step(optimizer, params, closure=closure, scaler=scaler, max_grad_norm=max_grad_norm,
                               model=model)
    except BaseException:  # a forward or backward stopped part-way leaves FSDP2's root mid-iteration: reset it
        reshard(model, after_error=True)
        raise
    finally:
        restore_step_counts()  # (plain numbers on the optimizer: first, whatever the restore below meets)
        reshard(model)  # (a step that stopped between its forward and its backward leaves FSDP2's root unsharded)
        snapshot.restore()
        del snapshot  # freed now, also while a caller keeps an exception's traceback (and this frame)
        for gen, state in generators:
            gen.set_state(state)
        for loader, epoch in epochs:
            loader.iteration = epoch
        restore_scaler()  # the user's scaler (scale, growth tracker, per-optimizer stage), also after an exception
        torch.clear_autocast_cache()  # no low-precision copy of the test's last weights may outlive it
        try:
            _close(batches)  # the loader's worker processes go now, also when an exception's traceback is kept
        finally:
            workers.restore()
    result = FinderResult(
        lrs=lrs, losses=losses, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, mode=mode,
        stop_reason=stop_reason, seconds=time.perf_counter() - t0, rule=rule,
        passes=_passes(train_loader, len(lrs) * accumulation_steps, dev if distributed else None), loss=loss_used,
        setup=_setup(optimizer, scales, first_batch_size, accumulation_steps, max_grad_norm, autocast, diverge_factor,
                     dev),
    )
    for note in (no_gradient, unsharded, unsynced, _adaptive_step_note(optimizer), _line_search_note(optimizer),
                 _skipped_steps_note(skipped, scales_seen)):
        if note is not None:
            result.warnings.append(note)
    result.warnings.extend(_quality_warnings(result))
    for message in result.warnings:
        warnings.warn(message, UserWarning, stacklevel=3)  # the call of find_lr (past _peer_keywords)
    return result


def _setup(optimizer: torch.optim.Optimizer, scales: list[float], batch: int | None, accumulation_steps: int,
           max_grad_norm: float | None, autocast: Any, diverge_factor: float | None,
           device: torch.device) -> dict[str, Any]:
    """:attr:`FinderResult.setup`: how the test ran, for the record (plain JSON values)."""
    from lrkit import __version__

    dtype = getattr(autocast, "dtype", None)  # (_FreshAutocast's; a nullcontext without amp has none)
    return {
        "optimizer": type(optimizer).__name__, "param_groups": len(optimizer.param_groups),
        "lr_scales": [float(s) for s in scales], "batch_size": batch, "accumulation_steps": int(accumulation_steps),
        "max_grad_norm": max_grad_norm, "amp": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype),
        "diverge_factor": diverge_factor, "device": str(device),
        "world_size": torch.distributed.get_world_size() if _distributed() else 1,
        "lrkit": __version__, "torch": torch.__version__,
    }


def _skipped_steps_note(skipped: int, scales: list[float]) -> str | None:
    """A note when the GradScaler skipped many of the test's optimizer steps (``skipped`` of ``len(scales)``, the
    scale before each): at those steps nothing trained, so their points show the batches' noise at an LR that was
    never applied, and a test whose steps were all skipped gives a suggestion from noise alone. A fresh scaler's
    first few skips (its scale calibrating) are not worth a word."""
    if skipped <= max(3, len(scales) // 10):
        return None
    return (
        f"find_lr: the GradScaler skipped {skipped} of the range test's {len(scales)} optimizer steps (inf/NaN "
        f"gradients at its loss scale, {scales[0]:g} at the first step and {scales[-1]:g} at the last): nothing "
        "trained at those steps, so the curve shows the batches at LRs that were never applied and its suggestion "
        "means little. "
        "Give the scaler a lower scale (torch.amp.GradScaler(init_scale=...)), check the model for fp16 overflow, "
        "or use amp='bf16'"
    )


def _passes(loader: Any, batches: int, device: torch.device | None = None) -> float | None:
    """How many times ``batches`` micro-batches went over ``loader`` (``None``: a loader without a usable length).

    With ``device`` (under torch.distributed) every rank gets the same value, the largest over ranks (``None`` if
    any rank's loader has no length): shards of different lengths would otherwise put the ranks on either side of
    the robust rule's passes gate, and give them different suggestions."""
    try:
        n = len(loader)
    except Exception:  # an iterator, an IterableDataset's loader without __len__, a broken __len__
        n = None
    passes = batches / n if isinstance(n, int) and n > 0 else None
    if device is None:
        return passes
    dist = torch.distributed
    dev = device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([passes if passes is not None else 0.0, float(passes is None)], dtype=torch.float64, device=dev)
    _all_reduce(t, "the passes over the data", op=dist.ReduceOp.MAX)
    return None if t[1].item() else float(t[0].item())


def _one_sample_batchnorm_error(error: ValueError, batch: Any) -> ValueError | None:
    """torch's BatchNorm error on a batch of one sample in training (a loader whose last batch holds 1: 33 samples
    at batch_size=32), said with the fix; ``None`` for any other error."""
    if "Expected more than 1 value per channel when training" not in str(error):
        return None
    try:
        n = batch_size(batch)
    except (TypeError, ValueError):
        n = None
    if n != 1:
        return None
    return ValueError(
        "a batch of train_loader holds 1 sample, and the model's BatchNorm layers cannot train on one (torch: "
        f"{str(error).strip()}): give the loader drop_last=True, or a batch size that leaves no single sample over "
        "(lrkit.train leaves such a batch out for you)"
    )


def _quality_warnings(result: FinderResult) -> list[str]:
    """Notes about curves too short or too flat to judge, each saying what to change (in the caller's words:
    :data:`_QUALITY_WORDS`)."""
    names, suffix = _QUALITY_WORDS.get() or ({}, "")
    start_lr = f"{names.get('start_lr', 'start_lr')} (now {result.start_lr:g})"
    num_steps = f"{names.get('num_steps', 'num_steps')} (now {result.num_steps})"
    end_lr = f"{names.get('end_lr', 'end_lr')} (now {result.end_lr:g})"
    lrs, losses = result._curve()
    if len(losses) < MIN_STOPPED_POINTS:  # the steps that ran and the LR of the last (a non-finite loss included)
        return [
            f"the range test stopped after {result.num_steps_run} steps ({result.stop_reason} at "
            f"lr={(result.lrs or [result.start_lr])[-1]:.3g}) — too short to judge; lower {start_lr} or raise "
            f"{num_steps}{suffix}"
        ]
    s = _suggest.smooth_curve(losses)
    drop = (s[0] - s.min()) / max(abs(s[0]), 1e-12)
    i_min = int(np.argmin(s))
    lowest_at_start = (
        f"the loss was lowest at the very start of the range (lr={lrs[i_min]:.3g}); lower {start_lr} so the test "
        f"sees the loss fall{suffix}"
    )
    if drop < 0.02:
        if result.stop_reason in ("diverged", "non-finite"):  # flat, then it blew up: a higher end_lr sees nothing new
            return [
                f"the loss barely moved before the range test {result.stop_reason.replace('-', ' ')} at "
                f"lr={lrs[-1]:.3g} ({100 * drop:.1f}% below its start) — too flat to judge; lower {start_lr} to see "
                f"lower LRs, or raise {num_steps} so that each LR trains longer, or check that the model "
                f"learns{suffix}"
            ]
        if result.flat:  # the default rule's reading: flat, then it blew up within the range (short of the stop)
            if i_min < 3:  # upwards from its first LRs: every LR tested was too high
                return [lowest_at_start]
            return [  # as a flat curve that diverged: a higher end_lr only sees more of the rise
                f"the loss barely moved ({100 * drop:.1f}% below its start), then rose past lr={result.edge:.3g} "
                f"before the range test ended — too flat to judge; lower {start_lr} to see lower LRs, or raise "
                f"{num_steps} so that each LR trains longer, or check that the model learns{suffix}"
            ]
        return [
            f"the loss barely moved over the range test ({100 * drop:.1f}% below its start) — too flat to judge; "
            f"raise {end_lr} or {num_steps}, or check that the model learns{suffix}"
        ]
    if i_min < 3:
        return [lowest_at_start]
    if result.stop_reason == "completed" and i_min >= len(s) - 3:  # no turn seen: the best LR may lie beyond
        return [
            f"the loss was still falling at the end of the range (lowest at lr={lrs[i_min]:.3g}, among the last LRs "
            f"tested): the test never saw where higher LRs stop helping, so the rules read a curve without its "
            f"turn; raise {end_lr} so the test sees where the loss turns up"
            + (f", and {num_steps}: {len(losses)} steps are too few to see the turn" if len(losses) < 30
               else "") + suffix
        ]
    return []
