"""A demanding user's walkthrough of the lrkit.schedules Python API (s18m): misuse that used to pass silently."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from lrkit.schedules import from_spec


def _sgd() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    model(torch.ones(2, 3)).sum().backward()
    opt.step()


def test_stepping_once_per_epoch_a_schedule_planned_in_optimizer_steps_warns() -> None:
    # torch habit: StepLR stepped per epoch. Here the schedule counts optimizer steps (10 per epoch), so stepping it
    # once per epoch would leave the LR at lr0 for the whole run, silently
    model, opt = _sgd()
    sched = from_spec("step lr0=0.1 step_size=2 gamma=0.1", epochs=6, steps_per_epoch=10).to_torch(opt)
    with pytest.warns(UserWarning, match=r"once per 10 optimizer steps.*steps_per_epoch=10.*interval=epoch"):
        for _ in range(2):
            for _ in range(10):
                _train(model, opt)
            sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # what the warning is about: no decay after 2 epochs


def test_the_per_epoch_warning_is_given_once() -> None:
    model, opt = _sgd()
    sched = from_spec("cosine lr0=0.1", epochs=5, steps_per_epoch=4).to_torch(opt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):
            for _ in range(4):
                _train(model, opt)
            sched.step()
    assert sum("optimizer steps" in str(w.message) for w in caught) == 1


@pytest.mark.parametrize("spec, kw", [
    ("step lr0=0.1 step_size=2 gamma=0.1", {"epochs": 6, "steps_per_epoch": 10}),
    ("onecycle max_lr=0.1", {"total_steps": 30}),
    ("cosine lr0=0.1 warmup_steps=3", {"total_steps": 30}),
])
def test_stepping_after_every_optimizer_step_is_quiet(spec: str, kw: dict) -> None:
    model, opt = _sgd()
    sched = from_spec(spec, **kw).to_torch(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(30):
            _train(model, opt)
            sched.step()


def test_a_schedule_without_epochs_stepped_per_epoch_is_the_users_unit_and_quiet() -> None:
    # CosineAnnealingLR(T_max=epochs) stepped per epoch, ported as total_steps=epochs: consistent, so no warning
    model, opt = _sgd()
    sched = from_spec("cosine lr0=0.1 lrf=0", total_steps=3).to_torch(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            for _ in range(5):
                _train(model, opt)
            sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_resume_seek_and_skipped_optimizer_steps_are_quiet() -> None:
    # optimizer steps taken before the scheduler is built, or across a seek / a load, are not per-epoch stepping;
    # a step the optimizer skipped (GradScaler on inf gradients) is not either
    model, opt = _sgd()
    spec = "cosine lr0=0.1"
    kw = {"epochs": 5, "steps_per_epoch": 4}
    for _ in range(7):
        _train(model, opt)
    sched = from_spec(spec, **kw).to_torch(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train(model, opt)
        sched.step()
        sched.step()  # a skipped optimizer step
        for _ in range(3):
            _train(model, opt)
        sched.seek(5)
        _train(model, opt)
        sched.step()
        buf = io.BytesIO()
        torch.save(sched.state_dict(), buf)
        buf.seek(0)
        for _ in range(3):
            _train(model, opt)
        fresh = from_spec(spec, **kw).to_torch(opt)
        fresh.load_state_dict(torch.load(buf, weights_only=True))
        _train(model, opt)
        fresh.step()


def test_a_sequentiallr_hand_over_to_an_lrkit_schedule_is_quiet() -> None:
    # the lrkit scheduler is not stepped during torch's warmup; the hand-over at the milestone restarts its count
    model, opt = _sgd()
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
    main = from_spec("cosine lrf=0", epochs=4, steps_per_epoch=5).to_torch(opt)
    seq = torch.optim.lr_scheduler.SequentialLR(opt, [warm, main], milestones=[5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(25):
            _train(model, opt)
            seq.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_resuming_with_a_new_run_length_says_how_to_change_it() -> None:
    # a resumed run trained longer (epochs 6 -> 9): the state is refused, and the message says to re-plan after loading
    model, opt = _sgd()
    old = from_spec("cosine lr0=0.1", epochs=6, steps_per_epoch=10).to_torch(opt)
    for _ in range(12):
        _train(model, opt)
        old.step()
    state = old.state_dict()
    longer = from_spec("cosine lr0=0.1", epochs=9, steps_per_epoch=10).to_torch(opt)
    with pytest.raises(ValueError, match=r"total_steps=60.*total_steps=90.*replan\(total_steps=90\)"):
        longer.load_state_dict(state)
    same = from_spec("cosine lr0=0.1", epochs=6, steps_per_epoch=10).to_torch(opt)
    same.load_state_dict(state)
    same.replan(total_steps=90)  # what the message says: the LR at the current step does not move
    assert opt.param_groups[0]["lr"] == pytest.approx(old.get_last_lr()[0], rel=1e-12)
    assert same.total_steps == 90


class _MySGD(torch.optim.SGD):
    """A user's optimizer whose step calls super().step(): torch runs its step hooks once per level."""

    def step(self, closure=None):  # type: ignore[no-untyped-def]
        return super().step(closure)


def test_a_subclassed_optimizer_counts_one_step_per_call() -> None:
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # an SGD instance patches SGD.step's hooks too
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = _MySGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = from_spec("cosine lr0=0.1", epochs=3, steps_per_epoch=4).to_torch(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(12):
            _train(model, opt)
            sched.step()
    with pytest.warns(UserWarning, match="once per 4 optimizer steps"):  # and per epoch it is still caught
        for _ in range(2):
            for _ in range(4):
                _train(model, opt)
            sched.step()



def test_a_snapshot_restore_does_not_move_the_step_count() -> None:
    # lrkit's Snapshot rewinds an optimizer's plain attributes; the scheduler's count of optimizer steps must not move
    # with them, or a restore mid-run (the monitor's rollback, a resumed run) reads as several steps per step()
    from lrkit._state import Snapshot
    from lrkit.schedules.torch import _optimizer_steps

    model, opt = _sgd()
    sched = from_spec("cosine lr0=0.1", epochs=5, steps_per_epoch=4).to_torch(opt)
    _train(model, opt)
    sched.step()
    snap = Snapshot.capture(model, opt)
    for _ in range(3):
        _train(model, opt)
        sched.step()
    before = _optimizer_steps(opt)
    snap.restore()
    assert _optimizer_steps(opt) == before == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            _train(model, opt)
            sched.step()
