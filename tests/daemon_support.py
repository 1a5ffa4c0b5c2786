"""Shared pieces for the daemon tests: real Git repositories, a real HTTP alert receiver, a running
daemon on a real socket, and an engine gate. No test lives here.

`GatedEngine` wraps an engine (the real one in cluster tests) and holds each `sync` until the test
opens the gate: it controls *when* a pass runs, never what the API server answers.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from helpers import wait_for
from reconciler.daemon.service import Daemon, DaemonSettings
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import Notifier
from reconciler.results import CommitInfo, PassResult, StackResult, StackState, utcnow
from reconciler.daemon.server import ServerSecrets, ServerThread, create_app

GITHUB_SECRET = "test-github-secret"
GITLAB_TOKEN = "test-gitlab-token"
API_TOKEN = "test-api-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_daemon(tmp_path: Path, env_file: Path, kubeconfig: Path, port: int, name: str) -> subprocess.Popen:
    """`reconciler run` as its own process on 127.0.0.1:`port` (log in tmp_path/<name>.log), as a user starts it;
    its writer lease lasts 6 s, so the next start after a SIGKILL waits that long, not the default 15 s."""
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "reconciler", "run", "--environments", str(env_file),
                             "--listen", f"127.0.0.1:{port}", "--cache-dir", str(tmp_path / "cache"),
                             "--kubeconfig", str(kubeconfig), "--no-kubernetes-events", "--log-format", "json",
                             "--lease-duration", "6s"],
                            stdout=log, stderr=subprocess.STDOUT)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class GitRepo:
    """A bare repository (the remote the daemon watches) and a working clone that commits and pushes."""

    bare: Path
    work: Path
    branch: str = "main"

    @classmethod
    def create(cls, root: Path) -> "GitRepo":
        bare, work = root / "remote.git", root / "work"
        subprocess.run(["git", "init", "--bare", "-b", "main", str(bare)], check=True, capture_output=True)
        subprocess.run(["git", "init", "-b", "main", str(work)], check=True, capture_output=True)
        git(work, "config", "user.email", "test@example.com")
        git(work, "config", "user.name", "Test")
        git(work, "remote", "add", "origin", str(bare))
        return cls(bare, work)

    def write(self, relative: str, content: str) -> None:
        path = self.work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)

    def commit_and_push(self, message: str) -> str:
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        git(self.work, "push", "-q", "origin", f"HEAD:{self.branch}")
        return git(self.work, "rev-parse", "HEAD")


def configmap_stack(repo: GitRepo, stack: str, namespace: str, data: dict[str, str], extra: str = "") -> None:
    """A kustomize stack holding one ConfigMap `<stack>-settings` in the test's namespace."""
    repo.write(f"stacks/{stack}/kustomization.yaml", yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": namespace,
         "resources": ["configmap.yaml"] + (["extra.yaml"] if extra else [])}))
    repo.write(f"stacks/{stack}/configmap.yaml", yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{stack}-settings"}, "data": data}))
    if extra:
        repo.write(f"stacks/{stack}/extra.yaml", extra)


def watched_repo(tmp_path: Path, namespace: str) -> GitRepo:
    """A watched repository with one stack: ConfigMap `app-settings` (value=v1) in the test's namespace."""
    repo = GitRepo.create(tmp_path / "git")
    configmap_stack(repo, "app", namespace, {"value": "v1"})
    repo.commit_and_push("v1")
    return repo


def write_env(path: Path, repo: GitRepo, stacks: list[tuple[str, list[str]]], *, interval: str = "1h",
              correct_drift: bool = True, name: str | None = None, policy_mode: str | None = None,
              sync: dict[str, Any] | None = None) -> Path:
    """An environments YAML watching `repo`; the name is unique so parallel runs never share state.
    `sync`: more settings of the environment's `sync` block (they win over the defaults here)."""
    env: dict[str, Any] = {
        "name": name or f"t{uuid.uuid4().hex[:8]}",
        "source": {"url": str(repo.bare), "branch": repo.branch},
        "sync": {"interval": interval, "prune": True, "correctDrift": correct_drift, "waitForHealth": True,
                 "healthTimeout": "60s", **(sync or {})},
        "stacks": [{"name": s, "path": f"stacks/{s}", **({"dependsOn": deps} if deps else {})} for s, deps in stacks],
    }
    if policy_mode or not (repo.work / "policies").is_dir():
        env["policy"] = {"mode": policy_mode or "off"}  # a repository without policies runs with policy off
    path.write_text(yaml.safe_dump(env, sort_keys=False))
    return path


class GatedEngine:
    """Delegates to `inner`, but each `sync` waits for the gate; counts passes and overlaps."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.calls: list[dict[str, Any]] = []
        self.running = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def sync(self, stack: str | None = None, **kwargs: Any) -> PassResult:
        with self._lock:
            self.running += 1
            self.max_concurrent = max(self.max_concurrent, self.running)
            self.calls.append({"stack": stack, **kwargs})
        self.entered.release()
        try:
            self.gate.wait(60)
            return self.inner.sync(stack=stack, **kwargs)
        finally:
            with self._lock:
                self.running -= 1


class CannedEngine:
    """An engine stand-in for tests of scheduling alone (no cluster involved): every pass applies its stacks."""

    api_client = None

    def __init__(self, env: Any, outcome: Callable[[], StackState] = lambda: StackState.APPLIED) -> None:
        self.env = env
        self.outcome = outcome

    def sync(self, stack: str | None = None, dry_run: bool = False, progress: Any = None, run_id: str | None = None,
             should_stop: Any = None, options: Any = None) -> PassResult:
        commit = CommitInfo("0" * 40, "test", "canned", utcnow())
        stacks = [StackResult(s.name, self.outcome(), 0) for s in self.env.stacks if stack in (None, s.name)]
        return PassResult(self.env.name, run_id or "", commit, dry_run, stacks=stacks, finished_at=utcnow())

    def drift(self, asked: Any = None) -> Any:
        from reconciler.results import DriftReport

        return DriftReport(self.env.name, None)

    def state_ref(self) -> tuple[str, str]:
        return ("healthflow-system", f"reconciler-{self.env.name}")


@dataclass
class Receiver:
    """A real HTTP endpoint on 127.0.0.1 that records JSON bodies; `fail` makes it answer 500."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False


def received_alerts(receiver: Receiver) -> list[dict[str, Any]]:
    """The alerts an Apprise JSON webhook (`json://`) delivered: its title, message and type, and the alert
    kind and reminder flag read back from the text every Apprise service gets."""
    alerts = []
    for body in receiver.bodies:
        kind = re.search(r"kind (\w+)", body.get("message", ""))
        alerts.append({**body, "kind": kind.group(1) if kind else None,
                       "reminder": body.get("title", "").startswith("Reminder: ")})
    return alerts


def alert_sink(receiver: Receiver, name: str = "") -> Any:
    """An Apprise sink posting to the receiver as a JSON webhook."""
    from reconciler.daemon.notify import AppriseSink, apprise_url

    return AppriseSink(apprise_url(receiver.url), name=name)


@contextlib.contextmanager
def http_receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if state.fail:
                self.send_response(500)
                self.end_headers()
                return
            state.bodies.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Running:
    daemon: Daemon
    base: str

    def manual_pass(self, env_name: str, what: str = "a pass", timeout_s: float = 90.0,
                    must_succeed: bool = False, stack: str | None = None) -> Any:
        """A manual pass of the environment (of one `stack` of it), waited for; the run. With `must_succeed`,
        a pass that did not succeed fails the test with its error and each stack's state and reason."""
        run = self.daemon.trigger(env_name, "manual", stack=stack)
        wait_for(lambda: run.state.done, timeout_s=timeout_s, what=what)
        if must_succeed:
            result = run.result
            assert result is not None and result.ok, (what, result and result.error,
                                                      result and [(s.stack, s.state, s.reason) for s in result.stacks])
        return run


@contextlib.contextmanager
def running_daemon(envs: list[Any], engine_factory: Callable[[Any], Any], *, settings: DaemonSettings | None = None,
                   notifier: Notifier | None = None, metrics: Metrics | None = None,
                   max_body_bytes: int = 64 * 1024, read_token: str | None = None) -> Iterator[Running]:
    """A daemon with its HTTP server on a free port of 127.0.0.1, stopped afterwards."""
    metrics = metrics or (notifier and notifier._metrics) or Metrics()
    daemon = Daemon(envs, engine_factory, settings=settings or DaemonSettings(), metrics=metrics,
                    notifier=notifier or Notifier([], metrics))
    server = ServerThread(create_app(daemon, ServerSecrets(API_TOKEN, GITHUB_SECRET, GITLAB_TOKEN, read_token),
                                     max_body_bytes=max_body_bytes), "127.0.0.1", 0)
    server.start()
    daemon.start()
    try:
        yield Running(daemon, f"http://127.0.0.1:{server.port}")
    finally:
        daemon.stop(timeout_s=30)
        server.stop()


def github_push(repo: GitRepo, after: str, branch: str = "main") -> bytes:
    return json.dumps({"ref": f"refs/heads/{branch}", "after": after, "deleted": False,
                       "repository": {"clone_url": str(repo.bare), "html_url": "https://example.invalid/o/r"},
                       "pusher": {"name": "test"}}).encode()
