"""In-memory snapshots of training state, restored bit for bit.

Used by the LR finder (restore everything after the range test), the health monitor (rollback to the last healthy
step) and ``lr0="auto"`` (try candidates from the same starting point). Nothing is written to disk.

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> snap = Snapshot.capture(model, opt)
>>> model(torch.ones(1, 2)).sum().backward(); opt.step()
>>> snap.restore()
>>> bool(torch.equal(model.weight, snap.params[0]))
True
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["RNGState", "Snapshot", "check_snapshot_device", "every_optimizer", "inner_optimizers", "inner_snapshots",
           "set_group_lrs"]


@dataclass
class RNGState:
    """The torch (CPU and every initialised CUDA device), numpy and python RNG states."""

    torch_cpu: torch.Tensor
    torch_cuda: list[torch.Tensor] | None
    numpy: Any
    python: Any

    @classmethod
    def capture(cls) -> RNGState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return cls(torch.get_rng_state(), cuda, np.random.get_state(), random.getstate())

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None:
            torch.cuda.set_rng_state_all(self.torch_cuda)
        np.random.set_state(self.numpy)
        random.setstate(self.python)


def _map_tree(obj: Any, tensor: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Deep-copy a state tree of dicts, lists and tuples, each tensor replaced by ``tensor(t)`` (anything else by
    ``copy.deepcopy``)."""
    if isinstance(obj, torch.Tensor):
        return tensor(obj)
    if isinstance(obj, dict):
        return {k: _map_tree(v, tensor) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_tree(v, tensor) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_map_tree(v, tensor) for v in obj)
    return copy.deepcopy(obj)


def _clone_tree(obj: Any) -> Any:
    """Deep-copy a state tree, cloning tensors (``copy.deepcopy`` with exact tensor copies)."""
    return _map_tree(obj, _clone_one)


def check_snapshot_device(value: Any, name: str = "snapshot_device") -> torch.device | None:
    """``value`` as the device a snapshot keeps its copies on: ``None`` (each copy on the device of the tensor it
    copies), or a ``torch.device`` this torch can allocate on (``"cpu"``: host memory; ``"cuda"`` is this process's
    current GPU). A ``ValueError`` naming ``name``, the value and what is valid otherwise (``"meta"`` holds no
    values).

    >>> check_snapshot_device("cpu"), check_snapshot_device(None)
    (device(type='cpu'), None)
    """
    if value is None:
        return None
    valid = "valid: None (each copy on its own tensor's device), 'cpu' (host memory) or another torch.device"
    if not isinstance(value, (str, torch.device)):
        raise ValueError(f"{name}={value!r:.60} must be a device name or a torch.device; {valid}")
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError):
        raise ValueError(f"{name}={value!r:.60} is not a torch device; {valid}") from None
    if dev.type == "meta":
        raise ValueError(f"{name}={str(value)!r} cannot hold a snapshot (a meta tensor keeps no values); {valid}")
    try:
        torch.empty(0, device=dev)
    except Exception as e:  # RuntimeError (a bad index), AssertionError (not compiled with it), NotImplementedError
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{name}={str(value)!r} cannot be used: {why}; {valid}") from None
    if dev.type == "cuda" and dev.index is None:  # as a tensor made there reports it: comparisons hold
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev.type == "cpu":  # "cpu:0" is the CPU, which a CPU tensor reports as plain "cpu"
        dev = torch.device("cpu")
    return dev


