"""Bug hunt on results.csv's ``d_lr/<group>`` columns (Prodigy / D-Adaptation), s7.

Bug found (fixed in ``_Trainer._row``): with ``use_bias_correction=True`` Prodigy (and DAdaptAdam) step by
``dlr = d x lr x sqrt(1 - beta2^k) / (1 - beta1^k)`` (prodigyopt's ``step``), but ``d_lr`` read ``d x lr``, which the
README calls "the step size taken": after this test's 20 steps (betas (0.937, 0.999)) that overstated it 5.2x.

Known answers: prodigyopt's own formula for the step's ``dlr`` evaluated from the optimizer state saved in last.pt
(its ``d``, ``k`` and ``betas``); a killed and resumed run writes a results.csv whose header and rows carry the same
d_lr columns as the uninterrupted run's, with the same values.
"""

from __future__ import annotations

import csv
import math
from typing import Any

import pytest
import torch

import lrkit
from _helpers import three_class_split

prodigyopt = pytest.importorskip("prodigyopt")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def _train(tmp_path: Any, optimizer: Any, **kw: Any) -> Any:
    return lrkit.train(_model(), data=three_class_split(200), optimizer=optimizer, epochs=2, batch=16, nbs=16,
                       warmup_bias_lr=0.0, project=tmp_path, plots=False, verbose=False, monitor=False, **kw)


_D_BEFORE: list[float] = []
_BETAS_BEFORE: list[tuple[float, float]] = []


class ProdigySeen(prodigyopt.Prodigy):  # type: ignore[misc]
    """Prodigy that notes the ``d`` each step starts from: the one its update uses (prodigyopt reads ``group["d"]``
    into ``dlr`` first and stores the grown estimate after the update)."""

    def step(self, closure: Any = None) -> Any:
        _D_BEFORE.append(float(self.param_groups[0]["d"]))
        _BETAS_BEFORE.append(tuple(self.param_groups[0]["betas"][:2]))  # the momentum warmup moves beta1 every step
        return super().step(closure)


class ProdigyBC(ProdigySeen):
    """Prodigy with Adam's bias correction on, as diffusion fine-tuning recipes run it."""

    def __init__(self, params: Any, lr: float = 1.0, **kw: Any) -> None:
        kw.pop("use_bias_correction", None)
        super().__init__(params, lr=lr, use_bias_correction=True, **kw)


def test_d_lr_includes_prodigys_bias_correction(tmp_path: Any) -> None:
    _D_BEFORE.clear()
    _BETAS_BEFORE.clear()
    r = _train(tmp_path, ProdigyBC)
    groups = torch.load(r.run_dir / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    for key, group in zip(("all/decay", "all/bias"), groups):
        assert group["use_bias_correction"] is True and group["k"] > 0
        b1, b2 = _BETAS_BEFORE[-1]  # the betas the last step read (the saved ones are the next step's, warmed up)
        k = group["k"]  # the step just taken was prodigyopt's k + 1 with k = group["k"] - 1
        correction = math.sqrt(1 - b2**k) / (1 - b1**k)
        want = _D_BEFORE[-1] * r.history[-1][f"lr/{key}"] * correction  # the d the last step used
        assert r.history[-1][f"d_lr/{key}"] == pytest.approx(want, rel=1e-12)
        assert abs(correction - 1.0) > 0.1  # the correction matters here: d x lr alone would be off by > 10%


def test_d_lr_without_bias_correction_is_the_d_the_last_step_used_times_lr(tmp_path: Any) -> None:
    _D_BEFORE.clear()
    r = _train(tmp_path, ProdigySeen)
    group = torch.load(r.run_dir / "last.pt", weights_only=True)["optimizer"]["param_groups"][0]
    assert group["use_bias_correction"] is False
    assert r.history[-1]["d_lr/all/decay"] == pytest.approx(_D_BEFORE[-1] * r.history[-1]["lr/all/decay"], rel=1e-12)
    if group["d"] != _D_BEFORE[-1]:  # d grew in the last step: the group's d now is the next step's, not this one's
        assert r.history[-1]["d_lr/all/decay"] != pytest.approx(group["d"] * r.history[-1]["lr/all/decay"])


def _csv(path: Any) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_resume_keeps_the_d_lr_columns_of_every_row(tmp_path: Any) -> None:
    full = _train(tmp_path / "a", prodigyopt.Prodigy)
    steps_per_epoch = math.ceil(160 / 16)

    def kill(**kw: Any) -> None:
        if kw.get("event") == "step" and kw["step"] == steps_per_epoch + 3:  # in epoch 2, after epoch 1's row
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", prodigyopt.Prodigy, progress=kill)
    resumed = lrkit.train(_model(), data=three_class_split(200), optimizer=prodigyopt.Prodigy,
                          resume=str(tmp_path / "b" / "train" / "last.pt"), verbose=False, plots=False)
    head_full, rows_full = _csv(full.run_dir / "results.csv")
    head_res, rows_res = _csv(resumed.run_dir / "results.csv")
    assert head_res == head_full and "d_lr/all/decay" in head_res and "d_lr/all/bias" in head_res
    assert len(rows_res) == len(rows_full) == 2
    for a, b in zip(rows_full, rows_res):
        assert b["d_lr/all/decay"] != "" and float(b["d_lr/all/decay"]) == pytest.approx(float(a["d_lr/all/decay"]))
