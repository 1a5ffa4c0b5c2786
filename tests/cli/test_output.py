"""The CLI's tables on plain results (no cluster): what a person reads."""

from __future__ import annotations

import io
from datetime import datetime, timezone

from rich.console import Console

from reconciler.cli.output import print_status
from reconciler.results import EnvStatus, StackStatus


def test_the_status_table_says_its_times_are_utc() -> None:
    """A time without a zone reads as local time: in Berlin, an hour off."""
    applied = datetime(2026, 12, 4, 4, 15, 20, tzinfo=timezone.utc)
    stack = StackStatus(stack="app", commit="a" * 40, state="applied", reason="", healthy=True, drift_count=0,
                        violations=0, last_run=applied,
                        history=[{"commit": "a" * 40, "result": "applied", "healthy": True, "at": applied.isoformat(),
                                  "author": "Dev <dev@example.test>", "message": "blue"}])
    out = io.StringIO()

    print_status(Console(file=out, width=200), EnvStatus(env="dev", stacks=[stack]), history=True)

    text = out.getvalue()
    assert "last run (UTC)" in text and "2026-12-04 04:15:20" in text
    assert "applied at (UTC)" in text
