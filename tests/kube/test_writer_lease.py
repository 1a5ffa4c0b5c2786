"""The writer lease against a holder that died: it is waited out for the holder's lease duration (its
record's leaseDurationSeconds, a daemon's --lease-duration), not the waiting writer's own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from kubernetes import client

from reconciler.kube.cluster import Cluster
from reconciler.kube.lease import WriterLease, micro_time

pytestmark = pytest.mark.cluster


def _killed_holders_lease(api_client: client.ApiClient, namespace: str, name: str, duration_s: int) -> None:
    """A Lease as a writer killed a minute ago left it: held, never to be renewed again."""
    then = micro_time(datetime.now(timezone.utc) - timedelta(seconds=60))
    client.CoordinationV1Api(api_client).create_namespaced_lease(namespace, {
        "metadata": {"name": name},
        "spec": {"holderIdentity": "reconciler daemon on node-1 pid 7", "leaseDurationSeconds": duration_s,
                 "acquireTime": then, "renewTime": then}})


def test_a_writer_waits_out_a_killed_holders_lease_for_the_holders_duration_not_its_own(
        api_client: client.ApiClient, namespace: str) -> None:
    _killed_holders_lease(api_client, namespace, "writer-app", duration_s=3)
    writer = WriterLease(Cluster(api_client), namespace, "writer-app", "sync on laptop", duration_s=1.0)

    writer.acquire(wait_s=0, poll_s=0.1)  # a 1 s writer would give up after 1.2 s; the holder's lease lasts 3 s
    try:
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease("writer-app", namespace)
        assert lease.spec.holder_identity == "sync on laptop"
    finally:
        writer.release()


def test_a_lease_annotated_by_someone_else_while_held_is_still_released(
        api_client: client.ApiClient, namespace: str) -> None:
    writer = WriterLease(Cluster(api_client), namespace, "writer-app", "sync on laptop", duration_s=30.0)
    writer.acquire(wait_s=0)
    leases = client.CoordinationV1Api(api_client)
    leases.patch_namespaced_lease("writer-app", namespace,
                                  {"metadata": {"annotations": {"example.com/sync-requested": "abc"}}})

    writer.release()  # its write over the record it knew conflicts (409): read again, still ours, released

    assert not leases.read_namespaced_lease("writer-app", namespace).spec.holder_identity
