"""Reusing a finished run: :func:`load_run` rebuilds its model with the ``best.pt`` (or ``last.pt``) weights, in eval
mode, and prepares raw inputs the way training did.

A built-in or file ``data=`` source is standardised with the *train* split's statistics (features, and a regression
target) and its class labels are numbered; a text is read through its vocabulary. A checkpoint holds those
(``"preprocess"``: tensors and plain containers, so ``torch.load(path, weights_only=True)`` still loads it), and
:class:`LoadedRun` applies them: ``run.predict(raw_rows)`` gives class labels, or regression values in the target's
own units, or the next character of a text.

>>> import tempfile, lrkit
>>> r = lrkit.train(data="iris", epochs=2, project=tempfile.mkdtemp(), verbose=False, plots=False)
>>> run = lrkit.train.load_run(r.run_dir)
>>> run.task, run.model.training, run.checkpoint.name
('classification', False, 'best.pt')
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from lrkit._step import _INPUT_KEYS, model_outputs
from lrkit._utils import did_you_mean, first_line, is_float_text, named_keywords
from lrkit.train.data import UNK, DataInfo, builtin_feature_names
from lrkit.train.results import TrainResults
from lrkit.train.run import CHECKPOINT_FORMAT, checkpoint_damage, killed_start

__all__ = ["LoadedRun", "load_run", "rename_hint"]

#: data sources lrkit standardises with the train split's statistics (a torch Dataset is used as given)
_SCALED_SOURCES = ("builtin", "csv", "tsv", "npz", "yaml")
_WHICH = ("best", "last")


@dataclass(repr=False)
class LoadedRun:
    """A finished run's model with its weights (eval mode) and what raw inputs need — from :func:`load_run`.

    Attributes:
        model: the rebuilt model holding the checkpoint's weights, in eval mode.
        checkpoint: the ``best.pt`` / ``last.pt`` it was loaded from; ``epoch``: the epoch those weights are from.
        task: ``"classification"``, ``"regression"``, ``"lm"`` or ``None`` (a custom ``step_fn``).
        classes: the class labels, in the order of the model's outputs (``None`` where the data held indices).
        vocab: a text run's characters (token id ``i`` is ``vocab[i]``); ``seq_len``: its window length.
        features: a CSV run's feature columns, in the order the model reads them; ``target``: its target column, or
            the list of its target columns (``target=[y1, y2]``: the model's outputs, in this order).
        input_shape: the shape of one sample as the model takes it.
        scaling: ``x_mean``/``x_std`` (and ``y_mean``/``y_std`` for regression) of the train split, as tensors;
            empty where the data was used as given (a torch Dataset).
        config: the run's train keys as used (``args.yaml`` without ``resolved``).

    Example:
        >>> import tempfile, lrkit
        >>> r = lrkit.train(data="iris", epochs=2, project=tempfile.mkdtemp(), verbose=False, plots=False)
        >>> run = lrkit.train.load_run(r.run_dir)
        >>> run.inputs([[5.1, 3.5, 1.4, 0.2]]).shape, run.classes
        (torch.Size([1, 4]), [0, 1, 2])
    """

    model: nn.Module
    checkpoint: Path
    epoch: int
    task: str | None
    classes: list[Any] | None = None
    vocab: list[str] | None = None
    seq_len: int | None = None
    features: list[str] | None = None
    target: str | list[str] | None = None
    input_shape: tuple[int, ...] | None = None
    scaling: dict[str, torch.Tensor] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    #: how training read a classifier's scores: ``"logit"``/``"probability"`` (one score per sample: class 1 above
    #: 0 / 0.5), ``"multi_label"``/``"multi_label_probability"`` (a 0/1 decision per label: 1 above 0 / 0.5),
    #: ``None`` (argmax over the class scores)
    scores: str | None = None

    def __repr__(self) -> str:
        """One line: where the weights come from, the model class and the task.

        >>> import tempfile, lrkit
        >>> r = lrkit.train(data="iris", epochs=1, project=tempfile.mkdtemp(), verbose=False, plots=False)
        >>> repr(lrkit.train.load_run(r.run_dir)).endswith("model=MLP, task='classification')")
        True
        """
        return (f"LoadedRun(checkpoint={str(self.checkpoint)!r}, epoch={self.epoch}, "
                f"model={type(self.model).__name__}, task={self.task!r})")

    # ------------------------------------------------------------------------------------------ inputs
    def _device(self) -> torch.device:
        p = next(iter(self.model.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    def encode(self, text: str) -> torch.Tensor:
        """A text's token ids (a ``long`` tensor of shape ``(len(text),)``), through the run's vocabulary.

        A character the training text did not hold is the unknown token where the vocabulary has one (as in
        training), else a ``ValueError`` naming it.

        >>> import tempfile, lrkit
        >>> d = tempfile.mkdtemp(); _ = open(f"{d}/t.txt", "w").write("abcab " * 50)
        >>> run = lrkit.train.load_run(lrkit.train(data=f"{d}/t.txt", seq_len=8, epochs=1, project=d,
        ...                                        verbose=False, plots=False).run_dir)
        >>> run.encode("cab").tolist(), run.decode(run.encode("cab"))
        ([3, 1, 2], 'cab')
        """
        vocab = self._need_vocab("encode")
        if not isinstance(text, str):
            raise ValueError(f"encode(text={type(text).__name__}): give a str")
        index = {c: i for i, c in enumerate(vocab)}
        unknown = sorted({c for c in text if c not in index})
        if unknown and UNK not in index:
            shown = ", ".join(repr(c) for c in unknown[:10])
            raise ValueError(f"the text holds {len(unknown)} character(s) the run's vocabulary does not: {shown} "
                             f"(the vocabulary, {len(vocab)} characters, is the training text's)")
        unk = index.get(UNK, 0)
        return torch.tensor([index.get(c, unk) for c in text], dtype=torch.long)

    def decode(self, ids: Any) -> str:
        """Token ids (a tensor, array or list) as text, through the run's vocabulary (see :meth:`encode`).

        >>> import tempfile, lrkit
        >>> d = tempfile.mkdtemp(); _ = open(f"{d}/t.txt", "w").write("abcab " * 50)
        >>> run = lrkit.train.load_run(lrkit.train(data=f"{d}/t.txt", seq_len=8, epochs=1, project=d,
        ...                                        verbose=False, plots=False).run_dir)
        >>> run.decode([1, 2, 3, 0])
        'abc '
        """
        vocab = self._need_vocab("decode")
        flat = torch.as_tensor(ids).reshape(-1).tolist()
        bad = [i for i in flat if not isinstance(i, int) or not 0 <= i < len(vocab)]
        if bad:
            raise ValueError(f"decode: token id {bad[0]!r} is not in the vocabulary (ids 0..{len(vocab) - 1})")
        return "".join(vocab[i] for i in flat)

    def _need_vocab(self, what: str) -> list[str]:
        if self.vocab is None:
            why = ("it was trained on token ids without a vocabulary (a torch dataset): its model maps ids to ids, "
                   "run.predict(ids) gives the next one" if self.task == "lm" else f"this run's task is {self.task!r}")
            raise ValueError(f"{what}() is for a text run (task='lm', data= a text file); {why}")
        return self.vocab

    def inputs(self, x: Any) -> torch.Tensor:
        """Raw inputs as the model takes them, on the model's device: features standardised with the train
        split's mean and standard deviation and shaped as a sample was (flat 8x8 ``digits`` rows become
        ``(N, 1, 8, 8)`` images); a CSV run also takes its feature columns by name — a ``{column: values}`` mapping,
        a DataFrame, or a list of dict rows as ``csv.DictReader`` gives them (numeric strings are read as numbers;
        other columns, an ID, are ignored); a text run takes a ``str`` (its token ids, as a batch of one); a torch
        Dataset or DataLoader gives its samples' or batches' inputs (``x``, or a dict's input key). One sample
        gives a batch of one. A file name is refused with how to read it (the rows themselves are taken); so are a
        missing value (NaN, ``None``, an infinity: named by row and column, never predicted) and an input of no rows.

        >>> import tempfile, lrkit
        >>> r = lrkit.train(data="iris", epochs=1, project=tempfile.mkdtemp(), verbose=False, plots=False)
        >>> lrkit.train.load_run(r.run_dir).inputs([5.1, 3.5, 1.4, 0.2]).shape
        torch.Size([1, 4])
        """
        if self.vocab is not None and isinstance(x, str):
            return self.encode(x)[None].to(self._device())
        if isinstance(x, os.PathLike) or (isinstance(x, str) and not is_float_text(x)):
            raise ValueError(_file_name_error(x))
        if x is None:  # numpy reads None as one NaN: "x has 1 values per sample (x of shape ())"
            raise ValueError("predict(x=None): give rows of features (a list of rows, a {column: values} dict, a "
                             "DataFrame, an array or a tensor)")
        shape = self.input_shape
        names = self._column_names()
        if (names is not None and getattr(x, "ndim", None) == 1 and hasattr(x, "index")
                and hasattr(x, "to_dict") and not all(isinstance(k, (int, np.integer)) for k in x.index)):
            x = [x.to_dict()]  # a pandas Series of named values (a DataFrame's row, df.iloc[0]): one row, by name
        if isinstance(x, (list, tuple)) and x and all(isinstance(r, Mapping) for r in x):
            # csv.DictReader's rows: a table of named columns
            x = self._columns(_rows_as_columns(x, names or []), names)
        elif (self.features is None and hasattr(x, "columns") and hasattr(x, "to_numpy")
              and list(x.columns) == list(range(len(x.columns)))):
            x = x.to_numpy()  # pd.DataFrame(array): numbered columns, no names; read by position, as the array
        elif isinstance(x, Mapping) or hasattr(x, "columns"):  # {column: values} or a pandas/polars DataFrame
            x = self._columns(x, names)
        if isinstance(x, DataLoader):  # its batches' inputs, in the order it yields them (np.asarray: TypeError)
            x = _loader_inputs(x)
        # the model's floating dtype, as training cast its batches (a float64 model takes float64 inputs)
        dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        if not self.scaling:  # used as given in training (a torch Dataset): only made a tensor and batched
            if isinstance(x, Dataset):
                x = _dataset_inputs(x)
            t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
            if t.is_floating_point():
                t = t.to(dtype)
            if shape is not None and t.dim() == len(shape):
                t = t[None]
            return t.to(self._device())
        if isinstance(x, torch.Tensor) and x.is_complex():  # .double() would keep the real part, with a warning
            raise ValueError(_complex_error(x.dtype))
        arr = (x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor)
               else _float_array(x, names))
        shape = shape or (arr.shape[-1],)
        per = math.prod(shape)
        if arr.size == 0:  # numpy's own words would be "cannot reshape array of size 0 into shape (0,newaxis)"
            named = f" ({', '.join(self.features)})" if self.features else ""
            raise ValueError(f"x holds no samples (x of shape {arr.shape}); give at least one row of the {per} "
                             f"values the run was trained on{named}")
        single = arr.size == per and arr.ndim <= len(shape)
        rows = arr.reshape(1, -1) if single else arr.reshape(len(arr), -1) if arr.ndim >= 1 else arr.reshape(1, -1)
        if rows.shape[1] != per:
            named = f": {', '.join(self.features)}" if self.features else f" (samples of shape {tuple(shape)})"
            raise ValueError(f"x has {rows.shape[1]} values per sample (x of shape {arr.shape}); the run was "
                             f"trained on {per}{named}")
        check_finite_rows(rows, names)
        mean, std = self.scaling["x_mean"].numpy(), self.scaling["x_std"].numpy()
        rows = (rows - mean) / std
        return torch.as_tensor(rows.reshape(len(rows), *shape), dtype=dtype).to(self._device())

    def _column_names(self) -> list[str] | None:
        """The names a table's columns are matched by: a CSV run's :attr:`features`; for a run on a built-in
        scikit-learn table (``breast_cancer``, ``wine``, ``iris``) scikit-learn's ``feature_names``, so the
        DataFrame of ``load_iris(as_frame=True)`` is read by name; else ``None``."""
        if self.features is not None:
            return self.features
        data = self.config.get("data")
        return builtin_feature_names(data) if isinstance(data, str) else None

    def _columns(self, table: Any, features: list[str] | None) -> np.ndarray:
        """The ``features`` columns of ``table`` (a mapping or DataFrame) in the run's order, as ``(N, F)``."""
        if features is None:
            raise ValueError("x is a table of named columns, but this run was not trained on a CSV file or a "
                             "built-in scikit-learn table (no column names recorded); pass an array of samples")
        twice = [c for c in dict.fromkeys(features) if features.count(c) > 1]
        if twice:  # a table has one column of that name: it would stand in for both of the training columns
            raise ValueError(f"the run's training CSV names {twice[0]!r} for {features.count(twice[0])} feature "
                             f"columns ({features}), so x's columns cannot be matched by name; give the rows as "
                             "an array in that column order (or `lrkit predict` a CSV with the same header: it maps "
                             "repeated names in order)")
        keys = list(table.columns if hasattr(table, "columns") else table.keys())
        names = [str(c) for c in keys]
        missing = [c for c in features if c not in names]
        if missing:
            raise ValueError(f"x has no column {', '.join(repr(c) for c in missing)}; the run's features are "
                             f"{features} (columns: {names}).{rename_hint(missing, names, features)}")
        # a DataFrame may repeat a name (table[c] would be both columns), a dict hold both 0 and "0"
        repeated = next((c for c in features if names.count(c) > 1), None)
        if repeated is not None:
            raise ValueError(f"x has {names.count(repeated)} columns named {repeated!r}, and the run reads one: "
                             "which one holds the feature is not clear; rename or drop the other")
        columns = []
        for c in features:
            column = table[keys[names.index(c)]]  # the table's own key: 0 for a DataFrame(array)'s column "0"
            kind = getattr(getattr(column, "dtype", None), "kind", "")
            if kind in ("M", "m"):  # dates would be read as nanoseconds: numbers training never saw
                raise ValueError(f"x's column {c!r} holds {column.dtype} values (dates or times); the model takes "
                                 "the numbers the training CSV held in that column")
            try:
                columns.append(np.asarray(column, dtype=np.float64).reshape(-1))
            except (TypeError, ValueError, OverflowError) as e:  # OverflowError: an int past float64's range
                raise ValueError(f"x's column {c!r} does not hold numbers ({first_line(e)}); the model takes numbers "
                                 "(encode a category as numbers first)") from None
        if len({len(v) for v in columns}) > 1:  # numpy's words: "all input arrays must have the same shape"
            counts = ", ".join(f"{c!r}: {len(v)}" for c, v in zip(features, columns))
            raise ValueError(f"x's columns hold different numbers of values ({counts}); give each feature column one "
                             "value per sample")
        return np.stack(columns, axis=1)

    # ------------------------------------------------------------------------------------------ outputs
    def outputs(self, out: torch.Tensor) -> torch.Tensor:
        """The model's output in the target's own units: a standardised regression target's mean and standard
        deviation put back (float64, one column per target); any other output is returned as it is.

        >>> import tempfile, lrkit
        >>> r = lrkit.train(data="synthetic-regression", epochs=1, project=tempfile.mkdtemp(), verbose=False,
        ...                 plots=False)
        >>> run = lrkit.train.load_run(r.run_dir)
        >>> float(run.outputs(torch.zeros(1, 1))) == float(run.scaling["y_mean"])  # 0 is the mean
        True
        """
        if "y_mean" not in self.scaling or not isinstance(out, torch.Tensor):
            return out
        out = out.reshape(1) if out.dim() == 0 else out  # one sample's value, its batch dimension squeezed away
        out = out.detach().to("cpu", torch.float64).reshape(len(out), -1)
        return out * self.scaling["y_std"] + self.scaling["y_mean"]

    @torch.no_grad()
    def predict(self, x: Any) -> Any:
        """The model's prediction for raw inputs (see :meth:`inputs`), without gradients.

        Classification: a list of class labels (the run's own labels: ``'setosa'`` for a CSV of names), read as
        training scored them (one score per sample: class 1 above 0, or 0.5 for probabilities; a multi-label run: a
        ``(N, K)`` tensor of 0/1, one decision per label);
        regression: a float64 tensor in the target's units, ``(N,)`` for one target, else ``(N, K)``; a text run:
        the most likely next character after the text (its last ``seq_len`` characters are read, ``\\r\\n`` and
        ``\\r`` as ``\\n``, as the training text was); a run on token ids without a vocabulary (a torch dataset of
        windows): a ``(N,)`` tensor of each window's most likely next token id; a custom ``step_fn`` run: the
        model's output.

        >>> import tempfile, lrkit
        >>> r = lrkit.train(data="iris", epochs=1, project=tempfile.mkdtemp(), verbose=False, plots=False)
        >>> labels = lrkit.train.load_run(r.run_dir).predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
        >>> len(labels), all(v in (0, 1, 2) for v in labels)
        (2, True)
        """
        if self.task == "lm" and self.vocab is not None:
            if not isinstance(x, str) or not x:
                raise ValueError(f"predict(x={x!r}): a text run predicts the next character of a non-empty str")
            # as the training text was read (no vocabulary holds "\r"): Windows line ends are the text's "\n"
            x = x.replace("\r\n", "\n").replace("\r", "\n")
            window = self.seq_len or len(x)
            out = model_outputs(self.model(self.inputs(x[-window:])))  # a ModelOutput / {"logits": ...}: its logits
            # (1, T, V), or (T, V) from a model that flattens its logits for cross_entropy (logits.view(-1, V))
            return self.vocab[int((out[0, -1] if out.dim() == 3 else out[-1]).argmax())]
        inputs = self.inputs(x)
        out = self.model(inputs)
        if self.task is not None:  # a Hugging Face ModelOutput / {"logits": ...}: its logits, as training read them
            out = model_outputs(out)
        if (self.task in ("classification", "regression") and isinstance(out, torch.Tensor) and len(inputs) == 1
                and (out.dim() == 0 or (out.dim() == 1 and len(out) > 1))):
            # one sample through a forward ending in .squeeze(): its batch dimension is gone, and its K class scores
            # (or targets) read as K samples' — three labels for one row — or a 0-d value had no len()
            out = out.reshape(1, -1)
        # one score per sample: (N,), (N, 1), or a 0-dim score (one sample through a forward ending in .squeeze())
        one_score = isinstance(out, torch.Tensor) and (out.dim() <= 1 or (out.dim() == 2 and out.shape[1] == 1))
        if self.task == "classification" and isinstance(out, torch.Tensor) and (self.scores is not None or one_score):
            probabilities = self.scores in ("probability", "multi_label_probability")
            decided = (out > (0.5 if probabilities else 0.0)).long()  # older runs: a logit
            if self.scores in ("multi_label", "multi_label_probability"):
                return decided  # (N, K) of 0/1: one decision per label
            index = decided.reshape(-1 if out.dim() == 0 else len(out)).tolist()
            return [self.classes[i] for i in index] if self.classes is not None else index
        if self.task == "classification" and isinstance(out, torch.Tensor) and out.dim() == 2:
            index = out.argmax(-1).tolist()
            return [self.classes[i] for i in index] if self.classes is not None else index
        if self.task == "regression" and isinstance(out, torch.Tensor):
            values = self.outputs(out) if "y_mean" in self.scaling else out.reshape(len(out), -1)
            return values[:, 0] if values.shape[1] == 1 else values
        if self.task == "lm" and isinstance(out, torch.Tensor) and out.dim() in (2, 3):
            # token windows without a vocabulary (a dataset of token ids): the most likely next token id of each
            if out.dim() == 2 and inputs.dim() == 2 and len(inputs) < inputs.numel() == len(out):
                out = out.reshape(*inputs.shape, -1)  # logits flattened to (N * T, V), logits.view(-1, V): per window
            return (out[:, -1] if out.dim() == 3 else out).argmax(-1)
        return out


    @torch.no_grad()
    def generate(self, prompt: str, length: int = 200, *, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None) -> str:
        """The text a text run (``task='lm'``, trained on a text file) writes after ``prompt``: ``length`` characters,
        one at a time, each drawn from the model's distribution over the next character given the last ``seq_len``
        characters so far (the prompt's, then its own). Returns the new characters only.

        ``temperature`` divides the logits before the draw (below 1: closer to the most likely character; ``0``:
        always the most likely one, :meth:`predict`'s answer, repeated); ``top_k`` draws among the ``k`` most likely
        characters only; ``seed`` makes the draw repeatable, with a generator of its own (torch's global RNG is not
        touched; ``None``: a fresh draw each call). The prompt is read as :meth:`predict` reads its text (``\\r\\n``
        and ``\\r`` as ``\\n``); a character the training text did not hold is the unknown token or an error, as in
        :meth:`encode`.

        >>> import tempfile, lrkit
        >>> d = tempfile.mkdtemp(); _ = open(f"{d}/t.txt", "w").write("abcab " * 50)
        >>> run = lrkit.train.load_run(lrkit.train(data=f"{d}/t.txt", seq_len=8, epochs=1, project=d,
        ...                                        verbose=False, plots=False).run_dir)
        >>> text = run.generate("ab", 12, seed=0)
        >>> len(text), set(text) <= set(run.vocab), text == run.generate("ab", 12, seed=0)
        (12, True, True)
        """
        vocab = self._need_vocab("generate")
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"generate(prompt={prompt!r:.60}): give the text to go on from, a non-empty str")
        length = _whole("length", length, 0)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
                math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature={temperature!r} must be a finite number >= 0 (1: the model's own "
                             "distribution; 0: always the most likely character)")
        k = None if top_k is None else min(_whole("top_k", top_k, 1), len(vocab))
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(_whole("seed", seed, 0))
        ids = self.encode(prompt.replace("\r\n", "\n").replace("\r", "\n")).tolist()
        start, window, device = len(ids), self.seq_len or len(ids), self._device()
        for _ in range(length):
            context = torch.tensor(ids[-window:], dtype=torch.long, device=device)[None]
            out = model_outputs(self.model(context))  # (1, T, V), or (T, V) from a model that flattens its logits
            logits = (out[0, -1] if out.dim() == 3 else out[-1]).float().cpu()
            if temperature == 0:
                ids.append(int(logits.argmax()))
                continue
            logits = logits / temperature
            if k is not None and k < len(logits):
                logits[logits < torch.topk(logits, k).values[-1]] = -math.inf
            ids.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)))
        return self.decode(ids[start:])


