"""Prometheus metrics of one daemon instance, in a registry of its own (no process-global state).

Why a registry per instance: tests (and anyone embedding the daemon) run several daemons in one
process; the default global registry would mix them up or refuse duplicate names.
"""

from __future__ import annotations

from enum import Enum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from reconciler.results import DriftReport, PassResult, StackState

CONTENT_TYPE = CONTENT_TYPE_LATEST
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_REQUEST_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


def label(value: object) -> str:
    """An enum's value or the text of anything else: label values must be stable strings."""
    return str(value.value) if isinstance(value, Enum) else str(value)


class Metrics:
    """Every metric the daemon exposes on /metrics; `observe_*` methods translate results into samples."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.pass_duration = Histogram(
            "reconciler_pass_duration_seconds", "Duration of a reconcile pass", ["env", "result"],
            buckets=_DURATION_BUCKETS, registry=r)
        self.passes = Counter("reconciler_passes_total", "Reconcile passes by result", ["env", "result"], registry=r)
        self.stack_duration = Gauge(
            "reconciler_stack_duration_seconds", "Duration of the stack in its last pass", ["env", "stack"], registry=r)
        self.stack_results = Counter(
            "reconciler_stack_results_total", "Stack outcomes per pass", ["env", "stack", "state"], registry=r)
        self.stack_state = Gauge(
            "reconciler_stack_state", "1 for the stack's state in its last pass", ["env", "stack", "state"], registry=r)
        self.objects_applied = Counter(
            "reconciler_objects_applied_total", "Objects created or updated", ["env", "stack"], registry=r)
        self.objects_pruned = Counter(
            "reconciler_objects_pruned_total", "Objects deleted by prune", ["env", "stack"], registry=r)
        self.drift_objects = Gauge(
            "reconciler_drift_objects", "Objects that differ from Git at the last drift check", ["env", "stack"],
            registry=r)
        self.policy_violations = Gauge(
            "reconciler_policy_violations", "Policy violations found in the last pass", ["env", "rule", "severity"],
            registry=r)
        self.last_success = Gauge(
            "reconciler_last_success_timestamp_seconds", "When the last fully successful pass finished", ["env"],
            registry=r)
        self.last_success_commit = Gauge(
            "reconciler_last_success_commit_timestamp_seconds",
            "Commit time of the revision the last successful pass applied", ["env"], registry=r)
        self.api_requests = Histogram(
            "reconciler_api_requests_per_pass", "Kubernetes API requests made by one pass", ["env"],
            buckets=_REQUEST_BUCKETS, registry=r)
        self.triggers = Counter(
            "reconciler_triggers_total", "Pass requests by source (poll, webhook, manual, ...)", ["env", "source"],
            registry=r)
        self.coalesced = Counter(
            "reconciler_triggers_coalesced_total", "Triggers merged into an already queued follow-up pass", ["env"],
            registry=r)
        self.consecutive_failures = Gauge(
            "reconciler_consecutive_failures", "Failed passes in a row (drives the backoff)", ["env"], registry=r)
        self.pinned_stacks = Gauge("reconciler_pinned_stacks", "Stacks held at a rollback's commit instead of the "
                                   "branch head", ["env"], registry=r)
        self.rollbacks = Counter("reconciler_rollbacks_total", "Rollbacks by outcome and whether autoRollback did "
                                 "them", ["env", "automatic", "ok"], registry=r)
        self.is_leader = Gauge("reconciler_is_leader", "1 while this replica holds the env's lease", ["env"], registry=r)
        self.alerts = Counter(
            "reconciler_alerts_total", "Alerts by kind and delivery outcome", ["kind", "sink", "outcome"], registry=r)
        self.alert_failures = Counter(
            "reconciler_alert_delivery_failures_total", "Failed delivery attempts per sink", ["sink"], registry=r)
        self.alerts_suppressed = Counter(
            "reconciler_alerts_suppressed_total", "Alerts not re-sent inside their dedup window", ["kind"], registry=r)
        self.webhooks = Counter(
            "reconciler_webhooks_total", "Git webhook requests by provider and outcome", ["provider", "outcome"],
            registry=r)
        self._add_live_metrics(r)

    def _add_live_metrics(self, r: CollectorRegistry) -> None:
        """The live-state cache and drift on events."""
        self.drift_latency = Histogram(
            "reconciler_drift_detection_seconds", "From a watch event on a managed object to its drift verdict",
            ["env"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=r)
        self.live_batches = Counter(
            "reconciler_live_event_batches_total", "Bursts of watch events per environment, by what became of them "
            "(judged, left to a pass, left to the leader)", ["env", "outcome"], registry=r)
        self.live_corrections = Counter(
            "reconciler_live_corrections_total", "Drifted objects restored on a watch event, by outcome",
            ["env", "outcome"], registry=r)
        self.cache_objects = Gauge("reconciler_cache_objects", "Objects in the live-state cache", ["env", "kind"],
                                   registry=r)
        self.watch_events = Gauge("reconciler_watch_events", "Watch events received since start", ["env", "kind"],
                                  registry=r)
        self.watch_relists = Gauge("reconciler_watch_relists", "LISTs made by the watches since start (first "
                                   "sync, 410 Gone, reconnects, periodic resync)", ["env", "kind"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe_trigger(self, env: str, source: str, coalesced: bool) -> None:
        self.triggers.labels(env, source).inc()
        if coalesced:
            self.coalesced.labels(env).inc()

    def observe_pass(self, result: PassResult, duration_s: float) -> None:
        outcome = "success" if result.ok else "failure"
        self.pass_duration.labels(result.env, outcome).observe(duration_s)
        self.passes.labels(result.env, outcome).inc()
        self.api_requests.labels(result.env).observe(result.total_requests)
        for stack in result.stacks:
            self._observe_stack(result.env, stack)
        self._observe_violations(result)
        if result.stacks and not result.dry_run:
            self.pinned_stacks.labels(result.env).set(len(result.pins))
        for rollback in result.rollbacks:
            self.rollbacks.labels(result.env, str(rollback.automatic).lower(), str(rollback.ok).lower()).inc()
        if result.ok and not result.dry_run:
            self.last_success.labels(result.env).set((result.finished_at or result.started_at).timestamp())
            if result.commit is not None:
                self.last_success_commit.labels(result.env).set(result.commit.committed_at.timestamp())

    def _observe_stack(self, env: str, stack) -> None:  # stack: StackResult
        self.stack_duration.labels(env, stack.stack).set(stack.duration_s)
        self.stack_results.labels(env, stack.stack, stack.state.value).inc()
        for state in StackState:
            self.stack_state.labels(env, stack.stack, state.value).set(1 if stack.state is state else 0)
        applied = sum(1 for c in stack.changed if c.action.value in ("create", "update"))
        pruned = sum(1 for c in stack.changed if c.action.value == "prune")
        if stack.state is StackState.APPLIED or stack.state is StackState.FAILED:
            self.objects_applied.labels(env, stack.stack).inc(applied)
            self.objects_pruned.labels(env, stack.stack).inc(pruned)

    def _observe_violations(self, result: PassResult) -> None:
        counts: dict[tuple[str, str], int] = {}
        for stack in result.stacks:
            for violation in stack.violations:
                key = (label(getattr(violation, "rule", "unknown")), label(getattr(violation, "severity", "unknown")))
                counts[key] = counts.get(key, 0) + 1
        for metric in list(self.policy_violations.collect()[0].samples):
            if metric.labels.get("env") == result.env and (metric.labels["rule"], metric.labels["severity"]) not in counts:
                self.policy_violations.labels(result.env, metric.labels["rule"], metric.labels["severity"]).set(0)
        for (rule, severity), count in counts.items():
            self.policy_violations.labels(result.env, rule, severity).set(count)

    def observe_drift(self, report: DriftReport, stacks: list[str]) -> None:
        per_stack = {name: 0 for name in stacks}
        for item in report.items:
            per_stack[item.stack] = per_stack.get(item.stack, 0) + 1
        for stack, count in per_stack.items():
            self.drift_objects.labels(report.env, stack).set(count)

    def observe_live_cache(self, env: str, stats: dict[str, dict[str, int]]) -> None:
        for gauge, name in ((self.cache_objects, "objects"), (self.watch_events, "events"),
                            (self.watch_relists, "relists")):
            for kind, value in stats.get(name, {}).items():
                gauge.labels(env, kind).set(value)

    def observe_leadership(self, env: str, leading: bool) -> None:
        self.is_leader.labels(env).set(1 if leading else 0)
