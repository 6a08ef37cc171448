"""One training step's plumbing, shared by the finder, the trainer and ``lr0="auto"``.

Splitting a batch into inputs and targets, moving it to a device, the default loss, computing a checked scalar loss
(and the checks of a loop's first step: a loss that only broadcasts, inputs or targets of another dtype), cycling a
loader, and the autocast context for ``amp=``. A Hugging Face batch, which goes to the model whole
(``model(**batch).loss``), is :mod:`lrkit._hf`'s: ``takes_whole_batch`` and ``own_loss`` are re-exported from there,
and the message helpers ``first_line`` and ``stacklevel_outside_lrkit`` from :mod:`lrkit._utils`, for the modules that
import them from here. Private module.

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> batch_loss(model, (torch.zeros(3, 2), torch.zeros(3, 1)), None, None).item() >= 0
True
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import math
import numbers
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import nullcontext
from typing import Any, TypeVar, cast

import torch
from torch.nn.utils.rnn import PackedSequence

from lrkit._hf import (
    _INPUT_KEYS,
    _TARGET_KEYS,
    _own_loss_first,
    own_loss,
    takes_whole_batch,
)
from lrkit._utils import BOOL_WORDS, _a, _keys, did_you_mean, first_line, stacklevel_outside_lrkit, unknown_name_error

__all__ = [
    "LossFn",
    "StepFn",
    "autocast_context",
    "batch_loss",
    "batch_size",
    "class_targets",
    "clip_grad_norm_",
    "cycle_batches",
    "default_loss",
    "described_as",
    "dtype_name",
    "first_batch_loss",
    "first_line",
    "long_targets",
    "model_outputs",
    "move_to",
    "not_a_tensor_error",
    "own_loss",
    "rebuild_like",
    "refuse_broadcast",
    "split_batch",
    "stacklevel_outside_lrkit",
    "takes_whole_batch",
    "target_dtype_error",
    "train_mode",
]

StepFn = Callable[[torch.nn.Module, Any], torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])



def move_to(obj: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to ``device``; other values pass through unchanged.

    A batch already on ``device`` is returned as it is (the same object, nothing rebuilt: this runs on every step).
    Lists, tuples, named tuples and mappings (an ``OrderedDict``, a ``defaultdict``, a dict subclass with attribute
    access) keep their type; a moved mapping is a copy, never the caller's batch changed in place. A
    ``PackedSequence`` moves with its own ``.to()``, which keeps ``batch_sizes`` on the CPU as torch requires; so does
    any other object with a ``.to(device)`` method (a PyTorch Geometric ``Batch``, a batch class of your own; one whose
    ``.to()`` moves it in place and returns ``None`` is the moved batch itself). Whether a ``.to`` takes a device is
    read from its signature (once per method): a ``.to()`` of another meaning (``def to(self)``) leaves the object as
    it is, and a ``TypeError`` raised inside a ``.to(device)`` propagates, with a note naming the batch class. A
    dataclass with no ``.to`` (a ``collate_fn``'s batch class) has its fields moved, in a shallow copy:

    >>> from collections import namedtuple
    >>> Batch = namedtuple("Batch", "x y")
    >>> b = Batch(torch.zeros(2), torch.ones(2))
    >>> move_to(b, torch.device("cpu")) is b, type(move_to(b, torch.device("meta"))).__name__
    (True, 'Batch')
    """
    cls = type(obj)
    if cls is torch.Tensor or isinstance(obj, torch.Tensor):
        # non_blocking only towards an accelerator: a non-blocking copy to the CPU may be read before it has landed
        return obj if obj.device == device else obj.to(device, non_blocking=device.type != "cpu")
    if cls is list or cls is tuple or (not isinstance(obj, Mapping) and isinstance(obj, (list, tuple))):
        if cls is not list and cls is not tuple and isinstance(obj, PackedSequence):  # a named tuple, but its
            # batch_sizes must stay on the CPU: rebuilt field by field, torch refuses it
            return obj if obj.data.device == device else obj.to(device, non_blocking=device.type != "cpu")
        for i, v in enumerate(obj):  # nothing allocated while every item stays as it is (the usual case)
            m = move_to(v, device)
            if m is not v:
                return rebuild_like(obj, [*obj[:i], m, *(move_to(w, device) for w in obj[i + 1:])])
        return obj
    if isinstance(obj, Mapping):
        moved_items = {k: move_to(v, device) for k, v in obj.items()}
        return obj if all(moved_items[k] is v for k, v in obj.items()) else rebuild_like(obj, moved_items)
    if cls in _PLAIN_VALUES:  # a dict batch's names, ids, flags: nothing to move, nothing to look up
        return obj
    to = getattr(obj, "to", None)
    if to is not None and callable(to) and not isinstance(obj, (type, torch.nn.Module)):
        # a batch class that moves itself: PyTorch Geometric's Data/Batch, a dataclass of your own with .to(device)
        takes = _to_takes_device(to, obj)
        if takes is False:  # a .to() of another meaning (it takes no device): left as it is
            return obj
        try:
            moved = to(device)
        except TypeError as e:
            if takes is None:  # a builtin .to() whose signature cannot be read: a TypeError says it takes no device
                return obj
            # raised inside a .to(device) that takes the device: the user's own error, never a batch left unmoved
            if hasattr(e, "add_note"):  # Python 3.11+
                e.add_note(f"(raised inside {cls.__module__}.{cls.__qualname__}.to({device!r}), which lrkit calls "
                           "to move a batch object to the model's device)")
            raise
        # a .to() that moves the object in place and returns nothing (``def to(self, device): self.x = ...``)
        return obj if moved is None else moved
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # a collate_fn's dataclass with no .to()
        return _move_dataclass(obj, device)
    return obj


#: The types of a batch's plain values, which :func:`move_to` returns at once.
_PLAIN_VALUES = frozenset({str, int, float, bool, bytes, type(None)})


def _move_dataclass(obj: Any, device: torch.device) -> Any:
    """A dataclass instance with its fields moved by :func:`move_to`: ``obj`` itself when none moved, else a shallow
    copy with the moved fields set (also on a frozen dataclass; ``__init__`` and ``__post_init__`` are not run
    again). ``obj`` itself is never changed."""
    moved = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name, None)
        m = move_to(v, device)
        if m is not v:
            moved[f.name] = m
    if not moved:
        return obj
    clone = copy.copy(obj)
    for name, value in moved.items():
        object.__setattr__(clone, name, value)  # (a frozen dataclass refuses setattr)
    return clone


#: Whether a batch's ``.to`` takes a device, per underlying function (or per type, for a ``.to`` that is not a Python
#: method): ``True``/``False`` from its signature, ``None`` when it cannot be read (a builtin).
_TO_TAKES_DEVICE: dict[Any, bool | None] = {}


