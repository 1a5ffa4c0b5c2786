"""Benchmark: a fleet of environments over several clusters, reconciled by daemon replicas, beside Flux.

    python bench/bench_fleet.py [--envs 100] [--stacks 10] [--objects 10] [--idle 120]
                                [--clusters 3] [--replicas 3] [--no-flux] [--kubeconfig PATH]
                                [--pushes 3] [--profile DIR]

Builds one Git repository: a base every stack uses (one ConfigMap) and, per environment, `--stacks`
stacks in a dependency chain (stack k depends on stack k-1), each `--objects` ConfigMaps plus the
base's, all in the environment's own namespace (the first stack creates it). Environments are spread
round-robin over `--clusters` devclusters of its own (11 kwok nodes each; or the one --kubeconfig
names). `--replicas` daemons (`reconciler run --leader-election`, live cache on, subprocesses) follow
all of them. Prints, from one run:

- cold convergence: from the daemons' start until every stack of every environment is applied and healthy;
- idle for `--idle` seconds after it, per cluster: API requests per minute (the API server's
  `apiserver_request_total`, less what that control plane sends with no daemon running, measured first
  for as long) and watches open (`apiserver_longrunning_requests`, less the same baseline); per
  replica: threads, open files, TCP connections to the API servers and RSS (peak: VmHWM);
- `--pushes` pushes to the base, one after another: from the webhook (to one replica; it forwards to the
  leaders) until every environment's last stack shows the new commit, healthy (p50 / p95 / max over the
  environments; and the median of the pushes' p95), twice: when the daemon recorded it (the end of the
  pass that made it live, the `last_run` time its status gives, by this machine's clock), and when the
  bench's poll of the status (every 0.5 s, each replica asked in turn) first saw it, up to half a second
  and a status request later; and per push on average the CPU seconds it took
  and the API requests the control planes answered meanwhile (from every client: the daemons, their
  lease renewals, the control planes' own), per stack;
- the same with the replica leading the most environments SIGKILLed one second into the fan-out:
  every environment converges, and in none is a stack's base ConfigMap newer than its dependent's
  (their apply times, from managedFields, follow the dependency chain);
- with `--profile DIR`, py-spy (on PATH) samples each replica's GIL-holding thread during the pushes
  and writes its collapsed stacks to DIR/<replica>.txt (for flame graphs, or to sum by function);
- unless --no-flux, the same stacks as Flux Kustomizations (fleet_flux.py: one kustomize-controller
  per cluster) on the same clusters after the daemons stop: cold, and the push to the base.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import git  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

from fleet_flux import FleetFlux, p95, percentiles  # noqa: E402
from reconciler.daemon.webhooks import github_signature  # noqa: E402
from reconciler.pipeline.kustomize_workers import KustomizeWorkers  # noqa: E402
from reconciler.pipeline.render import kustomize_command  # noqa: E402

SECRET = "bench-fleet"
OWNER_LABEL = "reconciler.healthflow.io/owner"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_base(work: Path, value: str) -> None:
    (work / "base").mkdir(parents=True, exist_ok=True)
    (work / "base/shared.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"value": value}}))
    (work / "base/kustomization.yaml").write_text("resources: [shared.yaml]\n")


def write_fleet(work: Path, envs: int, stacks: int, objects: int, prefix: str) -> list[str]:
    """The tree: the base and every environment's stacks (envs/<namespace>/s<k>); the namespaces."""
    write_base(work, "v0")
    namespaces = [f"{prefix}-{e:03}" for e in range(envs)]
    for namespace in namespaces:
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
    return namespaces


