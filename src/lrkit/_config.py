"""Validated settings: Python kwargs, CLI ``key=value`` tokens and YAML files all become one checked dataclass.

Every key of :func:`lrkit.train` lives in :class:`TrainConfig` with its default, its check and a one-line help.
Bad input fails up front with a ``ValueError`` that names the key, the bad value and what would be valid; an
unknown key names the closest valid one.

>>> cfg = TrainConfig.from_tokens(["data=digits", "epochs=20", "lr0=auto", "cos_lr=true"])
>>> (cfg.data, cfg.epochs, cfg.lr0, cfg.cos_lr)
('digits', 20, 'auto', True)
>>> TrainConfig.from_tokens(["lr_0=0.1"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown train key 'lr_0'. Did you mean 'lr0'? ...
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import numbers
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lrkit._utils import (
    BOOL_WORDS,
    as_scalar,
    canonical_name,
    describe_yaml_error,
    did_you_mean,
    optional_import,
    unknown_name_error,
    yaml_load,
)

__all__ = ["OPTIMIZERS", "TASKS", "TrainConfig", "class_spec", "parse_value"]

TASKS = ("classification", "regression", "lm")
# Ultralytics' optimizer names (plus "auto"); matched case-insensitively.
OPTIMIZERS = ("auto", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp", "Adamax")


_DETECTION = "a detection/augmentation setting; lrkit.train has no such key (augment in your Dataset)"
#: Ultralytics train keys that lrkit.train does not have, with what to do instead: an Ultralytics user's ``time=1``
#: is told so, rather than asked whether they meant 'optimizer'
ULTRALYTICS_ONLY: dict[str, str] = {
    "time": "lrkit.train has no time limit; set epochs= (the schedule is planned over it)",
    "save": "lrkit.train always saves last.pt (every epoch) and best.pt",
    "save_period": "lrkit.train saves last.pt after every epoch and best.pt at the best one",
    "deterministic": "lrkit.train seeds torch, numpy and python from seed= (runs repeat bit for bit on CPU)",
    "fraction": "train on a subset by passing it as data= (a smaller file or a torch Subset)",
    "pretrained": "pass your pretrained model as model= (an nn.Module, or a package.module:factory that loads it)",
    "dropout": "build dropout into the model",
    "label_smoothing": "pass loss_fn= (e.g. functools.partial(torch.nn.functional.cross_entropy, label_smoothing=0.1))",
    "half": "mixed precision is amp=true",
    "cache": "built-in and file data are held in memory; a torch Dataset you pass is read as it is",
    "profile": "lrkit.train has no profiler; results.csv records each epoch's time",
    "compile": "compile the model yourself (torch.compile) and pass it as model=",
    "single_cls": "set task= or relabel the data",
    "mode": "lrkit train is the train mode (lrkit find runs the LR range test); the model is model=",
    "split": "the validation split is val= (a fraction of the data) or the val: file of a data YAML",
    "save_json": "every run writes results.csv and events.json",
    "augment": "augment in your Dataset",
    "tracker": "lrkit.train has no tracking",
    "classes": "train on a subset of classes by passing it as data= (a filtered file or a torch Subset)",
    "optimize": "a YOLO export setting (a TorchScript export optimized for mobile); the optimizer is optimizer=",
    "save_dir": "the run folder is project/name (a new name2, name3, ... when it exists, unless exist_ok=true)",
    **{k: "a YOLO validation/prediction/export setting; lrkit.train validates every epoch with the task's loss and "
          "metric" for k in ("conf", "iou", "max_det", "nms", "agnostic_nms", "dnn", "source", "format", "show",
                             # the rest of an args.yaml's prediction and export keys (Ultralytics 8.x, and older ones)
                             "vid_stride", "stream_buffer", "visualize", "retina_masks", "embed", "save_frames",
                             "save_txt", "save_conf", "save_crop", "show_labels", "show_conf", "show_boxes",
                             "line_width", "keras", "int8", "dynamic", "simplify", "opset", "workspace",
                             "save_hybrid", "boxes", "line_thickness", "hide_labels", "hide_conf")},
    **{k: _DETECTION for k in ("imgsz", "rect", "close_mosaic", "mosaic", "mixup", "copy_paste", "hsv_h", "hsv_s",
                               "hsv_v", "degrees", "translate", "scale", "shear", "perspective", "flipud", "fliplr",
                               "box", "cls", "dfl", "pose", "kobj", "overlap_mask", "mask_ratio", "multi_scale",
                               "auto_augment", "erasing", "bgr", "cutmix", "copy_paste_mode", "crop_fraction")},
}


_PEAK = "lr0 is the peak learning rate (the schedule warms up to it and decays from it)"
_FINAL = "lrf is the final LR as a fraction of lr0: lrf = final_lr / lr0 (e.g. lr0=0.01 lrf=0.01 ends at 1e-4)"
_WARMUP = ("warmup_epochs is the warmup's length in (fractional) epochs: warmup_epochs = warmup steps / optimizer "
           "steps per epoch")
_AMP = "mixed precision is amp=true (or amp=bf16 / amp=fp16)"
_RUN_DIR = "the run folder is project/name (project=runs name=exp writes runs/exp)"
#: other libraries' names for a train key (PyTorch Lightning, Hugging Face's TrainingArguments, timm, Keras,
#: scikit-learn) -> (lrkit's key, what it means): ``lr=0.1`` is told it is ``lr0``, not asked whether it meant ``lrf``
#: (the closest spelling, and a silent different meaning)
SYNONYMS: dict[str, tuple[str, str]] = {
    **{k: ("lr0", _PEAK) for k in ("lr", "learning_rate", "max_lr", "peak_lr", "base_lr", "initial_lr", "init_lr")},
    **{k: ("lrf", _FINAL) for k in ("min_lr", "final_lr", "end_lr", "eta_min", "lr_min", "final_lr_fraction")},
    **{k: ("batch", "batch is the batch size") for k in ("batch_size", "bs", "per_device_train_batch_size",
                                                          "train_batch_size")},
    **{k: ("epochs", "epochs is the number of passes over the training data")
       for k in ("num_epochs", "n_epochs", "max_epochs", "num_train_epochs")},
    **{k: ("weight_decay", "weight_decay is the decoupled/L2 weight decay") for k in ("wd", "l2")},
    **{k: ("warmup_epochs", _WARMUP) for k in ("warmup", "warmup_steps", "warmup_iters")},
    "warmup_ratio": ("warmup_epochs", "warmup_epochs is the warmup's length in (fractional) epochs: warmup_ratio x "
                                      "epochs"),
    **{k: ("amp", _AMP) for k in ("fp16", "bf16", "mixed_precision", "precision", "use_amp")},
    **{k: ("patience", "patience is early stopping's number of epochs without a better validation metric")
       for k in ("early_stopping", "early_stopping_patience", "early_stop")},
    **{k: ("device", "device is cpu, cuda, cuda:N or mps (one device)") for k in ("gpu", "gpus", "accelerator",
                                                                                  "devices")},
    **{k: ("project", _RUN_DIR) for k in ("output_dir", "out_dir", "log_dir", "logdir", "outdir")},
    **{k: ("schedule", "schedule takes an lrkit schedule spec; lr0/lrf/cos_lr are the shorthand")
       for k in ("scheduler", "lr_scheduler", "lr_schedule", "sched")},
    **{k: ("workers", "workers is the DataLoader's worker processes") for k in ("num_workers", "dataloader_workers")},
    **{k: ("seed", "seed seeds torch, numpy, python and the train/val split") for k in ("random_seed",
                                                                                       "random_state")},
    **{k: ("val", "val is the fraction of data= held out for validation")
       for k in ("val_split", "validation_split", "val_size", "val_fraction", "test_size")},
}


def _ultralytics_only(key: str, valid: Iterable[str]) -> bool:
    """Whether ``key`` is an Ultralytics train key lrkit does not have (and not a valid key in another case)."""
    return key.lower() in ULTRALYTICS_ONLY and key.lower() not in {v.lower() for v in valid}


def _unknown_key_error(key: str, valid: Iterable[str], others: Iterable[str] = ()) -> ValueError:
    """``unknown_name_error`` for a train key, or, for an Ultralytics key lrkit does not have, what to do instead.

    ``others``: the rest of the keys given (an Ultralytics ``args.yaml`` as ``cfg=`` holds dozens): when ``key`` is
    Ultralytics-only, the other Ultralytics-only keys among them are named too, so they go in one edit.
    """
    valid = tuple(valid)
    if _ultralytics_only(key, valid):
        more = list(dict.fromkeys(k for k in others if k != key and _ultralytics_only(k, valid)))
        also = (f"; also Ultralytics-only here: {', '.join(more)} (remove {'them' if len(more) > 1 else 'it'} too)"
                if more else "")
        return ValueError(f"unknown train key {key!r}: Ultralytics' {key.lower()}= has no lrkit equivalent — "
                          f"{ULTRALYTICS_ONLY[key.lower()]}{also}. Valid: {', '.join(sorted(valid))}")
    same = SYNONYMS.get(key.lower())
    if same is not None and same[0] in valid:
        return ValueError(f"unknown train key {key!r}: lrkit calls it {same[0]}= — {same[1]}. Valid: "
                          f"{', '.join(sorted(valid))}")
    return unknown_name_error("train key", key, valid, ignore_case=True)


# ----------------------------------------------------------------------------------------------------------------
# typed parsing of CLI values
# ----------------------------------------------------------------------------------------------------------------
class _RepeatedKeyError(ValueError):
    """A YAML mapping in a value gives a key twice (``{a: 1, a: 2}``); ``problem`` says which key."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"{text!r}: {problem}")
        self.problem = problem