def _to_takes_device(to: Callable[..., Any], obj: Any) -> bool | None:
    """Whether ``to`` (``obj``'s bound ``.to``) can be called as ``to(device)``, read from its signature once per
    method (the check on every step is a dict lookup): ``False`` for a ``.to()`` of another meaning (``def to(self)``,
    a keyword-only argument), ``None`` when the signature cannot be read (a builtin). A ``.to`` set on the instance
    itself (``batch.to = ...``) is read each time: another instance of the class may have another."""
    key: Any
    if "to" in getattr(obj, "__dict__", ()):
        key = None
    else:  # a Python method: its function, shared by every instance of the class; else the class's own .to
        key = getattr(to, "__func__", type(obj))
        try:
            return _TO_TAKES_DEVICE[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable key: read each time
            key = None
    takes: bool | None
    try:
        sig = inspect.signature(to)
    except (TypeError, ValueError):  # no signature to read (a builtin): called as it is
        takes = None
    else:
        try:
            sig.bind(torch.device("cpu"))
            takes = True
        except TypeError:
            takes = False
    if key is not None:
        _TO_TAKES_DEVICE[key] = takes
    return takes


def rebuild_like(obj: Any, new: list[Any] | dict[Any, Any]) -> Any:
    """``new`` (the items of the sequence or mapping ``obj``, changed) in ``obj``'s own container type.

    A list or tuple as such, a named tuple field by field, another sequence type from the list; a mapping as a copy
    of ``obj`` updated with ``new`` (an ``OrderedDict``, a ``defaultdict`` with its factory, an attribute dict: as
    torch's ``pin_memory`` does), or a plain dict when it cannot be rebuilt. ``obj`` itself is never changed.

    >>> from collections import OrderedDict, namedtuple
    >>> P = namedtuple("P", "x y")
    >>> rebuild_like(P(1, 2), [3, 4]), type(rebuild_like(OrderedDict(a=1), {"a": 2})).__name__
    (P(x=3, y=4), 'OrderedDict')
    """
    cls = type(obj)
    if isinstance(new, dict):
        if cls is dict:
            return new
        try:
            if isinstance(obj, MutableMapping):
                clone = copy.copy(obj)
                clone.update(new)
                return clone
            return cls(new)
        except (TypeError, AttributeError, ValueError):  # a mapping that cannot be rebuilt: its items as a dict
            return new
    if cls is list or cls is tuple:
        return cls(new)
    return cls(*new) if hasattr(obj, "_fields") else cls(new)  # a namedtuple takes its fields one by one


def _hf_label_key_error(batch: Mapping[str, Any]) -> str:
    """:func:`split_batch`'s error for a Hugging Face style batch whose target is under ``label`` (a ``datasets``
    column as it is) or ``label_ids``, with no input key: the model computes its loss from ``labels``."""
    key = "label" if "label" in batch else "label_ids"
    return (
        f"a dict batch with keys {_keys(batch)} holds its target under {key!r} and no input key "
        f"{'/'.join(_INPUT_KEYS)}: a Hugging Face model computes its loss from 'labels', so rename {key!r} to 'labels' "
        f"(dataset.rename_column({key!r}, 'labels'); transformers' data collators do it for the Trainer) and the batch "
        "goes to the model whole, model(**batch); or pass step_fn=lambda model, batch: loss"
    )


def named_fields(batch: Any) -> tuple[str, str] | None:
    """``(input field, target field)`` of a namedtuple with one field named as an input key and one as a target key
    (``Sample(label, image)``: ``("image", "label")``), which :func:`split_batch` reads by name; ``None`` for any other
    batch (split by position, as a tuple)."""
    fields = getattr(batch, "_fields", None)
    if not (isinstance(batch, tuple) and isinstance(fields, tuple)):
        return None
    xs = [f for f in _INPUT_KEYS if f in fields]
    ys = [f for f in _TARGET_KEYS if f in fields]
    return (xs[0], ys[0]) if len(xs) == 1 and len(ys) == 1 else None


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of an ``(x, y)`` pair or a dict with input/target keys; a clear error otherwise."""
    if (type(batch) is list or type(batch) is tuple) and len(batch) == 2:  # the common case, without ABC checks
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        xs = [k for k in _INPUT_KEYS if k in batch]
        ys = [k for k in _TARGET_KEYS if k in batch]
        for keys, what in ((xs, "input"), (ys, "target")):
            if len(keys) > 1:
                raise ValueError(
                    f"a dict batch with keys {_keys(batch)} has {len(keys)} {what} keys {keys}: lrkit cannot tell "
                    f"which is the {what} (of loss_fn(model(x), y) or the default loss); keep one of them, or pass "
                    "step_fn=lambda model, batch: loss"
                )
        x = batch[xs[0]] if xs else None
        y = batch[ys[0]] if ys else None
        if x is None or y is None:
            whole = takes_whole_batch(batch)
            if not xs and "labels" not in batch and ("label" in batch or "label_ids" in batch):
                raise ValueError(_hf_label_key_error(batch))
            raise ValueError(
                f"cannot split a dict batch with keys {_keys(batch)} into input and target: the model's input x is "
                f"read from one of the keys {_INPUT_KEYS} and the target y from one of {_TARGET_KEYS}, for "
                f"loss_fn(model(x), y) or the default loss.{'' if whole else _near_keys(batch, xs, ys)} Rename the "
                "keys, or pass step_fn=lambda model, batch: loss instead"
                + (" (with no loss_fn, a batch with 'labels' and no input key goes to the model whole, "
                   "model(**batch), and the loss it returns is used, as a Hugging Face model computes it)"
                   if whole else "")
            )
        return x, y
    named = named_fields(batch)
    if named is not None:  # Sample(label, image) is (image, label), not (label, image)
        return getattr(batch, named[0]), getattr(batch, named[1])
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    kind = type(batch).__name__
    if isinstance(batch, (list, tuple)):
        kind += f" of length {len(batch)}"
    rest = (" (for (inputs, targets, *rest) batches: step_fn=lambda model, batch: loss_fn(model(batch[0]), "
            "batch[1]))" if isinstance(batch, (list, tuple)) and len(batch) > 2 else "")
    if not isinstance(batch, (list, tuple)):  # a collate_fn's dataclass or batch class: the step_fn that reads it
        fields = vars(batch) if hasattr(batch, "__dict__") else {}
        xs = [k for k in _INPUT_KEYS if isinstance(fields.get(k), torch.Tensor)]
        ys = [k for k in _TARGET_KEYS if isinstance(fields.get(k), torch.Tensor)]
        if len(xs) == 1 and len(ys) == 1:
            rest = (f" (this one has tensors .{xs[0]} and .{ys[0]}: step_fn=lambda model, batch: "
                    f"loss_fn(model(batch.{xs[0]}), batch.{ys[0]}))")
    raise ValueError(
        f"a batch must be an (inputs, targets) pair or a dict, split into the model's input and the target of "
        f"loss_fn (or of the default loss), got a {kind}; pass step_fn=lambda model, batch: loss for other batch "
        f"layouts{rest}"
    )


def _near_keys(batch: Mapping[Any, Any], xs: list[str], ys: list[str]) -> str:
    """A did-you-mean for the keys of a dict batch closest to a missing input or target key (``'feats'``:
    ``'features'``; a key closest to a key the batch has, ``'images_'`` beside ``'images'``, gets none), for
    :func:`split_batch`'s error; ``""`` when no key is close."""
    missing = [*(() if xs else _INPUT_KEYS), *(() if ys else _TARGET_KEYS)]
    pairs = []
    for key in _keys(batch):
        if isinstance(key, str) and key not in xs and key not in ys:
            hint = did_you_mean(key, missing)
            if hint and hint == did_you_mean(key, (*_INPUT_KEYS, *_TARGET_KEYS)):
                pairs.append(f"{hint.removeprefix(' Did you mean ').removesuffix('?')} for {key!r}")
    return f" Did you mean {' and '.join(pairs)}?" if pairs else ""


def long_targets(target: torch.Tensor) -> torch.Tensor:
    """Integer or boolean class indices as ``int64``, the dtype ``F.cross_entropy`` takes (it refuses int32, int16
    and bool, which numpy arrays on Windows and ``torch.randint(..., dtype=torch.int32)`` produce)."""
    if target.is_floating_point() or target.is_complex() or target.dtype in (torch.int64, torch.uint8):
        return target
    return target.long()


def class_targets(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Integer class targets of shape ``(B, 1)`` (a column of labels) as ``(B,)``, to match logits ``(B, C)``; any
    integer or boolean dtype as ``int64`` (``F.cross_entropy`` refuses int32/int16/bool targets).

    >>> class_targets(torch.zeros(4, 3), torch.tensor([[0], [2], [1], [0]], dtype=torch.int32)).tolist()
    [0, 2, 1, 0]

    Class indices stored as floats (``y.float()``, a pandas column with a NaN once in it) — one whole number per
    sample, ``(B,)`` or a column ``(B, 1)`` against ``(B, C)`` scores — are read as ``int64`` too (``F.cross_entropy``
    refuses them: "expected target dtype to be Long"); float targets of the scores' shape (class probabilities) and
    any that are not whole numbers are left as they are.

    >>> class_targets(torch.zeros(3, 2), torch.tensor([1.0, 0.0, 1.0])).tolist()
    [1, 0, 1]
    """
    target = long_targets(target)
    if target.is_floating_point() and _float_class_indices(output, target):
        target = target.long()
    if (not target.is_floating_point() and target.ndim == output.ndim and target.ndim >= 2
            and target.shape[-1] == 1 and output.shape[-1] != 1):
        return target.squeeze(-1)
    return target


def _float_class_indices(output: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether floating ``target`` holds one whole-number class index per row of ``output``'s scores: ``(B,)`` (or a
    column ``(B, 1)``) against ``(B, C)``, ``(B, T)`` against ``(B, T, V)``, never the scores' own shape."""
    column = target.ndim == output.ndim >= 2 and target.shape[-1] == 1 and output.shape[-1] != 1
    if not (column or target.ndim == output.ndim - 1) or not target.numel():
        return False
    return bool(torch.isfinite(target).all()) and bool((target == target.round()).all())


def _token_logits(output: torch.Tensor, target: torch.Tensor, tokens: bool) -> bool:
    """Whether integer ``target`` ``(B, T, ...)`` holds one class per position of logits ``(B, T, ..., V)`` (an LM's
    next tokens, a tagger's labels), classes last: always when torch's own reading, classes in dim 1 (``(B, C, d1,
    ...)`` against ``(B, d1, ...)``), cannot fit the shapes; when both fit (``T == V``), only for ``tokens`` (the
    inputs are token ids of the target's shape, as ``lrkit.train`` infers an LM task)."""
    if output.ndim < 3 or output.ndim != target.ndim + 1 or output.shape[:-1] != target.shape:
        return False
    return tokens or output.shape[2:] != target.shape[1:]


def default_loss(output: torch.Tensor, target: torch.Tensor, *, tokens: bool = False) -> torch.Tensor:
    """Cross-entropy for integer (or boolean) class targets, mean squared error otherwise.

    Class targets may have any integer dtype and may be a column ``(N, 1)`` against logits ``(N, C)``
    (:func:`class_targets`); they are read as ``(N,)`` int64 indices. Token targets ``(B, T)`` against LM logits
    ``(B, T, V)`` are read per position, classes last, as ``lrkit.train``'s ``lm`` task does (``tokens=True``: the
    inputs were token ids of the target's shape, which settles ``T == V``); other shapes as ``F.cross_entropy``
    reads them (classes in dim 1: ``(B, C, H, W)`` against ``(B, H, W)``).

    A float target must have the output's shape (or its number of elements: ``(N, 1)`` against ``(N,)``); one that
    would only *broadcast* against it — class indices stored as floats, ``(N,)`` against logits ``(N, C)`` — is an
    error rather than a meaningless MSE.
    """
    if not target.is_floating_point():
        if not target.is_complex() and _token_logits(output, target, tokens):
            return torch.nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]),
                                                     long_targets(target).reshape(-1))
        return torch.nn.functional.cross_entropy(output, class_targets(output, target))
    if output.shape != target.shape:
        if output.numel() != target.numel():
            hint = (
                " Class indices stored as floats? Cast them with y.long() for cross-entropy."
                if _class_column_like(output, target) else ""
            )
            raise ValueError(
                f"the float target of shape {tuple(target.shape)} does not match the model's output of shape "
                f"{tuple(output.shape)}, and the default loss (mean squared error for float targets) would only "
                f"broadcast them.{hint}"
            )
        if _squeezed(output.shape) != _squeezed(target.shape):
            raise ValueError(_layout_mismatch(output, target))
        output = output.reshape(target.shape)
    return torch.nn.functional.mse_loss(output, target)