def environment_files(folder: Path, work: Path, namespaces: list[str], stacks: int, kubeconfigs: list[Path]) -> None:
    folder.mkdir()
    for e, namespace in enumerate(namespaces):
        (folder / f"{namespace}.yaml").write_text(yaml.safe_dump({
            "name": namespace, "source": {"url": str(work), "branch": "main"},
            "cluster": {"kubeconfig": str(kubeconfigs[e % len(kubeconfigs)])},
            "sync": {"interval": "1h", "healthTimeout": "120s"}, "policy": {"mode": "off"},
            "stacks": [{"name": f"s{s}", "path": f"envs/{namespace}/s{s}", **({"dependsOn": [f"s{s - 1}"]} if s else {})}
                       for s in range(stacks)]}))


def commit(repo: git.Repo, message: str) -> str:
    repo.git.add(A=True)
    repo.git.commit("-qm", message, "--author", "Bench <bench@example.test>")
    return repo.head.commit.hexsha


def apiserver_metrics(kubeconfig: Path) -> tuple[float, float]:
    """(requests answered since start, watches open now), over all clients."""
    text = metrics_text(kubeconfig)
    requests_total = sum(float(v) for v in re.findall(r"^apiserver_request_total\{[^}]*\} (\S+)$", text, re.M))
    watches = sum(float(v) for v in re.findall(
        r'^apiserver_longrunning_requests\{[^}]*verb="WATCH"[^}]*\} (\S+)$', text, re.M))
    return requests_total, watches


def metrics_text(kubeconfig: Path) -> str:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
                          capture_output=True, text=True, check=True).stdout


def requests_by_kind(kubeconfigs: list[Path]) -> Counter[str]:
    """Requests answered since start over all clients, by verb and resource ("PATCH configmaps")."""
    counts: Counter[str] = Counter()
    for kubeconfig in kubeconfigs:
        for labels, value in re.findall(r"^apiserver_request_total\{([^}]*)\} (\S+)$", metrics_text(kubeconfig), re.M):
            fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            counts[f"{fields.get('verb', '')} {fields.get('resource', '')}"] += float(value)
    return counts


def process_figures(pid: int, api_ports: set[int]) -> dict[str, float]:
    """Threads, open files, TCP connections to the API servers, RSS and peak RSS (MiB) of one process."""
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
            if parts[9] in sockets and int(parts[2].rsplit(":", 1)[1], 16) in api_ports:
                connections += 1
    return {"threads": field("Threads"), "fds": len(fds),
            "connections": connections, "rss": field("VmRSS") / 1024, "peak": field("VmHWM") / 1024}


def worker_figures(pid: int) -> tuple[int, float]:
    """(kustomize workers running, their RSS in MiB together) among the children of one replica."""
    count, rss = 0, 0.0
    for child in _live_children(pid):
        try:
            if Path(f"/proc/{child}/comm").read_text().strip() != "kustomize-worke":  # comm keeps 15 characters
                continue
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        count, rss = count + 1, rss + int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1)) / 1024
    return count, rss


class Report:
    """The table's rows, each printed as soon as it is measured (a run stopped halfway keeps what it had),
    and the whole table again at the end."""

    def __init__(self, title: str) -> None:
        self.title, self.rows = title, []
        print(f"{title}\n\n| measurement | result |\n|---|---|", flush=True)

    def add(self, *rows: str) -> None:
        for row in rows:
            self.rows.append(row)
            print(row, flush=True)

    def table(self) -> str:
        return "\n".join([self.title, "", "| measurement | result |", "|---|---|", *self.rows])


def _stat(pid: int) -> tuple[str, list[str]]:
    """A process's command name and the fields of /proc/<pid>/stat after it; ("", []) for a process gone."""
    try:
        head, _, rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
    except OSError:
        return "", []
    return head.partition("(")[2], rest.split()


def _ticks(fields: list[str]) -> tuple[int, int]:
    """From `_stat`'s fields: (its own CPU ticks, those of the children it has waited for); (0, 0) for none."""
    if not fields:
        return 0, 0
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def _stat_ticks(pid: int) -> tuple[int, int]:
    """(its own CPU ticks, those of the children it has waited for); (0, 0) for a process gone."""
    return _ticks(_stat(pid)[1])


