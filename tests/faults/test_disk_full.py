"""The cache disk full: `reconciler sync` cannot write its Git mirror, exported trees or render cache.
It fails with one line naming the problem and exit 2, changes nothing in the cluster, and the next run
with space again converges. A full disk is a file-size limit of 0 on the process (RLIMIT_FSIZE, inherited
by git and kustomize): every write to a file fails, as on a full filesystem."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

from manifests import configmap, make_env, write_stack

pytestmark = pytest.mark.cluster


def _sync(env_file: Path, cache: Path, kubeconfig: Path, *, disk_full: bool) -> subprocess.CompletedProcess:
    def no_file_may_grow() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    return subprocess.run([sys.executable, "-m", "reconciler", "sync", "-e", str(env_file), "--cache-dir", str(cache),
                           "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=300,
                          preexec_fn=no_file_may_grow if disk_full else None)


def test_a_full_cache_disk_fails_the_sync_with_one_line_changes_nothing_and_the_next_run_converges(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient) -> None:
    write_stack(repo, "app", [configmap("settings", namespace, {"v": "1"})])
    repo.commit("v1")
    env_file = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])
    assert _sync(env_file, tmp_path / "cache", kubeconfig, disk_full=False).returncode == 1
    write_stack(repo, "app", [configmap("settings", namespace, {"v": "2"})])
    repo.commit("v2")

    full = _sync(env_file, tmp_path / "cache", kubeconfig, disk_full=True)

    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr
    assert "the disk is full" in full.stdout + full.stderr, (full.stdout, full.stderr)
    settings = client.CoreV1Api(api_client).read_namespaced_config_map("settings", namespace)
    assert settings.data == {"v": "1"}
    again = _sync(env_file, tmp_path / "cache", kubeconfig, disk_full=False)
    assert again.returncode == 1, again.stderr
    assert client.CoreV1Api(api_client).read_namespaced_config_map("settings", namespace).data == {"v": "2"}
