"""`reconciler run`: the daemon, configured from flags, environment variables and mounted Secrets.

Every flag has an environment variable (`RECONCILER_<FLAG>`), so the container is configured from a
ConfigMap. Secrets (API token, webhook secrets, alert webhook URLs) are read from environment
variables or `*_FILE` paths (a mounted Secret) only, never from flags, so they never show in `ps`.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:8080"
"""Loopback unless told otherwise: the API serves state (drift values, runs) to anyone who reaches it."""


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"RECONCILER_{name}", default)


def read_secret(name: str) -> str | None:
    """`RECONCILER_<NAME>` or the content of the file named by `RECONCILER_<NAME>_FILE` (a mounted Secret)."""
    value = os.environ.get(f"RECONCILER_{name}")
    path = os.environ.get(f"RECONCILER_{name}_FILE")
    if not value and path:
        try:
            value = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"RECONCILER_{name}_FILE={path}: cannot read: {exc.strerror}",
                              fix="mount the Secret at that path or unset the variable") from exc
    return value.strip() if value and value.strip() else None


def _duration(text: str) -> float:
    from reconciler.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _flag(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def add_daemon_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `run`; the lead's `sync` calls `remote_sync(args)` when `--remote` is given."""
    run = subparsers.add_parser("run", help="run the daemon: poll, webhooks, HTTP API, alerts, status page",
                                description="Reconcile every environment on its interval and on Git pushes.")
    _add_run_arguments(run)
    run.set_defaults(handler=run_daemon)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("environments and cluster")
    g.add_argument("--environments", type=Path, default=Path(_env("ENVIRONMENTS", "environments")),
                   help="environments directory or one YAML file (RECONCILER_ENVIRONMENTS)")
    g.add_argument("--env", dest="only_envs", action="append", default=_split(_env("ONLY_ENVS")),
                   help="reconcile only this environment (repeatable; RECONCILER_ONLY_ENVS, comma-separated)")
    g.add_argument("--cache-dir", type=Path, default=Path(_env("CACHE_DIR", ".reconciler-cache")),
                   help="Git checkouts and render cache (RECONCILER_CACHE_DIR)")
    g.add_argument("--kubeconfig", type=Path, default=_path(_env("KUBECONFIG") or os.environ.get("KUBECONFIG")),
                   help="kubeconfig (default: KUBECONFIG, else in-cluster)")
    g.add_argument("--context", default=_env("CONTEXT"), help="kubeconfig context (RECONCILER_CONTEXT)")

    g = p.add_argument_group("scheduling")
    g.add_argument("--jitter", type=_duration, default=_opt_duration(_env("JITTER")),
                   help="random delay added to each poll (default: 10%% of the interval, max 30s)")
    g.add_argument("--backoff-base", type=_duration, default=_duration(_env("BACKOFF_BASE", "10s")),
                   help="first retry delay after a failed pass; doubles per failure (RECONCILER_BACKOFF_BASE)")
    g.add_argument("--backoff-max", type=_duration, default=_duration(_env("BACKOFF_MAX", "10m")),
                   help="longest retry delay (RECONCILER_BACKOFF_MAX)")
    g.add_argument("--no-poll", action="store_true", default=_flag(_env("NO_POLL")),
                   help="only webhooks and manual syncs trigger passes (RECONCILER_NO_POLL)")
    g.add_argument("--no-drift-check", action="store_true", default=_flag(_env("NO_DRIFT_CHECK")),
                   help="skip the drift report after each pass (RECONCILER_NO_DRIFT_CHECK)")
    g.add_argument("--no-watch", action="store_true", default=_flag(_env("NO_WATCH")),
                   help="no live cache: passes LIST, drift is found by passes only (RECONCILER_NO_WATCH)")
    g.add_argument("--stop-timeout", type=_duration, default=_duration(_env("STOP_TIMEOUT", "30s")),
                   help="how long SIGTERM waits for the running pass to stop between objects")

    g = p.add_argument_group("high availability")
    g.add_argument("--leader-election", action="store_true", default=_flag(_env("LEADER_ELECTION")),
                   help="hold a Lease per environment before applying (RECONCILER_LEADER_ELECTION)")
    g.add_argument("--lease-namespace", default=_env("LEASE_NAMESPACE", "healthflow-system"))
    g.add_argument("--lease-duration", type=_duration, default=_duration(_env("LEASE_DURATION", "15s")),
                   help="how long a Lease lasts once its holder stops renewing: the election's and, with or "
                        "without --leader-election, each environment's writer lease (RECONCILER_LEASE_DURATION)")
    g.add_argument("--renew-deadline", type=_duration, default=_duration(_env("RENEW_DEADLINE", "10s")))
    g.add_argument("--retry-period", type=_duration, default=_duration(_env("RETRY_PERIOD", "2s")))
    g.add_argument("--identity", default=_env("IDENTITY") or os.environ.get("POD_NAME"),
                   help="this replica's name in the Lease (default: POD_NAME, else host-pid)")

    g = p.add_argument_group("HTTP")
    g.add_argument("--listen", default=_env("LISTEN", DEFAULT_LISTEN), help="HOST:PORT (RECONCILER_LISTEN)")
    g.add_argument("--insecure-read", action="store_true", default=_flag(_env("INSECURE_READ")),
                   help="serve status, drift and runs off loopback without RECONCILER_READ_TOKEN "
                        "(RECONCILER_INSECURE_READ; default: refuse to start)")
    g.add_argument("--max-body-bytes", type=int, default=int(_env("MAX_BODY_BYTES", 1024 * 1024)),
                   help="webhook bodies larger than this get 413")

    g = p.add_argument_group("alerts")
    g.add_argument("--status-url", default=_env("STATUS_URL", ""), help="status page link put in Slack alerts")
    g.add_argument("--alert-dedup-window", type=_duration, default=_duration(_env("ALERT_DEDUP_WINDOW", "1h")),
                   help="the same alert is not re-sent within this window; after it, a reminder")
    g.add_argument("--drift-reminder-interval", type=_duration,
                   default=_duration(_env("DRIFT_REMINDER_INTERVAL", "1h")),
                   help="re-send a drift alert this often while the drift persists")
    g.add_argument("--no-kubernetes-events", action="store_true", default=_flag(_env("NO_KUBERNETES_EVENTS")),
                   help="do not record alerts as Events on the inventory ConfigMap")
    g.add_argument("--alert-retries", type=int, default=int(_env("ALERT_RETRIES", 5)))

    g = p.add_argument_group("logging")
    g.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    g.add_argument("--log-format", choices=("auto", "json", "console"), default=_env("LOG_FORMAT", "auto"))


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _opt_duration(value: str | None) -> float | None:
    return _duration(value) if value else None


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen {text!r} is not HOST:PORT", fix="e.g. --listen 0.0.0.0:8080")
    return host.strip("[]") or "0.0.0.0", int(port)


