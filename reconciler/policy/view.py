"""An indexed view of one rendered environment, built once per evaluation.

Rules ask the same questions many times (which workloads live in this namespace, which HPA scales
this Deployment, which stack owns this namespace); answering them from one index keeps every rule
linear in the number of objects, so the whole environment is judged in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from reconciler.objects import K8sObject, ObjectId

SCALABLE_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})
"""Kinds with `spec.replicas` that an HPA can scale and that count as multi-replica workloads."""

LONG_RUNNING_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Pod"})
WORKLOAD_KINDS = LONG_RUNNING_KINDS | {"Job", "CronJob"}
METADATA_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Subject:
    """What a violation points at: a stack, an object identity and the repository file if known."""

    stack: str
    object: str
    file: str | None

    @classmethod
    def of(cls, obj: K8sObject) -> "Subject":
        return cls(obj.stack, str(obj.id), obj.source_file)


@dataclass(frozen=True)
class Container:
    name: str
    spec: Mapping[str, Any]
    init: bool
    long_running: bool


@dataclass
class Workload:
    """A pod-producing object with the facts rules need about its pods and its scale."""

    obj: K8sObject
    pod_spec: Mapping[str, Any]
    pod_labels: dict[str, str]
    selector: Mapping[str, Any] | None
    replicas_in_git: int | None
    hpas: list[K8sObject] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.obj.kind

    @property
    def namespace(self) -> str:
        return self.obj.id.namespace

    @property
    def name(self) -> str:
        return self.obj.id.name

    @property
    def scalable(self) -> bool:
        return self.kind in SCALABLE_KINDS

    @property
    def hpa(self) -> K8sObject | None:
        return self.hpas[0] if self.hpas else None

    @property
    def replicas(self) -> int | None:
        """Replicas the workload runs at least: HPA minReplicas when scaled, else spec.replicas (default 1).

        None for a DaemonSet, whose count is the number of matching nodes, unknown before apply.
        """
        if self.hpa is not None:
            return _int((self.hpa.manifest.get("spec") or {}).get("minReplicas"), 1)
        if self.kind == "DaemonSet":
            return None
        if self.kind in SCALABLE_KINDS:
            return self.replicas_in_git if self.replicas_in_git is not None else 1
        if self.kind == "Job":
            return _int((self.obj.manifest.get("spec") or {}).get("parallelism"), 1)
        if self.kind == "CronJob":
            job_spec = ((self.obj.manifest.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
            return _int(job_spec.get("parallelism"), 1)
        return 1

    def containers(self) -> Iterator[Container]:
        """Init containers first (sidecars, `restartPolicy: Always`, run as long as the pod), then app containers."""
        long_running = self.kind in LONG_RUNNING_KINDS
        for spec in self.pod_spec.get("initContainers") or []:
            sidecar = spec.get("restartPolicy") == "Always"
            yield Container(str(spec.get("name", "")), spec, init=True, long_running=long_running and sidecar)
        for spec in self.pod_spec.get("containers") or []:
            yield Container(str(spec.get("name", "")), spec, init=False, long_running=long_running)


@dataclass
class NamespaceInfo:
    name: str
    stack: str
    labels: dict[str, str]
    obj: K8sObject | None

    @property
    def subject(self) -> Subject:
        if self.obj is not None:
            return Subject.of(self.obj)
        return Subject(self.stack, str(ObjectId("", "Namespace", "", self.name)), None)


class EnvironmentView:
    """Every rendered object of an environment, indexed by what the rules look up."""

    def __init__(self, stacks: Mapping[str, Iterable[K8sObject]]) -> None:
        self.stack_names: list[str] = list(stacks)
        self.objects: list[K8sObject] = [obj for objs in stacks.values() for obj in objs]
        self._by_kind: dict[str, list[K8sObject]] = {}
        for obj in self.objects:
            self._by_kind.setdefault(obj.kind, []).append(obj)
        self.namespaces: dict[str, NamespaceInfo] = self._index_namespaces()
        self.workloads: list[Workload] = [w for w in map(_workload, self.objects) if w is not None]
        self._attach_hpas()

    def of_kind(self, kind: str) -> list[K8sObject]:
        return self._by_kind.get(kind, [])

    def workloads_in(self, namespace: str) -> list[Workload]:
        return [w for w in self.workloads if w.namespace == namespace]

    def find(self, kind: str, namespace: str, name: str) -> K8sObject | None:
        for obj in self.of_kind(kind):
            if obj.id.namespace == namespace and obj.id.name == name:
                return obj
        return None

    def stack_of_namespace(self, namespace: str) -> str | None:
        info = self.namespaces.get(namespace)
        return info.stack if info else None

    def _index_namespaces(self) -> dict[str, NamespaceInfo]:
        """A namespace belongs to the stack that renders its Namespace object, else to the first stack using it."""
        index: dict[str, NamespaceInfo] = {}
        for obj in self.of_kind("Namespace"):
            labels = {str(k): str(v) for k, v in ((obj.manifest.get("metadata") or {}).get("labels") or {}).items()}
            labels[METADATA_NAME_LABEL] = obj.id.name
            index[obj.id.name] = NamespaceInfo(obj.id.name, obj.stack, labels, obj)
        for obj in self.objects:
            ns = obj.id.namespace
            if ns and ns not in index:
                index[ns] = NamespaceInfo(ns, obj.stack, {METADATA_NAME_LABEL: ns}, None)
        return index

    def _attach_hpas(self) -> None:
        by_target = {(w.namespace, w.kind, w.name): w for w in self.workloads}
        for hpa in self.of_kind("HorizontalPodAutoscaler"):
            ref = (hpa.manifest.get("spec") or {}).get("scaleTargetRef") or {}
            workload = by_target.get((hpa.id.namespace, str(ref.get("kind", "")), str(ref.get("name", ""))))
            if workload is not None:
                workload.hpas.append(hpa)

    def hpa_target(self, hpa: K8sObject) -> Workload | None:
        ref = (hpa.manifest.get("spec") or {}).get("scaleTargetRef") or {}
        for workload in self.workloads:
            if (workload.namespace, workload.kind, workload.name) == (hpa.id.namespace, ref.get("kind"), ref.get("name")):
                return workload
        return None


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _workload(obj: K8sObject) -> Workload | None:
    """The pod template, labels and scale of a workload kind; None for everything else."""
    if obj.kind not in WORKLOAD_KINDS:
        return None
    spec = obj.manifest.get("spec") or {}
    if obj.kind == "Pod":
        meta = obj.manifest.get("metadata") or {}
        return Workload(obj, spec, _labels(meta), None, None)
    if obj.kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template") or {}
    replicas = spec.get("replicas") if obj.kind in SCALABLE_KINDS else None
    return Workload(
        obj=obj,
        pod_spec=template.get("spec") or {},
        pod_labels=_labels(template.get("metadata") or {}),
        selector=spec.get("selector"),
        replicas_in_git=_int(replicas, 1) if replicas is not None else None,
    )


def _labels(meta: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
