"""Allows `python -m reconciler`, the same entry point as the `reconciler` console script."""

from reconciler.cli import command

command()
