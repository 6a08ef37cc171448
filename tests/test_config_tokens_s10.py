"""`lrkit train key=value` tokens: quotes the shell kept and Python's digit separators (session 10)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lrkit._config import TrainConfig, parse_value, tokens_to_kwargs
from lrkit.cli.app import build_app


@pytest.mark.parametrize(
    ("token", "key", "value"),
    [
        ('model="mlp"', "model", "mlp"),
        ("model='mlp'", "model", "mlp"),
        ('name="run 1"', "name", "run 1"),
        ('lr0="0.1"', "lr0", 0.1),
        ("epochs='3'", "epochs", 3),
        ('optimizer="AdamW"', "optimizer", "AdamW"),
    ],
)
def test_one_pair_of_kept_quotes_comes_off(token: str, key: str, value: object) -> None:
    assert tokens_to_kwargs([token]) == {key: value}


def test_unmatched_or_inner_quotes_stay() -> None:
    assert parse_value("\"mlp'") == "\"mlp'"
    assert tokens_to_kwargs(["name=a\"b\""]) == {"name": 'a"b"'}


@pytest.mark.parametrize("token", ["lr0=1_0", "epochs=1_0", "lrf=0.0_1"])
def test_digit_separators_are_not_numbers(token: str) -> None:
    key, _, raw = token.partition("=")
    assert parse_value(raw) == raw  # not 10, not 0.01
    with pytest.raises(ValueError, match=rf"{key}='{raw}' must be"):
        TrainConfig.from_kwargs(**tokens_to_kwargs([token]))


def test_quoted_model_trains_key_is_validated_without_quotes() -> None:
    config = TrainConfig.from_kwargs(**tokens_to_kwargs(['data="iris"', "model='mlp'", "epochs=1"]))
    assert (config.data, config.model, config.epochs) == ("iris", "mlp", 1)


def test_dash_h_is_help_at_the_top_level() -> None:
    res = CliRunner().invoke(build_app(), ["-h"])
    assert res.exit_code == 0
    assert "find" in res.output and "schedule" in res.output and "train" in res.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--num-steps", "5"], "--num-steps 5 must be an integer >= 10"),
        (["--start-lr", "10", "--end-lr", "1"], "--end-lr 1 must be greater than --start-lr 10"),
        (["--mode", "cubic"], "unknown --mode 'cubic'"),
        (["--rule", "foo"], "unknown --rule 'foo'"),
        (["--accumulation-steps", "0"], "--accumulation-steps 0 must be an integer >= 1"),
    ],
)
def test_find_errors_name_the_flags_the_user_typed(args: list[str], expected: str, tmp_path: object) -> None:
    res = CliRunner().invoke(build_app(), ["find", *args, "--out", str(tmp_path) + "/f"])
    assert res.exit_code == 2
    assert expected in res.output
    assert "num_steps" not in res.output and "start_lr" not in res.output


def test_find_lr_warns_when_given_a_dataset_instead_of_a_loader() -> None:
    import warnings

    import torch

    import lrkit

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    ds = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(UserWarning, match="TensorDataset .a Dataset, not a DataLoader.: each step then trains on one"):
        lrkit.find_lr(model, opt, ds, num_steps=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lrkit.find_lr(model, opt, torch.utils.data.DataLoader(ds, batch_size=16), num_steps=10)
    assert not [w for w in caught if "not a DataLoader" in str(w.message)]