def _class_column_like(output: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether a float ``target`` has the shape of class indices for ``output``'s scores: ``(N,)`` against
    ``(N, C)``, or a column ``(N, 1)`` against ``(N, C)`` — for :func:`default_loss`'s hint to cast them."""
    if target.dim() == 0 or output.dim() < 2 or output.shape[0] != target.shape[0]:
        return False
    return output.dim() == target.dim() + 1 or (output.dim() == target.dim() and target.shape[-1] == 1)


def _squeezed(shape: torch.Size) -> tuple[int, ...]:
    """``shape`` without its dimensions of size 1: ``(N, 1)`` and ``(N,)`` are one layout, ``(8, 4)`` and ``(4, 8)``
    are not."""
    return tuple(d for d in shape if d != 1)


def _layout_mismatch(output: torch.Tensor, target: torch.Tensor) -> str:
    """:func:`default_loss`'s error for a float target with the output's number of elements in another layout
    (``(B, T)`` against ``(T, B)``, channels last against channels first): reshaped, each output would be compared
    with another sample's or position's target."""
    o, t = tuple(output.shape), tuple(target.shape)
    return (
        f"the float target of shape {t} holds as many values as the model's output of shape {o} but in another "
        f"layout, and the default loss (mean squared error for float targets) lines them up only where the shapes "
        f"differ by dimensions of size 1 ((N, 1) against (N,)): reshaped, each output would be compared with another "
        f"sample's target. Give the targets the output's shape {o} in the dataset (e.g. channels last (B, H, W, C) "
        "to channels first: y.permute(0, 3, 1, 2)), or pass a loss_fn that lines them up"
    )


def model_outputs(out: Any) -> Any:
    """The tensor of outputs the default losses and metrics read: ``out`` itself, or the ``logits`` tensor of a
    dict-like output (a Hugging Face ``ModelOutput``, which ``model(input_ids)`` returns); any other output as it is.

    >>> model_outputs({"logits": torch.zeros(2, 3), "hidden_states": None}).shape
    torch.Size([2, 3])
    """
    if type(out) is not torch.Tensor and isinstance(out, Mapping):  # (the usual tensor: no ABC check per step)
        logits = out.get("logits")
        if isinstance(logits, torch.Tensor):
            return logits
    return out


def batch_loss(model: torch.nn.Module, batch: Any, loss_fn: LossFn | None, step_fn: StepFn | None) -> torch.Tensor:
    """The loss of one batch: ``step_fn(model, batch)`` or ``loss_fn(model(x), y)``; checked to be a scalar. With
    neither, a Hugging Face batch (:func:`takes_whole_batch`) is ``model(**batch).loss`` (:func:`own_loss`).

    ``loss_fn`` gets the model's output as it is; the default loss (:func:`default_loss`) reads
    :func:`model_outputs` of it — a Hugging Face ``ModelOutput``'s (any mapping's) ``logits`` tensor, as
    ``lrkit.train``'s default losses do — and refuses any other output that is not a tensor, by name.
    """
    if step_fn is not None:
        loss = step_fn(model, batch)
    elif loss_fn is None and type(batch) is not tuple and type(batch) is not list and takes_whole_batch(batch):
        loss = own_loss(model, batch)
    else:
        x, y = split_batch(batch)
        raw = out = model(x)
        if loss_fn is None and type(out) is not torch.Tensor:  # the default loss reads a tensor's shape
            out = model_outputs(out)
            if not isinstance(out, torch.Tensor):
                raise not_a_tensor_error(out)
        try:
            if loss_fn is not None:
                loss = loss_fn(out, y)
            else:  # token ids in, one target per token: an LM's logits (B, T, V) even when T == V
                tokens = (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and not x.is_floating_point()
                          and x.shape == y.shape)
                loss = default_loss(out, y, tokens=tokens)
        except AttributeError as e:  # the default loss reads y's dtype: a target that is no tensor (a list, numpy)
            if loss_fn is None and not isinstance(y, torch.Tensor):
                raise ValueError(_target_not_a_tensor(y)) from e
            raise  # the user's own (a model's output read wrongly in loss_fn): as it was raised
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            if isinstance(e, (torch.OutOfMemoryError, OutputNotATensor)):
                raise
            name = getattr(loss_fn, "__name__", type(loss_fn).__name__) if loss_fn is not None else "the default loss"
            why = str(e).removesuffix(".")  # torch's own ends with '.' ("Target 2 is out of bounds."): no '..'
            what = _describe(out) + (f" (the 'logits' of a {type(raw).__name__})" if out is not raw else "")
            fix = (_cast_targets_fix(out, y, e, loss_fn) or _trailing_one_fix(out, y, loss_fn)
                   or (_one_class_fix(out, y) if loss_fn is None else None)
                   or "pass a loss_fn that fits them (cross_entropy takes class-index targets, mse_loss float targets "
                      "of the output's shape) or step_fn=lambda model, batch: loss")
            raise ValueError(
                f"{name}(model(x), y) failed: {why}. The model's output is {what} and the target "
                f"{_describe(y)}; {fix}"
            ) from e
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"the loss must be a scalar tensor, got {_bad_loss_hint(loss)}")
    return loss


def _target_not_a_tensor(y: Any) -> str:
    """:func:`batch_loss`'s error for a target the default loss cannot read: ``y`` is no tensor (a list of labels or
    of strings a ``collate_fn`` left as they were, a numpy array)."""
    kind = type(y).__name__
    if isinstance(y, (list, tuple)) and y:
        kind += f" of {len(y)} {type(y[0]).__name__} values"
    elif type(y).__module__ == "numpy":
        kind += f" of dtype {getattr(y, 'dtype', '?')}"
    return (
        f"the default loss needs the target y as a tensor (integer class indices for cross-entropy, floats of the "
        f"output's shape for the mean squared error), got {_a(kind)}: make it one in the dataset or collate_fn "
        "(torch.as_tensor(y); class names as strings mapped to indices 0..C-1 first), or pass "
        "loss_fn=lambda out, y: loss or step_fn=lambda model, batch: loss that reads it"
    )


