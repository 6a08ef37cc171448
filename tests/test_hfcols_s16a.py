"""Hugging Face style batches with extra columns (session 16a).

``find_lr``, ``choose_lr0`` and ``lrkit.train`` send a batch with ``labels`` and no x/input key to the model whole,
``model(**batch)``. A column the model's ``forward()`` does not take (an ``idx``, a list of the raw texts) made that
call fail; now it is left out, as Hugging Face's ``Trainer`` drops unused columns, with one warning per run naming
it. The CLI's task file may define neither ``loss_fn`` nor ``step_fn``, as the Python API may.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, TypedDict

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

try:
    from typing import Unpack
except ImportError:  # Python 3.10
    from typing_extensions import Unpack

import lrkit
from lrkit._hf import own_loss
from lrkit.cli.app import build_app
from lrkit.cli.find import _task_file_advice, run_find
from lrkit.finder.demo import load_task_file
from lrkit.train.auto import choose_lr0

runner = CliRunner()
_DROPPED = "have no corresponding argument in"


class HFLike(nn.Module):
    """forward(input_ids, attention_mask=None, labels=None) -> an object with .loss and .logits, as HF's models;
    records the keyword names of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.head = nn.Linear(8, 3)
        self.calls: list[list[str]] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> Any:
        self.calls.append(sorted(k for k, v in (("input_ids", input_ids), ("attention_mask", attention_mask),
                                                ("labels", labels)) if v is not None))
        h = self.embed(input_ids)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        logits = self.head((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SimpleNamespace(loss=loss, logits=logits)


def _batches(n: int = 6, *, extra: bool = True, seed: int = 0) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        ids = torch.randint(0, 16, (4, 5), generator=g)
        b: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones(4, 5, dtype=torch.long),
                             "labels": ids[:, 0] % 3}
        if extra:
            b["idx"] = torch.arange(4) + 4 * i
            b["text"] = [f"sample {4 * i + j}" for j in range(4)]
        out.append(b)
    return out


def _dropped_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if _DROPPED in str(w.message)]


def _find(model: nn.Module, batches: list[Any], **kw: Any) -> tuple[Any, list[str]]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = lrkit.find_lr(model, opt, batches, num_steps=12, **kw)
    return result, _dropped_warnings(caught)


# ------------------------------------------------------------------------------------------ own_loss / find_lr
def test_find_lr_drops_columns_forward_does_not_take_with_one_warning_naming_them() -> None:
    model = HFLike()
    result, dropped = _find(model, _batches())
    assert len(result.lrs) >= 10
    assert len(dropped) == 1, dropped
    assert "['idx', 'text']" in dropped[0] and "HFLike.forward(input_ids, attention_mask, labels)" in dropped[0]
    assert model.calls and all(c == ["attention_mask", "input_ids", "labels"] for c in model.calls)


def test_each_find_lr_run_names_the_dropped_columns_once() -> None:
    model = HFLike()
    assert len(_find(model, _batches())[1]) == 1
    assert len(_find(model, _batches())[1]) == 1  # a second run on the same model says it again, once


def test_batches_without_extra_columns_give_no_warning() -> None:
    assert _find(HFLike(), _batches(extra=False))[1] == []


def test_the_caller_s_batch_is_not_changed() -> None:
    batch = _batches(1)[0]
    keys = sorted(batch)
    loss = own_loss(HFLike(), batch)
    assert loss.ndim == 0 and sorted(batch) == keys


