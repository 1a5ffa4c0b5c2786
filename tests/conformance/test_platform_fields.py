"""The platform this repository carries keeps the field-for-field promise too."""

from __future__ import annotations

from pathlib import Path

import git
import pytest
import yaml
from kubernetes import client

from scenario import Scenario, labels_of
from platform_support import PlatformCleanup

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
REMOVED = "pod-security.kubernetes.io/enforce"


@pytest.fixture()
def platform(tmp_path: Path, kubeconfig: Path, api_client: client.ApiClient,
             platform_cleanup: PlatformCleanup) -> Scenario:
    """A clone of this repository's committed main, with the dev environment pointed at it."""
    clone = git.Repo.clone_from(str(REPO_ROOT), tmp_path / "platform")
    clone.git.checkout("-B", "main")
    with clone.config_writer() as writer:
        writer.set_value("user", "name", "Test Author")
        writer.set_value("user", "email", "author@example.test")
    dev = yaml.safe_load((REPO_ROOT / "environments" / "dev.yaml").read_text())
    dev["source"]["url"] = str(tmp_path / "platform")
    scenario = Scenario(tmp_path, "hf-gateway", kubeconfig)
    scenario.env_file.parent.mkdir(parents=True, exist_ok=True)
    scenario.env_file.write_text(yaml.safe_dump(dev))
    scenario.clone = clone  # type: ignore[attr-defined]
    platform_cleanup.created({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hf-gateway"}})
    for kind in ("ClusterRole", "ClusterRoleBinding"):  # the gateway stack's cluster-scoped objects
        platform_cleanup.created({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
                                  "metadata": {"name": "healthflow-traefik"}})
    platform_cleanup.created({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                              "metadata": {"name": "traefik"}})
    yield scenario
    try:
        client.CoreV1Api(api_client).delete_namespaced_config_map("reconciler-dev", "healthflow-system")
    except client.ApiException:
        pass


def test_a_label_removed_from_the_platform_base_is_removed_from_the_cluster(platform: Scenario) -> None:
    assert platform.run("sync", "--stack", "gateway").code == 1
    assert labels_of(platform.live("namespace", "hf-gateway", namespace=None))[REMOVED] == "restricted"
    namespace_file = Path(platform.clone.working_tree_dir) / "base" / "gateway" / "namespace.yaml"
    namespace_file.write_text("".join(line for line in namespace_file.read_text().splitlines(keepends=True)
                                      if not line.strip().startswith(REMOVED + ":")))
    platform.clone.git.commit("-am", f"gateway: drop the {REMOVED} label")

    plan = platform.run("plan", "--stack", "gateway")
    sync = platform.run("sync", "--stack", "gateway")

    assert plan.code == 1 and f"- metadata.labels.{REMOVED}: restricted" in plan.out, plan.out
    assert sync.code == 1, sync.out + sync.err
    live = labels_of(platform.live("namespace", "hf-gateway", namespace=None))
    assert REMOVED not in live and live[f"{REMOVED}-version"] == "v1.32"
    assert platform.run("plan", "--stack", "gateway").code == 0
