"""The live-state cache against the real API server: LIST + WATCH of our labelled objects only."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client

from helpers import wait_for
from reconciler.kube.cluster import FIELD_MANAGER, Cluster, new_api_client
from reconciler.kube.livecache import KindWatch, LiveCache, WatchKey

pytestmark = pytest.mark.cluster

LABEL = "reconciler.healthflow.io/owner"


@pytest.fixture()
def cache(kubeconfig: Path) -> Iterator[LiveCache]:
    live = LiveCache(Cluster(new_api_client(kubeconfig)), LABEL, {"env.a", "env.b"}, FIELD_MANAGER)
    yield live
    live.stop()


def _configmap(core: client.CoreV1Api, namespace: str, name: str, owner: str | None, value: str = "1") -> None:
    labels = {LABEL: owner} if owner else {}
    core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}, "data": {"v": value}})


def _cached(cache: LiveCache, namespace: str, owner: str) -> dict[str, str]:
    items = cache.lookup("v1", "ConfigMap", namespace, f"{LABEL}={owner}") or []
    return {o["metadata"]["name"]: o["data"]["v"] for o in items}


def test_the_cache_lists_our_objects_then_follows_their_changes(cache: LiveCache, namespace: str,
                                                              api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    _configmap(core, namespace, "before", "env.a")
    _configmap(core, namespace, "not-ours", None)
    cache.ensure({WatchKey("v1", "ConfigMap", namespace)})
    assert cache.wait_synced(30)
    assert _cached(cache, namespace, "env.a") == {"before": "1"}

    _configmap(core, namespace, "after", "env.a")
    core.patch_namespaced_config_map("before", namespace, {"data": {"v": "2"}})
    wait_for(lambda: _cached(cache, namespace, "env.a") == {"before": "2", "after": "1"}, timeout_s=30,
             what="the create and the change to reach the cache")
    core.delete_namespaced_config_map("after", namespace)

    wait_for(lambda: _cached(cache, namespace, "env.a") == {"before": "2"}, timeout_s=30, what="the delete")
    assert cache.stats()["relists"] == {"ConfigMap": 1}


def test_an_object_given_to_another_owner_is_listed_under_its_new_owner_only(
        cache: LiveCache, namespace: str, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    _configmap(core, namespace, "moves", "env.a")
    _configmap(core, namespace, "stays", "env.a")
    _configmap(core, namespace, "other", "env.b")
    cache.ensure({WatchKey("v1", "ConfigMap", namespace)})
    assert cache.wait_synced(30)

    core.patch_namespaced_config_map("moves", namespace, {"metadata": {"labels": {LABEL: "env.b"}}})

    wait_for(lambda: _cached(cache, namespace, "env.b") == {"moves": "1", "other": "1"}, timeout_s=30,
             what="the new owner to reach the cache")
    assert _cached(cache, namespace, "env.a") == {"stays": "1"}


def test_a_list_the_cache_does_not_cover_goes_to_the_api_server(cache: LiveCache, namespace: str) -> None:
    cache.ensure({WatchKey("v1", "ConfigMap", namespace)})
    assert cache.wait_synced(30)

    assert cache.lookup("v1", "ConfigMap", namespace, f"{LABEL}=other-env.x") is None
    assert cache.lookup("v1", "Secret", namespace, f"{LABEL}=env.a") is None
    assert cache.lookup("v1", "ConfigMap", namespace, "") is None


def test_a_watch_resuming_from_an_old_resource_version_misses_nothing(
        cache: LiveCache, namespace: str, api_client: client.ApiClient) -> None:
    """Resuming from resourceVersion 1: a server whose history no longer reaches back that far answers
    410 Gone and the watch lists again; one that still has it streams every change since. Either
    way the object made while we were away ends up in the cache."""
    _configmap(client.CoreV1Api(api_client), namespace, "made-while-away", "env.b")
    watch = KindWatch(cache, WatchKey("v1", "ConfigMap", namespace))
    watch.resource_version = "1"
    cache.watches[watch.key] = watch
    watch.start()

    wait_for(lambda: "made-while-away" in watch.held(namespace), timeout_s=30, what="the object made while away")
    assert watch.relists <= 1


def test_the_cache_keeps_only_our_managed_fields(cache: LiveCache, namespace: str,
                                                 api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    _configmap(core, namespace, "shared", "env.a")
    core.patch_namespaced_config_map("shared", namespace, {"data": {"w": "x"}}, field_manager="someone-else")
    cache.ensure({WatchKey("v1", "ConfigMap", namespace)})
    assert cache.wait_synced(30)

    [cached] = cache.lookup("v1", "ConfigMap", namespace, f"{LABEL}=env.a")
    assert [m["manager"] for m in cached["metadata"]["managedFields"]] == []
    assert cached["data"] == {"v": "1", "w": "x"}


def test_stopping_a_watch_the_environment_no_longer_needs(cache: LiveCache, namespace: str) -> None:
    cache.ensure({WatchKey("v1", "ConfigMap", namespace), WatchKey("v1", "Secret", namespace)})
    assert cache.wait_synced(30)

    cache.ensure({WatchKey("v1", "Secret", namespace)})

    assert set(cache.watches) == {WatchKey("v1", "Secret", namespace)}
    assert cache.lookup("v1", "ConfigMap", namespace, f"{LABEL}=env.a") is None


def _heard(cache: LiveCache) -> list:
    events: list = []
    cache.subscribe(events.append)
    return events


def test_a_change_of_status_alone_is_marked_so_and_a_change_of_labels_is_not(
        cache: LiveCache, namespace: str, api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    labels = {"app": "web", LABEL: "env.a"}
    apps.create_namespaced_deployment(namespace, {"metadata": {"name": "web", "labels": labels}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                 "nodeSelector": {"cache.test/no-such-node": "true"}}}}})
    cache.ensure({WatchKey("apps/v1", "Deployment", namespace)})
    assert cache.wait_synced(30)
    events = _heard(cache)
    apps.patch_namespaced_deployment_status("web", namespace, {"status": {"observedGeneration": 1, "replicas": 7}})
    status = wait_for(lambda: next((e for e in events if (e.object.get("status") or {}).get("replicas") == 7), None),
                      timeout_s=30, what="the status change's event")
    apps.patch_namespaced_deployment("web", namespace, {"metadata": {"labels": {"team": "x"}}})
    labels = wait_for(lambda: next((e for e in events if e.object["metadata"]["labels"].get("team") == "x"), None),
                      timeout_s=30, what="the label change's event")

    assert status.status_only and not labels.status_only


def test_our_own_write_coming_back_is_not_a_change_and_someone_elses_is(
        kubeconfig: Path, namespace: str, api_client: client.ApiClient) -> None:
    """A pass that applied and found its stack clean may trust that stack until something else touches it;
    an echo that arrives before the apply's answer is noted is taken back when it is."""
    writer = Cluster(new_api_client(kubeconfig))
    cache = LiveCache(writer, LABEL, {"env.a"}, FIELD_MANAGER)
    writer.cache = cache
    try:
        _configmap(client.CoreV1Api(api_client), namespace, "settings", "env.a")
        cache.ensure({WatchKey("v1", "ConfigMap", namespace)})
        assert cache.wait_synced(30)
        before = cache.changes("env.a")
        manifest = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": "2"},
                    "metadata": {"name": "settings", "namespace": namespace, "labels": {LABEL: "env.a"}}}

        writer.apply(manifest, force=True)
        wait_for(lambda: _cached(cache, namespace, "env.a") == {"settings": "2"}, timeout_s=30, what="the echo")
        after_ours = cache.changes("env.a")
        client.CoreV1Api(api_client).patch_namespaced_config_map("settings", namespace, {"data": {"v": "3"}})
        wait_for(lambda: _cached(cache, namespace, "env.a") == {"settings": "3"}, timeout_s=30, what="the edit")

        assert (after_ours, cache.changes("env.a")) == (before, before + 1)
    finally:
        cache.stop()


def test_a_write_not_delivered_yet_sends_only_lists_of_its_owner_to_the_api_server(
        cache: LiveCache, namespace: str, api_client: client.ApiClient) -> None:
    """The previous stack's apply in the namespace must not cost the next stack's plan a LIST; a write that
    moves an object from one owner to another does, for both owners. (A version far ahead stands for
    an apply whose echo the watch has not delivered yet.)"""
    core = client.CoreV1Api(api_client)
    _configmap(core, namespace, "of-a", "env.a")
    _configmap(core, namespace, "of-b", "env.b")
    cache.ensure({WatchKey("v1", "ConfigMap", namespace)})
    assert cache.wait_synced(30)

    cache.note_write("v1", "ConfigMap", namespace, "of-a", "999999999", {LABEL: "env.a"})
    assert cache.lookup("v1", "ConfigMap", namespace, f"{LABEL}=env.a") is None
    assert _cached(cache, namespace, "env.b") == {"of-b": "1"}

    cache.note_write("v1", "ConfigMap", namespace, "of-b", "999999999", {LABEL: "env.a"})
    assert cache.lookup("v1", "ConfigMap", namespace, f"{LABEL}=env.b") is None
