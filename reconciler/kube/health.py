"""Is a stack healthy after its apply? Readiness per kind, read with one LIST per kind and namespace.

A stack's dependents start only when every object it owns is ready. Built-in workloads have their
own rules: Deployments available and fully rolled out, StatefulSets ready on the current revision,
DaemonSets scheduled and ready everywhere, Jobs complete, PVCs bound (or waiting for their first
consumer), Services with selectors backed by a ready endpoint when they have endpoints, CRDs
Established, Namespaces not terminating. Every other kind, custom resources included, follows the
environment's health rule for its kind when it has one (`health_rules`: CEL expressions), else the
generic rules of Kubernetes' kstatus: the controller has observed the latest generation
(`status.observedGeneration`), and no condition says `Stalled=True`, `Reconciling=True` or
`Ready=False/Unknown`. An object without a status is ready. Kinds that never carry a status
(ConfigMaps, RBAC, NetworkPolicies, ...) are not read at all.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable, Iterable

from reconciler.kube.cluster import ApiError, Cluster
from reconciler.kube.health_rules import HealthRules
from reconciler.objects import K8sObject, ObjectId, group_of

_NO_HEALTH = {
    ("", "ConfigMap"), ("", "Secret"), ("", "ServiceAccount"), ("", "LimitRange"), ("", "ResourceQuota"),
    ("", "Endpoints"), ("discovery.k8s.io", "EndpointSlice"),
    ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("networking.k8s.io", "NetworkPolicy"), ("networking.k8s.io", "IngressClass"), ("networking.k8s.io", "Ingress"),
    ("storage.k8s.io", "StorageClass"), ("scheduling.k8s.io", "PriorityClass"), ("policy", "PodDisruptionBudget"),
    ("autoscaling", "HorizontalPodAutoscaler"), ("coordination.k8s.io", "Lease"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
}
"""Kinds whose readiness is their existence: never listed for health."""


def _observed(obj: dict) -> bool:
    status = obj.get("status") or {}
    return status.get("observedGeneration", 0) >= (obj.get("metadata") or {}).get("generation", 0)


def _first_short(status: dict, counters: tuple[str, ...], want: int) -> str | None:
    """`have/want counter` for the first status counter below `want`, else None."""
    for key in counters:
        if status.get(key, 0) < want:
            return f"{status.get(key, 0)}/{want} {key}"
    return None


def _old_replicas_left(status: dict, want: int) -> str | None:
    """More pods than wanted: the old ones of a rollout or a scale-down are still terminating."""
    return f"{status.get('replicas')} replicas, old ones still terminating" if status.get("replicas", 0) > want else None


def deployment_ready(obj: dict) -> str | None:
    """Rolled out and available; failed for good once the controller says its progress deadline passed
    (kstatus' Failed, Argo CD's Degraded): waiting out the health timeout would not make it progress."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    if not _observed(obj):
        return "rollout not observed yet"
    progressing = _condition(obj, "Progressing")
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return f"failed: progress deadline exceeded: {progressing.get('message', '')}"
    return (_first_short(status, ("updatedReplicas", "availableReplicas", "readyReplicas"), want)
            or _old_replicas_left(status, want))


