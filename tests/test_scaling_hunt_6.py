"""lrkit.scaling on the architectures people fine-tune (bug hunt 6): a ViT-style encoder (conv patch embedding, a
bare cls token and pos embedding, ``nn.TransformerEncoder`` with ``nn.MultiheadAttention``), a ResNet-style CNN with
BatchNorm and an ``fc`` head, a nanoGPT-style LM (``nn.ModuleDict`` trunk, ``lm_head`` tied to the embedding), a
model with a frozen submodule, wrapped models (``module.`` / ``_orig_mod.``) and ModuleDict/ParameterList models.
All randomly initialised, nothing downloaded. Tests marked "Bug:" failed before their fix in src/lrkit/scaling.py."""

from __future__ import annotations

import itertools
import math
import tempfile
import warnings

import pytest
import torch
from torch import nn

import lrkit
from lrkit.scaling import freeze_layers, layer_names, nominal_batch, optimizer_family, param_groups, scale_lr

# ----------------------------------------------------------------------------------------------- the model zoo

DEPTH = 3


class ViT(nn.Module):
    """A tiny ViT: 8x8 images in 4x4 patches, cls token + learned positions on the root, pre-norm encoder."""

    def __init__(self, dim: int = 16, depth: int = DEPTH, classes: int = 3, no_wd: bool = False) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 5, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        self._no_wd = no_wd

    def no_weight_decay(self) -> set[str]:  # timm's convention; only used when no_wd=True (see below)
        return {"cls_token", "pos_embed"} if self._no_wd else set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.encoder(x))[:, 0])


class BasicBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    """torchvision's layout: conv1, bn1, stages layer1/layer2 (nn.Sequential of blocks), fc."""

    def __init__(self, c: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.layer1 = nn.Sequential(BasicBlock(c), BasicBlock(c))
        self.layer2 = nn.Sequential(BasicBlock(c), BasicBlock(c))
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


class GPTBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        mask = torch.triu(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool), 1)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's layout: ``transformer = ModuleDict(wte, wpe, h=ModuleList, ln_f)``, ``lm_head`` tied to ``wte``."""

    def __init__(self, vocab: int = 11, d: int = 16, depth: int = DEPTH, block: int = 8) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, d), wpe=nn.Embedding(block, d),
            h=nn.ModuleList([GPTBlock(d) for _ in range(depth)]), ln_f=nn.LayerNorm(d),
        ))
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # one tensor, two names

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = self.transformer
        x = t.wte(idx) + t.wpe(torch.arange(idx.shape[1]))
        for block in t.h:
            x = block(x)
        return self.lm_head(t.ln_f(x))


class FrozenBackbone(nn.Module):
    """A pretrained feature extractor kept frozen by the user, plus a trainable neck and head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.backbone.requires_grad_(False)
        self.neck = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)


class MultiHead(nn.Module):
    """nn.ModuleDict of parallel heads and an nn.ParameterList of prompt vectors."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts = nn.ParameterList([nn.Parameter(torch.randn(4)) for _ in range(2)])
        self.trunk = nn.Linear(4, 4)
        self.heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "reg": nn.Linear(4, 1)})


class Compiled(nn.Module):
    """Stands in for torch.compile's OptimizedModule (the model under ``_orig_mod``; compiling is slow on CPU)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self._orig_mod = inner


ZOO = {"vit": ViT, "resnet": ResNet, "gpt": GPT, "frozen": FrozenBackbone, "multihead": MultiHead}
HEADS = {"vit": "head", "resnet": "fc", "gpt": "lm_head", "frozen": "head", "multihead": "heads"}
OPTIONS = [{}, {"layer_decay": 0.5}, {"backbone_lr_scale": 0.1}, {"freeze": 1}, {"layer_decay": 0.5, "freeze": 2}]


def _names_by_id(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def _group_of(groups: list[dict], model: nn.Module) -> dict[str, dict]:
    """Each parameter's (canonical) name -> its group."""
    ids = _names_by_id(model)
    return {ids[id(p)]: g for g in groups for p in g["params"]}


