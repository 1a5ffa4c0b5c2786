"""Flux's kustomize-controller, built from its Go module and cached beside the devcluster binaries.

    python bench/flux_build.py        # prints the binary's path and the CRD folder

Pinned: kustomize-controller v1.9.6 (v1.10.x needs fluxcd/pkg versions the module proxy refuses) with
the source-controller v1.9.0 CRDs it watches (GitRepository, OCIRepository, Bucket, ExternalArtifact,
even when unused). The module's go.mod replaces `.../api => ./api`, and the nested api module is not in
the module zip: the source is copied to a writable folder, `github.com/fluxcd/kustomize-controller/api`
of the same version is put at ./api, and `go build .` runs there (about 4 minutes on 2 cores, once).
Cache: ~/.cache/healthflow-flux/kustomize-controller-<version>_<go version>/.

compare.py --flux runs it against the synthetic environment (see flux_side.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KUSTOMIZE_CONTROLLER = "v1.9.6"
SOURCE_CONTROLLER = "v1.9.0"
CACHE = Path.home() / ".cache" / "healthflow-flux"


def _download(module: str) -> Path:
    done = subprocess.run(["go", "mod", "download", "-json", module], capture_output=True, text=True, check=True,
                          env={**os.environ, "GOFLAGS": "-mod=mod"})
    return Path(json.loads(done.stdout)["Dir"])


def _go_version() -> str:
    return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def _writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def ensure_flux() -> tuple[Path, list[Path]]:
    """(the kustomize-controller binary, the CRD files to install), building once."""
    target = CACHE / f"kustomize-controller-{KUSTOMIZE_CONTROLLER}_{_go_version()}"
    binary = target / "kustomize-controller"
    crds = target / "crds"
    if not binary.exists():
        source = _download(f"github.com/fluxcd/kustomize-controller@{KUSTOMIZE_CONTROLLER}")
        api = _download(f"github.com/fluxcd/kustomize-controller/api@{KUSTOMIZE_CONTROLLER}")
        sources = _download(f"github.com/fluxcd/source-controller@{SOURCE_CONTROLLER}")
        with tempfile.TemporaryDirectory(prefix="flux-build-") as tmp:
            work = Path(tmp) / "src"
            shutil.copytree(source, work)
            _writable(work)  # the module cache is read-only
            shutil.rmtree(work / "api", ignore_errors=True)
            shutil.copytree(api, work / "api")
            _writable(work / "api")
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["go", "build", "-o", str(binary.with_suffix(".partial")), "."], cwd=work, check=True,
                           env={**os.environ, "GOFLAGS": "-mod=mod"})
        crds.mkdir(exist_ok=True)
        for crd in [*(source / "config" / "crd" / "bases").glob("*.yaml"),
                    *(sources / "config" / "crd" / "bases").glob("*.yaml")]:
            shutil.copy(crd, crds / crd.name)
        binary.with_suffix(".partial").rename(binary)
    return binary, sorted(crds.glob("*.yaml"))


def main() -> int:
    binary, crds = ensure_flux()
    print(binary)
    print("\n".join(str(c) for c in crds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