def _one_class_fix(out: Any, y: Any) -> str | None:
    """The fix for class targets (integer or boolean) against a model with one output per sample — logits ``(N, 1)``,
    or ``(N,)`` of the targets' shape: cross-entropy over one class is 0 whatever the model outputs, and a target of
    1 is out of its bounds. ``None`` for any other pair."""
    if not (isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor)) or out.ndim == 0:
        return None
    if y.is_floating_point() or y.is_complex():
        return None
    if out.ndim == 1:
        if out.shape != y.shape:
            return None
    elif (out.shape[-1] if _token_logits(out, y, True) else out.shape[1]) != 1:
        return None
    return (
        f"the model returns one output per sample, shape {tuple(out.shape)}, and the default loss for integer or "
        "boolean targets is cross-entropy over the output's classes — over one class it is 0 whatever the model "
        "outputs. For two classes (0/1, False/True) pass loss_fn=lambda out, y: "
        "torch.nn.functional.binary_cross_entropy_with_logits(out, y.float().view_as(out)); for more, give the "
        "model one output per class"
    )


def all_ignored(y: Any) -> bool:
    """Whether ``y`` holds integer class targets that are all -100, cross-entropy's ignored index (a batch of padding
    only: its loss is NaN). A host sync: read on a first step or for a loss that is already NaN, never per step."""
    return (isinstance(y, torch.Tensor) and not y.is_floating_point() and not y.is_complex() and y.numel() > 0
            and bool((y == -100).all()))


def ignored_batch_error(y: torch.Tensor, batch: str, loss: str, more: str = "") -> ValueError:
    """The error for a ``batch`` (``"first batch"``) whose targets ``y`` are all -100 (:func:`all_ignored`) under
    ``loss``'s cross-entropy; ``more`` follows "its loss is NaN"."""
    return ValueError(
        f"every target of the {batch} (shape {tuple(y.shape)}) is -100, the ignore_index of {loss}, cross-entropy: "
        f"with no target left its loss is NaN{more}. Check the labels (padding only?) or the loader's order, or pass "
        "a loss_fn/step_fn that handles such batches"
    )


def _empty_batch_error(batch: Any) -> ValueError | None:
    """The error for a first batch with no samples — a leading size of 0 (:func:`_leading_size`: a filter that kept
    nothing, a sampler over an empty split): its loss is the mean over nothing, NaN. ``None`` for any other batch."""
    if _leading_size(batch) != 0:
        return None
    return ValueError(
        f"the first batch holds no samples ({_structure(batch)}): its loss would be the mean over nothing, NaN; "
        "check the dataset or the filter/sampler that feeds the loader, and give the loader batches of at least one "
        "sample"
    )


class OutputNotATensor(ValueError):
    """A default loss was given a model output it cannot read (see :func:`not_a_tensor_error`); raised as it is,
    not wrapped in :func:`batch_loss`'s "loss failed" message."""


def not_a_tensor_error(out: Any, *, training: bool = False) -> OutputNotATensor:
    """The error for a default loss given ``out`` (neither a tensor nor a mapping with a ``logits`` tensor);
    ``training``: met in a training step of a model whose eval-mode output was a tensor (auxiliary heads)."""
    message = _not_a_tensor_message(out, " while training" if training else "")
    if training:
        message += (
            "; a model with auxiliary heads (torchvision's Inception v3 and GoogLeNet: (logits, aux_logits)) "
            "returns them only while training: build it without them (aux_logits=False), or add the heads' losses "
            "in loss_fn"
        )
    return OutputNotATensor(message)


def _not_a_tensor_message(out: Any, when: str = "") -> str:
    """Why the default loss cannot read ``out`` (a model's output that is neither a tensor nor a mapping with a
    ``logits`` tensor), and the ``loss_fn``/``step_fn`` to pass instead; ``when`` follows "returned ..."."""
    kind, pick = type(out).__name__, "out"
    if isinstance(out, Mapping):
        keys = _keys(out)
        kind += f" with keys {keys} and no 'logits' tensor"
        pick = next((f"out[{k!r}]" for k in keys if isinstance(out[k], torch.Tensor)), pick)
    elif isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        pick = "out[0]"
    return (
        f"model(x) returned {_a(kind)}{when}, but the default loss needs a tensor of outputs (or a dict-like output "
        f"with a 'logits' tensor, as a Hugging Face ModelOutput has): return a tensor from forward(), or pass "
        f"loss_fn=lambda out, y: loss (e.g. torch.nn.functional.cross_entropy({pick}, y)) or "
        "step_fn=lambda model, batch: loss"
    )


def _bad_loss_hint(loss: Any) -> str:
    """What a loss that is not a one-element tensor is, and what to return instead."""
    if isinstance(loss, torch.Tensor):
        return f"{tuple(loss.shape)}; reduce it (e.g. loss.mean()) in loss_fn/step_fn"
    kind = type(loss).__name__
    if isinstance(loss, (int, float)) or type(loss).__module__ == "numpy":
        return (f"{kind} ({loss!r}); return the loss tensor itself from loss_fn/step_fn, not loss.item() or "
                "float(loss): training backpropagates through it")
    if isinstance(loss, (tuple, list, Mapping)):
        return (f"{kind}; return the loss tensor alone from loss_fn/step_fn (e.g. out[0] or out['loss']), not "
                "the loss with other outputs")
    return f"{kind}; return the loss as a one-element tensor from loss_fn/step_fn"


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {dtype_name(value.dtype)}"
    return f"a {type(value).__name__}"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


#: torch's warning when mse_loss / l1_loss / smooth_l1_loss / huber_loss get a target of another size than the output
_SIZE_WARNING = re.compile(r"target size \(torch\.Size\((\[[\d, ]*\])\)\) that is different to the input size "
                           r"\(torch\.Size\((\[[\d, ]*\])\)\)")


def refuse_broadcast(fn: Callable[[], T], loss_fn: Any, *, where: str = "") -> T:
    """``fn()`` (a call of a user's loss), refusing a loss that only *broadcasts* the output against the target.

    torch's ``mse_loss``, ``l1_loss``, ``smooth_l1_loss`` and ``huber_loss`` take outputs ``(N, 1)`` with targets
    ``(N,)`` by comparing every output with every target, ``(N, N)``, and only warn — the model then learns the
    targets' mean. ``fn``'s warnings are recorded: torch's size warning with a broadcast shape larger than both the
    output and the target is a ``ValueError`` naming the shapes, ``loss_fn`` (``None``: the loss of a ``step_fn``)
    and the fix, with ``where`` (e.g. ``" from model mlp on 'data'"``) after the shapes; a broadcast that keeps the
    larger shape (a ``(1, K)`` target row against ``(N, K)`` outputs) may be meant and is left to torch's warning.
    Every other warning is emitted again as it was, also when ``fn`` raises. Recording warnings costs a few
    microseconds: a loop runs this on its first step only.

    >>> loss = lambda: torch.nn.functional.mse_loss(torch.zeros(4, 1), torch.zeros(4))
    >>> refuse_broadcast(loss, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the loss step_fn computes gets outputs (4, 1) and targets (4,), which it would only broadcast into ...
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn()
    except BaseException:
        _emit(caught)
        raise
    for w in caught:
        _check_broadcast(w.message, loss_fn, where)
    _emit(caught)
    return result


def _emit(caught: list[warnings.WarningMessage]) -> None:
    """The recorded warnings, emitted again (the user's filters apply to them as they would have): each under the
    module that warned, found by its file, so that filters by module (``filterwarnings("ignore", module="lib")``,
    Python's ``default::DeprecationWarning:__main__``) match as they did; ``warn_explicit`` alone would name a
    module after the file's path."""
    if not caught:
        return
    files: dict[str, tuple[str, dict[str, Any]]] = {}
    for m in list(sys.modules.values()):  # (sys.modules may hold other objects than modules)
        f, name, g = getattr(m, "__file__", None), getattr(m, "__name__", None), getattr(m, "__dict__", None)
        if isinstance(f, str) and isinstance(name, str) and isinstance(g, dict):
            files.setdefault(f, (name, g))
    for w in caught:
        found = files.get(w.filename)
        if found is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            continue
        name, g = found
        try:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, module=name,
                                   registry=g.setdefault("__warningregistry__", {}), module_globals=g,
                                   source=w.source)
        except ImportError:  # code read from stdin or `python -c` (__main__'s loader has no source to give)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, module=name,
                                   registry=g.setdefault("__warningregistry__", {}), source=w.source)