def _offload(t: torch.Tensor, device: torch.device | None, homes: dict[int, torch.device],
             home: torch.device | None = None) -> torch.Tensor:
    """A copy of ``t`` on ``device`` (strides kept), its ``home`` (default: ``t``'s device) noted in ``homes`` when
    that is another device. A CUDA tensor's host copy goes to pinned memory (a faster transfer); the copy is
    blocking, so the values are there when this returns, whatever runs next. ``device=None``: a plain copy on
    ``t``'s own device (a snapshot without ``snapshot_device``), nothing noted."""
    if device is None:
        return _clone_one(t)
    t = t.detach()
    home = t.device if home is None else home
    # a host copy of (or for) a CUDA tensor is pinned: also one loaded from a checkpoint read onto the CPU, which
    # later refreshes write into and rollbacks copy from
    pin = (device.type == "cpu" and "cuda" in (t.device.type, home.type) and t.layout == torch.strided
           and torch.cuda.is_available())
    if t.device == device and not pin:
        out = t.clone()
    elif t.layout != torch.strided:  # sparse: no pinned buffer of the same layout to copy into
        out = t.to(device, copy=True)
    else:
        out = torch.empty_like(t, device=device, pin_memory=pin)
        out.copy_(t)
    if home != device:
        homes[id(out)] = home
    return out


def _offload_tree(obj: Any, device: torch.device | None, homes: dict[int, torch.device]) -> Any:
    """:func:`_clone_tree` with every tensor copied onto ``device`` (:func:`_offload`; ``None``: :func:`_clone_tree`
    itself)."""
    if device is None:
        return _clone_tree(obj)
    return _map_tree(obj, lambda t: _offload(t, device, homes))


def _home_tree(obj: Any, homes: dict[int, torch.device]) -> Any:
    """:func:`_clone_tree` of a snapshot's value with every tensor copied back onto the device of the tensor it was
    copied from (``homes``; one not in it was copied on its own device). Blocking copies: the values are there."""

    def back(t: torch.Tensor) -> torch.Tensor:
        home = homes.get(id(t))
        return t.detach().clone() if home is None else t.detach().to(home, copy=True)

    return _map_tree(obj, back)


#: ``Snapshot.slots``: each module with its ``_parameters``, ``_buffers`` and ``_modules`` entries (``name -> tensor,
#: module or None``).
_Slots = list[tuple[torch.nn.Module, dict[str, Any], dict[str, Any], dict[str, Any]]]


