"""Stack records rebuilt from the owner labels on live objects, when the inventory lost them.

A first sync, or an inventory ConfigMap deleted or corrupted by hand: a stack without a readable record
gets one rebuilt in memory from the objects that carry its owner label, until the stack's pass writes it.
Prune then still knows what the stack owns, and never deletes what Git wants; what Git dropped meanwhile is
still pruned. Without inventory and hash key both, the environment never synced: nothing of it can be live.
"""

from __future__ import annotations

from reconciler.kube.cluster import Cluster
from reconciler.kube.discovery import find_labelled, listable_kinds
from reconciler.pipeline.inventory import Inventory
from reconciler.pipeline.ownership import OWNER_LABEL, owner_label_value


def rebuild_records(inventory: Inventory, scopes: dict[str, tuple[Cluster, set[str]]]) -> dict[str, int]:
    """Rebuild the records of the stacks of `scopes` that have none readable; {stack: objects found}.
    `scopes`: per stack, the API server as its account and the namespaces it renders into. One scan per
    account, for all its stacks at once."""
    if not (inventory.found or inventory.key_found):
        return {}
    missing = [stack for stack in scopes if not inventory.has_record(stack)]
    found: dict[str, dict[str, str]] = {stack: {} for stack in missing}
    kinds = listable_kinds(inventory.cluster) if missing else []
    by_account: dict[str | None, list[str]] = {}
    for stack in missing:
        by_account.setdefault(scopes[stack][0].user, []).append(stack)
    for stacks in by_account.values():
        wanted = {owner_label_value(inventory.env, stack): stack for stack in stacks}
        namespaces = set().union(*(scopes[stack][1] for stack in stacks))
        for obj in find_labelled(scopes[stacks[0]][0], f"{OWNER_LABEL} in ({','.join(sorted(wanted))})",
                                 namespaces, kinds):
            found[wanted[obj.labels[OWNER_LABEL]]][str(obj.id)] = ""  # no hash: compared by a dry-run
    return inventory.adopt_rebuilt(found)
