"""Hugging Face style batches, which go to the model whole: ``model(**batch).loss``.

A dict batch with ``labels`` and none of the input keys the default loss splits on (``input_ids``,
``attention_mask`` and ``labels``, say) is a Hugging Face batch (:func:`takes_whole_batch`): the model computes its
own loss from it (:func:`own_loss`), as Hugging Face's ``Trainer`` calls it. Keys the model's ``forward()`` has no
argument for are dropped with one warning, as the ``Trainer`` drops unused columns; the signature is read through the
wrappers a model may be run in (DDP, ``DataParallel``, ``torch.compile``, FSDP, a PEFT ``PeftModel``).

Used by :mod:`lrkit._step` (the finder's, the trainer's and ``lr0="auto"``'s step), which imports from here and
re-exports :func:`takes_whole_batch` and :func:`own_loss`; this module imports only :mod:`lrkit._utils` (which imports
nothing of lrkit's), so there is no import cycle. It also holds the batch-key vocabulary both modules use. Private
module.

>>> class LM(torch.nn.Module):
...     def forward(self, input_ids, labels=None):
...         return {"loss": (input_ids * labels).float().mean()}
>>> batch = {"input_ids": torch.ones(2), "labels": torch.ones(2)}
>>> takes_whole_batch(batch), own_loss(LM(), batch).item()
(True, 1.0)
"""

from __future__ import annotations

import inspect
import typing
import warnings
import weakref
from collections.abc import Mapping
from typing import Any

import torch

from lrkit._utils import _a, _keys, first_line, stacklevel_outside_lrkit

__all__ = ["own_loss", "takes_whole_batch"]

# ---- shared with lrkit._step, which imports them from here: the batch keys ----

#: The keys the default loss splits a dict batch on (``lrkit._step.split_batch``): a batch with ``labels`` and none
#: of the input keys goes to the model whole instead.
_INPUT_KEYS = ("x", "input", "inputs", "features", "image", "images")
_TARGET_KEYS = ("y", "target", "targets", "label", "labels")


# ---- Hugging Face batches ----


def takes_whole_batch(batch: Any) -> bool:
    """A Hugging Face style batch: a mapping with ``labels`` and none of the input keys the default loss splits on
    (``x``, ``input(s)``, ``features``, ``image(s)``) — ``input_ids``, ``attention_mask``, ``labels``, say. The model
    takes it whole, ``model(**batch)``, and returns its own loss (:func:`own_loss`), as Hugging Face's ``Trainer``
    calls it.

    >>> hf = {"input_ids": torch.zeros(2, 3), "labels": torch.zeros(2)}
    >>> takes_whole_batch(hf), takes_whole_batch({"x": 1, "labels": 2})
    (True, False)
    """
    return (isinstance(batch, Mapping) and "labels" in batch and len(batch) > 1
            and not any(k in batch for k in _INPUT_KEYS))


