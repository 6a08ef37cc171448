"""An Ultralytics user's habits with ``lrkit train``: each key either works as in Ultralytics or is a clear error that
says what lrkit does instead — never a did-you-mean to an unrelated key, never silently ignored.

Found by a walkthrough typing Ultralytics' own ``yolo train`` keys: ``val=False`` (Ultralytics' switch) was
``val=False must be a finite number``; ``mode=train`` was ``Did you mean 'model'?``, ``split=val`` 'plots',
``nms=`` 'nbs', ``augment=`` 'warmup_momentum'; ``task=detect`` listed lrkit's tasks without saying why;
``model=yolov8n.pt`` (or a run's own ``best.pt``) was ``unknown model``; a data YAML with Ultralytics' ``test:``
was ``Did you mean 'target'?``; a bare ``cos_lr`` (true in Ultralytics) asked for ``cos_lr=<value>``; and an
Ultralytics ``args.yaml`` named one foreign key at a time.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lrkit._config import ULTRALYTICS_ONLY, TrainConfig
from lrkit.cli.app import build_app
from lrkit.train import train

runner = CliRunner()


# -------------------------------------------------------------------------------------------- val= is a fraction
@pytest.mark.parametrize("value", [True, False])
def test_ultralytics_val_switch_is_named_as_such(value, tmp_path):
    with pytest.raises(ValueError, match=rf"val={value} is Ultralytics' validate-during-training switch") as e:
        TrainConfig.from_kwargs(data="iris", val=value)
    assert "lrkit.train always validates" in str(e.value) and "val=0.2" in str(e.value)
    with pytest.raises(ValueError, match="validate-during-training switch"):
        train(data="iris", val=value, project=tmp_path, verbose=False)
    assert not any(tmp_path.iterdir())
    res = runner.invoke(build_app(), ["train", "data=iris", f"val={str(value).lower()}", f"project={tmp_path}"])
    assert res.exit_code == 2 and "validate-during-training switch" in res.output and "finite number" not in res.output


def test_val_fraction_still_checked_and_used():
    assert TrainConfig.from_kwargs(data="iris", val=0.3).val == 0.3
    with pytest.raises(ValueError, match=r"val=0 must be in \(0, 1\)"):
        TrainConfig.from_kwargs(data="iris", val=0)


# ------------------------------------------------------------------------------------- more Ultralytics keys
@pytest.mark.parametrize("key", ["mode", "split", "save_json", "conf", "iou", "max_det", "augment", "nms", "tracker",
                                 "classes", "auto_augment", "erasing", "bgr", "cutmix", "crop_fraction", "source",
                                 "format", "show", "dnn", "agnostic_nms", "copy_paste_mode"])
def test_more_ultralytics_keys_are_named_not_matched_to_an_unrelated_key(key):
    with pytest.raises(ValueError, match=rf"unknown train key '{key}': Ultralytics' {key}= has no lrkit equivalent — "
                       ) as e:
        TrainConfig.from_tokens(["data=iris", f"{key}=1"])
    assert "Did you mean" not in str(e.value)
    with pytest.raises(ValueError, match=rf"Ultralytics' {key}= has no lrkit equivalent"):
        TrainConfig.from_kwargs(data="iris", **{key: 1})


def test_mode_says_where_the_model_key_is():
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens(["data=iris", "mode=train"])
    assert "lrkit train is the train mode" in str(e.value) and "model=" in str(e.value)


def test_no_new_ultralytics_only_key_shadows_a_train_key():
    assert not set(ULTRALYTICS_ONLY) & set(TrainConfig.keys())


def test_every_ultralytics_only_key_of_a_cfg_file_is_named_at_once(tmp_path):
    cfg = tmp_path / "ultra_args.yaml"  # the head of an Ultralytics run's args.yaml
    cfg.write_text("data: iris\nepochs: 3\nimgsz: 640\nsave: true\ncache: false\nclose_mosaic: 10\nlr0: 0.01\n")
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens([f"cfg={cfg}"])
    msg = str(e.value)
    assert msg.startswith("unknown train key 'imgsz': Ultralytics' imgsz= has no lrkit equivalent")
    assert "also Ultralytics-only here: save, cache, close_mosaic (remove them too)" in msg
    with pytest.raises(ValueError, match="also Ultralytics-only here: fraction \\(remove it too\\)"):
        TrainConfig.from_tokens(["data=iris", "time=1", "fraction=0.5"])


def test_a_single_foreign_key_keeps_its_one_message():
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens(["data=iris", "time=1"])
    assert "also" not in str(e.value)
    with pytest.raises(ValueError) as e:  # a typo first: its did-you-mean only
        TrainConfig.from_tokens(["data=iris", "epoch=1", "imgsz=64"])
    assert "Did you mean 'epochs'" in str(e.value) and "also" not in str(e.value)


# ------------------------------------------------------------------------------------------------- task=detect
@pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb", "Detect"])
def test_a_yolo_task_is_named_as_one(task):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_kwargs(data="iris", task=task)
    msg = str(e.value)
    assert f"task={task!r} is an Ultralytics YOLO task" in msg
    assert "classification, regression or lm" in msg


def test_classify_still_gets_its_did_you_mean():
    with pytest.raises(ValueError, match="Did you mean 'classification'"):
        TrainConfig.from_kwargs(data="iris", task="classify")


# -------------------------------------------------------------------------------------- model=yolov8n.pt / .yaml
@pytest.mark.parametrize("model", ["yolov8n.pt", "runs/train/best.pt", "w.pth", "m.safetensors", "m.onnx"])
def test_a_weights_file_as_model_says_how_to_load_it(model, tmp_path):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_kwargs(data="iris", model=model)
    msg = str(e.value)
    assert msg.startswith(f"model={model!r} is a weights file")
    assert "model=file.py:make" in msg and "resume=<run>/last.pt" in msg
    with pytest.raises(ValueError, match="is a weights file"):
        train(data="iris", model=model, project=tmp_path, verbose=False)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("model", ["yolo11n.yaml", "net.yml"])
def test_a_model_yaml_says_lrkit_builds_no_network_from_yaml(model):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_kwargs(data="iris", model=model)
    assert f"model={model!r} is a model YAML" in str(e.value) and "model=file.py:make" in str(e.value)


def test_factories_and_builtins_are_still_models():
    assert TrainConfig.from_kwargs(data="iris", model="mlp").model == "mlp"
    assert TrainConfig.from_kwargs(data="iris", model="zoo.pt:make").model == "zoo.pt:make"  # a factory spec
    assert TrainConfig.from_kwargs(data="iris", model="nets/file.py:make").model == "nets/file.py:make"


# ------------------------------------------------------------------------------------ an Ultralytics data YAML
@pytest.mark.parametrize(("key", "why"), [("test", "no test split"), ("nc", "counts the classes"),
                                          ("names", "counts the classes"), ("download", "does not download")])
def test_ultralytics_data_yaml_keys_are_named(key, why, tmp_path):
    (tmp_path / "a.csv").write_text("f,label\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    spec = tmp_path / "data.yaml"
    spec.write_text(f"train: a.csv\n{key}: 2\n")
    with pytest.raises(ValueError) as e:
        train(data=str(spec), epochs=1, project=tmp_path / "runs", verbose=False)
    msg = str(e.value)
    assert f"{key!r} is an Ultralytics data-YAML key lrkit does not read" in msg and why in msg
    assert "Did you mean" not in msg and not (tmp_path / "runs").exists()


def test_a_misspelt_data_yaml_key_still_gets_its_did_you_mean(tmp_path):
    (tmp_path / "a.csv").write_text("f,label\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    spec = tmp_path / "data.yaml"
    spec.write_text("train: a.csv\ntraget: label\n")
    with pytest.raises(ValueError, match="Did you mean 'target'"):
        train(data=str(spec), epochs=1, project=tmp_path / "runs", verbose=False)


# --------------------------------------------------------------------------------------------- bare bool keys
@pytest.mark.parametrize("key", ["cos_lr", "exist_ok", "plots"])
def test_a_bare_boolean_key_says_ultralytics_reads_it_as_true(key, tmp_path):
    res = runner.invoke(build_app(), ["train", "data=iris", key, f"project={tmp_path}"])
    assert res.exit_code == 2
    assert f"'{key}' needs a value: write {key}=true or {key}=false" in res.output
    assert f"Ultralytics reads a bare {key} as true" in res.output and not any(tmp_path.iterdir())


def test_bare_resume_names_both_forms():
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens(["resume"])
    assert "write resume=true (the newest last.pt under project) or resume=<run>/last.pt" in str(e.value)


def test_a_bare_key_with_its_value_split_off_keeps_the_one_token_hint():
    with pytest.raises(ValueError, match=r"write cos_lr=<value> \(e.g. cos_lr=false as one token\)"):
        TrainConfig.from_tokens(["data=iris", "cos_lr", "false"])
    with pytest.raises(ValueError, match=r"'epochs' needs a value: write epochs=<value> \(e.g. epochs=20"):
        TrainConfig.from_tokens(["data=iris", "epochs", "20"])


# ------------------------------------------------------------------------------- the log reads in plan order
def test_schedule_notes_come_after_the_plan_they_qualify(tmp_path, capsys):
    """The warmup note named '(2 epochs)' before the log had said what runs: it was the first line of a short run."""
    train(data="iris", model="linear", epochs=2, lr0=0.01, optimizer="SGD", project=tmp_path, plots=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lrkit.train:")]
    first_plan = next(i for i, line in enumerate(lines) if "parameters) on" in line)
    note = next(i for i, line in enumerate(lines) if "warmup_epochs=3 is longer than the run" in line)
    lr0_line = next(i for i, line in enumerate(lines) if "lr0=0.01 (yours" in line)
    assert first_plan == 0 and note > lr0_line


def test_schedule_notes_are_still_said_when_the_plan_fails(tmp_path, capsys):
    with pytest.raises(ValueError, match="lr0=0.5 .*schedule"):
        train(data="iris", model="linear", epochs=2, lr0=0.5, schedule="cosine lr0=0.01", warmup_epochs=1,
              project=tmp_path, plots=False)
    out = capsys.readouterr().out
    assert "sets the whole LR shape, so warmup_epochs=1.0 (given) are not used" in " ".join(out.split())
