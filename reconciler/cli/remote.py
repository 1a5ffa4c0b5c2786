"""`--remote URL` of `sync`, `suspend`, `resume`, `rollback` and `unpin`: a client of a running daemon (POST
/api/<command>, then follow the run). Done locally, a resume or an unpin waits for the daemon's next pass;
asked of the daemon, it queues that pass at once, as `flux resume` reconciles at once."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from reconciler.cli.run import read_secret
from reconciler.errors import ReconcilerError


def add_remote_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags `remote_action` reads (besides `env` and `stack`)."""
    parser.add_argument("--remote", metavar="URL",
                        help=f"ask the daemon at URL to {command} (it reconciles right after) instead of doing it here")
    parser.add_argument("--token", default=None,
                        help="API token for --remote (default: RECONCILER_API_TOKEN or RECONCILER_API_TOKEN_FILE)")
    parser.add_argument("--remote-timeout", type=float, default=1800.0, help="seconds to wait for the remote run")


def add_remote_sync_arguments(parser: argparse.ArgumentParser) -> None:
    add_remote_arguments(parser, "sync")


class RemoteError(ReconcilerError):
    """The remote daemon refused or could not be reached."""


def remote_sync(args: argparse.Namespace, out: Any = None) -> int:
    """POST /api/sync, then follow GET /api/runs/<id>, printing progress. Exit 0 if the run succeeded, 1 if not."""
    return remote_action(args, "sync", {"allowMassPrune": bool(getattr(args, "allow_mass_prune", False))}, out)


def remote_action(args: argparse.Namespace, command: str, body: dict[str, Any], out: Any = None) -> int:
    """POST /api/<command> with `body` (plus the env and stack), then follow the run as `remote_sync` does."""
    out = out or sys.stdout
    base = str(args.remote).rstrip("/")
    token = getattr(args, "token", None) or read_secret("API_TOKEN")
    if not token:
        raise RemoteError("no API token for --remote", fix="set RECONCILER_API_TOKEN or pass --token")
    env = _env_name(getattr(args, "env", None))
    accepted = _request("POST", f"{base}/api/{command}", token, {"env": env, "stack": getattr(args, "stack", None),
                                                                  **body})
    print(f"run {accepted['run_id']} accepted for env {accepted['env']} ({accepted['state']})", file=out, flush=True)
    return _follow(base, token, accepted["run_id"], float(getattr(args, "remote_timeout", 1800.0) or 1800.0), out)


def _env_name(value: Any) -> str:
    """The lead's `sync` may take the env as a name or as environments/<env>.yaml."""
    if value is None:
        raise RemoteError("no environment given for --remote", fix="name the environment to sync")
    text = str(value)
    if text.endswith((".yaml", ".yml")) and Path(text).is_file():
        from reconciler.config import load_environment

        return load_environment(Path(text), check_overlays=False).name
    return text


def _follow(base: str, token: str, run_id: str, timeout_s: float, out: Any) -> int:
    deadline, shown, delay = time.monotonic() + timeout_s, 0, 0.2
    while True:
        run = _request("GET", f"{base}/api/runs/{run_id}", token)
        for event in run.get("progress", [])[shown:]:
            stack = event.get("stack") or "-"
            print(f"  [{event.get('phase', '?'):>7}] {stack}: {event.get('message', '')}", file=out, flush=True)
        shown = len(run.get("progress", []))
        if run.get("done"):
            return _print_outcome(run, out)
        if time.monotonic() > deadline:
            raise RemoteError(f"run {run_id} not finished after {timeout_s:.0f}s",
                              fix=f"follow it with GET {base}/api/runs/{run_id}")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def _print_outcome(run: dict[str, Any], out: Any) -> int:
    result = run.get("result") or {}
    for stack in result.get("stacks", []):
        reason = f" ({stack['reason']})" if stack.get("reason") else ""
        print(f"  {stack['stack']}: {stack['state']}{reason}", file=out)
    commit = (run.get("commit") or "")[:10]
    print(f"run {run['id']} {run['state']}" + (f" at {commit}" if commit else "") +
          (f": {run['message']}" if run.get("message") else ""), file=out, flush=True)
    return 0 if run["state"] == "succeeded" else 1


def _request(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        fix = "check the token (RECONCILER_API_TOKEN)" if exc.code in (401, 403) else "check the env and stack names"
        raise RemoteError(f"{method} {url}: HTTP {exc.code}: {detail}", fix=fix) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise RemoteError(f"{method} {url}: {getattr(exc, 'reason', exc)}", fix="check --remote URL") from exc


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(exc.read() or b"{}")
        return str(payload.get("detail") or payload.get("error") or payload)
    except ValueError:
        return exc.reason
