"""The epoch line's ``lr`` is results.csv's: the LR of the epoch's last step (found by the README commands audit)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

import lrkit


def test_the_epoch_line_prints_the_lr_results_csv_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug: the line printed the LR the optimizer held after the epoch (the next step's): 0.000358 beside a CSV 0.000343
    r = lrkit.train(data="iris", model="mlp", epochs=3, lr0=0.05, lrf=0.01, cos_lr=True, warmup_epochs=0,
                    project=tmp_path, plots=False, verbose=True)
    printed = [float(v) for v in re.findall(r"epoch +\d+/3 .* lr ([0-9.e+-]+) ", capsys.readouterr().out)]
    with open(r.run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    column = next(k for k in rows[0] if k.startswith("lr/"))
    assert len(printed) == 3
    assert printed == [float(f"{float(row[column]):.3g}") for row in rows]
    assert printed[0] > printed[-1]  # the cosine is decaying: the next step's LR would differ


def test_a_finished_one_epoch_run_says_epoch(tmp_path: Path) -> None:
    r = lrkit.train(data="iris", model="mlp", epochs=1, project=tmp_path, plots=False, verbose=False)
    with pytest.raises(ValueError, match=r"already finished \(1 epoch\)"):
        lrkit.train(resume=r.run_dir, epochs=1, verbose=False)
