"""Shared watches against the real API server: one watch per kind per cluster for every environment, each
environment hearing only its own objects, and a stack's account answered only with what its RBAC lets it list."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from helpers import wait_for
from reconciler.kube.cluster import FIELD_MANAGER, Cluster, impersonating, new_api_client
from reconciler.kube.livecache import KindWatch, LiveCache, LiveEvent, WatchKey
from reconciler.kube.sharedwatch import SharedSource, WatchHub

pytestmark = pytest.mark.cluster

LABEL = "reconciler.healthflow.io/owner"


@pytest.fixture()
def other_namespace(api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = f"t-shared-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"healthflow.io/test": "true"}}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException:
        pass


@pytest.fixture()
def hub(kubeconfig: Path) -> Iterator[WatchHub]:
    shared = WatchHub(Cluster(new_api_client(kubeconfig)), LABEL, FIELD_MANAGER)
    yield shared
    shared.stop()


def _cache(hub: WatchHub, *owners: str) -> LiveCache:
    return LiveCache(hub.cluster, LABEL, set(owners), FIELD_MANAGER, hub=hub)


def _configmap(core: client.CoreV1Api, namespace: str, name: str, owner: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": {LABEL: owner}},
                                                  "data": {"v": "1"}})


def _names(cache: LiveCache, namespace: str, owner: str, user: str | None = None) -> set[str] | None:
    items = cache.lookup("v1", "ConfigMap", namespace, f"{LABEL}={owner}", user)
    return None if items is None else {o["metadata"]["name"] for o in items}


def test_environments_in_different_namespaces_read_one_watch_of_the_kind(
        hub: WatchHub, namespace: str, other_namespace: str, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    _configmap(core, namespace, "a-one", "env-a.app")
    _configmap(core, other_namespace, "b-one", "env-b.app")
    first, second = _cache(hub, "env-a.app"), _cache(hub, "env-b.app")
    first.ensure({WatchKey("v1", "ConfigMap", namespace)})
    second.ensure({WatchKey("v1", "ConfigMap", other_namespace)})
    assert first.wait_synced(30) and second.wait_synced(30)

    assert list(hub.watches) == [("v1", "ConfigMap")]
    assert first.watches[WatchKey("v1", "ConfigMap", namespace)].watch \
        is second.watches[WatchKey("v1", "ConfigMap", other_namespace)].watch
    assert _names(first, namespace, "env-a.app") == {"a-one"}
    assert _names(second, other_namespace, "env-b.app") == {"b-one"}
    assert _names(first, namespace, "env-b.app") is None  # not one of its owners: the API server is asked


def test_each_environment_hears_only_the_changes_of_its_own_objects(
        hub: WatchHub, namespace: str, api_client: client.ApiClient) -> None:
    first, second = _cache(hub, "env-a.app"), _cache(hub, "env-b.app")
    heard_first: list[LiveEvent] = []
    heard_second: list[LiveEvent] = []
    first.subscribe(heard_first.append)
    second.subscribe(heard_second.append)
    first.ensure({WatchKey("v1", "ConfigMap", namespace)})
    second.ensure({WatchKey("v1", "ConfigMap", namespace)})
    assert first.wait_synced(30) and second.wait_synced(30)

    _configmap(client.CoreV1Api(api_client), namespace, "a-new", "env-a.app")

    wait_for(lambda: [e.name for e in heard_first] == ["a-new"], timeout_s=30, what="env-a to hear its object")
    assert heard_first[0].key == WatchKey("v1", "ConfigMap", namespace)
    assert heard_second == []
    assert (first.changes("env-a.app"), second.changes("env-a.app")) == (1, 0)


def test_an_environment_joining_a_watch_hears_what_it_already_holds_as_a_first_list(
        hub: WatchHub, namespace: str, api_client: client.ApiClient) -> None:
    _configmap(client.CoreV1Api(api_client), namespace, "late", "env-b.app")
    first = _cache(hub, "env-a.app")
    first.ensure({WatchKey("v1", "ConfigMap", namespace)})
    assert first.wait_synced(30)
    second = _cache(hub, "env-b.app")
    heard: list[LiveEvent] = []
    second.subscribe(heard.append)

    second.ensure({WatchKey("v1", "ConfigMap", namespace)})

    assert [(e.type, e.name) for e in heard] == [("RELISTED", "late")]
    assert second.changes("env-b.app") == 1  # a pass planned before it joined is not taken as settled


def test_the_shared_watch_stops_when_its_last_environment_leaves(hub: WatchHub, namespace: str) -> None:
    first, second = _cache(hub, "env-a.app"), _cache(hub, "env-b.app")
    first.ensure({WatchKey("v1", "ConfigMap", namespace)})
    second.ensure({WatchKey("v1", "ConfigMap", namespace)})
    watch = hub.watches[("v1", "ConfigMap")]

    first.stop()
    assert hub.watches == {("v1", "ConfigMap"): watch}
    second.stop()

    assert hub.watches == {}


@pytest.fixture()
def configmap_reader(namespace: str, api_client: client.ApiClient) -> Iterator[str]:
    """A service account that may list ConfigMaps in `namespace` and nowhere else."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "reader"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "reader"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                    "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]})
    yield f"system:serviceaccount:{namespace}:reader"


def test_a_stack_account_is_answered_only_where_it_may_list_the_kind_itself(
        hub: WatchHub, namespace: str, other_namespace: str, configmap_reader: str,
        api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    _configmap(core, namespace, "readable", "env-a.app")
    _configmap(core, other_namespace, "hidden", "env-a.app")
    cache = _cache(hub, "env-a.app")
    cache.ensure({WatchKey("v1", "ConfigMap", namespace), WatchKey("v1", "ConfigMap", other_namespace)})
    assert cache.wait_synced(30)

    assert _names(cache, namespace, "env-a.app", configmap_reader) == {"readable"}
    assert _names(cache, other_namespace, "env-a.app", configmap_reader) is None  # its own LIST: a 403
    assert _names(cache, other_namespace, "env-a.app") == {"hidden"}  # the daemon itself may


def test_a_key_watched_as_an_account_that_may_not_list_it_is_not_shared(
        hub: WatchHub, namespace: str, other_namespace: str, configmap_reader: str) -> None:
    cache = _cache(hub, "env-a.app")
    view = impersonating(hub.cluster, configmap_reader)
    readable, hidden = WatchKey("v1", "ConfigMap", namespace), WatchKey("v1", "ConfigMap", other_namespace)

    cache.ensure({readable, hidden}, {readable: view, hidden: view})

    assert isinstance(cache.watches[readable], SharedSource)
    assert isinstance(cache.watches[hidden], KindWatch)  # as the account, as without a hub: RBAC answers
    cache.stop()


def test_a_hub_whose_identity_may_not_watch_a_kind_cluster_wide_leaves_each_environment_its_own_watch(
        kubeconfig: Path, namespace: str, configmap_reader: str) -> None:
    limited = WatchHub(impersonating(Cluster(new_api_client(kubeconfig)), configmap_reader), LABEL, FIELD_MANAGER)
    cache = _cache(limited, "env-a.app")

    cache.ensure({WatchKey("v1", "ConfigMap", namespace)})

    assert isinstance(cache.watches[WatchKey("v1", "ConfigMap", namespace)], KindWatch)
    assert limited.watches == {}
    assert cache.wait_synced(30)
    cache.stop()
