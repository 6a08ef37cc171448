"""Session 18's walkthrough of "scale it" (scale_lr, nominal_batch, param_groups, freeze_layers) as a new user.

Each test failed before its fix in ``lrkit.scaling``.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from lrkit.scaling import layer_names, optimizer_family, param_groups, scale_lr


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1))


def _decay_by_name(model: nn.Module, groups: list[dict]) -> dict[str, float]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g["weight_decay"] for g in groups for p in g["params"]}


# ------------------------------------------------------------------ optimizer names as lrkit writes them elsewhere


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("timm.optim:Lars", "sgd"),  # 'lars' is known by name, but 'optim:lars' was not found
        ("pytorch_optimizer:Lamb", "adaptive"),
        ("timm.optim:AdaBelief", "adaptive"),
        ("mypkg.opt:Adan", "adaptive"),
        ("torch.optim.adagrad:Adagrad", "adaptive"),  # the spelling lrkit.train records (results.optimizer)
        ("torch.optim:SGD", "sgd"),
    ],
)
def test_module_colon_class_names_are_read_by_their_class(name: str, family: str) -> None:
    # Bug: "package.module:ClassName" (how lrkit.train, the CLI and args.yaml spell an optimizer class) was split
    # at the last "." only, so "timm.optim:Lars" was looked up as "optim:lars": refused with "Did you mean 'lars'?"
    assert optimizer_family(name) == family
    rule_p = 1.0 if family == "sgd" else 0.5
    assert scale_lr(1e-3, 64, 256, optimizer=name) == pytest.approx(1e-3 * 4**rule_p)


@pytest.mark.parametrize("name", ["pytorch_optimizer:DAdaptAdam", "mypkg:Prodigy", "pkg.sub:DAdaptSGD"])
def test_step_size_adapting_optimizers_named_module_colon_class_are_refused(name: str) -> None:
    # Bug: "pytorch_optimizer:DAdaptAdam" was scaled by the square root (0.002, no error): its lr is a multiplier of
    # the step size D-Adaptation estimates, which the README says is refused with every rule.
    with pytest.raises(ValueError, match=r"adapts its own step size"):
        scale_lr(1.0, 64, 256, optimizer=name)
    with pytest.raises(ValueError, match=r"adapts its own step size"):
        optimizer_family(name)


# ------------------------------------------------------------------------------------------------ rule=


def test_rule_in_another_case_gets_a_did_you_mean() -> None:
    # Bug: rule="SQRT" said "unknown scaling rule 'SQRT'. Valid: auto, linear, sqrt" without the obvious suggestion.
    # Since session 37 a rule in another case is the rule; a misspelt one in another case still gets the hint.
    assert scale_lr(0.1, 32, 64, rule="SQRT") == scale_lr(0.1, 32, 64, rule="sqrt")
    with pytest.raises(ValueError, match=r"unknown scaling rule 'SQRTT'\. Did you mean 'sqrt'\?"):
        scale_lr(0.1, 32, 64, rule="SQRTT")


@pytest.mark.parametrize("bad", [2, 0.5, ["sqrt"]])
def test_rule_that_is_not_a_string_is_named_as_passed(bad: object) -> None:
    # Bug: rule=2 was reported as the string "unknown scaling rule '2'", as if the user had typed '2'.
    with pytest.raises(ValueError, match=rf"rule={re.escape(repr(bad))} must be .*'linear', 'sqrt' or 'auto'"):
        scale_lr(0.1, 32, 64, rule=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ no_decay=


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("bias,norm", "comma"),  # one string holding a comma-separated list: nothing matched, everything decayed
        (("bias", " norm"), "space"),  # a split artefact: the LayerNorm's weight decayed
        (("*.bias", "*norm*"), "wildcard"),  # fnmatch-style patterns: substrings never containing "*"
        ((r".*\.bias$",), "regular expression"),
    ],
)
def test_no_decay_entries_that_cannot_be_substrings_are_refused(bad: object, why: str) -> None:
    # Bug: each of these matched no parameter, so every bias and norm weight decayed without a word.
    model = _net()
    with pytest.raises(ValueError, match=rf"no_decay entry .* {why}"):
        param_groups(model, 0.1, weight_decay=0.1, no_decay=bad)  # type: ignore[arg-type]


def test_empty_no_decay_entry_is_refused() -> None:
    # Bug: no_decay=("bias", "norm", "") matched every name (the empty substring), so nothing decayed at all.
    with pytest.raises(ValueError, match=r"no_decay entry '' .*matches every parameter.*no_decay=\(\)"):
        param_groups(_net(), 0.1, weight_decay=0.1, no_decay=("bias", "norm", ""))


def test_unusual_no_decay_entry_that_matches_a_real_name_still_works() -> None:
    # the check above is for entries that match nothing: a module really named with such characters is honoured
    model = nn.Sequential()
    model.add_module("proj-1", nn.Linear(2, 2))
    model.add_module("out", nn.Linear(2, 1))
    decay = _decay_by_name(model, param_groups(model, 0.1, weight_decay=0.1, no_decay=("bias", "proj-1")))
    assert decay == {"proj-1.weight": 0.0, "proj-1.bias": 0.0, "out.weight": 0.1, "out.bias": 0.0}


def test_default_and_plain_no_decay_lists_unchanged() -> None:
    model = _net()
    decay = _decay_by_name(model, param_groups(model, 0.1, weight_decay=0.1))
    assert decay == {"0.weight": 0.1, "0.bias": 0.0, "1.weight": 0.0, "1.bias": 0.0, "2.weight": 0.1, "2.bias": 0.0}
    # a list naming something the model lacks (a generic list reused across models) stays fine
    groups = param_groups(model, 0.1, weight_decay=0.1, no_decay=("bias", "norm", "pos_embed", "cls_token"))
    assert _decay_by_name(model, groups) == decay


# ------------------------------------------------------------------- a model whose only layer is the model itself


class _Bare(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.w = nn.Parameter(torch.ones(3, 3))


@pytest.mark.parametrize("model", [nn.Linear(2, 2), _Bare()], ids=["Linear", "own-parameters"])
def test_head_error_on_a_model_without_child_layers_says_what_the_names_are(model: nn.Module) -> None:
    # Bug: the message ended in "layers: " with nothing after it (the model's one layer is named '').
    assert layer_names(model) == [""]
    with pytest.raises(ValueError) as info:
        param_groups(model, 0.1, backbone_lr_scale=0.5)
    msg = str(info.value)
    assert not msg.rstrip().endswith("layers:")
    first = next(n for n, _ in model.named_parameters())
    assert f"'{first}'" in msg and "parameter" in msg


# ------------------------------------------------------------------------------- backbone_lr_scale with a frozen head


@pytest.mark.parametrize("how", ["freeze=", "requires_grad"])
def test_backbone_lr_scale_with_every_head_parameter_frozen_is_refused(how: str) -> None:
    # Bug: with the head frozen, every trainable parameter went to "backbone" at lr * s and no group trained at the
    # peak lr — lrkit.train then reported lr0 for a group that does not exist. A head that covers every trainable
    # parameter was already an error; a head that covers none of them is its mirror image.
    model = _net()
    kwargs: dict = {"freeze": ["2"]} if how == "freeze=" else {}
    if how == "requires_grad":
        model[2].requires_grad_(False)
    with pytest.raises(ValueError, match=r"head='2' covers only frozen parameters.*'2\.weight'.*lr \* 0\.1"):
        param_groups(model, 0.1, backbone_lr_scale=0.1, head="2", **kwargs)
    if how == "freeze=":
        assert all(p.requires_grad for p in model.parameters())  # a failed call freezes nothing
    # a head partly trainable is fine: its trainable part trains at the peak
    model = _net()
    model[2].bias.requires_grad_(False)
    groups = param_groups(model, 0.1, backbone_lr_scale=0.1, head="2")
    assert [(g["name"], g["lr"]) for g in groups if g["name"].startswith("head")] == [("head/decay", 0.1)]
