"""Session 33b: a bug hunt of ``lrkit.train`` and ``lrkit train`` (failing-first tests for what it fixed)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from lrkit.train import train

QUIET = {"verbose": False, "plots": False}


def _overfitting_pair() -> tuple[TensorDataset, TensorDataset]:
    """Noise labels an MLP memorises within a few epochs: the validation loss rises while the training loss falls."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 20, generator=g), torch.randint(0, 2, (60,), generator=g)
    return TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:])


@pytest.mark.parametrize("epochs", [None, 40])
def test_resuming_a_run_the_monitor_stopped_is_refused_and_trains_nothing(tmp_path, epochs):
    """A run the monitor stopped (``on_overfit="stop"``) is over: resuming it with its own ``epochs`` (or more) trained
    one more step, then "stopped" again with the old stop reason (the monitor's stop flag travels in last.pt), and
    wrote an extra epoch into the finished run's records. It is refused now, naming the stop, and nothing changes."""
    pair = _overfitting_pair()
    stopped = train(model="mlp", data=pair, epochs=30, lr0=0.01, patience=0, monitor={"on_overfit": "stop"},
                    project=tmp_path, name="s", **QUIET)
    assert stopped.stopped_early and "monitor stopped" in stopped.stop_reason
    done = stopped.epochs_run
    assert done < 30
    last = (stopped.run_dir / "last.pt").read_bytes()
    csv = (stopped.run_dir / "results.csv").read_text()
    more = {} if epochs is None else {"epochs": epochs}
    with pytest.raises(ValueError, match=rf"stopped by the monitor at epoch {done}: val_rising .*start a new run"):
        train(data=pair, resume=stopped.run_dir, **more, **QUIET)
    assert (stopped.run_dir / "last.pt").read_bytes() == last  # nothing trained, nothing rewritten
    assert (stopped.run_dir / "results.csv").read_text() == csv


def test_a_nan_in_the_training_data_is_named_as_the_data_not_blamed_on_the_lr(tmp_path, capsys):
    """One NaN in a TensorDataset's inputs makes every batch holding it give a NaN loss. The monitor rolled those steps
    back, and the log ended with `the LR overshot ... the default lr0 was too high for this run; start the next one at
    lr0=2.7e-05` — advice that cannot help (the NaN came at the first step, at LR 0). The log now names the data, and
    the closing note does not send the user after the LR."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    x[5, 1] = float("nan")
    r = train(model="mlp", data=(TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:])), epochs=3,
              project=tmp_path, plots=False, verbose=True)
    log = capsys.readouterr().out
    assert r.events_by_check.get("non_finite")  # the monitor still guards the run
    assert "the training batch at epoch 1" in log and "1 NaN value" in log
    assert "was too high for this run" not in log and "start the next one at lr0" not in log
    assert "NaN in the training data, not the LR" in log


def _labelled_csv(path, labels) -> None:
    g = torch.Generator().manual_seed(len(labels))
    x = torch.randn(len(labels), 3, generator=g)
    path.write_text("a,b,c,label\n" + "".join(f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{lab}\n"
                                             for r, lab in zip(x.tolist(), labels)))


def test_a_data_yaml_whose_val_labels_share_none_with_train_is_refused(tmp_path):
    """train: names (setosa, ...), val: the same classes written as numbers (0, 1, 2). The run took six classes,
    trained on three, and scored every validation sample against a class it never saw: accuracy 0, silently."""
    _labelled_csv(tmp_path / "train.csv", ["setosa", "versicolor", "virginica"] * 10)
    _labelled_csv(tmp_path / "val.csv", [0, 1, 2] * 4)
    (tmp_path / "d.yaml").write_text("train: train.csv\nval: val.csv\n")
    with pytest.raises(ValueError, match=r"d\.yaml: the val file's labels \('0', '1', '2'\) share none with the train "
                                         r"file's \('setosa', 'versicolor', 'virginica'\)"):
        train(model="mlp", data=str(tmp_path / "d.yaml"), epochs=1, project=tmp_path / "runs", **QUIET)
    assert not (tmp_path / "runs").exists()


def test_a_data_yaml_val_label_the_train_file_lacks_is_named_in_the_log(tmp_path, capsys):
    """A val label the train file lacks (a typo, 'Virginica') cannot be predicted: said in the log, with its count."""
    _labelled_csv(tmp_path / "train.csv", ["setosa", "versicolor", "virginica"] * 10)
    _labelled_csv(tmp_path / "val.csv", ["setosa", "versicolor", "Virginica"] * 4)
    (tmp_path / "d.yaml").write_text("train: train.csv\nval: val.csv\n")
    r = train(model="mlp", data=str(tmp_path / "d.yaml"), epochs=1, project=tmp_path / "runs", plots=False)
    log = capsys.readouterr().out
    assert "val label the train file lacks: 'Virginica' (4 of 12 val samples)" in log
    assert r.epochs_run == 1


def test_a_run_of_one_optimizer_step_inside_the_warmup_says_it_trains_nothing(tmp_path, capsys):
    """``epochs=1`` on a split of at most ``nbs`` samples is one optimizer step, the warmup's first, at LR 0: the run
    ended with the weights it started with, and the log said only that the warmup spans the whole run."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 4, generator=g), torch.randint(0, 3, (60,), generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = train(model, data=(TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:])), epochs=1,
              project=tmp_path, plots=False)
    log = capsys.readouterr().out
    assert r.total_steps == 1
    assert all(torch.equal(before[k], v) for k, v in r.model.state_dict().items())  # (what the note is about)
    assert "every optimizer step of this run (1) is at LR 0" in log and "the model does not train" in log
    # a run whose warmup leaves it a step above 0 says nothing of the kind
    train(torch.nn.Sequential(torch.nn.Linear(4, 3)), data=(TensorDataset(x[:48], y[:48]),
                                                             TensorDataset(x[48:], y[48:])),
          epochs=2, project=tmp_path, plots=False)
    assert "is at LR 0" not in capsys.readouterr().out


