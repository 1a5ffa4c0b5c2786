"""Soak: the daemon on the dev platform with a 1 s interval for half an hour; is anything growing?

    python bench/soak.py [--minutes 30] [--kubeconfig PATH] [--svg bench/soak.svg]

Starts a devcluster of its own (unless --kubeconfig is given), pushes this repository's platform to a
bare Git remote in a temp folder, and runs `python -m reconciler run` on the dev environment with
`sync.interval: 1s`. Every minute it pushes a commit (a label on the gateway stack) and edits a managed
ConfigMap by hand (drift, reverted by correctDrift). Every 10 s it samples the daemon's resident
memory, open file descriptors and threads from /proc, and its pass count from /metrics.

Prints a Markdown table (first sample after warm-up, last, max, growth) and writes an SVG plot.
Flat means: after the warm-up (the first 5 minutes) no series grows by more than 10%.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import git  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402
from kubernetes import client, config  # noqa: E402

ENV_NAME = "dev"  # the policies key their modes on the environment name: dev is warn mode
WARM_UP_S = 300


@dataclass
class Sample:
    at_s: float
    rss_mib: float
    fds: int
    threads: int
    passes: int
    results: dict[str, int]


def sample(pid: int, base: str, started: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    results = {m.group(1): float(m.group(2)) for m in
               re.finditer(r'^reconciler_passes_total\{[^}]*result="([^"]+)"[^}]*\} (\S+)$', metrics, re.M)}
    return Sample(round(time.monotonic() - started, 1), rss_kib / 1024, fds, threads, int(sum(results.values())),
                  {k: int(v) for k, v in results.items()})


def prepare(root: Path) -> tuple[git.Repo, Path]:
    """A bare remote holding this repository's platform, a work clone that pushes, and the environment file."""
    git.Repo.clone_from(str(REPO_ROOT), root / "remote.git", bare=True, branch="main")
    work = git.Repo.clone_from(str(root / "remote.git"), root / "work", branch="main")
    with work.config_writer() as writer:
        writer.set_value("user", "name", "soak").set_value("user", "email", "soak@example.test")
    env = yaml.safe_load((REPO_ROOT / "environments" / "dev.yaml").read_text())
    env["name"] = ENV_NAME
    env["source"]["url"] = str(root / "remote.git")
    env["sync"]["interval"] = "1s"
    (root / "environments").mkdir()
    env_file = root / "environments" / f"{ENV_NAME}.yaml"
    env_file.write_text(yaml.safe_dump(env, sort_keys=False))
    return work, env_file


def push(work: git.Repo, round_: int) -> None:
    path = Path(work.working_tree_dir) / "overlays" / "dev" / "gateway" / "kustomization.yaml"
    data = yaml.safe_load(path.read_text())
    data["labels"][0]["pairs"]["healthflow.io/soak-round"] = str(round_)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    work.git.add(A=True)
    work.index.commit(f"soak round {round_}")
    work.git.push("origin", "main")


def drift(core: client.CoreV1Api, round_: int) -> None:
    """Edit one managed ConfigMap's first key (a field Git sets): correctDrift puts it back."""
    owned = core.list_config_map_for_all_namespaces(label_selector="reconciler.healthflow.io/owner")
    target = next((c for c in sorted(owned.items, key=lambda c: c.metadata.name)
                   if c.data and c.metadata.labels["reconciler.healthflow.io/owner"].startswith(f"{ENV_NAME}.")), None)
    if target is None:
        print("no managed ConfigMap to edit yet", flush=True)
        return
    key = sorted(target.data)[0]
    core.patch_namespaced_config_map(target.metadata.name, target.metadata.namespace,
                                     {"data": {key: f"soak drift {round_}"}}, field_manager="soak-editor")


def growth(samples: list[Sample], field: str) -> tuple[float, float, float, float]:
    warm = [s for s in samples if s.at_s >= WARM_UP_S] or samples
    first, last = getattr(warm[0], field), getattr(warm[-1], field)
    peak = max(getattr(s, field) for s in warm)
    return first, last, peak, (last - first) / first * 100 if first else 0.0


