"""Which loss ``lr0="auto"``'s range test ran, on record (session 17a).

* ``AutoLR.to_dict()`` did not record ``FinderResult.loss``, so after a resume (``finder=None``) it was lost; it is
  now the record's ``finder_loss`` (``AutoLR.finder_loss``), and a record without it still loads.
* ``lrkit.train``'s ``lr0="auto"`` passes the task's loss function, and the record read
  ``"loss_fn (classification_loss)"``, an internal name; a task's loss now carries the words for it
  (``"cross-entropy (the classification task's loss)"``), and the numbers are the same.

Tests marked "Bug:" failed before the fix (src/lrkit/train/auto.py, src/lrkit/_step.py, src/lrkit/train/tasks.py).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from lrkit._step import _loss_text, described_as
from lrkit.finder.result import FinderResult
from lrkit.train import tasks, train
from lrkit.train.auto import AutoLR, Trial

QUIET = {"verbose": False, "plots": False}


def _auto(finder: Any) -> AutoLR:
    return AutoLR(lr=0.02, finder=finder, trials=[Trial(0.01, 0.5, 16)], extra_steps=49, extra_fraction=0.049,
                  reason="stepped up", trial_steps=16)


def _finder(loss: str | None) -> FinderResult:
    lrs = [10 ** (-4 + i * 0.25) for i in range(17)]
    losses = [2.0 - 0.1 * i for i in range(12)] + [1.0, 1.2, 2.0, 4.0, 9.0]
    return FinderResult(lrs=lrs, losses=losses, loss=loss)


# ------------------------------------------------------------------------------------------ AutoLR's record
def test_the_record_says_which_loss_the_range_test_ran() -> None:
    """Bug: to_dict() had no finder_loss."""
    a = _auto(_finder("loss_fn (cross_entropy)"))
    assert a.finder_loss == "loss_fn (cross_entropy)"
    assert a.to_dict()["finder_loss"] == "loss_fn (cross_entropy)"


def test_a_resumed_autolr_keeps_which_loss_ran() -> None:
    """Bug: from_dict refused the key (and nothing recorded it), so a resumed run lost it."""
    a = _auto(_finder("the model's own loss, from model(**batch)"))
    b = AutoLR.from_dict(a.to_dict())
    assert b.finder is None
    assert b.finder_loss == "the model's own loss, from model(**batch)"
    assert b.to_dict() == a.to_dict()


def test_an_older_record_without_finder_loss_still_loads() -> None:
    record = _auto(None).to_dict()
    record.pop("finder_loss", None)
    b = AutoLR.from_dict(record)
    assert b.finder_loss is None
    assert b.to_dict() == record  # given back as it was written: without a finder_loss it did not say
    assert b.lr == 0.02 and b.trials == [Trial(0.01, 0.5, 16)]


def test_a_range_test_that_did_not_record_its_loss_gives_none() -> None:
    assert _auto(_finder(None)).to_dict()["finder_loss"] is None
    assert _auto(None).finder_loss is None


@pytest.mark.parametrize("bad", [3, ["loss_fn (mse)"], {"a": 1}])
def test_a_finder_loss_that_is_not_text_is_a_clear_error(bad: Any) -> None:
    record = {**_auto(None).to_dict(), "finder_loss": bad}
    with pytest.raises(ValueError, match=r"AutoLR\.from_dict: 'finder_loss' must be a string .*or None, got "
                                         + type(bad).__name__):
        AutoLR.from_dict(record)


def test_a_misspelt_finder_loss_key_gets_a_did_you_mean() -> None:
    record = {**_auto(None).to_dict(), "finder_los": "x"}
    with pytest.raises(ValueError, match="finder_loss"):
        AutoLR.from_dict(record)


# ------------------------------------------------------------------------------------------ the task's loss, in words
@pytest.mark.parametrize(("loss", "text"), [
    (tasks.classification_loss, "cross-entropy (the classification task's loss)"),
    (tasks.regression_loss, "mean squared error (the regression task's loss)"),
    (tasks.lm_loss, "token cross-entropy (the lm task's loss)"),
])
def test_a_tasks_loss_reads_as_what_it_is(loss: Any, text: str) -> None:
    """Bug: the record read 'loss_fn (classification_loss)'; also through a functools.wraps wrapper, as
    lrkit.train wraps the task's loss to read a Hugging Face output's logits."""
    batch = (torch.zeros(2, 3), torch.tensor([0, 2]))
    assert _loss_text(batch, loss, None, torch.zeros(2, 3)) == text

    @functools.wraps(loss)
    def wrapped(out: Any, y: Any) -> torch.Tensor:
        return loss(out, y)

    assert _loss_text(batch, wrapped, None, torch.zeros(2, 3)) == text


def test_described_as_marks_a_function_and_leaves_it_as_it_was() -> None:
    def my_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out - y).abs().mean()

    same = described_as("mean absolute error")(my_loss)
    assert same is my_loss
    assert _loss_text((torch.zeros(2), torch.zeros(2)), my_loss, None, torch.zeros(2)) == "mean absolute error"
    assert float(my_loss(torch.ones(2), torch.zeros(2))) == 1.0
    with pytest.raises(ValueError, match=r"described_as\(text=3\): the words for a loss are a non-empty string"):
        described_as(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"described_as\(text=''\)"):
        described_as("")


def test_a_user_loss_fn_still_reads_by_its_name() -> None:
    batch = (torch.zeros(2, 3), torch.tensor([0, 2]))
    assert _loss_text(batch, nn.functional.cross_entropy, None, torch.zeros(2, 3)) == "loss_fn (cross_entropy)"


def test_the_range_test_numbers_are_the_same_with_the_tasks_words() -> None:
    """Only the words change: the task's loss gives the same curve as the same function without them."""

    def plain(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return tasks.classification_loss(out, y)

    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(4)]
    curves = []
    for loss in (tasks.classification_loss, plain):
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        r = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), data, loss_fn=loss, num_steps=12)
        curves.append((r.lrs, r.losses, r.loss))
    assert curves[0][:2] == curves[1][:2]
    assert curves[0][2] == "cross-entropy (the classification task's loss)" and curves[1][2] == "loss_fn (plain)"


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def auto_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    project = tmp_path_factory.mktemp("lossrecord")
    run = dict(data="synthetic-classification", model="linear", epochs=4, batch=64, lr0="auto", optimizer="SGD",
               auto_budget=0.6, warmup_epochs=0, seed=0)

    def kill_at(step: int) -> Any:
        def progress(**kw: Any) -> None:
            if kw.get("event") == "step" and kw["step"] == step:
                raise KeyboardInterrupt
        return progress

    full = train(name="full", project=project, **run, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        train(name="cut", project=project, progress=kill_at(2 * full.steps_per_epoch + 1), **run, **QUIET)
    resumed = train(resume=Path(project) / "cut" / "last.pt", **QUIET)
    return full, resumed


def test_lrkit_train_records_the_tasks_loss_in_words(auto_run: Any) -> None:
    """Bug: 'loss_fn (classification_loss)'."""
    full, _ = auto_run
    assert full.auto.finder.loss == "cross-entropy (the classification task's loss)"
    assert full.auto.to_dict()["finder_loss"] == "cross-entropy (the classification task's loss)"
    assert math.isfinite(full.lr0)


def test_a_resumed_run_keeps_which_loss_its_range_test_ran(auto_run: Any) -> None:
    """Bug: after a resume, finder=None and the loss was not in the record."""
    full, resumed = auto_run
    assert resumed.auto.finder is None
    assert resumed.auto.finder_loss == "cross-entropy (the classification task's loss)"
    assert resumed.auto.to_dict() == full.auto.to_dict()