def _whole(name: str, value: Any, low: int) -> int:
    """``value`` as an ``int >= low`` (a numpy integer too), or a ``ValueError`` naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} must be a whole number >= {low}")
    return int(value)


@named_keywords
def load_run(run: str | os.PathLike[str] | TrainResults, *, which: str | None = None, model: nn.Module | None = None,
             device: str | torch.device | None = None) -> LoadedRun:
    """Rebuild a finished run's model with its weights, in eval mode, ready for raw inputs.

    ``run`` is a run directory (``runs/train``: its ``best.pt``, or ``which="last"`` for ``last.pt``), a
    checkpoint file, or the :class:`~lrkit.train.TrainResults` that :func:`lrkit.train` returned. The model is
    rebuilt as the run built it: a built-in (``mlp``, ``charlm``, ...) from the data's shape and outputs the
    checkpoint records, a factory (``package.module:make``, ``file.py:make``) by importing it again — a relative
    one is also looked for in the run's working directory — and a model the run was given as a Python object is
    passed again as ``model=`` (``model=`` also replaces any rebuilt one). The weights load strictly; ``device``
    moves the model (default: CPU).

    The returned :class:`LoadedRun` holds the model and the preprocessing raw inputs need (``predict``,
    ``inputs``, ``outputs``, ``encode``/``decode``). Fine-tuning starts from its model:
    ``lrkit.train(load_run("runs/train").model, data=..., lr0=...)``.

    Raises ``FileNotFoundError`` for a path that holds no checkpoint, and ``ValueError`` for a file that is not an
    lrkit checkpoint, a factory that can no longer be imported or built, a ``model=`` that does not match the
    weights, or a run saved before lrkit recorded the train split's statistics (it names what to do).

    >>> import tempfile, lrkit
    >>> r = lrkit.train(data="iris", epochs=2, project=tempfile.mkdtemp(), verbose=False, plots=False)
    >>> run = lrkit.train.load_run(r.run_dir)                      # or r.run_dir / "last.pt", or which="last"
    >>> type(run.model).__name__, run.model.training, run.epoch
    ('MLP', False, 2)
    >>> labels = run.predict([[5.1, 3.5, 1.4, 0.2]])               # raw features, as in the data
    >>> labels[0] in run.classes
    True
    """
    if device is not None:  # torch's own words would be "AssertionError: Torch not compiled with CUDA enabled"
        from lrkit.finder.range_test import _check_device

        device = _check_device(device, "pass device='cpu' (the default), or cuda / cuda:N where this machine has it")
    if isinstance(run, TrainResults):
        run = run.run_dir
    path = _checkpoint_path(run, which)
    ck = _read(path)
    info = _data_info(ck)
    pre = _preprocess(ck, path, info)
    if isinstance(model, type) and issubclass(model, nn.Module):
        raise ValueError(f"model= is the class {model.__name__}, not an instance of it; pass {model.__name__}(...) "
                         "built as the run's model was")
    net = model if model is not None else _rebuild(ck, path, info)
    if not isinstance(net, nn.Module):
        raise ValueError(f"model={type(net).__name__} must be a torch nn.Module (the architecture the run trained)")
    from lrkit.train.trainer import _load_error, _saved_module, _without_wrapper_prefix

    target = _saved_module(net)
    try:
        target.load_state_dict(_without_wrapper_prefix(ck["model"], target))
    except (RuntimeError, ValueError, KeyError) as e:
        raise ValueError(f"load_run: the model does not match the weights in {path} ({_load_error(e)}); build it "
                         "as the run did (the same factory and data shape)") from None
    if device is not None:
        net = net.to(device)
    net.eval()
    shape = tuple(int(v) for v in pre.get("input_shape") or []) or None
    scaling = {k: pre[k] for k in ("x_mean", "x_std", "y_mean", "y_std") if isinstance(pre.get(k), torch.Tensor)}
    named = pre.get("target")  # a list of names for several target columns (a checkpoint holds it as a list)
    named = [str(t) for t in named] if isinstance(named, (list, tuple)) else named
    return LoadedRun(model=net, checkpoint=path, epoch=int(ck.get("epoch", 0)), task=pre.get("task"),
                     scores=(ck.get("outputs") or {}).get("scores"),
                     classes=pre.get("classes"), vocab=pre.get("vocab"), seq_len=pre.get("seq_len"),
                     features=pre.get("features"), target=named, input_shape=shape, scaling=scaling,
                     config=dict(ck.get("config") or {}))


def run_checkpoint(spec: Any) -> Path | None:
    """The checkpoint a ``model=`` value names when it names an lrkit run: a run directory (its ``best.pt``) or an
    existing ``.pt`` file; ``None`` for anything else (a built-in name, a factory). Only the file system is read: a
    ``.pt`` that is no lrkit checkpoint is told so when :func:`load_run` reads it.

    >>> run_checkpoint("mlp") is None
    True
    """
    if not isinstance(spec, (str, os.PathLike)):
        return None
    text = os.fspath(spec).strip()
    if not text or (":" in text and text.rpartition(":")[2].replace(".", "").isidentifier()
                    and not Path(text).expanduser().exists()):  # a factory spec, file.py:make
        return None
    path = Path(text).expanduser()
    if path.is_dir() and (path / "best.pt").is_file():
        return path / "best.pt"
    if path.is_file() and path.suffix.lower() == ".pt":
        return path
    return None


def _cell(features: list[str] | None, j: int, width: int) -> str:
    """Value ``j`` of a row of ``width`` values, for a message: its feature's column name where they pair up."""
    return f"column {features[j]!r}" if features and len(features) == width else f"value {j} (counting from 0)"


