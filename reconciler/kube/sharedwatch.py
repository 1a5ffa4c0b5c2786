"""One watch per kind per cluster, shared by every environment the daemon reconciles there.

Without it each environment watches each kind in each namespace it uses, so a fleet of 100 environments
holds hundreds of watches (a connection and a thread each) to one API server. The hub keeps one
cluster-wide LIST + WATCH per kind, label-selected on the owner label (any value), and hands each
environment's LiveCache the events of its own objects. It does so only where the API server says it may:

- the hub's identity (the daemon's) must be allowed to list and watch the kind in every namespace; where
  it is not (the least-privilege RBAC of deploy/), the environment watches as its stacks' accounts, as
  without a hub;
- a stack's LIST is answered from the shared watch only if the stack's account may list that kind in
  that namespace itself (kube.access), so a stack never sees through the cache what its RBAC hides.
"""

from __future__ import annotations

import threading
import time

from reconciler.errors import ClusterError
from reconciler.kube.access import AccessCheck
from reconciler.kube.cluster import Cluster
from reconciler.kube.livecache import KindWatch, LiveCache, LiveEvent, WatchKey


class WatchHub:
    """The shared watches of one API server and the environments' caches listening to them."""

    def __init__(self, cluster: Cluster, label: str, manager: str, *, resync_s: float = 600.0,
                 watch_timeout_s: int = 55, stall_s: float = 75.0, access: AccessCheck | None = None) -> None:
        self.cluster = cluster
        self.label = label
        self.manager = manager
        self.selector = label  # every owner's objects: the caches pick their own
        self.resync_s, self.watch_timeout_s, self.stall_s = resync_s, watch_timeout_s, stall_s
        self.access = access or AccessCheck(cluster)
        self.watches: dict[tuple[str, str], KindWatch] = {}
        self._listeners: dict[tuple[str, str], dict[LiveCache, set[str]]] = {}  # kind -> cache -> its namespaces
        self._lock = threading.Lock()

    def source(self, cache: LiveCache, key: WatchKey, user: str | None) -> "SharedSource | None":
        """`key` for `cache`, read from this hub's watch of its kind; None when the hub may not watch that
        kind cluster-wide, `user` (the stack's account) may not list it there, or `key` names no namespace
        of a namespaced kind: then the cache watches it itself."""
        try:
            if key.namespace == "" and self.cluster.resource(key.api_version, key.kind).namespaced:
                return None
        except ClusterError:
            return None  # a kind not served (yet): the cache's own watch waits for it
        if not self.may_watch(key.api_version, key.kind):
            return None
        source = SharedSource(self, cache, key)
        return source if source.may_list(user) else None

    def may_watch(self, api_version: str, kind: str) -> bool:
        return all(self.access.allowed(None, api_version, kind, "", verb) for verb in ("list", "watch"))

    def attach(self, cache: LiveCache, key: WatchKey) -> KindWatch:
        kind = (key.api_version, key.kind)
        with self._lock:
            if kind not in self.watches:
                self.watches[kind] = KindWatch(self, WatchKey(key.api_version, key.kind, ""))
                self.watches[kind].start()
            self._listeners.setdefault(kind, {}).setdefault(cache, set()).add(key.namespace)
            return self.watches[kind]

    def detach(self, cache: LiveCache, key: WatchKey) -> None:
        kind = (key.api_version, key.kind)
        with self._lock:
            listeners = self._listeners.get(kind, {})
            listeners.get(cache, set()).discard(key.namespace)
            if not listeners.get(cache, True):
                listeners.pop(cache)
            if not listeners and kind in self.watches:
                self._listeners.pop(kind, None)
                self.watches.pop(kind).stop()

    def publish(self, event: LiveEvent, previous: dict | None = None) -> None:
        """A change seen by a shared watch: to each cache that watches its namespace and owns the object."""
        with self._lock:
            listeners = [cache for cache, namespaces in self._listeners.get((event.key.api_version, event.key.kind),
                                                                            {}).items()
                         if event.key.namespace in namespaces]
        for cache in listeners:
            if cache.owns(event.object or previous):
                cache.publish(event, previous)

    def stop(self) -> None:
        with self._lock:
            watches, self.watches, self._listeners = list(self.watches.values()), {}, {}
        for watch in watches:
            watch.stop()


class SharedSource:
    """One cache's key read from the hub's watch of its kind: what a KindWatch of its own would offer."""

    def __init__(self, hub: WatchHub, cache: LiveCache, key: WatchKey) -> None:
        self.hub, self.cache, self.key = hub, cache, key
        self.watch: KindWatch | None = None

    @property
    def synced(self) -> threading.Event:
        return self.watch.synced if self.watch is not None else threading.Event()

    @property
    def events(self) -> int:
        return self.watch.events if self.watch is not None else 0

    @property
    def relists(self) -> int:
        return self.watch.relists if self.watch is not None else 0

    def start(self) -> None:
        """Listen, then hand the cache what the watch already holds of its objects, as a first LIST would:
        events from before this cache listened count as changes it has not seen (drift, settled stacks)."""
        self.watch = self.hub.attach(self.cache, self.key)
        for name, obj in list(self.held(self.key.namespace).items()):
            if self.cache.owns(obj):
                self.cache.publish(LiveEvent(self.key, "RELISTED", name, obj, time.time()))

    def stop(self) -> None:
        self.hub.detach(self.cache, self.key)

    def held(self, namespace: str) -> dict[str, dict]:
        return self.watch.held(namespace) if self.watch is not None else {}

    def owned(self, namespace: str, owner: str) -> dict[str, dict]:
        return self.watch.owned(namespace, owner) if self.watch is not None else {}

    def may_list(self, user: str | None) -> bool:
        """Whether `user` (a stack's account; None: the daemon) could LIST this key itself."""
        return user is None or self.hub.access.allowed(user, self.key.api_version, self.key.kind,
                                                       self.key.namespace, "list")


__all__ = ["SharedSource", "WatchHub"]
