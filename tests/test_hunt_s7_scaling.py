"""Bug hunt on the s7 layer rule of ``layer_names`` / ``param_groups(layer_decay=...)`` / ``freeze_layers``.

Bugs found (both fixed in src/lrkit/scaling.py):

1. Parallel branches were split into depths after all when each branch holds its own stack: an MoE whose experts
   are small MLPs with a ``layers`` ModuleList gave ``block.moe.experts.0.layers.0, ..., experts.2.layers.1`` as six
   layers one above the other (expert 2's last linear at d**-1 x expert 0's first one's LR), and a top-level
   ``heads`` ModuleList of MLP heads was numbered ``heads.0.layers.0 .. heads.1.layers.1``. The inside of a list (or
   dict) named like parallel branches (``*expert*``, ``*heads``) is never a source of depths now.
2. A nested stack named in the common ``<prefix>_layers`` / ``<prefix>_blocks`` way (``encoder_layers``,
   ``decoder_blocks``, diffusers' ``down_blocks``, wav2vec2's ``conv_layers``, ``layers_``) was silently one layer
   (before s7 every nested ModuleList was a stack): ``freeze=2`` froze the whole encoder. Such names are stacks now.

Known answers: the layer lists of real layouts written out by hand, ``lr_scale = d ** (L - 1 - i)`` and which
parameters ``freeze_layers(model, n)`` turns off.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import lrkit
from lrkit.scaling import freeze_layers, layer_names


def _scales(model: nn.Module, d: float = 0.5) -> dict[str, float]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g["lr_scale"] for g in lrkit.param_groups(model, 1.0, layer_decay=d) for p in g["params"]}


class MLP(nn.Module):
    """A small MLP built as people often do: its linears in a ModuleList called ``layers``."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d, d), nn.Linear(d, d)])


class MoE(nn.Module):
    def __init__(self, d: int = 8, n: int = 3) -> None:
        super().__init__()
        self.gate = nn.Linear(d, n)
        self.experts = nn.ModuleList([MLP(d) for _ in range(n)])


class MoENet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.blocks = nn.ModuleList([nn.Module() for _ in range(2)])
        for b in self.blocks:
            b.moe = MoE()
        self.head = nn.Linear(8, 2)


def test_experts_with_their_own_layers_list_stay_at_their_blocks_depth() -> None:
    m = MoENet()
    assert layer_names(m) == ["embed", "blocks.0", "blocks.1", "head"]
    s = _scales(m)
    for i in range(2):  # block i is layer i + 1 of 0..3: every expert parameter at d ** (2 - i)
        assert {v for k, v in s.items() if k.startswith(f"blocks.{i}.moe.experts.")} == {0.5 ** (2 - i)}


class OneMoEBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.block = nn.Module()
        self.block.moe = MoE()
        self.head = nn.Linear(8, 2)


def test_a_single_moe_block_with_mlp_experts_is_one_layer() -> None:
    m = OneMoEBlock()
    assert layer_names(m) == ["embed", "block", "head"]
    assert {v for k, v in _scales(m).items() if ".experts." in k} == {0.5}


@pytest.mark.parametrize("container", ["list", "dict"])
def test_top_level_heads_with_their_own_layers_are_one_layer(container: str) -> None:
    class MultiHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Linear(4, 8)
            heads = [MLP() for _ in range(2)]
            self.heads = nn.ModuleList(heads) if container == "list" else nn.ModuleDict({"a": heads[0], "b": heads[1]})

    m = MultiHead()
    assert layer_names(m) == ["backbone", "heads"]
    s = _scales(m)
    assert {v for k, v in s.items() if k.startswith("heads.")} == {1.0} and s["backbone.weight"] == 0.5
    frozen = freeze_layers(m, 1)
    assert set(frozen) == {"backbone.weight", "backbone.bias"}


class Encoder(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 8)
        setattr(self, name, nn.ModuleList([nn.Linear(8, 8) for _ in range(3)]))


