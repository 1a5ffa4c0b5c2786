"""A pass's progress events as the daemon's run records keep them."""

from __future__ import annotations

from dataclasses import asdict

from reconciler.pipeline.progress import ProgressEvent
from reconciler.results import to_jsonable


def test_a_progress_event_as_json_holds_every_field_of_the_event() -> None:
    event = ProgressEvent("run-1", "dev", "app", 2, "apply", "applied", 3)

    assert to_jsonable(event) == asdict(event)
