"""Usability fixes of lrkit.train: bare CLI keys, freeze by name, (N, 1) class targets, target= where it does not
apply, float64 data, warmup longer than a short run, recursive resume=True, exist_ok over an earlier run."""

from __future__ import annotations

import math
import os
import re
import time

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from lrkit._config import TrainConfig
from lrkit.train import train
from lrkit.train.run import find_resume_checkpoint
from lrkit.train.tasks import task_spec

QUIET = {"verbose": False, "plots": False}


def _blobs(n: int = 120, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian blobs: float32 inputs, int64 class indices of shape (n,)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, d, generator=g) + 2.0 * torch.nn.functional.one_hot(y, d).float()
    return x, y


def _lr_columns(history: list[dict]) -> list[list[float]]:
    return [[v for k, v in row.items() if k.startswith("lr/")] for row in history]


# ------------------------------------------------------------------------------------------- 1. bare CLI keys
def test_a_bare_valid_key_says_it_needs_a_value_not_did_you_mean():
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens(["data=iris", "epochs"])
    assert str(e.value) == "'epochs' needs a value: write epochs=<value>"
    with pytest.raises(ValueError, match=re.escape("write epochs=<value> (e.g. epochs=20 as one token)")):
        TrainConfig.from_tokens(["epochs", "20"])  # `epochs 20`: show the token the user meant
    with pytest.raises(ValueError, match=re.escape("'cfg' needs a value: write cfg=<file.yaml>")):
        TrainConfig.from_tokens(["cfg"])


def test_an_unknown_bare_token_keeps_did_you_mean():
    with pytest.raises(ValueError, match=r"expected key=value, got 'epoch'\. Did you mean 'epochs'\?"):
        TrainConfig.from_tokens(["epoch"])


# ------------------------------------------------------------------------------------------- 2. freeze by name
@pytest.mark.parametrize(
    ("value", "expected"),
    [("body", ["body"]), ("body,head", ["body", "head"]), (" body , head ", ["body", "head"]), ("0,2", [0, 2]),
     ("3", 3), (3, 3), ("[body]", ["body"]), (["body", 1], ["body", 1])],
)
def test_freeze_accepts_a_name_and_a_comma_separated_list(value, expected):
    assert TrainConfig.from_kwargs(freeze=value).freeze == expected


def test_freeze_tokens_from_the_command_line():
    assert TrainConfig.from_tokens(["freeze=body"]).freeze == ["body"]
    assert TrainConfig.from_tokens(["freeze=body,head"]).freeze == ["body", "head"]
    assert TrainConfig.from_tokens(["freeze=2"]).freeze == 2  # an integer is still the first N layers
    assert TrainConfig.from_tokens(["freeze=[0,1]"]).freeze == [0, 1]


@pytest.mark.parametrize("bad", ["", ",", "body,,head", True, 2.5])
def test_freeze_rejects_malformed_values_naming_them(bad):
    with pytest.raises(ValueError, match=re.escape(f"freeze={bad!r}")):
        TrainConfig.from_kwargs(freeze=bad)


def test_freeze_by_name_freezes_that_layer_and_a_bad_name_lists_the_layers(tmp_path):
    r = train(data="iris", model="mlp", epochs=1, lr0=0.05, freeze="body", project=tmp_path, **QUIET)
    frozen = {n for n, p in r.model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in r.model.named_parameters() if n.startswith("body.")} and frozen
    with pytest.raises(ValueError, match=r"freeze entry 'bdy' matches no parameter name\. Did you mean 'body'\? "
                                         r"Layers: body, head"):
        train(data="iris", model="mlp", epochs=1, freeze="bdy", project=tmp_path / "bad", **QUIET)
    assert not (tmp_path / "bad").exists()


