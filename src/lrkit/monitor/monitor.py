"""``lrkit.Monitor``: watch every training step, see a wrong learning rate while it happens, and recover.

Works in any hand-written loop (and inside ``lrkit.train``)::

    monitor = lrkit.Monitor(model, optimizer, scheduler=None, on_divergence="rollback")
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        monitor.after_backward(loss)   # loss + gradient checks, before the step; may clip or neutralise this step
        optimizer.step()               # harmless when the monitor decided to skip/roll back this step
        scheduler.step()               # (if you have one)
        if monitor.after_step():       # update-ratio check, snapshots, the actual skip/rollback; True = stop
            break

Contract: call :meth:`Monitor.after_backward` once per optimizer step, after ``loss.backward()`` (after
``scaler.unscale_(optimizer)`` under AMP — given ``grad_scaler=scaler``, the monitor calls it itself when your
loop has not, as torch's recipe without clipping never does —, after the last micro-batch under gradient
accumulation), and
:meth:`Monitor.after_step` after ``optimizer.step()`` — and after ``scheduler.step()`` when a per-step scheduler is
stepped — *every* time, also when ``after_backward`` returned ``False``.

How a step is made harmless (skip, rollback, stop): ``after_backward`` sets every gradient to ``None`` (so torch's
optimizers skip every parameter and do no arithmetic on ``nan``) and keeps what it needs to undo the step; the
undo happens in ``after_step``, *after* your ``optimizer.step()``, so whatever that step did — momentum and weight
decay move parameters even with zero gradients, Adam bumps its step count — is overwritten bit for bit. You may
also skip ``optimizer.step()`` yourself when ``after_backward`` returns ``False``; both are correct.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import sys
import warnings
import weakref
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, is_, mul
from typing import Any, NamedTuple

import torch

from lrkit._dist import distributed, flagged_all_reduce, fsdp1_root, fsdp1_shard_sum, fsdp2_modules
from lrkit._dlr import group_step_sizes
from lrkit._state import (
    _NO_MODEL,
    Snapshot,
    _clone_tree,
    _offload,
    _offload_tree,
    check_snapshot_device,
    inner_optimizers,
    inner_snapshots,
)
from lrkit._utils import (
    adapts_step_size,
    as_scalar,
    check_int,
    first_few,
    maximize_sign,
    named_keywords,
    stacklevel_outside_lrkit,
    torch_dir,
)
from lrkit.monitor.actions import (
    _GROUP_KEYS,
    _LIST_ATTRS,
    SEVERITY,
    MonitorWarning,
    _scaled,
    _schedulers,
    backoff_lr,
    clip_grads_,
    resolve_action,
    wrapped_scheduler,
)
from lrkit.monitor.checks import CATEGORIES, Check, Finding, LossAboveStart, ValidationRising, default_checks
from lrkit.monitor.record import RollingRecord, _median

__all__ = ["Monitor", "MonitorEvent"]

_STATE_VERSION = 1
#: Every step is a full step (gradients measured) for this many steps at the start (the loss has no history yet)
_DENSE_STEPS = 1
#: ... and for this many steps after every event.
_ALERT_STEPS = 50
_NEVER = 2**62
#: "No work planned" for the per-step comparison in after_step: the largest one-digit int, which CPython compares on
#: its fast path (2**62 would not be); a step past it only re-plans (see Monitor._after_step_work).
_FAR = 2**30 - 1
#: ``spike_grace``: a forgiven loss-spike episode keeps every later spike within this many steps of its start under
#: watch (one forgiven episode per window; a spike past the grace but inside the window is acted on).
_GRACE_WINDOW = 50
#: ``spike_grace``: a spike above this many times the starting loss ``|L0|`` is acted on at once, grace or not (the
#: optimizer never steps on it).
_GRACE_CAP = 10.0
#: ``spike_grace``: a grace episode opens only on a spike from a trained state: the spike check's running median at
#: most this many times ``|L0|`` (a spike before the run has learned means the LR is too high from the outset).
_GRACE_TRAINED = 0.7
#: The robust reference statistics (running medians) are recomputed every this many steps.
_REFRESH = 25
#: The fast-path bound follows every full step until this many losses are known (references still filling).
_SCREEN_FOLLOW = 32
_LOW_PRECISION = (torch.float16, torch.bfloat16)
#: Immutable leaves of a state tree: ``copy.deepcopy`` returns them unchanged, so a copy can keep them as they are.
_ATOMIC = frozenset({int, float, bool, str, bytes, complex, type(None)})
#: The containers an optimizer keeps among its attributes (state, groups, hooks, defaults): never kept by a snapshot.
_CONTAINERS = frozenset({dict, list, OrderedDict, defaultdict})
_set_grad_enabled = torch._C._set_grad_enabled
#: Optimizer attributes a snapshot keeps (as ``lrkit._state.Snapshot.capture`` does): plain values and tensors, e.g. a
#: custom optimizer's step counter.
_OPT_ATTR_TYPES = (bool, int, float, str, type(None), torch.Tensor)
_ATTR_ATOMIC = frozenset({bool, int, float, str, type(None)})  # kept as they are (_copy_state returns them)
_Tensor = torch.Tensor


_M = torch.nn.Module


def _walk(model: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[bool]]:
    """``(list(model.parameters()), list(model.buffers()), [m.training for m in model.modules()])``.

    One pass over the module tree instead of the three traversals ``Snapshot.restore`` relies on, with the same order
    (pre-order, children in registration order) and the same de-duplication as ``torch.nn.Module.named_modules`` (a
    module seen before is skipped with its subtree) and ``_named_members`` (tensors by identity, ``None`` skipped),
    without building the modules' names. A model class that overrides any of the traversal methods, or a submodule
    class that overrides ``named_modules``, gets the three plain calls.
    """
    cls = type(model)
    if (cls.parameters is not _M.parameters or cls.named_parameters is not _M.named_parameters
            or cls.buffers is not _M.buffers or cls.named_buffers is not _M.named_buffers
            or cls._named_members is not _M._named_members or cls.modules is not _M.modules
            or cls.named_modules is not _M.named_modules):
        return _walk_plain(model)
    params: list[torch.Tensor] = []
    buffers: list[torch.Tensor] = []
    modes: list[bool] = []
    seen_p: set[int] = set()
    seen_b: set[int] = set()
    seen_m: set[torch.nn.Module] = set()  # by hash, as named_modules' memo
    stack = [model]
    while stack:
        m = stack.pop()
        if m in seen_m:
            continue
        if type(m).named_modules is not _M.named_modules:
            return _walk_plain(model)
        seen_m.add(m)
        modes.append(m.training)
        for t in m._parameters.values():
            if t is not None and id(t) not in seen_p:
                seen_p.add(id(t))
                params.append(t)
        if m._buffers:
            for t in m._buffers.values():
                if t is not None and id(t) not in seen_b:
                    seen_b.add(id(t))
                    buffers.append(t)
        children = m._modules
        if children:  # last child on top: the first one is visited next, as in the recursion
            stack.extend([c for c in reversed(children.values()) if c is not None])
    return params, buffers, modes


def _walk_plain(model: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[bool]]:
    return list(model.parameters()), list(model.buffers()), [m.training for m in model.modules()]


def _fit_opt_state(saved: Mapping[Any, Any], groups: list[dict[str, Any]], store: torch.device | None = None,
                   homes: dict[int, torch.device] | None = None) -> dict[int, Any]:
    """A loaded snapshot's optimizer state (keyed by the parameter's index in ``groups``' order), copied onto each
    parameter's device and floating dtype as ``torch.optim.Optimizer.load_state_dict`` does: a state saved on CUDA
    and loaded with ``map_location="cpu"`` (``lrkit.train``'s resume) would otherwise be rolled back onto CUDA
    parameters from the CPU. A ``"step"`` count stays as it is unless the group is ``fused``/``capturable`` (then
    float32 on the parameter's device), as torch keeps it.

    With ``store`` (a monitor's ``snapshot_device``) each value is kept there instead, in that dtype, and the device
    it belongs on is noted in ``homes`` (see ``Snapshot.homes``): a rollback puts it there."""
    where = [(p, g) for g in groups for p in g["params"]]
    out: dict[int, Any] = {}

    def tree(value: Any) -> Any:
        return _offload_tree(value, store, homes)  # type: ignore[arg-type]  # (homes is given with a store)

    def put(value: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if store is None:
            return value.to(dtype=dtype, device=device, copy=True)
        return _offload(value.to(dtype), store, homes, home=device)  # type: ignore[arg-type]

    for k, state in saved.items():
        i = int(k)
        if not (0 <= i < len(where)) or type(state) is not dict:
            out[i] = tree(state)
            continue
        param, group = where[i]
        entry = {}
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                entry[key] = tree(value)
            elif key == "step":
                special = group.get("fused") or group.get("capturable")
                entry[key] = put(value, torch.float32, param.device) if special else tree(value)
            elif param.is_floating_point() and value.is_floating_point():
                entry[key] = put(value, param.dtype, param.device)
            else:
                entry[key] = put(value, value.dtype, param.device)
        out[i] = entry
    return out


def _copy_state(obj: Any) -> Any:
    """Copy an optimizer/scheduler state tree, cloning its tensors: the result of ``lrkit._state._clone_tree``
    (plain dicts, lists, tuples; tensors cloned), without ``copy.deepcopy``'s cost for numbers and strings."""
    cls = type(obj)
    if cls in _ATOMIC:
        return obj
    if cls is dict:
        return {k: _copy_state(v) for k, v in obj.items()}
    if cls is list:
        return [_copy_state(v) for v in obj]
    if cls is tuple:
        return tuple([_copy_state(v) for v in obj])
    return _clone_tree(obj)  # tensors, subclasses of dict/list/tuple, anything else: the shared rule


def _restore_into_state(optimizer: torch.optim.Optimizer, restore: Callable[[], None]) -> None:
    """``restore()`` (a :class:`Snapshot`'s), then each optimizer-state tensor it put in written into the tensor the
    state held before under the same parameter and key (same shape, dtype, device, strided), which goes back in:
    the state keeps its tensor objects, as the parameters and a tensor ``lr`` do. A ``torch.compile``d
    ``optimizer.step`` guards on some of them by identity (Adam's ``step``): new ones would recompile it at every
    rollback or skip."""
    live = {}
    for p, s in optimizer.state.items():
        if type(s) is dict:
            for k, v in s.items():
                if isinstance(v, _Tensor):
                    live[(id(p), k)] = v
    restore()
    if not live:
        return
    with torch.no_grad():
        for p, s in optimizer.state.items():
            if type(s) is not dict:
                continue
            for k, v in s.items():
                old = live.get((id(p), k))
                if (old is not None and old is not v and isinstance(v, _Tensor) and type(old) is type(v)
                        and old.layout == torch.strided and v.layout == torch.strided and old.shape == v.shape
                        and old.dtype == v.dtype and old.device == v.device):
                    old.copy_(v)
                    s[k] = old


def _capture_inputs(model: torch.nn.Module, opt: torch.optim.Optimizer, reuse: _Healthy | None) -> tuple[
        list[torch.Tensor], list[torch.Tensor], list[bool], list[torch.Tensor], dict[int, int], Snapshot | None]:
    """What a capture walks: the model's parameters, buffers and modes (:func:`_walk`), the optimizer's parameters
    and their positions, and ``reuse``'s snapshot when it holds the same parameters and buffers in the same order
    (its copies can then be refreshed in place), else ``None``."""
    params, buffers, modes = _walk(model)
    opt_params = [p for g in opt.param_groups for p in g["params"]]
    index = {id(p): i for i, p in enumerate(opt_params)}
    old = None
    if reuse is not None and _same_objects(reuse.members[0], params) and _same_objects(reuse.members[1], buffers):
        old = reuse.snapshot
    return params, buffers, modes, opt_params, index, old


def _same_objects(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(map(is_, a, b))


#: ``_Healthy.slots``: each module at capture with copies of its ``_parameters`` and ``_buffers`` entries.
_Slots = list[tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]]


def _named_slots(model: torch.nn.Module) -> _Slots:
    """Each of ``model``'s modules with copies of its parameter and buffer entries (``name -> tensor or None``):
    where each of a snapshot's members sat when it was taken (see :func:`_slot_heirs`). One pass without names."""
    out: _Slots = []
    add = out.append
    seen: set[int] = set()
    stack = [model]
    push = stack.extend
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        p, b = m._parameters, m._buffers
        if p or b:  # (a container holds none)
            add((m, dict(p), dict(b)))
        children = m._modules
        if children:
            push([c for c in reversed(children.values()) if c is not None])
    return out


def _slot_heirs(held: _Healthy, params: list[torch.Tensor], buffers: list[torch.Tensor]
                ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """``(id(parameter) -> copy, id(buffer) -> copy)`` for each of the model's ``params`` and ``buffers`` now that
    took the slot (the same module, the same name) of one of ``held``'s members that is no longer in the model, with
    its shape, dtype and layout: the snapshot's copy of that member is its value. A forward that writes a running
    statistic as ``self.ema = 0.9 * self.ema + ...`` replaces the buffer at every call, so matching by identity
    alone found no tensor for the snapshot's copy and a rollback left the statistic as the bad step made it (NaN
    after a non-finite forward: every later forward NaN). A tensor replaced by one of another shape (a RoPE cache
    regrown) keeps its value: the model's own code sized it. Empty maps without ``held.slots`` (a snapshot loaded
    from a state_dict)."""
    slots = held.slots
    out: list[dict[int, torch.Tensor]] = [{}, {}]
    if not slots:
        return out[0], out[1]
    for i, (old, copies, live) in enumerate(((held.members[0], held.snapshot.params, params),
                                             (held.members[1], held.snapshot.buffers, buffers))):
        now = {id(t) for t in live}
        gone = {id(t): c for t, c in zip(old, copies) if id(t) not in now and c is not None and c is not t}
        if not gone:
            continue
        known = {id(t) for t in old}
        heirs = out[i]
        for m, *entries in slots:
            for name, t in entries[i].items():
                c = gone.get(id(t)) if t is not None else None
                if c is None:
                    continue
                d = (m._parameters if i == 0 else m._buffers).get(name)
                if (d is not None and id(d) in now and id(d) not in known and id(d) not in heirs
                        and d.shape == c.shape and d.dtype == c.dtype and d.layout == c.layout):
                    heirs[id(d)] = c
    return out[0], out[1]


_MISSING = object()


def _same_value(a: Any, b: Any) -> bool:
    """Whether two param-group values are equal (tensors by value, tuples/lists element-wise, ``nan == nan``)."""
    if a is b:
        return True
    if isinstance(a, _Tensor) or isinstance(b, _Tensor):
        return (isinstance(a, _Tensor) and isinstance(b, _Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and a.device == b.device and bool(torch.equal(a, b)))
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same_value, a, b))
    try:
        if bool(a == b):
            return True
    except Exception:  # a value whose == is not a truth value
        return False
    return isinstance(a, float) and isinstance(b, float) and a != a and b != b


def _group_values(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Every param group's hyperparameters (all keys but ``params``), copied."""
    atomic = _ATOMIC
    return [{k: v if type(v) in atomic else _copy_state(v) for k, v in g.items() if k != "params"}
            for g in optimizer.param_groups]


def _opt_mode(optimizer: torch.optim.Optimizer) -> bool | None:
    """The train/eval mode of an optimizer that has one (schedule-free: ``optimizer.train()``/``eval()`` move the
    parameters between the two points it keeps, and every group records its ``train_mode``); ``None`` for an
    optimizer without modes, or whose groups disagree."""
    if not (callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))):
        return None
    modes = {g.get("train_mode") for g in optimizer.param_groups}
    if len(modes) == 1:
        mode = modes.pop()
        return mode if isinstance(mode, bool) else None
    return None


def _set_opt_mode(optimizer: torch.optim.Optimizer, mode: bool | None) -> None:
    """Put an optimizer with modes (see :func:`_opt_mode`) back into ``mode`` through its own ``train()``/``eval()``,
    which convert the restored parameters with the restored optimizer state."""
    if mode is None or _opt_mode(optimizer) is mode:
        return
    optimizer.train() if mode else optimizer.eval()  # type: ignore[attr-defined]


#: The general snapshot refresh (``Monitor._capture(reuse=...)``, taken when ``Monitor._recapture`` cannot reuse the
#: held snapshot's layout) writes a tensor of at least this many elements into the copy it replaces (no second copy
#: in memory); smaller ones are cloned afresh, which one by one is as fast and skips the checks.
_REUSE_NUMEL = 1 << 16


def _fits(old: Any, new: torch.Tensor) -> bool:
    """Whether ``new`` is big enough to be worth writing into ``old`` (a snapshot's earlier copy) and fits it."""
    return (type(old) is _Tensor and new.numel() >= _REUSE_NUMEL and old.layout == torch.strided
            and new.layout == torch.strided and old.shape == new.shape and old.dtype == new.dtype
            and old.device == new.device)


def _refill(old: list[torch.Tensor] | None, live: list[torch.Tensor],
            skip: list[bool] | None = None) -> list[torch.Tensor]:
    """Copies of ``live``: the big ones written into ``old``'s tensors (the same objects: no new memory) where they
    fit, the rest fresh clones (:func:`_copy_state_into`, tensor by tensor). Where ``skip`` is true the tensor stands
    for itself (no copy: see :func:`_frozen_flags`). Autograd must be off."""
    if skip is None:
        skip = [False] * len(live)
    if old is None or len(old) != len(live):
        return [t if s else t.clone() for t, s in zip(live, skip)]
    return [t if s else _copy_state_into(None if o is t else o, t) for o, t, s in zip(old, live, skip)]


def _frozen_flags(params: list[torch.Tensor], index: Mapping[int, int]) -> list[bool]:
    """For each model parameter, whether it is *frozen*: ``requires_grad=False`` and in none of the optimizer's
    groups (``index``: their ids). Nothing in training writes into it, so the monitor's snapshots do not copy it
    (``Monitor(snapshot_frozen=False)``, the default): a frozen backbone or the base model under LoRA adapters."""
    return [not p.requires_grad and id(p) not in index for p in params]


def _version(t: torch.Tensor) -> int:
    """``t._version``; ``-1`` for an inference tensor (created under ``torch.inference_mode()``: it has no version
    counter, and outside inference mode nothing can write into it in place)."""
    return -1 if t.is_inference() else t._version


def _versions(params: list[torch.Tensor], copies: list[torch.Tensor]) -> dict[int, int]:
    """``id -> _version`` of each parameter that stands for itself among ``copies`` (see ``Snapshot.versions``)."""
    return {id(p): _version(p) for p, c in zip(params, copies) if c is p}


def _copy_state_into(old: Any, new: Any) -> Any:
    """:func:`_copy_state` of ``new``, writing its tensors into ``old``'s (an earlier copy of the same state) where
    they fit, so a refreshed snapshot allocates nothing for them. Autograd must be off."""
    if isinstance(new, _Tensor):
        if _fits(old, new):
            old.copy_(new)
            return old
        return new.detach().clone()
    if type(new) is dict and type(old) is dict:
        return {k: _copy_state_into(old.get(k), v) for k, v in new.items()}
    return _copy_state(new)


#: The tensor types :meth:`Monitor._recapture` copies with ``torch._foreach_copy_`` (a subclass with its own
#: dispatch takes the general path).
_PLAIN_TENSORS = frozenset({torch.Tensor, torch.nn.Parameter})


_SIGNATURE = attrgetter("shape", "dtype", "device", "layout")


def _signature(tensors: list[torch.Tensor]) -> list[tuple[Any, ...]]:
    """What a copy must match for ``copy_`` to be a clone (``copy_`` would broadcast a shape and cast a dtype)."""
    return list(map(_SIGNATURE, tensors))


def _home_signature(copies: list[torch.Tensor], homes: dict[int, torch.device], device: torch.device
                    ) -> list[tuple[Any, ...]]:
    """:func:`_signature` of the tensors a snapshot's ``copies`` stand for: each with the device it was copied from
    (``homes``); a copy that is not on the snapshot's ``device`` (a loaded one not yet moved there) matches nothing."""
    return [(c.shape, c.dtype, homes.get(id(c), c.device) if c.device == device else None, c.layout) for c in copies]


def _opt_attrs(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer attributes a snapshot keeps (``_OPT_ATTR_TYPES``), copied."""
    out = {}
    for k, v in vars(opt).items():
        kind = type(v)
        if kind in _ATTR_ATOMIC:
            out[k] = v
        elif kind not in _CONTAINERS and isinstance(v, _OPT_ATTR_TYPES):  # tensors, subclasses of int/float/str
            out[k] = _copy_state(v)
    return out


def _grad_norms(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The L2 norm of every gradient: one ``torch._foreach_norm``, accumulated in float32 when any gradient is
    float16/bfloat16 (a finite float16 gradient can have a norm above float16's 65504); sparse gradients (an
    ``nn.Embedding(sparse=True)``), which ``_foreach_norm`` does not take, are normed one by one."""
    # grads are leaves that do not require grad, so no autograd graph is built (and no no_grad() is needed)
    low = False
    for g in grads:
        if g.dtype in _LOW_PRECISION:
            low = True
            break
    try:
        return torch._foreach_norm(grads, 2, dtype=torch.float32) if low else torch._foreach_norm(grads)
    except (NotImplementedError, RuntimeError):  # sparse gradients, or float64 next to float16 ones
        pass
    norms = []
    for g in grads:
        if g.layout == torch.sparse_coo:
            g = g.coalesce().values()  # an uncoalesced gradient may list an index twice: sum those first
        norms.append(torch.linalg.vector_norm(g, dtype=torch.float32 if g.dtype in _LOW_PRECISION else None))
    return norms


def _global_norms(norms: list[torch.Tensor]) -> list[torch.Tensor]:
    """``norms`` with every DTensor norm (of a sharded tensor: FSDP2's ``fully_shard``, tensor parallelism) made the
    norm over every rank's shard. Such a norm's ``.item()`` reads this rank's shard alone: under FSDP2 each rank saw
    a gradient norm of its own and decided apart (one rank clipped, skipped or rolled back its shard and backed off
    its LR while the others stepped on). One collective for all of them; every rank calls it (every rank runs the
    same full steps: the monitor calls it only with ``sync_loss`` given, see ``Monitor._global``). Tensors that are
    not DTensors are left as they are (no cost beyond a type check)."""
    idx = [i for i, n in enumerate(norms) if type(n).__name__ == "DTensor"]
    if not idx:
        return norms
    out = list(norms)
    try:
        full = torch.stack([norms[i] for i in idx]).full_tensor()  # one all-reduce of the stacked partial norms
        for j, i in enumerate(idx):
            out[i] = full[j]
    except (RuntimeError, NotImplementedError, ValueError):  # several meshes or placements: one at a time
        for i in idx:
            out[i] = norms[i].full_tensor()
    return out


#: How far a parameter the optimizer did not step may move and still count as not moved, in units of its dtype's
#: ``eps`` relative to each element: a projection the loop applies after each step (``w / ||w||``, a renorm) is not
#: bit-for-bit idempotent, and moves each weight by rounding (a unit or two in its last place) on a step it skips. An
#: optimizer's step moves the small weights by far more (Adam's by about ``lr`` whatever their size) — also in
#: bfloat16, whose whole tensor an AdamW step at lr=1e-3 moves by less than 16 of its units (a norm of the whole
#: tensor's change would not see it).
_ROUNDING_ULPS = 16


def _moved(param: torch.Tensor, before: torch.Tensor) -> bool:
    """Whether any element of ``param`` changed since ``before`` by more than rounding (:data:`_ROUNDING_ULPS` of
    its size); an element that became non-finite moved, one whose copy was non-finite tells nothing (not moved)."""
    if not param.is_floating_point():
        return not torch.equal(param, before)
    tol = _ROUNDING_ULPS * torch.finfo(param.dtype).eps
    within = (param - before).abs_() <= before.abs().mul_(tol)  # NaN (a weight that became NaN): not within
    return bool((~within & torch.isfinite(before)).any())


def _check_loss(loss: Any, what: str = "after_backward(loss)") -> None:
    """Raise a clear ``ValueError`` unless ``loss`` is one real number: a one-element real tensor (any shape, e.g.
    ``()`` or ``(1,)``), a Python/numpy int or float, or a one-element numpy array. Reads no value (no host sync)."""
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise ValueError(
                f"{what} needs a scalar loss, got a tensor of shape {tuple(loss.shape)}"
            )
        if loss.dtype.is_complex or loss.dtype == torch.bool:
            raise ValueError(f"{what} needs a real-valued loss, got a tensor of dtype {loss.dtype}")
        if loss.is_meta:
            raise ValueError(f"{what} needs a loss with a value, got a tensor on the meta device (which holds "
                             "none): compute the loss with the model on a real device (cpu, cuda, ...)")
        return
    kind = getattr(getattr(loss, "dtype", None), "kind", None)  # a numpy scalar's or array's
    # numpy's timedelta64 subclasses its signedinteger (a numbers.Real), but its .item() is a datetime.timedelta
    if isinstance(loss, numbers.Real) and not isinstance(loss, bool) and kind != "m":
        if isinstance(loss, int) and not -(2**1023) < loss < 2**1023:  # float(10**400) raises OverflowError
            raise ValueError(f"{what} needs a loss a float can hold, got an int of "
                             f"{int(math.log10(abs(loss))) + 1} digits")  # str() refuses past 4300 digits
        return  # int, float, numpy integer and floating scalars (numpy's bool_ is no numbers.Real)
    if kind in ("f", "i", "u") and getattr(loss, "size", 0) == 1:
        return
    raise ValueError(
        f"{what} needs a scalar loss (a tensor or a real number), got "
        f"{type(loss).__name__} {loss!r:.60}"
    )


def _loss_sign(optimizer: torch.optim.Optimizer) -> float:
    """The sign the monitor reads every loss with (:func:`lrkit._utils.maximize_sign`, the convention of
    :func:`lrkit.find_lr`): ``-1.0`` when every param group (with parameters) has ``maximize=True``, else ``1.0``."""
    return maximize_sign(optimizer, "the Monitor reads after_backward(loss) as the quantity the optimizer lowers (its "
                                    "negative under maximize=True) and needs one direction to judge it by")


def _warn_unrelated_model(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Warn when the model has trainable parameters and the optimizer trains none of them: most likely the optimizer
    was built on another copy of the model (``copy.deepcopy``, a model rebuilt after the optimizer), so a rollback
    would restore a model nobody trains. An optimizer over part of the model (a fine-tuned head) or over tensors
    outside a *frozen* model (an input image under a frozen network) is fine and not warned about."""
    ours = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if not ours:
        return
    trainable = 0
    for p in model.parameters():
        if id(p) in ours:
            return
        trainable += bool(p.requires_grad)
    if not trainable:
        return
    warnings.warn(
        f"lrkit.Monitor: none of the optimizer's {len(ours)} parameter tensors is a parameter of the model "
        f"({type(model).__name__}, {trainable} trainable parameter tensors): the optimizer trains another model "
        "(built on a copy, or the model was rebuilt after the optimizer?), so a rollback would restore this model "
        "and not the weights being trained. Pass the model the optimizer trains, Monitor(model, optimizer). If the "
        "optimizer trains tensors outside the model on purpose (an input image under a network), freeze the "
        "model's parameters (model.requires_grad_(False)) to say so.",
        UserWarning, stacklevel=stacklevel_outside_lrkit())


def _refuse_non_scheduler(scheduler: Any) -> None:
    """A clear ``ValueError`` for the stateful objects a loop holds that are *not* LR schedulers but would pass the
    ``state_dict()``/``load_state_dict()`` test, passed third by position (``Monitor(model, optimizer, criterion)``,
    ``Monitor(model, optimizer, scaler)``): before, each was taken as the scheduler, and a rollback restored it in
    the scheduler's place while the back-off looked for scheduler keys it does not have."""
    if scheduler is None or isinstance(scheduler, type):
        return
    from torch.amp import GradScaler

    name = type(scheduler).__name__
    if isinstance(scheduler, (list, tuple)) and scheduler and all(callable(getattr(s, "step", None))
                                                                  for s in scheduler):
        _refuse_several_schedulers(scheduler)
    if isinstance(scheduler, GradScaler):
        raise ValueError(f"scheduler={name} is a gradient scaler, not an LR scheduler: pass it as "
                         f"grad_scaler=scaler (Monitor(model, optimizer, scheduler, grad_scaler=scaler)), and the "
                         "LR scheduler your loop steps, if any, as scheduler=")
    if isinstance(scheduler, torch.optim.Optimizer):
        raise ValueError(f"scheduler={name} is an optimizer, not an LR scheduler: Monitor(model, optimizer, "
                         "scheduler) takes the optimizer second and the LR scheduler your loop steps for it third "
                         "(or scheduler=None)")
    if isinstance(scheduler, torch.nn.Module):
        raise ValueError(f"scheduler={name} is a torch.nn.Module (a loss function or a model?), not an LR scheduler: "
                         "Monitor(model, optimizer, scheduler) takes the LR scheduler your loop steps third (or "
                         "scheduler=None); the loss goes to monitor.after_backward(loss) each step")


def _refuse_several_schedulers(schedulers: list[Any] | tuple[Any, ...]) -> None:
    """The ``ValueError`` for a list or tuple of schedulers (a warmup and a decay stepped side by side): the monitor
    restores and backs off one scheduler object, and torch's ``ChainedScheduler`` is one that holds several."""
    shown = ", ".join(type(s).__name__ for s in schedulers)
    shown = f"[{shown}]" if isinstance(schedulers, list) else f"({shown})"
    what = f"scheduler={shown} is a {type(schedulers).__name__}: the monitor takes one scheduler object"
    if any(isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau) for s in schedulers):
        raise ValueError(
            f"{what}, and torch's ChainedScheduler, which holds several, cannot chain a ReduceLROnPlateau (its step "
            "needs the metric). Use one scheduler, e.g. an lrkit schedule with a warmup in front of its plateau "
            "(lrkit.schedules.from_spec('plateau warmup_steps=...').to_torch(optimizer), scheduler.observe(metric) "
            "per evaluation)"
        )
    raise ValueError(
        f"{what}. For several stepped on this optimizer, pass them held as one: "
        "torch.optim.lr_scheduler.ChainedScheduler([...]) (it only holds them: keep stepping each as you do; a "
        "rollback restores every one and the back-off scales every one)"
    )


def _check_scheduler(scheduler: Any, optimizer: torch.optim.Optimizer) -> None:
    """A clear ``ValueError`` unless ``scheduler`` is a scheduler *instance* that drives ``optimizer``'s LR: a rollback
    restores it with model and optimizer, and the back-off scales what it computes the LR from, which is nonsense for
    another optimizer's scheduler (the back-off would land there, not on the LR being trained with)."""
    from lrkit.schedules.base import Schedule

    if isinstance(scheduler, type):
        raise ValueError(
            f"scheduler={scheduler.__name__} is a class: pass the scheduler you step, e.g. "
            f"scheduler={scheduler.__name__}(optimizer, ...)"
        )
    if isinstance(scheduler, Schedule):
        raise ValueError(
            f"scheduler={scheduler!r} is an lrkit Schedule (step -> LR multiplier), which sets no LR by itself: pass "
            "the scheduler your loop steps, e.g. scheduler=schedule.to_torch(optimizer)"
        )
    ours = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for s in _schedulers(scheduler):
        owner = getattr(s, "optimizer", None)
        if owner is None or owner is optimizer:
            continue
        groups = getattr(owner, "param_groups", None)
        theirs = {id(p) for g in groups for p in g["params"]} if isinstance(groups, list) else None
        # an optimizer wrapper (accelerate, Lightning, ...) shares the wrapped optimizer's param-group dicts; a second
        # optimizer built over the same parameters has its own, and its scheduler never moves this one's LR
        same_groups = isinstance(groups, list) and not {id(g) for g in groups}.isdisjoint(
            map(id, optimizer.param_groups))
        if theirs != ours or not (same_groups or _wraps(owner, optimizer) or _wraps(optimizer, owner)):
            shared = len(ours & theirs) if theirs is not None else 0
            raise ValueError(
                f"scheduler {type(s).__name__} steps another optimizer ({type(owner).__name__} over "
                f"{len(theirs or ())} parameter tensors, {shared} of them the monitor's) than the monitor's "
                f"({type(optimizer).__name__} over {len(ours)}): pass the scheduler of this optimizer (built on it "
                "after it, not on a copy), or scheduler=None"
            )


def _wraps(outer: Any, inner: Any) -> bool:
    """Whether ``outer`` is an optimizer wrapper around ``inner`` (``.optimizer`` / ``._optimizer``, a few deep)."""
    for _ in range(4):
        outer = getattr(outer, "optimizer", None) or getattr(outer, "_optimizer", None)
        if outer is None:
            return False
        if outer is inner:
            return True
    return False


def _finding(check: Check, found: Any) -> Finding:
    """``found`` (what ``check.check()`` returned, not ``None``) as a :class:`Finding` an event can carry: its reason
    a ``str``, its values a new dict of ``str`` -> ``int``/``float`` (numpy scalars and one-element tensors converted);
    anything else is a ``TypeError`` naming the check, here rather than when the events are written out."""
    if not isinstance(found, Finding):
        raise TypeError(
            f"check {check.name!r} returned {type(found).__name__} {found!r:.60}: Check.check() must return a "
            "lrkit.monitor.Finding(reason, values) or None"
        )
    if not isinstance(found.reason, str):
        raise TypeError(
            f"check {check.name!r} returned a Finding whose reason is {type(found.reason).__name__} "
            f"{found.reason!r:.60}: it must be a str (a sentence a person can read)"
        )
    if not isinstance(found.values, Mapping):
        raise TypeError(
            f"check {check.name!r} returned a Finding whose values is {type(found.values).__name__} "
            f"{found.values!r:.60}: it must be a dict of str -> number, e.g. {{'loss': 1.5}}"
        )
    values: dict[str, float] = {}
    for key, value in found.values.items():
        if not isinstance(key, str):
            raise TypeError(
                f"check {check.name!r} returned a Finding whose values key {key!r} is {type(key).__name__}: keys "
                "must be str"
            )
        values[key] = _event_number(check, key, value)
    return Finding(found.reason, values)


def _event_number(check: Check, key: str, value: Any) -> float:
    """``value`` as a plain ``int``/``float`` for an event (JSON-ready), or a ``TypeError`` naming check, key, type.

    ``bool`` is refused (an event's values are numbers a plot can draw; write ``float(flag)`` for a flag)."""
    kind = type(value)
    if kind is float or kind is int:
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return int(value) if isinstance(value, numbers.Integral) else float(value)  # numpy scalars, ...
    if isinstance(value, torch.Tensor):
        ok = value.numel() == 1 and not (value.dtype.is_complex or value.dtype == torch.bool)
    else:  # a one-element numpy array
        ok = getattr(getattr(value, "dtype", None), "kind", None) in ("f", "i", "u") and getattr(value, "size", 0) == 1
    if ok:
        return value.item()
    raise TypeError(
        f"check {check.name!r} returned a Finding whose values[{key!r}] is {type(value).__name__} {value!r:.40}: "
        "values must be real numbers (int or float; a numpy scalar or a one-element tensor is converted)"
    )


def _validate_checks(checks: Any) -> list[Check]:
    """``checks`` as a list of :class:`Check` instances with sane ``every``/``cooldown``, or a clear ``ValueError``."""
    if checks is None:
        return default_checks()
    if isinstance(checks, Check):
        raise ValueError(f"checks= takes a list of checks, got one check: write checks=[{checks!r}]")
    if isinstance(checks, (str, bytes)) or not isinstance(checks, Sequence):
        raise ValueError(f"checks={checks!r} must be a list of Check instances (lrkit.monitor.checks)")
    out = list(checks)
    for c in out:
        if not isinstance(c, Check):
            hint = ""
            if isinstance(c, str):
                valid = [k.name for k in default_checks()]
                hint = (f"; to configure the built-in {c!r} check, pass an instance, e.g. lrkit.monitor.LossSpike(), "
                        f"or use actions={{{c!r}: ...}} — check names: {', '.join(valid)}")
            raise ValueError(
                f"checks must be Check instances (lrkit.monitor.checks), got {type(c).__name__} {c!r}{hint}"
            )
        if c.category not in CATEGORIES:
            raise ValueError(f"check {c.name!r} has category {c.category!r}; valid: {sorted(CATEGORIES)}")
        for attr, low in (("every", 1), ("cooldown", 0)):
            value = getattr(c, attr)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"check {c.name!r}: {attr}={value!r} must be an integer >= {low}")
    return out


def _plain_float(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    return v


def _from_plain(v: Any) -> Any:
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    return v


@dataclass(frozen=True)
class MonitorEvent:
    """One thing the monitor saw and what it did about it.

    Attributes:
        step: 0-based index of the ``after_backward`` call (the loop's optimizer-step index) it happened at; for
            a validation event, the latest step before the evaluation (``0`` for one before any training step).
        check: name of the check that fired (``"loss_spike"``, ...) or ``"monitor"`` for the monitor's own
            decisions (rollback limit reached).
        values: the numbers the check compared (loss, median, threshold, ...), plus the LR at that step.
        action: what was done: ``"warn"``, ``"clip"``, ``"skip"``, ``"rollback"`` or ``"stop"``.
        reason: a sentence a person can read.

    >>> e = MonitorEvent(12, "loss_spike", {"loss": float("nan")}, "rollback", "loss is nan")
    >>> e.to_dict()["values"]
    {'loss': 'nan'}
    >>> MonitorEvent.from_dict(e.to_dict()).values["loss"] != 0
    True
    """

    step: int
    check: str
    values: dict[str, float] = field(hash=False)
    action: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; non-finite values become the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
        return {
            "step": self.step,
            "check": self.check,
            "values": {k: _plain_float(v) for k, v in self.values.items()},
            "action": self.action,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MonitorEvent:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, Mapping):
            raise ValueError(f"not a MonitorEvent dict (its to_dict()): got {type(d).__name__}")
        missing = {"step", "check", "values", "action", "reason"} - set(d)
        if missing:
            raise ValueError(f"not a MonitorEvent dict: missing keys {sorted(missing)}")
        if not isinstance(d["values"], Mapping):
            raise ValueError(f"not a MonitorEvent dict: 'values' must be a dict, got {type(d['values']).__name__}")
        step = as_scalar(d["step"])
        # an int (a JSON reader may give 12.0); int() would have truncated 3.7 and called "x" an invalid literal
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise ValueError(f"not a MonitorEvent dict: 'step' must be an integer (the optimizer step), got "
                             f"{type(d['step']).__name__} {d['step']!r:.40}")
        return cls(int(step), str(d["check"]), {k: _from_plain(v) for k, v in d["values"].items()},
                   str(d["action"]), str(d["reason"]))  # fmt: skip


def _healthy_state(held: _Healthy, params: list[torch.Tensor], buffers: list[torch.Tensor],
                   copy: bool = True) -> dict[str, Any]:
    """A held snapshot (healthy or best-validation) as plain values and tensors, for ``state_dict(snapshot=True)``.
    With ``copy=False`` it holds the snapshot's own tensors (for a checkpoint written at once, before the next
    refresh changes them in place: no transient second copy of the model and its optimizer state).

    Its copies are saved in the order of the model's ``params`` and ``buffers`` now, matched by identity, with
    ``None`` for a tensor the snapshot does not know (a layer inserted since): a restore by position after the
    resume must not write a removed layer's weights into the layer that took its place (see ``Monitor._aligned``).
    """
    snap = held.snapshot
    old_params, old_buffers = held.members
    saved_params: list[torch.Tensor | None] = list(snap.params)
    saved_buffers: list[torch.Tensor | None] = list(snap.buffers)
    if not (_same_objects(old_params, params) and _same_objects(old_buffers, buffers)):
        heirs_p, heirs_b = _slot_heirs(held, params, buffers)  # a tensor replaced under the same name since
        by_id = {id(p): c for p, c in zip(old_params, snap.params)}
        saved_params = [by_id.get(id(p), heirs_p.get(id(p))) for p in params]
        by_id = {id(b): c for b, c in zip(old_buffers, snap.buffers)}
        saved_buffers = [by_id.get(id(b), heirs_b.get(id(b))) for b in buffers]
    # a frozen parameter the snapshot did not copy (it stands for itself) is saved as None: a restore after the
    # resume leaves it as it is, as the uncopied one does
    saved_params = [None if c is p else c for c, p in zip(saved_params, params)]
    big = _clone_tree if copy else _as_is  # the tensors that scale with the model
    return {
        "step": held.step,
        "lr_scale": held.lr_scale,
        "record": _clone_tree(held.record),
        "params": big(saved_params),
        "buffers": big(saved_buffers),
        "modes": list(snap.modes),
        "opt_state": big(snap.opt_state),
        "opt_groups": _clone_tree(snap.opt_groups),
        "sched_state": _clone_tree(snap.sched_state),
        "extra_params": [big(value) for _, value, _ in snap.extra_params],
        "opt_attrs": _clone_tree(snap.opt_attrs),
        "opt_other_state": _plain_keyed(snap.opt_other_state),
        "scaler": _clone_tree(held.scaler),
        # the wrapped optimizers' own state (ZeroRedundancyOptimizer's shard, SAM's base_optimizer), in
        # inner_optimizers() order; the rank says whose shard a sharded one holds
        "inner": [{"opt_state": big(s.opt_state), "opt_groups": _clone_tree(s.opt_groups),
                   "opt_attrs": _clone_tree(s.opt_attrs), "opt_other_state": _plain_keyed(s.opt_other_state),
                   "rank": _rank()} for s in snap.inner],
    }


def _refuse_foreign_groups(saved_groups: Any, optimizer: Any, what: str, name: str) -> None:
    """A ``ValueError`` when a held snapshot's param groups lack a hyperparameter that ``optimizer``'s own groups
    hold (one of its ``defaults``): the snapshot was taken of another kind of optimizer (an SGD's snapshot loaded
    into a monitor of an Adam). A restore puts the groups back as they were saved, so the next ``optimizer.step()``
    after a rollback would fail deep inside torch (``KeyError: 'betas'``), on optimizer state of the other kind."""
    defaults = getattr(optimizer, "defaults", None)
    if not isinstance(defaults, Mapping):
        return
    for i, (saved, group) in enumerate(zip(saved_groups, optimizer.param_groups)):
        if not isinstance(saved, Mapping):
            continue
        missing = [k for k in group if k in defaults and k != "params" and k not in saved]
        if missing:
            shown = first_few(missing, 4)
            raise ValueError(
                f"Monitor state_dict: its {what} snapshot does not fit the optimizer: its param group {i} has no "
                f"{shown}, which {name}'s groups hold, so it was taken of another kind of optimizer (or under a "
                f"torch that did not have them; a rollback "
                f"would restore that optimizer's hyperparameters and state into {name}); load it into a monitor of "
                "the same optimizer, or, to keep counters and events with a new optimizer, leave the snapshots out: "
                "monitor.load_state_dict({k: v for k, v in state.items() if k not in ('healthy', 'best_val')})"
            )


# public scheduler state keys that torch releases added or dropped (not a sign of another kind of scheduler)
_SCHED_VERSION_KEYS = frozenset({"verbose"})


def _refuse_foreign_scheduler_state(saved: Any, scheduler: Any, what: str) -> None:
    """A clear ``ValueError`` when a held snapshot's scheduler state was saved from another kind of scheduler than
    this monitor's (a run resumed with a new schedule): a rollback would load it into this one, which torch's
    ``load_state_dict`` (``__dict__.update``) takes silently (StepLR's state made a CosineAnnealingLR jump to the old
    run's clock and keep ``step_size``/``gamma``). Told apart by public state keys each has and the other lacks;
    private ones, and those torch releases changed, are left out."""
    if scheduler is None or not isinstance(saved, Mapping):
        return
    live = scheduler.state_dict()
    if not isinstance(live, Mapping):
        return

    def public(keys: Any) -> set[str]:
        return {k for k in keys if isinstance(k, str) and not k.startswith("_")} - _SCHED_VERSION_KEYS

    only_saved, only_live = sorted(public(saved) - public(live)), sorted(public(live) - public(saved))
    if only_saved and only_live:
        raise ValueError(
            f"Monitor state_dict: its {what} snapshot holds the state of another kind of scheduler than this "
            f"monitor's {type(scheduler).__name__} (with {', '.join(only_saved[:4])}; this one has "
            f"{', '.join(only_live[:4])}), and a rollback would load it into this one. Load it into a monitor of the "
            "scheduler it was saved with, or leave the snapshot out (state.pop('healthy'); the monitor takes a "
            "fresh one at the next healthy step)"
        )


def _as_is(value: Any) -> Any:
    return value


def _loss_device(loss: Any) -> torch.device:
    """Where the all-reduce of a loss runs: under NCCL the loss tensor's device (a float's: this rank's current GPU),
    else the CPU."""
    if torch.distributed.get_backend() != "nccl":
        return torch.device("cpu")
    if isinstance(loss, torch.Tensor) and loss.device.type == "cuda":
        return loss.device
    return torch.device("cuda", torch.cuda.current_device())


def _plain_keyed(other_state: Mapping[Any, Any]) -> dict[Any, Any]:
    """The optimizer state kept under keys that are not parameters (a global step counter), copied, for a saved
    snapshot: the entries under plain keys (a string, a number), which a checkpoint can hold."""
    return {k: _clone_tree(v) for k, v in other_state.items() if type(k) in _ATOMIC}


def _has_hook_tables(optimizer: Any) -> bool:
    """Whether torch's step hooks can be registered on ``optimizer`` (an ``Optimizer`` subclass that skipped
    ``Optimizer.__init__``, as accelerate's ``AcceleratedOptimizer`` does, has no hook tables)."""
    return (callable(getattr(optimizer, "register_step_post_hook", None))
            and isinstance(getattr(optimizer, "_optimizer_step_post_hooks", None), dict)
            and isinstance(getattr(optimizer, "_optimizer_step_pre_hooks", None), dict))


def _hookable(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer | None:
    """The optimizer whose step hooks see ``optimizer``'s steps and param groups: itself, or — for a wrapper without
    hook tables that shares its param groups (accelerate's ``AcceleratedOptimizer``) — the optimizer it wraps."""
    if _has_hook_tables(optimizer):
        return optimizer
    for inner in inner_optimizers(optimizer, own_state=False):
        if inner.param_groups is optimizer.param_groups and _has_hook_tables(inner):
            return inner
    return None


def _register_step_hooks(optimizer: torch.optim.Optimizer, hook: Callable[..., None], *, inner: bool
                         ) -> list[Any]:
    """Register ``hook`` as a step post-hook on ``optimizer`` and, with ``inner``, on every optimizer it wraps
    (:func:`inner_optimizers`), each that has torch's hook tables; return the handles."""
    handles = []
    for opt in (optimizer, *(inner_optimizers(optimizer, own_state=False) if inner else ())):
        if not _has_hook_tables(opt):
            continue
        try:
            handles.append(opt.register_step_post_hook(hook))
        except (AttributeError, TypeError, RuntimeError):  # an optimizer without torch's hook tables after all
            pass
    return handles


#: The micro-batch warning's advice for an accelerate loop (see :func:`_is_accelerated`).
_ACCELERATE_HINT = (
    " Under accelerate's `with accelerator.accumulate(model):`, call them only when accelerator.sync_gradients is "
    "True: AcceleratedOptimizer.step() does nothing on the other micro-batches"
)


def _is_accelerated(optimizer: Any) -> bool:
    """Whether ``optimizer`` is accelerate's ``AcceleratedOptimizer`` (told by its class and module names: accelerate
    is not imported for it)."""
    return any(c.__name__ == "AcceleratedOptimizer" and c.__module__.startswith("accelerate")
               for c in type(optimizer).__mro__)


def _clock(scheduler: Any) -> Any:
    """The scheduler's clock (``last_epoch``), or that of the scheduler an accelerate ``AcceleratedScheduler`` wraps
    (the wrapper has none); ``None`` when there is none to read."""
    now = getattr(scheduler, "last_epoch", None)
    if now is None and (inner := wrapped_scheduler(scheduler)) is not None:
        now = getattr(inner, "last_epoch", None)
    return now


def _accelerate_processes() -> int:
    """accelerate's ``num_processes`` once an ``Accelerator`` exists in this process (its state is process-wide), else
    1. Read from accelerate's shared state only when accelerate is already imported: nothing is imported or made."""
    state = sys.modules.get("accelerate.state")
    shared = getattr(getattr(state, "PartialState", None), "_shared_state", None)
    n = shared.get("num_processes") if isinstance(shared, dict) else None
    return n if type(n) is int and n > 1 else 1


def _clock_moves(scheduler: Any) -> int:
    """How far one optimizer step moves the clock of :func:`_clock`: 1, or ``num_processes`` for accelerate's
    ``AcceleratedScheduler``, which steps the scheduler it wraps that many times per optimizer step (each step of the
    prepared loader holds that many of the unprepared loader's batches) unless ``split_batches=True`` or
    ``step_with_optimizer=False``."""
    if wrapped_scheduler(scheduler) is None or getattr(scheduler, "split_batches", True):
        return 1
    return _accelerate_processes() if getattr(scheduler, "step_with_optimizer", False) else 1


def _rank() -> int | None:
    """This process's rank under torch.distributed, ``None`` outside it."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else None


@dataclass
class _Healthy:
    """The last healthy state: a snapshot taken before a step whose loss and gradients passed every check."""

    snapshot: Snapshot
    step: int
    lr_scale: float
    record: dict[str, Any]
    #: The model's parameters and buffers the snapshot's copies belong to, in its order (see Monitor._aligned).
    members: tuple[list[torch.Tensor], list[torch.Tensor]]
    #: ``grad_scaler.state_dict()`` when the snapshot was taken (``None``: no scaler, or a disabled one).
    scaler: dict[str, Any] | None = None
    #: How the snapshot's tensors were last written (see Monitor._recapture); ``None``: worked out when needed.
    plan: _Plan | None = field(default=None, repr=False, compare=False)
    #: Each module with its parameter and buffer entries when the snapshot was taken (:func:`_named_slots`), for a
    #: restore by name of a tensor replaced since (:func:`_slot_heirs`). Taken with the general capture only: a
    #: refresh in place holds the same members, so it keeps the entries of the snapshot it refreshes.
    slots: _Slots | None = field(default=None, repr=False, compare=False)
    #: How many parameters each of the optimizer's param groups held when the snapshot was taken (its
    #: ``opt_param_refs`` cut into groups), to give each group its own saved hyperparameters back after the loop
    #: removed or reordered groups (:meth:`Monitor._match_groups`); ``None``: by position (a loaded snapshot).
    group_sizes: tuple[int, ...] | None = field(default=None, repr=False, compare=False)


class _Plan(NamedTuple):
    """How :meth:`Monitor._recapture` refreshes a held snapshot in place: the optimizer's parameter -> position map
    (``id`` -> index into the snapshot's ``opt_param_refs``), the snapshot's tensors in copy order (parameter
    copies, buffer copies, optimizer-state tensors in ``optimizer.state`` order) and their
    ``(shape, dtype, device, layout)``."""

    index: dict[int, int]
    dst: list[torch.Tensor]
    sig: list[tuple[Any, ...]]


class Monitor:
    """Training-health monitor: checks every step, then warns, clips, skips, rolls back with an LR back-off, or stops.

    Each check (see :mod:`lrkit.monitor.checks`) belongs to a category whose action you choose:

    ==================== ====================================================== ======================= ==========
    category             checks                                                 keyword                 default
    ==================== ====================================================== ======================= ==========
    divergence/overshoot ``non_finite``, ``loss_spike``, ``gradient_blowup``,   ``on_divergence``       rollback
                         ``loss_rising``, ``oscillation``
    exploding gradients  ``exploding_gradients``                                ``on_explode``          clip
    LR too low           ``lr_too_low``                                         ``on_too_low``          warn
    validation rising    ``val_rising`` (needs :meth:`after_validation` calls)  ``on_overfit``          rollback
    ==================== ====================================================== ======================= ==========

    A rollback restores the last healthy in-memory snapshot of model, optimizer and scheduler (refreshed every
    ``snapshot_every`` healthy steps), then multiplies the LR by ``backoff`` — in a way that survives the
    scheduler's later steps (:func:`lrkit.monitor.actions.backoff_lr`). Back-offs compound: after ``k`` rollbacks
    the LR is ``backoff ** k`` times what the schedule says (``lr_scale``). After ``max_rollbacks`` rollbacks
    the next one becomes a stop, with a reason.

    The loss is read as the quantity the optimizer *lowers*. With ``maximize=True`` in every param group (torch's
    optimizers then ascend the value whose gradients they get) the value passed to :meth:`after_backward` and
    :meth:`after_validation` is the objective being maximised, and the monitor reads its negative — the same
    convention as :func:`lrkit.find_lr`: a maximised run and its minimising twin (objective negated) see the same
    checks fire at the same steps. So the record, ``state_dict()`` and each event's values hold the **negated
    objective** (``loss = -objective``); such events carry ``values["loss_sign"] = -1.0`` and say so in their reason,
    and ``monitor.loss_sign`` is ``-1.0``. Param groups that disagree on ``maximize`` are a ``ValueError`` at
    construction naming the groups; the direction is read once, at construction (a group added later with another
    ``maximize`` is not noticed).

    Args:
        model: the model being trained. A model with trainable parameters of which the optimizer holds none (it
            was built on another copy) is warned about at construction: a rollback would restore the wrong model.
        optimizer: its optimizer. ``maximize=True`` in every group: the losses given are objectives to raise (above).
        scheduler: an optional LR scheduler (any ``torch.optim.lr_scheduler.LRScheduler``, lrkit's or torch's own),
            restored together with model and optimizer on rollback and scaled by the back-off. An optimizer, a
            ``torch.nn.Module`` (the loss function passed third by position) or a ``GradScaler`` (``grad_scaler=``)
            is refused with a ``ValueError`` naming it.
        on_divergence, on_explode, on_too_low, on_overfit: the action per category (``"warn"``, ``"clip"``
            (explode only), ``"skip"`` (not overfit), ``"rollback"``, ``"stop"``; ``None``/``"ignore"`` switches
            the category off). ``on_overfit`` acts on the validation losses given to :meth:`after_validation`: a
            rollback there returns to the best-validation snapshot (weights, buffers, optimizer state), keeps the
            schedule's clock and the groups' current hyperparameters, and multiplies the LR by ``val_backoff``.
        checks: the checks to run (default :func:`~lrkit.monitor.checks.default_checks`); pass instances with
            your own thresholds, e.g. ``[NonFinite(), LossSpike(ratio=3.0)]``.
        actions: per-check overrides by check name, e.g. ``{"oscillation": "warn"}``.
        backoff: LR multiplier applied at each rollback, in (0, 1).
        val_backoff: LR multiplier applied at each validation rollback (``on_overfit``), in (0, 1). Stronger than
            ``backoff`` by default: evaluations are rare (once per epoch), so each one has to count.
        max_rollbacks: rollbacks allowed before the monitor stops the run instead.
        snapshot_every: refresh the healthy snapshot once this many steps have passed since the last one (at the
            next full step whose checks all pass; one copy of parameters, buffers and optimizer state is kept).
        grad_every: a *full* step — global gradient norm, gradient checks, windowed checks, snapshot — runs every
            ``grad_every`` steps, on every step whose loss is above the starting loss or the loss-spike threshold,
            and on every step for 50 steps after any event; every other step only reads the loss and compares it
            with that bound. ``grad_every=1`` makes every step full (clipping then acts on any step; costs a few
            torch ops per step, which matters only for sub-millisecond steps).
        sample_every: measure the update-to-weight ratio every this many steps (only when a check needs it).
        spike_grace: ``3`` (the default) or any ``k > 0`` lets a run absorb
            one transient spike by itself (a loss that jumps at the stability edge, typically as a warmup reaches
            its peak, and comes back within a few steps — the run is better off left alone): a finite spike below
            ``10 * |L0|`` from a trained state (the spike check's running median at most ``0.7 * |L0|``) opens a
            grace episode; it and any spike of the next ``k`` steps are taken with no event, the healthy snapshot is
            not refreshed meanwhile and every step of the episode is a full step. The monitor acts (the
            ``loss_spike`` action, the event naming the episode) on a spike ``k + 1`` to ``50`` steps after the
            episode began (the spike persisted, or came back: one forgiven episode per 50 steps), and at once on a
            spike above ``10 * |L0|`` or one before the run has learned (a spike from the start means the LR is too
            high from the outset, and forgiving it loses rescues). Non-finite losses and gradients and
            ``gradient_blowup`` are never graced. ``actions={"loss_spike": ...}`` still chooses what is done.
            ``0`` acts on every ``loss_spike`` finding at once (the default before a pre-registered test on a fresh
            task set made it 3; see the README).
        val_min_share: ``None`` (the default) leaves the ``val_rising`` check as it is (its own ``min_share``, ``0``
            unless you pass a :class:`~lrkit.monitor.checks.ValidationRising` with another). A number ``s >= 0`` sets
            ``min_share=s`` on every ``ValidationRising`` among the checks: a validation loss risen above its best
            then also has to give back more than ``s`` of the progress made since the first evaluation
            (``val_loss - best > s * (V1 - best)``) — the evaluation-to-evaluation jitter of a regression trained
            close to its noise floor is small next to that progress, memorisation is not. Opt-in: chosen on the
            tasks it fixed, then pre-registered on a fresh set where it changed nothing, so not the default (README).
        val_patience: ``None`` (the default) leaves the ``val_rising`` check as it is (its own ``patience``, ``2``
            unless you pass a :class:`~lrkit.monitor.checks.ValidationRising` with another). An integer ``k >= 1``
            sets ``patience=k`` on every ``ValidationRising`` among the checks: the best validation loss must be at
            least ``k`` evaluations old before a rise above it counts, so a one- or two-epoch jump of the validation
            loss that comes back (a run at the edge of stability) is no alarm, while a lasting rise still is.
            ``lrkit.train``'s monitor passes ``3`` (README: *Training health*).
        collapse_check: whether to add :class:`~lrkit.monitor.checks.LossAboveStart` (``loss_above_start``,
            divergence: ``on_divergence``'s action, rollback by default) to the checks. ``False`` (the default):
            never; ``True`` adds it to any ``checks`` (the default ones or yours); ``None``: added to the default
            checks (``checks=None``), not to a ``checks=`` list you give. It is not added twice when ``checks``
            already holds one. With it, a median of the last 50 losses still
            at or above ``L0 - 0.05 * |L0|`` (``0.95 * L0`` for a positive ``L0``) — a run that collapsed to chance
            in its warmup, or jumped above its starting loss and stays there — rolls back and backs off. It is
            judged on full steps (see ``grad_every``) from step 75 on, at most every 25 steps: with the default
            ``grad_every=64`` a healthy run is typically first judged at step 128, then every 64; after a rollback only
            the 50 losses trained since count. A run that barely learns in its first ~128 steps at a *low* LR looks
            the same by its loss; the check then stays quiet while the sampled update-to-weight ratios are below its
            ``min_update_ratio`` (it has them sampled whatever the other checks, see ``sample_every``). A slow
            starter at the *right* LR (a parity task, a recurrent net at chance for its first ~150 steps) looks the
            same too, and is rolled back: adopted as the default on the seventh fresh task set, it was turned off
            again on the eighth, where it did that to a healthy run (+0% -> +234%) (README).
        restore_on_stop: on a stop caused by a divergence/explode check, restore the last healthy snapshot,
            keeping the back-offs made since it was taken (the LR stays ``lr_scale`` times the schedule's).
        grad_scaler: a ``torch.amp.GradScaler`` (anything with ``state_dict()``/``load_state_dict()``); non-finite
            gradients are then left to it (it skips those steps and lowers its scale) instead of counting as
            divergence — unless it is disabled (``GradScaler(enabled=False)`` skips nothing). Its state (scale,
            growth tracker) is part of the healthy snapshot: a rollback, and a stop with ``restore_on_stop``,
            restore it with model, optimizer and scheduler, and ``state_dict(snapshot=True)`` carries it. A
            validation rollback leaves it as it is, as it leaves the scheduler.
            ``after_backward`` calls ``scaler.unscale_(optimizer)`` when the loop has not yet this iteration
            (torch's AMP recipe without clipping leaves it to ``scaler.step``): the checks then read the true
            gradient norms, and a step the monitor neutralises still reaches ``scaler.step`` with the scaler's inf
            check recorded. Call ``scaler.unscale_`` (e.g. to clip) *before* ``after_backward``, not after.
        on_event: called with every :class:`MonitorEvent` as it happens (logging, progress bars). An exception it
            raises (or a ``MonitorWarning`` turned into an error by a warnings filter) does not interrupt the
            monitor's handling of the step: it is raised, the first one only, once the monitor has finished — from
            ``after_step`` for the events of ``after_backward`` and of ``after_step`` (after the skip or rollback is
            done), from ``after_validation`` for a validation event (after its rollback). The monitor stays
            consistent and can be used on.
        sync_loss: under ``torch.distributed``, average the losses given to ``after_backward`` and
            ``after_validation`` over the ranks first (one all-reduce of a scalar per call), so every rank takes the
            same decision from its own shard's loss. Every rank must then call the monitor at every step. Without
            an initialised process group it changes nothing. ``False``: the loop passes the same (already
            averaged) loss on every rank. ``None`` (the default) is ``False`` that warns once, at the first
            ``after_backward`` in a process group of more than one rank, that a per-rank loss lets the ranks decide
            apart (say ``True`` or ``False`` to silence it).
        snapshot_device: where the held snapshots (healthy, best-validation, a skipped step's pre-step copy) keep
            their copies. ``None`` (the default): each on the device of the tensor it copies — on a GPU, up to two
            more copies of the model and its optimizer state in GPU memory. ``"cpu"`` (or a ``torch.device``): all
            there, in pinned host memory when copied from CUDA (blocking copies); a rollback writes each value back
            onto its own tensor's device and dtype, bit for bit, and a refresh writes into the same host buffers.
        snapshot_frozen: also copy *frozen* parameters — ``requires_grad=False`` and in none of the optimizer's
            groups — into the snapshots. ``False`` (the default): they are not copied, since training does not write
            into them, so a fine-tuning run with a frozen backbone (or a base model under LoRA adapters) holds
            copies of what it trains only, and a rollback leaves frozen parameters as they are. A frozen parameter
            unfrozen later and added to the optimizer (``add_param_group``) is copied into the held snapshots at the
            next ``after_backward``, before any step trains it; one that changed in between anyway (written in
            place, or trained before the monitor saw it) is named in a warning at the rollback, which leaves it as
            it is. ``True``: every parameter is copied (a model that writes into frozen parameters itself, e.g. an
            EMA teacher kept inside it).

    Attributes:
        loss_sign: ``1.0``, or ``-1.0`` when the optimizer maximizes (every loss is read negated).
        events: every :class:`MonitorEvent`, in order. ``[e.to_dict() for e in monitor.events]`` is JSON.
        should_stop: ``True`` once a ``stop`` happened (``stop_reason`` says why). :meth:`after_step` returns it.
        last_action: the most severe action of the latest step (``"none"`` when healthy).
        rollbacks, skipped, clipped: counters; ``lr_scale``: product of the back-offs applied so far.

    >>> import torch, lrkit
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Linear(4, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.05)
    >>> monitor = lrkit.Monitor(model, opt)
    >>> x, y = torch.randn(64, 4), torch.randn(64, 1)
    >>> for _ in range(20):
    ...     opt.zero_grad()
    ...     loss = torch.nn.functional.mse_loss(model(x), y)
    ...     loss.backward()
    ...     take_step = monitor.after_backward(loss)
    ...     opt.step()
    ...     stop = monitor.after_step()
    >>> monitor.events, monitor.should_stop, monitor.step
    ([], False, 19)

    Maximising (the objective ascended, e.g. a log-likelihood) is read as its negative:

    >>> up = torch.optim.SGD(model.parameters(), lr=0.05, maximize=True)
    >>> watch = lrkit.Monitor(model, up)
    >>> up.zero_grad()
    >>> objective = -torch.nn.functional.mse_loss(model(x), y)
    >>> objective.backward()
    >>> watch.after_backward(objective), watch.loss_sign, watch.record.start_loss == -objective.item()
    (True, -1.0, True)
    >>> up.step(); watch.after_step()
    False
    """

    @named_keywords
    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        on_divergence: str | None = "rollback",
        on_explode: str | None = "clip",
        on_too_low: str | None = "warn",
        on_overfit: str | None = "rollback",
        checks: Sequence[Check] | None = None,
        actions: Mapping[str, str | None] | None = None,
        backoff: float = 0.3,
        val_backoff: float = 0.1,
        max_rollbacks: int = 8,
        snapshot_every: int = 100,
        grad_every: int = 64,
        sample_every: int = 100,
        spike_grace: int = 3,
        val_min_share: float | None = None,
        val_patience: int | None = None,
        collapse_check: bool | None = False,
        restore_on_stop: bool = True,
        grad_scaler: Any = None,
        on_event: Callable[[MonitorEvent], None] | None = None,
        sync_loss: bool | None = None,
        snapshot_device: torch.device | str | None = None,
        snapshot_frozen: bool = False,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        _refuse_non_scheduler(scheduler)
        stateful = all(callable(getattr(scheduler, name, None)) for name in ("state_dict", "load_state_dict"))
        if scheduler is not None and not isinstance(scheduler, type) and not stateful:
            raise ValueError(
                f"scheduler must have state_dict() and load_state_dict() (a torch LRScheduler), got "
                f"{type(scheduler).__name__}"
            )
        if scheduler is not None:
            _check_scheduler(scheduler, optimizer)
        sign = _loss_sign(optimizer)
        for key, value in (("backoff", backoff), ("val_backoff", val_backoff)):  # numpy floats are numbers too
            value = as_scalar(value)  # a 0-d array or tensor: the number it holds
            if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < 1):
                raise ValueError(f"{key}={value!r} must be a number in (0, 1), e.g. 0.5 halves the LR per rollback")
        if isinstance(grad_scaler, type):  # its unbound state_dict would fail deep inside the first rollback
            raise ValueError(
                f"grad_scaler={grad_scaler.__name__} is a class: pass the scaler instance your loop steps "
                f"(scaler = {grad_scaler.__name__}(...); Monitor(..., grad_scaler=scaler))"
            )
        if grad_scaler is not None and not all(
                callable(getattr(grad_scaler, name, None)) for name in ("state_dict", "load_state_dict")):
            raise ValueError(
                f"grad_scaler={grad_scaler!r:.60} must be a torch.amp.GradScaler (an object with state_dict() and "
                f"load_state_dict(), which a rollback restores), got {type(grad_scaler).__name__}"
            )
        if on_event is not None and not callable(on_event):
            raise ValueError(f"on_event={on_event!r} must be callable (it receives each MonitorEvent)")
        #: Where the held snapshots' copies live (``None``: each on the device of the tensor it copies)
        self.snapshot_device = check_snapshot_device(snapshot_device)
        if not isinstance(snapshot_frozen, bool):
            raise ValueError(f"snapshot_frozen={snapshot_frozen!r:.60} must be True or False (True also copies the "
                             "frozen parameters: requires_grad=False and in none of the optimizer's groups)")
        #: Whether the snapshots also copy frozen parameters (``requires_grad=False``, in no param group)
        self.snapshot_frozen = snapshot_frozen
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        #: ``-1.0`` when the optimizer maximizes (every group ``maximize=True``): losses are read negated; else ``1.0``
        self.loss_sign = sign
        self._negate = sign < 0
        self.backoff = float(backoff)
        self.val_backoff = float(val_backoff)
        self.max_rollbacks = check_int("max_rollbacks", max_rollbacks, 0)
        self.snapshot_every = check_int("snapshot_every", snapshot_every, 1)
        self.sample_every = check_int("sample_every", sample_every, 1)
        self._grad_every = check_int("grad_every", grad_every, 1)
        self.spike_grace = check_int("spike_grace", spike_grace, 0, " (0 acts on every loss spike at once; 3 forgives "
                                     "one spike lasting up to 4 steps per 50)")
        if not isinstance(restore_on_stop, bool):
            raise ValueError(f"restore_on_stop={restore_on_stop!r} must be True or False")
        self.restore_on_stop = restore_on_stop
        self.grad_scaler = grad_scaler
        #: Whether after_backward unscales the gradients itself when the loop has not (see _unscale)
        self._unscales = grad_scaler is not None and callable(getattr(grad_scaler, "unscale_", None))
        self.on_event = on_event
        if not isinstance(sync_loss, bool) and sync_loss is not None:
            raise ValueError(f"sync_loss={sync_loss!r:.60} must be True or False (or None: False, with a warning "
                             "under torch.distributed)")
        self.sync_loss = bool(sync_loss)
        self._sync_unset = sync_loss is None  # warn once under torch.distributed (see _warn_unsynced)
        #: Whether DTensor norms (FSDP2) are reduced over the ranks (see _global_norms): only with sync_loss given,
        #: when every rank has the same loss and so the same full steps. A per-rank loss (sync_loss unset) has each
        #: rank decide its full steps apart, and a collective on one rank alone would wait for the others forever.
        self._global = sync_loss is not None

        by_category = {
            "divergence": resolve_action("on_divergence", "divergence", on_divergence),
            "explode": resolve_action("on_explode", "explode", on_explode),
            "too_low": resolve_action("on_too_low", "too_low", on_too_low),
            "overfit": resolve_action("on_overfit", "overfit", on_overfit),
        }
        self.checks: list[Check] = _validate_checks(checks)
        if val_min_share is not None:
            # a numpy scalar (float16 too: comparing one with 2**1023 overflowed numpy's cast, with a RuntimeWarning)
            # or a 0-d tensor as the plain number it holds, as for backoff
            val_min_share = as_scalar(val_min_share)
            ok = isinstance(val_min_share, numbers.Real) and not isinstance(val_min_share, bool)
            # math.isfinite(10**400) is an OverflowError; 1e308 is refused too, as ValidationRising(min_share=) does
            ok = ok and -(2**1023) < val_min_share < 2**1023 and math.isfinite(val_min_share)
            huge = isinstance(val_min_share, int) and not isinstance(val_min_share, bool) and \
                not -(2**1023) < val_min_share < 2**1023
            if not (ok and val_min_share >= 0):
                digits = int(math.log10(abs(val_min_share))) + 1 if huge else 0
                shown = f"<an integer of {digits} digits>" if huge else repr(val_min_share)
                raise ValueError(
                    f"val_min_share={shown} must be None (leave val_rising as it is) or a finite number "
                    ">= 0, e.g. 0.02: a validation rise must give back more than 2% of the progress since the first "
                    "evaluation"
                )
            self.checks = [dataclasses.replace(c, min_share=float(val_min_share)) if isinstance(c, ValidationRising)
                           else c for c in self.checks]
        if val_patience is not None:
            val_patience = as_scalar(val_patience)  # a numpy integer or a 0-d integer tensor as the int it holds
            if isinstance(val_patience, bool) or not isinstance(val_patience, numbers.Integral) or val_patience < 1:
                raise ValueError(
                    f"val_patience={val_patience!r} must be None (leave val_rising as it is) or an integer >= 1, "
                    "e.g. 3: the best validation loss must be 3 evaluations old before a rise above it counts"
                )
            self.checks = [dataclasses.replace(c, patience=int(val_patience)) if isinstance(c, ValidationRising)
                           else c for c in self.checks]
        if collapse_check is not None and not isinstance(collapse_check, bool):
            raise ValueError(
                f"collapse_check={collapse_check!r} must be None (on with the default checks, off with a checks= "
                "list), True (add the loss_above_start check to any checks) or False (never add it)"
            )
        if collapse_check is None:  # on with the default checks, never slipped into the user's own list
            collapse_check = checks is None
        if collapse_check and not any(isinstance(c, LossAboveStart) for c in self.checks):
            self.checks = [*self.checks, LossAboveStart()]
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"checks has more than one check named {dupes}; each name must be unique")
        if actions is not None and not isinstance(actions, Mapping):
            raise ValueError(
                f"actions={actions!r} must be a dict of check name -> action, e.g. {{'oscillation': 'warn'}}"
            )
        overrides = dict(actions or {})
        for name in overrides:
            if name not in names:
                from lrkit._utils import unknown_name_error

                raise unknown_name_error("check in actions=", name, names)
        self.actions: dict[str, str | None] = {}
        for c in self.checks:
            if c.name in overrides:
                self.actions[c.name] = resolve_action(f"actions[{c.name!r}]", c.category, overrides[c.name])
            else:
                self.actions[c.name] = by_category[c.category]
        active = [c for c in self.checks if self.actions[c.name] is not None]
        for c in active:
            if c.phase == "step" and self.actions[c.name] not in ("warn", "stop"):
                raise ValueError(
                    f"check {c.name!r} runs after the optimizer step, where only 'warn' or 'stop' can act; got "
                    f"{self.actions[c.name]!r}"
                )
            if c.phase == "validation" and self.actions[c.name] not in ("warn", "rollback", "stop"):
                raise ValueError(
                    f"check {c.name!r} runs on validation losses, between optimizer steps, where only 'warn', "
                    f"'rollback' or 'stop' can act; got {self.actions[c.name]!r}"
                )
        self._backward_checks = [(c, self.actions[c.name]) for c in active if c.phase == "backward"]
        self._val_checks = [(c, self.actions[c.name]) for c in active if c.phase == "validation"]
        self._step_checks = [(c, self.actions[c.name]) for c in active if c.phase == "step"]
        self._every_step = [(c, a) for c, a in self._backward_checks if int(c.every) == 1]
        self._windowed = [(c, int(c.every), a) for c, a in self._backward_checks if int(c.every) > 1]
        # the fast path needs a bound from every check that must see every step's loss
        every_step = [c for c, _ in self._backward_checks if c.every == 1 and not c.uses_grad]
        self._screened = every_step
        self._fast = all(c.screen(RollingRecord(capacity=8, trend_window=2)) is not None for c in every_step)
        self._step_every = math.gcd(*(int(c.every) for c, _ in self._step_checks)) if self._step_checks else 1
        self._needs_ratio = any("update_ratio" in c.needs for c in active)
        capacity = max([64, *(c.history + 1 for c in active)])
        self.record = RollingRecord(capacity=capacity, refresh=_REFRESH)

        self.events: list[MonitorEvent] = []
        self.should_stop = False
        self.stop_reason = ""
        self.last_action = "none"
        self.rollbacks = 0
        self.skipped = 0
        self.clipped = 0
        self.lr_scale = 1.0
        self._step = -1
        self._pending: str | None = None
        self._pre: Snapshot | None = None
        #: The gradients a neutralised step set to ``None`` (each with its parameter), given back zeroed once the
        #: loop's optimizer.step() is over (see _give_back_grads).
        self._held_grads: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._grads_out = False  # whether the step post-hook gave them back already
        #: The step post-hook's handle (registered at the first neutralised step and kept, see _watch_step), and the
        #: groups it recorded right after the loop's optimizer.step() while a neutralised step is pending (_undo_step).
        self._step_hook: Any = None
        self._stepped_groups: list[dict[str, Any]] | None = None
        #: ... and the step pre-hook's handle, and the groups it recorded right before that optimizer.step().
        self._prestep_hook: Any = None
        self._prestep_groups: list[dict[str, Any]] | None = None
        self._step_hook_target: Any = None  # the optimizer the two hooks are on
        self._watching_step = False  # whether they record (between a skip/rollback decision and after_step)
        self._sample: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        #: While a sample is pending: the step post-hook that tells whether the loop's optimizer.step() ran, what it
        #: found (None: no hook could be registered, taken as stepped), and the samples dropped for want of a step.
        self._sample_hook: list[Any] | None = None
        self._sample_stepped: bool | None = None
        self._unstepped_samples = 0
        self._warned_unstepped = False
        self._warned_other_optimizer = False  # another optimizer trains this one's parameters (see _warn_unstepped)
        #: Scheduler clock check (see _check_clock): on while not warned; the clock read at a healthy full step's
        #: after_backward (None: nothing to compare), and the _after_due that the check put off to this step.
        self._clock_on = scheduler is not None
        self._clock_at: Any = None
        self._clock_due = 0
        self._clock_rewound = -1  # the step right after a restore, not checked
        self._late_watch = False  # the sample hook waits for a step after an unstepped sample (see _late_step)
        self._warned_order = False  # optimizer.step() after after_step() (see _late_step)
        self._healthy: _Healthy | None = None
        self._best_val: _Healthy | None = None  # model + optimizer at the best validation loss (no scheduler)
        #: Whether a held snapshot may leave a frozen parameter uncopied (see _adopt_unfrozen), and the number of
        #: param groups it was last checked against: a group added since may hold such a parameter, unfrozen.
        self._uncopied_held = False
        self._n_groups = len(optimizer.param_groups)
        #: The model's FSDP2 modules (``fully_shard``): put back in their sharded state before a snapshot is taken or
        #: restored (a forward without backward, a validation pass, leaves the root's parameters unsharded); read
        #: again when the param groups change (_trainable: an FSDP2 module added later, its parameters in a new group)
        self._fsdp2 = fsdp2_modules(model)
        #: The model's FSDP1 root (``FullyShardedDataParallel``) when the norms are reduced over the ranks
        #: (``_global``): its gradients and parameters are this rank's shard of the flat parameters, so the squared
        #: norms are summed over its shard group (see _measure, _finish_sample)
        self._fsdp1 = fsdp1_root(model) if self._global else None
        #: Whether the uncopied parameters' versions in snapshots loaded by load_state_dict are still to be read
        #: (at the next after_backward: a model.load_state_dict() after the monitor's writes them, unchanged)
        self._versions_unread = False
        self._evals = 0  # after_validation calls
        self._last_val_step = -1  # the step of the last after_validation call
        self._val_quiet: dict[str, int] = {}  # check name -> first evaluation it may fire again (cooldown)
        self._last_bad_step = -(10**9)
        self._grace_start = -(10**9)  # the step the latest forgiven loss-spike episode began (spike_grace)
        self._quiet_until: dict[str, int] = {}
        self._params_key: tuple[tuple[int, int], ...] = ()
        self._param_lists: list[list[torch.Tensor]] = []  # held, so that no new list can take an id in the key
        self._params: list[torch.Tensor] = []
        #: The first exception raised by on_event (or by a warning filtered into an error) while the monitor handled
        #: a step or an evaluation; raised when it has finished (see _raise_deferred).
        self._deferred: Exception | None = None
        self._warned_no_grad = False  # see _warn_no_grad
        #: Without a scheduler: after a back-off, each group's (LR it set, LR before it) and the step, until the loop
        #: first writes another LR (see _check_lr_watch); ``_warned_undone`` once that write undid the back-off.
        self._lr_watch: list[tuple[float, float]] | None = None
        self._lr_watch_step = -1
        self._warned_undone = False
        self._stop_restore = False
        self._dense_until = _DENSE_STEPS if self._fast else _NEVER
        self._screen = -math.inf
        self._buffer: list[float] = []
        self._last_eval: dict[str, int] = {}
        self._windowed_due = 0
        self._screen_due = 0
        self._last_sample = -(10**9)
        self._after_due = 0  # the next step whose after_step has work (see _after_step_work)
        self._next_grad = 0  # the next multiple of grad_every (a full step): the fast path compares, no modulo
        self._steps_idle = False  # every "step" check idle (Check.idle) as of the latest update ratio / LR
        self._refresh_idle()
        self._reshard()  # (a monitor built right after a validation pass: FSDP2's root holds unsharded tensors)
        _warn_unrelated_model(model, optimizer)  # last: an argument refused above is its own error, not this

    # ------------------------------------------------------------------------------------------------ public
    @property
    def grad_every(self) -> int:
        """A full step runs every ``grad_every`` steps (see the class docstring); assignable."""
        return self._grad_every

    @grad_every.setter
    def grad_every(self, value: int) -> None:
        self._grad_every = check_int("grad_every", value, 1)
        self._next_grad = (self._step // value + 1) * value

    @property
    def step(self) -> int:
        """0-based index of the latest ``after_backward`` call (``-1`` before the first)."""
        return self._step

    def after_backward(self, loss: torch.Tensor | float) -> bool:
        """Check this step's loss and gradients, before ``optimizer.step()``; return whether to take the step.

        Runs the ``"backward"`` checks and acts: ``clip`` scales the gradients now; ``skip``, ``rollback`` and
        ``stop`` set every gradient to ``None`` and return ``False`` (the undo happens in :meth:`after_step`).

        The hot path is lean: every step reads the loss (one host sync) and compares it with a bound — the
        smallest of the every-step checks' guarantees (:meth:`Check.screen`) and the loss at initialisation. Every
        ``grad_every`` steps, every step of the 50 after any event, and every step whose loss is above the bound,
        a *full* step also measures the global gradient L2 norm (one ``torch._foreach_norm``), runs every check on
        the record, refreshes the healthy snapshot and samples the update-to-weight ratio when due.

        Args:
            loss: this step's training loss (a scalar tensor or a float).
        """
        if self._pending is not None:
            raise RuntimeError(
                "Monitor.after_backward() was called twice without after_step() in between: call "
                "monitor.after_step() after every optimizer.step() (also when after_backward returned False), and "
                "call after_backward() once per optimizer step (after the last micro-batch when accumulating; with "
                "LBFGS once per optimizer.step(closure), outside the closure, which LBFGS calls several times)"
            )
        if self._uncopied_held and len(self.optimizer.param_groups) != self._n_groups:
            self._adopt_unfrozen()  # before this step's optimizer.step() can train an unfrozen parameter
        if self._sync_unset:  # the first call: nothing is counted yet if a warnings filter raises it
            self._sync_unset = False
            if distributed():
                self._warn_unsynced()
        if self.sync_loss and distributed():
            loss = self._rank_mean_loss(loss, "after_backward(loss)")
        step = self._step + 1
        if self._dense_until <= step < self._next_grad:  # the fast path (_dense_until is huge when it is off)
            try:
                value = loss.item() if type(loss) is _Tensor else self._loss_value(loss)
                if type(value) is bool:  # a bool tensor reads as True/False, which compare like numbers
                    raise TypeError
                if self._negate:
                    value = -value
                fast = value <= self._screen  # False for nan and for inf (the bound is capped at the largest float)
            except (RuntimeError, TypeError):  # a non-scalar, complex or bool tensor: the clear error, nothing counted
                self._loss_value(loss)
                raise
            if self._unscales:
                self._unscale()
            self._step = step
            if fast:
                self._buffer.append(value)
                self._pending = "ok"
                return True
            return self._full_step(step, loss, value)
        _check_loss(loss)  # before anything is counted or measured (a bad loss leaves the monitor as it was)
        if self._unscales:
            self._unscale()
        self._step = step
        if step >= self._next_grad:
            self._next_grad = (step // self._grad_every + 1) * self._grad_every
        return self._full_step(step, loss, None)

    def after_step(self) -> bool:
        """Finish the step: undo it (skip), roll back and back off, or run the ``"step"`` checks; return should_stop.

        Call it after ``optimizer.step()`` (and after ``scheduler.step()`` when you step one per batch), every step.
        Two loop mistakes are warned about once each (a ``UserWarning`` naming the fix), read where the monitor
        looks anyway, never on the fast path: ``optimizer.step()`` called *after* ``after_step()`` (seen by the
        update-ratio sample's step hook), and a scheduler stepped more than once per optimizer step (its
        ``last_epoch`` moving by more than one between a full step's ``after_backward`` and ``after_step``).
        """
        pending = self._pending
        if pending == "ok":
            self._pending = None
            if self._step >= self._after_due:  # an update-ratio sample to finish, or "step" checks due
                self._after_step_work()
            return self.should_stop
        if pending is None:
            raise RuntimeError(
                "Monitor.after_step() was called without after_backward() before it: call "
                "monitor.after_backward(loss) after loss.backward() and before optimizer.step()"
            )
        self._pending = None
        keep = self._grads_to_keep()  # (read before the undo / restore below sets every gradient to None)
        if pending == "skip":
            self._undo_step()
            self.skipped += 1
        elif pending == "rollback":
            self._rollback()
        elif pending == "stop" and self._stop_restore:
            if self._healthy is not None:
                self._restore_stop(self._healthy)
            else:
                self._undo_step()
        for p, g in keep:
            if p.grad is None:
                p.grad = g
        self._pre = None
        self._unwatch_step()
        self._refresh_screen()
        self._refresh_idle()  # a rollback / restore may have reloaded the record's update ratios
        self._schedule_after_step()
        if self._deferred is not None:
            self._raise_deferred()
        return self.should_stop

    def after_validation(self, val_loss: torch.Tensor | float) -> bool:
        """Check a validation loss; call it once per evaluation (e.g. per epoch), between optimizer steps. Returns
        should_stop.

        The monitor keeps a snapshot of model and optimizer at the best validation loss so far. When a
        ``"validation"`` check fires (:class:`~lrkit.monitor.checks.ValidationRising`: the loss rose clearly above
        its best and stayed there while training went on), ``rollback`` (the default ``on_overfit``) restores that
        snapshot — parameters, buffers, optimizer state; the param groups' hyperparameters, train/eval modes and the
        scheduler stay as they are, so the schedule keeps the run's clock — and multiplies the LR by
        ``val_backoff``; ``stop`` ends the run (back at the best weights when ``restore_on_stop``); ``warn`` only
        records. Rollbacks of both kinds count towards ``max_rollbacks``.

        >>> model = torch.nn.Linear(2, 1)
        >>> monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
        >>> [monitor.after_validation(v) for v in (0.9, 0.7, 0.8, 0.9)], monitor.events[-1].action
        ([False, False, False, False], 'rollback')
        >>> round(monitor.lr_scale, 3), round(monitor.optimizer.param_groups[0]["lr"], 6)
        (0.1, 0.01)

        Args:
            val_loss: the validation loss (a scalar tensor or a float).
        """
        if self._pending is not None:
            raise RuntimeError(
                "Monitor.after_validation() was called between after_backward() and after_step(): call it between "
                "optimizer steps, e.g. after the epoch's last after_step()"
            )
        if self.sync_loss and distributed():
            val_loss = self._rank_mean_loss(val_loss, "after_validation(val_loss)")
        if type(val_loss) is float:  # the common case, valid as it is
            value = val_loss
        else:
            _check_loss(val_loss, "after_validation(val_loss)")
            value = float(val_loss.item() if hasattr(val_loss, "item") else val_loss)  # type: ignore[union-attr,arg-type]
        if self._negate:
            value = -value
        self._flush(self._step)
        rec = self.record
        # the run's best so far (nan compares False; -inf is no best: val_rising fires on it, and rolls back to the
        # weights of the finite best)
        new_best = value < rec.val_best and math.isfinite(value)
        # the training loss now: the median of the steps since the last evaluation (at most 50 of them)
        recent = rec.window("loss", min(50, self._step - self._last_val_step))
        rec.push_val_loss(value, _median(recent) if recent else math.nan)
        self._last_val_step = self._step
        self._evals += 1
        evals = self._evals
        if self.should_stop:  # a stopped run changes no more (its weights may be the restored ones)
            return True
        if self._val_checks and new_best:
            snapshot, params, buffers, plan = self._recapture(self._best_val, scheduler=False)
            self._uncopied_held = self._uncopied_held or bool(snapshot.versions)
            self._best_val = _Healthy(snapshot, self._step, self.lr_scale, rec.state_dict(), (params, buffers),
                                      plan=plan, slots=self._slots_of(self._best_val, plan))
        findings: list[tuple[Check, str, Finding]] = []
        for check, action in self._val_checks:
            if (evals - 1) % check.every or self._val_quiet.get(check.name, 0) > evals:
                continue
            found = check.check(rec)
            if found is not None:
                findings.append((check, action, _finding(check, found)))
        if not findings:
            return self.should_stop
        # numbered by the latest optimizer step, as the training events are; an evaluation before the first step
        # (a baseline) is at step 0, not -1
        step, lr = max(self._step, 0), self._lr()
        worst = "none"
        for check, action, found in findings:
            if check.cooldown:
                self._val_quiet[check.name] = evals + check.cooldown + 1
            action = self._event(step, check, action, found, found.reason, lr, stacklevel=4)
            if SEVERITY[action] > SEVERITY[worst]:
                worst = action
        self.last_action = worst
        if worst == "rollback":
            self._val_rollback()
        elif worst == "stop" and self.restore_on_stop and self._best_val is not None:
            self._restore_best_val()
        if self._deferred is not None:  # from on_event: raised now that the evaluation is fully handled
            self._raise_deferred()
        return self.should_stop

    def summary(self) -> dict[str, Any]:
        """Counts of what happened, JSON-ready.

        >>> import torch
        >>> net = torch.nn.Linear(2, 1)
        >>> m = Monitor(net, torch.optim.SGD(net.parameters(), lr=0.1))
        >>> m.summary()["healthy"], m.summary()["steps"]
        (True, 0)
        """
        return {
            "steps": self._step + 1,
            "events": len(self.events),
            "by_check": dict(Counter(e.check for e in self.events)),
            "by_action": dict(Counter(e.action for e in self.events)),
            "rollbacks": self.rollbacks,
            "skipped": self.skipped,
            "clipped": self.clipped,
            "lr_scale": self.lr_scale,
            "should_stop": self.should_stop,
            "stop_reason": self.stop_reason,
            "healthy": not self.events,
        }

    def state_dict(self, *, snapshot: bool = False) -> dict[str, Any]:
        """Everything needed to resume monitoring, as plain Python values and tensors (``weights_only``-safe).

        Args:
            snapshot: also include the last healthy snapshot (a full copy of the model's parameters and buffers, the
                optimizer's and the scheduler's state). Without it, the monitor takes a fresh snapshot at the next
                healthy step after :meth:`load_state_dict`, so a rollback soon after a resume may go back to a
                different state than it would have without the interruption; with it (what ``lrkit.train`` saves
                in ``last.pt``) the resumed run makes the same decisions as the uninterrupted one. The snapshot
                includes the state of the optimizers the one passed wraps (SAM's ``base_optimizer``,
                ``ZeroRedundancyOptimizer``'s shard: under torch.distributed, save and load each rank's own) and
                optimizer state under keys that are not parameters.

        >>> model = torch.nn.Linear(2, 1)
        >>> monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
        >>> sorted(monitor.state_dict())[:4]
        ['clipped', 'dense_until', 'evals', 'events']
        """
        return self._state(snapshot, copy=True)

    def _checkpoint_state(self) -> dict[str, Any]:
        """``state_dict(snapshot=True)`` for a checkpoint saved at once (``lrkit.train``'s ``last.pt``): the same
        values, but the held snapshots' tensors are the monitor's own, not copies — no transient second copy of the
        model and its optimizer state (on the model's device) at every save. Save it before the next step."""
        return self._state(True, copy=False)

    def _state(self, snapshot: bool, *, copy: bool) -> dict[str, Any]:
        self._flush(self._step)
        out = self._state_dict()
        if snapshot:
            self._reshard()  # (matched to the model's parameters by identity: FSDP2's sharded ones)
            params, buffers, _ = _walk(self.model)
            for key, held in (("healthy", self._healthy), ("best_val", self._best_val)):
                if held is not None:
                    out[key] = _healthy_state(held, params, buffers, copy=copy)
        return out

    def _state_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "loss_sign": self.loss_sign,
            "step": self._step,
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "skipped": self.skipped,
            "clipped": self.clipped,
            "should_stop": self.should_stop,
            "stop_reason": self.stop_reason,
            "last_bad_step": self._last_bad_step,
            "grace_start": self._grace_start,
            "quiet_until": dict(self._quiet_until),
            "dense_until": self._dense_until,
            "events": [e.to_dict() for e in self.events],
            "record": self.record.state_dict(),
            # when the next sample / screen refresh / windowed check is due, and the fast path's current bound
            "timers": {
                "last_sample": self._last_sample,
                "screen_due": self._screen_due,
                "screen": self._screen,
                "windowed_due": self._windowed_due,
                "last_eval": dict(self._last_eval),
            },
            "evals": self._evals,
            "last_val_step": self._last_val_step,
            "val_quiet": dict(self._val_quiet),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` output (counters, events, rolling record, cumulative back-off). A state that
        cannot be loaded (another model's or another kind of optimizer's snapshots, a malformed entry)
        raises and leaves the monitor as it was."""
        if not isinstance(state, Mapping) or state.get("version") != _STATE_VERSION:
            got = state.get("version") if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"not a Monitor state_dict (version {got!r}, expected {_STATE_VERSION})")
        required = {"step", "lr_scale", "rollbacks", "events", "record"}
        missing = required - set(state)
        if missing:
            raise ValueError(f"Monitor state_dict is missing keys {sorted(missing)}")
        saved_sign = state.get("loss_sign", self.loss_sign)  # absent in states saved before the sign was kept
        if saved_sign != self.loss_sign:
            def what(sign: Any) -> str:
                return ("maximize=True (losses read negated)" if sign == -1.0 else "maximize=False" if sign == 1.0
                        else f"an unknown sign {sign!r}")
            raise ValueError(
                f"Monitor state_dict has loss_sign={saved_sign!r}: it was saved by a monitor whose optimizer had "
                f"{what(saved_sign)}, this one's has {what(self.loss_sign)}, so its record and events hold losses of "
                "the other sign; load it with an optimizer built with the same maximize"
            )
        # what can be refused (a snapshot of another model, a malformed event, record or timer) first, every value
        # read before any is assigned: a refused state changes nothing
        events = [MonitorEvent.from_dict(e) for e in state["events"]]
        healthy = self._load_healthy(state["healthy"]) if state.get("healthy") is not None else None
        best_val = (self._load_healthy(state["best_val"], "best-validation") if state.get("best_val") is not None
                    else None)
        record = dict(state["record"])
        RollingRecord(capacity=self.record.capacity, refresh=self.record.refresh,
                      trend_window=self.record.trend_window).load_state_dict(record)  # raises here, or loads below
        step, lr_scale, rollbacks = int(state["step"]), float(state["lr_scale"]), int(state["rollbacks"])
        skipped, clipped = int(state.get("skipped", 0)), int(state.get("clipped", 0))
        should_stop, stop_reason = bool(state.get("should_stop", False)), str(state.get("stop_reason", ""))
        last_bad_step = int(state.get("last_bad_step", -(10**9)))
        grace_start = int(state.get("grace_start", -(10**9)))
        quiet_until = {str(k): int(v) for k, v in dict(state.get("quiet_until", {})).items()}
        timers = state.get("timers")
        if timers is not None:
            timers = {"last_sample": int(timers["last_sample"]), "screen_due": int(timers["screen_due"]),
                      "screen": float(timers["screen"]), "windowed_due": int(timers["windowed_due"]),
                      "last_eval": {str(k): int(v) for k, v in dict(timers["last_eval"]).items()}}
        evals, last_val_step = int(state.get("evals", 0)), int(state.get("last_val_step", -1))
        val_quiet = {str(k): int(v) for k, v in dict(state.get("val_quiet", {})).items()}
        self._step = step
        self._next_grad = (self._step // self._grad_every + 1) * self._grad_every
        self.lr_scale = lr_scale
        self._lr_watch = None  # a back-off before the load is not this run's to watch
        self.rollbacks = rollbacks
        self.skipped = skipped
        self.clipped = clipped
        self.should_stop = should_stop
        self.stop_reason = stop_reason
        self._last_bad_step = last_bad_step
        self._grace_start = grace_start
        self._quiet_until = quiet_until
        if self.should_stop or not self._fast:
            self._dense_until = _NEVER
        else:
            # as this monitor would have it after these events (rather than the saved value: a monitor without the
            # fast path saves "never", which would keep it off here for good): the first steps, _ALERT_STEPS after
            # each event (_emit), and the steps of the latest spike_grace episode (_grace)
            grace = self._grace_start + self.spike_grace + 1 if self.spike_grace else _DENSE_STEPS
            self._dense_until = max([_DENSE_STEPS, grace, *(e.step + _ALERT_STEPS for e in events)])
        self.events = events
        self.record.load_state_dict(record)
        self._healthy = healthy
        self._best_val = best_val
        if any(h is not None and h.snapshot.versions for h in (healthy, best_val)):
            # the uncopied parameters' versions are read at the next after_backward (_adopt_unfrozen), before any
            # step: a model.load_state_dict() after this call writes the saved values into them, which is no change
            self._versions_unread = True
            self._n_groups = -1
        self._deferred = None
        self._pending = None
        self._held_grads, self._grads_out = None, False
        self._pre = None
        self._unwatch_step()
        self._sample = None
        self._unwatch_sample()
        self._buffer.clear()
        self._refresh_idle()
        self._after_due = 0  # the next healthy after_step re-schedules
        self._last_eval.clear()
        self._windowed_due = 0
        if timers is not None:
            self._last_sample = timers["last_sample"]
            self._screen_due = timers["screen_due"]
            self._screen = timers["screen"]
            self._windowed_due = timers["windowed_due"]
            self._last_eval = timers["last_eval"]
        else:  # older states have none: the timers restart, as they always did
            # (not for newer ones: recomputing the bound would refresh the record's reference statistics at this
            # step, which the uninterrupted run does not, and the resumed run would judge the next steps differently)
            self._refresh_screen()
        # the next windowed evaluation, from this monitor's own windowed checks (the saved timer equals it for the same
        # checks; a state saved without a windowed check has it at "never", which would keep one added now, e.g. by
        # collapse_check=True, from ever running)
        self._windowed_due = min((self._last_eval.get(c.name, -every) + every for c, every, _ in self._windowed),
                                 default=_NEVER)
        self._evals = evals
        self._last_val_step = last_val_step
        self._val_quiet = val_quiet

    def _load_healthy(self, saved: Mapping[str, Any], what: str = "healthy") -> _Healthy:
        """Rebuild a held snapshot of :meth:`state_dict` ``(snapshot=True)`` (``what``: ``"healthy"`` or
        ``"best-validation"``) on this monitor's objects."""
        self._reshard()
        params, buffers, _ = _walk(self.model)
        if len(saved["params"]) != len(params) or len(saved["buffers"]) != len(buffers) or any(
            a is not None and (b is None or tuple(a.shape) != tuple(b.shape))
            for a, b in zip([*saved["params"], *saved["buffers"]], [*params, *buffers])
        ):
            raise ValueError(
                f"Monitor state_dict: its {what} snapshot does not fit this model (other parameters or buffers); "
                "load it into a monitor of the same model"
            )
        n_groups = len(saved["opt_groups"])
        if n_groups > len(self.optimizer.param_groups):
            raise ValueError(
                f"Monitor state_dict: its {what} snapshot has {n_groups} param groups, the optimizer has "
                f"{len(self.optimizer.param_groups)}"
            )
        # fewer is fine: groups added with add_param_group() after the snapshot was taken come last, and its restore
        # leaves them as they are (as in the run that saved it); its optimizer state refers to the first groups
        _refuse_foreign_groups(saved["opt_groups"], self.optimizer, what, type(self.optimizer).__name__)
        _refuse_foreign_scheduler_state(saved.get("sched_state"), self.scheduler, what)
        groups = self.optimizer.param_groups[:n_groups]
        owned = {id(p) for p in params}
        extra = [p for p in dict.fromkeys(q for g in groups for q in g["params"]) if id(p) not in owned]
        saved_extra = list(saved.get("extra_params", []))
        if "extra_params" in saved and (len(saved_extra) != len(extra) or any(
                tuple(a.shape) != tuple(b.shape) for a, b in zip(saved_extra, extra))):
            raise ValueError(
                f"Monitor state_dict: its {what} snapshot holds {len(saved_extra)} optimizer parameters outside the "
                f"model, the optimizer has {len(extra)}; load it into a monitor of the same model and optimizer"
            )
        attrs = saved.get("opt_attrs")
        # a parameter the snapshot did not know (None: a layer inserted after it was taken) keeps its value on a
        # restore, as in the run that saved it: a placeholder stands in its place among the members, so that
        # _aligned matches the rest by identity and leaves it alone
        members = [p if t is not None else torch.empty(0) for t, p in zip(saved["params"], params)]
        # a frozen parameter saved uncopied stands for itself, as it did when saved (also under snapshot_frozen=True:
        # a state saved without it; the parameter is then copied in when it joins the optimizer, see _adopt_unfrozen)
        index = {id(q) for g in self.optimizer.param_groups for q in g["params"]}
        members = [p if t is None and f else m
                   for t, p, m, f in zip(saved["params"], params, members, _frozen_flags(params, index))]
        dev = self.snapshot_device
        homes: dict[int, torch.device] = {}

        def tree(obj: Any) -> Any:
            return _offload_tree(obj, dev, homes)

        def one(t: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
            # on snapshot_device (if any), noted to go back to the device of the tensor it is restored into
            return _offload(t, dev, homes, home=live.device)

        copies = [one(t, m) if t is not None else m for t, m in zip(saved["params"], members)]
        self._uncopied_held = self._uncopied_held or any(c is p for c, p in zip(copies, params))
        snapshot = Snapshot(
            self.model, self.optimizer, self.scheduler, copies, [None] * len(params),
            [None if b is None else one(b, live) for b, live in zip(saved["buffers"], buffers)],
            [bool(m) for m in saved["modes"]],
            _fit_opt_state(dict(saved["opt_state"]), groups, dev, homes),
            tree(list(saved["opt_groups"])),
            tree(saved["sched_state"]) if self.scheduler is not None else None,
            extra_params=[(p, one(v, p), None) for p, v in zip(extra, saved_extra)],
            opt_attrs=None if attrs is None else tree(dict(attrs)),
            # absent in states saved before it was kept
            opt_other_state=tree(dict(saved.get("opt_other_state", {}))),
            device=dev, homes=homes, versions=_versions(params, copies),
        )
        # absent in states saved before the wrapped optimizers' snapshots were kept: none, as then
        snapshot.inner = self._load_inner(list(saved.get("inner", [])), what)
        # its optimizer state is keyed by position in the groups it was loaded onto: those parameters, in those
        # groups, as a captured snapshot holds them (a rollback after the loop reordered groups: _match_groups)
        snapshot.opt_param_refs = [p for g in groups for p in g["params"]]
        scaler = saved.get("scaler")  # absent in states saved before the scaler was part of a snapshot
        return _Healthy(snapshot, int(saved["step"]), float(saved["lr_scale"]), _clone_tree(dict(saved["record"])),
                        (members, buffers), None if scaler is None else _clone_tree(dict(scaler)),
                        slots=_named_slots(self.model),  # (saved in the order of the model's tensors now)
                        group_sizes=tuple(len(g["params"]) for g in groups))

    def _load_inner(self, saved: list[Mapping[str, Any]], what: str) -> list[Snapshot]:
        """The snapshots of the optimizers this one wraps (:func:`lrkit._state.inner_optimizers`) from a held
        snapshot's ``"inner"`` entries, checked against them first."""
        if not saved:
            return []
        inners = inner_optimizers(self.optimizer)
        if len(saved) != len(inners):
            names = ", ".join(type(o).__name__ for o in inners) or "none"
            raise ValueError(
                f"Monitor state_dict: its {what} snapshot holds the state of {len(saved)} wrapped optimizer(s), "
                f"{type(self.optimizer).__name__} has {len(inners)} ({names}); load it into a monitor of the same "
                "optimizer"
            )
        outer = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        rank = _rank()
        out = []
        for inner, entry in zip(inners, saved):
            name = type(inner).__name__
            params = [p for g in inner.param_groups for p in g["params"]]
            n_groups = len(entry["opt_groups"])
            if n_groups > len(inner.param_groups) or any(not 0 <= int(k) < len(params) for k in entry["opt_state"]):
                raise ValueError(
                    f"Monitor state_dict: its {what} snapshot of the wrapped {name} does not fit it ({n_groups} param "
                    f"groups and state for parameters {sorted(int(k) for k in entry['opt_state'])}, it has "
                    f"{len(inner.param_groups)} groups and {len(params)} parameters); load it into a monitor of the "
                    "same optimizer"
                )
            _refuse_foreign_groups(entry["opt_groups"], inner, what, f"the wrapped {name}")
            saved_rank = entry.get("rank")
            if {id(p) for p in params} != outer and saved_rank is not None and saved_rank != rank:
                raise ValueError(
                    f"Monitor state_dict: its {what} snapshot holds the wrapped {name}'s state saved on rank "
                    f"{saved_rank}, and this is rank {rank}: that optimizer holds a shard of the state (this rank's "
                    "parameters only, as ZeroRedundancyOptimizer does), so each rank's differs; save the monitor's "
                    "state_dict on each rank and load each rank's own"
                )
            attrs = entry.get("opt_attrs")
            dev = self.snapshot_device
            homes: dict[int, torch.device] = {}
            tree: Any = functools.partial(_offload_tree, device=dev, homes=homes)
            out.append(Snapshot(
                _NO_MODEL, inner, None, [], [], [], [],
                _fit_opt_state(dict(entry["opt_state"]), inner.param_groups[:n_groups], dev, homes),
                tree(list(entry["opt_groups"])),
                opt_attrs=None if attrs is None else tree(dict(attrs)),
                opt_other_state=tree(dict(entry.get("opt_other_state", {}))),
                device=dev, homes=homes,
            ))
        return out

    def __repr__(self) -> str:
        active = ", ".join(f"{c.name}->{a}" for c, a in (*self._backward_checks, *self._step_checks,
                                                          *self._val_checks))
        return (f"Monitor(step={self._step}, events={len(self.events)}, rollbacks={self.rollbacks}, "
                f"lr_scale={self.lr_scale:g}, checks=[{active}])")  # fmt: skip

    # ------------------------------------------------------------------------------------------------ internals
    def _flush(self, last: int) -> None:
        """Push the losses the fast path buffered (steps ``..., last``) into the record, in order, without gradient
        norms.

        The batches end after every buffered step at which ``after_step`` runs the ``"step"`` checks (multiples of
        ``_step_every``): the record is brought up to date there whether or not a check reads it, and its trend is
        updated at the end of each batch, so the record does not depend on when the push actually happens.
        """
        buf = self._buffer
        if not buf:
            return
        push = self.record.push_losses
        every = self._step_every if self._step_checks else 0
        first = last - len(buf) + 1
        cut = -(-first // every) * every if every else last  # the first such step >= first
        if cut >= last:
            push(buf)
        else:
            start = 0
            while cut < last:
                end = cut - first + 1
                push(buf[start:end])
                start = end
                cut += every
            push(buf[start:])
        buf.clear()

    def _refresh_screen(self) -> None:
        """Recompute the fast-path bound: the smallest screen of the every-step loss checks (capped at max float)."""
        self._screen_due = self._step + _REFRESH  # the references it rests on change every _REFRESH steps
        bound = sys.float_info.max
        for check in self._screened:
            b = check.screen(self.record)
            if b is not None and b < bound:
                bound = b
        # a loss above where training started is worth a full look (gradients included): the first steps of a run,
        # and any step that is going wrong
        start = self.record.start_loss
        if start < bound:
            bound = start
        self._screen = bound

    def _full_step(self, step: int, loss: torch.Tensor | float, value: float | None) -> bool:
        self._flush(step - 1)
        if self._lr_watch is not None:
            self._check_lr_watch(step)
        rec = self.record
        if self.should_stop:
            rec.push(self._loss_value(loss) * self.loss_sign if value is None else value, None)
            self._watch_step()
            self._neutralise()
            self._pending = "stopped"
            self.last_action = "stop"
            return False
        params = self._trainable()
        with_grad = [p for p in params if p.grad is not None]
        if not with_grad and not self._warned_no_grad:
            self._warn_no_grad(params)
        grads = [p.grad for p in with_grad]
        loss_value, gnorm, norms = self._measure(loss, grads, value)
        if value is not None:
            loss_value = value
        elif self._negate:
            loss_value = -loss_value
        if self.grad_scaler is not None and not math.isfinite(gnorm) and self._scaler_enabled():
            rec.push(loss_value, None)  # the scaler skips this step and lowers its scale: not our business
        else:
            rec.push(loss_value, gnorm)
        findings: list[tuple[Check, str, Finding]] = []
        quiet = self._quiet_until
        for check, action in self._every_step:
            if quiet and quiet.get(check.name, -1) > step:
                continue
            found = check.check(rec)
            if found is not None:
                findings.append((check, action, found))
        if step >= self._windowed_due:  # checks with every > 1: when due, on the next full step
            last = self._last_eval
            next_due = _NEVER
            for check, every, action in self._windowed:
                due = last.get(check.name, -every) + every
                if step >= due:
                    last[check.name] = step
                    due = step + every
                    if not (quiet and quiet.get(check.name, -1) > step):
                        found = check.check(rec)
                        if found is not None:
                            findings.append((check, action, found))
                next_due = min(next_due, due)
            self._windowed_due = next_due
        if findings and self.spike_grace:
            findings = self._grace(step, findings)
        if findings:
            result = self._respond(step, findings, with_grad, grads, gnorm, norms)
            self._refresh_screen()
            return result
        self._pending = "ok"
        self.last_action = "none"
        healthy = self._healthy
        copies = None
        if healthy is None or (step - healthy.step >= self.snapshot_every
                               and step - self._last_bad_step >= max(1, self.snapshot_every // 5)
                               and self._trend_ok()):
            copies = self._capture_healthy(step)
        # (under FSDP1 every rank samples, also one whose shard holds no gradient: the sample's sums are collective)
        if (self._needs_ratio and step - self._last_sample >= self.sample_every
                and (with_grad or self._fsdp1 is not None)):
            self._last_sample = step
            self._start_sample(with_grad, copies)
        if self._clock_on and step != self._clock_rewound:  # how far this step moves the clock (see _check_clock)
            self._clock_at = _clock(self.scheduler)
            self._clock_due = self._after_due
            self._after_due = step
        if step >= self._screen_due or rec.seen["loss"] <= _SCREEN_FOLLOW:
            self._refresh_screen()
        return True

    def _warn_unsynced(self) -> None:
        """``sync_loss`` left unset in a process group of more than one rank: each rank decides from the loss it is
        given, and a loop that gives each rank its own shard's loss lets them decide apart."""
        world = torch.distributed.get_world_size()
        if world < 2:
            return
        warnings.warn(
            f"lrkit.Monitor under torch.distributed ({world} ranks) with sync_loss unset: every rank decides from "
            "the loss it is given, so if each rank passes its own shard's loss, a spike on one rank makes that rank "
            "alone skip or roll back (the ranks' weights drift apart, or a stop leaves the others waiting in DDP's "
            "all-reduce). Pass sync_loss=True to have the monitor average the loss over the ranks (one scalar "
            "all-reduce per call), or sync_loss=False if your loop already passes the same loss on every rank.",
            MonitorWarning,
            stacklevel=3,
        )

    def _warn_no_grad(self, params: list[torch.Tensor]) -> None:
        """Warn once when a full step finds no gradient on any trainable parameter of the optimizer: the loop most
        likely calls ``after_backward`` before ``loss.backward()`` (or zeroes the gradients in between). The loss
        checks still work, but the gradient checks would read a norm of 0 forever and clipping would do nothing."""
        trainable = sum(1 for p in params if p.requires_grad)
        if not trainable:
            return
        self._warned_no_grad = True
        warnings.warn(
            f"Monitor.after_backward() at step {self._step} found no gradient on any of the optimizer's {trainable} "
            "trainable parameters: call it after loss.backward() (and before optimizer.zero_grad()); without "
            "gradients the gradient checks (non_finite gradients, gradient_blowup, exploding_gradients) and "
            "clipping see nothing. Warned once per monitor.",
            UserWarning,
            stacklevel=4,
        )

    def _grace(self, step: int, findings: list[tuple[Check, str, Finding]]) -> list[tuple[Check, str, Finding]]:
        """``spike_grace``: drop a ``loss_spike`` finding that a grace episode forgives, or add the episode to its
        reason when it is acted on (see the class docstring). Runs on full steps only (every spike is one: a loss
        above the spike threshold never takes the fast path)."""
        out: list[tuple[Check, str, Finding]] = []
        for check, action, found in findings:
            if check.name != "loss_spike" or not isinstance(found, Finding):
                out.append((check, action, found))
                continue
            rec = self.record
            loss, start = rec.last_loss, rec.start_loss
            since = step - self._grace_start
            cap, trained = _GRACE_CAP * abs(start), _GRACE_TRAINED * abs(start)
            if not (math.isfinite(loss) and math.isfinite(start)) or loss > cap:
                note = f"; above {_GRACE_CAP:g}x the starting loss ({loss:.3g} > {cap:.3g}): no grace"
            elif since > _GRACE_WINDOW and not (median := found.values.get("median", math.nan)) <= trained:
                note = (f"; no grace before the run has learned (running median {median:.3g} above "
                        f"{_GRACE_TRAINED:g}x the starting loss {start:.3g})")
            elif since > _GRACE_WINDOW:  # a spike from a trained state, no episode in the window: open one
                self._grace_start = step
                self._last_bad_step = step  # no healthy snapshot of the spiking weights
                self._dense_until = max(self._dense_until, step + self.spike_grace + 1)
                continue
            elif since <= self.spike_grace:  # within the episode
                self._last_bad_step = step
                continue
            else:
                note = (f"; the spike grace began at step {self._grace_start} ({since} steps ago, grace "
                        f"{self.spike_grace} steps): the spike persisted or came back")
            values = dict(found.values)
            if self._grace_start >= 0:  # an episode began (before the first one, it holds a sentinel, no step)
                values["grace_start"] = float(self._grace_start)
            out.append((check, action, Finding(found.reason + note, values)))
        return out

    def _trainable(self) -> list[torch.Tensor]:
        groups = self.optimizer.param_groups
        # add_param_group(), a group's list replaced (any group) or grown in place all change it
        key = tuple([(id(g["params"]), len(g["params"])) for g in groups])
        if key != self._params_key:
            self._params = [p for g in groups for p in g["params"]]
            self._params_key = key
            self._param_lists = [g["params"] for g in groups]
            # (an FSDP2 module added since, its parameters in a new group: resharded with the others, see _reshard)
            self._fsdp2 = fsdp2_modules(self.model)
            if self._uncopied_held:
                self._adopt_unfrozen()
        return self._params

    def _reshard(self) -> None:
        """Put the model's FSDP2 modules back in their sharded state (local, no collective; nothing without them):
        after a validation pass the root's parameters are plain unsharded tensors, which a snapshot must not take
        for the parameters the optimizer holds, nor restore into."""
        for m in self._fsdp2:
            m.reshard()  # type: ignore[operator]

    def _adopt_unfrozen(self) -> None:
        """Copy into the held snapshots each parameter they left uncopied (frozen when taken) that the optimizer now
        holds, while it still has the value it had then (its version counter has not moved): a rollback then
        restores a backbone unfrozen since the snapshot, exactly."""
        opt = self.optimizer
        self._n_groups = len(opt.param_groups)
        if self._versions_unread:
            self._read_loaded_versions()
        held_ids = {id(p) for g in opt.param_groups for p in g["params"]}
        dev = self.snapshot_device
        for held in (self._healthy, self._best_val):
            if held is None:
                continue
            snap = held.snapshot
            versions = snap.versions
            for i, (c, p) in enumerate(zip(snap.params, held.members[0])):
                if c is p and id(p) in held_ids and versions.get(id(p)) == _version(p):
                    with torch.no_grad():
                        snap.params[i] = p.detach().clone() if dev is None else _offload(p, dev, snap.homes)
                    del versions[id(p)]
                    held.plan = None

    def _read_loaded_versions(self) -> None:
        """Read the version of each parameter the held snapshots loaded by :meth:`load_state_dict` left uncopied,
        now (the first ``after_backward``, or a restore, after the load): what the loop loaded into the model after
        the monitor's state (the same values) is not taken for a change since the snapshot."""
        self._versions_unread = False
        for held in (self._healthy, self._best_val):
            if held is not None:
                versions = held.snapshot.versions
                for p in held.members[0]:
                    if id(p) in versions:
                        versions[id(p)] = _version(p)

    def _rank_mean_loss(self, loss: Any, call: str) -> float:
        """``sync_loss``'s mean of ``loss`` over the ranks, in one all-reduce that also carries each rank's flag:
        whether its ``loss`` failed the checks (not a number, not a scalar). That rank raises its own error once the
        others have heard of it, and they a ``ValueError`` naming it, where before they waited in the all-reduce for
        the process group's timeout (30 minutes by default)."""
        try:
            value, error = self._loss_value(loss, call), None
        except (TypeError, ValueError, RuntimeError) as e:
            value, error = 0.0, e
        dist = torch.distributed
        t, who = flagged_all_reduce([value], error, _loss_device(loss), "the loss", f"Monitor.{call}")
        if who is not None:
            raise ValueError(
                f"Monitor.{call} with sync_loss=True under torch.distributed (rank {dist.get_rank()} of "
                f"{dist.get_world_size()}) stopped on every rank: the loss given on {who} failed the checks (see "
                "that rank's error); every rank must pass a real scalar (a one-element tensor or a float) "
                "at the same call"
            )
        return float(t[0].item()) / dist.get_world_size()

    @staticmethod
    def _loss_value(loss: torch.Tensor | float, what: str = "after_backward(loss)") -> float:
        _check_loss(loss, what)
        # .item() for tensors and numpy scalars/arrays: float() of a one-element numpy array of shape (1,) is a
        # TypeError under numpy >= 2 ("only 0-dimensional arrays can be converted to Python scalars")
        item = getattr(loss, "item", None)
        return float(item() if callable(item) else loss)  # type: ignore[arg-type]

    def _measure(self, loss: torch.Tensor | float, grads: list[torch.Tensor],
                 value: float | None = None) -> tuple[float, float, list[float]]:
        """(loss, global grad L2 norm, per-tensor norms) with a single host sync on accelerators; ``value`` is the
        loss when the fast path already read it."""
        if not grads:
            loss_value = self._loss_value(loss) if value is None else value
            if self._fsdp1 is None:
                return loss_value, 0.0, []
            # (a rank whose shard holds no gradient still joins the other ranks' sum)
            return loss_value, math.sqrt(fsdp1_shard_sum(self._fsdp1, [0.0], self._sum_device())[0]), []
        norms = _grad_norms(grads)
        if self._global:
            norms = _global_norms(norms)
        if norms[0].is_cpu:
            values = [n.item() for n in norms]  # on CPU, reading a few scalars beats stack() + tolist()
            loss_value = self._loss_value(loss) if value is None else value
        else:
            try:  # one host sync for every norm and the loss
                dev = norms[0]
                if isinstance(loss, torch.Tensor) and loss.numel() == 1:
                    values = torch.stack([*norms, loss.detach().reshape(()).to(dev.device, dev.dtype)]).tolist()
                    loss_value = values.pop()
                else:
                    values = torch.stack(norms).tolist()
                    loss_value = self._loss_value(loss)
            except RuntimeError:  # norms on several devices or of several dtypes
                values = [float(n) for n in norms]
                loss_value = self._loss_value(loss)
        total = 0.0
        for v in values:
            total += v * v
        if self._fsdp1 is not None:  # this rank's shard: summed over the shard group
            total = fsdp1_shard_sum(self._fsdp1, [total], norms[0].device)[0]
        return loss_value, math.sqrt(total), values

    def _sum_device(self) -> torch.device:
        """The device of the model's first parameter (a collective's device under NCCL), else the CPU."""
        for p in self._trainable():
            return p.device
        return torch.device("cpu")

    def _neutralise(self) -> None:
        """Set every gradient to ``None``: torch's optimizers then skip every parameter (no math on nan). The
        gradient tensors are kept and given back, zeroed, after the step (:meth:`_give_back_grads`)."""
        held = []
        for p in self._trainable():
            g = p.grad
            if g is not None:
                held.append((p, g))
                p.grad = None
        self._held_grads = held or None
        self._grads_out = False

    def _give_back_grads(self) -> None:
        """Right after the loop's ``optimizer.step()`` (the step post-hook): put the gradient tensors
        :meth:`_neutralise` took back on their parameters, zeroed, where the gradient is still ``None`` — before a
        ``zero_grad()`` the loop makes right after its step, which then does what it would have done."""
        held = self._held_grads
        if held is None or self._grads_out:
            return
        self._grads_out = True
        with torch.no_grad():
            for p, g in held:
                if p.grad is None:
                    p.grad = g.zero_()

    def _grads_to_keep(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The gradients :meth:`after_step` puts back (zeroed) once its undo or restore, which leaves every
        gradient ``None``, is done: those the step post-hook gave back and the loop has not set to ``None`` since
        (its ``zero_grad(set_to_none=True)`` right after the step), or — no hook saw a step (the loop skipped
        ``optimizer.step()``, an optimizer without hooks) — every one taken.

        A loop that zeroes with ``optimizer.zero_grad(set_to_none=False)`` keeps a gradient tensor on every parameter
        that ever had one, and torch's optimizers step a parameter with a zero gradient (momentum, weight decay) but
        skip one whose gradient is ``None``. Left ``None``, a parameter that gets no gradient in the next backward
        passes (a branch the forward no longer takes, an expert no batch is routed to) was never stepped again after
        a skip, rollback or stop, and the run drifted from the one that skipped that ``optimizer.step()`` itself.
        Zeroed, never the bad values: a loop that zeroes right after ``optimizer.step()`` would accumulate into
        them."""
        held, out = self._held_grads, self._grads_out
        self._held_grads, self._grads_out = None, False
        if held is None:
            return []
        if out:
            return [(p, g) for p, g in held if p.grad is g]
        with torch.no_grad():
            return [(p, g.zero_()) for p, g in held if p.grad is None]

    def _capture(self, *, scheduler: bool, reuse: _Healthy | None = None, own: bool = False
                 ) -> tuple[Snapshot, list[torch.Tensor], list[torch.Tensor]]:
        """A Snapshot without gradients (they are never restored: a restored step starts from ``grad=None``), and
        the model's parameters and buffers in the snapshot's order.

        The same content as ``Snapshot.capture(model, optimizer, scheduler)`` taken with every gradient set to
        ``None``, built field by field in fewer operations (one pass over the modules, one clone per tensor with
        autograd off, no ``copy.deepcopy`` of plain numbers, gradients left alone). With ``reuse`` (the snapshot
        this one replaces, which must not be used afterwards), its tensors are overwritten in place wherever they
        still fit: a refresh then allocates nothing, and memory never holds two copies of the model at once.

        ``own=True`` builds the pre-step copy a skip undoes (:meth:`_undo_step`): only the parameters this optimizer
        updates are copied; every other model parameter stands for itself (restoring it is a no-op) and no buffer
        is kept. ``optimizer.step()`` writes nothing else, and what else moves before ``after_step`` — another
        optimizer's step over the same model (Muon + AdamW, a GAN's two players), a forward pass's BatchNorm
        statistics — is not this step's to undo. A frozen backbone is not copied either.
        """
        self._reshard()
        if self.snapshot_device is not None:
            return self._capture_offloaded(scheduler=scheduler, reuse=reuse, own=own)
        model, opt = self.model, self.optimizer
        sched = self.scheduler if scheduler else None
        prev = torch.is_grad_enabled()
        _set_grad_enabled(False)
        try:
            params, buffers, modes, opt_params, index, old = _capture_inputs(model, opt, reuse)
            live_buffers = buffers
            if own:  # Snapshot.restore copies a live parameter onto itself (a no-op) and skips a None buffer
                copies = [p.clone() if id(p) in index else p for p in params]
                buffers = [None] * len(buffers)  # type: ignore[list-item]
            else:
                skip = None if self.snapshot_frozen else _frozen_flags(params, index)
                copies = _refill(old.params if old is not None else None, params, skip)
                buffers = _refill(old.buffers if old is not None else None, buffers)  # type: ignore[arg-type]
            opt_state = {}
            other_state = {}
            old_state = old.opt_state if old is not None else {}
            for p, st in opt.state.items():
                i = index.get(id(p))
                if i is None:  # state kept under a key that is not a parameter (a custom optimizer's counters)
                    other_state[p] = _copy_state(st)
                else:
                    opt_state[i] = _copy_state_into(old_state.get(i), st)
            groups = _group_values(opt)
            sched_state = _copy_state(sched.state_dict()) if sched is not None else None
            # parameters the optimizer updates but the model does not hold (a learnable loss temperature, ...)
            owned = {id(p) for p in params}
            extra = [(p, p.clone(), None) for p in dict.fromkeys(opt_params) if id(p) not in owned]
            attrs = _opt_attrs(opt)
        finally:
            _set_grad_enabled(prev)
        snapshot = Snapshot(model, opt, sched, copies, [None] * len(params), buffers, modes, opt_state, groups,
                            sched_state, extra_params=extra, opt_other_state=other_state, opt_attrs=attrs,
                            opt_param_refs=opt_params, inner=inner_snapshots(opt),
                            versions={} if own else _versions(params, copies))  # fmt: skip
        return snapshot, params, live_buffers

    def _capture_offloaded(self, *, scheduler: bool, reuse: _Healthy | None, own: bool
                           ) -> tuple[Snapshot, list[torch.Tensor], list[torch.Tensor]]:
        """:meth:`_capture` with every copy on ``snapshot_device`` (``Snapshot.homes`` says where each goes back).
        With ``reuse``, a copy is written into the one it replaces when that one still fits (the same shape, dtype
        and layout, copied from the same device): a refresh allocates no new (pinned) host memory."""
        model, opt = self.model, self.optimizer
        dev: torch.device = self.snapshot_device  # type: ignore[assignment]  # the caller's condition: not None
        sched = self.scheduler if scheduler else None
        homes: dict[int, torch.device] = {}
        old_homes = reuse.snapshot.homes if reuse is not None else {}

        def into(old: Any, new: torch.Tensor) -> torch.Tensor:
            if (type(old) is _Tensor and old.device == dev and old.layout == torch.strided
                    and new.layout == torch.strided and old.shape == new.shape and old.dtype == new.dtype
                    and old_homes.get(id(old), old.device) == new.device):
                old.copy_(new)  # blocking: the values are in host memory when this returns
                if new.device != dev:
                    homes[id(old)] = new.device
                return old
            return _offload(new, dev, homes)

        def tree_into(old: Any, new: Any) -> Any:
            if isinstance(new, _Tensor):
                return into(old, new)
            if type(new) is dict and type(old) is dict:
                return {k: tree_into(old.get(k), v) for k, v in new.items()}
            return _offload_tree(new, dev, homes)

        prev = torch.is_grad_enabled()
        _set_grad_enabled(False)
        try:
            params, buffers, modes, opt_params, index, old = _capture_inputs(model, opt, reuse)
            live_buffers = buffers
            if own:  # as in _capture: a parameter this optimizer does not update stands for itself, no buffers
                copies = [_offload(p, dev, homes) if id(p) in index else p for p in params]
                buffers = [None] * len(buffers)  # type: ignore[list-item]
            else:
                skip = [False] * len(params) if self.snapshot_frozen else _frozen_flags(params, index)
                if old is not None and len(old.params) == len(params) and len(old.buffers) == len(buffers):
                    copies = [p if s else into(o, p) for o, p, s in zip(old.params, params, skip)]
                    buffers = [into(o, b) for o, b in zip(old.buffers, buffers)]
                else:
                    copies = [p if s else _offload(p, dev, homes) for p, s in zip(params, skip)]
                    buffers = [_offload(b, dev, homes) for b in buffers]
            opt_state = {}
            other_state = {}
            old_state = old.opt_state if old is not None else {}
            for p, st in opt.state.items():
                i = index.get(id(p))
                if i is None:
                    other_state[p] = _offload_tree(st, dev, homes)
                else:
                    opt_state[i] = tree_into(old_state.get(i), st)
            owned = {id(p) for p in params}
            extra_params = [p for p in dict.fromkeys(opt_params) if id(p) not in owned]
            groups, sched_state, extra, attrs = self._offloaded_rest(sched, extra_params, homes)
        finally:
            _set_grad_enabled(prev)
        snapshot = Snapshot(model, opt, sched, copies, [None] * len(params), buffers, modes, opt_state, groups,
                            sched_state, extra_params=extra, opt_other_state=other_state, opt_attrs=attrs,
                            opt_param_refs=opt_params, inner=inner_snapshots(opt, device=dev), device=dev,
                            homes=homes, versions={} if own else _versions(params, copies))  # fmt: skip
        return snapshot, params, live_buffers

    def _offloaded_rest(self, sched: Any, extra_params: list[torch.Tensor], homes: dict[int, torch.device]
                        ) -> tuple[list[dict[str, Any]], Any, list[tuple[torch.Tensor, torch.Tensor, None]],
                                   dict[str, Any]]:
        """The small parts of a snapshot on ``snapshot_device``: the param groups' values, the scheduler's state,
        the optimizer's parameters outside the model and its own attributes. Autograd must be off."""
        dev: torch.device = self.snapshot_device  # type: ignore[assignment]  # the caller's condition: not None
        opt = self.optimizer
        groups = [{k: _offload_tree(v, dev, homes) for k, v in g.items() if k != "params"} for g in opt.param_groups]
        sched_state = _offload_tree(sched.state_dict(), dev, homes) if sched is not None else None
        extra = [(p, _offload(p, dev, homes), None) for p in extra_params]
        attrs = _offload_tree(_opt_attrs(opt), dev, homes)
        return groups, sched_state, extra, attrs

    def _recapture(self, held: _Healthy | None, *, scheduler: bool
                   ) -> tuple[Snapshot, list[torch.Tensor], list[torch.Tensor], _Plan | None]:
        """:meth:`_capture` with ``reuse=held`` (whose snapshot must not be used afterwards), plus the plan of the new
        snapshot (``None``: to be worked out at the next refresh).

        The refreshes of the healthy and best-validation snapshots take what provably has not changed since ``held``
        was taken from ``held`` itself: when the model holds the same parameter and buffer objects, the optimizer
        the same parameters in the same order, and its state the same entries (the same parameters, in the same
        order, each with the same number of values, tensors where ``held`` has tensors, plain numbers elsewhere), and
        every live tensor has the shape, dtype, device and layout of the copy it goes into (the type a plain tensor
        or a ``Parameter``), all copies — small ones too — are written by one ``torch._foreach_copy_``, and the
        optimizer-parameter index is reused. Anything else takes the general :meth:`_capture`. Both give the same
        snapshot, value for value.
        """
        if held is None:
            return (*self._capture(scheduler=scheduler), None)
        self._reshard()
        old = held.snapshot
        model, opt = self.model, self.optimizer
        params, buffers, modes = _walk(model)
        opt_params = [p for g in opt.param_groups for p in g["params"]]
        live_state = opt.state
        old_state = old.opt_state
        members = held.members
        if not (opt_params and len(live_state) == len(old_state) and _same_objects(members[0], params)
                and _same_objects(members[1], buffers) and _same_objects(old.opt_param_refs, opt_params)
                and len(old.params) == len(params) and len(old.buffers) == len(buffers)):
            return (*self._capture(scheduler=scheduler, reuse=held), None)
        plan = held.plan
        index = plan.index if plan is not None else {id(p): i for i, p in enumerate(opt_params)}
        keep_frozen = self.snapshot_frozen
        for c, p in zip(old.params, params):
            # a parameter left uncopied must still be frozen, and a copied one not frozen since (its copy goes)
            if (c is p) is (keep_frozen or p.requires_grad or id(p) in index):
                return (*self._capture(scheduler=scheduler, reuse=held), None)
        dst: list[Any] = [c for c, p in zip(old.params, params) if c is not p]
        src = [p for c, p in zip(old.params, params) if c is not p]
        n = len(dst)
        dst += old.buffers
        src += buffers
        opt_state: dict[int, Any] = {}
        for (p, st), (i, saved) in zip(live_state.items(), old_state.items()):
            if index.get(id(p)) != i or type(st) is not dict or type(saved) is not dict or len(st) != len(saved):
                return (*self._capture(scheduler=scheduler, reuse=held), None)
            entry = {}
            for k, v in st.items():
                if type(v) is _Tensor:
                    o = saved.get(k)
                    if type(o) is not _Tensor:
                        return (*self._capture(scheduler=scheduler, reuse=held), None)
                    src.append(v)
                    dst.append(o)
                    entry[k] = o
                elif type(v) in _ATOMIC:
                    entry[k] = v
                else:  # a nested value (a list, a dict of tensors): the general path
                    return (*self._capture(scheduler=scheduler, reuse=held), None)
            opt_state[i] = entry
        dev = self.snapshot_device
        if plan is not None and _same_objects(plan.dst, dst):
            sig = plan.sig
        else:  # an offloaded copy stands for a tensor on the device it was copied from (its home)
            sig = _signature(dst) if dev is None else _home_signature(dst, old.homes, dev)
        if _signature(src) != sig or not all(map(_PLAIN_TENSORS.__contains__, map(type, src))):
            return (*self._capture(scheduler=scheduler, reuse=held), None)
        sched = self.scheduler if scheduler else None
        prev = torch.is_grad_enabled()
        _set_grad_enabled(False)
        try:
            if dev is None:
                if src:
                    torch._foreach_copy_(dst, src)
                groups = _group_values(opt)
                sched_state = _copy_state(sched.state_dict()) if sched is not None else None
                extra = [(p, p.clone(), None) for p, _, _ in old.extra_params]
                attrs = _opt_attrs(opt)
                homes: dict[int, torch.device] = {}
            else:  # into the host copies, one blocking copy each (the values are there when it returns)
                for d, t in zip(dst, src):
                    d.copy_(t)
                homes = {id(d): t.device for d, t in zip(dst, src) if t.device != dev}
                groups, sched_state, extra, attrs = self._offloaded_rest(
                    sched, [p for p, _, _ in old.extra_params], homes)
        finally:
            _set_grad_enabled(prev)
        copies = list(old.params)
        snapshot = Snapshot(model, opt, sched, copies, [None] * len(params), dst[n:n + len(buffers)], modes,
                            opt_state, groups, sched_state, extra_params=extra, opt_other_state={}, opt_attrs=attrs,
                            opt_param_refs=opt_params, inner=inner_snapshots(opt, device=dev), device=dev,
                            homes=homes, versions=_versions(params, copies))
        return snapshot, params, buffers, _Plan(index, dst, sig)

    def _trend_ok(self) -> bool:
        """False while the loss's running median has lost a quarter of the progress made (a collapse under way)."""
        rec = self.record
        t, low, start = rec.trend, rec.trend_low, rec.start_loss
        if not (t == t and low == low and start == start) or start <= low:
            return True
        return t - low <= 0.25 * (start - low)

    def _capture_healthy(self, step: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Take the healthy snapshot; return ``(parameters, their copies)`` for :meth:`_start_sample`."""
        snapshot, params, buffers, plan = self._recapture(self._healthy, scheduler=True)
        self._uncopied_held = self._uncopied_held or bool(snapshot.versions)
        self._healthy = _Healthy(snapshot, step, self.lr_scale, self.record.state_dict(), (params, buffers),
                                 self._scaler_state(), plan, self._slots_of(self._healthy, plan),
                                 tuple(len(g["params"]) for g in self.optimizer.param_groups))
        return params, snapshot.params

    def _slots_of(self, held: _Healthy | None, plan: _Plan | None) -> _Slots:
        """The module entries for the snapshot just taken over ``held`` (``_Healthy.slots``): ``held``'s own after a
        refresh in place (``plan``: the same members in the same order, nothing to walk), else walked now."""
        if plan is not None and held is not None and held.slots:
            return held.slots
        return _named_slots(self.model)

    def _scaler_enabled(self) -> bool:
        """Whether ``grad_scaler`` skips steps with non-finite gradients (``GradScaler(enabled=False)`` does not)."""
        is_enabled = getattr(self.grad_scaler, "is_enabled", None)
        return bool(is_enabled()) if callable(is_enabled) else True

    def _unscale(self) -> None:
        """``grad_scaler.unscale_(optimizer)`` unless the loop already called it this iteration.

        torch's own AMP recipe (``scaler.scale(loss).backward(); scaler.step(opt); scaler.update()``) never calls
        ``unscale_``: ``scaler.step`` does it. A step the monitor neutralises (every gradient set to ``None``) would
        then reach ``scaler.step`` with nothing to unscale, and torch fails with ``AssertionError: No inf checks were
        recorded for this optimizer`` — at the first bad step, hours into a run. Unscaling here records the scaler's
        inf check *before* the gradients are dropped (``scaler.step`` then does not unscale again), and the checks
        see the true gradient norms instead of ones multiplied by the loss scale."""
        scaler = self.grad_scaler
        if not self._scaler_enabled() or getattr(scaler, "_scale", None) is None:
            return  # disabled, or nothing was scaled yet (torch's unscale_ would refuse)
        # accelerate's AcceleratedOptimizer steps with scaler.step(the optimizer it wraps), and its
        # clip_grad_norm_ unscales that one: unscaling the wrapper too divided the gradients by the scale twice
        target = self.optimizer
        # (accelerate's class only: a user's wrapper that holds the scaler too may be stepped as scaler.step(wrapper))
        inner = vars(target).get("optimizer")
        if (getattr(target, "scaler", None) is scaler and isinstance(inner, torch.optim.Optimizer)
                and _is_accelerated(target)):
            target = inner
        states = getattr(scaler, "_per_optimizer_states", None)
        for opt in {id(self.optimizer): self.optimizer, id(target): target}.values():
            state = states.get(id(opt)) if isinstance(states, Mapping) else None
            stage = getattr(state.get("stage") if isinstance(state, Mapping) else None, "name", "READY")
            if stage != "READY":  # already UNSCALED by the loop (or STEPPED)
                return
        scaler.unscale_(target)

    def _scaler_state(self) -> dict[str, Any] | None:
        """A copy of ``grad_scaler.state_dict()`` for a snapshot; ``None`` without a scaler or for a disabled one
        (whose state is ``{}``)."""
        if self.grad_scaler is None:
            return None
        return _clone_tree(self.grad_scaler.state_dict()) or None

    def _match_groups(self, healthy: _Healthy, snap: Snapshot) -> tuple[Snapshot, list[int]]:
        """``snap`` with its param groups' saved hyperparameters matched to the optimizer's groups *by their
        parameters*, and the indices of the groups the snapshot does not know (added since).

        ``Snapshot.restore`` writes the saved groups back by position, right while the groups are those of the
        snapshot, with any added since after them (``add_param_group``). A loop that removed or reordered groups
        since (``param_groups.pop(0)``, a group inserted before others) had one group's LR and weight decay written
        into another (before session 36). Each group now gets the saved group that held most of its parameters; a
        group that holds none of them keeps its own values."""
        groups, sizes, refs = self.optimizer.param_groups, healthy.group_sizes, snap.opt_param_refs
        then = len(snap.opt_groups)
        plain = list(range(then, len(groups)))
        if sizes is None or len(sizes) != then or sum(sizes) != len(refs):
            return snap, plain
        owner: dict[int, int] = {}
        start = 0
        for j, n in enumerate(sizes):
            for p in refs[start:start + n]:
                owner.setdefault(id(p), j)
            start += n
        match: list[int | None] = []
        for g in groups:
            votes = Counter(owner[id(p)] for p in g["params"] if id(p) in owner)
            match.append(votes.most_common(1)[0][0] if votes else None)
        if match[:then] == list(range(then)) and all(j is None for j in match[then:]):
            return snap, plain  # the snapshot's groups, in place, and any added after them: by position is right
        refs_of = snap.group_tensor_refs
        current = _group_values(self.optimizer)
        opt_groups = [current[i] if j is None else snap.opt_groups[j] for i, j in enumerate(match)]
        tensor_refs = [{} if j is None or j >= len(refs_of) else refs_of[j] for j in match] if refs_of else []
        snap = dataclasses.replace(snap, opt_groups=opt_groups, group_tensor_refs=tensor_refs)
        return snap, [i for i, j in enumerate(match) if j is None]

    def _restore_healthy(self, healthy: _Healthy) -> list[int]:
        """Back to ``healthy``: model, optimizer, scheduler, GradScaler and the record's training signals (the
        evaluations made since stay); train/eval modes stay as the loop set them. Returns the indices of the param
        groups the snapshot does not know (added since), whose hyperparameters stay as they are."""
        snap, added = self._match_groups(healthy, self._fit_groups(self._aligned(healthy)))
        self._restore_keeping_modes(snap)
        self.record.load_state_dict(healthy.record, keep_step=True, keep_val=True)
        # the scheduler's clock went back: a loop that passes its own epoch (scheduler.step(epoch)) moves it forward
        # again by more than one at the next step, which is no double step (see _check_clock)
        self._clock_rewound = self._step + 1
        if healthy.scaler is not None and self.grad_scaler is not None:
            self.grad_scaler.load_state_dict(_clone_tree(healthy.scaler))
        return added

    def _start_sample(self, with_grad: list[torch.Tensor],
                      copies: tuple[list[torch.Tensor], list[torch.Tensor]] | None) -> None:
        """Keep a copy of the parameters that this step will update (for the update-to-weight ratio).

        When a snapshot was taken at this very step its parameter copies are those values: they are reused (read
        only; the snapshot is never written to) instead of copying the parameters a second time.
        """
        before: list[torch.Tensor] | None = None
        if copies is not None:
            by_id = {id(p): c for p, c in zip(*copies)}
            before = []
            offloaded = self.snapshot_device is not None
            for p in with_grad:
                c = by_id.get(id(p))
                # a parameter the optimizer updates but the model does not hold (or one the snapshot left
                # uncopied); a copy kept on another device
                if c is None or c is p or (offloaded and c.device != p.device):
                    before = None
                    break
                before.append(c)
        if before is None:
            prev = torch.is_grad_enabled()
            _set_grad_enabled(False)
            try:
                before = torch._foreach_mul(with_grad, 1.0) if with_grad else []  # (an FSDP1 rank without any)
            finally:
                _set_grad_enabled(prev)
        self._sample = (with_grad, before)
        self._after_due = min(self._after_due, self._step)  # after_step finishes the sample
        self._watch_sample()

    def _watch_sample(self) -> None:
        """Until the sample is finished, note whether the loop calls ``optimizer.step()`` (a one-shot step post-hook,
        on sampled steps only: nothing on the hot path). A sample over a step the optimizer did not take measures
        no update at all — a ratio of exactly 0 that is no LR's doing (see :meth:`_finish_sample`). The step of an
        optimizer it wraps counts too (:func:`inner_optimizers`): SAM's ``first_step()``/``second_step()`` step its
        ``base_optimizer`` and never call the wrapper's ``step()``; a loop may step the optimizer an accelerate-style
        wrapper holds."""
        self._unwatch_sample()
        ref = weakref.ref(self)

        def hook(optimizer: Any, args: Any, kwargs: Any) -> None:
            monitor = ref()
            if monitor is None:
                return
            if monitor._late_watch:  # the sample ended unstepped; this step came after it (see _finish_sample)
                monitor._late_step(after_step=monitor._pending is None)
            else:
                monitor._sample_stepped = True

        # the optimizer and those it wraps: accelerate's AcceleratedOptimizer has no hook tables of its own (torch's
        # register_step_post_hook on it is an AttributeError) and steps the one it wraps only on a synced micro-batch
        handles = _register_step_hooks(self.optimizer, hook, inner=True)
        if not handles:  # no optimizer with torch's hook tables: whether it steps cannot be seen
            self._sample_hook = None
            return
        self._sample_hook = handles
        self._sample_stepped = False

    def _unwatch_sample(self) -> None:
        if self._sample_hook is not None:
            for handle in self._sample_hook:
                handle.remove()
        self._sample_hook = None
        self._sample_stepped = None
        self._late_watch = False

    def _late_step(self, *, after_step: bool) -> None:
        """The first ``optimizer.step()`` after a sample that ended without one (the hook stays on for it, see
        :meth:`_finish_sample`). Taken between ``after_step()`` and the next ``after_backward()``, the loop calls
        ``after_step()`` *before* ``optimizer.step()``: every step is then finished before it is taken (an undo or
        a rollback runs first and the loop's step lands on top of it; no update ratio is ever measured). Warned
        once, pointing at the loop's ``optimizer.step()`` call. Taken after the next ``after_backward()`` (a
        micro-batch loop, a step a loop's guard or a GradScaler overflow left out), it is no such pattern.

        The hook is not removed here: removing a step hook while torch runs the step hooks breaks the loop's
        ``optimizer.step()`` when another hook follows (``OrderedDict mutated during iteration``). It stays, setting
        a flag nothing reads, until the next sample's :meth:`_watch_sample` (or a state load) removes it."""
        self._late_watch = False
        if not after_step or self._warned_order:
            return
        self._warned_order = True
        self._warned_unstepped = True  # the micro-batch advice would point the wrong way
        warnings.warn(
            f"lrkit.Monitor: optimizer.step() was called after monitor.after_step() (step {self._step}): call "
            "after_step() after optimizer.step() (and after scheduler.step() when you step one per batch), "
            "not before it — the monitor finishes each step in after_step(): a skip or rollback decided in "
            "after_backward() is carried out there, and a step taken later lands on top of it; no update-to-weight "
            "ratio is measured either. Order: loss.backward(); monitor.after_backward(loss); optimizer.step(); "
            "scheduler.step(); monitor.after_step(). Warned once per monitor.",
            UserWarning, stacklevel=stacklevel_outside_lrkit(torch_dir()))

    def _warn_unstepped(self, moved: bool = False) -> None:
        """Warn once when a second sampled step finds that ``optimizer.step()`` was not called between an
        ``after_backward`` that returned ``True`` and ``after_step`` — the monitor is called once per micro-batch
        under gradient accumulation, most likely. One such step is no pattern (``GradScaler`` skips a step on an
        overflow, a loop may guard its step itself); its sample is dropped all the same.

        ``moved``: the optimizer's parameters changed all the same, so another optimizer trains them — the loop
        built a new one mid-run (at unfreezing, say) and the monitor still holds the old one, whose rollbacks and
        back-offs reach nothing the loop steps. Warned at once (a micro-batch moves nothing)."""
        self._unstepped_samples += 1
        if moved and not self._warned_other_optimizer:
            self._warned_other_optimizer = True
            # stacklevel 6: the loop's after_step() (via _warn, _warn_unstepped, _finish_sample, _after_step_work)
            self._warn(
                f"Monitor.after_step() at step {self._step}: the monitored optimizer's parameters changed but its "
                "optimizer.step() was not called: another optimizer trains them — did the loop build a new "
                f"optimizer ({type(self.optimizer).__name__} or another) mid-run, e.g. when unfreezing? The "
                "monitor still holds the one it was given: its rollbacks restore that optimizer's state and its "
                "back-offs lower that optimizer's LR, which nothing steps (the new one trains on at its full "
                "LR). Create a new Monitor for the new optimizer (and its scheduler), or add the unfrozen "
                "parameters to the existing optimizer with optimizer.add_param_group(...) instead of building "
                "another. Warned once per monitor.", UserWarning, 6)
            return
        if moved or self._unstepped_samples < 2 or self._warned_unstepped:
            return
        self._warned_unstepped = True
        self._warn(
            f"Monitor.after_step() at step {self._step}: optimizer.step() was not called since after_backward() "
            f"returned True ({self._unstepped_samples} of the sampled steps so far). Call after_backward() and "
            "after_step() once per optimizer step — under gradient accumulation after the last micro-batch's "
            "backward() and around its optimizer.step(), not once per micro-batch: the monitor otherwise counts "
            "micro-batches as steps. The update-to-weight ratio of a step not taken is not recorded."
            f"{_ACCELERATE_HINT if _is_accelerated(self.optimizer) else ''} Warned once per monitor.",
            UserWarning, 6)

    def _warn(self, message: str, category: type[Warning], stacklevel: int) -> bool:
        """``warnings.warn`` from inside a step's handling: a warnings filter that turns it into an error does not
        interrupt the handling; the error is kept and raised once the step is handled (as :meth:`_emit`'s).
        Returns whether it was kept. ``stacklevel`` counts this method's frame."""
        try:
            warnings.warn(message, category, stacklevel=stacklevel)
        except Exception as exc:
            self._defer(exc)
            return True
        return False

    def _lr(self) -> float:
        return max(float(g["lr"]) for g in self.optimizer.param_groups)

    def _lr_values(self, lr: float) -> dict[str, float]:
        """An event's LR fields: ``lr`` as the groups hold it; for an optimizer that adapts its own step size
        (Prodigy, D-Adaptation: ``lr`` is a multiplier of its estimate ``d``) also ``d_lr``, the step size it
        applies: the largest over the groups holding a ``d`` of ``d * lr``, times Prodigy's bias correction
        ``sqrt(1 - beta2^(k+1)) / (1 - beta1^(k+1))`` when ``use_bias_correction`` is on (``lrkit._dlr``, the same
        helper as results.csv's ``d_lr/<group>``), read from the groups now: in ``after_backward`` the step being
        judged, in ``after_step`` and ``after_validation`` the next one (as ``lr``)."""
        # per group: an optimizer may keep one d per group, and the largest LR need not be in the group of the largest d
        steps = [s for s in group_step_sizes(self.optimizer) if s is not None]
        return {"lr": lr, "d_lr": max(steps)} if steps and adapts_step_size(self.optimizer) else {"lr": lr}

    def _respond(self, step: int, findings: list[tuple[Check, str, Finding]], with_grad: list[torch.Tensor],
                 grads: list[torch.Tensor], gnorm: float, norms: list[float]) -> bool:
        # before anything is done about them
        findings = [(check, action, _finding(check, found)) for check, action, found in findings]
        lr = self._lr()
        worst = "none"
        clip_to = math.inf
        planned: list[tuple[Check, str, Finding, str, str]] = []  # ..., the action asked for, ..., the one it gets
        for check, action, found in findings:
            reason = found.reason
            if check.name == "non_finite" and norms and not math.isfinite(gnorm):
                note = self._bad_param_note(with_grad, norms)
                # "gradient norm is nan (a gradient holds inf/nan) in 'w'"; when the reason names the loss only (the
                # gradients are a GradScaler's business, or grads=False), the note gets its own clause
                reason += note if "gradient" in reason or not note else f"; non-finite gradients{note}"
            if action == "clip":
                target = found.values.get("clip_to", math.nan)
                if math.isfinite(gnorm) and math.isfinite(target) and target > 0:
                    clip_to = min(clip_to, target)
                else:
                    action = "skip"  # nothing finite to clip to: do not take the step
                    reason += "; cannot clip a non-finite gradient, skipping the step"
            if check.category != "too_low":
                self._last_bad_step = step
            if check.cooldown:
                self._quiet_until[check.name] = step + check.cooldown + 1
            done = "stop" if self._over_rollback_limit(action) else action
            planned.append((check, action, found, reason, done))
            if SEVERITY[done] > SEVERITY[worst]:
                worst = done
        for check, action, found, reason, done in planned:
            # the most severe action is the one taken: an event whose own (a clip, a skip) gave way says so, and keeps
            # the action its check asked for (clipped / skipped count what was done)
            if done != "warn" and SEVERITY[done] < SEVERITY[worst]:
                reason += f"; not done: this step's {worst} comes first"
            self._event(step, check, action, found, reason, lr, stacklevel=6)
        self.last_action = worst
        if worst in ("warn", "clip"):
            if worst == "clip" and math.isfinite(clip_to):
                clip_grads_(grads, gnorm, clip_to)
                self.clipped += 1
            self._pending = "ok"
            if self._deferred is not None:
                self._after_due = min(self._after_due, step)  # after_step raises it, once the step is finished
            return True
        # skip / rollback / stop: keep what the undo needs, then make optimizer.step() a no-op for torch optimizers
        if worst == "skip" or (worst in ("rollback", "stop") and self._healthy is None):
            self._pre = self._capture(scheduler=False, own=True)[0]
        self._stop_restore = worst == "stop" and self.restore_on_stop
        self._watch_step()  # (also to give the gradients back right after the loop's optimizer.step())
        self._neutralise()
        self._pending = worst
        return False

    def _bad_param_note(self, with_grad: list[torch.Tensor], norms: list[float]) -> str:
        from lrkit.scaling import bare_param_names

        names = bare_param_names(self.model)  # the user's names, without a wrapper's "module." / "_orig_mod."
        bad = [names.get(id(p), "?") for p, v in zip(with_grad, norms) if not math.isfinite(v)]
        if not bad:
            return ""
        return f" in {first_few(bad, 3)}"

    def _event(self, step: int, check: Check, action: str, found: Finding, reason: str, lr: float,
               stacklevel: int) -> str:
        """Record one finding as an event and return the action taken: a rollback past ``max_rollbacks`` becomes a
        stop, and a stop sets ``should_stop`` with its reason."""
        if self._over_rollback_limit(action):
            action = "stop"
            reason += (f"; rollback limit reached ({self.max_rollbacks} rollbacks, LR now {self.lr_scale:.3g}x the "
                       "original): the run keeps going wrong even at a lower LR — look for inf/nan in the data or the "
                       "loss, or raise max_rollbacks")
        values, reason = self._signed({**found.values, **self._lr_values(lr)}, reason)
        self._emit(MonitorEvent(step, check.name, values, action, reason), stacklevel=stacklevel)
        if action == "stop" and not self.should_stop:
            self.should_stop = True
            self.stop_reason = f"{check.name} at step {step}: {reason}"
            self._dense_until = _NEVER
        return action

    def _over_rollback_limit(self, action: str) -> bool:
        """Whether ``action`` is a rollback past ``max_rollbacks``, which :meth:`_event` turns into a stop."""
        return action == "rollback" and self.rollbacks >= self.max_rollbacks

    def _signed(self, values: dict[str, float], reason: str) -> tuple[dict[str, float], str]:
        """An event's values and reason, marked when the losses among the values are the negated objective."""
        if self._negate:  # say so in the record (every event: backward, step and validation checks alike)
            values["loss_sign"] = -1.0
            reason += " (maximize=True: losses are the negated objective)"
        return values, reason

    def _emit(self, event: MonitorEvent, stacklevel: int = 4) -> None:
        self.events.append(event)
        self._dense_until = max(self._dense_until, event.step + _ALERT_STEPS)
        # an exception from here (a user callback, a warning filtered into an error) would leave the step half
        # handled: it is kept and raised once the monitor has finished (_raise_deferred)
        if event.action == "warn":
            try:
                warnings.warn(f"lrkit.Monitor step {event.step}: {event.reason}", MonitorWarning,
                              stacklevel=stacklevel)
            except Exception as exc:
                self._defer(exc)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as exc:
                self._defer(exc)

    def _defer(self, exc: Exception) -> None:
        if self._deferred is None:
            self._deferred = exc

    def _raise_deferred(self) -> None:
        """Raise the exception kept by :meth:`_emit`, now that the step (or evaluation) is fully handled."""
        exc, self._deferred = self._deferred, None
        if exc is not None:
            raise exc

    def _undo_step(self) -> None:
        """Restore parameters and optimizer state from the pre-step copy, keeping the current group hyperparameters
        that the scheduler set.

        The scheduler may have stepped since the copy was taken; its new LR stays (a skipped step still counts
        on the schedule's clock, as with ``torch.amp.GradScaler``). What the optimizer's own (neutralised) step
        wrote into its groups — schedule-free's ``k``/``weight_sum``/``lr_max``, any optimizer's step counter kept
        there — is undone, as it would not have happened had the loop skipped ``optimizer.step()``.
        """
        pre = self._pre
        if pre is None:  # pragma: no cover - internal invariant
            return
        self._reshard()
        # the restore sets every model parameter's gradient to None: another optimizer's (a GAN's other player, the
        # AdamW beside a Muon) keep theirs, for a step the loop takes after after_step() (it was lost: the skip
        # undid that optimizer's step too)
        own = {id(p) for p in self._trainable()}
        others = [(p, g) for p in self.model.parameters() if id(p) not in own and (g := p.grad) is not None]
        self._restore_keeping_groups(pre, stepped=self._stepped_groups, before_step=self._prestep_groups)
        for p, g in others:
            if p.grad is None:
                p.grad = g

    def _watch_step(self) -> None:
        """Until :meth:`after_step`, record the param groups right before and right after the loop's
        ``optimizer.step()`` (step pre- and post-hooks, the first step only), so that :meth:`_undo_step` can tell
        the optimizer's own writes from the scheduler's — also when the loop steps its scheduler *before*
        ``optimizer.step()``: that write happens after ``after_backward``, and only the record right before the step
        tells it from one the step made.

        The two hooks are registered once, at the first such step, and stay (idle until the next one): a
        ``torch.compile``d ``optimizer.step`` guards on the keys of the optimizer's hook tables, and a pair of new
        hooks at every skipped or rolled-back step would recompile it each time (and after Dynamo's
        ``recompile_limit`` leave it uncompiled)."""
        self._unwatch_step()
        target = _hookable(self.optimizer)  # (accelerate's wrapper has no hook tables: the optimizer it wraps)
        if target is None:
            return
        if self._step_hook is None or self._step_hook_target is not target:
            self._register_watch_hooks(target)
        self._watching_step = self._step_hook is not None

    def _register_watch_hooks(self, target: torch.optim.Optimizer) -> None:
        self._drop_watch_hooks()
        register, register_pre = target.register_step_post_hook, target.register_step_pre_hook
        ref = weakref.ref(self)

        def pre_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
            monitor = ref()
            if monitor is not None and monitor._watching_step and monitor._prestep_groups is None:
                monitor._prestep_groups = _group_values(optimizer)

        def hook(optimizer: Any, args: Any, kwargs: Any) -> None:
            monitor = ref()
            if monitor is not None and monitor._watching_step and monitor._stepped_groups is None:
                monitor._stepped_groups = _group_values(optimizer)
                monitor._give_back_grads()  # before a zero_grad() the loop makes right after its step

        try:
            self._step_hook = register(hook)
            self._prestep_hook = register_pre(pre_hook)
            self._step_hook_target = target
        except (AttributeError, TypeError, RuntimeError):  # an optimizer without torch's hook tables
            self._drop_watch_hooks()

    def _drop_watch_hooks(self) -> None:
        for handle in (self._step_hook, self._prestep_hook):
            if handle is not None:
                handle.remove()
        self._step_hook = None
        self._prestep_hook = None
        self._step_hook_target = None

    def _unwatch_step(self) -> None:
        """Stop recording (the hooks stay registered, idle: see :meth:`_watch_step`)."""
        self._watching_step = False
        self._stepped_groups = None
        self._prestep_groups = None

    def _restore_keeping_groups(self, pre: Snapshot, stepped: list[dict[str, Any]] | None = None,
                                before_step: list[dict[str, Any]] | None = None) -> None:
        """``pre.restore()``, then the param groups' current hyperparameters (the schedule's) written back.

        With ``stepped`` (the groups right after an ``optimizer.step()`` taken since ``pre``), a value that step
        changed and nothing changed since is the optimizer's own bookkeeping: it keeps ``pre``'s value (or stays
        removed, when the step added the key). "Changed by the step" compares with ``before_step``, the groups right
        before that step, when given (else with ``pre``'s): a scheduler stepped between ``after_backward`` and
        ``optimizer.step()`` wrote its LR before the step, and that LR stays. An optimizer's train/eval mode stays
        the current one (see :func:`_opt_mode`).
        """
        mode = _opt_mode(self.optimizer)
        # by value: restore() writes a tensor hyperparameter (a tensor lr) back in place, into the very object
        # the group holds now
        groups = _group_values(self.optimizer)
        _restore_into_state(self.optimizer, pre.restore)
        for i, (g, saved) in enumerate(zip(self.optimizer.param_groups, groups)):
            if before_step is not None:
                before = before_step[i] if i < len(before_step) else None
            else:
                before = pre.opt_groups[i] if i < len(pre.opt_groups) else None
            after = stepped[i] if stepped is not None and i < len(stepped) else None
            for k, v in saved.items():
                if mode is not None and k == "train_mode":
                    continue  # the restored parameters are in the snapshot's mode: _set_opt_mode converts them
                if before is not None and after is not None:
                    was, then = before.get(k, _MISSING), after.get(k, _MISSING)
                    if then is not _MISSING and not _same_value(was, then) and _same_value(then, v):
                        continue  # written by the optimizer's step, untouched since: the restored value stays
                now = g.get(k)
                if isinstance(v, _Tensor) and isinstance(now, _Tensor) and now.shape == v.shape:
                    with torch.no_grad():
                        now.copy_(v)  # the same tensor object stays in the group (a compiled step may hold it)
                else:
                    g[k] = v
        _set_opt_mode(self.optimizer, mode)

    def _aligned(self, held: _Healthy) -> Snapshot:
        """``held.snapshot``, its copies matched to the model's parameters and buffers *by identity* when the model
        has changed since it was taken (a layer inserted mid-run shifts ``model.parameters()``, and a restore by
        position would write one layer's weights into another); what the snapshot does not know keeps its values,
        as the param groups added since keep their hyperparameters."""
        self._reshard()  # (the model's parameters are read here: FSDP2's sharded ones)
        snap = held.snapshot
        old_params, old_buffers = held.members
        params, buffers, modes = _walk(self.model)
        if _same_objects(old_params, params) and _same_objects(old_buffers, buffers):
            return snap
        # a tensor that took a member's slot (same module and name, same shape: a buffer the forward replaces by
        # assignment) gets that member's copy; then each member its own, by identity
        saved_p, saved_b = _slot_heirs(held, params, buffers)
        saved_p.update({id(p): c for p, c in zip(old_params, snap.params)})
        saved_b.update({id(b): c for b, c in zip(old_buffers, snap.buffers)})
        # what the snapshot does not know stands for itself: the restore leaves it (no copy of a frozen backbone)
        return dataclasses.replace(
            snap, params=[saved_p.get(id(p), p) for p in params], grads=[None] * len(params),
            buffers=[saved_b.get(id(b), b) for b in buffers], modes=modes,
        )

    def _fit_groups(self, snap: Snapshot) -> Snapshot:
        """``snap`` with its scheduler state fitted to param groups added since it was taken
        (``optimizer.add_param_group()``, a backbone unfrozen mid-run).

        The restore leaves those groups' hyperparameters as they are (the snapshot does not know them); a scheduler
        that follows every group (lrkit's, which adopts added groups) keeps a per-group list (``base_lrs``, ...)
        and refuses a state with fewer entries than groups. Each such list of the saved state is completed with
        the live scheduler's entries for the added groups: the schedule's clock goes back, the new groups keep
        following it.
        """
        state, sched = snap.sched_state, self.scheduler
        then, now = len(snap.opt_groups), len(self.optimizer.param_groups)
        if sched is None or type(state) is not dict or then >= now:
            return snap
        live = sched.state_dict()
        fitted = dict(state)
        for key, value in state.items():
            current = live.get(key)
            if type(value) is list and len(value) == then and type(current) is list and len(current) == now:
                fitted[key] = [*value, *_copy_state(current[then:])]
        return dataclasses.replace(snap, sched_state=fitted)

    def _restore_keeping_modes(self, snapshot: Snapshot, *, keep_groups: bool = False) -> None:
        """``snapshot.restore()`` (:meth:`_restore_keeping_groups` with ``keep_groups``) with every module's
        train/eval mode left as the loop set it: modes are the loop's decision (a BatchNorm frozen mid-run stays
        frozen), and a snapshot taken at ``after_validation``, while the loop had the model in eval mode, must not
        switch training into eval mode. The same holds for an optimizer with modes (schedule-free): a snapshot taken
        in its eval mode is converted by its own ``train()`` when the loop has it in train mode, and back."""
        self._reshard()
        if snapshot.versions:
            if self._versions_unread:  # a restore before any after_backward since the load (a validation rollback)
                self._read_loaded_versions()
            self._warn_uncopied(snapshot)
        modules = list(self.model.modules())
        modes = [m.training for m in modules]
        if keep_groups:
            self._restore_keeping_groups(snapshot)
        else:
            opt_mode = _opt_mode(self.optimizer)  # an optimizer's train/eval mode is the loop's decision too
            _restore_into_state(self.optimizer, snapshot.restore)
            _set_opt_mode(self.optimizer, opt_mode)
        for module, mode in zip(modules, modes):
            module.training = mode

    def _warn_uncopied(self, snapshot: Snapshot) -> None:
        """Warn, naming them, about the parameters the snapshot left uncopied (frozen when it was taken) that have
        changed since: the restore leaves them as they are now."""
        versions = snapshot.versions
        changed = [name for name, p in self.model.named_parameters()
                   if id(p) in versions and _version(p) != versions[id(p)]]
        if not changed:
            return
        shown = first_few(changed, 3)
        self._warn(
            f"Monitor: {shown} {'was' if len(changed) == 1 else 'were'} frozen (requires_grad=False, in no param "
            "group) when the snapshot being restored was taken, so the snapshot holds no copy, and "
            f"{'has' if len(changed) == 1 else 'have'} changed since (trained by another optimizer, e.g. a GAN's "
            "other player frozen during this one's step; trained after an unfreeze the monitor saw too late; or "
            "written in place); the restore leaves "
            f"{'it' if len(changed) == 1 else 'them'} as now. Monitor(..., snapshot_frozen=True) copies frozen "
            "parameters too", UserWarning, stacklevel_outside_lrkit(torch_dir()) + 1)  # (+1: _warn's own frame)

    def _restore_best_val(self) -> None:
        """Model and optimizer back to the best-validation snapshot; hyperparameters and modes stay as they are."""
        best = self._best_val
        if best is None:  # pragma: no cover - callers check
            return
        # between steps the gradients are the loop's, as it left them: the restore (which sets every one to None)
        # must not take them (a zero_grad(set_to_none=False) loop would never step again a parameter that gets no
        # gradient in the next backward passes)
        grads = [(p, g) for p in self._trainable() if (g := p.grad) is not None]
        self._restore_keeping_modes(self._aligned(best), keep_groups=True)
        for p, g in grads:
            if p.grad is None:
                p.grad = g
        self.record.load_state_dict(best.record, keep_step=True)

    def _val_rollback(self) -> None:
        """Back to the best validation loss (when its snapshot is held) and back off by ``val_backoff``; the
        schedule keeps its clock. A fresh healthy snapshot is taken of the restored state."""
        if self._best_val is not None:
            self._restore_best_val()
        self._back_off(self.val_backoff)
        self.lr_scale *= self.val_backoff
        self.rollbacks += 1
        self.record.mark()  # the losses held now were trained at the old LR (LossAboveStart judges only newer ones)
        self._capture_healthy(self._step)
        self._refresh_screen()
        self._refresh_idle()
        self._schedule_after_step()

    def _rollback(self) -> None:
        healthy = self._healthy
        if healthy is None:  # nothing healthy yet: undo this step and back off from here
            self._undo_step()
            base_scale = self.lr_scale
        else:
            # the evaluations made since the snapshot stay (their best, and its snapshot, are still the run's)
            added = self._restore_healthy(healthy)
            base_scale = healthy.lr_scale
            healthy.step = self._step  # count healthy progress from the restored point
            self._rescale_added_groups(added, base_scale / self.lr_scale)
        new_scale = self.lr_scale * self.backoff
        self._back_off(new_scale / base_scale)
        self.lr_scale = new_scale
        self.rollbacks += 1
        self.record.mark()  # the losses held now were trained at the old LR (LossAboveStart judges only newer ones)

    def _restore_stop(self, healthy: _Healthy) -> None:
        """A stop's restore (``restore_on_stop``): back to ``healthy`` as a rollback goes, keeping the back-offs made
        since it was taken. The snapshot's LRs carry its own ``lr_scale``: restored alone, a stop at the rollback cap
        put the LR back up to the one that diverged (the original LR when no snapshot was refreshed in between),
        while :attr:`lr_scale`, ``summary()`` and ``state_dict()`` still gave the backed-off scale the stop reason
        names, and a run resumed with a higher ``max_rollbacks`` trained on at that higher LR."""
        added = self._restore_healthy(healthy)
        if healthy.lr_scale != self.lr_scale:
            self._rescale_added_groups(added, healthy.lr_scale / self.lr_scale)
            backoff_lr(self.optimizer, self.scheduler, self.lr_scale / healthy.lr_scale)

    def _rescale_added_groups(self, added: list[int], factor: float) -> None:
        """Multiply the LRs of the param groups added since the restored snapshot was taken (indices ``added``) by
        ``factor`` (``snapshot lr_scale / lr_scale``), and their entries in the scheduler's per-group lists.

        The restore leaves those groups' LRs as they are, at the run's current ``lr_scale``, while the rollback's
        back-off (``new_scale / snapshot's lr_scale``) is sized for groups restored to the snapshot's: without this a
        group added after the snapshot (a backbone unfrozen with ``add_param_group``) was backed off by every
        earlier back-off again at each rollback (``backoff ** 3`` after two instead of ``backoff ** 2``). lrkit's
        adapters (``lr_multiplier``, one for every group, restored with the scheduler) need nothing."""
        groups = self.optimizer.param_groups
        if not added or factor == 1.0:
            return
        chain = list(_schedulers(self.scheduler))
        if any(hasattr(s, "lr_multiplier") for s in chain):
            return
        done: set[int] = set()
        for i in added:
            for key in _GROUP_KEYS:
                if key in groups[i]:
                    groups[i][key] = _scaled(groups[i][key], factor, done)
        marked = set(added)
        for s in chain:
            for attr in _LIST_ATTRS:
                values = getattr(s, attr, None)
                if isinstance(values, (list, tuple)) and len(values) == len(groups):
                    setattr(s, attr, type(values)(_scaled(v, factor, done) if i in marked else v
                                                  for i, v in enumerate(values)))

    def _back_off(self, factor: float) -> None:
        """:func:`backoff_lr` by ``factor``; without a scheduler, watch for the loop writing the LR back."""
        groups = self.optimizer.param_groups
        before = [float(g["lr"]) for g in groups]
        backoff_lr(self.optimizer, self.scheduler, factor)
        if self.scheduler is None and not self._warned_undone:
            self._lr_watch = [(float(g["lr"]), b) for g, b in zip(groups, before)]
            self._lr_watch_step = self._step

    def _check_lr_watch(self, step: int) -> None:
        """Without a scheduler the monitor knows of, a back-off lives in the groups' ``lr`` alone, and a loop that
        writes its LRs itself (a scheduler it steps but did not pass, or its own schedule) writes over it. Judge the
        first LRs written after the back-off (checked on full steps: every step for 50 after an event, then every
        ``grad_every``), every group written: any one more than halfway back up (in log space) to where the back-off
        took it from undid it, and is warned about once per monitor. A lower or nearby LR (the loop's own decay, or a
        loop that multiplies by :attr:`lr_scale`) is not."""
        watch, groups = self._lr_watch, self.optimizer.param_groups
        if watch is None or len(watch) != len(groups):
            self._lr_watch = None
            return
        # every group the loop wrote is judged (any one written back up undid the back-off, whatever the others)
        written = [(i, float(g["lr"]), set_lr, before)
                   for i, (g, (set_lr, before)) in enumerate(zip(groups, watch)) if float(g["lr"]) != set_lr]
        if not written:
            return
        self._lr_watch = None  # the loop has written its LRs: judged once
        for i, now, set_lr, before in written:
            if set_lr < before and now > math.sqrt(set_lr * before):
                self._warned_undone = True
                which = f"param group {i}'s" if len(groups) > 1 else "the"
                if self._warn(
                        f"lrkit.Monitor: the back-off at step {self._lr_watch_step} was undone before step {step}: "
                        f"{which} LR is {now:.3g} again (the back-off set {set_lr:.3g}, down from {before:.3g}). A "
                        "scheduler the monitor was not given, or the loop itself, wrote it, and the trouble the "
                        "back-off answered is likely to return. Pass the scheduler you step, Monitor(model, "
                        "optimizer, scheduler), so that back-offs scale what it computes the LR from, or multiply "
                        f"the LRs your loop writes by monitor.lr_scale (now {self.lr_scale:g}). Warned once per "
                        "monitor.", MonitorWarning, 5):
                    self._after_due = min(self._after_due, step)  # the healthy after_step raises it
                return  # warned once: the first group written back up is named

    def _finish_sample(self) -> None:
        params, before = self._sample  # type: ignore[misc]
        self._sample = None
        stepped = self._sample_stepped
        if stepped is False and not self._warned_order:
            # the hook stays on for the next optimizer.step(): taken before the next after_backward(), the loop
            # calls after_step() before optimizer.step() (see _late_step); a later _watch_sample removes it
            self._late_watch = True
        else:
            self._unwatch_sample()
        if stepped is False:  # the optimizer did not step: there is no update to measure (not an LR of 0)
            with torch.no_grad():  # moved all the same: another optimizer trains them (a rebuilt one, most likely)
                moved = any(_moved(p, b) for p, b in zip(params, before))
            self._warn_unstepped(moved)
            return
        prev = torch.is_grad_enabled()
        _set_grad_enabled(False)
        try:
            # one norm call for ||w_{t+1} - w_t|| and ||w_{t+1}|| per tensor (each norm is computed on its own)
            norms = torch._foreach_norm([*torch._foreach_sub(params, before), *params]) if params else []
            if self._global:  # (see _measure)
                norms = _global_norms(norms)
            if not norms:  # an FSDP1 rank whose shard holds no gradient: it adds nothing to the sums below
                values = []
            elif norms[0].is_cpu:  # on CPU, reading a few scalars beats stack() + tolist()
                values = [n.item() for n in norms]
            else:
                try:
                    values = torch.stack(norms).tolist()
                except RuntimeError:  # norms on several devices / of several dtypes
                    values = [float(v) for v in norms]
        finally:
            _set_grad_enabled(prev)
        k = len(params)
        num2 = sum(map(mul, values[:k], values[:k]))
        den2 = sum(map(mul, values[k:], values[k:]))
        if self._fsdp1 is not None:  # (see _measure)
            num2, den2 = fsdp1_shard_sum(self._fsdp1, [num2, den2], norms[0].device if norms else self._sum_device())
        num, den = math.sqrt(num2), math.sqrt(den2)
        self.record.push_update_ratio(num / den if den > 0 else math.nan, self._lr())

    def _after_step_work(self) -> None:
        """The rare part of a healthy ``after_step``: finish the update-ratio sample, run the ``"step"`` checks when
        due and not all idle; then set the next step at which there is work (``_after_due``)."""
        step = self._step
        if self._clock_at is not None:
            self._after_due = self._clock_due  # what was due before the clock check asked for this call
            self._check_clock()
            if step < self._after_due:
                return
        if self._sample is not None:
            self._finish_sample()
            self._refresh_idle()  # a new update ratio and LR
        if self._step_checks and not self._steps_idle and step % self._step_every == 0:
            self._run_step_checks()
        self._schedule_after_step()
        if self._deferred is not None:  # from on_event, here or in this step's after_backward (see _respond)
            self._raise_deferred()

    def _check_clock(self) -> None:
        """Warn once when the scheduler's clock (``last_epoch``) moved by more than one between a healthy full step's
        ``after_backward`` and its ``after_step``: the loop calls ``scheduler.step()`` more than once per optimizer
        step, and the schedule runs that many times too fast. Read on full steps only (an attribute read there;
        nothing on the fast path). A clock moved outside that window — a resume's fast-forward, ``seek()`` after a
        rollback, a per-epoch ``scheduler.step()`` — is not in it. accelerate's ``AcceleratedScheduler`` is read
        through (its wrapped scheduler's clock), and its ``num_processes`` moves per optimizer step are by design
        (:func:`_clock_moves`); a scheduler moved ``num_processes`` times under accelerate (the raw scheduler behind
        a prepared one) is warned about with that explanation."""
        before = self._clock_at
        self._clock_at = None
        now = _clock(self.scheduler)
        if type(now) is not int or type(before) is not int:
            return
        per = _clock_moves(self.scheduler)
        moved = now - before
        if moved <= per:
            return
        self._clock_on = False
        name = type(self.scheduler).__name__
        inner = wrapped_scheduler(self.scheduler)
        if inner is not None:
            name = f"{type(inner).__name__}, stepped by {name}"
        processes = _accelerate_processes()
        if per == 1 and inner is None and moved == processes:
            warnings.warn(
                f"lrkit.Monitor: the scheduler ({name}) moved {moved} steps within one optimizer step (its last_epoch "
                f"went {before} -> {now} between after_backward() and after_step() at step {self._step}). Under "
                f"accelerate with {processes} processes, the prepared scheduler (AcceleratedScheduler) steps the "
                f"scheduler it wraps {processes} times per optimizer step unless split_batches=True: by design, for a "
                "schedule built for the unprepared loader's length. If that is what moves it, pass the monitor the "
                "scheduler accelerator.prepare() returned (it is read with that in mind, and this warning goes); "
                f"else scheduler.step() is called {moved} times per optimizer step and the schedule runs {moved}x too "
                "fast. Warned once per monitor.",
                UserWarning, stacklevel=stacklevel_outside_lrkit())
            return
        warnings.warn(
            f"lrkit.Monitor: the scheduler ({name}) moved {moved} steps within one optimizer "
            f"step (its last_epoch went {before} -> {now} between after_backward() and after_step() at step "
            f"{self._step}): scheduler.step() is called {moved / per:g} times per optimizer step, so the schedule runs "
            f"{moved / per:g}x too fast. Call scheduler.step() once per optimizer step (between optimizer.step() and "
            "monitor.after_step()), or once per epoch for a per-epoch schedule. If it counts micro-batches on purpose "
            "(stepped per micro-batch under gradient accumulation), ignore this. Warned once per monitor.",
            UserWarning, stacklevel=stacklevel_outside_lrkit())

    def _refresh_idle(self) -> None:
        """``_steps_idle``: every "step" check is idle (:meth:`Check.idle`, which reads only the update ratios and
        the LR); called whenever those may have changed (a sample finished, the record was reloaded)."""
        rec = self.record
        self._steps_idle = bool(self._step_checks) and all(check.idle(rec) for check, _ in self._step_checks)

    def _schedule_after_step(self) -> None:
        """Set ``_after_due``, the next step whose after_step has work: the next multiple of ``_step_every``, or
        none while every step check is idle (a sample lowers it when it starts). Skipping idle step checks leaves
        the record as it would be: :meth:`_flush` cuts its batches at those steps all the same."""
        if self._step_checks and not self._steps_idle:
            every = self._step_every
            self._after_due = (self._step // every + 1) * every
        else:
            self._after_due = _FAR

    def _run_step_checks(self) -> None:
        step = self._step
        rec = self.record
        quiet = self._quiet_until
        # the due checks that could fire; Check.idle() reads no loss, so it can be asked before the flush
        live = [(check, action) for check, action in self._step_checks
                if not (step % check.every or quiet.get(check.name, -1) > step) and not check.idle(rec)]
        if not live:
            return  # nothing reads the record now (_flush will cut its batch here all the same)
        self._flush(step)
        worst = "none"
        found_by = [(check, action, check.check(rec)) for check, action in live]
        findings = [(check, action, _finding(check, found)) for check, action, found in found_by if found is not None]
        for check, action, found in findings:
            if check.cooldown:
                self._quiet_until[check.name] = step + check.cooldown + 1
            act = action
            values, reason = self._signed({**found.values, **self._lr_values(self._lr())}, found.reason)
            # stacklevel 5: the warning points at the loop's after_step() call (via _after_step_work)
            self._emit(MonitorEvent(step, check.name, values, act, reason), 5)
            if SEVERITY[act] > SEVERITY[worst]:
                worst = act
            if act == "stop" and not self.should_stop:
                self.should_stop = True
                self.stop_reason = f"{check.name} at step {step}: {reason}"
                self._dense_until = _NEVER
        if worst != "none":
            self.last_action = worst
            self._refresh_screen()
