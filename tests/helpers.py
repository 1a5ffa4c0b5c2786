"""Helpers shared by tests: condition waits (never fixed sleeps)."""

from __future__ import annotations

import time
from typing import Callable

import pytest


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