def parse_value(text: str) -> Any:
    """Parse one CLI value: ints, floats, bools, ``none``/``null``, YAML lists/dicts, else the string itself.

    A list/dict is read as a cfg file is (``lrkit._utils.yaml_load``): a key given twice inside it is a
    ``ValueError`` naming the key, never a silent "last one wins"; text that is not valid YAML stays a string.

    >>> [parse_value(s) for s in ["20", "1e-3", "true", "None", "auto", "[0, 1]"]]
    [20, 0.001, True, None, 'auto', [0, 1]]
    >>> [parse_value(s) for s in ['"mlp"', "'0.1'", "1_0"]]  # one pair of quotes comes off; 1_0 is no number
    ['mlp', 0.1, '1_0']
    >>> parse_value("{factor: 0.5, factor: 0.1}")
    Traceback (most recent call last):
    ...
    lrkit._config._RepeatedKeyError: '{factor: 0.5, factor: 0.1}': the key 'factor' is given twice; give it once
    """
    s = text.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":  # model="mlp" with the quotes kept by the shell: one pair off
        s = s[1:-1].strip()
    low = s.lower()
    if low in ("none", "null", "~", ""):
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    if "_" not in s:  # Python reads 1_0 as 10: a typo, not a number (it stays a string, and the key says what it takes)
        try:
            return int(s)
        except ValueError:
            pass
        try:
            return float(s)
        except ValueError:
            pass
    if s[:1] in "[{":
        yaml = optional_import("yaml", "cli")
        try:
            return yaml_load(s)  # as a cfg file is read: safe_load that refuses a key given twice
        except yaml.constructor.ConstructorError as e:
            problem = str(e.problem or "")
            if "given twice" in problem:  # '{a: 1, a: 2}' is a mistake, not the string '{a: 1, a: 2}'
                if "\n" not in s:  # one line: "(lines 1 and 1)" says nothing
                    problem = re.sub(r" \(lines \d+ and \d+\)", "", problem)
                raise _RepeatedKeyError(s, problem) from None
            return s
        except yaml.YAMLError:
            return s
    return s


class _Typed:
    """A number read from text the user wrote (a ``key=value`` token, a cfg file's scalar, a CLI option), which it
    prints as: a check's ``f"{key}={v!r} ..."`` then shows ``lr0=-1e-3`` (not ``-0.001``), ``epochs=1e400`` (not
    ``inf``), ``workers=-01`` as typed. Checks, and the CLI before it calls the library, return plain numbers: it
    never outlives them. Mixed in before ``int`` or ``float``."""

    typed: str

    def __new__(cls, value: Any, typed: str) -> Any:
        self = super().__new__(cls, value)  # type: ignore[call-arg]
        self.typed = typed
        return self

    def __getnewargs__(self) -> tuple[Any, str]:  # copy, deepcopy and pickle call __new__ with both
        return type(self).__mro__[2](self), self.typed  # the plain int or float

    def __repr__(self) -> str:
        return self.typed

    __str__ = __repr__


class TypedInt(_Typed, int):
    """An int that prints as the text it was read from (see :class:`_Typed`)."""


class TypedFloat(_Typed, float):
    """A float that prints as the text it was read from (see :class:`_Typed`)."""


