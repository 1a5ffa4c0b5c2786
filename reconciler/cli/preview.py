"""`reconciler preview`: what a revision (a pull request's head) does to each environment, before the merge.

Exit codes: 0 no environment changes; 1 changes; 2 an error (unknown revision, a stack that does not
render at the revision, a dry-run the server rejects with --cluster) or new enforced policy violations.
"""

from __future__ import annotations

import argparse
import os

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconciler.results import EnvPreview, StackPreview


def add_preview_command(sub: argparse._SubParsersAction, common) -> None:
    p = sub.add_parser("preview", help="what merging a revision does to environments: diff, policy, prunes, blast radius")
    common(p, env=False)
    p.add_argument("--env", "-e", action="append", required=True,
                   help="environment name or file (repeat for several: one report)")
    p.add_argument("--revision", required=True, help="the commit to preview: a branch, tag, SHA (HEAD~1 for a "
                                                     "local source)")
    p.add_argument("--base", help="compare with this commit (default: where --revision branched from the "
                                  "environment's branch)")
    p.add_argument("--cluster", action="store_true", help="also read the live cluster: prunes from the inventory, "
                                                          "server-side dry-runs, drift the merge overwrites")
    p.add_argument("-v", "--verbose", action="store_true", help="every changed field, not the first 8 per object")
    p.add_argument("-o", "--output", choices=("table", "json", "markdown"), default="table")
    p.set_defaults(handler=cmd_preview)


def cmd_preview(args: argparse.Namespace) -> int:
    from reconciler.cli.commands import engine_for, environment_of
    from reconciler.pipeline.preview import preview

    previews = []
    for name in args.env:
        engine = engine_for(args, environment_of(argparse.Namespace(**{**vars(args), "env": name})))
        previews.append(preview(engine, args.revision, args.base, cluster=args.cluster))
    if args.output == "json":
        from reconciler.cli.output import as_json

        print(as_json(previews if len(previews) > 1 else previews[0]))
    elif args.output == "markdown":
        from reconciler.cli.markdown import preview_comment

        print(preview_comment(previews))
    else:
        console = Console() if os.isatty(1) else Console(width=int(os.environ.get("COLUMNS", "160")))
        for result in previews:
            print_preview(console, result, args.verbose)
    return max(p.exit_code for p in previews)


def print_preview(console: Console, result: EnvPreview, verbose: bool) -> None:
    from reconciler.cli.output import print_changes

    base = result.base.short if result.base else "nothing"
    where = " and the live cluster" if result.cluster else ""
    console.print(f"[bold]preview[/bold] env [bold]{escape(result.env)}[/bold]: "
                  + escape(f"{result.revision.short} {result.revision.message!r} against {base}{where}"), highlight=False)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("stack", "status", "added", "changed", "pruned", "kept", "policy new/fixed/still", "waits on"):
        table.add_column(column)
    for stack in result.stacks:
        style = "red" if stack.error else "yellow" if stack.reapplied else "dim"
        table.add_row(escape(stack.stack), f"[{style}]{escape(stack.status)}[/{style}]", str(len(stack.added)),
                      str(len(stack.changed)), str(len(stack.pruned)), str(len(stack.kept)), _policy_counts(stack),
                      escape(", ".join(stack.waits_on) or "-"))
    console.print(table)
    for stack in result.stacks:
        if stack.error:
            console.print("  [red]error[/red] " + escape(f"{stack.stack}: {stack.error}"), highlight=False)
        print_changes(console, stack.stack, stack.added + stack.changed + stack.pruned, verbose)
        for line in stack.moved_in:
            console.print(f"  > {stack.stack}: {line}", highlight=False, markup=False)
        for line in stack.kept:
            console.print(f"  = {stack.stack}: kept {line}", highlight=False, markup=False)
        for line in stack.drift_overwritten:
            console.print(f"  ! {stack.stack}: drift overwritten: {line}", highlight=False, markup=False)
        for label, violations in (("new", stack.new_violations), ("fixed", stack.fixed_violations)):
            for v in violations:
                console.print(f"  {stack.stack}: policy {label} {v.mode} {v.rule} {v.object}: {v.message}",
                              highlight=False, markup=False)
    verdict = {0: "no change", 1: "changes", 2: "[red]error or new enforced violations[/red]"}[result.exit_code]
    console.print(f"{escape(result.env)}: {verdict}")


def _policy_counts(stack: StackPreview) -> str:
    return f"{len(stack.new_violations)}/{len(stack.fixed_violations)}/{len(stack.still_violations)}"
