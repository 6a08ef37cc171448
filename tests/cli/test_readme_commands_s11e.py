"""The README's headline commands, run as a new user runs them, against what the README says they print and write.

``tests/test_readme_examples.py`` runs the README's Python blocks and ``tests/cli/test_readme_journey.py`` runs its
``lrkit schedule`` lines; these tests run the Quick start's ``lrkit find``, the complete ``my_task.py`` with its
documented command, and a short ``lrkit train`` (the README's own keys with fewer epochs), then check the files and
the output the README promises — so a renamed file, a dropped column or a changed table row fails here first.
The last tests pin CLI messages found wrong while auditing the README's commands (each failed before its fix).
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lrkit.cli.app import build_app

README = Path(__file__).resolve().parents[2] / "README.md"
TEXT = README.read_text(encoding="utf-8")
runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(build_app(), list(args), terminal_width=200)


def _bash_lines(prefix: str) -> list[list[str]]:
    """The README's ```bash lines that start with ``prefix``, split as a shell would (comments dropped)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):  # `pip install -e . && lrkit find`
                words = shlex.split(part, comments=True)
                if words[: len(prefix.split())] == prefix.split():
                    lines.append(words)
    return lines


def test_quick_start_lrkit_find_prints_the_table_and_writes_what_the_readme_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ["lrkit", "find"] in _bash_lines("lrkit find")  # the Quick start's command, as written
    promise = re.search(r"writes\s+`(runs/find/lr_find\.png)`.*?and\s+`(runs/find/lr_find\.json)`", TEXT, re.S)
    assert promise is not None, "the Quick start no longer names the files lrkit find writes"
    monkeypatch.chdir(tmp_path)
    res = _invoke("find")
    assert res.exit_code == 0, res.output
    png, record = (tmp_path / promise.group(1)), (tmp_path / promise.group(2))
    assert png.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(record.read_text())
    assert data["suggestion"] > 0 and len(data["lrs"]) == len(data["losses"]) > 10
    # "prints the suggested learning rate, the usable range and every rule's value" (and how the default rule read
    # the curve) — and the paths of the picture and the record
    out = res.output
    assert re.search(r"suggestion \(robust\)\s*│\s*[0-9.e-]+", out), out
    assert re.search(r"curve\s*│\s*(exploded|plateaued|dipped|too flat)", out), out
    assert re.search(r"range \(low – high\)\s*│\s*[0-9.e-]+ – [0-9.e-]+", out), out
    for rule in ("steepest", "minimum", "valley"):
        assert re.search(rf"rule: {rule}\s*│\s*[0-9.e-]+", out), (rule, out)
    assert f"plot:   {promise.group(1)}" in out and f"record: {promise.group(2)}" in out
    # "runs/find, then runs/find2, … — never overwritten"
    res = _invoke("find", "--num-steps", "10")
    assert res.exit_code == 0, res.output
    assert "record: runs/find2/lr_find.json" in res.output
    assert json.loads(record.read_text()) == data


def test_readme_my_task_py_runs_with_its_documented_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = re.search(r"A complete `my_task\.py`.*?```python\n(.*?)```", TEXT, flags=re.S)
    assert source is not None, "the README no longer shows a complete my_task.py"
    command = re.search(r"A complete `my_task\.py` \(.*?`(lrkit find my_task\.py [^`]*)`", TEXT, flags=re.S)
    assert command is not None
    words = shlex.split(command.group(1))
    assert words in _bash_lines("lrkit find my_task.py")  # the prose and the bash block show the same command
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_task.py").write_text(source.group(1))
    res = _invoke(*words[1:])
    assert res.exit_code == 0, res.output
    assert re.search(r"suggestion \(steepest\)\s*│\s*[0-9.e-]+", res.output), res.output
    assert re.search(r"rule: robust\s*│", res.output), res.output
    data = json.loads((tmp_path / "runs/find/lr_find.json").read_text())
    assert data["rule"] == "steepest" and data["num_steps"] == 200 and data["end_lr"] == 1.0


def _run_dir_files() -> list[str]:
    """The file names the README's "The run directory" block lists (one per line, before the first spaces)."""
    block = re.search(r"### The run directory\n.*?```\n(.*?)```", TEXT, flags=re.S)
    assert block is not None
    names = re.findall(r"^  (\S+\.(?:yaml|csv|json|pt|png))\s", block.group(1), flags=re.M)
    assert len(names) >= 6, names
    return names


