"""Leader election per environment through a `coordination.k8s.io/v1` Lease.

Why per environment: several replicas can then share the environments between them, and a
replica applies to an environment only while it holds that environment's lease.

Safety rule: a replica considers itself leader only until `renew_deadline_s` after its last
successful renewal began, which is shorter than `lease_duration_s`, the time after which another
replica may take the lease over. So a replica cut off from the API server stops applying (the
engine's `should_stop` hook turns true) before anyone else can start.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.kube.cluster import Cluster, ensure_namespace
from reconciler.kube.lease import micro_time
from reconciler.logs import get_logger

log = get_logger("reconciler.daemon.leader")

SYNC_REQUEST_ANNOTATION = "healthflow.io/sync-requested"
"""Set on the Lease by a replica that got a trigger it cannot run; the holder runs it on its next renewal."""


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str = "healthflow-system"
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    name_prefix: str = "reconciler-"

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("need 0 < retry period < renew deadline < lease duration")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LeaseElector:
    """Acquires and renews one Lease. `try_acquire_or_renew` is one round; `is_leader` is local and cheap."""

    def __init__(self, api_client: Any, lease_name: str, identity: str, settings: LeaseSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._api = client.CoordinationV1Api(api_client)
        self.lease_name = lease_name
        self.identity = identity
        self.settings = settings
        self._clock = clock
        self._valid_until = 0.0
        self._lock = threading.Lock()
        self.sync_requests: list[str] = []

    def is_leader(self) -> bool:
        with self._lock:
            return self._clock() < self._valid_until

    def try_acquire_or_renew(self) -> bool:
        """One election round. Returns whether this replica leads afterwards; never raises on API errors."""
        started = self._clock()
        try:
            acquired = self._round()
        except ApiException as exc:
            if exc.status != 409:  # 409: someone else wrote first; we simply did not win this round
                log.warning("lease round failed", lease=self.lease_name, status=exc.status, reason=exc.reason)
            acquired = False
        except Exception as exc:  # API server unreachable: keep whatever validity we still have
            log.warning("lease round failed", lease=self.lease_name, error=str(exc))
            return self.is_leader()
        with self._lock:
            if acquired:
                self._valid_until = started + self.settings.renew_deadline_s
            else:
                self._valid_until = 0.0
        return acquired

    def _round(self) -> bool:
        try:
            return self._round_once()
        except ApiException as exc:
            if exc.status != 409:
                raise
            return self._round_once()  # the lease changed under us (e.g. a sync request): read it again

    def _round_once(self) -> bool:
        ns, name = self.settings.namespace, self.lease_name
        try:
            lease = self._api.read_namespaced_lease(name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._create_lease()
            return True
        spec = lease.spec
        holder = spec.holder_identity or ""
        if holder == self.identity:
            self._collect_sync_request(lease)
            self._api.replace_namespaced_lease(name, ns, self._body(lease, spec.lease_transitions or 0, acquire=False,
                                                                     acquired_at=spec.acquire_time))
            return True
        if holder and not self.expired(spec):
            return False
        self._api.replace_namespaced_lease(name, ns, self._body(lease, (spec.lease_transitions or 0) + 1, acquire=True))
        log.info("lease acquired", lease=name, previous_holder=holder or None)
        return True

    def _create_lease(self) -> None:
        """First round on a fresh cluster: the lease namespace may not exist yet, and only a leader would
        ever create it (through a pass), so the election creates it."""
        body = self._body(None, transitions=0, acquire=True)
        try:
            self._api.create_namespaced_lease(self.settings.namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            ensure_namespace(Cluster(self._api.api_client), self.settings.namespace)
            self._api.create_namespaced_lease(self.settings.namespace, body)
            log.info("lease namespace created", namespace=self.settings.namespace)

    def _collect_sync_request(self, lease: Any) -> None:
        annotations = lease.metadata.annotations or {}
        if SYNC_REQUEST_ANNOTATION in annotations:
            self.sync_requests.append(annotations[SYNC_REQUEST_ANNOTATION])  # the renewal below clears it

    def request_sync(self, payload: str) -> bool:
        """Ask the current holder to run a pass (a trigger that reached a replica that does not lead)."""
        patch = {"metadata": {"annotations": {SYNC_REQUEST_ANNOTATION: payload}}}
        try:
            self._api.patch_namespaced_lease(self.lease_name, self.settings.namespace, patch)
            return True
        except ApiException as exc:
            log.warning("forwarding sync request failed", lease=self.lease_name, status=exc.status)
            return False

    @staticmethod
    def expired(spec: Any) -> bool:
        """Whether a Lease's holder stopped renewing more than its duration ago (anyone may take it)."""
        renewed = spec.renew_time or spec.acquire_time
        if renewed is None:
            return True
        if renewed.tzinfo is None:
            renewed = renewed.replace(tzinfo=timezone.utc)
        return (_now() - renewed).total_seconds() > float(spec.lease_duration_seconds or 0)

    def _body(self, lease: Any, transitions: int, *, acquire: bool, acquired_at: datetime | None = None) -> dict:
        now = _now()
        metadata: dict[str, Any] = {"name": self.lease_name, "namespace": self.settings.namespace,
                                    "labels": {"app.kubernetes.io/managed-by": "healthflow-reconciler"}}
        if lease is not None:
            metadata["resourceVersion"] = lease.metadata.resource_version  # optimistic concurrency
        return {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, int(round(self.settings.lease_duration_s))),
                "acquireTime": micro_time(now if acquire or acquired_at is None else acquired_at),
                "renewTime": micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    def release(self) -> None:
        """Give the lease up at once (graceful shutdown), so another replica need not wait for it to expire."""
        with self._lock:
            self._valid_until = 0.0
        try:
            lease = self._api.read_namespaced_lease(self.lease_name, self.settings.namespace)
            if (lease.spec.holder_identity or "") != self.identity:
                return
            body = self._body(lease, lease.spec.lease_transitions or 0, acquire=False,
                              acquired_at=lease.spec.acquire_time)
            body["spec"]["holderIdentity"] = ""
            body["spec"]["leaseDurationSeconds"] = 1
            self._api.replace_namespaced_lease(self.lease_name, self.settings.namespace, body)
            log.info("lease released", lease=self.lease_name)
        except Exception as exc:  # best effort: the lease expires anyway
            log.warning("lease release failed", lease=self.lease_name, error=str(exc))

    def holder(self) -> str:
        try:
            return self._api.read_namespaced_lease(self.lease_name, self.settings.namespace).spec.holder_identity or ""
        except ApiException:
            return ""


