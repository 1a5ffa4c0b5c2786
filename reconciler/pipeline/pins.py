"""Pins: stacks held at a commit other than the branch head, after a rollback, until someone lifts them.

Kept in the environment's inventory ConfigMap (key `pins.json`), so a pin outlives the process that
set it: a restarted daemon reads it back and keeps applying the pinned commit to those stacks (drift
is still corrected, at the pinned commit), and the branch head to the others. A pin is lifted by
`reconciler unpin`, by `POST /api/unpin`, or, with `rollback.unpinOnNewCommit: true`, by the first
commit on the branch after the one that was head when the pin was set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pin:
    revision: str  # full SHA the stack is held at
    at: str  # when the pin was set (ISO time)
    by: str  # who set it: a user, `api`, or `autoRollback`
    reason: str = ""
    failed_commit: str | None = None  # the commit rolled back from, if any


@dataclass
class Pins:
    """Every pin of one environment, and the branch head when the newest was set."""

    head: str | None = None
    stacks: dict[str, Pin] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.stacks)

    def revisions(self) -> dict[str, list[str]]:
        """Pinned revision -> its stacks (a pass renders each pinned revision once)."""
        out: dict[str, list[str]] = {}
        for stack, pin in sorted(self.stacks.items()):
            out.setdefault(pin.revision, []).append(stack)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.head, "stacks": {s: asdict(p) for s, p in sorted(self.stacks.items())}}


def parse_pins(raw: str | None) -> Pins:
    """The stored pins; none when absent or unreadable (edited by hand: the branch head applies again)."""
    if not raw:
        return Pins()
    try:
        data = json.loads(raw)
        stacks = {str(name): Pin(**{k: v for k, v in value.items() if k in Pin.__dataclass_fields__})
                  for name, value in (data.get("stacks") or {}).items()}
        return Pins(head=data.get("head"), stacks=stacks)
    except (ValueError, TypeError, AttributeError):
        return Pins()
