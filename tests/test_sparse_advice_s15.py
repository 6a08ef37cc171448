"""Session 15: the sparse-gradient error of ``lrkit.train`` told a user whose ``optimizer='SGD'`` failed (on its
default weight decay) to "use optimizer='SGD'", with torch's closing period doubled; it now names the weight decay
that made it fail and the settings that work."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrkit
from test_compat_hunt_s8 import _token_data, _twins


def test_sgd_sparse_error_names_the_weight_decay_and_does_not_contradict_itself(tmp_path: Path) -> None:
    model, _ = _twins()
    with pytest.raises(ValueError) as info:
        lrkit.train(model=model, data=_token_data(), epochs=1, batch=16, lr0=0.05, optimizer="SGD",
                    weight_decay=5e-4, project=str(tmp_path), verbose=False, plots=False)
    text = str(info.value)
    assert "weight_decay here: 0.0005" in text
    assert "weight_decay=0 and optimizer='SGD'" in text
    assert ".." not in text


def test_the_advice_works_sgd_with_momentum_and_no_weight_decay_trains_the_sparse_model(tmp_path: Path) -> None:
    model, _ = _twins()
    r = lrkit.train(model=model, data=_token_data(), epochs=1, batch=16, lr0=0.05, optimizer="SGD", momentum=0.9,
                    weight_decay=0.0, project=str(tmp_path), verbose=False, plots=False)
    assert len(r.history) == 1 and r.history[0]["train_loss"] == r.history[0]["train_loss"]