def _live_children(pid: int) -> list[int]:
    try:
        return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    except OSError:
        return []


def renderer() -> str:
    workers = KustomizeWorkers.installed()
    if workers:
        return f"its build command run in kustomize workers, {workers.binary}"
    return f"{shutil.which(kustomize_command()[0])}, a process per build: `make tools` installs the kustomize workers"


def cpu_seconds(pids: list[int]) -> tuple[float, float, float, float]:
    """CPU seconds so far: of the processes themselves, of their children (kustomize workers, git: those
    running and those waited for), of the whole machine (every core's busy time, less what the hypervisor
    took), and stolen by the hypervisor (this machine is a virtual one: time its cores were ready to run
    and did not). A process gone since counts nothing."""
    ticks = os.sysconf("SC_CLK_TCK")
    own = children = 0
    for pid in pids:
        mine, waited = _stat_ticks(pid)
        own, children = own + mine, children + waited + sum(sum(_stat_ticks(c)) for c in _live_children(pid))
    busy = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    stolen = busy[7]
    return own / ticks, children / ticks, (sum(busy[:7]) - busy[3] - busy[4]) / ticks, stolen / ticks


def kernel_share(pids: list[int]) -> tuple[float, int]:
    """Of the processes' own CPU so far: seconds in the kernel (system time: syscalls, the network, waking
    threads), and context switches of their threads alive now (voluntary and not)."""
    system = switches = 0
    for pid in pids:
        fields = _stat(pid)[1]
        system += int(fields[12]) if fields else 0
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                text = (task / "status").read_text()
            except OSError:
                continue
            switches += sum(int(line.split()[1]) for line in text.splitlines()
                            if line.partition(":")[0].endswith("ctxt_switches"))
    return system / os.sysconf("SC_CLK_TCK"), switches


def cpu_by_command() -> dict[int, tuple[str, int]]:
    """Every process's own CPU ticks so far, by pid, with its command name (what `top` shows)."""
    ticks: dict[int, tuple[str, int]] = {}
    for pid in (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()):
        name, fields = _stat(pid)
        if fields:
            ticks[pid] = (name, _ticks(fields)[0])
    return ticks


def busiest_commands(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]], top: int = 8,
                     per: int = 1) -> str:
    """The commands that used the most CPU between two `cpu_by_command` readings, by their later name (a
    kernel worker's changes with its work); a process started since counts all its ticks, one ended since none."""
    used: Counter[str] = Counter()
    for pid, (name, ticks) in after.items():
        used[name.split("-")[0] if name.startswith("kworker") else name] += ticks - before.get(pid, ("", 0))[1]
    hz = os.sysconf("SC_CLK_TCK")
    return ", ".join(f"{name} {n / hz / per:.1f}" for name, n in used.most_common(top))


def wait(condition, timeout_s: float, what: str, poll_s: float = 0.5) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - started


def status(port: int) -> list[dict]:
    """The environments one replica leads, as its /api/status gives them ([] when it does not answer): asked
    for those alone (`?leader=true`), a third of what every replica's whole status was to build and send."""
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/status", params={"leader": "true"}, timeout=30,
                            headers={"Authorization": "Bearer bench"}).json().get("envs", [])
    except (requests.RequestException, ValueError):
        return []


