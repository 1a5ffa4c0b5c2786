"""The mass-prune guard: a pass that would delete most of a stack stops before deleting anything.

A commit that empties an overlay but for one object, a base path typed wrong in a way that still
renders, an environment file that drops a stack by mistake: each asks prune to delete nearly
everything a stack owns. An empty render is already refused (`stages.refuse_empty_render`); this
guard refuses the near-empty ones. Above `sync.massPrune.maxPercent` of the stack's objects (default
more than half) and at least `minObjects` of them (default 5), the stack is blocked with nothing
applied or pruned, its dependents wait, and the daemon alerts. `reconciler sync --allow-mass-prune`
(or the API's `allowMassPrune`) lets one pass through. Argo CD users have asked for this refusal for
years (argo-cd #3484); Flux has none.
"""

from __future__ import annotations

from reconciler.config import MassPruneConfig
from reconciler.results import StackResult, StackState

FIX = "check the commit; if the deletion is intended, `reconciler sync --allow-mass-prune` lets it through once"


def mass_prune_refusal(stack: str, pruning: int, owned: int, guard: MassPruneConfig) -> str | None:
    """Why this prune is refused, or None when it is within the guard."""
    if pruning < guard.min_objects or owned <= 0 or pruning * 100 <= guard.max_percent * owned:
        return None
    return (f"mass prune refused: stack {stack!r} would delete {pruning} of its {owned} objects "
            f"(more than {guard.max_percent:g}%); nothing was applied or pruned (fix: {FIX})")


def guard_mass_prune(result: StackResult, pruning: int, owned: int, guard: MassPruneConfig, allowed: bool,
                     dry_run: bool) -> bool:
    """Block the stack (True) when this pass would mass-prune it; a plan only notes that sync would refuse."""
    refusal = None if allowed else mass_prune_refusal(result.stack, pruning, owned, guard)
    if refusal and dry_run:
        result.notes.append(refusal.replace("nothing was applied or pruned", "sync would refuse it"))
    elif refusal:
        result.state, result.blocked_by, result.reason = StackState.BLOCKED, ["mass-prune guard"], refusal
        return True
    return False
