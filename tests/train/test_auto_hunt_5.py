"""Bug hunt 5 on lr0="auto" (lrkit.train.auto.choose_lr0): an empty validation batch, a shuffled validation loader's
generator, the log before a long range test, torch's own schedulers (OneCycleLR moves momentum, SequentialLR nests
two), dict/namedtuple batches, interrupts, and a strict-JSON record."""

from __future__ import annotations

import copy
import json
import math
import random
import warnings
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _helpers import assert_same
from lrkit.train.auto import AutoLR, _val_loss, choose_lr0, plan_budget

# the guard's step-down machinery and its trials, as it was before the sixth fresh set's test made
# STEP_DOWN_MARGIN = inf (and DIP_AND_PASSES) the default; the defaults have their own tests (test_auto_guard_s7.py)
pytestmark = pytest.mark.usefixtures("step_down_guard")


def _cosine(o: torch.optim.Optimizer, n: int) -> Any:
    return torch.optim.lr_scheduler.CosineAnnealingLR(o, n)


def _data() -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 6, generator=g)
    y = (x @ torch.randn(6, 1, generator=g)).squeeze(1).gt(0).long()
    train = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 256, 16)]
    return train, [(x[256:], y[256:])]


def _model(bn: bool = False) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), *([nn.BatchNorm1d(16)] if bn else []), nn.ReLU(), nn.Linear(16, 2))


def _call(model: nn.Module, opt: torch.optim.Optimizer, train: Any, val: Any, **kw: Any) -> AutoLR:
    args: dict[str, Any] = {"total_steps": 1000, "make_scheduler": _cosine, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return choose_lr0(model, opt, train, val, **args)


def _everything(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """What the README promises comes back bit for bit: values, grads (and their objects), buffers, modes, optimizer
    state and settings (a tensor lr's object too), the optimizer's own attributes and every RNG."""
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "grad_objects": [id(p.grad) for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
        "modes": [m.training for m in model.modules()],
        "optimizer": copy.deepcopy(opt.state_dict()),
        "lr_objects": [id(g["lr"]) for g in opt.param_groups],
        "attrs": sorted(vars(opt)),
        "rng": (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()),
    }


def _trained_a_little(model: nn.Module, opt: torch.optim.Optimizer, train: list[Any]) -> None:
    """Two real steps and a pending gradient, so there is momentum/Adam state and a .grad to restore."""
    for x, y in train[:2]:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    nn.functional.cross_entropy(model(train[2][0]), train[2][1]).backward()


# ------------------------------------------------------------------------------------------------ the bugs
def test_an_empty_validation_batch_is_skipped_not_scored_as_divergence() -> None:
    """A validation list ending in an empty batch (0 samples) scored every trial NaN -> inf -> 'diverged', and
    lr0='auto' stepped down three times to an LR 8x below the suggestion. An empty batch holds no samples: it must
    not change any score."""
    train, val = _data()
    empty = (val[0][0][:0], val[0][1][:0])
    model = _model()
    clean = _call(model, torch.optim.SGD(model.parameters(), lr=0.1), train, val)
    model = _model()
    with_empty = _call(model, torch.optim.SGD(model.parameters(), lr=0.1), train, [*val, empty])
    assert len(clean.trials) >= 2 and all(math.isfinite(t.val_loss) for t in clean.trials)
    assert all(math.isfinite(t.val_loss) for t in with_empty.trials), with_empty.trials
    assert [t.lr for t in with_empty.trials] == [t.lr for t in clean.trials]
    assert with_empty.lr == pytest.approx(clean.lr, rel=1e-12)


def test_an_all_empty_validation_loader_is_named() -> None:
    model = _model()
    empty = [(torch.zeros(0, 6), torch.zeros(0, dtype=torch.long))]
    with pytest.raises(ValueError, match=r"val_loader yielded no batches \(or only empty ones\)"):
        _val_loss(model, empty, None, None, torch.device("cpu"))


def test_a_shuffled_validation_loaders_generator_is_restored() -> None:
    """Scoring the trials iterates the validation loader; one that shuffles with its own generator had it advanced
    by every trial and never put back (the train loader's was): the next validation pass of the user's run saw
    another order than without lr0='auto'."""
    train, val = _data()
    gen = torch.Generator().manual_seed(5)
    val_loader = DataLoader(TensorDataset(*val[0]), batch_size=16, shuffle=True, generator=gen)
    before = gen.get_state()
    model = _model()
    auto = _call(model, torch.optim.SGD(model.parameters(), lr=0.1), train, val_loader)
    assert len(auto.trials) >= 2  # the validation loader was iterated (start loss + every trial)
    assert torch.equal(gen.get_state(), before)


def test_the_log_says_how_long_the_range_test_is_before_it_runs() -> None:
    """A huge total_steps with a tiny loader makes a range test of a quarter of the run, many passes over the
    loader: the log said nothing until it had finished. Now the first line, written before the first step, gives its
    length, its LR range and how many passes over train_loader that is."""
    train, val = _data()  # 16 batches
    total = 10**7
    budget = 1e-5  # 100 extra steps: a range test of 100 steps (the quarter of the run is capped by the budget)
    lines: list[str] = []
    lines_before_first_step: list[int] = []

    def step_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        if not lines_before_first_step:
            lines_before_first_step.append(len(lines))
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    model = _model()
    plan = plan_budget(total, budget, 3)
    _call(model, torch.optim.SGD(model.parameters(), lr=0.1), train, val, total_steps=total, budget=budget,
          step_fn=step_fn, log=lines.append)
    assert lines_before_first_step == [1], lines
    first = lines[0]
    assert f"range test of {plan.finder_steps} steps" in first, first
    assert "1e-06..10" in first and f"{plan.finder_steps / len(train):.3g} passes over train_loader" in first, first


def test_num_candidates_one_says_why_two_are_needed() -> None:
    train, val = _data()
    model = _model()
    with pytest.raises(ValueError, match=r"num_candidates=1 must be an integer >= 2 \(the confirmation compares"):
        _call(model, torch.optim.SGD(model.parameters(), lr=0.1), train, val, num_candidates=1)


# ------------------------------------------------------------------------------------------------ checks that pass
def _one_cycle(o: torch.optim.Optimizer, n: int) -> Any:
    return torch.optim.lr_scheduler.OneCycleLR(o, max_lr=[g["lr"] for g in o.param_groups], total_steps=n)


def _sequential(o: torch.optim.Optimizer, n: int) -> Any:
    w = max(1, n // 10)
    return torch.optim.lr_scheduler.SequentialLR(
        o, [torch.optim.lr_scheduler.LinearLR(o, 0.01, 1.0, w), torch.optim.lr_scheduler.CosineAnnealingLR(o, n - w)],
        [w],
    )


@pytest.mark.parametrize(
    ("make_optimizer", "make_scheduler", "bn"),
    [
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), _one_cycle, False),  # cycles momentum too
        (lambda p: torch.optim.Adam(p, lr=0.1), _one_cycle, True),  # cycles betas; BatchNorm statistics
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), _sequential, True),  # two nested schedulers
        (lambda p: torch.optim.Adam(p, lr=torch.tensor(0.01)), _sequential, False),  # a tensor lr
    ],
)
def test_torch_schedulers_run_the_trials_and_everything_comes_back(
    make_optimizer: Callable[[Any], torch.optim.Optimizer], make_scheduler: Any, bn: bool
) -> None:
    train, val = _data()
    model = _model(bn)
    opt = make_optimizer(model.parameters())
    _trained_a_little(model, opt, train)
    model[1].eval() if bn else None  # a module in another mode than its parent
    before = _everything(model, opt)
    auto = _call(model, opt, train, val, make_scheduler=make_scheduler)
    assert len(auto.trials) >= 2 and all(math.isfinite(t.val_loss) for t in auto.trials)
    assert "step" not in vars(opt)
    assert_same(_everything(model, opt), before)


