"""No hidden writes: nothing turns a check off silently, unknown is never taken for a Git change, and
every way out of a pass gives the writer lease back."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from manifests import write_policies_enforcing_only_min_replicas
import private_cluster
from reconciler.pipeline.inventory import SYSTEM_NAMESPACE
from scenario import Scenario, configmap, deployment

pytestmark = pytest.mark.cluster
# this module breaks the whole control plane: it runs on one of its own (private_cluster.py)
kubeconfig, api_client = private_cluster.kubeconfig, private_cluster.api_client


def test_a_commit_that_deletes_the_policy_folder_is_refused_naming_the_folder(scenario: Scenario) -> None:
    ns = scenario.namespace
    write_policies_enforcing_only_min_replicas(scenario.repo, 2)
    scenario.stack("web", [deployment("web", ns, replicas=2)])
    scenario.commit("two replicas, policies enforce at least two")
    assert scenario.run("sync").code == 1
    for path in (scenario.repo.work_path / "policies").iterdir():
        scenario.repo.remove(f"policies/{path.name}")
    scenario.stack("web", [deployment("web", ns, replicas=1)])
    sha = scenario.commit("one replica, and the policies deleted in the same commit")

    sync = scenario.run("sync")

    assert sync.code == 2
    assert f"policy folder 'policies' does not exist at {sha[:10]}" in sync.out + sync.err
    assert "policy.mode: off" in sync.out + sync.err
    assert scenario.live("deployment", "web")["spec"]["replicas"] == 2


def test_without_policies_the_environment_must_say_policy_mode_off(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("app", scenario.namespace, {"v": "1"})])
    scenario.env_extra["policy"] = {"mode": "enforce"}
    scenario.write_env()
    scenario.commit("no policies folder, policy on")

    refused = scenario.run("sync")
    scenario.env_extra["policy"] = {"mode": "off"}
    scenario.write_env()
    allowed = scenario.run("sync")

    assert refused.code == 2 and "does not exist" in refused.out
    assert allowed.code == 1, allowed.out + allowed.err


def test_drift_after_an_inventory_rebuild_is_reported_and_never_reverted_in_detect_only_mode(
        scenario: Scenario, api_client: client.ApiClient) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"mode": "blue"})])
    scenario.write_env(correctDrift=False)
    scenario.commit("blue")
    assert scenario.run("sync").code == 1
    client.CoreV1Api(api_client).delete_namespaced_config_map(f"reconciler-{scenario.name}", SYSTEM_NAMESPACE)
    scenario.kubectl("-n", scenario.namespace, "patch", "configmap", "settings", "-p", '{"data":{"mode":"red"}}')

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 0, sync.out + sync.err
    assert sync.json["stacks"][0]["drifted"] == 1
    assert scenario.live("configmap", "settings")["data"] == {"mode": "red"}


@pytest.fixture()
def broken_aggregated_api(scenario: Scenario):
    """An APIService whose backing Service does not exist: discovery of its group answers 503."""
    group = f"{scenario.namespace}.broken.test"
    api = client.ApiregistrationV1Api(config.new_client_from_config(config_file=str(scenario.kubeconfig)))
    api.create_api_service({"metadata": {"name": f"v1.{group}"}, "spec": {
        "group": group, "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15,
        "insecureSkipTLSVerify": True, "service": {"name": "nowhere", "namespace": scenario.namespace}}})
    yield group
    api.delete_api_service(f"v1.{group}")


def test_an_inventory_rebuild_that_cannot_list_a_kind_fails_naming_it_and_prunes_nothing(
        scenario: Scenario, api_client: client.ApiClient, broken_aggregated_api: str) -> None:
    ns = scenario.namespace
    scenario.stack("app", [configmap("kept", ns, {"v": "1"}), configmap("dropped", ns, {"v": "1"})])
    scenario.commit("two")
    assert scenario.run("sync").code == 1
    client.CoreV1Api(api_client).delete_namespaced_config_map(f"reconciler-{scenario.name}", SYSTEM_NAMESPACE)
    scenario.stack("app", [configmap("kept", ns, {"v": "1"})])
    scenario.commit("drop one")

    sync = scenario.run("sync")

    assert sync.code == 2
    assert f"discovery of {broken_aggregated_api}/v1 failed" in sync.out + sync.err
    assert scenario.live("configmap", "dropped") is not None
