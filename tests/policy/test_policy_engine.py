"""Evaluation: modes decide what blocks, `off` rules do not run, and the report is ordered and timed."""

import dataclasses

import pytest

from reconciler.policy import evaluate, load_policies
from test_policy_builders import TODAY, deployment, obj, policies, run, write_policies


def _two_stacks():
    return [obj(deployment("gw", "hf-gateway", replicas=1), "gateway"), obj(deployment("app", "hf-app", replicas=1), "application")]


def test_an_enforced_violation_blocks_its_stack_only(tmp_path):
    report = run([obj(deployment("gw", "hf-gateway"), "gateway"), obj(deployment("app", "hf-app", replicas=1), "application")],
                 policies(tmp_path, "min-replicas"))
    assert report.blocking_stacks() == {"application"}
    assert [v.object for v in report.for_stack("application")] == ["apps/Deployment/hf-app/app"]
    assert report.for_stack("gateway") == []


def test_a_warned_violation_is_reported_but_blocks_nothing(tmp_path):
    policy_set = load_policies(write_policies(tmp_path, warn=["min-replicas"]), "prod")
    report = run(_two_stacks(), policy_set)
    assert [(v.mode, v.stack) for v in report.violations] == [("warn", "gateway"), ("warn", "application")]
    assert report.blocking_stacks() == set()


def test_a_rule_in_mode_off_is_not_evaluated(tmp_path):
    report = run(_two_stacks(), policies(tmp_path, "image-tag"))  # min-replicas is off
    assert report.violations == []
    assert "min-replicas" not in [r.id for r in report.rules]


def test_the_environment_mode_override_turns_enforce_into_warn(tmp_path):
    directory = write_policies(tmp_path, enforce=["min-replicas"])
    report = run(_two_stacks(), load_policies(directory, "prod", mode_override="warn"))
    assert {v.mode for v in report.violations} == {"warn"} and report.blocking_stacks() == set()


def test_violations_follow_stack_order_then_severity(tmp_path):
    manifest = deployment("app", "hf-app", replicas=1)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    stacks = {"gateway": [obj(deployment("gw", "hf-gateway", replicas=1), "gateway")], "application": [obj(manifest, "application")]}
    report = evaluate(stacks, policies(tmp_path, "resources", "min-replicas"), TODAY)
    assert [(v.stack, v.severity, v.rule) for v in report.violations] == [
        ("gateway", "high", "min-replicas"), ("application", "high", "min-replicas"), ("application", "medium", "resources"),
    ]


def test_a_violation_carries_severity_from_config_and_file_from_the_object(tmp_path):
    directory = write_policies(tmp_path, enforce=["min-replicas"])
    (directory / "replicas.yaml").write_text("rules:\n  min-replicas: {severity: critical, mode: enforce}\n")
    report = run([obj(deployment(replicas=1), file="base/application/prescription.yaml")], load_policies(directory, "prod"))
    [violation] = report.violations
    assert (violation.severity, violation.file, violation.stack) == ("critical", "base/application/prescription.yaml", "application")


def test_violations_are_immutable(tmp_path):
    [violation] = run([deployment(replicas=1)], policies(tmp_path, "min-replicas")).violations
    with pytest.raises(dataclasses.FrozenInstanceError):
        violation.mode = "warn"  # type: ignore[misc]


def test_duration_is_the_clock_read_before_and_after_the_evaluation(tmp_path):
    policy_set = policies(tmp_path, "min-replicas", "resources", "probes", "image-tag")
    stacks = {"application": [obj(deployment(f"svc-{i}", replicas=1), "application") for i in range(200)]}
    readings = iter([100.0, 100.25])  # a third reading would raise StopIteration

    report = evaluate(stacks, policy_set, TODAY, clock=lambda: next(readings))

    assert report.duration_s == 0.25
    assert report.violations, "the rules ran between the two readings"