# ------------------------------------------------------------------------ every trainable parameter, exactly once


class SequentialViT(nn.Module):
    """timm's / torchvision's layout: the blocks in an nn.Sequential (not split: ResNet stages are Sequential too)."""

    def __init__(self, depth: int = DEPTH) -> None:
        super().__init__()
        self.patch_embed = nn.Linear(4, 8)
        self.blocks = nn.Sequential(*[nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8)) for _ in range(depth)])
        self.stage = nn.Sequential(nn.Linear(8, 8), nn.ModuleList([nn.ReLU(), nn.GELU()]))  # a list, no parameters
        self.head = nn.Linear(8, 2)


def test_sequential_blocks_are_one_layer_and_layer_id_fn_numbers_them() -> None:
    m = SequentialViT()
    assert layer_names(m) == ["patch_embed", "blocks", "stage", "head"]  # a parameterless ModuleList splits nothing

    def layer_id(name: str) -> int:  # timm's rule for ViT: embeddings 0, block i -> i + 1, the rest on top
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return 0 if name.startswith("patch_embed") else DEPTH + 1

    g = _group_of(param_groups(m, 1.0, layer_decay=0.5, layer_id_fn=layer_id), m)
    assert [g[f"blocks.{i}.1.weight"]["lr_scale"] for i in range(DEPTH)] == [0.5**3, 0.5**2, 0.5]
    assert g["patch_embed.weight"]["lr_scale"] == 0.5**4 and g["head.weight"]["lr_scale"] == 1.0


@pytest.mark.parametrize("kind", sorted(ZOO))
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_every_trainable_parameter_lands_in_exactly_one_group(kind: str, options: dict) -> None:
    torch.manual_seed(0)
    model = ZOO[kind]()
    if "backbone_lr_scale" in options:
        options = {**options, "head": HEADS[kind]}
    groups = param_groups(model, 1e-3, weight_decay=0.05, **options)
    grouped = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]  # after freeze=: what is left to train
    assert len(grouped) == len(set(grouped)), "a parameter is in two groups"
    assert sorted(grouped) == sorted(trainable)
    assert all(g["params"] for g in groups)
    for g in groups:
        assert g["lr"] == pytest.approx(1e-3 * g["lr_scale"], rel=1e-12)
    torch.optim.AdamW(groups)  # torch refuses a parameter in two groups


# ------------------------------------------------------------------------------------ layers and layer-wise decay


def test_vit_blocks_inside_nn_transformer_encoder_are_layers() -> None:
    # Bug: the whole nn.TransformerEncoder was one layer ('encoder'), so layer_decay gave all its blocks one LR and
    # freeze=2 froze every block.
    model = ViT()
    assert layer_names(model) == ["patch_embed", *(f"encoder.layers.{i}" for i in range(DEPTH)), "norm", "head"]


def test_vit_layer_decay_is_monotone_from_head_to_input_with_blocks_counted() -> None:
    d, model = 0.75, ViT()
    groups = _group_of(param_groups(model, 1.0, weight_decay=0.05, layer_decay=d), model)
    top = DEPTH + 2  # patch_embed (0), blocks (1..DEPTH), norm, head
    expected = {"cls_token": 0, "pos_embed": 0, "patch_embed.weight": 0, "norm.weight": DEPTH + 1, "head.bias": top}
    for i in range(DEPTH):
        expected[f"encoder.layers.{i}.self_attn.in_proj_weight"] = i + 1
        expected[f"encoder.layers.{i}.linear2.weight"] = i + 1
    for name, layer in expected.items():
        assert groups[name]["lr_scale"] == pytest.approx(d ** (top - layer), rel=1e-12), name
    # every block's parameters share one LR, and each block is exactly d times slower than the one above it
    block = [groups[f"encoder.layers.{i}.linear1.weight"]["lr_scale"] for i in range(DEPTH)]
    assert [b / a for a, b in itertools.pairwise(block)] == pytest.approx([1 / d] * (DEPTH - 1), rel=1e-12)


