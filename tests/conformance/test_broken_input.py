"""Broken input loses nothing: the stack applies nothing, says which file and the fix, its dependents
wait, independent stacks go on, and what was applied before stays as it was."""

from __future__ import annotations

import base64

import pytest

from scenario import Scenario, configmap, custom

pytestmark = pytest.mark.cluster


def _namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def test_invalid_yaml_fails_its_stack_and_dependents_while_independent_stacks_go_on(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("base", [configmap("base", ns, {"v": "1"})])
    scenario.stack("dependent", [configmap("dependent", ns, {"v": "1"})], depends_on=("base",))
    scenario.stack("independent", [configmap("independent", ns, {"v": "1"})])
    scenario.commit("good")
    scenario.run("sync")
    scenario.repo.write("stacks/base/objects.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: base\n")
    scenario.stack("dependent", [configmap("dependent", ns, {"v": "2"})], depends_on=("base",))
    scenario.stack("independent", [configmap("independent", ns, {"v": "2"})])
    scenario.commit("base is broken")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    stacks = {s["stack"]: s for s in sync.json["stacks"]}
    reason = stacks["base"]["reason"]
    assert stacks["base"]["state"] == "failed" and "stacks/base" in reason and "objects.yaml" in reason, reason
    assert stacks["dependent"]["state"] == "blocked" and stacks["dependent"]["blocked_by"] == ["base"]
    assert stacks["independent"]["state"] == "applied"
    assert scenario.live("configmap", "base")["data"] == {"v": "1"}
    assert scenario.live("configmap", "dependent")["data"] == {"v": "1"}
    assert scenario.live("configmap", "independent")["data"] == {"v": "2"}


def test_an_object_the_api_server_rejects_applies_nothing_of_its_stack(scenario: Scenario) -> None:
    ns, extra = scenario.namespace, f"{scenario.namespace}-r"
    bad_service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": ns},
                   "spec": {"ports": [{"port": 99999}]}}
    scenario.stack("app", [_namespace(extra), configmap("good", ns, {"v": "1"}), bad_service])
    scenario.commit("a Service with an impossible port")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    reason = sync.json["stacks"][0]["reason"]
    assert reason.startswith("nothing applied") and "core/Service/" in reason, reason
    assert "(stacks/app/objects.yaml)" in reason and "99999" in reason
    assert scenario.live("namespace", extra, namespace=None) is None
    assert scenario.live("configmap", "good") is None


def test_after_a_rejected_commit_is_reverted_the_next_sync_prunes_nothing_that_never_existed(
        scenario: Scenario) -> None:
    ns = scenario.namespace
    bad_service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": ns},
                   "spec": {"ports": [{"port": 99999}]}}
    scenario.stack("app", [configmap("kept", ns, {"v": "1"})])
    scenario.commit("good")
    scenario.run("sync")
    scenario.stack("app", [configmap("kept", ns, {"v": "1"}), configmap("never", ns, {"v": "1"}), bad_service])
    scenario.commit("a Service with an impossible port")
    assert scenario.run("sync").code == 2
    scenario.stack("app", [configmap("kept", ns, {"v": "1"})])
    scenario.commit("revert")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 0, sync.json
    stack = sync.json["stacks"][0]
    assert stack["state"] == "unchanged", stack
    assert [c["action"] for c in stack["changes"]] == ["unchanged"], stack["changes"]
    assert scenario.live("configmap", "kept")["data"] == {"v": "1"}


def test_an_object_the_api_server_rejects_in_a_namespace_its_stack_creates_leaves_only_that_namespace(
        scenario: Scenario) -> None:
    fresh = f"{scenario.namespace}-n"
    bad_service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": fresh},
                   "spec": {"ports": [{"port": 99999}]}}
    scenario.stack("app", [_namespace(fresh), configmap("good", fresh, {"v": "1"}), bad_service])
    scenario.commit("a Service with an impossible port, in a Namespace the stack creates")
    try:
        sync = scenario.run("sync", "-o", "json")

        assert sync.code == 2
        reason = sync.json["stacks"][0]["reason"]
        assert reason.startswith(f"nothing applied but Namespace {fresh}:") and "core/Service/" in reason, reason
        assert "(stacks/app/objects.yaml)" in reason and "99999" in reason
        assert scenario.live("namespace", fresh, namespace=None) is not None
        assert scenario.live("configmap", "good", namespace=fresh) is None
        assert scenario.live("service", "bad", namespace=fresh) is None
    finally:
        scenario.kubectl("delete", "namespace", fresh, "--ignore-not-found", "--wait=false", check=False)


