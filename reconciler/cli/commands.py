"""`reconciler validate | render | plan | sync | drift | status`: each a function of the parsed arguments.

Exit codes: 0 clean; 1 changes found (plan) or made (sync), or drift found; 2 a failed or blocked
stack (configuration and usage errors are raised as ReconcilerError and become exit code 2 in main).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from reconciler.config import EnvironmentConfig, load_environment, load_environments
from reconciler.errors import ConfigError, ReconcilerError


def environment_of(args: argparse.Namespace) -> EnvironmentConfig:
    """`--env dev` means environments/dev.yaml; a path to a YAML file is taken as is."""
    value = args.env
    path = Path(value) if value.endswith((".yaml", ".yml")) else args.environments / f"{value}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in args.environments.glob("*.yaml")) if args.environments.is_dir() else []
        raise ConfigError(f"environment {value!r}: {path} does not exist",
                          fix="use one of: " + ", ".join(available) if available else "create environments/<env>.yaml")
    return load_environment(path)


def engine_for(args: argparse.Namespace, env: EnvironmentConfig):
    from reconciler.pipeline.engine import Engine

    return Engine(env, cache_dir=args.cache_dir, kubeconfig=args.kubeconfig, context=args.context)


def _progress(console: Console):
    def show(event) -> None:
        if event.phase in ("plan", "apply", "health", "prune", "done") and event.stack:
            applied = f" ({event.objects_applied} objects applied)" if event.phase == "apply" else ""
            wave = f"wave {event.wave} " if event.wave is not None else ""
            line = f"{time.strftime('%H:%M:%S')} {wave}{event.stack}: {event.phase} {event.message}{applied}"
            console.print(f"[dim]{escape(line)}[/dim]", highlight=False)
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
    """Every environment file, and the file each follows in Git: in the checkout when the source is this
    repository, else at the branch head (fetched), with every path it names checked to stay inside."""
    from reconciler.config import repository_root
    from reconciler.graph import waves
    from reconciler.pipeline.envfile import check_paths_inside, followed_path

    for local in load_environments(args.environments):
        env, where = local, local.file
        if local.source.url and followed_path(local):
            engine = engine_for(args, local)
            engine.follow_head()
            env, where = engine.env, f"{local.file} (follows {engine.env.file}, the head of {local.source.branch})"
        elif not local.source.url:
            check_paths_inside(local, repository_root(Path(local.file)), local.file)
        order = " | ".join(", ".join(w) for w in waves(env.dependencies))
        print(f"{where}: ok ({len(env.stacks)} stacks; waves: {order})")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import yaml

    from reconciler.pipeline.diff import mask_manifest

    engine = engine_for(args, environment_of(args))
    rendered = engine.render_worktree(Path.cwd()) if args.worktree else engine.render(revision=args.revision)
    docs = []  # one multi-document stream: a stack's last object never merges into the next stack's first
    for stack in [args.stack] if args.stack else [s.name for s in rendered.env.stacks]:
        if stack in rendered.errors:
            raise ReconcilerError(rendered.errors[stack])
        docs += [mask_manifest(o.manifest) for o in rendered.objects.get(stack, [])]
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from reconciler.cli.output import print_pass

    result = engine_for(args, environment_of(args)).plan(stack=args.stack)
    _emit(result, args.output, lambda console, r: print_pass(console, r, verbose=args.verbose))
    return _pass_exit_code(result)


def set_writer(engine, action: str, wait: bool) -> None:
    """Name this command in the environment's writer lease (a second writer is told who holds it), and
    queue behind another writer when `wait`, else exit 2 naming it."""
    from reconciler.pipeline.engine import WriterOptions

    stderr = Console(stderr=True)
    engine.writer = WriterOptions(
        name=f"reconciler {action} by {os.environ.get('USER') or 'unknown user'}", wait_s=None if wait else 0.0,
        on_wait=lambda holder: stderr.print(f"waiting for {holder} to finish syncing {engine.env.name}", highlight=False,
                                          markup=False))


def cmd_sync(args: argparse.Namespace) -> int:
    if args.remote:
        from reconciler.cli.remote import remote_sync

        return remote_sync(args)
    from reconciler.cli.output import print_pass

    engine = engine_for(args, environment_of(args))
    set_writer(engine, "sync", wait=args.wait)
    from reconciler.pipeline.context import PassOptions

    result = engine.sync(stack=args.stack, dry_run=args.dry_run, progress=_progress(Console(stderr=True)),
                         options=PassOptions(allow_mass_prune=args.allow_mass_prune, manual=True))
    _emit(result, args.output, lambda console, r: print_pass(console, r, verbose=args.verbose))
    return _pass_exit_code(result)


def cmd_drift(args: argparse.Namespace) -> int:
    from reconciler.cli.output import print_drift

    report = engine_for(args, environment_of(args)).drift()
    _emit(report, args.output, print_drift)
    return 1 if report.items else 0


def cmd_status(args: argparse.Namespace) -> int:
    from reconciler.cli.output import print_status

    engine = engine_for(args, environment_of(args))
    try:
        engine.follow_head()
    except ReconcilerError as exc:  # Git unreachable: the status is still what the cluster recorded
        Console(stderr=True).print(f"warning: {exc}; showing the stacks of {engine.env.file}", highlight=False,
                                   markup=False)
    _emit(engine.status(), args.output,
          lambda console, status: print_status(console, status, history=args.history))
    return 0
