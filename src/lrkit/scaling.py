"""Batch-size ↔ LR rules, Ultralytics' nominal batch size, and parameter groups for fine-tuning.

* :func:`scale_lr` — carry a tuned LR to a new batch size: linear for SGD (Goyal et al. 2017), square root for
  adaptive optimizers (Malladi et al. 2022), or ``"auto"`` to pick by the optimizer.
* :func:`nominal_batch` — Ultralytics' ``nbs``: accumulate gradients up to a nominal batch and scale weight decay.
* :func:`param_groups` — discriminative LRs (backbone/head or layer-wise decay), no weight decay on biases and
  norm layers, bias groups flagged for ``warmup_bias_lr``; every group carries its ``lr_scale`` (its ratio to the
  peak LR), which schedules, the LR finder and ``lr0="auto"`` preserve.
* :func:`freeze_layers` — freeze the first ``n`` layers (or named ones) for transfer learning.

>>> import torch
>>> scale_lr(1e-3, 32, 128, rule="auto", optimizer="adamw")
0.002
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> groups = param_groups(model, 0.1, weight_decay=5e-4, backbone_lr_scale=0.1, head=("2",))
>>> [(g["name"], g["lr_scale"], g["weight_decay"]) for g in groups]  # doctest: +NORMALIZE_WHITESPACE
[('backbone/decay', 0.1, 0.0005), ('backbone/bias', 0.1, 0.0), ('head/decay', 1.0, 0.0005),
 ('head/bias', 1.0, 0.0)]
"""

from __future__ import annotations

import fnmatch
import math
import numbers
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from lrkit._utils import adapts_step_size, canonical_name, check_positive, did_you_mean, named_keywords

__all__ = [
    "ADAPTIVE_OPTIMIZERS",
    "SGD_LIKE_OPTIMIZERS",
    "NominalBatch",
    "freeze_layers",
    "layer_names",
    "nominal_batch",
    "optimizer_family",
    "param_groups",
    "scale_lr",
]

#: Optimizers whose LR scales linearly with the batch size (Goyal et al. 2017), by lower-case class name.
SGD_LIKE_OPTIMIZERS: frozenset[str] = frozenset({"sgd", "asgd", "sgdw", "sgdp", "lars"})
#: Adaptive optimizers, whose LR scales with the square root of the batch size (Malladi et al. 2022).
ADAPTIVE_OPTIMIZERS: frozenset[str] = frozenset(
    {
        "adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "sparseadam", "adafactor",
        "lamb", "adabelief", "adamp", "adan",
    }
)
# Substrings that identify a family in class names we do not know by name (``AdamW8bit``, ``FusedSGD``, ...).
# ``lamb``/``lars`` catch apex's FusedLAMB, DeepSpeed's FusedLamb, bitsandbytes' LAMB8bit and LARS8bit, ...
_ADAPTIVE_HINTS = ("adam", "rmsprop", "adagrad", "adafactor", "adadelta", "lamb")
_SGD_HINTS = ("sgd", "lars")
# Substrings of families outside both rules, which no hint may override: Muon's hybrids (MuonWithAuxAdam, AdaMuon).
_OUTSIDE_HINTS = ("muon",)

_RULES = ("linear", "sqrt", "auto")


# --------------------------------------------------------------------------------------------- batch-size rules


def optimizer_family(optimizer: Any) -> str:
    """``"sgd"`` or ``"adaptive"`` for an optimizer instance, class or name; ``ValueError`` when it cannot tell.

    Known torch names decide first (also through a subclass's MRO), then the optimizer a wrapper holds (accelerate's
    ``AcceleratedOptimizer.optimizer``, Lightning's ``LightningOptimizer._optimizer``, ``base_optimizer`` of
    Lookahead/SAM/schedule-free wrappers), then name hints (``AdamW8bit`` is adaptive, ``FusedSGD`` SGD-like).
    Optimizers outside both families (``LBFGS``, ``Rprop``, ``Lion``, ...) are refused rather than guessed.

    Prodigy and D-Adaptation (``Prodigy*``/``DAdapt*`` classes, or groups carrying ``d`` and ``d0``) are refused
    too: their ``lr`` is a multiplier of a step size they estimate themselves, which no batch-size rule applies to.

    >>> optimizer_family("AdamW"), optimizer_family(torch.optim.SGD)
    ('adaptive', 'sgd')
    """
    _refuse_step_multiplier(optimizer)
    for _ in range(8):  # a wrapper of a wrapper of ...: a few levels, never a cycle
        inner = _wrapped_optimizer(optimizer)
        if isinstance(optimizer, str):
            names = [_class_name(optimizer)]
            shown = optimizer
        elif isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
            names = [c.__name__ for c in optimizer.__mro__]
            shown = optimizer.__name__
        elif isinstance(optimizer, torch.optim.Optimizer):
            names = [c.__name__ for c in type(optimizer).__mro__]
            shown = type(optimizer).__name__
        elif inner is not None:  # a wrapper that is no torch Optimizer itself
            optimizer = inner
            continue
        else:
            raise ValueError(
                f"optimizer={optimizer!r} must be a torch optimizer instance, an optimizer class or a name such as "
                "'SGD' or 'AdamW'"
            )
        for name in names:  # exact names first, most derived class first
            key = name.lower().replace("_", "").replace("-", "")
            if key in SGD_LIKE_OPTIMIZERS:
                return "sgd"
            if key in ADAPTIVE_OPTIMIZERS:
                return "adaptive"
        if inner is None:
            break
        optimizer = inner
    key = names[0].lower()
    hinted = key.replace("lambda", "")  # "lamb" is a hint, a "Lambda..." class is no LAMB
    if any(h in hinted for h in _OUTSIDE_HINTS):
        hinted = ""  # AdaMuon is no Adam: refused below, as Muon is
    if any(h in hinted for h in _ADAPTIVE_HINTS):
        return "adaptive"
    if any(h in hinted for h in _SGD_HINTS):
        return "sgd"
    known = sorted(SGD_LIKE_OPTIMIZERS | ADAPTIVE_OPTIMIZERS)
    # a did-you-mean only for a name the user mistyped: for a class, or the name of a real torch optimizer outside
    # both families ('Rprop', 'LBFGS'), it would suggest another optimizer ('rmsprop') — a guess, not a typo fix
    torch_names = {n.lower() for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)}
    # (nor for a Muon hybrid: 'AdaMuon' is no typo of 'adan', nor 'MuonWithAuxAdam' of 'nadam')
    hint = (did_you_mean(key, known) if isinstance(optimizer, str) and key not in torch_names
            and not any(h in key for h in _OUTSIDE_HINTS) else "")
    raise ValueError(
        f"cannot tell whether optimizer {shown!r} is SGD-like (rule='linear') or adaptive (rule='sqrt').{hint} "
        f"Pass rule='linear' or rule='sqrt' explicitly. Known: {', '.join(known)}"
    )


def _class_name(name: str) -> str:
    """The class name in an optimizer's name as a string: ``"AdamW"``, ``"torch.optim.AdamW"``, or the
    ``"package.module:ClassName"`` that ``lrkit.train``, the CLI and ``args.yaml`` write (``"timm.optim:Lars"``)."""
    return re.split(r"[.:]", name.strip())[-1]


def _step_multiplier_name(optimizer: Any) -> str | None:
    """The class name of an optimizer whose ``lr`` multiplies a step size it adapts itself (Prodigy, D-Adaptation,
    as ``lrkit.find_lr`` recognises them: by name, or by ``d``/``d0`` in its groups), looking through wrappers."""
    for _ in range(8):
        if isinstance(optimizer, str):
            names = [_class_name(optimizer)]
        elif isinstance(optimizer, type):
            names = [c.__name__ for c in optimizer.__mro__]
        else:
            names = [c.__name__ for c in type(optimizer).__mro__]
            if isinstance(optimizer, torch.optim.Optimizer) and adapts_step_size(optimizer):
                return names[0]
        if any(n.lower().replace("_", "").replace("-", "").startswith(("prodigy", "dadapt")) for n in names):
            return names[0]
        inner = _wrapped_optimizer(optimizer)
        if inner is None:
            return None
        optimizer = inner
    return None


def _refuse_step_multiplier(optimizer: Any) -> None:
    name = _step_multiplier_name(optimizer)
    if name is not None:
        raise ValueError(
            f"optimizer {name!r} adapts its own step size (Prodigy / D-Adaptation): its lr is a multiplier of the "
            "step size it estimates, not an LR, so no batch-size rule applies — keep lr as it is (1.0 is the value "
            "it is designed for) when you change the batch size. To scale a number anyway, leave optimizer= out "
            "and pass rule='linear' or rule='sqrt'"
        )


