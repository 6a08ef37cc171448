"""Built-in models for :func:`lrkit.train`, sized from the data, and ``package.module:factory`` models.

Every built-in keeps its last layer in a child called ``head`` so ``backbone_lr_scale=`` has a head to spare.

======== =========================================================== ========================================
name     architecture                                                data
======== =========================================================== ========================================
linear   Flatten → Linear (for text: a bigram table, Embedding(V, V)) tabular, images, text
mlp      Flatten → Linear(h) → ReLU → Linear(h) → ReLU → head         tabular, images
cnn      2 × (Conv3x3 → BatchNorm → ReLU) → AvgPool(4x4) → MLP head   images (C, H, W) or (H, W), e.g. digits
charlm   token + position embeddings → 2 pre-norm causal Transformer  text (character-level LM)
         blocks (d=64, 4 heads) → LayerNorm → head
======== =========================================================== ========================================

>>> import torch
>>> from lrkit.train.data import load_data
>>> m = build_model("mlp", load_data("iris").info)
>>> tuple(m(torch.zeros(2, 4)).shape)
(2, 3)
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrkit._utils import unknown_name_error
from lrkit.train.data import DataInfo

__all__ = ["BUILTIN_MODELS", "MLP", "CharLM", "ConvNet", "Linear", "ModelInfo", "build_model", "default_model_name",
           "fitting_models"]


def _in_features(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape))


def _rows(x: torch.Tensor) -> torch.Tensor:
    """One row of features per sample: ``(B, ...)`` flattened to ``(B, F)``; a ``(B,)`` batch of scalar samples (input
    shape ``()``, sized as one feature) becomes ``(B, 1)`` rather than failing in ``flatten(1)``."""
    return x.unsqueeze(1) if x.ndim == 1 else x.flatten(1)


def _numeric(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Integer or boolean features (a user's ``int64`` counts, ``bool`` flags, ``uint8`` pixels) as values in the
    dtype of ``like`` (the model's weights) for the built-in ``linear``/``mlp``/``cnn``, which read their inputs as
    numbers: torch refused them ("mat1 and mat2 must have the same dtype, but got Long and Float"). Floating inputs
    are left as they are (lrkit.train casts those to the model's dtype).

    >>> _numeric(torch.tensor([1, 0]), torch.zeros(1)).dtype, _numeric(torch.tensor([True]), torch.zeros(1)).tolist()
    (torch.float32, [1.0])
    """
    if x.is_floating_point() or x.is_complex():
        return x
    return x.to(like.dtype)


