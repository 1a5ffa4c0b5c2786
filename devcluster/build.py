"""Builds the control-plane binaries from the pinned wrapper Go modules, once.

A binary already in the cache is never rebuilt, so the second `build` is a no-op. Builds use
`-trimpath` so Go's own compile cache (GOCACHE) is shared across checkouts in different folders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devcluster.versions import (
    BINARIES,
    GOMOD_DIR,
    GOTOOLS_DIR,
    HELM_VERSION,
    KUBERNETES_VERSION,
    TOOL_BINARIES,
    Binary,
    bin_dir,
    tools_bin_dir,
    tools_path_dir,
)


class BuildError(RuntimeError):
    """`go build` failed; the message carries the tail of its output."""


def _kubernetes_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    values = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
    }
    return " ".join(f"-X {pkg}.{key}={value}" for key, value in values.items())


def _ldflags(module_dir: str) -> str:
    flags = "-s -w"
    if module_dir == "kubernetes":
        return f"{flags} {_kubernetes_ldflags()}"
    if module_dir == "helm":  # `helm version` reports the pin instead of "unreleased"
        return f"{flags} -X helm.sh/helm/v3/internal/version.version={HELM_VERSION} -X helm.sh/helm/v3/internal/version.metadata="
    return flags


def missing_binaries(target: Path, binaries: tuple[Binary, ...] = BINARIES) -> list[Binary]:
    return [b for b in binaries if not (target / b.name).is_file()]


def _go_build(module_dir: str, binaries: list[Binary], out_dir: Path, root: Path = GOMOD_DIR) -> None:
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN=os.environ.get("GOTOOLCHAIN", "local"), GOFLAGS="-mod=readonly")
    command = ["go", "build", "-trimpath", f"-ldflags={_ldflags(module_dir)}", "-o", f"{out_dir}/"]
    command += [b.package for b in binaries]
    if len(binaries) == 1 and binaries[0].package == ".":
        command[-2:] = [str(out_dir / binaries[0].name), "."]
    result = subprocess.run(command, cwd=root / module_dir, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise BuildError(f"go build in devcluster/{root.name}/{module_dir} failed:\n{tail}")


def build(verbose: bool = True) -> Path:
    """Build whatever control-plane binary is missing into the versioned cache folder; return it."""
    return _build_set(BINARIES, GOMOD_DIR, bin_dir(), verbose)


def build_tools(verbose: bool = True) -> Path:
    """Build helm, sops and age when missing, and point the stable PATH folder's links at them."""
    target = _build_set(TOOL_BINARIES, GOTOOLS_DIR, tools_bin_dir(), verbose)
    links = tools_path_dir()
    links.mkdir(parents=True, exist_ok=True)
    for binary in TOOL_BINARIES:
        link = links / binary.name
        temporary = links / f".{binary.name}.new"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target / binary.name)
        os.replace(temporary, link)
    return target


def _build_set(wanted: tuple[Binary, ...], root: Path, target: Path, verbose: bool) -> Path:
    missing = missing_binaries(target, wanted)
    if not missing:
        if verbose:
            print(f"devcluster: binaries cached in {target} (nothing to build)")
        return target
    if not shutil.which("go"):
        raise BuildError("the Go toolchain is not on PATH; install Go >= 1.24 to build the devcluster")
    target.mkdir(parents=True, exist_ok=True)
    by_module: dict[str, list[Binary]] = {}
    for binary in missing:
        by_module.setdefault(binary.module_dir, []).append(binary)
    started = time.monotonic()
    for module_dir, binaries in by_module.items():
        names = ", ".join(b.name for b in binaries)
        if verbose:
            print(f"devcluster: building {names} ...", flush=True)
        step = time.monotonic()
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            _go_build(module_dir, binaries, Path(tmp), root)
            for binary in binaries:
                os.replace(Path(tmp) / binary.name, target / binary.name)
        if verbose:
            print(f"devcluster: built {names} in {time.monotonic() - step:.0f}s", flush=True)
    if verbose:
        print(f"devcluster: build time {time.monotonic() - started:.0f}s, binaries in {target}", flush=True)
    return target


if __name__ == "__main__":
    try:
        build()
        build_tools()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1)
