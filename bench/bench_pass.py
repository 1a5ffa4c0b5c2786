"""Benchmark: what a reconcile pass of this repository's platform costs. Prints a Markdown table.

    python bench/bench_pass.py [--env dev] [--kubeconfig PATH]

Without --kubeconfig (and KUBECONFIG unset) it starts a devcluster in a temp folder and stops it
afterwards. Measures: render of every stack (cold, then from the render cache), policy evaluation
of the whole prod environment, the first sync of the environment, a steady-state pass (nothing
changed) with its API request count, a plan, a synthetic environment of --synthetic objects
(default 600) to show that a steady-state pass costs requests per kind, not per object, and the
process's peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from reconciler.config import load_environment  # noqa: E402
from reconciler.pipeline.engine import Engine  # noqa: E402


def timed(action):
    started = time.perf_counter()
    value = action()
    return value, time.perf_counter() - started


def bench_render_and_policy(env_name: str, cache: Path) -> list[tuple[str, str]]:
    from reconciler.policy import evaluate, load_policies

    engine = Engine(load_environment(REPO_ROOT / "environments" / f"{env_name}.yaml"), cache_dir=cache)
    cold, cold_s = timed(engine.render)
    _, warm_s = timed(engine.render)
    objects = sum(len(v) for v in cold.objects.values())
    policies = load_policies(cold.tree / "policies", env_name)
    runs = [timed(lambda: evaluate(cold.objects, policies, date.today()))[1] for _ in range(20)]
    return [
        (f"render {env_name}: {len(cold.objects)} stacks, {objects} objects (kustomize, cold cache)", f"{cold_s:.2f} s"),
        (f"render {env_name}: same commit again (render cache hit)", f"{warm_s:.3f} s"),
        (f"policy evaluation {env_name}: {objects} objects, {len(policies.rules) if hasattr(policies, 'rules') else 'all'} rules (median of 20)",
         f"{statistics.median(runs) * 1000:.1f} ms"),
    ]


def bench_sync(env_name: str, cache: Path, kubeconfig: Path) -> list[tuple[str, str]]:
    engine = Engine(load_environment(REPO_ROOT / "environments" / f"{env_name}.yaml"), cache_dir=cache,
                    kubeconfig=kubeconfig)
    first, first_s = timed(engine.sync)
    objects = sum(len(s.changes) for s in first.stacks)
    engine.sync()  # settles per-stack state (applied -> unchanged)
    steady = [timed(engine.sync) for _ in range(5)]
    plan, plan_s = timed(engine.plan)
    steady_s = statistics.median(s for _, s in steady)
    requests = steady[-1][0]
    return [
        (f"first sync {env_name}: {objects} objects, 5 stacks, health-gated ({'ok' if first.ok else 'FAILED'})",
         f"{first_s:.1f} s, {first.total_requests} requests"),
        ("steady-state pass, nothing changed (median of 5)",
         f"{steady_s:.2f} s, {requests.total_requests} requests {dict(sorted(requests.api_requests.items()))}"),
        ("plan (dry run) of the synced environment", f"{plan_s:.2f} s, {plan.total_requests} requests"),
    ]


def synthetic_repo(root: Path, objects: int, stacks: int = 5) -> Path:
    """A Git repo of `stacks` chained stacks, each a namespace with ConfigMaps, Services and Deployments."""
    import git
    import yaml

    repo = git.Repo.init(root / "repo", initial_branch="main")
    per_stack = objects // stacks
    for index in range(stacks):
        name, namespace = f"s{index}", f"bench-s{index}"
        docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
        for item in range(per_stack - 1):  # each Service selects the pods of its Deployment
            kind = ("ConfigMap", "Deployment", "Service")[item % 3]
            docs.append(_synthetic_object(kind, f"o{item // 3}", namespace))
        folder = root / "repo" / "stacks" / name
        folder.mkdir(parents=True)
        (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs))
        (folder / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
    repo.git.add(A=True)
    repo.index.commit("synthetic")
    env = {"name": "bench", "source": {"url": str(root / "repo")}, "sync": {"healthTimeout": "5m"},
           "policy": {"mode": "off"},
           "stacks": [{"name": f"s{i}", "path": f"stacks/s{i}", **({"dependsOn": [f"s{i - 1}"]} if i else {})}
                      for i in range(stacks)]}
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(env))
    return path


def _synthetic_object(kind: str, name: str, namespace: str) -> dict:
    meta = {"name": name, "namespace": namespace}
    if kind == "ConfigMap":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta, "data": {"key": name * 4}}
    if kind == "Service":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta,
                "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": name}}}
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": {
        "replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10", "ports": [{"containerPort": 8080}],
                            "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}]}}}}


def bench_synthetic(objects: int, tmp: Path, kubeconfig: Path) -> list[tuple[str, str]]:
    env_file = synthetic_repo(tmp / "synthetic", objects)
    engine = Engine(load_environment(env_file), cache_dir=tmp / "cache-synthetic", kubeconfig=kubeconfig)
    first, first_s = timed(engine.sync)
    engine.sync()
    steady = [timed(engine.sync) for _ in range(3)]
    steady_s = statistics.median(s for _, s in steady)
    result = steady[-1][0]
    for namespace in {o.id.name for objs in engine.render().objects.values() for o in objs if o.kind == "Namespace"}:
        engine.cluster.delete("v1", "Namespace", "", namespace)
    return [
        (f"synthetic: first sync of {objects} objects (5 chained stacks, 1/3 Deployments, health-gated)",
         f"{first_s:.1f} s, {first.total_requests} requests ({'ok' if first.ok else 'FAILED: ' + first.error})"),
        (f"synthetic: steady-state pass of {objects} objects (median of 3)",
         f"{steady_s:.2f} s, {result.total_requests} requests {dict(sorted(result.api_requests.items()))}"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--synthetic", type=int, default=600, help="objects in the synthetic scale test (0: skip; a third become pods)")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        rows += bench_render_and_policy("prod", Path(tmp) / "cache-prod")
        kubeconfig, state_dir = args.kubeconfig, None
        if kubeconfig is None:
            from devcluster.cluster import down, up

            state_dir = Path(tmp) / "devcluster"
            (_, up_s) = timed(lambda: up(state_dir))
            rows.append(("devcluster up (binaries cached): etcd, apiserver, controllers, scheduler, kwok, 3 nodes",
                         f"{up_s:.1f} s"))
            kubeconfig = state_dir / "kubeconfig"
        try:
            rows += bench_sync(args.env, Path(tmp) / "cache-sync", Path(kubeconfig))
            if args.synthetic:
                rows += bench_synthetic(args.synthetic, Path(tmp), Path(kubeconfig))
        finally:
            if state_dir is not None:
                down(state_dir, quiet=True)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak memory of the reconciler process (RSS)", f"{peak_mib:.0f} MiB"))
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
