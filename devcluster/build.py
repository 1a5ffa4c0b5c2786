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

from devcluster.versions import BINARIES, GOMOD_DIR, KUBERNETES_VERSION, Binary, bin_dir


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
    return f"{flags} {_kubernetes_ldflags()}" if module_dir == "kubernetes" else flags


def missing_binaries(target: Path) -> list[Binary]:
    return [b for b in BINARIES if not (target / b.name).is_file()]


def _go_build(module_dir: str, binaries: list[Binary], out_dir: Path) -> None:
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN=os.environ.get("GOTOOLCHAIN", "local"), GOFLAGS="-mod=readonly")
    command = ["go", "build", "-trimpath", f"-ldflags={_ldflags(module_dir)}", "-o", f"{out_dir}/"]
    command += [b.package for b in binaries]
    if len(binaries) == 1 and binaries[0].package == ".":
        command[-2:] = [str(out_dir / binaries[0].name), "."]
    result = subprocess.run(command, cwd=GOMOD_DIR / module_dir, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise BuildError(f"go build in devcluster/gomod/{module_dir} failed:\n{tail}")


def build(verbose: bool = True) -> Path:
    """Build whatever is missing into the versioned cache folder; return that folder."""
    target = bin_dir()
    missing = missing_binaries(target)
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
            _go_build(module_dir, binaries, Path(tmp))
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
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1)