class EncNet(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.encoder = Encoder(name)
        self.head = nn.Linear(8, 2)


@pytest.mark.parametrize("name", ["encoder_layers", "decoder_blocks", "down_blocks", "res_blocks", "conv_layers",
                                  "layers_", "hidden_layers", "Blocks"])
def test_a_nested_stack_with_a_compound_stack_name_counts_its_blocks(name: str) -> None:
    m = EncNet(name)
    want = ["encoder.stem", *(f"encoder.{name}.{i}" for i in range(3)), "head"]
    assert layer_names(m) == want
    s = _scales(m)
    for i in range(3):  # layer i + 1 of 0..4
        assert s[f"encoder.{name}.{i}.weight"] == 0.5 ** (3 - i)
    frozen = freeze_layers(m, 2)  # the stem and the first block only
    assert set(frozen) == {"encoder.stem.weight", "encoder.stem.bias", f"encoder.{name}.0.weight",
                           f"encoder.{name}.0.bias"}
    assert getattr(m.encoder, name)[1].weight.requires_grad


@pytest.mark.parametrize("name", ["branches", "paths", "towers"])
def test_other_nested_names_still_stay_whole(name: str) -> None:
    assert layer_names(EncNet(name)) == ["encoder", "head"]


def test_torch_transformer_counts_encoder_and_decoder_layers() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # enable_nested_tensor note
        t = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=3, dim_feedforward=16)
    assert layer_names(t) == ["encoder.layers.0", "encoder.layers.1", "encoder.norm", "decoder.layers.0",
                              "decoder.layers.1", "decoder.layers.2", "decoder.norm"]
    frozen = freeze_layers(t, 3)  # the whole encoder, none of the decoder
    assert all(not p.requires_grad for n, p in t.named_parameters() if n.startswith("encoder."))
    assert all(p.requires_grad for n, p in t.named_parameters() if n.startswith("decoder."))
    assert len(frozen) == sum(1 for n, _ in t.named_parameters() if n.startswith("encoder."))


def test_hand_built_resnet_keeps_sequential_stages_whole() -> None:
    class BasicBlock(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(4)
            for i in range(1, 5):
                setattr(self, f"layer{i}", nn.Sequential(BasicBlock(4), BasicBlock(4)))
            self.fc = nn.Linear(4, 10)

    m = ResNet()
    assert layer_names(m) == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
    frozen = freeze_layers(m, 3)
    assert {n.split(".")[0] for n in frozen} == {"conv1", "bn1", "layer1"}


def test_nanogpt_bert_and_vit_layouts() -> None:
    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = nn.ModuleDict({"wte": nn.Embedding(10, 8), "h": nn.ModuleList(
                [nn.Linear(8, 8) for _ in range(2)]), "ln_f": nn.LayerNorm(8)})
            self.lm_head = nn.Linear(8, 10)

    assert layer_names(GPT()) == ["transformer.wte", "transformer.h.0", "transformer.h.1", "transformer.ln_f",
                                  "lm_head"]

    class Bert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = nn.Module()
            self.bert.embeddings = nn.Embedding(10, 8)
            self.bert.encoder = nn.Module()
            self.bert.encoder.layer = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])
            self.classifier = nn.Linear(8, 2)

    assert layer_names(Bert()) == ["bert.embeddings", "bert.encoder.layer.0", "bert.encoder.layer.1", "classifier"]

    class ViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
            self.patch_embed = nn.Linear(4, 8)
            self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])
            self.heads = nn.ModuleList([nn.Linear(8, 2) for _ in range(2)])  # parallel output heads, one layer

    v = ViT()
    assert layer_names(v) == ["patch_embed", "blocks.0", "blocks.1", "heads"]
    s = _scales(v)
    assert s["cls_token"] == 0.125 and s["heads.0.weight"] == s["heads.1.weight"] == 1.0
