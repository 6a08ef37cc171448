"""An absolute floor in ``lr_scheduler_kwargs`` (``cosine_with_min_lr``'s ``min_lr``) at or above the LR that
``find_trainer_lr`` / ``choose_trainer_lr`` set: transformers' cosine then rises from the peak to the floor, silently.
Both now warn, naming the floor."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from lrkit.integrations.transformers import find_trainer_lr
from test_hf_finder_s22b import _trainer


@pytest.mark.parametrize("min_lr", [10.0, 1e-9])
def test_a_floor_above_the_lr_set_is_warned_about(tmp_path: Path, min_lr: float) -> None:
    trainer = _trainer(tmp_path, lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr": min_lr})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = find_trainer_lr(trainer, num_steps=20)
    said = [str(w.message) for w in caught if "absolute floor" in str(w.message)]
    if min_lr > result.suggestion:
        assert said and f"min_lr={min_lr:g}" in said[0]
    else:
        assert not said
