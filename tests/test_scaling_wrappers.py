"""lrkit.scaling on real-world model and optimizer shapes: wrapped models (DataParallel, DDP, torch.compile), tied
weights, wrapped optimizers, and argument types. Each test failed before its fix (found by a bug hunt)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrkit.scaling import freeze_layers, layer_names, optimizer_family, param_groups, scale_lr


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
        self.neck = nn.Linear(8, 8)
        self.fc = nn.Linear(8, 2)


class Compiled(nn.Module):
    """Stands in for torch.compile's OptimizedModule: the model under ``_orig_mod`` (compiling is slow on CPU)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self._orig_mod = inner


def _summary(groups: list[dict]) -> list[tuple[str, float, int]]:
    return [(g["name"], g["lr_scale"], sum(p.numel() for p in g["params"])) for g in groups]


def _wrapped(kind: str) -> tuple[nn.Module, str]:
    if kind == "dataparallel":
        return nn.DataParallel(Net()), "module."
    if kind == "compile":
        return Compiled(Net()), "_orig_mod."
    return nn.DataParallel(Compiled(Net())), "module._orig_mod."


@pytest.mark.parametrize("kind", ["dataparallel", "compile", "both"])
def test_wrapped_model_has_the_layers_and_groups_of_the_bare_model(kind: str) -> None:
    # Bug: a wrapped model was one layer ('module' / '_orig_mod'): layer_decay put everything at the peak LR,
    # freeze_layers(m, 1) froze the whole model, and the default head ('fc') matched nothing.
    bare = Net()
    wrapped, prefix = _wrapped(kind)
    assert layer_names(wrapped) == layer_names(bare) == ["backbone", "neck", "fc"]
    for kwargs in ({"layer_decay": 0.5}, {"backbone_lr_scale": 0.1}, {"backbone_lr_scale": 0.1, "head": "neck"}):
        assert _summary(param_groups(wrapped, 0.1, weight_decay=0.01, **kwargs)) == _summary(
            param_groups(bare, 0.1, weight_decay=0.01, **kwargs)
        ), kwargs
    frozen = freeze_layers(wrapped, 1)  # the model's real parameter names come back
    assert frozen == [prefix + n for n in ("backbone.0.weight", "backbone.0.bias", "backbone.1.weight",
                                           "backbone.1.bias")]
    assert [p.requires_grad for p in wrapped.parameters()] == [False] * 4 + [True] * 4


def test_wrapped_model_freezes_by_the_bare_name_or_the_full_name() -> None:
    m, _ = _wrapped("both")
    assert freeze_layers(m, ["neck"]) == ["module._orig_mod.neck.weight", "module._orig_mod.neck.bias"]
    assert freeze_layers(m, ["module._orig_mod.fc.bias"]) == ["module._orig_mod.fc.bias"]
    with pytest.raises(ValueError, match=r"'nek' matches no parameter name\. Did you mean 'neck'\?"):
        freeze_layers(m, ["nek"])


def test_layer_id_fn_sees_the_bare_names_of_a_wrapped_model() -> None:
    seen: list[str] = []

    def layer_id(name: str) -> int:
        seen.append(name)
        return {"backbone": 0, "neck": 1, "fc": 1}[name.split(".")[0]]

    groups = param_groups(nn.DataParallel(Net()), 0.1, layer_decay=0.5, layer_id_fn=layer_id)
    assert all(not n.startswith("module.") for n in seen) and "fc.weight" in seen
    assert {g["name"]: g["lr_scale"] for g in groups}["layer0/decay"] == 0.5


def test_real_torch_compile_wrapper_is_unwrapped() -> None:
    compiled = torch.compile(Net())  # wrapping only: nothing is compiled until the model is called
    assert layer_names(compiled) == ["backbone", "neck", "fc"]


class TiedLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight  # tied: one tensor, two names


