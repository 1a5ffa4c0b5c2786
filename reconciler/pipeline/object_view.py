"""Every object of one stack as the status page lists it: identity, health and why, drift, the commit
it was applied from, where it comes from, and the policy violations that concern it.

The list is what the environment's inventory says the stack owns, joined with the stack rendered at
the commit it was applied from (its apiVersion, file and chart) and with live state read through the
stack's own view of the cluster (served by the live cache in the daemon: no request per object). A
stack that was never applied (blocked at its first pass) lists what its last render holds, each
object "not applied", so a blocked stack still shows which objects broke which rule. A stack whose
last pass ran at a newer commit than the one it was applied from (that pass failed, was blocked,
held or suspended) also lists the objects that commit adds, "not applied" with the pass's reason: the
object a rejected commit adds is on the page, not only in the run's report.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from reconciler.errors import ReconcilerError
from reconciler.kube.health import FAILED, problems_by_object
from reconciler.kube.health_rules import HealthRules
from reconciler.objects import K8sObject, ObjectId
from reconciler.pipeline.diff import MASK
from reconciler.results import DriftItem, FieldChange

MAX_VALUE_CHARS = 64 * 1024
"""A field value longer than this (as YAML) is cut in a diff, saying so: a diff of a huge ConfigMap
stays readable and never freezes a browser (what Argo CD's diff tab does on large objects)."""

HEALTH_STATES = ("healthy", "progressing", "degraded", "missing", "not applied")


@dataclass
class ObjectRow:
    """One object of a stack, as a row of the status page's object list."""

    id: str
    kind: str
    namespace: str
    name: str
    group: str
    health: str  # one of HEALTH_STATES
    health_reason: str = ""
    drift: str = ""  # "", "modified", "missing"
    drift_fields: int = 0
    commit: str | None = None  # the commit its stack was last applied from
    file: str | None = None  # the repository file (or chart) it is rendered from
    owner: str = ""  # its chart, or its controller owner, when known
    violations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StackObjects:
    stack: str
    commit: str | None
    applied: bool  # the inventory records this stack (it was applied at least once)
    rows: list[ObjectRow]
    render_error: str = ""


def stack_objects(engine: Any, stack: str, drift: Iterable[DriftItem], violations: Iterable[Any],
                  last_commit: str | None, last_reason: str = "") -> StackObjects:
    """The object list of `stack`: inventory, the render at its applied commit, live health, drift and
    violations (the daemon's last drift report and the stack's last policy result); then what the last
    pass's commit (`last_commit`, its result saying `last_reason`) adds, when that is not the applied one."""
    record = engine.load_inventory(create=False).record(stack)
    applied = record.commit is not None
    commit = record.commit or last_commit
    rendered, render_error = _rendered_stack(engine, stack, commit)
    ids = [*record.ids()] if applied else [o.id for o in rendered.values()]
    ids += [oid for oid in rendered if applied and str(oid) not in record.objects]
    health = _health(engine, stack, [rendered[i] for i in ids if i in rendered and str(i) in record.objects])
    drifted = {item.id: item for item in drift if item.stack == stack}
    by_object: dict[str, list[dict[str, Any]]] = {}
    for violation in violations:
        by_object.setdefault(violation.object, []).append(_violation(violation))
    rows = []
    for oid in dict.fromkeys(ids):
        obj = rendered.get(oid)
        state, reason = ("not applied", "not applied yet") if str(oid) not in record.objects else \
            health.get(oid, ("healthy", ""))
        rows.append(_row(oid, obj, state, reason, by_object, drifted.get(oid), record.commit))
    if applied and last_commit and last_commit != record.commit:
        rows += _added_at(engine, stack, last_commit, last_reason, {*ids}, by_object)
    return StackObjects(stack=stack, commit=commit, applied=applied, rows=rows, render_error=render_error)


def _added_at(engine: Any, stack: str, commit: str, reason: str, listed: set[ObjectId],
              by_object: dict[str, list[dict[str, Any]]]) -> list[ObjectRow]:
    """Rows for the objects the stack's render at `commit` holds and the list does not: never applied."""
    rendered, _ = _rendered_stack(engine, stack, commit)
    why = f"new in {commit[:10]}, not applied" + (f": {reason}" if reason else "")
    return [_row(oid, obj, "not applied", why, by_object) for oid, obj in rendered.items() if oid not in listed]


def _row(oid: ObjectId, obj: K8sObject | None, health: str, reason: str, by_object: dict[str, list[dict[str, Any]]],
         item: DriftItem | None = None, commit: str | None = None) -> ObjectRow:
    """One object's row: `obj` its render (None when the render no longer holds it), `item` its drift,
    `commit` the one its stack applied it from."""
    return ObjectRow(id=str(oid), kind=oid.kind, namespace=oid.namespace, name=oid.name, group=oid.group,
                     health=health, health_reason=reason, drift=item.kind.value if item else "",
                     drift_fields=len(item.fields) if item else 0, commit=commit,
                     file=obj.source_file if obj else None, owner=_owner(obj), violations=by_object.get(str(oid), []))


def _rendered_stack(engine: Any, stack: str, commit: str | None) -> tuple[dict[ObjectId, K8sObject], str]:
    if not commit:
        return {}, ""
    try:
        rendered = engine.rendered_at(commit)
    except ReconcilerError as exc:
        return {}, str(exc)
    return {o.id: o for o in rendered.objects.get(stack, [])}, rendered.errors.get(stack, "")


def _health(engine: Any, stack: str, objects: list[K8sObject]) -> dict[ObjectId, tuple[str, str]]:
    """(state, why) of every applied object that is not healthy; the others are healthy."""
    rules = HealthRules.from_config(engine.env.health_check_exprs)
    problems = problems_by_object(engine.cluster_for(stack), objects, engine.selector(stack), rules)
    out = {}
    for oid, reason in problems:
        state = "missing" if reason == "not found" else \
            "degraded" if (": " + reason).startswith(FAILED) else "progressing"
        out[oid] = (state, reason)
    return out


def _owner(obj: K8sObject | None) -> str:
    """The Helm chart an object comes from (`helm.sh/chart`), else its controller owner, else ""."""
    if obj is None:
        return ""
    meta = obj.manifest.get("metadata") or {}
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    if labels.get("helm.sh/chart"):
        return f"chart {labels['helm.sh/chart']}"
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return ""


def _violation(violation: Any) -> dict[str, Any]:
    return {"rule": violation.rule, "severity": violation.severity, "mode": violation.mode,
            "blocking": violation.blocking, "message": violation.message, "fix": violation.fix,
            "file": violation.file, "excepted_by": violation.excepted_by}


def live_changes(engine: Any, stack: str) -> int | None:
    """Watch events seen on the stack's objects so far (None without a live cache): an object list built
    at one count holds until the next event, pass or drift check."""
    live = getattr(engine, "live", None)
    return live.changes(engine.selector(stack).partition("=")[2]) if live is not None else None


def unified_diff(oid: str, fields: Iterable[FieldChange], left: str = "git", right: str = "live",
                 desired_first: bool = True) -> str:
    """A unified diff of the differing fields, one YAML line block per field path, for a diff renderer
    (the status page's side-by-side view). Values are as the engine gives them: Secrets already masked.
    `desired_first`: Git's value on the left (drift); else the live value, what a change replaces (plan)."""
    before, after = [], []
    for change in fields:
        old, new = (change.desired, change.live) if desired_first else (change.live, change.desired)
        if old == new == MASK:  # a Secret value that differs, masked on both sides: say which side is which
            old, new = f"{MASK} (masked: the {left} value)", f"{MASK} (masked: the {right} value, which differs)"
        before += _field_lines(change.path, old)
        after += _field_lines(change.path, new)
    lines = difflib.unified_diff(before, after, f"a/{oid}", f"b/{oid}", left, right, lineterm="", n=3)  # sides as dates:
    # one file name on both headers, so a renderer shows a change, not a rename
    return "\n".join(lines) + "\n"


def _field_lines(path: str, value: Any) -> list[str]:
    if value is None:
        return [f"{path}: (not set)"]
    if isinstance(value, str) and len(value) <= MAX_VALUE_CHARS:
        return [f"{path}: {value}"] if "\n" not in value else [f"{path}: |"] + [f"  {x}" for x in value.splitlines()]
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=True, allow_unicode=True, width=100)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + f"\n... (cut: {len(text):,} characters in all)\n"
    body = text.rstrip("\n").removesuffix("\n...").splitlines()
    if len(body) == 1 and not isinstance(value, (dict, list)):
        return [f"{path}: {body[0]}"]
    return [f"{path}:"] + [f"  {line}" for line in body]
