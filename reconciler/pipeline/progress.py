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

    def to_dict(self) -> dict:
        """Its fields as they are (all JSON already): what `results.to_jsonable` would make of it field by
        field, for every event of every pass."""
        return {"run_id": self.run_id, "env": self.env, "stack": self.stack, "wave": self.wave, "phase": self.phase,
                "message": self.message, "objects_applied": self.objects_applied}


Progress = Callable[[ProgressEvent], None]
Emit = Callable[..., None]  # emit(stack, wave, phase, message, applied=0)


def emitter(progress: Progress | None, run_id: str, env: str) -> Emit:
    def emit(stack: str | None, wave: int | None, phase: str, message: str, applied: int = 0) -> None:
        if progress is not None:
            progress(ProgressEvent(run_id, env, stack, wave, phase, message, applied))
    return emit