def check_finite_rows(rows: np.ndarray, features: list[str] | None) -> None:
    """A ``ValueError`` naming the first non-finite value of the ``(N, F)`` ``rows`` (its row and column) and how many
    there are: a NaN row would predict NaN in the target's units, or silently the first class (argmax of NaN)."""
    bad = np.argwhere(~np.isfinite(rows))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        raise ValueError(f"x's row {i} (counting from 0) holds {float(rows[i, j])!r} in "
                         f"{_cell(features, j, rows.shape[1])}; the model takes finite numbers (a missing value: fill "
                         f"it in or drop that row; {len(bad)} such value{'s' * (len(bad) != 1)} in all)")


def _float_array(x: Any, features: list[str] | None) -> np.ndarray:
    """``x`` as a float64 array, or a ``ValueError`` naming what is no number: dates (numpy would read them as
    counts of days or nanoseconds), the first cell of a list of rows that is not one (its row and column), rows of
    different lengths, or ``x``'s type."""
    kind = getattr(getattr(x, "dtype", None), "kind", "")
    if kind in ("M", "m"):
        raise ValueError(f"x holds {x.dtype} values (dates or times); the model takes the numbers it was trained on")
    if kind == "c":  # numpy would keep the real part, with a ComplexWarning
        raise ValueError(_complex_error(x.dtype))
    if isinstance(x, np.ma.MaskedArray):  # a masked cell is a missing value (np.asarray drops the mask: the value
        return np.ma.filled(x.astype(np.float64), np.nan)  # hidden under it was predicted), named as a NaN is
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: an int too large for a float
        error = e
    if isinstance(x, (list, tuple)) and x:
        nested = [isinstance(r, (list, tuple, np.ndarray)) for r in x]
        rows = [list(r) for r in x] if all(nested) else [list(x)] if not any(nested) else None
        if rows is None:
            raise ValueError("x mixes rows (lists) and single values; give every sample as a row of values") from None
        for i, row in enumerate(rows):
            if len(row) != len(rows[0]):
                raise ValueError(f"x's row {i} (counting from 0) has {len(row)} values, and row 0 has {len(rows[0])}; "
                                 "give every row the same values, in the same order") from None
            for j, value in enumerate(row):
                try:
                    np.asarray(value, dtype=np.float64)
                except (TypeError, ValueError, OverflowError) as e:
                    where = _cell(features, j, len(row))
                    shown = repr(value)
                    shown = shown if len(shown) <= 60 else f"{shown[:30]}... ({len(shown)} digits)"
                    if isinstance(e, OverflowError):  # a Python int past float64's range (about 1.8e308)
                        raise ValueError(f"x's row {i} (counting from 0) holds {shown} in {where}, which is not a "
                                         "number a float64 can hold (at most about 1.8e308); the model takes finite "
                                         "numbers") from None
                    raise ValueError(f"x's row {i} (counting from 0) holds {shown} in {where}, which is not a "
                                     "number; the model takes numbers (encode a category as numbers first)") from None
    raise ValueError(f"x ({type(x).__name__}) cannot be read as numbers ({first_line(error)}); give rows of numbers: "
                     "a list of rows, an array or a tensor") from None