def refuse_open_reads(host: str, listen: str, read_token: str | None, insecure: bool) -> None:
    """Off loopback, the state the API serves (drift values, runs, history) needs a read token, unless the
    operator says in so many words that anyone who can reach the port may read it."""
    if read_token or insecure or _is_loopback(host):
        return
    raise ConfigError(f"--listen {listen} serves status, drift values and runs to anyone who can reach it, and "
                      "RECONCILER_READ_TOKEN is not set",
                      fix="set RECONCILER_READ_TOKEN (or RECONCILER_READ_TOKEN_FILE), listen on 127.0.0.1, or pass "
                          "--insecure-read")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_envs(path: Path, only: list[str]) -> list[Any]:
    from reconciler.config import load_environment, load_environments

    try:
        envs = load_environments(path) if path.is_dir() else [load_environment(path)]
    except OSError as exc:  # a folder that cannot be listed or read
        raise ConfigError(f"{path}: cannot read the environments: {exc.strerror or exc}",
                          fix="check the path and its permissions (RECONCILER_ENVIRONMENTS)") from exc
    if only:
        unknown = sorted(set(only) - {e.name for e in envs})
        if unknown:
            raise ConfigError(f"--env {unknown[0]!r}: no such environment in {path}",
                              fix="use one of: " + ", ".join(e.name for e in envs))
        envs = [e for e in envs if e.name in only]
    return envs


