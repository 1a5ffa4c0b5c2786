"""A pass under pins: which pins hold this pass, and the environment rendered with pinned stacks at their commits.

The pass renders the branch head as always (it must know the head to lift pins on a new commit),
then renders each pinned commit and takes the pinned stacks' objects from it. Policy runs again on
that mix with the head's policies: a rollback target that fails today's rules is refused.
"""

from __future__ import annotations

from typing import Callable

from reconciler.config import EnvironmentConfig
from reconciler.pipeline.pins import Pins
from reconciler.pipeline.rendered import RenderedEnv, evaluate_policy
from reconciler.results import CommitInfo


def settle_pins(env: EnvironmentConfig, stored: Pins, head: CommitInfo, request: Pins | None) -> tuple[Pins, list[str]]:
    """The pins this pass holds, and notices saying what changed: a pin on a stack no longer declared is
    dropped; with `rollback.unpinOnNewCommit`, a new head lifts every pin; `request` (a rollback) adds its own."""
    notices: list[str] = []
    declared = {s.name for s in env.stacks}
    pins = Pins(head=stored.head, stacks={s: p for s, p in stored.stacks.items() if s in declared})
    for gone in sorted(set(stored.stacks) - declared):
        notices.append(f"pin of stack {gone!r} dropped: the stack is no longer in the environment")
    if pins and env.rollback.unpin_on_new_commit and pins.head and pins.head != head.sha:
        notices.append(f"pins lifted by the new commit {head.short} (rollback.unpinOnNewCommit): "
                       + ", ".join(f"{s} was at {p.revision[:10]}" for s, p in sorted(pins.stacks.items())))
        pins = Pins()
    if request:
        pins = Pins(head=head.sha, stacks={**pins.stacks, **request.stacks})
    return pins, notices + pin_notices(env, pins, head)


def pin_notices(env: EnvironmentConfig, pins: Pins, head: CommitInfo) -> list[str]:
    """One line per pinned revision: which stacks hold it while the branch head is not applied to them."""
    return [f"pinned: {', '.join(stacks)} at {revision[:10]} (branch head {head.short} not applied to them until "
            f"`reconciler unpin -e {env.name}`)" for revision, stacks in pins.revisions().items()]


def pin_render(env: EnvironmentConfig, head: RenderedEnv, pins: Pins,
               rendered_at: Callable[[str], RenderedEnv]) -> RenderedEnv:
    """`head` with every pinned stack's objects, digest and render error taken from its pinned commit."""
    if not pins:
        return head
    mixed = RenderedEnv(commit=head.commit, tree=head.tree, objects=dict(head.objects), errors=dict(head.errors),
                        digests=dict(head.digests), env=head.env)
    for revision, stacks in pins.revisions().items():
        at = rendered_at(revision)
        for stack in stacks:
            mixed.pinned[stack] = at.commit
            _take(mixed.objects, at.objects, stack)
            _take(mixed.errors, at.errors, stack)
            _take(mixed.digests, at.digests, stack)
    mixed.policy_report = evaluate_policy(env, mixed)
    return mixed


def _take(into: dict, source: dict, stack: str) -> None:
    if stack in source:
        into[stack] = source[stack]
    else:
        into.pop(stack, None)
