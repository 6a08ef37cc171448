"""Numbers you can trust (session 27a): what ``lrkit.train`` reports, recomputed independently.

Every number a run reports — ``results.csv``'s columns, ``TrainResults``, the log's note — is recomputed here from
the saved checkpoints (``torch.load(..., weights_only=True)``), the data and plain torch, and compared.

Two were wrong before:

* a multi-output regression's ``val_rmse`` ("RMSE in the target's units") was the RMSE of the standardised columns
  times the quadratic mean of the columns' standard deviations: neither the pooled RMSE in the targets' units nor any
  other RMSE (428.8 where the model's RMSE over both columns was 521.3);
* the closing note after the monitor's rollbacks counted events, not rollbacks: two checks firing at one step (a
  ``loss_spike`` and a ``gradient_blowup``, one rollback) read "rolled the run back 4 time(s)" for 3 rollbacks, beside
  the 0.027x (= 0.3 ** 3) it printed.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lrkit
from lrkit.train.data import SeededSampler, load_data
from lrkit.train.reuse import load_run
from lrkit.train.trainer import _backoff_note

QUIET: dict[str, Any] = {"verbose": False, "plots": False}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _raw_val(data: str, **kw: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The validation split's model inputs and its targets back in their own units (the train split's statistics)."""
    td = load_data(data, seed=0, val=0.2, **kw)
    x, y = td.val[:]
    mean, std = td.info.scaling["y_mean"].reshape(-1), td.info.scaling["y_std"].reshape(-1)
    return x, y.double() * std + mean, mean, std


