"""The live cache under network faults: a stalled watch and cut connections (what a client sees when
the API server restarts) are detected, and an edit made meanwhile is not lost."""

from __future__ import annotations

from typing import Iterator

import pytest
from kubernetes import client

from helpers import wait_for
from reconciler.kube.cluster import FIELD_MANAGER, Cluster
from reconciler.kube.livecache import LiveCache, WatchKey
from tcpproxy import TcpProxy

pytestmark = pytest.mark.cluster

LABEL = "reconciler.healthflow.io/owner"


@pytest.fixture()
def cache(proxied_client, namespace: str, api_client: client.ApiClient) -> Iterator[LiveCache]:
    client.CoreV1Api(api_client).create_namespaced_config_map(
        namespace, {"metadata": {"name": "watched", "labels": {LABEL: "env.a"}}, "data": {"v": "listed"}})
    live = LiveCache(Cluster(proxied_client), LABEL, {"env.a"}, FIELD_MANAGER, stall_s=1.5)
    live.ensure({WatchKey("v1", "ConfigMap", namespace)})
    assert live.wait_synced(30)
    yield live
    live.stop()


def _cached_value(cache: LiveCache, namespace: str) -> str | None:
    items = cache.lookup("v1", "ConfigMap", namespace, f"{LABEL}=env.a") or []
    return next((o["data"]["v"] for o in items if o["metadata"]["name"] == "watched"), None)


def _edit(api_client: client.ApiClient, namespace: str, value: str) -> None:
    client.CoreV1Api(api_client).patch_namespaced_config_map("watched", namespace, {"data": {"v": value}})


def _watching(cache: LiveCache, namespace: str, api_client: client.ApiClient) -> None:
    """The watch delivers events through the proxy: its connection is open (the LIST before it goes over
    another connection, so a synced cache alone does not say the watch's handshake is done)."""
    _edit(api_client, namespace, "before")
    wait_for(lambda: _cached_value(cache, namespace) == "before", timeout_s=30, what="the watch to deliver an edit")


def test_a_stalled_watch_is_detected_and_an_edit_made_meanwhile_is_not_lost(
        cache: LiveCache, proxy: TcpProxy, namespace: str, api_client: client.ApiClient) -> None:
    [watch] = cache.watches.values()
    _watching(cache, namespace, api_client)
    connections = proxy.accepted
    proxy.freeze()
    _edit(api_client, namespace, "during-the-stall")  # straight to the API server, around the proxy
    wait_for(lambda: watch.reconnects >= 1, timeout_s=30, what="the watch to notice that nothing arrives")
    # noticed by the stalled stream itself, on its own connection: no new connections before that
    assert proxy.accepted - connections <= 1
    assert _cached_value(cache, namespace) == "before"

    proxy.resume()

    wait_for(lambda: _cached_value(cache, namespace) == "during-the-stall", timeout_s=60,
             what="the edit made during the stall to reach the cache")


def test_cut_connections_are_reopened_and_an_edit_made_meanwhile_is_not_lost(
        cache: LiveCache, proxy: TcpProxy, namespace: str, api_client: client.ApiClient) -> None:
    proxy.freeze()
    proxy.cut()
    _edit(api_client, namespace, "while-cut")
    proxy.resume()

    wait_for(lambda: _cached_value(cache, namespace) == "while-cut", timeout_s=60,
             what="the edit made while the connection was down to reach the cache")
