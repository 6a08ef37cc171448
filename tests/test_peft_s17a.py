"""PEFT-wrapped models and the unused-column check (session 17a).

A Hugging Face batch goes to the model whole, ``model(**batch)``, and keys its ``forward()`` has no argument for are
left out with one warning. A PEFT ``PeftModel`` (``get_peft_model(model, LoraConfig(...))``) has a forward of
``(*args, **kwargs)`` that hands the keys on to the model it wraps, so the check saw ``**kwargs`` and kept every key:
the wrapped model then failed on them. The check now reads through PEFT's wrappers, duck-typed (no import of peft).

The fakes below copy the structure of peft's own classes (``src/peft/peft_model.py`` and
``src/peft/tuners/tuners_utils.py`` of huggingface/peft 0.21): ``PeftModel.base_model`` is a tuner (``LoraModel``,
a ``BaseTuner``) whose ``model`` is the user's model; ``PeftModel.forward(*args, **kwargs)`` drops its
``special_peft_forward_args`` and calls ``self.get_base_model()``; ``PeftModelForCausalLM.forward`` names the usual
arguments and passes the rest as ``**kwargs`` to ``self.base_model``; ``BaseTuner.forward(*args, **kwargs)`` calls
``self.model``; both forward missing attributes to what they wrap (``__getattr__``).

Tests marked "Bug:" failed before the fix (src/lrkit/_hf.py).
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from lrkit._hf import _forward_keys, own_loss

_DROPPED = "have no corresponding argument in"


class HFLike(nn.Module):
    """A transformers-like model: named arguments, ``labels`` -> an output with ``.loss``."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.head = nn.Linear(8, 3)
        self.kwargs_seen: list[list[str]] = []

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None) -> Any:
        h = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        logits = self.head(h.mean(1))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SimpleNamespace(loss=loss, logits=logits)


class AnyKeys(nn.Module):
    """A model whose forward takes any key (``**kwargs``)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.seen: list[list[str]] = []

    def forward(self, **kwargs: Any) -> Any:
        self.seen.append(sorted(kwargs))
        return {"loss": self.w * kwargs["labels"].float().mean()}


class FakeLoraConfig:
    """peft's ``LoraConfig``: only what the wrappers read."""

    def __init__(self, is_prompt_learning: bool = False) -> None:
        self.is_prompt_learning = is_prompt_learning


class FakeLoraModel(nn.Module):
    """peft's ``LoraModel`` (a ``BaseTuner``): ``self.model`` is the user's model; ``forward(*args, **kwargs)``."""

    def __init__(self, model: nn.Module, peft_config: dict[str, FakeLoraConfig], adapter_name: str) -> None:
        super().__init__()
        self.peft_config = peft_config
        self.active_adapter = adapter_name
        self.model = model
        self.inject_adapter(self.model, adapter_name)

    def inject_adapter(self, model: nn.Module, adapter_name: str) -> None:
        pass  # (peft replaces target layers with LoRA layers here)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(self.model, name)


class FakePeftModel(nn.Module):
    """peft's ``PeftModel``: ``base_model`` a tuner (or the model itself, for prompt learning)."""

    def __init__(self, model: nn.Module, peft_config: FakeLoraConfig, adapter_name: str = "default") -> None:
        super().__init__()
        self.active_adapter = adapter_name
        self.special_peft_forward_args = {"adapter_names", "alora_offsets"}
        self._is_prompt_learning = peft_config.is_prompt_learning
        if self._is_prompt_learning:
            self._peft_config = {adapter_name: peft_config}
            self.base_model = model
        else:
            self._peft_config = None
            self.base_model = FakeLoraModel(model, {adapter_name: peft_config}, adapter_name)

    @property
    def peft_config(self) -> dict[str, FakeLoraConfig]:
        return self._peft_config if self._is_prompt_learning else self.base_model.peft_config

    @property
    def active_peft_config(self) -> FakeLoraConfig:
        return self.peft_config[self.active_adapter]

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        kwargs = {k: v for k, v in kwargs.items() if k not in self.special_peft_forward_args}
        return self.get_base_model()(*args, **kwargs)

    def get_base_model(self) -> nn.Module:
        return self.base_model if self.active_peft_config.is_prompt_learning else self.base_model.model


class FakePeftModelForCausalLM(FakePeftModel):
    """peft's ``PeftModelForCausalLM``: the usual arguments named, the rest as ``**kwargs`` to ``self.base_model``."""

    def forward(self, input_ids: Any = None, attention_mask: Any = None, inputs_embeds: Any = None, labels: Any = None,
                output_attentions: Any = None, output_hidden_states: Any = None, return_dict: Any = None,
                task_ids: Any = None, **kwargs: Any) -> Any:
        kwargs = {k: v for k, v in kwargs.items() if k not in self.special_peft_forward_args}
        return self.base_model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                               labels=labels, output_attentions=output_attentions,
                               output_hidden_states=output_hidden_states, return_dict=return_dict, **kwargs)


def _batch(**extra: Any) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(0, 16, (4, 5), generator=g),
            "attention_mask": torch.ones(4, 5, dtype=torch.long),
            "labels": torch.randint(0, 3, (4,), generator=g), **extra}


