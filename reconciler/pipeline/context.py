"""What one pass works with, handed down the pipeline instead of read from (and written to) the Engine.

The Engine lives long and is shared by threads (the daemon's worker, the live-drift thread, HTTP
handlers), and a pass runs the stacks of a wave on threads of its own. So a pass is given a
PassContext, made once its environment file is known: the environment in force at its head, the
API server, the inventory's hash key, the live cache, and a snapshot of what earlier passes left
(which stacks were settled). Nothing in it changes while the pass runs. What the pass learns for
the next one (stacks found settled, pins, the environment in force) goes back to the Engine in one
place, `Engine.remember`, under a lock, when the pass has it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from reconciler.config import EnvironmentConfig
from reconciler.kube.cluster import Cluster, impersonating
from reconciler.kube.lease import DEFAULT_DURATION_S, WriterLease
from reconciler.kube.livecache import LiveCache
from reconciler.objects import K8sObject
from reconciler.pipeline import ownership
from reconciler.pipeline.fetchmemo import Moment
from reconciler.pipeline.inventory import Inventory
from reconciler.pipeline.pins import Pins
from reconciler.pipeline.progress import Progress
from reconciler.pipeline.kustomize_workers import KustomizeWorkers
from reconciler.pipeline.render import RenderCache
from reconciler.pipeline.rendered import RenderedEnv
from reconciler.pipeline.source import GitSource
from reconciler.results import CommitInfo

Settled = tuple[str | None, int]
"""(render digest, live changes seen) of a stack at its last clean pass: unchanged since means no plan."""


@dataclass(frozen=True)
class PassOptions:
    """What one invocation allows beyond the environment's settings (a flag of `sync` or of the API)."""

    allow_mass_prune: bool = False  # let this pass through the mass-prune guard (pipeline.prune_guard)
    manual: bool = False  # asked for by a person (CLI sync, the API): windows with manualSync let it through
    asked: Moment | None = None  # the branch head is wanted as of then (a daemon run's latest trigger); None: now


@dataclass(frozen=True)
class PassContext:
    env: EnvironmentConfig
    cluster: Cluster
    hash_key: bytes = b""
    live: LiveCache | None = None
    settled: Mapping[str, Settled] = field(default_factory=dict)
    options: PassOptions = PassOptions()

    def cluster_for(self, stack: str) -> Cluster:
        """The API server as the stack's service account (`serviceAccountName`), or as the daemon itself."""
        return impersonating(self.cluster, self.env.service_account_user(self.env.stack(stack)))

    def ownership(self, stack: str) -> ownership.Ownership:
        return ownership.Ownership(self.env.name, stack, self.env.stack(stack).allow_adoption, self.hash_key)

    def selector(self, stack: str) -> str:
        return ownership.selector(self.env.name, stack)

    def owned(self, obj: K8sObject) -> K8sObject:
        return ownership.owned(self.env.name, obj)


class PassMemory:
    """What passes leave for the next one, for status and for live drift: the environment in force, the
    stacks found settled, the pins, and the inventory as the last pass left it (for the drift check right
    after it, once). One lock; written only through `remember`."""

    def __init__(self, env: EnvironmentConfig) -> None:
        self._lock = threading.Lock()
        self.env = env
        self.known_pins = Pins()
        self._settled: dict[str, Settled] = {}
        self._inventory: Inventory | None = None

    def settled(self) -> dict[str, Settled]:
        with self._lock:
            return dict(self._settled)

    def remember(self, *, env: EnvironmentConfig | None = None, settled: dict[str, Settled] | None = None,
                 pins: Pins | None = None, inventory: Inventory | None = None) -> None:
        with self._lock:
            self.env = env or self.env
            self._settled.update(settled or {})
            self.known_pins = pins if pins is not None else self.known_pins
            self._inventory = inventory or self._inventory

    def take_inventory(self) -> Inventory | None:
        """The inventory the last real pass read under its writer lease and wrote its records to, once:
        the drift check right after the pass needs no read of its own (a later one reads it again)."""
        with self._lock:
            inventory, self._inventory = self._inventory, None
            return inventory


class RenderMemo:
    """The last few commits' renders, shared by the pass (pins) and the live-drift thread (the commit a
    stack applied): locked, and a render is only ever stored whole."""

    def __init__(self, size: int = 4) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._renders: dict[str, RenderedEnv] = {}

    def put(self, sha: str, rendered: RenderedEnv) -> None:
        """A render made elsewhere (the pass's own), for the drift check after the pass to reuse."""
        with self._lock:
            self._renders.pop(sha, None)
            if len(self._renders) >= self._size:
                self._renders.pop(next(iter(self._renders)))
            self._renders[sha] = rendered

    def get(self, sha: str, render: Callable[[], RenderedEnv]) -> RenderedEnv:
        with self._lock:
            if sha in self._renders:
                return self._renders[sha]
        rendered = render()
        with self._lock:
            if len(self._renders) >= self._size:
                self._renders.pop(next(iter(self._renders)))
            return self._renders.setdefault(sha, rendered)


@dataclass(frozen=True)
class WriterOptions:
    """Who writes (named in the lease, so a second writer is told), how long it queues behind another, and
    how long its lease outlives it if it dies (the daemon's --lease-duration: a replica killed mid-pass
    holds its environments up no longer than its election Leases do)."""
    name: str = "reconciler"
    wait_s: float | None = 0.0  # None: wait as long as it takes
    on_wait: Callable[[str], None] | None = None  # told the holder's identity once, when waiting starts
    lease_s: float = DEFAULT_DURATION_S
    heartbeat: str = ""  # a daemon replica's heartbeat Lease on this cluster (`<namespace>/<name>`), named on the lease
    heartbeat_expired: Callable[[str], bool] | None = None  # another holder's named heartbeat silent: take it now


class EngineView(Protocol):
    """What the stage modules (syncpass, drift, status, rollback, preview) ask of the Engine that calls
    them. `pipeline.engine.Engine` is the one implementation; typing against this instead of importing
    it keeps the dependency one way: the engine wires the stages, no stage imports the engine."""

    env: EnvironmentConfig
    local_env: EnvironmentConfig
    source: GitSource
    render_cache: RenderCache
    kustomize_workers: KustomizeWorkers | None
    live: LiveCache | None
    hash_key: bytes
    memory: PassMemory
    writer: WriterOptions
    write_lock: threading.Lock

    @property
    def cluster(self) -> Cluster: ...

    def render(self, commit: CommitInfo | None = None, progress: Progress | None = None, run_id: str = "",
               revision: str | None = None, discover: bool = False, asked: Moment | None = None) -> RenderedEnv: ...

    def rendered_at(self, sha: str) -> RenderedEnv: ...

    def follow_head(self, asked: Moment | None = None) -> CommitInfo: ...

    def load_inventory(self, create: bool) -> Inventory: ...

    def writer_lease(self) -> WriterLease: ...

    def context(self, env: EnvironmentConfig) -> PassContext: ...

    def remember(self, *, env: EnvironmentConfig | None = None, settled: dict[str, Settled] | None = None,
                 pins: Pins | None = None) -> None: ...

    def cluster_for(self, stack: str) -> Cluster: ...

    def ownership(self, stack: str) -> ownership.Ownership: ...

    def selector(self, stack: str) -> str: ...

    def owned(self, obj: K8sObject) -> K8sObject: ...
