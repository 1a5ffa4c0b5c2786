"""Is a stack healthy after its apply? Readiness per kind, read with one LIST per kind and namespace.

A stack's dependents start only when every workload it owns is ready: Deployments available and
fully rolled out, StatefulSets ready on the current revision, DaemonSets scheduled and ready
everywhere, Jobs complete, PVCs bound, Services with selectors backed by a ready endpoint.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable, Iterable

from reconciler.cluster import Cluster
from reconciler.objects import K8sObject

_WATCHED = {
    ("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("batch", "Job"),
    ("", "PersistentVolumeClaim"), ("", "Service"),
}


def _observed(obj: dict) -> bool:
    status = obj.get("status") or {}
    return status.get("observedGeneration", 0) >= (obj.get("metadata") or {}).get("generation", 0)


def deployment_ready(obj: dict) -> str | None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    if not _observed(obj):
        return "rollout not observed yet"
    for key in ("updatedReplicas", "availableReplicas", "readyReplicas"):
        if status.get(key, 0) < want:
            return f"{status.get(key, 0)}/{want} {key}"
    if status.get("replicas", 0) > want:
        return f"{status.get('replicas')} replicas, old ones still terminating"
    return None


def statefulset_ready(obj: dict) -> str | None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    if not _observed(obj):
        return "rollout not observed yet"
    if status.get("readyReplicas", 0) < want:
        return f"{status.get('readyReplicas', 0)}/{want} ready"
    strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy == "RollingUpdate" and status.get("updateRevision") != status.get("currentRevision"):
        return "rolling update in progress"
    return None


def daemonset_ready(obj: dict) -> str | None:
    status = obj.get("status") or {}
    want = status.get("desiredNumberScheduled", 0)
    if not _observed(obj):
        return "rollout not observed yet"
    for key in ("numberReady", "updatedNumberScheduled", "numberAvailable"):
        if status.get(key, 0) < want:
            return f"{status.get(key, 0)}/{want} {key}"
    return None


def job_ready(obj: dict) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Complete" and condition.get("status") == "True":
            return None
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return f"failed: {condition.get('message', '')}"
    return "not complete"


def pvc_ready(obj: dict) -> str | None:
    phase = (obj.get("status") or {}).get("phase")
    return None if phase == "Bound" else f"phase {phase or 'Pending'}"


CHECKS: dict[str, Callable[[dict], str | None]] = {
    "Deployment": deployment_ready,
    "StatefulSet": statefulset_ready,
    "DaemonSet": daemonset_ready,
    "Job": job_ready,
    "PersistentVolumeClaim": pvc_ready,
}


def _needs_endpoints(obj: dict) -> bool:
    spec = obj.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


def _services_with_endpoints(cluster: Cluster, namespace: str) -> set[str]:
    ready: set[str] = set()
    for slice_ in cluster.list("discovery.k8s.io/v1", "EndpointSlice", namespace):
        service = ((slice_.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
        if service and any((e.get("conditions") or {}).get("ready") for e in slice_.get("endpoints") or []):
            ready.add(service)
    return ready


def unready(cluster: Cluster, objects: Iterable[K8sObject]) -> list[str]:
    """`kind/namespace/name: why` for every watched object that is not ready yet."""
    by_type: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for obj in objects:
        if (obj.id.group, obj.kind) in _WATCHED:
            by_type[(obj.api_version, obj.kind, obj.id.namespace)].add(obj.id.name)
    problems: list[str] = []
    for (api_version, kind, namespace), names in sorted(by_type.items()):
        live = {o["metadata"]["name"]: o for o in cluster.list(api_version, kind, namespace or None)}
        if kind == "Service":
            wanted = {n for n in names if n in live and _needs_endpoints(live[n])}
            with_endpoints = _services_with_endpoints(cluster, namespace) if wanted else set()
            problems += [f"Service/{namespace}/{n}: no ready endpoints" for n in sorted(wanted - with_endpoints)]
            continue
        for name in sorted(names):
            reason = "not found" if name not in live else CHECKS[kind](live[name])
            if reason:
                problems.append(f"{kind}/{namespace or '-'}/{name}: {reason}")
    return problems


def wait_healthy(
    cluster: Cluster,
    objects: list[K8sObject],
    timeout_s: float,
    should_stop: Callable[[], bool] = lambda: False,
    poll_s: float = 1.0,
) -> tuple[bool, str]:
    """Poll until every watched object is ready; (False, what is still unready) on timeout or stop."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        problems = unready(cluster, objects)
        if not problems:
            return True, ""
        if should_stop():
            return False, "stopped while waiting for health: " + "; ".join(problems[:3])
        if time.monotonic() >= deadline:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            return False, f"not healthy after {timeout_s:.0f}s: " + "; ".join(problems[:3]) + more
        time.sleep(delay)
        delay = min(delay * 1.5, poll_s)