class ElectionLoop:
    """Runs election rounds for several electors on one thread and reports leadership changes. With
    `share` (environments -> how many this replica may lead), it takes no more than its share and gives
    up what is over it (see daemon/members.py)."""

    def __init__(self, electors: dict[str, LeaseElector], settings: LeaseSettings,
                 on_change: Callable[[str, bool], None], on_request: Callable[[str, str], None],
                 share: Callable[[int], int] | None = None) -> None:
        self._electors = electors
        self._settings = settings
        self._on_change = on_change
        self._on_request = on_request
        self._share = share
        self._leading = {env: False for env in electors}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.round()
            self._stop.wait(self._settings.retry_period_s)

    def round(self) -> None:
        cap = self._share(len(self._electors)) if self._share else len(self._electors)
        held = sum(1 for elector in self._electors.values() if elector.is_leader())
        for env, elector in self._electors.items():
            if self._stop.is_set():
                return
            if elector.is_leader() or held < cap:
                leading_before = elector.is_leader()
                held += int(elector.try_acquire_or_renew()) - int(leading_before)
            self._report(env, elector.is_leader())
            while elector.sync_requests:
                self._on_request(env, elector.sync_requests.pop(0))
        self._give_up_excess(held - cap)

    def held(self) -> list[str]:
        return [env for env, elector in self._electors.items() if elector.is_leader()]

    def _give_up_excess(self, excess: int) -> None:
        """Over the share (a replica joined): release the last environments led, for the others to take."""
        for env in list(reversed(self.held()))[:max(0, excess)]:
            self._electors[env].release()
            self._report(env, False)

    def _report(self, env: str, leading: bool) -> None:
        if leading != self._leading[env]:
            self._leading[env] = leading
            log.info("leadership changed", env=env, leading=leading)
            self._on_change(env, leading)

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._settings.renew_deadline_s)
        if release:
            for env, elector in self._electors.items():
                elector.release()
                self._report(env, False)
