"""Session 35 bug hunt: lrkit.train runs with the training-health Monitor inside them, and resume."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lrkit.train import train

QUIET = {"verbose": False, "plots": False}
TIMING = ("time", "epoch_time")


def _kill_at(step: int):
    def progress(**kw):
        if kw.get("event") == "step" and kw["step"] == step:
            raise KeyboardInterrupt

    return progress


# ------------------------------------------------------------------------------------------ monitor= checked up front
@pytest.mark.parametrize("monitor, words", [
    ({"on_divergnce": "stop"}, "unknown monitor option 'on_divergnce'. Did you mean 'on_divergence'?"),
    ({"backoff": 2}, "backoff=2 must be a number in (0, 1)"),
    ({"on_divergence": "stopp"}, "on_divergence='stopp' is not an action"),
    ({"val_patience": 0}, "val_patience=0 must be None"),
])
def test_a_bad_monitor_option_fails_before_lr0_auto_searches(tmp_path, monkeypatch, capsys, monitor, words):
    """Bug: monitor= options were checked only when the Monitor was built, after the data was loaded, the plan was
    logged and lr0="auto" had run its whole range test: a typo cost the search, and the log read as if the run had
    started. Now every monitor= value is checked before any of that."""
    import lrkit.train.trainer as trainer

    def no_search(self):  # reaching lr0="auto"'s search at all is the bug
        raise AssertionError("lr0='auto' ran before monitor= was checked")

    monkeypatch.setattr(trainer._Trainer, "_choose_lr0", no_search)
    with pytest.raises(ValueError) as info:
        train(data="iris", model="mlp", epochs=3, lr0="auto", monitor=monitor, project=tmp_path, verbose=True,
              plots=False)
    assert words in str(info.value)
    assert "lrkit.train:" not in capsys.readouterr().out  # not the plan of a run that then fails
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("hook", [3, "print"])
def test_a_monitor_on_event_that_is_not_callable_is_refused_up_front(tmp_path, hook):
    """Bug: monitor={"on_event": 3} (as the command line gives it: monitor={on_event: 3}) was accepted and trained
    until the first monitor event, then failed with TypeError: 'int' object is not callable from inside the
    monitor, leaving a half-finished run. It is refused before anything runs, naming the value."""
    with pytest.raises(ValueError, match=r"on_event=.* must be callable") as info:
        train(data="iris", model="mlp", epochs=3, lr0=50.0, optimizer="SGD", monitor={"on_event": hook},
              project=tmp_path, **QUIET)
    assert repr(hook) in str(info.value)
    assert not any(tmp_path.iterdir())


def test_the_cli_names_a_non_callable_on_event_with_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lrkit", "train", "data=iris", "model=mlp", "epochs=2",
                           f"project={tmp_path}", "monitor={on_event: 3}"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "on_event=3 must be callable" in proc.stderr + proc.stdout


def test_a_callable_on_event_still_sees_every_event(tmp_path):
    seen = []
    r = train(data="iris", model="mlp", epochs=3, lr0=50.0, optimizer="SGD", batch=16, seed=1,
              monitor={"on_event": seen.append}, project=tmp_path, **QUIET)
    assert r.events and len(seen) == len(r.events)


# ------------------------------------------------------------------------------------------ last.pt missing
def _finished_run(tmp_path: Path, name: str = "a") -> Path:
    r = train(data="iris", model="mlp", epochs=2, lr0=0.01, project=tmp_path, name=name, **QUIET)
    return r.run_dir


def test_resume_of_a_run_whose_last_pt_is_gone_does_not_call_it_a_killed_start(tmp_path):
    """Bug: a run with finished epochs (results.csv, best.pt) whose last.pt was removed to save space, or not
    copied, was diagnosed as 'stopped before its first epoch was saved' by resume=<run> and resume=True. The
    error now says what is missing and what still works."""
    run = _finished_run(tmp_path)
    (run / "last.pt").unlink()
    for resume in (run, run / "last.pt", True):
        with pytest.raises(ValueError) as info:
            train(resume=resume, project=tmp_path, **QUIET)
        message = str(info.value)
        assert "stopped before its first epoch" not in message, resume
        assert "last.pt" in message and "2 epochs" in message and "best.pt" in message, message
        assert f"lrkit.load_run({str(run)!r})" in message, message


def test_a_new_run_beside_a_run_without_last_pt_is_not_told_of_a_killed_start(tmp_path, capsys):
    run = _finished_run(tmp_path, "exp")
    (run / "last.pt").unlink()
    r = train(data="iris", model="mlp", epochs=1, lr0=0.01, project=tmp_path, name="exp", verbose=True, plots=False)
    assert r.run_dir == tmp_path / "exp2"
    assert "stopped before its first epoch" not in capsys.readouterr().out


@pytest.mark.parametrize("rows", [0, 1])
def test_a_real_killed_start_is_still_named_so(tmp_path, rows):
    """A kill in the first epoch between results.csv and the first last.pt leaves one row: still a killed start."""
    run = _finished_run(tmp_path)
    lines = (run / "results.csv").read_text().splitlines()
    for name in ("last.pt", "best.pt", "results.csv", "events.json", "results.png"):
        (run / name).unlink(missing_ok=True)
    if rows:
        (run / "results.csv").write_text("\n".join(lines[:1 + rows]) + "\n")
    for resume in (run, True):
        with pytest.raises(ValueError, match="stopped before its first epoch was saved"):
            train(resume=resume, project=tmp_path, **QUIET)


# ------------------------------------------------------------------------------------------ resume through rollbacks
def _same_run(a, b) -> None:
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in a.history] == \
        [{k: v for k, v in r.items() if k not in TIMING} for r in b.history]
    assert a.events == b.events and a.lr_scale == b.lr_scale and a.best_epoch == b.best_epoch


@pytest.mark.parametrize("monitor", ["skip", {"max_rollbacks": 2, "backoff": 0.5}])
def test_kills_at_every_epoch_boundary_resume_bit_exact(tmp_path, monitor):
    common = dict(data="iris", model="mlp", epochs=5, lr0=5.0, optimizer="SGD", monitor=monitor, batch=16, seed=1,
                  project=tmp_path, **QUIET)
    full = train(name="full", **common)
    assert full.events, "the setting must raise monitor events for this test to mean anything"
    spe = full.steps_per_epoch
    for epoch in range(1, full.epochs_run):
        name = f"cut{epoch}"
        with pytest.raises(KeyboardInterrupt):
            train(name=name, progress=_kill_at(epoch * spe + 1), **common)
        _same_run(full, train(resume=tmp_path / name, **QUIET))
        shutil.rmtree(tmp_path / name)


# ------------------------------------------------------------------------------------------ rollback after a re-plan
def _resumed_longer(tmp_path: Path, monitor, name: str, **kwargs):
    """iris at lr0=5: its loss spikes at step 4 (epoch 3) and the monitor rolls back to a snapshot from before the
    kill in epoch 2; the run is resumed for 12 epochs instead of 6 (the schedule re-planned from 12 to 24 steps)."""
    common = dict(data="iris", model="mlp", epochs=6, lr0=5.0, optimizer="SGD", monitor=monitor, batch=16, seed=1,
                  project=tmp_path, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        train(name=name, progress=_kill_at(4), **common)
    return train(resume=tmp_path / name, epochs=12, **QUIET, **kwargs)


def test_a_rollback_after_a_resume_with_more_epochs_keeps_the_re_planned_length(tmp_path):
    """Bug: the monitor's snapshot from before the resume held the schedule as first planned (12 steps); the
    rollback restored it, and the run annealed to its final LR at epoch 6, then ran its 6 added epochs at it —
    the re-plan of README's *Resume* ('the rest of the run stretches') was undone. Now the rollback keeps the
    re-planned length: the LR is the plain re-planned run's times the back-off."""
    rolled = _resumed_longer(tmp_path, "rollback", "rolled")
    plain = _resumed_longer(tmp_path, False, "plain")
    after = [e for e in rolled.events if e["action"] == "rollback"]
    assert after and after[0]["step"] >= 2 * rolled.steps_per_epoch, "the rollback must come after the resume point"
    ck = torch.load(rolled.run_dir / "last.pt", weights_only=True)
    assert ck["scheduler"]["total_steps"] == rolled.total_steps == 24
    first = int(after[0]["epoch"])  # the epoch the rollback happened in: from the next one on, LR x 0.3
    ratios = [a["lr/all/decay"] / b["lr/all/decay"] for a, b in zip(rolled.history, plain.history)]
    assert ratios[first:] == pytest.approx([rolled.lr_scale] * (12 - first), rel=1e-9)
    assert rolled.lr_scale == pytest.approx(0.3)


def test_a_re_planned_run_killed_after_its_rollback_resumes_bit_exact(tmp_path):
    once = _resumed_longer(tmp_path, "rollback", "once")
    spe = once.steps_per_epoch
    with pytest.raises(KeyboardInterrupt):
        _resumed_longer(tmp_path, "rollback", "twice", progress=_kill_at(8 * spe + 1))
    _same_run(once, train(resume=tmp_path / "twice", **QUIET))
