"""Hunt s10f: ``lr0="auto"`` (``choose_lr0``) as a demanding user meets it.

Known answers: a schedule-free optimizer's own refusal to step in eval mode (a fresh one *is* in eval mode), the
first batch's loss recomputed by hand (no longer the reference), the log (no range test line when an empty
validation loader is refused up front).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import lrkit.train.auto as auto_mod
from lrkit.train.auto import AutoLR, choose_lr0

torch.set_num_threads(1)


def _cosine(o: torch.optim.Optimizer, n: int) -> Any:
    return torch.optim.lr_scheduler.CosineAnnealingLR(o, n)


def _regression(n: int = 192, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = x @ torch.randn(6, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]


class _ModesSGD(torch.optim.Optimizer):
    """A minimal schedule-free-style optimizer: train()/eval() modes in a ``train_mode`` group key, a step that
    refuses to run in eval mode (as ``schedulefree``'s do), and eval mode moving the weights to an average ``x``
    (here: the point ``z`` kept in the state, so the two modes' weights differ once it has stepped). Built in eval
    mode, as ``schedulefree`` builds its optimizers."""

    def __init__(self, params: Any, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr, "train_mode": False})
        self.eval_calls: list[int] = []  # a list: lrkit's snapshot puts an optimizer's scalar attributes back

    @torch.no_grad()
    def train(self) -> None:
        for group in self.param_groups:
            if not group["train_mode"]:
                for p in group["params"]:
                    if "y" in self.state[p]:
                        p.copy_(self.state[p]["y"])
                group["train_mode"] = True

    @torch.no_grad()
    def eval(self) -> None:
        self.eval_calls.append(1)
        for group in self.param_groups:
            if group["train_mode"]:
                for p in group["params"]:
                    st = self.state[p]
                    st["y"] = p.detach().clone()
                    p.mul_(0.5)  # the "average": a different point from the one gradients are taken at
                group["train_mode"] = False

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if not self.param_groups[0]["train_mode"]:
            raise Exception("Optimizer was not in train mode when step is called.")  # schedulefree's words
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-float(group["lr"]))
        return None


def test_a_fresh_schedule_free_optimizer_is_stepped_in_train_mode_and_restored() -> None:
    """A schedule-free optimizer is built in eval mode; the range test puts it in train mode (find_lr) but the trials
    stepped it in whatever mode the caller left it in, so a hand call with a fresh one failed after the whole range
    test with the optimizer's bare ``Exception``. The trials now step in train mode, score on the eval-mode weights
    (as lrkit.train does), and the caller's mode and weights come back."""
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    opt = _ModesSGD(model.parameters(), lr=0.01)
    assert opt.param_groups[0]["train_mode"] is False
    before = [p.detach().clone() for p in model.parameters()]
    data = _regression()
    a = choose_lr0(model, opt, data, data[:4], total_steps=400, make_scheduler=_cosine,
                   loss_fn=torch.nn.functional.mse_loss)
    assert a.trials and all(t.steps > 0 for t in a.trials)
    assert len(opt.eval_calls) >= len(a.trials)  # each trial is scored on the eval-mode weights
    assert opt.param_groups[0]["train_mode"] is False
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_schedulefree_adamw_fresh_by_hand() -> None:
    schedulefree = pytest.importorskip("schedulefree")
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    data = _regression()
    a = choose_lr0(model, opt, data, data[:4], total_steps=400, make_scheduler=_cosine,
                   loss_fn=torch.nn.functional.mse_loss)
    assert a.trials and math.isfinite(a.trials[0].val_loss)
    assert opt.param_groups[0]["train_mode"] is False and opt.param_groups[0]["lr"] == 1e-3
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert not opt.state or all(not s for s in opt.state.values())


@pytest.mark.filterwarnings("ignore:the range test stopped")  # the easy first batch trips find_lr too (reported)
def test_training_loss_reference_is_the_scored_batches_at_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``val_loader=None`` a trial is scored on the mean training loss of its last fifth of steps, but whether
    it learned was judged against the *first batch's* loss alone: a first batch that happens to be easy made a
    suggestion that learns look as if it did not, and the guard stepped up 4x, 16x, ... The reference was then the
    first trial's mean over its first fifth, which a short trial (2 batches, the easy one among them) still let the
    easy batch set. It is now the starting loss over several batches: the median of the range test's first losses
    (session 12)."""
    torch.manual_seed(0)
    data = _regression(n=320)
    x0, _ = data[0]
    model = torch.nn.Linear(6, 1)
    with torch.no_grad():
        easy = model(x0) + 1.5 * torch.randn(x0.shape[0], 1, generator=torch.Generator().manual_seed(1))
    data[0] = (x0, easy)  # an easy first batch: a quarter or so of the others' loss at the start
    s = 0.02
    monkeypatch.setattr(auto_mod, "_suggestion", lambda finder: s)
    lines: list[str] = []
    a = choose_lr0(model, torch.optim.SGD(model.parameters(), lr=0.1), data, None, total_steps=400,
                   make_scheduler=_cosine, loss_fn=torch.nn.functional.mse_loss, log=lines.append)
    with torch.no_grad():
        first = float(torch.nn.functional.mse_loss(model(data[0][0]), data[0][1]))
    assert [t.lr for t in a.trials] == [s], a.reason  # the suggestion learned: kept, no step up
    assert a.lr == s
    assert f"vs {first:.4g}" not in a.reason, (first, a.reason)
    ref = float(a.reason.split(" vs ")[1].split(" at the start")[0])  # the range test's first losses' median
    assert ref > 2 * first and a.trials[0].val_loss < ref


def test_an_empty_sized_val_loader_is_refused_before_the_range_test() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    lines: list[str] = []
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 6), torch.zeros(0, 1)))
    for val in ([], empty):
        with pytest.raises(ValueError, match=r"val_loader yielded no batches.*val_loader=None"):
            choose_lr0(model, opt, _regression(), val, total_steps=400, make_scheduler=_cosine,
                       loss_fn=torch.nn.functional.mse_loss, log=lines.append)
    assert not any("range test" in line for line in lines), lines  # no compute spent


def test_reason_says_the_compression_once() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    data = _regression()
    a = choose_lr0(model, torch.optim.SGD(model.parameters(), lr=0.1), data, data[:4], total_steps=400,
                   make_scheduler=_cosine, loss_fn=torch.nn.functional.mse_loss)
    steps = a.trial_steps
    assert steps > 0
    assert f"compressed to {steps} steps" not in a.reason, a.reason
    assert f"compressed {400 / steps:.0f}x" in a.reason, a.reason
    assert AutoLR.from_dict(a.to_dict()).to_dict() == a.to_dict()
