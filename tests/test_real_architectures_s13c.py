"""lrkit's fine-tuning helpers (``layer_names``, ``param_groups``, ``freeze_layers``, ``find_lr`` with groups) on REAL
Hugging Face ``transformers`` architectures, built from tiny configs with random weights (nothing is downloaded:
``XxxConfig(...)`` + ``XxxForYyy(config)``, ``HF_HUB_OFFLINE=1``), and on small hand-written modules that copy those
architectures' naming, so that CI covers each finding with or without ``transformers`` installed.

Tests marked "Bug:" failed before their fix in src/lrkit/scaling.py. The ``transformers`` tests take the ``hf``
fixture, which skips them where ``transformers`` is not installed (it is not a test dependency today); the
hand-written tests always run.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub: every model here is built from a config

import itertools
import math
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from lrkit.scaling import DEFAULT_HEAD, _layers, freeze_layers, layer_names, param_groups


def _build(hf: ModuleType, arch: str) -> nn.Module:
    """A tiny randomly initialised model of ``arch`` (2 blocks, hidden 32), deterministic."""
    torch.manual_seed(0)
    small = dict(vocab_size=100, max_position_embeddings=64)
    if arch == "bert":
        return hf.BertForSequenceClassification(hf.BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=3, **small))
    if arch == "distilbert":
        return hf.DistilBertForSequenceClassification(hf.DistilBertConfig(
            dim=32, n_layers=2, n_heads=2, hidden_dim=64, num_labels=3, **small))
    if arch == "roberta":
        return hf.RobertaForSequenceClassification(hf.RobertaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=3, **small))
    if arch == "gpt2":
        return hf.GPT2LMHeadModel(hf.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                                bos_token_id=0, eos_token_id=0, pad_token_id=0))
    if arch == "llama":
        return hf.LlamaForCausalLM(hf.LlamaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
            **small))
    if arch == "t5":
        return hf.T5ForConditionalGeneration(hf.T5Config(
            vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
            decoder_start_token_id=0, pad_token_id=0))
    if arch == "vit":
        return hf.ViTForImageClassification(hf.ViTConfig(
            image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, num_labels=3))
    if arch in ("bart", "mbart"):
        cfg_cls, model_cls = ((hf.BartConfig, hf.BartForConditionalGeneration) if arch == "bart"
                              else (hf.MBartConfig, hf.MBartForConditionalGeneration))
        return model_cls(cfg_cls(
            d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=64, decoder_ffn_dim=64, pad_token_id=1, bos_token_id=0, eos_token_id=2,
            decoder_start_token_id=2, **small))
    if arch == "whisper":
        return hf.WhisperForConditionalGeneration(hf.WhisperConfig(
            vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8, max_source_positions=16,
            max_target_positions=16, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
            suppress_tokens=[], begin_suppress_tokens=[]))
    if arch in ("opt", "opt350m"):  # opt-350m's layout: a project_in/project_out pair, no final norm
        return hf.OPTForCausalLM(hf.OPTConfig(
            hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=2,
            word_embed_proj_dim=32 if arch == "opt" else 16, do_layer_norm_before=arch == "opt", **small))
    if arch == "imagegpt":
        return hf.ImageGPTForCausalImageModeling(hf.ImageGPTConfig(
            vocab_size=17, n_positions=16, n_embd=32, n_layer=2, n_head=2))
    raise AssertionError(arch)


def _blocks(prefix: str) -> list[str]:
    return [f"{prefix}.0", f"{prefix}.1"]


# layer_names, input to output, as a fine-tuner numbers them: embeddings first, the blocks in order, the final norm,
# the task head last. A tied LM head is not a layer of its own (it is the embedding's tensor). Encoder-decoder
# models: the encoder (its embeddings, blocks, final norm), then the decoder's — registration order, which is the
# order the data flows through the stacks (documented).
EXPECTED_LAYERS = {
    "bert": ["bert.embeddings", *_blocks("bert.encoder.layer"), "bert.pooler", "classifier"],
    "distilbert": ["distilbert.embeddings", *_blocks("distilbert.transformer.layer"), "pre_classifier", "classifier"],
    "roberta": ["roberta.embeddings", *_blocks("roberta.encoder.layer"), "classifier"],
    "gpt2": ["transformer.wte", "transformer.wpe", *_blocks("transformer.h"), "transformer.ln_f"],
    "llama": ["model.embed_tokens", *_blocks("model.layers"), "model.norm", "lm_head"],
    "t5": ["shared", *_blocks("encoder.block"), "encoder.final_layer_norm", *_blocks("decoder.block"),
           "decoder.final_layer_norm"],
    "whisper": ["model.encoder.conv1", "model.encoder.conv2", "model.encoder.embed_positions",
                *_blocks("model.encoder.layers"), "model.encoder.layer_norm", "model.decoder.embed_tokens",
                "model.decoder.embed_positions", *_blocks("model.decoder.layers"), "model.decoder.layer_norm"],
    # Bug: BART/mBART register layernorm_embedding (the norm of the embeddings) after the blocks, so it was numbered
    # above them: in BART the decoder's embedding norm was the top layer, at the peak LR of layer_decay.
    "bart": ["model.shared", "model.encoder.embed_positions", "model.encoder.layernorm_embedding",
             *_blocks("model.encoder.layers"), "model.decoder.embed_positions", "model.decoder.layernorm_embedding",
             *_blocks("model.decoder.layers")],
    "mbart": ["model.shared", "model.encoder.embed_positions", "model.encoder.layernorm_embedding",
              *_blocks("model.encoder.layers"), "model.encoder.layer_norm", "model.decoder.embed_positions",
              "model.decoder.layernorm_embedding", *_blocks("model.decoder.layers"), "model.decoder.layer_norm"],
    # Bug: OPT registers final_layer_norm (and opt-350m's project_out) before its blocks, so the final norm was
    # numbered below the first block: layer_decay gave it one of the lowest LRs and freeze=3 froze it.
    "opt": ["model.decoder.embed_tokens", "model.decoder.embed_positions", *_blocks("model.decoder.layers"),
            "model.decoder.final_layer_norm"],
    "opt350m": ["model.decoder.embed_tokens", "model.decoder.embed_positions", "model.decoder.project_in",
                *_blocks("model.decoder.layers"), "model.decoder.project_out"],
    "vit": None,  # transformers renamed ViT's stack between versions (encoder.layer -> layers): checked below
    "imagegpt": ["transformer.wte", "transformer.wpe", *_blocks("transformer.h"), "transformer.ln_f", "lm_head"],
}

# where the task head / the output end is: the parameter that must train at the peak LR of layer_decay
TOP_PARAM = {
    "bert": "classifier.weight", "distilbert": "classifier.weight", "roberta": "classifier.out_proj.weight",
    "gpt2": "transformer.ln_f.weight", "llama": "lm_head.weight", "t5": "decoder.final_layer_norm.weight",
    "vit": "classifier.weight", "bart": "model.decoder.layers.1.final_layer_norm.weight",
    "mbart": "model.decoder.layer_norm.weight", "whisper": "model.decoder.layer_norm.weight",
    "opt": "model.decoder.final_layer_norm.weight", "opt350m": "model.decoder.project_out.weight",
    "imagegpt": "lm_head.weight",
}
# the input token / patch embedding: the lowest LR of layer_decay, and the first layer freeze=1 freezes
EMBEDDING_PARAM = {
    "bert": "bert.embeddings.word_embeddings.weight", "distilbert": "distilbert.embeddings.word_embeddings.weight",
    "roberta": "roberta.embeddings.word_embeddings.weight", "gpt2": "transformer.wte.weight",
    "llama": "model.embed_tokens.weight", "t5": "shared.weight", "vit": "vit.embeddings.cls_token",
    "bart": "model.shared.weight", "mbart": "model.shared.weight", "whisper": "model.encoder.conv1.weight",
    "opt": "model.decoder.embed_tokens.weight", "opt350m": "model.decoder.embed_tokens.weight",
    "imagegpt": "transformer.wte.weight",
}
ARCHS = list(EXPECTED_LAYERS)


def _group_of(groups: list[dict], model: nn.Module) -> dict[str, dict]:
    """Every name of every parameter (tied ones under each of their names) -> its group."""
    by_id = {id(p): g for g in groups for p in g["params"]}
    return {n: by_id[id(p)] for n, p in model.named_parameters(remove_duplicate=False) if id(p) in by_id}


# ------------------------------------------------------------------------------------ transformers: layer order


@pytest.mark.parametrize("arch", ARCHS)
def test_hf_layer_names_run_from_input_to_output(hf: ModuleType, arch: str) -> None:
    model = _build(hf, arch)
    names = layer_names(model)
    if arch == "vit":
        stack = "vit.layers" if "vit.layers.0" in names else "vit.encoder.layer"
        assert names == ["vit.embeddings", *_blocks(stack), "vit.layernorm", "classifier"]
    else:
        assert names == EXPECTED_LAYERS[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_hf_layer_decay_peaks_at_the_output_and_is_lowest_at_the_embedding(hf: ModuleType, arch: str) -> None:
    model = _build(hf, arch)
    groups = param_groups(model, 1e-3, weight_decay=0.01, layer_decay=0.75)
    of = _group_of(groups, model)
    scales = [g["lr_scale"] for g in groups]
    assert of[TOP_PARAM[arch]]["lr_scale"] == 1.0 == max(scales)
    assert of[EMBEDDING_PARAM[arch]]["lr_scale"] == min(scales) == 0.75 ** (len(layer_names(model)) - 1)
    # each layer is exactly 0.75 times the one above it: the scales are the powers 0.75 ** k, k = 0 .. L
    # (Whisper's encoder embed_positions is frozen by transformers: its layer has no group)
    depth = len(layer_names(model)) - 1
    live = {depth - i for i, (_, ps) in enumerate(_layers(model))
            if any(p.requires_grad for n, p in model.named_parameters() if n in ps)}
    assert {round(math.log(s) / math.log(0.75)) for s in scales} == live
    # every trainable tensor in exactly one group; a tied LM head is the embedding's tensor, in the embedding's layer
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in trainable)
    tied = {"gpt2": "lm_head.weight", "t5": "lm_head.weight", "bart": "lm_head.weight", "mbart": "lm_head.weight",
            "whisper": "proj_out.weight", "opt": "lm_head.weight", "opt350m": "lm_head.weight"}
    if arch in tied:
        params = dict(model.named_parameters(remove_duplicate=False))
        emb = {"whisper": "model.decoder.embed_tokens.weight"}.get(arch, EMBEDDING_PARAM[arch])
        assert params[tied[arch]] is params[emb]
        assert of[tied[arch]] is of[emb]


def _norm_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every normalization layer, torch's and the architectures' own classes (LlamaRMSNorm, T5LayerNorm, ...)."""
    return [(n, m) for n, m in model.named_modules()
            if not list(m.children()) and type(m).__name__.lower().endswith("norm")]


