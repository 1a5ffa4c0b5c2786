"""Leases (`coordination.k8s.io/v1`): one implementation of client-go's leader-election rules, used by
an environment's writer lease (a pass, a `sync`, a live correction) and by the daemon's leader
election and membership alike.

The rules, as client-go's `leaderelection` has them:

- **Expiry is judged on the observer's own monotonic clock.** Another holder's lease is expired only
  when its record (holder, renew and acquire times, duration, transitions) has not changed for the
  lease's duration since this observer *saw it change*. Nobody's wall clock is compared with
  anybody's: a replica whose clock runs a minute fast cannot steal a lease that is being renewed.
  The price: a lease abandoned by a killed holder is taken over one duration after a new observer
  first sees it (a released lease, holder empty, is free at once).
- **A holder is valid only until the renew deadline after its last successful renewal began**, and
  the deadline is shorter than the duration: a renewal that blocks (a frozen API server, a cut
  network) stops the holder's writes before anyone else's observation can expire, whatever the
  blocked call does later.
- Every write carries the resourceVersion it read: two writers never both win a round.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from reconciler.errors import ClusterError
from reconciler.kube.cluster import ApiError, Cluster, ensure_namespace

LEASE_API = "coordination.k8s.io/v1"
DEFAULT_DURATION_S = 15.0
"""How long a Lease outlives a holder that stopped renewing, unless told otherwise (client-go's default)."""
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "healthflow-reconciler")
WRITER_LABEL = ("reconciler.healthflow.io/writer", "true")
ELECTION_SELECTOR = f"!{WRITER_LABEL[0]}"
"""Every Lease this package writes carries the first label, writer leases the second as well. The election
reads every Lease of its namespace but those (one per environment, written by every pass, none of its
business); a Lease without labels, as versions before them wrote, is still read, as before."""
HEARTBEAT_ANNOTATION = "reconciler.healthflow.io/heartbeat"
"""On a writer lease taken by a daemon replica with leader election: `<namespace>/<name>` of its heartbeat
Lease on that cluster. Its passes stop when that heartbeat's term ends (they stop when its leadership
does), so once the heartbeat has been silent for its lease duration the writer lease is free, however
long the lease's own record says it lasts (daemon/leader.py keeps watching the heartbeats)."""
UNREAD: Any = object()
"""A round's `seen` when nobody read the lease for it: the round reads it."""


def micro_time(moment: datetime) -> str:
    """MicroTime as the API server parses it (always six fractional digits, UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record_key(lease: dict) -> tuple:
    """What a renewal changes (not the resourceVersion: a sync-request annotation is not a renewal)."""
    spec = lease.get("spec") or {}
    return (spec.get("holderIdentity") or "", spec.get("leaseDurationSeconds"), spec.get("acquireTime"),
            spec.get("renewTime"), spec.get("leaseTransitions"))


class LeaseObserver:
    """When this process saw each lease's record change, on its monotonic clock (client-go's observedTime)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: dict[str, tuple[tuple, float]] = {}
        self._lock = threading.Lock()

    def observe(self, lease: dict) -> float:
        """Record `lease` as read now; seconds since its record last changed, as far as we have seen."""
        name = f"{(lease.get('metadata') or {}).get('namespace')}/{(lease.get('metadata') or {}).get('name')}"
        key, now = _record_key(lease), self.clock()
        with self._lock:
            seen = self._seen.get(name)
            if seen is None or seen[0] != key:
                self._seen[name] = seen = (key, now)
        return now - seen[1]

    def expired(self, where: str) -> bool:
        """Whether the lease `<namespace>/<name>`, as last observed, has been unchanged for the duration its
        record states (False when never observed here: nothing is known of it)."""
        with self._lock:
            seen = self._seen.get(where)
        if seen is None or not seen[0][1]:
            return False
        return self.clock() - seen[1] >= float(seen[0][1])

    def held_by(self, lease: dict, identity: str) -> str:
        """The holder of a live lease that is someone else's and not expired for us ('' when free or ours)."""
        holder = _record_key(lease)[0]
        unchanged_for = self.observe(lease)
        if not holder or holder == identity:
            return ""
        return holder if unchanged_for < _lease_duration(lease) else ""


