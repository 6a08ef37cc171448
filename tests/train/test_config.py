"""TrainConfig: typed parsing of CLI tokens, YAML files, validation errors that name the key."""

from __future__ import annotations

import inspect

import pytest

from lrkit._config import TrainConfig, parse_value, tokens_to_kwargs
from lrkit.train.trainer import train


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20", 20), ("-3", -3), ("0.01", 0.01), ("1e-3", 1e-3), ("true", True), ("False", False), ("none", None),
     ("null", None), ("auto", "auto"), ("[0, 1]", [0, 1]), ("{a: 1}", {"a": 1}), ("SGD", "SGD")],
)
def test_parse_value(text, expected):
    value = parse_value(text)
    assert value == expected and type(value) is type(expected)


def test_tokens_become_typed_config():
    cfg = TrainConfig.from_tokens(["data=digits", "model=mlp", "epochs=20", "lr0=auto", "lrf=0.01", "cos_lr=true",
                                   "optimizer=sgd", "freeze=[0]", "name=2024", "schedule=cosine lr0=0.1 lrf=0.01"])
    assert (cfg.data, cfg.model, cfg.epochs, cfg.lr0, cfg.lrf, cfg.cos_lr) == ("digits", "mlp", 20, "auto", 0.01, True)
    assert cfg.optimizer == "SGD"  # canonical spelling
    assert cfg.freeze == [0]
    assert cfg.name == "2024"  # names stay strings
    assert cfg.schedule == "cosine lr0=0.1 lrf=0.01"  # split on the first '=' only


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["lr_0=0.1"], "unknown train key 'lr_0'. Did you mean 'lr0'?"),
        (["epoch=3"], "Did you mean 'epochs'?"),
        (["epochs=0"], "epochs=0 must be an integer >= 1"),
        (["epochs=2.5"], "epochs=2.5 must be an integer"),
        (["lr0=-1"], "lr0=-1 must be a number > 0 or 'auto'"),
        (["lr0=fast"], "lr0='fast' must be a number > 0 or 'auto'"),
        (["momentum=1.2"], "momentum=1.2 must be in [0, 1)"),
        (["optimizer=adm"], "unknown optimizer 'adm'. Did you mean 'Adam'?"),
        (["optimizer=adamw2"], "unknown optimizer 'adamw2'. Did you mean 'AdamW'?"),  # not 'Adam': case ignored
        (["optimizer=sgdd"], "unknown optimizer 'sgdd'. Did you mean 'SGD'?"),
        (["task=clasification"], "Did you mean 'classification'?"),
        (["val=1.0"], "val=1.0 must be in (0, 1)"),
        (["cos_lr=maybe"], "cos_lr='maybe' must be true or false"),
        (["device=gpu"], "device='gpu' is not a torch device"),
        (["digits"], "expected key=value, got 'digits'"),
        (["monitor=rollbak"], "monitor='rollbak' is not an action for divergence checks. Did you mean 'rollback'?"),
    ],
)
def test_bad_tokens_name_the_key(tokens, message):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens(tokens)
    assert message in str(e.value)


def test_cfg_file_then_tokens_override(tmp_path):
    f = tmp_path / "train.yaml"
    f.write_text("data: iris\nepochs: 7\nlr0: 0.05\ncos_lr: true\n")
    kw = tokens_to_kwargs([f"cfg={f}", "epochs=3"])
    assert kw == {"data": "iris", "epochs": 3, "lr0": 0.05, "cos_lr": True}
    assert TrainConfig.from_yaml(f, lr0=0.2).lr0 == 0.2


def test_cfg_file_errors(tmp_path):
    bad_key = tmp_path / "a.yaml"
    bad_key.write_text("data: iris\nwarmup_epoch: 2\n")
    with pytest.raises(ValueError, match="Did you mean 'warmup_epochs'"):
        TrainConfig.from_tokens([f"cfg={bad_key}"])
    not_map = tmp_path / "b.yaml"
    not_map.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        TrainConfig.from_tokens([f"cfg={not_map}"])
    with pytest.raises(ValueError, match="no such file"):
        TrainConfig.from_tokens([f"cfg={tmp_path / 'missing.yaml'}"])


def test_broken_cfg_yaml_names_line_column_and_problem(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("data: iris\nlr0: [0.1, 0.2\nepochs: 3\n")
    with pytest.raises(ValueError) as info:
        TrainConfig.from_tokens([f"cfg={f}"])
    msg = str(info.value)
    assert "broken.yaml" in msg and "line 3, column 7" in msg, msg
    assert "expected ',' or ']'" in msg and "while parsing a flow sequence" in msg, msg


def test_a_misspelt_monitor_action_fails_before_the_run_starts(tmp_path, capsys):
    with pytest.raises(ValueError, match="Did you mean 'rollback'"):
        train(data="iris", monitor="rollbak", epochs=1, project=str(tmp_path), plots=False)
    assert list(tmp_path.iterdir()) == [] and capsys.readouterr().out == ""  # no run directory, nothing logged
    for ok in ("rollback", "Stop", "warn", "off", "true"):
        TrainConfig(data="iris", monitor=ok)


def test_python_kwargs_validated_and_unknown_named():
    with pytest.raises(ValueError, match="Did you mean 'weight_decay'"):
        train(data="iris", weight_decy=0.1)
    with pytest.raises(ValueError, match="batch=0 must be an integer >= 1"):
        train(data="iris", batch=0)
    with pytest.raises(ValueError, match="epochs=True must be an integer"):
        TrainConfig.from_kwargs(epochs=True)


def test_train_signature_defaults_match_config():
    """The keyword defaults of lrkit.train and TrainConfig are one source of truth (documented once)."""
    params = inspect.signature(train).parameters
    for key, default in TrainConfig.defaults().items():
        assert key in params, key
        assert params[key].default == default, key
    assert params["model"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in params.items() if n not in ("model", "unknown"))


def test_to_dict_is_plain():
    import torch

    cfg = TrainConfig.from_kwargs(data=torch.utils.data.TensorDataset(torch.zeros(4, 2)), model=torch.nn.Linear(2, 1))
    d = cfg.to_dict()
    assert d["data"] == "<TensorDataset>" and d["model"] == "<Linear>"
    assert all(isinstance(v, (type(None), bool, int, float, str, list, dict)) for v in d.values())
