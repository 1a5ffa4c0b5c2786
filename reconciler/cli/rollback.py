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

from reconciler.cli.remote import add_remote_arguments


def add_rollback_commands(sub: argparse._SubParsersAction, common, output) -> None:
    p = sub.add_parser("rollback", help="apply a stack's last healthy commit (and its dependents') and pin it there")
    common(p)
    p.add_argument("--stack", help="the stack to roll back (default: every stack of the environment)")
    p.add_argument("--to", metavar="REV", help="this commit (it must be in the stack's history) instead of the last "
                                               "healthy one")
    p.add_argument("--no-dependents", action="store_true", help="roll back the stack alone, not the stacks that "
                                                                "depend on it")
    p.add_argument("--wait", action="store_true", help="queue behind another writer (default: exit 2 naming it)")
    add_remote_arguments(p, "roll back")
    output(p)
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("unpin", help="lift a rollback's pin: the next pass applies the branch head again")
    common(p)
    p.add_argument("--stack", help="only this stack (default: every pinned stack)")
    add_remote_arguments(p, "unpin")
    p.set_defaults(handler=cmd_unpin)


def cmd_rollback(args: argparse.Namespace) -> int:
    if args.remote:
        from reconciler.cli.remote import remote_action

        return remote_action(args, "rollback", {"to": args.to, "dependents": not args.no_dependents})
    from reconciler.cli.commands import _emit, _progress, engine_for, environment_of, set_writer
    from reconciler.cli.output import print_pass
    from reconciler.errors import ReconcilerError
    from reconciler.pipeline.rollback_ops import rollback

    engine = engine_for(args, environment_of(args))
    set_writer(engine, "rollback", wait=args.wait)
    by = os.environ.get("USER") or "cli"
    result = rollback(engine, args.stack, args.to, not args.no_dependents, by, _progress(Console(stderr=True)))
    if result.error and not result.stacks:
        raise ReconcilerError(result.error)
    _emit(result, args.output, print_pass)
    return 0 if result.ok else 2


def cmd_unpin(args: argparse.Namespace) -> int:
    if args.remote:
        from reconciler.cli.remote import remote_action

        return remote_action(args, "unpin", {})
    from reconciler.cli.commands import engine_for, environment_of, set_writer
    from reconciler.pipeline.rollback_ops import unpin

    engine = engine_for(args, environment_of(args))
    set_writer(engine, "unpin", wait=True)
    lifted = unpin(engine, args.stack)
    if lifted:
        print(f"unpinned {', '.join(lifted)} in {engine.env.name}: the next pass applies "
              f"{engine.env.source.branch} head")
    else:
        print(f"nothing is pinned in {engine.env.name}")
    return 0