def _as_typed(value: Any, text: str) -> Any:
    """``value`` (parsed from ``text``) as a number that prints as ``text`` (one pair of quotes off, as
    :func:`parse_value` reads it) when it is an int or float (not a bool); anything else as it is. One mechanism for
    every numeric key: the checks' messages print ``{v!r}``, and :meth:`TrainConfig.__post_init__` keeps plain
    numbers.

    >>> _as_typed(-0.001, " -1e-3"), _as_typed(True, "true"), _as_typed(-0.001, "-1e-3") == -0.001
    (-1e-3, True, True)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    shown = text.strip()
    if len(shown) >= 2 and shown[0] == shown[-1] and shown[0] in "'\"":  # the pair of quotes parse_value takes off
        shown = shown[1:-1].strip()
    return (TypedInt if isinstance(value, int) else TypedFloat)(value, shown)


def _plain_number(v: Any) -> Any:
    """A typed number as the plain int/float it is; anything else unchanged."""
    if isinstance(v, TypedInt):
        return int(v)
    if isinstance(v, TypedFloat):
        return float(v)
    return v


# ----------------------------------------------------------------------------------------------------------------
# checks: each takes (key, value) and returns the normalised value or raises ValueError naming both
# ----------------------------------------------------------------------------------------------------------------
Check = Callable[[str, Any], Any]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _to_float(key: str, v: Any) -> float:
    given = v = as_scalar(v)
    if isinstance(v, str):
        try:
            if "_" in v:  # Python reads 1_0 as 10: a typo, not a number
                raise ValueError
            v = float(v)
        except ValueError:
            raise ValueError(f"{key}={v!r} must be a number") from None
    if isinstance(v, int) and not isinstance(v, bool) and not -(2**1023) < v < 2**1023:  # float(10**400) overflows
        raise ValueError(f"{key}=<an integer of {int(math.log10(abs(v))) + 1} digits> must be a finite number: "
                         "it overflows a float")
    if not _is_number(v) or not math.isfinite(float(v)):
        raise ValueError(f"{key}={given!r} must be a finite number")  # as given: lr0='inf', lr0=1e400 (not inf)
    return float(v)


def _int(lo: int | None = None) -> Check:
    def check(key: str, v: Any) -> int:
        given = v = as_scalar(v)  # messages show the value as given (epochs=-1e1 typed, not the int -10 it is)
        if isinstance(v, str):
            try:
                if "_" in v:  # Python reads 1_0 as 10: a typo, not a number
                    raise ValueError
                v = int(v)
            except ValueError:
                raise ValueError(f"{key}={v!r} must be an integer") from None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"{key}={given!r} must be an integer")
        if lo is not None and v < lo:
            raise ValueError(f"{key}={given!r} must be an integer >= {lo}")
        return int(v)

    return check


def _seed(key: str, v: Any) -> int:
    """A seed in torch's range, ``[0, 2**64)``: a larger one passed the check and failed the first epoch with torch's
    bare ``Overflow when unpacking long long`` (``seed=1e30``)."""
    n = _int(0)(key, v)
    if n >= 2**64:
        raise ValueError(f"{key}={v!r} must be an integer in [0, 2**64) (torch's seed range)")
    return n


def _batch(key: str, v: Any) -> int:
    """A batch size >= 1; Ultralytics' AutoBatch values (``-1``, or a fraction of GPU memory such as ``0.7``) are
    named as such: lrkit takes a batch size."""
    x = as_scalar(v)
    try:
        auto = float(x) == -1 or 0 < float(x) < 1
    except (TypeError, ValueError, OverflowError):  # not a number, or an int too large for a float (10**400)
        auto = False
    if auto:
        raise ValueError(
            f"{key}={v!r} is Ultralytics' AutoBatch (a batch size picked from free GPU memory), which lrkit does not "
            f"do: pass a batch size, e.g. {key}=32 (the default) — and lr0=auto finds the LR for it"
        )
    n = _int(1)(key, v)
    if n > sys.maxsize:  # a DataLoader's batch_size is a C ssize_t: torch failed mid-build on islice()
        raise ValueError(f"{key}={v!r} is larger than a DataLoader can take (at most 2**63 - 1); a batch larger than "
                         f"the training split counts as the split's size, so {key}=<the number of training samples> "
                         "trains on the whole split per batch")
    return n


def _float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    def check(key: str, v: Any) -> float:
        x = _to_float(key, v)
        bad_lo = lo is not None and (x <= lo if lo_open else x < lo)
        bad_hi = hi is not None and (x >= hi if hi_open else x > hi)
        if bad_lo or bad_hi:
            raise ValueError(f"{key}={v!r} must be {_describe(lo, hi, lo_open, hi_open)}")
        return x

    return check


def _describe(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    return f"{'<' if hi_open else '<='} {hi:g}"


def _bool(key: str, v: Any) -> bool:
    v = as_scalar(v)
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    # on/off too: a cfg file's `cos_lr: on` is YAML 1.1's true, and amp=/monitor= take them (before session 36 the
    # token cos_lr=on was refused)
    if isinstance(v, str) and v.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[v.strip().lower()]
    raise ValueError(f"{key}={v!r} must be true or false")


def _amp(key: str, v: Any) -> bool | str:
    """``amp``: true/false or on/off (float16 + GradScaler on CUDA, bfloat16 elsewhere), or a precision named outright:
    ``"bf16"``/``"bfloat16"``/``torch.bfloat16`` -> ``"bf16"``, ``"fp16"``/``"float16"``/``torch.float16`` ->
    ``"fp16"`` (kept as a name, so args.yaml stays plain YAML)."""
    if v is torch.bfloat16 or v is torch.float16:
        return "bf16" if v is torch.bfloat16 else "fp16"
    if isinstance(v, str) and v.lower() in ("bf16", "bfloat16", "fp16", "float16"):
        return "bf16" if v.lower().startswith("bf") else "fp16"
    try:  # true/false in any spelling _bool reads: on/off, `lrkit find --amp on|off`'s words
        return _bool(key, v)
    except ValueError:
        raise ValueError(f"{key}={v!r:.60} must be true, false, bf16 or fp16 (true: float16 + GradScaler on CUDA, "
                         "bfloat16 elsewhere)") from None


def _val(key: str, v: Any) -> float:
    """``val``: the validation fraction. Ultralytics' ``val`` is a bool (validate during training or not): a bool here
    is named as that switch, not as "not a finite number"."""
    if isinstance(as_scalar(v), bool):
        raise ValueError(
            f"{key}={as_scalar(v)} is Ultralytics' validate-during-training switch; lrkit.train always validates, "
            f"and {key}= is the validation fraction when the data has no validation part: give a number in (0, 1), "
            f"e.g. {key}=0.2 (the default)"
        )
    return _float(0.0, 1.0, lo_open=True, hi_open=True)(key, v)


#: Ultralytics' YOLO tasks (``task=detect``): named as such rather than as an unknown name
_YOLO_TASKS = ("detect", "segment", "pose", "obb")


def _task(key: str, v: Any) -> str:
    """``task``: one of :data:`TASKS` (any case; a did-you-mean: ``classify`` -> ``classification``); a YOLO task
    (``detect``, ``segment``, ``pose``, ``obb``) is named as one."""
    if isinstance(v, str) and v.strip().lower() in _YOLO_TASKS:
        raise ValueError(f"{key}={v!r} is an Ultralytics YOLO task; lrkit.train trains classification, regression or "
                         f"lm (inferred from the data; set {key}= to override): {', '.join(TASKS)}")
    return _choice(TASKS)(key, v)


def _optional(check: Check) -> Check:
    def wrapped(key: str, v: Any) -> Any:
        return None if v is None else check(key, v)

    return wrapped


def _choice(choices: Iterable[str]) -> Check:
    choices = tuple(choices)

    def check(key: str, v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError(f"{key}={v!r:.80} must be a name, one of: {', '.join(choices)}")
        return canonical_name(key, v, choices)

    return check


def _auto_search(key: str, v: Any) -> str:
    """One of ``lrkit.train.auto.SEARCHES`` (any case): lr0='auto''s search."""
    from lrkit.train.auto import SEARCHES

    return _choice(SEARCHES)(key, v)


def _optimizer(key: str, v: Any) -> Any:
    """A registry name (any case; ``"auto"``), ``"package.module:ClassName"`` (imported when the run is built, as
    ``model="package.module:factory"`` is), or a ``torch.optim.Optimizer`` subclass. An optimizer *instance* is
    refused: it is bound to the parameters it was built on, and lrkit builds the optimizer over its own groups."""
    if isinstance(v, str):
        text = v.strip()
        if ":" in text:
            module, _, attr = text.rpartition(":")
            if not module.strip() or not attr.strip():
                raise ValueError(f"{key}={v!r}: write an optimizer class as 'package.module:ClassName', e.g. "
                                 "'torch.optim:Adagrad'")
            return text
        module, dot, attr = text.rpartition(".")
        if dot and module and attr[:1].isupper():  # torch.optim.Adagrad: the class path written with a dot
            raise ValueError(f"{key}={v!r}: write an optimizer class with a colon before the class name, "
                             f"'{module}:{attr}' (package.module:ClassName)")
        try:
            return canonical_name(key, text, OPTIMIZERS)
        except ValueError as e:
            raise ValueError(f"{e}, or an Optimizer class as 'package.module:ClassName' (e.g. torch.optim:Adagrad)") \
                from None
    import torch

    if isinstance(v, type):
        if issubclass(v, torch.optim.Optimizer):
            return v
        raise ValueError(f"{key}={v.__module__}.{v.__qualname__} is a class but not a torch.optim.Optimizer subclass; "
                         f"pass an Optimizer class (e.g. torch.optim.Adagrad) or a name: {', '.join(OPTIMIZERS)}")
    if isinstance(v, torch.optim.Optimizer):
        name = type(v).__name__
        raise ValueError(f"{key}= got a {name} instance, which is bound to the parameters it was built on; pass the "
                         f"class instead ({key}={name}, not {name}(...)): lrkit.train builds it over the model's "
                         "parameter groups with lr=lr0")
    raise ValueError(f"{key}={v!r:.80} must be an optimizer name ({', '.join(OPTIMIZERS)}), "
                     "'package.module:ClassName', or a torch.optim.Optimizer subclass")


def class_spec(cls: type) -> str:
    """``"module:QualName"`` for a class, the string ``optimizer=`` (and ``args.yaml``) takes back; a class that
    cannot be found again by that name (defined inside a function) is ``"<module:QualName>"``, a placeholder that a
    resume asks to be passed again.

    >>> import collections
    >>> class_spec(collections.OrderedDict)
    'collections:OrderedDict'
    """
    spec = f"{cls.__module__}:{cls.__qualname__}"
    obj: Any = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return spec if obj is cls else f"<{spec}>"


def _str(key: str, v: Any) -> str:
    if isinstance(v, (str, os.PathLike)):
        s = os.fspath(v)
        if s:
            return s
    raise ValueError(f"{key}={v!r} must be a non-empty string")


