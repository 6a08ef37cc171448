"""The default head= finds the freshly initialised heads of Hugging Face's task models (session 14).

``backbone_lr_scale`` exists for fine-tuning: the pretrained backbone slower, the new head at the peak LR. The
default ``head=("head", "fc", "classifier")`` missed GPT-2's/Llama's ``score``, BART's ``classification_head``, the
``qa_outputs`` of question answering and DistilBERT's ``pre_classifier``: those heads — random weights — then either
trained at the backbone's LR or, when nothing matched, needed an explicit ``head=``.
"""

from __future__ import annotations

from types import ModuleType

import pytest
import torch
from torch import nn

from lrkit.scaling import DEFAULT_HEAD, param_groups


def _head_names(model: nn.Module, **kw: object) -> list[str]:
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, 1e-3, backbone_lr_scale=0.1, **kw)  # type: ignore[arg-type]
    for g in groups:
        expected = 1e-3 if g["name"].startswith("head/") else 1e-4
        assert g["lr"] == pytest.approx(expected), g["name"]
    return sorted(names[id(p)] for g in groups if g["name"].startswith("head/") for p in g["params"])


def _tiny(hf: ModuleType, kind: str) -> nn.Module:
    torch.manual_seed(0)
    small = dict(vocab_size=100, max_position_embeddings=64)
    if kind == "gpt2_cls":
        return hf.GPT2ForSequenceClassification(hf.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2,
                                                              n_positions=64, num_labels=3, pad_token_id=0))
    if kind == "llama_cls":
        return hf.LlamaForSequenceClassification(hf.LlamaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
            num_labels=3, pad_token_id=0, **small))
    if kind == "bart_cls":
        return hf.BartForSequenceClassification(hf.BartConfig(
            d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=64, decoder_ffn_dim=64, pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=3,
            **small))
    if kind == "bert_qa":
        return hf.BertForQuestionAnswering(hf.BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **small))
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "head"), [
    ("gpt2_cls", ["score.weight"]),
    ("llama_cls", ["score.weight"]),
    ("bart_cls", ["classification_head.dense.bias", "classification_head.dense.weight",
                  "classification_head.out_proj.bias", "classification_head.out_proj.weight"]),
    ("bert_qa", ["qa_outputs.bias", "qa_outputs.weight"]),
])
def test_default_head_finds_hugging_face_task_heads(hf: ModuleType, kind: str, head: list[str]) -> None:
    assert _head_names(_tiny(hf, kind)) == head


def test_default_head_finds_plain_torch_heads_as_before() -> None:
    class Net(nn.Module):
        def __init__(self, head_name: str) -> None:
            super().__init__()
            self.body = nn.Linear(4, 8)
            setattr(self, head_name, nn.Linear(8, 2))

    for name in ("head", "fc", "classifier", "score"):
        assert _head_names(Net(name)) == [f"{name}.bias", f"{name}.weight"]
    # only whole top-level names: a backbone module whose name merely contains one is not a head
    class Backbone(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scorer = nn.Linear(4, 8)
            self.fc_block = nn.Linear(8, 8)
            self.head = nn.Linear(8, 2)

    assert _head_names(Backbone()) == ["head.bias", "head.weight"]


def test_default_head_is_the_documented_tuple() -> None:
    assert DEFAULT_HEAD == ("head", "fc", "classifier", "pre_classifier", "score", "classification_head",
                            "qa_outputs")
    assert param_groups.__kwdefaults__["head"] is DEFAULT_HEAD
