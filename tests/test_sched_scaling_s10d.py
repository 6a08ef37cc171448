"""Hunt s10d: schedules and scaling from a demanding user's side; each test failed before its fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrkit import schedules
from lrkit.scaling import param_groups
from lrkit.schedules import WSD, from_spec


# ------------------------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("bad", ["cosin", 3])
def test_wsd_bad_decay_type_names_decay_type(bad: object) -> None:
    # Bug: the error named 'cooldown_type', a key the user never wrote (the decay is built as a Cooldown).
    with pytest.raises(ValueError, match=r"decay_type '.*'.*Valid: 1-sqrt, cosine, linear") as info:
        WSD(lr0=1.0, warmup_steps=1, decay_steps=2, decay_type=bad, total_steps=10)  # type: ignore[arg-type]
    assert "cooldown_type" not in str(info.value)
    with pytest.raises(ValueError, match=r"unknown value for decay_type 'cosin'\. Did you mean 'cosine'\?"):
        from_spec("wsd lr0=1 warmup_steps=1 decay_steps=2 decay_type=cosin", total_steps=10)
    assert WSD(lr0=1.0, warmup_steps=1, decay_steps=2, decay_type="cos", total_steps=10)(9) == pytest.approx(0.5)


def test_blended_warmup_longer_than_run_says_what_is_valid() -> None:
    # Bug: "warmup of 9 steps is longer than the schedule it blends into (6 steps)" named neither the key nor the
    # longest warmup that fits — and on `ultralytics` the 9 steps come from the default warmup_epochs=3 the user
    # never typed.
    with pytest.raises(ValueError, match=r"9 steps .*\(6 steps\): give warmup_steps <= 6, or warmup_epochs <= 2"):
        schedules.ultralytics(lr0=0.01, lrf=0.01, cos_lr=True, epochs=2, steps_per_epoch=3)
    with pytest.raises(ValueError, match=r"give warmup_steps <= 5, or a longer run"):
        from_spec("cosine lr0=0.1 warmup_steps=10", total_steps=5)
    # the bounds it names are valid
    s = schedules.ultralytics(lr0=0.01, lrf=0.01, cos_lr=True, epochs=2, steps_per_epoch=3, warmup_epochs=2)
    assert s.lr(0) == 0.0 and s.lr(6) == pytest.approx(0.01 * 0.01)  # warms up from 0, ends at lr0 * lrf
    assert from_spec("cosine lr0=0.1 warmup_steps=5", total_steps=5).lr(0) == 0.0


# ------------------------------------------------------------------------------------------------ scaling
class _Res(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.ln = nn.LayerNorm(4)
        self.embed = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 2)


def _by_param(groups: list[dict]) -> dict[int, dict]:
    return {id(p): g for g in groups for p in g["params"]}


def test_norm_biases_get_no_decay_when_only_biases_decay() -> None:
    # Bug: with no_decay=("norm",) (decay the biases, spare the norm layers) a BatchNorm/LayerNorm *bias* decayed:
    # the bias test came first and ignored that "norm" covers every parameter of a norm layer (README), and a bias
    # matched by another pattern ("embed") decayed too.
    model = _Res()
    groups = param_groups(model, 0.1, weight_decay=0.05, no_decay=("norm", "embed"))
    g = _by_param(groups)
    for p in (model.bn1.weight, model.ln.weight, model.embed.weight):
        assert g[id(p)]["weight_decay"] == 0.0 and not g[id(p)]["is_bias"]
    for p in (model.bn1.bias, model.ln.bias, model.embed.bias):  # spared, and still bias groups (warmup_bias_lr)
        assert g[id(p)]["weight_decay"] == 0.0 and g[id(p)]["is_bias"], g[id(p)]["name"]
    assert g[id(model.fc.bias)]["weight_decay"] == 0.05 and g[id(model.fc.bias)]["is_bias"]
    assert g[id(model.conv1.weight)]["weight_decay"] == g[id(model.fc.weight)]["weight_decay"] == 0.05
    # every parameter exactly once, names unique, and a real optimizer applies those decays
    ids = [id(p) for grp in groups for p in grp["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert len({grp["name"] for grp in groups}) == len(groups)
    opt = torch.optim.AdamW(groups)
    assert {grp["name"]: grp["weight_decay"] for grp in opt.param_groups} == {
        "all/decay": 0.05, "all/no_decay": 0.0, "all/bias": 0.05, "all/bias_no_decay": 0.0}
    # the default (biases never decay) is unchanged: one bias group
    names = [grp["name"] for grp in param_groups(model, 0.1, weight_decay=0.05)]
    assert names == ["all/decay", "all/no_decay", "all/bias"]


def test_norm_biases_under_layer_decay_keep_their_layer_lr() -> None:
    model = _Res()
    groups = param_groups(model, 1.0, weight_decay=0.1, no_decay=("norm",), layer_decay=0.5)
    g = _by_param(groups)
    # layers conv1, bn1, ln, embed, fc -> 0..4: bn1's bias keeps layer 1's scale in its no-decay bias group
    assert g[id(model.bn1.bias)]["lr_scale"] == g[id(model.bn1.weight)]["lr_scale"] == 0.5**3
    assert g[id(model.bn1.bias)]["name"] == "layer1/bias_no_decay"
    assert g[id(model.embed.bias)]["name"] == "layer3/bias" and g[id(model.embed.bias)]["weight_decay"] == 0.1


def test_record_base_lr_is_named_base_lr_in_errors() -> None:
    # Bug: record(base_lr=-1) / sampled_record / write_json said "lr0=-1 must be ..." — a key the caller never passed
    # (with_peak names the schedule's own peak key).
    import io

    from lrkit.schedules.report import sampled_record, write_json

    s = from_spec("onecycle", total_steps=5)
    for call in (lambda: s.record(3, base_lr=-1.0), lambda: sampled_record(s, base_lr=0.0),
                 lambda: write_json(s, io.StringIO(), base_lr=float("nan"))):
        with pytest.raises(ValueError, match=r"^base_lr=(-1\.0|0\.0|nan) must be a finite number > 0"):
            call()
    assert s.record(5, base_lr=0.2)["lr"] == pytest.approx([s.with_peak(0.2).lr(t) for t in range(5)])


def test_shared_tensor_lr_keeps_each_groups_lr_scale() -> None:
    # Bug: Adam(groups, lr=torch.tensor(0.01)) gives every group that takes the default the *same* tensor; the
    # adapter filled it group by group, so every group ended at the last group's LR (lr_scale lost), and the
    # optimizer's default LR changed with the schedule.
    a, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(3))

    def make() -> torch.optim.Optimizer:
        return torch.optim.Adam([{"params": [a], "lr_scale": 1.0}, {"params": [b], "lr_scale": 0.1}],
                                lr=torch.tensor(0.01))

    opt = make()
    assert opt.param_groups[0]["lr"] is opt.param_groups[1]["lr"]  # torch's aliasing the bug came from
    spec = "cosine lr0=0.01 lrf=0.01"
    sched = from_spec(spec, total_steps=10).to_torch(opt)
    ref = from_spec(spec, total_steps=10)
    for t in range(4):
        lrs = [g["lr"] for g in opt.param_groups]
        assert all(isinstance(v, torch.Tensor) for v in lrs)  # still tensors, as the user built them
        assert [float(v) for v in lrs] == pytest.approx([ref.lr(t), 0.1 * ref.lr(t)], rel=1e-6)
        a.grad, b.grad = torch.ones(3), torch.ones(3)
        opt.step()
        sched.step()
    assert float(opt.defaults["lr"]) == pytest.approx(0.01)  # the default is not the schedule's LR
    # a reloaded optimizer state aliases the tensors again: loading in either order still keeps both LRs
    state = {"o": opt.state_dict(), "s": sched.state_dict()}
    opt2 = make()
    sched2 = from_spec(spec, total_steps=10).to_torch(opt2)
    sched2.load_state_dict(state["s"])
    opt2.load_state_dict(state["o"])
    opt2.step()
    sched2.step()
    assert [float(g["lr"]) for g in opt2.param_groups] == pytest.approx([ref.lr(5), 0.1 * ref.lr(5)], rel=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"warmup": 3}, r"^warmup=3 must be a Warmup or None, e\.g\. warmup=Warmup\(3\) for 3 steps"),
    ({"cooldown": 2}, r"^cooldown=2 must be a Cooldown or None, e\.g\. cooldown=Cooldown\(2\)"),
    ({"warmup": schedules.Cooldown(2)}, r"^warmup=Cooldown\(.*\) must be a Warmup or None"),
])
def test_composed_names_a_bare_step_count(kwargs: dict, message: str) -> None:
    # Bug: Composed(main, warmup=3) died with "AttributeError: 'int' object has no attribute 'steps'".
    with pytest.raises(TypeError, match=message):
        schedules.Composed(schedules.Cosine(lr0=1.0, total_steps=5), **kwargs)
    fixed = {k: (schedules.Warmup(v) if k == "warmup" else schedules.Cooldown(v)) if isinstance(v, int) else None
             for k, v in kwargs.items()}
    s = schedules.Composed(schedules.Cosine(lr0=1.0, total_steps=5), **fixed)
    assert s.total_steps == 5 + sum(v for v in kwargs.values() if isinstance(v, int))


@pytest.mark.parametrize(("spec", "keys"), [
    ("ultralytics lr0=0.01", "warmup_momentum=none momentum=none"),
    ("cosine lr0=0.01 momentum=0.9", "momentum=none"),
    ("cyclic base_lr=0.001 max_lr=0.01", "cycle_momentum=false"),
    ("onecycle max_lr=0.1 warmup_steps=3 warmup_momentum=0.5", "warmup_momentum=none cycle_momentum=false"),
])
@pytest.mark.parametrize("replanned", [False, True])
@pytest.mark.parametrize("make", [lambda p: torch.optim.Adagrad(p, lr=0.01), lambda p: torch.optim.LBFGS(p, lr=0.01)])
def test_momentum_schedule_on_optimizer_without_momentum_names_the_keys_to_turn_off(
    spec: str, keys: str, replanned: bool, make: object
) -> None:
    # Bug: the hint was always "(cycle_momentum=false / no warmup_momentum)" — wrong for `ultralytics` (momentum=
    # 0.937 by default) and for a plain momentum=; the keys it names now turn the momentum off, as tested here.
    p = [torch.nn.Parameter(torch.zeros(2))]
    s = from_spec(spec, epochs=10, steps_per_epoch=10)
    if replanned:
        s = s.replan(at_step=5, total_steps=200)
    with pytest.raises(ValueError, match=rf"neither 'momentum' nor 'betas'.*turn momentum scheduling off \({keys}\)$"):
        s.to_torch(make(p))  # type: ignore[operator]
    name, *tokens = spec.split()
    merged = dict(t.split("=") for t in [*tokens, *keys.split()])  # the hint's keys replace the spec's
    fixed = from_spec(" ".join([name, *(f"{k}={v}" for k, v in merged.items())]), epochs=10, steps_per_epoch=10)
    assert not fixed.couples_momentum
    opt = make(p)  # type: ignore[operator]
    fixed.to_torch(opt)
    assert opt.param_groups[0]["lr"] == pytest.approx(fixed.lr(0)) and "momentum" not in opt.param_groups[0]
