"""A live-state cache: LIST + WATCH of exactly the kinds and namespaces an environment manages.

One watch per (apiVersion, kind, namespace), label-selected on the owner label's values of the
environment's stacks (`owner in (env.a, env.b, ...)`), so nothing else in the cluster is read or
kept. Each watch lists once, then follows events from that resourceVersion with bookmarks; a `410
Gone` relists, a broken or stalled connection reconnects with backoff, and a periodic relist is the
safety net. Objects are kept without other managers' managedFields and without kubectl's
last-applied annotation: what plan, health and drift read, and no more.

`Cluster.list` is served from here when a synced watch covers the request, so a pass on a warm
cache makes no LIST; subscribers get every change (the daemon's drift-on-events), and
`wait_for_change` lets a health wait end on the event instead of a poll.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import urllib3
from kubernetes.client.rest import ApiException

from reconciler.errors import ClusterError
from reconciler.kube.cluster import ApiError, Cluster, UnknownKind, api_error
from reconciler.kube.echoes import WriteEchoes, owner_of, resource_version
from reconciler.logs import get_logger

log = get_logger("reconciler.kube.livecache")

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True, order=True)
class WatchKey:
    api_version: str
    kind: str
    namespace: str  # "" for cluster-scoped kinds (and all namespaces)


@dataclass(frozen=True)
class LiveEvent:
    """One change seen by a watch: `object` is None for a deletion."""

    key: WatchKey
    type: str  # ADDED, MODIFIED, DELETED, RELISTED
    name: str
    object: dict | None
    seen_at: float  # time.time() when the event arrived
    status_only: bool = False  # only its status changed (a controller reporting): no field of ours moved


def slim(obj: dict, manager: str) -> dict:
    """The object as the cache keeps it: other managers' managedFields and last-applied dropped."""
    meta = dict(obj.get("metadata") or {})
    meta["managedFields"] = [m for m in meta.get("managedFields") or [] if m.get("manager") == manager]
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**obj, "metadata": meta}


def watch_events(cluster: Cluster, key: WatchKey, label_selector: str, resource_version: str, *,
                 timeout_s: int = 55, stall_s: float = 75.0) -> Iterator[dict]:
    """Watch events (`{"type", "object"}`) from `resource_version`, bookmarks included, until the server
    ends the watch (after `timeout_s`). No byte for `stall_s` raises ClusterError: a stalled watch."""
    resource = cluster.resource(key.api_version, key.kind)
    query: list[tuple[str, Any]] = [("watch", "true"), ("allowWatchBookmarks", "true"),
                                    ("resourceVersion", resource_version), ("timeoutSeconds", timeout_s)]
    if label_selector:
        query.append(("labelSelector", label_selector))
    cluster.count("watch")
    path = resource.path(key.namespace if resource.namespaced and key.namespace else None)
    try:
        headers = {"Accept": "application/json", **({"Impersonate-User": cluster.user} if cluster.user else {})}
        request = cluster.api_client.param_serialize("GET", path, query_params=query, header_params=headers,
                                                     auth_settings=["BearerToken"])
        # A stall is not sent again by urllib3 (kube.cluster.CONNECTION_RETRIES, the client's): this loop's
        # caller reconnects, with backoff.
        response = cluster.api_client.call_api(*request, _request_timeout=(5, stall_s))
        if not 200 <= response.status <= 299:
            raise api_error("GET", path, response.status, response.read(), response.reason)
        for line in response.response:
            if line.strip():
                yield json.loads(line)
    except ApiException as exc:
        raise api_error("GET", path, int(exc.status or 0), exc.body, exc.reason) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterError(f"watch of {key.kind} at {cluster.server} broke: {exc.__class__.__name__}") from exc


_VOLATILE = frozenset({"resourceVersion", "managedFields"})


def _status_only(before: dict | None, after: dict) -> bool:
    """`after` differs from `before` in its status alone (and the bookkeeping every write changes)."""
    if before is None:
        return False
    strip = (lambda o: {k: ({mk: mv for mk, mv in v.items() if mk not in _VOLATILE} if k == "metadata" else v)
                        for k, v in o.items() if k != "status"})
    return strip(before) == strip(after)