class Lease:
    """One Lease object, as one identity: rounds of acquire-or-renew, validity, release."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, identity: str, *,
                 duration_s: float = DEFAULT_DURATION_S,
                 renew_deadline_s: float | None = None, observer: LeaseObserver | None = None,
                 labels: dict[str, str] | None = None) -> None:
        self.cluster, self.namespace, self.name, self.identity = cluster, namespace, name, identity
        self.labels = {**dict([MANAGED_BY_LABEL]), **(labels or {})}
        self.annotations: dict[str, str] = {}  # written with every write of ours (others' are dropped)
        self.duration_s = duration_s
        self.renew_deadline_s = renew_deadline_s if renew_deadline_s is not None else duration_s * 2 / 3
        self.observer = observer or LeaseObserver()
        self.record: dict | None = None  # the lease as last read or written
        self.previous: dict | None = None  # as the last round read it, before writing (its annotations)
        self._valid_until = 0.0
        self._lapses = 0
        self._term = 0
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def is_held(self) -> bool:
        with self._lock:
            return self.observer.clock() < self._valid_until

    def try_acquire_or_renew(self, seen: Any = UNREAD) -> str:
        """One round. '' when this identity holds the lease afterwards; else the live holder's identity.
        `seen`: the lease as a LIST just read it (None: there is none), used instead of a GET of its own.
        It is observed when this round runs, a little after the LIST; had the holder renewed in between,
        the write carries the listed resourceVersion and fails (409), as after any read.
        ApiError other than a lost race, and ClusterError (unreachable), propagate."""
        started = self.observer.clock()
        if self._renew_held(started):
            return ""
        if seen is UNREAD:
            live = self.read()
        else:
            live = self.record = seen
        self.previous = live
        if live is None:
            ensure_namespace(self.cluster, self.namespace)
            return self._won(started, lambda: self.cluster.create(self._body(None, self.identity, self.duration_s)))
        holder = self.observer.held_by(live, self.identity)
        if holder:
            self._set_valid(0.0)
            return holder
        return self._won(started, lambda: self.cluster.replace(self._body(live, self.identity, self.duration_s)))

    def _renew_held(self, started: float) -> bool:
        """client-go's fast path: a holder still valid writes over the record it last wrote, with no read
        first (one request a renewal, not two). Anyone's write since (a sync request annotated on the
        lease, a takeover) makes it a 409, and the round reads the lease as usual."""
        if not self.is_held() or self.record is None or _record_key(self.record)[0] != self.identity:
            return False
        try:
            record = self.cluster.replace(self._body(self.record, self.identity, self.duration_s))
        except ApiError:
            return False
        self.record, self.previous = record, None
        self.observer.observe(record)
        self._set_valid(started + self.renew_deadline_s)
        return True

    def take_over(self) -> str:
        """Write over the record last read, as this identity, though its holder's own record says it is live
        (the caller knows better: a silent heartbeat). '' when taken; a 409 (written since) names who holds it."""
        started = self.observer.clock()
        return self._won(started, lambda: self.cluster.replace(self._body(self.record, self.identity,
                                                                          self.duration_s)))

    def try_take_back(self) -> bool:
        """After our own release: one write, without a read, wins unless someone wrote the lease since."""
        if self.record is None or _record_key(self.record)[0]:
            return False
        started = self.observer.clock()
        return not self._won(started, lambda: self.cluster.replace(self._body(self.record, self.identity,
                                                                               self.duration_s)))

    def _won(self, started: float, write: Callable[[], dict]) -> str:
        try:
            self.record = write()
        except ApiError as exc:
            if exc.status != 409:  # 409: another writer wrote between our read and write
                raise
            self._set_valid(0.0)
            live = self.read() or {}
            return _record_key(live)[0] or "another writer"
        self.observer.observe(self.record)
        self._set_valid(started + self.renew_deadline_s)
        return ""

    def release(self) -> None:
        """Give the lease up (holder empty, duration 1 s), so the next holder need not wait; best effort. A
        conflict is read again: a lease still ours (only annotated since) is released over the fresh record,
        as a claim vouched for by a live heartbeat would otherwise stay led by nobody."""
        self._set_valid(0.0)
        if self.record is None or _record_key(self.record)[0] != self.identity:
            return
        for attempt in range(2):
            try:
                self.record = self.cluster.replace(self._body(self.record, "", 1))
                return
            except ApiError as exc:
                if exc.status != 409 or attempt:
                    return  # refused, or lost twice: it expires by itself (or a heartbeat's round disowns it)
            except ClusterError:
                return  # unreachable: it expires by itself
            try:  # 409: written since (a sync request annotated on it, or a takeover): still ours?
                live = self.read()
            except ClusterError:
                return
            if _record_key(live or {})[0] != self.identity:
                return  # someone else took it meanwhile

    def _set_valid(self, until: float) -> None:
        with self._lock:
            if until > 0 and 0 < self._valid_until < self.observer.clock():
                self._lapses += 1  # renewed, but after the validity it had ran out: meanwhile it was not held
            if until > 0 and self._valid_until < self.observer.clock():
                self._term += 1
            self._valid_until = until

    def held_term(self) -> int | None:
        """Which uninterrupted holding this is, None while not held (one more each time the lease is held
        again after it was not): a claim vouched for by this lease (daemon.leader's heartbeat) is valid
        while this stays the term it was made in."""
        with self._lock:
            return self._term if self.observer.clock() < self._valid_until else None

    def take_lapses(self) -> int:
        """How many times the lease ran out before a renewal landed, since last asked (writes that stop on
        `is_held` may have stopped then, though the renewal kept the lease)."""
        with self._lock:
            lapses, self._lapses = self._lapses, 0
            return lapses

    def read(self) -> dict | None:
        self.record = self.cluster.get(LEASE_API, "Lease", self.namespace, self.name) or None
        return self.record

    def _body(self, live: dict | None, holder: str, duration_s: float) -> dict[str, Any]:
        now = micro_time(datetime.now(timezone.utc))
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace,
                                    "labels": dict(self.labels)}
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        spec = (live or {}).get("spec") or {}
        if live is not None:
            metadata["resourceVersion"] = live["metadata"]["resourceVersion"]  # optimistic concurrency
        taken = holder and spec.get("holderIdentity") != holder
        return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": metadata,
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": max(1, int(round(duration_s))),
                         "acquireTime": now if taken or not spec.get("acquireTime") else spec["acquireTime"],
                         "renewTime": now,
                         "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (1 if taken and live else 0)}}


def renewed_ago(lease: dict | None) -> float | None:
    """Seconds since the record's renewTime by this machine's wall clock: for messages, and as a hint that a
    holder may be gone (never to decide that it is: a skewed clock would)."""
    spec = (lease or {}).get("spec") or {}
    text = spec.get("renewTime") or spec.get("acquireTime")
    if not text:
        return None
    return (datetime.now(timezone.utc) - datetime.fromisoformat(text.replace("Z", "+00:00"))).total_seconds()


def _lease_duration(lease: dict | None) -> float:
    """The holder's lease duration as its record states it (0 when it states none)."""
    return float(((lease or {}).get("spec") or {}).get("leaseDurationSeconds") or 0)


class LeaseHeld(ClusterError):
    """Another writer holds the environment's writer lease."""

    def __init__(self, where: str, holder: str, renewed_s_ago: float | None) -> None:
        ago = f", renewed {max(0.0, renewed_s_ago):.0f}s ago" if renewed_s_ago is not None else ""
        super().__init__(f"another writer is syncing this environment: lease {where} is held by {holder}{ago}",
                         fix="wait for it to finish and try again, or pass --wait to queue behind it")
        self.holder = holder


class WriterLease:
    """An environment's writer lease: `acquire()` before the first write, `release()` after the last;
    `lost()` turns true once the holder can no longer be sure it holds it (see the module docstring)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, identity: str,
                 duration_s: float = DEFAULT_DURATION_S,
                 observer: LeaseObserver | None = None, heartbeat: str = "",
                 expired: Callable[[str], bool] | None = None) -> None:
        """`heartbeat`: `<namespace>/<name>` of this writer's heartbeat, named on the lease
        (HEARTBEAT_ANNOTATION); `expired`: whether another holder's named heartbeat has been silent for its
        lease duration (a daemon replica's election knows): such a holder's lease is taken at once."""
        self.lease = Lease(cluster, namespace, name, identity, duration_s=duration_s, observer=observer,
                           labels=dict([WRITER_LABEL]))
        self.identity, self.duration_s = identity, duration_s
        self._expired: Callable[[str], bool] | None = None
        self.vouched_by(heartbeat, expired)
        self._stop = threading.Event()
        self._stop.set()
        self._renewer: threading.Thread | None = None

    @property
    def where(self) -> str:
        return self.lease.where

    def acquire(self, wait_s: float | None = 0.0, on_wait: Callable[[str], None] | None = None,
                should_stop: Callable[[], bool] = lambda: False, poll_s: float = 1.0) -> None:
        """Take the lease; wait up to `wait_s` seconds (None: as long as it takes) while another writer holds
        it. A holder that stopped renewing (its record unchanged while we watch) is waited out for one
        lease duration whatever `wait_s` says: its own (the record's leaseDurationSeconds, a daemon's
        --lease-duration), which is how long its lease lasts."""
        start = time.monotonic()
        deadline = None if wait_s is None else start + wait_s
        told = False
        while not self.lease.try_take_back():
            holder = self.lease.try_acquire_or_renew()
            if holder and self._holders_heartbeat_expired():
                holder = self.lease.take_over()
            if not holder:
                break
            ago = renewed_ago(self.lease.record)
            lasts = _lease_duration(self.lease.record) or self.duration_s
            limit = deadline
            if limit is not None and ago is not None and ago > lasts:  # looks abandoned: wait it out
                limit = max(limit, start + lasts + 2 * poll_s)
            if should_stop() or (limit is not None and time.monotonic() >= limit):
                raise LeaseHeld(self.where, holder, ago)
            if on_wait is not None and not told:
                on_wait(holder)
                told = True
            threading.Event().wait(poll_s)  # not time.sleep: libfaketime fails it under a skewed wall clock
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.lease.name}", daemon=True)
        self._renewer.start()

    def vouched_by(self, heartbeat: str, expired: Callable[[str], bool] | None) -> None:
        """Name this writer's heartbeat on the lease from its next write, and judge others' by `expired`."""
        self.lease.annotations = {HEARTBEAT_ANNOTATION: heartbeat} if heartbeat else {}
        self._expired = expired

    def _holders_heartbeat_expired(self) -> bool:
        metadata = (self.lease.record or {}).get("metadata") or {}
        heartbeat = (metadata.get("annotations") or {}).get(HEARTBEAT_ANNOTATION)
        return bool(heartbeat and self._expired is not None and self._expired(heartbeat))

    def lost(self) -> bool:
        return not self._stop.is_set() and not self.lease.is_held()

    def release(self) -> None:
        """Give the lease up now; once per acquire (a second call writes nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(5)
        if self.lease.is_held():
            self.lease.release()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.duration_s / 3):
            try:
                if self.lease.try_acquire_or_renew():
                    return  # someone else holds it: lost() is true from now on
            except ClusterError:
                continue  # lost() turns true by itself at the renew deadline
