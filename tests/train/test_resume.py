"""Kill a run, resume it, and get exactly the run that was never interrupted; re-plan on a new epoch count."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.data import TensorDataset

from _helpers import noisy_label_pairs, wide_mlp
from lrkit.train import train

QUIET = {"verbose": False, "plots": False}
TIMING = ("time", "epoch_time")


def _data() -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).long() + (x[:, 3] > 0.8).long()
    return TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:])


def _model() -> torch.nn.Module:
    # dropout draws from the global torch RNG, so an exact resume must restore it
    torch.manual_seed(0)  # the same initial weights in every run
    return torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 3))


def _kill_at(step: int):
    def progress(**kw):
        if kw.get("event") == "step" and kw["step"] == step:
            raise KeyboardInterrupt

    return progress


def _same_run(a, b) -> None:
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert len(a.history) == len(b.history)
    for ra, rb in zip(a.history, b.history):
        assert {k: v for k, v in ra.items() if k not in TIMING} == {k: v for k, v in rb.items() if k not in TIMING}


@pytest.mark.parametrize("optimizer", ["SGD", "AdamW"])
def test_interrupted_run_resumes_bit_exact(tmp_path, optimizer):
    common = dict(data=_data(), epochs=4, batch=16, nbs=32, lr0=0.05 if optimizer == "SGD" else 0.005,
                  optimizer=optimizer, warmup_epochs=1, seed=3, project=tmp_path, **QUIET)
    full = train(_model(), name="full", **common)
    spe = full.steps_per_epoch
    with pytest.raises(KeyboardInterrupt):
        train(_model(), name="cut", progress=_kill_at(2 * spe + 2), **common)  # killed mid epoch 3
    cut = tmp_path / "cut"
    assert torch.load(cut / "last.pt", weights_only=True)["epoch"] == 2
    assert len((cut / "results.csv").read_text().strip().splitlines()) == 3  # header + 2 finished epochs
    assert (cut / "events.json").exists()
    # a Python model and dataset are passed again; everything else comes from the checkpoint
    resumed = train(_model(), data=_data(), resume=cut / "last.pt", **QUIET)
    assert resumed.run_dir == cut
    _same_run(full, resumed)


def test_resume_true_finds_the_latest_run_of_builtins(tmp_path):
    common = dict(data="wine", model="mlp", epochs=3, lr0=0.01, optimizer="SGD", seed=1, project=tmp_path, **QUIET)
    full = train(name="full", **common)
    with pytest.raises(KeyboardInterrupt):
        train(name="cut", progress=_kill_at(full.steps_per_epoch + 1), **common)
    resumed = train(resume=True, project=tmp_path, **QUIET)  # data, model, everything from cut/last.pt
    assert resumed.run_dir == tmp_path / "cut"
    _same_run(full, resumed)


def test_real_process_kill_then_resume(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, torch
        torch.set_num_threads(1)
        from lrkit.train import train
        def progress(**kw):
            if kw.get("event") == "step" and kw["step"] == 12:
                os.kill(os.getpid(), signal.SIGKILL)   # no cleanup, no except/finally: a real kill
        train(data="synthetic-classification", model="mlp", epochs=3, batch=100, lr0=0.01, optimizer="SGD",
              project={str(tmp_path)!r}, name="killed", verbose=False, plots=False, progress=progress)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -9, proc.stderr
    killed = tmp_path / "killed"
    assert torch.load(killed / "last.pt", weights_only=True)["epoch"] == 1  # 8 steps per epoch: died in epoch 2
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")]
    full = train(data="synthetic-classification", model="mlp", epochs=3, batch=100, lr0=0.01, optimizer="SGD",
                 project=tmp_path, name="full", **QUIET)
    assert full.steps_per_epoch == 8
    resumed = train(resume=killed, project=tmp_path, **QUIET)
    _same_run(full, resumed)


def test_resume_with_more_epochs_replans_without_a_jump(tmp_path):
    lrs: dict[str, list[float]] = {"full": [], "resumed": []}

    def record(key):
        def progress(**kw):
            if kw.get("event") == "step":
                lrs[key].append(kw["lr"])
        return progress

    common = dict(data="iris", model="linear", lr0=0.1, lrf=0.01, optimizer="SGD", warmup_epochs=1,
                  project=tmp_path, **QUIET)
    train(epochs=4, name="full", progress=record("full"), **common)
    spe = len(lrs["full"]) // 4
    with pytest.raises(KeyboardInterrupt):
        train(epochs=4, name="cut", progress=_kill_at(2 * spe + 1), **common)
    r = train(resume=tmp_path / "cut", epochs=8, progress=record("resumed"), **QUIET)
    assert r.epochs_run == 8 and r.total_steps == 8 * spe
    resumed = lrs["resumed"]
    assert len(resumed) == 6 * spe
    assert resumed[0] == pytest.approx(lrs["full"][2 * spe], rel=1e-12)  # the LR where it stopped: no jump
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(resumed))  # still decaying, now over 8 epochs
    # the remaining 2 of 4 epochs stretch over 6: the decay per step is a third of the original plan's
    slope_old = lrs["full"][2 * spe + 1] - lrs["full"][2 * spe]
    assert resumed[1] - resumed[0] == pytest.approx(slope_old * (4 - 2) / (8 - 2), rel=1e-9)
    # Ultralytics' linear decay on the warped clock: the last step (8*spe - 1) maps to old step c + (t - c) / 3
    c = 2 * spe
    x = (c + (8 * spe - 1 - c) * (4 - 2) / (8 - 2)) / spe  # in old epochs
    assert resumed[-1] == pytest.approx(0.1 * ((1 - x / 4) * (1 - 0.01) + 0.01), rel=1e-9)
    assert r.history[-1]["lr/all/decay"] == resumed[-1]
    # args.yaml says what the run now is (it said epochs: 4 before the resume)
    import yaml

    args = yaml.safe_load((tmp_path / "cut" / "args.yaml").read_text())
    assert args["epochs"] == 8 and args["resolved"]["total_steps"] == 8 * spe


@pytest.mark.parametrize(("epochs", "how"), [(3, "shrinks"), (6, "stretches")])
def test_the_replan_log_says_whether_the_rest_shrinks_or_stretches(tmp_path, capsys, epochs, how):
    # Bug: a resume with fewer epochs logged "the rest stretches" although the rest of the run got shorter.
    common = dict(data="iris", model="linear", lr0=0.1, optimizer="SGD", warmup_epochs=0, project=tmp_path, **QUIET)
    spe = train(epochs=1, name="probe", **common).steps_per_epoch
    with pytest.raises(KeyboardInterrupt):
        train(epochs=4, name="cut", progress=_kill_at(2 * spe + 1), **common)
    capsys.readouterr()
    r = train(resume=tmp_path / "cut", epochs=epochs, verbose=True, plots=False)
    said = capsys.readouterr().out
    assert r.epochs_run == epochs
    assert f"from {4 * spe} to {epochs * spe} optimizer steps (the rest {how}; the LR does not jump)" in said, said


def test_resume_errors(tmp_path):
    common = dict(data="iris", model="linear", epochs=2, lr0=0.01, project=tmp_path, **QUIET)
    done = train(name="done", **common)
    with pytest.raises(ValueError, match="already finished"):
        train(resume=done.run_dir, **QUIET)
    with pytest.raises(ValueError, match=r"lr0=0.5 differs from the run being resumed \(lr0=0.01\)"):
        train(resume=done.run_dir, lr0=0.5, epochs=3, **QUIET)
    with pytest.raises(ValueError, match="no checkpoint"):
        train(resume=tmp_path / "nope", **QUIET)
    with pytest.raises(ValueError, match="found no last.pt"):
        train(resume=True, project=tmp_path / "empty", **QUIET)
    py = train(torch.nn.Linear(6, 3), data=_data()[0], epochs=1, lr0=0.01, project=tmp_path, name="py", **QUIET)
    with pytest.raises(ValueError, match="pass the same data= again"):
        train(torch.nn.Linear(6, 3), resume=py.run_dir, epochs=2, **QUIET)
    longer = train(resume=done.run_dir, epochs=3, **QUIET)  # a finished run extended: holds the final LR
    assert longer.epochs_run == 3


def test_resume_of_a_finished_run_says_only_why_it_cannot(tmp_path, capsys):
    done = train(data="iris", model="linear", epochs=1, lr0=0.01, warmup_epochs=3, project=tmp_path, **QUIET)
    capsys.readouterr()
    with pytest.raises(ValueError, match="already finished"):
        train(resume=done.run_dir, verbose=True, plots=False)
    said = capsys.readouterr().out
    assert "resuming" not in said and "warmup" not in said  # no "resuming at epoch 2/1", no repeated plan notes


def test_resume_guards_what_cannot_be_saved(tmp_path):
    data = _data()
    def step_fn(model, batch):
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    r = train(_model(), data=data, epochs=2, lr0=0.01, step_fn=step_fn, project=tmp_path, name="s", **QUIET)
    with pytest.raises(ValueError, match="trained with step_fn"):
        train(_model(), data=data, resume=r.run_dir, epochs=3, **QUIET)
    with pytest.raises(ValueError, match="pass the same model"):
        train(data=data, resume=r.run_dir, epochs=3, step_fn=step_fn, **QUIET)
    again = train(_model(), data=data, resume=r.run_dir, epochs=3, step_fn=step_fn, project="elsewhere", **QUIET)
    assert again.epochs_run == 3 and again.run_dir == r.run_dir  # project/name never move a resumed run
    b = train(data="iris", model="linear", epochs=1, lr0=0.01, project=tmp_path, name="b", **QUIET)
    with pytest.raises(ValueError, match="model='mlp' differs from the run being resumed"):
        train(resume=b.run_dir, model="mlp", epochs=2, **QUIET)


def test_resume_with_a_python_object_inside_a_dict_key(tmp_path):
    seen: list = []
    mon = {"on_event": seen.append, "on_divergence": "warn"}
    common = dict(data="iris", model="linear", lr0=0.01, optimizer="SGD", project=tmp_path, **QUIET)
    r = train(epochs=1, name="m", monitor=mon, **common)
    # the checkpoint can only name the hook ("<builtin_function_or_method>"): resuming without it must not hand
    # that string to the Monitor as a hook (a TypeError at the first event) but ask for it again
    with pytest.raises(ValueError, match="pass the same monitor= again"):
        train(resume=r.run_dir, epochs=2, **QUIET)
    longer = train(resume=r.run_dir, epochs=2, monitor=mon, **QUIET)  # the same setting passed again is accepted
    assert longer.epochs_run == 2
    with pytest.raises(ValueError, match="monitor=.* differs from the run being resumed"):
        train(resume=r.run_dir, epochs=3, monitor={"on_event": seen.append, "on_divergence": "stop"}, **QUIET)


def test_resume_is_bit_exact_through_monitor_rollbacks(tmp_path):
    """The monitor's healthy snapshot and its timers travel in last.pt: a rollback after the resume point goes back
    to the same state as in the uninterrupted run."""
    common = dict(data="iris", model="mlp", epochs=5, lr0=5.0, optimizer="SGD", monitor="rollback", batch=16,
                  seed=1, project=tmp_path, **QUIET)
    full = train(name="full", **common)
    spe = full.steps_per_epoch
    late = [e for e in full.events if e["step"] >= 2 * spe and e["action"] == "rollback"]
    assert late, "the setting must roll back after the resume point for this test to mean anything"
    with pytest.raises(KeyboardInterrupt):
        train(name="cut", progress=_kill_at(2 * spe + 2), **common)  # killed mid epoch 3
    resumed = train(resume=tmp_path / "cut" / "last.pt", **QUIET)
    assert resumed.events == full.events
    _same_run(full, resumed)


def test_a_rollback_keeps_the_schedule_on_the_runs_clock(tmp_path):
    """The monitor rewinds model, optimizer and scheduler to its snapshot; lrkit.train's budget is fixed in epochs, so
    the schedule is put back on the run's clock (with the back-off kept) and still anneals to its end on time."""
    r = train(data="iris", model="mlp", epochs=5, lr0=5.0, optimizer="SGD", monitor="rollback", batch=16, seed=1,
              project=tmp_path, **QUIET)
    rollbacks = [e for e in r.events if e["action"] == "rollback"]
    assert rollbacks, "the setting must roll back for this test to mean anything"
    ck = torch.load(r.run_dir / "last.pt", weights_only=True)
    assert ck["scheduler"]["last_step"] == r.total_steps
    scale = ck["scheduler"]["lr_multiplier"]
    assert scale == pytest.approx(0.3 ** len(rollbacks))
    # the last epoch's LR is the schedule's value at the run's last step, times the back-off
    from lrkit import schedules

    plan = schedules.ultralytics(lr0=5.0, lrf=0.01, cos_lr=False, epochs=5, steps_per_epoch=r.steps_per_epoch,
                                 warmup_epochs=3, warmup_bias_lr=0.1, warmup_momentum=0.8, momentum=0.937)
    assert r.history[-1]["lr/all/decay"] == pytest.approx(plan.lr(r.total_steps - 1) * scale, rel=1e-9)