class Replicas:
    """The daemon processes: started, asked for status, one killed, stopped."""

    def __init__(self, root: Path, folder: Path, count: int) -> None:
        self.ports = {f"replica-{i}": free_port() for i in range(count)}
        self.processes: dict[str, subprocess.Popen] = {}
        election = ["--leader-election"] if count > 1 else []
        for name, port in self.ports.items():
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "run", "--environments", str(folder), "--identity", name,
                 "--listen", f"127.0.0.1:{port}", "--cache-dir", str(root / f"cache-{name}"), *election,
                 "--no-kubernetes-events", "--log-level", "warning"],
                stdout=open(root / f"{name}.log", "w"), stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                env={k: v for k, v in {**os.environ, "RECONCILER_API_TOKEN": "bench",
                                       "RECONCILER_GITHUB_WEBHOOK_SECRET": SECRET}.items() if k != "KUBECONFIG"})

    def alive(self) -> dict[str, int]:
        return {name: port for name, port in self.ports.items() if self.processes[name].poll() is None}

    def led(self) -> dict[str, dict]:
        """Environment name -> its status, from the replica leading it (an environment nobody leads is absent)."""
        envs = {}
        for port in self.alive().values():
            envs.update({env["name"]: env for env in status(port) if env.get("leader") in (True, None)})
        return envs

    def healthy_stacks(self) -> dict[str, int]:
        """Per environment, how many of its stacks are applied and healthy."""
        return {name: sum(1 for s in env["stacks"] if _applied_and_healthy(s)) for name, env in self.led().items()}

    def shown(self, sha: str, stacks: int) -> dict[str, datetime]:
        """Per environment whose `stacks` stacks are all applied, healthy and at commit `sha`: when its daemon
        recorded the last of them (the end of the pass that made it so)."""
        shown = {}
        for name, env in self.led().items():
            done = [s for s in env["stacks"] if _applied_and_healthy(s) and s["commit"] == sha and s["last_run"]]
            if len(done) == stacks:
                shown[name] = max(datetime.fromisoformat(s["last_run"]) for s in done)
        return shown

    def busiest(self) -> str:
        counts = {name: len(status(port)) for name, port in self.alive().items()}
        return max(counts, key=counts.get)

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes.values()]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            process.wait(120)


def _applied_and_healthy(stack: dict) -> bool:
    """A stack of /api/status whose last pass left it applied (or found nothing to change) and healthy."""
    return stack["state"] in ("applied", "unchanged") and bool(stack["healthy"])


@dataclass
class FanOut:
    """One push's fan-out: per environment, seconds from the webhook until its daemon recorded every stack live
    at the new commit, and until the bench's poll first saw that; seconds the webhook took to answer."""

    recorded: list[float]
    polled: list[float]
    answered_s: float


def push(repo: git.Repo, work: Path, replicas: Replicas, value: str, envs: int, stacks: int,
         kill_after_s: float | None = None) -> FanOut:
    """Commit a new base value and send the push webhook to one replica (it forwards to the other leaders
    before it answers); wait until every environment shows the commit. With `kill_after_s`, the replica
    leading the most environments is SIGKILLed then."""
    write_base(work, value)
    sha = commit(repo, f"base {value}")
    body = json.dumps({"ref": "refs/heads/main", "after": sha, "deleted": False, "pusher": {"name": "bench"},
                       "repository": {"clone_url": str(work)}}).encode()
    victim = replicas.busiest() if kill_after_s is not None else ""
    port = next(p for n, p in replicas.alive().items() if n != victim)
    started, sent_at = time.monotonic(), datetime.now(timezone.utc)
    answer = requests.post(f"http://127.0.0.1:{port}/hooks/github", data=body, timeout=30, headers={
        "X-GitHub-Event": "push", "X-Hub-Signature-256": github_signature(SECRET, body)})
    if answer.status_code != 202:
        raise SystemExit(f"webhook refused: {answer.status_code} {answer.text}")
    answered_s = time.monotonic() - started
    done: dict[str, float] = {}
    recorded: dict[str, float] = {}
    while len(done) < envs:
        if victim and time.monotonic() - started > kill_after_s:
            replicas.processes[victim].send_signal(signal.SIGKILL)
            victim = ""
        if time.monotonic() - started > 1200:
            raise SystemExit(f"fan-out incomplete after 1200 s: {len(done)} of {envs} environments")
        for name, at in replicas.shown(sha, stacks).items():
            if name not in done:
                done[name] = time.monotonic() - started
                recorded[name] = (at - sent_at).total_seconds()
        time.sleep(0.5)
    return FanOut(sorted(recorded.values()), sorted(done.values()), answered_s)


