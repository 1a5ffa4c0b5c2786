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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from reconciler.errors import ClusterError
from reconciler.kube.cluster import Cluster
from reconciler.kube.lease import DEFAULT_DURATION_S, LEASE_API, UNREAD, Lease, LeaseObserver
from reconciler.logs import get_logger

log = get_logger("reconciler.daemon.leader")

SYNC_REQUEST_ANNOTATION = "healthflow.io/sync-requested"
"""Set on the Lease by a replica that got a trigger it cannot run; the holder runs it on its next renewal."""

RENEWALS_IN_FLIGHT = 8
"""Held leases an election round renews at once."""


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str = "healthflow-system"
    lease_duration_s: float = DEFAULT_DURATION_S
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    name_prefix: str = "reconciler-"

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("need 0 < retry period < renew deadline < lease duration")


class LeaseElector:
    """One environment's (or presence) Lease as this replica, on kube.lease's single implementation of
    client-go's rules. `try_acquire_or_renew` is one round; `is_leader` is local and cheap."""

    def __init__(self, api_client: Any, lease_name: str, identity: str, settings: LeaseSettings,
                 clock: Callable[[], float] = time.monotonic, observer: LeaseObserver | None = None) -> None:
        self.lease = Lease(Cluster(api_client), settings.namespace, lease_name, identity,
                           duration_s=settings.lease_duration_s, renew_deadline_s=settings.renew_deadline_s,
                           observer=observer or LeaseObserver(clock))
        self.lease_name = lease_name
        self.identity = identity
        self.settings = settings
        self.sync_requests: list[str] = []

    def is_leader(self) -> bool:
        return self.lease.is_held()

    def try_acquire_or_renew(self, seen: Any = UNREAD) -> bool:
        """One election round (`seen`: the lease as the round's LIST read it). Returns whether this replica
        leads afterwards; never raises on API errors (an unreachable API server leaves the validity it had:
        it ends at the renew deadline)."""
        was_leader = self.is_leader()
        try:
            holder = self.lease.try_acquire_or_renew(seen)
        except ClusterError as exc:
            log.warning("lease round failed", lease=self.lease_name, error=str(exc))
            return self.is_leader()
        if not holder:
            self._collect_sync_request()
            if not was_leader:
                log.info("lease acquired", lease=self.lease_name)
        return not holder

    def observe(self, seen: dict) -> None:
        """Note a listed lease without trying for it (a replica at its share): should its holder die, this
        replica knows how long it has been silent once its share grows, instead of starting to count then
        (which made a SIGKILLed replica's environments wait two lease durations on the replicas at their share)."""
        self.lease.observer.observe(seen)

    def _collect_sync_request(self) -> None:
        """A sync request annotated on the lease before this renewal (the renewal's write clears it)."""
        annotations = ((self.lease.previous or {}).get("metadata") or {}).get("annotations") or {}
        if SYNC_REQUEST_ANNOTATION in annotations:
            self.sync_requests.append(annotations[SYNC_REQUEST_ANNOTATION])

    def request_sync(self, payload: str) -> bool:
        """Ask the current holder to run a pass (a trigger that reached a replica that does not lead)."""
        patch = {"metadata": {"annotations": {SYNC_REQUEST_ANNOTATION: payload}}}
        try:
            self.lease.cluster.merge_patch(LEASE_API, "Lease", self.settings.namespace, self.lease_name, patch)
            return True
        except ClusterError as exc:
            log.warning("forwarding sync request failed", lease=self.lease_name, error=str(exc))
            return False

    def release(self) -> None:
        """Give the lease up at once (graceful shutdown), so another replica need not wait for it to expire."""
        self.lease.release()
        log.info("lease released", lease=self.lease_name)

    def holder(self) -> str:
        try:
            live = self.lease.cluster.get(LEASE_API, "Lease", self.settings.namespace, self.lease_name) or {}
        except ClusterError:
            return ""
        return (live.get("spec") or {}).get("holderIdentity") or ""