class Linear(nn.Module):
    """Flatten, then one linear layer (multinomial logistic / linear regression).

    A ``(B,)`` batch (data whose samples are scalars, input shape ``()``) is read as ``(B, 1)``.

    >>> tuple(Linear(4, 3)(torch.zeros(2, 4)).shape)
    (2, 3)
    >>> tuple(Linear(1, 2)(torch.zeros(5)).shape)
    (5, 2)
    """

    def __init__(self, in_features: int, num_outputs: int) -> None:
        super().__init__()
        self.head = nn.Linear(in_features, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(_rows(_numeric(x, self.head.weight)))


class Bigram(nn.Module):
    """A bigram character model: logits of the next token from a table row (``linear`` for text).

    >>> tuple(Bigram(5)(torch.zeros(2, 7, dtype=torch.long)).shape)
    (2, 7, 5)
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.head = nn.Embedding(vocab_size, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class MLP(nn.Module):
    """Two hidden ReLU layers of width ``hidden`` and a linear head (a ``(B,)`` batch of scalars is ``(B, 1)``).

    >>> tuple(MLP(4, 3, hidden=8)(torch.zeros(2, 4)).shape)
    (2, 3)
    """

    def __init__(self, in_features: int, num_outputs: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(_rows(_numeric(x, self.head.weight))))


class ConvNet(nn.Module):
    """A small CNN for ``(C, H, W)`` inputs — or ``(H, W)`` grayscale images, read as one channel — two
    conv-BN-ReLU blocks, 4x4 average pooling, an MLP head.

    >>> tuple(ConvNet((1, 8, 8), 10)(torch.zeros(2, 1, 8, 8)).shape)
    (2, 10)
    >>> tuple(ConvNet((8, 8), 3)(torch.zeros(2, 8, 8)).shape)
    (2, 3)
    """

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, width: int = 16) -> None:
        super().__init__()
        if len(input_shape) not in (2, 3):
            raise ValueError(f"ConvNet needs input_shape (C, H, W) or (H, W), got {tuple(input_shape)}")
        self.add_channel = len(input_shape) == 2  # (H, W): a batch (B, H, W) gets its channel axis in forward
        c = 1 if self.add_channel else input_shape[0]
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(2 * width * 16, 64), nn.ReLU(),
        )
        self.head = nn.Linear(64, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _numeric(x, self.head.weight)  # uint8 pixels, as torchvision's PILToTensor gives them
        if self.add_channel and x.ndim == 3:
            x = x.unsqueeze(1)
        return self.head(self.body(x))


class CharLM(nn.Module):
    """A small causal Transformer over characters: ``(B, T)`` token ids → ``(B, T, vocab)`` next-token logits.

    Pre-norm blocks (``nn.TransformerEncoderLayer(norm_first=True)``) with a causal mask, learned positions.

    >>> tuple(CharLM(11, seq_len=16)(torch.zeros(2, 16, dtype=torch.long)).shape)
    (2, 16, 11)
    """

    def __init__(self, vocab_size: int, seq_len: int, d_model: int = 64, n_head: int = 4, n_layer: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_head, 4 * d_model, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.ModuleList([_clone_layer(layer) for _ in range(n_layer)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq_len), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.seq_len:
            raise ValueError(f"input length {t} exceeds the model's seq_len={self.seq_len}")
        h = self.tok(x) + self.pos(torch.arange(t, device=x.device))
        mask = self.mask[:t, :t]
        for block in self.blocks:
            h = block(h, src_mask=mask, is_causal=True)
        return self.head(self.norm(h))


def _import_factory_module(spec: str, module_name: str, *, key: str = "model") -> Any:
    """Import ``module_name``: a dotted module name, found on ``sys.path`` or else in the working directory (the
    ``lrkit`` console script does not put the working directory on ``sys.path``, as ``python -m`` does), or a
    ``.py`` file path. Errors name ``key={spec!r}`` (``model=``, ``optimizer=``)."""
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"{key}={spec!r}: {module_name!r}: no such file")
        name = f"_lrkit_factory_{abs(hash(str(path))):x}_{path.stem}"
        file_spec = importlib.util.spec_from_file_location(name, path)
        if file_spec is None or file_spec.loader is None:
            raise ValueError(f"{key}={spec!r}: cannot import {module_name!r} as a Python file")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[name] = module  # (dataclasses and pickling look a class's module up here)
        with _on_sys_path(path.parent):  # its own `import sibling` statements resolve from its folder
            try:
                file_spec.loader.exec_module(module)
            except SystemExit as e:
                sys.modules.pop(name, None)
                raise _import_exited(spec, module_name, e, key=key) from e
            except Exception as e:
                sys.modules.pop(name, None)
                raise ValueError(f"{key}={spec!r}: importing {module_name!r} raised {type(e).__name__}: {e}") from e
        return module
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        top = module_name.split(".")[0]
        cwd = Path.cwd()
        in_cwd = (cwd / top).is_dir() or (cwd / f"{top}.py").is_file()
        if e.name != top or not in_cwd or str(cwd) in sys.path:
            raise ValueError(f"{key}={spec!r}: cannot import {module_name!r} ({e})") from None
        with _on_sys_path(cwd):
            try:
                return importlib.import_module(module_name)
            except SystemExit as e2:
                raise _import_exited(spec, module_name, e2, key=key) from e2
            except Exception as e2:
                raise ValueError(f"{key}={spec!r}: importing {module_name!r} raised {type(e2).__name__}: "
                                 f"{e2}") from e2
    except SystemExit as e:
        raise _import_exited(spec, module_name, e, key=key) from e
    except Exception as e:  # a SyntaxError or any error raised while the user's module runs
        raise ValueError(f"{key}={spec!r}: importing {module_name!r} raised {type(e).__name__}: {e}") from e


def resolve_import_spec(spec: str, module_name: str, attr: str, *, key: str = "model", kind: str = "factory",
                        offer: Callable[[Any], bool] = callable) -> Any:
    """The object ``attr`` (dotted: ``Class.method``) of the module ``module_name`` named by ``key=spec``
    (``"package.module:attr"``, split by the caller), imported as :func:`build_model` imports a factory's module.

    A missing name is a ``ValueError`` naming the closest public name one level down among those ``offer`` accepts
    (``kind`` says what they are: ``"unknown factory in mymod: 'mak'. Did you mean 'make'?"``).

    >>> resolve_import_spec("torch.optim:Adagrad", "torch.optim", "Adagrad", key="optimizer", kind="class").__name__
    'Adagrad'
    """
    obj: Any = _import_factory_module(spec, module_name, key=key)
    found: list[str] = []  # the dotted parts resolved so far ('module:Class.method', as entry points allow)
    for part in attr.split("."):
        if not hasattr(obj, part):
            # the names one level down from what was found: 'Zoo.smal' is closest to 'Zoo.small', not to a top name
            prefix = "".join(f"{p}." for p in found)
            public = [prefix + n for n in dir(obj) if not n.startswith("_") and offer(getattr(obj, n, None))]
            raise unknown_name_error(f"{kind} in {module_name}:", attr, public)
        obj = getattr(obj, part)
        found.append(part)
    return obj


def _import_exited(spec: str, module_name: str, e: SystemExit, *, key: str = "model") -> ValueError:
    """``sys.exit()`` while the user's module is imported (often an ``argparse`` at module level, reading lrkit's own
    arguments) is a failed import, not the end of lrkit: without this the CLI exits with the module's code, silently.
    """
    return ValueError(f"{key}={spec!r}: importing {module_name!r} exited (SystemExit({e.code!r})); a module that "
                      "parses arguments or calls sys.exit() should do so under `if __name__ == \"__main__\":`")


@contextlib.contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` for the block, removed again afterwards."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry in sys.path:
            sys.path.remove(entry)


def _clone_layer(layer: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(layer)


# ------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ModelInfo:
    """A registry entry: name, builder from :class:`DataInfo`, the tasks it fits, one-line description."""

    name: str
    build: Callable[[DataInfo], nn.Module]
    tasks: tuple[str, ...]
    description: str


def _need(info: DataInfo, what: str) -> tuple[tuple[int, ...], int]:
    if info.task == "lm" and info.input_shape is not None and info.num_outputs is None:
        raise ValueError(
            f"cannot size model={what!r} from data {info.name!r}: its vocabulary size (largest token id + 1) is "
            "unknown; pass an nn.Module as model= (or a TensorDataset of token ids, whose vocabulary lrkit counts)"
        )
    if info.input_shape is None or info.num_outputs is None:
        raise ValueError(
            f"cannot size model={what!r} from data {info.name!r} (unknown input shape or output count); pass an "
            "nn.Module as model="
        )
    return info.input_shape, info.num_outputs


def _linear(info: DataInfo) -> nn.Module:
    shape, n_out = _need(info, "linear")
    if info.task == "lm":
        return Bigram(n_out)
    return Linear(_in_features(shape), n_out)


def _mlp(info: DataInfo) -> nn.Module:
    shape, n_out = _need(info, "mlp")
    n = _in_features(shape)
    hidden = int(min(256, max(32, 2 ** math.ceil(math.log2(max(2 * n, 2))))))  # ~2x the inputs, 32..256
    return MLP(n, n_out, hidden=hidden)


def _cnn(info: DataInfo) -> nn.Module:
    shape, n_out = _need(info, "cnn")
    if len(shape) not in (2, 3):
        raise ValueError(
            f"model='cnn' needs image-shaped inputs (C, H, W) or (H, W); data {info.name!r} has samples of shape "
            f"{shape}. Use model='mlp' or 'linear'{_cnn_hint(info)}"
        )
    return ConvNet(shape, n_out)


def _cnn_hint(info: DataInfo) -> str:
    """Where image-shaped data can come from, for the error on flat samples: an ``.npz`` keeps only a 4-D ``x``."""
    if info.source == "npz":
        return (" (an .npz keeps x as images only when it has shape (N, C, H, W): save grayscale (N, H, W) images "
                "as x[:, None])")
    return " (or data='digits' for 8x8 images)"


def _charlm(info: DataInfo) -> nn.Module:
    shape, n_out = _need(info, "charlm")
    return CharLM(n_out, seq_len=info.seq_len or shape[0])


BUILTIN_MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("linear", _linear, ("classification", "regression", "lm"),
                  "one linear layer (a bigram table for text)"),
        ModelInfo("mlp", _mlp, ("classification", "regression"), "2 hidden ReLU layers, width ~2x the inputs"),
        ModelInfo("cnn", _cnn, ("classification", "regression"), "2 conv-BN-ReLU blocks + MLP head, for images"),
        ModelInfo("charlm", _charlm, ("lm",), "small causal Transformer (2 blocks, d=64) for character LM"),
    )
}


def default_model_name(info: DataInfo) -> str:
    """The built-in used when ``model=None``: ``charlm`` for text, ``cnn`` for images, else ``mlp``."""
    if info.task == "lm":
        return "charlm"
    if info.input_shape is not None and len(info.input_shape) == 3:
        return "cnn"
    return "mlp"


def build_model(spec: str | nn.Module | None, info: DataInfo) -> nn.Module:
    """A model from a built-in name, ``package.module:factory``, or an ``nn.Module`` (returned as is).

    The factory's module is imported from ``sys.path`` or else the working directory (so ``lrkit train
    model=mymodels:make`` finds ``./mymodels.py``); ``path/to/file.py:factory`` loads a file; ``module:Class.method``
    reaches a nested attribute. A factory is called with whichever of these keywords it accepts: ``in_features``,
    ``input_shape``, ``num_outputs``, ``num_classes``, ``vocab_size``, ``seq_len``, ``task``.
    """
    if isinstance(spec, nn.Module):
        return spec
    if spec is not None and not isinstance(spec, str):
        raise ValueError(f"model={spec!r} must be a built-in model name ({', '.join(BUILTIN_MODELS)}), "
                         "'package.module:factory', or a torch nn.Module instance")
    name = spec.strip() if spec else ""
    name = name or default_model_name(info)
    if ":" in name:
        return _from_factory(name, info)
    entry = BUILTIN_MODELS.get(name.lower())
    if entry is None:
        error = unknown_name_error("model", name, [*BUILTIN_MODELS, "package.module:factory"])
        module, dot, attr = name.rpartition(".")
        if name.endswith(".py"):  # a file without its factory: 'mymodels.py' for 'mymodels.py:make'
            raise ValueError(f"{error}; name the factory in the file after a colon: model='{name}:make' for "
                             "its function make(...)") from None
        if (dot and module and attr.isidentifier() and all(p.isidentifier() for p in module.split("."))
                and "Did you mean" not in str(error)):
            raise ValueError(f"{error}; a factory is written with a colon before its name: "  # 'mymodels.make'
                             f"model='{module}:{attr}'") from None
        raise error
    if info.task is not None and info.task not in entry.tasks:
        raise ValueError(f"model={name!r} does not fit {info.task} data ({info.name}); use one of: "
                         f"{', '.join(fitting_models(info))}")
    return entry.build(info)


def fitting_models(info: DataInfo) -> list[str]:
    """The built-in names that can be built for ``info``: its task fits, and ``cnn`` only for image-shaped samples
    (``(C, H, W)`` or ``(H, W)``) — the list a "does not fit" error offers, so every name in it works.

    >>> from lrkit.train.data import load_data
    >>> fitting_models(load_data("iris").info), fitting_models(load_data("digits").info)
    (['linear', 'mlp'], ['linear', 'mlp', 'cnn'])
    """
    shape = info.input_shape
    return [m.name for m in BUILTIN_MODELS.values() if (info.task is None or info.task in m.tasks)
            and (m.name != "cnn" or (shape is not None and len(shape) in (2, 3)))]


def _from_factory(spec: str, info: DataInfo) -> nn.Module:
    module_name, _, attr = (part.strip() for part in spec.strip().rpartition(":"))  # rpartition: C:\\ paths
    if not module_name or not attr:
        raise ValueError(f"model={spec!r}: write a factory as 'package.module:function', e.g. 'mypkg.models:make_net' "
                         "(or 'path/to/file.py:function')")
    factory = resolve_import_spec(spec, module_name, attr)
    if isinstance(factory, nn.Module):  # calling it would run forward(in_features=..., ...)
        cls = type(factory).__name__
        raise ValueError(
            f"model={spec!r}: {attr!r} is {_a(cls)} {cls} instance (an nn.Module), not a factory; write a function "
            f"that builds it (def make(in_features, num_outputs): return {cls}(...)) so that seed= controls its "
            "initialisation, or pass the module itself as model= in Python"
        )
    if not callable(factory):
        kind = type(factory).__name__
        raise ValueError(f"model={spec!r}: {attr!r} is {_a(kind)} {kind}, not a callable factory that returns an "
                         "nn.Module")
    offered: dict[str, Any] = {
        "in_features": _in_features(info.input_shape) if info.input_shape is not None else None,
        "input_shape": info.input_shape,
        "num_outputs": info.num_outputs,
        "num_classes": info.num_outputs if info.task == "classification" else None,
        "vocab_size": info.num_outputs if info.task == "lm" else None,
        "seq_len": info.seq_len,
        "task": info.task,
    }
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = dict(offered)
    else:
        kwargs = {k: v for k, v in offered.items() if k in params}
    # `def make(in_features, num_outputs, /)`: positional-only names cannot be passed by keyword; pass them by
    # position, as long as every one before them is offered too (a gap would shift the values onto other names)
    args: list[Any] = []
    for p in params.values():
        if p.kind is not inspect.Parameter.POSITIONAL_ONLY or p.name not in offered:
            break
        args.append(offered[p.name])
        kwargs.pop(p.name, None)
    offered_text = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())]) or "no arguments"
    try:
        model = factory(*args, **kwargs)
    except SystemExit as e:  # sys.exit() in a factory is a failed build: the CLI would exit with its code, silently
        raise ValueError(f"model={spec!r}: calling {attr}({offered_text}) exited (SystemExit({e.code!r})); a "
                         "factory must return a torch nn.Module") from e
    except Exception as e:  # the user's code: say which call failed and with what, keep its traceback as the cause
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(
            f"model={spec!r}: calling {attr}({offered_text}) raised {type(e).__name__}: {first} (a factory may take "
            f"any of: {', '.join(offered)})"
        ) from e
    if isinstance(model, type) and issubclass(model, nn.Module):  # `return Net` for `return Net(...)`
        raise ValueError(f"model={spec!r}: the factory returned the class {model.__name__}, not an instance of it; "
                         f"return {model.__name__}(...)")
    if not isinstance(model, nn.Module):
        kind = type(model).__name__
        raise ValueError(f"model={spec!r}: the factory returned {_a(kind)} {kind}, not a torch nn.Module")
    return model


def _a(word: str) -> str:
    """The indefinite article for ``word`` ("an int", "a str")."""
    return "an" if word[:1] in "aeiouAEIOU" else "a"
