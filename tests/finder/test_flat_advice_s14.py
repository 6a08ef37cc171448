"""A curve too flat to judge gets advice that can help (session 14, found by the README shell pass s14e).

``lrkit find --start-lr 1 --end-lr 100`` on the demo: the loss is flat, then the test diverges at ~40, and the warning
said "raise end_lr (now 100)" — a test that blew up far below its end_lr sees nothing new with a higher one. Flat and
then diverged, the warning now says to lower start_lr (or train each LR longer); flat to the end keeps "raise end_lr".
"""

from __future__ import annotations

import warnings

import lrkit
from lrkit.finder.demo import demo_task


def _notes(start_lr: float, end_lr: float) -> tuple[lrkit.FinderResult, list[str]]:
    """The range test of ``lrkit find``'s demo (digits, MLP, SGD with momentum) over ``start_lr .. end_lr``."""
    task = demo_task()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lrkit.find_lr(task.model, task.optimizer, task.train_loader, loss_fn=task.loss_fn,
                               start_lr=start_lr, end_lr=end_lr, num_steps=100)
    return result, [w for w in result.warnings if "too flat to judge" in w]


def test_flat_then_diverged_says_lower_start_lr_not_raise_end_lr() -> None:
    result, notes = _notes(1.0, 100.0)
    assert result.stop_reason in ("diverged", "non-finite") and result.lrs[-1] < 100
    assert len(notes) == 1
    assert "lower start_lr (now 1)" in notes[0] and "raise num_steps (now 100)" in notes[0]
    assert "raise end_lr" not in notes[0] and f"at lr={result.lrs[-1]:.3g}" in notes[0]


def test_flat_to_the_end_still_says_raise_end_lr() -> None:
    result, notes = _notes(1e-7, 1e-5)
    assert result.stop_reason == "completed"
    assert len(notes) == 1 and "raise end_lr (now 1e-05)" in notes[0]
