"""Session 37 (helper s): choose_lr0 called directly with a val_loader that is not a loader of batches."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lrkit.finder.range_test as range_test
from lrkit import choose_lr0

X = torch.randn(160, 8, generator=torch.Generator().manual_seed(0))
Y = X @ torch.randn(8, 1, generator=torch.Generator().manual_seed(1))


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train = DataLoader(TensorDataset(X[:128], Y[:128]), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(3))
    return model, opt, train


def _cosine(o: torch.optim.Optimizer, n: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(o, n)


@pytest.fixture
def no_range_test(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the range tests started: a bad val_loader must be refused before any compute."""
    calls: list[int] = []
    real = range_test.find_lr

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("lrkit.finder.find_lr", counting)
    return calls


@pytest.mark.parametrize(
    ("val", "words"),
    [
        (5, "val_loader=5 (int) is not iterable"),
        ("val.pt", "val_loader='val.pt' is a string"),
        ({"x": X[128:], "y": Y[128:]}, "val_loader is a dict"),
        (X[128:], "val_loader is a Tensor"),
        ((X[128:], Y[128:]), "val_loader is a tuple of tensors"),
        ([X[128:], Y[128:]], "val_loader is a list of tensors"),
    ],
)
def test_bad_val_loader_refused_before_compute_s37s(val: object, words: str, no_range_test: list[int]) -> None:
    model, opt, train = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError) as info:
        choose_lr0(model, opt, train, val, total_steps=60, make_scheduler=_cosine,
                   loss_fn=torch.nn.functional.mse_loss, budget=1)
    text = str(info.value)
    assert words in text
    assert "val_loader=None" in text  # what would be valid
    assert no_range_test == []  # refused before the range test ran
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_val_loader_list_of_batches_still_accepted_s37s(no_range_test: list[int]) -> None:
    model, opt, train = _setup()
    auto = choose_lr0(model, opt, train, [(X[128:], Y[128:])], total_steps=60, make_scheduler=_cosine,
                      loss_fn=torch.nn.functional.mse_loss, budget=1)
    assert auto.lr > 0 and len(auto.trials) >= 1
    assert no_range_test == [1]  # (the counter sees the range test)


def test_val_batch_error_says_it_was_val_loader_s37s() -> None:
    """A Dataset passed as val_loader yields single samples: the model's ValueError is raised as it is, with a note
    that it came from scoring on val_loader (the range test on train_loader ran fine)."""
    model, opt, train = _setup()
    with pytest.raises(ValueError) as info:
        choose_lr0(model, opt, train, TensorDataset(X[128:], Y[128:]), total_steps=60, make_scheduler=_cosine,
                   loss_fn=torch.nn.functional.mse_loss, budget=1)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "scored on val_loader's batch 0" in notes


def _typo_spec(o: torch.optim.Optimizer, n: int) -> object:
    from lrkit.schedules import from_spec

    return from_spec("cosine lfr=0.01", total_steps=n).to_torch(o)  # (lrf misspelt)


def _one_step_short(o: torch.optim.Optimizer, n: int) -> object:
    return torch.optim.lr_scheduler.OneCycleLR(o, max_lr=[g["lr"] for g in o.param_groups], total_steps=n - 1)


@pytest.mark.parametrize(
    ("make_scheduler", "match"),
    [
        (_typo_spec, r"make_scheduler=_typo_spec\(optimizer, 20\) failed: ValueError: unknown cosine parameter 'lfr'"),
        (_one_step_short,
         r"the scheduler from make_scheduler=_one_step_short\(optimizer, 20\) failed at step 20 of 20"),
    ],
)
def test_failing_make_scheduler_refused_before_the_range_test_s37s(
    make_scheduler: object, match: str, no_range_test: list[int]
) -> None:
    """A factory that fails on the very optimizer and trial length the trials would give it fails them all: it is
    named before the range test spends its steps (a quarter of the run), in the words a trial would use."""
    model, opt, train = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=match):
        choose_lr0(model, opt, train, [(X[128:], Y[128:])], total_steps=80, make_scheduler=make_scheduler,
                   loss_fn=torch.nn.functional.mse_loss, budget=1)
    assert no_range_test == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert opt.param_groups[0]["lr"] == 0.1 and "initial_lr" not in opt.param_groups[0] and "step" not in vars(opt)


def test_factory_that_only_fails_on_a_stand_in_still_runs_s37s() -> None:
    """A factory that insists on the caller's optimizer class fails on the probe's stand-in: not refused for that."""
    model, opt, train = _setup()

    def picky(o: torch.optim.Optimizer, n: int) -> torch.optim.lr_scheduler.LRScheduler:
        if not isinstance(o, torch.optim.SGD):
            raise TypeError("SGD only")
        return _cosine(o, n)

    auto = choose_lr0(model, opt, train, [(X[128:], Y[128:])], total_steps=80, make_scheduler=picky,
                      loss_fn=torch.nn.functional.mse_loss, budget=1)
    assert auto.lr > 0 and auto.trials
