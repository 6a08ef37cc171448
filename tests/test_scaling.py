"""Tests for lrkit.scaling: batch-size rules, nominal batch size, fine-tuning parameter groups, freezing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrkit.scaling import (
    NominalBatch,
    freeze_layers,
    layer_names,
    nominal_batch,
    optimizer_family,
    param_groups,
    scale_lr,
)

# ------------------------------------------------------------------------------------------------------ scale_lr


@pytest.mark.parametrize(("b0", "b1"), [(256, 1024), (64, 16), (32, 48), (7, 7), (1, 4096)])
def test_scale_lr_linear_and_sqrt_follow_their_formulas(b0: int, b1: int) -> None:
    assert scale_lr(0.1, b0, b1, rule="linear") == pytest.approx(0.1 * b1 / b0, rel=1e-12)
    assert scale_lr(3e-4, b0, b1, rule="sqrt") == pytest.approx(3e-4 * math.sqrt(b1 / b0), rel=1e-12)


def test_scale_lr_round_trip_is_identity() -> None:
    for rule in ("linear", "sqrt"):
        there = scale_lr(0.02, 64, 512, rule=rule)
        assert scale_lr(there, 512, 64, rule=rule) == pytest.approx(0.02, rel=1e-12)


def test_goyal_example_batch_8k() -> None:
    # Goyal et al. 2017: ResNet-50 at lr 0.1 for batch 256 becomes lr 3.2 at batch 8192.
    assert scale_lr(0.1, 256, 8192) == pytest.approx(3.2)


def _params() -> list[nn.Parameter]:
    return list(nn.Linear(2, 1).parameters())


@pytest.mark.parametrize(
    "optimizer",
    [
        torch.optim.SGD,
        "SGD",
        "sgd",
        "torch.optim.SGD",
        lambda: torch.optim.SGD(_params(), lr=0.1, momentum=0.9),
        torch.optim.ASGD,
    ],
)
def test_auto_rule_is_linear_for_sgd(optimizer: object) -> None:
    opt = optimizer() if callable(optimizer) and not isinstance(optimizer, type) else optimizer
    assert scale_lr(0.1, 64, 256, rule="auto", optimizer=opt) == pytest.approx(scale_lr(0.1, 64, 256, rule="linear"))


@pytest.mark.parametrize(
    "optimizer",
    [
        torch.optim.Adam,
        torch.optim.AdamW,
        torch.optim.RMSprop,
        torch.optim.Adagrad,
        torch.optim.NAdam,
        torch.optim.RAdam,
        torch.optim.Adamax,
        "AdamW",
        "RMSProp",
        "adagrad",
        lambda: torch.optim.AdamW(_params(), lr=1e-3),
    ],
)
def test_auto_rule_is_sqrt_for_adaptive_optimizers(optimizer: object) -> None:
    opt = optimizer() if callable(optimizer) and not isinstance(optimizer, type) else optimizer
    assert scale_lr(1e-3, 64, 256, rule="auto", optimizer=opt) == pytest.approx(2e-3)


def test_auto_rule_sees_subclasses_and_name_hints() -> None:
    class MyAdam(torch.optim.Adam):
        pass

    class AdamW8bit(torch.optim.Optimizer):  # e.g. bitsandbytes, not a torch subclass of Adam
        pass

    class FusedSGD(torch.optim.Optimizer):
        pass

    assert optimizer_family(MyAdam) == "adaptive"
    assert optimizer_family(MyAdam(_params())) == "adaptive"
    assert optimizer_family(AdamW8bit) == "adaptive"
    assert optimizer_family(FusedSGD) == "sgd"


@pytest.mark.parametrize("optimizer", [torch.optim.LBFGS, torch.optim.Rprop, "Lion", "auto"])
def test_auto_rule_refuses_to_guess(optimizer: object) -> None:
    with pytest.raises(ValueError, match=r"cannot tell.*rule='linear' or rule='sqrt'"):
        scale_lr(0.1, 64, 128, rule="auto", optimizer=optimizer)


def test_scale_lr_errors_name_the_bad_value() -> None:
    with pytest.raises(ValueError, match="needs optimizer="):
        scale_lr(0.1, 64, 128, rule="auto")
    with pytest.raises(ValueError, match=r"unknown scaling rule 'sqrtt'\. Did you mean 'sqrt'\?"):
        scale_lr(0.1, 64, 128, rule="sqrtt")
    with pytest.raises(ValueError, match=r"lr=-0\.1 must be a finite number > 0"):
        scale_lr(-0.1, 64, 128)
    with pytest.raises(ValueError, match="lr=nan"):
        scale_lr(float("nan"), 64, 128)
    for bad in (0, -8, 2.5, True, "64"):
        with pytest.raises(ValueError, match=r"from_batch=.* must be a positive integer"):
            scale_lr(0.1, bad, 128)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"to_batch=0 must be a positive integer"):
        scale_lr(0.1, 64, 0)
    with pytest.raises(ValueError, match="must be a torch optimizer instance"):
        scale_lr(0.1, 64, 128, rule="auto", optimizer=3)


# ------------------------------------------------------------------------------------------------- nominal_batch


@pytest.mark.parametrize("nbs", [64, 32, 100])
@pytest.mark.parametrize("batch", [1, 3, 8, 16, 24, 25, 43, 64, 96, 128, 500])
def test_nominal_batch_matches_ultralytics_formula(batch: int, nbs: int) -> None:
    wd = 5e-4
    out = nominal_batch(batch, nbs=nbs, weight_decay=wd)
    accumulate = max(round(nbs / batch), 1)  # ultralytics/engine/trainer.py
    assert out == NominalBatch(accumulate, wd * batch * accumulate / nbs)
    # the effective batch is the one closest to nbs among multiples of batch (never below one batch)
    assert abs(batch * out.accumulate - nbs) <= batch / 2 + 1e-9 or out.accumulate == 1


def test_nominal_batch_known_values() -> None:
    acc, wd = nominal_batch(16, nbs=64, weight_decay=5e-4)  # Ultralytics default: 4 x 16 = 64, wd unchanged
    assert acc == 4 and wd == pytest.approx(5e-4)
    assert nominal_batch(128, nbs=64, weight_decay=5e-4) == (1, pytest.approx(1e-3))  # 2x the samples, 2x decay
    assert nominal_batch(16, weight_decay=0.0).weight_decay == 0.0


def test_nominal_batch_errors() -> None:
    with pytest.raises(ValueError, match="batch=0 must be a positive integer"):
        nominal_batch(0)
    with pytest.raises(ValueError, match="nbs=-64"):
        nominal_batch(16, nbs=-64)
    with pytest.raises(ValueError, match="weight_decay=-0.1"):
        nominal_batch(16, weight_decay=-0.1)


# ------------------------------------------------------------------------------------------------- param_groups


class Net(nn.Module):
    """A small fine-tuning-shaped model: root params, conv stem with BatchNorm, blocks with LayerNorm, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(8))
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"ln": nn.LayerNorm(8), "fc1": nn.Linear(8, 8), "fc2": nn.Linear(8, 8, bias=False)})
            for _ in range(3)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)  # no parameters: not a layer
        self.gn = nn.GroupNorm(2, 8)
        self.fc = nn.Linear(8, 3)


