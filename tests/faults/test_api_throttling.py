"""An API server that answers "too many requests" (429) or "unavailable" (503) in the middle of a pass:
the requests are asked again, after the Retry-After the server named, and the pass converges."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client, config

from httpproxy import FaultProxy
from manifests import configmap, make_env, write_stack
from reconciler.config import load_environment
from reconciler.pipeline.engine import Engine

pytestmark = pytest.mark.cluster


class EveryThirdWrite:
    """Answers every third write (PATCH/POST) with `status`, naming `retry_after` seconds when given."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        self.status, self.retry_after = status, retry_after
        self._writes = 0
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str):
        if method not in ("PATCH", "POST") or "/namespaces/healthflow-system/" in path:
            return None
        with self._lock:
            self._writes += 1
            hit = self._writes % 3 == 0
        if not hit:
            return None
        return self.status, ({"Retry-After": self.retry_after} if self.retry_after else {})


@pytest.fixture()
def throttled(kubeconfig: Path, request: pytest.FixtureRequest) -> Iterator[tuple[FaultProxy, client.ApiClient]]:
    upstream = config.new_client_from_config(config_file=str(kubeconfig))
    proxy = FaultProxy(upstream.configuration, request.param)
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    api_client.configuration.host = proxy.url
    yield proxy, api_client
    proxy.close()


def _sync_through(api_client, repo, tmp_path: Path, namespace: str, count: int):
    write_stack(repo, "app", [configmap(f"cm-{i}", namespace, {"i": str(i)}) for i in range(count)])
    repo.commit(f"{count} configmaps")
    env = load_environment(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine = Engine(env, cache_dir=tmp_path / "cache", api_client=api_client)
    return engine, engine.sync()


def _live_names(api_client: client.ApiClient, namespace: str) -> set[str]:
    return {c.metadata.name for c in client.CoreV1Api(api_client).list_namespaced_config_map(namespace).items}


@pytest.mark.parametrize("throttled", [EveryThirdWrite(429, "1")], indirect=True)
def test_429_answers_are_retried_after_the_named_retry_after_and_the_pass_converges(
        throttled, repo, tmp_path: Path, namespace: str, api_client: client.ApiClient) -> None:
    proxy, proxied = throttled

    engine, result = _sync_through(proxied, repo, tmp_path, namespace, 12)

    assert result.ok, result
    assert {f"cm-{i}" for i in range(12)} <= _live_names(api_client, namespace)
    injected = proxy.injected()
    assert len(injected) >= 4
    assert result.api_requests.get("retry") == len(injected)
    for answer in injected:  # the same request came again, and not before the second the server asked for
        again = next(s for s in proxy.seen if s.at > answer.at and (s.method, s.path) == (answer.method, answer.path))
        assert again.at - answer.at >= 0.95


@pytest.mark.parametrize("throttled", [EveryThirdWrite(503, None)], indirect=True)
def test_503_answers_without_retry_after_are_retried_with_backoff_and_the_pass_converges(
        throttled, repo, tmp_path: Path, namespace: str, api_client: client.ApiClient) -> None:
    proxy, proxied = throttled

    engine, result = _sync_through(proxied, repo, tmp_path, namespace, 12)

    assert result.ok, result
    assert {f"cm-{i}" for i in range(12)} <= _live_names(api_client, namespace)
    assert len(proxy.injected()) >= 4
    assert result.api_requests.get("retry") == len(proxy.injected())


@pytest.mark.parametrize("throttled", [lambda method, path: (500, {}) if method == "PATCH" and "cm-bad" in path
                                       else None], indirect=True)
def test_a_plain_500_is_an_answer_not_retried_and_fails_the_stack_naming_the_object(
        throttled, repo, tmp_path: Path, namespace: str) -> None:
    proxy, proxied = throttled
    write_stack(repo, "app", [configmap("cm-bad", namespace, {"i": "0"})])
    repo.commit("one configmap")
    env = load_environment(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))

    result = Engine(env, cache_dir=tmp_path / "cache", api_client=proxied).sync()

    assert not result.ok
    assert "cm-bad" in result.stacks[0].reason
    assert len(proxy.injected()) == 1
