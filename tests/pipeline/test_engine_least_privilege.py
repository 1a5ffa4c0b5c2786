"""The deployed daemon's rights, for real: deploy/rbac.yaml and deploy/stack-accounts.yaml applied to the
cluster, the dev platform synced with the daemon's own token, each stack as its own account. The daemon
may not escalate, bind or read Secrets outside its namespace, and neither may any stack account."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from kubernetes import client, config

from platform_support import STACKS, PlatformCleanup
from reconciler.config import load_environment
from reconciler.kube.cluster import FIELD_MANAGER, Cluster
from reconciler.kube.livecache import KindWatch
from reconciler.kube.sharedwatch import WatchHub
from reconciler.objects import CLUSTER_SCOPED_KINDS
from reconciler.pipeline.engine import Engine
from reconciler.pipeline.inventory import SYSTEM_NAMESPACE
from reconciler.pipeline.ownership import OWNER_LABEL
from reconciler.results import StackState

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
DAEMON = "system:serviceaccount:healthflow-system:healthflow-reconciler"
RBAC_FILES = [REPO_ROOT / "deploy" / f for f in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml",
                                                  "stack-accounts.yaml")]


def _kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          check=check, timeout=120)


@contextlib.contextmanager
def _rbac_applied(kubeconfig: Path) -> Iterator[None]:
    """The daemon's and the stack accounts' RBAC from deploy/, applied as a user would (after the hf-*
    namespaces are claimed: stack-accounts.yaml creates them), and deleted afterwards."""
    for path in RBAC_FILES:
        _kubectl(kubeconfig, "apply", "-f", str(path))
    try:
        yield
    finally:
        for path in RBAC_FILES[2:]:
            _kubectl(kubeconfig, "delete", "--ignore-not-found", "--wait=false", "-f", str(path), check=False)


@pytest.fixture()
def deployed_rbac(kubeconfig: Path, platform_cleanup: PlatformCleanup) -> Iterator[None]:
    with _rbac_applied(kubeconfig):
        yield


@pytest.fixture(scope="class")
def rbac_to_ask(kubeconfig: Path, api_client: client.ApiClient) -> Iterator[None]:
    """deploy/'s RBAC once for a class of tests that only ask the API server what an account may do (they
    change nothing): applying it and waiting out its namespaces' deletion for each took about 11 s."""
    PlatformCleanup(api_client).claim_namespaces()
    with _rbac_applied(kubeconfig):
        yield


def _can(kubeconfig: Path, user: str, *request: str) -> bool:
    done = _kubectl(kubeconfig, "auth", "can-i", *request, f"--as={user}", check=False)
    return done.stdout.strip() == "yes"


def _daemon_client(kubeconfig: Path) -> client.ApiClient:
    """An API client holding the daemon's own token (TokenRequest), nothing of the admin's."""
    token = _kubectl(kubeconfig, "create", "token", "healthflow-reconciler", "-n", "healthflow-system").stdout.strip()
    admin = config.new_client_from_config(config_file=str(kubeconfig)).configuration
    configuration = client.Configuration()
    configuration.host, configuration.ssl_ca_cert = admin.host, admin.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


