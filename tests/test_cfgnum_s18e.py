"""Session 18: a cfg file's numbers as YAML 1.1 leaves them (``1e3`` without a dot is a string there)."""
from __future__ import annotations

from pathlib import Path

import pytest

from lrkit._config import TrainConfig, load_yaml_mapping, tokens_to_kwargs


def _cfg(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return p


def test_exponent_without_dot_is_a_number_as_the_token_is(tmp_path: Path) -> None:
    p = _cfg(tmp_path, "epochs: 1e1\nlr0: 1e-3\nbatch: 3e1\n")
    from_file = TrainConfig.from_dict(load_yaml_mapping(p)) if hasattr(TrainConfig, "from_dict") else None
    kw = tokens_to_kwargs([f"cfg={p}"])
    assert kw["epochs"] == 10 and kw["lr0"] == 0.001 and kw["batch"] == 30
    cfg = TrainConfig(**kw)
    assert cfg.epochs == 10 and type(cfg.epochs) is int
    assert cfg.batch == 30 and cfg.lr0 == 0.001
    assert from_file is None or from_file.epochs == 10
    # as the same tokens read
    tok = TrainConfig(**tokens_to_kwargs(["epochs=1e1", "lr0=1e-3", "batch=3e1"]))
    assert (tok.epochs, tok.lr0, tok.batch) == (cfg.epochs, cfg.lr0, cfg.batch)


def test_refused_exponent_prints_as_written(tmp_path: Path) -> None:
    p = _cfg(tmp_path, "epochs: -1e1\n")
    with pytest.raises(ValueError, match=r"epochs=-1e1 must be an integer >= 1"):
        TrainConfig(**tokens_to_kwargs([f"cfg={p}"]))


def test_quoted_number_and_text_keys_stay_text(tmp_path: Path) -> None:
    p = _cfg(tmp_path, "name: 1e3\nproject: '2e2'\nepochs: '1e1'\n")
    kw = load_yaml_mapping(p)
    assert kw["name"] == "1e3" and kw["project"] == "2e2"
    assert kw["epochs"] == "1e1"  # quoted: the user wrote a string; the check then reads it as the token would
    with pytest.raises(ValueError, match=r"epochs='1e1' must be an integer"):
        TrainConfig(**kw)
