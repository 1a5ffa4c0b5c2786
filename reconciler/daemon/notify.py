"""Alerts: what deserves one (derived from pass results and drift reports), de-duplication, and sinks.

Design:
- `alerts_for_pass` / `alerts_for_drift` are pure: plain results in, `Alert`s out.
- `Notifier.publish` de-duplicates: the same alert (same key) is not re-sent inside its window;
  after the window, while the condition persists, it is re-sent marked as a reminder. When a
  condition clears, its key is forgotten, so a recurrence alerts at once.
- Each sink has its own delivery thread and queue: a sink that is down retries with exponential
  backoff (`retrying`, tenacity) on its own thread and never blocks reconciling or the other sinks;
  failures are counted.
- Sinks: the log (always), Kubernetes Events, and any Apprise URL (a hundred services, one URL each).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Callable, Iterable, Protocol

from reconciler.logs import get_logger, redact_text
from reconciler.daemon.metrics import Metrics, label
from reconciler.retrying import RetryPolicy, retry_call
from reconciler.results import DriftReport, PassResult, StackState

log = get_logger("reconciler.daemon.notify")


class AlertKind(str, Enum):
    POLICY_VIOLATION = "policy_violation"
    DRIFT_DETECTED = "drift_detected"
    SYNC_FAILED = "sync_failed"
    SYNC_BLOCKED = "sync_blocked"
    RECOVERED = "recovered"
    ROLLED_BACK = "rolled_back"
    PINNED = "pinned"
    SUSPENDED = "suspended"
    WINDOW_HELD = "window_held"


_EVENT_REASON = {
    AlertKind.POLICY_VIOLATION: "PolicyViolation",
    AlertKind.DRIFT_DETECTED: "DriftDetected",
    AlertKind.SYNC_FAILED: "SyncFailed",
    AlertKind.SYNC_BLOCKED: "SyncBlocked",
    AlertKind.RECOVERED: "Recovered",
    AlertKind.ROLLED_BACK: "RolledBack",
    AlertKind.PINNED: "Pinned",
    AlertKind.SUSPENDED: "Suspended",
    AlertKind.WINDOW_HELD: "HeldBySyncWindow",
}


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    env: str
    stack: str
    severity: str  # "critical", "warning", "info"
    title: str
    message: str
    fingerprint: str = ""  # what makes two alerts of the same kind/env/stack "the same"
    commit: str | None = None
    run_id: str | None = None
    details: list[str] = field(default_factory=list)
    reminder: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def scope(self) -> tuple[str, str, str]:
        return (self.kind.value, self.env, self.stack)

    @property
    def key(self) -> str:
        return "|".join((*self.scope, self.fingerprint))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "env": self.env, "stack": self.stack, "severity": self.severity,
            "title": self.title, "message": self.message, "commit": self.commit, "run_id": self.run_id,
            "details": list(self.details), "reminder": self.reminder, "key": self.key,
            "created_at": self.created_at.isoformat(),
        }


def _fingerprint(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


def _short(commit: Any) -> str | None:
    return getattr(commit, "sha", None)


# ---------------------------------------------------------------------------------------------
# What deserves an alert (pure)


def alerts_for_pass(result: PassResult) -> list[Alert]:
    """Violations, failed and blocked stacks, and a pass-wide error, one alert per stack and kind."""
    commit = _short(result.commit)
    alerts: list[Alert] = []
    if result.error:
        alerts.append(Alert(AlertKind.SYNC_FAILED, result.env, "", "critical", f"{result.env}: pass failed",
                            redact_text(result.error), _fingerprint([result.error]), commit, result.run_id))
    for stack in result.stacks:
        alerts.extend(_stack_alerts(result, stack, commit))
    return alerts + _pin_alerts(result, commit)


def _pin_alerts(result: PassResult, commit: str | None) -> list[Alert]:
    """A rollback names both commits; pinned stacks are reported while the pin holds (deduplicated)."""
    alerts = []
    for rollback in result.rollbacks:
        how = "automatically rolled back" if rollback.automatic else "rolled back"
        frm = f" from {rollback.from_commit[:10]}" if rollback.from_commit else ""
        outcome = "healthy again" if rollback.ok else "the rollback did not succeed"
        alerts.append(Alert(AlertKind.ROLLED_BACK, result.env, "", "critical" if not rollback.ok else "warning",
                            f"{result.env}: {', '.join(rollback.stacks)} {how}{frm} to {rollback.to_commit[:10]}",
                            f"{outcome}; pinned at {rollback.to_commit[:10]} until `reconciler unpin -e {result.env}`",
                            _fingerprint([rollback.to_commit, rollback.from_commit or "", *rollback.stacks]), commit,
                            result.run_id))
    if result.pins:
        lines = [f"{stack} at {pin['revision'][:10]} (by {pin['by']})" for stack, pin in sorted(result.pins.items())]
        alerts.append(Alert(AlertKind.PINNED, result.env, "", "warning",
                            f"{result.env}: {len(lines)} stack(s) pinned, branch head {(commit or '-')[:10]} not "
                            "applied to them", lines[0], _fingerprint(lines), commit, result.run_id, lines))
    return alerts


def _stack_alerts(result: PassResult, stack: Any, commit: str | None) -> list[Alert]:
    alerts = []
    active = [v for v in stack.violations if not getattr(v, "excepted_by", None)]
    if active:
        lines = [f"[{label(getattr(v, 'severity', ''))}] {label(getattr(v, 'rule', ''))} {getattr(v, 'object', '')}: "
                 f"{getattr(v, 'message', '')}" for v in active]
        severities = {label(getattr(v, "severity", "")).lower() for v in active}
        alerts.append(Alert(
            AlertKind.POLICY_VIOLATION, result.env, stack.stack,
            "critical" if severities & {"critical", "high", "error"} else "warning",
            f"{result.env}/{stack.stack}: {len(active)} policy violation(s)", lines[0],
            _fingerprint(f"{label(getattr(v, 'rule', ''))} {getattr(v, 'object', '')}" for v in active),
            commit, result.run_id, lines))
    if stack.state is StackState.FAILED:
        alerts.append(Alert(AlertKind.SYNC_FAILED, result.env, stack.stack, "critical",
                            f"{result.env}/{stack.stack}: sync failed", redact_text(stack.reason),
                            "", commit, result.run_id))
    elif stack.state is StackState.BLOCKED:
        by = ", ".join(stack.blocked_by) or stack.reason
        alerts.append(Alert(AlertKind.SYNC_BLOCKED, result.env, stack.stack, "warning",
                            f"{result.env}/{stack.stack}: blocked", f"blocked by {by}", "", commit, result.run_id))
    elif stack.state is StackState.HELD:
        until = f"; applies at {result.held_until.isoformat(timespec='minutes')}" if result.held_until else ""
        alerts.append(Alert(AlertKind.WINDOW_HELD, result.env, stack.stack, "info",
                            f"{result.env}/{stack.stack}: held by a sync window", stack.reason + until,
                            _fingerprint([stack.reason]), commit, result.run_id))
    elif stack.state is StackState.SUSPENDED:
        alerts.append(Alert(AlertKind.SUSPENDED, result.env, stack.stack, "info",
                            f"{result.env}/{stack.stack}: suspended", stack.reason, _fingerprint([stack.reason]),
                            commit, result.run_id))
    return alerts


def alerts_for_drift(report: DriftReport, run_id: str | None = None) -> list[Alert]:
    """One alert per environment while anything drifts; the fingerprint changes when the set does."""
    if not report.items:
        return []
    lines = [f"{item.kind.value} {item.id}" + (f" ({', '.join(f.path for f in item.fields[:5])})" if item.fields else "")
             for item in report.items]
    return [Alert(AlertKind.DRIFT_DETECTED, report.env, "", "warning",
                  f"{report.env}: {len(report.items)} object(s) drifted from Git", lines[0],
                  _fingerprint(f"{i.kind.value} {i.id}" for i in report.items), report.commit, run_id, lines)]


def recovered_alert(result: PassResult) -> Alert:
    return Alert(AlertKind.RECOVERED, result.env, "", "info", f"{result.env}: recovered",
                 "the last pass succeeded after failures", result.run_id, _short(result.commit), result.run_id)


# ---------------------------------------------------------------------------------------------
# Sinks


class AlertSink(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver or raise: the caller retries."""


