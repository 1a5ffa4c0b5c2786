"""Benchmark: the cold path against the API server's limit (issue 27, point 3). Side by side in one run:

    python bench/bench_cold_path.py [--objects 1000 5000] [--stacks 1 5] [--threads 16] [--repeat 3]
                                    [--kubeconfig PATH]

- bare client: N ConfigMaps server-side-applied by a plain `kubernetes` client, `--threads` at once
  (no render, no plan, no inventory, no health): what the API server allows this machine;
- ours: `reconciler sync` of the same N ConfigMaps (a new process, cold cache), in a namespace of its own
  that the first stack creates: in one stack, or split over `--stacks` (the others depend on the first);
- the design's requests, bare: the bare client sending exactly the requests the sync must send and nothing
  else (`design_floor`), so the sync's cost splits into what its guarantee costs the API server and what
  is its own.

Each side starts on a quiet machine (`wait_quiet`): right after the bare client's 1,000 or 5,000 writes the
control plane is still busy with them, and the side measured next would pay for it. Each side's namespace is
deleted after it (and gone before the next side starts), so every side meets the same cluster. Each side is
measured `--repeat` times, in rounds (bare, floor, ours); the table gives each side's median and every round's
ratio: one run moves by a quarter from run to run on a 2-core machine.

Prints seconds, apply and patch requests (the API server's `apiserver_request_total`, of the first round), the
ratio ours / bare and the ratio ours / the design's requests (of the medians).
Without --kubeconfig a devcluster is started for the run and stopped after it.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import git  # noqa: E402
import yaml  # noqa: E402
from kubernetes import client, config  # noqa: E402


def configmaps(namespace: str, count: int) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:05d}", "namespace": namespace},
             "data": {"key": f"value-{i}" * 4}} for i in range(count)]


def patches(kubeconfig: Path) -> int:
    """Apply and patch requests the API server has answered since it started (server-side apply counts as
    verb APPLY, dry runs included)."""
    text = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
                          capture_output=True, text=True, check=True).stdout
    return int(sum(float(v) for v in re.findall(r'^apiserver_request_total\{[^}]*verb="(?:PATCH|APPLY)"[^}]*\} (\S+)$',
                                                 text, re.M)))


def server_side_apply(core: client.CoreV1Api, obj: dict, manager: str, dry_run: bool = False) -> None:
    """One ConfigMap server-side-applied by the bare client (a dry run with `dry_run`)."""
    core.patch_namespaced_config_map(obj["metadata"]["name"], obj["metadata"]["namespace"], obj,
                                     field_manager=manager, force=True, _content_type="application/apply-patch+yaml",
                                     **({"dry_run": "All"} if dry_run else {}))


def bare_apply(api: client.ApiClient, objects: list[dict], threads: int) -> float:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": objects[0]["metadata"]["namespace"]}})

    def apply(obj: dict) -> None:
        server_side_apply(core, obj, "bench-bare")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(apply, objects))
    return time.perf_counter() - started


def design_floor(api: client.ApiClient, objects: list[dict], threads: int, stacks: int) -> float:
    """The requests `reconciler sync` must send, sent by the bare client with nothing else: the first stack
    creates the Namespace, then dry-runs and applies its share; then the other stacks at once, each
    dry-running its share before applying it (`threads` at a time a stack, as the sync does). What the
    design costs on this API server before any start-up, render or bookkeeping."""
    core = client.CoreV1Api(api)
    share = -(-len(objects) // stacks)
    parts = [objects[i * share:(i + 1) * share] for i in range(stacks)]

    def stack(part: list[dict]) -> None:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda obj: server_side_apply(core, obj, "bench-floor", dry_run=True), part))
            list(pool.map(lambda obj: server_side_apply(core, obj, "bench-floor"), part))

    started = time.perf_counter()
    core.create_namespace({"metadata": {"name": objects[0]["metadata"]["namespace"]}})
    stack(parts[0])
    with ThreadPoolExecutor(max_workers=max(1, stacks - 1)) as pool:
        list(pool.map(stack, parts[1:]))
    return time.perf_counter() - started


def reconciler_sync(root: Path, objects: list[dict], kubeconfig: Path, stacks: int = 1) -> float:
    """`reconciler sync` (a new process, empty render cache) of the objects split over `stacks` independent
    stacks; the first stack also holds their Namespace."""
    work = root / "repo"
    repo = git.Repo.init(work, initial_branch="main")
    namespace = objects[0]["metadata"]["namespace"]
    share = -(-len(objects) // stacks)
    for index in range(stacks):
        folder = work / f"stacks/app-{index}"
        folder.mkdir(parents=True)
        docs = objects[index * share:(index + 1) * share]
        if index == 0:
            docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, *docs]
        (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs))
        (folder / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
    repo.git.add(A=True)
    repo.git.commit("-qm", "objects", "--author", "Bench <bench@example.test>")
    env = root / "bench.yaml"
    stack_list = [{"name": f"app-{i}", "path": f"stacks/app-{i}", **({"dependsOn": ["app-0"]} if i else {})}
                  for i in range(stacks)]
    env.write_text(yaml.safe_dump({"name": namespace, "source": {"url": str(work), "branch": "main"},
                                   "policy": {"mode": "off"}, "stacks": stack_list}))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reconciler", "sync", "-e", str(env), "--cache-dir",
                           str(root / "cache"), "--kubeconfig", str(kubeconfig)], capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "b@example.test"})
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"reconciler sync failed: {done.stderr[-2000:]}")
    return elapsed


def machine_busy() -> float:
    """The machine's share of CPU time busy over the last 0.5 s (every core, from /proc/stat)."""
    def ticks() -> tuple[int, int]:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)
    busy0, total0 = ticks()
    time.sleep(0.5)
    busy1, total1 = ticks()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_quiet(limit: float = 0.15, timeout_s: float = 60.0) -> None:
    """Until the machine is mostly idle: the API server, etcd and the controllers have finished with what
    the previous measurement wrote (the garbage collector's graph, etcd's compaction), so that neither side
    pays for the other. Gives up after `timeout_s` (then the row is measured on a busier machine)."""
    deadline = time.monotonic() + timeout_s
    while machine_busy() > limit and time.monotonic() < deadline:
        pass