@pytest.mark.parametrize("arch", ARCHS)
def test_hf_no_decay_covers_every_norm_class_and_every_bias(hf: ModuleType, arch: str) -> None:
    # Bug (imagegpt): ImageGPTLayerNorm is no torch norm class and its layers are named ln_1/ln_2/ln_f (no "norm" in
    # the name), so every one of its norm weights was weight-decayed. LlamaRMSNorm, T5LayerNorm were found by name.
    model = _build(hf, arch)
    of = _group_of(param_groups(model, 1e-3, weight_decay=0.1), model)
    norms = _norm_modules(model)
    assert norms, arch
    for mod_name, mod in norms:
        for p_name, _ in mod.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}"
            assert of[name]["weight_decay"] == 0.0, (name, type(mod).__name__)
            assert of[name]["name"].endswith(("/no_decay", "/bias")), name
    for name, p in model.named_parameters(remove_duplicate=False):
        if name.endswith(".bias") and p.requires_grad:
            assert of[name]["weight_decay"] == 0.0 and of[name]["is_bias"], name
    # the matrices still decay (a norm class is found by its class, not by any 1-D tensor)
    assert all(g["weight_decay"] == 0.1 for n, g in of.items() if n.endswith(("q_proj.weight", "query.weight",
                                                                                "c_attn.weight", "q.weight")))


