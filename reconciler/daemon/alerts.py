"""What the daemon tells people after a pass or a drift check: metrics, alerts, and the recovered notice.

The alert *content* is derived in `notify` (alerts_for_pass, alerts_for_drift); this module decides
which alert scopes a pass or drift check covers, so a condition that cleared is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import AlertKind, Notifier, alerts_for_drift, alerts_for_pass, recovered_alert
from reconciler.daemon.runs import Run
from reconciler.results import DriftReport, PassResult


@dataclass
class EnvState:
    """What the daemon knows about one environment between passes (served by /api/status)."""

    last_run: Run | None = None
    last_result: PassResult | None = None  # last pass that covered the whole env or a stack
    stack_results: dict[str, Any] = field(default_factory=dict)  # stack -> StackResult of its last pass
    stack_runs: dict[str, datetime] = field(default_factory=dict)
    stack_commits: dict[str, str | None] = field(default_factory=dict)  # stack -> the commit of its last pass
    stack_objects: dict[str, int] = field(default_factory=dict)  # stack -> objects it has, as of the last pass that
    # planned it (a settled pass plans nothing and keeps the count; what it pruned is not counted)
    last_drift: DriftReport | None = None
    last_success_at: datetime | None = None
    failures: int = 0
    not_before: float = 0.0  # wall clock: polls wait until then after failures (backoff)
    failing: bool = False
    shown: dict[str, tuple[tuple, dict]] = field(default_factory=dict)  # stack -> what /api/status showed, and from
    # what (daemon/status.py)


class AlertRouter:
    """Turns pass results and drift reports into metrics and de-duplicated alerts."""

    def __init__(self, notifier: Notifier, metrics: Metrics) -> None:
        self.notifier = notifier
        self.metrics = metrics

    def on_pass(self, result: PassResult, state: EnvState, duration_s: float) -> None:
        self.metrics.observe_pass(result, duration_s)
        kinds = (AlertKind.POLICY_VIOLATION, AlertKind.SYNC_FAILED, AlertKind.SYNC_BLOCKED, AlertKind.SUSPENDED,
                 AlertKind.WINDOW_HELD)
        scopes = [(k.value, result.env, s.stack) for k in kinds for s in result.stacks]
        scopes += [(AlertKind.SYNC_FAILED.value, result.env, "")]
        if result.stacks and not result.dry_run:  # a pass that ran stacks knows the pins: unpinned clears the alert
            scopes += [(AlertKind.PINNED.value, result.env, "")]
        self.notifier.publish(alerts_for_pass(result), scopes)
        if result.ok and state.failing:
            self.notifier.send_now(recovered_alert(result))
        state.failing = not result.ok
        if result.ok and not result.dry_run:
            state.last_success_at = result.finished_at

    def on_drift(self, report: DriftReport, state: EnvState, stacks: list[str], run_id: str) -> None:
        state.last_drift = report
        self.metrics.observe_drift(report, stacks)
        self.notifier.publish(alerts_for_drift(report, run_id), [(AlertKind.DRIFT_DETECTED.value, report.env, "")])
