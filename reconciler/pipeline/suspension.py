"""Suspensions: an environment or a stack that nothing applies to, prunes or corrects until resumed.

During an incident an operator stops reconciling one environment or one stack (Flux's
`flux suspend`, Argo CD's auto-sync off) without stopping the daemon for every environment. Kept in
the environment's inventory ConfigMap (key `suspended.json`), so a suspension outlives the process
that set it and every replica and CLI sees it. Each names who suspended, why and when. A suspended
stack is reported (state `suspended`, its drift still checked), its dependents wait on it, and a
suspended environment prunes no removed stack.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

ENV = ""  # the key of an environment-wide suspension


@dataclass(frozen=True)
class Suspension:
    by: str
    reason: str
    at: str  # ISO time


@dataclass
class Suspensions:
    """The environment's suspension (key "") and its stacks' (by name)."""

    entries: dict[str, Suspension] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def of(self, stack: str) -> Suspension | None:
        """What holds `stack` back: the environment's suspension first, else its own."""
        return self.entries.get(ENV) or self.entries.get(stack)

    def note(self, stack: str) -> str:
        held = self.of(stack)
        if held is None:
            return ""
        what = "environment" if ENV in self.entries else "stack"
        return f"{what} suspended by {held.by} at {held.at[:19]}: {held.reason}"

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return {"environment": asdict(self.entries[ENV]) if ENV in self.entries else None,
                "stacks": {name: asdict(s) for name, s in sorted(self.entries.items()) if name != ENV}}


def parse_suspensions(raw: str | None) -> Suspensions:
    """The stored suspensions. An unreadable value (edited by hand) suspends the whole environment: a
    guard that cannot be read must not silently let writes through."""
    if not raw:
        return Suspensions()
    try:
        data = json.loads(raw)
        entries = {name: Suspension(**{k: str(v) for k, v in value.items() if k in Suspension.__dataclass_fields__})
                   for name, value in (data.get("stacks") or {}).items()}
        if data.get("environment"):
            entries[ENV] = Suspension(**{k: str(v) for k, v in data["environment"].items()
                                         if k in Suspension.__dataclass_fields__})
        return Suspensions(entries)
    except (ValueError, TypeError, AttributeError):
        return Suspensions({ENV: Suspension("?", "suspended.json in the inventory is unreadable; resume to clear it",
                                            "")})


def default_actor() -> str:
    """Who a CLI suspend names when not told: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
