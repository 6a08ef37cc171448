"""Loose ends of runs and records: a run killed in its first epoch (a folder holding only ``args.yaml``), who made a
run folder that two runs claim at once (exist_ok), and NaN/±inf losses in a range-test record's JSON."""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import lrkit._utils as utils
import lrkit.train.run as run
from lrkit.cli.app import build_app
from lrkit.finder import FinderResult
from lrkit.train import train
from lrkit.train.trainer import _Trainer

COMMON = {"data": "iris", "model": "mlp", "seed": 0, "verbose": False, "plots": False}


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the trainer catches it as an error."""


def _kill_in_first_epoch(monkeypatch: pytest.MonkeyPatch, project: Path, name: str | None) -> None:
    """Start a run and SIGKILL it before its first last.pt: no cleanup runs, so its folder keeps what it wrote."""
    original = run.save_checkpoint

    def save(path, *args, **kwargs):
        if Path(path).name == "last.pt":
            raise _Killed("killed in the first epoch")
        return original(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr("lrkit.train.trainer.shutil.rmtree", lambda *a, **k: None)
        m.setattr(run, "save_checkpoint", save)
        with pytest.raises(_Killed):
            train(epochs=2, project=project, name=name, **COMMON)


def _killed_in_first_epoch(monkeypatch: pytest.MonkeyPatch, project: Path, name: str) -> Path:
    """A run SIGKILLed before its first last.pt, its folder holding only args.yaml."""
    _kill_in_first_epoch(monkeypatch, project, name)
    folder = project / name
    assert sorted(p.name for p in folder.iterdir()) == ["args.yaml", "results.csv"]
    (folder / "results.csv").unlink()  # killed a moment earlier: only args.yaml (results.csv is not the point)
    return folder


def _touch(path: Path, when: float) -> None:
    os.utime(path, (when, when))


# ------------------------------------------------------------------------ 1. killed in the first epoch
def test_resume_true_does_not_silently_resume_an_older_run_when_the_newest_was_killed_in_its_first_epoch(
        tmp_path, monkeypatch):
    older = train(epochs=1, project=tmp_path, name="older", **COMMON).run_dir
    cut = _killed_in_first_epoch(monkeypatch, tmp_path, "cut")
    _touch(older / "last.pt", 1_000_000)
    _touch(cut / "args.yaml", 2_000_000)  # the user's latest run is the killed one
    before = (older / "last.pt").read_bytes()
    with pytest.raises(ValueError, match=r"resume=True: the newest run under .* is .*cut, which was stopped before its "
                                         r"first epoch was saved .*lrkit train cfg=.*cut.args\.yaml resume=false "
                                         r"project=.* name=cut exist_ok=true; or pass resume=.*older.last\.pt"):
        train(resume=True, project=tmp_path, epochs=2, verbose=False)  # epochs=2 would extend 'older' silently
    assert (older / "last.pt").read_bytes() == before  # nothing trained in the other run


def test_resume_true_with_only_a_killed_first_epoch_names_that_run_and_how_to_start_it(tmp_path, monkeypatch):
    cut = _killed_in_first_epoch(monkeypatch, tmp_path, "cut")
    with pytest.raises(ValueError, match=r"resume=True: the newest run under .* is .*cut, which was stopped before "
                                         r"its first epoch was saved"):
        train(resume=True, project=tmp_path, verbose=False)
    assert sorted(p.name for p in cut.iterdir()) == ["args.yaml"]


def test_resume_true_still_takes_the_newest_last_pt_when_a_killed_start_is_older(tmp_path, monkeypatch):
    cut = _killed_in_first_epoch(monkeypatch, tmp_path, "cut")
    newer = train(epochs=1, project=tmp_path, name="newer", **COMMON).run_dir
    _touch(cut / "args.yaml", 1_000_000)
    r = train(resume=True, project=tmp_path, epochs=2, verbose=False)
    assert r.run_dir == newer and len(r.history) == 2


def test_the_command_the_error_gives_starts_the_run_again_in_its_own_folder(tmp_path, monkeypatch):
    # name=None: the folder is train2, which args.yaml does not name (name: null) — the command must still target it
    train(epochs=1, project=tmp_path, **COMMON)
    _kill_in_first_epoch(monkeypatch, tmp_path, None)
    cut = tmp_path / "train2"
    killed_args = (cut / "args.yaml").read_text()
    res = CliRunner().invoke(build_app(), ["train", f"resume={cut}"])
    assert res.exit_code != 0
    message = " ".join(res.output.split())
    assert f"start it again (lrkit train cfg={cut / 'args.yaml'} resume=false) in a new folder" in message
    command = message.split("start it again in the same folder: ", 1)[1].split(" (its args.yaml", 1)[0]
    argv = shlex.split(command)
    assert argv[:2] == ["lrkit", "train"]
    res = CliRunner().invoke(build_app(), [*argv[1:], "verbose=false"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train", "train2"]  # no train3
    assert torch.load(cut / "last.pt", weights_only=True)["epoch"] == 2
    assert yaml.safe_load((cut / "args.yaml").read_text())["epochs"] == 2
    aside = [p for p in cut.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and (aside[0] / "args.yaml").read_text() == killed_args  # the killed run's record kept


def test_a_plain_rerun_over_a_killed_first_epoch_says_where_it_went_and_how_to_reuse_the_folder(
        tmp_path, monkeypatch, capsys):
    _killed_in_first_epoch(monkeypatch, tmp_path, "cut")
    capsys.readouterr()
    r = train(epochs=1, project=tmp_path, name="cut", **{**COMMON, "verbose": True})
    assert r.run_dir == tmp_path / "cut2"
    out = " ".join(capsys.readouterr().out.split())
    assert f"{tmp_path / 'cut'} holds a run that was stopped before its first epoch was saved" in out
    assert "this run is in " + str(tmp_path / "cut2") in out and "exist_ok=True" in out


# ------------------------------------------------------------------------ 2. who made the run folder
def test_a_run_folder_another_process_made_first_is_never_removed_as_ours(tmp_path, monkeypatch):
    base = tmp_path / "shared"
    real_increment = utils.increment_dir

    def another_process_wins(path, *, exist_ok=False):
        chosen = real_increment(path, exist_ok=exist_ok)
        if Path(path) == base and not base.exists():  # between any look at the name and our mkdir
            base.mkdir()
            (base / "theirs.txt").write_text("the other run's file")
        return chosen

    def fails(self, epoch):
        raise RuntimeError("a bad first epoch")

    monkeypatch.setattr(utils, "increment_dir", another_process_wins)
    monkeypatch.setattr(_Trainer, "_train_epoch", fails)
    with pytest.raises(RuntimeError, match="a bad first epoch"):
        train(epochs=1, project=tmp_path, name="shared", exist_ok=True, **COMMON)
    assert (base / "theirs.txt").read_text() == "the other run's file"
    assert sorted(p.name for p in base.iterdir()) == ["theirs.txt"]  # our args.yaml went again, theirs stays


def test_a_run_folder_this_run_made_is_still_removed_when_its_first_epoch_fails(tmp_path, monkeypatch):
    def fails(self, epoch):
        raise RuntimeError("a bad first epoch")

    monkeypatch.setattr(_Trainer, "_train_epoch", fails)
    with pytest.raises(RuntimeError):
        train(epochs=1, project=tmp_path / "a" / "b", name="mine", exist_ok=True, **COMMON)
    assert list(tmp_path.iterdir()) == []  # the run folder and the parents it made


def test_claim_dir_created_reports_only_what_its_own_mkdir_made(tmp_path, monkeypatch):
    folder, made = utils.claim_dir_created(tmp_path / "p" / "q" / "run", exist_ok=True)
    assert made == [folder, tmp_path / "p" / "q", tmp_path / "p"]
    assert utils.claim_dir_created(folder, exist_ok=True) == (folder, [])
    real_mkdir = Path.mkdir

    def raced(self, *args, **kwargs):  # another process makes the folder just before our mkdir
        if self == tmp_path / "raced" and not self.exists():
            real_mkdir(self)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", raced)
    assert utils.claim_dir_created(tmp_path / "raced", exist_ok=True) == (tmp_path / "raced", [])
    assert utils.claim_dir_created(tmp_path / "new", exist_ok=False) == (tmp_path / "new", [tmp_path / "new"])


# ------------------------------------------------------------------------ 3. NaN and ±inf in lr_find.json
def _curve(tail: list[float]) -> FinderResult:
    lrs = [10 ** (-5 + 0.25 * i) for i in range(12 + len(tail))]
    losses = [2.0 - 0.1 * i for i in range(12)] + tail
    return FinderResult(lrs=lrs, losses=losses, stop_reason="non-finite", start_lr=1e-5, end_lr=10.0, num_steps=40)


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_nan_and_both_infinities_round_trip_distinctly_through_strict_json(tmp_path):
    r = _curve([float("nan"), float("inf"), float("-inf"), 1.0])
    path = r.to_json(tmp_path / "lr_find.json")
    text = path.read_text()
    d = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))  # strict JSON only
    assert d["losses"][12:15] == [None, None, None]  # readers that take null as "no finite loss" still can
    back = FinderResult.from_json(path)
    assert all(_same_float(a, b) for a, b in zip(back.losses, r.losses)), back.losses[12:]
    assert math.isnan(back.losses[12]) and back.losses[13] == math.inf and back.losses[14] == -math.inf
    assert json.loads(json.dumps(back.to_dict())) == d  # the same record again


def test_an_older_record_with_nulls_still_loads_them_as_nan(tmp_path):
    r = _curve([float("inf"), float("-inf")])
    d = r.to_dict()
    d.pop("nonfinite_losses", None)  # what the code before this fix wrote
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d, indent=2))
    back = FinderResult.from_json(path)
    assert math.isnan(back.losses[-1]) and math.isnan(back.losses[-2])


@pytest.mark.parametrize("bad, match", [
    ({"inf": [0]}, r"nonfinite_losses\['inf'\]\[0\]=0: losses\[0\] is 2\.0, not null"),
    ({"inf": [99]}, r"nonfinite_losses\['inf'\]\[0\]=99: .*index into losses \(0\.\.13\)"),
    ({"+inf": [12]}, r"unknown nonfinite_losses kind '\+inf'.*Valid: -inf, inf, nan"),
    ({"inf": 12}, r"nonfinite_losses\['inf'\]=12: .*list of indices"),
    ([12], r"nonfinite_losses=\[12\]: .*mapping"),
])
def test_a_hand_edited_nonfinite_losses_field_is_named(tmp_path, bad, match):
    d = _curve([float("inf"), float("-inf")]).to_dict()
    d["nonfinite_losses"] = bad
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=match):
        FinderResult.from_json(path)


# ------------------------------------------------------------------------ hunt: resume=True with a name
def test_resume_true_with_a_name_resumes_that_run_not_the_newest_other_one(tmp_path):
    mine = train(epochs=1, project=tmp_path, name="mine", **COMMON).run_dir
    other = train(epochs=1, project=tmp_path, name="other", **COMMON).run_dir
    _touch(mine / "last.pt", 1_000_000)
    _touch(other / "last.pt", 2_000_000)  # another run saved more recently
    before = (other / "last.pt").read_bytes()
    r = train(resume=True, project=tmp_path, name="mine", epochs=2, verbose=False)
    assert r.run_dir == mine and len(r.history) == 2
    assert (other / "last.pt").read_bytes() == before  # the other run was not extended
    with pytest.raises(ValueError, match=r"resume=True found no last\.pt: it searches project=.*, name='nothere' for "
                                         r"the newest one, but .*nothere does not exist"):
        train(resume=True, project=tmp_path, name="nothere", verbose=False)