def test_tied_head_weight_is_found_by_the_head_name() -> None:
    # Bug: named_parameters() lists a tied tensor once, under its first name, so head=('head',) "matched no
    # parameter" and freeze_layers(m, ['head']) said the same although the head has a weight.
    m = TiedLM()
    groups = param_groups(m, 0.1, backbone_lr_scale=0.1)
    by_name = {g["name"]: g["params"] for g in groups}
    assert any(p is m.emb.weight for p in by_name["head/decay"])  # the shared weight trains with the head
    assert [g["name"] for g in groups] == ["backbone/decay", "backbone/bias", "head/decay"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == 3  # every tensor once: torch refuses a parameter in two groups
    torch.optim.SGD(groups)
    assert freeze_layers(m, ["head"]) == ["emb.weight"]
    assert not m.emb.weight.requires_grad and m.body.weight.requires_grad


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"head": None, "backbone_lr_scale": 0.1}, r"head=None must be a parameter-name prefix or a list of them"),
    ({"no_decay": None}, r"no_decay=None must be a name pattern or a list of them"),
    ({"no_decay": ["bias", 1]}, r"no_decay entry 1 must be a string"),
    ({"head": ["fc", None], "backbone_lr_scale": 0.1}, r"head entry None must be a string"),
    ({"layer_decay": 0.5, "layer_id_fn": 3}, r"layer_id_fn=3 must be a function"),
])
def test_bad_argument_types_name_the_argument(kwargs: dict, match: str) -> None:
    # Bug: these raised TypeError/AttributeError from deep inside ('NoneType' object is not iterable, ...).
    with pytest.raises(ValueError, match=match):
        param_groups(Net(), 0.1, **kwargs)


def test_not_a_module_is_named() -> None:
    with pytest.raises(ValueError, match=r"model=list must be a torch\.nn\.Module"):
        param_groups([nn.Parameter(torch.ones(2))], 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"model=str must be a torch\.nn\.Module"):
        freeze_layers("resnet18", 2)  # type: ignore[arg-type]


def test_layer_id_fn_error_names_the_parameter() -> None:
    def bad(name: str) -> int:
        return int(name.split(".")[1])  # 'backbone.0.weight' -> 0, but 'neck.weight' -> int('weight') fails

    with pytest.raises(ValueError, match=r"layer_id_fn\('neck\.weight'\) raised ValueError: invalid literal"):
        param_groups(Net(), 0.1, layer_decay=0.5, layer_id_fn=bad)


def test_a_model_without_parameters_says_so() -> None:
    class Buffers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("stats", torch.ones(3))

    with pytest.raises(ValueError, match=r"the model \(Buffers\) has no parameters"):
        param_groups(Buffers(), 0.1)


def test_freeze_takes_a_single_name_and_any_sequence() -> None:
    assert freeze_layers(Net(), "neck") == ["neck.weight", "neck.bias"]
    assert freeze_layers(Net(), range(1, 3)) == ["neck.weight", "neck.bias", "fc.weight", "fc.bias"]


@pytest.mark.parametrize("args", [(1e300, 1, 10**20), (0.1, 1, 10**400)])
def test_scale_lr_overflow_is_an_error_not_inf(args: tuple) -> None:
    # Bug: scale_lr(1e300, 1, 1e20) returned inf and scale_lr(0.1, 1, 10**400) raised a bare OverflowError.
    with pytest.raises(ValueError, match=r"overflows"):
        scale_lr(*args)


def test_float_tensor_batch_size_is_accepted_like_a_float() -> None:
    assert scale_lr(0.1, torch.tensor(32.0), 64) == pytest.approx(0.2)  # as np.float64(32.0) already was


def test_no_did_you_mean_for_an_optimizer_object() -> None:
    # Bug: Rprop (a real torch optimizer) got "Did you mean 'rmsprop'?": a did-you-mean is for names a user typed.
    params = [nn.Parameter(torch.ones(2))]
    with pytest.raises(ValueError, match=r"'Rprop'") as e:
        optimizer_family(torch.optim.Rprop(params))
    assert "Did you mean" not in str(e.value)
    with pytest.raises(ValueError, match=r"Did you mean 'rmsprop'\?"):
        optimizer_family("rmsprp")


class AcceleratedOptimizer(torch.optim.Optimizer):
    """Like accelerate's wrapper: a torch Optimizer subclass that holds the real optimizer in ``.optimizer``."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    @property
    def param_groups(self):  # type: ignore[override]
        return self.optimizer.param_groups


class LightningOptimizer:
    """Like Lightning's wrapper: not an Optimizer subclass; the real one is in ``._optimizer``."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self._optimizer = optimizer


@pytest.mark.parametrize("wrapper", [AcceleratedOptimizer, LightningOptimizer])
def test_wrapped_optimizers_are_judged_by_the_optimizer_inside(wrapper: type) -> None:
    # Bug: "cannot tell whether optimizer 'AcceleratedOptimizer' is SGD-like", and the Lightning wrapper was
    # refused as "must be a torch optimizer instance".
    params = [nn.Parameter(torch.ones(2))]
    assert optimizer_family(wrapper(torch.optim.AdamW(params))) == "adaptive"
    assert scale_lr(0.1, 32, 128, rule="auto", optimizer=wrapper(torch.optim.SGD(params, lr=0.1))) == pytest.approx(0.4)