def _complex_error(dtype: Any) -> str:
    """What :meth:`LoadedRun.inputs` says of complex inputs (``dtype``: numpy's or torch's)."""
    return (f"x holds complex values ({str(dtype).removeprefix('torch.')}); the model takes the real numbers it was "
            "trained on (give x.real if the imaginary parts are all 0)")


def _input_of(item: Any, what: str) -> Any:
    """A sample's or a batch's inputs, as training split them: a dict's input key, a tuple's first item, else the
    item itself (``what`` names the items in the error for a dict without an input key)."""
    if isinstance(item, Mapping):
        key = next((k for k in _INPUT_KEYS if k in item), None)
        if key is None:
            raise ValueError(f"{what} are dicts with keys {sorted(map(str, item))}, none of them an input key "
                             f"({', '.join(_INPUT_KEYS)}); pass the inputs as a tensor")
        return item[key]
    return item[0] if isinstance(item, (tuple, list)) else item


def _dataset_inputs(ds: Dataset) -> torch.Tensor:
    """A torch Dataset's inputs stacked into one batch: each sample's ``x`` (the first item of a tuple, the input key
    of a dict, as training split its batches); an IterableDataset's samples as it yields them (it has no ``ds[i]``)."""
    if isinstance(ds, IterableDataset):
        samples: Iterable[Any] = ds
    elif not hasattr(ds, "__len__"):
        raise ValueError(f"predict(x={type(ds).__name__}): a Dataset without a length; pass its inputs as a tensor")
    else:
        samples = (ds[i] for i in range(len(ds)))
    xs = [torch.as_tensor(_input_of(sample, f"predict(x={type(ds).__name__}): its samples")) for sample in samples]
    if not xs:
        raise ValueError(f"predict(x={type(ds).__name__}): the Dataset is empty")
    return torch.stack(xs)


