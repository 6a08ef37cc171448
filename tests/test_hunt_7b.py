"""Bug hunt 7b on today's new code: ``lrkit.train(optimizer=<class>)``, frozen norms, ``lr0=auto``'s noise switch and
the Monitor's planned snapshot refresh.

Each test pins one bug found (it failed before its fix) or a known answer the new code must keep:

* a run recorded with a class resumes with the same class spelt ``"package.module:Class"`` either way;
* a class without a default ``lr`` takes its peak from a ``schedule=`` spec that names one;
* ``schedule=`` specs whose family sets momentum by default (``ultralytics``, ``onecycle``) train an optimizer without
  momentum (Adagrad), as the default schedule does, while asked-for momentum is still an error;
* Prodigy with a ``schedule=`` spec whose family warms the bias groups up separately (``ultralytics``) trains with
  one LR for every group, and an asked-for ``warmup_bias_lr`` is refused before anything is written;
* ``lr0=auto``'s range test and trials keep frozen BatchNorm layers in eval mode, as the run does;
* a parameter-less (``affine=False``) BatchNorm inside a frozen layer keeps its running statistics;
* ``AutoLR.to_dict()["suggestion"]`` is the suggestion the choice used, whatever ``NOISE_SCALING`` says later;
* the Monitor's planned refresh equals a fresh capture, and its rollback is bit-exact, after each way a parameter,
  a buffer or the optimizer's state can change under it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lrkit
from _helpers import three_class_split
from lrkit.train import auto as auto_mod

QUIET: dict[str, Any] = {"verbose": False, "plots": False}


def _data(n: int = 200) -> tuple[TensorDataset, TensorDataset]:
    return three_class_split(n)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def _kill_at(step: int) -> Callable[..., None]:
    def progress(**kw: Any) -> None:
        if kw.get("event") == "step" and kw["step"] == step:
            raise KeyboardInterrupt

    return progress


class NeedsLR(torch.optim.SGD):
    """A class whose ``lr`` has no default."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, lr=lr)


# ------------------------------------------------------------------------------------------------ resume spelling
@pytest.mark.parametrize("first, again", [
    (torch.optim.Adagrad, "torch.optim:Adagrad"),            # recorded 'torch.optim.adagrad:Adagrad'
    ("torch.optim:Adagrad", "torch.optim.adagrad:Adagrad"),  # recorded as written
])
def test_resume_takes_the_same_class_in_another_spelling(tmp_path: Path, first: Any, again: str) -> None:
    common = dict(data=_data(), epochs=3, lr0=0.01, project=tmp_path, **QUIET)
    full = lrkit.train(_model(), name="full", optimizer=first, **common)
    with pytest.raises(KeyboardInterrupt):
        lrkit.train(_model(), name="cut", optimizer=first, progress=_kill_at(full.steps_per_epoch + 1), **common)
    resumed = lrkit.train(_model(), data=_data(), resume=tmp_path / "cut", optimizer=again, **QUIET)
    assert resumed.optimizer == full.optimizer  # the run's own name is kept
    assert resumed.history[-1]["val_loss"] == full.history[-1]["val_loss"]
    # another class in that spelling is still refused
    with pytest.raises(ValueError, match=r"resume: optimizer='torch.optim:SGD' differs from the run being resumed"):
        lrkit.train(_model(), data=_data(), resume=tmp_path / "full", epochs=4, optimizer="torch.optim:SGD", **QUIET)


# ------------------------------------------------------------------------------------------------ lr0 from a spec
def test_a_class_without_a_default_lr_takes_the_peak_a_schedule_spec_names(tmp_path: Path) -> None:
    r = lrkit.train(_model(), data=_data(), epochs=2, optimizer=NeedsLR, schedule="cosine lr0=0.05",
                    project=tmp_path, **QUIET)
    assert r.lr0 == 0.05 and r.lr0_source == "user"
    # a spec without a peak still needs lr0, and the failure leaves nothing behind
    with pytest.raises(ValueError, match=r"NeedsLR has no default lr in its signature.*pass lr0=<number>"):
        lrkit.train(_model(), data=_data(), epochs=2, optimizer=NeedsLR, schedule="cosine", project=tmp_path,
                    name="nopeak", **QUIET)
    assert not (tmp_path / "nopeak").exists()