def own_loss(model: Any, batch: Mapping[str, Any]) -> torch.Tensor:
    """``model(**batch).loss``: the loss a Hugging Face model computes from a batch's ``labels``
    (:func:`takes_whole_batch`); a clear error when the model does not take the batch's keys or returns no loss. A
    model built with ``return_dict=False`` returns a tuple ``(loss, logits, ...)``: its first item, when that is a
    scalar, is the loss (as Hugging Face's ``Trainer`` reads ``outputs[0]``).

    Keys the model's ``forward()`` has no argument for (an ``idx``, a list of the raw texts) are left out, as Hugging
    Face's ``Trainer`` drops unused columns (``remove_unused_columns``), with one warning naming them, pointing at the
    caller's line (once per model, and again at each range test's first step); a ``forward(**kwargs)`` gets every
    key, and a ``**kwargs: Unpack[SomeTypedDict]`` the keys it declares and ``labels`` (never dropped: transformers'
    Qwen3.5 classifier takes them through such ``**kwargs``, and the ``Trainer`` keeps the label columns too). A
    model wrapped in ``DistributedDataParallel``/``DataParallel``/FSDP, compiled with ``torch.compile`` or wrapped by
    PEFT (``get_peft_model``: its ``forward(*args, **kwargs)`` hands the keys on to your model) is read through its
    wrapper. The signature is read once per class (:func:`_forward_keys`): a step costs two dict lookups and a
    subset check.
    The caller's batch is never changed.

    >>> class LM(torch.nn.Module):
    ...     def forward(self, input_ids, labels=None):
    ...         return {"loss": (input_ids * labels).float().mean()}
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     loss = own_loss(LM(), {"input_ids": torch.ones(2), "labels": torch.ones(2), "idx": torch.arange(2)})
    >>> loss.item(), "['idx']" in str(caught[0].message)
    (1.0, True)
    """
    accepted = _FORWARD_KEYS.get(type(model), _UNREAD)
    if accepted is _UNREAD or accepted is _PER_MODEL or "forward" in model.__dict__:
        accepted = _forward_keys(model)
    keys, dropped = batch.keys(), []
    if accepted is not None and not accepted.issuperset(batch):  # (a frozenset of the forward's keywords)
        batch, dropped = _unused_dropped(model, batch, accepted)
    try:
        out = model(**batch)
    except TypeError as e:  # a forward(x) model given keyword arguments it does not take
        not_str = [k for k in batch if not isinstance(k, str)]
        if not_str and "keywords must be strings" in str(e):  # a forward(**kwargs): no key left out for it
            raise ValueError(
                f"a dict batch with keys {_keys(keys)} ('labels' and no {'/'.join(_INPUT_KEYS)} key) goes to the "
                f"model whole, model(**batch), as a Hugging Face model takes it, but the keys {_keys(not_str)} are "
                "not strings, and keyword arguments must be; give the batch string keys, or pass "
                "step_fn=lambda model, batch: loss"
            ) from e
        if "argument" not in str(e):
            raise
        left_out = f" (without the keys {dropped}, which {_forward_text(model)} has no argument for)" \
            if dropped else ""
        raise ValueError(
            f"a dict batch with keys {_keys(keys)} ('labels' and no {'/'.join(_INPUT_KEYS)} key) goes to the model "
            f"whole, model(**batch){left_out}, as a Hugging Face model takes it, and that failed: "
            f"{first_line(e).rstrip('.')}. Name the input and target keys (one of {_INPUT_KEYS} and one of "
            f"{_TARGET_KEYS}) or pass step_fn=lambda model, batch: loss"
        ) from e
    loss = out.get("loss") if isinstance(out, Mapping) else getattr(out, "loss", None)
    if loss is None and type(out) in (tuple, list) and out and isinstance(out[0], torch.Tensor) \
            and out[0].numel() == 1 and out[0].is_floating_point():
        loss = out[0]  # return_dict=False (torchscript=True): (loss, logits, ...), read as HF's Trainer reads it
    if not isinstance(loss, torch.Tensor):
        raise ValueError(
            f"a dict batch with keys {_keys(keys)} ('labels' and no {'/'.join(_INPUT_KEYS)} key) goes to the model "
            f"whole, model(**batch), as a Hugging Face model takes it, but its output ({_a(type(out).__name__)}) has "
            f"no 'loss' tensor{_no_loss_found(out, loss)}; pass step_fn=lambda model, batch: loss"
        )
    return loss


def _no_loss_found(out: Any, loss: Any) -> str:
    """What a model's output held instead of a ``loss`` tensor, for :func:`own_loss`'s error: a ``loss`` that is no
    tensor (a float from ``.item()``), or a tuple's first item that is no scalar (``return_dict=False`` logits)."""
    if loss is not None:
        shown = repr(loss)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return (f" (its 'loss' is {_a(type(loss).__name__)} ({shown}), not a tensor: a loss turned into a number, "
                "with .item() or float(), has no gradient to train on)")
    if type(out) in (tuple, list) and out:
        first = out[0]
        what = f"a tensor of shape {tuple(first.shape)}" if isinstance(first, torch.Tensor) else \
            _a(type(first).__name__)
        return f" (its first item is {what}, not a scalar loss: were the labels given?)"
    return ""


