"""Fixtures shared by the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrkit


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch ``lrkit.train`` run on the built-in iris data (its run directory), for ``lrkit predict``
    tests."""
    d = tmp_path_factory.mktemp("iris_run")
    return lrkit.train(data="iris", epochs=1, verbose=False, plots=False, seed=0, project=str(d),
                       name="iris").run_dir
