"""Shared fixtures: tiny deterministic data and models."""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

import matplotlib
import pytest
import torch

from _helpers import transformers_or_skip

matplotlib.use("Agg")
torch.set_num_threads(1)
os.environ.setdefault("COLUMNS", "120")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the Hugging Face tests build models from configs: never the Hub


@pytest.fixture
def environment_as_it_was() -> Any:
    """Put this process's environment back after the test: Lightning's spawn launcher writes MASTER_ADDR/MASTER_PORT
    (and more) into it, and the process-group tests that run after in the same worker must start from a clean one."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def hf() -> ModuleType:
    """The ``transformers`` package (tests using it are skipped where it is not installed), its warnings quiet."""
    transformers = transformers_or_skip()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    return transformers


@pytest.fixture
def regression_loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256, generator=g)
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y.unsqueeze(1)), batch_size=32, shuffle=True,
        generator=torch.Generator().manual_seed(1),
    )


@pytest.fixture
def classification_loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1)
    )


@pytest.fixture
def step_down_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """``lr0="auto"``'s guard as it was before the sixth fresh set's test: it follows a lower LR's short-trial win
    (``STEP_DOWN_MARGIN = 0``) and reads its range test without the double-dip cut and passes gate."""
    from lrkit.train import auto

    monkeypatch.setattr(auto, "STEP_DOWN_MARGIN", 0.0)
    monkeypatch.setattr(auto, "DIP_AND_PASSES", False)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A finished one-epoch ``lrkit.train`` run on the built-in iris data (its run directory), for ``lrkit predict``
    tests (one conftest only: a second ``conftest.py`` in a sub-folder clashes with this one's module name)."""
    import lrkit

    d = tmp_path_factory.mktemp("iris_run")
    return lrkit.train(data="iris", epochs=1, verbose=False, plots=False, seed=0, project=str(d),
                       name="iris").run_dir
