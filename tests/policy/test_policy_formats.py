"""Report formats: JSON round-trips, SARIF 2.1.0 is structurally valid, JUnit parses, the table reads."""

import json
from xml.etree import ElementTree as ET

import pytest

from reconciler.policy.formats import from_json, to_json, to_junit, to_sarif, to_table
from reconciler.policy import load_policies
from test_policy_builders import container, deployment, obj, run, write_policies

FILE = "base/application/prescription.yaml"


@pytest.fixture()
def report(tmp_path):
    """One enforced violation with a file, one warning without, one excepted."""
    directory = write_policies(tmp_path / "policies", enforce=["min-replicas"], warn=["image-tag"])
    excepted = deployment("legacy", replicas=1, annotations={"policy.healthflow.io/exception": "min-replicas; reason=r; expires=2099-01-01"})
    unpinned = deployment("sidecar", containers=[container(image="busybox")])
    objects = [obj(deployment(replicas=1), file=FILE), obj(excepted), obj(unpinned)]
    return run(objects, load_policies(directory, "dev"))


def test_the_fixture_holds_blocking_warned_and_excepted_violations(report):
    assert len(report.blocking) == 1 and len(report.warnings) == 1 and len(report.excepted) == 1


def test_json_round_trips(report):
    again = from_json(to_json(report, "dev"))
    assert again.violations == report.violations
    assert again.rules == report.rules
    assert json.loads(to_json(report, "dev"))["blocking_stacks"] == ["application"]


def test_sarif_is_version_2_1_0_with_rule_level_and_file_locations(report):
    sarif = json.loads(to_sarif(report, "dev"))
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    run_ = sarif["runs"][0]
    rules = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    results = run_["results"]
    assert len(results) == len(report.violations)
    for result, violation in zip(results, report.violations):
        assert result["ruleId"] == violation.rule
        assert rules[result["ruleIndex"]] == violation.rule
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"].startswith(violation.message)
        assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == violation.object
    blocking = next(r for r in results if r["level"] == "error" and "suppressions" not in r)
    assert blocking["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == FILE
    assert [r["suppressions"][0]["kind"] for r in results if "suppressions" in r] == ["inSource"]


def test_junit_parses_and_fails_only_on_blocking_violations(report):
    root = ET.fromstring(to_junit(report, "dev"))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    suite = suites["dev/application"]
    assert suite.get("tests") == str(len(report.rules)) and suite.get("failures") == "1"
    failing = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failing] == ["min-replicas"]
    assert FILE in failing[0].find("failure").text
    assert "excepted: annotation on apps/Deployment/hf-app/legacy" in failing[0].find("system-out").text


def test_table_lists_each_violation_and_a_summary(report):
    lines = to_table(report, "dev").splitlines()
    assert lines[0].split()[:4] == ["STACK", "RULE", "SEVERITY", "MODE"]
    assert len(lines) == 1 + len(report.violations) + 1
    assert lines[-1].startswith("policy dev: 1 blocking, 1 warning(s), 1 excepted; blocked stacks: application;")