@pytest.mark.parametrize("key", ["loss_fn", "step_fn", "progress"])
def test_a_python_only_argument_on_the_command_line_or_in_a_cfg_file_is_named_as_such(tmp_path, key):
    """``lrkit train loss_fn=mse`` answered ``Did you mean 'plots'?`` (``step_fn``: ``'seq_len'``, ``progress``:
    ``'workers'``) — a did-you-mean to an unrelated key, for an argument lrkit.train does have, in Python only. So did
    a ``cfg=`` file holding one, from the command line and from Python."""
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    runner = CliRunner()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: iris\n{key}: mse\n")
    for args in (["train", "data=iris", f"{key}=mse", f"project={tmp_path}"], ["train", f"cfg={cfg}"]):
        res = runner.invoke(build_app(), args)
        assert res.exit_code == 2, res.output
        assert f"{key}= is a Python-only argument of lrkit.train" in res.output
        assert "Did you mean" not in res.output
    with pytest.raises(ValueError, match=rf"{key}= is a Python-only argument of lrkit\.train .*cfg="):
        train(cfg=str(cfg), project=tmp_path, **QUIET)
    assert list(tmp_path.iterdir()) == [cfg]  # no run folder


def test_val_and_seq_len_given_beside_a_data_yaml_that_sets_them_are_said_unused(tmp_path, capsys):
    """A data YAML's ``val:`` and ``seq_len:`` win over the keywords (README), but ``val=0.5`` or ``seq_len=8`` passed
    beside it was dropped without a word: a sweep over seq_len= trained the same run each time."""
    _labelled_csv(tmp_path / "train.csv", [0, 1] * 20)
    _labelled_csv(tmp_path / "val.csv", [0, 1] * 5)
    (tmp_path / "d.yaml").write_text("train: train.csv\nval: val.csv\n")
    (tmp_path / "book.txt").write_text("to be or not to be, that is the question. " * 30)
    (tmp_path / "t.yaml").write_text("train: book.txt\nseq_len: 16\nval: 0.25\n")
    r = train(data=str(tmp_path / "d.yaml"), val=0.5, epochs=1, project=tmp_path / "runs", plots=False)
    log = capsys.readouterr().out
    assert r.epochs_run == 1
    assert "val=0.5 (given) is not used: d.yaml sets val: val.csv" in log
    train(data=str(tmp_path / "t.yaml"), seq_len=8, epochs=1, project=tmp_path / "runs", plots=False)
    log = capsys.readouterr().out
    assert "seq_len=8 (given) is not used: t.yaml sets seq_len: 16" in log
    assert log.count("(given) is not used") == 1  # val was not given: nothing is said of it
    train(data=str(tmp_path / "t.yaml"), epochs=1, project=tmp_path / "runs", plots=False)
    assert "(given) is not used" not in capsys.readouterr().out
