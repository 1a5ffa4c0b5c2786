"""Side by side on one devcluster: this reconciler, `kubectl apply --server-side` + `kubectl wait`, and
`kubectl diff --server-side`, on the same synthetic environment. Prints one Markdown table of ratios.

    python bench/compare.py [--objects 1000] [--kubeconfig PATH]

The environment: 5 chained stacks, one namespace each; 10% Deployments (1 replica), 10% Services,
the rest ConfigMaps. Without --kubeconfig a devcluster is started sized for it (kwok nodes enough
for the pods at 110 each, controller QPS printed). Each tool gets its own namespaces, so neither
sees the other's objects. Measured per tool, each as the command a user runs:

- cold sync: ours `reconciler sync` (health-gated stack by stack); kubectl: per stack in order
  `apply --server-side` then `wait --for=condition=Available deployment --all`;
- no-op: ours `reconciler sync` again with nothing changed; kubectl `diff --server-side` per stack;
- one-object change: one ConfigMap changed in the last stack; ours `reconciler sync`; kubectl
  `apply --server-side` of that stack's file;
- API requests: `apiserver_request_total` from the API server's /metrics before and after;
- peak RSS of the tool's processes.

With --flux, Flux's kustomize-controller (bench/flux_build.py builds and caches it) runs last on the
same cluster, fed the same stacks through an ExternalArtifact (bench/flux_side.py), with
`--requeue-dependency=2s`; its no-op is a forced reconcile of every Kustomization.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import git  # noqa: E402
import yaml  # noqa: E402
from kubernetes import client, config  # noqa: E402

from bench_pass import _synthetic_object  # noqa: E402

STACKS = 5


def synthetic(root: Path, objects: int, prefix: str, change: str = "") -> list[Path]:
    """Write the stacks (one folder each, for kubectl too) and return their objects.yaml files."""
    files = []
    per_stack = objects // STACKS
    for index in range(STACKS):
        namespace = f"{prefix}-s{index}"
        docs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
        for item in range(per_stack - 1):
            kind = ("Deployment", "Service")[item % 2] if item % 10 < 2 else "ConfigMap"
            name = f"o{item - 1}" if kind == "Service" else f"o{item}"  # a Service beside its Deployment
            docs.append(_object(kind, name, namespace, change if index == STACKS - 1 and item == 2 else ""))
        folder = root / "stacks" / f"s{index}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "objects.yaml").write_text(yaml.safe_dump_all(docs))
        (folder / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
        files.append(folder / "objects.yaml")
    return files


def _object(kind: str, name: str, namespace: str, change: str) -> dict:
    """bench_pass's synthetic objects; a ConfigMap also carries `change`, the one-object edit."""
    obj = _synthetic_object(kind, name, namespace)
    if kind == "ConfigMap":
        obj["data"]["change"] = change
    return obj