def _name_text(key: str, v: Any) -> str:
    """A folder name: a string, a path, or an int taken as its digits (``name=2024`` from Python names the run
    ``2024``, as it does on the command line and in a cfg file)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return _str(key, v)


def _folder(key: str, v: Any) -> str:
    """A non-empty path with ``~`` expanded: Python (and ``sh``) hand ``project="~/runs"`` over as written, and a
    folder literally named ``~`` in the working directory is no one's intent (``resume=True`` searched the home
    directory's ``~/runs`` while the runs went to ``./~/runs``)."""
    return os.path.expanduser(_name_text(key, v))


def _run_name(key: str, v: Any) -> str:
    """A run name: a folder under ``project`` (``exp``, ``sweep/lr3``); ``.`` and ``..`` would put the run in
    ``project`` itself or beside it (``name='.'`` made ``runs2`` next to ``runs``; ``name='..'`` made ``runs/..2``),
    and an absolute path anywhere at all (``project / '/abs'`` is ``/abs``)."""
    s = _name_text(key, v)
    path = Path(s)
    parts = path.parts
    if not parts or ".." in parts:
        raise ValueError(f"{key}={s!r} must name a folder inside project (e.g. name=exp or name=sweep/lr3), without "
                         "'.' or '..' parts")
    if path.anchor:  # project / "/abs/exp" is "/abs/exp": outside project, where resume=true never looks
        raise ValueError(f"{key}={s!r} is an absolute path, but a run name is a folder inside project: give "
                         f"project={str(path.parent)!r} name={path.name!r}")
    # a folder a shell user can type: no control character (a newline split `ls` over two lines), no part that is
    # only spaces or starts/ends with one (name=' ' made a folder that looks empty)
    if any(ord(c) < 32 or ord(c) == 127 for c in s):
        raise ValueError(f"{key}={s!r} holds a control character (a newline, a tab, ...): a run name is a folder "
                         "name, e.g. name=exp")
    if any(part != part.strip() for part in parts):
        fixed = "/".join(part.strip() for part in parts if part.strip())
        hint = f"name={fixed!r}" if fixed else "e.g. name=exp"
        raise ValueError(f"{key}={s!r} has a part that is blank or starts or ends with a space: give {hint}")
    return s


def _lr0(key: str, v: Any) -> float | str | None:
    if v is None:
        return None
    if isinstance(v, str) and v.strip().lower() == "auto":
        return "auto"
    try:
        return _float(0.0, lo_open=True)(key, v)
    except ValueError:
        raise ValueError(f"{key}={v!r} must be a number > 0 or 'auto'") from None


def _data(key: str, v: Any) -> Any:
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, str) and not v:
        raise ValueError(f"{key}='' must name a dataset, a file, or be a torch Dataset/DataLoader")
    # what YAML makes of an unquoted 2024, 0.5, yes or 2024-01-05: never a dataset, so say what is, here (the loader
    # would only say "data=int is not supported", without the value or the fix)
    kind = ("a boolean" if isinstance(v, bool) else "a number" if isinstance(v, numbers.Number)
            else "a date" if isinstance(v, datetime.date) else None)
    if kind is not None:
        from lrkit.train.data import BUILTIN_DATASETS

        text = str(v)
        raise ValueError(
            f"{key}={text} is {kind}, not a dataset: give a built-in name ({', '.join(BUILTIN_DATASETS)}) or a file "
            f"path (.csv, .npz, .txt, .yaml); in a YAML file, quote a file name that YAML reads as {kind} "
            f"({key}: '{text}')"
        )
    return v  # objects (Dataset, DataLoader, (train, val) pairs) are checked by lrkit.train.data


def _model(key: str, v: Any) -> Any:
    if isinstance(v, str) and (error := _model_file_error(key, v)) is not None:
        raise error
    if v is None or isinstance(v, str):
        return v or None
    try:
        import torch

        if isinstance(v, torch.nn.Module):
            return v
        name = getattr(v, "__name__", None)
        spec = f"'{getattr(v, '__module__', 'package.module')}:{name}'"
        if isinstance(v, type) and issubclass(v, torch.nn.Module):  # model=Net: the class, not a model
            raise ValueError(f"{key}={name} is an nn.Module class, not a model: pass an instance, {key}={name}(...), "
                             f"or the class by name, {key}={spec}, for lrkit to build it with the keywords it "
                             "takes (in_features, num_outputs, ...) sized from the data")
        if callable(v) and name is not None:  # model=make: a factory function object
            raise ValueError(f"{key}={name} is a function: call it, {key}={name}(...), or give it by name, "
                             f"{key}={spec}, for lrkit to call it with the keywords it takes (in_features, "
                             "num_outputs, ...) sized from the data")
    except ImportError:  # pragma: no cover
        pass
    raise ValueError(f"{key}={v!r} must be a built-in model name, 'package.module:factory', or a torch nn.Module")


#: file suffixes of weights / exported models (Ultralytics' ``model=yolov8n.pt``) and of model YAMLs (``yolo11n.yaml``)
_WEIGHTS_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".onnx", ".engine", ".torchscript", ".tflite")
_MODEL_YAML_SUFFIXES = (".yaml", ".yml")


def _model_file_error(key: str, v: str) -> ValueError | None:
    """The error for a weights file or a model YAML as ``model=`` (Ultralytics builds or loads a YOLO from one; lrkit
    builds a built-in or calls a factory), or ``None``. A ``package.module:factory`` spec (a name after its last
    ``:``) is never one; a Windows path (``C:\\runs\\best.pt``: a drive colon, a path after it) is checked as a file."""
    name = v.strip()
    attr = name.rpartition(":")[2].strip()
    # a spec's part after its last ':' is a (dotted) name; a Windows path's drive colon (C:\\runs\\best.pt) is no spec
    if ":" in name and attr and all(part.isidentifier() for part in attr.split(".")):
        return None
    low = name.lower()
    if low.endswith(".pt") and Path(name).expanduser().is_file():
        return None  # an lrkit run's checkpoint to fine-tune from (lrkit.train reads it; another .pt is told so there)
    if low.endswith(_WEIGHTS_SUFFIXES):
        missing = f"no file {name!r}: " if low.endswith(".pt") else ""
        return ValueError(
            f"{key}={v!r} is a weights file: {missing}lrkit.train fine-tunes from an lrkit run's checkpoint "
            "(model=runs/train/best.pt, or the run folder, model=runs/train), else builds its model from a built-in "
            "name (linear, mlp, cnn, charlm) or a factory; it loads no other weights file (Ultralytics' "
            "model=yolov8n.pt). To start from other weights, write a factory that builds the model and loads them "
            "(m = Net(...); m.load_state_dict(torch.load(path, weights_only=True)); return m) and pass "
            "model=file.py:make; to continue an lrkit run, pass resume=<run>/last.pt"
        )
    if low.endswith(_MODEL_YAML_SUFFIXES):
        return ValueError(
            f"{key}={v!r} is a model YAML: lrkit.train builds no network from a YAML file (Ultralytics' "
            "model=yolo11n.yaml); use a built-in name (linear, mlp, cnn, charlm), or write a factory that builds your "
            "model (def make(num_outputs): ...) and pass model=file.py:make (in Python: the nn.Module itself)"
        )
    return None


def _schedule(key: str, v: Any) -> Any:
    if v is None or isinstance(v, (str, Mapping)):
        return v if not isinstance(v, Mapping) else dict(v)
    if callable(v) or hasattr(v, "to_torch"):  # a Schedule object from lrkit.schedules
        return v
    raise ValueError(f"{key}={v!r} must be a schedule spec string, a dict, or an lrkit Schedule")