@pytest.mark.xdist_group("platform")  # stack-accounts.yaml creates the hf-* namespaces the platform tests own
class TestTheDeployedRights:
    """What deploy/'s RBAC lets each account do, asked with `kubectl auth can-i --as`."""

    @pytest.mark.parametrize("user", [DAEMON] + [f"system:serviceaccount:healthflow-system:stack-{s}"
                                                 for s in STACKS])
    def test_neither_the_daemon_nor_a_stack_account_may_escalate_bind_or_read_secrets_cluster_wide(
            self, rbac_to_ask: None, kubeconfig: Path, user: str) -> None:
        assert not _can(kubeconfig, user, "escalate", "clusterroles")
        assert not _can(kubeconfig, user, "bind", "clusterroles")
        assert not _can(kubeconfig, user, "get", "secrets", "-n", "kube-system")
        assert not _can(kubeconfig, user, "list", "secrets", "--all-namespaces")
        assert not _can(kubeconfig, user, "create", "clusterrolebindings")
        assert not _can(kubeconfig, user, "impersonate", "users")

    def test_the_daemon_itself_writes_only_in_its_own_namespace(self, rbac_to_ask: None, kubeconfig: Path) -> None:
        assert _can(kubeconfig, DAEMON, "patch", "configmaps", "-n", "healthflow-system")
        assert _can(kubeconfig, DAEMON, "impersonate", "serviceaccounts/stack-gateway", "-n", "healthflow-system")
        assert not _can(kubeconfig, DAEMON, "patch", "configmaps", "-n", "hf-app")
        assert not _can(kubeconfig, DAEMON, "list", "pods", "--all-namespaces")
        assert not _can(kubeconfig, DAEMON, "impersonate", "serviceaccounts/default", "-n", "kube-system")

    def test_a_stack_account_may_write_in_its_own_namespace_only(self, rbac_to_ask: None, kubeconfig: Path) -> None:
        data = "system:serviceaccount:healthflow-system:stack-data"
        assert _can(kubeconfig, data, "patch", "statefulsets", "-n", "hf-data")
        assert _can(kubeconfig, data, "get", "secrets", "-n", "hf-data")
        assert not _can(kubeconfig, data, "get", "secrets", "-n", "hf-app")
        assert not _can(kubeconfig, data, "patch", "namespaces/hf-app")


@pytest.fixture(params=[False, True], ids=["own-watches", "shared-watches"])
def shared_watches(request: pytest.FixtureRequest, deployed_rbac: None, kubeconfig: Path) -> Iterator[bool]:
    """Without, and with, deploy/shared-watches.yaml (the daemon may list and watch some kinds cluster-wide)."""
    path = REPO_ROOT / "deploy" / "shared-watches.yaml"
    if request.param:
        _kubectl(kubeconfig, "apply", "-f", str(path))
    yield request.param
    if request.param:
        _kubectl(kubeconfig, "delete", "--ignore-not-found", "-f", str(path), check=False)


def test_the_dev_platform_syncs_healthy_with_the_daemons_token_each_stack_as_its_account(
        shared_watches: bool, tmp_path: Path, kubeconfig: Path, api_client: client.ApiClient,
        platform_cleanup: PlatformCleanup) -> None:
    raw = yaml.safe_load((REPO_ROOT / "environments" / "dev.yaml").read_text())
    raw["name"], raw["source"]["url"] = "dev-least-privilege", str(REPO_ROOT)
    raw["policy"] = {"mode": "warn"}  # policies key their per-environment modes on the name "dev"
    for stack in raw["stacks"]:
        stack["serviceAccountName"] = f"healthflow-system/stack-{stack['name']}"
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(raw))
    daemon_client = _daemon_client(kubeconfig)
    hub = WatchHub(Cluster(daemon_client), OWNER_LABEL, FIELD_MANAGER)  # as the daemon gives its engines
    engine = Engine(load_environment(tmp_path / "env.yaml"), cache_dir=tmp_path / "cache",
                    api_client=daemon_client, watch_hub=hub)
    for objects in engine.render().objects.values():
        for obj in objects:
            if obj.kind in CLUSTER_SCOPED_KINDS:
                platform_cleanup.created(obj.manifest)
    live = engine.enable_live_cache()
    try:
        result = engine.sync()

        assert result.error == "", result.error
        assert {s.stack: s.state for s in result.stacks} == {s: StackState.APPLIED for s in STACKS}, \
            {s.stack: s.reason for s in result.stacks}
        assert all(s.healthy for s in result.stacks)
        assert live.wait_synced(60)
        own = {key.kind for key, watch in live.watches.items() if isinstance(watch, KindWatch)}
        if shared_watches:  # one watch per kind the daemon may list everywhere; Secrets as the stack accounts
            assert {kind for _, kind in hub.watches} == {key.kind for key in live.watches} - {"Secret"}
            assert own == {"Secret"}
        else:  # the daemon may not list cluster-wide: every watch as the stack's account
            assert hub.watches == {} and own == {key.kind for key in live.watches}
        assert {s.state for s in engine.sync().stacks} == {StackState.UNCHANGED}
    finally:
        live.stop()
        try:
            client.CoreV1Api(api_client).delete_namespaced_config_map("reconciler-dev-least-privilege",
                                                                      SYSTEM_NAMESPACE)
        except client.ApiException:
            pass
