"""Review of session 16's batch changes (16c): what the first version of each got wrong for real users.

1. A ``**kwargs: Unpack[TypedDict]`` was read as the whole of what ``forward()`` takes, so ``labels`` passed through
   such ``**kwargs`` (transformers' ``Qwen3_5ForSequenceClassification`` hands them on to its generic parent) was
   "dropped" and ``own_loss`` refused a model that ``model(**batch)`` runs. ``labels`` is never dropped from a
   forward with ``**kwargs`` (as Hugging Face's ``Trainer`` always keeps the label columns).
2. A positional-only ``input_ids`` was reported as a key the forward "has no argument for", beside a signature that
   shows it; it is no longer dropped, and Python's own error names it.
3. ``own_loss``'s error printed the batch's keys as ``dict_keys([...])``.
4. A batch with a key that is not a string, for a ``forward(**kwargs)``, raised a bare ``keywords must be strings``.
5. The dropped-columns warning pointed at a line inside lrkit, not the user's call.
6. ``move_to`` cached whether ``.to`` takes a device per class also for a ``.to`` set on the instance, so one
   instance's answer was used for another's (a batch whose own ``.to(device)`` was never called).
7. The per-model cache of a ``forward`` set on the instance kept its first reading after ``model.forward`` was set
   again (a key the new forward takes was dropped).
"""

from __future__ import annotations

import warnings
from types import ModuleType, SimpleNamespace
from typing import Any, TypedDict

import pytest
import torch
from torch import nn

try:
    from typing import Unpack
except ImportError:  # Python 3.10
    from typing_extensions import Unpack

import lrkit
from lrkit._hf import own_loss
from lrkit._step import move_to

_DROPPED = "have no corresponding argument in"


def _batch(*, extra: bool = False) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 16, (4, 5), generator=g)
    b: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones(4, 5, dtype=torch.long),
                         "labels": ids[:, 0] % 3}
    if extra:
        b["idx"] = torch.arange(4)
    return b


class _Generic(nn.Module):
    """The parent that takes ``labels`` (transformers' ``GenericForSequenceClassification``)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 3)
        self.seen: list[list[str]] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs: Any) -> Any:
        self.seen.append(sorted(k for k, v in (("input_ids", input_ids), ("labels", labels)) if v is not None))
        logits = self.embed(input_ids).mean(1)
        return SimpleNamespace(loss=None if labels is None else nn.functional.cross_entropy(logits, labels),
                               logits=logits)


class _Plain(nn.Module):
    """forward(input_ids, attention_mask=None, labels=None): no **kwargs, an ``idx`` column is dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> Any:
        return SimpleNamespace(loss=nn.functional.cross_entropy(self.embed(input_ids).mean(1), labels))


class _Kwargs(TypedDict, total=False):
    output_attentions: bool


