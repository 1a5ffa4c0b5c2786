"""Shared fixtures: one real Kubernetes API server per test session, one namespace per test.

The cluster is the one named by KUBECONFIG when that is set; otherwise a devcluster (etcd,
kube-apiserver, controller-manager, scheduler, kwok nodes) is started once for the session in a
temporary folder and stopped at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

import private_cluster
from gitrepo import PushRepo
from helpers import wait_for
from platform_support import PlatformCleanup

REPO_ROOT = Path(__file__).resolve().parent.parent

# helm, sops and age as `make build` installs them (pinned, cached outside the clone), ahead of any other.
from devcluster.versions import tools_path_dir  # noqa: E402

os.environ["PATH"] = f"{tools_path_dir()}{os.pathsep}{os.environ.get('PATH', '')}"

_SHARED_CLUSTER = pytest.StashKey[ExitStack]()
_DISPOSABLE = "HEALTHFLOW_TEST_CLUSTER_DISPOSABLE"
"""Set (to 1) where this test run started the control plane itself; workers inherit it with KUBECONFIG."""


def pytest_configure(config: pytest.Config) -> None:
    """With parallel workers (`pytest -n N`), one control plane serves them all: the controlling process
    starts it before the workers exist and hands its kubeconfig down in KUBECONFIG (workers inherit the
    environment), so the `kubeconfig` fixture of each worker finds it named."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    if os.environ.get("KUBECONFIG") or config.option.collectonly:
        return
    from devcluster.cluster import temporary

    config.stash[_SHARED_CLUSTER] = cluster = ExitStack()
    os.environ["KUBECONFIG"] = str(cluster.enter_context(temporary(prefix="pytest-devcluster-")))
    os.environ[_DISPOSABLE] = "1"


def pytest_unconfigure(config: pytest.Config) -> None:
    cluster = config.stash.get(_SHARED_CLUSTER, None)
    if cluster is not None:
        os.environ.pop("KUBECONFIG", None)
        os.environ.pop(_DISPOSABLE, None)
        cluster.close()


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that deploy the HealthFlow platform own its fixed namespaces (hf-*) and environment (dev)
    while they run: with parallel workers they run one after another on one worker (`--dist loadgroup`).
    A module on a control plane of its own (private_cluster.py) stays on one worker too: spread over two,
    each started that control plane (14 s of set-up each, beside the other tests). Tests marked `long` come
    first: the render-cache oracle (27-40 s), collected late, was the last test running in every run,
    while the other workers had nothing left to do."""
    for item in items:
        if "platform_cleanup" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("platform"))
        elif getattr(getattr(item, "module", None), "kubeconfig", None) is private_cluster.kubeconfig:
            item.add_marker(pytest.mark.xdist_group(f"private:{item.module.__name__}"))
    items.sort(key=lambda item: item.get_closest_marker("long") is None)  # stable: otherwise as collected


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    named = os.environ.get("KUBECONFIG")
    if named:
        yield Path(named)
        return
    from devcluster.cluster import down, up

    state_dir = tmp_path_factory.mktemp("devcluster")
    state = up(state_dir)
    os.environ[_DISPOSABLE] = "1"
    try:
        yield state.kubeconfig
    finally:
        os.environ.pop(_DISPOSABLE, None)
        down(state_dir, quiet=True)


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture()
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted afterwards (without waiting) on a cluster named by
    KUBECONFIG. On a control plane this run started, it is left for the end, when the whole control plane
    goes: deleting it there was only work for the API server, etcd and the namespace controller (about
    0.17 CPU-seconds for an empty namespace, 1.2 for one of 400 ConfigMaps; 290 tests take one)."""
    core = client.CoreV1Api(api_client)
    stem = request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = f"t-{stem}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"healthflow.io/test": "true"}}})
    wait_for(lambda: _has_default_service_account(core, name), timeout_s=60, what=f"default SA in {name}")
    yield name
    if os.environ.get(_DISPOSABLE) == "1":
        return
    try:
        core.delete_namespace(name)
    except ApiException:
        pass


def _has_default_service_account(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
        return True
    except ApiException:
        return False


@pytest.fixture()
def platform_cleanup(api_client: client.ApiClient) -> Iterator[PlatformCleanup]:
    cleanup = PlatformCleanup(api_client)
    cleanup.claim_namespaces()
    try:
        yield cleanup
    finally:
        cleanup.remove_all()


@pytest.fixture()
def repo(tmp_path: Path) -> PushRepo:
    """A bare Git remote in a temp folder and a clone that commits and pushes to it."""
    return PushRepo(tmp_path / "git")


@pytest.fixture()
def processes() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts (daemon replicas); any still running afterwards is killed, with its whole
    process group when it leads one (`faketime` forks the program it runs: killing faketime alone would
    leave that running)."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            try:
                leads_group = os.getpgid(process.pid) == process.pid
            except ProcessLookupError:
                continue
            os.killpg(process.pid, signal.SIGKILL) if leads_group else process.kill()
            process.wait(10)
