"""Command-line experience hunt (session 34f): bad input from the terminal, a pipe or a script is one clear line
naming the bad value and what would be valid, with exit code 2 — never a raw library or codec message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import lrkit
from lrkit.cli.app import build_app

runner = CliRunner()


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CSV-trained classification run (columns a, b; target y)."""
    d = tmp_path_factory.mktemp("s34f")
    data = d / "rows.csv"
    data.write_text("a,b,y\n" + "".join(f"{i % 7}.5,{i % 3}.25,{i % 2}\n" for i in range(40)))
    return lrkit.train(data=str(data), model="linear", epochs=1, verbose=False, plots=False, seed=0,
                       project=str(d / "runs")).run_dir


def _invoke(*args: str, stdin: Any = None) -> Any:
    return runner.invoke(build_app(), list(args), input=stdin)


def test_predict_stdin_not_utf8_is_one_clear_line(csv_run: Path) -> None:
    """Rows piped in a legacy encoding (latin-1) are refused as a file of rows is: naming stdin, the byte, the line
    and how to convert it — not Python's bare "'utf-8' codec can't decode byte 0xe9 in position 12"."""
    result = _invoke("predict", str(csv_run), "-", stdin=b"a,b\n1.5,2.0\n3.5,4.0\xe9\n")
    assert result.exit_code == 2, result.output
    assert "codec can't decode" not in result.output
    assert "stdin is not UTF-8" in result.output
    assert "0xe9" in result.output and "line 3" in result.output


def test_predict_stdin_utf8_with_bom_and_crlf_still_reads(csv_run: Path) -> None:
    """A spreadsheet's export (a byte-order mark, CRLF line ends) piped in reads as before."""
    result = _invoke("predict", str(csv_run), "-", stdin=b"\xef\xbb\xbfa,b\r\n1.5,2.0\r\n3.5,1.0\r\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "y"
    assert len(result.stdout.splitlines()) == 3


def _closed_stdout(*args: str) -> Any:
    """``python -m lrkit ARGS >&-``: the command run with its stdout closed (Python's ``sys.stdout`` is ``None``)."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "lrkit", *args], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          preexec_fn=lambda: os.close(1), text=True, timeout=60)


def test_schedule_json_with_stdout_closed_fails_cleanly() -> None:
    """``lrkit schedule ... --json >&-``: the JSON has nowhere to go — one line and exit 2, not an AttributeError
    traceback ('NoneType' object has no attribute 'write')."""
    done = _closed_stdout("schedule", "cosine", "lr0=0.1", "-t", "10", "--json", "--no-plot")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "stdout" in done.stderr and "closed" in done.stderr


def test_predict_with_stdout_closed_does_not_claim_success(csv_run: Path, tmp_path: Path) -> None:
    """``lrkit predict RUN rows.csv >&-``: the CSV was silently dropped and the command said "predicted 2 rows" with
    exit code 0; now it fails (exit 2), naming --out as the way to write the CSV."""
    rows = tmp_path / "new.csv"
    rows.write_text("a,b\n1.5,2.0\n3.5,1.0\n")
    done = _closed_stdout("predict", str(csv_run), str(rows))
    assert done.returncode == 2, done.stderr
    assert "predicted" not in done.stderr
    assert "--out" in done.stderr and "closed" in done.stderr


def test_predict_out_dash_is_stdout(csv_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out -`` is stdout, as INPUT ``-`` is stdin: it wrote a file called ``-`` in the working directory."""
    monkeypatch.chdir(tmp_path)
    rows = tmp_path / "new.csv"
    rows.write_text("a,b\n1.5,2.0\n3.5,1.0\n")
    result = _invoke("predict", str(csv_run), str(rows), "--out", "-")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "-").exists()
    assert result.stdout.splitlines()[0] == "y" and len(result.stdout.splitlines()) == 3


def test_schedule_out_dash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``lrkit schedule ... -o -`` wrote a PNG called ``-`` in the working directory; ``-`` is no picture's name."""
    monkeypatch.chdir(tmp_path)
    result = _invoke("schedule", "cosine", "lr0=0.1", "-t", "10", "-o", "-")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "-").exists()
    assert "--out" in result.output and "schedule.png" in result.output
