"""The ``lrkit`` Typer application.

Each command lives in its own module (``lrkit.cli.find``, ``lrkit.cli.schedule``, ``lrkit.cli.train``,
``lrkit.cli.predict``) that exposes ``register(app)``; the module parses arguments, calls one public library function,
and prints the result.
"""

from __future__ import annotations

import codecs
import importlib
import sys
from typing import Any

from lrkit._utils import MissingExtraError, optional_import

COMMANDS = ("find", "schedule", "train", "predict")


def _without_flag_metavar(params: list[Any]) -> list[Any]:
    """``params`` with every boolean flag's metavar set to ``""``: a flag takes no value, so its help row shows no
    value placeholder.

    Typer 0.2x's own help panel shows a type for every option, flags included (``--help -h <bool>``):
    ``TyperOption.display_type_rich`` returns ``self.metavar`` when one is set, and ``display_type`` (``<bool>``)
    otherwise, whether or not the option is a flag; only its plain-text help skips flags. Older typer (on click)
    skipped the ``BOOLEAN`` metavar in its panel. An empty metavar is what both show for a flag: nothing.
    """
    for param in params:
        if getattr(param, "is_flag", False) and not getattr(param, "count", False) and param.metavar is None:
            param.metavar = ""
    return params


#: a peer's flag (torch-lr-finder's, fastai's or Lightning's argument as a flag) -> what the command calls it; click's
#: own guess goes by spelling alone (``--min-lr``: "Possible options: --end-lr", the wrong end of the range)
PEER_FLAGS: dict[str, dict[str, str]] = {
    "find": {
        "--min-lr": "--start-lr (Lightning's min_lr)", "--max-lr": "--end-lr (Lightning's max_lr)",
        "--num-training": "--num-steps (Lightning's num_training)", "--num-iter": "--num-steps (torch-lr-finder's "
        "num_iter)", "--num-it": "--num-steps (fastai's num_it)", "--step-mode": "--mode (torch-lr-finder's "
        "step_mode)", "--diverge-th": "--diverge-factor (torch-lr-finder's diverge_th)",
        "--early-stop-threshold": "--diverge-factor (Lightning's early_stop_threshold)",
        "--stop-div": "--diverge-factor (fastai's stop_div: --diverge-factor none for stop_div=False)",
        "--no-stop-div": "--diverge-factor none (fastai's stop_div=False)",
        "--suggest-funcs": "--rule (the table lists every rule's LR)",
    },
}


def _peer_flag_error(command: str, error: Exception) -> Exception | None:
    """click's ``NoSuchOption`` for a peer's flag, told what the command calls it (``None`` for any other error)."""
    name = getattr(error, "option_name", None)
    if type(error).__name__ != "NoSuchOption" or not isinstance(name, str):
        return None
    flag = name.partition("=")[0]
    advice = PEER_FLAGS.get(command, {}).get(flag)
    if advice is None and command == "schedule":
        key = _schedule_key(flag)
        if key is not None:  # a spec key written as a flag: `lrkit schedule cosine --lr0 0.1`
            return type(error)(name, message=f"No such option: {flag} — {key} is a key of the spec: write it after "
                               f"the family's name, lrkit schedule <family> {key}=<value> (--list names each "
                               "family's keys)", ctx=getattr(error, "ctx", None))
    if advice is None:
        return None
    return type(error)(name, message=f"No such option: {flag} — lrkit {command} calls it {advice}",
                       ctx=getattr(error, "ctx", None))


def _schedule_key(flag: str) -> str | None:
    """The spec key a flag of ``lrkit schedule`` names (``--lr0`` → ``lr0``, ``--warmup-epochs`` →
    ``warmup_epochs``), or ``None`` where it names none (or an option the command has, as ``--epochs``).

    >>> _schedule_key("--lr0"), _schedule_key("--warmup-epochs"), _schedule_key("--epochs"), _schedule_key("--x")
    ('lr0', 'warmup_epochs', None, None)
    """
    from lrkit.schedules import registry
    from lrkit.schedules.spec import GENERIC_KEYS, TIME_KEYS

    key = flag.lstrip("-").replace("-", "_")
    keys = {*GENERIC_KEYS, "lr0"}
    for info in registry.available():
        keys.update(info.parameters)
        keys.update(k for pair in info.key_aliases for k in pair)
    return key if key in keys and key not in (*TIME_KEYS, "unit") else None


