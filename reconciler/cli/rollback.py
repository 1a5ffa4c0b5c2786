"""`reconciler rollback` and `reconciler unpin`: take stacks back to their last healthy commit, and let go.

Exit codes: 0 rolled back and healthy (or unpinned); 2 an error: no commit to go back to, a revision
outside the history, a target today's policies block, another writer holding the environment
(unless --wait), or a rolled-back stack that failed. Nothing is written before the target is known
to pass policy.
"""

from __future__ import annotations

import argparse
import os

from rich.console import Console


def add_rollback_commands(sub: argparse._SubParsersAction, common, output) -> None:
    from reconciler.cli.commands import cmd_status

    p = sub.add_parser("rollback", help="apply a stack's last healthy commit (and its dependents') and pin it there")
    common(p)
    p.add_argument("--stack", help="the stack to roll back (default: every stack of the environment)")
    p.add_argument("--to", metavar="REV", help="this commit (it must be in the stack's history) instead of the last "
                                               "healthy one")
    p.add_argument("--no-dependents", action="store_true", help="roll back the stack alone, not the stacks that "
                                                                "depend on it")
    p.add_argument("--wait", action="store_true", help="queue behind another writer (default: exit 2 naming it)")
    output(p)
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("unpin", help="lift a rollback's pin: the next pass applies the branch head again")
    common(p)
    p.add_argument("--stack", help="only this stack (default: every pinned stack)")
    p.set_defaults(handler=cmd_unpin)

    p = sub.choices["status"]
    p.add_argument("--history", action="store_true", help="also list each stack's last commits (result, health)")
    p.set_defaults(handler=cmd_status)


def _writer(args: argparse.Namespace, engine, action: str) -> None:
    from reconciler.pipeline.engine import WriterOptions

    stderr = Console(stderr=True)
    engine.writer = WriterOptions(
        name=f"reconciler {action} by {os.environ.get('USER') or 'unknown user'}",
        wait_s=None if getattr(args, "wait", True) else 0.0,
        on_wait=lambda holder: stderr.print(f"waiting for {holder} to finish with {engine.env.name}", highlight=False))


def cmd_rollback(args: argparse.Namespace) -> int:
    from reconciler.cli.commands import _emit, _progress, engine_for, environment_of
    from reconciler.cli.output import print_pass
    from reconciler.errors import ReconcilerError
    from reconciler.pipeline.rollback_ops import rollback

    engine = engine_for(args, environment_of(args))
    _writer(args, engine, "rollback")
    by = os.environ.get("USER") or "cli"
    result = rollback(engine, args.stack, args.to, not args.no_dependents, by, _progress(Console(stderr=True)))
    if result.error and not result.stacks:
        raise ReconcilerError(result.error)
    _emit(result, args.output, print_pass)
    return 0 if result.ok else 2


def cmd_unpin(args: argparse.Namespace) -> int:
    from reconciler.cli.commands import engine_for, environment_of
    from reconciler.pipeline.rollback_ops import unpin

    engine = engine_for(args, environment_of(args))
    _writer(args, engine, "unpin")
    lifted = unpin(engine, args.stack)
    if lifted:
        print(f"unpinned {', '.join(lifted)} in {engine.env.name}: the next pass applies "
              f"{engine.env.source.branch} head")
    else:
        print(f"nothing is pinned in {engine.env.name}")
    return 0