def _resume(key: str, v: Any) -> bool | str:
    """``True``/``False`` (any spelling a true/false key takes: ``resume=no``, ``resume=0``), or a checkpoint path.
    Before session 36 ``resume=no`` was the path ``no`` (``no checkpoint at no``) and ``resume=0`` was refused."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):  # resume=0 / resume: 1, as every true/false key reads it
        return bool(v)
    if isinstance(v, (str, os.PathLike)):
        s = os.fspath(v)
        low = s.strip().lower()
        if low in BOOL_WORDS:
            return BOOL_WORDS[low]
        return s
    raise ValueError(f"{key}={v!r} must be true/false or a path to a last.pt checkpoint or run directory")


def _head(key: str, v: Any) -> list[str] | None:
    """``head``: the name prefixes of the model's head for ``backbone_lr_scale`` (:func:`lrkit.param_groups`'
    ``head=``): one name, a comma-separated string (``"pre_classifier,classifier"``) or a list of names. Whether they
    exist is checked against the model when it is built."""
    if v is None:
        return None
    items = [p.strip().strip("'\"") for p in v.strip().strip("[]").split(",")] if isinstance(v, str) else v
    if not isinstance(items, (list, tuple)) or not items or any(not isinstance(p, str) or not p for p in items):
        raise ValueError(f"{key}={v!r:.60} must be the head's module name or a list of them, e.g. head=lm_head or "
                         "head=pre_classifier,classifier")
    return list(items)


def _freeze(key: str, v: Any) -> int | list[int | str] | None:
    """``N`` (the first N layers), or layer indices / parameter-name prefixes: a list, one name, or a
    comma-separated string (``"body"``, ``"body,head"``, ``"0,2"``). Whether the names exist is checked against the
    model when it is built (:func:`lrkit.freeze_layers` names the model's layers then)."""
    if v is None:
        return None
    v = as_scalar(v)  # np.int64(3), a 0-d tensor
    if not isinstance(v, (str, bytes, Mapping, list, tuple)) and hasattr(v, "__iter__"):
        # a numpy array, a set, dict.keys(), range(3), a generator: the entries, numpy ones as Python's own
        v = [as_scalar(item) for item in v]
    if isinstance(v, str):
        text = v.strip()
        bracketed = text.startswith("[") and text.endswith("]")
        if bracketed:  # a YAML-style list that reached us as a string
            text = text[1:-1]
        parts = [p.strip().strip("'\"") for p in text.split(",")]
        if not text or any(not p for p in parts):
            raise ValueError(f"{key}={v!r} must be a number of layers, a layer name/prefix, or a comma-separated list "
                             "of them (e.g. freeze=3, freeze=body, freeze=body,head)")
        if len(parts) == 1 and _is_int_text(parts[0]) and not bracketed:
            return _int(0)(key, int(parts[0]))  # freeze="3": the first 3 layers, as on the command line
        return [int(p) if _is_int_text(p) else p for p in parts]
    if isinstance(v, (list, tuple)):
        out: list[int | str] = []
        for item in v:
            if isinstance(item, bool) or not isinstance(item, (int, str)) or item == "":
                raise ValueError(f"{key}={v!r}: entry {item!r} must be a layer index or a parameter-name prefix")
            out.append(item)
        return out
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{key}={v!r} must be a number of layers, a layer name/prefix, or a list of layer "
                         "indices/name prefixes")
    return _int(0)(key, v)


def _is_int_text(s: str) -> bool:
    return s.lstrip("-").isdigit()


def _monitor(key: str, v: Any) -> bool | dict[str, Any]:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):  # as every true/false key reads it
        return bool(v)
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, str):
        # off/no switch the whole monitor off, as amp=off and the true/false keys' no do (before session 35 monitor=off
        # was on_divergence=off: a monitor left on with its divergence checks alone switched off)
        if v.strip().lower() in BOOL_WORDS:
            return BOOL_WORDS[v.strip().lower()]
        if v.lower() == "warn":  # warn-only: every check records and warns, nothing is changed
            return {"on_divergence": "warn", "on_explode": "warn", "on_too_low": "warn", "on_overfit": "warn"}
        # monitor=rollback | skip | stop: checked here, so a typo fails before the run starts (and logs), with a
        # did-you-mean (lazy import: the monitor package is not needed to parse a config)
        from lrkit.monitor.actions import resolve_action

        resolve_action(key, "divergence", v)
        return {"on_divergence": v}
    raise ValueError(f"{key}={v!r} must be true/false (on/off), an on_divergence action name, or a dict of Monitor "
                     "options")


