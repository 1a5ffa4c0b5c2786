"""Evaluation: run every active rule family over the whole environment, then apply modes and
exceptions, producing one deterministic PolicyReport.
"""

from __future__ import annotations

import datetime
import time
from typing import Callable, Iterable, Mapping

from reconciler.errors import ManifestError
from reconciler.objects import K8sObject
from reconciler.policy.config import PolicySet
from reconciler.policy.exceptions import PolicyException, annotation_text, parse_annotation
from reconciler.policy.model import SEVERITIES, PolicyReport, RuleInfo, Violation
from reconciler.policy.rules import FAMILIES, Finding
from reconciler.policy.view import EnvironmentView


def evaluate(stacks: Mapping[str, Iterable[K8sObject]], policies: PolicySet, today: datetime.date,
             clock: Callable[[], float] = time.perf_counter) -> PolicyReport:
    """Every active rule over `stacks`; the report's `duration_s` is `clock` read before and after."""
    started = clock()
    view = _view({name: list(objects) for name, objects in stacks.items()})
    findings = list(_findings(view, policies))
    index = _ExceptionIndex(view, policies, today)
    violations = [_violation(f, policies, index) for f in findings]
    order = {stack: i for i, stack in enumerate(view.stack_names)}
    violations.sort(key=lambda v: (order.get(v.stack, len(order)), SEVERITIES.index(v.severity), v.rule, v.object, v.message))
    rules = [RuleInfo(r.id, r.family, r.severity, r.mode, r.summary) for r in policies.active_rules()]
    return PolicyReport(policies.env, violations, rules, list(view.stack_names), clock() - started)


_UNREADABLE = (TypeError, AttributeError, KeyError, ValueError)
"""What reading a rendered object of the wrong shape raises (a rule walks fields Kubernetes would reject)."""


def _findings(view: EnvironmentView, policies: PolicySet) -> Iterable[Finding]:
    for family in FAMILIES:
        active = {spec.id for spec in family.rules if policies.rules[spec.id].mode != "off"}
        if active:
            try:
                found = list(family.check(view, policies.settings[family.name]))
            except _UNREADABLE as exc:
                raise _malformed(view, family, policies, exc) from exc
            yield from (f for f in found if f.rule in active)


def _malformed(view: EnvironmentView, family, policies: PolicySet, exc: Exception) -> ManifestError:
    """A rendered object of the wrong shape (a list where Kubernetes wants a map, ...) that a rule cannot
    read: named by checking the objects one at a time, so the error says which file to fix."""
    for obj in view.objects:
        try:
            list(family.check(EnvironmentView({obj.stack: [obj]}), policies.settings[family.name]))
        except _UNREADABLE:
            return _malformed_object(obj, f"the {family.name} policy rules", exc)
    return ManifestError(f"the {family.name} policy rules cannot read the rendered objects: "
                         f"{exc.__class__.__name__}: {exc}", fix="check the objects' shapes with a server-side dry run")


def _view(stacks: Mapping[str, list[K8sObject]]) -> EnvironmentView:
    try:
        return EnvironmentView(stacks)
    except _UNREADABLE as exc:
        for obj in (o for objects in stacks.values() for o in objects):
            try:
                EnvironmentView({obj.stack: [obj]})
            except _UNREADABLE:
                raise _malformed_object(obj, "policy", exc) from exc
        raise ManifestError(f"policy cannot read the rendered objects: {exc.__class__.__name__}: {exc}",
                            fix="check the objects' shapes with a server-side dry run") from exc


def _malformed_object(obj: K8sObject, reader: str, exc: Exception) -> ManifestError:
    where = f" ({obj.source_file})" if obj.source_file else ""
    return ManifestError(f"stack {obj.stack!r}: {obj.id}{where}: malformed for {reader}: {exc.__class__.__name__}: {exc}",
                         fix="fix the object's shape (`kubectl apply --dry-run=server -f` on it names the field)")


def _violation(finding: Finding, policies: PolicySet, index: "_ExceptionIndex") -> Violation:
    config = policies.rules[finding.rule]
    excepted_by, note = index.lookup(finding)
    return Violation(
        rule=finding.rule,
        severity=config.severity,
        mode=config.mode,
        stack=finding.subject.stack,
        object=finding.subject.object,
        file=finding.subject.file,
        message=finding.message,
        fix=f"{finding.fix} ({note})" if note else finding.fix,
        excepted_by=excepted_by,
    )


class _ExceptionIndex:
    """Which exception, if any, covers a finding today; and why an existing one did not."""

    def __init__(self, view: EnvironmentView, policies: PolicySet, today: datetime.date) -> None:
        self.env = policies.env
        self.today = today
        self.allowed = policies.exceptions_allowed
        self.from_file = policies.exceptions
        known = policies.settings["exceptions"].known_rules
        self.on_object: dict[str, list[PolicyException]] = {}
        for obj in view.objects:
            text = annotation_text(obj.manifest)
            if text is not None:
                self.on_object[str(obj.id)] = parse_annotation(text, str(obj.id), known)[0]

    def lookup(self, finding: Finding) -> tuple[str | None, str | None]:
        obj = finding.subject.object
        candidates = [e for e in self.on_object.get(obj, []) + list(self.from_file) if e.covers(finding.rule, obj, self.env)]
        if not candidates:
            return None, None
        if not self.allowed:
            return None, f"exceptions are not allowed in {self.env}; ignored {candidates[0].source}"
        active = [e for e in candidates if e.active_on(self.today)]
        if active:
            return active[0].describe(), None
        expired = max(candidates, key=lambda e: e.expires)
        return None, f"the exception from {expired.source} expired on {expired.expires.isoformat()}"
