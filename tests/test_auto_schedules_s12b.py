"""Session 12b: lr0="auto"'s divergence reference in its trials (an easy first batch is not a blow-up's baseline), and
schedules whose lengths in epochs/fractions fill the run exactly."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from lrkit.schedules import from_spec
from lrkit.schedules.library import WSD
from lrkit.train.auto import _run_trial, choose_lr0


def _const(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0)


# ------------------------------------------------------------------------------------------ lr0="auto" trials
def _easy_first_batch() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A regression whose first batch has tiny targets: the loss at the starting (zero) weights is ~0.02 on it and
    ~0.5 on every other batch."""
    g = torch.Generator().manual_seed(0)
    w = torch.tensor([[0.5], [-0.4], [0.3], [0.2]])  # |w|² ≈ 0.54: the MSE of the zero model on x ~ N(0, 1)
    batches = []
    for i in range(12):
        x = torch.randn(64, 4, generator=g)
        y = x @ w * (0.2 if i == 0 else 1.0)
        batches.append((x, y))
    return batches


def test_an_easy_first_batch_does_not_make_a_healthy_trial_diverge() -> None:
    """The first trial loss (0.02, an easy batch) was the divergence reference: the second step's ordinary 0.5 is
    25x that, so the suggestion's healthy trial "diverged" at step 2 and the guard stepped the LR down."""
    batches = _easy_first_batch()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        first = float(nn.functional.mse_loss(model(batches[0][0]), batches[0][1]))
        second = float(nn.functional.mse_loss(model(batches[1][0]), batches[1][1]))
    assert second > 10 * first  # the premise: the second batch alone is a "10x blow-up" against the first
    # the range test has a divergence stop of its own (against its best smoothed loss); it is not the one under test
    auto = choose_lr0(model, opt, batches, batches[1:4], total_steps=600, make_scheduler=_const,
                      loss_fn=nn.functional.mse_loss, finder_kwargs={"diverge_factor": 1e6})
    assert auto.trials, auto.reason
    assert all(math.isfinite(t.val_loss) and t.steps == auto.trial_steps for t in auto.trials), auto.trials
    assert "diverged" not in auto.reason, auto.reason
    assert auto.lr == auto.to_dict()["suggestion"]


def _scripted(values: list[float]) -> tuple[nn.Module, torch.optim.Optimizer, Any, Any]:
    w = nn.Parameter(torch.zeros(1))
    script = iter(values)

    def step_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        return (w * 0).sum() + next(script)

    batches = iter([(torch.zeros(1, 1), torch.zeros(1, 1))] * 100)
    return nn.Module(), torch.optim.SGD([w], lr=0.1), batches, step_fn


def _trial(values: list[float], steps: int, reference: float | None) -> tuple[int, bool]:
    model, opt, batches, step_fn = _scripted(values)
    n, diverged, _ = _run_trial(model, opt, [1.0], 0.1, steps, batches, _const, None, step_fn, 1, None,
                                torch.device("cpu"), reference=reference)
    return n, diverged


def test_a_trial_with_a_typical_start_still_diverges_at_once() -> None:
    # the starting loss is typical (0.5 against a reference of 0.5): a 12x jump is a blow-up at step 2, as before
    assert _trial([0.5, 6.0], 10, reference=0.5) == (2, True)
    # the easy first batch: 0.5 is ordinary, 6.0 (12x the reference) is still a blow-up, one step later
    assert _trial([0.02, 0.5, 6.0], 10, reference=0.5) == (3, True)
    assert _trial([0.02] + [0.5] * 9, 10, reference=0.5) == (10, False)
    # a non-finite loss is divergence whatever the reference
    assert _trial([0.02, math.nan], 10, reference=0.5) == (2, True)


def test_the_reference_never_makes_the_check_stricter_than_the_first_loss() -> None:
    # a reference below the trial's first loss (a range test whose first steps already trained) changes nothing:
    # 4.0 is below 10x the first loss 1.0, so not a blow-up, though it is 40x the reference
    assert _trial([1.0, 4.0, 4.0], 3, reference=0.1) == (3, False)
    # negative losses: risen by 9x |reference| against both the first loss and the reference
    assert _trial([-1.0, 0.5, 0.25], 3, reference=-0.5) == (3, False)
    assert _trial([-1.0, 9.0], 10, reference=-1.0) == (2, True)
    # no reference (direct callers): the first loss alone, as before
    assert _trial([0.5, 6.0], 10, reference=None) == (2, True)


# ------------------------------------------------------------------------------------------ wsd that fills the run
def test_wsd_lengths_in_epochs_that_fill_the_run_exactly_are_accepted() -> None:
    """3.5 + 17.5 steps fill the 21-step run, but each rounded on its own (4 + 18 = 22) was refused by one step."""
    for sched in (WSD(lr0=1.0, warmup_epochs=0.5, decay_epochs=2.5, epochs=3, steps_per_epoch=7),
                  from_spec("wsd lr0=1 warmup_epochs=0.5 decay_epochs=2.5", epochs=3, steps_per_epoch=7),
                  WSD(lr0=1.0, warmup_epochs=0.5, decay_frac=5 / 6, total_steps=21, epochs=3)):
        assert sched.total_steps == 21
        assert [(p.name, p.start, p.end) for p in sched.phases] == [("warmup", 0, 4), ("decay", 4, 21)]
        assert sched(4) == 1.0 and sched(21) == 0.0 and 0 < sched(20) < 0.05  # the decay ends with the run


