"""What older torch releases do differently, reproduced on this one (found by ``tools/compat.sh`` on torch 2.4)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from lrkit.finder.range_test import _needs_closure
from lrkit.schedules import from_spec


def _unwrapped_step_wrapper(optimizer: torch.optim.Optimizer) -> None:
    """Wrap ``optimizer.step`` on the instance as torch < 2.6's schedulers did (a ``(*args, **kwargs)`` wrapper without
    ``functools.wraps``), hiding the class's ``step(closure)`` signature."""
    original = optimizer.step

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    optimizer.step = wrapper  # type: ignore[method-assign]


def _lbfgs_task() -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x = torch.randn(64, 4)
    y = x @ torch.randn(4, 1)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    return model, torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=2), batches


def test_a_closure_optimizer_is_recognised_behind_an_instance_wrapper() -> None:
    # Bug (torch 2.4): a torch scheduler built on LBFGS wraps opt.step in a (*args, **kwargs) wrapper; the closure
    # check read only that signature, so find_lr and lr0="auto" trials called step() without a closure:
    # "TypeError: LBFGS.step() missing 1 required positional argument: 'closure'"
    model, opt, batches = _lbfgs_task()
    _unwrapped_step_wrapper(opt)
    assert _needs_closure(opt)
    result = lrkit.find_lr(model, opt, batches, num_steps=12, end_lr=1.0)
    assert result.num_steps_run > 0


def test_a_plain_optimizer_behind_a_wrapper_still_takes_no_closure() -> None:
    opt = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    _unwrapped_step_wrapper(opt)
    assert not _needs_closure(opt)
    wrapped = torch.optim.LBFGS(nn.Linear(2, 1).parameters())
    wrapped.step = functools.partial(wrapped.step, closure=lambda: torch.tensor(0.0))  # type: ignore[method-assign]
    assert _needs_closure(wrapped)  # the class says so, whatever the instance shows


def test_step_zero_restarts_an_lrkit_scheduler_as_torch_sequential_lr_asks() -> None:
    # Bug (torch <= 2.6): SequentialLR restarts the scheduler it hands over to with step(0); lrkit's adapter refused
    # any argument, so an lrkit schedule after a torch warmup crashed at the milestone
    def build() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        opt = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
        return opt, from_spec("cosine lr0=0.1 lrf=0.01", total_steps=20).to_torch(opt)

    opt, sched = build()
    start = opt.param_groups[0]["lr"]
    for _ in range(5):
        opt.step(); sched.step()
    assert opt.param_groups[0]["lr"] < start
    sched.step(0)
    assert opt.param_groups[0]["lr"] == start and sched.last_epoch == 0
    ref_opt, ref = build()
    for _ in range(7):  # from the restart it follows the schedule from its first step again
        opt.step(); sched.step(); ref_opt.step(); ref.step()
        assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
    for bad in (3, 0.0, True):
        with pytest.raises(TypeError, match=r"take no argument; use seek\(step\)"):
            sched.step(bad)


def test_a_tensor_lr_replaced_in_between_comes_back_as_the_same_tensor() -> None:
    # Bug (torch <= 2.9): SequentialLR puts a new tensor in a group's "lr" at its milestone; lr0="auto"'s trials ran
    # one, and afterwards the group held that new tensor, not the user's (which a compiled or fused step holds)
    from lrkit._state import Snapshot

    model = nn.Linear(3, 1)
    lr = torch.tensor(0.01)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    snap = Snapshot.capture(model, opt)
    opt.param_groups[0]["lr"] = torch.tensor(0.5)  # what the old SequentialLR does
    snap.restore()
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.01)
    lr.fill_(0.2)  # a value changed in place, the object kept
    snap.restore()
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.01)


def test_choose_lr0_gives_back_a_tensor_lr_a_scheduler_replaced() -> None:
    # the same promise through choose_lr0, whose trials run the caller's scheduler
    from lrkit.train.auto import choose_lr0

    class Replacing(torch.optim.lr_scheduler.LambdaLR):
        """A LambdaLR that writes a fresh tensor into each group, as torch <= 2.9's SequentialLR does."""

        def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
            super().step()
            for g in self.optimizer.param_groups:
                g["lr"] = torch.tensor(float(g["lr"]))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    x = torch.randn(256, 4)
    y = x @ torch.randn(4, 1)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 256, 16)]
    lr = torch.tensor(0.01)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    choose_lr0(model, opt, batches, batches[:4], total_steps=200, loss_fn=nn.functional.mse_loss,
               make_scheduler=lambda o, n: Replacing(o, lambda t: 1.0))
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.01)


def test_train_runs_a_torch_jit_scripted_model(tmp_path: Any) -> None:
    # Bug: a ScriptModule's _modules (torch.jit's OrderedModuleDict) has no .get(): lrkit.train and param_groups failed
    # before anything ran with "AttributeError: 'OrderedModuleDict' object has no attribute 'get'"
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    x, y = torch.randn(160, 8), torch.randint(0, 3, (160,))
    tr = DataLoader(TensorDataset(x[:128], y[:128]), batch_size=16)
    va = DataLoader(TensorDataset(x[128:], y[128:]), batch_size=16)
    model = torch.jit.script(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)))
    r = lrkit.train(model=model, data=(tr, va), epochs=2, lr0=0.01, project=str(tmp_path), verbose=False, plots=False)
    assert len(r.history) == 2
    groups = lrkit.param_groups(model, 0.01, backbone_lr_scale=0.1, head="2")
    assert sorted({g["lr"] for g in groups}) == pytest.approx([0.001, 0.01])  # backbone and head (decay or not)
