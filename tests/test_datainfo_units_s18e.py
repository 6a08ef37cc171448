"""Session 18: args.yaml (and the checkpoint) say whether n_train / n_val count samples or whole batches."""
from __future__ import annotations

from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit.train.data import DataInfo


def _batches(n: int, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 8, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def test_to_dict_names_the_unit() -> None:
    d = DataInfo("d", None, None, None, "pair", n_train=5, n_val=40, train_batches=True, first_batch=64).to_dict()
    assert d["n_train"] == 5 and d["train_unit"] == "batches"
    assert d["n_val"] == 40 and d["val_unit"] == "samples"


def test_args_yaml_of_whole_batch_loaders_says_batches(tmp_path: Path) -> None:
    train = DataLoader(_batches(5, 64, 0), batch_size=None)
    val = DataLoader(TensorDataset(torch.randn(40, 8), torch.randint(0, 3, (40,))), batch_size=16)
    r = lrkit.train(model=_model(), data=(train, val), task="classification", epochs=1, lr0=0.01, plots=False,
                    project=str(tmp_path), verbose=False)
    data = yaml.safe_load((Path(r.run_dir) / "args.yaml").read_text())["resolved"]["data"]
    assert (data["n_train"], data["train_unit"]) == (5, "batches")
    assert (data["n_val"], data["val_unit"]) == (40, "samples")
    ck = torch.load(Path(r.run_dir) / "last.pt", weights_only=True)
    assert ck["data"]["train_unit"] == "batches"