# Attributes under which optimizer wrappers keep the real optimizer: accelerate (optimizer), Lightning (_optimizer),
# Lookahead / SAM / schedule-free wrappers (base_optimizer).
_WRAPPED_OPTIMIZER_ATTRS = ("optimizer", "_optimizer", "base_optimizer")


def _wrapped_optimizer(optimizer: Any) -> Any:
    """The torch optimizer a wrapper instance holds, or ``None``."""
    if isinstance(optimizer, (str, type)):
        return None
    for attr in _WRAPPED_OPTIMIZER_ATTRS:
        inner = getattr(optimizer, attr, None)
        if isinstance(inner, torch.optim.Optimizer) and inner is not optimizer:
            return inner
    return None


def _as_index(value: Any) -> Any:
    """A numpy / torch integer scalar as a plain ``int`` (so it passes ``isinstance(x, int)``); anything else as is."""
    if isinstance(value, (bool, float, str, list, tuple)):
        return value
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool:
        return value  # torch.tensor(True) has __index__ (1): a boolean is no batch size, layer count or index
    try:
        return operator.index(value)
    except TypeError:
        return value


def _integer(value: Any) -> int | None:
    """``value`` as an ``int`` when it is a whole number (``int``, numpy/torch integer scalars, ``32.0``), else None."""
    v = _as_index(value)
    if isinstance(v, bool):
        return None
    if isinstance(v, torch.Tensor) and v.numel() == 1 and v.dtype.is_floating_point:
        v = v.item()  # torch.tensor(32.0), like np.float64(32.0)
    elif isinstance(v, numbers.Real) and not isinstance(v, (int, float)):
        v = float(v)  # np.float32(32.0)
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _check_batch(name: str, value: Any) -> int:
    v = _integer(value)
    if v is None or v < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer batch size")
    return v


def _brief(n: int) -> str:
    """An integer for a message: as it is up to 15 digits, else in e-notation (``1e+300``, not 301 digits)."""
    digits = str(n)
    if len(digits) <= 15:
        return digits
    mantissa = f"{digits[0]}.{digits[1:4]}".rstrip("0").rstrip(".")
    return f"{mantissa}e+{len(digits) - 1}"


@named_keywords
def scale_lr(
    lr: float, from_batch: int, to_batch: int, rule: str | None = None, *, optimizer: Any = None
) -> float:
    """Scale a learning rate tuned at batch size ``from_batch`` to batch size ``to_batch``.

    ``lr' = lr * (to_batch / from_batch) ** p`` with ``p = 1`` for ``rule="linear"`` (SGD; Goyal et al. 2017,
    "Accurate, Large Minibatch SGD") and ``p = 1/2`` for ``rule="sqrt"`` (Adam, AdamW, RMSprop, Adagrad, ...;
    Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms"). ``rule="auto"``
    picks by ``optimizer`` (an instance, a class or a name such as ``"AdamW"``) and raises ``ValueError`` if it
    cannot tell which family the optimizer belongs to. Left out, ``rule`` is ``"auto"`` when ``optimizer`` is
    given and ``"linear"`` otherwise. With ``"linear"`` or ``"sqrt"``, an ``optimizer`` whose family calls for the
    other rule is a ``ValueError`` (it would otherwise be ignored without a word).

    Both rules hold while the batch is below the critical batch size; far above it the optimal LR stops growing,
    so re-check very large jumps with the LR finder.

    >>> scale_lr(0.1, 256, 1024)
    0.4
    >>> scale_lr(1e-3, 64, 256, rule="sqrt")
    0.002
    >>> scale_lr(0.01, 64, 16, rule="auto", optimizer=torch.optim.SGD)
    0.0025
    >>> scale_lr(3e-4, 64, 256, optimizer="AdamW")   # the optimizer's rule: sqrt for the Adam family
    0.0006
    """
    lr = check_positive("lr", lr)
    b0 = _check_batch("from_batch", from_batch)
    b1 = _check_batch("to_batch", to_batch)
    if optimizer is not None:  # Prodigy / D-Adaptation: lr is a multiplier, whatever the rule
        _refuse_step_multiplier(optimizer)
    if rule is None:
        rule = "linear" if optimizer is None else "auto"
    if not isinstance(rule, str):
        raise ValueError(f"rule={rule!r} must be 'linear', 'sqrt' or 'auto' (or None: 'auto' with optimizer=, "
                         "else 'linear')")
    rule = canonical_name("scaling rule", rule.strip(), _RULES)  # any case: 'Linear', 'SQRT'
    if rule == "auto":
        if optimizer is None:
            raise ValueError(
                "rule='auto' needs optimizer= (an optimizer instance, class or name such as 'SGD' or 'AdamW') "
                "to choose between 'linear' and 'sqrt'"
            )
        rule = "linear" if optimizer_family(optimizer) == "sgd" else "sqrt"
    elif optimizer is not None:  # optimizer= is only read by "auto": a contradiction must not pass silently
        try:
            implied = "linear" if optimizer_family(optimizer) == "sgd" else "sqrt"
        except ValueError:  # outside both families: the explicit rule is the answer
            implied = rule
        if implied != rule:
            raise ValueError(
                f"rule={rule!r} contradicts optimizer={_shown(optimizer)}, whose family scales by rule={implied!r}: "
                f"pass rule='auto' to scale by the optimizer, or leave optimizer= out to force rule={rule!r}"
            )
    try:
        ratio = b1 / b0
        out = lr * (ratio if rule == "linear" else math.sqrt(ratio))
    except OverflowError:
        out = math.inf
    if not math.isfinite(out) or out == 0.0:
        raise ValueError(
            f"scale_lr(lr={lr:g}, from_batch={_brief(b0)}, to_batch={_brief(b1)}, rule={rule!r}) "
            f"{'overflows' if out else 'underflows'} a float: check the batch sizes"
        )
    return out


def _shown(optimizer: Any) -> str:
    """An optimizer (instance, class or name) as a short name for an error message."""
    if isinstance(optimizer, str):
        return repr(optimizer)
    cls = optimizer if isinstance(optimizer, type) else type(optimizer)
    return cls.__name__


class NominalBatch(NamedTuple):
    """Result of :func:`nominal_batch`: optimizer steps accumulate ``accumulate`` batches; the scaled weight decay.

    >>> accumulate, weight_decay = nominal_batch(16)
    >>> accumulate, weight_decay
    (4, 0.0005)
    """

    accumulate: int
    weight_decay: float


@named_keywords
def nominal_batch(batch: int, nbs: int = 64, weight_decay: float = 5e-4) -> NominalBatch:
    """Ultralytics' nominal batch size: accumulate gradients so each optimizer step sees about ``nbs`` samples.

    ``accumulate = max(round(nbs / batch), 1)`` and ``weight_decay' = weight_decay * batch * accumulate / nbs``
    (the decay is applied once per optimizer step, so it is scaled to the samples that step really saw). Python's
    ``round`` (half to even) is used, exactly as Ultralytics does. The default ``weight_decay`` is Ultralytics'.

    >>> nominal_batch(16)
    NominalBatch(accumulate=4, weight_decay=0.0005)
    >>> nominal_batch(24, nbs=64, weight_decay=5e-4).accumulate   # 64/24 = 2.67 -> 3 batches = 72 samples
    3
    >>> nominal_batch(128).accumulate
    1
    """
    b = _check_batch("batch", batch)
    n = _check_batch("nbs", nbs)
    wd = check_positive("weight_decay", weight_decay, allow_zero=True)
    try:
        accumulate = max(round(n / b), 1)
        scaled = wd * b * accumulate / n
    except OverflowError:  # a batch or nbs beyond a float's range
        scaled = math.inf
    if not math.isfinite(scaled):  # never a weight decay of inf, nor an OverflowError
        raise ValueError(
            f"nominal_batch(batch={_brief(b)}, nbs={_brief(n)}, weight_decay={wd:g}) overflows a float "
            "(weight_decay * batch * accumulate / nbs): give batch sizes and a weight decay a run can have "
            "(nbs=64 and weight_decay=5e-4 are Ultralytics' defaults)"
        )
    return NominalBatch(accumulate, scaled)


# --------------------------------------------------------------------------------------------- layers and groups

_NORM_TYPES: tuple[type[nn.Module], ...] = tuple(
    t
    for t in (
        getattr(nn.modules.batchnorm, "_NormBase", None),  # BatchNorm*, InstanceNorm*, SyncBatchNorm
        nn.LayerNorm,
        nn.GroupNorm,
        nn.LocalResponseNorm,
        getattr(nn, "RMSNorm", None),
    )
    if t is not None
)