def _ids(groups: list[dict]) -> list[int]:
    return [id(p) for g in groups for p in g["params"]]


CONFIGS = [
    {},
    {"weight_decay": 0.05},
    {"weight_decay": 0.05, "backbone_lr_scale": 0.1},
    {"weight_decay": 0.05, "layer_decay": 0.75},
    {"weight_decay": 0.05, "layer_decay": 0.5, "freeze": 2},
    {"backbone_lr_scale": 0.2, "freeze": ["stem", "blocks.0"], "no_decay": ()},
    {"layer_decay": 0.9, "layer_id_fn": lambda n: 0 if not n.startswith("fc") else 1},
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_every_trainable_param_in_exactly_one_group(cfg: dict) -> None:
    model = Net()
    groups = param_groups(model, 1e-3, **cfg)
    ids = _ids(groups)
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)), "a parameter is in two groups"
    assert sorted(ids) == sorted(trainable)
    assert all(g["params"] for g in groups), "empty group"
    assert all(p.requires_grad for g in groups for p in g["params"]), "frozen param in a group"
    assert len({g["name"] for g in groups}) == len(groups)
    for g in groups:
        assert g["lr"] == pytest.approx(1e-3 * g["lr_scale"])
        assert 0 < g["lr_scale"] <= 1
    assert max(g["lr_scale"] for g in groups) == 1.0
    torch.optim.AdamW(groups)  # torch accepts the groups as they are


