"""What a reconcile pass produces: plain data every reporter, alert sink and endpoint reads.

A failure is data here, not an exception: a stack is `applied`, `unchanged`, `planned`, `blocked`
(by which stack or policy) or `failed` (why), and the pass goes on with independent stacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from reconciler.objects import ObjectId


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class StackState(str, Enum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    PLANNED = "planned"  # plan / dry-run: changes found, nothing applied
    BLOCKED = "blocked"
    FAILED = "failed"
    SUSPENDED = "suspended"  # `reconciler suspend`: neither applied, pruned nor corrected until resumed
    HELD = "held"  # outside the environment's sync windows: nothing applied until a window opens
    PENDING = "pending"  # not reached yet (progress only)


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    PRUNE = "prune"


@dataclass(frozen=True)
class FieldChange:
    """One differing field: a dotted path (`spec.replicas`, `spec.template.spec.containers[web].image`)."""

    path: str
    desired: Any
    live: Any


@dataclass
class ObjectChange:
    id: ObjectId
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    source_file: str | None = None


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    message: str
    committed_at: datetime

    @property
    def short(self) -> str:
        return self.sha[:10]


@dataclass
class StackResult:
    stack: str
    state: StackState
    wave: int
    reason: str = ""
    blocked_by: list[str] = field(default_factory=list)
    changes: list[ObjectChange] = field(default_factory=list)
    violations: list[Any] = field(default_factory=list)  # reconciler.policy Violation objects
    conflicts: list[str] = field(default_factory=list)
    drifted: int = 0  # objects that differ from live although Git did not change them since the last apply
    healthy: bool | None = None
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)  # said once in the reason: objects whose kind is gone
    applied: int = 0  # objects this pass wrote (created or updated): a failed stack's changes may be plans only

    @property
    def changed(self) -> list[ObjectChange]:
        return [c for c in self.changes if c.action is not Action.UNCHANGED]


@dataclass
class Rollback:
    """Stacks taken back to an earlier commit (by `reconciler rollback`, the API, or autoRollback) and pinned."""

    stacks: list[str]
    to_commit: str
    from_commit: str | None = None  # the commit that failed (autoRollback), or what the stacks had
    automatic: bool = False
    ok: bool = False


@dataclass
class PassResult:
    env: str
    run_id: str
    commit: CommitInfo | None
    dry_run: bool
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    stacks: list[StackResult] = field(default_factory=list)
    api_requests: dict[str, int] = field(default_factory=dict)  # verb -> count
    error: str = ""  # a pass-wide failure (Git unreachable, bad config): no stack was touched
    pins: dict[str, dict] = field(default_factory=dict)  # stack -> its pin (revision, by, at, reason) this pass held
    notices: list[str] = field(default_factory=list)  # pins set, lifted or dropped: things a person should know
    rollbacks: list[Rollback] = field(default_factory=list)
    env_file: str = ""  # the environment file in force: `environments/prod.yaml@1a2b3c4` when it follows Git
    held_until: datetime | None = None  # stacks held by a sync window: when the window lets them apply

    @property
    def ok(self) -> bool:
        return not self.error and all(s.state not in (StackState.FAILED, StackState.BLOCKED) for s in self.stacks)

    @property
    def has_changes(self) -> bool:
        return any(s.changed for s in self.stacks)

    @property
    def total_requests(self) -> int:
        return sum(self.api_requests.values())


class DriftKind(str, Enum):
    MODIFIED = "modified"
    MISSING = "missing"
    UNMANAGED = "unmanaged"


@dataclass
class DriftItem:
    stack: str
    id: ObjectId
    kind: DriftKind
    fields: list[FieldChange] = field(default_factory=list)
    first_seen: datetime | None = None


@dataclass
class DriftReport:
    env: str
    commit: str | None
    checked_at: datetime = field(default_factory=utcnow)
    items: list[DriftItem] = field(default_factory=list)


@dataclass
class StackStatus:
    stack: str
    commit: str | None
    state: str | None
    reason: str
    healthy: bool | None
    drift_count: int
    violations: int
    last_run: datetime | None
    history: list[dict[str, Any]] = field(default_factory=list)  # newest first: commit, result, health, when
    pinned: dict[str, Any] | None = None  # the pin holding this stack at an earlier commit, if any
    failed_commit: str | None = None  # the commit its last pass failed at, partly live beside `commit`
    suspended: str = ""  # who suspended it (or its environment), when and why; "" when not suspended


@dataclass
class EnvStatus:
    env: str
    stacks: list[StackStatus]
    pinned_head: str | None = None  # the branch head when the newest pin was set
    env_file: str = ""  # the environment file in force (path@commit when it follows Git)
    suspended: str = ""  # the environment's own suspension (who, when, why), if any
    windows: list[str] = field(default_factory=list)  # each sync window: active until when, or when it opens next


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, ids and datetimes to JSON-ready primitives (for -o json and the HTTP API)."""
    if isinstance(value, ObjectId):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    return value


@dataclass
class StackPreview:
    """What merging a revision does to one stack: objects added, changed (field paths), pruned; policy deltas."""

    stack: str
    status: str  # "new stack", "removed stack", "changed", "unchanged", "render error"
    added: list[ObjectChange] = field(default_factory=list)
    changed: list[ObjectChange] = field(default_factory=list)
    pruned: list[ObjectChange] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # gone from Git but left in the cluster, and why
    moved_in: list[str] = field(default_factory=list)  # "<id> from <stack>": handed over, never pruned
    new_violations: list[Any] = field(default_factory=list)
    fixed_violations: list[Any] = field(default_factory=list)
    still_violations: list[Any] = field(default_factory=list)
    waits_on: list[str] = field(default_factory=list)  # re-applied stacks it depends on (its pass waits for them)
    drift_overwritten: list[str] = field(default_factory=list)  # --cluster: live edits the merge's sync reverts
    error: str = ""

    @property
    def reapplied(self) -> bool:
        return bool(self.added or self.changed or self.pruned or self.moved_in) or self.status == "new stack"


@dataclass
class EnvPreview:
    env: str
    base: CommitInfo | None
    revision: CommitInfo
    stacks: list[StackPreview] = field(default_factory=list)
    cluster: bool = False  # compared with the live cluster too (dry-runs, inventory)
    error: str = ""

    @property
    def has_changes(self) -> bool:
        return any(s.reapplied for s in self.stacks)

    @property
    def new_blocking(self) -> list[Any]:
        return [v for s in self.stacks for v in s.new_violations if getattr(v, "blocking", False)]

    @property
    def exit_code(self) -> int:
        """0 no change, 1 changes, 2 an error (a stack that does not render) or new enforced violations."""
        if self.error or any(s.error for s in self.stacks) or self.new_blocking:
            return 2
        return 1 if self.has_changes else 0