def _loader_inputs(loader: DataLoader) -> torch.Tensor:
    """A DataLoader's inputs, its batches' ``x`` (the first item of a tuple, the input key of a dict, as training
    split its batches; a batch of inputs alone as it is) joined in the order it yields them, through its own
    ``collate_fn`` and sampler."""
    xs = []
    for batch in loader:
        batch = _input_of(batch, "predict(x=DataLoader): its batches")
        if not isinstance(batch, torch.Tensor):
            raise ValueError(f"predict(x=DataLoader): its batches' inputs are a {type(batch).__name__}, not a tensor; "
                             "pass the inputs as a tensor")
        xs.append(batch if batch.ndim else batch[None])
    if not xs:
        raise ValueError("predict(x=DataLoader): the DataLoader yields no batches")
    if len({t.shape[1:] for t in xs}) > 1:  # a collate_fn that pads each batch to its own length
        shapes = sorted({tuple(t.shape[1:]) for t in xs})
        raise ValueError(f"predict(x=DataLoader): its batches hold inputs of different shapes per sample "
                         f"({', '.join(map(str, shapes[:3]))}), which cannot be joined into one batch; predict batch "
                         "by batch: [run.predict(x) for x, _ in loader]")
    return torch.cat(xs)


def _checkpoint_path(run: str | os.PathLike[str], which: str | None) -> Path:
    if which is not None and which not in _WHICH:
        raise ValueError(f"which={which!r} must be one of {', '.join(repr(w) for w in _WHICH)}")
    if not isinstance(run, (str, os.PathLike)):
        raise ValueError(f"run={type(run).__name__}: give a run directory or a checkpoint path (str or Path), or the "
                         "TrainResults lrkit.train returned")
    path = Path(run).expanduser()
    if path.is_file():
        if which is not None:
            raise ValueError(f"run={str(run)!r} is a checkpoint file and which={which!r} picks one in a run directory; "
                             "give one of them")
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"load_run: {str(run)!r}: no such run directory or checkpoint{_near_miss(path)}")
    name = f"{which or 'best'}.pt"
    if not (path / name).is_file():
        if name == "last.pt" and (path / "best.pt").is_file():  # last.pt removed (to save space): not a killed start
            why = "the run holds best.pt only, the checkpoint loaded by default: load that one"
        elif killed_start(path):
            why = "the run was stopped before its first epoch was saved"
        elif (path / "last.pt").is_file():
            why = "pass which='last' for last.pt"
        else:
            runs = sorted(str(p.parent) for p in path.glob(f"*/{name}"))
            why = (f"{path} is a project folder; its runs: {', '.join(runs[:8])}{' ...' if len(runs) > 8 else ''}"
                   if runs else "a run directory holds best.pt and last.pt once its first epoch is in")
        raise FileNotFoundError(f"load_run: no {name} in {path} ({why})")
    return path / name