def test_backbone_head_ratio() -> None:
    model = Net()
    groups = param_groups(model, 0.01, backbone_lr_scale=0.1)
    head = {id(p) for p in model.fc.parameters()}
    for g in groups:
        in_head = {id(p) in head for p in g["params"]}
        assert len(in_head) == 1, f"group {g['name']} mixes head and backbone"
        expected = 1.0 if in_head.pop() else 0.1
        assert g["lr_scale"] == expected and g["lr"] == pytest.approx(0.01 * expected)
        assert g["name"].startswith("head/" if expected == 1.0 else "backbone/")


def test_head_prefix_does_not_catch_inner_fc_layers() -> None:
    model = Net()  # blocks.*.fc1 must stay in the backbone though "fc" is a head name
    groups = param_groups(model, 0.01, backbone_lr_scale=0.5)
    head_params = [p for g in groups if g["name"].startswith("head/") for p in g["params"]]
    assert {id(p) for p in head_params} == {id(p) for p in model.fc.parameters()}


def test_layer_decay_scales_follow_the_formula() -> None:
    model = nn.Sequential(*(nn.Linear(4, 4) for _ in range(5)))
    d = 0.7
    groups = param_groups(model, 0.1, layer_decay=d)
    index = {id(p): i for i, layer in enumerate(model) for p in layer.parameters()}
    for g in groups:
        (layer,) = {index[id(p)] for p in g["params"]}
        assert g["lr_scale"] == pytest.approx(d ** (4 - layer))
        assert g["lr"] == pytest.approx(0.1 * d ** (4 - layer))
        assert g["name"].startswith(f"layer{layer}/")


def test_layer_numbering_expands_module_lists_and_puts_root_params_first() -> None:
    model = Net()
    assert layer_names(model) == ["stem", "blocks.0", "blocks.1", "blocks.2", "gn", "fc"]
    groups = param_groups(model, 1.0, layer_decay=0.5)
    by_param = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert by_param[id(model.cls_token)] == pytest.approx(0.5**5)  # with the stem, at the input end
    assert by_param[id(model.blocks[1]["fc1"].weight)] == pytest.approx(0.5**3)
    assert by_param[id(model.fc.weight)] == 1.0


def test_layer_id_fn() -> None:
    model = Net()
    groups = param_groups(model, 1.0, layer_decay=0.5, layer_id_fn=lambda n: 2 if n.startswith("fc") else 0)
    by_param = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert by_param[id(model.fc.bias)] == 1.0
    assert by_param[id(model.stem[0].weight)] == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"layer_id_fn\('cls_token'\) returned -1"):
        param_groups(model, 1.0, layer_decay=0.5, layer_id_fn=lambda n: -1)


def test_no_decay_biases_and_norm_layers_by_type() -> None:
    model = Net()
    groups = param_groups(model, 1e-3, weight_decay=0.05)
    wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    is_bias = {id(p): g["is_bias"] for g in groups for p in g["params"]}
    norm_params = [
        model.stem[1].weight, model.blocks[0]["ln"].weight, model.gn.weight,  # found by type, names lack "norm"
    ]  # fmt: skip
    for p in norm_params:
        assert wd[id(p)] == 0.0 and not is_bias[id(p)]
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            assert wd[id(p)] == 0.0 and is_bias[id(p)], name
    for p in (model.stem[0].weight, model.blocks[2]["fc2"].weight, model.fc.weight, model.cls_token):
        assert wd[id(p)] == 0.05 and not is_bias[id(p)]
    assert {g["name"] for g in groups} == {"all/decay", "all/no_decay", "all/bias"}


