"""``lrkit train key=value ...``: Ultralytics-style training from the command line.

A thin wrapper over :func:`lrkit.train`: the tokens become a validated :class:`~lrkit._config.TrainConfig`
(``cfg=file.yaml`` loads many keys at once; tokens override it), the run is driven with a rich progress bar, and a
summary table closes it. Bad input exits with code 2 and one line naming the bad key or value — before any run
directory is created.
"""

from __future__ import annotations

import os
import shlex
import sys
import textwrap
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lrkit._config import TrainConfig, token_key, tokens_to_kwargs
from lrkit._utils import optional_import
from lrkit.cli._common import console, fail, progress_bar, user_code_error

__all__ = ["register", "train_command"]

_EXAMPLES = """Examples:

  lrkit train data=digits model=mlp epochs=20 lr0=auto lrf=0.01

  lrkit train data=iris model=linear optimizer=SGD lr0=0.05 cos_lr=true

  lrkit train data=my.csv target=price epochs=50 batch=64 patience=10

  lrkit train data=book.txt model=charlm seq_len=128 epochs=5

  lrkit train cfg=train.yaml epochs=30      (keys from a file; tokens win)

  lrkit train resume=runs/train/last.pt epochs=40
"""


#: Width the keys' help is wrapped to: with typer's one-column margin on each side it fits an 80-column terminal, and
#: each meaning's next lines keep their indent under the key (rich's own wrap would start them at column 1).
_HELP_WIDTH = 76


def _keys_help() -> str:
    """Every key as ``name=default: meaning``, one per line, wrapped with a hanging indent (no blank lines between
    keys: they are one block that typer prints line by line)."""
    entries = [("cfg", None, "a YAML file of key: value pairs, loaded first (the other tokens override it)"),
               *((key, default, TrainConfig.help(key)) for key, default in TrainConfig.defaults().items())]
    lines = ["Keys (name=default: meaning):", ""]
    for key, default, meaning in entries:
        lines += textwrap.wrap(f"  {key}={default}: {meaning}", width=_HELP_WIDTH, subsequent_indent="      ",
                               break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines)


def train_command(
    ctx: typer.Context,  # typer passes its context (no None default: Python 3.10 would read it as Optional[Context],
    # which typer does not recognise as the context, and `lrkit train help` would lose the help it prints)
    args: Annotated[
        Optional[list[str]],  # noqa: UP045 - typer reads Optional on Python 3.10
        typer.Argument(metavar="KEY=VALUE...", help="Training keys, e.g. data=digits model=mlp epochs=20 lr0=auto."),
    ] = None,
) -> None:
    """Train a model with the learning rate taken care of (Ultralytics-style key=value arguments).

    Every key is validated before anything runs; an unknown key names the closest valid one.
    """
    tokens = list(args or [])
    if "help" in tokens:  # `lrkit train help` (Ultralytics' `yolo help`): the help, not a did-you-mean for a key
        _print_help(ctx)
    kwargs: dict[str, Any] = {}
    python_only = _python_only_error(tokens)
    if python_only is not None:
        fail(python_only)
        return
    try:
        kwargs = tokens_to_kwargs(tokens)
        config = TrainConfig.from_kwargs(**kwargs)
    except ValueError as e:
        fail(str(e) + _cfg_resume_note(tokens, kwargs, str(e)) + _cfg_path_note(tokens, kwargs, str(e)))
        return
    if config.data is None and not config.resume:
        fail("data= is required, e.g. lrkit train data=digits model=mlp (built-ins: digits, breast_cancer, wine, "
             "iris, synthetic-regression, synthetic-classification; or a .csv/.npz/.txt/.yaml file)")
        return
    from lrkit.train import train

    caught: list[warnings.WarningMessage] = []
    bar: list[Any] = []
    epochs_done: list[int] = []
    run_dirs: list[str] = []  # the run's folder, from the progress report at its start
    try:
        with ExitStack() as stack:
            caught = stack.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")

            def update(*a: Any, **kw: Any) -> None:
                if not bar:  # start the bar at the first report, so setup errors print without an empty bar
                    bar.append(stack.enter_context(progress_bar("train", None)))
                if kw.get("event") == "start" and kw.get("run_dir"):
                    run_dirs.append(str(kw["run_dir"]))
                if kw.get("event") == "epoch":  # an epoch finished: its last.pt is written
                    epochs_done.append(int(kw.get("epoch", 0)))
                bar[0](*a, **kw)

            results = train(**kwargs, progress=update)
    except KeyboardInterrupt:
        _show_warnings(caught)
        if not epochs_done and not config.resume:
            # nothing was saved (a run stopped in its first epoch leaves no trace), so there is nothing to resume:
            # resume=true would pick up an older run instead
            fail("interrupted before the first epoch finished: nothing was saved; run the command again to start "
                 "over", code=130)
        # the run's own last.pt: resume=true searches the default project (runs/), not a project=/name= run's
        if run_dirs:
            last = shlex.quote(str(Path(run_dirs[-1]) / "last.pt"))
        elif isinstance(config.resume, str):  # stopped while setting up a resume: the same one again
            last = shlex.quote(config.resume)
        else:  # resume=true stopped before it named its run: it finds the same newest last.pt again
            fail("interrupted before the run started — run the same command again", code=130)
            return
        fail(f"interrupted — resume with: lrkit train resume={last}", code=130)
        return
    except Exception as e:
        # the user's own code (a model=/optimizer= file's forward or step) raising: one line naming file, function, line
        error = user_code_error(e, _user_files(config), "training failed",
                                keep=(ValueError, TypeError, OSError, ImportError))
        if not isinstance(error, (ValueError, ImportError, OSError)):
            raise
        _show_warnings(caught)
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        fail(message + _cfg_resume_note(tokens, kwargs, message) + _cfg_path_note(tokens, kwargs, message))
        return
    _show_warnings(caught)
    _summary(results)


