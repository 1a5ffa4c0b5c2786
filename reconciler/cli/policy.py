"""`reconciler policy check`: policy on a revision (or the work tree) without a cluster, in four formats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.cli.commands import engine_for, environment_of
from reconciler.errors import ConfigError


def cmd_policy_check(args: argparse.Namespace) -> int:
    from reconciler.policy import formats

    engine = engine_for(args, environment_of(args))
    rendered = engine.render_worktree(Path.cwd()) if args.worktree else engine.render(revision=args.revision)
    for stack, error in rendered.errors.items():
        print(f"error: {error}", file=sys.stderr)
    report = rendered.policy_report
    if report is None:
        raise ConfigError(f"no policies directory {rendered.env.policy.directory!r} at {rendered.commit.sha[:10]}",
                          fix="add policies/ or set policy.directory in the environment file")
    writer = {"table": formats.to_table, "json": formats.to_json, "sarif": formats.to_sarif,
              "junit": formats.to_junit}[args.output]
    print(writer(report, engine.env.name))
    objects = sum(len(v) for v in rendered.objects.values())
    print(f"policy check of {engine.env.name} at {rendered.commit.sha[:10]}: {len(report.violations)} violation(s), "
          f"{len(report.blocking_stacks())} blocked stack(s); evaluated {objects} objects in "
          f"{report.duration_s * 1000:.1f} ms", file=sys.stderr)
    return 1 if report.blocking_stacks() or rendered.errors else 0