def test_hf_imagegpt_norms_are_recognised_by_their_class(hf: ModuleType) -> None:
    # Bug: the ImageGPT model above, spelled out: 5 ImageGPTLayerNorm weights (ln_1/ln_2 of 2 blocks and ln_f) were in
    # the decay group, at weight_decay=0.1; there was no no_decay group at all.
    model = _build(hf, "imagegpt")
    groups = param_groups(model, 1e-3, weight_decay=0.1)
    nd = [g for g in groups if g["name"] == "all/no_decay"]
    assert len(nd) == 1 and len(nd[0]["params"]) == 5 and nd[0]["weight_decay"] == 0.0
    assert {id(p) for p in nd[0]["params"]} == {id(model.transformer.ln_f.weight), *(
        id(getattr(b, ln).weight) for b in model.transformer.h for ln in ("ln_1", "ln_2"))}


# ------------------------------------------------------------------------------ transformers: head and freeze


@pytest.mark.parametrize(("arch", "head"), [("bert", ["classifier.weight", "classifier.bias"]),
                                            ("roberta", ["classifier.dense.weight", "classifier.dense.bias",
                                                         "classifier.out_proj.weight", "classifier.out_proj.bias"]),
                                            ("vit", ["classifier.weight", "classifier.bias"])])
def test_hf_default_head_finds_the_classifier(hf: ModuleType, arch: str, head: list[str]) -> None:
    model = _build(hf, arch)
    groups = param_groups(model, 1e-3, backbone_lr_scale=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for g in groups if g["name"].startswith("head/") for p in g["params"]) == sorted(head)
    assert all(g["lr"] == pytest.approx(1e-4) for g in groups if g["name"].startswith("backbone/"))