def statefulset_ready(obj: dict) -> str | None:
    """Ready on the current revision, as kstatus reads it: with a rolling update's `partition`, once the
    pods at and above it run the update (the ones below it keep the old revision on purpose: a canary)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    if not _observed(obj):
        return "rollout not observed yet"
    if status.get("readyReplicas", 0) < want:
        return f"{status.get('readyReplicas', 0)}/{want} ready"
    if old := _old_replicas_left(status, want):
        return old
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    partition = (strategy.get("rollingUpdate") or {}).get("partition")
    if partition:
        updated = status.get("updatedReplicas", 0)
        return None if updated >= want - partition else f"{updated}/{want - partition} updated above partition {partition}"
    if status.get("updateRevision") != status.get("currentRevision"):
        return "rolling update in progress"
    return None


def daemonset_ready(obj: dict) -> str | None:
    status = obj.get("status") or {}
    want = status.get("desiredNumberScheduled", 0)
    if not _observed(obj):
        return "rollout not observed yet"
    return _first_short(status, ("numberReady", "updatedNumberScheduled", "numberAvailable"), want)


FAILED = ": failed: "
"""How a problem says its object has failed for good (a reason that starts with `failed: `)."""


def job_ready(obj: dict) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Complete" and condition.get("status") == "True":
            return None
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return f"failed: {condition.get('message', '')}"
    return "not complete"


def pod_ready(obj: dict) -> str | None:
    """A bare Pod (kstatus' rules, with a failed Pod failed as Argo CD has it): done once it succeeded, ready
    while Running and Ready, failed at once when it failed or a container is in CrashLoopBackOff. It was read
    by the generic rules, whose `Ready=False` held a Pod that had run to completion until the health timeout."""
    status = obj.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase == "Succeeded":
        return None
    if phase == "Failed":
        return f"failed: {status.get('reason') or 'Failed'}: {status.get('message', '')}".rstrip(": ")
    looping = [c.get("name", "?") for c in status.get("containerStatuses") or []
               if ((c.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"]
    if looping:
        return f"failed: containers in CrashLoopBackOff: {', '.join(looping)}"
    if phase == "Running" and _condition(obj, "Ready").get("status") == "True":
        return None
    return f"phase {phase}, not Ready"


def pvc_ready(obj: dict) -> str | None:
    phase = (obj.get("status") or {}).get("phase")
    return None if phase == "Bound" else f"phase {phase or 'Pending'}"


def awaits_first_consumer(claim: dict, classes: Iterable[dict]) -> bool:
    """A claim whose StorageClass binds `WaitForFirstConsumer` and that no pod has been scheduled with yet (no
    `selected-node`): it binds when its first pod is scheduled, maybe by a stack that depends on this one, so
    waiting for it is a deadlock (Argo CD's and kstatus' Pending claim waits forever, argo-cd#12840). A claim
    without a class name takes the default class."""
    if "volume.kubernetes.io/selected-node" in ((claim.get("metadata") or {}).get("annotations") or {}):
        return False
    wanted = (claim.get("spec") or {}).get("storageClassName")
    for storage_class in classes:
        meta = storage_class.get("metadata") or {}
        default = (meta.get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
        if meta.get("name") == wanted or (wanted is None and default):
            return storage_class.get("volumeBindingMode") == "WaitForFirstConsumer"
    return False


def _storage_classes(cluster: Cluster) -> list[dict]:
    """The cluster's StorageClasses; none where the stack's account may not list them (its claims then wait)."""
    try:
        return cluster.list("storage.k8s.io/v1", "StorageClass")
    except ApiError:
        return []


def crd_ready(obj: dict) -> str | None:
    """Established; failed when the API server refused its names (another CRD has them), as kstatus says."""
    if _condition(obj, "Established").get("status") == "True":
        return None
    names = _condition(obj, "NamesAccepted")
    if names.get("status") == "False":
        return f"failed: names not accepted: {_said(names)}"
    return "not Established"


def namespace_ready(obj: dict) -> str | None:
    phase = (obj.get("status") or {}).get("phase")
    return "terminating" if phase == "Terminating" else None


def _condition(obj: dict, kind: str) -> dict:
    """The status condition of type `kind`, or {} when the object has none."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return {}


def _said(condition: dict) -> str:
    """What a condition says about itself: its message, else its reason."""
    return condition.get("message") or condition.get("reason") or ""


def generic_ready(obj: dict) -> str | None:
    """kstatus' generic rules, for any kind without its own check (custom resources included)."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return f"generation {generation} not observed yet (observed {observed})"
    stalled, reconciling, ready = (_condition(obj, kind) for kind in ("Stalled", "Reconciling", "Ready"))
    if stalled.get("status") == "True":
        return f"stalled: {_said(stalled)}"
    if reconciling.get("status") == "True":
        return f"reconciling: {_said(reconciling)}"
    if ready.get("status") in ("False", "Unknown"):
        return f"not ready: {_said(ready)}"
    return None


CHECKS: dict[tuple[str, str], Callable[[dict], str | None]] = {
    ("apps", "Deployment"): deployment_ready,
    ("apps", "StatefulSet"): statefulset_ready,
    ("apps", "DaemonSet"): daemonset_ready,
    ("batch", "Job"): job_ready,
    ("", "PersistentVolumeClaim"): pvc_ready,
    ("", "Pod"): pod_ready,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd_ready,
    ("", "Namespace"): namespace_ready,
}
"""Kinds with their own readiness rule; every other kind gets generic_ready."""


def _needs_endpoints(obj: dict) -> bool:
    spec = obj.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


def service_problems(slices: Iterable[dict]) -> dict[str, str]:
    """Why each Service named by an EndpointSlice is not ready: its endpoints (the pods it selects that have an
    address) are all unready. A Service with no endpoint at all is ready, as kstatus and Argo CD have it: its
    pods are scaled to zero, or run by a stack that depends on this one (which waited out its health timeout,
    never to start them). A Service without an EndpointSlice yet is not in the answer: the caller says so."""
    endpoints: dict[str, list[bool]] = defaultdict(list)
    for slice_ in slices:
        service = ((slice_.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
        if service:
            endpoints[service] += [bool((e.get("conditions") or {}).get("ready")) for e in slice_.get("endpoints") or []]
    return {service: "" if not ready or any(ready) else f"none of its {len(ready)} endpoint(s) ready"
            for service, ready in endpoints.items()}


def unready(cluster: Cluster, objects: Iterable[K8sObject], selector: str = "",
            rules: HealthRules | None = None) -> list[str]:
    """`kind/namespace/name: why` for every object that is not ready yet. With the `selector` of the
    stack's owner label the reads are those a live cache serves (EndpointSlices are always listed).
    A kind with a health rule is judged by it, even one whose readiness is otherwise its existence."""
    return [f"{oid.kind}/{oid.namespace or '-'}/{oid.name}: {reason}"
            for oid, reason in problems_by_object(cluster, objects, selector, rules)]


def problems_by_object(cluster: Cluster, objects: Iterable[K8sObject], selector: str = "",
                       rules: HealthRules | None = None) -> list[tuple[ObjectId, str]]:
    """(id, why) for every object that is not ready yet, in kind, namespace and name order: what the
    health wait and the status page's object list both read. Objects not named here are ready."""
    rules = rules or HealthRules()
    by_type: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for obj in objects:
        if (obj.id.group, obj.kind) not in _NO_HEALTH or rules.get(obj.id.group, obj.kind):
            by_type[(obj.api_version, obj.kind, obj.id.namespace)].add(obj.id.name)
    problems: list[tuple[ObjectId, str]] = []
    classes: list[dict] | None = None  # StorageClasses, listed once if a claim is not bound
    for (api_version, kind, namespace), names in sorted(by_type.items()):
        group = group_of(api_version)
        live = {o["metadata"]["name"]: o for o in cluster.list(api_version, kind, namespace or None, selector)}
        rule = rules.get(group, kind)
        if kind == "Service" and rule is None:
            wanted = sorted(n for n in names if n in live and _needs_endpoints(live[n]))
            found = service_problems(cluster.list("discovery.k8s.io/v1", "EndpointSlice", namespace)) if wanted else {}
            problems += [(ObjectId(group, kind, namespace, n), found.get(n, "no EndpointSlice yet"))
                         for n in wanted if found.get(n) != ""]
            continue
        check = rule.reason if rule else CHECKS.get((group, kind), generic_ready)
        for name in sorted(names):
            reason = "not found" if name not in live else check(live[name])
            if reason and check is pvc_ready and name in live:
                classes = _storage_classes(cluster) if classes is None else classes
                reason = None if awaits_first_consumer(live[name], classes) else reason
            if reason:
                problems.append((ObjectId(group, kind, namespace, name), reason))
    return problems


def wait_healthy(
    cluster: Cluster,
    objects: list[K8sObject],
    timeout_s: float,
    should_stop: Callable[[], bool] = lambda: False,
    poll_s: float = 1.0,
    selector: str = "",
    rules: HealthRules | None = None,
) -> tuple[bool, str]:
    """Look again until every object is ready, after each watch event when a live cache is attached
    (else with a growing poll delay); (False, what is still unready) on timeout or stop."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        problems = unready(cluster, objects, selector, rules)
        if not problems:
            return True, ""
        failed = [p for p in problems if FAILED in p]
        if failed:  # a failed Job or a failed health rule will not get better by waiting
            return False, "; ".join(failed[:3])
        if should_stop():
            return False, "stopped while waiting for health: " + "; ".join(problems[:3])
        if time.monotonic() >= deadline:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            return False, f"not healthy after {timeout_s:.0f}s: " + "; ".join(problems[:3]) + more
        pause = min(delay, max(0.0, deadline - time.monotonic()))
        if cluster.cache is not None:
            cluster.cache.wait_for_change(pause)  # ends at the next watch event: dependents start right away
        else:
            time.sleep(pause)
        delay = min(delay * 1.5, poll_s)
