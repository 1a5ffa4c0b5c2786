"""Git still wins on the layouts real platform repositories have: nested kustomizations, an
environment file kept in Git, paths that try to leave the repository."""

from __future__ import annotations

import pytest
import yaml

from helpers import wait_for
from manifests import kustomization
from scenario import Scenario, configmap, crd, custom

pytestmark = pytest.mark.cluster


def test_a_change_in_a_base_reached_through_a_nested_kustomization_is_deployed(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.repo.write("base/web/cm.yaml", configmap("web", ns, {"v": "1"}))
    scenario.repo.write("base/web/kustomization.yaml", kustomization("cm.yaml"))
    scenario.repo.write("apps/web/kustomization.yaml", kustomization("site"))
    scenario.repo.write("apps/web/site/kustomization.yaml", kustomization("../../../base/web"))
    scenario.stacks["web"] = {"name": "web", "path": "apps/web"}
    scenario.write_env()
    scenario.commit("web through a nested kustomization")
    assert scenario.run("sync").code == 1
    scenario.repo.write("base/web/cm.yaml", configmap("web", ns, {"v": "2"}))
    scenario.commit("change the base")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "web")["data"] == {"v": "2"}


def test_a_stack_added_to_the_environment_file_in_git_is_deployed_by_the_next_sync(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.env_in_git = True
    scenario.stack("first", [configmap("first", ns, {"v": "1"})])
    scenario.commit("one stack")
    assert scenario.run("sync").code == 1
    scenario.stack("second", [configmap("second", ns, {"v": "1"})], depends_on=("first",))
    sha = scenario.commit("add a stack in Git")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "second")["data"] == {"v": "1"}
    assert f"environment file: {scenario.git_env_path}@{sha[:10]}" in sync.out


def test_a_stack_removed_from_the_environment_file_in_git_is_pruned_by_the_next_sync(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.env_in_git = True
    scenario.stack("keep", [configmap("keep", ns, {"v": "1"})])
    scenario.stack("gone", [configmap("gone", ns, {"v": "1"})])
    scenario.commit("two stacks")
    assert scenario.run("sync").code == 1
    del scenario.stacks["gone"]
    scenario.write_env()
    scenario.commit("remove a stack in Git")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "gone") is None
    assert scenario.live("configmap", "keep") is not None


def test_status_names_the_environment_file_in_force(scenario: Scenario) -> None:
    scenario.env_in_git = True
    scenario.stack("app", [configmap("app", scenario.namespace, {"v": "1"})])
    sha = scenario.commit("one stack")
    scenario.run("sync")

    status = scenario.run("status", "-o", "json")

    assert status.code == 0, status.err
    assert status.json["env_file"] == f"{scenario.git_env_path}@{sha[:10]}"
    assert [s["stack"] for s in status.json["stacks"]] == ["app"]


def test_an_invalid_environment_file_at_a_commit_fails_the_pass_and_changes_nothing(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.env_in_git = True
    scenario.stack("app", [configmap("app", ns, {"v": "1"})])
    scenario.commit("valid")
    scenario.run("sync")
    scenario.stack("app", [configmap("app", ns, {"v": "2"})], depends_on=("nowhere",))
    sha = scenario.commit("dependsOn a stack that does not exist")

    sync = scenario.run("sync")

    assert sync.code == 2
    assert f"{scenario.git_env_path}@{sha[:10]}" in sync.out and "nowhere" in sync.out
    assert scenario.live("configmap", "app")["data"] == {"v": "1"}


def test_a_source_path_leaving_the_repository_is_refused_by_validate(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("app", scenario.namespace, {"v": "1"})])
    scenario.source_options["path"] = "../../../../tmp/elsewhere"
    scenario.write_env()
    scenario.commit("stack")

    validate = scenario.run_validate()

    assert validate.code == 2
    assert "source.path" in validate.err and "outside the repository" in validate.err