# A hand-written norm layer's class name ends in Norm (LlamaRMSNorm, T5LayerNorm, ImageGPTLayerNorm, Qwen2RMSNorm,
# ConvNeXt's LayerNorm2d, Mamba2's MambaRMSNormGated): architectures define their own instead of subclassing torch's.
_NORM_CLASS_RE = re.compile(r"norm(\d*d|gated)?$", re.IGNORECASE)


def _is_norm_layer(module: nn.Module) -> bool:
    """A normalization layer: one of torch's (:data:`_NORM_TYPES`), or a leaf module whose class name ends in ``Norm``
    (also ``Norm2d``, ``NormGated``) — transformers' ``LlamaRMSNorm``/``T5LayerNorm``/``ImageGPTLayerNorm`` whatever
    its attribute is called (ImageGPT's ``ln_1``, Qwen2-VL's ``ln_q``). A module with submodules is a container, not a
    norm, whatever its name (``RobertaPreLayerNormLMHead``, ``Wav2Vec2EncoderStableLayerNorm``)."""
    if isinstance(module, _NORM_TYPES):
        return True
    leaf = not any(m is not None for k, m in module._modules.items() if k != "parametrizations")
    # a TorchScript module is a RecursiveScriptModule whatever it was: its original_name is the class it scripted
    # ("BatchNorm1d", "LayerNorm", "LlamaRMSNorm"), and torch's norm classes all end in Norm too
    cls = (str(getattr(module, "original_name", "")) if isinstance(module, torch.jit.ScriptModule)
           else type(module).__name__)
    return leaf and _NORM_CLASS_RE.search(cls) is not None


# Wrappers that keep the user's model under one attribute, so every parameter name gains a prefix: DataParallel and
# DistributedDataParallel ("module."), torch.compile's OptimizedModule ("_orig_mod."), FSDP v1
# ("_fsdp_wrapped_module."). Layers, head= and freeze= prefixes and layer_id_fn see the names without it.
_WRAPPER_ATTRS = {"DataParallel": "module", "DistributedDataParallel": "module", "DeepSpeedEngine": "module",
                  "FullyShardedDataParallel": "_fsdp_wrapped_module"}


#: The wrappers whose ``state_dict()`` is the wrapped model's under the attribute's prefix and nothing else, so a
#: checkpoint can hold the wrapped model's own names (FSDP and DeepSpeed's engine write their own state).
_STATE_WRAPPERS = frozenset({"DataParallel", "DistributedDataParallel", "torch.compile"})