def test_freeze_is_reported_in_the_log(tmp_path, capsys):
    # Bug: freeze= never appeared in the log, so a typo'd run and a frozen one looked the same.
    r = train(data="iris", model="mlp", epochs=1, lr0=0.05, freeze="body", project=tmp_path, name="a", plots=False)
    frozen = [(n, p.numel()) for n, p in r.model.named_parameters() if not p.requires_grad]
    said = capsys.readouterr().out
    line = (f"lrkit.train: freeze=['body'] froze {len(frozen)} parameter tensors "
            f"({sum(n for _, n in frozen):,} parameters) in layer body; they keep their weights")
    assert len(frozen) == 4 and line in said, said
    train(data="iris", model="mlp", epochs=1, lr0=0.05, freeze=0, project=tmp_path, name="b", plots=False)
    assert "freeze=0 froze nothing" in capsys.readouterr().out
    train(data="iris", model="mlp", epochs=1, lr0=0.05, project=tmp_path, name="c", plots=False)
    assert "freeze" not in capsys.readouterr().out  # not set: not mentioned
    train(data="iris", model="mlp", epochs=1, lr0=0.05, freeze=1, project=tmp_path, name="d", **QUIET)
    assert capsys.readouterr().out == ""  # verbose=False: silent


def test_the_default_model_is_named_as_model_mlp_names_it(tmp_path, capsys):
    # Bug: model=None logged (and recorded) "MLP", the class, where model=mlp says "mlp".
    default = train(data="iris", epochs=1, lr0=0.05, project=tmp_path, name="a", plots=False)
    assert "model mlp (" in capsys.readouterr().out
    named = train(data="iris", model="mlp", epochs=1, lr0=0.05, project=tmp_path, name="b", plots=False)
    assert "model mlp (" in capsys.readouterr().out
    resolved = [yaml.safe_load((r.run_dir / "args.yaml").read_text())["resolved"]["model"] for r in (default, named)]
    assert resolved == ["mlp", "mlp"]  # the record agrees with the log


# ------------------------------------------------------------------------------------------- 3. (N, 1) class targets
def test_long_targets_of_shape_n_by_1_train_exactly_like_n(tmp_path):
    x, y = _blobs()
    flat = train(data=TensorDataset(x, y), model="mlp", epochs=2, lr0=0.05, project=tmp_path, name="flat", **QUIET)
    col = train(data=TensorDataset(x, y[:, None]), model="mlp", epochs=2, lr0=0.05, project=tmp_path, name="col",
                **QUIET)
    assert col.task == "classification" and col.metric_name == "accuracy"
    assert col.history == [dict(r, time=c["time"], epoch_time=c["epoch_time"]) for r, c in
                           zip(flat.history, col.history)]  # the same run, to the bit (only timings differ)
    assert 0.0 <= col.final_metric <= 1.0


def test_accuracy_with_a_column_of_labels_does_not_broadcast():
    out = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 1, 1, 1])
    spec = task_spec("classification")
    assert spec.metric_sums(out, y[:, None]) == spec.metric_sums(out, y) == (3.0, 4)  # (B, 1) vs (B,) -> (B, B)
    assert float(spec.loss(out, y[:, None])) == pytest.approx(float(spec.loss(out, y)), rel=1e-7)


def test_undecidable_targets_name_their_dtype_and_shape(tmp_path):
    x, _ = _blobs()
    multi = torch.zeros(len(x), 3, dtype=torch.long)  # integer targets of shape (3,): not class indices
    with pytest.raises(ValueError, match=re.escape("target int64 of shape (3,)")) as e:
        train(data=TensorDataset(x, multi), model="mlp", epochs=1, project=tmp_path, **QUIET)
    assert "task='classification'|'regression'|'lm'" in str(e.value)


# ------------------------------------------------------------------------------------------- 4. target= misplaced
@pytest.mark.parametrize("kind", ["builtin", "dataset", "dataloader", "pair", "text"])
def test_target_where_it_does_not_apply_is_an_error_naming_it(tmp_path, kind):
    x, y = _blobs()
    text = tmp_path / "book.txt"
    text.write_text("hello world, " * 200)
    data = {"builtin": "iris", "dataset": TensorDataset(x, y), "dataloader": DataLoader(TensorDataset(x, y), 16),
            "pair": (TensorDataset(x, y), TensorDataset(x, y)), "text": str(text)}[kind]
    project = tmp_path / "runs"
    with pytest.raises(ValueError, match=r"target='label' applies only to CSV/NPZ files"):
        train(data=data, target="label", epochs=1, project=project, **QUIET)
    assert not project.exists()