def test_gpt_moduledict_trunk_is_split_into_embeddings_blocks_and_final_norm() -> None:
    # Bug: nanoGPT's ModuleDict trunk was one layer ('transformer'): layer_decay=0.5 left every parameter at the peak
    # LR without a word, and freeze_layers(model, 1) froze the whole model.
    model = GPT()
    assert layer_names(model) == ["transformer.wte", "transformer.wpe",
                                  *(f"transformer.h.{i}" for i in range(DEPTH)), "transformer.ln_f"]
    groups = _group_of(param_groups(model, 1.0, layer_decay=0.5), model)
    top = DEPTH + 2
    assert groups["transformer.ln_f.weight"]["lr_scale"] == 1.0
    for i in range(DEPTH):
        assert groups[f"transformer.h.{i}.mlp.0.weight"]["lr_scale"] == 0.5 ** (top - 2 - i)
    # the tied embedding / output matrix is numbered by its first name (the input embedding), as BERT-style
    # layer-wise decay does; it is one tensor in one group
    assert groups["transformer.wte.weight"]["lr_scale"] == 0.5**top
    assert model.lm_head.weight is model.transformer.wte.weight


def test_gpt_freeze_first_layer_freezes_only_the_embedding_and_so_the_tied_head() -> None:
    model = GPT()
    assert freeze_layers(model, 1) == ["transformer.wte.weight"]
    assert not model.lm_head.weight.requires_grad  # the same tensor: tying means the head is frozen with it
    assert model.transformer.wpe.weight.requires_grad and model.transformer.h[0].ln_1.weight.requires_grad


def test_resnet_stages_stay_layers_and_parallel_heads_stay_one_layer() -> None:
    # nn.Sequential stages and a ModuleDict with no stack of blocks inside are not split (documented)
    assert layer_names(ResNet()) == ["conv1", "bn1", "layer1", "layer2", "fc"]
    assert layer_names(MultiHead()) == ["prompts", "trunk", "heads"]
    m = MultiHead()
    g = _group_of(param_groups(m, 1.0, layer_decay=0.5), m)
    assert g["heads.cls.weight"]["lr_scale"] == g["heads.reg.weight"]["lr_scale"] == 1.0
    assert g["prompts.0"]["lr_scale"] == g["prompts.1"]["lr_scale"] == 0.25


def test_resnet_layer_decay_and_backbone_scale_exact() -> None:
    m = ResNet()
    g = _group_of(param_groups(m, 1.0, layer_decay=0.5), m)
    assert [g[n]["lr_scale"] for n in ("conv1.weight", "bn1.weight", "layer1.1.conv2.weight",
                                         "layer2.0.bn1.bias", "fc.weight")] == [0.0625, 0.125, 0.25, 0.5, 1.0]
    g = _group_of(param_groups(m, 1.0, backbone_lr_scale=0.1), m)  # default head ("fc") is torchvision's
    assert {n: x["lr_scale"] for n, x in g.items() if x["lr_scale"] == 1.0} == {"fc.weight": 1.0, "fc.bias": 1.0}


def _summary(model: nn.Module, kwargs: dict) -> list[tuple[str, float, float, int]]:
    return [(g["name"], g["lr_scale"], g["weight_decay"], sum(p.numel() for p in g["params"]))
            for g in param_groups(model, 0.1, weight_decay=0.01, **kwargs)]


