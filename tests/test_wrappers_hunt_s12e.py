"""Session 12, s12e: ``nn.DataParallel`` (and ``torch.compile``) around the model — checkpoints, resume and the names
in messages and records — and parametrized models (``weight_norm``, ``spectral_norm``, a custom
``torch.nn.utils.parametrize`` parametrization) through ``find_lr``, ``lrkit.Monitor``, ``lrkit.train`` and the
fine-tuning groups. ``nn.DataParallel`` on CPU just calls the module it wraps, so these tests run anywhere.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

import lrkit
from lrkit.scaling import freeze_layers, param_groups


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


def _data() -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 8, generator=g)
    return torch.utils.data.TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())


def _train(model: nn.Module, tmp_path: Path, name: str, **kw: Any) -> Any:
    kw = {"epochs": 2, "lr0": 0.01, "batch": 16, "plots": False, "verbose": False, **kw}
    return lrkit.train(model=model, data=_data(), project=str(tmp_path), name=name, **kw)


def _kill_at(step: int) -> Any:
    def progress(**kw: Any) -> None:
        if kw.get("event") == "step" and kw["step"] == step:
            raise KeyboardInterrupt

    return progress


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


# ------------------------------------------------------------------------------------------------ DataParallel
def test_train_data_parallel_checkpoints_load_into_the_plain_model(tmp_path: Path) -> None:
    """``best.pt``/``last.pt`` of ``lrkit.train(model=nn.DataParallel(net))`` held ``module.``-prefixed keys, so
    ``net.load_state_dict(ckpt["model"])`` failed with missing keys; now they hold the plain model's names."""
    net = _net()
    results = _train(nn.DataParallel(net), tmp_path, "dp")
    for file in ("best.pt", "last.pt"):
        ckpt = torch.load(results.run_dir / file, weights_only=True)
        assert not any(k.startswith("module.") for k in ckpt["model"]), sorted(ckpt["model"])[:2]
        _net().load_state_dict(ckpt["model"])  # strict
    last = torch.load(results.run_dir / "last.pt", weights_only=True)["model"]
    assert _same(last, net.state_dict())


@pytest.mark.parametrize(("first", "second"), [(True, False), (False, True), (True, True)])
def test_resume_across_data_parallel_and_plain(tmp_path: Path, first: bool, second: bool) -> None:
    """A run resumes whether or not either half wrapped the model in DataParallel (it failed both ways: "Missing
    key(s)" for the other's names), and ends where the plain cut-and-resume does."""

    def cut_and_resume(name: str, a: bool, b: bool) -> tuple[Any, dict[str, torch.Tensor]]:
        _train(nn.DataParallel(_net()) if a else _net(), tmp_path, name, epochs=2)
        path = tmp_path / name / "last.pt"
        resumed = _train(nn.DataParallel(_net()) if b else _net(), tmp_path, name, epochs=3, resume=str(path))
        return resumed, torch.load(path, weights_only=True)["model"]

    ref, ref_model = cut_and_resume("plain", False, False)
    got, got_model = cut_and_resume("cut", first, second)
    assert [r["train_loss"] for r in got.history] == [r["train_loss"] for r in ref.history]
    assert _same(ref_model, got_model)


def test_resume_reads_a_last_pt_with_module_keys(tmp_path: Path) -> None:
    """A ``last.pt`` written by lrkit before it saved the plain names (``module.`` keys) still resumes."""
    _train(nn.DataParallel(_net()), tmp_path, "ref", epochs=2)
    reference = _train(nn.DataParallel(_net()), tmp_path, "ref", epochs=3, resume=str(tmp_path / "ref"))
    _train(_net(), tmp_path, "old", epochs=2)
    path = tmp_path / "old" / "last.pt"
    ck = torch.load(path, weights_only=True)
    ck["model"] = {f"module.{k}": v for k, v in ck["model"].items()}
    torch.save(ck, path)
    for second in (nn.DataParallel(_net()), _net()):
        shutil_copy = tmp_path / f"old{len(list(tmp_path.iterdir()))}"
        shutil_copy.mkdir()
        (shutil_copy / "last.pt").write_bytes(path.read_bytes())
        (shutil_copy / "args.yaml").write_bytes((tmp_path / "old" / "args.yaml").read_bytes())
        resumed = _train(second, tmp_path, shutil_copy.name, epochs=3, resume=str(shutil_copy / "last.pt"))
        assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in reference.history]


def test_a_model_whose_own_child_is_called_module_keeps_its_names(tmp_path: Path) -> None:
    """Only a wrapper's ``module.`` is taken off: a user model with a child named ``module`` saves and resumes with
    its own names."""

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = _net()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.module(x)

    torch.manual_seed(0)
    results = _train(Holder(), tmp_path, "h", epochs=2)
    ck = torch.load(results.run_dir / "last.pt", weights_only=True)
    assert all(k.startswith("module.") for k in ck["model"])
    Holder().load_state_dict(ck["model"])
    _train(Holder(), tmp_path, "h", epochs=3, resume=str(results.run_dir / "last.pt"))


