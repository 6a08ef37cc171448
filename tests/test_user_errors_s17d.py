"""Errors in the user's own words: `lrkit train` key errors show a number as it was typed (`lr0=-1e-3`, not
`lr0=-0.001`), on the command line and in a cfg file; a `lrkit find` task file whose loss, step, model, optimizer
or loader function goes by another common name (`criterion`, `train_step`, `get_model`, ...) is told which name
lrkit expects, instead of silently running the default loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from _helpers import MSE_LOSS_FN, TASK_SOURCE, write_task
from lrkit._config import TrainConfig, tokens_to_kwargs
from lrkit.cli.app import build_app
from lrkit.finder.demo import load_task_file


def _token_error(*tokens: str) -> str:
    with pytest.raises(ValueError) as info:
        TrainConfig.from_kwargs(**tokens_to_kwargs(["data=digits", *tokens]))
    return str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# 1. train key errors show the value as typed
# ---------------------------------------------------------------------------------------------------------------
def test_cli_lr0_error_shows_the_value_as_typed() -> None:
    res = CliRunner().invoke(build_app(), ["train", "data=digits", "lr0=-1e-3"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "lr0=-1e-3 must be a number > 0 or 'auto'" in text, text
    assert "-0.001" not in text, text


@pytest.mark.parametrize(("token", "expected"), [
    ("lr0=-1e-3", "lr0=-1e-3 must be a number > 0 or 'auto'"),
    ("lr0=1e400", "lr0=1e400 must be a number > 0 or 'auto'"),
    ("lrf=2e0", "lrf=2e0 must be in [0, 1]"),
    ("momentum=1.0e0", "momentum=1.0e0 must be in [0, 1)"),
    ("weight_decay=-5e-4", "weight_decay=-5e-4 must be >= 0"),
    ("warmup_epochs=-1E0", "warmup_epochs=-1E0 must be >= 0"),
    ("warmup_momentum=1e0", "warmup_momentum=1e0 must be in [0, 1)"),
    ("warmup_bias_lr=-1e-1", "warmup_bias_lr=-1e-1 must be >= 0"),
    ("val=1.00", "val=1.00 must be in (0, 1)"),
    ("auto_budget=0e0", "auto_budget=0e0 must be in (0, 1]"),
    ("backbone_lr_scale=-1e-1", "backbone_lr_scale=-1e-1 must be > 0"),
    ("layer_decay=0.0e0", "layer_decay=0.0e0 must be in (0, 1]"),
    ("epochs=2.50", "epochs=2.50 must be an integer"),
    ("epochs=1e400", "epochs=1e400 must be an integer"),
    ("epochs=-1e1", "epochs=-1e1 must be an integer >= 1"),
    ("patience=-1e0", "patience=-1e0 must be an integer >= 0"),
    ("workers=-01", "workers=-01 must be an integer >= 0"),
    ("seq_len=1.0", "seq_len=1.0 must be an integer >= 2"),
    ("nbs=0e0", "nbs=0e0 must be an integer >= 1"),
    ("seed=1e30", "seed=1e30 must be an integer in [0, 2**64)"),
    ("batch=1e30", "batch=1e30 is larger than a DataLoader can take"),
    ("batch=-1e0", "batch=-1e0 is Ultralytics' AutoBatch"),
])
def test_every_numeric_train_key_shows_the_token_as_typed(token: str, expected: str) -> None:
    assert expected in _token_error(token)


def test_the_python_api_still_shows_the_repr_of_what_was_passed() -> None:
    with pytest.raises(ValueError, match=r"lr0=-0\.001 must be a number > 0 or 'auto'"):
        TrainConfig.from_kwargs(data="digits", lr0=-1e-3)
    with pytest.raises(ValueError, match=r"epochs=2\.5 must be an integer"):
        TrainConfig.from_kwargs(data="digits", epochs=2.5)


def test_typed_values_are_plain_numbers_once_checked() -> None:
    """Remembering the typed text changes no value: the config holds plain ints and floats (args.yaml stays YAML)."""
    kwargs = tokens_to_kwargs(["data=digits", "epochs=1e1", "lr0=1e-3", "momentum=0.9", "seed=7", "freeze=2",
                               "patience=3", "target=1"])
    assert kwargs["lr0"] == 0.001 and kwargs["epochs"] == 10
    cfg = TrainConfig.from_kwargs(**kwargs)
    for key in ("epochs", "lr0", "momentum", "seed", "freeze", "patience", "target"):
        assert type(getattr(cfg, key)) in (int, float), (key, type(getattr(cfg, key)))
    assert yaml.safe_load(yaml.safe_dump(cfg.to_dict()))["lr0"] == 0.001


def test_cfg_file_values_are_shown_as_written(tmp_path: Path) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text("data: digits\nlr0: -1.0e-3\n")
    assert "lr0=-1.0e-3 must be a number > 0 or 'auto'" in _token_error(f"cfg={cfg}")
    cfg.write_text("data: digits\nepochs: 2.50\n")
    assert "epochs=2.50 must be an integer" in _token_error(f"cfg={cfg}")
    cfg.write_text("data: digits\nlrf: .inf\n")
    with pytest.raises(ValueError, match=r"lrf=\.inf must be a finite number"):
        TrainConfig.from_yaml(cfg)
    cfg.write_text("data: digits\nepochs: 3\nlr0: 0.01\nname: 007\n")  # good values are plain and unchanged
    good = TrainConfig.from_yaml(cfg)
    assert (type(good.epochs), good.epochs, type(good.lr0), good.name) == (int, 3, float, "007")


def test_a_token_overriding_a_cfg_value_is_the_one_shown(tmp_path: Path) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text("data: digits\nlr0: 0.01\n")
    assert "lr0=-2e-2 must be" in _token_error(f"cfg={cfg}", "lr0=-2e-2")


# ---------------------------------------------------------------------------------------------------------------
# 2. a task file's functions under other common names
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    "def criterion():\n    return torch.nn.functional.l1_loss\n",
    "criterion = torch.nn.L1Loss()\n",  # an instance of torch's class: still the file's own choice of name
    "def compute_loss(output, target):\n    return (output - target).abs().mean()\n",
    "def get_loss():\n    return torch.nn.functional.l1_loss\n",
])
def test_a_loss_under_another_name_is_refused_with_loss_fn(tmp_path: Path, body: str) -> None:
    name = body.split("(")[0].split()[-1] if body.startswith("def") else body.split()[0]
    task = write_task(tmp_path, body)
    with pytest.raises(ValueError, match=rf"it defines {name}\(\): did you mean loss_fn\(\)\?") as info:
        load_task_file(task)
    assert "default loss" in str(info.value)


@pytest.mark.parametrize("body", [
    "def train_step(model, batch):\n    x, y = batch\n    return torch.nn.functional.l1_loss(model(x), y)\n",
    "def training_step(model, batch):\n    x, y = batch\n    return torch.nn.functional.l1_loss(model(x), y)\n",
    "def compute_loss(model, batch):\n    x, y = batch\n    return torch.nn.functional.l1_loss(model(x), y)\n",
])
def test_a_step_under_another_name_is_refused_with_step_fn(tmp_path: Path, body: str) -> None:
    name = body.split("(")[0].split()[-1]
    task = write_task(tmp_path, body)
    with pytest.raises(ValueError, match=rf"it defines {name}\(\): did you mean step_fn\(model, batch\)\?"):
        load_task_file(task)


def test_loss_fn_none_keeps_the_default_loss_on_purpose(tmp_path: Path) -> None:
    """The way out for a file whose `criterion` is something else: say outright that the default loss is meant."""
    task = write_task(tmp_path, "def criterion():\n    return 0\n\nloss_fn = None\n")
    loaded = load_task_file(task)
    assert loaded.loss_fn is None and loaded.step_fn is None


def test_a_loss_fn_beside_a_criterion_is_used_without_complaint(tmp_path: Path) -> None:
    task = write_task(tmp_path, MSE_LOSS_FN + "\ndef criterion():\n    return torch.nn.functional.l1_loss\n")
    assert load_task_file(task).loss_fn is not None


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("def model():", "def get_model():", "it defines get_model(): did you mean model()?"),
    ("def model():", "def build_model():", "it defines build_model(): did you mean model()?"),
    ("def optimizer(params):", "def make_optimizer(params):", "it defines make_optimizer(): did you mean optimizer()?"),
    ("def optimizer(params):", "def configure_optimizers(params):",
     "it defines configure_optimizers(): did you mean optimizer()?"),
    ("def train_loader():", "def train_dataloader():", "it defines train_dataloader(): did you mean train_loader()?"),
    ("def train_loader():", "def dataloader():", "it defines dataloader(): did you mean train_loader()?"),
    ("def train_loader():", "def get_loader():", "it defines get_loader(): did you mean train_loader()?"),
])
def test_a_required_function_under_a_conventional_name_gets_a_did_you_mean(
        tmp_path: Path, old: str, new: str, expected: str) -> None:
    task = tmp_path / "my_task.py"
    task.write_text(TASK_SOURCE.replace(old, new) + MSE_LOSS_FN)
    with pytest.raises(ValueError) as info:
        load_task_file(task)
    assert expected in str(info.value)


def test_a_loader_is_not_offered_as_the_model(tmp_path: Path) -> None:
    """`loader` is close to `model` by spelling; with train_loader() defined it is no guess for model()."""
    task = tmp_path / "my_task.py"
    task.write_text(TASK_SOURCE.replace("def model():", "def net():") + MSE_LOSS_FN
                    + "\ndef loader():\n    return train_loader()\n")
    with pytest.raises(ValueError) as info:
        load_task_file(task)
    assert "must define model()" in str(info.value) and "did you mean model" not in str(info.value)


def test_a_train_step_is_not_offered_as_the_loader(tmp_path: Path) -> None:
    """`train_step` is spelt like `train_loader`, but it is a step: offered as step_fn, not as train_loader()."""
    task = tmp_path / "my_task.py"
    task.write_text(TASK_SOURCE.replace("def train_loader():", "def batches():")
                    + "\ndef train_step(model, batch):\n    return model(batch[0]).sum()\n")
    with pytest.raises(ValueError) as info:
        load_task_file(task)
    assert "must define train_loader()" in str(info.value)
    assert "did you mean train_loader" not in str(info.value)


def test_a_loss_fn_that_is_no_function_is_refused_not_ignored(tmp_path: Path) -> None:
    """`loss_fn = "mse"` was read as "no loss_fn" and the default loss ran in its place."""
    task = write_task(tmp_path, 'loss_fn = "mse"\n')
    with pytest.raises(ValueError, match=r"loss_fn in task file .* is a str, not a function: define a loss function"):
        load_task_file(task)
    task = write_task(tmp_path, "step_fn = 3\n")
    with pytest.raises(ValueError, match=r"step_fn in task file .* is a int, not a function: define step_fn\(model"):
        load_task_file(task)


def test_lrkit_find_refuses_a_criterion_before_any_step(tmp_path: Path) -> None:
    task = write_task(tmp_path, "def criterion():\n    return torch.nn.functional.l1_loss\n")
    out = tmp_path / "o"
    res = CliRunner().invoke(build_app(), ["find", str(task), "--num-steps", "10", "--out", str(out)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "it defines criterion(): did you mean loss_fn()?" in text, text
    assert "add loss_fn = criterion" in text and "loss_fn = None" in text, text
    assert "Traceback" not in res.output and not out.exists()
