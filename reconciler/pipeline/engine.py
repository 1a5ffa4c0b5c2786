"""One reconcile pass of one environment: Git revision to healthy stacks. The wiring of the pipeline.

fetch (source) -> render every stack, cached (rendered) -> policy on the whole environment ->
per wave, stacks in parallel (passrun): gate -> plan -> apply -> health -> prune -> record. A failed
or policy-blocked stack blocks its dependents; independent stacks go on. Failures are data in the
PassResult, never exceptions out of `sync`. `drift` and `status` read what passes recorded.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Callable

import structlog

from reconciler.config import EnvironmentConfig, source_url
from reconciler.kube.cluster import FIELD_MANAGER, Cluster, new_api_client
from reconciler.kube.lease import WriterLease
from reconciler.kube.livecache import LiveCache
from reconciler.objects import K8sObject, ObjectId
from reconciler.pipeline import ownership
from reconciler.pipeline.context import PassContext, PassMemory, PassOptions, RenderMemo, WriterOptions
from reconciler.pipeline.envfile import environment_at
from reconciler.pipeline.drift import correct_object, detect_drift, object_drift, objects_drift
from reconciler.pipeline.fetchmemo import Moment
from reconciler.pipeline.inventory import SYSTEM_NAMESPACE, Inventory
from reconciler.pipeline.status import stack_statuses
from reconciler.pipeline.syncpass import run_pass
from reconciler.pipeline.progress import Progress, ProgressEvent, emitter
from reconciler.pipeline.kustomize_workers import KustomizeWorkers
from reconciler.pipeline.render import RenderCache
from reconciler.pipeline.rendered import RenderedEnv, render_environment
from reconciler.pipeline.commitrender import render_commit
from reconciler.pipeline.source import GitSource
from reconciler.results import CommitInfo, DriftItem, DriftReport, EnvStatus, PassResult, utcnow

log = structlog.get_logger("reconciler.pipeline.engine")

__all__ = ["Engine", "ProgressEvent", "RenderedEnv", "WriterOptions", "client_settings"]


def client_settings(env: EnvironmentConfig, kubeconfig: Path | None = None, context: str | None = None
                    ) -> tuple[Path | None, str | None, bool]:
    """Where an engine for `env` connects (`new_api_client`'s arguments): the kubeconfig and context given,
    else the environment's. Its `cluster` section always comes from the local file (pipeline.envfile), so
    this holds for every commit; the daemon shares one client per distinct answer."""
    path = kubeconfig or (Path(env.cluster.kubeconfig) if env.cluster.kubeconfig else None)
    return path, context or env.cluster.context, bool(env.cluster.in_cluster)


class Engine:
    """Reconciles one environment. Thread-safe for one pass at a time (the daemon single-flights)."""

    def __init__(self, env: EnvironmentConfig, cache_dir: Path, kubeconfig: Path | None = None,
                 context: str | None = None, api_client=None, writer: WriterOptions | None = None,
                 watch_hub=None, source_dir: Path | None = None) -> None:
        self.local_env = env  # as given: where the source is, the cluster; `env` is the file in force (envfile)
        self.memory = PassMemory(env)
        self.writer = writer or WriterOptions()
        self.cache_dir = Path(cache_dir)
        # source_dir: the daemon's engines share one (a repository's commits fetched and exported once)
        self.source = GitSource(source_url(env), env.source.branch, source_dir or self.cache_dir, env.source.timeout_s)
        self.render_cache = RenderCache(self.cache_dir / "render")
        self.kustomize_workers = KustomizeWorkers.shared()  # the process's few kustomize workers, if installed
        self._client_settings = client_settings(env, kubeconfig, context)
        self._api_client = api_client
        self._cluster: Cluster | None = None
        self.live: LiveCache | None = None
        self._watch_hub = watch_hub  # the daemon's kube.sharedwatch.WatchHub for this cluster, if any
        self._renders = RenderMemo()  # by commit: what drift on events compares with
        self._writer_lease: WriterLease | None = None
        self.hash_key = b""  # the environment's inventory hash key, read once from its Secret
        self._records: dict = {}  # stack records the passes' inventories parsed, by the value parsed (Inventory)
        self.write_lock = threading.Lock()  # one writer in this process: a pass, or a live correction

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            if self._api_client is None:
                self._api_client = new_api_client(*self._client_settings)
            self._cluster = Cluster(self._api_client)
        return self._cluster

    @property
    def api_client(self):
        return self.cluster.api_client

    def state_ref(self) -> tuple[str, str]:
        return SYSTEM_NAMESPACE, f"reconciler-{self.env.name}"

    # --- render and policy (no cluster) --------------------------------------------------------

    def render(self, commit: CommitInfo | None = None, progress: Progress | None = None,
               run_id: str = "", revision: str | None = None, discover: bool = False,
               asked: Moment | None = None) -> RenderedEnv:
        """Fetch (unless given a commit), export that commit's tree, render every stack of the environment
        file in force at it (`commitrender`). Rendering the branch head makes its environment file the
        engine's (`env`): what status, drift and the live cache work from until the next pass."""
        rendered = render_commit(self, self.cache_dir, commit, progress, run_id, revision, discover, asked)
        if discover:  # as `rendered_at` renders: the drift check after a pass reuses the pass's render
            self._renders.put(rendered.commit.sha, rendered)
        return rendered

    def follow_head(self, asked: Moment | None = None) -> CommitInfo:
        """Fetch the branch head and make its environment file the one in force (status, drift, validate).
        `asked`: since when the caller wants the head (`GitSource.fetch`; default now)."""
        commit = self.source.fetch(asked)
        self.remember(env=environment_at(self.local_env, self.source.export(commit.sha), commit))
        return commit

    def rendered_at(self, sha: str) -> RenderedEnv:
        """The environment rendered at a commit a stack applied, kept in memory for the next event (the
        pass and the live-drift thread both ask: the cache is locked, a render is never shared half-made)."""
        return self._renders.get(sha, lambda: self.render(self.source.resolve(sha), discover=True))

    def render_worktree(self, directory: Path) -> RenderedEnv:
        """Render files as they are on disk (uncommitted changes included): `policy check --worktree`."""
        commit = CommitInfo(sha="worktree", author="", message=str(directory), committed_at=utcnow())
        env = environment_at(self.local_env, directory, commit)
        return render_environment(env, commit, directory, emitter(None, "", env.name), None, None,
                                  workers=self.kustomize_workers)

    # --- the pass -----------------------------------------------------------------------------

    @property
    def env(self) -> EnvironmentConfig:
        """The environment file in force: the one the last head render read (pipeline.envfile)."""
        return self.memory.env

    def context(self, env: EnvironmentConfig) -> PassContext:
        """What a pass applying `env` works with (pipeline.context): a snapshot, never the engine itself."""
        return PassContext(env, self.cluster, self.hash_key, self.live, self.memory.settled())

    def remember(self, **learned) -> None:
        """What a pass learned (env, settled, pins): taken in one place, under one lock (PassMemory)."""
        self.memory.remember(**learned)

    def plan(self, stack: str | None = None, progress: Progress | None = None, run_id: str | None = None) -> PassResult:
        return self.sync(stack=stack, dry_run=True, progress=progress, run_id=run_id)

    def sync(self, stack: str | None = None, dry_run: bool = False, progress: Progress | None = None,
             run_id: str | None = None, should_stop: Callable[[], bool] | None = None,
             options: PassOptions | None = None) -> PassResult:
        """One pass (see `syncpass`): a real one holds the environment's writer lease while it writes."""
        return run_pass(self, stack, dry_run, progress, run_id, should_stop or (lambda: False), options=options)

    def writer_lease(self) -> WriterLease:
        """The environment's writer lease (`healthflow-system/writer-<env>`), as this process; kept across
        passes, so taking it again after giving it up is one write."""
        if self._writer_lease is None:
            identity = f"{self.writer.name} on {socket.gethostname()} pid {os.getpid()}"
            self._writer_lease = WriterLease(self.cluster, SYSTEM_NAMESPACE, f"writer-{self.env.name}", identity,
                                             duration_s=self.writer.lease_s)
        self._writer_lease.vouched_by(self.writer.heartbeat, self.writer.heartbeat_expired)  # set by the daemon
        return self._writer_lease

    # --- drift and status -----------------------------------------------------------------------

    def drift(self, asked: Moment | None = None) -> DriftReport:
        return detect_drift(self, asked)

    def object_drift(self, oid: ObjectId) -> list[DriftItem]:
        return object_drift(self, oid)[1]

    def objects_drift(self, oids: list[ObjectId]) -> dict[ObjectId, list[DriftItem]]:
        return objects_drift(self, oids)

    def correct_object(self, oid: ObjectId) -> str:
        return correct_object(self, oid)

    # --- live state (the daemon's watches) ------------------------------------------------------

    def enable_live_cache(self) -> LiveCache:
        """Watch what this environment manages; plan, health and drift then read the cache."""
        if self.live is None:
            owners = ownership.owner_label_values(self.env.name, (s.name for s in self.env.stacks))
            self.live = LiveCache(self.cluster, ownership.OWNER_LABEL, owners, FIELD_MANAGER, hub=self._watch_hub)
            self.cluster.cache = self.live
        return self.live

    def load_inventory(self, create: bool) -> Inventory:
        """The environment's inventory, read now, and the key its hashes are made with: read once per engine, and
        again whenever the inventory is missing. Deleted by hand under a running daemon, the inventory is rebuilt
        from owner labels only where the key Secret says the environment synced before (`pipeline.recovery`);
        with the key taken from memory, the pass took the stacks for new and never pruned what Git dropped."""
        inventory = Inventory(self.cluster, self.env.name, self._records)
        inventory.load(create=create)
        if not self.hash_key or not inventory.found:
            self.hash_key = inventory.hash_key(create=create) or self.hash_key
        return inventory

    def status(self) -> EnvStatus:
        return stack_statuses(self)

    # --- ownership of this environment's objects (outside a pass: the environment in force now) ----

    def cluster_for(self, stack: str) -> Cluster:
        return PassContext(self.env, self.cluster).cluster_for(stack)

    def ownership(self, stack: str) -> ownership.Ownership:
        return PassContext(self.env, self.cluster, self.hash_key).ownership(stack)

    def selector(self, stack: str) -> str:
        return ownership.selector(self.env.name, stack)

    def owned(self, obj: K8sObject) -> K8sObject:
        return ownership.owned(self.env.name, obj)