def _read(path: Path) -> dict[str, Any]:
    damage = checkpoint_damage(path)
    if damage is not None and "not a torch" not in damage:  # empty, or cut short: not "some other file"
        other = "last" if path.name == "best.pt" else "best"
        whole = (f"; the run's {other}.pt may be whole: load_run({str(path.parent)!r}, which={other!r})"
                 if path.name in ("best.pt", "last.pt") and checkpoint_damage(path.parent / f"{other}.pt") is None
                 and (path.parent / f"{other}.pt").is_file() else "")
        raise ValueError(f"load_run: {path} cannot be read: {damage}{whole}")
    if not zipfile.is_zipfile(path):  # torch.save's format is a zip: torch's own message would talk of weights_only
        raise ValueError(f"load_run: {path} is not an lrkit checkpoint (not a torch .pt file): give the run "
                         "directory, or its best.pt / last.pt")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's words advise weights_only=False: the way to run the file's code
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        what = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[-1] if lines else "")
        raise ValueError(f"load_run: {path} holds pickled Python objects that are not tensors or plain containers "
                         f"({what[:200]}); load_run reads a checkpoint with torch.load(weights_only=True) and runs no "
                         "code from a file, and an lrkit checkpoint holds none: give the run directory, or its "
                         "best.pt / last.pt") from None
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"load_run: {path} is not an lrkit checkpoint ({type(e).__name__}: {first})") from None
    fmt = ck.get("format") if isinstance(ck, dict) else None
    if isinstance(fmt, str) and fmt.startswith("lrkit.") and fmt != CHECKPOINT_FORMAT:
        from lrkit import __version__

        raise ValueError(f"load_run: {path} was saved by another lrkit version (checkpoint format {fmt!r}); this "
                         f"lrkit ({__version__}) reads format {CHECKPOINT_FORMAT!r}: load it with the lrkit that "
                         "trained it, or train the run again with this one")
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT or "model" not in ck:
        raise ValueError(f"load_run: {path} is not an lrkit run's checkpoint (no format {CHECKPOINT_FORMAT!r} with "
                         "'model' weights); a plain state_dict loads with model.load_state_dict(torch.load(path, "
                         "weights_only=True))")
    return ck


