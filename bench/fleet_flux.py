"""Flux's kustomize-controller on a fleet, for bench_fleet.py: on each cluster one controller (as a user
would run it there, default concurrency) and one Kustomization per stack of the environments that cluster
holds (`dependsOn` the environment's previous stack, `wait: true`, `prune: true`), fed the same tree
through an ExternalArtifact tarball served on 127.0.0.1 (flux_side.py; no source-controller needed).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import yaml

from flux_side import NAMESPACE, Flux, Tarballs, kubectl, set_artifact


def kustomizations(envs: list[str], stacks: int) -> str:
    docs = [{"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
             "metadata": {"name": f"{env}-s{s}", "namespace": NAMESPACE},
             "spec": {"interval": "1h", "path": f"./stacks/envs/{env}/s{s}", "prune": True, "wait": True,
                      "timeout": "10m", "sourceRef": {"kind": "ExternalArtifact", "name": "synthetic",
                                                      "namespace": NAMESPACE},
                      **({"dependsOn": [{"name": f"{env}-s{s - 1}"}]} if s else {})}}
            for env in envs for s in range(stacks)]
    return yaml.safe_dump_all(docs)


def applied(kubeconfig: Path) -> dict[str, str]:
    """Kustomization name -> the revision it last applied and is Ready at ("" when not Ready)."""
    items = json.loads(kubectl(kubeconfig, "get", "kustomizations", "-n", NAMESPACE, "-o", "json"))["items"]
    out = {}
    for item in items:
        status = item.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        out[item["metadata"]["name"]] = status.get("lastAppliedRevision", "") if ready else ""
    return out


class FleetFlux:
    """One kustomize-controller per cluster; `envs[i]`: the environments cluster i holds."""

    def __init__(self, kubeconfigs: list[Path], tree: Path, envs: list[list[str]], stacks: int) -> None:
        self.kubeconfigs, self.envs, self.stacks = kubeconfigs, envs, stacks
        self.tarballs = Tarballs(tree.parent)  # serves the tarball of `tree` (a folder named stacks)
        self.controllers = [Flux(kc, self._folder(tree.parent / f"controller-{i}")) for i, kc in enumerate(kubeconfigs)]
        self.peak = [0.0] * len(kubeconfigs)

    @staticmethod
    def _folder(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self) -> None:
        for controller in self.controllers:
            controller.start()

    def publish(self, revision: str) -> str:
        artifact = self.tarballs.publish(revision)
        for kubeconfig in self.kubeconfigs:
            set_artifact(kubeconfig, artifact)
        return artifact["revision"]

    def cold(self, revision: str, timeout_s: float = 3600) -> float:
        """Apply every Kustomization at once; seconds until all are Ready at `revision`."""
        expected = self.publish(revision)
        started = time.monotonic()
        for kubeconfig, envs in zip(self.kubeconfigs, self.envs):
            kubectl(kubeconfig, "apply", "-f", "-", stdin=kustomizations(envs, self.stacks))
        self.until_every_env(expected, started, timeout_s)
        return time.monotonic() - started

    def push(self, revision: str, timeout_s: float = 3600) -> list[float]:
        """A new artifact revision; per environment, seconds until its last stack is Ready at it."""
        expected = self.publish(revision)
        return self.until_every_env(expected, time.monotonic(), timeout_s)

    def until_every_env(self, expected: str, started: float, timeout_s: float) -> list[float]:
        """Per environment, seconds until all its stacks are Ready at `expected`; a progress line every
        minute (Kustomizations Ready so far), so a run stopped before the end still says how far Flux got."""
        done: dict[str, float] = {}
        total = sum(len(envs) for envs in self.envs)
        said = started
        while len(done) < total:
            if time.monotonic() - started > timeout_s:
                raise SystemExit(f"Flux: {len(done)} of {total} environments after {timeout_s:.0f} s")
            ready = 0
            for i, (kubeconfig, envs) in enumerate(zip(self.kubeconfigs, self.envs)):
                revisions = applied(kubeconfig)
                ready += sum(1 for revision in revisions.values() if revision == expected)
                for env in envs:
                    if env not in done and all(revisions.get(f"{env}-s{s}") == expected for s in range(self.stacks)):
                        done[env] = time.monotonic() - started
                self.peak[i] = max(self.peak[i], self.controllers[i].peak_rss_mib())
            if time.monotonic() - said >= 60:
                said = time.monotonic()
                print(f"  Flux after {said - started:.0f} s: {ready} of {total * self.stacks} Kustomizations Ready at "
                      f"{expected[:20]}, {len(done)} of {total} environments", flush=True)
            time.sleep(1)
        return sorted(done.values())

    def stop(self) -> None:
        for controller in self.controllers:
            controller.stop()
        self.tarballs.close()


def p95(times: list[float]) -> float:
    """The 95th percentile of sorted `times` (the lower one: with 100, the 95th)."""
    return times[max(0, int(len(times) * 0.95) - 1)]


def percentiles(times: list[float]) -> str:
    return f"{statistics.median(times):.1f} / {p95(times):.1f} / {times[-1]:.1f} s"
