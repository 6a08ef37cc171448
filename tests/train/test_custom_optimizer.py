"""``lrkit.train(optimizer=...)`` with any ``torch.optim.Optimizer`` class, not only the seven registry names.

Known answers: a torch class built by lrkit trains bit-for-bit as the registry entry of the same construction does;
an optimizer without momentum follows Ultralytics' LR formula exactly; a schedule-free optimizer's validation loss
and checkpoints are those of its eval-mode weights (recomputed here by hand); kill + resume equals an uninterrupted
run, and ``args.yaml`` names the class so that ``resume=True`` rebuilds it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import torch
import yaml
from torch.utils.data import TensorDataset

import lrkit
from _helpers import three_class_split
from lrkit import schedules
from lrkit._config import TrainConfig, class_spec
from lrkit.train.optim import build_optimizer, class_default_lr, momentum_target, resolve_optimizer

QUIET: dict[str, Any] = {"verbose": False, "plots": False}
TIMING = ("time", "epoch_time")


# ------------------------------------------------------------------------------------------------ fixtures
class Lion(torch.optim.Optimizer):
    """A third-party-style optimizer (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): its own
    default lr and betas, sign updates, decoupled weight decay."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None if closure is None else closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(b1 * m + (1 - b1) * p.grad), alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)
        return loss


class NeedsLR(torch.optim.SGD):
    """A class whose ``lr`` has no default."""

    def __init__(self, params: Iterable[Any], lr: float) -> None:
        super().__init__(params, lr=lr)


def _data(n: int = 200) -> tuple[TensorDataset, TensorDataset]:
    return three_class_split(n)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)  # the same initial weights in every run
    return torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 3))


def _kill_at(step: int) -> Callable[..., None]:
    def progress(**kw: Any) -> None:
        if kw.get("event") == "step" and kw["step"] == step:
            raise KeyboardInterrupt

    return progress


def _same_run(a: Any, b: Any) -> None:
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    assert len(a.history) == len(b.history)
    for ra, rb in zip(a.history, b.history, strict=True):
        assert {k: v for k, v in ra.items() if k not in TIMING} == {k: v for k, v in rb.items() if k not in TIMING}


def _val_loss(model: torch.nn.Module, val: TensorDataset) -> float:
    model.eval()
    with torch.no_grad():
        x, y = val.tensors
        return float(torch.nn.functional.cross_entropy(model(x), y))


