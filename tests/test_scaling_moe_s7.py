"""param_groups(layer_decay=...) and layer_names on mixture-of-experts models: parallel experts are one depth.

Bug: any nn.ModuleList below a top-level child was read as a stack of blocks, so the ``experts`` of an MoE block were
numbered as layers ``moe.experts.0 .. moe.experts.3`` one above the other, and ``layer_decay=0.5`` trained expert 0
at 1/8 of expert 3's LR. The rule now: a ModuleList is a stack of layers when it is a direct child of the model, or
(deeper down) when its name is a known stack name (``layers``, ``layer``, ``blocks``, ``block``, ``h``,
``resblocks``, ``stages``, ``transformer_blocks``); a ModuleList named like parallel branches (``*expert*``,
``*heads``) is never a stack. Known answers: the layer lists below, and ``lr_scale = d ** (L - i)``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lrkit
from lrkit.scaling import freeze_layers, layer_names


class MoE(nn.Module):
    """A router and parallel experts: every expert sees the same input, at the same depth."""

    def __init__(self, d: int = 8, n: int = 4, name: str = "experts") -> None:
        super().__init__()
        self.gate = nn.Linear(d, n)
        setattr(self, name, nn.ModuleList([nn.Linear(d, d) for _ in range(n)]))
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.gate(x).softmax(-1)
        return sum(w[:, i:i + 1] * e(x) for i, e in enumerate(getattr(self, self.name)))


class MoEBlock(nn.Module):
    def __init__(self, d: int = 8, name: str = "experts") -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.moe = MoE(d, name=name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.moe(self.norm(x))


class OneBlock(nn.Module):
    """embed -> one MoE block -> head (the block is a top-level child, not in a stack)."""

    def __init__(self, name: str = "experts") -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.block = MoEBlock(name=name)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.embed(x)))


class Stacked(nn.Module):
    """embed -> a ModuleList stack of MoE blocks -> head (Mixtral's layout, one level up)."""

    def __init__(self, container: str = "list", depth: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        blocks = [MoEBlock() for _ in range(depth)]
        self.blocks = nn.ModuleList(blocks) if container == "list" else nn.Sequential(*blocks)
        self.head = nn.Linear(8, 2)


class Mixtral(nn.Module):
    """HF Mixtral's nesting: ``model.layers[i].block_sparse_moe.experts`` under a ``model`` trunk."""

    def __init__(self, depth: int = 2) -> None:
        super().__init__()
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(10, 8)
        self.model.layers = nn.ModuleList([nn.Module() for _ in range(depth)])
        for layer in self.model.layers:
            layer.block_sparse_moe = MoE(name="experts")
        self.model.norm = nn.LayerNorm(8)
        self.lm_head = nn.Linear(8, 10)


def _scales(model: nn.Module, d: float = 0.5) -> dict[str, float]:
    """Each parameter's lr_scale under layer_decay=d."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g["lr_scale"] for g in lrkit.param_groups(model, 1.0, layer_decay=d) for p in g["params"]}


@pytest.mark.parametrize("name", ["experts", "local_experts", "heads"])
def test_the_experts_of_one_block_are_one_layer(name: str) -> None:
    m = OneBlock(name)
    assert layer_names(m) == ["embed", "block", "head"]
    s = _scales(m)
    experts = {v for k, v in s.items() if f".{name}." in k}
    assert experts == {0.5}  # every expert at the block's depth: d ** (2 - 1)
    assert s["embed.weight"] == 0.25 and s["head.weight"] == 1.0 and s["block.moe.gate.weight"] == 0.5


def test_a_moe_layer_passed_alone_keeps_its_experts_together() -> None:
    m = MoE()  # the experts ModuleList is a direct child here, but named as parallel branches
    assert layer_names(m) == ["gate", "experts"]
    assert {v for k, v in _scales(m).items() if k.startswith("experts.")} == {1.0}


def test_a_stack_of_moe_blocks_counts_its_blocks_not_its_experts() -> None:
    m = Stacked("list")
    assert layer_names(m) == ["embed", "blocks.0", "blocks.1", "blocks.2", "head"]
    s = _scales(m)
    for i in range(3):  # block i is layer i + 1 of 0..4: d ** (3 - i), the same for each of its experts
        assert {v for k, v in s.items() if k.startswith(f"blocks.{i}.moe.experts.")} == {0.5 ** (3 - i)}


def test_a_sequential_stack_of_moe_blocks_stays_one_layer() -> None:
    assert layer_names(Stacked("sequential")) == ["embed", "blocks", "head"]  # as documented for nn.Sequential


def test_mixtral_nesting_counts_the_decoder_layers() -> None:
    m = Mixtral()
    assert layer_names(m) == ["model.embed_tokens", "model.layers.0", "model.layers.1", "model.norm", "lm_head"]
    s = _scales(m)
    assert {v for k, v in s.items() if k.startswith("model.layers.0.")} == {0.5 ** 3}
    assert {v for k, v in s.items() if k.startswith("model.layers.1.")} == {0.5 ** 2}


def test_a_nested_module_list_with_an_unknown_name_is_not_a_stack() -> None:
    class Trunk(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Linear(4, 8)
            self.branches = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])  # could be parallel: not split

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = Trunk()
            self.head = nn.Linear(8, 2)

    m = Net()
    assert layer_names(m) == ["trunk", "head"]
    # layer_id_fn numbers them when they are a sequence after all
    ids = {"trunk.stem": 0, "trunk.branches.0": 1, "trunk.branches.1": 2, "trunk.branches.2": 3, "head": 4}
    groups = lrkit.param_groups(m, 1.0, layer_decay=0.5, layer_id_fn=lambda n: ids[n.rsplit(".", 1)[0]])
    by_name = {n: g["lr_scale"] for g in groups for p in g["params"] for n, q in m.named_parameters() if q is p}
    assert by_name["trunk.branches.0.weight"] == 0.125 and by_name["trunk.branches.2.weight"] == 0.5


def test_freeze_layers_counts_an_moe_block_as_one_layer() -> None:
    m = OneBlock()
    frozen = freeze_layers(m, 2)  # embed and the whole block, every expert included
    assert all(not p.requires_grad for n, p in m.named_parameters() if n.startswith(("embed.", "block.")))
    assert m.head.weight.requires_grad and any(n.startswith("block.moe.experts.3.") for n in frozen)
