"""Benchmark: what a reconcile pass of this repository's platform costs. Prints a Markdown table.

    python bench/bench_pass.py [--env dev] [--kubeconfig PATH]

Without --kubeconfig (and KUBECONFIG unset) it starts a devcluster in a temp folder and stops it
afterwards. Measures: render of every stack (cold, then from the render cache), policy evaluation
of the whole prod environment, the first sync of the environment, a steady-state pass (nothing
changed) with its API request count, a plan, and the process's peak memory.
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
from reconciler.engine import Engine  # noqa: E402


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
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
