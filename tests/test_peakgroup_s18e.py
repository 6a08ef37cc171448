"""Session 18: with layer_decay and the output layer frozen by the user no group trains at lr0; "the LR" the run
reports (epoch line, progress) is then the highest a group trains at, not the lowest layer's."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import lrkit


def test_reported_lr_is_the_top_trained_layer_when_the_output_layer_is_frozen(tmp_path: Path) -> None:
    torch.manual_seed(0)
    X = torch.randn(64, 4)
    y = (X[:, 0] > 0).long()
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    m[3].requires_grad_(False)  # the output layer frozen by the user
    seen: list[float] = []

    def progress(advance: int = 1, **kw: object) -> None:
        if kw.get("event") == "step":
            seen.append(float(kw["lr"]))  # type: ignore[arg-type]

    r = lrkit.train(m, data=torch.utils.data.TensorDataset(X, y), epochs=1, lr0=0.01, layer_decay=0.5,
                    verbose=False, plots=False, project=str(tmp_path), progress=progress, schedule="constant")
    import csv
    with open(Path(r.run_dir) / "results.csv") as f:
        row = next(csv.DictReader(f))
    layer_lrs = {k: float(v) for k, v in row.items() if k.startswith("lr/")}
    assert max(layer_lrs.values()) < 0.01  # no group at lr0
    assert seen and seen[-1] == max(layer_lrs.values()), (seen[-1], layer_lrs)