# ------------------------------------------------------------------------------------------ regression RMSE
def _two_targets(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y1 = x @ [1.0, 2.0, 3.0] + 0.1 * rng.normal(size=400)  # a column in units of 1
    y2 = 1000.0 * (x @ [1.0, -1.0, 0.5]) + 50.0 * rng.normal(size=400)  # and one in units of 1,000
    path = tmp_path / "two.npz"
    np.savez(path, x=x, y=np.stack([y1, y2], axis=1))
    return str(path)


@pytest.mark.parametrize("which", ["best", "last"])
def test_multi_output_rmse_is_the_rmse_in_the_targets_units(tmp_path: Path, which: str) -> None:
    data = _two_targets(tmp_path)
    r = lrkit.train(data=data, model="mlp", epochs=3, lr0=0.01, task="regression", project=str(tmp_path),
                    monitor=False, **QUIET)
    assert r.metric_name == "rmse"
    ck = torch.load(r.run_dir / f"{which}.pt", weights_only=True)
    x, y_raw, mean, std = _raw_val(data, task="regression")
    model = load_run(r.run_dir, which=which).model
    with torch.no_grad():
        pred = model(x).double() * std + mean
    rmse = math.sqrt(float(((pred - y_raw) ** 2).mean()))  # over every cell of the (N, 2) target, in its units
    reported = r.history[int(ck["epoch"]) - 1]["val_rmse"]
    assert reported == pytest.approx(rmse, rel=1e-5)
    rows = _rows(r.run_dir)
    assert float(rows[int(ck["epoch"]) - 1]["val_rmse"]) == reported


def test_one_output_rmse_from_a_csv_is_the_rmse_in_the_targets_units(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    price = 50_000 + 20_000 * (x @ [1.0, 0.5, -0.3, 0.2]) + 3_000 * rng.normal(size=300)
    path = tmp_path / "houses.csv"
    path.write_text("a,b,c,d,price\n" + "".join(",".join(f"{v:.6f}" for v in row) + f",{p:.2f}\n"
                                                for row, p in zip(x, price)))
    r = lrkit.train(data=str(path), target="price", epochs=4, lr0=0.01, project=str(tmp_path), **QUIET)
    xv, y_raw, mean, std = _raw_val(str(path), target="price")
    with torch.no_grad():
        pred = load_run(r.run_dir).model(xv).double() * std + mean
    assert r.best_metric == pytest.approx(math.sqrt(float(((pred - y_raw) ** 2).mean())), rel=1e-5)
    best = min(r.history, key=lambda h: h["val_rmse"])  # lower is better; the first of equals
    assert r.best_epoch == best["epoch"]


# ------------------------------------------------------------------------------------------ the back-off note
class _Mon:
    def __init__(self, lr_scale: float, rollbacks: int, val_backoff: float = 0.1) -> None:
        self.lr_scale, self.rollbacks, self.val_backoff = lr_scale, rollbacks, val_backoff


def _results(events: list[dict[str, Any]]) -> Any:
    return lrkit.TrainResults(model=torch.nn.Linear(1, 1), lr0=10.0, lr0_source="user", auto=None, optimizer="SGD",
                              optimizer_reason="", task=None, metric_name="val_loss", metric_mode="min", history=[],
                              best_epoch=0, run_dir=Path("runs/x"), events=events)


def test_backoff_note_counts_rollbacks_not_events() -> None:
    events = [{"step": 1, "check": "loss_spike", "action": "rollback"},
              {"step": 1, "check": "gradient_blowup", "action": "rollback"},  # the same rollback as the spike
              {"step": 3, "check": "loss_spike", "action": "rollback"},
              {"step": 14, "check": "loss_spike", "action": "rollback"},
              {"step": 40, "check": "val_rising", "action": "rollback"}]
    note = _backoff_note(_results(events), _Mon(0.3 ** 3 * 0.1, rollbacks=4))
    assert note is not None
    assert "rolled the run back 3 time(s)" in note
    assert "0.027x the planned LR" in note


def test_backoff_note_of_a_real_run_agrees_with_its_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = lrkit.train(data="digits", model="mlp", epochs=1, lr0=10.0, optimizer="SGD", warmup_epochs=0,
                    project=str(tmp_path), plots=False)
    out = capsys.readouterr().out
    n = round(math.log(r.lr_scale) / math.log(0.3))  # the default backoff, once per rollback
    assert n >= 1 and r.lr_scale == pytest.approx(0.3 ** n)
    note = re.search(r"rolled the run back (\d+) time\(s\)", out)
    assert note is not None and int(note.group(1)) == n


# ------------------------------------------------------------------------------------------ columns, recomputed
def _closed_form_lr(step: int, *, lr0: float, lrf: float, epochs: int, spe: int, warmup_epochs: float,
                    start: float, cos_lr: bool) -> float:
    """Ultralytics' schedule as the README writes it, per optimizer step at fractional epochs."""
    x = step / spe
    lf = ((1 - math.cos(math.pi * x / epochs)) / 2 * (lrf - 1) + 1 if cos_lr
          else (1 - x / epochs) * (1 - lrf) + lrf)
    target, warm = lr0 * lf, round(warmup_epochs * spe)
    return start + (target - start) * step / warm if step < warm else target


@pytest.mark.parametrize("kw", [
    {"data": "iris", "model": "linear", "optimizer": "SGD", "lr0": 0.05, "cos_lr": True, "epochs": 8},
    {"data": "breast_cancer", "model": "mlp", "optimizer": "SGD", "lr0": 0.02, "epochs": 4, "warmup_epochs": 1.5,
     "backbone_lr_scale": 0.1},
])
def test_lr_columns_are_the_schedule_at_each_epochs_last_step(tmp_path: Path, kw: dict[str, Any]) -> None:
    r = lrkit.train(project=str(tmp_path), monitor=False, **QUIET, **kw)
    groups = torch.load(r.run_dir / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    rows = _rows(r.run_dir)
    columns = [c for c in rows[0] if c.startswith("lr/")]
    assert len(columns) == len(groups)
    for row in rows:
        step = int(row["epoch"]) * r.steps_per_epoch - 1
        for column, g in zip(columns, groups):
            scale = float(g.get("lr_scale", 1.0))
            want = _closed_form_lr(step, lr0=r.lr0 * scale, lrf=0.01, epochs=kw["epochs"], spe=r.steps_per_epoch,
                                   warmup_epochs=kw.get("warmup_epochs", 3.0), cos_lr=kw.get("cos_lr", False),
                                   start=0.1 * scale if g.get("is_bias") else 0.0)  # warmup_bias_lr, scaled too
            assert float(row[column]) == pytest.approx(want, rel=1e-9), (row["epoch"], column)


def test_train_loss_grad_norm_and_val_replayed_in_plain_torch(tmp_path: Path) -> None:
    """Epoch 2 replayed from epoch 1's ``last.pt``: the sample-weighted mean of the batch losses, the mean of the
    steps' gradient norms (accumulated gradients), the validation loss and accuracy, and the weights themselves."""
    saved: dict[str, Any] = {}

    def progress(**kw: Any) -> None:
        if kw.get("event") == "start":
            saved["dir"] = Path(kw["run_dir"])
        if kw.get("event") == "epoch" and kw["epoch"] == 1:
            saved["ck"] = torch.load(saved["dir"] / "last.pt", weights_only=True)

    r = lrkit.train(data="digits", model="mlp", epochs=2, lr0=0.01, optimizer="AdamW", batch=32, warmup_epochs=1,
                    monitor=False, project=str(tmp_path), progress=progress, **QUIET)
    assert r.accumulate == 2  # nbs=64: two batches a step
    ck1, spe = saved["ck"], r.steps_per_epoch
    model = load_run(r.run_dir, which="last").model
    model.load_state_dict(ck1["model"])
    model.train()
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim > 1]},
                             {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}], lr=0.01)
    opt.load_state_dict(ck1["optimizer"])
    td = load_data("digits", seed=0, val=0.2)
    sampler = SeededSampler(len(td.train), seed=0)
    sampler.set_epoch(1)
    order = list(sampler)
    batches = [order[i:i + 32] for i in range(0, len(order), 32)]
    total, count, norms, step = 0.0, 0, [], spe
    for i in range(0, len(batches), 2):
        window = batches[i:i + 2]
        lr = _closed_form_lr(step, lr0=0.01, lrf=0.01, epochs=2, spe=spe, warmup_epochs=1, start=0.0, cos_lr=False)
        momentum = 0.937 if step >= spe else 0.8 + (0.937 - 0.8) * step / spe
        for g in opt.param_groups:
            g["lr"], g["betas"] = lr, (momentum, g["betas"][1])
        for b in window:
            x, y = td.train[b]
            loss = F.cross_entropy(model(x), y)
            total, count = total + float(loss.detach()) * len(b), count + len(b)
            (loss / len(window)).backward()
        norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
        opt.step()
        opt.zero_grad()
        step += 1
    row = r.history[1]
    assert row["train_loss"] == pytest.approx(total / count, rel=1e-12)
    assert row["grad_norm"] == pytest.approx(sum(norms) / len(norms), rel=1e-6)
    assert row["grad_norm_max"] == pytest.approx(max(norms), rel=1e-6)
    last = torch.load(r.run_dir / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(last[k], v) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        x, y = td.val[:]
        out = model(x)
    assert row["val_loss"] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
    assert row["val_accuracy"] == float((out.argmax(-1) == y).double().mean())


def test_best_pt_is_the_first_best_epoch_and_time_is_the_sum_of_epoch_times(tmp_path: Path) -> None:
    r = lrkit.train(data="iris", model="linear", epochs=6, lr0=0.0005, optimizer="SGD", patience=3, monitor=False,
                    project=str(tmp_path), **QUIET)
    accs = [h["val_accuracy"] for h in r.history]
    first_best = accs.index(max(accs)) + 1  # ties: the earliest epoch keeps the title
    assert r.best_epoch == first_best and r.best_metric == max(accs)
    best = torch.load(r.run_dir / "best.pt", weights_only=True)
    assert best["epoch"] == first_best
    with torch.no_grad():
        x, y = load_data("iris", seed=0, val=0.2).val[:]
        model = load_run(r.run_dir).model
        assert float((model(x).argmax(-1) == y).double().mean()) == r.best_metric
    assert r.stopped_early == (len(accs) - first_best >= 3)
    rows = _rows(r.run_dir)
    elapsed = 0.0
    for row in rows:
        elapsed += float(row["epoch_time"])
        assert float(row["time"]) == pytest.approx(elapsed, abs=1e-3)


def test_seconds_is_the_whole_call_lr0_auto_search_included(tmp_path: Path) -> None:
    """``TrainResults.seconds`` (the CLI summary's ``time``) is the call's wall time: an lr0="auto" run's range test
    and trials are most of a short run's time, and were left out (0.1 s reported for a 3.7 s run)."""
    import time

    start = time.perf_counter()
    r = lrkit.train(data="digits", model="mlp", epochs=2, lr0="auto", project=str(tmp_path), **QUIET)
    wall = time.perf_counter() - start
    assert r.lr0_source == "auto"
    assert 0.9 * wall <= r.seconds <= wall
    assert r.seconds > sum(h["epoch_time"] for h in r.history)
