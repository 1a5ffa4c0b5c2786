"""kube-apiserver restarted under the live cache: the watches reconnect and an edit made after the
restart reaches the cache (nothing is lost across the restart)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from devcluster.cluster import START_ORDER, ClusterState, restart_apiserver
from helpers import wait_for
import private_cluster
from reconciler.kube.cluster import FIELD_MANAGER, Cluster, new_api_client
from reconciler.kube.livecache import LiveCache, WatchKey

pytestmark = [pytest.mark.cluster, pytest.mark.long]
# this module breaks the whole control plane: it runs on one of its own (private_cluster.py)
kubeconfig, api_client = private_cluster.kubeconfig, private_cluster.api_client
LABEL = "reconciler.healthflow.io/owner"


def _edit(kubeconfig: Path, namespace: str, value: str) -> bool:
    """Patch through a fresh client (the old one's pooled connections died with the API server)."""
    try:
        api = client.CoreV1Api(new_api_client(kubeconfig))
        api.patch_namespaced_config_map("watched", namespace, {"data": {"v": value}})
        return True
    except (ApiException, OSError, Exception):  # noqa: BLE001 - the API server may still be starting
        return False


def test_the_live_cache_survives_an_api_server_restart(kubeconfig: Path, namespace: str,
                                                       api_client: client.ApiClient) -> None:
    state_dir = kubeconfig.parent
    client.CoreV1Api(api_client).create_namespaced_config_map(
        namespace, {"metadata": {"name": "watched", "labels": {LABEL: "env.a"}}, "data": {"v": "before"}})
    cache = LiveCache(Cluster(new_api_client(kubeconfig)), LABEL, {"env.a"}, FIELD_MANAGER, stall_s=5)
    cache.ensure({WatchKey("v1", "ConfigMap", namespace)})
    assert cache.wait_synced(30)
    try:
        restart_apiserver(state_dir)
        wait_for(lambda: _edit(kubeconfig, namespace, "after-the-restart"), timeout_s=120,
                 what="the API server to take the edit")

        def cached() -> str | None:
            items = cache.lookup("v1", "ConfigMap", namespace, f"{LABEL}=env.a") or []
            return next((o["data"]["v"] for o in items), None)

        wait_for(lambda: cached() == "after-the-restart", timeout_s=120, what="the edit to reach the cache")
    finally:
        cache.stop()


def test_a_restarted_api_server_keeps_its_place_in_the_stop_order(kubeconfig: Path) -> None:
    """`down` stops in reverse start order: an API server restarted to the end of the list was stopped before
    the components that talk to it, which then hung on SIGTERM until the 15 s SIGKILL."""
    restart_apiserver(kubeconfig.parent)

    assert [c.name for c in ClusterState.load(kubeconfig.parent).components] == list(START_ORDER)
