"""The data a policy evaluation produces: violations and the report that groups them.

Plain frozen dataclasses so every consumer (engine, CLI, alert sinks, report formats) reads the
same facts and nothing can mutate a verdict after the rules made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["critical", "high", "medium", "low"]
Mode = Literal["enforce", "warn", "off"]

SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
MODES: tuple[str, ...] = ("enforce", "warn", "off")


@dataclass(frozen=True)
class Violation:
    """One rule broken by one object (or one stack, for stack-wide rules)."""

    rule: str
    severity: str
    mode: str
    stack: str
    object: str
    file: str | None
    message: str
    fix: str
    excepted_by: str | None = None

    @property
    def blocking(self) -> bool:
        """Only enforced, non-excepted violations stop a stack from being applied."""
        return self.mode == "enforce" and self.excepted_by is None


@dataclass(frozen=True)
class RuleInfo:
    """What a report says about a rule it evaluated (SARIF and JUnit list every rule, even passing ones)."""

    id: str
    family: str
    severity: str
    mode: str
    summary: str


@dataclass
class PolicyReport:
    """All violations of one environment's evaluation, in a deterministic order."""

    env: str
    violations: list[Violation] = field(default_factory=list)
    rules: list[RuleInfo] = field(default_factory=list)
    stacks: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def blocking_stacks(self) -> set[str]:
        return {v.stack for v in self.violations if v.blocking}

    def for_stack(self, stack: str) -> list[Violation]:
        return [v for v in self.violations if v.stack == stack]

    @property
    def blocking(self) -> list[Violation]:
        return [v for v in self.violations if v.blocking]

    @property
    def warnings(self) -> list[Violation]:
        return [v for v in self.violations if v.mode == "warn" and v.excepted_by is None]

    @property
    def excepted(self) -> list[Violation]:
        return [v for v in self.violations if v.excepted_by is not None]