def _check_broadcast(message: Warning | str, loss_fn: Any, where: str) -> None:
    """Raise :func:`refuse_broadcast`'s error when ``message`` is torch's size warning for a broadcast larger than
    both the output and the target."""
    found = _SIZE_WARNING.search(str(message))
    if found is None:
        return
    target, output = (tuple(int(d) for d in re.findall(r"\d+", found.group(i))) for i in (1, 2))
    try:
        shape = tuple(torch.broadcast_shapes(output, target))
    except RuntimeError:
        return
    if math.prod(shape) <= max(math.prod(output), math.prod(target)):
        return
    why = ("every output compared with every target, so the model would learn the targets' mean (torch only warns: "
           "'Using a target size ... different to the input size')")
    if loss_fn is None:
        raise ValueError(
            f"the loss step_fn computes gets outputs {output} and targets {target}{where}, which it would only "
            f"broadcast into {shape} — {why}; give them one shape in step_fn (e.g. y.view_as(out)), or return "
            "outputs of the targets' shape from forward()"
        )
    name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
    call = name if hasattr(loss_fn, "__name__") else f"{name}()"  # F.mse_loss, or nn.MSELoss()
    raise ValueError(
        f"loss_fn {name} gets outputs {output} and targets {target}{where}, which it would only broadcast into "
        f"{shape} — {why}; give them one shape: loss_fn=lambda out, y: {call}(out, y.view_as(out)), or return "
        "outputs of the targets' shape from forward()"
    )


#: The words of torch's errors about two dtypes that do not go together ("mat1 and mat2 must have the same dtype",
#: "Found dtype Float but expected Double", "expected scalar type Double but found Float", "Input type (double) and
#: bias type (float) should be the same"): a dtype mismatch is blamed only for an error that says so.
_DTYPE_ERROR = re.compile(r"dtype|scalar type|\btype \(")

#: How torch's errors spell the floating dtypes ("Float", "torch.FloatTensor", "float32", "Double", "Half", ...).
_DTYPE_WORDS = {
    torch.float32: re.compile(r"float32|\bfloat\b|\bfloattensor\b"),
    torch.float64: re.compile(r"float64|double"),
    torch.float16: re.compile(r"(?<!b)float16|half"),
    torch.bfloat16: re.compile(r"bfloat16"),
}


def _dtype_mismatch(error: BaseException, *dtypes: torch.dtype) -> bool:
    """Whether ``error`` is torch's complaint that ``dtypes`` do not go together: it speaks of dtypes and names each
    of them. An error about another type (class labels stored as floats: "expected target dtype to be Long or Byte,
    but got Double"; token ids: "'indices' to have one of the following scalar types: Long, Int") is not."""
    text = str(error)
    if not _DTYPE_ERROR.search(text):
        return False
    low = text.lower()
    return all(re.search(_DTYPE_WORDS.get(d) or re.escape(dtype_name(d)), low) for d in dtypes)


class _RecordedForward:
    """``model(x)``, keeping the output: the first step tells a forward pass that failed from a loss that did, and
    reads the output's dtype."""

    __slots__ = ("error", "model", "out", "ran")

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.out, self.ran = model, None, False
        self.error: BaseException | None = None  # what model(x) raised, if it did

    def __call__(self, x: Any) -> Any:
        try:
            self.out = self.model(x)
        except Exception as e:  # not a KeyboardInterrupt: first_batch_loss reads (and clears) only these
            self.error = e
            raise
        self.ran = True
        return self.out


def first_batch_loss(model: torch.nn.Module, batch: Any, loss_fn: LossFn | None, step_fn: StepFn | None, *,
                     loop: str = "lrkit.find_lr's range test") -> tuple[torch.Tensor, Any, str]:
    """:func:`batch_loss` with the checks a loop runs on its first step only (later steps run ``batch_loss`` bare).

    - a ``loss_fn`` or ``step_fn`` whose loss only broadcasts the output against the target: :func:`refuse_broadcast`
      (the default loss refuses a broadcast itself);
    - a forward pass that fails on a floating input of another dtype than the model's floating parameters (a
      ``model.double()`` fed float32 batches): a ``ValueError`` naming both dtypes and the fix, chained from torch's.
      The batches are not cast: a training loop on them fails the same way. Any other error raised by ``model(x)``
      passes through with its type, and on Python 3.11+ a note naming ``loop`` and the input it was given
      (``lrkit: raised by model(x) at the first step of lrkit.find_lr's range test, x of shape (32, 10) dtype
      float32``); a ``ValueError`` gets none (lrkit's own errors, a batch it cannot split or a loss that failed, and
      a model's own ``ValueError``, which passes through exactly as it was raised);
    - the default loss's MSE chosen for float targets that look like one-hot rows or class probabilities: a
      ``UserWarning`` (:func:`_warn_class_probabilities`); the loss is not changed.

    Returns the loss, the model's output (``None`` with a ``step_fn``, or under autocast, whose mixed dtypes are
    normal), which :func:`target_dtype_error` reads if the backward pass fails, and which loss it was, in words
    (:func:`_loss_text`: ``FinderResult.loss``; told here, once, so that no later step pays for it). Call it inside
    the loop's autocast region, as ``batch_loss``.
    """
    empty = _empty_batch_error(batch)
    if empty is not None:
        raise empty
    if step_fn is None and loss_fn is None and takes_whole_batch(batch):
        step_fn = _own_loss_first  # the model computes its loss from the labels: no output for the target-dtype check
    if step_fn is not None:
        loss = refuse_broadcast(lambda: batch_loss(model, batch, None, step_fn), None)
        return loss, None, _loss_text(batch, None, step_fn, None)
    forward = _RecordedForward(model)
    recorded = cast(torch.nn.Module, forward)  # batch_loss only calls it
    try:
        if loss_fn is None:  # the default loss refuses a float target that would only broadcast
            loss = batch_loss(recorded, batch, None, None)
        else:
            loss = refuse_broadcast(lambda: batch_loss(recorded, batch, loss_fn, None), loss_fn)
    except Exception as e:  # batch_loss wraps the loss's errors in a ValueError: only model(x)'s own are read here
        own = e is forward.error
        forward.error = None  # held, it would keep the failed forward's frames (and their tensors) alive in a cycle
        if own:
            if isinstance(e, RuntimeError) and not isinstance(e, torch.OutOfMemoryError):
                error = _input_dtype_error(model, split_batch(batch)[0], e)
                if error is not None:
                    raise error from e
            # Python 3.11+: the user's error, its type kept, with what it was given; a ValueError is left as it is
            # (lrkit's errors are ValueErrors, and a model's own is its message alone: BatchNorm's one-sample batch)
            if hasattr(e, "add_note") and not isinstance(e, ValueError):
                e.add_note(f"lrkit: raised by model(x) at the first step of {loop}, {_input_text(batch)}"
                           + (_unpack_hint(batch) if isinstance(e, TypeError) else ""))
        raise
    text = _loss_text(batch, loss_fn, None, forward.out)
    if isinstance(batch, Mapping):
        _warn_dropped_keys(batch)
    out = model_outputs(forward.out)
    if loss_fn is None and text.startswith("default: MSE"):
        _warn_class_probabilities(out, split_batch(batch)[1])
    elif loss_fn is None and text.startswith("default: cross-entropy"):  # over one class: 0, and no gradient
        y = split_batch(batch)[1]
        one_class = _one_class_fix(out, y)
        if one_class is not None:
            raise ValueError(f"the default loss, cross-entropy, cannot train this model on these targets: {one_class}")
        if all_ignored(y):  # a sync: the first step only
            raise ignored_batch_error(y, "first batch", "the default loss")
    return loss, out if isinstance(out, torch.Tensor) and not _autocast_on(out) else None, text