def order_violations(kubeconfigs: list[Path], stacks: int, value: str) -> tuple[int, int]:
    """(environments where a stack's base ConfigMap was applied after its dependent's, base ConfigMaps not at
    `value`): apply times from our field manager's managedFields entry (one-second resolution)."""
    from kubernetes import client, config

    applied: dict[str, dict[int, datetime]] = {}
    stale = 0
    for kubeconfig in kubeconfigs:
        core = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        for cm in core.list_config_map_for_all_namespaces(label_selector=OWNER_LABEL).items:
            name = cm.metadata.name
            if name != "shared" and not name.startswith("shared-s"):
                continue
            stack = int(name.removeprefix("shared-s") or 0) if name != "shared" else 0
            stale += (cm.data or {}).get("value") != value
            times = [m.time for m in cm.metadata.managed_fields or [] if m.manager == "healthflow-reconciler"]
            applied.setdefault(cm.metadata.namespace, {})[stack] = max(times)
    violations = sum(1 for chain in applied.values()
                     if any(s in chain and s - 1 in chain and chain[s] < chain[s - 1] for s in range(1, stacks)))
    return violations, stale


def baselines(kubeconfigs: list[Path], idle_s: float) -> list[tuple[float, float]]:
    """Per cluster, with no daemon running: (requests per minute, watches open)."""
    before = [apiserver_metrics(kc) for kc in kubeconfigs]
    time.sleep(idle_s)
    after = [apiserver_metrics(kc) for kc in kubeconfigs]
    return [((a[0] - b[0]) * 60 / idle_s, a[1]) for a, b in zip(after, before)]


def idle_rows(kubeconfigs: list[Path], replicas: Replicas, quiet: list[tuple[float, float]], idle_s: float,
              api_ports: set[int]) -> list[str]:
    before = [apiserver_metrics(kc) for kc in kubeconfigs]
    cpu_before = cpu_seconds(replicas.pids())
    time.sleep(idle_s)
    own, children, machine, stolen = (a - b for a, b in zip(cpu_seconds(replicas.pids()), cpu_before))
    after = [apiserver_metrics(kc) for kc in kubeconfigs]
    per_min = [f"{(a[0] - b[0]) * 60 / idle_s - q[0]:.0f}" for a, b, q in zip(after, before, quiet)]
    watches = [f"{a[1] - q[1]:.0f}" for a, q in zip(after, quiet)]
    figures = [process_figures(pid, api_ports) for pid in replicas.pids()]
    return [f"| idle: API requests per minute, per cluster (its control plane alone subtracted) | {' / '.join(per_min)} |",
            f"| idle: watches open, per cluster (its control plane's own subtracted) | {' / '.join(watches)} |",
            "| idle: threads / open files / TCP connections to the API servers, per replica | " +
            ", ".join(f"{f['threads']:.0f} / {f['fds']:.0f} / {f['connections']:.0f}" for f in figures) + " |",
            "| RSS idle, per replica | " + " / ".join(f"{f['rss']:.0f}" for f in figures) + " MiB |",
            "| idle: CPU seconds per minute of the daemons / their subprocesses / everything else (control planes); "
            "taken by the hypervisor | "
            + " / ".join(f"{s * 60 / idle_s:.1f}" for s in (own, children, machine - own - children))
            + f"; {stolen * 60 / idle_s:.1f} |"]


