"""The `reconciler` command. Every ReconcilerError becomes one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys

from reconciler import __version__
from reconciler.errors import ReconcilerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="GitOps reconciler: renders kustomize stacks from Git, enforces policy, "
        "and applies them to Kubernetes stack by stack along their dependency graph.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
