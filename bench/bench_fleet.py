"""Benchmark: a fleet of environments in one daemon (issue 27, point 1, on one cluster and one replica).

    python bench/bench_fleet.py [--envs 100] [--stacks 10] [--objects 10] [--idle 120] [--kubeconfig PATH]

Builds one Git repository: a base every stack uses (one ConfigMap) and, per environment, `--stacks`
stacks in a dependency chain (stack k depends on stack k-1), each `--objects` ConfigMaps plus the
base's, all in the environment's own namespace (the first stack creates it). One daemon (`reconciler
run`, live cache on, a subprocess) follows all of them. Prints, from one run:

- cold convergence: from the daemon's start until every stack of every environment is applied and healthy;
- idle for `--idle` seconds after it: API requests per minute the daemon sends (the API server's
  `apiserver_request_total`, less what the control plane sends with no daemon running, measured first
  for as long), watches it holds open (`apiserver_longrunning_requests`, less the same baseline), and
  the daemon's threads, open files, TCP connections to the API server and RSS (peak: VmHWM);
- a push to the base: from the webhook until every environment's last stack shows the new commit,
  healthy (p50 / p95 / max over the environments).

Without --kubeconfig a devcluster of its own is started (11 kwok nodes) and stopped after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import git  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

from reconciler.daemon.webhooks import github_signature  # noqa: E402

SECRET = "bench-fleet"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_base(work: Path, value: str) -> None:
    (work / "base").mkdir(exist_ok=True)
    (work / "base/shared.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"value": value}}))
    (work / "base/kustomization.yaml").write_text("resources: [shared.yaml]\n")


def build_fleet(root: Path, envs: int, stacks: int, objects: int) -> tuple[git.Repo, Path]:
    """The repository (committed) and the folder of environment files."""
    work = root / "repo"
    repo = git.Repo.init(work, initial_branch="main")
    write_base(work, "v0")
    folder = root / "environments"
    folder.mkdir()
    for e in range(envs):
        namespace = f"fleet-{e:03}"
        for s in range(stacks):
            stack = work / f"envs/{namespace}/s{s}"
            stack.mkdir(parents=True)
            docs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"s{s}-cm-{i}"},
                     "data": {"i": str(i)}} for i in range(objects)]
            if s == 0:
                docs.insert(0, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            (stack / "objects.yaml").write_text(yaml.safe_dump_all(docs))
            suffix = {"nameSuffix": f"-s{s}"} if s else {}  # not on the first: it holds the Namespace
            (stack / "kustomization.yaml").write_text(yaml.safe_dump(
                {"namespace": namespace, **suffix, "resources": ["objects.yaml", "../../../base"]}))
        (folder / f"{namespace}.yaml").write_text(yaml.safe_dump({
            "name": namespace, "source": {"url": str(work), "branch": "main"},
            "sync": {"interval": "1h", "healthTimeout": "120s"}, "policy": {"mode": "off"},
            "stacks": [{"name": f"s{s}", "path": f"envs/{namespace}/s{s}", **({"dependsOn": [f"s{s - 1}"]} if s else {})}
                       for s in range(stacks)]}))
    repo.git.add(A=True)
    repo.git.commit("-qm", "fleet", "--author", "Bench <bench@example.test>")
    return repo, folder


def apiserver_metrics(kubeconfig: Path) -> tuple[float, float]:
    """(requests answered since start, watches open now), over all clients."""
    text = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
                          capture_output=True, text=True, check=True).stdout
    requests_total = sum(float(v) for v in re.findall(r"^apiserver_request_total\{[^}]*\} (\S+)$", text, re.M))
    watches = sum(float(v) for v in re.findall(
        r'^apiserver_longrunning_requests\{[^}]*verb="WATCH"[^}]*\} (\S+)$', text, re.M))
    return requests_total, watches


def process_figures(pid: int, api_port: int) -> dict[str, float]:
    """Threads, open files, TCP connections to the API server, RSS and peak RSS (MiB) of one process."""
    status = Path(f"/proc/{pid}/status").read_text()
    field = lambda name: int(re.search(rf"^{name}:\s+(\d+)", status, re.M).group(1))  # noqa: E731
    fds = list(Path(f"/proc/{pid}/fd").iterdir())
    sockets = set()
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets.add(target[8:-1])
    connections = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            parts = line.split()
            if parts[9] in sockets and int(parts[2].rsplit(":", 1)[1], 16) == api_port:
                connections += 1
    return {"threads": field("Threads"), "fds": len(fds),
            "connections": connections, "rss": field("VmRSS") / 1024, "peak": field("VmHWM") / 1024}


def cpu_seconds(pid: int) -> tuple[float, float, float]:
    """CPU seconds so far: of the process itself, of its children it has waited for (kustomize, git), and
    of the whole machine (every core's busy time)."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own, children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
    busy = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return own / ticks, children / ticks, (sum(busy) - busy[3] - busy[4]) / ticks  # less idle and iowait


def stacks_at(port: int, sha: str | None = None) -> dict[str, int]:
    """Per environment, how many of its stacks are applied and healthy (at commit `sha`, when given)."""
    try:
        data = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=30,
                            headers={"Authorization": "Bearer bench"}).json()
    except (requests.RequestException, ValueError):
        return {}
    return {env["name"]: sum(1 for s in env["stacks"] if s["state"] in ("applied", "unchanged") and s["healthy"]
                             and (sha is None or s["commit"] == sha)) for env in data.get("envs", [])}