@dataclass
class Snapshot:
    """Everything a training step can change, captured in memory.

    Covers parameters and their ``.grad``, buffers (BatchNorm running stats), every module's train/eval mode,
    the optimizer's per-parameter state and every param-group hyperparameter (``lr``, ``momentum``, ``betas``,
    ``initial_lr``, ...), an optional LR scheduler's ``state_dict()``, and optionally the RNG states.
    ``restore()`` writes the values back *in place*, so the optimizer keeps referencing the same parameters, and a
    gradient that existed at capture is copied back into that same ``.grad`` tensor (a DDP
    ``gradient_as_bucket_view`` bucket view, or a grad an optimizer or hook cached, stays the live one); a
    parameter that had no gradient gets ``None`` again. The original ``.grad`` tensors are held until the snapshot
    is dropped.

    ``capture(..., device="cpu")`` keeps every copy in host memory (pinned when it comes from CUDA) instead of on the
    device of the tensor it copies, so a GPU holds no second copy of the model and its optimizer state;
    ``restore()`` writes each value back onto its own tensor's device and dtype, bit for bit.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | None
    scheduler: Any
    params: list[torch.Tensor]
    grads: list[torch.Tensor | None]
    buffers: list[torch.Tensor | None]
    modes: list[bool]
    opt_state: dict[int, Any] = field(default_factory=dict)
    opt_groups: list[dict[str, Any]] = field(default_factory=list)
    sched_state: dict[str, Any] | None = None
    rng: RNGState | None = None
    #: Optimizer parameters that are not the model's (a learnable loss temperature, ...): ``(param, value, grad)``.
    extra_params: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = field(default_factory=list)
    #: Optimizer state kept under keys that are not its parameters (some optimizers keep global counters there).
    opt_other_state: dict[Any, Any] = field(default_factory=dict)
    #: The optimizer's own scalar and tensor attributes (a custom optimizer's step counter, torch's ``_opt_called``);
    #: ``None`` leaves them alone.
    opt_attrs: dict[str, Any] | None = None
    #: The ``.grad`` tensor objects themselves (by reference, one per model parameter, ``None`` where there was
    #: none), so ``restore()`` writes the saved values back *into them*: code that holds a gradient (DDP's
    #: ``gradient_as_bucket_view=True`` buckets, an optimizer or a hook that cached it) keeps the live one.
    #: Empty: gradients are restored as fresh copies.
    grad_tensors: list[torch.Tensor | None] = field(default_factory=list)
    #: The same for ``extra_params``, in their order.
    extra_grad_tensors: list[torch.Tensor | None] = field(default_factory=list)
    #: The optimizer's parameters at capture (by reference, in param-group order: ``opt_state``'s keys index this
    #: list). When the groups hold other parameters at ``restore()`` (a list replaced or reordered in between), each
    #: state goes back to *its own* parameter, matched by identity, never to whichever one now sits at its position;
    #: a parameter the optimizer did not hold at capture gets none (as it had none then, and as a restore by position
    #: leaves a group added since), nor does one no longer in the groups (``state_dict()`` could not name it).
    #: Empty (a snapshot built field by field): by position.
    opt_param_refs: list[torch.Tensor] = field(default_factory=list)
    #: The tensor values of each param group at capture, by reference (a tensor ``lr``, and a tuple holding tensors:
    #: ``betas=(torch.tensor(0.9), torch.tensor(0.999))``): ``restore()`` writes the saved value back into *that*
    #: tensor (or the tuple's tensors) and puts it back in the group, also when something in between replaced the
    #: group's entry with another one (torch <= 2.9's ``SequentialLR`` does at a milestone, a momentum cycle replaces
    #: ``betas``), so a compiled or fused step that holds it keeps the live one. Empty: into whatever tensor the group
    #: holds at ``restore()``.
    group_tensor_refs: list[dict[str, torch.Tensor]] = field(default_factory=list)
    #: Snapshots (optimizer part only) of the optimizers this one wraps that keep a state of their own
    #: (:func:`inner_optimizers`: ``ZeroRedundancyOptimizer``'s per-rank ``optim``, SAM's and Lookahead's
    #: ``base_optimizer``), restored after it.
    inner: list[Snapshot] = field(default_factory=list)
    #: The device every copy is kept on (``capture(device=...)``); ``None``: each on the device of what it copies.
    device: torch.device | None = None
    #: ``id(copy) -> device`` for each copy held on another device than the tensor it copies (``device``): where
    #: ``restore()`` puts its value back. The copies are held by the snapshot, so their ids stay theirs.
    homes: dict[int, torch.device] = field(default_factory=dict)
    #: ``id(param) -> param._version`` at capture for each model parameter that stands for itself in ``params``
    #: (no copy taken: a frozen parameter the health monitor does not copy). ``restore()`` leaves such a parameter
    #: as it is; its version counter moving since says something wrote into it in between.
    versions: dict[int, int] = field(default_factory=dict)
    #: Every module at capture with its parameter, buffer and submodule entries, by reference: ``(module,
    #: {name: parameter}, {name: buffer}, {name: submodule})`` (``None`` where one was registered as ``None``).
    #: ``restore()`` first puts each of them back in its slot and removes one registered since, so
    #: ``model.parameters()``, ``model.buffers()`` and ``model.modules()`` give those of the capture again, in their
    #: order, before the values are written back by position: a parameter, buffer or layer created in a forward (a
    #: lazily registered statistic or projection, a RoPE cache regrown to another shape, a ``None`` buffer filled on
    #: first use) would otherwise shift every value after it onto the wrong tensor, or stop the restore part-way with
    #: a shape error. Empty (a snapshot built field by field, or a model whose class overrides the traversal): by
    #: position only.
    slots: _Slots = field(default_factory=list)

    @classmethod
    def capture(
        cls,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        *,
        rng: bool = False,
        as_inner: bool = False,
        device: torch.device | str | None = None,
    ) -> Snapshot:
        """Capture ``model`` (and ``optimizer``/``scheduler``/RNG when given) by value.

        ``as_inner=True`` captures the optimizer's own state, groups and attributes only — not its parameters outside
        the model nor the optimizers it wraps — for an optimizer another one wraps (see :func:`inner_snapshots`).
        ``device`` (see :func:`check_snapshot_device`) keeps every copy there, e.g. ``"cpu"`` for host memory.
        """
        dev = check_snapshot_device(device, "device")
        homes: dict[int, torch.device] = {}

        def tree(obj: Any) -> Any:
            return _offload_tree(obj, dev, homes)

        def one(t: torch.Tensor) -> torch.Tensor:
            return _offload(t, dev, homes)

        params_list = list(model.parameters())
        params = [one(p) for p in params_list]
        grad_tensors = [p.grad for p in params_list]
        grads = [None if g is None else one(g) for g in grad_tensors]
        buffer_list = list(model.buffers())
        buffers = [None if b is None else one(b) for b in buffer_list]
        modes = [m.training for m in model.modules()]
        opt_state: dict[int, Any] = {}
        opt_groups: list[dict[str, Any]] = []
        if optimizer is not None:
            index = {id(p): i for i, p in enumerate(_opt_params(optimizer))}
            opt_state = {index[id(p)]: tree(s) for p, s in optimizer.state.items() if id(p) in index}
            opt_groups = [{k: tree(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
            other_state = {k: tree(s) for k, s in optimizer.state.items() if id(k) not in index}
            owned = {id(p) for p in model.parameters()}
            extra_params = [] if as_inner else [p for p in dict.fromkeys(_opt_params(optimizer)) if id(p) not in owned]
            extra = [(p, one(p), None if p.grad is None else one(p.grad)) for p in extra_params]
            extra_grads = [p.grad for p in extra_params]
            attrs = {k: tree(v) for k, v in vars(optimizer).items() if isinstance(v, _ATTR_TYPES)}
        sched_state = tree(scheduler.state_dict()) if scheduler is not None else None
        snapshot = cls(
            model, optimizer, scheduler, params, grads, buffers, modes, opt_state, opt_groups, sched_state,
            RNGState.capture() if rng else None, device=dev, homes=homes,
        )
        snapshot.grad_tensors = grad_tensors
        snapshot.slots = _slots(model, params_list, buffer_list)
        if optimizer is not None:
            snapshot.extra_params, snapshot.opt_other_state, snapshot.opt_attrs = extra, other_state, attrs
            snapshot.extra_grad_tensors = extra_grads
            snapshot.opt_param_refs = _opt_params(optimizer)
            snapshot.group_tensor_refs = [{k: v for k, v in g.items() if k != "params" and _holds_tensors(v)}
                                          for g in optimizer.param_groups]
            snapshot.inner = [] if as_inner else inner_snapshots(optimizer, device=dev)
        return snapshot

    @torch.no_grad()
    def restore(self) -> None:
        """Write every captured value back, in place. Can be called more than once."""
        homes = self.homes
        back: Any = (lambda obj: _home_tree(obj, homes)) if homes else _clone_tree
        if self.slots:
            _put_back(self.slots)
        live = self.grad_tensors or [None] * len(self.grads)
        for p, saved, g, obj in zip(self.model.parameters(), self.params, self.grads, live):
            if saved is not p:  # (a parameter standing for itself keeps its value: nothing to copy)
                p.copy_(saved)  # across devices too (a host copy onto a CUDA parameter), same dtype: exact
            _restore_grad(p, g, obj, homes)
        for b, saved in zip(self.model.buffers(), self.buffers):
            if b is not None and saved is not None and saved is not b:
                b.copy_(saved)
        for m, mode in zip(self.model.modules(), self.modes):
            m.training = mode
        if self.optimizer is not None:
            params = _opt_params(self.optimizer)
            refs = self.opt_param_refs
            # each parameter's state tensors as they are now: the saved values go back into them (same objects)
            live = {id(p): s for p, s in self.optimizer.state.items() if isinstance(p, torch.Tensor)}
            used: set[int] = set()  # each live tensor takes one saved value (two entries sharing one get copies)
            self.optimizer.state.clear()
            if refs and (len(refs) != len(params) or any(p is not q for p, q in zip(params, refs))):
                # the groups changed since the capture: each state back to its own parameter, by identity
                current = {id(p) for p in params}
                for i, s in self.opt_state.items():
                    if id(refs[i]) in current:
                        self.optimizer.state[refs[i]] = _state_into(live.get(id(refs[i])), s, back, homes, used)
            else:
                for i, s in self.opt_state.items():
                    self.optimizer.state[params[i]] = _state_into(live.get(id(params[i])), s, back, homes, used)
            for k, s in self.opt_other_state.items():
                self.optimizer.state[k] = back(s)
            for i, (group, saved) in enumerate(zip(self.optimizer.param_groups, self.opt_groups)):
                refs = self.group_tensor_refs[i] if i < len(self.group_tensor_refs) else {}
                for k in [k for k in group if k != "params" and k not in saved]:
                    del group[k]
                for k, v in saved.items():
                    now = refs.get(k, group.get(k))
                    # in place: a tensor lr (or betas) the user or a compiled step holds stays the one used
                    if _copy_into(now, v, captured=k in refs):
                        group[k] = now
                    else:
                        group[k] = back(v)
            extra_live = self.extra_grad_tensors or [None] * len(self.extra_params)
            for (p, value, grad), obj in zip(self.extra_params, extra_live):
                p.copy_(value)
                _restore_grad(p, grad, obj, homes)
            if self.opt_attrs is not None:
                attrs = vars(self.optimizer)
                for k in [k for k, v in attrs.items() if isinstance(v, _ATTR_TYPES) and k not in self.opt_attrs]:
                    del attrs[k]
                for k, v in self.opt_attrs.items():
                    now = attrs.get(k)
                    if isinstance(v, torch.Tensor) and isinstance(now, torch.Tensor) and now.shape == v.shape:
                        now.copy_(v)
                    else:
                        attrs[k] = back(v)
            for inner in self.inner:
                inner.restore()
        if self.scheduler is not None and self.sched_state is not None:
            self.scheduler.load_state_dict(back(self.sched_state))
        if self.rng is not None:
            self.rng.restore()


def _slots(model: torch.nn.Module, params: list[torch.Tensor], buffers: list[torch.Tensor]) -> _Slots:
    """Each of ``model``'s modules with copies of its ``_parameters``, ``_buffers`` and ``_modules`` dicts
    (``Snapshot.slots``), or ``[]`` when walking them does not give ``params`` and ``buffers`` (``model.parameters()``,
    ``model.buffers()``) in their order: a class that overrides the traversal keeps the restore by position only."""
    slots = [(m, dict(m._parameters), dict(m._buffers), dict(m._modules)) for m in model.modules()]
    for i, tensors in ((1, params), (2, buffers)):
        walked = list({id(t): t for slot in slots for t in slot[i].values() if t is not None}.values())
        if len(walked) != len(tensors) or any(a is not b for a, b in zip(walked, tensors)):
            return []
    return slots


def _put_back(slots: _Slots) -> None:
    """Each module's parameter, buffer and submodule entries as they were at capture (:func:`_slots`): the same
    objects (or ``None``) under the same names, and any registered since removed."""
    for m, params, buffers, modules in slots:
        for now, then in ((m._parameters, params), (m._buffers, buffers), (m._modules, modules)):
            if list(now) == list(then) and all(now[k] is t for k, t in then.items()):
                continue  # (the usual case: nothing changed)
            if now is m._buffers:
                m._non_persistent_buffers_set.difference_update([n for n in now if n not in then])
            now.clear()  # (then refilled in the capture's order, which the traversals follow)
            now.update(then)


def _state_into(live: Any, saved: Any, back: Callable[[Any], Any], homes: dict[int, torch.device],
                used: set[int]) -> Any:
    """A parameter's optimizer state to put back: ``saved`` (the snapshot's copy) written *into* the tensors the
    state holds now (``live``; the test's steps update Adam's in place, so they are the ones at capture) wherever one
    of the same key, type, shape, dtype and device is there and no other entry took it (``used``, the ids written so
    far), else a fresh copy (``back``). A ``torch.compile``d ``optimizer.step`` guards on them by identity (Adam's
    ``step``): new tensors would recompile it after a range test or a trial, and a user or hook holding one keeps the
    live one."""
    if type(live) is not dict or type(saved) is not dict:
        return back(saved)
    out = {}
    for k, v in saved.items():
        old = live.get(k)
        if (isinstance(v, torch.Tensor) and type(old) is type(v) and old.layout == torch.strided
                and v.layout == torch.strided and old.shape == v.shape and old.dtype == v.dtype
                and old.device == homes.get(id(v), v.device) and not old.requires_grad and id(old) not in used):
            used.add(id(old))
            old.copy_(v)
            out[k] = old
        else:
            out[k] = back(v)
    return out


def _holds_tensors(value: Any) -> bool:
    """Whether a param-group value is a tensor or a tuple holding one (``betas=(torch.tensor(0.9), ...)``): kept by
    reference in ``Snapshot.group_tensor_refs``."""
    return isinstance(value, torch.Tensor) or (
        type(value) is tuple and any(isinstance(v, torch.Tensor) for v in value))


def _copy_into(now: Any, saved: Any, *, captured: bool) -> bool:
    """Write ``saved`` (a snapshot's copy of a param-group value) into ``now`` in place, and say whether it could: a
    tensor of the same shape, or — ``captured``: ``now`` is the group's own tuple at capture, whose other entries are
    the capture's (a tuple is immutable) — a tuple of the same length whose tensors have the same shapes."""
    if isinstance(now, torch.Tensor):
        if not isinstance(saved, torch.Tensor) or now.shape != saved.shape:
            return False
        now.copy_(saved)
        return True
    if not captured or type(now) is not tuple or type(saved) is not tuple or len(now) != len(saved):
        return False
    pairs = [(a, b) for a, b in zip(now, saved) if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)]
    if not pairs or not all(isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                            for a, b in pairs):
        return False
    for a, b in pairs:
        a.copy_(b)
    return True