def test_a_stack_path_through_a_symbolic_link_leaving_the_repository_is_refused_by_every_pass(
        scenario: Scenario, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (elsewhere / "cm.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: host-file\n"
                                       f"  namespace: {scenario.namespace}\ndata:\n  secret: from-the-host\n")
    (scenario.repo.work_path / "linked").symlink_to(elsewhere)
    scenario.stacks["app"] = {"name": "app", "path": "linked"}
    scenario.write_env()
    scenario.commit("a stack that is a link out of the repository")

    sync = scenario.run("sync")

    assert sync.code == 2
    assert "'linked'" in sync.out and "outside the repository" in sync.out
    assert scenario.live("configmap", "host-file") is None


def test_a_custom_resource_whose_crd_was_uninstalled_by_hand_is_gone_and_blocks_nothing(
        scenario: Scenario, group: str, tmp_path) -> None:
    ns = scenario.namespace
    definition = tmp_path / "crd.yaml"
    definition.write_text(yaml.safe_dump(crd(group)))
    scenario.kubectl("apply", "-f", str(definition))
    scenario.kubectl("wait", "--for", "condition=established", f"crd/widgets.{group}", "--timeout=60s")
    scenario.stack("app", [configmap("app", ns, {"v": "1"}), custom(group, "w", ns, spec={"size": 1})])
    scenario.stack("after", [configmap("after", ns, {"v": "1"})], depends_on=("app",))
    scenario.commit("a custom resource of a CRD installed by hand")
    assert scenario.run("sync").code == 1
    scenario.stack("app", [configmap("app", ns, {"v": "1"})])
    scenario.stack("after", [configmap("after", ns, {"v": "2"})], depends_on=("app",))
    scenario.commit("drop the custom resource")
    scenario.kubectl("delete", "crd", f"widgets.{group}", "--wait=true", "--timeout=60s")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert sync.out.count("treated as already deleted") == 1
    assert scenario.live("configmap", "after")["data"] == {"v": "2"}
    assert scenario.run("sync").code == 0


def test_a_crd_and_its_custom_resources_removed_in_one_commit_converge_in_one_sync(
        scenario: Scenario, group: str) -> None:
    ns = scenario.namespace
    scenario.stack("crds", [configmap("crds", ns, {"v": "1"}), crd(group)], pruneNamespaces=True)
    scenario.stack("widgets", [configmap("widgets", ns, {"v": "1"}), custom(group, "w", ns, spec={"size": 1})],
                   depends_on=("crds",))
    scenario.commit("a CRD and a custom resource of it")
    assert scenario.run("sync").code == 1
    scenario.stack("crds", [configmap("crds", ns, {"v": "1"})], pruneNamespaces=True)
    scenario.stack("widgets", [configmap("widgets", ns, {"v": "1"})], depends_on=("crds",))
    scenario.commit("remove the CRD and its custom resources")

    first = scenario.run("sync")
    second = scenario.run("sync")

    assert first.code == 1, first.out + first.err
    assert second.code == 0, second.out + second.err
    wait_for(lambda: scenario.live("crd", f"widgets.{group}", namespace=None) is None, timeout_s=60,
             what="the pruned CRD to be deleted")


def unnamespaced_configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": "1"}}


def cluster_role(name: str, namespace: str | None = None) -> dict:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": metadata,
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}


def test_removing_a_meaningless_namespace_from_a_cluster_scoped_object_changes_nothing_live(
        scenario: Scenario) -> None:
    ns, name = scenario.namespace, f"{scenario.namespace}-reader"
    scenario.stack("rbac", [cluster_role(name, namespace="somewhere"), configmap("keep", ns, {"v": "1"})])
    scenario.commit("a ClusterRole written with a namespace")
    try:
        assert scenario.run("sync").code == 1
        uid = scenario.live("clusterrole", name, namespace=None)["metadata"]["uid"]
        scenario.stack("rbac", [cluster_role(name), configmap("keep", ns, {"v": "1"})])
        scenario.commit("remove the meaningless namespace")

        sync = scenario.run("sync")

        assert sync.code == 0, sync.out + sync.err
        assert scenario.live("clusterrole", name, namespace=None)["metadata"]["uid"] == uid
    finally:
        scenario.kubectl("delete", "clusterrole", name, "--ignore-not-found", check=False)


def test_a_namespaced_object_without_a_namespace_goes_to_the_stacks_default_namespace(scenario: Scenario) -> None:
    scenario.stack("app", [unnamespaced_configmap("plain")], defaultNamespace=scenario.namespace)
    scenario.commit("a ConfigMap naming no namespace")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "plain")["data"] == {"v": "1"}


def test_a_namespaced_object_without_a_namespace_and_no_default_is_a_clear_error(scenario: Scenario) -> None:
    scenario.stack("app", [unnamespaced_configmap("plain")])
    scenario.commit("a ConfigMap naming no namespace")

    sync = scenario.run("sync")

    assert sync.code == 2
    assert "ConfigMap 'plain' (stacks/app/objects.yaml) is namespaced but has no namespace" in sync.out
    assert "defaultNamespace" in sync.out


def test_adopting_an_object_made_by_kubectl_apply_takes_over_the_fields_kubectl_owned(
        scenario: Scenario, tmp_path) -> None:
    ns = scenario.namespace
    made_by_hand = tmp_path / "cm.yaml"
    made_by_hand.write_text(yaml.safe_dump(configmap("app", ns, {"v": "1"}, labels={"team": "a", "stale": "yes"})))
    scenario.kubectl("apply", "-f", str(made_by_hand))
    scenario.kubectl("label", "configmap", "app", "-n", ns, "other=kept")
    scenario.stack("app", [configmap("app", ns, {"v": "1"}, labels={"team": "a"})])
    scenario.commit("the ConfigMap in Git, without the stale label")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    live = scenario.live("configmap", "app")
    labels = live["metadata"]["labels"]
    assert (labels["team"], labels["other"], "stale" in labels) == ("a", "kept", False)
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (live["metadata"].get("annotations") or {})
