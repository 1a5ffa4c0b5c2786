"""Which environments this replica may apply, and what happens to a request it may not run.

With leader election off, this replica applies everything. With it on, one Lease per environment
decides; a trigger on a replica that does not hold the lease is forwarded to the one that does
(through the Lease's annotations), and gaining the lease requests a pass at once.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable

from reconciler.daemon.leader import ElectionLoop, LeaseElector
from reconciler.daemon.members import Membership
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.runs import Run, RunBook, RunState
from reconciler.daemon.settings import DaemonSettings
from reconciler.results import utcnow

Request = Callable[[str, str, "str | None", dict], Any]  # (env, source, stack, options) -> queue a pass here


class Leadership:
    """The electors of every environment and the loop that runs their rounds."""

    def __init__(self, settings: DaemonSettings, metrics: Metrics, runbook: RunBook, request: Request,
                 stopping: Callable[[], bool]) -> None:
        self.settings = settings
        self.metrics = metrics
        self.runbook = runbook
        self._request = request
        self._stopping = stopping
        self.electors: dict[str, LeaseElector] = {}
        self._loop: ElectionLoop | None = None
        self._members: Membership | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.lease is not None

    def start(self, api_clients: dict[str, Any]) -> None:
        lease = self.settings.lease
        if lease is None:
            return
        for env, api_client in api_clients.items():
            self.electors[env] = LeaseElector(api_client, f"{lease.name_prefix}{env}", self.settings.identity, lease)
        if api_clients:
            self._members = Membership(next(iter(api_clients.values())), self.settings.identity, lease)
        self._loop = ElectionLoop(self.electors, lease, self._on_change, self._on_forwarded,
                                  share=self._members.share if self._members else None)
        self._loop.start()

    def writer_vouching(self, env: str) -> tuple[str, Callable[[str], bool]] | None:
        """For `env`'s writer lease: this replica's heartbeat on its cluster, and how to tell another holder's
        heartbeat silent (kube.lease.HEARTBEAT_ANNOTATION); None without an election."""
        elector = self.electors.get(env)
        if elector is None or elector.heartbeat is None:
            return None
        return elector.heartbeat_name(), elector.heartbeat_expired

    def vouch_writer_leases(self, engines: dict[str, Any]) -> None:
        """Each engine's writer lease names this replica's heartbeat, and takes a dead replica's writer lease
        once that replica's heartbeat has been silent for a lease duration (when its claims are taken too),
        not a lease duration after first seeing it: a replica killed mid-pass held its environments up twice."""
        for name, engine in engines.items():
            vouching = self.writer_vouching(name)
            if vouching is not None and hasattr(engine, "writer"):
                engine.writer = replace(engine.writer, heartbeat=vouching[0], heartbeat_expired=vouching[1])

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop(release=True)

    def may_apply(self, env: str) -> bool:
        if not self.enabled:
            return True
        elector = self.electors.get(env)
        return elector is not None and elector.is_leader()

    def forward(self, env: str, source: str, stack: str | None, options: dict | None = None) -> Run:
        """Pass a request (and its options: allowMassPrune) to the leader of `env`; the returned run says
        whether that worked."""
        run = Run(env=env, stack=stack, sources=[source], state=RunState.FORWARDED, options=dict(options or {}))
        elector = self.electors.get(env)
        payload = json.dumps({"source": source, "stack": stack, "by": self.settings.identity, "run": run.id,
                              "options": options or {}})
        if elector is not None and elector.request_sync(payload):
            run.message = "this replica does not hold the lease; the request was passed to the leader"
        else:
            run.state, run.message = RunState.SKIPPED, "this replica does not hold the lease and could not reach it"
        run.finished_at = utcnow()
        self.runbook.add(run)
        return run

    def _on_forwarded(self, env: str, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            data = {}
        options = data.get("options") if isinstance(data.get("options"), dict) else {}
        self._request(env, f"forwarded:{data.get('source', 'unknown')}", data.get("stack"), options)

    def _on_change(self, env: str, leading: bool) -> None:
        self.metrics.observe_leadership(env, leading)
        if leading and not self._stopping():
            self._request(env, "leader-elected", None, {})
