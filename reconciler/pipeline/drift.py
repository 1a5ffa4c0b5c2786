"""Drift: live state against what each stack *last applied* (its recorded commit, rendered again).

Modified fields (ours, changed or removed in the cluster), missing objects, and objects still
labelled ours that Git no longer has. A newer commit not yet applied is pending work, not drift.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.errors import SourceError
from reconciler.objects import K8sObject, ObjectId
from reconciler.kube.lease import LeaseHeld
from reconciler.pipeline.apply import apply_planned
from reconciler.pipeline.context import EngineView
from reconciler.pipeline.fetchmemo import Moment
from reconciler.pipeline.inventory import Inventory, StackRecord, now_iso
from reconciler.pipeline.ownership import OWNER_LABEL, owner_label_value
from reconciler.pipeline.plan import PlannedObject, plan_stack
from reconciler.pipeline.prune import live_object
from reconciler.pipeline.rendered import RenderedEnv
from reconciler.pipeline.stages import settled
from reconciler.pipeline.windows import hold
from reconciler.results import Action, CommitInfo, DriftItem, DriftKind, DriftReport


def detect_drift(engine: EngineView, asked: Moment | None = None) -> DriftReport:
    """The drift report of the engine's environment; remembers when each drifted object was first seen.
    A stack a pass found clean, untouched since but by our own writes (`stages.settled`), is not planned
    again: with the live cache, the drift check after a pass plans only what moved, and reads the pass's
    inventory instead of the API server's. `asked`: since when the branch head is wanted (default now);
    the daemon's check after a pass asks as of the pass's trigger, so the look at the remote the pass
    made (or any made since, `fetchmemo`) answers it: a `git ls-remote` per environment after each pass of a push was
    1.9% of a fleet replica's Python time, under the mirror's lock, beside the processes' own CPU."""
    inventory = engine.memory.take_inventory() or engine.load_inventory(create=False)
    head = engine.follow_head(asked)
    report = DriftReport(env=engine.env.name, commit=head.sha)
    first_seen = inventory.drift_first_seen()
    seen_now: dict[str, str] = {}
    renders: dict[str, RenderedEnv] = {}
    ctx = engine.context(engine.env)
    for stack in engine.env.stacks:
        record = inventory.record(stack.name)
        if record.commit is None:
            continue
        if record.commit not in renders:
            renders[record.commit] = _rendered_at(engine, record.commit, head)
        rendered = renders[record.commit]
        if settled(ctx.live, ctx.settled.get(stack.name), rendered.objects.get(stack.name, []), record,
                   rendered.digests.get(stack.name), owner_label_value(engine.env.name, stack.name)):
            continue  # a pass found it clean and no watch event but our own writes touched it since
        objects = [engine.owned(o) for o in rendered.objects.get(stack.name, [])]
        for item in _stack_drift(engine, stack.name, objects, record):
            key = str(item.id)
            seen_now[key] = first_seen.get(key, now_iso())
            item.first_seen = datetime.fromisoformat(seen_now[key])
            report.items.append(item)
    inventory.save_drift_first_seen(seen_now)
    return report


def _rendered_at(engine: EngineView, sha: str, head: CommitInfo) -> RenderedEnv:
    """The render of a commit a stack applied: the engine's memo (after a pass, the pass's own render)."""
    try:
        return engine.rendered_at(sha)
    except SourceError:
        return engine.render(head, discover=True)  # the applied commit is gone from the remote (force-push)


def _stack_drift(engine: EngineView, stack: str, objects: list[K8sObject], record: StackRecord) -> list[DriftItem]:
    items = []
    planned = plan_stack(engine.cluster_for(stack), objects, engine.selector(stack), record.objects, force=False,
                         owner=engine.ownership(stack))
    for entry in planned:
        if entry.error:
            continue
        if entry.action is Action.CREATE:
            items.append(DriftItem(stack, entry.obj.id, DriftKind.MISSING))
        elif entry.action is Action.UPDATE:
            items.append(DriftItem(stack, entry.obj.id, DriftKind.MODIFIED, entry.fields))
    wanted = {str(o.id) for o in objects}
    cluster = engine.cluster_for(stack)
    for extra in sorted(set(record.objects) - wanted):
        oid = ObjectId.parse(extra)
        live = live_object(cluster, oid)
        labels = ((live or {}).get("metadata") or {}).get("labels") or {}
        if labels.get(OWNER_LABEL) == owner_label_value(engine.env.name, stack):
            items.append(DriftItem(stack, oid, DriftKind.UNMANAGED))
    return items


