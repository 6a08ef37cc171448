"""``snapshot_device``: lrkit's in-memory snapshots (find_lr's, the Monitor's healthy and best-validation ones,
lr0="auto"'s) kept on one device (host memory: ``"cpu"``) instead of on each tensor's own device.

This machine has no GPU, so the path that matters (a CUDA model, CPU snapshots) runs in tools/gpu_checks.py (c15);
here: the argument is validated, carried through lrkit.train / the CLI / lr0="auto", the held copies live on the
requested device, and with a CPU model every result is bit-identical to ``snapshot_device=None``.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any

import pytest
import torch

import lrkit
import lrkit._state as state_mod
from _helpers import regression_batches
from lrkit._config import TrainConfig
from lrkit.monitor import Monitor

CPU = torch.device("cpu")


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 1))


def _batches(n: int = 40) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return regression_batches(n, 6, 1)


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def _held(snap: state_mod.Snapshot) -> list[torch.Tensor]:
    """Every tensor a snapshot holds by value (not the live references it keeps to restore into)."""
    out = [*snap.params, *[g for g in snap.grads if g is not None], *[b for b in snap.buffers if b is not None]]
    out += _tensors(snap.opt_state) + _tensors(snap.opt_groups) + _tensors(snap.opt_other_state)
    out += _tensors(snap.opt_attrs) + _tensors(snap.sched_state)
    out += [v for _, v, _ in snap.extra_params] + [g for _, _, g in snap.extra_params if g is not None]
    for inner in snap.inner:
        out += _held(inner)
    return out


def _same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return len(ta) == len(tb) and all(x.dtype == y.dtype and x.device == y.device and torch.equal(x, y)
                                      for x, y in zip(ta, tb))


# ---------------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", ["meta", "gpu", "cuda:99", 3, True, ["cpu"]])
def test_a_bad_snapshot_device_is_a_value_error_naming_it(bad: Any) -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for make in (lambda: Monitor(model, opt, snapshot_device=bad),
                 lambda: lrkit.find_lr(model, opt, _batches(), num_steps=10, snapshot_device=bad)):
        with pytest.raises(ValueError) as e:
            make()
        msg = str(e.value)
        assert "snapshot_device=" in msg and repr(bad)[:8] in msg and "'cpu'" in msg, msg


def test_snapshot_device_accepts_a_name_or_a_torch_device() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert Monitor(model, opt).snapshot_device is None
    assert Monitor(model, opt, snapshot_device="cpu").snapshot_device == CPU
    assert Monitor(model, opt, snapshot_device=torch.device("cpu")).snapshot_device == CPU


# ---------------------------------------------------------------------------------------------------- find_lr
def test_find_lr_with_cpu_snapshots_is_bit_identical_and_restores_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[state_mod.Snapshot] = []
    capture = state_mod.Snapshot.capture.__func__  # type: ignore[attr-defined]

    def spy(cls: Any, *args: Any, **kwargs: Any) -> state_mod.Snapshot:
        snap = capture(cls, *args, **kwargs)
        taken.append(snap)
        return snap

    monkeypatch.setattr(state_mod.Snapshot, "capture", classmethod(spy))
    runs = []
    for device in (None, "cpu"):
        model = _net()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for x, y in _batches(3):  # Adam moments and a gradient in place before the test
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        before = (
            {k: v.clone() for k, v in model.state_dict().items()},
            io.BytesIO(),
            [p.grad.clone() for p in model.parameters()],
        )
        torch.save(opt.state_dict(), before[1])
        result = lrkit.find_lr(model, opt, _batches(), num_steps=30, snapshot_device=device)
        assert all(torch.equal(v, before[0][k]) for k, v in model.state_dict().items())
        assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before[2]))
        before[1].seek(0)
        assert _same_state(opt.state_dict(), torch.load(before[1], weights_only=True))
        runs.append(result)
    assert runs[0].lrs == runs[1].lrs and runs[0].losses == runs[1].losses
    assert taken[0].device is None and taken[1].device == CPU
    assert all(t.device == CPU for t in _held(taken[1]))


# ---------------------------------------------------------------------------------------------------- Monitor
def _monitored(snapshot_device: Any, *, nan_at: int = 17, cut_at: int | None = None, steps: int = 24,
               validate: bool = False) -> tuple[torch.nn.Module, torch.optim.Optimizer, Monitor]:
    """A run under the monitor with a NaN loss at ``nan_at`` (a rollback); with ``cut_at``, the monitor's state (with
    its snapshots) is saved there and loaded into a fresh monitor of the same snapshot_device, as a resume does."""
    model = _net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 5, 0.5)
    kw = {"grad_every": 1, "snapshot_every": 3, "snapshot_device": snapshot_device}
    mon = Monitor(model, opt, sched, **kw)
    data = _batches(steps)
    for i, (x, y) in enumerate(data):
        if cut_at is not None and i == cut_at:
            buf = io.BytesIO()
            torch.save(mon.state_dict(snapshot=True), buf)
            buf.seek(0)
            mon = Monitor(model, opt, sched, **kw)
            mon.load_state_dict(torch.load(buf, weights_only=True))
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        if i == nan_at:
            loss = loss * float("nan")
        loss.backward()
        mon.after_backward(loss)
        opt.step()
        sched.step()
        mon.after_step()
        if validate and i % 4 == 3:
            with torch.no_grad():
                model.eval()
                val = torch.nn.functional.mse_loss(model(data[0][0]), data[0][1]).item()
                model.train()
            mon.after_validation(float("inf") if i == 11 else val)  # at step 11: a validation rollback
    return model, opt, mon


def _assert_same_run(a: tuple[torch.nn.Module, torch.optim.Optimizer, Monitor],
                     b: tuple[torch.nn.Module, torch.optim.Optimizer, Monitor]) -> None:
    assert _same_state(a[0].state_dict(), b[0].state_dict())
    assert _same_state(a[1].state_dict(), b[1].state_dict())
    assert a[1].state_dict()["param_groups"] == b[1].state_dict()["param_groups"]
    assert [e.to_dict() for e in a[2].events] == [e.to_dict() for e in b[2].events]
    assert a[2].rollbacks == b[2].rollbacks


def test_monitor_rollback_with_cpu_snapshots_is_bit_identical_to_the_default() -> None:
    default = _monitored(None)
    offloaded = _monitored("cpu")
    assert default[2].rollbacks == 1
    _assert_same_run(default, offloaded)


def test_monitor_validation_rollback_with_cpu_snapshots_is_bit_identical() -> None:
    default = _monitored(None, validate=True)
    offloaded = _monitored("cpu", validate=True)
    assert any(e.check == "val_rising" for e in default[2].events)
    _assert_same_run(default, offloaded)


def test_monitor_holds_every_snapshot_tensor_on_the_snapshot_device() -> None:
    _, _, mon = _monitored("cpu", nan_at=10**6, validate=True)
    assert mon._healthy is not None and mon._best_val is not None
    for held in (mon._healthy, mon._best_val):
        snap = held.snapshot
        assert snap.device == CPU
        tensors = _held(snap)
        assert len(tensors) > len(snap.params) and all(t.device == CPU for t in tensors)
    _, _, plain = _monitored(None, nan_at=10**6)
    assert plain._healthy is not None and plain._healthy.snapshot.device is None


def test_monitor_state_dict_round_trip_with_cpu_snapshots() -> None:
    uninterrupted = _monitored(None)
    for device in ("cpu", None):
        resumed = _monitored(device, cut_at=15)  # resumed before the NaN step: the rollback goes to a loaded snapshot
        assert resumed[2]._healthy is not None and resumed[2]._healthy.snapshot.device == (
            CPU if device else None)
        _assert_same_run(uninterrupted, resumed)


def test_a_skip_with_cpu_snapshots_is_exact() -> None:
    """``on_divergence="skip"``: the pre-step copy (also a snapshot) is kept on the snapshot device too."""
    out = []
    for device in (None, "cpu"):
        model = _net()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        mon = Monitor(model, opt, on_divergence="skip", grad_every=1, snapshot_device=device)
        for i, (x, y) in enumerate(_batches(12)):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y) * (float("nan") if i == 7 else 1.0)
            loss.backward()
            mon.after_backward(loss)
            if device is not None and i == 7:
                assert mon._pre is not None and mon._pre.device == CPU
            opt.step()
            mon.after_step()
        assert mon.skipped == 1
        out.append((model, opt, mon))
    _assert_same_run(out[0], out[1])


# ---------------------------------------------------------------------------------------------------- lr0=auto
def test_choose_lr0_shares_one_snapshot_on_the_snapshot_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.train.auto import choose_lr0

    devices: list[Any] = []
    capture = state_mod.Snapshot.capture.__func__  # type: ignore[attr-defined]

    def spy(cls: Any, *args: Any, **kwargs: Any) -> state_mod.Snapshot:
        snap = capture(cls, *args, **kwargs)
        if not kwargs.get("as_inner"):
            devices.append(snap.device)
        return snap

    monkeypatch.setattr(state_mod.Snapshot, "capture", classmethod(spy))
    chosen = []
    for device in (None, "cpu"):
        model = _net()
        opt = torch.optim.Adam(model.parameters())
        before = {k: v.clone() for k, v in model.state_dict().items()}
        auto = choose_lr0(model, opt, _batches(), _batches(2), total_steps=400, snapshot_device=device,
                          make_scheduler=lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / n))
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
        chosen.append((auto.lr, auto.finder.losses, [(trial.lr, trial.val_loss) for trial in auto.trials]))
    assert chosen[0] == chosen[1]
    assert devices == [None, CPU]  # one snapshot per call (find_lr restores from the caller's), on the device asked


# ---------------------------------------------------------------------------------------------------- lrkit.train
def test_train_key_snapshot_device_parses_validates_and_suggests() -> None:
    assert TrainConfig.from_tokens(["data=iris", "snapshot_device=cpu"]).snapshot_device == "cpu"
    assert TrainConfig.from_kwargs(snapshot_device=torch.device("cpu")).snapshot_device == "cpu"
    assert TrainConfig.from_kwargs().snapshot_device is None
    with pytest.raises(ValueError, match="snapshot_device='gpu'"):
        TrainConfig.from_tokens(["snapshot_device=gpu"])
    with pytest.raises(ValueError, match="Did you mean 'snapshot_device'"):
        TrainConfig.from_tokens(["snapshot_devic=cpu"])
    assert "snapshot" in TrainConfig.help("snapshot_device")


def test_train_with_snapshot_device_cpu_is_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lrkit.monitor.monitor as monitor_mod

    seen: list[Any] = []
    init = monitor_mod.Monitor.__init__

    def spy(self: Monitor, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if sum(p.numel() for p in self.model.parameters()) > 1:  # (not the one-weight probe that checks the options)
            seen.append(self.snapshot_device)

    monkeypatch.setattr(monitor_mod.Monitor, "__init__", functools.wraps(init)(spy))  # its signature: the options
    kw = {"data": "digits", "model": "mlp", "epochs": 2, "lr0": "auto", "device": "cpu", "project": tmp_path,
          "verbose": False, "plots": False}
    plain = lrkit.train(name="plain", **kw)
    offloaded = lrkit.train(name="offloaded", snapshot_device="cpu", **kw)
    assert seen == [None, CPU]
    assert plain.lr0 == offloaded.lr0
    drop = ("time", "epoch_time")
    assert [{k: v for k, v in h.items() if k not in drop} for h in plain.history] == \
        [{k: v for k, v in h.items() if k not in drop} for h in offloaded.history]
    assert _same_state(plain.model.state_dict(), offloaded.model.state_dict())
    # the Monitor option alone works too; the key and a Monitor option that disagree are an error naming both
    lrkit.train(name="option", monitor={"snapshot_device": "cpu"}, **{**kw, "lr0": 0.01})
    assert seen[-1] == CPU
    with pytest.raises(ValueError, match="snapshot_device='cpu'.*snapshot_device"):
        lrkit.train(name="both", snapshot_device="cpu", monitor={"snapshot_device": None}, **kw)