class DeliveryError(Exception):
    """A sink could not deliver an alert (it will be retried)."""


class LogSink:
    """Always on: the structured log is the record of every alert, whatever else is down."""

    name = "log"

    def send(self, alert: Alert) -> None:
        log.warning("alert", alert_kind=alert.kind.value, env=alert.env, stack=alert.stack or None,
                    severity=alert.severity, title=alert.title, message=alert.message, reminder=alert.reminder,
                    commit=alert.commit, run_id=alert.run_id)


_APPRISE_TYPE = {"critical": "failure", "warning": "warning", "info": "info"}


def apprise_message(alert: Alert, status_url: str = "") -> tuple[str, str, str]:
    """(title, body, Apprise notify type) of an alert: every Apprise service gets the same text."""
    title = ("Reminder: " if alert.reminder else "") + alert.title
    lines = [f"• {line}" for line in (alert.details or [alert.message])[:10]]
    where = [f"kind {alert.kind.value}", f"env {alert.env}"] + ([f"stack {alert.stack}"] if alert.stack else [])
    where += ([f"commit {alert.commit[:10]}"] if alert.commit else []) + ([f"run {alert.run_id}"] if alert.run_id else [])
    body = "\n".join(lines + [" · ".join(where)] + ([f"status page: {status_url}"] if status_url else []))
    kind = "success" if alert.kind is AlertKind.RECOVERED else _APPRISE_TYPE.get(alert.severity, "info")
    return title, body, kind


