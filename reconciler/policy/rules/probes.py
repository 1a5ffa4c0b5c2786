"""probes: the kubelet can only restart a hung container and stop routing to an unready one if it
can ask; a probe aimed at a port the container does not declare asks nobody.

Long-running containers are the containers of Deployments, StatefulSets, DaemonSets, ReplicaSets
and bare Pods, plus sidecar init containers (`restartPolicy: Always`). Job and CronJob containers
run to completion and are exempt. A probe's `httpGet`/`tcpSocket`/`grpc` port must be one of the
container's `ports` (by number or by name); `exec` probes have no port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from reconciler.policy.fields import Fields
from reconciler.policy.rules.base import Family, Finding, RuleSpec
from reconciler.policy.view import Container, EnvironmentView, Subject, Workload

RULE = "probes"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


@dataclass(frozen=True)
class Settings:
    require: tuple[str, ...]
    require_declared_port: bool


def parse_settings(fields: Fields) -> Settings:
    settings = Settings(
        require=fields.strings("require", ("livenessProbe", "readinessProbe"), choices=PROBES),
        require_declared_port=fields.boolean("require_declared_port", True),
    )
    fields.finish()
    return settings


def check(view: EnvironmentView, settings: Settings) -> Iterator[Finding]:
    for workload in view.workloads:
        for container in workload.containers():
            if container.long_running:
                yield from _check_container(workload, container, settings)


def _check_container(workload: Workload, container: Container, settings: Settings) -> Iterator[Finding]:
    subject = Subject.of(workload.obj)
    for probe_name in settings.require:
        if not container.spec.get(probe_name):
            yield Finding(
                RULE, subject, f"container {container.name} of {workload.kind} {workload.name} has no {probe_name}",
                f"add {probe_name} (httpGet, tcpSocket, grpc or exec) to container {container.name}",
            )
    if not settings.require_declared_port:
        return
    for probe_name in PROBES:
        port = _probe_port(container.spec.get(probe_name) or {})
        if port is not None and not _declared(port, container.spec):
            yield Finding(
                RULE, subject,
                f"{probe_name} of container {container.name} of {workload.kind} {workload.name} targets port {port}, "
                f"which the container does not declare",
                f"point {probe_name} at one of the container's ports, or declare port {port} in its ports",
            )


def _probe_port(probe: Mapping[str, Any]) -> Any:
    for handler in ("httpGet", "tcpSocket", "grpc"):
        if isinstance(probe.get(handler), Mapping):
            return probe[handler].get("port")
    return None


def _declared(port: Any, container: Mapping[str, Any]) -> bool:
    ports = container.get("ports") or []
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return any(str(p.get("containerPort")) == str(port) for p in ports)
    return any(p.get("name") == port for p in ports)


FAMILY = Family(
    name="probes",
    rules=(RuleSpec(RULE, "Long-running containers have liveness and readiness probes aimed at a declared port.", "high"),),
    parse_settings=parse_settings,
    check=check,
)
