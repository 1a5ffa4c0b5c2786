"""etcd restarted in the middle of an apply: the API server answers errors until etcd is back. The pass
retries what it may, fails the stack if it must, and the next pass converges with nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from devcluster.cluster import restart_etcd
from helpers import wait_for
from manifests import configmap, make_env, write_stack
import private_cluster
from reconciler.config import load_environment
from reconciler.pipeline.engine import Engine

pytestmark = [pytest.mark.cluster, pytest.mark.long]
# this module breaks the whole control plane: it runs on one of its own (private_cluster.py)
kubeconfig, api_client = private_cluster.kubeconfig, private_cluster.api_client
OBJECTS = 150


def _secret(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": {"k": name}}


def _answers(api_client: client.ApiClient) -> bool:
    try:
        client.CoreV1Api(api_client).list_namespace(limit=1)
        return True
    except Exception:  # noqa: BLE001 - the API server may still wait for etcd
        return False


def test_etcd_restarted_mid_apply_loses_nothing_and_the_next_pass_converges(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient) -> None:
    write_stack(repo, "app", [configmap(f"cm-{i:03}", namespace, {"i": str(i)}) for i in range(OBJECTS)]
                + [_secret(f"s-{i:03}", namespace) for i in range(OBJECTS)])
    repo.commit("secrets, then configmaps")
    env = load_environment(make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}]))
    engine = Engine(env, cache_dir=tmp_path / "cache", kubeconfig=kubeconfig)
    restarted: list[int] = []

    def restart_mid_apply(event) -> None:
        if event.phase == "apply" and not restarted:  # the Secrets are applied; the ConfigMaps come next
            restarted.append(event.objects_applied)
            restart_etcd(kubeconfig.parent)

    engine.sync(progress=restart_mid_apply)  # may succeed (retried) or fail the stack: either is fine here
    wait_for(lambda: _answers(api_client), timeout_s=120, what="the API server to answer after etcd is back")

    converged = Engine(env, cache_dir=tmp_path / "cache", kubeconfig=kubeconfig).sync()

    assert restarted == [OBJECTS]
    assert converged.ok, converged
    live = client.CoreV1Api(api_client).list_namespaced_config_map(namespace).items
    assert {c.metadata.name for c in live} >= {f"cm-{i:03}" for i in range(OBJECTS)}
    secrets = client.CoreV1Api(api_client).list_namespaced_secret(namespace).items
    assert {s.metadata.name for s in secrets} >= {f"s-{i:03}" for i in range(OBJECTS)}
