"""Progress events of a pass (fetch, render, policy, plan, apply, health, prune, done), for the CLI's
progress lines and the daemon's run records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ProgressEvent:
    run_id: str
    env: str
    stack: str | None
    wave: int | None
    phase: str  # fetch, render, policy, plan, apply, health, prune, done
    message: str
    objects_applied: int = 0


Progress = Callable[[ProgressEvent], None]
Emit = Callable[..., None]  # emit(stack, wave, phase, message, applied=0)


def emitter(progress: Progress | None, run_id: str, env: str) -> Emit:
    def emit(stack: str | None, wave: int | None, phase: str, message: str, applied: int = 0) -> None:
        if progress is not None:
            progress(ProgressEvent(run_id, env, stack, wave, phase, message, applied))
    return emit