Listings = dict[tuple[int, str], list[dict]]
"""A round's LISTs of Leases, by (id of the API client, namespace): what `listing_key` names."""


def listing_key(api_client: Any, namespace: str) -> tuple[int, str]:
    return id(api_client), namespace


def list_leases(electors: dict[str, LeaseElector]) -> Listings:
    """One LIST per cluster and namespace of `electors`: every round looks at each lease this replica does
    not hold, and a GET each was half of the idle requests of 31 environments over 3 replicas. A namespace
    that cannot be listed is left out (its electors read their own leases)."""
    listings: Listings = {}
    for elector in electors.values():
        lease = elector.lease
        key = listing_key(lease.cluster.api_client, lease.namespace)
        if key in listings:
            continue
        try:
            listings[key] = lease.cluster.list(LEASE_API, "Lease", lease.namespace)
        except ClusterError as exc:
            log.warning("listing leases failed", namespace=lease.namespace, error=str(exc))
    return listings


def read_leases(electors: dict[str, LeaseElector], listings: Listings) -> dict[str, dict | None]:
    """The leases of `electors` (env -> live Lease, None where there is none) in the round's `listings`
    (`list_leases`); electors whose namespace was not listed are left out."""
    by_name = {key: {lease["metadata"]["name"]: lease for lease in leases} for key, leases in listings.items()}
    seen: dict[str, dict | None] = {}
    for env, elector in electors.items():
        live = by_name.get(listing_key(elector.lease.cluster.api_client, elector.lease.namespace))
        if live is not None:
            seen[env] = live.get(elector.lease.name)
    return seen


class ElectionLoop:
    """Runs election rounds for several electors on one thread and reports leadership changes. With
    `share` (environments and the round's lease listings -> how many this replica may lead), it takes no
    more than its share and gives up what is over it (see daemon/members.py)."""

    def __init__(self, electors: dict[str, LeaseElector], settings: LeaseSettings,
                 on_change: Callable[[str, bool], None], on_request: Callable[[str, str], None],
                 share: Callable[[int, Listings], int] | None = None) -> None:
        self._electors = electors
        self._settings = settings
        self._on_change = on_change
        self._on_request = on_request
        self._share = share
        self._leading = {env: False for env in electors}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)
        self._renewals = ThreadPoolExecutor(max_workers=RENEWALS_IN_FLIGHT, thread_name_prefix="lease-renewal")

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.round()
            self._stop.wait(self._settings.retry_period_s)

    def round(self) -> None:
        """Renew the leases held, all at once (one after another, a replica leading dozens of environments
        on a loaded machine came past the renew deadline and lost them), then try the others up to the share.
        The leases not held are listed first: the share counts the replicas alive from the same LIST."""
        renewing = {env for env, elector in self._electors.items() if elector.is_leader()}
        others = {env: e for env, e in self._electors.items() if env not in renewing}
        listings = list_leases(others)
        cap = self._share(len(self._electors), listings) if self._share else len(self._electors)
        held = sum(self._renewals.map(lambda env: self._electors[env].try_acquire_or_renew(), sorted(renewing)))
        seen = read_leases(others, listings)
        for env, elector in self._electors.items():
            if self._stop.is_set():
                return
            if env not in renewing and held < cap:
                held += int(elector.try_acquire_or_renew(seen.get(env, UNREAD)))
            elif env not in renewing and seen.get(env):
                elector.observe(seen[env])
            if elector.lease.take_lapses() and self._leading[env] and elector.is_leader():
                self._report(env, False)  # it lapsed (this round, or its renewal, came late) and passes saw that
                # and stopped: the renewal starts a new term, whose report below requests a pass again
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
        self._renewals.shutdown(wait=False)
        if release:
            for env, elector in self._electors.items():
                elector.release()
                self._report(env, False)
