"""Deleting what a stack no longer wants, and nothing else.

Prune deletes only what the stack's inventory lists *and* the live object's owner label confirms,
in reverse apply order. Namespaces and CRDs need the stack's `pruneNamespaces`; an object annotated
`reconciler.healthflow.io/prune: disabled` is left in place (as Flux's `kustomize.toolkit.fluxcd.io/prune`).
"""

from __future__ import annotations

from reconciler.kube.cluster import Cluster
from reconciler.objects import ObjectId, apply_rank
from reconciler.pipeline.ownership import OWNER_LABEL

NEVER_PRUNED_WITHOUT_OPT_IN = {"Namespace", "CustomResourceDefinition"}
"""Kinds prune leaves unless the stack sets `pruneNamespaces` (a preview names them as kept)."""
PRUNE_ANNOTATION = "reconciler.healthflow.io/prune"
"""`disabled` on an object keeps it in the cluster when Git drops it."""


def prune_objects(cluster: Cluster, ids: list[ObjectId], selector: str, *,
                  allow_namespaces: bool) -> tuple[int, list[str]]:
    """Delete inventory objects no longer in Git, in reverse apply order; (deleted, skipped reasons)."""
    owner = selector.split("=", 1)[1]
    deleted, skipped = 0, []
    for oid in sorted(ids, key=lambda i: (apply_rank(i.kind), i), reverse=True):
        if oid.kind in NEVER_PRUNED_WITHOUT_OPT_IN and not allow_namespaces:
            skipped.append(f"{oid} (set pruneNamespaces: true on the stack to prune {oid.kind}s)")
            continue
        api_version = preferred_version(cluster, oid)
        live = cluster.get(api_version, oid.kind, oid.namespace, oid.name)
        if live is None:
            continue
        labels = (live.get("metadata") or {}).get("labels") or {}
        if labels.get(OWNER_LABEL) != owner:
            skipped.append(f"{oid} (not labelled as ours)")
            continue
        if ((live.get("metadata") or {}).get("annotations") or {}).get(PRUNE_ANNOTATION) == "disabled":
            skipped.append(f"{oid} (annotated {PRUNE_ANNOTATION}: disabled, left in place)")
            continue
        cluster.delete(api_version, oid.kind, oid.namespace, oid.name)
        deleted += 1
    return deleted, skipped


_PREFERRED = {"": "v1", "apps": "apps/v1", "batch": "batch/v1", "networking.k8s.io": "networking.k8s.io/v1",
              "policy": "policy/v1", "autoscaling": "autoscaling/v2", "rbac.authorization.k8s.io":
              "rbac.authorization.k8s.io/v1", "storage.k8s.io": "storage.k8s.io/v1",
              "apiextensions.k8s.io": "apiextensions.k8s.io/v1", "coordination.k8s.io": "coordination.k8s.io/v1",
              "scheduling.k8s.io": "scheduling.k8s.io/v1", "discovery.k8s.io": "discovery.k8s.io/v1"}


def preferred_version(cluster: Cluster, oid: ObjectId) -> str:
    """The inventory stores group/kind, not the version; use the group's preferred version."""
    if oid.group in _PREFERRED:
        return _PREFERRED[oid.group]
    return cluster.preferred_version(oid.group)