class Meter:
    """Wall time, API requests (apiserver_request_total) and peak RSS of the child processes it runs."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.api = client.ApiClient(config.new_client_from_config(config_file=str(kubeconfig)).configuration)

    def requests(self) -> float:
        text = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "get", "--raw", "/metrics"],
                              capture_output=True, text=True, check=True).stdout
        return sum(float(m.group(1)) for m in re.finditer(r"^apiserver_request_total\{[^}]*\} (\S+)$", text, re.M))

    def run(self, commands: list[list[str]], ok: tuple[int, ...] = (0,)) -> tuple[float, int]:
        before, started = self.requests(), time.monotonic()
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ,
                                                                                "KUBECONFIG": str(self.kubeconfig)})
            if done.returncode not in ok:
                raise SystemExit(f"{' '.join(command[:4])} ... exited {done.returncode}: {done.stderr[-800:]}")
        return time.monotonic() - started, int(self.requests() - before) - 1  # minus the metrics read itself


def timed(meter: Meter, action) -> tuple[float, int]:
    """Wall time and API requests of `action` (a callable that returns when its effect is complete)."""
    before, started = meter.requests(), time.monotonic()
    action()
    return time.monotonic() - started, int(meter.requests() - before) - 1


def measure_flux(meter: Meter, root: Path, objects: int) -> tuple[dict[str, tuple[float, int]], float]:
    """Flux's kustomize-controller with `--requeue-dependency=2s` (see flux_side.py); rows and peak RSS."""
    from flux_side import NAMESPACE, Flux, Tarballs, all_ready, kubectl, kustomizations, set_artifact, wait

    kc = meter.kubeconfig
    synthetic(root / "flux", objects, "flux")
    tarballs, flux = Tarballs(root / "flux"), Flux(kc, root)
    flux.start()
    try:
        first = tarballs.publish("v1")
        set_artifact(kc, first)
        rows = {"cold": timed(meter, lambda: (kubectl(kc, "apply", "-f", "-", stdin=kustomizations(STACKS)),
                                              wait(lambda: all_ready(kc, first["revision"]))))}
        stamp = str(time.time())
        rows["noop"] = timed(meter, lambda: (
            [kubectl(kc, "annotate", "--overwrite", "kustomization", f"s{i}", "-n", NAMESPACE,
                     f"reconcile.fluxcd.io/requestedAt={stamp}") for i in range(STACKS)],
            wait(lambda: all_ready(kc, handled=stamp))))
        synthetic(root / "flux", objects, "flux", change="v2")
        second = tarballs.publish("v2")
        core = client.CoreV1Api(meter.api)
        rows["change"] = timed(meter, lambda: (set_artifact(kc, second), wait(
            lambda: core.read_namespaced_config_map("o2", f"flux-s{STACKS - 1}").data.get("change") == "v2")))
        return rows, flux.peak_rss_mib()
    finally:
        flux.stop()
        tarballs.close()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def measure_ours(meter: Meter, root: Path, objects: int) -> dict[str, tuple[float, int]]:
    repo = git.Repo.init(root / "ours", initial_branch="main")
    synthetic(root / "ours", objects, "ours")
    repo.git.add(A=True)
    repo.index.commit("synthetic")
    env = {"name": "compare", "source": {"url": str(root / "ours")}, "sync": {"healthTimeout": "10m"},
           "policy": {"mode": "off"},
           "stacks": [{"name": f"s{i}", "path": f"stacks/s{i}", **({"dependsOn": [f"s{i - 1}"]} if i else {})}
                      for i in range(STACKS)]}
    env_file = root / "compare.yaml"
    env_file.write_text(yaml.safe_dump(env))
    sync = [sys.executable, "-m", "reconciler", "sync", "-e", str(env_file), "--cache-dir", str(root / "cache"),
            "--kubeconfig", str(meter.kubeconfig)]
    rows = {"cold": meter.run([sync], ok=(1,))}
    meter.run([sync], ok=(0, 1))  # records every stack as unchanged once
    rows["noop"] = meter.run([sync], ok=(0,))
    synthetic(root / "ours", objects, "ours", change="v2")
    repo.git.add(A=True)
    repo.index.commit("one ConfigMap changed")
    rows["change"] = meter.run([sync], ok=(1,))
    return rows


def measure_kubectl(meter: Meter, root: Path, objects: int) -> dict[str, tuple[float, int]]:
    files = synthetic(root / "kubectl", objects, "kubectl")
    apply_and_wait = []
    for index, path in enumerate(files):
        apply_and_wait.append(["kubectl", "apply", "--server-side", "--field-manager=bench", "-f", str(path)])
        apply_and_wait.append(["kubectl", "wait", "--for=condition=Available", "deployment", "--all",
                               "-n", f"kubectl-s{index}", "--timeout=10m"])
    rows = {"cold": meter.run(apply_and_wait)}
    rows["noop"] = meter.run([["kubectl", "diff", "--server-side", "--field-manager=bench", "-f", str(p)]
                              for p in files])
    files = synthetic(root / "kubectl", objects, "kubectl", change="v2")
    rows["change"] = meter.run([["kubectl", "apply", "--server-side", "--field-manager=bench", "-f", str(files[-1])]])
    return rows


def cleanup(meter: Meter) -> None:
    core = client.CoreV1Api(meter.api)
    for prefix in ("ours", "kubectl", "flux"):
        for index in range(STACKS):
            try:
                core.delete_namespace(f"{prefix}-s{index}")
            except client.ApiException:
                pass


