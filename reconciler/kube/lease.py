"""A `coordination.k8s.io/v1` Lease held while one writer works on an environment.

Why: a `reconciler sync` from a laptop, a daemon's pass, and a second daemon without leader
election could otherwise apply and prune different commits against each other. Every writer takes
the environment's writer lease before its first write and gives it up after its last; a second
writer waits, or fails naming the holder. The holder renews every third of the lease duration, so
a writer that was killed frees the environment within one duration; a writer that could not renew
in time (frozen, cut off) learns it lost the lease and stops between two objects.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from reconciler.errors import ClusterError
from reconciler.kube.cluster import ApiError, Cluster, ensure_namespace

LEASE_API = "coordination.k8s.io/v1"


def micro_time(moment: datetime) -> str:
    """MicroTime as the API server parses it (always six fractional digits, UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_since_renewal(spec: dict, now: datetime | None = None) -> float | None:
    """How long ago the holder last renewed (None: never)."""
    renewed = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    if renewed is None:
        return None
    return ((now or datetime.now(timezone.utc)) - renewed).total_seconds()


class LeaseHeld(ClusterError):
    """Another writer holds the environment's writer lease."""

    def __init__(self, where: str, holder: str, renewed_ago: float | None) -> None:
        ago = f", renewed {renewed_ago:.0f}s ago" if renewed_ago is not None else ""
        super().__init__(f"another writer is syncing this environment: lease {where} is held by {holder}{ago}",
                         fix="wait for it to finish and try again, or pass --wait to queue behind it")
        self.holder = holder


class WriterLease:
    """Acquire with `acquire()`, give up with `release()`; `lost()` turns true if renewal failed."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, identity: str, duration_s: float = 15.0) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.identity = identity
        self.duration_s = duration_s
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._held: dict | None = None  # the lease as we last wrote it: release needs no read

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def acquire(self, wait_s: float | None = 0.0, on_wait: Callable[[str], None] | None = None,
                should_stop: Callable[[], bool] = lambda: False, poll_s: float = 1.0) -> None:
        """Take the lease; wait up to `wait_s` seconds (None: as long as it takes) while another writer holds it."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        told = False
        while True:
            held = self._try_take()
            if held is None:
                break
            if should_stop() or (deadline is not None and time.monotonic() >= deadline):
                raise held
            if on_wait is not None and not told:
                on_wait(held.holder)
                told = True
            time.sleep(poll_s)
        self._stop, self._lost = threading.Event(), threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True)
        self._renewer.start()

    def lost(self) -> bool:
        return self._lost.is_set()

    def release(self) -> None:
        """Give the lease up now, so the next writer need not wait for it to expire; best effort."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(5)
        if self._held is None or self.lost():
            self._held = None
            return
        try:
            self._write(self._held, holder="", duration_s=1)  # a 409: someone took it meanwhile, nothing to give up
        except ClusterError:
            self._held = None  # it expires by itself within one duration

    def _try_take(self) -> LeaseHeld | None:
        """None when we hold the lease now; the LeaseHeld to raise when another live writer does."""
        if self._held is not None:  # we gave it up last: taking it back is one write, unless someone wrote since
            try:
                self._write(self._held, holder=self.identity, duration_s=self.duration_s)
                return None
            except ApiError as exc:
                if exc.status != 409:
                    raise
                self._held = None
        live = self._read()
        try:
            if live is None:
                ensure_namespace(self.cluster, self.namespace)
                self._held = self.cluster.create(self._body(None, self.identity, self.duration_s))
                return None
            spec = live.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            ago = seconds_since_renewal(spec)
            if holder and holder != self.identity and ago is not None and ago <= float(spec.get("leaseDurationSeconds") or 0):
                return LeaseHeld(self.where, holder, ago)
            self._write(live, holder=self.identity, duration_s=self.duration_s)
            return None
        except ApiError as exc:
            if exc.status == 409:  # another writer took it between our read and write
                return self._try_take_after_race()
            raise

    def _try_take_after_race(self) -> LeaseHeld:
        spec = (self._read() or {}).get("spec") or {}
        return LeaseHeld(self.where, spec.get("holderIdentity") or "another writer", seconds_since_renewal(spec))

    def _renew_loop(self) -> None:
        last_renewal = time.monotonic()
        while not self._stop.wait(self.duration_s / 3):
            try:
                self._write(self._held or {}, holder=self.identity, duration_s=self.duration_s)
                last_renewal = time.monotonic()
            except ApiError as exc:
                if exc.status == 409:  # someone else wrote the lease: it expired while we could not renew
                    self._lost.set()
                    return
            except ClusterError:
                if time.monotonic() - last_renewal > self.duration_s * 2 / 3:
                    self._lost.set()  # another writer may take it over soon: stop before it can
                    return

    def _read(self) -> dict | None:
        return self.cluster.get(LEASE_API, "Lease", self.namespace, self.name)

    def _write(self, live: dict, holder: str, duration_s: float) -> None:
        self._held = self.cluster.replace(self._body(live, holder, duration_s))

    def _body(self, live: dict | None, holder: str, duration_s: float) -> dict[str, Any]:
        now = micro_time(datetime.now(timezone.utc))
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace,
                                    "labels": {"app.kubernetes.io/managed-by": "healthflow-reconciler"}}
        spec = (live or {}).get("spec") or {}
        if live is not None:
            metadata["resourceVersion"] = live["metadata"]["resourceVersion"]  # optimistic concurrency
        taken = holder and spec.get("holderIdentity") != holder
        return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": metadata,
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": max(1, int(round(duration_s))),
                         "acquireTime": now if taken or not spec.get("acquireTime") else spec["acquireTime"],
                         "renewTime": now,
                         "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (1 if taken and live else 0)}}