class AppriseSink:
    """Any of Apprise's services (Slack, Teams, Mattermost, PagerDuty, Opsgenie, email, ntfy, Discord,
    Telegram, a JSON webhook as `json://` or `jsons://`, ...), one URL each: https://github.com/caronc/apprise."""

    def __init__(self, url: str, *, name: str = "", status_url: str = "") -> None:
        import apprise

        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ValueError(f"not an Apprise URL: {redact_text(url)}")
        self.name = name or url.split("://", 1)[0]
        self._status_url = status_url

    def send(self, alert: Alert) -> None:
        title, body, kind = apprise_message(alert, self._status_url)
        if not self._apprise.notify(title=title, body=body, notify_type=kind):
            raise DeliveryError(f"{self.name}: the service did not accept the notification")


def apprise_url(url: str) -> str:
    """A plain http(s) webhook URL (the former ALERT_WEBHOOK_URL) as Apprise's JSON webhook; others as given."""
    if url.startswith("http://") and "hooks.slack.com" not in url:
        return "json://" + url.removeprefix("http://")
    if url.startswith("https://") and "hooks.slack.com" not in url:
        return "jsons://" + url.removeprefix("https://")
    return url


EventTarget = Callable[[str], "tuple[Any, str, str] | None"]
"""env -> (kubernetes ApiClient, namespace, name of the inventory ConfigMap), or None if unknown."""


class KubernetesEventSink:
    """A core/v1 Event on the environment's inventory ConfigMap (`engine.state_ref()`), for `kubectl describe`."""

    name = "kubernetes-events"

    def __init__(self, target: EventTarget, *, component: str = "healthflow-reconciler", instance: str = "") -> None:
        self._target = target
        self._component = component
        self._instance = instance or component

    def send(self, alert: Alert) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        target = self._target(alert.env)
        if target is None:
            return
        api_client, namespace, name = target
        core = client.CoreV1Api(api_client)
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": namespace,
                         "labels": {"healthflow.io/env": alert.env, "healthflow.io/alert": alert.kind.value}},
            "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "name": name,
                               "uid": self._uid(core, namespace, name)},
            "reason": _EVENT_REASON[alert.kind],
            "message": (("Reminder: " if alert.reminder else "") + f"{alert.title}: {alert.message}")[:1000],
            "type": "Normal" if alert.kind is AlertKind.RECOVERED else "Warning",
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": self._component},
            "reportingComponent": self._component, "reportingInstance": self._instance[:128],
        }
        try:
            core.create_namespaced_event(namespace, body)
        except ApiException as exc:
            raise DeliveryError(f"creating Event in {namespace}: HTTP {exc.status} {exc.reason}") from exc

    @staticmethod
    def _uid(core: Any, namespace: str, name: str) -> str | None:
        from kubernetes.client.rest import ApiException

        try:
            return core.read_namespaced_config_map(name, namespace).metadata.uid
        except ApiException:
            return None