# ------------------------------------------------------------------------------------------------ specs x classes
@pytest.mark.parametrize("spec", ["ultralytics", "onecycle"])
def test_a_spec_with_default_momentum_trains_an_optimizer_without_momentum(tmp_path: Path, spec: str) -> None:
    r = lrkit.train(_model(), data=_data(), epochs=5, lr0=0.01, optimizer=torch.optim.Adagrad, schedule=spec,
                    project=tmp_path, **QUIET)
    assert r.epochs_run == 5
    # the LRs are the spec's own (momentum off changes no LR): compare with the spec planned by hand
    from lrkit import schedules

    spe = r.steps_per_epoch
    off = {"ultralytics": {"warmup_momentum": None, "momentum": None}, "onecycle": {"cycle_momentum": False}}[spec]
    sched = schedules.from_spec({"name": spec, **off, **({"lr0": None} if spec == "ultralytics" else {})},
                                epochs=5, steps_per_epoch=spe).with_peak(0.01)
    last = 5 * spe - 1  # the LR of the run's last optimizer step
    assert r.history[-1]["lr/all/decay"] == pytest.approx(sched.lr(last), rel=1e-9)


def test_a_spec_asking_for_momentum_with_adagrad_is_still_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"sets momentum, but param_groups\[0\] of Adagrad has neither"):
        lrkit.train(_model(), data=_data(), epochs=5, lr0=0.01, optimizer=torch.optim.Adagrad,
                    schedule="ultralytics warmup_momentum=0.5", project=tmp_path, name="x", **QUIET)
    assert not (tmp_path / "x").exists()


def test_prodigy_with_a_bias_warmup_spec_trains_with_one_lr(tmp_path: Path, capsys: Any) -> None:
    prodigy = pytest.importorskip("prodigyopt")
    r = lrkit.train(_model(), data=_data(), epochs=5, optimizer=prodigy.Prodigy, schedule="ultralytics",
                    project=tmp_path, verbose=True, plots=False)
    out = " ".join(capsys.readouterr().out.split())
    assert r.epochs_run == 5
    assert all(row["lr/all/decay"] == row["lr/all/bias"] for row in r.history)
    assert "Prodigy needs one LR across its param groups: warmup_bias_lr=0" in out
    with pytest.raises(ValueError, match=r"Prodigy adapts one step size .* warmup_bias_lr=0.1 .* use warmup_bias_lr=0"):
        lrkit.train(_model(), data=_data(), epochs=5, optimizer=prodigy.Prodigy,
                    schedule="ultralytics warmup_bias_lr=0.1", project=tmp_path, name="x", **QUIET)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------------ frozen norms
def _bn_model(affine: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16, affine=affine)), nn.ReLU(),
                         nn.Linear(16, 3))


def test_lr0_auto_keeps_frozen_batchnorm_in_eval_mode(tmp_path: Path) -> None:
    model = _bn_model()
    modes: list[bool] = []
    model[0][1].register_forward_pre_hook(lambda mod, inp: modes.append(mod.training))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = lrkit.train(model, data=_data(400), epochs=30, lr0="auto", optimizer="SGD", freeze=[0], batch=16, nbs=16,
                    project=tmp_path, **QUIET)
    assert r.auto is not None and len(r.auto.trials) >= 1
    assert modes and not any(modes)  # range test, trials and the run: the frozen norm never ran in train mode
    after = r.model.state_dict()
    for key in ("0.1.running_mean", "0.1.running_var", "0.1.num_batches_tracked"):
        assert torch.equal(after[key].cpu(), before[key]), key
    assert r.model[0][1].training  # the model's own modes are left as they were (train() after the run)


def test_a_parameterless_batchnorm_in_a_frozen_layer_keeps_its_statistics(tmp_path: Path, capsys: Any) -> None:
    model = _bn_model(affine=False)
    r = lrkit.train(model, data=_data(), epochs=2, lr0=0.01, optimizer="SGD", freeze=[0], project=tmp_path,
                    verbose=True, plots=False)
    assert int(r.model[0][1].num_batches_tracked) == 0
    assert torch.equal(r.model[0][1].running_mean.cpu(), torch.zeros(16))
    assert "1 normalisation layer among them" in " ".join(capsys.readouterr().out.split())
    # a layer that trains keeps updating the statistics of its parameter-less norm
    model = _bn_model(affine=False)
    r = lrkit.train(model, data=_data(), epochs=2, lr0=0.01, optimizer="SGD", freeze=[1], project=tmp_path, **QUIET)
    assert int(r.model[0][1].num_batches_tracked) > 0