def _unpack_hint(batch: Any) -> str:
    """For a ``TypeError`` raised by ``model(x)`` whose ``x`` is a tuple, list or dict of several inputs (a
    ``forward(a, b)`` given them as one argument): the ``step_fn`` that unpacks them; ``""`` for any other input."""
    x = split_batch(batch)[0]
    if isinstance(x, Mapping) and x:
        star = "**"
    elif isinstance(x, (list, tuple)) and len(x) > 1 and not isinstance(x, PackedSequence):
        star = "*"
    else:
        return ""
    where, target = "batch[0]", "batch[1]"
    if isinstance(batch, Mapping):
        where = f"batch[{next(k for k in _INPUT_KEYS if k in batch)!r}]"
        target = f"batch[{next(k for k in _TARGET_KEYS if k in batch)!r}]"
    call = f"model({star}{where})"
    return (f"; lrkit calls model(x) with the input as one argument: for a forward() of several inputs, pass "
            f"step_fn=lambda model, batch: loss_fn({call}, {target})")


def _input_text(batch: Any) -> str:
    """What model(x) was given, for the note on an error it raised: ``x of shape (32, 10) dtype float32``; for a
    dict batch, the key it was read from and the batch's keys; a nested input item by item."""
    x = split_batch(batch)[0]
    text = f"x {_structure(x)}" if isinstance(x, torch.Tensor) else f"x: {_structure(x)}"
    if isinstance(batch, Mapping):
        key = next(k for k in _INPUT_KEYS if k in batch)
        text = f"x = batch[{key!r}] {_structure(x)}, from a dict batch with keys {_keys(batch)}"
    return text


def _structure(value: Any, depth: int = 0) -> str:
    """A (nested) input in words: ``of shape (32, 10) dtype float32``; ``a tuple of 2: shape (3, 2) dtype float32,
    shape (3,) dtype int64``; a dict's items by key (at most 6 items, two levels deep)."""
    if isinstance(value, torch.Tensor):
        return f"{'of ' if depth == 0 else ''}shape {tuple(value.shape)} dtype {dtype_name(value.dtype)}"
    if isinstance(value, PackedSequence):
        return f"a PackedSequence (data of shape {tuple(value.data.shape)} dtype {dtype_name(value.data.dtype)})"
    kind = _a(type(value).__name__)
    if depth >= 2 or not isinstance(value, (list, tuple, Mapping)):
        return kind
    if isinstance(value, Mapping):
        items = [f"{k!r}: {_structure(v, depth + 1)}" for k, v in list(value.items())[:6]]
        return f"{kind} {{{', '.join(items)}{', ...' if len(value) > 6 else ''}}}"
    items = [_structure(v, depth + 1) for v in value[:6]]
    return f"{kind} of {len(value)}: ({', '.join(items)}{', ...' if len(value) > 6 else ''})"


#: Keys of a dict batch that hold per-sample weights or a padding mask: the (x, y) split never reads them.
_WEIGHT_KEYS = ("weight", "weights", "sample_weight", "sample_weights", "mask", "masks", "attention_mask",
                "padding_mask", "loss_mask")


def _warn_dropped_keys(batch: Mapping[Any, Any]) -> None:
    """Warn (once, from the first step: :func:`first_batch_loss`) when a dict batch split into ``x`` and ``y`` also
    holds tensors of sample weights or a mask (:data:`_WEIGHT_KEYS`, in any case): ``model(x)`` and the loss of
    ``(output, y)`` never see them, so the loss is unweighted and unmasked. Other keys (ids, names) are not named."""
    dropped = [k for k, v in batch.items()
               if isinstance(k, str) and k.lower() in _WEIGHT_KEYS and isinstance(v, torch.Tensor)]
    if not dropped:
        return
    xk = next(k for k in _INPUT_KEYS if k in batch)
    yk = next(k for k in _TARGET_KEYS if k in batch)
    names = " and ".join(repr(k) for k in dropped)
    warnings.warn(
        f"the dict batch's {names} {'is' if len(dropped) == 1 else 'are'} never used: lrkit computes "
        f"loss_fn(model(batch[{xk!r}]), batch[{yk!r}]) (or the default loss of them), so the loss is neither weighted "
        f"nor masked; to use {'it' if len(dropped) == 1 else 'them'}, pass step_fn=lambda model, batch: loss, e.g. "
        f"(torch.nn.functional.cross_entropy(model(batch[{xk!r}]), batch[{yk!r}], reduction='none') * "
        f"batch[{dropped[0]!r}]).mean()",
        UserWarning, stacklevel=stacklevel_outside_lrkit(),
    )


def _warn_class_probabilities(out: Any, y: Any) -> None:
    """Warn (once, from the first step: :func:`first_batch_loss`) when the default loss chose the mean squared error
    for float targets that look like one-hot rows or class probabilities: the output's shape, at least 2 entries
    along dim 1 (the class dim, as ``F.cross_entropy`` reads it), all >= 0, each summing to 1. The loss is not
    changed: targets of that shape may be proportions to regress."""
    if not (isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor) and y.is_floating_point()
            and y.shape == out.shape and y.ndim >= 2 and y.shape[1] >= 2 and y.numel()):
        return
    with torch.no_grad():
        t = y.detach().float()
        tol = 1e-3 if y.dtype in (torch.float32, torch.float64) else 1e-2
        if not bool(((t >= 0).all() & ((t.sum(1) - 1).abs() <= tol).all()).item()):
            return
    onehot = "one-hot rows" if bool(((y == 0) | (y == 1)).all().item()) else "class probabilities"
    warnings.warn(
        f"the float targets y (shape {tuple(y.shape)}, {dtype_name(y.dtype)}) are >= 0 and sum to 1 along dim 1 — "
        f"{onehot}? — and the default loss for float targets is the mean squared error on the model's outputs (the "
        "logits): for classification pass loss_fn=torch.nn.functional.cross_entropy, which takes class probabilities "
        "as targets, or give integer class indices (y.argmax(1)) as targets; for targets meant to be regressed, pass "
        "loss_fn=torch.nn.functional.mse_loss to say so",
        UserWarning, stacklevel=stacklevel_outside_lrkit(),
    )


def _loss_text(batch: Any, loss_fn: LossFn | None, step_fn: StepFn | None, raw: Any) -> str:
    """Which loss :func:`first_batch_loss` computed on ``batch``, in words (``FinderResult.loss``), read the way
    :func:`batch_loss` and :func:`default_loss` chose it; ``raw`` is the model's output (as the model returned it),
    which the default loss read.

    - ``"step_fn (name)"`` / ``"loss_fn (name)"``: the caller's, by its ``__name__`` (a ``functools.partial``'s
      function's), or its class's name (an ``nn.MSELoss()``); a loss function marked by :func:`described_as` (the
      task losses of ``lrkit.train``: ``"cross-entropy (the classification task's loss)"``) by its words;
    - ``"the model's own loss, from model(**batch)"``: a Hugging Face batch (:func:`takes_whole_batch`, no
      ``loss_fn``) that went to the model whole (:func:`own_loss`, also when given as the ``step_fn``, as
      ``lrkit.train`` passes it);
    - ``"default: cross-entropy (integer targets)"`` (or ``boolean``), ``"default: cross-entropy per position
      (integer targets)"`` for one class per position of token logits ``(B, T, V)``, ``"default: MSE (float
      targets)"``; either default ``"... over the output's logits ..."`` when the model returned a dict-like output
      (a Hugging Face ``ModelOutput``) whose ``logits`` tensor it read.

    >>> _loss_text((torch.zeros(2, 3), torch.tensor([0, 2])), None, None, torch.zeros(2, 3))
    'default: cross-entropy (integer targets)'
    >>> _loss_text((torch.zeros(2, 1), torch.zeros(2, 1)), None, None, {"logits": torch.zeros(2, 1)})
    "default: MSE over the output's logits (float targets)"
    """
    if step_fn is _own_loss_first or step_fn is own_loss:  # (own_loss: lrkit.train's step_fn for such batches)
        return "the model's own loss, from model(**batch)"
    if step_fn is not None:
        return f"step_fn ({_callable_name(step_fn)})"
    if loss_fn is not None:
        return _described(loss_fn) or f"loss_fn ({_callable_name(loss_fn)})"
    x, y = split_batch(batch)
    out = raw if type(raw) is torch.Tensor else model_outputs(raw)  # as batch_loss reads it for the default loss
    over = " over the output's logits" if out is not raw else ""
    if not isinstance(y, torch.Tensor) or not isinstance(out, torch.Tensor):  # (a tensor-like the loss still took)
        return f"default loss{over}"
    if y.is_floating_point():
        return f"default: MSE{over} (float targets)"
    tokens = isinstance(x, torch.Tensor) and not x.is_floating_point() and x.shape == y.shape  # as batch_loss
    per = " per position" if not y.is_complex() and _token_logits(out, y, tokens) else ""
    kind = "boolean" if y.dtype == torch.bool else "integer"
    return f"default: cross-entropy{per}{over} ({kind} targets)"


