"""Stacks removed from the environment file: what they applied goes too, as Flux garbage-collects
the objects of a deleted Kustomization.

A stack that has a record in the inventory but is no longer declared is pruned after a full pass
that succeeded everywhere (so an object moved from it to a remaining stack has been applied and
recorded by its new owner before anything is deleted): what no stack renders any more and is still
labelled as the removed stack's is deleted, then its record is dropped. Namespaces and CRDs are
never pruned this way (the stack's `pruneNamespaces` went with it): they are named and left. A plan
lists the same deletions. Requests are made as the environment's default service account, if any.
"""

from __future__ import annotations

from reconciler.config import EnvironmentConfig
from reconciler.errors import ReconcilerError
from reconciler.kube.cluster import impersonating
from reconciler.pipeline.context import PassContext
from reconciler.pipeline.inventory import Inventory
from reconciler.pipeline.ownership import prune_candidates, selector
from reconciler.pipeline.prune import prune_objects
from reconciler.pipeline.prune_guard import mass_prune_refusal
from reconciler.pipeline.rendered import RenderedEnv
from reconciler.results import PassResult, StackResult, StackState

def removed_stacks(env: EnvironmentConfig, inventory: Inventory) -> list[str]:
    declared = {s.name for s in env.stacks}
    return [s for s in inventory.recorded_stacks() if s not in declared]


def prune_removed_stacks(ctx: PassContext, rendered: RenderedEnv, inventory: Inventory, result: PassResult) -> None:
    """After a full pass: plan (dry run) or carry out the removal of every stack no longer declared."""
    if not ctx.env.sync.prune or rendered.errors:
        return
    if not result.dry_run and not all(s.state in (StackState.APPLIED, StackState.UNCHANGED) for s in result.stacks):
        return  # only on top of a pass that succeeded everywhere
    owners = rendered.owners()
    default_account = ctx.env.sync.service_account
    cluster = impersonating(ctx.cluster, "system:serviceaccount:" + default_account.replace("/", ":")
                            if default_account else None)
    for stack in removed_stacks(ctx.env, inventory):
        changes = prune_candidates(inventory.record(stack).objects, owners)
        outcome = StackResult(stack=stack, state=StackState.PLANNED if result.dry_run else StackState.APPLIED,
                              wave=-1, changes=changes, reason="removed from the environment")
        refusal = None if ctx.options.allow_mass_prune else mass_prune_refusal(
            stack, len(changes), len(inventory.record(stack).objects), ctx.env.sync.mass_prune)
        if refusal and not result.dry_run:
            outcome.state, outcome.blocked_by, outcome.reason = StackState.BLOCKED, ["mass-prune guard"], refusal
        elif refusal:
            outcome.reason += "; " + refusal.replace("nothing was applied or pruned", "sync would refuse it")
        elif not result.dry_run:
            try:
                deleted, skipped = prune_objects(cluster, [c.id for c in changes], selector(ctx.env.name, stack),
                                                 allow_namespaces=False)
                inventory.drop_record(stack)
                outcome.reason += f": {deleted} object(s) pruned" + ("; left: " + "; ".join(skipped[:3]) if skipped else "")
            except ReconcilerError as exc:
                outcome.state, outcome.reason = StackState.FAILED, f"removed from the environment; prune failed: {exc}"
        if changes or not result.dry_run:
            result.stacks.append(outcome)