def _wrappers(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """``(wrapper, attribute, label)`` for each wrapper around the user's model, outermost first: the label is the
    wrapper class's name in :data:`_WRAPPER_ATTRS`, or ``"torch.compile"``. A module with parameters of its own is
    not a wrapper."""
    out: list[tuple[nn.Module, str, str]] = []
    for _ in range(8):
        label = next((c.__name__ for c in type(model).__mro__ if c.__name__ in _WRAPPER_ATTRS), None)
        attr = _WRAPPER_ATTRS.get(label) if label else None
        modules = model._modules  # a dict, or a ScriptModule's OrderedModuleDict (no .get())
        if attr is None and "_orig_mod" in modules and isinstance(modules["_orig_mod"], nn.Module):
            attr, label = "_orig_mod", "torch.compile"
        inner = modules[attr] if attr and attr in modules else None
        if not isinstance(inner, nn.Module) or any(True for _ in model.parameters(recurse=False)):
            break
        out.append((model, attr, label))  # type: ignore[arg-type]
        model = inner
    return out


def _unwrap(model: Any, *, state: bool = False) -> tuple[nn.Module, str]:
    """``(inner model, name prefix)`` under any wrappers; ``ValueError`` for something that is not a module.
    ``state=True`` goes only through the wrappers of :data:`_STATE_WRAPPERS` (the module a checkpoint saves)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} must be a torch.nn.Module (got {model!r:.80})")
    prefix = ""
    for _, attr, label in _wrappers(model):
        if state and label not in _STATE_WRAPPERS:
            break
        model, prefix = model._modules[attr], f"{prefix}{attr}."  # type: ignore[assignment]
    return model, prefix


def model_label(model: nn.Module) -> str:
    """The class of the user's model, with its wrappers after it: ``"Net"``, ``"Net (torch.compile)"``,
    ``"Net (DataParallel)"`` — for logs and records, never the wrapper class (``OptimizedModule``) alone.

    >>> model_label(torch.nn.DataParallel(torch.nn.Linear(2, 2)))
    'Linear (DataParallel)'
    """
    chain = _wrappers(model)
    inner = chain[-1][0]._modules[chain[-1][1]] if chain else model
    return type(inner).__name__ + (f" ({', '.join(label for _, _, label in chain)})" if chain else "")


def bare_param_names(model: nn.Module) -> dict[int, str]:
    """``id(parameter) -> name`` without a wrapper's ``module.``/``_orig_mod.`` prefix: the names the user's own
    model gives its parameters, for messages."""
    if not isinstance(model, nn.Module):  # a duck-typed model: its own names
        return {id(p): n for n, p in model.named_parameters()}
    names = _names(model)
    params = dict(model.named_parameters())
    return {id(params[n]): names.bare[n] for n in names.real}


class _Names(NamedTuple):
    """The parameters' names: ``real`` as ``model.named_parameters()`` gives them (each tensor once), ``bare`` the
    same without a wrapper's segment (``module.``, ``_orig_mod.``, ...: around the model or around one of its blocks),
    ``aliases`` every bare name of each tensor (a tied weight has several), and ``wrapped`` the wrapper attributes
    taken out (``{"_orig_mod"}``)."""

    real: list[str]
    bare: dict[str, str]
    aliases: dict[str, list[str]]
    wrapped: frozenset[str] = frozenset()


def _inner_attr(module: nn.Module) -> str | None:
    """The attribute under which ``module`` wraps another module, when it is a wrapper without tensors of its own:
    those of :func:`_wrappers`, and activation checkpointing's ``CheckpointWrapper``/``OffloadWrapper``
    (``_checkpoint_wrapped_module``, as FSDP recipes wrap each block). ``None`` for any other module."""
    mro = [c.__name__ for c in type(module).__mro__]
    label = next((c for c in mro if c in _WRAPPER_ATTRS), None)
    modules = module._modules
    attr = _WRAPPER_ATTRS[label] if label else None
    if attr is None and "_orig_mod" in modules and isinstance(modules["_orig_mod"], nn.Module):
        attr = "_orig_mod"
    if attr is None and "ActivationWrapper" in mro:
        attr = "_checkpoint_wrapped_module"
    if (attr is None or not isinstance(modules[attr] if attr in modules else None, nn.Module)
            or any(True for _ in module.parameters(recurse=False))):
        return None
    return attr


def _names(model: nn.Module) -> _Names:
    _unwrap(model)  # checks that model is a module
    # the module paths a wrapper holds its module at — around the model ("module", "_orig_mod") or around one of
    # its blocks (torchtitan's per-block torch.compile: "layers.0._orig_mod"; activation checkpointing) — whose
    # segment the user's own names do not have
    inner: set[str] = set()
    wrapped: set[str] = set()
    for path, module in model.named_modules(remove_duplicate=False):
        if (attr := _inner_attr(module)) is not None:
            inner.add(f"{path}.{attr}" if path else attr)
            wrapped.add(attr)

    def strip(name: str) -> str:
        if not inner:
            return name
        parts = name.split(".")
        return ".".join(seg for i, seg in enumerate(parts) if ".".join(parts[:i + 1]) not in inner)

    canonical: dict[int, str] = {}
    real: list[str] = []
    for name, p in model.named_parameters():
        canonical[id(p)] = name
        real.append(name)
    aliases: dict[str, list[str]] = {name: [] for name in real}
    for name, p in model.named_parameters(remove_duplicate=False):
        aliases[canonical[id(p)]].append(strip(name))
        # a parametrized tensor (weight_norm, spectral_norm, parametrize.register_parametrization) is also named as
        # the user sees it: "0.parametrizations.weight.original0" is part of "0.weight"
        if (plain := _unparametrized(strip(name))) != strip(name):
            aliases[canonical[id(p)]].append(plain)
    return _Names(real, {name: strip(name) for name in real}, aliases, frozenset(wrapped))


def _unparametrized(name: str) -> str:
    """The name of the tensor a parametrization's original stands for (``torch.nn.utils.parametrize`` keeps it at
    ``<module>.parametrizations.<tensor>.original`` — ``original0``/``original1`` for ``weight_norm``'s magnitude and
    direction): ``"0.parametrizations.weight.original0"`` -> ``"0.weight"``; any other name as it is."""
    parts = name.split(".")
    if (len(parts) >= 3 and parts[-3] == "parametrizations" and parts[-1].startswith("original")
            and parts[-1][len("original"):] in ("", *map(str, range(10)))):
        return ".".join(parts[:-3] + parts[-2:-1])
    return name


def _hits(names: _Names, prefix: str) -> list[str]:
    """Real names of the parameters reachable under ``prefix``: by their bare names (any alias) or real name."""
    return [n for n in names.real if _matches(n, prefix) or any(_matches(a, prefix) for a in names.aliases[n])]


#: Names a nested ``nn.ModuleList`` of sequential blocks goes by in the common layouts (torch's TransformerEncoder
#: and HF Llama/Mistral/Mixtral ``layers``, BERT ``encoder.layer``, timm/nanoGPT-style ``blocks``, T5 ``block``,
#: GPT-2 ``h``, CLIP ``resblocks``, ``stages``, diffusers' ``transformer_blocks``).
STACK_NAMES = frozenset({"layers", "layer", "blocks", "block", "h", "resblocks", "stages", "transformer_blocks"})


#: Last words (after an underscore) of a nested ``nn.ModuleList`` name that also mark a stack of sequential blocks:
#: ``encoder_layers``, ``decoder_blocks`` (MAE), ``down_blocks``/``up_blocks`` (diffusers), ``conv_layers`` (wav2vec2),
#: ``res_blocks``; a trailing underscore is ignored (``layers_``).
_STACK_SUFFIXES = ("layers", "layer", "blocks", "block", "stages")


def _is_parallel_name(name: str) -> bool:
    """A ModuleList named like parallel branches: mixture-of-experts ``experts`` (``local_experts``, ...), ``heads``."""
    low = name.lower()
    return "expert" in low or low.endswith("heads")


def _is_stack_name(name: str) -> bool:
    """Whether a nested ModuleList's name marks a stack: one of :data:`STACK_NAMES`, or ending in ``_layers``,
    ``_blocks``, ``_block``, ``_layer`` or ``_stages`` (a trailing underscore ignored)."""
    low = name.lower().strip("_")
    return low in STACK_NAMES or ("_" in low and low.rsplit("_", 1)[-1] in _STACK_SUFFIXES)


def _is_parallel(name: str, module: nn.Module) -> bool:
    """A container (ModuleList/ModuleDict) of parallel branches: never a stack, never split into depths."""
    return isinstance(module, (nn.ModuleList, nn.ModuleDict)) and _is_parallel_name(name)


def _is_stack(name: str, module: nn.Module, top: bool) -> bool:
    """Whether the ``nn.ModuleList`` ``module``, the attribute ``name`` of its parent, is a stack of layers.

    A ModuleList with parameters (not a list of activations) whose name is not that of parallel branches, and which
    is either a direct child of the model (``top``) or named as a stack (:data:`STACK_NAMES`, or a name ending in
    ``_layers``/``_blocks``/``_block``/``_layer``/``_stages``). The structure alone cannot tell a stack of blocks
    from parallel experts (both are lists of like modules); a deeper list with another name is left whole, at one
    depth (``layer_id_fn`` numbers it otherwise).
    """
    if not isinstance(module, nn.ModuleList) or _is_parallel_name(name) or not any(True for _ in module.parameters()):
        return False
    return top or _is_stack_name(name)


def _has_stack(module: nn.Module) -> bool:
    """Whether a stack of blocks (:func:`_is_stack`, below the top level) sits below ``module``, not counting the
    insides of parallel branches (an expert's or a head's own layers are not depths of the model)."""
    for name, child in module.named_children():
        if _is_parallel(name, child):
            continue
        if _is_stack(name, child, False) or _has_stack(child):
            return True
    return False


#: Children registered after a stack of blocks but applied to its input (the embeddings' norm: BART, mBART, LED,
#: PLBart, MVP ``layernorm_embedding``; ProphetNet ``embeddings_layer_norm``; Canary ``embedding_layernorm``), and
#: children registered before a stack but applied after it (OPT's ``final_layer_norm`` and ``project_out``, SAM's
#: ``proj_out``, ``final_norm``). Registration order is the only order a model exposes without a forward pass; these
#: exact names (never a substring: LFM2's *final* norm is called ``embedding_norm``) are moved across the stack.
_INPUT_SIDE_NAMES = frozenset({"layernorm_embedding", "layer_norm_embedding", "embedding_layernorm",
                               "embedding_layer_norm", "embeddings_layernorm", "embeddings_layer_norm"})
_OUTPUT_SIDE_NAMES = frozenset({"final_layer_norm", "final_layernorm", "final_norm", "ln_f", "norm_f",
                                "project_out", "proj_out"})


def _data_order(children: list[tuple[str, nn.Module, bool]]) -> list[tuple[str, nn.Module, bool]]:
    """A trunk's children ``(name, module, is_stack_or_holds_one)`` in the order data flows through them: registration
    order, except that a child of :data:`_INPUT_SIDE_NAMES` registered after the first stack moves just before it,
    and one of :data:`_OUTPUT_SIDE_NAMES` registered before the last stack moves just after it."""
    stacks = [i for i, (_, _, stacky) in enumerate(children) if stacky]
    if not stacks:
        return children
    first, last = stacks[0], stacks[-1]

    def rank(item: tuple[int, tuple[str, nn.Module, bool]]) -> float:
        i, (name, _, _) = item
        if name in _INPUT_SIDE_NAMES and i > first:
            return first - 0.5
        if name in _OUTPUT_SIDE_NAMES and i < last:
            return last + 0.5
        return i

    return [child for _, child in sorted(enumerate(children), key=rank)]  # sorted is stable: ties keep their order


def _layer_keys(inner: nn.Module) -> dict[str, str]:
    """Module path -> layer name for every module that is a layer (see :func:`_layers`), input to output."""
    keys: dict[str, str] = {}

    def walk(module: nn.Module, path: str) -> None:
        children = [(name, child, _is_stack(name, child, top=not path)
                     or (not _is_parallel(name, child) and _has_stack(child)))
                    for name, child in module.named_children()]
        for name, child, _ in _data_order(children):
            cpath = f"{path}{name}"
            if _is_stack(name, child, top=not path):  # a stack: each element is a layer, never split further
                for i in child._modules:
                    keys[f"{cpath}.{i}"] = f"{cpath}.{i}"
            elif not _is_parallel(name, child) and _has_stack(child):
                # a trunk holding a stack (nn.TransformerEncoder, nanoGPT's ModuleDict, ...); never parallel branches
                keys[cpath] = cpath  # its own parameters, if any
                walk(child, f"{cpath}.")
            else:
                keys[cpath] = cpath

    walk(inner, "")
    return keys


def _layers(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The model's layers, input to output: ``[(layer_name, [param names...]), ...]`` over *all* parameters.

    A layer is a top-level child module that owns parameters, in registration order; an ``nn.ModuleList`` (a stack
    of blocks) counts as its elements (``blocks.0``, ``blocks.1``, ...), and a child that holds such a stack
    somewhere inside (``nn.TransformerEncoder``'s ``layers``, nanoGPT's ``transformer`` ModuleDict with its ``h``)
    is split into its children the same way (``encoder.layers.0``, ``transformer.wte``, ``transformer.h.0``,
    ``transformer.ln_f``). Below the top level only a ModuleList with a stack name (:data:`STACK_NAMES`, or one
    ending in ``_layers``/``_blocks``/``_block``/``_layer``/``_stages``, e.g. ``encoder_layers``, ``down_blocks``)
    is a stack, and a list or dict named like parallel branches (``experts``, ``heads``) never is, nor is any stack
    inside its branches: a mixture-of-experts block's experts share one depth. Parameters registered directly on
    the model (``cls_token``, ``pos_embed``) belong to the first layer, the input end, as in timm. Under a wrapper
    (DataParallel, DDP, torch.compile) the layers are the wrapped model's; the parameter names stay the real ones.

    The order is registration order, which is data order in almost every model, with two corrections where a module
    holding a stack is known to register a child on the wrong side of it (:data:`_INPUT_SIDE_NAMES`,
    :data:`_OUTPUT_SIDE_NAMES`): BART/mBART's ``layernorm_embedding`` (registered after the blocks) is numbered
    before them, OPT's ``final_layer_norm``/``project_out`` (registered before) after them. An encoder-decoder is
    numbered encoder then decoder (T5: ``shared``, ``encoder.block.*``, ``encoder.final_layer_norm``,
    ``decoder.block.*``, ``decoder.final_layer_norm``), the way data flows to the loss.
    """
    inner, prefix = _unwrap(model)
    keys = _layer_keys(inner)
    order: list[str] = []
    members: dict[str, list[str]] = {}
    root: list[str] = []
    for name, _ in inner.named_parameters():
        parts = name.split(".")
        # the longest module path of this parameter that is a layer
        key = next((k for i in range(len(parts) - 1, 0, -1) if (k := keys.get(".".join(parts[:i]))) is not None),
                   None)
        if key is None:  # registered on the model itself
            root.append(prefix + name)
            continue
        if key not in members:
            order.append(key)
            members[key] = []
        members[key].append(prefix + name)
    if not order and root:  # a model whose only parameters are its own (e.g. a bare nn.Linear)
        return [("", root)]
    rank = {k: i for i, k in enumerate(keys)}  # data order (see _data_order), not first-parameter order
    order.sort(key=rank.__getitem__)
    layers = [(k, members[k]) for k in order]
    if root and layers:
        layers[0] = (layers[0][0], root + layers[0][1])
    return layers