# ------------------------------------------------------------------------------------------------ AutoLR record
def test_auto_record_keeps_the_suggestion_it_used(monkeypatch: Any) -> None:
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = x @ torch.randn(8, 1) + 0.3 * torch.randn(512, 1)
    data = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 512, 32)]
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def sched(o: torch.optim.Optimizer, n: int) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / n)

    a = auto_mod.choose_lr0(model, opt, data, data[:4], total_steps=600, make_scheduler=sched)
    used = float(a.log_lines[1].rsplit("suggests ", 1)[1]) if "suggests" in a.log_lines[1] else None
    first = a.to_dict()["suggestion"]
    assert used is not None and first == pytest.approx(used, rel=5e-3)
    monkeypatch.setattr(auto_mod, "NOISE_SCALING", not auto_mod.NOISE_SCALING)
    assert a.to_dict()["suggestion"] == first


# ------------------------------------------------------------------------------------------------ monitor refresh
def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_eq, a, b))
    return bool(a == b)


_MUTATIONS: dict[str, Callable[[nn.Module, torch.optim.Optimizer], Any]] = {
    "data_same_shape": lambda m, o: setattr(m[0].weight, "data", torch.randn(4, 4)),
    "set_": lambda m, o: m[0].weight.set_(torch.randn(4, 4)),
    "transposed_data": lambda m, o: setattr(m[0].weight, "data", m[0].weight.data.t()),
    "resize_": lambda m, o: m[2].bias.data.resize_(3),
    "half_data": lambda m, o: setattr(m[0].weight, "data", m[0].weight.data.half()),
    "model_double": lambda m, o: m.double(),
    "requires_grad": lambda m, o: m[0].bias.requires_grad_(False),
    "buffer_assigned": lambda m, o: setattr(m[1], "running_mean", torch.full((4,), 3.0)),
    "buffer_in_place": lambda m, o: m[1].running_mean.fill_(5.0),
    "optimizer_load_state_dict": lambda m, o: o.load_state_dict(copy.deepcopy(o.state_dict())),
    "state_tensor_swapped": lambda m, o: o.state[m[0].weight].__setitem__("exp_avg", torch.randn(4, 4)),
    "state_tensor_strided": lambda m, o: o.state[m[0].weight].__setitem__("exp_avg", torch.randn(4, 4).t()),
    "state_tensor_to_float": lambda m, o: o.state[m[0].weight].__setitem__("step", 7.0),
    "group_lr_tensor": lambda m, o: o.param_groups[0].__setitem__("lr", torch.tensor(0.5)),
    "group_added": lambda m, o: o.add_param_group({"params": [nn.Parameter(torch.randn(3))]}),
    "params_reordered": lambda m, o: o.param_groups[0].__setitem__("params", o.param_groups[0]["params"][::-1]),
    "optimizer_attribute": lambda m, o: setattr(o, "my_counter", torch.tensor(3.0)),
}


@pytest.mark.parametrize("lazy", [False, True], ids=["state", "lazy-state"])
@pytest.mark.parametrize("name", list(_MUTATIONS))
def test_planned_refresh_equals_a_fresh_capture_and_rolls_back_exactly(name: str, lazy: bool) -> None:
    from lrkit.monitor import Monitor
    from lrkit.monitor.monitor import _Healthy

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    o = torch.optim.Adam(m.parameters(), lr=0.01)
    mon = Monitor(m, o)

    def step() -> None:
        loss = m(torch.randn(8, 4).to(next(m.parameters()).dtype)).pow(2).mean()
        o.zero_grad()
        loss.backward()
        o.step()

    held = None
    for i in range(2):  # the second refresh has a plan to reuse
        if not (lazy and i == 0):
            step()
        snap, params, buffers, plan = mon._recapture(held, scheduler=False)
        held = _Healthy(snap, i, 1.0, {}, (params, buffers), None, plan)
    step()
    with torch.no_grad():
        _MUTATIONS[name](m, o)
    snap, _, _, _ = mon._recapture(held, scheduler=False)
    fresh, _, _ = mon._capture(scheduler=False)
    for field in ("params", "buffers", "opt_state", "opt_groups", "opt_attrs", "modes"):
        assert _eq(getattr(snap, field), getattr(fresh, field)), field
    expect = {k: v.clone() for k, v in m.state_dict().items()}
    expect_opt = copy.deepcopy(o.state_dict()["state"])
    m.train()
    try:
        step()
    except RuntimeError:  # a mutation that leaves the model unable to step (dtype mix): the restore still holds
        pass
    snap.restore()
    assert _eq(dict(m.state_dict()), expect)
    assert _eq(o.state_dict()["state"], expect_opt)
