"""``lrkit train`` over bad data files: one line, exit code 2, and no run directory (bug hunt on data paths)."""

from __future__ import annotations

from typer.testing import CliRunner

from lrkit.cli.app import build_app

runner = CliRunner()


def _invoke(*tokens: str):
    return runner.invoke(build_app(), ["train", *tokens, "epochs=1", "verbose=false", "plots=false"])


def test_numeric_target_with_na_fails_in_one_line_without_a_run_dir(tmp_path):
    f = tmp_path / "houses.csv"
    f.write_text("area,price\n" + "".join(f"{30 + i * 1.5},{1000 * (30 + i * 1.5) + 0.25}\n" for i in range(40))
                 + "77.5,NA\n", encoding="utf-8")
    res = _invoke(f"data={f}", "target=price", f"project={tmp_path / 'runs'}")
    assert res.exit_code == 2, res.output
    assert "'NA' on line 42" in res.output and "task='classification'" in res.output
    assert not (tmp_path / "runs").exists()


def test_latin1_csv_fails_in_one_line_naming_the_file(tmp_path):
    f = tmp_path / "cafe.csv"
    f.write_bytes("a,y\n1,th\xe9\n2,caf\xe9\n3,th\xe9\n".encode("latin-1"))
    res = _invoke(f"data={f}", f"project={tmp_path / 'runs'}")
    assert res.exit_code == 2, res.output
    assert "cafe.csv is not UTF-8 (byte 0xe9 on line 2)" in " ".join(res.output.split())
    assert not (tmp_path / "runs").exists()


def test_json_data_is_refused_not_trained_as_a_char_lm(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text('{"x": 1, "y": 0}\n' * 300, encoding="utf-8")
    res = _invoke(f"data={f}", f"project={tmp_path / 'runs'}")
    assert res.exit_code == 2, res.output
    assert ".jsonl files are not read" in " ".join(res.output.split())
    assert not (tmp_path / "runs").exists()


def test_project_with_a_tilde_goes_to_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    res = _invoke("data=iris", "model=linear", "lr0=0.01", "project=~/runs")  # as `sh` passes it: unexpanded
    assert res.exit_code == 0, res.output
    assert (tmp_path / "home" / "runs" / "train" / "last.pt").is_file()
    assert not (tmp_path / "~").exists()
