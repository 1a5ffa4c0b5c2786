"""Commit statuses: after a real pass on the devcluster, the daemon posts the commit's status to a local
HTTP server that checks each request against the host's documented API (path, auth header, body)."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from daemon_support import GitRepo, configmap_stack, git, running_daemon, write_env
from helpers import wait_for
from reconciler.config import load_environment
from reconciler.daemon.service import DaemonSettings, default_engine_factory

pytestmark = pytest.mark.cluster
TOKEN = "status-token-123"


class FakeHost:
    """Accepts only requests shaped as the provider documents them; remembers the accepted ones."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[str] = []

    def check(self, path: str, headers: Any, body: dict) -> str | None:
        """None when the request is what the API documents, else why not."""
        if self.provider == "github":
            prefix, auth, states = "/repos/acme/platform/statuses/", f"Bearer {TOKEN}", {"error", "failure", "pending",
                                                                                         "success"}
            fields = {"state", "context", "description"}
            if headers.get("Authorization") != auth or headers.get("Accept") != "application/vnd.github+json":
                return "headers"
        elif self.provider == "gitlab":
            prefix, states, fields = "/api/v4/projects/acme%2Fplatform/statuses/", {"pending", "running", "success",
                                                                                   "failed", "canceled"}, {"state", "name"}
            if headers.get("PRIVATE-TOKEN") != TOKEN:
                return "headers"
        else:
            prefix, states = "/api/v1/repos/acme/platform/statuses/", {"pending", "success", "error", "failure", "warning"}
            fields = {"state", "context", "description"}
            if headers.get("Authorization") != f"token {TOKEN}":
                return "headers"
        if not path.startswith(prefix) or len(path[len(prefix):]) != 40:
            return f"path {path}"
        if not fields <= body.keys() or body["state"] not in states or len(body.get("description", "")) > 140:
            return f"body {body}"
        return None


@contextlib.contextmanager
def fake_host(provider: str) -> Iterator[tuple[FakeHost, str]]:
    host = FakeHost(provider)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            problem = host.check(self.path, self.headers, body)
            if problem:
                host.refused.append(problem)
                self.send_response(422)
            else:
                host.accepted.append({"path": self.path, **body})
                self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield host, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def factory(tmp_path: Path, kubeconfig: Path) -> Callable[[Any], Any]:
    return default_engine_factory(tmp_path / "cache", kubeconfig)


def _env(tmp_path: Path, repo: GitRepo, provider: str, api: str, name: str) -> Any:
    path = write_env(tmp_path / f"{name}.yaml", repo, [("app", [])], name=name)
    data = yaml.safe_load(path.read_text())
    data["commitStatus"] = {"provider": provider, "repository": "acme/platform", "apiUrl": api}
    path.write_text(yaml.safe_dump(data))
    return load_environment(path)


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_an_applied_commit_gets_a_success_status_in_the_hosts_documented_shape(
        provider: str, tmp_path: Path, repo: GitRepo, factory: Any) -> None:
    with fake_host(provider) as (host, api):
        env = _env(tmp_path, repo, provider, api, f"cs-{provider}-{uuid.uuid4().hex[:6]}")
        settings = DaemonSettings(poll=False, commit_status_token=TOKEN, status_url="http://status.example")
        with running_daemon([env], factory, settings=settings) as d:
            wait_for(lambda: host.accepted or host.refused, timeout_s=120, what="a commit status")
            d.daemon.commit_status.flush()
    assert host.refused == []
    [status] = host.accepted
    assert status["path"].endswith(git(repo.work, "rev-parse", "HEAD"))
    assert status["state"] == "success"
    assert status.get("context", status.get("name")) == f"healthflow/{env.name}@default"
    assert status["target_url"] == f"http://status.example/#env={env.name}"


def test_two_environments_on_one_commit_report_under_their_own_contexts_and_a_failure_is_a_failure(
        tmp_path: Path, repo: GitRepo, namespace: str, factory: Any) -> None:
    configmap_stack(repo, "app", namespace, {"value": "v1"}, extra="not: [valid yaml")
    repo.commit_and_push("a broken manifest")
    with fake_host("github") as (host, api):
        good, bad = (_env(tmp_path, repo, "github", api, f"cs-{n}-{uuid.uuid4().hex[:6]}") for n in ("a", "b"))
        with running_daemon([good, bad], factory, settings=DaemonSettings(poll=False, commit_status_token=TOKEN)) as d:
            wait_for(lambda: len(host.accepted) >= 2, timeout_s=120, what="two commit statuses")
            d.daemon.commit_status.flush()
    assert {s["context"] for s in host.accepted} == {f"healthflow/{good.name}@default", f"healthflow/{bad.name}@default"}
    assert {s["state"] for s in host.accepted} == {"failure"}
