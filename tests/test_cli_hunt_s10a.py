"""A demanding user's pass over ``lrkit schedule | train | find`` (session 10a): each test failed before its fix.

* ``lrkit schedule A --compare B`` where one spec gives ``lr0`` (absolute LRs) and the other does not (multipliers of
  the peak) drew 0.1 and 1.0 on one axis labelled "LR multiplier (x peak)": now refused, naming ``--base-lr``; the
  plot itself marks multiplier curves when a caller mixes records.
* the picture's epoch axis came from the first record alone, also when the compared specs have different epochs.
* Ctrl-C in the first epoch of ``lrkit train`` advised ``resume=true`` although nothing was saved (that would resume
  an older run); Ctrl-C in ``lrkit find`` exited 130 with no word at all.
* ``-h`` was "No such option" on every command, and ``lrkit train help`` answered "Did you mean 'schedule'?".
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lrkit.cli.app import build_app
from lrkit.plots.schedule import plot_schedule
from lrkit.schedules import from_spec


@pytest.fixture
def app() -> typer.Typer:
    return build_app()


def _invoke(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, list(args))


# ------------------------------------------------------------------------ --compare: one scale per axis
def test_compare_refuses_absolute_lrs_beside_multipliers(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "mix.png"
    res = _invoke(app, "schedule", "cosine lr0=0.1", "-t", "100", "--compare", "cosine lrf=0.1", "-o", str(out))
    assert res.exit_code == 2, res.output
    assert "'cosine lrf=0.1' gives no peak LR" in res.output and "--base-lr" in res.output
    assert not out.exists() and "max " not in res.output  # nothing drawn, no table printed
    # the order does not matter, and --base-lr (or an lr0 in every spec) makes it one scale
    flipped = _invoke(app, "schedule", "cosine lrf=0.1", "-t", "100", "--compare", "cosine lr0=0.1", "--no-plot")
    assert flipped.exit_code == 2 and "'cosine lrf=0.1' gives no peak LR" in flipped.output
    fixed = _invoke(app, "schedule", "cosine lr0=0.1", "-t", "100", "--compare", "cosine lrf=0.1", "--base-lr",
                    "0.05", "-o", str(out))
    assert fixed.exit_code == 0, fixed.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    # multipliers only (no peak anywhere) stay allowed: one scale, the multiplier's
    rel = _invoke(app, "schedule", "cosine lrf=0.2", "-t", "100", "--compare", "linear lrf=0.2", "--no-plot")
    assert rel.exit_code == 0, rel.output


def test_plot_marks_the_multiplier_curves_when_records_mix_scales() -> None:
    absolute = from_spec("cosine lr0=0.1", total_steps=50).record()
    relative = from_spec("cosine lrf=0.1", total_steps=50).record()
    assert absolute["absolute"] and not relative["absolute"]
    fig = plot_schedule([absolute, relative])
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels == ["cosine lr0=0.1", "cosine lrf=0.1 (x peak)"]
    assert fig.axes[0].get_ylabel() == "LR or multiplier (x peak)"
    same = plot_schedule([absolute, absolute])
    assert same.axes[0].get_ylabel() == "learning rate"
    assert [t.get_text() for lg in same.legends for t in lg.get_texts()] == ["cosine lr0=0.1"] * 2


def _epoch_axes(fig: Any) -> list[Any]:
    return [c for ax in fig.axes for c in [ax, *ax.child_axes] if c.get_xlabel() == "epoch"]


def test_epoch_axis_only_when_every_record_has_the_same_epoch() -> None:
    ten = from_spec("cosine lr0=0.1 epochs=10 steps_per_epoch=10").record()
    twenty = from_spec("cosine lr0=0.1 epochs=5 steps_per_epoch=20").record()
    steps = from_spec("cosine lr0=0.1", total_steps=100).record()
    assert len(_epoch_axes(plot_schedule([ten, ten]))) == 1
    assert _epoch_axes(plot_schedule([ten, twenty])) == []  # 100 steps are 10 epochs of one and 5 of the other
    assert _epoch_axes(plot_schedule([ten, steps])) == []


# ------------------------------------------------------------------------ Ctrl-C
_MODEL = """import torch