@pytest.mark.parametrize("wrap", ["compile", "dp"])
def test_args_yaml_names_the_users_model_not_the_wrapper(tmp_path: Path, wrap: str) -> None:
    """``args.yaml``'s settings said ``model: <OptimizedModule>`` / ``<DataParallel>``, the resolved block
    ``DataParallel``; both now name the user's class and the wrapper after it."""
    model = torch.compile(_net(), backend="eager") if wrap == "compile" else nn.DataParallel(_net())
    label = "torch.compile" if wrap == "compile" else "DataParallel"
    text = (_train(model, tmp_path, wrap, epochs=1).run_dir / "args.yaml").read_text()
    assert f"model: <Sequential ({label})>" in text.splitlines()
    assert f"  model: Sequential ({label})" in text.splitlines()
    assert "OptimizedModule" not in text


# ------------------------------------------------------------------------------------------------ names in messages
@pytest.mark.parametrize("wrap", ["compile", "dp"])
def test_monitor_nonfinite_gradient_note_names_the_users_parameter(wrap: str) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model = torch.compile(net, backend="eager") if wrap == "compile" else nn.DataParallel(net)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = lrkit.Monitor(model, opt, on_explode="skip", grad_every=1)
    x = torch.randn(16, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(5):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            if step == 3:
                loss = loss + (net[0].weight * 0).sqrt().sum()  # finite loss, nan gradient in 0.weight
            loss.backward()
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
    reasons = [e.reason for e in monitor.events]
    assert any(r.endswith("in '0.weight'") for r in reasons), reasons


@pytest.mark.parametrize("wrap", ["compile", "dp"])
def test_find_lr_group_error_names_the_users_parameter(wrap: str) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model = torch.compile(net, backend="eager") if wrap == "compile" else nn.DataParallel(net)
    opt = torch.optim.SGD([{"params": [net[0].weight]}, {"params": [net[2].weight]}], lr=0.1)
    opt.param_groups[1]["params"].append(net[0].weight)
    loader = [(torch.randn(4, 4), torch.randn(4, 1))] * 4
    with pytest.raises(ValueError, match=r"^parameter '0\.weight' is in param groups 0 and 1"):
        lrkit.find_lr(model, opt, loader, loss_fn=nn.functional.mse_loss, num_steps=10)


# ------------------------------------------------------------------------------------------------ parametrizations
class _Symmetric(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return (w + w.T) / 2


class _Positive(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(w)

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        return w.clamp_min(1e-4).expm1().log()


def _param_net(kind: str) -> nn.Sequential:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                      nn.Linear(16, 2))
    if kind == "weight_norm":
        weight_norm(m[0])
        weight_norm(m[5])
    elif kind == "spectral_norm":
        spectral_norm(m[0])
        spectral_norm(m[3])
    else:
        parametrize.register_parametrization(m[3], "weight", _Symmetric())
    return m


KINDS = ["weight_norm", "spectral_norm", "custom"]


def _loader() -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(_data(), batch_size=16, shuffle=True,
                                       generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", KINDS)
def test_find_lr_restores_a_parametrized_model_exactly(kind: str) -> None:
    """The originals (``parametrizations.weight.original0/1``) and spectral_norm's ``_u``/``_v`` buffers, which
    change on every train-mode forward, come back bit for bit."""
    model = _param_net(kind)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    nn.functional.cross_entropy(model(_data().tensors[0][:16]), _data().tensors[1][:16]).backward()
    opt.step()
    opt.zero_grad()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = copy.deepcopy(opt.state_dict())
    result = lrkit.find_lr(model, opt, _loader(), loss_fn=nn.functional.cross_entropy, num_steps=20)
    assert result.num_steps_run >= 10
    assert _same(before, model.state_dict()) and str(opt_before) == str(opt.state_dict())


@pytest.mark.parametrize("action", ["rollback", "skip"])
def test_monitor_restores_a_spectral_norm_model(action: str) -> None:
    """A rollback puts spectral_norm's power-iteration vectors ``_u``/``_v`` back with the weights (the state is a
    step's state exactly); a skip undoes the optimizer step, leaving buffers as the forward left them (as BatchNorm's
    running statistics: the monitor's documented skip) — for ``_u``/``_v`` one more power iteration on the same
    restored weight, which depends on the weight only, never on the bad batch."""
    x = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
    y = x.sum(1, keepdim=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    spectral_norm(model[0])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = lrkit.Monitor(model, opt, on_divergence=action, on_explode=action, snapshot_every=1)
    states, snapshots_taken_here = [], []  # the monitor snapshots in after_backward, before the step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(21):
            i = (step * 32) % 256
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x[i:i + 32] * (1e6 if step == 20 else 1.0)), y[i:i + 32])
            loss.backward()
            snapshots_taken_here.append({k: v.clone() for k, v in model.state_dict().items()})
            monitor.after_backward(loss)
            opt.step()
            monitor.after_step()
            states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert [e.action for e in monitor.events if e.step == 20][:1] == [action]
    after = states[-1]
    assert "0.parametrizations.weight.0._u" in after
    if action == "rollback":
        # weights and _u/_v of one earlier moment, together
        assert any(_same(after, s) for s in states[:-1] + snapshots_taken_here[:-1])
    else:
        params = {n for n, _ in model.named_parameters()}
        assert all(torch.equal(after[k], states[-2][k]) for k in params)


@pytest.mark.parametrize("kind", KINDS)
def test_train_parametrized_model_checkpoint_loads_and_resume_is_bit_for_bit(tmp_path: Path, kind: str) -> None:
    common = {"epochs": 4, "seed": 3}
    full = _train(_param_net(kind), tmp_path, "full", **common)
    with pytest.raises(KeyboardInterrupt):
        _train(_param_net(kind), tmp_path, "cut", progress=_kill_at(2 * full.steps_per_epoch + 1), **common)
    resumed = lrkit.train(model=_param_net(kind), resume=str(tmp_path / "cut" / "last.pt"), data=_data(),
                          plots=False, verbose=False)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert _same(full.model.state_dict(), resumed.model.state_dict())
    fresh = _param_net(kind)
    fresh.load_state_dict(torch.load(full.run_dir / "best.pt", weights_only=True)["model"])


def _kinds(groups: list[dict[str, Any]], model: nn.Module) -> dict[str, str]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g["name"] for g in groups for p in g["params"]}


def test_weight_norm_magnitude_decays_like_the_weight_it_scales() -> None:
    """The decision (as timm's ``param_groups_weight_decay`` — ``original0`` of a Linear is 2-D — and transformers'
    ``get_decay_parameter_names`` — neither a bias nor a LayerNorm's): ``weight_norm``'s magnitude ``original0`` and
    direction ``original1`` are the weight, decayed together and at the weight's layer depth; ``no_decay=[...,
    "original0"]`` spares the magnitude."""
    model = _param_net("weight_norm")
    kinds = _kinds(param_groups(model, 1e-3, weight_decay=0.1, layer_decay=0.5), model)
    assert kinds["0.parametrizations.weight.original0"] == kinds["0.parametrizations.weight.original1"] \
        == "layer0/decay"
    assert kinds["5.parametrizations.weight.original0"] == "layer3/decay"
    spared = _kinds(param_groups(model, 1e-3, weight_decay=0.1, no_decay=("bias", "norm", "original0")), model)
    assert spared["0.parametrizations.weight.original0"] == "all/no_decay"
    assert spared["0.parametrizations.weight.original1"] == "all/decay"


def test_a_parametrized_bias_is_a_bias_and_a_parametrized_norm_weight_is_not_decayed() -> None:
    """``register_parametrization(layer, "bias", ...)`` renames the bias ``parametrizations.bias.original``: it was
    grouped as a decayed-or-not weight (``is_bias=False``, so ``warmup_bias_lr`` missed it, and with ``"bias"``
    out of ``no_decay`` it decayed as a weight would); a parametrized norm layer's weight lives in the
    ``ParametrizationList`` under the norm layer, not in the layer itself, and was decayed."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    parametrize.register_parametrization(model[0], "bias", _Positive())
    parametrize.register_parametrization(model[1], "weight", _Positive())
    groups = param_groups(model, 1e-3, weight_decay=0.1)
    kinds = _kinds(groups, model)
    assert kinds["0.parametrizations.bias.original"] == "all/bias"
    assert kinds["1.parametrizations.weight.original"] == "all/no_decay"
    assert kinds["0.weight"] == "all/decay"
    bias_group = next(g for g in groups if g["name"] == "all/bias")
    assert bias_group["is_bias"] and bias_group["weight_decay"] == 0.0


def test_freeze_by_the_parametrized_tensors_own_name() -> None:
    """``freeze=["0.weight"]`` on a weight-normed layer names the weight the user sees (``model[0].weight``):
    it freezes both originals (it was refused: no parameter has that name)."""
    model = _param_net("weight_norm")
    frozen = freeze_layers(model, ["0.weight"])
    assert frozen == ["0.parametrizations.weight.original0", "0.parametrizations.weight.original1"]
    assert model[0].bias.requires_grad
    assert freeze_layers(_param_net("weight_norm"), 1) == ["0.bias", "0.parametrizations.weight.original0",
                                                         "0.parametrizations.weight.original1"]
