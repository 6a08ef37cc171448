"""lrkit.train end to end on tiny data: run directory, checkpoints, lr0 handling, nbs, patience, tasks."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import yaml
from torch.utils.data import TensorDataset

import lrkit
from lrkit.train import TrainResults, train

QUIET = {"verbose": False, "plots": False}


def _pair(n_train: int = 128, n_val: int = 32, d: int = 4, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_val, d, generator=g)
    w = torch.arange(1.0, d + 1)
    y = (x @ w).unsqueeze(1) + 0.1 * torch.randn(n_train + n_val, 1, generator=g)
    return TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:])


def test_run_directory_contents(tmp_path):
    r = lrkit.train(data="iris", model="mlp", epochs=3, lr0=0.01, optimizer="SGD", project=tmp_path, verbose=False)
    assert isinstance(r, TrainResults) and r.run_dir == tmp_path / "train"
    assert sorted(p.name for p in r.run_dir.iterdir()) == [
        "args.yaml", "best.pt", "events.json", "last.pt", "results.csv", "results.png"]
    assert not [p for p in r.run_dir.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files
    with open(r.run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for col in ("time", "train_loss", "val_loss", "val_accuracy", "grad_norm", "epoch_time", "lr/all/decay",
                "lr/all/bias"):
        assert col in rows[0], col
    assert [float(row["val_loss"]) for row in rows] == [h["val_loss"] for h in r.history]
    args = yaml.safe_load((r.run_dir / "args.yaml").read_text())
    assert args["epochs"] == 3 and args["lr0"] == 0.01 and args["resolved"]["optimizer"] == "SGD"
    record = json.loads((r.run_dir / "events.json").read_text())
    assert record["lr0"] == {"value": 0.01, "source": "user", "auto": None} and record["events"] == []
    assert (r.run_dir / "results.png").stat().st_size > 10_000
    # names auto-increment and never overwrite; exist_ok reuses
    r2 = lrkit.train(data="iris", model="linear", epochs=1, project=tmp_path, **QUIET)
    r3 = lrkit.train(data="iris", model="linear", epochs=1, project=tmp_path, name="exp", **QUIET)
    r4 = lrkit.train(data="iris", model="linear", epochs=1, project=tmp_path, name="exp", exist_ok=True, **QUIET)
    assert (r2.run_dir.name, r3.run_dir.name, r4.run_dir.name) == ("train2", "exp", "exp")


def test_checkpoints_load_with_weights_only(tmp_path):
    r = train(data="wine", model="mlp", epochs=2, lr0=0.01, project=tmp_path, **QUIET)
    last = torch.load(r.run_dir / "last.pt", weights_only=True)
    best = torch.load(r.run_dir / "best.pt", weights_only=True)
    assert last["epoch"] == 2 and best["epoch"] == r.best_epoch
    assert {"model", "optimizer", "scheduler", "rng", "config", "history"} <= set(last)
    assert "optimizer" not in best
    fresh = lrkit.train.models.build_model("mlp", lrkit.train.data.load_data("wine").info)
    fresh.load_state_dict(last["model"])
    for a, b in zip(fresh.state_dict().values(), r.model.state_dict().values()):
        assert torch.equal(a, b.cpu())
    assert last["config"]["data"] == "wine" and last["history"] == r.history


def test_explicit_lr0_is_honoured_with_optimizer_auto(tmp_path):
    """Unlike ultralytics#8400, optimizer='auto' never replaces an explicit lr0."""
    seen: list[float] = []

    def progress(**kw):
        if kw.get("event") == "step":
            seen.append(kw["lr"])

    r = train(data="iris", model="linear", epochs=2, lr0=0.123, optimizer="auto", warmup_epochs=0,
              project=tmp_path, progress=progress, **QUIET)
    assert (r.lr0, r.lr0_source, r.optimizer) == (0.123, "user", "AdamW")
    assert "AdamW for a short run" in r.optimizer_reason
    assert seen[0] == pytest.approx(0.123, rel=1e-12)  # the first step runs at lr0 (no warmup)
    assert max(seen) == pytest.approx(0.123, rel=1e-12)


def test_default_lr0_follows_the_family(tmp_path):
    sgd = train(data="iris", model="linear", epochs=1, optimizer="SGD", project=tmp_path, **QUIET)
    adamw = train(data="iris", model="linear", epochs=1, optimizer="AdamW", project=tmp_path, **QUIET)
    lm = train(data="iris", model="linear", epochs=1, optimizer="sgd", lr0=0.2, project=tmp_path, **QUIET)
    assert (sgd.lr0, sgd.lr0_source, adamw.lr0, adamw.lr0_source) == (0.01, "default", 0.001, "default")
    assert (lm.lr0, lm.optimizer) == (0.2, "SGD")