class KindWatch:
    """LIST + WATCH of one kind in one namespace (or, shared, in all of them: kube.sharedwatch): the latest
    object of each name, kept current. `sink` says what to select and hears every change (`publish`)."""

    def __init__(self, sink: "LiveCache | Any", key: WatchKey, cluster: Cluster | None = None) -> None:
        self.cache = sink
        self.key = key
        self.cluster = cluster or sink.cluster  # a stack's account (impersonated) watches what that stack applies
        self.objects: dict[str, dict[str, dict]] = {}  # namespace ("" cluster-scoped) -> name -> object
        self._owned: dict[tuple[str, str], dict[str, dict]] = {}  # (namespace, owner label value) -> name -> object
        self.synced = threading.Event()
        self.resource_version = ""
        self.relists = 0
        self.events = 0
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{key.kind}-{key.namespace or 'all'}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def held(self, namespace: str) -> dict[str, dict]:
        """The objects in one namespace, by name (do not change the dict: it is the watch's own)."""
        return self.objects.get(namespace, {})

    def owned(self, namespace: str, owner: str) -> dict[str, dict]:
        """The objects in one namespace whose owner label value is `owner`, by name (the watch's own dict).
        Why an index: a stack's LIST is answered from here, and the stacks of an environment often share a
        namespace: reading all of it for each stack's few objects was 4.8% of a daemon's samples (py-spy, holding
        the GIL) in a fan-out of 100 environments."""
        return self._owned.get((namespace, owner), {})

    def count(self) -> int:
        return sum(len(names) for names in list(self.objects.values()))

    def _index(self, namespace: str, name: str, before: dict | None, after: dict | None) -> None:
        """Keep `owned` current for one object's change (None: absent before, or after)."""
        label = self.cache.label
        if before is not None:
            bucket = self._owned.get((namespace, owner_of(before, label)), {})
            bucket.pop(name, None)
        if after is not None:
            self._owned.setdefault((namespace, owner_of(after, label)), {})[name] = after

    def _run(self) -> None:
        failures, listed_at = 0, time.monotonic()
        while not self._stop.is_set():
            try:
                if not self.resource_version or time.monotonic() - listed_at > self.cache.resync_s:
                    self._relist()
                    listed_at = time.monotonic()
                self._follow()
                failures = 0
            except ApiError as exc:
                if exc.status == 410:  # our resourceVersion is too old: start again from a fresh LIST
                    self.resource_version = ""
                    continue
                failures += 1
                log.warning("watch failed", kind=self.key.kind, namespace=self.key.namespace, error=str(exc))
            except UnknownKind:
                failures += 1  # the CRD is not there (yet): look again later
            except ClusterError as exc:
                failures += 1
                log.info("watch reconnecting", kind=self.key.kind, namespace=self.key.namespace, error=str(exc))
            if failures:
                self.reconnects += 1
                self._stop.wait(min(30.0, 0.2 * 2 ** min(failures, 8)) * (0.5 + random.random() / 2))

    def _key_of(self, obj: dict) -> WatchKey:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        return self.key if namespace == self.key.namespace else WatchKey(self.key.api_version, self.key.kind, namespace)

    def _relist(self) -> None:
        items, version = self.cluster.list_with_version(
            self.key.api_version, self.key.kind, self.key.namespace or None, self.cache.selector)
        fresh: dict[str, dict[str, dict]] = {}
        owned: dict[tuple[str, str], dict[str, dict]] = {}
        for item in items:
            namespace, name = self._key_of(item).namespace, item["metadata"]["name"]
            kept = slim(item, self.cache.manager)
            fresh.setdefault(namespace, {})[name] = kept
            owned.setdefault((namespace, owner_of(kept, self.cache.label)), {})[name] = kept
        before, self.objects, self._owned, self.resource_version = self.objects, fresh, owned, version
        self.relists += 1
        self.synced.set()
        for namespace, names in before.items():  # deleted while we were not watching
            key = WatchKey(self.key.api_version, self.key.kind, namespace)
            for name in set(names) - set(fresh.get(namespace, {})):
                self.cache.publish(LiveEvent(key, "DELETED", name, None, time.time()), names[name])
        for namespace, names in fresh.items():  # changed while we were not watching
            key, held = WatchKey(self.key.api_version, self.key.kind, namespace), before.get(namespace, {})
            for name, obj in names.items():
                if resource_version(held.get(name)) != resource_version(obj):
                    self.cache.publish(LiveEvent(key, "RELISTED", name, obj, time.time()))

    def _follow(self) -> None:
        for event in watch_events(self.cluster, self.key, self.cache.selector, self.resource_version,
                                  timeout_s=self.cache.watch_timeout_s, stall_s=self.cache.stall_s):
            if self._stop.is_set():
                return
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                raise ApiError(f"watch of {self.key.kind}: {obj.get('message', '')}", status=int(obj.get("code") or 0))
            self.resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or self.resource_version)
            if kind == "BOOKMARK":
                continue
            obj.setdefault("apiVersion", self.key.api_version)
            obj.setdefault("kind", self.key.kind)
            self._take(str(kind), obj)

    def _take(self, kind: str, obj: dict) -> None:
        key, name = self._key_of(obj), obj["metadata"]["name"]
        held = self.objects.setdefault(key.namespace, {})
        self.events += 1
        if kind == "DELETED":
            gone = held.pop(name, obj)
            self._index(key.namespace, name, gone, None)
            self.cache.publish(LiveEvent(key, kind, name, None, time.time()), gone)
        else:
            previous, held[name] = held.get(name), slim(obj, self.cache.manager)
            self._index(key.namespace, name, previous, held[name])
            self.cache.publish(LiveEvent(key, kind, name, held[name], time.time(),
                                         status_only=_status_only(previous, held[name])))


