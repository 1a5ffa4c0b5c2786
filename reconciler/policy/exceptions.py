"""Policy exceptions: a documented, expiring "not yet" for one rule on one object.

Two sources: the object's own annotation (travels with the manifest, reviewed with it) and
`policies/exceptions.yaml` (for objects one cannot annotate, or patterns). Both need a reason and an
expiry date; an exception applies up to and including its expiry date and stops the day after.
"""

from __future__ import annotations

import datetime
import fnmatch
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from reconciler.policy.fields import Fields

ANNOTATION = "policy.healthflow.io/exception"


@dataclass(frozen=True)
class PolicyException:
    rules: frozenset[str]
    object: str  # an ObjectId text, or an fnmatch pattern over it (file entries only)
    reason: str
    expires: datetime.date
    source: str
    environments: frozenset[str] | None = None

    def covers(self, rule: str, obj: str, env: str) -> bool:
        return (
            rule in self.rules
            and fnmatch.fnmatchcase(obj, self.object)
            and (self.environments is None or env in self.environments)
        )

    def active_on(self, today: datetime.date) -> bool:
        return today <= self.expires

    def describe(self) -> str:
        return f"{self.source}: {self.reason} (expires {self.expires.isoformat()})"


def parse_annotation(text: str, obj: str, known_rules: Iterable[str]) -> tuple[list[PolicyException], list[str]]:
    """Entries, one per line: `rule[,rule]; reason=...; expires=YYYY-MM-DD`. Returns (exceptions, problems)."""
    known = set(known_rules)
    exceptions: list[PolicyException] = []
    problems: list[str] = []
    for number, line in enumerate(l.strip() for l in str(text).splitlines()):
        if not line:
            continue
        entry, problem = _parse_entry(line, obj, known)
        if problem:
            problems.append(f"annotation {ANNOTATION} line {number + 1} ({line!r}): {problem}")
        elif entry is not None:
            exceptions.append(entry)
    return exceptions, problems


def _parse_entry(line: str, obj: str, known: set[str]) -> tuple[PolicyException | None, str | None]:
    head, *pairs = [part.strip() for part in line.split(";")]
    rules = frozenset(r.strip() for r in head.split(",") if r.strip())
    unknown = sorted(rules - known)
    if not rules or unknown:
        return None, f"unknown rule(s) {', '.join(unknown) or '(none named)'}"
    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key.strip() not in ("reason", "expires"):
            return None, f"unexpected part {pair!r} (only reason= and expires= are allowed)"
        fields[key.strip()] = value.strip()
    if not fields.get("reason"):
        return None, "no reason="
    try:
        expires = datetime.date.fromisoformat(fields.get("expires", ""))
    except ValueError:
        return None, "no valid expires=YYYY-MM-DD"
    return PolicyException(rules, obj, fields["reason"], expires, f"annotation on {obj}"), None


def parse_file_entries(raw: Any, file: str, known_rules: Iterable[str]) -> tuple[PolicyException, ...]:
    """The `exceptions:` list of policies/exceptions.yaml; invalid entries are ConfigErrors."""
    if raw is None:
        return ()
    holder = Fields({"exceptions": raw}, file, "")
    if not isinstance(raw, list):
        raise holder.error("exceptions", "expected a list", "write `exceptions: [{rule: ..., object: ..., reason: ..., expires: ...}]`")
    known = set(known_rules)
    return tuple(_file_entry(Fields(item, file, f"exceptions[{i}]"), known) for i, item in enumerate(raw))


def _file_entry(fields: Fields, known: set[str]) -> PolicyException:
    rules = fields.strings("rules", ()) if fields.has("rules") else (fields.string("rule"),)
    unknown = sorted(set(rules) - known)
    if unknown or not rules:
        raise fields.error("rules" if fields.has("rules") else "rule", f"unknown rule(s) {', '.join(unknown)}",
                           f"use rule ids from docs/policies.md: {', '.join(sorted(known))}")
    obj = fields.string("object")
    reason = fields.string("reason")
    expires = _date(fields)
    envs = frozenset(fields.strings("environments", ())) if fields.has("environments") else None
    fields.finish()
    return PolicyException(frozenset(rules), obj, reason, expires, f"{fields.file} {fields.where}", envs)


def _date(fields: Fields) -> datetime.date:
    value = fields.get("expires")
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise fields.error("expires", f"{value!r} is not a date", "write `expires: YYYY-MM-DD`") from None


def annotation_text(manifest: Mapping[str, Any]) -> str | None:
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION)
    return str(value) if value is not None else None