def _python_only_error(tokens: list[str]) -> str | None:
    """The error for a Python-only callable argument (``loss_fn=``, ``step_fn=``, ``progress=``) given as a token or
    in the ``cfg=`` file (its did-you-mean named an unrelated key: ``loss_fn`` -> ``plots``); ``None`` without one.
    A ``cfg=`` file that does not load is left to :func:`tokens_to_kwargs`, which names the problem."""
    from lrkit._config import load_yaml_mapping
    from lrkit.train.trainer import python_only_key_error

    for tok in tokens:
        if "=" not in tok:
            continue
        key, raw = token_key(tok)
        error = python_only_key_error(key, "the command line")
        if error is None and key == "cfg" and raw.strip():
            try:
                file_keys = load_yaml_mapping(raw)
            except (ValueError, OSError):
                continue
            error = next((e for e in (python_only_key_error(str(k), f"a cfg= file ({raw})") for k in file_keys)
                          if e is not None), None)
        if error is not None:
            return str(error)
    return None


def _cfg_resume_note(tokens: list[str], kwargs: dict[str, Any], message: str) -> str:
    """A note for an error about ``resume`` when the resume came from the ``cfg=`` file, not a token: a run's own
    ``args.yaml`` names its ``last.pt`` after a resume, so ``lrkit train cfg=runs/train/args.yaml`` resumes (or is
    refused as "already finished") where the user meant to train again with its settings. ``""`` otherwise.

    >>> _cfg_resume_note(["cfg=a.yaml"], {"resume": "r/last.pt"}, "resume: r/last.pt already finished (1 epoch)")
    ' (resume=r/last.pt comes from cfg=a.yaml; add resume=false to start a new run with its settings)'
    """
    given = dict(token_key(tok) for tok in tokens if "=" in tok)  # as tokens_to_kwargs reads the keys
    resume = kwargs.get("resume")
    if "cfg" not in given or "resume" in given or resume in (None, False, "") or "resume" not in message:
        return ""
    return (f" (resume={resume} comes from cfg={given['cfg']}; add resume=false to start a new run with its "
            "settings)")


def _cfg_path_note(tokens: list[str], kwargs: dict[str, Any], message: str) -> str:
    """A note for a "no such file" error about a path the ``cfg=`` file gave (``data:``, ``model: file.py:make``,
    ``resume:``) that is missing from the working directory but lies beside the cfg file: its paths are relative to
    the working directory (as Ultralytics reads them), not to the file. ``""`` otherwise.

    >>> _cfg_path_note(["cfg=a.yaml"], {"data": "/abs.csv"}, "data='/abs.csv': no such file")
    ''
    """
    given = dict(token_key(tok) for tok in tokens if "=" in tok)
    cfg = given.get("cfg", "").strip()
    if not cfg or not any(words in message.lower() for words in ("no such file", "not found", "no checkpoint")):
        return ""
    folder = Path(cfg).expanduser().parent
    for key in ("data", "model", "resume"):
        value = kwargs.get(key)
        if key in given or not isinstance(value, str) or f"{key}=" not in message:
            continue
        path = value.strip().rpartition(":")[0] if key == "model" and ":" in value else value.strip()
        if not path or Path(path).expanduser().is_absolute() or Path(path).exists():
            continue
        beside = folder / path
        if beside.exists():
            shown = os.path.relpath(beside) if not Path(cfg).expanduser().is_absolute() else str(beside)
            fixed = value.strip().replace(path, shown, 1)
            return (f" (a cfg= file's paths are relative to the working directory, not to the file; {shown} is "
                    f"there: write {key}: {fixed} in {cfg})")
    return ""