def table(objects: int, ours: dict, ours_rss: float, kubectl: dict, kubectl_rss: float, nodes: str,
          flux: dict | None = None, flux_rss: float = 0.0) -> str:
    lines = [f"## {objects:,} objects, {STACKS} chained stacks, {date.today().isoformat()}, {nodes}", "",
             "| measure | ours | kubectl | ratio (ours / kubectl) | Flux (--requeue-dependency=2s) | ratio (ours / Flux) |",
             "|---|---|---|---|---|---|"]
    names = {"cold": "cold sync, all stacks healthy (kubectl: apply --server-side + wait per stack)",
             "noop": "no-op (kubectl: diff --server-side)", "change": "one ConfigMap changed in the last stack"}
    for key, label in names.items():
        (ours_s, ours_req), (k_s, k_req) = ours[key], kubectl[key]
        if flux:
            f_s, f_req = flux[key]
            flux_cells = f"{f_s:.2f} s, {f_req} requests | {ours_s / f_s:.2f}x time, {ours_req / max(f_req, 1):.2f}x requests"
        else:
            flux_cells = "not run | "
        lines.append(f"| {label} | {ours_s:.2f} s, {ours_req} requests | {k_s:.2f} s, {k_req} requests | "
                     f"{ours_s / k_s:.2f}x time, {ours_req / max(k_req, 1):.2f}x requests | {flux_cells} |")
    flux_rss_cells = f"{flux_rss:.0f} MiB | {ours_rss / flux_rss:.2f}x" if flux else "not run | "
    lines.append(f"| peak RSS of the tool's processes | {ours_rss:.0f} MiB | {kubectl_rss:.0f} MiB | "
                 f"{ours_rss / kubectl_rss:.2f}x | {flux_rss_cells} |")
    return "\n".join(lines)


def run(kubeconfig: Path, objects: int, nodes: str, with_kubectl: bool = True, with_flux: bool = False) -> None:
    meter = Meter(kubeconfig)
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        root = Path(tmp)
        flux, flux_rss = None, 0.0
        try:
            kubectl = measure_kubectl(meter, root, objects) if with_kubectl else None
            kubectl_rss = peak_rss_mib()  # ru_maxrss of children is a running maximum: kubectl first
            ours = measure_ours(meter, root, objects)
            ours_rss = peak_rss_mib()
            if with_flux:  # last: its controller is a child too; its peak is read from /proc while it runs
                flux, flux_rss = measure_flux(meter, root, objects)
        finally:
            cleanup(meter)
    if kubectl is None:
        print(f"## {objects:,} objects, ours only, {date.today().isoformat()}, {nodes}\n")
        for key, (seconds, requests) in ours.items():
            print(f"- {key}: {seconds:.2f} s, {requests} requests")
        print(f"- peak RSS: {ours_rss:.0f} MiB")
        return
    print(table(objects, ours, ours_rss, kubectl, kubectl_rss, nodes, flux, flux_rss))
    if ours_rss <= kubectl_rss:
        print("\n(peak RSS of ours is at most kubectl's: ru_maxrss keeps the maximum of all children so far)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--kubeconfig", type=Path)
    parser.add_argument("--ours-only", action="store_true", help="skip kubectl (for sizes where it takes long)")
    parser.add_argument("--flux", action="store_true", help="also Flux's kustomize-controller (bench/flux_build.py)")
    args = parser.parse_args()
    if args.kubeconfig:
        run(args.kubeconfig, args.objects, "cluster from --kubeconfig", not args.ours_only, args.flux)
        return 0
    from devcluster.cluster import CONTROLLER_QPS, temporary

    pods = (3 if args.flux else 2) * (args.objects // 10)  # a tenth are Deployments of one replica, per tool
    nodes = max(3, math.ceil(pods / 100) + 1)
    with temporary(nodes, prefix="compare-cluster-") as kubeconfig:
        run(kubeconfig, args.objects, f"devcluster of {nodes} kwok nodes x 110 pods, controller QPS {CONTROLLER_QPS}",
            not args.ours_only, args.flux)
    return 0


if __name__ == "__main__":
    sys.exit(main())