def _command_classes() -> tuple[type, type]:
    """Typer's command and group classes, their help rows without a metavar on boolean flags (``--help``,
    ``--json``, ``--version``, ...) for every command."""
    core = importlib.import_module("typer.core")

    class Command(core.TyperCommand):  # type: ignore[misc, name-defined]
        def get_params(self, ctx: Any) -> list[Any]:
            return _without_flag_metavar(super().get_params(ctx))

        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            try:
                return super().parse_args(ctx, args)  # type: ignore[no-any-return]
            except Exception as e:
                better = _peer_flag_error(str(self.name), e)
                if better is None:
                    raise
                raise better from None

    class Group(core.TyperGroup):  # type: ignore[misc, name-defined]
        def get_params(self, ctx: Any) -> list[Any]:
            return _without_flag_metavar(super().get_params(ctx))

    return Command, Group


def build_app():  # -> typer.Typer (typer is imported lazily)
    """Build the Typer app with every command registered."""
    typer = optional_import("typer", "cli")
    command_cls, group_cls = _command_classes()
    app = typer.Typer(
        cls=group_cls,
        name="lrkit",
        help="lrkit — the learning-rate toolkit for PyTorch: find | schedule | train | predict.",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    def version(value: bool) -> None:
        if value:
            from lrkit import __version__

            typer.echo(f"lrkit {__version__}")
            raise typer.Exit()

    @app.callback()
    def _root(
        _version: bool = typer.Option(False, "--version", callback=version, is_eager=True,
                                      help="Print lrkit's version and exit."),
    ) -> None:
        """lrkit — the learning-rate toolkit for PyTorch: find | schedule | train | predict."""

    for name in COMMANDS:
        importlib.import_module(f"lrkit.cli.{name}").register(app)
    for info in app.registered_commands:  # every command, however its module registered it (typer 0.2x's
        if info.cls is None or info.cls is command_cls.__base__:  # app.command() fills in TyperCommand itself)
            info.cls = command_cls
    return app


#: what the CLI writes instead of a character the console's encoding cannot show (an ASCII or cp437 console)
_ASCII_FALLBACK = {"\u2014": "--", "\u2013": "-", "\u00b7": ".", "\u00d7": "x", "\u2192": "->", "\u2026": "...",
                   "\u2264": "<=", "\u2265": ">=", "\u2212": "-", "\u00f7": "/", "\u2248": "~"}


def _ascii_fallback(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: a close ASCII spelling for the CLI's punctuation (``—`` as ``--``), else ``?``."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start:error.end]
    return "".join(_ASCII_FALLBACK.get(c, "?") for c in bad), error.end


def _tolerant_streams() -> None:
    """Let stdout and stderr write what their encoding cannot show (the tables' em dashes, a task's own names) as
    :data:`_ASCII_FALLBACK` spells it, instead of a ``UnicodeEncodeError`` after the run: the chart is already ASCII
    on such a console (``print_chart``), rich draws ASCII boxes there, and the rest is lrkit's own text."""
    codecs.register_error("lrkit-ascii", _ascii_fallback)  # (registered when the CLI runs, not when it is imported)
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="lrkit-ascii")


def main() -> None:
    """Console-script entry point.

    A missing optional dependency (installed with ``--no-deps``, or removed since) is one line naming the extra to
    install and exit code 1, not a traceback. On a console whose encoding cannot show a character lrkit prints (an
    ASCII or cp437 console), it is written in ASCII (``—`` as ``--``) rather than failing.
    """
    _tolerant_streams()
    had_group = _process_group_up()
    try:
        build_app()()
    except MissingExtraError as e:
        print(f"lrkit: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        if not had_group:
            failed = sys.exc_info()[1]
            _end_process_group(succeeded=failed is None or (isinstance(failed, SystemExit) and not failed.code))


def _process_group_up() -> bool:
    """Whether a torch.distributed process group is up in this process (read without importing torch)."""
    dist = sys.modules.get("torch.distributed")
    try:
        return bool(dist is not None and dist.is_available() and dist.is_initialized())
    except Exception:  # a torch without the distributed package, or one half torn down
        return False


def _end_process_group(*, succeeded: bool) -> None:
    """Destroy the process group the command started (a task file's ``dist.init_process_group``, as under torchrun)
    before the process exits, after a command that succeeded on every rank has met the others at a barrier: a rank
    that left while another was still writing its results could abort in gloo's threads ("terminate called without
    an active exception", SIGABRT), and torchrun then reports a run that succeeded as failed. After an error there
    is no barrier (the other ranks may never reach it)."""
    if not _process_group_up():
        return
    import torch.distributed as dist

    try:
        if succeeded and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
    except Exception:  # the command's own outcome (its exit code, its error) is what the user needs
        pass


if __name__ == "__main__":  # pragma: no cover
    main()