def run_ours(root: Path, kubeconfigs: list[Path], args: argparse.Namespace, api_ports: set[int], report: Report) -> None:
    work = root / "repo"
    repo = git.Repo.init(work, initial_branch="main")
    namespaces = write_fleet(work, args.envs, args.stacks, args.objects, "fleet")
    commit(repo, "fleet")
    environment_files(root / "environments", work, namespaces, args.stacks, kubeconfigs)
    quiet = baselines(kubeconfigs, args.idle)
    replicas = Replicas(root, root / "environments", args.replicas)
    total = args.envs * args.stacks
    try:
        cold_s = wait(lambda: sum(replicas.healthy_stacks().values()) == total, 3600, "the cold sync", poll_s=2)
        report.add(f"| cold convergence: {args.envs} environments x {args.stacks} stacks "
                   f"({total * (args.objects + 1):,} objects) | {cold_s:.1f} s |")
        time.sleep(15)  # the live caches settle (their first LISTs) before the idle window
        report.add(*idle_rows(kubeconfigs, replicas, quiet, args.idle, api_ports))
        report.add(*push_rows(repo, work, replicas, kubeconfigs, args))
        workers = [worker_figures(pid) for pid in replicas.pids()]
        peaks = [process_figures(pid, api_ports)["peak"] for pid in replicas.pids()]
        report.add("| RSS peak per replica (VmHWM, before the kill) | " + " / ".join(f"{p:.0f}" for p in peaks)
                   + " MiB |",
                   "| kustomize workers per replica right after the push: count, RSS together | " +
                   " / ".join(f"{n}, {rss:.0f} MiB" for n, rss in workers) + " |")
        if args.replicas > 1:
            value = f"v{args.pushes + 1}"
            killed = push(repo, work, replicas, value, args.envs, args.stacks, kill_after_s=1.0)
            violations, stale = order_violations(kubeconfigs, args.stacks, value)
            report.add(f"| the same push, the busiest replica SIGKILLed 1 s in: p50 / p95 / max, recorded; polled | "
                       f"{percentiles(killed.recorded)}; {percentiles(killed.polled)} |",
                       f"| after it: environments with a stack applied before its dependency / base ConfigMaps "
                       f"not at the new value | {violations} / {stale} |")
    finally:
        replicas.stop()


def push_rows(repo: git.Repo, work: Path, replicas: Replicas, kubeconfigs: list[Path],
              args: argparse.Namespace) -> list[str]:
    """`--pushes` pushes to the base, one after another (each a new value): each one's fan-out, and per push
    on average what it cost (CPU by process, API requests). One push's p95 moves with the machine's speed."""
    total = args.envs * args.stacks
    answered_before = sum(apiserver_metrics(k)[0] for k in kubeconfigs)
    kinds_before = requests_by_kind(kubeconfigs)
    cpu_before, commands_before = cpu_seconds(replicas.pids()), cpu_by_command()
    kernel_before = kernel_share(replicas.pids())
    with sampled(replicas, args.profile):
        runs = [push(repo, work, replicas, f"v{n + 1}", args.envs, args.stacks) for n in range(args.pushes)]
    n = args.pushes
    own, children, machine, stolen = ((a - b) / n for a, b in zip(cpu_seconds(replicas.pids()), cpu_before))
    commands = busiest_commands(commands_before, cpu_by_command(), per=n)
    system, switches = ((a - b) / n for a, b in zip(kernel_share(replicas.pids()), kernel_before))
    answered = (sum(apiserver_metrics(k)[0] for k in kubeconfigs) - answered_before) / n
    kinds = requests_by_kind(kubeconfigs)
    kinds.subtract(kinds_before)
    recorded_p95s = sorted(p95(run.recorded) for run in runs)
    polled_p95s = sorted(p95(run.polled) for run in runs)
    return ["| push to the shared base until every environment shows it live, as its daemon recorded it: "
            "p50 / p95 / max, each push | " + "; ".join(percentiles(run.recorded) for run in runs) + " |",
            f"| push: median p95 of {n}, recorded; as the bench's poll first saw it | "
            f"**{recorded_p95s[n // 2]:.1f} s**; {polled_p95s[n // 2]:.1f} s |",
            "| push, as the bench's poll first saw it: p50 / p95 / max, each push | "
            + "; ".join(percentiles(run.polled) for run in runs) + " |",
            "| push: the webhook answered (after forwarding to the other replicas' environments) | "
            + " / ".join(f"{run.answered_s:.2f}" for run in runs) + " s |",
            "| push, on average: CPU seconds of the daemons / their subprocesses (kustomize, git) / everything else "
            f"(control planes); taken by the hypervisor | {own:.1f} / {children:.1f} / "
            f"{machine - own - children:.1f}; {stolen:.1f} |",
            f"| push, on average: of the daemons' own CPU seconds, in the kernel; their threads' context switches | "
            f"{system:.1f}; {switches:,.0f} |",
            f"| push, on average: CPU seconds of the busiest commands (every process, by name) | {commands} |",
            f"| push, on average: API requests the control planes answered meanwhile (every client), per stack | "
            f"{answered / total:.2f} ({answered:,.0f}) |",
            "| push, on average: the most frequent of them, by verb and resource | " +
            ", ".join(f"{kind} {count / n:,.0f}" for kind, count in kinds.most_common(6)) + " |"]