def _clone_one(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone()


def _restore_grad(p: torch.Tensor, saved: torch.Tensor | None, original: torch.Tensor | None,
                  homes: dict[int, torch.device] | None = None) -> None:
    """Give ``p`` back its gradient: ``None`` where it had none; else the saved values copied *into* the original
    ``.grad`` tensor (same object, same storage: a DDP bucket view stays a bucket view) when it still fits, or a
    fresh copy (no original kept, a sparse gradient, or one resized in between) on the device it was copied from
    (``homes``: a snapshot kept on another device)."""
    if saved is None:
        p.grad = None
        return
    home = homes.get(id(saved), saved.device) if homes else saved.device
    if (
        original is not None and original.layout == torch.strided and saved.layout == torch.strided
        and original.shape == saved.shape and original.dtype == saved.dtype and original.device == home
    ):
        original.copy_(saved)
        if p.grad is not original:
            p.grad = original
        return
    p.grad = saved.clone() if home == saved.device else saved.to(home, copy=True)


#: Optimizer attributes a snapshot restores: plain values and tensors (not methods, hooks or sub-objects).
_ATTR_TYPES = (bool, int, float, str, type(None), torch.Tensor)


def set_group_lrs(groups: list[dict[str, Any]], lrs: list[float]) -> None:
    """Set each param group's ``lr`` to its entry of ``lrs``; a tensor LR is filled in place (a compiled or fused step
    that holds it keeps the live one).

    An optimizer built with a tensor LR (``Adam(groups, lr=torch.tensor(1e-3))``) gives every group that takes the
    default the *same* tensor: filled group by group, every group would end at the last group's LR (a backbone at
    ``lr_scale=0.1`` trained at the head's). A group whose tensor an earlier group already set to another value gets
    its own copy; groups set to one value keep sharing it. A :class:`Snapshot` taken before puts the shared tensor back.

    >>> shared = torch.tensor(1.0)
    >>> groups = [{"lr": shared}, {"lr": shared}, {"lr": 0.5}]
    >>> set_group_lrs(groups, [0.1, 1.0, 0.2])
    >>> [float(g["lr"]) for g in groups], groups[0]["lr"] is shared, groups[1]["lr"] is shared
    ([0.10000000149011612, 1.0, 0.2], True, False)
    """
    filled: dict[int, float] = {}
    for group, value in zip(groups, lrs):
        lr = group.get("lr")
        if not isinstance(lr, torch.Tensor):
            group["lr"] = value
            continue
        if filled.setdefault(id(lr), value) != value:  # shared with a group set to another value: its own copy
            lr = group["lr"] = lr.detach().clone()
            filled[id(lr)] = value
        with torch.no_grad():
            lr.fill_(value)


def _opt_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in optimizer.param_groups for p in g["params"]]


