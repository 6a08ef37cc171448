"""Session 36c hunt: lrkit.scaling and lrkit.train's optimizer building, edge cases a demanding user hits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrkit.scaling import param_groups


class _Modulated(nn.Module):
    """A DiT-like block: a modulation weight beside plain Linears."""

    def __init__(self) -> None:
        super().__init__()
        self.mod_scale = nn.Parameter(torch.ones(4, 4))
        self.fc = nn.Linear(4, 4)
        self.proj = nn.Linear(4, 4)


def _kinds(groups: list[dict]) -> list[tuple[str, int]]:
    return [(g["name"], len(g["params"])) for g in groups]


@pytest.mark.parametrize("wrap", [nn.DataParallel, torch.compile], ids=["DataParallel", "compile"])
@pytest.mark.parametrize("entry", ["mod", "modul"])
def test_no_decay_entries_do_not_match_a_wrappers_prefix(wrap, entry: str) -> None:
    # was: "mod" (and, under DataParallel, "modul") matched the wrapper's "module." / "_orig_mod." prefix of every
    # name, so a wrapped model decayed nothing at all while the same call on the bare model decayed fc and proj
    model = _Modulated()
    bare = _kinds(param_groups(model, 0.1, weight_decay=0.1, no_decay=("bias", "norm", entry)))
    wrapped = _kinds(param_groups(wrap(model), 0.1, weight_decay=0.1, no_decay=("bias", "norm", entry)))
    assert wrapped == bare
    assert ("all/decay", 2) in wrapped or ("all/decay", 3) in wrapped


def test_no_decay_may_still_name_a_wrapped_parameter_by_its_full_name() -> None:
    model = _Modulated()
    groups = param_groups(nn.DataParallel(model), 0.1, weight_decay=0.1, no_decay=("bias", "module.fc.weight"))
    spared = [p for g in groups if g["weight_decay"] == 0 for p in g["params"]]
    assert any(p is model.fc.weight for p in spared)
    assert not any(p is model.proj.weight for p in spared)


def test_a_torchscript_models_norm_layers_get_no_decay() -> None:
    # was: a scripted model's modules are all RecursiveScriptModule, so BatchNorm/LayerNorm weights were not found
    # by type and decayed, while the same model unscripted spared them
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 2), nn.LayerNorm(2))
    scripted = torch.jit.script(model)
    want = _kinds(param_groups(model, 0.1, weight_decay=0.1))
    assert want == [("all/decay", 2), ("all/no_decay", 2), ("all/bias", 4)]
    groups = param_groups(scripted, 0.1, weight_decay=0.1)
    assert _kinds(groups) == want
    spared = {id(p) for g in groups if g["name"] == "all/no_decay" for p in g["params"]}
    assert spared == {id(scripted[1].weight), id(scripted[3].weight)}


class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        self.fc = nn.Linear(2, 2)


@pytest.mark.parametrize("entry, prefix", [("backbone.", "backbone"), ("backbone.0.", "backbone.0"),
                                           ("backbone.0.*", "backbone.0")])
def test_a_prefix_with_a_trailing_dot_is_pointed_at_the_module(entry: str, prefix: str) -> None:
    # was: "freeze entry 'backbone.0.' matches no parameter name. Did you mean 'backbone.0.bias'?" — a suggestion
    # that freezes one bias, where the entry (Ultralytics' and Hugging Face's "model.0." style) meant the module
    from lrkit.scaling import freeze_layers

    model = _Backbone()
    with pytest.raises(ValueError, match=rf"Did you mean '{prefix}'\?") as e:
        freeze_layers(model, [entry])
    assert ".bias'?" not in str(e.value) and ".weight'?" not in str(e.value)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=rf"Did you mean '{prefix}'\?"):
        param_groups(model, 0.1, backbone_lr_scale=0.1, head=(entry, "fc"))


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Linear(2, 2)
        self.norm = nn.LayerNorm(2)


class _Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(2, 2)
        self.layers = nn.ModuleList([_Block(), _Block()])
        self.head = nn.Linear(2, 2)


def _compile_blocks(model: _Stack) -> _Stack:
    for i, block in enumerate(model.layers):  # torchtitan's per-block compile
        model.layers[i] = torch.compile(block)
    return model


def _checkpoint_blocks(model: _Stack) -> _Stack:
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for i, block in enumerate(model.layers):  # activation checkpointing, as FSDP recipes apply it
        model.layers[i] = checkpoint_wrapper(block)
    return model


@pytest.mark.parametrize("wrap_blocks", [_compile_blocks, _checkpoint_blocks], ids=["compile", "checkpoint"])
def test_blocks_wrapped_one_by_one_keep_their_names(wrap_blocks) -> None:
    # was: layer_id_fn got 'layers.0._orig_mod.attn.weight' (or '..._checkpoint_wrapped_module...'), so a function
    # keyed on the model's own names silently numbered every block 0; freeze=['layers.0.attn'] was refused, with a
    # did-you-mean of 'layers.0' (the whole block); and no_decay=('mod',) matched '_orig_mod' in every block name
    from lrkit.scaling import freeze_layers

    plain, wrapped = _Stack(), wrap_blocks(_Stack())

    def layer_id(name: str) -> int:
        return 2 if name.startswith("head") else 1 if name.startswith("layers.0.attn") else 0

    def shape(model: nn.Module, **kw) -> list[tuple[str, float, int]]:
        return [(g["name"], g["lr_scale"], len(g["params"])) for g in param_groups(model, 0.1, weight_decay=0.1, **kw)]

    assert shape(wrapped, layer_decay=0.5, layer_id_fn=layer_id) == shape(plain, layer_decay=0.5, layer_id_fn=layer_id)
    assert ("layer1/decay", 0.5, 1) in shape(wrapped, layer_decay=0.5, layer_id_fn=layer_id)
    assert shape(wrapped, no_decay=("bias", "norm", "mod")) == shape(plain, no_decay=("bias", "norm", "mod"))
    frozen = freeze_layers(wrapped, ["layers.0.attn"])
    assert [n.rsplit(".", 1)[-1] for n in frozen] == ["weight", "bias"]
    assert not wrapped.layers[0].attn.weight.requires_grad and wrapped.layers[1].attn.weight.requires_grad
    assert all(n.startswith("layers.0.") for n in frozen)  # the real names, as named_parameters() gives them
