"""Leader election per environment through a `coordination.k8s.io/v1` Lease, vouched for by a heartbeat.

Why per environment: several replicas can then share the environments between them, and a
replica applies to an environment only while it holds that environment's lease.

Why a heartbeat: renewing every environment's Lease every retry period was most of what a fleet
asked of its API servers (100 environments over 3 clusters: about 1,000 writes a minute each, idle,
and a third of the requests of a push to all of them). So each replica renews one Lease per cluster,
`<prefix>member-<identity>` (its presence), and an environment's Lease is written only to claim it
(and to clear a sync request annotated on it). The claim stands while the heartbeat holds the term
it was made in; a heartbeat that lapses ends every claim made under it, and the next round claims
again, each with a write that fails if anyone wrote the environment's Lease since.

Safety rule: a replica considers itself leader only until `renew_deadline_s` after its heartbeat's
last successful renewal began, which is shorter than `lease_duration_s`. Another replica takes an
environment's Lease over only when both it and its holder's heartbeat on that cluster have been
unchanged for `lease_duration_s` on its own clock (a holder without a heartbeat, a version before
this one, is judged by its Lease alone). So a replica cut off from the API server stops applying
(the engine's `should_stop` hook turns true) before anyone else can start.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from reconciler.errors import ClusterError
from reconciler.kube.cluster import Cluster
from reconciler.kube.echoes import resource_version
from reconciler.kube.lease import DEFAULT_DURATION_S, ELECTION_SELECTOR, LEASE_API, UNREAD, Lease, LeaseObserver
from reconciler.daemon.leasewatch import SYNC_REQUEST_ANNOTATION, LeaseWatches
from reconciler.logs import get_logger

log = get_logger("reconciler.daemon.leader")

RENEWALS_IN_FLIGHT = 8
"""Held leases an election round renews at once."""
WOKEN_ROUND_GAP_S = 0.1
"""The least time between two rounds, however many sync requests wake the loop (a burst of forwarded
webhooks coalesces into a round or two)."""

JOIN_WINDOW_PERIODS = 2
"""A started loop that shares (`share`) claims nothing for this many retry periods, its heartbeat written
meanwhile: replicas started together then see each other before they claim (Kafka's initial rebalance
delay, for the same reason). Claiming at once, the first replica of three started together led 73 of 100
environments before the others' heartbeats showed, gave them back in the next rounds, and kept 40-55 MiB
more than the others at their even share for the rest of the run (bench_fleet.py), its peak over 250."""


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


def member_lease_name(prefix: str, identity: str) -> str:
    """A replica's heartbeat (presence) Lease on each cluster."""
    slug = re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-") or "replica"
    return f"{prefix}member-{slug}"[:63].rstrip("-")


