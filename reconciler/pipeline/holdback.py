"""Which stacks a pass leaves alone: suspended by a person, held by a sync window, or waiting on such a
stack. Their dependents wait with them; none of it is a failure (no alert storm, no backoff)."""

from __future__ import annotations

from reconciler.config import EnvironmentConfig, StackConfig
from reconciler.pipeline.suspension import Suspensions
from reconciler.pipeline.windows import hold
from reconciler.results import StackState

HELD_BACK = (StackState.SUSPENDED, StackState.HELD)


class HoldBack:
    """Asked once per stack, in wave order; told the state each stack ended in."""

    def __init__(self, env: EnvironmentConfig, suspensions: Suspensions, manual: bool) -> None:
        self.env, self.suspensions, self.manual = env, suspensions, manual
        self.states: dict[str, StackState] = {}  # stacks of this pass that were held back, and how

    def why(self, stack: StackConfig) -> tuple[StackState, str]:
        """(state, why) when `stack` is held back; the reason is "" when it is not."""
        suspended = self.suspensions.note(stack.name)
        if suspended:
            return StackState.SUSPENDED, suspended
        window = hold(self.env, stack.name)
        if window and not (self.manual and window.manual_allowed):
            return StackState.HELD, window.reason
        waiting = {d: self.states.get(d, StackState.SUSPENDED) for d in stack.depends_on
                   if d in self.states or self.suspensions.of(d)}
        state = StackState.HELD if waiting and StackState.SUSPENDED not in waiting.values() else StackState.SUSPENDED
        return state, ", ".join(f"waits on {s.value} stack {d!r}" for d, s in waiting.items())

    def ended(self, stack: str, state: StackState) -> None:
        if state in HELD_BACK:
            self.states[stack] = state
