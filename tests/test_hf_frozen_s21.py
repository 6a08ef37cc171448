"""The Hugging Face MonitorCallback with a frozen base model (session 21): lrkit_monitor.pt holds copies of what the
Trainer trains only, and a resumed run still rolls back where the uninterrupted one does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
from lrkit.integrations.transformers import STATE_FILE, MonitorCallback
from test_hf_monitor_s20h import Reg, _train

pytestmark = pytest.mark.filterwarnings("ignore:.*pin_memory.*", "ignore::FutureWarning")


def frozen_reg(nan_at: tuple[int, ...] = ()) -> Reg:
    model = Reg(nan_at=nan_at)
    model.net[0].requires_grad_(False)  # the "base model": the Trainer's optimizer leaves it out
    return model


def test_the_checkpoint_file_leaves_the_frozen_base_out_and_a_resume_rolls_back_as_the_whole_run(
        tmp_path: Path) -> None:
    whole_dir, resumed_dir = tmp_path / "whole", tmp_path / "resumed"
    whole, whole_model = MonitorCallback(grad_every=1, snapshot_every=10), frozen_reg(nan_at=(12, 27))
    frozen_before = whole_model.net[0].weight.detach().clone()
    _train(whole_model, whole_dir, [whole], sgd=False, max_steps=32, save_strategy="steps", save_steps=16)
    state = torch.load(whole_dir / "checkpoint-16" / STATE_FILE, weights_only=True)
    # net.0.weight, net.0.bias (frozen: not saved), net.2.weight, net.2.bias (trained: saved)
    assert [t is None for t in state["healthy"]["params"]] == [True, True, False, False]
    assert whole.monitor.rollbacks == 2
    assert torch.equal(whole_model.net[0].weight, frozen_before)

    shutil.copytree(whole_dir / "checkpoint-16", resumed_dir / "checkpoint-16")
    resumed, model = MonitorCallback(grad_every=1, snapshot_every=10), frozen_reg(nan_at=(12, 27))
    _train(model, resumed_dir, [resumed], sgd=False, max_steps=32, save_strategy="steps", save_steps=16,
           resume=True)
    assert [e.to_dict() for e in resumed.monitor.events] == [e.to_dict() for e in whole.monitor.events]
    for (name, a), b in zip(whole_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
