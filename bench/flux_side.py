"""Flux's kustomize-controller fed the synthetic environment: one Kustomization per stack (`dependsOn`
the previous one, `wait: true`, `prune: true`) whose source is an ExternalArtifact, a tarball served on
127.0.0.1 (the ExternalArtifact feature gate; no source-controller needed). Used by compare.py.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import tarfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from flux_build import ensure_flux

NAMESPACE = "flux-system"


class Tarballs:
    """Serves the latest tarball of a folder on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.root = folder.parent / "served"
        self.root.mkdir(exist_ok=True)
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(self.root), **k)  # noqa: E731
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, revision: str) -> dict:
        name = f"synthetic-{revision}.tar.gz"
        with tarfile.open(self.root / name, "w:gz") as archive:
            archive.add(self.folder / "stacks", arcname="stacks")
        digest = hashlib.sha256((self.root / name).read_bytes()).hexdigest()
        return {"url": f"http://127.0.0.1:{self.server.server_address[1]}/{name}", "path": name,
                "revision": f"main@sha1:{hashlib.sha1(revision.encode()).hexdigest()}", "digest": f"sha256:{digest}",
                "lastUpdateTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "size": (self.root / name).stat().st_size}

    def close(self) -> None:
        self.server.shutdown()


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin, capture_output=True,
                          text=True, check=True).stdout


def set_artifact(kubeconfig: Path, artifact: dict) -> None:
    patch = {"status": {"artifact": artifact}}
    kubectl(kubeconfig, "patch", "externalartifact", "synthetic", "-n", NAMESPACE, "--subresource=status",
            "--type=merge", "-p", yaml.safe_dump(patch))


def kustomizations(stacks: int) -> str:
    docs = [{"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
             "metadata": {"name": f"s{i}", "namespace": NAMESPACE},
             "spec": {"interval": "1h", "path": f"./stacks/s{i}", "prune": True, "wait": True, "timeout": "10m",
                      "sourceRef": {"kind": "ExternalArtifact", "name": "synthetic", "namespace": NAMESPACE},
                      **({"dependsOn": [{"name": f"s{i - 1}"}]} if i else {})}} for i in range(stacks)]
    return yaml.safe_dump_all(docs)


def all_ready(kubeconfig: Path, revision: str | None = None, handled: str | None = None) -> bool:
    items = yaml.safe_load(kubectl(kubeconfig, "get", "kustomizations", "-n", NAMESPACE, "-o", "yaml"))["items"]
    for item in items:
        status = item.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        if not ready or (revision and status.get("lastAppliedRevision") != revision):
            return False
        if handled and status.get("lastHandledReconcileAt") != handled:
            return False
    return bool(items)


def wait(condition, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("Flux did not get there in time")
        time.sleep(0.25)


class Flux:
    """The controller process, its CRDs and the ExternalArtifact; start() before measuring."""

    def __init__(self, kubeconfig: Path, root: Path, requeue_dependency: str = "2s") -> None:
        self.kubeconfig, self.root, self.requeue = kubeconfig, root, requeue_dependency
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary, crds = ensure_flux()
        for crd in crds:
            kubectl(self.kubeconfig, "apply", "--server-side", "-f", str(crd))
        kubectl(self.kubeconfig, "create", "namespace", NAMESPACE)
        kubectl(self.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "ExternalArtifact",
            "metadata": {"name": "synthetic", "namespace": NAMESPACE}, "spec": {}}))
        self.process = subprocess.Popen(
            [str(binary), "--enable-leader-election=false", "--watch-all-namespaces",
             "--feature-gates=ExternalArtifact=true", f"--requeue-dependency={self.requeue}",
             "--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", "--log-level=error"],
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig), "RUNTIME_NAMESPACE": NAMESPACE},
            stdout=open(self.root / "flux.log", "w"), stderr=subprocess.STDOUT)

    def peak_rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
