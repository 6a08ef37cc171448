"""Small fixes from a bug hunt: repeated CLI keys, an empty ``cfg=``, numeric run names in a cfg YAML, did-you-mean
for a key in the wrong case, ambiguous NPZ arrays, a boolean ``target``, and strict JSON from ``TrainResults``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lrkit._config import TrainConfig, load_yaml_mapping, tokens_to_kwargs
from lrkit.train.data import load_data
from lrkit.train.results import TrainResults


# ------------------------------------------------------------------------------------ a key given twice
@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["epochs=3", "epochs=5"], "epochs is given twice: 'epochs=3' and 'epochs=5'"),
        (["--epochs=3", "data=iris", "epochs=5"], "epochs is given twice: '--epochs=3' and 'epochs=5'"),
        (["cfg=a.yaml", "cfg=b.yaml"], "cfg is given twice: 'cfg=a.yaml' and 'cfg=b.yaml'"),
    ],
)
def test_a_key_given_twice_is_an_error_naming_both_values(tmp_path, monkeypatch, tokens, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text("epochs: 3\n")
    (tmp_path / "b.yaml").write_text("batch: 7\n")
    with pytest.raises(ValueError) as e:
        tokens_to_kwargs(tokens)
    assert message in str(e.value)


def test_a_token_still_overrides_the_cfg_file(tmp_path):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("epochs: 3\nbatch: 7\n")
    assert tokens_to_kwargs([f"cfg={cfg}", "epochs=5"]) == {"epochs": 5, "batch": 7}


@pytest.mark.parametrize("token", ["cfg=", "cfg=  "])
def test_an_empty_cfg_is_an_error(token):
    with pytest.raises(ValueError, match=r"cfg= needs a YAML file.*cfg=train.yaml"):
        tokens_to_kwargs([token, "data=iris"])


# ------------------------------------------------------------------------------------ name/project from YAML
@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("name: 2024\n", "name", "2024"),
        ("project: 2024\n", "project", "2024"),
        ("name: 007\n", "name", "007"),  # as written, not YAML 1.1's octal 7
        ("name: 2024-01-05\n", "name", "2024-01-05"),  # as written, not a datetime.date
        ("name: 1.10\n", "name", "1.10"),
        ("name: '2024'\n", "name", "2024"),
    ],
)
def test_a_run_name_or_project_from_yaml_is_read_as_written(tmp_path, text, key, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert load_yaml_mapping(cfg)[key] == expected
    from_yaml = getattr(TrainConfig.from_yaml(cfg), key)
    from_cli = getattr(TrainConfig.from_tokens([f"{key}={expected}"]), key)
    assert from_yaml == from_cli == expected


def test_a_null_name_in_yaml_is_still_the_default(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: null\nepochs: 2\n")
    assert TrainConfig.from_yaml(cfg).name is None


# ------------------------------------------------------------------------------------ did-you-mean, any case
def test_a_key_in_the_wrong_case_gets_a_did_you_mean(tmp_path):
    with pytest.raises(ValueError, match=r"unknown train key 'EPOCHS'\. Did you mean 'epochs'\?"):
        tokens_to_kwargs(["EPOCHS=5"])
    with pytest.raises(ValueError, match=r"Did you mean 'lr0'\?"):
        TrainConfig.check_keys(["LR0"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("Batch: 8\n")
    with pytest.raises(ValueError, match=r"unknown train key 'Batch'\. Did you mean 'batch'\?"):
        TrainConfig.from_yaml(cfg)
    with pytest.raises(ValueError, match=r"expected key=value, got 'EPOCHS'\. Did you mean 'epochs'\?"):
        tokens_to_kwargs(["EPOCHS"])


# ------------------------------------------------------------------------------------ NPZ: x and X
@pytest.mark.parametrize(("extra", "pair"), [({"X": 2}, "'X' and 'x'"), ({"Y": 3}, "'Y' and 'y'")])
def test_an_npz_with_x_and_X_is_an_error_naming_both(tmp_path, extra, pair):
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(20, 3)), "y": np.arange(20) % 2}
    arrays.update({k: rng.normal(size=(20, n)) if k == "X" else np.arange(20) % n for k, n in extra.items()})
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ValueError, match=rf"d\.npz: arrays {pair} differ only in case"):
        load_data(str(tmp_path / "d.npz"))


def test_an_npz_with_upper_case_X_and_Y_alone_still_loads(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(20, 3)), Y=np.arange(20) % 2)
    assert load_data(str(tmp_path / "d.npz")).info.input_shape == (3,)


# ------------------------------------------------------------------------------------ load_data(target=True)
@pytest.mark.parametrize("target", [True, False])
def test_load_data_rejects_a_boolean_target(tmp_path, target):
    np.savez(tmp_path / "t.npz", t=np.random.default_rng(0).normal(size=(20, 4)))
    with pytest.raises(ValueError, match=rf"target={target!r} must be a column name or index, not a boolean"):
        load_data(str(tmp_path / "t.npz"), target=target)
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,c\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    with pytest.raises(ValueError, match=r"not a boolean"):
        load_data(str(csv), target=target)


# ------------------------------------------------------------------------------------ TrainResults.to_dict()
def _results(history: list[dict], best_epoch: int = 0) -> TrainResults:
    return TrainResults(model=torch.nn.Linear(1, 1), lr0=0.01, lr0_source="user", auto=None, optimizer="SGD",
                        optimizer_reason="as requested", task="classification", metric_name="accuracy",
                        metric_mode="max", history=history, best_epoch=best_epoch, run_dir=Path("runs/train"))


def test_to_dict_is_strict_json_while_the_attributes_keep_nan():
    r = _results([{"epoch": 1, "train_loss": 0.5, "val_loss": math.nan, "val_accuracy": math.inf}], best_epoch=1)
    r.events = [{"step": 3, "values": {"loss": math.nan}}]
    r.auto = {"lr": 0.01, "trials": [{"lr": 0.1, "val_loss": math.nan}]}
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)  # raises ValueError on NaN/inf
    back = json.loads(text)
    assert back["final"] == {"epoch": 1, "train_loss": 0.5, "val_loss": None, "val_accuracy": None}
    assert back["events"][0]["values"]["loss"] is None and back["auto"]["trials"][0]["val_loss"] is None
    assert back["run_dir"] == str(Path("runs/train")) and back["lr0"] == 0.01
    # the Python attributes are untouched
    assert math.isnan(r.final_val_loss) and math.isnan(r.history[0]["val_loss"])
    assert math.isnan(r.events[0]["values"]["loss"])


def test_to_dict_without_any_epoch_is_strict_json():
    r = _results([])
    assert math.isnan(r.best_metric)
    back = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert back["final"] == {} and back["best"] == {} and back["epochs_run"] == 0


def test_a_python_keyword_in_the_wrong_case_gets_a_did_you_mean() -> None:
    import lrkit

    with pytest.raises(ValueError, match="unknown train key 'EPOCHS'. Did you mean 'epochs'"):
        lrkit.train(EPOCHS=5)
