"""``python -m lrkit`` runs the CLI."""

from lrkit.cli.app import main

main()