# ------------------------------------------------------------------------------------------- 5. float64 data
def test_float64_inputs_train_exactly_like_float32_and_say_so_once(tmp_path, capsys):
    x, y = _blobs()
    as32 = train(data=TensorDataset(x, y), model="mlp", epochs=2, lr0=0.05, project=tmp_path, name="f32",
                 verbose=False, plots=False)
    as64 = train(data=TensorDataset(x.double(), y), model="mlp", epochs=2, lr0=0.05, project=tmp_path, name="f64",
                 verbose=True, plots=False)
    said = capsys.readouterr().out
    assert said.count("casting floating-point inputs to float32") == 1
    assert "the inputs are float64 but the model is float32" in said
    strip = ("time", "epoch_time")
    assert [{k: v for k, v in r.items() if k not in strip} for r in as64.history] == \
        [{k: v for k, v in r.items() if k not in strip} for r in as32.history]


def test_numpy_float64_regression_with_a_custom_loss_gets_model_dtype_targets(tmp_path):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((96, 3))
    ys = xs @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.standard_normal(96)
    seen: list[tuple[torch.dtype, torch.dtype]] = []

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append((out.dtype, target.dtype))
        return torch.nn.functional.mse_loss(out.reshape(target.shape), target)

    ds = TensorDataset(torch.from_numpy(xs), torch.from_numpy(ys)[:, None])
    assert ds.tensors[0].dtype == torch.float64
    r = train(data=ds, model="linear", epochs=3, lr0=0.05, optimizer="SGD", loss_fn=loss_fn, project=tmp_path,
              **QUIET)
    assert seen and set(seen) == {(torch.float32, torch.float32)}
    assert math.isfinite(r.final_val_loss)


def test_float32_data_with_a_float64_model_is_cast_up(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).double()
    r = train(model, data="iris", epochs=1, lr0=0.05, project=tmp_path, **QUIET)
    assert next(r.model.parameters()).dtype == torch.float64 and math.isfinite(r.final_val_loss)


def test_float64_data_with_lr0_auto(tmp_path):
    x, y = _blobs(n=240)
    r = train(data=TensorDataset(x.double(), y), model="mlp", epochs=4, batch=8, nbs=8, lr0="auto",
              project=tmp_path, **QUIET)
    assert r.lr0_source == "auto" and r.lr0 > 0 and math.isfinite(r.final_val_loss)


# ------------------------------------------------------------------------------------------- 6. warmup > run
def test_ultralytics_spec_warmup_longer_than_the_run_is_capped_like_the_default(tmp_path, capsys):
    common = dict(data="iris", model="linear", epochs=2, optimizer="SGD", project=tmp_path, plots=False)
    default = train(lr0=0.01, warmup_epochs=3, name="default", verbose=False, **common)
    spec = train(schedule="ultralytics lr0=0.01", name="spec", verbose=True, **common)
    said = capsys.readouterr().out
    assert "schedule='ultralytics lr0=0.01': warmup_epochs=3 is longer than the run" in said
    assert _lr_columns(spec.history) == _lr_columns(default.history)  # the same schedule, step for step


def test_cosine_spec_with_warmup_steps_longer_than_the_run_trains(tmp_path):
    r = train(data="iris", model="linear", epochs=2, schedule="cosine lr0=0.02 warmup_steps=100", project=tmp_path,
              **QUIET)
    assert r.epochs_run == 2 and r.lr0 == 0.02


def test_a_prefix_warmup_that_leaves_no_run_names_the_keys(tmp_path):
    with pytest.raises(ValueError, match=r"schedule='cosine warmup_steps=100 warmup_prefix=true': .*set "
                                         r"warmup_epochs/warmup_steps in the spec"):
        train(data="iris", model="linear", epochs=2, schedule="cosine warmup_steps=100 warmup_prefix=true",
              project=tmp_path, **QUIET)


