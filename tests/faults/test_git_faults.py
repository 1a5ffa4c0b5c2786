"""The Git side breaking: a remote that never answers, one that is unreachable, one that refuses the
credentials, a force-pushed branch, and a corrupted local mirror. A pass fails with a message that
says why (in bounded time) and the cluster stays as it was; a rewritten history is followed; a
corrupted mirror is cloned again."""

from __future__ import annotations

import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client

from manifests import configmap, make_env, write_stack
from reconciler.config import load_environment
from reconciler.pipeline.engine import Engine
from reconciler.results import StackState

pytestmark = pytest.mark.cluster


def _engine(tmp_path: Path, env_file: Path, kubeconfig: Path) -> Engine:
    return Engine(load_environment(env_file), cache_dir=tmp_path / "cache", kubeconfig=kubeconfig)


def test_a_git_host_that_never_answers_fails_the_pass_after_the_timeout(tmp_path: Path, repo, namespace: str,
                                                                      kubeconfig: Path, silent_host: int) -> None:
    env_file = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])
    text = env_file.read_text().replace(repo.url, f"http://127.0.0.1:{silent_host}/platform.git")
    env_file.write_text(text.replace("branch: main", "branch: main\n  timeout: 2s"))

    result = _engine(tmp_path, env_file, kubeconfig).sync()

    assert "did not answer within 2s" in result.error, result.error
    assert result.stacks == []


def test_an_unreachable_git_host_fails_the_pass_and_names_it(tmp_path: Path, repo, namespace: str,
                                                             kubeconfig: Path) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    env_file = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])
    env_file.write_text(env_file.read_text().replace(repo.url, f"http://127.0.0.1:{port}/platform.git"))

    result = _engine(tmp_path, env_file, kubeconfig).sync()

    assert f"127.0.0.1:{port}/platform.git" in result.error and "failed" in result.error, result.error
    assert result.stacks == []


@pytest.mark.parametrize("damage", ["HEAD overwritten", "objects deleted"])
def test_a_corrupted_mirror_is_cloned_again_and_the_pass_goes_on(tmp_path: Path, repo, namespace: str,
                                                                 kubeconfig: Path, damage: str) -> None:
    write_stack(repo, "app", [configmap("settings", namespace, {"v": "1"})])
    repo.commit("first")
    engine = _engine(tmp_path, make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]),
                     kubeconfig)
    assert engine.sync().ok
    write_stack(repo, "app", [configmap("settings", namespace, {"v": "2"})])
    repo.commit("second")
    mirror = engine.source.mirror_dir
    if damage == "HEAD overwritten":
        (mirror / "HEAD").write_text("garbage\n")
    else:
        shutil.rmtree(mirror / "objects")
        (mirror / "objects").mkdir()

    result = engine.sync()

    assert result.ok, result.error
    assert result.stacks[0].state is StackState.APPLIED


@pytest.fixture()
def refusing_git_host() -> Iterator[str]:
    """An HTTP Git host that answers every request with 401 (credentials revoked, expired, or wrong)."""
    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/platform.git"
    server.shutdown()
    server.server_close()


def test_a_git_host_refusing_the_credentials_fails_the_pass_says_so_and_leaves_the_cluster_as_it_was(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient,
        refusing_git_host: str) -> None:
    write_stack(repo, "app", [configmap("settings", namespace, {"v": "1"})])
    repo.commit("first")
    env_file = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])
    assert _engine(tmp_path, env_file, kubeconfig).sync().ok
    env_file.write_text(env_file.read_text().replace(repo.url, refusing_git_host))

    result = _engine(tmp_path, env_file, kubeconfig).sync()

    assert "refused the credentials" in result.error, result.error
    assert result.stacks == []
    assert client.CoreV1Api(api_client).read_namespaced_config_map("settings", namespace).data == {"v": "1"}


def test_a_force_pushed_branch_is_followed_to_its_new_history_and_what_it_dropped_is_pruned(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient) -> None:
    write_stack(repo, "app", [configmap(n, namespace, {"v": "1"}) for n in ("kept", "rewritten-away")])
    repo.commit("two configmaps")
    engine = _engine(tmp_path, make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]),
                     kubeconfig)
    assert engine.sync().ok
    repo.repo.git.checkout("--orphan", "rewritten")
    write_stack(repo, "app", [configmap("kept", namespace, {"v": "2"})])
    repo.repo.git.add(A=True)
    repo.repo.index.commit("history rewritten")
    repo.repo.git.push("--force", "origin", "rewritten:main")
    new_head = repo.repo.head.commit.hexsha

    result = engine.sync()

    assert result.ok, result.error
    assert result.commit.sha == new_head
    live = {c.metadata.name: c.data for c in client.CoreV1Api(api_client).list_namespaced_config_map(namespace).items}
    assert live.get("kept") == {"v": "2"} and "rewritten-away" not in live
