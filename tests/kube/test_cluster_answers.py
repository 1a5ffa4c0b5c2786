"""What `Cluster.apply` returns when its caller does not read the server's answer (`answer=False`, a cold
sync's dry runs of new objects and its applies): nothing, while the write and the server's rejections stay
exactly as they were, and a write the live cache must note is still read for it. Against the devcluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.kube.cluster import ApiError, Cluster, new_api_client


def _config_map(namespace: str, name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"key": "value"}}


class _NotedWrites:
    """Stands where the daemon's live cache is attached, recording what `Cluster` tells it of each write."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, object]] = []

    def note_write(self, api_version: str, kind: str, namespace: str, name: str, resource_version: object,
                   labels: dict | None = None) -> None:
        self.notes.append((name, resource_version))


def test_an_apply_whose_answer_is_not_read_returns_nothing_and_the_object_is_written(kubeconfig: Path,
                                                                                     namespace: str) -> None:
    cluster = Cluster(new_api_client(kubeconfig))
    assert cluster.apply(_config_map(namespace, "unread"), answer=False) == {}
    assert cluster.get("v1", "ConfigMap", namespace, "unread")["data"] == {"key": "value"}
    assert cluster.apply(_config_map(namespace, "read"))["metadata"]["name"] == "read"


def test_a_dry_run_whose_answer_is_not_read_still_raises_the_servers_rejection(kubeconfig: Path,
                                                                                 namespace: str) -> None:
    cluster = Cluster(new_api_client(kubeconfig))
    with pytest.raises(ApiError) as rejected:
        cluster.apply(_config_map(namespace, "Bad_Name"), dry_run=True, answer=False)
    assert rejected.value.status == 422 and "Bad_Name" in rejected.value.message


def test_a_write_the_live_cache_notes_is_read_for_it_even_when_the_caller_does_not_read_it(
        kubeconfig: Path, namespace: str) -> None:
    cluster = Cluster(new_api_client(kubeconfig))
    cluster.cache = _NotedWrites()
    cluster.apply(_config_map(namespace, "noted"), answer=False)
    live = cluster.get("v1", "ConfigMap", namespace, "noted")
    assert cluster.cache.notes == [("noted", live["metadata"]["resourceVersion"])]