# ------------------------------------------------------------------------------------------------ config
def test_config_takes_a_class_and_a_module_colon_name_and_records_the_class_by_name() -> None:
    cfg = TrainConfig.from_kwargs(optimizer=torch.optim.Adagrad)
    assert cfg.optimizer is torch.optim.Adagrad
    assert cfg.to_dict()["optimizer"] == "torch.optim.adagrad:Adagrad"
    assert resolve_optimizer(cfg.to_dict()["optimizer"]) is torch.optim.Adagrad  # the record names it again
    assert TrainConfig.from_tokens(["optimizer=torch.optim:Adagrad"]).optimizer == "torch.optim:Adagrad"
    assert TrainConfig.from_kwargs(optimizer=Lion).to_dict()["optimizer"] == f"{Lion.__module__}:Lion"

    class Local(torch.optim.SGD):
        pass

    # a class that no name can import again is a placeholder, which a resume asks to be passed again
    assert class_spec(Local).startswith("<") and class_spec(Local).endswith("Local>")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))]),
         r"got a Adagrad instance, which is bound to the parameters it was built on; pass the class instead "
         r"\(optimizer=Adagrad, not Adagrad\(...\)\)"),
        (torch.nn.Linear, r"optimizer=torch.nn.modules.linear.Linear is a class but not a torch.optim.Optimizer"),
        (3, r"optimizer=3 must be an optimizer name .* 'package.module:ClassName', or a torch.optim.Optimizer"),
        ("torch.optim:", r"write an optimizer class as 'package.module:ClassName', e.g. 'torch.optim:Adagrad'"),
        ("adagrad", r"unknown optimizer 'adagrad'.*or an Optimizer class as 'package.module:ClassName'"),
    ],
)
def test_config_refuses_what_is_not_an_optimizer_class_naming_it(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_kwargs(optimizer=value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_pkg_xyz.optim:Fast",
         r"optimizer='no_such_pkg_xyz.optim:Fast': cannot import 'no_such_pkg_xyz.optim'"),
        ("torch.optim:Adagard", r"unknown Optimizer class in torch.optim: 'Adagard'. Did you mean 'Adagrad'\?"),
        ("collections:OrderedDict", r"is the class collections.OrderedDict, not a torch.optim.Optimizer subclass"),
        ("math:pi", r"optimizer='math:pi' is a float, not a torch.optim.Optimizer subclass"),
    ],
)
def test_module_colon_name_errors_name_the_spec(spec: str, message: str, tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_optimizer(spec)
    # and through lrkit.train, before anything is written
    with pytest.raises(ValueError, match=message):
        lrkit.train(torch.nn.Linear(4, 3), data="iris", optimizer=spec, lr0=0.1, epochs=1, project=tmp_path, **QUIET)
    assert not list(tmp_path.iterdir())


def test_an_instance_in_a_module_is_refused_with_pass_the_class(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "my_opts.py").write_text("import torch\nopt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"is an instance of SGD, bound to the parameters it was built on; pass the "
                                         r"class \(SGD\)"):
        resolve_optimizer("my_opts:opt")
    sys.modules.pop("my_opts", None)


# ------------------------------------------------------------------------------------------------ construction
def test_momentum_goes_to_momentum_or_beta1_or_nowhere() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    assert (momentum_target(torch.optim.SGD), momentum_target(Lion), momentum_target(torch.optim.Adagrad)) == (
        "momentum", "betas[0]", None)
    assert build_optimizer(torch.optim.RMSprop, [{"params": [p]}], lr=0.1, momentum=0.7).param_groups[0][
        "momentum"] == 0.7
    lion = build_optimizer(Lion, [{"params": [p]}], lr=0.1, momentum=0.7)
    assert lion.param_groups[0]["betas"] == (0.7, 0.99)  # the class's own beta2 kept
    ada = build_optimizer("torch.optim:Adagrad", [{"params": [p]}], lr=0.1, momentum=0.7)
    assert type(ada) is torch.optim.Adagrad and "momentum" not in ada.param_groups[0]
    assert ada.param_groups[0]["lr"] == 0.1


def test_default_lr_comes_from_the_signature() -> None:
    assert class_default_lr(Lion) == 1e-4
    assert class_default_lr(torch.optim.Adagrad) == 0.01
    assert class_default_lr(NeedsLR) is None
    sf = pytest.importorskip("schedulefree")
    assert class_default_lr(sf.AdamWScheduleFree) == 0.0025
    prodigy = pytest.importorskip("prodigyopt")
    assert class_default_lr(prodigy.Prodigy) == 1.0


def test_lr0_none_takes_the_class_default_and_logs_it(tmp_path: Any, capsys: Any) -> None:
    r = lrkit.train(_model(), data=_data(), optimizer=Lion, epochs=1, project=tmp_path, plots=False)
    out = capsys.readouterr().out
    assert (r.lr0, r.lr0_source) == (1e-4, "default")
    assert "lr0=0.0001 (Lion's default lr, from its signature" in out
    assert "Lion built with betas=(0.937, 0.99): momentum=0.937 is its beta1" in out
    ck = torch.load(r.run_dir / "last.pt", weights_only=True)
    assert ck["optimizer"]["param_groups"][0]["betas"] == (0.937, 0.99)


def test_a_class_without_a_default_lr_needs_lr0(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"NeedsLR has no default lr in its signature, so lr0 has nothing to default "
                                         r"to; pass lr0=<number> \(its peak LR\) or lr0='auto'"):
        lrkit.train(_model(), data=_data(), optimizer=NeedsLR, epochs=1, project=tmp_path, **QUIET)
    r = lrkit.train(_model(), data=_data(), optimizer=NeedsLR, lr0=0.05, epochs=1, project=tmp_path, **QUIET)
    assert (r.lr0, r.lr0_source) == (0.05, "user")


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize(("cls", "name"), [(torch.optim.Adam, "Adam"), (torch.optim.RMSprop, "RMSProp")])
def test_a_torch_class_trains_exactly_as_the_registry_entry_of_the_same_construction(
        tmp_path: Any, cls: type, name: str) -> None:
    # Adam(groups, lr, betas=(momentum, 0.999)) and RMSprop(groups, lr, momentum=momentum) are what the registry
    # builds too: warmup momentum, nbs accumulation + weight-decay scaling, schedule and monitor must all agree
    common = dict(data=_data(), epochs=3, batch=16, nbs=32, lr0=0.003, warmup_epochs=1, seed=1, project=tmp_path,
                  **QUIET)
    by_name = lrkit.train(_model(), optimizer=name, name="name", **common)
    by_class = lrkit.train(_model(), optimizer=cls, name="class", **common)
    _same_run(by_name, by_class)
    assert by_class.optimizer == f"{cls.__module__}:{cls.__name__}"
    assert (by_class.accumulate, by_class.weight_decay) == (2, pytest.approx(5e-4 * 16 * 2 / 32))
    ck = torch.load(by_class.run_dir / "last.pt", weights_only=True)
    assert {g["weight_decay"] for g in ck["optimizer"]["param_groups"]} == {0.0, by_class.weight_decay}


def test_an_optimizer_without_momentum_follows_ultralytics_lr_exactly(tmp_path: Any, capsys: Any) -> None:
    r = lrkit.train(_model(), data=_data(), optimizer=torch.optim.Adagrad, lr0=0.05, epochs=3, batch=16, nbs=16,
                    warmup_epochs=1, project=tmp_path, plots=False)
    out = capsys.readouterr().out
    assert ("note — Adagrad takes neither momentum nor betas: momentum=0.937 is not used and warmup_momentum=0.8 "
            "does nothing") in out
    spe = r.steps_per_epoch
    ref = schedules.ultralytics(lr0=0.05, lrf=0.01, cos_lr=False, epochs=3, steps_per_epoch=spe, warmup_epochs=1,
                                warmup_bias_lr=0.1)
    for row in r.history:
        last = row["epoch"] * spe - 1  # the LR of the epoch's last optimizer step
        assert row["lr/all/decay"] == pytest.approx(ref.lr(last), rel=1e-12)
        assert row["lr/all/bias"] == pytest.approx(ref.lr(last, is_bias=True), rel=1e-12)
    assert r.history[-1]["val_loss"] < r.history[0]["val_loss"]


def test_lr0_auto_with_a_class(tmp_path: Any) -> None:
    torch.manual_seed(0)  # no dropout: its masks differ between torch releases, and on this small noisy task so would
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))  # the curve
    r = lrkit.train(model, data=_data(400), optimizer=torch.optim.Adagrad, lr0="auto", epochs=3, batch=8, nbs=8,
                    auto_budget=0.9, project=tmp_path, **QUIET)
    assert r.lr0_source == "auto" and r.auto is not None and r.lr0 == pytest.approx(float(r.auto.lr))
    assert 1e-5 < r.lr0 < 10 and len(r.auto.trials) >= 1  # the suggestion's trial (the guard follows no win)
    assert math.isfinite(r.history[-1]["val_loss"])


