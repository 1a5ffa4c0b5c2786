"""Builders for the policy tests: minimal manifests that pass every rule unless told otherwise,
and a policies/ directory in which only the rules under test are enabled.

Not a test module of its own (it holds no tests); named test_policy_* so it lives with them.
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any, Iterable

import yaml

from reconciler.objects import K8sObject
from reconciler.policy import PolicyReport, PolicySet, Violation, evaluate, load_policies
from reconciler.policy.rules import FAMILIES

TODAY = datetime.date(2025, 6, 1)
IMAGE = "ghcr.io/healthflow/prescription:1.4.2"


def obj(manifest: dict[str, Any], stack: str = "application", file: str | None = None) -> K8sObject:
    return K8sObject(manifest=copy.deepcopy(manifest), stack=stack, source_file=file)


def container(name: str = "app", *, image: str = IMAGE, port: int = 8080, probes: bool = True, resources: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "image": image, "ports": [{"name": "http", "containerPort": port}]}
    if probes:
        spec["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}}
        spec["readinessProbe"] = {"httpGet": {"path": "/ready", "port": port}}
    if resources:
        spec["resources"] = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    return spec


def anti_affinity(name: str) -> dict[str, Any]:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}
    ]}}


def deployment(name: str = "prescription", namespace: str = "hf-app", *, replicas: int | None = 3,
               containers: list[dict[str, Any]] | None = None, affinity: bool = True, kind: str = "Deployment",
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    pod_spec: dict[str, Any] = {"containers": containers or [container()]}
    if affinity:
        pod_spec["affinity"] = anti_affinity(name)
    spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": pod_spec}}
    if replicas is not None:
        spec["replicas"] = replicas
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": spec}


def pdb(name: str = "prescription", namespace: str = "hf-app", **bounds: Any) -> dict[str, Any]:
    spec = {"selector": {"matchLabels": {"app.kubernetes.io/name": name}}, **(bounds or {"maxUnavailable": 1})}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def hpa(target: str = "prescription", namespace: str = "hf-app", *, min_replicas: int = 3, max_replicas: int = 6,
        kind: str = "Deployment", name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name or target, "namespace": namespace},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                 "minReplicas": min_replicas, "maxReplicas": max_replicas},
    }


def namespace(name: str = "hf-app", stack: str = "application") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"healthflow.io/stack": stack}}}


def netpol(name: str, namespace: str = "hf-app", *, pods: dict[str, str] | None = None, types: list[str] | None = None,
           ingress: list[dict[str, Any]] | None = None, egress: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": pods} if pods else {}}
    if types is not None:
        spec["policyTypes"] = types
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def default_deny(namespace: str = "hf-app") -> dict[str, Any]:
    return netpol("default-deny", namespace, types=["Ingress", "Egress"])


def ns_peer(namespace: str, pods: dict[str, str] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    if pods:
        peer["podSelector"] = {"matchLabels": pods}
    return peer


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def write_policies(directory: Path, *, enforce: Iterable[str] = (), warn: Iterable[str] = (),
                   settings: dict[str, dict[str, Any]] | None = None, settings_by_env: dict[str, dict[str, Any]] | None = None,
                   exceptions: list[dict[str, Any]] | None = None) -> Path:
    """A policies/ directory: the named rules enforced or warned, every other rule off."""
    directory.mkdir(parents=True, exist_ok=True)
    modes = {**{r: "warn" for r in warn}, **{r: "enforce" for r in enforce}}
    for family in FAMILIES:
        doc: dict[str, Any] = {"rules": {spec.id: {"severity": spec.severity, "mode": modes.get(spec.id, "off")} for spec in family.rules}}
        if settings and family.name in settings:
            doc["settings"] = settings[family.name]
        if settings_by_env and family.name in settings_by_env:
            doc["settings_by_env"] = settings_by_env[family.name]
        if family.name == "exceptions" and exceptions is not None:
            doc["exceptions"] = exceptions
        (directory / family.file_name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


def policies(tmp_path: Path, *rules: str, env: str = "prod", **options: Any) -> PolicySet:
    return load_policies(write_policies(tmp_path / "policies", enforce=rules, **options), env)


def run(manifests: Iterable[dict[str, Any] | K8sObject], policy_set: PolicySet, *, stack: str = "application",
        today: datetime.date = TODAY) -> PolicyReport:
    objects = [m if isinstance(m, K8sObject) else obj(m, stack) for m in manifests]
    stacks: dict[str, list[K8sObject]] = {}
    for o in objects:
        stacks.setdefault(o.stack, []).append(o)
    return evaluate(stacks, policy_set, today)


def summary(violations: Iterable[Violation]) -> list[tuple[str, str, str]]:
    """(rule, object, message) triples: what the specifications assert on."""
    return [(v.rule, v.object, v.message) for v in violations]
