"""Planning one stack: desired objects against live ones, in the fewest API requests.

Live state is read with one label-selected LIST per kind and namespace (none inside a Namespace of the
stack that does not exist); objects are compared locally, and only suspects are confirmed with a
server-side dry-run apply, which also validates them before anything is applied. A steady-state stack
costs its LISTs and nothing more.

A suspect is any of: a field Git sets whose live value differs (diff.compare); a field our field
manager owns that Git no longer sets (fieldset.removed_paths: the next apply removes it); or a
desired manifest whose hash differs from what the stack last applied (a Git change always lands,
even one that normalises to the live value). An object labelled as another environment's is
never taken over unless the stack allows adoption; a custom resource whose CRD neither the cluster
nor this stack defines is an error before anything is applied.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Callable

from reconciler.kube.cluster import FIELD_MANAGER, ApiError, Cluster, UnknownKind
from reconciler.parallel import map_threads
from reconciler.kube.takeover import client_side_fields
from reconciler.pipeline.diff import compare, mask_secret_changes, object_hash, project, secret_view
from reconciler.pipeline.ownership import Ownership, foreign_owner
from reconciler.pipeline.fieldset import MISSING, OwnedPath, lookup, owned_fields, removed_paths
from reconciler.objects import K8sObject, ObjectId
from reconciler.results import Action, FieldChange, ObjectChange

DRY_RUN_PARALLEL = 16
"""Dry-run applies in flight at once per stack: the API server, not this loop, sets the pace."""
LIST_INSTEAD_OF_GETS = 4
"""From this many objects of one kind and namespace missing from the labelled LIST, one unlabelled LIST
replaces their GETs."""

MAX_OBJECT_BYTES = 1024 * 1024
"""ConfigMaps and Secrets may not exceed 1 MiB; other objects are held to etcd's 1.5 MiB request limit."""
_MAX_BYTES_BY_KIND = {"ConfigMap": MAX_OBJECT_BYTES, "Secret": MAX_OBJECT_BYTES}
_MAX_OTHER_BYTES = 3 * MAX_OBJECT_BYTES // 2


@dataclass
class PlannedObject:
    """One desired object with its verdict; `manifest` is what will be applied."""

    obj: K8sObject
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    drift: bool = False  # differs from live although Git did not change it since the last apply
    conflict: str = ""  # another field manager owns a field we set
    error: str = ""  # the server rejected it in dry-run (invalid, immutable field, ...), or it is not ours to take
    immutable: bool = False
    reapply: bool = False  # Git changed it but live already matches: applied (to own exactly Git's fields), not reported
    removed: list[OwnedPath] = field(default_factory=list)  # fields we own that Git no longer sets
    taken_over: list[OwnedPath] = field(default_factory=list)  # fields client-side kubectl apply set that Git does not
    takeover: bool = False  # client-side `kubectl apply` owns fields: taken over before our apply (kube.takeover)
    live: dict | None = None  # the live object, kept while the change waits to be confirmed by its own apply
    confirm_at_apply: bool = False  # the stack's one change: its apply is its dry run (`write_single`)
    written: bool = False  # applied while being confirmed
    sent: bool = False  # an apply (not a dry run) went out: the object may exist now, whatever the answer
    awaits_namespace: bool = False  # new, in a Namespace this stack creates: dry-run once that Namespace is applied
    locate: Callable[[ObjectId], str | None] | None = field(default=None, repr=False, compare=False)
    # where its file is, when the render could not say (asked only for an error message: `pipeline.locate`)

    def change(self) -> ObjectChange:
        return ObjectChange(id=self.obj.id, action=self.action, fields=self.fields, source_file=self.obj.source_file)

    @property
    def where(self) -> str:
        source = self.obj.source_file or (self.locate(self.obj.id) if self.locate else None)
        return f"{self.obj.id} ({source})" if source else str(self.obj.id)


def never_created(planned: list[PlannedObject]) -> set[str]:
    """Objects the plan found absent and no apply was sent for: they cannot exist, so a failed stack does not
    take them into its record (else the next pass would report pruning what never was)."""
    return {str(p.obj.id) for p in planned if p.action is Action.CREATE and not p.sent}


def _live_objects(cluster: Cluster, objects: list[K8sObject], selector: str) -> dict[ObjectId, dict]:
    """The live object of each desired one that exists, labelled as ours or not. The stack's Namespaces are
    looked up first: in one that does not exist no object can exist either (the API server keeps a
    Namespace until everything in it is gone), so nothing is read there. A first sync into a Namespace of
    its own then costs two reads, not a labelled LIST and an unlabelled LIST or GETs for every kind."""
    namespaces = [o for o in objects if o.kind == "Namespace" and o.id.group == ""]
    found = _labelled_or_not(cluster, namespaces, selector)
    absent = {o.id.name for o in namespaces if o.id not in found}
    looked_up = {o.id for o in namespaces}
    found.update(_labelled_or_not(cluster, [o for o in objects if o.id not in looked_up
                                            and o.id.namespace not in absent], selector))
    return found


