"""`reconciler suspend` and `reconciler resume`: stop and restart reconciling an environment or one stack."""

from __future__ import annotations

import argparse

from reconciler.cli.remote import add_remote_arguments
from reconciler.pipeline.suspension import default_actor


def add_suspend_commands(sub: argparse._SubParsersAction, common) -> None:
    p = sub.add_parser("suspend", help="stop applying, pruning and correcting an environment (or one stack) until "
                                       "resumed; drift is still reported")
    common(p)
    p.add_argument("--stack", help="only this stack (its dependents wait on it)")
    p.add_argument("--reason", required=True, help="why (shown wherever status is shown, and in the alert)")
    p.add_argument("--by", default=None, help="who (default: user@host)")
    add_remote_arguments(p, "suspend")
    p.set_defaults(handler=cmd_suspend)

    p = sub.add_parser("resume", help="lift a suspension: the next pass reconciles again")
    common(p)
    p.add_argument("--stack", help="the suspended stack (default: the environment's suspension)")
    add_remote_arguments(p, "resume")
    p.set_defaults(handler=cmd_resume)


def cmd_suspend(args: argparse.Namespace) -> int:
    if args.remote:
        from reconciler.cli.remote import remote_action

        return remote_action(args, "suspend", {"reason": args.reason, "by": args.by or default_actor()})
    from reconciler.cli.commands import engine_for, environment_of, set_writer
    from reconciler.pipeline.suspend_ops import suspend

    engine = engine_for(args, environment_of(args))
    set_writer(engine, "suspend", wait=True)
    suspensions = suspend(engine, args.stack, args.by or default_actor(), args.reason)
    what = f"stack {args.stack!r} of {engine.env.name}" if args.stack else f"environment {engine.env.name}"
    print(f"suspended {what}: {suspensions.note(args.stack or '')}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    if args.remote:
        from reconciler.cli.remote import remote_action

        return remote_action(args, "resume", {})
    from reconciler.cli.commands import engine_for, environment_of, set_writer
    from reconciler.pipeline.suspend_ops import resume

    engine = engine_for(args, environment_of(args))
    set_writer(engine, "resume", wait=True)
    lifted = resume(engine, args.stack)
    print(f"resumed {', '.join(lifted)} in {engine.env.name}: the next pass reconciles it (a daemon's: at its next "
          "interval; `--remote URL` asks the daemon, which reconciles at once)")
    return 0
