"""Health rules for any kind, as CEL expressions (Flux's `healthCheckExprs` shape).

An operator that reports readiness in a field of its own (`status.phase: Running`,
`status.ready: true`) instead of standard conditions is read through three expressions per
group/kind: `inProgress`, `failed` and `current`, evaluated in that order against the live object's
top-level fields (`metadata`, `spec`, `status`, ...); the first that holds decides, and when none
does the object is still in progress. A `failed` that holds ends the wait at once (the stack fails
without waiting out its health timeout), as kstatus' Failed does in Flux. An expression that reads a field the object does not have yet
counts as in progress (the operator has not written it), never as an exception. A generation the
controller has not observed yet is in progress before any expression is asked, as in kstatus.

The evaluator is the `common-expression-language` package (a CEL implementation), not our own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable

from reconciler.config import compile_cel
from reconciler.objects import group_of

ORDER = ("inProgress", "failed", "current")


@functools.lru_cache(maxsize=512)
def compile_expression(text: str):
    """The compiled program of one expression (cached: the same rules are asked on every pass)."""
    return compile_cel(text)


@dataclass(frozen=True)
class HealthRule:
    """The expressions of one group/kind; `current` is required, the other two optional."""

    group: str
    kind: str
    expressions: tuple[tuple[str, str], ...]  # (name in ORDER, CEL text)

    def reason(self, obj: dict) -> str | None:
        """None when the object is current; else why not (in progress or failed)."""
        metadata, status = obj.get("metadata") or {}, obj.get("status") or {}
        generation, observed = metadata.get("generation"), status.get("observedGeneration")
        if generation is not None and observed is not None and observed < generation:
            return f"generation {generation} not observed yet (observed {observed})"
        for name, text in self.expressions:
            try:
                held = compile_expression(text).execute(dict(obj))
            except Exception as exc:  # noqa: BLE001 - a missing field or a type error: not ready yet
                return f"health rule {name} not decidable yet ({type(exc).__name__}: {exc})"
            if held is True:
                if name == "current":
                    return None
                return f"failed: health rule holds: {text}" if name == "failed" else f"in progress: {text}"
        return "no health rule holds yet (in progress)"


class HealthRules:
    """The rules of an environment by (group, kind); kinds without one keep the built-in checks."""

    def __init__(self, rules: Iterable[HealthRule] = ()) -> None:
        self.by_kind = {(rule.group, rule.kind): rule for rule in rules}

    @classmethod
    def from_config(cls, entries: Iterable) -> "HealthRules":
        """From the environment file's `healthCheckExprs` entries (already compiled once by validation)."""
        rules = []
        for entry in entries:
            pairs = tuple((name, text) for name, text in
                          (("inProgress", entry.in_progress), ("failed", entry.failed), ("current", entry.current))
                          if text)
            rules.append(HealthRule(group_of(entry.api_version), entry.kind, pairs))
        return cls(rules)

    def get(self, group: str, kind: str) -> HealthRule | None:
        return self.by_kind.get((group, kind))

    def __bool__(self) -> bool:
        return bool(self.by_kind)