def test_kill_and_resume_a_custom_class_rebuilds_it_from_args_yaml(tmp_path: Any) -> None:
    common = dict(data="wine", model="mlp", epochs=3, batch=16, nbs=16, optimizer=Lion, lr0=3e-3, seed=2,
                  project=tmp_path, **QUIET)
    full = lrkit.train(name="full", **common)
    with pytest.raises(KeyboardInterrupt):
        lrkit.train(name="cut", progress=_kill_at(full.steps_per_epoch + 2), **common)
    args = yaml.safe_load((tmp_path / "cut" / "args.yaml").read_text())
    assert args["optimizer"] == f"{Lion.__module__}:Lion"
    resumed = lrkit.train(resume=True, project=tmp_path, **QUIET)  # no optimizer=: rebuilt from the recorded name
    assert resumed.run_dir == tmp_path / "cut" and resumed.optimizer == f"{Lion.__module__}:Lion"
    _same_run(full, resumed)


def test_resume_refuses_another_class_and_asks_for_an_unnamed_one(tmp_path: Any) -> None:
    common = dict(data="iris", model="linear", epochs=2, lr0=0.01, project=tmp_path, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        lrkit.train(name="ada", optimizer=torch.optim.Adagrad, progress=_kill_at(3), **common)
    with pytest.raises(ValueError, match=r"resume: optimizer='torch.optim.sgd:SGD' differs from the run being "
                                         r"resumed \(optimizer='torch.optim.adagrad:Adagrad'\)"):
        lrkit.train(resume=tmp_path / "ada", optimizer=torch.optim.SGD, **QUIET)

    class Local(torch.optim.Adagrad):
        pass

    with pytest.raises(KeyboardInterrupt):
        lrkit.train(name="local", optimizer=Local, progress=_kill_at(3), **common)
    with pytest.raises(ValueError, match=r"cannot be imported by name .*pass the same optimizer= class again"):
        lrkit.train(resume=tmp_path / "local", **QUIET)
    resumed = lrkit.train(resume=tmp_path / "local", optimizer=Local, **QUIET)
    assert resumed.epochs_run == 2


# ------------------------------------------------------------------------------------------------ schedule-free
def test_schedule_free_validates_and_saves_the_eval_mode_weights(tmp_path: Any, capsys: Any) -> None:
    sf = pytest.importorskip("schedulefree")
    train_ds, val_ds = _data()
    r = lrkit.train(_model(), data=(train_ds, val_ds), optimizer=sf.AdamWScheduleFree, epochs=3, batch=16, nbs=16,
                    lrf=1.0, warmup_epochs=1, project=tmp_path, plots=False)
    assert "AdamWScheduleFree has train/eval modes (schedule-free)" in capsys.readouterr().out
    assert r.lr0 == 0.0025 and r.lr0_source == "default"
    ck = torch.load(r.run_dir / "last.pt", weights_only=True)
    assert {g["train_mode"] for g in ck["optimizer"]["param_groups"]} == {False}  # saved in eval mode
    # the recorded validation loss is the loss of the weights last.pt holds (eval mode: the average x) ...
    model = _model()
    model.load_state_dict(ck["model"])
    assert _val_loss(model, val_ds) == pytest.approx(r.history[-1]["val_loss"], rel=1e-5)
    assert all(torch.equal(a, b.cpu()) for a, b in zip(model.state_dict().values(), r.model.state_dict().values()))
    # ... and not of the train-mode point y the gradients were taken at, which differs measurably
    opt = sf.AdamWScheduleFree(lrkit.param_groups(model, r.lr0, weight_decay=r.weight_decay))
    opt.load_state_dict(ck["optimizer"])
    opt.train()
    assert abs(_val_loss(model, val_ds) - r.history[-1]["val_loss"]) > 1e-4
    best = torch.load(r.run_dir / "best.pt", weights_only=True)
    model.load_state_dict(best["model"])
    assert _val_loss(model, val_ds) == pytest.approx(r.history[r.best_epoch - 1]["val_loss"], rel=1e-5)


def test_schedule_free_kill_and_resume_equals_an_uninterrupted_run(tmp_path: Any) -> None:
    sf = pytest.importorskip("schedulefree")
    common = dict(data=_data(), epochs=3, batch=16, nbs=32, optimizer=sf.AdamWScheduleFree, lr0=0.01,
                  warmup_epochs=1, seed=3, project=tmp_path, **QUIET)
    full = lrkit.train(_model(), name="full", **common)
    with pytest.raises(KeyboardInterrupt):
        lrkit.train(_model(), name="cut", progress=_kill_at(full.steps_per_epoch + 2), **common)
    resumed = lrkit.train(_model(), data=_data(), resume=tmp_path / "cut" / "last.pt", **QUIET)
    _same_run(full, resumed)


def test_schedule_free_with_lr0_auto_and_the_monitor(tmp_path: Any) -> None:
    sf = pytest.importorskip("schedulefree")
    r = lrkit.train(_model(), data=_data(400), optimizer=sf.AdamWScheduleFree, lr0="auto", epochs=3, batch=8, nbs=8,
                    auto_budget=0.9, monitor={"on_divergence": "rollback"}, project=tmp_path, **QUIET)
    assert r.lr0_source == "auto" and len(r.auto.trials) >= 1
    assert r.history[-1]["val_loss"] < r.history[0]["val_loss"] or r.history[-1]["val_accuracy"] > 0.5


def test_eval_mode_loader_switches_the_optimizer_for_each_pass() -> None:
    sf = pytest.importorskip("schedulefree")
    from lrkit.train.trainer import _EvalModeLoader

    p = torch.nn.Parameter(torch.ones(3))
    opt = sf.AdamWScheduleFree([p], lr=0.1)
    opt.train()
    for k in range(3):  # a few different gradients: the average x moves away from the point y
        p.grad = torch.tensor([1.0, -2.0, 0.5]) * (k + 1)
        opt.step()
    y = p.detach().clone()
    seen: list[torch.Tensor] = []

    def set_mode(*, train: bool) -> None:
        (opt.train if train else opt.eval)()

    for _ in _EvalModeLoader([0, 1], set_mode):
        seen.append(p.detach().clone())
    assert not torch.equal(seen[0], y)  # eval mode: the average x, not y
    assert torch.allclose(p.detach(), y) and opt.param_groups[0]["train_mode"] is True  # back in train mode


def test_prodigy_trains_with_one_lr_for_every_group(tmp_path: Any, capsys: Any) -> None:
    prodigy = pytest.importorskip("prodigyopt")
    r = lrkit.train(_model(), data=_data(), optimizer=prodigy.Prodigy, epochs=2, batch=16, nbs=16, project=tmp_path,
                    plots=False)
    out = capsys.readouterr().out
    assert r.lr0 == 1.0 and "Prodigy needs one LR across its param groups: warmup_bias_lr=0" in out
    assert r.history[-1]["lr/all/decay"] == r.history[-1]["lr/all/bias"]
    # the step size Prodigy took (d x lr) beside the multiplier, which alone reads 1.0 x the schedule
    groups = torch.load(r.run_dir / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    for key, group in zip(("all/decay", "all/bias"), groups):
        # d x lr with the d the last step used: Prodigy's d only grows, and the group now holds the next step's
        assert 0 < r.history[-1][f"d_lr/{key}"] <= group["d"] * r.history[-1][f"lr/{key}"] * (1 + 1e-12)
        assert r.history[-1][f"d_lr/{key}"] != r.history[-1][f"lr/{key}"]
    assert "d_lr/all/decay" in (r.run_dir / "results.csv").read_text().splitlines()[0]
    with pytest.raises(ValueError, match=r"Prodigy adapts one step size .* but warmup_bias_lr=0.1 starts the bias "
                                         r"groups at their own LR; use warmup_bias_lr=0"):
        lrkit.train(_model(), data=_data(), optimizer=prodigy.Prodigy, warmup_bias_lr=0.1, epochs=1,
                    project=tmp_path, **QUIET)
    with pytest.raises(ValueError, match=r"but backbone_lr_scale set LR scales 0.1, 1; drop them for Prodigy"):
        lrkit.train("mlp", data="iris", optimizer=prodigy.Prodigy, backbone_lr_scale=0.1, epochs=1,
                    project=tmp_path, **QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]  # the first run's: the failures left nothing


# ------------------------------------------------------------------------------------------------ CLI and YAML
def test_cli_and_cfg_take_module_colon_class(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    runner = CliRunner()
    project = tmp_path / "runs"
    res = runner.invoke(build_app(), ["train", "data=iris", "model=linear", "epochs=2", "lr0=0.05",
                                      "optimizer=torch.optim:Adagrad", f"project={project}", "plots=false"])
    assert res.exit_code == 0, res.output
    args = yaml.safe_load((project / "train" / "args.yaml").read_text())
    assert args["optimizer"] == "torch.optim:Adagrad" and args["resolved"]["optimizer"] == "torch.optim:Adagrad"
    ck = torch.load(project / "train" / "last.pt", weights_only=True)
    assert "initial_accumulator_value" in ck["optimizer"]["param_groups"][0]  # an Adagrad was built
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: iris\nmodel: linear\nepochs: 1\noptimizer: torch.optim:RMSprop\nproject: {project}\n"
                   "plots: false\nname: yaml\n")
    res = runner.invoke(build_app(), ["train", f"cfg={cfg}"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((project / "yaml" / "args.yaml").read_text())["optimizer"] == "torch.optim:RMSprop"
    res = runner.invoke(build_app(), ["train", "data=iris", "optimizer=torch.optim:Adagard", f"project={project}"])
    assert res.exit_code != 0 and "Did you mean 'Adagrad'" in res.output


# ------------------------------------------------- classes that cannot train lrkit's models are named, not crashed
def test_sparse_adam_and_the_abstract_base_are_refused_up_front(tmp_path) -> None:
    for cls, words in ((torch.optim.SparseAdam, "only takes sparse gradients"), (torch.optim.Optimizer, "abstract")):
        with pytest.raises(ValueError, match=words):
            lrkit.train("linear", data="iris", epochs=1, optimizer=cls, project=tmp_path, verbose=False, plots=False)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_did_you_mean_offers_only_classes_that_could_train() -> None:
    from lrkit.train.optim import resolve_optimizer

    with pytest.raises(ValueError, match="Adagrad") as info:
        resolve_optimizer("torch.optim:Adagard")
    valid = str(info.value).split("Valid:")[1]
    assert "SparseAdam" not in valid and "Optimizer," not in valid and not valid.strip().startswith("Optimizer")


class _StepFails(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):  # a third-party optimizer that cannot handle these parameters
        raise RuntimeError("this optimizer needs 2-D parameters")


def test_a_class_whose_step_fails_is_named_with_its_own_words(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"_StepFails.step\(\) failed .*needs 2-D parameters"):
        lrkit.train("linear", data="iris", epochs=1, optimizer=_StepFails, project=tmp_path, verbose=False,
                    plots=False)