@pytest.mark.parametrize("kind", ["vit", "gpt"])
@pytest.mark.parametrize("wrap", ["dataparallel", "compile", "both"])
def test_wrapped_transformers_group_as_the_bare_model(kind: str, wrap: str) -> None:
    torch.manual_seed(0)
    bare = ZOO[kind]()
    inner = ZOO[kind]()
    wrapped = {"dataparallel": lambda m: nn.DataParallel(m), "compile": Compiled,
               "both": lambda m: nn.DataParallel(Compiled(m))}[wrap](inner)
    assert layer_names(wrapped) == layer_names(bare)
    for kwargs in ({"layer_decay": 0.5}, {"backbone_lr_scale": 0.1, "head": HEADS[kind]}, {"freeze": 2}):
        assert _summary(wrapped, kwargs) == _summary(bare, kwargs), kwargs
        inner.requires_grad_(True)
        bare.requires_grad_(True)


def test_gpt_backbone_scale_with_the_tied_head() -> None:
    model = GPT()
    with pytest.raises(ValueError, match=r"transformer\.wte"):  # the default head matches nothing: layers listed
        param_groups(model, 1.0, backbone_lr_scale=0.1)
    g = _group_of(param_groups(model, 1.0, backbone_lr_scale=0.1, head="lm_head"), model)
    assert g["transformer.wte.weight"]["name"] == "head/decay"  # the tied tensor trains with the head
    assert {x["lr_scale"] for n, x in g.items() if n != "transformer.wte.weight"} == {0.1}


def test_model_with_a_frozen_submodule_keeps_its_layer_numbering() -> None:
    m = FrozenBackbone()
    assert layer_names(m) == ["backbone", "neck", "head"]
    groups = param_groups(m, 1.0, layer_decay=0.5)
    assert [(g["name"], g["lr_scale"]) for g in groups] == [
        ("layer1/decay", 0.5), ("layer1/bias", 0.5), ("layer2/decay", 1.0), ("layer2/bias", 1.0)]
    # head only, the backbone frozen for now: the head's groups (session 20: gradual unfreezing adds the backbone's
    # later with exclude=; a head covering the whole model is still refused)
    groups = param_groups(m, 1.0, backbone_lr_scale=0.1, head=("neck", "head"))
    assert {g["name"] for g in groups} == {"head/decay", "head/bias"} and all(g["lr"] == 1.0 for g in groups)
    with pytest.raises(ValueError, match="covers every parameter of the model"):
        param_groups(m, 1.0, backbone_lr_scale=0.1, head=("backbone", "neck", "head"))


# ----------------------------------------------------------------------------------------------- weight decay


def test_attention_and_rnn_biases_are_bias_groups() -> None:
    # Bug: nn.MultiheadAttention's in_proj_bias (and nn.GRU's bias_ih_l0/bias_hh_l0) landed in the 'no_decay' group
    # with is_bias=False, so warmup_bias_lr skipped them and no_decay=('norm',) (decay the biases) did not decay
    # them like every other bias.
    model = nn.ModuleDict({"attn": nn.MultiheadAttention(8, 2, add_bias_kv=True), "rnn": nn.GRU(8, 8)})
    g = _group_of(param_groups(model, 1.0, weight_decay=0.1), model)
    for name in ("attn.in_proj_bias", "attn.out_proj.bias", "rnn.bias_ih_l0", "rnn.bias_hh_l0"):
        assert g[name]["is_bias"] and g[name]["weight_decay"] == 0.0, name
    for name in ("attn.bias_k", "attn.bias_v"):  # learned key/value tokens (3-D), not biases; the documented
        assert not g[name]["is_bias"] and g[name]["weight_decay"] == 0.0, name  # substring pattern "bias" matches
    g = _group_of(param_groups(model, 1.0, weight_decay=0.1, no_decay=("norm",)), model)
    assert g["attn.in_proj_bias"]["weight_decay"] == g["attn.out_proj.bias"]["weight_decay"] == 0.1