def test_a_rising_validation_loss_rolls_back_to_the_best_epoch_and_resumes_bit_exact(tmp_path):
    """lrkit.train gives the monitor every epoch's validation loss: at a too-high LR the loss rises above its best,
    the run returns to the best epoch's weights with the LR x0.1 (the schedule keeps the run's clock), and a run
    killed after that and resumed ends bit for bit like the uninterrupted one."""
    common = dict(data=noisy_label_pairs(), epochs=12, lr0=0.05, optimizer="Adam", batch=16, warmup_epochs=0,
                  patience=0, project=tmp_path, **QUIET)
    full = train(wide_mlp(), name="full", **common)
    val = [e for e in full.events if e["check"] == "val_rising"]
    assert val and all(e["action"] == "rollback" for e in val)
    first = val[0]
    best_epoch = min(range(round(first["epoch"])), key=lambda i: full.history[i]["val_loss"])
    assert first["values"]["best"] == pytest.approx(full.history[best_epoch]["val_loss"])
    ck = torch.load(full.run_dir / "last.pt", weights_only=True)
    assert ck["scheduler"]["last_step"] == full.total_steps  # never rewound
    assert ck["scheduler"]["lr_multiplier"] == pytest.approx(0.1 ** len(val))
    assert "best_val" in ck["monitor"]  # its snapshot travels with the run
    quiet = train(wide_mlp(), name="quiet", **{**common, "monitor": {"on_overfit": None}})
    assert not [e for e in quiet.events if e["check"] == "val_rising"]
    assert quiet.history[-1]["val_loss"] > full.history[-1]["val_loss"]  # the rollback helped this run

    spe = full.steps_per_epoch
    after = [e for e in val if e["step"] >= 3 * spe]
    assert after, "a validation rollback must happen after the resume point for this test to mean anything"
    with pytest.raises(KeyboardInterrupt):
        train(wide_mlp(), name="cut", progress=_kill_at(3 * spe + 2), **common)
    resumed = train(wide_mlp(), resume=tmp_path / "cut" / "last.pt", data=noisy_label_pairs(), **QUIET)
    assert resumed.events == full.events
    _same_run(full, resumed)