def _print_help(ctx: Any) -> None:
    """Print the command's help and exit 0."""
    typer.echo(ctx.get_help())
    raise typer.Exit(0)


def _user_files(config: TrainConfig) -> dict[Path, str]:
    """The user's Python files the run imported code from: ``model=`` / ``optimizer=`` given as ``file.py:name``, or
    as ``module:name`` for a module of the working directory (``./mymodels.py``), as ``{shown path: label}``."""
    files: dict[Path, str] = {}
    cwd = Path.cwd()
    for key in ("model", "optimizer"):
        spec = getattr(config, key, None)
        if not isinstance(spec, str) or ":" not in spec:
            continue
        module_name = spec.strip().rpartition(":")[0].strip()
        if not module_name:
            continue
        if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:  # as models.py reads it
            path = Path(module_name).expanduser()
        else:  # imported by name: only a module of the user's own project, not an installed package
            file = getattr(sys.modules.get(module_name), "__file__", None)
            if not file or not Path(file).is_relative_to(cwd) or {"site-packages", "dist-packages"} & set(
                    Path(file).parts):
                continue
            path = Path(file)
        files.setdefault(path, f"{key} file")
    return files


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Each distinct warning once, as one line (not Python's file:line form)."""
    seen: set[str] = set()
    con = console()
    for w in caught:
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            escape = optional_import("rich.markup", "cli").escape
            con.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, markup=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _summary(results: Any) -> None:
    rich_table = __import__("rich.table", fromlist=["Table"])
    table = rich_table.Table(title="lrkit train — summary", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("value", overflow="fold")
    metric = results.metric_name
    lr0 = f"{results.lr0:.4g} ({results.lr0_source})"
    if results.lr0_source == "auto" and results.auto is not None:
        extra = getattr(results.auto, "extra_fraction", None)  # an AutoLR, also on a resumed run (AutoLR.from_dict)
        if extra is not None:
            lr0 += f", {extra:.0%} extra compute"
    rows = [
        ("run directory", str(results.run_dir)),
        ("task", str(results.task or "custom step_fn")),
        ("optimizer", f"{results.optimizer} — {results.optimizer_reason}"),
        ("lr0", lr0),
        ("epochs", f"{results.epochs_run}" + (f" (stopped early: {results.stop_reason})" if results.stopped_early
                                               else "")),
        ("accumulate / weight_decay", f"{results.accumulate} / {results.weight_decay:.3g}"),
        (f"best val {metric}", f"{_fmt(results.best_metric)} (epoch {results.best_epoch})"),
        (f"final val {metric}", _fmt(results.final_metric)),
        ("final val loss", _fmt(results.final_val_loss)),
        ("monitor events", _events_cell(results)),
        ("time", f"{results.seconds:.1f}s"),
        # the step after training (Ultralytics' YOLO("best.pt").predict): the model of best.pt with its preprocessing
        ("use the model", f"lrkit.load_run({str(results.run_dir)!r}).predict(raw inputs)"
                          + (" or .generate(text, 200)" if results.task == "lm" else "")),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console().print(table)


def _events_cell(results: Any) -> str:
    """``4: loss_spike x2, exploding_gradients, val_rising; LR now 0.009x the schedule`` (``0`` for a quiet run)."""
    counts = results.events_by_check
    if not counts:
        return "0"
    cell = f"{len(results.events)}: " + ", ".join(f"{c} x{k}" if k > 1 else c for c, k in counts.items())
    scale = float(getattr(results, "lr_scale", 1.0))
    return cell + (f"; LR now {scale:.2g}x the schedule" if scale != 1.0 else "")


def register(app: Any) -> None:
    """Add the ``train`` command to a Typer app."""
    app.command(
        "train",
        help=(train_command.__doc__ or "") + "\n\n" + _EXAMPLES + "\n\n" + _keys_help(),
        context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]},
    )(train_command)
