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

GOMOD_DIR = Path(__file__).resolve().parent / "gomod"
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


def go_version() -> str:
    if not shutil.which("go"):
        return "no-go"
    return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def modules_digest() -> str:
    """Short hash of the wrapper modules' go.mod/go.sum, so an edited pin never reuses stale binaries."""
    digest = hashlib.sha256()
    for path in sorted(GOMOD_DIR.glob("*/go.*")) + sorted(GOMOD_DIR.glob("*/*.go")):
        digest.update(path.relative_to(GOMOD_DIR).as_posix().encode())
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
