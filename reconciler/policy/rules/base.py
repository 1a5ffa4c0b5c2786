"""What a rule family is: its rule ids, how it reads its settings, and the check it runs.

A family (one module, one `policies/<family>.yaml`) may hold several rules that share settings and
one pass over the environment, e.g. the four network-isolation rules share the flow analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from reconciler.policy.fields import Fields
from reconciler.policy.view import EnvironmentView, Subject


@dataclass(frozen=True)
class RuleSpec:
    id: str
    summary: str
    severity: str


@dataclass(frozen=True)
class Finding:
    """A rule broken, before modes and exceptions turn it into a Violation."""

    rule: str
    subject: Subject
    message: str
    fix: str


@dataclass(frozen=True)
class Family:
    name: str
    rules: tuple[RuleSpec, ...]
    parse_settings: Callable[[Fields], Any]
    check: Callable[[EnvironmentView, Any], Iterable[Finding]]

    @property
    def file_name(self) -> str:
        return f"{self.name}.yaml"


def no_settings(fields: Fields) -> None:
    """For families without settings: still reject stray keys."""
    fields.finish()
    return None