class _PassesLabelsOn(_Generic):
    """``Qwen3_5ForSequenceClassification``'s shape: no ``labels`` argument of its own, ``**kwargs`` typed with a
    TypedDict that does not declare it, handed on to the parent that takes it."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,  # type: ignore[override]
                **kwargs: Unpack[_Kwargs]) -> Any:
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


# --- 1. labels through typed **kwargs --------------------------------------------------------------------------------
def test_labels_through_typed_kwargs_reach_the_model() -> None:
    model = _PassesLabelsOn()
    batch = _batch()
    assert model(**batch).loss is not None  # the model itself takes the batch whole
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = own_loss(model, batch)
    assert torch.equal(loss, model(**batch).loss) and model.seen[0] == ["input_ids", "labels"]
    assert not [w for w in caught if _DROPPED in str(w.message)]


def test_typed_kwargs_still_drop_the_other_undeclared_columns() -> None:
    model = _PassesLabelsOn()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        own_loss(model, _batch(extra=True))
    dropped = [str(w.message) for w in caught if _DROPPED in str(w.message)]
    assert len(dropped) == 1 and "['idx']" in dropped[0] and "labels" not in dropped[0].split("]")[0], dropped


def test_a_real_hugging_face_model_taking_labels_through_typed_kwargs(hf: ModuleType) -> None:
    """transformers' Qwen3.5 classifier, built from its config (no download; skipped where transformers cannot
    use this torch)."""
    from transformers import Qwen3_5ForSequenceClassification
    from transformers.models.qwen3_5 import configuration_qwen3_5 as c
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    text = c.Qwen3_5TextConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        vocab_size=64, head_dim=8, layer_types=["full_attention"], linear_num_key_heads=2,
        linear_num_value_heads=2, linear_key_head_dim=8, linear_value_head_dim=8, pad_token_id=0,
    )
    config = c.Qwen3_5Config(text_config=text.to_dict(), num_labels=3,
                             vision_config={"depth": 1, "hidden_size": 16, "num_heads": 2,
                                            "intermediate_size": 16, "out_hidden_size": 16})
    config.pad_token_id = 0
    torch.manual_seed(0)
    model = Qwen3_5ForSequenceClassification(config)  # a few thousand parameters, built from its config
    g = torch.Generator().manual_seed(0)
    batches = []
    for i in range(4):
        ids = torch.randint(1, 64, (2, 5), generator=g)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids[:, 0] % 3,
                        "idx": torch.arange(2) + 2 * i})
    assert model(**batches[0]).loss is not None  # the model takes the batch whole, labels through **kwargs
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = lrkit.find_lr(model, opt, batches, num_steps=10)
    dropped = [str(w.message) for w in caught if _DROPPED in str(w.message)]
    assert len(result.lrs) == 10 and len(dropped) == 1 and "['idx']" in dropped[0], dropped


# --- 2./3./4. messages -----------------------------------------------------------------------------------------------
class _PositionalOnly(nn.Module):
    def forward(self, input_ids: torch.Tensor, /, labels: torch.Tensor | None = None) -> Any:
        return {"loss": input_ids.float().mean()}


def test_a_positional_only_input_is_not_called_a_key_the_forward_has_no_argument_for() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as info:
            own_loss(_PositionalOnly(), {"input_ids": torch.ones(2, 3), "labels": torch.ones(2)})
    text = str(info.value)
    assert "positional-only" in text and "'input_ids'" in text, text
    assert "no argument for" not in text, text
    assert not [w for w in caught if _DROPPED in str(w.message)]


def test_the_error_lists_the_batch_keys_as_a_list() -> None:
    class TakesX(nn.Module):
        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
            return {"loss": x.mean()}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as info:
            own_loss(TakesX(), {"input_ids": torch.ones(2), "labels": torch.ones(2)})
    assert "keys ['input_ids', 'labels']" in str(info.value) and "dict_keys" not in str(info.value)


def test_a_key_that_is_not_a_string_is_named_for_a_forward_taking_kwargs() -> None:
    class Kw(nn.Module):
        def forward(self, **batch: Any) -> Any:
            return {"loss": batch["labels"].mean()}

    with pytest.raises(ValueError) as info:
        own_loss(Kw(), {0: torch.ones(2), "input_ids": torch.ones(2), "labels": torch.ones(2)})
    text = str(info.value)
    assert "[0]" in text and "string" in text and "step_fn=lambda model, batch: loss" in text, text


# --- 5. the warning points at the caller -----------------------------------------------------------------------------
def test_the_dropped_columns_warning_points_at_the_user_s_call() -> None:
    model = _Plain()
    batches = [_batch(extra=True) for _ in range(3)]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lrkit.find_lr(model, opt, batches, num_steps=10)
        own_loss(_Plain(), batches[0])
    ours = [w for w in caught if _DROPPED in str(w.message)]
    assert len(ours) == 2 and all(w.filename == __file__ for w in ours), [(w.filename, w.lineno) for w in ours]


# --- 6. move_to: a .to set on the instance ----------------------------------------------------------------------------
def test_move_to_reads_a_to_set_on_each_instance() -> None:
    other = SimpleNamespace(x=torch.zeros(1), to=lambda: "a to of another meaning")
    assert move_to(other, torch.device("meta")) is other
    calls: list[torch.device] = []
    batch = SimpleNamespace(x=torch.zeros(1))

    def to(device: torch.device) -> SimpleNamespace:
        calls.append(device)
        return SimpleNamespace(x=batch.x.to(device))

    batch.to = to
    moved = move_to(batch, torch.device("meta"))
    assert calls == [torch.device("meta")] and moved.x.device.type == "meta"
    assert move_to(other, torch.device("meta")) is other  # and the first is still read as its own


# --- 7. a forward set on the instance again ---------------------------------------------------------------------------
def test_a_forward_set_again_on_the_instance_is_read_again() -> None:
    model = _Generic()

    def first(input_ids: torch.Tensor, labels: torch.Tensor) -> Any:
        return _Generic.forward(model, input_ids, None, labels)

    got: list[Any] = []

    def second(input_ids: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> Any:
        got.append(idx)
        return _Generic.forward(model, input_ids, None, labels)

    batch = _batch(extra=True)
    del batch["attention_mask"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.forward = first  # type: ignore[method-assign]
        own_loss(model, batch)
        model.forward = second  # type: ignore[method-assign]
        own_loss(model, batch)
    assert len(got) == 1 and torch.equal(got[0], batch["idx"])
    assert len([w for w in caught if _DROPPED in str(w.message)]) == 1  # only first() drops idx
