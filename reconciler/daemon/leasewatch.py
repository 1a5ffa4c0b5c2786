"""The Leases of the lease namespace, watched: election rounds read them without a LIST, and a sync
request forwarded to this replica wakes its election loop at once.

Why: every round LISTed the lease namespace on every cluster (every environment's Lease, every
writer lease, every heartbeat), so that each replica's rounds were half of a fleet's idle requests
(100 environments over 3 clusters and 3 replicas: 90 LISTs a minute per cluster) and a share of the
API servers' and the daemons' CPU. And a trigger that reached a replica which does not lead the
environment (a webhook behind a Service) is forwarded by annotating the environment's Lease: the
leader found it at its next round, up to a retry period (2 s) later.

Freshness, which the election's safety needs: a round reads the watch only once it has delivered
this round's own heartbeat write (its resourceVersion), so what it reads is at least as fresh as a
LIST sent after that write. A watch that is not started, broken, stalled or behind gives None within
`CATCH_UP_S`, and the round LISTs as before.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from reconciler.kube.cluster import Cluster
from reconciler.kube.lease import ELECTION_SELECTOR, LEASE_API
from reconciler.kube.livecache import KindWatch, LiveEvent, WatchKey

SYNC_REQUEST_ANNOTATION = "healthflow.io/sync-requested"
"""Set on the Lease by a replica that got a trigger it cannot run; the holder runs it on its next round."""

CATCH_UP_S = 1.0
"""How long a round waits for the watch to deliver its heartbeat write before it LISTs instead."""


def asks_holder(lease: dict | None, identity: str) -> bool:
    """A Lease held by `identity` with a sync request on it."""
    metadata, spec = (lease or {}).get("metadata") or {}, (lease or {}).get("spec") or {}
    return spec.get("holderIdentity") == identity and SYNC_REQUEST_ANNOTATION in (metadata.get("annotations") or {})


def _at_least(version: str, written: str) -> bool:
    """Whether resourceVersion `version` is `written` or later (etcd revisions, as kube.livecache compares them)."""
    return version.isdigit() and written.isdigit() and int(version) >= int(written)


class LeaseWatch:
    """LIST + WATCH (kube.livecache.KindWatch) of our Leases in one namespace of one cluster."""

    resync_s, watch_timeout_s, stall_s = 600.0, 55, 75.0
    selector = ELECTION_SELECTOR  # not the writer leases
    manager = ""  # nobody's managedFields are kept
    label = ""  # no owner label: nothing asks for a Lease by owner

    def __init__(self, cluster: Cluster, namespace: str, identity: str, wake: Callable[[], None]) -> None:
        self.namespace, self.identity, self._wake = namespace, identity, wake
        self._watch = KindWatch(self, WatchKey(LEASE_API, "Lease", namespace), cluster)
        self._delivered = threading.Condition()

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        self._watch.stop()

    def publish(self, event: LiveEvent, _old: Any = None) -> None:
        """KindWatch's sink: every Lease event, after the watch holds it."""
        with self._delivered:
            self._delivered.notify_all()
        if asks_holder(event.object, self.identity):
            self._wake()

    def leases(self, written: str, timeout_s: float = CATCH_UP_S) -> list[dict] | None:
        """The namespace's Leases once the watch has delivered resourceVersion `written` (this round's own
        write); None when it has not within `timeout_s`, or at once while it has never listed (starting, or
        refused: a round is not held up by a watch that cannot run)."""
        if not self._watch.synced.is_set():
            return None
        deadline = time.monotonic() + timeout_s
        with self._delivered:
            while not _at_least(self._watch.resource_version, written):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._delivered.wait(min(remaining, 0.05))  # a relist or a bookmark moves the version silently
        return self.current()

    def current(self) -> list[dict] | None:
        """The namespace's Leases as the watch holds them now (None while it has never listed): where a sync
        request is read, which needs no proof of freshness (the watch delivers the annotation that woke us)."""
        if not self._watch.synced.is_set():
            return None
        return list(self._watch.held(self.namespace).values())


class LeaseWatches:
    """One LeaseWatch per (API client, namespace) key of an election loop's listings."""

    def __init__(self, places: dict[tuple[int, str], tuple[Cluster, str]], identity: str,
                 wake: Callable[[], None]) -> None:
        self.watches = {key: LeaseWatch(cluster, namespace, identity, wake)
                        for key, (cluster, namespace) in places.items()}
        self.started = False

    def start(self) -> None:
        self.started = True
        for watch in self.watches.values():
            watch.start()

    def stop(self) -> None:
        for watch in self.watches.values():
            watch.stop()

    def leases(self, key: tuple[int, str], written: str | None) -> list[dict] | None:
        """A watch's Leases as fresh as `written` (None: no write to prove it by, or not started: LIST)."""
        watch = self.watches.get(key)
        if not self.started or watch is None or not written:
            return None
        return watch.leases(written)

    def current(self) -> dict[tuple[int, str], list[dict]] | None:
        """Every watch's Leases as it holds them now, by key; None when one has not started or never listed."""
        if not self.started:
            return None
        held: dict[tuple[int, str], list[dict]] = {}
        for key, watch in self.watches.items():
            leases = watch.current()
            if leases is None:
                return None
            held[key] = leases
        return held
