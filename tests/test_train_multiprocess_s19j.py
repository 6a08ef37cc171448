"""``lrkit.train`` under torch.distributed / torchrun with several ranks is refused up front (session 19j).

Before, every rank trained on the whole data, unsharded, and wrote its own run folder (``train``, ``train2``): two
identical runs for no speed-up, and nothing said so. One process (world size 1, a DDP-wrapped model included) trains
as before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import lrkit
from _dist_s19j import train_worker
from _helpers import free_port


@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed")
def test_two_ranks_are_refused_and_write_nothing(tmp_path: Path) -> None:
    mp.spawn(train_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        error = json.loads((tmp_path / f"{rank}.json").read_text())["error"]
        assert error is not None and f"this is rank {rank} of 2" in error
        assert "lrkit.Monitor(model, optimizer, sync_loss=True)" in error
    assert not (tmp_path / "runs").exists()


def test_torchrun_environment_is_refused_before_anything_is_written(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match=r"rank 3 of 4 \(torch\.distributed / torchrun\)"):
        lrkit.train(data="iris", epochs=1, lr0=0.01, project=str(tmp_path / "runs"), verbose=False, plots=False)
    assert not (tmp_path / "runs").exists()


def test_one_process_still_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "1")
    r = lrkit.train(torch.nn.Linear(4, 3), data="iris", epochs=1, lr0=0.01, project=str(tmp_path), verbose=False,
                    plots=False)
    assert r.epochs_run == 1


def test_a_linear_model_on_image_data_is_told_to_flatten(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    with pytest.raises(ValueError, match=r"each sample is a 1x8x8 image: a model that starts with nn\.Linear\(64, "
                                         r"\.\.\.\) needs nn\.Flatten\(\) in front of it"):
        lrkit.train(net, data="digits", epochs=1, lr0=0.01, project=str(tmp_path), verbose=False, plots=False)
    flat = torch.nn.Sequential(torch.nn.Flatten(), net)
    assert lrkit.train(flat, data="digits", epochs=1, lr0=0.01, project=str(tmp_path), verbose=False,
                       plots=False).epochs_run == 1
