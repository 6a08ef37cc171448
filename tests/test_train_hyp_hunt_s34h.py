"""Session 34h: lrkit.train's Ultralytics hyperparameters checked step by step against the README's formulas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import lrkit
import lrkit.train.trainer as trainer_mod
from _helpers import assert_same_run, killed_run


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> list[list[dict[str, Any]]]:
    """Train on iris and record every param group's lr / momentum / betas just before each optimizer step."""
    steps: list[list[dict[str, Any]]] = []
    build = trainer_mod.build_optimizer

    def recording(*a: Any, **k: Any) -> Any:
        opt = build(*a, **k)
        opt.register_step_pre_hook(lambda o, args, kwargs: steps.append([dict(g) for g in o.param_groups]))
        return opt

    monkeypatch.setattr(trainer_mod, "build_optimizer", recording)
    kw = {"data": "iris", "model": "linear", "epochs": 2, **kw}
    lrkit.train(plots=False, project=str(tmp_path), **kw)
    return steps


def test_explicit_momentum_overridden_by_spec_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # schedule="ultralytics" schedules momentum itself (to its default 0.937): an explicit momentum=0.9 is then
    # not what the run trains with, and the log must say so, as it does for lrf/warmup_* given beside a spec
    steps = _run(tmp_path, monkeypatch, optimizer="SGD", schedule="ultralytics warmup_epochs=0.5", momentum=0.9,
                 batch=16, nbs=16)
    assert steps[-1][0]["momentum"] == pytest.approx(0.937)  # the spec's momentum, not 0.9
    out = " ".join(capsys.readouterr().out.split())
    assert "momentum=0.9 (given) is not used" in out


def test_momentum_beside_a_spec_without_momentum_is_used_and_not_noted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    steps = _run(tmp_path, monkeypatch, optimizer="SGD", schedule="cosine", momentum=0.9, batch=16, nbs=16)
    assert all(g["momentum"] == 0.9 for s in steps for g in s)
    assert "is not used" not in " ".join(capsys.readouterr().out.split())


def test_auto_optimizer_bias_warmup_off_in_an_ultralytics_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # README: "with optimizer="auto" and no warmup_bias_lr given it is 0 (the bias groups warm up with the rest, and
    # the log says so)". schedule="ultralytics" (family default warmup_bias_lr=0.1) started AdamW's biases at 0.1,
    # 100x its lr0=0.001, without a word
    steps = _run(tmp_path, monkeypatch, schedule="ultralytics", batch=16, nbs=16)
    first = {g["name"]: g["lr"] for g in steps[0]}
    assert first == {"all/decay": 0.0, "all/bias": 0.0}
    assert "optimizer=auto: warmup_bias_lr=0" in " ".join(capsys.readouterr().out.split())


def test_auto_optimizer_keeps_a_bias_warmup_written_in_the_spec(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    steps = _run(tmp_path, monkeypatch, schedule="ultralytics warmup_bias_lr=0.05", batch=16, nbs=16)
    assert {g["name"]: g["lr"] for g in steps[0]} == {"all/decay": 0.0, "all/bias": pytest.approx(0.05)}
    # an explicit optimizer keeps the family's default bias warmup, as the default schedule does
    steps = _run(tmp_path / "sgd", monkeypatch, schedule="ultralytics", optimizer="SGD", batch=16, nbs=16)
    assert {g["name"]: g["lr"] for g in steps[0]} == {"all/decay": 0.0, "all/bias": pytest.approx(0.1)}


def test_auto_optimizer_spec_bias_warmup_off_survives_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the fitted spec is re-derived on resume (args.yaml keeps optimizer=auto): killed mid-warmup and resumed, the
    # run equals the uninterrupted one
    kw: dict[str, Any] = {"data": "iris", "model": "linear", "epochs": 3, "batch": 16, "nbs": 16,
                          "schedule": "ultralytics", "plots": False, "verbose": False}
    full = lrkit.train(project=str(tmp_path / "full"), **kw)
    killed_run(monkeypatch, lambda: lrkit.train(project=str(tmp_path / "cut"), **kw), nth=2)
    resumed = lrkit.train(resume=str(tmp_path / "cut" / "train"), plots=False, verbose=False)
    assert_same_run(full, resumed, 3)
