"""``lrkit train key=value``: happy path, cfg files, and clean one-line failures that leave nothing behind."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from lrkit.cli.app import build_app as app

runner = CliRunner()


def test_happy_path_writes_a_run_and_a_summary(tmp_path):
    project = tmp_path / "runs"
    res = runner.invoke(app(), ["train", "data=iris", "model=linear", "epochs=2", "lr0=0.05", "optimizer=sgd",
                                "warmup_epochs=0", f"project={project}", "plots=false"])
    assert res.exit_code == 0, res.output
    run = project / "train"
    assert (run / "last.pt").exists() and (run / "results.csv").exists()
    args = yaml.safe_load((run / "args.yaml").read_text())
    assert (args["lr0"], args["optimizer"], args["epochs"]) == (0.05, "SGD", 2)
    assert "summary" in res.output and "0.05 (user)" in res.output and str(run) in res.output
    assert "SGD — as requested" in res.output


def test_cfg_file_and_token_override(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: wine\nmodel: mlp\nepochs: 5\nlr0: 0.01\nproject: {tmp_path / 'runs'}\nplots: false\n")
    res = runner.invoke(app(), ["train", f"cfg={cfg}", "epochs=1", "name=fromcfg"])
    assert res.exit_code == 0, res.output
    args = yaml.safe_load((tmp_path / "runs" / "fromcfg" / "args.yaml").read_text())
    assert (args["data"], args["model"], args["epochs"]) == ("wine", "mlp", 1)


def test_bad_key_exits_with_one_line_and_no_run_dir(tmp_path):
    project = tmp_path / "runs"
    res = runner.invoke(app(), ["train", "data=iris", "lr_0=0.1", f"project={project}"])
    assert res.exit_code == 2
    assert "unknown train key 'lr_0'. Did you mean 'lr0'?" in res.output
    assert "Traceback" not in res.output and not project.exists()


def test_bad_values_exit_cleanly(tmp_path):
    project = tmp_path / "runs"
    cases = [
        (["epochs=-1"], "epochs=-1 must be an integer >= 1"),
        (["lr0=fast"], "lr0='fast' must be a number > 0 or 'auto'"),
        (["optimizer=adamm"], "Did you mean 'Adam'"),
        (["data=digitz"], "unknown dataset 'digitz'. Did you mean 'digits'?"),
        (["model=cnn"], "model='cnn' needs image-shaped inputs"),
        (["data"], "'data' needs a value: write data=<value>"),
        (["data=missing.csv"], "no such file"),
    ]
    for tokens, message in cases:
        given = {t.partition("=")[0] for t in tokens}
        base = [t for t in ("data=iris", "epochs=1") if t.partition("=")[0] not in given]  # each key once
        res = runner.invoke(app(), ["train", *base, f"project={project}", *tokens])
        assert res.exit_code == 2, (tokens, res.output)
        assert message in res.output.replace("\n", " ") or message in res.output, (tokens, res.output)
        assert "Traceback" not in res.output
    assert not project.exists()  # nothing half-written


def test_missing_data_and_resume(tmp_path):
    res = runner.invoke(app(), ["train", "epochs=1"])
    assert res.exit_code == 2 and "data= is required" in res.output
    project = tmp_path / "runs"
    ok = runner.invoke(app(), ["train", "data=iris", "model=linear", "epochs=1", "lr0=0.01", f"project={project}",
                               "plots=false"])
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(app(), ["train", f"resume={project / 'train'}", "epochs=2", "plots=false"])
    assert again.exit_code == 0, again.output
    events = json.loads((project / "train" / "events.json").read_text())
    assert events["lr0"]["value"] == 0.01
    assert len((project / "train" / "results.csv").read_text().strip().splitlines()) == 3


def test_help_lists_every_key():
    res = runner.invoke(app(), ["train", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for key in ("lr0=", "warmup_bias_lr=", "nbs=", "auto_budget=", "cfg="):
        assert key in res.output
    from lrkit._config import TrainConfig

    for key in TrainConfig.defaults():
        assert f"  {key}=" in res.output


def test_bare_key_token_asks_for_a_value(tmp_path):
    project = tmp_path / "runs"
    res = runner.invoke(app(), ["train", "data=iris", "epochs", f"project={project}"])
    assert res.exit_code == 2
    assert "'epochs' needs a value: write epochs=<value>" in res.output and "Did you mean" not in res.output
    spaced = runner.invoke(app(), ["train", "data=iris", "epochs", "3", f"project={project}"])
    assert spaced.exit_code == 2 and "e.g. epochs=3" in spaced.output
    assert not project.exists()


def test_freeze_by_bare_name_and_comma_list(tmp_path):
    project = tmp_path / "runs"
    res = runner.invoke(app(), ["train", "data=iris", "model=mlp", "epochs=1", "lr0=0.01", "freeze=body",
                                f"project={project}", "plots=false", "verbose=false"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((project / "train" / "args.yaml").read_text())["freeze"] == ["body"]
    bad = runner.invoke(app(), ["train", "data=iris", "model=mlp", "epochs=1", "freeze=body,hed",
                                f"project={project}", "name=bad"])
    assert bad.exit_code == 2 and "freeze entry 'hed'" in bad.output and "Did you mean 'head'" in bad.output
    assert not (project / "bad").exists()


def test_target_with_a_builtin_dataset_exits_with_the_reason(tmp_path):
    project = tmp_path / "runs"
    res = runner.invoke(app(), ["train", "data=wine", "target=price", "epochs=1", f"project={project}"])
    assert res.exit_code == 2
    assert "target='price' applies only to CSV/NPZ files" in res.output and "data='wine'" in res.output
    assert not project.exists()
