"""Bug hunt 5 over lrkit.train.models / optim / results: each test failed before its fix unless it says otherwise.

Known answers: a scalar-feature dataset trains exactly as its one-column version does; optimizer names resolve to
the same torch classes in any case; ``to_dict()`` survives ``json.dumps(allow_nan=False)`` with the floats intact on
the attributes.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import lrkit
from lrkit.train.data import load_data
from lrkit.train.models import MLP, Linear, build_model
from lrkit.train.optim import build_optimizer, choose_optimizer
from lrkit.train.results import TrainResults

NAN, INF = float("nan"), float("inf")


# ------------------------------------------------------------------------------------------- models
def test_builtins_take_a_batch_of_scalar_features() -> None:
    # Bug: a dataset of scalar features (x of shape (N,), input_shape ()) sized Linear/MLP for 1 feature, but their
    # forward did x.flatten(1) on the (B,) batch: "Dimension out of range".
    x = torch.linspace(-1, 1, 5)
    lin, mlp = Linear(1, 2), MLP(1, 2, hidden=4)
    assert torch.equal(lin(x), lin(x.unsqueeze(1)))
    assert torch.equal(mlp(x), mlp(x.unsqueeze(1)))


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_a_scalar_feature_dataset_trains_like_its_one_column_version(model: str, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, generator=g)
    y = (x > 0.1).long()
    kw = dict(epochs=2, lr0=0.05, verbose=False, plots=False, project=str(tmp_path), monitor=False)
    flat = lrkit.train(model, data=TensorDataset(x, y), **kw)
    column = lrkit.train(model, data=TensorDataset(x.unsqueeze(1), y), **kw)
    assert [r["train_loss"] for r in flat.history] == [r["train_loss"] for r in column.history]
    assert flat.final_metric == column.final_metric
    for a, b in zip(flat.model.state_dict().values(), column.model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.fixture
def factories(tmp_path: Path) -> Path:
    f = tmp_path / "hunt5_factories.py"
    f.write_text(textwrap.dedent("""
        import torch

        class Net(torch.nn.Module):
            def __init__(self, in_features, num_classes):
                super().__init__()
                self.fc = torch.nn.Linear(in_features, num_classes)

            def forward(self, x):
                return self.fc(x)

        net = Net(4, 3)
        WIDTH = 3

        class Zoo:
            @staticmethod
            def small(in_features, num_classes):
                return torch.nn.Linear(in_features, num_classes)
    """), encoding="utf-8")
    return f


def test_a_module_instance_in_place_of_a_factory_is_named(factories: Path) -> None:
    # Bug: 'mod:net' (an nn.Module instance) was *called* with the factory keywords, i.e. net.forward(in_features=4,
    # ...), and the user read "Net.forward() got an unexpected keyword argument 'in_features'".
    with pytest.raises(ValueError, match=r"'net' is a Net instance \(an nn.Module\), not a factory") as e:
        build_model(f"{factories}:net", load_data("iris").info)
    assert "def " in str(e.value)  # says how to write one


def test_an_attribute_that_is_not_callable_is_not_called_unknown(factories: Path) -> None:
    # Bug: an attribute that exists but is an int was reported as an "unknown factory".
    with pytest.raises(ValueError, match=r"'WIDTH' is an int, not a callable factory"):
        build_model(f"{factories}:WIDTH", load_data("iris").info)


def test_a_misspelt_nested_attribute_gets_a_did_you_mean(factories: Path) -> None:
    # Bug: 'Zoo.smal' suggested a top-level name of the module (or nothing), never 'Zoo.small'.
    with pytest.raises(ValueError, match=r"unknown factory in .*'Zoo.smal'. Did you mean 'Zoo.small'\?"):
        build_model(f"{factories}:Zoo.smal", load_data("iris").info)


@pytest.mark.parametrize("spec", [3, 1.5, torch.nn.Linear, ["mlp"]])
def test_build_model_names_a_spec_of_the_wrong_type(spec: object) -> None:
    # Bug: build_model(3, info) raised "TypeError: argument of type 'int' is not iterable".
    with pytest.raises(ValueError, match=r"model=.* must be a built-in model name"):
        build_model(spec, load_data("iris").info)  # type: ignore[arg-type]


def test_a_builtin_name_with_spaces_is_stripped_as_a_factory_spec_is() -> None:
    # Bug: ' mlp' was an unknown model, while ' torch.nn : Identity ' was stripped.
    assert isinstance(build_model(" MLP ", load_data("iris").info), MLP)


# ------------------------------------------------------------------------------------------- optimizers
@pytest.mark.parametrize(("name", "cls"), [("sgd", torch.optim.SGD), ("ADAMW", torch.optim.AdamW),
                                           ("rmsprop", torch.optim.RMSprop), ("adamax", torch.optim.Adamax)])
def test_optimizer_names_resolve_in_any_case_in_the_python_api(name: str, cls: type) -> None:
    # Bug: the README says optimizer names work in any case, and lrkit.train(optimizer="sgd") does, but
    # choose_optimizer("sgd") / build_optimizer("sgd") said "unknown optimizer 'sgd'. Did you mean 'SGD'?".
    resolved, why = choose_optimizer(name, total_steps=100, task="classification")
    assert resolved.lower() == name.lower() and why == "as requested"
    opt = build_optimizer(name, [{"params": [torch.nn.Parameter(torch.zeros(2))]}], lr=0.1, momentum=0.9)
    assert type(opt) is cls


def test_optimizer_auto_in_any_case_and_a_typo_still_named() -> None:
    assert choose_optimizer("AUTO", total_steps=50_000, task=None)[0] == "SGD"
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamw2'. Did you mean 'AdamW'\?"):
        choose_optimizer("adamw2", total_steps=10, task=None)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp", "Adamax"])
def test_momentum_reaches_every_optimizer(name: str) -> None:
    # Not a bug (checked): momentum is never silently dropped; it is SGD/RMSprop momentum or the Adam family's beta1.
    opt = build_optimizer(name, [{"params": [torch.nn.Parameter(torch.zeros(2))]}], lr=0.1, momentum=0.42)
    group = opt.param_groups[0]
    assert group.get("momentum", group.get("betas", (None,))[0]) == 0.42


# ------------------------------------------------------------------------------------------- results
def _results(history: list[dict], **kw: object) -> TrainResults:
    base = dict(model=torch.nn.Linear(1, 1), lr0=0.01, lr0_source="user", auto=None, optimizer="SGD",
                optimizer_reason="as requested", task="classification", metric_name="accuracy", metric_mode="max",
                history=history, best_epoch=1, run_dir=Path("runs/train"))
    base.update(kw)
    return TrainResults(**base)  # type: ignore[arg-type]


def test_to_dict_is_strict_json_and_the_attributes_keep_their_floats() -> None:
    # Not a bug (checked): NaN/inf anywhere in the summary become null; the attributes keep the floats.
    hist = [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.5, "val_accuracy": 0.75},
            {"epoch": 2, "train_loss": NAN, "val_loss": INF, "val_accuracy": NAN}]
    events = [{"step": 3, "epoch": 1.5, "check": "non_finite", "action": "rollback", "values": {"loss": -INF}}]
    r = _results(hist, events=events, auto={"lr": NAN, "trials": [torch.tensor(INF)]})
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["final"]["train_loss"] is None and d["final"]["val_loss"] is None
    assert d["events"][0]["values"]["loss"] is None and d["auto"] == {"lr": None, "trials": [None]}
    assert d["best"]["val_accuracy"] == 0.75 and r.best_metric == 0.75
    assert math.isnan(r.final_metric) and r.final_val_loss == INF and r.best_val_loss == 0.5


def test_best_metric_for_a_loss_metric_and_for_no_finished_epoch() -> None:
    # Not a bug (checked): metric_name "val_loss" (a step_fn run) reads the val_loss column; no epochs -> NaN, {}.
    hist = [{"epoch": 1, "val_loss": 0.9}, {"epoch": 2, "val_loss": 0.4}, {"epoch": 3, "val_loss": 0.6}]
    r = _results(hist, metric_name="val_loss", metric_mode="min", best_epoch=2)
    assert (r.best_metric, r.final_metric, r.best_val_loss, r.epochs_run) == (0.4, 0.6, 0.4, 3)
    empty = _results([], best_epoch=0)
    assert empty.final == {} and empty.best == {} and math.isnan(empty.best_metric)


def test_a_factory_gets_in_features_1_for_scalar_samples(tmp_path: Path) -> None:
    # Bug: input_shape () is falsy, so a factory was offered in_features=None where the built-ins use 1.
    f = tmp_path / "hunt5_scalar.py"
    f.write_text("import torch\n\ndef make(in_features, num_classes):\n"
                 "    return torch.nn.Linear(in_features, num_classes)\n", encoding="utf-8")
    x = torch.randn(40)
    info = load_data(TensorDataset(x, (x > 0).long())).info
    assert info.input_shape == ()
    info.num_outputs = 2  # (the trainer counts the classes of a Dataset before building the model)
    m = build_model(f"{f}:make", info)
    assert isinstance(m, torch.nn.Linear) and (m.in_features, m.out_features) == (1, 2)