@contextmanager
def sampled(replicas: Replicas, folder: Path | None) -> Iterator[None]:
    """py-spy on every replica while the block runs (nothing without `folder`): the GIL holder's stacks, 100 a second."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    spies = [subprocess.Popen(["py-spy", "record", "--pid", str(process.pid), "--gil", "--rate", "100", "--format",
                               "raw", "--output", str(folder / f"{name}.txt")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for name, process in replicas.processes.items()]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(60)


def run_flux(root: Path, kubeconfigs: list[Path], args: argparse.Namespace, report: Report) -> None:
    tree = root / "flux" / "stacks"
    namespaces = write_fleet(tree, args.envs, args.stacks, args.objects, "flux")
    envs = [namespaces[i::len(kubeconfigs)] for i in range(len(kubeconfigs))]
    flux = FleetFlux(kubeconfigs, tree, envs, args.stacks)
    flux.start()
    try:
        cold_s = flux.cold("v0")
        report.add(f"| Flux, cold: {args.envs * args.stacks:,} Kustomizations | {cold_s:.1f} s |")
        write_base(tree, "v1")
        fan_out = flux.push("v1")
        report.add(f"| Flux, push to the shared base until every environment shows it: p50 / p95 / max | "
                   f"{percentiles(fan_out)} |",
                   "| Flux, RSS peak per kustomize-controller | " + " / ".join(f"{p:.0f}" for p in flux.peak) + " MiB |")
    finally:
        flux.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=100)
    parser.add_argument("--stacks", type=int, default=10)
    parser.add_argument("--objects", type=int, default=10, help="ConfigMaps per stack (plus the base's)")
    parser.add_argument("--idle", type=int, default=120, help="seconds of each idle window")
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--no-flux", action="store_true")
    parser.add_argument("--kubeconfig", type=Path, help="one cluster of yours instead of --clusters of its own")
    parser.add_argument("--pushes", type=int, default=3, help="pushes to the base measured, one after another")
    parser.add_argument("--profile", type=Path, help="a folder for py-spy's samples of each replica during the push")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run takes its daemons and clusters down too
    from devcluster.cluster import named_or_temporary
    from kubernetes import config

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        kubeconfigs = [stack.enter_context(named_or_temporary(args.kubeconfig, nodes=11, prefix="fleet-cluster-"))
                       for _ in range(1 if args.kubeconfig else args.clusters)]
        api_ports = {int(config.new_client_from_config(str(kc)).configuration.host.rsplit(":", 1)[1])
                     for kc in kubeconfigs}
        report = Report(f"fleet, {date.today()}, {platform.machine()} {os.cpu_count()} cores, {len(kubeconfigs)} "
                        f"clusters, {args.replicas} replicas; the daemons render with `{' '.join(kustomize_command())}` "
                        f"({renderer()})")
        run_ours(Path(tmp), kubeconfigs, args, api_ports, report)
        if not args.no_flux:
            run_flux(Path(tmp), kubeconfigs, args, report)
    print("\n" + report.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
