"""lrkit.train loose ends (session 33, noticed by the 33b hunt): a complex or integer loss from the user's loss_fn is
a clear error naming its dtype (it was torch's "value cannot be converted to type double without overflow", or an
integer loss's "does not require grad" advice), and ``TrainResults.to_dict()`` carries ``lr_scale``, the monitor's
LR multiplier (the attribute had it; the JSON summary left it out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lrkit


def _complex_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(out, y).to(torch.complex64) * (1 + 1j)


def _int_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(1) != y).sum()


@pytest.mark.parametrize(("fn", "dtype"), [(_complex_loss, "complex64"), (_int_loss, "int64")])
@pytest.mark.parametrize("monitor", [True, False])
def test_a_loss_that_is_not_real_floating_point_is_named(fn: object, dtype: str, monitor: bool,
                                                        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"loss_fn returned a loss of dtype {dtype}: the loss must be a real "
                                         "floating-point scalar"):
        lrkit.train("mlp", data="iris", epochs=1, lr0=0.01, loss_fn=fn, monitor=monitor, project=str(tmp_path),
                    plots=False, verbose=False)


def test_the_json_summary_carries_the_monitors_lr_scale(tmp_path: Path) -> None:
    r = lrkit.train("mlp", data="iris", epochs=1, lr0=0.01, project=str(tmp_path), plots=False, verbose=False)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["lr_scale"] == r.lr_scale == 1.0
