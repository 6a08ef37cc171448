"""lrkit.train keys added in session 13: ``head=`` for backbone_lr_scale (CLI too), ``amp="bf16"|"fp16"``, and
``optimizer="auto"`` turning Ultralytics' bias warmup off, as Ultralytics' own optimizer=auto does."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrkit
from lrkit._config import TrainConfig

QUIET = {"verbose": False, "plots": False, "device": "cpu"}


def _bias_and_decay_lr(r: lrkit.TrainResults) -> tuple[float, float]:
    row = r.history[0]
    return row["lr/all/bias"], row["lr/all/decay"]


def test_optimizer_auto_warms_the_bias_groups_up_with_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    r = lrkit.train(data="digits", model="mlp", epochs=2, lr0=0.002, project=tmp_path, name="auto", **{
        **QUIET, "verbose": True})
    assert r.optimizer == "AdamW"
    bias, decay = _bias_and_decay_lr(r)
    assert bias == pytest.approx(decay)  # from 0.1 (Ultralytics' bias warmup) it was 25x above: 0.0529 vs 0.0021
    assert "optimizer=auto: warmup_bias_lr=0" in " ".join(capsys.readouterr().out.split())
    # asked for, or with an optimizer named: Ultralytics' bias warmup as before
    for kw in ({"warmup_bias_lr": 0.1}, {"optimizer": "AdamW"}):
        r = lrkit.train(data="digits", model="mlp", epochs=2, lr0=0.002, project=tmp_path, **kw, **QUIET)
        bias, decay = _bias_and_decay_lr(r)
        assert bias > 5 * decay, kw


def test_head_key_takes_the_head_by_name_in_python_and_on_the_command_line(tmp_path: Path) -> None:
    assert TrainConfig(head="pre_classifier, classifier", backbone_lr_scale=0.1).head == [
        "pre_classifier", "classifier"]
    cfg = TrainConfig.from_tokens(["head=pre_classifier,classifier", "backbone_lr_scale=0.1"])
    assert cfg.head == ["pre_classifier", "classifier"]
    for bad in ("", ",", 3, ["a", ""]):
        with pytest.raises(ValueError, match=r"head=.* must be the head's module name or a list of them"):
            TrainConfig(head=bad, backbone_lr_scale=0.1)
    r = lrkit.train(data="iris", model="mlp", epochs=1, lr0=0.01, backbone_lr_scale=0.1, head="head",
                    optimizer="SGD", project=tmp_path, **QUIET)
    names = {k.split("/")[1] for k in r.history[0] if k.startswith("lr/")}
    assert any(n.startswith("backbone") for n in names) and any(n.startswith("head") for n in names), names