def test_vit_cls_token_and_pos_embed_decay_unless_the_model_or_user_says_not() -> None:
    # Documented: no_decay matches names and norm layers; a bare cls_token/pos_embed is a weight (as nanoGPT decays
    # its embeddings). A timm-style model.no_weight_decay() (Bug: ignored before) or a no_decay pattern exempts them.
    m = ViT()
    g = _group_of(param_groups(m, 1.0, weight_decay=0.05), m)
    assert g["cls_token"]["weight_decay"] == g["pos_embed"]["weight_decay"] == 0.05
    m = ViT(no_wd=True)
    g = _group_of(param_groups(m, 1.0, weight_decay=0.05), m)
    assert g["cls_token"]["weight_decay"] == g["pos_embed"]["weight_decay"] == 0.0
    assert g["cls_token"]["name"] == "all/no_decay" and g["patch_embed.weight"]["weight_decay"] == 0.05
    g = _group_of(param_groups(nn.DataParallel(m), 1.0, weight_decay=0.05), nn.DataParallel(m))
    assert g["module.pos_embed"]["weight_decay"] == 0.0  # through a wrapper too
    m = ViT()
    g = _group_of(param_groups(m, 1.0, weight_decay=0.05, no_decay=("bias", "norm", "cls_token", "pos_embed")), m)
    assert g["cls_token"]["weight_decay"] == g["pos_embed"]["weight_decay"] == 0.0
    # no_decay=() decays everything, the model's list included
    m = ViT(no_wd=True)
    g = _group_of(param_groups(m, 1.0, weight_decay=0.05, no_decay=()), m)
    assert {x["weight_decay"] for x in g.values()} == {0.05}


def test_vit_norms_and_resnet_batchnorms_get_no_decay_by_type() -> None:
    m = ViT()
    g = _group_of(param_groups(m, 1.0, weight_decay=0.05), m)
    assert g["encoder.layers.0.norm1.weight"]["weight_decay"] == 0.0 and g["norm.weight"]["weight_decay"] == 0.0
    m = ResNet()
    g = _group_of(param_groups(m, 1.0, weight_decay=0.05), m)
    assert g["layer1.0.bn2.weight"]["weight_decay"] == 0.0 and g["layer1.0.conv2.weight"]["weight_decay"] == 0.05


def test_group_names_are_readable_and_sorted_input_to_output() -> None:
    m = ViT()
    names = [g["name"] for g in param_groups(m, 1.0, weight_decay=0.05, layer_decay=0.5)]
    assert names == ["layer0/decay", "layer0/bias",
                     *(f"layer{i}/{k}" for i in range(1, DEPTH + 1) for k in ("decay", "no_decay", "bias")),
                     f"layer{DEPTH + 1}/no_decay", f"layer{DEPTH + 1}/bias",
                     f"layer{DEPTH + 2}/decay", f"layer{DEPTH + 2}/bias"]


# ---------------------------------------------------------------------------------- freezing and BatchNorm stats


def test_vit_freeze_counts_blocks() -> None:
    m = ViT()
    frozen = freeze_layers(m, 2)  # patch embedding (with cls/pos) and the first block
    assert frozen[:3] == ["cls_token", "pos_embed", "patch_embed.weight"]
    assert {n.split(".")[2] for n in frozen if n.startswith("encoder.")} == {"0"}
    assert all(p.requires_grad for n, p in m.named_parameters() if n.startswith(("encoder.layers.1", "head")))


def test_frozen_batchnorm_still_updates_running_stats_in_train_mode_until_eval() -> None:
    # Decided and documented: freeze_layers only sets requires_grad. BatchNorm's running statistics are buffers,
    # updated by the forward pass in train mode; a frozen BN keeps them fixed only in eval mode.
    torch.manual_seed(0)
    m = ResNet()
    freeze_layers(m, ["conv1", "bn1"])
    m.train()
    before = m.bn1.running_mean.clone()
    m(torch.randn(4, 3, 8, 8) + 3.0)
    assert not torch.equal(m.bn1.running_mean, before)  # moved although frozen
    m.bn1.eval()
    before = m.bn1.running_mean.clone()
    m(torch.randn(4, 3, 8, 8) + 3.0)
    assert torch.equal(m.bn1.running_mean, before)
    assert m.bn1.weight.grad is None and m.fc.weight.requires_grad