class LeaseElector:
    """One environment's (or a heartbeat's) Lease as this replica, on kube.lease's single implementation of
    client-go's rules. `try_acquire_or_renew` is one round; `is_leader` is local and cheap. With a
    `heartbeat` (an environment's elector in an ElectionLoop), the Lease is claimed once and held while
    the heartbeat's term lasts (module docstring); without, it is renewed every round."""

    def __init__(self, api_client: Any, lease_name: str, identity: str, settings: LeaseSettings,
                 clock: Callable[[], float] = time.monotonic, observer: LeaseObserver | None = None,
                 heartbeat: "LeaseElector | None" = None) -> None:
        self.lease = Lease(Cluster(api_client), settings.namespace, lease_name, identity,
                           duration_s=settings.lease_duration_s, renew_deadline_s=settings.renew_deadline_s,
                           observer=observer or LeaseObserver(clock))
        self.lease_name = lease_name
        self.identity = identity
        self.settings = settings
        self.heartbeat = heartbeat
        self.sync_requests: list[str] = []
        self._handled_request: str | None = None  # the last sync request taken (it stays on the Lease)
        self._claim: int | None = None  # the heartbeat's term the Lease was claimed in

    def is_leader(self) -> bool:
        if self.heartbeat is None:
            return self.lease.is_held()
        claim = self._claim
        return claim is not None and self.heartbeat.lease.held_term() == claim

    def try_acquire_or_renew(self, seen: Any = UNREAD, listing: list[dict] | None = None) -> bool:
        """One election round (`seen`: the lease as the round's LIST read it; `listing`: that LIST, where
        a holder's heartbeat is looked up). Returns whether this replica leads afterwards; never raises on
        API errors (an unreachable API server leaves the validity it had: it ends at the renew deadline)."""
        was_leader = self.is_leader()
        try:
            holder = self._vouched_round(self.heartbeat, seen, listing, was_leader) if self.heartbeat is not None \
                else self.lease.try_acquire_or_renew(seen)
        except ClusterError as exc:
            log.warning("lease round failed", lease=self.lease_name, error=str(exc))
            return self.is_leader()
        if not holder:
            self._collect_sync_request()
            if not was_leader:
                log.info("lease acquired", lease=self.lease_name)
        return not holder

    def _vouched_round(self, heartbeat: "LeaseElector", seen: Any, listing: list[dict] | None, leading: bool) -> str:
        """'' when this replica holds the claim afterwards, else who (or what) stands in the way. A held
        claim costs no request, unless the round's LIST shows that someone else took the Lease (a sync
        request on it is taken without a write: `take_sync_request`)."""
        if leading:
            live = self.lease.record if seen is UNREAD else seen
            if _holder(live) == self.identity:
                self.lease.previous = live
                return ""
            self._claim = None  # taken over, or deleted, behind this replica's back
        term = heartbeat.lease.held_term()
        if term is None:
            return "no heartbeat"  # this replica's presence on the cluster is not renewed: it may lead nothing
        live = self.lease.read() if seen is UNREAD else seen
        holder = _holder(live)
        if holder and holder != self.identity and self._heartbeat_alive(heartbeat, holder, listing):
            self.lease.observer.observe(live)
            return holder
        holder = self.lease.try_acquire_or_renew(live)
        if not holder:
            self._claim = term
        return holder

    def _heartbeat_alive(self, heartbeat: "LeaseElector", holder: str, listing: list[dict] | None) -> bool:
        """Whether `holder`'s heartbeat on this cluster has changed within its duration, as this replica saw it."""
        name = member_lease_name(self.settings.name_prefix, holder)
        if listing is None:
            beat = self.lease.cluster.get(LEASE_API, "Lease", self.settings.namespace, name)
        else:
            beat = next((lease for lease in listing if lease["metadata"]["name"] == name), None)
        return beat is not None and heartbeat.lease.observer.held_by(beat, self.identity) == holder

    def heartbeat_name(self) -> str:
        """`<namespace>/<name>` of the heartbeat vouching for this elector's claims ('' without one)."""
        return f"{self.settings.namespace}/{self.heartbeat.lease_name}" if self.heartbeat is not None else ""

    def heartbeat_expired(self, where: str) -> bool:
        """Whether the heartbeat Lease `where` (`<namespace>/<name>`) on this elector's cluster has been
        unchanged for its lease duration, as this replica's rounds saw it (each round observes them all)."""
        return self.heartbeat is not None and self.heartbeat.lease.observer.expired(where)

    def observe(self, seen: dict) -> None:
        """Note a listed lease without trying for it (a replica at its share): should its holder die, this
        replica knows how long it has been silent once its share grows, instead of starting to count then
        (which made a SIGKILLed replica's environments wait two lease durations on the replicas at their share)."""
        self.lease.observer.observe(seen)

    def _collect_sync_request(self) -> None:
        """A sync request annotated on the lease as this round read it (before a claim's write drops it)."""
        self.take_sync_request(self.lease.previous)

    def take_sync_request(self, lease: dict | None) -> None:
        """Queue the sync request annotated on `lease` (this elector's Lease, as read) unless it was taken
        already. Why not clear it with a write: a push forwarded to the leaders of N environments cost N
        rewrites of their Leases beside the N annotations. Each request names its run, so a request still
        on the Lease is told from a new one by its value; a claim's write drops it."""
        request = _annotations(lease).get(SYNC_REQUEST_ANNOTATION)
        if request is not None and request != self._handled_request:
            self._handled_request = request
            self.sync_requests.append(request)

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
        self._claim = None
        self.lease.release()
        log.info("lease released", lease=self.lease_name)

    def disown(self, listed: dict) -> None:
        """Release a Lease the round's LIST shows in this replica's name though it does not lead it (a release
        that lost a race with a sync request's annotation): while its heartbeat lives, nobody else may
        take it, and without this it stayed led by nobody (seen in bench_fleet: 8 of 100 environments)."""
        self._claim = None
        self.lease.record = listed
        self.lease.release()
        log.info("lease released", lease=self.lease_name, reason="listed in this replica's name, not led")

    def holder(self) -> str:
        try:
            live = self.lease.cluster.get(LEASE_API, "Lease", self.settings.namespace, self.lease_name)
        except ClusterError:
            return ""
        return _holder(live)