def _own_loss_first(model: Any, batch: Mapping[str, Any]) -> torch.Tensor:
    """:func:`own_loss` at a range test's first step (:func:`first_batch_loss`): unused columns are named again, so
    that each ``find_lr`` run (and each ``lr0="auto"``, which starts with one) names them once."""
    try:
        _COLUMNS_NAMED.pop(model, None)
    except TypeError:  # a model that cannot be weakly referenced: see _unused_dropped
        _COLUMNS_NAMED_BY_TYPE.pop(type(model), None)
    return own_loss(model, batch)


#: The keyword names each model class's ``forward()`` takes (:func:`_forward_keys`): a frozenset, or ``None`` when it
#: takes any (``**kwargs``, or a signature that cannot be read); :data:`_PER_MODEL` for a class whose instances must
#: be read one by one (a wrapper, a forward set on the instance), kept in :data:`_MODEL_KEYS`.
_FORWARD_KEYS: dict[type, Any] = {}
_MODEL_KEYS: weakref.WeakKeyDictionary[Any, frozenset[str] | None] = weakref.WeakKeyDictionary()  # (or per forward)
_UNREAD, _PER_MODEL = object(), object()
#: The sets of unused columns already named, per model (or per class, for a model that cannot be weakly referenced).
_COLUMNS_NAMED: weakref.WeakKeyDictionary[Any, set[frozenset[Any]]] = weakref.WeakKeyDictionary()
_COLUMNS_NAMED_BY_TYPE: dict[type, set[frozenset[Any]]] = {}


def _wrapped_module(model: Any) -> Any:
    """The module a wrapper runs — ``DistributedDataParallel``/``DataParallel``'s ``.module``, ``torch.compile``'s
    ``_orig_mod``, FSDP's wrapped module — or ``None`` for a model that is no such wrapper (a PEFT model is read
    through by :func:`_peft_base`)."""
    if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
        return model.module
    if isinstance(model, torch.nn.Module):
        name = type(model).__name__
        if name == "OptimizedModule":
            return model._modules.get("_orig_mod")
        if name == "FullyShardedDataParallel":
            return model._modules.get("_fsdp_wrapped_module")
    return None


def _peft_base(model: Any) -> tuple[torch.nn.Module, frozenset[str]] | None:
    """``(the model a PEFT wrapper runs, the keys the wrapper takes itself)``, or ``None`` for a model that is no
    PEFT wrapper; duck-typed, peft is not imported.

    PEFT's ``PeftModel`` (``get_peft_model(model, config)``) and its task classes (``PeftModelForCausalLM``, ...) have
    a ``get_base_model()`` that returns the user's model, and a ``forward`` that takes ``**kwargs`` and hands them on
    to it; its tuners (``LoraModel``, any ``BaseTuner``: an ``inject_adapter`` method) hold the user's model as
    ``.model`` and forward ``(*args, **kwargs)`` to it. The wrapper itself takes its forward's named arguments
    (``PeftModelForCausalLM``'s ``task_ids``) and its ``special_peft_forward_args`` (``adapter_names``), which it
    removes before calling the model. A module of that shape whose forward names every key it takes (no
    ``**kwargs``, or a typed one) is read as it is."""
    if not isinstance(model, torch.nn.Module):
        return None
    cls = type(model)  # (looked up on the class: a PEFT wrapper forwards missing attributes to the model it wraps)
    if callable(getattr(cls, "get_base_model", None)):
        try:
            base = model.get_base_model()
        except Exception:  # a wrapper that cannot tell (no active adapter): read as it is, as before
            return None
    elif callable(getattr(cls, "inject_adapter", None)):
        base = model._modules.get("model")
    else:
        return None
    if not isinstance(base, torch.nn.Module) or base is model or _keyword_names(model.forward) is not None:
        return None
    params = inspect.signature(model.forward).parameters.values()  # (readable: _keyword_names read it)
    own = {p.name for p in params if p.kind is not p.VAR_POSITIONAL and p.kind is not p.VAR_KEYWORD}
    special = vars(model).get("special_peft_forward_args", ())
    if isinstance(special, (set, frozenset, list, tuple)):
        own.update(k for k in special if isinstance(k, str))
    return base, frozenset(own)


