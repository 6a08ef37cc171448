"""What the monitor's back-offs say about lr0, at the end of a run (session 19e).

Before, a run rescued by rollbacks ended with "monitor events 4" in its summary and nothing about what they meant: the
user had to read events.json to learn that the run went on at 0.09x their lr0, and that the next run should start
lower. Now ``TrainResults.lr_scale`` holds the monitor's final multiplier, ``events_by_check`` the counts, the log
ends with a note naming the LR the run could take, and the CLI summary's row names the checks and the multiplier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import lrkit
from lrkit.cli.train import _events_cell
from lrkit.train.trainer import _backoff_note


def _hot(tmp_path: Path, **kw: Any) -> Any:
    return lrkit.train(data="digits", model="mlp", epochs=3, lr0=5.0, optimizer="SGD", project=str(tmp_path),
                       plots=False, seed=0, **kw)


def test_a_rescued_run_says_what_lr_it_could_take(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _hot(tmp_path, verbose=True)
    out = capsys.readouterr().out
    overshoots = [e for e in r.events if e["action"] == "rollback" and e["check"] != "val_rising"]
    assert overshoots, "lr0=5 with SGD on digits overshoots"
    assert 0 < r.lr_scale < 1
    note = [line for line in out.splitlines() if "note — the monitor rolled" in line]
    assert len(note) == 1
    scale = 0.3 ** len(overshoots)  # the default backoff per rollback
    assert f"{scale:.2g}x the planned LR" in note[0]
    assert f"lr0={5.0 * scale:.2g} or lower (or lr0=auto)" in note[0]
    assert sum(r.events_by_check.values()) == len(r.events)


def test_a_quiet_run_has_no_note_and_scale_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = lrkit.train(data="iris", model="linear", epochs=2, lr0=0.01, project=str(tmp_path), plots=False)
    assert r.lr_scale == 1.0 and r.events_by_check == {}
    assert "note — the monitor" not in capsys.readouterr().out
    assert _events_cell(r) == "0"


def test_without_a_monitor_scale_is_one(tmp_path: Path) -> None:
    r = _hot(tmp_path, verbose=False, monitor=False)
    assert r.events == [] and r.lr_scale == 1.0


class _Mon:
    def __init__(self, lr_scale: float, val_backoff: float = 0.1) -> None:
        self.lr_scale, self.val_backoff = lr_scale, val_backoff


def _results(events: list[dict[str, Any]], source: str = "user", lr_scale: float = 1.0) -> Any:
    return lrkit.TrainResults(model=torch.nn.Linear(1, 1), lr0=0.1, lr0_source=source, auto=None, optimizer="SGD",
                              optimizer_reason="", task=None, metric_name="val_loss", metric_mode="min", history=[],
                              best_epoch=0, run_dir=Path("runs/x"), events=events, lr_scale=lr_scale)


def test_val_rising_alone_gives_no_note_and_is_taken_out_of_the_scale() -> None:
    val = {"check": "val_rising", "action": "rollback"}
    assert _backoff_note(_results([val]), _Mon(0.1)) is None
    spike = {"check": "loss_spike", "action": "rollback"}
    note = _backoff_note(_results([spike, val], source="auto"), _Mon(0.3 * 0.1))
    assert note is not None
    assert "0.3x the planned LR (peak 0.03 instead of 0.1)" in note
    assert "lr0=auto's choice was too high" in note and "(or lr0=auto)" not in note


def test_clips_and_warnings_are_not_rollbacks() -> None:
    events = [{"check": "exploding_gradients", "action": "clip"}, {"check": "lr_too_low", "action": "warn"}]
    assert _backoff_note(_results(events), _Mon(1.0)) is None


def test_summary_cell_names_checks_and_scale() -> None:
    events = [{"check": "loss_spike", "action": "rollback"}, {"check": "exploding_gradients", "action": "clip"},
              {"check": "loss_spike", "action": "rollback"}]
    cell = _events_cell(_results(events, lr_scale=0.09))
    assert cell == "3: loss_spike x2, exploding_gradients; LR now 0.09x the schedule"