def layer_names(model: nn.Module) -> list[str]:
    """The names of the model's layers as :func:`freeze_layers` and ``layer_decay`` count them, input to output.

    >>> layer_names(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)))
    ['0', '2']
    >>> layer_names(torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Linear(2, 2))))  # the wrapped model's
    ['0']
    """
    return [name for name, _ in _layers(model)]


def _shown_layers(layers: list[tuple[str, list[str]]]) -> str:
    """The layers for a message: their names, comma-separated; for a model without child layers (its one layer is
    the model itself, named ``''``: a bare ``nn.Linear``, parameters set on the model) its parameters' names, so the
    message never ends in an empty list."""
    if not layers:  # a model without parameters (an activation, a Flatten): nothing to freeze or to group
        return "none: the model has no parameters"
    if [name for name, _ in layers] == [""]:
        params = layers[0][1]
        shown = ", ".join(repr(n) for n in params[:8]) + (", ..." if len(params) > 8 else "")
        return f"none but the model itself (''), whose parameters are {shown}"
    return ", ".join(name for name, _ in layers)


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _name_list(arg: str, value: Any, what: str, example: str) -> tuple[str, ...]:
    """A string or a sequence of strings as a tuple; ``ValueError`` naming ``arg`` otherwise."""
    if isinstance(value, str):
        return (value,)
    # a 0-d tensor/array claims to be iterable, but iterating it raises from inside torch/numpy
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)) or getattr(value, "ndim", None) == 0:
        raise ValueError(f"{arg}={value!r} must be a {what} or a list of them, e.g. {arg}={example}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{arg} entry {item!r} must be a string ({what})")
    return items


def _prefix_hint(arg: str, item: str, names: _Names, choices: list[str]) -> str:
    """The hint after "``item`` matches no parameter name" for a ``freeze=`` / ``head=`` prefix: several names in one
    string (``"body,neck"``, ``"body neck"``: the command line's syntax, one prefix here) -> the list to write, when
    every part is a prefix of the model; a name in the wrong case (``"FC"``: names are case-sensitive) -> that name;
    else the closest choice (a did-you-mean, or ``""``)."""
    parts = [x for x in re.split(r"[,\s]+", item) if x]
    if len(parts) > 1 and all(_hits(names, x) for x in parts):
        return (f" It holds {len(parts)} names in one string: entries are separate strings, e.g. "
                f"{arg}={parts if arg == 'freeze' else tuple(parts)!r}.")
    # a module written as a pattern ("backbone.0.", Ultralytics' and Hugging Face's style, or "backbone.0.*"): the
    # module itself, never the nearest parameter name ('backbone.0.bias' would freeze or spare one bias)
    module = re.sub(r"(\.\*?|\*)+$", "", item.strip())
    if module and module != item.strip() and _hits(names, module):
        return f" Did you mean {module!r}? (a prefix is a module name, without a trailing '.' or wildcard)"
    same = [c for c in dict.fromkeys(choices) if c.lower() == item.strip().lower()]
    if len(same) == 1 and same[0] != item:
        return f" Did you mean {same[0]!r}? (names are case-sensitive)" if item.strip() == item else \
            f" Did you mean {same[0]!r}?"
    return did_you_mean(item, choices)


def _freeze_selection(model: nn.Module, n: Any) -> set[str]:
    """The parameter names ``freeze_layers(model, n)`` would freeze; validates ``n`` and changes nothing."""
    layers = _layers(model)
    names = [name for name, _ in layers]
    selected: set[str] = set()
    n = _as_index(n)
    if isinstance(n, str):
        n = [n]  # one name prefix, as head= takes one
    elif isinstance(n, (range, set, frozenset)):
        n = list(n)
    if isinstance(n, bool) or not isinstance(n, (int, list, tuple)):
        raise ValueError(f"freeze={n!r} must be a number of layers or a list of layer indices/name prefixes")
    if isinstance(n, int):
        if n < 0 or n > len(layers):
            raise ValueError(
                f"freeze={n} must be between 0 and the number of layers ({len(layers)}: {_shown_layers(layers)})"
            )
        for _, params in layers[:n]:
            selected.update(params)
    else:
        all_names = _names(model)
        for item in n:
            item = _as_index(item)
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise ValueError(f"freeze entry {item!r} must be a layer index or a parameter-name prefix")
            if isinstance(item, int):
                if not -len(layers) <= item < len(layers):
                    raise ValueError(
                        f"freeze index {item} is out of range: the model has {len(layers)} "
                        f"layer{'s' if len(layers) != 1 else ''} ({_shown_layers(layers)})"
                    )
                selected.update(layers[item][1])
                continue
            hit = _hits(all_names, item)
            if not hit:
                raise ValueError(
                    f"freeze entry {item!r} matches no parameter name."
                    f"{_prefix_hint('freeze', item, all_names, names + list(all_names.bare.values()))} "
                    f"Layers: {_shown_layers(layers)}"
                )
            selected.update(hit)
    return selected


@named_keywords
def freeze_layers(model: nn.Module, n: int | Sequence[int | str]) -> list[str]:
    """Freeze (``requires_grad=False``) the first ``n`` layers, or the layers/prefixes listed; return what was frozen.

    Layers are the model's top-level child modules that own parameters, input to output (see :func:`layer_names`;
    a top-level ``nn.ModuleList`` counts as its elements, parameters set directly on the model belong to the first
    layer). ``n`` may also be a list of layer indices (Ultralytics' ``freeze=[0, 1, 2]``) and/or parameter-name
    prefixes (``["backbone", "neck.0"]``, or one prefix as a string). Returns the names of the parameters frozen, in
    model order, as ``model.named_parameters()`` gives them. A wrapped model (DataParallel, DDP, ``torch.compile``)
    counts the wrapped model's layers, and takes prefixes with or without the wrapper's ``module.``/``_orig_mod.``;
    a prefix also reaches a weight tied to a parameter of another name. Only ``requires_grad`` changes: a frozen
    BatchNorm in train mode still updates its running statistics (call ``.eval()`` on it if that matters).

    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> freeze_layers(model, 1)
    ['0.weight', '0.bias']
    >>> [p.requires_grad for p in model.parameters()]
    [False, False, True, True]
    """
    selected = _freeze_selection(model, n)
    frozen = []
    for name, p in model.named_parameters():
        if name in selected:
            # an attribute, not requires_grad_(): a lazy module's UninitializedParameter refuses the method but
            # keeps the flag when its first forward pass materializes it
            p.requires_grad = False
            frozen.append(name)
    return frozen