def test_nbs_accumulation_equals_one_big_batch(tmp_path):
    """batch=16 accumulated to nbs=32 takes the same steps as batch=32: the mean gradient over the same samples."""
    data = _pair()
    common = dict(data=data, epochs=3, lr0=0.05, optimizer="SGD", nbs=32, seed=1, monitor=False, **QUIET)
    steps: dict[int, int] = {}

    def counter(batch):
        def progress(**kw):
            if kw.get("event") == "step":
                steps[batch] = steps.get(batch, 0) + 1
        return progress

    m16, m32 = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    m32.load_state_dict(m16.state_dict())
    small = train(m16, batch=16, project=tmp_path, name="small", progress=counter(16), **common)
    big = train(m32, batch=32, project=tmp_path, name="big", progress=counter(32), **common)
    assert (small.accumulate, big.accumulate) == (2, 1)
    assert steps == {16: 12, 32: 12} and small.steps_per_epoch == big.steps_per_epoch == 4
    assert small.weight_decay == big.weight_decay == pytest.approx(5e-4)
    for a, b in zip(small.model.parameters(), big.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert small.final_val_loss == pytest.approx(big.final_val_loss, rel=1e-5)


@pytest.mark.parametrize(("batch", "nbs", "accumulate"), [(16, 64, 4), (24, 64, 3), (100, 64, 1), (8, 20, 2)])
def test_nbs_scales_weight_decay_like_ultralytics(tmp_path, batch, nbs, accumulate):
    r = train(data=_pair(n_train=200), model="linear", epochs=1, batch=batch, nbs=nbs, weight_decay=1e-3,
              lr0=0.01, optimizer="SGD", project=tmp_path, **QUIET)
    expected_wd = 1e-3 * batch * accumulate / nbs
    assert r.accumulate == accumulate and r.weight_decay == pytest.approx(expected_wd)
    assert r.steps_per_epoch == math.ceil(math.ceil(200 / batch) / accumulate)
    groups = torch.load(r.run_dir / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    decay = [g["weight_decay"] for g in groups if not g["is_bias"]]
    assert decay == [pytest.approx(expected_wd)] and all(g["weight_decay"] == 0 for g in groups if g["is_bias"])


def test_patience_stops_early(tmp_path):
    # at a vanishing LR the accuracy never improves after the first epoch
    r = train(data="iris", model="linear", epochs=30, lr0=1e-12, warmup_epochs=0, patience=3, project=tmp_path,
              **QUIET)
    assert r.stopped_early and r.epochs_run == 4 and r.best_epoch == 1
    assert "no improvement in val accuracy for 3 epochs" in r.stop_reason
    assert torch.load(r.run_dir / "last.pt", weights_only=True)["finished"] is True


def test_failure_before_first_epoch_leaves_no_run_dir(tmp_path):
    def broken(model, batch):
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        train(data="iris", model="linear", epochs=2, step_fn=broken, project=tmp_path, **QUIET)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="Did you mean 'digits'"):
        train(data="digitz", project=tmp_path, **QUIET)
    assert not any(tmp_path.iterdir())


def test_regression_metric_in_target_units(tmp_path):
    r = train(data="synthetic-regression", model="linear", epochs=2, lr0=0.01, project=tmp_path, **QUIET)
    assert (r.task, r.metric_name, r.metric_mode) == ("regression", "rmse", "min")
    scale = lrkit.train.data.load_data("synthetic-regression").info.target_scale
    # the loss is the MSE of the standardised target; RMSE is reported in the target's units
    assert r.final_metric == pytest.approx(math.sqrt(r.final_val_loss) * scale, rel=1e-5)


def test_step_fn_and_loss_fn(tmp_path):
    data = _pair()
    calls = {"n": 0}

    def step_fn(model, batch):
        calls["n"] += 1
        x, y = batch
        return torch.nn.functional.l1_loss(model(x), y)

    r = train(torch.nn.Linear(4, 1), data=data, epochs=2, lr0=0.01, step_fn=step_fn, project=tmp_path, **QUIET)
    assert r.metric_name == "val_loss" and r.task is None and calls["n"] > 0
    assert r.final_metric == r.final_val_loss
    r2 = train(torch.nn.Linear(4, 1), data=data, epochs=1, lr0=0.01, loss_fn=torch.nn.functional.l1_loss,
               project=tmp_path, **QUIET)
    assert r2.metric_name == "rmse" and r2.final_val_loss != pytest.approx(r2.final_metric**2)
    with pytest.raises(ValueError, match="either loss_fn or step_fn"):
        train(data=data, loss_fn=step_fn, step_fn=step_fn, **QUIET)


def test_char_lm_end_to_end(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("abcdefgh " * 200)
    r = train(data=f, epochs=2, seq_len=16, batch=16, project=tmp_path / "runs", **QUIET)
    assert (r.task, r.metric_name, r.optimizer) == ("lm", "perplexity", "AdamW")
    assert "language model" in r.optimizer_reason
    assert r.final_metric == pytest.approx(math.exp(r.final_val_loss), rel=1e-5)
    assert r.final_metric < 9.0  # better than uniform over the 9 characters


def test_discriminative_lrs_keep_their_ratio(tmp_path):
    r = train(data="wine", model="mlp", epochs=2, lr0=0.02, backbone_lr_scale=0.1, project=tmp_path, **QUIET)
    for row in r.history:
        assert row["lr/backbone/decay"] == pytest.approx(0.1 * row["lr/head/decay"], rel=1e-9)
    frozen = train(data="wine", model="mlp", epochs=1, lr0=0.02, freeze=1, project=tmp_path, **QUIET)
    assert not any(p.requires_grad for p in frozen.model.body.parameters())  # freeze=1: the first layer, "body"
    assert all(p.requires_grad for p in frozen.model.head.parameters())


def test_amp_on_cpu_runs(tmp_path):
    r = train(data="iris", model="mlp", epochs=1, lr0=0.01, amp=True, project=tmp_path, **QUIET)
    assert math.isfinite(r.final_val_loss)


def test_lr0_auto_chooses_within_budget_and_records_why(tmp_path):
    r = train(data="synthetic-regression", model="linear", epochs=4, batch=64, lr0="auto", optimizer="SGD",
              auto_budget=0.3, warmup_epochs=0, project=tmp_path, **QUIET)
    assert r.lr0_source == "auto" and r.lr0 == r.auto.lr > 0
    assert 0 < r.auto.extra_steps <= 0.3 * r.total_steps and r.auto.extra_fraction <= 0.3
    record = json.loads((r.run_dir / "events.json").read_text())
    assert record["lr0"]["source"] == "auto" and record["lr0"]["auto"]["reason"] == r.auto.reason
    assert record["lr0"]["value"] == pytest.approx(r.lr0)
    x = (r.steps_per_epoch - 1) / r.steps_per_epoch  # the last step of epoch 1, in epochs
    assert r.history[0]["lr/all/decay"] == pytest.approx(r.lr0 * ((1 - x / 4) * (1 - 0.01) + 0.01), rel=1e-9)
    assert math.isfinite(r.final_val_loss)
    # with a schedule spec that names its own peak, lr0='auto' is a contradiction
    with pytest.raises(ValueError, match="lr0='auto' chooses the peak LR, but schedule="):
        train(data="iris", lr0="auto", schedule="cosine lr0=0.1", project=tmp_path, **QUIET)


def test_schedule_spec_overrides_the_shorthand(tmp_path):
    seen: list[float] = []
    r = train(data="iris", model="linear", epochs=3, optimizer="SGD", lr0=0.2, schedule="cosine lrf=0.1",
              project=tmp_path, progress=lambda **kw: seen.append(kw["lr"]) if kw.get("event") == "step" else None,
              **QUIET)
    n = r.total_steps
    expected = [0.2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t / n))) for t in range(n)]  # no warmup: spec's
    assert seen == pytest.approx(expected, rel=1e-9)
    # a spec with its own peak sets lr0; a disagreeing explicit lr0 is an error, not a silent override
    r2 = train(data="iris", model="linear", epochs=2, schedule="constant lr0=0.03", project=tmp_path, **QUIET)
    assert (r2.lr0, r2.lr0_source) == (0.03, "user")
    with pytest.raises(ValueError, match="disagrees with the peak LR 0.03"):
        train(data="iris", lr0=0.5, schedule="constant lr0=0.03", project=tmp_path, **QUIET)
    with pytest.raises(ValueError, match="Did you mean 'lrf'"):
        train(data="iris", schedule="cosine lfr=0.1", project=tmp_path, **QUIET)
    assert len(list(tmp_path.iterdir())) == 2  # the failed calls left no run directories