def object_drift(engine: EngineView, oid: ObjectId) -> tuple[str | None, list[DriftItem], PlannedObject | None]:
    """Drift of one managed object against what its stack last applied: (stack, items, the planned entry).

    One inventory GET, the render of the recorded commit (kept in memory), and at most one dry-run apply
    when the object looks changed; the LIST is the live cache's."""
    return _object_drift(engine, oid, _records(engine, engine.load_inventory(create=False)))


def objects_drift(engine: EngineView, oids: list[ObjectId]) -> dict[ObjectId, list[DriftItem]]:
    """Drift of many objects at once: what the daemon runs on a burst of watch events (a cold sync of
    thousands of objects is heard of object by object). One inventory read, each record parsed once,
    and one plan per stack for its objects in the burst (one LIST of each kind from the live cache)."""
    records = _records(engine, engine.load_inventory(create=False))
    wanted = {str(oid): oid for oid in oids}
    found: dict[ObjectId, list[DriftItem]] = {oid: [] for oid in oids}
    for stack, record in records.items():
        mine = {wanted[key] for key in wanted.keys() & record.objects.keys()}
        for entry in _planned_against_record(engine, stack, record, mine) if mine else []:
            found[entry.obj.id] = _drift_items(stack, entry)
    return found


def _records(engine: EngineView, inventory: Inventory) -> dict[str, StackRecord]:
    return {s.name: inventory.record(s.name) for s in engine.env.stacks}


def _object_drift(engine: EngineView, oid: ObjectId, records: dict[str, StackRecord]
                  ) -> tuple[str | None, list[DriftItem], PlannedObject | None]:
    key = str(oid)
    stack = next((name for name, record in records.items() if key in record.objects), None)
    if stack is None:
        return None, [], None
    planned = _planned_against_record(engine, stack, records[stack], {oid})
    if not planned:
        return stack, [], None
    [entry] = planned
    return stack, _drift_items(stack, entry), entry


def _planned_against_record(engine: EngineView, stack: str, record: StackRecord,
                            oids: set[ObjectId]) -> list[PlannedObject]:
    """These objects of `stack`, as rendered at the commit its record says was applied, planned against live
    state with the recorded hashes; nothing when that commit failed (it is partly live: the next pass, not
    a correction, settles it) or the render no longer holds them."""
    if record.commit is None or record.state == "failed":
        return []
    objects = [engine.owned(o) for o in engine.rendered_at(record.commit).objects.get(stack, []) if o.id in oids]
    if not objects:
        return []
    return plan_stack(engine.cluster_for(stack), objects, engine.selector(stack),
                      {str(o.id): record.objects[str(o.id)] for o in objects}, force=False,
                      owner=engine.ownership(stack))


def _drift_items(stack: str, entry: PlannedObject) -> list[DriftItem]:
    """The drift one planned object shows: none when it is unchanged or the server refused its dry run."""
    if entry.error or entry.action is Action.UNCHANGED:
        return []
    kind = DriftKind.MISSING if entry.action is Action.CREATE else DriftKind.MODIFIED
    return [DriftItem(stack, entry.obj.id, kind, entry.fields)]


def correct_object(engine: EngineView, oid: ObjectId) -> str:
    """Restore one drifted object to the commit its stack last applied successfully (one apply, taking
    ownership of the fields another manager changed), as a writer like any other: under the engine's
    write lock and the environment's writer lease, judged again once both are held. '' when corrected
    or nothing to do; `SKIPPED` while another writer works (its pass ends with a drift check); else why not."""
    if not engine.write_lock.acquire(blocking=False):
        return SKIPPED
    try:
        lease = engine.writer_lease()
        try:
            lease.acquire(wait_s=0.0)
        except LeaseHeld:
            return SKIPPED
        try:
            inventory = engine.load_inventory(create=False)
            stack, items, entry = _object_drift(engine, oid, _records(engine, inventory))
            if stack is None or entry is None or not items:
                return ""
            if inventory.suspensions().of(stack) or hold(engine.env, stack):
                return SUSPENDED  # suspended or outside the sync windows: reported as drift, not corrected
            outcome = apply_planned(engine.cluster_for(stack), [entry], recreate_immutable=False, take_ownership=True,
                                    should_stop=lease.lost)
            return outcome.error
        finally:
            lease.release()
    finally:
        engine.write_lock.release()


SKIPPED = "skipped: another writer holds the environment"
SUSPENDED = "suspended or held by a sync window: drift is reported, not corrected"