def _data_info(ck: Mapping[str, Any]) -> DataInfo:
    """The :class:`DataInfo` a built-in model or a factory is sized from, as the checkpoint records it."""
    d = dict(ck.get("data") or {})
    shape = tuple(int(v) for v in d.get("input_shape") or []) or None
    return DataInfo(name=str(d.get("name", "?")), task=d.get("task"), input_shape=shape,
                    num_outputs=d.get("num_outputs"), source=str(d.get("source", "?")), vocab=d.get("vocab"),
                    seq_len=d.get("seq_len"), classes=d.get("classes"))


def _preprocess(ck: Mapping[str, Any], path: Path, info: DataInfo) -> dict[str, Any]:
    pre = ck.get("preprocess")
    if isinstance(pre, Mapping):
        return dict(pre)
    # a run saved before the record: text and torch-Dataset runs need nothing it would add
    if info.source in _SCALED_SOURCES and info.task != "lm":
        target = " and the target's mean and standard deviation" if info.task == "regression" else ""
        run_dir = path.parent
        raise ValueError(
            f"load_run: {path} was saved by an lrkit from before load_run, so it does not hold what raw inputs need: "
            f"the train split's feature mean and standard deviation{target} (data={info.name!r} was standardised "
            f"with them). Train it again with this lrkit — lrkit train cfg={run_dir}/args.yaml resume=false (the same "
            "settings give the same split) — or resume it for more epochs (the checkpoints it saves record them: then "
            "load_run(run, which='last')); the weights alone load with torch.load(path, weights_only=True)['model']"
        )
    return {"task": info.task, "input_shape": list(info.input_shape or []), "classes": info.classes,
            "vocab": info.vocab, "seq_len": info.seq_len, "features": None}


def _rebuild(ck: Mapping[str, Any], path: Path, info: DataInfo) -> nn.Module:
    from lrkit.train.models import _on_sys_path, build_model, default_model_name

    # a run fine-tuned from another run records the architecture it rebuilt ("model_spec"): its model= named a
    # checkpoint, which need not be there any more
    spec = ck.get("model_spec") or (ck.get("config") or {}).get("model")
    if isinstance(spec, str) and spec.startswith("<") and spec.endswith(">"):
        raise ValueError(f"load_run: the run in {path.parent} was given a Python model ({spec}), which a checkpoint "
                         "cannot hold; build the same architecture and pass it: load_run(run, model=Net(...))")
    if spec is not None and not isinstance(spec, str):
        raise ValueError(f"load_run: {path} records model={spec!r}, which names no model; pass it: "
                         "load_run(run, model=...)")
    name = spec.strip() if spec else default_model_name(info)
    home = ck.get("cwd")
    spec_now = name
    # the run's working directory as recorded, else where it lies now: the project folder moved (or copied to
    # another machine) with its factory file, runs/train and nets.py side by side as they were
    for place in (Path(home) if isinstance(home, str) else None, _moved_home(ck, path)):
        name, folder = _factory_from(spec_now, place)
        if name != spec_now or folder is not None:
            break
    try:
        with _on_sys_path(folder) if folder is not None else contextlib.nullcontext():
            net = build_model(name, info)
        net._lrkit_model_spec = name  # type: ignore[assignment]  # how lrkit.train, fine-tuning it, records it
        return net
    except ValueError as e:
        raise ValueError(f"load_run: cannot rebuild the model of {path}: {e}. Make it importable again (from this "
                         f"working directory, or the run's, {home}), or build it yourself and pass it: "
                         "load_run(run, model=make(...))") from e


def _moved_home(ck: Mapping[str, Any], path: Path) -> Path | None:
    """The run's working directory as the run folder's place now implies it — ``path``'s run folder less the
    relative ``project``/``name`` the run was saved under (``runs/train``: two folders up) — or ``None`` where the
    checkpoint does not say (an absolute project, ``..`` in it)."""
    config = ck.get("config") or {}
    project, name = config.get("project"), config.get("name")
    if not isinstance(project, str) or Path(project).expanduser().is_absolute() or ".." in Path(project).parts:
        return None
    below = len(Path(name).parts) if isinstance(name, str) and name.strip() else 1
    if ".." in (Path(name).parts if isinstance(name, str) else ()):
        return None
    parents = path.resolve().parent.parents  # the run folder's: parents[0] is the project folder of "runs/train"
    depth = len(Path(project).parts) + below - 1
    return parents[depth] if depth < len(parents) else None


def _factory_from(spec: str, home: Path | None) -> tuple[str, Path | None]:
    """``spec`` with a relative ``file.py:make`` that is not found here but in the run's working directory ``home``
    made absolute; and the folder to put on ``sys.path`` for a module factory (``home``), if any."""
    if ":" not in spec or home is None or not home.is_dir():
        return spec, None
    module, _, attr = spec.rpartition(":")
    if module.endswith(".py") or "/" in module or os.sep in module:
        file = Path(module).expanduser()
        if not file.is_absolute() and not file.is_file() and (home / file).is_file():
            return f"{home / file}:{attr}", None
        return spec, None
    return spec, home



# ------------------------------------------------------------------------------------------------ helpful errors
def _closest(name: str, choices: list[str], *, ignore_case: bool = False) -> str | None:
    """The choice :func:`~lrkit._utils.did_you_mean` would suggest for ``name`` (its own spelling), or ``None``."""
    hint = did_you_mean(name, choices, ignore_case=ignore_case)
    return next((c for c in choices if hint == f" Did you mean {c!r}?"), None)


def rename_hint(missing: list[str], names: list[str], features: list[str]) -> str:
    """A did-you-mean for each missing feature column among a table's columns that are no feature (``names``: the
    table's columns): ``" Did you mean to rename 'Tenure_Months' to 'tenure_months'?"``; ``""`` when none is close.
    Shared by :meth:`LoadedRun.predict` and ``lrkit predict``.

    >>> rename_hint(["tenure_months"], ["id", "Tenure_Months", "age"], ["tenure_months", "age"])
    " Did you mean to rename 'Tenure_Months' to 'tenure_months'?"
    """
    spare = [n for n in names if n not in features]
    pairs = []
    for c in missing:
        close = _closest(c, spare, ignore_case=True)
        if close is not None:
            spare.remove(close)  # one column is offered for one feature only
            pairs.append(f"{close!r} to {c!r}")
    return f" Did you mean to rename {', '.join(pairs)}?" if pairs else ""