def _device(key: str, v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        v = f"cuda:{int(v)}"
    import torch

    try:
        return str(torch.device(str(v)))
    except (RuntimeError, ValueError):
        raise ValueError(f"{key}={v!r} is not a torch device; use e.g. 'cpu', 'cuda', 'cuda:0' or 'mps'") from None


def _snapshot_device(key: str, v: Any) -> str | None:
    """``None``, or the name of a device this torch can keep a snapshot on (``"cpu"``; see
    ``lrkit._state.check_snapshot_device``, whose ValueError names the key, the value and what is valid)."""
    if v is None:
        return None
    from lrkit._state import check_snapshot_device

    return str(check_snapshot_device(v, key))


def _target(key: str, v: Any) -> str | int | list[str | int] | None:
    """``target=``: a column name or index, or a list of two or more (several regression targets, a CSV's columns);
    a list of one is that one column.

    >>> _target("target", ["y1"]), _target("target", ("y1", -1))
    ('y1', ['y1', -1])
    """
    if v is None or (isinstance(v, (str, int)) and not isinstance(v, bool)):
        return v
    if isinstance(v, (list, tuple)):
        if not v:
            raise ValueError(f"{key}={v!r} names no column; give a column name or index, or a list of two or more of "
                             "them for several regression targets")
        for c in v:
            if isinstance(c, bool) or not isinstance(c, (str, int)):
                raise ValueError(f"{key}={v!r}: {c!r} is not a column name or index; a list of target columns holds "
                                 "names or indexes")
        return v[0] if len(v) == 1 else list(v)
    raise ValueError(f"{key}={v!r} must be a column name or index, or a list of them (several regression targets)")


def _drop(key: str, v: Any) -> list[str] | None:
    """``drop=``: CSV columns to leave out, as a list of names or one comma-separated string (``id,name``)."""
    if v is None:
        return None
    items = v.split(",") if isinstance(v, str) else v
    if not isinstance(items, (list, tuple)) or not all(isinstance(c, str) for c in items):
        raise ValueError(f"{key}={v!r} must be column names: one name, a comma-separated list (drop=id,name) or a "
                         "list of names")
    names = [c.strip() for c in items]
    if not names or not all(names):
        raise ValueError(f"{key}={v!r} holds an empty column name; give the names of the columns to leave out")
    return list(dict.fromkeys(names))


def _meta(check: Check, help: str) -> dict[str, Any]:
    return {"check": check, "help": help}


@dataclass
class TrainConfig:
    """Every key of :func:`lrkit.train`, with Ultralytics' names and meanings where Ultralytics has the key.

    Build it with :meth:`from_kwargs`, :meth:`from_tokens` (CLI ``key=value``) or :meth:`from_yaml`; each
    validates every value. ``help(key)`` gives a key's one-line description.

    >>> TrainConfig.from_kwargs(data="iris", epochs=3, optimizer="sgd").optimizer
    'SGD'
    >>> TrainConfig.from_kwargs(data="iris", epochs=0)
    Traceback (most recent call last):
    ...
    ValueError: epochs=0 must be an integer >= 1
    """

    data: Any = field(
        default=None,
        metadata=_meta(_data, "dataset: built-in name, CSV/NPZ/text/YAML file, Dataset/DataLoader, (train, val) or "
                              "a mapping of splits"),
    )
    model: Any = field(
        default=None,
        metadata=_meta(_model, "model: linear | mlp | cnn | charlm | package.module:factory (Python: nn.Module)"),
    )
    task: str | None = field(
        default=None, metadata=_meta(_optional(_task), "classification | regression | lm (default: inferred)")
    )
    target: str | int | list[str | int] | None = field(
        default=None,
        metadata=_meta(_target, "target column of a CSV/NPZ file or data YAML (default: the last column); only there. "
                                "A list of CSV columns, target=[y1,y2]: several regression targets"),
    )
    drop: list[str] | None = field(
        default=None,
        metadata=_meta(_drop, "CSV columns that are not features (an ID, a free-text note), left out: drop=id or "
                              "drop=id,name; CSV/TSV files (also a data YAML's) only"),
    )
    epochs: int = field(default=10, metadata=_meta(_int(1), "number of epochs"))
    batch: int = field(default=32, metadata=_meta(_batch, "batch size"))
    lr0: float | str | None = field(
        default=None,
        metadata=_meta(_lr0, "initial (peak) LR, or 'auto'; default 0.01 for SGD/RMSProp, 0.001 for Adam-family, "
                            "an optimizer class's own default lr"),
    )
    lrf: float = field(default=0.01, metadata=_meta(_float(0.0, 1.0), "final LR as a fraction of lr0 (lr0 * lrf)"))
    optimizer: Any = field(
        default="auto",
        metadata=_meta(_optimizer, "auto | SGD | Adam | AdamW | NAdam | RAdam | RMSProp | Adamax | "
                                   "package.module:ClassName (Python: an Optimizer class)"),
    )
    momentum: float = field(default=0.937, metadata=_meta(_float(0.0, 1.0, hi_open=True), "SGD momentum / Adam beta1"))
    weight_decay: float = field(
        default=5e-4, metadata=_meta(_float(0.0), "weight decay (scaled by batch*accumulate/nbs)")
    )
    warmup_epochs: float = field(default=3.0, metadata=_meta(_float(0.0), "warmup length in (fractional) epochs"))
    warmup_momentum: float = field(
        default=0.8, metadata=_meta(_float(0.0, 1.0, hi_open=True), "momentum at the start of warmup")
    )
    warmup_bias_lr: float = field(default=0.1, metadata=_meta(_float(0.0), "bias-group LR at the start of warmup"))
    cos_lr: bool = field(default=False, metadata=_meta(_bool, "cosine instead of linear decay from lr0 to lr0*lrf"))
    schedule: Any = field(
        default=None, metadata=_meta(_schedule, "any lrkit.schedules spec; overrides lr0/lrf/cos_lr shape")
    )
    nbs: int = field(
        default=64, metadata=_meta(_int(1), "nominal batch size: gradients accumulate to ~nbs samples per step")
    )
    patience: int | None = field(
        default=50, metadata=_meta(_optional(_int(0)), "epochs without val-metric improvement before stopping (0 off)")
    )
    seed: int = field(default=0, metadata=_meta(_seed, "random seed (init, split, shuffling, dropout)"))
    project: str = field(default="runs", metadata=_meta(_folder, "parent folder of run directories"))
    name: str | None = field(
        default=None, metadata=_meta(_optional(_run_name), "run name (default: train, train2, ...)")
    )
    exist_ok: bool = field(
        default=False,
        metadata=_meta(_bool, "reuse project/name, not a new name (an earlier run there moves to previous-<time>/)"),
    )
    resume: bool | str = field(
        default=False,
        metadata=_meta(_resume, "true (newest last.pt anywhere under project) or a path to last.pt / a run directory"),
    )
    device: str | None = field(
        default=None, metadata=_meta(_device, "cpu | cuda | cuda:N | mps (default: cuda if available)")
    )
    amp: bool | str = field(
        default=False,
        metadata=_meta(_amp, "mixed precision: true (float16 + GradScaler on CUDA, bfloat16 on CPU), bf16, fp16"),
    )
    backbone_lr_scale: float | None = field(
        default=None, metadata=_meta(_optional(_float(0.0, lo_open=True)), "LR multiplier for all but the head")
    )
    layer_decay: float | None = field(
        default=None,
        metadata=_meta(
            _optional(_float(0.0, 1.0, lo_open=True)), "layer-wise LR decay (head 1, each layer down x decay)"
        ),
    )
    head: list[str] | None = field(
        default=None,
        metadata=_meta(_head, "the head's module names for backbone_lr_scale (default: lrkit.scaling.DEFAULT_HEAD)"),
    )
    freeze: Any = field(
        default=None,
        metadata=_meta(_freeze, "freeze the first N layers, or layers by name/index: body | body,head | [0, 1]"),
    )
    monitor: Any = field(
        default=True,
        metadata=_meta(_monitor, "training-health monitor: true/false, an action name, or Monitor options"),
    )
    snapshot_device: str | None = field(
        default=None,
        metadata=_meta(_snapshot_device, "where the monitor's and lr0=auto's in-memory snapshots live: cpu (host "
                                         "memory: no extra GPU memory) (default: on each tensor's own device)"),
    )
    val: float = field(
        default=0.2,
        metadata=_meta(_val, "validation fraction when data has no val"),
    )
    workers: int = field(default=0, metadata=_meta(_int(0), "DataLoader worker processes"))
    seq_len: int = field(default=64, metadata=_meta(_int(2), "context length for character-level LM data"))
    auto_budget: float = field(
        default=0.3, metadata=_meta(_float(0.0, 1.0, lo_open=True), "lr0='auto': extra compute budget (fraction)")
    )
    auto_search: str = field(
        default="guard",
        metadata=_meta(_auto_search, "lr0='auto': guard (range test + short trials within auto_budget) or prefix "
                                     "(opt-in: 5 trials of the run's first quarter, about 1.5 runs of extra compute)"),
    )
    plots: bool = field(default=True, metadata=_meta(_bool, "write results.png"))
    verbose: bool = field(default=True, metadata=_meta(_bool, "print what was chosen and why, and per-epoch lines"))

    # -------------------------------------------------------------------------------------------------- build
    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Every valid key, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{key: default}`` for every key."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def help(cls, key: str) -> str:
        """The one-line description of ``key``."""
        for f in dataclasses.fields(cls):
            if f.name == key:
                return str(f.metadata["help"])
        raise _unknown_key_error(key, cls.keys())

    @classmethod
    def check_keys(cls, keys: Iterable[str]) -> None:
        """Raise ``ValueError`` naming the first unknown key and the closest valid one."""
        valid = cls.keys()
        keys = list(keys)
        for k in keys:
            if k not in valid:
                raise _unknown_key_error(k, valid, keys)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> TrainConfig:
        """Validate Python keyword arguments; unknown keys raise with a did-you-mean."""
        cls.check_keys(kwargs)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """Load keys from a YAML mapping (``yaml.safe_load``); ``overrides`` win over the file."""
        return cls.from_kwargs(**{**load_yaml_mapping(path), **overrides})

    @classmethod
    def from_tokens(cls, tokens: Iterable[str]) -> TrainConfig:
        """Parse CLI ``key=value`` tokens; ``cfg=file.yaml`` loads keys from a file that the other tokens override.

        >>> TrainConfig.from_tokens(["data=iris", "schedule=cosine lr0=0.01"]).schedule
        'cosine lr0=0.01'
        """
        return cls.from_kwargs(**tokens_to_kwargs(tokens))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # a number read from a token or a cfg file prints as typed (in the checks' messages) until here
            setattr(self, f.name, _plain_number(f.metadata["check"](f.name, value)))
        if self.head is not None and self.backbone_lr_scale is None:
            raise ValueError(f"head={','.join(self.head)} names the head for backbone_lr_scale, which is not set: pass "
                             "backbone_lr_scale= too (e.g. 0.1), or drop head= (layer_decay needs no head name)")
        option = self.monitor.get("snapshot_device") if isinstance(self.monitor, dict) else None
        if self.snapshot_device is not None and isinstance(self.monitor, dict) and "snapshot_device" in self.monitor:
            theirs = _snapshot_device("monitor snapshot_device", option)
            if theirs != self.snapshot_device:
                raise ValueError(
                    f"snapshot_device={self.snapshot_device!r} and monitor={{'snapshot_device': {option!r}}} "
                    "disagree: give the key alone (it places the monitor's and lr0=auto's snapshots)"
                )

    # -------------------------------------------------------------------------------------------------- export
    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON/checkpoint safe): objects such as Datasets and Modules become short strings."""
        return {k: _plain(getattr(self, k)) for k in self.keys()}

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied."""
        self.check_keys(changes)
        return dataclasses.replace(self, **changes)


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, type):  # optimizer=torch.optim.Adagrad: recorded as the string that names it again
        return class_spec(v)
    if isinstance(v, (list, tuple)):
        if all(x is None or isinstance(x, (bool, int, float, str)) for x in v):
            return list(v)
        return f"<{type(v).__name__} of {len(v)} objects>"
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(v, torch.nn.Module):  # the user's model, not torch.compile's OptimizedModule
        from lrkit.scaling import model_label

        return f"<{model_label(v)}>"
    return f"<{type(v).__name__}>"