def test_hf_distilbert_pre_classifier_is_in_the_default_head(hf: ModuleType) -> None:
    # DistilBERT's freshly initialised pre_classifier trains with its classifier (session 14: DEFAULT_HEAD names it;
    # it trained at the backbone's LR before), and an explicit head= still picks exactly what it names
    model = _build(hf, "distilbert")
    of = _group_of(param_groups(model, 1.0, backbone_lr_scale=0.1), model)
    assert of["pre_classifier.weight"]["lr_scale"] == of["classifier.weight"]["lr_scale"] == 1.0
    assert of["distilbert.transformer.layer.1.ffn.lin2.weight"]["lr_scale"] == 0.1
    of = _group_of(param_groups(model, 1.0, backbone_lr_scale=0.1, head=("classifier",)), model)
    assert of["pre_classifier.weight"]["lr_scale"] == 0.1 and of["classifier.weight"]["lr_scale"] == 1.0


@pytest.mark.parametrize("arch", ["gpt2", "t5", "bart"])
def test_hf_tied_lm_head_is_suggested_when_the_default_head_matches_nothing(hf: ModuleType, arch: str) -> None:
    # Bug: a tied lm_head is no layer of its own, so the error listed only layer names: GPT-2's and BART's had no
    # suggestion and T5's suggested 'shared' for 'head'. The tied name is now a candidate.
    model = _build(hf, arch)
    with pytest.raises(ValueError, match="Did you mean 'lm_head'") as err:
        param_groups(model, 1e-3, backbone_lr_scale=0.1)
    assert f"head={DEFAULT_HEAD!r} matches no parameter" in str(err.value)
    # and head="lm_head" works: the tied embedding trains with the head (documented)
    of = _group_of(param_groups(model, 1.0, backbone_lr_scale=0.1, head="lm_head"), model)
    assert of["lm_head.weight"]["lr_scale"] == 1.0


