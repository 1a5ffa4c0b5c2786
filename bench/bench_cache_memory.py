"""Benchmark: what the live cache costs in memory per managed object.

    python bench/bench_cache_memory.py [--objects 10000] [--kubeconfig PATH]

Creates N labelled ConfigMaps (a few hundred bytes each, like the platform's) in one namespace,
syncs a LiveCache on them, and prints the process's resident memory before and after, and the
API requests the sync made. Starts its own devcluster unless KUBECONFIG is set. Argo CD's
application controller, which caches every kind in the cluster, is reported at 7-13 GB on large
clusters (argo-cd#3241, #7647); the issue's budget for us is < 100 MiB at 10,000 objects.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from kubernetes import client, config  # noqa: E402

from reconciler.kube.cluster import FIELD_MANAGER, Cluster, new_api_client  # noqa: E402
from reconciler.kube.livecache import LiveCache, WatchKey  # noqa: E402

LABEL = "reconciler.healthflow.io/owner"
NAMESPACE = "bench-cache-memory"


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def create(core: client.CoreV1Api, count: int) -> float:
    body = lambda i: {"metadata": {"name": f"cm-{i}", "labels": {LABEL: "bench.app", "app": f"a{i % 50}"}},  # noqa: E731
                      "data": {"config.yaml": f"service: svc-{i}\nport: {8000 + i % 1000}\n" + "x: y\n" * 20}}
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: core.create_namespaced_config_map(NAMESPACE, body(i)), range(count)))
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster_dir = None
        if args.kubeconfig is None:
            from devcluster.cluster import up

            cluster_dir = Path(tmp) / "devcluster"
            args.kubeconfig = up(cluster_dir).kubeconfig
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(args.kubeconfig)))
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        try:
            created_s = create(core, args.objects)
            gc.collect()
            before = rss_mib()
            cluster = Cluster(new_api_client(args.kubeconfig))
            cache = LiveCache(cluster, LABEL, {"bench.app"}, FIELD_MANAGER)
            started = time.monotonic()
            cache.ensure({WatchKey("v1", "ConfigMap", NAMESPACE)})
            assert cache.wait_synced(600)
            synced_s = time.monotonic() - started
            gc.collect()
            after = rss_mib()
            held = cache.stats()["objects"]["ConfigMap"]
            cache.stop()
        finally:
            core.delete_namespace(NAMESPACE)
            if cluster_dir is not None:
                from devcluster.cluster import down

                down(cluster_dir, quiet=True)
    print(f"\nLive cache memory, {date.today()}, {os.cpu_count()} cores ({args.objects} ConfigMaps created in "
          f"{created_s:.1f} s)\n")
    print("| measurement | result |\n|---|---|")
    print(f"| objects held | {held} |")
    print(f"| first sync (LIST + watch started) | {synced_s:.2f} s, {cluster.request_counts()} |")
    print(f"| resident memory before / after | {before:.0f} MiB / {after:.0f} MiB |")
    print(f"| added by the cache | {after - before:.0f} MiB ({(after - before) * 1024 / max(held, 1):.1f} KiB per object; "
          f"budget < 100 MiB at 10,000) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
