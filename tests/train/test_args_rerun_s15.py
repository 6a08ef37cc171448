"""Session 15 (reported by audit s15f): ``lrkit train cfg=<run>/args.yaml`` is documented to train again with the same
settings, but args.yaml recorded ``warmup_bias_lr: 0.1`` where ``optimizer=auto`` (and Prodigy-style optimizers) had
used 0: read back as a given value, it warmed the bias groups from 0.1 (another run), or was refused (Prodigy). And
a seed past ~1.8e13 overflowed the per-epoch worker seed in epoch 1."""

from __future__ import annotations

from pathlib import Path

import yaml

import lrkit

QUIET = {"plots": False, "verbose": False}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    lines = (run_dir / "results.csv").read_text().splitlines()
    head = lines[0].split(",")
    return [{k: v for k, v in zip(head, line.split(",")) if "time" not in k} for line in lines[1:]]


def test_a_run_from_its_own_args_yaml_trains_the_same_run(tmp_path: Path) -> None:
    a = lrkit.train(data="iris", model="mlp", epochs=2, name="a", project=str(tmp_path), **QUIET)
    recorded = yaml.safe_load((a.run_dir / "args.yaml").read_text())
    assert recorded["warmup_bias_lr"] == 0.0  # the value the run used (optimizer=auto zeroes it)
    b = lrkit.train(cfg=str(a.run_dir / "args.yaml"), name="b", project=str(tmp_path), **QUIET)
    assert _rows(a.run_dir) == _rows(b.run_dir)


def test_a_64_bit_seed_trains(tmp_path: Path) -> None:
    r = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, seed=2**63, project=str(tmp_path), **QUIET)
    assert len(r.history) == 1