def wait(condition, timeout_s: float, what: str, poll_s: float = 0.5) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - started


def push_fan_out(repo: git.Repo, port: int, envs: int, stacks: int) -> list[float]:
    """Commit a new base value, send the push webhook; per environment, seconds until all its stacks show it."""
    write_base(Path(repo.working_tree_dir), "v1")
    repo.git.add(A=True)
    repo.git.commit("-qm", "base v1", "--author", "Bench <bench@example.test>")
    sha = repo.head.commit.hexsha
    body = json.dumps({"ref": "refs/heads/main", "after": sha, "deleted": False, "pusher": {"name": "bench"},
                       "repository": {"clone_url": str(repo.working_tree_dir)}}).encode()
    started = time.monotonic()
    answer = requests.post(f"http://127.0.0.1:{port}/hooks/github", data=body, timeout=30, headers={
        "X-GitHub-Event": "push", "X-Hub-Signature-256": github_signature(SECRET, body)})
    if answer.status_code != 202:
        raise SystemExit(f"webhook refused: {answer.status_code} {answer.text}")
    done: dict[str, float] = {}
    while len(done) < envs:
        if time.monotonic() - started > 600:
            raise SystemExit(f"fan-out incomplete after 600 s: {len(done)} of {envs} environments")
        for name, count in stacks_at(port, sha).items():
            if count == stacks and name not in done:
                done[name] = time.monotonic() - started
        time.sleep(0.5)
    return sorted(done.values())


def run(kubeconfig: Path, args: argparse.Namespace) -> list[str]:
    from kubernetes import config

    api_port = int(config.new_client_from_config(str(kubeconfig)).configuration.host.rsplit(":", 1)[1])
    rows = []
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        root = Path(tmp)
        repo, folder = build_fleet(root, args.envs, args.stacks, args.objects)
        base_requests, base_watches = apiserver_metrics(kubeconfig)
        time.sleep(args.idle)  # the control plane alone, for the baseline
        quiet_requests, quiet_watches = apiserver_metrics(kubeconfig)
        baseline_per_min = (quiet_requests - base_requests) * 60 / args.idle
        port = free_port()
        log = open(root / "daemon.log", "w")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--environments", str(folder), "--listen", f"127.0.0.1:{port}",
             "--cache-dir", str(root / "cache"), "--kubeconfig", str(kubeconfig), "--no-kubernetes-events",
             "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            env={**os.environ, "RECONCILER_API_TOKEN": "bench", "RECONCILER_GITHUB_WEBHOOK_SECRET": SECRET})
        try:
            total = args.envs * args.stacks
            cold_s = wait(lambda: sum(stacks_at(port).values()) == total, 1800, "the cold sync", poll_s=2)
            rows.append(f"| cold convergence: {args.envs} environments x {args.stacks} stacks "
                        f"({args.envs * args.stacks * (args.objects + 1):,} objects) | {cold_s:.1f} s |")
            time.sleep(15)  # the live caches settle (their first LISTs) before the idle window
            before, _ = apiserver_metrics(kubeconfig)
            time.sleep(args.idle)
            after, watches = apiserver_metrics(kubeconfig)
            figures = process_figures(daemon.pid, api_port)
            rows.append(f"| idle: API requests per minute (control plane alone: {baseline_per_min:.0f} subtracted) | "
                        f"{(after - before) * 60 / args.idle - baseline_per_min:.0f} |")
            rows.append(f"| idle: watches open (control plane alone: {quiet_watches:.0f} subtracted) | "
                        f"{watches - quiet_watches:.0f} |")
            rows.append(f"| idle: threads / open files / TCP connections to the API server | "
                        f"{figures['threads']:.0f} / {figures['fds']:.0f} / {figures['connections']:.0f} |")
            rows.append(f"| RSS idle / peak (VmHWM) | {figures['rss']:.0f} MiB / {figures['peak']:.0f} MiB |")
            cpu_before = cpu_seconds(daemon.pid)
            fan_out = push_fan_out(repo, port, args.envs, args.stacks)
            own, children, machine = (after - before for after, before in zip(cpu_seconds(daemon.pid), cpu_before))
            p95 = fan_out[max(0, int(len(fan_out) * 0.95) - 1)]
            rows.append(f"| push to the shared base until every environment shows it live: p50 / p95 / max | "
                        f"{statistics.median(fan_out):.1f} / {p95:.1f} / {fan_out[-1]:.1f} s |")
            rows.append(f"| push: CPU seconds of the daemon / its subprocesses (kustomize, git) / everything else "
                        f"(control plane) | {own:.1f} / {children:.1f} / {machine - own - children:.1f} |")
            rows.append(f"| RSS peak after the push | {process_figures(daemon.pid, api_port)['peak']:.0f} MiB |")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(120)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=100)
    parser.add_argument("--stacks", type=int, default=10)
    parser.add_argument("--objects", type=int, default=10, help="ConfigMaps per stack (plus the base's)")
    parser.add_argument("--idle", type=int, default=120, help="seconds of each idle window")
    parser.add_argument("--kubeconfig", type=Path)
    args = parser.parse_args()
    from devcluster.cluster import named_or_temporary

    with named_or_temporary(args.kubeconfig, nodes=11, prefix="fleet-cluster-") as kubeconfig:
        rows = run(kubeconfig, args)
    print(f"fleet, {date.today()}, {platform.machine()} {os.cpu_count()} cores, one daemon, one cluster\n")
    print("| measurement | result |\n|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