def load_yaml_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping of train keys (``_utils.yaml_load``: ``safe_load``, a key given twice
    refused). A run's own ``args.yaml`` is one: its ``resolved:`` block (what the run chose, not a setting) is left
    out, so ``lrkit train cfg=runs/train/args.yaml`` trains with the same settings again."""
    yaml = optional_import("yaml", "cli")
    p = Path(path).expanduser()
    if p.is_dir():  # cfg=runs/train: a run's folder, whose args.yaml is the cfg file
        args = p / "args.yaml"
        hint = (f"its settings are in cfg={args}" if args.is_file() else
                "give a YAML file of key: value pairs, e.g. cfg=train.yaml")
        raise ValueError(f"cfg={os.fspath(path)!r} is a folder, not a YAML file: {hint}")
    if not p.is_file():
        raise ValueError(f"cfg={os.fspath(path)!r}: no such file")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"cfg={os.fspath(path)!r} is not UTF-8 (byte 0x{raw[e.start]:02x} on line {line}); save it "
                         "as UTF-8") from None
    try:
        loaded = yaml_load(text)  # safe_load that refuses a key given twice
    except yaml.YAMLError as e:
        raise ValueError(f"cfg={os.fspath(path)!r} is not valid YAML: {describe_yaml_error(e)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"cfg={os.fspath(path)!r} must hold a mapping of key: value, not {type(loaded).__name__}")
    if loaded.get("cfg") is not None:
        raise ValueError(f"cfg={os.fspath(path)!r} may not itself contain a 'cfg' key")
    if isinstance(loaded.get("train"), str) and "data" not in loaded:  # `train: a.csv`: the data YAML's own key
        raise ValueError(f"cfg={os.fspath(path)!r} is a data YAML (train: {loaded['train']}), not a file of train "
                         f"keys: pass it as data={os.fspath(path)} (cfg= holds train keys such as data: and epochs:)")
    loaded.pop("cfg", None)  # an Ultralytics args.yaml's `cfg: null`: no file named, nothing to refuse
    if isinstance(loaded.get("resolved"), dict):  # a run's args.yaml: what the run resolved to is a record, not a key
        del loaded["resolved"]
    _as_written(yaml, text, loaded)
    return {str(k): v for k, v in loaded.items()}


_AS_WRITTEN = ("name", "project")  # folder names: text, whatever YAML would make of them
_TEXT_KEYS = (*_AS_WRITTEN, "data", "model", "schedule")  # text however it reads; a token's value is not a number here


def _is_plain_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_written(yaml: Any, text: str, loaded: dict[Any, Any]) -> None:
    """Scalars as the file wrote them, where YAML's reading would lose that:

    * ``name: 2024`` names the run ``2024``, as ``name=2024`` does on the command line: YAML would read an int (and
      ``007`` as octal 7, ``2024-01-05`` as a date), so ``name``/``project`` take the scalar as written
      (``null``/``~`` stay ``None``; a list or mapping is left for the check to reject);
    * any other key's number keeps its value but prints as written (:func:`_as_typed`): ``lr0: -1.0e-3`` is
      refused as ``lr0=-1.0e-3``, ``lrf: .inf`` as ``lrf=.inf``, as a ``key=value`` token is;
    * an unquoted scalar that YAML 1.1 leaves a string but a ``key=value`` token reads as a number (``epochs: 1e3``,
      ``lr0: 1e-3``: YAML 1.1 wants a dot before the exponent) is that number, as the token ``epochs=1e3`` is;
      quoted (``epochs: '1e3'``) it stays the string it was written as, and text keys (``data``, ``model``,
      ``schedule``) keep their text.

    The file is composed a second time only when it holds such a value (a few small mappings: cheap)."""
    names = [k for k in _AS_WRITTEN if loaded.get(k) is not None and not isinstance(loaded[k], str)]
    numbers = [k for k, v in loaded.items() if isinstance(k, str) and k not in _AS_WRITTEN and _is_plain_number(v)]
    texts = [k for k, v in loaded.items() if isinstance(k, str) and k not in _TEXT_KEYS and isinstance(v, str)
             and _is_plain_number(parse_value(v))]
    if not names and not numbers and not texts:
        return
    nodes: dict[str, Any] = {}
    # the keys are unique here: yaml_load refused a repeated one before this runs
    for key_node, value_node in yaml.compose(text, Loader=yaml.SafeLoader).value:
        if isinstance(key_node, yaml.ScalarNode) and isinstance(value_node, yaml.ScalarNode):
            nodes[key_node.value] = value_node
    for key in names:
        if key in nodes:
            loaded[key] = nodes[key].value
    for key in numbers:
        if key in nodes:
            loaded[key] = _as_typed(loaded[key], nodes[key].value)
    for key in texts:
        if key in nodes and nodes[key].style is None:  # plain, not quoted
            loaded[key] = _as_typed(parse_value(nodes[key].value), nodes[key].value)


def token_key(tok: str) -> tuple[str, str]:
    """``(key, raw value)`` of a ``key=value`` token as the command line reads it: ``--warmup-epochs=3`` ->
    ``("warmup_epochs", "3")``.

    >>> token_key(" --warmup-epochs=3")
    ('warmup_epochs', '3')
    """
    key, _, raw = tok.partition("=")
    return key.strip().lstrip("-").replace("-", "_"), raw


def tokens_to_kwargs(tokens: Iterable[str]) -> dict[str, Any]:
    """``["a=1", "cfg=x.yaml"]`` -> kwargs: the file's keys first, then the tokens (a token wins over the file).

    Each key, ``cfg`` included, may be given once: ``epochs=3 epochs=5`` is an error naming both, not a silent
    "last one wins" (nor is a second ``cfg=`` file silently the only one read).
    """
    from_tokens: dict[str, Any] = {}
    seen: dict[str, str] = {}  # key -> the token that gave it
    cfg_path: str | None = None
    valid = TrainConfig.keys()
    tokens = list(tokens)
    for i, tok in enumerate(tokens):
        if "=" not in tok:
            split = _split_value_error(tokens, i)
            if split is not None:
                raise split
            raise _bare_token_error(tok, tokens[i + 1] if i + 1 < len(tokens) else None, valid)
        key, raw = token_key(tok)
        if key != "cfg" and key not in valid:  # EPOCHS=5 -> 'epochs'
            raise _unknown_key_error(key, valid, [token_key(t)[0] for t in tokens if "=" in t])
        several = _several_keys_error(key, raw, tok, valid)
        if several is not None:
            raise several
        if key in seen:
            raise ValueError(f"{key} is given twice: {seen[key]!r} and {tok!r}; give it once")
        seen[key] = tok
        if key == "cfg":
            if not raw.strip():
                raise ValueError("cfg= needs a YAML file of key: value pairs, e.g. cfg=train.yaml")
            cfg_path = raw
            continue
        try:
            from_tokens[key] = (
                _as_typed(parse_value(raw), raw)  # a number prints as typed: lr0=-1e-3, not lr0=-0.001
                if key not in _TEXT_KEYS
                else (_parse_str_key(key, raw))
            )
        except _RepeatedKeyError as e:  # a key repeated inside key={...}: name the token it came from
            raise ValueError(f"{tok.strip()!r}: {e.problem}") from None
        if not raw.strip():  # `project=` reads as None: where None is no valid value, say the value is missing
            _check_empty_token(key, tok)
    base = load_yaml_mapping(cfg_path) if cfg_path else {}
    TrainConfig.check_keys(base)
    for key, value in base.items():
        if value is None and key not in from_tokens:  # `project:` with nothing after it (a token overrides it)
            _check_empty_token(key, f"{key}:", where=f" in cfg={cfg_path}", sep=": ")
    return {**base, **from_tokens}


def _check_empty_token(key: str, tok: str, where: str = "", sep: str = "=") -> None:
    """``key=`` with nothing after ``=`` means None (``name=``: choose a name). For a key that takes no None
    (``project=``) the error names the empty token and the default, not ``project=None``.

    >>> _check_empty_token("name", "name=")  # None is valid: a fresh name
    >>> _check_empty_token("project", "project=")
    Traceback (most recent call last):
    ...
    ValueError: 'project=' has no value: give one (e.g. project=runs), or leave the key out for its default 'runs'

    A cfg file's ``project:`` with nothing after it (``where``/``sep``: where it was written, and the file's
    ``key: value`` form) is told the same way (before session 36: ``project=None must be a non-empty string``).
    """
    check = next(f.metadata["check"] for f in dataclasses.fields(TrainConfig) if f.name == key)
    try:
        check(key, None)
    except (TypeError, ValueError):
        default = TrainConfig.defaults()[key]
        shown = str(default).lower() if isinstance(default, bool) else default  # as typed: cos_lr=false
        example = f"{key}{sep}{shown}" if default not in (None, "") else f"{key}{sep}<value>"
        raise ValueError(f"{tok.strip()!r}{where} has no value: give one (e.g. {example}), or leave the key out for "
                         f"its default {default!r}") from None


def _depth(text: str) -> int:
    """How many ``[``/``{`` are still open at the end of ``text``."""
    return sum(text.count(c) for c in "[{") - sum(text.count(c) for c in "]}")


def _several_keys_error(key: str, raw: str, tok: str, valid: Iterable[str]) -> ValueError | None:
    """The error for a token that holds several keys (``"data=iris model=linear"``, a script's arguments quoted as
    one: before session 36 ``data=`` was ``'iris model=linear'``, an unknown dataset), or ``None``. ``schedule=``'s
    value is a spec of ``key=value`` parameters, so it is never one.

    >>> print(_several_keys_error("epochs", "3 lr0=0.1", "epochs=3 lr0=0.1", TrainConfig.keys()))  # doctest: +ELLIPSIS
    'epochs=3 lr0=0.1' holds several keys in one token ...: give each key as its own token: epochs=3 lr0=0.1
    """
    words = raw.split()
    if key in ("schedule", "cfg") or len(words) < 2 or raw.strip()[:1] in ("[", "{"):
        return None
    keys = set(valid) | {"cfg"}
    if not any("=" in w and token_key(w)[0] in keys for w in words[1:]):
        return None
    fixed = " ".join([f"{key}={words[0]}", *words[1:]])
    return ValueError(f"{tok.strip()!r} holds several keys in one token (quoted together, so the shell passed them as "
                      f"one argument): give each key as its own token: {fixed}")


def _split_value_error(tokens: list[str], i: int) -> ValueError | None:
    """The error for ``tokens[i]`` (no ``=``) when it is the rest of a list/dict value the shell split at its spaces:
    ``freeze=[0, 1]`` unquoted arrives as ``freeze=[0,`` and ``1]``. ``None`` when it is not.

    >>> print(_split_value_error(["freeze=[0,", "1]"], 1))  # doctest: +ELLIPSIS
    '1]' is the rest of 'freeze=[0,': the shell split the value at its spaces; quote it, 'freeze=[0, 1]', or ...
    """
    if i == 0:
        return None
    start = tokens[i - 1]
    if "=" not in start:
        return None
    raw = start.partition("=")[2].strip()
    if raw[:1] not in ("[", "{") or _depth(raw) <= 0:
        return None
    parts = [start]
    for piece in tokens[i:]:
        parts.append(piece)
        if _depth(" ".join(parts).partition("=")[2]) <= 0:
            break
    joined = " ".join(parts)
    return ValueError(f"{tokens[i]!r} is the rest of {start!r}: the shell split the value at its spaces; quote it, "
                      f"{joined!r}, or write it without spaces")


def _bare_token_error(tok: str, following: str | None, valid: Iterable[str]) -> ValueError:
    """The error for a token without ``=``: a valid key needs a value; anything else gets a did-you-mean.

    >>> str(_bare_token_error("epochs", "20", TrainConfig.keys()))
    "'epochs' needs a value: write epochs=<value> (e.g. epochs=20 as one token)"
    """
    key = tok.strip().lstrip("-").replace("-", "_")
    if key in valid or key == "cfg":
        example = f"{key}={following.strip()}" if following is not None and "=" not in following else None
        if example is None and key == "resume":  # Ultralytics' bare `resume`: true
            return ValueError("'resume' needs a value: write resume=true (the newest last.pt under project) or "
                              "resume=<run>/last.pt (Ultralytics reads a bare resume as true; lrkit asks for the "
                              "value)")
        if example is None and isinstance(TrainConfig.defaults().get(key), bool):  # Ultralytics' bare `cos_lr`
            return ValueError(f"{key!r} needs a value: write {key}=true or {key}=false (Ultralytics reads a bare "
                              f"{key} as true; lrkit asks for the value)")
        what = "<file.yaml>" if key == "cfg" else "<value>"
        hint = f" (e.g. {example} as one token)" if example else ""
        return ValueError(f"{key!r} needs a value: write {key}={what}{hint}")
    colon_key, colon, colon_value = tok.strip().lstrip("-").partition(":")
    colon_key = colon_key.strip().replace("-", "_")
    colon_value = colon_value.strip() or (following.strip() if following is not None and "=" not in following
                                          else "")
    if colon and colon_value and (colon_key in valid or colon_key == "cfg"):  # data:iris, `epochs: 3` (a cfg file's)
        return ValueError(f"expected key=value, got {tok.strip()!r}: write {colon_key}={colon_value} (key: value is a "
                          "cfg file's form; on the command line each key is key=value, one token)")
    file_hint = _file_token_hint(tok.strip())
    if file_hint is not None:
        return ValueError(f"expected key=value, got {tok.strip()!r}: {file_hint}")
    same = SYNONYMS.get(key.lower())
    if same is not None and same[0] in valid:  # `--lr 0.01`, argparse style: lrkit's name, not the closest spelling
        return ValueError(f"expected key=value, got {tok!r}: lrkit calls it {same[0]}= — {same[1]}. Write "
                          f"{same[0]}=<value> as one token, e.g. lrkit train data=digits model=mlp")
    hint = did_you_mean(key, valid, ignore_case=True)
    return ValueError(f"expected key=value, got {tok!r}.{hint} Example: lrkit train data=digits model=mlp")


#: suffixes of the files ``data=`` reads (a data YAML aside): a bare ``houses.csv`` token is a data file
_DATA_SUFFIXES = (".csv", ".tsv", ".npz", ".npy", ".txt")


def _file_token_hint(tok: str) -> str | None:
    """What a bare file name on the command line is for (``lrkit train train.yaml``, ``lrkit train houses.csv``:
    before session 36 a did-you-mean-less ``expected key=value``), or ``None`` when it names no such file type.

    >>> _file_token_hint("houses.csv")
    'a file is given as key=value: data=houses.csv'
    >>> _file_token_hint("epochs") is None
    True
    """
    low = tok.lower()
    if low.endswith((".yaml", ".yml")):
        return (f"a file is given as key=value: cfg={tok} (a YAML file of train keys, e.g. a run's args.yaml) or "
                f"data={tok} (a data YAML: train:/val: files)")
    if low.endswith(_DATA_SUFFIXES):
        return f"a file is given as key=value: data={tok}"
    return None


def _parse_str_key(key: str, raw: str) -> Any:
    """Keys whose values are names or specs stay strings (``name=2024`` is a name, not an int)."""
    v = raw.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":  # model="mlp" with the quotes kept by the shell
        v = v[1:-1].strip()
    if v.lower() in ("none", "null", ""):
        return None
    if key == "schedule" and v[:1] == "{":
        return parse_value(v)
    return v