@pytest.mark.parametrize("arch", ["bert", "llama", "opt", "bart", "t5"])
def test_hf_freeze_n_freezes_the_first_n_layers_embeddings_first(hf: ModuleType, arch: str) -> None:
    # Bug (opt): freeze=3 froze OPT's final_layer_norm (numbered third, before the blocks), not the first block.
    model = _build(hf, arch)
    layers = layer_names(model)
    frozen = freeze_layers(model, 3)
    assert frozen and all(any(n == k or n.startswith(k + ".") for k in layers[:3]) for n in frozen)
    assert not dict(model.named_parameters())[EMBEDDING_PARAM[arch]].requires_grad
    still = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(not any(n.startswith(k + ".") for k in layers[:3]) for n in still)
    assert dict(model.named_parameters())[TOP_PARAM[arch] if arch != "t5" else "decoder.final_layer_norm.weight"
                                          ].requires_grad
    # param_groups(freeze=) freezes the same and groups only the rest
    model = _build(hf, arch)
    groups = param_groups(model, 1.0, layer_decay=0.5, freeze=3)
    assert sorted(n for n, p in model.named_parameters() if not p.requires_grad) == sorted(frozen)
    assert sum(len(g["params"]) for g in groups) == len(still)


# --------------------------------------------------------------------------------- transformers: find_lr restore


def _batches(arch: str, n: int = 12) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        ids = torch.randint(3, 100, (4, 8), generator=g)
        if arch == "bert":
            out.append({"input_ids": ids, "labels": torch.randint(0, 3, (4,), generator=g)})
        elif arch == "gpt2":
            out.append({"input_ids": ids, "labels": ids})
        else:  # t5
            out.append({"input_ids": ids, "labels": torch.randint(3, 100, (4, 6), generator=g)})
    return out


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # 10 steps of a random tiny model: not the point here
@pytest.mark.parametrize("arch", ["bert", "gpt2", "t5"])
def test_hf_find_lr_with_param_groups_restores_bit_for_bit_and_keeps_ratios(hf: ModuleType, arch: str) -> None:
    model = _build(hf, arch)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = param_groups(model, 1e-3, weight_decay=0.01, layer_decay=0.5)
    optimizer = torch.optim.AdamW(groups)
    lrs = [g["lr"] for g in optimizer.param_groups]
    seen: list[list[float]] = []

    def step_fn(m: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        seen.append([g["lr"] / g["lr_scale"] for g in optimizer.param_groups])
        return m(**batch).loss

    result = lrkit.find_lr(model, optimizer, _batches(arch), step_fn=step_fn, num_steps=10, start_lr=1e-6, end_lr=1.0)
    assert len(result.lrs) == len(seen) >= 2
    # every group was scaled by the same factor at every step: the layer-decay ratios were kept
    for row in seen:
        assert max(row) == pytest.approx(min(row), rel=1e-12)
    assert [r[0] for r in seen] == sorted(r[0] for r in seen) and seen[-1][0] > seen[0][0]
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert [g["lr"] for g in optimizer.param_groups] == lrs and not optimizer.state
    assert model.training


# ------------------------------------------------- the same findings on hand-written modules (no transformers)


class _Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, d)
        self.self_attn_layer_norm = nn.LayerNorm(d)


class BartLikeEncoder(nn.Module):
    """BART's encoder layout: ``layernorm_embedding`` (the embeddings' norm) registered after the blocks."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(10, d)
        self.embed_positions = nn.Embedding(6, d)
        self.layers = nn.ModuleList(_Block(d) for _ in range(2))
        self.layernorm_embedding = nn.LayerNorm(d)
        self.layer_norm = nn.LayerNorm(d)  # mBART's final norm: registered after, applied after


class OptLikeDecoder(nn.Module):
    """OPT's decoder layout (opt-125m): ``final_layer_norm`` registered before the blocks."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(10, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(_Block(d) for _ in range(2))


