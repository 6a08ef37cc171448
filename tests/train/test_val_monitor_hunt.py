"""lrkit.train with the validation-loss monitor: what best.pt holds when the monitor rolls back (or stops) in an epoch
whose validation metric is a new best."""

from __future__ import annotations

import pytest
import torch

from _helpers import noisy_label_pairs, wide_mlp
from lrkit.monitor import ValidationRising
from lrkit.train import train

QUIET = {"verbose": False, "plots": False}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.mark.parametrize("action", ["rollback", "stop"])
def test_best_pt_holds_the_weights_that_scored_the_best_metric_when_the_monitor_restores_another_epoch(
        tmp_path, action):
    """Epoch 3's validation loss is the highest yet (the monitor restores epoch 1's weights, the best loss) while
    its accuracy is the best so far: best.pt must hold the weights that scored that accuracy — epoch 3's, as
    validated — not the epoch-1 weights the monitor put back before the checkpoint was written."""
    common = dict(data=noisy_label_pairs(), epochs=3, lr0=0.1, optimizer="SGD", batch=16, warmup_epochs=0, patience=0,
                  seed=0, project=tmp_path, **QUIET)
    plain = train(wide_mlp(), name="plain", monitor={"on_overfit": None}, **common)  # the same run, nothing restored
    hist = plain.history
    assert hist[0]["val_loss"] < hist[1]["val_loss"] < hist[2]["val_loss"]  # the premise: the loss rises ...
    assert hist[2]["val_accuracy"] > max(h["val_accuracy"] for h in hist[:2])  # ... the accuracy is a new best
    check = ValidationRising(tolerance=0.0, min_train_drop=0.0)  # patience 2: fires at epoch 3
    watched = train(wide_mlp(), name="watched", monitor={"checks": [check], "on_overfit": action}, **common)
    assert [(e["check"], e["action"], e["epoch"]) for e in watched.events] == [("val_rising", action, 3.0)]
    assert watched.best_epoch == 3 and watched.best_metric == hist[2]["val_accuracy"]
    best = torch.load(watched.run_dir / "best.pt", weights_only=True)
    assert best["epoch"] == 3
    assert _same(best["model"], plain.model.state_dict())  # epoch 3's weights, which scored best_metric
    # last.pt and the returned model are the monitor's: the weights it restored (epoch 1's)
    last = torch.load(watched.run_dir / "last.pt", weights_only=True)
    assert _same(last["model"], watched.model.state_dict())
    assert not _same(last["model"], best["model"])


def test_monitor_warn_only_warns_also_about_a_rising_validation_loss(tmp_path):
    """monitor="warn" is warn-only: a rising validation loss is reported, the weights and the LR are left alone."""
    from lrkit.monitor import MonitorWarning

    with pytest.warns(MonitorWarning, match="validation loss"):
        run = train(wide_mlp(), data=noisy_label_pairs(), epochs=12, lr0=0.05, optimizer="Adam", batch=16,
                    warmup_epochs=0, patience=0, project=tmp_path, monitor="warn", **QUIET)
    val = [e for e in run.events if e["check"] == "val_rising"]
    assert val and {e["action"] for e in val} == {"warn"}
    assert torch.load(run.run_dir / "last.pt", weights_only=True)["scheduler"]["lr_multiplier"] == 1.0