#: The attribute :func:`described_as` sets on a loss function: the words ``FinderResult.loss`` gives for it.
_LOSS_TEXT_ATTR = "_lrkit_loss_text"


def described_as(text: str) -> Callable[[F], F]:
    """A decorator: ``FinderResult.loss`` (:func:`_loss_text`) names the loss function it marks with ``text``
    instead of ``"loss_fn (its_name)"``. ``lrkit.train``'s task losses carry theirs (``"cross-entropy (the
    classification task's loss)"``), which a ``functools.wraps`` wrapper keeps (it copies the function's
    ``__dict__``). The function itself is returned as it was: nothing it computes changes.

    >>> @described_as("mean absolute error")
    ... def mae(out, y):
    ...     return (out - y).abs().mean()
    >>> _loss_text((torch.zeros(2), torch.zeros(2)), mae, None, torch.zeros(2))
    'mean absolute error'
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"described_as(text={text!r}): the words for a loss are a non-empty string, e.g. "
                         "'cross-entropy (the classification task\'s loss)'")

    def mark(fn: F) -> F:
        setattr(fn, _LOSS_TEXT_ATTR, text)
        return fn

    return mark


def _described(fn: Any) -> str | None:
    """The words :func:`described_as` gave ``fn`` (or, through any ``functools.partial``, its function), if any."""
    while True:
        text = getattr(fn, "__dict__", {}).get(_LOSS_TEXT_ATTR)  # (its own: never a class's or a __getattr__'s)
        if isinstance(text, str):
            return text
        if not isinstance(fn, functools.partial):
            return None
        fn = fn.func


def _callable_name(fn: Any) -> str:
    """A loss or step function's name for :func:`_loss_text`: its ``__name__`` (through any ``functools.partial``),
    else its class's name (a loss module instance, ``nn.CrossEntropyLoss()``; an object with ``__call__``)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) and name else type(fn).__name__


def _floating_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """The floating-point tensors of a (nested) batch, depth first."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point():
            yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _floating_tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _floating_tensors(v)


def _autocast_on(t: torch.Tensor) -> bool:
    try:
        return torch.is_autocast_enabled(t.device.type)
    except (RuntimeError, ValueError):  # a device type autocast does not know
        return False


def _input_dtype_error(model: torch.nn.Module, x: Any, error: RuntimeError) -> ValueError | None:
    """The error for a forward pass that failed (``error``, which must speak of dtypes) on an input of another
    floating dtype than the model's floating parameters (all of one dtype); ``None`` when that is not the case."""
    if not _DTYPE_ERROR.search(str(error)):
        return None
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) != 1:
        return None
    (want,) = dtypes
    bad = next((t for t in _floating_tensors(x) if t.dtype != want), None)
    if bad is None or _autocast_on(bad) or not _dtype_mismatch(error, want, bad.dtype):
        return None
    m, d = dtype_name(want), dtype_name(bad.dtype)
    why = first_line(error).removesuffix(".")  # a sentence of ours follows
    return ValueError(
        f"the model's forward pass failed on the first batch: {why}. The model's floating parameters "
        f"are {m} but its input is {_describe(bad)}: the batches go to the model as they are, as in a training loop "
        f"of your own. Give them one dtype: model.to(torch.{d}), or cast the data, x.to(torch.{m}) "
        "(lrkit.train casts the data for you)"
    )


def target_dtype_error(out: Any, batch: Any, loss_fn: LossFn | None, error: RuntimeError) -> ValueError | None:
    """The error for a first backward pass that failed (``error``, which must speak of dtypes: HuberLoss's "Found
    dtype Float but expected Double") on a floating target of another dtype than the model's floating output ``out``
    (from :func:`first_batch_loss`; ``None``: nothing to check); ``None`` when that is not the case. The caller
    raises it chained from ``error``."""
    if not isinstance(out, torch.Tensor) or not _DTYPE_ERROR.search(str(error)):
        return None
    try:
        y = split_batch(batch)[1]
    except ValueError:
        return None
    fix = _cast_targets_fix(out, y, error, loss_fn)
    if fix is None:
        return None
    name = getattr(loss_fn, "__name__", type(loss_fn).__name__) if loss_fn is not None else "the default loss"
    why = first_line(error).removesuffix(".")  # a sentence of ours follows
    return ValueError(
        f"the first backward pass failed: {why}. The model's output is {dtype_name(out.dtype)} "
        f"(shape {tuple(out.shape)}) but the target y is {dtype_name(y.dtype)} (shape {tuple(y.shape)}), and "
        f"{name} cannot mix them; {fix}"
    )


def _loss_call(loss_fn: LossFn | None) -> str:
    """How a fix's example calls ``loss_fn``: ``F.huber_loss`` by its name, an ``nn.HuberLoss()`` module by its class
    with ``()``, the default loss as ``loss``."""
    if loss_fn is None:
        return "loss"
    return getattr(loss_fn, "__name__", None) or f"{type(loss_fn).__name__}()"


def _trailing_one_fix(out: Any, y: Any, loss_fn: LossFn | None) -> str | None:
    """How to line up a float output and target whose shapes differ only by a trailing 1 — ``(N, 1)`` against
    ``(N,)``, the usual binary-classification or regression slip: an elementwise loss either refuses it or (MSE)
    broadcasts it to ``(N, N)``. ``None`` for any other pair.

    >>> import torch
    >>> _trailing_one_fix(torch.zeros(4, 1), torch.zeros(4), None)[:59]
    'the shapes differ only by a trailing 1: view the target as '
    """
    if not (isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor) and out.is_floating_point()
            and y.is_floating_point()):
        return None
    o, t = tuple(out.shape), tuple(y.shape)
    if o == (*t, 1):
        change, fixed = "view the target as the output", "y.view_as(out)"
    elif t == (*o, 1):
        change, fixed = "squeeze the target's last dimension", "y.squeeze(-1)"
    else:
        return None
    return (f"the shapes differ only by a trailing 1: {change}, {fixed} (loss_fn=lambda out, y: "
            f"{_loss_call(loss_fn)}(out, {fixed})), or "
            "give the targets the output's shape in the dataset")


def _cast_targets_fix(out: Any, y: Any, error: BaseException, loss_fn: LossFn | None) -> str | None:
    """How to give a floating output and target one dtype, when ``error`` speaks of dtypes and theirs differ (not
    under autocast, whose mixed dtypes are normal); ``None`` otherwise."""
    if not (isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor) and out.is_floating_point()
            and y.is_floating_point() and out.dtype != y.dtype and _dtype_mismatch(error, out.dtype, y.dtype)
            and not _autocast_on(out)):
        return None
    o, t = dtype_name(out.dtype), dtype_name(y.dtype)
    return (f"give them one dtype: cast the targets, y.to(torch.{o}) (loss_fn=lambda out, y: "
            f"{_loss_call(loss_fn)}(out, y.to(out.dtype))), or train in {t}: model.to(torch.{t}) with {t} inputs "
            "(lrkit.train casts the targets for you)")


def cycle_batches(loader: Iterable[Any], name: str = "loader") -> Iterator[Any]:
    """Cycle through ``loader`` for as long as needed; an empty loader is an error naming ``name``.

    A one-shot iterator (a generator) that runs out is an error too, rather than a silently shorter run:

    >>> batches = cycle_batches(iter([1, 2]), "train_loader")
    >>> next(batches), next(batches)
    (1, 2)
    >>> next(batches)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: train_loader ran out after 2 batches and yields nothing when iterated again (a generator or ...
    """
    seen = 0
    it: Iterator[Any] | None = None
    try:
        while True:
            empty = True
            it = iter(loader)
            for batch in it:
                empty = False
                seen += 1
                yield batch
            if empty:
                break
            it = None
    finally:
        # Dropped here, by name: on CPython 3.12.3 (seen with torch 2.11) a generator closed while suspended in a
        # plain for loop kept that loop's iterator — and a DataLoader's worker processes — until the generator
        # object itself went, which an exception's traceback held on to (IPython keeps the last one).
        it = None
    if seen:
        raise ValueError(
            f"{name} ran out after {seen} batches and yields nothing when iterated again (a generator or an "
            "iterator?): pass a re-iterable loader (a DataLoader or a list of batches), or ask for fewer steps"
        )
    raise ValueError(f"{name} yielded no batches: at least one is needed")