def test_a_family_default_peak_leaves_lr0_to_the_run(tmp_path):
    """schedule="ultralytics" has lr0=0.01 as a family default: it must not fix lr0 (only a peak in the spec does)."""
    r = train(data="iris", model="linear", epochs=2, optimizer="SGD", lr0=0.05, schedule="ultralytics warmup_epochs=0",
              project=tmp_path, **QUIET)
    assert (r.lr0, r.lr0_source) == (0.05, "user")
    assert r.history[0]["lr/all/decay"] > 0.02  # scaled from 0.05, not from the family's 0.01
    r = train(data="iris", model="linear", epochs=2, optimizer="SGD", schedule="ultralytics", project=tmp_path, **QUIET)
    assert (r.lr0, r.lr0_source) == (0.01, "default")  # SGD's default, not the spec's (equal here by design)
    r = train(data="iris", model="linear", epochs=2, optimizer="Adam", schedule="ultralytics", project=tmp_path,
              **QUIET)
    assert (r.lr0, r.lr0_source) == (0.001, "default")
    r = train(data="iris", model="linear", epochs=20, lr0="auto", schedule="ultralytics", project=tmp_path, **QUIET)
    assert r.lr0_source == "auto" and r.auto is not None
    with pytest.raises(ValueError, match="disagrees with the peak LR 0.02"):
        train(data="iris", lr0=0.05, schedule="ultralytics lr0=0.02", project=tmp_path, **QUIET)