def svg(samples: list[Sample], path: Path) -> None:
    """Three small line charts (RSS, fds, threads) over time, no plotting library needed."""
    width, height, pad = 640, 150, 40
    series = [("rss_mib", "RSS (MiB)", "#2563eb"), ("fds", "open fds", "#16a34a"), ("threads", "threads", "#dc2626")]
    span = max(s.at_s for s in samples) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height * 3}" font-family="sans-serif" '
             'font-size="11">']
    for index, (field, label, colour) in enumerate(series):
        top = index * height
        values = [getattr(s, field) for s in samples]
        high = max(values) * 1.15 or 1
        points = " ".join(f"{pad + (s.at_s / span) * (width - 2 * pad):.1f},"
                          f"{top + height - pad / 2 - (getattr(s, field) / high) * (height - pad):.1f}" for s in samples)
        parts += [f'<text x="{pad}" y="{top + 14}">{label}: {values[0]:.0f} → {values[-1]:.0f} '
                  f'(max {max(values):.0f}) over {span / 60:.0f} min</text>',
                  f'<line x1="{pad}" y1="{top + height - pad / 2}" x2="{width - pad}" y2="{top + height - pad / 2}" '
                  'stroke="#999"/>',
                  f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>']
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def run(kubeconfig: Path, minutes: float, svg_path: Path) -> int:
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = Path(tmp)
        work, env_file = prepare(root)
        port = 18800 + os.getpid() % 1000
        base = f"http://127.0.0.1:{port}"
        log = open(root / "daemon.log", "w")
        daemon = subprocess.Popen([sys.executable, "-m", "reconciler", "run", "--environments", str(env_file.parent),
                                   "--listen", f"127.0.0.1:{port}", "--cache-dir", str(root / "cache"),
                                   "--kubeconfig", str(kubeconfig), "--no-kubernetes-events", "--log-level", "warning"],
                                  stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        samples: list[Sample] = []
        started = time.monotonic()
        try:
            deadline = time.monotonic() + 300
            while not _up(base):
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit("the daemon did not start; see its log")
                time.sleep(1)
            next_sample, next_round, round_ = started, started + 60, 0
            while time.monotonic() - started < minutes * 60:
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon exited with {daemon.returncode}")
                now = time.monotonic()
                if now >= next_sample:
                    samples.append(sample(daemon.pid, base, started))
                    print(f"{samples[-1]}", flush=True)
                    next_sample += 10
                if now >= next_round:
                    round_ += 1
                    push(work, round_)
                    drift(core, round_)
                    next_round += 60
                time.sleep(0.5)
        finally:
            daemon.terminate()
            daemon.wait(60)
            shutil.copy(root / "daemon.log", svg_path.with_suffix(".log")) if os.environ.get("SOAK_KEEP_LOG") else None
    svg(samples, svg_path)
    print(f"\n## Soak, {date.today().isoformat()}: dev platform, interval 1 s, {minutes:.0f} min, "
          f"a push and a drift edit every minute; {samples[-1].passes} passes\n")
    print("| series | after warm-up (5 min) | last | max | growth |\n|---|---|---|---|---|")
    flat = True
    for field, label in (("rss_mib", "RSS (MiB)"), ("fds", "open file descriptors"), ("threads", "threads")):
        first, last, peak, grew = growth(samples, field)
        flat = flat and grew <= 10
        print(f"| {label} | {first:.1f} | {last:.1f} | {peak:.1f} | {grew:+.1f}% |")
    print(f"\nflat (no series grew more than 10% after warm-up): {'yes' if flat else 'NO'}; plot: {svg_path}")
    return 0 if flat else 1


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).ok
    except requests.RequestException:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--kubeconfig", type=Path)
    parser.add_argument("--svg", type=Path, default=REPO_ROOT / "bench" / "soak.svg")
    args = parser.parse_args()
    from devcluster.cluster import named_or_temporary

    with named_or_temporary(args.kubeconfig, prefix="soak-cluster-") as kubeconfig:
        return run(kubeconfig, args.minutes, args.svg)


if __name__ == "__main__":
    sys.exit(main())
