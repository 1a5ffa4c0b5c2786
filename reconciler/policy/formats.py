"""Report formats CI systems and people read: JSON, SARIF 2.1.0, JUnit XML, and a text table.

Each takes the report and the environment name and returns text; none touches the filesystem.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from xml.etree import ElementTree as ET

from reconciler.policy.model import PolicyReport, RuleInfo, Violation

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL_NAME = "healthflow-reconciler-policy"
DOCS = "docs/policies.md"


def to_json(report: PolicyReport, env: str) -> str:
    data = {
        "env": env,
        "duration_s": report.duration_s,
        "stacks": report.stacks,
        "blocking_stacks": sorted(report.blocking_stacks()),
        "summary": _summary(report),
        "rules": [dataclasses.asdict(r) for r in report.rules],
        "violations": [dataclasses.asdict(v) for v in report.violations],
    }
    return json.dumps(data, indent=2, sort_keys=False)


def from_json(text: str) -> PolicyReport:
    """The inverse of to_json, for tools that consume a stored report."""
    data = json.loads(text)
    return PolicyReport(
        env=data["env"],
        violations=[Violation(**v) for v in data["violations"]],
        rules=[RuleInfo(**r) for r in data["rules"]],
        stacks=list(data["stacks"]),
        duration_s=float(data["duration_s"]),
    )


def _summary(report: PolicyReport) -> dict[str, int]:
    return {"blocking": len(report.blocking), "warnings": len(report.warnings), "excepted": len(report.excepted)}


def to_sarif(report: PolicyReport, env: str) -> str:
    rule_ids = [r.id for r in report.rules]
    for v in report.violations:
        if v.rule not in rule_ids:
            rule_ids.append(v.rule)
    infos = {r.id: r for r in report.rules}
    run = {
        "tool": {"driver": {"name": TOOL_NAME, "informationUri": DOCS, "rules": [_sarif_rule(i, infos.get(i)) for i in rule_ids]}},
        "automationDetails": {"id": f"policy/{env}/"},
        "results": [_sarif_result(v, rule_ids.index(v.rule)) for v in report.violations],
        "properties": {"env": env, "durationSeconds": report.duration_s},
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def _sarif_rule(rule_id: str, info: RuleInfo | None) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": rule_id, "helpUri": f"{DOCS}#{rule_id}"}
    if info is not None:
        rule["shortDescription"] = {"text": info.summary}
        rule["defaultConfiguration"] = {"level": _level(info.mode)}
        rule["properties"] = {"severity": info.severity, "family": info.family, "mode": info.mode}
    return rule


def _level(mode: str) -> str:
    return "error" if mode == "enforce" else "warning"


def _sarif_result(v: Violation, rule_index: int) -> dict[str, Any]:
    location: dict[str, Any] = {"logicalLocations": [{"fullyQualifiedName": v.object, "kind": "resource"}]}
    if v.file:
        location["physicalLocation"] = {"artifactLocation": {"uri": v.file, "uriBaseId": "%SRCROOT%"}}
    result: dict[str, Any] = {
        "ruleId": v.rule,
        "ruleIndex": rule_index,
        "level": _level(v.mode),
        "message": {"text": f"{v.message}. Fix: {v.fix}"},
        "locations": [location],
        "properties": {"severity": v.severity, "mode": v.mode, "stack": v.stack, "object": v.object, "fix": v.fix},
    }
    if v.excepted_by:
        kind = "inSource" if v.excepted_by.startswith("annotation") else "external"
        result["suppressions"] = [{"kind": kind, "justification": v.excepted_by}]
    return result


def to_junit(report: PolicyReport, env: str) -> str:
    """One suite per stack, one case per (stack, rule); a case fails only on blocking violations."""
    root = ET.Element("testsuites", name=f"policy {env}", time=f"{report.duration_s:.6f}")
    for stack in report.stacks or sorted({v.stack for v in report.violations}):
        suite = ET.SubElement(root, "testsuite", name=f"{env}/{stack}")
        failures = 0
        for rule in report.rules:
            found = [v for v in report.for_stack(stack) if v.rule == rule.id]
            failures += _junit_case(suite, stack, rule, found)
        suite.set("tests", str(len(report.rules)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _junit_case(suite: ET.Element, stack: str, rule: RuleInfo, found: list[Violation]) -> int:
    case = ET.SubElement(suite, "testcase", classname=f"policy.{stack}", name=rule.id)
    blocking = [v for v in found if v.blocking]
    if blocking:
        failure = ET.SubElement(case, "failure", message=f"{len(blocking)} enforced violation(s) of {rule.id}", type=rule.severity)
        failure.text = "\n".join(_line(v) for v in blocking)
    others = [v for v in found if not v.blocking]
    if others:
        ET.SubElement(case, "system-out").text = "\n".join(_line(v) for v in others)
    return 1 if blocking else 0


def _line(v: Violation) -> str:
    where = f" ({v.file})" if v.file else ""
    state = f"excepted: {v.excepted_by}" if v.excepted_by else v.mode
    return f"[{v.severity}/{state}] {v.object}{where}: {v.message}. Fix: {v.fix}"


def to_table(report: PolicyReport, env: str) -> str:
    """A plain-text table for terminals and logs, with a one-line summary."""
    header = ("STACK", "RULE", "SEVERITY", "MODE", "OBJECT", "MESSAGE")
    rows = [(v.stack, v.rule, v.severity, _mode_cell(v), v.object, f"{v.message} -> fix: {v.fix}") for v in report.violations]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in [header, *rows]]
    summary = _summary(report)
    lines.append(
        f"policy {env}: {summary['blocking']} blocking, {summary['warnings']} warning(s), {summary['excepted']} excepted; "
        f"blocked stacks: {', '.join(sorted(report.blocking_stacks())) or 'none'}; evaluated in {report.duration_s * 1000:.1f} ms"
    )
    return "\n".join(lines if rows else lines[-1:])


def _mode_cell(v: Violation) -> str:
    return "excepted" if v.excepted_by else v.mode