class Opt350mLikeDecoder(nn.Module):
    """opt-350m's layout: ``project_out`` (applied after the blocks) registered before them, no final norm."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(10, 4)
        self.project_out = nn.Linear(d, 4, bias=False)
        self.project_in = nn.Linear(4, d, bias=False)
        self.layers = nn.ModuleList(_Block(d) for _ in range(2))


class Lfm2Like(nn.Module):
    """LFM2's layout: its FINAL norm is called ``embedding_norm`` (registered after the blocks): it stays last."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(10, d)
        self.layers = nn.ModuleList(_Block(d) for _ in range(2))
        self.embedding_norm = nn.LayerNorm(d)


class Seq2Seq(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = BartLikeEncoder()
        self.decoder = OptLikeDecoder()
        self.lm_head = nn.Linear(8, 10, bias=False)


def test_bart_like_embedding_norm_is_numbered_before_the_blocks() -> None:
    # Bug: ['embed_tokens', 'embed_positions', 'layers.0', 'layers.1', 'layernorm_embedding', 'layer_norm']
    assert layer_names(BartLikeEncoder()) == ["embed_tokens", "embed_positions", "layernorm_embedding",
                                              "layers.0", "layers.1", "layer_norm"]


def test_opt_like_final_norm_is_numbered_after_the_blocks() -> None:
    # Bug: ['embed_tokens', 'final_layer_norm', 'layers.0', 'layers.1']
    model = OptLikeDecoder()
    assert layer_names(model) == ["embed_tokens", "layers.0", "layers.1", "final_layer_norm"]
    of = _group_of(param_groups(model, 1.0, layer_decay=0.5), model)
    assert of["final_layer_norm.weight"]["lr_scale"] == 1.0 and of["layers.1.fc1.weight"]["lr_scale"] == 0.5
    assert of["embed_tokens.weight"]["lr_scale"] == 0.5**3
    # freeze=2 freezes the embedding and the first block — never the final norm
    assert freeze_layers(model, 2) == ["embed_tokens.weight", "layers.0.fc1.weight", "layers.0.fc1.bias",
                                       "layers.0.self_attn_layer_norm.weight", "layers.0.self_attn_layer_norm.bias"]
    assert model.final_layer_norm.weight.requires_grad and model.layers[1].fc1.weight.requires_grad


def test_opt350m_like_output_projection_is_numbered_after_the_blocks() -> None:
    # Bug: ['embed_tokens', 'project_out', 'project_in', 'layers.0', 'layers.1']
    model = Opt350mLikeDecoder()
    assert layer_names(model) == ["embed_tokens", "project_in", "layers.0", "layers.1", "project_out"]
    of = _group_of(param_groups(model, 1.0, layer_decay=0.5), model)
    assert of["project_out.weight"]["lr_scale"] == 1.0 and of["project_in.weight"]["lr_scale"] == 0.5**3


def test_nested_encoder_decoder_reorders_inside_each_stack_owner_only() -> None:
    model = Seq2Seq()
    assert layer_names(model) == [
        "encoder.embed_tokens", "encoder.embed_positions", "encoder.layernorm_embedding", "encoder.layers.0",
        "encoder.layers.1", "encoder.layer_norm", "decoder.embed_tokens", "decoder.layers.0", "decoder.layers.1",
        "decoder.final_layer_norm", "lm_head"]
    # the layers still cover every parameter once, and layer_decay follows the new numbering
    groups = param_groups(model, 1.0, layer_decay=0.5)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    of = _group_of(groups, model)
    assert of["encoder.layernorm_embedding.weight"]["lr_scale"] == 0.5**8
    assert of["lm_head.weight"]["lr_scale"] == 1.0


def test_a_final_norm_named_like_an_embedding_stays_where_it_is_registered() -> None:
    # only the names known to mean "the embeddings' norm" move: LFM2's final norm, embedding_norm, stays last
    assert layer_names(Lfm2Like()) == ["embed_tokens", "layers.0", "layers.1", "embedding_norm"]


def test_models_without_a_stack_keep_registration_order() -> None:
    # no stack of blocks, no reordering: a final_layer_norm registered first is simply the first layer
    model = nn.Module()
    model.final_layer_norm = nn.LayerNorm(4)
    model.body = nn.Linear(4, 4)
    assert layer_names(model) == ["final_layer_norm", "body"]


class ImageGptLayerNorm(nn.Module):
    """A hand-written norm, as ImageGPT/Qwen2-VL/Pixtral/T5/Llama define theirs: no subclass of a torch norm."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Qwen2VLRMSNormGated(ImageGptLayerNorm):
    """Gated RMSNorm classes (Mamba2, Qwen3-Next) end in ``NormGated``."""


class PreLayerNormHead(nn.Module):
    """A class whose name says LayerNorm but which is no norm layer (RobertaPreLayerNormLMHead, a ConvNormLayer):
    it has submodules, and a bias of its own."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.scale = nn.Parameter(torch.ones(d))


class OddNorms(nn.Module):
    def __init__(self, d: int = 4) -> None:
        super().__init__()
        self.ln_pre = ImageGptLayerNorm(d)  # Pixtral's ln_pre, ImageGPT's ln_1/ln_f: no "norm" in the name
        self.proj = nn.Linear(d, d)
        self.ln_q = Qwen2VLRMSNormGated(d)  # Qwen2-VL's merger ln_q
        self.head = PreLayerNormHead(d)


def test_hand_written_norm_classes_are_norms_whatever_their_attribute_name() -> None:
    # Bug: ln_pre.weight and ln_q.weight were weight-decayed (only torch's norm classes were known by type)
    model = OddNorms()
    of = _group_of(param_groups(model, 1.0, weight_decay=0.1), model)
    assert of["ln_pre.weight"]["weight_decay"] == of["ln_q.weight"]["weight_decay"] == 0.0
    assert of["ln_pre.weight"]["name"] == "all/no_decay"
    # a container whose class name says LayerNorm is not a norm layer: its own 1-D tensor decays, like any weight
    assert of["head.scale"]["weight_decay"] == of["proj.weight"]["weight_decay"] == 0.1
    # "norm" left out of no_decay: the custom norms decay too (the class rule belongs to the "norm" pattern)
    of = _group_of(param_groups(model, 1.0, weight_decay=0.1, no_decay=("bias",)), model)
    assert of["ln_pre.weight"]["weight_decay"] == 0.1


class TiedLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict(dict(wte=nn.Embedding(10, 4),
                                              h=nn.ModuleList(nn.Linear(4, 4) for _ in range(2))))
        self.lm_head = nn.Linear(4, 10, bias=False)
        self.lm_head.weight = self.transformer.wte.weight


def test_tied_head_name_is_offered_when_head_matches_nothing() -> None:
    # Bug: "... matches no parameter of the model, so backbone_lr_scale has no head to spare. Pass head= ..." with no
    # suggestion: the tied lm_head is no layer, and only layer names were candidates
    with pytest.raises(ValueError, match=r"Did you mean 'lm_head'\?"):
        param_groups(TiedLM(), 1.0, backbone_lr_scale=0.1)


def test_layer_order_is_a_permutation_of_registration_order() -> None:
    # the reordering moves layers, never loses or duplicates a parameter (every architecture above)
    models = (BartLikeEncoder(), OptLikeDecoder(), Opt350mLikeDecoder(), Seq2Seq(), Lfm2Like(), OddNorms(), TiedLM())
    for model in models:
        flat = list(itertools.chain.from_iterable(p for _, p in _layers(model)))
        assert sorted(flat) == sorted(n for n, _ in model.named_parameters())
