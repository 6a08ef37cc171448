"""Session 37 (helper i): the torch adapter owns a stateful schedule's history; a resumed tensor LR keeps its
own ``initial_lr``."""

import warnings

import pytest
import torch

from lrkit.schedules import from_spec


def _opt(lr=0.1):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def test_a_second_scheduler_from_one_plateau_object_warns_that_they_share_its_history():
    # before: silently shared (a's observe() cut b's LR). The schedule object is the scheduler's state by design
    # (schedule.observe(metric, step=...) feeds the scheduler, as the README says), so the second one warns.
    schedule = from_spec("plateau lr0=0.1 patience=0 factor=0.5")
    opt_a, opt_b = _opt(), _opt()
    a = schedule.to_torch(opt_a)
    with pytest.warns(UserWarning, match=r"this plateau schedule object already drives another scheduler"):
        schedule.to_torch(opt_b)
    assert a.observe(1.0) is False and a.observe(1.0) is True
    assert opt_a.param_groups[0]["lr"] == pytest.approx(0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one scheduler per schedule object: no warning
        c = from_spec("plateau lr0=0.1 patience=0 factor=0.5").to_torch(_opt())
        assert c.observe(1.0) is False


def test_schedule_observe_on_the_object_still_feeds_its_scheduler():
    # the documented alternative to scheduler.observe (README, "Reduce-on-plateau is the one stateful schedule")
    schedule = from_spec("plateau lr0=0.1 patience=0 factor=0.5")
    opt = _opt()
    sched = schedule.to_torch(opt)
    schedule.observe(1.0, step=0)
    schedule.observe(1.0, step=0)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_peakless_plateau_groups_follow_the_adapters_own_reductions():
    # groups bound to their own LRs (with_peak copies) share the adapter's copy of the state, so a reduction
    # reaches every group, and a state saved from it loads into a scheduler built from the same spec
    opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1},
                           {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.01}], lr=0.1)
    spec = "plateau patience=0 factor=0.5 warmup_steps=2"
    sched = from_spec(spec).to_torch(opt)
    for _ in range(3):
        opt.step()
        sched.step()
    sched.observe(1.0)
    assert sched.observe(1.0) is True
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.005])
    state = sched.state_dict()
    opt2 = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1},
                            {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.01}], lr=0.1)
    again = from_spec(spec).to_torch(opt2)
    again.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([0.05, 0.005])


def test_resume_with_last_step_keeps_a_tensor_initial_lr_apart_from_the_lr():
    group = {"params": [torch.zeros(1, requires_grad=True)], "lr": torch.tensor(0.1)}
    opt = torch.optim.Adam([group], lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = from_spec("cosine lr0=0.1", total_steps=10).to_torch(opt, last_step=4)
    g = opt.param_groups[0]
    assert isinstance(g["lr"], torch.Tensor) and isinstance(g["initial_lr"], torch.Tensor)
    assert g["initial_lr"] is not g["lr"]
    before = float(g["initial_lr"])
    opt.step()
    sched.step()
    assert float(g["initial_lr"]) == before  # not filled with every LR the scheduler writes
    assert float(g["lr"]) == pytest.approx(from_spec("cosine lr0=0.1", total_steps=10).lr(6))


def test_a_stateful_schedule_that_cannot_be_copied_is_held_as_it_is():
    # (the helper's first fix deep-copied a stateful schedule, with a fallback for this one; the review kept the
    # documented sharing instead: the scheduler holds the very object, which schedule.observe(...) feeds)
    import threading

    from lrkit.schedules.base import Schedule

    class Locked(Schedule):
        name = "locked"
        stateful = True

        def __init__(self):
            super().__init__(lr0=0.1)
            self.lock = threading.Lock()  # (deepcopy refuses it: nothing may try to copy it)

        def _value(self, t):
            return 1.0

    schedule = Locked()
    opt = _opt()
    sched = schedule.to_torch(opt)
    assert sched.schedule is schedule
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
