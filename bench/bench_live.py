"""Benchmark: how fast the daemon sees and answers what happens, beside the tools users compare it with.

    python bench/bench_live.py [--kubeconfig PATH] [--rounds 5] [--objects 1]

Runs the daemon in this process (HTTP server on 127.0.0.1, `sync.interval` 1 h so polling cannot be
what finds anything) against a devcluster it starts (unless KUBECONFIG is set), on an environment of
one stack holding `--objects` ConfigMaps, and measures per round:

- edit -> drift report: `kubectl`-style patch of a managed ConfigMap until /api/drift lists it;
- edit -> restored (correctDrift on): the same patch until the live value is Git's again;
- push -> applied: `git push` of a one-object change, a signed GitHub webhook, until the live value changed.

The anchors are the defaults the other tools document, not runs of them: Argo CD polls Git every
180 s (`timeout.reconciliation`) and finds drift at its next refresh; Flux's kustomize-controller finds
drift only at its Kustomization `interval` (the docs' examples use 10 m). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import git  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402
from kubernetes import client, config  # noqa: E402

from reconciler.config import load_environment  # noqa: E402
from reconciler.daemon.metrics import Metrics  # noqa: E402
from reconciler.daemon.notify import Notifier  # noqa: E402
from reconciler.daemon.server import ServerSecrets, ServerThread, create_app  # noqa: E402
from reconciler.daemon.service import Daemon, DaemonSettings, default_engine_factory  # noqa: E402
from reconciler.daemon.webhooks import github_signature  # noqa: E402

SECRET = "bench-webhook-secret"


def wait_until(condition: Callable[[], object], timeout_s: float = 60.0, step_s: float = 0.005) -> float:
    """Seconds until `condition` holds (sampled every 5 ms)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError("condition not reached")
        time.sleep(step_s)
    return time.monotonic() - started