def every_optimizer(optimizer: torch.optim.Optimizer) -> list[torch.optim.Optimizer]:
    """``optimizer`` and every optimizer it wraps (:func:`inner_optimizers` with ``own_state=False``): where a class
    decides how the LR is read (Rprop, ASGD behind SAM or accelerate's wrapper), whichever of them holds the state.

    >>> model = torch.nn.Linear(2, 1)
    >>> [type(o).__name__ for o in every_optimizer(torch.optim.SGD(model.parameters(), lr=0.1))]
    ['SGD']
    """
    return [optimizer, *inner_optimizers(optimizer, own_state=False)]


def inner_optimizers(optimizer: torch.optim.Optimizer, *, own_state: bool = True) -> list[torch.optim.Optimizer]:
    """The optimizers ``optimizer`` wraps that keep a ``state`` of their own: attributes that are themselves
    ``torch.optim.Optimizer`` objects with another ``state`` object, and theirs in turn — ``ZeroRedundancyOptimizer``'s
    ``optim`` (this rank's shard of the state; the wrapper's own ``state`` stays empty), SAM's and Lookahead's
    ``base_optimizer``. A wrapper that shares its base's ``state`` (accelerate's ``AcceleratedOptimizer``) has nothing
    more to capture; a reference back to the wrapper is not followed. ``own_state=False``: every optimizer it wraps,
    also one that shares a ``state`` (whose ``step()`` the loop may call instead of the wrapper's).

    >>> model = torch.nn.Linear(2, 1)
    >>> inner_optimizers(torch.optim.SGD(model.parameters(), lr=0.1))
    []
    """
    seen = [optimizer]
    found: list[torch.optim.Optimizer] = []
    todo = [optimizer]
    while todo:
        for value in vars(todo.pop()).values():
            if isinstance(value, torch.optim.Optimizer) and all(value is not o for o in seen):
                seen.append(value)
                todo.append(value)
                if not own_state or all(getattr(value, "state", None) is not getattr(o, "state", None)
                                        for o in (optimizer, *found)):
                    found.append(value)
    return found


def inner_snapshots(optimizer: torch.optim.Optimizer, device: torch.device | None = None) -> list[Snapshot]:
    """A :class:`Snapshot` of each of :func:`inner_optimizers` (its state, param groups and own attributes), without
    parameters: theirs are the outer optimizer's, captured with the model. ``device``: where the copies are kept
    (``None``: each on its own tensor's device)."""
    return [Snapshot.capture(_NO_MODEL, inner, as_inner=True, device=device) for inner in inner_optimizers(optimizer)]


#: The model of an inner optimizer's snapshot: nothing to capture or restore.
_NO_MODEL = torch.nn.Module()
