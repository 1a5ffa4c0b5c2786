"""Health rules as CEL expressions, judged on plain objects (the evaluator is a library; these pin our use of it)."""

from __future__ import annotations

from reconciler.config import HealthCheckExpr
from reconciler.kube.health_rules import HealthRules


def _rules(**expressions: str) -> HealthRules:
    return HealthRules.from_config([HealthCheckExpr(apiVersion="db.example.com/v1", kind="Database", **expressions)])


def _judge(rules: HealthRules, status: dict | None, generation: int = 1) -> str | None:
    obj = {"apiVersion": "db.example.com/v1", "kind": "Database", "metadata": {"name": "db", "generation": generation}}
    if status is not None:
        obj["status"] = status
    return rules.get("db.example.com", "Database").reason(obj)


def test_an_object_is_current_when_the_current_expression_holds() -> None:
    assert _judge(_rules(current="status.phase == 'Running'"), {"phase": "Running"}) is None


def test_an_expression_reading_a_field_the_object_lacks_counts_as_in_progress() -> None:
    reason = _judge(_rules(current="status.phase == 'Running'"), None)

    assert reason is not None and "not decidable yet" in reason


def test_a_failed_expression_that_holds_wins_over_current() -> None:
    rules = _rules(current="status.ready == true", failed="status.phase == 'Failed'")

    assert "failed: health rule holds" in _judge(rules, {"ready": True, "phase": "Failed"})


def test_when_no_expression_holds_the_object_is_in_progress() -> None:
    assert "in progress" in _judge(_rules(current="status.ready == true"), {"ready": False})


def test_a_generation_the_operator_has_not_observed_is_in_progress_before_any_expression() -> None:
    reason = _judge(_rules(current="status.ready == true"), {"ready": True, "observedGeneration": 1}, generation=2)

    assert reason is not None and "not observed" in reason


def test_rules_match_any_version_of_the_group_and_kind() -> None:
    rules = _rules(current="true")

    assert rules.get("db.example.com", "Database") is not None
    assert rules.get("db.example.com", "Backup") is None and rules.get("other.example.com", "Database") is None