def test_an_oversized_object_applies_nothing_and_names_its_file(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("app", [configmap("small", ns, {"v": "1"}), configmap("huge", ns, {"blob": "x" * (1024 * 1024 + 10)})])
    scenario.commit("a ConfigMap over 1 MiB")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    reason = sync.json["stacks"][0]["reason"]
    assert "core/ConfigMap/" in reason and "/huge (stacks/app/objects.yaml)" in reason, reason
    assert "over the 1048576 bytes" in reason and "fix:" in reason
    assert scenario.live("configmap", "small") is None


def test_a_custom_resource_whose_crd_exists_nowhere_applies_nothing_not_even_its_namespace(scenario: Scenario) -> None:
    ns, extra = scenario.namespace, f"{scenario.namespace}-c"
    group = f"{ns}.missing.test"
    scenario.stack("app", [_namespace(extra), configmap("good", extra, {"v": "1"}), custom(group, "orphan", ns)])
    scenario.commit("a widget without its CRD")

    plan = scenario.run("plan", "-o", "json")
    sync = scenario.run("sync", "-o", "json")

    for run in (plan, sync):
        assert run.code == 2
        reason = run.json["stacks"][0]["reason"]
        assert f"Widget in {group}/v1" in reason and "no CustomResourceDefinition in this stack" in reason, reason
    assert scenario.live("namespace", extra, namespace=None) is None


def test_an_immutable_field_change_fails_and_keeps_the_previous_object(scenario: Scenario) -> None:
    ns = scenario.namespace
    frozen = configmap("frozen", ns, {"v": "1"})
    frozen["immutable"] = True
    scenario.stack("app", [frozen, configmap("other", ns, {"v": "1"})])
    scenario.commit("an immutable ConfigMap")
    scenario.run("sync")
    uid = scenario.live("configmap", "frozen")["metadata"]["uid"]
    frozen["data"] = {"v": "2"}
    scenario.stack("app", [frozen, configmap("other", ns, {"v": "2"})])
    scenario.commit("change it")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    reason = sync.json["stacks"][0]["reason"]
    assert "immutable" in reason and "/frozen (stacks/app/objects.yaml)" in reason and "recreateOnImmutable" in reason
    live = scenario.live("configmap", "frozen")
    assert live["metadata"]["uid"] == uid and live["data"] == {"v": "1"}
    assert scenario.live("configmap", "other")["data"] == {"v": "1"}


def test_an_immutable_field_change_recreates_the_object_when_the_stack_opts_in(scenario: Scenario) -> None:
    ns = scenario.namespace
    frozen = configmap("frozen", ns, {"v": "1"})
    frozen["immutable"] = True
    scenario.stack("app", [frozen], recreateOnImmutable=True)
    scenario.commit("an immutable ConfigMap")
    scenario.run("sync")
    uid = scenario.live("configmap", "frozen")["metadata"]["uid"]
    frozen["data"] = {"v": "2"}
    scenario.stack("app", [frozen], recreateOnImmutable=True)
    scenario.commit("change it")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out
    live = scenario.live("configmap", "frozen")
    assert live["metadata"]["uid"] != uid and live["data"] == {"v": "2"}


def test_an_empty_render_fails_the_stack_and_prunes_nothing(scenario: Scenario) -> None:
    ns = scenario.namespace
    scenario.stack("app", [configmap("a", ns, {"v": "1"}), configmap("b", ns, {"v": "1"})])
    scenario.commit("two")
    scenario.run("sync")
    scenario.stack("app", [])
    scenario.commit("everything deleted by mistake")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    assert "rendered no objects but owns 2" in sync.json["stacks"][0]["reason"]
    assert scenario.live("configmap", "a") is not None and scenario.live("configmap", "b") is not None


def test_secret_values_never_appear_in_plan_sync_or_drift_output(scenario: Scenario) -> None:
    ns, value, changed = scenario.namespace, "s3cret-value-one", "s3cret-value-two"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
              "stringData": {"password": value}}
    scenario.stack("app", [secret])
    scenario.commit("a secret")
    outputs = [scenario.run("plan", "-o", "json"), scenario.run("sync", "-v")]
    secret["stringData"] = {"password": changed}
    scenario.stack("app", [secret])
    scenario.commit("rotate it")
    outputs += [scenario.run("plan", "-v"), scenario.run("sync", "-o", "json")]
    encoded = base64.b64encode(b"edited-in-cluster").decode()
    scenario.kubectl("-n", ns, "patch", "secret", "creds", "-p", f'{{"data":{{"password":"{encoded}"}}}}')
    outputs += [scenario.run("drift"), scenario.run("drift", "-o", "json"), scenario.run("render")]

    assert outputs[3].code == 1 and outputs[4].code == 1
    text = "".join(run.out + run.err for run in outputs)
    for secret_text in (value, changed, "edited-in-cluster"):
        assert secret_text not in text
        assert base64.b64encode(secret_text.encode()).decode() not in text
    assert "***" in text
