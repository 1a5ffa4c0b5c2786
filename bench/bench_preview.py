"""Benchmark: `reconciler preview` of all three platform environments for a pull request, no cluster.

    python bench/bench_preview.py [--runs 3]

Clones this repository into a temp folder, makes a pull-request branch that bumps an image in
base/application (every environment re-renders that stack) and drops a Service's metrics
ServiceMonitor-style object, then times, side by side in one run:

- ours: `reconciler preview -e dev -e staging -e prod --revision pr --base main -o markdown`, a new
  process each time, cold (empty cache) and warm (the cache of the previous run: a CI cache);
- by hand, what a CI job without a preview tool does: check out both commits (`git worktree`),
  `kubectl kustomize` every stack of every environment at both, and `diff -u` the outputs (no
  policy, no prune list, no blast radius).

Prints a Markdown table with medians of --runs and the ratio ours / by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVS = ("dev", "staging", "prod")
STACKS = ("gateway", "discovery", "monitoring", "data", "application")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def pull_request(root: Path) -> Path:
    """A clone of this repository with branch `pr`: an image bumped in base/application, an object removed."""
    clone = root / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO_ROOT), str(clone)], check=True)
    git(clone, "checkout", "-q", "-B", "main")
    git(clone, "config", "user.email", "bench@example.test")
    git(clone, "config", "user.name", "Bench")
    git(clone, "checkout", "-q", "-b", "pr")
    service = clone / "base/application/prescription-service.yaml"
    service.write_text(service.read_text().replace("prescription-service:1.4.2", "prescription-service:1.5.0"))
    kustomization = clone / "base/application/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - metrics.yaml\n", ""))
    git(clone, "commit", "-qam", "prescription-service 1.5.0; drop the application metrics objects")
    return clone


def ours(clone: Path, cache: Path) -> tuple[float, int, str]:
    command = [sys.executable, "-m", "reconciler", "preview", "--environments", str(clone / "environments"),
               "--cache-dir", str(cache), "--revision", "pr", "--base", "main", "-o", "markdown"]
    for env in ENVS:
        command += ["-e", env]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=clone, capture_output=True, text=True, env={**os.environ, "KUBECONFIG": ""})
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1, 2):
        raise SystemExit(f"preview failed ({done.returncode}): {done.stderr}")
    return elapsed, done.returncode, done.stdout


def by_hand(clone: Path, work: Path) -> float:
    """Both commits checked out, every stack built with kubectl kustomize, outputs diffed."""
    started = time.perf_counter()
    trees = {}
    for revision in ("main", "pr"):
        tree = work / revision
        git(clone, "worktree", "add", "-q", "--detach", str(tree), revision)
        trees[revision] = tree
    for env in ENVS:
        for stack in STACKS:
            outputs = []
            for revision, tree in trees.items():
                out = work / f"{env}-{stack}-{revision}.yaml"
                with open(out, "w") as handle:
                    subprocess.run(["kubectl", "kustomize", str(tree / "overlays" / env / stack)], check=True,
                                   stdout=handle)
                outputs.append(out)
            subprocess.run(["diff", "-u", *map(str, outputs)], stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    for tree in trees.values():
        git(clone, "worktree", "remove", "--force", str(tree))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        root = Path(tmp)
        clone = pull_request(root)
        cold, warm, manual = [], [], []
        code, markdown = 0, ""
        for run in range(args.runs):
            cache = root / f"cache-{run}"
            elapsed, code, markdown = ours(clone, cache)
            cold.append(elapsed)
            warm.append(ours(clone, cache)[0])
            work = root / f"by-hand-{run}"
            work.mkdir()
            manual.append(by_hand(clone, work))
            shutil.rmtree(work, ignore_errors=True)
    hand = statistics.median(manual)
    print(f"preview of dev, staging and prod (15 stacks at 2 commits), {date.today()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, median of {args.runs}; exit code {code}, {len(markdown.splitlines())} lines "
          "of Markdown\n")
    print("| | seconds | ours / by hand |")
    print("|---|---|---|")
    for label, values in (("`reconciler preview`, cold cache (new CI runner)", cold),
                          ("`reconciler preview`, warm cache (CI cache kept)", warm)):
        value = statistics.median(values)
        print(f"| {label} | {value:.2f} | {value / hand:.2f}x |")
    print(f"| by hand: 2 worktrees, 30 `kubectl kustomize`, 15 `diff -u` (no policy, no prune list) | {hand:.2f} | 1.00x |")
    summary = [line for line in markdown.splitlines() if line.startswith("| **")]
    print("\nsummary rows of the comment:\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