def _holder(lease: dict | None) -> str:
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or ""


def _annotations(lease: dict | None) -> dict:
    return ((lease or {}).get("metadata") or {}).get("annotations") or {}


Listings = dict[tuple[int, str], list[dict]]
"""A round's LISTs of Leases, by (id of the API client, namespace): what `listing_key` names."""


def listing_key(api_client: Any, namespace: str) -> tuple[int, str]:
    return id(api_client), namespace


def list_leases(electors: dict[str, LeaseElector],
                watched: Callable[[tuple[int, str]], list[dict] | None] = lambda key: None) -> Listings:
    """The Leases of each cluster and namespace of `electors`: every round looks at each lease (a GET each was
    half of the idle requests of 31 environments over 3 replicas), the held ones for a sync request or a
    takeover. From `watched` (daemon/leasewatch.py) where it answers, else one LIST. A namespace that cannot
    be listed is left out (its electors read their own leases)."""
    listings: Listings = {}
    for elector in electors.values():
        lease = elector.lease
        key = listing_key(lease.cluster.api_client, lease.namespace)
        if key in listings:
            continue
        held = watched(key)
        if held is not None:
            listings[key] = held
            continue
        try:
            listings[key] = lease.cluster.list(LEASE_API, "Lease", lease.namespace, ELECTION_SELECTOR)
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