def test_short_lrkit_train_writes_the_run_directory_the_readme_describes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    documented = _bash_lines("lrkit train")
    first = documented[0]
    assert first[:4] == ["lrkit", "train", "data=digits", "model=mlp"], first
    # the README's first train command, for 2 epochs (the same keys: lr0=auto, lrf=0.01)
    tokens = [t for t in first[2:] if not t.startswith("epochs=")] + ["epochs=2"]
    assert "lr0=auto" in tokens and "lrf=0.01" in tokens
    monkeypatch.chdir(tmp_path)
    res = _invoke("train", *tokens)
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "train"
    for name in _run_dir_files():
        assert (run / name).is_file(), (name, sorted(p.name for p in run.iterdir()))
    assert (run / "results.png").read_bytes()[:4] == b"\x89PNG"
    # results.csv: "one row per epoch: epoch, time, train_loss, val_loss, val_<metric>, lr/<group> ..., grad_norm
    # (mean), grad_norm_max, epoch_time"
    with open(run / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    cols = list(rows[0])
    assert cols[:5] == ["epoch", "time", "train_loss", "val_loss", "val_accuracy"], cols
    assert any(c.startswith("lr/") for c in cols) and cols[-3:] == ["grad_norm", "grad_norm_max", "epoch_time"]
    # events.json: {"lr0": {value, source, auto record}, "optimizer": {name, reason}, "events": [...]}
    events = json.loads((run / "events.json").read_text())
    assert set(events) == {"lr0", "optimizer", "events"}
    assert set(events["lr0"]) == {"value", "source", "auto"} and events["lr0"]["source"] == "auto"
    assert set(events["optimizer"]) == {"name", "reason"} and isinstance(events["events"], list)
    # args.yaml: every key as used, plus "resolved" with the keys the README names
    args = yaml.safe_load((run / "args.yaml").read_text())
    assert args["lr0"] == "auto" and args["lrf"] == 0.01 and args["epochs"] == 2
    resolved = args["resolved"]
    for key in ("task", "model", "optimizer", "optimizer_reason", "lr0", "lr0_source", "accumulate", "weight_decay",
                "steps_per_epoch", "total_steps", "device", "metric", "data", "run_dir"):
        assert key in resolved, (key, sorted(resolved))
    assert resolved["lr0_source"] == "auto" and resolved["lr0"] == pytest.approx(events["lr0"]["value"])
    # the summary table at the end
    assert "lrkit train — summary" in res.output and "runs/train" in res.output
    assert re.search(r"lr0\s*│\s*[0-9.e-]+ \(auto\)", res.output), res.output
    # `lrkit train resume=runs/train/last.pt epochs=40`: a finished run is extended in its own folder
    resume = next(w for w in documented if any(t.startswith("resume=") for t in w))
    assert resume[2:] == ["resume=runs/train/last.pt", "epochs=40"], resume
    res = _invoke("train", "resume=runs/train/last.pt", "epochs=3")
    assert res.exit_code == 0, res.output
    with open(run / "results.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]
    assert not (tmp_path / "runs" / "train2").exists()


def test_train_help_forms_print_the_same_help() -> None:
    # "`lrkit train help` and `lrkit train -h` print the same help as `--help`"
    helps = [_invoke("train", flag) for flag in ("--help", "-h", "help")]
    assert all(h.exit_code == 0 for h in helps), [h.output for h in helps]
    assert helps[0].output == helps[1].output == helps[2].output
    assert "lr0" in helps[0].output and "epochs" in helps[0].output


# --- messages found wrong while auditing the README's commands ------------------------------------------------------

@pytest.mark.parametrize("spec,named", [
    ("cyclic max_lr=0.1", "schedule 'cyclic' needs base_lr=..."),
    ("cosine =3", "bad token '=3' in spec 'cosine =3'"),
])
def test_schedule_error_names_the_spec_once(spec: str, named: str) -> None:
    # Bug: the CLI put the spec in front of a message that already named it:
    # "error: 'cyclic max_lr=0.1': schedule 'cyclic' needs base_lr=... (spec 'cyclic max_lr=0.1')".
    res = _invoke("schedule", spec, "-t", "100")
    assert res.exit_code == 2, res.output
    assert named in res.output
    assert res.output.count(repr(spec)) == 1, res.output


def test_schedule_error_still_names_a_spec_the_message_does_not() -> None:
    res = _invoke("schedule", "cosine lr0=0.1", "-t", "100", "--compare", "cosine lfr=0.1")
    assert res.exit_code == 2, res.output
    assert "error: 'cosine lfr=0.1': unknown cosine parameter 'lfr'. Did you mean 'lrf'?" in res.output


def test_find_seed_error_names_the_flag(tmp_path: Path) -> None:
    # Bug: `lrkit find --seed -1` said "seed=-1 must be ..." where every other find error names the flag typed.
    res = _invoke("find", "--seed", "-1", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2, res.output
    assert "error: --seed -1 must be an integer >= 0" in res.output, res.output
