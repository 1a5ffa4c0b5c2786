"""The API server stops answering in the middle of an apply, for longer than a request may take: the
pass fails the stack saying the API server cannot be reached, applies nothing twice, and the next
pass, once the API server answers again, converges with every object Git wants."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from manifests import configmap, make_env, write_stack
from reconciler.config import load_environment
from reconciler.errors import ClusterError
from reconciler.kube.cluster import Cluster
from reconciler.pipeline.engine import Engine
from reconciler.results import StackState
from tcpproxy import TcpProxy

pytestmark = pytest.mark.cluster

OBJECTS = 100  # ConfigMaps, applied after as many Secrets (an earlier kind): the freeze lands between the two


def _secret(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": {"k": name}}


def test_an_api_server_frozen_past_the_request_timeout_mid_apply_fails_the_stack_and_the_next_pass_converges(
        tmp_path: Path, repo, namespace: str, proxy: TcpProxy, proxied_client, api_client: client.ApiClient) -> None:
    write_stack(repo, "app", [configmap(f"cm-{i:03}", namespace, {"i": str(i)}) for i in range(OBJECTS)]
                + [_secret(f"s-{i:03}", namespace) for i in range(OBJECTS)])
    repo.commit(f"{OBJECTS} configmaps")
    env = load_environment(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine = Engine(env, cache_dir=tmp_path / "cache", api_client=proxied_client)
    engine.cluster.request_timeout = (2.0, 2.0)
    frozen_at: list[int] = []

    def freeze_mid_apply(event) -> None:
        if event.phase == "apply" and not frozen_at:  # the Secrets are applied; the ConfigMaps come next
            frozen_at.append(event.objects_applied)
            proxy.freeze()

    failed = engine.sync(progress=freeze_mid_apply)
    proxy.resume()
    proxy.cut()  # connections that saw the freeze are gone, as after a real outage

    assert frozen_at == [OBJECTS]
    assert failed.stacks[0].state is StackState.FAILED
    assert "cannot reach the Kubernetes API" in failed.stacks[0].reason
    converged = engine.sync()
    assert converged.ok, converged
    live = client.CoreV1Api(api_client).list_namespaced_config_map(namespace).items
    assert {c.metadata.name for c in live} >= {f"cm-{i:03}" for i in range(OBJECTS)}
    assert all(c.data == {"i": c.metadata.name[3:].lstrip("0") or "0"} for c in live if c.metadata.name.startswith("cm-"))


def test_a_request_whose_answer_stops_coming_fails_after_one_request_timeout_not_four(
        namespace: str, proxy: TcpProxy, proxied_client) -> None:
    """urllib3 sent a GET, PUT or DELETE whose answer timed out again three times (its default retries), each
    on a new connection: a lease renewal to a frozen API server took four request timeouts."""
    cluster = Cluster(proxied_client)
    cluster.request_timeout = (2.0, 1.0)
    assert cluster.get("v1", "ConfigMap", namespace, "absent") is None  # discovery done, a connection pooled
    connections = proxy.accepted
    proxy.freeze()
    with pytest.raises(ClusterError, match="cannot reach the Kubernetes API"):
        cluster.get("v1", "ConfigMap", namespace, "absent")
    proxy.resume()
    assert proxy.accepted == connections  # asked on the pooled connection only, not again on new ones
