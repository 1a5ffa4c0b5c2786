"""Production rules on the rendered prod manifests, judged by the reconciler's own policy engine.

test_policy_platform.py checks that prod passes every rule at once; this file states the requirements
one by one (each rule, each stack's budget, the zone spread the rules do not cover) and shows that each
real rule fires on a prod manifest broken on purpose. No rule is re-implemented here.
"""

from __future__ import annotations

import copy
import datetime
from typing import Callable

import pytest

from reconciler.objects import K8sObject
from reconciler.policy import PolicyReport, evaluate, load_policies
from test_platform_render import REPO_ROOT, STACKS, Obj, containers, pod_labels, pod_spec, render, selector_matches, workloads

ENV = "prod"
TODAY = datetime.date.today()
POLICIES = load_policies(REPO_ROOT / "policies", ENV)


def prod_stacks(mutate: Callable[[dict[str, list[Obj]]], None] | None = None) -> dict[str, list[K8sObject]]:
    objs = {stack: copy.deepcopy(render(ENV, stack)) for stack in STACKS}
    if mutate is not None:
        mutate(objs)
    return {stack: [K8sObject(o, stack) for o in items] for stack, items in objs.items()}


def prod_report(mutate: Callable[[dict[str, list[Obj]]], None] | None = None) -> PolicyReport:
    return evaluate(prod_stacks(mutate), POLICIES, TODAY)


RULES = sorted(rule.id for rule in prod_report().rules)


@pytest.mark.parametrize("rule", RULES)
def test_prod_meets_the_rule(rule: str) -> None:
    broken = [f"{v.object}: {v.message}" for v in prod_report().violations if v.rule == rule]
    assert broken == []


@pytest.mark.parametrize("stack", STACKS)
def test_prod_stack_fits_its_budget(stack: str) -> None:
    report = prod_report()
    assert [v.message for v in report.violations if v.rule == "stack-budget" and v.stack == stack] == []


def test_the_budget_rule_is_evaluated_for_every_stack() -> None:
    assert "stack-budget" in RULES and set(prod_report().stacks) == set(STACKS)


def test_every_prod_workload_spreads_over_zones() -> None:
    """Not a policy rule (anti-affinity only asks for nodes): a platform requirement of docs/platform.md."""
    missing = [m for stack in STACKS for w in workloads(render(ENV, stack)) for m in missing_zone_spread(w)]
    assert missing == []


def missing_zone_spread(workload: Obj) -> list[str]:
    own = pod_labels(workload)
    for constraint in pod_spec(workload).get("topologySpreadConstraints", []):
        if constraint.get("topologyKey") == "topology.kubernetes.io/zone" \
                and selector_matches(constraint.get("labelSelector"), own):
            return []
    return ["no topologySpreadConstraint on topology.kubernetes.io/zone selecting its own pods"]


# --------------------------------------------------------------------------------------------
# The real rules fire: a prod manifest broken on purpose is reported by the rule that covers it
# --------------------------------------------------------------------------------------------

def _prescription(objs: dict[str, list[Obj]]) -> Obj:
    return next(w for w in workloads(objs["application"]) if w["metadata"]["name"] == "prescription-service")


def _drop_probe(objs: dict[str, list[Obj]]) -> None:
    del containers(_prescription(objs))[0]["readinessProbe"]


def _drop_limits(objs: dict[str, list[Obj]]) -> None:
    del containers(_prescription(objs))[0]["resources"]["limits"]


def _soften_anti_affinity(objs: dict[str, list[Obj]]) -> None:
    spec = pod_spec(_prescription(objs))
    anti = spec["affinity"]["podAntiAffinity"]
    terms = anti.pop("requiredDuringSchedulingIgnoredDuringExecution")
    anti["preferredDuringSchedulingIgnoredDuringExecution"] = [{"weight": 100, "podAffinityTerm": terms[0]}]
    spec.pop("topologySpreadConstraints", None)


def _relabel_pods(objs: dict[str, list[Obj]]) -> None:
    _prescription(objs)["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = "renamed"


def _lower_hpa_floor(objs: dict[str, list[Obj]]) -> None:
    next(o for o in objs["application"] if o["kind"] == "HorizontalPodAutoscaler")["spec"]["minReplicas"] = 2


def _open_another_port(objs: dict[str, list[Obj]]) -> None:
    policy = next(o for o in objs["data"] if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "postgres-ingress")
    policy["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": 22})


def _drop_default_deny(objs: dict[str, list[Obj]]) -> None:
    objs["data"] = [o for o in objs["data"] if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "default-deny")]


def _raise_requests(objs: dict[str, list[Obj]]) -> None:
    containers(_prescription(objs))[0]["resources"]["requests"]["cpu"] = "64"


@pytest.mark.parametrize(("mutate", "rule", "stack"), [
    (_drop_probe, "probes", "application"),
    (_drop_limits, "resources", "application"),
    (_soften_anti_affinity, "anti-affinity", "application"),
    (_relabel_pods, "pdb", "application"),
    (_lower_hpa_floor, "min-replicas", "application"),
    (_open_another_port, "network-undeclared-flow", "data"),
    (_drop_default_deny, "network-default-deny", "data"),
    (_raise_requests, "stack-budget", "application"),
], ids=["probes", "limits", "anti-affinity", "pdb", "hpa-floor", "extra-port", "default-deny", "budget"])
def test_each_rule_reports_a_prod_manifest_that_breaks_it(mutate, rule: str, stack: str) -> None:
    report = prod_report(mutate)
    assert [v.stack for v in report.violations if v.rule == rule] and \
        {v.stack for v in report.violations if v.rule == rule} == {stack}, report.violations


def test_the_budgets_the_rule_enforces_are_the_budgets_of_the_contract() -> None:
    """policies/budget.yaml mirrors docs/CONTRACT.md "Budgets": a budget changed in one changes the test."""
    import re

    import yaml

    section = (REPO_ROOT / "docs" / "CONTRACT.md").read_text().split("## Budgets", 1)[1].split("\n## ", 1)[0]
    contract = {stack: {"cpu": cpu, "memory": memory, "storage": storage} for stack, cpu, memory, storage in
                re.findall(r"^\|\s*(\w+)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|$", section, re.M)
                if stack in STACKS}
    policy = yaml.safe_load((REPO_ROOT / "policies" / "budget.yaml").read_text())["settings"]["budgets"]

    assert {s: {k: str(v) for k, v in b.items()} for s, b in policy.items()} == contract
