"""Object identity follows the API, not the manifest: a kind's scope decides whether a namespace counts.

kustomize's `namespace:` also sets `metadata.namespace` on cluster-scoped kinds it does not know, and
the API server ignores it there; keyed on the manifest, removing that meaningless field would prune
the very object Git still declares. So a cluster-scoped object's namespace is dropped, and a
namespaced object without one goes to the stack's `defaultNamespace` (or the environment's), else its
stack fails to render with the file and the fix named (nothing of it is applied, nothing pruned).

The scope comes from, in order: a CustomResourceDefinition rendered in the same environment (its
`spec.scope`), API discovery when a cluster is at hand (`discovered`), and the built-in kinds. A
kind none of them knows keeps its identity as written (its apply fails with a clear error anyway).
"""

from __future__ import annotations

from typing import Callable

from reconciler.config import EnvironmentConfig
from reconciler.errors import ManifestError
from reconciler.kube.cluster import Cluster, UnknownKind
from reconciler.objects import CLUSTER_SCOPED_KINDS, K8sObject, group_of

Scope = Callable[[str, str], "bool | None"]
"""(apiVersion, kind) -> namespaced? None when unknown."""

_BUILTIN_GROUPS = {"", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
                   "storage.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "scheduling.k8s.io",
                   "apiextensions.k8s.io", "admissionregistration.k8s.io", "apiregistration.k8s.io",
                   "node.k8s.io", "certificates.k8s.io", "flowcontrol.apiserver.k8s.io", "events.k8s.io"}
_MORE_CLUSTER_SCOPED = {"Node", "CSIDriver", "CSINode", "VolumeAttachment", "RuntimeClass", "CertificateSigningRequest",
                        "FlowSchema", "PriorityLevelConfiguration", "ValidatingAdmissionPolicy",
                        "ValidatingAdmissionPolicyBinding", "ComponentStatus"}


def discovered_scope(cluster: Cluster) -> Scope:
    """Whether the API serves a kind namespaced (None: not served), from the cluster's cached discovery."""
    def namespaced(api_version: str, kind: str) -> bool | None:
        try:
            return cluster.resource(api_version, kind).namespaced
        except UnknownKind:
            return None
    return namespaced


def builtin_scope(api_version: str, kind: str) -> bool | None:
    if group_of(api_version) not in _BUILTIN_GROUPS:
        return None
    return kind not in CLUSTER_SCOPED_KINDS and kind not in _MORE_CLUSTER_SCOPED


def crd_scopes(objects: list[K8sObject]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for every CustomResourceDefinition among `objects`."""
    scopes = {}
    for obj in objects:
        if obj.kind == "CustomResourceDefinition":
            spec = obj.manifest.get("spec") or {}
            kind = str((spec.get("names") or {}).get("kind", ""))
            scopes[(str(spec.get("group", "")), kind)] = spec.get("scope", "Namespaced") == "Namespaced"
    return scopes


def scope_lookup(objects: list[K8sObject], discovered: Scope | None) -> Scope:
    """The scope of each kind, decided once per apiVersion and kind (a render asks for every object)."""
    crds = crd_scopes(objects)
    decided: dict[tuple[str, str], bool | None] = {}

    def namespaced(api_version: str, kind: str) -> bool | None:
        if (api_version, kind) not in decided:
            known = crds.get((group_of(api_version), kind))
            if known is None and discovered is not None:
                known = discovered(api_version, kind)
            decided[(api_version, kind)] = builtin_scope(api_version, kind) if known is None else known
        return decided[(api_version, kind)]
    return namespaced


def scoped_objects(env: EnvironmentConfig, stack: str, objects: list[K8sObject], namespaced: Scope) -> list[K8sObject]:
    """`objects` with identities as the API sees them (new objects where a namespace changes; the
    parsed ones are shared with the render cache and never mutated). ManifestError for a namespaced
    object without a namespace when no default is set."""
    default = env.default_namespace(env.stack(stack))
    out = []
    for obj in objects:
        scope = namespaced(obj.api_version, obj.kind)
        if scope is False and obj.id.namespace:
            obj = _with_namespace(obj, None)
        elif scope is True and not obj.id.namespace:
            if not default:
                raise ManifestError(
                    f"stack {stack!r}: {obj.kind} {obj.id.name!r} ({obj.source_file or 'rendered'}) is namespaced "
                    "but has no namespace", fix="set metadata.namespace, kustomize's `namespace:`, or defaultNamespace "
                                                "on the stack in the environment file")
            obj = _with_namespace(obj, default)
        out.append(obj)
    return out


def _with_namespace(obj: K8sObject, namespace: str | None) -> K8sObject:
    metadata = {k: v for k, v in (obj.manifest.get("metadata") or {}).items() if k != "namespace"}
    if namespace:
        metadata["namespace"] = namespace
    return K8sObject(manifest={**obj.manifest, "metadata": metadata}, stack=obj.stack, source_file=obj.source_file)
