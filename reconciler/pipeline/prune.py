"""Deleting what a stack no longer wants, and nothing else.

Prune deletes only what the stack's inventory lists *and* the live object's owner label confirms,
in reverse apply order. Namespaces and CRDs need the stack's `pruneNamespaces`; an object annotated
`reconciler.healthflow.io/prune: disabled` is left in place (as Flux's `kustomize.toolkit.fluxcd.io/prune`).
"""

from __future__ import annotations

from reconciler.kube.cluster import Cluster, UnknownKind
from reconciler.kube.discovery import preferred_version as group_preferred_version
from reconciler.objects import ObjectId, apply_rank
from reconciler.results import ObjectChange
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
        live = live_object(cluster, oid, api_version)
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


def preferred_version(cluster: Cluster, oid: ObjectId) -> str | None:
    """The inventory stores group/kind, not the version; use the group's preferred version (None: the
    group is not served)."""
    if oid.group in _PREFERRED:
        return _PREFERRED[oid.group]
    return group_preferred_version(cluster, oid.group)


def live_object(cluster: Cluster, oid: ObjectId, api_version: str | None = None) -> dict | None:
    """The live object known by group and kind, or None when it does not exist, including when the API
    no longer serves its kind (an object whose kind is gone is gone)."""
    api_version = api_version or preferred_version(cluster, oid)
    if api_version is None:
        return None
    try:
        return cluster.get(api_version, oid.kind, oid.namespace, oid.name)
    except UnknownKind:
        return None


def kind_served(cluster: Cluster, oid: ObjectId) -> bool:
    api_version = preferred_version(cluster, oid)
    if api_version is None:
        return False
    try:
        cluster.resource(api_version, oid.kind)
        return True
    except UnknownKind:
        return False


def without_unserved(cluster: Cluster, prunes: list[ObjectChange]) -> tuple[list[ObjectChange], list[ObjectChange]]:
    """(prune candidates whose kind the API still serves, the others: already deleted, their CRD is gone).
    Discovery is asked once per group and kind."""
    served: dict[tuple[str, str], bool] = {}
    kept, gone = [], []
    for change in prunes:
        key = (change.id.group, change.id.kind)
        if key not in served:
            served[key] = kind_served(cluster, change.id)
        (kept if served[key] else gone).append(change)
    return kept, gone


def gone_note(gone: list[ObjectChange]) -> str:
    """The one line a stack's result says about candidates whose kind is no longer served ('' for none)."""
    if not gone:
        return ""
    kinds = ", ".join(sorted({f"{c.id.kind}" + (f".{c.id.group}" if c.id.group else "") for c in gone}))
    return (f"{len(gone)} object(s) treated as already deleted: the API no longer serves {kinds}; "
            "dropped from the inventory")