# ---------------------------------------------------------------------------------------------
# Delivery and de-duplication


class _SinkWorker:
    """One thread per sink: retries with backoff there, so a down sink holds up nothing else."""

    def __init__(self, sink: AlertSink, retry: RetryPolicy, metrics: Metrics, queue_size: int = 1000) -> None:
        self.sink = sink
        self._retry = retry
        self._metrics = metrics
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=f"alert-{sink.name}", daemon=True)
        self._thread.start()

    def submit(self, alert: Alert) -> None:
        try:
            with self._idle:
                self._queue.put_nowait(alert)
                self._pending += 1
        except queue.Full:
            self._metrics.alerts.labels(alert.kind.value, self.sink.name, "dropped").inc()
            log.error("alert queue full, alert dropped", sink=self.sink.name, alert_kind=alert.kind.value)

    def _loop(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            self._deliver(alert)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _deliver(self, alert: Alert) -> None:
        failures = self._metrics.alert_failures.labels(self.sink.name)
        try:
            retry_call(lambda: self.sink.send(alert), self._retry, what=f"alert delivery to {self.sink.name}",
                       stop=self._stop, on_failure=lambda _exc: failures.inc())
            self._metrics.alerts.labels(alert.kind.value, self.sink.name, "sent").inc()
        except Exception as exc:  # a sink's failure is data: counted, logged, retried, never raised
            failures.inc()
            log.warning("alert delivery failed", sink=self.sink.name, error=redact_text(str(exc)))
            self._metrics.alerts.labels(alert.kind.value, self.sink.name, "failed").inc()

    def wait_idle(self, timeout_s: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout_s)


@dataclass
class _Sent:
    first_at: float
    last_at: float
    count: int


class Notifier:
    """De-duplicates alerts and fans them out to every sink, each on its own delivery thread."""

    def __init__(self, sinks: list[AlertSink], metrics: Metrics, *, dedup_window_s: float = 3600.0,
                 windows: dict[AlertKind, float] | None = None, retry: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._default_window = dedup_window_s
        self._windows = dict(windows or {})
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, _Sent] = {}
        self._workers = [_SinkWorker(s, retry or RetryPolicy(), metrics) for s in [LogSink(), *sinks]]
        self.history: list[Alert] = []

    def window(self, kind: AlertKind) -> float:
        return self._windows.get(kind, self._default_window)

    def publish(self, alerts: list[Alert], scopes: Iterable[tuple[str, str, str]]) -> list[Alert]:
        """Send what is new or due as a reminder; forget conditions in `scopes` that no alert reports anymore.

        `scopes` are the (kind, env, stack) triples this observation covered; returns the alerts sent.
        """
        now = self._clock()
        to_send: list[Alert] = []
        with self._lock:
            active = {a.key for a in alerts}
            covered = set(scopes) | {a.scope for a in alerts}
            for key in [k for k in self._sent if k not in active and tuple(k.split("|")[:3]) in covered]:
                del self._sent[key]
            for alert in alerts:
                decision = self._decide(alert, now)
                if decision is None:
                    self._metrics.alerts_suppressed.labels(alert.kind.value).inc()
                else:
                    to_send.append(decision)
        for alert in to_send:
            self.send_now(alert)
        return to_send

    def _decide(self, alert: Alert, now: float) -> Alert | None:
        seen = self._sent.get(alert.key)
        if seen is None:
            self._sent[alert.key] = _Sent(now, now, 1)
            return alert
        if now - seen.last_at < self.window(alert.kind):
            return None
        seen.last_at, seen.count = now, seen.count + 1
        return replace(alert, reminder=True)

    def send_now(self, alert: Alert) -> None:
        """Fan one alert out without de-duplication (one-off alerts such as `recovered`)."""
        self.history = (self.history + [alert])[-200:]
        for worker in self._workers:
            worker.submit(alert)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every sink has worked through its queue (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        return all(w.wait_idle(max(0.0, deadline - time.monotonic())) for w in self._workers)

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
