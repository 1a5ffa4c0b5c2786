"""Pinned component versions and where their binaries are cached.

The cache lives outside the checkout (`~/.cache/healthflow-devcluster/<key>/`) so a fresh CI clone
reuses binaries built by an earlier run; the key changes whenever a pin or the Go toolchain does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

HELM_VERSION = "v3.22.0"
SOPS_VERSION = "v3.13.3"
AGE_VERSION = "v1.3.2"

GOMOD_DIR = Path(__file__).resolve().parent / "gomod"
GOTOOLS_DIR = Path(__file__).resolve().parent / "gotools"
STAGES_FILE = Path(__file__).resolve().parent / "kwok" / "stages.yaml"


@dataclass(frozen=True)
class Binary:
    """One binary: which wrapper module builds it, from which Go package."""

    name: str
    module_dir: str
    package: str


BINARIES: tuple[Binary, ...] = (
    Binary("etcd", "etcd", "."),
    Binary("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok"),
    Binary("kube-apiserver", "kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver"),
    Binary("kube-controller-manager", "kubernetes", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    Binary("kube-scheduler", "kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler"),
)

# Tools a feature needs at render time (Helm charts through kustomize, SOPS decryption, age keys, kustomize
# builds without a process start per stack).
# They live in their own wrapper modules and cache key, so adding or bumping one never rebuilds
# the control plane.
TOOL_BINARIES: tuple[Binary, ...] = (
    Binary("helm", "helm", "helm.sh/helm/v3/cmd/helm"),
    Binary("sops", "sops", "github.com/getsops/sops/v3/cmd/sops"),
    Binary("age", "age", "filippo.io/age/cmd/age"),
    Binary("age-keygen", "age", "filippo.io/age/cmd/age-keygen"),
    # the kustomize CLI's build command in a long-lived process (reconciler.pipeline.kustomize_workers)
    Binary("kustomize-worker", "kustomize-worker", "."),
)


def go_version() -> str:
    if not shutil.which("go"):
        return "no-go"
    return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def modules_digest(root: Path = GOMOD_DIR) -> str:
    """Short hash of the wrapper modules' go.mod/go.sum, so an edited pin never reuses stale binaries."""
    digest = hashlib.sha256()
    for path in sorted(root.glob("*/go.*")) + sorted(root.glob("*/*.go")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    base = os.environ.get("HEALTHFLOW_DEVCLUSTER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "healthflow-devcluster"
    )
    return Path(base)


def bin_dir() -> Path:
    key = f"k8s-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}_{go_version()}_{modules_digest()}"
    return cache_root() / key / "bin"


def tools_bin_dir() -> Path:
    """Where helm, sops and age are cached, keyed by their pins, the Go toolchain and their modules."""
    key = f"tools_helm-{HELM_VERSION}_sops-{SOPS_VERSION}_age-{AGE_VERSION}_{go_version()}_{modules_digest(GOTOOLS_DIR)}"
    return cache_root() / key / "bin"


def tools_path_dir() -> Path:
    """A stable folder of links to the current tools, for PATH (the Makefile puts it there)."""
    return cache_root() / "tools"
