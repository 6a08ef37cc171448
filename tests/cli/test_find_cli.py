from __future__ import annotations

import json

from typer.testing import CliRunner

from _helpers import MSE_LOSS_FN, write_task
from lrkit.cli.app import build_app as app

runner = CliRunner()


def test_demo_writes_plot_and_record(tmp_path):
    res = runner.invoke(app(), ["find", "--num-steps", "40", "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert "suggestion (robust)" in res.output and "rule: steepest" in res.output
    record = json.loads((tmp_path / "f" / "lr_find.json").read_text())
    assert (tmp_path / "f" / "lr_find.png").stat().st_size > 1000
    assert f"{record['suggestion']:.3g}" in res.output
    # the table says which back-off the default rule took (the record's regime, noise and back-off)
    words = {"explosion": "exploded", "plateau": "plateaued, no edge"}
    shown = " ".join(res.output.split())
    assert record["regime"] in words and words[record["regime"]] in shown
    back = record["backoff_decades"]
    assert f"noise {record['noise']:.2f}" in shown and f"back off {back:.2g} decade{'' if back == 1 else 's'}" in shown
    # a second run never overwrites the first
    res2 = runner.invoke(app(), ["find", "--num-steps", "20", "--out", str(tmp_path / "f")])
    assert res2.exit_code == 0 and (tmp_path / "f2" / "lr_find.json").exists()


def test_task_file(tmp_path):
    task = write_task(tmp_path, MSE_LOSS_FN)
    res = runner.invoke(app(), ["find", str(task), "--num-steps", "30", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o" / "lr_find.json").read_text())["num_steps"] == 30


def test_bad_input_exits_cleanly(tmp_path):
    res = runner.invoke(app(), ["find", "--start-lr", "1", "--end-lr", "0.1", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "must be greater than --start-lr" in res.output
    assert not (tmp_path / "x").exists()
    res = runner.invoke(app(), ["find", "--rule", "valey"])
    assert res.exit_code == 2 and "Did you mean 'valley'" in res.output
    bad = tmp_path / "bad.py"
    bad.write_text("def model():\n    return None\n")
    res = runner.invoke(app(), ["find", str(bad)])
    assert res.exit_code == 2 and "must define optimizer(), train_loader()" in res.output
    res = runner.invoke(app(), ["find", str(tmp_path / "nope.py")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert "LR range test" not in res.output  # no empty progress bar in front of a set-up error
