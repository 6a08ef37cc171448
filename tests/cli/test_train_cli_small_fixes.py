"""``lrkit train``: small fixes from a bug hunt — a key or ``cfg=`` given twice, an empty ``cfg=``, a key in the
wrong case, a numeric run name in a cfg file, and a model factory that calls ``sys.exit``."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from lrkit.cli.app import build_app as app
from lrkit.train.data import load_data
from lrkit.train.models import build_model

runner = CliRunner()


def _train(tmp_path, *tokens: str, model: str = "linear"):
    return runner.invoke(app(), ["train", "data=iris", f"model={model}", "epochs=1", "lr0=0.05", "plots=false",
                                 "verbose=false", f"project={tmp_path / 'runs'}", *tokens])


def _one_line_error(res, code: int = 2) -> str:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    return " ".join(res.output.split())


def test_a_key_given_twice_exits_naming_the_key_and_both_values(tmp_path):
    out = _one_line_error(_train(tmp_path, "batch=8", "batch=16"))
    assert "batch is given twice: 'batch=8' and 'batch=16'" in out
    assert not (tmp_path / "runs").exists()


def test_two_cfg_files_exit_naming_both(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("epochs: 1\n")
    b.write_text("batch: 8\n")
    out = _one_line_error(_train(tmp_path, f"cfg={a}", f"cfg={b}"))
    assert f"cfg is given twice: 'cfg={a}' and 'cfg={b}'" in out
    assert not (tmp_path / "runs").exists()


def test_an_empty_cfg_exits(tmp_path):
    out = _one_line_error(_train(tmp_path, "cfg="))
    assert "cfg= needs a YAML file" in out
    assert not (tmp_path / "runs").exists()


def test_a_key_in_the_wrong_case_gets_a_did_you_mean(tmp_path):
    out = _one_line_error(_train(tmp_path, "EPOCHS=2"))
    assert "unknown train key 'EPOCHS'. Did you mean 'epochs'?" in out


def test_a_numeric_run_name_from_a_cfg_file_names_the_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: 2024\n")
    res = _train(tmp_path, f"cfg={cfg}")
    assert res.exit_code == 0, res.output
    args = yaml.safe_load((tmp_path / "runs" / "2024" / "args.yaml").read_text())
    assert args["name"] == "2024"


# ------------------------------------------------------------------------------------ a factory that exits
EXITING = textwrap.dedent("""
    import sys

    def make(in_features, num_outputs):
        sys.exit(3)

    def interrupted(in_features, num_outputs):
        raise KeyboardInterrupt
""")


def test_a_factory_that_calls_sys_exit_is_reported_by_name(tmp_path):
    f = tmp_path / "exiting.py"
    f.write_text(EXITING)
    out = _one_line_error(_train(tmp_path, model=f"{f}:make"))
    assert f"model='{f}:make': calling make(in_features=4, num_outputs=3) exited (SystemExit(3))" in out
    assert not (tmp_path / "runs").exists()


def test_a_module_that_exits_on_import_is_reported_by_name(tmp_path):
    f = tmp_path / "exits_on_import.py"
    f.write_text("import sys\nsys.exit(2)\n\ndef make():\n    pass\n")
    out = _one_line_error(_train(tmp_path, model=f"{f}:make"))
    assert f"model='{f}:make': importing '{f}' exited (SystemExit(2))" in out


def test_a_keyboard_interrupt_in_a_factory_still_propagates(tmp_path):
    f = tmp_path / "exiting.py"
    f.write_text(EXITING)
    with pytest.raises(KeyboardInterrupt):
        build_model(f"{f}:interrupted", load_data("iris").info)
    res = _train(tmp_path, model=f"{f}:interrupted")
    assert res.exit_code == 130 and "interrupted" in res.output