def _innermost(model: Any) -> tuple[Any, frozenset[str], bool]:
    """``(the module a batch's keys reach, the keys the wrappers on the way take themselves, whether any wrapper was
    read through)``: through DDP/``DataParallel``/``torch.compile``/FSDP (:func:`_wrapped_module`) and PEFT
    (:func:`_peft_base`), wrappers of wrappers too."""
    inner, unwrapped_any = model, False
    own: frozenset[str] = frozenset()
    for _ in range(8):  # (wrappers of wrappers: DDP over a compiled PEFT model)
        unwrapped = _wrapped_module(inner)
        if unwrapped is None:
            peft = _peft_base(inner)
            if peft is None:
                break
            unwrapped, takes = peft
            own |= takes
        inner, unwrapped_any = unwrapped, True
    return inner, own, unwrapped_any


def _forward_keys(model: Any) -> frozenset[str] | None:
    """The keyword names ``model``'s ``forward()`` takes (read through wrappers, :func:`_innermost`); ``None``
    when it takes any: a ``**kwargs`` (a ``**kwargs: Unpack[TypedDict]``, as Hugging Face's models declare theirs,
    takes the TypedDict's keys and ``labels``), or a signature that cannot be read. Read once per class and cached in
    :data:`_FORWARD_KEYS`; a wrapper or a callable that is no module is cached per object in :data:`_MODEL_KEYS`,
    and a model with a ``forward`` of its own (set on the instance) per that ``forward``, so that one set again is
    read again (weakly held: an entry leaves with its forward, never matched by a later object)."""
    cls = type(model)
    own = isinstance(model, torch.nn.Module) and "forward" in vars(model)
    per_model = _FORWARD_KEYS.get(cls) is _PER_MODEL
    key = vars(model)["forward"] if own and not per_model else model
    if own or per_model:
        try:
            return _MODEL_KEYS[key]
        except (KeyError, TypeError):  # not read yet, or not weakly referable (read each time: a rare callable)
            pass
    inner, own_keys, unwrapped = _innermost(model)
    wrapper = unwrapped or not isinstance(model, torch.nn.Module)
    accepted = _keyword_names(inner.forward if isinstance(inner, torch.nn.Module) else inner)
    if accepted is not None:
        accepted |= own_keys  # (a PEFT wrapper's task_ids, adapter_names: it takes them itself)
    if wrapper:
        _FORWARD_KEYS[cls] = _PER_MODEL
        key = model
    elif not own:
        _FORWARD_KEYS[cls] = accepted  # (a class is never _PER_MODEL unless it is a wrapper: nothing overwritten)
    if wrapper or own:
        try:
            _MODEL_KEYS[key] = accepted
        except TypeError:
            pass
    return accepted


