"""How many replicas are alive, so each takes a fair share of the environments.

Each replica holds a presence Lease `<prefix>member-<identity>` in the lease namespace: its heartbeat on
the first environment's cluster, renewed by its election rounds (daemon/leader.py). A replica counts
the presence Leases that are held and not expired: N replicas alive, E environments, each replica
leads at most ceil(E/N). When a replica dies its heartbeats fall silent, its claims with them, N
drops, and the others take its share over at their next rounds; when one joins, the others give up
what is over their new share.
"""

from __future__ import annotations

import math
from typing import Any

from reconciler.daemon.leader import LeaseSettings, Listings, listing_key
from reconciler.errors import ClusterError
from reconciler.kube.cluster import Cluster
from reconciler.kube.lease import LEASE_API, LeaseObserver
from reconciler.logs import get_logger

log = get_logger("reconciler.daemon.members")


class Membership:
    def __init__(self, api_client: Any, identity: str, settings: LeaseSettings) -> None:
        self.cluster = Cluster(api_client)
        self._observer = LeaseObserver()  # other replicas' presence judged on our clock, as every lease
        self._settings = settings
        self._prefix = f"{settings.name_prefix}member-"
        self.identity = identity

    def share(self, environments: int, listings: Listings | None = None) -> int:
        """How many environments this replica may lead now. `listings`: the election round's LISTs; the
        presence Leases are counted from it when it holds their namespace."""
        return math.ceil(environments / max(1, self.alive(listings)))

    def alive(self, listings: Listings | None = None) -> int:
        """Replicas whose presence Lease is held and not expired (this one counts itself regardless)."""
        leases = (listings or {}).get(listing_key(self.cluster.api_client, self._settings.namespace))
        if leases is None:  # the round listed no Lease of this namespace on this cluster
            try:
                leases = self.cluster.list(LEASE_API, "Lease", self._settings.namespace)
            except ClusterError as exc:
                log.warning("counting replicas failed", error=str(exc))
                return 1
        others = {self._observer.held_by(lease, self.identity) for lease in leases
                  if lease["metadata"]["name"].startswith(self._prefix)}
        return 1 + len(others - {""})