# ----------------------------------------------------- the groups' ratios survive the finder, schedules and train


def _ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's LR over its lr_scale: one number when the ratios hold."""
    return [float(g["lr"]) / g["lr_scale"] for g in optimizer.param_groups]


def _vit_data(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # 12 steps are too few to judge the curve: not tested
@pytest.mark.parametrize("kind", ["vit", "gpt"])
def test_find_lr_keeps_layer_decay_ratios_at_every_step(kind: str) -> None:
    torch.manual_seed(0)
    model = ZOO[kind]()
    opt = torch.optim.AdamW(param_groups(model, 1e-3, weight_decay=0.05, layer_decay=0.7))
    before = [g["lr"] for g in opt.param_groups]
    seen: list[list[float]] = []
    if kind == "vit":
        x, y = _vit_data()
        loader = list(zip(x.split(8), y.split(8)))
    else:
        tokens = torch.randint(0, 11, (32, 8), generator=torch.Generator().manual_seed(0))
        loader = list(zip(tokens.split(8), tokens.roll(-1, 1).split(8)))

    def step_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        seen.append([float(g["lr"]) for g in opt.param_groups])
        out = m(batch[0])
        return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), batch[1].reshape(-1))

    result = lrkit.find_lr(model, opt, loader, step_fn=step_fn, start_lr=1e-5, end_lr=1e-1, num_steps=12)
    scales = [g["lr_scale"] for g in opt.param_groups]
    assert len(set(scales)) > 2  # really several layers
    assert len(seen) >= 10
    for i, lrs in enumerate(seen):
        peak = result.lrs[i]
        assert lrs == pytest.approx([peak * s for s in scales], rel=1e-9), i
    assert [g["lr"] for g in opt.param_groups] == before  # restored


@pytest.mark.parametrize("spec", ["cosine lr0=3e-4 warmup_epochs=1", "cosine warmup_epochs=1"])
def test_to_torch_schedule_keeps_vit_group_ratios_at_every_step(spec: str) -> None:
    # with lr0 in the spec: base = lr0 * lr_scale; without: the group's own LR (already lr * lr_scale)
    model = ViT()
    opt = torch.optim.AdamW(param_groups(model, 3e-4, weight_decay=0.05, layer_decay=0.65))
    schedule = lrkit.schedules.from_spec(spec, epochs=4, steps_per_epoch=5)
    sched = schedule.to_torch(opt)
    scales = [g["lr_scale"] for g in opt.param_groups]
    assert len(set(scales)) == DEPTH + 3
    for t in range(20):
        expected = 3e-4 * schedule(t)  # the peak group's LR at step t; every other group at lr_scale times it
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([expected * s for s in scales], rel=1e-12), t
        opt.step()
        sched.step()


def test_train_keeps_layer_decay_ratios_on_a_vit(tmp_path: object) -> None:
    torch.manual_seed(0)
    x, y = _vit_data(48)
    ds = torch.utils.data.TensorDataset(x, y)
    r = lrkit.train(ViT(), data=(ds, ds), epochs=2, lr0=1e-3, batch=16, layer_decay=0.5, optimizer="AdamW",
                    warmup_epochs=0, project=tempfile.mkdtemp(dir=str(tmp_path)), verbose=False, plots=False)
    top = DEPTH + 2
    for row in r.history:
        lrs = {k[3:]: v for k, v in row.items() if k.startswith("lr/")}
        peak = lrs[f"layer{top}/decay"]
        for name, lr in lrs.items():
            layer = int(name.split("/")[0][5:])
            assert lr == pytest.approx(peak * 0.5 ** (top - layer), rel=1e-9), (row["epoch"], name)
    assert r.history[0][f"lr/layer{top}/decay"] == pytest.approx(1e-3, rel=1e-12)


# ---------------------------------------------------------------------------------- scale_lr and nominal_batch


def _param() -> list[nn.Parameter]:
    return [nn.Parameter(torch.zeros(2, 2))]


