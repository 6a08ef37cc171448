"""A run killed between two of its per-epoch writes resumes to the uninterrupted run's record: ``last.pt`` is the
commit point, ``best.pt`` after it is repaired from ``last.pt`` on resume, and a finished ``last.pt`` vouches for
``events.json``/``results.png``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import lrkit.train.run as run
from lrkit.train import train

COMMON = {"data": "iris", "model": "mlp", "seed": 0, "verbose": False}


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the trainer catches it as an error."""


def _kill_on(monkeypatch: pytest.MonkeyPatch, name: str, nth: int, attr: str = "save_checkpoint") -> None:
    original = getattr(run, attr)
    seen = {"n": 0}

    def wrapped(path, *args, **kwargs):
        if Path(path).name == name:
            seen["n"] += 1
            if seen["n"] == nth:
                raise _Killed(f"killed before writing {name} #{nth}")
        return original(path, *args, **kwargs)

    monkeypatch.setattr(run, attr, wrapped)


def _best(run_dir: Path) -> dict:
    return torch.load(run_dir / "best.pt", weights_only=True)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_kill_between_last_pt_and_best_pt_leaves_best_pt_to_be_repaired_on_resume(tmp_path, monkeypatch):
    full = train(epochs=3, project=tmp_path, name="full", plots=False, **COMMON)
    metrics = [row["val_accuracy"] for row in full.history]
    assert metrics[1] > metrics[0]  # epoch 2 improves: the second best.pt write is epoch 2's
    with monkeypatch.context() as m:
        _kill_on(m, "best.pt", 2)
        with pytest.raises(_Killed):
            train(epochs=3, project=tmp_path, name="cut", plots=False, **COMMON)
    cut = tmp_path / "cut"
    assert torch.load(cut / "last.pt", weights_only=True)["best_epoch"] == 2
    assert _best(cut)["epoch"] == 1  # the kill left best.pt one best epoch behind last.pt
    resumed = train(resume=cut, verbose=False)
    assert resumed.best_epoch == full.best_epoch
    assert _best(cut)["epoch"] == _best(tmp_path / "full")["epoch"] == full.best_epoch
    assert _same_weights(_best(cut)["model"], _best(tmp_path / "full")["model"])


def test_a_finished_run_killed_before_its_best_pt_is_repaired_by_the_refused_resume(tmp_path, monkeypatch):
    full = train(epochs=2, project=tmp_path, name="full", plots=False, **COMMON)
    assert full.best_epoch == 2
    with monkeypatch.context() as m:
        _kill_on(m, "best.pt", 2)
        with pytest.raises(_Killed):
            train(epochs=2, project=tmp_path, name="cut", plots=False, **COMMON)
    cut = tmp_path / "cut"
    assert torch.load(cut / "last.pt", weights_only=True)["finished"] is True
    with pytest.raises(ValueError, match="already finished"):
        train(resume=cut, verbose=False)
    assert _best(cut)["epoch"] == 2
    assert _same_weights(_best(cut)["model"], _best(tmp_path / "full")["model"])


def test_a_finished_last_pt_vouches_for_events_json_and_results_png(tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _kill_on(m, "events.json", 1, attr="write_events")  # killed while the finished run writes its records
        with pytest.raises(_Killed):
            train(epochs=2, project=tmp_path, name="cut", **COMMON)
    cut = tmp_path / "cut"
    ck = torch.load(cut / "last.pt", weights_only=True)
    assert not ck["finished"] and ck["epoch"] == 1  # the last epoch is not committed: a resume redoes it
    resumed = train(resume=cut, verbose=False)
    assert len(resumed.history) == 2
    assert sorted(os.listdir(cut)) == sorted(run.RUN_FILES)


def test_a_resume_sweeps_the_temporary_files_a_kill_left_mid_write(tmp_path):
    train(epochs=1, project=tmp_path, name="cut", plots=False, **COMMON)
    cut = tmp_path / "cut"
    half = [cut / ".results.png.0123456789ab.tmp", cut / ".best.pt.a1b2c3d4e5f6.tmp"]
    for f in half:
        f.write_bytes(b"half a file")  # what SIGKILL during atomic_write leaves beside the intact old file
    mine = cut / ".notes.txt.0123456789ab.tmp"
    mine.write_bytes(b"a user's file")
    train(resume=cut, epochs=2, plots=False, verbose=False)
    assert not any(f.exists() for f in half)
    assert mine.read_bytes() == b"a user's file"  # only the run's own files' temporaries are removed


def test_resuming_a_run_that_patience_stopped_is_refused_unless_patience_allows_more(tmp_path):
    kw = {"data": "iris", "model": "mlp", "epochs": 12, "patience": 1, "lr0": 0.5, "optimizer": "SGD", "seed": 0,
          "project": tmp_path, "plots": False, "verbose": False}
    stopped = train(**kw)
    assert stopped.stopped_early and len(stopped.history) < 12
    done = len(stopped.history)
    bad = done - stopped.best_epoch
    for again in ({}, {"epochs": 12}, {"epochs": 20}, {"patience": bad}):
        with pytest.raises(ValueError, match=rf"stopped early at epoch {done}: .*patience > {bad}"):
            train(resume=stopped.run_dir, verbose=False, **again)
    assert torch.load(stopped.run_dir / "last.pt", weights_only=True)["epoch"] == done  # nothing trained
    longer = train(resume=stopped.run_dir, patience=0, verbose=False)
    assert len(longer.history) == 12 and not longer.stopped_early


def test_a_changed_lr0_on_resume_names_the_lr_the_run_trained_at(tmp_path):
    first = train(epochs=1, project=tmp_path, plots=False, optimizer="AdamW", **COMMON)
    assert first.lr0_source == "default"
    with pytest.raises(ValueError, match=r"\(lr0=None, which trained at lr0=0\.001 \(default\)\); only .*epochs"):
        train(resume=first.run_dir, epochs=2, lr0=0.1, verbose=False)


def test_resuming_a_run_killed_before_its_first_checkpoint_says_to_start_it_again(tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr("lrkit.train.trainer.shutil.rmtree", lambda *a, **k: None)  # SIGKILL: no cleanup runs
        _kill_on(m, "last.pt", 1)
        with pytest.raises(_Killed):
            train(epochs=2, project=tmp_path, name="cut", plots=False, **COMMON)
    cut = tmp_path / "cut"
    assert (cut / "args.yaml").is_file() and not (cut / "last.pt").exists()
    with pytest.raises(ValueError, match=r"no checkpoint at .*last\.pt: the run in .*cut was stopped before its first "
                                         r"epoch was saved, so there is nothing to resume; start it again \(lrkit "
                                         r"train cfg=.*args\.yaml resume=false\)"):
        train(resume=cut, verbose=False)