# ------------------------------------------------------------------------------------------- 7. resume=True
def test_resume_true_searches_recursively_for_the_newest_last_pt(tmp_path):
    common = dict(data="iris", model="linear", lr0=0.05, epochs=1, **QUIET)
    a = train(project=tmp_path / "group" / "deep", name="a", **common)
    b = train(project=tmp_path / "other", name="b", **common)
    now = time.time()
    os.utime(a.last_checkpoint, (now + 10, now + 10))  # a is the newest by modification time
    os.utime(b.last_checkpoint, (now, now))
    assert find_resume_checkpoint(True, tmp_path) == a.last_checkpoint
    r = train(resume=True, project=tmp_path, epochs=2, **QUIET)
    assert r.run_dir == a.run_dir and r.epochs_run == 2


def test_resume_true_without_a_checkpoint_names_the_folder(tmp_path):
    (tmp_path / "runs" / "x").mkdir(parents=True)
    with pytest.raises(ValueError, match=re.escape(f"found no last.pt anywhere under {(tmp_path / 'runs').resolve()}")):
        train(resume=True, project=tmp_path / "runs", **QUIET)


# ------------------------------------------------------------------------------------------- 8. exist_ok
class _FailsAfter(torch.nn.Module):
    """A linear model whose forward raises after ``n`` calls (a run that dies in its first epoch)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.calls, self.n = 0, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.n:
            raise RuntimeError("dies in epoch 1")
        return self.fc(x)


def _snapshot(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_exist_ok_run_failing_in_epoch_1_leaves_the_earlier_run_untouched(tmp_path):
    old = train(data="iris", model="mlp", epochs=2, lr0=0.01, project=tmp_path, name="exp", verbose=False)
    (old.run_dir / "notes.txt").write_text("mine")
    before = _snapshot(old.run_dir)
    assert {"args.yaml", "results.csv", "last.pt", "best.pt", "results.png", "events.json"} <= set(before)
    with pytest.raises(RuntimeError, match="dies in epoch 1"):
        train(_FailsAfter(3), data="iris", epochs=2, project=tmp_path, name="exp", exist_ok=True, verbose=False)
    assert _snapshot(old.run_dir) == before  # no new args.yaml, no overwritten events.json: the folder as it was


def test_exist_ok_moves_the_earlier_run_aside_at_the_first_epoch(tmp_path, capsys):
    old = train(data="iris", model="mlp", epochs=2, lr0=0.01, project=tmp_path, name="exp", verbose=False)
    (old.run_dir / "notes.txt").write_text("mine")
    before = _snapshot(old.run_dir)
    new = train(data="iris", model="linear", epochs=1, lr0=0.01, project=tmp_path, name="exp", exist_ok=True,
                verbose=True, plots=False)
    assert new.run_dir == old.run_dir
    aside = [p for p in new.run_dir.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and re.fullmatch(r"previous-\d{8}-\d{6}", aside[0].name)
    moved = _snapshot(aside[0])
    assert moved == {k: v for k, v in before.items() if k != "notes.txt"}  # every old run file, byte for byte
    assert (new.run_dir / "notes.txt").read_text() == "mine"  # not a run file: left where it was
    top = {p.name for p in new.run_dir.iterdir() if p.is_file()}
    assert top == {"args.yaml", "results.csv", "events.json", "last.pt", "best.pt", "notes.txt"}  # no stale png
    assert yaml.safe_load((new.run_dir / "args.yaml").read_text())["model"] == "linear"
    assert "moved the earlier run's args.yaml, results.csv" in capsys.readouterr().out
    # resume=True still finds the new run (its last.pt is the newest), not the one moved aside
    assert find_resume_checkpoint(True, tmp_path) == new.last_checkpoint


def test_exist_ok_folder_without_a_run_keeps_its_files_when_the_run_fails(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="dies in epoch 1"):
        train(_FailsAfter(3), data="iris", epochs=2, project=tmp_path, name="exp", exist_ok=True, **QUIET)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
