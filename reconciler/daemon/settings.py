"""How the daemon runs: jitter, backoff, history, identity, leader election; and the engines it drives.

The engine is injected (`EngineFactory`), so the daemon does not know how a pass works: tests give
it a stand-in that records calls, production gives it `reconciler.pipeline.engine.Engine`.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from reconciler.daemon.leader import LeaseSettings
from reconciler.kube.lease import DEFAULT_DURATION_S
from reconciler.logs import get_logger
from reconciler.results import DriftReport, PassResult


class Engine(Protocol):
    """What the daemon needs from `reconciler.engine.Engine` (see docs/ENGINE_API.md)."""

    api_client: Any

    def sync(self, stack: str | None = None, dry_run: bool = False, progress: Any = None,
             run_id: str | None = None, should_stop: Callable[[], bool] | None = None) -> PassResult: ...

    def drift(self, asked: Any = None) -> DriftReport: ...

    def state_ref(self) -> tuple[str, str]: ...


log = get_logger("reconciler.daemon")

EngineFactory = Callable[[Any], Engine]


SOURCES_DIR = ".sources"
"""Under the daemon's cache folder: the Git mirrors and exported trees its environments share."""


def default_engine_factory(cache_dir: Path, kubeconfig: Path | None = None,
                           context: str | None = None, writer_lease_s: float = DEFAULT_DURATION_S) -> EngineFactory:
    """Real engines, one cache folder per environment (renders, keys), one Git mirror and set of exported
    trees per repository (environments following one repository fetch and export a commit once, under the
    source's file locks), and one API client and one watch hub per cluster they name: environments on one
    cluster share its connection pool and its watches (kube.sharedwatch). None of them grows with the
    number of environments. `writer_lease_s`: how long an environment's writer lease lasts once this
    process stops renewing it."""
    shared: dict[tuple[Path | None, str | None, bool], tuple[Any, Any]] = {}

    def shared_client(env: Any) -> tuple[Any, Any]:
        from reconciler.errors import ClusterError
        from reconciler.kube.cluster import FIELD_MANAGER, Cluster, new_api_client
        from reconciler.kube.sharedwatch import WatchHub
        from reconciler.pipeline.engine import client_settings
        from reconciler.pipeline.ownership import OWNER_LABEL

        key = client_settings(env, kubeconfig, context)
        if key not in shared:
            try:
                api_client = new_api_client(*key)
            except ClusterError:
                return None, None  # the engine tries again in its pass, where the error is reported as the pass's
            shared[key] = api_client, WatchHub(Cluster(api_client), OWNER_LABEL, FIELD_MANAGER)
        return shared[key]

    def make(env: Any) -> Engine:
        from reconciler.pipeline.engine import Engine as RealEngine, WriterOptions

        writer = WriterOptions(name="reconciler daemon", wait_s=None,  # a daemon pass queues behind any other writer
                               on_wait=lambda holder: log.info("waiting for the writer lease", env=env.name, holder=holder),
                               lease_s=writer_lease_s)
        api_client, hub = shared_client(env)
        return RealEngine(env, cache_dir=cache_dir / env.name, kubeconfig=kubeconfig, context=context,
                          api_client=api_client, writer=writer, watch_hub=hub, source_dir=cache_dir / SOURCES_DIR)

    return make


def default_identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class DaemonSettings:
    jitter_s: float | None = None  # None: 10% of the interval, at most 30 s
    backoff_base_s: float = 10.0
    backoff_max_s: float = 600.0
    poll: bool = True
    initial_pass: bool = True
    drift_check: bool = True
    live: bool = True  # watch what each environment manages: drift on events, passes on a warm cache
    history: int = 200
    identity: str = field(default_factory=default_identity)
    lease: LeaseSettings | None = None  # None: no election, this replica applies everything
    stop_timeout_s: float = 30.0
    commit_status_token: str | None = None  # RECONCILER_COMMIT_STATUS_TOKEN: for environments with commitStatus
    status_url: str = ""  # the status page's address, linked from commit statuses and alerts

    def jitter_for(self, interval_s: float) -> float:
        return self.jitter_s if self.jitter_s is not None else min(interval_s * 0.1, 30.0)

    def backoff(self, failures: int) -> float:
        """Exponential: base, 2x base, 4x base, ... capped at max."""
        return min(self.backoff_base_s * (2 ** max(0, failures - 1)), self.backoff_max_s)
