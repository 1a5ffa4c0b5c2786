"""Planning one stack: desired objects against live ones, in the fewest API requests.

Live state is read with one label-selected LIST per kind and namespace; objects are compared
locally (diff.compare), and only suspects are confirmed with a server-side dry-run apply, which
also validates them before anything is applied. A steady-state stack costs its LISTs and nothing
more.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from reconciler.cluster import ApiError, Cluster, UnknownKind
from reconciler.diff import compare, desired_hash, project, secret_view
from reconciler.objects import K8sObject, ObjectId
from reconciler.results import Action, FieldChange, ObjectChange


@dataclass
class PlannedObject:
    """One desired object with its verdict; `manifest` is what will be applied."""

    obj: K8sObject
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    drift: bool = False  # differs from live although Git did not change it since the last apply
    conflict: str = ""  # another field manager owns a field we set
    error: str = ""  # the server rejected it in dry-run (invalid, immutable field, ...)
    immutable: bool = False

    def change(self) -> ObjectChange:
        return ObjectChange(id=self.obj.id, action=self.action, fields=self.fields, source_file=self.obj.source_file)


def _live_by_name(cluster: Cluster, objects: list[K8sObject], selector: str) -> dict[ObjectId, dict]:
    groups: dict[tuple[str, str, str], list[K8sObject]] = defaultdict(list)
    for obj in objects:
        groups[(obj.api_version, obj.kind, obj.id.namespace)].append(obj)
    live: dict[ObjectId, dict] = {}
    for (api_version, kind, namespace), members in sorted(groups.items()):
        try:
            items = cluster.list(api_version, kind, namespace or None, label_selector=selector)
        except UnknownKind:
            continue  # defined by a CRD of this same stack: every such object is a create
        except ApiError as exc:
            if exc.status == 404:
                continue
            raise
        names = {m.id.name for m in members}
        for item in items:
            name = item["metadata"]["name"]
            if name in names:
                live[ObjectId(members[0].id.group, kind, namespace, name)] = item
    return live


def _conflict_text(exc: ApiError) -> str:
    return "; ".join(exc.causes) or exc.message


def _confirm(cluster: Cluster, planned: PlannedObject, live: dict | None, force: bool) -> None:
    """Dry-run apply: validates the object and turns a suspect into a confirmed change, or clears it."""
    try:
        result = cluster.apply(planned.obj.manifest, dry_run=True, force=force)
    except UnknownKind:
        return
    except ApiError as exc:
        if exc.status == 409:
            planned.conflict = _conflict_text(exc)
            return
        if exc.status == 404 and planned.action is Action.CREATE:
            return  # its namespace is created by this same pass
        planned.immutable = exc.status == 422 and "immutable" in exc.message
        planned.error = exc.message
        return
    if live is None:
        return
    shape = secret_view(planned.obj.manifest) if planned.obj.kind == "Secret" else planned.obj.manifest
    projected = project(shape, result)
    projected.update({k: planned.obj.manifest[k] for k in ("apiVersion", "kind") if k in planned.obj.manifest})
    confirmed = compare(projected, live)
    if not confirmed:
        planned.action = Action.UNCHANGED
        planned.fields = []
    else:
        planned.fields = confirmed


def plan_stack(
    cluster: Cluster,
    objects: list[K8sObject],
    selector: str,
    previous_hashes: dict[str, str],
    *,
    force: bool,
) -> list[PlannedObject]:
    """Classify every desired object as create / update / unchanged (prunes are the caller's)."""
    live = _live_by_name(cluster, objects, selector)
    planned: list[PlannedObject] = []
    for obj in objects:
        current = live.get(obj.id)
        if current is None:
            current = _get_unlabelled(cluster, obj)
        if current is None:
            entry = PlannedObject(obj, Action.CREATE)
        else:
            fields = compare(obj.manifest, current)
            entry = PlannedObject(obj, Action.UPDATE if fields else Action.UNCHANGED, fields)
        if entry.action is not Action.UNCHANGED:
            _confirm(cluster, entry, current, force)
        if entry.action is Action.UPDATE:
            entry.drift = previous_hashes.get(str(obj.id)) == desired_hash(obj.manifest)
        planned.append(entry)
    return planned


def _get_unlabelled(cluster: Cluster, obj: K8sObject) -> dict | None:
    """An object missing from the labelled LIST may still exist (made by hand, or by an older tool)."""
    try:
        return cluster.get(obj.api_version, obj.kind, obj.id.namespace, obj.id.name)
    except UnknownKind:
        return None
