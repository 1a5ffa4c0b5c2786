"""Helpers shared by tests: condition waits (never fixed sleeps) and watches that last their whole timeout."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import pytest
from kubernetes import watch


def wait_for(condition: Callable[[], object], *, timeout_s: float = 120, what: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail the test with `what` on timeout. Polls at
    least every 0.5 s: the conditions are cheap reads, and a wait that backed off to 2 s overshot its
    condition by a second on average, on every one of a few hundred waits in a run."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def watch_events(list_objects: Callable[..., Any], *args: object, timeout_s: float, **kwargs: object) -> Iterator[dict]:
    """Every event of a watch, as plain dicts, until `timeout_s` has passed. The API server may end a watch
    before its timeout (it closes a watcher that falls behind a burst of writes, and every watcher of a kind
    when its watch cache starts over), and the client then ends its stream without an error: a test that took
    that for "nothing happened in time" failed a CI run after 234 s on a 240 s watch. So this watches again
    from the last resourceVersion it saw, which misses nothing in between. Plain dicts: decoding each event
    into the client's models is work these readers do not need while a burst arrives."""
    deadline = time.monotonic() + timeout_s
    version = kwargs.pop("resource_version", None)
    while (left := deadline - time.monotonic()) > 0:
        since = {"resource_version": version} if version else {}
        for event in watch.Watch().stream(list_objects, *args, timeout_seconds=max(1, round(left)),
                                          deserialize=False, **since, **kwargs):
            version = event["object"]["metadata"]["resourceVersion"]
            yield event