def test_wsd_a_real_overfill_is_still_refused() -> None:
    with pytest.raises(ValueError, match=r"warmup \(4 steps\) \+ decay \(18 steps\) = 22 steps do not fit in the "
                                         r"21-step run.*decay_epochs <= 2\.42857 or warmup_epochs <= 0\.428571"):
        WSD(lr0=1.0, warmup_epochs=0.6, decay_epochs=2.5, epochs=3, steps_per_epoch=7)  # 4.2 + 17.5 = 21.7 steps
    with pytest.raises(ValueError, match="do not fit in the 20-step run"):
        WSD(lr0=1.0, warmup_steps=4, decay_frac=0.85, total_steps=20)  # 4 + 17 steps


# ------------------------------------------------------------------------------------------ periods in epochs
def test_step_a_fractional_step_size_does_not_drop_at_the_runs_last_step() -> None:
    """step_size=1.5 epochs of 7 steps is 10.5 steps: rounded to 10 it dropped at 10 and 20, so the last step of the
    3-epoch (21-step) run took a third level; each drop is now its epoch boundary rounded (10, 21, 32: no drift)."""
    s = from_spec("step lr0=1 step_size=1.5 gamma=0.1", epochs=3, steps_per_epoch=7)
    assert [round(s.lr(t), 12) for t in (9, 10, 20, 21, 31, 32)] == [1.0, 0.1, 0.1, 0.01, 0.01, 0.001]
    assert [(p.name, p.start, p.end) for p in s.phases] == [("level 0", 0, 10), ("level 1", 10, 21)]
    # a whole number of steps is kept as it was: torch's StepLR
    whole = from_spec("step lr0=1 step_size=30 gamma=0.1", epochs=90, steps_per_epoch=12.5)
    assert whole.step_size == 375 and isinstance(whole.step_size, int) and round(whole.lr(749), 12) == 0.1


def test_cosine_restarts_a_fractional_cycle_does_not_restart_at_the_runs_last_step() -> None:
    """T_0=1.5 epochs of 7 steps: two cycles fill the 21-step run; rounded to 10 steps the second restart came at step
    20, the run's last, at the full LR."""
    s = from_spec("cosine_restarts lr0=1 T_0=1.5", epochs=3, steps_per_epoch=7)
    assert s(0) == 1.0 and s(10) == 1.0 and s(20) < 0.03 and s(21) == 1.0
    assert [(p.name, p.start, p.end) for p in s.phases] == [("cycle 0", 0, 10), ("cycle 1", 10, 21)]
    # growing cycles: 3.5 + 7 steps fill the 1.5-epoch (10-step) run; rounded to 4 + 8 the run ended mid-cycle
    g = from_spec("cosine_restarts lr0=1 T_0=0.5 T_mult=2", epochs=1.5, steps_per_epoch=7)
    assert g.total_steps == 10 and g(4) == 1.0 and g(9) < 0.1 and g(10) == 1.0  # was 0.31 at 9 of [4, 12)
    assert [(p.name, p.start, p.end) for p in g.phases] == [("cycle 0", 0, 4), ("cycle 1", 4, 10)]


def test_linear_and_cosine_lengths_in_epochs_that_are_the_run_end_with_it() -> None:
    """T_max=1.5 epochs of 7 steps is 10.5 steps, but the 1.5-epoch run is 10: the LR ended above its floor."""
    for spec in ("linear lr0=1 lrf=0.1 total_iters=1.5 unit=epoch", "cosine lr0=1 lrf=0.1 T_max=1.5 unit=epoch"):
        s = from_spec(spec, epochs=1.5, steps_per_epoch=7)
        assert s.total_steps == 10 and s.lr(10) == 0.1 and s.lr(9) > 0.1, spec
    # a length that is not the run's is kept as given
    assert from_spec("cosine lr0=1 lrf=0.1 T_max=0.5 unit=epoch", epochs=1.5, steps_per_epoch=7).T_max == 3.5


def test_cyclic_and_onecycle_in_epochs_end_with_the_run() -> None:
    # two whole cycles of 3.5 + 3.5 steps fill the 14-step run: it ends at base_lr, as it started
    c = from_spec("cyclic base_lr=0.001 max_lr=0.1 step_size_up=0.5 unit=epoch", epochs=2, steps_per_epoch=7)
    assert c.total_steps == 14 and c.lr(0) == c.lr(14) == 0.001 and c.lr(7) == pytest.approx(0.001)
    # 2.5 epochs of 7 steps = 17.5, rounded to 18: the last step (17) is the final LR
    o = from_spec("onecycle max_lr=0.1", epochs=2.5, steps_per_epoch=7)
    assert o.total_steps == 18 and o.lr(17) == pytest.approx(0.1 / 25 / 1e4) and o.lr(16) > o.lr(17)
