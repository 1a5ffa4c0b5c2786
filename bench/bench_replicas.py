"""Leader election at scale: 30 small environments, 3 daemon replicas (`reconciler run
--leader-election`, one process each), then one replica SIGKILLed.

    python bench/bench_replicas.py [--envs 30] [--replicas 3] [--kubeconfig PATH]

Prints how many environments each replica leads and how many passes it ran, and how long the
survivors took to lead every environment again after the kill (default Lease timing: duration
15 s, renew deadline 10 s, retry period 2 s). Starts its own devcluster unless --kubeconfig.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import git  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environments(root: Path, count: int) -> Path:
    repo = git.Repo.init(root / "repo", initial_branch="main")
    for index in range(count):  # one stack folder per environment, each in a namespace of its own
        folder = root / "repo" / f"rep{index:02}"
        folder.mkdir(parents=True)
        (folder / "objects.yaml").write_text(yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-rep{index:02}"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": f"bench-rep{index:02}"},
             "data": {"v": "1"}}]))
        (folder / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
    repo.git.add(A=True)
    repo.index.commit("one ConfigMap")
    envs = root / "environments"
    envs.mkdir()
    for index in range(count):
        name = f"rep{index:02}"
        (envs / f"{name}.yaml").write_text(yaml.safe_dump({
            "name": name, "source": {"url": str(root / "repo")}, "sync": {"interval": "1h"}, "policy": {"mode": "off"},
            "stacks": [{"name": "app", "path": name}]}))
    return envs


def status(port: int) -> dict | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()
    except (requests.RequestException, ValueError):
        return None


def leading(port: int) -> set[str]:
    data = status(port) or {"envs": []}
    return {e["name"] for e in data["envs"] if e.get("leader")}


def passes(port: int) -> int:
    data = status(port) or {"runs": []}
    return sum(1 for r in data.get("runs", []) if r.get("state") in ("succeeded", "failed"))


def wait(condition, timeout_s: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise SystemExit("timed out")
        time.sleep(0.2)
    return time.monotonic() - started


def run(kubeconfig: Path, count: int, replicas: int) -> None:
    with tempfile.TemporaryDirectory(prefix="replicas-") as tmp:
        root = Path(tmp)
        envs = environments(root, count)
        ports = {f"replica-{i}": free_port() for i in range(replicas)}
        processes = {}
        for name, port in ports.items():
            log = open(root / f"{name}.log", "w")
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "run", "--environments", str(envs), "--listen",
                 f"127.0.0.1:{port}", "--cache-dir", str(root / f"cache-{name}"), "--kubeconfig", str(kubeconfig),
                 "--identity", name, "--leader-election", "--lease-namespace", "bench-replicas",
                 "--no-kubernetes-events", "--no-watch", "--log-level", "warning"],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                env={**os.environ, "RECONCILER_API_TOKEN": "bench"})
        try:
            spread_s = wait(lambda: sum(len(leading(p)) for p in ports.values()) == count
                            and max(len(leading(p)) for p in ports.values()) <= -(-count // replicas), 300)
            wait(lambda: sum(passes(p) for p in ports.values()) >= count, 300)
            print(f"## {count} environments, {replicas} replicas, default Lease timing\n")
            print("| replica | environments led | passes run |\n|---|---|---|")
            for name, port in ports.items():
                print(f"| {name} | {len(leading(port))} | {passes(port)} |")
            print(f"\nevery environment led, at most ceil({count}/{replicas}) each, {spread_s:.1f} s after start")
            victim = next(iter(processes))
            before = {name: leading(port) for name, port in ports.items()}
            processes[victim].send_signal(signal.SIGKILL)
            survivors = [p for n, p in ports.items() if n != victim]
            takeover_s = wait(lambda: sum(len(leading(p)) for p in survivors) == count, 300)
            print(f"SIGKILL of {victim} (leading {len(before[victim])}): the survivors led all {count} "
                  f"again after {takeover_s:.1f} s; now " +
                  ", ".join(f"{n}: {len(leading(p))}" for n, p in ports.items() if n != victim))
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes.values():
                process.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=30)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--kubeconfig", type=Path)
    args = parser.parse_args()
    from devcluster.cluster import named_or_temporary

    with named_or_temporary(args.kubeconfig, prefix="replicas-cluster-") as kubeconfig:
        run(kubeconfig, args.envs, args.replicas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