def test_a_forward_without_labels_is_a_clear_error() -> None:
    class NoLabels(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Embedding(16, 2)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
            return self.lin(input_ids)

    with pytest.raises(ValueError, match=r"NoLabels\.forward\(input_ids, attention_mask\) has no 'labels' argument.*"
                                         r"step_fn=lambda model, batch: loss"):
        own_loss(NoLabels(), _batches(1)[0])


def test_a_model_that_still_fails_after_dropping_names_what_was_dropped() -> None:
    class TakesX(nn.Module):
        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
            return SimpleNamespace(loss=x.float().mean())

    with pytest.raises(ValueError, match=r"model\(\*\*batch\) \(without the keys \['attention_mask', 'idx', "
                                         r"'input_ids', 'text'\], which TakesX\.forward\(x, labels\) has no argument "
                                         r"for\).*missing 1 required positional argument: 'x'"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            own_loss(TakesX(), _batches(1)[0])


def test_a_forward_taking_kwargs_gets_every_key() -> None:
    seen: list[list[str]] = []

    class Kw(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = HFLike()

        def forward(self, *args: Any, **kwargs: Any) -> Any:  # a PEFT-style wrapper
            seen.append(sorted(kwargs))
            return self.inner(kwargs["input_ids"], kwargs["attention_mask"], kwargs["labels"])

    _, dropped = _find(Kw(), _batches())
    assert dropped == [] and seen and all(s == ["attention_mask", "idx", "input_ids", "labels", "text"] for s in seen)


def test_wrapped_models_are_read_through_their_wrapper() -> None:
    model = HFLike()
    for wrapped in (nn.DataParallel(model), torch.compile(model, backend="eager")):
        model.calls.clear()
        _, dropped = _find(wrapped, _batches())  # type: ignore[arg-type]
        assert len(dropped) == 1 and "HFLike.forward(" in dropped[0], dropped
        assert model.calls and all(c == ["attention_mask", "input_ids", "labels"] for c in model.calls)


def test_a_forward_set_on_the_instance_is_read_from_the_instance() -> None:
    model, other = HFLike(), HFLike()
    calls: list[list[str]] = []

    def forward(input_ids: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> Any:  # takes idx, not the mask
        calls.append(["idx"])
        return HFLike.forward(model, input_ids, None, labels)

    model.forward = forward  # type: ignore[method-assign]
    _, dropped = _find(model, _batches())
    assert len(dropped) == 1 and "['attention_mask', 'text']" in dropped[0], dropped
    assert calls
    _, dropped = _find(other, _batches())  # the class's own forward, for another instance of it
    assert len(dropped) == 1 and "['idx', 'text']" in dropped[0], dropped


def test_the_signature_is_read_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fresh(HFLike):  # a class no other test has used: nothing cached for it
        pass

    reads: list[Any] = []
    real = inspect.signature

    def counting(fn: Any, *a: Any, **k: Any) -> inspect.Signature:
        if getattr(fn, "__func__", None) is HFLike.forward:
            reads.append(fn)
        return real(fn, *a, **k)

    monkeypatch.setattr(inspect, "signature", counting)
    _find(Fresh(), _batches(extra=False))
    _find(Fresh(), _batches(extra=False))
    assert len(reads) == 1  # two runs of 12 steps, two instances: one read
    _find(Fresh(), _batches())
    assert len(reads) == 2  # one more, for the warning's text, not one per step


class _Extra(TypedDict, total=False):
    output_attentions: bool


class _Typed(HFLike):
    """``**kwargs: Unpack[TypedDict]``, as Hugging Face's models (BERT, Llama, ...) declare theirs (a string here,
    under ``from __future__ import annotations``: read from the module's names)."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,  # type: ignore[override]
                labels: torch.Tensor | None = None, **kwargs: Unpack[_Extra]) -> Any:
        return super().forward(input_ids, attention_mask, labels)


def test_typed_kwargs_take_only_the_keys_they_declare() -> None:
    batches = _batches()
    for b in batches:
        b["output_attentions"] = False
    _, dropped = _find(_Typed(), batches)
    assert len(dropped) == 1 and "['idx', 'text']" in dropped[0], dropped


# ------------------------------------------------------------------------------------------ choose_lr0 / train
def test_choose_lr0_names_the_dropped_columns_once() -> None:
    model = HFLike()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choose_lr0(model, opt, _batches(8), _batches(2, seed=1), total_steps=100,
                   make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0),
                   log=lambda line: None)
    assert len(_dropped_warnings(caught)) == 1


def _samples(n: int, seed: int) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        ids = torch.randint(0, 16, (5,), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones(5, dtype=torch.long), "labels": ids[0] % 3,
                    "idx": i, "text": f"sample {i}"})
    return out


@pytest.mark.parametrize("lr0", [3e-3, "auto"])
def test_lrkit_train_drops_the_columns_with_one_warning(tmp_path: Path, lr0: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = lrkit.train(HFLike(), data=(_samples(200, 1), _samples(16, 2)), project=str(tmp_path), epochs=2,
                        lr0=lr0, batch=8, nbs=8, plots=False, verbose=False, monitor=False, optimizer="AdamW")
    assert len(r.history) == 2 and r.metric_name == "val_loss"
    dropped = _dropped_warnings(caught)
    assert len(dropped) == 1 and "['idx', 'text']" in dropped[0], dropped


# ------------------------------------------------------------------------------------------ CLI
_TASK = '''
import torch
from types import SimpleNamespace
from torch import nn


class HFLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.head(self.embed(input_ids).mean(1))
        return SimpleNamespace(loss=nn.functional.cross_entropy(logits, labels), logits=logits)


def model():
    torch.manual_seed(0)
    return HFLike()


def optimizer(params):
    return torch.optim.SGD(params, lr=0.01)


def train_loader():
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(8):
        ids = torch.randint(0, 16, (4, 5), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones(4, 5, dtype=torch.long),
                    "labels": ids[:, 0] % 3, "idx": torch.arange(4)})
    return out
'''

_XY_TASK = '''
import torch


def model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


def optimizer(params):
    return torch.optim.SGD(params, lr=0.01)


def train_loader():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(8)]
'''


def test_a_task_file_with_neither_loss_fn_nor_step_fn_runs_hugging_face_batches(tmp_path: Path) -> None:
    task = tmp_path / "hf_task.py"
    task.write_text(_TASK)
    loaded = load_task_file(task)
    assert loaded.loss_fn is None and loaded.step_fn is None
    res = runner.invoke(build_app(), ["find", str(task), "--num-steps", "12", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert text.count(_DROPPED) == 1 and "['idx']" in text, text
    assert "step_fn=lambda" not in text, text  # the task file's advice, not the Python API's
    assert (tmp_path / "o" / "lr_find.json").exists()


def test_a_task_file_with_neither_uses_the_default_loss_on_xy_batches_as_the_api_does(tmp_path: Path) -> None:
    task = tmp_path / "xy_task.py"
    task.write_text(_XY_TASK)
    result, out_dir = run_find(str(task), num_steps=12, out=tmp_path / "o")
    t = load_task_file(task)
    api = lrkit.find_lr(t.model, t.optimizer, t.train_loader, num_steps=12)  # the API, no loss_fn: the default
    assert result.losses == api.losses and (out_dir / "lr_find.json").exists()


def test_a_task_file_with_neither_whose_batches_the_default_loss_cannot_read_names_both(tmp_path: Path) -> None:
    # float targets (8,) against outputs (8, 3): the default loss refuses them; the advice is a task file's
    task = tmp_path / "odd_task.py"
    task.write_text(_XY_TASK.replace("torch.randint(0, 3, (8,), generator=g)", "torch.randn(8, generator=g)"))
    res = runner.invoke(build_app(), ["find", str(task), "--num-steps", "12", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "define loss_fn(output, target) in the task file to fit them" in text, text
    assert "define step_fn(model, batch) in the task file" in text, text
    assert "step_fn=lambda" not in text and "pass a loss_fn" not in text, text
    assert not (tmp_path / "o").exists()


def test_a_task_file_with_a_misspelt_loss_fn_is_still_refused(tmp_path: Path) -> None:
    task = tmp_path / "typo_task.py"
    task.write_text(_XY_TASK + "\n\ndef lossfn():\n    return torch.nn.functional.cross_entropy\n")
    with pytest.raises(ValueError, match=r"loss_fn\(\).*or step_fn\(model, batch\).*did you mean loss_fn"):
        load_task_file(task)


def test_task_file_advice_for_a_hugging_face_batch_with_a_loss_fn_says_to_drop_it() -> None:
    message = ("cannot split a dict batch with keys ['input_ids', 'labels'] into input and target: the default loss "
               "needs one of ('x',) and one of ('y',); pass step_fn=lambda model, batch: loss instead (with no "
               "loss_fn, a batch with 'labels' and no input key goes to the model whole, model(**batch), and the loss "
               "it returns is used, as a Hugging Face model computes it)")
    text = _task_file_advice(message)
    assert "with no loss_fn" not in text and "step_fn=lambda" not in text
    assert "a task file that defines neither loss_fn nor step_fn" in text
    assert "define step_fn(model, batch) in the task file" in text


def test_train_cli_with_a_model_factory_is_unaffected(tmp_path: Path) -> None:
    (tmp_path / "mymodels.py").write_text(
        "import torch\n\ndef factory(num_classes):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))\n")
    res = subprocess.run(
        [sys.executable, "-m", "lrkit", "train", "data=digits", "model=mymodels:factory", "epochs=1", "plots=False",
         f"project={tmp_path / 'runs'}", "lr0=0.01"],
        cwd=tmp_path, capture_output=True, text=True, env={**_env(), "PYTHONPATH": str(tmp_path)}, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert _DROPPED not in res.stdout + res.stderr


def _env() -> dict[str, str]:
    import os
    return dict(os.environ)


# ------------------------------------------------------------------------------------------ transformers
def test_tiny_gpt2_and_bert_with_extra_columns(hf: ModuleType) -> None:
    """A tiny GPT-2 and BERT built from configs (no download; skipped where transformers cannot use this torch)."""
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=32, n_positions=16,
                                      bos_token_id=0, eos_token_id=0))
    g = torch.Generator().manual_seed(0)
    batches = []
    for i in range(4):
        ids = torch.randint(0, 32, (2, 6), generator=g)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids,
                        "idx": torch.arange(2) + 2 * i, "text": ["a", "b"]})
    result, dropped = _find(gpt2, batches)  # GPT-2's forward takes **kwargs: every key goes to it, as before
    assert len(result.lrs) >= 10 and dropped == []
    bert = BertForSequenceClassification(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                    intermediate_size=8, vocab_size=32, num_labels=2))
    for b in batches:
        b["labels"] = b["input_ids"][:, 0] % 2
    # BERT's **kwargs are typed (Unpack[TransformersKwargs]): the columns it does not declare are dropped
    result, dropped = _find(bert, batches)
    assert len(result.lrs) >= 10 and len(dropped) == 1 and "['idx', 'text']" in dropped[0], dropped
