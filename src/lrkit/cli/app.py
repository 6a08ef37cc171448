"""The ``lrkit`` Typer application.

Each command lives in its own module (``lrkit.cli.find``, ``lrkit.cli.schedule``, ``lrkit.cli.train``) that
exposes ``register(app)``; the module parses arguments, calls one public library function, and prints the result.
"""

from __future__ import annotations

import importlib
import sys

from lrkit._utils import MissingExtraError, optional_import

COMMANDS = ("find", "schedule", "train")


def build_app():  # -> typer.Typer (typer is imported lazily)
    """Build the Typer app with every command registered."""
    typer = optional_import("typer", "cli")
    app = typer.Typer(
        name="lrkit",
        help="lrkit — the learning-rate toolkit for PyTorch: find | schedule | train.",
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
        """lrkit — the learning-rate toolkit for PyTorch: find | schedule | train."""

    for name in COMMANDS:
        importlib.import_module(f"lrkit.cli.{name}").register(app)
    return app


def main() -> None:
    """Console-script entry point.

    A missing optional dependency (installed with ``--no-deps``, or removed since) is one line naming the extra to
    install and exit code 1, not a traceback.
    """
    try:
        build_app()()
    except MissingExtraError as e:
        print(f"lrkit: {e}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