class LiveCache:
    """The watches of one environment, what they hold, and who wants to hear about changes. With a `hub`
    (kube.sharedwatch), a kind the hub may watch cluster-wide is read from its shared watch instead of a
    watch of this environment's own; the rest (and everything without a hub) is watched here."""

    def __init__(self, cluster: Cluster, label: str, values: set[str], manager: str, *, resync_s: float = 600.0,
                 watch_timeout_s: int = 55, stall_s: float = 75.0, hub: Any = None) -> None:
        self.cluster = cluster
        self.label = label
        self.values = frozenset(values)
        self.manager = manager
        self.hub = hub
        self.resync_s, self.watch_timeout_s, self.stall_s = resync_s, watch_timeout_s, stall_s
        self.selector = f"{label} in ({','.join(sorted(values))})"
        self.watches: dict[WatchKey, Any] = {}  # a KindWatch of our own, or a kube.sharedwatch.SharedSource
        self._subscribers: list[Callable[[LiveEvent], None]] = []
        self._changed = threading.Condition()
        self._generation = 0
        self._echoes = WriteEchoes(label)
        self._lock = threading.Lock()

    def ensure(self, keys: set[WatchKey], views: dict[WatchKey, Cluster] | None = None) -> None:
        """Watch exactly `keys`: new kinds or namespaces start a watch, dropped ones stop theirs. `views`:
        the API server as whom to watch a key (a stack's service account); the cache's own otherwise."""
        with self._lock:
            for key in sorted(set(self.watches) - set(keys)):
                self.watches.pop(key).stop()
            for key in sorted(set(keys) - set(self.watches)):
                view = (views or {}).get(key)
                shared = self.hub.source(self, key, view.user if view else self.cluster.user) if self.hub else None
                self.watches[key] = shared or KindWatch(self, key, view)
                self.watches[key].start()

    def select(self, values: set[str]) -> None:
        """Select objects of these owner label values from now on (stacks added or removed in Git): our own
        watches restart with the new selector on the next `ensure`; shared ones hand over what they hold."""
        with self._lock:
            if frozenset(values) == self.values:
                return
            self.values = frozenset(values)
            self.selector = f"{self.label} in ({','.join(sorted(values))})"
            for key in sorted(self.watches):
                if isinstance(self.watches[key], KindWatch):
                    self.watches.pop(key).stop()
                else:
                    self.watches[key].start()  # the newly selected objects, as a watch's first LIST would

    def owns(self, obj: dict | None) -> bool:
        """Whether an object carries one of our owner label values (a shared watch holds everyone's)."""
        return owner_of(obj, self.label) in self.values

    def wait_synced(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(w.synced.wait(max(0.0, deadline - time.monotonic())) for w in list(self.watches.values()))

    def stop(self) -> None:
        self.ensure(set())

    def lookup(self, api_version: str, kind: str, namespace: str, selector: str, user: str | None = None
               ) -> list[dict] | None:
        """The cached objects for a LIST with `selector` (`label=value` of one of our values) made as `user`,
        or None when no synced watch covers it (or, shared, `user` may not list it) and the caller must ask
        the API server, whose answer is then its own."""
        key = WatchKey(api_version, kind, namespace)
        watch = self.watches.get(key)
        label, _, value = selector.partition("=")
        if label != self.label or value not in self.values:
            return None
        if watch is None or not watch.synced.is_set() or not self._echoes.caught_up(key, watch.held(namespace), value):
            return None
        if not isinstance(watch, KindWatch) and not watch.may_list(user):
            return None
        return [dict(o) for o in list(watch.owned(namespace, value).values())]

    def note_write(self, api_version: str, kind: str, namespace: str, name: str, resource_version: object,
                   labels: dict | None = None) -> None:
        """We just wrote this object (its `labels` as written): until its watch delivers that version, LISTs
        of its kind and owner go to the API server (a health check right after an apply must not see the
        state from before it)."""
        key = WatchKey(api_version, kind, namespace)
        if key in self.watches and str(resource_version or "").isdigit():
            self._echoes.noted(key, name, int(str(resource_version)), (labels or {}).get(self.label, ""))

    def subscribe(self, callback: Callable[[LiveEvent], None]) -> None:
        self._subscribers.append(callback)

    def publish(self, event: LiveEvent, previous: dict | None = None) -> None:
        owner = owner_of(event.object or previous, self.label)
        with self._changed:
            self._generation += 1
            self._echoes.count(event.type, event.key, event.name, event.object, owner)
            self._changed.notify_all()
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a subscriber's bug must not stop the watch
                log.exception("live-cache subscriber failed")

    def changes(self, owner: str) -> int:
        """How many changes the watches have seen on objects of one owner label value (a stack), our own
        writes coming back not counted (kube.echoes): a stack a pass applied and found clean stays settled."""
        return self._echoes.changes(owner)

    def covers(self, keys: set[WatchKey]) -> bool:
        """Whether synced watches hold every one of `keys`: only then may a pass trust the counters."""
        return all(key in self.watches and self.watches[key].synced.is_set() for key in keys)

    def wait_for_change(self, timeout_s: float) -> None:
        """Return at the next event, or after `timeout_s`: a health wait that ends on the event."""
        with self._changed:
            seen = self._generation
            self._changed.wait_for(lambda: self._generation != seen, timeout_s)

    def stats(self) -> dict[str, dict[str, int]]:
        """Objects, events and relists per kind (for metrics; a shared watch's events and relists are those
        of the whole cluster's watch of that kind)."""
        objects: Counter[str] = Counter()
        events: Counter[str] = Counter()
        relists: Counter[str] = Counter()
        for key, watch in list(self.watches.items()):
            objects[key.kind] += sum(1 for o in list(watch.held(key.namespace).values()) if self.owns(o)) \
                if not isinstance(watch, KindWatch) else watch.count()
            events[key.kind] += watch.events
            relists[key.kind] += watch.relists
        return {"objects": dict(objects), "events": dict(events), "relists": dict(relists)}