def test_no_decay_patterns_and_disabling() -> None:
    model = Net()
    groups = param_groups(model, 1e-3, weight_decay=0.1, no_decay=("bias", "norm", "cls_token"))
    wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert wd[id(model.cls_token)] == 0.0
    everything = param_groups(model, 1e-3, weight_decay=0.1, no_decay=())
    assert all(g["weight_decay"] == 0.1 for g in everything)
    # biases keep their own group (warmup_bias_lr) even when they decay
    assert any(g["is_bias"] for g in everything)


def test_freeze_in_param_groups() -> None:
    model = Net()
    groups = param_groups(model, 1e-3, freeze=2)
    frozen = {id(p) for p in [model.cls_token, *model.stem.parameters(), *model.blocks[0].parameters()]}
    assert not frozen & set(_ids(groups))
    assert all(not p.requires_grad for p in [model.cls_token, *model.stem.parameters()])


def test_ratios_survive_a_schedule() -> None:
    model = Net()
    opt = torch.optim.SGD(param_groups(model, 0.1, layer_decay=0.5), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 ** (t + 1))
    for _ in range(3):
        opt.step()
        sched.step()
        peak = max(g["lr"] for g in opt.param_groups)
        for g in opt.param_groups:
            assert g["lr"] / peak == pytest.approx(g["lr_scale"])


def test_param_groups_errors() -> None:
    model = Net()
    with pytest.raises(ValueError, match="mutually exclusive"):
        param_groups(model, 1e-3, backbone_lr_scale=0.1, layer_decay=0.75)
    with pytest.raises(ValueError, match=r"backbone_lr_scale=2 must be in \(0, 1\]"):
        param_groups(model, 1e-3, backbone_lr_scale=2)
    with pytest.raises(ValueError, match="layer_decay=0"):
        param_groups(model, 1e-3, layer_decay=0)
    with pytest.raises(ValueError, match=r"head=\('haed',\) matches no parameter.*Did you mean 'fc'|head=\('haed',\)"):
        param_groups(model, 1e-3, backbone_lr_scale=0.1, head=("haed",))
    with pytest.raises(ValueError, match="no backbone"):
        param_groups(nn.Sequential(nn.Linear(2, 2)), 1e-3, backbone_lr_scale=0.1, head=("0",))
    with pytest.raises(ValueError, match="layer_id_fn is only used with layer_decay"):
        param_groups(model, 1e-3, layer_id_fn=lambda n: 0)
    with pytest.raises(ValueError, match=r"lr=0 must be a finite number > 0"):
        param_groups(model, 0)
    with pytest.raises(ValueError, match=r"weight_decay=-1"):
        param_groups(model, 1e-3, weight_decay=-1)
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(frozen, 1e-3)


# ------------------------------------------------------------------------------------------------ freeze_layers


def test_freeze_first_n_layers() -> None:
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 1))
    assert freeze_layers(model, 0) == []
    assert all(p.requires_grad for p in model.parameters())
    names = freeze_layers(model, 2)  # the ReLU owns no parameters, so "layer 2" is model[2]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [p.requires_grad for p in model.parameters()] == [False, False, False, False, True, True]


def test_freeze_by_index_and_prefix() -> None:
    model = Net()
    names = freeze_layers(model, [-1, "blocks.1"])
    assert names == [n for n, _ in model.named_parameters() if n.startswith(("fc.", "blocks.1."))]
    for n, p in model.named_parameters():
        assert p.requires_grad == (n not in names)


def test_freeze_errors() -> None:
    model = Net()
    with pytest.raises(ValueError, match=r"freeze=7 must be between 0 and the number of layers \(6: stem, blocks\.0"):
        freeze_layers(model, 7)
    with pytest.raises(ValueError, match="freeze=-1"):
        freeze_layers(model, -1)
    with pytest.raises(ValueError, match=r"'stme' matches no parameter name\. Did you mean 'stem'\?"):
        freeze_layers(model, ["stme"])
    with pytest.raises(ValueError, match="freeze index 9 is out of range"):
        freeze_layers(model, [9])
    with pytest.raises(ValueError, match="freeze=True"):
        freeze_layers(model, True)  # type: ignore[arg-type]
    assert all(p.requires_grad for p in model.parameters()), "a failed call must not freeze anything"
