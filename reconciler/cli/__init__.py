"""cli: the `reconciler` command (argument parsing and output only; the work is done by the layers below).
May import every layer."""

from reconciler.cli.main import build_parser, command, main

__all__ = ["build_parser", "command", "main"]