def build_daemon(args: argparse.Namespace) -> tuple[Any, Any]:
    """The daemon and its HTTP server from parsed arguments and secrets (no thread started yet)."""
    from reconciler.daemon.leader import LeaseSettings
    from reconciler.daemon.service import Daemon, DaemonSettings, default_engine_factory, default_identity
    from reconciler.daemon.metrics import Metrics
    from reconciler.daemon.notify import AlertKind, Notifier
    from reconciler.retrying import RetryPolicy
    from reconciler.daemon.server import ServerSecrets, ServerThread, create_app

    envs = load_envs(args.environments, args.only_envs)
    lease = None
    if args.leader_election:
        try:
            lease = LeaseSettings(args.lease_namespace, args.lease_duration, args.renew_deadline, args.retry_period)
        except ValueError as exc:
            raise ConfigError(f"lease timing: {exc}", fix="e.g. --lease-duration 15s --renew-deadline 10s "
                              "--retry-period 2s") from exc
    settings = DaemonSettings(jitter_s=args.jitter, backoff_base_s=args.backoff_base, backoff_max_s=args.backoff_max,
                              poll=not args.no_poll, drift_check=not args.no_drift_check, live=not args.no_watch,
                              identity=args.identity or default_identity(), lease=lease,
                              stop_timeout_s=args.stop_timeout, commit_status_token=read_secret("COMMIT_STATUS_TOKEN"),
                              status_url=args.status_url)
    metrics = Metrics()
    holder: list[Any] = []
    notifier = Notifier(_sinks(args, holder, settings.identity), metrics, dedup_window_s=args.alert_dedup_window,
                        windows={AlertKind.DRIFT_DETECTED: args.drift_reminder_interval},
                        retry=RetryPolicy(attempts=max(1, args.alert_retries)))
    daemon = Daemon(envs, default_engine_factory(args.cache_dir, args.kubeconfig, args.context, args.lease_duration),
                    settings=settings, metrics=metrics, notifier=notifier)
    holder.append(daemon)
    secrets = ServerSecrets(read_secret("API_TOKEN"), read_secret("GITHUB_WEBHOOK_SECRET"),
                            read_secret("GITLAB_WEBHOOK_TOKEN"), read_secret("READ_TOKEN"))
    host, port = parse_listen(args.listen)
    refuse_open_reads(host, args.listen, secrets.read_token, args.insecure_read)
    server = ServerThread(create_app(daemon, secrets, max_body_bytes=args.max_body_bytes), host, port)
    return daemon, server


def alert_urls() -> list[str]:
    """Apprise URLs from RECONCILER_ALERT_URLS (comma or whitespace separated; a secret: they hold tokens),
    plus the older RECONCILER_ALERT_WEBHOOK_URL (a JSON webhook) and RECONCILER_SLACK_WEBHOOK_URL."""
    import re

    from reconciler.daemon.notify import apprise_url

    urls = [u for u in re.split(r"[\s,]+", read_secret("ALERT_URLS") or "") if u]
    urls += [apprise_url(u) for u in (read_secret("ALERT_WEBHOOK_URL"), read_secret("SLACK_WEBHOOK_URL")) if u]
    return urls


def _sinks(args: argparse.Namespace, holder: list[Any], identity: str) -> list[Any]:
    from reconciler.daemon.notify import AppriseSink, KubernetesEventSink
    from reconciler.logs import redact_text

    sinks: list[Any] = []
    for number, url in enumerate(alert_urls(), start=1):
        try:
            sinks.append(AppriseSink(url, name=f"{url.split('://', 1)[0]}-{number}", status_url=args.status_url))
        except ValueError as exc:
            raise ConfigError(f"RECONCILER_ALERT_URLS: {exc}", fix="see https://github.com/caronc/apprise/wiki for "
                              f"the URL of each service ({redact_text(url)[:60]})") from exc
    if not args.no_kubernetes_events:
        def target(env: str) -> tuple[Any, str, str] | None:
            engine = holder[0].engines.get(env) if holder else None
            return (engine.api_client, *engine.state_ref()) if engine is not None else None

        sinks.append(KubernetesEventSink(target, instance=identity))
    return sinks


def run_daemon(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; then stop passes between objects, release leases, close HTTP."""
    from reconciler.logs import configure_logging, get_logger
    from reconciler.pipeline.kustomize_workers import without_workers

    configure_logging(args.log_level, args.log_format)
    log = get_logger("reconciler.run")
    daemon, server = build_daemon(args)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received, shutting down", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    log.info("http listening", address=args.listen, port=server.port)
    if note := without_workers():
        log.warning(note, fix="install it with `make tools` (the image has it), or name it in RECONCILER_KUSTOMIZE_WORKER")
    try:
        daemon.start()
        while not stop.wait(1.0):
            pass
    finally:
        daemon.stop()
        server.stop()
    return 0
