"""Session 20a: a practitioner's walk through ``lrkit.Monitor`` in hand-written loops (OneCycleLR, ReduceLROnPlateau,
CosineAnnealingWarmRestarts, SequentialLR, AMP, accumulation, param groups, BatchNorm), and the mistakes such a user
makes: a scheduler stepped twice per optimizer step, ``after_step()`` before ``optimizer.step()``, a model that is not
the one the optimizer trains, the optimizer / loss function / GradScaler passed where the scheduler goes. Each test
below failed before its fix (the rollback-exactness one guards what already worked)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import lrkit

nn = torch.nn


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    return x, x.sum(1, keepdim=True)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))


def _loss(model: nn.Module) -> torch.Tensor:
    x, y = _data()
    return nn.functional.mse_loss(model(x), y)


def _messages(caught: list[warnings.WarningMessage], word: str) -> list[str]:
    return [str(w.message) for w in caught if word in str(w.message)]


# ------------------------------------------------------------------ a scheduler stepped twice per optimizer step
def _sched_loop(steps: int, *, twice: bool = False, per_epoch: int = 0, seek_after_rollback: bool = False,
                spike_at: int = -1) -> list[warnings.WarningMessage]:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = lrkit.schedules.Cosine(total_steps=10 * steps).to_torch(opt) if seek_after_rollback else \
        torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1.0 + 0.01 * s))
    mon = lrkit.Monitor(model, opt, sched)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(steps):
            opt.zero_grad()
            loss = _loss(model)
            loss.backward()
            mon.after_backward(loss * float("nan") if step == spike_at else loss)
            opt.step()
            if not per_epoch:
                sched.step()
                if twice:
                    sched.step()
            mon.after_step()
            if seek_after_rollback and mon.last_action == "rollback":
                sched.seek(step + 1)  # lrkit.train's way: the schedule keeps the run's clock after a rollback
            if per_epoch and step % per_epoch == per_epoch - 1:
                sched.step()
    return caught


def test_scheduler_stepped_twice_per_optimizer_step_warns_once_naming_the_fix() -> None:
    caught = _sched_loop(200, twice=True)
    found = _messages(caught, "last_epoch")
    assert len(found) == 1, [str(w.message) for w in caught]
    text = found[0]
    assert "LambdaLR" in text and "last_epoch" in text and "2" in text
    assert "once per optimizer step" in text


@pytest.mark.parametrize("kind", ["once", "per_epoch", "seek", "fast_forward"])
def test_scheduler_stepped_once_or_per_epoch_or_sought_raises_no_warning(kind: str) -> None:
    if kind == "fast_forward":  # a resume that fast-forwards the scheduler after building the monitor
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        sched = torch.optim.lr_scheduler.StepLR(opt, 50)
        mon = lrkit.Monitor(model, opt, sched)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(30):
                sched.step()
            for _ in range(100):
                opt.zero_grad()
                loss = _loss(model)
                loss.backward()
                mon.after_backward(loss)
                opt.step()
                sched.step()
                mon.after_step()
    else:
        caught = _sched_loop(200, per_epoch=8 if kind == "per_epoch" else 0, seek_after_rollback=kind == "seek",
                             spike_at=80 if kind == "seek" else -1)
    assert not _messages(caught, "last_epoch"), [str(w.message) for w in caught]


def test_lrkit_train_style_seek_after_a_rollback_is_not_taken_for_a_double_step() -> None:
    caught = _sched_loop(200, seek_after_rollback=True, spike_at=150)  # seek jumps the clock by ~150 at once
    assert not _messages(caught, "last_epoch"), [str(w.message) for w in caught]


# ------------------------------------------------------------------ after_step() before optimizer.step()
def test_after_step_before_optimizer_step_warns_about_the_order_not_micro_batches() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = lrkit.Monitor(model, opt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(300):
            opt.zero_grad()
            loss = _loss(model)
            loss.backward()
            mon.after_backward(loss)
            mon.after_step()  # wrong: before the step
            opt.step()
    texts = [str(w.message) for w in caught]
    order = [t for t in texts if "after optimizer.step()" in t]
    assert len(order) == 1, texts
    assert "before" in order[0] and "step" in order[0]
    assert not [t for t in texts if "micro-batch" in t], texts  # not the accumulation advice
    assert caught[texts.index(order[0])].filename == __file__  # points at the loop, not at torch or lrkit


def test_micro_batch_loop_still_gets_the_accumulation_warning_not_the_order_one() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = lrkit.Monitor(model, opt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(150):
            opt.zero_grad()
            for k in range(4):
                loss = _loss(model) / 4
                loss.backward()
                mon.after_backward(loss)
                if k == 3:
                    opt.step()
                mon.after_step()
    texts = [str(w.message) for w in caught]
    assert [t for t in texts if "micro-batch" in t], texts
    assert not [t for t in texts if "after optimizer.step()" in t], texts


def test_correct_loop_with_a_guarded_step_warns_about_nothing() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = lrkit.Monitor(model, opt, sample_every=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(120):
            opt.zero_grad()
            loss = _loss(model)
            loss.backward()
            mon.after_backward(loss)
            if step != 64:  # a loop's own guard leaves one step out (as a GradScaler overflow does)
                opt.step()
            mon.after_step()
    assert not caught, [str(w.message) for w in caught]


# ------------------------------------------------------------------ a model the optimizer does not train
def test_model_sharing_no_parameter_with_the_optimizer_warns_at_construction() -> None:
    model = _model()
    trained = copy.deepcopy(model)  # the optimizer was built on another copy
    opt = torch.optim.SGD(trained.parameters(), lr=0.01)
    with pytest.warns(UserWarning, match="none of the optimizer's 4 parameter tensors") as caught:
        lrkit.Monitor(model, opt)
    text = str(caught[0].message)
    assert "Sequential" in text and "pass the model the optimizer trains" in text.lower()
    assert caught[0].filename == __file__


@pytest.mark.parametrize("case", ["head_only", "style_transfer", "no_params"])
def test_legitimate_partial_or_outside_parameters_are_not_warned_about(case: str) -> None:
    model = _model()
    if case == "head_only":  # fine-tuning the head of a model
        opt = torch.optim.SGD(model[2].parameters(), lr=0.01)
    elif case == "style_transfer":  # a frozen network, an input image trained
        model.requires_grad_(False)
        opt = torch.optim.Adam([torch.zeros(3, 6, requires_grad=True)], lr=0.01)
    else:  # nothing to train in the model: a placeholder Module
        model = nn.Module()
        opt = torch.optim.Adam([torch.zeros(3, 6, requires_grad=True)], lr=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lrkit.Monitor(model, opt)


# ------------------------------------------------------------------ the wrong object where the scheduler goes
@pytest.mark.parametrize("kind", ["optimizer", "loss_fn", "grad_scaler"])
def test_non_scheduler_in_the_scheduler_slot_is_refused_naming_it(kind: str) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    bad = {"optimizer": opt, "loss_fn": nn.CrossEntropyLoss(),
           "grad_scaler": torch.amp.GradScaler("cpu", enabled=False)}[kind]
    with pytest.raises(ValueError, match="not an LR scheduler") as info:
        lrkit.Monitor(model, opt, bad)
    assert type(bad).__name__ in str(info.value)
    if kind == "grad_scaler":
        assert "grad_scaler=" in str(info.value)


# ------------------------------------------------------------------ rollback exactness (guards what works)
def test_rollback_is_exact_with_groups_frozen_params_batchnorm_and_onecycle() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 1))
    model[3].requires_grad_(False)
    opt = torch.optim.AdamW([{"params": model[0].parameters(), "lr": 1e-3},
                             {"params": [*model[1].parameters(), *model[5].parameters()], "lr": 1e-2,
                              "weight_decay": 0.0},
                             {"params": model[3].parameters(), "lr": 5e-3}])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[1e-3, 1e-2, 5e-3], total_steps=200)
    mon = lrkit.Monitor(model, opt, sched)
    first: tuple = ()
    for step in range(40):
        opt.zero_grad()
        loss = _loss(model)
        loss.backward()
        mon.after_backward(loss * float("nan") if step == 30 else loss)
        if step == 0:  # the healthy snapshot of step 0: after its forward pass (BatchNorm's statistics moved)
            first = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()),
                     copy.deepcopy(sched.state_dict()))
        opt.step()
        sched.step()
        mon.after_step()
        if step == 30:
            break
    assert mon.last_action == "rollback"
    for key, value in first[0].items():  # the step-0 snapshot, BatchNorm's running stats included
        assert torch.equal(model.state_dict()[key], value), key
    assert opt.state_dict()["state"] == {} == first[1]["state"]
    assert sched.state_dict()["last_epoch"] == first[2]["last_epoch"]
    for group, before in zip(opt.param_groups, first[1]["param_groups"]):
        assert group["lr"] == pytest.approx(0.3 * before["lr"], rel=1e-12)
        assert group["max_lr"] == pytest.approx(0.3 * before["max_lr"], rel=1e-12)


def test_scheduler_of_an_identical_looking_optimizer_says_how_many_parameters_they_share() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    other = torch.optim.SGD(copy.deepcopy(model).parameters(), lr=0.01)  # the same class and size: "SGD over 4"
    with pytest.raises(ValueError, match="steps another optimizer") as info:
        lrkit.Monitor(model, opt, torch.optim.lr_scheduler.StepLR(other, 5))
    assert "0 of them" in str(info.value) and "the monitor's" in str(info.value)


@pytest.mark.parametrize("wrong_order", [True, False])
def test_the_order_watch_leaves_the_loops_own_step_hooks_working(wrong_order: bool) -> None:
    # the monitor's step hook must not remove itself while torch runs the hooks: a hook of the loop's after it
    # then made optimizer.step() raise "OrderedDict mutated during iteration"
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = lrkit.Monitor(model, opt)
    calls: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(150):
            opt.zero_grad()
            loss = _loss(model)
            loss.backward()
            mon.after_backward(loss)
            if step == 0:  # the loop's own hook, registered after the monitor's sample hook of step 0
                opt.register_step_post_hook(lambda *args: calls.append(1))
            if wrong_order:
                mon.after_step()
                opt.step()
            else:  # a guard leaves the sampled step 0 out; the next step is taken after the next after_backward
                if step != 0:
                    opt.step()
                mon.after_step()
    assert len(calls) == (150 if wrong_order else 149)


def test_a_refused_argument_is_its_own_error_without_the_unrelated_model_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="sync_loss='yes'"):
            lrkit.Monitor(nn.Linear(1, 1), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1), sync_loss="yes")