def test_dict_and_namedtuple_batches_choose_as_tuples_do() -> None:
    train, val = _data()
    Batch = namedtuple("Batch", "x y")
    chosen = []
    for wrap in (tuple, lambda b: {"input": b[0], "target": b[1]}, lambda b: Batch(*b)):
        model = _model()
        auto = _call(model, torch.optim.SGD(model.parameters(), lr=0.1), [wrap(b) for b in train],
                     [wrap(b) for b in val])
        chosen.append((auto.lr, [t.val_loss for t in auto.trials]))
    assert len(chosen[0][1]) >= 2
    assert chosen[1] == chosen[0] and chosen[2] == chosen[0]


def test_a_keyboard_interrupt_mid_trial_restores_everything() -> None:
    train, val = _data()
    model = _model(bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _trained_a_little(model, opt, train)
    before = _everything(model, opt)
    schedulers: list[int] = []
    calls = [0]

    def make_scheduler(o: torch.optim.Optimizer, n: int) -> Any:
        schedulers.append(n)
        return _cosine(o, n)

    def step_fn(m: nn.Module, batch: Any) -> torch.Tensor:
        if m.training and len(schedulers) == 2:
            calls[0] += 1
            if calls[0] == 3:
                raise KeyboardInterrupt
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    with pytest.raises(KeyboardInterrupt):
        _call(model, opt, train, val, step_fn=step_fn, make_scheduler=make_scheduler)
    assert len(schedulers) == 2 and "step" not in vars(opt)
    assert_same(_everything(model, opt), before)


def test_the_record_is_strict_json_when_a_trial_diverged() -> None:
    """A diverged trial's inf becomes null: the record loads with a strict JSON parser."""
    train, val = _data()
    model = _model()
    # the range test's suggestion, then trials at it: a schedule that holds 1e4x the peak diverges every trial
    auto = _call(model, torch.optim.SGD(model.parameters(), lr=0.1), train, val,
                 make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1e4))
    assert any(not math.isfinite(t.val_loss) for t in auto.trials)
    record = json.loads(json.dumps(auto.to_dict(), allow_nan=False))
    assert any(t["val_loss"] is None for t in record["trials"])
    assert math.isfinite(record["lr"]) and record["lr"] > 0
