"""The ``lrkit`` command used non-interactively: in scripts, pipes, log files, cron (session 35i).

Each test runs the real command in a subprocess with stdout a pipe (as ``lrkit ... > log.txt`` or ``| cat``) and
checks what a script reading it gets: a ``COLUMNS=0`` environment, a long or bracketed path in a log file, predictions
on stdout under a legacy encoding, and a closed stdin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import lrkit


def _lrkit(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONIOENCODING")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "lrkit", *args], env=full, cwd=cwd, stdin=stdin,
                          capture_output=True, timeout=120)


# -------------------------------------------------------------------------------------------------- COLUMNS=0
def test_columns_zero_still_prints_the_error() -> None:
    """rich reads ``COLUMNS=0`` as a console 0 columns wide: the error line was empty — exit 2, nothing said."""
    done = _lrkit("schedule", "cosine lr0=-1", "-t", "10", env={"COLUMNS": "0"})
    assert done.returncode == 2
    assert b"error:" in done.stderr and b"lr0=-1" in done.stderr, done.stderr


def test_columns_zero_still_prints_the_table(tmp_path: Path) -> None:
    done = _lrkit("schedule", "cosine lr0=0.1 warmup_steps=10", "-t", "100", "--no-plot", env={"COLUMNS": "0"},
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "warmup" in out and "decay" in out and "final 0.001024" in out, out


def test_columns_zero_console_and_progress_bar_have_a_width(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.cli._common import console, progress_bar

    monkeypatch.setenv("COLUMNS", "0")
    assert console().width > 0 and console(stderr=True).width > 0
    with progress_bar("x", 3) as update:  # the bar draws on the same console, not rich's global 0-wide one
        update()
    monkeypatch.setenv("COLUMNS", "57")  # a width that is set is kept
    assert console().width == 57


# -------------------------------------------------------------------------------------------------- paths in a log
def test_find_prints_a_long_out_path_on_one_line(tmp_path: Path) -> None:
    """In a log file (80 columns) ``plot:``/``record:`` lines folded a long path in two: ``grep '^record:'`` got a
    piece of it."""
    out = tmp_path / ("a_long_folder_name_that_a_real_project_would_have_" * 2) / "find"
    done = _lrkit("find", "--num-steps", "20", "--no-chart", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert f"plot:   {out / 'lr_find.png'}" in lines, lines[-4:]
    assert f"record: {out / 'lr_find.json'}" in lines, lines[-4:]


def test_schedule_wrote_line_keeps_a_long_bracketed_path(tmp_path: Path) -> None:
    """``wrote runs/[adamw]/lr.png`` printed ``wrote runs//lr.png`` (rich markup), and a long path folded."""
    out = tmp_path / "[adamw]" / ("a_long_folder_name_that_a_real_project_would_have_" * 2) / "lr.png"
    done = _lrkit("schedule", "cosine lr0=0.1", "-t", "20", "--no-chart", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout.decode().splitlines()
    assert out.is_file()


# -------------------------------------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def city_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose class labels are not ASCII (nor cp1252: 東京)."""
    folder = tmp_path_factory.mktemp("cities")
    rows = ["x1,x2,city"] + [f"{s * (1 + i / 40):.3f},{(i % 7) / 7:.3f},{c}" for i in range(40)
                             for s, c in ((1.0, "東京"), (-1.0, "Zürich"))]
    (folder / "cities.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "new.csv").write_text("x1,x2\n1.0,0.1\n-1.0,0.2\n", encoding="utf-8")
    lrkit.train(data=str(folder / "cities.csv"), target="city", model="linear", epochs=1, verbose=False,
                plots=False, seed=0, project=str(folder), name="run")
    return folder


def test_predict_stdout_is_utf8_whatever_the_stream_encoding(city_run: Path) -> None:
    """Under a stdout encoding that cannot show a label (cp1252, Windows' default for a redirect) the CSV on stdout
    held ``??`` for ``東京``, exit 0: it is now UTF-8, byte for byte what ``--out`` writes."""
    out = city_run / "preds.csv"
    wrote = _lrkit("predict", str(city_run / "run"), str(city_run / "new.csv"), "--out", str(out))
    assert wrote.returncode == 0, wrote.stderr
    for encoding in ("cp1252", "latin-1", "ascii"):
        done = _lrkit("predict", str(city_run / "run"), str(city_run / "new.csv"),
                      env={"PYTHONIOENCODING": encoding})
        assert done.returncode == 0, done.stderr
        assert done.stdout == out.read_bytes(), (encoding, done.stdout)
        assert done.stdout.decode("utf-8").splitlines()[0] == "city"


def test_predict_from_a_closed_stdin_says_so(city_run: Path) -> None:
    """``lrkit predict RUN - <&-`` said ``the model failed on INPUT: Was not able to determine binary stream for
    sys.stdin``."""
    done = subprocess.run(["bash", "-c", 'exec "$@" <&-', "_", sys.executable, "-m", "lrkit", "predict",
                           str(city_run / "run"), "-"], capture_output=True, timeout=120)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "stdin" in err and "closed" in err and "model failed" not in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
