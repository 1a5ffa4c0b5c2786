"""Every kind the API server can list, and every object of them carrying a label.

Used where the reconciler cannot know the kinds in advance: rebuilding a lost inventory from the
owner labels on live objects. One discovery document per group (cached by the Cluster's caller
for the process) and one labelled LIST per kind; rare, so simple beats clever here.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.errors import ClusterError
from reconciler.kube.cluster import ApiError, Cluster, UnknownKind
from reconciler.objects import ObjectId, group_of

_NOT_SCANNED = {("v1", "Event"), ("events.k8s.io/v1", "Event")}  # never applied by anyone's Git


@dataclass(frozen=True)
class Labelled:
    id: ObjectId
    labels: dict[str, str]


def preferred_version(cluster: Cluster, group: str) -> str | None:
    """`group/version` the server prefers for a group (for objects known only by group and kind), or
    None when the server does not serve the group at all (its CRD is gone)."""
    try:
        listing = cluster.discovery_document(f"/apis/{group}")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return str((listing.get("preferredVersion") or {}).get("groupVersion") or f"{group}/v1")


def listable_kinds(cluster: Cluster) -> list[tuple[str, str, bool]]:
    """(apiVersion, kind, namespaced) of every listable resource, at each group's preferred version."""
    versions = ["v1"]
    groups = cluster.discovery_document("/apis").get("groups") or []
    versions += [g["preferredVersion"]["groupVersion"] for g in groups if g.get("preferredVersion")]
    kinds = []
    for api_version in versions:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            resources = cluster.discovery_document(path).get("resources") or []
        except ApiError as exc:
            if exc.status == 404:
                continue  # removed between the two reads: nothing is left of it
            raise ClusterError(f"cannot rebuild the inventory: discovery of {api_version} failed ({exc.message})",
                               fix=f"bring the API of {api_version} back (an aggregated API that is down?), or delete "
                                   "its APIService if it is gone for good; objects of a kind never listed are never "
                                   "pruned") from exc
        kinds += [(api_version, r["kind"], bool(r.get("namespaced"))) for r in resources
                  if "/" not in r["name"] and "list" in (r.get("verbs") or [])
                  and (api_version, r["kind"]) not in _NOT_SCANNED]
    return kinds


def find_labelled(cluster: Cluster, selector: str, namespaces: set[str] = frozenset(),
                  kinds: list[tuple[str, str, bool]] | None = None) -> list[Labelled]:
    """Every live object of any kind matching `selector`: one LIST per kind across the cluster, or, where
    that is forbidden (an account bound to some namespaces only), one per kind in each of `namespaces`.
    `kinds`: from `listable_kinds`, when the caller scans more than once."""
    found = []
    for api_version, kind, namespaced in kinds if kinds is not None else listable_kinds(cluster):
        for items in _labelled_items(cluster, api_version, kind, namespaced, selector, namespaces):
            for item in items:
                meta = item.get("metadata") or {}
                oid = ObjectId(group_of(api_version), kind, meta.get("namespace") or "", meta.get("name") or "")
                found.append(Labelled(oid, dict(meta.get("labels") or {})))
    return found


def _labelled_items(cluster: Cluster, api_version: str, kind: str, namespaced: bool, selector: str,
                    namespaces: set[str]) -> list[list[dict]]:
    try:
        return [cluster.list_with_version(api_version, kind, None, selector)[0]]
    except UnknownKind:
        return []  # its CRD was removed after `kinds` was read (another environment's, mid-scan): nothing left
    except ApiError as exc:
        if exc.status == 404 or exc.status == 403 and not namespaced:
            return []  # gone, or forbidden: this kind cannot hold anything this account could prune either
        if exc.status != 403:
            raise _unlisted(api_version, kind, exc) from exc
    pages = []
    for namespace in sorted(namespaces):
        try:
            pages.append(cluster.list_with_version(api_version, kind, namespace, selector)[0])
        except ApiError as exc:
            if exc.status not in (403, 404):
                raise _unlisted(api_version, kind, exc) from exc
    return pages


def _unlisted(api_version: str, kind: str, exc: ApiError) -> ClusterError:
    """A kind that cannot be listed is not 'nothing there': a rebuild that went on would never prune it."""
    return ClusterError(f"cannot rebuild the inventory: listing {kind} ({api_version}) failed: {exc.message}",
                        fix="retry when the API server answers; nothing was pruned or applied")