def test_scale_lr_adagrad_and_adafactor_scale_by_square_root() -> None:
    adafactor = [torch.optim.Adafactor(_param())] if hasattr(torch.optim, "Adafactor") else []  # torch >= 2.5
    for opt in (torch.optim.Adagrad(_param()), *adafactor, "Adagrad", "Adafactor"):
        assert scale_lr(0.01, 32, 128, optimizer=opt) == pytest.approx(0.02, rel=1e-12)


def test_scale_lr_schedule_free_follows_its_base_family() -> None:
    schedulefree = pytest.importorskip("schedulefree")
    assert scale_lr(0.0025, 32, 128, optimizer=schedulefree.AdamWScheduleFree(_param())) == pytest.approx(0.005)
    assert scale_lr(1.0, 32, 128, optimizer=schedulefree.SGDScheduleFree(_param())) == pytest.approx(4.0)


@pytest.mark.parametrize("name", ["Prodigy", "DAdaptAdam", "DAdaptSGD", "DAdaptAdaGrad", "ProdigyPlusScheduleFree"])
def test_scale_lr_refuses_optimizers_whose_lr_is_a_multiplier(name: str) -> None:
    # Bug: DAdaptAdam and DAdaptSGD were matched by name hint ('adam', 'sgd') and their lr=1.0 multiplier was
    # scaled to 2.0 / 4.0; Prodigy was told to pass rule='linear' or 'sqrt', which is the wrong advice.
    for rule in (None, "auto", "sqrt", "linear"):
        with pytest.raises(ValueError, match=rf"{name}.*multiplier.*keep lr") as e:
            scale_lr(1.0, 32, 128, rule, optimizer=name)
        assert "rule='linear' or rule='sqrt' explicitly" not in str(e.value)
    assert scale_lr(1.0, 32, 128, "sqrt") == 2.0  # without optimizer= the rule is the user's to force


def test_scale_lr_refuses_a_prodigy_instance_and_a_d_adapting_group() -> None:
    prodigyopt = pytest.importorskip("prodigyopt")
    with pytest.raises(ValueError, match="Prodigy.*multiplier"):
        scale_lr(1.0, 32, 128, optimizer=prodigyopt.Prodigy(_param()))

    class MyDAdapt(torch.optim.Adam):  # an unknown class, recognised by its groups' d/d0 as the finder does
        def __init__(self, params: list[nn.Parameter]) -> None:
            super().__init__(params, lr=1.0)
            for g in self.param_groups:
                g.update(d=1e-6, d0=1e-6)

    with pytest.raises(ValueError, match="MyDAdapt.*multiplier"):
        scale_lr(1.0, 32, 128, optimizer=MyDAdapt(_param()))
    with pytest.raises(ValueError, match="multiplier"):
        optimizer_family("DAdaptAdam")


def test_nominal_batch_edges_match_ultralytics_formula() -> None:
    for batch, nbs, wd in [(4, 6, 5e-4), (4, 10, 5e-4), (64, 64, 5e-4), (65, 64, 5e-4), (3, 64, 1e-4), (42, 64, 5e-4),
                           (43, 64, 5e-4), (1, 1000, 5e-4), (1000, 1, 5e-4), (16, 64, 0.0)]:
        acc = max(round(nbs / batch), 1)  # Ultralytics' trainer
        out = nominal_batch(batch, nbs=nbs, weight_decay=wd)
        assert out.accumulate == acc and out.weight_decay == pytest.approx(wd * batch * acc / nbs, rel=1e-12)
    assert nominal_batch(4, nbs=10).accumulate == 2 and nominal_batch(4, nbs=6).accumulate == 2  # half to even
    for bad in (0, -1, 2.5, True, "16", None, math.nan):
        with pytest.raises(ValueError, match="batch"):
            nominal_batch(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight_decay"):
        nominal_batch(16, weight_decay=-1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nominal_batch(torch.tensor(16)).accumulate == 4