def _is_bias(name: str, p: torch.Tensor) -> bool:
    """A bias: every ``*.bias``, and a 1-D parameter whose own name says bias (``nn.MultiheadAttention``'s
    ``in_proj_bias``, ``nn.GRU``/``nn.LSTM``'s ``bias_ih_l0``) — not the 3-D key/value tokens ``bias_k``/``bias_v``."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "bias" or ("bias" in leaf.lower() and p.dim() == 1)


def _is_parametrized(module: nn.Module) -> bool:
    """Whether ``module`` has a tensor under ``torch.nn.utils.parametrize`` (its ``parametrizations`` ModuleDict)."""
    return isinstance(getattr(module, "parametrizations", None), nn.ModuleDict)


def _model_no_weight_decay(model: nn.Module) -> list[str]:
    """The names (or ``fnmatch`` patterns) a timm-style ``model.no_weight_decay()`` lists, ``[]`` without one."""
    inner, _ = _unwrap(model)
    fn = getattr(inner, "no_weight_decay", None)
    if not callable(fn):
        return []
    try:
        listed = fn()
    except Exception as e:
        raise ValueError(f"{type(inner).__name__}.no_weight_decay() raised {type(e).__name__}: {e}") from e
    if isinstance(listed, str) or not isinstance(listed, Iterable) or not all(isinstance(x, str) for x in listed):
        raise ValueError(f"{type(inner).__name__}.no_weight_decay() returned {listed!r:.80}; it must return a set "
                         "of parameter names, as timm's models do")
    return list(listed)


_REGEX_CHARS = set("\\()|^$+{}")
_WILDCARD_CHARS = set("*?[]")


def _check_no_decay(names: _Names, no_decay: Sequence[str]) -> None:
    """Refuse a ``no_decay`` entry that can only be a mistake: the empty string (a substring of every name: nothing
    would decay), and an entry that matches no parameter name *and* could not be a plain substring of one — a
    comma-separated list in one string, a space left by splitting one, a wildcard or a regular expression (entries
    are case-insensitive substrings). Each of these would otherwise decay what it meant to spare, without a word.
    An entry that does match a name is honoured whatever its characters (a module named ``proj-1``)."""
    for entry in no_decay:
        if entry == "":
            raise ValueError(
                "no_decay entry '' is empty, and the empty string matches every parameter name: nothing would "
                "decay. Drop it; pass no_decay=() to decay everything"
            )
        if _in_a_name(names, entry):
            continue
        # the words the pattern was after: "*.bias" -> 'bias', "(bias|norm)" -> ('bias', 'norm'); an escape (\d, \.)
        # or a character class ([01]) stands for no letters of a name: r"\d+\.bias" and "[01].bias" -> 'bias'
        words = tuple(w for part in entry.split("|")
                      if (w := "".join(c for c in re.sub(r"\\.|\[[^\]]*\]", "", part)
                                       if c not in _REGEX_CHARS | _WILDCARD_CHARS).strip(" .")))
        plain = (repr(words[0]) if len(words) == 1 else f"no_decay={words!r}" if words
                 else "a part of a parameter name, such as 'bias'")
        if "," in entry:
            parts = tuple(x.strip() for x in entry.split(",") if x.strip())
            why = f"holds a comma: entries are separate strings, e.g. no_decay={parts!r}"
        elif _REGEX_CHARS & set(entry):
            why = f"uses regular expression syntax: entries are case-insensitive substrings; write {plain}"
        elif _WILDCARD_CHARS & set(entry):
            why = f"has a wildcard: entries are case-insensitive substrings, not patterns; write {plain}"
        elif " " in entry.strip():  # "layer norm" -> 'layer_norm' where the model has it; "bias norm" -> two entries
            spelt = next((j.join(entry.split()) for j in ("_", "") if _in_a_name(names, j.join(entry.split()))), None)
            fix = repr(spelt) if spelt is not None else f"no_decay={tuple(entry.split())!r} (one string per name)"
            why = f"has a space (parameter names have none); write {fix}"
        elif entry != entry.strip():
            why = f"has a space (parameter names have none); write {entry.strip()!r}"
        else:
            continue  # a plain name this model lacks: fine (one no_decay list is often used for many models)
        raise ValueError(f"no_decay entry {entry!r} matches no parameter name and {why}")


def _in_a_name(names: _Names, text: str) -> bool:
    """Whether ``text`` is a case-insensitive substring of any name of any parameter (as ``no_decay`` matches)."""
    low = text.lower()
    return any(_has_pattern(names, n, low) for n in names.real)


def _has_pattern(names: _Names, real: str, low: str) -> bool:
    """Whether the lower-case ``no_decay`` entry ``low`` is in a name of the parameter ``real``: any of its bare
    names (without a wrapper's segment), or its real name when the entry itself spells a wrapper's segment
    (``"module.fc.weight"``) — ``"mod"`` must not match every name of a wrapped model through ``_orig_mod.``."""
    if any(low in a.lower() for a in names.aliases[real]):
        return True
    return low in real.lower() and any(f"{w.lower()}." in low for w in names.wrapped)


def _no_decay_names(model: nn.Module, names: _Names, no_decay: Iterable[str]) -> set[str]:
    """Parameter names that get no weight decay: name patterns (on any name of a tensor), every parameter of a
    norm layer, and the names a timm-style ``model.no_weight_decay()`` lists (unless ``no_decay`` is empty)."""
    patterns = [p.lower() for p in no_decay]
    out = {n for n in names.real if any(_has_pattern(names, n, p) for p in patterns)}
    if patterns:
        listed = _model_no_weight_decay(model)
        out.update(n for n in names.real for a in names.aliases[n] for x in listed
                   if _matches(a, x) or fnmatch.fnmatchcase(a, x))
    if "norm" in patterns:
        # a norm layer's own parameters, and the originals of its parametrized ones (held in its "parametrizations")
        norm_ids = {id(p) for mod in model.modules() if _is_norm_layer(mod)
                    for p in (*mod.parameters(recurse=False),
                              *(mod.parametrizations.parameters() if _is_parametrized(mod) else ()))}
        out.update(n for n, p in model.named_parameters() if id(p) in norm_ids)
    return out


#: The default ``head=`` of :func:`param_groups`: the top-level names models give a task head — torchvision's ``fc``,
#: timm's ``head``, and the freshly initialised heads of Hugging Face's task models: ``classifier`` (BERT, RoBERTa,
#: ViT, ...) with DistilBERT's ``pre_classifier``, ``score`` (GPT-2, Llama, ... ``ForSequenceClassification``),
#: ``classification_head`` (BART, T5) and ``qa_outputs`` (``ForQuestionAnswering``). A causal LM's ``lm_head`` is
#: not among them: it is pretrained (often tied to the input embedding); pass ``head="lm_head"`` for it.
DEFAULT_HEAD: tuple[str, ...] = ("head", "fc", "classifier", "pre_classifier", "score", "classification_head",
                                 "qa_outputs")


def _held(exclude: Any) -> set[int]:
    """The ids of the tensors ``exclude=`` holds: an optimizer's parameters, or an iterable of tensors."""
    if exclude is None:
        return set()
    if isinstance(exclude, torch.optim.Optimizer):
        return {id(p) for g in exclude.param_groups for p in g["params"]}
    if isinstance(exclude, torch.Tensor) or isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
        raise ValueError(f"exclude={type(exclude).__name__} must be an optimizer (its parameters are left out) or an "
                         "iterable of parameter tensors")
    items = list(exclude)
    bad = next((x for x in items if not isinstance(x, torch.Tensor)), None)
    if bad is not None:  # a param group dict, a name: say what is taken
        raise ValueError(f"exclude= holds a {type(bad).__name__}, not a tensor: pass the optimizer itself, or its "
                         "parameters (model.head.parameters())")
    return {id(p) for p in items}


def _refuse_flat_parameters(model: nn.Module, *, weight_decay: float, no_decay: Any, backbone_lr_scale: float | None,
                            layer_decay: float | None, freeze: Any) -> None:
    """Refuse to group by name a model holding FSDP1 flat parameters (``FullyShardedDataParallel`` with
    ``use_orig_params=False``): one flat parameter holds a whole unit's weights, biases and norms under one name
    (``_fsdp_wrapped_module._flat_param``), so name rules would silently miss what it holds (every bias and norm
    decayed, no head found). A grouping that reads no name (no decay, no LR levels, nothing frozen) is left alone."""
    flat = [n for n, p in model.named_parameters()
            if type(p).__name__ == "FlatParameter" or getattr(p, "_is_flat_param", False)]
    if not flat:
        return
    asked = [what for what, on in (
        (f"weight_decay={weight_decay:g} with no_decay={no_decay!r} (biases and norms spared)",
         weight_decay > 0 and bool(no_decay)),
        (f"backbone_lr_scale={backbone_lr_scale!r} (the head told from the backbone)", backbone_lr_scale is not None),
        (f"layer_decay={layer_decay!r} (layers told apart)", layer_decay is not None),
        (f"freeze={freeze!r} (layers frozen by name)", freeze is not None),
    ) if on]
    if not asked:
        return
    shown = ", ".join(repr(n) for n in flat[:3]) + (", ..." if len(flat) > 3 else "")
    raise ValueError(
        f"param_groups: the model's parameters {shown} are FSDP1 flat parameters (FullyShardedDataParallel with "
        "use_orig_params=False): each holds the weights, biases and norms of a whole FSDP unit under one name, so "
        f"{'; '.join(asked)} cannot be applied inside it. Wrap with FullyShardedDataParallel(..., "
        "use_orig_params=True) — param_groups then groups the original parameters by their own names — or use "
        "FSDP2 (torch.distributed.fsdp.fully_shard)"
    )


@named_keywords
def param_groups(
    model: nn.Module,
    lr: float,
    *,
    weight_decay: float = 0.0,
    backbone_lr_scale: float | None = None,
    head: Sequence[str] = DEFAULT_HEAD,
    layer_decay: float | None = None,
    layer_id_fn: Callable[[str], int] | None = None,
    no_decay: Sequence[str] = ("bias", "norm"),
    freeze: int | Sequence[int | str] | None = None,
    exclude: torch.optim.Optimizer | Iterable[torch.Tensor] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for fine-tuning: discriminative LRs, no decay on biases/norms, bias groups flagged.

    Every trainable parameter lands in exactly one group; frozen ones (``requires_grad=False``, or frozen here by
    ``freeze=``, see :func:`freeze_layers`) in none; no group is empty. Each group is a dict with ``params``,
    ``lr = lr * lr_scale``, ``lr_scale`` (its ratio to the peak ``lr``), ``weight_decay``, ``name``
    (``"<level>/<kind>"``) and ``is_bias`` (``True`` for the bias groups, where ``warmup_bias_lr`` applies).
    Pass the weight decay here, not to the optimizer: every group carries its own ``lr`` and ``weight_decay`` (0
    unless ``weight_decay=`` is given), and torch uses a group's own values over the optimizer's arguments, so
    ``AdamW(param_groups(model, 1e-3), weight_decay=0.05)`` decays nothing; write
    ``AdamW(param_groups(model, 1e-3, weight_decay=0.05))``.

    LR levels (at most one of the two options):

    * ``backbone_lr_scale=s``: parameters under a ``head`` prefix (a top-level name such as ``"fc"`` or a dotted
      prefix such as ``"head.fc"``; default :data:`DEFAULT_HEAD`, the names torchvision, timm and Hugging Face's
      task models give their freshly initialised heads) train at ``lr``; the rest (the pretrained backbone) at
      ``lr * s``.
    * ``layer_decay=d`` (BEiT/timm layer-wise decay): layers are numbered ``0 .. L`` from input to output — the
      model's layers as :func:`layer_names` lists them (the blocks of an ``nn.ModuleList`` or
      ``nn.TransformerEncoder`` each count), or ``layer_id_fn(param_name) -> int`` — and layer ``i`` trains at
      ``lr * d ** (L - i)``: the output layer at the peak, each layer below ``d`` times slower. A tied weight is in
      the layer of its first name (a tied input embedding / LM head: the embedding's, the lowest).

    Kinds: ``decay`` (weights, at ``weight_decay``), ``no_decay`` (parameters of normalization layers —
    BatchNorm/LayerNorm/GroupNorm/InstanceNorm/RMSNorm found by module type when ``"norm"`` is in ``no_decay``, and
    an architecture's own norm classes by a class name ending in ``Norm`` (transformers' ``LlamaRMSNorm``,
    ``T5LayerNorm``, ``ImageGPTLayerNorm`` under any attribute name) —
    parameters whose name contains a ``no_decay`` pattern, and those a timm-style ``model.no_weight_decay()`` lists
    — ViT's ``{"cls_token", "pos_embed"}`` — at decay 0) and ``bias`` (every ``*.bias`` and 1-D ``*bias*`` such as
    ``nn.MultiheadAttention``'s ``in_proj_bias`` or ``nn.LSTM``'s ``bias_ih_l0``, at decay 0 when ``"bias"`` is in
    ``no_decay``; when it is not, the biases decay except those ``no_decay`` spares otherwise — a norm layer's bias
    under ``"norm"``, a bias matching another pattern — which form a ``bias_no_decay`` group, ``is_bias`` too, at
    decay 0). A bare ``cls_token``/``pos_embed`` of a model without ``no_weight_decay()`` is a weight and
    decays (add its name to ``no_decay`` to spare it). Pass ``no_decay=()`` to decay everything.

    A wrapped model (``nn.DataParallel``, DDP, ``torch.compile``) is grouped as the model it wraps: layers, ``head``
    and ``freeze`` prefixes and ``layer_id_fn`` use the names without ``module.``/``_orig_mod.``. A tensor shared
    under two names (tied input/output embeddings) is in one group only; with ``backbone_lr_scale`` it trains with
    the head when any of its names is under ``head``.

    A parametrized tensor (``weight_norm``, ``spectral_norm``, ``torch.nn.utils.parametrize``) is grouped as the
    tensor it stands for: ``0.parametrizations.weight.original0``/``original1`` are ``0.weight`` (its layer, its
    decay; ``freeze``/``head`` prefixes may name ``0.weight``), a parametrized ``bias`` is a bias, and a norm
    layer's parametrized weight is a norm parameter. ``weight_norm``'s magnitude ``original0`` decays with the
    direction, as timm's ``param_groups_weight_decay`` (it is 2-D) and transformers' ``Trainer`` (neither a bias nor
    a LayerNorm's) decay it; add ``"original0"`` to ``no_decay`` to spare it.

    Torch optimizers keep the extra keys, and schedules built with :mod:`lrkit.schedules` or torch's multiplicative
    schedulers (``LambdaLR``, ``CosineAnnealingLR``, ``StepLR``, ...) multiply each group's own LR, so the ratios
    survive warmup, decay, the LR finder and ``lr0="auto"``. Torch's ``OneCycleLR`` and ``CyclicLR`` given one
    ``max_lr`` set every group to it: pass one per group (``max_lr=[g["lr"] for g in groups]``).

    ``exclude=optimizer`` (or an iterable of tensors) leaves out the parameters it already holds, for gradual
    unfreezing (ULMFiT, fastai's ``unfreeze()``): train the head first, then unfreeze the backbone and add only its
    groups with ``optimizer.add_param_group`` — levels, scales and kinds are those the whole model would get, so a
    backbone added later trains at ``lr * backbone_lr_scale`` (an lrkit schedule adopts groups added mid-run). A
    call that leaves nothing to add is a ``ValueError``.

    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    >>> net[0].requires_grad_(False)  # doctest: +ELLIPSIS
    Linear(...)
    >>> opt = torch.optim.AdamW(param_groups(net, 1e-3, layer_decay=0.5))          # the head alone at first
    >>> _ = net[0].requires_grad_(True)                                               # later: unfreeze the rest
    >>> for g in param_groups(net, 1e-3, layer_decay=0.5, exclude=opt):
    ...     opt.add_param_group(g)
    >>> [(g["name"], g["lr_scale"]) for g in opt.param_groups]
    [('layer1/decay', 1.0), ('layer1/bias', 1.0), ('layer0/decay', 0.5), ('layer0/bias', 0.5)]

    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    >>> groups = param_groups(model, 1e-3, weight_decay=0.05, layer_decay=0.5)
    >>> [(g["name"], g["lr_scale"], g["weight_decay"]) for g in groups]  # doctest: +NORMALIZE_WHITESPACE
    [('layer0/decay', 0.25, 0.05), ('layer0/bias', 0.25, 0.0), ('layer1/no_decay', 0.5, 0.0),
     ('layer1/bias', 0.5, 0.0), ('layer2/decay', 1.0, 0.05), ('layer2/bias', 1.0, 0.0)]
    >>> optimizer = torch.optim.AdamW(groups)
    """
    lr = check_positive("lr", lr)
    weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
    if backbone_lr_scale is not None and layer_decay is not None:
        raise ValueError(
            f"backbone_lr_scale={backbone_lr_scale} and layer_decay={layer_decay} are mutually exclusive: "
            "use backbone_lr_scale for a backbone/head split or layer_decay for layer-wise decay, not both"
        )
    for opt_name, value in (("backbone_lr_scale", backbone_lr_scale), ("layer_decay", layer_decay)):
        if value is not None:
            v = check_positive(opt_name, value)
            if v > 1:
                raise ValueError(f"{opt_name}={value} must be in (0, 1]: it is the ratio to the peak lr={lr}")
    if layer_id_fn is not None and layer_decay is None:
        raise ValueError("layer_id_fn is only used with layer_decay=; pass layer_decay (e.g. 0.75) as well")
    if layer_id_fn is not None and not callable(layer_id_fn):
        raise ValueError(f"layer_id_fn={layer_id_fn!r} must be a function param_name -> layer index (int >= 0)")
    names = _names(model)  # also checks that model is a module
    _refuse_flat_parameters(model, weight_decay=weight_decay, no_decay=no_decay, backbone_lr_scale=backbone_lr_scale,
                            layer_decay=layer_decay, freeze=freeze)
    # messages show head= as given: head='fcc' (lrkit train head=fcc), not the tuple it becomes
    given_default_head = head is DEFAULT_HEAD
    head_shown = repr(head) if isinstance(head, str) else None
    head = _name_list("head", head, "parameter-name prefix", "('fc',)")
    head_shown = head_shown or repr(tuple(head))
    if backbone_lr_scale is None and not given_default_head:
        # as layer_id_fn= without layer_decay=: a head= that nothing reads (a typo included) is not taken silently
        raise ValueError(f"head={head_shown} names the head for backbone_lr_scale, which is not set: pass "
                         "backbone_lr_scale=... (e.g. 0.1: the head at lr, the rest at lr * 0.1) as well, or leave "
                         "head= out")
    no_decay = _name_list("no_decay", no_decay, "name pattern", "('bias', 'norm'), or () to decay everything")
    _check_no_decay(names, no_decay)
    to_freeze = _freeze_selection(model, freeze) if freeze is not None else set()

    named = [(n, p) for n, p in model.named_parameters()]
    trainable = [(n, p) for n, p in named if p.requires_grad and n not in to_freeze]
    if not trainable:
        if not named:
            raise ValueError(f"the model ({type(model).__name__}) has no parameters: nothing to optimize")
        if to_freeze and any(p.requires_grad for _, p in named):
            raise ValueError(f"freeze={freeze!r} would freeze every trainable parameter: nothing would be left to "
                             f"optimize (layers: {_shown_layers(_layers(model))})")
        raise ValueError("the model has no trainable parameters (all have requires_grad=False); nothing to optimize")

    # level of every trainable parameter: (sort key, level name, lr_scale)
    levels: dict[str, tuple[int, str, float]] = {}
    if backbone_lr_scale is not None:
        heads = {n for h in head for n in _hits(names, h)}  # a weight tied to the head trains with the head
        # the default head is a list of candidates (any may be absent); a head= you name is checked name by name,
        # so a typo beside a real name ('head,haed') is not trained silently at the backbone's LR
        missing = [] if tuple(head) == DEFAULT_HEAD else [h for h in head if not _hits(names, h)]
        if not heads or missing:
            top_layers = _layers(model)
            # a model without child layers (a bare nn.Linear): its parameters are what head= can name
            tops = [name for name, _ in top_layers if name] or list(names.bare.values())
            # a tied head (GPT-2's, T5's lm_head) is no layer of its own: offer the modules of the other names too
            tied = [a.rsplit(".", 1)[0] for n in names.real for a in names.aliases[n]
                    if "." in a and _unparametrized(a) == a
                    and a not in (names.bare[n], _unparametrized(names.bare[n]))]
            what = (f"head={head_shown} matches no parameter of the model, so backbone_lr_scale has no head to "
                    "spare." if not heads else f"head entry {missing[0]!r} (of head={head_shown}) matches no "
                    "parameter of the model.")
            raise ValueError(
                f"{what}{_prefix_hint('head', missing[0] if missing else next(iter(head), ''), names, tops + tied)}"
                " Pass head= "
                f"with the head's name; layers: {_shown_layers(top_layers)}"
                + (f" (tied to them: {', '.join(dict.fromkeys(tied))})" if tied else "")
            )
        if not any(n not in heads for n, _ in named):  # a backbone frozen for now is fine (gradual unfreezing)
            raise ValueError(f"head={head_shown} covers every parameter of the model: there is no backbone to scale")
        if not any(n in heads for n, _ in trainable):  # the mirror image: every head parameter is frozen
            frozen_head = [names.bare[n] for n in names.real if n in heads]
            shown = ", ".join(repr(x) for x in frozen_head[:4]) + (", ..." if len(frozen_head) > 4 else "")
            by_freeze = f"; frozen by freeze={freeze!r}" if heads & to_freeze else ""
            raise ValueError(
                f"head={head_shown} covers only frozen parameters ({shown}{by_freeze}): with "
                f"backbone_lr_scale={backbone_lr_scale} every trainable parameter would train at lr * "
                f"{backbone_lr_scale} and none at lr={lr:g}. Unfreeze the head, or drop backbone_lr_scale and pass "
                "the backbone's LR as lr"
            )
        for n, _ in trainable:
            levels[n] = (1, "head", 1.0) if n in heads else (0, "backbone", float(backbone_lr_scale))
    elif layer_decay is not None:
        if layer_id_fn is not None:
            ids: dict[str, int] = {}
            for n, _ in named:
                bare = names.bare[n]  # the wrapped model's name: no "module." / "_orig_mod." prefix
                try:
                    i = _as_index(layer_id_fn(bare))
                except Exception as e:
                    raise ValueError(f"layer_id_fn({bare!r}) raised {type(e).__name__}: {e}") from e
                if isinstance(i, bool) or not isinstance(i, int) or i < 0:
                    raise ValueError(f"layer_id_fn({bare!r}) returned {i!r}; it must return an integer >= 0")
                ids[n] = i
        else:
            ids = {n: i for i, (_, params) in enumerate(_layers(model)) for n in params}
        top = max(ids.values())
        for n, _ in trainable:
            try:
                scale = float(layer_decay) ** (top - ids[n])
            except OverflowError:  # a layer_id_fn numbering beyond a float: d < 1 underflows (refused below)
                scale = 1.0 if float(layer_decay) == 1.0 else 0.0
            levels[n] = (ids[n], f"layer{ids[n]}", scale)
    else:
        levels = {n: (0, "all", 1.0) for n, _ in trainable}
    # a ratio so small that the group's LR underflows a float would leave its parameters silently untrained (an
    # LR of 0.0, and an lr_scale of 0 that every schedule and the finder keep): refused, as scale_lr refuses an
    # underflow, before anything is frozen
    for n, _ in trainable:
        order, level, scale = levels[n]
        if scale * lr == 0.0:
            ratio = (f"layer_decay={layer_decay!r} ** {_brief(max(ids.values()) - ids[n])} (layer "
                     f"{_brief(ids[n])} of 0..{_brief(max(ids.values()))})" if layer_decay is not None
                     else f"backbone_lr_scale={backbone_lr_scale!r}")
            fix = ("layer_decay (0.65-0.9 is typical), or number fewer layers with layer_id_fn"
                   if layer_decay is not None else "backbone_lr_scale")
            raise ValueError(
                f"param_groups: the {level} group's LR, lr={lr:g} x {ratio}, underflows a float to 0.0, so "
                f"{names.bare[n]!r} and the rest of {level} would not train at all. Raise {fix}, or freeze those "
                "parameters (freeze=) if they are not meant to train"
            )

    held = _held(exclude)
    if held:
        added = [(n, p) for n, p in trainable if id(p) not in held]
        if not added:
            raise ValueError(f"exclude= holds every trainable parameter of the model ({len(trainable)} tensors): "
                             "there is nothing to add (unfreeze layers first, e.g. model.requires_grad_(True))")
        trainable = added
    nd = _no_decay_names(model, names, no_decay)
    decay_bias = "bias" not in [p.lower() for p in no_decay]
    kinds = ("decay", "no_decay", "bias", "bias_no_decay")
    buckets: dict[tuple[int, str, int], dict[str, Any]] = {}
    for n, p in trainable:
        order, level, scale = levels[n]
        if _is_bias(_unparametrized(names.bare[n]), p):  # a parametrized bias too
            # biases decay only when "bias" is not in no_decay, and even then not a bias that no_decay names
            # otherwise (a norm layer's bias under "norm", a pattern, model.no_weight_decay()): "bias_no_decay"
            kind = "bias_no_decay" if decay_bias and n in nd else "bias"
        else:
            kind = "no_decay" if n in nd else "decay"
        key = (order, level, kinds.index(kind))
        if key not in buckets:
            wd = weight_decay if kind == "decay" or (kind == "bias" and decay_bias) else 0.0
            buckets[key] = {
                "params": [],
                "lr": lr * scale,
                "lr_scale": scale,
                "weight_decay": wd,
                "name": f"{level}/{kind}",
                "is_bias": kind.startswith("bias"),
            }
        buckets[key]["params"].append(p)
    if to_freeze:  # only now that every argument has been checked: a failed call changes nothing
        freeze_layers(model, freeze)  # type: ignore[arg-type]
    return [buckets[k] for k in sorted(buckets)]