def _keyword_names(fn: Any) -> frozenset[str] | None:
    """The names of ``fn``'s arguments, the keys a batch keeps; ``None`` for any (see :func:`_forward_keys`).

    A positional-only name is kept too: ``model(**batch)`` then fails with Python's own error naming it, rather than
    the key being left out as one the forward has no argument for. A typed ``**kwargs`` adds ``labels`` to the keys
    it declares: a TypedDict is a hint that transformers' models do not keep (``Qwen3_5ForSequenceClassification``
    hands ``labels`` on to its parent through it), and the loss needs them, as the ``Trainer`` always keeps them."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin or an extension type: every key goes to it, as before
        return None
    names = []
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            declared = _typed_kwargs(p.annotation, fn)
            if declared is None:
                return None
            names.extend([*declared, "labels"])
        elif p.kind is not p.VAR_POSITIONAL:
            names.append(p.name)
    return frozenset(names)


def _typed_kwargs(annotation: Any, fn: Any) -> list[str] | None:
    """The keys of ``**kwargs: Unpack[SomeTypedDict]`` (PEP 692) in ``fn``'s signature; ``None`` for any other
    ``**kwargs``, or one whose annotation (a string, under ``from __future__ import annotations``) cannot be read."""
    if isinstance(annotation, str):
        if "Unpack" not in annotation:
            return None
        try:
            resolved = inspect.signature(fn, eval_str=True).parameters.values()
        except Exception:  # a name the module does not define (a class local to a function): take any key
            return None
        annotation = next((p.annotation for p in resolved if p.kind is p.VAR_KEYWORD), None)
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if len(args) != 1 or getattr(origin, "_name", getattr(origin, "__name__", None)) != "Unpack":
        return None
    td = args[0]
    if not typing.is_typeddict(td):
        return None
    return [*getattr(td, "__required_keys__", ()), *getattr(td, "__optional_keys__", ())]


def _unused_dropped(model: Any, batch: Mapping[Any, Any],
                    accepted: frozenset[str]) -> tuple[dict[Any, Any], list[Any]]:
    """``batch`` without the keys ``forward()`` has no argument for (a new dict; the caller's is not changed) and
    those keys, named in a warning once per model (:func:`own_loss`); an error when ``labels`` is one of them."""
    dropped = [k for k in batch if k not in accepted]
    if "labels" in dropped:
        raise ValueError(
            f"a dict batch with keys {_keys(batch)} ('labels' and no {'/'.join(_INPUT_KEYS)} key) goes to the model "
            f"whole, model(**batch), as a Hugging Face model takes it, but {_forward_text(model)} has no 'labels' "
            "argument ('labels' would be an unexpected keyword argument), so the model cannot compute its loss from "
            f"them. Name the input and target keys (one of {_INPUT_KEYS} and one of {_TARGET_KEYS}) for the default "
            "loss, or pass step_fn=lambda model, batch: loss"
        )
    key = frozenset(dropped)
    try:
        named = _COLUMNS_NAMED.setdefault(model, set())
    except TypeError:
        named = _COLUMNS_NAMED_BY_TYPE.setdefault(type(model), set())
    if key not in named:
        named.add(key)
        shown = _keys(dict.fromkeys(dropped))
        warnings.warn(
            f"the batch keys {shown} have no corresponding argument in {_forward_text(model)} and have been "
            "ignored: each batch "
            "goes to the model whole, model(**batch), without them, as Hugging Face's Trainer drops the columns "
            "forward() does not take; to use them, pass step_fn=lambda model, batch: loss",
            UserWarning, stacklevel=stacklevel_outside_lrkit(),  # the user's find_lr/train/own_loss call
        )
    return {k: v for k, v in batch.items() if k in accepted}, _keys(dict.fromkeys(dropped))


def _forward_text(model: Any) -> str:
    """``HFLike.forward(input_ids, attention_mask, labels)``: the forward a whole batch goes to, for a message."""
    inner = _innermost(model)[0]
    fn = inner.forward if isinstance(inner, torch.nn.Module) else inner
    try:
        names = [("*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else "") + p.name
                 for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):
        names = ["..."]
    if isinstance(inner, torch.nn.Module):
        return f"{type(inner).__name__}.forward({', '.join(names)})"
    return f"{getattr(inner, '__name__', 'the model')}({', '.join(names)})"