def _own_loss_warnings(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = own_loss(model, batch)
    return loss, [str(w.message) for w in caught if _DROPPED in str(w.message)]


@pytest.mark.parametrize("wrap", [FakePeftModel, FakePeftModelForCausalLM], ids=["PeftModel", "ForCausalLM"])
def test_peft_model_drops_the_columns_its_base_model_does_not_take(wrap: type) -> None:
    """Bug: the PEFT wrapper's **kwargs kept 'idx', and the wrapped model failed on it."""
    inner = HFLike()
    model = wrap(inner, FakeLoraConfig())
    batch = _batch(idx=torch.arange(4))
    loss, dropped = _own_loss_warnings(model, batch)
    assert len(dropped) == 1 and "['idx']" in dropped[0]
    assert "HFLike.forward(" in dropped[0]  # the forward the keys go to, not the wrapper's (*args, **kwargs)
    expected = inner(**{k: v for k, v in batch.items() if k != "idx"}).loss
    assert torch.equal(loss, expected)
    assert "idx" in batch  # the caller's batch is not changed


def test_a_lora_tuner_on_its_own_is_read_through() -> None:
    """Bug: peft's tuner (``LoraModel``), used without a PeftModel, has a forward of (*args, **kwargs) too."""
    model = FakeLoraModel(HFLike(), {"default": FakeLoraConfig()}, "default")
    loss, dropped = _own_loss_warnings(model, _batch(text=["a", "b", "c", "d"]))
    assert len(dropped) == 1 and "['text']" in dropped[0]
    assert loss.ndim == 0


def test_a_prompt_learning_peft_model_reads_its_base_model_directly() -> None:
    """Bug: with prompt learning, ``get_base_model()`` is ``base_model`` itself (no tuner between)."""
    model = FakePeftModel(HFLike(), FakeLoraConfig(is_prompt_learning=True))
    _, dropped = _own_loss_warnings(model, _batch(idx=torch.arange(4)))
    assert len(dropped) == 1 and "['idx']" in dropped[0]


def test_the_keys_peft_takes_itself_are_kept() -> None:
    """The wrapper's own named arguments (``task_ids``) and PEFT's special arguments (``adapter_names``) are taken
    by the wrapper, not dropped, though the base model has no argument for them."""
    keys = _forward_keys(FakePeftModelForCausalLM(HFLike(), FakeLoraConfig()))
    assert keys is not None
    assert {"input_ids", "labels", "task_ids", "adapter_names", "alora_offsets"} <= keys
    assert "idx" not in keys
    plain = _forward_keys(FakePeftModel(HFLike(), FakeLoraConfig()))
    assert plain is not None and {"adapter_names", "input_ids"} <= plain and "task_ids" not in plain
    batch = _batch(adapter_names=["default"] * 4)
    _, dropped = _own_loss_warnings(FakePeftModel(HFLike(), FakeLoraConfig()), batch)
    assert dropped == []  # PeftModel takes adapter_names itself (and removes it before its base model)


def test_a_peft_model_over_a_forward_that_takes_any_key_keeps_every_key() -> None:
    inner = AnyKeys()
    model = FakePeftModel(inner, FakeLoraConfig())
    assert _forward_keys(model) is None
    _, dropped = _own_loss_warnings(model, _batch(idx=torch.arange(4)))
    assert dropped == [] and inner.seen == [["attention_mask", "idx", "input_ids", "labels"]]


def test_a_peft_model_whose_base_model_has_no_labels_argument_is_a_clear_error() -> None:
    """The check's error for a forward without ``labels`` names the base model's forward, not the wrapper's."""

    class NoLabels(nn.Module):
        def forward(self, input_ids: torch.Tensor) -> Any:
            return {"loss": input_ids.float().mean()}

    with pytest.raises(ValueError, match=r"NoLabels\.forward\(input_ids\) has no 'labels' argument"):
        own_loss(FakePeftModel(NoLabels(), FakeLoraConfig()), _batch())


def test_each_peft_model_is_read_for_its_own_base_model() -> None:
    """Two instances of one PEFT class over different models: each is read for its own (no per-class cache)."""
    a = FakePeftModel(HFLike(), FakeLoraConfig())
    b = FakePeftModel(AnyKeys(), FakeLoraConfig())
    assert _forward_keys(a) is not None and "idx" not in _forward_keys(a)
    assert _forward_keys(b) is None
    assert _forward_keys(a) is not None  # (read again after b: not overwritten)


def test_a_wrapper_that_only_looks_like_peft_by_attribute_forwarding_is_not_unwrapped() -> None:
    """A model whose forward names its arguments is read as it is, whatever attributes it has (a transformers model
    with adapters loaded through transformers' own integration has a ``peft_config`` but its own forward)."""
    inner = HFLike()
    inner.peft_config = {"default": FakeLoraConfig()}
    assert _forward_keys(inner) == frozenset({"input_ids", "attention_mask", "inputs_embeds", "labels",
                                              "output_attentions", "output_hidden_states", "return_dict"})


def test_find_lr_on_a_peft_model_with_an_extra_column() -> None:
    """Bug: end to end, ``find_lr`` on a PEFT-wrapped model and batches with an ``idx`` column failed."""
    torch.manual_seed(0)
    model = FakePeftModelForCausalLM(HFLike(), FakeLoraConfig())
    data = [_batch(idx=torch.arange(4)) for _ in range(3)]
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = lrkit.find_lr(model, opt, data, num_steps=10)
    assert sum(_DROPPED in str(w.message) for w in caught) == 1
    assert result.loss == "the model's own loss, from model(**batch)"
    assert len(result.lrs) >= 1