def test_shape_keys_given_with_a_schedule_spec_are_reported(tmp_path, capsys):
    train(data="iris", model="linear", epochs=2, lr0=0.01, lrf=0.2, warmup_epochs=1, schedule="cosine",
          project=tmp_path, verbose=True, plots=False)
    out = capsys.readouterr().out
    assert "sets the whole LR shape, so lrf=0.2, warmup_epochs=1.0 (given) are not used" in out
    train(data="iris", model="linear", epochs=2, lr0=0.01, schedule="cosine", project=tmp_path, verbose=True,
          plots=False)
    assert "sets the whole LR shape" not in capsys.readouterr().out  # nothing given, nothing said


def test_ultralytics_warmup_bias_and_momentum(tmp_path):
    """The default schedule: bias groups warm down from warmup_bias_lr, momentum up from warmup_momentum."""
    r = train(data="iris", model="linear", epochs=4, lr0=0.01, optimizer="SGD", warmup_epochs=2, project=tmp_path,
              **QUIET)
    first = r.history[0]
    assert first["lr/all/bias"] > first["lr/all/decay"]  # still coming down from 0.1
    spe = r.steps_per_epoch
    t = spe - 1  # the last step of epoch 1, in a warmup of 2 * spe steps; linear decay lf at x = t / spe
    lf = (1 - (t / spe) / 4) * (1 - 0.01) + 0.01
    p = t / (2 * spe)
    assert first["lr/all/decay"] == pytest.approx(0.01 * lf * p, rel=1e-9)
    assert first["lr/all/bias"] == pytest.approx(0.1 + (0.01 * lf - 0.1) * p, rel=1e-9)
    state = torch.load(r.run_dir / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    assert all(g["momentum"] == pytest.approx(0.937) for g in state)  # back at momentum after the warmup


def test_monitor_events_land_in_results(tmp_path):
    r = train(data="wine", model="mlp", epochs=3, lr0=30.0, optimizer="SGD", warmup_epochs=0, project=tmp_path,
              verbose=False)
    assert r.events and {"step", "check", "action", "reason", "epoch"} <= set(r.events[0])
    assert all(0 < e["epoch"] <= 3 for e in r.events)
    record = json.loads((r.run_dir / "events.json").read_text())
    assert [e["step"] for e in record["events"]] == [e["step"] for e in r.events]
    assert torch.load(r.run_dir / "last.pt", weights_only=True)["monitor"]["events"]
    assert (r.run_dir / "results.png").stat().st_size > 10_000  # drawn with the events marked
    quiet = train(data="wine", model="mlp", epochs=3, lr0=30.0, optimizer="SGD", warmup_epochs=0, monitor=False,
                  project=tmp_path, **QUIET)
    assert quiet.events == []
    with pytest.raises(ValueError, match="Did you mean 'backoff'"):
        train(data="wine", monitor={"bakoff": 0.5}, project=tmp_path, **QUIET)


def test_progress_callback_contract(tmp_path):
    calls: list[dict] = []
    r = train(data="iris", model="linear", epochs=2, lr0=0.01, project=tmp_path, progress=lambda **kw: calls.append(kw),
              **QUIET)
    assert calls[0]["event"] == "start" and calls[0]["total"] == r.total_steps and calls[0]["advance"] == 0
    steps = [c for c in calls if c["event"] == "step"]
    epochs = [c for c in calls if c["event"] == "epoch"]
    assert len(steps) == r.total_steps and sum(c["advance"] for c in calls) == r.total_steps
    assert [c["step"] for c in steps] == list(range(1, r.total_steps + 1))
    assert [c["epoch"] for c in epochs] == [1, 2] and "val_loss" in epochs[0] and "loss" in steps[0]["info"]