def clip_grad_norm_(params: list[torch.Tensor], max_norm: float, *, model: torch.nn.Module | None = None) -> None:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm)``, also when some gradients are sparse (an
    ``nn.Embedding(sparse=True)``), which torch's cannot norm: the same rule, ``g <- g * min(1, max_norm /
    (||g||_2 + 1e-6))`` over the global L2 norm, with a sparse gradient's norm taken over its coalesced values.

    The norm is over every rank's part of a sharded model: DTensor gradients (FSDP2, tensor parallelism) are normed
    by torch as a whole; under FSDP1, whose gradients are plain tensors holding this rank's shard only, ``model``'s
    ``FullyShardedDataParallel`` root clips them with its own ``clip_grad_norm_`` (every rank must call this then).

    >>> emb = torch.nn.Embedding(4, 2, sparse=True)
    >>> emb(torch.tensor([1, 1, 2])).sum().backward()
    >>> clip_grad_norm_([emb.weight], 1.0); round(float(emb.weight.grad.to_dense().norm()), 4)
    1.0
    """
    if model is not None:
        from lrkit._dist import fsdp1_root

        root = fsdp1_root(model)
        if root is not None:
            own = {id(p) for p in root.parameters()}
            # the root's clip covers every gradient (whether a gradient is there may differ between ranks; which
            # parameters the optimizer holds does not: every rank takes the same branch into the collective)
            if all(id(p) in own for p in params):
                root.clip_grad_norm_(max_norm)
                return
    try:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    except (NotImplementedError, RuntimeError):  # raised while norming, before any gradient is changed
        grads = [p.grad for p in params if p.grad is not None]
        if not any(g.is_sparse for g in grads):
            raise
    with torch.no_grad():
        norms = [torch.linalg.vector_norm(g.coalesce().values() if g.is_sparse else g) for g in grads]
        total = torch.linalg.vector_norm(torch.stack(norms))
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.to(g.dtype))


def train_mode(model: torch.nn.Module) -> None:
    """Put ``model`` in train mode as a training loop would, keeping the modes the user set inside a model that is
    already training: a frozen BatchNorm or a pretrained backbone put in ``.eval()`` stays in eval mode (its running
    statistics do not move and its dropout stays off), as in the user's own loop. A model in eval mode as a whole
    (left so by a validation pass) is put in train mode throughout, as ``model.train()`` does.

    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    >>> _ = model[1].eval(); train_mode(model); model[1].training
    False
    >>> _ = model.eval(); train_mode(model); model[1].training
    True
    """
    if not model.training:
        model.train()


def optimizer_step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], *, closure: Callable[[], Any] | None,
                   scaler: Any, max_grad_norm: float | None, model: torch.nn.Module | None = None) -> None:
    """One optimizer step as the finder and ``lr0="auto"``'s trials take it: with ``closure`` for optimizers that need
    one (which clips inside it), else through ``scaler`` (unscaled before clipping) or plainly, clipping the gradients
    of ``params`` to ``max_grad_norm`` first when given (the norm over every rank's shard of ``model``, see
    :func:`clip_grad_norm_`)."""
    if closure is not None:
        optimizer.step(closure)
    elif scaler is not None:
        if max_grad_norm is not None:
            scaler.unscale_(optimizer)
            clip_grad_norm_(params, max_grad_norm, model=model)
        scaler.step(optimizer)
        scaler.update()
    else:
        if max_grad_norm is not None:
            clip_grad_norm_(params, max_grad_norm, model=model)
        optimizer.step()


class _FreshAutocast:
    """``torch.autocast(device_type, dtype)`` that drops autocast's weight cache when its region exits.

    torch drops the cache (the low-precision copy of each weight) only when the *outermost* autocast region exits, and
    a region that is disabled (``torch.autocast("cpu", enabled=False)``, which libraries use to keep a block in
    float32) or for another device still counts as one: inside it, a training loop's region would keep the first
    step's copies, and every later step would run on the starting weights. Reusable, like ``torch.autocast``.
    """

    def __init__(self, device_type: str, dtype: torch.dtype) -> None:
        self.dtype = dtype  # the low precision it runs in (FinderResult.setup's amp)
        self._ctx = torch.autocast(device_type=device_type, dtype=dtype)

    def __enter__(self) -> Any:
        return self._ctx.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._ctx.__exit__(*exc)
        finally:
            torch.clear_autocast_cache()  # the weights change before the next forward (~0.1 us when empty)


_AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def autocast_context(amp: bool | str | torch.dtype, device: torch.device) -> tuple[Any, bool]:
    """``(context, needs_grad_scaler)`` for ``amp`` (True/False/"bf16"/"fp16", any case, or ``torch.bfloat16`` /
    ``torch.float16``) on ``device``. The context drops autocast's weight cache when it exits, also inside an outer
    autocast region (see :class:`_FreshAutocast`).

    >>> ctx, scaler = autocast_context("BF16", torch.device("cpu")); scaler
    False
    """
    if isinstance(amp, torch.dtype):
        if amp not in (torch.bfloat16, torch.float16):
            raise ValueError(f"amp={amp} is not a mixed-precision dtype: use torch.bfloat16, torch.float16, "
                             "'bf16', 'fp16', True or False")
        chosen = amp
    elif isinstance(amp, str) and amp.strip().lower() in BOOL_WORDS:  # "off", "no", "true": as lrkit.train's amp=
        return autocast_context(BOOL_WORDS[amp.strip().lower()], device)
    elif not amp:
        return nullcontext(), False
    elif amp is True:
        chosen = torch.float16 if device.type == "cuda" else torch.bfloat16
    elif isinstance(amp, str) and amp.lower() in _AMP_DTYPES:
        chosen = _AMP_DTYPES[amp.lower()]
    else:
        raise unknown_name_error("amp setting", str(amp), ["True", "False", *_AMP_DTYPES])
    return _FreshAutocast(device.type, chosen), chosen == torch.float16 and device.type == "cuda"


def batch_size(batch: Any) -> int:
    """The number of samples in a batch: the leading dimension of its first tensor, depth first, passing over
    non-tensor values and 0-dim tensors (1 if it has none); for a ``PackedSequence``, its number of sequences (not
    the rows of its ``data``, one per time step); for an object with an integer ``num_graphs`` (a PyTorch Geometric
    ``Batch``, whose tensors hold the nodes and edges of all its graphs), that number. ``lrkit.train`` weights its
    epoch and validation means by it, as ``lr0="auto"`` its validation score.

    >>> batch_size((torch.zeros(5, 3), torch.zeros(5))), batch_size({"id": 7, "x": torch.zeros(2, 4)})
    (5, 2)
    >>> class Graphs:  # a stand-in for torch_geometric.data.Batch: 3 graphs of 40 nodes in all
    ...     x, num_graphs = torch.zeros(40, 8), 3
    >>> batch_size(Graphs())
    3
    """
    size = _leading_size(batch)
    return 1 if size is None else size


def _leading_size(batch: Any) -> int | None:
    """The leading dimension of the first tensor with one in a (nested) batch, depth first (a ``PackedSequence``:
    its number of sequences; an object with an integer ``num_graphs``: that); ``None`` if there is none (a dict's
    non-tensor values, such as ids or names, and 0-dim tensors are passed over)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.size(0)) if batch.dim() else None  # (size(0): a nested tensor has no .shape)
    if isinstance(batch, PackedSequence):  # batch_sizes[0]: the sequences alive at the first time step, i.e. all
        return int(batch.batch_sizes[0]) if len(batch.batch_sizes) else 0
    if isinstance(batch, Mapping):
        values: Iterable[Any] = batch.values()
    elif isinstance(batch, (list, tuple)):
        values = batch
    else:
        return _num_graphs(batch)
    for v in values:
        found = _leading_size(v)
        if found is not None:
            return found
    return None


def _num_graphs(batch: Any) -> int | None:
    """A graph batch's ``num_graphs`` (PyTorch Geometric's ``Batch``: its tensors' rows are nodes and edges, not
    samples) when it is a non-negative integer; ``None`` otherwise, and when reading it fails (PyG raises
    ``ValueError`` for a batch without its graph index)."""
    try:
        n = getattr(batch, "num_graphs", None)
    except Exception:  # a probe of an object not ours (a property that cannot answer): no size, as before
        return None
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        return None
    return int(n)
