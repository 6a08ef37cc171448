"""Session 36 hunt (helper h): ``lrkit train key=value`` and the config layer behind it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrkit._config import TrainConfig, tokens_to_kwargs
from lrkit.cli.app import build_app

runner = CliRunner()


def _config(*tokens: str) -> TrainConfig:
    return TrainConfig.from_kwargs(**tokens_to_kwargs(list(tokens)))


def _error(*tokens: str) -> tuple[int, str]:
    res = runner.invoke(build_app(), ["train", *tokens])
    return res.exit_code, " ".join(res.output.split())


@pytest.mark.parametrize(("word", "value"), [("on", True), ("off", False), ("ON", True), ("Off", False)])
def test_bool_keys_take_on_off_as_a_cfg_file_does(word: str, value: bool) -> None:
    # `cos_lr: on` in a cfg file is YAML's true, and amp=/monitor= took on/off; the token cos_lr=on was refused
    config = _config(f"cos_lr={word}", f"exist_ok={word}", f"plots={word}", f"verbose={word}")
    assert (config.cos_lr, config.exist_ok, config.plots, config.verbose) == (value, value, value, value)


def test_bool_key_error_still_names_value() -> None:
    with pytest.raises(ValueError, match=r"cos_lr='maybe' must be true or false"):
        _config("cos_lr=maybe")


@pytest.mark.parametrize(("word", "value"), [("no", False), ("off", False), ("0", False), ("NO", False),
                                             ("yes", True), ("on", True), ("1", True)])
def test_resume_boolean_words_are_booleans(word: str, value: bool) -> None:
    # resume=no was taken as a checkpoint path ("no checkpoint at no"), resume=0 refused as "must be true/false"
    assert _config(f"resume={word}").resume is value


def test_resume_path_still_a_path() -> None:
    assert _config("resume=runs/train/last.pt").resume == "runs/train/last.pt"


@pytest.mark.parametrize("name", ["train.yaml", "sub/exp.yml"])
def test_positional_yaml_file_suggests_cfg(name: str) -> None:
    code, out = _error(name, "epochs=3")
    assert code == 2
    assert f"cfg={name}" in out and f"data={name}" in out, out


@pytest.mark.parametrize("name", ["houses.csv", "data/x.npz", "book.txt"])
def test_positional_data_file_suggests_data(name: str) -> None:
    code, out = _error(name, "model=mlp")
    assert code == 2
    assert f"data={name}" in out, out


def test_cfg_folder_names_its_args_yaml(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.yaml").write_text("data: iris\nepochs: 1\n")
    code, out = _error(f"cfg={run}")
    assert code == 2
    assert "is a folder" in out and f"cfg={run / 'args.yaml'}" in out, out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = _error(f"cfg={empty}")
    assert code == 2 and "is a folder" in out and "YAML file" in out, out


def test_cfg_relative_path_names_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a cfg file's paths are relative to the working directory (as Ultralytics reads them); a data file beside the
    # cfg file, named relative to it, got a bare "no such file"
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "d.csv").write_text("a,y\n1,0\n2,1\n3,0\n4,1\n")
    (sub / "cfg.yaml").write_text(f"data: d.csv\nmodel: linear\nepochs: 1\nproject: {tmp_path / 'runs'}\n")
    monkeypatch.chdir(tmp_path)
    code, out = _error("cfg=sub/cfg.yaml")
    assert code == 2
    assert "relative to the working directory" in out and "data: sub/d.csv" in out, out
    assert not (tmp_path / "runs").exists()
    (sub / "m.py").write_text("import torch\ndef make(num_outputs):\n    return torch.nn.LazyLinear(num_outputs)\n")
    (sub / "cfg2.yaml").write_text(f"data: iris\nmodel: m.py:make\nepochs: 1\nproject: {tmp_path / 'runs'}\n")
    code, out = _error("cfg=sub/cfg2.yaml")
    assert code == 2 and "write model: sub/m.py:make in sub/cfg2.yaml" in out, out


@pytest.mark.parametrize(("body", "expected"), [
    ("project:\n", "'project:' in cfg=c.yaml has no value: give one (e.g. project: runs), or leave the key out for "
                   "its default 'runs'"),
    ("epochs: ~\n", "'epochs:' in cfg=c.yaml has no value: give one (e.g. epochs: 10)"),
    ("cos_lr: null\n", "'cos_lr:' in cfg=c.yaml has no value: give one (e.g. cos_lr: false)"),
])
def test_cfg_key_without_value_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str,
                                       expected: str) -> None:
    # the token project= said "has no value" since session 35; `project:` in a cfg file still said
    # "project=None must be a non-empty string"
    (tmp_path / "c.yaml").write_text("data: iris\n" + body)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as e:
        _config("cfg=c.yaml")
    assert expected in str(e.value)


def test_cfg_null_for_a_key_that_takes_none_is_fine(tmp_path: Path) -> None:
    # a run's args.yaml writes `lr0: null`, `name: null`, `schedule: null`: valid, not "has no value"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: iris\nlr0: null\nname: null\nschedule: null\ntask: null\n")
    assert _config(f"cfg={cfg}").lr0 is None


@pytest.mark.parametrize(("token", "fixed"), [("data=iris model=linear", "data=iris model=linear"),
                                              ("epochs=3  lr0=0.1", "epochs=3 lr0=0.1")])
def test_several_keys_in_one_token_are_named(token: str, fixed: str) -> None:
    # a script that quoted all its keys as one argument: data= was 'iris model=linear' ("unknown dataset")
    with pytest.raises(ValueError, match="several keys in one token") as e:
        _config(token)
    assert f"give each key as its own token: {fixed}" in str(e.value)


def test_schedule_spec_keeps_its_own_keys() -> None:
    # a schedule spec's parameters are key=value pairs inside one token: that is what it is
    assert _config("schedule=cosine lr0=0.1 lrf=0.01").schedule == "cosine lr0=0.1 lrf=0.01"
    assert _config("name=a b=c").name == "a b=c"  # b is no train key: the value as written


@pytest.mark.parametrize("token", ["data:iris", "epochs: 3", "--epochs:3"])
def test_yaml_style_token_says_key_equals_value(token: str) -> None:
    key, _, value = token.lstrip("-").partition(":")
    with pytest.raises(ValueError, match=f"write {key}={value.strip()} ") as e:
        _config(token, "model=mlp")
    assert "key: value is a cfg file's form" in str(e.value)


@pytest.mark.parametrize("body", ["train: d.csv\nval: 0.2\ntarget: y\n", "path: sub\ntrain: d.csv\n"])
def test_data_yaml_given_as_cfg_says_data(tmp_path: Path, body: str) -> None:
    # was `unknown train key 'path'. Did you mean 'batch'?` (or 'train' with no hint)
    cfg = tmp_path / "d.yaml"
    cfg.write_text(body)
    code, out = _error(f"cfg={cfg}", "epochs=1")
    assert code == 2
    assert "is a data YAML" in out and f"data={cfg}" in out, out