class Setup:
    """A Git repository with one stack, pushed to a bare remote, and the environment file for it."""

    def __init__(self, root: Path, objects: int, correct_drift: bool, namespace: str, targets: int,
                 stacks: int = 1) -> None:
        self.namespace, self.targets, self.stacks = namespace, targets, stacks
        self.bare = git.Repo.init(root / "remote.git", bare=True, initial_branch="main")
        self.work = git.Repo.init(root / "work", initial_branch="main")
        with self.work.config_writer() as writer:
            writer.set_value("user", "name", "bench").set_value("user", "email", "bench@example.test")
        self.work.create_remote("origin", str(root / "remote.git"))
        self.objects = objects
        self.write("v0")
        self.env_file = root / "env.yaml"
        self.env_file.write_text(yaml.safe_dump({
            "name": f"bench-live-{'fix' if correct_drift else 'detect'}",
            "source": {"url": str(root / "remote.git"), "branch": "main"},
            "sync": {"interval": "1h", "correctDrift": correct_drift, "healthTimeout": "60s"},
            "policy": {"mode": "off"},
            "stacks": [{"name": "app", "path": "app"}] + [{"name": f"fill{i}", "path": f"fill{i}"}
                                                          for i in range(1, stacks)]}))

    def write(self, value: str) -> str:
        """The targets (stack `app`) carry `value`; the fillers are spread over the other stacks."""
        docs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"target-{i}", "namespace": self.namespace},
                 "data": {"value": value}} for i in range(self.targets)]
        docs += [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"filler-{i}", "namespace": self.namespace},
                  "data": {"i": str(i)}} for i in range(max(0, self.objects - self.targets))]
        targets, fillers = docs[:self.targets], docs[self.targets:]
        per_stack = -(-len(fillers) // max(1, self.stacks - 1)) if self.stacks > 1 else 0
        groups = [targets + (fillers if self.stacks == 1 else [])]
        groups += [fillers[i * per_stack:(i + 1) * per_stack] for i in range(self.stacks - 1)]
        for index, group in enumerate(groups):
            folder = Path(self.work.working_tree_dir) / ("app" if index == 0 else f"fill{index}")
            folder.mkdir(exist_ok=True)
            (folder / "objects.yaml").write_text(yaml.safe_dump_all(group))
            (folder / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
        self.work.git.add(A=True)
        self.work.index.commit(f"value {value}")
        self.work.git.push("origin", "main")
        return self.work.head.commit.hexsha


def run_daemon(setup: Setup, kubeconfig: Path, cache: Path) -> tuple[Daemon, ServerThread, str]:
    env = load_environment(setup.env_file)
    metrics = Metrics()
    daemon = Daemon([env], default_engine_factory(cache, kubeconfig), settings=DaemonSettings(poll=False),
                    metrics=metrics, notifier=Notifier([], metrics))
    server = ServerThread(create_app(daemon, ServerSecrets("token", SECRET, "gitlab")), "127.0.0.1", 0)
    server.start()
    daemon.start()
    wait_until(lambda: daemon.workers[env.name].wait_idle(0.05) and daemon.states[env.name].last_drift, 300)
    wait_until(lambda: daemon.engines[env.name].live.wait_synced(0.1), 60)
    return daemon, server, f"http://127.0.0.1:{server.port}"


def live_value(core: client.CoreV1Api, namespace: str, name: str = "target-0") -> str:
    return core.read_namespaced_config_map(name, namespace).data["value"]


def edit(core: client.CoreV1Api, namespace: str, name: str, value: str) -> None:
    """A change by someone else; each round edits its own object (one object corrected 3 times a minute is
    reported as flapping, by design)."""
    core.patch_namespaced_config_map(name, namespace, {"data": {"value": value}}, field_manager="bench-editor")


def bench_detect(root: Path, kubeconfig: Path, core: client.CoreV1Api, rounds: int, objects: int,
                 stacks: int) -> list[float]:
    setup = Setup(root / "detect", objects, correct_drift=False, namespace="bench-live-detect", targets=rounds,
                  stacks=stacks)
    daemon, server, base = run_daemon(setup, kubeconfig, root / "cache-detect")
    env = load_environment(setup.env_file).name

    def drifted(value: str) -> bool:
        report = requests.get(f"{base}/api/drift", params={"env": env}, timeout=5).json()["report"] or {}
        return any(f.get("live") == value for i in report.get("items", []) for f in i["fields"])

    try:
        latencies = []
        for index in range(rounds):
            value = f"edited-{index}"
            edit(core, setup.namespace, f"target-{index}", value)
            latencies.append(wait_until(lambda: drifted(value), 30))
        return latencies
    finally:
        daemon.stop(30)
        server.stop()


def bench_correct_and_push(root: Path, kubeconfig: Path, core: client.CoreV1Api, rounds: int,
                           objects: int, stacks: int) -> tuple[list[float], list[float]]:
    setup = Setup(root / "correct", objects, correct_drift=True, namespace="bench-live-fix", targets=rounds,
                  stacks=stacks)
    daemon, server, base = run_daemon(setup, kubeconfig, root / "cache-correct")
    try:
        restored = []
        for index in range(rounds):
            edit(core, setup.namespace, f"target-{index}", f"edited-{index}")
            restored.append(wait_until(lambda: live_value(core, setup.namespace, f"target-{index}") == "v0", 30))
        pushed = []
        for index in range(rounds):
            value = f"v{index + 1}"
            sha = setup.write(value)
            body = json.dumps({"ref": "refs/heads/main", "after": sha, "deleted": False, "pusher": {"name": "bench"},
                               "repository": {"clone_url": str(setup.bare.git_dir)}}).encode()
            started = time.monotonic()
            answer = requests.post(f"{base}/hooks/github", data=body, timeout=5, headers={
                "X-GitHub-Event": "push", "X-Hub-Signature-256": github_signature(SECRET, body)})
            assert answer.status_code == 202, answer.text
            wait_until(lambda: live_value(core, setup.namespace) == value, 60)
            pushed.append(time.monotonic() - started)
        return restored, pushed
    finally:
        daemon.stop(30)
        server.stop()


def bench_dependents(root: Path, kubeconfig: Path, rounds: int) -> list[float]:
    """Stack `db` (a Deployment) and `app` depending on it: from the watch event that shows the rolled-out
    Deployment ready to the dependent stack's plan starting."""
    from datetime import datetime

    from reconciler.kube.health import deployment_ready

    namespace = "bench-live-deps"
    work = git.Repo.init(root / "deps", initial_branch="main")
    with work.config_writer() as writer:
        writer.set_value("user", "name", "bench").set_value("user", "email", "bench@example.test")

    def commit(version: int) -> None:
        folder = Path(work.working_tree_dir)
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "db", "namespace": namespace},
                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "db"}}, "template": {
                          "metadata": {"labels": {"app": "db"}, "annotations": {"version": str(version)}},
                          "spec": {"containers": [{"name": "db", "image": "registry.k8s.io/pause:3.10"}]}}}}
        app = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": namespace},
               "data": {"version": str(version)}}
        for name, doc in (("db", deployment), ("app", app)):
            (folder / name).mkdir(exist_ok=True)
            (folder / name / "objects.yaml").write_text(yaml.safe_dump(doc))
            (folder / name / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
        work.git.add(A=True)
        work.index.commit(f"version {version}")

    commit(0)
    (root / "deps.yaml").write_text(yaml.safe_dump({
        "name": "bench-deps", "source": {"url": work.working_tree_dir, "branch": "main"},
        "sync": {"interval": "1h", "healthTimeout": "120s"}, "policy": {"mode": "off"},
        "stacks": [{"name": "db", "path": "db"}, {"name": "app", "path": "app", "dependsOn": ["db"]}]}))
    env = load_environment(root / "deps.yaml")
    engine = default_engine_factory(root / "cache-deps", kubeconfig)(env)
    engine.enable_live_cache()
    engine.sync()
    assert engine.live.wait_synced(60)
    ready_at: list[float] = []
    engine.live.subscribe(lambda e: ready_at.append(e.seen_at) if e.key.kind == "Deployment" and e.object
                          and deployment_ready(e.object) is None else None)
    gaps = []
    for version in range(1, rounds + 1):
        commit(version)
        ready_at.clear()
        planned: list[float] = []
        engine.sync(progress=lambda e: planned.append(datetime.now().timestamp())
                    if e.stack == "app" and e.phase == "plan" else None)
        gaps.append(planned[0] - ready_at[0])
    client.CoreV1Api(engine.api_client).delete_namespace(namespace)
    engine.live.stop()
    return gaps


def row(what: str, values: list[float], anchor: str) -> str:
    return (f"| {what} | {statistics.median(values) * 1000:.0f} ms | {max(values) * 1000:.0f} ms | {anchor} | "
            f"{180 / statistics.median(values):,.0f}x |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--objects", type=int, default=1, help="ConfigMaps in the environment (targets plus fillers)")
    parser.add_argument("--stacks", type=int, default=1, help="stacks: `app` holds the targets, the others the fillers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cluster_dir = None
        if args.kubeconfig is None:
            from devcluster.cluster import up

            cluster_dir = root / "devcluster"
            args.kubeconfig = up(cluster_dir).kubeconfig
        try:
            core = client.CoreV1Api(config.new_client_from_config(config_file=str(args.kubeconfig)))
            for namespace in ("bench-live-detect", "bench-live-fix", "bench-live-deps"):
                if namespace in {n.metadata.name for n in core.list_namespace().items}:
                    core.delete_namespace(namespace)  # left by an interrupted run
                wait_until(lambda: namespace not in {n.metadata.name for n in core.list_namespace().items}, 180, 0.5)
                core.create_namespace({"metadata": {"name": namespace}})
            try:
                detect = bench_detect(root, args.kubeconfig, core, args.rounds, args.objects, args.stacks)
                restored, pushed = bench_correct_and_push(root, args.kubeconfig, core, args.rounds, args.objects,
                                                          args.stacks)
            finally:
                for namespace in ("bench-live-detect", "bench-live-fix"):
                    core.delete_namespace(namespace)
            dependents = bench_dependents(root, args.kubeconfig, args.rounds)
        finally:
            if cluster_dir is not None:
                from devcluster.cluster import down

                down(cluster_dir, quiet=True)
    print(f"\nLive-state latencies, {args.rounds} rounds, {max(args.objects, args.rounds)} managed ConfigMaps per environment in {args.stacks} stack(s), {date.today()}, "
          f"{os.cpu_count()} cores; sync.interval 1 h\n")
    print("| measurement | median | max | anchor (documented default) | vs Argo CD's 180 s |")
    print("|---|---|---|---|---|")
    print(row("edit in the cluster -> drift report (/api/drift)", detect,
              "Argo CD: next refresh, 180 s poll; Flux: the interval (10 m in its docs)"))
    print(row("edit in the cluster -> restored (correctDrift)", restored,
              "Argo CD self-heal: after its next refresh; Flux: the interval"))
    print(row("signed push webhook -> change live", pushed, "Argo CD with webhook: seconds; without: 180 s poll"))
    print(row("dependency ready (watch event) -> dependent stack planning", dependents,
              "Flux: dependents requeue every 30 s (--requeue-dependency) until ready"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
