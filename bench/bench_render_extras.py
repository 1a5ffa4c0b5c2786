"""Benchmark: what a Helm chart and SOPS-encrypted Secrets add to a render, cold and warm. No cluster.

    python bench/bench_render_extras.py [--objects 60] [--secrets 10] [--runs 5]

Builds one Git repository with three stacks that render the same objects:

- `plain`: the objects as YAML files;
- `helm`: the same objects from a vendored chart (`helmCharts`, kustomize `--enable-helm`, the pinned helm);
- `sops`: the plain objects plus `--secrets` Secrets, each its own file, SOPS-encrypted for an age key.

and times, side by side in one run, the reconciler's render of each stack (Engine.render, the code a
pass runs, with its render cache and decryption) in three states:

- cold: an empty cache (the first pass after a start with no cache folder);
- warm on disk: a new engine over the cache the cold render left (a CLI run, a daemon restart);
- warm in memory: the same engine again (every later pass of the daemon).

Prints a Markdown table of medians over --runs, and each stack's ratio to `plain` in the same state.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from devcluster.versions import tools_path_dir  # noqa: E402

os.environ["PATH"] = f"{tools_path_dir()}{os.pathsep}{os.environ['PATH']}"

from gitrepo import PushRepo  # noqa: E402
from reconciler.config import load_environment  # noqa: E402
from reconciler.pipeline.engine import Engine  # noqa: E402
from reconciler.pipeline.render import run_kustomize  # noqa: E402
from sops_support import age_key, encrypt_file, secret  # noqa: E402

STACKS = ("plain", "helm", "sops")

_TEMPLATE = """{{- range $i := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-{{ $i }}
  labels: {app: web, index: "{{ $i }}"}
data:
  greeting: {{ $.Values.greeting | quote }}
  index: "{{ $i }}"
{{- end }}
"""


def build_repository(root: Path, objects: int, secrets: int) -> tuple[Path, str]:
    """The repository and an environment file over its three stacks; returns (env file, age identity)."""
    repo = PushRepo(root / "git")
    repo.write("stacks/helm/charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n")
    repo.write("stacks/helm/charts/web/values.yaml", f"count: {objects}\ngreeting: hello\n")
    repo.write("stacks/helm/charts/web/templates/settings.yaml", _TEMPLATE)
    repo.write("stacks/helm/kustomization.yaml", {"namespace": "bench", "helmCharts": [
        {"name": "web", "releaseName": "web"}]})
    rendered = run_kustomize(repo.work_path / "stacks/helm", "helm")
    for stack in ("plain", "sops"):
        repo.write(f"stacks/{stack}/objects.yaml", rendered)
    key = age_key(root / "keys")
    files = []
    for index in range(secrets):
        name = f"secret-{index}.yaml"
        repo.write(f"stacks/sops/{name}", secret(f"db-{index}", "bench", password=f"pw-{index}", user="app"))
        encrypt_file(repo.work_path / "stacks/sops" / name, age=key)
        files.append(name)
    for stack in ("plain", "sops"):
        repo.write(f"stacks/{stack}/kustomization.yaml", {"namespace": "bench", "resources": [
            "objects.yaml", *(files if stack == "sops" else [])]})
    repo.commit("three stacks")
    (root / "age.key").write_text(key.identity + "\n")
    env = root / "bench.yaml"
    import yaml

    env.write_text(yaml.safe_dump({
        "name": "bench", "source": {"url": repo.url, "branch": "main"}, "policy": {"mode": "off"},
        "decryption": {"provider": "sops", "keyFile": str(root / "age.key")},
        "stacks": [{"name": stack, "path": f"stacks/{stack}"} for stack in STACKS]}))
    return env, key.identity


def render_once(engine: Engine, stack: str) -> float:
    """Seconds for the engine to render one stack of the head commit (the fetch is outside the timing)."""
    commit = engine.source.fetch()
    only = engine.local_env.model_copy(update={"stacks": [engine.local_env.stack(stack)]})
    engine.local_env = only
    started = time.perf_counter()
    rendered = engine.render(commit)
    elapsed = time.perf_counter() - started
    if rendered.errors:
        raise SystemExit(f"render of {stack} failed: {rendered.errors}")
    return elapsed


def measure(env_file: Path, root: Path, stack: str, run: int) -> dict[str, float]:
    env = load_environment(env_file, check_overlays=False)
    cache = root / f"cache-{stack}-{run}"
    cold_engine = Engine(env, cache)
    cold = render_once(cold_engine, stack)
    in_memory = render_once(cold_engine, stack)
    on_disk = render_once(Engine(env, cache), stack)
    return {"cold": cold, "warm on disk": on_disk, "warm in memory": in_memory}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=60, help="objects each stack renders")
    parser.add_argument("--secrets", type=int, default=10, help="encrypted Secrets the sops stack adds")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env_file, _ = build_repository(root, args.objects, args.secrets)
        results = {stack: [measure(env_file, root, stack, run) for run in range(args.runs)] for stack in STACKS}
    states = ("cold", "warm on disk", "warm in memory")
    medians = {stack: {state: statistics.median(r[state] for r in results[stack]) for state in states}
               for stack in STACKS}
    helm = subprocess.run(["helm", "version", "--short"], capture_output=True, text=True).stdout.strip()
    sops = subprocess.run(["sops", "--version", "--disable-version-check"], capture_output=True,
                          text=True).stdout.split("\n")[0]
    print(f"render of {args.objects} objects per stack (+{args.secrets} encrypted Secrets in `sops`), "
          f"median of {args.runs}, {date.today()}, {platform.machine()} {os.cpu_count()} cores, {helm}, {sops}\n")
    print("| stack | " + " | ".join(states) + " |")
    print("|---|" + "---|" * len(states))
    for stack in STACKS:
        cells = []
        for state in states:
            value, base = medians[stack][state], medians["plain"][state]
            ratio = "" if stack == "plain" else f" ({value / base:.2f}x)"
            cells.append(f"{value * 1000:.0f} ms{ratio}")
        print(f"| {stack} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