def attach_heartbeats(electors: dict[str, LeaseElector], settings: LeaseSettings) -> list[LeaseElector]:
    """One heartbeat per cluster for the electors that have none (on their clock), shared by all of them."""
    beats: dict[int, LeaseElector] = {}
    for elector in electors.values():
        api_client = elector.lease.cluster.api_client
        if elector.heartbeat is None:
            elector.heartbeat = beats.get(id(api_client)) or LeaseElector(
                api_client, member_lease_name(settings.name_prefix, elector.identity), elector.identity, settings,
                clock=elector.lease.observer.clock)
        beats.setdefault(id(api_client), elector.heartbeat)
    return list({id(beat): beat for beat in beats.values()}.values())


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
        self.heartbeats = attach_heartbeats(electors, settings)
        self._leading = {env: False for env in electors}
        self._claims_from = 0.0  # monotonic; before it a round claims nothing (set by `start`)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)
        self._renewals = ThreadPoolExecutor(max_workers=RENEWALS_IN_FLIGHT, thread_name_prefix="lease-renewal")
        places = {listing_key(e.lease.cluster.api_client, e.lease.namespace): (e.lease.cluster, e.lease.namespace)
                  for e in electors.values()}
        identity = next(iter(electors.values())).identity if electors else ""
        self.watches = LeaseWatches(places, identity, self._wake.set)

    def start(self) -> None:
        """Rounds on a thread of their own, reading the Leases from watches (a bare `round()` LISTs them);
        sharing, the first claims wait JOIN_WINDOW_PERIODS."""
        if self._share is not None:
            self._claims_from = time.monotonic() + JOIN_WINDOW_PERIODS * self._settings.retry_period_s
        self.watches.start()
        self._thread.start()

    def _loop(self) -> None:
        """A round every retry period; when a sync request is annotated on a Lease held here
        (daemon/leasewatch.py), its hand-over at once (`_hand_over_requests`); never two closer than
        WOKEN_ROUND_GAP_S."""
        woken, due = False, 0.0
        while not self._stop.is_set():
            self._wake.clear()
            if not (woken and time.monotonic() < due and self._hand_over_requests()):
                self.round()
                due = time.monotonic() + self._settings.retry_period_s
            if self._stop.wait(WOKEN_ROUND_GAP_S):
                return
            woken = self._wake.wait(max(0.0, due - time.monotonic()))

    def _hand_over_requests(self) -> bool:
        """Pass on the sync requests on the Leases held here, read from the watches as they stand: no request,
        no write. A woken round used to renew the heartbeats and rewrite each Lease to clear its request,
        Lease writes beside every forwarded push's applies. False (a whole round is due) while a watch has
        never listed."""
        listings = self.watches.current()
        if listings is None:
            return False
        seen = read_leases(self._electors, listings)
        for env, elector in self._electors.items():
            if elector.is_leader():
                elector.take_sync_request(seen.get(env))
            self._pass_on_requests(env, elector)
        return True

    def _pass_on_requests(self, env: str, elector: LeaseElector) -> None:
        while elector.sync_requests:
            self._on_request(env, elector.sync_requests.pop(0))

    def round(self) -> None:
        """Renew the heartbeats (all at once: one after another, a replica on a loaded machine came past the
        renew deadline), read the Leases (from the watch once it has delivered the heartbeat's write, else
        one LIST per cluster: the share counts the replicas alive from it), check the claims held against
        them, then claim others up to the share."""
        beats = self.heartbeats
        before = [resource_version(beat.lease.record) for beat in beats]
        list(self._renewals.map(lambda beat: beat.try_acquire_or_renew(), beats))
        lapsed = {id(beat) for beat in beats if beat.lease.take_lapses()}
        after = [resource_version(beat.lease.record) for beat in beats]
        written = {listing_key(beat.lease.cluster.api_client, beat.lease.namespace): now
                   for beat, was, now in zip(beats, before, after) if now != was}
        listings = list_leases(self._electors, lambda key: self.watches.leases(key, written.get(key)))
        self._observe_heartbeats(listings)
        joining = time.monotonic() < self._claims_from
        cap = 0 if joining else self._share(len(self._electors), listings) if self._share else len(self._electors)
        seen = read_leases(self._electors, listings)
        listing = {env: listings.get(listing_key(e.lease.cluster.api_client, e.lease.namespace))
                   for env, e in self._electors.items()}
        leading = sorted(env for env, elector in self._electors.items() if elector.is_leader())
        held = sum(self._renewals.map(
            lambda env: self._electors[env].try_acquire_or_renew(seen.get(env, UNREAD), listing[env]), leading))
        for env, elector in self._electors.items():
            if self._stop.is_set():
                return
            if env not in leading and held < cap:
                held += int(elector.try_acquire_or_renew(seen.get(env, UNREAD), listing[env]))
            elif env not in leading and seen.get(env):
                elector.observe(seen[env])
                if _holder(seen[env]) == elector.identity:
                    elector.disown(seen[env])  # a claim whose release failed: the heartbeat would vouch for it
            if (id(elector.heartbeat) in lapsed or elector.lease.take_lapses()) and self._leading[env]:
                self._report(env, False)  # it lapsed (this round, or its renewal, came late) and passes saw that
                # and stopped: the claim made again starts a new term, whose report below requests a pass again
            self._report(env, elector.is_leader())
            self._pass_on_requests(env, elector)
        if not joining:
            self._give_up_excess(held - cap)

    def _observe_heartbeats(self, listings: Listings) -> None:
        """Note every replica's heartbeat each round, on the observer that judges them: should one die, the
        others know how long it has been silent when their share grows, instead of starting to count then."""
        prefix = f"{self._settings.name_prefix}member-"
        for beat in self.heartbeats:
            for lease in listings.get(listing_key(beat.lease.cluster.api_client, beat.lease.namespace)) or []:
                if lease["metadata"]["name"].startswith(prefix):
                    beat.lease.observer.observe(lease)

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
        self._wake.set()
        self.watches.stop()
        if self._thread.is_alive():
            self._thread.join(self._settings.renew_deadline_s)
        self._renewals.shutdown(wait=False)
        if release:
            for env, elector in self._electors.items():
                elector.release()
                self._report(env, False)
            for beat in self.heartbeats:
                beat.release()