class Net(torch.nn.Module):
    def __init__(self, in_features, num_outputs):
        super().__init__()
        self.fc = torch.nn.Linear(in_features, num_outputs)
        self.trained = self.validated = False

    def forward(self, x):
        if not self.training:
            self.validated = self.trained  # a validation after training steps: an epoch is done
        elif self.validated or {at_once}:  # the first training step (at once), or the first of epoch 2
            raise KeyboardInterrupt
        else:
            self.trained = True
        return self.fc(x)


def make(in_features, num_outputs):
    return Net(in_features, num_outputs)
"""


def _train_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at_once: bool) -> Any:
    name = f"ctrlc_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(_MODEL.format(at_once=at_once))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        return _invoke(build_app(), "train", "data=iris", f"model={name}:make", "epochs=3", "lr0=0.01",
                       "plots=false", "verbose=false")
    finally:
        sys.modules.pop(name, None)


def test_ctrl_c_in_the_first_epoch_says_nothing_was_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _train_interrupted(tmp_path, monkeypatch, at_once=True)
    assert res.exit_code == 130, res.output
    assert "interrupted before the first epoch finished: nothing was saved" in res.output
    assert "resume" not in res.output  # resume=true would pick up an older run, or fail
    assert not (tmp_path / "runs").exists()


def test_ctrl_c_after_an_epoch_still_gives_the_resume_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _train_interrupted(tmp_path, monkeypatch, at_once=False)
    assert res.exit_code == 130, res.output
    assert f"resume with: lrkit train resume={Path('runs', 'train', 'last.pt')}" in res.output  # its own last.pt (s13f)
    assert (tmp_path / "runs" / "train" / "last.pt").is_file()  # the hint points at something real


def test_ctrl_c_in_lrkit_find_says_so_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lrkit.cli.find as find_cli

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(find_cli, "find_lr", interrupted)
    out = tmp_path / "f"
    res = _invoke(build_app(), "find", "--num-steps", "10", "--out", str(out))
    assert res.exit_code == 130, res.output
    assert "interrupted — the range test stopped before it finished; nothing was written" in res.output
    assert not out.exists()


# ------------------------------------------------------------------------ -h and `lrkit train help`
@pytest.mark.parametrize("command", ["schedule", "train", "find"])
def test_dash_h_is_help_on_every_command(app: typer.Typer, command: str) -> None:
    long = _invoke(app, command, "--help")
    short = _invoke(app, command, "-h")
    assert long.exit_code == short.exit_code == 0, short.output
    assert short.output == long.output and f"Usage: lrkit {command}" in short.output


def test_train_help_word_prints_the_help(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = _invoke(app, "train", "help")
    assert res.exit_code == 0, res.output
    assert res.output == _invoke(app, "train", "--help").output
    assert "Did you mean" not in res.output and not (tmp_path / "runs").exists()
    later = _invoke(app, "train", "data=iris", "-h")  # -h among keys: the help, nothing trained
    assert later.exit_code == 0 and "Keys (name=default: meaning)" in later.output
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------ --base-lr that changes nothing
def test_an_unused_base_lr_is_named_on_stderr(app: typer.Typer) -> None:
    res = CliRunner().invoke(app, ["schedule", "cosine lr0=0.1", "-t", "3", "--base-lr", "0.2", "--json"])
    assert res.exit_code == 0, res.output
    assert "--base-lr 0.2 is not used: 'cosine lr0=0.1' gives its own peak LR" in res.stderr
    assert res.stdout.startswith('{"lr": [0.1, ')  # the spec's lr0, and the JSON stays clean
    used = CliRunner().invoke(app, ["schedule", "cosine lrf=0.1", "-t", "3", "--base-lr", "0.2", "--compare",
                                    "cosine lr0=0.2", "--no-plot"])
    assert used.exit_code == 0 and "not used" not in used.output
