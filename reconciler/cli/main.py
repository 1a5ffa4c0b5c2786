"""The `reconciler` command. Every ReconcilerError becomes one line on stderr and exit code 2.

Exit codes: 0 clean; 1 changes found (plan) or made (sync), drift found, or enforced policy
violations; 2 an error: a stack failed or was blocked, or a usage or configuration error (the
message says which file, which field and the fix).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from reconciler import __version__
from reconciler.config import EnvironmentConfig, load_environment, load_environments
from reconciler.errors import ConfigError, ReconcilerError


def _environment(args: argparse.Namespace) -> EnvironmentConfig:
    """`--env dev` means environments/dev.yaml; a path to a YAML file is taken as is."""
    value = args.env
    path = Path(value) if value.endswith((".yaml", ".yml")) else args.environments / f"{value}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in args.environments.glob("*.yaml")) if args.environments.is_dir() else []
        raise ConfigError(f"environment {value!r}: {path} does not exist",
                          fix="use one of: " + ", ".join(available) if available else "create environments/<env>.yaml")
    return load_environment(path)


def _engine(args: argparse.Namespace, env: EnvironmentConfig):
    from reconciler.pipeline.engine import Engine

    return Engine(env, cache_dir=args.cache_dir, kubeconfig=args.kubeconfig, context=args.context)


def _progress(console: Console):
    def show(event) -> None:
        if event.phase in ("plan", "apply", "health", "prune", "done") and event.stack:
            applied = f" ({event.objects_applied} objects applied)" if event.phase == "apply" else ""
            wave = f"wave {event.wave} " if event.wave is not None else ""
            console.print(f"[dim]{time.strftime('%H:%M:%S')} {wave}{event.stack}: {event.phase} "
                          f"{event.message}{applied}[/dim]", highlight=False)
    return show


def _emit(value, output: str, table) -> None:
    """`-o json|yaml` for machines; a table (colour on a terminal) for people."""
    if output == "json":
        from reconciler.cli.output import as_json

        print(as_json(value))
    elif output == "yaml":
        import json

        import yaml

        from reconciler.cli.output import as_json

        print(yaml.safe_dump(json.loads(as_json(value)), sort_keys=False), end="")
    else:
        table(_console(), value)


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=int(os.environ.get("COLUMNS", "160")))


def _pass_exit_code(result) -> int:
    """0 clean, 1 changes found (plan) or made (sync), 2 an error: a failed or blocked stack."""
    if not result.ok:
        return 2
    return 1 if result.has_changes else 0


def cmd_validate(args: argparse.Namespace) -> int:
    envs = load_environments(args.environments)
    for env in envs:
        from reconciler.graph import waves

        order = " | ".join(", ".join(w) for w in waves(env.dependencies))
        print(f"{env.file}: ok ({len(env.stacks)} stacks; waves: {order})")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import yaml

    from reconciler.pipeline.diff import mask_manifest

    engine = _engine(args, _environment(args))
    rendered = engine.render_worktree(Path.cwd()) if args.worktree else engine.render(revision=args.revision)
    docs = []  # one multi-document stream: a stack's last object never merges into the next stack's first
    for stack in [args.stack] if args.stack else [s.name for s in engine.env.stacks]:
        if stack in rendered.errors:
            raise ReconcilerError(rendered.errors[stack])
        docs += [mask_manifest(o.manifest) for o in rendered.objects.get(stack, [])]
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from reconciler.cli.output import print_pass

    result = _engine(args, _environment(args)).plan(stack=args.stack)
    _emit(result, args.output, lambda console, r: print_pass(console, r, verbose=args.verbose))
    return _pass_exit_code(result)


def cmd_sync(args: argparse.Namespace) -> int:
    if args.remote:
        from reconciler.cli.daemon import remote_sync

        return remote_sync(args)
    from reconciler.cli.output import print_pass

    engine = _engine(args, _environment(args))
    result = engine.sync(stack=args.stack, dry_run=args.dry_run, progress=_progress(Console(stderr=True)))
    _emit(result, args.output, lambda console, r: print_pass(console, r, verbose=args.verbose))
    return _pass_exit_code(result)


def cmd_drift(args: argparse.Namespace) -> int:
    from reconciler.cli.output import print_drift

    report = _engine(args, _environment(args)).drift()
    _emit(report, args.output, print_drift)
    return 1 if report.items else 0


def cmd_status(args: argparse.Namespace) -> int:
    from reconciler.cli.output import print_status

    _emit(_engine(args, _environment(args)).status(), args.output, print_status)
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from reconciler.policy import formats

    engine = _engine(args, _environment(args))
    rendered = engine.render_worktree(Path.cwd()) if args.worktree else engine.render(revision=args.revision)
    for stack, error in rendered.errors.items():
        print(f"error: {error}", file=sys.stderr)
    report = rendered.policy_report
    if report is None:
        raise ConfigError(f"no policies directory {engine.env.policy.directory!r} at {rendered.commit.sha[:10]}",
                          fix="add policies/ or set policy.directory in the environment file")
    writer = {"table": formats.to_table, "json": formats.to_json, "sarif": formats.to_sarif,
              "junit": formats.to_junit}[args.output]
    print(writer(report, engine.env.name))
    objects = sum(len(v) for v in rendered.objects.values())
    print(f"policy check of {engine.env.name} at {rendered.commit.sha[:10]}: {len(report.violations)} violation(s), "
          f"{len(report.blocking_stacks())} blocked stack(s); evaluated {objects} objects in "
          f"{report.duration_s * 1000:.1f} ms", file=sys.stderr)
    return 1 if report.blocking_stacks() or rendered.errors else 0


def _common(parser: argparse.ArgumentParser, env: bool = True) -> None:
    parser.add_argument("--environments", type=Path, default=Path(os.environ.get("RECONCILER_ENVIRONMENTS",
                        "environments")), help="folder of <env>.yaml files (default: environments)")
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("RECONCILER_CACHE_DIR",
                        ".reconciler-cache")), help="Git mirrors and render cache (default: .reconciler-cache)")
    parser.add_argument("--kubeconfig", type=Path, default=None, help="overrides cluster.kubeconfig and $KUBECONFIG")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    if env:
        parser.add_argument("--env", "-e", required=True, help="environment name (environments/<env>.yaml) or a path")


def _output(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("table", "json", "yaml")) -> None:
    parser.add_argument("-o", "--output", choices=choices, default="table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="GitOps reconciler: renders kustomize stacks from Git, enforces policy, "
        "and applies them to Kubernetes stack by stack along their dependency graph.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check every environments/*.yaml (schema, dependsOn, cycles, paths)")
    _common(p, env=False)
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("render", help="print the rendered objects of an environment (Secrets masked)")
    _common(p)
    p.add_argument("--stack")
    p.add_argument("--revision", help="commit or branch to render (default: the source branch head)")
    p.add_argument("--worktree", action="store_true", help="render the files on disk, uncommitted changes included")
    p.set_defaults(handler=cmd_render)

    p = sub.add_parser("plan", help="show what a sync would change; changes nothing")
    _common(p)
    p.add_argument("--stack")
    p.add_argument("-v", "--verbose", action="store_true", help="show every changed field")
    _output(p)
    p.set_defaults(handler=cmd_plan)

    p = sub.add_parser("sync", help="reconcile an environment now (or ask a running daemon with --remote)")
    _common(p)
    p.add_argument("--stack", help="only this stack (its dependencies are not re-synced)")
    p.add_argument("--dry-run", action="store_true", help="plan only")
    from reconciler.cli.daemon import add_remote_sync_arguments

    add_remote_sync_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true")
    _output(p)
    p.set_defaults(handler=cmd_sync)

    p = sub.add_parser("drift", help="report live objects that differ from what their stack last applied")
    _common(p)
    _output(p)
    p.set_defaults(handler=cmd_drift)

    p = sub.add_parser("status", help="last commit, result and health per stack, from the cluster")
    _common(p)
    _output(p)
    p.set_defaults(handler=cmd_status)

    policy = sub.add_parser("policy", help="policy commands").add_subparsers(dest="policy_command", metavar="COMMAND")
    p = policy.add_parser("check", help="evaluate policies on a revision without a cluster; exit 1 on enforced violations")
    _common(p)
    p.add_argument("--revision", help="commit or branch (default: the source branch head)")
    p.add_argument("--worktree", action="store_true", help="check the files on disk, uncommitted changes included")
    _output(p, ("table", "json", "sarif", "junit"))
    p.set_defaults(handler=cmd_policy_check)

    from reconciler.cli.daemon import add_daemon_commands

    add_daemon_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from reconciler.logs import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    if args.command != "run":
        configure_logging(level=os.environ.get("RECONCILER_LOG_LEVEL", "warning"))
    try:
        return int(handler(args) or 0)
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