def _labelled_or_not(cluster: Cluster, objects: list[K8sObject], selector: str) -> dict[ObjectId, dict]:
    """Each of `objects` that is live: by the labelled LIST, else by an unlabelled lookup."""
    live = _live_by_name(cluster, objects, selector)
    return {**_unlabelled_by_name(cluster, [o for o in objects if o.id not in live]), **live}


def _live_by_name(cluster: Cluster, objects: list[K8sObject], selector: str) -> dict[ObjectId, dict]:
    groups: dict[tuple[str, str, str], list[K8sObject]] = defaultdict(list)
    for obj in objects:
        groups[(obj.api_version, obj.kind, obj.id.namespace)].append(obj)
    live: dict[ObjectId, dict] = {}
    for (api_version, kind, namespace), members in sorted(groups.items()):
        try:
            items = cluster.list(api_version, kind, namespace or None, label_selector=selector)
        except UnknownKind:
            continue  # defined by a CRD of this same stack (checked at dry-run), or by none
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


def crd_kinds(objects: list[K8sObject]) -> set[tuple[str, str]]:
    """(group, kind) of every custom resource a CRD of this stack defines."""
    kinds = set()
    for obj in objects:
        if obj.kind == "CustomResourceDefinition":
            spec = obj.manifest.get("spec") or {}
            kinds.add((str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", ""))))
    return kinds


def confirm(cluster: Cluster, planned: PlannedObject, live: dict | None, force: bool,
            stack_crds: set[tuple[str, str]], write: bool = False) -> None:
    """Dry-run apply: validates the object and turns a suspect into a confirmed change, or clears it.
    `write`: the apply itself, judged as its dry run would be (`planned.written` when it was accepted)."""
    planned.sent = planned.sent or write
    try:
        result = cluster.apply(planned.obj.manifest, dry_run=not write, force=force, body=planned.obj.encoded(),
                               answer=live is not None)  # read only to compare with what is live
        planned.written = write
    except UnknownKind as exc:
        if (planned.obj.id.group, planned.obj.kind) not in stack_crds:
            planned.error = (f"{exc.message}, and no CustomResourceDefinition in this stack defines it "
                             f"(fix: add the CRD to this stack or to a stack it dependsOn, or correct apiVersion/kind)")
        return
    except ApiError as exc:
        if exc.status == 409:
            planned.conflict = _conflict_text(exc)
            return
        if exc.status == 404 and planned.action is Action.CREATE:
            return  # its namespace is created by this same pass
        if exc.status == 403:
            planned.error = exc.message + (" (fix: grant the stack's service account this access, or move the object "
                                           "where the account may write)")
            return
        planned.immutable = exc.status == 422 and "immutable" in exc.message
        planned.error = exc.message + (" (fix: revert the change, or set recreateOnImmutable: true on the stack to "
                                       "delete and re-create the object)" if planned.immutable else "")
        return
    if live is None:
        return
    shape = secret_view(planned.obj.manifest) if planned.obj.kind == "Secret" else planned.obj.manifest
    projected = project(shape, result)
    projected.update({k: planned.obj.manifest[k] for k in ("apiVersion", "kind") if k in planned.obj.manifest})
    confirmed = _field_changes(planned.obj.manifest, projected, live, planned.removed, result, planned.taken_over)
    planned.fields = confirmed
    if not confirmed:
        planned.action = Action.UNCHANGED


def _field_changes(manifest: dict, desired: dict, live: dict, removed: list[OwnedPath],
                   after: dict | None, taken_over: list[OwnedPath] = ()) -> list[FieldChange]:
    """Fields `desired` sets whose live value differs, then owned fields Git dropped that the apply
    changes (`after`: the dry-run result, None before it), then fields client-side kubectl apply set
    that Git does not (a dry run cannot show their removal: the takeover happens at apply), each path once."""
    changes = compare(desired, live)
    seen = {change.path for change in changes}
    extra = _removals(manifest, removed, live, after) + _removals(manifest, list(taken_over), live, None)
    for change in extra:
        if change.path not in seen:
            seen.add(change.path)
            changes.append(change)
    return changes


def _removals(manifest: dict, removed: list[OwnedPath], live: dict, after: dict | None) -> list[FieldChange]:
    """Owned fields Git dropped whose value the apply changes (gone, or back to a server default)."""
    changes = []
    for owned in removed:
        before = lookup(live, owned.steps)
        now = lookup(after, owned.steps) if after is not None else MISSING
        if before is MISSING or now == before:
            continue
        changes.append(FieldChange(owned.path, None if now is MISSING else now, before))
    return mask_secret_changes(manifest, changes)


def _desired_view(manifest: dict) -> dict:
    """What we own after applying `manifest`: for Secrets, `stringData` keys are also `data` keys."""
    if manifest.get("kind") != "Secret" or not manifest.get("stringData"):
        return manifest
    view = dict(manifest)
    view["data"] = {**(manifest.get("data") or {}), **manifest["stringData"]}
    return view


def _too_large(obj: K8sObject) -> str:
    size = len(obj.encoded())
    limit = _MAX_BYTES_BY_KIND.get(obj.kind, _MAX_OTHER_BYTES)
    if size <= limit:
        return ""
    return (f"object is {size} bytes, over the {limit} bytes Kubernetes accepts for a {obj.kind} "
            f"(fix: split it into smaller objects, or mount large files from a volume)")


def _plan_existing(obj: K8sObject, current: dict, previous_hash: str | None, owner: Ownership) -> PlannedObject:
    """The verdict on an object that exists. One whose manifest (the owned object, which lives as long as its
    render), live version and recorded hash are those it was last planned with gets that plan's verdict
    again, kept in the object's memo: a push changes one object of a fleet stack's eleven, and planning the
    other ten anew was about a tenth of a daemon's CPU. A live object's content is fixed by its uid and
    resourceVersion."""
    meta = current.get("metadata") or {}
    key = (meta.get("uid"), meta.get("resourceVersion"), previous_hash, owner)
    known = obj.memo.get("plan")
    if known is not None and known[0] == key and key[1]:
        return _copied(known[1])
    entry = _plan_existing_anew(obj, current, previous_hash, owner)
    obj.memo["plan"] = (key, _copied(entry))
    return entry


def _copied(entry: PlannedObject) -> PlannedObject:
    """A verdict of its own to change (a dry run or the apply settles it further)."""
    return replace(entry, fields=list(entry.fields), removed=list(entry.removed), taken_over=list(entry.taken_over))


def _plan_existing_anew(obj: K8sObject, current: dict, previous_hash: str | None, owner: Ownership) -> PlannedObject:
    foreign = foreign_owner(current, owner.env)
    if foreign and not owner.allow_adoption:
        return PlannedObject(obj, Action.UPDATE, error=(
            f"owned by environment {foreign!r}; not taken over (fix: render it in one environment only, or set "
            f"allowAdoption: true on stack {owner.stack!r} to take it over)"))
    removed = removed_paths(owned_fields(current, FIELD_MANAGER), _desired_view(obj.manifest))
    client_side = client_side_fields(current)
    ours = {r.path for r in removed}
    taken = [p for p in removed_paths(client_side, _desired_view(obj.manifest)) if p.path not in ours]
    fields = _field_changes(obj.manifest, obj.manifest, current, removed, None, taken)
    entry = PlannedObject(obj, Action.UPDATE if fields else Action.UNCHANGED, fields, removed=removed,
                          taken_over=taken, takeover=bool(client_side))
    entry.reapply = not fields and (entry.takeover or previous_hash is not None and
                                    previous_hash != object_hash(obj, owner.hash_key))
    return entry


def plan_stack(
    cluster: Cluster,
    objects: list[K8sObject],
    selector: str,
    previous_hashes: dict[str, str],
    *,
    force: bool,
    owner: Ownership,
    write_single: bool = False,
) -> list[PlannedObject]:
    """Classify every desired object as create / update / unchanged (prunes are the caller's). Suspects
    are confirmed by dry-runs in parallel (a first sync of a thousand objects is a thousand dry-runs),
    except new objects in a Namespace this stack creates: the server could only answer that the
    namespace is not found, so they are marked `awaits_namespace`, and a sync dry-runs them after
    applying that Namespace (`apply.apply_planned`, as Flux stages Namespaces); a plan leaves them
    unconfirmed. `write_single` (a sync, not a plan): a stack's only suspect, when
    `_confirmed_by_its_apply`, is left for `apply.apply_planned` to confirm by applying it."""
    found = _live_objects(cluster, objects, selector)
    stack_crds = crd_kinds(objects)
    planned: list[PlannedObject] = []
    suspects: list[tuple[PlannedObject, dict | None]] = []
    for obj in objects:
        current = found.get(obj.id)
        if current is None:
            entry = PlannedObject(obj, Action.CREATE)
        else:
            entry = _plan_existing(obj, current, previous_hashes.get(str(obj.id)), owner)
        entry.error = entry.error or _too_large(obj)
        if not entry.error and (entry.action is not Action.UNCHANGED or entry.reapply):
            suspects.append((entry, current))
        planned.append(entry)
    new_namespaces = {e.obj.id.name for e in planned if e.obj.kind == "Namespace" and e.action is Action.CREATE}
    for entry, _current in suspects:
        entry.awaits_namespace = entry.action is Action.CREATE and entry.obj.id.namespace in new_namespaces
    suspects = [(entry, current) for entry, current in suspects if not entry.awaits_namespace]
    if write_single and len(suspects) == 1 and _confirmed_by_its_apply(*suspects[0], previous_hashes, owner):
        suspects[0][0].confirm_at_apply, suspects[0][0].live = True, suspects[0][1]
        suspects = []
    map_threads(lambda suspect: confirm(cluster, suspect[0], suspect[1], force, stack_crds), suspects,
                DRY_RUN_PARALLEL, "dry-run")
    for entry in planned:
        if entry.action is Action.UPDATE:
            entry.drift = is_drift(previous_hashes.get(str(entry.obj.id)), entry.obj, owner.hash_key)
    return planned


def unchecked_note(planned: list[PlannedObject]) -> str:
    """What a plan says of the objects it could not dry-run (`awaits_namespace`): '' when there are none.
    Said, so that a plan that shows them as creates is never read as "the server accepted them"."""
    waiting = [p for p in planned if p.awaits_namespace]
    if not waiting:
        return ""
    namespaces = ", ".join(sorted({p.obj.id.namespace or "" for p in waiting}))
    return (f"{len(waiting)} new object(s) in Namespace {namespaces} not dry-run: the server checks them when a "
            "sync has created the Namespace, before applying any of them")


def _confirmed_by_its_apply(entry: PlannedObject, current: dict | None, previous_hashes: dict[str, str],
                            owner: Ownership) -> bool:
    """Whether the stack's one change may skip its dry run: the server validates a single apply as it
    validates the dry run, and no other object of the stack is written, so a rejected change still
    leaves nothing applied; the answer is judged as the dry run's would be. Only a Git change to an
    existing object that needs no takeover and is no CRD (a drift is confirmed first: a detect-only
    environment must not report a server default as drift). Saves a request per stack on a push."""
    previous = previous_hashes.get(str(entry.obj.id))
    return (entry.action is Action.UPDATE and current is not None and not entry.takeover and not entry.reapply
            and entry.obj.kind != "CustomResourceDefinition" and previous is not None
            and previous != object_hash(entry.obj, owner.hash_key))


def is_drift(recorded: str | None, obj: K8sObject, hash_key: bytes) -> bool:
    """A live difference is drift when Git did not change the object since its last apply: its recorded
    hash is the desired one, or unknown ('' after an inventory rebuild): unknown is never taken for a Git
    change, so detect-only mode never reverts what it cannot tell apart from drift."""
    return recorded == "" or recorded == object_hash(obj, hash_key)


def _unlabelled_by_name(cluster: Cluster, missing: list[K8sObject]) -> dict[ObjectId, dict]:
    """Objects missing from the labelled LIST may still exist (made by hand, by an older tool, by another
    stack it moved from, or by another environment). A few are looked up one GET each; where many of
    one kind and namespace are missing (a first sync), one unlabelled LIST proves absence for all."""
    groups: dict[tuple[str, str, str], list[K8sObject]] = defaultdict(list)
    for obj in missing:
        groups[(obj.api_version, obj.kind, obj.id.namespace)].append(obj)
    found: dict[ObjectId, dict] = {}
    for (api_version, kind, namespace), members in sorted(groups.items()):
        if len(members) < LIST_INSTEAD_OF_GETS:
            found.update({m.id: live for m in members if (live := _get_unlabelled(cluster, m)) is not None})
            continue
        try:
            items = cluster.list_with_version(api_version, kind, namespace or None)[0]
        except (UnknownKind, ApiError):
            found.update({m.id: live for m in members if (live := _get_unlabelled(cluster, m)) is not None})
            continue
        by_name = {item["metadata"]["name"]: item for item in items}
        found.update({m.id: by_name[m.id.name] for m in members if m.id.name in by_name})
    return found


def _get_unlabelled(cluster: Cluster, obj: K8sObject) -> dict | None:
    """An object missing from the labelled LIST may still exist (made by hand, by an older tool, by another
    stack it moved from, or by another environment)."""
    try:
        return cluster.get(obj.api_version, obj.kind, obj.id.namespace, obj.id.name)
    except UnknownKind:
        return None
