"""Session 27g: lr0="auto"'s numbers against an independent count (optimizer steps hooked, forward passes counted),
and its log lines against its record."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit.train import auto as A


def _setup() -> tuple[torch.nn.Module, DataLoader, DataLoader]:
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(512, 1)
    train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(1))
    val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=128)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    return model, train, val


def _cosine(o: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(o, steps)


def test_extra_steps_are_the_forward_backward_passes_counted_and_within_budget() -> None:
    """extra_steps = range-test steps + trial steps = training forward passes / accumulate (a diverged step is
    counted, not stepped), extra_fraction = extra_steps / total_steps <= budget."""
    model, train, val = _setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = {"fwd": 0, "step": 0}
    model.register_forward_hook(lambda m, i, o: seen.__setitem__("fwd", seen["fwd"] + int(m.training)))
    opt.register_step_post_hook(lambda *a: seen.__setitem__("step", seen["step"] + 1))
    total, budget = 600, 0.3
    auto = lrkit.choose_lr0(model, opt, train, val, total_steps=total, make_scheduler=_cosine, budget=budget,
                            accumulate=2)
    assert auto.extra_steps == seen["fwd"] // 2 == auto.finder.num_steps_run + sum(t.steps for t in auto.trials)
    assert seen["step"] <= auto.extra_steps
    assert math.isclose(auto.extra_fraction, auto.extra_steps / total)
    assert auto.extra_steps <= math.floor(budget * total)
    plan = A.plan_budget(total, budget, 3, finder_steps_run=auto.finder.num_steps_run)
    assert auto.trial_steps == plan.trial_steps and all(t.steps <= auto.trial_steps for t in auto.trials)


def test_range_test_plan_line_says_one_pass_not_one_passes() -> None:
    """A range test of exactly one pass over the loader: '1 pass over train_loader', not '1 passes'."""
    _, train, _ = _setup()  # 12 batches
    line = A._range_test_plan({"num_steps": 12, "start_lr": 1e-6, "end_lr": 10.0}, 48, train)
    assert line is not None and "1 pass over train_loader (12 batches)" in line, line
    line = A._range_test_plan({"num_steps": 30, "start_lr": 1e-6, "end_lr": 10.0}, 120, train)
    assert line is not None and "2.5 passes over train_loader" in line, line


def test_scaling_numbers_match_the_readme_formulas() -> None:
    """scale_lr: lr * (to/from) ** p (1 linear, 1/2 sqrt, by family for auto); nominal_batch: Ultralytics'
    accumulate = max(round(nbs / batch), 1), weight_decay * batch * accumulate / nbs (round half to even)."""
    for lr, a, b in [(0.1, 256, 1024), (1e-3, 7, 3), (0.5, 3, 1000)]:
        assert math.isclose(lrkit.scale_lr(lr, a, b, rule="linear"), lr * b / a, rel_tol=1e-12)
        assert math.isclose(lrkit.scale_lr(lr, a, b, rule="sqrt"), lr * (b / a) ** 0.5, rel_tol=1e-12)
        assert math.isclose(lrkit.scale_lr(lr, a, b, optimizer="AdamW"), lr * (b / a) ** 0.5, rel_tol=1e-12)
        assert math.isclose(lrkit.scale_lr(lr, a, b, optimizer=torch.optim.SGD), lr * b / a, rel_tol=1e-12)
    for batch in (1, 16, 25, 26, 40, 128, 300):  # 64/25.6=2.5 -> 2, 64/128=0.5 -> 0 -> 1
        nb = lrkit.scaling.nominal_batch(batch, nbs=64, weight_decay=5e-4)
        acc = max(round(64 / batch), 1)
        assert nb.accumulate == acc
        assert math.isclose(nb.weight_decay, 5e-4 * batch * acc / 64, rel_tol=1e-12)


def test_layer_decay_lrs_and_decays_per_parameter() -> None:
    """layer i of 0..L at lr * d ** (L - i), counting frozen layers; model-level parameters in layer 0; biases and
    norm parameters at decay 0."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cls_token = torch.nn.Parameter(torch.zeros(1, 4))
            self.embed = torch.nn.Linear(4, 4)
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
            self.norm = torch.nn.LayerNorm(4)
            self.head = torch.nn.Linear(4, 2)

    model = Net()
    layers = lrkit.scaling.layer_names(model)
    assert layers == ["embed", "blocks.0", "blocks.1", "norm", "head"]
    groups = lrkit.param_groups(model, 1.0, weight_decay=0.05, layer_decay=0.5, freeze=1)
    names = {id(p): n for n, p in model.named_parameters()}
    got = {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert "embed.weight" not in got and "cls_token" not in got  # layer 0 frozen
    for n, (lr, wd) in got.items():
        i = next(k for k, layer in enumerate(layers) if n.startswith(layer + "."))
        assert math.isclose(lr, 0.5 ** (len(layers) - 1 - i)), n
        assert wd == (0.0 if n.endswith("bias") or n.startswith("norm.") else 0.05), n