def remove_namespace(core: client.CoreV1Api, name: str, timeout_s: float = 300.0) -> None:
    """Delete a measured side's namespace and wait until it is gone, so that every side of every round
    starts on the same cluster (a cluster holding the earlier rounds' 10,000s of ConfigMaps is slower)."""
    core.delete_namespace(name)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except client.ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.5)
    raise SystemExit(f"namespace {name} still terminating after {timeout_s:.0f} s")


def measure_round(api: client.ApiClient, kubeconfig: Path, size: int, threads: int, stacks: int
                  ) -> dict[str, tuple[float, int]]:
    """One measurement of each side, each on a quiet machine and a cluster its predecessor left as it found
    it: seconds and apply/patch requests per side."""
    def ours(objects: list[dict]) -> float:
        with tempfile.TemporaryDirectory() as folder:
            return reconciler_sync(Path(folder), objects, kubeconfig, stacks)

    core = client.CoreV1Api(api)
    stamp = f"{size}-{stacks}-{int(time.time() * 1000) % 10_000_000}"
    sides = {"bare": lambda objects: bare_apply(api, objects, threads),
             "floor": lambda objects: design_floor(api, objects, threads, stacks), "ours": ours}
    figures = {}
    for side, run in sides.items():
        namespace = f"{side}-{stamp}"
        wait_quiet()
        before = patches(kubeconfig)
        figures[side] = (run(configmaps(namespace, size)), patches(kubeconfig) - before)
        remove_namespace(core, namespace)
    return figures


def summary_row(size: int, stacks: int, rounds: list[dict[str, tuple[float, int]]]) -> str:
    """The medians of each side over the rounds, the ratios of those medians, and every round's ratio."""
    def median_s(side: str) -> float:
        return statistics.median(r[side][0] for r in rounds)

    bare, floor, ours = median_s("bare"), median_s("floor"), median_s("ours")
    each = " / ".join(f"{r['ours'][0] / r['bare'][0]:.1f}" for r in rounds)
    where = "one stack" if stacks == 1 else f"{stacks} stacks"
    return (f"| {size:,} ConfigMaps, {where} | {bare:.2f} s, {rounds[0]['bare'][1]:,} applies | "
            f"{floor:.2f} s, {rounds[0]['floor'][1]:,} applies ({floor / bare:.1f}x) | "
            f"{ours:.2f} s, {rounds[0]['ours'][1]:,} applies | **{ours / bare:.1f}x** ({each}) | {ours / floor:.1f}x |")


def measure(kubeconfig: Path, sizes: list[int], threads: int, stack_counts: list[int], repeat: int) -> list[str]:
    api = config.new_client_from_config(str(kubeconfig))
    api.configuration.connection_pool_maxsize = threads
    rows = []
    for size in sizes:
        for stacks in stack_counts:
            rounds = []
            for index in range(repeat):
                rounds.append(measure_round(api, kubeconfig, size, threads, stacks))
                print(f"  {size:,} objects, {stacks} stack(s), round {index + 1}: " + ", ".join(
                    f"{side} {seconds:.2f} s" for side, (seconds, _) in rounds[-1].items()), flush=True)
            rows.append(summary_row(size, stacks, rounds))
            print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, nargs="+", default=[1000])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--stacks", type=int, nargs="+", default=[1], help="split the objects over this many stacks")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of every side (the table gives each side's median; one run on this 2-core "
                             "machine moves by a quarter from run to run)")
    parser.add_argument("--kubeconfig", type=Path, default=None)
    args = parser.parse_args()
    from devcluster.cluster import named_or_temporary

    with named_or_temporary(args.kubeconfig, prefix="cold-path-") as kubeconfig:
        rows = measure(kubeconfig, args.objects, args.threads, args.stacks, args.repeat)
    print(f"cold path, {date.today()}, {platform.machine()} {os.cpu_count()} cores; bare client: "
          f"{args.threads} threads of server-side apply; ours: `reconciler sync` (a new process, cold cache); "
          f"each side's median of {args.repeat} rounds (each round's ratio in brackets)\n")
    print(f"| objects | bare client ({args.threads} threads) | the design's requests, bare (ratio) | reconciler sync "
          "| ratio (each round) | ratio to the design's requests |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
