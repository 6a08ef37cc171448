"""`data: 2024` and friends, numeric run names from Python, and a key repeated inside an inline ``key={...}`` token:
each test failed before its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lrkit._config import TrainConfig, load_yaml_mapping, parse_value, tokens_to_kwargs
from lrkit.cli.app import build_app
from lrkit.train.data import BUILTIN_DATASETS


def train_cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), ["train", *args])


# --------------------------------------------------------------------------------------------------------------
# 2. data: 2024 — a number (or a date, or yes/no) is never a dataset: say what it is and how to write a file name
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "shown", "kind"), [
    ("data: 2024\n", "2024", "a number"),
    ("data: 0.5\n", "0.5", "a number"),
    ("data: 2024-01-05\n", "2024-01-05", "a date"),  # YAML's date, not the file 2024-01-05
    ("data: yes\n", "True", "a boolean"),
])
def test_data_that_yaml_reads_as_a_number_names_the_value_and_says_to_quote_it(tmp_path: Path, monkeypatch:
                                                                                pytest.MonkeyPatch, text: str,
                                                                                shown: str, kind: str) -> None:
    # Bug: "data=int is not supported: ..." — neither the value nor the fix (quote it) was named, and the check ran
    # only once the run was being set up.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(text + "epochs: 1\n")
    with pytest.raises(ValueError) as e:
        TrainConfig.from_yaml(tmp_path / "c.yaml")
    msg = str(e.value)
    assert msg.startswith(f"data={shown} is {kind}, not a dataset")
    assert f"data: '{shown}'" in msg and all(name in msg for name in BUILTIN_DATASETS)
    res = train_cli(f"cfg={tmp_path / 'c.yaml'}")
    assert res.exit_code == 2 and f"data={shown} is {kind}" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "runs").exists()  # refused before any run directory


def test_data_2024_from_python_is_refused_with_the_same_message() -> None:
    import lrkit

    with pytest.raises(ValueError, match=r"^data=2024 is a number, not a dataset"):
        lrkit.train(data=2024, epochs=1, verbose=False, plots=False)


def test_data_2024_on_the_command_line_stays_a_name_and_a_file_named_2024_is_read(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch
                                                                                  ) -> None:
    # on the command line every data= value is text: a file literally named 2024 would be found; none is here
    assert tokens_to_kwargs(["data=2024"]) == {"data": "2024"}
    monkeypatch.chdir(tmp_path)
    res = train_cli("data=2024", "epochs=1")
    assert res.exit_code == 2 and "'2024'" in res.output and "Traceback" not in res.output
    # and a quoted YAML value is a string as written
    (tmp_path / "q.yaml").write_text("data: '2024'\n")
    assert load_yaml_mapping(tmp_path / "q.yaml") == {"data": "2024"}


@pytest.mark.parametrize(("key", "value", "expected"), [("name", 2024, "2024"), ("project", 7, "7"),
                                                        ("name", "2024", "2024")])
def test_an_int_run_name_from_python_is_its_digits(key: str, value: Any, expected: str) -> None:
    # Bug: TrainConfig(name=2024) was "name=2024 must be a non-empty string", while name=2024 on the command line
    # and name: 2024 in a cfg file both name the run "2024".
    assert getattr(TrainConfig.from_kwargs(**{key: value}), key) == expected
    assert getattr(TrainConfig.from_tokens([f"{key}={value}"]), key) == expected


@pytest.mark.parametrize(("key", "value"), [("name", True), ("project", 1.5), ("name", [1])])
def test_other_non_strings_are_still_refused_as_run_names(key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"{key}="):
        TrainConfig.from_kwargs(**{key: value})


# --------------------------------------------------------------------------------------------------------------
# 3. key={...} tokens are read as a cfg file is: a key given twice inside one is an error naming the token
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("token", "key"), [
    ("monitor={on_divergence: stop, on_divergence: warn}", "on_divergence"),
    ("schedule={name: cosine, lr0: 0.1, lr0: 0.2}", "lr0"),
    ("monitor={patience: {a: 1, a: 2}}", "a"),  # nested mappings too
])
def test_a_key_repeated_inside_an_inline_token_is_an_error_naming_the_token(token: str, key: str) -> None:
    # Bug: parsed with yaml.safe_load, the last value silently won; a cfg file (lrkit._utils.yaml_load) refused it.
    with pytest.raises(ValueError) as e:
        tokens_to_kwargs(["data=iris", token])
    assert str(e.value) == f"{token!r}: the key {key!r} is given twice; give it once"
    res = train_cli("data=iris", token)
    assert res.exit_code == 2 and f"the key {key!r} is given twice" in res.output and token in res.output


def test_the_same_mapping_in_a_cfg_file_and_in_a_token_fail_alike(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: iris\nmonitor: {on_divergence: stop, on_divergence: warn}\n")
    with pytest.raises(ValueError, match="the key 'on_divergence' is given twice"):
        tokens_to_kwargs([f"cfg={cfg}"])
    with pytest.raises(ValueError, match="the key 'on_divergence' is given twice"):
        tokens_to_kwargs(["monitor={on_divergence: stop, on_divergence: warn}"])


def test_inline_tokens_without_repeats_parse_as_before() -> None:
    assert parse_value("{on_divergence: stop, patience: 3}") == {"on_divergence": "stop", "patience": 3}
    assert parse_value("[0, 1]") == [0, 1]
    assert parse_value("[0, 1") == "[0, 1"  # not YAML: the text itself, as before (the key's check decides)
    assert tokens_to_kwargs(["freeze=[0, body]"]) == {"freeze": [0, "body"]}
    assert tokens_to_kwargs(["schedule={name: cosine, lr0: 0.1}"]) == {"schedule": {"name": "cosine", "lr0": 0.1}}


# --------------------------------------------------------------------------------------------------------------
# bug hunt
# --------------------------------------------------------------------------------------------------------------
def test_an_absolute_run_name_is_refused_with_the_project_name_split(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: name=/abs/exp put the run at /abs/exp, outside project= (which the docs promise it is inside, and where
    # resume=true looks for it), while name=../exp was already refused for the same reason.
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "elsewhere" / "exp"
    with pytest.raises(ValueError) as e:
        TrainConfig.from_kwargs(data="iris", name=str(target))
    msg = str(e.value)
    assert msg.startswith(f"name={str(target)!r} is an absolute path")
    assert f"project={str(target.parent)!r} name='exp'" in msg
    res = train_cli("data=iris", "epochs=1", f"name={target}")
    assert res.exit_code == 2 and "is an absolute path" in res.output
    assert not target.exists() and not (tmp_path / "runs").exists()
    assert TrainConfig.from_kwargs(name="sweep/lr3").name == "sweep/lr3"  # a relative path is still fine


@pytest.mark.parametrize(("tokens", "quoted"), [
    (["data=iris", "freeze=[0,", "1]"], "'freeze=[0, 1]'"),
    (["data=iris", "monitor={on_divergence:", "stop}"], "'monitor={on_divergence: stop}'"),
    (["data=iris", "freeze=[0,", "1,", "2]"], "'freeze=[0, 1, 2]'"),
])
def test_a_list_split_by_the_shell_says_to_quote_it(tokens: list[str], quoted: str) -> None:
    # Bug: `lrkit train freeze=[0, 1]` (unquoted: the shell splits at the space) said "expected key=value, got '1]'",
    # leaving the user to guess that the space was the problem.
    with pytest.raises(ValueError) as e:
        tokens_to_kwargs(tokens)
    msg = str(e.value)
    assert "quote" in msg and quoted in msg and repr(tokens[2]) in msg  # the first piece without a key
    res = train_cli(*tokens)
    assert res.exit_code == 2 and quoted in res.output
