"""The Scenario a conformance test drives, and builders for the objects it puts in Git.

A scenario is a small real Git repository (a bare remote and a clone that pushes), an environment
file pointing at it, the `reconciler` command run against the session's real API server, and the
live objects read back with kubectl. Objects live in the test's own namespace, and the environment
is named after it, so scenarios never see each other's inventory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitrepo import PushRepo
from manifests import configmap, deployment, write_stack  # noqa: F401 - the builders scenarios use
from reconciler.cli import main as reconciler_main


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)


class Scenario:
    """One user's repository and environment: write stacks, commit, run the CLI, look at the cluster."""

    def __init__(self, root: Path, namespace: str, kubeconfig: Path) -> None:
        self.repo = PushRepo(root / "git")
        self.namespace = namespace
        self.name = namespace
        self.kubeconfig = kubeconfig
        self.env_file = root / "environments" / f"{namespace}.yaml"
        self.cache_dir = root / "cache"
        self.stacks: dict[str, dict] = {}
        self.sync_options: dict[str, object] = {"interval": "1h", "healthTimeout": "60s"}
        self.source_options: dict[str, object] = {}
        self.env_extra: dict[str, object] = {}  # other top-level sections of the environment file (rollback, ...)
        self.env_in_git = False  # True: stacks and settings live in Git (environments/<name>.yaml), followed

    # --- the repository ----------------------------------------------------------------------

    def stack(self, name: str, objects: list[dict], depends_on: tuple[str, ...] = (), **options: object) -> None:
        """Write `stacks/<name>/` (objects.yaml + kustomization) and declare the stack in the environment."""
        write_stack(self.repo, name, objects, buildMetadata=["originAnnotations"])
        self.stacks[name] = {"name": name, "path": f"stacks/{name}", **({"dependsOn": list(depends_on)}
                                                                          if depends_on else {}), **options}
        self.write_env()

    def write_env(self, **sync: object) -> None:
        """The environment file: all of it beside the repository, or (`env_in_git`) the stacks and settings
        in Git at `environments/<name>.yaml` (committed with the next commit) and only the source here."""
        self.sync_options.update(sync)
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        source = {"url": self.repo.url, "branch": "main", **self.source_options}
        policy = {} if (self.repo.work_path / "policies").is_dir() else {"policy": {"mode": "off"}}
        settings = {"sync": self.sync_options, **policy, **self.env_extra, "stacks": list(self.stacks.values())}
        if self.env_in_git:
            self.repo.write(self.git_env_path, {"name": self.name, **settings})
            source["environment"] = self.git_env_path
            self.env_file.write_text(yaml.safe_dump({"name": self.name, "source": source}, sort_keys=False))
        else:
            self.env_file.write_text(yaml.safe_dump({"name": self.name, "source": source, **settings}, sort_keys=False))

    @property
    def git_env_path(self) -> str:
        return f"environments/{self.name}.yaml"

    def commit(self, message: str = "change") -> str:
        return self.repo.commit(message)

    # --- the command -------------------------------------------------------------------------

    def run(self, command: str, *args: str) -> CliRun:
        """`reconciler <command> -e <env> ...` in this process, as a user types it."""
        return self._invoke([*command.split(), "-e", str(self.env_file), "--cache-dir", str(self.cache_dir),
                             "--kubeconfig", str(self.kubeconfig), *args])

    def run_validate(self) -> CliRun:
        """`reconciler validate` of the folder holding this scenario's environment file."""
        return self._invoke(["validate", "--environments", str(self.env_file.parent), "--cache-dir",
                             str(self.cache_dir), "--kubeconfig", str(self.kubeconfig)])

    def _invoke(self, argv: list[str]) -> CliRun:
        out, err = io.StringIO(), io.StringIO()
        columns = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "1000"  # one line per message, as a wide terminal shows it
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = reconciler_main(argv)
        finally:
            if columns is None:
                os.environ.pop("COLUMNS")
            else:
                os.environ["COLUMNS"] = columns
        return CliRun(code, out.getvalue(), err.getvalue())

    def start(self, command: str, *args: str) -> subprocess.Popen:
        """`python -m reconciler <command> ...` as a separate process, for what happens while it runs."""
        argv = [sys.executable, "-m", "reconciler", *command.split(), "-e", str(self.env_file),
                "--cache-dir", str(self.cache_dir), "--kubeconfig", str(self.kubeconfig), *args]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # --- the cluster -------------------------------------------------------------------------

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], capture_output=True,
                              text=True, check=check, timeout=60)

    def live(self, kind: str, name: str, namespace: str | None = "") -> dict | None:
        """The live object as `kubectl get -o json` shows it, or None. namespace '' means the test's."""
        scope = ["-n", namespace or self.namespace] if namespace is not None else []
        done = self.kubectl("get", kind, name, *scope, "-o", "json", check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr or "not found" in done.stderr or "doesn't have a resource type" in done.stderr:
                return None
            raise AssertionError(f"kubectl get {kind} {name}: {done.stderr}")
        return json.loads(done.stdout)



def labels_of(obj: dict | None) -> dict:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def annotations_of(obj: dict | None) -> dict:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def crd(group: str, kind: str = "Widget", status_subresource: bool = False) -> dict:
    """A namespaced CustomResourceDefinition `<plural>.<group>` that accepts any fields."""
    plural = kind.lower() + "s"
    version = {"name": "v1", "served": True, "storage": True,
               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    if status_subresource:
        version["subresources"] = {"status": {}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced", "versions": [version],
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"}}}


def custom(group: str, name: str, namespace: str, kind: str = "Widget", **body: object) -> dict:
    return {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}, **body}
