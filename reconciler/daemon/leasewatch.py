"""Wake the election loop when a sync request is annotated on a Lease this replica holds.

A trigger that reaches a replica which does not lead the environment (a webhook behind a Service, a
manual sync) is forwarded by annotating the environment's Lease (daemon/leader.py). Without this the
leader found it at its next round, up to a retry period (2 s) later: in a push to a fleet, two thirds
of the environments started that much late. One watch per cluster and lease namespace (Leases
labelled as ours) wakes the loop at once; the round it runs is the one that would have run anyway,
so what a round decides, and how safely, is unchanged. The round's LIST stays the source of truth:
a watch that stalls or breaks only makes a forwarded request wait for the next round, as before.
"""

from __future__ import annotations

import threading
from typing import Callable

from reconciler.errors import ClusterError
from reconciler.kube.cluster import Cluster
from reconciler.kube.lease import LEASE_API, MANAGED_BY_SELECTOR
from reconciler.kube.livecache import WatchKey, watch_events
from reconciler.logs import get_logger

log = get_logger("reconciler.daemon.leasewatch")

SYNC_REQUEST_ANNOTATION = "healthflow.io/sync-requested"
"""Set on the Lease by a replica that got a trigger it cannot run; the holder runs it on its next round."""


def asks_holder(lease: dict, identity: str) -> bool:
    """A Lease held by `identity` with a sync request on it."""
    metadata, spec = lease.get("metadata") or {}, lease.get("spec") or {}
    return spec.get("holderIdentity") == identity and SYNC_REQUEST_ANNOTATION in (metadata.get("annotations") or {})


class LeaseWakeups:
    """Watches of the Leases in the namespaces an election loop uses, one thread per cluster and namespace."""

    def __init__(self, places: list[tuple[Cluster, str]], identity: str, wake: Callable[[], None],
                 retry_s: float = 2.0, watch_timeout_s: int = 55, stall_s: float = 75.0) -> None:
        self.places, self.identity, self._wake = places, identity, wake
        self.retry_s, self.watch_timeout_s, self.stall_s = retry_s, watch_timeout_s, stall_s
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._follow, args=place, name=f"lease-watch-{place[1]}",
                                          daemon=True) for place in places]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """The threads end at their watch's next event or timeout (they hold nothing meanwhile)."""
        self._stop.set()

    def _follow(self, cluster: Cluster, namespace: str) -> None:
        version = ""  # from now, with the Leases that exist as ADDED events (a request already there wakes too)
        while not self._stop.is_set():
            try:
                version = self._watch(cluster, namespace, version)
            except ClusterError as exc:
                log.warning("lease watch broke", namespace=namespace, error=str(exc))
                version = ""
                self._stop.wait(self.retry_s)

    def _watch(self, cluster: Cluster, namespace: str, version: str) -> str:
        """One watch until the server ends it; the version to go on from ('' after an ERROR, e.g. 410 Gone)."""
        key = WatchKey(LEASE_API, "Lease", namespace)
        for event in watch_events(cluster, key, MANAGED_BY_SELECTOR, version, timeout_s=self.watch_timeout_s,
                                  stall_s=self.stall_s):
            if self._stop.is_set():
                break
            lease = event.get("object") or {}
            if event.get("type") == "ERROR":
                return ""
            version = (lease.get("metadata") or {}).get("resourceVersion") or version
            if event.get("type") in ("ADDED", "MODIFIED") and asks_holder(lease, self.identity):
                self._wake()
        return version
