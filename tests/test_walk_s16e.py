"""A newcomer's walk through ``lrkit find | schedule | train`` at COLUMNS=80 (session 16e): what read badly or misled.

1. ``lrkit train cfg=<a resumed run's args.yaml>`` failed with "resume: .../last.pt already finished ...; start a
   new run" — the user gave no resume=, so nothing said the resume came from the cfg file or how to leave it out.
2. ``lrkit train --help`` at 80 columns: each key's meaning wrapped back to column 1 (no hanging indent), with a blank
   line after every key — 125 lines where the keys could not be told from their meanings.
3. ``lrkit schedule --list`` at 80 columns broke names and words mid-way (``cosine_restart`` / ``s``,
   ``max_lr/(div*fi`` / ``nal_div)``) across five cramped columns.
4. ``lrkit schedule`` key-point tables narrower than their title wrapped the title mid-phrase (``(90`` / ``epochs)``).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

import lrkit
from lrkit._config import TrainConfig
from lrkit.cli.app import build_app
from lrkit.schedules import available


def _invoke(*args: str, columns: int = 80):
    return CliRunner().invoke(build_app(), list(args), env={"COLUMNS": str(columns)})


# --------------------------------------------------------------------------------------------------------------
# 1. a resume that comes from a cfg= file says so, and how to start a new run from it
# --------------------------------------------------------------------------------------------------------------
def test_a_resume_from_a_cfg_file_is_named_with_how_to_leave_it_out(tmp_path: Path) -> None:
    lrkit.train(data="iris", model="linear", epochs=1, lr0=0.05, project=str(tmp_path / "runs"), name="a",
                plots=False, verbose=False)
    last = tmp_path / "runs" / "a" / "last.pt"
    cfg = tmp_path / "again.yaml"  # as a resumed run's args.yaml is: its resume: names the run's last.pt
    cfg.write_text(yaml.safe_dump({"data": "iris", "model": "linear", "epochs": 1, "lr0": 0.05, "plots": False,
                                   "project": str(tmp_path / "runs"), "resume": str(last)}))
    res = _invoke("train", f"cfg={cfg}")
    assert res.exit_code == 2, res.output
    assert "already finished" in res.output and "Traceback" not in res.output
    text = " ".join(res.output.split())
    assert f"resume={last} comes from cfg={cfg}" in text
    assert "add resume=false" in text
    # the advice works: the same cfg with resume=false trains a new run
    again = _invoke("train", f"cfg={cfg}", "resume=false", "verbose=false")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "runs" / "train" / "last.pt").exists()


def test_a_resume_given_as_a_token_gets_no_cfg_note(tmp_path: Path) -> None:
    lrkit.train(data="iris", model="linear", epochs=1, lr0=0.05, project=str(tmp_path / "runs"), name="a",
                plots=False, verbose=False)
    cfg = tmp_path / "t.yaml"
    cfg.write_text("data: iris\nmodel: linear\n")
    res = _invoke("train", f"cfg={cfg}", f"resume={tmp_path / 'runs' / 'a' / 'last.pt'}", "epochs=1")
    assert res.exit_code == 2, res.output
    assert "already finished" in res.output
    assert "comes from cfg=" not in " ".join(res.output.split())


# --------------------------------------------------------------------------------------------------------------
# 2. `lrkit train --help`: every key on its own line, its meaning indented under it at 80 columns
# --------------------------------------------------------------------------------------------------------------
def _keys_section(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "Keys (name=default: meaning)" in line)
    end = next(i for i, line in enumerate(lines) if i > start and "Arguments" in line)
    return [line.rstrip() for line in lines[start + 1:end] if line.strip()]


def test_train_help_keys_keep_a_hanging_indent_at_80_columns() -> None:
    res = _invoke("train", "--help")
    assert res.exit_code == 0, res.output
    keys = _keys_section(res.output)
    assert all(len(line) <= 80 for line in keys), [line for line in keys if len(line) > 80]
    starts = [line for line in keys if not line.startswith("    ")]  # a key's first line, not a continuation
    assert all(line.startswith("   ") and "=" in line.split(":")[0] for line in starts), starts
    names = [line.split("=")[0].strip() for line in starts]
    assert names == ["cfg", *TrainConfig.defaults()]  # every key, in order, each once
    assert len(keys) > len(names)  # some meanings do wrap at 80 columns, and those lines are indented


def test_train_help_has_no_blank_line_between_keys() -> None:
    lines = _invoke("train", "--help").output.splitlines()
    start = next(i for i, line in enumerate(lines) if "Keys (name=default: meaning)" in line)
    end = next(i for i, line in enumerate(lines) if i > start and "Arguments" in line)
    body = lines[start + 1:end]
    first = next(i for i, line in enumerate(body) if line.strip())
    last = max(i for i, line in enumerate(body) if line.strip())
    assert all(line.strip() for line in body[first:last + 1])


# --------------------------------------------------------------------------------------------------------------
# 3. `lrkit schedule --list` at 80 columns: no name, alias, torch name or word cut in two
# --------------------------------------------------------------------------------------------------------------
def test_schedule_list_keeps_every_word_whole_at_80_columns() -> None:
    res = _invoke("schedule", "--list")
    assert res.exit_code == 0, res.output
    assert all(len(line) <= 80 for line in res.output.splitlines())
    words = set(res.output.replace("│", " ").replace(",", " ").split())
    for e in available():
        assert e.name in words, e.name
        for text in (*e.aliases, e.torch_equivalent, e.description, e.unit if "unit" in e.parameters else "–"):
            for word in text.replace(",", " ").split():
                assert word in words, (e.name, word)


def test_schedule_list_wide_table_is_unchanged_in_a_wide_terminal() -> None:
    res = _invoke("schedule", "--list", columns=250)
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in res.output.splitlines() if line.startswith("│")}
    for e in available():
        assert rows[e.name][0] == ", ".join(e.aliases)
        assert rows[e.name][2] == e.torch_equivalent
        assert rows[e.name][3] == e.description


# --------------------------------------------------------------------------------------------------------------
# 4. a key-point table's title is not wrapped mid-phrase when the terminal has room for it
# --------------------------------------------------------------------------------------------------------------
def test_schedule_table_title_stays_on_one_line(tmp_path: Path) -> None:
    res = _invoke("schedule", "step lr0=0.1 step_size=30 gamma=0.1", "--epochs", "90", "--steps-per-epoch", "500",
                  "--no-plot")
    assert res.exit_code == 0, res.output
    title = "step lr0=0.1 step_size=30 gamma=0.1 — 45000 steps (90 epochs)"
    assert any(title in line for line in res.output.splitlines()), res.output
