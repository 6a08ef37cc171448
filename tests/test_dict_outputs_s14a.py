"""Session 14a: ``find_lr``'s (and ``choose_lr0``'s) default loss on a model whose forward returns a dict-like output
(a Hugging Face ``ModelOutput``, ``{"logits": ...}``), as ``lrkit.train`` already reads it: the ``logits`` tensor is
the output (one helper, :func:`lrkit._step.model_outputs`, shared by the trainer, the finder and ``lr0="auto"``).
Outputs without a ``logits`` tensor (a dict of other keys, a tuple) are still refused, with a message that names the
output and the way out (``loss_fn=``/``step_fn=``). The Hugging Face models are built from tiny configs, offline.

Tests marked "Bug:" failed before the fix (src/lrkit/_step.py).
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub: every model here is built from a config

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lrkit
from lrkit.train.auto import choose_lr0


class _Wrapped(nn.Module):
    """A linear classifier whose forward returns its logits as ``kind``: the tensor itself, ``{"logits": t}``, an
    ``OrderedDict`` (what a ``ModelOutput`` is), a read-only Mapping, a dict without logits, or a tuple."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> Any:
        out = self.lin(x)
        if self.kind == "tensor":
            return out
        if self.kind == "dict":
            return {"logits": out, "hidden_states": None}
        if self.kind == "ordereddict":
            return OrderedDict(loss=None, logits=out)
        if self.kind == "mapping":
            return _ReadOnly({"logits": out})
        if self.kind == "no_logits":
            return {"hidden": out, "scores": out.mean()}
        if self.kind == "logits_none":
            return {"logits": None, "hidden": out}
        return (out, out.mean())


class _ReadOnly(Mapping[str, Any]):
    """A Mapping that is not a dict (as some output containers are)."""

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def __getitem__(self, k: str) -> Any:
        return self._d[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]


def _model(kind: str) -> _Wrapped:
    torch.manual_seed(0)
    return _Wrapped(kind)


@pytest.mark.parametrize("kind", ["dict", "ordereddict", "mapping"])
def test_find_lr_default_loss_reads_the_logits_of_a_dict_output(kind: str) -> None:
    """Bug: ``find_lr`` with its default loss refused a model returning ``{"logits": ...}`` ('model(x) returned a
    dict, but the default loss needs a tensor of outputs') although ``lrkit.train`` reads its logits. Now the curve is
    the one the same model returning the tensor gives, step for step, and the model is restored."""
    ref_model = _model("tensor")
    ref = lrkit.find_lr(ref_model, torch.optim.SGD(ref_model.parameters(), lr=0.1), _batches(), num_steps=20)
    model = _model(kind)
    before = copy.deepcopy(model.state_dict())
    got = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), num_steps=20)
    assert len(got.losses) == len(ref.losses) > 5
    assert got.lrs == pytest.approx(ref.lrs)
    assert got.losses == pytest.approx(ref.losses, rel=1e-6)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(("kind", "what"), [
    ("no_logits", r"returned a dict with keys \['hidden', 'scores'\] and no 'logits' tensor"),
    ("logits_none", r"returned a dict with keys \['hidden', 'logits'\] and no 'logits' tensor"),
    ("tuple", r"returned a tuple,"),
])
def test_an_output_without_a_logits_tensor_is_still_refused_by_name(kind: str, what: str) -> None:
    """A dict without a ``logits`` tensor, or a tuple, is still an error before any step: it names the output (a
    dict's keys) and says to pass loss_fn or step_fn; the model is left as it was."""
    model = _model(kind)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=rf"{what}.*default loss needs a tensor.*loss_fn=.*step_fn=") as e:
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), num_steps=10)
    if kind != "tuple":  # the fix it shows picks a key of the output, not the logits it lacks
        assert "out['logits']" not in str(e.value)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_a_user_loss_fn_still_gets_the_model_own_output() -> None:
    """``loss_fn`` receives the model's output as it is (the dict), as before: only the default loss reads logits."""
    seen: list[type] = []

    def loss_fn(out: Any, y: torch.Tensor) -> torch.Tensor:
        seen.append(type(out))
        return F.cross_entropy(out["logits"], y)

    model = _model("dict")
    lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), loss_fn=loss_fn, num_steps=10)
    assert seen and set(seen) == {dict}


def test_default_loss_mismatch_on_a_dict_output_describes_the_logits() -> None:
    """A default loss that cannot compare the logits with the targets names the logits' shape (what it compared)."""
    model = _model("dict")
    bad = [(torch.randn(8, 4), torch.randn(8, 5))]  # float targets of another shape: MSE would only broadcast
    with pytest.raises(ValueError, match=r"output is a tensor of shape \(8, 3\)"):
        lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), bad, num_steps=10)


def test_choose_lr0_default_loss_reads_the_logits_of_a_dict_output() -> None:
    """Bug: ``choose_lr0`` (``lr0="auto"``'s machinery) called by hand with its default loss refused a dict-output
    model as find_lr did; now it chooses the LR the tensor-output model gets."""
    sched = lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / n)
    chosen = []
    for kind in ("tensor", "dict"):
        model = _model(kind)
        torch.manual_seed(1)
        auto = choose_lr0(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(), _batches()[:2],
                          total_steps=200, make_scheduler=sched)
        chosen.append(auto.lr)
    assert chosen[1] == pytest.approx(chosen[0], rel=1e-6)


# ------------------------------------------------------------------------------------ Hugging Face transformers
def _bert(hf: ModuleType) -> nn.Module:
    torch.manual_seed(0)
    return hf.BertForSequenceClassification(hf.BertConfig(
        vocab_size=50, max_position_embeddings=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


def _gpt2(hf: ModuleType) -> nn.Module:
    torch.manual_seed(0)
    return hf.GPT2LMHeadModel(hf.GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32,
                                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                            bos_token_id=0, eos_token_id=0, pad_token_id=0))


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # 12 steps of a random tiny model: flat
def test_find_lr_default_loss_on_hf_model_outputs(hf: ModuleType) -> None:
    """Bug: a ``transformers`` model (its forward returns a ``ModelOutput``) on ``(input_ids, labels)`` batches was
    refused by find_lr's default loss. Now its logits are read: a sequence classifier's ``(B, C)`` against class
    labels, and a causal LM's ``(B, T, V)`` against next tokens ``(B, T)`` per position — the same curve as an
    explicit cross-entropy ``loss_fn`` over ``out.logits`` gives."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 50, (32, 10), generator=g)
    cls_batches = [(ids[i:i + 8], ids[i:i + 8, 0] % 3) for i in range(0, 32, 8)]
    lm_batches = [(ids[i:i + 8, :-1], ids[i:i + 8, 1:]) for i in range(0, 32, 8)]

    def cls_loss(out: Any, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.logits, y)

    def lm_loss(out: Any, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), y.reshape(-1))

    for build, batches, explicit in ((_bert, cls_batches, cls_loss), (_gpt2, lm_batches, lm_loss)):
        curves = []
        for loss_fn in (None, explicit):
            model = build(hf)
            opt = torch.optim.AdamW(model.parameters())
            curves.append(lrkit.find_lr(model, opt, batches, num_steps=12, loss_fn=loss_fn))
        default, reference = curves
        assert len(default.losses) == len(reference.losses) > 3, build.__name__
        assert default.losses == pytest.approx(reference.losses, rel=1e-5), build.__name__
