"""The README's shell commands as a newcomer copies them: every ``lrkit find|schedule|train ...`` it shows.

``tests/cli/test_readme_journey.py`` and ``tests/cli/test_readme_commands_s11e.py`` run the commands of the
README's ```bash blocks; the README also names commands inline (`lrkit train cfg=runs/cut/args.yaml resume=false
...`, `lrkit find --device cuda --amp on`, the `/usr/bin/time -v lrkit schedule ...` rows), which no test read.
The first test parses every one of them the way the CLI does, so a renamed option or key fails here rather than on
a user's machine (the second shows that check is live); the last pins a bug found by running the README's own
10^6-phase schedule command at the default 80-column terminal width (it failed before the fix in cli/schedule.py).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lrkit._config import TrainConfig, tokens_to_kwargs
from lrkit.cli.app import build_app
from lrkit.cli.find import _AMP
from lrkit.finder import SUGGESTION_RULES
from lrkit.schedules import from_spec

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
COMMANDS = ("find", "schedule", "train", "predict")

#: Commands the README shows *because* they fail (each followed there by the error it gives).
DELIBERATE_ERRORS = {
    "lrkit train data=iris epochs 20": "'epochs' needs a value",
    "lrkit train epochs=3 epochs=5": "epochs is given twice",
}


def _readme_commands() -> list[str]:
    """Every ``lrkit <command> ...`` of the README: the lines of its ```bash blocks (continuations joined, comments
    and ``&&`` chains split off) and its inline code spans (which may wrap onto the next line)."""
    found: list[str] = []
    blocks = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if "lrkit" in words:  # `/usr/bin/time -v lrkit ...` too
                    words = words[words.index("lrkit"):]
                    if len(words) > 1 and words[1] in COMMANDS:
                        found.append(shlex.join(words))
    prose = re.sub(r"```.*?```", "", TEXT, flags=re.S)
    for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", prose):
        span = " ".join(span.split())
        m = re.search(r"\blrkit ((?:find|schedule|train|predict)\b.*)", span)
        if m is None or "|" in m.group(1).split(" > ")[0]:  # `lrkit find | schedule | train` names the commands
            continue
        found.append("lrkit " + m.group(1))
    return list(dict.fromkeys(found))


def _placeholders(command: str) -> str:
    """A documented template (`data=<data> model=<model> epochs=20 [lr0=auto]`) made concrete: ``<x>`` is a word,
    ``[...]`` an optional part that is kept."""
    return re.sub(r"\[([^\]]*)\]", r"\1", re.sub(r"<[^>]+>", "x", command))


def _check_command(command: str, app: Any) -> None:
    words = shlex.split(_placeholders(command))
    if ">" in words:  # `... --json > lr.json`
        words = words[:words.index(">")]
    name, args = words[1], [w for w in words[2:] if w not in ("--help", "-h")]  # every command takes both
    assert name in app.commands, command
    if not args or command == "lrkit train key=value":  # the command named in prose; the train section's title
        return
    # the CLI's own parser (click's, as typer vendors it): an option the command no longer has fails here, as on the
    # command line
    try:
        ctx = app.commands[name].make_context(name, args)
    except Exception as e:
        message = e.format_message() if hasattr(e, "format_message") else repr(e)
        raise AssertionError(f"README: `{command}` — the CLI says: {message}") from e
    params = ctx.params
    if name == "find":
        assert params["rule"] in SUGGESTION_RULES, command
        assert params["amp"] in _AMP, command
        assert params["mode"] in ("exp", "linear"), command
    elif name == "predict":  # the parser took RUN, INPUT and every option: a renamed option failed above
        assert params["run"], command
    elif name == "schedule":
        if params["list_"]:
            return
        if not params["spec"]:  # `lrkit schedule --json`: the option named in prose
            assert params["as_json"], command
            return
        spec = " ".join(params["spec"])
        for s in (spec, *(params["compare"] or [])):  # each spec builds (lazy: -t 1e7 costs nothing here)
            sched = from_spec(s, epochs=params["epochs"], steps_per_epoch=params["steps_per_epoch"],
                              total_steps=params["total_steps"])
            assert sched.total_steps is not None or params["base_lr"] is not None, command
    else:
        tokens = [t for t in params["args"] or [] if t != "help"]
        if command in DELIBERATE_ERRORS:  # still refused, with the message the README quotes
            with pytest.raises(ValueError, match=re.escape(DELIBERATE_ERRORS[command])):
                TrainConfig.from_kwargs(**tokens_to_kwargs(tokens))
            return
        unknown = {t.partition("=")[0] for t in tokens} - set(TrainConfig.defaults()) - {"cfg"}
        assert not unknown, f"README: `{command}` names train keys the CLI does not have: {sorted(unknown)}"
        # cfg= names the user's file, and model= an earlier run's checkpoint or folder to fine-tune from (files the
        # README's reader has, not this checkout)
        user_files = [t for t in tokens if t.startswith("cfg=") or re.match(r"model=(runs/|.*\.pt$)", t)]
        kwargs = tokens_to_kwargs([t for t in tokens if t not in user_files])
        TrainConfig.from_kwargs(**kwargs)  # a renamed key or a value the CLI refuses raises here


def test_readme_lrkit_commands_name_existing_commands_options_and_keys() -> None:
    commands = _readme_commands()
    inline = [c for c in commands if "lrkit train cfg=runs/cut/args.yaml resume=false" in c]
    assert inline, "the inline commands were not found: the extraction is broken"
    assert "lrkit find --device cuda --amp on" in commands and len(commands) >= 30, commands
    assert set(DELIBERATE_ERRORS) <= set(commands), "a deliberate error example left the README: update the list"
    app = typer.main.get_command(build_app())
    for command in commands:
        _check_command(command, app)


def test_check_command_catches_a_renamed_option_and_key() -> None:
    """The check is live: an option or key the CLI does not have fails it."""
    app = typer.main.get_command(build_app())
    for bad in ("lrkit find --steps 200", "lrkit schedule cosine -t 10 --png x.png", "lrkit train data=iris lr_0=1",
                "lrkit find --rule fastest", "lrkit schedule 'cosine lfr=0.1' -t 10"):
        with pytest.raises((AssertionError, ValueError)):
            _check_command(bad, app)


# --- the schedule table at a terminal's default width ---------------------------------------------------------------

def _column(output: str, index: int) -> str:
    """The text of one column of a rich table, its cells (and a folded cell's continuation lines) in order."""
    cells = [line.split("│")[index] for line in output.splitlines() if line.count("│") > index]
    return "".join(c.strip() for c in cells)


def test_schedule_table_at_80_columns_keeps_every_digit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: the README's `lrkit schedule "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1" -t 1000000 -o ...` (a
    # 10^6-phase run whose table shows its first and last 8 phases) printed the last phases' steps as
    # "999998–9999…" in an 80-column terminal: rich cut the numbers the table is there to show.
    command = 'lrkit schedule "cyclic base_lr=0.001 max_lr=0.1 step_size_up=1" -t 1000000 -o /tmp/x.png'
    assert command in " ".join(TEXT.split())
    monkeypatch.setenv("COLUMNS", "80")
    args = [*shlex.split(command)[1:-2], "--no-plot"]
    res = CliRunner().invoke(build_app(), args, terminal_width=80)
    assert res.exit_code == 0, res.output
    table = res.output
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "…" not in table.replace("… 999984", ""), table  # the elision row is the only "…"
    steps = _column(table, 2)
    assert steps.endswith("999998–999998999999–999999"), table  # the last two phases, every digit
    # with epochs too (7 columns, the widest table): no cell is cut either
    res = CliRunner().invoke(build_app(), [*args[:-3], "-e", "100", "-n", "10000", "--no-plot"], terminal_width=80)
    assert res.exit_code == 0, res.output
    assert "…" not in res.output.replace("… 999984", ""), res.output
    assert _column(res.output, 2).endswith("999998–999998999999–999999"), res.output