def _rows_as_columns(rows: list[Any] | tuple[Any, ...], features: list[str]) -> dict[str, list[Any]]:
    """Dict rows (``csv.DictReader``'s) as ``{column: values}``: every column a row holds, in the order first met,
    the ``features`` read as numbers (numeric strings too); a feature some row lacks is named with the row."""
    names: dict[Any, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    table: dict[str, list[Any]] = {}
    for name in names:
        if str(name) not in features:  # an ID or the target: not read
            table[str(name)] = [row.get(name) for row in rows]
            continue
        lacking = [i for i, row in enumerate(rows) if name not in row]
        if lacking:
            holds = next(i for i in range(len(rows)) if i not in set(lacking))
            raise ValueError(f"x's row {lacking[0]} (counting from 0) has no column {str(name)!r}, which row {holds} "
                             "holds; give every row the same columns")
        table[str(name)] = [_cell_number(row[name], str(name), i) for i, row in enumerate(rows)]
    return table


def _cell_number(value: Any, column: str, row: int) -> Any:
    """A cell of a dict row as a number: a numeric string (csv.DictReader's) becomes a float; anything else is kept.
    ``None`` (what csv.DictReader gives for the fields a short line lacks) is a missing cell, named."""
    if value is None:
        raise ValueError(f"x's column {column!r} is missing in row {row} (counting from 0: None, as csv.DictReader "
                         "gives for a line with fewer fields than the header); the model takes numbers (fill in or "
                         "drop that row)")
    if isinstance(value, str):
        text = value.strip()
        if not is_float_text(text):
            what = "is empty" if not text else f"holds {value!r}"
            raise ValueError(f"x's column {column!r} {what} in row {row} (counting from 0); the model takes numbers "
                             "(fill in or drop that row)")
        return float(text)
    return value


def _file_name_error(x: str | os.PathLike[str]) -> str:
    """What :meth:`LoadedRun.predict` says when given a file name (or another word) instead of rows."""
    text = os.fspath(x)
    path = Path(text).expanduser()
    kind = _numpy_file_kind(path) if path.is_file() else None
    if kind is not None:  # np.save / np.savez output, whatever its name: pandas.read_csv would fail on it
        read = f"numpy.load({text!r})" + (f"[{_npz_features_key(path)!r}]" if kind == ".npz" else "")
        return (f"predict takes the rows themselves, not a file name ({text!r}, an {kind} array): read the file "
                f"first — run.predict({read}) — or, from the shell, lrkit predict RUN {text}")
    if path.is_file() and path.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"):  # a spreadsheet: no CSV reader
        return (f"predict takes the rows themselves, not a file name ({text!r}, a spreadsheet): read the sheet first "
                f"— run.predict(pandas.read_excel({text!r})) — or save it as CSV for lrkit predict RUN rows.csv")
    if path.is_file():
        return (f"predict takes the rows themselves, not a file name ({text!r}): read the file first — "
                f"run.predict(pandas.read_csv({text!r})), or run.predict(list(csv.DictReader(open({text!r})))) — or, "
                f"from the shell, lrkit predict RUN {text}")
    return (f"predict(x={text!r}): a str is not rows of features; give rows (a list of rows, a {{column: values}} "
            "dict, a list of dict rows such as csv.DictReader gives, a DataFrame, an array or a tensor)")


def _npz_features_key(path: Path) -> str:
    """The array of an ``.npz`` that ``lrkit predict`` reads as the rows (``x`` in any case, ``features``, ...: as
    ``lrkit.train`` reads one; its only array), else ``'x'`` (the name to save them under)."""
    import zipfile

    from lrkit.train.data import _npz_key

    try:
        with zipfile.ZipFile(path) as z:
            names = [m[: -len(".npy")] for m in z.namelist() if m.endswith(".npy")]
        return _npz_key(dict.fromkeys(names), "x", path) or (names[0] if len(names) == 1 else "x")
    except (OSError, zipfile.BadZipFile, ValueError):  # unreadable, or two arrays that could each be the rows
        return "x"


def _numpy_file_kind(path: Path) -> str | None:
    """``".npy"`` / ``".npz"`` when the file's header says it is NumPy's (``\x93NUMPY``; a zip holding ``.npy``
    members), else ``None`` (also when it cannot be read)."""
    import zipfile

    try:
        with open(path, "rb") as f:
            head = f.read(6)
        if head == b"\x93NUMPY":
            return ".npy"
        if head.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(path) as z:
                return ".npz" if any(m.endswith(".npy") for m in z.namelist()) else None
    except (OSError, zipfile.BadZipFile):
        pass
    return None


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f"{w}.pt").is_file() for w in _WHICH)


def _near_miss(path: Path) -> str:
    """What to add to "no such run directory or checkpoint": the run folder lrkit keeps ``best.pt`` in for
    Ultralytics' ``runs/train/weights/best.pt``; else a did-you-mean for the first path part that does not exist,
    among the folders (or, last, the ``.pt`` files) beside it that lead to a run, or the runs beside it. ``""`` where
    nothing helps, or a folder on the way cannot be read: the hint never replaces the error."""
    try:
        return _near_miss_in(path)
    except OSError:
        return ""


def _near_miss_in(path: Path) -> str:
    parts = path.parts
    if "weights" in parts[:-1] or path.name == "weights":
        at = len(parts) - 1 - parts[::-1].index("weights")
        run_dir = Path(*parts[:at]) if at else Path(".")
        file = run_dir / (path.name if path.name.endswith(".pt") else "best.pt")
        if file.is_file():
            return (f". lrkit keeps {file.name} in the run folder itself, not in weights/ as Ultralytics does: "
                    f"{file}")
    i = next((k for k in range(len(parts)) if not Path(*parts[:k + 1]).exists()), None)
    if i is None:
        return ""
    base, rest = (Path(*parts[:i]) if i else Path(".")), parts[i + 1:]
    beside = sorted(p.name for p in base.iterdir()
                    if p.is_dir() or (not rest and p.suffix.lower() == ".pt" and p.is_file()))[:2000]

    def leads(name: str) -> bool:
        target = base.joinpath(name, *rest)
        return target.is_file() if target.suffix.lower() == ".pt" else _is_run_dir(target)

    candidates = [n for n in beside if leads(n)]
    close = _closest(parts[i], candidates)
    if close is not None:
        return f". Did you mean {str(Path(*parts[:i], close, *rest))!r}?"
    candidates = [n for n in candidates if _is_run_dir(base / n)]  # the runs beside it, not its .pt files
    if not rest and candidates:
        shown = [str(base / n) if i else n for n in candidates]
        return f" (the runs in {base}: {', '.join(shown[:8])}{' ...' if len(shown) > 8 else ''})"
    return ""
